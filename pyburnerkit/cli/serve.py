"""``pyburnerkit serve CONFIG | --demo``: the long-running service (HTTP API, MQTT, systemd)."""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from typing import Any, Callable, Dict, List, Optional

from ..errors import ConfigurationError
from .common import UsageError
from .signals import SignalWait


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "serve", help="serve devices over HTTP (and MQTT) as a long-running service",
        description="Open every configured device (the recorder's config, plus [http], "
                    "[mqtt] and [service]), record into the configured sinks, and serve the "
                    "devices over HTTP: the generic API under /api/v1/ for every family and "
                    "pyDE1's API for a DE1 and its scale. Runs until SIGTERM or Ctrl-C, then "
                    "closes everything within the service's shutdown timeout and exits 0. "
                    "SIGHUP reopens the log file. Under systemd (Type=notify) it reports "
                    "readiness and feeds the watchdog. With --demo, the first line on stdout "
                    "is HTTP=<base URL>.")
    parser.add_argument("config", nargs="?", metavar="CONFIG", help="TOML config file")
    parser.add_argument("--demo", action="store_true",
                        help="serve every installed family's simulator (read-only devices)")
    parser.add_argument("--http", default=None, metavar="HOST:PORT",
                        help="listen here (default: the config's [http] bind, "
                             "127.0.0.1:1234; --demo: 127.0.0.1 on a free port)")
    parser.add_argument("--mqtt", default=None, metavar="HOST:PORT",
                        help="publish to this broker: pyDE1's topics for a DE1 and its scale "
                             "(overrides [mqtt]); with --demo also the recorder's topics "
                             "with Home Assistant discovery for every device")
    parser.set_defaults(handler=run_serve)


def run_serve(args: argparse.Namespace) -> int:
    from ..service.config import (MqttSettings, check_bind, load_service_config, parse_bind)
    from ..service.service import Service

    if args.demo and args.config:
        raise UsageError("give either CONFIG or --demo, not both")
    if not args.demo and not args.config:
        raise UsageError("give a CONFIG file (TOML) or --demo")
    mqtt: Optional[MqttSettings] = None
    if args.mqtt is not None:
        host, port = parse_bind(args.mqtt, "--mqtt", default_port=1883)
        if port == 0:
            raise UsageError("--mqtt needs the broker's port (e.g. 127.0.0.1:1883)")
        mqtt = MqttSettings(host, port)

    err = sys.stderr

    def say(line: str) -> None:
        err.write(line + "\n")
        err.flush()

    if args.demo:
        from ..recorder.sources import demo_sources
        host, port = (parse_bind(args.http, "--http") if args.http is not None
                      else ("127.0.0.1", 0))
        token = os.environ.get("PYBURNERKIT_HTTP_TOKEN") or None
        check_bind(host, token, False)
        sources, cleanups, notes = demo_sources()
        for note in notes:
            say(f"serve: {note}")
        if not sources:
            raise ConfigurationError("no simulator could be started for --demo")
        sinks: List[Any] = []
        if mqtt is not None:
            try:
                from ..recorder.sinks.mqtt import MqttSink
                sinks.append(MqttSink(mqtt.host, mqtt.port))
            except BaseException:
                for source in sources:
                    source.close_client(2.0)
                _run_all(cleanups)
                raise
        service = Service(sources, sinks=sinks, host=host, port=port, token=token,
                          mqtt=mqtt, cleanups=cleanups)
    else:
        config = load_service_config(args.config)
        overrides: Dict[str, Any] = {}
        if args.http is not None:
            host, port = parse_bind(args.http, "--http")
            check_bind(host, config.http.token, config.http.insecure)
            overrides.update(host=host, port=port)
        if mqtt is not None:
            overrides["mqtt"] = mqtt
        service = Service.from_config(config, **overrides)

    stop = threading.Event()
    hangup = threading.Event()
    wake = threading.Event()

    def on_stop(signum: int) -> None:
        stop.set()
        wake.set()

    def on_hangup(signum: int) -> None:
        hangup.set()
        wake.set()

    handlers: Dict[int, Callable[[int], None]] = {signal.SIGTERM: on_stop,
                                                  signal.SIGINT: on_stop}
    if hasattr(signal, "SIGHUP"):
        handlers[signal.SIGHUP] = on_hangup
    # Installed before the service starts, so a signal while it starts still stops it.
    with SignalWait(handlers) as signals:
        try:
            service.start()
            sys.stdout.write(f"HTTP={service.url}\n")
            sys.stdout.flush()
            say(f"serve: {len(service.hub.devices)} device(s) on {service.url} "
                f"({', '.join(service.hub.devices)}); SIGTERM or Ctrl-C stops")
            while not stop.is_set():
                signals.wait(wake)
                wake.clear()
                if hangup.is_set():
                    hangup.clear()
                    service.reopen_logs()
        finally:
            say("serve: stopping...")
            clean = service.close()
    say("serve: stopped" + ("" if clean else " (some parts did not stop in time)"))
    return 0


def _run_all(cleanups: List[Callable[[], None]]) -> None:
    for cleanup in cleanups:
        try:
            cleanup()
        except Exception:
            pass
