"""Shared pieces of the stress layer: many threads at once, many open/close cycles, fuzzing.

Every family's ``tests/conformance/test_<family>_stress.py`` builds on these. They measure and
report; the assertions stay in the tests, so a failure names the family and the operation.
"""

from __future__ import annotations

import os
import random
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, Type

from pyburnerkit import PyBurnerKitError

#: What a fuzzed decoder or frame handler may raise: the documented error tree, nothing else.
DOCUMENTED_ERRORS: Tuple[Type[BaseException], ...] = (PyBurnerKitError,)


@dataclass
class HammerResult:
    """What :func:`hammer` saw: every call's latency and every exception, per operation."""

    calls: Dict[str, int] = field(default_factory=dict)
    latencies: List[float] = field(default_factory=list)
    errors: List[Tuple[str, BaseException]] = field(default_factory=list)
    stuck_threads: List[str] = field(default_factory=list)

    @property
    def total(self) -> int:
        return sum(self.calls.values())

    def percentile(self, fraction: float) -> float:
        if not self.latencies:
            return float("nan")
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]

    def describe_errors(self, limit: int = 5) -> str:
        shown = [f"{name}: {type(exc).__name__}: {exc}" for name, exc in self.errors[:limit]]
        more = len(self.errors) - len(shown)
        return "; ".join(shown) + (f" (+{more} more)" if more > 0 else "")


def hammer(operations: Dict[str, Callable[[], Any]], threads: int = 8, duration: float = 3.0,
           seed: int = 1, join_timeout: float = 30.0) -> HammerResult:
    """Run ``operations`` from ``threads`` threads at once for ``duration`` seconds.

    Each thread picks operations at random (seeded per thread, so a failure reproduces) and calls
    them back to back until the deadline. Blocks until every thread finished its last call, or
    ``join_timeout`` after the deadline; threads still inside a call then are reported in
    ``stuck_threads`` (a wedge), not waited for.
    """
    result = HammerResult(calls={name: 0 for name in operations})
    lock = threading.Lock()
    names = sorted(operations)
    deadline = time.monotonic() + duration

    def worker(index: int) -> None:
        rng = random.Random(seed * 1000 + index)
        while time.monotonic() < deadline:
            name = rng.choice(names)
            started = time.monotonic()
            try:
                operations[name]()
            except BaseException as exc:  # collected, the test decides
                with lock:
                    result.errors.append((name, exc))
            finally:
                with lock:
                    result.calls[name] += 1
                    result.latencies.append(time.monotonic() - started)

    workers = [threading.Thread(target=worker, args=(i,), name=f"stress-{i}", daemon=True)
               for i in range(threads)]
    for thread in workers:
        thread.start()
    end = deadline + join_timeout
    for thread in workers:
        thread.join(max(0.0, end - time.monotonic()))
    result.stuck_threads = [t.name for t in workers if t.is_alive()]
    return result


