"""``pyburnerkit mate3 ...`` (read, devices, write, dump) and ``pyburnerkit sim mate3``.

What mate3 users know, without its traps: global options work before or after the subcommand,
``--set`` values are parsed by the field's type (never evaluated), ``dump`` really writes the
file, and ``--dump FILE`` works from a register dump with no device.
"""

from __future__ import annotations

import argparse
import json
import os
import threading
import sys
import time
from typing import TYPE_CHECKING, Any, Callable, Dict, List, Tuple

from ..errors import ConfigurationError, WriteNotAllowedError
from .common import (EXIT_INTERRUPTED, EXIT_USAGE, UsageError, add_option_everywhere,
                     add_writes_option, emit, parse_assignment, show_number, to_plain)
from .signals import SignalWait

if TYPE_CHECKING:
    from ..mate3.client import Mate3Client
    from ..mate3.models import Mate3System

FORMATS = ("text", "json", "prettyjson", "jsonl", "csv")
HOST_ENV = "PYBURNERKIT_MATE3_HOST"
DATABASE_ENV = "PYBURNERKIT_MATE3_DATABASE_URL"


def register(subparsers: Any) -> None:
    group = subparsers.add_parser(
        "mate3", help="OutBack Mate3/Mate3s over Modbus TCP (SunSpec)",
        description="Read the whole OutBack system through a Mate3s, list its devices, change "
                    "set points, save a register dump, read or write raw registers, or log to "
                    "PostgreSQL (mate3_pg). With no subcommand it reads, as mate3 did: "
                    "pyburnerkit mate3 -H HOST.")
    sub = group.add_subparsers(dest="command", metavar="SUBCOMMAND")
    read = sub.add_parser("read", help="read every device (or only --field PATH ...); the "
                                       "default")
    devices = sub.add_parser("devices", help="list the devices found, with address and port")
    write = sub.add_parser("write", help="write fields: --set PATH=VALUE (needs --allow-writes)")
    write.add_argument("--set", "-s", dest="assignments", action="append", default=None,
                       metavar="PATH=VALUE",
                       help="e.g. charge_controllers[3].config.absorb_volts=57.6 or "
                            "mate3.system_name=cabin (repeatable; values are parsed by the "
                            "field's type, never evaluated). mate3 0.4's names "
                            "(charge_controller_configuration.absorb_volts=576) take raw "
                            "register integers, as mate3_write did")
    write.add_argument("--dry-run", action="store_true", default=False,
                       help="check every value and print the registers that would be written, "
                            "without writing anything (needs no --allow-writes)")
    write.add_argument("--expert", action="store_true", default=False,
                       help="also write fields that have no documented limit (only their "
                            "register range is checked); documented limits still apply")
    dump = sub.add_parser("dump", help="save every register of the map to a JSON file")
    dump.add_argument("file", metavar="FILE", help="output file ({\"address\": value})")
    registers = sub.add_parser("registers", help="raw holding registers, for experts")
    reg_sub = registers.add_subparsers(dest="reg_command", metavar="ACTION")
    reg_sub.required = True
    reg_read = reg_sub.add_parser("read", help="read COUNT registers from ADDRESS (FC3)")
    reg_read.add_argument("address", type=_register_int, metavar="ADDRESS",
                          help="PDU address, e.g. 40000 (0x9c40 works too)")
    reg_read.add_argument("count", type=_register_int, nargs="?", default=1, metavar="COUNT",
                          help="how many registers (default 1, at most 100)")
    reg_write = reg_sub.add_parser("write", help="write VALUE... from ADDRESS (FC16; needs "
                                                 "--allow-writes)")
    reg_write.add_argument("address", type=_register_int, metavar="ADDRESS")
    reg_write.add_argument("values", type=_register_int, nargs="+", metavar="VALUE",
                           help="raw register values 0..65535")
    reg_write.add_argument("--expert", action="store_true", default=False,
                           help="also write known fields that have no documented limit; "
                                "documented limits still apply")
    pg = sub.add_parser(
        "pg", help="log to PostgreSQL with mate3_pg's YAML definitions (wide tables)",
        description="Poll the Mate3 every --interval seconds and insert one row per table of "
                    "a mate3_pg definitions file (tables: {name: [{port, device, field, "
                    "db_column}]}). mate3 0.4 and 0.6 device and field names both work; each "
                    "column only ever gets the value of the device it names on its port.")
    pg.add_argument("config", nargs="?", default=None, metavar="CONFIG.yaml",
                    help="mate3_pg definitions file")
    pg.add_argument("--definitions", default=None, metavar="FILE",
                    help="the same, as mate3_pg spelled it")
    pg.add_argument("--interval", "-i", type=float, default=5.0, metavar="SECONDS",
                    help="polling interval (default 5)")
    pg.add_argument("--database-url", default=None, metavar="URL",
                    help=f"PostgreSQL URL (default ${DATABASE_ENV}, else "
                         f"postgres://postgres@localhost/postgres)")
    pg.add_argument("--hypertables", action="store_true", default=False,
                    help="make the tables TimescaleDB hypertables on timestamp")
    pg.add_argument("--quiet", "-q", action="store_true", default=False,
                    help="no status lines; errors are still shown")
    pg.add_argument("-v", "--verbose", action="count", default=argparse.SUPPRESS,
                    help="log to stderr (-v info, -vv debug)")
    pg.add_argument("--debug", dest="verbose", action="store_const", const=2,
                    default=argparse.SUPPRESS, help="debug logging (mate3_pg's option)")
    pg.add_argument("--count", type=int, default=None, metavar="N",
                    help="stop after N readings (default: until Ctrl-C)")
    pg.add_argument("--duration", type=float, default=None, metavar="SECONDS",
                    help="stop after this many seconds (default: until Ctrl-C)")
    from .top import add_top_parser
    top = add_top_parser(sub, "mate3")
    top.set_defaults(handler=_top)
    parsers = [group, read, devices, write, dump, reg_read, reg_write, pg, top]
    add_writes_option(parsers, help="really write (write, registers write): set points, "
                                    "commands and raw registers can damage equipment; every "
                                    "value is still checked against its field's limit")
    add_option_everywhere(parsers, "--host", "-H", default=None,
                          help=f"Mate3 address or host:port (default: ${HOST_ENV})")
    add_option_everywhere(parsers, "--port", "-p", type=int, default=None,
                          help="Modbus TCP port (default 502)")
    add_option_everywhere(parsers, "--timeout", type=float, default=15.0,
                          help="seconds to wait for the Mate3 (default 15)")
    add_option_everywhere(parsers, "--unit-id", type=int, default=0,
                          help="Modbus unit id (default 0)")
    add_option_everywhere(parsers, "--min-poll-interval", type=float, default=1.0,
                          metavar="SECONDS",
                          help="least time between two operations, to spare the Mate3s' "
                               "Modbus interface (default 1)")
    add_option_everywhere(parsers, "--format", "-f", choices=list(FORMATS), default="text",
                          help="output format (default: text; json is indented by 2, "
                               "prettyjson by 4, as mate3's)")
    add_option_everywhere([group, read, devices, write], "--hub-port", "-P", type=int,
                          default=None, metavar="N",
                          help="the HUB port for mate3's DEVICE.FIELD names when there are "
                               "several devices of that type")
    add_option_everywhere([group, write], "--list-fields", action="store_true", default=False,
                          help="list the devices found and every writable field, with its "
                               "limit and mate3's name for it, and exit")
    add_option_everywhere([group, read], "--field", action="append", default=None,
                          metavar="PATH",
                          help="read only this field, e.g. charge_controllers[3].battery_"
                               "voltage or mate3's charge_controller.battery_voltage "
                               "(repeatable)")
    add_option_everywhere([group, read, devices], "--dump", metavar="FILE", default=None,
                          help="read from this register dump instead of a device")
    group.set_defaults(handler=_default, assignments=None)
    for parser, handler in ((read, _read), (devices, _devices), (write, _write),
                            (dump, _dump), (reg_read, _registers_read),
                            (reg_write, _registers_write), (pg, _pg)):
        parser.set_defaults(handler=handler)


