"""Coalesced wake-ups of the reactor: fewer wake bytes, and never a lost wake-up.

The reactor writes its wake byte only when no wake-up is pending (issue 16). A lost wake-up
does not raise anything: the loop simply sleeps with work queued. So these tests make many
threads submit while the loop drains, wait for every submitted call to run, and fail (after a
generous wait used only as a failure detector, never as a timing assertion) naming the round
that stalled.

The stress is strong enough to catch the naive versions: a loop that lowers the flag before
reading the pipe stalls in the first round (:func:`test_the_stress_catches_a_naive_loop` keeps
that honest), and a producer that raises the flag and writes before queuing stalled within 30
rounds in every trial when this was written (the stress runs 800).
"""

from __future__ import annotations

import socket
import threading
import time
from typing import Any, List, Optional, Type

from pyburnerkit._core.loop import EventLoop

#: Seconds a round may take before we call it a lost wake-up. Only reached when the loop is
#: asleep with work queued; a healthy round takes well under a millisecond.
STALL = 20.0


class LoopThread:
    """A reactor running on its own thread, closed by ``close()``."""

    def __init__(self, loop_class: Type[EventLoop] = EventLoop) -> None:
        self.loop = loop_class()
        self.thread = threading.Thread(target=self.loop.run, name="pyburnerkit-test-loop")
        self.thread.start()

    def close(self) -> None:
        self.loop.stop()
        self.thread.join(STALL)
        assert not self.thread.is_alive()
        self.loop.close()


def hammer(loop: EventLoop, *, producers: int, rounds: int, burst: int,
           stall: float = STALL) -> Optional[str]:
    """Each round, ``producers`` threads released together each queue ``burst`` calls; the
    round ends when every call ran. Returns None, or what stalled."""
    ran = [0] * producers
    expected = [0] * producers
    done = [threading.Event() for _ in range(producers)]
    start = threading.Barrier(producers + 1)
    failure: List[str] = []

    def count(i: int, last: bool) -> None:
        ran[i] += 1
        if last:
            done[i].set()

    def producer(i: int) -> None:
        for _ in range(rounds):
            try:
                start.wait()
            except threading.BrokenBarrierError:  # the main thread gave up on a stall
                return
            if failure:
                return
            for k in range(burst):
                expected[i] += 1
                loop.call_soon_threadsafe(count, i, k == burst - 1)
                # Hand the GIL over between calls so that the loop thread drains while
                # producers are still queuing: that interleaving is where a wake-up is lost.
                time.sleep(0)  # sleep-ok: a GIL yield, not a wait

    threads = [threading.Thread(target=producer, args=(i,), name=f"pyburnerkit-test-prod-{i}")
               for i in range(producers)]
    for t in threads:
        t.start()
    try:
        for r in range(rounds):
            start.wait()
            for i, ev in enumerate(done):
                if not ev.wait(stall):
                    failure.append(f"round {r}: producer {i} queued {expected[i]} calls, "
                                   f"{ran[i]} ran (lost wake-up)")
                    start.abort()
                    return failure[0]
                ev.clear()
    finally:
        for t in threads:
            t.join(STALL)
    assert ran == expected
    return None


class _LowerThenDrain(EventLoop):
    """A naive loop, for checking the stress: it lowers the flag *before* reading the pipe,
    so a producer that raises it in between has its byte swallowed and the flag stays up.
    Only the wake-up handling is modelled (no readers, no timers)."""

    def run(self) -> None:
        self.thread_id = threading.get_ident()
        while not self._stopping:
            for key, _ in self._selector.select(0.0 if self._calls else None):
                if key.fileobj is self._wake_r:
                    self._drain_wake()
            while self._calls:
                callback, args = self._calls.popleft()
                callback(*args)

    def _drain_wake(self) -> None:
        self._wake_pending = False
        try:
            while self._wake_r.recv(4096):
                pass
        except (BlockingIOError, OSError):
            pass


def test_the_stress_catches_a_naive_loop() -> None:
    lt = LoopThread(_LowerThenDrain)
    try:
        problem = hammer(lt.loop, producers=4, rounds=800, burst=8, stall=2.0)
        assert problem is not None and "lost wake-up" in problem
    finally:
        lt.loop._wake()  # unstick it so that it can stop
        lt.close()


