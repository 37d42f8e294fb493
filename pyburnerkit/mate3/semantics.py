"""What every field the Mate3 recorder adapter emits means (the family's field table).

The recorder adapter (``pyburnerkit.recorder.adapters.mate3.Mate3Source``) emits the real-time
fields of the Mate3s itself (channel ``"mate3"``, block 64110) and of each HUB device (channel =
its HUB port: charge controllers 64111, FX inverters 64113, split-phase Radians 64115,
single-phase Radians 64117, FLEXnet DC 64118). Each channel is a physical device of its own
(``per_channel=True``), linked to the Mate3s by ``via_device``; configuration blocks are not
recorded. Every field of those blocks has an exact entry here with a name a person would use;
only a few per device are enabled by default (at most 15).

Conventions a consumer of this table relies on:

Controls
    Every setting is changed with ``Mate3Client.write(path, value)``, so ``Control.method``
    is ``"write"`` and ``Control.argument`` is ``"path:<field path>"``
    (``"path:mate3.ags_mode"``): the caller passes the path after ``path:`` as the first
    argument and the command's value as the second. A ``number`` passes the number, a
    ``select`` the raw value ``choices`` maps its label to, a ``switch`` ``on`` (1) or ``off``
    (0). The client checks the value against the field's documented limit
    (:mod:`pyburnerkit.mate3.limits`) before anything is sent, and refuses writes unless it
    was opened with ``allow_writes=True``. Only fields whose limit the library knows exactly
    (an enumeration or a fixed range) are controls; the ``minimum``/``maximum`` of a number are
    the library's own range. Not controls: battery set points (their window depends on the
    nominal voltage the system reports), fields without a documented limit (they need the
    expert override), text and IPv4 fields (Home Assistant ``text`` entities are not in this
    schema), and the network fields (``enable_dhcp``, ``modbus_port``), whose change through
    the Modbus link cuts that link. Only ``ags_mode`` (generator auto start on/off) is
    ``safe``: the rest are installer settings that need the user's per-field opt-in.

Read-only settings
    Settings without a control are ``sensor`` entities in the ``diagnostic`` category:
    Home Assistant refuses the ``config`` category on sensors. They never carry a state class;
    the one writable field that does, ``ags_total_generator_run_time``, is the generator's hour
    meter (an installer may preset it), a running total rather than a setting.

Enumerations and bit fields
    The adapter records enums and bit fields as a number plus a text (the enum's label, or the
    names of the set bits joined by commas). Enum sensors (``device_class`` ``"enum"``) show the
    text, and their ``options`` are the labels of the OutBack map. A ``binary_sensor`` is ON
    while the recorded number is non-zero (an error or warning bit field with any bit set). A
    ``switch`` is ON while the number equals ``Control.on``.

Energy
    Lifetime kWh counters and the daily kWh counters that only fall back to 0 at midnight are
    ``total_increasing`` (Home Assistant reads a drop as a new meter cycle). Signed or net
    counters (the FLEXnet's accumulated and net battery kWh/Ah, which go down when the battery
    discharges) are ``total``.

Units
    The units are the adapter's, except where the OutBack map's unit column is wrong or not
    Home Assistant's spelling; :data:`CORRECTED_UNITS` lists each such field with the adapter's
    unit and the reason.
"""

from __future__ import annotations

from typing import Dict, Mapping, Optional, Pattern, Tuple, Union

from ..semantics import Control, Entity, FieldTable, compile_key
from . import codec, limits

__all__ = ["TABLE", "CORRECTED_UNITS", "SAFE_CONTROLS"]

#: the blocks whose fields name an enumeration's labels (the Mate3s, a charge controller, a
#: single-phase Radian: the other inverters share its labels)
MATE3, CC, SINGLE_RADIAN = 64110, 64111, 64117

#: field -> (unit the adapter emits, unit of the table, why the table differs)
CORRECTED_UNITS: Mapping[str, Tuple[str, str, str]] = {
    "lifetime_k_amp_hours": ("A", "kAh", "OutBack: 'Lifetime Total K-Amp Hours'; the map's "
                             "unit column says Amps"),
    "lifetime_k_ah_removed": ("Ah", "kAh", "OutBack: 'Lifetime kAH removed from battery'"),
    "ags_exercise_interval": ("wk", "w", "Home Assistant spells weeks 'w' (UnitOfTime.WEEKS)"),
    "todays_minimum_battery_time": ("s", "", "a UTC time stamp in seconds, not a duration"),
    "todays_maximum_battery_time": ("s", "", "a UTC time stamp in seconds, not a duration"),
    **{f"grid_use_interval_{n}_{days}_{edge}_minute": (
        "h", "min", "a minute 0-59; the map's unit column says Hour for these (see "
        "mate3_write_limits.csv)")
       for n, days in ((1, "weekday"), (1, "weekend"), (2, "weekday"), (3, "weekday"))
       for edge in ("start", "stop")},
}