def _register_int(text: str) -> int:
    try:
        return int(text, 0)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number (decimal or 0x...), "
                                         f"got {text!r}") from None


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
def _emit(value: Any, fmt: str) -> None:
    """``emit`` plus mate3's ``prettyjson`` (JSON indented by 4)."""
    if fmt == "prettyjson":
        sys.stdout.write(json.dumps(to_plain(value), indent=4) + "\n")
        sys.stdout.flush()
    else:
        emit(value, fmt)


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
        return show_number(value)
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
def _resolve(system: "Mate3System", name: str, hub_port: Any) -> Tuple[str, bool]:
    """A field name from the command line as a path of this system, and whether its value
    is a raw register integer (mate3 0.4's DEVICE.FIELD names, as mate3_write took them)."""
    from ..mate3 import codec
    from ..mate3.compat import Device, resolve_path
    path = resolve_path(system, name, hub_port)
    owner = codec.split_path(name)[0] if path != name.strip() else ""
    return path, owner in Device.__members__ and owner not in ("mate3",)


def _default(args: argparse.Namespace) -> int:
    """``pyburnerkit mate3 -H HOST``: read everything, as ``mate3 -H HOST`` did."""
    if args.list_fields:
        return _list_fields(args)
    return _read(args)


def _read(args: argparse.Namespace) -> int:
    with _client(args) as client:
        if args.field:
            system = _system(client)
            paths = [_resolve(system, name, getattr(args, "hub_port", None))[0]
                     for name in args.field]
            got = client.read(*paths)
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
        elif args.format in ("json", "prettyjson"):
            _emit([_block_record(p, d) for p, d in blocks], args.format)
        else:
            _emit_records([field_record(f"{p}.{n}", fv) for p, d in blocks
                           for n, fv in d.values.items()], args.format)
    return 0


