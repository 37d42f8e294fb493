"""The TR-1 line protocol in both directions, as pure functions: no I/O, no threads.

The box speaks ASCII lines ending in ``\\n`` (a ``\\r`` before it is ignored), one request and
one reply at a time, in order (there is no request id):

==================  ====================================  ===============================
request             reply                                 meaning
==================  ====================================  ===============================
``ID``              ``ID TR-1 SN=0042 FW=1.3``            model, serial, firmware
``READ``            ``T=21.5 H=40 RELAY=0 LIMIT=30.0``    the status (keys in any order)
``SET RELAY 1``     ``OK``                                close (1) or open (0) the relay
``SET LIMIT 30.5``  ``OK``                                the over-temperature cut-out
==================  ====================================  ===============================

Any request may be answered with ``ERR <code> <text>`` instead (see
:class:`~pyburnerkit_thermo.models.ErrorCode`). The client encodes requests and decodes
replies; the simulator does the reverse with the same functions, so the two cannot drift apart.
Every decoder raises :class:`~pyburnerkit.errors.ProtocolError` for input it cannot read, and
nothing else.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Dict, List, Optional, Union

from pyburnerkit.errors import ProtocolError

from .models import DeviceInfo, ErrorCode, Status

__all__ = ["MAX_LINE", "Identify", "Read", "SetRelay", "SetLimit", "Request", "Refusal",
           "RequestError", "LineReader", "encode_request", "decode_request", "decode_refusal",
           "decode_info", "decode_status", "decode_ok", "encode_info", "encode_status",
           "encode_ok", "encode_refusal"]

#: The longest line either side accepts, without its line end.
MAX_LINE = 128

_NUMBER = re.compile(r"-?[0-9]{1,3}(\.[0-9])?")
_WORD = re.compile(r"[A-Za-z0-9._-]{1,32}")


# ------------------------------------------------------------------------------ requests
@dataclass(frozen=True)
class Identify:
    """``ID``: who is there (sent once per connection, as the hand-shake)."""


@dataclass(frozen=True)
class Read:
    """``READ``: the current status."""


@dataclass(frozen=True)
class SetRelay:
    """``SET RELAY 0|1``."""

    on: bool


@dataclass(frozen=True)
class SetLimit:
    """``SET LIMIT <celsius>``, one decimal on the wire."""

    celsius: float


Request = Union[Identify, Read, SetRelay, SetLimit]


@dataclass(frozen=True)
class Refusal:
    """An ``ERR <code> <text>`` reply: the box understood the line and said no."""

    code: ErrorCode
    text: str


class RequestError(ProtocolError):
    """A request line the box cannot accept (simulator side); ``code`` is what it answers."""

    def __init__(self, code: ErrorCode, text: str) -> None:
        super().__init__(text)
        self.code = code
        self.text = text


# ------------------------------------------------------------------------------ framing
class LineReader:
    """Cuts a byte stream into lines. Keeps a partial line until its end arrives."""

    def __init__(self, max_line: int = MAX_LINE) -> None:
        self.max_line = max_line
        self._buffer = bytearray()

    @property
    def buffered(self) -> int:
        """Bytes of a line whose end has not arrived yet."""
        return len(self._buffer)

    def clear(self) -> None:
        self._buffer.clear()

    def feed(self, data: bytes) -> List[str]:
        """The complete lines in ``data`` (and what came before it), without line ends.

        :raises ProtocolError: a line is longer than ``max_line`` or is not printable ASCII
            (the reader is cleared: the stream is out of step).
        """
        self._buffer += data
        lines: List[str] = []
        while True:
            end = self._buffer.find(b"\n")
            if end < 0:
                break
            raw = bytes(self._buffer[:end]).rstrip(b"\r")
            del self._buffer[:end + 1]
            lines.append(self._text(raw))
        if len(self._buffer) > self.max_line:
            size = len(self._buffer)
            self.clear()
            raise ProtocolError(f"no line end within {size} bytes (a line has at most "
                                f"{self.max_line})")
        return lines

    def _text(self, raw: bytes) -> str:
        if len(raw) > self.max_line:
            self.clear()
            raise ProtocolError(f"a line of {len(raw)} bytes (at most {self.max_line})")
        if any(b < 0x20 or b > 0x7E for b in raw):
            self.clear()
            raise ProtocolError(f"a line that is not printable ASCII: {raw[:40]!r}")
        return raw.decode("ascii")


# ------------------------------------------------------------------------------ client side
def encode_request(request: Request) -> bytes:
    """The line for ``request``, line end included."""
    if isinstance(request, Identify):
        text = "ID"
    elif isinstance(request, Read):
        text = "READ"
    elif isinstance(request, SetRelay):
        text = f"SET RELAY {int(request.on)}"
    else:
        text = f"SET LIMIT {request.celsius:.1f}"
    return text.encode("ascii") + b"\n"


def decode_refusal(line: str) -> Optional[Refusal]:
    """The refusal in an ``ERR`` line, or None for any other line.

    :raises ProtocolError: an ``ERR`` line without a numeric code.
    """
    if line != "ERR" and not line.startswith("ERR "):
        return None
    _, _, rest = line.partition(" ")
    code, _, text = rest.partition(" ")
    if not code.isdigit() or len(code) > 3:
        raise ProtocolError(f"an ERR reply without a numeric code: {line!r}")
    return Refusal(ErrorCode(int(code)), text.strip())


def decode_info(line: str) -> DeviceInfo:
    """``ID <model> SN=<serial> FW=<firmware>``.

    :raises ProtocolError: any other line.
    """
    words = line.split(" ")
    if len(words) != 4 or words[0] != "ID" or not words[2].startswith("SN=") \
            or not words[3].startswith("FW="):
        raise ProtocolError(f"expected 'ID <model> SN=<serial> FW=<firmware>', got {line!r}")
    model, serial, firmware = words[1], words[2][3:], words[3][3:]
    for value in (model, serial, firmware):
        if not _WORD.fullmatch(value):
            raise ProtocolError(f"a malformed ID reply: {line!r}")
    return DeviceInfo(model, serial, firmware)


def _fields(line: str) -> Dict[str, str]:
    fields: Dict[str, str] = {}
    for word in line.split(" "):
        key, sep, value = word.partition("=")
        if not sep or not key or key in fields:
            raise ProtocolError(f"expected KEY=VALUE words, got {line!r}")
        fields[key] = value
    return fields


def _number(fields: Dict[str, str], key: str, line: str) -> float:
    text = fields.get(key)
    if text is None or not _NUMBER.fullmatch(text):
        raise ProtocolError(f"{key} missing or not a number in {line!r}")
    return float(text)


def decode_status(line: str) -> Status:
    """``T=21.5 H=40 RELAY=0 LIMIT=30.0``; keys in any order, unknown keys ignored (a newer
    firmware may add some).

    :raises ProtocolError: a key is missing or its value malformed.
    """
    fields = _fields(line)
    humidity = _number(fields, "H", line)
    relay = fields.get("RELAY")
    if relay not in ("0", "1"):
        raise ProtocolError(f"RELAY missing or not 0/1 in {line!r}")
    if not humidity.is_integer() or not 0 <= humidity <= 100:
        raise ProtocolError(f"H is not a whole percentage in {line!r}")
    return Status(temperature_c=_number(fields, "T", line), humidity_pct=int(humidity),
                  relay=relay == "1", limit_c=_number(fields, "LIMIT", line))


def decode_ok(line: str) -> None:
    """``OK``; :raises ProtocolError: any other line."""
    if line != "OK":
        raise ProtocolError(f"expected OK, got {line!r}")


# ------------------------------------------------------------------------------ device side
def decode_request(line: str) -> Request:
    """What the box makes of a request line (the simulator's half).

    :raises RequestError: carrying the :class:`ErrorCode` the box answers with.
    """
    words = line.split()
    if words == ["ID"]:
        return Identify()
    if words == ["READ"]:
        return Read()
    if len(words) == 3 and words[0] == "SET":
        what, value = words[1], words[2]
        if what == "RELAY":
            if value not in ("0", "1"):
                raise RequestError(ErrorCode.BAD_VALUE, "relay is 0 or 1")
            return SetRelay(value == "1")
        if what == "LIMIT":
            if not _NUMBER.fullmatch(value):
                raise RequestError(ErrorCode.BAD_VALUE, "limit is a number with one decimal")
            return SetLimit(float(value))
    raise RequestError(ErrorCode.UNKNOWN_COMMAND, "unknown command")


def encode_info(info: DeviceInfo) -> bytes:
    return f"ID {info.model} SN={info.serial} FW={info.firmware}\n".encode("ascii")


def encode_status(status: Status) -> bytes:
    return (f"T={status.temperature_c:.1f} H={status.humidity_pct} RELAY={int(status.relay)} "
            f"LIMIT={status.limit_c:.1f}\n").encode("ascii")


def encode_ok() -> bytes:
    return b"OK\n"


def encode_refusal(code: ErrorCode, text: str) -> bytes:
    return f"ERR {int(code)} {text}\n".encode("ascii")
