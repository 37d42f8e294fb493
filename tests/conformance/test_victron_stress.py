"""The stress layer for Victron: a real private dbus-daemon, the simulated Venus services, and
VictronMonitor / VictronService clients driven hard.

Sections: concurrency, timeouts and stalls, re-use of helper objects, hostile input (hypothesis
over arbitrary dbus-python values, the codec and the session's message handlers, plus a live
hostile peer), and resources (connect/close and reconnect cycles, flat).
"""

from __future__ import annotations

import itertools
import os
import signal
import threading
import time
from typing import Any, Callable, Dict, Iterator, List

import dbus
import dbus.lowlevel as lowlevel
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pyburnerkit.errors import DeviceTimeoutError, ProtocolError
from pyburnerkit.types import Reconnect
from pyburnerkit.victron import (Setting, ValuesChanged, VictronMonitor, VictronService,
                                 codec)
from pyburnerkit.victron.bus import PUMP
from pyburnerkit.victron.sim import SimService, VictronSim

from ..helpers import wait_until
from .stress import DOCUMENTED_ERRORS, cycle, hammer, run_on_io, undocumented

FUZZ = settings(max_examples=300, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                       HealthCheck.function_scoped_fixture])
LIMITED = "/Settings/Stress/Current"


@pytest.fixture
def sim() -> Iterator[VictronSim]:
    simulator = VictronSim(interval=0.05).start()
    try:
        yield simulator
    finally:
        simulator.close()


@pytest.fixture
def monitor(sim: VictronSim) -> Iterator[VictronMonitor]:
    mon = VictronMonitor(sim.address, allow_writes=True, timeout=5.0,
                         reconnect=Reconnect(min_delay=0.05, max_delay=0.5, jitter=0.1))
    mon.connect()
    try:
        yield mon
    finally:
        mon.close()




# ====================================================================== 1. concurrency
def test_eight_threads_mixing_every_read_and_write(sim: VictronSim,
                                                   monitor: VictronMonitor) -> None:
    svc = VictronService("com.victronenergy.grid.stress", bus=sim.address,
                         allow_writes=True)
    svc.add_mandatory_paths(device_instance=61)
    svc.add_item("/Ac/Power", 0.0, unit="W")
    svc.add_item("/Limit", 5, writable=True, validator=lambda p, v: 0 <= v <= 10)
    svc.register()
    try:
        monitor.settings.add([Setting(LIMITED, 10, 0, 50, unit="A")])
        monitor.wait_for_service(svc.name, timeout=5)
        counter = itertools.count()
        ops: Dict[str, Callable[[], Any]] = {
            "read_value": lambda: monitor.read_value(sim.GRID, "/Ac/Power"),
            "read_text": lambda: monitor.read_text(sim.BATTERY, "/Soc"),
            "read_items": lambda: monitor.read_items(sim.SOLAR),
            "cache reads": lambda: (monitor.get_value(sim.BATTERY, "/Soc"), monitor.services(),
                                    monitor.seen(sim.GRID, "/Ac/Power")),
            "set_value": lambda: monitor.set_value(sim.SOLAR, "/Mode",
                                                   1 if next(counter) % 2 else 4),
            "set_value_nowait": lambda: monitor.set_value_nowait(
                svc.name, "/Limit", next(counter) % 11).result(5),
            "settings.set": lambda: monitor.settings.set(LIMITED, next(counter) % 51),
            "settings.add": lambda: monitor.settings.add([Setting(LIMITED, 10, 0, 50)]),
            "service publish": lambda: svc.set("/Ac/Power", float(next(counter))),
            "wait_for_value": lambda: monitor.wait_for_value(sim.GRID, "/Ac/Power",
                                                             timeout=5),
        }
        result = hammer(ops, threads=8, duration=2.5)
        assert not result.stuck_threads, result.stuck_threads
        assert not result.errors, result.describe_errors()     # no error is expected at all
        assert all(result.calls[name] > 0 for name in ops), result.calls
        # The cache converges on the device's state.
        mode = sim.value(sim.SOLAR, "/Mode")
        assert monitor.wait_for_value(sim.SOLAR, "/Mode", lambda v: v == mode, timeout=5) == mode
        current = sim.run_on_thread(lambda: sim.settings.settings[LIMITED].value)
        assert monitor.wait_for_value("com.victronenergy.settings", LIMITED,
                                      lambda v: v == current, timeout=5) == current
        assert monitor.wait_for_value(svc.name, "/Limit", lambda v: v == svc.get("/Limit"),
                                      timeout=5) == svc.get("/Limit")
        assert monitor.protocol_errors == 0 and monitor._unexpected_errors == 0
    finally:
        svc.close()


