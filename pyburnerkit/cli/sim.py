"""``pyburnerkit sim <family>``: run a device simulator in the foreground."""

from __future__ import annotations

import argparse
from typing import Any

from ..errors import BackendUnavailableError
from . import plugins


def register(subparsers: Any) -> None:
    group = subparsers.add_parser(
        "sim", help="run a simulated device on this machine",
        description="Run a device simulator in the foreground until interrupted. Each prints "
                    "where it listens first.")
    sub = group.add_subparsers(dest="family", metavar="FAMILY")
    sub.required = True
    for family, register_sim, why_not in plugins.hooks("cli_sim"):
        if register_sim is None:
            plugins.warn(f"no simulator for {why_not}")
        elif why_not is not None:
            _register_missing(sub, family, why_not)
        else:
            plugins.call_hook(family, "simulator", register_sim, sub)


def _register_missing(sub: Any, family: Any, why_not: str) -> None:
    """A family whose extra is absent stays listed, and says which pip command adds it."""
    parser = sub.add_parser(family.name, help=f"(not installed: {why_not})",
                            description=why_not)

    def refuse(args: argparse.Namespace) -> int:
        raise BackendUnavailableError(family.extra or family.name,
                                      (family.requires or (family.name,))[0])

    parser.set_defaults(handler=refuse)
