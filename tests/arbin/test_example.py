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


def test_closed_loop_example_on_a_host_colon_port_endpoint() -> None:
    from pyburnerkit.arbin.sim import ArbinSim
    sim = ArbinSim(16, username="lab", password="lab-pw", time_scale=60.0)
    with sim:
        done = subprocess.run(
            [sys.executable, "examples/arbin_closed_loop.py", f"127.0.0.1:{sim.port}",
             "--channel", "5", "--polls", "2"],
            cwd=ROOT, capture_output=True, text=True, timeout=60,
            env=dict(os.environ, PYTHONPATH=ROOT, ARBIN_CTI_USERNAME="lab",
                     ARBIN_CTI_PASSWORD="lab-pw"))
        assert done.returncode == 0, done.stderr
        assert sim.logins == 1 and sim.channel_status(5).test_name == "pyburnerkit-example"
    lines = done.stdout.splitlines()
    assert sum(line.startswith("poll ") for line in lines) == 2
    assert lines[-1] == "stopped: Idle"
