"""Victron D-Bus: pyburnerkit against raw dbus-python, side by side in one run.

    python benchmarks/victron.py [--paths 1000] [--scans 50] [--signals 5000]

Both sides run on the same private dbus-daemon (started here), in this process.

1. GetItems scan of a ``--paths``-path service published by :class:`VictronService`:
   ours is ``VictronMonitor.read_items`` (a request through the session thread, values
   unwrapped into plain Python ``ItemValue`` objects); the baseline is a loop-less private
   ``dbus.bus.BusConnection`` doing ``call_blocking("GetItems")`` and nothing else (the reply
   stays in dbus types).
2. ItemsChanged throughput from a service to a monitor callback: ours is
   ``VictronService.set`` -> ItemsChanged -> ``VictronMonitor`` cache -> ``ValuesChanged``
   callback on the events thread; the baseline sends raw ``SignalMessage``s from one
   connection and counts them in an ``add_signal_receiver`` handler on another, on the same
   GLib pump thread (no cache, no events thread, no unwrapping).
"""

from __future__ import annotations

import argparse
import statistics
import threading
import time
from typing import Callable, List

import dbus
import dbus.bus
import dbus.lowlevel

from pyburnerkit.victron import ValuesChanged, VictronMonitor, VictronService, codec
from pyburnerkit.victron.bus import PUMP, close_connection
from pyburnerkit.victron.sim import DbusDaemon


def timed(fn: Callable[[], object], n: int) -> List[float]:
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return out


def pct(values: List[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def bench_scan(address: str, paths: int, scans: int) -> List[str]:
    name = "com.victronenergy.battery.bench"
    svc = VictronService(name, bus_address=address)
    svc.add_mandatory_paths(device_instance=1)
    for i in range(paths - 9):
        svc.add_item(f"/Cell/{i}/Voltage", 3.3 + i * 1e-4, unit="V")
    svc.register()
    mon = VictronMonitor(bus_address=address, service_types={"com.victronenergy.solar": None})
    mon.connect()
    raw = dbus.bus.BusConnection(address)
    try:
        ours = timed(lambda: mon.read_items(name), scans)
        base = timed(lambda: raw.call_blocking(name, "/", codec.BUSITEM, "GetItems", "", ()),
                     scans)
        assert len(mon.read_items(name)) == paths
    finally:
        raw.close()
        mon.close()
        svc.close()
    ms = lambda v: v * 1000  # noqa: E731
    return [f"GetItems scan, {paths} paths ({scans} scans)",
            f"  {'':28}{'median ms':>12}{'p95 ms':>10}{'scans/s':>10}",
            f"  {'raw dbus-python':28}{ms(statistics.median(base)):>12.2f}"
            f"{ms(pct(base, .95)):>10.2f}{1 / statistics.median(base):>10.0f}",
            f"  {'pyburnerkit VictronMonitor':28}{ms(statistics.median(ours)):>12.2f}"
            f"{ms(pct(ours, .95)):>10.2f}{1 / statistics.median(ours):>10.0f}"]


def bench_signals(address: str, count: int) -> List[str]:
    # -- ours
    name = "com.victronenergy.grid.bench"
    svc = VictronService(name, bus_address=address)
    svc.add_mandatory_paths(device_instance=2)
    svc.add_item("/Ac/Power", 0.0, unit="W")
    svc.register()
    done = threading.Event()
    got = [0]

    def on_change(ev: ValuesChanged) -> None:
        if ev.service == name:
            got[0] += 1
            if got[0] >= count:
                done.set()
    mon = VictronMonitor(bus_address=address, service_types={"com.victronenergy.grid": None})
    mon.subscribe(on_change, ValuesChanged)
    mon.connect()
    mon.wait_for_service(name)
    t0 = time.perf_counter()
    for i in range(1, count + 1):
        svc.set("/Ac/Power", float(i))
    ok = done.wait(120)
    ours = time.perf_counter() - t0
    mon.close()
    svc.close()
    assert ok, f"ours: only {got[0]} of {count} changes arrived"

    # -- raw baseline on the same pump
    PUMP.acquire()
    sender = dbus.bus.BusConnection(address, mainloop=PUMP.mainloop())
    receiver = dbus.bus.BusConnection(address, mainloop=PUMP.mainloop())
    raw_done = threading.Event()
    raw_got = [0]

    def handler(items: dbus.Dictionary) -> None:
        raw_got[0] += 1
        if raw_got[0] >= count:
            raw_done.set()
    receiver.add_signal_receiver(handler, "ItemsChanged", codec.BUSITEM,
                                 sender.get_unique_name(), "/")
    t0 = time.perf_counter()
    for i in range(1, count + 1):
        msg = dbus.lowlevel.SignalMessage("/", codec.BUSITEM, "ItemsChanged")
        msg.append({"/Ac/Power": {"Value": dbus.Double(float(i), variant_level=1),
                                  "Text": dbus.String(f"{i}W", variant_level=1)}},
                   signature="a{sa{sv}}")
        sender.send_message(msg)
    raw_ok = raw_done.wait(120)
    raw = time.perf_counter() - t0
    close_connection(sender)
    close_connection(receiver)
    PUMP.release()
    assert raw_ok, f"raw: only {raw_got[0]} of {count} signals arrived"
    return [f"ItemsChanged service -> monitor callback ({count} single-path updates)",
            f"  {'':28}{'total s':>12}{'updates/s':>10}{'us each':>10}",
            f"  {'raw dbus-python':28}{raw:>12.3f}{count / raw:>10.0f}{raw / count * 1e6:>10.1f}",
            f"  {'pyburnerkit Service+Monitor':28}{ours:>12.3f}{count / ours:>10.0f}"
            f"{ours / count * 1e6:>10.1f}"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--paths", type=int, default=1000)
    parser.add_argument("--scans", type=int, default=50)
    parser.add_argument("--signals", type=int, default=5000)
    args = parser.parse_args()
    daemon = DbusDaemon()
    address = daemon.start()
    try:
        lines = bench_scan(address, args.paths, args.scans) + [""] + \
            bench_signals(address, args.signals)
    finally:
        daemon.close()
    print("\n".join(lines))


if __name__ == "__main__":
    main()
