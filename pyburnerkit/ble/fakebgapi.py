"""A simulated BLED112 dongle on a pseudo-terminal, so pygatt's BGAPI backend runs unmodified
against the simulated peripherals of a :class:`~pyburnerkit.ble.simhost.BleSimHost`.

Pass :attr:`FakeBled112.port` (``/dev/pts/N``) as ``serial_port``. The emulator keeps its own
slave descriptor open, so pyserial's close/reopen does not end the link (specs/pygatt.md 6).
BGAPI packets: byte 0 = 0x00 (command/response) or 0x80 (event) plus the top length bits,
byte 1 = the rest of the payload length, byte 2 = class, byte 3 = command, then the payload
(little-endian fields). Handled: gap_set_mode, sm_set_bondable_mode, gap_end_procedure,
gap_connect_direct (-> connection_status), attclient_find_information (-> find_information_found
per attribute, procedure_completed), read_by_handle (-> attribute_value), attribute_write (->
procedure_completed), write_command, connection_disconnect, connection_get_rssi; peripheral
notifications and indications become attribute_value events (type 1 / 2) and a remote
disconnect a connection_disconnected event.
"""

from __future__ import annotations

import logging
import os
import select
import struct
import threading
import tty
from typing import Any, Optional

from .peripheral import GattError
from .simhost import InProcessLink

log = logging.getLogger(__name__)

_SIG_BASE = "-0000-1000-8000-00805f9b34fb"
ATT_ERROR = 0x0401  # an ATT-level failure result code


def _uuid_bytes(uuid: str) -> bytes:
    """What a BLED112 reports: 2 bytes (LE) for SIG-base UUIDs, else 16 bytes reversed."""
    uuid = uuid.lower()
    if uuid.startswith("0000") and uuid.endswith(_SIG_BASE):
        return struct.pack("<H", int(uuid[4:8], 16))
    return bytes(reversed(bytes.fromhex(uuid.replace("-", ""))))


