"""Pure encode/decode of Arbin CTI frames: no I/O, no threads, no logging.

Frame layout (little-endian, packed)::

    0  u64 token 0x11DDDDDDDDDDDDDD   (wire bytes DD DD DD DD DD DD DD 11)
    8  u32 length     requests: total - 12; feedbacks: total
    12 u32 command code
    16 u32 extended command code (0)
    20 ... arguments
    -2 u16 checksum: sum of every preceding byte, modulo 65536

Both views live here: the client's (requests out, feedbacks in) and the cycler's, used by the
simulator (requests in, feedbacks out). Channels are 0-based indexes in this module's wire
messages; :mod:`.models` is 1-based and the conversion happens at the model boundary.
"""

from __future__ import annotations

import codecs
import dataclasses
import struct
import sys
from array import array
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Tuple, Type, Union

from ..errors import ConfigurationError, ProtocolError, check_range
from .models import (AUX_TYPES, AssignResult, AuxReading, BmsReading, ChannelState,
                     ChannelStatus, ConnectResult, ContinueResult, CtiVersion, CyclerInfo,
                     GetMVResult, LoginResult, MetaValueType, SerialResult, SetMVResult,
                     SmbReading, StartResult, StopResult)

TOKEN = 0x11DDDDDDDDDDDDDD
TOKEN_BYTES = struct.pack("<Q", TOKEN)  # DD DD DD DD DD DD DD 11
HEADER_SIZE = 20
CHECKSUM_SIZE = 2
#: Smallest frames: a header plus a checksum.
MIN_FRAME = HEADER_SIZE + CHECKSUM_SIZE
#: A sanity bound on one frame (512 channels with every aux reading fit in a few MiB).
MAX_FRAME = 16 * 1024 * 1024

# Command codes: request -> feedback (the two middle nibbles swap).
LOGIN = 0xEEAB0001
LOGIN_FEEDBACK = 0xEEBA0001
#: Connect / set kick-out flag (SPEC11/INSTR45 layout; sent before or after the log-in).
CONNECT = 0xEEAB0002
CONNECT_FEEDBACK = 0xEEBA0002
CHANNEL_INFO = 0xEEAB0003
CHANNEL_INFO_FEEDBACK = 0xEEBA0003
ASSIGN_SCHEDULE = 0xBB210001
ASSIGN_SCHEDULE_FEEDBACK = 0xBB120001
START_SCHEDULE = 0xBB320004
START_SCHEDULE_FEEDBACK = 0xBB230004
JUMP_CHANNEL = 0xBB320005
JUMP_CHANNEL_FEEDBACK = 0xBB230005
CONTINUE_CHANNEL = 0xBB320006
CONTINUE_CHANNEL_FEEDBACK = 0xBB230006
STOP_SCHEDULE = 0xBB310001
STOP_SCHEDULE_FEEDBACK = 0xBB130001
RESUME_SCHEDULE = 0xBB310002
RESUME_SCHEDULE_FEEDBACK = 0xBB130002
SET_MV = 0xBB150001
SET_MV_FEEDBACK = 0xBB510001
UPDATE_MV_ADVANCED = 0xBB150002
UPDATE_MV_ADVANCED_FEEDBACK = 0xBB510002
#: Get meta variable: the codes are Arbin's (DLL); the layout is undocumented and ours (see
#: :class:`GetMVRequest`).
GET_MV = 0xBB150003
GET_MV_FEEDBACK = 0xBB510003
GET_SERIAL = 0xBB340001
GET_SERIAL_FEEDBACK = 0xBB430001
#: What a cycler answers to a command it does not know (code from Arbin's DLL; the argument
#: layout is undocumented, so the arguments are kept as raw bytes).
UNKNOWN_COMMAND_FEEDBACK = 0xBB111111

FEEDBACK_OF = {
    LOGIN: LOGIN_FEEDBACK, CHANNEL_INFO: CHANNEL_INFO_FEEDBACK,
    ASSIGN_SCHEDULE: ASSIGN_SCHEDULE_FEEDBACK, START_SCHEDULE: START_SCHEDULE_FEEDBACK,
    JUMP_CHANNEL: JUMP_CHANNEL_FEEDBACK, CONTINUE_CHANNEL: CONTINUE_CHANNEL_FEEDBACK,
    STOP_SCHEDULE: STOP_SCHEDULE_FEEDBACK, RESUME_SCHEDULE: RESUME_SCHEDULE_FEEDBACK,
    SET_MV: SET_MV_FEEDBACK, UPDATE_MV_ADVANCED: UPDATE_MV_ADVANCED_FEEDBACK,
    GET_SERIAL: GET_SERIAL_FEEDBACK, CONNECT: CONNECT_FEEDBACK, GET_MV: GET_MV_FEEDBACK,
}

COMMAND_NAMES = {
    LOGIN: "login", LOGIN_FEEDBACK: "login feedback", CHANNEL_INFO: "channel info",
    CHANNEL_INFO_FEEDBACK: "channel info feedback", ASSIGN_SCHEDULE: "assign schedule",
    ASSIGN_SCHEDULE_FEEDBACK: "assign schedule feedback", START_SCHEDULE: "start schedule",
    START_SCHEDULE_FEEDBACK: "start schedule feedback", JUMP_CHANNEL: "jump to step",
    JUMP_CHANNEL_FEEDBACK: "jump to step feedback", CONTINUE_CHANNEL: "continue",
    CONTINUE_CHANNEL_FEEDBACK: "continue feedback", STOP_SCHEDULE: "stop schedule",
    STOP_SCHEDULE_FEEDBACK: "stop schedule feedback", RESUME_SCHEDULE: "resume schedule",
    RESUME_SCHEDULE_FEEDBACK: "resume schedule feedback", SET_MV: "set meta variable",
    SET_MV_FEEDBACK: "set meta variable feedback", UPDATE_MV_ADVANCED: "update meta variables",
    UPDATE_MV_ADVANCED_FEEDBACK: "update meta variables feedback", GET_SERIAL: "get serial",
    GET_SERIAL_FEEDBACK: "get serial feedback", CONNECT: "connect",
    CONNECT_FEEDBACK: "connect feedback", GET_MV: "get meta variable",
    GET_MV_FEEDBACK: "get meta variable feedback",
    UNKNOWN_COMMAND_FEEDBACK: "unknown-command feedback",
}

