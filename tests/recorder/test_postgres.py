"""Recording into a real throwaway PostgreSQL cluster (initdb + pg_ctl, free port)."""

from __future__ import annotations

import psycopg
import pytest

from pyburnerkit.recorder import PostgresSink, Recorder, SinkHealthChanged
from pyburnerkit.recorder.sinks.postgres import Mate3Definitions, load_yaml, redact_dsn
from pyburnerkit.errors import ConfigurationError

from .util import PushSource, collect, counter_source


def _rec(tmp_path, sources, sinks, **kw):
    kw.setdefault("progress_interval", None)
    return Recorder(sources, sinks, spool_dir=str(tmp_path / "spool"), **kw)


def _rows(dsn, sql):
    with psycopg.connect(dsn) as conn:
        return conn.execute(sql).fetchall()


def test_schema_created_and_samples_read_back_with_sql(tmp_path, pg_dsn):
    source, _ = counter_source()
    push = PushSource("cell-7")
    sink = PostgresSink(pg_dsn)
    rec = _rec(tmp_path, [source, push], [sink])
    got = collect(rec)
    with rec:
        push.push({"status": "Unsafe"}, channel="3")
        rec.wait_for(lambda r: r.sink("postgres").written >= 50, timeout=30)
    rows = _rows(pg_dsn, "SELECT uid, ts, family, device, channel, field, value, text, unit "
                         "FROM pyburnerkit_samples ORDER BY ts, uid")
    assert len(rows) == len(got) >= 50
    assert {r[0] for r in rows} == {s.uid for s in got}
    energy = sorted(r[6] for r in rows if r[5] == "energy_wh")
    assert energy == [float(i) for i in range(1, len(energy) + 1)]
    status = [r for r in rows if r[5] == "status"]
    assert status[0][3:6] == ("cell-7", "3", "status") and status[0][7] == "Unsafe"
    assert status[0][6] is None
    assert rows[0][1].tzinfo is not None  # timestamptz
    assert not sink.is_hypertable  # plain PostgreSQL: no timescaledb extension here
    idx = _rows(pg_dsn, "SELECT indexname FROM pg_indexes WHERE tablename = "
                        "'pyburnerkit_samples'")
    assert "pyburnerkit_samples_device_ts_idx" in {r[0] for r in idx}


def test_hypertable_true_without_timescaledb_reports_the_sink_down(tmp_path, pg_dsn):
    sink = PostgresSink(pg_dsn, hypertable=True)
    rec = _rec(tmp_path, [], [sink])
    health = []
    rec.subscribe(health.append, SinkHealthChanged)
    with rec:
        rec.wait_for(lambda r: health, timeout=20)
    assert not health[0].healthy
    assert "timescaledb" in str(health[0].error)


def test_kill_and_restart_postgres_mid_recording_loses_and_duplicates_nothing(
        tmp_path, own_pg_cluster):
    pg_cluster = own_pg_cluster
    pg_dsn = pg_cluster.create_db("killtest")
    source, counter = counter_source(interval=0.002)
    rec = _rec(tmp_path, [source], [PostgresSink(pg_dsn, connect_timeout=2)])
    got = collect(rec)
    health = []
    rec.subscribe(health.append, SinkHealthChanged)
    with rec:
        rec.wait_for(lambda r: r.sink("postgres").written >= 200, timeout=30)
        pg_cluster.stop("immediate")  # a crash, not a polite shutdown
        rec.wait_for(lambda r: not r.sink("postgres").healthy, timeout=30)
        rec.wait_for(lambda r: r.sink("postgres").spooled >= 200, timeout=30)
        pg_cluster.start()
        rec.wait_for(lambda r: r.sink("postgres").healthy and r.sink("postgres").spooled == 0
                     and r.sink("postgres").written > 600, timeout=60)
    rows = _rows(pg_dsn, "SELECT COUNT(*), COUNT(DISTINCT uid) FROM pyburnerkit_samples")
    assert rows[0][0] == rows[0][1] == len(got)  # no duplicates, nothing lost
    uids = {r[0] for r in _rows(pg_dsn, "SELECT uid FROM pyburnerkit_samples")}
    assert uids == {s.uid for s in got}
    energy = sorted(r[0] for r in _rows(
        pg_dsn, "SELECT value FROM pyburnerkit_samples WHERE field = 'energy_wh'"))
    assert energy == [float(i) for i in range(1, counter.count + 1)]
    assert [h.healthy for h in health][:2] == [True, False] and health[-1].healthy