class FakeBled112:
    """One emulated dongle (one connection at a time, handle 0)."""

    def __init__(self, host: Any) -> None:
        self.host = host
        self.master, self.slave = os.openpty()
        tty.setraw(self.slave)
        tty.setraw(self.master)
        self.port = os.ttyname(self.slave)
        self._wlock = threading.Lock()
        self._stop_r, self._stop_w = os.pipe()
        self._link: Optional[InProcessLink] = None
        self._thread = threading.Thread(target=self._run, daemon=True,
                                        name="pyburnerkit-sim-bled112")
        self._buf = bytearray()
        self.commands = 0

    def start(self) -> "FakeBled112":
        self._thread.start()
        return self

    def close(self) -> None:
        try:
            os.write(self._stop_w, b"x")
        except OSError:
            pass
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(5)
        link, self._link = self._link, None
        if link is not None:
            self.host.disconnect_local(link)
        for fd in (self.master, self.slave, self._stop_r, self._stop_w):
            try:
                os.close(fd)
            except OSError:
                pass

    # ------------------------------------------------------------------ wire
    def _send(self, event: bool, cls: int, cmd: int, payload: bytes = b"") -> None:
        n = len(payload)
        head = bytes(((0x80 if event else 0x00) | ((n >> 8) & 0x07), n & 0xFF, cls, cmd))
        with self._wlock:
            try:
                os.write(self.master, head + payload)
            except OSError:
                pass

    def _run(self) -> None:
        while True:
            ready, _, _ = select.select([self.master, self._stop_r], [], [])
            if self._stop_r in ready:
                return
            try:
                data = os.read(self.master, 4096)
            except OSError:
                return
            self._buf += data
            while len(self._buf) >= 4:
                length = 4 + ((self._buf[0] & 0x07) << 8) + self._buf[1]
                if len(self._buf) < length:
                    break
                packet, self._buf = bytes(self._buf[:length]), self._buf[length:]
                try:
                    self._command(packet[2], packet[3], packet[4:])
                except Exception:  # a malformed command must not kill the dongle
                    log.debug("fake BLED112: bad command %s", packet.hex(), exc_info=True)

    # ------------------------------------------------------------------ commands
    def _peripheral(self) -> Any:
        link = self._link
        return None if link is None else link.peripheral

    def _command(self, cls: int, cmd: int, p: bytes) -> None:
        self.commands += 1
        if (cls, cmd) == (6, 1):  # gap_set_mode
            self._send(False, 6, 1, struct.pack("<H", 0))
        elif (cls, cmd) == (5, 1):  # sm_set_bondable_mode
            self._send(False, 5, 1)
        elif (cls, cmd) == (6, 4):  # gap_end_procedure
            self._send(False, 6, 4, struct.pack("<H", 0))
        elif (cls, cmd) == (0, 0):  # system_reset: nothing to answer; we stay "booted"
            pass
        elif (cls, cmd) == (6, 3):
            self._connect(p)
        elif (cls, cmd) == (4, 3):
            self._find_information(p)
        elif (cls, cmd) == (4, 4):
            self._read(p)
        elif (cls, cmd) in ((4, 5), (4, 6)):
            self._write(p, with_response=(cmd == 5))
        elif (cls, cmd) == (3, 0):  # connection_disconnect
            conn = p[0]
            self._send(False, 3, 0, struct.pack("<BH", conn, 0))
            link, self._link = self._link, None
            if link is not None:
                self.host.disconnect_local(link)
            self._send(True, 3, 4, struct.pack("<BH", conn, 0x16))
        elif (cls, cmd) == (3, 1):  # connection_get_rssi
            self._send(False, 3, 1, struct.pack("<Bb", p[0], -60))

    def _connect(self, p: bytes) -> None:
        address = ":".join(f"{b:02X}" for b in reversed(p[:6]))
        self._send(False, 6, 3, struct.pack("<HB", 0, 0))
        link = InProcessLink(self._notify, self._lost)
        try:
            self.host.connect_local(address, link)
        except (GattError, TimeoutError):
            return  # nobody answers: pygatt times out and ends the procedure
        self._link = link
        self._send(True, 3, 0, struct.pack("<BB6BBHHHB", 0, 0x05, *p[:6], 0, 60, 100, 0, 0xFF))

    def _find_information(self, p: bytes) -> None:
        conn = p[0]
        self._send(False, 4, 3, struct.pack("<BH", conn, 0))
        periph = self._peripheral()
        if periph is not None:
            for _, chars in periph.services:
                if chars:
                    self._found(conn, chars[0].decl_handle - 1, struct.pack("<H", 0x2800))
                for ch in chars:
                    self._found(conn, ch.decl_handle, struct.pack("<H", 0x2803))
                    self._found(conn, ch.value_handle, _uuid_bytes(ch.uuid))
                    if ch.cccd_handle is not None:
                        self._found(conn, ch.cccd_handle, struct.pack("<H", 0x2902))
        self._send(True, 4, 1, struct.pack("<BHH", conn, 0, 0))

    def _found(self, conn: int, handle: int, uuid: bytes) -> None:
        self._send(True, 4, 4, struct.pack("<BHB", conn, handle, len(uuid)) + uuid)

    def _read(self, p: bytes) -> None:
        conn, handle = struct.unpack("<BH", p[:3])
        self._send(False, 4, 4, struct.pack("<BH", conn, 0))
        periph = self._peripheral()
        try:
            if periph is None:
                raise GattError("not connected")
            value = self.host.run_sync(lambda: periph.read_handle(handle))
        except (GattError, TimeoutError):
            self._send(True, 4, 1, struct.pack("<BHH", conn, ATT_ERROR, handle))
            return
        self._send(True, 4, 5, struct.pack("<BHBB", conn, handle, 0, len(value)) + value)

    def _write(self, p: bytes, with_response: bool) -> None:
        conn, handle, n = struct.unpack("<BHB", p[:4])
        data = bytes(p[4:4 + n])
        self._send(False, 4, 5 if with_response else 6, struct.pack("<BH", conn, 0))
        periph = self._peripheral()
        result = 0
        try:
            if periph is None:
                raise GattError("not connected")
            self.host.run_sync(lambda: periph.write_handle(handle, data, with_response))
        except (GattError, TimeoutError):
            result = ATT_ERROR
        if with_response:
            self._send(True, 4, 1, struct.pack("<BHH", conn, result, handle))

    # ------------------------------------------------------------------ peripheral side
    def _notify(self, handle: int, data: bytes) -> None:
        # host thread; every value a peripheral pushes is a notification here
        self._send(True, 4, 5, struct.pack("<BHBB", 0, handle, 1, len(data)) + data)

    def _lost(self) -> None:
        self._link = None
        self._send(True, 3, 4, struct.pack("<BH", 0, 0x13))
