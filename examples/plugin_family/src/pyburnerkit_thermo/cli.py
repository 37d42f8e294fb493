"""``pyburnerkit thermo ...``, ``pyburnerkit sim thermo`` and this family's part of
``pyburnerkit demo``; the registry finds the three hooks through :data:`~.family.FAMILY`.

The commands talk to ``--endpoint`` (or ``$PYBURNERKIT_THERMO``): ``host[:port]``,
``thermo://host:port``, or ``sim://`` for the simulator in process. The commands that change
the box (``set-relay``, ``set-limit``) need ``--allow-writes``; without it they are refused
before anything connects (exit code 2, one line on stderr).
"""

from __future__ import annotations

import argparse
import os
import threading
import time
from typing import Any, Callable, List

from pyburnerkit.cli.common import (UsageError, add_format_option, add_option_everywhere, emit,
                                    emit_watch, to_plain)
from pyburnerkit.cli.foreground import serve_in_foreground
from pyburnerkit.errors import WriteNotAllowedError

from .client import ThermoClient
from .models import DEFAULT_PORT, Status
from .sim import ThermoSim

ENDPOINT_ENV = "PYBURNERKIT_THERMO"


def register(subparsers: Any) -> None:
    """Add ``thermo`` and its subcommands to the ``pyburnerkit`` parser."""
    group = subparsers.add_parser("thermo", help="Acme TR-1 thermometer/relay box (plug-in)",
                                  description="Read and switch an Acme TR-1 box over TCP.")
    sub = group.add_subparsers(dest="thermo_command", metavar="SUBCOMMAND")
    sub.required = True
    read = sub.add_parser("read", help="temperature, humidity, relay and limit, once")
    info = sub.add_parser("info", help="model, serial number and firmware")
    watch = sub.add_parser("watch", help="read at an interval, print every change")
    watch.add_argument("--interval", type=float, default=1.0, help="seconds (default 1)")
    watch.add_argument("--count", type=int, default=0,
                       help="stop after N reads (default 0: until Ctrl-C)")
    relay = sub.add_parser("set-relay", help="close (on) or open (off) the relay")
    relay.add_argument("state", choices=["on", "off"])
    limit = sub.add_parser("set-limit", help="set the over-temperature cut-out")
    limit.add_argument("celsius", type=float, help="0..60 °C in steps of 0.5")
    commands = [read, info, watch, relay, limit]
    add_option_everywhere([group, *commands], "--endpoint",
                          default=os.environ.get(ENDPOINT_ENV),
                          help=f"host[:port] (port {DEFAULT_PORT}), thermo://host:port or "
                               f"sim:// (default: ${ENDPOINT_ENV})")
    add_option_everywhere([group, *commands], "--timeout", type=float, default=5.0,
                          help="seconds per reply (default 5)")
    add_option_everywhere([group, relay, limit], "--allow-writes", action="store_true",
                          default=False, help="really send commands that change the box")
    add_format_option([group, *commands])
    for parser, handler in ((read, _read), (info, _info), (watch, _watch),
                            (relay, _set_relay), (limit, _set_limit)):
        parser.set_defaults(handler=handler)


def _client(args: argparse.Namespace, *, writes: bool = False) -> ThermoClient:
    if not args.endpoint:
        raise UsageError(f"give --endpoint HOST[:PORT] (or set {ENDPOINT_ENV}); "
                         "--endpoint sim:// runs the simulator in process")
    return ThermoClient(args.endpoint, allow_writes=writes, timeout=args.timeout,
                        connect_timeout=max(1.0, args.timeout), reconnect=None)


def _refuse_without_writes(args: argparse.Namespace, command: str) -> None:
    """:raises WriteNotAllowedError: no ``--allow-writes`` (before anything connects)."""
    if not args.allow_writes:
        raise WriteNotAllowedError(f"'thermo {command}' changes the box: add --allow-writes "
                                   "to really send it (nothing was sent)")


