"""Run a server in the foreground until a stop signal, then clean up: the names plug-in
families use for their ``pyburnerkit sim <name>`` (see docs/extending.rst). Both are the
built-in simulators' own runners (:mod:`pyburnerkit.cli.sim`): SIGINT, SIGTERM and SIGHUP
stop them, and the cleanup always runs."""

from __future__ import annotations

from typing import Any, Callable

from .sim import hold, serve

__all__ = ["run_until_interrupted", "serve_in_foreground"]


def run_until_interrupted(cleanup: Callable[[], Any]) -> None:
    """Block the main thread until SIGINT, SIGTERM or SIGHUP, then call ``cleanup``
    (always)."""
    hold(lambda: None, cleanup)


def serve_in_foreground(sim: Any, host: str, port: int, address: Callable[[str], str]) -> None:
    """Start ``sim`` listening on ``host:port``, print ``address(host_text)`` (the line tools
    wait for) and run until a stop signal, then close it.

    :raises ConfigurationError: the address cannot be listened on.
    """
    serve(sim, host, port, address)
