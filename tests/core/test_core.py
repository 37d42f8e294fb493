"""The device-independent machinery: reactor, cache, dispatcher, backoff, timeouts, errors."""

from __future__ import annotations

import random
import sys
import threading
from typing import Any, List

import pytest

import pyburnerkit
from pyburnerkit import (BackendUnavailableError, ConfigurationError, DeviceTimeoutError,
                         Reconnect)
from pyburnerkit._core.cache import StateCache
from pyburnerkit._core.dispatcher import Dispatcher
from pyburnerkit._core.extras import require
from pyburnerkit._core.loop import EventLoop
from pyburnerkit._core.pending import Pending
from pyburnerkit._core.timeouts import DEFAULT, Deadline, resolve_timeout
from pyburnerkit.errors import check_range

from ..helpers import CallInThread, Recorder


def test_reactor_runs_cross_thread_calls_at_once_and_timers_in_order() -> None:
    loop = EventLoop()
    order: List[Any] = []
    done = threading.Event()

    def stop() -> None:
        order.append("stop")
        loop.stop()
        done.set()

    thread = threading.Thread(target=loop.run, name="pyburnerkit-test-loop")
    thread.start()
    loop.call_soon_threadsafe(lambda: loop.call_later(0.05, stop))
    loop.call_soon_threadsafe(lambda: loop.call_later(0.01, order.append, "early"))
    loop.call_soon_threadsafe(order.append, "soon")
    assert done.wait(5)
    thread.join(5)
    loop.close()
    assert order == ["soon", "early", "stop"]


def test_reactor_wait_io_is_interrupted_by_stop() -> None:
    import socket
    loop = EventLoop()
    a, b = socket.socketpair()
    try:
        result = CallInThread(lambda: loop.wait_io(a, timeout=30))
        loop.stop()
        result.join(5)
        assert result.result is False
    finally:
        a.close()
        b.close()
        loop.close()


def test_cache_wait_for_wakes_on_change_and_times_out() -> None:
    cache = StateCache()
    waiter = CallInThread(lambda: cache.wait_for(lambda c: c.value("x") == 2, timeout=5))
    cache.set("x", 1)
    cache.set("x", 2)
    waiter.join(5)
    assert waiter.result is True
    assert cache.wait_for(lambda c: c.value("y"), timeout=0.05) is None
    cache.mark_stale()
    assert cache.get("x").stale and cache.value("x") == 2
    cache.set("x", 3)
    assert not cache.is_stale("x") and cache.is_stale("y")


def test_dispatcher_isolates_failing_callbacks_and_keeps_order() -> None:
    errors: List[BaseException] = []
    dispatcher = Dispatcher("pyburnerkit-test-events",
                            on_callback_error=lambda exc, event: errors.append(exc))
    seen = Recorder()
    dispatcher.subscribe(lambda event: 1 / 0)
    dispatcher.subscribe(seen)
    dispatcher.start()
    for i in range(100):
        dispatcher.publish(i)
    seen.wait_for(lambda e: e == 99)
    assert seen.events == list(range(100))
    assert dispatcher.callback_errors == 100 and isinstance(errors[0], ZeroDivisionError)
    assert dispatcher.close(Deadline(5))


def test_dispatcher_drops_oldest_when_full_and_streams_end_on_close() -> None:
    dispatcher = Dispatcher("pyburnerkit-test-events", max_pending=3)
    for i in range(5):
        dispatcher.publish(i)
    assert dispatcher.dropped == 2
    assert _what_a_stream_gets(dispatcher) == [2, 3, 4]


def _what_a_stream_gets(dispatcher: Dispatcher) -> List[Any]:
    """Start ``dispatcher``, close it, and return what an ``events()`` iterator received."""
    stream = dispatcher.events(None, 100)
    got = CallInThread(lambda: list(stream))
    dispatcher.start()
    dispatcher.close(Deadline(5))
    got.join(5)
    result: List[Any] = got.result
    return result


def test_pending_first_completion_wins() -> None:
    pending = Pending("x")
    assert pending.fail(DeviceTimeoutError("late")) is True
    assert pending.resolve(1) is False
    with pytest.raises(DeviceTimeoutError):
        pending.result()


def test_reconnect_delays_grow_cap_and_jitter() -> None:
    policy = Reconnect(min_delay=0.5, max_delay=4.0, factor=2.0, jitter=0.0)
    assert [policy.delay(n) for n in range(6)] == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]
    jittered = Reconnect(min_delay=1.0, max_delay=10.0, jitter=0.1)
    rng = random.Random(1)
    values = [jittered.delay(0, rng) for _ in range(100)]
    assert min(values) >= 0.9 and max(values) <= 1.1 and len(set(values)) > 50
    assert Reconnect(max_attempts=3).gives_up_after(3)
    assert policy.delay(10_000) == 4.0
    with pytest.raises(ConfigurationError):
        Reconnect(min_delay=5, max_delay=1)


