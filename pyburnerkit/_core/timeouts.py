"""Timeout arguments and deadlines, always in float seconds on ``time.monotonic``."""

from __future__ import annotations

import math
import time
from typing import Optional, Union

from ..errors import ConfigurationError
from ..types import DEFAULT, _Default


TimeoutArg = Union[float, int, None, _Default]


def resolve_timeout(timeout: TimeoutArg, default: Optional[float]) -> Optional[float]:
    """Turn a ``timeout=`` argument into seconds, or ``None`` for 'wait forever'.

    ``None`` only means forever when the caller passed it explicitly; ``DEFAULT`` takes the
    client's finite default.

    :raises ConfigurationError: for a negative, NaN or non-numeric timeout.
    """
    if timeout is DEFAULT:
        return default
    if timeout is None:
        return None
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or math.isnan(timeout):
        raise ConfigurationError(f"timeout must be a number of seconds or None, got {timeout!r}")
    if timeout < 0:
        raise ConfigurationError(f"timeout={timeout!r} s is negative: the limit is >= 0 s")
    return float(timeout)


class Deadline:
    """A point in monotonic time; ``None`` seconds means it never expires."""

    __slots__ = ("_at",)

    def __init__(self, seconds: Optional[float]) -> None:
        self._at = None if seconds is None else time.monotonic() + seconds

    @property
    def infinite(self) -> bool:
        return self._at is None

    def remaining(self) -> Optional[float]:
        """Seconds left (never negative), or ``None`` for an infinite deadline."""
        if self._at is None:
            return None
        return max(0.0, self._at - time.monotonic())

    def expired(self) -> bool:
        return self._at is not None and time.monotonic() >= self._at
