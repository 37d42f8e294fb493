"""``pyburnerkit record CONFIG | --demo`` and ``pyburnerkit export DB``."""

from __future__ import annotations

import argparse
import csv
import json
import os
import signal
import sys
import threading
from typing import Any, Callable, Dict, List, TextIO, Tuple

from ..errors import ConfigurationError
from .common import UsageError
from .signals import SignalWait

#: the signals that stop a recording cleanly besides Ctrl-C (SIGHUP does not exist on Windows)
_STOP_SIGNALS = [signal.SIGTERM] + ([signal.SIGHUP] if hasattr(signal, "SIGHUP") else [])

#: ``pyburnerkit record`` exit status when any sample was lost (dropped from a full memory
#: queue or spool, refused by a sink, or with nowhere to go at the end)
EXIT_LOST = 1


def register(subparsers: Any) -> None:
    rec = subparsers.add_parser(
        "record", help="record devices to SQLite/PostgreSQL/MQTT (config file or --demo)",
        description="Record every configured device into the configured sinks until Ctrl-C "
                    "(or --duration), printing live progress on stderr. Ctrl-C stops cleanly: "
                    "everything received is written, or kept in the spool for the next run; "
                    "SIGTERM and SIGHUP stop it the same way. "
                    "At the end it reports what really happened: the samples of every "
                    "device (a device that recorded nothing says so), every sink's real "
                    "state (connected, or refused and how often), what it wrote, what waits "
                    "in its spool and the spool file's path, and with --demo every family "
                    "that was skipped with the pip command that enables it. Exit status: 0 "
                    "when nothing was lost (samples spooled for the next run are not lost), "
                    "1 when samples were lost (a full spool or memory queue, say; each loss is "
                    "reported), 2 for a bad config (including an unwritable spool directory), "
                    "130 after Ctrl-C (still stopped cleanly; SIGTERM and SIGHUP give 0). With an MQTT sink, Home "
                    "Assistant's controls change a device only if its config allows writes "
                    "(allow_writes = true under [devices.options]); each command is printed "
                    "with its outcome, and a refused one is never retried.")
    rec.add_argument("config", nargs="?", metavar="CONFIG", help="TOML config file")
    rec.add_argument("--demo", action="store_true",
                     help="record the simulator of every installed family into ./pyburnerkit.db "
                          "(or --db)")
    rec.add_argument("--db", default="pyburnerkit.db",
                     help="SQLite file for --demo (default: ./pyburnerkit.db)")
    rec.add_argument("--duration", type=float, default=None, metavar="SECONDS",
                     help="stop after this many seconds (default: until interrupted)")
    rec.add_argument("--progress", type=float, default=None, metavar="SECONDS",
                     help="seconds between progress lines (default 5, or the config's)")
    rec.add_argument("--quiet", action="store_true", help="no progress lines")
    rec.set_defaults(handler=run_record)

    exp = subparsers.add_parser(
        "export", help="export a SQLite recording as CSV or JSON lines",
        description="Write the samples of a recording (safe while it is being recorded).")
    exp.add_argument("db", metavar="DB", help="the SQLite recording (e.g. pyburnerkit.db)")
    exp.add_argument("--format", choices=["csv", "jsonl"], default="csv",
                     help="output format (default csv)")
    exp.add_argument("--output", "-o", default="-", help="output file (default: stdout)")
    exp.add_argument("--family", default=None, help="only this family")
    exp.add_argument("--device", default=None, help="only this device id")
    exp.add_argument("--field", default=None, help="only this field")
    exp.add_argument("--since", type=float, default=None, metavar="EPOCH",
                     help="only samples at or after this UTC epoch time (seconds)")
    exp.add_argument("--until", type=float, default=None, metavar="EPOCH",
                     help="only samples before this UTC epoch time (seconds)")
    exp.set_defaults(handler=run_export)


