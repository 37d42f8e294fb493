"""Recording into SQLite, read back with plain SQL."""

from __future__ import annotations

import os
import sqlite3

from pyburnerkit.recorder import (Recorder, SinkHealthChanged, SQLiteSink, read_samples,
                                  to_dataframe)
from pyburnerkit.recorder.sinks.sqlite import view_name

from .util import PushSource, collect, counter_source


def _rec(tmp_path, sources, sinks=None, **kw):
    kw.setdefault("progress_interval", None)
    return Recorder(sources, sinks if sinks is not None else [SQLiteSink(str(tmp_path / "r.db"))],
                    spool_dir=str(tmp_path / "spool"), **kw)


def test_records_normalised_samples(tmp_path):
    source, counter = counter_source()
    rec = _rec(tmp_path, [source])
    got = collect(rec)
    with rec:
        rec.wait_for(lambda r: r.sink("sqlite").written >= 40, timeout=20)
    db = sqlite3.connect(str(tmp_path / "r.db"))
    try:
        rows = db.execute("SELECT uid, ts, family, device, channel, field, value, unit FROM "
                          "samples ORDER BY id").fetchall()
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    finally:
        db.close()
    assert len(rows) == len(got) >= 40
    assert {r[0] for r in rows} == {s.uid for s in got}
    first = rows[0]
    assert first[2:6] == ("testdev", "meter1", "", "energy_wh") and first[6] == 1.0
    assert first[7] == "Wh"
    units = {r[5]: r[7] for r in rows}
    assert units == {"energy_wh": "Wh", "voltage_v": "V"}
    energies = [r[6] for r in rows if r[5] == "energy_wh"]
    assert energies == [float(i) for i in range(1, len(energies) + 1)]  # nothing lost, in order


def test_per_device_view_and_index(tmp_path):
    a = PushSource("heater-a")
    b = PushSource("heater-b")
    rec = _rec(tmp_path, [a, b])
    with rec:
        a.push({"TempCurrent": 21.5}, units={"TempCurrent": "°C"})
        b.push({"TempCurrent": 18.0, "RunString": "Running"})
        rec.wait_for(lambda r: r.sink("sqlite").written == 3, timeout=10)
    db = sqlite3.connect(str(tmp_path / "r.db"))
    try:
        view = view_name("testdev", "heater-b")
        rows = db.execute(f'SELECT field, value, unit, time_utc FROM "{view}" ORDER BY field'
                          ).fetchall()
        assert [(r[0], r[1]) for r in rows] == [("RunString", "Running"),
                                                ("TempCurrent", 18.0)]
        assert rows[0][3].startswith("20")  # an ISO UTC time
        devices = db.execute("SELECT device, view FROM devices ORDER BY device").fetchall()
        assert devices == [("heater-a", view_name("testdev", "heater-a")), ("heater-b", view)]
        indexes = {r[1] for r in db.execute("PRAGMA index_list(samples)")}
        assert {"samples_uid", "samples_device_ts"} <= indexes
    finally:
        db.close()


def test_readable_while_recording(tmp_path):
    source, _ = counter_source()
    rec = _rec(tmp_path, [source])
    with rec:
        rec.wait_for(lambda r: r.sink("sqlite").written >= 10, timeout=20)
        seen = len(list(read_samples(str(tmp_path / "r.db"))))
        assert seen >= 10
        rec.wait_for(lambda r: r.sink("sqlite").written >= seen + 10, timeout=20)
        assert len(list(read_samples(str(tmp_path / "r.db")))) >= seen + 10


def test_same_batch_twice_is_stored_once(tmp_path):
    from pyburnerkit.recorder.samples import SampleFactory
    sink = SQLiteSink(str(tmp_path / "r.db"))
    sink.open()
    try:
        f = SampleFactory()
        batch = [f.make(1.0, "fam", "dev", "", "x", i) for i in range(5)]
        sink.write(batch)
        sink.write(batch)  # a retry after a lost acknowledgement
    finally:
        sink.close()
    db = sqlite3.connect(str(tmp_path / "r.db"))
    try:
        assert db.execute("SELECT COUNT(*), COUNT(DISTINCT uid) FROM samples").fetchone() == (5, 5)
    finally:
        db.close()


