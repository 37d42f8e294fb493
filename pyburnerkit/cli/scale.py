"""``pyburnerkit scale status | tare | watch`` (Skale II over BLE). ``--address sim://`` runs a
simulated Skale inside the command; ``pyburnerkit sim de1`` serves one (on the DE1's bench) to
any pygatt program."""

from __future__ import annotations

import argparse
from typing import Any, Dict

from .common import emit, emit_watch, until
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
    watch.add_argument("--duration", type=float, default=None,
                       help="stop after this many seconds (default: until Ctrl-C)")
    parsers = [group, status, tare, watch]
    add_ble_options(parsers, "PYBURNERKIT_SCALE_ADDRESS", "scale")
    status.set_defaults(handler=_status)
    tare.set_defaults(handler=_tare)
    watch.set_defaults(handler=_watch)


def _client(args: argparse.Namespace, allow_writes: bool = False) -> Any:
    from ..scale.client import SkaleClient
    address = find_address(args, "Skale", args.address)
    return SkaleClient(address, backend=args.backend, hci_device=args.hci,
                       serial_port=args.serial_port, send_delay=args.send_delay,
                       timeout=args.timeout, connect_timeout=max(args.timeout, 5.0),
                       time_scale=args.time_scale, allow_writes=allow_writes)


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
    with _client(args).connect() as client:
        for event in until(client.events(args.duration, WeightReading, ButtonPressed),
                           args.duration):
            if isinstance(event, ButtonPressed):
                record: Dict[str, Any] = {"event": "button", "button": event.button}
            else:
                flow = event.average_flow_g_s
                record = {"event": "weight", "weight_g": event.weight_g,
                          "flow_g_s": None if flow is None else round(flow, 2)}
            emit_watch(record, args.format)
    return 0
