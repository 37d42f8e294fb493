"""A small select()-based reactor owned by one thread.

The session thread of every socket driver and every simulator server run on one of these. It
sleeps in ``select()`` until a socket is readable, a timer is due, or another thread hands it
work through :meth:`EventLoop.call_soon_threadsafe`; an idle loop costs no CPU (there is no
polling tick), and work handed over from another thread runs at once.
"""

from __future__ import annotations

import collections
import heapq
import itertools
import selectors
import socket
import threading
import time
from typing import Any, Callable, Deque, Dict, List, Optional, Tuple


def descriptor(fileobj: Any) -> int:
    """The file descriptor of ``fileobj`` (a descriptor already, or anything with ``fileno()``).

    :raises OSError, ValueError: a socket or file that is closed.
    """
    return fileobj if isinstance(fileobj, int) else int(fileobj.fileno())


class TimerHandle:
    """A call scheduled with :meth:`pyburnerkit.driver.EventLoop.call_later`; ``cancel()`` it from the loop thread."""

    __slots__ = ("when", "seq", "callback", "args", "cancelled", "heap_owner")

    def __init__(self, when: float, seq: int, callback: Callable[..., Any], args: Tuple[Any, ...]) -> None:
        self.when = when
        self.seq = seq
        self.callback = callback
        self.args = args
        self.cancelled = False
        #: the loop whose heap holds this handle (told of a cancel, to drop dead handles)
        self.heap_owner: Optional["EventLoop"] = None

    def cancel(self) -> None:
        if not self.cancelled:
            self.cancelled = True
            owner = self.heap_owner
            if owner is not None:
                owner.timer_cancelled()

    def __lt__(self, other: "TimerHandle") -> bool:
        return (self.when, self.seq) < (other.when, other.seq)


