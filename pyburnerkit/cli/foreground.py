"""Run a server in the foreground until Ctrl-C or SIGTERM, then clean up."""

from __future__ import annotations

import signal
import threading
from typing import Any, Callable


def run_until_interrupted(cleanup: Callable[[], Any]) -> None:
    """Block the main thread until SIGINT/SIGTERM, then call ``cleanup`` (always)."""
    stop = threading.Event()

    def on_signal(signum: int, frame: Any) -> None:
        stop.set()

    previous = {}
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            previous[sig] = signal.signal(sig, on_signal)
        except ValueError:  # not the main thread: rely on KeyboardInterrupt semantics
            pass
    try:
        while not stop.wait(3600):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        cleanup()


def serve_in_foreground(sim: Any, host: str, port: int, address: Callable[[str], str]) -> None:
    """Start ``sim`` listening on ``host:port``, print ``address(host_text)`` (the line tools
    wait for) and run until interrupted.

    :raises ConfigurationError: the address cannot be listened on.
    """
    from ..errors import ConfigurationError
    try:
        sim.start(host, port)
    except OSError as exc:
        sim.close()
        raise ConfigurationError(f"cannot listen on {host}:{port}: {exc}") from exc
    shown = f"[{sim.host}]" if ":" in sim.host else sim.host
    print(address(f"{shown}:{sim.port}"), flush=True)
    run_until_interrupted(sim.close)
