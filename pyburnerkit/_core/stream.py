"""A session over one byte stream: a TCP connection, or a socket pair to an in-process
simulator. What every stream protocol's session shares; the protocol stays in the family."""

from __future__ import annotations

import socket
from typing import Any, Callable, Optional

from ..errors import ConfigurationError
from .net import connect_tcp, release_socket, shutdown_socket
from .session import Session
from .timeouts import Deadline


class StreamSession(Session):
    """A :class:`~pyburnerkit.driver.Session` that owns one stream socket.

    :meth:`open_stream` (called from the family's ``open_transport``, on the I/O thread)
    connects to ``host:port`` - or attaches to the simulator ``sim_factory()`` returns - and
    watches the socket with the family's readable callback. ``abort_blocking`` wakes a connect
    or send blocked on it; ``close_transport`` stops watching and closes it, then calls
    :meth:`on_stream_closed`.

    :param reply_timeout: the socket's I/O timeout: a bound on a send to a stuck peer.
    :param sim_factory: for a ``sim://`` client, returns the (started) simulator to attach to.
    """

    def __init__(self, *, host: str, port: Optional[int], reply_timeout: float,
                 sim_factory: Optional[Callable[[], Any]] = None, **common: Any) -> None:
        super().__init__(**common)
        self.host = host
        self.port = port
        self.reply_timeout = reply_timeout
        self.sim_factory = sim_factory
        self._sock: Optional[socket.socket] = None
        self._fd = -1

    def open_stream(self, deadline: Deadline, on_readable: Callable[[], Any],
                    what: str = "port") -> socket.socket:
        """Connect (or attach to the simulator) and watch the socket; I/O thread only.

        :returns: the connected socket (blocking, with ``reply_timeout`` as its timeout).
        :raises OSError: the connection failed or was interrupted by ``close()``.
        :raises ConfigurationError: a network endpoint without a port (``what`` names it).
        """
        sock: socket.socket
        if self.sim_factory is not None:
            sock = self.sim_factory().attach()
            sock.settimeout(self.reply_timeout)
        else:
            if self.port is None:
                raise ConfigurationError(f"{self.endpoint}: no {what} to connect to")
            sock = connect_tcp(self.loop, self.host, self.port, deadline,
                               on_socket=self._remember, io_timeout=self.reply_timeout)
        self._sock = sock
        self._fd = self.loop.add_reader(sock, on_readable)
        return sock

    def _remember(self, sock: Optional[socket.socket]) -> None:
        self._sock = sock

    def abort_blocking(self) -> None:
        shutdown_socket(self._sock)

    def close_transport(self) -> None:
        sock, self._sock = self._sock, None
        release_socket(self.loop, sock, self._fd)
        self._fd = -1
        self.on_stream_closed()

    def on_stream_closed(self) -> None:
        """The socket is gone (I/O thread): drop what was buffered from it."""
