"""The payload builder alone (pure): pyDE1's names, versions, units and derived fields."""

from __future__ import annotations

import sys

import pytest

from pyburnerkit.de1.models import (GateChanged, MachineState as S, ShotSample,
                                    ShotSampleEvent, StateChanged, StopAtTriggered,
                                    SubState as U, UploadProgress)
from pyburnerkit.errors import BackendUnavailableError, ConfigurationError
from pyburnerkit.scale.models import WeightReading
from pyburnerkit.service.pyde1_mqtt import Pyde1MqttPublisher
from pyburnerkit.service.pyde1_payloads import (GATE_NAMES, VERSIONS, PayloadBuilder,
                                                state_name, substate_name)
from pyburnerkit.types import ConnectionState, ConnectionStateChanged


def test_state_and_substate_names_are_pyde1s() -> None:
    assert state_name(S.HOT_WATER_RINSE) == "HotWaterRinse"
    assert state_name(S.GOING_TO_SLEEP) == "GoingToSleep"
    assert state_name(S.IN_BOOT_LOADER) == "InBootLoader"
    assert state_name(None) == "NoRequest"
    assert state_name(S(0x42)) == "UNKNOWN"
    assert substate_name(U.PRE_INFUSE) == "PreInfuse"
    assert substate_name(U.HEAT_WATER_TANK) == "HeatWaterTank"
    assert substate_name(U.ERROR_NAN) == "Error_NaN"
    assert substate_name(U.ERROR_INVALID_PARM) == "Error_InvalidParm"
    assert substate_name(None) == "NoState"
    assert substate_name(U(99)) == "UNKNOWN" and substate_name(U(250)) == "ERROR_UNKNOWN"


def test_state_update_fields() -> None:
    ev = StateChanged(S.ESPRESSO, U.PRE_INFUSE, S.IDLE, U.NO_STATE)
    (cls, p), = PayloadBuilder().build(ev, create_time=ev.timestamp + 0.001)
    assert cls == "StateUpdate"
    assert p == {"arrival_time": ev.timestamp, "create_time": ev.timestamp + 0.001,
                 "state": "Espresso", "substate": "PreInfuse", "previous_state": "Idle",
                 "previous_substate": "NoState", "is_error_state": False, "version": "1.0.0",
                 "event_time": None, "sender": "DE1", "class": "StateUpdate"}
    (_, first), = PayloadBuilder().build(StateChanged(S.FATAL_ERROR, U.NO_STATE, None, None),
                                         create_time=0.0)
    assert first["previous_state"] == "NoRequest" and first["is_error_state"] is True


def _sample(t: int, frame: int, flow: float = 2.0) -> ShotSample:
    return ShotSample(t, 9.0, flow, 92.0, 91.5, 92.0, 92.0, 9.0, 0.0, frame, 150)


def test_volume_by_frames_is_the_clients() -> None:
    """pyDE1's per-frame volumes come from the event (the client splits them as pyDE1), always
    20 entries."""
    b = PayloadBuilder()
    frames = (2.5, 0.0, 4.0) + (0.0,) * 17
    p = b.build(ShotSampleEvent(_sample(50, 2), 2.5, 4.0, frames), 0.0)[0][1]
    assert p["volume_by_frames"] == list(frames)
    assert p["volume_total"] == 6.5 and p["volume_pour"] == 4.0
    assert isinstance(p["sample_time"], int) and isinstance(p["frame_number"], int)
    assert p["frame_number"] == 2
    assert p["version"] == "1.2.0" and p["de1_time"] == p["arrival_time"]
    # the publisher keeps no count of its own: a hot-water sample (all in entry 0) after an
    # espresso is published as the client reports it
    again = b.build(ShotSampleEvent(_sample(75, 3), 0.0, 0.5, (0.5,) + (0.0,) * 19),
                    0.0)[0][1]
    assert again["volume_by_frames"][:4] == [0.5, 0.0, 0.0, 0.0]
    # an event made without per-frame volumes is padded to pyDE1's 20 entries
    short = b.build(ShotSampleEvent(_sample(100, 0), 1.0, 0.0, (1.0,)), 0.0)[0][1]
    assert short["volume_by_frames"] == [1.0] + [0.0] * 19


