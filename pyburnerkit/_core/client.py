"""The blocking facade every family's client builds on: connect, call, wait, subscribe, close."""

from __future__ import annotations

import atexit
import logging
import os
import sys
import threading
import time
import warnings
import weakref
from typing import (TYPE_CHECKING, Any, Callable, Generic, Iterable, Iterator, List, Optional,
                    Sequence, Set, Tuple, Type, TypeVar, Union, cast)

from ..errors import (ClientClosedError, ConfigurationError, ConnectTimeoutError,
                      DeviceTimeoutError, PyBurnerKitError)
from ..types import ConnectionState, Event
from .backoff import Reconnect
from .cache import StateCache
from .dispatcher import Dispatcher, Subscription
from .pending import Pending
from .session import Session
from ..types import DEFAULT, _Default
from .timeouts import Deadline, TimeoutArg, resolve_timeout
from .wire import WireLog

if TYPE_CHECKING:  # pragma: no cover
    from .reactor import Reactor

log = logging.getLogger(__name__)

T = TypeVar("T")
C = TypeVar("C", bound="BaseClient[Any]")
#: The family's session class (what ``_make_session`` builds and ``_require_session`` returns).
S = TypeVar("S", bound=Session)

_live_clients: "weakref.WeakSet[BaseClient[Any]]" = weakref.WeakSet()
_live_lock = threading.Lock()


class ClientAlreadyOpenWarning(UserWarning):
    """A client was connected while another open client of the same family already talks to
    the same endpoint in this process (typically a notebook cell run twice).

    The older client keeps its threads and its connection until it is closed. A
    ``UserWarning`` rather than a ``ResourceWarning`` on purpose: Python and Jupyter hide
    ``ResourceWarning`` by default, and this one must be seen to help.
    """


#: The hint a clash adds to a failed connect's error, and the fix the warning names.
CLOSE_ALL_HINT = ("close the old client first (client.close(), or open clients with 'with'), "
                  "or run pyburnerkit.close_all() to close every open client, then connect "
                  "again")

_PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep


def _caller_stacklevel() -> int:
    """The ``stacklevel`` that points a warning at the first frame outside pyburnerkit (the
    user's line, e.g. the notebook cell), however deep inside the package it is raised."""
    level = 1
    frame = sys._getframe(1)
    while frame is not None and os.path.abspath(frame.f_code.co_filename).startswith(
            _PACKAGE_DIR):
        frame = frame.f_back  # type: ignore[assignment]  # None ends the walk
        level += 1
    return level


def close_all(timeout: float = 5.0) -> int:
    """Close every client of this process that is still open (handy in notebooks).

    Blocks until each is closed or ``timeout`` seconds (shared by all) have passed.

    :returns: how many clients were closed.
    """
    deadline = Deadline(timeout)
    with _live_lock:
        clients = list(_live_clients)
    for client in clients:
        client.close(timeout=deadline.remaining())
    return len(clients)


@atexit.register
def _close_leftovers() -> None:
    if _live_clients:
        close_all(timeout=2.0)
    from .reactor import close_default_reactor
    close_default_reactor(timeout=2.0)


def _check_seconds(name: str, value: Any, *, allow_none: bool = False) -> Optional[float]:
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise ConfigurationError(f"{name} must be a positive number of seconds, got {value!r}")
    return float(value)


def connect_all(clients: Iterable[C], timeout: TimeoutArg = 10.0, *,
                return_exceptions: bool = False) -> List[Any]:
    """Open many clients in parallel and block until all are connected (or failed).

    Every client starts connecting at once (:meth:`~pyburnerkit.driver.BaseClient.start_connect`); then each is
    waited for against one shared deadline of ``timeout`` seconds (``None``: forever). On a
    shared :class:`~pyburnerkit.Reactor` that takes about as long as the slowest device, not
    the sum of them.

    :param return_exceptions: return the error in the failed client's place instead of
        raising (a failed client is closed, as :meth:`~pyburnerkit.driver.BaseClient.connect` does).
    :returns: the clients (or, with ``return_exceptions``, each client or its error), in order.
    :raises PyBurnerKitError: the first failure in ``clients`` order (after every client was
        waited for; the others stay open: close them or use ``return_exceptions``).
    """
    items = list(clients)
    seconds = resolve_timeout(timeout, 10.0)
    started: List[Any] = []
    for client in items:
        try:
            started.append(client.start_connect())
        except PyBurnerKitError as exc:
            started.append(exc)
    deadline = Deadline(seconds)
    results: List[Any] = []
    for client, state in zip(items, started):
        if isinstance(state, BaseException):
            results.append(state)
            continue
        try:
            left = deadline.remaining()
            results.append(client.wait_connected(0.0 if left is not None and left <= 0
                                                  else left))
        except PyBurnerKitError as exc:
            results.append(exc)
    if not return_exceptions:
        for result in results:
            if isinstance(result, BaseException):
                raise result
    return results


