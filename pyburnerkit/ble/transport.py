"""GATT transports: pygatt (gatttool or BGAPI backend) and an in-process link to the simulator.

A transport moves GATT operations and knows no device protocol. Its methods are called from one
thread only, the owning session's I/O thread (the "one worker" that owns every pygatt call of its
adapter). Values and link loss arrive through ``on_value(uuid, data)`` and ``on_lost()``, called
on a foreign thread (pygatt's receiver, the simulator's thread); the session installs callbacks
that only enqueue.

pygatt's hazards handled here (``specs/pygatt.md``): ``start(reset_on_start=False)`` unless asked;
subscriptions by handle (no re-discovery per connection; discovery results are cached per
address); a finite timeout on every wait pygatt lets us bound; ``BLEError`` caught as the base of
both backends' errors; a disconnect callback registered on the gatttool backend (BGAPI has none:
the session's silence watchdog covers it).
"""

from __future__ import annotations

import logging
from typing import Any, Callable, Dict, List, Optional, Tuple, Type, TypeVar

from .._core.extras import require
from ..errors import (ConfigurationError, ConnectionLostError, DeviceConnectionError,
                      DeviceError, DeviceTimeoutError, PyBurnerKitError, check_range)
from .peripheral import GattError
from .simhost import BleSimHost, InProcessLink

log = logging.getLogger(__name__)

_E = TypeVar("_E", bound=PyBurnerKitError)


class LinkDown(ConnectionLostError):
    """The BLE link is gone (raised by transports; the session turns it into a reconnect)."""


class Transport:
    """Interface of a GATT transport (all calls from the session's I/O thread).

    ``device`` and ``endpoint`` (set by the owning session) go into every error it raises.
    """

    name = "transport"

    def __init__(self) -> None:
        self.on_value: Callable[[str, bytes], Any] = lambda uuid, data: None
        self.on_lost: Callable[[], Any] = lambda: None
        self.device: Optional[str] = None
        self.endpoint: Optional[str] = None
        # True once a request went unanswered within its timeout while its answer may still
        # come: the next answers could then be taken for later requests (pygatt matches an
        # answer to whatever waits, not to its request), so the session resets the link.
        self.out_of_step = False

    def _error(self, cls: Type[_E], message: str) -> _E:
        """An error of class ``cls`` naming this transport's device and endpoint."""
        return cls(message, device=self.device, endpoint=self.endpoint)

    def _down(self, message: str) -> "LinkDown":
        return self._error(LinkDown, message)

    def open(self, timeout: float) -> None:
        """Start the adapter (spawn gatttool, open the BGAPI port)."""

    def connect(self, address: str, timeout: float) -> None:
        raise NotImplementedError

    def discover(self) -> Dict[str, int]:
        """uuid -> value handle for every characteristic of the connected device."""
        raise NotImplementedError

    def read(self, uuid: str, timeout: float) -> bytes:
        raise NotImplementedError

    def write(self, uuid: str, data: bytes, response: bool = True, timeout: float = 5.0) -> None:
        raise NotImplementedError

    def subscribe(self, uuid: str, timeout: float = 5.0) -> None:
        raise NotImplementedError

    def disconnect(self) -> None:
        """Drop the connection (keep the adapter); must not raise."""

    def abort(self) -> None:
        """Any thread: make a blocking call in progress return promptly (used by close)."""

    def close(self) -> None:
        """Stop the adapter; must not raise; idempotent."""

    def scan(self, timeout: float) -> List[Dict[str, Optional[str]]]:
        raise NotImplementedError


def _errors() -> Any:
    return require("pygatt", "de1").exceptions


