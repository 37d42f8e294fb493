"""A profile library: store, list and select DE1 profiles by id, as pyDE1 does.

>>> from pyburnerkit.de1.library import ProfileLibrary
>>> lib = ProfileLibrary("pyburnerkit.db")                  # doctest: +SKIP
>>> entry = lib.store(open("best.json", "rb").read())       # doctest: +SKIP
>>> de1.upload_profile_by_id(entry.id, lib)                 # doctest: +SKIP

A profile's id is pyDE1's: the SHA-1 (hex) of its JSON source exactly as it was given (the
bytes, or a text encoded as UTF-8; a dict is stored as its canonical JSON, keys sorted, no
spaces added by pyburnerkit beyond ``json.dumps``'s defaults). Storing the same source twice
keeps one entry; a re-formatted file is another id, as in pyDE1.

The library lives in SQLite, by default in the recorder's database (``pyburnerkit.db``), in
pyDE1's own tables: ``profile`` (id, source, source_format, fingerprint, date_added, title,
author, notes, beverage_type) and ``persist_hkv`` (the last selected profile under
``header='last_profile'``). SQL written against pyDE1's database therefore runs against it, and
a pyDE1 database (``/var/lib/pyde1/pyde1.sqlite3``) can be opened as a library. The
``fingerprint`` column is the SHA-1 of the wire program pyburnerkit uploads, which differs from
pyDE1's for the same profile (pyburnerkit writes a zero tail and MaximumFlow 6, spec 4.2).

Threads: every method is safe from any thread; each opens its own short SQLite connection (so
nothing is shared between threads) and blocks until SQLite answered, waiting at most
``timeout`` seconds for a lock another writer holds. None of it runs on a client's I/O thread:
:meth:`~pyburnerkit.de1.DE1Client.upload_profile_by_id` reads the library on the
calling thread before anything is sent.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Iterator, List, Mapping, Optional, Union

from ..errors import ConfigurationError, PyBurnerKitError, check_range
from .profile import Program, load

__all__ = ["DEFAULT_PATH", "ProfileLibrary", "ProfileNotFoundError", "StoredProfile",
           "profile_source"]

#: The recorder's default SQLite database.
DEFAULT_PATH = "pyburnerkit.db"
#: pyDE1's name for the only source format it stores.
SOURCE_FORMAT = "JSONv2"

_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS profile (
        id              TEXT NOT NULL PRIMARY KEY,
        source          BLOB NOT NULL,
        source_format   TEXT NOT NULL,
        fingerprint     TEXT NOT NULL,
        date_added      REAL,
        title           TEXT,
        author          TEXT,
        notes           TEXT,
        beverage_type   TEXT)""",
    "CREATE INDEX IF NOT EXISTS idx_profile_fingerprint ON profile(fingerprint)",
    "CREATE INDEX IF NOT EXISTS idx_profile_date_added ON profile(date_added)",
    "CREATE INDEX IF NOT EXISTS idx_profile_title ON profile(title)",
    "CREATE INDEX IF NOT EXISTS idx_profile_beverage_type ON profile(beverage_type)",
    "CREATE TABLE IF NOT EXISTS persist_hkv (header TEXT, key TEXT NOT NULL, value TEXT)",
    "CREATE UNIQUE INDEX IF NOT EXISTS idx_persist_hkv_hk ON persist_hkv(header, key)",
)
#: pyDE1 seeds its database with a placeholder row of this id; it is never a real profile.
_PLACEHOLDER = "dummy"


class ProfileNotFoundError(ConfigurationError, KeyError):
    """No profile with that id in the library (pyDE1 answers 404 here)."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


@dataclass(frozen=True)
class StoredProfile:
    """One library entry: pyDE1's ``profile`` row."""

    id: str
    fingerprint: str
    title: str
    author: str
    notes: str
    beverage_type: str
    date_added: float
    source_format: str = SOURCE_FORMAT
    source: bytes = field(default=b"", repr=False)

    def program(self) -> Program:
        """The profile compiled for upload.

        :raises ConfigurationError: the stored source is not a valid JSON v2 profile.
        """
        if self.source_format != SOURCE_FORMAT:
            raise ConfigurationError(f"profile {self.id} is stored as {self.source_format!r}: "
                                     f"only {SOURCE_FORMAT} profiles can be uploaded")
        return load(self.source)


