"""Every example runs against a simulator (a real one on loopback where the example allows)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from pyburnerkit.afterburner import AfterburnerSim

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def run_example(name: str, *args: str) -> subprocess.CompletedProcess:
    done = subprocess.run([sys.executable, str(EXAMPLES / name), *args], capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done


def test_afterburner_basic_on_the_in_process_simulator() -> None:
    out = run_example("afterburner_basic.py").stdout
    assert "TempDesired: 21" in out and "RunState: 0" in out


def test_afterburner_basic_over_a_real_websocket() -> None:
    with AfterburnerSim(tick=0).start() as sim:
        out = run_example("afterburner_basic.py", f"127.0.0.1:{sim.port}").stdout
        assert "TempDesired: 21" in out
        assert sim.snapshot()["TempDesired"] == 21
