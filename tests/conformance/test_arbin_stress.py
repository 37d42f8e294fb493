"""Stress layer of the Arbin family, over real CTI TCP (and a real simulator process).

1. Concurrency: 8 threads mix every read and every control command on one client.
2. Timeouts and stalls: tiny timeouts; a silenced and a SIGSTOPped cycler, then resumed. The
   recovery bound is ``RECOVERY_BOUND``: the call timeout (how long a re-login waits for its
   feedback once the client has been connected) plus the reconnect policy's longest delay plus
   one second of slack for a loaded machine.
3. Re-use: watches, subscriptions and event streams made, used and closed many times.
4. Hostile input: hypothesis on every codec decoder and on the session's frame handler, seeded
   with the real captures; hostile frames sent to a live client; garbage sent to the simulator
   by hostile clients while a well-behaved one keeps being served.
5. Resources: 200 connect/use/close cycles (about 2 ms each) with threads, fds and RSS flat.
"""

from __future__ import annotations

import itertools
import os
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from typing import Any, Callable, Dict, Iterator, List, Tuple

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from pyburnerkit import (ConnectionState, ConnectionStateChanged, DeviceError,
                         DeviceTimeoutError, ProtocolError)
from pyburnerkit._core.cache import StateCache
from pyburnerkit._core.dispatcher import Dispatcher
from pyburnerkit._core.pending import Pending
from pyburnerkit._core.wire import WireLog
from pyburnerkit.arbin import codec
from pyburnerkit.arbin.client import (ArbinSession, ChannelClient, Credentials, CyclerClient,
                                      _Call)
from pyburnerkit.arbin.models import (AuxReading, BmsReading, ChannelState, ChannelStatus,
                                      InfoSelection, SmbReading, StatusSnapshot)
from pyburnerkit.arbin.sim import ArbinSim
from pyburnerkit.types import Reconnect

from ..arbin.captures import REPO_ROOT, all_captures
from ..arbin.conftest import ManualClock
from ..helpers import CallInThread, Recorder, freeze, wait_until
from .stress import DOCUMENTED_ERRORS, cycle, hammer, undocumented

USER, SECRET = "stress-user", "stress-secret"
FAST = Reconnect(min_delay=0.02, max_delay=0.2, jitter=0.0)
CALL_TIMEOUT = 0.5
RECOVERY_BOUND = CALL_TIMEOUT + FAST.max_delay + 1.0


# ---------------------------------------------------------------------- fixtures
@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def sim(clock: ManualClock) -> Iterator[ArbinSim]:
    server = ArbinSim(16, username=USER, password=SECRET, clock=clock).start()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def made() -> Iterator[List[Any]]:
    clients: List[Any] = []
    yield clients
    for client in clients:
        client.close()


def connect(sim_port: int, made: List[Any], **options: Any) -> ChannelClient:
    options.setdefault("timeout", 5.0)
    options.setdefault("connect_timeout", 5.0)
    options.setdefault("reconnect", FAST)
    client = ChannelClient(f"127.0.0.1:{sim_port}", channel=1, allow_writes=True,
                           username=USER, password=SECRET, **options)
    made.append(client)
    return client.connect()


def on_the_wire(status: ChannelStatus) -> ChannelStatus:
    """``status`` as a client sees it after CTI (f32 fields rounded)."""
    frame = codec.encode_feedback(codec.ChannelInfoFeedback((status,)))
    return codec.decode_feedback(frame).statuses[0]


