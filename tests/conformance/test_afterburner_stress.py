"""The stress layer for the Afterburner: the simulated controller over a real WebSocket (in this
process, or as a ``pyburnerkit sim afterburner`` subprocess that can be SIGSTOPped), driven hard.

Sections: concurrency, timeouts and stalls, re-use of helper objects, hostile input (hypothesis
over the codec and the session's frame handler, plus a live hostile peer), resources.

The controller answers once per update (its tick), so latencies are stated in ticks: a call is
answered by the first update after its round went out, which is one tick for a caller that
finds the link idle and at most two for one that arrives while a round is on the wire.
"""

from __future__ import annotations

import datetime as dt
import itertools
import os
import random
import signal
import subprocess
import sys
import time
from typing import Any, Callable, Dict, Iterator, List

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pyburnerkit import ConnectionLostError, DeviceTimeoutError, ProtocolError, Reconnect
from pyburnerkit.afterburner import (AfterburnerClient, AfterburnerSim, DemandMode,
                                     StatusChanged, ThermostatMethod, Timer, codec)
from pyburnerkit._core.pending import Pending
from pyburnerkit.afterburner.client import Exchange, Round, _run_state_is
from pyburnerkit.afterburner.sim import SYSTEM_GROUP

from ..helpers import Recorder, freeze, wait_until
from .stress import DOCUMENTED_ERRORS, cycle, hammer, run_on_io, undocumented

FUZZ = settings(max_examples=400, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                       HealthCheck.function_scoped_fixture])
FAST = Reconnect(min_delay=0.05, max_delay=0.3, jitter=0.0)
TICK = 0.2


@pytest.fixture
def fast_sim() -> Iterator[AfterburnerSim]:
    server = AfterburnerSim(tick=0.05, seed=12).start()
    yield server
    server.close()


@pytest.fixture
def sim() -> Iterator[AfterburnerSim]:
    # A cool cabin (starts are never "too warm", frost mode never starts the heater), time
    # 20x real so that the 10 s hold-off of the fuel-gauge report is half a second.
    server = AfterburnerSim(tick=TICK, speed=20.0, ambient_c=5.0, start_temp_c=12.0,
                            seed=11).start()
    yield server
    server.close()


def connect(sim: AfterburnerSim, **options: Any) -> AfterburnerClient:
    options.setdefault("timeout", 5.0)
    options.setdefault("refresh_grace", 0.2)
    return AfterburnerClient(f"127.0.0.1:{sim.port}", **options).connect()





# ====================================================================== 1. concurrency
def every_kind_of_call(heater: AfterburnerClient) -> Dict[str, Callable[[], Any]]:
    """Every read and write the client has, with values that may race but never conflict
    with the controller's own rules (a cabin colder than every set point and warmer than the
    frost threshold, a low-voltage cut-out below the battery)."""
    rng = random.Random(3)
    count = itertools.count()

    def pick(values: List[Any]) -> Any:
        return values[next(count) % len(values)]

    return {
        "read_system_info": heater.read_system_info,
        "read_timers": heater.read_timers,
        "read_status": heater.read_status,
        "reported_value": lambda: heater.reported_value("TempDesired"),
        "set": lambda: heater.set(temperature_unit=pick([0, 1]), time_12hr=pick([0, 1]),
                                  ext_thermo_timeout=pick([0, 60_000]),
                                  gpio_out1=pick([0, 1]), temp_offset=pick([0.0, -0.5])),
        "run": lambda: heater.run(pick([True, False])),
        "set_desired_temperature": lambda: heater.set_desired_temperature(pick([20, 24, 28])),
        "set_demand_mode": lambda: heater.set_demand_mode(pick(list(DemandMode))),
        "set_thermostat": lambda: heater.set_thermostat(pick(list(ThermostatMethod)),
                                                        window_c=pick([1.0, 2.5])),
        "set_cyclic": lambda: heater.set_cyclic(pick([0, 3, 5]), pick([-1, -3])),
        "set_frost": lambda: heater.set_frost(pick([0, 2]), pick([3, 5])),
        "set_humidity_start": lambda: heater.set_humidity_start(pick([0, 60, 80])),
        "set_fan_limits": lambda: heater.set_fan_limits(pick([1600, 1700]), pick([4400, 4500])),
        "set_pump_limits": lambda: heater.set_pump_limits(pick([1.5, 1.6]), pick([5.0, 5.5])),
        "set_pump_calibration": lambda: heater.set_pump_calibration(pick([0.022, 0.025])),
        "set_low_voltage_cutout": lambda: heater.set_low_voltage_cutout(pick([0, 10.5, 11.0])),
        "set_system_voltage": lambda: heater.set_system_voltage(12),
        "prime_pump": lambda: heater.prime_pump(False),
        "reset_fuel_gauge": heater.reset_fuel_gauge,  # its own default: 15 s, as above
        "set_timer": lambda: heater.set_timer(Timer(
            rng.randint(1, 14), dt.time(rng.randint(0, 23), 30), dt.time(23, 45),
            frozenset(rng.sample(["Mon", "Tue", "Sat"], rng.randint(0, 2))))),
        "set_datetime": lambda: heater.set_datetime(
            dt.datetime(2027, 1, 1, 12, 0, 0) + dt.timedelta(hours=next(count))),
        "save": heater.save,
    }


