"""The examples, run against the simulated bus."""

from __future__ import annotations

import importlib.util
import os

from pyburnerkit.victron.sim import VictronSim

EXAMPLES = os.path.join(os.path.dirname(__file__), "..", "..", "examples")


def load(name: str):
    spec = importlib.util.spec_from_file_location(name, os.path.join(EXAMPLES, name + ".py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_grid_meter_example(sim: VictronSim) -> None:
    lines = []
    power = load("victron_grid_meter").run(sim.address, 0.3, out=lines.append)
    assert "device instance 30" in lines[0]
    assert 500 <= power <= 1500


def test_battery_monitor_example() -> None:
    with VictronSim(interval=0.05) as sim:
        lines = []
        seen = load("victron_battery_monitor").run(sim.address, 3, out=lines.append)
    assert seen == 3
    assert lines[0].startswith("com.victronenergy.battery.sim (instance 512)")
    assert "SoC" in lines[-1]


def test_examples_on_their_default_in_process_simulated_bus() -> None:
    lines = []
    power = load("victron_grid_meter").run("sim://?interval=0", 0.3, out=lines.append)
    assert lines[0].startswith("simulated bus: DBUS_SESSION_BUS_ADDRESS=unix:path=")
    assert "device instance 30" in lines[1] and 500 <= power <= 1500
    lines = []
    assert load("victron_battery_monitor").run("sim://?interval=0.05", 2, out=lines.append) == 2
    assert lines[0].startswith("com.victronenergy.battery.sim (instance 512)")
