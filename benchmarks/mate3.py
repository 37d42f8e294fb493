"""Mate3: full read of the chinezbrun system, pyburnerkit against a block-by-block baseline.

    python benchmarks/mate3.py [--rounds 30]

The simulated Mate3s (``pyburnerkit sim mate3``, serving the real chinezbrun dump) runs in a
separate process, so the measured CPU is the client's. Side by side in one run:

* baseline, mate3's way, written with pymodbus directly: walk from 40000 block by block, one
  request for each block's DID and length, then the block body in requests of at most 99
  registers (mate3 additionally splits at write-only fields; this baseline does not, so it is
  a little kinder than mate3's 48 requests);
* pyburnerkit: :class:`~pyburnerkit.mate3.Mate3Client` with no pacing (``min_poll_interval=0``):
  the first read walks the chain (never past the next header it knows exists), later full
  reads coalesce the whole map across block boundaries in requests of at most 100 registers
  and re-check every block header on the way.

Both decode nothing during the timed part except what they must (pyburnerkit decodes the whole
system into its models on every read; the baseline only collects registers).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from typing import Dict, List, Tuple

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from pymodbus.client import ModbusTcpClient  # noqa: E402

from pyburnerkit.mate3 import codec  # noqa: E402
from pyburnerkit.mate3.client import Mate3Client  # noqa: E402


class BlockByBlock:
    """The baseline: mate3's walk, with pymodbus and nothing else."""

    def __init__(self, port: int) -> None:
        self.client = ModbusTcpClient("127.0.0.1", port=port, timeout=3, retries=0)
        assert self.client.connect()
        self.requests = 0

    def _read(self, address: int, count: int) -> List[int]:
        self.requests += 1
        response = self.client.read_holding_registers(address, count=count, device_id=0)
        assert not response.isError(), response
        return list(response.registers)

    def read_all(self) -> Dict[int, int]:
        regs: Dict[int, int] = {}
        marker = self._read(40000, 2)
        assert tuple(marker) == codec.SUNS_MARKER
        address = 40002
        while True:
            did, length = self._read(address, 2)
            regs[address], regs[address + 1] = did, length
            if did == codec.END_DID:
                return regs
            start = address + 2
            while start < address + 2 + length:
                count = min(99, address + 2 + length - start)
                for offset, value in enumerate(self._read(start, count)):
                    regs[start + offset] = value
                start += count
            address += length + 2

    def close(self) -> None:
        self.client.close()


def timed(func, rounds: int) -> Tuple[float, float]:
    samples = []
    for _ in range(rounds):
        start = time.perf_counter()
        func()
        samples.append((time.perf_counter() - start) * 1000)
    samples.sort()
    return statistics.median(samples), samples[int(0.9 * (len(samples) - 1))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=30)
    args = parser.parse_args()
    server = subprocess.Popen([sys.executable, "-m", "pyburnerkit.cli.main", "sim", "mate3",
                               "--port", "0"], stdout=subprocess.PIPE, text=True, cwd=ROOT,
                              env=dict(os.environ, PYTHONPATH=ROOT))
    try:
        where = server.stdout.readline().strip()
        port = int(where.rsplit(":", 1)[1])
        rows = []

        base = BlockByBlock(port)
        base.read_all()
        base_requests = base.requests
        base_ms, base_p90 = timed(base.read_all, args.rounds)
        base.close()

        start = time.perf_counter()
        client = Mate3Client(f"127.0.0.1:{port}", min_poll_interval=0).connect()
        connect_ms = (time.perf_counter() - start) * 1000
        walk_requests = client.stats["requests"]
        before = client.stats["requests"]
        client.read_all()
        full_requests = client.stats["requests"] - before
        ours_ms, ours_p90 = timed(client.read_all, args.rounds)
        before = client.stats["requests"]
        field_ms, _ = timed(lambda: client.read("charge_controllers[3].battery_voltage",
                                                "fndcs[5].state_of_charge"), args.rounds)
        field_requests = (client.stats["requests"] - before) // args.rounds
        client.close()

        regs = codec.bundled_dump()
        layout = codec.layout_from_registers(regs)
        decode_ms, _ = timed(lambda: codec.build_system(layout, regs, 0.0), args.rounds)

        rows += [
            ("requests, first full read (walk)", base_requests, walk_requests),
            ("requests, each later full read", base_requests, full_requests),
            ("largest request (registers)", 99, 100),
            ("full read, median (ms)", f"{base_ms:.2f}", f"{ours_ms:.2f}"),
            ("full read, p90 (ms)", f"{base_p90:.2f}", f"{ours_p90:.2f}"),
            ("connect + walk + decode (ms)", "n/a", f"{connect_ms:.1f}"),
            ("two-field read: requests", "n/a", field_requests),
            ("two-field read, median (ms)", "n/a", f"{field_ms:.2f}"),
            ("decode whole system, pure codec (ms)", "n/a", f"{decode_ms:.2f}"),
        ]
        width = max(len(r[0]) for r in rows)
        line = f"{'=' * width}  {'=' * 12}  {'=' * 11}"
        print(line)
        print(f"{'measure':<{width}}  {'block-by-blk':>12}  {'pyburnerkit':>11}")
        print(line)
        for name, a, b in rows:
            print(f"{name:<{width}}  {str(a):>12}  {str(b):>11}")
        print(line)
    finally:
        server.terminate()
        server.wait(10)
        server.stdout.close()


if __name__ == "__main__":
    main()