# ------------------------------------------------------------------------------- record
def run_record(args: argparse.Namespace) -> int:
    # SIGTERM (a service manager) and SIGHUP (the terminal closed) stop it like the end of
    # --duration: everything flushed or spooled, the --demo simulators' processes stopped.
    # Installed first, so a signal while the simulators start still cleans up.
    stop = threading.Event()
    with SignalWait({sig: lambda signum: stop.set() for sig in _STOP_SIGNALS}) as signals:
        return _run_record(args, stop, signals)


def _run_record(args: argparse.Namespace, stop: threading.Event,
                signals: SignalWait) -> int:
    from ..recorder import (Recorder, RecorderProgress, SinkHealthChanged, SpoolStateChanged,
                            SQLiteSink)
    from ..recorder.alerts import AlertChanged
    from ..recorder.commands import CommandHandled
    from ..recorder.recorder import DeviceStateChanged
    from ..recorder.secrets import redact_text

    if args.duration is not None and not args.duration > 0:
        raise UsageError(f"--duration must be a positive number of seconds, got {args.duration}")
    if args.progress is not None and not args.progress > 0:
        raise UsageError(f"--progress must be a positive number of seconds, got {args.progress}")
    if args.demo and args.config:
        raise UsageError("give either CONFIG or --demo, not both")
    if not args.demo and not args.config:
        raise UsageError("give a CONFIG file (TOML) or --demo")

    err = sys.stderr

    def say(line: str) -> None:
        err.write(line + "\n")
        err.flush()

    cleanups: List[Callable[[], None]] = []
    overrides: Dict[str, Any] = {}
    if args.progress is not None:
        overrides["progress_interval"] = args.progress
    skipped: List[str] = []
    if args.demo:
        sources, cleanups, skipped = _demo_sources()
        for line in skipped:
            say(f"record: {line}")
        if not sources:
            raise ConfigurationError("no simulator could be started for --demo")
        overrides.setdefault("progress_interval", 5.0)
        try:
            recorder = Recorder(sources, [SQLiteSink(args.db)], **overrides)
        except BaseException:
            for s in sources:
                s.close_client(2.0)
            _run_all(cleanups)
            raise
        target = os.path.abspath(args.db)
    else:
        from ..recorder.config import load_config
        config = load_config(args.config)
        recorder = config.build(**overrides)
        target = ", ".join(s.name for s in recorder.sinks)

    if not args.quiet:
        def on_event(event: Any) -> None:
            if isinstance(event, RecorderProgress):
                say(event.format())
            elif isinstance(event, SinkHealthChanged):
                say(f"sink {event.sink}: "
                    f"{'up' if event.healthy else f'DOWN ({redact_text(str(event.error))})'}")
            elif isinstance(event, SpoolStateChanged):
                say(f"sink {event.sink}: spool writable again" if event.writable else
                    f"sink {event.sink}: SPOOL NOT WRITABLE ({redact_text(str(event.error))});"
                    f" holding samples in memory (up to {recorder.memory_max}), NOT on disk")
            elif isinstance(event, DeviceStateChanged):
                say(f"device {event.family}/{event.device}: {event.state}")
            elif isinstance(event, AlertChanged):
                say(f"ALERT {event.message}")
            elif isinstance(event, CommandHandled):
                say(redact_text(event.format()))
        recorder.subscribe(on_event, RecorderProgress, SinkHealthChanged, SpoolStateChanged,
                           DeviceStateChanged, AlertChanged, CommandHandled)

    interrupted = False
    try:
        recorder.start()  # an unwritable spool directory: one ConfigurationError line
    except BaseException:
        _run_all(cleanups)
        raise
    try:
        say(f"recording {len(recorder.sources)} device(s) into {target}; "
            f"{'Ctrl-C to stop' if args.duration is None else f'for {args.duration:g} s'}")
        if not args.quiet:
            for line in _control_lines(recorder):
                say(line)
        try:
            signals.wait(stop, args.duration)
        except KeyboardInterrupt:
            interrupted = True
    finally:
        say("record: stopping, flushing sinks...")
        try:
            recorder.close(timeout=30.0)
        except KeyboardInterrupt:  # a second Ctrl-C: finish the bounded close anyway
            recorder.close(timeout=5.0)
        _run_all(cleanups)
    status = recorder.status()
    lingering = recorder.lingering
    written = ", ".join(f"{s.name} {s.written} written" for s in status.sinks)
    late = f" (threads that did not stop in time: {', '.join(lingering)})" if lingering else ""
    say(f"record: {recorder.received} samples received; {written}{late}")
    for line in recorder.report():
        say(f"record: {line}")
    for line in skipped:  # said at the start too; a long run's first lines are long gone
        say(f"record: {line}")
    if status.lost:
        return EXIT_LOST
    # Ctrl-C says "interrupted" as every command does (after the same clean stop); SIGTERM and
    # SIGHUP are how a service manager ends a run: 0
    return 130 if interrupted else 0


