"""Read an OutBack system through its Mate3s, log a few values, and (optionally) set one.

    python examples/mate3_monitor.py [HOST[:PORT]] [--polls N] [--interval S] [--absorb VOLTS]
                                     [--dry-run] [--min-poll-interval S]

With no host it runs against the built-in simulator (``sim://mate3``). Writing a set point
needs ``--absorb`` and opens the client with ``allow_writes=True``; the value is checked
against the field's documented limit (an absorb voltage must lie in 12..16.5 V per 12 V of the
nominal battery voltage the Mate3 reports: 48..66 V on a 48 V system) before anything is sent,
scaled with a freshly read scale factor, refused if the charge controller moved to another HUB
port, and read back. ``--dry-run`` shows the registers that would be written instead.
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
parser.add_argument("--dry-run", action="store_true",
                    help="with --absorb: check the value and show what would be written")
args = parser.parse_args()

with Mate3Client(args.host, allow_writes=args.absorb is not None and not args.dry_run,
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
        path = f"charge_controllers[{port}].config.absorb_volts"
        if args.dry_run:
            plan = mate3.plan_write(path, args.absorb)
            print(f"would write {list(plan.registers)} to register {plan.address} "
                  f"(limit {plan.limit.split(' (')[0]}); nothing written")
        else:
            back = mate3.write(path, args.absorb)
            print(f"absorb_volts written and read back: {back}")
    print(f"{mate3.stats['requests']} Modbus requests in total")
