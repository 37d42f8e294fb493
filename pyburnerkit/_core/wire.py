"""Wire logging: frames to ``pyburnerkit.<family>.wire`` at DEBUG, and a ring of recent frames.

The ring (what :class:`~pyburnerkit.errors.ProtocolError` carries as ``frames``) is bounded by
bytes, not by a count of frames: a client whose frames are large (a 256-channel Arbin reply)
costs no more than one whose frames are small. Each kept frame is cut to
:data:`DEFAULT_FRAME_BYTES`, and the ring keeps at most :data:`DEFAULT_WIRE_LOG_BYTES` per
client, frames and bookkeeping included (both adjustable per :class:`WireLog`).
"""

from __future__ import annotations

import collections
import json
import logging
import sys
import time
from typing import Any, Callable, Deque, List, Optional, Tuple

Frame = Tuple[float, str, Any]

#: Bytes the recent-frames ring of one client may hold (frames and bookkeeping), by default.
DEFAULT_WIRE_LOG_BYTES = 64 * 1024
#: Bytes of one frame kept in the ring, by default; a longer frame is kept cut to this length
#: (:class:`TruncatedBytes` / :class:`TruncatedText`, which say how long it was).
DEFAULT_FRAME_BYTES = 1024
#: What one ring entry costs besides its frame: the (time, direction, frame) tuple, the float
#: and the deque slot (CPython 3.8+, 64-bit).
_ENTRY_OVERHEAD = sys.getsizeof((0.0, "", None)) + sys.getsizeof(0.0) + 8
_BYTES_OVERHEAD = sys.getsizeof(b"")
_TEXT_OVERHEAD = sys.getsizeof("")
_TUPLE_OVERHEAD = sys.getsizeof(())
#: A container's entries are estimated at this many bytes each (the slot plus a small value:
#: a float, a short string; keys are usually interned and shared with the decoder).
_ITEM_ESTIMATE = 64


class TruncatedBytes(bytes):
    """The first bytes of a longer frame kept in the wire log; ``size`` is its full length."""

    size: int

    def __new__(cls, head: bytes, size: int) -> "TruncatedBytes":
        self = super().__new__(cls, head)
        self.size = size
        return self

    def __repr__(self) -> str:
        return f"{bytes.__repr__(self)}... ({self.size} bytes)"


class TruncatedText(str):
    """The start of a longer text frame kept in the wire log; ``size`` is its full length."""

    size: int

    def __new__(cls, head: str, size: int) -> "TruncatedText":
        self = super().__new__(cls, head)
        self.size = size
        return self

    def __repr__(self) -> str:
        return f"{str.__repr__(self)}... ({self.size} chars)"


def bounded(frame: Any, limit: int) -> Tuple[Any, int]:
    """``(kept, cost)``: the frame as the ring keeps it, at most about ``limit`` bytes, and
    what keeping it costs in bytes.

    Bytes and text are cut to ``limit`` (a copy is kept, so a receive buffer reused by the
    reader is never pinned or seen changing). Small containers (a decoded JSON object, a
    ``(member, path)`` tuple) are kept as they are, with an estimated cost; one whose
    estimate is over ``limit`` is kept as its compact text, cut to ``limit``.
    """
    kind = type(frame)
    if kind is bytes or kind is bytearray or kind is memoryview:
        size = len(frame) if kind is not memoryview else frame.nbytes
        if size > limit:
            return TruncatedBytes(bytes(frame[:limit]), size), limit + _BYTES_OVERHEAD + 64
        kept = frame if kind is bytes else bytes(frame)
        return kept, size + _BYTES_OVERHEAD
    if kind is str:
        if len(frame) > limit:
            return TruncatedText(frame[:limit], len(frame)), limit + _TEXT_OVERHEAD + 64
        return frame, len(frame) + _TEXT_OVERHEAD
    if kind is tuple and len(frame) <= 8:
        # The common case (a D-Bus member and a path or a count) costs no copy.
        cost = _TUPLE_OVERHEAD + 8 * len(frame)
        for item in frame:
            item_kind = type(item)
            if item_kind is str:
                cost += len(item) + _TEXT_OVERHEAD
            elif item_kind is int or item_kind is float or item is None or item_kind is bool:
                cost += 32
            else:
                break
        else:
            if cost <= limit + _TEXT_OVERHEAD:
                return frame, cost
        parts = [bounded(item, limit) for item in frame]
        cost = sys.getsizeof(frame) + sum(c for _, c in parts)
        if cost <= limit + _TEXT_OVERHEAD:
            return tuple(k for k, _ in parts), cost
    elif frame is None or kind in (int, float, bool):
        return frame, 32
    elif kind is dict or kind is list:
        cost = sys.getsizeof(frame) + _ITEM_ESTIMATE * len(frame)
        if cost <= limit:
            return frame, cost
    text = format_frame(frame, limit)
    if len(text) > limit:
        text = TruncatedText(text[:limit], len(text))
    return text, len(text) + _TEXT_OVERHEAD