# ====================================================================== 2. timeouts and stalls
#: Recovery bound after a stall: D-Bus keeps the link, so the first call after the stall must
#: succeed at once (one round trip); we allow 1 s on a loaded 2-core machine.
RECOVERY_BOUND = 1.0


def test_a_tiny_timeout_then_normal_calls(sim: VictronSim, monitor: VictronMonitor) -> None:
    sim.hold_replies(0.3)
    with pytest.raises(DeviceTimeoutError):
        monitor.read_value(sim.GRID, "/Ac/Power", timeout=0.01)
    sim.hold_replies(0.0)
    for _ in range(20):
        assert monitor.read_value(sim.GRID, "/Ac/Power", timeout=2) is not None


def test_silenced_services_then_resumed(sim: VictronSim, monitor: VictronMonitor) -> None:
    timeout = 0.2
    sim.silence(True)
    started = time.monotonic()
    for _ in range(2):   # the stall lasts two timeouts
        with pytest.raises(DeviceTimeoutError):
            monitor.read_value(sim.GRID, "/Ac/Power", timeout=timeout)
    assert time.monotonic() - started >= 2 * timeout
    sim.silence(False)
    started = time.monotonic()
    assert monitor.read_value(sim.GRID, "/Ac/Power", timeout=RECOVERY_BOUND) is not None
    assert time.monotonic() - started < RECOVERY_BOUND


def test_a_stopped_dbus_daemon_then_resumed(sim: VictronSim, monitor: VictronMonitor) -> None:
    timeout = 0.3
    pid = sim.daemon.proc.pid
    os.kill(pid, signal.SIGSTOP)
    try:
        for _ in range(2):
            with pytest.raises(DeviceTimeoutError):
                monitor.read_value(sim.GRID, "/Ac/Power", timeout=timeout)
    finally:
        os.kill(pid, signal.SIGCONT)
    started = time.monotonic()
    assert monitor.read_value(sim.GRID, "/Ac/Power", timeout=RECOVERY_BOUND) is not None
    assert time.monotonic() - started < RECOVERY_BOUND
    assert monitor.connected


# ====================================================================== 3. re-use
def test_subscriptions_made_and_cancelled_many_times(sim: VictronSim,
                                                     monitor: VictronMonitor) -> None:
    stale_calls: List[int] = []
    for round_no in range(40):
        got = threading.Event()
        cancelled = threading.Event()

        def on_change(event: ValuesChanged, n: int = round_no) -> None:
            if cancelled.is_set():
                stale_calls.append(n)
            got.set()
        sub = monitor.subscribe(on_change, ValuesChanged)
        assert got.wait(5), f"round {round_no}: no change reached the subscription"
        sub.cancel()
        cancelled.set()
    # Later changes reach none of the 40 cancelled callbacks.
    seen = threading.Event()
    with monitor.subscribe(lambda e: seen.set(), ValuesChanged):
        assert seen.wait(5)
    assert stale_calls == []


def test_nowait_futures_and_their_timers_never_touch_later_ones(sim: VictronSim,
                                                                monitor: VictronMonitor) -> None:
    # Each future arms a timer on the I/O thread; an old timer firing must not fail a new call.
    for i in range(60):
        monitor.set_value_nowait(sim.SOLAR, "/Mode", 1 if i % 2 else 4, timeout=0.05).result(5)
    sim.hold_replies(0.2)
    late = monitor.set_value_nowait(sim.SOLAR, "/Mode", 4, timeout=0.05)
    with pytest.raises(DeviceTimeoutError):
        late.result(5)
    sim.hold_replies(0.0)
    assert monitor.set_value_nowait(sim.SOLAR, "/Mode", 1, timeout=2).result(5) is None


