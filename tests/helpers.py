"""Small waiting helpers for tests: wait for a condition with a deadline, never sleep blindly."""

from __future__ import annotations

import threading
import time
from typing import Any, Callable, List


def wait_until(condition: Callable[[], Any], timeout: float = 10.0,
               message: str = "condition") -> Any:
    """Re-check ``condition`` (state owned by another thread or process) until it is truthy.

    :raises AssertionError: still falsy after ``timeout`` seconds.
    """
    pause = threading.Event()
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() >= deadline:
            raise AssertionError(f"{message} did not happen within {timeout} s")
        pause.wait(0.01)


class Recorder:
    """Collects events from a callback and lets a test wait for one that matches."""

    def __init__(self) -> None:
        self.events: List[Any] = []
        self._cond = threading.Condition()

    def __call__(self, event: Any) -> None:
        with self._cond:
            self.events.append(event)
            self._cond.notify_all()

    def wait_for(self, predicate: Callable[[Any], bool], timeout: float = 10.0) -> Any:
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for event in self.events:
                    if predicate(event):
                        return event
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(
                        f"no matching event within {timeout} s; got {self.events[-5:]!r}")
                self._cond.wait(left)


class CallInThread:
    """Run a blocking call on a helper thread and collect its result or exception."""

    def __init__(self, call: Callable[[], Any]) -> None:
        self.result: Any = None
        self.error: Any = None
        self.done = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(call,), name="test-call")
        self._thread.start()

    def _run(self, call: Callable[[], Any]) -> None:
        try:
            self.result = call()
        except BaseException as exc:
            self.error = exc
        finally:
            self.done.set()

    def join(self, timeout: float = 10.0) -> "CallInThread":
        if not self.done.wait(timeout):
            raise AssertionError(f"the call did not finish within {timeout} s")
        self._thread.join()
        return self
