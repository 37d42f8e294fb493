"""The Skale's semantic table against what the recorder really emits and what the client really
accepts: a simulated Skale (``sim://``) driven through the recorder's scale adapter, and the
table's controls called on a real client of the same simulator."""

from __future__ import annotations

import threading
from typing import Any, Dict, Iterator, List, Optional, Set, Tuple

import pytest

from pyburnerkit.errors import ConfigurationError, WriteNotAllowedError
from pyburnerkit.recorder.adapters.scale import ScaleSource
from pyburnerkit.scale import codec
from pyburnerkit.scale.client import SkaleClient
from pyburnerkit.scale.models import ScaleInfo
from pyburnerkit.scale.semantics import DISPLAY_UNITS, TABLE

from ..ha.calls import assert_method_takes_every_call, call_forms

#: What the adapter emits for every weight report.
EMITTED = {"weight_g", "average_flow_g_s", "median_flow_g_s"}

#: Units HA accepts per device class (HA 2024.x sensor constants), for the classes used here;
#: tests/ha/ checks every family against the full tables.
HA_UNITS: Dict[str, Set[str]] = {"weight": {"g", "kg", "mg", "oz", "lb"}, "battery": {"%"}}
HA_STATE_CLASSES: Dict[str, Set[Optional[str]]] = {"weight": {"measurement"},
                                                   "battery": {"measurement"}}


def record(fields: Set[str], timeout: float = 60.0) -> Dict[str, Set[str]]:
    """Run a ``sim://`` Skale through the recorder's adapter until every field in ``fields``
    was emitted with a value; returns field -> the units it came with."""
    seen: Dict[str, Set[str]] = {}
    lock = threading.Lock()
    complete = threading.Event()

    def emit(_source: Any, readings: List[Tuple[Any, ...]]) -> None:  # the events thread
        with lock:
            for _channel, field, value, unit, *_kind in readings:
                if value is not None:  # the flows are None until ~10 reports are in
                    seen.setdefault(field, set()).add(unit)
            if fields <= seen.keys():
                complete.set()

    source = ScaleSource(SkaleClient("sim://?speed=10"), device="skale", owns_client=True)
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
    for field, units in seen.items():
        entity = TABLE.lookup(field)
        assert entity is not None, f"{field} is emitted but the table does not know it"
        assert units == {entity.unit}, (field, units, entity.unit)


def test_a_dashboard_of_at_most_15_entities_for_the_scale() -> None:
    assert not TABLE.per_channel  # one HA device: the scale
    enabled = [k for k, e in TABLE.fields.items() if e.enabled]
    assert 0 < len(enabled) <= 15, enabled
    assert {"weight_g", "tare"} <= set(enabled)


@pytest.mark.parametrize("field", sorted(TABLE.controls()))
def test_each_control_names_a_client_method_that_takes_its_argument(field: str) -> None:
    assert_method_takes_every_call(SkaleClient, TABLE.entity(field))


def test_only_tare_is_safe() -> None:
    safe = {k for k, e in TABLE.controls().items() if e.control and e.control.safe}
    assert safe == {"tare"}


@pytest.fixture
def skale() -> Iterator[SkaleClient]:
    client = SkaleClient("sim://?speed=10", allow_writes=True, timeout=5.0)
    client.connect()
    try:
        yield client
    finally:
        client.close()


def _commands(client: SkaleClient) -> List[int]:
    sim = client.simulator
    assert sim is not None
    return list(sim.run(lambda: list(sim.skale.commands)))


def test_the_controls_drive_the_real_scale(skale: SkaleClient) -> None:
    sim = skale.simulator
    assert sim is not None
    tare = TABLE.entity("tare").control
    assert tare is not None
    before = len(_commands(skale))
    getattr(skale, tare.method)()  # blocks until the scale reported (near) zero
    assert codec.CMD_TARE in _commands(skale)[before:]

    display = TABLE.entity("display_on").control
    assert display is not None
    getattr(skale, display.method)(display.off)
    assert sim.run(lambda: sim.skale.display_on) is False
    getattr(skale, display.method)(display.on)
    assert sim.run(lambda: sim.skale.display_on) is True

    units = TABLE.entity("display_unit")
    assert units.control is not None and units.control.choices is not None
    assert units.options == tuple(units.control.choices) == DISPLAY_UNITS
    for payload, value in units.control.choices.items():
        getattr(skale, units.control.method)(value)
        assert sim.run(lambda: sim.skale.grams) is (payload == "g")


def test_the_client_refuses_a_unit_the_select_does_not_offer(skale: SkaleClient) -> None:
    units = TABLE.entity("display_unit").control
    assert units is not None and units.choices is not None
    before = _commands(skale)
    with pytest.raises(ConfigurationError, match="lb"):
        getattr(skale, units.method)("lb")
    assert _commands(skale) == before  # refused before anything reached the scale
    assert "lb" not in units.choices


def test_the_controls_need_writes_allowed() -> None:
    with SkaleClient("sim://?speed=10", timeout=5.0) as client:
        for field, entity in TABLE.controls().items():
            control = entity.control
            assert control is not None
            args, kwargs = call_forms(entity)[0]
            with pytest.raises(WriteNotAllowedError):
                getattr(client, control.method)(*args, **kwargs)


def test_the_battery_entry_is_what_the_client_reads(skale: SkaleClient) -> None:
    entity = TABLE.entity("battery")
    assert "battery" in ScaleInfo.__dataclass_fields__  # the client's own name for it
    level = skale.read_battery()
    assert isinstance(level, int) and 0 <= level <= 100
    assert skale.info is not None and skale.info.battery == level
    assert (entity.unit, entity.device_class) == ("%", "battery")


def test_ha_accepts_every_device_class_unit_and_state_class() -> None:
    for field, entity in TABLE.fields.items():
        if entity.device_class is not None:
            assert entity.unit in HA_UNITS[entity.device_class], (field, entity.unit)
            assert entity.state_class in HA_STATE_CLASSES[entity.device_class], field
        if entity.kind != "sensor" or entity.category == "config":
            assert entity.state_class is None, field  # settings and actions: no statistics
        if entity.kind in ("number", "select", "switch"):
            assert entity.category == "config", field
        if entity.icon is not None:
            assert entity.icon.startswith("mdi:"), field
        assert entity.name and entity.name[0].isupper(), field
    # a flow in g/s has no HA device class: shown with its unit and an icon
    flow = TABLE.entity("average_flow_g_s")
    assert (flow.unit, flow.device_class, flow.state_class) == ("g/s", None, "measurement")
    assert flow.icon
