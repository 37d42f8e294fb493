"""The Victron semantic table against the real simulator, the recorder adapter and the monitor.

Everything runs on the simulator's private dbus-daemon: the demo services, plus (where a test
says so) more services exported with ``VictronSim.add_service`` so that a fuller installation
(a three-phase Multi, the system overview, a tank, a sensor, an EV charger, a generator) is on
the bus. Fields are collected through :class:`VictronSource`, as the recorder gets them.
"""

from __future__ import annotations

import inspect
import threading
from typing import Any, Dict, Iterator, List, Optional, Set, Tuple

import pytest

from pyburnerkit import families
from pyburnerkit.errors import ConfigurationError, WriteNotAllowedError
from pyburnerkit.recorder.adapters.victron import VictronSource
from pyburnerkit.semantics import Entity
from pyburnerkit.victron import Setting, VictronMonitor
from pyburnerkit.victron.semantics import DEVICE_PATHS, TABLE, service_class
from pyburnerkit.victron.sim import VictronSim

SETTINGS = "com.victronenergy.settings"
VEBUS = "com.victronenergy.vebus.ttyS3"
SYSTEM = "com.victronenergy.system"
GRID3 = "com.victronenergy.grid.cgwacs_ttyUSB0_di31_mb1"
TANK = "com.victronenergy.tank.adc_builtin0_3"
SENSOR = "com.victronenergy.temperature.ruuvi_c0ffee"
EV = "com.victronenergy.evcharger.evcs_192_168_1_9"
GENERATOR = "com.victronenergy.generator.startstop0"

Reading = Tuple[Any, str]


def _identity(instance: int, product: str) -> Dict[str, Any]:
    return {"/Mgmt/ProcessName": "test", "/Mgmt/ProcessVersion": "1.0",
            "/Mgmt/Connection": "test", "/DeviceInstance": instance, "/ProductId": 0xA3F0,
            "/ProductName": product, "/FirmwareVersion": 0x0510, "/HardwareVersion": 0,
            "/Connected": 1, "/CustomName": "", "/Serial": f"HQ{instance:08d}"}


def _phases(paths: Dict[str, Any], template: str, value: Any) -> None:
    for phase in ("L1", "L2", "L3"):
        paths[template.format(phase)] = value