class BaseClient(Generic[S]):
    """Shared behaviour of every client. See ``docs/threading.rst`` for the contract.

    Every public method is thread-safe. Blocking methods take ``timeout=`` in seconds (the
    client's ``timeout`` by default, ``None`` only when passed explicitly means forever) and
    raise :class:`RuntimeError` at once when called on the client's own I/O thread.
    Callbacks run on the client's ``...-events`` thread, one at a time, in event order.

    Generic over the family's session class ``S``: a family writes
    ``class HeaterClient(BaseClient[HeaterSession])`` and ``_require_session()`` is typed.
    """

    family = "generic"
    #: Default per-call timeout in seconds; families with slower devices override it.
    default_timeout = 5.0
    default_connect_timeout = 10.0

    def __init__(self, endpoint: str, *, timeout: Union[float, _Default] = DEFAULT,
                 connect_timeout: Union[float, _Default] = DEFAULT,
                 reconnect: Optional[Reconnect] = Reconnect(), retry_first: bool = False,
                 on_event: Optional[Callable[[Event], Any]] = None,
                 on_callback_error: Optional[Callable[[BaseException, Any], Any]] = None,
                 max_pending_events: int = 10000,
                 trace: Optional[Callable[[str, Any], Any]] = None,
                 reactor: Optional[Reactor] = None) -> None:
        self._closed = True  # until construction succeeds, __del__ stays quiet
        from .reactor import Reactor
        if reactor is not None and not isinstance(reactor, Reactor):
            raise ConfigurationError(f"reactor must be a pyburnerkit.Reactor or None, "
                                     f"got {reactor!r}")
        #: the shared reactor whose threads this client uses, or None for threads of its own
        self.reactor = reactor
        self.endpoint = endpoint
        self.timeout = _check_seconds(
            "timeout", self.default_timeout if timeout is DEFAULT else timeout)
        self.connect_timeout = _check_seconds(
            "connect_timeout",
            self.default_connect_timeout if connect_timeout is DEFAULT else connect_timeout)
        if reconnect is not None and not isinstance(reconnect, Reconnect):
            raise ConfigurationError(f"reconnect must be a Reconnect(...) or None, got {reconnect!r}")
        self.reconnect = reconnect
        self.retry_first = bool(retry_first)
        self._cache = StateCache()
        self._dispatcher = Dispatcher(f"pyburnerkit-{self.family}-{endpoint}-events",
                                      max_pending=max_pending_events,
                                      on_callback_error=on_callback_error,
                                      hub=None if reactor is None else reactor._events)
        self._wire = WireLog(self.family, trace=trace, redact=self._redact_frame,
                             on_trace_error=self._dispatcher.hook_failed)
        if on_event is not None:
            self._dispatcher.subscribe(on_event)
        self._session: Optional[S] = None
        self._sim: Any = None
        # A plain set: every call removes its own request when it returns (finally), and
        # close() copies it in one C-level step (list()), so no lock is needed.
        self._outstanding: Set[Pending] = set()
        self._lock = threading.Lock()
        self._closing = False
        self._closed = False
        with _live_lock:
            _live_clients.add(self)

    # ------------------------------------------------------------------ for subclasses
    def _make_session(self, **common: Any) -> S:
        """Build the family's session; ``common`` holds the shared constructor arguments."""
        raise NotImplementedError

    def _own_simulator(self, make: Callable[[], Any]) -> Any:
        """The in-process simulator behind a ``sim://`` client, made on first use (I/O
        thread) and closed with the client."""
        if self._sim is None:
            self._sim = make()
        return self._sim

    @property
    def simulator(self) -> Any:
        """The in-process simulator of a ``sim://`` client (None otherwise)."""
        return self._sim

    def _build_session(self, **common: Any) -> S:
        try:
            return self._make_session(**common)
        except BaseException:
            self._closing = self._closed = True
            with _live_lock:
                _live_clients.discard(self)
            raise

    def _redact_frame(self, frame: Any) -> Any:
        """Hide secrets in a frame before it is logged or kept for error reports."""
        return frame

    # ------------------------------------------------------------------ lifecycle
    def connect(self: C, timeout: TimeoutArg = DEFAULT) -> C:
        """Open the link and block until the device has answered.

        :param timeout: seconds for the first connection (default: ``connect_timeout``).
        :returns: the client itself, so ``with Client(...).connect() as c:`` works.
        :raises ConnectTimeoutError: the device did not answer in time.
        :raises DeviceConnectionError: the link could not be opened (the client is then closed).
        :raises ClientClosedError: the client was closed.
        """
        self._guard_blocking()
        seconds = resolve_timeout(timeout, self.connect_timeout)
        session, twins = self._start_session()
        return self._await_connected(session, seconds, twins)

    def start_connect(self: C) -> C:
        """Start opening the link and return at once (no I/O on the calling thread).

        Then :meth:`wait_connected` (or :func:`pyburnerkit.connect_all` for many clients).
        Calling it again, or :meth:`connect` after it, joins the same attempt.

        :returns: the client itself.
        :raises ClientClosedError: the client (or its reactor) is closed.
        """
        self._start_session()
        return self

    def wait_connected(self: C, timeout: TimeoutArg = DEFAULT) -> C:
        """Block until the connection started by :meth:`start_connect` is up.

        Raises what :meth:`connect` raises (and closes the client the same way on failure).

        :raises ClientClosedError: never started, or closed.
        """
        self._guard_blocking()
        seconds = resolve_timeout(timeout, self.connect_timeout)
        session = self._require_session()
        return self._await_connected(session, seconds, [])

    def _start_session(self) -> Tuple[S, List["BaseClient[Any]"]]:
        with self._lock:
            if self._closing:
                raise ClientClosedError("the client is closed", device=self.family,
                                        endpoint=self.endpoint)
            twins: List["BaseClient[Any]"] = []
            if self._session is None:
                twins = self._open_twins()
                if twins:
                    self._warn_twins(twins)
                common: Any = dict(
                    endpoint=self.endpoint, cache=self._cache, dispatcher=self._dispatcher,
                    wire=self._wire, reconnect=self.reconnect,
                    connect_timeout=self.connect_timeout, retry_first=self.retry_first)
                if self.reactor is not None:
                    try:
                        self.reactor._attach(self)
                    except ClientClosedError:
                        self._closing = self._closed = True  # as a failed connect does
                        with _live_lock:
                            _live_clients.discard(self)
                        raise
                    common["reactor"] = self.reactor  # only then: sessions of plug-in
                    # families written before reactors keep working with their own threads
                try:
                    self._session = self._build_session(**common)
                except BaseException:
                    if self.reactor is not None:
                        self.reactor._detach(self)
                    raise
                self._dispatcher.start()
                self._session.start()
            return self._session, twins

    def _await_connected(self: C, session: S, seconds: Optional[float],
                         twins: List["BaseClient[Any]"]) -> C:
        if not session.connected_once.wait(seconds):
            error = ConnectTimeoutError(
                f"no connection within {seconds:g} s", device=self.family, endpoint=self.endpoint)
            error.__cause__ = session.last_error
            session.connected_once.fail(error)
        if session.connected_once.error is not None:
            self.close()
            if twins:
                self._hint_close_all(session.connected_once.error, twins)
        return session.connected_once.result() or self

    # ------------------------------------------------------------------ second-open detection
    def _open_twins(self) -> List["BaseClient[Any]"]:
        """Other clients of this process, of the same family and endpoint, that were connected
        and are not closed yet (constructed-only clients hold nothing and do not count)."""
        if self._owns_its_device():
            return []
        with _live_lock:
            clients = list(_live_clients)
        return [c for c in clients if c is not self and c.family == self.family
                and c.endpoint == self.endpoint and c._session is not None and not c._closing]

    def _owns_its_device(self) -> bool:
        """True for a client whose device is its own in-process simulator (``sim://``,
        labelled ``sim`` or ``sim-<name>``): two of them are two devices, never a clash."""
        return self.endpoint == "sim" or self.endpoint.startswith("sim-")

    def _warn_twins(self, twins: List["BaseClient[Any]"]) -> None:
        count = len(twins)
        older = "another client" if count == 1 else f"{count} other clients"
        warnings.warn(ClientAlreadyOpenWarning(
            f"{older} of {self.family} {self.endpoint!r} ({', '.join(map(repr, twins))}) "
            f"{'is' if count == 1 else 'are'} still open in this process (a notebook cell run "
            f"twice?): each keeps its threads and its connection, and a device that serves one "
            f"client at a time resets the new one. Fix: {CLOSE_ALL_HINT}."),
            stacklevel=_caller_stacklevel())

    def _hint_close_all(self, error: BaseException, twins: List["BaseClient[Any]"]) -> None:
        """Append the fix to the error a failed connect raises while twins are open (once)."""
        if not isinstance(error, PyBurnerKitError) or not error.args or \
                not isinstance(error.args[0], str) or "close_all()" in error.args[0]:
            return
        count = len(twins)
        error.args = (f"{error.args[0]} ({count} other open client"
                      f"{'' if count == 1 else 's'} on this endpoint in this process: "
                      f"{CLOSE_ALL_HINT})",) + error.args[1:]

    def close(self, timeout: Optional[float] = 5.0) -> bool:
        """Close the client: idempotent, irreversible, safe from any thread and from callbacks.

        Fails every pending call with :class:`~pyburnerkit.errors.ClientClosedError`, stops the I/O
        and events threads and joins them against one deadline, never joining the thread it runs on.

        :returns: True when every thread stopped in time; False (and a warning) otherwise.
        """
        with self._lock:
            first = not self._closing
            self._closing = True
            session = self._session
        if first:
            with _live_lock:
                _live_clients.discard(self)
            self._closed = True
            closed = ClientClosedError("the client was closed", device=self.family,
                                       endpoint=self.endpoint)
            for pending in list(self._outstanding):
                pending.fail(closed)
        deadline = Deadline(timeout)
        ok = True
        if session is not None:
            session.shutdown()
            if not session.join(deadline.remaining()):
                ok = False
                log.warning("%s did not stop within %s s", session.thread_name, timeout)
        if self.reactor is not None:
            self.reactor._detach(self)
        if not self._dispatcher.close(deadline):
            ok = False
            log.warning("%s did not stop within %s s (a callback may be stuck)",
                        self._dispatcher.thread_name, timeout)
        if self._dispatcher.thread is None:
            self._dispatcher.close_streams()
        self._cache.notify()
        if self._sim is not None:
            self._sim.close(deadline.remaining() or 0.0)
        return ok

    @property
    def closed(self) -> bool:
        return self._closing

    def __enter__(self: C) -> C:
        if self._session is None:
            self.connect()
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    def __del__(self) -> None:
        if getattr(self, "_closed", True):
            return
        warnings.warn(f"{self!r} was not closed", ResourceWarning, stacklevel=2)
        try:
            self.close(timeout=0)
        except Exception:
            pass

    def __repr__(self) -> str:
        age = ""
        last = self.last_update
        if last is not None:
            age = f" last update {time.time() - last:.1f}s ago"
        return (f"<{type(self).__name__} {self.endpoint} "
                f"{self.connection_state.value}{age}>")

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        # IPython uses the first class in the MRO with _repr_pretty_ *or* __repr__: a family
        # that writes its own __repr__ keeps the table display
        if "__repr__" in cls.__dict__ and "_repr_pretty_" not in cls.__dict__:
            cls._repr_pretty_ = BaseClient._repr_pretty_  # type: ignore[method-assign]

    def _repr_html_(self) -> str:
        """Jupyter's rich display: connection state, endpoint and the cached values with
        their units. Reads the cache only: never blocks, never touches the device."""
        from .display import client_html
        return client_html(self)

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        """IPython's text display (the same table as :meth:`_repr_html_`)."""
        from .display import client_text
        printer.text(repr(self) if cycle else client_text(self))

    # ------------------------------------------------------------------ state
    @property
    def connection_state(self) -> ConnectionState:
        if self._session is None:
            return ConnectionState.CLOSED if self._closing else ConnectionState.IDLE
        return self._session.state

    @property
    def connected(self) -> bool:
        return self.connection_state is ConnectionState.CONNECTED

    @property
    def stale(self) -> bool:
        """True while cached values are not live (never received, or the link is down)."""
        return self._cache.is_stale()

    def is_stale(self, topic: Optional[str] = None) -> bool:
        """Whether one cached topic (or, with none, any) is missing or not live."""
        return self._cache.is_stale(topic)

    @property
    def last_update(self) -> Optional[float]:
        """UTC epoch seconds of the newest cached value, or None."""
        snaps = self._cache.snapshot()
        return max((s.updated_at for s in snaps.values()), default=None)

    @property
    def last_error(self) -> Optional[BaseException]:
        """The last connection error, if any (why the link dropped or a retry failed)."""
        return None if self._session is None else self._session.last_error

    @property
    def callback_errors(self) -> int:
        """How many times a callback raised."""
        return self._dispatcher.callback_errors

    @property
    def io_thread(self) -> Optional[threading.Thread]:
        return None if self._session is None else self._session.thread

    @property
    def events_thread(self) -> Optional[threading.Thread]:
        return self._dispatcher.thread

    # ------------------------------------------------------------------ waiting & events
    def wait_for(self, predicate: Callable[[Any], T], timeout: TimeoutArg = DEFAULT) -> T:
        """Block until ``predicate(self)`` returns something truthy, and return it.

        The predicate is re-evaluated on every cache change; it runs on the calling thread.

        :raises DeviceTimeoutError: the predicate stayed falsy for ``timeout`` seconds.
        :raises ClientClosedError: the client closed while waiting.
        """
        self._guard_blocking()
        seconds = resolve_timeout(timeout, self.timeout)

        def check(_cache: StateCache) -> Any:
            if self._closing:
                return True
            return predicate(self)

        result = self._cache.wait_for(check, seconds)
        if self._closing:
            raise self._closed_error()
        if not result:
            raise DeviceTimeoutError(f"the condition did not hold within {seconds:g} s",
                                     device=self.family, endpoint=self.endpoint)
        return cast(T, result)  # the cache returns what ``check`` returned: predicate's value

    def subscribe(self, callback: Callable[[Any], Any],
                  *event_types: Type[Event]) -> Subscription:
        """Call ``callback(event)`` for every event (or only those of ``event_types``).

        The callback runs on the events thread, never on the I/O thread and never while a
        pyburnerkit lock is held, so it may call any blocking method of this client.
        """
        return self._dispatcher.subscribe(callback, event_types or None)

    def events(self, timeout: Optional[float] = None, *event_types: Type[Event],
               maxlen: int = 1000) -> Iterator[Any]:
        """Iterate over events as they arrive.

        Ends when the client closes, or when no event arrived for ``timeout`` seconds. Keeps at
        most ``maxlen`` unread events, dropping the oldest (counted, warned once).
        """
        return self._dispatcher.events(timeout, maxlen, event_types or None)

    # ------------------------------------------------------------------ calls
    def _guard_blocking(self) -> None:
        session = self._session
        reactor = self.reactor
        if (session is not None and session.on_io_thread()) or (
                reactor is not None and reactor.on_io_threads()):
            raise RuntimeError(
                "a blocking pyburnerkit call was made on the client's own I/O thread; it would "
                "deadlock (use subscribe() callbacks, which run on the events thread)")

    def _closed_error(self) -> ClientClosedError:
        if self._session is not None:
            return self._session.closed_error()
        return ClientClosedError("the client is closed", device=self.family,
                                 endpoint=self.endpoint)

    def _require_session(self) -> S:
        if self._closing:
            raise self._closed_error()
        if self._session is None:
            raise ClientClosedError("the client is not connected: call connect() first",
                                    device=self.family, endpoint=self.endpoint)
        return self._session

    def _call(self, request: Pending, timeout: TimeoutArg = DEFAULT) -> Any:
        """Hand ``request`` to the session and block until it completes.

        :raises DeviceTimeoutError: no completion within the timeout (chained to the last
            connection error when the link was down).
        """
        self._guard_blocking()
        seconds = resolve_timeout(timeout, self.timeout)
        session = self._require_session()
        self._outstanding.add(request)
        try:
            session.submit(request)
            if not request.wait(seconds):
                error = DeviceTimeoutError(
                    f"{request.description!r}: no answer within {seconds:g} s",
                    device=self.family, endpoint=self.endpoint)
                if session.state is not ConnectionState.CONNECTED:
                    error.__cause__ = session.last_error
                request.fail(error)
            return request.result()
        finally:
            self._outstanding.discard(request)