#: Result enum of each 128-byte command feedback.
RESULT_TYPES: Dict[int, Type[Any]] = {
    ASSIGN_SCHEDULE_FEEDBACK: AssignResult, START_SCHEDULE_FEEDBACK: StartResult,
    JUMP_CHANNEL_FEEDBACK: StartResult, RESUME_SCHEDULE_FEEDBACK: StartResult,
    CONTINUE_CHANNEL_FEEDBACK: ContinueResult, STOP_SCHEDULE_FEEDBACK: StopResult,
    SET_MV_FEEDBACK: SetMVResult, UPDATE_MV_ADVANCED_FEEDBACK: SetMVResult,
}

# String field sizes in bytes on the wire ("wide" fields are UTF-16LE, 2 bytes per char).
USERNAME_BYTES = 32
PASSWORD_BYTES = 32
SCHEDULE_CHARS = 200
TEST_NAME_CHARS = 72
BARCODE_CHARS = 72
EXIT_CONDITION_BYTES = 100
STEP_AND_CYCLE_BYTES = 64
#: A 128-byte command feedback / stop-style request carries this many reserved bytes.
RESERVED_101 = 101
MAX_MV_BATCH = 160
MAX_CHANNELS = 0xFFFF
MV_TYPE_IV = 1
MV_VALUE_FLOAT = 1
ALL_CHANNELS = -1

CHANNEL_RECORD_SIZE = 1753
_RECORD_FIXED = struct.Struct("<Ih?400s144s100s64s144s400s400sHddffffffffffff14H")
assert _RECORD_FIXED.size == CHANNEL_RECORD_SIZE


# ------------------------------------------------------------------------- strings
def encode_narrow(text: str, size: int, name: str) -> bytes:
    """A single-byte string field (UTF-8), NUL padded; the field keeps one NUL terminator.

    :raises ConfigurationError: not a string, holds a NUL, or longer than ``size - 1`` bytes.
    """
    if not isinstance(text, str):
        raise ConfigurationError(f"{name} must be text, got {type(text).__name__}")
    if "\0" in text:
        raise ConfigurationError(f"{name} must not contain NUL characters")
    raw = text.encode("utf-8")
    if len(raw) > size - 1:
        raise ConfigurationError(
            f"{name} is {len(raw)} bytes long: the limit is {size - 1} bytes "
            f"(a {size}-byte field with its terminating zero)")
    return raw.ljust(size, b"\0")


def encode_wide(text: str, chars: int, name: str) -> bytes:
    """A UTF-16LE string field of ``chars`` characters, NUL padded, with one NUL terminator.

    :raises ConfigurationError: not a string, holds a NUL, or longer than ``chars - 1`` units.
    """
    if not isinstance(text, str):
        raise ConfigurationError(f"{name} must be text, got {type(text).__name__}")
    if "\0" in text:
        raise ConfigurationError(f"{name} must not contain NUL characters")
    try:
        raw = text.encode("utf-16-le")
    except UnicodeEncodeError as exc:
        raise ConfigurationError(f"{name} cannot be encoded as UTF-16: {exc}") from None
    units = len(raw) // 2
    if units > chars - 1:
        raise ConfigurationError(
            f"{name} is {units} characters long: the limit is {chars - 1} characters "
            f"(a {chars}-character field with its terminating zero)")
    return raw.ljust(chars * 2, b"\0")


def decode_narrow(raw: bytes) -> str:
    """Up to the first NUL; UTF-8, falling back to Windows-1252/Latin-1 for other bytes."""
    raw = bytes(raw).split(b"\0", 1)[0]
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


_utf16_decode = codecs.utf_16_le_decode


def decode_wide(raw: bytes) -> str:
    """UTF-16LE up to the first NUL unit (a leading byte-order mark is dropped)."""
    # Decoded whole in C and cut at the first NUL character: a U+0000 character comes only
    # from a 00 00 code unit, so this equals searching the units first (a per-unit Python
    # loop that was most of the decoding time of a wide channel-info feedback).
    if raw[:2] == b"\0\0":  # an empty field: most of a record's five wide fields
        return ""
    size = len(raw)
    if size % 2:
        raw = raw[:size - 1]
    text = _utf16_decode(raw, "replace", True)[0].partition("\0")[0]
    return text[1:] if text[:1] == "\ufeff" else text


# ------------------------------------------------------------------------- framing
#: Below this many bytes ``sum()`` is as fast as the lane arithmetic of :func:`checksum`.
_SMALL_SUM = 4096
#: 0x00FF in every 16-bit lane, per lane count (a frame size repeats often: cache the masks).
_LANE_MASKS: Dict[int, int] = {}


def checksum(data: Union[bytes, bytearray, memoryview]) -> int:
    """The CTI checksum: the byte sum of ``data`` modulo 65536."""
    size = len(data)
    if size < _SMALL_SUM:
        return sum(data) & 0xFFFF
    # Add the bytes in parallel in one big integer (C arithmetic, no per-byte Python step):
    # even bytes plus odd bytes in 16-bit lanes (each lane <= 510), then fold the upper half
    # of the lanes onto the lower half. Seven folds keep every lane below 65536
    # (510 * 2**7 = 65280); the few lanes left are summed as an array.
    lanes = (size + 1) // 2
    mask = _LANE_MASKS.get(lanes)
    if mask is None:
        if len(_LANE_MASKS) > 64:
            _LANE_MASKS.clear()
        mask = _LANE_MASKS[lanes] = int.from_bytes(b"\xff\x00" * lanes, "little")
    number = int.from_bytes(data, "little")
    number = (number & mask) + ((number >> 8) & mask)
    for _ in range(7):
        if lanes == 1:
            break
        half = (lanes + 1) // 2
        bits = 16 * half
        number = (number & ((1 << bits) - 1)) + (number >> bits)
        lanes = half
    return sum(array("H", number.to_bytes(2 * lanes, sys.byteorder))) & 0xFFFF


def build_frame(command: int, args: bytes, *, feedback: bool) -> bytes:
    """Wrap ``args`` in a header and checksum, with the length convention of the direction."""
    total = HEADER_SIZE + len(args) + CHECKSUM_SIZE
    length = total if feedback else total - 12
    body = TOKEN_BYTES + struct.pack("<III", length, command, 0) + args
    return body + struct.pack("<H", checksum(body))


