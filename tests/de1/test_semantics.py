"""The DE1's semantic table against what the recorder really emits and what the client really
accepts: a simulated DE1 (``sim://``) driven through the recorder's DE1 adapter, and the
table's controls called on a real client of the same simulator."""

from __future__ import annotations

import dataclasses
import threading
from typing import Any, Dict, Iterator, List, Optional, Set, Tuple

import pytest

from pyburnerkit.de1 import codec
from pyburnerkit.de1.client import DE1Client
from pyburnerkit.de1.models import (MachineState, ShotSample, SubState, Temperatures,
                                    WaterLevels)
from pyburnerkit.de1.semantics import REFILL_LEVEL_MM, TABLE
from pyburnerkit.errors import ConfigurationError, WriteNotAllowedError
from pyburnerkit.recorder.adapters.de1 import DE1Source

from ..ha.calls import assert_method_takes_every_call, call_forms

#: What every field of the DE1's models becomes once the adapter emitted it.
EMITTED = ({f.name for f in dataclasses.fields(ShotSample)}
           | {f.name for f in dataclasses.fields(Temperatures)}
           | {f.name for f in dataclasses.fields(WaterLevels)}
           | {"state", "substate", "volume_total_ml"})

#: Units Home Assistant accepts per device class (HA 2024.x sensor/number constants), for the
#: classes this table uses; tests/ha/ checks every family against the full tables.
HA_UNITS: Dict[str, Set[str]] = {
    "temperature": {"°C", "°F", "K"}, "pressure": {"bar", "mbar", "Pa", "hPa", "kPa", "psi"},
    "distance": {"mm", "cm", "m", "km"}, "volume": {"mL", "L", "m³"}, "enum": {""}}
#: State classes HA accepts per device class (sensor DEVICE_CLASS_STATE_CLASSES).
HA_STATE_CLASSES: Dict[str, Set[Optional[str]]] = {
    "temperature": {"measurement"}, "pressure": {"measurement"}, "distance": {"measurement"},
    "volume": {"total", "total_increasing"}, "enum": {None}}


def record(fields: Set[str], timeout: float = 60.0) -> Dict[str, Tuple[Any, Set[str]]]:
    """Run a ``sim://`` DE1 through the recorder's adapter until every field in ``fields`` was
    emitted; returns field -> (last value, units it came with)."""
    seen: Dict[str, Tuple[Any, Set[str]]] = {}
    lock = threading.Lock()
    complete = threading.Event()

    def emit(_source: Any, readings: List[Tuple[Any, ...]]) -> None:  # the events thread
        with lock:
            for _channel, field, value, unit, *_kind in readings:
                units = seen[field][1] if field in seen else set()
                units.add(unit)
                seen[field] = (value, units)
            if fields <= seen.keys():
                complete.set()

    source = DE1Source(DE1Client("sim://?speed=10"), device="de1", owns_client=True)
    source.start(emit, lambda *_: None)
    try:
        finished = complete.wait(timeout)
    finally:
        source.stop()
        source.close_client(5.0)
        source.join(5.0)
    with lock:
        assert finished, f"the adapter never emitted {sorted(fields - seen.keys())}"
        return dict(seen)


def test_every_emitted_field_has_an_entry_with_the_adapters_unit() -> None:
    seen = record(EMITTED)
    for field, (value, units) in seen.items():
        entity = TABLE.lookup(field)
        assert entity is not None, f"{field} is emitted but the table does not know it"
        # one unit per field, the same the table gives (empty for enums, the frame and clock)
        assert units == {entity.unit}, (field, units, entity.unit)
        if entity.device_class == "enum":
            assert value.name in entity.options, (field, value)
    assert TABLE.entity("state").options == tuple(m.name for m in MachineState)
    assert TABLE.entity("substate").options == tuple(s.name for s in SubState)


def test_a_dashboard_of_at_most_15_entities_for_the_machine() -> None:
    assert not TABLE.per_channel  # one HA device: the machine
    enabled = [k for k, e in TABLE.fields.items() if e.enabled]
    assert 0 < len(enabled) <= 15, enabled
    # what the issue puts on the machine's dashboard
    assert {"state", "group_pressure_bar", "group_flow_ml_s", "head_temp_c", "level_mm",
            "stop", "start_flush"} <= set(enabled)


