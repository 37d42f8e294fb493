"""The stress layer for the Mate3 client: many threads, stalls, re-used helpers, hostile bytes
and open/close cycles, against the simulator (pymodbus server) over real Modbus TCP.

Recovery bound (stated by this family): after the device stalls and resumes, the next call
succeeds within ``request_timeout + reconnect.max_delay + 1 s`` (the request that was waiting
times out, the reconnect waits at most ``max_delay``, and the re-discovery walk plus the call
take well under a second on loopback).
"""

from __future__ import annotations

import ctypes
import gc
import random
import struct
import threading
import time
from typing import Any, Callable, Dict, Iterator, List

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pyburnerkit import ConfigurationError, ConnectionState, DeviceTimeoutError, Reconnect
from pyburnerkit._core.wire import WireLog
from pyburnerkit.mate3 import codec, limits
from pyburnerkit.mate3.client import Mate3Client, _LinkDown, _ModbusLink, checked_registers
from pyburnerkit.mate3.models import SystemUpdated

from ..helpers import Recorder, wait_until
from ..mate3.hostile import HostilePeer, proper_reply
from .stress import DOCUMENTED_ERRORS, cycle, hammer, undocumented
from .test_mate3 import Mate3Harness

FAST = Reconnect(min_delay=0.05, max_delay=0.2, jitter=0)
ABSORB = "charge_controllers[3].config.absorb_volts"
NAME = "mate3.system_name"
BULK = "charge_controllers[4].config.bulk_current"
SOC = "fndcs[5].state_of_charge"
DUMP = codec.bundled_dump()
DUMP_LAYOUT = codec.layout_from_registers(DUMP)
FUZZ = settings(max_examples=200, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                       HealthCheck.function_scoped_fixture])


@pytest.fixture
def harness() -> Iterator[Mate3Harness]:
    made = Mate3Harness()
    made.start()
    try:
        yield made
    finally:
        made.stop()


@pytest.fixture
def clients() -> Iterator[List[Mate3Client]]:
    made: List[Mate3Client] = []
    yield made
    for client in made:
        client.close()


def _client(harness: Mate3Harness, clients: List[Mate3Client], **options: Any) -> Mate3Client:
    options.setdefault("timeout", 20.0)
    options.setdefault("reconnect", FAST)
    client = harness.make_client(**options)
    clients.append(client)
    client.connect()
    return client


# ------------------------------------------------------------------------------ 1. concurrency
def test_eight_threads_mixing_every_read_and_write(harness, clients):
    client = _client(harness, clients, request_timeout=2.0)
    rng = random.Random(3)
    refused: List[str] = []

    def refused_write() -> None:
        try:
            client.write(ABSORB, 999)
        except ConfigurationError:
            return
        refused.append("a 999 V absorb set point was accepted")

    operations: Dict[str, Callable[[], Any]] = {
        "read_all": client.read_all,
        "read": lambda: client.read(SOC, "charge_controllers[3].battery_voltage"),
        "read_unverified": lambda: client.read(ABSORB, verify=False),
        "read_value": lambda: client.read_value(NAME),
        "read_dump": client.read_dump,
        "write_set_point": lambda: client.write(ABSORB, rng.choice((57.2, 57.6, 58.0))),
        "write_text": lambda: client.write(NAME, rng.choice(("cabin", "barn", "shed"))),
        "write_command": lambda: client.write("mate3.config.set_inverter_mode", "Search"),
        "write_expert": lambda: client.write(BULK, rng.choice((50, 60, 70)), expert=True),
        "write_refused": refused_write,
        "plan_write": lambda: client.plan_write(ABSORB, 57.6),
        "validate_write": lambda: client.validate_write(ABSORB, 57.6),
        "field_def": lambda: client.field_def(ABSORB),
        "properties": lambda: (client.system, client.layout, client.stale, client.stats,
                               client.warnings),
        "wait_for": lambda: client.wait_for(lambda c: c.system is not None, timeout=5),
    }
    result = hammer(operations, threads=8, duration=2.5, seed=11)
    assert not result.stuck_threads, result.stuck_threads
    # No error is allowed at all: the simulator is healthy and every call is valid.
    assert not result.errors, result.describe_errors()
    assert not refused
    assert all(count > 0 for count in result.calls.values()), result.calls
    # The cache agrees with the device: each written field as the simulator holds it now.
    system, regs = client.system, harness.sim.registers
    for path in (ABSORB, NAME, BULK):
        cached = system.get(path)
        assert cached.registers == tuple(regs[cached.address + i] for i in range(cached.size))
    assert not client.stale and client.connection_state is ConnectionState.CONNECTED