# ---------------------------------------------------------------------- 1. concurrency
def test_eight_threads_mix_every_read_and_command(sim: ArbinSim, made: List[Any]) -> None:
    client = connect(sim.port, made)
    counter = itertools.count()

    def some_channel() -> int:
        return next(counter) % 16 + 1

    def watch_briefly() -> None:
        with client.watch(0.01, [some_channel()]):
            pass

    def cached() -> None:
        assert client.info is not None and client.channel_count == 16
        client.statuses, client.cached_status(some_channel()), client.is_stale()

    operations: Dict[str, Callable[[], Any]] = {
        # reads
        "read_status": lambda: client.read_status(some_channel()),
        "read_all_statuses": lambda: client.read_all_statuses(),
        "read_running": lambda: client.read_all_statuses(InfoSelection.RUNNING),
        "read_statuses": lambda: client.read_statuses([3, 9, some_channel()]),
        "read_serial": lambda: client.read_serial(),
        "cached": cached,
        "watch": watch_briefly,
        # commands (the cycler refuses those that do not fit a channel's state: DeviceError)
        "assign": lambda: client.assign_schedule("Rest+207855.sdx"),
        "assign_all": lambda: client.assign_schedule("CC_Cycle.sdx", all_channels=True),
        "start": lambda: client.start("stress", channels=[some_channel()]),
        "stop": lambda: client.stop(),
        "stop_all": lambda: client.stop(all_channels=next(counter) % 8 == 0),
        "resume": lambda: client.resume(),
        "continue": lambda: client.continue_test(channels=[some_channel()]),
        "jump": lambda: client.jump_to_step(1),
        "set_mv": lambda: client.set_meta_variable(next(counter) % 16 + 1, 0.5),
        "set_mvs": lambda: client.set_meta_variables({(some_channel(), 2): 1.5}),
    }
    result = hammer(operations, threads=8, duration=2.5)
    assert result.stuck_threads == []
    # Allowed: DeviceError itself, i.e. a result code the cycler sent for a command that did
    # not fit the channel's state (start on a running channel, MV on an idle one, batches
    # closer than 200 ms). Not allowed: anything else, its subclasses included.
    unexpected = [(name, exc) for name, exc in result.errors if type(exc) is not DeviceError]
    assert unexpected == [], result.describe_errors()
    assert all(result.calls[name] > 0 for name in operations), result.calls
    assert client.protocol_errors == 0 and sim.logins == 1  # never out of step
    assert result.total > 500, result.calls
    # The cache agrees with the cycler (its clock stands still, so nothing moved since).
    client.read_all_statuses()
    for channel in range(1, 17):
        assert client.cached_status(channel) == on_the_wire(sim.channel_status(channel))


# ---------------------------------------------------------------------- 2. timeouts, stalls
def test_a_tiny_timeout_then_normal_calls_succeed(sim: ArbinSim, made: List[Any]) -> None:
    client = connect(sim.port, made)
    sim.preset(1, schedule="Rest+207855.sdx")
    sim.delay_responses(0.3)
    with pytest.raises(DeviceTimeoutError):
        client.read_status(timeout=0.01)
    sim.delay_responses(0)
    for channel in range(1, 6):
        assert client.read_status(channel, timeout=5).channel == channel
    client.set_meta_variable(1, 0.75, timeout=5)
    assert sim.meta_variables(1) == {1: 0.75}


def stall(seconds_since: float, seconds: float) -> None:
    """Keep a fault in place until ``seconds`` after ``seconds_since`` (the fault's length)."""
    threading.Event().wait(max(0.0, seconds_since + seconds - time.monotonic()))


def test_a_silenced_cycler_for_twice_the_timeout_recovers_within_the_bound(
        sim: ArbinSim, made: List[Any]) -> None:
    client = connect(sim.port, made, timeout=CALL_TIMEOUT)
    client.read_status(timeout=5)  # the short default is for the stall, not for warming up
    sim.silence(True)
    began = time.monotonic()
    with pytest.raises(DeviceTimeoutError):
        client.read_status()
    stall(began, 2 * CALL_TIMEOUT)
    sim.silence(False)
    resumed = time.monotonic()
    assert client.read_status(2, timeout=RECOVERY_BOUND).channel == 2
    took = time.monotonic() - resumed
    assert took < RECOVERY_BOUND, f"recovered after {took:.2f} s"
    assert client.io_thread.is_alive() and not client.closed


