"""``pyburnerkit demo``: every simulator on loopback, driven through the real network path.

The families come from the registry, plug-ins included; a family whose demo fails is reported
and the others still run (exit code 1 then).
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from typing import Any, Callable, List, Optional, Tuple

from ..errors import PyBurnerKitError
from . import plugins
from .common import EXIT_DEVICE, EXIT_OK, UsageError

log = logging.getLogger(__name__)


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "demo", help="show a live session against every family's simulator (no hardware)",
        description="Start each installed family's device simulator on 127.0.0.1, talk to it "
                    "through the real transport, print what happens, clean up and exit. Exit "
                    "status 1 when a family's demo failed (the others still run).")
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
            raise UsageError(f"no demo for {', '.join(sorted(unknown))}")
        chosen = [c for c in chosen if c[0] in args.only]
    started = time.monotonic()
    ran = 0
    failed: List[str] = []
    for name, demo, why_not in chosen:
        if demo is None:
            write(f"== {name} == skipped: {why_not}")
            continue
        write(f"== {name} ==")
        try:
            demo(write, duration=args.duration)
        except Exception as exc:  # one family's failure must not hide the others' demos
            if not isinstance(exc, PyBurnerKitError):
                log.error("the %s demo failed", name, exc_info=True)
            print(f"pyburnerkit: {name} demo failed: {type(exc).__name__}: {exc}",
                  file=sys.stderr)
            failed.append(name)
            continue
        ran += 1
    write(f"demo finished in {time.monotonic() - started:.1f} s "
          f"({ran} device families, all on simulators"
          f"{'; FAILED: ' + ', '.join(failed) if failed else ''})")
    return EXIT_DEVICE if failed else EXIT_OK
