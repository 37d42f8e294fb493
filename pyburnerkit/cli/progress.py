"""Progress of long commands (firmware and profile uploads, dumps, exports) on stderr.

On a terminal it is a tqdm bar with rate and ETA. When stderr is not a terminal (a pipe, a log
file, CI) a bar would be a stream of carriage returns: the same progress becomes plain lines
instead, one when the work starts, one at most every ``interval`` seconds while it moves, one
when the phase changes and one at the end, so a piped 30-second upload is never silent.
stdout stays clean for the command's result.

Use it as a context manager; ``update()`` may be called from any thread (a client's events
thread delivers upload progress) and never blocks on I/O other than the write to stderr::

    with Progress("firmware", total=len(image), unit="B") as progress:
        client.subscribe(lambda e: progress.update(e.done, phase=e.phase), UploadProgress)
        client.upload_firmware(image)

Leaving the block by an exception writes a last line that says where it stopped
(``firmware: interrupted at 4096 of 8192 B``), so an interrupted upload never ends silently.

``record``/``export`` (or any other command) use it the same way; ``total=None`` when the
amount is not known in advance (a count with a rate, no ETA).
"""

from __future__ import annotations

import os
import sys
import threading
import time
from types import TracebackType
from typing import Any, Optional, TextIO, Type

__all__ = ["Progress", "DEFAULT_INTERVAL", "INTERVAL_ENV"]

#: Seconds between two progress lines when stderr is not a terminal.
DEFAULT_INTERVAL = 5.0
#: Overrides :data:`DEFAULT_INTERVAL` (0: a line for every update; for tests and CI logs).
INTERVAL_ENV = "PYBURNERKIT_PROGRESS_INTERVAL"


def _interval_from_env() -> float:
    text = os.environ.get(INTERVAL_ENV, "")
    try:
        value = float(text) if text else DEFAULT_INTERVAL
    except ValueError:
        return DEFAULT_INTERVAL
    return value if value >= 0 else DEFAULT_INTERVAL


def _size(amount: float, unit: str) -> str:
    if unit == "B":
        for step, name in ((1 << 20, "MiB"), (1 << 10, "KiB")):
            if amount >= step:
                return f"{amount / step:.1f} {name}"
        return f"{int(amount)} B"
    return f"{int(amount)} {unit}".rstrip()


class Progress:
    """One long operation's progress on ``stream`` (default stderr).

    :param label: what is progressing (``"firmware"``, ``"mate3 dump"``).
    :param total: the amount when done, or None when unknown.
    :param unit: ``"B"`` (shown as KiB/MiB) or a word (``"registers"``).
    :param terminal: draw a bar (True) or write lines (False); default: whether ``stream``
        is a terminal.
    :param interval: seconds between lines when not drawing a bar (default
        ``$PYBURNERKIT_PROGRESS_INTERVAL`` or 5).
    """

    def __init__(self, label: str, total: Optional[float] = None, *, unit: str = "B",
                 stream: Optional[TextIO] = None, terminal: Optional[bool] = None,
                 interval: Optional[float] = None) -> None:
        self.label = label
        self.total = total
        self.unit = unit
        self.stream = stream if stream is not None else sys.stderr
        if terminal is None:
            isatty = getattr(self.stream, "isatty", None)
            terminal = bool(isatty()) if callable(isatty) else False
        self.terminal = terminal
        self.interval = _interval_from_env() if interval is None else interval
        self.done = 0.0
        self.phase = ""
        self._lock = threading.Lock()
        self._started = time.monotonic()
        self._last_line = -1.0
        self._closed = False
        self._bar: Any = None
        if terminal:
            try:
                from tqdm import tqdm
            except ImportError:  # no tqdm: lines work everywhere
                self.terminal = False
            else:
                scale = unit == "B"
                self._bar = tqdm(total=total, desc=label, unit=unit if scale else f" {unit}",
                                 unit_scale=scale, unit_divisor=1024 if scale else 1000,
                                 file=self.stream, dynamic_ncols=True, leave=True)
        if not self.terminal:
            self._line(self._describe("started"))

    # ----------------------------------------------------------------------------- updates
    def update(self, done: float, total: Optional[float] = None,
               phase: Optional[str] = None) -> None:
        """Set the position to ``done`` (absolute, not an increment); any thread."""
        with self._lock:
            if self._closed:
                return
            if total is not None and total != self.total:
                self.total = total
                if self._bar is not None:
                    self._bar.total = total
            changed_phase = phase is not None and phase != self.phase
            if phase is not None:
                self.phase = phase
            step = done - self.done
            self.done = done
            if self._bar is not None:
                if changed_phase:
                    self._bar.set_postfix_str(self.phase, refresh=False)
                self._bar.update(step)
                return
            now = time.monotonic()
            if changed_phase or now - self._last_line >= self.interval:
                self._line(self._describe(self.phase or "running"))

    def advance(self, amount: float = 1) -> None:
        """Move the position on by ``amount``; any thread."""
        self.update(self.done + amount)

    def close(self, outcome: str = "done") -> None:
        """End the display with a last line naming ``outcome``; idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            if self._bar is not None:
                if outcome != "done":
                    self._bar.set_postfix_str(outcome, refresh=False)
                self._bar.close()
                if outcome != "done":
                    self._write(f"{self.label}: {self._describe(outcome)}\n")
                return
            self._line(self._describe(outcome))

    def __enter__(self) -> "Progress":
        return self

    def __exit__(self, kind: Optional[Type[BaseException]], exc: Optional[BaseException],
                 tb: Optional[TracebackType]) -> None:
        if kind is None:
            self.close("done")
        elif issubclass(kind, KeyboardInterrupt):
            self.close("interrupted")
        else:
            self.close(f"failed ({type(exc).__name__})")

    # ----------------------------------------------------------------------------- text
    def _describe(self, state: str) -> str:
        elapsed = time.monotonic() - self._started
        where = _size(self.done, self.unit)
        if self.total:
            pct = 100.0 * self.done / self.total if self.total else 0.0
            where = f"{where} of {_size(self.total, self.unit)} ({pct:.0f} %)"
        parts = [f"{state} at {where}" if state in ("interrupted",) or
                 state.startswith("failed") else f"{state}: {where}"]
        if elapsed >= 0.05 and self.done:
            rate = self.done / elapsed
            parts.append(f"{_size(rate, self.unit)}/s")
            if self.total and state not in ("done",) and rate > 0 and self.done < self.total:
                parts.append(f"ETA {(self.total - self.done) / rate:.0f} s")
        parts.append(f"{elapsed:.1f} s")
        return ", ".join(parts)

    def _line(self, text: str) -> None:
        self._last_line = time.monotonic()
        self._write(f"{self.label}: {text}\n")

    def _write(self, text: str) -> None:
        try:
            self.stream.write(text)
            self.stream.flush()
        except (OSError, ValueError):  # stderr closed: progress is not worth failing for
            pass
