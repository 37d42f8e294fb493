"""pyDE1's outbound MQTT API over a real mosquitto, read by a plain paho subscriber, with the
simulated DE1 + Skale rig (in-process transport)."""

from __future__ import annotations

import json
import os
import signal
import socket
import threading
from typing import Any, Dict, List, Tuple

from pyburnerkit.de1.client import DE1Client
from pyburnerkit.de1.models import GateChanged, MachineState as S, ShotSampleEvent
from pyburnerkit.de1.sequencer import GATES, ShotSequencer
from pyburnerkit.rigs.espresso import DE1Rig
from pyburnerkit.scale.client import SkaleClient
from pyburnerkit.service.pyde1_mqtt import Pyde1MqttPublisher
from pyburnerkit.service.pyde1_payloads import VERSIONS

from ..ble.simrig import SPEED
from ..helpers import Recorder
from ..recorder.services import Mosquitto
from ..recorder.util import Subscriber

Msg = Tuple[str, bytes, bool]


def _status(msgs: List[Msg]) -> List[Tuple[bytes, bool]]:
    return [(p, r) for t, p, r in msgs if t == "pyDE1/status/controller"]


def _json(msgs: List[Msg]) -> List[Dict[str, Any]]:
    out = []
    for t, p, _ in msgs:
        if t != "pyDE1/status/controller":
            d = json.loads(p)
            assert t == f"pyDE1/{d['class']}", (t, d["class"])
            out.append(d)
    return out


def _threads_of(p: Pyde1MqttPublisher) -> List[str]:
    return [t.name for t in threading.enumerate()
            if t.name in (f"paho-mqtt-client-{p.client_id}",
                          f"pyburnerkit-pyde1-mqtt-127.0.0.1:{p.port}") and t.is_alive()]


def _start(publishers: List[Pyde1MqttPublisher], broker: Mosquitto, de1: Any = None,
           scale: Any = None, **kw: Any) -> Pyde1MqttPublisher:
    p = Pyde1MqttPublisher(de1, scale, host="127.0.0.1", port=broker.port, **kw)
    publishers.append(p)
    p.start(timeout=10)
    return p


def test_status_here_retained_then_gone_and_no_thread_left(broker: Mosquitto,
                                                           publishers: Any) -> None:
    p = _start(publishers, broker)
    assert _threads_of(p)  # paho's network thread and the worker run
    late = Subscriber(broker.port, "pyDE1/#")  # subscribes after the publish: gets the retained
    try:
        assert late.wait_for(lambda m: _status(m)) == [(b"Here", True)]
        assert p.close(timeout=5.0) is True
        assert late.wait_for(lambda m: len(_status(m)) == 2 and _status(m))[1] == \
            (b"Gone", False)
        assert p.close() is True  # idempotent
    finally:
        late.close()
    assert _threads_of(p) == []
    after = Subscriber(broker.port, "pyDE1/status/#")
    try:
        assert after.wait_for(lambda m: _status(m)) == [(b"Gone", True)]  # no Died followed
    finally:
        after.close()


def test_will_says_died_when_the_connection_is_killed(broker: Mosquitto,
                                                      publishers: Any) -> None:
    """The publisher's TCP connection is shut under paho (through paho's public
    ``socket()`` of the publisher's private client): the broker sees the link go without a
    DISCONNECT and publishes the will; paho reconnects and says Here again."""
    p = _start(publishers, broker)
    sub = Subscriber(broker.port, "pyDE1/status/#")
    try:
        sub.wait_for(lambda m: _status(m) == [(b"Here", True)])
        p._client.socket().shutdown(socket.SHUT_RDWR)
        seen = sub.wait_for(lambda m: [s for s, _ in _status(m)][1:3] == [b"Died", b"Here"]
                            and _status(m))
        assert seen[1] == (b"Died", False)
        p._connack.wait(10)
        assert p.close() is True
        sub.wait_for(lambda m: _status(m)[-1] == (b"Gone", False))
    finally:
        sub.close()


