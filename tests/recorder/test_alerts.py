"""Alert rules: threshold with hysteresis, state values, silence, commands."""

from __future__ import annotations

import json
import sys

import pytest

from pyburnerkit.errors import ConfigurationError
from pyburnerkit.recorder import AlertChanged, AlertRule, Recorder, SQLiteSink
from pyburnerkit.recorder.sources import CallableSource

from .util import Counter, PushSource


def _rec(tmp_path, sources, rules, **kw):
    return Recorder(sources, [SQLiteSink(str(tmp_path / "r.db"))], alerts=rules,
                    spool_dir=str(tmp_path / "spool"), progress_interval=None, **kw)


def _alerts(rec):
    seen = []
    rec.subscribe(seen.append, AlertChanged)
    return seen


def test_threshold_fires_once_and_clears_once_with_hysteresis(tmp_path):
    src = PushSource("heater")
    rule = AlertRule("hot", field="TempCurrent", above=30, hysteresis=2)
    rec = _rec(tmp_path, [src], [rule])
    seen = _alerts(rec)
    with rec:
        for v in (25, 31, 35, 29, 28.5, 31, 27.9, 26, 40):
            src.push({"TempCurrent": v})
        rec.wait_for(lambda r: len(seen) == 3, timeout=10)
        rec.wait_for(lambda r: r.received == 9, timeout=10)
    assert [(a.active, a.value) for a in seen] == [(True, 31), (False, 27.9), (True, 40)]
    assert seen[0].rule == "hot" and seen[0].device == "heater"
    assert "FIRING" in seen[0].message and "cleared" in seen[1].message


def test_below_and_per_device_state(tmp_path):
    a, b = PushSource("a"), PushSource("b")
    rule = AlertRule("low-battery", field="voltage_v", below=11.5)
    rec = _rec(tmp_path, [a, b], [rule])
    seen = _alerts(rec)
    with rec:
        a.push({"voltage_v": 11.0})
        b.push({"voltage_v": 12.5})
        b.push({"voltage_v": 11.2})
        a.push({"voltage_v": 11.1})  # already firing for a: nothing new
        rec.wait_for(lambda r: len(seen) == 2 and r.received == 4, timeout=10)
    assert [(x.device, x.active) for x in seen] == [("a", True), ("b", True)]


def test_state_rule_matches_value_or_enum_name(tmp_path):
    import enum

    class Status(enum.IntEnum):
        REST = 0
        UNSAFE = 9

    src = PushSource("cycler")
    rules = [AlertRule("unsafe", kind="state", field="status", values=("Unsafe", "UNSAFE")),
             AlertRule("heater-error", kind="state", field="ErrorState", values=(4, 5),
                       device="cycler")]
    rec = _rec(tmp_path, [src], rules)
    seen = _alerts(rec)
    with rec:
        src.push({"status": "Rest"}, channel="1")
        src.push({"status": "Unsafe"}, channel="1")       # matches the value
        src.push({"status": Status.REST}, channel="2")
        src.push({"status": Status.UNSAFE}, channel="2")  # matches the enum name
        src.push({"status": Status.REST}, channel="2")
        src.push({"ErrorState": 4})
        src.push({"ErrorState": 0.0})
        src.push({"ErrorState": 5.0})                     # a float from the device matches 5
        rec.wait_for(lambda r: len(seen) == 6 and r.received == 8, timeout=10)
    assert [(x.rule, x.channel, x.active) for x in seen] == [
        ("unsafe", "1", True), ("unsafe", "2", True), ("unsafe", "2", False),
        ("heater-error", "", True), ("heater-error", "", False), ("heater-error", "", True)]


def test_silence_fires_when_a_device_stops_and_clears_when_it_is_back(tmp_path):
    counter = Counter(stop_after=3)
    src = CallableSource(counter, family="testdev", device="quiet", interval=0.02)
    rule = AlertRule("stale", kind="silence", seconds=0.3)
    rec = _rec(tmp_path, [src], [rule])
    seen = _alerts(rec)
    with rec:
        rec.wait_for(lambda r: any(x.active for x in seen), timeout=10)
        assert rec.received == 3 * 2
        counter.stop_after = None  # the device answers again
        rec.wait_for(lambda r: len(seen) == 2, timeout=10)
    assert [(x.rule, x.device, x.active) for x in seen] == [("stale", "quiet", True),
                                                            ("stale", "quiet", False)]


