"""The Afterburner semantic table against what really runs: the recorder adapter on the
simulator (every field it emits is known, with the unit it emits), the real client (every
control's method takes the declared argument, refuses values outside the declared limits
before anything is sent, and changes the simulated heater with values inside them)."""

from __future__ import annotations

import inspect
import threading
from typing import Any, Dict, Iterator, List, Optional, Set, Tuple

import pytest

from pyburnerkit.afterburner import AfterburnerClient, AfterburnerSim
from pyburnerkit.afterburner.codec import LVC_RANGES, SETTINGS, STATUS_KEYS, values_match
from pyburnerkit.afterburner.semantics import TABLE
from pyburnerkit.errors import ConfigurationError
from pyburnerkit.recorder.adapters.afterburner import AfterburnerSource
from pyburnerkit.recorder.samples import normalise_value
from pyburnerkit.semantics import Control, Entity

ENTITIES: Dict[str, Entity] = {name: TABLE.entity(name) for name in TABLE.names()}
CONTROLS = TABLE.controls()
RANGED = sorted(name for name, e in CONTROLS.items()
                if e.control is not None and e.control.minimum is not None)

#: Keys of the BME280 sensor, which the simulator does not model (it fits DS18B20s).
NOT_SIMULATED = {"Humidity", "Altitude"}
#: Where the table corrects the adapter's unit: (adapter's unit, table's unit).
UNIT_CORRECTIONS = {
    # Home Assistant spells revolutions per minute "rpm"; the codec's field names say RPM
    "FanRPM": ("RPM", "rpm"), "FanMin": ("RPM", "rpm"), "FanMax": ("RPM", "rpm"),
    # the set point's model field carries no unit suffix; it is whole °C in thermostat mode
    "TempDesired": ("", "°C"),
}
#: Keys that name an action (no reported field): the only keys outside the codec's table.
ACTIONS = {"Start", "Stop", "PumpPrime", "FuelGaugeReset", "NVsave"}

#: The library's own limits of every ranged control: (minimum, maximum). A setting whose
#: "off" value lies outside its range starts at that value.
LIBRARY_LIMITS: Dict[str, Tuple[float, float]] = {
    "TempDesired": (SETTINGS["desired_temperature"].low, SETTINGS["desired_temperature"].high),
    "CyclicTemp": (SETTINGS["cyclic_temperature"].low, SETTINGS["cyclic_temperature"].high),
    "ThermostatWindow": (SETTINGS["thermostat_window"].low, SETTINGS["thermostat_window"].high),
    "CyclicOff": (SETTINGS["cyclic_off"].off_value or 0, SETTINGS["cyclic_off"].high),
    "CyclicOn": (SETTINGS["cyclic_on"].low, SETTINGS["cyclic_on"].high),
    "FrostOn": (SETTINGS["frost_on"].low, SETTINGS["frost_on"].high),
    "FrostRise": (SETTINGS["frost_rise"].low, SETTINGS["frost_rise"].high),
    "HumidStart": (SETTINGS["humidity_start"].off_value or 0, SETTINGS["humidity_start"].high),
    "ExtThermoTmout": (SETTINGS["ext_thermo_timeout"].low,
                       SETTINGS["ext_thermo_timeout"].high),
    "TempOffset": (SETTINGS["temp_offset"].low, SETTINGS["temp_offset"].high),
    "Temp2Offset": (SETTINGS["temp2_offset"].low, SETTINGS["temp2_offset"].high),
    "Temp3Offset": (SETTINGS["temp3_offset"].low, SETTINGS["temp3_offset"].high),
    "Temp4Offset": (SETTINGS["temp4_offset"].low, SETTINGS["temp4_offset"].high),
    "PumpMin": (SETTINGS["pump_min"].low, SETTINGS["pump_min"].high),
    "PumpMax": (SETTINGS["pump_max"].low, SETTINGS["pump_max"].high),
    "FanMin": (SETTINGS["fan_min"].low, SETTINGS["fan_min"].high),
    "FanMax": (SETTINGS["fan_max"].low, SETTINGS["fan_max"].high),
    "FanSensor": (SETTINGS["fan_sensor"].low, SETTINGS["fan_sensor"].high),
    "PumpCal": (SETTINGS["pump_cal"].low, SETTINGS["pump_cal"].high),
    # 0 = off; the top of the widest (24 V) range, the method checks the system's own range
    "LowVoltCutout": (SETTINGS["low_volt_cutout"].off_value or 0,
                      max(high for _, high in LVC_RANGES.values())),
    "SystemVoltage": (SETTINGS["system_voltage"].low, SETTINGS["system_voltage"].high),
}

