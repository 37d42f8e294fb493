"""Read an OutBack system through its Mate3s, log a few values, and (optionally) set one.

    python examples/mate3_monitor.py [HOST[:PORT]] [--polls N] [--interval S] [--absorb VOLTS]
                                     [--min-poll-interval S]

With no host it runs against the built-in simulator (``sim://mate3``). Writing a set point
needs ``--absorb`` and opens the client with ``allow_writes=True``; the write is checked,
scaled with a freshly read scale factor, refused if the charge controller moved to another HUB
port, and read back.
"""

import argparse
import os

from pyburnerkit.mate3 import Mate3Client, SystemUpdated

parser = argparse.ArgumentParser()
parser.add_argument("host", nargs="?", default=os.environ.get("MATE3_HOST", "sim://mate3"))
parser.add_argument("--polls", type=int, default=3, help="background polls to print")
parser.add_argument("--interval", type=float, default=1.0, help="seconds between polls")
parser.add_argument("--min-poll-interval", type=float, default=None,
                    help="least seconds between two operations (default: 1 s for a real Mate3s, "
                         "which is known to hang when polled hard; 0 for the simulator)")
parser.add_argument("--absorb", type=float, default=None,
                    help="write this absorb voltage to the first charge controller")
args = parser.parse_args()

with Mate3Client(args.host, allow_writes=args.absorb is not None,
                 min_poll_interval=args.min_poll_interval,
                 poll_interval=args.interval) as mate3:
    system = mate3.system
    print(f"{system.common.manufacturer.value} {system.common.model.value} "
          f"firmware {system.common.version.value}")
    for path, device in system.devices():
        port = f" (HUB port {device.port})" if device.port is not None else ""
        print(f"  {path}: {device.name}{port}")

    port, cc = sorted(system.charge_controllers.items())[0]
    for event in mate3.events(10.0, SystemUpdated):
        values = [event.system.get(p) for p in (f"charge_controllers[{port}].watts",
                                                 f"charge_controllers[{port}].battery_voltage")]
        print("poll:", ", ".join(f"{v.name}={v}" for v in values))
        args.polls -= 1
        if args.polls <= 0:
            break

    if args.absorb is not None:
        back = mate3.write(f"charge_controllers[{port}].config.absorb_volts", args.absorb)
        print(f"absorb_volts written and read back: {back}")
    print(f"{mate3.stats['requests']} Modbus requests in total")
