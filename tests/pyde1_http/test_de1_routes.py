"""Every implemented DE1 route over real HTTP against the simulated DE1: GET documents, PATCH/PUT
through the client's own setters (checked on the simulated machine), and their refusals."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Callable, Dict, Tuple

import pytest

from pyburnerkit.de1.client import DE1Client
from pyburnerkit.de1.firmware import make_test_image
from pyburnerkit.de1.library import ProfileLibrary
from pyburnerkit.de1.models import MachineState as S, UploadProgress
from pyburnerkit.errors import ConfigurationError
from pyburnerkit.service.pyde1_http import Pyde1App

from ..de1.test_profile_firmware import PROFILE
from ..helpers import wait_until
from .conftest import SPEED, Bench, Server


def sim(bench: Bench, fn: Callable[[Any], Any]) -> Any:
    """Read the simulated machine on the simulator's thread."""
    return bench.rig.run(lambda: fn(bench.rig.de1))


def register(address: int) -> Callable[[Any], Any]:
    return lambda de1: de1.registers[address]


def awake(api: Server, bench: Bench) -> None:
    r = api.put("/de1/mode", {"mode": "Wake"})
    assert (r.status_code, r.json()) == (200, [])
    bench.de1.wait_for(lambda c: c.state is S.IDLE, timeout=30)


# (path, body, expected GET document after, what the simulated machine holds, expected there)
SETTINGS: Tuple[Tuple[str, Dict[str, Any], Dict[str, Any], Callable[[Any], Any], Any], ...] = (
    ("/de1/setting/fan_threshold", {"temperature": 45}, {"temperature": 45},
     register(0x803808), 45),
    ("/de1/control/tank_water_threshold", {"temperature": 30}, {"temperature": 30},
     register(0x80380C), 30),
    ("/de1/setting/target_group_temp", {"temperature": 93.5}, {"temperature": 93.5},
     lambda d: d.settings.group_temp_c, 93.5),
    ("/de1/setting/steam", {"temperature": 150, "flow": 1.5, "high_flow_time": 1.2,
                            "purge_deferred": True},
     {"temperature": 150, "flow": 1.5, "high_flow_time": 1.2, "purge_deferred": True},
     lambda d: (d.settings.steam_temp_c, d.registers[0x803828], d.registers[0x803850]),
     (150, 150, 1)),
    ("/de1/setting/before_flow", {"heater_phase1_flow": 3.0, "heater_phase2_flow": 5,
                                  "heater_phase2_timeout": 6.5,
                                  "heater_idle_temperature": 90.0},
     {"heater_phase1_flow": 3.0, "heater_phase2_flow": 5.0, "heater_phase2_timeout": 6.5,
      "heater_idle_temperature": 90.0},
     lambda d: (d.registers[0x803810], d.registers[0x803814]), (30, 50)),
    ("/de1/setting/usb_outlet", {"enabled": False}, {"enabled": False},
     register(0x803854), 0),
    ("/de1/setting/refill_kit", {"present": True}, {"present": True}, register(0x80385C), 1),
    ("/de1/calibration/flow_multiplier", {"multiplier": 1.1}, {"multiplier": 1.1},
     register(0x80383C), 1100),
    ("/de1/presence", {"user": True}, {"user": True}, register(0x803860), 1),
    ("/de1/control/hot_water", {"temperature": 80, "stop_at_volume": 150, "stop_at_time": 30,
                                "stop_at_weight": 120.5},
     {"temperature": 80, "stop_at_volume": 150, "stop_at_time": 30, "stop_at_weight": 120.5,
      "disable_auto_tare": False},
     lambda d: (d.settings.hot_water_temp_c, d.settings.hot_water_volume_ml,
                d.settings.hot_water_length_s), (80, 150, 30)),
    ("/de1/control/steam", {"stop_at_time": 90}, {"stop_at_time": 90, "stop_at_volume": None,
                                                  "stop_at_weight": None,
                                                  "disable_auto_tare": False},
     lambda d: d.settings.steam_length_s, 90),
    ("/de1/control/hot_water_rinse", {"temperature": 88.5, "flow": 5.5, "stop_at_time": 4.0},
     {"temperature": 88.5, "flow": 5.5, "stop_at_time": 4.0, "stop_at_volume": None,
      "stop_at_weight": None, "disable_auto_tare": False},
     lambda d: (d.registers[0x803844], d.registers[0x803840], d.registers[0x803848]),
     (885, 55, 40)),
)


