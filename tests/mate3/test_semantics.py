"""The Mate3 semantic table against what the recorder adapter really emits from the simulator,
and its controls against the real client's own checks (issue 12).

Two simulated systems: the bundled chinezbrun dump (two single-phase Radians, two charge
controllers, a FLEXnet DC) and a generated one with every kind of HUB device (FX and split-phase
Radian included), so every device kind the adapter knows is driven through the adapter.
"""

from __future__ import annotations

import collections
import inspect
import threading
from typing import Any, Dict, List, Set, Tuple

import pytest

from pyburnerkit import ConfigurationError
from pyburnerkit.mate3 import codec, limits
from pyburnerkit.mate3.client import Mate3Client
from pyburnerkit.mate3.semantics import CORRECTED_UNITS, SAFE_CONTROLS, TABLE
from pyburnerkit.recorder.adapters.mate3 import _MATE3_SKIP, _MATE3_UNITS, Mate3Source
from pyburnerkit.recorder.samples import Labelled
from pyburnerkit.semantics import Entity

MATE3_DID = 64110
#: the blocks the adapter records: the Mate3s itself and every real-time HUB block
RECORDED_DIDS = (MATE3_DID, *sorted(codec.PAIRS))

SYSTEMS = {
    "chinezbrun": ({}, {"mate3", "1", "2", "3", "4", "5"}),
    "every-hub-kind": ({"description": "fx:1,gs-split:2,cc:3,fndc:4,gs-single:5"},
                       {"mate3", "1", "2", "3", "4", "5"}),
}

#: Home Assistant (2024.x/2025.x) units each device class used here accepts
HA_UNITS = {
    "temperature": {"°C", "°F", "K"}, "voltage": {"V", "mV"}, "current": {"A", "mA"},
    "power": {"W", "kW"}, "energy": {"Wh", "kWh", "MWh"}, "battery": {"%"},
    "frequency": {"Hz", "kHz"}, "duration": {"s", "min", "h", "d", "ms"},
}
#: state classes HA accepts per device class (measurement-only classes, energy never)
HA_STATE_CLASSES = {
    "temperature": {"measurement"}, "voltage": {"measurement"}, "current": {"measurement"},
    "power": {"measurement"}, "battery": {"measurement"}, "frequency": {"measurement"},
    "energy": {"total", "total_increasing"},
    "duration": {"measurement", "total", "total_increasing"},
}

Reading = Tuple[Any, ...]


def record_one_poll(make_sim, make_client, options: Dict[str, Any],
                    channels: Set[str]) -> List[Reading]:
    """Drive a simulator through the recorder adapter until every channel was emitted."""
    sim = make_sim(**options)
    client = make_client(sim, connect=False)
    source = Mate3Source(client, device="semantics")
    readings: List[Reading] = []
    connected = threading.Event()
    seen_all = threading.Event()

    def emit(_source: Any, batch: List[Reading]) -> None:
        readings.extend(batch)
        if {r[0] for r in readings} >= channels:
            seen_all.set()

    def on_state(_source: Any, state: str, _error: Any) -> None:
        if state == "connected":
            connected.set()

    source.start(emit, on_state)
    try:
        assert connected.wait(10), "the adapter's client never connected to the simulator"
        for _ in range(3):  # what the recorder's poll thread does, until all was seen
            source.emit(source.poll())
            if seen_all.is_set():
                break
        assert seen_all.wait(0), f"channels emitted: {sorted({r[0] for r in readings})}"
    finally:
        source.stop()
        source.join(5.0)
    return readings


@pytest.fixture(params=sorted(SYSTEMS))
def emitted(request, make_sim, make_client) -> List[Reading]:
    options, channels = SYSTEMS[request.param]
    return record_one_poll(make_sim, make_client, options, channels)


def recorded_fields(did: int) -> Dict[str, str]:
    """Field -> unit of every field of block ``did`` the adapter can emit (its own filter)."""
    out = {}
    for name, fdef in codec.block_defs()[did].fields.items():
        if not fdef.mode.readable or name in _MATE3_SKIP or name.endswith("_scale_factor") \
                or fdef.units in ("Registers", "Port"):
            continue
        out[name] = _MATE3_UNITS.get(fdef.units, fdef.units)
    return out


def number_controls() -> List[str]:
    return sorted(k for k, e in TABLE.controls().items() if e.kind == "number")


def path_of(entity: Entity) -> str:
    assert entity.control is not None
    return entity.control.argument[len("path:"):]


