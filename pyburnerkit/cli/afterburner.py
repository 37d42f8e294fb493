"""``pyburnerkit afterburner ...`` and ``pyburnerkit sim afterburner``."""

from __future__ import annotations

import argparse
import threading
import time
from typing import TYPE_CHECKING, Any, Callable, Dict, List, Optional

from .common import (Bound, RecordStream, UsageError, add_bound_options, add_endpoint_option,
                     add_format_option, add_option_everywhere, add_writes_option, emit,
                     endpoint, parse_assignment, parse_number, to_plain)

if TYPE_CHECKING:
    from ..afterburner import AfterburnerClient, RunState

DEFAULT_HOST = "192.168.4.1"


def register(subparsers: Any) -> None:
    group = subparsers.add_parser(
        "afterburner", help="Afterburner diesel-heater controller (WebSocket JSON)",
        description="Read and control an Afterburner heater controller.")
    sub = group.add_subparsers(dest="command", metavar="SUBCOMMAND")
    sub.required = True
    status = sub.add_parser("status", help="print the complete state once")
    watch = sub.add_parser("watch", help="print changes as the controller pushes them")
    add_bound_options([watch], what="changes")
    setter = sub.add_parser("set", help="change settings: KEY=VALUE (setting name or firmware "
                                        "key, e.g. desired_temperature=21 or PumpMin=1.6); "
                                        "needs --allow-writes")
    setter.add_argument("assignments", nargs="+", metavar="KEY=VALUE")
    run = sub.add_parser("run", help="start (needs --allow-writes) or stop (always allowed) "
                                     "the heater")
    run.add_argument("state", choices=["on", "off"])
    save = sub.add_parser("save", help="persist settings to flash (NVsave); needs "
                                       "--allow-writes")
    from .top import add_top_parser
    top = add_top_parser(sub, "afterburner")
    parsers = [group, status, watch, setter, run, save, top]
    add_endpoint_option(parsers, "afterburner", "--host", dest="host",
                        what="host, host:port, ws:// URL or sim://", default=DEFAULT_HOST)
    add_option_everywhere(parsers, "--port", type=int, default=None,
                          help="WebSocket port (default 81); the same as host:port")
    add_option_everywhere(parsers, "--timeout", type=float, default=5.0,
                          help="seconds to wait for the controller (default 5)")
    add_writes_option(parsers, help="allow commands that change the heater (set, run on, "
                                    "save); 'run off' is always allowed: it makes the heater "
                                    "safe")
    add_format_option(parsers)
    for parser, handler in ((status, _status), (watch, _watch), (setter, _set), (run, _run),
                            (save, _save), (top, _top)):
        parser.set_defaults(handler=handler)


def register_sim(subparsers: Any) -> None:
    parser = subparsers.add_parser("afterburner", help="simulated Afterburner (WebSocket)")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--port", type=int, default=8081, help="port (0 picks a free one)")
    parser.add_argument("--tick", type=float, default=1.0,
                        help="seconds between update frames (0 = right after each command)")
    parser.add_argument("--speed", type=float, default=1.0,
                        help="simulated seconds per real second")
    parser.add_argument("--seed", type=int, default=None)
    parser.set_defaults(handler=_sim)


def _require_allow_writes(args: argparse.Namespace, command: str) -> None:
    """Refuse a device-changing command before anything connects.

    :raises WriteNotAllowedError: without ``--allow-writes`` (exit code 2, one line).
    """
    from ..errors import WriteNotAllowedError
    if not args.allow_writes:
        raise WriteNotAllowedError(f"'afterburner {command}' changes the heater: add "
                                   f"--allow-writes to allow it ('run off' needs no opt-in)")


def endpoint_of(host: str, port: Optional[int]) -> str:
    """The endpoint string for ``--host`` and ``--port`` (kept for scripts that split them).

    :raises UsageError: ``--port`` with a URL or with a host that names a port already.
    """
    if port is None:
        return host
    if "://" in host:
        raise UsageError("give --port with a plain host, not with a URL")
    if host.startswith("[") or host.count(":") > 1:  # IPv6: [v6] or a bare v6 address
        if "]:" in host:
            raise UsageError(f"--host {host} names a port already; leave out --port")
        return f"[{host.strip('[]')}]:{port}"
    if ":" in host:
        raise UsageError(f"--host {host} names a port already; leave out --port")
    return f"{host}:{port}"


def _client(args: argparse.Namespace) -> "AfterburnerClient":
    from ..afterburner import AfterburnerClient
    return AfterburnerClient(endpoint_of(_host(args), args.port), timeout=args.timeout,
                             connect_timeout=max(args.timeout, 2.0),
                             allow_writes=args.allow_writes)


def _host(args: argparse.Namespace) -> str:
    return endpoint(args, "host") or DEFAULT_HOST


def _state_name(state: "Optional[RunState]") -> str:
    return "unknown" if state is None else state.name


def status_record(client: "AfterburnerClient") -> Dict[str, Any]:
    status = client.status
    record = to_plain(status)
    record = {k: v for k, v in record.items() if v is not None}
    record["is_on"] = status.is_on
    record["fuel_used_ml"] = status.fuel_used_ml
    record["fuel_rate_ml_h"] = status.fuel_rate_ml_h
    return record


