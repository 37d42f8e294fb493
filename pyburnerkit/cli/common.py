"""What every subcommand shares: the one option set, output formats, times and numbers as
they are printed, and the error-to-exit-code mapping.

The shared option set (``docs/cli.rst`` lists it in one table, and ``tests/cli`` checks every
group against it):

``--format text|json|jsonl|csv``
    every command that prints data (:func:`add_format_option`).
``--host`` and ``$PYBURNERKIT_<FAMILY>_HOST``
    the device's endpoint; the option wins over the variable, read when the command runs
    (:func:`add_endpoint_option`, :func:`endpoint`).
``--timeout SECONDS``
    how long one reply may take.
``--allow-writes``
    accepted by every command of a family; only device-changing commands need it.
``--duration SECONDS`` and ``--count N``
    bound every command that streams (``watch``, ``top``): whichever comes first ends it
    (:func:`add_bound_options`, :class:`Bound`).

Times are ISO-8601 in UTC (:func:`iso_time`), as ``export`` writes them; floats are printed at
their real precision (:func:`real_float`: a float32 reading prints as ``3.6``).
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import datetime
import enum
import json
import math
import os
import re
import struct
import sys
import time
from typing import (Any, Callable, Dict, Iterable, Iterator, List, Optional, Sequence, TextIO,
                    Tuple)

#: The exit codes, the same for every group (``docs/cli.rst``).
EXIT_OK = 0
EXIT_DEVICE = 1
EXIT_USAGE = 2
EXIT_MISSING = 3
EXIT_INTERRUPTED = 130

#: The formats every data-printing command accepts.
FORMATS: Tuple[str, ...] = ("text", "json", "jsonl", "csv")


class UsageError(Exception):
    """A command line that makes no sense; exit code 2 with one message."""


def add_option_everywhere(groups: Sequence[argparse.ArgumentParser], *names: str,
                          **kwargs: Any) -> None:
    """Add an option to a group parser and to each of its subcommand parsers.

    The copies on subcommands use ``SUPPRESS`` as default, so an option given before the
    subcommand is not overwritten by the subcommand's default: options work before or after.
    """
    first, rest = groups[0], groups[1:]
    first.add_argument(*names, **kwargs)
    quiet = dict(kwargs)
    quiet["default"] = argparse.SUPPRESS
    for parser in rest:
        parser.add_argument(*names, **quiet)


def add_format_option(parsers: Sequence[argparse.ArgumentParser],
                      choices: Sequence[str] = FORMATS) -> None:
    """``--format`` on every parser: text (default), json, jsonl, csv (and any extra choices a
    family keeps for its users' habits, e.g. mate3's ``prettyjson``)."""
    add_option_everywhere(parsers, "--format", choices=list(choices), default="text",
                          help=f"output format: {', '.join(choices)} (default: text)")


def add_writes_option(parsers: Sequence[argparse.ArgumentParser], help: str) -> None:
    """``--allow-writes`` on every parser of a group (only device-changing commands need it;
    the others accept it so one shell alias works for all)."""
    add_option_everywhere(parsers, "--allow-writes", action="store_true", default=False,
                          help=help)


def host_variable(family: str) -> str:
    """``PYBURNERKIT_<FAMILY>_HOST``: the environment variable naming a family's device."""
    return f"PYBURNERKIT_{family.upper()}_HOST"


def add_endpoint_option(parsers: Sequence[argparse.ArgumentParser], family: str,
                        *names: str, dest: str, what: str, default: Optional[str] = None,
                        fallback: Sequence[str] = (), otherwise: str = "") -> None:
    """The endpoint option (``--host`` plus the family's own spellings) on every parser.

    Its value is resolved when the command runs by :func:`endpoint`: the option, else
    ``$PYBURNERKIT_<FAMILY>_HOST``, else the older variables in ``fallback``, else
    ``default`` (``otherwise`` describes what None means, for ``--help``).
    """
    variables = [host_variable(family)] + list(fallback)
    shown = " or ".join(f"${v}" for v in variables)
    tail = f", else {otherwise or default}" if (otherwise or default) else ""
    add_option_everywhere(parsers, *names, dest=dest, default=None, metavar="ENDPOINT",
                          help=f"{what} (default: {shown}{tail})")
    for parser in parsers[:1]:
        parser.set_defaults(**{f"_{dest}_lookup": (tuple(variables), default)})


