"""``pyburnerkit arbin ...`` and ``pyburnerkit sim arbin``.

Credentials come from ``--username`` / the environment (``ARBIN_CTI_USERNAME``,
``ARBIN_CTI_PASSWORD``) / ``--env-file``; the password is never taken on the command line.

The cycler is ``--host`` (host, host:port, cti://host[:port] or sim://), else
``$PYBURNERKIT_ARBIN_HOST``, else 127.0.0.1, as for every family.

Every command that changes the cycler (assign, start, stop, set-mv) needs ``--allow-writes``;
without it the command is refused before connecting (exit code 2, one line on stderr).
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
import threading
import time
from typing import Any, Callable, Dict, List, Optional

from ..errors import PyBurnerKitError, WriteNotAllowedError
from .common import (FORMATS, Bound, UsageError, add_bound_options, add_format_option,
                     add_option_everywhere, add_writes_option, emit, iso_time, show_number,
                     to_plain)

HOST_ENV = "PYBURNERKIT_ARBIN_HOST"
DEFAULT_HOST = "127.0.0.1"
ROW_FIELDS = ("channel", "state", "schedule", "test_name", "step_and_cycle", "cycle", "step",
              "test_time_s", "step_time_s", "voltage_v", "current_a", "power_w",
              "charge_capacity_ah", "discharge_capacity_ah", "charge_energy_wh",
              "discharge_energy_wh", "exit_condition")


def register(subparsers: Any) -> None:
    group = subparsers.add_parser("arbin", help="Arbin battery cyclers over CTI",
                                  description="Read and control an Arbin cycler over CTI.")
    sub = group.add_subparsers(dest="arbin_command", metavar="SUBCOMMAND")
    sub.required = True
    status = sub.add_parser("status", help="channel status (one request for several channels)")
    target = status.add_mutually_exclusive_group()
    target.add_argument("--channel", type=int, action="append", dest="channels",
                        metavar="N", help="1-based channel (repeatable)")
    target.add_argument("--all", action="store_true", help="every channel (the default)")
    watch = sub.add_parser("watch", help="poll every channel at an interval")
    watch.add_argument("--channel", type=int, action="append", dest="channels", metavar="N")
    watch.add_argument("--interval", type=float, default=1.0, help="seconds (default 1)")
    add_bound_options([watch], what="polls")
    assign = sub.add_parser("assign", help="assign a schedule to a channel")
    assign.add_argument("--channel", type=int, required=True, metavar="N")
    assign.add_argument("--schedule", required=True)
    assign.add_argument("--all-channels", action="store_true")
    start = sub.add_parser("start", help="start the assigned schedule (several channels at once)")
    start.add_argument("--channel", type=int, action="append", dest="channels", required=True,
                       metavar="N")
    start.add_argument("--test-name", required=True)
    stop = sub.add_parser("stop", help="stop a channel's test (or all)")
    stop_target = stop.add_mutually_exclusive_group(required=True)
    stop_target.add_argument("--channel", type=int, metavar="N")
    stop_target.add_argument("--all", action="store_true")
    set_mv = sub.add_parser("set-mv", help="set user meta variable MV_UD<N> of a running test")
    set_mv.add_argument("--channel", type=int, required=True, metavar="N")
    set_mv.add_argument("--mv", type=int, required=True, help="1..16")
    set_mv.add_argument("--value", type=float, required=True)
    from .top import add_top_parser
    top = add_top_parser(sub, "arbin")
    parsers = [group, status, watch, assign, start, stop, set_mv, top]
    add_writes_option(parsers, help="really send commands that change the cycler (assign, "
                                    "start, stop, set-mv)")
    add_option_everywhere(parsers, "--host", default=None, metavar="ENDPOINT",
                          help="the cycler: host, host:port, cti://host[:port] or sim://[?opts] "
                               f"(default: ${HOST_ENV} or {DEFAULT_HOST})")
    add_option_everywhere(parsers, "--port", type=int, default=None,
                          help="CTI port when --host names none (default 9031)")
    add_option_everywhere(parsers, "--env-file", default=None,
                          help=".env file with ARBIN_CTI_USERNAME / ARBIN_CTI_PASSWORD")
    add_option_everywhere(parsers, "--username", default=None,
                          help="CTI user (password: ARBIN_CTI_PASSWORD or --env-file)")
    add_option_everywhere(parsers, "--timeout", type=float, default=10.0,
                          help="seconds per reply (default 10)")
    add_format_option(parsers, FORMATS)
    for parser, handler in ((status, _status), (watch, _watch), (assign, _assign),
                            (start, _start), (stop, _stop), (set_mv, _set_mv), (top, _top)):
        parser.set_defaults(handler=handler)


def _options(args: argparse.Namespace) -> Dict[str, Any]:
    return dict(username=args.username, env_file=args.env_file, timeout=args.timeout,
                connect_timeout=max(args.timeout, 1.0), reconnect=None)


def host_of(args: argparse.Namespace) -> str:
    """``--host``, else ``$PYBURNERKIT_ARBIN_HOST``, else 127.0.0.1 (read when the command
    runs, so the variable set after the parser was built still counts)."""
    return args.host or os.environ.get(HOST_ENV) or DEFAULT_HOST


def _cycler(args: argparse.Namespace) -> Any:
    from ..arbin.client import CyclerClient
    return CyclerClient(host_of(args), port=args.port, **_options(args))


def _channel_client(args: argparse.Namespace, channel: int, command: str) -> Any:
    """A writing client, only with ``--allow-writes`` (checked before anything connects).

    :raises WriteNotAllowedError: without ``--allow-writes`` (exit code 2, one line).
    """
    if not getattr(args, "allow_writes", False):
        # Refused here, before any connection (main turns it into exit code 2, one line).
        raise WriteNotAllowedError(f"'arbin {command}' changes the cycler: add --allow-writes "
                                   "to really send it (nothing was sent)")
    from ..arbin.client import ChannelClient
    return ChannelClient(host_of(args), port=args.port, channel=channel, allow_writes=True,
                         **_options(args))


def status_row(status: Any) -> Dict[str, Any]:
    plain = to_plain(status)
    row = {k: plain.get(k) for k in ROW_FIELDS if k in plain}
    row["state"] = status.state.text
    row["cycle"] = status.cycle
    row["step"] = status.step
    for name, readings in status.aux.items():
        for i, r in enumerate(readings, 1):
            row[f"aux_{name}_{i}"] = r.value
    return row


def _table(rows: List[Dict[str, Any]], out: Any) -> None:
    cols = ["channel", "state", "step_and_cycle", "voltage_v", "current_a", "test_time_s",
            "charge_capacity_ah", "discharge_capacity_ah", "test_name"]

    def cell(v: Any) -> str:
        if v is None:
            return "-"
        return show_number(v)

    cells = [[cell(r.get(c)) for c in cols] for r in rows]
    widths = [max([len(c)] + [len(row[i]) for row in cells]) for i, c in enumerate(cols)]
    out.write("  ".join(c.ljust(w) for c, w in zip(cols, widths)).rstrip() + "\n")
    for row in cells:
        out.write("  ".join(v.ljust(w) for v, w in zip(row, widths)).rstrip() + "\n")
    out.flush()


def _emit_rows(rows: List[Dict[str, Any]], fmt: str) -> None:
    if fmt == "text":
        _table(rows, sys.stdout)
    elif fmt == "jsonl":
        for row in rows:
            emit(row, fmt)
    else:
        emit(rows, fmt)


def _status(args: argparse.Namespace) -> int:
    with _cycler(args) as cycler:
        if args.channels and len(args.channels) == 1:
            statuses = [cycler.read_status(args.channels[0])]
        elif args.channels:
            statuses = cycler.read_statuses(args.channels)
        else:
            statuses = cycler.read_all_statuses()
    _emit_rows([status_row(s) for s in statuses], args.format)
    return 0


def _watch(args: argparse.Namespace) -> int:
    from ..arbin.models import StatusSnapshot
    bound = Bound.from_args(args)
    with _cycler(args) as cycler:
        events = cycler.events(max(5.0, args.interval * 5 + args.timeout), StatusSnapshot)
        with cycler.watch(args.interval, args.channels):
            csv_writer: Optional[csv.DictWriter[str]] = None
            for event in bound.iterate(events):
                when = iso_time(event.timestamp)
                rows = [status_row(s) for s in event.statuses]
                if args.format == "text":
                    sys.stdout.write(when + "\n")
                else:  # every row says when it was polled (last: the columns stay put)
                    rows = [dict(row, time=when) for row in rows]
                if args.format == "csv":
                    # One table for the whole watch: the header once, then rows per poll.
                    if csv_writer is None:
                        columns: List[str] = []
                        for row in rows:
                            columns += [k for k in row if k not in columns]
                        csv_writer = csv.DictWriter(sys.stdout, fieldnames=columns,
                                                    extrasaction="ignore")
                        csv_writer.writeheader()
                    csv_writer.writerows(to_plain(rows))
                    sys.stdout.flush()
                else:
                    _emit_rows(rows, args.format)
                if bound.tick():
                    break
            else:
                if not bound.expired:
                    raise PyBurnerKitError("no status arrived in time; the link is down")
    return 0


def _top(args: argparse.Namespace) -> int:
    from .top import run_top
    return run_top(args, "arbin", lambda: _cycler(args), host_of(args))


def _done(what: str, fmt: str) -> None:
    emit({"result": "ok", "command": what}, fmt if fmt != "csv" else "text")


def _assign(args: argparse.Namespace) -> int:
    with _channel_client(args, args.channel, "assign") as ch:
        ch.assign_schedule(args.schedule, all_channels=args.all_channels)
    _done("assign", args.format)
    return 0


def _start(args: argparse.Namespace) -> int:
    with _channel_client(args, args.channels[0], "start") as ch:
        ch.start(args.test_name, channels=args.channels)
    _done("start", args.format)
    return 0


def _stop(args: argparse.Namespace) -> int:
    with _channel_client(args, args.channel or 1, "stop") as ch:
        ch.stop(all_channels=bool(args.all))
    _done("stop", args.format)
    return 0


def _set_mv(args: argparse.Namespace) -> int:
    with _channel_client(args, args.channel, "set-mv") as ch:
        ch.set_meta_variable(args.mv, args.value)
    _done("set-mv", args.format)
    return 0


# ---------------------------------------------------------------------- simulator
def register_sim(sim_subparsers: Any) -> None:
    parser = sim_subparsers.add_parser("arbin", help="simulated Arbin cycler (CTI server)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9031, help="default 9031 (0: any free)")
    parser.add_argument("--channels", type=int, default=16, help="1..512 (default 16)")
    parser.add_argument("--username", default=None, help="accepted CTI user (default admin)")
    parser.add_argument("--password", default=None, help="accepted password (default 000000)")
    parser.add_argument("--time-scale", type=float, default=1.0,
                        help="simulated seconds per real second")
    parser.add_argument("--mits10", action="store_true",
                        help="answer one-channel requests with every channel, as MITS 10 does")
    parser.set_defaults(handler=run_sim)


def run_sim(args: argparse.Namespace, stop: Optional[threading.Event] = None) -> int:
    """Run the simulator until SIGINT, SIGTERM or SIGHUP (or until ``stop`` is set, for
    tests); then it closes everything (see ``cli/sim.py``)."""
    from ..arbin.sim import DEFAULT_PASSWORD, DEFAULT_USERNAME, ArbinSim
    from .sim import hold
    sim = ArbinSim(args.channels, username=args.username or DEFAULT_USERNAME,
                   password=args.password or DEFAULT_PASSWORD, time_scale=args.time_scale,
                   mits10=args.mits10)

    def start() -> None:
        try:
            sim.start(args.host, args.port)
        except OSError as exc:
            raise UsageError(f"cannot listen on {args.host}:{args.port}: {exc}") from exc
        print(f"arbin simulator ({args.channels} channels) listening on "
              f"{sim.host}:{sim.port}; Ctrl-C to stop", flush=True)

    if stop is None:
        return hold(start, sim.close)
    try:
        start()
        stop.wait()
    finally:
        sim.close()
    return 0


def demo(write: Callable[[str], None], *, duration: float) -> None:
    """A short live session: simulator on 127.0.0.1:0, a client over real TCP, one test."""
    from ..arbin.client import ChannelClient
    from ..arbin.models import StatusSnapshot
    from ..arbin.sim import ArbinSim
    sim = ArbinSim(8, username="demo", password="demo-password", time_scale=120.0)
    with sim:
        write(f"arbin: simulated cycler on {sim.endpoint}")
        with ChannelClient(sim.endpoint, channel=1, username="demo",
                           password="demo-password", allow_writes=True) as ch:
            info = ch.info
            assert info is not None  # connect() returns only after the log-in cached it
            write(f"arbin: logged in, {ch.channel_count} channels, serial "
                  f"{info.serial_number}")
            ch.assign_schedule("CC_Cycle.sdx")
            ch.start("pyburnerkit-demo")
            deadline = time.monotonic() + max(0.2, duration)
            events = ch.events(max(1.0, duration), StatusSnapshot)
            with ch.watch(max(0.05, min(0.5, duration / 4)), [1]):
                for event in events:
                    s = event.statuses[0]
                    write(f"arbin: ch{s.channel} {s.state.text:<9} {s.step_and_cycle:<24} "
                          f"{s.voltage_v:.3f} V {s.current_a:+.2f} A "
                          f"{s.charge_capacity_ah * 1000:.1f} mAh in")
                    if time.monotonic() >= deadline:
                        break
            ch.stop()
            write(f"arbin: stopped; channel 1 is {ch.read_status().state.text}")
