"""PostgreSQL / TimescaleDB sink (psycopg 3; ``pip install "pyburnerkit[postgres]"``).

Created on first use::

    pyburnerkit_samples(uid text, ts timestamptz, family text, device text, channel text,
                        field text, value double precision, text text, unit text,
                        PRIMARY KEY (uid, ts))

``value`` holds numbers; ``text`` holds text values and the names of enumerated values.
Like the SQLite sink, each device gets a view (``device_<family>_<device>``, or
``<table>_device_<family>_<device>`` for a non-default ``table``) listed in
``<table>_devices``.
Batches go in with ``COPY`` into a temporary table and one ``INSERT ... ON CONFLICT DO
NOTHING``: a batch re-sent after a lost acknowledgement is stored once.

TimescaleDB: ``hypertable="auto"`` (default) turns the table into a hypertable on ``ts`` when the
``timescaledb`` extension is available in the database, ``True`` requires it, ``False`` never.

mate3_pg users: ``definitions="config.yaml"`` (its ``tables: {name: [{port, device, field,
db_column}]}`` file) also writes those wide tables, one row per poll (``timestamp`` column plus
the listed columns), so existing dashboards keep working. Each column receives the value of
the device its entry names on the port it names (``device: charge_controller``, ``port: 3``),
never another device's: a port that holds another kind of device leaves the column empty, and
an unknown or ambiguous device name is refused when the file is read. Columns the sink creates are
``double precision`` (numbers; enumerated values as their number); a column that already exists
as ``text``/``varchar`` receives the text instead (the enum name, or the value as text).
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import logging
import re
from collections import OrderedDict
from typing import Any, Dict, List, Mapping, Optional, Sequence, Set, Tuple, Union

from ..._core.extras import require
from ...errors import ConfigurationError
from ..samples import Sample, slug
from ..secrets import dsn_secrets, redact_dsn, redact_text, scrub
from .base import Item, Sink

log = logging.getLogger(__name__)

_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")
COLUMNS = ("uid", "ts", "family", "device", "channel", "field", "value", "text", "unit")


def _ident(name: str, what: str) -> str:
    if not isinstance(name, str) or not _IDENT.match(name):
        raise ConfigurationError(
            f"{what} {name!r} must be a plain SQL identifier (letters, digits, _; max 63)")
    return name


#: the Mate3 devices a definition may name (``Device.kind`` of pyburnerkit.mate3, which are
#: mate3_pg's singular device names) and the HUB ports they sit on
MATE3_HUB_DEVICES = ("charge_controller", "fndc", "fx_inverter", "single_phase_radian_inverter",
                     "split_phase_radian_inverter")
MATE3_SYSTEM_DEVICE = "mate3"          # the Mate3s itself: no HUB port (channel "mate3")
MATE3_PORTS = range(1, 11)             # HUB4 / HUB10 ports
_DEVICE_ALIASES = {                    # mate3 0.6 plural group names, the simulator's names
    **{f"{kind}s": kind for kind in MATE3_HUB_DEVICES},
    "cc": "charge_controller", "fx": "fx_inverter", "gs_single": "single_phase_radian_inverter",
    "gs_split": "split_phase_radian_inverter", "flexnet_dc": "fndc",
}
_AMBIGUOUS_DEVICES = {
    "inverter": ("fx_inverter", "single_phase_radian_inverter", "split_phase_radian_inverter"),
    "radian": ("single_phase_radian_inverter", "split_phase_radian_inverter"),
    "radian_inverter": ("single_phase_radian_inverter", "split_phase_radian_inverter"),
    "gs": ("single_phase_radian_inverter", "split_phase_radian_inverter"),
    "gs_inverter": ("single_phase_radian_inverter", "split_phase_radian_inverter"),
}


def mate3_device_kind(name: Any, where: str) -> str:
    """The device kind a definition's ``device`` names, or a ConfigurationError saying why
    it names none (unknown, ambiguous, a configuration block)."""
    known = MATE3_HUB_DEVICES + (MATE3_SYSTEM_DEVICE,)
    if name is None or str(name).strip() == "":
        raise ConfigurationError(
            f"{where}: needs a device (one of {', '.join(known)}): the HUB port alone does "
            f"not say which device's value the column should hold")
    key = re.sub(r"[\s\-]+", "_", str(name).strip().lower())
    for candidate in (key, key[:-1] if key.endswith("s") else key):
        if candidate in known:
            return candidate
    if key in _DEVICE_ALIASES:
        return _DEVICE_ALIASES[key]
    singular = key[:-1] if key.endswith("s") else key
    if singular in _AMBIGUOUS_DEVICES:
        raise ConfigurationError(
            f"{where}: device {name!r} is ambiguous: it could be any of "
            f"{', '.join(_AMBIGUOUS_DEVICES[singular])}; name one")
    if key.endswith(("_config", "_configuration", "_configs")):
        raise ConfigurationError(
            f"{where}: device {name!r} is a configuration block; the recorder records the "
            f"real-time values of {', '.join(known)} (name one of those)")
    import difflib
    close = difflib.get_close_matches(key, list(known) + list(_DEVICE_ALIASES), n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    raise ConfigurationError(
        f"{where}: unknown device {str(name)!r}{hint}; known: {', '.join(known)}")


def _mate3_port(port: Any, kind: str, where: str) -> str:
    """The channel a definition's device is recorded under: its HUB port, or "mate3"."""
    if kind == MATE3_SYSTEM_DEVICE:
        if port not in (None, "", 0, "0"):
            raise ConfigurationError(
                f"{where}: device 'mate3' (the Mate3s itself) has no HUB port; leave port out "
                f"(got port {port!r})")
        return MATE3_SYSTEM_DEVICE
    try:
        number = int(str(port).strip()) if not isinstance(port, bool) else None
    except ValueError:
        number = None
    if number is None or number not in MATE3_PORTS:
        raise ConfigurationError(
            f"{where}: HUB port {port!r} of the {kind} is out of range: the limit is "
            f"{MATE3_PORTS.start}..{MATE3_PORTS.stop - 1} (HUB port number)")
    return str(number)


