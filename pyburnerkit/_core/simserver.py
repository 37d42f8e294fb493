"""The device side of every socket simulator: connections, timers and fault injection.

A simulator subclasses :class:`SimServer` and answers bytes with bytes, reusing its family's
codec. It can listen on a real TCP port (``start(listen=True)``, what ``pyburnerkit sim`` and
the integration tests use) and/or hand out in-process links with :meth:`SimServer.attach`
(a connected socket pair: real bytes, no port; the ``sim://`` URLs use it).

Everything runs on one thread, ``pyburnerkit-sim-<name>``, which sleeps until a socket is
readable or a timer is due. The fault-injection calls are safe from any thread.
"""

from __future__ import annotations

import logging
import random
import socket
import struct
import threading
import time
from typing import Any, Callable, List, Optional, Tuple, TypeVar

from .loop import EventLoop, TimerHandle
from .timeouts import Deadline

log = logging.getLogger(__name__)


class SimConnection:
    """One client link as the simulated device sees it."""

    def __init__(self, server: "SimServer", sock: socket.socket, peer: str) -> None:
        self.server = server
        self.sock = sock
        self.peer = peer
        self.buffer = bytearray()
        self.closed = False
        self.fd = -1
        self.state: Any = None  # per-connection protocol state, owned by the subclass

    def send(self, data: bytes) -> None:
        """Send bytes to the client (honouring an injected reply delay). Sim thread only."""
        delay = self.server.reply_delay
        if delay > 0:
            self.server.loop.call_later(delay, self._send_now, data)
        else:
            self._send_now(data)

    def _send_now(self, data: bytes) -> None:
        if self.closed:
            return
        try:
            self.sock.sendall(data)
        except OSError:
            self.server._drop(self)

    def close(self, *, reset: bool = False) -> None:
        self.server._drop(self, reset=reset)


_S = TypeVar("_S", bound="SimServer")


