"""The DE1 and scale examples run as real programs against the built-in simulators: the shot
example through pygatt and the fake gatttool it sets up itself, the others with ``sim://``."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def run_example(name: str, *args: str) -> str:
    done = subprocess.run([sys.executable, str(EXAMPLES / name), *args], capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_de1_shot_example_stops_near_the_profile_weight() -> None:
    out = run_example("de1_shot.py")
    match = re.search(r"stopped by weight: ([\d.]+) g", out)
    assert match, out
    assert abs(float(match.group(1)) - 36.0) < 2.0
    assert "uploaded, fingerprint" in out


def test_de1_monitor_example() -> None:
    out = run_example("de1_monitor.py", "", "1")
    assert "DE1PLUS firmware 1333" in out and "state SLEEP" in out
    assert " bar " in out  # live samples printed by the callback


def test_scale_weigh_example() -> None:
    out = run_example("scale_weigh.py", "", "1.5")
    assert "SkaleII by ATOMAX INC.: tared, 0.0 g" in out
    assert "final 18.5 g" in out
