"""``examples/mate3_monitor.py`` runs against the simulator (its own, and one on loopback)."""

from __future__ import annotations

import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
EXAMPLE = os.path.join(ROOT, "examples", "mate3_monitor.py")


def run_example(*args: str) -> str:
    done = subprocess.run([sys.executable, EXAMPLE, *args], capture_output=True, text=True,
                          timeout=120, cwd=ROOT, env=dict(os.environ, PYTHONPATH=ROOT))
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_example_on_its_own_simulator():
    out = run_example("--polls", "2", "--interval", "0.1")
    assert "OutBack_Power MATE3S firmware 001.004.002.0317" in out
    assert "charge_controllers[3]: ChargeController (HUB port 3)" in out
    assert out.count("poll: watts=") == 2


def test_example_writes_to_a_simulator_on_loopback(sim):
    out = run_example(sim.endpoint, "--polls", "1", "--interval", "0.1", "--absorb", "57.4",
                      "--min-poll-interval", "0")
    assert "absorb_volts written and read back: 57.4 Volts" in out
    assert sim.registers[40946] == 574


def test_example_dry_run_writes_nothing(sim):
    out = run_example(sim.endpoint, "--polls", "1", "--interval", "0.1", "--absorb", "57.4",
                      "--dry-run", "--min-poll-interval", "0")
    assert "would write [574] to register 40946 (limit 48..66 Volts for a 48 V system)" in out
    assert sim.writes_received() == 0 and sim.registers[40946] == 588


def test_example_refuses_a_damaging_absorb_voltage(sim):
    done = subprocess.run([sys.executable, EXAMPLE, sim.endpoint, "--polls", "1", "--interval",
                           "0.1", "--absorb", "99", "--min-poll-interval", "0"],
                          capture_output=True, text=True, timeout=120, cwd=ROOT,
                          env=dict(os.environ, PYTHONPATH=ROOT))
    assert done.returncode != 0 and "48..66 Volts" in done.stderr
    assert sim.writes_received() == 0
