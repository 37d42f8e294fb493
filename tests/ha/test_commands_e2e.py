"""Home Assistant's controls end to end: a real mosquitto, the recorder's own command router
(``pyburnerkit.recorder.commands``), the MQTT sink and the Afterburner simulator over its real
WebSocket. Commands are published as Home Assistant publishes them, on the topics the
discovery config names."""

from __future__ import annotations

import json
from typing import Any, Iterator, List, Tuple

import paho.mqtt.publish as publish
import pytest

from pyburnerkit.afterburner import AfterburnerClient
from pyburnerkit.afterburner.sim import AfterburnerSim
from pyburnerkit.recorder import AfterburnerSource, MqttSink, Recorder

from tests.recorder.test_mqtt import Subscriber

BASE = "pyburnerkit/afterburner/cabin"
CLIMATE = "homeassistant/climate/pyburnerkit_afterburner_cabin/TempDesired/config"


@pytest.fixture
def heater() -> Iterator[AfterburnerSim]:
    sim = AfterburnerSim(tick=0.05, speed=30.0, seed=5).start("127.0.0.1", 0)
    try:
        yield sim
    finally:
        sim.close()


def _recorder(sim: AfterburnerSim, port: int, tmp_path: Any, *, allow_writes: bool
              ) -> Tuple[Recorder, MqttSink]:
    client = AfterburnerClient(f"ws://127.0.0.1:{sim.port}/", retry_first=True,
                               allow_writes=allow_writes)
    source = AfterburnerSource(client, device="cabin", owns_client=True)
    sink = MqttSink("127.0.0.1", port)
    rec = Recorder([source], [sink], spool_dir=str(tmp_path / "spool"),
                   progress_interval=None)
    return rec, sink


def _send(port: int, topic: str, payload: str) -> None:
    publish.single(topic, payload, hostname="127.0.0.1", port=port)


def _confirmed(messages: List[Any], topic: str) -> List[Any]:
    """The states the sink published as a command's confirmation (not a recorded sample)."""
    out = []
    for t, p, _ in messages:
        if t == topic:
            body = json.loads(p)
            if str(body["uid"]).startswith("cmd-"):
                out.append(body["value"])
    return out


def test_set_the_heater_from_its_climate_entity(heater: AfterburnerSim, broker: Any,
                                                tmp_path: Any) -> None:
    sub = Subscriber(broker.port, "#")
    rec, sink = _recorder(heater, broker.port, tmp_path, allow_writes=True)
    try:
        with rec:
            rec.wait_for(lambda r: CLIMATE in sink.configs, timeout=20)
            climate = sink.configs[CLIMATE]
            assert climate["temperature_command_topic"] == f"{BASE}/TempDesired/set"
            before = heater.snapshot()["TempDesired"]
            target = 30 if before != 30 else 25

            _send(broker.port, climate["temperature_command_topic"], str(float(target)))
            seen = sub.wait_for(lambda m: target in _confirmed(m, f"{BASE}/TempDesired")
                                and m)
            assert heater.snapshot()["TempDesired"] == target  # the device changed
            assert not [t for t, _, _ in seen if t == f"{BASE}/error"]

            # outside the firmware's limits: refused before anything is sent, and said why
            _send(broker.port, climate["temperature_command_topic"], "99")
            error = sub.wait_for(lambda m: [json.loads(p) for t, p, _ in m
                                            if t == f"{BASE}/error"])
            assert error[0]["field"] == "TempDesired" and error[0]["payload"] == "99"
            assert "99" in error[0]["error"] and "35" in error[0]["error"]
            assert heater.snapshot()["TempDesired"] == target  # unchanged

            # the mode: heat starts the heater (its run state leaves STOPPED)
            _send(broker.port, climate["mode_command_topic"], "heat")
            sub.wait_for(lambda m: [p for t, p, _ in m if t == f"{BASE}/RunState"
                                    and json.loads(p)["value"] != 0])
    finally:
        sub.close()


def test_nothing_is_controllable_without_writes(heater: AfterburnerSim, broker: Any,
                                                tmp_path: Any) -> None:
    sub = Subscriber(broker.port, "#")
    rec, sink = _recorder(heater, broker.port, tmp_path, allow_writes=False)
    set_point = "homeassistant/sensor/pyburnerkit_afterburner_cabin/TempDesired/config"
    try:
        with rec:
            rec.wait_for(lambda r: set_point in sink.configs, timeout=20)
            assert not any("command_topic" in c for c in sink.configs.values())
            assert CLIMATE not in sink.configs
            before = heater.snapshot()["TempDesired"]
            # a command sent by hand to the set point's topic is refused, with the reason
            _send(broker.port, f"{BASE}/TempDesired/set", "30")
            error = sub.wait_for(lambda m: [json.loads(p) for t, p, _ in m
                                            if t == f"{BASE}/error"])
            assert error[0]["field"] == "TempDesired"
            assert "allow_writes" in error[0]["error"]
            assert heater.snapshot()["TempDesired"] == before
    finally:
        sub.close()
