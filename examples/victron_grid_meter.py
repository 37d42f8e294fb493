"""A minimal Venus OS meter driver: publish com.victronenergy.grid with pyburnerkit.

Run against the simulated bus (no GX needed)::

    python examples/victron_grid_meter.py              # starts its own simulated bus
    python examples/victron_grid_meter.py --bus unix:path=/run/dbus/system_bus_socket

On a GX device pass ``--bus system``; without ``--bus`` the service starts its own simulated
bus (``sim://``, with the localsettings that allocates the device instance).
"""

from __future__ import annotations

import argparse
import math
import time

from pyburnerkit.victron import VictronService


def run(bus: str, seconds: float, out=print) -> float:
    """Publish a meter for ``seconds`` on ``bus`` ("system", "session", a D-Bus address or
    "sim://"); returns the last power published."""
    # allow_writes: allocating the device instance creates a setting in localsettings.
    with VictronService("com.victronenergy.grid.example_meter", bus,
                        allow_writes=True) as svc:
        if svc.simulator is not None:
            out(f"simulated bus: DBUS_SESSION_BUS_ADDRESS={svc.bus_address}")
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
    parser.add_argument("--bus", default="sim://",
                        help="publish on this bus ('system', 'session' or a D-Bus address); "
                             "default: a private simulated one")
    parser.add_argument("--seconds", type=float, default=5.0)
    args = parser.parse_args()
    run(args.bus, args.seconds)


if __name__ == "__main__":
    main()