def _fuller_installation() -> List[Tuple[str, Dict[str, Any], Tuple[str, ...]]]:
    """(service, values, writable paths) of the services a real GX device shows, with the
    paths the Venus D-Bus API gives them."""
    vebus = _identity(276, "MultiPlus-II 48/5000/70-50")
    vebus.update({"/Mode": 3, "/State": 9, "/Dc/0/Voltage": 52.6, "/Dc/0/Current": -12.5,
                  "/Dc/0/Temperature": 24.0, "/Soc": 81.0, "/Ac/ActiveIn/P": 0.0,
                  "/Ac/Out/P": 900.0, "/Ac/ActiveIn/ActiveInput": 240,
                  "/Ac/ActiveIn/Connected": 0, "/Ac/ActiveIn/CurrentLimit": 16.0,
                  "/Ac/NumberOfPhases": 3, "/Alarms/LowBattery": 0, "/Alarms/Overload": 1,
                  "/Alarms/L1/Overload": 0, "/Bms/AllowToCharge": 1,
                  "/Energy/InverterToAcOut": 12.5, "/Hub4/L1/AcPowerSetpoint": 0.0})
    for side in ("ActiveIn", "Out"):
        _phases(vebus, f"/Ac/{side}/{{}}/V", 230.0)
        _phases(vebus, f"/Ac/{side}/{{}}/I", 1.3)
        _phases(vebus, f"/Ac/{side}/{{}}/P", 300.0)
        _phases(vebus, f"/Ac/{side}/{{}}/F", 50.0)
    system = _identity(0, "Cerbo GX")
    system.update({"/Dc/Battery/Voltage": 52.6, "/Dc/Battery/Current": -12.5,
                   "/Dc/Battery/Power": -657.0, "/Dc/Battery/Soc": 81.0,
                   "/Dc/Battery/State": 2, "/Dc/Battery/ConsumedAmphours": -20.0,
                   "/Dc/Battery/TimeToGo": 36000.0, "/Dc/Pv/Power": 400.0,
                   "/Dc/System/Power": 35.0, "/Ac/ActiveIn/Source": 240,
                   "/Ac/PvOnGrid/L1/Power": 0.0, "/Relay/0/State": 0, "/SystemState/State": 9})
    _phases(system, "/Ac/Consumption/{}/Power", 300.0)
    _phases(system, "/Ac/Grid/{}/Power", 0.0)
    grid = _identity(31, "Energy Meter ET340")
    grid.update({"/Ac/Power": 1200.0, "/Ac/Energy/Forward": 3021.5,
                 "/Ac/Energy/Reverse": 410.25, "/Ac/Frequency": 50.01, "/Ac/PowerFactor": 0.97})
    _phases(grid, "/Ac/{}/Power", 400.0)
    _phases(grid, "/Ac/{}/Voltage", 231.0)
    _phases(grid, "/Ac/{}/Current", 1.8)
    _phases(grid, "/Ac/{}/Energy/Forward", 1007.0)
    _phases(grid, "/Ac/{}/Energy/Reverse", 136.75)
    tank = _identity(20, "Tank sensor")
    tank.update({"/Level": 64.0, "/Remaining": 0.128, "/Capacity": 0.2, "/FluidType": 1,
                 "/Status": 0})
    sensor = _identity(24, "RuuviTag")
    sensor.update({"/Temperature": 19.5, "/Humidity": 48.0, "/Pressure": 1012.0,
                   "/BatteryVoltage": 2.9, "/TemperatureType": 3, "/Status": 0})
    ev = _identity(40, "EV Charging Station")
    ev.update({"/StartStop": 0, "/Mode": 0, "/Status": 1, "/Ac/Power": 0.0,
               "/Ac/L1/Power": 0.0, "/Current": 0.0, "/SetCurrent": 16.0, "/MaxCurrent": 32.0,
               "/Session/Energy": 0.0, "/ChargingTime": 0, "/Ac/Energy/Forward": 812.0,
               "/Position": 1})
    generator = _identity(0, "Generator start/stop")
    generator.update({"/State": 0, "/ManualStart": 0, "/AutoStartEnabled": 1, "/Runtime": 0})
    return [(VEBUS, vebus, ("/Mode",)), (SYSTEM, system, ("/Relay/0/State",)),
            (GRID3, grid, ()), (TANK, tank, ()), (SENSOR, sensor, ()),
            (EV, ev, ("/StartStop", "/Mode")),
            (GENERATOR, generator, ("/ManualStart", "/AutoStartEnabled"))]


def _on_bus(sim: VictronSim) -> Set[Tuple[str, str]]:
    """(service, path) of every valid value the simulator's services export."""
    return sim.run_on_thread(lambda: {(name, path) for name, svc in sim.services.items()
                                      for path, value in svc.values.items()
                                      if value is not None})


class _Collector:
    """The recorder's side of a source: keeps the last (value, unit) per (channel, field)
    and wakes a waiter once every expected pair arrived."""

    def __init__(self, expected: Set[Tuple[str, str]]) -> None:
        self.expected = set(expected)
        self.got: Dict[Tuple[str, str], Reading] = {}
        self._lock = threading.Lock()
        self._done = threading.Event()
        self._want: Optional[Tuple[str, str, Any]] = None
        self._wanted = threading.Event()

    def emit(self, source: Any, readings: List[Tuple[Any, ...]]) -> None:
        with self._lock:
            for channel, field, value, unit, *_ in readings:
                self.got[(channel, field)] = (value, unit)
                if self._want == (channel, field, value):
                    self._wanted.set()
            if self.expected <= self.got.keys():
                self._done.set()

    def wait_all(self, timeout: float = 10.0) -> Dict[Tuple[str, str], Reading]:
        ok = self._done.wait(timeout)
        with self._lock:
            missing = self.expected - self.got.keys()
            assert ok, f"never emitted: {sorted(missing)}"
            return dict(self.got)

    def expect(self, channel: str, field: str, value: Any) -> None:
        with self._lock:
            self._want = (channel, field, value)
            self._wanted.clear()

    def wait_expected(self, timeout: float = 10.0) -> bool:
        return self._wanted.wait(timeout)