# ------------------------------------------------------------------------------ 2. stalls
def test_a_tiny_timeout_then_normal_calls_succeed(harness, clients):
    client = _client(harness, clients, request_timeout=1.0)
    with pytest.raises(DeviceTimeoutError):
        client.read_all(timeout=1e-5)  # 13 requests cannot fit in 10 microseconds
    assert client.read_value(SOC) == DUMP[41144 + 27]
    assert client.write(ABSORB, 57.6).value == 57.6
    assert client.read_all().mate3.address == 40069


def test_a_stall_of_twice_the_timeout_then_recovery_within_the_bound(harness, clients):
    request_timeout = 0.3
    bound = request_timeout + FAST.max_delay + 1.0
    client = _client(harness, clients, request_timeout=request_timeout)
    stalled_at = time.monotonic()
    harness.silence(True)
    with pytest.raises(DeviceTimeoutError):
        client.read(SOC)
    client.wait_for(lambda c: c.connection_state is ConnectionState.RECONNECTING, timeout=5)
    # Hold the stall until it has lasted twice the request timeout (reconnects keep failing).
    threading.Event().wait(max(0.0, stalled_at + 2 * request_timeout - time.monotonic()))
    harness.silence(False)
    client.wait_for(lambda c: c.connected and not c.stale, timeout=bound)  # the bound
    assert client.read_value(SOC) == DUMP[41144 + 27]


# ------------------------------------------------------------------------------ 3. re-use
def test_subscriptions_and_event_streams_reused_many_times(harness, clients):
    client = _client(harness, clients, poll_interval=0.02)
    cancelled: List[Recorder] = []
    for _ in range(40):
        recorder = Recorder()
        subscription = client.subscribe(recorder, SystemUpdated)
        recorder.wait_for(lambda e: isinstance(e, SystemUpdated), timeout=5)
        subscription.cancel()
        cancelled.append(recorder)
    counts = [len(r.events) for r in cancelled]
    for _ in range(40):
        stream = client.events(5.0, SystemUpdated)
        assert isinstance(next(stream), SystemUpdated)
        stream.close()
    # Background polls kept publishing meanwhile; none reached a cancelled subscription.
    fresh = Recorder()
    with client.subscribe(fresh, SystemUpdated):
        fresh.wait_for(lambda e: True, timeout=5)
        fresh.wait_for(lambda e: e is not fresh.events[0], timeout=5)
    assert [len(r.events) for r in cancelled] == counts
    assert client._dispatcher._streams == [] and client._dispatcher._subscriptions == []


def test_the_idle_close_timer_reused_many_times_never_closes_a_new_link(harness, clients):
    client = _client(harness, clients, idle_close=0.02)
    link = client._session.link
    for _ in range(30):
        assert client.read_value(SOC) == DUMP[41144 + 27]
        wait_until(lambda: link.sock is None, 5.0, "the idle close")
    # Each reopened link served its call; no old timer closed a link in use.
    assert client.connection_state is ConnectionState.CONNECTED
    assert client.read_value(SOC) == DUMP[41144 + 27]


