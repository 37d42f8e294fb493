"""The stress layer for the DE1 and its Skale II (``tests/conformance/stress.py``).

Two paths to the simulated devices: unmodified pygatt driving the fake ``gatttool`` (a real
process on a pty, over 127.0.0.1; the harness of ``test_de1.py``), and the in-process
``SimTransport`` where hundreds of rounds are needed (the same client, session and threads;
only the radio link is a direct call).
"""

from __future__ import annotations

import os
import random
import threading
import time
from typing import Any, Callable, Dict, Iterator, List, Optional

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from pyburnerkit import ConnectionState, DeviceTimeoutError, Reconnect
from pyburnerkit.ble.transport import PygattTransport
from pyburnerkit.de1 import codec
from pyburnerkit.de1.client import DE1Client
from pyburnerkit.de1.firmware import make_test_image
from pyburnerkit.de1.models import (CalTarget, MachineState as S, Mode, SequencerTimer,
                                    StateChanged)
from pyburnerkit.de1.sequencer import ShotSequencer
from pyburnerkit.rigs.espresso import DE1Rig
from pyburnerkit.errors import DeviceError, ProtocolError
from pyburnerkit.scale import codec as scale_codec
from pyburnerkit.scale.client import SkaleClient

from ..ble.simrig import SEND_DELAY, SPEED, sim_transport
from ..de1.recorded_frames import DE1_FRAMES, SCALE_FRAMES
from ..de1.test_profile_firmware import PROFILE
from ..helpers import Recorder, wait_until
from .stress import cycle, hammer, undocumented
from .test_de1 import DE1Harness

CAL_KEY = 0x5EC0DE42
FAST = Reconnect(min_delay=0.05, max_delay=0.5, jitter=0.0)
#: After a stall the DE1 client resets the link (an unanswered GATT request leaves pygatt out
#: of step with the device), so recovery is one reconnect: backoff (0.05 s here, 0.5 s with the
#: default policy) + a new gatttool, connect, subscriptions and the initial reads (~0.4 s
#: here). Bound asserted for the first call after the device answers again:
RECOVERY_BOUND_S = 5.0


@pytest.fixture
def harness() -> Iterator[DE1Harness]:
    h = DE1Harness()
    h.start_with(calibration_key=CAL_KEY)
    try:
        yield h
    finally:
        h.stop()


@pytest.fixture
def rig() -> Iterator[DE1Rig]:
    r = DE1Rig(speed=SPEED).start()
    try:
        yield r
    finally:
        r.close()


def in_process_de1(rig: DE1Rig, **kw: Any) -> DE1Client:
    kw.setdefault("timeout", 5.0)
    return DE1Client(rig.de1.address, transport=sim_transport(rig), **kw)


# ============================================================================ 1. concurrency