@pytest.fixture
def fuller(sim: VictronSim) -> VictronSim:
    for name, values, writable in _fuller_installation():
        sim.add_service(name, values, writable)
    return sim


def _monitor(sim: VictronSim, errors: List[BaseException], **kw: Any) -> VictronMonitor:
    """A monitor connected after every service is on the bus (the adapter emits a service's
    values at start only for services the monitor already scanned)."""
    mon = VictronMonitor(sim.address, timeout=5.0, on_callback_error=lambda e, ev:
                         errors.append(e), **kw)
    mon.connect()
    return mon


@pytest.fixture
def recorded(fuller: VictronSim, callback_errors: List[BaseException]
             ) -> Iterator[Dict[Tuple[str, str], Reading]]:
    """Every (service, path) -> (value, unit) the adapter emits for the fuller installation."""
    mon = _monitor(fuller, callback_errors)
    collector = _Collector(_on_bus(fuller))
    source = VictronSource(mon, device="venus")
    source.start(collector.emit, lambda *args: None)
    try:
        yield collector.wait_all()
    finally:
        source.stop()
        mon.close()


# ------------------------------------------------------------------------------- coverage
def test_the_registry_names_this_table_and_every_service_is_a_device() -> None:
    assert families.get("victron").load("fields") is TABLE
    assert TABLE.family == "victron"
    # the adapter emits channel = the D-Bus service: each one is its own HA device
    assert TABLE.per_channel is True
    assert set(DEVICE_PATHS.values()) <= set(TABLE.names())


def test_every_field_the_adapter_emits_is_known_with_the_adapter_unit(
        sim: VictronSim, monitor: VictronMonitor) -> None:
    expected = _on_bus(sim)
    assert (VictronSim.BATTERY, "/Dc/0/Voltage") in expected  # else the test proves nothing
    collector = _Collector(expected)
    source = VictronSource(monitor, device="venus")
    source.start(collector.emit, lambda *args: None)
    try:
        got = collector.wait_all()
        # and a pushed change (ItemsChanged), the adapter's steady-state path
        collector.expect(VictronSim.BATTERY, "/Soc", 55.5)
        sim.set_values(VictronSim.BATTERY, {"/Soc": 55.5})
        assert collector.wait_expected(), "the change of /Soc was never emitted"
    finally:
        source.stop()
    assert len(got) == len(expected) >= 40
    for (channel, path), (value, unit) in sorted(got.items()):
        assert TABLE.lookup(path) is not None, f"{path}: not in the table"
        typed = TABLE.lookup(path, channel)
        assert typed is not None, f"{channel}{path}: not in the table"
        if unit:
            # the adapter reads units off the last part of a path; where it knows one, the
            # table agrees (the table also supplies the units the adapter cannot guess)
            assert typed.unit == unit, f"{channel}{path}: table {typed.unit!r}, adapter {unit!r}"
            assert TABLE.entity(path).unit == unit


def test_a_fuller_installation_is_fully_known(recorded: Dict[Tuple[str, str], Reading]
                                              ) -> None:
    assert len({channel for channel, _ in recorded}) == 10
    for (channel, path), (value, unit) in recorded.items():
        entity = TABLE.lookup(path, channel)
        assert entity is not None, f"{channel}{path}: not in the table"
        if unit:
            assert entity.unit == unit, f"{channel}{path}: {entity.unit!r} vs {unit!r}"
        if entity.device_class == "enum" or entity.kind == "select":
            label = TABLE.label(path, value, channel)
            assert label in entity.options, f"{channel}{path}={value!r} has no label"


