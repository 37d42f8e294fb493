"""Public types shared by every family: connection state, event base classes, policies."""

from __future__ import annotations

import dataclasses
import datetime as _dt
import enum
import math
import random
import re
import time
from dataclasses import dataclass, field
from typing import Any, Dict, Mapping, Optional

from .errors import ConfigurationError

__all__ = ["CodeEnum", "ConnectionState", "Event", "ConnectionStateChanged", "Reconnect",
           "DEFAULT", "Model", "to_plain"]

#: Keys whose values are secrets: shown as ``"<hidden>"`` by ``to_dict()`` and displays.
SECRET_KEY = re.compile(r"password|passwd|passphrase|(^|_)pass$|secret|token|credential|"
                        r"api_?key|(encryption|private|access)_?key|^pin$", re.I)
HIDDEN = "<hidden>"


def is_secret_key(key: Any) -> bool:
    return isinstance(key, str) and SECRET_KEY.search(key) is not None


def to_plain(value: Any) -> Any:
    """``value`` as JSON-friendly Python: dicts with scalar keys, lists, str, int, float,
    bool and None.

    Dataclasses become dicts of their fields (nested ones too), enums their names, sets
    sorted lists, bytes hex text, datetimes ISO 8601 text, exceptions ``"Type: message"``.
    An object with a ``_to_plain()`` method gives its own form (a register value that is
    an int with a label, say). Values under keys that name secrets (``password``,
    ``token``...) are replaced by ``"<hidden>"``. Anything else becomes ``str(value)``.
    Non-finite floats are kept (``json.dumps`` writes them as ``NaN``/``Infinity``).
    """
    hook = getattr(value, "_to_plain", None)
    if hook is not None and callable(hook) and not isinstance(value, type):
        return hook()
    if value is None or isinstance(value, (str, bool)):
        return value
    if isinstance(value, enum.Enum):
        return value.name
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: (HIDDEN if is_secret_key(f.name) else to_plain(getattr(value, f.name)))
                for f in dataclasses.fields(value)}
    if isinstance(value, Mapping):
        return {_plain_key(k): (HIDDEN if is_secret_key(k) else to_plain(v))
                for k, v in value.items()}
    if isinstance(value, (set, frozenset)):
        items = [to_plain(v) for v in value]
        try:
            return sorted(items)
        except TypeError:
            return sorted(items, key=repr)
    if isinstance(value, (list, tuple)):
        return [to_plain(v) for v in value]
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value).hex()
    if isinstance(value, (_dt.datetime, _dt.date, _dt.time)):
        return value.isoformat()
    if isinstance(value, _dt.timedelta):
        return value.total_seconds()
    if isinstance(value, BaseException):
        return f"{type(value).__name__}: {value}"
    return str(value)


def _plain_key(key: Any) -> Any:
    if key is None or isinstance(key, (str, bool)):
        return key
    if isinstance(key, enum.Enum):
        return key.name
    if isinstance(key, int):
        return int(key)
    if isinstance(key, float) and math.isfinite(key):
        return float(key)
    return str(key)


class Model:
    """Base of every model (state object, reading, event) a client hands out.

    Adds :meth:`to_dict` to a frozen dataclass; it declares no fields and no ``__init__``.
    """

    __slots__ = ()

    def to_dict(self) -> Dict[str, Any]:
        """Every field as JSON-friendly Python (see :func:`to_plain`): enums as their names,
        nested dataclasses as dicts, tuples as lists, secrets as ``"<hidden>"``.
        ``json.dumps(obj.to_dict())`` always works."""
        plain = to_plain(self)
        if not isinstance(plain, dict):  # a subclass that is not a dataclass
            raise TypeError(f"{type(self).__name__} has no fields to convert")
        return plain


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
class Event(Model):
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
