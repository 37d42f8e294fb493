"""``sim://`` (the simulated bus inside the client), the CLI's ``--bus`` and the compat names,
against the real dbus-daemon."""

from __future__ import annotations

import json
import os

import pytest

from pyburnerkit.cli.main import main
from pyburnerkit.errors import ConfigurationError
from pyburnerkit.victron import VictronMonitor, VictronService, VictronSettings, compat
from pyburnerkit.victron.sim import VictronSim


def test_a_sim_monitor_runs_its_own_bus_and_closes_it() -> None:
    mon = VictronMonitor("sim://?interval=0&seed=1", allow_writes=True, timeout=5.0)
    try:
        mon.connect()
        sim = mon.simulator
        assert isinstance(sim, VictronSim) and sim.interval == 0
        assert mon.bus_address == sim.address
        assert mon.services()[VictronSim.BATTERY] == 512
        assert mon.read_value(VictronSim.GRID, "/Ac/Power") == 1500.0
        mon.set_value(VictronSim.SOLAR, "/Mode", 4)
        assert sim.value(VictronSim.SOLAR, "/Mode") == 4
        socket_path = sim.daemon.socket_path
        assert os.path.exists(socket_path)
    finally:
        mon.close()
    assert sim.daemon.proc is None and not os.path.exists(socket_path)


def test_a_sim_service_publishes_on_its_private_bus() -> None:
    name = "com.victronenergy.grid.simendpoint"
    with VictronService(name, "sim://?interval=0", timeout=5.0) as svc:
        svc.add_mandatory_paths(device_instance=41)
        svc.add_item("/Ac/Power", 12.5, unit="W")
        svc.register()
        assert svc.bus_address == svc.simulator.address
        with VictronMonitor(svc.bus_address, timeout=5.0) as mon:
            info = mon.wait_for_service(name, timeout=5)
            assert info.device_instance == 41 and info.get("/Ac/Power") == 12.5
            assert VictronSim.BATTERY in mon.services()    # the simulator's demo services


def test_the_cli_takes_the_bus_as_an_endpoint(capsys) -> None:
    assert main(["victron", "list", "--bus", "sim://?interval=0", "--format", "json"]) == 0
    rows = {r["service"]: r for r in json.loads(capsys.readouterr().out)}
    assert rows[VictronSim.GRID]["device_instance"] == 30
    assert main(["victron", "get", VictronSim.BATTERY, "/Soc", "--bus", "gx.local:78"]) == 2
    assert "not a D-Bus endpoint" in capsys.readouterr().err


def test_the_sim_command_refuses_a_negative_interval(capsys) -> None:
    assert main(["sim", "victron", "--interval", "-1"]) == 2
    err = capsys.readouterr().err
    assert "-1" in err and "0..86400 s" in err
    with pytest.raises(ConfigurationError, match="interval"):
        VictronSim(interval=float("nan"))


def test_add_mandatory_paths_refuses_values_the_bus_cannot_carry() -> None:
    svc = VictronService("com.victronenergy.grid.ranges", "unix:path=/tmp/pbk-nowhere/bus")
    try:
        with pytest.raises(ConfigurationError, match=r"product_id=65536 .*0\.\.65535"):
            svc.add_mandatory_paths(product_id=0x10000)
        with pytest.raises(ConfigurationError, match=r"device_instance must be a whole"):
            svc.add_mandatory_paths(device_instance=2.5)
        with pytest.raises(ConfigurationError, match=r"connected=2 .*0\.\.1"):
            svc.add_mandatory_paths(connected=2)
        assert svc.paths() == []      # nothing was half added
    finally:
        svc.close()


def test_the_native_monitor_reads_with_read_and_compat_keeps_aiovelibs_names(
        sim: VictronSim) -> None:
    assert not [name for name in dir(VictronMonitor) if name.startswith("fetch_")]
    assert not hasattr(VictronSettings, "add_settings")
    with compat.VictronMonitor(sim.address, allow_writes=True, timeout=5.0) as mon:
        assert isinstance(mon, VictronMonitor)
        assert mon.fetch_value(sim.GRID, "/ProductId") == mon.read_value(sim.GRID,
                                                                         "/ProductId") == 0xB012
        assert mon.fetch_text(sim.GRID, "/ProductId") == "0xB012"
        items = mon.fetch_items(sim.GRID)
        assert items["/Ac/Power"].value == 1500.0 and items == mon.read_items(sim.GRID)
        added = mon.settings.add_settings([("/Settings/Compat/Limit", 5, 0, 10)])
        assert added == {"/Settings/Compat/Limit": 5}
        assert mon.settings.get("/Settings/Compat/Limit") == 5
