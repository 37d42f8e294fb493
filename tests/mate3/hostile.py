"""A raw Modbus/TCP peer for hostile-reply tests: it serves a register image correctly (so a
real :class:`Mate3Client` can connect and walk it) until told to answer a request with bytes
of the test's choosing. pymodbus' server is not used here on purpose: it would never send a
malformed frame.
"""

from __future__ import annotations

import selectors
import socket
import struct
import threading
from typing import Callable, Dict, List, Mapping, Optional

#: ``mangle(request, proper_reply)`` returns the bytes to send instead (b"" sends nothing), or
#: None to answer this request properly and keep the mangle for the next one
Mangle = Callable[[bytes, bytes], Optional[bytes]]


def on_writes(mangle: Mangle) -> Mangle:
    """A mangle for the next write request only (reads before it are answered properly)."""
    return lambda request, proper: mangle(request, proper) if request[7] == 16 else None


def proper_reply(registers: Mapping[int, int], request: bytes) -> bytes:
    """What a well-behaved Mate3 answers to one request frame (FC3 or FC16 only)."""
    tid, _pid, _length, unit, function = struct.unpack(">HHHBB", request[:8])

    def frame(pdu: bytes) -> bytes:
        return struct.pack(">HHHB", tid, 0, len(pdu) + 1, unit) + pdu

    if function == 3:
        address, count = struct.unpack(">HH", request[8:12])
        try:
            values = [registers[a] for a in range(address, address + count)]
        except KeyError:
            return frame(bytes([0x83, 2]))
        return frame(bytes([3, 2 * count]) + b"".join(v.to_bytes(2, "big") for v in values))
    if function == 16:
        address, count = struct.unpack(">HH", request[8:12])
        return frame(struct.pack(">BHH", 16, address, count))
    return frame(bytes([function | 0x80, 1]))


class HostilePeer:
    """Serves ``registers`` on 127.0.0.1; :meth:`mangle_next` poisons the next replies."""

    def __init__(self, registers: Mapping[int, int]) -> None:
        self.registers: Dict[int, int] = dict(registers)
        self.requests: List[bytes] = []
        self._mangles: List[Mangle] = []
        self._lock = threading.Lock()
        self._selector = selectors.DefaultSelector()
        self._listener = socket.socket()
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(8)
        self._listener.setblocking(False)
        self.port = self._listener.getsockname()[1]
        self._wake_r, self._wake_w = socket.socketpair()
        self._selector.register(self._listener, selectors.EVENT_READ, "accept")
        self._selector.register(self._wake_r, selectors.EVENT_READ, "wake")
        self._buffers: Dict[socket.socket, bytes] = {}
        self._stop = False
        self._thread = threading.Thread(target=self._run, name=f"hostile-mate3-{self.port}",
                                        daemon=True)
        self._thread.start()

    @property
    def endpoint(self) -> str:
        return f"127.0.0.1:{self.port}"

    def mangle_next(self, *mangles: Mangle) -> None:
        """Answer the next requests with ``mangle(request, proper)``, in order (a mangle that
        returns None waits for a later request)."""
        with self._lock:
            self._mangles.extend(mangles)

    def send_unsolicited(self, data: bytes) -> int:
        """Send ``data`` unasked on every open connection; returns how many got it."""
        sent = 0
        for conn in list(self._buffers):
            try:
                conn.sendall(data)
                sent += 1
            except OSError:
                pass
        return sent

    def clear_mangles(self) -> None:
        with self._lock:
            self._mangles.clear()

    def pending_mangles(self) -> int:
        with self._lock:
            return len(self._mangles)

    def writes(self) -> int:
        return sum(1 for r in list(self.requests) if len(r) > 7 and r[7] in (6, 16))

    def close(self) -> None:
        self._stop = True
        self._wake_w.send(b"x")
        self._thread.join(5.0)
        for sock in list(self._buffers):
            sock.close()
        self._selector.close()
        self._listener.close()
        self._wake_r.close()
        self._wake_w.close()

    def __enter__(self) -> "HostilePeer":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ server thread
    def _run(self) -> None:
        while not self._stop:
            for key, _ in self._selector.select():
                if key.data == "wake":
                    return
                if key.data == "accept":
                    self._accept()
                else:
                    self._readable(key.fileobj)  # type: ignore[arg-type]

    def _accept(self) -> None:
        try:
            conn, _ = self._listener.accept()
        except BlockingIOError:
            return
        conn.setblocking(True)
        self._buffers[conn] = b""
        self._selector.register(conn, selectors.EVENT_READ, "conn")

    def _drop(self, conn: socket.socket) -> None:
        self._selector.unregister(conn)
        self._buffers.pop(conn, None)
        conn.close()

    def _readable(self, conn: socket.socket) -> None:
        try:
            data = conn.recv(4096)
        except OSError:
            data = b""
        if not data:
            self._drop(conn)
            return
        buffer = self._buffers[conn] + data
        while len(buffer) >= 7:
            size = 6 + int.from_bytes(buffer[4:6], "big")
            if len(buffer) < size:
                break
            request, buffer = buffer[:size], buffer[size:]
            self._answer(conn, request)
            if conn not in self._buffers:
                return
        self._buffers[conn] = buffer

    def _answer(self, conn: socket.socket, request: bytes) -> None:
        self.requests.append(request)
        proper = proper_reply(self.registers, request)
        if request[7] == 16 and proper[7] == 16:
            address, count = struct.unpack(">HH", request[8:12])
            for i in range(count):
                self.registers[address + i] = int.from_bytes(request[13 + 2 * i:15 + 2 * i],
                                                             "big")
        reply: Optional[bytes] = None
        with self._lock:
            if self._mangles:
                reply = self._mangles[0](request, proper)
                if reply is not None:
                    self._mangles.pop(0)
        if reply is None:
            reply = proper
        try:
            if reply:
                conn.sendall(reply)
        except OSError:
            self._drop(conn)