def frame_total(header: Union[bytes, bytearray, memoryview], *, feedback: bool) -> int:
    """The total size of the frame that starts with ``header`` (at least 12 bytes).

    :raises ProtocolError: a wrong token or an impossible length.
    """
    if bytes(header[:8]) != TOKEN_BYTES:
        raise ProtocolError("frame does not start with the CTI token: "
                            f"{bytes(header[:8]).hex(' ')}")
    length = int(struct.unpack_from("<I", header, 8)[0])
    total = length if feedback else length + 12
    if not MIN_FRAME <= total <= MAX_FRAME:
        raise ProtocolError(
            f"impossible {'feedback' if feedback else 'request'} length field {length} "
            f"(frame of {total} bytes; limits {MIN_FRAME}..{MAX_FRAME})")
    return total


def split_frame(frame: bytes, *, feedback: bool) -> Tuple[int, bytes]:
    """Check one complete frame and return ``(command, args)``.

    :raises ProtocolError: wrong token, length field, size, extended code or checksum.
    """
    if not isinstance(frame, bytes):
        frame = bytes(frame)
    if len(frame) < MIN_FRAME:
        raise ProtocolError(f"frame of {len(frame)} bytes is shorter than a header "
                            f"and checksum ({MIN_FRAME} bytes)")
    total = frame_total(frame, feedback=feedback)
    if total != len(frame):
        raise ProtocolError(f"length field says {total} bytes but the frame has {len(frame)}")
    (stored,) = struct.unpack_from("<H", frame, len(frame) - 2)
    with memoryview(frame) as view:  # no copy of a 450 kB feedback just to sum it
        computed = checksum(view[:-2])
    if stored != computed:
        raise ProtocolError(f"checksum mismatch: frame says 0x{stored:04X}, "
                            f"bytes sum to 0x{computed:04X}")
    command, extended = struct.unpack_from("<II", frame, 12)
    if extended != 0:
        raise ProtocolError(f"extended command code 0x{extended:08X} is not 0")
    return command, frame[HEADER_SIZE:-2]


class FrameReader:
    """Cuts a TCP byte stream into frames by their length field, across segments.

    ``feedback=True`` reads what a cycler sends (length = total), ``False`` what a client
    sends (length = total - 12). Bytes past a frame are kept for the next one.
    """

    def __init__(self, *, feedback: bool) -> None:
        self.feedback = feedback
        self._buf = bytearray()
        self._need: Optional[int] = None

    def feed(self, data: bytes) -> List[bytes]:
        """Add bytes; return every complete frame (checked later by :func:`split_frame`).

        :raises ProtocolError: the stream does not start with a token or has an impossible
            length (the stream cannot be resynchronised; drop the link).
        """
        self._buf += data
        frames: List[bytes] = []
        while True:
            if self._need is None:
                if len(self._buf) < 12:
                    if self._buf and not TOKEN_BYTES.startswith(bytes(self._buf[:8])):
                        raise ProtocolError("stream does not start with the CTI token: "
                                            f"{bytes(self._buf[:8]).hex(' ')}")
                    return frames
                self._need = frame_total(self._buf[:12], feedback=self.feedback)
            if len(self._buf) < self._need:
                return frames
            with memoryview(self._buf) as view:  # one copy per frame, not two
                frames.append(bytes(view[:self._need]))
            del self._buf[:self._need]
            self._need = None

    @property
    def buffered(self) -> int:
        return len(self._buf)

    def clear(self) -> None:
        self._buf.clear()
        self._need = None


class FrameBuffer:
    """One receive buffer, reused for the life of a link, that cuts frames out in place.

    The reading thread receives straight into it (``sock.recv_into(buffer.space())`` then
    ``buffer.commit(n)``), or copies bytes in with :meth:`write`; :meth:`take_frames` returns
    each complete frame as one ``bytes`` (the only copy a frame costs) and moves a partial
    frame's bytes to the front. The buffer grows to the largest frame seen (a 256-channel
    feedback is 449 kB) and shrinks back once it holds nothing when it grew past ``keep``
    bytes. Not thread-safe: one thread owns it. Same framing rules as :class:`FrameReader`.

    :param feedback: True for what a cycler sends (length = total), False for requests.
    :param size: the initial capacity in bytes.
    :param keep: the largest capacity kept while empty, in bytes.
    """

    def __init__(self, *, feedback: bool, size: int = 64 * 1024,
                 keep: int = 1024 * 1024) -> None:
        self.feedback = feedback
        self._size = max(MIN_FRAME, int(size))
        self._keep = max(self._size, int(keep))
        self._buf = bytearray(self._size)
        self._start = 0  # first byte not yet taken as a frame
        self._end = 0  # one past the last byte received
        self._need: Optional[int] = None  # total size of the frame at _start, once known

    @property
    def buffered(self) -> int:
        """Bytes received that are not part of a frame taken yet."""
        return self._end - self._start

    @property
    def capacity(self) -> int:
        """The buffer's size in bytes (what it keeps allocated)."""
        return len(self._buf)

    def clear(self) -> None:
        """Forget every byte (a new link starts from its first frame)."""
        self._start = self._end = 0
        self._need = None
        if len(self._buf) > self._keep:
            self._buf = bytearray(self._size)

    def space(self) -> memoryview:
        """A writable view of the free space (at least one byte, and room for the whole
        frame in progress once its length is known): receive into it, then :meth:`commit`."""
        room = len(self._buf) - self._end
        # the rest of the frame in progress, or (length not known yet) a useful amount
        wanted = 4096 if self._need is None else self._start + self._need - self._end
        if room < wanted:
            self._make_room(wanted)
        return memoryview(self._buf)[self._end:]

    def _make_room(self, more: int) -> None:
        pending = self._end - self._start
        needed = pending + more
        if needed <= len(self._buf) and self._start:
            # enough space once the partial frame moves to the front
            self._buf[:pending] = self._buf[self._start:self._end]
        else:
            # a new array, never a resize: a view handed out earlier may still exist
            grown = bytearray(max(needed, 2 * len(self._buf)))
            grown[:pending] = self._buf[self._start:self._end]
            self._buf = grown
        self._start, self._end = 0, pending

    def commit(self, count: int) -> None:
        """``count`` bytes were received into the view :meth:`space` returned."""
        self._end += count

    def write(self, data: Union[bytes, bytearray, memoryview]) -> None:
        """Copy ``data`` in (for bytes that did not come through :meth:`space`)."""
        size = len(data)
        if len(self._buf) - self._end < size:
            self._make_room(size)
        self._buf[self._end:self._end + size] = data
        self._end += size

    def head(self, size: int = 64) -> bytes:
        """The first ``size`` bytes not taken yet (for an error report)."""
        return bytes(self._buf[self._start:min(self._end, self._start + size)])

    def take_frames(self) -> List[bytes]:
        """Every complete frame received so far, in order (checked later by
        :func:`split_frame`).

        :raises ProtocolError: the stream does not start with a token or has an impossible
            length (the stream cannot be resynchronised; drop the link).
        """
        frames: List[bytes] = []
        buf, start, end = self._buf, self._start, self._end
        with memoryview(buf) as view:
            while True:
                need = self._need
                if need is None:
                    if end - start < 12:
                        if end > start and \
                                not TOKEN_BYTES.startswith(bytes(view[start:min(end, start + 8)])):
                            self._start = start
                            raise ProtocolError(
                                "stream does not start with the CTI token: "
                                f"{bytes(view[start:min(end, start + 8)]).hex(' ')}")
                        break
                    self._start = start
                    need = self._need = frame_total(view[start:start + 12],
                                                    feedback=self.feedback)
                if end - start < need:
                    break
                frames.append(bytes(view[start:start + need]))
                start += need
                self._need = None
        if start == end:
            start = end = 0
            if len(buf) > self._keep:
                self._buf = bytearray(self._size)
        self._start, self._end = start, end
        return frames


