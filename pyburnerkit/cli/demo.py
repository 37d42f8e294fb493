"""``pyburnerkit demo``: every simulator on loopback, driven through the real network path."""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any, Callable, List, Optional, Tuple

from . import plugins


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


def families() -> List[Tuple[str, Optional[Callable[..., None]], Optional[str]]]:
    """``(name, demo, why_not)`` per registered family with a demo; ``demo`` is None and
    ``why_not`` names the pip command when the family cannot run here."""
    found = []
    for family, demo, why_not in plugins.hooks("cli_demo"):
        found.append((family.name, demo if why_not is None else None, why_not))
    return found


def run(args: argparse.Namespace) -> int:
    def write(line: str) -> None:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()

    chosen = families()
    if args.only:
        unknown = set(args.only) - {name for name, _, _ in chosen}
        if unknown:
            from .common import UsageError
            raise UsageError(f"no demo for {', '.join(sorted(unknown))}")
        chosen = [c for c in chosen if c[0] in args.only]
    started = time.monotonic()
    ran = 0
    for name, demo, why_not in chosen:
        if demo is None:
            write(f"== {name} == skipped: {why_not}")
            continue
        write(f"== {name} ==")
        demo(write, duration=args.duration)
        ran += 1
    write(f"demo finished in {time.monotonic() - started:.1f} s "
          f"({ran} device families, all on simulators)")
    return 0
