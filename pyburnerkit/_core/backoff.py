"""The reconnect policy value and its delay arithmetic."""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Optional

from ..errors import ConfigurationError


@dataclass(frozen=True)
class Reconnect:
    """How a client reconnects after the link drops.

    The n-th retry (counting from 0) waits ``min(max_delay, min_delay * factor**n)`` seconds,
    spread by ``± jitter`` (a fraction) so that many clients do not reconnect in lock step.
    The count resets only once the device has answered on the new link, not when TCP connects.
    ``max_attempts=None`` retries forever. Pass ``reconnect=None`` to a client to disable it.
    """

    min_delay: float = 0.5
    max_delay: float = 30.0
    factor: float = 2.0
    jitter: float = 0.1
    max_attempts: Optional[int] = None

    def __post_init__(self) -> None:
        if not 0 <= self.min_delay <= self.max_delay:
            raise ConfigurationError(
                f"Reconnect delays must satisfy 0 <= min_delay <= max_delay (seconds), got "
                f"min_delay={self.min_delay!r} s, max_delay={self.max_delay!r} s")
        if self.factor < 1:
            raise ConfigurationError(f"Reconnect factor={self.factor!r} must be >= 1")
        if not 0 <= self.jitter < 1:
            raise ConfigurationError(f"Reconnect jitter={self.jitter!r} must be in 0..<1")
        if self.max_attempts is not None and self.max_attempts < 1:
            raise ConfigurationError(
                f"Reconnect max_attempts={self.max_attempts!r} must be None or >= 1")

    def delay(self, attempt: int, rng: Optional[random.Random] = None) -> float:
        """The wait in seconds before retry number ``attempt`` (0-based)."""
        # factor**attempt overflows a float after ~1000 attempts; cap the exponent first.
        base = min(self.max_delay, self.min_delay * self.factor ** min(attempt, 64))
        if self.jitter:
            spread = (rng or random).uniform(-self.jitter, self.jitter)
            base *= 1.0 + spread
        return max(0.0, min(base, self.max_delay))

    def gives_up_after(self, attempt: int) -> bool:
        return self.max_attempts is not None and attempt >= self.max_attempts
