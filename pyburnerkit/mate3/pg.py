"""mate3_pg as one command: poll a Mate3 and write mate3_pg's wide PostgreSQL tables.

mate3_pg (mate3 0.2-0.4, later ``examples/postgress_monitoring``) read a YAML file::

    tables:
      my_database_table:
        - port: 2
          device: "charge_controller"
          field: "watts"
          db_column: "cc1_watts"

and, every ``--interval`` seconds, opened a fresh Modbus connection, read the system and
inserted one row per table: ``timestamp`` plus one column per entry. :class:`Mate3PG` does the
same on :class:`~pyburnerkit.mate3.Mate3Client` (``pyburnerkit mate3 pg CONFIG.yaml``):

* each entry's ``device`` is resolved to the device it names on that HUB port: mate3 0.4's
  singular names (the example file's ``charge_controller``, which mate3 0.6's own script no
  longer understood), 0.6's plural ones (``charge_controllers``), configuration blocks
  (``charge_controller_configuration``, ``outback_system_control``) and the Mate3 itself;
  a port holding another kind of device leaves the column empty and says so once;
* ``field`` takes today's names and mate3 0.4's (``temperature_enclosure``);
* an unknown device or field, a bad identifier or a duplicate column is refused when the file
  is read, naming the table and the entry, before the database or the Mate3 is touched;
* values are scaled (57.6, not 576); enumerations and bit fields are their number, text is
  text. New columns are ``NUMERIC`` (scaled), ``INTEGER``/``BIGINT`` or ``VARCHAR(100)``;
  existing columns are left as they are;
* a Modbus failure is logged and the next interval tries again (as mate3_pg did); a database
  failure ends the run.

The database URL's password never appears in messages or logs.
"""

from __future__ import annotations

import datetime as _dt
import logging
import re
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

from .._core.extras import require
from ..errors import (ConfigurationError, DeviceConnectionError, DeviceError,
                      DeviceTimeoutError, ProtocolError, PyBurnerKitError, check_range)
from . import codec
from .compat import Device, device_named, field_name
from .models import FieldType, Mate3System

log = logging.getLogger(__name__)

DEFAULT_DATABASE_URL = "postgres://postgres@localhost/postgres"
DEFAULT_INTERVAL = 5.0
_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")
#: blocks that sit on no HUB port: an entry's port is not used for them
_PORTLESS = {Device.mate3, Device.outback_system_control, Device.sunspec_common_model,
             Device.sunspec_inverter_single_phase, Device.sunspec_inverter_split_phase,
             Device.sunspec_inverter_three_phase, Device.opticsre_statistics}


@dataclass(frozen=True)
class Definition:
    """One entry of the YAML: ``db_column`` of ``table`` gets ``field`` of ``device`` on HUB
    ``port``. ``field`` is today's name; ``spelled`` is the entry as written."""

    table: str
    port: Optional[int]
    device: Device
    field: str
    db_column: str
    spelled: str
    column_type: str


def _ident(name: Any, what: str) -> str:
    if not isinstance(name, str) or not _IDENT.match(name):
        raise ConfigurationError(f"{what} {name!r} must be a plain SQL identifier (letters, "
                                 f"digits and _, at most 63, not starting with a digit)")
    return name


def _column_type(device: Device, name: str) -> str:
    fdef = codec.block_defs()[device.value].fields[name]
    if fdef.type in (FieldType.STRING, FieldType.IPV4):
        return "VARCHAR(100)"
    if fdef.scale_factor_field:
        return "NUMERIC"
    if fdef.type in (FieldType.UINT32, FieldType.BITFIELD32):
        return "BIGINT"
    return "INTEGER"


