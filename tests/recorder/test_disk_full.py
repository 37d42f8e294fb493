"""The spool's disk fills up, or cannot be written at all (a real tmpfs, mounted per test).

Disk full: the sink worker keeps running, holds samples in memory up to ``memory_max`` per
sink, says so loudly (log, :meth:`Recorder.status`, events, ``close()`` returning False and a
non-zero exit of ``pyburnerkit record`` once anything was lost) and delivers everything once
space returns, or once the sink returns, whichever comes first. A disk that the spool's own
backlog filled never stops delivery (SQLite needs free space even to delete delivered rows).
An unwritable spool directory is a one-line ConfigurationError at start.

Sizes are computed from the sample counts, and every step waits for its own condition, so
no result depends on which retry timer fires first or on how busy the machine is.
"""

from __future__ import annotations

import logging
import os
import textwrap
import threading
import time

import pytest

from pyburnerkit._core.backoff import Reconnect
from pyburnerkit.cli.main import main
from pyburnerkit.errors import ConfigurationError
from pyburnerkit.recorder import Recorder
from pyburnerkit.recorder.samples import SampleFactory
from pyburnerkit.recorder.spool import Spool, SpoolError

from .services import SmallDisk
from .util import PushSource, collect, gate_sink

FAST = Reconnect(min_delay=0.02, max_delay=0.2)