class Mate3Definitions:
    """mate3_pg's YAML definitions: table -> [(port, device kind, field, db_column)].

    Every entry names its device (``charge_controller``, ``fndc``, ``fx_inverter``,
    ``single_phase_radian_inverter``, ``split_phase_radian_inverter``, or ``mate3`` for the
    Mate3s itself; mate3 0.6's plural names work too) and a column only ever receives the value
    of that device on that port: if the port holds another kind of device, the column stays
    empty. A device name that is unknown, ambiguous (``inverter``) or a configuration block is
    refused with the reason.
    """

    def __init__(self, tables: Mapping[str, Sequence[Mapping[str, Any]]]) -> None:
        self.tables: Dict[str, List[Tuple[str, str, str, str]]] = {}
        if not isinstance(tables, Mapping):
            raise ConfigurationError(f"definitions must map table names to lists of entries, "
                                     f"got {type(tables).__name__}")
        for table, entries in tables.items():
            _ident(str(table), "definitions table")
            if entries is not None and (isinstance(entries, (str, bytes, Mapping))
                                        or not isinstance(entries, Sequence)):
                raise ConfigurationError(f"definitions table {table!r}: expected a list of "
                                         f"entries (port, device, field, db_column)")
            seen = set()
            rows = []
            for index, entry in enumerate(entries or ()):
                where = f"definitions table {table!r} entry {index + 1}"
                try:
                    field, column = str(entry["field"]), str(entry["db_column"])
                except (KeyError, TypeError) as exc:
                    raise ConfigurationError(
                        f"{where}: each entry needs port, device, field and db_column, "
                        f"got {entry!r}") from exc
                kind = mate3_device_kind(entry.get("device"), where)
                port = _mate3_port(entry.get("port"), kind, where)
                _ident(column, f"definitions {table}.db_column")
                if column == "timestamp" or column in seen:
                    raise ConfigurationError(
                        f"definitions table {table!r}: db_column {column!r} is used twice "
                        f"(or is the reserved 'timestamp')")
                seen.add(column)
                rows.append((port, kind, field, column))
            self.tables[str(table)] = rows
        self._by_field: Dict[Tuple[str, str, str], List[Tuple[str, str]]] = {}
        for table, rows in self.tables.items():
            for port, kind, field, column in rows:
                self._by_field.setdefault((port, kind, field), []).append((table, column))

    @classmethod
    def load(cls, path: str) -> "Mate3Definitions":
        """Read a mate3_pg definitions file.

        :raises ConfigurationError: unreadable, not YAML, or an entry that names no device
            (the message names the file, the table and the entry).
        """
        try:
            with open(path, encoding="utf-8") as fh:
                text = fh.read()
        except OSError as exc:
            raise ConfigurationError(f"definitions file {path!r} cannot be read: "
                                     f"{exc.strerror or exc}") from None
        data = load_yaml(text, path)
        if not isinstance(data, dict) or not isinstance(data.get("tables"), dict):
            raise ConfigurationError(f"{path}: expected a 'tables:' mapping (mate3_pg format)")
        try:
            return cls(data["tables"])
        except ConfigurationError as exc:
            raise ConfigurationError(f"{path}: {exc}") from None

    def columns_for(self, sample: Sample) -> List[Tuple[str, str]]:
        """(table, column) pairs this sample fills: same port, same device kind, same field."""
        return self._by_field.get((sample.channel, sample.kind, sample.field), [])


