"""The simulator behaves like the V3.2 firmware of the spec, seen through a raw WebSocket."""

from __future__ import annotations

import json
import socket
from typing import Any

import pytest
import websocket

from pyburnerkit.afterburner import codec
from pyburnerkit.afterburner.models import ErrorState, RunState
from pyburnerkit.afterburner.sim import (EXTENDED_GROUP, MAIN_GROUP, MAX_CLIENTS, AfterburnerSim,
                                         HeaterModel)

from ..helpers import wait_until


def full_dump(conn: Any) -> dict:
    merged: dict = {}
    for frame in conn.recv_until("SysUpTime"):
        merged.update(frame)
    return merged


def test_new_client_gets_the_complete_state_in_group_frames_without_asking(raw: Any) -> None:
    conn = raw()
    frames = conn.recv_until("SysUpTime")
    assert set(frames[0]) <= set(MAIN_GROUP) and "RunState" in frames[0]
    assert set(frames[1]) <= set(EXTENDED_GROUP) and "PumpCal" in frames[1]
    assert all(len(json.dumps(f, separators=(",", ":"))) <= codec.MAX_FRAME_BYTES for f in frames)
    # timers are part of the first dump (their moderators start empty)
    assert any("TimerStart" in f for f in frames)
    assert frames[-1]["DateTime"] and "SysVer" in frames[-1]


def test_afterwards_only_changed_keys_are_sent(sim: AfterburnerSim, raw: Any) -> None:
    conn = raw()
    full_dump(conn)
    conn.recv_until("GPin1")
    conn.send({"TempDesired": 25})
    frame = conn.recv()
    assert frame == {"TempDesired": 25, "PumpFixed": frame["PumpFixed"]} or \
        frame == {"TempDesired": 25}


def test_noisy_keys_respect_the_holdoff(sim: AfterburnerSim, raw: Any) -> None:
    conn = raw()
    full_dump(conn)
    conn.recv_until("GPin1")
    sim.set(temp_c=30.0)  # changes TempCurrent at once...
    conn.send({"SQuery": 1})
    frames = conn.recv_until("SysUpTime")
    assert not any("TempCurrent" in f for f in frames)  # ...but it was reported < 5 s ago
    sim.advance(5.0)
    conn.send({"SQuery": 1})
    frames = conn.recv_until("SysUpTime")
    assert any("TempCurrent" in f for f in frames)


def test_refresh_resends_everything_except_timers(sim: AfterburnerSim, raw: Any) -> None:
    conn = raw()
    full_dump(conn)
    conn.recv_until("GPin1")
    conn.send({"Refresh": 1})
    frames = conn.recv_until("SysUpTime")
    keys = set().union(*frames)
    assert {"RunState", "PumpCal", "Reboot", "LoadWebContent"} <= keys
    assert len(frames[0]["Reboot"]) == 4
    assert "TimerStart" not in keys
    conn.send({"TQuery": 0})
    frames = conn.recv_until("TimerRefresh")
    assert frames[-2]["TimerStart"].startswith("1 ")


def test_fifth_client_can_command_but_receives_nothing(sim: AfterburnerSim, raw: Any) -> None:
    conns = [raw() for _ in range(MAX_CLIENTS)]
    for conn in conns:
        full_dump(conn)
    fifth = raw()
    fifth.send({"TempDesired": 30})
    frame = conns[0].recv()
    assert frame.get("TempDesired") == 30 or "GPin1" in frame
    with pytest.raises(websocket.WebSocketTimeoutException):
        fifth.recv(timeout=0.3)