class ErrorLog(logging.Handler):
    """Collects the recorder's ERROR records and lets a test wait for the first one."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records = []
        self.seen = threading.Event()

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record.getMessage())
        self.seen.set()


@pytest.fixture
def error_log():
    handler = ErrorLog()
    logger = logging.getLogger("pyburnerkit.recorder")
    logger.addHandler(handler)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)


def _push(src, start, stop):
    for i in range(start, stop):
        src.push({"v": i, "w": -i})  # two samples per push


def _like_pushed(start, stop):
    """The samples ``_push(src, start, stop)`` makes, built directly (same shape and size)."""
    factory = SampleFactory()
    out = []
    for i in range(start, stop):
        for field, value in (("v", i), ("w", -i)):
            out.append(factory.make(time.time(), "testdev", "push1", "", field, value))
    return out


def _spool_bytes(tmp_path, batches):
    """What a spool takes on disk (database, WAL and WAL index) after putting ``batches``."""
    directory = tmp_path / "measure"
    spool = Spool(str(directory / "m.spool"))
    try:
        for batch in batches:
            spool.put(batch)
        # measured while open: closing checkpoints the WAL into the database and removes it
        return sum(os.path.getsize(directory / f) for f in os.listdir(directory))
    finally:
        spool.close()


def _disk_just_big_enough(tmp_path, batches):
    """A tmpfs sized from the samples themselves: the spool's bytes for ``batches`` plus a
    bounded margin (a quarter and 64 KiB), so spooling them fills most of the disk. The test
    then takes the margin too (``fill()``), so nothing depends on the exact row sizes."""
    need = _spool_bytes(tmp_path, batches)
    return SmallDisk(f"{(need + need // 4 + 64 * 1024) // 1024 + 1}k")


def test_disk_full_keeps_the_worker_running_and_delivers_everything_later(
        small_disk, error_log):
    """Measured before the fix: the worker died on the first failed spool write and every
    sample still in its memory queue was lost, while the log said they were in the spool.

    The sink comes back while the disk is still full (the other order, space first, is
    test_a_disk_refilled_by_the_spool_itself_never_wedges_delivery): what waited in memory
    goes straight to the sink, the 200 spooled earlier are read from the full disk and
    delivered too, each exactly once. Each step waits for its own condition, so the result
    does not depend on which retry timer fires first."""
    sink = gate_sink()
    sink.up.clear()  # the sink is down: everything goes to the spool
    src = PushSource()
    rec = Recorder([src], [sink], spool_dir=os.path.join(small_disk.path, "spool"),
                   progress_interval=None, sink_reconnect=FAST)
    got = collect(rec)
    rec.start()
    try:
        _push(src, 0, 100)
        rec.wait_for(lambda r: r.sink("gate").spooled == 200, timeout=10)
        small_disk.fill()
        _push(src, 100, 2400)  # 4,600 more samples with no room on the disk
        assert error_log.seen.wait(10), "nobody said that the spool cannot be written"
        worker = rec._workers[0]
        rec.wait_for(lambda r: r.sink("gate").queued > 0, timeout=10)
        assert worker.thread.is_alive(), "the sink worker died on a full disk"
        assert not any("in the spool" in m and "NOT" not in m for m in error_log.records)
        assert any("NOT on disk" in m for m in error_log.records), error_log.records
        # every sample is held: in memory or in the spool. Waited for, not sampled once: a
        # batch the worker is trying to spool right now is in neither count until it fails
        rec.wait_for(lambda r: r.sink("gate").queued + r.sink("gate").spooled == 4800,
                     timeout=10)
        held = rec.status().sink("gate")
        assert held.spool_error and "full" in held.spool_error.lower()
        assert held.dropped == 0
        sink.up.set()  # the sink returns; the disk is still full
        rec.wait_for(lambda r: len(sink.stored) == 4800, timeout=15)
        assert sink.writes == 4800  # nothing written twice
        small_disk.free()  # and space returns: the spool works again
        rec.wait_for(lambda r: r.sink("gate").spool_error is None, timeout=10)
    finally:
        ok = rec.close(timeout=10)
    assert ok is True  # nothing was lost
    assert set(sink.stored) == {s.uid for s in got} and len(got) == 4800
    status = rec.status()
    assert status.lost == 0 and status.sink("gate").spool_error is None


def test_a_spool_that_filled_its_own_disk_hands_out_every_item_exactly_once(tmp_path):
    """Regression (measured before the fix): the spool's WAL filled the disk, so removing
    delivered items (SQLite must append to its WAL even to DELETE) failed with "database or
    disk is full", and :meth:`Spool.peek` handed out the same oldest batch again and again:
    delivery was stuck for good. Now an acknowledgement holds even when the removal cannot be
    written, and a file that holds only delivered items is discarded to give the space back."""
    items = _like_pushed(0, 2400)
    disk = _disk_just_big_enough(tmp_path, [items])
    try:
        spool = Spool(os.path.join(disk.path, "s.spool"))
        spool.put(items)
        disk.fill()  # not a byte left: the spool itself fills the disk
        handed_out, refusals = [], []
        for _ in range(3 * len(items) // 500):  # bounded: a stuck spool fails, never hangs
            last, batch = spool.peek(500)
            if not batch:
                break
            handed_out.extend(batch)
            try:
                spool.ack(last)
            except SpoolError as exc:
                refusals.append(exc)
        assert [s.uid for s in handed_out] == [s.uid for s in items]  # all, once, in order
        assert refusals and all(exc.full for exc in refusals)  # the full disk was reported
        assert len(spool) == 0
        # everything was delivered, so the file was given up: the space is back although the
        # filler still takes the rest of the disk, and the spool takes new items again
        spool.put(items[:10])
        assert len(spool) == 10 and spool.peek(100)[1] == items[:10]
        spool.close()
    finally:
        disk.destroy()


def test_acknowledged_items_whose_removal_failed_are_removed_by_the_next_write(small_disk):
    """The acknowledgement of a batch holds although the disk could not record it; the next
    write that fits removes those items, and the item limit counts only undelivered ones."""
    items = _like_pushed(0, 150)  # 300 samples
    spool = Spool(os.path.join(small_disk.path, "s.spool"), max_items=300)
    try:
        spool.put(items)
        small_disk.fill()
        last, batch = spool.peek(100)
        with pytest.raises(SpoolError) as info:
            spool.ack(last)
        assert info.value.full and len(spool) == 200
        assert spool.peek(1)[1] == [items[100]]  # never handed out again
        small_disk.free()
        more = _like_pushed(150, 225)  # 150 samples: 350 undelivered > 300
        assert spool.put(more) == 50  # the 50 oldest *undelivered* ones are dropped
        assert spool.peek(1000)[1] == items[150:] + more
        rows = spool._open().execute("SELECT COUNT(*) FROM spool").fetchone()[0]
        assert rows == 300  # the delivered ones left the file with that write
    finally:
        spool.close()


def test_a_crash_before_the_removal_sends_those_items_again(small_disk):
    """The documented at-least-once window: a batch acknowledged while the disk was full is
    still in the file, so the next run hands it out again (the database sinks store each
    uid once)."""
    path = os.path.join(small_disk.path, "s.spool")
    items = _like_pushed(0, 10)
    spool = Spool(path)
    spool.put(items)
    small_disk.fill()
    last, _ = spool.peek(5)
    with pytest.raises(SpoolError):
        spool.ack(last)
    small_disk.free()
    spool.close()  # as far as the file goes, a crash: the removal was never written
    again = Spool(path)
    try:
        assert len(again) == 20 and again.peek(100)[1] == items
    finally:
        again.close()


def test_a_crash_while_a_delivered_spool_file_was_given_up_leaves_a_usable_spool(tmp_path):
    """The file is given up database first: a crash right after leaves its WAL and WAL
    index without a database. The next run starts an empty spool (SQLite deletes a WAL
    whose database is empty) instead of replaying the old WAL or refusing the file."""
    path = str(tmp_path / "s.spool")
    spool = Spool(path)
    spool.put(_like_pushed(0, 50))
    saved = {}
    for suffix in ("-wal", "-shm"):
        with open(path + suffix, "rb") as fh:
            saved[suffix] = fh.read()
    spool.close()
    for name in os.listdir(tmp_path):
        os.unlink(tmp_path / name)
    for suffix, data in saved.items():  # what the crash left: no database, its WAL and index
        with open(path + suffix, "wb") as fh:
            fh.write(data)
    again = Spool(path)
    try:
        assert len(again) == 0 and again.peek(10) == (0, [])
        fresh = _like_pushed(100, 102)
        again.put(fresh)
        assert again.peek(10)[1] == fresh
    finally:
        again.close()


def test_a_disk_refilled_by_the_spool_itself_never_wedges_delivery(tmp_path, error_log):
    """Regression for a full-suite failure (measured before the fix: 2,000 of 4,800 samples
    delivered, then nothing for 30 s, the same batch written again and again). Space returns
    while the sink is still down, the worker moves its memory backlog into the spool, and
    that refills the disk; then the sink comes back. Every sample is delivered exactly once,
    and the spool's file is given back once it holds only delivered samples."""
    disk = _disk_just_big_enough(tmp_path, [_like_pushed(0, 100), _like_pushed(100, 2400)])
    try:
        sink = gate_sink()
        sink.up.clear()
        src = PushSource()
        rec = Recorder([src], [sink], spool_dir=os.path.join(disk.path, "spool"),
                       progress_interval=None, sink_reconnect=FAST)
        got = collect(rec)
        rec.start()
        try:
            _push(src, 0, 100)
            rec.wait_for(lambda r: r.sink("gate").spooled == 200, timeout=10)
            disk.fill()
            _push(src, 100, 2400)
            rec.wait_for(lambda r: r.sink("gate").queued == 4600
                         and r.sink("gate").spool_error, timeout=10)
            disk.free()  # space returns while the sink is still down: all goes to the spool
            rec.wait_for(lambda r: r.sink("gate").spooled == 4800, timeout=10)
            disk.fill()  # and the spool has (all but) filled the disk again
            sink.up.set()
            rec.wait_for(lambda r: len(sink.stored) == 4800, timeout=15)
            rec.wait_for(lambda r: r.sink("gate").spool_error is None, timeout=10)
        finally:
            ok = rec.close(timeout=10)
        assert ok is True
        assert set(sink.stored) == {s.uid for s in got} and len(got) == 4800
        assert sink.writes == 4800  # none written twice: one run, no crash
        assert rec.status().lost == 0
        assert any("full" in m for m in error_log.records)  # the full spool was reported
    finally:
        disk.destroy()