# ------------------------------------------------------------------------- helpers
def _whole(name: str, value: Any, low: int, high: int) -> int:
    """A request field's whole number, as the caller passed it, checked against ``low..high``.

    :raises ConfigurationError: naming the value and the limit.
    """
    return int(check_range(name, value, low, high, integer=True))


#: The largest finite 32-bit float: the range of every f32 field.
F32_MAX = 3.4028234663852886e38
#: What a meta variable's value is measured in, for error messages.
MV_UNIT = "no unit of its own: the schedule gives MV_UD values their meaning"


def _f32(name: str, value: Any, unit: str = "", *, low: float = -F32_MAX,
         high: float = F32_MAX) -> float:
    """A finite number that fits an f32 field (and ``low..high``).

    ``unit`` is a short unit ("Ah") or, for unitless fields, a phrase saying so.

    :raises ConfigurationError: naming the value, the limit and the unit.
    """
    short = bool(unit) and " " not in unit
    try:
        return float(check_range(name, value, low, high, unit if short else ""))
    except ConfigurationError as exc:
        note = f" ({unit})" if unit and not short else ""
        raise ConfigurationError(f"{exc}; the field is a finite 32-bit float{note}") from None


def _need(args: bytes, size: int, what: str) -> None:
    if len(args) != size:
        raise ProtocolError(f"{what}: expected {size} argument bytes, got {len(args)}")


# ------------------------------------------------------------------------- requests
@dataclass(frozen=True)
class LoginRequest:
    username: str = field(repr=False)
    password: str = field(repr=False)

    command = LOGIN

    def encode_args(self) -> bytes:
        return (encode_narrow(self.username, USERNAME_BYTES, "username")
                + encode_narrow(self.password, PASSWORD_BYTES, "password"))

    @classmethod
    def decode_args(cls, args: bytes) -> "LoginRequest":
        _need(args, 64, "login request")
        return cls(decode_narrow(args[:32]), decode_narrow(args[32:64]))


@dataclass(frozen=True)
class ChannelInfoRequest:
    channel_index: int  # 0-based, or -1 for all channels
    selection: int = 1
    aux_options: int = 0

    command = CHANNEL_INFO

    def encode_args(self) -> bytes:
        return struct.pack("<hhI32x", _whole("channel index", self.channel_index, -1, 0x7FFF),
                           _whole("channel selection", self.selection, -0x8000, 0x7FFF),
                           _whole("aux options", self.aux_options, 0, 0xFFFFFFFF))

    @classmethod
    def decode_args(cls, args: bytes) -> "ChannelInfoRequest":
        _need(args, 40, "channel info request")
        return cls(*struct.unpack_from("<hhI", args))


@dataclass(frozen=True)
class AssignScheduleRequest:
    channel_index: int
    schedule: str
    test_capacity_ah: float = 0.0
    barcode: str = ""
    mv_initial: Tuple[float, ...] = (0.0,) * 16
    assign_all: bool = False

    command = ASSIGN_SCHEDULE

    def encode_args(self) -> bytes:
        channel = _whole("channel index", self.channel_index, -0x80000000, 0x7FFFFFFF)
        if len(self.mv_initial) != 16:
            raise ConfigurationError(f"mv_initial needs 16 values, got {len(self.mv_initial)}")
        values = [_f32(f"MV_UD{i + 1} initial value", v, MV_UNIT)
                  for i, v in enumerate(self.mv_initial)]
        return (struct.pack("<iB", channel, 1 if self.assign_all else 0)
                + encode_wide(self.schedule, SCHEDULE_CHARS, "schedule name")
                + struct.pack("<f", _f32("test capacity", self.test_capacity_ah, "Ah", low=0.0))
                + encode_wide(self.barcode, BARCODE_CHARS, "barcode")
                + struct.pack("<16f", *values) + bytes(32))

    @classmethod
    def decode_args(cls, args: bytes) -> "AssignScheduleRequest":
        _need(args, 649, "assign schedule request")
        channel, assign_all = struct.unpack_from("<iB", args)
        (capacity,) = struct.unpack_from("<f", args, 405)
        mvs = struct.unpack_from("<16f", args, 553)
        return cls(channel, decode_wide(args[5:405]), capacity, decode_wide(args[409:553]),
                   tuple(mvs), bool(assign_all))


@dataclass(frozen=True)
class StartRequest:
    test_name: str
    channel_indexes: Tuple[int, ...]

    command = START_SCHEDULE

    def encode_args(self) -> bytes:
        if not self.channel_indexes:
            raise ConfigurationError("start needs at least one channel")
        channels = [_whole("channel index", ch, 0, MAX_CHANNELS) for ch in self.channel_indexes]
        return (encode_wide(self.test_name, TEST_NAME_CHARS, "test name")
                + struct.pack(f"<I{len(channels)}H", len(channels), *channels))

    @classmethod
    def decode_args(cls, args: bytes) -> "StartRequest":
        if len(args) < 148:
            raise ProtocolError(f"start request: {len(args)} argument bytes, need >= 148")
        (count,) = struct.unpack_from("<I", args, 144)
        _need(args, 148 + 2 * count, "start request")
        return cls(decode_wide(args[:144]), struct.unpack_from(f"<{count}H", args, 148))