def test_eight_threads_mixing_every_call_for_three_seconds(sim: AfterburnerSim) -> None:
    # Writes queue behind each other a firmware tick apart, so eight threads writing at once
    # can keep one call waiting for seconds on a loaded machine (5 s timed out in about 1 of
    # 40 runs, with the code of the time as well as after): 15 s still catches a wedge,
    # which never answers at all.
    with connect(sim, allow_writes=True, timeout=15.0) as heater:
        operations = every_kind_of_call(heater)
        result = hammer(operations, threads=8, duration=3.0)
        # No error is allowed, documented or not: nothing here conflicts with the
        # controller's rules, and concurrent writes to one key are last-writer-wins.
        assert not result.stuck_threads, result.stuck_threads
        assert not result.errors, result.describe_errors()
        assert all(result.calls.values()), result.calls
        # A wedge (queries and answers out of step) shows as timed-out calls, asserted above.
        # Latency is a measurement, not a test: `benchmarks/afterburner.py --soak 60` reports
        # p50/p99 in update ticks (docs/performance.rst); a p99 bound here flaked on a loaded
        # machine.
        # The cache agrees with the controller once a refresh has come in.
        heater.read_status()
        device = sim.snapshot()
        raw = heater.status.raw
        for setting in codec.SETTINGS.values():
            key = setting.report_key
            if key in device and key in raw:
                assert codec.values_match(device[key], raw[key]), (key, device[key], raw[key])
        assert heater.system_info.time_12hr == bool(device["Time12hr"])
        timers = {t.id: t for t in heater.read_timers()}
        for timer_id, timer in sim.timers.items():
            assert timers[timer_id].start == dt.time(*map(int, timer.start.split(":")))
            assert codec.format_days(timers[timer_id].days,
                                     timers[timer_id].next_only) == timer.days
        assert heater.protocol_errors == 0


# ====================================================================== 2. timeouts & stalls
def test_a_tiny_timeout_then_normal_calls(sim: AfterburnerSim) -> None:
    with connect(sim, allow_writes=True) as heater:
        for tiny in (1e-6, 0.001, 0.05):
            with pytest.raises(DeviceTimeoutError):
                heater.read_system_info(timeout=tiny)
            with pytest.raises(DeviceTimeoutError):
                heater.set_desired_temperature(23, timeout=tiny)
        assert heater.read_system_info(timeout=3).firmware_version == "V3.2.1"
        assert heater.set_desired_temperature(26, timeout=3).desired_temperature == 26
        assert heater.read_status(timeout=3).desired_temperature == 26


