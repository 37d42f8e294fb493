"""The scale routes against the simulated Skale, and an espresso pulled through pyDE1's API that
stops at a weight the simulated Skale reports (DE1 and Skale share one simulated bench)."""

from __future__ import annotations

import json

from pyburnerkit.de1.models import MachineState as S, StateChanged, SubState as U

from .conftest import Bench, Server


def skale(bench: Bench, name: str) -> object:
    return bench.rig.run(lambda: getattr(bench.rig.skale, name))


def test_scale_documents(api: Server, bench: Bench) -> None:
    assert api.get("/scale/id").json() == {"id": bench.scale.address,
                                           "name": "AtomaxSkaleII: SkaleII",
                                           "type": "AtomaxSkaleII"}
    assert api.get("/scale").json() == {
        "availability": {"mode": "ready", "mqtt": None}, "connectivity": {"mode": "ready"},
        "id": api.get("/scale/id").json()}
    assert api.get("/scale/tare").status_code == 405


def test_tare_through_the_api(api: Server, bench: Bench) -> None:
    bench.rig.run(lambda: setattr(bench.rig.bench, "extra_g", 180.0))  # a cup goes on
    bench.scale.wait_for(lambda c: c.weight is not None and c.weight > 150, timeout=30)
    r = api.patch("/scale/tare", {"tare": True})
    assert (r.status_code, r.json()) == (200, [])
    # the client's tare returned once the scale reported zero
    assert abs(bench.rig.run(lambda: bench.rig.skale.reading())) < 0.5
    commands = bench.rig.run(lambda: list(bench.rig.skale.commands))
    assert api.put("/scale/tare", {"tare": False}).json() == []  # pyDE1: false does nothing
    assert api.put("/scale/tare", {"tare": None}).json() == []
    assert bench.rig.run(lambda: list(bench.rig.skale.commands)) == commands
    assert api.patch("/scale/tare", {"tare": "yes"}).status_code == 400
    bench.rig.run(lambda: setattr(bench.rig.bench, "extra_g", 0.0))


def test_display_through_the_api(api: Server, readonly_api: Server, bench: Bench) -> None:
    assert api.patch("/scale/display", {"display_on": False}).json() == []
    assert skale(bench, "display_on") is False
    refused = readonly_api.patch("/scale/display", {"display_on": True})
    assert refused.status_code == 403
    assert skale(bench, "display_on") is False
    assert api.put("/scale/display", {"display_on": True}).json() == []
    assert skale(bench, "display_on") is True
    assert bench.scale.display_on is True


def test_espresso_through_the_api_stops_at_the_weight(api: Server, bench: Bench) -> None:
    target = 30.0
    assert api.patch("/de1/control/espresso", {"stop_at_weight": target}).json() == []
    assert api.put("/de1/mode", {"mode": "Wake"}).json() == []
    bench.de1.wait_for(lambda c: c.state is S.IDLE, timeout=30)
    sequencer = api.app.sequencer
    assert sequencer is not None
    shots = len(sequencer.records)
    tares = bench.rig.run(lambda: list(bench.rig.skale.commands)).count(0x10)
    states = bench.de1.events(60, StateChanged)  # before the start: no change is missed

    r = api.put("/de1/mode", {"mode": "Espresso"})
    assert (r.status_code, r.json()) == (200, [])
    seen = []
    for event in states:
        seen.append(event.state)
        if event.state is S.IDLE and S.ESPRESSO in seen:
            break
    # The wait above reads the cache, which is set before the change to Idle is published:
    # that event may still reach an iterator opened right after. Nothing else may come first.
    start = seen.index(S.ESPRESSO)
    assert set(seen[:start]) <= {S.IDLE} and seen[-1] is S.IDLE, seen
    # the sequence completes a few (simulated) seconds of last drops later; the DE1's
    # samples keep arriving, so the client's wait re-checks on each
    bench.de1.wait_for(lambda c: len(sequencer.records) > shots, timeout=60)

    record = sequencer.records[-1]
    assert record.stop_reason == "weight"
    assert [t.stop_at for t in sequencer.triggered][-1] == "weight"
    assert record.final_weight_g is not None
    assert abs(record.final_weight_g - target) < 1.5, record.final_weight_g
    # what the simulated Skale reports now is what the shot ended at (nothing pours any more)
    on_scale = bench.rig.run(lambda: bench.rig.skale.reading())
    assert abs(on_scale - record.final_weight_g) < 0.3
    # auto-tare at the start of the shot
    assert bench.rig.run(lambda: list(bench.rig.skale.commands)).count(0x10) > tares

    state = api.get("/de1/state").json()
    assert state["state"]["state"] == "Idle" and state["state"]["substate"] == "NoState"
    update = json.loads(state["mqtt"])
    assert (update["previous_state"], update["state"]) == ("Espresso", "Idle")
    assert bench.de1.substate is U.NO_STATE
    assert api.patch("/de1/control/espresso", {"stop_at_weight": None}).json() == []