@pytest.mark.parametrize("command,key,expected", [
    ({"TempDesired": 50}, "TempDesired", 35),      # clamped
    ({"TempDesired": "9"}, "TempDesired", 9),       # numbers from text
    ({"PumpMin": 0.1}, "PumpMin", 0.4),             # clamped
    ({"FanMin": 100}, "FanMin", 1680),              # ignored
    ({"CyclicOff": 1}, "CyclicOff", 2),             # stored minus one, reported plus one
    ({"CyclicOff": 2}, "CyclicOff", 2),
    ({"FrostOn": 31}, "FrostOn", 0),                # ignored
    ({"LowVoltCutout": 11.57}, "LowVoltCutout", 11.5),  # kept at 0.1 V
])
def test_values_are_parsed_the_firmware_way(sim: AfterburnerSim, raw: Any, command: dict,
                                            key: str, expected: Any) -> None:
    conn = raw()
    full_dump(conn)
    conn.send(dict(command, SQuery=1))
    merged: dict = {}
    for frame in conn.recv_until("SysUpTime"):
        merged.update(frame)
    assert sim.snapshot()[key] == expected


def test_run_true_means_off_and_start_replies_with_start_string(sim: AfterburnerSim,
                                                                raw: Any) -> None:
    conn = raw()
    full_dump(conn)
    conn.send({"Run": 1})
    assert conn.recv_until("StartString")[-1]["StartString"] == ""
    assert sim.snapshot()["RunState"] == RunState.STARTING
    conn.send({"Run": True})  # "true" -> toInt -> 0: a stop request
    wait_until(lambda: sim.snapshot()["RunState"] != RunState.STARTING)
    assert sim.snapshot()["RunState"] in (RunState.STOPPING, RunState.STOPPED)


def test_start_refused_when_ambient_is_above_the_set_point(sim: AfterburnerSim, raw: Any) -> None:
    sim.set(temp_c=30.0)
    conn = raw()
    full_dump(conn)
    conn.send({"Run": 1})
    assert conn.recv_until("StartString")[-1]["StartString"] == "Ambient too warm!"


def test_big_frames_and_garbage_are_dropped_silently(sim: AfterburnerSim, raw: Any) -> None:
    conn = raw()
    full_dump(conn)
    before = len(sim.received)
    conn.send(json.dumps({"TempDesired": 30, "pad": "x" * 600}))
    conn.send("not json")
    conn.send({"SQuery": 1})
    conn.recv_until("SysUpTime")
    assert len(sim.received) == before + 1
    assert sim.snapshot()["TempDesired"] == 22


def test_pings_get_no_pong(sim: AfterburnerSim, raw: Any) -> None:
    conn = raw()
    full_dump(conn)
    conn.recv_until("GPin1")
    conn.ws.ping()  # empty payload: harmless even to the firmware's reader
    conn.send({"SQuery": 1})
    conn.ws.settimeout(5)
    opcode, _ = conn.ws.recv_data(control_frame=True)
    assert opcode == websocket.ABNF.OPCODE_TEXT  # the reply, no PONG before it
    assert sim.pings_seen == 1


def test_nvsave_needs_the_code(sim: AfterburnerSim, raw: Any) -> None:
    conn = raw()
    full_dump(conn)
    conn.send({"PumpMax": 5.0, "NVsave": 1234, "SQuery": 1})
    conn.recv_until("SysUpTime")
    assert sim.nvsave_count == 0
    conn.send({"NVsave": 8861, "SQuery": 1})
    conn.recv_until("SysUpTime")
    assert sim.nvsave_count == 1 and sim.saved["PumpMax"] == 5.0


def test_refused_connections_and_drops(sim: AfterburnerSim, raw: Any) -> None:
    sim.refuse_connections(1)
    with pytest.raises((ConnectionError, websocket.WebSocketException, OSError)):
        websocket.create_connection(f"ws://127.0.0.1:{sim.port}/", timeout=2).close()
    conn = raw()
    full_dump(conn)
    conn.recv_until("GPin1")
    sim.disconnect()
    with pytest.raises((ConnectionError, websocket.WebSocketException, OSError)):
        conn.recv(timeout=2)


def test_plain_http_get_gets_a_text_line(sim: AfterburnerSim) -> None:
    with socket.create_connection(("127.0.0.1", sim.port), timeout=5) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        reply = b""
        while b"only" not in reply:
            chunk = sock.recv(4096)
            if not chunk:
                break
            reply += chunk
    assert reply.startswith(b"HTTP/1.1 200") and b"WebSocket connections only" in reply