def rss_bytes() -> int:
    """Resident set size of this process (Linux ``/proc``)."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


@dataclass
class Footprint:
    threads: int
    fds: int
    rss: int

    @classmethod
    def now(cls) -> "Footprint":
        import gc
        gc.collect()
        return cls(threading.active_count(), open_fds(), rss_bytes())


#: Default RSS movement allowed over a half-run of cycles.
RSS_SLACK = 512 * 1024
#: Second-half growth above this triggers the confirming run (below every slack a test uses).
CONFIRM_ABOVE = 256 * 1024


@dataclass
class CycleResult:
    """Footprints after the warm-up, half-way, and at the end of :func:`cycle`.

    ``confirm`` is the footprint after one more half-run of cycles, taken only when the second
    half grew by more than the slack: a leak grows again, a one-off allocator step does not.
    """

    warm: Footprint
    middle: Footprint
    end: Footprint
    cycles: int
    confirm: Optional[Footprint] = None

    def rss_growth_second_half(self) -> int:
        growth = self.end.rss - self.middle.rss
        if self.confirm is not None:
            # A leak shows in every half-run; an arena mapped once shows in one of them.
            growth = min(growth, self.confirm.rss - self.end.rss)
        return growth

    def check_flat(self, rss_slack: int = RSS_SLACK) -> Optional[str]:
        """A description of what grew, or ``None`` when threads, fds and RSS stayed flat.

        Threads and fds must come back exactly to the warm-up figure; RSS may move by
        ``rss_slack`` bytes over a half-run of the cycles (allocator noise), which still
        catches a leak of a few KiB per cycle.
        """
        problems = []
        if self.end.threads != self.warm.threads:
            problems.append(f"threads {self.warm.threads} -> {self.end.threads}")
        if self.end.fds != self.warm.fds:
            problems.append(f"fds {self.warm.fds} -> {self.end.fds}")
        growth = self.rss_growth_second_half()
        if growth > rss_slack:
            per_cycle = growth / max(1, self.cycles // 2)
            problems.append(f"RSS +{growth / 1024:.0f} KiB over each of the last two runs of "
                            f"{self.cycles // 2} cycles ({per_cycle / 1024:.1f} KiB per cycle)")
        return "; ".join(problems) or None


def cycle(open_use_close: Callable[[int], Any], cycles: int = 200, warmup: int = 20) -> CycleResult:
    """Call ``open_use_close(i)`` ``warmup + cycles`` times and measure the footprint.

    ``open_use_close`` must open a client (or helper object), use it once, and close it. When
    RSS grew over the second half by more than :data:`CONFIRM_ABOVE`, another ``cycles // 2`` run confirms
    or clears it (see :attr:`CycleResult.confirm`).
    """
    for i in range(warmup):
        open_use_close(i)
    warm = Footprint.now()
    half = cycles // 2
    for i in range(half):
        open_use_close(warmup + i)
    middle = Footprint.now()
    for i in range(half, cycles):
        open_use_close(warmup + i)
    end = Footprint.now()
    result = CycleResult(warm=warm, middle=middle, end=end, cycles=cycles)
    if end.rss - middle.rss > CONFIRM_ABOVE:
        for i in range(cycles, cycles + half):
            open_use_close(warmup + i)
        result.confirm = Footprint.now()
    return result


def undocumented(call: Callable[[], Any],
                 allowed: Sequence[Type[BaseException]] = DOCUMENTED_ERRORS) -> Optional[BaseException]:
    """Run ``call``; return the exception it raised unless it is in ``allowed`` (or none)."""
    try:
        call()
    except tuple(allowed):
        return None
    except Exception as exc:  # the finding
        return exc
    return None


def run_on_io(client: Any, fn: Callable[..., Any], *args: Any) -> Any:
    """Run ``fn(session, *args)`` on ``client``'s I/O thread, as a frame handler runs there, and
    return what it returned (or raise what it raised). Blocks at most 10 s."""
    done = threading.Event()
    box: List[Any] = [None, None]
    session = client._session

    def go() -> None:
        try:
            box[0] = fn(session, *args)
        except BaseException as exc:  # handed to the test
            box[1] = exc
        finally:
            done.set()
    session.loop.call_soon_threadsafe(go)
    assert done.wait(10), "the I/O thread did not run the call"
    if box[1] is not None:
        raise box[1]
    return box[0]


@dataclass
class WriteOp:
    """One device-changing operation in a family's write-safety table.

    ``kind`` is ``"library"`` (``name`` is the client method, e.g. ``set_desired_temperature``)
    or ``"cli"`` (``name`` is the command line after the family, e.g. ``"set temp 22"``).
    The family's ``test_<family>_writes.py`` lists every one in ``WRITE_OPERATIONS`` and checks,
    for each, that it is refused without the opt-in with nothing sent, and (where the operation
    takes a value) that an out-of-limits value is refused before sending with a message naming
    the value, the limit and the unit. ``tests/conformance/test_write_table.py`` checks that
    every public device-changing method of every client appears in its family's table.
    """

    name: str
    kind: str = "library"
    note: str = ""