class PygattTransport(Transport):
    """pygatt with the gatttool backend (default) or the BGAPI backend.

    :param backend: ``"gatttool"`` or ``"bgapi"``.
    :param hci_device: gatttool's ``-i`` adapter.
    :param serial_port: the BLED112's serial port (BGAPI; auto-detect when None).
    :param reset_on_start: reset the adapter on start (needs sudo; restarts bluetoothd).
    :param send_delay: pexpect's pause before each gatttool command (pygatt keeps 50 ms);
        None leaves pygatt's default. Smaller values make commands faster and narrow pygatt's
        subscribe-stall window.
    """

    def __init__(self, backend: str = "gatttool", *, hci_device: str = "hci0",
                 serial_port: Optional[str] = None, reset_on_start: bool = False,
                 send_delay: Optional[float] = None, address_type: str = "public") -> None:
        super().__init__()
        if backend not in ("gatttool", "bgapi"):
            raise ConfigurationError(f"backend={backend!r}: expected 'gatttool' or 'bgapi'")
        if address_type not in ("public", "random"):
            raise ConfigurationError(f"address_type={address_type!r}: expected public or random")
        if send_delay is not None:
            check_range("send_delay", send_delay, 0, 1, "s")
        self.name = backend
        self.backend_name = backend
        self.hci_device = hci_device
        self.serial_port = serial_port
        self.reset_on_start = reset_on_start
        self.send_delay = send_delay
        self.address_type = address_type
        self._pygatt = require("pygatt", "de1")
        if backend == "gatttool":
            require("pexpect", "de1")  # pygatt only warns when its gatttool extra is missing
        self._adapter: Any = None
        self._device: Any = None
        self._address: Optional[str] = None
        self._handles: Dict[str, Dict[str, int]] = {}  # address -> uuid -> handle
        self._by_handle: Dict[int, str] = {}
        self._lost = False  # set on pygatt's receiver thread when the link drops
        self._aborted = False  # set by abort() from a closing thread

    # ------------------------------------------------------------------ adapter
    def open(self, timeout: float) -> None:
        if self._adapter is not None:
            return
        BLEError = self._pygatt.exceptions.BLEError
        try:
            if self.backend_name == "gatttool":
                adapter = self._pygatt.GATTToolBackend(hci_device=self.hci_device)
                adapter.start(reset_on_start=self.reset_on_start,
                              initialization_timeout=max(1.0, timeout))
                if self.send_delay is not None:
                    adapter._con.delaybeforesend = self.send_delay or None
            else:
                adapter = self._pygatt.BGAPIBackend(serial_port=self.serial_port)
                adapter.start(reset=self.reset_on_start)
        except (BLEError, OSError) as exc:
            raise self._error(DeviceConnectionError, f"could not start the {self.backend_name} "
                                                     f"BLE adapter: {exc}") from exc
        except Exception as exc:  # pexpect.TIMEOUT / EOF: gatttool never showed its prompt
            raise self._error(DeviceConnectionError,
                              f"could not start gatttool (is it on PATH and working?): "
                              f"{type(exc).__name__}: {exc}") from exc
        self._adapter = adapter

    def close(self) -> None:
        adapter, self._adapter = self._adapter, None
        self._device = None
        self._aborted = False
        if adapter is None:
            return
        try:
            adapter.stop()
        except Exception:
            log.debug("error stopping the BLE adapter", exc_info=True)
        receiver = getattr(adapter, "_receiver", None)
        if receiver is not None and receiver.is_alive():
            receiver.join(2.0)  # pygatt's daemon thread ends within its 0.5 s expect tick

    # ------------------------------------------------------------------ link
    def connect(self, address: str, timeout: float) -> None:
        errors = self._pygatt.exceptions
        kind = self._pygatt.BLEAddressType.public if self.address_type == "public" \
            else self._pygatt.BLEAddressType.random
        try:
            device = self._adapter.connect(address, timeout=timeout, address_type=kind)
        except errors.BLEError as exc:
            raise self._error(DeviceConnectionError,
                              f"could not connect to {address}: {exc}") from exc
        if self._aborted:
            raise self._down(f"connect to {address}: aborted (the client is closing)")
        self._device = device
        self._address = address.upper()
        self._lost = False
        self.out_of_step = False
        if hasattr(device, "register_disconnect_callback"):
            device.register_disconnect_callback(self._disconnected)

    def _disconnected(self, event: Any) -> None:
        # pygatt's receiver thread: remember, wake a pygatt wait in progress, enqueue.
        self._lost = True
        self._wake_waiters()
        self.on_lost()

    def _wake_waiters(self, names: Tuple[str, ...] = ("char_written", "value",
                                                      "value/descriptor", "mtu")) -> None:
        """Release a pygatt call blocked waiting for an ack or a value.

        pygatt offers no way to interrupt its waits (a write ack waits up to its timeout);
        setting its receiver's events ends the wait at once, and the call is then reported
        as failed by :meth:`_check` (private pygatt structure, guarded).
        """
        receiver = getattr(self._adapter, "_receiver", None)
        vector = getattr(receiver, "_event_vector", None)
        if not isinstance(vector, dict):
            return
        for name in names:
            entry = vector.get(name)
            if isinstance(entry, dict) and hasattr(entry.get("event"), "set"):
                entry["event"].set()

    def abort(self) -> None:
        """From another thread: make the call in progress (if any) fail now (close())."""
        self._aborted = True
        self._wake_waiters(("char_written", "value", "value/descriptor", "mtu", "connect"))

    def _check(self, what: str) -> None:
        if self._aborted:
            raise self._down(f"{what}: aborted (the client is closing)")
        if self._lost:
            raise self._down(f"{what}: the BLE link was lost")

    def disconnect(self) -> None:
        device, self._device = self._device, None
        if device is None:
            return
        try:
            device.disconnect()
        except Exception:
            log.debug("disconnect failed (already gone)", exc_info=True)

    def discover(self) -> Dict[str, int]:
        cached = self._handles.get(self._address or "")
        if cached is None:
            try:
                chars = self._dev().discover_characteristics()
            except self._pygatt.exceptions.BLEError as exc:
                raise self._down(f"characteristic discovery failed: {exc}") from exc
            cached = {str(uuid).lower(): c.handle for uuid, c in chars.items()}
            self._handles[self._address or ""] = cached
        self._by_handle = {h: u for u, h in cached.items()}
        return dict(cached)

    def _dev(self) -> Any:
        if self._device is None:
            raise self._down("not connected")
        return self._device

    def _handle(self, uuid: str) -> int:
        table = self._handles.get(self._address or "", {})
        try:
            return table[uuid]
        except KeyError:
            raise self._error(DeviceError, f"the device has no characteristic {uuid}") from None

    def _translate(self, exc: BaseException, what: str) -> BaseException:
        errors = self._pygatt.exceptions
        if isinstance(exc, errors.NotConnectedError):
            return self._down(f"{what}: not connected ({exc})")
        if isinstance(exc, errors.NotificationTimeout) or \
                type(exc).__name__ == "ExpectedResponseTimeout":
            self.out_of_step = True  # its answer may still arrive and be taken for the next
            return self._error(DeviceTimeoutError, f"{what}: no answer from the device")
        return self._error(DeviceError, f"{what}: {type(exc).__name__}: {exc}")

    def _in_step(self, what: str) -> None:
        if self.out_of_step:
            raise self._down(f"{what}: refused, an earlier request went unanswered and the "
                             f"link is being reset")

    def read(self, uuid: str, timeout: float) -> bytes:
        self._in_step(f"read {uuid}")
        handle = self._handle(uuid)
        try:
            if self.backend_name == "gatttool":
                value = self._dev().char_read_handle(handle, timeout=timeout)
            else:
                value = self._dev().char_read_handle(handle, timeout=timeout)
        except self._pygatt.exceptions.BLEError as exc:
            self._check(f"read {uuid}")
            raise self._translate(exc, f"read {uuid}") from exc
        self._check(f"read {uuid}")
        return bytes(value)

    def write(self, uuid: str, data: bytes, response: bool = True, timeout: float = 5.0) -> None:
        self._in_step(f"write {uuid}")
        handle = self._handle(uuid)
        try:
            if self.backend_name == "gatttool":
                self._dev().char_write_handle(handle, bytearray(data), response, timeout=timeout)
            else:
                self._dev().char_write_handle(handle, bytearray(data), response)
        except self._pygatt.exceptions.BLEError as exc:
            self._check(f"write {uuid}")
            raise self._translate(exc, f"write {uuid}") from exc
        self._check(f"write {uuid}")

    def subscribe(self, uuid: str, timeout: float = 5.0) -> None:
        """Enable notifications without pygatt's subscribe stall (specs/pygatt.md 5.6).

        pygatt's ``subscribe`` holds the device lock while it waits for the CCCD write ack;
        a notification of another characteristic arriving in that window blocks pygatt's
        receiver on the same lock, so the ack is never seen (a 30 s stall, measured at 25 %
        with a 5 Hz stream). Here the callback is registered under the lock, the lock is
        released, and the CCCD (value handle + 1) is written with a bounded wait.
        """
        handle = self._handle(uuid)
        dev = self._dev()
        lock = getattr(dev, "_lock", None)
        callbacks = getattr(dev, "_callbacks", None)
        subscribed = getattr(dev, "_subscribed_handlers", None)
        try:
            if lock is not None and isinstance(callbacks, dict) and isinstance(subscribed, dict):
                with lock:
                    callbacks[handle].add(self._callback)
                    subscribed[handle] = bytearray([1, 0])
                if self.backend_name == "gatttool":
                    dev.char_write_handle(handle + 1, bytearray([1, 0]), True, timeout=timeout)
                else:
                    dev.char_write_handle(handle + 1, bytearray([1, 0]), True)
            else:  # an unknown pygatt layout: the public call (ordering still helps)
                dev.subscribe_handle(handle, callback=self._callback)
        except self._pygatt.exceptions.BLEError as exc:
            self._check(f"subscribe {uuid}")
            raise self._translate(exc, f"subscribe {uuid}") from exc
        self._check(f"subscribe {uuid}")

    def _callback(self, handle: int, value: bytearray) -> None:
        # pygatt's receiver thread, holding the device lock: copy and enqueue, nothing else.
        uuid = self._by_handle.get(handle)
        if uuid is not None:
            self.on_value(uuid, bytes(value))

    def scan(self, timeout: float) -> List[Dict[str, Optional[str]]]:
        try:
            if self._adapter is None:
                self.open(timeout)
            if self.backend_name == "gatttool":
                found = self._adapter.scan(timeout=timeout)
            else:
                found = self._adapter.scan(timeout=timeout)
        except self._pygatt.exceptions.BLEError as exc:
            raise self._error(DeviceConnectionError, f"scan failed: {exc}") from exc
        return [{"address": d.get("address"), "name": d.get("name")} for d in found]


