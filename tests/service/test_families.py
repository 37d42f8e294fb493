"""Every generic route on every family's simulator, over real HTTP: list, state, a setting
changed through the client's own setter (confirmed), refused without ``allow_writes`` (403, the
device unchanged) and outside its limits (400 naming value, limit and unit), and actions."""

from __future__ import annotations

from typing import Any, Dict, List

import pytest
import requests

from .conftest import API, connected_with_fields, make_service, value_of, wait_hub


def _toggle(before: Any) -> bool:
    return not bool(before)


#: per family: the simulator URL, the fields opted in, a setting to change (key, the value to
#: send computed from the current one, the confirmed value expected), a refused value with
#: the words its message must hold, and an action (None: the family has none)
FAMILIES: Dict[str, Dict[str, Any]] = {
    "afterburner": dict(
        url="sim://?tick=0.05&speed=30&seed=1", controls=[],
        setting="TempDesired", send=lambda before: 30 if before != 30 else 25,
        expect=lambda sent: sent, bad=99, words=["99", "8..35", "°C"], action="Stop"),
    "mate3": dict(
        url="sim://mate3", controls=["set_time_zone"],
        setting="mate3/ags_mode", send=_toggle, expect=lambda sent: 1 if sent else 0,
        bad_key="mate3/set_time_zone", bad=99, words=["99"], action=None),
    "victron": dict(
        url="sim://", controls=["com.victronenergy.solarcharger/Mode"],
        setting="com.victronenergy.solarcharger.sim/Mode",
        send=lambda before: before != 4, expect=lambda sent: 1 if sent else 4,
        bad="maybe", words=["switch", "true or false", "maybe"], action=None),
    "de1": dict(
        url="sim://", controls=["start_fill_level_mm"],
        setting="start_fill_level_mm", send=lambda before: 12 if before != 12 else 10,
        expect=lambda sent: sent, bad=99, words=["99", "70", "mm"], action="stop"),
    "scale": dict(
        url="sim://", controls=["display_on"], setting="display_on",
        send=lambda before: False, expect=lambda sent: sent, bad="yes",
        words=["switch", "yes"], action="tare"),
    # the cycler client has no setter at all (commands go through per-channel clients)
    "arbin": dict(url="sim://?channels=2", controls=[], setting=None, action=None,
                  writable=False),
}


def _patch(service: Any, name: str, body: Any) -> requests.Response:
    return requests.patch(f"{service.url}{API}/devices/{name}", json=body, timeout=30)


@pytest.mark.parametrize("family", list(FAMILIES))
def test_every_generic_route_on_the_familys_simulator(family: str, services: List[Any]
                                                      ) -> None:
    spec = FAMILIES[family]
    writable = spec.get("writable", True)
    service = make_service([
        dict(family=family, url=spec["url"], id="rw", controls=spec["controls"],
             options={"allow_writes": True} if writable else {}),
        dict(family=family, url=spec["url"], id="ro", controls=spec["controls"])])
    services.append(service)
    base = f"{service.url}{API}"
    setting = spec["setting"]

    def ready(state: Dict[str, Any]) -> bool:
        return connected_with_fields(state) and (setting is None or setting in state["fields"]
                                                 or family in ("scale",))
    rw = wait_hub(service, "rw", ready)
    ro = wait_hub(service, "ro", ready)

    # the list: every device with its family, endpoint, connection and last update
    listed = requests.get(f"{base}/devices", timeout=10).json()["devices"]
    assert {d["name"]: d["family"] for d in listed} == {"rw": family, "ro": family}
    for item in listed:
        assert item["connection"] == "connected" and item["last_update"] > 0
        assert item["endpoint"]
    assert {d["name"]: d["writes_allowed"] for d in listed} == {"rw": writable, "ro": False}

    # the state: the recorder's field names and units, with the table's friendly names
    state = requests.get(f"{base}/devices/rw", timeout=10).json()
    assert state["family"] == family and state["connection"] == "connected"
    assert not state["stale"]
    assert set(rw["fields"]) <= set(state["fields"])
    some = next(iter(state["fields"].values()))
    assert {"value", "unit", "timestamp", "name", "channel", "field"} <= set(some)

    if setting is None:  # Arbin: nothing is settable, and the reply says so
        key = next(iter(state["fields"]))
        reply = _patch(service, "rw", {key: 1})
        assert reply.status_code == 400
        assert reply.json()["error"] == "UnknownField"
        assert "settings of the arbin family: none" in reply.json()["message"]
    else:
        before = value_of(rw, setting)
        sent = spec["send"](before)

        # without allow_writes: 403, and nothing reached the device
        ro_before = value_of(ro, setting)
        reply = _patch(service, "ro", {setting: sent})
        assert reply.status_code == 403, reply.text
        assert reply.json()["error"] == "WriteNotAllowedError"
        assert "allow_writes" in reply.json()["message"]
        assert value_of(requests.get(f"{base}/devices/ro", timeout=10).json(),
                        setting) == ro_before

        # with writes allowed: the client's setter runs and its confirmation comes back
        reply = _patch(service, "rw", {setting: sent})
        assert reply.status_code == 200, reply.text
        confirmed = reply.json()["confirmed"][setting]
        assert confirmed == spec["expect"](sent)

        # outside the limits (or of the wrong type): 400 naming value, limit and unit
        bad_key = spec.get("bad_key", setting)
        reply = _patch(service, "rw", {bad_key: spec["bad"]})
        assert reply.status_code == 400, reply.text
        message = reply.json()["message"]
        for word in spec["words"]:
            assert word in message, (word, message)
        if bad_key == setting:
            after = requests.get(f"{base}/devices/rw", timeout=10).json()
            # the refused value never shows up on the device
            assert value_of(after, setting) != spec["bad"]

    action = spec["action"]
    if action is None:
        reply = requests.post(f"{base}/devices/rw/actions/nothing", timeout=10)
        assert reply.status_code == 404 and reply.json()["error"] == "UnknownAction"
    else:
        reply = requests.post(f"{base}/devices/ro/actions/{action}", timeout=10)
        assert reply.status_code == 403, reply.text
        reply = requests.post(f"{base}/devices/rw/actions/{action}", timeout=30)
        assert reply.status_code == 200, reply.text
        assert reply.json() == {"device": "rw", "action": action, "done": True}