def _status(args: argparse.Namespace) -> int:
    with _client(args) as client:
        emit(status_record(client), args.format)
    return 0


def _watch(args: argparse.Namespace) -> int:
    from ..afterburner.models import StatusChanged
    bound = Bound.from_args(args)
    stream = RecordStream(args.format)
    with _client(args) as client:
        if args.format == "text":
            emit(status_record(client), args.format)
        elif args.format == "csv":  # one table: time, key, value (the state, then changes)
            for key, value in status_record(client).items():
                stream.write({"key": key, "value": value})
        else:  # the complete state first, then one record per change, all stamped alike
            stream.write(status_record(client))
        for event in bound.iterate(client.events(args.duration, StatusChanged)):
            if args.format == "text":
                stream.write(dict(event.changed), event.timestamp)
            elif args.format == "csv":
                for key, value in event.changed.items():
                    stream.write({"key": key, "value": value}, event.timestamp)
            else:
                stream.write({"changed": dict(event.changed)}, event.timestamp)
            bound.tick()
    return 0


def _top(args: argparse.Namespace) -> int:
    from .top import run_top
    return run_top(args, "afterburner", lambda: _client(args),
                   endpoint_of(_host(args), args.port))


def _set(args: argparse.Namespace) -> int:
    from ..afterburner import codec
    # Every check before connecting: a refused write never opens a link, let alone sends.
    settings: Dict[str, Any] = {}
    for text in args.assignments:
        key, value = parse_assignment(text)
        settings[key] = parse_number(value)
    _require_allow_writes(args, "set")
    codec.prepare_settings(settings)  # the limits: ConfigurationError, exit code 2
    with _client(args) as client:
        client.set(**settings)
        emit({key: client.reported_value(_wire_key(key)) for key in settings}, args.format)
    return 0


def _wire_key(name: str) -> str:
    from ..afterburner.codec import SETTINGS
    setting = SETTINGS.get(name)
    return setting.report_key if setting else name


def _run(args: argparse.Namespace) -> int:
    # Stopping makes the heater safe, so 'run off' works without --allow-writes.
    if args.state == "on":
        _require_allow_writes(args, "run on")
    with _client(args) as client:
        status = client.run(args.state == "on")
        emit({"run_state": status.run_state, "run_string": status.run_string}, args.format)
    return 0


def _save(args: argparse.Namespace) -> int:
    _require_allow_writes(args, "save")
    with _client(args) as client:
        client.save()
        emit({"saved": True}, args.format)
    return 0


def _sim(args: argparse.Namespace) -> int:
    """Until SIGINT, SIGTERM or SIGHUP; then it closes everything (see ``cli/sim.py``)."""
    from ..afterburner.sim import AfterburnerSim
    from .sim import serve
    sim = AfterburnerSim(tick=args.tick, speed=args.speed, seed=args.seed)
    return serve(sim, args.host, args.port, lambda where: f"ws://{where}/")


def demo(write: Callable[[str], None], *, duration: float = 6.0) -> None:
    """A live session against a simulated heater on loopback, over the real WebSocket."""
    from ..afterburner import AfterburnerClient
    from ..afterburner.models import RunState, StatusChanged
    from ..afterburner.sim import AfterburnerSim

    sim = AfterburnerSim(tick=0.1, speed=40.0, seed=7).start("127.0.0.1", 0)
    try:
        url = f"ws://127.0.0.1:{sim.port}/"
        started = time.monotonic()
        # allow_writes: the demo changes the set point and starts the heater.
        with AfterburnerClient(url, timeout=5.0, allow_writes=True) as heater:
            status = heater.status
            write(f"afterburner: connected to {url} in {time.monotonic() - started:.3f} s; "
                  f"cabin {status.temperature_c} °C, set point {status.desired_temperature} °C, "
                  f"{_state_name(status.run_state)}, battery {status.input_voltage_v} V")
            heater.set_desired_temperature(24)
            write("afterburner: set point 24 °C confirmed by the controller")
            seen: List[RunState] = []
            changes = threading.Event()

            def on_change(event: StatusChanged) -> None:
                state = event.status.run_state
                if "RunState" in event.changed and state is not None:
                    seen.append(state)
                    write(f"afterburner:   run state -> {state.name} ({state.text.strip()})")
                    if state == RunState.RUNNING:
                        changes.set()

            with heater.subscribe(on_change, StatusChanged):
                heater.start()
                changes.wait(duration)
                status = heater.status
                write(f"afterburner: burning: pump {status.pump_actual_hz} Hz, fan "
                      f"{status.fan_rpm} RPM, body {status.body_temperature_c} °C, fuel rate "
                      f"{(status.fuel_rate_ml_h or 0):.0f} mL/h")
                heater.stop()
            info = heater.read_system_info()
            write(f"afterburner: stopped ({_state_name(heater.status.run_state)}); firmware "
                  f"{info.firmware_version}, run time {info.run_time_s} s (simulated)")
    finally:
        sim.close()
