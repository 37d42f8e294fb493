"""Issue 14: pyBurner's ``heater_data`` on the compat client, kept current."""

from __future__ import annotations

import threading

from pyburnerkit.afterburner import AfterburnerSim
from pyburnerkit.afterburner.compat import Client
from pyburnerkit.afterburner.models import StatusChanged


def test_a_kept_reference_follows_pushed_frames(sim: AfterburnerSim) -> None:
    with Client(f"127.0.0.1:{sim.port}", refresh_grace=0.2) as heater:
        data = heater.heater_data  # held, as pyBurner code holds heater.heater_data
        assert data is heater.heater_data and data["TempDesired"] == 22
        seen = threading.Event()
        # Subscribed after the compat client's own merge: delivered after it, in order.
        # (the event of the change itself: an earlier state may still be on its way)
        heater.subscribe(lambda e: e.changed.get("TempDesired") == 26 and seen.set(),
                         StatusChanged)
        sim.set(TempDesired=26)  # another controller (the OLED, a second app) changed it
        assert seen.wait(5.0)
        assert data["TempDesired"] == 26  # the same dict, updated in place


def test_a_confirmed_write_is_in_heater_data_at_once(sim: AfterburnerSim) -> None:
    with Client(f"127.0.0.1:{sim.port}", refresh_grace=0.2, allow_writes=True) as heater:
        assert heater.set_fanmax(4200) is True
        assert heater.heater_data["FanMax"] == 4200  # the read merges the cache first
        assert heater.afterburner_ip == f"127.0.0.1:{sim.port}"


def test_keys_are_merged_never_deleted_and_keep_json_types(sim: AfterburnerSim) -> None:
    with Client(f"127.0.0.1:{sim.port}", refresh_grace=0.2) as heater:
        data = heater.heater_data
        data["MyNote"] = "kept"  # pyBurner never deleted keys; neither does a merge
        heater.refresh()
        assert heater.heater_data["MyNote"] == "kept"
        assert isinstance(data["RunState"], int) and isinstance(data["SysVer"], str)