def test_a_sigstopped_simulator_process_recovers_within_the_bound(made: List[Any]) -> None:
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT))
    server = subprocess.Popen([sys.executable, "-m", "pyburnerkit.cli.main", "sim", "arbin",
                               "--port", "0", "--channels", "4", "--username", USER,
                               "--password", SECRET], stdout=subprocess.PIPE, text=True,
                              cwd=str(REPO_ROOT), env=env)
    try:
        line = server.stdout.readline()  # type: ignore[union-attr]
        assert "listening on 127.0.0.1:" in line, line
        port = int(line.split("127.0.0.1:")[1].split(";")[0])
        client = connect(port, made, timeout=CALL_TIMEOUT)
        # A fresh process answers its first request slowly: not part of the stall.
        assert client.read_status(4, timeout=10).channel == 4
        freeze(server)
        began = time.monotonic()
        with pytest.raises(DeviceTimeoutError):
            client.read_status()
        stall(began, 2 * CALL_TIMEOUT)
        server.send_signal(signal.SIGCONT)
        resumed = time.monotonic()
        assert client.read_status(3, timeout=RECOVERY_BOUND).channel == 3
        took = time.monotonic() - resumed
        assert took < RECOVERY_BOUND, f"recovered after {took:.2f} s"
        client.close()
    finally:
        server.send_signal(signal.SIGCONT)
        server.send_signal(signal.SIGTERM)
        try:
            status = server.wait(20)
        finally:
            if server.returncode is None:  # reaped either way: no process outlives the test
                server.kill()
                server.wait()
            server.stdout.close()  # type: ignore[union-attr]
        assert status == 0


# ---------------------------------------------------------------------- 3. re-use
def snapshot_of(channels: List[int], events: Recorder, after: int) -> Any:
    return events.wait_for(lambda e: isinstance(e, StatusSnapshot)
                           and [s.channel for s in e.statuses] == channels
                           and any(x is e for x in events.events[after:]))


def test_watches_are_made_replaced_and_cancelled_many_times(sim: ArbinSim,
                                                            made: List[Any]) -> None:
    events = Recorder()
    client = connect(sim.port, made, on_event=events)
    previous = None
    for k in range(25):
        channel = k % 16 + 1
        mark = len(events.events)
        handle = client.watch(0.01, channels=[channel])  # replaces the previous one
        snapshot_of([channel], events, mark)
        if previous is not None:
            previous.cancel()  # an old handle must not stop the new watch
            assert not previous.active
            snapshot_of([channel], events, len(events.events))
            snapshot_of([channel], events, len(events.events))
        if k % 2:
            handle.cancel()
            previous = None
        else:
            previous = handle
    if previous is not None:
        previous.cancel()
    # Nothing polls any more: two reads are the only requests the cycler gets.
    client.read_status(16)
    before = sim.count(codec.ChannelInfoRequest)
    mark = len(events.events)
    client.read_status(15)
    snapshot_of([15], events, mark)
    assert sim.count(codec.ChannelInfoRequest) == before + 1
    session = client._session
    assert session._watch is None and session._watch_timer is None


def test_subscriptions_and_event_streams_are_reused_many_times(sim: ArbinSim,
                                                               made: List[Any]) -> None:
    client = connect(sim.port, made)
    seen: List[List[int]] = []
    for k in range(25):
        got: List[int] = []
        arrived = threading.Event()

        def callback(event: StatusSnapshot, got: List[int] = got,
                     arrived: threading.Event = arrived) -> None:
            got.append(event.statuses[0].channel)
            arrived.set()

        with client.subscribe(callback, StatusSnapshot):
            client.read_status(k % 16 + 1)
            assert arrived.wait(5)
        seen.append(got)
        stream = client.events(5.0, StatusSnapshot)
        client.read_status(k % 15 + 2)
        assert [s.channel for s in next(stream).statuses] == [k % 15 + 2]
        stream.close()
    final = Recorder()
    with client.subscribe(final, StatusSnapshot):
        client.read_status(7)
        final.wait_for(lambda e: e.statuses[0].channel == 7)
    # Each cancelled subscription saw exactly its own read and nothing after it.
    assert seen == [[k % 16 + 1] for k in range(25)]


