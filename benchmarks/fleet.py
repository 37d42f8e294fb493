"""Fleet benchmark: one process records a fleet of devices into SQLite.

Run from the repository root::

    .venv/bin/python benchmarks/fleet.py                 # 60 s per mode, both modes
    .venv/bin/python benchmarks/fleet.py --seconds 10    # a quick run
    .venv/bin/python benchmarks/fleet.py --afterburner 100 --arbin 50 --arbin-channels 16 \\
        --mate3 5 --seconds 60 --mode both --idle-seconds 10

The simulators (100 Afterburner heaters running, 50 Arbin cyclers of 16 channels, 5 live
Mate3 systems by default) run in a *separate* process, over real loopback sockets, so the
figures below are the recording process alone. That process connects every client
(``connect_all``), hands them to one :class:`~pyburnerkit.recorder.Recorder` with one
SQLite sink, and records for ``--seconds``. It prints, per mode, side by side:

* ``threads``: one thread pair per client (today's default) vs. one shared
  :class:`~pyburnerkit.Reactor`, each mode recorded by a fresh process of its own (so neither
  mode's RSS counts memory the other one left behind);
* rows/s written, CPU % of one core (user+system of this process / wall time; on a 2-core
  machine 100 % is half the machine), threads, RSS (MiB), samples lost (must be 0),
  connect time of the whole fleet.

Then the reactor figures the issue targets: 100 Afterburner clients on a shared reactor,
threads added, time to connect all, and idle CPU over ``--idle-seconds`` (heaters stopped at
ambient temperature, the firmware's 1 s cadence on: the clients' own keep-alive work only), and
the same with one thread pair per client.

The machine may be shared: run it a few times and read the medians.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from typing import Any, Dict, List, Optional

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from pyburnerkit import Reactor, connect_all  # noqa: E402


# ------------------------------------------------------------------------------ simulator host
def serve(args: argparse.Namespace) -> None:
    """Child process: start the simulators, print their ports as one JSON line, and run until
    stdin closes."""
    from pyburnerkit.afterburner import AfterburnerSim
    from pyburnerkit.arbin.sim import ArbinSim
    from pyburnerkit.mate3.sim import Mate3Sim
    sims: List[Any] = []
    ports: Dict[str, List[int]] = {"afterburner": [], "arbin": [], "mate3": []}
    for i in range(args.afterburner):
        if args.running:
            sim = AfterburnerSim(tick=1.0, speed=30.0, seed=i).start()
        else:  # idle: a stopped heater at ambient temperature, nothing to report
            sim = AfterburnerSim(tick=1.0, speed=1.0, ambient_c=15.0, start_temp_c=15.0,
                                 seed=i).start()
        if args.running:
            def start_heater(s: Any = sim) -> None:
                s.model.start()
                s._after_change()
            sim.run_sync(start_heater)
        sims.append(sim)
        ports["afterburner"].append(sim.port)
    for i in range(args.arbin):
        sim = ArbinSim(args.arbin_channels, time_scale=60.0, seed=i).start()
        sims.append(sim)
        ports["arbin"].append(sim.port)
    for i in range(args.mate3):
        sim = Mate3Sim(live=True, speed=60.0, seed=i).start()
        sims.append(sim)
        ports["mate3"].append(sim.port)
    print(json.dumps(ports), flush=True)
    try:
        sys.stdin.read()
    finally:
        for sim in sims:
            sim.close()


class SimHost:
    def __init__(self, args: argparse.Namespace, *, afterburner: int, arbin: int, mate3: int,
                 running: bool) -> None:
        cmd = [sys.executable, os.path.abspath(__file__), "--serve",
               "--afterburner", str(afterburner), "--arbin", str(arbin),
               "--arbin-channels", str(args.arbin_channels), "--mate3", str(mate3)]
        if running:
            cmd.append("--running")
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     text=True)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            raise SystemExit("the simulator process failed to start")
        self.ports: Dict[str, List[int]] = json.loads(line)

    def close(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()


# ------------------------------------------------------------------------------ measuring
def cpu_seconds() -> float:
    t = os.times()
    return t.user + t.system


def rss_mib() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    return float("nan")


def make_clients(ports: Dict[str, List[int]], reactor: Optional[Reactor]) -> List[Any]:
    from pyburnerkit.afterburner import AfterburnerClient
    from pyburnerkit.arbin import CyclerClient
    from pyburnerkit.arbin.sim import DEFAULT_PASSWORD, DEFAULT_USERNAME
    from pyburnerkit.mate3 import Mate3Client
    shared: Dict[str, Any] = {} if reactor is None else {"reactor": reactor}
    clients: List[Any] = []
    for port in ports["afterburner"]:
        clients.append(AfterburnerClient(f"127.0.0.1:{port}", connect_timeout=30.0, **shared))
    for port in ports["arbin"]:
        clients.append(CyclerClient(f"127.0.0.1:{port}", username=DEFAULT_USERNAME,
                                    password=DEFAULT_PASSWORD, connect_timeout=30.0,
                                    **shared))
    for port in ports["mate3"]:
        clients.append(Mate3Client(f"127.0.0.1:{port}", connect_timeout=30.0, **shared))
    return clients


def record_fleet(ports: Dict[str, List[int]], mode: str, seconds: float,
                 interval: float) -> Dict[str, Any]:
    from pyburnerkit.recorder import Recorder, SQLiteSink
    from pyburnerkit.recorder.adapters.afterburner import AfterburnerSource
    from pyburnerkit.recorder.adapters.arbin import ArbinSource
    from pyburnerkit.recorder.adapters.mate3 import Mate3Source
    threads_before = threading.active_count()
    rss_before = rss_mib()
    reactor = Reactor() if mode == "shared" else None
    clients = make_clients(ports, reactor)
    workdir = tempfile.mkdtemp(prefix="pyburnerkit-fleet-")
    try:
        t0 = time.monotonic()
        connect_all(clients, timeout=60.0)
        connect_s = time.monotonic() - t0
        threads_clients = threading.active_count() - threads_before
        sources: List[Any] = []
        for client in clients:
            if client.family == "afterburner":
                sources.append(AfterburnerSource(client))
            elif client.family == "arbin":
                sources.append(ArbinSource(client, interval=interval))
            else:
                sources.append(Mate3Source(client, interval=interval))
        recorder = Recorder(sources, [SQLiteSink(os.path.join(workdir, "fleet.db"))],
                            spool_dir=os.path.join(workdir, "spool"), progress_interval=None)
        recorder.start()
        time.sleep(min(3.0, seconds / 4))  # first polls and every client's first dump
        written0 = sum(s.written for s in recorder.sink_stats())
        received0 = recorder.received
        cpu0, wall0 = cpu_seconds(), time.monotonic()
        time.sleep(seconds)
        cpu1, wall1 = cpu_seconds(), time.monotonic()
        written1 = sum(s.written for s in recorder.sink_stats())
        received1 = recorder.received
        threads_all = threading.active_count() - threads_before
        rss = rss_mib() - rss_before
        recorder.close(timeout=30.0)
        status = recorder.status()
        wall = wall1 - wall0
        return {
            "mode": mode, "clients": len(clients), "connect_s": connect_s,
            "rows_s": (written1 - written0) / wall, "received_s": (received1 - received0) / wall,
            "cpu_pct": 100.0 * (cpu1 - cpu0) / wall, "threads_clients": threads_clients,
            "threads_total": threads_all, "rss_mib": rss, "lost": status.lost,
            "rss_per_client_kib": 1024.0 * rss / max(1, len(clients)),
        }
    finally:
        for client in clients:
            client.close()
        if reactor is not None:
            reactor.close()
        shutil.rmtree(workdir, ignore_errors=True)


def record_in_child(ports: Dict[str, List[int]], mode: str, seconds: float,
                    interval: float) -> Dict[str, Any]:
    """:func:`record_fleet` in a fresh process: its RSS and threads are this mode's alone."""
    out = subprocess.run(
        [sys.executable, os.path.abspath(__file__), "--record", mode, "--ports",
         json.dumps(ports), "--seconds", str(seconds), "--interval", str(interval)],
        stdout=subprocess.PIPE, text=True, check=True, timeout=seconds + 300)
    result: Dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def idle_reactor(ports: List[int], idle_seconds: float) -> Dict[str, Any]:
    from pyburnerkit.afterburner import AfterburnerClient
    before = threading.active_count()
    with Reactor() as reactor:
        clients = [AfterburnerClient(f"127.0.0.1:{p}", reactor=reactor, connect_timeout=30.0)
                   for p in ports]
        try:
            t0 = time.monotonic()
            connect_all(clients, timeout=60.0)
            connect_s = time.monotonic() - t0
            added = threading.active_count() - before
            time.sleep(2.0)  # past the refresh grace and the first dumps
            cpu0, wall0 = cpu_seconds(), time.monotonic()
            time.sleep(idle_seconds)
            cpu = 100.0 * (cpu_seconds() - cpu0) / (time.monotonic() - wall0)
            connected = sum(c.connected for c in clients)
        finally:
            for client in clients:
                client.close()
    return {"clients": len(ports), "connected": connected, "connect_s": connect_s,
            "threads_added": added, "idle_cpu_pct": cpu}


