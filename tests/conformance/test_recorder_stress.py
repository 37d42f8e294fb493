"""The recorder's stress layer: sinks and disks failing under a running recorder.

Every test counts the samples produced (by the source itself, not by the recorder) and the
samples stored (read back from the sink), and asserts produced == stored, or, where a bound
is exceeded on purpose, that the difference is exactly what the recorder reports as lost
(``status().lost``, an ERROR log line, ``close()`` returning False).

THE GUARANTEE (docs/recorder.rst, "What can be lost"): a sample is safe once it is committed
to a sink or to that sink's spool file. While the sink is down it goes to the spool; while the
spool cannot be written (disk full, read-only) it waits in memory, up to ``memory_max`` per
sink. A SIGKILL loses only what was in memory at that instant (not yet in a sink or a spool);
everything committed survives, and the next run drains the spool. Database sinks store each
sample once (a unique ``uid``), even when a batch is written twice because the kill fell
between the write and the spool acknowledgement; MQTT delivers at least once.

Each test runs in a few seconds: the sources are fast (2-5 ms per poll) and stop by
themselves after a fixed number of polls, so "produced" is a fixed number.
"""

from __future__ import annotations

import glob
import json
import logging
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
from typing import Any, Iterator, List

import psycopg
import pytest

from pyburnerkit._core.backoff import Reconnect
from pyburnerkit._core.timeouts import Deadline
from pyburnerkit.recorder import (MqttSink, PostgresSink, Recorder, Sample, Sink, SQLiteSink,
                                  SpoolStateChanged)
from pyburnerkit.recorder.sinks.base import SinkWorker
from pyburnerkit.recorder.sinks.sqlite import read_samples
from pyburnerkit.recorder.spool import Spool
from tests.helpers import wait_until
from tests.recorder.services import Mosquitto, PostgresCluster, SmallDisk
from tests.recorder.util import PushSource, Subscriber, collect, counter_source, gate_sink

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FAST = Reconnect(min_delay=0.02, max_delay=0.3)


@pytest.fixture
def small_disk() -> Iterator[SmallDisk]:
    disk = SmallDisk("512k")
    try:
        yield disk
    finally:
        disk.destroy()


@pytest.fixture
def data_disk() -> Iterator[SmallDisk]:
    """Room for a real SQLite database (its WAL grows to 4 MiB before it checkpoints)."""
    disk = SmallDisk("16m")
    try:
        yield disk
    finally:
        disk.destroy()


@pytest.fixture
def pg_cluster() -> Iterator[PostgresCluster]:
    cluster = PostgresCluster()
    try:
        yield cluster
    finally:
        cluster.destroy()