# ---------------------------------------------------------------------- 4. hostile input
CAPTURES = all_captures()
FEEDBACK_SEEDS = [raw for name, raw in CAPTURES.items() if name.startswith("server_")] + [
    codec.encode_feedback(codec.ChannelInfoFeedback((ChannelStatus(
        channel=2, state=ChannelState.CHARGE, aux={"temperature": (AuxReading(25.0, 0.1),)},
        bms=(BmsReading(1, 3.7, "V"),), smb=(SmbReading(2, "ok", ""), SmbReading(3, 1.5, "A"))),
    ))),
    codec.encode_feedback(codec.SerialFeedback(207855)),
    codec.encode_feedback(codec.UnknownCommandFeedback(struct.pack("<I", codec.GET_SERIAL))),
    codec.encode_feedback(codec.command_feedback(codec.CONTINUE_CHANNEL, 1, 0x15)),
]
REQUEST_SEEDS = [raw for name, raw in CAPTURES.items() if name.startswith("client_")] + [
    codec.encode_request(message) for message in (
        codec.ResumeRequest(2), codec.ContinueRequest((1, 2)), codec.JumpRequest(1, 3),
        codec.UpdateMVAdvancedRequest((codec.MVUpdate(0, 52, 1.0),)), codec.GetSerialRequest())
]


def reframe(data: bytes, *, feedback: bool) -> bytes:
    """Give mutated bytes a valid header and checksum, so the argument decoders see them."""
    command = codec.command_of(data) or codec.SET_MV_FEEDBACK
    return codec.build_frame(command, data[codec.HEADER_SIZE:-2] if len(data) > 22 else data,
                             feedback=feedback)


# Where the variable parts of a frame are announced (argument offsets): the 14 u16 counts of
# a channel record (after the u32 record count) and the login feedback's picture length.
COUNTS_AT = 4 + codec.CHANNEL_RECORD_SIZE - 28
PICTURE_LENGTH_AT = 8652


@st.composite
def recounted(draw: Any, seeds: List[bytes], feedback: bool) -> bytes:
    """A real frame whose announced counts or lengths were changed, with a random tail, and
    re-framed (valid header and checksum), so the variable-length decoders get to work."""
    frame = draw(st.sampled_from(seeds))
    args = bytearray(frame[codec.HEADER_SIZE:-2])
    # Mostly zero counts, so that the decoder gets past the aux readings to BMS and SMB.
    small = st.sampled_from([0] * 12 + [1, 2, 5, 0xFFFF])
    if codec.command_of(frame) == codec.CHANNEL_INFO_FEEDBACK and len(args) >= COUNTS_AT + 28:
        struct.pack_into("<14H", args, COUNTS_AT, *draw(st.lists(small, min_size=14,
                                                                 max_size=14)))
        struct.pack_into("<I", args, 0, draw(st.sampled_from([1] * 6 + [0, 2, 2 ** 32 - 1])))
    elif codec.command_of(frame) == codec.LOGIN_FEEDBACK and len(args) >= PICTURE_LENGTH_AT + 4:
        struct.pack_into("<I", args, PICTURE_LENGTH_AT,
                         draw(st.integers(0, 64) | st.integers(0, 2 ** 32 - 1)))
    elif len(args) >= 4:
        at = draw(st.integers(0, len(args) - 4))
        struct.pack_into("<I", args, at, draw(st.integers(0, 40) | st.integers(0, 2 ** 32 - 1)))
    args += draw(st.binary(max_size=160) | st.lists(st.sampled_from([b"\0", b"\x01", b"V"]),
                                                   max_size=160).map(b"".join))
    return codec.build_frame(codec.command_of(frame) or 0, bytes(args), feedback=feedback)