def endpoint(args: argparse.Namespace, dest: str) -> Optional[str]:
    """The endpoint of :func:`add_endpoint_option`: option, variables, default (or None)."""
    given = getattr(args, dest, None)
    if given:
        return str(given)
    variables, default = getattr(args, f"_{dest}_lookup", ((), None))
    for name in variables:
        value = os.environ.get(name)
        if value:
            return value
    return None if default is None else str(default)


# ----------------------------------------------------------------------------- bounds
def _positive_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected seconds, got {text!r}") from None
    if not value > 0 or math.isinf(value):
        raise argparse.ArgumentTypeError(f"{text} s is not a duration: give a number of "
                                         f"seconds > 0")
    return value


def _positive_count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"{value} is below 0 (0 means no limit)")
    return value


def add_bound_options(parsers: Sequence[argparse.ArgumentParser], what: str = "records",
                      count: bool = True, duration: bool = True) -> None:
    """``--duration SECONDS`` and ``--count N`` on a streaming command; see :class:`Bound`."""
    for parser in parsers:
        if duration:
            parser.add_argument("--duration", type=_positive_seconds, default=None,
                                metavar="SECONDS",
                                help="stop after this many seconds (default: until Ctrl-C)")
        if count:
            parser.add_argument("--count", type=_positive_count, default=None, metavar="N",
                                help=f"stop after N {what} (default or 0: until Ctrl-C)")


class Bound:
    """The end of a streaming command: ``--duration`` seconds or ``--count`` records,
    whichever comes first (neither: until Ctrl-C). Monotonic clock; no thread.

    The duration runs from the bound's first use, not from its creation: a command that
    builds it before connecting still streams for the whole ``--duration``."""

    def __init__(self, duration: Optional[float] = None, count: Optional[int] = None) -> None:
        self.count = count or None
        self.duration = duration
        self._end: Optional[float] = None
        self.done = 0

    @property
    def end(self) -> Optional[float]:
        if self.duration is None:
            return None
        if self._end is None:
            self._end = time.monotonic() + self.duration
        return self._end

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> "Bound":
        return cls(getattr(args, "duration", None), getattr(args, "count", None))

    def remaining(self, cap: Optional[float] = None) -> Optional[float]:
        """Seconds left (never below 0), at most ``cap``; None when unbounded and no cap."""
        end = self.end
        if end is None:
            return cap
        left = max(0.0, end - time.monotonic())
        return left if cap is None else min(left, cap)

    @property
    def expired(self) -> bool:
        if self.count is not None and self.done >= self.count:
            return True
        end = self.end
        return end is not None and time.monotonic() >= end

    def tick(self) -> bool:
        """Count one record; True when the bound is reached."""
        self.done += 1
        return self.expired

    def iterate(self, events: Iterable[Any]) -> Iterator[Any]:
        """Yield from ``events`` until the bound is reached (the caller ticks per record)."""
        for event in events:
            if self.expired:
                return
            yield event
            if self.expired:
                return


# ----------------------------------------------------------------------------- values
def iso_time(ts: float) -> str:
    """Unix seconds as ISO-8601 UTC with milliseconds: ``2025-01-31T12:00:00.250Z``."""
    moment = datetime.datetime.fromtimestamp(ts, datetime.timezone.utc)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def now_iso() -> str:
    return iso_time(time.time())


_F32 = struct.Struct("<f")


