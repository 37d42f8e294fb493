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
    thread, so it must be quick and must not call back into the client.
    """

    def __init__(self, family: str, size: int = 32,
                 trace: Optional[Callable[[str, Any], Any]] = None,
                 redact: Optional[Callable[[Any], Any]] = None) -> None:
        self.logger = logging.getLogger(f"pyburnerkit.{family}.wire")
        self._ring: Deque[Frame] = collections.deque(maxlen=size)
        self._trace = trace
        self._redact = redact

    def sent(self, frame: Any) -> None:
        self._record(">>", frame)

    def received(self, frame: Any) -> None:
        self._record("<<", frame)

    def _record(self, direction: str, frame: Any) -> None:
        shown = self._redact(frame) if self._redact else frame
        self._ring.append((time.time(), direction, shown))
        if self.logger.isEnabledFor(logging.DEBUG):
            self.logger.debug("%s %s", direction, format_frame(shown))
        if self._trace is not None:
            self._trace(direction, shown)

    def recent(self) -> List[Frame]:
        return list(self._ring)