def _list_fields(args: argparse.Namespace) -> int:
    """``--list-fields`` (mate3_write's): the devices found with their HUB ports, then every
    writable field present, with its unit, limit and mate3 0.4 name."""
    from ..mate3 import codec, limits
    from ..mate3.client import _cached_nominal
    from ..mate3.compat import Device
    with _client(args) as client:
        system = _system(client)
        nominal = _cached_nominal(system)
        rows: Dict[Tuple[int, str], Dict[str, Any]] = {}
        for path, dev in system.blocks():
            bdef = codec.block_defs().get(dev.did)
            if bdef is None:
                continue
            for fdef in codec.fields_in_block(bdef, dev.length):
                if not fdef.mode.writable:
                    continue
                row = rows.setdefault((dev.did, fdef.name), {
                    "field": fdef.name, "mode": fdef.mode.value, "units": fdef.units,
                    "mate3_name": f"{Device(dev.did).name}.{fdef.name}"
                    if dev.did in {d.value for d in Device} else None,
                    "ports": [], "paths": [], "description": fdef.description,
                    "limit": limits.describe(fdef, nominal=nominal)})
                row["paths"].append(f"{path}.{fdef.name}")
                if dev.port is not None:
                    row["ports"].append(dev.port)
        devices = [{"path": p, "name": d.name, "port": d.port} for p, d in system.devices()]
        if args.format == "text":
            sys.stdout.write("devices:\n")
            for dev_row in devices:
                port = dev_row["port"]
                where = f"HUB port {port}" if port is not None else "no HUB port"
                sys.stdout.write(f"  {dev_row['path']:<36} {dev_row['name']} ({where})\n")
            sys.stdout.write("writable fields:\n")
            for row in rows.values():
                ports = ",".join(str(p) for p in row["ports"]) or "-"
                unit = f" [{row['units']}]" if row["units"] else ""
                sys.stdout.write(f"  {row['paths'][0]}{unit} ({row['mode']}; mate3: "
                                 f"{row['mate3_name']}; ports {ports})\n"
                                 f"      {row['description']}\n      limit: {row['limit']}\n")
            sys.stdout.flush()
        elif args.format == "jsonl":
            _emit_records(list(rows.values()), "jsonl")
        else:
            _emit({"devices": devices, "fields": list(rows.values())} if args.format != "csv"
                  else list(rows.values()), args.format)
    return 0