def parse_definitions(data: Any, source: str = "definitions") -> List[Definition]:
    """mate3_pg's parsed YAML (``{"tables": {name: [entry, ...]}}``) as definitions.

    :raises ConfigurationError: naming the file, table and entry: no ``tables:`` mapping,
        an entry without port/device/field/db_column, an unknown device or field, a
        write-only field, a port outside 1..10, a bad or repeated column name.
    """
    if not isinstance(data, Mapping) or not isinstance(data.get("tables"), Mapping):
        raise ConfigurationError(f"{source}: expected a 'tables:' mapping of table names to "
                                 f"lists of entries (mate3_pg's format)")
    out: List[Definition] = []
    for table, entries in data["tables"].items():
        _ident(table, f"{source}: table name")
        if not isinstance(entries, Sequence) or isinstance(entries, (str, bytes)):
            raise ConfigurationError(f"{source}: table {table!r} must hold a list of entries "
                                     f"(port, device, field, db_column)")
        seen: Dict[str, int] = {}
        for index, entry in enumerate(entries, 1):
            where = f"{source}: table {table!r} entry {index}"
            if not isinstance(entry, Mapping) or not all(
                    k in entry for k in ("device", "field", "db_column")):
                raise ConfigurationError(f"{where}: needs port, device, field and db_column, "
                                         f"got {entry!r}")
            try:
                device = device_named(str(entry["device"]))
                fname = field_name(device, str(entry["field"]))
            except ConfigurationError as exc:
                raise ConfigurationError(f"{where}: {exc}") from None
            if not codec.block_defs()[device.value].fields[fname].mode.readable:
                raise ConfigurationError(f"{where}: {device.name}.{fname} is write-only; the "
                                         f"Mate3 cannot read it")
            port: Optional[int] = None
            if device not in _PORTLESS:
                raw_port = entry.get("port")
                if raw_port is None:
                    raise ConfigurationError(f"{where}: {device.name} needs the HUB port it is "
                                             f"plugged into (port: 1..10)")
                number: Any = raw_port
                if isinstance(raw_port, str):
                    try:
                        number = int(raw_port.strip())
                    except ValueError:
                        raise ConfigurationError(f"{where}: port {raw_port!r} is not a HUB "
                                                 f"port number (1..10)") from None
                try:
                    port = check_range("port", number, 1, 10, "(HUB port)", integer=True)
                except ConfigurationError as exc:
                    raise ConfigurationError(f"{where}: {exc}") from None
            column = _ident(entry["db_column"], f"{where}: db_column")
            if column.lower() == "timestamp" or column.lower() in seen:
                raise ConfigurationError(f"{where}: db_column {column!r} is already used in "
                                         f"table {table!r} (or is the reserved 'timestamp')")
            seen[column.lower()] = index
            out.append(Definition(str(table), port, device, fname, column,
                                  f"{entry['device']}.{entry['field']}",
                                  _column_type(device, fname)))
    return out


def _kinds_on(system: Mate3System, port: int) -> List[str]:
    known = {d.value: d.name for d in Device}
    return sorted({known.get(dev.did, str(dev.did)) for _, dev in system.blocks()
                   if dev.port == port})


def values_for(system: Mate3System, definitions: Sequence[Definition],
               notes: Optional[Dict[Tuple[str, str], str]] = None
               ) -> Dict[str, Dict[str, Any]]:
    """``{table: {column: value}}`` for one reading, leaving out missing or unimplemented
    values (as mate3_pg did). A column whose device is not on its port gets a note in
    ``notes`` (keyed by table and column), not a value from another device."""
    rows: Dict[str, Dict[str, Any]] = {d.table: {} for d in definitions}
    for d in definitions:
        found = [dev for _, dev in system.blocks() if dev.did == d.device.value
                 and (d.port is None or dev.port == d.port)]
        if not found:
            if notes is not None:
                where = f"on HUB port {d.port}" if d.port is not None else "in this system"
                held = _kinds_on(system, d.port) if d.port is not None else []
                holds = f" (port {d.port} holds {', '.join(held)})" if held else ""
                notes[(d.table, d.db_column)] = (
                    f"{d.table}.{d.db_column}: no {d.device.name} {where}{holds}; the column "
                    f"stays empty")
            continue
        fv = found[0].values.get(d.field)
        if fv is None or not fv.implemented or fv.value is None:
            continue
        value = fv.value
        if isinstance(value, int) and not isinstance(value, bool):
            value = int(value)  # enum / flags: their number
        rows[d.table][d.db_column] = value
    return rows


