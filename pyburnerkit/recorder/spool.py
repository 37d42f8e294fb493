"""A bounded on-disk queue that holds samples while a sink is down.

One SQLite file per sink. Items are kept in arrival order; :meth:`Spool.peek` hands out the
oldest ones, :meth:`Spool.ack` removes them once the sink confirmed the write, so a crash
between the two re-sends them (the database sinks ignore the duplicates by ``uid``).
When the spool is full (``max_items``), the oldest items are dropped: counted in
:attr:`Spool.dropped` and warned about, but :meth:`Spool.put` never blocks on a full spool.

When the *disk* is full or the file cannot be written (a read-only remount, a vanished disk),
:meth:`put`, :meth:`peek` and :meth:`probe` raise :class:`SpoolError` and change nothing: the
caller keeps its items (the sink worker holds them in memory and tries again later). The next
call reopens the file, so the spool works again as soon as the disk does.

Delivered items never wedge the spool. SQLite needs free space even to DELETE (in WAL mode it
appends every change to the ``-wal`` file, and a checkpoint needs room in the database file
for what the WAL holds), so on a disk the spool has filled with its own WAL, removing the
delivered items fails again and again. If :meth:`peek` then handed out the same oldest items,
nothing after them would ever be delivered. So an acknowledgement is kept in memory first
(``id <= acked``: never handed out again by this object) and removed from the file when the
disk allows (by the next successful write); once the file holds only delivered items, it is
given up instead (closed and unlinked, which needs no space) and a fresh one is created. A
crash before the removal sends those items again on the next run: the same at-least-once
window as a crash between writing a batch and acknowledging it (the database sinks store each
``uid`` once).

A spool belongs to one thread at a time (its sink's worker); it is not shared.
"""

from __future__ import annotations

import errno
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

__all__ = ["Spool", "SpoolError", "is_disk_full"]

_SQLITE_FULL = 13


class SpoolError(OSError):
    """The spool file could not be read or written (disk full, read-only, I/O error).

    Nothing was changed; ``full`` tells a full disk (space may come back) from other trouble.
    """

    def __init__(self, message: str, *, full: bool = False) -> None:
        super().__init__(message)
        self.full = full


def is_disk_full(exc: BaseException) -> bool:
    """Whether ``exc`` (an OSError or an sqlite3 error) means "no space left"."""
    if isinstance(exc, SpoolError):
        return exc.full
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, getattr(errno, "EDQUOT", -1)):
        return True
    code = getattr(exc, "sqlite_errorcode", None)
    if code is not None and code & 0xFF == _SQLITE_FULL:
        return True
    return "disk is full" in str(exc).lower() or "no space left" in str(exc).lower()


def _describe(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc) or type(exc).__name__


