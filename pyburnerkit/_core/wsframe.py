"""RFC 6455 framing that both ends need: frame headers, server frames, unmasking.

The simulators' server side (:mod:`.wsserver`) frames with it; the Afterburner client only asks
:func:`parse_frame_header` whether its read-ahead buffer already holds a whole frame (the
frames themselves are read by websocket-client).
"""

from __future__ import annotations

import struct
from typing import Optional, Tuple, Union

OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA


def encode_frame(opcode: int, payload: bytes) -> bytes:
    """An unmasked, final server frame."""
    head = bytes([0x80 | opcode])
    size = len(payload)
    if size < 126:
        head += bytes([size])
    elif size < 1 << 16:
        head += bytes([126]) + struct.pack("!H", size)
    else:
        head += bytes([127]) + struct.pack("!Q", size)
    return head + payload


def parse_frame_header(buf: Union[bytes, bytearray]
                       ) -> Optional[Tuple[bool, int, int, Optional[bytes], int]]:
    """(fin, opcode, payload length, mask key, header length), or None if incomplete."""
    if len(buf) < 2:
        return None
    fin = bool(buf[0] & 0x80)
    opcode = buf[0] & 0x0F
    masked = bool(buf[1] & 0x80)
    size = buf[1] & 0x7F
    pos = 2
    if size == 126:
        if len(buf) < 4:
            return None
        size = struct.unpack("!H", buf[2:4])[0]
        pos = 4
    elif size == 127:
        if len(buf) < 10:
            return None
        size = struct.unpack("!Q", buf[2:10])[0]
        pos = 10
    mask = None
    if masked:
        if len(buf) < pos + 4:
            return None
        mask = bytes(buf[pos:pos + 4])
        pos += 4
    return fin, opcode, size, mask, pos


def whole_frame_buffered(buf: Union[bytes, bytearray]) -> bool:
    """Whether ``buf`` starts with a complete frame (header and payload)."""
    header = parse_frame_header(buf)
    return header is not None and len(buf) >= header[4] + header[2]


def unmask(payload: bytes, mask: Optional[bytes]) -> bytes:
    if not mask:
        return payload
    repeated = (mask * (len(payload) // 4 + 1))[:len(payload)]
    return (int.from_bytes(payload, "big") ^ int.from_bytes(repeated, "big")).to_bytes(
        len(payload), "big")