class Mate3PG:
    """Poll a Mate3 and insert one row per table and reading (mate3_pg's wide tables).

    :param endpoint: the Mate3 (any :class:`~pyburnerkit.mate3.Mate3Client` endpoint).
    :param definitions: from :func:`parse_definitions`.
    :param database_url: a libpq URL or connection string (the password is never shown).
    :param interval: seconds between the starts of two readings.
    :param hypertables: make each table a TimescaleDB hypertable on ``timestamp``.
    :param client_options: more :class:`~pyburnerkit.mate3.Mate3Client` keywords (``port``,
        ``timeout``...).
    :param say: called with one status line per reading (on the thread that runs
        :meth:`run`); None for none.
    """

    def __init__(self, endpoint: str, definitions: Sequence[Definition], *,
                 database_url: str = DEFAULT_DATABASE_URL, interval: float = DEFAULT_INTERVAL,
                 hypertables: bool = False, client_options: Optional[Mapping[str, Any]] = None,
                 say: Optional[Callable[[str], None]] = None) -> None:
        self.psycopg = require("psycopg", "postgres")
        if not definitions:
            raise ConfigurationError("the definitions name no column to record")
        self.endpoint = endpoint
        self.definitions = list(definitions)
        self.interval = float(check_range("interval", interval, 0.01, 86400, "s"))
        self.hypertables = bool(hypertables)
        self.client_options = dict(client_options or {})
        self.say = say
        self._url = database_url
        try:
            info = self.psycopg.conninfo.conninfo_to_dict(database_url)
        except Exception:
            raise ConfigurationError("--database-url is not a valid PostgreSQL URL or "
                                     "connection string") from None
        self._password = str(info.get("password") or "")
        self.where = f"{info.get('host') or 'localhost'}/{info.get('dbname') or ''}"
        self._conn: Any = None
        self.rows_written = 0
        self.failed_reads = 0
        self._notes: Dict[Tuple[str, str], str] = {}

    def __repr__(self) -> str:
        return f"<Mate3PG {self.endpoint} -> postgres {self.where}>"

    def _scrub(self, text: str) -> str:
        return text.replace(self._password, "***") if self._password else text

    def _db_error(self, what: str, exc: BaseException) -> PyBurnerKitError:
        return PyBurnerKitError(f"PostgreSQL {self.where}: {what}: "
                                f"{self._scrub(str(exc).strip())}")

    # ------------------------------------------------------------------ database
    def open(self) -> None:
        """Connect to the database and create the tables and missing columns (blocks until
        done; at most 10 s to connect).

        :raises PyBurnerKitError: the database cannot be reached or refuses the schema.
        :raises ConfigurationError: ``hypertables`` without TimescaleDB in the database.
        """
        psycopg = self.psycopg
        try:
            self._conn = psycopg.connect(self._url, autocommit=True, connect_timeout=10)
        except psycopg.Error as exc:
            raise self._db_error("cannot connect", exc) from None
        try:
            self._create_tables()
        except BaseException:
            self.close()
            raise

    def _create_tables(self) -> None:
        psycopg = self.psycopg
        conn = self._conn
        tables: Dict[str, List[Definition]] = {}
        for d in self.definitions:
            tables.setdefault(d.table, []).append(d)
        try:
            for table, defs in tables.items():
                conn.execute(f"CREATE TABLE IF NOT EXISTS {table} "
                             f"(timestamp TIMESTAMPTZ NOT NULL)")
                for d in defs:
                    conn.execute(f"ALTER TABLE {table} ADD COLUMN IF NOT EXISTS {d.db_column} "
                                 f"{d.column_type} NULL")
        except psycopg.Error as exc:
            raise self._db_error("cannot create the tables", exc) from None
        if not self.hypertables:
            return
        for table in tables:
            try:
                conn.execute("SELECT create_hypertable(%s, 'timestamp')", (table,))
            except psycopg.errors.UndefinedFunction:
                raise ConfigurationError(
                    f"--hypertables needs TimescaleDB, and PostgreSQL {self.where} has no "
                    f"create_hypertable() (CREATE EXTENSION timescaledb first, or leave "
                    f"--hypertables out)") from None
            except psycopg.Error as exc:
                if "already a hypertable" not in str(exc):
                    raise self._db_error(f"cannot make {table} a hypertable", exc) from None

    def insert(self, system: Mate3System) -> Dict[str, int]:
        """Insert one row per table for this reading; returns columns filled per table.

        :raises PyBurnerKitError: the database refused the row.
        """
        rows = values_for(system, self.definitions, self._notes)
        stamp = _dt.datetime.fromtimestamp(system.read_at or time.time(), _dt.timezone.utc)
        filled: Dict[str, int] = {}
        try:
            with self._conn.transaction():
                for table, values in rows.items():
                    cols = list(values)
                    sql = (f"INSERT INTO {table} (timestamp{''.join(', ' + c for c in cols)}) "
                           f"VALUES (%s{', %s' * len(cols)})")
                    self._conn.execute(sql, [stamp] + [values[c] for c in cols])
                    filled[table] = len(cols)
        except self.psycopg.Error as exc:
            raise self._db_error("cannot insert", exc) from None
        self.rows_written += len(rows)
        return filled

    def close(self) -> None:
        """Close the database connection (idempotent)."""
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.close()
            except Exception:
                pass

    # ------------------------------------------------------------------ polling
    def poll_once(self) -> Optional[Dict[str, int]]:
        """Open the Mate3, read it once, close it (the Mate3s serves one Modbus client at a
        time, so the connection is kept short, as mate3_pg did), and insert the rows.

        :returns: columns filled per table, or None when the Mate3 could not be read
            (logged; the caller tries again at the next interval).
        :raises PyBurnerKitError: the database refused the rows.
        """
        from .client import Mate3Client
        try:
            with Mate3Client(self.endpoint, **self.client_options) as client:
                system = client.system
                assert system is not None  # connect() reads the whole system once
        except (DeviceConnectionError, DeviceTimeoutError, DeviceError, ProtocolError) as exc:
            self.failed_reads += 1
            log.error("mate3 pg: cannot read the Mate3 (%s); trying again in %g s", exc,
                      self.interval)
            if self.say is not None:
                self.say(f"mate3 pg: cannot read the Mate3 ({exc}); trying again in "
                         f"{self.interval:g} s")
            return None
        before = dict(self._notes)
        filled = self.insert(system)
        for key, note in self._notes.items():
            if before.get(key) != note:  # once per column and situation
                log.warning("mate3 pg: %s", note)
                if self.say is not None:
                    self.say(f"mate3 pg: {note}")
        if self.say is not None:
            self.say("mate3 pg: " + ", ".join(
                f"{t}: {n} column(s)" for t, n in filled.items()))
        return filled

    def run(self, stop: threading.Event, count: Optional[int] = None,
            wait: Optional[Callable[[threading.Event, float], Any]] = None) -> int:
        """Poll every ``interval`` seconds until ``stop`` is set (or ``count`` readings were
        made), on the calling thread; the database must be :meth:`open`. Returns the number
        of readings attempted. Waits on ``stop``, so setting it ends the wait at once.

        :param wait: how to wait for ``stop`` between readings (``wait(stop, seconds)``);
            the CLI passes ``SignalWait.wait`` (``pyburnerkit/cli/signals.py``), so that a stop
            signal the kernel gave to another thread still ends the wait. Default:
            ``stop.wait``.
        """
        done = 0
        while not stop.is_set() and (count is None or done < count):
            started = time.monotonic()
            self.poll_once()
            done += 1
            if count is not None and done >= count:
                break
            pause = max(0.0, self.interval - (time.monotonic() - started))
            if wait is None:
                stop.wait(pause)
            else:
                wait(stop, pause)
        return done

    def describe(self) -> List[str]:
        """One line per column: where its value comes from."""
        lines = []
        for d in self.definitions:
            where = f" on HUB port {d.port}" if d.port is not None else ""
            lines.append(f"{d.table}.{d.db_column} <- {d.device.name}.{d.field}{where} "
                         f"({d.column_type}; written as {d.spelled!r})")
        return lines