def test_event_iterators_opened_and_closed_many_times(sim: VictronSim,
                                                      monitor: VictronMonitor) -> None:
    for _ in range(30):
        events = monitor.events(5.0, ValuesChanged)
        first = next(iter(events))
        assert isinstance(first, ValuesChanged)
        events.close()
    assert monitor.connected


# ====================================================================== 4. hostile input
def _basic_dbus() -> st.SearchStrategy:
    levels = st.integers(0, 2)
    return st.one_of(
        st.builds(dbus.Byte, st.integers(0, 255), variant_level=levels),
        st.builds(dbus.Boolean, st.booleans(), variant_level=levels),
        st.builds(dbus.Int16, st.integers(-2 ** 15, 2 ** 15 - 1), variant_level=levels),
        st.builds(dbus.UInt16, st.integers(0, 2 ** 16 - 1), variant_level=levels),
        st.builds(dbus.Int32, st.integers(-2 ** 31, 2 ** 31 - 1), variant_level=levels),
        st.builds(dbus.UInt32, st.integers(0, 2 ** 32 - 1), variant_level=levels),
        st.builds(dbus.Int64, st.integers(-2 ** 63, 2 ** 63 - 1), variant_level=levels),
        st.builds(dbus.UInt64, st.integers(0, 2 ** 64 - 1), variant_level=levels),
        st.builds(dbus.Double, st.floats(), variant_level=levels),
        st.builds(dbus.String, st.text(max_size=8), variant_level=levels),
        st.builds(dbus.ObjectPath, st.sampled_from(["/", "/Ac/Power", "/Level", "/x/y"]),
                  variant_level=levels),
        st.builds(dbus.Signature, st.sampled_from(["", "i", "a{sv}", "(ii)"]),
                  variant_level=levels),
        st.sampled_from(["Value", "Text", "Min", "Max", "/Level", "/Ac/Power", "not a path"]),
    )


def _plain() -> st.SearchStrategy:
    return st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=8),
                     st.binary(max_size=8), st.just(object()), st.just(bytearray(b"\xda")),
                     st.frozensets(st.integers(), max_size=2))


def _containers(children: st.SearchStrategy) -> st.SearchStrategy:
    keys = st.one_of(st.sampled_from(["Value", "Text", "Min", "Max", "/Level", "/Ac/Power",
                                      "path", "error", "value", "default"]),
                     st.builds(dbus.Byte, st.integers(0, 255)), st.integers(0, 3),
                     st.builds(dbus.String, st.text(max_size=4)))
    return st.one_of(
        st.lists(children, max_size=4).map(lambda xs: dbus.Array(xs, signature="v")),
        st.lists(children, max_size=4),
        st.lists(children, min_size=1, max_size=3).map(lambda xs: dbus.Struct(xs)),
        st.tuples(children, children),
        st.dictionaries(keys, children, max_size=4).map(
            lambda d: dbus.Dictionary(d, signature="sv")),
        st.dictionaries(keys, children, max_size=4),
        st.binary(max_size=6).map(dbus.ByteArray),
    )


ANY_DBUS = st.recursive(st.one_of(_basic_dbus(), _plain()), _containers, max_leaves=25)
ENTRY = st.dictionaries(st.sampled_from(["Value", "Text", "Min", "Max", "Default"]), ANY_DBUS,
                        max_size=5)
ITEMS = st.one_of(ANY_DBUS, st.dictionaries(st.one_of(
    st.sampled_from(["/Level", "/Ac/Power", "/DeviceInstance", "bad path", "/"]),
    _basic_dbus()), st.one_of(ENTRY, ANY_DBUS), max_size=4))


def _decoders() -> Dict[str, Callable[[Any], Any]]:
    return {
        "unwrap": codec.unwrap,
        "parse_entry": codec.parse_entry,
        "parse_limits": codec.parse_limits,
        "parse_items": codec.parse_items,
        "split_items": codec.split_items,
        "parse_root_dict": lambda v: codec.parse_root_dict(v, v),
        "parse_add_settings_reply": codec.parse_add_settings_reply,
        "parse_class_instance": codec.parse_class_instance,
        "setting_error_text": codec.setting_error_text,
        "default_text": lambda v: codec.default_text("/ProductId", v),
        "default_text path": lambda v: codec.default_text(v, v),
        "wrap": codec.wrap,
        "coerce int": lambda v: codec.coerce(v, int),
        "coerce float": lambda v: codec.coerce(v, float),
        "coerce str": lambda v: codec.coerce(v, str),
        "coerce bool": lambda v: codec.coerce(v, bool),
        "check_path": codec.check_path,
        "check_service_name": codec.check_service_name,
        "check_destination": codec.check_destination,
        "service_class": codec.service_class,
        "item_entry": lambda v: codec.item_entry(v, "x"),
    }


