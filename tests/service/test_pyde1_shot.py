"""A shot pulled through the service as a pyDE1 user pulls it: stop-at-weight set and the
espresso started over pyDE1's HTTP paths, the shot watched on pyDE1's MQTT topics over a real
mosquitto. The messages arrive in the order the shot happened, and the shot stops at the
weight.

The DE1 and the Skale are the simulated rig's (one bench, so the scale weighs what the DE1
pours), behind the real clients and the BLE link the simulator provides in-process (no radio
here)."""

from __future__ import annotations

import json
import threading
from typing import Any, Dict, Iterator, List

import pytest
import requests

from pyburnerkit.de1.client import DE1Client
from pyburnerkit.recorder.sources import DE1Source, ScaleSource
from pyburnerkit.rigs.espresso import DE1Rig
from pyburnerkit.scale.client import SkaleClient
from pyburnerkit.service import Service
from pyburnerkit.service.config import MqttSettings

from ..recorder.services import Mosquitto

SPEED = 6.0
TARGET_G = 30.0


class Topics:
    """A paho subscriber to ``pyDE1/#``: every JSON payload in arrival order."""

    def __init__(self, port: int) -> None:
        import paho.mqtt.client as mqtt
        self.got: List[Dict[str, Any]] = []
        self.cond = threading.Condition()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
        subscribed = threading.Event()
        self.client.on_connect = lambda c, *a: c.subscribe("pyDE1/#", qos=0)
        self.client.on_subscribe = lambda *a: subscribed.set()
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", port, 30)
        self.client.loop_start()
        if not subscribed.wait(10):
            self.close()
            raise AssertionError("the test subscriber could not subscribe")

    def _on_message(self, client: Any, userdata: Any, msg: Any) -> None:
        try:
            payload = json.loads(msg.payload)
        except ValueError:
            return  # the retained Here/Gone status texts
        with self.cond:
            self.got.append(payload)
            self.cond.notify_all()

    def wait_for(self, predicate: Any, timeout: float = 60.0) -> List[Dict[str, Any]]:
        with self.cond:
            if not self.cond.wait_for(lambda: predicate(self.got), timeout):
                raise AssertionError(f"pyDE1 topics: condition not met within {timeout} s; "
                                     f"{len(self.got)} messages")
            return list(self.got)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()
        reset = getattr(self.client, "_reset_sockets", None)
        if reset is not None:
            reset()


@pytest.fixture
def broker() -> Iterator[Mosquitto]:
    b = Mosquitto()
    try:
        yield b
    finally:
        b.destroy()


def test_a_shot_through_pyde1s_http_api_is_seen_in_order_on_its_topics(broker: Mosquitto
                                                                       ) -> None:
    rig = DE1Rig(speed=SPEED).start(listen=False)
    assert rig.skale is not None
    de1 = DE1Client(rig.de1.address, transport=rig.transport(), allow_writes=True,
                    allow_remote_start=True)
    scale = SkaleClient(rig.skale.address, transport=rig.transport(), time_scale=SPEED,
                        allow_writes=True)
    topics = Topics(broker.port)
    service = Service([DE1Source(de1, device="de1", owns_client=True),
                       ScaleSource(scale, device="skale", owns_client=True)],
                      port=0, request_timeout=10.0,
                      mqtt=MqttSettings("127.0.0.1", broker.port))
    try:
        service.start()
        de1.wait_for(lambda c: c.connected, timeout=30)
        scale.wait_for(lambda c: c.connected, timeout=30)
        base = service.url
        r = requests.patch(f"{base}/de1/control/espresso", json={"stop_at_weight": TARGET_G},
                           timeout=30)
        assert (r.status_code, r.json()) == (200, [])
        assert requests.put(f"{base}/de1/mode", json={"mode": "Wake"}, timeout=30).json() == []
        de1.wait_for(lambda c: c.state is not None and c.state.name == "IDLE", timeout=30)
        r = requests.put(f"{base}/de1/mode", json={"mode": "Espresso"}, timeout=30)
        assert (r.status_code, r.json()) == (200, [])
        got = topics.wait_for(lambda g: any(
            d["class"] == "SequencerGateNotification" and d["name"] == "sequence_complete"
            and d["action"] == "set" for d in g))
    finally:
        assert service.close(timeout=15.0)
        topics.close()
        rig.close()

    def first(pred: Any) -> int:
        return next(i for i, d in enumerate(got) if pred(d))

    espresso = first(lambda d: d["class"] == "StateUpdate" and d["state"] == "Espresso")
    start = first(lambda d: d["class"] == "SequencerGateNotification"
                  and d["name"] == "sequence_start" and d["action"] == "set")
    flow = first(lambda d: d["class"] == "SequencerGateNotification"
                 and d["name"] == "sequence_flow_begin" and d["action"] == "set")
    stop = first(lambda d: d["class"] == "StopAtNotification")
    idle = first(lambda d: d["class"] == "StateUpdate" and d["previous_state"] == "Espresso"
                 and d["state"] == "Idle")
    # the machine's state change is published before the gates it opens, the stop before
    # the machine goes back to idle
    assert espresso < start < flow < stop < idle
    assert (got[stop]["stop_at"], got[stop]["action"], got[stop]["target_value"]) == \
        ("weight", "triggered", TARGET_G)
    pouring = [d for d in got[flow:stop] if d["class"] == "ShotSampleWithVolumesUpdate"]
    assert len(pouring) > 3 and pouring[-1]["volume_total"] > 0
    weights = [d["current_weight"] for d in got if d["class"] == "WeightAndFlowUpdate"]
    assert weights and abs(max(weights) - TARGET_G) < 3.0
    assert all(isinstance(d["create_time"], float) and d["version"] for d in got)
