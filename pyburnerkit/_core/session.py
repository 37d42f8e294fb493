"""The session: the one thread that owns a client's transport, protocol state and reconnects.

A family subclasses :class:`Session` and fills in the protocol hooks; everything about threads,
requests in flight, backoff, stale data and shutdown lives here once.

Life of a link::

    CONNECTING --open_transport()--> (protocol hand-shake) --established()--> CONNECTED
        ^                                                                      |
        |  retry after Reconnect.delay()        link_failed(exc) / silence     |
        +------------------------- RECONNECTING <------------------------------+

Requests (:class:`~pyburnerkit._core.pending.Pending`) handed in by the facade are started only
on a connected link. Requests started and not yet answered when the link drops fail with
:class:`~pyburnerkit.errors.ConnectionLostError` and are never sent again: a heater start or a cycler step must not
run twice. Requests that were still waiting for a link stay queued for the next one, bounded by
their caller's timeout.
"""

from __future__ import annotations

import logging
import random
import threading
from collections import deque
from typing import TYPE_CHECKING, Any, Deque, List, Optional

from ..errors import (ClientClosedError, ConnectionLostError, ConnectTimeoutError,
                      DeviceConnectionError, DeviceTimeoutError, PyBurnerKitError)
from ..types import ConnectionState, ConnectionStateChanged
from .backoff import Reconnect
from .cache import StateCache
from .dispatcher import Dispatcher
from .loop import EventLoop, TimerHandle
from .pending import Pending
from .timeouts import Deadline
from .wire import WireLog

if TYPE_CHECKING:  # pragma: no cover
    from .reactor import Reactor, SessionLoop

log = logging.getLogger(__name__)

#: Exceptions that mean "the link is broken", as opposed to a bug in driver code.
LINK_ERRORS = (OSError, PyBurnerKitError)