@FUZZ
@given(value=st.one_of(ANY_DBUS, ITEMS, ENTRY))
def test_every_codec_function_raises_only_documented_errors(value: Any) -> None:
    found = {name: undocumented(lambda fn=fn: fn(value), DOCUMENTED_ERRORS)
             for name, fn in _decoders().items()}
    found = {name: f"{type(exc).__name__}: {exc}" for name, exc in found.items()
             if exc is not None}
    assert not found, found


# Real messages need well-typed bodies: dbus-python guessing the type of a mixed plain dict
# inside a variant makes libdbus abort the process (its assertion, on the *sending* side). So
# the bodies below are built from explicitly typed values only, as a peer's library would.
_TEXT = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"),
                max_size=6)
_BASIC_TYPED = st.one_of(
    st.builds(lambda v: ("y", dbus.Byte(v)), st.integers(0, 255)),
    st.builds(lambda v: ("b", dbus.Boolean(v)), st.booleans()),
    st.builds(lambda v: ("n", dbus.Int16(v)), st.integers(-2 ** 15, 2 ** 15 - 1)),
    st.builds(lambda v: ("q", dbus.UInt16(v)), st.integers(0, 2 ** 16 - 1)),
    st.builds(lambda v: ("i", dbus.Int32(v)), st.integers(-2 ** 31, 2 ** 31 - 1)),
    st.builds(lambda v: ("u", dbus.UInt32(v)), st.integers(0, 2 ** 32 - 1)),
    st.builds(lambda v: ("x", dbus.Int64(v)), st.integers(-2 ** 63, 2 ** 63 - 1)),
    st.builds(lambda v: ("t", dbus.UInt64(v)), st.integers(0, 2 ** 64 - 1)),
    st.builds(lambda v: ("d", dbus.Double(v)), st.floats()),
    st.builds(lambda v: ("s", dbus.String(v)), _TEXT),
    st.builds(lambda v: ("o", dbus.ObjectPath(v)), st.sampled_from(["/", "/Level", "/a/b"])),
    st.builds(lambda v: ("g", dbus.Signature(v)), st.sampled_from(["", "i", "a{sv}"])),
)


def _typed_containers(children: st.SearchStrategy) -> st.SearchStrategy:
    def variant(pair: Any) -> Any:
        sig, value = pair
        return "v", value
    return st.one_of(
        children.map(variant),
        st.lists(children, max_size=3).map(
            lambda xs: ("av", dbus.Array([v for _s, v in xs], signature="v"))),
        children.map(lambda p: ("a" + p[0], dbus.Array([p[1], p[1]], signature=p[0]))),
        st.lists(children, min_size=1, max_size=3).map(
            lambda xs: ("(" + "".join(s for s, _v in xs) + ")",
                        dbus.Struct([v for _s, v in xs], signature="".join(s for s, _v in xs)))),
        st.dictionaries(st.sampled_from(["Value", "Text", "Min", "Max", "Default", "/Level"]),
                        children, max_size=4).map(
            lambda d: ("a{sv}", dbus.Dictionary({k: v for k, (_s, v) in d.items()},
                                                signature="sv"))),
        st.dictionaries(st.integers(0, 255), children, max_size=3).map(
            lambda d: ("a{yv}", dbus.Dictionary({dbus.Byte(k): v for k, (_s, v) in d.items()},
                                                signature="yv"))),
    )


TYPED = st.recursive(_BASIC_TYPED, _typed_containers, max_leaves=15)
_TYPED_ENTRY = st.dictionaries(st.sampled_from(["Value", "Text", "Min", "Max", "Default"]),
                               TYPED, max_size=5).map(
    lambda d: dbus.Dictionary({k: v for k, (_s, v) in d.items()}, signature="sv"))
