"""Public types shared by every family: connection state, event base classes, policies."""

from __future__ import annotations

import enum
import random
import time
from dataclasses import dataclass, field
from typing import Any, Optional

from .errors import ConfigurationError

__all__ = ["CodeEnum", "ConnectionState", "Event", "ConnectionStateChanged", "Reconnect",
           "DEFAULT"]


class CodeEnum(enum.IntEnum):
    """A device code table that keeps codes it does not know.

    ``CodeEnum(99)`` on a table without 99 gives a member named ``UNKNOWN_99`` (equal to 99)
    instead of raising, so newer firmware never crashes a decoder and the number is kept.
    """

    @classmethod
    def _missing_(cls, value: Any) -> Any:
        if isinstance(value, int) and not isinstance(value, bool):
            member = int.__new__(cls, value)
            member._name_ = f"UNKNOWN_{value}"
            member._value_ = value
            return member
        return None

    @property
    def known(self) -> bool:
        """False for a code the table does not list."""
        return not self._name_.startswith("UNKNOWN_")


class ConnectionState(enum.Enum):
    """Where a client's link stands. Changes arrive as :class:`ConnectionStateChanged` events."""

    IDLE = "idle"                  #: constructed, connect() not called yet
    CONNECTING = "connecting"      #: first connection under way
    CONNECTED = "connected"        #: the device answered on this link
    RECONNECTING = "reconnecting"  #: the link dropped; retrying with backoff
    CLOSED = "closed"              #: closed by the user, or given up (see the client's error)


@dataclass(frozen=True)
class Event:
    """Base of every event a client delivers to callbacks and ``events()`` iterators.

    ``timestamp`` (UTC epoch seconds) is when the client produced the event.
    """

    # init=False keeps subclasses free to declare fields without defaults (Python 3.9 has no
    # kw_only fields).
    timestamp: float = field(init=False, default_factory=time.time, compare=False, repr=False)


@dataclass(frozen=True)
class ConnectionStateChanged(Event):
    """The link changed state. ``error`` says why it dropped or why a retry failed."""

    state: ConnectionState
    previous: ConnectionState
    attempt: int = 0
    retry_in: Optional[float] = None
    error: Optional[BaseException] = None


class _Default:
    """The 'not given' marker: use the client's finite default timeout."""

    _instance: Optional["_Default"] = None

    def __new__(cls) -> "_Default":
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "DEFAULT"

    def __reduce__(self) -> str:
        return "DEFAULT"


#: The ``timeout=`` default of every blocking call: the client's own finite timeout.
#: ``None`` waits forever (only when passed explicitly), a number waits that many seconds.
DEFAULT = _Default()


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
