"""``pyburnerkit victron list|get|set|watch`` and ``pyburnerkit sim victron``."""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import TYPE_CHECKING, Any, Callable

from . import common
from .common import UsageError

if TYPE_CHECKING:
    from ..victron import VictronMonitor


def register(subparsers: Any) -> None:
    group = subparsers.add_parser("victron", help="Victron Venus OS services on D-Bus")
    sub = group.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    p_list = sub.add_parser("list", help="list com.victronenergy services and device instances")
    p_list.add_argument("service_class", nargs="?", default=None,
                        help="only this class, e.g. com.victronenergy.battery")
    p_get = sub.add_parser("get", help="read one path (GetValue and GetText on the bus)")
    p_get.add_argument("service")
    p_get.add_argument("path")
    p_set = sub.add_parser("set", help="SetValue one path (needs --allow-writes)")
    p_set.add_argument("service")
    p_set.add_argument("path")
    p_set.add_argument("value", help="a number, a string, or JSON (e.g. '\"text\"', '[1,2]', "
                                     "'null' for invalid)")
    p_watch = sub.add_parser("watch", help="live view of changes (like dbus-spy); Ctrl-C ends")
    p_watch.add_argument("service", nargs="?", default=None, help="only this service")
    common.add_bound_options([p_watch], what="values")
    from .top import add_top_parser
    p_top = add_top_parser(sub, "victron")
    parsers = [group, p_list, p_get, p_set, p_watch, p_top]
    common.add_endpoint_option(parsers, "victron", "--bus", "--bus-address", "--host",
                               dest="bus", what="the bus: system, session, a D-Bus address "
                                                "(unix:path=...) or sim://",
                               fallback=("DBUS_SESSION_BUS_ADDRESS",),
                               otherwise="the system bus")
    common.add_writes_option(parsers, help="really change values on the bus (set: SetValue "
                                           "can switch inverters and chargers)")
    common.add_option_everywhere(parsers, "--timeout", type=float, default=5.0,
                                 help="seconds per call (default 5)")
    common.add_format_option(parsers)
    p_list.set_defaults(handler=_list)
    p_get.set_defaults(handler=_get)
    p_set.set_defaults(handler=_set)
    p_watch.set_defaults(handler=_watch)
    p_top.set_defaults(handler=_top)


def _monitor(args: argparse.Namespace, **kw: Any) -> "VictronMonitor":
    from ..victron import VictronMonitor
    return VictronMonitor(_bus(args), timeout=args.timeout, reconnect=None, **kw)


def _bus(args: argparse.Namespace) -> "str | None":
    return common.endpoint(args, "bus")


def _top(args: argparse.Namespace) -> int:
    from .top import run_top
    types = None
    return run_top(args, "victron", lambda: _monitor(args, service_types=types),
                   _bus(args) or "system bus")


def _list(args: argparse.Namespace) -> int:
    with _monitor(args) as mon:
        rows = [{"service": name, "device_instance": inst,
                 "product": mon.get_value(name, "/ProductName")}
                for name, inst in sorted(mon.services(args.service_class).items())]
    if args.format == "text":
        for row in rows:
            inst = "-" if row["device_instance"] is None else row["device_instance"]
            print(f"{row['service']:<45} {inst!s:>5}  {row['product'] or ''}")
        sys.stdout.flush()
    else:
        common.emit(rows, args.format)
    return 0


def _get(args: argparse.Namespace) -> int:
    with _monitor(args, service_types={_class(args.service): []}) as mon:
        value = mon.read_value(args.service, args.path)
        text = mon.read_text(args.service, args.path)
    common.emit({"service": args.service, "path": args.path, "value": value, "text": text},
                args.format)
    return 0


def _class(name: str) -> str:
    from ..victron import codec
    codec.check_service_name(name)
    return codec.service_class(name)


def parse_value(text: str) -> Any:
    """CLI text to a value: JSON when it parses (numbers, null, lists, quoted strings),
    otherwise the text itself as a string."""
    try:
        return json.loads(text)
    except ValueError:
        return text


def _set(args: argparse.Namespace) -> int:
    """SetValue, only with ``--allow-writes``; refused (exit 2, one line) before any
    connection otherwise. Out-of-limits values are refused before sending (exit 2). If the
    call times out, the service may still apply the value later; it is not retried."""
    from ..errors import WriteNotAllowedError
    from ..victron import codec
    value = parse_value(args.value)
    service_class = _class(args.service)
    codec.check_path(args.path)
    if not args.allow_writes:
        raise UsageError(f"SetValue {args.service}{args.path}={args.value} changes the device: "
                         f"add --allow-writes to really write it")
    with _monitor(args, service_types={service_class: []}, allow_writes=True) as mon:
        try:
            mon.set_value(args.service, args.path, value)
        except WriteNotAllowedError as exc:
            raise UsageError(str(exc)) from None
        after = mon.read_value(args.service, args.path)
    common.emit({"service": args.service, "path": args.path, "value": after}, args.format)
    return 0