#: the controls that work as soon as the device's config allows writes
SAFE_CONTROLS = frozenset({"ags_mode"})

_DIAG = "diagnostic"


def _labels(did: int, name: str) -> Tuple[str, ...]:
    """The labels of an enumerated field, in the order of their raw values."""
    return tuple(label for _, label in sorted(codec.block_defs()[did].fields[name].options.items()))


# ------------------------------------------------------------------------------ sensors
def _measure(name: str, unit: str, device_class: Optional[str] = None, *,
             precision: Optional[int] = None, enabled: bool = False, diagnostic: bool = False,
             icon: Optional[str] = None) -> Entity:
    return Entity(name, unit, device_class, "measurement", _DIAG if diagnostic else None,
                  enabled, precision, icon)


def _record(name: str, unit: str, device_class: Optional[str] = None, *,
            precision: Optional[int] = None, diagnostic: bool = False,
            icon: Optional[str] = None) -> Entity:
    # A day's or a lifetime's extreme: one remembered value, not a signal to average, so no
    # state class (long-term statistics of it would mean nothing).
    return Entity(name, unit, device_class, None, _DIAG if diagnostic else None, False,
                  precision, icon)


def _energy(name: str, state_class: str, *, enabled: bool = False, diagnostic: bool = False,
            precision: int = 1) -> Entity:
    return Entity(name, "kWh", "energy", state_class, _DIAG if diagnostic else None, enabled,
                  precision)


def _charge(name: str, state_class: str, *, unit: str = "Ah", diagnostic: bool = False,
            icon: str = "mdi:battery-charging") -> Entity:
    # Home Assistant has no device class for amp-hours.
    return Entity(name, unit, None, state_class, _DIAG if diagnostic else None, False, 0, icon)


def _enum(did: int, field: str, name: str, *, enabled: bool = False, diagnostic: bool = False,
          icon: Optional[str] = None) -> Entity:
    return Entity(name, device_class="enum", category=_DIAG if diagnostic else None,
                  enabled=enabled, icon=icon, options=_labels(did, field))


def _problem(name: str, *, enabled: bool = False) -> Entity:
    return Entity(name, device_class="problem", category=_DIAG, enabled=enabled,
                  kind="binary_sensor")


def _info(name: str, unit: str = "", device_class: Optional[str] = None, *,
          icon: Optional[str] = None, precision: Optional[int] = None) -> Entity:
    """An internal or a read-only setting: diagnostic, disabled, no state class."""
    return Entity(name, unit, device_class, None, _DIAG, False, precision, icon)


# ------------------------------------------------------------------------------ controls
def _control(field: str, *, minimum: Optional[float] = None, maximum: Optional[float] = None,
             step: Optional[float] = None, choices: Optional[Mapping[str, int]] = None
             ) -> Control:
    # The two-valued enumerations of the map are 0/1, so a switch passes 1 and 0 (numbers and
    # selects never read on/off).
    return Control("write", f"path:mate3.{field}", minimum, maximum, step, choices,
                   on=1, off=0, safe=field in SAFE_CONTROLS)


def _number(field: str, name: str, unit: str = "", *, step: float = 1,
            icon: Optional[str] = None) -> Entity:
    limit = limits.limit_for(MATE3, field)
    if limit.kind != "range" or len(limit.ranges) != 1:
        raise ValueError(f"{field}: a number needs one documented range, the library has "
                         f"{limit.kind} {limit.ranges}")
    low, high = limit.ranges[0]
    return Entity(name, unit, category="config", precision=0 if step >= 1 else 2, icon=icon,
                  kind="number", control=_control(field, minimum=low, maximum=high, step=step))


def _select(field: str, name: str, *, icon: Optional[str] = None) -> Entity:
    if limits.limit_for(MATE3, field).kind != "enum":
        raise ValueError(f"{field}: a select needs an enumeration")
    options = codec.block_defs()[MATE3].fields[field].options
    choices = {label: raw for raw, label in sorted(options.items())}
    return Entity(name, category="config", icon=icon, kind="select",
                  options=tuple(choices), control=_control(field, choices=choices))


def _switch(field: str, name: str, *, enabled: bool = False,
            icon: Optional[str] = None) -> Entity:
    options = codec.block_defs()[MATE3].fields[field].options
    if limits.limit_for(MATE3, field).kind != "enum" or set(options) != {0, 1}:
        raise ValueError(f"{field}: a switch needs a two-valued enumeration 0/1")
    return Entity(name, category="config", enabled=enabled, icon=icon, kind="switch",
                  control=_control(field))


