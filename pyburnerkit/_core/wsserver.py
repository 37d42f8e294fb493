"""The server side of RFC 6455 for simulators: the upgrade hand-shake and the frame loop
(the framing itself is in :mod:`.wsframe`).

Only what a small embedded WebSocket server does: text frames, masked client frames, close.
How the server treats pings and continuation frames is left to the subclass, because devices
differ there (the Afterburner firmware ignores both).
"""

from __future__ import annotations

import base64
import hashlib
import struct
from typing import List

from .simserver import SimConnection, SimServer
from .wsframe import OP_CLOSE, OP_PING, OP_TEXT, encode_frame, parse_frame_header, unmask

GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
MAX_HANDSHAKE = 8192


def accept_key(key: str) -> str:
    return base64.b64encode(hashlib.sha1((key + GUID).encode("ascii")).digest()).decode("ascii")


class WebSocketSimServer(SimServer):
    """A :class:`SimServer` whose clients speak WebSocket. Subclasses get text messages."""

    def on_ws_open(self, conn: SimConnection) -> None:
        """The upgrade hand-shake completed."""

    def on_ws_text(self, conn: SimConnection, text: str) -> None:
        """A complete text frame arrived."""

    def on_ws_control(self, conn: SimConnection, opcode: int, payload: bytes) -> None:
        """A ping, pong or other non-text frame arrived (default: ignored)."""

    def send_text(self, conn: SimConnection, text: str) -> None:
        if conn.state == "open":
            conn.send(encode_frame(OP_TEXT, text.encode("utf-8")))

    def send_close(self, conn: SimConnection) -> None:
        if conn.state == "open":
            conn.send(encode_frame(OP_CLOSE, struct.pack("!H", 1000)))

    # ------------------------------------------------------------------ framing
    def on_connect(self, conn: SimConnection) -> None:
        conn.state = "http"

    def on_data(self, conn: SimConnection, data: bytes) -> None:
        conn.buffer += data
        if conn.state == "http":
            end = conn.buffer.find(b"\r\n\r\n")
            if end < 0:
                if len(conn.buffer) > MAX_HANDSHAKE:
                    conn.close()
                return
            request, conn.buffer = bytes(conn.buffer[:end]), conn.buffer[end + 4:]
            if not self._handshake(conn, request):
                return
        while conn.state == "open" and not conn.closed:
            header = parse_frame_header(conn.buffer)
            if header is None:
                return
            fin, opcode, size, mask, pos = header
            if opcode == OP_PING and self.consume_ping_payload is False:
                # Quirk hook: a server that does not consume ping payloads (see subclass).
                del conn.buffer[:pos]
                self.on_ws_control(conn, opcode, b"")
                continue
            if len(conn.buffer) < pos + size:
                return
            payload = unmask(bytes(conn.buffer[pos:pos + size]), mask)
            del conn.buffer[:pos + size]
            if opcode == OP_TEXT and fin:
                try:
                    text = payload.decode("utf-8")
                except UnicodeDecodeError:
                    continue
                self.on_ws_text(conn, text)
            elif opcode == OP_CLOSE:
                self.send_close(conn)
                conn.close()
            else:
                self.on_ws_control(conn, opcode, payload)

    #: False emulates servers that skip a ping's header but leave its payload in the stream.
    consume_ping_payload = True

    def _handshake(self, conn: SimConnection, request: bytes) -> bool:
        lines: List[str] = request.decode("latin-1").split("\r\n")
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        key = headers.get("sec-websocket-key")
        if not lines[0].startswith("GET ") or "websocket" not in headers.get("upgrade", "").lower() \
                or not key:
            body = b"WebSocket connections only"
            conn.send(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nConnection: close\r\n"
                      b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
            conn.close()
            return False
        conn.send(("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                   "Connection: Upgrade\r\n"
                   f"Sec-WebSocket-Accept: {accept_key(key)}\r\n\r\n").encode("ascii"))
        conn.state = "open"
        self.on_ws_open(conn)
        return True
