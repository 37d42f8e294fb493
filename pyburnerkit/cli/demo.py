"""``pyburnerkit demo``: every simulator on loopback, driven through the real network path.

The families come from the registry, plug-ins included. Each family runs on its own: one whose
extra is not installed (or whose dependency cannot be imported here) is skipped with one line
naming the exact ``pip install`` that enables it, one whose demo fails is reported, and the
others still run. Exit status: 0 when every family that could run did (skipped ones included),
1 when a family's demo failed, 2 for a bad command line.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import signal
import sys
import threading
import time
from typing import Any, Callable, Dict, List, Optional, Tuple

from .. import families as registry
from ..errors import BackendUnavailableError, PyBurnerKitError
from ..families import Family
from . import plugins
from .common import EXIT_DEVICE, EXIT_OK, UsageError

log = logging.getLogger(__name__)

#: besides Ctrl-C, the signals that end the demo cleanly (SIGHUP does not exist on Windows)
_STOP_SIGNALS = [signal.SIGTERM] + ([signal.SIGHUP] if hasattr(signal, "SIGHUP") else [])


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "demo", help="show a live session against every family's simulator (no hardware)",
        description="Start each installed family's device simulator on 127.0.0.1, talk to it "
                    "through the real transport, print what happens, clean up and exit. A "
                    "family whose extra is not installed is skipped with one line naming the "
                    "pip command that enables it. Exit status 0 when every installed family "
                    "ran, 1 when a family's demo failed (the others still run), 2 for a bad "
                    "command line.")
    parser.add_argument("--duration", type=float, default=6.0,
                        help="upper bound in seconds for each device's live part (default 6)")
    parser.add_argument("--only", action="append", default=None, metavar="FAMILY",
                        help="run only this family's part (repeatable)")
    parser.set_defaults(handler=run)


def enable_command(family: Family) -> str:
    """The exact command that installs what ``family`` needs."""
    if family.extra:
        return f'pip install "pyburnerkit[{family.extra}]"'
    return f"pip install {' '.join(family.requires) or family.name}"


def why_skipped(family: Family, exc: Optional[BaseException] = None) -> Optional[str]:
    """One line saying why ``family`` cannot run here and the command that enables it, or
    None when it can (and ``exc``, if given, is not about its dependencies).

    Asked before a family runs (``exc`` None: is its extra installed, and does it import?
    A package can be found and still fail to import - half installed, built against other
    headers) and again after it raised an ImportError.
    """
    absent = registry.missing(family)
    if absent is not None:  # "<family> needs the Python module 'x': pip install ..."
        return f"skipped: {absent}"
    if exc is not None and not isinstance(exc, ImportError):
        return None
    broken = _unimportable(family)
    if broken:
        module, error = next(iter(broken.items()))
        return (f"skipped: {family.name} cannot import the Python module {module!r} "
                f"({error}): {enable_command(family)}")
    if exc is None:
        return None
    if isinstance(exc, BackendUnavailableError):
        # a program or module outside the extra (the dbus-daemon program): its message
        # names the fix
        return f"skipped: {exc}"
    return None


def _unimportable(family: Family) -> Dict[str, str]:
    """The modules of ``family.requires`` that fail to import here, with why (this runs
    their import code, as the family's demo would)."""
    out = {}
    for module in family.requires:
        try:
            importlib.import_module(module)
        except Exception as exc:  # whatever the import raises is why the family cannot run
            out[module] = f"{type(exc).__name__}: {exc}"
    return out


def families(only: Optional[List[str]] = None
             ) -> List[Tuple[Family, Optional[Callable[..., None]], Optional[str]]]:
    """``(family, demo, why_not)`` per registered family with a demo (those named in
    ``only``, if given); ``demo`` is None and ``why_not`` says why (with the command that fixes
    it) when the family cannot run here. Imports each chosen family's dependencies.

    :raises UsageError: ``only`` names a family without a demo.
    """
    hooks = list(plugins.hooks("cli_demo"))
    if only:
        unknown = set(only) - {family.name for family, _, _ in hooks}
        if unknown:
            raise UsageError(f"no demo for {', '.join(sorted(unknown))}")
        hooks = [h for h in hooks if h[0].name in only]
    found: List[Tuple[Family, Optional[Callable[..., None]], Optional[str]]] = []
    for family, demo, why_not in hooks:
        if demo is None:  # its CLI module did not import: a broken plug-in
            found.append((family, None, why_not))
            continue
        skip = why_skipped(family)
        found.append((family, None if skip else demo, skip))
    return found


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def run(args: argparse.Namespace) -> int:
    """Every family's demo in turn. SIGTERM and SIGHUP end it as Ctrl-C does: the running
    family's simulators (the Victron demo's dbus-daemon) are stopped on the way out and the
    command exits 130."""
    previous: Dict[int, Any] = {}
    if threading.current_thread() is threading.main_thread():
        for sig in _STOP_SIGNALS:
            previous[sig] = signal.signal(sig, _interrupt)
    try:
        return _run(args)
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _run(args: argparse.Namespace) -> int:
    def write(line: str) -> None:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()

    chosen = families(args.only)
    started = time.monotonic()
    ran: List[str] = []
    skipped: List[str] = []
    failed: List[str] = []
    for family, demo, why_not in chosen:
        name = family.name
        if demo is None:
            write(f"== {name} == {why_not}")
            skipped.append(name)
            continue
        write(f"== {name} ==")
        try:
            demo(write, duration=args.duration)
        except Exception as exc:  # one family's failure must not hide the others' demos
            skip = why_skipped(family, exc)
            if skip is not None:  # found but not importable: a skip, not a failure
                write(f"== {name} == {skip}")
                skipped.append(name)
                continue
            if not isinstance(exc, PyBurnerKitError):
                log.error("the %s demo failed", name, exc_info=True)
            print(f"pyburnerkit: {name} demo failed: {type(exc).__name__}: {exc}",
                  file=sys.stderr)
            failed.append(name)
            continue
        ran.append(name)
    extra = []
    if skipped:
        extra.append(f"skipped: {', '.join(skipped)}")
    if failed:
        extra.append(f"FAILED: {', '.join(failed)}")
    write(f"demo finished in {time.monotonic() - started:.1f} s "
          f"({len(ran)} device families, all on simulators"
          f"{'; ' + '; '.join(extra) if extra else ''})")
    return EXIT_DEVICE if failed else EXIT_OK