# ------------------------------------------------------------------------- the heater model
def run_model(model: HeaterModel, seconds: float) -> None:
    for _ in range(int(seconds)):
        model.step(1.0)


def test_start_up_goes_through_the_run_states_and_regulates() -> None:
    model = HeaterModel(ambient_c=0.0, temp_c=10.0, body_c=10.0)
    assert model.start() == ""
    seen = []
    for _ in range(3000):
        model.step(1.0)
        if not seen or seen[-1] != model.run_state:
            seen.append(model.run_state)
    assert seen[:5] == [RunState.STARTING, RunState.HEATING_GLOW_PLUG, RunState.IGNITING,
                        RunState.IGNITED, RunState.RUNNING]
    assert abs(model.temp_c - 22.0) < 2.0  # the thermostat holds the set point
    assert model.body_c > 80 and model.pump_count > 7239.5


def test_stop_cools_down_to_stopped() -> None:
    model = HeaterModel(ambient_c=0.0, temp_c=10.0, body_c=10.0)
    model.start()
    run_model(model, 200)
    model.stop()
    seen = []
    for _ in range(600):
        model.step(1.0)
        if not seen or seen[-1] != model.run_state:
            seen.append(model.run_state)
    assert seen == [RunState.STOPPING, RunState.SHUTTING_DOWN, RunState.COOLING,
                    RunState.STOPPED]
    assert model.body_c < 55 and model.pump_hz == 0


def test_low_voltage_cutout_is_an_error() -> None:
    model = HeaterModel(battery_v=12.9)
    model.start()
    run_model(model, 60)
    model.battery_v = 11.0
    model.step(1.0)
    assert model.reported_error() == ErrorState.LOW_VOLTAGE
    assert model.run_state == RunState.SHUTTING_DOWN
    assert model.start() == "Battery below LVC!"


def test_frost_mode_starts_the_heater() -> None:
    model = HeaterModel(ambient_c=-10.0, temp_c=4.0)
    model.settings["FrostOn"] = 5
    model.step(1.0)
    assert model.run_state == RunState.STARTING and model.frost_started


def test_cyclic_mode_suspends_above_the_threshold() -> None:
    model = HeaterModel(ambient_c=20.0, temp_c=26.0)
    model.settings["CyclicOffStored"] = 1  # reported as 2 °C
    assert model.start() == "Immediate Cyclic suspension!"
    assert model.run_state == RunState.SUSPENDED and model.run_state.is_on


def test_a_clock_change_alone_sends_the_date_without_the_query_keys(sim: AfterburnerSim,
                                                                    raw: Any) -> None:
    # The firmware's system frame after a date change carries DateTime (and Time12hr) only;
    # SysUpTime comes with a query, which is what marks a frame as a query's answer.
    conn = raw()
    full_dump(conn)
    conn.recv_until("GPin1")
    conn.send({"DateTime": "3/2/2027 04:05:06"})
    frame = conn.recv_until("DateTime")[-1]
    assert frame["DateTime"] == "3/2/2027 04:05:06" and "SysUpTime" not in frame
    conn.send({"DateTime": "3/2/2027 04:05:06", "SQuery": 1})
    assert "SysVer" in conn.recv_until("DateTime")[-1]


def test_a_refresh_cancels_an_earlier_timer_query(sim: AfterburnerSim, raw: Any) -> None:
    # Refresh re-primes the timer report, so TQuery must come after it to be answered.
    conn = raw()
    full_dump(conn)
    conn.recv_until("GPin1")
    conn.send({"TQuery": 3, "Refresh": 1, "SQuery": 1})
    assert not any("TimerStart" in f for f in conn.recv_until("SysUpTime"))
    conn.send({"Refresh": 1, "TQuery": 3, "SQuery": 1})
    frames = conn.recv_until("SysUpTime")
    assert [f["TimerStart"] for f in frames if "TimerStart" in f] == ["3 00:00"]