#: Device class -> units Home Assistant (2024.x/2025.x) accepts, for the classes this table
#: uses. The full validation against HA's own tables lives in tests/ha/.
SENSOR_UNITS = {
    "temperature": {"°C", "°F", "K"}, "voltage": {"V", "mV"}, "current": {"A", "mA"},
    "frequency": {"Hz", "kHz", "MHz", "GHz"}, "humidity": {"%"},
    "signal_strength": {"dB", "dBm"}, "duration": {"d", "h", "min", "s", "ms"},
    "distance": {"km", "m", "cm", "mm", "mi", "yd", "ft", "in"}, "enum": {""},
}
NUMBER_CLASSES = {"temperature", "voltage", "frequency", "humidity", "duration"}
BINARY_CLASSES = {"connectivity", "problem", "running", "power", None}


def invoke(client: AfterburnerClient, control: Control, value: Any = None) -> Any:
    """Call a control's method the way the command plane does."""
    method = getattr(client, control.method)
    if control.argument == "none":
        return method()
    if control.argument == "value":
        return method(value)
    return method(**{control.argument: value})


@pytest.fixture
def sim() -> Iterator[AfterburnerSim]:
    """The package's simulator fixture with all four sensors fitted, so the offsets of
    sensors 2-4 are reported (the conftest's ``client`` connects to this one)."""
    server = AfterburnerSim(tick=0, seed=3, sensors=4).start()
    yield server
    server.close()


# ------------------------------------------------------------------ what the adapter emits
@pytest.fixture
def emitted(sim: AfterburnerSim) -> Iterator[Dict[str, List[Tuple[Any, str]]]]:
    """field -> [(value, unit)...] the recorder adapter emitted for a simulated heater with
    four sensors, once every simulated key has been seen."""
    expected = set(STATUS_KEYS) - NOT_SIMULATED
    seen: Dict[str, List[Tuple[Any, str]]] = {}
    channels: Set[str] = set()
    lock = threading.Lock()
    complete = threading.Event()

    def emit(source: Any, readings: List[Tuple[Any, ...]]) -> None:
        # runs on the client's events thread: record only, assert in the test thread
        with lock:
            for channel, field, value, unit in (r[:4] for r in readings):
                channels.add(channel)
                seen.setdefault(field, []).append((value, unit))
            if expected <= set(seen):
                complete.set()

    def on_state(source: Any, state: str, error: Optional[BaseException]) -> None:
        pass

    client = AfterburnerClient(f"127.0.0.1:{sim.port}", timeout=5.0, refresh_grace=0.2)
    source = AfterburnerSource(client, device="test-heater")
    try:
        source.start(emit, on_state)
        assert complete.wait(30), f"never emitted: {sorted(expected - set(seen))}"
        with lock:
            assert channels == {""}  # one controller is one device: no channels
            yield {field: list(values) for field, values in seen.items()}
    finally:
        source.stop()
        client.close()
        source.join(5)


def test_every_emitted_field_has_an_entry_with_the_emitted_unit(
        emitted: Dict[str, List[Tuple[Any, str]]]) -> None:
    unknown = sorted(field for field in emitted if TABLE.lookup(field) is None)
    assert unknown == []
    wrong: List[str] = []
    for field, values in emitted.items():
        units = {unit for _, unit in values}
        assert len(units) == 1, f"{field} emitted in several units: {units}"
        unit = units.pop()
        table_unit = TABLE.entity(field).unit
        adapter_unit, corrected = UNIT_CORRECTIONS.get(field, (unit, unit))
        if unit != adapter_unit or table_unit != corrected:
            wrong.append(f"{field}: adapter {unit!r}, table {table_unit!r}")
    assert wrong == []


def test_enumerations_list_every_emitted_state(
        emitted: Dict[str, List[Tuple[Any, str]]]) -> None:
    enums = [name for name, e in ENTITIES.items() if e.options]
    checked = 0
    for field in enums:
        for value, _ in emitted.get(field, []):
            normal = normalise_value(value)
            assert normal is not None
            number, text = normal
            shown = text if text is not None else str(number)
            assert shown in ENTITIES[field].options, (field, shown)
            checked += 1
    assert checked >= len(set(enums) & set(emitted))