def test_enabled_entities_per_device(recorded: Dict[Tuple[str, str], Reading]) -> None:
    per_device: Dict[str, List[str]] = {}
    for channel, path in recorded:
        enabled = per_device.setdefault(channel, [])  # a device, enabled fields or not
        if TABLE.entity(path, channel).enabled:
            enabled.append(path)
    for channel, enabled in sorted(per_device.items()):
        assert 0 < len(enabled) <= 15, f"{channel}: {len(enabled)} enabled: {sorted(enabled)}"
    # what a person puts on a dashboard, spot-checked per kind of device
    assert {"/Soc", "/Dc/0/Voltage", "/Dc/0/Current", "/ConsumedAmphours"} <= set(
        per_device[VictronSim.BATTERY])
    assert {"/Mode", "/State", "/Yield/Power", "/Pv/V"} <= set(per_device[VictronSim.SOLAR])
    assert {"/Ac/Power", "/Ac/Energy/Forward", "/Ac/Energy/Reverse"} <= set(
        per_device[VictronSim.GRID])
    assert "/Mgmt/ProcessName" not in per_device[VictronSim.BATTERY]
    # the three-phase Multi is the busiest device: every enabled field counts
    assert len(per_device[VictronSim.BATTERY]) <= len(per_device[VEBUS]) <= 15


# ------------------------------------------------------------------------ service types
def test_the_service_type_decides_what_an_ambiguous_path_means() -> None:
    bare = TABLE.entity("/Mode")
    assert bare.control is None and bare.category == "diagnostic"
    solar = TABLE.entity("/Mode", VictronSim.SOLAR)
    assert solar.kind == "switch" and solar.control is not None
    assert (solar.control.on, solar.control.off) == (1, 4)
    vebus = TABLE.entity("/Mode", VEBUS)
    assert vebus.kind == "select" and vebus.control is not None
    assert vebus.control.choices == {"Charger only": 1, "Inverter only": 2, "On": 3, "Off": 4}
    assert TABLE.entity("/Mode", VictronSim.BATTERY).control is None
    # the field may also be written as service + path, as D-Bus tools print it
    assert TABLE.entity(VictronSim.SOLAR + "/Mode") == solar
    assert service_class(VictronSim.SOLAR) == "com.victronenergy.solarcharger"
    assert TABLE.label("/State", 3, VictronSim.SOLAR) == "Bulk"
    assert TABLE.label("/State", 9, VEBUS) == "Inverting"
    assert TABLE.label("/State", 199, VEBUS) is None            # a code the table lacks
    assert TABLE.label("/Soc", 50, VictronSim.BATTERY) is None  # no enumeration
    assert TABLE.entity("/Alarms/LowVoltage").options == ("OK", "Warning", "Alarm")
    unknown = TABLE.entity("/Some/New/Thing", VictronSim.BATTERY)
    assert unknown.name == "/Some/New/Thing" and not unknown.enabled


def test_named_energy_and_charge_fields() -> None:
    forward = TABLE.entity("/Ac/Energy/Forward", VictronSim.GRID)
    assert (forward.name, forward.unit, forward.device_class, forward.state_class) == \
        ("Energy imported", "kWh", "energy", "total_increasing")
    consumed = TABLE.entity("/ConsumedAmphours", VictronSim.BATTERY)
    assert (consumed.unit, consumed.device_class, consumed.state_class) == \
        ("Ah", None, "measurement")
    assert TABLE.entity("/Dc/0/Voltage", VictronSim.BATTERY).name == "Battery voltage"
    assert TABLE.entity("/Soc", VictronSim.BATTERY).device_class == "battery"


# ------------------------------------------------------------------------------ controls
def _control_entities() -> Dict[str, Entity]:
    controls = TABLE.controls()
    assert controls, "the table has no controls"
    return controls