def _shot(rig: DE1Rig, pair: Tuple[DE1Client, SkaleClient], broker: Mosquitto,
          publishers: Any) -> List[Dict[str, Any]]:
    de1, scale = pair
    sub = Subscriber(broker.port, "pyDE1/#")
    try:
        # the publisher subscribes to the DE1 before the sequencer does, so a state change is
        # queued before the gate it opens
        p = _start(publishers, broker, de1, scale)
        with ShotSequencer(de1, scale, stop_at_weight=30, time_scale=SPEED) as seq:
            p.attach_sequencer(seq)
            de1.start_espresso()
            record = seq.wait_complete(timeout=60)
        assert record.stop_reason == "weight"

        def complete(m: List[Msg]) -> bool:
            return any(d.get("name") == "sequence_complete" and d.get("action") == "set"
                       for d in _json(m))
        msgs = sub.wait_for(lambda m: complete(m) and m)
        assert p.close() is True
    finally:
        sub.close()
    return _json(msgs)


def test_a_shot_publishes_pyde1s_messages_in_order(rig: DE1Rig, pair: Any, broker: Mosquitto,
                                                    publishers: Any) -> None:
    got = _shot(rig, pair, broker, publishers)
    for d in got:  # the common keys of every payload
        assert d["version"] == VERSIONS[d["class"]]
        assert isinstance(d["sender"], str) and d["sender"]
        for key in ("arrival_time", "create_time", "event_time"):
            assert isinstance(d[key], float), (d["class"], key)
        assert d["create_time"] <= d["event_time"]
    classes = [d["class"] for d in got]

    def index(pred: Any) -> int:
        return next(i for i, d in enumerate(got) if pred(d))

    espresso = index(lambda d: d["class"] == "StateUpdate" and d["state"] == "Espresso"
                     and d["previous_state"] == "Idle")
    assert got[espresso]["sender"] == "DE1" and got[espresso]["is_error_state"] is False
    gates = [(d["name"], i) for i, d in enumerate(got)
             if d["class"] == "SequencerGateNotification" and d["action"] == "set"]
    assert [g for g, _ in gates] == list(GATES)
    gate_at = dict(gates)
    assert espresso < gate_at["sequence_start"]
    seq_ids = {d["sequence_id"] for d in got if d["class"] == "SequencerGateNotification"}
    assert len(seq_ids) == 1
    stops = [i for i, d in enumerate(got) if d["class"] == "StopAtNotification"]
    assert len(stops) == 1
    stop = got[stops[0]]
    assert (stop["stop_at"], stop["action"], stop["target_value"], stop["active_state"]) == \
        ("weight", "triggered", 30.0, "Espresso")
    assert isinstance(stop["current_value"], float) and isinstance(stop["current_frame"], int)
    assert gate_at["sequence_expect_drops"] < stops[0] < gate_at["sequence_flow_end"]
    tare = [(i, d["action"]) for i, d in enumerate(got) if d["class"] == "AutoTareNotification"]
    assert [a for _, a in tare] == ["enabled", "disabled"]
    assert gate_at["sequence_start"] < tare[0][0] < gate_at["sequence_flow_begin"]
    idle = index(lambda d: d["class"] == "StateUpdate" and d["previous_state"] == "Espresso"
                 and d["state"] == "Idle")
    assert gate_at["sequence_flow_state_exit"] > idle > stops[0]
    samples = [d for d in got if d["class"] == "ShotSampleWithVolumesUpdate"]
    during = [d for i, d in enumerate(got) if d["class"] == "ShotSampleWithVolumesUpdate"
              and gate_at["sequence_flow_begin"] < i < gate_at["sequence_flow_end"]]
    assert len(during) > 5
    last = during[-1]
    for key in ("group_pressure", "group_flow", "mix_temp", "head_temp", "set_mix_temp",
                "set_head_temp", "set_group_pressure", "set_group_flow", "steam_temp",
                "de1_time", "volume_preinfuse", "volume_pour", "volume_total"):
        assert isinstance(last[key], float), key
    assert isinstance(last["sample_time"], int) and isinstance(last["frame_number"], int)
    assert last["volume_total"] > 5 and len(last["volume_by_frames"]) == 20
    assert abs(sum(last["volume_by_frames"]) - last["volume_total"]) < 1e-6
    assert max(d["group_pressure"] for d in samples) > 5
    weights = [d for d in got if d["class"] == "WeightAndFlowUpdate"]
    assert weights and weights[-1]["sender"] == "ScaleProcessor"
    flowing = [d for d in weights if d["average_flow"] is not None]
    assert flowing and max(d["current_weight"] for d in weights) > 20
    w = flowing[-1]
    assert w["current_weight_time"] < w["scale_time"]
    assert isinstance(w["median_weight"], float) and isinstance(w["average_flow_time"], float)
    assert "WaterLevelUpdate" in classes
    levels = next(d for d in got if d["class"] == "WaterLevelUpdate")
    assert isinstance(levels["level"], float) and isinstance(levels["start_fill_level"], float)
    ready = [d for d in got if d["class"] == "DeviceAvailability"]
    assert {(d["role"], d["state"]) for d in ready} == {("de1", "ready"), ("scale", "ready")}