@dataclass(frozen=True)
class _OneChannelFlag:
    """Stop / resume: channel, an all-channels flag and 101 reserved bytes."""

    channel_index: int
    all_channels: bool = False

    command = 0

    def encode_args(self) -> bytes:
        return struct.pack("<IB", _whole("channel index", self.channel_index, 0, 0xFFFFFFFF),
                           1 if self.all_channels else 0) + bytes(101)

    @classmethod
    def decode_args(cls, args: bytes) -> Any:
        _need(args, 106, COMMAND_NAMES[cls.command])
        channel, flag = struct.unpack_from("<IB", args)
        return cls(channel, bool(flag))


@dataclass(frozen=True)
class StopRequest(_OneChannelFlag):
    command = STOP_SCHEDULE


@dataclass(frozen=True)
class ResumeRequest(_OneChannelFlag):
    command = RESUME_SCHEDULE


@dataclass(frozen=True)
class ContinueRequest:
    """Continue (INSTR45 layout: u32 count + u16 channel indexes)."""

    channel_indexes: Tuple[int, ...]

    command = CONTINUE_CHANNEL

    def encode_args(self) -> bytes:
        if not self.channel_indexes:
            raise ConfigurationError("continue needs at least one channel")
        channels = [_whole("channel index", ch, 0, MAX_CHANNELS) for ch in self.channel_indexes]
        return struct.pack(f"<I{len(channels)}H", len(channels), *channels)

    @classmethod
    def decode_args(cls, args: bytes) -> "ContinueRequest":
        if len(args) < 4:
            raise ProtocolError(f"continue request: {len(args)} argument bytes, need >= 4")
        (count,) = struct.unpack_from("<I", args)
        _need(args, 4 + 2 * count, "continue request")
        return cls(struct.unpack_from(f"<{count}H", args, 4))


@dataclass(frozen=True)
class JumpRequest:
    channel_index: int
    step_index: int  # 0-based

    command = JUMP_CHANNEL

    def encode_args(self) -> bytes:
        channel = _whole("channel index", self.channel_index, 0, 0x7FFFFFFF)
        step = _whole("step index", self.step_index, 0, 0x7FFFFFFF)
        return struct.pack("<ii", step, channel) + bytes(101)

    @classmethod
    def decode_args(cls, args: bytes) -> "JumpRequest":
        _need(args, 109, "jump request")
        step, channel = struct.unpack_from("<ii", args)
        return cls(channel, step)


@dataclass(frozen=True)
class SetMVRequest:
    channel_index: int
    meta_code: int
    value: float
    mv_type: int = MV_TYPE_IV
    value_type: int = MV_VALUE_FLOAT

    command = SET_MV

    def encode_args(self) -> bytes:
        channel = _whole("channel index", self.channel_index, 0, 0xFFFFFFFF)
        code = _whole("meta code", self.meta_code, -0x80000000, 0x7FFFFFFF)
        kind = _whole("meta variable type", self.mv_type, -0x80000000, 0x7FFFFFFF)
        value_kind = _whole("meta variable value type", self.value_type, -0x80000000, 0x7FFFFFFF)
        return (struct.pack("<Iii16x", channel, kind, code)
                + struct.pack("<if16x", value_kind,
                              _f32("meta variable value", self.value, MV_UNIT)))

    @classmethod
    def decode_args(cls, args: bytes) -> "SetMVRequest":
        _need(args, 52, "set meta variable request")
        channel, mv_type, code = struct.unpack_from("<Iii", args)
        value_type, value = struct.unpack_from("<if", args, 28)
        return cls(channel, code, value, mv_type, value_type)


@dataclass(frozen=True)
class MVUpdate:
    channel_index: int
    meta_code: int
    value: float


@dataclass(frozen=True)
class UpdateMVAdvancedRequest:
    """Batched meta-variable update (SPEC11 layout: u16 count, 18 reserved, {u16, u16, f32})."""

    entries: Tuple[MVUpdate, ...]

    command = UPDATE_MV_ADVANCED

    def encode_args(self) -> bytes:
        check_range("meta-variable batch", len(self.entries), 1, MAX_MV_BATCH, "entries")
        out = [struct.pack("<H18x", len(self.entries))]
        for e in self.entries:
            out.append(struct.pack("<HHf", _whole("channel index", e.channel_index, 0, 0xFFFF),
                                   _whole("meta code", e.meta_code, 0, 0xFFFF),
                                   _f32("meta variable value", e.value, MV_UNIT)))
        return b"".join(out)

    @classmethod
    def decode_args(cls, args: bytes) -> "UpdateMVAdvancedRequest":
        if len(args) < 20:
            raise ProtocolError(f"update MV request: {len(args)} argument bytes, need >= 20")
        (count,) = struct.unpack_from("<H", args)
        _need(args, 20 + 8 * count, "update MV request")
        return cls(tuple(MVUpdate(*struct.unpack_from("<HHf", args, 20 + 8 * i))
                         for i in range(count)))


@dataclass(frozen=True)
class GetSerialRequest:
    command = GET_SERIAL

    def encode_args(self) -> bytes:
        return bytes(4 + 1 + 101)

    @classmethod
    def decode_args(cls, args: bytes) -> "GetSerialRequest":
        _need(args, 106, "get serial request")
        return cls()


@dataclass(frozen=True)
class ConnectRequest:
    """Connect / set the kick-out flag (total 58 bytes: u32 flag, 32 reserved).

    Arbin's documents disagree on what the flag means. This package (client and simulator)
    reads 1 as "make room for me: drop the other CTI clients if the server is full" and 0 as
    "only if there is room".
    """

    kick_out: bool = False

    command = CONNECT

    def encode_args(self) -> bytes:
        return struct.pack("<I32x", 1 if self.kick_out else 0)

    @classmethod
    def decode_args(cls, args: bytes) -> "ConnectRequest":
        _need(args, 36, "connect request")
        return cls(bool(struct.unpack_from("<I", args)[0]))


