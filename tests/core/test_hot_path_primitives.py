"""The primitives every blocking call goes through: the timer heap and the Pending slot.

Timers: a timeout re-armed per request (cancel, schedule again) must not grow the heap with
dead handles, and dropping them must never drop or reorder a live timer. Pending: a lock
stands in for an Event, so every waiter, timeout and race of the Event's contract is checked.
"""

from __future__ import annotations

import threading
from typing import Any, Callable, List

from hypothesis import given, settings
from hypothesis import strategies as st

from pyburnerkit._core.loop import EventLoop
from pyburnerkit._core.pending import Pending
from pyburnerkit.errors import DeviceTimeoutError

from ..helpers import CallInThread


def run_on_loop(body: Callable[[EventLoop], Any]) -> Any:
    """Run ``body(loop)`` as the first callback on a fresh loop's thread; the loop runs until
    ``body`` (or a timer it set) stops it. Returns what ``body`` returned."""
    loop = EventLoop()
    result: List[Any] = []
    loop.call_soon_threadsafe(lambda: result.append(body(loop)))
    runner = threading.Thread(target=loop.run, name="test-loop")
    runner.start()
    runner.join(20)
    try:
        assert not runner.is_alive(), "the loop did not stop"
    finally:
        loop.close()
    return result[0] if result else None


def test_a_timeout_rearmed_per_request_keeps_the_heap_small() -> None:
    fired: List[str] = []

    def body(loop: EventLoop) -> int:
        handle = loop.call_later(60, fired.append, "never")
        largest = 0
        for _ in range(10_000):
            handle.cancel()
            handle = loop.call_later(60, fired.append, "dead")
            largest = max(largest, len(loop._timers))
        handle.cancel()
        loop.call_later(0, fired.append, "live")
        loop.call_later(0.01, loop.stop)
        return largest

    largest = run_on_loop(body)
    assert largest <= 200, f"the heap grew to {largest} handles"
    assert fired == ["live"]


#: A plan: add a timer due in N ms (an int), or cancel the live timer at that position of
#: the ones added so far (a 1-tuple), interleaved as a session does.
PLANS = st.lists(st.one_of(st.integers(0, 20), st.tuples(st.integers(0, 10_000))),
                 min_size=200, max_size=400)


@settings(max_examples=60, deadline=None)
@given(PLANS)
def test_dropping_cancelled_timers_never_drops_or_reorders_a_live_one(plan: Any) -> None:
    fired: List[int] = []

    def body(loop: EventLoop) -> List[int]:
        added: List[Any] = []  # (handle, delay, index, cancelled)
        for step in plan:
            if isinstance(step, int):
                index = len(added)
                added.append([loop.call_later(step / 1000, fired.append, index), step, index,
                              False])
                continue
            live = [entry for entry in added if not entry[3]]
            if live:
                entry = live[step[0] % len(live)]
                entry[0].cancel()
                entry[3] = True
        loop.call_later(0.03, loop.stop)
        # Timers due at the same moment fire in the order they were added.
        return [index for _, delay, index, cancelled in
                sorted(added, key=lambda e: (e[0].when, e[2])) if not cancelled]

    expected = run_on_loop(body)
    assert fired == expected


def test_a_timer_cancelled_from_another_thread_leaves_the_heap_to_the_loop() -> None:
    # A shared reactor's connect thread may cancel a session's timer: it must not compact the
    # heap under the loop thread's feet (only the loop thread does).
    fired: List[str] = []
    loop = EventLoop()
    handles: List[Any] = []
    ready = threading.Event()

    def arm() -> None:
        handles.extend(loop.call_later(60, fired.append, "dead") for _ in range(500))
        loop.call_later(0, fired.append, "live")
        ready.set()

    loop.call_soon_threadsafe(arm)
    runner = threading.Thread(target=loop.run, name="test-loop")
    runner.start()
    try:
        assert ready.wait(10)
        canceller = CallInThread(lambda: [h.cancel() for h in handles])
        canceller.join(10)
        assert canceller.error is None
        assert len(loop._timers) >= 500  # nothing compacted off the loop thread
    finally:
        loop.call_soon_threadsafe(loop.stop)
        runner.join(10)
        loop.close()
    assert fired == ["live"]


def test_pending_releases_every_waiter() -> None:
    pending = Pending("x")
    waiters = [CallInThread(lambda: pending.wait(10)) for _ in range(4)]
    assert not pending.done()
    assert pending.resolve(7) is True
    for waiter in waiters:
        waiter.join(10)
        assert waiter.result is True
    assert pending.result() == 7
    assert pending.wait(0) is True and pending.wait(None) is True


def test_pending_wait_times_out_then_a_late_answer_is_kept() -> None:
    pending = Pending("x")
    assert pending.wait(0.01) is False
    assert pending.wait(0) is False
    assert pending.resolve("late") is True
    assert pending.wait(0) is True and pending.result() == "late"


def test_pending_racing_completions_one_wins_and_every_waiter_sees_it() -> None:
    for _ in range(200):
        pending = Pending("x")
        start = threading.Barrier(3)
        waiter = CallInThread(lambda: pending.wait(10))

        def complete(how: str) -> bool:
            start.wait(5)
            if how == "resolve":
                return pending.resolve(1)
            return pending.fail(DeviceTimeoutError("gave up"))

        racers = [CallInThread(lambda: complete("resolve")), CallInThread(lambda: complete("fail"))]
        start.wait(5)
        for racer in racers:
            racer.join(10)
        waiter.join(10)
        assert sorted(r.result for r in racers) == [False, True]
        assert waiter.result is True and pending.done()