def test_background_polling_restarted_by_many_reconnects(harness, clients):
    updates = Recorder()
    client = _client(harness, clients, poll_interval=0.02, on_event=updates)
    session = client._session

    def live_poll_timers() -> int:
        timers = list(session.loop._timers)  # a snapshot; the I/O thread owns the heap
        return sum(1 for t in timers if not t.cancelled and t.callback == session._poll_due)

    for _ in range(10):
        harness.drop()
        client.wait_for(lambda c: c.connection_state is not ConnectionState.CONNECTED, timeout=5)
        client.wait_for(lambda c: c.connected and not c.stale, timeout=10)
        assert live_poll_timers() <= 1
    mark = len(updates.events)
    for _ in range(5):  # polls go on after the reconnects, from one timer at a time
        updates.wait_for(lambda e: isinstance(e, SystemUpdated)
                         and updates.events.index(e) >= mark, timeout=5)
        mark = len(updates.events)
        assert live_poll_timers() <= 1


# ------------------------------------------------------------------------------ 4. hostile input
def _all_fields():
    return [f for b in codec.block_defs().values() for f in b.fields.values()]


REGISTER = st.integers(0, 0xFFFF)
ODD = st.one_of(st.integers(-5, 0x1_0005), st.none(), st.text(max_size=2), st.floats(),
                st.booleans())


@FUZZ
@given(fdef=st.sampled_from(_all_fields()), data=st.data())
def test_fuzz_decode_field(fdef, data):
    regs = data.draw(st.one_of(st.lists(REGISTER, min_size=fdef.size, max_size=fdef.size),
                               st.lists(st.one_of(REGISTER, ODD), max_size=fdef.size + 2)))
    sf = data.draw(st.one_of(st.none(), st.integers(-40, 40)))
    found = undocumented(lambda: codec.decode_field(fdef, regs, sf))
    assert found is None, repr(found)


def _mutated_dump(data) -> Dict[int, int]:
    regs = dict(DUMP)
    addresses = sorted(regs)
    for _ in range(data.draw(st.integers(0, 12))):
        where = data.draw(st.sampled_from(addresses))
        regs[where] = data.draw(REGISTER)
    headers = [b.address for b in DUMP_LAYOUT.blocks]
    for _ in range(data.draw(st.integers(0, 3))):  # the registers that steer the walk
        where = data.draw(st.sampled_from(headers)) + data.draw(st.integers(0, 2))
        regs[where] = data.draw(REGISTER)
    if data.draw(st.booleans()):
        cut = data.draw(st.sampled_from(addresses))
        regs = {a: v for a, v in regs.items() if a < cut}
    return regs


@FUZZ
@given(data=st.data())
def test_fuzz_block_decoding_seeded_with_the_real_dump(data):
    regs = _mutated_dump(data)
    block = data.draw(st.sampled_from(DUMP_LAYOUT.blocks))
    found = undocumented(lambda: codec.decode_block(block.did, block.address, regs, 0.0))
    assert found is None, repr(found)


@FUZZ
@given(data=st.data())
def test_fuzz_discovery_and_system_building_seeded_with_the_real_dump(data):
    regs = _mutated_dump(data)

    def walk_and_build() -> None:
        layout = codec.layout_from_registers(regs)
        codec.build_system(layout, regs, 0.0, [])
        codec.check_layout(layout, regs)
        codec.full_read_plan(layout)

    found = undocumented(walk_and_build)
    assert found is None, repr(found)


@FUZZ
@given(chunks=st.lists(st.lists(REGISTER, min_size=1, max_size=120), max_size=40))
def test_fuzz_the_walker_fed_arbitrary_reads(chunks):
    def feed() -> None:
        walker = codec.Walker()
        marker = list(codec.SUNS_MARKER)
        for index, values in enumerate(chunks):
            step = walker.next_read()
            if step is None:
                break
            walker.feed(step[0], (marker + values) if index == 0 else values)

    found = undocumented(feed)
    assert found is None, repr(found)


JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=5),
                    lambda inner: st.lists(inner, max_size=4)
                    | st.dictionaries(st.text(max_size=6), inner, max_size=4), max_leaves=12)


@FUZZ
@given(data=st.one_of(JSON, st.dictionaries(st.from_regex(r"4\d{4}", fullmatch=True),
                                            st.integers(-2, 0x10001), max_size=8)))
def test_fuzz_dump_files(data):
    found = undocumented(lambda: codec.parse_dump(data))
    assert found is None, repr(found)


WRITABLE = [f for f in _all_fields() if f.mode.writable]


@FUZZ
@given(fdef=st.sampled_from(WRITABLE), data=st.data())
def test_fuzz_the_write_check(fdef, data):
    value = data.draw(st.one_of(st.integers(-10 ** 6, 10 ** 6), st.floats(), st.text(max_size=40),
                                st.none(), st.booleans(), st.sampled_from(
                                    [v for v in fdef.options.values()] or [""])))
    nominal = data.draw(st.one_of(st.none(), st.sampled_from([12, 24, 36, 48, 60, 26, 0])))
    text = data.draw(st.text(max_size=12))

    def check() -> None:
        checked_registers("x.y", fdef, value, data.draw(st.one_of(st.none(), st.integers(-12, 12))),
                          nominal=nominal, companion_raw=data.draw(st.one_of(st.none(), REGISTER)),
                          expert=data.draw(st.booleans()))
        codec.parse_value(fdef, text)
        limits.describe(fdef, nominal=nominal)

    found = undocumented(check)
    assert found is None, repr(found)


@FUZZ
@given(request=st.binary(max_size=20), reply=st.binary(max_size=300))
def test_fuzz_the_reply_header_check(request, reply):
    problem = codec.reply_problem(request, reply)
    assert problem is None or isinstance(problem, str)


def _real_replies() -> List[bytes]:
    """Seeds: the replies a real Mate3s gives to the requests of a full read, from the dump."""
    out = []
    for tid, (address, count) in enumerate(codec.full_read_plan(DUMP_LAYOUT), start=1):
        request = struct.pack(">HHHBBHH", tid, 0, 6, 0, 3, address, count)
        out.append(proper_reply(DUMP, request))
    return out


REAL_REPLIES = _real_replies()


@st.composite
def hostile_replies(draw) -> Callable[[bytes, bytes], bytes]:
    """A mangle: the proper reply (a real one, for the request) bit-flipped, cut, extended,
    with a forged header, or plain noise."""
    how = draw(st.sampled_from(["flip", "cut", "extend", "header", "noise", "seed"]))
    flips = draw(st.lists(st.tuples(st.integers(0, 300), st.integers(1, 255)), min_size=1,
                          max_size=4))
    cut = draw(st.integers(1, 40))
    extra = draw(st.binary(min_size=1, max_size=20))
    header = draw(st.tuples(st.integers(0, 0xFFFF), st.integers(0, 3), st.integers(0, 300),
                            st.integers(0, 255)))
    noise = draw(st.binary(min_size=1, max_size=64))
    seed = draw(st.sampled_from(REAL_REPLIES))

    def mangle(request: bytes, proper: bytes) -> bytes:
        body = bytearray(proper)
        if how == "flip":
            for where, mask in flips:
                body[where % len(body)] ^= mask
        elif how == "cut":
            del body[max(1, len(body) - cut):]
        elif how == "extend":
            body += extra
        elif how == "header":
            tid, pid, length, unit = header
            body[0:7] = struct.pack(">HHHB", tid if tid % 2 else int.from_bytes(body[0:2], "big"),
                                    pid if pid else 0, length, unit)
        elif how == "noise":
            return noise
        else:  # a real reply to another request, with this request's transaction id
            return proper[:2] + seed[2:]
        return bytes(body)

    return mangle


@pytest.fixture
def lone_peer() -> Iterator[HostilePeer]:
    peer = HostilePeer(DUMP)
    try:
        yield peer
    finally:
        peer.close()