@pytest.mark.parametrize("field", sorted(TABLE.controls()))
def test_each_control_names_a_client_method_that_takes_its_argument(field: str) -> None:
    assert_method_takes_every_call(DE1Client, TABLE.entity(field))


def test_the_refill_level_limits_are_the_clients() -> None:
    entity = TABLE.entity("start_fill_level_mm")
    assert entity.kind == "number" and entity.control is not None
    low, high = entity.control.minimum, entity.control.maximum
    assert low is not None and high is not None
    assert (low, high) == REFILL_LEVEL_MM
    # the codec is where the client checks them: both ends accepted, a hair beyond refused
    codec.encode_refill_level(low)
    codec.encode_refill_level(high)
    for outside in (low - 0.01, high + 0.01):
        with pytest.raises(ConfigurationError, match="start_fill_level_mm"):
            codec.encode_refill_level(outside)


@pytest.fixture
def de1() -> Iterator[DE1Client]:
    # writes allowed, remote starts not: what a config with allow_writes = true gives
    client = DE1Client("sim://?speed=10", allow_writes=True, timeout=5.0)
    client.connect()
    try:
        yield client
    finally:
        client.close()


def _writes(client: DE1Client) -> int:
    sim = client.simulator
    assert sim is not None
    return int(sim.run(lambda: len(sim.de1.writes)))


def test_the_client_refuses_a_refill_level_just_outside_the_table(de1: DE1Client) -> None:
    control = TABLE.entity("start_fill_level_mm").control
    assert control is not None and control.minimum is not None and control.maximum is not None
    setter = getattr(de1, control.method)
    before, level = _writes(de1), de1.read_water_levels().start_fill_level_mm
    for outside in (control.minimum - 0.01, control.maximum + 0.01):
        with pytest.raises(ConfigurationError):
            setter(outside)
    assert _writes(de1) == before  # refused before anything reached the machine
    assert de1.read_water_levels().start_fill_level_mm == level
    # the table's own ends are accepted by the machine and read back
    assert setter(control.maximum).start_fill_level_mm == control.maximum
    assert setter(control.minimum).start_fill_level_mm == control.minimum


def test_safe_buttons_are_exactly_what_allow_writes_permits(de1: DE1Client) -> None:
    buttons = {k: e for k, e in TABLE.controls().items() if e.kind == "button"}
    unsafe = [k for k, e in buttons.items() if e.control and not e.control.safe]
    safe = [k for k, e in buttons.items() if e.control and e.control.safe]
    assert {"start_espresso", "start_steam", "start_hot_water", "start_flush"} <= set(unsafe)
    assert "stop" in safe
    sim = de1.simulator
    assert sim is not None
    requests_before = sim.run(lambda: list(sim.de1.state_requests))
    for field in unsafe:  # each needs allow_remote_start too: refused, nothing sent
        control = buttons[field].control
        assert control is not None
        with pytest.raises(WriteNotAllowedError, match="allow_remote_start"):
            getattr(de1, control.method)()
    assert sim.run(lambda: list(sim.de1.state_requests)) == requests_before
    for field in safe:  # each works from a sleeping or idle machine with allow_writes alone
        control = buttons[field].control
        assert control is not None
        getattr(de1, control.method)()
    requested = sim.run(lambda: list(sim.de1.state_requests))[len(requests_before):]
    assert MachineState.IDLE in requested and MachineState.SLEEP in requested  # wake, sleep


def test_ha_accepts_every_device_class_unit_and_state_class() -> None:
    for field, entity in TABLE.fields.items():
        if entity.device_class is not None:
            assert entity.unit in HA_UNITS[entity.device_class], (field, entity.unit)
            if entity.kind == "sensor":
                assert entity.state_class in HA_STATE_CLASSES[entity.device_class], field
        if entity.kind != "sensor" or entity.category == "config" \
                or entity.device_class == "enum":
            # settings, actions and enumerations have no statistics
            assert entity.state_class is None, field
        if entity.device_class == "enum":
            assert entity.options and not entity.unit, field
        if entity.kind in ("number", "select", "switch"):
            assert entity.category == "config", field
        if entity.icon is not None:
            assert entity.icon.startswith("mdi:"), field
        assert entity.name and entity.name[0].isupper(), field
    # a flow in mL/s has no HA device class: shown with its unit and an icon
    flow = TABLE.entity("group_flow_ml_s")
    assert (flow.unit, flow.device_class, flow.state_class) == ("mL/s", None, "measurement")
    assert flow.icon
