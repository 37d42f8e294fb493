"""``pyburnerkit scale status | tare | watch | timer`` (Skale II over BLE). ``--address sim://`` runs a
simulated Skale inside the command; ``pyburnerkit sim de1`` serves one (on the DE1's bench) to
any pygatt program."""

from __future__ import annotations

import argparse
from typing import Any, Dict

from .common import Bound, RecordStream, add_bound_options, emit, endpoint
from .de1 import add_ble_options, find_address, require_writes


def register(subparsers: Any) -> None:
    group = subparsers.add_parser("scale", help="Atomax Skale II scale (BLE via pygatt)",
                                  description="Read, tare and watch a Skale II.")
    sub = group.add_subparsers(dest="command", metavar="SUBCOMMAND")
    sub.required = True
    status = sub.add_parser("status", help="weight, battery and model once")
    tare = sub.add_parser("tare", help="tare and wait until the scale shows zero (needs "
                                       "--allow-writes)")
    watch = sub.add_parser("watch", help="print weight and flow as it streams")
    add_bound_options([watch], what="records")
    timer = sub.add_parser("timer", help="start, stop or reset the Skale's timer (needs "
                                          "--allow-writes)")
    timer.add_argument("action", choices=["start", "stop", "reset"])
    timer.add_argument("--timer-style", choices=["pyde1", "de1app"], default=None,
                       help="which command bytes: pyDE1's (default) or de1app's; the apps "
                            "disagree")
    from .top import add_top_parser
    top = add_top_parser(sub, "scale")
    top.set_defaults(handler=_top)
    parsers = [group, status, tare, watch, timer, top]
    add_ble_options(parsers, "PYBURNERKIT_SCALE_ADDRESS", "scale")
    timer.set_defaults(handler=_timer)
    status.set_defaults(handler=_status)
    tare.set_defaults(handler=_tare)
    watch.set_defaults(handler=_watch)


def _client(args: argparse.Namespace, allow_writes: bool = False, **kw: Any) -> Any:
    from ..scale.client import SkaleClient
    address = find_address(args, "Skale", endpoint(args, "address"))
    return SkaleClient(address, backend=args.backend, hci_device=args.hci,
                       serial_port=args.serial_port, send_delay=args.send_delay,
                       timeout=args.timeout, connect_timeout=max(args.timeout, 5.0),
                       time_scale=args.time_scale, allow_writes=allow_writes, **kw)


def _timer(args: argparse.Namespace) -> int:
    require_writes(args, f"timer {args.action}", device="scale")
    with _client(args, allow_writes=True, timer_style=args.timer_style).connect() as client:
        {"start": client.start_timer, "stop": client.stop_timer,
         "reset": client.reset_timer}[args.action]()
        emit({"timer": args.action, "timer_style": client.timer_style}, args.format)
    return 0


def _record(client: Any) -> Dict[str, Any]:
    info = client.info
    return {"address": client.address, "weight_g": client.weight,
            "model": info.model if info else None, "battery": info.battery if info else None,
            "firmware": info.firmware if info else None}


def _status(args: argparse.Namespace) -> int:
    with _client(args).connect() as client:
        client.wait_for(lambda c: c.weight is not None)
        emit(_record(client), args.format)
    return 0


def _tare(args: argparse.Namespace) -> int:
    require_writes(args, "tare", device="scale")
    with _client(args, allow_writes=True).connect() as client:
        client.tare()
        emit({"tared": True, "weight_g": client.weight}, args.format)
    return 0


def _watch(args: argparse.Namespace) -> int:
    from ..scale.models import ButtonPressed, WeightReading
    bound = Bound.from_args(args)
    stream = RecordStream(args.format)
    with _client(args).connect() as client:
        for event in bound.iterate(client.events(args.duration, WeightReading,
                                                 ButtonPressed)):
            if isinstance(event, ButtonPressed):
                record: Dict[str, Any] = {"event": "button", "button": event.button}
            else:
                flow = event.average_flow_g_s
                record = {"event": "weight", "weight_g": event.weight_g,
                          "flow_g_s": None if flow is None else round(flow, 2)}
            stream.write(record, event.timestamp)
            bound.tick()
    return 0


def _top(args: argparse.Namespace) -> int:
    from .top import run_top
    return run_top(args, "scale", lambda: _client(args).connect(),
                   endpoint(args, "address") or "Skale")