# ------------------------------------------------------------------------------ Mate3s
_CLOCK = "mdi:clock-outline"
_AGS = "mdi:engine"

_mate3: Dict[str, Entity] = {
    # what a person watches
    "measured_system_voltage": _measure("Battery voltage", "V", "voltage", precision=1,
                                        enabled=True),
    "temp_battery": _measure("Battery temperature", "°C", "temperature", precision=0,
                             enabled=True),
    "temp_ambient": _measure("Ambient temperature", "°C", "temperature", precision=0,
                             enabled=True),
    "error": _problem("Error", enabled=True),
    "ags_mode": _switch("ags_mode", "Generator auto start", enabled=True, icon=_AGS),
    # the gateway itself
    "major_firmware_number": _info("Firmware major version", icon="mdi:chip"),
    "mid_firmware_number": _info("Firmware mid version", icon="mdi:chip"),
    "minor_firmware_number": _info("Firmware minor version", icon="mdi:chip"),
    "hub_type": _enum(MATE3, "hub_type", "HUB type", diagnostic=True, icon="mdi:hub"),
    "hub_major_firmware_number": _info("HUB firmware major version", icon="mdi:chip"),
    "hub_mid_firmware_number": _info("HUB firmware mid version", icon="mdi:chip"),
    "hub_minor_firmware_number": _info("HUB firmware minor version", icon="mdi:chip"),
    # real Mate3s units report values the map does not know (3 in the bundled dump), which an
    # enum sensor would reject: shown as text
    "gateway_type": _info("Gateway type", icon="mdi:router-network"),
    "system_voltage": _info("Nominal battery voltage", "V", "voltage"),
    "status": Entity("Firmware update complete", category=_DIAG, kind="binary_sensor"),
    "update_device_firmware_port": _info("Firmware update port", icon="mdi:update"),
    "encryption_key": _info("Encryption key", icon="mdi:key"),
    "spare_reg_3": _info("Spare register 3"),
    "spare_reg_4": _info("Spare register 4"),
    "web_user_logged_in_status": _enum(MATE3, "web_user_logged_in_status",
                                       "Web user logged in", diagnostic=True),
    # network and e-mail: read-only here (see the module docstring)
    "mac_address": _info("MAC address", icon="mdi:ethernet"),
    "enable_dhcp": _enum(MATE3, "enable_dhcp", "DHCP", diagnostic=True, icon="mdi:ip-network"),
    "tcpip_address": _info("IP address", icon="mdi:ip-network"),
    "tcpip_gateway_msw": _info("Network gateway", icon="mdi:ip-network"),
    "tcpip_netmask_msw": _info("Network mask", icon="mdi:ip-network"),
    "tcpip_dns_1_msw": _info("DNS server 1", icon="mdi:dns"),
    "tcpip_dns_2_msw": _info("DNS server 2", icon="mdi:dns"),
    "modbus_port": _info("Modbus port", icon="mdi:lan-connect"),
    "system_name": _info("System name", icon="mdi:label-outline"),
    "time_server_name": _info("Time server", icon=_CLOCK),
    "web_reporting_base_url": _info("Web reporting URL", icon="mdi:web"),
    "smtp_server_name": _info("E-mail server", icon="mdi:email-outline"),
    "smtp_account_name": _info("E-mail account", icon="mdi:email-outline"),
    "smtp_email_user_name": _info("E-mail user name", icon="mdi:email-outline"),
    # "SSL Enabled (not implemented)": nothing to switch
    "smtp_ssl_enable": _enum(MATE3, "smtp_ssl_enable", "E-mail SSL", diagnostic=True,
                             icon="mdi:email-lock"),
    "status_email_subject_line": _info("Status e-mail subject", icon="mdi:email-outline"),
    "status_email_to_address_1": _info("Status e-mail recipient 1", icon="mdi:email-outline"),
    "status_email_to_address_2": _info("Status e-mail recipient 2", icon="mdi:email-outline"),
    "alarm_email_to_address_1": _info("Alarm e-mail recipient 1", icon="mdi:email-alert"),
    "alarm_email_to_address_2": _info("Alarm e-mail recipient 2", icon="mdi:email-alert"),
    "status_email_interval": _number("status_email_interval", "Status e-mail interval", "h",
                                     icon="mdi:email-fast"),
    "status_email_status_time": _number("status_email_status_time",
                                        "Status e-mail first hour", "h", icon="mdi:email-fast"),
    "alarm_email_enable": _switch("alarm_email_enable", "Alarm e-mails", icon="mdi:email-alert"),
    # logging and clock
    "sd_card_data_log_write_interval": _number("sd_card_data_log_write_interval",
                                               "SD card log interval", "s", icon="mdi:sd"),
    "sd_card_data_log_retain_days": _number("sd_card_data_log_retain_days",
                                            "SD card log retention", "d", icon="mdi:sd"),
    "sd_card_data_logging_mode": _select("sd_card_data_logging_mode", "SD card log format",
                                         icon="mdi:sd"),
    "enable_time_server": _switch("enable_time_server", "Time server sync", icon=_CLOCK),
    # Time-zone offsets are whole quarter hours (+5:45, +12:45...); the client still refuses a
    # value the register's scale factor cannot hold.
    "set_time_zone": _number("set_time_zone", "Time zone offset", "h", step=0.25,
                             icon="mdi:map-clock"),
    "year": _number("year", "Clock year", icon=_CLOCK),
    "month": _number("month", "Clock month", icon=_CLOCK),
    "day": _number("day", "Clock day", icon=_CLOCK),
    "hour": _number("hour", "Clock hour", icon=_CLOCK),
    "minute": _number("minute", "Clock minute", icon=_CLOCK),
    "second": _number("second", "Clock second", icon=_CLOCK),
    "auto_reboot": _switch("auto_reboot", "Daily automatic reboot", icon="mdi:restart"),
    # system coordination
    "enable_float_coordination": _switch("enable_float_coordination", "Float coordination"),
    "enable_fndc_charge_termination": _switch("enable_fndc_charge_termination",
                                              "FLEXnet DC charge termination"),
    "enable_fndc_grid_tie_control": _switch("enable_fndc_grid_tie_control",
                                            "FLEXnet DC grid-tie control"),
    "multi_phase_coordination": _switch("multi_phase_coordination", "Multi-phase coordination"),
    "global_charger_control_mode": _switch("global_charger_control_mode",
                                           "Global charger control"),
    "global_charger_control_output_limit": _info("Global charger output limit", "A",
                                                 "current"),
    "radian_ac_coupled_control_mode": _switch("radian_ac_coupled_control_mode",
                                              "Radian AC-coupled control"),
    # AGS: the generator
    "ags_port": _number("ags_port", "AGS HUB port", icon=_AGS),
    "ags_port_type": _select("ags_port_type", "AGS output", icon=_AGS),
    "ags_generator_type": _select("ags_generator_type", "Generator type", icon=_AGS),
    "ags_dc_gen_absorb_voltage": _info("DC generator absorb voltage", "V", "voltage"),
    "ags_dc_gen_absorb_time": _info("DC generator absorb time", "h", "duration"),
    "ags_fault_time": _info("Generator fault delay", "min", "duration"),
    "ags_gen_cool_down_time": _info("Generator cool-down time", "min", "duration"),
    "ags_gen_warm_up_time": _info("Generator warm-up time", "min", "duration"),
    "ags_ac_reconnect_delay": _info("Generator AC reconnect delay", "min", "duration"),
    # an hour meter the Mate3 lets an installer preset: a counter, not a setting
    "ags_total_generator_run_time": Entity("Generator run time", "h", "duration",
                                           "total_increasing", _DIAG, False, 1,
                                           "mdi:timer-cog-outline"),
    "ags_generator_exercise_mode": _switch("ags_generator_exercise_mode", "Generator exercise",
                                           icon=_AGS),
    "ags_exercise_start_hour": _number("ags_exercise_start_hour", "Exercise start hour", "h",
                                       icon=_AGS),
    "ags_exercise_start_minute": _number("ags_exercise_start_minute", "Exercise start minute",
                                         "min", icon=_AGS),
    "ags_exercise_day": _select("ags_exercise_day", "Exercise day", icon=_AGS),
    "ags_exercise_period": _number("ags_exercise_period", "Exercise period", "min", icon=_AGS),
    "ags_exercise_interval": _number("ags_exercise_interval", "Exercise interval", "w",
                                     icon=_AGS),
    "ags_sell_mode": _select("ags_sell_mode", "Sell during exercise", icon=_AGS),
    "ags_load_start_kw": _info("Generator load start", "kW", "power"),
    "ags_load_start_delay": _info("Generator load start delay", "min", "duration"),
    "ags_load_stop_kw": _info("Generator load stop", "kW", "power"),
    "ags_load_stop_delay": _info("Generator load stop delay", "min", "duration"),
    "ags_soc_start_percentage": _number("ags_soc_start_percentage",
                                        "Generator start state of charge", "%",
                                        icon="mdi:battery-arrow-down"),
    "ags_soc_stop_percentage": _number("ags_soc_stop_percentage",
                                       "Generator stop state of charge", "%",
                                       icon="mdi:battery-arrow-up"),
    "ags_full_charge_interval": _info("Generator full charge interval", "d", "duration"),
    # HBX: grid connect/disconnect by battery state
    "hbx_mode": _select("hbx_mode", "HBX mode", icon="mdi:transmission-tower"),
    "hbx_grid_connect_voltage": _info("HBX grid connect voltage", "V", "voltage"),
    "hbx_grid_connect_delay": _info("HBX grid connect delay", "h", "duration"),
    "hbx_grid_disconnect_voltage": _info("HBX grid disconnect voltage", "V", "voltage"),
    "hbx_grid_disconnect_delay": _info("HBX grid disconnect delay", "h", "duration"),
    "hbx_grid_connect_soc": _number("hbx_grid_connect_soc", "HBX grid connect state of charge",
                                    "%", icon="mdi:transmission-tower-import"),
    "hbx_grid_disconnect_soc": _number("hbx_grid_disconnect_soc",
                                       "HBX grid disconnect state of charge", "%",
                                       icon="mdi:transmission-tower-off"),
    # load grid transfer
    "load_grid_transfer_mode": _switch("load_grid_transfer_mode", "Load grid transfer",
                                       icon="mdi:transmission-tower"),
    "load_grid_transfer_threshold": _info("Load grid transfer threshold", "kW", "power"),
    "load_grid_transfer_connect_delay": _info("Load grid transfer connect delay", "s",
                                              "duration"),
    "load_grid_transfer_disconnect_delay": _info("Load grid transfer disconnect delay", "s",
                                                 "duration"),
    "load_grid_transfer_connect_battery_voltage": _info(
        "Load grid transfer connect voltage", "V", "voltage"),
    "load_grid_transfer_re_connect_battery_voltage": _info(
        "Load grid transfer reconnect voltage", "V", "voltage"),
}

