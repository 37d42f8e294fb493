"""``pyburnerkit demo``: every simulator on loopback, driven through the real network path."""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import sys
import time
from typing import Any

from .main import GROUPS


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "demo", help="show a live session against the built-in simulators (no hardware)",
        description="Start each device simulator on 127.0.0.1, talk to it through the real "
                    "transport, print what happens, clean up and exit.")
    parser.add_argument("--duration", type=float, default=6.0,
                        help="upper bound in seconds for each device's live part (default 6)")
    parser.add_argument("--only", action="append", default=None, metavar="FAMILY",
                        help="run only this family's part (repeatable)")
    parser.set_defaults(handler=run)


def families() -> list:
    found = []
    for name in GROUPS:
        module_name = f"{__package__}.{name}"
        if name in ("sim", "demo", "record") or importlib.util.find_spec(module_name) is None:
            continue
        module = importlib.import_module(module_name)
        if hasattr(module, "demo"):
            found.append((name, module.demo))
    return found


def run(args: argparse.Namespace) -> int:
    def write(line: str) -> None:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()

    chosen = families()
    if args.only:
        unknown = set(args.only) - {name for name, _ in chosen}
        if unknown:
            from .common import UsageError
            raise UsageError(f"no demo for {', '.join(sorted(unknown))}")
        chosen = [(n, d) for n, d in chosen if n in args.only]
    started = time.monotonic()
    for name, demo in chosen:
        write(f"== {name} ==")
        demo(write, duration=args.duration)
    write(f"demo finished in {time.monotonic() - started:.1f} s "
          f"({len(chosen)} device families, all on simulators)")
    return 0
