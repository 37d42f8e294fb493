"""The Recorder's threading and shutdown contract, events, and real Afterburner sources."""

from __future__ import annotations

import sqlite3
import threading

import pytest

from pyburnerkit.afterburner import AfterburnerClient
from pyburnerkit.afterburner.sim import AfterburnerSim
from pyburnerkit.errors import ConfigurationError, DeviceTimeoutError
from pyburnerkit.recorder import (AfterburnerSource, DeviceStateChanged, Recorder,
                                  RecorderProgress, SQLiteSink, adapt)
from pyburnerkit.recorder.sources import CallableSource

from .util import PushSource, collect, counter_source


def _rec(tmp_path, sources, **kw):
    kw.setdefault("progress_interval", None)
    return Recorder(sources, [SQLiteSink(str(tmp_path / "r.db"))],
                    spool_dir=str(tmp_path / "spool"), **kw)


@pytest.fixture
def heater_sim():
    sim = AfterburnerSim(tick=0.05, speed=30.0, seed=5).start("127.0.0.1", 0)
    try:
        yield sim
    finally:
        sim.close()


def test_thread_names_and_clean_close(tmp_path):
    source, _ = counter_source(device="m1")
    rec = _rec(tmp_path, [source], progress_interval=0.5)
    rec.start()
    try:
        rec.wait_for(lambda r: r.received >= 4, timeout=10)
        names = {t.name for t in threading.enumerate()}
        assert {"pyburnerkit-recorder-events", "pyburnerkit-recorder-sink-sqlite",
                "pyburnerkit-recorder-poll-m1", "pyburnerkit-recorder-timer"} <= names
    finally:
        assert rec.close(timeout=10) is True
    assert rec.close() is True  # idempotent
    names = {t.name for t in threading.enumerate()}
    assert not any(n.startswith("pyburnerkit-recorder") for n in names)


def test_close_from_a_callback(tmp_path):
    source, _ = counter_source()
    rec = _rec(tmp_path, [source])
    done = threading.Event()
    result = []

    def on_event(event):
        if not done.is_set():
            done.set()
            result.append(rec.close(timeout=5))

    rec.subscribe(on_event)
    rec.start()
    assert done.wait(10)
    rec.close(timeout=10)
    assert result == [True]
    assert not rec.running


def test_progress_events_report_rates_and_sinks(tmp_path):
    source, _ = counter_source()
    rec = _rec(tmp_path, [source], progress_interval=0.2)
    events = rec.events(10.0, RecorderProgress)
    with rec:
        progress = next(p for p in events if p.received > 0 and p.sinks[0].written > 0)
    assert "testdev/meter1" in progress.device_rates
    assert progress.device_rates["testdev/meter1"] > 0
    assert progress.sinks[0].name == "sqlite" and progress.sinks[0].healthy
    line = progress.format()
    assert "samples" in line and "testdev/meter1" in line
    assert "sqlite" in line and " spool 0" in line  # spool depth is always shown


def test_bad_arguments_are_refused(tmp_path):
    a, _ = counter_source(device="same")
    b, _ = counter_source(device="same")
    with pytest.raises(ConfigurationError, match="share a device id"):
        Recorder([a, b], [SQLiteSink(str(tmp_path / "x.db"))])
    with pytest.raises(ConfigurationError, match="progress_interval"):
        Recorder([], [SQLiteSink(str(tmp_path / "x.db"))], progress_interval=-1)
    # a batch of 0 would never write anything; refused before any thread starts
    with pytest.raises(ConfigurationError, match="batch_size must be a whole number >= 1"):
        Recorder([], [SQLiteSink(str(tmp_path / "x.db"))], batch_size=0)
    with pytest.raises(ConfigurationError, match="spool_max"):
        Recorder([], [SQLiteSink(str(tmp_path / "x.db"))], spool_max=-5)
    with pytest.raises(ConfigurationError, match="interval"):
        CallableSource(lambda: {}, interval=0)
    with pytest.raises(ConfigurationError, match="neither a Source"):
        adapt(object())


def test_wait_for_times_out(tmp_path):
    rec = _rec(tmp_path, [])
    with rec:
        with pytest.raises(DeviceTimeoutError):
            rec.wait_for(lambda r: r.received > 0, timeout=0.2)


def test_push_source_never_blocked_by_a_down_sink(tmp_path):
    """The sink cannot open; pushing thousands of samples still returns at once."""
    blocker = tmp_path / "f"
    blocker.write_text("x")
    src = PushSource()
    rec = Recorder([src], [SQLiteSink(str(blocker / "r.db"))], spool_dir=str(tmp_path / "sp"),
                   progress_interval=None, spool_max=500)
    with rec:
        for i in range(2000):
            src.push({"v": i})
        # the spool keeps the newest 500; the 1500 oldest are dropped and counted
        rec.wait_for(lambda r: r.sink("sqlite").dropped == 1500, timeout=20)
        stats = rec.sink("sqlite")
        assert stats.spooled == 500 and stats.queued == 0 and stats.written == 0