# ------------------------------------------------------------------------------ coverage
def test_every_emitted_field_has_an_entry_whose_unit_agrees_with_the_adapter(emitted):
    assert len(emitted) > 250
    for channel, field, value, unit, kind in emitted:
        entity = TABLE.lookup(field)
        assert entity is not None and field in TABLE.names(), (channel, kind, field)
        if entity.unit == unit:
            continue
        # the table may correct a unit only where it says why
        assert unit == "" or CORRECTED_UNITS[field][:2] == (unit, entity.unit), \
            (field, unit, entity.unit)


def test_every_field_the_adapter_can_read_has_an_exact_entry():
    # Fields neither simulated system implements (temp_ambient, the e-mail settings, the FM80's
    # FET temperature) are covered too.
    for did in RECORDED_DIDS:
        for field, unit in recorded_fields(did).items():
            entity = TABLE.lookup(field)
            assert field in TABLE.names() and entity is not None, (did, field)
            assert entity.name and entity.name != field, field
            if unit and entity.unit != unit:
                assert CORRECTED_UNITS[field][:2] == (unit, entity.unit), (field, unit)
    readable = {f for did in RECORDED_DIDS for f in recorded_fields(did)}
    assert set(TABLE.names()) == readable  # and no entry for a field that is never emitted
    assert set(CORRECTED_UNITS) <= readable


def test_enum_labels_and_flag_values_fit_their_entities(emitted):
    for _, field, value, _, _ in emitted:
        entity = TABLE.entity(field)
        if entity.device_class == "enum":
            assert isinstance(value, Labelled) and value.name in entity.options, (field, value)
        if entity.kind in ("binary_sensor", "switch"):
            assert isinstance(value, Labelled) and isinstance(value.value, int), (field, value)


def test_the_enum_options_are_the_maps_labels_in_every_block():
    for did in RECORDED_DIDS:
        for name, fdef in codec.block_defs()[did].fields.items():
            entity = TABLE.entity(name)
            if entity.device_class == "enum":
                assert set(entity.options) == set(fdef.options.values()), (did, name)


def test_unknown_fields_fall_back_on_their_suffix():
    assert TABLE.entity("shunt_d_current").unit == "A"
    assert TABLE.entity("l3_output_kwh").state_class == "total"
    assert not TABLE.entity("l3_output_kwh").enabled
    assert TABLE.lookup("no_such_register") is None


# ------------------------------------------------------------------------------ dashboard
def test_each_physical_device_shows_a_few_enabled_entities(emitted):
    enabled: Dict[str, Set[str]] = collections.defaultdict(set)
    fields: Dict[str, Set[str]] = collections.defaultdict(set)
    for channel, field, _, _, _ in emitted:
        fields[channel].add(field)
        if TABLE.entity(field).enabled:
            enabled[channel].add(field)
    for channel in fields:
        assert 0 < len(enabled[channel]) <= 15, (channel, sorted(enabled[channel]))
    # the Mate3s alone used to bring 139 enabled entities
    assert len(enabled["mate3"]) < 10


def test_every_device_kind_stays_within_15_enabled_entities():
    for did in RECORDED_DIDS:
        shown = [f for f in recorded_fields(did) if TABLE.entity(f).enabled]
        assert 0 < len(shown) <= 15, (did, shown)


def test_the_dashboard_shows_what_a_person_watches():
    assert TABLE.entity("state_of_charge").device_class == "battery"
    assert TABLE.entity("state_of_charge").enabled
    assert TABLE.entity("charger_state").options == ("Silent", "Float", "Bulk", "Absorb", "EQ")
    assert TABLE.entity("error_flags").kind == "binary_sensor"
    assert TABLE.entity("error_flags").device_class == "problem"
    assert TABLE.entity("watts").name == "Charging power"


# ------------------------------------------------------------------------------ HA rules
def test_device_class_unit_and_state_class_are_ones_home_assistant_accepts():
    for did in RECORDED_DIDS:
        for field in recorded_fields(did):
            e = TABLE.entity(field)
            if e.kind == "binary_sensor":
                assert e.unit == "" and e.state_class is None, field
                assert e.device_class in (None, "problem"), field
                continue
            if e.device_class == "enum":
                assert e.unit == "" and e.state_class is None and e.options, field
                continue
            if e.device_class is not None:
                assert e.unit in HA_UNITS[e.device_class], (field, e.device_class, e.unit)
                if e.state_class is not None:
                    assert e.state_class in HA_STATE_CLASSES[e.device_class], field
            if e.kind == "sensor":
                # HA refuses the config category on sensors
                assert e.category in (None, "diagnostic"), field
            assert e.unit not in ("RPM", "Volts", "Amps", "Watts", "KWH", "wk"), field


