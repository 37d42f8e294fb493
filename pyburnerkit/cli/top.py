"""``pyburnerkit <family> top``: a live table of a device's current values (like can.viewer).

Every family's ``top`` is this one command: the family's recorder adapter (the
:class:`~pyburnerkit.recorder.sources.Source` the registry names) turns the client's data into
readings, and the family's semantic table (``pyburnerkit/<family>/semantics.py``) gives each
field its name and unit, so ``top``, the recorder and Home Assistant show a field alike.

On a terminal the table refreshes in place (rich's ``Live``). When stdout is not a terminal
each refresh prints one whole table (text), or one record per field (json/jsonl/csv), so the
output can be logged or tested. ``--count N`` ends after N refreshes, ``--duration S`` after S
seconds; otherwise Ctrl-C ends it (exit 130).

Threads: push families deliver readings on the client's events thread, which only stores them
under a lock; polling families (Mate3, Arbin) are read on the calling thread once per refresh.
The table is drawn on the calling thread.

Needs ``rich`` (the ``top`` extra); without it the command exits 3 naming the extra.
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
import time
from typing import Any, Callable, ContextManager, Dict, List, Optional, Tuple

from ..errors import BackendUnavailableError
from .common import Bound, RecordStream, add_bound_options, iso_time, show_number, to_plain

__all__ = ["add_top_parser", "run_top", "Values", "EXTRA"]

#: The extra that installs rich.
EXTRA = "top"


def add_top_parser(sub: Any, family: str) -> argparse.ArgumentParser:
    """Add ``top`` to a family's subcommands (the caller adds the family's shared options
    and sets ``handler``)."""
    top: argparse.ArgumentParser = sub.add_parser(
        "top", help="live table of the current values with units (Ctrl-C ends; needs rich: "
                    "pyburnerkit[top])",
        description=f"A refreshing table of the {family} device's current values, named and "
                    f"with units as the recorder and Home Assistant show them. On a terminal "
                    f"it refreshes in place; otherwise each refresh prints one table (or one "
                    f"record per field with --format json/jsonl/csv).")
    top.add_argument("--interval", type=_refresh_seconds, default=1.0, metavar="SECONDS",
                     help="seconds between refreshes (default 1; a polled device is read "
                          "once per refresh, never faster than its driver allows)")
    top.add_argument("--all", dest="all_fields", action="store_true", default=False,
                     help="also show diagnostic fields (hidden by default)")
    add_bound_options([top], what="refreshes")
    return top


def _refresh_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected seconds, got {text!r}") from None
    if not 0.05 <= value <= 3600:
        raise argparse.ArgumentTypeError(f"--interval {text} s is outside 0.05..3600 s")
    return value


class Values:
    """The latest reading of every field, in the order fields first arrived; any thread.

    Each key is ``(channel, field)``; each value ``(value, unit, name, diagnostic, when)``.
    """

    def __init__(self, source: Any) -> None:
        self.source = source
        self._lock = threading.Lock()
        self._rows: Dict[Tuple[str, str], Tuple[Any, str, str, bool, float]] = {}
        self._meta: Dict[Tuple[str, str], Tuple[str, str, bool]] = {}
        self.arrived = threading.Event()

    def add(self, readings: List[Tuple[Any, ...]]) -> None:
        now = time.time()
        for reading in readings:
            channel, field, value, unit = (str(reading[0] or ""), str(reading[1]), reading[2],
                                           str(reading[3] or ""))
            key = (channel, field)
            meta = self._meta.get(key)
            if meta is None:
                try:
                    found = self.source.meta(channel, field, unit, value)
                    meta = (found.name or field, found.unit or unit, bool(found.diagnostic))
                except Exception:  # a table that fails on one field must not stop the view
                    meta = (field, unit, False)
                self._meta[key] = meta
            with self._lock:
                self._rows[key] = (value, meta[1], meta[0], meta[2], now)
        if readings:
            self.arrived.set()

    def rows(self, all_fields: bool) -> List[Tuple[str, str, str, Any, str, float]]:
        """``(channel, field, name, value, unit, when)`` rows; diagnostic ones only with
        ``all_fields`` (or when every field is diagnostic: an empty view helps nobody)."""
        with self._lock:
            items = list(self._rows.items())
        shown = [(k, v) for k, v in items if all_fields or not v[3]]
        if not shown:
            shown = items
        return [(k[0], k[1], v[2], v[0], v[1], v[4]) for k, v in shown]


def _plain_value(value: Any) -> Any:
    from ..recorder.samples import Labelled
    if isinstance(value, Labelled):  # Mate3 enums and flags: the words
        return value.name
    label = getattr(value, "label", None)  # enum-like driver values
    if isinstance(label, str):
        return label
    return to_plain(value)


def _value_text(value: Any) -> str:
    plain = _plain_value(value)
    if isinstance(plain, (dict, list)):
        return str(plain)
    return show_number(plain)


def _rich() -> Any:
    try:
        import rich  # noqa: F401
        from rich import box
        from rich.console import Console
        from rich.live import Live
        from rich.table import Table
    except ImportError as exc:
        raise BackendUnavailableError(EXTRA, "rich",
                                      reason="pyburnerkit <family> top draws with it") from exc
    return Console, Live, Table, box


def render(values: Values, title: str, all_fields: bool) -> Any:
    """The rich Table of the current values."""
    _, _, Table, box = _rich()
    rows = values.rows(all_fields)
    channels = any(r[0] for r in rows)
    table = Table(title=title, box=box.SIMPLE_HEAD, title_justify="left", expand=False)
    if channels:
        table.add_column("channel", no_wrap=True)
    table.add_column("field", no_wrap=True)
    table.add_column("value", justify="right", no_wrap=True)
    table.add_column("unit", no_wrap=True)
    table.add_column("key", style="dim", no_wrap=True)
    for channel, field, name, value, unit, _ in rows:
        cells = ([channel] if channels else []) + [name, _value_text(value), unit, field]
        table.add_row(*cells)
    if not rows:
        table.caption = "(no values yet)"
    return table


def run_top(args: argparse.Namespace, family: str,
            open_client: Callable[[], ContextManager[Any]], where: str) -> int:
    """Show the live table until ``--count``/``--duration`` or Ctrl-C.

    ``open_client()`` returns a context manager that yields a connected client (and closes
    it). Blocks the calling thread; Ctrl-C raises ``KeyboardInterrupt`` after the client
    closed (``main`` exits 130).

    :raises BackendUnavailableError: rich is not installed (exit code 3).
    """
    from ..recorder.sources import adapter_class
    Console, Live, _, _ = _rich()  # before connecting: a missing extra costs no connection
    fmt = getattr(args, "format", "text")
    fmt = "json" if fmt == "prettyjson" else fmt  # mate3's habit: the same records
    bound = Bound.from_args(args)
    terminal = fmt == "text" and sys.stdout.isatty()
    width = None if terminal else _width()
    console = Console(file=sys.stdout, width=width, force_terminal=terminal or None,
                      highlight=False, soft_wrap=False)
    stream = RecordStream(fmt) if fmt != "text" else None
    with open_client() as client:
        source = adapter_class(family)(client)
        values = Values(source)
        source.start(lambda _source, readings: values.add(readings),
                     lambda _source, state, error: None)
        try:
            polled = getattr(source, "kind", "push") == "poll"
            if not polled:  # a first table with values in it, not an empty frame
                values.arrived.wait(bound.remaining(max(args.timeout, args.interval)))

            def refresh() -> Any:
                if polled:
                    values.add(source.poll())
                return render(values, f"{family} {where}  {iso_time(time.time())}",
                              args.all_fields)

            pause = threading.Event()  # never set: its wait() is an interruptible sleep
            if terminal:
                with Live(refresh(), console=console, auto_refresh=False,
                          transient=False) as live:
                    while not bound.tick():
                        pause.wait(bound.remaining(args.interval))
                        live.update(refresh(), refresh=True)
            else:
                while True:
                    table = refresh()
                    if stream is None:
                        console.print(table)
                        sys.stdout.flush()
                    else:
                        _records(stream, values, args.all_fields)
                    if bound.tick():
                        break
                    pause.wait(bound.remaining(args.interval))
        finally:
            source.stop()
    return 0


def _records(stream: RecordStream, values: Values, all_fields: bool) -> None:
    for channel, field, name, value, unit, when in values.rows(all_fields):
        stream.write({"channel": channel, "field": field, "name": name,
                      "value": _plain_value(value), "unit": unit}, when)


def _width() -> int:
    try:
        return max(60, int(os.environ.get("COLUMNS", "")))
    except ValueError:
        return 160