MATE3_PG_YAML = """
tables:

  # mate3_pg's example layout
  my_database_table:
    - port: 1
      device: "single_phase_radian_inverter"
      field: "battery_voltage"
      db_column: "battery_voltage"
    - port: 2
      device: "charge_controller"
      field: "watts"
      db_column: "cc1_watts"   # column names are the user's
"""


def test_mate3_pg_files_are_read_with_pyyaml():
    from pyburnerkit.errors import ConfigurationError
    with pytest.raises(ConfigurationError, match=r"x\.yaml: not valid YAML"):
        load_yaml("tables: [unclosed", "x.yaml")
    data = load_yaml(MATE3_PG_YAML, "config.yaml")
    assert data == {"tables": {"my_database_table": [
        {"port": 1, "device": "single_phase_radian_inverter", "field": "battery_voltage",
         "db_column": "battery_voltage"},
        {"port": 2, "device": "charge_controller", "field": "watts", "db_column": "cc1_watts"},
    ]}}


def test_mate3_pg_definitions_fill_the_users_tables(tmp_path, pg_dsn):
    path = tmp_path / "config.yaml"
    path.write_text(MATE3_PG_YAML)
    mate = PushSource("mate3-1", family="mate3")
    rec = _rec(tmp_path, [mate], [PostgresSink(pg_dsn, definitions=str(path))])
    with rec:
        mate.push({"battery_voltage": 52.4}, channel="1", kind="single_phase_radian_inverter")
        mate.push({"watts": 310.0}, channel="2", kind="charge_controller")
        mate.push({"watts": 999.0}, channel="3", kind="charge_controller")  # not defined
        mate.push({"watts": 777.0}, channel="2", kind="fx_inverter")  # another device: no
        rec.wait_for(lambda r: r.sink("postgres").written == 4, timeout=20)
    rows = _rows(pg_dsn, "SELECT timestamp, battery_voltage, cc1_watts FROM my_database_table "
                         "ORDER BY timestamp")
    assert [(r[1], r[2]) for r in rows] == [(52.4, None), (None, 310.0)]
    assert rows[0][0].tzinfo is not None


def test_definitions_are_validated(tmp_path):
    with pytest.raises(ConfigurationError, match="db_column"):
        Mate3Definitions({"t": [{"port": 1, "device": "fndc", "field": "x"}]})
    with pytest.raises(ConfigurationError, match="identifier"):
        Mate3Definitions({"t": [{"port": 1, "device": "fndc", "field": "x",
                                 "db_column": "a;drop"}]})


def test_options_are_validated():
    with pytest.raises(ConfigurationError, match="connect_timeout=-1 must be a positive"):
        PostgresSink("postgresql://h/db", connect_timeout=-1)
    with pytest.raises(ConfigurationError, match="hypertable"):
        PostgresSink("postgresql://h/db", hypertable="yes")
    with pytest.raises(ConfigurationError, match="table"):
        PostgresSink("postgresql://h/db", table="x; drop table y")
    from pyburnerkit.recorder import SQLiteSink
    with pytest.raises(ConfigurationError, match="synchronous"):
        SQLiteSink("x.db", synchronous=1)


def test_password_never_shown():
    dsn = "postgresql://rec:s3cret@db.example:5432/lab"
    assert "s3cret" not in redact_dsn(dsn)
    assert "s3cret" not in repr(PostgresSink(dsn))
    assert "s3cret" not in redact_dsn("host=db user=rec password=s3cret dbname=lab")


