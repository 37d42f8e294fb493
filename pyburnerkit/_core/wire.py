"""Wire logging: frames to ``pyburnerkit.<family>.wire`` at DEBUG, and a ring of recent frames."""

from __future__ import annotations

import collections
import json
import logging
import time
from typing import Any, Callable, Deque, List, Optional, Tuple

Frame = Tuple[float, str, Any]


def format_frame(frame: Any, limit: int = 512) -> str:
    """Compact text for a frame: hex for bytes, compact JSON for mappings, truncated."""
    if isinstance(frame, (bytes, bytearray, memoryview)):
        text = bytes(frame).hex(" ")
    elif isinstance(frame, (dict, list)):
        text = json.dumps(frame, separators=(",", ":"), default=str)
    else:
        text = str(frame)
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} chars)"


class WireLog:
    """Keeps the last ``size`` frames and logs each one at DEBUG on the family's wire logger.

    ``trace`` is an optional user callable ``trace(direction, frame)``; it runs on the I/O
    thread, so it must be quick and must not call back into the client. It sees frames after
    redaction. If it raises, the frame is still handled: the error goes to ``on_trace_error``
    (the client counts and logs it like a callback that raised) and the I/O thread carries on.
    A ``redact`` that raises hides the frame instead of showing it unredacted.
    """

    def __init__(self, family: str, size: int = 32,
                 trace: Optional[Callable[[str, Any], Any]] = None,
                 redact: Optional[Callable[[Any], Any]] = None,
                 on_trace_error: Optional[Callable[[Any, BaseException, Any], Any]] = None
                 ) -> None:
        self.logger = logging.getLogger(f"pyburnerkit.{family}.wire")
        self._ring: Deque[Frame] = collections.deque(maxlen=size)
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
        self._ring.append((time.time(), direction, shown))
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
        return list(self._ring)