def test_command_runs_with_the_alert_in_its_environment(tmp_path):
    out = tmp_path / "alerts.jsonl"
    script = ("import json, os, sys; open(sys.argv[1], 'a').write(json.dumps({k: os.environ[k] "
              "for k in ('PYBURNERKIT_ALERT', 'PYBURNERKIT_ACTIVE', 'PYBURNERKIT_DEVICE', "
              "'PYBURNERKIT_FIELD', 'PYBURNERKIT_VALUE')}) + '\\n')")
    src = PushSource("h")
    rule = AlertRule("hot", field="t", above=1, command=(sys.executable, "-c", script, str(out)))
    rec = _rec(tmp_path, [src], [rule])
    seen = _alerts(rec)
    with rec:
        src.push({"t": 5})
        src.push({"t": 0})
        rec.wait_for(lambda r: len(seen) == 2, timeout=10)
    # close() waited for the command runner: both commands have run
    lines = [json.loads(x) for x in out.read_text().splitlines()]
    assert lines == [
        {"PYBURNERKIT_ALERT": "hot", "PYBURNERKIT_ACTIVE": "1", "PYBURNERKIT_DEVICE": "h",
         "PYBURNERKIT_FIELD": "t", "PYBURNERKIT_VALUE": "5"},
        {"PYBURNERKIT_ALERT": "hot", "PYBURNERKIT_ACTIVE": "0", "PYBURNERKIT_DEVICE": "h",
         "PYBURNERKIT_FIELD": "t", "PYBURNERKIT_VALUE": "0"}]


def test_alerts_are_logged(tmp_path, caplog):
    src = PushSource("h")
    rec = _rec(tmp_path, [src], [AlertRule("hot", field="t", above=1)])
    seen = _alerts(rec)
    with caplog.at_level("INFO", logger="pyburnerkit.recorder.alerts"):
        with rec:
            src.push({"t": 5})
            rec.wait_for(lambda r: seen, timeout=10)
    assert "alert hot FIRING on h" in caplog.text


@pytest.mark.parametrize("kwargs, match", [
    (dict(name="x", kind="nope"), "kind"),
    (dict(name="x", field="f"), "above= and/or below="),
    (dict(name="x", kind="threshold", above=1), "needs a field"),
    (dict(name="x", field="f", above=1, hysteresis=-1), "hysteresis"),
    (dict(name="x", kind="state", field="f"), "values"),
    (dict(name="x", kind="silence", seconds=0), "seconds"),
    (dict(name="", field="f", above=1), "name"),
    (dict(name="x", field="f", above=1, message="{devise} is hot"), "template"),
])
def test_rules_are_validated(kwargs, match):
    with pytest.raises(ConfigurationError, match=match):
        AlertRule(**kwargs)


def test_duplicate_rule_names_are_refused(tmp_path):
    with pytest.raises(ConfigurationError, match="unique"):
        _rec(tmp_path, [], [AlertRule("a", field="f", above=1), AlertRule("a", field="g",
                                                                          above=1)])


def test_a_message_template_that_fails_on_a_value_still_fires(tmp_path):
    src = PushSource("h")
    rule = AlertRule("st", kind="state", field="mode", values=("Fault",),
                     message="{device}: {value:.1f}")  # valid, but not for a text value
    rec = _rec(tmp_path, [src], [rule])
    seen = []
    rec.subscribe(seen.append, AlertChanged)
    with rec:
        src.push({"mode": "Fault"})
        rec.wait_for(lambda r: seen, timeout=10)
    assert seen[0].active and "st FIRING on h" in seen[0].message


def test_a_hanging_command_does_not_outlive_close(tmp_path):
    """A command that never ends: close() waits its timeout, then stops it and the runner
    thread; a second queued command is dropped and counted."""
    import os
    import select
    import threading
    fifo = str(tmp_path / "started")
    os.mkfifo(fifo)
    reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)  # the command reports its pid here
    script = ("import os, sys, time; f = open(sys.argv[1], 'w'); f.write(str(os.getpid())); "
              "f.flush(); time.sleep(600)")  # sleep-ok: the hanging command under test
    src = PushSource("h")
    rule = AlertRule("hot", field="t", above=1, command=(sys.executable, "-c", script, fifo))
    rec = _rec(tmp_path, [src], [rule])
    seen = _alerts(rec)
    try:
        with rec:
            src.push({"t": 5})
            src.push({"t": 0})
            rec.wait_for(lambda r: len(seen) == 2, timeout=10)
            assert select.select([reader], [], [], 20)[0], "the alert command did not start"
            pid = int(os.read(reader, 32))
            rec.close(timeout=1.0)
    finally:
        os.close(reader)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        pass  # stopped and reaped
    else:
        raise AssertionError(f"alert command {pid} still running after close()")
    assert rec.alerts.commands_dropped == 1
    assert not any(t.name == "pyburnerkit-recorder-alerts" and t.is_alive()
                   for t in threading.enumerate())
