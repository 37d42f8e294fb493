"""``pyburnerkit sim <family>``: run a device simulator in the foreground."""

from __future__ import annotations

import importlib
import importlib.util
from typing import Any

from .main import GROUPS


def register(subparsers: Any) -> None:
    group = subparsers.add_parser(
        "sim", help="run a simulated device on this machine",
        description="Run a device simulator in the foreground until interrupted. Each prints "
                    "where it listens first.")
    sub = group.add_subparsers(dest="family", metavar="FAMILY")
    sub.required = True
    for name in GROUPS:
        module_name = f"{__package__}.{name}"
        if name in ("sim", "demo", "record") or importlib.util.find_spec(module_name) is None:
            continue
        module = importlib.import_module(module_name)
        if hasattr(module, "register_sim"):
            module.register_sim(sub)
