"""Afterburner client against a raw websocket-client loop, side by side in one run.

    python benchmarks/afterburner.py [--rounds 300] [--idle 10] [--clients 50]

Measures: connect-to-full-state time; setter round trip (send until the value is confirmed) with
the simulator's update tick set to immediate; CPU of an idle connected client; threads and
memory for many clients on many simulators in one process. The simulators that must not share
the measured CPU run in a separate process.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import threading
import time
from typing import Callable, List

import websocket

from pyburnerkit.afterburner import AfterburnerClient, AfterburnerSim


def pct(values: List[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def raw_full_state(url: str) -> float:
    started = time.perf_counter()
    ws = websocket.create_connection(url, timeout=5)
    while "SysUpTime" not in json.loads(ws.recv()):
        pass
    elapsed = time.perf_counter() - started
    ws.close()
    return elapsed


def ours_full_state(url: str) -> float:
    started = time.perf_counter()
    client = AfterburnerClient(url).connect()
    elapsed = time.perf_counter() - started
    client.close()
    return elapsed


def raw_setter_loop(url: str, rounds: int) -> List[float]:
    """What a careful hand-written client does: send value + SQuery, read until the answer."""
    ws = websocket.create_connection(url, timeout=5)
    while "SysUpTime" not in json.loads(ws.recv()):
        pass
    times = []
    for i in range(rounds):
        value = 20 + i % 2
        started = time.perf_counter()
        ws.send(json.dumps({"TempDesired": value, "SQuery": 1}, separators=(",", ":")))
        seen = None
        while True:
            frame = json.loads(ws.recv())
            seen = frame.get("TempDesired", seen)
            if "SysUpTime" in frame:
                break
        times.append(time.perf_counter() - started)
    ws.close()
    return times


def ours_setter_loop(url: str, rounds: int) -> List[float]:
    times = []
    with AfterburnerClient(url) as heater:
        for i in range(rounds):
            started = time.perf_counter()
            heater.set_desired_temperature(20 + i % 2)
            times.append(time.perf_counter() - started)
    return times


def idle_cpu(seconds: float, url: str, make: Callable[[str], Callable[[], None]]) -> float:
    stop = make(url)
    before = time.process_time()
    threading.Event().wait(seconds)
    used = time.process_time() - before
    stop()
    return 100.0 * used / seconds


def ours_idle(url: str) -> Callable[[], None]:
    client = AfterburnerClient(url).connect()
    return client.close


def raw_idle(url: str) -> Callable[[], None]:
    ws = websocket.create_connection(url, timeout=None)
    done = threading.Event()

    def reader() -> None:
        try:
            while not done.is_set():
                ws.recv()
        except Exception:
            pass

    thread = threading.Thread(target=reader, daemon=True)
    thread.start()

    def stop() -> None:
        done.set()
        ws.close()
        thread.join(2)

    return stop


def rss_kib() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def many_clients(count: int) -> tuple:
    sims = [AfterburnerSim(tick=1.0, seed=i).start() for i in range(count)]
    try:
        threads_before, rss_before = threading.active_count(), rss_kib()
        clients = [AfterburnerClient(f"127.0.0.1:{s.port}") for s in sims]
        for client in clients:
            client.connect()
        threads = (threading.active_count() - threads_before) / count
        memory = (rss_kib() - rss_before) / count
        for client in clients:
            client.close()
        return threads, memory
    finally:
        for sim in sims:
            sim.close()


def external_sim(tick: str) -> tuple:
    proc = subprocess.Popen([sys.executable, "-m", "pyburnerkit.cli.main", "sim", "afterburner",
                             "--port", "0", "--tick", tick], stdout=subprocess.PIPE, text=True)
    return proc, proc.stdout.readline().strip()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=300)
    parser.add_argument("--idle", type=float, default=10.0)
    parser.add_argument("--clients", type=int, default=50)
    args = parser.parse_args()

    rows = []
    proc, url = external_sim("0")
    try:
        raw_connect = [raw_full_state(url) for _ in range(20)]
        our_connect = [ours_full_state(url) for _ in range(20)]
        rows.append(("connect to full state, median (ms)", statistics.median(raw_connect) * 1e3,
                     statistics.median(our_connect) * 1e3))
        raw = raw_setter_loop(url, args.rounds)
        ours = ours_setter_loop(url, args.rounds)
        rows.append(("setter round trip p50 (ms)", pct(raw, 0.5) * 1e3, pct(ours, 0.5) * 1e3))
        rows.append(("setter round trip p99 (ms)", pct(raw, 0.99) * 1e3, pct(ours, 0.99) * 1e3))
    finally:
        proc.terminate()
        proc.wait(10)
    proc, url = external_sim("1")  # the firmware's own 1 s update cycle
    try:
        rows.append((f"idle connected client CPU over {args.idle:g} s (% of a core)",
                     idle_cpu(args.idle, url, raw_idle), idle_cpu(args.idle, url, ours_idle)))
    finally:
        proc.terminate()
        proc.wait(10)
    threads, memory = many_clients(args.clients)
    rows.append((f"threads per client ({args.clients} clients, 50 sims in process)", 1.0, threads))
    rows.append((f"memory per client (KiB RSS, {args.clients} clients)", float("nan"), memory))

    width = max(len(r[0]) for r in rows)
    print(f"{'measure':<{width}}  {'raw baseline':>12}  {'pyburnerkit':>12}")
    for name, base, ours_value in rows:
        print(f"{name:<{width}}  {base:>12.3f}  {ours_value:>12.3f}")
    print(f"(python {sys.version.split()[0]}, {os.cpu_count()} CPUs, rounds={args.rounds})")


if __name__ == "__main__":
    main()