def format_frame(frame: Any, limit: int = 512) -> str:
    """Compact text for a frame: hex for bytes, compact JSON for mappings, truncated."""
    if isinstance(frame, (TruncatedBytes, TruncatedText)):
        return repr(frame)
    if isinstance(frame, (bytes, bytearray, memoryview)):
        text = bytes(frame).hex(" ")
    elif isinstance(frame, (dict, list)):
        text = json.dumps(frame, separators=(",", ":"), default=str)
    else:
        text = str(frame)
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} chars)"


class WireLog:
    """Keeps the recent frames within ``max_bytes`` and logs each frame at DEBUG on the
    family's wire logger.

    :param max_bytes: what the ring of recent frames may hold, frames and bookkeeping included
        (default :data:`DEFAULT_WIRE_LOG_BYTES`, 64 KiB); the oldest frames leave first. The
        newest frame always stays, so at least one frame is kept.
    :param frame_bytes: a frame longer than this (bytes, or characters of text) is kept cut
        to it (default :data:`DEFAULT_FRAME_BYTES`, 1 KiB); the DEBUG log line shows at most
        512 characters of it, as before.
    :param size: an optional cap on the number of frames as well (None: bytes only).

    ``trace`` is an optional user callable ``trace(direction, frame)``; it runs on the I/O
    thread, so it must be quick and must not call back into the client. It sees frames after
    redaction, whole (not cut). If it raises, the frame is still handled: the error goes to
    ``on_trace_error`` (the client counts and logs it like a callback that raised) and the I/O
    thread carries on. A ``redact`` that raises hides the frame instead of showing it
    unredacted.

    Only the I/O thread records; :meth:`recent` may be called from any thread.
    """

    def __init__(self, family: str, size: Optional[int] = None,
                 trace: Optional[Callable[[str, Any], Any]] = None,
                 redact: Optional[Callable[[Any], Any]] = None,
                 on_trace_error: Optional[Callable[[Any, BaseException, Any], Any]] = None,
                 *, max_bytes: int = DEFAULT_WIRE_LOG_BYTES,
                 frame_bytes: int = DEFAULT_FRAME_BYTES) -> None:
        from ..errors import check_range
        self.max_bytes = int(check_range("wire log max_bytes", max_bytes, 1024, 1 << 30,
                                         "bytes", integer=True))
        self.frame_bytes = int(check_range("wire log frame_bytes", frame_bytes, 16,
                                           self.max_bytes, "bytes", integer=True))
        self.max_frames = None if size is None else int(check_range(
            "wire log size", size, 1, 1 << 20, "frames", integer=True))
        self.logger = logging.getLogger(f"pyburnerkit.{family}.wire")
        self._ring: Deque[Tuple[Frame, int]] = collections.deque()
        #: bytes the ring holds now (by the accounting of :func:`bounded`)
        self.bytes = 0
        self._trace = trace
        self._redact = redact
        self._on_trace_error = on_trace_error
        self.trace_errors = 0

    def sent(self, frame: Any) -> None:
        self._record(">>", frame)

    def received(self, frame: Any) -> None:
        self._record("<<", frame)

    def _record(self, direction: str, frame: Any) -> None:
        shown = self._shown(frame)
        kept, cost = bounded(shown, self.frame_bytes)
        cost += _ENTRY_OVERHEAD
        ring = self._ring
        ring.append(((time.time(), direction, kept), cost))
        total = self.bytes + cost
        limit = self.max_bytes
        while total > limit and len(ring) > 1:
            total -= ring.popleft()[1]
        if self.max_frames is not None and len(ring) > self.max_frames:
            total -= ring.popleft()[1]
        self.bytes = total
        if self.logger.isEnabledFor(logging.DEBUG):
            self.logger.debug("%s %s", direction, format_frame(shown))
        if self._trace is not None:
            self._call_trace(direction, shown)

    def _shown(self, frame: Any) -> Any:
        if self._redact is None:
            return frame
        try:
            return self._redact(frame)
        except Exception:  # never let a frame we could not redact reach a log
            self.logger.exception("could not redact a frame; it is hidden")
            return "<frame hidden: redaction failed>"

    def _call_trace(self, direction: str, shown: Any) -> None:
        try:
            self._trace(direction, shown)  # type: ignore[misc]
        except Exception as exc:  # a user hook must never kill the I/O thread
            self.trace_errors += 1
            if self._on_trace_error is not None:
                self._on_trace_error(self._trace, exc, (direction, shown))
            elif self.trace_errors == 1:
                self.logger.exception("trace hook %r raised (logged once)", self._trace)

    def recent(self) -> List[Frame]:
        """The kept frames, oldest first, as ``(time, direction, frame)`` (any thread)."""
        while True:
            try:
                return [entry for entry, _ in list(self._ring)]
            except RuntimeError:  # the I/O thread changed the ring while it was copied
                continue