def test_eight_threads_mix_every_read_and_write(harness: DE1Harness) -> None:
    """8 threads for 2.5 s through pygatt and the fake gatttool, every read and write kind.

    Not mixed in: ``sleep`` (it races ``wake``: the DE1 refuses sleep outside Idle), flow
    starts and ``skip_to_next`` (a flow runs for tens of seconds and changes which requests
    the DE1 accepts; covered by test_client.py and the sequencer tests). The one documented
    error allowed: a second firmware upload while one runs is refused ("already in progress").
    """
    image = make_test_image(version=1401, body_bytes=256)
    client = harness.make_client(timeout=15.0, allow_remote_start=False)
    rngs: Dict[int, random.Random] = {}

    def rng() -> random.Random:
        return rngs.setdefault(threading.get_ident(), random.Random(threading.get_ident()))

    operations: Dict[str, Callable[[], Any]] = {
        "read_state": client.read_state,
        "read_shot_settings": client.read_shot_settings,
        "read_water_levels": client.read_water_levels,
        "read_temperatures": client.read_temperatures,
        "read_setting": lambda: client.read_setting("fan_threshold"),
        "read_calibration": lambda: client.read_calibration(rng().choice(
            (CalTarget.FLOW, CalTarget.PRESSURE, CalTarget.TEMPERATURE))),
        "write_setting": lambda: client.write_setting("fan_threshold", rng().randint(40, 59)),
        "set_shot_settings": lambda: client.set_shot_settings(
            group_temp_c=rng().randint(180, 190) / 2),
        "set_refill_level": lambda: client.set_refill_level(rng().randint(10, 20) / 2),
        "write_calibration": lambda: client.write_calibration(
            "flow", 4.0, rng().randint(38, 44) / 10, write_key=CAL_KEY),
        "reset_calibration": lambda: client.reset_calibration("pressure", write_key=CAL_KEY),
        "upload_profile": lambda: client.upload_profile(PROFILE),
        "upload_firmware": lambda: client.upload_firmware(image, timeout=15.0),
        "wake": client.wake,
        "stop": client.stop,
        "end_steam": client.end_steam,
        "no_request": lambda: client.request_mode(Mode.NO_REQUEST),
        "stop_flow": client.stop_flow,
    }
    try:
        client.connect()
        result = hammer(operations, threads=8, duration=2.5)
        assert not result.stuck_threads, result.stuck_threads
        unexpected = [(name, exc) for name, exc in result.errors
                      if not (name == "upload_firmware" and isinstance(exc, DeviceError)
                              and "already in progress" in str(exc))]
        assert not unexpected, result.describe_errors()
        assert all(count > 0 for count in result.calls.values()), result.calls
        assert client.io_thread.is_alive() and client.connected

        def agrees(c: DE1Client) -> bool:
            sim = harness.sim_de1
            fan, settings, fill, flow, state, accepted = harness.on_sim(lambda: (
                sim.registers[0x803808], sim.settings, sim.water.start_fill_level_mm,
                sim.calibration[CalTarget.FLOW], sim.state.state, sim.profiles_accepted))
            return (c.registers["fan_threshold"] == fan and c.shot_settings == settings
                    and c.water_levels.start_fill_level_mm == fill
                    and abs(c.calibration["flow"].measured - flow[1]) < 1e-3
                    and c.state is state and accepted > 0 and c.profile is not None)

        client.wait_for(agrees, timeout=5.0)  # notifications in flight may still land
    finally:
        client.close()


# ============================================================================ 2. timeouts, stalls

def test_tiny_timeout_then_a_stall_then_recovery(harness: DE1Harness) -> None:
    """A call with a 1 ms timeout fails and the next ones work; then the DE1 stalls (holds
    every answer) for 2x the 1 s timeout, then silences, then resumes: the first call after it
    answers again succeeds within ``RECOVERY_BOUND_S``, and the link came back by itself."""
    client = harness.make_client(timeout=1.0, connect_timeout=10.0, reconnect=FAST)
    try:
        client.connect()
        harness.hold_replies(0.2)  # the answer comes in 0.2 s: after 1 ms, within the 1 s
        with pytest.raises(DeviceTimeoutError):
            client.read_state(timeout=0.001)
        harness.hold_replies(0.0)
        assert client.read_state().state is S.SLEEP
        assert client.write_setting("fan_threshold", 44) == 44
        # stall 1: the DE1 answers 2 s late (twice the timeout)
        harness.hold_replies(2.0)
        with pytest.raises(DeviceTimeoutError):
            client.read_shot_settings()
        harness.hold_replies(0.0)
        started = time.monotonic()
        assert client.read_state(timeout=RECOVERY_BOUND_S).state is S.SLEEP
        assert time.monotonic() - started < RECOVERY_BOUND_S
        # stall 2: the DE1 answers nothing for 2x the timeout (two timed-out calls)
        harness.silence(True)
        for _ in range(2):
            with pytest.raises(DeviceTimeoutError):
                client.read_water_levels()
        harness.silence(False)
        started = time.monotonic()
        assert client.read_shot_settings(timeout=RECOVERY_BOUND_S) is not None
        assert time.monotonic() - started < RECOVERY_BOUND_S
        assert client.read_setting("fan_threshold", timeout=RECOVERY_BOUND_S) == 44
        assert client.protocol_errors == 0  # no late answer was taken for another request
        assert client.io_thread.is_alive()
    finally:
        client.close()


