"""``pyburnerkit sim <family>``: run a device simulator in the foreground.

Every simulator stops the same way: SIGINT (Ctrl-C), SIGTERM (a service manager, ``kill``) and
SIGHUP (its terminal closed, ``kill -HUP``) all end it cleanly - threads joined, sockets
closed, child processes (the Victron simulator's ``dbus-daemon``) stopped and temporary
directories removed - and it exits 0. The handlers are installed before the simulator starts,
so a signal that arrives while it starts still cleans up, and stay installed until cleanup is
done, so a second signal cannot cut it short. SIGKILL cannot be caught: nothing can clean up
after it.
"""

from __future__ import annotations

import argparse
import threading
from types import TracebackType
from typing import Any, Callable, Optional, Type

from ..errors import BackendUnavailableError, ConfigurationError
from . import plugins
from .signals import STOP_SIGNALS, SignalWait

class StopSignals:
    """A context manager that turns :data:`~pyburnerkit.cli.signals.STOP_SIGNALS` into a stop
    request.

    Enter it before starting a simulator and leave it after cleanup. :meth:`wait` blocks
    until one of the signals arrived - on whichever thread the kernel delivered it (see
    :mod:`pyburnerkit.cli.signals`) - or :meth:`stop` was called. Off the main thread no
    handler can be installed; then only :meth:`stop` or a KeyboardInterrupt ends the wait.
    """

    def __init__(self) -> None:
        self.stopped = threading.Event()
        #: the signal that stopped it, or None
        self.signum: Optional[int] = None
        self._signals = SignalWait({sig: self._on_signal for sig in STOP_SIGNALS})

    def _on_signal(self, signum: int) -> None:
        if self.signum is None:
            self.signum = signum
        self.stopped.set()

    def stop(self) -> None:
        """End :meth:`wait` (any thread)."""
        self.stopped.set()
        self._signals.wake()

    def __enter__(self) -> "StopSignals":
        self._signals.__enter__()
        return self

    def wait(self) -> None:
        """Block until a stop signal arrived (or :meth:`stop`); a KeyboardInterrupt also ends
        the wait."""
        try:
            self._signals.wait(self.stopped)
        except KeyboardInterrupt:
            self.stopped.set()

    def __exit__(self, kind: Optional[Type[BaseException]], exc: Optional[BaseException],
                 tb: Optional[TracebackType]) -> None:
        self._signals.__exit__(kind, exc, tb)


def hold(start: Callable[[], Any], cleanup: Callable[[], Any]) -> int:
    """Run a simulator in the foreground: ``start()`` (which starts it and prints where it
    listens), then block until SIGINT, SIGTERM or SIGHUP, then ``cleanup()`` - always, also
    when ``start`` failed half way or a signal arrived while it ran.

    :returns: 0 (a simulator stopped by a signal ended as asked).
    :raises: whatever ``start`` raised, after ``cleanup`` ran.
    """
    with StopSignals() as signals:
        try:
            start()
            signals.wait()
        finally:
            cleanup()
    return 0


def serve(sim: Any, host: str, port: int, address: Callable[[str], str]) -> int:
    """Start a socket simulator (``sim.start(host, port)``), print ``address(host:port)``
    first (the line tools wait for), run until a stop signal, close it.

    :raises ConfigurationError: ``host:port`` cannot be listened on.
    """
    def start() -> None:
        try:
            sim.start(host, port)
        except OSError as exc:
            raise ConfigurationError(f"cannot listen on {host}:{port}: {exc}") from exc
        shown = f"[{sim.host}]" if ":" in sim.host else sim.host
        print(address(f"{shown}:{sim.port}"), flush=True)

    return hold(start, sim.close)


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
