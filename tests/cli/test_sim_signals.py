"""``pyburnerkit sim <family>`` cleans up on every terminating signal.

Each simulator runs as a real subprocess; once it printed where it listens, it gets SIGINT,
SIGTERM or SIGHUP. It must exit 0, leave no process of its own behind (the Victron simulator's
``dbus-daemon`` is the one that used to survive SIGHUP) and no temporary directory.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Dict, List, Set

import pytest

ROOT = Path(__file__).resolve().parents[2]

#: family -> (extra arguments, lines printed once it is ready)
SIMS: Dict[str, tuple] = {
    "afterburner": (["--port", "0", "--tick", "0"], 1),
    "arbin": (["--port", "0", "--channels", "2"], 1),
    "mate3": (["--port", "0"], 1),
    "victron": (["--interval", "0.2"], 2),
    "de1": (["--port", "0"], 3),
}

SIGNALS = [signal.SIGINT, signal.SIGTERM, signal.SIGHUP]


def _parents() -> Dict[int, int]:
    """pid -> parent pid of every live (non-zombie) process."""
    out = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
        except OSError:  # it ended meanwhile
            continue
        if fields[0] != "Z":
            out[int(name)] = int(fields[1])
    return out


def descendants(pid: int) -> Set[int]:
    parents = _parents()
    found: Set[int] = set()
    frontier = {pid}
    while frontier:
        children = {p for p, parent in parents.items() if parent in frontier}
        frontier = children - found
        found |= children
    return found


def alive(pids: Set[int]) -> Set[int]:
    return pids & set(_parents())


def start_sim(family: str, tmp: Path) -> "subprocess.Popen[str]":
    args, _ = SIMS[family]
    env = dict(os.environ, PYTHONPATH=str(ROOT), TMPDIR=str(tmp))
    return subprocess.Popen([sys.executable, "-m", "pyburnerkit", "sim", family, *args],
                            cwd=str(tmp), env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


@pytest.mark.parametrize("family", sorted(SIMS))
def test_every_signal_stops_the_simulator_and_leaves_nothing(family: str) -> None:
    # short paths: the Victron bus socket in it must stay under the 108-byte unix limit
    base = Path(tempfile.mkdtemp(prefix="pbks-"))
    # the three signals run side by side: three real simulators at once
    runs: List[tuple] = []
    try:
        for sig in SIGNALS:
            tmp = base / sig.name
            tmp.mkdir()
            runs.append((sig, tmp, start_sim(family, tmp)))
        children: Dict[signal.Signals, Set[int]] = {}
        for sig, tmp, proc in runs:
            assert proc.stdout is not None
            ready = [proc.stdout.readline() for _ in range(SIMS[family][1])]
            assert all(ready), f"{family} printed {ready!r}; stderr: {proc.stderr.read()}"
            children[sig] = descendants(proc.pid)
            if family == "victron":  # what this test is about: its private bus daemon
                assert any("dbus-daemon" in _cmdline(pid) for pid in children[sig])
            assert list(tmp.iterdir()) or family not in ("victron", "de1")  # its temp dir
            proc.send_signal(sig)
        for sig, tmp, proc in runs:
            out, err = proc.communicate(timeout=60)
            assert proc.returncode == 0, f"{family} after {sig.name}: {proc.returncode} {err}"
            assert "Traceback" not in err, err
            left = alive(children[sig])
            assert not left, f"{family} left {[_cmdline(p) for p in left]} after {sig.name}"
            assert list(tmp.iterdir()) == [], f"{family} left {list(tmp.iterdir())}"
    finally:
        for _, _, proc in runs:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
            else:
                for stream in (proc.stdout, proc.stderr):
                    if stream is not None and not stream.closed:
                        stream.close()
        shutil.rmtree(base, ignore_errors=True)


def _cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            return fh.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""