# ============================================================================ 3. re-use

def test_many_sequencers_in_one_client_never_touch_each_other(rig: DE1Rig) -> None:
    """Six sequencers, one after another on the same clients, each with a watchdog (6 s) that
    is due during a later shot and a stop-at-time timer: every shot ends by its own rule,
    every sequence has its own id, and no timer of a closed sequencer is ever published."""
    de1 = in_process_de1(rig, allow_writes=True, allow_remote_start=True)
    timers: List[SequencerTimer] = []
    closed_ids: List[int] = []
    late: List[SequencerTimer] = []
    lock = threading.Lock()

    def on_timer(event: SequencerTimer) -> None:
        with lock:
            timers.append(event)
            if event.sequence_id in closed_ids:
                late.append(event)

    try:
        de1.connect()
        de1.wake()
        de1.subscribe(on_timer, SequencerTimer)
        records = []
        for _ in range(6):
            with ShotSequencer(de1, None, stop_at_time=1.5, watchdog_s=6.0, time_scale=SPEED,
                               last_drops_minimum_time=0.5) as seq:
                de1.start_espresso()
                record = seq.wait_complete(timeout=30)
            with lock:
                closed_ids.append(record.extra["sequence_id"])
            records.append(record)
            de1.wait_for(lambda c: c.state is S.IDLE, timeout=20)
        assert [r.stop_reason for r in records] == ["time"] * 6
        assert not any(r.extra["watchdog"] for r in records)
        assert len({r.extra["sequence_id"] for r in records}) == 6
        # a marker published now reaches the callback after anything published before it
        de1.post_later(0.0, SequencerTimer(-1, "marker"))
        wait_until(lambda: any(t.sequence_id == -1 for t in list(timers)),
                   message="the marker timer")
        assert late == [], f"timers of closed sequencers fired: {late}"
    finally:
        de1.close()


def test_post_later_timers_and_follows_die_with_their_owner(rig: DE1Rig) -> None:
    """200 ``post_later`` timers cancelled before they fire never publish; 20 scale follows
    made and cancelled leave nothing subscribed that acts on the scale."""
    de1 = in_process_de1(rig, allow_writes=True)
    scale = SkaleClient(rig.skale.address, transport=sim_transport(rig), time_scale=SPEED)
    seen: List[SequencerTimer] = []
    try:
        de1.connect()
        scale.connect()
        de1.subscribe(seen.append, SequencerTimer)
        handles = [de1.post_later(0.05, SequencerTimer(i, "cancelled")) for i in range(200)]
        for handle in handles:
            handle.cancel()
        keep = de1.post_later(0.1, SequencerTimer(999, "kept"))
        wait_until(lambda: any(e.sequence_id == 999 for e in list(seen)), message="the kept timer")
        assert [e.sequence_id for e in seen] == [999]  # the cancelled ones (due first) never
        assert keep.fired and all(h.cancelled and not h.fired for h in handles)
        # follows made and cancelled while the DE1 is awake; then it sleeps: none may act
        de1.wake()
        for _ in range(20):
            scale.follow(de1).cancel()
        states = Recorder()
        de1.subscribe(states, StateChanged)
        de1.sleep()
        states.wait_for(lambda e: e.state is S.SLEEP)  # delivered after any follow callback
        # a release would have been queued on the scale's I/O thread before this read, and a
        # released scale answers nothing until captured
        assert scale.read_battery(timeout=2.0) == 57
        assert not scale.released and scale.connected
    finally:
        scale.close()
        de1.close()


# ============================================================================ 4. hostile input

DE1_DECODERS: Dict[str, Callable[[Any], Any]] = {
    name: getattr(codec, name) for name in dir(codec)
    if name.startswith(("decode_", "dec_")) and callable(getattr(codec, name))}
SCALE_DECODERS: Dict[str, Callable[[Any], Any]] = {
    name: getattr(scale_codec, name) for name in dir(scale_codec)
    if name.startswith("decode_") and callable(getattr(scale_codec, name))}


