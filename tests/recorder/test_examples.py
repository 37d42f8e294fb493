"""The recorder examples run as real scripts against the simulators (and a real broker)."""

from __future__ import annotations

import os
import subprocess
import sys

from pyburnerkit.recorder.config import load_config

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _run(*argv, tmp_path):
    env = dict(os.environ, PYTHONPATH=ROOT, TMPDIR=str(tmp_path))
    done = subprocess.run([sys.executable, *argv], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_recorder_sqlite_example(tmp_path):
    out = _run("examples/recorder_sqlite.py", "--seconds", "1.5", tmp_path=tmp_path)
    assert "TempCurrent samples in" in out
    count = int(out.split(" TempCurrent samples")[0].split("\n")[-1])
    assert count > 0


def test_recorder_home_assistant_example(tmp_path, broker):
    out = _run("examples/recorder_home_assistant.py", "--broker", "127.0.0.1", "--port",
               str(broker.port), "--seconds", "1.5", tmp_path=tmp_path)
    last = out.strip().splitlines()[-1]
    assert last.startswith("published ") and "Home Assistant entities announced" in last
    assert int(last.split()[1]) > 0 and int(last.split("; ")[1].split()[0]) > 10


def test_example_config_is_valid():
    cfg = load_config(os.path.join(ROOT, "examples", "recorder_config.toml"), environ={})
    assert [d.family for d in cfg.devices] == ["afterburner", "mate3"]
    assert [a.name for a in cfg.alerts] == ["heater-error", "heater-silent"]
