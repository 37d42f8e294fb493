"""One I/O thread and a few events threads shared by any number of clients.

By default every client owns two threads (``...-io`` and ``...-events``). A process that holds
a fleet (a hundred heaters, a lab of cyclers) passes one :class:`Reactor` to all of them
instead::

    with Reactor() as reactor:
        clients = [AfterburnerClient(host, reactor=reactor) for host in hosts]
        connect_all(clients, timeout=10)

How the per-client contracts survive the sharing (``docs/threading.rst`` tells users):

* **I/O.** Each client's session runs as a *strand* on the reactor's one ``select()`` loop: its
  cross-thread calls, timers and readable sockets are dispatched on the I/O thread one step at
  a time, and two steps of one session never run at once, so the session code is exactly the
  code that runs on a private I/O thread. The I/O thread never runs user callbacks.
* **Connecting.** Opening a link may block (a TCP connect, a WebSocket hand-shake waiting for
  the device): it runs on the reactor's ``...-connect`` thread while the session is *parked*
  (its timers and calls wait; its sockets are not watched), so a silent device never stalls
  the other clients' I/O. Opens are served one at a time, each bounded by its connect timeout.
* **Events.** Each client keeps its own bounded event queue. Events threads take clients
  round-robin, at most :data:`EVENTS_QUANTUM` events per turn (fairness), and a client is
  handled by at most one events thread at a time (callbacks stay in order per client). When
  every events thread is busy (a slow callback) and another client has events, a second events
  thread starts (up to ``event_threads``, default 2), so one client's slow callback delays
  neither another client's I/O nor, with the default, its callbacks.
* **Closing** a client tears its strand down on the I/O thread (its sockets unwatched, its
  timers dropped, its requests failed) and leaves the reactor running for the others.
  :meth:`Reactor.close` closes every client still attached, then stops and joins its threads
  against one deadline.

Threads: ``pyburnerkit-reactor-<n>-io``, ``...-connect`` (from the first connect) and
``...-events-<i>`` (from the first event), i.e. at most 2 + ``event_threads``.
"""

from __future__ import annotations

import collections
import heapq
import itertools
import logging
import selectors
import socket
import threading
import time
import weakref
from typing import Any, Callable, Deque, Dict, List, Optional, Protocol, Set, Tuple

from ..errors import ClientClosedError, ConfigurationError
from .dispatcher import EVENTS_QUANTUM, EventsHub
from .loop import EventLoop, TimerHandle, descriptor
from .timeouts import Deadline



# The reactor sits below the clients and sessions that run on it: it knows them only by
# what it calls.
class AttachedClient(Protocol):
    """A client on a reactor (every :class:`pyburnerkit.driver.BaseClient` is one)."""

    family: str
    endpoint: str

    def close(self, timeout: Optional[float] = 5.0) -> bool: ...


class Strand(Protocol):
    """A session as its :class:`SessionLoop` drives it (:class:`pyburnerkit.driver.Session`)."""

    family: str
    endpoint: str
    thread_name: str

    def _begin_attempt(self) -> None: ...
    def _teardown(self) -> None: ...
    def _crashed(self, exc: BaseException) -> None: ...

log = logging.getLogger(__name__)

_numbers = itertools.count(1)


class _StrandTimer(TimerHandle):
    """A session's timer on the shared heap: fires through its strand, never directly."""

    __slots__ = ("strand", "user_callback", "user_args")

    def __init__(self, when: float, seq: int, strand: "SessionLoop",
                 callback: Callable[..., Any], args: Tuple[Any, ...]) -> None:
        super().__init__(when, seq, strand._timer_due, ())
        self.args = (self,)
        self.strand = strand
        self.user_callback = callback
        self.user_args = args