def test_the_fuzzed_decoder_tables_are_complete() -> None:
    assert set(DE1_DECODERS) == {
        "dec_f8_1_7", "dec_u24p16", "decode_calibration", "decode_firmware_header",
        "decode_frame_write", "decode_fw_map", "decode_header", "decode_mmr",
        "decode_mmr_reply", "decode_requested_state", "decode_set_time", "decode_shot_sample",
        "decode_shot_settings", "decode_state_info", "decode_tail", "decode_temperatures",
        "decode_versions", "decode_water_levels"}
    assert set(SCALE_DECODERS) == {"decode_battery", "decode_button", "decode_command",
                                   "decode_timer", "decode_weight"}


def mutations(frames: List[bytes]) -> st.SearchStrategy:
    """Recorded frames as they are, cut short, extended, with a byte changed, or noise."""
    seed = st.sampled_from(frames)
    return st.one_of(
        seed,
        st.tuples(seed, st.integers(0, 24)).map(lambda t: t[0][:t[1]]),
        st.tuples(seed, st.binary(min_size=1, max_size=8)).map(lambda t: t[0] + t[1]),
        st.tuples(seed, st.integers(0, 23), st.integers(0, 255)).map(
            lambda t: t[0][:t[1]] + bytes((t[2],)) + t[0][t[1] + 1:]),
        st.binary(max_size=40))


ALL_FRAMES = [f for table in (DE1_FRAMES, SCALE_FRAMES) for fs in table.values() for f in fs]
NOT_BYTES = st.one_of(st.none(), st.text(max_size=4), st.integers(-300, 300),
                      st.floats(allow_nan=True), st.lists(st.integers(0, 255), max_size=4))


@pytest.mark.parametrize("name", sorted(DE1_DECODERS) + sorted(SCALE_DECODERS))
@settings(max_examples=200, deadline=None)
@given(data=st.data())
def test_every_decoder_raises_only_protocol_error(name: str, data: Any) -> None:
    decoder = {**DE1_DECODERS, **SCALE_DECODERS}[name]
    if name == "dec_f8_1_7":
        value = data.draw(st.one_of(st.integers(-10, 300), NOT_BYTES))
    else:
        value = data.draw(st.one_of(mutations(ALL_FRAMES), NOT_BYTES))
    found = undocumented(lambda: decoder(value), allowed=(ProtocolError,))
    assert found is None, f"{name}({value!r}) raised {type(found).__name__}: {found}"


def run_on_io_thread(client: Any, fn: Callable[[], Any]) -> Optional[BaseException]:
    """Run ``fn`` on the client's I/O thread (where notifications are handled) and return
    whatever escaped it (None when nothing did)."""
    done = threading.Event()
    escaped: List[BaseException] = []

    def call() -> None:
        try:
            fn()
        except BaseException as exc:  # the finding
            escaped.append(exc)
        finally:
            done.set()

    client._session.call_soon_threadsafe(call)
    assert done.wait(5.0), "the I/O thread did not run the handler"
    return escaped[0] if escaped else None