def idle_threads(ports: List[int], idle_seconds: float) -> Dict[str, Any]:
    """The same, one thread pair per client (today's default), for the table."""
    from pyburnerkit.afterburner import AfterburnerClient
    before = threading.active_count()
    clients = [AfterburnerClient(f"127.0.0.1:{p}", connect_timeout=30.0) for p in ports]
    try:
        t0 = time.monotonic()
        connect_all(clients, timeout=60.0)
        connect_s = time.monotonic() - t0
        added = threading.active_count() - before
        time.sleep(2.0)
        cpu0, wall0 = cpu_seconds(), time.monotonic()
        time.sleep(idle_seconds)
        cpu = 100.0 * (cpu_seconds() - cpu0) / (time.monotonic() - wall0)
        for client in clients:
            client.close()
        # the old way, one connect() after the other, on the first 10 (it is slow)
        few = [AfterburnerClient(f"127.0.0.1:{p}", connect_timeout=30.0) for p in ports[:10]]
        t2 = time.monotonic()
        for client in few:
            client.connect()
        sequential = (time.monotonic() - t2) * len(ports) / len(few)
        for client in few:
            client.close()
    finally:
        for client in clients:
            client.close()
    return {"connect_s": connect_s, "threads_added": added, "sequential_estimate_s": sequential,
            "idle_cpu_pct": cpu}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="recording time per mode")
    parser.add_argument("--afterburner", type=int, default=100)
    parser.add_argument("--arbin", type=int, default=50)
    parser.add_argument("--arbin-channels", type=int, default=16)
    parser.add_argument("--mate3", type=int, default=5)
    parser.add_argument("--interval", type=float, default=1.0,
                        help="poll interval of the Arbin and Mate3 sources (s)")
    parser.add_argument("--mode", choices=("both", "shared", "threads"), default="both")
    parser.add_argument("--idle-seconds", type=float, default=10.0,
                        help="idle CPU window of the 100-heater reactor check (0 skips it)")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--record", choices=("shared", "threads"), help=argparse.SUPPRESS)
    parser.add_argument("--ports", help=argparse.SUPPRESS)
    parser.add_argument("--running", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args)
        return
    if args.record:  # one mode, in a process of its own (see record_in_child)
        print(json.dumps(record_fleet(json.loads(args.ports), args.record, args.seconds,
                                      args.interval)), flush=True)
        return

    print(f"fleet: {args.afterburner} Afterburner + {args.arbin} Arbin ({args.arbin_channels} "
          f"ch) + {args.mate3} Mate3, {args.seconds:g} s per mode, cores: {os.cpu_count()}")
    results = []
    host = SimHost(args, afterburner=args.afterburner, arbin=args.arbin, mate3=args.mate3,
                   running=True)
    try:
        modes = ["threads", "shared"] if args.mode == "both" else [args.mode]
        for mode in modes:
            results.append(record_in_child(host.ports, mode, args.seconds, args.interval))
    finally:
        host.close()
    print()
    head = (f"{'mode':<9}{'clients':>8}{'connect s':>10}{'rows/s':>9}{'CPU %':>7}"
            f"{'threads':>8}{'(clients)':>10}{'RSS MiB':>9}{'KiB/cl':>8}{'lost':>6}")
    print(head)
    print("-" * len(head))
    for r in results:
        print(f"{r['mode']:<9}{r['clients']:>8}{r['connect_s']:>10.2f}{r['rows_s']:>9.0f}"
              f"{r['cpu_pct']:>7.1f}{r['threads_total']:>8}{r['threads_clients']:>10}"
              f"{r['rss_mib']:>9.1f}{r['rss_per_client_kib']:>8.0f}{r['lost']:>6}")
    print("CPU % is of one core (2 cores = 200 %); target: under 50 % of the machine, 0 lost.")

    if args.idle_seconds > 0 and args.afterburner:
        idle_host = SimHost(args, afterburner=args.afterburner, arbin=0, mate3=0,
                            running=False)
        try:
            shared = idle_reactor(idle_host.ports["afterburner"], args.idle_seconds)
            own = idle_threads(idle_host.ports["afterburner"], args.idle_seconds)
        finally:
            idle_host.close()
        print()
        print(f"{args.afterburner} Afterburner clients, heaters idle (targets: <= 4 threads "
              f"added, all connected in < 3 s, idle CPU < 0.5 %)")
        print(f"  shared reactor : {shared['connected']}/{shared['clients']} connected in "
              f"{shared['connect_s']:.2f} s (connect_all), threads added "
              f"{shared['threads_added']}, idle CPU {shared['idle_cpu_pct']:.2f} % over "
              f"{args.idle_seconds:g} s")
        print(f"  own threads    : connect_all {own['connect_s']:.2f} s, threads added "
              f"{own['threads_added']}, idle CPU {own['idle_cpu_pct']:.2f} %; connect() one "
              f"after the other: about {own['sequential_estimate_s']:.1f} s for all "
              f"(measured on 10)")


if __name__ == "__main__":
    main()