#: A signal body: items-shaped (``a{sa{sv}}``), entry-shaped (``a{sv}``) or anything typed.
BODY = st.one_of(
    st.dictionaries(st.sampled_from(["/Level", "/Ac/Power", "/DeviceInstance", "/", "/x/y"]),
                    _TYPED_ENTRY, max_size=4).map(
        lambda d: ("a{sa{sv}}", dbus.Dictionary(d, signature="sa{sv}"))),
    _TYPED_ENTRY.map(lambda e: ("a{sv}", e)),
    TYPED,
)


def _signal(member: str, path: str, body: Any, sender: str) -> Any:
    signature, payload = body
    msg = lowlevel.SignalMessage(path, codec.BUSITEM, member)
    msg.append(payload, signature=signature)
    msg.set_sender(sender)
    return msg


@FUZZ
@given(member=st.sampled_from(["ItemsChanged", "PropertiesChanged"]),
       path=st.sampled_from(["/", "/Ac/Power", "/Level"]), body=BODY)
def test_the_signal_decoder_raises_only_protocol_errors(member: str, path: str,
                                                        body: Any) -> None:
    msg = _signal(member, path, body, ":1.99")
    exc = undocumented(lambda: VictronMonitor._decode_signal(msg), (ProtocolError,))
    assert exc is None, f"{type(exc).__name__}: {exc}"


@pytest.fixture
def hostile_peer(sim: VictronSim) -> Iterator[SimService]:
    name = "com.victronenergy.tank.fuzz"
    peer = SimService(sim, name, {"/DeviceInstance": 3, "/Level": 1.0})

    def export() -> None:
        peer.connect()
        sim.services[name] = peer
    sim.run_on_thread(export)
    yield peer


def test_the_frame_handlers_of_a_live_monitor_survive_anything(
        sim: VictronSim, monitor: VictronMonitor, hostile_peer: SimService) -> None:
    info = monitor.wait_for_service(hostile_peer.name, timeout=5)
    owner = info.owner
    session = monitor._session

    @FUZZ
    @given(member=st.sampled_from(["ItemsChanged", "PropertiesChanged"]),
           path=st.sampled_from(["/", "/Level"]), body=BODY, reply=BODY)
    def feed(member: str, path: str, body: Any, reply: Any) -> None:
        msg = _signal(member, path, body, owner)
        session._filter(session.conn, msg)                     # the pump's entry point
        stand_in = _signal("Reply", "/", reply, owner)         # a method return's body
        results: List[Any] = []
        run_on_io(monitor, lambda s: s._deliver_reply(s.conn, stand_in,
                                                      lambda ok, p: results.append((ok, p))))
        run_on_io(monitor, lambda s: monitor._io_scan_reply(
            s, monitor._svcs[hostile_peer.name], results[0][0], results[0][1]))
    feed()
    assert monitor._unexpected_errors == 0
    assert monitor.connected and monitor.read_value(sim.GRID, "/Ac/Power", timeout=5) is not None
    assert monitor.service(hostile_peer.name) is not None


