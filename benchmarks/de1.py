"""DE1 benchmark: notification-to-callback latency and stop-at-weight accuracy.

Run from the repository root::

    .venv/bin/python benchmarks/de1.py [--samples 400] [--shots 20] [--baseline-shots 10]

1. Latency: the simulated DE1 streams ShotSamples; the simulator stamps each with
   ``time.monotonic()`` (system-wide on Linux) the moment it hands it to the radio link. The
   same run measures, side by side, a raw pygatt callback (pygatt's receiver thread, the floor
   any pygatt program can reach) and a pyburnerkit ``subscribe()`` callback (pygatt receiver
   -> I/O thread -> decode -> cache -> events thread). Both go through the fake gatttool.
2. Stop-at-weight: 20 simulated shots through pygatt with a simulated Skale II, target 36 g,
   the default lag model; final weight minus target. Every shot gets a fresh
   :class:`ShotSequencer` on the same two clients (as an application does), so a timer left by
   an earlier sequencer would show up here as a shot cut short. Baseline: the naive rule "stop
   when the scale shows the target" (no prediction), same simulator. The table gives the median
   and the worst absolute error and how many shots stopped by weight.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time
from typing import Dict, List, Optional, Tuple

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from pyburnerkit.ble.simhost import BleSimHost  # noqa: E402
from pyburnerkit.de1 import codec  # noqa: E402
from pyburnerkit.de1.client import DE1Client  # noqa: E402
from pyburnerkit.de1.models import MachineState, ShotSampleEvent  # noqa: E402
from pyburnerkit.de1.sequencer import ShotSequencer  # noqa: E402
from pyburnerkit.de1.sim import Bench, DE1Peripheral  # noqa: E402
from pyburnerkit.scale.client import SkaleClient  # noqa: E402
from pyburnerkit.scale.sim import SkalePeripheral  # noqa: E402


class StampedDE1(DE1Peripheral):
    """The simulated DE1, recording when each ShotSample left for the link."""

    def __init__(self, *a, **kw) -> None:
        super().__init__(*a, **kw)
        self.sent: Dict[int, float] = {}

    def notify(self, uuid: str, data: bytes) -> bool:
        if uuid == codec.SHOT_SAMPLE:
            self.sent[int.from_bytes(data[:2], "big")] = time.monotonic()
        return super().notify(uuid, data)


def percentile(values: List[float], p: float) -> float:
    ordered = sorted(values)
    k = min(len(ordered) - 1, max(0, int(round(p / 100.0 * (len(ordered) - 1)))))
    return ordered[k]


def world(speed: float):
    bench = Bench(speed)
    host = BleSimHost(seed=1)
    de1 = host.add(StampedDE1(bench=bench, seed=1))
    skale = host.add(SkalePeripheral(bench=bench, seed=1))
    host.start()
    host.run_sync(lambda: (de1.start(), skale.start()))
    return host, bench, de1, skale


def latency_raw(host, de1, n: int) -> List[float]:
    import pygatt
    got: List[float] = []
    done = threading.Event()
    adapter = pygatt.GATTToolBackend()
    adapter.start(reset_on_start=False)
    adapter._con.delaybeforesend = None
    try:
        dev = adapter.connect(de1.address, timeout=5)
        handles = dev.discover_characteristics()
        handle = handles[__import__("uuid").UUID(codec.SHOT_SAMPLE)].handle

        def cb(h: int, value: bytearray) -> None:
            now = time.monotonic()
            sent = de1.sent.get(int.from_bytes(value[:2], "big"))
            if sent is not None and len(got) < n:
                got.append(now - sent)
                if len(got) >= n:
                    done.set()

        dev.subscribe_handle(handle, callback=cb)
        done.wait(120)
        dev.disconnect()
    finally:
        adapter.stop()
        adapter._receiver.join(2)
    return got


def latency_ours(de1, n: int) -> List[float]:
    got: List[float] = []
    done = threading.Event()
    with DE1Client(de1.address, send_delay=0.0).connect() as client:
        def cb(event: ShotSampleEvent) -> None:
            now = time.monotonic()
            sent = de1.sent.get(event.sample.sample_time)
            if sent is not None and len(got) < n:
                got.append(now - sent)
                if len(got) >= n:
                    done.set()
        client.subscribe(cb, ShotSampleEvent)
        done.wait(120)
    return got


def shots(de1, skale, bench, host, speed: float, count: int, target: float,
          predictive: bool) -> List[Tuple[float, Optional[str]]]:
    """(final weight - target, stop reason) of each shot."""
    results: List[Tuple[float, Optional[str]]] = []
    with DE1Client(de1.address, send_delay=0.002, allow_writes=True,
                   allow_remote_start=True).connect() as c, \
            SkaleClient(skale.address, send_delay=0.002, time_scale=speed,
                        allow_writes=True).connect() as s:
        c.wake()
        for _ in range(count):
            host.run_sync(bench.empty_cup)
            s.tare()
            if predictive:
                seq = ShotSequencer(c, s, stop_at_weight=target, time_scale=speed)
            else:  # naive: stop once the scale shows the target; no lag model
                seq = ShotSequencer(c, s, stop_at_weight=target, time_scale=speed,
                                    stop_lead_time=0.0, fall_time=0.0, weight_adjust=0.0)
                seq._due = lambda t_w, w, tgt, f, now, p: w >= tgt  # type: ignore
            with seq:
                c.start_espresso()
                record = seq.wait_complete(timeout=300)
            results.append((record.final_weight_g - target, record.stop_reason))
            c.wait_for(lambda cl: cl.state is MachineState.IDLE, timeout=30)
    return results


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--samples", type=int, default=400)
    ap.add_argument("--shots", type=int, default=20)
    ap.add_argument("--baseline-shots", type=int, default=10)
    ap.add_argument("--speed", type=float, default=4.0,
                    help="simulated seconds per real second for the shots")
    ap.add_argument("--target", type=float, default=36.0)
    args = ap.parse_args()

    tooldir = tempfile.mkdtemp(prefix="pbk-bench-")
    old_path = os.environ.get("PATH", "")
    try:
        # ---- latency: awake DE1 at 10x speed streams 40 samples/s
        host, bench, de1, skale = world(10.0)
        host.tool_dir(tooldir)
        os.environ["PATH"] = tooldir + os.pathsep + old_path
        host.run_sync(lambda: de1.request(MachineState.IDLE))
        raw = latency_raw(host, de1, args.samples)
        ours = latency_ours(de1, args.samples)
        host.close()
        print("Notification -> callback latency (ShotSample, fake gatttool, same run)")
        print(f"{'path':<44}{'n':>6}{'p50 ms':>10}{'p99 ms':>10}{'max ms':>10}")
        for name, values in (("raw pygatt callback (receiver thread)", raw),
                             ("pyburnerkit subscribe() (events thread)", ours)):
            print(f"{name:<44}{len(values):>6}{percentile(values, 50) * 1e3:>10.2f}"
                  f"{percentile(values, 99) * 1e3:>10.2f}{max(values) * 1e3:>10.2f}")
        print()
        # ---- stop-at-weight
        host, bench, de1, skale = world(args.speed)
        host.tool_dir(tooldir)
        pred = shots(de1, skale, bench, host, args.speed, args.shots, args.target, True)
        naive = shots(de1, skale, bench, host, args.speed, args.baseline_shots, args.target,
                      False) if args.baseline_shots else []
        host.close()
        print(f"Stop-at-weight, target {args.target:g} g, simulator at {args.speed:g}x, "
              f"through pygatt (final weight - target)")
        print(f"{'rule':<44}{'shots':>6}{'by weight':>10}{'median |e| g':>14}"
              f"{'worst |e| g':>13}{'mean e g':>10}{'min g':>8}{'max g':>8}")
        for name, results in (("pyburnerkit predictive (default lag model)", pred),
                              ("naive: stop at target reading", naive)):
            if results:
                values = [e for e, _ in results]
                by_weight = sum(1 for _, reason in results if reason == "weight")
                print(f"{name:<44}{len(values):>6}{by_weight:>10}"
                      f"{statistics.median(abs(v) for v in values):>14.2f}"
                      f"{max(abs(v) for v in values):>13.2f}"
                      f"{statistics.mean(values):>10.2f}{min(values):>8.2f}{max(values):>8.2f}")
    finally:
        os.environ["PATH"] = old_path
        shutil.rmtree(tooldir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
