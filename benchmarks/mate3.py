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

Both decode nothing during the timed part except what they must (the baseline only collects
registers; pyburnerkit decodes into its models the blocks whose registers changed since its
last read, reusing the others, with a result equal to a full decode). The full read is timed
twice: against the static dump, and with the simulator's live model moving the real-time
values (a second apart, so that they changed between reads; 10 reads). The pure-codec rows compare a whole
decode with the incremental decoder. CPU: this process's CPU time per read (all threads).

The machine may be shared: run it a few times and compare the medians.
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


def timed(func, rounds: int, pause: float = 0.0) -> Tuple[float, float, float]:
    """Median and p90 wall time and median process CPU time of one call, in ms (``pause``
    seconds of waiting before each call, not timed)."""
    samples, cpu = [], []
    for _ in range(rounds):
        time.sleep(pause)
        start, used = time.perf_counter(), time.process_time()
        func()
        cpu.append((time.process_time() - used) * 1000)
        samples.append((time.perf_counter() - start) * 1000)
    samples.sort()
    return (statistics.median(samples), samples[int(0.9 * (len(samples) - 1))],
            statistics.median(cpu))


def realtime_changes(regs: Dict[int, int], layout) -> List[Dict[int, int]]:
    """Register images in which every real-time block has one changed value."""
    images = []
    for step in range(1, 9):
        image = dict(regs)
        for block in layout.blocks:
            if block.did in codec.PAIRS or block.did == 64110:
                address = block.address + block.length + 1  # the block's last register
                image[address] = (image[address] + step) & 0xFFFF
        images.append(image)
    return images


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=30)
    args = parser.parse_args()
    server = subprocess.Popen([sys.executable, "-m", "pyburnerkit.cli.main", "sim", "mate3",
                               "--port", "0"], stdout=subprocess.PIPE, text=True, cwd=ROOT,
                              env=dict(os.environ, PYTHONPATH=ROOT))
    live = subprocess.Popen([sys.executable, "-m", "pyburnerkit.cli.main", "sim", "mate3",
                             "--port", "0", "--live", "--speed", "60"], stdout=subprocess.PIPE,
                            text=True, cwd=ROOT, env=dict(os.environ, PYTHONPATH=ROOT))
    try:
        where = server.stdout.readline().strip()
        port = int(where.rsplit(":", 1)[1])
        live_port = int(live.stdout.readline().strip().rsplit(":", 1)[1])
        rows = []

        base = BlockByBlock(port)
        base.read_all()
        base_requests = base.requests
        base_ms, base_p90, base_cpu = timed(base.read_all, args.rounds)
        base.close()

        start = time.perf_counter()
        client = Mate3Client(f"127.0.0.1:{port}", min_poll_interval=0).connect()
        connect_ms = (time.perf_counter() - start) * 1000
        walk_requests = client.stats["requests"]
        before = client.stats["requests"]
        client.read_all()
        full_requests = client.stats["requests"] - before
        ours_ms, ours_p90, ours_cpu = timed(client.read_all, args.rounds)
        before = client.stats["requests"]
        field_ms, _, _ = timed(lambda: client.read("charge_controllers[3].battery_voltage",
                                                   "fndcs[5].state_of_charge"), args.rounds)
        field_requests = (client.stats["requests"] - before) // args.rounds
        client.close()

        live_client = Mate3Client(f"127.0.0.1:{live_port}", min_poll_interval=0).connect()
        live_client.read_all()
        # the live model moves its values once a second: wait for each move, time the read
        live_ms, live_p90, live_cpu = timed(live_client.read_all, min(args.rounds, 10), 1.05)
        live_decoded = live_client._session._decoder.decoded  # type: ignore[union-attr]
        live_client.close()

        regs = codec.bundled_dump()
        layout = codec.layout_from_registers(regs)
        decode_ms, _, _ = timed(lambda: codec.build_system(layout, regs, 0.0), args.rounds)
        decoder = codec.SystemDecoder()
        decoder.decode(layout, regs, 0.0)
        clock = iter(range(1, 10 ** 9))
        same_ms, _, _ = timed(lambda: decoder.decode(layout, regs, float(next(clock))),
                              args.rounds)
        images = realtime_changes(regs, layout)
        turn = iter(range(10 ** 9))
        moving_ms, _, _ = timed(lambda: decoder.decode(layout, images[next(turn) % len(images)],
                                                       float(next(clock))), args.rounds)
        moving_decoded = decoder.decoded

        rows += [
            ("requests, first full read (walk)", base_requests, walk_requests),
            ("requests, each later full read", base_requests, full_requests),
            ("largest request (registers)", 99, 100),
            ("full read, static values, median (ms)", f"{base_ms:.2f}", f"{ours_ms:.2f}"),
            ("full read, static values, p90 (ms)", f"{base_p90:.2f}", f"{ours_p90:.2f}"),
            ("full read, static values, CPU (ms)", f"{base_cpu:.2f}", f"{ours_cpu:.2f}"),
            ("full read, live values, median (ms)", "", f"{live_ms:.2f}"),
            ("full read, live values, p90 (ms)", "", f"{live_p90:.2f}"),
            ("full read, live values, CPU (ms)", "", f"{live_cpu:.2f}"),
            ("blocks decoded, last live read", "",
             f"{live_decoded}/{len(layout.blocks)}"),
            ("connect + walk + decode (ms)", "n/a", f"{connect_ms:.1f}"),
            ("two-field read: requests", "n/a", field_requests),
            ("two-field read, median (ms)", "n/a", f"{field_ms:.2f}"),
            ("decode whole system, pure codec (ms)", "n/a", f"{decode_ms:.2f}"),
            ("incremental decode, nothing changed (ms)", "n/a", f"{same_ms:.2f}"),
            (f"incremental decode, {moving_decoded} real-time blocks changed (ms)", "n/a",
             f"{moving_ms:.2f}"),
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
        for process in (server, live):
            process.terminate()
            process.wait(10)
            process.stdout.close()


if __name__ == "__main__":
    main()
