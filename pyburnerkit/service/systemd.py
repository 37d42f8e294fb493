"""systemd's notify protocol, in the few lines it takes (no dependency): readiness
(``READY=1``), ``STOPPING=1``, status text and the watchdog (``WATCHDOG=1`` every half
``WatchdogSec``), sent as datagrams to the unix socket named by ``$NOTIFY_SOCKET``.

Outside systemd (no ``$NOTIFY_SOCKET``) every call does nothing.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from typing import Callable, Mapping, Optional

log = logging.getLogger(__name__)

__all__ = ["Notifier"]


class Notifier:
    """Talk to systemd (or whatever listens on ``$NOTIFY_SOCKET``).

    :param environ: where ``NOTIFY_SOCKET``, ``WATCHDOG_USEC`` and ``WATCHDOG_PID`` are read
        (default: the process environment).
    """

    def __init__(self, environ: Optional[Mapping[str, str]] = None) -> None:
        env = os.environ if environ is None else environ
        path = env.get("NOTIFY_SOCKET", "")
        if path.startswith("@"):  # an abstract socket
            path = "\0" + path[1:]
        self.address: Optional[str] = path or None
        self.watchdog_interval: Optional[float] = None
        usec = env.get("WATCHDOG_USEC", "")
        pid = env.get("WATCHDOG_PID", "")
        if usec.isdigit() and int(usec) > 0 and (not pid or pid == str(os.getpid())):
            self.watchdog_interval = int(usec) / 1e6 / 2  # ping at half the deadline
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None

    @property
    def enabled(self) -> bool:
        return self.address is not None

    def notify(self, message: str) -> bool:
        """Send one notification (``"READY=1"``, ``"STATUS=..."``...); never raises.

        :returns: whether it was sent (False outside systemd or when the socket refused).
        """
        if self.address is None:
            return False
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
                sock.connect(self.address)
                sock.sendall(message.encode("utf-8"))
            return True
        except OSError as exc:
            log.warning("systemd notification %r failed: %s", message.split("=")[0], exc)
            return False

    def ready(self, status: str = "") -> bool:
        return self.notify("READY=1" + (f"\nSTATUS={status}" if status else ""))

    def stopping(self, status: str = "") -> bool:
        return self.notify("STOPPING=1" + (f"\nSTATUS={status}" if status else ""))

    def status(self, text: str) -> bool:
        return self.notify(f"STATUS={text}")

    def start_watchdog(self, healthy: Callable[[], bool]) -> bool:
        """Ping ``WATCHDOG=1`` every half ``WatchdogSec`` from the thread
        ``pyburnerkit-service-watchdog`` while ``healthy()`` is true (a hung server misses its
        pings and systemd restarts it). Does nothing without a watchdog.

        :returns: whether the thread was started.
        """
        interval = self.watchdog_interval
        if interval is None or self.address is None or self._thread is not None:
            return False

        def run() -> None:
            while True:
                try:
                    alive = healthy()
                except Exception:
                    log.exception("the watchdog's health check failed")
                    alive = False
                if alive:
                    self.notify("WATCHDOG=1")
                if self._stop.wait(interval):
                    return

        self._thread = threading.Thread(target=run, name="pyburnerkit-service-watchdog",
                                        daemon=True)
        self._thread.start()
        return True

    def close(self, timeout: Optional[float] = 1.0) -> bool:
        """Stop the watchdog thread; returns whether it ended within ``timeout``."""
        self._stop.set()
        thread = self._thread
        if thread is None or thread is threading.current_thread():
            return True
        thread.join(timeout)
        return not thread.is_alive()