def feed_hostile(client: Any, frames: Dict[str, List[bytes]], examples: int) -> None:
    """Hypothesis drives hostile notifications through the session's notification handler on
    the live client's I/O thread; nothing may escape it."""
    session = client._session
    uuids = sorted(frames)

    @settings(max_examples=examples, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    @given(uuid=st.sampled_from(uuids), data=st.data())
    def feed(uuid: str, data: Any) -> None:
        frame = data.draw(mutations(frames[uuid] or [b""]))
        escaped = run_on_io_thread(
            client, lambda: session._value(session._generation, uuid, frame))
        assert escaped is None, f"{uuid[4:8]} {frame.hex()}: {escaped!r}"
        assert client.io_thread.is_alive()

    feed()


def test_hostile_notifications_never_kill_the_de1_io_thread(rig: DE1Rig) -> None:
    with in_process_de1(rig, allow_writes=True) as de1:
        feed_hostile(de1, DE1_FRAMES, examples=400)
        assert de1.protocol_errors > 0  # counted...
        assert de1.io_thread.is_alive() and de1.connected  # ...and the client carries on
        assert de1.read_state().state in (S.SLEEP, S.IDLE)
        assert de1.write_setting("fan_threshold", 41) == 41


def test_hostile_notifications_never_kill_the_scale_io_thread(rig: DE1Rig) -> None:
    scale = SkaleClient(rig.skale.address, transport=sim_transport(rig), time_scale=SPEED,
                        allow_writes=True)  # button 1 then tares: the handler writes too
    with scale.connect():
        feed_hostile(scale, SCALE_FRAMES, examples=300)
        assert scale.protocol_errors > 0 and scale.io_thread.is_alive() and scale.connected
        assert scale.read_battery() == 57
        scale.tare()


def test_hostile_notifications_over_pygatt_reach_a_live_client(harness: DE1Harness) -> None:
    """Malformed values sent by the simulated DE1 itself, through the fake gatttool and
    pygatt's receiver: every one is counted and dropped, the client still answers."""
    client = harness.make_client(timeout=5.0)
    events = Recorder()
    hostile = [(codec.STATE_INFO, b"\x02"), (codec.SHOT_SAMPLE, bytes(5)),
               (codec.WATER_LEVELS, b"\xff" * 9), (codec.READ_FROM_MMR, b"\x11" + bytes(19)),
               (codec.CALIBRATION, bytes(3)), (codec.TEMPERATURES, b"\x01"),
               (codec.SHOT_SETTINGS, b"\x00" * 10), (codec.FW_MAP_REQUEST, b"\xff")]
    try:
        client.connect()
        client.subscribe(events, StateChanged)
        sim = harness.sim_de1
        harness.on_sim(lambda: [sim.notify(uuid, data) for uuid, data in hostile])
        client.wait_for(lambda c: c.protocol_errors >= len(hostile), timeout=5.0)
        assert client.read_state().state is S.SLEEP
        assert client.wake().state is S.IDLE  # and its notifications still work
        events.wait_for(lambda e: e.state is S.IDLE)
        assert client.connection_state is ConnectionState.CONNECTED
    finally:
        client.close()


# ============================================================================ 5. resources

def test_connect_use_close_cycles_in_process(rig: DE1Rig) -> None:
    """200 connect / read / close cycles (about 5 ms each in process): threads, fds, RSS flat."""
    def once(i: int) -> None:
        with in_process_de1(rig) as de1:
            assert de1.read_state().state is S.SLEEP

    result = cycle(once, cycles=200)
    assert result.check_flat() is None, result.check_flat()


def test_sequencer_create_start_close_cycles(rig: DE1Rig) -> None:
    """200 sequencers made, started and closed on one client: nothing accumulates."""
    with in_process_de1(rig) as de1:
        def once(i: int) -> None:
            with ShotSequencer(de1, None, stop_at_weight=36) as seq:
                assert seq.sequence_id == 0

        result = cycle(once, cycles=200)
    assert result.check_flat() is None, result.check_flat()


def child_processes() -> int:
    me = str(os.getpid())
    count = 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[1] == me:  # ppid
            count += 1
    return count


def test_connect_use_close_cycles_through_pygatt(harness: DE1Harness) -> None:
    """Fewer cycles here: a DE1 connect/close over the fake gatttool costs ~0.4 s (a new
    gatttool process, pygatt's start, 12 subscriptions, the initial reads; ~1.9 s with
    pygatt's discovery, which the shared transport caches per address), so 12 measured
    cycles after 3 warm-up ones, not 200. Threads, fds, RSS and gatttool processes flat."""
    transport = PygattTransport(send_delay=SEND_DELAY)

    def once(i: int) -> None:
        with DE1Client(harness.sim_de1.address, transport=transport, timeout=5.0) as de1:
            assert de1.read_state().state is S.SLEEP

    children = child_processes()
    result = cycle(once, cycles=12, warmup=3)
    assert result.check_flat(rss_slack=2 * 1024 * 1024) is None, result.check_flat()
    assert child_processes() == children
