"""``pyburnerkit record --demo`` and ``pyburnerkit demo`` start simulators of their own (the
Victron one is a ``dbus-daemon`` process): SIGHUP or SIGTERM must stop them too, as Ctrl-C
does. Real subprocesses; the check is that no process of theirs survives."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import List

import pytest

from .test_sim_signals import _cmdline, alive, descendants

ROOT = Path(__file__).resolve().parents[2]


def _start(argv: List[str], tmp: Path) -> "subprocess.Popen[str]":
    env = dict(os.environ, PYTHONPATH=str(ROOT), TMPDIR=str(tmp),
               XDG_CACHE_HOME=str(tmp / "cache"))
    return subprocess.Popen([sys.executable, "-m", "pyburnerkit", *argv], cwd=str(tmp),
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_for_bus_daemon(proc: "subprocess.Popen[str]", stream: str, marker: str) -> set:
    """Read ``stream`` until ``marker`` (the simulators run by then); the process's tree."""
    source = proc.stdout if stream == "stdout" else proc.stderr
    assert source is not None
    seen = []
    for line in source:
        seen.append(line)
        if marker in line:
            break
    else:
        raise AssertionError(f"never saw {marker!r}: {''.join(seen)}")
    tree = descendants(proc.pid)
    assert any("dbus-daemon" in _cmdline(pid) for pid in tree), [_cmdline(p) for p in tree]
    return tree


@pytest.mark.parametrize("sig", [signal.SIGHUP, signal.SIGTERM])
def test_record_demo_stops_its_simulators_on_a_signal(sig: signal.Signals) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="pbkr-"))  # short: the bus socket path lives in it
    proc = _start(["record", "--demo", "--db", str(tmp / "demo.db"), "--progress", "0.2"],
                  tmp)
    try:
        # the Victron monitor starts its simulated bus when it connects
        tree = _wait_for_bus_daemon(proc, "stderr", "device victron/demo-venus: connected")
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err  # a stop on request, nothing lost
        assert "record: stopping, flushing sinks..." in err
        assert not alive(tree), [_cmdline(p) for p in alive(tree)]
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate()
        shutil.rmtree(tmp, ignore_errors=True)


@pytest.mark.parametrize("sig", [signal.SIGHUP, signal.SIGTERM])
def test_demo_stops_its_simulators_on_a_signal(sig: signal.Signals) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="pbkd-"))
    proc = _start(["demo", "--only", "victron", "--duration", "60"], tmp)
    try:
        tree = _wait_for_bus_daemon(proc, "stdout", "victron: published ")
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 130, err  # interrupted, as Ctrl-C
        assert "Traceback" not in err, err
        assert not alive(tree), [_cmdline(p) for p in alive(tree)]
        assert [p.name for p in tmp.iterdir()] == [], "the bus directory was left behind"
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate()
        shutil.rmtree(tmp, ignore_errors=True)
