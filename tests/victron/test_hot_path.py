"""The monitor's signal hot path (issue 16): a fast decoder for the usual ItemsChanged shape
that agrees with the codec, and value snapshots that share unchanged paths yet never change
once published."""

from __future__ import annotations

import random
import threading
from typing import Any, Dict, List

import dbus
import pytest

from pyburnerkit.victron import ValuesChanged, VictronMonitor, VictronService, codec
from pyburnerkit.victron.client import _init_fast_types, _split_items_fast, _Values
from pyburnerkit.victron.models import ItemValue
from pyburnerkit.victron.sim import VictronSim

from ..helpers import wait_until


def _entry(value: Any, text: Any = "t", **more: Any) -> dbus.Dictionary:
    entry = {"Value": value, **more}
    if text is not None:
        entry["Text"] = text
    return dbus.Dictionary(entry, signature="sv")


def _power_signals(owner: str, count: int) -> List[Any]:
    """ItemsChanged signals from ``owner`` setting /Ac/Power to 1.0 .. ``count``, as the pump
    would hand them over."""
    from dbus import lowlevel
    messages = []
    for i in range(1, count + 1):
        msg = lowlevel.SignalMessage("/", codec.BUSITEM, "ItemsChanged")
        msg.append(dbus.Dictionary({"/Ac/Power": _entry(dbus.Double(i), f"{i} W")},
                                   signature="sv"), signature="a{sa{sv}}")
        msg.set_sender(owner)
        messages.append(msg)
    return messages



def _power_service_seen(mon: VictronMonitor, svc: VictronService, instance: int) -> str:
    """Register ``svc`` with one /Ac/Power item; its bus owner once ``mon`` has it."""
    svc.add_mandatory_paths(device_instance=instance)
    svc.add_item("/Ac/Power", 0.0)
    svc.register()
    return mon.wait_for_service(svc.name).owner


PAYLOADS = [
    {"/Ac/Power": _entry(dbus.Double(1.5), dbus.String("1.5 W"))},
    {"/A": _entry(dbus.Int32(-3)), "/B": _entry(dbus.UInt64(2 ** 40)),
     "/C": _entry(dbus.Byte(7)), "/D": _entry(dbus.String("text"))},
    {"/Flag": _entry(dbus.Boolean(True))},                        # bool, not int
    {"/Gone": _entry(dbus.Array([], signature="i"))},             # invalid -> None
    {"/List": _entry(dbus.Array([dbus.Int32(1), dbus.Int32(2)]))},
    {"/NoText": _entry(dbus.Double(2.0), None)},                  # codec path
    {"/Lim": _entry(dbus.Int32(5), Min=dbus.Int32(0), Max=dbus.Int32(9))},
    {"bad path": _entry(dbus.Int32(1)), "/Ok": _entry(dbus.Int32(2))},
    {"/BadText": _entry(dbus.Int32(1), dbus.Byte(3))},
    {"/Ac/Power": dbus.String("not a dict"), "/Ok": _entry(dbus.Double(0.5))},
]


@pytest.mark.parametrize("payload", PAYLOADS)
def test_fast_decoder_agrees_with_the_codec(payload: Dict[str, Any]) -> None:
    _init_fast_types()
    wrapped = dbus.Dictionary(payload, signature="sv")
    fast = _split_items_fast(wrapped)
    assert fast == codec.split_items(wrapped)
    for path, (_, value, _) in fast[0].items():
        # plain Python types, never dbus subclasses that keep a variant level
        assert type(value) in (bool, int, float, str, list, type(None)), (path, type(value))


def test_fast_decoder_keeps_bools_and_floats_apart() -> None:
    _init_fast_types()
    entries, _, _ = _split_items_fast(dbus.Dictionary(
        {"/B": _entry(dbus.Boolean(False)), "/D": _entry(dbus.Double(3.0)),
         "/I": _entry(dbus.Int16(3))}, signature="sv"))
    assert entries["/B"][1] is False
    assert type(entries["/D"][1]) is float and type(entries["/I"][1]) is int


def test_value_snapshots_share_paths_but_never_change() -> None:
    rng = random.Random(7)
    model: Dict[str, ItemValue] = {f"/P{i}": ItemValue(i, str(i)) for i in range(100)}
    current: Any = dict(model)
    history: List[Any] = []
    for step in range(3000):
        changes = {}
        for _ in range(rng.choice([1, 1, 1, 3, 40])):
            path = f"/P{rng.randrange(140)}"          # some paths are new
            changes[path] = ItemValue(step, f"s{step}")
        current = _Values.updated(current, changes)
        model = dict(model, **changes)
        history.append((current, dict(model)))
    for snapshot, expected in history[::97] + history[-3:]:
        assert dict(snapshot) == expected
        assert len(snapshot) == len(expected)
        assert list(snapshot) == list(snapshot.keys())
        assert sorted(snapshot) == sorted(expected)
        assert all(snapshot.get(p) == v and p in snapshot for p, v in expected.items())
        assert snapshot.get("/Nope", "d") == "d" and "/Nope" not in snapshot
        with pytest.raises(KeyError):
            snapshot["/Nope"]


