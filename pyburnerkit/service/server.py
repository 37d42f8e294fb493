"""The WSGI server: waitress (pure Python, threaded, production-grade), from the ``service``
extra.

Threads: ``pyburnerkit-service-http`` runs waitress's socket loop (accepting, reading and
writing); waitress's own ``waitress-N`` workers run the application, one request each.
:meth:`HttpServer.close` stops both, bounded.
"""

from __future__ import annotations

import logging
import threading
from typing import Any, Callable, Optional

from .._core.timeouts import Deadline
from ..errors import BackendUnavailableError, ConfigurationError

log = logging.getLogger(__name__)

__all__ = ["HttpServer", "load_waitress"]

#: pyDE1 accepts firmware bodies of up to 1 MiB; the generic API checks its own 16 KiB
MAX_REQUEST_BODY = 1024 * 1024 + 64 * 1024


def load_waitress() -> Any:
    """The waitress module.

    :raises BackendUnavailableError: it is not installed (the message names
        ``pip install "pyburnerkit[service]"``).
    """
    try:
        import waitress.server  # type: ignore[import-untyped,unused-ignore]
    except ImportError as exc:
        raise BackendUnavailableError("service", "waitress",
                                      reason="the HTTP server of pyburnerkit serve") from exc
    return waitress.server


class HttpServer:
    """Serve ``app`` on ``host:port`` (port 0: a free one) with ``threads`` workers.

    Constructing binds the socket (so the port is known and a taken port fails here, as a
    :class:`~pyburnerkit.errors.ConfigurationError`); :meth:`start` begins serving.
    """

    def __init__(self, app: Callable[..., Any], host: str = "127.0.0.1", port: int = 0, *,
                 threads: int = 16) -> None:
        server_mod = load_waitress()
        self._thread: Optional[threading.Thread] = None
        self._closed = False
        try:
            self._server = server_mod.create_server(
                app, host=host, port=port, threads=threads, ident="pyburnerkit",
                # keep reading a connection while its request runs, so a stream learns that
                # its client went away (waitress.client_disconnected)
                channel_request_lookahead=1, max_request_body_size=MAX_REQUEST_BODY,
                # X-Forwarded-Host reaches the app: it is used only to recognise a page
                # served through a reverse proxy as same-origin (wsgi.check_browser_origin);
                # nothing trusts it for anything else, and a cross-site page cannot set it
                clear_untrusted_proxy_headers=False, expose_tracebacks=False)
        except OSError as exc:
            raise ConfigurationError(f"cannot listen on {host}:{port}: "
                                     f"{exc.strerror or exc}") from None
        self.host = host
        self.port = int(self._server.effective_port)

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def running(self) -> bool:
        thread = self._thread
        return thread is not None and thread.is_alive()

    def start(self) -> "HttpServer":
        """Start the socket loop thread; returns at once."""
        if self._thread is not None or self._closed:
            raise RuntimeError("an HttpServer is started once")
        self._thread = threading.Thread(target=self._run, name="pyburnerkit-service-http",
                                        daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        try:
            self._server.run()
        except Exception:
            log.exception("the HTTP server loop failed")

    def close(self, timeout: Optional[float] = 5.0) -> bool:
        """Stop listening, drop every connection, stop the workers.

        Blocks until the loop thread and the workers ended or ``timeout`` seconds passed (a
        worker still inside a request finishes it first: the service closes its devices
        before, so such calls end at once). Idempotent; any thread but the loop's.

        :returns: True when everything stopped in time.
        """
        deadline = Deadline(timeout)
        first = not self._closed
        self._closed = True
        server = self._server
        if first:
            if self._thread is not None:
                # run on the loop thread: closing its sockets from here would race it
                server.trigger.pull_trigger(lambda: _close_all(server))
            else:
                _close_all(server)
        thread = self._thread
        ok = True
        if thread is not None and thread is not threading.current_thread():
            thread.join(deadline.remaining())
            ok = not thread.is_alive()
        left = deadline.remaining()
        dispatcher = server.task_dispatcher
        dispatcher.shutdown(cancel_pending=True, timeout=0 if left is None else left)
        if not ok or dispatcher.threads:
            # the trigger stays open (see _close_all): a worker still inside a request pulls it
            log.warning("the HTTP server did not stop within %s s", timeout)
            return False
        server.trigger.close()
        return True


def _close_all(server: Any) -> None:
    """Empty the loop's map, so the loop ends: close the listener and every connection, and
    take the trigger out without closing it.

    A worker that finishes a request pulls the trigger (a write to its pipe) and may do so
    after the loop is gone; waitress keeps the pipe's descriptor number once it closed it,
    so that late write would fail with EBADF or, worse, land in whatever socket or file got
    the number since. The trigger is closed in :meth:`HttpServer.close` once the workers
    have stopped."""
    from waitress import wasyncore  # installed: it made the server
    for channel in list(server._map.values()):
        try:
            if channel is server.trigger:
                channel.del_channel()
            elif channel is server:
                # the listener only: the server's own close() would close the trigger too
                wasyncore.dispatcher.close(channel)
            elif hasattr(channel, "handle_close"):
                channel.handle_close()
            else:
                channel.close()
        except Exception:  # one bad socket must not keep the others open
            log.debug("closing %r failed", channel, exc_info=True)