def test_a_hostile_peer_on_the_bus_never_takes_the_monitor_down(
        sim: VictronSim, monitor: VictronMonitor, hostile_peer: SimService) -> None:
    monitor.wait_for_service(hostile_peer.name, timeout=5)
    sent = itertools.count()

    @settings(max_examples=150, deadline=None, derandomize=True,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(member=st.sampled_from(["ItemsChanged", "PropertiesChanged"]),
           path=st.sampled_from(["/", "/Level"]), body=BODY)
    def send(member: str, path: str, body: Any) -> None:
        signature, payload = body
        msg = lowlevel.SignalMessage(path, codec.BUSITEM, member)
        msg.append(payload, signature=signature)
        sim.run_on_thread(lambda: hostile_peer._send(msg))
        next(sent)
    send()
    # A good change sent after all of them is applied: the monitor read every message.
    sim.run_on_thread(lambda: hostile_peer.update({"/Level": 77.0}))
    assert monitor.wait_for_value(hostile_peer.name, "/Level", lambda v: v == 77.0,
                                  timeout=5) == 77.0
    assert next(sent) > 50
    assert monitor.connected and monitor._unexpected_errors == 0
    assert monitor.read_value(sim.GRID, "/Ac/Power", timeout=5) is not None


# ====================================================================== 5. resources
def test_connect_use_close_cycles_stay_flat() -> None:
    # The simulated services keep sending (every 2 ms) and calls are in flight when each
    # monitor closes: a closed connection released while the pump could still dispatch for it
    # crashed the process (use-after-free in libdbus) before connections were released on
    # the pump thread only.
    with VictronSim(interval=0.002) as sim:
        def open_use_close(i: int) -> None:
            mon = VictronMonitor(sim.address, timeout=2.0, allow_writes=True)
            try:
                mon.connect()
                mon.set_value_nowait(sim.SOLAR, "/Mode", 1 if i % 2 else 4)
                assert mon.read_value(sim.GRID, "/Ac/Power") is not None
                for _ in range(3):   # still in flight at close
                    mon.set_value_nowait(sim.SOLAR, "/Mode", 1)
            finally:
                mon.close()
        started = time.monotonic()
        result = cycle(open_use_close, cycles=200, warmup=20)
        elapsed = time.monotonic() - started
    assert result.check_flat() is None, result.check_flat()
    assert elapsed < 30, f"220 cycles took {elapsed:.1f} s"


def test_reconnect_cycles_stay_flat() -> None:
    with VictronSim(interval=0.01) as sim:
        mon = VictronMonitor(sim.address, timeout=2.0,
                             reconnect=Reconnect(min_delay=0.01, max_delay=0.05, jitter=0.0))
        mon.connect()
        try:
            def restart(i: int) -> None:
                before = mon._session.conn
                sim.restart()
                wait_until(lambda: mon.connected and mon._session.conn is not before
                           and mon.service(sim.GRID) is not None
                           and not mon.is_stale(sim.GRID), timeout=10,
                           message=f"reconnect {i}")
            result = cycle(restart, cycles=60, warmup=10)
        finally:
            mon.close()
    assert result.check_flat(rss_slack=384 * 1024) is None, result.check_flat()


def test_the_pump_keeps_no_closed_connection_for_ever(sim: VictronSim) -> None:
    from pyburnerkit.victron import bus
    for _ in range(30):
        with VictronMonitor(sim.address, timeout=2.0) as mon:
            mon.connect()
    assert PUMP.thread is not None   # the simulator keeps the pump running
    wait_until(lambda: bus.retired_connections() <= 2, timeout=5,
               message="closed connections released")


def test_a_published_service_answers_whatever_a_caller_sends(sim: VictronSim, caplog) -> None:
    # The service side's frame handler: remote calls with any well-typed body, on any path.
    import logging

    import dbus.bus
    caplog.set_level(logging.ERROR, logger="pyburnerkit.victron")
    svc = VictronService("com.victronenergy.grid.fuzzed", bus=sim.address)
    svc.add_mandatory_paths(device_instance=62)
    svc.add_item("/Limit", 5, writable=True, validator=lambda p, v: 0 <= v <= 10)
    svc.add_item("/Name", "x", writable=True)
    svc.register()
    caller = dbus.bus.BusConnection(sim.address)
    try:
        @FUZZ
        @given(member=st.sampled_from(["SetValue", "GetValue", "GetText", "GetItems",
                                       "GetDescription", "Nope"]),
               path=st.sampled_from(["/", "/Limit", "/Name", "/Mgmt", "/Missing"]), body=BODY)
        def call(member: str, path: str, body: Any) -> None:
            signature, payload = body
            msg = lowlevel.MethodCallMessage(svc.name, path, codec.BUSITEM, member)
            msg.append(payload, signature=signature)
            try:
                reply = caller.send_message_with_reply_and_block(msg, 5.0)
            except dbus.exceptions.DBusException as exc:   # an error reply is an answer
                assert "NoReply" not in exc.get_dbus_name(), exc
                return
            assert reply.get_args_list() is not None
        call()
        assert svc.connected and svc.get("/Limit") is not None
        assert not [r for r in caplog.records if r.levelno >= logging.ERROR], \
            [r.getMessage() for r in caplog.records]
    finally:
        caller.close()
        svc.close()
