"""HTTP API of ``pyburnerkit serve`` against a raw waitress baseline, side by side in one run.

    python benchmarks/http_api.py [--seconds 5] [--clients 8] [--device demo-heater]

Starts ``pyburnerkit serve --demo`` (every family's simulator behind the service) and, as the
baseline, waitress serving a constant JSON WSGI app with the same thread count, each in a
process of its own. Then ``--clients`` threads (each with a keep-alive ``requests`` session)
send ``GET`` requests for ``--seconds``: the device's full cached state on the service, the
constant document on the baseline. Prints p50/p99 latency and requests per second for both.

The load generator shares the machine with the servers (2 cores on the reference box), so the
figures are what one box does with both ends on it; the baseline row shows the cost of HTTP +
waitress alone.
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import threading
import time
from typing import List, Tuple

import requests

BASELINE = r"""
import sys
from waitress.server import create_server

BODY = b'{"name": "constant", "fields": {}}'


def app(environ, start_response):
    start_response("200 OK", [("Content-Type", "application/json"),
                              ("Content-Length", str(len(BODY)))])
    return [BODY]


server = create_server(app, host="127.0.0.1", port=0, threads=16)
print(f"HTTP=http://127.0.0.1:{server.effective_port}", flush=True)
try:
    server.run()
except KeyboardInterrupt:
    pass
"""


def pct(values: List[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def start(argv: List[str]) -> Tuple[subprocess.Popen, str]:  # type: ignore[type-arg]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline().strip()
    if not line.startswith("HTTP="):
        proc.kill()
        raise SystemExit(f"{argv[:3]} did not start: {line!r}")
    return proc, line[len("HTTP="):]


def stop(proc: "subprocess.Popen[str]") -> None:
    proc.send_signal(signal.SIGTERM if os.name == "posix" else signal.SIGINT)
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)
    if proc.stdout is not None:
        proc.stdout.close()


def load(url: str, clients: int, seconds: float) -> Tuple[List[float], float, int]:
    """``clients`` threads GET ``url`` for ``seconds``: latencies, elapsed time, errors."""
    latencies: List[List[float]] = [[] for _ in range(clients)]
    errors = [0] * clients
    begin = threading.Barrier(clients + 1)
    end_at = [0.0]

    def run(i: int) -> None:
        with requests.Session() as session:
            session.get(url, timeout=10)  # warm the connection
            begin.wait()
            mine = latencies[i]
            while True:
                t0 = time.perf_counter()
                if t0 >= end_at[0]:
                    return
                reply = session.get(url, timeout=10)
                mine.append(time.perf_counter() - t0)
                if reply.status_code != 200:
                    errors[i] += 1

    threads = [threading.Thread(target=run, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    end_at[0] = time.perf_counter() + 3600
    begin.wait()
    started = time.perf_counter()
    end_at[0] = started + seconds
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - started
    return [x for chunk in latencies for x in chunk], elapsed, sum(errors)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--device", default="demo-heater")
    args = parser.parse_args()

    rows = []
    service, url = start([sys.executable, "-m", "pyburnerkit.cli.main", "serve", "--demo"])
    try:
        target = f"{url}/api/v1/devices/{args.device}"
        deadline = time.monotonic() + 30
        while not requests.get(target, timeout=10).json().get("fields"):
            if time.monotonic() > deadline:
                raise SystemExit(f"{args.device} has no state after 30 s")
            time.sleep(0.2)  # a benchmark, not a test: wait for the demo's first samples
        size = len(requests.get(target, timeout=10).content)
        lat, elapsed, errors = load(target, args.clients, args.seconds)
        rows.append((f"service GET /api/v1/devices/{args.device} ({size} B)", lat, elapsed,
                     errors))
    finally:
        stop(service)
    baseline, url = start([sys.executable, "-c", BASELINE])
    try:
        lat, elapsed, errors = load(url + "/", args.clients, args.seconds)
        rows.append(("baseline: waitress, constant WSGI app", lat, elapsed, errors))
    finally:
        stop(baseline)

    print(f"{args.clients} concurrent clients, {args.seconds:g} s each, "
          f"{os.cpu_count()} CPUs, Python {sys.version.split()[0]}")
    print(f"{'':52} {'p50 ms':>8} {'p99 ms':>8} {'req/s':>8} {'errors':>7}")
    for label, lat, elapsed, errors in rows:
        print(f"{label:52} {statistics.median(lat) * 1e3:8.2f} {pct(lat, 0.99) * 1e3:8.2f} "
              f"{len(lat) / elapsed:8.0f} {errors:7d}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