class LossLog(logging.Handler):
    """The recorder's ERROR lines (where losses and unwritable spools are reported)."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.lines: List[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


@pytest.fixture
def loss_log() -> Iterator[LossLog]:
    handler = LossLog()
    logger = logging.getLogger("pyburnerkit.recorder")
    logger.addHandler(handler)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)


def _produced(counter) -> List[float]:
    """What the source produced: energy_wh 1..n (one per poll; voltage_v rides along)."""
    return [float(i) for i in range(1, counter.count + 1)]


def _sqlite_rows(path: str) -> List[dict]:
    return list(read_samples(path))


# ------------------------------------------------------------------------- sink outages
def test_mqtt_broker_stopped_and_restarted_mid_run(tmp_path):
    """SIGTERM to mosquitto mid-run, restart on the same port: a persistent subscriber gets
    every sample the source produced (at least once), and nothing is lost or invented."""
    broker = Mosquitto(persistent=True)
    sub = None
    try:
        sub = Subscriber(broker.port, "pyburnerkit/testdev/#", client_id="stress-sub",
                         clean=False)
        source, counter = counter_source(interval=0.002, stop_after=600)
        rec = Recorder([source], [MqttSink("127.0.0.1", broker.port, ack_timeout=2,
                                           connect_timeout=2)],
                       spool_dir=str(tmp_path / "spool"), progress_interval=None,
                       sink_reconnect=FAST)
        got = collect(rec)
        with rec:
            rec.wait_for(lambda r: r.sink("mqtt").written >= 100, timeout=20)
            broker.stop()
            rec.wait_for(lambda r: not r.sink("mqtt").healthy and r.sink("mqtt").spooled,
                         timeout=20)
            broker.start()
            rec.wait_for(lambda r: counter.count == 600 and r.sink("mqtt").healthy
                         and r.sink("mqtt").written == r.received == 1200, timeout=30)
        assert rec.status().lost == 0
        produced = {s.uid for s in got}
        assert len(produced) == 1200

        def stored(messages):
            return {json.loads(p)["uid"] for t, p, _ in messages
                    if not t.endswith("/availability")}

        seen = sub.wait_for(lambda m: produced <= stored(m) and stored(m), timeout=20)
        assert seen == produced
        energy = sorted(s.value for s in got if s.field == "energy_wh")
        assert energy == _produced(counter)
    finally:
        if sub is not None:
            sub.close()
        broker.destroy()


def test_postgres_stopped_and_restarted_mid_run(tmp_path, pg_cluster):
    """PostgreSQL crashes (stop -m immediate) and comes back: every produced sample is in
    the table exactly once."""
    dsn = pg_cluster.create_db("stress")
    source, counter = counter_source(interval=0.002, stop_after=600)
    rec = Recorder([source], [PostgresSink(dsn, connect_timeout=2)],
                   spool_dir=str(tmp_path / "spool"), progress_interval=None,
                   sink_reconnect=FAST)
    with rec:
        rec.wait_for(lambda r: r.sink("postgres").written >= 100, timeout=20)
        pg_cluster.stop("immediate")
        rec.wait_for(lambda r: not r.sink("postgres").healthy
                     and r.sink("postgres").spooled >= 50, timeout=20)
        pg_cluster.start()
        rec.wait_for(lambda r: counter.count == 600 and r.sink("postgres").healthy
                     and r.sink("postgres").spooled == 0 and r.sink("postgres").queued == 0
                     and r.sink("postgres").written == 1200, timeout=30)
    assert rec.status().lost == 0
    with psycopg.connect(dsn) as conn:
        total, unique = conn.execute(
            "SELECT COUNT(*), COUNT(DISTINCT uid) FROM pyburnerkit_samples").fetchone()
        energy = [r[0] for r in conn.execute(
            "SELECT value FROM pyburnerkit_samples WHERE field = 'energy_wh' ORDER BY value")]
    assert total == unique == 2 * counter.count == 1200
    assert energy == _produced(counter)


# ------------------------------------------------------------------------- process kill
def _record_config(tmp_path, blocker: str) -> str:
    path = tmp_path / "rec.toml"
    path.write_text(textwrap.dedent(f"""
        [recorder]
        spool_dir = "spool"

        [[devices]]                     # about 3,000 samples/s
        family = "mate3"
        url = "sim://mate3"
        id = "house"
        interval = 0.1
        [devices.options]
        min_poll_interval = 0

        [[sinks]]
        type = "sqlite"
        name = "up"
        path = "up.db"

        [[sinks]]
        type = "sqlite"
        name = "down"
        path = "{blocker}/down.db"
    """))
    return str(path)


def _spooled_uids(tmp_path, sink: str) -> List[str]:
    uids = []
    for path in glob.glob(str(tmp_path / "spool" / f"{sink}-*.spool")):
        db = sqlite3.connect(path)
        try:
            uids += [json.loads(r)[1] for (r,) in db.execute("SELECT row FROM spool")]
        finally:
            db.close()
    return uids


def _run_record(tmp_path, *args: str) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=ROOT, XDG_CACHE_HOME=str(tmp_path / "cache"))
    return subprocess.Popen([sys.executable, "-m", "pyburnerkit.cli.main", "record", *args],
                            cwd=str(tmp_path), env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def test_sigkill_mid_run_then_restart_keeps_every_committed_and_spooled_sample(tmp_path):
    """``pyburnerkit record`` is SIGKILLed while one sink is up and one is down (spooling).
    What the up sink committed stays; what the down sink's spool held is delivered by the
    next run, once each; nothing is duplicated."""
    blocker = tmp_path / "blocker"
    blocker.write_text("a plain file where the down sink's directory should be")
    config = _record_config(tmp_path, str(blocker))
    proc = _run_record(tmp_path, config, "--progress", "0.1")
    try:
        for line in proc.stderr:  # progress lines: "... up 250.0/s spool 0, down ... spool N"
            if "down" in line and " spool " in line:
                spooled = int(line.rsplit(" spool ", 1)[1].split()[0].rstrip(","))
                if spooled >= 1000:
                    break
        else:
            raise AssertionError(f"the recorder never spooled: exit {proc.wait(10)}")
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == -signal.SIGKILL
    committed = {r["uid"] for r in _sqlite_rows(str(tmp_path / "up.db"))}
    spooled = _spooled_uids(tmp_path, "down")
    assert committed and len(spooled) >= 1000 and len(spooled) == len(set(spooled))

    os.remove(str(blocker))  # the down sink's directory is fixed; run again
    os.mkdir(str(blocker))
    again = _run_record(tmp_path, config, "--duration", "0.3", "--quiet")
    _, err = again.communicate(timeout=60)
    assert again.returncode == 0, err

    up = _sqlite_rows(str(tmp_path / "up.db"))
    down = _sqlite_rows(str(blocker / "down.db"))
    up_uids = [r["uid"] for r in up]
    down_uids = [r["uid"] for r in down]
    assert committed <= set(up_uids)  # committed before the kill: still there
    assert set(spooled) <= set(down_uids)  # spooled before the kill: delivered
    assert len(up_uids) == len(set(up_uids)) and len(down_uids) == len(set(down_uids))
    assert _spooled_uids(tmp_path, "down") == []  # the spool was drained


# ------------------------------------------------------------------------- disks
def test_disk_full_mid_run_with_the_database_on_the_same_disk(data_disk, loss_log):
    """The default layout: the SQLite database and the spool share one disk, and it fills up
    mid-run. The sink fails, the spool fails, samples wait in memory (reported); space
    returns and every produced sample is stored once, none rejected as "bad data"."""
    db = os.path.join(data_disk.path, "r.db")
    source, counter = counter_source(interval=0.002, stop_after=1000)
    spool_events: List[Any] = []
    rec = Recorder([source], [SQLiteSink(db)], spool_dir=os.path.join(data_disk.path, "sp"),
                   progress_interval=None, sink_reconnect=FAST)
    rec.subscribe(spool_events.append, SpoolStateChanged)
    with rec:
        rec.wait_for(lambda r: r.sink("sqlite").written >= 100, timeout=20)
        data_disk.fill()
        rec.wait_for(lambda r: r.status().sink("sqlite").spool_error is not None
                     and r.sink("sqlite").queued > 0, timeout=20)
        assert rec._workers[0].thread.is_alive()
        assert any("NOT on disk" in line for line in loss_log.lines), loss_log.lines
        data_disk.free()
        rec.wait_for(lambda r: counter.count == 1000 and r.sink("sqlite").written == 2000,
                     timeout=30)
    status = rec.status()
    assert status.lost == 0 and status.sink("sqlite").rejected == 0
    rows = _sqlite_rows(db)
    assert len(rows) == len({r["uid"] for r in rows}) == 2 * counter.count
    assert sorted(r["value"] for r in rows if r["field"] == "energy_wh") == _produced(counter)
    assert [e.writable for e in spool_events][:1] == [False] and spool_events[-1].writable


def test_unwritable_spool_refuses_to_start_and_keeps_what_an_earlier_run_spooled(
        tmp_path, small_disk, capsys):
    """Run 1 spools everything (its sink is down). The spool's file system is then read-only
    (Linux does that after disk errors; a mounted file system cannot turn read-only under open
    files, so this happens between runs): run 2 refuses in one line with exit 2, losing
    nothing. Once writable again, run 3 delivers every sample run 1 produced."""
    from pyburnerkit.cli.main import main
    blocker = tmp_path / "blocker"
    blocker.write_text("a plain file where the database directory should be")
    config = tmp_path / "rec.toml"
    config.write_text(textwrap.dedent(f"""
        [recorder]
        spool_dir = "{small_disk.path}"

        [[devices]]
        family = "afterburner"
        url = "sim://?speed=30&tick=0.01"
        id = "van"

        [[sinks]]
        type = "sqlite"
        path = "{blocker}/van.db"
    """))
    args = ["record", str(config), "--duration", "0.5", "--quiet"]
    assert main(args) == 0
    first = capsys.readouterr().err
    received = int(first.split("record: ", 2)[2].split()[0])
    spooled = _spool_contents(small_disk.path)
    assert received > 0 and len(spooled) == received  # all of run 1 is on disk

    small_disk.read_only()
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.count("\n") == 1, err
    assert err.startswith("pyburnerkit: error: spool directory") and "Read-only" in err
    small_disk.read_only(False)
    assert _spool_contents(small_disk.path) == spooled  # run 2 changed nothing

    os.remove(str(blocker))
    os.mkdir(str(blocker))
    assert main(args) == 0
    stored = [r["uid"] for r in _sqlite_rows(str(blocker / "van.db"))]
    assert set(spooled) <= set(stored) and len(stored) == len(set(stored))
    assert _spool_contents(small_disk.path) == []


def _spool_contents(directory: str) -> List[str]:
    uids = []
    for path in sorted(glob.glob(os.path.join(directory, "*.spool"))):
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            uids += [json.loads(r)[1] for (r,) in db.execute("SELECT row FROM spool ORDER BY id")]
        finally:
            db.close()
    return uids


def test_memory_bound_exceeded_on_purpose_is_reported_exactly(small_disk, loss_log):
    """Sink down and no room on the disk, with a small memory bound: the difference between
    produced and stored is exactly what the recorder reports lost, and close() says so."""
    sink = gate_sink()
    sink.up.clear()
    src = PushSource()
    rec = Recorder([src], [sink], spool_dir=small_disk.path, progress_interval=None,
                   memory_max=500, sink_reconnect=FAST)
    rec.start()
    try:
        small_disk.fill()
        for i in range(1000):
            src.push({"n": i, "m": -i})
        rec.wait_for(lambda r: r.status().lost >= 1500, timeout=20)
        small_disk.free()
        sink.up.set()
        rec.wait_for(lambda r: r.sink("gate").queued == 0 and r.sink("gate").spooled == 0
                     and len(sink.stored) == 500, timeout=20)
    finally:
        ok = rec.close(timeout=10)
    produced, stored, lost = 2000, len(sink.stored), rec.status().lost
    assert (stored, lost) == (500, 1500) and produced == stored + lost
    assert ok is False
    assert any("LOST" in line for line in loss_log.lines)
    kept = sorted(s.value for s in sink.stored.values() if s.field == "n")
    assert kept == list(range(750, 1000))  # the oldest went first


# ------------------------------------------------------------------------- raising code
class CrankySink(Sink):
    """A sink with bugs everywhere: describe() and maintain() always raise, open() fails the
    first 3 times, write() fails the first 4 times with an odd exception and then refuses any
    sample whose field is "poison" (bad data)."""

    name = "cranky"

    def __init__(self) -> None:
        self.opens = 0
        self.writes = 0
        self.stored: dict = {}
        self.lock = threading.Lock()

    def open(self) -> None:
        self.opens += 1
        if self.opens <= 3:
            raise TypeError("bug in open")

    def write(self, items: Any) -> None:
        self.writes += 1
        if self.writes <= 4:
            raise KeyError("bug in write")
        if any(isinstance(i, Sample) and i.field == "poison" for i in items):
            raise ValueError("poison sample")
        with self.lock:
            self.stored.update((i.uid, i) for i in items if isinstance(i, Sample))

    def describe(self, *args: Any) -> None:
        raise RuntimeError("bug in describe")

    def maintain(self) -> None:
        raise RuntimeError("bug in maintain")

    def close(self) -> None:
        raise RuntimeError("bug in close")


def test_raising_sinks_and_callbacks_never_kill_the_recorder(tmp_path):
    cranky = CrankySink()
    good = gate_sink("good")
    source, counter = counter_source(interval=0.002, stop_after=500)
    src = PushSource("poisoner")
    rec = Recorder([source, src], [cranky, good], spool_dir=str(tmp_path / "spool"),
                   progress_interval=0.05, sink_reconnect=FAST)
    calls = []

    def bad_callback(event: Any) -> None:
        calls.append(event)
        raise RuntimeError("bug in a user callback")

    rec.subscribe(bad_callback)
    rec.start()
    try:
        src.push({"poison": 1.0, "fine": 2.0})
        rec.wait_for(lambda r: counter.count == 500 and len(good.stored) == 1002
                     and len(cranky.stored) == 1001 and r.sink("cranky").rejected == 1,
                     timeout=30)
        assert all(w.thread.is_alive() for w in rec._workers)
        assert len(calls) > 3  # the callback kept being called after raising
    finally:
        ok = rec.close(timeout=10)
    assert ok is False  # the poison sample never reached the cranky sink: reported
    status = rec.status()
    assert status.lost == 1 and status.sink("cranky").rejected == 1
    assert status.sink("good").lost == 0
    fine = [s for s in cranky.stored.values() if s.field == "fine"]
    assert len(fine) == 1  # only the refused sample is missing


def test_a_worker_whose_own_code_raises_carries_on(tmp_path):
    """An unexpected exception inside the worker loop (here: its progress hook) is logged and
    backed off; the worker keeps delivering and nothing is lost."""
    sink = gate_sink()
    failures = iter(range(3))

    def flaky_hook() -> None:
        if next(failures, None) is not None:
            raise RuntimeError("bug in a hook")

    spool = Spool(str(tmp_path / "w.spool"), 1000)
    worker = SinkWorker(sink, spool, reconnect=FAST, on_progress=flaky_hook)
    worker.start()
    try:
        items = [Sample(f"u-{i}", float(i), "f", "d", "", "x", i) for i in range(300)]
        for i in range(0, 300, 30):
            worker.put(items[i:i + 30])
        wait_until(lambda: len(sink.stored) == 300, timeout=10, message="all delivered")
        assert worker.thread.is_alive()
    finally:
        deadline = Deadline(5.0)
        worker.stop(deadline)
        assert worker.join(deadline)
    assert worker.dropped == 0 and worker.failures >= 3
