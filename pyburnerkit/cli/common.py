"""What every subcommand shares: global options, output formats, error-to-exit-code mapping."""

from __future__ import annotations

import argparse
import csv
import dataclasses
import enum
import json
import math
import sys
import time
from typing import (Any, Callable, Dict, Iterable, Iterator, List, Optional, Sequence, TextIO,
                    Tuple)

EXIT_OK = 0
EXIT_DEVICE = 1
EXIT_USAGE = 2


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
                      choices: Sequence[str] = ("text", "json", "jsonl")) -> None:
    add_option_everywhere(parsers, "--format", choices=list(choices), default="text",
                          help="output format (default: text)")


def to_plain(value: Any) -> Any:
    """Models to JSON-ready data: dataclasses to dicts, enums to names, NaN to None."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_plain(getattr(value, f.name)) for f in dataclasses.fields(value)
                if f.repr}
    if isinstance(value, enum.Enum):
        return value.name
    if isinstance(value, dict):
        return {str(k): to_plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [to_plain(v) for v in value]
    if isinstance(value, float) and (math.isnan(value) or math.isinf(value)):
        return None
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).hex()
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
        out.write(json.dumps(plain, separators=(",", ":")) + "\n")
    elif fmt == "csv":
        rows = plain if isinstance(plain, list) else [plain]
        write_csv(rows, out)
    else:
        out.write(format_text(plain) + "\n")
    out.flush()


def write_csv(rows: List[Dict[str, Any]], out: TextIO) -> None:
    if not rows:
        return
    columns: List[str] = []
    for row in rows:
        for key in row:
            if key not in columns:
                columns.append(key)
    writer = csv.DictWriter(out, fieldnames=columns, extrasaction="ignore")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: json.dumps(v) if isinstance(v, (dict, list)) else v
                         for k, v in row.items()})


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
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:g}"
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
    """One live ``watch`` line: ``HH:MM:SS key=value ...`` as text, else a record."""
    if fmt == "text":
        text = " ".join(f"{k}={_scalar(to_plain(v))}" for k, v in record.items())
        sys.stdout.write(f"{time.strftime('%H:%M:%S')} {text}\n")
        sys.stdout.flush()
    else:
        emit(record, fmt)