def test_every_control_names_the_monitor_setter_and_its_argument_form() -> None:
    params = list(inspect.signature(VictronMonitor.set_value).parameters)
    assert params[1:4] == ["service", "path", "value"]
    for key, entity in _control_entities().items():
        control = entity.control
        assert control is not None
        assert callable(getattr(VictronMonitor, control.method)), key
        assert control.method == "set_value" and control.argument == "path", key
        # a control is tied to a service type: the same path means other things elsewhere
        assert key.startswith("com.victronenergy.") and "/" in key, key
        assert entity.kind in ("switch", "select"), key
        if entity.kind == "switch":
            assert isinstance(control.on, int) and isinstance(control.off, int), key
            assert control.on != control.off, key
        else:
            assert control.choices is not None
            assert entity.options == tuple(control.choices), key
            assert all(isinstance(v, int) for v in control.choices.values()), key
            assert TABLE.codes[key] == {v: k for k, v in control.choices.items()}, key


def test_only_everyday_controls_are_safe() -> None:
    safe = {k for k, e in _control_entities().items() if e.control and e.control.safe}
    assert safe == {"com.victronenergy.evcharger/StartStop", "com.victronenergy.evcharger/Mode"}
    for key in ("com.victronenergy.vebus/Mode", "com.victronenergy.solarcharger/Mode",
                "com.victronenergy.system/Relay/0/State",
                "com.victronenergy.generator/ManualStart"):
        assert key not in safe


def test_no_number_controls_because_victron_limits_live_on_the_bus() -> None:
    # VictronMonitor has no limit constants: it checks the Min/Max each path publishes. A
    # number entity would have to show limits the library does not have.
    assert [k for k, e in TABLE.fields.items() if e.kind == "number"] == []
    assert all(e.control.minimum is None and e.control.maximum is None
               for e in _control_entities().values() if e.control is not None)


def test_a_value_outside_the_limits_the_bus_publishes_is_refused_before_sending(
        sim: VictronSim, monitor: VictronMonitor) -> None:
    path = "/Settings/Pbk/ChargeCurrentLimit"
    monitor.settings.add([Setting(path, 10, 0, 16, unit="A")])
    writes = sim.settings_writes
    for outside in (17, -1):
        with pytest.raises(ConfigurationError, match="16"):
            monitor.set_value(SETTINGS, path, outside)
    assert sim.settings_writes == writes  # nothing reached localsettings
    monitor.set_value(SETTINGS, path, 16)  # the limit itself is fine
    assert sim.settings_writes == writes + 1
    entity = TABLE.entity(path, SETTINGS)
    assert entity.control is None and entity.state_class is None
    assert entity.category == "diagnostic"


def test_the_solar_charger_switch_drives_the_simulator(sim: VictronSim,
                                                       monitor: VictronMonitor) -> None:
    entity = TABLE.entity("/Mode", VictronSim.SOLAR)
    assert entity.control is not None
    setter = getattr(monitor, entity.control.method)
    setter(VictronSim.SOLAR, "/Mode", entity.control.off)
    assert sim.value(VictronSim.SOLAR, "/Mode") == 4
    assert monitor.wait_for_value(VictronSim.SOLAR, "/Mode", lambda v: v == 4) == 4
    setter(VictronSim.SOLAR, "/Mode", entity.control.on)
    assert sim.value(VictronSim.SOLAR, "/Mode") == 1


def test_the_ev_charger_controls_drive_the_service(fuller: VictronSim,
                                                   callback_errors: List[BaseException]
                                                   ) -> None:
    mon = _monitor(fuller, callback_errors, allow_writes=True)
    try:
        start = TABLE.entity("/StartStop", EV).control
        mode = TABLE.entity("/Mode", EV).control
        assert start is not None and mode is not None and mode.choices is not None
        getattr(mon, start.method)(EV, "/StartStop", start.on)
        assert fuller.value(EV, "/StartStop") == 1
        getattr(mon, mode.method)(EV, "/Mode", mode.choices["Auto"])
        assert fuller.value(EV, "/Mode") == 1
        seen = mon.wait_for_value(EV, "/Mode", lambda v: v == 1)
        assert TABLE.label("/Mode", seen, EV) == "Auto"
    finally:
        mon.close()