@pytest.mark.parametrize("path,body,doc,where,expected", SETTINGS,
                         ids=[s[0] for s in SETTINGS])
def test_setting_written_through_the_client(api: Server, bench: Bench, path: str,
                                            body: Dict[str, Any], doc: Dict[str, Any],
                                            where: Callable[[Any], Any], expected: Any) -> None:
    r = api.patch(path, body)
    assert (r.status_code, r.json()) == (200, [])
    assert api.get(path).json() == doc
    assert sim(bench, where) == expected


@pytest.mark.parametrize("path,body,names", (
    ("/de1/setting/fan_threshold", {"temperature": 61}, "fan_threshold=61 °C is out of range: "
                                                        "the limit is 0..60 °C"),
    ("/de1/setting/steam", {"temperature": 120}, "steam"),
    ("/de1/setting/before_flow", {"heater_phase1_flow": 3.05}, "steps of 0.1 mL/s"),
    ("/de1/control/espresso", {"stop_at_weight": 5000}, "stop_at_weight=5000 g is out of "
                                                        "range: the limit is 0.1..2000 g"),
    ("/de1/control/espresso", {"last_drops_minimum_time": 90}, "0..60 s"),
    ("/de1/control/hot_water", {"temperature": 101}, "°C"),
    ("/de1/calibration/flow_multiplier", {"multiplier": 3.0}, "0.13..2"),
))
def test_out_of_limit_values_are_400_and_change_nothing(api: Server, bench: Bench, path: str,
                                                       body: Dict[str, Any],
                                                       names: str) -> None:
    before = api.get(path).json()
    writes = sim(bench, lambda d: list(d.state_requests))
    r = api.patch(path, body)
    assert r.status_code == 400
    assert r.text.startswith("ConfigurationError(") and names in r.text, r.text
    assert api.get(path).json() == before
    assert sim(bench, lambda d: list(d.state_requests)) == writes


def test_state_and_modes(api: Server, bench: Bench) -> None:
    awake(api, bench)
    # "state" comes from the client's cache, "mqtt" from the StateUpdate the application
    # records on the events thread a moment later: wait for that one too
    wait_until(lambda: json.loads(api.app.last_state_update() or "{}").get("state") == "Idle",
               timeout=10, message="the application's StateUpdate for Idle")
    doc = api.get("/de1/state").json()
    assert doc["state"]["state"] == "Idle" and doc["state"]["substate"] == "NoState"
    update = json.loads(doc["mqtt"])
    assert update["class"] == "StateUpdate" and update["state"] == "Idle"
    assert doc["state"]["last_updated"] == update["event_time"]

    r = api.put("/de1/mode", {"mode": "Dance"})
    assert (r.status_code, r.text) == (400, "DE1APIValueError(\"'Dance' is not a valid "
                                            "DE1ModeEnum\")")
    assert api.put("/de1/mode", {"mode": 4}).status_code == 400
    assert api.put("/de1/mode", {"mode": "espresso"}).status_code == 400  # pyDE1's exact names
    skip = api.put("/de1/mode", {"mode": "SkipToNext"})  # only while pouring espresso
    assert skip.status_code == 409 and skip.text.startswith("DeviceError(")
    assert sim(bench, lambda d: d.state.state) is S.IDLE

    assert api.patch("/de1/mode", {"mode": "Sleep"}).json() == []
    bench.de1.wait_for(lambda c: c.state is S.SLEEP, timeout=30)
    assert api.get("/de1/state").json()["state"]["state"] == "Sleep"
    refused = api.put("/de1/mode", {"mode": "Espresso"})  # only from Idle
    assert refused.status_code == 409
    assert sim(bench, lambda d: d.state.state) is S.SLEEP


