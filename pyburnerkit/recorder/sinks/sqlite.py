"""The default sink: one SQLite file in WAL mode (readable while recording).

Schema (long format, one row per sample)::

    samples(id INTEGER PRIMARY KEY, uid TEXT UNIQUE, ts REAL  -- UTC epoch seconds,
            family TEXT, device TEXT, channel TEXT, field TEXT, value, unit TEXT, text TEXT)
    devices(family, device, channel, first_seen, view)       -- one row per device
    "device_<family>_<device>"                               -- one view per device

``value`` holds numbers as numbers and text as text (SQLite keeps each value's type); ``text`` is
the name of an enumerated value. Writes are ``INSERT OR IGNORE`` on ``uid``: a batch written
twice is stored once.
"""

from __future__ import annotations

import os
import sqlite3
from typing import Any, Dict, Iterator, List, Optional, Sequence, Set, Tuple

from ..._core.extras import require
from ...errors import ConfigurationError
from ..samples import Sample, slug
from .base import Item, Sink

SCHEMA = """
CREATE TABLE IF NOT EXISTS samples (
    id INTEGER PRIMARY KEY,
    uid TEXT NOT NULL,
    ts REAL NOT NULL,
    family TEXT NOT NULL,
    device TEXT NOT NULL,
    channel TEXT NOT NULL DEFAULT '',
    field TEXT NOT NULL,
    value,
    unit TEXT NOT NULL DEFAULT '',
    text TEXT
);
CREATE UNIQUE INDEX IF NOT EXISTS samples_uid ON samples (uid);
CREATE INDEX IF NOT EXISTS samples_device_ts ON samples (family, device, channel, ts);
CREATE TABLE IF NOT EXISTS devices (
    family TEXT NOT NULL,
    device TEXT NOT NULL,
    channel TEXT NOT NULL DEFAULT '',
    first_seen REAL NOT NULL,
    view TEXT NOT NULL,
    PRIMARY KEY (family, device, channel)
);
"""

COLUMNS = ("uid", "ts", "family", "device", "channel", "field", "value", "unit", "text")


def _quote_literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def view_name(family: str, device: str) -> str:
    return f"device_{slug(family)}_{slug(device)}"