def _emit_records(records: List[Dict[str, Any]], fmt: str) -> None:
    if fmt == "jsonl":
        for record in records:
            _emit(record, "jsonl")
    else:
        _emit(records, fmt)


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
            _emit(rows, args.format)
    return 0


def _write(args: argparse.Namespace) -> int:
    """``mate3 write --set PATH=VALUE ...``: every value is checked against its field's
    documented limit (the library's own check) before the first write; ``--dry-run`` prints
    what would be written and writes nothing. If a write times out, the device may still apply
    the write later; it is never retried automatically."""
    from ..mate3 import codec
    from ..mate3.compat import raw_to_scaled
    if args.list_fields:
        return _list_fields(args)
    if not args.assignments:
        raise UsageError("name what to write: --set PATH=VALUE (or --list-fields)")
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
        system = _system(client)
        typed = []
        for name, text in assignments:
            path, raw = _resolve(system, name, args.hub_port)
            value = codec.parse_value(client.field_def(path), text)
            if raw:  # mate3_write's raw register integers (330 = 33.0 V)
                value = raw_to_scaled(system, path, value)
            typed.append((path, value))
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
    from .progress import Progress
    with _client(args) as client:
        layout = getattr(client, "layout", None)
        total = (layout.last_address - layout.base + 1) if layout is not None else None
        # read_dump is one blocking read of the whole map (at most 100 registers a request,
        # spaced --min-poll-interval apart): the display says what it waits for, and how
        # it ended (an interrupted dump says so; nothing is written then)
        with Progress("mate3 dump", total, unit="registers") as progress:
            regs = client.read_dump()
            progress.update(len(regs))
    try:
        codec.write_dump(args.file, regs)
    except OSError as exc:
        raise ConfigurationError(f"cannot write {args.file!r}: {exc}") from exc
    sys.stderr.write(f"wrote {len(regs)} registers ({min(regs)}..{max(regs)}) to {args.file}; "
                     f"it may contain passwords as the Mate3 shows them\n")
    if args.format != "text":
        _emit({"file": args.file, "registers": len(regs), "first": min(regs),
              "last": max(regs)}, args.format)
    return 0


def _top(args: argparse.Namespace) -> int:
    from .top import run_top
    host = args.host or os.environ.get(HOST_ENV) or f"replay:{getattr(args, 'dump', '')}"
    return run_top(args, "mate3", lambda: _client(args), host)


def _registers_read(args: argparse.Namespace) -> int:
    """``mate3 registers read ADDRESS [COUNT]``: one FC3 request, nothing decoded."""
    with _client(args) as client:
        values = client.read_registers(args.address, args.count)
    if args.format == "text":
        for offset, value in enumerate(values):
            sys.stdout.write(f"{args.address + offset} = {value} (0x{value:04x})\n")
        sys.stdout.flush()
    elif args.format in ("jsonl", "csv"):
        rows = [{"address": args.address + i, "value": v} for i, v in enumerate(values)]
        _emit_records(rows, args.format)
    else:
        _emit({"address": args.address, "count": len(values), "values": values}, args.format)
    return 0


def _registers_write(args: argparse.Namespace) -> int:
    """``mate3 registers write ADDRESS VALUE... --allow-writes [--expert]``: one FC16
    request. Refused without --allow-writes before anything is opened; every known field the
    registers cover is checked as ``write --set`` checks it (see
    :meth:`~pyburnerkit.mate3.Mate3Client.write_registers`)."""
    if not args.allow_writes:
        error = WriteNotAllowedError(
            f"raw register writes can damage equipment: add --allow-writes to really write "
            f"{len(args.values)} register(s) at {args.address}")
        sys.stderr.write(f"pyburnerkit: {type(error).__name__}: {error}\n")
        return EXIT_USAGE
    with _client(args, allow_writes=True) as client:
        client.write_registers(args.address, args.values, expert=args.expert)
        back = client.read_registers(args.address, len(args.values))
    record = {"address": args.address, "written": list(args.values), "read_back": back}
    if args.format == "text":
        note = "" if back == list(args.values) else " (the Mate3 shows other values: it did " \
                                                    "not take them all)"
        sys.stdout.write(f"wrote {args.address}: {list(args.values)}; read back {back}{note}\n")
        sys.stdout.flush()
    else:
        _emit(record, args.format if args.format != "csv" else "json")
    return 0