def test_remote_start_needs_the_clients_permission(serve: Any) -> None:
    de1 = DE1Client(f"sim://?speed={SPEED:g}", allow_writes=True)
    try:
        de1.connect()
        server: Server = serve(de1, None, allow_writes=True)
        assert server.put("/de1/mode", {"mode": "Wake"}).json() == []
        de1.wait_for(lambda c: c.state is S.IDLE, timeout=30)
        r = server.put("/de1/mode", {"mode": "HotWater"})
        assert r.status_code == 403 and "allow_remote_start" in r.text
        assert de1.simulator is not None
        assert de1.simulator.run(lambda: de1.simulator.de1.state.state) is S.IDLE
    finally:
        de1.close()


def test_flow_start_with_the_group_head_controller_is_418(serve: Any) -> None:
    de1 = DE1Client(f"sim://?ghc_active=1&speed={SPEED:g}", allow_writes=True,
                    allow_remote_start=True)
    try:
        de1.connect()
        server: Server = serve(de1, None, allow_writes=True)
        assert server.put("/de1/mode", {"mode": "Wake"}).json() == []
        de1.wait_for(lambda c: c.state is S.IDLE, timeout=30)
        r = server.put("/de1/mode", {"mode": "Espresso"})
        assert r.status_code == 418 and r.text.startswith("UnsupportedFeatureError(")
        assert server.get("/de1/feature_flags").json()["feature_flags"]["ghc_active"] is True
        assert de1.state is S.IDLE
    finally:
        de1.close()


def test_read_once_feature_flags_and_ids(api: Server, bench: Bench) -> None:
    read_once = api.get("/de1/read_once_values").json()
    assert read_once["firmware_build_number"] == 1333
    assert read_once["serial_number_hexstr"] == "0000d1e1"
    assert read_once["version_ble"]["release"] == 1.5
    flags = api.get("/de1/feature_flags").json()["feature_flags"]
    assert flags["fw_version"] == 1333 and flags["skip_to_next"] and flags["rinse_control"]
    assert flags["ghc_active"] is False
    assert api.get("/de1/firmware/id").json() == {"id": 1333}
    assert api.get("/de1/id").json() == {"id": bench.de1.address, "name": "DE1"}
    assert api.get("/de1/availability").json() == {"mode": "ready", "mqtt": None}
    assert api.get("/de1/connectivity").json() == {"mode": "ready"}
    assert api.get("/de1/calibration/line_frequency").json() == {"hz": 50}
    whole = api.get("/de1").json()
    assert set(whole) == {"availability", "calibration", "connectivity", "control", "id",
                          "read_once", "setting", "state"}
    assert whole["read_once"] == read_once
    assert set(whole["setting"]) == {"before_flow", "fan_threshold", "refill_kit",
                                     "start_fill_level", "steam", "target_group_temp",
                                     "usb_outlet"}


def test_aggregate_patch_reaches_every_part(api: Server, bench: Bench) -> None:
    r = api.patch("/de1", {"setting": {"fan_threshold": {"temperature": 44}},
                           "control": {"espresso": {"stop_at_time": 25.5}}})
    assert (r.status_code, r.json()) == (200, [])
    assert sim(bench, register(0x803808)) == 44
    assert api.get("/de1/control").json()["espresso"]["stop_at_time"] == 25.5
    assert api.patch("/de1/control", {"espresso": {"stop_at_time": None}}).json() == []
    assert api.get("/de1/control/espresso").json()["stop_at_time"] is None