class SQLiteSink(Sink):
    """Record into ``path`` (created with its schema on first use).

    :param path: the database file (default ``pyburnerkit.db`` in the working directory).
    :param synchronous: SQLite's ``synchronous`` pragma; ``NORMAL`` is safe in WAL mode
        (a power cut may lose the last transaction, never corrupt the file).
    """

    def __init__(self, path: str = "pyburnerkit.db", *, name: str = "sqlite",
                 synchronous: str = "NORMAL") -> None:
        if not isinstance(path, str) or not path:
            raise ConfigurationError(f"SQLite path must be a file name, got {path!r}")
        if not isinstance(synchronous, str) or \
                synchronous.upper() not in ("OFF", "NORMAL", "FULL", "EXTRA"):
            raise ConfigurationError(
                f"synchronous={synchronous!r} must be one of OFF, NORMAL, FULL, EXTRA")
        self.path = path
        self.name = name
        self.synchronous = synchronous.upper()
        self._db: Optional[sqlite3.Connection] = None
        self._views: Set[Tuple[str, str, str]] = set()

    def identity(self) -> str:
        return f"sqlite:{os.path.abspath(self.path)}"

    def open(self) -> None:
        directory = os.path.dirname(os.path.abspath(self.path))
        os.makedirs(directory, exist_ok=True)
        db = sqlite3.connect(self.path, isolation_level=None, timeout=10.0)
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute(f"PRAGMA synchronous={self.synchronous}")
            db.executescript(SCHEMA)
            self._views = {(f, d, c) for f, d, c in
                           db.execute("SELECT family, device, channel FROM devices")}
        except sqlite3.Error:
            db.close()
            raise
        self._db = db

    def write(self, items: Sequence[Item]) -> None:
        db = self._db
        if db is None:
            raise sqlite3.OperationalError("the SQLite sink is not open")
        rows = [(s.uid, s.timestamp, s.family, s.device, s.channel, s.field, s.value, s.unit,
                 s.text) for s in items if isinstance(s, Sample)]
        if not rows:
            return
        new = {(r[2], r[3], r[4]): r[1] for r in rows if (r[2], r[3], r[4]) not in self._views}
        db.execute("BEGIN")
        try:
            db.executemany(
                "INSERT OR IGNORE INTO samples (uid, ts, family, device, channel, field, value, "
                "unit, text) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
            for (family, device, channel), ts in new.items():
                view = view_name(family, device)
                db.execute(
                    "INSERT OR IGNORE INTO devices (family, device, channel, first_seen, view) "
                    "VALUES (?, ?, ?, ?, ?)", (family, device, channel, ts, view))
                db.execute(
                    f'CREATE VIEW IF NOT EXISTS "{view}" AS SELECT '
                    "strftime('%Y-%m-%d %H:%M:%f', ts, 'unixepoch') AS time_utc, ts, channel, "
                    f"field, value, unit, text FROM samples "
                    f"WHERE family = {_quote_literal(family)} "
                    f"AND device = {_quote_literal(device)}")
            db.execute("COMMIT")
        except BaseException:
            try:
                db.execute("ROLLBACK")
            except sqlite3.Error:
                pass
            raise
        self._views.update(new)

    def close(self) -> None:
        db, self._db = self._db, None
        if db is not None:
            try:
                db.close()
            except sqlite3.Error:
                pass

    def to_dataframe(self, **filters: Any) -> Any:
        """The recording as a pandas DataFrame (see :func:`to_dataframe`; ``wide=True`` for
        one column per field)."""
        return to_dataframe(self.path, **filters)

    def plot(self, **filters: Any) -> Any:
        """Plot the recording's numeric fields over time (see :func:`plot_recording`;
        needs ``pyburnerkit[plot]``)."""
        return plot_recording(self.path, **filters)


# ---------------------------------------------------------------------------------- reading
def _query(family: Optional[str], device: Optional[str], field: Optional[str],
           since: Optional[float], until: Optional[float]) -> Tuple[str, List[Any]]:
    where: List[str] = []
    args: List[Any] = []
    for column, value in (("family", family), ("device", device), ("field", field)):
        if value is not None:
            where.append(f"{column} = ?")
            args.append(value)
    if since is not None:
        where.append("ts >= ?")
        args.append(since)
    if until is not None:
        where.append("ts < ?")
        args.append(until)
    sql = f"SELECT {', '.join(COLUMNS)} FROM samples"
    if where:
        sql += " WHERE " + " AND ".join(where)
    return sql + " ORDER BY ts, id", args


def _connect_ro(path: str) -> sqlite3.Connection:
    if not os.path.exists(path):
        raise ConfigurationError(f"no recording at {path!r} (file not found)")
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10.0)
    try:
        db.execute("SELECT 1 FROM samples LIMIT 1")
    except sqlite3.DatabaseError as exc:
        db.close()
        raise ConfigurationError(f"{path!r} is not a pyburnerkit recording ({exc})") from exc
    return db


def read_samples(path: str, *, family: Optional[str] = None, device: Optional[str] = None,
                 field: Optional[str] = None, since: Optional[float] = None,
                 until: Optional[float] = None) -> Iterator[Dict[str, Any]]:
    """Iterate over the rows of a recording as dicts, oldest first (safe while recording)."""
    db = _connect_ro(path)
    try:
        sql, args = _query(family, device, field, since, until)
        cur = db.execute(sql, args)
        while True:
            rows = cur.fetchmany(5000)
            if not rows:
                return
            for row in rows:
                yield dict(zip(COLUMNS, row))
    finally:
        db.close()


