"""A minimal Venus OS meter driver: publish com.victronenergy.grid with pyburnerkit.

Run against the simulated bus (no GX needed)::

    python examples/victron_grid_meter.py              # starts its own simulated bus
    python examples/victron_grid_meter.py --bus-address unix:path=/run/dbus/system_bus_socket

On a GX device pass ``--bus-address system`` (or ``session``, which picks the bus the way Venus
programs do); without --bus-address it always starts its own simulated bus.
"""

from __future__ import annotations

import argparse
import math
import time

from pyburnerkit.victron import VictronService
from pyburnerkit.victron.sim import VictronSim


def run(bus_address: str, seconds: float, out=print) -> float:
    """Publish a meter for ``seconds``; returns the last power published."""
    # allow_writes: allocating the device instance creates a setting in localsettings.
    with VictronService("com.victronenergy.grid.example_meter", bus_address=bus_address,
                        allow_writes=True) as svc:
        svc.add_mandatory_paths(process_name=__file__, connection="example",
                                product_name="Example grid meter", product_id=0xFFFF,
                                firmware_version="1.0", connected=1)
        svc.add_item("/Ac/Power", 0.0, unit="W")
        svc.add_item("/Ac/L1/Power", 0.0, unit="W")
        svc.add_item("/Ac/L1/Voltage", 230.0, unit="V")
        svc.add_item("/Ac/Energy/Forward", 0.0, text="{:.3f} kWh")
        instance = svc.allocate_device_instance("example_meter_SN1", "grid", 30)
        svc.register()  # the name is claimed only now, with every path in place
        out(f"published com.victronenergy.grid.example_meter, device instance {instance}")
        energy, power, start = 0.0, 0.0, time.monotonic()
        while time.monotonic() - start < seconds:
            t = time.monotonic() - start
            power = round(1000 + 500 * math.sin(t), 1)
            energy += power * 0.1 / 3.6e6
            with svc.batch() as b:   # one ItemsChanged for the whole update
                b["/Ac/Power"] = power
                b["/Ac/L1/Power"] = power
                b["/Ac/Energy/Forward"] = energy
            time.sleep(0.1)  # the meter's own sampling period
        return power


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bus-address", default=None,
                        help="publish on this bus ('system', 'session' or a D-Bus address) "
                             "instead of a private simulated one")
    parser.add_argument("--seconds", type=float, default=5.0)
    args = parser.parse_args()
    if args.bus_address:
        run(args.bus_address, args.seconds)
    else:
        with VictronSim() as sim:  # localsettings is needed for the device instance
            print(f"simulated bus: DBUS_SESSION_BUS_ADDRESS={sim.address}")
            run(sim.address, args.seconds)


if __name__ == "__main__":
    main()