class Session:
    """Base class of every family's session. Hooks run on the I/O thread only."""

    family = "generic"

    def __init__(self, *, endpoint: str, cache: StateCache, dispatcher: Dispatcher,
                 wire: WireLog, reconnect: Optional[Reconnect], connect_timeout: float,
                 retry_first: bool = False, seed: Optional[int] = None,
                 reactor: Optional[Reactor] = None) -> None:
        self.endpoint = endpoint
        self.cache = cache
        self.dispatcher = dispatcher
        self.wire = wire
        self.reconnect = reconnect
        self.connect_timeout = connect_timeout
        self.retry_first = retry_first
        #: the shared reactor this session runs on, or None for a thread of its own
        self.reactor = reactor
        self._strand: Optional["SessionLoop"] = None
        if reactor is None:
            self.loop = EventLoop()
        else:
            self._strand = reactor._session_loop(self)
            self.loop = self._strand
        self.state = ConnectionState.IDLE
        self.connected_once = Pending("connect")
        self.fatal_error: Optional[BaseException] = None
        self.last_error: Optional[BaseException] = None
        self.thread_name = f"pyburnerkit-{self.family}-{endpoint}-io"
        self._rng = random.Random(seed)
        self._attempt = 0
        self._ever_connected = False
        self._waiting: Deque[Pending] = deque()
        self._in_flight: List[Pending] = []
        self._connect_timer: Optional[TimerHandle] = None
        self._retry_timer: Optional[TimerHandle] = None
        self._submit_lock = threading.Lock()
        self._finished = False
        self._thread: Optional[threading.Thread] = None

    # ------------------------------------------------------------------ protocol hooks
    def open_transport(self, deadline: Deadline) -> None:
        """Open the link and start the protocol hand-shake; call :meth:`~pyburnerkit.driver.Session.established` later.

        May block until ``deadline`` (use ``self.loop.wait_io`` so that close interrupts it).
        Raise ``OSError`` or a :class:`~pyburnerkit.errors.PyBurnerKitError` on failure.
        """
        raise NotImplementedError

    def close_transport(self) -> None:
        """Close the link. Must not raise; called on every drop and at shutdown."""
        raise NotImplementedError

    def start_request(self, request: Pending) -> None:
        """Send a request on the connected link and arrange for it to be completed."""
        raise NotImplementedError

    def on_established(self) -> None:
        """The device answered on a new link (arm keep-alives here)."""

    def on_link_down(self) -> None:
        """The link dropped or an attempt failed (cancel protocol timers here)."""

    def abort_blocking(self) -> None:
        """Called from the closing thread: interrupt a blocking step of :meth:`~pyburnerkit.driver.Session.open_transport`."""

    def take_unsent(self) -> List[Pending]:
        """On a drop: the started requests that never reached the wire (a family that queues
        requests behind the one in flight returns them). They wait for the next link instead
        of failing with :class:`~pyburnerkit.errors.ConnectionLostError`."""
        return []

    @property
    def ever_connected(self) -> bool:
        """True once the device has answered on some link (so a new link is a reconnect)."""
        return self._ever_connected

    def start_now(self, request: Pending) -> None:
        """Start a request of the session's own (I/O thread only): on the connected link, or
        fail it with :class:`~pyburnerkit.errors.DeviceTimeoutError` when there is none."""
        if self.state is ConnectionState.CONNECTED:
            self._start(request)
        else:
            request.fail(DeviceTimeoutError("not connected", device=self.family,
                                            endpoint=self.endpoint))

    # ------------------------------------------------------------------ thread & requests
    @property
    def thread(self) -> Optional[threading.Thread]:
        """The I/O thread (on a shared reactor: the reactor's, which other clients share)."""
        if self.reactor is not None:
            return self.reactor.io_thread
        return self._thread

    def on_io_thread(self) -> bool:
        """Whether the caller is a thread that runs this session's I/O (where a blocking
        call would deadlock): its own I/O thread, or any thread of its shared reactor's I/O."""
        if self.reactor is not None:
            return self.reactor.on_io_threads()
        return self._thread is threading.current_thread()

    def start(self) -> None:
        if self._strand is not None:
            self._strand.start()
            return
        self._thread = threading.Thread(target=self._run, name=self.thread_name, daemon=True)
        self._thread.start()

    def join(self, timeout: Optional[float]) -> bool:
        """Block until the session has finished (its thread ended, or on a shared reactor its
        teardown ran) or ``timeout`` passed; never waits on the calling thread itself.

        :returns: False when it had not finished in time.
        """
        if self._strand is not None:
            return self._strand.wait_finished(timeout)
        thread = self._thread
        if thread is None or thread is threading.current_thread():
            return True
        thread.join(timeout)
        return not thread.is_alive()

    def submit(self, request: Pending) -> None:
        """Hand a request to the I/O thread (any thread). Fails it at once if closed."""
        with self._submit_lock:
            if not self._finished:
                self.loop.call_soon_threadsafe(self._accept, request)
                return
        request.fail(self.closed_error())

    def call_soon_threadsafe(self, callback: Any, *args: Any) -> None:
        """Run ``callback`` on the I/O thread (used by dependency threads to enqueue)."""
        with self._submit_lock:
            if not self._finished:
                self.loop.call_soon_threadsafe(callback, *args)

    def shutdown(self) -> None:
        """Ask the I/O thread to fail everything pending, close the link and exit (any thread)."""
        with self._submit_lock:
            already = self._finished
        if already:
            return
        try:
            self.abort_blocking()
        except Exception:  # best effort: the loop stop below still ends the thread
            log.debug("abort_blocking failed", exc_info=True)
        self.loop.stop()

    @property
    def closing(self) -> bool:
        """True once the session is closing for good (its teardown), not dropping a link to
        retry: a transport may then finish what it sent before it closes."""
        return self._finished

    def closed_error(self) -> ClientClosedError:
        err = ClientClosedError("the client is closed", device=self.family, endpoint=self.endpoint)
        err.__cause__ = self.fatal_error
        return err

    def _accept(self, request: Pending) -> None:
        if request.done():
            return  # the caller already gave up
        if self._finished:
            request.fail(self.closed_error())
        elif self.state is ConnectionState.CONNECTED:
            self._start(request)
        else:
            self._waiting.append(request)

    def _start(self, request: Pending) -> None:
        self._in_flight = [p for p in self._in_flight if not p.done()]
        self._in_flight.append(request)
        try:
            self.start_request(request)
        except OSError as exc:
            self.link_failed(exc)
        except PyBurnerKitError as exc:
            request.fail(exc)

    # ------------------------------------------------------------------ link state machine
    def _run(self) -> None:
        try:
            self._begin_attempt()
            self.loop.run()
        except BaseException as exc:  # a bug in driver code: die loudly, never silently
            self._crashed(exc)
        finally:
            self._teardown()

    def _crashed(self, exc: BaseException) -> None:
        if not isinstance(exc, PyBurnerKitError):
            log.error("%s: fatal error on the I/O thread; the client is closed",
                      self.thread_name, exc_info=(type(exc), exc, exc.__traceback__))
        self.fatal_error = exc

    def _set_state(self, new: ConnectionState, *, retry_in: Optional[float] = None,
                   error: Optional[BaseException] = None) -> None:
        old, self.state = self.state, new
        if old is new and error is None:
            return
        if retry_in is not None:
            log.info("%s %s: %s (attempt %d, retry in %.2f s): %s", self.family, self.endpoint,
                     new.value, self._attempt, retry_in, error)
        else:
            log.info("%s %s: %s", self.family, self.endpoint, new.value)
        self.dispatcher.publish(ConnectionStateChanged(new, old, self._attempt, retry_in, error))
        # wait_for() predicates often test ``connected``: re-check them on every change.
        self.cache.notify()

    def _begin_attempt(self) -> None:
        if self._strand is not None:
            # opening may block (connect, hand-shake): on a shared reactor it runs on the
            # connect thread so that the other clients' I/O goes on meanwhile
            self._strand.run_blocking(self._begin_attempt_now)
        else:
            self._begin_attempt_now()

    def _begin_attempt_now(self) -> None:
        self._retry_timer = None
        self._set_state(ConnectionState.RECONNECTING if self._ever_connected
                        else ConnectionState.CONNECTING)
        self._connect_timer = self.loop.call_later(self.connect_timeout, self._attempt_timed_out)
        try:
            self.open_transport(Deadline(self.connect_timeout))
        except LINK_ERRORS as exc:
            if self.loop.stopping():
                return  # interrupted by close(): _teardown reports it
            self._attempt_failed(exc)

    def _attempt_timed_out(self) -> None:
        self._connect_timer = None
        self._attempt_failed(ConnectTimeoutError(
            f"the device did not complete the connection within {self.connect_timeout:g} s",
            device=self.family, endpoint=self.endpoint))

    def established(self) -> None:
        """Subclasses call this once the device has answered on the new link."""
        if self._connect_timer is not None:
            self._connect_timer.cancel()
            self._connect_timer = None
        self._attempt = 0  # backoff resets only now, never on a bare TCP connect
        self._ever_connected = True
        self._set_state(ConnectionState.CONNECTED)
        self.connected_once.resolve(None)
        self.on_established()
        while self._waiting and self.state is ConnectionState.CONNECTED:
            request = self._waiting.popleft()
            if not request.done():
                self._start(request)

    def link_failed(self, exc: BaseException) -> None:
        """Subclasses call this when the link breaks (read error, EOF, silence)."""
        if self._finished:
            return
        if self.state is not ConnectionState.CONNECTED:
            self._attempt_failed(exc)
            return
        self.last_error = exc
        unsent = [p for p in self.take_unsent() if not p.done()]
        for request in self._in_flight:
            if any(request is u for u in unsent):
                continue
            if not request.done():
                lost = ConnectionLostError(
                    f"the connection dropped while {request.description!r} was in flight; "
                    f"it was not retried ({exc})", device=self.family, endpoint=self.endpoint)
                lost.__cause__ = exc
                request.fail(lost)
        self._in_flight = []
        self._waiting.extend(unsent)
        self._drop_link()
        self.cache.mark_stale()
        self._schedule_retry(exc)

    def _attempt_failed(self, exc: BaseException) -> None:
        if self._retry_timer is not None and not self._retry_timer.cancelled:
            # Already between attempts (a late error from the link that just failed): a second
            # retry timer would open a second transport and leak the first.
            self.last_error = exc
            return
        self.last_error = exc
        self._drop_link()
        if not self._ever_connected and not self.retry_first:
            self._give_up(exc)
            return
        self._schedule_retry(exc)

    def _drop_link(self) -> None:
        if self._connect_timer is not None:
            self._connect_timer.cancel()
            self._connect_timer = None
        try:
            self.on_link_down()
        finally:
            self._safe_close_transport()

    def _schedule_retry(self, exc: BaseException) -> None:
        policy = self.reconnect
        self._attempt += 1
        if policy is None or policy.gives_up_after(self._attempt):
            self._give_up(exc)
            return
        delay = policy.delay(self._attempt - 1, self._rng)
        self._set_state(ConnectionState.RECONNECTING if self._ever_connected
                        else ConnectionState.CONNECTING, retry_in=delay, error=exc)
        self._retry_timer = self.loop.call_later(delay, self._begin_attempt)

    def _give_up(self, exc: BaseException) -> None:
        if isinstance(exc, DeviceConnectionError):
            error: BaseException = exc
        else:
            error = DeviceConnectionError(f"could not connect: {exc}", device=self.family,
                                          endpoint=self.endpoint)
            error.__cause__ = exc
        self.fatal_error = error
        self.connected_once.fail(error)
        self.loop.stop()

    def _safe_close_transport(self) -> None:
        try:
            self.close_transport()
        except Exception:
            log.debug("%s: error while closing the transport", self.thread_name, exc_info=True)

    def _teardown(self) -> None:
        with self._submit_lock:
            self._finished = True
        try:
            self.loop.run_pending_calls()  # _accept calls now fail their requests
        except Exception:
            log.debug("%s: error in a late call", self.thread_name, exc_info=True)
        self._drop_link()
        for request in list(self._waiting) + self._in_flight:
            request.fail(self.closed_error())
        self._waiting.clear()
        self._in_flight = []
        self.connected_once.fail(self.closed_error())
        self.cache.mark_stale()
        self._set_state(ConnectionState.CLOSED, error=self.fatal_error)
        self.loop.close()