def to_dataframe(path: str, *, family: Optional[str] = None, device: Optional[str] = None,
                 field: Optional[str] = None, since: Optional[float] = None,
                 until: Optional[float] = None, wide: bool = False) -> Any:
    """A recording as a pandas DataFrame (needs ``pip install "pyburnerkit[pandas]"``).

    Blocks while it reads the file (safe while recording: a read-only connection).

    **Long form** (the default, one row per sample): ``time`` (UTC datetime), then the
    stored columns. ``value`` is always numeric (``float64``; NaN where the sample is text),
    so ``df.pivot_table(index="time", columns="field", values="value")`` works; a text
    sample's value is in ``value_text`` and an enumerated value's name in ``text``.

    **Wide form** (``wide=True``, one row per timestamp): a ``DatetimeIndex`` named ``time``
    (UTC) and one column per field, ``float64`` for fields with numbers and text for fields
    that only ever held text. When the rows come from more than one device the columns are
    named ``"<device>/<field>"`` (``"<device>.<channel>/<field>"`` for channels). Samples of
    one field with the same timestamp keep the last one. ``df.attrs["units"]`` maps each
    column to its unit.

    :raises BackendUnavailableError: pandas is not installed.
    :raises ConfigurationError: ``path`` is missing or is not a recording.
    """
    pd = require("pandas", "pandas")
    rows = list(read_samples(path, family=family, device=device, field=field, since=since,
                             until=until))
    frame = pd.DataFrame(rows, columns=list(COLUMNS))
    # SQLite hands back ints, floats and str in one column: split them so that the numbers
    # get a numeric dtype (an object column breaks pivot_table and plotting)
    raw = frame["value"].tolist()
    frame["value"] = pd.Series([_number(v) for v in raw], index=frame.index, dtype="float64")
    frame.insert(frame.columns.get_loc("value") + 1, "value_text",
                 pd.Series([v if isinstance(v, str) else None for v in raw],
                           index=frame.index, dtype=object))
    frame.insert(0, "time", pd.to_datetime(frame["ts"], unit="s", utc=True))
    return _widen(pd, frame) if wide else frame


def _number(value: Any) -> float:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    return float("nan")


def _widen(pd: Any, frame: Any) -> Any:
    keys = {(f, d, c) for f, d, c in zip(frame["family"], frame["device"], frame["channel"])}
    if len(keys) <= 1:
        names = list(frame["field"])
    else:
        names = [f"{d}.{c}/{f}" if c else f"{d}/{f}"
                 for d, c, f in zip(frame["device"], frame["channel"], frame["field"])]
    frame = frame.assign(column=names)
    numeric = set(frame.loc[frame["value"].notna(), "column"])
    parts = []
    if numeric:
        nums = frame[frame["column"].isin(numeric)]
        parts.append(nums.groupby(["ts", "column"], sort=True)["value"].last()
                     .unstack("column").astype("float64"))
    texts = frame[~frame["column"].isin(numeric) & frame["value_text"].notna()]
    if len(texts):
        parts.append(texts.groupby(["ts", "column"], sort=True)["value_text"].last()
                     .unstack("column"))
    if parts:
        wide = pd.concat(parts, axis=1).sort_index()
        wide = wide[sorted(wide.columns)]
    else:
        wide = pd.DataFrame(index=pd.Index([], dtype="float64", name="ts"))
    wide.index = pd.to_datetime(wide.index, unit="s", utc=True)
    wide.index.name = "time"
    wide.columns.name = None
    units: Dict[str, str] = {}
    for name, unit in zip(frame["column"], frame["unit"]):
        if unit and name in wide.columns:
            units[name] = unit
    wide.attrs["units"] = units
    return wide


def plot_recording(path: str, fields: Optional[Sequence[str]] = None, *,
                   family: Optional[str] = None, device: Optional[str] = None,
                   since: Optional[float] = None, until: Optional[float] = None,
                   ax: Optional[Any] = None, title: Optional[str] = None) -> List[Any]:
    """Query a recording and draw its numeric fields over time, one Axes per unit (see
    :func:`pyburnerkit.plotting.plot_timeseries`). Blocks while it reads the file; safe
    while recording.

    :param fields: the wide-form columns to draw (field names, or ``"<device>/<field>"``
        when the query spans several devices); default every numeric one.
    :returns: the Axes, one per unit, top to bottom.
    :raises BackendUnavailableError: matplotlib (``pyburnerkit[plot]``) or pandas
        (``pyburnerkit[pandas]``) is not installed.
    :raises ConfigurationError: no recording at ``path``, or nothing to draw.
    """
    from ...plotting import plot_timeseries, require_matplotlib
    require_matplotlib()  # before reading a large file for nothing
    frame = to_dataframe(path, family=family, device=device, since=since, until=until,
                         wide=True)
    return plot_timeseries(frame, fields, ax, title=title)