@pytest.fixture
def sim_process() -> Iterator[tuple]:
    """``pyburnerkit sim afterburner`` in its own process, so that it can be SIGSTOPped."""
    proc = subprocess.Popen([sys.executable, "-m", "pyburnerkit.cli.main", "sim", "afterburner",
                             "--port", "0", "--tick", str(TICK)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        url = proc.stdout.readline().strip()
        assert url.startswith("ws://127.0.0.1:"), proc.stderr.read()
        yield proc, url
    finally:
        os.kill(proc.pid, signal.SIGCONT)
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=10)
        proc.stdout.close()
        proc.stderr.close()


def test_a_stopped_controller_then_resumed_answers_at_once(sim_process: tuple) -> None:
    # Before the round design the first call after SIGCONT waited for an answer that had
    # already come and timed out (3 s here). Measured recovery is about one tick (0.2 s); the
    # bound is ten ticks so that a loaded CI machine cannot make it flake, yet far below 3 s.
    proc, url = sim_process
    timeout = 0.5
    with AfterburnerClient(url, timeout=timeout, refresh_grace=0.2,
                           allow_writes=True) as heater:
        heater.read_system_info()
        freeze(proc)
        stopped = time.monotonic()
        with pytest.raises(DeviceTimeoutError):
            heater.read_system_info()
        with pytest.raises(DeviceTimeoutError):
            heater.set_desired_temperature(25)  # waits behind the query on the wire: unsent
        assert time.monotonic() - stopped >= 2 * timeout
        os.kill(proc.pid, signal.SIGCONT)
        started = time.monotonic()
        heater.read_system_info(timeout=3)
        elapsed = time.monotonic() - started
        assert elapsed <= 10 * TICK, f"{elapsed:.3f} s after SIGCONT (tick {TICK} s)"
        assert heater.set_desired_temperature(21, timeout=3).desired_temperature == 21
        assert heater.connected


# ====================================================================== 3. re-use
def test_subscriptions_and_event_streams_made_and_closed_many_times(
        fast_sim: AfterburnerSim) -> None:
    with connect(fast_sim, allow_writes=True) as heater:
        cancelled: List[Recorder] = []
        for i in range(25):
            recorder = Recorder()
            subscription = heater.subscribe(recorder, StatusChanged)
            value = 20 + i % 2
            heater.set_desired_temperature(value)
            recorder.wait_for(lambda e: e.changed.get("TempDesired") == value, timeout=5)
            subscription.cancel()
            cancelled.append(recorder)
            stream = heater.events(5.0, StatusChanged)
            heater.set_desired_temperature(30 - i % 2)
            assert next(stream).status is not None
            stream.close()
        seen = [len(r.events) for r in cancelled]
        heater.set_desired_temperature(25)
        heater.read_system_info()
        heater.read_system_info()  # the change's event has been delivered by now
        assert [len(r.events) for r in cancelled] == seen, "a cancelled callback still ran"
        assert heater._dispatcher._streams == [] and heater._dispatcher._subscriptions == []


def test_many_rounds_leave_nothing_behind(fast_sim: AfterburnerSim) -> None:
    with connect(fast_sim, allow_writes=True) as heater:
        for i in range(30):
            with pytest.raises(DeviceTimeoutError):
                heater.read_system_info(timeout=0.001)
            heater.set_desired_temperature(20 + i % 5)
        state = run_on_io(heater, lambda s: (s._round, s._open, s._riders, s._settling))
        assert state == (None, [], [], []), state


# ====================================================================== 4. hostile input
def dump_frames() -> List[Dict[str, Any]]:
    """Real frames: what the simulated firmware sends a new client."""
    with AfterburnerSim(tick=0, seed=4).start() as server:
        values = server.snapshot()
    groups = [k for k in values]
    return [{k: values[k] for k in groups[i:i + 6]} for i in range(0, len(groups), 6)]


REAL = dump_frames()
KNOWN_KEYS = sorted(set(codec.STATUS_KEYS) | set(codec.SYSTEM_KEYS) | set(codec.TIMER_KEYS)
                    | {"StartString", "MPasswd", "Reboot", "TimerRefresh"})
ODD_TEXT = st.sampled_from(["1e3", "2.5", "NaN", "nan", "inf", "-inf", "", " ", "0x10", "1_000",
                            "9" * 400, "3 25:61", "3 Mon,Xyz", "31/2/2026 10:00:00", "١٢",
                            "99 06:30", "BTC,Htr", "OEM", "\x00", "\ud7ff"])
SCALARS = st.one_of(st.none(), st.booleans(), st.integers(), st.integers(-2**70, 2**70),
                    st.integers(10**300, 10**400).map(lambda n: n * (-1) ** (n % 2)),
                    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=12),
                    ODD_TEXT)
FRAMES = st.one_of(
    st.dictionaries(st.sampled_from(KNOWN_KEYS), SCALARS, max_size=6),
    st.builds(lambda base, extra: dict(base, **extra), st.sampled_from(REAL),
              st.dictionaries(st.sampled_from(KNOWN_KEYS), SCALARS, max_size=3)),
    st.dictionaries(st.text(max_size=8), SCALARS, max_size=4))


def as_text(frame: Dict[str, Any]) -> str:
    return codec.encode_frame(frame)


TEXTS = st.one_of(
    FRAMES.map(as_text),
    FRAMES.map(as_text).flatmap(lambda t: st.integers(0, len(t)).map(lambda n: t[:n])),
    st.text(max_size=60), st.binary(max_size=60),
    st.sampled_from(['{"RunState":', "[1,2]", "null", '{"a":{"b":1}}', "NaN", '{"x":NaN}',
                     "[" * 5000, '{"RunState":1e400}']))


@FUZZ
@given(data=TEXTS)
def test_the_codec_raises_only_documented_errors(data: Any) -> None:
    def decode() -> None:
        frame = codec.decode_frame(data)
        codec.check_frame(frame)
        codec.build_status(frame)
        codec.build_system_info(frame)
        for key in codec.TIMER_KEYS:
            if key in frame:
                codec.apply_timer_key(Timer(1), key, frame[key])
    found = undocumented(decode)
    assert found is None, repr(found)
    assert isinstance(codec.redact(data), (str, bytes, type(None), dict)) or True


