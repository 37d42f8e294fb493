"""A one-shot result slot that the session fills and a blocked caller waits on, and the queue
of such slots for a protocol with one request on the wire at a time."""

from __future__ import annotations

import collections
import threading
from typing import Any, Callable, Deque, List, Optional

_UNSET = object()


class Pending:
    """Completed exactly once, by :meth:`~pyburnerkit.driver.Pending.resolve` or
    :meth:`~pyburnerkit.driver.Pending.fail`; the first call wins.

    First-wins makes the timeout race harmless: a caller that gives up claims the slot with its
    own timeout error, and a late answer from the device is then simply ignored.
    """

    __slots__ = ("description", "is_write", "payload", "_done", "_gate", "_lock", "_value",
                 "_error", "_callbacks", "__weakref__")

    def __init__(self, description: str, payload: Any = None, *, is_write: bool = False) -> None:
        self.description = description
        self.payload = payload
        self.is_write = is_write
        self._done = False
        # Held until completion; a waiter blocks acquiring it and hands it straight back, so
        # every waiter passes. One lock instead of an Event's condition: a request is waited
        # on by one caller, and this is the hot path of every blocking call.
        self._gate = threading.Lock()
        self._gate.acquire()
        self._lock = threading.Lock()
        self._value: Any = _UNSET
        self._error: Optional[BaseException] = None
        self._callbacks: List[Callable[["Pending"], Any]] = []

    def done(self) -> bool:
        """Whether the request was resolved or failed (never blocks)."""
        return self._done

    def resolve(self, value: Any = None) -> bool:
        """Complete with ``value``, from any thread; False if it was already complete."""
        return self._complete(value, None)

    def fail(self, error: BaseException) -> bool:
        """Complete with ``error`` (raised by :meth:`result`); False if already complete."""
        return self._complete(_UNSET, error)

    def _complete(self, value: Any, error: Optional[BaseException]) -> bool:
        with self._lock:
            if self._done:
                return False
            self._value, self._error = value, error
            self._done = True
            self._gate.release()
            callbacks, self._callbacks = self._callbacks, []
        for callback in callbacks:
            callback(self)
        return True

    def add_done_callback(self, callback: Callable[["Pending"], Any]) -> None:
        """Call ``callback(self)`` on completion, on whichever thread completes it."""
        with self._lock:
            if not self._done:
                self._callbacks.append(callback)
                return
        callback(self)

    def wait(self, timeout: Optional[float]) -> bool:
        """Block until complete or ``timeout`` seconds (None: no limit); True if complete."""
        if self._done:
            return True
        if not self._gate.acquire(True, -1 if timeout is None else max(0.0, timeout)):
            return self._done
        self._gate.release()
        return True

    def result(self) -> Any:
        """The value, or raise the error. Only valid once :meth:`~pyburnerkit.driver.Pending.done`."""
        if self._error is not None:
            raise self._error
        return None if self._value is _UNSET else self._value

    @property
    def error(self) -> Optional[BaseException]:
        return self._error


class RequestQueue:
    """Requests waiting for the wire, oldest first, for a protocol that has one request
    outstanding at a time. I/O thread only (not locked).

    A request whose caller gave up before its turn is skipped, never sent; on a dropped link
    :meth:`take_unsent` hands back the ones never sent, which then wait for the next link
    (nothing of theirs can have reached the device).
    """

    __slots__ = ("_waiting",)

    def __init__(self) -> None:
        self._waiting: Deque[Pending] = collections.deque()

    def __len__(self) -> int:
        return len(self._waiting)

    def append(self, request: Pending) -> None:
        self._waiting.append(request)

    def pop_live(self) -> Optional[Pending]:
        """The oldest request still wanted (dropping abandoned ones on the way), or None."""
        while self._waiting:
            request = self._waiting.popleft()
            if not request.done():
                return request
        return None

    def take_unsent(self) -> List[Pending]:
        """Empty the queue; return the requests still wanted, oldest first."""
        unsent = [p for p in self._waiting if not p.done()]
        self._waiting.clear()
        return unsent
