"""``pyburnerkit record`` and ``pyburnerkit export``, in process and as a real subprocess."""

from __future__ import annotations

import csv
import io
import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap

import pytest

from pyburnerkit.cli.main import main

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture(autouse=True)
def _private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))  # the default spool dir


def _count(db):
    conn = sqlite3.connect(db)
    try:
        return conn.execute("SELECT COUNT(*) FROM samples").fetchone()[0]
    finally:
        conn.close()


def _children():
    """Processes whose parent is this one (the demo's dbus-daemon, for example)."""
    me = str(os.getpid())
    found = set()
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/stat") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[1] == me and fields[0] != "Z":
            found.add(int(pid))
    return found


def test_record_demo_for_a_duration_then_export(tmp_path, capsys):
    db = str(tmp_path / "demo.db")
    before = _children()
    assert main(["record", "--demo", "--db", db, "--duration", "3", "--progress", "0.5"]) == 0
    assert _children() <= before  # no simulator process left behind
    err = capsys.readouterr().err
    assert "recording 6 device(s)" in err  # every family's simulator (each one's data:
    # test_demo_sources_cover_every_family, which waits for it instead of a fixed duration)
    assert "samples |" in err  # live progress lines
    summary = [line for line in err.splitlines() if line.startswith("record: ") and
               "received" in line][0]
    received = int(summary.split()[1])
    assert received == _count(db) > 0
    assert f"sqlite {received} written" in summary

    assert main(["export", db, "--format", "csv"]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert len(rows) == received
    assert rows[0]["time_utc"].endswith("Z")
    assert set(rows[0]) == {"time_utc", "uid", "ts", "family", "device", "channel", "field",
                            "value", "unit", "text"}

    out = tmp_path / "x.jsonl"
    assert main(["export", db, "--format", "jsonl", "--field", "TempCurrent", "-o",
                 str(out)]) == 0
    lines = [json.loads(x) for x in out.read_text().splitlines()]
    assert lines and all(x["field"] == "TempCurrent" and x["unit"] == "°C" for x in lines)


def test_record_config(tmp_path, capsys):
    cfg = tmp_path / "rec.toml"
    cfg.write_text(textwrap.dedent("""
        [[devices]]
        family = "afterburner"
        url = "sim://?speed=30&tick=0.05"
        id = "van"

        [[sinks]]
        type = "sqlite"
        path = "van.db"
    """))
    assert main(["record", str(cfg), "--duration", "1", "--quiet"]) == 0
    err = capsys.readouterr().err
    assert "samples |" not in err
    assert _count(str(tmp_path / "van.db")) > 0


@pytest.mark.parametrize("argv, message", [
    (["record"], "CONFIG file"),
    (["record", "x.toml", "--demo"], "not both"),
    (["record", "--demo", "--duration", "0"], "--duration"),
    (["record", "/nonexistent.toml"], "not found"),
    (["export", "/nonexistent.db"], "no recording"),
])
def test_usage_errors_exit_2(argv, message, capsys):
    assert main(argv) == 2
    assert message in capsys.readouterr().err


def test_export_refuses_a_file_that_is_not_a_recording(tmp_path, capsys):
    bad = tmp_path / "x.db"
    bad.write_text("hello")
    assert main(["export", str(bad)]) == 2
    assert "not a pyburnerkit recording" in capsys.readouterr().err


def test_ctrl_c_stops_cleanly_with_everything_flushed(tmp_path):
    """A real process: SIGINT while recording; it exits 0, and every sample it reports as
    received is in the database; nothing is left running."""
    env = dict(os.environ, PYTHONPATH=ROOT, XDG_CACHE_HOME=str(tmp_path / "cache"))
    proc = subprocess.Popen([sys.executable, "-m", "pyburnerkit.cli.main", "record", "--demo",
                             "--progress", "0.2"], cwd=str(tmp_path), env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        for line in proc.stderr:
            if "samples |" in line and not line.split("]")[1].strip().startswith("0 "):
                break
        proc.send_signal(signal.SIGINT)
        _, rest = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 130, rest  # interrupted, as every command reports Ctrl-C
    summary = [x for x in rest.splitlines() if x.startswith("record: ") and "received" in x][0]
    received = int(summary.split()[1])
    assert received > 0 and _count(str(tmp_path / "pyburnerkit.db")) == received


def test_demo_sources_cover_every_family(tmp_path):
    from pyburnerkit.recorder import Recorder, SQLiteSink
    from pyburnerkit.recorder.sources import demo_sources
    before = _children()
    sources, cleanups, notes = demo_sources()
    try:
        assert notes == []
        rec = Recorder(sources, [SQLiteSink(str(tmp_path / "d.db"))],
                       spool_dir=str(tmp_path / "spool"), progress_interval=None)
        with rec:
            rec.wait_for(lambda r: len(r.device_counts) == 6, timeout=60)
    finally:
        for cleanup in cleanups:
            cleanup()
    assert sorted(rec.device_counts) == [
        "afterburner/demo-heater", "arbin/demo-cycler", "de1/demo-de1", "mate3/demo-mate3",
        "scale/demo-skale", "victron/demo-venus"]
    assert _children() <= before