def load_yaml(text: str, path: str) -> Any:
    """A mate3_pg definitions file's YAML, read by PyYAML (the ``postgres`` extra installs it).

    :raises BackendUnavailableError: PyYAML is not installed (names the extra).
    :raises ConfigurationError: not valid YAML (names the file and the place).
    """
    yaml = require("yaml", "postgres")
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigurationError(f"{path}: not valid YAML: {exc}") from None


DEFAULT_TABLE = "pyburnerkit_samples"


def _check_dsn(dsn: str) -> None:
    """Refuse a connection string libpq cannot parse, without quoting libpq's message (it
    quotes the text around the problem: often a piece of the password)."""
    try:
        from psycopg.conninfo import conninfo_to_dict
    except ImportError:  # pragma: no cover - the constructor required psycopg already
        return
    hint = ("quote key/value values that hold spaces or quotes (password='a b', with \\' for "
            "a quote) and percent-encode @ : / in a URL password (p%40ss)")
    try:
        parsed = conninfo_to_dict(dsn)
    except Exception:
        raise ConfigurationError(f"PostgreSQL dsn {redact_dsn(dsn)!r} is not a valid "
                                 f"connection string: {hint}") from None
    if "://" in dsn and any("@" in str(parsed.get(k, "")) for k in ("host", "port", "dbname")):
        # libpq split the URL at the password's first "@": the rest of the password would
        # become a host name (and show in every connection error)
        raise ConfigurationError(f"PostgreSQL dsn {redact_dsn(dsn)!r} has an unencoded @ "
                                 f"(or /) in its password: {hint}")


def psycopg_error() -> Any:
    return require("psycopg", "postgres").Error


def pg_view_name(table: str, family: str, device: str) -> str:
    """The per-device view's name (at most 63 bytes: longer names end in a hash)."""
    base = f"device_{slug(family)}_{slug(device)}"
    if table != DEFAULT_TABLE:
        base = f"{table}_{base}"
    if len(base.encode("utf-8")) > 63:
        digest = hashlib.sha1(base.encode("utf-8")).hexdigest()[:10]
        base = base.encode("utf-8")[:52].decode("utf-8", "ignore") + "_" + digest
    return base