@st.composite
def hostile(draw: Any, seeds: List[bytes], feedback: bool) -> bytes:
    """A real frame truncated, extended, bit-flipped, overwritten, spliced or re-framed."""
    frame = bytearray(draw(st.sampled_from(seeds)))
    kind = draw(st.sampled_from(["truncate", "extend", "flip", "overwrite", "splice",
                                 "reframe", "random", "recount"]))
    if kind == "recount":
        return draw(recounted(seeds, feedback))
    if kind == "truncate":
        frame = frame[:draw(st.integers(0, len(frame) - 1))]
    elif kind == "extend":
        frame += draw(st.binary(min_size=1, max_size=64))
    elif kind == "flip":
        for _ in range(draw(st.integers(1, 8))):
            bit = draw(st.integers(0, len(frame) * 8 - 1))
            frame[bit // 8] ^= 1 << (bit % 8)
    elif kind == "overwrite":
        at = draw(st.integers(0, len(frame) - 1))
        patch = draw(st.binary(min_size=1, max_size=8))
        frame[at:at + len(patch)] = patch
    elif kind == "splice":
        other = draw(st.sampled_from(seeds))
        frame = frame[:draw(st.integers(0, len(frame)))] + other[draw(st.integers(0, len(other))):]
    elif kind == "random":
        frame = bytearray(codec.TOKEN_BYTES[:draw(st.integers(0, 8))]
                          + draw(st.binary(max_size=200)))
    if kind in ("flip", "overwrite", "reframe") and draw(st.booleans()):
        at = draw(st.integers(codec.HEADER_SIZE, max(codec.HEADER_SIZE, len(frame) - 3)))
        if at < len(frame) - 2:
            frame[at] ^= draw(st.integers(1, 255))
        frame = bytearray(reframe(bytes(frame), feedback=feedback))
    return bytes(frame)


def decoders_of(data: bytes) -> List[Tuple[str, Callable[[], Any]]]:
    """Every decoder of the codec, applied to ``data`` (or the part of it each one reads)."""
    args = data[codec.HEADER_SIZE:-2]
    calls: List[Tuple[str, Callable[[], Any]]] = [
        ("decode_feedback", lambda: codec.decode_feedback(data)),
        ("decode_request", lambda: codec.decode_request(data)),
        ("split_frame/feedback", lambda: codec.split_frame(data, feedback=True)),
        ("split_frame/request", lambda: codec.split_frame(data, feedback=False)),
        ("frame_total", lambda: codec.frame_total(data.ljust(12, b"\0"), feedback=True)),
        ("FrameReader/feedback", lambda: codec.FrameReader(feedback=True).feed(data)),
        ("FrameReader/request", lambda: [codec.FrameReader(feedback=False).feed(data[i:i + 7])
                                         for i in range(0, len(data), 7)]),
        ("decode_channel_record", lambda: codec.decode_channel_record(data[24:], 0)),
        ("decode_narrow", lambda: codec.decode_narrow(data)),
        ("decode_wide", lambda: codec.decode_wide(data)),
        ("command_of", lambda: codec.command_of(data)),
        ("redact", lambda: codec.redact(data)),
    ]
    for command, cls in codec.REQUEST_TYPES.items():
        calls.append((f"{cls.__name__}.decode_args", lambda cls=cls: cls.decode_args(args)))
    return calls


def test_the_unmutated_seeds_decode() -> None:
    for frame in FEEDBACK_SEEDS:
        codec.decode_feedback(frame)
    for frame in REQUEST_SEEDS:
        codec.decode_request(frame)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(hostile(FEEDBACK_SEEDS, True), hostile(REQUEST_SEEDS, False)))
def test_every_decoder_raises_only_documented_errors(data: bytes) -> None:
    for name, call in decoders_of(data):
        found = undocumented(call)
        assert found is None, f"{name}: {type(found).__name__}: {found}"


VARIABLE_SEEDS = [frame for frame in FEEDBACK_SEEDS if codec.command_of(frame) in
                  (codec.CHANNEL_INFO_FEEDBACK, codec.LOGIN_FEEDBACK)]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(recounted(VARIABLE_SEEDS, True))
