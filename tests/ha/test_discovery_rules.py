"""Every family's simulator, recorded into real MQTT sinks over a real mosquitto: every
discovery payload is checked against Home Assistant's rules (``rules.py``, HA 2025.12.5),
every state the simulators produce against the entity it is shown on, and each physical device
shows at most 15 entities by default.

Two sinks record each demo: one with the recorder's own command router (the demo clients do
not allow writes, so every setting is announced read-only, as a new user sees it) and one whose
router is a test double that calls every control controllable (so every ``number``,
``select``, ``switch``, ``button`` and ``climate`` form is checked too).

``pytest tests/ha/test_discovery_rules.py -s`` prints the figures of docs/home-assistant.rst.
"""

from __future__ import annotations

import json
import threading
import time
from typing import Any, Callable, Dict, List, Mapping, Tuple

import pytest

from pyburnerkit import families
from pyburnerkit.recorder import MqttSink, Recorder

from . import validate

#: samples each demo must have delivered before its discovery is read: a few rounds of every
#: device (a Mate3 poll is ~300 readings, an Arbin poll ~100)
MIN_SAMPLES = {"afterburner": 80, "arbin": 320, "mate3": 700, "victron": 20, "de1": 30,
               "scale": 10}

DEMOS = [f.name for f in families.families() if f.recorder_demo]
MAX_ENABLED = 15


class EveryControl:
    """Test double of the command router (``pyburnerkit.recorder.commands.Commands``): it
    calls every field controllable, and refuses whatever it is sent. Only its answers to
    ``controllable`` matter here: they make the sink announce every control's own form."""

    def controllable(self, family: str, device: str, channel: str, field: str) -> bool:
        return True

    def submit(self, family: str, device: str, channel: str, field: str, payload: str,
               reply: Callable[[bool, str, Any], None]) -> None:
        reply(False, "test double: refused", None)


class WritableSink(MqttSink):
    """An MQTT sink that takes the test double instead of the recorder's router."""

    def attach_commands(self, router: Any) -> None:
        super().attach_commands(EveryControl())


class Everything:
    """A plain MQTT subscriber to ``#``: the last payload of every topic."""

    def __init__(self, port: int) -> None:
        import paho.mqtt.client as mqtt
        self.last: Dict[str, bytes] = {}
        self.cond = threading.Condition()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
        subscribed = threading.Event()
        self.client.on_connect = lambda c, *a: c.subscribe("#", qos=1)
        self.client.on_subscribe = lambda *a: subscribed.set()
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", port, 30)
        self.client.loop_start()
        if not subscribed.wait(10):
            self.close()
            raise AssertionError("the test subscriber could not subscribe")

    def _on_message(self, client: Any, userdata: Any, msg: Any) -> None:
        with self.cond:
            self.last[msg.topic] = msg.payload
            self.cond.notify_all()

    def wait_for(self, predicate: Callable[[Dict[str, bytes]], bool],
                 timeout: float = 30.0) -> Dict[str, bytes]:
        deadline = time.monotonic() + timeout
        with self.cond:
            while not predicate(self.last):
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"MQTT condition not met within {timeout} s")
                self.cond.wait(left)
            return dict(self.last)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()
        # paho keeps its wake-up socket pair until garbage collection
        reset = getattr(self.client, "_reset_sockets", None)
        if reset is not None:
            reset()


def _configs(seen: Mapping[str, bytes], prefix: str) -> Dict[str, Dict[str, Any]]:
    return {t: json.loads(p) for t, p in seen.items()
            if t.startswith(prefix + "/") and t.endswith("/config") and p}


def _record(family: str, tmp_path: Any, port: int
            ) -> Tuple[Dict[str, bytes], MqttSink, MqttSink, List[str]]:
    sources, cleanup = families.get(family).load("recorder_demo")()
    names = [f"{s.family}/{s.device}" for s in sources]
    read_only = MqttSink("127.0.0.1", port, name="ro")
    writable = WritableSink("127.0.0.1", port, name="rw", topic_root="pbk_rw",
                            discovery_prefix="ha_rw")
    sub = Everything(port)
    try:
        rec = Recorder(sources, [read_only, writable], spool_dir=str(tmp_path / "spool"),
                       progress_interval=None)
        with rec:
            rec.wait_for(lambda r: all(r.device_counts.get(n, 0) >= MIN_SAMPLES[n.split(
                "/")[0]] for n in names), timeout=90)
            # a written sample was announced first: once both sinks wrote what came in, every
            # field seen so far has its config
            target = rec.received
            rec.wait_for(lambda r: r.sink("ro").written >= target
                         and r.sink("rw").written >= target, timeout=30)
            want = set(read_only.configs) | set(writable.configs)
            seen = sub.wait_for(lambda last: want <= {t for t, p in last.items() if p})
    finally:
        sub.close()
        cleanup()
    return seen, read_only, writable, names


@pytest.mark.parametrize("family", DEMOS)
def test_every_discovery_payload_follows_home_assistant_rules(family: str, tmp_path: Any,
                                                              broker: Any) -> None:
    seen, read_only, writable, names = _record(family, tmp_path, broker.port)
    problems: List[str] = []
    figures = []
    for prefix, root, sink in (("homeassistant", "pyburnerkit", read_only),
                               ("ha_rw", "pbk_rw", writable)):
        configs = _configs(seen, prefix)
        assert configs == sink.configs  # what HA finds retained is what the sink announced
        assert configs, f"{family}: nothing announced under {prefix}"
        ids = [c["unique_id"] for c in configs.values()]
        assert len(ids) == len(set(ids)), f"{family}: duplicate unique ids"
        for topic, payload in sorted(configs.items()):
            problems += validate.payload_problems(prefix, topic, payload)
            platform = topic.split("/")[1]
            if platform == "climate":
                problems += validate.climate_state_problems(payload, seen)
            elif "state_topic" in payload and payload["state_topic"] in seen \
                    and not payload["state_topic"].endswith("/availability"):
                problems += validate.state_problems(platform, payload,
                                                    seen[payload["state_topic"]])
        for device, entities in sorted(validate.by_device(configs).items()):
            enabled = sorted(e["name"] for e in entities if e.get("enabled_by_default", True))
            figures.append((prefix, device, len(enabled), len(entities)))
            if len(enabled) > MAX_ENABLED:
                problems.append(f"{device} ({prefix}): {len(enabled)} entities enabled by "
                                f"default, at most {MAX_ENABLED}: {enabled}")
    print(f"\n{family} ({', '.join(names)}):")
    for prefix, device, enabled, total in figures:
        mode = "read-only" if prefix == "homeassistant" else "writable"
        print(f"  {mode:9} {device}: {enabled} enabled of {total}")
    assert not problems, f"{len(problems)} problems:\n" + "\n".join(problems)