@dataclass(frozen=True)
class GetMVRequest:
    """Read one meta variable (code 0xBB150003; total 50 bytes).

    Only the command code is public (Arbin's DLL); the layout is this package's, modelled on
    set-MV: u32 channel index, i32 MV type (1 = IV), i32 meta code, 16 reserved bytes.
    """

    channel_index: int
    meta_code: int
    mv_type: int = MV_TYPE_IV

    command = GET_MV

    def encode_args(self) -> bytes:
        return struct.pack("<Iii16x", _whole("channel index", self.channel_index, 0, 0xFFFFFFFF),
                           _whole("meta variable type", self.mv_type, -0x80000000, 0x7FFFFFFF),
                           _whole("meta code", self.meta_code, -0x80000000, 0x7FFFFFFF))

    @classmethod
    def decode_args(cls, args: bytes) -> "GetMVRequest":
        _need(args, 28, "get meta variable request")
        channel, mv_type, code = struct.unpack_from("<Iii", args)
        return cls(channel, code, mv_type)


REQUEST_TYPES: Dict[int, Any] = {
    cls.command: cls for cls in (LoginRequest, ChannelInfoRequest, AssignScheduleRequest,
                                 StartRequest, StopRequest, ResumeRequest, ContinueRequest,
                                 JumpRequest, SetMVRequest, UpdateMVAdvancedRequest,
                                 GetSerialRequest, ConnectRequest, GetMVRequest)
}


def encode_request(message: Any) -> bytes:
    """A request message to its wire frame (length = total - 12).

    :raises ConfigurationError: a field is out of range or a string is too long.
    """
    return build_frame(message.command, message.encode_args(), feedback=False)


def decode_request(frame: bytes) -> Any:
    """A request frame (as a cycler receives it) to its message.

    :raises ProtocolError: bad framing, unknown command or wrong argument size.
    """
    command, args = split_frame(frame, feedback=False)
    cls = REQUEST_TYPES.get(command)
    if cls is None:
        raise ProtocolError(f"unknown request command 0x{command:08X}")
    return cls.decode_args(args)


# ------------------------------------------------------------------------- feedbacks
@dataclass(frozen=True)
class CommandFeedback:
    """The common 128-byte feedback: echoed channel and a result code."""

    command: int
    channel_index: int
    result: Any  # the result enum of ``command``

    def encode_args(self) -> bytes:
        return struct.pack("<iB", self.channel_index, int(self.result)) + bytes(101)

    @property
    def ok(self) -> bool:
        return int(self.result) == 0


@dataclass(frozen=True)
class SerialFeedback:
    serial: int
    result: SerialResult = SerialResult.SUCCESS

    command = GET_SERIAL_FEEDBACK

    def encode_args(self) -> bytes:
        return struct.pack("<IB", self.serial, int(self.result)) + bytes(101)


@dataclass(frozen=True)
class ConnectFeedback:
    """Answer to :class:`ConnectRequest` (total 62 bytes: u32 flag echoed, u32 result, 32
    reserved)."""

    kick_out: bool
    result: ConnectResult = ConnectResult.ACCEPTED

    command = CONNECT_FEEDBACK

    def encode_args(self) -> bytes:
        return struct.pack("<II32x", 1 if self.kick_out else 0, int(self.result))

    @property
    def ok(self) -> bool:
        return int(self.result) == 0


#: Reserved bytes at the end of a get-MV feedback (this package's layout).
GET_MV_RESERVED = 32


@dataclass(frozen=True)
class GetMVFeedback:
    """Answer to :class:`GetMVRequest` (this package's layout, total 75 bytes): i32 channel
    index, u8 result, i32 meta code, i32 value type, 8 value bytes (i64 for LONG, f64 for
    DOUBLE, zeros otherwise), 32 reserved."""

    channel_index: int
    result: GetMVResult
    meta_code: int = 0
    value_type: MetaValueType = MetaValueType.DOUBLE
    value: Optional[float] = 0.0

    command = GET_MV_FEEDBACK

    def encode_args(self) -> bytes:
        if self.value_type == MetaValueType.LONG:
            raw = struct.pack("<q", int(self.value or 0))
        elif self.value_type == MetaValueType.DOUBLE:
            raw = struct.pack("<d", float(self.value or 0.0))
        else:
            raw = bytes(8)
        return (struct.pack("<iBii", self.channel_index, int(self.result), self.meta_code,
                            int(self.value_type)) + raw + bytes(GET_MV_RESERVED))

    @property
    def ok(self) -> bool:
        return int(self.result) == 0


def _decode_get_mv(args: bytes) -> GetMVFeedback:
    _need(args, 21 + GET_MV_RESERVED, "get meta variable feedback")
    channel, result, code, kind = struct.unpack_from("<iBii", args)
    value: Optional[float]
    if kind == MetaValueType.LONG:
        value = struct.unpack_from("<q", args, 13)[0]
    elif kind == MetaValueType.DOUBLE:
        value = struct.unpack_from("<d", args, 13)[0]
    else:
        value = None  # strings (type 2) have no layout anyone documented
    try:
        value_type = MetaValueType(kind)
    except ValueError:
        raise ProtocolError(f"get meta variable feedback: unknown value type {kind}") from None
    return GetMVFeedback(channel, GetMVResult(result), code, value_type, value)


@dataclass(frozen=True)
class UnknownCommandFeedback:
    """The cycler did not know the request's command (0xBB111111; arguments undocumented).

    The simulator sends the unknown command code as a u32 (its own choice); a real cycler's
    arguments are kept in ``raw``.
    """

    raw: bytes = b""

    command = UNKNOWN_COMMAND_FEEDBACK

    def encode_args(self) -> bytes:
        return bytes(self.raw)

    @property
    def request_command(self) -> Optional[int]:
        """The command the cycler did not know, when the arguments carry it (simulator)."""
        return struct.unpack_from("<I", self.raw)[0] if len(self.raw) == 4 else None