for _which, _label in (("2_min", "2-minute"), ("2_hour", "2-hour"), ("24_hour", "24-hour")):
    _mate3[f"ags_{_which}_start_mode"] = _switch(f"ags_{_which}_start_mode",
                                                 f"Generator {_label} voltage start", icon=_AGS)
    # a battery set point: its window depends on the nominal voltage, so no control
    _mate3[f"ags_{_which}_start_voltage"] = _info(f"Generator {_label} start voltage", "V",
                                                  "voltage")
for _field, _label in (("load_start", "load start"), ("soc_start", "state-of-charge start"),
                       ("enable_full_charge", "full charge"), ("must_run", "must-run time"),
                       ("quiet_time", "quiet time")):
    _key = f"ags_{_field}_mode"
    _mate3[_key] = _switch(_key, f"Generator {_label}", icon=_AGS)

# Time windows: AGS must-run and quiet time (weekday and weekend), grid use intervals (the
# first with a weekend window), and the three AC input mode schedules.
_WINDOWS = [(f"ags_{kind}_{days}", f"{label} {days}")
            for kind, label in (("must_run", "Generator must-run"),
                                ("quiet_time", "Generator quiet time"))
            for days in ("weekday", "weekend")]
_WINDOWS += [(f"grid_use_interval_{n}_{days}", f"Grid use {n} {days}")
             for n, days in ((1, "weekday"), (1, "weekend"), (2, "weekday"), (3, "weekday"))]
