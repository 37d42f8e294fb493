"""The whole pyburnerkit exception tree.

::

    PyBurnerKitError
    ├─ ConfigurationError (also ValueError)        bad URL, option or argument value
    ├─ BackendUnavailableError (also ImportError)  a missing extra; the message names it
    ├─ DeviceConnectionError (also ConnectionError)
    │   ├─ ConnectTimeoutError (also TimeoutError)
    │   ├─ AuthenticationError                     the device refused our credentials
    │   └─ ConnectionLostError                     a call in flight when the link dropped
    ├─ DeviceTimeoutError (also TimeoutError)      no answer in time
    ├─ ProtocolError                               undecodable frame; carries the recent frames
    ├─ DeviceError                                 the device refused; carries its code and text
    │   └─ UnsupportedFeatureError
    ├─ WriteNotAllowedError                        a write the client was not opened for
    └─ ClientClosedError                           the client was closed (or died: see __cause__)

Every error may carry ``device`` (the family name) and ``endpoint`` (where the device is), so a
log line or a notebook traceback says which of several devices failed. Foreign exceptions are
always chained with ``raise ... from exc``.
"""

from __future__ import annotations

from typing import Any, Optional, Sequence

__all__ = [
    "PyBurnerKitError",
    "ConfigurationError",
    "BackendUnavailableError",
    "DeviceConnectionError",
    "ConnectTimeoutError",
    "AuthenticationError",
    "ConnectionLostError",
    "DeviceTimeoutError",
    "ProtocolError",
    "DeviceError",
    "UnsupportedFeatureError",
    "WriteNotAllowedError",
    "ClientClosedError",
    "check_range",
]


class PyBurnerKitError(Exception):
    """Base of every error this package raises on purpose."""

    def __init__(self, message: str = "", *, device: Optional[str] = None,
                 endpoint: Optional[str] = None) -> None:
        super().__init__(message)
        self.device = device
        self.endpoint = endpoint

    def __str__(self) -> str:
        text = super().__str__()
        where = " ".join(x for x in (self.device, self.endpoint) if x)
        return f"{text} [{where}]" if where else text


class ConfigurationError(PyBurnerKitError, ValueError):
    """A URL, option or argument value is wrong. Nothing was sent to the device."""


class BackendUnavailableError(PyBurnerKitError, ImportError):
    """An optional dependency is missing; the message names the extra that installs it."""

    def __init__(self, extra: str, module: str, *, reason: str = "") -> None:
        detail = f" ({reason})" if reason else ""
        super().__init__(
            f"this feature needs the Python module {module!r}{detail}; "
            f'install it with: pip install "pyburnerkit[{extra}]"')
        self.extra = extra
        self.module = module


class DeviceConnectionError(PyBurnerKitError, ConnectionError):
    """The link to the device could not be opened or was lost."""


class ConnectTimeoutError(DeviceConnectionError, TimeoutError):
    """The device did not complete the connection in time. Safe to retry."""


class AuthenticationError(DeviceConnectionError):
    """The device refused the credentials (which are never part of the message)."""


class ConnectionLostError(DeviceConnectionError):
    """The link dropped while this call was in flight. Writes are never retried for you."""


class DeviceTimeoutError(PyBurnerKitError, TimeoutError):
    """The device did not answer (or did not show the change) within the timeout."""


class ProtocolError(PyBurnerKitError):
    """A frame could not be decoded. ``frames`` holds the most recent frames for a bug report."""

    def __init__(self, message: str = "", *, frames: Sequence[Any] = (), **kw: Any) -> None:
        super().__init__(message, **kw)
        self.frames = list(frames)


class DeviceError(PyBurnerKitError):
    """The device refused a request; ``code`` and ``detail`` are what it said."""

    def __init__(self, message: str = "", *, code: Any = None, detail: Optional[str] = None,
                 **kw: Any) -> None:
        super().__init__(message, **kw)
        self.code = code
        self.detail = detail


class UnsupportedFeatureError(DeviceError):
    """The device (or its current configuration) does not offer this feature."""


class WriteNotAllowedError(PyBurnerKitError):
    """A write that can change or damage equipment, on a client not opened for writing."""


class ClientClosedError(PyBurnerKitError):
    """The client was closed, or died of a fatal error (then ``__cause__`` says why)."""


def check_range(name: str, value: Any, low: float, high: float, unit: str = "", *,
                integer: bool = False, step: Optional[float] = None) -> Any:
    """Validate one numeric argument before it goes anywhere near a device.

    :returns: the value (an ``int`` when ``integer`` is set).
    :raises ConfigurationError: naming the value, the limits and the unit when the value is not a
        number, not whole where ``integer`` asks for it, off the ``step`` grid, or out of range.
    """
    unit_text = f" {unit}" if unit else ""
    limit = f"{_number(low)}..{_number(high)}{unit_text}"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigurationError(f"{name} must be a number in {limit}, got {value!r}")
    if value != value:  # NaN compares unequal to itself
        raise ConfigurationError(f"{name} must be a number in {limit}, got NaN")
    if value in (float("inf"), float("-inf")):
        raise ConfigurationError(f"{name}={value!r}{unit_text} is out of range: the limit is {limit}")
    if integer and value != int(value):
        raise ConfigurationError(
            f"{name} must be a whole number in {limit} (the device would truncate it), "
            f"got {value!r}")
    if not low <= value <= high:
        raise ConfigurationError(
            f"{name}={value!r}{unit_text} is out of range: the limit is {limit}")
    if step is not None:
        steps = value / step
        if abs(steps - round(steps)) > 1e-6:
            raise ConfigurationError(
                f"{name}={value!r}{unit_text} has more resolution than the device keeps "
                f"(steps of {_number(step)}{unit_text})")
    return int(value) if integer else value


def _number(value: float) -> str:
    """A limit as a person reads it: exact for whole numbers, at most 10 significant digits."""
    if isinstance(value, int) or (isinstance(value, float) and value.is_integer()
                                  and abs(value) < 1e15):
        return str(int(value))
    return f"{value:.10g}"