class Spool:
    """A file-backed FIFO of at most ``max_items`` items (drop-oldest when full).

    :raises ConfigurationError: the file exists but is not a spool, or the directory cannot
        be written. A disk that is merely full does not raise: the spool opens later.
    """

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
        #: why the last operation failed (None while the spool works)
        self.error: Optional[str] = None
        self._next_warning = 0.0
        self._unreported = 0
        self._lock_file = lock
        self._db: Optional[sqlite3.Connection] = None
        #: items put and not yet acknowledged (what __len__ says)
        self._count = 0
        #: every item with an id up to this one was acknowledged (delivered)
        self._acked = 0
        #: acknowledged items may still be in the file (their removal could not be written)
        self._acked_on_disk = False
        #: (last id, how many items) of the last peek: its ack needs no read of the file
        self._peeked: Optional[Tuple[int, int]] = None
        directory = os.path.dirname(os.path.abspath(path))
        try:
            os.makedirs(directory, exist_ok=True)
        except OSError as exc:
            raise _unwritable(directory, exc) from None
        try:
            self._open()
        except SpoolError as exc:
            if not exc.full:
                raise ConfigurationError(
                    f"spool file {path!r} cannot be used: {exc} (move it away, or set "
                    f"spool_dir to a writable directory)") from None
            # a full disk at start: record without a spool file for now, retry later
            self.error = str(exc)

    # -- the connection ------------------------------------------------------------------
    def _open(self) -> sqlite3.Connection:
        if self._db is not None:
            return self._db
        db = None
        try:
            db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            db.execute("CREATE TABLE IF NOT EXISTS spool "
                       "(id INTEGER PRIMARY KEY AUTOINCREMENT, row TEXT)")
            # undelivered only: a reopen after a failed removal must not count delivered ones
            count = db.execute("SELECT COUNT(*) FROM spool WHERE id > ?",
                               (self._acked,)).fetchone()[0]
        except (sqlite3.Error, OSError) as exc:
            if db is not None:
                db.close()
            error = SpoolError(f"cannot open {self.path}: {_describe(exc)}",
                               full=is_disk_full(exc))
            self.error = str(error)
            raise error from None
        self._db, self._count = db, count
        return db

    def _discard(self) -> None:
        """Give up a file that holds only delivered items (nothing pending) and start a fresh
        one: unlinking needs no free space, so this frees the disk even when SQLite cannot
        write a single page.

        :raises SpoolError: the file could not be removed or the new one not created.
        """
        db, self._db = self._db, None
        if db is not None:
            try:
                db.close()
            except sqlite3.Error:
                pass
        # the database first: a crash after it leaves a WAL without its database, which SQLite
        # deletes when it creates the new (empty) one; never a database without the WAL it
        # depends on (a checkpoint that failed half-way leaves the two inconsistent)
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise self._broken("remove", exc) from None
        # the database is gone: ids start again at 1 in the next one
        self._acked, self._acked_on_disk, self._peeked = 0, False, None
        for suffix in ("-wal", "-shm"):
            try:
                os.unlink(self.path + suffix)
            except OSError:
                pass  # left behind, they are discarded when the new database is created
        log.info("spool %s held only delivered items but could not be updated; started a "
                 "fresh file", self.name)
        self._open()

    def _broken(self, action: str, exc: BaseException) -> SpoolError:
        """Close the connection after a failure (it may be unusable; the next call reopens
        it) and describe what went wrong."""
        db, self._db = self._db, None
        if db is not None:
            try:
                if db.in_transaction:
                    db.execute("ROLLBACK")
            except sqlite3.Error:
                pass
            try:
                db.close()
            except sqlite3.Error:
                pass
        error = SpoolError(f"cannot {action} {self.path}: {_describe(exc)}",
                           full=is_disk_full(exc))
        self.error = str(error)
        return error

    def __len__(self) -> int:
        return self._count

    @property
    def healthy(self) -> bool:
        return self.error is None

    # -- queue operations ----------------------------------------------------------------
    def put(self, items: Sequence[Item]) -> int:
        """Append ``items``; when over the limit drop the oldest. Returns how many were dropped.

        :raises SpoolError: the file cannot be written (disk full...); nothing was changed.
        """
        if not items:
            return 0
        rows = [(json.dumps(sample_to_row(item), separators=(",", ":")),) for item in items]
        try:
            return self._put_rows(rows)
        except SpoolError:
            if not self._discard_if_only_delivered():
                raise
        return self._put_rows(rows)  # on the fresh file

    def _discard_if_only_delivered(self) -> bool:
        """After a failed write: when the file holds nothing but delivered items (which could
        not be removed), discard it. Returns whether it did (the caller may try again once).

        :raises SpoolError: the fresh file cannot be created either.
        """
        if self._count or not self._acked_on_disk:
            return False
        self._discard()
        return True

    def _put_rows(self, rows: List[Tuple[str]]) -> int:
        try:
            db = self._open()
            count = self._count
            excess = count + len(rows) - self.max_items
            dropped = 0
            if excess > 0 and len(rows) > self.max_items:  # this batch alone overflows
                dropped += len(rows) - self.max_items
                rows = rows[-self.max_items:]
                excess = count + len(rows) - self.max_items
            db.execute("BEGIN")
            self._delete_acked(db)  # their pages are reused instead of growing the file
            if excess > 0:
                db.execute(
                    "DELETE FROM spool WHERE id IN (SELECT id FROM spool WHERE id > ? "
                    "ORDER BY id LIMIT ?)", (self._acked, excess))
                dropped += excess
                count -= excess
                self._peeked = None  # it may have dropped items of the last peek
            db.executemany("INSERT INTO spool (row) VALUES (?)", rows)
            db.execute("COMMIT")
        except SpoolError:
            raise
        except (sqlite3.Error, OSError) as exc:
            raise self._broken("write", exc) from None
        # counted only once committed: a failed write changes nothing
        self._count = count + len(rows)
        self._acked_on_disk = False
        self.error = None
        if dropped:
            self._note_dropped(dropped)
        return dropped

    def _note_dropped(self, dropped: int) -> None:
        self.dropped += dropped
        self._unreported += dropped
        now = time.monotonic()
        if now >= self._next_warning:  # at most one warning per interval: no log flood
            log.warning("spool %s is full (%d items): dropped the %d oldest (%d dropped "
                        "so far)", self.name, self.max_items, self._unreported, self.dropped)
            self._unreported = 0
            self._next_warning = now + self.warn_interval

    def peek(self, limit: int) -> Tuple[int, List[Item]]:
        """The oldest ``limit`` items and the id to :meth:`ack` them with (0 if empty).

        :raises SpoolError: the file cannot be read.
        """
        try:
            rows = self._open().execute(
                "SELECT id, row FROM spool WHERE id > ? ORDER BY id LIMIT ?",
                (self._acked, limit)).fetchall()
        except SpoolError:
            raise
        except (sqlite3.Error, OSError) as exc:
            raise self._broken("read", exc) from None
        if not rows:
            self._count = 0  # nothing pending, whatever the count said: never spin on it
            return 0, []
        self._peeked = (rows[-1][0], len(rows))
        return rows[-1][0], [sample_from_row(json.loads(r)) for _, r in rows]

    def ack(self, last_id: int) -> None:
        """Every item up to and including ``last_id`` was written: never hand them out again,
        and remove them from the file.

        :raises SpoolError: their removal could not be written (disk full): they stay
            acknowledged all the same, are removed by a later write, and the file is discarded
            once it holds only delivered items; only a crash before that sends them again.
            (For an id other than the last :meth:`peek`'s, also when they cannot be counted;
            then nothing changed and they are handed out again.)
        """
        if last_id <= self._acked:
            return
        acked = self._count_up_to(last_id)
        # from here on the acknowledgement holds, whether or not the file can be updated
        self._acked, self._acked_on_disk = last_id, True
        self._count = max(0, self._count - acked)
        try:
            db = self._open()
            db.execute("BEGIN")
            self._delete_acked(db)
            db.execute("COMMIT")
        except (sqlite3.Error, OSError) as exc:  # SpoolError is an OSError
            error = exc if isinstance(exc, SpoolError) else self._broken("update", exc)
            if not self._discard_if_only_delivered():
                raise error from None
        else:
            self._acked_on_disk = False
        self.error = None

    def _count_up_to(self, last_id: int) -> int:
        """How many undelivered items have an id up to ``last_id``; for the last peek's id
        known without reading the file, so acknowledging what was peeked cannot fail."""
        peeked, self._peeked = self._peeked, None
        if peeked is not None and peeked[0] == last_id:
            return peeked[1]
        try:
            return int(self._open().execute(
                "SELECT COUNT(*) FROM spool WHERE id > ? AND id <= ?",
                (self._acked, last_id)).fetchone()[0])
        except SpoolError:
            raise
        except (sqlite3.Error, OSError) as exc:
            raise self._broken("read", exc) from None

    def _delete_acked(self, db: sqlite3.Connection) -> None:
        """Remove acknowledged items (inside the caller's transaction); counted as removed
        only when the caller commits and clears ``_acked_on_disk``."""
        if self._acked_on_disk:
            db.execute("DELETE FROM spool WHERE id <= ?", (self._acked,))

    def probe(self) -> None:
        """Commit a tiny write (and undo it) to see whether the file can be written again.

        :raises SpoolError: it still cannot.
        """
        try:
            self._probe()
        except SpoolError:
            if not self._discard_if_only_delivered():
                raise
            self._probe()  # on the fresh file
        self.error = None

    def _probe(self) -> None:
        try:
            db = self._open()
            db.execute("BEGIN")
            self._delete_acked(db)
            cur = db.execute("INSERT INTO spool (row) VALUES ('probe')")
            db.execute("DELETE FROM spool WHERE id = ?", (cur.lastrowid,))
            db.execute("COMMIT")
        except SpoolError:
            raise
        except (sqlite3.Error, OSError) as exc:
            raise self._broken("write", exc) from None
        self._acked_on_disk = False

    def close(self) -> None:
        db, self._db = self._db, None
        if db is not None:
            try:
                db.close()
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

        :raises ConfigurationError: ``directory`` cannot be created or written (read-only, a
            plain file in the way, no permission), in one line that names it.
        """
        from .samples import slug
        try:
            os.makedirs(directory, exist_ok=True)
        except OSError as exc:
            raise _unwritable(directory, exc) from None
        digest = hashlib.sha1(identity.encode("utf-8")).hexdigest()[:10]
        base = os.path.join(directory, f"{slug(name)}-{digest}")
        for n in range(0, 1000):
            path = f"{base}.spool" if n == 0 else f"{base}-{n}.spool"
            try:
                lock = _try_lock(path + ".lock")
            except OSError as exc:
                raise _unwritable(directory, exc) from None
            if lock is not None:
                try:
                    return cls(path, max_items, name=name, lock=lock)
                except BaseException:  # e.g. a corrupt spool file: do not keep the lock open
                    lock.close()
                    raise
        raise ConfigurationError(f"no free spool file for sink {name!r} in {directory!r}")


def _unwritable(directory: str, exc: OSError) -> ConfigurationError:
    return ConfigurationError(
        f"spool directory {directory!r} is not writable: {_describe(exc)} (set spool_dir / "
        f"[recorder] spool_dir to a writable directory)")


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