def test_timeouts_default_explicit_none_and_bad_values() -> None:
    assert resolve_timeout(DEFAULT, 5.0) == 5.0
    assert resolve_timeout(None, 5.0) is None
    assert resolve_timeout(2, 5.0) == 2.0
    for bad in (-1, "3", float("nan"), True):
        with pytest.raises(ConfigurationError):
            resolve_timeout(bad, 5.0)
    assert Deadline(None).remaining() is None and Deadline(0).expired()


def test_check_range_messages_name_value_limit_and_unit() -> None:
    with pytest.raises(ConfigurationError, match=r"x=12 V is out of range: the limit is 0..10 V"):
        check_range("x", 12, 0, 10, "V")
    assert check_range("x", 3.0, 0, 10, integer=True) == 3
    # Regression: limits were printed with :g, so 2147483647 read as 2.14748e+09.
    with pytest.raises(ConfigurationError, match=r"the limit is 0\.\.2147483647 s$"):
        check_range("x", -1, 0, 2147483647, "s")
    # Regression: an infinite value with integer=True raised OverflowError from int().
    with pytest.raises(ConfigurationError, match=r"x=inf s is out of range"):
        check_range("x", float("inf"), 0, 10, "s", integer=True)
    with pytest.raises(ConfigurationError, match=r"in 0\.5\.\.2\.5 V, got NaN"):
        check_range("x", float("nan"), 0.5, 2.5, "V")
    assert isinstance(ConfigurationError("x"), ValueError)


def test_missing_extra_names_the_pip_command(monkeypatch: Any) -> None:
    # The module is installed here, so its absence is simulated by hiding it from import.
    monkeypatch.setitem(sys.modules, "websocket", None)
    with pytest.raises(BackendUnavailableError, match=r'pip install "pyburnerkit\[afterburner\]"'):
        require("websocket", "afterburner")
    from pyburnerkit.afterburner import AfterburnerClient
    with pytest.raises(ImportError):
        AfterburnerClient("sim://")


def test_close_all_and_log_to_stderr(capsys: Any) -> None:
    from pyburnerkit.afterburner import AfterburnerClient
    clients = [AfterburnerClient("sim://?tick=0", allow_writes=True).connect() for _ in range(2)]
    assert pyburnerkit.close_all() >= 2
    assert all(c.closed for c in clients)
    handler = pyburnerkit.log_to_stderr("INFO")
    try:
        import logging
        logging.getLogger("pyburnerkit.test").info("hello")
        logging.getLogger("pyburnerkit.afterburner.wire").info("frame")
    finally:
        logging.getLogger("pyburnerkit").removeHandler(handler)
        logging.getLogger("pyburnerkit").setLevel(logging.NOTSET)
    err = capsys.readouterr().err
    assert "hello" in err and "frame" not in err


def test_close_is_bounded_when_a_callback_hangs(caplog: Any) -> None:
    from pyburnerkit.afterburner import AfterburnerClient
    release = threading.Event()
    entered = threading.Event()

    def stuck(event: Any) -> None:
        entered.set()
        release.wait(30)

    client = AfterburnerClient("sim://?tick=0", allow_writes=True).connect()
    client.subscribe(stuck)
    client.set_desired_temperature(25)
    assert entered.wait(5)
    try:
        with caplog.at_level("WARNING", logger="pyburnerkit"):
            assert client.close(timeout=0.3) is False
        assert any("did not stop" in r.getMessage() for r in caplog.records)
    finally:
        release.set()
        client.events_thread.join(5)
    assert not client.events_thread.is_alive() and not client.io_thread.is_alive()


def test_wait_for_predicate_may_call_blocking_methods() -> None:
    # The predicate runs with no lock held: a blocking call inside it must not deadlock
    # against the I/O thread writing the cache.
    from pyburnerkit.afterburner import AfterburnerClient
    with AfterburnerClient("sim://?tick=0", allow_writes=True) as heater:
        calls: List[int] = []

        def predicate(client: Any) -> bool:
            calls.append(client.read_system_info(timeout=5).uptime_s)
            return len(calls) >= 3

        assert heater.wait_for(predicate, timeout=10) is True
        assert len(calls) == 3