def test_text_fields_have_no_unit_or_state_class(
        emitted: Dict[str, List[Tuple[Any, str]]]) -> None:
    texts = {field for field, values in emitted.items()
             if any(isinstance(v, str) for v, _ in values)}
    assert {"RunString", "ErrorString", "BluewireStat", "IP_AP"} <= texts
    for field in texts:
        entity = TABLE.entity(field)
        assert entity.state_class is None and entity.unit == "", field
        assert entity.device_class in (None, "enum"), field


def test_the_table_covers_every_key_the_adapter_can_emit() -> None:
    # the adapter emits exactly the codec's status keys (BME280 ones included)
    assert sorted(k for k in STATUS_KEYS if TABLE.lookup(k) is None) == []
    assert set(TABLE.names()) - set(STATUS_KEYS) == ACTIONS
    for key in ACTIONS:
        assert ENTITIES[key].control is not None and ENTITIES[key].kind in ("button", "switch")


# ------------------------------------------------------------------ Home Assistant shape
def test_one_device_with_a_small_dashboard() -> None:
    assert TABLE.per_channel is False
    enabled = [name for name, e in ENTITIES.items() if e.enabled]
    assert 0 < len(enabled) <= 15, enabled
    # a dashboard shows what a person reads, never internals or settings
    assert all(ENTITIES[n].category is None for n in enabled), enabled
    assert {"TempDesired", "TempCurrent", "RunState", "ErrorState", "InputVoltage"} \
        <= set(enabled)


def test_settings_and_actions_have_no_state_class() -> None:
    for name, e in ENTITIES.items():
        if e.control is not None or e.category == "config" or e.kind != "sensor" \
                or e.device_class == "enum":
            assert e.state_class is None, name


def test_device_classes_accept_their_units() -> None:
    for name, e in ENTITIES.items():
        if e.kind == "sensor" and e.device_class is not None:
            assert e.unit in SENSOR_UNITS[e.device_class], name
        if e.kind == "number" and e.device_class is not None:
            assert e.device_class in NUMBER_CLASSES and e.unit in SENSOR_UNITS[e.device_class], \
                name
        if e.kind == "binary_sensor":
            assert e.device_class in BINARY_CLASSES and e.unit == "", name
        if e.kind in ("select", "switch", "button"):
            assert e.device_class is None and e.unit == "", name
        if e.device_class == "enum" or e.kind == "select":
            assert e.options and e.unit == "", name
        else:
            assert not e.options, name
        assert "RPM" not in e.unit, name


def test_pump_calibration_is_a_config_number_in_ml() -> None:
    cal = ENTITIES["PumpCal"]
    assert (cal.kind, cal.unit, cal.device_class, cal.state_class, cal.category) == \
        ("number", "mL", None, None, "config")


def test_the_climate_links_the_current_temperature_and_the_run_state() -> None:
    climate = ENTITIES["TempDesired"]
    assert climate.kind == "climate" and climate.unit == "°C" and climate.enabled
    assert climate.control is not None and climate.control.safe
    assert climate.control.method == "set_desired_temperature"
    assert dict(climate.links) == {"current": "TempCurrent", "mode": "RunState"}
    assert ENTITIES["TempCurrent"].device_class == "temperature"
    assert ENTITIES["RunState"].device_class == "enum"


def test_only_everyday_controls_are_safe() -> None:
    safe = sorted(name for name, e in CONTROLS.items()
                  if e.control is not None and e.control.safe)
    assert safe == ["Start", "Stop", "TempDesired"]


# ------------------------------------------------------------------ controls vs the client
@pytest.mark.parametrize("field", sorted(CONTROLS))
def test_control_method_exists_and_takes_the_argument(field: str) -> None:
    control = CONTROLS[field].control
    assert control is not None
    method = getattr(AfterburnerClient, control.method, None)
    assert callable(method), control.method
    signature = inspect.signature(method)
    if control.argument == "none":
        signature.bind(None)
    elif control.argument == "value":
        signature.bind(None, 1)
    else:
        signature.bind(None, **{control.argument: 1})
    if control.method == "set":  # set(**settings) binds any keyword: it must name a setting
        assert control.argument in SETTINGS
    kind = CONTROLS[field].kind
    if kind == "button":
        assert control.argument == "none"
    if kind == "select":
        assert control.choices and tuple(control.choices) == CONTROLS[field].options
    if kind == "switch":
        assert control.on != control.off


