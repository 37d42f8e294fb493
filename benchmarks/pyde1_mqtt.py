"""pyDE1 MQTT benchmark: DE1 event -> MQTT subscriber latency over a real mosquitto.

Run from the repository root (starts its own throwaway mosquitto, like the tests; needs
``apt-get install mosquitto``)::

    .venv/bin/python benchmarks/pyde1_mqtt.py [--events 400] [--speed 10]

A simulated DE1 (``DE1Client("sim://?speed=N")``, awake, so it streams ShotSamples and water
levels N times faster than a real machine) feeds a :class:`Pyde1MqttPublisher`; a plain paho
subscriber on the same machine stamps every message with ``time.time()`` on arrival. The
latency of a message is that stamp minus the payload's ``arrival_time`` (``time.time()`` when
the DE1 client produced the event on its I/O thread), so it covers events thread -> publisher
queue -> worker (JSON) -> paho -> mosquitto -> subscriber. The ``create_time`` / ``event_time``
keys split it: arrival -> create is the client's events thread, create -> event the
publisher's queue and worker.

Baseline in the same run: a raw paho client publishes payloads of the same size at the same
pace to the same broker, stamped with ``time.time()`` just before ``publish()``, read by the
same kind of subscriber: the floor any paho program reaches here.

Both runs twice: with mosquitto's default (``set_tcp_nodelay false``: Nagle on the broker's
sockets, so a message that follows another closely can wait for the subscriber's delayed ACK)
and with ``set_tcp_nodelay true``.

pyDE1's headline: median under 10 ms on a Raspberry Pi 3B; this project's target is under
5 ms.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import threading
import time
from typing import Any, Dict, List, Tuple

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from pyburnerkit.de1.client import DE1Client  # noqa: E402
from pyburnerkit.service.pyde1_mqtt import Pyde1MqttPublisher  # noqa: E402


class Collector:
    """A paho subscriber that stamps each message on arrival (paho's network thread)."""

    def __init__(self, port: int, topic: str) -> None:
        import paho.mqtt.client as mqtt
        from paho.mqtt.enums import CallbackAPIVersion
        self.got: List[Tuple[str, bytes, float]] = []
        self.cond = threading.Condition()
        self.ready = threading.Event()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2)
        self.client.on_connect = lambda c, u, f, rc, p: c.subscribe(topic, qos=0)
        self.client.on_subscribe = lambda *a: self.ready.set()
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", port, 30)
        self.client.loop_start()
        if not self.ready.wait(10):
            raise RuntimeError("the subscriber could not subscribe")

    def _on_message(self, client: Any, userdata: Any, msg: Any) -> None:
        now = time.time()
        with self.cond:
            self.got.append((msg.topic, msg.payload, now))
            self.cond.notify_all()

    def wait_count(self, pred: Any, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        with self.cond:
            while not pred(self.got):
                left = deadline - time.monotonic()
                if left <= 0:
                    raise RuntimeError(f"only {len(self.got)} messages in {timeout} s")
                self.cond.wait(left)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def pct(values: List[float], p: float) -> float:
    ordered = sorted(values)
    k = min(len(ordered) - 1, max(0, int(round(p / 100.0 * (len(ordered) - 1)))))
    return ordered[k]


def row(name: str, ms: List[float]) -> str:
    if not ms:
        return f"{name:<44} {'-':>5}"
    return (f"{name:<44} {len(ms):>5} {statistics.median(ms):>8.2f} {pct(ms, 90):>8.2f} "
            f"{pct(ms, 99):>8.2f} {max(ms):>8.2f}")


def run_pyde1(port: int, events: int, speed: float) -> Dict[str, List[float]]:
    sub = Collector(port, "pyDE1/#")
    de1 = DE1Client(f"sim://?speed={speed:g}", allow_writes=True)
    publisher = Pyde1MqttPublisher(de1, None, host="127.0.0.1", port=port)
    try:
        de1.connect()
        de1.wake()
        publisher.start()

        def enough(got: List[Tuple[str, bytes, float]]) -> bool:
            return sum(1 for t, _, _ in got if t == "pyDE1/ShotSampleWithVolumesUpdate") \
                >= events
        sub.wait_count(enough, timeout=events / speed * 2 + 60)
    finally:
        publisher.close()
        de1.close()
        sub.close()
    out: Dict[str, List[float]] = {}
    for topic, payload, received in sub.got:
        if topic.startswith("pyDE1/status/"):
            continue
        d = json.loads(payload)
        cls = d["class"]
        out.setdefault(cls, []).append((received - d["arrival_time"]) * 1000)
        out.setdefault("all", []).append((received - d["arrival_time"]) * 1000)
        out.setdefault("split: arrival -> create (events thread)", []).append(
            (d["create_time"] - d["arrival_time"]) * 1000)
        out.setdefault("split: create -> event_time (queue, worker)", []).append(
            (d["event_time"] - d["create_time"]) * 1000)
        out.setdefault("split: event_time -> subscriber (paho, broker)", []).append(
            (received - d["event_time"]) * 1000)
    return out


def run_baseline(port: int, count: int, size: int, pace_s: float) -> List[float]:
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion
    sub = Collector(port, "bench/raw")
    pub = mqtt.Client(CallbackAPIVersion.VERSION2)
    pub.connect("127.0.0.1", port, 30)
    pub.loop_start()
    pad = "x" * max(0, size - 40)
    try:
        for _ in range(count):
            body = json.dumps({"t": time.time(), "pad": pad})
            pub.publish("bench/raw", body, qos=0)
            time.sleep(pace_s)  # the DE1's pace, so both runs see the same load
        sub.wait_count(lambda got: len(got) >= count, timeout=60)
    finally:
        pub.disconnect()
        pub.loop_stop()
        sub.close()
    return [(received - json.loads(payload)["t"]) * 1000 for _, payload, received in sub.got]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=400,
                        help="ShotSampleWithVolumesUpdate messages to wait for")
    parser.add_argument("--speed", type=float, default=10.0,
                        help="simulated DE1 speed (x real time)")
    args = parser.parse_args()
    from tests.recorder.services import Mosquitto
    for nodelay in (False, True):
        broker = Mosquitto(start=False)
        if nodelay:
            broker.add_conf("set_tcp_nodelay true")
        broker.start()
        try:
            pyde1 = run_pyde1(broker.port, args.events, args.speed)
            samples = pyde1.get("ShotSampleWithVolumesUpdate", [])
            pace = 1.0 / (4.0 * args.speed)  # ShotSamples at 50 Hz: 4 per DE1 second
            raw = run_baseline(broker.port, len(samples), 420, pace)
        finally:
            broker.destroy()
        print(f"DE1 event -> MQTT subscriber latency, ms (mosquitto on 127.0.0.1, "
              f"set_tcp_nodelay {'true' if nodelay else 'false (its default)'}, simulated DE1 "
              f"at {args.speed:g}x, {os.cpu_count()} CPUs)")
        print(f"{'path':<44} {'n':>5} {'p50':>8} {'p90':>8} {'p99':>8} {'max':>8}")
        print(row("raw paho publish -> subscribe (baseline)", raw))
        for name in ("ShotSampleWithVolumesUpdate", "WaterLevelUpdate", "StateUpdate", "all"):
            print(row(f"pyDE1 {name}" if name != "all" else "pyDE1 all classes",
                      pyde1.get(name, [])))
        for name in sorted(k for k in pyde1 if k.startswith("split:")):
            print(row(name, pyde1[name]))
        print()
    print("pyDE1 headline: median < 10 ms on a Raspberry Pi 3B; target here: median < 5 ms")


if __name__ == "__main__":
    main()