for _prefix, _label in _WINDOWS:
    for _edge in ("start", "stop"):
        _mate3[f"{_prefix}_{_edge}_hour"] = _number(f"{_prefix}_{_edge}_hour",
                                                    f"{_label} {_edge} hour", "h", icon=_CLOCK)
        _mate3[f"{_prefix}_{_edge}_minute"] = _number(f"{_prefix}_{_edge}_minute",
                                                      f"{_label} {_edge} minute", "min",
                                                      icon=_CLOCK)
for _n in (1, 2, 3):
    _mate3[f"grid_use_interval_{_n}_mode"] = _switch(f"grid_use_interval_{_n}_mode",
                                                     f"Grid use {_n}",
                                                     icon="mdi:transmission-tower")
    _mate3[f"sched_{_n}_ac_mode"] = _select(f"sched_{_n}_ac_mode",
                                            f"Schedule {_n} AC input mode",
                                            icon="mdi:calendar-clock")
    _mate3[f"sched_{_n}_ac_mode_hour"] = _number(f"sched_{_n}_ac_mode_hour",
                                                 f"Schedule {_n} start hour", "h", icon=_CLOCK)
    _mate3[f"sched_{_n}_ac_mode_minute"] = _number(f"sched_{_n}_ac_mode_minute",
                                                   f"Schedule {_n} start minute", "min",
                                                   icon=_CLOCK)

