"""Arbin cycler: read every channel in one request, then drive a charge through a meta variable.

Runs against the built-in simulator by default (over real TCP on 127.0.0.1). For a real cycler,
name it as ``host``, ``host:port`` or ``cti://host[:port]`` (``sim://`` runs the simulator in
process instead):

    ARBIN_CTI_USERNAME=... ARBIN_CTI_PASSWORD=... \\
        python examples/arbin_closed_loop.py 192.168.1.20:9031 --channel 3 \\
            --schedule MV_Charge.sdx

The schedule must charge at a current taken from MV_UD1 (the simulator's ``MV_Charge.sdx`` does).
"""

from __future__ import annotations

import argparse
import contextlib
from typing import Any, Dict, Iterator, List, Optional, Tuple

from pyburnerkit.arbin import ArbinSim, ChannelClient, StatusSnapshot


@contextlib.contextmanager
def cycler_endpoint(endpoint: Optional[str]) -> Iterator[Tuple[str, Dict[str, Any]]]:
    """The cycler to use and the credentials to pass: the given endpoint (credentials from the
    environment or --env-file), or a simulator started for the example on loopback."""
    if endpoint:
        yield endpoint, {}
        return
    sim = ArbinSim(16, username="example", password="example-pw", time_scale=60.0)
    with sim:
        yield sim.endpoint, {"username": "example", "password": "example-pw"}


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("endpoint", nargs="?", default=None,
                        help="host, host:port, cti://host[:port] or sim:// "
                             "(default: a simulator on 127.0.0.1)")
    parser.add_argument("--env-file", default=None)
    parser.add_argument("--channel", type=int, default=3)
    parser.add_argument("--schedule", default="MV_Charge.sdx")
    parser.add_argument("--target-v", type=float, default=3.7, help="stop charging here")
    parser.add_argument("--polls", type=int, default=8)
    args = parser.parse_args(argv)

    with cycler_endpoint(args.endpoint) as (endpoint, creds):
        with ChannelClient(endpoint, channel=args.channel, allow_writes=True,
                           env_file=args.env_file, **creds) as cell:
            info = cell.info
            assert info is not None  # connecting waits for the log-in, which caches it
            print(f"cycler {info.serial_number}: {cell.channel_count} channels")
            for status in cell.read_all_statuses():  # one request for every channel
                print(f"  ch{status.channel:<3} {status.state.text:<10} {status.voltage_v:.3f} V")
            cell.assign_schedule(args.schedule)
            cell.start("pyburnerkit-example")
            cell.set_meta_variable(1, 1.0)  # charge at 1 A
            events = cell.events(10.0, StatusSnapshot)
            with cell.watch(0.2, [args.channel]):
                for n, event in zip(range(args.polls), events):
                    s = event.statuses[0]
                    print(f"poll {n}: {s.state.text:<8} {s.step_and_cycle:<22} "
                          f"{s.voltage_v:.3f} V {s.current_a:.2f} A "
                          f"{s.charge_capacity_ah * 1000:.1f} mAh")
                    if s.voltage_v >= args.target_v:
                        cell.set_meta_variable(1, 0.2)  # taper the current
            cell.stop()
            print(f"stopped: {cell.read_status().state.text}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
