"""Signals that reach the main thread's wait, whichever thread the kernel gave them to.

A process-directed signal (``kill``, a service manager's SIGTERM) goes to *any* thread that
does not block it. Python runs its handler on the main thread, but only when that thread next
executes Python code: a main thread blocked in ``Event.wait()`` while the signal landed on a
simulator's or server's I/O thread stays blocked - for good, or for the rest of its timeout.
Linux picks another thread when the main thread is busy or has a signal pending (right after
a SIGCONT, for one), so on a loaded machine ``kill -TERM`` sometimes did nothing.

:class:`SignalWait` closes that gap with :func:`signal.set_wakeup_fd`: the interpreter's C-level
handler writes the signal number to a socket on whichever thread it runs, and the main thread
waits in ``select`` on that socket, so it wakes at once and dispatches the signal itself.
"""

from __future__ import annotations

import select
import signal
import socket
import threading
import time
from types import TracebackType
from typing import Any, Callable, Dict, Mapping, Optional, Type

__all__ = ["SignalWait", "STOP_SIGNALS"]

#: the signals that end a foreground command cleanly (SIGHUP does not exist on Windows)
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM) + (
    (signal.SIGHUP,) if hasattr(signal, "SIGHUP") else ())


def _ignore(signum: int, frame: Any) -> None:
    # The work is done by SignalWait.wait from the wake-up byte; a Python-level handler must
    # still be installed, or the interpreter writes no byte (and the default action runs).
    return None


class SignalWait:
    """A context manager that turns signals into calls on the main thread's wait.

    ``handlers`` maps a signal to a function of its number. Entering (on the main thread)
    installs them and the wake-up socket; leaving restores what was there. Signals that arrive
    while the main thread is not in :meth:`wait` (while a simulator starts, say) are kept and
    handled by the next :meth:`wait`, and a signal during cleanup after the last wait is
    swallowed, so that a second Ctrl-C cannot cut the cleanup short.

    Off the main thread nothing can be installed: :meth:`wait` then only waits for its event
    (set by :meth:`wake`'s callers, or another thread).
    """

    def __init__(self, handlers: Mapping[int, Callable[[int], None]]) -> None:
        self._handlers: Dict[int, Callable[[int], None]] = {int(s): h for s, h in
                                                            handlers.items()}
        self._previous: Dict[int, Any] = {}
        self._previous_fd: Optional[int] = None
        self._reader: Optional[socket.socket] = None
        self._writer: Optional[socket.socket] = None

    def __enter__(self) -> "SignalWait":
        if threading.current_thread() is not threading.main_thread():
            return self
        reader, writer = socket.socketpair()
        reader.setblocking(False)
        writer.setblocking(False)
        self._reader, self._writer = reader, writer
        try:
            self._previous_fd = signal.set_wakeup_fd(writer.fileno(), warn_on_full_buffer=False)
            for signum in self._handlers:
                self._previous[signum] = signal.signal(signum, _ignore)
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, kind: Optional[Type[BaseException]], exc: Optional[BaseException],
                 tb: Optional[TracebackType]) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous.clear()
        if self._previous_fd is not None:
            signal.set_wakeup_fd(self._previous_fd)
            self._previous_fd = None
        for sock in (self._reader, self._writer):
            if sock is not None:
                sock.close()
        self._reader = self._writer = None

    def wake(self) -> None:
        """Make a :meth:`wait` in progress look at its event again (any thread)."""
        writer = self._writer
        if writer is not None:
            try:
                writer.send(b"\0")  # 0 is no signal number
            except OSError:
                pass  # full (a wake-up is pending anyway) or closed (nobody waits)

    def wait(self, event: threading.Event, timeout: Optional[float] = None) -> bool:
        """Block until ``event`` is set or ``timeout`` seconds passed (None: no limit),
        running the handler of every signal that arrives meanwhile on this thread.

        :returns: whether ``event`` is set.
        :raises: whatever a handler raises (a KeyboardInterrupt from Python's own SIGINT
            handler, when SIGINT is not among ``handlers``, comes through as usual).
        """
        reader = self._reader
        if reader is None:
            return event.wait(timeout)
        deadline = None if timeout is None else time.monotonic() + timeout
        while not event.is_set():
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                return False
            readable, _, _ = select.select([reader], [], [], remaining)
            if not readable:
                continue
            try:
                numbers = reader.recv(256)
            except BlockingIOError:
                continue
            for signum in numbers:
                handler = self._handlers.get(signum)
                if handler is not None:
                    handler(signum)
        return True
