"""Wire log memory per client: bounded by bytes (now) against the old last-32-whole-frames ring.

    python benchmarks/wirelog.py [--channels 256] [--reads 50] [--clients 4]

A 256-channel Arbin client (in-process simulator) reads every channel's status ``--reads``
times. The frames it logged are seen whole through its ``trace`` hook, so the same run also
shows what the previous ring (the last 32 frames, kept whole) would have held. Reported: the
wire log's own accounting, the deep size of what it really holds (every object counted once),
the old ring's deep size, and the traced Python memory one connected client holds
(``tracemalloc``, averaged over ``--clients`` clients on one simulator each). Target (issue 16):
a 256-channel Arbin client holds at most 1 MiB of wire log.
"""

from __future__ import annotations

import argparse
import collections
import gc
import os
import sys
import tracemalloc
from typing import Any, Deque, List

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from pyburnerkit._core.wire import DEFAULT_FRAME_BYTES, DEFAULT_WIRE_LOG_BYTES  # noqa: E402
from pyburnerkit.arbin import CyclerClient  # noqa: E402


def deep_size(obj: Any, seen: Any = None) -> int:
    seen = set() if seen is None else seen
    if id(obj) in seen:
        return 0
    seen.add(id(obj))
    size = sys.getsizeof(obj)
    if isinstance(obj, dict):
        size += sum(deep_size(k, seen) + deep_size(v, seen) for k, v in obj.items())
    elif isinstance(obj, (list, tuple, collections.deque)):
        size += sum(deep_size(item, seen) for item in obj)
    return size


def one_client(channels: int, reads: int) -> List[float]:
    old_ring: Deque[Any] = collections.deque(maxlen=32)

    def trace(direction: str, frame: Any) -> None:
        old_ring.append((0.0, direction, bytes(frame) if isinstance(frame, (bytes, bytearray,
                                                                            memoryview))
                         else frame))

    with CyclerClient(f"sim://?channels={channels}", aux=False, trace=trace) as cycler:
        for _ in range(reads):
            assert len(cycler.read_all_statuses()) == channels
        wire = cycler._wire
        return [wire.bytes, deep_size(wire.recent()), deep_size(list(old_ring)),
                len(wire.recent()), max(len(f) for _, _, f in old_ring)]


def client_memory(channels: int, reads: int, count: int) -> float:
    gc.collect()
    tracemalloc.start()
    clients = [CyclerClient(f"sim://?channels={channels}", aux=False) for _ in range(count)]
    try:
        for client in clients:
            client.connect()
        gc.collect()
        before = tracemalloc.take_snapshot()
        for _ in range(reads):
            for client in clients:
                client.read_all_statuses()
        gc.collect()
        after = tracemalloc.take_snapshot()
        grown = sum(stat.size_diff for stat in after.compare_to(before, "filename"))
        wire_file = os.path.join("pyburnerkit", "_core", "wire.py")
        wire_grown = sum(stat.size_diff for stat in after.compare_to(before, "filename")
                         if stat.traceback[0].filename.endswith(wire_file))
        return grown / count, wire_grown / count
    finally:
        for client in clients:
            client.close()
        tracemalloc.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--channels", type=int, default=256)
    parser.add_argument("--reads", type=int, default=50)
    parser.add_argument("--clients", type=int, default=4)
    args = parser.parse_args()
    accounted, held, old, kept, largest = one_client(args.channels, args.reads)
    grown, wire_grown = client_memory(args.channels, args.reads, args.clients)
    kib = 1024.0
    print(f"{args.channels}-channel Arbin client, {args.reads} all-channel reads "
          f"(largest frame {largest} bytes)")
    print(f"  {'':52}{'KiB':>10}")
    print(f"  {'old ring: last 32 frames kept whole (deep size)':52}{old / kib:>10.1f}")
    print(f"  {'wire log now: its own accounting':52}{accounted / kib:>10.1f}")
    print(f"  {'wire log now: deep size of what it holds':52}{held / kib:>10.1f}")
    print(f"  {'frames kept now':52}{kept:>10}")
    print(f"  {'client memory growth over the reads, per client':52}{grown / kib:>10.1f}")
    print(f"  {'  of which allocated in the wire log':52}{wire_grown / kib:>10.1f}")
    print(f"defaults: {DEFAULT_WIRE_LOG_BYTES // 1024} KiB per client, frames cut to "
          f"{DEFAULT_FRAME_BYTES} bytes; target <= 1024 KiB: "
          f"{'met' if held <= 1 << 20 else 'NOT met'}")
    print(f"(python {sys.version.split()[0]}, tracemalloc over {args.clients} clients)")


if __name__ == "__main__":
    main()