def test_per_device_views(tmp_path, pg_dsn):
    a = PushSource("heater a")
    b = PushSource("heater_a")  # slugs to the same name as "heater a": must stay apart
    rec = _rec(tmp_path, [a, b], [PostgresSink(pg_dsn)])
    with rec:
        a.push({"TempCurrent": 21.5, "RunString": "Running"}, units={"TempCurrent": "°C"})
        b.push({"TempCurrent": 18.0})
        rec.wait_for(lambda r: r.sink("postgres").written == 3, timeout=20)
    devices = _rows(pg_dsn, "SELECT device, view FROM pyburnerkit_samples_devices "
                            "ORDER BY device")
    assert [d for d, _ in devices] == ["heater a", "heater_a"]
    views = dict(devices)
    assert views["heater a"] == "device_testdev_heater_a" != views["heater_a"]
    rows = _rows(pg_dsn, f'SELECT field, value, text, unit, time_utc FROM "{views["heater a"]}" '
                         "ORDER BY field")
    assert [(r[0], r[1], r[2], r[3]) for r in rows] == [("RunString", None, "Running", ""),
                                                       ("TempCurrent", 21.5, None, "°C")]
    assert rows[0][4].tzinfo is not None
    other = _rows(pg_dsn, f'SELECT field, value FROM "{views["heater_a"]}"')
    assert other == [("TempCurrent", 18.0)]


def test_mate3_pg_text_columns_get_text(tmp_path, pg_dsn):
    """A user's existing mate3_pg table with a text column keeps receiving text (the enum
    name, or the string the device sent); number columns get numbers."""
    from pyburnerkit.recorder.sources import _Labelled
    with psycopg.connect(pg_dsn) as conn:
        conn.execute("CREATE TABLE inverter (timestamp timestamptz NOT NULL, "
                     "mode varchar(40), mode_code double precision, serial text)")
    fx = "fx_inverter"
    definitions = {"Inverter": [  # unquoted SQL names: any case names the same table
        {"port": 1, "device": fx, "field": "operating_mode", "db_column": "Mode"},
        {"port": 2, "device": fx, "field": "operating_mode", "db_column": "mode_code"},
        {"port": 1, "device": fx, "field": "serial_number", "db_column": "serial"}]}
    mate = PushSource("mate3-1", family="mate3")
    rec = _rec(tmp_path, [mate], [PostgresSink(pg_dsn, definitions=definitions)])
    with rec:
        mate.push({"operating_mode": _Labelled(3, "Inverting"), "serial_number": "SN-42"},
                  channel="1", kind=fx)
        rec.wait_for(lambda r: r.sink("postgres").written == 2, timeout=20)
        mate.push({"operating_mode": _Labelled(2, "Charging")}, channel="2", kind=fx)
        rec.wait_for(lambda r: r.sink("postgres").written == 3, timeout=20)
    rows = _rows(pg_dsn, "SELECT mode, mode_code, serial FROM inverter ORDER BY timestamp")
    assert rows == [("Inverting", None, "SN-42"), (None, 2.0, None)]


def test_a_view_that_cannot_be_made_costs_no_samples(tmp_path, pg_dsn, caplog):
    """A table of the user's already has the view's name: the samples are stored all the
    same (the view is skipped with a warning), nothing is rejected."""
    with psycopg.connect(pg_dsn) as conn:
        conn.execute("CREATE TABLE device_testdev_taken (x int)")
    src = PushSource("taken")
    rec = _rec(tmp_path, [src], [PostgresSink(pg_dsn)])
    with caplog.at_level("WARNING", logger="pyburnerkit.recorder.sinks.postgres"):
        with rec:
            src.push({"a": 1.0, "b": 2.0})
            src.push({"c": 3.0})
            rec.wait_for(lambda r: r.sink("postgres").written == 3, timeout=20)
    assert rec.sink("postgres").rejected == 0 and rec.sink("postgres").failures == 0
    assert _rows(pg_dsn, "SELECT COUNT(*) FROM pyburnerkit_samples") == [(3,)]
    assert "no view for testdev/taken" in caplog.text