@FUZZ
@given(mangle=hostile_replies(), request=st.sampled_from(codec.full_read_plan(DUMP_LAYOUT)),
       write=st.booleans())
def test_fuzz_the_frame_handler_with_hostile_replies(lone_peer, mangle, request, write):
    # The code that takes a received frame on the I/O thread: pymodbus' framer plus the link's
    # header check and response checks. Anything but a documented error is a finding.
    link = _ModbusLink("127.0.0.1", lone_peer.port, 0, WireLog("mate3"), "mate3", "fuzz")
    lone_peer.mangle_next(mangle)
    address, count = request
    try:
        if write:
            link.write(40946, [576], 0.05)
        else:
            values = link.read(address, count, 0.05)
            assert len(values) == count and all(0 <= v <= 0xFFFF for v in values)
    except _LinkDown as down:
        assert isinstance(down.error, DOCUMENTED_ERRORS), repr(down.error)
    except DOCUMENTED_ERRORS:
        pass
    finally:
        link.close()
        lone_peer.clear_mangles()  # an unused mangle must not poison the next example


def test_a_live_client_survives_hostile_frames_and_answers(clients):
    rng = random.Random(7)
    with HostilePeer(DUMP) as peer:
        client = Mate3Client(peer.endpoint, min_poll_interval=0, request_timeout=0.2,
                             reconnect=FAST, timeout=10)
        clients.append(client)
        client.connect()
        manglers = [
            lambda q, p: bytes(rng.getrandbits(8) for _ in range(rng.randint(1, 40))),
            lambda q, p: p[:rng.randint(1, len(p) - 1)],
            lambda q, p: p + bytes(rng.getrandbits(8) for _ in range(5)),
            lambda q, p: p[:7] + bytes([0x90]) + p[8:],
            lambda q, p: p[:4] + b"\xff\xff" + p[6:],
            lambda q, p: ((int.from_bytes(p[:2], "big") + 9) % 65536).to_bytes(2, "big") + p[2:],
        ]
        for mangle in manglers * 2:
            peer.mangle_next(mangle)
            outcome = undocumented(lambda: client.read(SOC))
            assert outcome is None, repr(outcome)
            client.wait_for(lambda c: c.connected and not c.stale, timeout=10)
            assert client.read_value(SOC) == DUMP[41144 + 27]
            assert client.io_thread.is_alive() and client.events_thread.is_alive()


# ------------------------------------------------------------------------------ 5. resources
def _release_free_heap() -> Callable[[], None]:
    """Make RSS measure live memory. A cycle's objects outlive a few young collections, so
    once the client is closed they wait in the oldest generation for a full collection, and
    glibc keeps what the client's short-lived threads freed in per-thread arenas: RSS then
    jumps by megabytes either way. So: collect everything after each cycle (cheap, see
    ``gc.freeze`` in the test) and hand the free heap back with ``malloc_trim`` (glibc only)."""
    try:
        trim = ctypes.CDLL("libc.so.6").malloc_trim
    except (OSError, AttributeError):
        trim = None

    def release() -> None:
        gc.collect()
        if trim is not None:
            trim(0)

    return release


def test_connect_use_close_cycles_stay_flat(harness):
    # A cycle (connect + SunSpec walk of 20 requests + one read + close) costs about 10 ms on
    # loopback, so the full 200 cycles are affordable.
    release = _release_free_heap()

    def once(_: int) -> None:
        with harness.make_client(timeout=10.0) as client:
            client.read(SOC)
        harness.sim.received.clear()  # the simulator's request log is test instrumentation
        release()

    gc.collect()
    gc.freeze()  # what exists now is never collected again: each collection stays small
    try:
        result = cycle(once, cycles=200, warmup=20)
    finally:
        gc.unfreeze()
    problem = result.check_flat()
    assert problem is None, problem