class SessionLoop(EventLoop):
    """What one session sees as its ``loop`` on a shared reactor: the :class:`EventLoop` API,
    dispatched as a strand of the reactor's loop.

    Every method may be called from the thread currently running the session (the reactor's
    I/O thread, or its connect thread while the session opens a link);
    :meth:`call_soon_threadsafe`, :meth:`stop` and :meth:`in_loop_thread` from any thread.
    """

    # EventLoop.__init__ is deliberately not called: a strand owns no selector and no wake
    # pipe (100 clients would hold 200 idle sockets for nothing).
    def __init__(self, reactor: "Reactor", session: Strand) -> None:  # noqa: D107
        self._reactor = reactor
        self._session = session
        self._items: Deque[Tuple[Callable[..., Any], Tuple[Any, ...]]] = collections.deque()
        self._scheduled = False
        self._parked = False
        self._stopping = False
        self._closed = False
        self._finished = threading.Event()
        self._runner: Optional[int] = None       # the I/O thread, during a step
        self._open_runner: Optional[int] = None  # the connect thread, during an open
        self._readers_cb: Dict[int, Callable[[], Any]] = {}
        self._watched: Dict[int, Callable[[], Any]] = {}  # fd -> wrapper on the shared loop
        self._waker: Optional[socket.socket] = None
        self._crash: Optional[BaseException] = None
        self._seq = itertools.count()
        self.wakeups_sent = 0
        self.thread_id = None

    @property
    def shared(self) -> EventLoop:
        loop = self._reactor._loop
        assert loop is not None  # the reactor started before any strand was made
        return loop

    # -- any thread -------------------------------------------------------------------------
    def call_soon_threadsafe(self, callback: Callable[..., Any], *args: Any) -> None:
        """Queue ``callback(*args)`` for this session's next step (in order); never blocks."""
        self._items.append((callback, args))
        # The same hand-off as EventLoop's wake flag: the drain lowers the flag before it
        # takes the items, so an item is either taken by a drain or schedules the next one.
        if not self._scheduled:
            self._scheduled = True
            self.shared.call_soon_threadsafe(self._drain)

    def stop(self) -> None:
        """End the session: its teardown runs as its next step (after an open in progress
        returns, which this interrupts when it waits in :meth:`wait_io`)."""
        self._stopping = True
        waker = self._waker
        if waker is not None:
            try:
                waker.send(b"\0")
            except OSError:
                pass
        try:
            self.shared.call_soon_threadsafe(self._finish_when_idle)
        except AssertionError:  # pragma: no cover - the reactor never started
            pass

    def in_loop_thread(self) -> bool:
        """True on the thread running one of this session's steps right now."""
        me = threading.get_ident()
        return self._runner == me or self._open_runner == me

    def stopping(self) -> bool:
        return self._stopping

    # -- the session's thread ---------------------------------------------------------------
    def call_later(self, delay: float, callback: Callable[..., Any], *args: Any) -> TimerHandle:
        handle = _StrandTimer(time.monotonic() + max(0.0, delay), next(self._seq), self,
                              callback, args)
        if self._reactor.on_io_thread():
            self.shared.push_timer(handle)
        else:  # the connect thread: the heap belongs to the I/O thread
            self.shared.call_soon_threadsafe(self.shared.push_timer, handle)
        return handle

    def add_reader(self, fileobj: Any, callback: Callable[[], Any]) -> int:
        fd = descriptor(fileobj)
        self._readers_cb[fd] = callback
        if not self._parked and self._reactor.on_io_thread():
            self._watch(fd)
        # parked (opening on the connect thread): watched when the session is unparked
        return fd

    def remove_reader(self, fd: Any) -> None:
        try:
            fd = descriptor(fd)
        except (OSError, ValueError):
            return
        self._readers_cb.pop(fd, None)
        if fd in self._watched:
            if self._reactor.on_io_thread():
                self._unwatch(fd)
            else:
                self.shared.call_soon_threadsafe(self._unwatch, fd)

    def remove_all_readers(self) -> None:
        for fd in list(self._readers_cb):
            self.remove_reader(fd)

    def wait_io(self, fileobj: Any, *, write: bool = False, timeout: Optional[float]) -> bool:
        """Block the calling thread (the connect thread) until ``fileobj`` is ready,
        ``timeout`` passes or :meth:`stop` is called. Returns True when ready."""
        # a wake pipe for this wait alone: stop() writes to it (two descriptors for the
        # length of a connect, never shared between connect threads)
        waker_r, waker_w = socket.socketpair()
        waker_r.setblocking(False)
        waker_w.setblocking(False)
        sel = selectors.DefaultSelector()
        self._waker = waker_w
        try:
            sel.register(fileobj, selectors.EVENT_WRITE if write else selectors.EVENT_READ, 1)
            sel.register(waker_r, selectors.EVENT_READ, None)
            deadline = None if timeout is None else time.monotonic() + timeout
            while not self._stopping:
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    return False
                for key, _ in sel.select(left):
                    if key.data == 1:
                        return True
                    _drain_socket(waker_r)
            return False
        finally:
            self._waker = None
            sel.close()
            waker_r.close()
            waker_w.close()

    def run(self) -> None:  # pragma: no cover - a strand never runs a loop of its own
        raise RuntimeError("a session on a shared reactor has no loop of its own to run")

    def run_pending_calls(self) -> None:
        while self._items:
            callback, args = self._items.popleft()
            callback(*args)

    def close(self) -> None:
        """Forget the session on the shared loop (its teardown's last step)."""
        if self._closed:
            return
        self._closed = True
        self._stopping = True
        self._readers_cb.clear()
        for fd in list(self._watched):
            self._unwatch(fd)
        shared = self._reactor._loop
        if shared is not None and self._reactor.on_io_thread():
            # drop this session's timers now rather than when each falls due: they hold the
            # session (and its buffers) alive
            before = len(shared._timers)
            shared._timers[:] = [t for t in shared._timers
                                 if not (isinstance(t, _StrandTimer) and t.strand is self)]
            if len(shared._timers) != before:
                heapq.heapify(shared._timers)
        self._finished.set()
        self._reactor._strand_done(self)

    # -- strand machinery (I/O thread unless stated) ------------------------------------------
    def start(self) -> None:
        """Begin the session: its first step opens the link (any thread)."""
        self.shared.call_soon_threadsafe(self._step, self._session._begin_attempt)

    def run_blocking(self, fn: Callable[[], Any]) -> None:
        """From a step on the I/O thread: run ``fn`` (a link open that may block) on the
        reactor's connect thread, the session parked meanwhile."""
        self._parked = True
        for fd in list(self._watched):
            self._unwatch(fd)  # a readable socket would spin the shared select() meanwhile
        self._reactor._open_later(self, fn)

    def _run_parked(self, fn: Callable[[], Any]) -> None:
        """Connect thread: run ``fn`` as this session's step, then hand it back."""
        if not self._stopping:
            self._open_runner = threading.get_ident()
            try:
                fn()
            except BaseException as exc:  # a driver bug: the session dies, the reactor lives
                self._crash = exc
            finally:
                self._open_runner = None
        self.shared.call_soon_threadsafe(self._unpark)

    def _unpark(self) -> None:
        self._parked = False
        if self._crash is not None:
            exc, self._crash = self._crash, None
            self._die(exc)
            return
        if self._stopping:
            self._finish_when_idle()
            return
        for fd in list(self._readers_cb):
            if fd not in self._watched:
                self._watch(fd)
        if self._items:  # whatever came in meanwhile (a second drain would find nothing)
            self._scheduled = True
            self.shared.call_soon_threadsafe(self._drain)

    def _step(self, fn: Callable[..., Any], *args: Any) -> None:
        """Run one step of the session on the I/O thread, or defer it while parked."""
        if self._closed:
            return
        if self._parked:
            self._items.append((fn, args))
            return
        self._runner = threading.get_ident()
        try:
            fn(*args)
        except BaseException as exc:
            self._runner = None
            self._die(exc)
        finally:
            self._runner = None

    def _drain(self) -> None:
        if self._closed:
            return
        if self._parked:
            return  # _scheduled stays up: _unpark schedules the drain
        if self._stopping:
            self._finish_when_idle()
            return
        self._scheduled = False
        items = self._items
        for _ in range(len(items)):
            if self._parked or self._stopping or self._closed:
                if self._stopping and not self._parked:
                    self._finish_when_idle()
                break
            callback, args = items.popleft()
            self._step(callback, *args)

    def _timer_due(self, handle: _StrandTimer) -> None:
        if handle.cancelled or self._closed or self._stopping:
            return
        if self._parked:
            self._items.append((self._fire_if_live, (handle,)))
            return
        self._step(handle.user_callback, *handle.user_args)

    def _fire_if_live(self, handle: _StrandTimer) -> None:
        # a timer that fell due while parked; never run by the teardown's pending calls
        if not handle.cancelled and not self._stopping:
            handle.user_callback(*handle.user_args)

    def _watch(self, fd: int) -> None:
        def readable() -> None:
            callback = self._readers_cb.get(fd)
            if callback is None or self._stopping:
                return
            self._step(callback)
        shared = self.shared
        shared.add_reader(fd, readable)
        self._watched[fd] = readable

    def _unwatch(self, fd: int) -> None:
        wrapper = self._watched.pop(fd, None)
        shared = self._reactor._loop
        # Only our own registration: the descriptor may already belong to another session's
        # new socket (closed here, reused there before this queued call ran).
        if wrapper is not None and shared is not None and shared._readers.get(fd) is wrapper:
            shared.remove_reader(fd)

    def _finish_when_idle(self) -> None:
        if self._closed or self._parked:
            return  # a parked session finishes when its open returns (_unpark)
        self._runner = threading.get_ident()
        try:
            self._session._teardown()
        except BaseException:
            log.error("%s: error while closing the session", self._session.thread_name,
                      exc_info=True)
        finally:
            self._runner = None
            self.close()

    def _die(self, exc: BaseException) -> None:
        self._session._crashed(exc)
        self._stopping = True
        self._finish_when_idle()

    def wait_finished(self, timeout: Optional[float]) -> bool:
        """Block until the teardown ran (True) or ``timeout`` passed (False); returns True at
        once on a reactor thread, which may be the one that has to run it."""
        if self._finished.is_set():
            return True
        if self._reactor.on_io_threads():
            return True
        return self._finished.wait(timeout)


