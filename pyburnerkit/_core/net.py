"""TCP connects that the closing thread can interrupt, for sessions that own a socket."""

from __future__ import annotations

import os
import socket
from typing import Callable, Optional

from .loop import EventLoop
from .timeouts import Deadline


def connect_tcp(loop: EventLoop, host: str, port: int, deadline: Deadline, *,
                on_socket: Optional[Callable[[Optional[socket.socket]], None]] = None,
                io_timeout: Optional[float] = None) -> socket.socket:
    """Connect to ``host:port`` from the session thread, trying each address in turn.

    The connect itself is non-blocking and waits in :meth:`EventLoop.wait_io`, so a
    ``close()`` from another thread (which stops the loop) interrupts it at once.
    ``on_socket`` sees each socket before it connects (and ``None`` after a failure), so the
    session can shut it down from ``abort_blocking``.

    :returns: a connected, blocking socket with TCP_NODELAY and ``io_timeout`` set (a bound on
        a send to a stuck peer, or a frame that stops half-way).
    :raises OSError: refused, unreachable, timed out (``socket.timeout``) or interrupted.
    """
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    last: Optional[BaseException] = None
    for family, kind, proto, _, address in infos:
        sock = socket.socket(family, kind, proto)
        if on_socket is not None:
            on_socket(sock)
        try:
            sock.setblocking(False)
            err = sock.connect_ex(address)
            if err:
                if not loop.wait_io(sock, write=True, timeout=deadline.remaining()):
                    raise socket.timeout(f"TCP connect to {host}:{port} timed out"
                                         if not loop.stopping() else "connect interrupted")
                err = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                if err:
                    raise OSError(err, f"connect to {host}:{port} failed: {os.strerror(err)}")
            sock.setblocking(True)
            sock.settimeout(io_timeout)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            return sock
        except OSError as exc:
            sock.close()
            if on_socket is not None:
                on_socket(None)
            last = exc
    raise last or OSError(f"no address for {host}:{port}")


def shutdown_socket(sock: Optional[socket.socket]) -> None:
    """Wake every thread blocked on ``sock`` (its reads see end-of-file); never raises.

    Used by ``abort_blocking``: closing the socket from another thread would not wake a
    blocked ``recv`` on Linux, a shutdown does.
    """
    if sock is not None:
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


def release_socket(loop: EventLoop, sock: Optional[socket.socket], fd: int = -1) -> None:
    """Stop watching ``fd`` (when >= 0) on ``loop`` and close ``sock`` (when given); never
    raises. Loop thread only: what a session's ``close_transport`` does with its socket."""
    if fd >= 0:
        loop.remove_reader(fd)
    if sock is not None:
        try:
            sock.close()
        except OSError:
            pass