class EventLoop:
    """Readers, timers and cross-thread calls, dispatched on the thread that calls :meth:`run`.

    Only :meth:`call_soon_threadsafe`, :meth:`stop` and :meth:`~pyburnerkit.driver.EventLoop.in_loop_thread` may be used from
    other threads; everything else belongs to the loop thread.
    """

    def __init__(self) -> None:
        self._selector = selectors.DefaultSelector()
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._selector.register(self._wake_r, selectors.EVENT_READ, None)
        self._calls: Deque[Tuple[Callable[..., Any], Tuple[Any, ...]]] = collections.deque()
        self._timers: List[TimerHandle] = []
        #: cancelled handles still in ``_timers`` (an upper bound; see :meth:`timer_cancelled`)
        self._cancelled_timers = 0
        self._seq = itertools.count()
        self._readers: Dict[int, Callable[[], Any]] = {}
        self._stopping = False
        self._closed = False
        #: True from the moment a producer decides to write a wake byte until the loop thread
        #: takes the queued calls; while it is set, other producers skip the write (one byte
        #: per burst instead of one per call). See :meth:`call_soon_threadsafe`.
        self._wake_pending = False
        #: wake bytes actually written (a measure of the coalescing, read by benchmarks/tests)
        self.wakeups_sent = 0
        self.thread_id: Optional[int] = None

    # -- any thread -------------------------------------------------------------------------
    def call_soon_threadsafe(self, callback: Callable[..., Any], *args: Any) -> None:
        """Run ``callback(*args)`` on the loop thread as soon as possible; never blocks.

        Calls run in the order they were queued. Wake-ups are coalesced: only the producer
        that finds no wake-up pending writes the wake byte. This is safe because the loop
        thread clears ``_wake_pending`` *before* it takes the queued calls (see :meth:`run`):
        a call appended before the clear is taken by that drain, and the first producer after
        the clear finds the flag down and writes a byte. Two producers racing on the flag
        both write, which costs one spurious wake-up, never a lost one.
        """
        self._calls.append((callback, args))
        if not self._wake_pending:
            self._wake_pending = True
            self._wake()

    def stop(self) -> None:
        """Ask :meth:`run` to return after the current iteration."""
        self._stopping = True
        self._wake()  # always written: it must also interrupt wait_io()

    def in_loop_thread(self) -> bool:
        """Whether the caller is the thread running :meth:`run` (safe from any thread)."""
        return self.thread_id == threading.get_ident()

    def _wake(self) -> None:
        self.wakeups_sent += 1
        try:
            self._wake_w.send(b"\0")
        except (BlockingIOError, OSError):
            # A full wake pipe already guarantees a wake-up; a closed one means we are done.
            pass

    # -- loop thread ------------------------------------------------------------------------
    def call_later(self, delay: float, callback: Callable[..., Any], *args: Any) -> TimerHandle:
        """Run ``callback(*args)`` on the loop thread after ``delay`` seconds; loop thread only
        (from elsewhere, go through :meth:`call_soon_threadsafe`)."""
        handle = TimerHandle(time.monotonic() + max(0.0, delay), next(self._seq), callback, args)
        self.push_timer(handle)
        return handle

    def push_timer(self, handle: TimerHandle) -> None:
        """Put ``handle`` on this loop's timer heap (loop thread only)."""
        handle.heap_owner = self
        heapq.heappush(self._timers, handle)

    def timer_cancelled(self) -> None:
        """A handle on the heap was cancelled (loop thread only). Cancelled handles are
        dropped in one pass once they are most of the heap: a timeout re-armed on every
        request (cancel, then a new one) would otherwise grow the heap, and every push with
        it, until each dead handle falls due."""
        self._cancelled_timers += 1
        timers = self._timers
        # A shared reactor's connect thread may cancel a session's timer: the heap is the
        # loop thread's, so only that thread compacts it.
        if self._cancelled_timers > 64 and 2 * self._cancelled_timers > len(timers) \
                and self.thread_id == threading.get_ident():
            timers[:] = [t for t in timers if not t.cancelled]
            heapq.heapify(timers)
            self._cancelled_timers = 0

    def add_reader(self, fileobj: Any, callback: Callable[[], Any]) -> int:
        """Call ``callback()`` whenever ``fileobj`` is readable.

        :returns: the file descriptor; pass it to :meth:`~pyburnerkit.driver.EventLoop.remove_reader` (a socket closed
            elsewhere no longer knows its descriptor).
        """
        fd = descriptor(fileobj)
        if fd in self._readers:  # a descriptor reused after an unnoticed close
            self.remove_reader(fd)
        self._selector.register(fd, selectors.EVENT_READ, None)
        self._readers[fd] = callback
        return fd

    def remove_reader(self, fd: Any) -> None:
        """Stop watching ``fd`` (a descriptor or a socket); loop thread only."""
        try:
            fd = descriptor(fd)
        except (OSError, ValueError):
            return  # a socket closed elsewhere: nothing of it can be watched any more
        if self._readers.pop(fd, None) is not None:
            try:
                self._selector.unregister(fd)
            except (KeyError, ValueError, OSError):
                pass

    def remove_all_readers(self) -> None:
        for fd in list(self._readers):
            del self._readers[fd]
            try:
                self._selector.unregister(fd)
            except (KeyError, ValueError):
                pass

    def wait_io(self, fileobj: Any, *, write: bool = False, timeout: Optional[float]) -> bool:
        """Block the loop thread until ``fileobj`` is ready, ``timeout`` passes, or ``stop()``.

        Used while a transport opens (a TCP connect, a handshake) so that ``close()`` from
        another thread still interrupts it at once.

        :returns: True when ready; False on timeout or when the loop was asked to stop.
        """
        sel = selectors.DefaultSelector()
        try:
            sel.register(fileobj, selectors.EVENT_WRITE if write else selectors.EVENT_READ, 1)
            sel.register(self._wake_r, selectors.EVENT_READ, None)
            deadline = None if timeout is None else time.monotonic() + timeout
            while not self._stopping:
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    return False
                for key, _ in sel.select(left):
                    if key.data == 1:
                        return True
                    # A cross-thread call arrived: keep its wake-up byte consumed here, run
                    # it after the blocking step finishes (it stays queued in _calls).
                    self._drain_wake()
            return False
        finally:
            sel.close()

    def stopping(self) -> bool:
        return self._stopping

    def run(self) -> None:
        """Dispatch until :meth:`stop`. Exceptions from callbacks propagate to the caller."""
        self.thread_id = threading.get_ident()
        select = self._selector.select
        while not self._stopping:
            timeout = None
            if self._timers:
                timeout = max(0.0, self._timers[0].when - time.monotonic())
            if self._calls:
                timeout = 0.0
            for key, _ in select(timeout):
                if key.data is None and key.fileobj is self._wake_r:
                    self._drain_wake()
                    continue
                callback = self._readers.get(key.fd)
                if callback is not None:
                    callback()
            # Lower the flag before taking the calls, never after: a producer that appends
            # once we stop looking must find it down and write a byte, or its call would wait
            # for some unrelated wake-up (a lost wake-up). Lowered on every pass, whether or
            # not the wake byte was read here (wait_io() may have consumed it).
            self._wake_pending = False
            calls = self._calls
            # Only what is queued now: a producer flooding the loop cannot starve readers and
            # timers (what arrives meanwhile runs on the next pass, which will not sleep).
            for _ in range(len(calls)):
                callback, args = calls.popleft()
                callback(*args)
            now = time.monotonic()
            while self._timers and self._timers[0].when <= now:
                handle = heapq.heappop(self._timers)
                handle.heap_owner = None
                if handle.cancelled:
                    self._cancelled_timers = max(0, self._cancelled_timers - 1)
                else:
                    handle.callback(*handle.args)

    def run_pending_calls(self) -> None:
        """Run every queued cross-thread call now (used during shutdown)."""
        while self._calls:
            callback, args = self._calls.popleft()
            callback(*args)

    def _drain_wake(self) -> None:
        try:
            # Coalesced wake-ups leave a byte or a few; a short read means the pipe is empty
            # (no second read that fails with EAGAIN).
            while len(self._wake_r.recv(4096)) == 4096:
                pass
        except (BlockingIOError, OSError):
            pass
        # Drained first, lowered second: a byte written after the drain stays in the pipe
        # (a spurious wake-up at worst), and a producer arriving after this line writes one.
        self._wake_pending = False

    def close(self) -> None:
        """Release the selector and the wake pipe. Call once :meth:`run` has returned."""
        if self._closed:
            return
        self._closed = True
        self._stopping = True
        self._readers.clear()
        self._timers.clear()
        self._cancelled_timers = 0
        self._selector.close()
        self._wake_r.close()
        self._wake_w.close()