def _read(args: argparse.Namespace) -> int:
    with _client(args) as box:
        emit(box.read_status(), args.format)
    return 0


def _info(args: argparse.Namespace) -> int:
    with _client(args) as box:
        emit(box.info, args.format)
    return 0


def _watch(args: argparse.Namespace) -> int:
    if not args.interval > 0 or args.count < 0:
        raise UsageError("--interval must be positive and --count not negative")
    with _client(args) as box:
        reads = 0
        last = None
        while args.count == 0 or reads < args.count:
            status = box.read_status()
            reads += 1
            if status != last:
                emit_watch(to_plain(status), args.format)
                last = status
            if args.count == 0 or reads < args.count:
                time.sleep(args.interval)
    return 0


def _set_relay(args: argparse.Namespace) -> int:
    _refuse_without_writes(args, "set-relay")
    with _client(args, writes=True) as box:
        box.set_relay(args.state == "on")
        emit(box.read_status(), args.format)
    return 0


def _set_limit(args: argparse.Namespace) -> int:
    _refuse_without_writes(args, "set-limit")
    with _client(args, writes=True) as box:
        box.set_limit(args.celsius)
        emit(box.read_status(), args.format)
    return 0


# ---------------------------------------------------------------------------------- sim
def register_sim(sim_subparsers: Any) -> None:
    """Add ``pyburnerkit sim thermo``."""
    parser = sim_subparsers.add_parser("thermo", help="simulated Acme TR-1 box (plug-in)")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT,
                        help=f"default {DEFAULT_PORT} (0: any free port)")
    parser.add_argument("--speed", type=float, default=1.0,
                        help="simulated seconds per real second (default 1)")
    parser.add_argument("--temperature", type=float, default=20.0, help="°C at start")
    parser.add_argument("--limit", type=float, default=30.0, help="cut-out °C at start")
    parser.add_argument("--seed", type=int, default=None)
    parser.set_defaults(handler=_sim)


def _sim(args: argparse.Namespace) -> int:
    sim = ThermoSim(temperature_c=args.temperature, limit_c=args.limit, speed=args.speed,
                    seed=args.seed)
    # prints the address line (thermo://127.0.0.1:PORT) first, then serves until Ctrl-C
    serve_in_foreground(sim, args.host, args.port, lambda where: f"thermo://{where}")
    return 0


# ---------------------------------------------------------------------------------- demo
def _line(status: Status) -> str:
    return (f"thermo: {status.temperature_c:5.1f} °C  {status.humidity_pct:3d} %  relay "
            f"{'closed' if status.relay else 'open  '}  limit {status.limit_c:.1f} °C")


def demo(write: Callable[[str], None], *, duration: float) -> None:
    """Simulator on 127.0.0.1, client over real TCP: close the relay and watch the box cut
    out at its limit (or ``duration`` seconds pass)."""
    sim = ThermoSim(temperature_c=24.0, limit_c=30.0, speed=120.0, seed=1).start("127.0.0.1")
    try:
        write(f"thermo: simulated TR-1 on thermo://{sim.host}:{sim.port}")
        with ThermoClient(f"{sim.host}:{sim.port}", allow_writes=True) as box:
            info = box.info
            assert info is not None  # connect() returns once the ID hand-shake cached it
            write(f"thermo: {info.model}, serial {info.serial}, firmware {info.firmware}")
            write(_line(box.read_status()))
            box.set_relay(True)
            write("thermo: relay closed; heating until the box cuts out")
            seen: List[Status] = []
            pause = threading.Event()
            deadline = time.monotonic() + max(0.2, duration)
            while time.monotonic() < deadline:
                status = box.read_status()
                if not seen or status != seen[-1]:
                    write(_line(status))
                seen.append(status)
                if not status.relay:
                    write("thermo: the box opened the relay at its limit by itself")
                    break
                pause.wait(0.1)
    finally:
        sim.close()
