"""The Arbin example runs end to end against the simulator (as a real subprocess)."""

from __future__ import annotations

import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_closed_loop_example_runs() -> None:
    done = subprocess.run([sys.executable, "examples/arbin_closed_loop.py", "--polls", "3"],
                          cwd=ROOT, capture_output=True, text=True, timeout=60,
                          env=dict(os.environ, PYTHONPATH=ROOT))
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == "cycler 207855: 16 channels"
    assert sum(line.startswith("poll ") for line in lines) == 3
    assert any(" Charge " in line and "1.00 A" in line for line in lines)
    assert lines[-1] == "stopped: Idle"
