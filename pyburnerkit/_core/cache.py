"""The state cache: the latest immutable snapshot per topic, readable from any thread."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Dict, Iterable, Mapping, Optional, Tuple, TypeVar

from .timeouts import Deadline

T = TypeVar("T")


@dataclass(frozen=True)
class Snapshot:
    """One cached value: what the device last said, when (UTC epoch seconds), and if stale.

    ``stale`` is True while the link is down or being re-established: the value is the last one
    seen, not a live one.
    """

    topic: str
    value: Any
    updated_at: float
    stale: bool = False


class StateCache:
    """Topic -> :class:`Snapshot`. Only the session thread writes; any thread reads.

    Readers never block: writers replace the whole mapping (copy-on-write), so a reader always
    sees one consistent generation. :meth:`wait_for` blocks on a condition variable that every
    write notifies, so waiting costs nothing until something changes.
    """

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._entries: Dict[str, Snapshot] = {}
        self._cond = threading.Condition()
        self._clock = clock
        self.generation = 0

    # -- readers (any thread) ---------------------------------------------------------------
    def get(self, topic: str) -> Optional[Snapshot]:
        return self._entries.get(topic)

    def value(self, topic: str, default: Any = None) -> Any:
        snap = self._entries.get(topic)
        return default if snap is None else snap.value

    def snapshot(self) -> Mapping[str, Snapshot]:
        """Every entry of one generation (a read-only view that later writes do not change)."""
        return dict(self._entries)

    def is_stale(self, topic: Optional[str] = None) -> bool:
        """True when ``topic`` (or, with no topic, any entry) is stale or absent."""
        entries = self._entries
        if topic is not None:
            snap = entries.get(topic)
            return snap is None or snap.stale
        return not entries or any(s.stale for s in entries.values())

    def wait_for(self, predicate: Callable[["StateCache"], T], timeout: Optional[float]) -> T:
        """Block until ``predicate(cache)`` is truthy and return its value.

        The predicate runs on the calling thread with no lock held (it may call anything,
        even a blocking client method), once at the start and again after every write.

        :param timeout: seconds, or None to wait forever.
        :returns: the truthy predicate value, or the last falsy one when the timeout passed.
        """
        deadline = Deadline(timeout)
        while True:
            with self._cond:
                seen = self.generation
            result = predicate(self)
            if result:
                return result
            with self._cond:
                while self.generation == seen:
                    left = deadline.remaining()
                    if left is not None and left <= 0:
                        return result
                    self._cond.wait(left)

    # -- writers (session thread) -----------------------------------------------------------
    def update(self, items: Iterable[Tuple[str, Any]], *, at: Optional[float] = None) -> None:
        """Store fresh values for several topics in one generation."""
        when = self._clock() if at is None else at
        new = dict(self._entries)
        for topic, value in items:
            new[topic] = Snapshot(topic, value, when, False)
        self._publish(new)

    def set(self, topic: str, value: Any, *, at: Optional[float] = None) -> None:
        self.update(((topic, value),), at=at)

    def mark_stale(self) -> None:
        """Keep every value readable but flag it as not live (the link is down)."""
        new = {k: Snapshot(s.topic, s.value, s.updated_at, True) for k, s in self._entries.items()}
        self._publish(new)

    def notify(self) -> None:
        """Wake waiters without a change (used when the client closes)."""
        with self._cond:
            self.generation += 1
            self._cond.notify_all()

    def _publish(self, new: Dict[str, Snapshot]) -> None:
        with self._cond:
            self._entries = new
            self.generation += 1
            self._cond.notify_all()
