"""The events thread: runs user callbacks and feeds ``events()`` iterators, in event order."""

from __future__ import annotations

import collections
import itertools
import logging
import threading
import traceback
from typing import (Any, Callable, Deque, Iterator, List, Optional, Sequence, Set,
                    Tuple, Type)

from .timeouts import Deadline

log = logging.getLogger("pyburnerkit.events")

Callback = Callable[[Any], Any]
_STOP = object()

#: Events one client delivers per turn before an events thread moves on to the next client.
EVENTS_QUANTUM = 64


class _HookFailure:
    """Queued for the events thread: a hook that runs elsewhere (``trace``) raised."""

    __slots__ = ("error", "payload")

    def __init__(self, error: BaseException, payload: Any) -> None:
        self.error = error
        self.payload = payload


class Subscription:
    """Returned by ``subscribe()``; ``cancel()`` it (or use it as a context manager) to stop.

    Cancelling is safe from any thread, including from inside the callback itself, and never
    joins a thread.
    """

    def __init__(self, dispatcher: Dispatcher, callback: Callback,
                 event_types: Optional[Tuple[Type[Any], ...]]) -> None:
        self._dispatcher = dispatcher
        self.callback = callback
        self.event_types = event_types
        self.active = True

    def wants(self, event: Any) -> bool:
        return self.active and (self.event_types is None or isinstance(event, self.event_types))

    def cancel(self) -> None:
        if self.active:
            self.active = False
            self._dispatcher._remove(self)

    def __enter__(self) -> "Subscription":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.cancel()


class EventStream:
    """A bounded, drop-oldest queue behind one ``events()`` iterator."""

    def __init__(self, maxlen: int, event_types: Optional[Tuple[Type[Any], ...]]) -> None:
        self._items: Deque[Any] = collections.deque()
        self._maxlen = maxlen
        self._cond = threading.Condition()
        self.event_types = event_types
        self.closed = False
        self.dropped = 0

    def wants(self, event: Any) -> bool:
        return self.event_types is None or isinstance(event, self.event_types)

    def put(self, event: Any) -> None:
        with self._cond:
            if len(self._items) >= self._maxlen:
                self._items.popleft()
                self.dropped += 1
                if self.dropped == 1:
                    log.warning("events() reader is too slow: dropping the oldest events "
                                "(queue limit %d)", self._maxlen)
            self._items.append(event)
            self._cond.notify()

    def close(self) -> None:
        with self._cond:
            self.closed = True
            self._cond.notify_all()

    def get(self, timeout: Optional[float]) -> Tuple[bool, Any]:
        deadline = Deadline(timeout)
        with self._cond:
            while not self._items:
                if self.closed:
                    return False, None
                left = deadline.remaining()
                if left is not None and left <= 0:
                    return False, None
                self._cond.wait(left)
            return True, self._items.popleft()