class PostgresSink(Sink):
    """Record into PostgreSQL (optionally a TimescaleDB hypertable).

    :param dsn: a libpq connection string or URL (``postgresql://user:pass@host:5432/db``);
        the password never appears in logs or reprs.
    :param table: the long-format table (created if missing).
    :param hypertable: ``"auto"``, True or False (see the module docs).
    :param definitions: a mate3_pg YAML definitions file (or a parsed dict of its ``tables``).
    :param connect_timeout: seconds for each connection attempt.
    """

    def __init__(self, dsn: str, *, name: str = "postgres", table: str = DEFAULT_TABLE,
                 hypertable: Union[str, bool] = "auto",
                 definitions: Union[str, Mapping[str, Any], None] = None,
                 connect_timeout: float = 5.0) -> None:
        require("psycopg", "postgres")
        if not isinstance(dsn, str) or not dsn.strip():
            raise ConfigurationError("PostgreSQL dsn must be a connection string or URL")
        if isinstance(connect_timeout, bool) or not isinstance(connect_timeout, (int, float)) \
                or not connect_timeout > 0:
            raise ConfigurationError(
                f"PostgreSQL connect_timeout={connect_timeout!r} must be a positive number of "
                f"seconds")
        if hypertable not in ("auto", True, False):
            raise ConfigurationError(
                f"hypertable={hypertable!r} must be 'auto', true or false")
        _check_dsn(dsn)
        self.dsn = dsn
        #: the password(s) as libpq reads them: removed from any error message we pass on
        self._secrets = dsn_secrets(dsn)
        self.name = name
        self.table = _ident(table, "table")
        self.hypertable = hypertable
        self.connect_timeout = connect_timeout
        if isinstance(definitions, str):
            self.definitions: Optional[Mate3Definitions] = Mate3Definitions.load(definitions)
        elif definitions is not None:
            self.definitions = Mate3Definitions(definitions)
        else:
            self.definitions = None
        self.is_hypertable = False
        self._conn: Any = None
        self._views: Set[Any] = set()
        self._text_columns: Set[Tuple[str, str]] = set()

    def __repr__(self) -> str:
        return f"<PostgresSink {self.name} {redact_dsn(self.dsn)} table={self.table}>"

    def identity(self) -> str:
        return f"postgres:{redact_dsn(self.dsn)}/{self.table}"

    def _safe(self, message: str) -> str:
        """An error message fit to log: no password, whatever form it was given in."""
        return scrub(redact_text(message), self._secrets)

    def open(self) -> None:
        psycopg = require("psycopg", "postgres")
        try:
            conn = psycopg.connect(self.dsn, connect_timeout=max(1, int(self.connect_timeout)),
                                   autocommit=False)
        except psycopg.Error as exc:  # never show the DSN: it may hold the password
            raise ConnectionError(f"PostgreSQL connection failed: "
                                  f"{self._safe(str(exc))}") from None
        try:
            self._create_schema(conn)
        except BaseException:
            conn.close()
            raise
        self._conn = conn

    def _create_schema(self, conn: Any) -> None:
        t = self.table
        with conn.transaction():
            conn.execute(
                f"CREATE TABLE IF NOT EXISTS {t} (uid text NOT NULL, ts timestamptz NOT NULL, "
                "family text NOT NULL, device text NOT NULL, channel text NOT NULL DEFAULT '', "
                "field text NOT NULL, value double precision, text text, "
                "unit text NOT NULL DEFAULT '', PRIMARY KEY (uid, ts))")
            conn.execute(f"CREATE INDEX IF NOT EXISTS {t}_device_ts_idx "
                         f"ON {t} (family, device, channel, ts)")
            conn.execute(f"CREATE TABLE IF NOT EXISTS {t}_devices (family text NOT NULL, "
                         "device text NOT NULL, first_seen timestamptz NOT NULL, "
                         "view text NOT NULL, PRIMARY KEY (family, device))")
            self._views = {(f, d) for f, d in
                           conn.execute(f"SELECT family, device FROM {t}_devices")}
        available = conn.execute(
            "SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb'").fetchone()
        conn.commit()
        if self.hypertable is True and not available:
            raise ConfigurationError(
                "hypertable=true but the timescaledb extension is not available in this "
                "PostgreSQL server (install TimescaleDB, or use hypertable='auto')")
        if self.hypertable in ("auto", True) and available:
            with conn.transaction():
                conn.execute("CREATE EXTENSION IF NOT EXISTS timescaledb")
                conn.execute("SELECT create_hypertable(%s, 'ts', if_not_exists => TRUE, "
                             "migrate_data => TRUE)", (t,))
            self.is_hypertable = True
        if self.definitions is not None:
            with conn.transaction():
                for table, rows in self.definitions.tables.items():
                    conn.execute(f"CREATE TABLE IF NOT EXISTS {table} "
                                 "(timestamp timestamptz NOT NULL)")
                    for _, _, _, column in rows:
                        conn.execute(f"ALTER TABLE {table} ADD COLUMN IF NOT EXISTS {column} "
                                     "double precision")
                    conn.execute(f"CREATE UNIQUE INDEX IF NOT EXISTS {table}_timestamp_key "
                                 f"ON {table} (timestamp)")
            # columns the user made text-like get text (enum names, strings); others numbers
            # (unquoted identifiers: PostgreSQL folds them to lower case)
            self._text_columns = {
                (t, c) for t, c in conn.execute(
                    "SELECT table_name, column_name FROM information_schema.columns "
                    "WHERE table_schema = ANY(current_schemas(false)) AND data_type IN "
                    "('text', 'character varying', 'character')")
                if t in {name.lower() for name in self.definitions.tables}}
        conn.execute(f"CREATE TEMP TABLE IF NOT EXISTS _pbk_incoming "
                     f"(LIKE {t} INCLUDING DEFAULTS) ON COMMIT DELETE ROWS")
        conn.commit()

    def write(self, items: Sequence[Item]) -> None:
        conn = self._conn
        if conn is None:
            raise ConnectionError("the PostgreSQL sink is not open")
        samples = [s for s in items if isinstance(s, Sample)]
        if not samples:
            return
        utc = _dt.timezone.utc
        fromts = _dt.datetime.fromtimestamp
        with conn.transaction():
            with conn.cursor() as cur:
                with cur.copy(f"COPY _pbk_incoming ({', '.join(COLUMNS)}) FROM STDIN") as copy:
                    for s in samples:
                        number = s.number
                        text = s.text if s.text is not None else (
                            s.value if isinstance(s.value, str) else None)
                        if text is not None and "\x00" in text:  # PostgreSQL text has no NUL
                            text = text.replace("\x00", "")
                        copy.write_row((s.uid, fromts(s.timestamp, utc), s.family, s.device,
                                        s.channel, s.field, number, text, s.unit))
                cur.execute(f"INSERT INTO {self.table} SELECT {', '.join(COLUMNS)} "
                            "FROM _pbk_incoming ON CONFLICT DO NOTHING")
                new: Dict[Tuple[str, str], float] = {}
                for s in samples:
                    if (s.family, s.device) not in self._views:
                        new.setdefault((s.family, s.device), s.timestamp)
                for (family, device), ts in new.items():
                    try:  # a savepoint: a view that cannot be made must not cost the samples
                        with conn.transaction():
                            self._create_view(cur, family, device, fromts(ts, utc))
                    except psycopg_error() as exc:
                        log.warning("postgres %s: no view for %s/%s: %s", self.name, family,
                                    device, str(exc).strip())
                if self.definitions is not None:
                    self._write_wide(cur, samples)

        self._views.update(new)

    def _create_view(self, cur: Any, family: str, device: str, first_seen: Any) -> None:
        from psycopg import sql
        devices = sql.Identifier(f"{self.table}_devices")
        view = pg_view_name(self.table, family, device)
        cur.execute(sql.SQL("SELECT family, device FROM {} WHERE view = %s").format(devices),
                    (view,))
        owner = cur.fetchone()
        if owner is not None and tuple(owner) != (family, device):
            # another device's name slugs the same ("a b" / "a_b"): keep both apart
            digest = hashlib.sha1(f"{family}/{device}".encode("utf-8")).hexdigest()[:10]
            view = view.encode("utf-8")[:52].decode("utf-8", "ignore") + "_" + digest
        cur.execute(sql.SQL(
            "CREATE OR REPLACE VIEW {} AS SELECT ts AS time_utc, channel, field, value, text, "
            "unit, uid FROM {} WHERE family = {} AND device = {}").format(
                sql.Identifier(view), sql.Identifier(self.table), sql.Literal(family),
                sql.Literal(device)))
        cur.execute(sql.SQL("INSERT INTO {} (family, device, first_seen, view) "
                            "VALUES (%s, %s, %s, %s) ON CONFLICT DO NOTHING").format(devices),
                    (family, device, first_seen, view))

    def _write_wide(self, cur: Any, samples: Sequence[Sample]) -> None:
        rows: "OrderedDict[Tuple[str, float], Dict[str, Any]]" = OrderedDict()
        assert self.definitions is not None
        for s in samples:
            for table, column in self.definitions.columns_for(s):
                if (table.lower(), column.lower()) in self._text_columns:
                    value: Any = s.text if s.text is not None else (
                        None if s.value is None else str(s.value))
                    if isinstance(value, str) and "\x00" in value:
                        value = value.replace("\x00", "")
                else:
                    value = s.number
                rows.setdefault((table, s.timestamp), {})[column] = value
        for (table, ts), values in rows.items():
            cols = list(values)
            updates = ", ".join(f"{c} = COALESCE(EXCLUDED.{c}, {table}.{c})" for c in cols)
            cur.execute(
                f"INSERT INTO {table} (timestamp, {', '.join(cols)}) VALUES "
                f"(%s, {', '.join(['%s'] * len(cols))}) ON CONFLICT (timestamp) DO UPDATE "
                f"SET {updates}",
                [_dt.datetime.fromtimestamp(ts, _dt.timezone.utc)] + [values[c] for c in cols])

    def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.close()
            except Exception:
                pass