def test_records_afterburner_over_websocket_and_survives_reconnect(tmp_path, heater_sim):
    client = AfterburnerClient(f"ws://127.0.0.1:{heater_sim.port}/", retry_first=True)
    source = AfterburnerSource(client, device="cabin", owns_client=True)
    rec = _rec(tmp_path, [source])
    got = collect(rec)
    states = []
    rec.subscribe(lambda e: states.append(e.state), DeviceStateChanged)
    with rec:
        rec.wait_for(lambda r: any(s.field == "RunState" for s in got), timeout=20)
        before = rec.received
        heater_sim.disconnect()  # the device drops the link; the client reconnects by itself
        rec.wait_for(lambda r: "reconnecting" in states and states[-1] == "connected",
                     timeout=20)
        rec.wait_for(lambda r: r.received > before + 5, timeout=20)
        rec.wait_for(lambda r: r.sink("sqlite").written == r.received, timeout=20)
    assert client.closed  # the recorder owned it
    fields = {s.field for s in got}
    assert {"TempCurrent", "RunState", "InputVoltage", "ErrorState"} <= fields
    by_field = {s.field: s for s in got}
    assert by_field["TempCurrent"].unit == "°C"
    assert by_field["InputVoltage"].unit == "V"
    assert by_field["RunState"].text is not None  # enum name kept next to its number
    assert all(s.family == "afterburner" and s.device == "cabin" for s in got)
    db = sqlite3.connect(str(tmp_path / "r.db"))
    try:
        assert db.execute("SELECT COUNT(*) FROM samples").fetchone()[0] == len(got)
    finally:
        db.close()


def test_adapt_picks_the_family_adapter(tmp_path):
    client = AfterburnerClient("sim://?speed=30&tick=0.05")
    try:
        source = adapt(client)
        assert isinstance(source, AfterburnerSource)
        assert source.family == "afterburner" and source.device == "sim"
        assert not source.owns_client
    finally:
        client.close()


def test_a_connected_client_is_recorded_from_its_current_state(tmp_path):
    with AfterburnerClient("sim://?speed=30&tick=0.05") as client:
        rec = _rec(tmp_path, [client])
        got = collect(rec)
        with rec:
            rec.wait_for(lambda r: len({s.field for s in got}) >= 20, timeout=20)
        assert not client.closed  # not the recorder's to close


def test_join_returns_when_closed_elsewhere(tmp_path):
    source, _ = counter_source()
    rec = _rec(tmp_path, [source])
    with rec:
        assert rec.join(0.05) is False  # still recording
        closer = threading.Thread(target=rec.close, name="test-closer")
        closer.start()
        assert rec.join(20) is True
        closer.join(10)
    assert not rec.running


def test_blocking_calls_from_a_callback_are_refused(tmp_path):
    src = PushSource()
    rec = _rec(tmp_path, [src])
    errors = []

    def on_event(event):
        for call in (lambda: rec.wait_for(lambda r: True, timeout=1), lambda: rec.join(1)):
            try:
                call()
            except RuntimeError as exc:
                errors.append(str(exc))

    rec.subscribe(on_event, DeviceStateChanged)
    with rec:
        rec.wait_for(lambda r: len(errors) == 2, timeout=10)
    assert all("recorder callback" in e for e in errors)


def test_a_failed_start_leaves_nothing_running(tmp_path):
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("x")
    source, _ = counter_source()
    rec = Recorder([source], [SQLiteSink(str(tmp_path / "r.db"))], spool_dir=str(blocker),
                   progress_interval=None)
    with pytest.raises(ConfigurationError, match="spool directory .* is not writable"):
        rec.start()
    assert not rec.running
    assert not any(t.name.startswith("pyburnerkit-recorder") and t.is_alive()
                   for t in threading.enumerate())


def test_a_broken_spool_is_reported_not_silent(tmp_path):
    """The spool's own database fails (here: its connection is gone, as with a vanished
    disk) while the sink is down: the worker says so (a SpoolStateChanged event with the
    error), keeps the samples in memory, reopens the spool and spools them; nothing is lost."""
    from pyburnerkit.recorder import SpoolStateChanged
    blocker = tmp_path / "f"
    blocker.write_text("x")
    src = PushSource()
    rec = Recorder([src], [SQLiteSink(str(blocker / "r.db"))], spool_dir=str(tmp_path / "sp"),
                   progress_interval=None)
    spool_events = []
    rec.subscribe(spool_events.append, SpoolStateChanged)
    with rec:
        rec.wait_for(lambda r: not r.sink("sqlite").healthy and r.sink("sqlite").failures,
                     timeout=20)  # down: cannot open the database
        rec._workers[0].spool._db.close()
        src.push({"v": 1})
        rec.wait_for(lambda r: len(spool_events) == 2 and r.sink("sqlite").spooled == 1,
                     timeout=20)
    broken, back = spool_events
    assert broken.sink == "sqlite" and broken.writable is False
    assert "closed" in str(broken.error).lower() and broken.in_memory == 1
    assert back.writable is True and back.error is None
    assert rec.status().lost == 0