class Dispatcher:
    """Owns the ``...-events`` thread of one client.

    :meth:`publish` is non-blocking and safe from any thread (the I/O thread uses it); callbacks
    then run one at a time on the events thread, never under a pyburnerkit lock, so a callback
    may call any blocking client method. A callback that raises is logged once (per callback)
    with its traceback, counted in :attr:`callback_errors`, handed to ``on_callback_error`` if
    set, and the dispatcher keeps running.

    With ``hub`` (a shared :class:`~pyburnerkit.Reactor`'s events threads) it owns no thread:
    its queue is served by the hub's threads, by one at a time, in order.
    """

    def __init__(self, thread_name: str, *, max_pending: int = 10000,
                 on_callback_error: Optional[Callable[[BaseException, Any], Any]] = None,
                 hub: Optional["EventsHub"] = None) -> None:
        self.thread_name = thread_name
        self.max_pending = max_pending
        self.on_callback_error = on_callback_error
        self.callback_errors = 0
        self.dropped = 0
        self._queue: Deque[Any] = collections.deque()
        self._cond = threading.Condition()
        self._subscriptions: List[Subscription] = []
        self._streams: List[EventStream] = []
        self._lock = threading.Lock()
        self._logged: Set[Any] = set()
        self._thread: Optional[threading.Thread] = None
        self._closing = False
        self._started = False
        # shared mode (hub): the hub's lock guards _queue, _queued and _runner
        self._hub = hub
        self._queued = False  # on the hub's ready line, or being served
        self._runner: Optional[threading.Thread] = None  # the hub thread serving it now
        self._stopped = threading.Event()

    @property
    def thread(self) -> Optional[threading.Thread]:
        """The events thread (shared mode: the one serving this client now, else the hub's
        first; None before any started)."""
        hub = self._hub
        if hub is None:
            return self._thread
        runner = self._runner
        if runner is not None:
            return runner
        threads = hub.worker_threads()
        return threads[0] if threads else None

    def on_events_thread(self) -> bool:
        """Whether the caller runs this dispatcher's callbacks right now."""
        me = threading.current_thread()
        return me is self._runner if self._hub is not None else me is self._thread

    def start(self) -> None:
        hub = self._hub
        if hub is not None:
            with hub.cond:
                self._started = True
                if self._queue and not self._queued:
                    self._queued = True
                    hub.make_ready(self)
            return
        self._started = True
        self._thread = threading.Thread(target=self._run, name=self.thread_name, daemon=True)
        self._thread.start()

    def subscribe(self, callback: Callback,
                  event_types: Optional[Tuple[Type[Any], ...]] = None) -> Subscription:
        if not callable(callback):
            from ..errors import ConfigurationError
            raise ConfigurationError(f"callback must be callable, got {callback!r}")
        sub = Subscription(self, callback, event_types)
        with self._lock:
            self._subscriptions = self._subscriptions + [sub]
        return sub

    def _remove(self, sub: Subscription) -> None:
        with self._lock:
            self._subscriptions = [s for s in self._subscriptions if s is not sub]

    def events(self, timeout: Optional[float], maxlen: int,
               event_types: Optional[Tuple[Type[Any], ...]] = None) -> Iterator[Any]:
        stream = EventStream(maxlen, event_types)
        with self._lock:
            if self._closing:
                stream.close()
            self._streams = self._streams + [stream]
        return self._iterate(stream, timeout)

    def _iterate(self, stream: EventStream, timeout: Optional[float]) -> Iterator[Any]:
        try:
            while True:
                ok, event = stream.get(timeout)
                if not ok:
                    return
                yield event
        finally:
            with self._lock:
                self._streams = [s for s in self._streams if s is not stream]

    def listening(self) -> bool:
        """Whether :meth:`publish` would keep an event now (someone subscribed, or the thread
        has not started yet): a hot path may skip building an event nobody will see."""
        return bool(self._subscriptions or self._streams or not self._started)

    def publish(self, event: Any) -> None:
        """Queue ``event`` for the events thread (non-blocking, any thread).

        Once the events thread runs, an event nobody listens to when it is published (no
        subscription, no ``events()`` iterator) is dropped here, so the events thread is not
        woken for nothing; a listener receives the events published after it subscribed.
        Before the thread starts, events wait in the queue as before.
        """
        if not self._subscriptions and not self._streams and self._started \
                and type(event) is not _HookFailure:
            return
        self._enqueue((event,))

    def publish_many(self, events: List[Any]) -> None:
        """:meth:`publish` each of ``events``, in order, under one hold of the queue's lock
        (non-blocking, any thread)."""
        if events and (self._subscriptions or self._streams or not self._started):
            self._enqueue(events)

    def _enqueue(self, events: Sequence[Any]) -> None:
        hub = self._hub
        if hub is not None:
            with hub.cond:
                if self._closing:
                    return
                self._bounded_extend(events)
                if self._started and not self._queued:
                    self._queued = True
                    hub.make_ready(self)
            return
        with self._cond:
            if self._closing:
                return
            self._bounded_extend(events)
            self._cond.notify()

    def _bounded_extend(self, events: Sequence[Any]) -> None:
        """Append ``events``, then drop the oldest beyond ``max_pending`` (lock held)."""
        queue = self._queue
        queue.extend(events)
        excess = len(queue) - self.max_pending
        if excess > 0:
            for _ in range(excess):
                queue.popleft()
            first = self.dropped == 0
            self.dropped += excess
            if first:
                log.warning("%s: callbacks are too slow, dropping the oldest events "
                            "(queue limit %d)", self.thread_name, self.max_pending)

    def hook_failed(self, hook: Any, error: BaseException, payload: Any) -> None:
        """Count and log a user hook that raised on another thread (the I/O thread's ``trace``).

        Treated like a callback that raised: logged once per hook with its traceback, counted in
        :attr:`callback_errors`, and handed to ``on_callback_error`` on the events thread (never
        on the thread that called the hook). Non-blocking; safe from any thread.
        """
        with self._cond:
            self.callback_errors += 1
            first = id(hook) not in self._logged
            self._logged.add(id(hook))
        if first:
            log.error("%s: hook %r raised (logged once per hook):\n%s", self.thread_name, hook,
                      "".join(traceback.format_exception(type(error), error,
                                                         error.__traceback__)))
        if self.on_callback_error is not None:
            self.publish(_HookFailure(error, payload))

    def close(self, deadline: Deadline) -> bool:
        """Deliver what is queued, stop the thread and join it within ``deadline``.

        Never joins the current thread (close from a callback is fine).

        :returns: False when the thread did not stop in time.
        """
        if self._hub is not None:
            return self._close_shared(self._hub, deadline)
        with self._cond:
            if not self._closing:
                self._closing = True
                self._queue.append(_STOP)
                self._cond.notify()
        thread = self._thread
        if thread is None or thread is threading.current_thread():
            return True
        thread.join(deadline.remaining())
        return not thread.is_alive()

    def _close_shared(self, hub: "EventsHub", deadline: Deadline) -> bool:
        with hub.cond:
            if not self._closing:
                self._closing = True
                self._queue.append(_STOP)
                if self._started and not self._queued:
                    self._queued = True
                    hub.make_ready(self)
        if not self._started:
            self.close_streams()
            self._stopped.set()
            return True
        if self._stopped.is_set():
            return True
        me = threading.current_thread()
        if self._runner is me:
            return True  # closed from one of its own callbacks: the stop runs after it
        if me in hub.worker_threads() and hub.claim(self):
            # closed from another client's callback: serve the rest here rather than wait
            # for an events thread that may be this one
            hub.serve(self, until_stop=True)
            return True
        return self._stopped.wait(deadline.remaining())

    def _deliver_or_stop(self, event: Any) -> bool:
        """Shared mode: deliver ``event``; True once it was the stop marker."""
        if event is _STOP:
            self.close_streams()
            self._stopped.set()
            return True
        self._deliver(event)
        return False

    def close_streams(self) -> None:
        """End every ``events()`` iterator (also used when the thread never started)."""
        with self._lock:
            streams = list(self._streams)
        for stream in streams:
            stream.close()

    def _run(self) -> None:
        queue = self._queue
        try:
            while True:
                with self._cond:
                    while not queue:
                        self._cond.wait()
                    # Up to a quantum per hold of the lock, so a flood costs one lock round per
                    # batch; the queue's bound still counts all but these few.
                    batch = [queue.popleft() for _ in range(min(len(queue), EVENTS_QUANTUM))]
                for event in batch:
                    if event is _STOP:
                        return
                    self._deliver(event)
        finally:
            self.close_streams()

    def _deliver(self, event: Any) -> None:
        if isinstance(event, _HookFailure):
            self._call_error_hook(event.error, event.payload)
            return
        for stream in self._streams:
            if stream.wants(event):
                stream.put(event)
        for sub in self._subscriptions:
            if not sub.wants(event):
                continue
            try:
                sub.callback(event)
            except Exception as exc:  # a user callback must never kill the dispatcher
                self.callback_errors += 1
                key = id(sub)
                if key not in self._logged:
                    self._logged.add(key)
                    log.error("%s: callback %r raised on %s (logged once per callback):\n%s",
                              self.thread_name, sub.callback, type(event).__name__,
                              "".join(traceback.format_exception(type(exc), exc,
                                                                 exc.__traceback__)))
                self._call_error_hook(exc, event)

    def _call_error_hook(self, error: BaseException, payload: Any) -> None:
        hook = self.on_callback_error
        if hook is not None:
            try:
                hook(error, payload)
            except Exception:
                log.exception("on_callback_error hook raised")


