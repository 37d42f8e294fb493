"""The building blocks of a driver, for families written outside this package.

A family is a client (a :class:`BaseClient` subclass, the blocking facade), a session (a
:class:`Session` subclass that speaks the protocol on the client's I/O thread) and a simulator
(a :class:`SimServer` subclass). The names below are the stable surface those need; the
modules they come from (``pyburnerkit._core``) are private and may be rearranged. The worked
example is ``examples/plugin_family`` (see ``docs/extending.rst``).

Importing this module imports no optional dependency and no family.
"""

from ._core.client import BaseClient
from ._core.endpoint import Endpoint, parse_endpoint
from ._core.loop import EventLoop, TimerHandle
from ._core.net import connect_tcp, release_socket, shutdown_socket
from ._core.pending import Pending, RequestQueue
from ._core.session import Session
from ._core.simserver import SimConnection, SimServer
from ._core.stream import StreamSession
from ._core.timeouts import Deadline, TimeoutArg, resolve_timeout
from .errors import check_range
from .types import DEFAULT

__all__ = ["BaseClient", "Session", "StreamSession", "Pending", "RequestQueue", "EventLoop", "TimerHandle", "Endpoint",
           "parse_endpoint", "connect_tcp", "shutdown_socket", "release_socket", "Deadline", "TimeoutArg",
           "resolve_timeout", "SimServer", "SimConnection", "check_range", "DEFAULT"]