def test_espresso_controls(api: Server) -> None:
    body = {"stop_at_weight": 36, "stop_at_volume": 50.5, "move_on_weight": [None, 4.5],
            "disable_auto_tare": True, "profile_can_override_stop_limits": True,
            "first_drops_threshold": None, "last_drops_minimum_time": 2}
    assert api.put("/de1/control/espresso", body).json() == []
    doc = api.get("/de1/control/espresso").json()
    assert {k: doc[k] for k in body} == body
    reset = {"stop_at_weight": None, "stop_at_volume": None, "move_on_weight": [],
             "disable_auto_tare": False, "profile_can_override_stop_limits": False,
             "first_drops_threshold": 0.0, "last_drops_minimum_time": 3.0}
    assert api.patch("/de1/control/espresso", reset).json() == []


def test_profile_upload_store_and_select(api: Server, bench: Bench,
                                         library_path: Path) -> None:
    """The profiles live in the library (pyDE1's database), as the CLI and library see them."""
    library = ProfileLibrary(str(library_path))
    text = json.dumps(PROFILE).encode()
    accepted = sim(bench, lambda d: d.profiles_accepted)
    r = api.put("/de1/profile", raw=text)
    assert r.status_code == 200
    profile_id = hashlib.sha1(text).hexdigest()
    assert r.json() == [{"id": profile_id, "fingerprint": bench.de1.profile.fingerprint}]
    assert sim(bench, lambda d: d.profiles_accepted) == accepted + 1
    assert library.source(profile_id) == text and library.selected == profile_id
    assert api.get("/de1/profile/id").json() == {"id": profile_id}

    other = dict(PROFILE, title="Stored only")
    other_text = json.dumps(other).encode()
    stored = api.put("/de1/profile/store", raw=other_text)
    other_id = hashlib.sha1(other_text).hexdigest()
    assert stored.json() == [{"id": other_id,
                              "fingerprint": library.get(other_id).fingerprint}]
    assert sim(bench, lambda d: d.profiles_accepted) == accepted + 1  # not uploaded
    assert api.get("/de1/profile/id").json() == {"id": profile_id}  # nor selected
    chosen = api.put("/de1/profile/id", {"id": other_id})
    assert chosen.json() == [{"id": other_id, "fingerprint": bench.de1.profile.fingerprint}]
    assert bench.de1.profile.title == "Stored only"
    assert sim(bench, lambda d: d.profiles_accepted) == accepted + 2
    assert library.selected == other_id
    assert api.get("/de1/profile/id").json() == {"id": other_id}

    unknown = api.put("/de1/profile/id", {"id": "0" * 40})
    assert unknown.status_code == 404 and unknown.text.startswith("DE1DBNoMatchingRecord(")
    assert str(library_path) not in unknown.text  # the database's place stays private
    invalid = api.put("/de1/profile", raw=json.dumps(dict(PROFILE, version="1")).encode())
    assert invalid.status_code == 400 and "only 2.x" in invalid.text
    assert api.put("/de1/profile", raw=b"{not json").status_code == 400
    assert api.put("/de1/profile/store", raw=b"{not json").status_code == 400
    assert sim(bench, lambda d: d.profiles_accepted) == accepted + 2
    assert {e.id for e in library.list()} == {profile_id, other_id}  # nothing invalid kept
    assert library.selected == other_id


def test_profiles_outlive_the_service(bench: Bench, serve: Any, tmp_path: Path) -> None:
    """A profile stored in the database beforehand (by the CLI, another program or an earlier
    run) is uploaded by its id, and the selection is still there for the next service."""
    library = ProfileLibrary(str(tmp_path / "shared.db"))
    entry = library.store(dict(PROFILE, title="From the CLI"))
    first: Server = serve(bench.de1, bench.scale, allow_writes=True, library=library)
    assert first.get("/de1/profile/id").json() == {"id": None}
    assert first.put("/de1/profile/id", {"id": entry.id}).status_code == 200
    assert bench.de1.profile.title == "From the CLI"
    second: Server = serve(bench.de1, bench.scale, allow_writes=True,
                           library=str(tmp_path / "shared.db"))
    assert second.get("/de1/profile/id").json() == {"id": entry.id}


