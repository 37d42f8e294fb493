"""Every example leaves the temporary directory as it found it (no ``pbk-example-*``, no
fake-tool or bus directories), whether its sink worked or not.

Each example runs as a real script with ``TMPDIR`` pointing at an empty directory of its own;
the examples run side by side to keep the test short.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Dict, List

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released: connections are refused)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_examples_are_all_covered() -> None:
    # a new example must be added to ARGS below (with the arguments it needs here)
    assert sorted(p.name for p in EXAMPLES.glob("*.py")) == sorted(ARGS)


ARGS: Dict[str, List[str]] = {
    "afterburner_basic.py": [],
    "arbin_closed_loop.py": [],
    "de1_monitor.py": [],
    "de1_shot.py": [],
    "mate3_monitor.py": [],
    "recorder_sqlite.py": ["--seconds", "1"],
    # a broker that refuses: the spool is written into the example's temporary folder
    "recorder_home_assistant.py": ["--broker", "127.0.0.1", "--seconds", "1"],
    "scale_weigh.py": [],
    "victron_battery_monitor.py": [],
    "victron_grid_meter.py": [],
}


def test_every_example_removes_its_temporary_files() -> None:
    # short paths: a D-Bus socket path in it must stay under the 108-byte unix socket limit
    base = Path(tempfile.mkdtemp(prefix="pbkt-"))
    runs = {}
    try:
        for n, (name, args) in enumerate(sorted(ARGS.items())):
            tmp = base / str(n)
            tmp.mkdir()
            if name == "recorder_home_assistant.py":
                args = args + ["--port", str(closed_port())]
            env = dict(os.environ, PYTHONPATH=str(ROOT), TMPDIR=str(tmp))
            runs[name] = (tmp, subprocess.Popen(
                [sys.executable, str(EXAMPLES / name), *args], cwd=str(tmp), env=env,
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
        for name, (tmp, proc) in runs.items():
            out, err = proc.communicate(timeout=120)
            assert proc.returncode == 0, f"{name}: {err}"
            assert list(tmp.iterdir()) == [], f"{name} left {sorted(os.listdir(tmp))}"
            if name == "recorder_home_assistant.py":
                # it says the broker refused (its spool file, in the folder, is gone too)
                assert "NEVER CONNECTED, REFUSED" in out, out
                assert out.strip().endswith("; 0 Home Assistant entities announced"), out
    finally:
        for _, proc in runs.values():
            if proc.poll() is None:
                proc.kill()
            proc.communicate()
        shutil.rmtree(base, ignore_errors=True)