def test_no_setting_has_a_state_class():
    for did in RECORDED_DIDS:
        for field in recorded_fields(did):
            e = TABLE.entity(field)
            writable = codec.block_defs()[did].fields[field].mode.writable
            if e.control is not None or e.category == "config" or writable:
                if field == "ags_total_generator_run_time":
                    # an hour meter an installer may preset: a real running total
                    assert e.state_class == "total_increasing" and e.control is None
                    continue
                assert e.state_class is None, field
    zone = TABLE.entity("set_time_zone")  # was duration/total_increasing
    assert zone.kind == "number" and zone.device_class is None and zone.unit == "h"


def test_energy_counters_increase_or_are_net_totals():
    for did in RECORDED_DIDS:
        fdefs = codec.block_defs()[did].fields
        for field, unit in recorded_fields(did).items():
            if unit != "kWh":
                continue
            e = TABLE.entity(field)
            assert e.device_class == "energy", field
            signed = fdefs[field].type.value == "int16"
            # a signed counter goes down when the battery discharges
            assert e.state_class == ("total" if signed else "total_increasing"), field


# ------------------------------------------------------------------------------ controls
def test_every_control_names_the_clients_write_and_a_writable_field():
    signature = inspect.signature(Mate3Client.write)
    assert list(signature.parameters)[1:3] == ["path", "value"]
    fields = codec.block_defs()[MATE3_DID].fields
    assert len(TABLE.controls()) > 50
    for name, entity in TABLE.controls().items():
        control = entity.control
        assert control is not None and control.method == "write"
        assert callable(getattr(Mate3Client, control.method))
        assert control.argument.startswith("path:"), name
        owner, field = codec.split_path(path_of(entity))
        assert (owner, field) == ("mate3", name)
        assert fields[field].mode.writable, name
        assert entity.category == "config" and entity.state_class is None, name
        kind = limits.limit_for(MATE3_DID, field).kind
        assert kind == {"number": "range", "select": "enum", "switch": "enum"}[entity.kind]
        if entity.kind == "select":
            assert control.choices is not None
            assert {fields[field].options[v] for v in control.choices.values()} \
                == set(entity.options) == set(control.choices)
        if entity.kind == "switch":
            assert {control.on, control.off} == set(fields[field].options) == {0, 1}


def test_only_everyday_controls_are_safe():
    safe = {name for name, e in TABLE.controls().items() if e.control and e.control.safe}
    assert safe == set(SAFE_CONTROLS) == {"ags_mode"}
    for name, entity in TABLE.controls().items():
        if entity.unit in ("V", "A", "kW"):
            assert entity.control is not None and not entity.control.safe, name
    # battery set points depend on the nominal voltage: no fixed limits, so no control
    assert TABLE.entity("ags_2_min_start_voltage").control is None
    assert TABLE.entity("modbus_port").control is None


@pytest.mark.parametrize("field", number_controls())
def test_number_limits_are_the_librarys(field):
    control = TABLE.entity(field).control
    assert control is not None
    assert ((control.minimum, control.maximum),) == limits.table()[(MATE3_DID, field)].ranges


def test_the_client_accepts_every_control_value_and_refuses_just_outside(sim, make_client):
    client = make_client(sim, allow_writes=True)
    # the client's own dry run checks a value exactly as a write would, sending nothing
    for name, entity in TABLE.controls().items():
        control = entity.control
        assert control is not None
        path = path_of(entity)
        if entity.kind == "number":
            assert control.minimum is not None and control.maximum is not None
            values: List[Any] = [control.minimum, control.maximum]
        elif entity.kind == "select":
            assert control.choices is not None
            values = list(control.choices.values())
        else:
            values = [control.on, control.off]
        for value in values:
            assert client.plan_write(path, value).path == path
    writes_before = sim.writes_received()
    registers_before = sim.registers
    requests_before = client.stats["requests"]
    for name in number_controls():
        control = TABLE.entity(name).control
        assert control is not None and control.step is not None
        for outside in (control.minimum - control.step, control.maximum + control.step):
            with pytest.raises(ConfigurationError):
                client.write(f"mate3.{name}", outside)
    assert client.stats["requests"] == requests_before  # refused before anything was sent
    assert sim.writes_received() == writes_before and sim.registers == registers_before


def test_the_safe_switch_changes_the_device(sim, make_client):
    client = make_client(sim, allow_writes=True)
    entity = TABLE.entity("ags_mode")
    control = entity.control
    assert control is not None and control.safe and entity.enabled
    assert client.read_value("mate3.ags_mode") == control.off
    back = client.write(path_of(entity), control.on)
    assert back is not None and back.value == control.on
    assert client.read_all().mate3 is not None
    assert client.system.get("mate3.ags_mode").value.label == "Enabled"
