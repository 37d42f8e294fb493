"""Recorder benchmark: sustained samples/s into each sink and device-to-subscriber latency.

Run from the repository root (starts its own throwaway PostgreSQL cluster and mosquitto, like
the tests; needs ``apt-get install postgresql mosquitto``)::

    .venv/bin/python benchmarks/recorder.py [--samples 100000] [--latency-samples 2000]

Every row puts ours next to a raw baseline measured in the same run:

* SQLite: the Recorder (source -> queue -> sink thread -> ``INSERT OR IGNORE``) vs. a bare
  ``executemany`` of the same rows into the same schema;
* PostgreSQL: the Recorder (COPY into a temp table + ``INSERT ... ON CONFLICT DO NOTHING``)
  vs. a bare ``COPY`` straight into the table;
* MQTT: the Recorder (QoS 1, every batch acknowledged) vs. bare paho QoS 1 publishes;
* latency: a push source hands one sample at a time to the recorder; a plain subscriber
  measures ``received - handed over`` (the "device" is the source callback, the same thread a
  client's events thread would be), vs. bare paho publish -> subscriber.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sqlite3
import sys
import tempfile
import threading
import time
from typing import Any, List, Tuple

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from pyburnerkit.recorder import MqttSink, PostgresSink, Recorder, Source, SQLiteSink  # noqa
from pyburnerkit.recorder.samples import SampleFactory  # noqa
from pyburnerkit.recorder.sinks.sqlite import SCHEMA  # noqa

FIELDS = 20  # one device update carries this many fields (a heater status frame has ~60)


class BenchSource(Source):
    kind = "push"

    def __init__(self) -> None:
        super().__init__("bench", "dev1")

    def push(self, readings: List[Tuple[str, str, Any, str]]) -> None:
        self.emit(readings)


def frames(total: int) -> List[List[Tuple[str, str, Any, str]]]:
    out = []
    n = 0
    while n < total:
        k = min(FIELDS, total - n)
        out.append([("", f"field{i}_v", float(n + i), "V") for i in range(k)])
        n += k
    return out


def run_ours(sink: Any, total: int, tmp: str) -> float:
    src = BenchSource()
    rec = Recorder([src], [sink], spool_dir=os.path.join(tmp, f"spool-{sink.name}"),
                   progress_interval=None, batch_size=5000)
    data = frames(total)
    with rec:
        rec.wait_for(lambda r: r.sink(sink.name).healthy, timeout=30)
        start = time.perf_counter()
        for frame in data:
            src.push(frame)
        rec.wait_for(lambda r: r.sink(sink.name).written >= total, timeout=600)
        elapsed = time.perf_counter() - start
    return total / elapsed


def rows(total: int) -> List[Tuple[Any, ...]]:
    f = SampleFactory()
    now = time.time()
    return [(s.uid, s.timestamp, s.family, s.device, s.channel, s.field, s.value, s.unit, s.text)
            for s in (f.make(now, "bench", "raw", "", f"field{i % FIELDS}_v", float(i), "V")
                      for i in range(total))]


def sqlite_baseline(total: int, tmp: str) -> float:
    path = os.path.join(tmp, "raw.db")
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")
    db.executescript(SCHEMA)
    data = rows(total)
    start = time.perf_counter()
    for i in range(0, total, 5000):
        db.execute("BEGIN")
        db.executemany("INSERT INTO samples (uid, ts, family, device, channel, field, value, "
                       "unit, text) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", data[i:i + 5000])
        db.execute("COMMIT")
    elapsed = time.perf_counter() - start
    db.close()
    return total / elapsed


def pg_baseline(dsn: str, total: int) -> float:
    import datetime as dt
    import psycopg
    data = rows(total)
    utc = dt.timezone.utc
    with psycopg.connect(dsn) as conn:
        conn.execute("CREATE TABLE raw_samples (uid text, ts timestamptz, family text, device "
                     "text, channel text, field text, value double precision, text text, "
                     "unit text, PRIMARY KEY (uid, ts))")
        conn.commit()
        start = time.perf_counter()
        for i in range(0, total, 5000):
            with conn.transaction():
                with conn.cursor().copy("COPY raw_samples (uid, ts, family, device, channel, "
                                        "field, value, text, unit) FROM STDIN") as copy:
                    for r in data[i:i + 5000]:
                        copy.write_row((r[0], dt.datetime.fromtimestamp(r[1], utc), r[2], r[3],
                                        r[4], r[5], r[6], r[8], r[7]))
        elapsed = time.perf_counter() - start
    return total / elapsed


def mqtt_baseline(port: int, total: int) -> float:
    import paho.mqtt.client as mqtt
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
    client.max_inflight_messages_set(1000)
    client.max_queued_messages_set(0)
    connected = threading.Event()
    client.on_connect = lambda *a: connected.set()
    client.connect("127.0.0.1", port)
    client.loop_start()
    connected.wait(10)
    payloads = [json.dumps({"value": float(i), "unit": "V", "ts": time.time(), "text": None,
                            "uid": f"raw-{i}"}) for i in range(total)]
    start = time.perf_counter()
    infos = [client.publish(f"raw/bench/dev1/field{i % FIELDS}_v", p, qos=1)
             for i, p in enumerate(payloads)]
    for info in infos:
        info.wait_for_publish(60)
    elapsed = time.perf_counter() - start
    client.disconnect()
    client.loop_stop()
    return total / elapsed


class LatencySubscriber:
    def __init__(self, port: int, topic: str) -> None:
        import paho.mqtt.client as mqtt
        self.latencies: List[float] = []
        self.cond = threading.Condition()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
        ready = threading.Event()
        self.client.on_connect = lambda c, *a: c.subscribe(topic, qos=1)
        self.client.on_subscribe = lambda *a: ready.set()
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        ready.wait(10)

    def _on_message(self, client: Any, userdata: Any, msg: Any) -> None:
        now = time.time()
        sent = json.loads(msg.payload)["value"]
        with self.cond:
            self.latencies.append(now - sent)
            self.cond.notify_all()

    def wait(self, n: int, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        with self.cond:
            while len(self.latencies) < n and time.monotonic() < deadline:
                self.cond.wait(deadline - time.monotonic())

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def pct(values: List[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))] * 1000


def latency_ours(port: int, n: int, tmp: str) -> Tuple[float, float]:
    sub = LatencySubscriber(port, "pyburnerkit/bench/#")
    src = BenchSource()
    rec = Recorder([src], [MqttSink("127.0.0.1", port, name="mqtt-lat", discovery=False)],
                   spool_dir=os.path.join(tmp, "spool-lat"), progress_interval=None)
    try:
        with rec:
            rec.wait_for(lambda r: r.sink("mqtt-lat").healthy, timeout=30)
            for i in range(n):
                src.push([("", "t_s", time.time(), "s")])
                time.sleep(0.002)  # a device update every ~2 ms: paced, not a burst
            sub.wait(n)
    finally:
        sub.close()
    return pct(sub.latencies, 50), pct(sub.latencies, 99)


def latency_raw(port: int, n: int) -> Tuple[float, float]:
    import paho.mqtt.client as mqtt
    sub = LatencySubscriber(port, "raw-lat/#")
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
    connected = threading.Event()
    client.on_connect = lambda *a: connected.set()
    client.connect("127.0.0.1", port)
    client.loop_start()
    connected.wait(10)
    try:
        for i in range(n):
            client.publish("raw-lat/t", json.dumps({"value": time.time()}), qos=1)
            time.sleep(0.002)
        sub.wait(n)
    finally:
        client.disconnect()
        client.loop_stop()
        sub.close()
    return pct(sub.latencies, 50), pct(sub.latencies, 99)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--samples", type=int, default=100_000)
    parser.add_argument("--latency-samples", type=int, default=2000)
    args = parser.parse_args()
    from tests.recorder.services import Mosquitto, PostgresCluster

    tmp = tempfile.mkdtemp(prefix="pbk-bench-")
    cluster = PostgresCluster()
    broker = Mosquitto()
    results: List[Tuple[str, str, str, str]] = []
    try:
        n = args.samples
        ours = run_ours(SQLiteSink(os.path.join(tmp, "ours.db")), n, tmp)
        raw = sqlite_baseline(n, tmp)
        results.append(("SQLite", "samples/s", f"{ours:,.0f}", f"{raw:,.0f}"))

        dsn = cluster.create_db("bench")
        ours = run_ours(PostgresSink(dsn), n, tmp)
        raw = pg_baseline(dsn, n)
        results.append(("PostgreSQL", "samples/s", f"{ours:,.0f}", f"{raw:,.0f}"))

        m = min(n, 50_000)
        ours = run_ours(MqttSink("127.0.0.1", broker.port, discovery=False), m, tmp)
        raw = mqtt_baseline(broker.port, m)
        results.append(("MQTT (QoS 1, acked)", "samples/s", f"{ours:,.0f}", f"{raw:,.0f}"))

        lat = latency_ours(broker.port, args.latency_samples, tmp)
        raw_lat = latency_raw(broker.port, args.latency_samples)
        results.append(("MQTT latency p50", "ms", f"{lat[0]:.2f}", f"{raw_lat[0]:.2f}"))
        results.append(("MQTT latency p99", "ms", f"{lat[1]:.2f}", f"{raw_lat[1]:.2f}"))
    finally:
        broker.destroy()
        cluster.destroy()
        shutil.rmtree(tmp, ignore_errors=True)

    print(f"\nRecorder benchmark ({args.samples:,} samples, {FIELDS} fields per device update; "
          f"Python {sys.version.split()[0]}, {os.cpu_count()} CPUs)\n")
    head = ("sink", "unit", "pyburnerkit recorder", "raw baseline")
    widths = [max(len(r[i]) for r in results + [head]) for i in range(4)]
    line = "  ".join(h.ljust(w) for h, w in zip(head, widths))
    print(line)
    print("  ".join("-" * w for w in widths))
    for r in results:
        print("  ".join(c.ljust(w) if i < 2 else c.rjust(w) for i, (c, w) in
                        enumerate(zip(r, widths))))


if __name__ == "__main__":
    main()