# ------------------------------------------------------------------------------ HUB devices
# One key may be shared by several kinds of device (battery_voltage is in five blocks); it
# means the same in each, and the enabled ones stay within 15 per device of every kind.
_hub: Dict[str, Entity] = {
    # shared
    "battery_voltage": _measure("Battery voltage", "V", "voltage", precision=1, enabled=True),
    "battery_current": _measure("Battery current", "A", "current", precision=1, enabled=True),
    "battery_temperature": _measure("Battery temperature", "°C", "temperature", precision=0,
                                    enabled=True),
    # charge controller
    "array_voltage": _measure("PV voltage", "V", "voltage", precision=1, enabled=True),
    "array_current": _measure("PV current", "A", "current", precision=1, enabled=True),
    "watts": _measure("Charging power", "W", "power", precision=0, enabled=True),
    "charger_state": _enum(CC, "charger_state", "Charger state", enabled=True,
                           icon="mdi:battery-charging"),
    "todays_kwh": _energy("Energy today", "total_increasing", enabled=True),
    "lifetime_kwh_hours": _energy("Lifetime energy", "total_increasing", enabled=True,
                                  precision=0),
    "todays_ah": _charge("Charge today", "total_increasing"),
    "lifetime_k_amp_hours": _charge("Lifetime charge", "total_increasing", unit="kAh",
                                    diagnostic=True),
    "voc": _measure("PV open-circuit voltage", "V", "voltage", precision=1),
    "todays_peak_voc": _record("Peak PV open-circuit voltage today", "V", "voltage",
                               precision=1),
    "todays_min_battery_volts": _record("Minimum battery voltage today", "V", "voltage",
                                        precision=1),
    "todays_max_battery_volts": _record("Maximum battery voltage today", "V", "voltage",
                                        precision=1),
    "lifetime_max_watts": _record("Lifetime peak power", "W", "power", diagnostic=True),
    "lifetime_max_battery_volts": _record("Lifetime maximum battery voltage", "V", "voltage",
                                          precision=1, diagnostic=True),
    "lifetime_max_voc": _record("Lifetime maximum PV open-circuit voltage", "V", "voltage",
                                precision=1, diagnostic=True),
    "temp_output_fets": _measure("Output FET temperature", "°C", "temperature", precision=0,
                                 diagnostic=True),
    "temp_enclosure": _measure("Enclosure temperature", "°C", "temperature", precision=0,
                               diagnostic=True),
    # inverters (FX, single- and split-phase Radian)
    "inverter_operating_mode": _enum(SINGLE_RADIAN, "inverter_operating_mode",
                                     "Operating mode", enabled=True, icon="mdi:sine-wave"),
    "error_flags": _problem("Error", enabled=True),
    "warning_flags": _problem("Warning"),
    "output_ac_voltage": _measure("AC output voltage", "V", "voltage", precision=0,
                                  enabled=True),
    "ac_input_voltage": _measure("AC input voltage", "V", "voltage", precision=0,
                                 enabled=True),
    "ac_input_frequency": _measure("AC input frequency", "Hz", "frequency", precision=1),
    "ac_input_state": _enum(SINGLE_RADIAN, "ac_input_state", "AC input", enabled=True,
                            icon="mdi:transmission-tower"),
    "ac_input_selection": _enum(SINGLE_RADIAN, "ac_input_selection", "AC input source",
                                icon="mdi:transmission-tower"),
    "grid_input_ac_voltage": _measure("Grid input voltage", "V", "voltage", precision=0),
    "gen_input_ac_voltage": _measure("Generator input voltage", "V", "voltage", precision=0),
    "minimum_ac_input_voltage": _record("Minimum AC input voltage", "V", "voltage",
                                        diagnostic=True),
    "maximum_ac_input_voltage": _record("Maximum AC input voltage", "V", "voltage",
                                        diagnostic=True),
    "inverter_output_current": _measure("Inverter output current", "A", "current",
                                        precision=1),
    "inverter_charge_current": _measure("Charger current", "A", "current", precision=1),
    "inverter_buy_current": _measure("Buy current", "A", "current", precision=1),
    "inverter_sell_current": _measure("Sell current", "A", "current", precision=1),
    "temp_compensated_target_voltage": _measure("Battery target voltage", "V", "voltage",
                                                precision=1, diagnostic=True),
    "load_kw": _measure("Load power", "kW", "power", precision=2, enabled=True),
    "buy_kw": _measure("Buy power", "kW", "power", precision=2, enabled=True),
    "sell_kw": _measure("Sell power", "kW", "power", precision=2, enabled=True),
    "charge_kw": _measure("Charger power", "kW", "power", precision=2, enabled=True),
    # the inverters' output, and the FLEXnet's total output of its shunts
    "output_kw": _measure("Output power", "kW", "power", precision=2),
    "ac_couple_kw": _measure("AC-coupled power", "kW", "power", precision=2),
    "output_kwh": _energy("Output energy today", "total_increasing", enabled=True),
    "charger_kwh": _energy("Charger energy today", "total_increasing"),
    "buy_kwh": _energy("Energy bought today", "total_increasing", enabled=True),
    "sell_kwh": _energy("Energy sold today", "total_increasing", enabled=True),
    "ac1_buy_kwh": _energy("AC1 energy bought today", "total_increasing", enabled=True),
    "ac1_sell_kwh": _energy("AC1 energy sold today", "total_increasing", enabled=True),
    "ac2_buy_kwh": _energy("AC2 energy bought today", "total_increasing"),
    "ac2_sell_kwh": _energy("AC2 energy sold today", "total_increasing"),
    "aux_output_state": _enum(SINGLE_RADIAN, "aux_output_state", "AUX output",
                              diagnostic=True, icon="mdi:electric-switch"),
    "aux_relay_output_state": _enum(SINGLE_RADIAN, "aux_relay_output_state", "AUX relay",
                                    diagnostic=True, icon="mdi:electric-switch"),
    "sell_status": _info("Sell status", icon="mdi:transmission-tower-export"),
    "gt_number": _info("GT number"),
    "transformer_temperature": _measure("Transformer temperature", "°C", "temperature",
                                        precision=0, diagnostic=True),
    "capacitor_temperature": _measure("Capacitor temperature", "°C", "temperature",
                                      precision=0, diagnostic=True),
    "fet_temperature": _measure("FET temperature", "°C", "temperature", precision=0,
                                diagnostic=True),
    # FLEXnet DC
    "state_of_charge": _measure("Battery state of charge", "%", "battery", precision=0,
                                enabled=True),
    "net_kw": _measure("Battery net power", "kW", "power", precision=2, enabled=True),
    "input_kw": _measure("Input power", "kW", "power", precision=2),
    "input_current": _measure("Input current", "A", "current", precision=1),
    "output_current": _measure("Output current", "A", "current", precision=1),
    "days_since_charge_parameters_met": _measure("Days since full charge", "d", "duration",
                                                 precision=1, enabled=True,
                                                 icon="mdi:battery-clock"),
    "todays_net_input_kwh": _energy("Energy in today", "total_increasing", enabled=True,
                                    precision=2),
    "todays_net_output_kwh": _energy("Energy out today", "total_increasing", enabled=True,
                                     precision=2),
    "todays_net_input_ah": _charge("Charge in today", "total_increasing"),
    "todays_net_output_ah": _charge("Charge out today", "total_increasing"),
    # signed: negative on a day the battery gave more than it got
    "todays_net_battery_kwh": _energy("Battery net energy today", "total", precision=2),
    "todays_net_battery_ah": _charge("Battery net charge today", "total"),
    "charge_factor_corrected_net_battery_kwh": _energy(
        "Battery net energy (charge-factor corrected)", "total", precision=2),
    "charge_factor_corrected_net_battery_ah": _charge(
        "Battery net charge (charge-factor corrected)", "total"),
    "todays_minimum_soc": _record("Minimum state of charge today", "%", "battery"),
    "todays_maximum_soc": _record("Maximum state of charge today", "%", "battery"),
    "todays_minimum_battery_voltage": _record("Minimum battery voltage today", "V", "voltage",
                                              precision=1),
    "todays_maximum_battery_voltage": _record("Maximum battery voltage today", "V", "voltage",
                                              precision=1),
    "todays_minimum_battery_time": _info("Minimum battery voltage time (UTC)", icon=_CLOCK),
    "todays_maximum_battery_time": _info("Maximum battery voltage time (UTC)", icon=_CLOCK),
    "status_flags": _info("Status flags"),
    "cycle_charge_factor": _info("Cycle charge factor", "%", precision=0),
    "cycle_kwh_charge_efficiency": _info("Cycle charge efficiency", "%", precision=0),
    "total_days_at_100_percent": Entity("Days at full charge", "d", "duration",
                                        "total_increasing", _DIAG, False, 1,
                                        "mdi:battery-clock"),
    "lifetime_k_ah_removed": _charge("Lifetime charge removed", "total_increasing",
                                     unit="kAh", diagnostic=True),
}