def _watch(args: argparse.Namespace) -> int:
    """Each service's values when its first scan arrives, then every change.

    The subscription is in place before the monitor connects, so the snapshot (carried by
    the ServiceAdded events) and the changes come through one queue: nothing is shown twice
    and nothing between the scan and the first change is lost.
    """
    import queue

    from ..victron import ServiceAdded, ServiceRemoved, ValuesChanged
    types = None if args.service is None else {_class(args.service): None}
    inbox: "queue.Queue[Any]" = queue.Queue()
    bound = common.Bound.from_args(args)
    stream = common.RecordStream("jsonl" if args.format == "json" else args.format)
    mon = _monitor(args, service_types=types)
    try:
        mon.subscribe(inbox.put, ServiceAdded, ServiceRemoved, ValuesChanged)
        mon.connect()
        initial = set(mon.services())
        while not bound.expired:
            try:
                # unbounded runs wake once a second only to notice a monitor that closed
                event = inbox.get(timeout=bound.remaining(1.0))
            except queue.Empty:
                if mon.closed:
                    break
                continue
            if isinstance(event, ServiceAdded):
                info = event.service
                if args.service not in (None, info.name):
                    continue
                if info.name not in initial:
                    _note(args, stream, "added", info.name)
                for path, item in sorted(info.values.items()):
                    _show(args, stream, info.name, path, item.value, item.text, bound)
            elif isinstance(event, ServiceRemoved):
                if args.service in (None, event.name):
                    _note(args, stream, "removed", event.name)
            elif isinstance(event, ValuesChanged) and args.service in (None, event.service):
                for path, item in sorted(event.values.items()):
                    _show(args, stream, event.service, path, item.value, item.text, bound)
    finally:  # Ctrl-C goes on to main (exit 130) once the monitor is closed
        mon.close()
    return 0


def _show(args: argparse.Namespace, stream: common.RecordStream, service: str, path: str,
          value: Any, text: str, bound: common.Bound) -> None:
    if bound.expired:  # --count reached inside one event's values
        return
    if args.format == "text":
        print(f"{common.now_iso()} {service:<40} {path:<32} {text}", flush=True)
    else:
        stream.write({"service": service, "path": path, "value": value, "text": text})
    bound.tick()


def _note(args: argparse.Namespace, stream: common.RecordStream, what: str,
          name: str) -> None:
    if args.format == "text":
        print(f"# {common.now_iso()} {what} {name}", flush=True)
    else:
        stream.write({"event": what, "service": name})


# ---------------------------------------------------------------------- sim and demo
def register_sim(sim_subparsers: Any) -> None:
    p = sim_subparsers.add_parser("victron", help="a private dbus-daemon with localsettings "
                                                  "and demo Venus services")
    p.add_argument("--interval", type=float, default=1.0,
                   help="seconds between demo value updates (default 1)")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(handler=_run_sim)


def _run_sim(args: argparse.Namespace) -> int:
    """Until SIGINT, SIGTERM or SIGHUP; then the private dbus-daemon is stopped and its
    directory removed (see ``cli/sim.py``)."""
    from ..victron.sim import VictronSim
    from .sim import hold
    sim = VictronSim(interval=args.interval, seed=args.seed)  # checks the interval

    def start() -> None:
        sim.start()
        print(f"DBUS_SESSION_BUS_ADDRESS={sim.address}", flush=True)
        print(f"services: {', '.join(['com.victronenergy.settings'] + list(sim.services))}",
              flush=True)

    return hold(start, sim.close)


def demo(write: Callable[[str], None], *, duration: float) -> None:
    """A short live session: a simulated bus, our own grid meter, a monitor watching."""
    from ..victron import ValuesChanged, VictronMonitor, VictronService
    from ..victron.sim import VictronSim
    with VictronSim(interval=0.2) as sim:
        write(f"victron: private bus at {sim.address}")
        with VictronMonitor(sim.address) as mon, \
                VictronService("com.victronenergy.grid.demo", sim.address,
                               allow_writes=True) as svc:  # it allocates its instance
            svc.add_mandatory_paths(product_name="pyburnerkit demo meter", device_instance=0)
            svc.add_item("/Ac/Power", 0.0, unit="W")
            svc.connect()
            instance = svc.allocate_device_instance("pyburnerkit_demo", "grid", 40)
            svc.register()
            write(f"victron: published com.victronenergy.grid.demo as device instance {instance}")
            mon.wait_for_service("com.victronenergy.grid.demo")
            end = time.monotonic() + max(0.2, duration)
            n = 0
            for event in mon.events(0.5):
                if isinstance(event, ValuesChanged) and event.service == sim.BATTERY:
                    n += 1
                    svc.set("/Ac/Power", float(100 * n))
                    write(f"victron: battery SoC {mon.get_value(sim.BATTERY, '/Soc')} %, "
                          f"our meter {mon.get_value('com.victronenergy.grid.demo', '/Ac/Power')}")
                if time.monotonic() >= end:
                    break
