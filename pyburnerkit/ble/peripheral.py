"""A simulated GATT peripheral: services, characteristics with real handle layout, CCCDs.

Handle layout follows a real GATT server: each service declaration takes one handle; each
characteristic takes a declaration handle *h*, its value handle *h+1* and, when it can notify or
indicate, a CCCD at *h+2* (so pygatt's "CCCD = value handle + 1" assumption holds).

A peripheral lives on its host's thread (:class:`~pyburnerkit.ble.simhost.BleSimHost`); every
method here runs there. Device models subclass it and override :meth:`on_write`,
:meth:`on_read`, :meth:`on_connect` and :meth:`on_disconnect`, and call :meth:`notify`.
"""

from __future__ import annotations

import logging
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

log = logging.getLogger(__name__)

PROP_READ = 0x02
PROP_WRITE_NO_RESPONSE = 0x04
PROP_WRITE = 0x08
PROP_NOTIFY = 0x10
PROP_INDICATE = 0x20


class GattError(Exception):
    """An ATT error the peripheral answers with (the text gatttool would print)."""


class Link:
    """The connection a central holds to a peripheral (fake gatttool or in-process)."""

    def deliver(self, handle: int, data: bytes, indication: bool = False) -> None:
        raise NotImplementedError

    def lost(self) -> None:
        """The peripheral dropped the link (remote disconnect)."""
        raise NotImplementedError


class GattCharacteristic:
    def __init__(self, uuid: str, props: int, value: bytes = b"\x00") -> None:
        self.uuid = uuid.lower()
        self.props = props
        self.value = bytes(value)
        self.decl_handle = 0
        self.value_handle = 0
        self.cccd_handle: Optional[int] = None

    @property
    def can_notify(self) -> bool:
        return bool(self.props & (PROP_NOTIFY | PROP_INDICATE))


class Peripheral:
    """One simulated BLE device. Subclasses add characteristics in ``__init__``."""

    def __init__(self, address: str, name: str) -> None:
        self.address = address.upper()
        self.name = name
        self.host: Any = None  # the BleSimHost, set when added
        self.link: Optional[Link] = None
        self.services: List[Tuple[str, List[GattCharacteristic]]] = []
        self.by_uuid: Dict[str, GattCharacteristic] = {}
        self.by_handle: Dict[int, GattCharacteristic] = {}
        self.subscribed: Dict[int, int] = {}  # value handle -> 1 notify / 2 indicate
        self.advertising = True
        self.connectable = True
        self.writes: List[Tuple[str, bytes]] = []  # (uuid, data) log for assertions
        self.cccd_log: List[Tuple[str, int]] = []  # (uuid, mode) in the order written
        self._next = 1

    # ------------------------------------------------------------------ building
    def add_service(self, uuid: str, chars: Sequence[GattCharacteristic]) -> None:
        self._next += 1  # the service declaration handle
        for ch in chars:
            ch.decl_handle = self._next
            ch.value_handle = self._next + 1
            self._next += 2
            if ch.can_notify:
                ch.cccd_handle = self._next
                self._next += 1
            self.by_uuid[ch.uuid] = ch
            self.by_handle[ch.value_handle] = ch
        self.services.append((uuid.lower(), list(chars)))

    def characteristics(self) -> List[GattCharacteristic]:
        return [c for _, chars in self.services for c in chars]

    # ------------------------------------------------------------------ hooks
    def on_connect(self) -> None:
        """A central connected."""

    def on_disconnect(self) -> None:
        """The central went away (or we dropped it)."""

    def on_read(self, ch: GattCharacteristic) -> bytes:
        return ch.value

    def on_write(self, ch: GattCharacteristic, data: bytes, with_response: bool) -> None:
        ch.value = data

    def on_subscribe(self, ch: GattCharacteristic, mode: int) -> None:
        """The central wrote a CCCD (0 off, 1 notify, 2 indicate)."""

    # ------------------------------------------------------------------ ATT (host thread)
    def attach(self, link: Link) -> None:
        if not self.connectable:
            raise GattError("connect error: Connection refused (111)")
        if self.link is not None:
            raise GattError("connect error: Device or resource busy (16)")
        self.link = link
        self.subscribed = {}  # CCCDs reset on every new (unbonded) connection
        self.on_connect()

    def detach(self, link: Link) -> None:
        if self.link is link:
            self.link = None
            self.subscribed = {}
            self.on_disconnect()

    def read_handle(self, handle: int) -> bytes:
        ch = self.by_handle.get(handle)
        if ch is None:
            for c in self.by_handle.values():
                if c.cccd_handle == handle:
                    return bytes((self.subscribed.get(handle - 1, 0), 0))
            raise GattError("Characteristic value/descriptor read failed: Invalid handle")
        if not ch.props & PROP_READ:
            raise GattError("Characteristic value/descriptor read failed: Attribute can't be read")
        return self.on_read(ch)

    def read_uuid(self, uuid: str) -> Tuple[int, bytes]:
        ch = self.by_uuid.get(uuid.lower())
        if ch is None:
            raise GattError("Read characteristics by UUID failed: Attribute not found")
        if not ch.props & PROP_READ:
            raise GattError("Read characteristics by UUID failed: Attribute can't be read")
        return ch.value_handle, self.on_read(ch)

    def write_handle(self, handle: int, data: bytes, with_response: bool) -> None:
        ch = self.by_handle.get(handle)
        if ch is None:
            target = self.by_handle.get(handle - 1)
            if target is not None and target.cccd_handle == handle:
                mode = data[0] if data else 0
                if mode:
                    self.subscribed[target.value_handle] = mode
                else:
                    self.subscribed.pop(target.value_handle, None)
                self.cccd_log.append((target.uuid, mode))
                self.on_subscribe(target, mode)
                return
            raise GattError("Characteristic Write Request failed: Invalid handle")
        if not ch.props & (PROP_WRITE | PROP_WRITE_NO_RESPONSE):
            raise GattError("Characteristic Write Request failed: Attribute can't be written")
        self.writes.append((ch.uuid, bytes(data)))
        self.on_write(ch, bytes(data), with_response)

    # ------------------------------------------------------------------ device side
    def notify(self, uuid: str, data: bytes) -> bool:
        """Push a value if the central subscribed to it. Returns True when sent."""
        ch = self.by_uuid[uuid.lower()]
        ch.value = bytes(data)
        mode = self.subscribed.get(ch.value_handle)
        link = self.link
        if link is None or not mode:
            return False
        if self.host is not None and self.host.silenced:
            return False
        link.deliver(ch.value_handle, bytes(data), indication=(mode == 2))
        return True

    def is_subscribed(self, uuid: str) -> bool:
        return self.by_uuid[uuid.lower()].value_handle in self.subscribed

    def drop_link(self) -> None:
        """Remote disconnect: the peripheral ends the connection."""
        link = self.link
        if link is not None:
            self.detach(link)
            link.lost()

    def call_later(self, delay: float, callback: Callable[..., Any], *args: Any) -> Any:
        return self.host.call_later(delay, callback, *args)