def _demo_sources() -> Tuple[List[Any], List[Callable[[], None]], List[str]]:
    """Every family's recorder demo that can run here: ``(sources, cleanups, skipped)``, where
    each ``skipped`` line names a family that is not recorded, why, and the command that
    enables it (the exact ``pip install`` for a missing extra)."""
    from .. import families as registry
    from .demo import why_skipped
    sources: List[Any] = []
    cleanups: List[Callable[[], None]] = []
    skipped: List[str] = []
    try:
        for family in registry.families():
            if not family.recorder_demo:
                continue
            why = why_skipped(family)
            if why is None:
                try:
                    built, cleanup = family.load("recorder_demo")()
                except Exception as exc:  # a family that cannot start here costs only itself
                    why = (why_skipped(family, exc)
                           or f"not recorded: {type(exc).__name__}: {exc}")
                else:
                    sources.extend(built)
                    cleanups.append(cleanup)
                    continue
            skipped.append(f"{family.name}: {why}")
    except BaseException:  # Ctrl-C while starting: stop the simulators started so far
        for source in sources:
            source.close_client(2.0)
        _run_all(cleanups)
        raise
    return sources, cleanups, skipped


def _control_lines(recorder: Any) -> List[str]:
    """What a sink that takes commands (MQTT / Home Assistant) may change, per device."""
    if not any(callable(getattr(sink, "attach_commands", None)) for sink in recorder.sinks):
        return []
    lines = []
    for source in recorder.sources:
        names = recorder.commands.controllable_fields(source.family, source.device)
        where = f"{source.family}/{source.device}"
        if names:
            lines.append(f"controls of {where}: {', '.join(names)}")
        elif getattr(source.client, "allow_writes", None) is False:
            lines.append(f"controls of {where}: none (read-only; allow_writes = true under "
                         f"[devices.options] enables them)")
    return lines


def _run_all(cleanups: List[Callable[[], None]]) -> None:
    for cleanup in cleanups:
        try:
            cleanup()
        except Exception:
            pass


# ------------------------------------------------------------------------------- export
def run_export(args: argparse.Namespace) -> int:
    from ..recorder.sinks.sqlite import COLUMNS, read_samples

    rows = read_samples(args.db, family=args.family, device=args.device, field=args.field,
                        since=args.since, until=args.until)
    out: TextIO
    close = False
    if args.output == "-":
        out = sys.stdout
    else:
        out = open(args.output, "w", newline="", encoding="utf-8")
        close = True
    count = 0
    try:
        if args.format == "csv":
            writer = csv.writer(out)
            writer.writerow(("time_utc",) + COLUMNS)
            for row in rows:
                writer.writerow([_iso(row["ts"])] + [row[c] for c in COLUMNS])
                count += 1
        else:
            for row in rows:
                record = {"time_utc": _iso(row["ts"])}
                record.update(row)
                out.write(json.dumps(record, ensure_ascii=False) + "\n")
                count += 1
        out.flush()
    finally:
        if close:
            out.close()
    if args.output != "-":
        sys.stderr.write(f"export: {count} samples written to {args.output}\n")
    return 0


def _iso(ts: float) -> str:
    import datetime as _dt
    return _dt.datetime.fromtimestamp(ts, _dt.timezone.utc).isoformat().replace("+00:00", "Z")