@dataclass(frozen=True)
class LoginFeedback:
    info: CyclerInfo

    command = LOGIN_FEEDBACK

    def encode_args(self) -> bytes:
        i = self.info
        ip = bytes(int(p) for p in i.ip_address.split(".")) if i.ip_address else bytes(4)
        if len(ip) != 4:
            raise ConfigurationError(f"ip_address must be dotted IPv4, got {i.ip_address!r}")
        return (struct.pack("<I4s", int(i.result), ip)
                + encode_narrow(i.serial_number, 16, "serial number")
                + encode_narrow(i.note, 256, "note")
                + encode_wide(i.nickname, 1024, "nickname")
                + encode_wide(i.location, 1024, "location")
                + encode_wide(i.emergency_contact, 1024, "emergency contact")
                + encode_wide(i.other_comments, 1024, "other comments")
                + encode_wide(i.email, 64, "email")
                + encode_wide(i.call, 16, "call")
                + struct.pack("<6I", i.itac, int(i.version), 1 if i.allow_control else 0,
                              i.num_channels, i.user_type, len(i.picture))
                + i.picture)


@dataclass(frozen=True)
class ChannelInfoFeedback:
    statuses: Tuple[ChannelStatus, ...]

    command = CHANNEL_INFO_FEEDBACK

    def encode_args(self) -> bytes:
        return struct.pack("<I", len(self.statuses)) + b"".join(
            encode_channel_record(s) for s in self.statuses)

    def find(self, channel: int) -> Optional[ChannelStatus]:
        """The record of the 1-based ``channel`` (by its channel field), or None."""
        for status in self.statuses:
            if status.channel == channel:
                return status
        return None


def encode_channel_record(s: ChannelStatus) -> bytes:
    """One channel-info record (1753 bytes plus its aux, BMS and SMB entries)."""
    counts = [len(s.aux.get(t, ())) for t in AUX_TYPES] + [len(s.bms), len(s.smb)]
    fixed = _RECORD_FIXED.pack(
        s.channel - 1, int(s.state), bool(s.comm_failure),
        encode_wide(s.schedule, SCHEDULE_CHARS, "schedule"),
        encode_wide(s.test_name, TEST_NAME_CHARS, "test name"),
        encode_narrow(s.exit_condition, EXIT_CONDITION_BYTES, "exit condition"),
        encode_narrow(s.step_and_cycle, STEP_AND_CYCLE_BYTES, "step and cycle"),
        encode_wide(s.barcode, BARCODE_CHARS, "barcode"),
        encode_wide(s.can_config_name, SCHEDULE_CHARS, "CAN config name"),
        encode_wide(s.smb_config_name, SCHEDULE_CHARS, "SMB config name"),
        max(0, s.master_channel - 1), s.test_time_s, s.step_time_s, s.voltage_v, s.current_a,
        s.power_w, s.charge_capacity_ah, s.discharge_capacity_ah, s.charge_energy_wh,
        s.discharge_energy_wh, s.internal_resistance_ohm, s.dvdt_v_per_s, s.acr_ohm, s.aci_ohm,
        s.aci_phase_deg, *counts)
    out = [fixed]
    for t in AUX_TYPES:
        for r in s.aux.get(t, ()):
            out.append(struct.pack("<ff", r.value, r.dt))
    for b in s.bms:
        out.append(struct.pack("<Id", b.index, b.value) + b.unit.encode("utf-8") + b"\0")
    for m in s.smb:
        if isinstance(m.value, str):
            out.append(struct.pack("<II", m.index, 1) + m.value.encode("utf-8") + b"\0")
        else:
            out.append(struct.pack("<IId", m.index, 0, float(m.value)))
        out.append(m.unit.encode("utf-8") + b"\0")
    return b"".join(out)


def _cstring(args: bytes, pos: int, what: str) -> Tuple[str, int]:
    end = args.find(b"\0", pos)
    if end < 0:
        raise ProtocolError(f"{what}: unterminated string at offset {pos}")
    return decode_narrow(args[pos:end]), end + 1


def decode_channel_record(args: bytes, pos: int) -> Tuple[ChannelStatus, int]:
    """Decode one record at ``pos`` of the argument bytes; return it and the next offset."""
    if len(args) - pos < CHANNEL_RECORD_SIZE:
        raise ProtocolError(f"channel record at offset {pos} is truncated: "
                            f"{len(args) - pos} of {CHANNEL_RECORD_SIZE} bytes")
    v = _RECORD_FIXED.unpack_from(args, pos)
    pos += CHANNEL_RECORD_SIZE
    counts = v[25:39]
    aux: Dict[str, Tuple[AuxReading, ...]] = {}
    aux_total = sum(counts[:12])
    if len(args) - pos < 8 * aux_total:
        raise ProtocolError(f"channel record of index {v[0]}: {aux_total} aux readings do not "
                            "fit the frame")
    for name, count in zip(AUX_TYPES, counts[:12]):
        if count:
            pairs = struct.unpack_from(f"<{2 * count}f", args, pos)
            aux[name] = tuple(AuxReading(pairs[2 * k], pairs[2 * k + 1]) for k in range(count))
            pos += 8 * count
    bms: List[BmsReading] = []
    for _ in range(counts[12]):
        if len(args) - pos < 12:
            raise ProtocolError("BMS reading truncated")
        index, value = struct.unpack_from("<Id", args, pos)
        unit, pos = _cstring(args, pos + 12, "BMS unit")
        bms.append(BmsReading(index, value, unit))
    smb: List[SmbReading] = []
    for _ in range(counts[13]):
        if len(args) - pos < 8:
            raise ProtocolError("SMB reading truncated")
        index, kind = struct.unpack_from("<II", args, pos)
        pos += 8
        if kind == 1:
            value, pos = _cstring(args, pos, "SMB value")
        else:
            if len(args) - pos < 8:
                raise ProtocolError("SMB reading truncated")
            (value,) = struct.unpack_from("<d", args, pos)
            pos += 8
        unit, pos = _cstring(args, pos, "SMB unit")
        smb.append(SmbReading(index, value, unit))
    return _status(v, aux, tuple(bms), tuple(smb)), pos


#: ChannelStatus's fields in the order :func:`_status` gives them.
_STATUS_FIELDS = (
    "channel", "state", "comm_failure", "schedule", "test_name", "exit_condition",
    "step_and_cycle", "barcode", "can_config_name", "smb_config_name", "master_channel",
    "test_time_s", "step_time_s", "voltage_v", "current_a", "power_w", "charge_capacity_ah",
    "discharge_capacity_ah", "charge_energy_wh", "discharge_energy_wh",
    "internal_resistance_ohm", "dvdt_v_per_s", "acr_ohm", "aci_ohm", "aci_phase_deg", "aux",
    "bms", "smb")