def test_variable_length_feedbacks_raise_only_documented_errors(data: bytes) -> None:
    # Aimed at the parts whose size the frame announces itself: records, aux readings, BMS
    # and SMB entries, the login picture.
    for name, call in decoders_of(data):
        found = undocumented(call)
        assert found is None, f"{name}: {type(found).__name__}: {found}"


def make_session() -> Tuple[ArbinSession, socket.socket]:
    """A session that has logged in on a socket pair, without its I/O thread: the fuzz test
    calls its frame handler directly (what the I/O thread does with bytes it read)."""
    session = ArbinSession(host="fuzz", port=9031, credentials=Credentials(USER, SECRET),
                           reply_timeout=10.0, endpoint="fuzz:9031", cache=StateCache(),
                           dispatcher=Dispatcher("pyburnerkit-arbin-fuzz-events"),
                           wire=WireLog("arbin", redact=codec.redact), reconnect=None,
                           connect_timeout=5.0)
    ours, theirs = socket.socketpair()
    ours.setblocking(False)
    session._sock = ours
    return session, theirs


FEEDBACK_KINDS = [codec.LOGIN_FEEDBACK, codec.CHANNEL_INFO_FEEDBACK, codec.SET_MV_FEEDBACK,
                  codec.START_SCHEDULE_FEEDBACK, codec.GET_SERIAL_FEEDBACK]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.one_of(hostile(FEEDBACK_SEEDS, True), recounted(VARIABLE_SEEDS, True),
                          st.sampled_from(FEEDBACK_SEEDS)), min_size=1, max_size=4),
       st.data(), st.booleans(), st.sampled_from(FEEDBACK_KINDS))
def test_the_session_frame_handler_survives_any_bytes(frames: List[bytes], data: Any,
                                                      logging_in: bool, expect: int) -> None:
    session, theirs = make_session()
    try:
        if logging_in:
            session._logging_in = True
            session.state = ConnectionState.CONNECTING
        else:
            session.state = ConnectionState.CONNECTED
            session._ever_connected = True
        answered = Pending("fuzzed request", _Call(b"", expect, lambda message: message))
        queued = Pending("queued request", _Call(REQUEST_SEEDS[0], expect, lambda m: m))
        if not logging_in:
            session._current = answered
            session._in_flight = [answered]
            session._queue.append(queued)
        stream = b"".join(frames)
        cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=4)))
        for start, end in zip([0] + cuts, cuts + [len(stream)]):
            if session._sock is None:
                break  # the link went down: the I/O thread would read no more from it
            session.handle_bytes(stream[start:end])  # must never raise
        for request in (answered, queued):
            assert request.error is None or isinstance(request.error, DOCUMENTED_ERRORS), \
                request.error
        if session._sock is None:  # it gave up on the link: for a documented reason
            assert isinstance(session.last_error, DOCUMENTED_ERRORS), session.last_error
            if isinstance(session.last_error, ProtocolError):
                assert session.protocol_errors >= 1
    finally:
        session._safe_close_transport()
        theirs.close()
        session.loop.close()


