"""Public types shared by every family: connection state, event base classes, policies."""

from __future__ import annotations

import enum
import time
from dataclasses import dataclass, field
from typing import Optional

from ._core.backoff import Reconnect
from ._core.timeouts import DEFAULT

__all__ = ["ConnectionState", "Event", "ConnectionStateChanged", "Reconnect", "DEFAULT"]


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