def test_no_lost_wakeup_under_concurrent_submitters() -> None:
    lt = LoopThread()
    try:
        problem = hammer(lt.loop, producers=4, rounds=800, burst=8)
        assert problem is None, problem
        # Every call ran exactly once (hammer checked the counts) and the wake-ups were
        # coalesced: fewer bytes than calls.
        assert lt.loop.wakeups_sent < 4 * 800 * 8
    finally:
        lt.close()


def test_single_submitter_ping_pong_never_stalls() -> None:
    """One call at a time, each queued right after the previous one ran: the pattern where the
    flag is lowered and raised again on every call."""
    lt = LoopThread()
    try:
        problem = hammer(lt.loop, producers=1, rounds=5000, burst=1)
        assert problem is None, problem
    finally:
        lt.close()


def test_calls_keep_their_order_per_producer() -> None:
    lt = LoopThread()
    seen: List[List[int]] = [[] for _ in range(3)]
    finished = threading.Event()
    try:
        def produce(i: int) -> None:
            for n in range(20000):
                lt.loop.call_soon_threadsafe(seen[i].append, n)

        threads = [threading.Thread(target=produce, args=(i,), name=f"pyburnerkit-test-p{i}")
                   for i in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(STALL)
        lt.loop.call_soon_threadsafe(finished.set)
        assert finished.wait(STALL)
        assert all(s == list(range(20000)) for s in seen)
    finally:
        lt.close()


def test_wakeup_consumed_by_wait_io_is_not_lost() -> None:
    """A loop callback blocked in ``wait_io`` reads the wake byte of calls queued meanwhile;
    those calls, and every call queued after ``wait_io`` returns, still run."""
    lt = LoopThread()
    a, b = socket.socketpair()
    in_wait = threading.Event()
    log: List[str] = []
    finished = threading.Event()
    try:
        for round_ in range(200):
            def blocking_step() -> None:
                in_wait.set()
                assert lt.loop.wait_io(a, timeout=STALL)
                a.recv(1)

            in_wait.clear()
            lt.loop.call_soon_threadsafe(blocking_step)
            assert in_wait.wait(STALL)
            # queued while the loop thread sits in wait_io: their wake byte lands there
            lt.loop.call_soon_threadsafe(log.append, f"during {round_}")
            b.send(b"x")
            # queued after (or while) wait_io returns
            lt.loop.call_soon_threadsafe(log.append, f"after {round_}")
            finished.clear()
            lt.loop.call_soon_threadsafe(finished.set)
            assert finished.wait(STALL), f"round {round_}: lost wake-up after wait_io"
        assert log == [f"{w} {r}" for r in range(200) for w in ("during", "after")]
    finally:
        lt.close()
        a.close()
        b.close()


def test_stop_interrupts_wait_io_even_with_a_wakeup_pending() -> None:
    """``stop()`` always writes its byte, so a pending (coalesced) wake-up cannot swallow it."""
    loop = EventLoop()
    a, b = socket.socketpair()
    result: List[Any] = []
    try:
        loop._wake_pending = True  # as if a producer had just raised the flag
        t = threading.Thread(target=lambda: result.append(loop.wait_io(a, timeout=STALL)),
                             name="pyburnerkit-test-wait")
        t.start()
        loop.stop()
        t.join(STALL)
        assert result == [False]
    finally:
        a.close()
        b.close()
        loop.close()


def test_a_flood_does_not_starve_timers() -> None:
    """Calls queued while the loop drains wait for the next pass, so a due timer runs even
    while another thread keeps the queue full."""
    lt = LoopThread()
    fired = threading.Event()
    stop_flood = threading.Event()
    try:
        def flood() -> None:
            while not stop_flood.is_set():
                lt.loop.call_soon_threadsafe(int)

        def arm() -> None:
            lt.loop.call_later(0.0, fired.set)

        t = threading.Thread(target=flood, name="pyburnerkit-test-flood")
        t.start()
        lt.loop.call_soon_threadsafe(arm)
        ok = fired.wait(STALL)
        stop_flood.set()
        t.join(STALL)
        assert ok
    finally:
        lt.close()

