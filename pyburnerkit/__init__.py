"""pyburnerkit: a synchronous, threaded SDK for energy and appliance hardware.

Each driver runs its protocol I/O on a background thread behind a blocking API and a
thread-safe cache. See ``docs/threading.rst`` for the threading contract.
"""

from __future__ import annotations

import logging
import sys
from typing import Union

from ._core.client import ClientAlreadyOpenWarning, close_all, connect_all
from ._core.reactor import Reactor, default_reactor
from .errors import (AuthenticationError, BackendUnavailableError, ClientClosedError,
                     ConfigurationError, ConnectionLostError, ConnectTimeoutError,
                     DeviceConnectionError, DeviceError, DeviceTimeoutError, ProtocolError,
                     PyBurnerKitError, UnsupportedFeatureError, WriteNotAllowedError)
from .types import DEFAULT, ConnectionState, ConnectionStateChanged, Event, Reconnect

__version__ = "0.1.0"

__all__ = [
    "__version__", "close_all", "log_to_stderr", "DEFAULT", "ConnectionState",
    "ConnectionStateChanged", "Event", "Reconnect", "PyBurnerKitError", "ConfigurationError",
    "BackendUnavailableError", "DeviceConnectionError", "ConnectTimeoutError",
    "AuthenticationError", "ConnectionLostError", "DeviceTimeoutError", "ProtocolError",
    "DeviceError", "UnsupportedFeatureError", "WriteNotAllowedError", "ClientClosedError",
    "ClientAlreadyOpenWarning", "Reactor", "default_reactor", "connect_all",
]

logging.getLogger("pyburnerkit").addHandler(logging.NullHandler())


def log_to_stderr(level: Union[int, str] = "DEBUG", wire: bool = False) -> logging.Handler:
    """Send pyburnerkit's log to stderr, for bug reports. Wire frames only with ``wire=True``.

    :returns: the handler it added (remove it with ``logging.getLogger("pyburnerkit")
        .removeHandler(h)``).
    """
    root = logging.getLogger("pyburnerkit")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(
        "%(asctime)s %(threadName)s %(name)s %(levelname)s: %(message)s"))
    root.addHandler(handler)
    root.setLevel(level)

    class _NoWire(logging.Filter):
        def filter(self, record: logging.LogRecord) -> bool:
            return wire or not record.name.endswith(".wire")

    handler.addFilter(_NoWire())
    return handler