def test_monitor_events_and_snapshots_under_many_signals() -> None:
    """Every change arrives, in order, carrying what changed; a ServiceInfo read earlier
    keeps the values it had."""
    sim = VictronSim(interval=0)
    sim.start()
    name = "com.victronenergy.grid.hotpath"
    got: List[float] = []
    done = threading.Event()
    count = 2000
    try:
        with VictronService(name, bus_address=sim.address) as svc, \
                VictronMonitor(sim.address, timeout=5.0) as mon:
            svc.add_mandatory_paths(device_instance=40)
            for i in range(30):
                svc.add_item(f"/Cell/{i}", 0.0)
            svc.add_item("/Ac/Power", 0.0)
            svc.register()

            def on_change(ev: ValuesChanged) -> None:
                if ev.service == name and "/Ac/Power" in ev.values:
                    assert list(ev.values) == ["/Ac/Power"]
                    got.append(ev.values["/Ac/Power"].value)
                    if len(got) == count:
                        done.set()

            mon.subscribe(on_change, ValuesChanged)
            mon.connect()
            before = mon.wait_for_service(name)
            frozen = dict(before.values)
            for i in range(1, count + 1):
                svc.set("/Ac/Power", float(i))
            assert done.wait(60), f"{len(got)} of {count} changes arrived"
            assert got == [float(i) for i in range(1, count + 1)]
            assert dict(before.values) == frozen
            after = mon.service(name)
            assert after is not None and after.values["/Ac/Power"].value == float(count)
            assert len(after.values) == len(before.values)
            assert after.values["/Cell/7"] == before.values["/Cell/7"]
    finally:
        sim.close()


def test_batched_signals_keep_the_cache_ahead_and_the_events_in_order() -> None:
    """Signals drained in one batch publish the cache first, then their events in order:
    every callback finds the cache at least as new as its event, and the service's removal,
    right after a flood, comes after its last change."""
    from pyburnerkit.victron import ServiceRemoved
    sim = VictronSim(interval=0)
    sim.start()
    name = "com.victronenergy.grid.batched"
    events: List[Any] = []
    behind: List[Any] = []
    gone = threading.Event()
    count = 3000
    try:
        with VictronMonitor(sim.address, timeout=5.0) as mon:
            def on_event(ev: Any) -> None:
                if isinstance(ev, ValuesChanged) and ev.service == name:
                    value = ev.values["/Ac/Power"].value
                    cached = mon.get_value(name, "/Ac/Power")
                    if cached is not None and cached < value:  # None: removed since
                        behind.append((value, cached))
                    events.append(value)
                elif isinstance(ev, ServiceRemoved) and ev.name == name:
                    events.append("removed")
                    gone.set()

            mon.subscribe(on_event)
            mon.connect()
            with VictronService(name, bus_address=sim.address) as svc:
                svc.add_mandatory_paths(device_instance=41)
                svc.add_item("/Ac/Power", 0.0)
                svc.register()
                mon.wait_for_service(name)
                for i in range(1, count + 1):
                    svc.set("/Ac/Power", float(i))
                # the service's close is not what is tested: let its signals all arrive first
                wait_until(lambda: len(events) >= count, timeout=60,
                           message=f"{count} ValuesChanged")
            assert gone.wait(60), f"no ServiceRemoved; {len(events)} events"
            assert behind == [], f"{len(behind)} callbacks saw an older cache: {behind[:3]}"
            assert events == [float(i) for i in range(1, count + 1)] + ["removed"]
    finally:
        sim.close()


def test_a_pump_that_never_goes_idle_still_feeds_the_io_thread(monkeypatch: Any) -> None:
    """In a flood the pump wakes the I/O thread once per burst, when it has dispatched what
    the bus sent (a GLib idle source). A pump that does not get idle - here it is held inside
    one dispatch, as a flood would keep it - must still wake the I/O thread once a burst
    reaches ``INBOX_WAKE_BATCH`` signals, or values would wait for as long as the flood lasts."""
    from pyburnerkit.victron import client as victron_client
    from pyburnerkit.victron.bus import PUMP
    from pyburnerkit.victron.client import INBOX_WAKE_BATCH
    # every message counts as part of a flood (none is a lone one that wakes at once)
    monkeypatch.setattr(victron_client, "FLOOD_GAP_S", 3600.0)
    sim = VictronSim(interval=0)
    sim.start()
    name = "com.victronenergy.grid.busy"
    marker = float(INBOX_WAKE_BATCH)
    seen = threading.Event()
    try:
        with VictronMonitor(sim.address, timeout=5.0) as mon, \
                VictronService(name, bus_address=sim.address) as svc:
            mon.subscribe(lambda ev: ev.service == name and any(
                item.value == marker for item in ev.values.values()) and seen.set(),
                ValuesChanged)
            mon.connect()
            owner = _power_service_seen(mon, svc, 42)
            session = mon._session
            messages = _power_signals(owner, INBOX_WAKE_BATCH)

            def one_long_dispatch() -> bool:
                for msg in messages:
                    session._filter(session.conn, msg)  # what the pump does per message
                return seen.wait(10)  # still inside the dispatch: the pump is not idle

            assert PUMP.run_in_pump(one_long_dispatch, timeout=30), \
                "the I/O thread was not woken while the pump stayed busy"
            assert mon.get_value(name, "/Ac/Power") == marker
    finally:
        sim.close()