def test_profile_changes_refused_without_writes(readonly_api: Server, bench: Bench,
                                                library_path: Path) -> None:
    library = ProfileLibrary(str(library_path))
    entry = library.store(PROFILE)
    accepted = sim(bench, lambda d: d.profiles_accepted)
    assert readonly_api.put("/de1/profile/id", {"id": entry.id}).status_code == 403
    assert readonly_api.put("/de1/profile/store",
                            raw=json.dumps(dict(PROFILE, title="x")).encode()).status_code == 403
    assert sim(bench, lambda d: d.profiles_accepted) == accepted
    assert len(library) == 1 and library.selected is None


def test_library_argument_is_checked() -> None:
    with pytest.raises(ConfigurationError, match="ProfileLibrary or the path"):
        Pyde1App(None, None, allow_writes=False, library=42)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="give a file path"):
        Pyde1App(None, None, allow_writes=False, library=":memory:")


def test_setting_time(api: Server, readonly_api: Server, bench: Bench) -> None:
    """pyDE1's ``de1/setting/time`` {timestamp} is SetTime (A003): DE1Client.set_time and
    read_time, with their limits and write gating."""
    assert api.patch("/de1/setting/time", {"timestamp": 1700000000}).json() == []
    assert sim(bench, lambda d: d.set_time_s) == 1700000000
    assert api.get("/de1/setting/time").json() == {"timestamp": 1700000000}
    assert api.put("/de1/setting/time", {"timestamp": 1700000100}).json() == []
    assert sim(bench, lambda d: d.set_time_s) == 1700000100
    negative = api.patch("/de1/setting/time", {"timestamp": -1})
    assert negative.status_code == 400
    assert "timestamp=-1 s is out of range: the limit is 0..18446744073709551615 s" in \
        negative.text
    wrong = api.patch("/de1/setting/time", {"timestamp": 1.5})
    assert wrong.status_code == 400 and wrong.text.startswith("DE1APITypeError(")
    assert readonly_api.patch("/de1/setting/time", {"timestamp": 5}).status_code == 403
    assert readonly_api.get("/de1/setting/time").json() == {"timestamp": 1700000100}
    assert sim(bench, lambda d: d.set_time_s) == 1700000100


def test_firmware_upload_runs_in_the_background(api: Server, bench: Bench) -> None:
    awake(api, bench)
    image = make_test_image(version=1400, body_bytes=2048)
    assert api.put("/de1/firmware", raw=b"not firmware at all").status_code == 400
    events = bench.de1.events(30, UploadProgress)
    r = api.put("/de1/firmware", raw=image)
    assert (r.status_code, r.json()) == (200, [])
    phases = []
    for event in events:
        if event.kind == "firmware":
            phases.append(event.phase)
            if event.phase in ("completed", "failed", "canceled"):
                break
    assert phases[0] == "starting" and phases[-1] == "completed"
    assert sim(bench, lambda d: d.fw_installed) == 1400
    assert api.patch("/de1/firmware/cancel", raw=b"").json() == []  # nothing to cancel


def test_a_device_that_does_not_answer_is_408(bench: Bench, serve: Any) -> None:
    """The DE1's read-back of a register write is lost in the air (the simulator's fault
    injection): the request gives up after its timeout with pyDE1's 408."""
    server: Server = serve(bench.de1, bench.scale, allow_writes=True, request_timeout=0.5)
    bench.rig.run(lambda: bench.rig.de1.lose_mmr_replies.add(0x803808))
    r = server.patch("/de1/setting/fan_threshold", {"temperature": 41})
    assert r.status_code == 408 and r.text.startswith("DeviceTimeoutError("), r.text
    # the next request is served normally
    assert server.patch("/de1/setting/fan_threshold", {"temperature": 42}).json() == []
    assert sim(bench, register(0x803808)) == 42