def real_float(value: float) -> float:
    """``value`` at its real precision: a float that is exactly a float32 (a reading that
    travelled as 4 bytes) becomes the shortest decimal that reads back as the same float32
    (``3.5999999046325684`` -> ``3.6``); any other float is rounded to the 15 significant
    digits a double holds (``159.26899999999998`` -> ``159.269``)."""
    if value != value or value in (math.inf, -math.inf) or value == 0.0:
        return value
    try:
        single = _F32.unpack(_F32.pack(value))[0]
    except OverflowError:  # beyond float32: a genuine double
        single = None
    if single != value:
        # a double carries 15 significant decimal digits (DBL_DIG); what repr shows past
        # them is the noise of binary arithmetic (7239.5 * 0.022 = 159.26899999999998)
        return float(f"{value:.15g}")
    for digits in range(1, 10):  # 9 significant digits always round-trip a float32
        short = float(f"{value:.{digits}g}")
        if _F32.unpack(_F32.pack(short))[0] == value:
            return short
    return value


def to_plain(value: Any) -> Any:
    """Models to JSON-ready data: dataclasses to dicts, enums to names, NaN to None, floats
    at their real precision, datetimes as ISO-8601."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_plain(getattr(value, f.name)) for f in dataclasses.fields(value)
                if f.repr}
    if isinstance(value, enum.Enum):
        return value.name
    if isinstance(value, dict):
        return {str(k): to_plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [to_plain(v) for v in value]
    if isinstance(value, float):
        if math.isnan(value) or math.isinf(value):
            return None
        return real_float(value)
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).hex()
    if isinstance(value, datetime.datetime) and value.tzinfo is not None:
        return value.astimezone(datetime.timezone.utc).isoformat().replace("+00:00", "Z")
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return value


def emit(value: Any, fmt: str, out: Optional[TextIO] = None) -> None:
    """Write one record in the chosen format and flush (so pipes see it at once)."""
    out = out or sys.stdout
    plain = to_plain(value)
    if fmt == "json":
        out.write(json.dumps(plain, indent=2, sort_keys=False) + "\n")
    elif fmt == "jsonl":
        if isinstance(plain, list):  # a table: one line per row
            for row in plain:
                out.write(json.dumps(row, separators=(",", ":")) + "\n")
        else:
            out.write(json.dumps(plain, separators=(",", ":")) + "\n")
    elif fmt == "csv":
        rows = plain if isinstance(plain, list) else [plain]
        write_csv([r if isinstance(r, dict) else {"value": r} for r in rows], out)
    else:
        out.write(format_text(plain) + "\n")
    out.flush()


def write_csv(rows: List[Dict[str, Any]], out: TextIO, header: bool = True) -> List[str]:
    """Rows as CSV (nested values as JSON); returns the columns used."""
    columns: List[str] = []
    for row in rows:
        for key in row:
            if key not in columns:
                columns.append(key)
    if not rows:
        return columns
    writer = csv.DictWriter(out, fieldnames=columns, extrasaction="ignore")
    if header:
        writer.writeheader()
    for row in rows:
        writer.writerow({k: json.dumps(v) if isinstance(v, (dict, list)) else v
                         for k, v in row.items()})
    return columns


class RecordStream:
    """Records of a streaming command in one format: CSV gets its header once (from the
    first record), jsonl one line per record, json one indented document per record, text
    ``TIME key=value ...`` lines."""

    def __init__(self, fmt: str, out: Optional[TextIO] = None) -> None:
        self.fmt = fmt
        self.out = out
        self._columns: Optional[List[str]] = None

    def write(self, record: Dict[str, Any], when: Optional[float] = None) -> None:
        out = self.out or sys.stdout
        stamped = {"time": iso_time(time.time() if when is None else when)}
        stamped.update(record)
        if self.fmt == "text":
            text = " ".join(f"{k}={_scalar(to_plain(v))}" for k, v in record.items())
            out.write(f"{stamped['time']} {text}\n")
            out.flush()
        elif self.fmt == "csv":
            plain = to_plain(stamped)
            row = {k: json.dumps(v) if isinstance(v, (dict, list)) else v
                   for k, v in plain.items()}
            if self._columns is None:
                self._columns = list(row)
                writer = csv.DictWriter(out, fieldnames=self._columns, extrasaction="ignore")
                writer.writeheader()
            else:
                for key in row:  # a later record with a new key: it still gets a column
                    if key not in self._columns:
                        self._columns.append(key)
                writer = csv.DictWriter(out, fieldnames=self._columns, extrasaction="ignore")
            writer.writerow(row)
            out.flush()
        else:
            emit(stamped, self.fmt, out)


def format_text(plain: Any, indent: int = 0) -> str:
    """A readable, aligned key/value rendering of nested plain data."""
    pad = "  " * indent
    if isinstance(plain, dict):
        if not plain:
            return pad + "(empty)"
        width = max(len(str(k)) for k in plain)
        lines = []
        for key, value in plain.items():
            if isinstance(value, (dict, list)) and value:
                lines.append(f"{pad}{key}:")
                lines.append(format_text(value, indent + 1))
            else:
                lines.append(f"{pad}{str(key).ljust(width)}  {_scalar(value)}")
        return "\n".join(lines)
    if isinstance(plain, list):
        return "\n".join(format_text(v, indent) if isinstance(v, (dict, list))
                         else pad + _scalar(v) for v in plain)
    return pad + _scalar(plain)


def _scalar(value: Any) -> str:
    return show_number(value)


def show_number(value: Any) -> str:
    """One value as text: None as ``-``, floats at their real precision (repr of
    :func:`real_float`, never 6-digit ``%g`` that drops digits of a double)."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value) or math.isinf(value):
            return "-"
        shown = repr(real_float(value))
        return shown[:-2] if shown.endswith(".0") else shown
    return str(value)


