"""aiovelib's ``aiovelib.client`` on the blocking :class:`~pyburnerkit.victron.VictronMonitor`.

A monitor written for aiovelib ports by changing the import and dropping ``await``::

    # from aiovelib.client import Monitor, Service, ServiceHandler
    from pyburnerkit.victron.compat.client import Monitor, Service, ServiceHandler

    class GridMeterService(Service, ServiceHandler):
        servicetype = "com.victronenergy.grid"
        paths = {"/Ac/Power", "/Ac/L1/Voltage"}

    class MyMonitor(Monitor):
        def itemsChanged(self, service, values):
            for p, v in values.items():
                print(f"{service.name}{p} changed to {v}")

    monitor = MyMonitor.create("session")       # aiovelib: await MyMonitor.create(bus)

Threads: ``create`` blocks until the first scan of every service finished. The hooks
(``itemsChanged``, ``serviceAdded``, ``serviceRemoved``) run on the monitor's events thread,
one at a time, never on the I/O thread; a hook that raises is logged and counted and the
monitor goes on. A hook written as ``async def`` is run to completion there
(``asyncio.run``), so an unported hook still runs, but it must not await this monitor.

Deliberate differences (see ``docs/migrating/aiovelib.rst``): ``bus`` is an endpoint string
("system", "session", a D-Bus address, ``"sim://"``), not a dbus-fast ``MessageBus``; writes
(``set_value*``, ``dbus_call`` of a method not known to only read, ``add_settings``) need
``allow_writes=True`` and check limits before sending; the handler classes are snapshotted
when the monitor is built; a handler's ``paths`` set is copied per instance.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import threading
from typing import Any, Callable, ClassVar, Dict, Iterator, List, Mapping, Optional, Set

from ..._core.timeouts import TimeoutArg
from ...errors import ConfigurationError, DeviceError, DeviceTimeoutError
from ...types import DEFAULT
from .. import client as _native
from .. import codec
from ..models import ServiceAdded, ServiceRemoved, SetValueError, ValuesChanged

log = logging.getLogger(__name__)

__all__ = ["IFACE", "DbusException", "Item", "Monitor", "Service", "ServiceHandler", "Variant",
           "make_variant", "servicetype"]

IFACE = codec.BUSITEM
BUS_DAEMON_NAME = codec.DBUS_NAME
BUS_DAEMON_PATH = codec.DBUS_PATH
BUS_DAEMON_IFACE = codec.DBUS_NAME


def servicetype(busname: str) -> str:
    """The service class of a bus name: its first three dotted parts."""
    return ".".join(busname.split(".")[:3])


class Variant:
    """What aiovelib's ``dbus_call`` hands back for a ``v`` value: ``.signature`` and a plain
    ``.value`` (None for the invalid marker)."""

    __slots__ = ("signature", "value")

    def __init__(self, signature: str, value: Any) -> None:
        self.signature = signature
        self.value = value

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, Variant) and other.signature == self.signature
                and other.value == self.value)

    def __hash__(self) -> int:
        return hash(self.signature)

    def __repr__(self) -> str:
        return f"Variant({self.signature!r}, {self.value!r})"


def make_variant(value: Any) -> Variant:
    """aiovelib's Python-to-variant table (None -> invalid ``ai []``)."""
    if value is None:
        return Variant("ai", [])
    if isinstance(value, float):
        return Variant("d", value)
    if isinstance(value, bool):
        return Variant("b", value)
    if isinstance(value, int):
        return Variant("x" if value.bit_length() > 32 else "i", value)
    if isinstance(value, str):
        return Variant("s", value)
    if isinstance(value, list):
        if all(isinstance(v, int) for v in value):
            return Variant("ai", value)
        if all(isinstance(v, (float, int)) for v in value):
            return Variant("ad", value)
        if all(isinstance(v, str) for v in value):
            return Variant("as", value)
        return Variant("ai", [])
    raise ConfigurationError(f"value {codec._show(value)} of type {type(value).__name__} has no "
                             f"variant (use None, bool, int, float, str or a list of those)")


