"""Arbin: status of N channels as one all-channel request versus one request per channel.

    python benchmarks/arbin.py [--channels 256] [--rounds 20]

The simulator runs in a separate process (``pyburnerkit sim arbin``) so that the measured
CPU is the client's. Two clients are timed side by side in one run:

* raw baseline: a bare lock-step socket written with our codec, the way pycti talks CTI
  (send one frame, read until the length field is satisfied);
* pyburnerkit: :class:`~pyburnerkit.arbin.CyclerClient` (I/O thread, cache, events).

Each does both strategies: one ``-1`` (all channels) request, and one request per channel
(pycti's only way). Each row gives the median wall time and the median CPU time of this
process (every thread: the caller, the I/O thread, the events thread) per read. Also: feedback
frames decoded per second by the pure codec, and the receive buffer the client keeps.

The machine may be shared: run it a few times and compare the medians.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import time
from typing import Callable, List, Tuple

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from pyburnerkit.arbin import codec  # noqa: E402
from pyburnerkit.arbin.client import CyclerClient  # noqa: E402
from pyburnerkit.arbin.models import ChannelState, ChannelStatus  # noqa: E402

USER, SECRET = "bench", "bench-password"


class RawCti:
    """pycti's way: one socket, lock-step, read until dwLen bytes arrived."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        assert self.ask(codec.LoginRequest(USER, SECRET)).info.result.ok

    def ask(self, message: object) -> object:
        self.sock.sendall(codec.encode_request(message))
        buf = bytearray()
        need = None
        while need is None or len(buf) < need:
            chunk = self.sock.recv(1 << 20)
            if not chunk:
                raise ConnectionResetError("closed")
            buf += chunk
            if need is None and len(buf) >= 12:
                need = codec.frame_total(buf[:12], feedback=True)
        return codec.decode_feedback(bytes(buf[:need]))

    def close(self) -> None:
        self.sock.close()


def timed(fn: Callable[[], object], rounds: int) -> Tuple[float, float]:
    """Median wall time and median process CPU time of one call, both in ms."""
    wall, cpu = [], []
    for _ in range(rounds):
        started, used = time.perf_counter(), time.process_time()
        fn()
        cpu.append((time.process_time() - used) * 1000.0)
        wall.append((time.perf_counter() - started) * 1000.0)
    return statistics.median(wall), statistics.median(cpu)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--channels", type=int, default=256)
    parser.add_argument("--rounds", type=int, default=20)
    args = parser.parse_args()
    n, rounds = args.channels, args.rounds

    server = subprocess.Popen([sys.executable, "-m", "pyburnerkit.cli.main", "sim", "arbin",
                               "--port", "0", "--channels", str(n), "--username", USER,
                               "--password", SECRET],
                              stdout=subprocess.PIPE, text=True, cwd=ROOT,
                              env=dict(os.environ, PYTHONPATH=ROOT))
    try:
        line = server.stdout.readline()  # type: ignore[union-attr]
        port = int(line.split("127.0.0.1:")[1].split(";")[0])
        raw = RawCti(port)
        ours = CyclerClient(f"127.0.0.1:{port}", username=USER, password=SECRET, aux=False)
        ours.connect()
        try:
            # warm up both paths
            raw.ask(codec.ChannelInfoRequest(-1, 1, 0))
            ours.read_all_statuses()

            def raw_all() -> None:
                fb = raw.ask(codec.ChannelInfoRequest(-1, 1, 0))
                assert len(fb.statuses) == n  # type: ignore[attr-defined]

            def raw_each() -> None:
                for i in range(n):
                    raw.ask(codec.ChannelInfoRequest(i, 1, 0))

            def ours_all() -> None:
                assert len(ours.read_all_statuses()) == n

            def ours_each() -> None:
                for ch in range(1, n + 1):
                    ours.read_status(ch)

            few = max(3, rounds // 4)
            rows = [
                (f"{n} channels, one all-channel request", timed(raw_all, rounds),
                 timed(ours_all, rounds)),
                (f"{n} channels, one request per channel", timed(raw_each, few),
                 timed(ours_each, few)),
            ]
            kept = getattr(ours._session._reader, "capacity", 0)  # type: ignore[union-attr]
        finally:
            raw.close()
            ours.close()
    finally:
        server.terminate()
        server.wait(10)
        server.stdout.close()  # type: ignore[union-attr]

    one = codec.encode_feedback(codec.ChannelInfoFeedback(
        (ChannelStatus(channel=1, state=ChannelState.REST, schedule="Rest.sdx"),)))
    many = codec.encode_feedback(codec.ChannelInfoFeedback(tuple(
        ChannelStatus(channel=i, state=ChannelState.REST) for i in range(1, n + 1))))

    def rate(frame: bytes, seconds: float = 1.0) -> float:
        count, started = 0, time.perf_counter()
        while time.perf_counter() - started < seconds:
            codec.decode_feedback(frame)
            count += 1
        return count / (time.perf_counter() - started)

    one_rate = rate(one)
    many_rate = rate(many)

    width = 50
    head = f"{'measure':<{width}}  {'raw ms':>8}  {'raw CPU':>8}  {'ours ms':>8}  {'ours CPU':>8}"
    print(head)
    print(f"{'-' * width}  {'-' * 8}  {'-' * 8}  {'-' * 8}  {'-' * 8}")
    for name, (base, base_cpu), (mine, mine_cpu) in rows:
        print(f"{name:<{width}}  {base:>8.2f}  {base_cpu:>8.2f}  {mine:>8.2f}  {mine_cpu:>8.2f}")
    all_raw, all_ours = rows[0][1][0], rows[0][2][0]
    each_raw, each_ours = rows[1][1][0], rows[1][2][0]
    print(f"{'per-channel / all-channel time ratio':<{width}}  {each_raw / all_raw:>8.1f}  "
          f"{'':>8}  {each_ours / all_ours:>8.1f}")
    print(f"{'one-channel feedbacks decoded per second (codec)':<{width}}  {'':>8}  {'':>8}  "
          f"{one_rate:>8.0f}")
    print(f"{f'{n}-channel feedbacks decoded per second (codec)':<{width}}  {'':>8}  {'':>8}  "
          f"{many_rate:>8.1f}")
    print(f"{'receive buffer kept by the client (KiB)':<{width}}  {'':>8}  {'':>8}  "
          f"{kept / 1024:>8.0f}")
    print("\n(ms: median wall time per read; CPU: median CPU time of this process per read, ms)")
    print(f"target: {n} channels in under 50 ms on loopback -> "
          f"{'met' if all_ours < 50 else 'NOT met'} ({all_ours:.2f} ms)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