for _leg in ("l1", "l2"):
    _L = _leg.upper()
    _hub[f"{_leg}_output_ac_voltage"] = _measure(f"{_L} AC output voltage", "V", "voltage",
                                                 precision=0, enabled=True)
    _hub[f"{_leg}_output_kwh"] = _energy(f"{_L} output energy today", "total_increasing",
                                         enabled=True)
    _hub[f"{_leg}_grid_input_ac_voltage"] = _measure(f"{_L} grid input voltage", "V",
                                                     "voltage", precision=0)
    _hub[f"{_leg}_gen_input_ac_voltage"] = _measure(f"{_L} generator input voltage", "V",
                                                    "voltage", precision=0)
    for _what, _label in (("output", "inverter output"), ("charge", "charger"),
                          ("buy", "buy"), ("sell", "sell")):
        _hub[f"{_leg}_inverter_{_what}_current"] = _measure(f"{_L} {_label} current", "A",
                                                            "current", precision=1)
    for _ac in ("ac1", "ac2"):
        for _deal, _done in (("buy", "bought"), ("sell", "sold")):
            _hub[f"{_ac}_{_leg}_{_deal}_kwh"] = _energy(
                f"{_ac.upper()} {_L} energy {_done} today", "total_increasing")
for _side, _where in (("l", "Left"), ("r", "Right")):
    for _part in ("transformer", "capacitor", "fet"):
        _shown = "FET" if _part == "fet" else _part
        _hub[f"{_side}_module_{_part}_temperature"] = _measure(
            f"{_where} module {_shown} temperature", "°C", "temperature", precision=0,
            diagnostic=True)
