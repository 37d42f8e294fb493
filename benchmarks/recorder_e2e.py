"""End-to-end recorder benchmark: simulators -> clients -> recorder -> sink.

Run from the repository root (PostgreSQL and MQTT rows need ``apt-get install postgresql
mosquitto``, the services the tests use; a missing one is reported and its row skipped)::

    .venv/bin/python benchmarks/recorder_e2e.py [--seconds 20] [--afterburner 20] \\
        [--arbin 10] [--arbin-channels 16] [--interval 0.2] [--sinks sqlite,postgres,mqtt]

``benchmarks/recorder.py`` measures the recorder alone (a synthetic source pushing samples as
fast as it can). This one runs the whole chain the way a deployment does: the simulators in a
separate process over real loopback sockets (Afterburner heaters running, pushing their
changes; Arbin cyclers polled every ``--interval``), their clients on one shared
:class:`~pyburnerkit.Reactor`, one :class:`~pyburnerkit.recorder.Recorder`, one sink at a time.
Per sink it prints samples received/s and written/s, CPU % of one core for this process (the
simulators excluded), CPU microseconds per sample, samples lost (must be 0), and - on the
same line - the synthetic benchmark's SQLite capacity measured in the same run, for scale.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from typing import Any, Dict, List, Optional

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
sys.path.insert(0, HERE)

from fleet import SimHost, cpu_seconds, make_clients  # noqa: E402

from pyburnerkit import Reactor, connect_all  # noqa: E402


def run_chain(ports: Dict[str, List[int]], sink: Any, seconds: float, interval: float,
              tmp: str) -> Dict[str, Any]:
    from pyburnerkit.recorder import Recorder
    from pyburnerkit.recorder.adapters.afterburner import AfterburnerSource
    from pyburnerkit.recorder.adapters.arbin import ArbinSource
    with Reactor() as reactor:
        clients = make_clients(ports, reactor)
        try:
            connect_all(clients, timeout=60.0)
            sources: List[Any] = [AfterburnerSource(c) if c.family == "afterburner"
                                  else ArbinSource(c, interval=interval) for c in clients]
            recorder = Recorder(sources, [sink], spool_dir=os.path.join(tmp, f"spool-{sink.name}"),
                                progress_interval=None)
            recorder.start()
            recorder.wait_for(lambda r: r.sink(sink.name).healthy, timeout=30)
            time.sleep(min(2.0, seconds / 4))
            received0, written0 = recorder.received, recorder.sink(sink.name).written
            cpu0, t0 = cpu_seconds(), time.monotonic()
            time.sleep(seconds)
            cpu1, t1 = cpu_seconds(), time.monotonic()
            received1, written1 = recorder.received, recorder.sink(sink.name).written
            recorder.close(timeout=60.0)
            status = recorder.status()
            final = recorder.sink(sink.name)
        finally:
            for client in clients:
                client.close()
    wall = t1 - t0
    got = received1 - received0
    return {"received_s": got / wall, "written_s": (written1 - written0) / wall,
            "cpu_pct": 100.0 * (cpu1 - cpu0) / wall,
            "us_per_sample": 1e6 * (cpu1 - cpu0) / max(1, got), "lost": status.lost,
            "flushed": final.written == recorder.received}


def synthetic_sqlite(tmp: str, total: int) -> float:
    from recorder import run_ours  # benchmarks/recorder.py: the synthetic benchmark
    from pyburnerkit.recorder import SQLiteSink
    return float(run_ours(SQLiteSink(os.path.join(tmp, "synthetic.db")), total, tmp))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--afterburner", type=int, default=20)
    parser.add_argument("--arbin", type=int, default=10)
    parser.add_argument("--arbin-channels", type=int, default=16)
    parser.add_argument("--interval", type=float, default=0.2, help="Arbin poll interval (s)")
    parser.add_argument("--sinks", default="sqlite,postgres,mqtt")
    parser.add_argument("--synthetic-samples", type=int, default=100_000)
    args = parser.parse_args()
    from pyburnerkit.recorder import MqttSink, PostgresSink, SQLiteSink

    wanted = [s.strip() for s in args.sinks.split(",") if s.strip()]
    tmp = tempfile.mkdtemp(prefix="pbk-e2e-")
    cluster: Optional[Any] = None
    broker: Optional[Any] = None
    rows: List[List[str]] = []
    host = SimHost(args, afterburner=args.afterburner, arbin=args.arbin, mate3=0,
                   running=True)
    try:
        synthetic = synthetic_sqlite(tmp, args.synthetic_samples)
        for name in wanted:
            sink: Any
            if name == "sqlite":
                sink = SQLiteSink(os.path.join(tmp, "e2e.db"))
            elif name == "postgres":
                try:
                    from tests.recorder.services import PostgresCluster
                    cluster = PostgresCluster()
                except Exception as exc:  # the tool is not installed: say so, go on
                    rows.append([name, f"not run: {exc}"])
                    continue
                sink = PostgresSink(cluster.create_db("e2e"))
            elif name == "mqtt":
                try:
                    from tests.recorder.services import Mosquitto
                    broker = Mosquitto()
                except Exception as exc:
                    rows.append([name, f"not run: {exc}"])
                    continue
                sink = MqttSink("127.0.0.1", broker.port, discovery=False)
            else:
                raise SystemExit(f"unknown sink {name!r} (sqlite, postgres, mqtt)")
            r = run_chain(host.ports, sink, args.seconds, args.interval, tmp)
            rows.append([name, f"{r['received_s']:,.0f}", f"{r['written_s']:,.0f}",
                         f"{r['cpu_pct']:.1f}", f"{r['us_per_sample']:.0f}", str(r["lost"]),
                         "yes" if r["flushed"] else "NO", f"{synthetic:,.0f}"])
    finally:
        host.close()
        if broker is not None:
            broker.destroy()
        if cluster is not None:
            cluster.destroy()
        shutil.rmtree(tmp, ignore_errors=True)

    print(f"\nEnd-to-end recorder: {args.afterburner} Afterburner (running) + {args.arbin} "
          f"Arbin ({args.arbin_channels} ch, every {args.interval:g} s) on one shared reactor, "
          f"{args.seconds:g} s per sink; Python {sys.version.split()[0]}, {os.cpu_count()} CPUs\n")
    head = ["sink", "received/s", "written/s", "CPU %", "us/sample", "lost", "all flushed",
            "synthetic SQLite capacity/s"]
    table = [r for r in rows if len(r) == len(head)]
    widths = [max(len(r[i]) for r in table + [head]) for i in range(len(head))]
    print("  ".join(h.ljust(w) for h, w in zip(head, widths)))
    print("  ".join("-" * w for w in widths))
    for r in table:
        print("  ".join(c.ljust(w) if i == 0 else c.rjust(w)
                        for i, (c, w) in enumerate(zip(r, widths))))
    for r in rows:
        if len(r) != len(head):
            print(f"{r[0]}: {r[1]}")


if __name__ == "__main__":
    main()