def _drain_socket(sock: socket.socket) -> None:
    try:
        while sock.recv(4096):
            pass
    except (BlockingIOError, OSError):
        pass


class Reactor:
    """Threads shared by many clients: one I/O thread, one connect thread, and up to
    ``event_threads`` events threads (see the module docstring for how the per-client
    contracts are kept).

    Pass it to clients as ``reactor=``; threads start on the first client's connect. Use it as
    a context manager or call :meth:`close` (which closes the clients still on it).

    :param name: the thread-name stem (``pyburnerkit-reactor-<n>`` by default).
    :param event_threads: how many events threads may run callbacks at once (1-64); a second
        one starts only when a client has events while the first is busy.
    :raises ConfigurationError: ``event_threads`` outside 1-64.
    """

    def __init__(self, name: Optional[str] = None, *, event_threads: int = 2,
                 connect_threads: int = 8, connect_patience: float = 0.5) -> None:
        for what, value in (("event_threads", event_threads),
                            ("connect_threads", connect_threads)):
            if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 64:
                raise ConfigurationError(f"{what} must be an integer from 1 to 64, got {value!r}")
        if isinstance(connect_patience, bool) or not isinstance(connect_patience, (int, float)) \
                or not 0 < connect_patience <= 60:
            raise ConfigurationError(f"connect_patience must be above 0 and at most 60 s, "
                                     f"got {connect_patience!r}")
        self.connect_threads = connect_threads
        self.connect_patience = float(connect_patience)
        self.name = name or f"pyburnerkit-reactor-{next(_numbers)}"
        if not self.name.startswith("pyburnerkit"):
            self.name = f"pyburnerkit-reactor-{self.name}"
        self._lock = threading.Lock()
        self._loop: Optional[EventLoop] = None
        self._io: Optional[threading.Thread] = None
        self._connectors: List[threading.Thread] = []
        self._connect_numbers = itertools.count(1)
        self._connect_idle = 0
        self._opens: Deque[_Open] = collections.deque()
        self._opens_cond = threading.Condition()
        self._events = EventsHub(self.name, event_threads)
        self._clients: "weakref.WeakSet[AttachedClient]" = weakref.WeakSet()
        self._strands: Set[SessionLoop] = set()
        self._closing = False

    # ------------------------------------------------------------------ public
    @property
    def closed(self) -> bool:
        return self._closing

    @property
    def io_thread(self) -> Optional[threading.Thread]:
        return self._io

    @property
    def threads(self) -> List[threading.Thread]:
        """The reactor's threads now running (I/O, connect, events)."""
        with self._opens_cond:
            found = ([self._io] if self._io is not None else []) + list(self._connectors)
        return [t for t in found + self._events.worker_threads() if t.is_alive()]

    @property
    def clients(self) -> List[AttachedClient]:
        """The clients attached (connected or connecting, not closed yet)."""
        with self._lock:
            return list(self._clients)

    def on_io_thread(self) -> bool:
        return self._io is not None and self._io is threading.current_thread()

    def on_io_threads(self) -> bool:
        """True on the reactor's I/O thread or one of its connect threads (where a blocking
        client call would deadlock)."""
        me = threading.current_thread()
        return me is self._io or me in self._connectors

    def close(self, timeout: Optional[float] = 5.0) -> bool:
        """Close every client still attached, then stop and join the reactor's threads.

        Idempotent, safe from any thread (a callback included: the thread it runs on is not
        joined); one deadline bounds it all.

        :returns: True when every thread stopped in time; False (and a warning) otherwise.
        """
        deadline = Deadline(timeout)
        with self._lock:
            self._closing = True
            clients = list(self._clients)
        ok = True
        for client in clients:
            ok = client.close(timeout=deadline.remaining()) and ok
        ok = self._events.stop(deadline) and ok
        with self._lock:
            loop, io = self._loop, self._io
        if loop is not None:
            loop.stop()
        with self._opens_cond:  # after the stop: a connect thread checks it, then waits
            self._opens_cond.notify_all()
            connectors = list(self._connectors)
        me = threading.current_thread()
        for thread in connectors + [io]:
            if thread is not None and thread is not me:
                thread.join(deadline.remaining())
                if thread.is_alive():
                    ok = False
                    log.warning("%s did not stop within %s s", thread.name, timeout)
        if io is None and loop is not None:
            loop.close()
        return ok

    def __enter__(self) -> "Reactor":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._closing else f"{len(self._clients)} clients"
        return f"<Reactor {self.name} {state}>"

    # ------------------------------------------------------------------ for clients
    def _attach(self, client: AttachedClient) -> None:
        with self._lock:
            if self._closing:
                raise ClientClosedError(f"the reactor {self.name} is closed",
                                        device=client.family, endpoint=client.endpoint)
            self._clients.add(client)
            self._start_locked()

    def _detach(self, client: AttachedClient) -> None:
        with self._lock:
            self._clients.discard(client)

    def _session_loop(self, session: Strand) -> SessionLoop:
        with self._lock:
            if self._closing:
                raise ClientClosedError(f"the reactor {self.name} is closed",
                                        device=session.family, endpoint=session.endpoint)
            self._start_locked()
            strand = SessionLoop(self, session)
            self._strands.add(strand)
            return strand

    def _strand_done(self, strand: SessionLoop) -> None:
        with self._lock:
            self._strands.discard(strand)

    def _start_locked(self) -> None:
        if self._io is not None:
            return
        self._loop = EventLoop()
        self._io = threading.Thread(target=self._run_io, name=f"{self.name}-io", daemon=True)
        self._io.start()

    def _run_io(self) -> None:
        loop = self._loop
        assert loop is not None
        try:
            while not loop.stopping():
                try:
                    loop.run()
                except Exception:  # strands catch their own errors; never let one kill the rest
                    log.error("%s: unexpected error on the shared I/O thread", self.name,
                              exc_info=True)
        finally:
            loop.close()

    # ------------------------------------------------------------------ connect threads
    def _open_later(self, strand: SessionLoop, fn: Callable[[], Any]) -> None:
        """I/O thread: queue a link open for a connect thread.

        One connect thread serves opens in turn (a healthy device answers in milliseconds).
        An open still waiting after ``connect_patience`` seconds (the ones ahead of it are
        stuck on silent devices) gets one more thread, up to ``connect_threads``; those extra
        threads end as soon as the queue is empty.
        """
        entry = _Open(strand, fn)
        with self._opens_cond:
            self._opens.append(entry)
            if not self._connectors:
                self._spawn_connector(persistent=True)
                return
            self._opens_cond.notify()
            if len(self._opens) <= self._connect_idle:
                return  # an idle connect thread takes it (idle ones count until they wake)
        loop = self._loop
        if loop is not None and self.on_io_thread():
            loop.call_later(self.connect_patience, self._open_overdue, entry)

    def _open_overdue(self, entry: "_Open") -> None:
        with self._opens_cond:
            if entry.taken or len(self._opens) <= self._connect_idle or \
                    len(self._connectors) >= self.connect_threads or self._closing:
                return
            self._spawn_connector(persistent=False)

    def _spawn_connector(self, *, persistent: bool) -> None:
        thread = threading.Thread(target=self._run_connect, args=(persistent,), daemon=True,
                                  name=f"{self.name}-connect-{next(self._connect_numbers)}")
        self._connectors.append(thread)
        thread.start()

    def _run_connect(self, persistent: bool) -> None:
        loop = self._loop
        me = threading.current_thread()
        while True:
            with self._opens_cond:
                while persistent and not self._opens and not (
                        loop is not None and loop.stopping()):
                    self._connect_idle += 1
                    self._opens_cond.wait()
                    self._connect_idle -= 1
                if not self._opens:
                    if not persistent:
                        self._connectors.remove(me)
                    return
                entry = self._opens.popleft()
                entry.taken = True
            entry.strand._run_parked(entry.fn)


class _Open:
    """A link open waiting for a connect thread."""

    __slots__ = ("strand", "fn", "taken")

    def __init__(self, strand: SessionLoop, fn: Callable[[], Any]) -> None:
        self.strand = strand
        self.fn = fn
        self.taken = False


_default: Optional[Reactor] = None
_default_lock = threading.Lock()


def default_reactor() -> Reactor:
    """The process-wide :class:`Reactor`, made on first use (and again after it was closed).

    Clients use it only when passed ``reactor=default_reactor()``; it is closed at exit
    after the clients (``pyburnerkit.close_all()`` does not close it).
    """
    global _default
    with _default_lock:
        if _default is None or _default.closed:
            _default = Reactor("pyburnerkit-reactor-default")
        return _default


def close_default_reactor(timeout: float = 2.0) -> None:
    """Close the process-wide reactor if one was made (at exit; tests)."""
    with _default_lock:
        reactor = _default
    if reactor is not None:
        reactor.close(timeout)