def test_every_ranged_control_has_its_library_limits_listed() -> None:
    assert sorted(LIBRARY_LIMITS) == RANGED


@pytest.mark.parametrize("field", RANGED)
def test_control_limits_are_the_librarys(field: str) -> None:
    control = CONTROLS[field].control
    assert control is not None
    assert (control.minimum, control.maximum) == LIBRARY_LIMITS[field]


def _sent_since(sim: AfterburnerSim, mark: int) -> Set[str]:
    return {key for frame in sim.run_sync(lambda: list(sim.received))[mark:] for key in frame}


@pytest.mark.parametrize("field", RANGED)
def test_values_just_outside_the_limits_are_refused_before_sending(
        field: str, client: AfterburnerClient, sim: AfterburnerSim) -> None:
    control = CONTROLS[field].control
    assert control is not None and control.minimum is not None and control.maximum is not None
    client.read_status()
    before = client.reported_value(field)
    delta = min(control.step or 1, 1)
    mark = len(sim.run_sync(lambda: list(sim.received)))
    for outside in (control.minimum - delta, control.maximum + delta):
        with pytest.raises(ConfigurationError):
            invoke(client, control, outside)
    client.read_status()  # a round trip: anything sent before it has reached the simulator
    assert field not in _sent_since(sim, mark)
    assert client.reported_value(field) == before


#: A value inside the limits that differs from the simulator's default; the maximum unless
#: that is refused for the simulated system (25 V is a 24 V system's cut-out).
INSIDE = {"LowVoltCutout": LVC_RANGES[12][1]}


@pytest.mark.parametrize("field", RANGED)
def test_a_value_inside_the_limits_changes_the_heater(
        field: str, client: AfterburnerClient) -> None:
    control = CONTROLS[field].control
    assert control is not None
    value = INSIDE.get(field, control.maximum)
    invoke(client, control, value)
    assert values_match(value, client.read_status().raw[field])


@pytest.mark.parametrize("field", sorted(n for n, e in CONTROLS.items() if e.kind == "select"))
def test_every_select_choice_reaches_the_heater(field: str, client: AfterburnerClient) -> None:
    control = CONTROLS[field].control
    assert control is not None and control.choices
    for option in reversed(list(control.choices)):  # the default is first: change it
        invoke(client, control, control.choices[option])
        assert client.read_status().raw[field] == int(control.choices[option]), option


@pytest.mark.parametrize("field", ["GPout1", "GPout2"])
def test_output_switches_turn_on_and_off(field: str, client: AfterburnerClient) -> None:
    control = CONTROLS[field].control
    assert control is not None
    invoke(client, control, control.on)
    assert client.read_status().raw[field] == 1
    invoke(client, control, control.off)
    assert client.read_status().raw[field] == 0


def test_pump_priming_switch_runs_and_stops_the_pump(client: AfterburnerClient,
                                                     sim: AfterburnerSim) -> None:
    control = CONTROLS["PumpPrime"].control
    assert control is not None
    invoke(client, control, control.on)
    assert sim.run_sync(lambda: sim.model.priming) is True
    invoke(client, control, control.off)
    assert sim.run_sync(lambda: sim.model.priming) is False


def test_start_and_stop_buttons(client: AfterburnerClient) -> None:
    for field, heating in (("Start", True), ("Stop", False)):
        control = CONTROLS[field].control
        assert control is not None
        invoke(client, control)
        state = client.status.run_state
        assert state is not None and state.is_heating is heating, (field, state)


def test_fuel_gauge_reset_and_save_buttons(client: AfterburnerClient,
                                           sim: AfterburnerSim) -> None:
    sim.set(pump_count=1234.5)
    assert client.read_status().pump_count == 1234.5
    reset = CONTROLS["FuelGaugeReset"].control
    assert reset is not None
    invoke(client, reset)
    assert client.status.pump_count is not None and client.status.pump_count < 1
    save = CONTROLS["NVsave"].control
    assert save is not None
    saves = sim.nvsave_count
    invoke(client, save)
    assert sim.run_sync(lambda: sim.nvsave_count) == saves + 1