#: A 256-channel feedback builds 256 statuses: filling the frozen dataclass's ``__dict__``
#: directly is 4x faster than its ``__init__`` (one ``object.__setattr__`` per field). Only
#: while the model is a plain frozen dataclass with exactly these fields; otherwise the
#: constructor runs (tests check that both give equal statuses).
_FAST_STATUS = (tuple(f.name for f in dataclasses.fields(ChannelStatus)) == _STATUS_FIELDS
                and not hasattr(ChannelStatus, "__post_init__")
                and "__slots__" not in vars(ChannelStatus))
_STATES = {int(member): member for member in ChannelState}
_new_object = object.__new__


def _status(v: Tuple[Any, ...], aux: Dict[str, Tuple[AuxReading, ...]],
            bms: Tuple[BmsReading, ...], smb: Tuple[SmbReading, ...]) -> ChannelStatus:
    """The model of one record from its unpacked fixed part ``v`` and its readings."""
    state = _STATES.get(v[1])
    values = (v[0] + 1, ChannelState(v[1]) if state is None else state, bool(v[2]),
              decode_wide(v[3]), decode_wide(v[4]), decode_narrow(v[5]), decode_narrow(v[6]),
              decode_wide(v[7]), decode_wide(v[8]), decode_wide(v[9]), v[10] + 1,
              *v[11:25], aux, bms, smb)
    if not _FAST_STATUS:
        return ChannelStatus(**dict(zip(_STATUS_FIELDS, values)))
    status: ChannelStatus = _new_object(ChannelStatus)
    status.__dict__.update(zip(_STATUS_FIELDS, values))
    return status


def _decode_login(args: bytes) -> LoginFeedback:
    if len(args) < 8656:
        raise ProtocolError(f"login feedback: {len(args)} argument bytes, need >= 8656")
    result, ip = struct.unpack_from("<I4s", args)
    itac, version, allow, channels, user_type, pic_len = struct.unpack_from("<6I", args, 8632)
    _need(args, 8656 + pic_len, "login feedback")
    info = CyclerInfo(
        result=LoginResult(result), ip_address=".".join(str(b) for b in ip),
        serial_number=decode_narrow(args[8:24]), note=decode_narrow(args[24:280]),
        nickname=decode_wide(args[280:2328]), location=decode_wide(args[2328:4376]),
        emergency_contact=decode_wide(args[4376:6424]),
        other_comments=decode_wide(args[6424:8472]), email=decode_wide(args[8472:8600]),
        call=decode_wide(args[8600:8632]), itac=itac, version=CtiVersion(version),
        allow_control=bool(allow), num_channels=channels, user_type=user_type,
        picture=bytes(args[8656:8656 + pic_len]))
    return LoginFeedback(info)


def _decode_channel_info(args: bytes) -> ChannelInfoFeedback:
    if len(args) < 4:
        raise ProtocolError(f"channel info feedback: {len(args)} argument bytes, need >= 4")
    (count,) = struct.unpack_from("<I", args)
    if count * CHANNEL_RECORD_SIZE > len(args) - 4:
        raise ProtocolError(f"channel info feedback announces {count} channels but carries "
                            f"{len(args) - 4} bytes of records")
    if len(args) - 4 == count * CHANNEL_RECORD_SIZE:
        # Records without aux, BMS or SMB readings (the usual all-channel poll) sit at fixed
        # offsets: unpack them all in one pass. A record that announces readings anyway
        # cannot fit such a frame; the general path below reports it.
        bare = []
        with memoryview(args) as view:
            for v in _RECORD_FIXED.iter_unpack(view[4:]):
                if any(v[25:39]):
                    break
                bare.append(_status(v, {}, (), ()))
            else:
                return ChannelInfoFeedback(tuple(bare))
    pos = 4
    statuses = []
    for _ in range(count):
        status, pos = decode_channel_record(args, pos)
        statuses.append(status)
    if pos != len(args):
        raise ProtocolError(f"channel info feedback has {len(args) - pos} bytes after its "
                            f"{count} records")
    return ChannelInfoFeedback(tuple(statuses))


def decode_feedback(frame: bytes) -> Any:
    """A feedback frame (as a client receives it) to its message.

    :raises ProtocolError: bad framing, unknown command or wrong argument size.
    """
    command, args = split_frame(frame, feedback=True)
    if command == LOGIN_FEEDBACK:
        return _decode_login(args)
    if command == CHANNEL_INFO_FEEDBACK:
        return _decode_channel_info(args)
    if command == UNKNOWN_COMMAND_FEEDBACK:
        return UnknownCommandFeedback(bytes(args))
    if command == CONNECT_FEEDBACK:
        _need(args, 40, "connect feedback")
        flag, connect_result = struct.unpack_from("<II", args)
        return ConnectFeedback(bool(flag), ConnectResult(connect_result))
    if command == GET_MV_FEEDBACK:
        return _decode_get_mv(args)
    if command == GET_SERIAL_FEEDBACK:
        _need(args, 106, "get serial feedback")
        serial, result = struct.unpack_from("<IB", args)
        return SerialFeedback(serial, SerialResult(result))
    result_type = RESULT_TYPES.get(command)
    if result_type is None:
        raise ProtocolError(f"unknown feedback command 0x{command:08X}")
    _need(args, 106, COMMAND_NAMES[command])
    channel, result = struct.unpack_from("<iB", args)
    return CommandFeedback(command, channel, result_type(result))


def encode_feedback(message: Any) -> bytes:
    """A feedback message to its wire frame (length = total), as a cycler sends it."""
    return build_frame(message.command, message.encode_args(), feedback=True)


def command_feedback(request_command: int, channel_index: int, result: int) -> CommandFeedback:
    """The 128-byte feedback answering ``request_command``."""
    fb = FEEDBACK_OF[request_command]
    return CommandFeedback(fb, channel_index, RESULT_TYPES[fb](result))


def command_of(frame: Union[bytes, bytearray]) -> Optional[int]:
    """The command code of a frame (None when it is too short); no checks."""
    if len(frame) < 16:
        return None
    return int(struct.unpack_from("<I", frame, 12)[0])


def redact(frame: Any) -> Any:
    """A frame safe to log: login requests lose their credentials."""
    if isinstance(frame, (bytes, bytearray)) and command_of(frame) == LOGIN:
        return f"{bytes(frame[:20]).hex(' ')} <login credentials redacted>"
    return frame