for _shunt in "abc":
    _S = f"Shunt {_shunt.upper()}"
    _hub[f"shunt_{_shunt}_current"] = _measure(f"{_S} current", "A", "current", precision=1,
                                               enabled=True)
    # accumulated since the last charge-parameters reset, signed: they go down
    _hub[f"shunt_{_shunt}_accumulated_kwh"] = _energy(f"{_S} net energy", "total",
                                                      precision=2)
    _hub[f"shunt_{_shunt}_accumulated_ah"] = _charge(f"{_S} net charge", "total")
    for _way, _label in (("returned_to", "returned to battery"),
                         ("removed_from", "removed from battery")):
        _hub[f"shunt_{_shunt}_historical_{_way}_battery_kwh"] = _energy(
            f"{_S} lifetime energy {_label}", "total_increasing", diagnostic=True,
            precision=2)
        _hub[f"shunt_{_shunt}_historical_{_way}_battery_ah"] = _charge(
            f"{_S} lifetime charge {_label}", "total_increasing", diagnostic=True)
    for _rate, _label in (("charge", "charge"), ("discharge", "discharge")):
        _hub[f"shunt_{_shunt}_maximum_{_rate}_rate"] = _record(
            f"{_S} maximum {_label} current", "A", "current", precision=1, diagnostic=True)
        _hub[f"shunt_{_shunt}_maximum_{_rate}_rate_kw"] = _record(
            f"{_S} maximum {_label} power", "kW", "power", precision=2, diagnostic=True)
    # the value a "reset maximum data" command must complement: a raw code
    _hub[f"shunt_{_shunt}_reset_maximum_data"] = _info(f"{_S} reset code")

# ------------------------------------------------------------------------------ safety net
# Every field of the map has an exact entry above. A field added to the map later (a newer
# OutBack spreadsheet) is matched by its suffix: the right unit and class, disabled, named by
# its key until it gets an entry of its own.
_BY_SUFFIX: Dict[Union[str, Pattern[str]], Entity] = {
    compile_key(r"\w+_kwh"): Entity("", "kWh", "energy", "total", _DIAG),
    compile_key(r"\w+_kw"): Entity("", "kW", "power", "measurement", _DIAG),
    compile_key(r"\w+_(?:voltage|volts)"): Entity("", "V", "voltage", "measurement", _DIAG),
    compile_key(r"\w+_current"): Entity("", "A", "current", "measurement", _DIAG),
    compile_key(r"(?:\w+_temperature|temp_\w+)"): Entity("", "°C", "temperature",
                                                         "measurement", _DIAG),
    compile_key(r"\w+_ah"): Entity("", "Ah", None, "total", _DIAG),
}

_shared = set(_mate3) & set(_hub)
if _shared:  # one key, one meaning: the Mate3s and a HUB device must not both claim a name
    raise ValueError(f"fields defined twice: {sorted(_shared)}")
_fields: Dict[Union[str, Pattern[str]], Entity] = {}
for _group in (_mate3, _hub, _BY_SUFFIX):
    _fields.update(_group.items())

TABLE = FieldTable("mate3", _fields, per_channel=True)
