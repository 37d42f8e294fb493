"""A bounded on-disk queue that holds samples while a sink is down.

One SQLite file per sink. Items are kept in arrival order; :meth:`Spool.peek` hands out the
oldest ones, :meth:`Spool.ack` removes them once the sink confirmed the write, so a crash
between the two re-sends them (the database sinks ignore the duplicates by ``uid``).
When the spool is full, the oldest items are dropped: counted in :attr:`Spool.dropped` and
warned about, but :meth:`Spool.put` never blocks on a full spool.

A spool belongs to one thread at a time (its sink's worker); it is not shared.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import sqlite3
import time
from typing import Any, List, Optional, Sequence, Tuple, Union

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: no cross-process spool lock
    fcntl = None  # type: ignore[assignment]

from ..errors import ConfigurationError
from .samples import Message, Sample, sample_from_row, sample_to_row

log = logging.getLogger(__name__)

Item = Union[Sample, Message]


class Spool:
    """A file-backed FIFO of at most ``max_items`` items (drop-oldest when full)."""

    def __init__(self, path: str, max_items: int = 1_000_000, *, name: str = "",
                 lock: Any = None) -> None:
        if isinstance(max_items, bool) or not isinstance(max_items, int) or max_items < 1:
            raise ConfigurationError(
                f"spool max_items must be a whole number >= 1 (items), got {max_items!r}")
        self.path = path
        self.name = name or os.path.basename(path)
        self.max_items = max_items
        self.dropped = 0
        #: seconds between two "spool is full" warnings (the count covers the whole interval)
        self.warn_interval = 10.0
        self._next_warning = 0.0
        self._unreported = 0
        self._lock_file = lock
        directory = os.path.dirname(os.path.abspath(path))
        os.makedirs(directory, exist_ok=True)
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS spool (id INTEGER PRIMARY KEY AUTOINCREMENT, row TEXT)")
        self._count = self._db.execute("SELECT COUNT(*) FROM spool").fetchone()[0]

    def __len__(self) -> int:
        return self._count

    def put(self, items: Sequence[Item]) -> int:
        """Append ``items``; when over the limit drop the oldest. Returns how many were dropped."""
        if not items:
            return 0
        rows = [(json.dumps(sample_to_row(item), separators=(",", ":")),) for item in items]
        excess = self._count + len(rows) - self.max_items
        dropped = 0
        with self._db:
            self._db.execute("BEGIN")
            if excess > 0:
                if len(rows) > self.max_items:  # this batch alone overflows: keep its newest
                    dropped += len(rows) - self.max_items
                    rows = rows[-self.max_items:]
                    excess = self._count + len(rows) - self.max_items
                if excess > 0:
                    self._db.execute(
                        "DELETE FROM spool WHERE id IN (SELECT id FROM spool ORDER BY id LIMIT ?)",
                        (excess,))
                    dropped += excess
                    self._count -= excess
            self._db.executemany("INSERT INTO spool (row) VALUES (?)", rows)
        self._count += len(rows)
        if dropped:
            self.dropped += dropped
            self._unreported += dropped
            now = time.monotonic()
            if now >= self._next_warning:  # at most one warning per interval: no log flood
                log.warning("spool %s is full (%d items): dropped the %d oldest (%d dropped "
                            "so far)", self.name, self.max_items, self._unreported,
                            self.dropped)
                self._unreported = 0
                self._next_warning = now + self.warn_interval
        return dropped

    def peek(self, limit: int) -> Tuple[int, List[Item]]:
        """The oldest ``limit`` items and the id to :meth:`ack` them with (0 if empty)."""
        rows = self._db.execute("SELECT id, row FROM spool ORDER BY id LIMIT ?",
                                (limit,)).fetchall()
        if not rows:
            return 0, []
        return rows[-1][0], [sample_from_row(json.loads(r)) for _, r in rows]

    def ack(self, last_id: int) -> None:
        """Remove every item up to and including ``last_id`` (they were written)."""
        if last_id <= 0:
            return
        with self._db:
            cur = self._db.execute("DELETE FROM spool WHERE id <= ?", (last_id,))
        self._count = max(0, self._count - cur.rowcount)

    def close(self) -> None:
        try:
            self._db.close()
        except sqlite3.Error:
            pass
        lock, self._lock_file = self._lock_file, None
        if lock is not None:
            lock.close()  # releases the flock

    @classmethod
    def for_sink(cls, directory: str, name: str, identity: str,
                 max_items: int = 1_000_000) -> "Spool":
        """The spool of the sink ``name`` writing to ``identity`` (a path, a redacted DSN, a
        broker address), locked against other recorders.

        The file is ``<name>-<hash of identity>.spool``: two recorders writing to different
        targets never drain into each other's. If another running recorder holds that spool,
        the next free ``...-<n>.spool`` is used (and drained by whoever opens it later).
        """
        from .samples import slug
        os.makedirs(directory, exist_ok=True)
        digest = hashlib.sha1(identity.encode("utf-8")).hexdigest()[:10]
        base = os.path.join(directory, f"{slug(name)}-{digest}")
        for n in range(0, 1000):
            path = f"{base}.spool" if n == 0 else f"{base}-{n}.spool"
            lock = _try_lock(path + ".lock")
            if lock is not None:
                try:
                    return cls(path, max_items, name=name, lock=lock)
                except BaseException:  # e.g. a corrupt spool file: do not keep the lock open
                    lock.close()
                    raise
        raise ConfigurationError(f"no free spool file for sink {name!r} in {directory!r}")


def _try_lock(path: str) -> Optional[Any]:
    handle = open(path, "a+")
    if fcntl is None:  # pragma: no cover
        return handle
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        handle.close()
        return None
    return handle
