"""Small waiting helpers for tests: wait for a condition with a deadline, never sleep blindly."""

from __future__ import annotations

import os
import signal
import subprocess
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


def freeze(proc: "subprocess.Popen[Any]") -> None:
    """SIGSTOP the child process ``proc`` and block until all its threads have stopped.

    ``kill`` returns before a threaded process stops: the kernel hands SIGSTOP to one thread,
    and the others stop only when that thread gets to run. On a loaded machine a simulator's
    I/O thread had time to answer one more request after ``kill`` returned.
    ``waitpid(WUNTRACED)`` returns when the whole process has stopped.
    """
    os.kill(proc.pid, signal.SIGSTOP)
    pid, status = os.waitpid(proc.pid, os.WUNTRACED)
    assert pid == proc.pid and os.WIFSTOPPED(status), f"{proc.args!r}: wait status {status}"