def profile_source(profile: Union[bytes, bytearray, str, Mapping[str, Any], Program]) -> bytes:
    """The bytes a profile's id is the SHA-1 of: bytes as given, JSON text as UTF-8, a path
    as the file's bytes, a dict as canonical JSON (keys sorted), a
    :class:`~pyburnerkit.de1.profile.Program` as the source it was loaded from.

    :raises ConfigurationError: an unreadable file or anything else.
    """
    if isinstance(profile, (bytes, bytearray)):
        return bytes(profile)
    if isinstance(profile, Program):
        if profile.raw:
            return profile.raw
        return json.dumps(dict(profile.source), sort_keys=True).encode("utf-8")
    if isinstance(profile, str):
        if profile.lstrip().startswith("{"):
            return profile.encode("utf-8")
        try:  # a path: the file's bytes, as pyDE1 hashes them
            with open(profile, "rb") as fh:
                return fh.read()
        except OSError as exc:
            raise ConfigurationError(f"cannot read profile file {profile!r}: {exc}") from exc
    if isinstance(profile, Mapping):
        return json.dumps(dict(profile), sort_keys=True).encode("utf-8")
    raise ConfigurationError(f"a profile must be JSON bytes or text, a dict or a Program, got "
                             f"{type(profile).__name__}")