class SimTransport(Transport):
    """An in-process link to a :class:`~pyburnerkit.ble.simhost.BleSimHost` (no pygatt, no
    process): what a ``sim://`` client uses, and the expert hook ``transport=`` for a client
    that shares a rig with others (:meth:`~pyburnerkit.ble.rig.SimRig.transport`).

    :param host: the simulated radio; or ``None`` with ``host_factory``, a callable that
        returns it, called on the session's I/O thread when the link is first opened (a
        ``sim://`` client starts its simulator there, not in its constructor).
    :raises ConfigurationError: neither or both of ``host`` and ``host_factory``.
    """

    name = "sim"

    def __init__(self, host: Optional[BleSimHost] = None, *,
                 host_factory: Optional[Callable[[], BleSimHost]] = None) -> None:
        super().__init__()
        if (host is None) == (host_factory is None):
            raise ConfigurationError("SimTransport needs a host or a host_factory (not both)")
        self._host = host
        self._host_factory = host_factory
        self._link = InProcessLink(self._value, lambda: self.on_lost())
        self._handles: Dict[str, int] = {}
        self._by_handle: Dict[int, str] = {}
        self._connected = False

    @property
    def host(self) -> BleSimHost:
        """The simulated radio (made by ``host_factory`` on first use)."""
        if self._host is None:
            assert self._host_factory is not None  # the constructor checked one is given
            self._host = self._host_factory()
        return self._host

    def open(self, timeout: float) -> None:
        try:
            self.host  # a sim:// client's simulator starts here, on the I/O thread
        except (OSError, TimeoutError) as exc:
            raise self._error(DeviceConnectionError,
                              f"could not start the simulator: {exc}") from exc

    def _value(self, handle: int, data: bytes) -> None:
        uuid = self._by_handle.get(handle)
        if uuid is not None:
            self.on_value(uuid, data)

    def _run(self, fn: Callable[[], Any], timeout: float, what: str) -> Any:
        if not self._connected:
            raise self._down(f"{what}: not connected")
        if self.host.silenced or self.host.reply_delay > timeout:
            # the in-process path has no wire to hold replies on: model the silence directly
            import time as _t
            _t.sleep(min(timeout, 0.05) if self.host.silenced else 0)
            raise self._error(DeviceTimeoutError, f"{what}: no answer from the device")
        try:
            return self.host.run_sync(fn, timeout=timeout)
        except GattError as exc:
            if self._link.peripheral is None:
                raise self._down(f"{what}: not connected") from exc
            raise self._error(DeviceError, f"{what}: {exc}") from exc
        except TimeoutError as exc:
            raise self._error(DeviceTimeoutError, f"{what}: no answer from the simulator") from exc

    def connect(self, address: str, timeout: float) -> None:
        try:
            self.host.connect_local(address, self._link)
        except GattError as exc:
            raise self._error(DeviceConnectionError,
                              f"could not connect to {address}: {exc}") from exc
        self._connected = True

    def discover(self) -> Dict[str, int]:
        p = self._link.peripheral
        if p is None:
            raise self._down("not connected")
        self._handles = {c.uuid: c.value_handle for c in p.characteristics()}
        self._by_handle = {h: u for u, h in self._handles.items()}
        return dict(self._handles)

    def _peripheral(self) -> Any:
        p = self._link.peripheral
        if p is None:
            raise self._down("not connected")
        return p

    def read(self, uuid: str, timeout: float) -> bytes:
        handle = self._handles[uuid]
        value: bytes = self._run(lambda: self._peripheral().read_handle(handle), timeout,
                                 f"read {uuid}")
        return value

    def write(self, uuid: str, data: bytes, response: bool = True, timeout: float = 5.0) -> None:
        handle = self._handles[uuid]
        self._run(lambda: self._peripheral().write_handle(handle, bytes(data), response),
                  timeout, f"write {uuid}")

    def subscribe(self, uuid: str, timeout: float = 5.0) -> None:
        handle = self._handles[uuid]
        self._run(lambda: self._peripheral().write_handle(handle + 1, b"\x01\x00", True),
                  timeout, f"subscribe {uuid}")

    def disconnect(self) -> None:
        if self._connected:
            self._connected = False
            self.host.disconnect_local(self._link)

    def close(self) -> None:
        self.disconnect()

    def scan(self, timeout: float) -> List[Dict[str, Optional[str]]]:
        found: List[Dict[str, Optional[str]]] = self.host.run_sync(
            lambda: [{"address": p.address, "name": p.name}
                     for p in self.host.peripherals.values() if p.advertising])
        return found