def test_wire_log_survives_a_raising_trace_and_hides_frames_it_cannot_redact(caplog: Any) -> None:
    from pyburnerkit._core.wire import WireLog

    failures: List[Any] = []

    def trace(direction: str, frame: Any) -> None:
        raise RuntimeError("trace bug")

    def redact(frame: Any) -> Any:
        if "secret" in str(frame):
            raise ValueError("cannot parse")
        return frame

    wire = WireLog("generic", trace=trace, redact=redact,
                   on_trace_error=lambda hook, exc, payload: failures.append((hook, exc, payload)))
    with caplog.at_level("DEBUG", logger="pyburnerkit.generic.wire"):
        wire.sent("hello")
        wire.received("password=secret")
    assert wire.trace_errors == 2
    assert [f[2][0] for f in failures] == [">>", "<<"]
    assert failures[0][0] is trace and isinstance(failures[0][1], RuntimeError)
    assert [frame for _, _, frame in wire.recent()] == ["hello", "<frame hidden: redaction failed>"]
    assert "secret" not in caplog.text


def test_dispatcher_reports_a_hook_failure_on_the_events_thread_once_logged(caplog: Any) -> None:
    seen: List[Any] = []
    done = threading.Event()

    def on_error(error: BaseException, payload: Any) -> None:
        seen.append((threading.current_thread().name, error, payload))
        if len(seen) == 2:
            done.set()

    dispatcher = Dispatcher("pyburnerkit-test-events", on_callback_error=on_error)
    dispatcher.start()
    try:
        hook = object()
        dispatcher.hook_failed(hook, RuntimeError("one"), ("<<", "a"))
        dispatcher.hook_failed(hook, RuntimeError("two"), ("<<", "b"))
        assert done.wait(5.0)
    finally:
        assert dispatcher.close(Deadline(5.0))
    assert dispatcher.callback_errors == 2
    assert {name for name, _, _ in seen} == {"pyburnerkit-test-events"}
    assert [payload for _, _, payload in seen] == [("<<", "a"), ("<<", "b")]
    assert caplog.text.count("logged once per hook") == 1


def test_a_late_link_error_between_attempts_never_schedules_a_second_retry() -> None:
    """Regression: a second link_failed() while a retry was already scheduled added a second
    retry timer, so two transports were opened and the first one leaked."""
    from pyburnerkit._core.session import Session
    from pyburnerkit._core.wire import WireLog
    from pyburnerkit.types import ConnectionState

    opened: List[float] = []
    second_open = threading.Event()

    class Flaky(Session):
        def open_transport(self, deadline: Deadline) -> None:
            opened.append(0.0)
            if len(opened) == 1:
                self.established()
                # the link breaks, and a second error from the same dying link follows
                self.link_failed(ConnectionResetError("reset"))
                self.link_failed(BrokenPipeError("late error from the same link"))
            else:
                second_open.set()
                self.established()

        def close_transport(self) -> None:
            pass

    dispatcher = Dispatcher("pyburnerkit-generic-test-events")
    session = Flaky(endpoint="test", cache=StateCache(), dispatcher=dispatcher,
                    wire=WireLog("generic"), connect_timeout=5.0,
                    reconnect=Reconnect(min_delay=0.05, max_delay=0.05, jitter=0.0))
    dispatcher.start()
    session.start()
    try:
        assert second_open.wait(5.0)
        # A second, leaked retry would open a third transport one retry delay later.
        connected = threading.Event()
        session.loop.call_soon_threadsafe(session.loop.call_later, 0.3, connected.set)
        assert connected.wait(5.0)
        assert len(opened) == 2, opened
        assert session.state is ConnectionState.CONNECTED
    finally:
        session.shutdown()
        session.thread.join(5.0)
        dispatcher.close(Deadline(5.0))


def test_a_simulator_closed_without_being_started_releases_its_loop() -> None:
    # before the fix the loop's wake socket pair stayed open (a ResourceWarning per object)
    from pyburnerkit._core.simserver import SimServer

    sim = SimServer()
    wake = sim.loop._wake_r
    sim.close()
    assert wake.fileno() == -1
    sim.close()  # idempotent


def test_request_queue_skips_abandoned_requests_and_hands_back_the_unsent() -> None:
    from pyburnerkit._core.pending import Pending, RequestQueue

    queue = RequestQueue()
    gave_up, wanted, later = Pending("a"), Pending("b"), Pending("c")
    for request in (gave_up, wanted, later):
        queue.append(request)
    gave_up.fail(TimeoutError("caller gave up"))
    assert queue.pop_live() is wanted  # the abandoned one is dropped, never sent
    assert len(queue) == 1
    assert queue.take_unsent() == [later] and len(queue) == 0
    assert queue.pop_live() is None


def test_dispatcher_bounds_a_batch_published_at_once() -> None:
    """publish_many beyond the bound keeps the newest, in order, and counts every drop."""
    dispatcher = Dispatcher("pyburnerkit-test-events", max_pending=5)
    dispatcher.publish_many(list(range(12)))
    assert dispatcher.dropped == 7
    dispatcher.publish(12)
    assert dispatcher.dropped == 8
    assert _what_a_stream_gets(dispatcher) == [8, 9, 10, 11, 12]
