"""Print the state of every battery on a Venus OS bus as it changes.

    python examples/victron_battery_monitor.py          # against its own simulated bus
    python examples/victron_battery_monitor.py --bus system    # on a GX device
    python examples/victron_battery_monitor.py --bus unix:path=/run/dbus/system_bus_socket
"""

from __future__ import annotations

import argparse

from pyburnerkit.victron import ServiceAdded, ValuesChanged, VictronMonitor

PATHS = ["/Soc", "/Dc/0/Voltage", "/Dc/0/Current", "/Dc/0/Power", "/ProductName"]


def run(bus: str, updates: int, out=print) -> int:
    """Print battery state until ``updates`` changes were seen; returns how many were.

    ``bus``: "system", "session", a D-Bus address, or "sim://" (a simulated bus inside the
    monitor, with a battery whose values move).
    """
    with VictronMonitor(bus, service_types={"com.victronenergy.battery": PATHS}) as mon:
        known = set()
        for name, instance in mon.services().items():
            known.add(name)
            out(f"{name} (instance {instance}): {mon.get_value(name, '/ProductName')}")
        seen = 0
        for event in mon.events(timeout=10):
            if isinstance(event, ServiceAdded):
                if event.service.name not in known:   # not one listed above
                    known.add(event.service.name)
                    out(f"new battery: {event.service.name}")
            elif isinstance(event, ValuesChanged):
                name = event.service
                out(f"{name}: SoC {mon.get_text(name, '/Soc')} %  "
                    f"{mon.get_text(name, '/Dc/0/Voltage')} V  "
                    f"{mon.get_text(name, '/Dc/0/Current')} A  "
                    f"{mon.get_text(name, '/Dc/0/Power')} W")
                seen += 1
                if seen >= updates:
                    break
        return seen


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bus", default="sim://?interval=0.5",
                        help="system, session, a D-Bus address or sim:// (default: a "
                             "simulated bus)")
    parser.add_argument("--updates", type=int, default=10)
    args = parser.parse_args()
    run(args.bus, args.updates)


if __name__ == "__main__":
    main()
