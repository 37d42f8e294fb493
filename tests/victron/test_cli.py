"""The ``pyburnerkit victron`` commands, in process and once as a real subprocess."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys


from pyburnerkit.cli.main import main
from pyburnerkit.victron.sim import VictronSim


def test_list(sim: VictronSim, capsys) -> None:
    assert main(["victron", "list", "--bus-address", sim.address, "--format", "json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    by_name = {r["service"]: r for r in rows}
    assert by_name[sim.BATTERY]["device_instance"] == 512
    assert by_name[sim.GRID]["product"] == "Grid meter (sim)"


def test_get_and_set(sim: VictronSim, capsys) -> None:
    assert main(["victron", "--bus-address", sim.address, "get", sim.GRID, "/ProductId",
                 "--format", "json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["value"] == 0xB012 and out["text"] == "0xB012"
    assert main(["victron", "set", sim.SOLAR, "/Mode", "4", "--bus-address", sim.address,
                 "--format", "json", "--allow-writes"]) == 0
    assert json.loads(capsys.readouterr().out)["value"] == 4
    assert sim.value(sim.SOLAR, "/Mode") == 4


def test_set_refused_is_exit_1(sim: VictronSim, capsys) -> None:
    assert main(["victron", "set", sim.GRID, "/Ac/Power", "5", "--bus-address",
                 sim.address, "--allow-writes"]) == 1
    assert "refused with code 1" in capsys.readouterr().err


def test_bad_path_is_exit_2(sim: VictronSim, capsys) -> None:
    assert main(["victron", "get", sim.GRID, "Ac/Power", "--bus-address", sim.address]) == 2
    assert "object path" in capsys.readouterr().err


def test_watch_shows_the_snapshot_then_live_changes(capsys) -> None:
    with VictronSim(interval=0.05) as sim:
        assert main(["victron", "watch", sim.GRID, "--bus-address", sim.address,
                     "--duration", "1.0", "--format", "jsonl"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert all(line["service"] == sim.GRID for line in lines)
    paths = sorted(sim.services[sim.GRID].values)
    assert [line["path"] for line in lines[:len(paths)]] == paths   # the whole snapshot first
    powers = [line["value"] for line in lines if line.get("path") == "/Ac/Power"]
    assert len(set(powers)) >= 3            # then the simulated meter's changes


def test_sim_command_prints_the_address_first_and_cleans_up() -> None:
    proc = subprocess.Popen([sys.executable, "-m", "pyburnerkit.cli.main", "sim", "victron",
                             "--interval", "0.1"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=os.getcwd())
    try:
        first = proc.stdout.readline().strip()
        assert first.startswith("DBUS_SESSION_BUS_ADDRESS=unix:path="), first
        address = first.split("=", 1)[1]
        out = subprocess.run([sys.executable, "-m", "pyburnerkit.cli.main", "victron", "get",
                              "com.victronenergy.battery.sim", "/Soc", "--bus-address",
                              address, "--format", "json"], capture_output=True, text=True,
                             timeout=30)
        assert out.returncode == 0, out.stderr
        assert isinstance(json.loads(out.stdout)["value"], float)
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(15)
        proc.stdout.close()
        proc.stderr.close()
    socket_path = address.split("=", 1)[1]
    assert not os.path.exists(socket_path)   # the daemon and its directory are gone
    assert proc.returncode == 0


def test_demo_runs_and_cleans_up() -> None:
    from pyburnerkit.cli.victron import demo
    lines = []
    demo(lines.append, duration=0.5)
    assert any("published com.victronenergy.grid.demo" in l for l in lines)
    assert any("battery SoC" in l for l in lines)


def test_watch_everything_and_list_as_text(sim: VictronSim, capsys) -> None:
    assert main(["victron", "watch", "--bus-address", sim.address, "--duration", "0.2",
                 "--format", "jsonl"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert {sim.BATTERY, sim.SOLAR, sim.GRID} <= {r["service"] for r in rows}
    names = [r for r in rows if r.get("path") == "/ProductName"]
    assert sorted(r["service"] for r in names) == sorted([sim.BATTERY, sim.SOLAR, sim.GRID])
    assert not [r for r in rows if "event" in r]     # nothing "added" twice, no duplicates
    assert main(["victron", "list", "com.victronenergy.battery", "--bus-address",
                 sim.address]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 1 and lines[0].split()[:2] == [sim.BATTERY, "512"]
