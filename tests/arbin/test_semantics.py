"""The Arbin field table against what the recorder adapter really emits from the simulated
cycler over CTI/TCP, and against Home Assistant's rules (a local subset; tests/ha/ holds the
full check)."""

from __future__ import annotations

import dataclasses
import threading
from typing import Any, Dict, List, Optional, Set, Tuple

from pyburnerkit.arbin.client import ChannelClient, CyclerClient
from pyburnerkit.arbin.models import AUX_TYPES, AuxReading, ChannelState, ChannelStatus
from pyburnerkit.arbin.semantics import AUX_NAMED, TABLE
from pyburnerkit.arbin.sim import ArbinSim, SimChannel
from pyburnerkit.recorder.adapters.arbin import ArbinSource
from pyburnerkit.semantics import Entity

from .conftest import FAST, SECRET, USER, ManualClock

#: aux inputs the instrumented channel reports per type: past AUX_NAMED, so the patterns
#: that name the later inputs are exercised too
AUX_COUNT = AUX_NAMED + 2

Reading = Tuple[Any, ...]


class InstrumentedChannel(SimChannel):
    """A simulated channel wired to every kind of aux input the CTI record can carry.

    The stock simulator maps one aux voltage and one temperature per channel; a cycler with
    pressure, flow, digital I/O... inputs is a configuration of the same device, and its
    readings travel through the real codec, socket and adapter like any other.
    """

    def status(self, *, with_aux: bool) -> ChannelStatus:
        base = super().status(with_aux=with_aux)
        if not with_aux:
            return base
        # digital inputs and outputs read 0 or 1; the rest any number
        aux = {kind: tuple(AuxReading(float(n % 2 if kind in ("di", "do") else n), 0.0)
                           for n in range(1, AUX_COUNT + 1))
               for kind in AUX_TYPES}
        return dataclasses.replace(base, aux=aux)


def _client(sim: ArbinSim, cls: Any = CyclerClient, **kw: Any) -> Any:
    return cls(sim.endpoint, username=USER, password=SECRET, timeout=5.0, connect_timeout=5.0,
               reconnect=FAST, **kw)


def _status_fields() -> Set[str]:
    # What the adapter makes of a ChannelStatus: its scalar fields (aux/bms/smb are lists).
    return {f.name for f in dataclasses.fields(ChannelStatus)} - {"channel", "aux", "bms", "smb"}


def _record(sim: ArbinSim, expected: Set[str], channel: str) -> List[Reading]:
    """Poll the cycler through the recorder adapter until ``channel`` showed every field in
    ``expected``; returns every reading emitted."""
    source = ArbinSource(_client(sim), device="cycler", owns_client=True)
    seen: List[Reading] = []
    complete = threading.Event()
    connected = threading.Event()

    def emit(_source: Any, readings: List[Reading]) -> None:
        seen.extend(readings)
        if expected <= {r[1] for r in seen if r[0] == channel}:
            complete.set()

    def on_state(_source: Any, state: str, _error: Optional[BaseException]) -> None:
        if state == "connected":
            connected.set()

    source.start(emit, on_state)
    try:
        assert connected.wait(10), "the adapter's client never connected"
        for _ in range(5):  # each poll is one all-channel request; one normally suffices
            source.emit(source.poll())
            if complete.is_set():
                break
        assert complete.is_set(), sorted(expected - {r[1] for r in seen if r[0] == channel})
    finally:
        source.stop()
        source.close_client(5.0)
        source.join(5.0)
    return seen


def _running_cycler(sim: ArbinSim, clock: ManualClock) -> None:
    # Channel 1 carries every aux type and is charging (CC_Cycle: 60 s rest, then 1 A).
    sim.run_sync(lambda: sim.channels.__setitem__(0, InstrumentedChannel(0)))
    sim.preset(1, schedule="CC_Cycle.sdx", test_name="cell-42")
    clock.advance(600.0)


def test_every_emitted_field_is_in_the_table_with_the_adapters_unit(
        sim: ArbinSim, clock: ManualClock) -> None:
    _running_cycler(sim, clock)
    expected = _status_fields() | {f"aux_{kind}_{n}" for kind in AUX_TYPES
                                   for n in range(1, AUX_COUNT + 1)}
    readings = _record(sim, expected, channel="1")

    unknown = sorted({r[1] for r in readings if TABLE.lookup(r[1]) is None})
    assert not unknown, f"fields with no table entry: {unknown}"
    # The table keeps the adapter's unit everywhere (it corrects none): a unit-less reading
    # is a unit-less entity, so what a database column and HA show agree.
    wrong = sorted({(r[1], r[3], TABLE.entity(r[1]).unit) for r in readings
                    if TABLE.entity(r[1]).unit != r[3]})
    assert not wrong, f"(field, adapter unit, table unit): {wrong}"

    for channel, field, value, _unit in readings:
        entity = TABLE.entity(field)
        if entity.device_class == "enum":
            assert isinstance(value, ChannelState) and value.name in entity.options, field
        elif entity.kind == "binary_sensor":
            assert value in (0, 1), (field, value)
        elif entity.state_class is not None:
            assert isinstance(value, (int, float)) and not isinstance(value, bool), field
    live = {r[1]: r[2] for r in readings if r[0] == "1"}
    assert live["state"] is ChannelState.CHARGE and live["charge_capacity_ah"] > 0
    assert live["test_name"] == "cell-42"
    # the friendly names reach past the stock wiring, and later inputs fall to the patterns
    assert TABLE.entity("aux_pressure_2").name == "Aux pressure 2"
    assert TABLE.entity(f"aux_flow_{AUX_COUNT}").name == f"aux_flow_{AUX_COUNT}"