def test_a_control_needs_a_monitor_opened_for_writes(sim: VictronSim,
                                                     callback_errors: List[BaseException]
                                                     ) -> None:
    mon = _monitor(sim, callback_errors)  # allow_writes=False
    try:
        entity = TABLE.entity("/Mode", VictronSim.SOLAR)
        assert entity.control is not None
        with pytest.raises(WriteNotAllowedError):
            getattr(mon, entity.control.method)(VictronSim.SOLAR, "/Mode", entity.control.off)
        assert sim.set_calls(VictronSim.SOLAR, "/Mode") == 0
        assert sim.value(VictronSim.SOLAR, "/Mode") == 1
    finally:
        mon.close()


# ---------------------------------------------------------------- Home Assistant's rules
# A local transcription of the pairs this table uses (HA 2024.x/2025.x sensor device
# classes); the full validation lives in tests/ha/.
HA_UNITS = {
    "voltage": {"V", "mV"}, "current": {"A", "mA"}, "power": {"W", "kW"},
    "energy": {"Wh", "kWh", "MWh"}, "battery": {"%"}, "humidity": {"%"},
    "temperature": {"°C", "°F", "K"}, "duration": {"s", "min", "h", "d", "ms"},
    "frequency": {"Hz", "kHz"}, "power_factor": {"", "%"},
    "volume_storage": {"m³", "L", "mL", "gal", "ft³", "CCF"},
    "atmospheric_pressure": {"hPa", "Pa", "kPa", "bar", "cbar", "mbar", "mmHg", "inHg", "psi"},
    "carbon_dioxide": {"ppm"}, "enum": {""},
}
HA_STATE_CLASSES = {"energy": {None, "total", "total_increasing"}, "enum": {None},
                    "volume_storage": {None, "measurement"}}
BINARY_CLASSES = {None, "connectivity", "power", "plug", "problem"}


def test_every_entity_follows_home_assistants_rules() -> None:
    assert len(TABLE.fields) > 100
    for key, e in TABLE.fields.items():
        where = getattr(key, "pattern", key)
        if e.kind == "sensor":
            assert e.category != "config", f"{where}: HA refuses config on a sensor"
            if e.device_class is not None:
                assert e.unit in HA_UNITS[e.device_class], f"{where}: {e.device_class}/{e.unit}"
                allowed = HA_STATE_CLASSES.get(e.device_class, {None, "measurement"})
                assert e.state_class in allowed, f"{where}: {e.device_class}/{e.state_class}"
            if e.device_class == "enum":
                assert e.options and not e.unit, where
                assert tuple(TABLE.codes[key].values()) == e.options, where
            if e.state_class in ("total", "total_increasing"):
                assert e.device_class in (None, "energy"), where
            if e.unit in ("", None) and e.state_class is not None:
                # unitless numbers with statistics: counters and the power factor only
                assert e.state_class == "total_increasing" or e.device_class == "power_factor", \
                    where
        else:
            assert e.state_class is None and not e.unit, f"{where}: {e.kind} with a state"
        if e.kind == "binary_sensor":
            assert e.device_class in BINARY_CLASSES, where
        if e.category == "config" or where.startswith("/Settings/") \
                or "/Settings/" in where or e.kind in ("switch", "select"):
            assert e.state_class is None, f"{where}: a setting has no state class"
        assert e.unit != "RPM", where
        assert e.icon is None or e.icon.startswith("mdi:"), where


def test_counters_and_energy_are_classified_as_home_assistant_wants() -> None:
    assert TABLE.entity("/Ac/Energy/Forward").state_class == "total_increasing"
    assert TABLE.entity("/Yield/User").state_class == "total_increasing"
    # negative and growing in magnitude: total, so HA does not read a reset into it
    assert TABLE.entity("/History/TotalAhDrawn").state_class == "total"
    assert TABLE.entity("/History/ChargeCycles").state_class == "total_increasing"
    # a BMS's charge voltage limit is a value it sets, not a measurement
    assert TABLE.entity("/Info/MaxChargeVoltage").state_class is None
    assert TABLE.entity("/Settings/CGwacs/BatteryLife/MinimumSocLimit").state_class is None
