"""What a user of the TR-1 sees: frozen values, the device's error codes, the limits, events.

No I/O and no pyburnerkit machinery beyond its public types: importing this module is cheap.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from pyburnerkit.types import CodeEnum, Event

__all__ = ["DEFAULT_PORT", "LIMIT_MIN_C", "LIMIT_MAX_C", "LIMIT_STEP_C", "ErrorCode",
           "DeviceInfo", "Status", "StatusChanged"]

#: The TCP port the box listens on unless configured otherwise.
DEFAULT_PORT = 7878
#: The over-temperature cut-out can be set from 0 to 60 °C, in steps of 0.5 °C.
LIMIT_MIN_C = 0.0
LIMIT_MAX_C = 60.0
LIMIT_STEP_C = 0.5


class ErrorCode(CodeEnum):
    """The ``ERR <code>`` numbers of the box (a newer firmware's code becomes ``UNKNOWN_<n>``)."""

    UNKNOWN_COMMAND = 1
    BAD_VALUE = 2
    OVER_LIMIT = 3  #: the relay may not close while the temperature is at or above the limit


@dataclass(frozen=True)
class DeviceInfo:
    """The answer to ``ID``, read once per connection."""

    model: str
    serial: str
    firmware: str


@dataclass(frozen=True)
class Status:
    """One answer to ``READ``.

    ``relay`` is the output as the box reports it: the box opens it by itself when the
    temperature reaches ``limit_c`` (its over-temperature cut-out).
    """

    temperature_c: float
    humidity_pct: int
    relay: bool
    limit_c: float


@dataclass(frozen=True)
class StatusChanged(Event):
    """A read returned a status different from the one before (``previous`` None at first)."""

    status: Status
    previous: Optional[Status]
