"""aiovelib's ``aiovelib.service`` (publishing a service) on the blocking
:class:`~pyburnerkit.victron.VictronService`.

::

    # from aiovelib.service import Service, IntegerItem, DoubleItem, TextItem
    from pyburnerkit.victron.compat.service import Service, IntegerItem, DoubleItem, TextItem

    service = Service("session", "com.victronenergy.grid.example")   # (bus, name), as aiovelib
    service.add_item(IntegerItem("/DeviceInstance", 0))
    service.add_item(IntegerItem("/Int", 1, writeable=True, onchange=lambda v: 0 < v < 100))
    service.register()                   # blocking: connects, then claims the name
    with service as ctx:                 # one ItemsChanged for both; the service stays up
        ctx["/Int"] = 11
        ctx["/Int2"] = 12
    service.close()

Here ``with service as ctx`` is **always** the bundled update, exactly as in aiovelib;
``close()`` (blocking, bounded) ends the service. Threads: ``onchange`` runs on the
service's events thread and the remote caller's SetValue waits for its answer; it must not
block for long. A raising ``onchange`` refuses the write (logged).
"""

from __future__ import annotations

import inspect
from typing import Any, Callable, Dict, Optional, Union

from ..._core.timeouts import TimeoutArg
from ...errors import ConfigurationError
from ...types import DEFAULT
from .. import client as _native
from .. import codec

__all__ = ["DoubleArrayItem", "DoubleItem", "IFACE", "IntegerArrayItem", "IntegerItem", "Item",
           "Service", "TextArrayItem", "TextItem"]

IFACE = codec.BUSITEM


class Item:
    """One path to publish (aiovelib's ``Item``): ``Item(path, value=None, writeable=False,
    onchange=None, text=None)``. ``onchange(newvalue) -> bool`` decides remote writes;
    ``text(value) -> str`` is its GetText. The typed subclasses coerce values to their type.
    """

    valuetype: Optional[type] = None
    coding = "v"

    def __init__(self, path: str, value: Any = None, writeable: bool = False,
                 onchange: Optional[Callable[[Any], Any]] = None,
                 text: Optional[Callable[[Any], str]] = None) -> None:
        codec.check_path(path)
        if onchange is not None and (inspect.iscoroutinefunction(onchange)
                                     or not callable(onchange)):
            raise ConfigurationError(
                f"onchange of {path} must be a plain function newvalue -> bool; an async "
                f"onchange is not supported (decide in onchange, or call set_local_value "
                f"from your own thread)")
        if text is not None and not callable(text):
            raise ConfigurationError(f"text of {path} must be a function value -> str")
        self.path = path
        self.writeable = bool(writeable)
        self.onchange = onchange
        self.text = text
        self.service: Optional["Service"] = None
        self._value = codec.coerce(value, self.valuetype, name=path)

    @property
    def value(self) -> Any:
        """The current value (the service's, once added)."""
        if self.service is not None and self.path in self.service:
            return self.service.get(self.path)
        return self._value

    def get_text(self) -> str:
        value = self.value
        if value is None:
            return ""
        return str(self.text(value)) if self.text is not None else str(value)

    def set_local_value(self, v: Any) -> None:
        """Set the value from our side: one ItemsChanged when it changed, no onchange.
        Non-blocking."""
        if self.service is None:
            self._value = codec.coerce(v, self.valuetype, name=self.path)
            return
        self.service.set(self.path, v)

    def _validator(self) -> Optional[Callable[[str, Any], Any]]:
        onchange = self.onchange
        if onchange is None:
            return None
        return lambda _path, value: onchange(value)


class IntegerItem(Item):
    coding = "i"
    valuetype = int


class DoubleItem(Item):
    coding = "d"
    valuetype = float


class TextItem(Item):
    coding = "s"
    valuetype = str


class IntegerArrayItem(Item):
    coding = "ai"
    valuetype = list


class TextArrayItem(Item):
    coding = "as"
    valuetype = list


class DoubleArrayItem(Item):
    coding = "ad"
    valuetype = list


class Service(_native.VictronService):
    """aiovelib's ``Service(bus, name)``: a :class:`~pyburnerkit.victron.VictronService`
    taking aiovelib's argument order and :class:`Item` objects. Constructing does no I/O;
    :meth:`~pyburnerkit.victron.VictronService.register` (blocking) connects and claims the
    name."""

    def __init__(self, bus: Optional[str], name: str, **kw: Any) -> None:
        super().__init__(name, bus, **kw)
        self._objects: Dict[str, Item] = {}

    @classmethod
    def create(cls, bus: Optional[str], name: str, timeout: TimeoutArg = DEFAULT,
               **kw: Any) -> "Service":
        """Build, connect and claim the name at once (aiovelib's older ``Service.create``).
        Prefer ``Service(...)``, ``add_item`` everything, then
        :meth:`~pyburnerkit.victron.VictronService.register`: a scanner that sees the name
        before the paths exist may skip the service."""
        service = cls(bus, name, **kw)
        try:
            service.register(timeout)
        except BaseException:
            service.close()
            raise
        return service

    def add_item(self, path: Union[Item, str], value: Any = None,
                 **kw: Any) -> None:
        """Publish an :class:`Item` (aiovelib's ``add_item(item)``), or take the native
        ``add_item(path, value, ...)``. After
        :meth:`~pyburnerkit.victron.VictronService.register` the new path is announced with an
        ItemsChanged."""
        if isinstance(path, str):
            super().add_item(path, value, **kw)
            return
        item = path
        if not isinstance(item, Item) or value is not None or kw:
            raise ConfigurationError(f"add_item takes one Item (IntegerItem(...), ...) or the "
                                     f"native (path, value, ...), got {codec._show(item)}")
        if item.service is not None:
            raise ConfigurationError(f"{item.path} is already an item of {item.service.name}")
        super().add_item(item.path, item._value, writable=item.writeable,
                         kind=item.valuetype, text=item.text, validator=item._validator())
        item.service = self
        self._objects[item.path] = item

    def remove_item(self, path: str) -> None:
        super().remove_item(path)
        item = self._objects.pop(path, None)
        if item is not None:
            item.service = None

    def get_item(self, path: str) -> Optional[Item]:
        """The :class:`Item` published at ``path`` (None if there is none, or it was added
        with the native form)."""
        return self._objects.get(path)

    @property
    def objects(self) -> Dict[str, Item]:
        """``{path: Item}`` (a copy)."""
        return dict(self._objects)

    def __enter__(self) -> Any:
        """Always aiovelib's bundled update (see the module docstring); never connects or
        closes."""
        if self._closing:
            raise self._closed_error()
        batch = _native._Batch(self)
        self._contexts().append(batch)
        return batch