class EventsHub:
    """The events threads of a shared :class:`~pyburnerkit.Reactor`: clients' dispatchers
    taken round-robin (how that keeps each client's contract: ``_core/reactor.py``)."""

    def __init__(self, name: str, max_threads: int) -> None:
        self.name = name
        self.max_threads = max_threads
        self.cond = threading.Condition()
        self.ready: Deque[Dispatcher] = collections.deque()
        self.threads: List[threading.Thread] = []
        self.idle = 0
        self.stopping = False
        self._numbers = itertools.count(1)

    # called with self.cond held
    def make_ready(self, dispatcher: Dispatcher) -> None:
        self.ready.append(dispatcher)
        if self.idle == 0 and len(self.threads) < self.max_threads and not self.stopping:
            thread = threading.Thread(target=self._run, daemon=True,
                                      name=f"{self.name}-events-{next(self._numbers)}")
            self.threads.append(thread)
            thread.start()
        else:
            self.cond.notify()

    def worker_threads(self) -> List[threading.Thread]:
        with self.cond:
            return list(self.threads)

    def _run(self) -> None:
        me = threading.current_thread()
        while True:
            with self.cond:
                while not self.ready and not self.stopping:
                    self.idle += 1
                    self.cond.wait()
                    self.idle -= 1
                if self.stopping and not self.ready:
                    return
                dispatcher = self.ready.popleft()
                dispatcher._runner = me
            self.serve(dispatcher)

    def serve(self, dispatcher: Dispatcher, until_stop: bool = False) -> None:
        """Deliver up to a quantum of ``dispatcher``'s events (all of them up to its stop when
        ``until_stop``) on the calling events thread, then requeue it or let it go."""
        budget = EVENTS_QUANTUM
        while until_stop or budget > 0:
            with self.cond:
                if not dispatcher._queue:
                    dispatcher._queued = False
                    dispatcher._runner = None
                    return
                event = dispatcher._queue.popleft()
            budget -= 1
            if dispatcher._deliver_or_stop(event):
                with self.cond:
                    dispatcher._queued = False
                    dispatcher._runner = None
                return
        with self.cond:
            dispatcher._runner = None
            if dispatcher._queue:
                self.make_ready(dispatcher)  # back of the line: the others get their turn
            else:
                dispatcher._queued = False

    def claim(self, dispatcher: Dispatcher) -> bool:
        """On an events thread: take ``dispatcher`` off the ready line to serve it here (used
        when one client closes another from a callback). False when another thread has it."""
        with self.cond:
            if dispatcher._runner is not None:
                return False
            try:
                self.ready.remove(dispatcher)
            except ValueError:
                pass
            dispatcher._queued = True
            dispatcher._runner = threading.current_thread()
            return True

    def stop(self, deadline: Deadline) -> bool:
        with self.cond:
            self.stopping = True
            self.cond.notify_all()
            threads = list(self.threads)
        ok = True
        for thread in threads:
            if thread is threading.current_thread():
                continue
            thread.join(deadline.remaining())
            ok = ok and not thread.is_alive()
        return ok
