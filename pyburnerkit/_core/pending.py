"""A one-shot result slot that the session fills and a blocked caller waits on."""

from __future__ import annotations

import threading
from typing import Any, Callable, List, Optional

_UNSET = object()


class Pending:
    """Completed exactly once, by :meth:`resolve` or :meth:`fail`; the first call wins.

    First-wins makes the timeout race harmless: a caller that gives up claims the slot with its
    own timeout error, and a late answer from the device is then simply ignored.
    """

    __slots__ = ("description", "is_write", "payload", "_event", "_lock", "_value", "_error",
                 "_callbacks", "__weakref__")

    def __init__(self, description: str, payload: Any = None, *, is_write: bool = False) -> None:
        self.description = description
        self.payload = payload
        self.is_write = is_write
        self._event = threading.Event()
        self._lock = threading.Lock()
        self._value: Any = _UNSET
        self._error: Optional[BaseException] = None
        self._callbacks: List[Callable[["Pending"], Any]] = []

    def done(self) -> bool:
        return self._event.is_set()

    def resolve(self, value: Any = None) -> bool:
        return self._complete(value, None)

    def fail(self, error: BaseException) -> bool:
        return self._complete(_UNSET, error)

    def _complete(self, value: Any, error: Optional[BaseException]) -> bool:
        with self._lock:
            if self._event.is_set():
                return False
            self._value, self._error = value, error
            self._event.set()
            callbacks, self._callbacks = self._callbacks, []
        for callback in callbacks:
            callback(self)
        return True

    def add_done_callback(self, callback: Callable[["Pending"], Any]) -> None:
        """Call ``callback(self)`` on completion, on whichever thread completes it."""
        with self._lock:
            if not self._event.is_set():
                self._callbacks.append(callback)
                return
        callback(self)

    def wait(self, timeout: Optional[float]) -> bool:
        return self._event.wait(timeout)

    def result(self) -> Any:
        """The value, or raise the error. Only valid once :meth:`done`."""
        if self._error is not None:
            raise self._error
        return None if self._value is _UNSET else self._value

    @property
    def error(self) -> Optional[BaseException]:
        return self._error