def test_scale_tare_and_button(rig: DE1Rig, pair: Any, broker: Mosquitto,
                               publishers: Any) -> None:
    _, scale = pair
    sub = Subscriber(broker.port, "pyDE1/#")
    try:
        p = _start(publishers, broker, None, scale)
        rig.run(lambda: setattr(rig.bench, "extra_g", 50.0))
        scale.wait_for(lambda c: c.weight is not None and c.weight > 40, timeout=10)
        scale.tare()
        tare = sub.wait_for(lambda m: [d for d in _json(m) if d["class"] == "ScaleTareSeen"])
        assert tare[0]["sender"] == "AtomaxSkaleII" and tare[0]["version"] == "1.0.0"
        rig.host.call_soon(rig.skale.press, 2)
        press = sub.wait_for(lambda m: [d for d in _json(m)
                                        if d["class"] == "ScaleButtonPress"])
        assert press[0]["button"] == 2 and isinstance(press[0]["arrival_time"], float)
        assert p.close() is True
    finally:
        sub.close()


def test_a_stalled_broker_never_blocks_the_de1s_events(rig: DE1Rig, pair: Any,
                                                       broker: Mosquitto,
                                                       publishers: Any) -> None:
    """mosquitto is frozen (SIGSTOP): the publisher fills its socket, keeps at most
    ``max_inflight`` messages inside paho, drops the oldest queued events, and the DE1 client
    keeps delivering events to a subscriber that comes after the publisher's own; close()
    then ends both threads even though the broker never reads the DISCONNECT."""
    de1, _ = pair
    p = _start(publishers, broker, de1, None, max_queued=100, max_inflight=20)
    proc = broker.proc
    assert proc is not None
    os.kill(proc.pid, signal.SIGSTOP)
    try:
        # real events of a sequencer that never ran, ~9 messages each, handed over until the
        # worker cannot empty its queue any more: paho holds max_inflight unwritten messages
        # because the socket is full (megabytes; mosquitto reads nothing). That wait is only
        # how the test fills the socket; nothing below depends on when it ends.
        gate = GateChanged("sequence_start", S.ESPRESSO, 1)
        for _ in range(1000):
            with p._cond:
                for _ in range(p.max_queued):
                    p.sequencer_event(gate)
                if not p._cond.wait_for(lambda: not p._queue, timeout=1.0):
                    break
        # the publisher's own lock held: its worker cannot take any, so the queue overflows
        with p._cond:
            before = p.dropped
            for _ in range(p.max_queued + 5):
                p.sequencer_event(gate)
            assert p.dropped >= before + 5 and len(p._queue) == p.max_queued
        after = Recorder()
        de1.subscribe(after, ShotSampleEvent)
        after.wait_for(lambda e: len(after.events) >= 40 and True, timeout=30)
        assert p.close(timeout=3.0) is True
        assert _threads_of(p) == []
    finally:
        os.kill(proc.pid, signal.SIGCONT)


def test_no_broker_is_a_connection_error_and_leaves_nothing() -> None:
    from pyburnerkit.errors import DeviceConnectionError
    from ..recorder.services import free_port
    p = Pyde1MqttPublisher(None, None, host="127.0.0.1", port=free_port(), password="s3cret")
    try:
        p.start(timeout=5)
    except DeviceConnectionError as exc:
        assert "127.0.0.1" in str(exc) and "s3cret" not in str(exc)
    else:
        raise AssertionError("start() succeeded without a broker")
    assert p.close() is True and _threads_of(p) == []