def test_a_disk_full_from_the_start_is_survived_too(small_disk, error_log):
    """No room even to create the spool file: recording starts all the same (memory only,
    reported), and the spool is created once there is space."""
    from pyburnerkit.recorder import SpoolStateChanged
    small_disk.fill()
    sink = gate_sink()
    sink.up.clear()
    src = PushSource()
    events = []
    rec = Recorder([src], [sink], spool_dir=small_disk.path, progress_interval=None,
                   sink_reconnect=FAST, on_event=events.append)
    with rec:
        _push(src, 0, 500)
        rec.wait_for(lambda r: r.status().sink("gate").spool_error and
                     r.status().sink("gate").queued == 1000, timeout=10)
        small_disk.free()
        rec.wait_for(lambda r: r.sink("gate").spooled == 1000, timeout=10)
        sink.up.set()
        rec.wait_for(lambda r: len(sink.stored) == 1000, timeout=10)
    spool_events = [(e.writable, e.in_memory) for e in events if isinstance(e, SpoolStateChanged)]
    assert spool_events[0][0] is False and spool_events[-1][0] is True
    assert rec.status().lost == 0


def test_over_the_memory_bound_the_oldest_are_dropped_loudly(small_disk, error_log):
    sink = gate_sink()
    sink.up.clear()
    src = PushSource()
    rec = Recorder([src], [sink], spool_dir=small_disk.path, progress_interval=None,
                   memory_max=1000, sink_reconnect=FAST)
    got = collect(rec)
    rec.start()
    try:
        small_disk.fill()
        _push(src, 0, 1500)  # 3,000 samples, room for 1,000 in memory, none on disk
        rec.wait_for(lambda r: r.received == 3000 and r.status().lost >= 2000, timeout=10)
        assert any("LOST" in m for m in error_log.records), error_log.records
        small_disk.free()
        sink.up.set()
        rec.wait_for(lambda r: r.sink("gate").spooled == 0 and r.sink("gate").queued == 0
                     and len(sink.stored) >= 1000, timeout=10)
    finally:
        ok = rec.close(timeout=10)
    assert ok is False  # samples were lost: close() says so
    status = rec.status()
    stored = len(sink.stored)
    assert status.lost == 3000 - stored and status.sink("gate").dropped == status.lost
    newest = {s.uid for s in got[-1000:]}
    assert newest <= set(sink.stored)  # the oldest were dropped, the newest kept