def test_sink_down_spools_then_catches_up(tmp_path):
    """A real failure: the database directory is a plain file, so SQLite cannot open it.
    Once the path is fixed, the spooled samples are written, none lost, none twice."""
    blocker = tmp_path / "dbdir"
    blocker.write_text("not a directory")
    source, _ = counter_source()
    sink = SQLiteSink(str(blocker / "r.db"))
    rec = _rec(tmp_path, [source], [sink])
    got = collect(rec)
    health = []
    rec.subscribe(health.append, SinkHealthChanged)
    with rec:
        rec.wait_for(lambda r: r.sink("sqlite").spooled >= 30, timeout=20)
        assert not rec.sink("sqlite").healthy and rec.sink("sqlite").written == 0
        os.remove(str(blocker))
        os.mkdir(str(blocker))
        rec.wait_for(lambda r: r.sink("sqlite").healthy and r.sink("sqlite").written >= 60,
                     timeout=30)
    assert any(not h.healthy for h in health) and any(h.healthy for h in health)
    db = sqlite3.connect(str(blocker / "r.db"))
    try:
        uids = [r[0] for r in db.execute("SELECT uid FROM samples")]
    finally:
        db.close()
    assert len(uids) == len(set(uids)) == len(got)
    assert set(uids) == {s.uid for s in got}
    assert rec.sink("sqlite").spooled == 0


def test_spool_left_by_a_previous_run_is_written_next_time(tmp_path):
    blocker = tmp_path / "dbdir"
    blocker.write_text("x")
    source, _ = counter_source(device="m")
    rec = _rec(tmp_path, [source], [SQLiteSink(str(blocker / "r.db"))])
    got = collect(rec)
    with rec:
        rec.wait_for(lambda r: r.sink("sqlite").spooled >= 10, timeout=20)
    left = rec.sink("sqlite").spooled
    assert left == len(got) >= 10  # everything is in the spool on disk, nothing lost
    os.remove(str(blocker))
    os.mkdir(str(blocker))
    rec2 = _rec(tmp_path, [], [SQLiteSink(str(blocker / "r.db"))])
    with rec2:
        rec2.wait_for(lambda r: r.sink("sqlite").spooled == 0 and r.sink("sqlite").healthy,
                      timeout=20)
    uids = {r["uid"] for r in read_samples(str(blocker / "r.db"))}
    assert uids == {s.uid for s in got}


def test_to_dataframe(tmp_path):
    import pandas as pd
    source, _ = counter_source()
    rec = _rec(tmp_path, [source])
    with rec:
        rec.wait_for(lambda r: r.sink("sqlite").written >= 20, timeout=20)
    df = to_dataframe(str(tmp_path / "r.db"), field="energy_wh")
    assert len(df) >= 10
    assert list(df.columns[:3]) == ["time", "uid", "ts"]
    assert str(df["time"].dt.tz) == "UTC"
    assert (df["field"] == "energy_wh").all()
    assert df["value"].tolist() == sorted(df["value"].tolist())
    assert isinstance(df, pd.DataFrame)


def test_a_sample_the_database_refuses_is_dropped_and_the_rest_written(tmp_path):
    """A text with a lone surrogate cannot be stored (not encodable as UTF-8): after repeated
    failures of its batch the recorder writes item by item, drops that one (counted) and goes
    on recording."""
    src = PushSource()
    rec = _rec(tmp_path, [src])
    with rec:
        src.push({"a": 1.0, "note": "bad \ud800 text", "b": 2.0})
        src.push({"c": 3.0})
        rec.wait_for(lambda r: r.sink("sqlite").written == 3 and r.sink("sqlite").rejected == 1,
                     timeout=30)
        assert rec.sink("sqlite").spooled == 0
    fields = sorted(r["field"] for r in read_samples(str(tmp_path / "r.db")))
    assert fields == ["a", "b", "c"]
