"""Public types shared by every family: connection state, event base classes, policies."""

from __future__ import annotations

import enum
import time
from dataclasses import dataclass, field
from typing import Any, Optional

from ._core.backoff import Reconnect
from ._core.timeouts import DEFAULT

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
