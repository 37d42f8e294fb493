"""The simulated radio: hosts peripherals and serves them to fake ``gatttool``/``hcitool``.

:class:`BleSimHost` is a :class:`~pyburnerkit._core.simserver.SimServer` on 127.0.0.1. Each fake
``gatttool`` process (see :mod:`pyburnerkit.ble.fakegatt`) holds one TCP link to it and speaks a
small line protocol (one line per ATT operation); the fake turns that into exactly what BlueZ's
``gatttool -I`` prints, so unmodified pygatt drives simulated devices. :meth:`BleSimHost.tool_dir`
writes the two fake programs into a directory to put first on ``PATH``.

Line protocol (client -> host)::

    C <addr>            connect            -> OK | E <text>
    D                   disconnect         (no reply)
    L                   list characteristics -> CH <decl> <props> <value> <uuid> ... END
    R <uuid>            read by UUID       -> V <handle> <hex> | E <text>
    H <handle>          read by handle     -> V <handle> <hex> | E <text>
    W <handle> <hex> 1  write request      -> OK | E <text>
    W <handle> <hex> 0  write command      (no reply)
    S                   scan               -> DEV <addr> <name> ... END

Host -> client, unsolicited: ``N <handle> <hex>`` (notification), ``I <handle> <hex>``
(indication), ``X`` (the peripheral dropped the link).

Everything (peripheral models included) runs on the host thread.
"""

from __future__ import annotations

import logging
import os
import stat
import sys
from typing import Any, Callable, Dict, List, Optional, Tuple

from .._core.simserver import SimConnection, SimServer
from .peripheral import GattError, Link, Peripheral

log = logging.getLogger(__name__)


class _TcpLink(Link):
    def __init__(self, conn: SimConnection, peripheral: Peripheral) -> None:
        self.conn = conn
        self.peripheral = peripheral

    def deliver(self, handle: int, data: bytes, indication: bool = False) -> None:
        self.conn.send(f"{'I' if indication else 'N'} {handle} {data.hex()}\n".encode())

    def lost(self) -> None:
        self.conn.state = None
        self.conn.send(b"X\n")


class InProcessLink(Link):
    """A central in this process: callbacks run on the host thread and must only enqueue."""

    def __init__(self, on_value: Callable[[int, bytes], Any], on_lost: Callable[[], Any]) -> None:
        self.on_value = on_value
        self.on_lost = on_lost
        self.peripheral: Optional[Peripheral] = None

    def deliver(self, handle: int, data: bytes, indication: bool = False) -> None:
        self.on_value(handle, data)

    def lost(self) -> None:
        self.peripheral = None
        self.on_lost()