def test_each_channel_device_shows_a_dashboard_of_at_most_15(
        sim: ArbinSim, clock: ManualClock) -> None:
    assert TABLE.per_channel  # every channel holds a cell: a device of its own
    _running_cycler(sim, clock)
    readings = _record(sim, _status_fields() | {"aux_temperature_1"}, channel="16")
    enabled: Dict[str, Set[str]] = {}
    for channel, field, _value, _unit in readings:
        enabled.setdefault(channel, set())
        if TABLE.entity(field).enabled:
            enabled[channel].add(field)
    assert len(enabled) == 16
    for channel, fields in enabled.items():
        assert 0 < len(fields) <= 15, (channel, sorted(fields))
    # the instrumented channel (every aux type) shows no more than a stock one
    assert enabled["1"] == enabled["16"]
    # however many aux inputs a channel has: only exact keys are enabled, at most 15 of them
    patterns = [e for k, e in TABLE.fields.items() if not isinstance(k, str)]
    assert patterns and not any(e.enabled for e in patterns)
    assert sum(e.enabled for e in TABLE.fields.values()) <= 15


def test_no_controls_because_the_adapter_wraps_a_read_only_cycler_client(
        sim: ArbinSim) -> None:
    assert TABLE.controls() == {}
    assert all(e.control is None and e.kind in ("sensor", "binary_sensor")
               for e in TABLE.fields.values())
    source = ArbinSource.from_config(sim.endpoint, "cycler",
                                     {"username": USER, "password": SECRET})
    try:
        # The client a configured source owns: it has no command that changes a channel.
        # Were it a ChannelClient, a "Stop" button would become possible, and this fails.
        assert type(source.client) is CyclerClient
        for method in ("stop", "start", "resume", "continue_test", "set_meta_variable"):
            assert not hasattr(source.client, method), method
            assert callable(getattr(ChannelClient, method)), method
    finally:
        source.close_client(5.0)


def test_counters_grow_within_a_test_and_restart_at_zero(
        sim: ArbinSim, clock: ManualClock) -> None:
    """What ``total_increasing`` on the capacity and energy counters stands on."""
    counters = [f for f, e in TABLE.fields.items()
                if isinstance(f, str) and e.state_class in ("total", "total_increasing")]
    assert sorted(counters) == ["charge_capacity_ah", "charge_energy_wh",
                                "discharge_capacity_ah", "discharge_energy_wh"]
    assert {TABLE.entity(f).state_class for f in counters} == {"total_increasing"}
    channel = _client(sim, ChannelClient, channel=2, allow_writes=True)
    try:
        channel.connect()
        channel.assign_schedule("CC_Cycle.sdx")
        channel.start("first")
        history: List[Dict[str, float]] = []
        for _ in range(12):  # through the charge, the rest and into the discharge
            clock.advance(1200.0)
            status = channel.read_status()
            history.append({f: getattr(status, f) for f in counters})
        for before, after in zip(history, history[1:]):
            for f in counters:
                assert after[f] >= before[f], (f, before[f], after[f])
        assert all(history[-1][f] > 0 for f in counters), history[-1]
        channel.stop()
        channel.start("second")
        fresh = channel.read_status()
        assert all(getattr(fresh, f) == 0.0 for f in counters)
    finally:
        channel.close()


# Home Assistant's device-class/unit pairs for the classes this table uses (HA 2024.x/2025.x,
# homeassistant.components.sensor.const DEVICE_CLASS_UNITS, transcribed by hand).
_HA_UNITS = {
    "voltage": {"V", "mV", "µV", "kV", "MV"},
    "current": {"A", "mA"},
    "power": {"W", "kW", "MW", "GW", "TW", "mW", "BTU/h"},
    "energy": {"Wh", "kWh", "MWh", "GWh", "TWh", "J", "kJ", "MJ", "GJ", "cal", "kcal",
               "Mcal", "Gcal"},
    "temperature": {"°C", "°F", "K"},
    "duration": {"d", "h", "min", "s", "ms"},
    "pressure": {"Pa", "hPa", "kPa", "bar", "cbar", "mbar", "mmHg", "inHg", "psi"},
}
_BINARY_CLASSES = {"problem", "safety", "running", "connectivity", None}


def _entities() -> List[Tuple[str, Entity]]:
    return [(k if isinstance(k, str) else k.pattern, e) for k, e in TABLE.fields.items()]


def test_every_entity_follows_home_assistants_rules() -> None:
    for key, e in _entities():
        assert e.category != "config", key  # nothing here is a setting
        if e.icon is not None:
            assert e.icon.startswith("mdi:"), key
        if e.kind == "binary_sensor":
            assert e.device_class in _BINARY_CLASSES and not e.unit, key
            assert e.state_class is None and e.precision is None, key
        elif e.device_class == "enum":
            assert e.options and not e.unit and e.state_class is None, key
        elif e.device_class is not None:
            assert e.unit in _HA_UNITS[e.device_class], (key, e.device_class, e.unit)
            assert e.state_class is not None, key
        if e.device_class == "energy":
            assert e.state_class in ("total", "total_increasing"), key
        if not e.unit and e.device_class is None and e.kind == "sensor" \
                and e.state_class is None:
            assert e.precision is None, key  # text: nothing to round
    state = TABLE.entity("state")
    assert state.options == tuple(s.name for s in ChannelState)
    assert TABLE.entity("voltage_v").name == "Voltage"
    assert TABLE.entity("charge_capacity_ah").device_class is None  # Ah: no HA class
