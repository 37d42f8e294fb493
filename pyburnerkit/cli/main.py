"""Entry point of the ``pyburnerkit`` command.

Each device family's group comes from the family registry (:mod:`pyburnerkit.families`,
third-party families included): its CLI module exposes ``register(subparsers)``. The generic
commands (``sim``, ``demo``, ``record``) follow. Expected failures print one line
on stderr and exit 1 (device or connection) or 2 (usage); only bugs show a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from typing import List, Optional

from .. import __version__
from ..errors import ConfigurationError, PyBurnerKitError, WriteNotAllowedError
from . import plugins
from .common import EXIT_DEVICE, EXIT_USAGE, UsageError

#: The commands that are no family's, listed after the families in ``--help``.
GENERIC = ["sim", "demo", "record", "serve"]


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> "None":  # type: ignore[override]
        self.print_usage(sys.stderr)
        raise UsageError(message)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="pyburnerkit",
                     description="Talk to energy and appliance hardware, or to its simulators.")
    parser.add_argument("--version", action="version", version=f"pyburnerkit {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0,
                        help="log to stderr (-v info, -vv debug, -vvv wire frames)")
    sub = parser.add_subparsers(dest="group", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    for family, module, why_not in plugins.hooks("cli"):
        if module is None:  # a plug-in whose CLI module is broken: say so, offer the rest
            plugins.warn(f"no {family.name} commands ({why_not})")
            continue
        plugins.call_hook(family, "commands", module.register, sub)
    for name in GENERIC:
        importlib.import_module(f"{__package__}.{name}").register(sub)
    plugins.report_problems()
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except UsageError as exc:
        print(f"pyburnerkit: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    handler = None
    if args.verbose:
        from .. import log_to_stderr
        handler = log_to_stderr(logging.INFO if args.verbose == 1 else logging.DEBUG,
                                wire=args.verbose >= 3)
    try:
        return _dispatch(args)
    finally:
        if handler is not None:  # main() may run in process (tests, notebooks): undo it
            root = logging.getLogger("pyburnerkit")
            root.removeHandler(handler)
            root.setLevel(logging.NOTSET)


def _dispatch(args: argparse.Namespace) -> int:
    try:
        return int(args.handler(args) or 0)
    except UsageError as exc:
        print(f"pyburnerkit: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except ConfigurationError as exc:
        print(f"pyburnerkit: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except WriteNotAllowedError as exc:  # a usage matter: the command lacked --allow-writes
        print(f"pyburnerkit: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except PyBurnerKitError as exc:
        print(f"pyburnerkit: {type(exc).__name__}: {exc}", file=sys.stderr)
        return EXIT_DEVICE
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    sys.exit(main())