class BleSimHost(SimServer):
    """Hosts simulated peripherals; see the module docstring for the line protocol."""

    name = "ble"

    def __init__(self, **kw: Any) -> None:
        super().__init__(**kw)
        self.peripherals: Dict[str, Peripheral] = {}
        self.silenced = False
        self.requests = 0
        self._pending_connects: List[Tuple[SimConnection, str]] = []

    # ------------------------------------------------------------------ set-up (any thread)
    def add(self, peripheral: Peripheral) -> Peripheral:
        peripheral.host = self
        self.peripherals[peripheral.address.upper()] = peripheral
        return peripheral

    def tool_dir(self, directory: str) -> str:
        """Write fake ``gatttool`` and ``hcitool`` pointing at this host into ``directory``."""
        os.makedirs(directory, exist_ok=True)
        root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        for tool in ("gatttool", "hcitool"):
            path = os.path.join(directory, tool)
            with open(path, "w") as fh:
                fh.write(f"#!{sys.executable}\n"
                         f"import sys\nsys.path.insert(0, {root!r})\n"
                         f"from pyburnerkit.ble.fakegatt import {tool}_main\n"
                         f"sys.exit({tool}_main(({self.host!r}, {self.port})))\n")
            os.chmod(path, os.stat(path).st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
        return directory

    def silence(self, on: bool) -> None:
        """Stop (or resume) answering requests and sending notifications, links kept.

        A connect request made meanwhile stays pending, as an LE connection request to a
        device that does not answer does, and completes once the device answers again (unless
        the central gave up first). Other requests made meanwhile are never answered.
        """
        self.silenced = bool(on)
        if not on:
            self.call_soon(self._connect_pending)

    def _connect_pending(self) -> None:
        pending, self._pending_connects = self._pending_connects, []
        for conn, text in pending:
            if not conn.closed:
                self._handle(conn, text)

    def drop_all(self) -> None:
        """Every peripheral drops its central (a remote disconnect)."""
        def go() -> None:
            for p in self.peripherals.values():
                p.drop_link()
        self.run_sync(go)

    # ------------------------------------------------------------------ in-process centrals
    def connect_local(self, address: str, link: InProcessLink) -> None:
        """Attach an in-process central (runs on the host thread; any thread may call)."""
        def go() -> None:
            p = self._lookup(address)
            p.attach(link)
            link.peripheral = p
        self.run_sync(go)

    def disconnect_local(self, link: InProcessLink) -> None:
        def go() -> None:
            p = link.peripheral
            if p is not None:
                p.detach(link)
                link.peripheral = None
        try:
            self.run_sync(go)
        except (TimeoutError, RuntimeError):
            pass

    def _lookup(self, address: str) -> Peripheral:
        p = self.peripherals.get(address.upper())
        if p is None or not p.connectable:
            raise GattError("connect error: Connection refused (111)")
        return p

    # ------------------------------------------------------------------ TCP protocol
    def on_connect(self, conn: SimConnection) -> None:
        conn.state = None  # the peripheral this gatttool is connected to

    def on_disconnect(self, conn: SimConnection) -> None:
        link = conn.state
        if isinstance(link, _TcpLink):
            link.peripheral.detach(link)
        conn.state = None

    def on_data(self, conn: SimConnection, data: bytes) -> None:
        conn.buffer += data
        while b"\n" in conn.buffer:
            line, _, rest = bytes(conn.buffer).partition(b"\n")
            conn.buffer = bytearray(rest)
            text = line.decode("ascii", "replace").strip()
            if text:
                self._request(conn, text)

    def _request(self, conn: SimConnection, text: str) -> None:
        self.requests += 1
        self._handle(conn, text)

    def _handle(self, conn: SimConnection, text: str) -> None:
        parts = text.split()
        op = parts[0]
        if self.silenced and op == "C":
            self._pending_connects.append((conn, text))
            return
        if self.silenced and op != "D":
            return
        link = conn.state if isinstance(conn.state, _TcpLink) else None
        try:
            if op == "C":
                if link is not None:
                    link.peripheral.detach(link)
                p = self._lookup(parts[1])
                new = _TcpLink(conn, p)
                p.attach(new)
                conn.state = new
                conn.send(b"OK\n")
            elif op == "D":
                if link is not None:
                    link.peripheral.detach(link)
                conn.state = None
            elif op == "S":
                lines = [f"DEV {p.address} {p.name}\n" for p in self.peripherals.values()
                         if p.advertising]
                conn.send(("".join(lines) + "END\n").encode())
            else:
                if link is None:
                    raise GattError("Disconnected")
                p = link.peripheral
                if op == "L":
                    out = [f"CH {c.decl_handle} {c.props} {c.value_handle} {c.uuid}\n"
                           for c in p.characteristics()]
                    conn.send(("".join(out) + "END\n").encode())
                elif op == "R":
                    handle, value = p.read_uuid(parts[1])
                    conn.send(f"V {handle} {value.hex()}\n".encode())
                elif op == "H":
                    handle = int(parts[1])
                    conn.send(f"V {handle} {p.read_handle(handle).hex()}\n".encode())
                elif op == "W":
                    handle, payload, req = int(parts[1]), bytes.fromhex(parts[2]), parts[3] == "1"
                    if req:
                        # The ack goes out before anything the write triggers, as on a radio.
                        self._write_ack_first(conn, p, handle, payload)
                    else:
                        try:
                            p.write_handle(handle, payload, False)
                        except GattError:
                            pass  # a write command gets no answer, not even an error
                else:
                    raise GattError(f"unknown request {op}")
        except GattError as exc:
            if op not in ("D",) and not (op == "W" and parts[-1] == "0"):
                conn.send(f"E {exc}\n".encode())
        except (IndexError, ValueError) as exc:
            conn.send(f"E bad request: {exc}\n".encode())

    def _write_ack_first(self, conn: SimConnection, p: Peripheral, handle: int,
                         payload: bytes) -> None:
        # Validate the handle first so a bad write gets an error instead of an ack.
        ch = p.by_handle.get(handle)
        target = p.by_handle.get(handle - 1)
        if ch is None and not (target is not None and target.cccd_handle == handle):
            raise GattError("Characteristic Write Request failed: Invalid handle")
        if ch is not None and not ch.props & 0x0C:
            raise GattError("Characteristic Write Request failed: Attribute can't be written")
        conn.send(b"OK\n")
        p.write_handle(handle, payload, True)