def test_a_live_client_survives_hostile_frames_and_answers_after(sim: ArbinSim,
                                                                 made: List[Any]) -> None:
    client = connect(sim.port, made)
    events = Recorder()
    client.subscribe(events, ConnectionStateChanged)

    @settings(max_examples=30, deadline=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
    @given(hostile(FEEDBACK_SEEDS, True))
    def hostile_frame_while_idle(frame: bytes) -> None:
        sim.send_raw(frame)
        # Whatever it was (ignored, or a ProtocolError and a reconnect), the next call works.
        assert client.read_status(2, timeout=5).channel == 2
        assert client.io_thread.is_alive() and not client.closed

    hostile_frame_while_idle()
    assert client.protocol_errors >= 1  # hostile frames were seen and counted


@pytest.mark.parametrize("frame", [
    pytest.param(lambda raw: raw[:-1] + bytes([raw[-1] ^ 0x40]), id="bit-flipped checksum"),
    pytest.param(lambda raw: raw[:40], id="truncated"),
    pytest.param(lambda raw: raw + b"\x00garbage", id="extended"),
    pytest.param(lambda raw: codec.TOKEN_BYTES + struct.pack("<I", 0xFFFFFFFF) + raw[12:],
                 id="impossible length"),
])
def test_a_hostile_frame_answering_a_request_fails_it_and_the_client_answers_after(
        sim: ArbinSim, made: List[Any], frame: Callable[[bytes], bytes]) -> None:
    client = connect(sim.port, made, timeout=CALL_TIMEOUT)
    sim.silence(True)  # the real feedback never comes; the hostile one does
    call = CallInThread(lambda: client.read_status(1))
    wait_until(lambda: sim.count(codec.ChannelInfoRequest) >= 1)
    sim.send_raw(frame(CAPTURES["server_channel_info_msg"]))
    call.join(10)
    assert isinstance(call.error, (ProtocolError, DeviceTimeoutError)), call.error
    sim.silence(False)
    assert client.read_status(1, timeout=RECOVERY_BOUND).channel == 1
    assert client.io_thread.is_alive() and not client.closed


def test_the_simulator_keeps_serving_while_hostile_clients_send_garbage(
        sim: ArbinSim, made: List[Any]) -> None:
    good = connect(sim.port, made)
    drops = Recorder()
    good.subscribe(drops, ConnectionStateChanged)
    login = codec.encode_request(codec.LoginRequest(USER, SECRET))

    @settings(max_examples=200, deadline=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
    @given(st.booleans(), st.lists(hostile(REQUEST_SEEDS, False), min_size=1, max_size=3),
           st.integers(1, 16))
    def garbage_from_a_hostile_client(logged_in: bool, frames: List[bytes],
                                      channel: int) -> None:
        with socket.create_connection(("127.0.0.1", sim.port), timeout=5) as hostile_client:
            hostile_client.sendall((login if logged_in else b"") + b"".join(frames))
            hostile_client.shutdown(socket.SHUT_WR)
            # Wait for the simulator to finish with it (it answers or drops the link).
            while hostile_client.recv(1 << 16):
                pass
        assert good.read_status(channel, timeout=5).channel == channel

    garbage_from_a_hostile_client()
    assert good.protocol_errors == 0
    assert not [e for e in drops.events if e.state is not ConnectionState.CONNECTED]
    wait_until(lambda: sim.client_count == 1, message="hostile links released")


# ---------------------------------------------------------------------- 5. resources
def test_connect_use_close_cycles_stay_flat(clock: ManualClock) -> None:
    # The simulator shares the process: it keeps only its last 50 requests, so that what is
    # measured is the client (the simulator's own record is bounded; see test_sim.py).
    with ArbinSim(16, username=USER, password=SECRET, clock=clock, max_recorded=50) as sim:
        sim.preset(1, schedule="Rest+207855.sdx")

        def open_use_close(i: int) -> None:
            with ChannelClient(sim.endpoint, channel=1, allow_writes=True,
                               username=USER, password=SECRET, timeout=5.0,
                               connect_timeout=5.0) as client:
                client.read_status(i % 16 + 1)
                client.set_meta_variable(1, float(i % 7))
                with client.watch(0.01, [1]):
                    pass

        result = cycle(open_use_close, cycles=200, warmup=20)
        assert result.check_flat() is None, result.check_flat()
        wait_until(lambda: sim.client_count == 0, message="the simulator releasing every link")


def test_in_process_simulator_cycles_stay_flat() -> None:
    def open_use_close(i: int) -> None:
        with CyclerClient("sim://?channels=4") as client:
            client.read_status(i % 4 + 1)

    result = cycle(open_use_close, cycles=100, warmup=10)
    assert result.check_flat() is None, result.check_flat()
