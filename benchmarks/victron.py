"""Victron D-Bus: pyburnerkit against raw dbus-python and velib_python, side by side in one run.

    python benchmarks/victron.py [--paths 1000] [--scans 50] [--signals 5000]
    python benchmarks/victron.py --monitor [--updates 20000] [--per-update 1,20]
        [--velib /path/to/velib_python] [--peer-python /usr/bin/python3] [--repeat 3]

``--monitor`` runs only the monitor comparison (issue 16): one sender process owns
``com.victronenergy.grid.bench`` (it answers GetItems) and sends ItemsChanged signals as fast as
it can, each path's value being the sender's ``time.monotonic()``; one receiver process at a
time counts the items and their lag (receive time minus that value, same clock): raw
dbus-python (an ``add_signal_receiver`` handler on a GLib main loop), velib_python's
``DbusMonitor`` (its value callback; only with ``--velib``, a git checkout of
victronenergy/velib_python), and ``VictronMonitor`` (its ``ValuesChanged`` callback on the
events thread). The sender and every receiver run under ``--peer-python`` (a Python with
dbus-python and PyGObject, as on a Venus device), so the ratio compares libraries, not
interpreters; ours runs once more under this interpreter, shown on its own row (a Python built
without PGO/LTO, as pyenv builds by default, runs the same code markedly slower). Reported
per receiver (median of ``--repeat`` runs): items/s from the sender's first send to the last
item received, receiver CPU per item,
lag p50/p95, and how long after the sender's last send the last item arrived.

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
import json
import os
import statistics
import subprocess
import sys
import threading
import time
from typing import Any, Callable, Dict, List, Optional, Tuple

BUSITEM = "com.victronenergy.BusItem"
BENCH_SERVICE = "com.victronenergy.grid.bench"

if __name__ == "__main__" and len(sys.argv) > 1 and sys.argv[1].startswith("--role="):
    pass  # a peer role (sender, raw, velib) runs without pyburnerkit: see role_main()
else:
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


# ---------------------------------------------------------------- monitor comparison
def _paths(per_update: int) -> List[str]:
    return ["/Ac/Power"] + [f"/Ac/L{i}/Power" for i in range(1, per_update)]


def _summary(lags: List[float], first: float, last: float, items: int, cpu: float
             ) -> Dict[str, Any]:
    lags.sort()
    return {"items": items, "first": first, "last": last, "cpu": cpu,
            "p50": lags[len(lags) // 2] if lags else float("nan"),
            "p95": lags[int(len(lags) * 0.95)] if lags else float("nan")}


def _role_sender(address: str, per_update: int, count: int, rate: float = 0.0) -> None:
    import dbus
    import dbus.service
    from dbus.mainloop.glib import DBusGMainLoop
    from gi.repository import GLib  # type: ignore[import-not-found]
    DBusGMainLoop(set_as_default=True)
    bus = dbus.bus.BusConnection(address)
    paths = _paths(per_update)

    class Root(dbus.service.Object):  # type: ignore[misc]
        @dbus.service.method(BUSITEM, out_signature="a{sa{sv}}")  # type: ignore[misc]
        def GetItems(self) -> Any:
            items = {p: {"Value": dbus.Double(0.0, variant_level=1),
                         "Text": dbus.String("0 W", variant_level=1)} for p in paths}
            items["/DeviceInstance"] = {"Value": dbus.Int32(30, variant_level=1),
                                        "Text": dbus.String("30", variant_level=1)}
            return items

    root = Root(bus, "/")
    name = dbus.service.BusName(BENCH_SERVICE, bus)
    loop = GLib.MainLoop()

    def on_stdin(fd: int, cond: Any) -> bool:
        line = sys.stdin.readline()
        if line.strip() != "go":
            loop.quit()
            return False
        started = time.monotonic()
        for i in range(count):
            if rate:
                # paced: each update at its own time, so the lag is the path's, not a queue's
                time.sleep(max(0.0, started + i / rate - time.monotonic()))
            msg = dbus.lowlevel.SignalMessage("/", BUSITEM, "ItemsChanged")
            now = time.monotonic()
            msg.append({p: {"Value": dbus.Double(now, variant_level=1),
                            "Text": dbus.String("1 W", variant_level=1)} for p in paths},
                       signature="a{sa{sv}}")
            bus.send_message(msg)
            if rate or i % 32 == 31:
                bus.flush()  # the socket's back-pressure paces us, not an unbounded queue
        bus.flush()
        print(json.dumps({"started": started, "sent_at": time.monotonic()}), flush=True)
        return True

    GLib.io_add_watch(sys.stdin.fileno(), GLib.IO_IN | GLib.IO_HUP, on_stdin)
    print("ready", flush=True)
    loop.run()
    del root, name


def _role_raw(address: str, per_update: int, count: int) -> None:
    import dbus
    from dbus.mainloop.glib import DBusGMainLoop
    from gi.repository import GLib
    DBusGMainLoop(set_as_default=True)
    bus = dbus.bus.BusConnection(address)
    loop = GLib.MainLoop()
    want = count * per_update
    lags: List[float] = []
    state: Dict[str, float] = {}

    def handler(items: Any) -> None:
        now = time.monotonic()
        for item in items.values():
            lags.append(now - float(item["Value"]))
        state.setdefault("first", now)
        state["last"] = now
        if len(lags) >= want:
            loop.quit()

    bus.add_signal_receiver(handler, "ItemsChanged", BUSITEM, None, "/")
    bus.call_blocking("org.freedesktop.DBus", "/org/freedesktop/DBus", "org.freedesktop.DBus",
                      "GetId", "", ())  # the AddMatch is in effect once this returns
    cpu = time.process_time()
    print("ready", flush=True)
    loop.run()
    print(json.dumps(_summary(lags, state["first"], state["last"], len(lags),
                              time.process_time() - cpu)), flush=True)


def _role_velib(address: str, per_update: int, count: int, velib: str) -> None:
    os.environ["DBUS_SESSION_BUS_ADDRESS"] = address
    sys.path.insert(0, velib)
    from dbus.mainloop.glib import DBusGMainLoop
    from gi.repository import GLib
    DBusGMainLoop(set_as_default=True)
    from dbusmonitor import DbusMonitor  # type: ignore[import-not-found]
    loop = GLib.MainLoop()
    want = count * per_update
    lags: List[float] = []
    state: Dict[str, float] = {}

    def changed(service: str, path: str, options: Any, changes: Any, instance: Any) -> None:
        now = time.monotonic()
        lags.append(now - float(changes["Value"]))
        state.setdefault("first", now)
        state["last"] = now
        if len(lags) >= want:
            loop.quit()

    tree = {"com.victronenergy.grid": {p: {"code": None, "whenToLog": "configChange",
                                           "accessLevel": None} for p in _paths(per_update)}}
    monitor = DbusMonitor(tree, valueChangedCallback=changed)
    assert BENCH_SERVICE in monitor.get_service_list("com.victronenergy.grid")
    cpu = time.process_time()
    print("ready", flush=True)
    loop.run()
    print(json.dumps(_summary(lags, state["first"], state["last"], len(lags),
                              time.process_time() - cpu)), flush=True)


def _ours_receiver(address: str, per_update: int, count: int) -> None:
    from pyburnerkit.victron import ValuesChanged, VictronMonitor
    want = count * per_update
    lags: List[float] = []
    state: Dict[str, float] = {}
    done = threading.Event()

    def on_change(ev: ValuesChanged) -> None:
        if ev.service != BENCH_SERVICE:
            return
        now = time.monotonic()
        for item in ev.values.values():
            lags.append(now - item.value)
        state.setdefault("first", now)
        state["last"] = now
        if len(lags) >= want:
            done.set()

    with VictronMonitor(bus_address=address,
                        service_types={"com.victronenergy.grid": None}) as mon:
        mon.subscribe(on_change, ValuesChanged)
        mon.connect()
        mon.wait_for_service(BENCH_SERVICE)
        cpu = time.process_time()
        print("ready", flush=True)
        done.wait(600)
        used = time.process_time() - cpu
    print(json.dumps(_summary(lags, state.get("first", 0.0), state.get("last", 0.0), len(lags),
                              used)), flush=True)


def role_main(argv: List[str]) -> None:
    opts = dict(a[2:].split("=", 1) for a in argv)
    role, address = opts["role"], opts["address"]
    per_update, count = int(opts["per-update"]), int(opts["count"])
    if role == "sender":
        _role_sender(address, per_update, count, float(opts.get("rate", "0")))
    elif role == "raw":
        _role_raw(address, per_update, count)
    elif role == "velib":
        _role_velib(address, per_update, count, opts["velib"])
    else:
        _ours_receiver(address, per_update, count)


def _spawn(python: str, role: str, address: str, per_update: int, count: int,
           velib: Optional[str] = None, rate: float = 0.0) -> "subprocess.Popen[str]":
    argv = [python, os.path.abspath(__file__), f"--role={role}", f"--address={address}",
            f"--per-update={per_update}", f"--count={count}", f"--rate={rate}"]
    if velib:
        argv.append(f"--velib={velib}")
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = dict(os.environ, PYTHONPATH=root)
    return subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                            env=env)


def _expect_ready(proc: "subprocess.Popen[str]", what: str) -> None:
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if line.strip() != "ready":
        proc.kill()
        raise RuntimeError(f"{what} did not start: {line!r}")


def monitor_run(address: str, python_peer: str, role: str, per_update: int, count: int,
                velib: Optional[str], rate: float = 0.0) -> Dict[str, Any]:
    """One sender and one receiver run. ``role`` is raw, velib, ours (under ``python_peer``,
    like the others) or ours-here (under this interpreter)."""
    sender = _spawn(python_peer, "sender", address, per_update, count, rate=rate)
    receiver = None
    try:
        _expect_ready(sender, "the sender")
        python = sys.executable if role == "ours-here" else python_peer
        receiver = _spawn(python, "ours" if role == "ours-here" else role, address, per_update,
                          count, velib)
        _expect_ready(receiver, f"the {role} receiver")
        assert sender.stdin is not None and sender.stdout is not None
        sender.stdin.write("go\n")
        sender.stdin.flush()
        sent = json.loads(sender.stdout.readline())
        assert receiver.stdout is not None
        result: Dict[str, Any] = json.loads(receiver.stdout.readline())
        result["drain"] = result["last"] - sent["sent_at"]
        # from the sender's first send to the receiver's last item: a receiver that defers
        # its callbacks (velib's idle callbacks) cannot look faster than it delivers
        result["rate"] = result["items"] / (result["last"] - sent["started"])
        return result
    finally:
        for proc in (receiver, sender):
            if proc is None:
                continue
            if proc.stdin is not None:
                proc.stdin.close()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
            if proc.stdout is not None:
                proc.stdout.close()


def _receivers(velib: Optional[str]) -> Tuple[List[str], Dict[str, str]]:
    roles = ["raw"] + (["velib"] if velib else []) + ["ours", "ours-here"]
    here = f"python {sys.version.split()[0]} here"
    names = {"raw": "raw dbus-python", "velib": "velib_python DbusMonitor",
             "ours": "pyburnerkit VictronMonitor", "ours-here": f"  the same, {here}"}
    return roles, names


def bench_monitor(address: str, python_peer: str, updates: int, per_updates: List[int],
                  velib: Optional[str], repeat: int) -> List[str]:
    roles, names = _receivers(velib)
    lines = [f"Monitor: ItemsChanged from a sender process, {updates} updates per run, "
             f"median of {repeat} runs"]
    for per_update in per_updates:
        count = updates if per_update == 1 else max(1, updates // per_update)
        lines.append(f"  {per_update} path(s) per update ({count} updates):")
        lines.append(f"    {'':34}{'items/s':>10}{'us CPU/item':>13}{'lag p50 ms':>12}"
                     f"{'lag p95 ms':>12}{'drain ms':>10}")
        rates: Dict[str, float] = {}
        for role in roles:
            runs = [monitor_run(address, python_peer, role, per_update, count, velib)
                    for _ in range(repeat)]
            med = lambda key: statistics.median(r[key] for r in runs)  # noqa: E731
            rate = med("rate")
            rates[role] = rate
            lines.append(f"    {names[role]:34}{rate:>10.0f}"
                         f"{statistics.median(r['cpu'] / r['items'] for r in runs) * 1e6:>13.1f}"
                         f"{med('p50') * 1e3:>12.1f}{med('p95') * 1e3:>12.1f}"
                         f"{med('drain') * 1e3:>10.1f}")
        ref = "velib" if "velib" in rates else "raw"
        lines.append(f"    ours / {names[ref]} throughput: {rates['ours'] / rates[ref]:.2f}x")
    return lines


def bench_paced(address: str, python_peer: str, rate: float, seconds: float,
                velib: Optional[str], repeat: int) -> List[str]:
    """The lag of one path per update sent at a steady ``rate`` (below every receiver's
    limit): the time from the sender's send to the receiver's callback."""
    roles, names = _receivers(velib)
    count = int(rate * seconds)
    lines = [f"Paced: one path per update, {rate:g} updates/s for {seconds:g} s, "
             f"median of {repeat} runs",
             f"    {'':34}{'lag p50 ms':>12}{'lag p95 ms':>12}{'us CPU/item':>13}"]
    for role in roles:
        runs = [monitor_run(address, python_peer, role, 1, count, velib, rate)
                for _ in range(repeat)]
        lines.append(f"    {names[role]:34}"
                     f"{statistics.median(r['p50'] for r in runs) * 1e3:>12.2f}"
                     f"{statistics.median(r['p95'] for r in runs) * 1e3:>12.2f}"
                     f"{statistics.median(r['cpu'] / r['items'] for r in runs) * 1e6:>13.1f}")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--paths", type=int, default=1000)
    parser.add_argument("--scans", type=int, default=50)
    parser.add_argument("--signals", type=int, default=5000)
    parser.add_argument("--monitor", action="store_true",
                        help="run only the monitor comparison (sender and receiver processes)")
    parser.add_argument("--updates", type=int, default=20000)
    parser.add_argument("--per-update", default="1,20")
    parser.add_argument("--velib", default=os.environ.get("VELIB_PYTHON"),
                        help="a git checkout of victronenergy/velib_python")
    parser.add_argument("--peer-python", default="/usr/bin/python3",
                        help="a Python with dbus-python and PyGObject (gi) for the peers")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--paced", type=float, default=1000.0, metavar="RATE",
                        help="with --monitor: also the lag at RATE updates/s (0: skip)")
    args = parser.parse_args()
    if args.monitor:
        daemon = DbusDaemon()
        address = daemon.start()
        try:
            lines = bench_monitor(address, args.peer_python, args.updates,
                                  [int(n) for n in args.per_update.split(",")], args.velib,
                                  args.repeat)
            if args.paced:
                lines += [""] + bench_paced(address, args.peer_python, args.paced, 3.0,
                                            args.velib, args.repeat)
        finally:
            daemon.close()
        print("\n".join(lines))
        peer = subprocess.run([args.peer_python, "-c", "import sys; print(sys.version.split()[0])"],
                              capture_output=True, text=True, check=True).stdout.strip()
        print(f"(receivers on {args.peer_python} {peer} unless marked, the sender too; "
              f"{os.cpu_count()} CPUs shared with the dbus-daemon and the sender)")
        return
    daemon = DbusDaemon()
    address = daemon.start()
    try:
        lines = bench_scan(address, args.paths, args.scans) + [""] + \
            bench_signals(address, args.signals)
    finally:
        daemon.close()
    print("\n".join(lines))


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1].startswith("--role="):
        role_main(sys.argv[1:])
    else:
        main()