class SimServer:
    """Base class of the socket simulators. Subclasses override the ``on_*`` hooks."""

    name = "sim"

    def __init__(self, *, seed: Optional[int] = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.loop = EventLoop()
        self.random = random.Random(seed)
        self.clock = clock
        self.connections: List[SimConnection] = []
        self.reply_delay = 0.0
        self.received: List[Any] = []  # decoded requests, for assertions (subclasses append)
        self._refuse = 0
        self._listener: Optional[socket.socket] = None
        self._thread: Optional[threading.Thread] = None
        self._started = threading.Event()
        self._lock = threading.Lock()
        self.host = "127.0.0.1"
        self.port = 0

    # ------------------------------------------------------------------ hooks (sim thread)
    def on_connect(self, conn: SimConnection) -> None:
        """A client connected."""

    def on_data(self, conn: SimConnection, data: bytes) -> None:
        """Bytes arrived from a client (``conn.buffer`` is free for framing)."""

    def on_disconnect(self, conn: SimConnection) -> None:
        """A client went away (or was dropped)."""

    def on_start(self) -> None:
        """The sim thread started (arm model timers here)."""

    # ------------------------------------------------------------------ lifecycle
    def start(self: _S, host: str = "127.0.0.1", port: int = 0, *, listen: bool = True) -> _S:
        """Start the sim thread, listening on ``host:port`` (0 picks a free port) if asked.

        :returns: self; its ``port`` attribute then holds the real port.
        """
        if listen:
            sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((host, port))
            sock.listen(16)
            sock.setblocking(False)
            self._listener = sock
            self.host, self.port = host, sock.getsockname()[1]
        self._thread = threading.Thread(target=self._run, daemon=True,
                                        name=f"pyburnerkit-sim-{self.name}-{self.port or 'local'}")
        self._thread.start()
        self._started.wait(5)
        return self

    @property
    def address(self) -> Tuple[str, int]:
        return self.host, self.port

    def close(self, timeout: float = 5.0) -> None:
        """Drop every client, stop listening and join the sim thread (bounded, idempotent)."""
        thread = self._thread
        if thread is None:
            # never started: no thread will run the loop's own close, so release it here
            self.loop.close()
            return
        self.loop.stop()
        if thread is not None and thread is not threading.current_thread():
            thread.join(Deadline(timeout).remaining())
            if thread.is_alive():
                log.warning("%s did not stop within %s s", thread.name, timeout)

    def __enter__(self: _S) -> _S:
        if self._thread is None:
            self.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def attach(self) -> socket.socket:
        """An in-process link to this simulator: the client end of a connected socket pair."""
        client, device = socket.socketpair()
        done = threading.Event()

        def adopt() -> None:
            self._adopt(device, "in-process")
            done.set()

        self.loop.call_soon_threadsafe(adopt)
        done.wait(5)
        return client

    # ------------------------------------------------------------------ fault injection
    def call_soon(self, callback: Callable[..., Any], *args: Any) -> None:
        """Run ``callback`` on the sim thread (any thread)."""
        self.loop.call_soon_threadsafe(callback, *args)

    def run_sync(self, callback: Callable[[], Any], timeout: float = 5.0) -> Any:
        """Run ``callback`` on the sim thread and return its result (any other thread)."""
        if self.loop.in_loop_thread():
            return callback()
        box: List[Any] = []
        done = threading.Event()

        def call() -> None:
            try:
                box.append((True, callback()))
            except BaseException as exc:
                box.append((False, exc))
            done.set()

        self.loop.call_soon_threadsafe(call)
        if not done.wait(timeout):
            raise TimeoutError("the simulator thread did not answer")
        ok, value = box[0]
        if not ok:
            raise value
        return value

    def disconnect(self) -> None:
        """Drop every connected client at once (a TCP reset), like a device reboot."""
        def reset_all() -> None:
            for conn in list(self.connections):
                conn.close(reset=True)
        self.run_sync(reset_all)

    def refuse_connections(self, count: int) -> None:
        """Reset the next ``count`` connection attempts as soon as they arrive."""
        with self._lock:
            self._refuse = count

    def delay_responses(self, seconds: float) -> None:
        """Hold every reply back by ``seconds`` (0 restores prompt replies)."""
        self.reply_delay = max(0.0, float(seconds))

    def send_raw(self, data: bytes) -> None:
        """Write raw bytes to every client, bypassing the protocol (garbage injection)."""
        def send_all() -> None:
            for conn in list(self.connections):
                conn._send_now(data)
        self.run_sync(send_all)

    @property
    def client_count(self) -> int:
        return len(self.connections)

    # ------------------------------------------------------------------ internals
    def call_later(self, delay: float, callback: Callable[..., Any], *args: Any) -> TimerHandle:
        """Schedule on the sim thread (sim thread only)."""
        return self.loop.call_later(delay, callback, *args)

    def _run(self) -> None:
        self.loop.thread_id = threading.get_ident()
        try:
            if self._listener is not None:
                self.loop.add_reader(self._listener, self._accept)
            self.on_start()
            self._started.set()
            self.loop.run()
        except Exception:
            log.exception("%s: simulator crashed", self.name)
        finally:
            self._started.set()
            for conn in list(self.connections):
                self._drop(conn)
            if self._listener is not None:
                self._listener.close()
            self.loop.close()

    def _accept(self) -> None:
        try:
            sock, addr = self._listener.accept()  # type: ignore[union-attr]
        except (BlockingIOError, OSError):
            return
        with self._lock:
            refuse = self._refuse > 0
            if refuse:
                self._refuse -= 1
        if refuse:
            _reset(sock)
            return
        self._adopt(sock, f"{addr[0]}:{addr[1]}")

    def _adopt(self, sock: socket.socket, peer: str) -> None:
        sock.setblocking(True)
        sock.settimeout(5.0)  # a stuck client must not freeze the simulated device for ever
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            pass  # socket pairs are not TCP
        conn = SimConnection(self, sock, peer)
        self.connections.append(conn)
        conn.fd = self.loop.add_reader(sock, lambda: self._readable(conn))
        self.on_connect(conn)

    def _readable(self, conn: SimConnection) -> None:
        try:
            data = conn.sock.recv(65536)
        except (BlockingIOError, InterruptedError, socket.timeout):
            return
        except OSError:
            data = b""
        if not data:
            self._drop(conn)
            return
        self.on_data(conn, data)

    def _drop(self, conn: SimConnection, *, reset: bool = False) -> None:
        if conn.closed:
            return
        conn.closed = True
        self.loop.remove_reader(conn.fd)
        if conn in self.connections:
            self.connections.remove(conn)
        if reset:
            _reset(conn.sock)
        else:
            conn.sock.close()
        self.on_disconnect(conn)


def _reset(sock: socket.socket) -> None:
    """Close with RST instead of FIN, as a device that reboots or refuses does."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        pass
    sock.close()
