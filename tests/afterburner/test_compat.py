"""pyBurner's names (pyburnerkit.afterburner.compat) against the simulator over a real WebSocket."""

from __future__ import annotations

import pytest

from pyburnerkit import ConfigurationError, WriteNotAllowedError
from pyburnerkit.afterburner import AfterburnerClient, AfterburnerSim, RunState
from pyburnerkit.afterburner.compat import Client

PYBURNER_NAMES = ["init_websocket", "close_websocket", "refresh", "fetch_data", "heater_data",
                  "set_tempdesired", "set_runmode", "set_fanmin", "set_fanmax", "set_pumpmin",
                  "set_pumpmax", "set_pumpcal", "set_pumpreset", "set_lowvoltcutout",
                  "set_froston", "set_frostrise"]


@pytest.mark.parametrize("name", PYBURNER_NAMES)
def test_pyburner_names_are_on_the_compat_client_only(name: str) -> None:
    assert hasattr(Client, name)
    assert not hasattr(AfterburnerClient, name)


def test_pyburner_names_work_blocking_with_native_types(sim: AfterburnerSim) -> None:
    heater = Client(f"127.0.0.1:{sim.port}", refresh_grace=0.2, allow_writes=True)
    assert isinstance(heater, AfterburnerClient)
    assert heater.init_websocket() is True
    try:
        assert heater.fetch_data("TempDesired") == 22
        assert isinstance(heater.fetch_data("TempCurrent", refresh=True), (int, float))
        assert heater.fetch_data("SysVer") == "V3.2.1"  # a system key
        assert heater.fetch_data("NoSuchKey") is None
        assert heater.set_tempdesired(23) is True and heater.fetch_data("TempDesired") == 23
        assert heater.set_fanmin(1700) is True and heater.fetch_data("FanMin") == 1700
        assert heater.set_pumpcal(0.025) is True and heater.fetch_data("PumpCal") == 0.025
        assert heater.set_froston(4) is True and heater.fetch_data("FrostOn") == 4
        assert heater.refresh().desired_temperature == 23
        with pytest.raises(ConfigurationError, match="run mode must be 0 or 1, got 2"):
            heater.set_runmode(2)
        with pytest.raises(ConfigurationError, match="whole number"):
            heater.set_froston(3.5)  # pyBurner sent it and silently failed; we refuse it
    finally:
        assert heater.close_websocket() is True
    assert heater.closed


def test_heater_data_is_a_copy_of_every_key(sim: AfterburnerSim) -> None:
    with Client(f"127.0.0.1:{sim.port}", refresh_grace=0.2) as heater:
        data = heater.heater_data
        assert data["TempDesired"] == 22 and data["RunState"] == 0
        assert data["SysVer"] == "V3.2.1"
        data["TempDesired"] = 99  # a copy: the client's state is untouched
        assert heater.heater_data["TempDesired"] == 22


def test_the_pyburner_positional_form_and_sim_endpoint() -> None:
    with Client("sim://?tick=0") as heater:  # pyBurner: Client(afterburner_ip)
        assert heater.fetch_data("RunState") == RunState.STOPPED
        with pytest.raises(WriteNotAllowedError, match=r"^set_tempdesired\(\) .*allow_writes"):
            heater.set_tempdesired(25)
        assert heater.set_runmode(0) is True  # a stop needs no opt-in
        assert heater.simulator.snapshot()["TempDesired"] == 22