def test_weight_and_flow_times_are_wall_clock() -> None:
    import time
    mono = time.monotonic()
    r = WeightReading(20.0, mono, mono - 0.38, 2.0, 19.5, 1.9, 0.1)
    p = PayloadBuilder().build(r, create_time=time.time())[0][1]
    assert p["class"] == "WeightAndFlowUpdate" and p["current_weight"] == 20.0
    assert p["scale_time"] == pytest.approx(time.time(), abs=1.0)
    assert p["current_weight_time"] == pytest.approx(p["scale_time"] - 0.38, abs=1e-3)
    assert p["average_flow_time"] == pytest.approx(p["current_weight_time"] - 0.5, abs=1e-6)
    assert p["median_flow_time"] == pytest.approx(p["current_weight_time"] - 0.7, abs=1e-6)
    early = PayloadBuilder().build(WeightReading(1.0, mono, mono - 0.38), 0.0)[0][1]
    assert early["average_flow"] is None and early["average_flow_time"] is None


def test_gates_clear_then_set_and_auto_tare_window() -> None:
    b = PayloadBuilder(auto_tare=True)
    start = b.build(GateChanged("sequence_start", S.ESPRESSO, 7), 0.0)
    names = [(c, p.get("name") or p.get("action"), p["action"]) for c, p in start]
    assert names[:8] == [("SequencerGateNotification", g, "clear") for g in GATE_NAMES]
    assert names[8] == ("SequencerGateNotification", "sequence_start", "set")
    assert names[9] == ("AutoTareNotification", "enabled", "enabled")
    seq = start[0][1]["sequence_id"]
    assert isinstance(seq, str) and len(seq) == 36 and start[0][1]["active_state"] == "Espresso"
    drops = b.build(GateChanged("sequence_expect_drops", S.ESPRESSO, 7), 0.0)
    assert [p["action"] for _, p in drops] == ["set", "disabled"]
    assert drops[0][1]["sequence_id"] == seq
    (_, stop), = b.build(StopAtTriggered("weight", 36.0, 33.2, 1), 0.0)
    assert stop == {**stop, "stop_at": "weight", "action": "triggered", "target_value": 36.0,
                    "current_value": 33.2, "active_state": "Espresso", "current_frame": 1,
                    "version": "1.1.0"}
    other = b.build(GateChanged("sequence_start", S.ESPRESSO, 8), 0.0)[0][1]["sequence_id"]
    assert other != seq


def test_availability_and_firmware() -> None:
    b = PayloadBuilder(de1_address="00:A0:50:DE:01:01", scale_address="CF:75:75:5E:A1:E5")
    ev = ConnectionStateChanged(ConnectionState.RECONNECTING, ConnectionState.CONNECTED)
    (_, p), = b.build(ev, 0.0, "scale")
    assert (p["state"], p["role"], p["id"], p["version"]) == \
        ("not ready", "scale", "CF:75:75:5E:A1:E5", "1.1.0")
    (_, fw), = b.build(UploadProgress("firmware", "erasing", 0, 1088), 0.0)
    assert (fw["class"], fw["state"], fw["uploaded"], fw["total"]) == \
        ("FirmwareUpload", "starting", 0, 1088)
    assert b.build(UploadProgress("profile", "uploading", 1, 4), 0.0) == []


def test_every_class_has_pyde1s_version() -> None:
    assert VERSIONS["ShotSampleWithVolumesUpdate"] == "1.2.0"
    assert VERSIONS["SequencerGateNotification"] == VERSIONS["StopAtNotification"] == "1.1.0"
    assert VERSIONS["DeviceAvailability"] == "1.1.0" and VERSIONS["StateUpdate"] == "1.0.0"


def test_bad_arguments_are_refused_before_any_io() -> None:
    with pytest.raises(ConfigurationError, match="port=0 is out of range"):
        Pyde1MqttPublisher(None, None, host="127.0.0.1", port=0)
    with pytest.raises(ConfigurationError, match="topic_root='a/#'"):
        Pyde1MqttPublisher(None, None, host="127.0.0.1", topic_root="a/#")
    with pytest.raises(ConfigurationError, match="connect_timeout=0 s is out of range"):
        Pyde1MqttPublisher(None, None, host="127.0.0.1", connect_timeout=0)
    with pytest.raises(ConfigurationError, match="host"):
        Pyde1MqttPublisher(None, None, host="")


def test_missing_paho_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    # a None entry in sys.modules makes the import fail as if paho were not installed
    monkeypatch.setitem(sys.modules, "paho.mqtt.client", None)
    p = Pyde1MqttPublisher(None, None, host="127.0.0.1")
    with pytest.raises(BackendUnavailableError, match=r'pip install "pyburnerkit\[mqtt\]"'):
        p.start()


def test_password_is_not_in_the_repr() -> None:
    p = Pyde1MqttPublisher(None, None, host="127.0.0.1", username="u", password="s3cret")
    assert "s3cret" not in repr(p)
