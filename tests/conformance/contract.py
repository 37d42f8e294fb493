"""The client contract every family passes (ARCHITECTURE.md sections 3 to 5).

A family subclasses :class:`ClientContract` and names its :class:`~.harness.Harness`; every test
below then runs against that family's simulator over a real socket (or bus).
"""

from __future__ import annotations

import threading
import time
from typing import Any, Iterator, List, Type

import pytest

from pyburnerkit import (DEFAULT, ClientClosedError, ConnectionLostError, ConnectionState,
                         ConnectionStateChanged, DeviceConnectionError, DeviceTimeoutError,
                         Reconnect)

from ..helpers import CallInThread, Recorder, wait_until
from .harness import Harness

FAST_RECONNECT = Reconnect(min_delay=0.05, max_delay=0.5, factor=2.0, jitter=0.1)


class ClientContract:
    harness_class: Type[Harness] = Harness

    @pytest.fixture
    def harness(self) -> Iterator[Harness]:
        harness = self.harness_class()
        harness.start()
        try:
            yield harness
        finally:
            harness.stop()

    @pytest.fixture
    def clients(self) -> Iterator[List[Any]]:
        made: List[Any] = []
        yield made
        for client in made:
            client.close()

    def connect(self, harness: Harness, clients: List[Any], **options: Any) -> Any:
        options.setdefault("timeout", 5.0)
        # a bound for a broken connect, not a speed test: a loaded 2-core CI machine needs room
        options.setdefault("connect_timeout", 20.0)
        options.setdefault("reconnect", FAST_RECONNECT)
        client = harness.make_client(**options)
        clients.append(client)
        client.connect()
        return client

    # ------------------------------------------------------------------ shutdown
    def test_close_twice_then_calls_raise(self, harness: Harness, clients: List[Any]) -> None:
        client = self.connect(harness, clients)
        harness.read(client, 5.0)
        assert client.close() is True
        assert client.close() is True
        with pytest.raises(ClientClosedError):
            harness.read(client, 1.0)
        assert client.connection_state is ConnectionState.CLOSED

    def test_close_from_a_callback(self, harness: Harness, clients: List[Any]) -> None:
        closed = threading.Event()
        results: List[Any] = []

        def on_event(event: Any) -> None:
            if not closed.is_set():
                results.append(client.close(timeout=5.0))
                closed.set()

        client = self.connect(harness, clients)
        client.subscribe(on_event)
        # The write's own events trigger the close, so the write may end either way.
        call = CallInThread(lambda: harness.write(client, 5.0))
        assert closed.wait(10.0), "no event reached the callback"
        call.join(10.0)
        assert call.error is None or isinstance(call.error, ClientClosedError), call.error
        assert results == [True]
        client.events_thread.join(5.0)
        client.io_thread.join(5.0)
        assert not client.events_thread.is_alive()
        assert not client.io_thread.is_alive()

    def test_close_while_a_call_blocks(self, harness: Harness, clients: List[Any]) -> None:
        client = self.connect(harness, clients)
        harness.hold_replies(30.0)
        call = CallInThread(lambda: harness.write(client, 30.0))
        wait_until(lambda: harness.writes_received() >= 1, message="the write reaching the device")
        started = time.monotonic()
        assert client.close(timeout=5.0) is True
        call.join(5.0)
        assert isinstance(call.error, ClientClosedError), call.error
        assert time.monotonic() - started < 5.0

    # ------------------------------------------------------------------ timeouts
    def test_silent_device_times_out_with_the_default_timeout(
            self, harness: Harness, clients: List[Any]) -> None:
        client = self.connect(harness, clients, timeout=0.5)
        harness.silence(True)
        started = time.monotonic()
        with pytest.raises(DeviceTimeoutError):
            harness.read(client, DEFAULT)
        elapsed = time.monotonic() - started
        assert 0.4 <= elapsed < 5.0, elapsed
        harness.silence(False)
        harness.read(client, 5.0)  # the client is still usable afterwards

    def test_connect_to_absent_device_fails_clearly(self, harness: Harness,
                                                    clients: List[Any]) -> None:
        harness.stop()
        client = harness.make_client(timeout=1.0, connect_timeout=2.0, reconnect=FAST_RECONNECT)
        clients.append(client)
        with pytest.raises(DeviceConnectionError):
            client.connect()
        assert client.closed

    # ------------------------------------------------------------------ drops
    def test_drop_fails_the_call_in_flight_and_never_retries_a_write(
            self, harness: Harness, clients: List[Any]) -> None:
        client = self.connect(harness, clients)
        harness.hold_replies(30.0)
        call = CallInThread(lambda: harness.write(client, 30.0))
        wait_until(lambda: harness.writes_received() >= 1, message="the write reaching the device")
        harness.hold_replies(0.0)
        harness.drop()
        call.join(10.0)
        assert isinstance(call.error, ConnectionLostError), call.error
        client.wait_for(lambda c: c.connected and harness.has_fresh_data(c), timeout=10.0)
        harness.read(client, 5.0)
        assert harness.writes_received() == 1, "a write was sent again after the reconnect"

    def test_reconnect_marks_the_cache_stale_until_fresh_data(
            self, harness: Harness, clients: List[Any]) -> None:
        events = Recorder()
        client = self.connect(harness, clients, on_event=events)
        assert harness.has_fresh_data(client)
        harness.restart()
        reconnecting = events.wait_for(
            lambda e: isinstance(e, ConnectionStateChanged)
            and e.state is ConnectionState.RECONNECTING)
        assert reconnecting.previous is ConnectionState.CONNECTED
        events.wait_for(lambda e: isinstance(e, ConnectionStateChanged)
                        and e.retry_in is not None and e.retry_in <= 0.5 * 1.1 + 1e-9)
        client.wait_for(lambda c: c.connected and harness.has_fresh_data(c), timeout=10.0)
        back = events.wait_for(lambda e: isinstance(e, ConnectionStateChanged)
                               and e.state is ConnectionState.CONNECTED
                               and e.previous is ConnectionState.RECONNECTING)
        assert events.events.index(back) > events.events.index(reconnecting)
        harness.read(client, 5.0)

    def test_stale_flag_while_the_link_is_down(self, harness: Harness,
                                               clients: List[Any]) -> None:
        client = self.connect(harness, clients,
                              reconnect=Reconnect(min_delay=30.0, max_delay=30.0, jitter=0.0))
        assert not client.stale
        harness.drop()
        client.wait_for(lambda c: not c.connected, timeout=10.0)
        assert client.stale
        assert harness.has_fresh_data(client) is False

    # ------------------------------------------------------------------ callbacks & threads
    def test_callback_exceptions_do_not_kill_the_dispatcher(
            self, harness: Harness, clients: List[Any]) -> None:
        hook_errors: List[BaseException] = []
        seen = Recorder()

        def bad(event: Any) -> None:
            raise RuntimeError("callback bug")

        client = self.connect(harness, clients, on_callback_error=lambda e, ev: hook_errors.append(e))
        client.subscribe(bad)
        client.subscribe(seen)
        harness.write(client, 5.0)
        harness.write(client, 5.0)
        wait_until(lambda: client.callback_errors >= 2, message="two callback failures")
        assert all(isinstance(e, RuntimeError) for e in hook_errors)
        count = len(seen.events)
        harness.write(client, 5.0)
        wait_until(lambda: len(seen.events) > count, message="events after callback failures")
        assert client.events_thread.is_alive()

    def test_a_trace_hook_that_raises_never_stops_the_io_thread(
            self, harness: Harness, clients: List[Any]) -> None:
        # Regression: a raising trace= hook used to kill the I/O thread on the first frame.
        hook_errors: List[BaseException] = []
        hook_threads: List[str] = []
        traced: List[str] = []

        def trace(direction: str, frame: Any) -> None:
            traced.append(direction)
            raise RuntimeError("trace bug")

        def on_error(error: BaseException, payload: Any) -> None:
            hook_threads.append(threading.current_thread().name)
            hook_errors.append(error)

        client = self.connect(harness, clients, trace=trace, on_callback_error=on_error)
        harness.read(client, 5.0)
        harness.write(client, 5.0)
        harness.read(client, 5.0)
        assert traced, "the trace hook never ran"
        assert client.io_thread.is_alive()
        assert client.callback_errors >= 1
        wait_until(lambda: hook_errors, message="on_callback_error for the trace hook")
        assert isinstance(hook_errors[0], RuntimeError)
        assert set(hook_threads) == {client.events_thread.name}

    def test_callbacks_run_on_the_events_thread_and_may_block(
            self, harness: Harness, clients: List[Any]) -> None:
        threads: List[str] = []
        answers: List[Any] = []
        done = threading.Event()

        def callback(event: Any) -> None:
            threads.append(threading.current_thread().name)
            if not done.is_set():
                done.set()
                answers.append(harness.read(client, 5.0))  # a blocking call from a callback

        client = self.connect(harness, clients)
        client.subscribe(callback)
        harness.write(client, 5.0)
        assert done.wait(10.0)
        wait_until(lambda: answers, message="the blocking call made from the callback")
        assert set(threads) == {client.events_thread.name}

    def test_blocking_call_on_the_io_thread_raises_runtime_error(
            self, harness: Harness, clients: List[Any]) -> None:
        outcome: List[BaseException] = []
        holder: List[Any] = []

        def trace(direction: str, frame: Any) -> None:  # runs on the I/O thread
            if holder and not outcome:
                try:
                    harness.read(holder[0], 1.0)
                except BaseException as exc:
                    outcome.append(exc)

        client = self.connect(harness, clients, trace=trace)
        holder.append(client)
        harness.read(client, 5.0)
        wait_until(lambda: outcome, message="the guarded call")
        assert isinstance(outcome[0], RuntimeError)

    def test_thread_names_and_no_leaks(self, harness: Harness, clients: List[Any]) -> None:
        client = self.connect(harness, clients)
        family = harness.family
        io, events = client.io_thread, client.events_thread
        assert io.name == f"pyburnerkit-{family}-{client.endpoint}-io"
        assert events.name == f"pyburnerkit-{family}-{client.endpoint}-events"
        mine = [t for t in threading.enumerate() if t.name.startswith(f"pyburnerkit-{family}-")
                and client.endpoint in t.name]
        assert len(mine) <= 2
        client.close()
        assert not io.is_alive() and not events.is_alive()
