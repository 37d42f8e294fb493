"""What the Victron fields mean: the family's semantic table (:data:`TABLE`).

The recorder's Victron adapter emits one reading per D-Bus path: channel = the service
(``com.victronenergy.battery.ttyO1``), field = the path (``/Dc/0/Voltage``). Each service is
a physical device of its own (a battery monitor, a solar charger, a grid meter), so the table
is ``per_channel``: one Home Assistant device per service, linked to the Venus device.

**Service type + path.** Venus paths are standard per service *type* (the first three parts
of the name, ``com.victronenergy.solarcharger``), and a few of them mean different things in
different types: ``/Mode`` is 1 = on / 4 = off on a solar charger, but 1 = charger only ... 4 =
off on a VE.Bus inverter/charger and 3 = on / 252 = standby on a battery. So the table has two
kinds of keys:

* a bare path (``"/Soc"``, or a pattern such as the one for every ``/Alarms/...`` path): what
  the path means on every service that has it. Where the meaning depends on the type, the
  bare entry is a neutral read-only sensor (the raw code, diagnostic) and never a control;
* a service type and a path (``"com.victronenergy.solarcharger/Mode"``): the meaning on that
  type, tried first.

:meth:`VictronFieldTable.lookup` and :meth:`~VictronFieldTable.entity` take the service as
``channel=`` (or the field written as service + path,
``"com.victronenergy.grid.cgwacs/Ac/Power"``, as D-Bus tools print it); without it they give
the bare meaning.

**Controls.** Every control calls the monitor's one setter,
:meth:`~pyburnerkit.victron.VictronMonitor.set_value` ``(service, path, value)``:
``Control(method="set_value", argument="path")`` means "pass the recorder channel as
``service``, the field as ``path`` and the command's value (``on``/``off`` of a switch, the
value a select's choice maps to) as ``value``". The monitor checks write gating
(``allow_writes``) and the limits the bus publishes for the path, and raises
:class:`~pyburnerkit.errors.ConfigurationError` before anything is sent when a value is
outside them. Venus limits live on the bus (localsettings' Min/Max, a charger's
``/MaxCurrent``), not in this library, so the table has no ``number`` controls: a number needs
fixed limits to show, and inventing them would disagree with the device. Only switches and
selects whose values are fixed by the Venus D-Bus API are controls; every control is
class-qualified (``controls()`` lists keys such as ``"com.victronenergy.vebus/Mode"``).
Switching an inverter, a charger, a relay or a generator changes what powers the installation,
so those controls are not ``safe``; starting/stopping an EV charger and choosing its mode are
everyday actions and are.

**Enumerations.** The bus carries codes (``/State`` = 3); an enum entity's ``options`` are
labels. :meth:`VictronFieldTable.label` turns a code into the label HA expects (None for a
code the table does not know). The D-Bus paths that describe a service's device (model,
serial number, firmware) are named in :data:`DEVICE_PATHS`.

Pure data: importing this module imports nothing from D-Bus.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Dict, Mapping, Optional, Pattern, Tuple, Union

from ..semantics import UNKNOWN, Control, Entity, FieldTable, compile_key

__all__ = ["TABLE", "VictronFieldTable", "DEVICE_PATHS", "service_class"]

_Key = Union[str, Pattern[str]]

NAMESPACE = "com.victronenergy"

#: The paths that describe a service's physical device, by Home Assistant device-block key.
DEVICE_PATHS: Mapping[str, str] = {
    "model": "/ProductName", "name": "/CustomName", "serial_number": "/Serial",
    "sw_version": "/FirmwareVersion", "hw_version": "/HardwareVersion",
}


def service_class(service: str) -> str:
    """The service type of a D-Bus name: its first three parts
    (``com.victronenergy.battery.ttyO1`` -> ``com.victronenergy.battery``)."""
    return ".".join(service.split(".")[:3])


def _split(field_name: str, channel: Optional[str]) -> Tuple[str, str]:
    """(service, path) of a field given as a path (plus the channel) or as service + path."""
    if field_name.startswith(NAMESPACE + ".") and "/" in field_name:
        at = field_name.index("/")
        return field_name[:at], field_name[at:]
    return channel or "", field_name


@dataclass(frozen=True)
class VictronFieldTable(FieldTable):
    """A :class:`~pyburnerkit.semantics.FieldTable` whose lookups also know the service type.

    :param codes: table key -> {code: label} of every enumeration (sensor or select), in the
        order of the entity's ``options``.
    """

    codes: Mapping[_Key, Mapping[int, str]] = field(default_factory=dict)

    def _resolve(self, field_name: str, channel: Optional[str]
                 ) -> Optional[Tuple[_Key, Entity]]:
        service, path = _split(field_name, channel)
        candidates = [service_class(service) + path] if service else []
        candidates.append(path)
        for key in candidates:
            found = self._exact.get(key)
            if found is not None:
                return key, found
            for pattern, entity in self._patterns:
                if pattern.fullmatch(key):
                    return pattern, entity
        return None

    def lookup(self, field_name: str, channel: Optional[str] = None) -> Optional[Entity]:
        """The entity of a path on the service ``channel`` (the service type's own meaning
        first, then the bare path's), or None when the table does not know it. Never blocks."""
        found = self._resolve(field_name, channel)
        return None if found is None else found[1]

    def entity(self, field_name: str, channel: Optional[str] = None) -> Entity:
        """As :meth:`lookup`, but an unknown path is a disabled diagnostic sensor, and an
        entry without a name (a pattern) is named by its path."""
        path = _split(field_name, channel)[1]
        found = self.lookup(field_name, channel)
        if found is None:
            return replace(UNKNOWN, name=path)
        return found if found.name else replace(found, name=path)

    def label(self, field_name: str, value: Any, channel: Optional[str] = None
              ) -> Optional[str]:
        """The label of an enumeration's code (``/State`` 3 on a solar charger -> ``"Bulk"``);
        None when the field is no enumeration or the code is unknown. Never blocks."""
        found = self._resolve(field_name, channel)
        if found is None or isinstance(value, bool):
            return None
        codes = self.codes.get(found[0])
        if codes is None:
            return None
        try:
            code = int(value)
        except (TypeError, ValueError):
            return None
        return codes.get(code) if code == value else None


# ---------------------------------------------------------------------------- builders
_FIELDS: Dict[_Key, Entity] = {}
_CODES: Dict[_Key, Mapping[int, str]] = {}


def _cls(kind: str, path: str) -> str:
    return f"{NAMESPACE}.{kind}{path}"


def _put(key: _Key, entity: Entity, codes: Optional[Mapping[int, str]] = None) -> None:
    if key in _FIELDS:
        raise ValueError(f"{key!r} is in the Victron table twice")
    _FIELDS[key] = entity
    if codes is not None:
        _CODES[key] = dict(codes)


def _volt(name: str, *, enabled: bool = False, precision: int = 2,
          state_class: Optional[str] = "measurement", category: Optional[str] = None) -> Entity:
    return Entity(name, "V", "voltage", state_class, category=category, enabled=enabled,
                  precision=precision)


def _amp(name: str, *, enabled: bool = False, precision: int = 1,
         state_class: Optional[str] = "measurement", category: Optional[str] = None) -> Entity:
    return Entity(name, "A", "current", state_class, category=category, enabled=enabled,
                  precision=precision)


def _watt(name: str, *, enabled: bool = False, state_class: Optional[str] = "measurement",
          category: Optional[str] = None) -> Entity:
    return Entity(name, "W", "power", state_class, category=category, enabled=enabled,
                  precision=0)


def _kwh(name: str, *, enabled: bool = False,
         state_class: Optional[str] = "total_increasing") -> Entity:
    return Entity(name, "kWh", "energy", state_class, enabled=enabled, precision=2)


def _celsius(name: str, *, enabled: bool = False, category: Optional[str] = None) -> Entity:
    return Entity(name, "°C", "temperature", "measurement", category=category,
                  enabled=enabled, precision=1)


def _hertz(name: str) -> Entity:
    return Entity(name, "Hz", "frequency", "measurement", precision=2)


def _amp_hours(name: str, *, enabled: bool = False,
               state_class: Optional[str] = "measurement") -> Entity:
    # HA has no device class for charge (Ah)
    return Entity(name, "Ah", None, state_class, enabled=enabled, precision=1,
                  icon="mdi:battery-minus")


def _count(name: str, icon: str = "mdi:counter") -> Entity:
    return Entity(name, "", None, "total_increasing", icon=icon)


def _info(name: str, icon: Optional[str] = None) -> Entity:
    """A text or a raw code about the device: diagnostic, no state class, off by default."""
    return Entity(name, category="diagnostic", icon=icon)


def _binary(name: str, device_class: Optional[str] = None, *,
            category: Optional[str] = None, enabled: bool = False) -> Entity:
    return Entity(name, device_class=device_class, category=category, enabled=enabled,
                  kind="binary_sensor")


def _enum(key: _Key, name: str, codes: Mapping[int, str], *, enabled: bool = False,
          category: Optional[str] = None, icon: Optional[str] = None) -> None:
    _put(key, Entity(name, device_class="enum", category=category, enabled=enabled,
                     icon=icon, options=tuple(codes.values())), codes)


def _switch(key: str, name: str, on: int, off: int, *, safe: bool, enabled: bool = False,
            category: Optional[str] = None, icon: Optional[str] = None) -> None:
    _put(key, Entity(name, category=category, enabled=enabled, icon=icon, kind="switch",
                     control=Control("set_value", argument="path", on=on, off=off,
                                     safe=safe)))


def _select(key: str, name: str, choices: Mapping[str, int], *, safe: bool,
            enabled: bool = False, icon: Optional[str] = None) -> None:
    _put(key, Entity(name, enabled=enabled, icon=icon, kind="select",
                     options=tuple(choices),
                     control=Control("set_value", argument="path", choices=dict(choices),
                                     safe=safe)),
         {value: label for label, value in choices.items()})


PHASES = ("L1", "L2", "L3")

# Code tables of the Venus D-Bus API (victronenergy/dbus_modbustcp attributes.csv, the
# VE.Direct protocol for the solar charger's start-up and auto-equalize states).
ALARM = {0: "OK", 1: "Warning", 2: "Alarm"}
SOLAR_STATES = {0: "Off", 2: "Fault", 3: "Bulk", 4: "Absorption", 5: "Float", 6: "Storage",
                7: "Equalize", 11: "Other (Hub-1)", 245: "Starting up",
                247: "Auto equalize", 252: "External control"}
CHARGER_STATES = {0: "Off", 1: "Low power", 2: "Fault", 3: "Bulk", 4: "Absorption",
                  5: "Float", 6: "Storage", 7: "Equalize", 8: "Passthru", 9: "Inverting",
                  10: "Power assist", 11: "Power supply", 244: "Sustain",
                  252: "External control"}
VEBUS_MODES = {"Charger only": 1, "Inverter only": 2, "On": 3, "Off": 4}
EV_MODES = {"Manual": 0, "Auto": 1, "Scheduled": 2}
EV_STATUS = {0: "Disconnected", 1: "Connected", 2: "Charging", 3: "Charged",
             4: "Waiting for sun", 5: "Waiting for RFID", 6: "Waiting for start",
             7: "Low SOC", 8: "Ground test error", 9: "Welded contacts error",
             10: "CP input test error", 11: "Residual current detected",
             12: "Undervoltage detected", 13: "Overvoltage detected",
             14: "Overheating detected", 20: "Charging limit", 21: "Start charging",
             22: "Switching to 3 phase", 23: "Switching to 1 phase", 24: "Stop charging"}
SENSOR_STATUS = {0: "OK", 1: "Open circuit", 2: "Short circuited", 3: "Reverse polarity",
                 4: "Unknown"}

# ------------------------------------------------------------------ every service: identity
_put("/Mgmt/ProcessName", _info("Process name"))
_put("/Mgmt/ProcessVersion", _info("Process version"))
_put("/Mgmt/Connection", _info("Connection", "mdi:connection"))
_put("/DeviceInstance", _info("Device instance"))
_put("/ProductId", _info("Product ID"))
_put("/ProductName", _info("Product name"))
_put("/FirmwareVersion", _info("Firmware version", "mdi:chip"))
_put("/HardwareVersion", _info("Hardware version"))
_put("/Serial", _info("Serial number"))
_put("/CustomName", _info("Custom name"))
_put("/Connected", _binary("Connected", "connectivity", category="diagnostic"))
# codes whose meaning depends on the service type: the type's own entry says more
_put("/ErrorCode", _info("Error code", "mdi:alert-circle-outline"))
_put("/State", _info("State code", "mdi:state-machine"))
_put("/Mode", _info("Mode code"))
_put("/Status", _info("Status code"))
_put("/Capacity", _info("Capacity"))
_put("/Position", _info("Position code"))

# ---------------------------------------------------------------------- DC side, batteries
# /Dc/0 is the battery side of every service that has it (monitor, chargers, inverters)
_put("/Dc/0/Voltage", _volt("Battery voltage", enabled=True))
_put("/Dc/0/Current", _amp("DC current", enabled=True))
_put("/Dc/0/Power", _watt("DC power", enabled=True))
_put("/Dc/0/Temperature", _celsius("Battery temperature", enabled=True))
_put("/Dc/0/MidVoltage", _volt("Mid-point voltage"))
_put("/Dc/0/MidVoltageDeviation", Entity("Mid-point deviation", "%", None, "measurement",
                                         precision=1, icon="mdi:scale-unbalanced"))
_put("/Soc", Entity("State of charge", "%", "battery", "measurement", enabled=True,
                    precision=1))
_put("/Soh", Entity("State of health", "%", None, "measurement", precision=0,
                    icon="mdi:heart-pulse"))
# Ah drawn since full: negative, back to 0 when full, so "measurement" (not a counter)
_put("/ConsumedAmphours", _amp_hours("Consumed amp-hours", enabled=True))
_put("/TimeToGo", Entity("Time to go", "s", "duration", "measurement", enabled=True,
                         precision=0))
_put("/InstalledCapacity", Entity("Installed capacity", "Ah", category="diagnostic",
                                  precision=0, icon="mdi:battery"))
_put("/Relay/0/State", _binary("Relay"))
for _info_path, _info_name, _make in (
        ("/Info/MaxChargeVoltage", "Charge voltage limit", _volt),
        ("/Info/BatteryLowVoltage", "Battery low voltage", _volt),
        ("/Info/MaxChargeCurrent", "Charge current limit", _amp),
        ("/Info/MaxDischargeCurrent", "Discharge current limit", _amp)):
    # limits a BMS asks for: values it sets, not measurements
    _put(_info_path, _make(_info_name, state_class=None, category="diagnostic"))
_put("/System/MinCellVoltage", _volt("Lowest cell voltage", precision=3))
_put("/System/MaxCellVoltage", _volt("Highest cell voltage", precision=3))
_put("/System/MinCellTemperature", _celsius("Lowest cell temperature"))
_put("/System/MaxCellTemperature", _celsius("Highest cell temperature"))

# battery monitor history: energy counters feed HA's energy dashboard (battery in/out)
_put("/History/ChargedEnergy", _kwh("Charged energy", enabled=True))
_put("/History/DischargedEnergy", _kwh("Discharged energy", enabled=True))
_put("/History/ChargeCycles", _count("Charge cycles", "mdi:battery-sync"))
_put("/History/FullDischarges", _count("Full discharges"))
_put("/History/AutomaticSyncs", _count("Automatic synchronisations"))
_put("/History/LowVoltageAlarms", _count("Low voltage alarms", "mdi:alert"))
_put("/History/HighVoltageAlarms", _count("High voltage alarms", "mdi:alert"))
# cumulative Ah drawn is negative and grows in magnitude: "total", never "total_increasing"
_put("/History/TotalAhDrawn", _amp_hours("Total Ah drawn", state_class="total"))
for _rec_path, _rec_name in (("DeepestDischarge", "Deepest discharge"),
                             ("LastDischarge", "Last discharge"),
                             ("AverageDischarge", "Average discharge")):
    # records, not measurements: no long-term statistics
    _put(f"/History/{_rec_path}", _amp_hours(_rec_name, state_class=None))
_put("/History/MinimumVoltage", _volt("Lowest battery voltage", state_class=None))
_put("/History/MaximumVoltage", _volt("Highest battery voltage", state_class=None))
_put("/History/MinimumStarterVoltage", _volt("Lowest starter voltage", state_class=None))
_put("/History/MaximumStarterVoltage", _volt("Highest starter voltage", state_class=None))
_put("/History/TimeSinceLastFullCharge", Entity("Time since last full charge", "s",
                                                "duration", "measurement", precision=0))

_put(_cls("battery", "/Dc/0/Current"), _amp("Battery current", enabled=True))
_put(_cls("battery", "/Dc/0/Power"), _watt("Battery power", enabled=True))
_put(_cls("battery", "/Dc/1/Voltage"), _volt("Starter battery voltage", enabled=True))
_put(_cls("battery", "/Capacity"), _amp_hours("Capacity"))
_enum(_cls("battery", "/Mode"), "Mode", {3: "On", 252: "Standby"}, category="diagnostic")

# alarms: 0 ok, 1 warning, 2 alarm on every service that has them
for _alarm, _alarm_name in (
        ("Alarm", "Alarm"), ("LowVoltage", "Low voltage alarm"),
        ("HighVoltage", "High voltage alarm"), ("LowSoc", "Low state of charge alarm"),
        ("LowStarterVoltage", "Low starter voltage alarm"),
        ("HighStarterVoltage", "High starter voltage alarm"),
        ("LowTemperature", "Low temperature alarm"),
        ("HighTemperature", "High temperature alarm"), ("MidVoltage", "Mid-point alarm"),
        ("HighChargeCurrent", "High charge current alarm"),
        ("HighDischargeCurrent", "High discharge current alarm"),
        ("CellImbalance", "Cell imbalance alarm"), ("InternalFailure", "Internal failure"),
        ("HighChargeTemperature", "High charge temperature alarm"),
        ("LowChargeTemperature", "Low charge temperature alarm"),
        ("LowCellVoltage", "Low cell voltage alarm"), ("LowBattery", "Low battery alarm"),
        ("Overload", "Overload alarm"), ("Ripple", "Ripple alarm"),
        ("GridLost", "Grid lost alarm")):
    _enum(f"/Alarms/{_alarm}", _alarm_name, ALARM, icon="mdi:alert")

# ------------------------------------------------------------------------- solar chargers
_put("/Pv/V", _volt("PV voltage", enabled=True, precision=1))
_put("/Pv/I", _amp("PV current"))
_put("/Yield/Power", _watt("PV power", enabled=True))
# user yield is resettable by the user: HA's total_increasing reads a drop as a new cycle
_put("/Yield/User", _kwh("User yield", enabled=True))
_put("/Yield/System", _kwh("System yield"))
# today's yield restarts at 0 every day, which total_increasing handles the same way
_put("/History/Daily/0/Yield", _kwh("Yield today", enabled=True))
_put("/History/Daily/0/MaxPower", _watt("Maximum PV power today", state_class=None))
_put("/History/Daily/1/Yield", _kwh("Yield yesterday", state_class=None))
_put("/History/Daily/1/MaxPower", _watt("Maximum PV power yesterday", state_class=None))
_enum("/MppOperationMode", "MPPT mode",
      {0: "Off", 1: "Voltage/current limited", 2: "MPPT active", 255: "Not available"},
      category="diagnostic")
_put("/Load/State", _binary("Load output", "power"))
_put("/Load/I", _amp("Load current"))

_switch(_cls("solarcharger", "/Mode"), "Charger", on=1, off=4, safe=False, enabled=True,
        icon="mdi:solar-power")
_enum(_cls("solarcharger", "/State"), "Charger state", SOLAR_STATES, enabled=True,
      icon="mdi:battery-charging")
_put(_cls("solarcharger", "/Dc/0/Current"), _amp("Charge current", enabled=True))

# -------------------------------------------------------------- AC chargers and inverters
_enum(_cls("charger", "/State"), "Charger state", CHARGER_STATES, enabled=True,
      icon="mdi:battery-charging")
_enum(_cls("charger", "/Mode"), "Mode", {0: "Off", 1: "On", 2: "Error", 3: "Unavailable"},
      category="diagnostic")
_put(_cls("charger", "/Dc/0/Current"), _amp("Charge current", enabled=True))
_put("/Ac/In/L1/I", _amp("AC input current"))
_put("/Ac/In/L1/P", _watt("AC input power"))
_enum(_cls("inverter", "/State"), "Inverter state", CHARGER_STATES, enabled=True,
      icon="mdi:state-machine")

# VE.Bus inverter/chargers (Multi, Quattro)
_select(_cls("vebus", "/Mode"), "Mode", VEBUS_MODES, safe=False, enabled=True,
        icon="mdi:power-settings")
_enum(_cls("vebus", "/State"), "State", CHARGER_STATES, enabled=True,
      icon="mdi:state-machine")
_put(_cls("vebus", "/Soc"), Entity("VE.Bus state of charge", "%", "battery", "measurement",
                                   precision=1))
_put("/Ac/ActiveIn/P", _watt("Input power", enabled=True))
_put("/Ac/Out/P", _watt("Output power", enabled=True))
_enum("/Ac/ActiveIn/ActiveInput", "Active input",
      {0: "AC input 1", 1: "AC input 2", 240: "Disconnected"}, enabled=True,
      icon="mdi:transmission-tower")
_put("/Ac/ActiveIn/Connected", _binary("Input connected", "plug"))
# a setting read back; its limits come from the device, so it is no number control here
_put("/Ac/ActiveIn/CurrentLimit", _amp("Input current limit", state_class=None,
                                       category="diagnostic"))
_put("/Ac/NumberOfPhases", _info("Number of phases"))
for _ph in PHASES:
    for _side, _label in (("ActiveIn", "Input"), ("Out", "Output")):
        _put(f"/Ac/{_side}/{_ph}/P", _watt(f"{_label} {_ph} power", enabled=True))
        _put(f"/Ac/{_side}/{_ph}/V", _volt(f"{_label} {_ph} voltage", precision=1))
        _put(f"/Ac/{_side}/{_ph}/I", _amp(f"{_label} {_ph} current"))
        _put(f"/Ac/{_side}/{_ph}/F", _hertz(f"{_label} {_ph} frequency"))
for _bms, _bms_name in (("AllowToCharge", "BMS allows charging"),
                        ("AllowToDischarge", "BMS allows discharging"),
                        ("BmsExpected", "BMS expected"), ("Error", "BMS error")):
    _put(f"/Bms/{_bms}", _binary(_bms_name, "problem" if _bms == "Error" else None,
                                 category="diagnostic"))

# ------------------------------------------- AC meters: grid, loads, PV inverters, gensets
_put("/Ac/Power", _watt("Power", enabled=True))
_put("/Ac/Energy/Forward", _kwh("Forward energy", enabled=True))
_put("/Ac/Energy/Reverse", _kwh("Reverse energy", enabled=True))
_put("/Ac/Frequency", _hertz("Frequency"))
_put("/Ac/PowerFactor", Entity("Power factor", "", "power_factor", "measurement",
                               precision=2))
for _ph in PHASES:
    _put(f"/Ac/{_ph}/Power", _watt(f"{_ph} power", enabled=True))
    _put(f"/Ac/{_ph}/Voltage", _volt(f"{_ph} voltage", enabled=True, precision=1))
    _put(f"/Ac/{_ph}/Current", _amp(f"{_ph} current", enabled=True))
    _put(f"/Ac/{_ph}/Energy/Forward", _kwh(f"{_ph} forward energy"))
    _put(f"/Ac/{_ph}/Energy/Reverse", _kwh(f"{_ph} reverse energy"))
    _put(f"/Ac/{_ph}/PowerFactor", Entity(f"{_ph} power factor", "", "power_factor",
                                          "measurement", precision=2))
# names that say which way the energy flows on each kind of meter
for _kind, _power, _fwd, _rev in (
        ("grid", "Grid power", "Energy imported", "Energy exported"),
        ("acload", "Load power", "Energy consumed", None),
        ("pvinverter", "PV power", "Energy produced", None),
        ("genset", "Generator power", "Energy produced", None),
        ("evcharger", "Charging power", "Energy charged", None)):
    _put(_cls(_kind, "/Ac/Power"), _watt(_power, enabled=True))
    _put(_cls(_kind, "/Ac/Energy/Forward"), _kwh(_fwd, enabled=True))
    if _rev is not None:
        _put(_cls(_kind, "/Ac/Energy/Reverse"), _kwh(_rev, enabled=True))
_enum(_cls("pvinverter", "/Position"), "Position",
      {0: "AC input 1", 1: "AC output", 2: "AC input 2"}, category="diagnostic")
_put(_cls("pvinverter", "/Ac/MaxPower"), _watt("Maximum power", state_class=None,
                                               category="diagnostic"))
_put(_cls("pvinverter", "/Ac/PowerLimit"), _watt("Power limit", state_class=None,
                                                  category="diagnostic"))

# ---------------------------------------------------------------------------- EV chargers
_switch(_cls("evcharger", "/StartStop"), "Charging", on=1, off=0, safe=True, enabled=True,
        icon="mdi:ev-station")
_select(_cls("evcharger", "/Mode"), "Charge mode", EV_MODES, safe=True, enabled=True,
        icon="mdi:ev-station")
_enum(_cls("evcharger", "/Status"), "Status", EV_STATUS, enabled=True, icon="mdi:ev-plug-type2")
_put(_cls("evcharger", "/Current"), _amp("Charging current", enabled=True))
_put(_cls("evcharger", "/SetCurrent"), _amp("Current setpoint", state_class=None,
                                            category="diagnostic"))
_put(_cls("evcharger", "/MaxCurrent"), _amp("Maximum current", state_class=None,
                                            category="diagnostic"))
# restarts at 0 with every session: total_increasing reads that as a new cycle
_put(_cls("evcharger", "/Session/Energy"), _kwh("Session energy", enabled=True))
_put(_cls("evcharger", "/ChargingTime"), Entity("Charging time", "s", "duration",
                                                "measurement", precision=0))
_enum(_cls("evcharger", "/Position"), "Position",
      {0: "AC input 1", 1: "AC output", 2: "AC input 2"}, category="diagnostic")

# ------------------------------------------------------- the system overview (GX device)
_put("/Dc/Battery/Voltage", _volt("Battery voltage", enabled=True))
_put("/Dc/Battery/Current", _amp("Battery current"))
_put("/Dc/Battery/Power", _watt("Battery power", enabled=True))
_put("/Dc/Battery/Soc", Entity("Battery state of charge", "%", "battery", "measurement",
                               enabled=True, precision=1))
_put("/Dc/Battery/Temperature", _celsius("Battery temperature"))
_put("/Dc/Battery/ConsumedAmphours", _amp_hours("Consumed amp-hours"))
_put("/Dc/Battery/TimeToGo", Entity("Time to go", "s", "duration", "measurement",
                                    precision=0))
_enum("/Dc/Battery/State", "Battery state", {0: "Idle", 1: "Charging", 2: "Discharging"},
      enabled=True, icon="mdi:battery-sync")
_put("/Dc/Pv/Power", _watt("DC PV power", enabled=True))
_put("/Dc/Pv/Current", _amp("DC PV current"))
_put("/Dc/System/Power", _watt("DC system power"))
_put("/Dc/Charger/Power", _watt("DC charger power"))
_put("/Dc/Vebus/Power", _watt("Inverter/charger DC power"))
_put("/Dc/Vebus/Current", _amp("Inverter/charger DC current"))
_enum("/Ac/ActiveIn/Source", "Active input source",
      {0: "Not available", 1: "Grid", 2: "Generator", 3: "Shore power", 240: "Not connected"},
      enabled=True, icon="mdi:transmission-tower")
_put("/SystemState/State", _info("System state code", "mdi:state-machine"))
for _ph in PHASES:
    _put(f"/Ac/Consumption/{_ph}/Power", _watt(f"Consumption {_ph}", enabled=True))
    _put(f"/Ac/Grid/{_ph}/Power", _watt(f"Grid {_ph}", enabled=True))
    _put(f"/Ac/Genset/{_ph}/Power", _watt(f"Generator {_ph}"))
    _put(f"/Ac/PvOnGrid/{_ph}/Power", _watt(f"PV on input {_ph}"))
    _put(f"/Ac/PvOnOutput/{_ph}/Power", _watt(f"PV on output {_ph}"))
    _put(f"/Ac/PvOnGenset/{_ph}/Power", _watt(f"PV on generator {_ph}"))
    _put(f"/Ac/ConsumptionOnInput/{_ph}/Power", _watt(f"Consumption on input {_ph}"))
    _put(f"/Ac/ConsumptionOnOutput/{_ph}/Power", _watt(f"Consumption on output {_ph}"))
for _relay in ("0", "1"):
    # only in the relay's "manual" function does Venus accept the write
    _switch(_cls("system", f"/Relay/{_relay}/State"), f"Relay {int(_relay) + 1}", on=1, off=0,
            safe=False, icon="mdi:electric-switch")

# ------------------------------------------------------------- tanks and sensors
_put("/Level", Entity("Level", "%", None, "measurement", enabled=True, precision=0,
                      icon="mdi:gauge"))
_put("/Remaining", Entity("Remaining", "m³", "volume_storage", "measurement", enabled=True,
                          precision=3))
_put(_cls("tank", "/Capacity"), Entity("Capacity", "m³", "volume_storage",
                                       category="diagnostic", precision=3))
_enum(_cls("tank", "/FluidType"), "Fluid type",
      {0: "Fuel", 1: "Fresh water", 2: "Waste water", 3: "Live well", 4: "Oil",
       5: "Black water", 6: "Gasoline", 7: "Diesel", 8: "LPG", 9: "LNG",
       10: "Hydraulic oil", 11: "Raw water"}, category="diagnostic")
_enum(_cls("tank", "/Status"), "Sensor status", SENSOR_STATUS, category="diagnostic")
_put("/Temperature", _celsius("Temperature", enabled=True))
_put("/Humidity", Entity("Humidity", "%", "humidity", "measurement", enabled=True,
                         precision=0))
_put("/Pressure", Entity("Pressure", "hPa", "atmospheric_pressure", "measurement",
                         enabled=True, precision=0))
_put("/CO2", Entity("CO2", "ppm", "carbon_dioxide", "measurement", enabled=True,
                    precision=0))
_put("/BatteryVoltage", _volt("Sensor battery", category="diagnostic"))
_enum(_cls("temperature", "/TemperatureType"), "Sensor type",
      {0: "Battery", 1: "Fridge", 2: "Generic", 3: "Room", 4: "Outdoor", 5: "Water heater",
       6: "Freezer"}, category="diagnostic")
_enum(_cls("temperature", "/Status"), "Sensor status", SENSOR_STATUS, category="diagnostic")

# ------------------------------------------------------- generator start/stop service
_enum(_cls("generator", "/State"), "Generator state",
      {0: "Stopped", 1: "Running", 2: "Warm-up", 3: "Cool-down", 4: "Stopping", 10: "Error"},
      enabled=True, icon="mdi:engine")
_switch(_cls("generator", "/ManualStart"), "Manual start", on=1, off=0, safe=False,
        enabled=True, icon="mdi:engine")
_switch(_cls("generator", "/AutoStartEnabled"), "Autostart", on=1, off=0, safe=False,
        category="config", icon="mdi:engine-outline")
_put(_cls("generator", "/Runtime"), Entity("Run time", "s", "duration", "measurement",
                                           enabled=True, precision=0))

# -------------------------------------------------------------------- fallbacks (patterns)
# localsettings' values are settings read back: never a state class, and HA refuses the
# "config" category on read-only sensors, so they are diagnostic
_put(compile_key(r"/Settings/.+"), _info(""))
_put(compile_key(r"/Alarms/(\w+/)*\w+"), Entity("", device_class="enum", options=tuple(
    ALARM.values()), icon="mdi:alert"), ALARM)
_put(compile_key(r"/History/.+"), Entity(""))
_put(compile_key(r"/Hub4/.+"), _info(""))
_put(compile_key(r"/Energy/\w+"), _kwh(""))
# the units the adapter reads off a path's last part, for paths named nowhere above
_put(compile_key(r"(/\w+)*/(Voltage|V)"), _volt(""))
_put(compile_key(r"(/\w+)*/(Current|I)"), _amp(""))
_put(compile_key(r"(/\w+)*/(Power|P)"), _watt(""))
_put(compile_key(r"(/\w+)*/Temperature"), _celsius(""))
_put(compile_key(r"(/\w+)*/(Frequency|F)"), _hertz(""))
_put(compile_key(r"(/\w+)*/Energy/(Forward|Reverse)"), _kwh(""))
_put(compile_key(r"(/\w+)*/ConsumedAmphours"), _amp_hours(""))
_put(compile_key(r"(/\w+)*/TimeToGo"), Entity("", "s", "duration", "measurement",
                                             precision=0))
_put(compile_key(r"(/\w+)*/Soc"), Entity("", "%", "battery", "measurement", precision=1))

#: The Victron table: one HA device per D-Bus service (``per_channel``).
TABLE = VictronFieldTable("victron", _FIELDS, per_channel=True, codes=_CODES)

del _ph, _side, _label, _kind, _power, _fwd, _rev, _relay, _bms, _bms_name, _alarm, \
    _alarm_name, _rec_path, _rec_name, _info_path, _info_name, _make