def parse_assignment(text: str) -> Tuple[str, str]:
    """``KEY=VALUE`` to (key, value-text); never evaluates anything."""
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise UsageError(f"expected KEY=VALUE, got {text!r}")
    return key.strip(), value.strip()


def parse_number(text: str) -> Any:
    """An int or float from text (``"22"`` -> 22, ``"1.6"`` -> 1.6), else UsageError."""
    try:
        return int(text)
    except ValueError:
        pass
    try:
        value = float(text)
    except ValueError:
        raise UsageError(f"expected a number, got {text!r}") from None
    if math.isnan(value) or math.isinf(value):
        raise UsageError(f"expected a finite number, got {text!r}")
    return value


Handler = Callable[[argparse.Namespace], int]


def until(events: Iterable[Any], duration: Optional[float]) -> Iterator[Any]:
    """Yield from an ``events()`` iterator until ``duration`` seconds have passed.

    ``events(timeout)`` alone ends after a quiet spell; this also bounds a steady stream.
    """
    end = None if duration is None else time.monotonic() + duration
    for event in events:
        if end is not None and time.monotonic() >= end:
            return
        yield event


def emit_watch(record: Dict[str, Any], fmt: str) -> None:
    """One live ``watch`` record stamped with its ISO-8601 time: ``TIME key=value ...`` as
    text, else a record with a ``time`` key (CSV writes its header each time: streaming
    commands use :class:`RecordStream`)."""
    RecordStream(fmt).write(record)


# ----------------------------------------------------------------------------- errors
#: Library wording -> command-line wording, applied to every error the CLI prints.
_WORDING: Tuple[Tuple["re.Pattern[str]", str], ...] = (
    (re.compile(r"open (?:the |a )?(?:scale )?(?:client|monitor|service) with "
                r"allow_writes=True(?: \(CLI: --allow-writes\))?"), "add --allow-writes"),
    (re.compile(r"open (?:the |a )?(?:client|monitor|service) with allow_remote_start=True"),
     "add --allow-writes"),
    (re.compile(r"not opened with allow_writes=True"), "run without --allow-writes"),
    (re.compile(r"allow_writes=True"), "--allow-writes"),
    (re.compile(r"allow_remote_start=True"), "--allow-writes"),
    (re.compile(r"pass username= / password="),
     "give --username (the password in $ARBIN_CTI_PASSWORD or --env-file)"),
    (re.compile(r"pass ([a-z_]+)=\S* \(CLI: (--[a-z-]+)\)"), r"add \2"),
    (re.compile(r" ?\(CLI: (--[a-z-]+)\)"), ""),
)


def cli_wording(message: str) -> str:
    """An error message of the Python API in the command line's words (``pass username=``
    becomes ``give --username``)."""
    for pattern, replacement in _WORDING:
        message = pattern.sub(replacement, message)
    return re.sub(r"  +", " ", message).strip()