def test_fast_constructors_make_the_same_objects_as_the_dataclasses() -> None:
    """``_item_value``/``_values_changed`` fill the dataclass fields without ``__init__``:
    if a field is added to either class, this fails until they set it too."""
    import dataclasses
    import time as _time
    from types import MappingProxyType

    from pyburnerkit.victron.client import _item_value, _values_changed
    assert [f.name for f in dataclasses.fields(ItemValue)] == ["value", "text"]
    assert [f.name for f in dataclasses.fields(ValuesChanged)] == ["timestamp", "service",
                                                                   "values"]
    item = _item_value(1.5, "1.5 W")
    assert item == ItemValue(1.5, "1.5 W") and hash(item) == hash(ItemValue(1.5, "1.5 W"))
    assert repr(item) == repr(ItemValue(1.5, "1.5 W")) and item.valid
    with pytest.raises(dataclasses.FrozenInstanceError):
        item.value = 2  # type: ignore[misc]
    values = MappingProxyType({"/P": item})
    before = _time.time()
    event = _values_changed("com.victronenergy.grid.x", values)
    assert event == ValuesChanged("com.victronenergy.grid.x", values)  # timestamp: compare=False
    assert before <= event.timestamp <= _time.time()
    assert repr(event) == repr(ValuesChanged("com.victronenergy.grid.x", values))


@pytest.mark.parametrize("payload", PAYLOADS)
def test_the_one_pass_path_gives_what_the_general_path_gives(payload: Dict[str, Any]) -> None:
    """The monitor's one-pass path (payload straight to items) and the general one (entries,
    then items) agree wherever the one-pass path takes a payload; the rest it leaves whole
    to the codec."""
    from dbus import lowlevel

    from pyburnerkit.victron.client import _fast_items, _item_value
    _init_fast_types()
    # through a real message, so the payload has the types dbus-python hands over
    msg = lowlevel.SignalMessage("/", codec.BUSITEM, "ItemsChanged")
    msg.append(dbus.Dictionary(payload, signature="sv"), signature="a{sv}")
    received = msg.get_args_list()[0]
    fast = _fast_items(received, _item_value)
    entries, limits, problems = codec.split_items(received)
    general = {path: ItemValue(value, text if text is not None
                               else codec.default_text(path, value))
               for path, (has, value, text) in entries.items() if has}
    usual = all(set(entry) == {"Value", "Text"} and isinstance(entry["Text"], str)
                for entry in payload.values() if isinstance(entry, dict)) \
        and all(isinstance(entry, dict) for entry in payload.values()) \
        and not problems
    assert (fast is not None) == usual, (payload, fast)
    if fast is not None:
        assert fast == general and not limits
        assert all(type(item.value) in (bool, int, float, str, list, type(None))
                   for item in fast.values())


def test_a_signal_that_fails_mid_batch_costs_only_itself(monkeypatch: Any) -> None:
    """The drain handles a batch of signals under one ``try``: a bug that raises on one signal
    is counted and logged, and the signals after it in the same batch are still applied."""
    from pyburnerkit.victron import client as victron_client
    from pyburnerkit.victron.bus import PUMP
    monkeypatch.setattr(victron_client, "FLOOD_GAP_S", 3600.0)  # one batch, woken at the end
    store = VictronMonitor._io_store

    def buggy_store(self: Any, svc: Any, updated: Any, defer: bool) -> None:
        item = updated.get("/Ac/Power")
        if item is not None and item.value == 5.0:
            raise RuntimeError("a bug in the hot path")
        store(self, svc, updated, defer)
    monkeypatch.setattr(VictronMonitor, "_io_store", buggy_store)
    sim = VictronSim(interval=0)
    sim.start()
    name = "com.victronenergy.grid.midbatch"
    got: List[float] = []
    done = threading.Event()
    try:
        with VictronMonitor(sim.address, timeout=5.0) as mon, \
                VictronService(name, bus_address=sim.address) as svc:
            def on_change(ev: ValuesChanged) -> None:
                if ev.service == name and "/Ac/Power" in ev.values:
                    got.append(ev.values["/Ac/Power"].value)
                    if got[-1] == 10.0:
                        done.set()
            mon.subscribe(on_change, ValuesChanged)
            mon.connect()
            owner = _power_service_seen(mon, svc, 43)
            session = mon._session
            messages = _power_signals(owner, 10)

            def one_dispatch() -> None:
                for msg in messages:
                    session._filter(session.conn, msg)
            PUMP.run_in_pump(one_dispatch, timeout=30)
            assert done.wait(10), f"only {got} arrived"
            assert got == [1.0, 2.0, 3.0, 4.0, 6.0, 7.0, 8.0, 9.0, 10.0]
            assert mon._unexpected_errors == 1
            assert mon.get_value(name, "/Ac/Power") == 10.0
    finally:
        sim.close()