def _to_wire(value: Any) -> Any:
    """A :class:`Variant` argument as dbus-python wants it; anything else unchanged."""
    if isinstance(value, Variant):
        return codec.wrap(None if value.value == [] and value.signature == "ai" else value.value,
                          1)
    return value


def _signature_of(value: Any) -> str:
    sig = getattr(value, "signature", None)
    name = type(value).__name__
    simple = {"Int32": "i", "Int64": "x", "UInt32": "u", "UInt64": "t", "Int16": "n",
              "UInt16": "q", "Byte": "y", "Boolean": "b", "Double": "d", "String": "s",
              "ObjectPath": "o", "Signature": "g"}
    if name in simple:
        return simple[name]
    if name == "Array":
        return f"a{sig or 'v'}"
    if name == "Dictionary":
        return f"a{{{sig or 'sv'}}}"
    if name == "Struct":
        return f"({sig or ''})"
    return "v"


def _from_wire(value: Any) -> Any:
    """A reply value the way dbus-fast shows it: variants as :class:`Variant`, the rest
    plain (the invalid marker inside a variant becomes ``Variant('ai', None)``)."""
    if getattr(value, "variant_level", 0):
        return Variant(_signature_of(value), codec.unwrap(value))
    if isinstance(value, dict):
        return {codec.unwrap(k): _from_wire(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_from_wire(v) for v in value]
    return codec.unwrap(value)


class DbusException(DeviceError):
    """aiovelib's error for a D-Bus error reply (a :class:`~pyburnerkit.errors.DeviceError`;
    ``.code`` is the D-Bus error name)."""


class Item:
    """One cached path of a tracked service: ``.value`` (None when invalid) and ``.seen``."""

    __slots__ = ("value", "seen")

    def __init__(self, value: Any = None, seen: bool = False) -> None:
        self.value = value
        self.seen = seen

    def __repr__(self) -> str:
        return f"Item(value={self.value!r}, seen={self.seen})"


class Service:
    """A tracked remote service (aiovelib's ``client.Service``). Subclass it with
    :class:`ServiceHandler` and set ``servicetype`` (and ``paths``; None tracks all).

    Reads come from the monitor's cache and never block; ``fetch_*`` and ``set_value`` block
    until the service answered.
    """

    #: service class -> handler class (or factory), shared by every monitor built without
    #: ``handlers=`` (as in aiovelib).
    handlers: ClassVar[Dict[str, Callable[..., Any]]] = {}
    paths: Optional[Set[str]] = None
    servicetype: ClassVar[str]
    make_item: ClassVar[Callable[..., Item]] = Item

    def __init__(self, monitor: "Monitor", name: str, owner: str) -> None:
        self.monitor = monitor
        self.name = name
        self.owner = owner
        # aiovelib shares one class-level set between instances; a copy per instance keeps
        # one service's fetch_value from widening another's filter.
        cls_paths = type(self).paths
        self.paths = None if cls_paths is None else set(cls_paths)
        self._fetched: Dict[str, Any] = {}

    @classmethod
    def add_handler(cls, service: str, handler: Callable[..., Any]) -> None:
        cls.handlers[service] = handler

    @classmethod
    def handler(cls, service: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        """Decorator: register ``func(monitor, name, owner)`` as the handler of a class."""
        def wrap(func: Callable[..., Any]) -> Callable[..., Any]:
            cls.add_handler(service, func)
            return func
        return wrap

    def _wanted(self, path: str) -> bool:
        return self.paths is None or path in self.paths

    @property
    def values(self) -> Dict[str, Item]:
        """``{path: Item}`` of the tracked paths (a snapshot; never blocks)."""
        info = self.monitor.native.service(self.name)
        out = {p: self.make_item(v, True) for p, v in self._fetched.items()}
        if info is not None:
            out.update((p, self.make_item(iv.value, True)) for p, iv in info.values.items()
                       if self._wanted(p))
        return out

    def get_value(self, path: str) -> Any:
        """The cached value (None when invalid, unseen or not tracked). Never blocks."""
        info = self.monitor.native.service(self.name)
        if info is not None and self._wanted(path) and path in info.values:
            return info.values[path].value
        return self._fetched.get(path)

    def seen(self, path: str) -> bool:
        info = self.monitor.native.service(self.name)
        return (info is not None and self._wanted(path) and path in info.values) \
            or path in self._fetched

    def set_value(self, path: str, value: Any, timeout: TimeoutArg = DEFAULT) -> int:
        """:meth:`Monitor.set_value` on this service (blocking; 0 means accepted)."""
        return self.monitor.set_value(self.name, path, value, timeout)

    def set_value_async(self, path: str, value: Any) -> Any:
        """:meth:`Monitor.set_value_async` on this service (returns at once)."""
        return self.monitor.set_value_async(self.name, path, value)

    def _fetch(self, what: str, path: str, read: Callable[[], Any]) -> Any:
        try:
            return read()
        except DeviceError as exc:  # aiovelib logs a refused call and returns None
            log.warning("%s %s%s failed: %s", what, self.name, path, exc)
            return None

    def fetch_value(self, path: str, timeout: TimeoutArg = DEFAULT) -> Any:
        """GetValue on the bus (blocking), then cached and tracked. None when the service
        refused (logged), as aiovelib; a timeout raises
        :class:`~pyburnerkit.errors.DeviceTimeoutError`."""
        if self.paths is not None:
            self.paths.add(path)
        try:
            value = self.monitor.native.read_value(self.name, path, timeout)
        except DeviceError as exc:
            log.warning("fetch_value %s%s failed: %s", self.name, path, exc)
            return None
        self._fetched[path] = value
        return value

    def fetch_min(self, path: str, timeout: TimeoutArg = DEFAULT) -> Any:
        """GetMin on the bus (blocking); None when the service refused (logged)."""
        return self._fetch("fetch_min", path, lambda: self.monitor.native.read_min(
            self.name, path, timeout))

    def fetch_max(self, path: str, timeout: TimeoutArg = DEFAULT) -> Any:
        """GetMax on the bus (blocking); None when the service refused (logged)."""
        return self._fetch("fetch_max", path, lambda: self.monitor.native.read_max(
            self.name, path, timeout))

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name} ({self.owner})>"


class ServiceHandler:
    """Mix-in: defining ``class X(Service, ServiceHandler)`` registers X as the handler of
    ``X.servicetype`` in :attr:`Service.handlers`."""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        stype = getattr(cls, "servicetype", None)
        if not isinstance(stype, str):
            raise ConfigurationError(f"{cls.__name__} mixes in ServiceHandler but has no "
                                     f"servicetype such as 'com.victronenergy.grid'")
        codec.check_service_name(stype)
        Service.add_handler(servicetype(stype), cls)


def _run_hook(result: Any) -> None:
    """An ``async def`` hook: run its coroutine to completion on this (events) thread."""
    if inspect.iscoroutine(result):
        asyncio.run(result)


class Monitor:
    """aiovelib's ``Monitor`` over a native :class:`~pyburnerkit.victron.VictronMonitor`
    (``.native``, for everything else pyburnerkit offers).

    :param bus: the endpoint ("system", "session", a D-Bus address, ``"sim://"``; None picks
        the bus as Venus programs do).
    :param itemsChanged: ``f(service, values)``, called when :meth:`itemsChanged` is not
        overridden.
    :param handlers: ``{service class: handler class}``; default :attr:`Service.handlers`
        (read when the monitor is built). Only services with a handler are tracked.
    :param allow_writes: needed by ``set_value*``, ``add_settings`` and ``dbus_call`` of a
        method not known to only read.

    Other keywords (``timeout=``, ``on_callback_error=``...) go to the native monitor.
    Constructing does no I/O; :meth:`create` (or :meth:`connect`) connects.
    """

    def __init__(self, bus: Optional[str] = None,
                 itemsChanged: Optional[Callable[[Service, Dict[str, Any]], Any]] = None,
                 handlers: Optional[Mapping[str, Callable[..., Any]]] = None, *,
                 allow_writes: bool = False, **kw: Any) -> None:
        self._handlers = dict(Service.handlers if handlers is None else handlers)
        for stype in self._handlers:
            codec.check_service_name(stype)
        self._itemsChanged = itemsChanged
        self._lock = threading.Lock()
        self._services: Dict[str, Service] = {}
        self._announced: Set[str] = set()
        self.native = _native.VictronMonitor(
            bus, service_types={servicetype(t): None for t in self._handlers},
            allow_writes=allow_writes, **kw)
        self.native.subscribe(self._on_event, ServiceAdded, ServiceRemoved, ValuesChanged)

    # -- lifecycle ---------------------------------------------------------------------
    @classmethod
    def create(cls, bus: Optional[str] = None, *args: Any, timeout: TimeoutArg = DEFAULT,
               **kw: Any) -> "Monitor":
        """Build and connect, blocking until every service's first scan finished (aiovelib:
        ``await Monitor.create(bus)``)."""
        monitor = cls(bus, *args, **kw)
        try:
            monitor.connect(timeout)
        except BaseException:
            monitor.close()
            raise
        return monitor

    def connect(self, timeout: TimeoutArg = DEFAULT) -> "Monitor":
        """Connect the native monitor, blocking until every service's first scan finished.

        :returns: the monitor itself.
        :raises ConnectTimeoutError: the bus did not answer within ``timeout``.
        :raises DeviceConnectionError: the bus could not be reached.
        """
        self.native.connect(timeout)
        return self

    def close(self, timeout: Optional[float] = 5.0) -> bool:
        """Close the native monitor (bounded, idempotent, safe from a hook)."""
        return self.native.close(timeout)

    def __enter__(self) -> "Monitor":
        if self.native._session is None:
            self.connect()
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    # -- override points ---------------------------------------------------------------
    def itemsChanged(self, service: Service, values: Dict[str, Any]) -> Any:
        """Called with ``{path: value}`` of a tracked service's changed paths (events
        thread). The default calls the ``itemsChanged`` given to the constructor."""
        if self._itemsChanged is not None:
            return self._itemsChanged(service, values)
        return None

    def serviceAdded(self, service: Service) -> Any:
        """A tracked service appeared and was scanned (events thread)."""
        return None

    def serviceRemoved(self, service: Service) -> Any:
        """A tracked service left the bus (events thread)."""
        return None

    # -- handler objects ---------------------------------------------------------------
    def _handler_for(self, name: str) -> Optional[Service]:
        """The handler object of a service on the bus (made on first use, any thread)."""
        info = self.native.service(name)
        factory = self._handlers.get(servicetype(name))
        if info is None or factory is None:
            return None
        with self._lock:
            svc = self._services.get(name)
            if svc is not None and svc.owner == info.owner:
                return svc
        made = factory(self, name, info.owner)
        with self._lock:
            svc = self._services.get(name)
            if svc is None or svc.owner != info.owner:
                self._services[name] = svc = made
            return svc

    def _on_event(self, event: Any) -> None:  # events thread
        if isinstance(event, ServiceAdded):
            svc = self._handler_for(event.service.name)
            if svc is not None:
                with self._lock:
                    first = event.service.name not in self._announced
                    self._announced.add(event.service.name)
                if first:
                    _run_hook(self.serviceAdded(svc))
        elif isinstance(event, ServiceRemoved):
            with self._lock:
                gone = self._services.pop(event.name, None)
                self._announced.discard(event.name)
            if gone is not None:
                _run_hook(self.serviceRemoved(gone))
        elif isinstance(event, ValuesChanged):
            svc = self._handler_for(event.service)
            if svc is None:
                return
            values = {p: iv.value for p, iv in event.values.items() if svc._wanted(p)}
            if values:
                _run_hook(self.itemsChanged(svc, values))

    # -- reads (never block) -----------------------------------------------------------
    @property
    def services(self) -> Iterator[Service]:
        """The handler objects of the tracked services on the bus."""
        found = (self._handler_for(n) for n in self.native.services())
        return iter([s for s in found if s is not None])

    def get_service(self, name: str) -> Optional[Service]:
        return self._handler_for(name)

    def get_value(self, name: str, path: str, default: Any = None) -> Any:
        """The cached value; ``default`` only when the service is not tracked (an invalid
        or unseen path gives None, as aiovelib)."""
        svc = self._handler_for(name)
        return default if svc is None else svc.get_value(path)

    def seen(self, name: str, path: str) -> bool:
        svc = self._handler_for(name)
        return svc is not None and svc.seen(path)

    def wait_for_service(self, name: str, timeout: TimeoutArg = DEFAULT) -> Service:
        """Block until the service is on the bus and scanned; its handler object.

        :raises ConfigurationError: no handler for its service class.
        :raises DeviceTimeoutError: it did not appear within ``timeout``.
        """
        if servicetype(name) not in self._handlers:
            raise ConfigurationError(f"no handler for {servicetype(name)}: define a Service "
                                     f"subclass with ServiceHandler and that servicetype "
                                     f"before building the monitor")
        self.native.wait_for_service(name, timeout)
        svc = self._handler_for(name)
        if svc is None:   # it left again right away
            raise DeviceTimeoutError(f"{name} left the bus while we waited for it",
                                     device="victron", endpoint=self.native.endpoint)
        return svc

    # -- writes and calls --------------------------------------------------------------
    def set_value(self, name: str, path: str, value: Any, timeout: TimeoutArg = DEFAULT) -> int:
        """SetValue, blocking until the service answered: its code (0 accepted), or -1 for
        a D-Bus error reply, as aiovelib. Our own checks still raise before anything is
        sent (:class:`~pyburnerkit.errors.WriteNotAllowedError`,
        :class:`~pyburnerkit.errors.ConfigurationError` for a value outside the limits the bus
        reports), and a timeout raises :class:`~pyburnerkit.errors.DeviceTimeoutError` (the
        write may still happen; it is never retried)."""
        try:
            self.native.set_value(name, path, value, timeout)
        except SetValueError as exc:
            return int(exc.code) if isinstance(exc.code, int) else -1
        except DeviceError:
            return -1
        return 0

    def set_value_async(self, name: str, path: str, value: Any) -> Any:
        """Fire and forget: -1 at once when the service or path is not in the cache (as
        aiovelib), else a :class:`concurrent.futures.Future` (result None or the error).
        Checks and the write opt-in apply as for :meth:`set_value`."""
        svc = self._handler_for(name)
        if svc is None or not svc.seen(path):
            return -1
        return self.native.set_value_nowait(name, path, value)

    def dbus_call(self, name: str, path: str, member: str, signature: str = "",
                  *params: Any, interface: str = IFACE,
                  timeout: TimeoutArg = DEFAULT) -> List[Any]:
        """Any method call, blocking until the reply came: its body, with ``v`` values as
        :class:`Variant` (``.value``), as aiovelib. :class:`Variant` arguments are accepted.
        A method not known to only read needs ``allow_writes=True`` (see
        :meth:`~pyburnerkit.victron.VictronMonitor.call_method`).

        :raises DbusException: the service answered with a D-Bus error.
        """
        native = self.native
        args, prepare = native._check_call_and_limits(
            name, path, member, signature, tuple(_to_wire(p) for p in params), interface,
            timeout)
        try:
            result: List[Any] = native._request(
                f"{member} {name}{path}", name, path, interface, member, signature, args,
                lambda s, a: [_from_wire(v) for v in a], timeout,
                is_write=(interface, member) not in _native._READ_ONLY_METHODS,
                prepare=prepare)
        except DeviceError as exc:
            if isinstance(exc, DbusException):
                raise
            raise DbusException(str(exc), code=exc.code, detail=exc.detail, device="victron",
                                endpoint=native.endpoint) from exc
        return result

    def __repr__(self) -> str:
        return f"<{type(self).__name__} on {self.native.endpoint}>"