def _load_yaml(path: str) -> Any:
    """A mate3_pg definitions file, read with PyYAML (the ``postgres`` extra)."""
    try:
        with open(path, encoding="utf-8") as fh:
            text = fh.read()
    except OSError as exc:
        raise ConfigurationError(f"definitions file {path!r} cannot be read: "
                                 f"{exc.strerror or exc}") from None
    from ..recorder.sinks.postgres import load_yaml
    return load_yaml(text, path)


def _pg(args: argparse.Namespace) -> int:
    """``mate3 pg CONFIG.yaml``: mate3_pg's loop. Exit 0 after SIGTERM, --count readings or
    --duration seconds; 130 after Ctrl-C (once everything is closed and the summary said
    what was written); 1 when the database fails; 2 for a bad file or option."""
    import signal

    from ..mate3.pg import DEFAULT_DATABASE_URL, Mate3PG, parse_definitions
    if args.config and args.definitions and args.config != args.definitions:
        raise UsageError("give the definitions file once (CONFIG.yaml or --definitions)")
    source = args.config or args.definitions
    if not source:
        raise UsageError("name the mate3_pg definitions file: pyburnerkit mate3 pg CONFIG.yaml")
    if args.count is not None and args.count < 1:
        raise UsageError(f"--count must be at least 1, got {args.count}")
    if args.duration is not None and not args.duration > 0:
        raise UsageError(f"--duration must be more than 0 s, got {args.duration} s")
    definitions = parse_definitions(_load_yaml(source), source)
    host = args.host or os.environ.get(HOST_ENV)
    if not host:
        raise UsageError(f"no Mate3 given: use --host HOST (or set ${HOST_ENV})")
    url = args.database_url or os.environ.get(DATABASE_ENV) or DEFAULT_DATABASE_URL

    def say(line: str) -> None:
        if not args.quiet:
            sys.stderr.write(line + "\n")
            sys.stderr.flush()

    options = {"port": args.port, "timeout": args.timeout, "connect_timeout": args.timeout,
               "unit_id": args.unit_id, "min_poll_interval": args.min_poll_interval}
    if host.startswith(("sim:", "replay:")):
        options.pop("port")
    logger = Mate3PG(host, definitions, database_url=url, interval=args.interval,
                     hypertables=args.hypertables, client_options=options, say=say)
    logger.open()
    stop = threading.Event()
    interrupted = False
    timer = None
    # SignalWait: a SIGTERM the kernel gives to one of the client's threads still ends the
    # wait between readings at once (a plain Event.wait sleeps through it)
    with SignalWait({signal.SIGTERM: lambda signum: stop.set()}) as signals:
        if args.duration is not None:
            def end() -> None:
                stop.set()
                signals.wake()
            timer = threading.Timer(args.duration, end)
            timer.name = "pyburnerkit-mate3-pg-duration"
            timer.daemon = True
            timer.start()
        try:
            say(f"mate3 pg: {len(definitions)} column(s) from {host} into PostgreSQL "
                f"{logger.where} every {args.interval:g} s; Ctrl-C to stop")
            for line in logger.describe():
                say(f"  {line}")
            try:
                logger.run(stop, args.count, wait=signals.wait)
            except KeyboardInterrupt:
                interrupted = True
        finally:
            if timer is not None:
                timer.cancel()
                timer.join()
            logger.close()
    say(f"mate3 pg: {logger.rows_written} row(s) written, {logger.failed_reads} failed "
        f"reading(s)" + ("; interrupted" if interrupted else ""))
    return EXIT_INTERRUPTED if interrupted else 0


def _sim(args: argparse.Namespace) -> int:
    """Until SIGINT, SIGTERM or SIGHUP; then it closes everything (see ``cli/sim.py``)."""
    from ..mate3.sim import Mate3Sim
    from .sim import serve
    sim = Mate3Sim(dump=args.dump, description=args.system, live=args.live, speed=args.speed,
                   single_client=args.single_client, seed=args.seed)
    return serve(sim, args.host, args.port, lambda where: f"modbus://{where}")


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