@FUZZ
@given(value=SCALARS)
def test_every_value_converter_raises_only_documented_errors(value: Any) -> None:
    for key in KNOWN_KEYS:
        found = undocumented(lambda: codec.convert(key, value))
        assert found is None, (key, value, found)
        if key in codec.TIMER_KEYS:
            found = undocumented(lambda: codec.parse_timer_value(key, value))
            assert found is None, (key, value, found)


@pytest.fixture
def fuzz_target() -> Iterator[tuple]:
    """A live client whose I/O thread the fuzzer feeds (one for all the examples of a test).

    Five bad frames in a row make it rebuild the link, as documented; the examples go on."""
    server = AfterburnerSim(tick=0, seed=6).start()
    heater = connect(server, reconnect=FAST, allow_writes=True)
    try:
        yield server, heater
    finally:
        heater.close()
        server.close()


def waiting_requests(session: Any) -> None:
    """Give the session a start waiting for its run state and a setter waiting for its
    round's answer (never sent), so hostile frames also reach the settle and answer checks."""
    if not any(not r.done() for r in session._settling):
        start = Pending("fuzz start", Exchange({"Run": 1}, settle=_run_state_is(
            lambda state: state.is_on), settle_keys={"Run"}))
        session._settling.append(start)
    if session._round is None:
        setter = Pending("fuzz set", Exchange({"TempDesired": 23},
                                              expect={"TempDesired": ("TempDesired", 23)}))
        session._round = Round([setter], [])


@FUZZ
@given(data=TEXTS)
def test_the_session_frame_handler_raises_only_documented_errors(fuzz_target: tuple,
                                                                 data: Any) -> None:
    server, heater = fuzz_target

    def feed(session: Any) -> Any:
        waiting_requests(session)
        undocumented_error = undocumented(lambda: session._handle_text(data))
        waiting_requests(session)
        before = session.unexpected_errors
        session.handle_text(data)  # the guarded entry point: never raises
        return undocumented_error, session.unexpected_errors - before

    found, unexpected = run_on_io(heater, feed)
    assert found is None, repr(found)
    assert unexpected == 0
    assert heater.io_thread.is_alive()


def test_a_live_client_survives_hostile_frames_and_still_answers(fuzz_target: tuple) -> None:
    server, heater = fuzz_target
    hostile = ['{"RunState":"1e3"}', '{"RunState":"NaN"}', '{"TempCurrent":' + "9" * 400 + "}",
               '{"TimerStart":"3 25:61"}', '{"DateTime":"31/2/2026 10:00:00"}', "[1,2]",
               '{"SysUpTime":"x"}', '{"MPasswd":"hostile-secret"', "\x00\xff", "{}",
               '{"BluewireStat":""}', '{"ErrorState":1e300}', '{"StartString":null}']
    for text in hostile * 3:
        server.send_garbage(text)

    def answers() -> bool:
        # Five bad frames in a row rebuild the link (the documented recovery): a read in
        # flight then fails with ConnectionLostError, and reads may be made again.
        try:
            return heater.read_system_info(timeout=2).firmware_version == "V3.2.1"
        except (ConnectionLostError, DeviceTimeoutError):
            return False

    wait_until(answers, timeout=20, message="the client answering after hostile frames")
    assert heater.read_status(timeout=5).run_state is not None
    assert heater.io_thread.is_alive() and heater.protocol_errors > 0
    assert heater._session.unexpected_errors == 0
    assert all("hostile-secret" not in repr(f) for f in heater._wire.recent())


# ====================================================================== 5. resources
def test_connect_use_close_cycles_stay_flat() -> None:
    with AfterburnerSim(tick=0, seed=8).start() as server:
        url = f"127.0.0.1:{server.port}"

        def open_use_close(i: int) -> None:
            with AfterburnerClient(url, refresh_grace=0.2, timeout=5.0,
                                   allow_writes=True) as heater:
                heater.set_desired_temperature(20 + i % 2)

        result = cycle(open_use_close, cycles=200)
        problem = result.check_flat()
        assert problem is None, problem
        assert server.client_count == 0


def test_the_system_group_is_what_the_codec_knows() -> None:
    # The answer marker and the system keys the session splits on come from the same table.
    assert set(SYSTEM_GROUP) == set(codec.SYSTEM_KEYS)
    assert "SysUpTime" in codec.SYSTEM_KEYS
    assert isinstance(ProtocolError("x"), DOCUMENTED_ERRORS)