class ProfileLibrary:
    """Profiles stored by id in SQLite (pyDE1's ``profile`` table).

    :param path: the SQLite file (default: the recorder's ``pyburnerkit.db``); ``":memory:"``
        is refused (every call opens its own connection, so it would always be empty).
    :param timeout: seconds to wait for a lock another writer holds (finite, 0.1..600 s).
    :raises ConfigurationError: a bad path or timeout. The constructor touches no file; the
        tables are created on first use.
    """

    def __init__(self, path: str = DEFAULT_PATH, *, timeout: float = 10.0) -> None:
        if not isinstance(path, str) or not path or path == ":memory:":
            raise ConfigurationError(f"profile library path {path!r}: give a file path")
        self.path = path
        self.timeout = float(check_range("timeout", timeout, 0.1, 600, "s"))
        self._ready = False
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"ProfileLibrary({self.path!r})"

    # ------------------------------------------------------------------ plumbing
    def _connect(self) -> sqlite3.Connection:
        try:
            db = sqlite3.connect(self.path, timeout=self.timeout)
        except sqlite3.Error as exc:
            raise PyBurnerKitError(f"cannot open the profile library {self.path!r}: "
                                   f"{exc}") from exc
        if not self._ready:
            with self._lock:
                if not self._ready:
                    try:
                        db.execute("PRAGMA journal_mode=WAL")
                        with db:
                            for statement in _SCHEMA:
                                db.execute(statement)
                    except sqlite3.Error as exc:
                        db.close()
                        raise PyBurnerKitError(f"cannot create the profile tables in "
                                               f"{self.path!r}: {exc}") from exc
                    self._ready = True
        return db

    def _query(self, sql: str, args: Any = ()) -> List[Any]:
        db = self._connect()
        try:
            with db:
                return list(db.execute(sql, args).fetchall())
        except sqlite3.Error as exc:
            raise PyBurnerKitError(f"profile library {self.path!r}: {exc}") from exc
        finally:
            db.close()

    _COLUMNS = ("id, fingerprint, title, author, notes, beverage_type, date_added, "
                "source_format")

    @staticmethod
    def _entry(row: Any, source: bytes = b"") -> StoredProfile:
        pid, fingerprint, title, author, notes, beverage, added, fmt = row
        return StoredProfile(str(pid), str(fingerprint or ""), str(title or ""),
                             str(author or ""), str(notes or ""), str(beverage or ""),
                             float(added or 0.0), str(fmt or ""), source)

    # ------------------------------------------------------------------ API
    def store(self, profile: Union[bytes, bytearray, str, Mapping[str, Any], Program]
              ) -> StoredProfile:
        """Validate a JSON v2 profile and store it under its id (pyDE1's
        ``de1/profile/store``). Storing a source that is already there changes nothing.
        Blocks until SQLite committed.

        :returns: the entry (with its source).
        :raises ConfigurationError: not a valid JSON v2 profile (nothing is stored).
        """
        source = profile_source(profile)
        program = load(source)
        meta = program.source
        self._query("INSERT OR IGNORE INTO profile (id, source, source_format, fingerprint, "
                    "date_added, title, author, notes, beverage_type) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (program.profile_id, source, SOURCE_FORMAT, program.fingerprint,
                     time.time(), str(meta.get("title", "") or ""),
                     str(meta.get("author", "") or ""), str(meta.get("notes", "") or ""),
                     str(meta.get("beverage_type", "espresso") or "")))
        return self.get(program.profile_id)

    def get(self, profile_id: str) -> StoredProfile:
        """The entry with this id, with its source.

        :raises ProfileNotFoundError: no such id.
        """
        rows = self._query(f"SELECT {self._COLUMNS}, source FROM profile WHERE id = ?",
                           (str(profile_id),))
        if not rows or profile_id == _PLACEHOLDER:
            raise ProfileNotFoundError(f"no profile with id {profile_id!r} in {self.path!r}")
        *row, source = rows[0]
        return self._entry(row, bytes(source) if isinstance(source, (bytes, bytearray))
                           else str(source).encode("utf-8"))

    def source(self, profile_id: str) -> bytes:
        """The stored JSON source of a profile, byte for byte.

        :raises ProfileNotFoundError: no such id.
        """
        return self.get(profile_id).source

    def program(self, profile_id: str) -> Program:
        """A stored profile compiled for upload.

        :raises ProfileNotFoundError: no such id.
        """
        return self.get(profile_id).program()

    def list(self) -> List[StoredProfile]:
        """Every stored profile, newest first (without their sources)."""
        rows = self._query(f"SELECT {self._COLUMNS} FROM profile WHERE id != ? "
                           f"ORDER BY date_added DESC, id", (_PLACEHOLDER,))
        return [self._entry(row) for row in rows]

    def select(self, profile_id: str) -> StoredProfile:
        """Remember ``profile_id`` as the selected (last uploaded) profile, as pyDE1's
        ``persist_hkv`` ``last_profile`` does. Sends nothing to a DE1: uploading is
        :meth:`~pyburnerkit.de1.DE1Client.upload_profile_by_id`, which calls this once the DE1
        took it.

        :raises ProfileNotFoundError: no such id.
        """
        entry = self.get(profile_id)
        now = time.time()
        self._query("INSERT OR REPLACE INTO persist_hkv (header, key, value) VALUES "
                    "('last_profile', 'id', ?), ('last_profile', 'datetime', ?)",
                    (entry.id, str(now)))
        return entry

    @property
    def selected(self) -> Optional[str]:
        """The id of the last selected profile, or None."""
        rows = self._query("SELECT value FROM persist_hkv WHERE header = 'last_profile' "
                           "AND key = 'id'")
        value = rows[0][0] if rows else None
        return None if value in (None, "", _PLACEHOLDER) else str(value)

    def delete(self, profile_id: str) -> None:
        """Remove a profile (pyDE1 has no such call; its shot history refers to profiles, so
        do not delete from a database pyDE1 still uses).

        :raises ProfileNotFoundError: no such id.
        """
        self.get(profile_id)
        self._query("DELETE FROM profile WHERE id = ?", (str(profile_id),))

    def __contains__(self, profile_id: object) -> bool:
        if not isinstance(profile_id, str) or profile_id == _PLACEHOLDER:
            return False
        return bool(self._query("SELECT 1 FROM profile WHERE id = ?", (profile_id,)))

    def __len__(self) -> int:
        rows = self._query("SELECT COUNT(*) FROM profile WHERE id != ?", (_PLACEHOLDER,))
        return int(rows[0][0])

    def __iter__(self) -> Iterator[StoredProfile]:
        return iter(self.list())