def test_close_returns_false_when_a_full_spool_dropped_samples(tmp_path):
    """The spool's item limit is reached on purpose: the oldest are dropped (counted), and
    close() reports it instead of returning True."""
    sink = gate_sink()
    sink.up.clear()
    src = PushSource()
    rec = Recorder([src], [sink], spool_dir=str(tmp_path / "spool"), progress_interval=None,
                   spool_max=100)
    rec.start()
    try:
        _push(src, 0, 250)
        rec.wait_for(lambda r: r.sink("gate").dropped == 400, timeout=10)
    finally:
        ok = rec.close(timeout=10)
    assert ok is False


def _one_line_configuration_error(exc_info, where):
    message = str(exc_info.value)
    assert "\n" not in message and where in message, message
    assert isinstance(exc_info.value, ConfigurationError)


def test_a_read_only_spool_directory_is_refused_at_start(small_disk):
    os.mkdir(os.path.join(small_disk.path, "spool"))
    small_disk.read_only()
    sink = gate_sink()
    rec = Recorder([PushSource()], [sink], spool_dir=os.path.join(small_disk.path, "spool"),
                   progress_interval=None)
    with pytest.raises(ConfigurationError) as info:
        rec.start()
    _one_line_configuration_error(info, "spool")
    assert "read-only" in str(info.value).lower()
    assert not rec.running
    assert not any(t.name.startswith("pyburnerkit-recorder") and t.is_alive()
                   for t in threading.enumerate())


def test_a_spool_directory_under_a_plain_file_is_refused_at_start(tmp_path):
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("x")
    rec = Recorder([PushSource()], [gate_sink()], spool_dir=str(blocker / "spool"),
                   progress_interval=None)
    with pytest.raises(ConfigurationError) as info:
        rec.start()
    _one_line_configuration_error(info, str(blocker))


def _config(tmp_path, spool_dir, **recorder):
    extra = "".join(f"{k} = {v}\n" for k, v in recorder.items())
    blocker = tmp_path / "blocker"
    blocker.write_text("the database directory is a plain file: the sink stays down")
    path = tmp_path / "rec.toml"
    path.write_text(textwrap.dedent(f"""
        [recorder]
        spool_dir = "{spool_dir}"
        """) + extra + textwrap.dedent(f"""
        [[devices]]
        family = "afterburner"
        url = "sim://?speed=30&tick=0.02"
        id = "van"

        [[sinks]]
        type = "sqlite"
        path = "{blocker}/van.db"
    """))
    return str(path)


def test_cli_read_only_spool_is_one_line_exit_2(tmp_path, small_disk, capsys):
    small_disk.read_only()
    code = main(["record", _config(tmp_path, small_disk.path), "--duration", "1", "--quiet"])
    err = capsys.readouterr().err
    assert code == 2, err
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.startswith("pyburnerkit: error:")]
    assert len(lines) == 1 and "spool" in lines[0] and "read-only" in lines[0].lower()


def test_cli_exits_non_zero_when_samples_were_lost(tmp_path, capsys):
    code = main(["record", _config(tmp_path, str(tmp_path / "spool"), spool_max=5),
                 "--duration", "1", "--quiet"])
    err = capsys.readouterr().err
    assert code == 1, err
    assert "LOST" in err


def test_a_sink_whose_own_disk_is_full_never_rejects_samples_as_bad_data(tmp_path):
    """The SQLite database's disk fills up while the spool (elsewhere) holds a backlog: the
    spool's head batch fails again and again although the sink reopens fine. That is an
    outage, not bad data: no sample may be dropped as "refused by the sink"."""
    from pyburnerkit.recorder import SQLiteSink
    from .services import SmallDisk
    disk = SmallDisk("16m")  # room for SQLite's WAL (it grows to 4 MiB before checkpoints)
    try:
        src = PushSource()
        rec = Recorder([src], [SQLiteSink(os.path.join(disk.path, "r.db"))],
                       spool_dir=str(tmp_path / "spool"), progress_interval=None,
                       sink_reconnect=FAST)
        with rec:
            _push(src, 0, 100)
            rec.wait_for(lambda r: r.sink("sqlite").written == 200, timeout=10)
            disk.fill()
            _push(src, 100, 1100)
            rec.wait_for(lambda r: r.sink("sqlite").failures >= 8
                         and r.sink("sqlite").spooled > 0, timeout=20)
            disk.free()
            rec.wait_for(lambda r: r.sink("sqlite").written == 2200, timeout=20)
        stats = rec.sink("sqlite")
        assert stats.rejected == 0 and stats.lost == 0
    finally:
        disk.destroy()
