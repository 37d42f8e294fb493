"""Entry point of the ``pyburnerkit`` command.

Each device family's group comes from the family registry (:mod:`pyburnerkit.families`,
third-party families included): its CLI module exposes ``register(subparsers)``. The generic
commands (``sim``, ``demo``, ``record``) follow.

Exit codes, the same for every group (``docs/cli.rst``): 0 ok, 1 device or runtime error,
2 usage or configuration error (a write without ``--allow-writes`` included), 3 a missing
extra (the message names the ``pip install`` command), 130 interrupted (Ctrl-C / SIGINT).
Expected failures print one line on stderr, in the command line's words (``--username``,
not the library's ``username=``); only bugs show a traceback.

Shell completion: with ``argcomplete`` installed, ``eval "$(register-python-argcomplete
pyburnerkit)"`` completes commands and options; without it nothing changes.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from typing import List, Optional

from .. import __version__
from ..errors import (BackendUnavailableError, ConfigurationError, PyBurnerKitError,
                      WriteNotAllowedError)
from . import plugins
from .common import (EXIT_DEVICE, EXIT_INTERRUPTED, EXIT_MISSING, EXIT_USAGE, UsageError,
                     cli_wording)

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


def _complete(parser: argparse.ArgumentParser) -> None:
    """Answer a shell's completion request (argcomplete), when argcomplete is installed.

    Without ``_ARGCOMPLETE`` in the environment argcomplete returns at once; without
    argcomplete installed there is nothing to complete and nothing changes."""
    import os
    if "_ARGCOMPLETE" not in os.environ:
        return
    try:
        import argcomplete
    except ImportError:
        return
    argcomplete.autocomplete(parser)


def main(argv: Optional[List[str]] = None) -> int:
    """Run one command; returns its exit code (see the module docstring). Blocks until the
    command ends; Ctrl-C ends it with 130 after its clients closed."""
    parser = build_parser()
    _complete(parser)
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


def _say(line: str) -> None:
    try:
        sys.stderr.write(line + "\n")
        sys.stderr.flush()
    except (OSError, ValueError):  # stderr gone too: the exit code still tells
        pass


def _end_stdout_line() -> None:
    """Finish what is on stdout before an error or interruption is reported, so a reader of
    the output never gets half a line."""
    try:
        sys.stdout.flush()
    except (OSError, ValueError):
        pass


def _missing_extra(exc: ImportError) -> Optional[str]:
    """The pip command for a module a family's extra provides, if ``exc`` is about one."""
    from .. import families as registry
    name = (getattr(exc, "name", None) or "").split(".")[0]
    if not name:
        return None
    for family in registry.families():
        if any(req.split(".")[0] == name for req in family.requires) and family.extra:
            return f'pip install "pyburnerkit[{family.extra}]"'
    return None


def _dispatch(args: argparse.Namespace) -> int:
    try:
        return int(args.handler(args) or 0)
    except UsageError as exc:
        _end_stdout_line()
        _say(f"pyburnerkit: error: {cli_wording(str(exc))}")
        return EXIT_USAGE
    except ConfigurationError as exc:
        _end_stdout_line()
        _say(f"pyburnerkit: error: {cli_wording(str(exc))}")
        return EXIT_USAGE
    except WriteNotAllowedError as exc:  # a usage matter: the command lacked --allow-writes
        _end_stdout_line()
        _say(f"pyburnerkit: error: {cli_wording(str(exc))}")
        return EXIT_USAGE
    except BackendUnavailableError as exc:  # a missing extra; the message names it
        _end_stdout_line()
        _say(f"pyburnerkit: error: {cli_wording(str(exc))}")
        return EXIT_MISSING
    except PyBurnerKitError as exc:
        _end_stdout_line()
        _say(f"pyburnerkit: {type(exc).__name__}: {cli_wording(str(exc))}")
        return EXIT_DEVICE
    except KeyboardInterrupt:
        _end_stdout_line()
        _say("pyburnerkit: interrupted")
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # the reader went away (``| head``): nothing more to say, and nobody to say it to
        try:
            sys.stdout = open(os.devnull, "w")  # no second error when Python flushes at exit
        except OSError:
            pass
        return 0
    except ModuleNotFoundError as exc:
        command = _missing_extra(exc)
        if command is None:
            raise
        _end_stdout_line()
        _say(f"pyburnerkit: error: {exc.name} is not installed: {command}")
        return EXIT_MISSING
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError, PermissionError) as exc:
        if exc.filename is None:  # not about a file the command line named
            raise
        _end_stdout_line()
        _say(f"pyburnerkit: error: {exc.filename}: {exc.strerror or exc}")
        return EXIT_USAGE
    except OSError as exc:  # the network or the system refused: a runtime error, one line
        _end_stdout_line()
        _say(f"pyburnerkit: {type(exc).__name__}: {exc.strerror or exc}")
        return EXIT_DEVICE


if __name__ == "__main__":
    sys.exit(main())
