"""``pyburnerkit mate3 ...`` (read, devices, write, dump) and ``pyburnerkit sim mate3``.

What mate3 users know, without its traps: global options work before or after the subcommand,
``--set`` values are parsed by the field's type (never evaluated), ``dump`` really writes the
file, and ``--dump FILE`` works from a register dump with no device.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from typing import TYPE_CHECKING, Any, Callable, Dict, List

from ..errors import ConfigurationError, WriteNotAllowedError
from .common import (EXIT_USAGE, UsageError, add_option_everywhere, emit,
                     parse_assignment)
from .foreground import serve_in_foreground

if TYPE_CHECKING:
    from ..mate3.client import Mate3Client
    from ..mate3.models import Mate3System

FORMATS = ("text", "json", "jsonl", "csv")
HOST_ENV = "PYBURNERKIT_MATE3_HOST"


def register(subparsers: Any) -> None:
    group = subparsers.add_parser(
        "mate3", help="OutBack Mate3/Mate3s over Modbus TCP (SunSpec)",
        description="Read the whole OutBack system through a Mate3s, list its devices, change "
                    "set points, or save a register dump.")
    sub = group.add_subparsers(dest="command", metavar="SUBCOMMAND")
    sub.required = True
    read = sub.add_parser("read", help="read every device (or only --field PATH ...)")
    read.add_argument("--field", action="append", default=None, metavar="PATH",
                      help="read only this field, e.g. charge_controllers[3].battery_voltage "
                           "(repeatable)")
    devices = sub.add_parser("devices", help="list the devices found, with address and port")
    write = sub.add_parser("write", help="write fields: --set PATH=VALUE (needs --allow-writes)")
    write.add_argument("--set", dest="assignments", action="append", required=True,
                       metavar="PATH=VALUE",
                       help="e.g. charge_controllers[3].config.absorb_volts=57.6 or "
                            "mate3.system_name=cabin (repeatable; values are parsed by the "
                            "field's type, never evaluated)")
    write.add_argument("--allow-writes", action="store_true", default=False,
                       help="really write (set points and commands can damage equipment)")
    write.add_argument("--dry-run", action="store_true", default=False,
                       help="check every value and print the registers that would be written, "
                            "without writing anything (needs no --allow-writes)")
    write.add_argument("--expert", action="store_true", default=False,
                       help="also write fields that have no documented limit (only their "
                            "register range is checked); documented limits still apply")
    dump = sub.add_parser("dump", help="save every register of the map to a JSON file")
    dump.add_argument("file", metavar="FILE", help="output file ({\"address\": value})")
    parsers = [group, read, devices, write, dump]
    add_option_everywhere(parsers, "--host", default=None,
                          help=f"Mate3 address or host:port (default: ${HOST_ENV})")
    add_option_everywhere(parsers, "--port", type=int, default=None,
                          help="Modbus TCP port (default 502)")
    add_option_everywhere(parsers, "--timeout", type=float, default=15.0,
                          help="seconds to wait for the Mate3 (default 15)")
    add_option_everywhere(parsers, "--unit-id", type=int, default=0,
                          help="Modbus unit id (default 0)")
    add_option_everywhere(parsers, "--min-poll-interval", type=float, default=1.0,
                          metavar="SECONDS",
                          help="least time between two operations, to spare the Mate3s' "
                               "Modbus interface (default 1)")
    add_option_everywhere(parsers, "--format", choices=list(FORMATS), default="text",
                          help="output format (default: text)")
    for parser in (read, devices):
        parser.add_argument("--dump", metavar="FILE", default=None,
                            help="read from this register dump instead of a device")
    for parser, handler in ((read, _read), (devices, _devices), (write, _write),
                            (dump, _dump)):
        parser.set_defaults(handler=handler)


def register_sim(subparsers: Any) -> None:
    parser = subparsers.add_parser("mate3", help="simulated Mate3s (Modbus TCP)")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--port", type=int, default=5020,
                        help="port (default 5020; 502 needs privileges; 0 picks a free one)")
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--dump", metavar="FILE", default=None,
                        help="serve this register dump (default: the bundled chinezbrun "
                             "Mate3s)")
    source.add_argument("--system", metavar="DESCRIPTION", default=None,
                        help='serve a generated system, e.g. "cc:3,cc:4,fndc:5,gs-single:1"')
    parser.add_argument("--live", action="store_true",
                        help="let PV power follow a day curve and the battery respond")
    parser.add_argument("--speed", type=float, default=1.0,
                        help="simulated seconds per real second with --live")
    parser.add_argument("--single-client", action="store_true",
                        help="accept one Modbus client at a time, as a Mate3s does")
    parser.add_argument("--seed", type=int, default=None)
    parser.set_defaults(handler=_sim)


# ------------------------------------------------------------------------------ helpers
def _client(args: argparse.Namespace, *, allow_writes: bool = False) -> "Mate3Client":
    from ..mate3.client import Mate3Client
    dump = getattr(args, "dump", None)
    if dump:
        if args.host:  # an explicit --host; $PYBURNERKIT_MATE3_HOST yields to --dump
            raise UsageError("give either --host or --dump, not both")
        return Mate3Client(f"replay:{dump}", timeout=args.timeout)
    host = args.host or os.environ.get(HOST_ENV)
    if not host:
        raise UsageError(f"no Mate3 given: use --host HOST (or set ${HOST_ENV}), or --dump FILE")
    # --port is Mate3Client's port=: used when --host names none, refused when it disagrees
    return Mate3Client(host, port=args.port, timeout=args.timeout,
                       connect_timeout=args.timeout, unit_id=args.unit_id,
                       min_poll_interval=args.min_poll_interval, allow_writes=allow_writes)


def _system(client: "Mate3Client") -> "Mate3System":
    system = client.system
    assert system is not None  # a connected client has read the whole system once
    return system


def field_record(path: str, fv: Any) -> Dict[str, Any]:
    """One field as plain data: the scaled value (enum label, flag names), raw value, etc."""
    value = fv.value
    record: Dict[str, Any] = {"path": path}
    if hasattr(value, "label"):
        record["value"] = value.label
    elif hasattr(value, "names"):
        record["value"] = int(value)
        record["flags"] = list(value.names)
    else:
        record["value"] = value
    record.update(raw=int(fv.raw) if isinstance(fv.raw, int) else fv.raw, units=fv.units,
                  scale_factor=fv.scale_factor, implemented=fv.implemented,
                  address=fv.address, read_at=fv.read_at)
    return record


def _block_record(path: str, dev: Any) -> Dict[str, Any]:
    return {"path": path, "name": dev.name, "did": dev.did, "address": dev.address,
            "port": dev.port,
            "values": {name: {k: v for k, v in field_record(f"{path}.{name}", fv).items()
                              if k != "path"} for name, fv in dev.values.items()}}


def _show(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:g}"
    if hasattr(value, "names"):  # Flags: the number and the bits it means
        return f"0x{int(value):04x} ({value})" if int(value) else "0"
    return str(value)


def _show_raw(raw: Any) -> str:
    return str(int(raw)) if isinstance(raw, int) else _show(raw)


def _text_block(path: str, dev: Any) -> str:
    where = f"port {dev.port}, " if dev.port is not None else ""
    lines = [f"{path}: {dev.name} ({where}DID {dev.did}, address {dev.address})"]
    for name, fv in dev.values.items():
        impl = "Y" if fv.implemented else "N"
        value = f"{_show(fv.value)} {fv.units}".rstrip() if fv.implemented else "-"
        lines.append(f"  {name:<48} {impl} {_show(fv.scale_factor):>4} {_show_raw(fv.raw):>12}"
                     f"  {value}")
    return "\n".join(lines)


# ------------------------------------------------------------------------------ handlers
def _read(args: argparse.Namespace) -> int:
    with _client(args) as client:
        if args.field:
            got = client.read(*args.field)
            records = [field_record(path, fv) for path, fv in got.items()]
            if args.format == "text":
                for path, fv in got.items():
                    shown = f"{_show(fv.value)} {fv.units}".rstrip() if fv.implemented \
                        else "not implemented"
                    sys.stdout.write(f"{path} = {shown}\n")
                sys.stdout.flush()
            else:
                _emit_records(records, args.format)
            return 0
        blocks = list(_system(client).blocks())
        if args.format == "text":
            sys.stdout.write("\n\n".join(_text_block(p, d) for p, d in blocks) + "\n")
            sys.stdout.flush()
        elif args.format == "json":
            emit([_block_record(p, d) for p, d in blocks], "json")
        else:
            _emit_records([field_record(f"{p}.{n}", fv) for p, d in blocks
                           for n, fv in d.values.items()], args.format)
    return 0


def _emit_records(records: List[Dict[str, Any]], fmt: str) -> None:
    if fmt == "jsonl":
        for record in records:
            emit(record, "jsonl")
    else:
        emit(records, fmt)


def _devices(args: argparse.Namespace) -> int:
    with _client(args) as client:
        rows = []
        for path, dev in _system(client).devices():
            rows.append({"path": path, "name": dev.name, "did": dev.did, "address": dev.address,
                         "port": dev.port,
                         "config_address": dev.config.address if dev.config else None})
        if args.format == "text":
            sys.stdout.write(f"{'path':<36} {'name':<36} {'address':>7} {'port':>4}  config\n")
            for row in rows:
                sys.stdout.write(f"{row['path']:<36} {row['name']:<36} {row['address']:>7} "
                                 f"{_show(row['port']):>4}  {_show(row['config_address'])}\n")
            for note in client.warnings:
                sys.stdout.write(f"note: {note}\n")
            sys.stdout.flush()
        elif args.format == "jsonl":
            _emit_records(rows, "jsonl")
        else:
            emit(rows, args.format)
    return 0


def _write(args: argparse.Namespace) -> int:
    """``mate3 write --set PATH=VALUE ...``: every value is checked against its field's
    documented limit (the library's own check) before the first write; ``--dry-run`` prints
    what would be written and writes nothing. If a write times out, the device may still apply
    the write later; it is never retried automatically."""
    from ..mate3 import codec
    assignments = [parse_assignment(text) for text in args.assignments]
    for path, _ in assignments:
        codec.split_path(path)  # a bad path is a usage error before any connection
    if not args.allow_writes and not args.dry_run:
        # Exit 2 with one line: refusing is a usage matter, not a device failure.
        error = WriteNotAllowedError(
            "writes change set points and can damage equipment: add --allow-writes to "
            "really write (or --dry-run to see what would be written) "
            + ", ".join(path for path, _ in assignments))
        sys.stderr.write(f"pyburnerkit: {type(error).__name__}: {error}\n")
        return EXIT_USAGE
    with _client(args, allow_writes=not args.dry_run) as client:
        typed = [(path, codec.parse_value(client.field_def(path), text))
                 for path, text in assignments]
        for path, value in typed:  # refuse every bad value before the first write
            client.validate_write(path, value, expert=args.expert)
        if args.dry_run:
            plans = [client.plan_write(path, value, expert=args.expert) for path, value in typed]
            _show_plans(plans, args.format)
            return 0
        records = []
        for path, value in typed:
            back = client.write(path, value, expert=args.expert)
            if back is None:
                shown = codec.HIDDEN if codec.is_secret(path) else value
                records.append({"path": path, "value": shown, "read_back": None,
                                "note": "write-only command field: sent, cannot be read back"})
            else:
                records.append(dict(field_record(path, back), written=value))
        if args.format == "text":
            for rec in records:
                shown = "sent (write-only)" if rec.get("read_back", 1) is None \
                    else f"{_show(rec['value'])} {rec['units']}".rstrip()
                sys.stdout.write(f"{rec['path']} = {shown}\n")
            sys.stdout.flush()
        else:
            _emit_records(records, args.format)
    return 0


def _show_plans(plans: List[Any], fmt: str) -> None:
    """Print what ``--dry-run`` would write: path, value, address, registers, limit."""
    records = [{"path": p.path, "value": p.value, "units": p.units, "address": p.address,
                "registers": None if p.secret else list(p.registers),
                "scale_factor": p.scale_factor, "limit": p.limit, "written": False}
               for p in plans]
    if fmt != "text":
        _emit_records(records, fmt)
        return
    for rec in records:
        regs = "<hidden>" if rec["registers"] is None else str(rec["registers"])
        value = f"{_show(rec['value'])} {rec['units']}".rstrip()
        sys.stdout.write(f"would write {rec['path']} = {value}: registers {rec['address']}.. "
                         f"{regs} (limit: {rec['limit']})\n")
    sys.stdout.write(f"dry run: nothing was written ({len(records)} field(s) checked)\n")
    sys.stdout.flush()


def _dump(args: argparse.Namespace) -> int:
    from ..mate3 import codec
    with _client(args) as client:
        regs = client.read_dump()
    try:
        codec.write_dump(args.file, regs)
    except OSError as exc:
        raise ConfigurationError(f"cannot write {args.file!r}: {exc}") from exc
    sys.stderr.write(f"wrote {len(regs)} registers ({min(regs)}..{max(regs)}) to {args.file}; "
                     f"it may contain passwords as the Mate3 shows them\n")
    if args.format != "text":
        emit({"file": args.file, "registers": len(regs), "first": min(regs),
              "last": max(regs)}, args.format)
    return 0


def _sim(args: argparse.Namespace) -> int:
    from ..mate3.sim import Mate3Sim
    sim = Mate3Sim(dump=args.dump, description=args.system, live=args.live, speed=args.speed,
                   single_client=args.single_client, seed=args.seed)
    serve_in_foreground(sim, args.host, args.port, lambda where: f"modbus://{where}")
    return 0


def demo(write: Callable[[str], None], *, duration: float = 6.0) -> None:
    """A live session against a simulated Mate3s on loopback, over real Modbus TCP."""
    from ..mate3.client import Mate3Client
    from ..mate3.models import DeviceMovedError
    from ..mate3.sim import Mate3Sim

    morning = time.mktime(time.localtime()[:3] + (9, 30, 0, 0, 0, -1))  # PV ramping up
    sim = Mate3Sim(live=True, speed=600.0, live_tick=0.1, seed=7,
                   clock=lambda: morning).start("127.0.0.1", 0)
    try:
        started = time.monotonic()
        with Mate3Client(sim.endpoint, min_poll_interval=0.2, allow_writes=True,
                         timeout=10.0) as mate3:
            system = mate3.system
            assert system is not None  # connect() returns only after the first full read
            common = system.common
            assert common is not None  # the simulator's map always has the common model
            write(f"mate3: connected to modbus://{sim.endpoint} and walked the SunSpec map in "
                  f"{time.monotonic() - started:.3f} s ({mate3.stats['requests']} requests); "
                  f"{common.model.value} firmware {common.version.value}")
            for path, dev in system.devices():
                where = f" on HUB port {dev.port}" if dev.port is not None else ""
                write(f"mate3:   {path}: {dev.name}{where}")
            before = dict(mate3.stats)
            mate3.read_all()
            write(f"mate3: full read in {mate3.stats['requests'] - before['requests']} requests "
                  f"({mate3.stats['registers'] - before['registers']} registers, at most 100 "
                  f"per request, spaced {mate3.min_poll_interval:g} s from the last operation)")
            deadline = time.monotonic() + max(0.5, duration / 2)
            while time.monotonic() < deadline:
                got = mate3.read("charge_controllers[3].watts", "fndcs[5].state_of_charge",
                                 "fndcs[5].battery_voltage")
                write("mate3:   PV {} W, battery {} V, SoC {} %".format(
                    *(got[p].value for p in ("charge_controllers[3].watts",
                                             "fndcs[5].battery_voltage",
                                             "fndcs[5].state_of_charge"))))
            back = mate3.write("charge_controllers[3].config.absorb_volts", 57.6)
            write(f"mate3: absorb set point written and read back: {back}")
            sim.swap_ports(3, 4)
            try:
                mate3.write("charge_controllers[3].config.absorb_volts", 57.2)
            except DeviceMovedError as exc:
                write(f"mate3: after re-plugging the controllers the write is refused: "
                      f"{str(exc).split(';')[0]}")
            system = mate3.read_all()
            write(f"mate3: re-read: charge_controllers[3] now at address "
                  f"{system.charge_controllers[3].address}")
    finally:
        sim.close()
