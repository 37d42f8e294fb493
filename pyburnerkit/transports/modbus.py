"""The Modbus TCP client link: holding-register reads and writes through pymodbus, strictly.

:class:`ModbusLink` is what a Modbus family's session thread talks to. It knows the Modbus
application protocol (MBAP header, function codes 3 and 16, exception replies) and nothing of
any device's register map. pymodbus is imported only when a link is first opened; a missing
pymodbus is then a :class:`~pyburnerkit.errors.BackendUnavailableError` naming the extra the
family passed, so importing this module costs nothing.

:func:`reply_problem` is the pure check behind the link's garbled-reply detection;
:func:`quiet_pymodbus` keeps pymodbus' own error lines off a bare stderr.
"""

from __future__ import annotations

import inspect
import logging
import socket
import threading
from typing import Any, Callable, Dict, List, Optional, Sequence

from .._core.extras import require
from ..errors import (ConnectionLostError, DeviceConnectionError, DeviceError,
                      DeviceTimeoutError, ProtocolError, PyBurnerKitError, check_range)

log = logging.getLogger(__name__)

__all__ = ["EXCEPTION_NAMES", "ModbusLink", "ModbusLinkDown", "quiet_pymodbus", "reply_problem"]

#: The Modbus exception codes a server may answer, by number.
EXCEPTION_NAMES: Dict[int, str] = {
    1: "illegal function", 2: "illegal data address", 3: "illegal data value",
    4: "server device failure", 5: "acknowledge", 6: "server device busy",
    10: "gateway path unavailable", 11: "gateway target failed to respond"}


# ------------------------------------------------------------------------------ pymodbus logs
_quiet_lock = threading.Lock()
_quiet_done = False


def quiet_pymodbus() -> None:
    """Give the ``pymodbus`` logger one :class:`logging.NullHandler` (idempotent, thread-safe).

    pymodbus logs, as ERROR, what the link already reports as typed exceptions (a request
    without an answer, a garbled reply, a failed connect). With no logging configured, Python's
    last-resort handler would print each to stderr with a hex dump of recent frames (password
    writes included). A NullHandler stops only that last-resort printing: an application that
    configures logging still receives every pymodbus record through propagation.
    """
    global _quiet_done
    if _quiet_done:
        return
    with _quiet_lock:
        if not _quiet_done:
            logging.getLogger("pymodbus").addHandler(logging.NullHandler())
            _quiet_done = True


# ------------------------------------------------------------------------------ reply check
def reply_problem(request: bytes, reply: bytes) -> Optional[str]:
    """Why ``reply`` (the bytes received so far) cannot be the Modbus/TCP answer to
    ``request`` (the frame sent), or None while it still can be. Pure; never raises.

    Judges only what has arrived: the MBAP transaction id, protocol id (0), length, unit id,
    then the function code (the request's, or it with 0x80 for an exception) and, for the
    function codes the link sends (3 and 16), the exact length of the answer.
    """
    if len(request) < 8:
        return None  # not a frame the link builds: nothing to compare with
    if len(reply) >= 2 and reply[0:2] != request[0:2]:
        return (f"transaction id {int.from_bytes(reply[0:2], 'big')}, expected "
                f"{int.from_bytes(request[0:2], 'big')}")
    if len(reply) >= 4 and reply[2:4] != b"\0\0":
        return f"protocol id {int.from_bytes(reply[2:4], 'big')}, expected 0"
    if len(reply) < 6:
        return None
    length = int.from_bytes(reply[4:6], "big")
    if not 3 <= length <= 254:
        return f"MBAP length {length}, the limit is 3..254"
    if len(reply) >= 7 and reply[6] != request[6]:
        return f"unit id {reply[6]}, expected {request[6]}"
    if len(reply) < 8:
        return None
    function, sent = reply[7], request[7]
    if function == sent | 0x80:
        return None if length == 3 else f"an exception reply of length {length}, expected 3"
    if function != sent:
        return f"function code {function} in reply to function {sent}"
    expected = _reply_length(request)
    if expected is not None and length != expected:
        return f"MBAP length {length} for function {function}, expected {expected}"
    if (function == 3 and expected is not None and len(reply) >= 9
            and reply[8] != expected - 3):
        return f"byte count {reply[8]}, expected {expected - 3}"
    return None


def _reply_length(request: bytes) -> Optional[int]:
    """The MBAP length of the normal answer to a request the link builds."""
    function = request[7]
    if function == 3 and len(request) >= 12:
        return 3 + 2 * int.from_bytes(request[10:12], "big")  # unit, function, count, data
    if function == 16:
        return 6  # unit, function, address, quantity
    return None


# ------------------------------------------------------------------------------ the link
class ModbusLinkDown(Exception):
    """Raised by :class:`ModbusLink`: fail the operation with ``error``, then drop the link.

    ``error`` is the documented error for the caller
    (:class:`~pyburnerkit.errors.DeviceConnectionError`,
    :class:`~pyburnerkit.errors.ConnectionLostError`,
    :class:`~pyburnerkit.errors.DeviceTimeoutError` or :class:`~pyburnerkit.errors.ProtocolError`);
    ``cause`` is what went wrong underneath. The byte stream can no longer be trusted, so the
    session closes the link and re-opens it before the next request.
    """

    def __init__(self, error: PyBurnerKitError, cause: BaseException) -> None:
        super().__init__(str(error))
        self.error = error
        self.cause = cause


class _GarbledReply(Exception):
    """Raised from the pymodbus trace hook: the bytes received cannot be the reply."""


class ModbusLink:
    """Modbus TCP through pymodbus' synchronous client, used from one thread (a session's).

    pymodbus drops a frame it cannot parse and keeps waiting, so on its own a garbled reply
    looks exactly like silence (a timeout). The link therefore watches the bytes through
    pymodbus' ``trace_packet`` hook: a reply whose MBAP header cannot answer the request sent
    (another transaction id, a protocol id other than 0, an impossible length, another unit
    or function; see :func:`reply_problem`) fails the request at once with
    :class:`~pyburnerkit.errors.ProtocolError`, and a request that times out after bytes did
    arrive (a truncated or undecodable reply) is a :class:`~pyburnerkit.errors.ProtocolError` too;
    only true silence is a :class:`~pyburnerkit.errors.DeviceTimeoutError`. Either way :meth:`read`
    and :meth:`write` raise :class:`ModbusLinkDown` carrying that error, since the stream can no
    longer be trusted.
    pymodbus is built with ``retries=0``: no request, least of all a write, is sent twice.

    :param host: the server's address.
    :param port: its TCP port.
    :param unit_id: the Modbus unit (slave, device) id of every request.
    :param wire: a :class:`~pyburnerkit._core.wire.WireLog`; every frame sent and received is
        recorded there, and a :class:`~pyburnerkit.errors.ProtocolError` carries its recent
        frames.
    :param extra: the pyburnerkit extra that installs pymodbus, named when it is missing.
    :param device: the family name put on every error.
    :param endpoint: the endpoint put on every error.
    :param peer: how messages name the server (``"the inverter"``).
    :param connect_hint: appended in parentheses to a failed connect's message.
    :raises ConfigurationError: a port outside 1..65535 or a unit id outside 0..255.
    """

    def __init__(self, host: str, port: int, *, unit_id: int, wire: Any, extra: str,
                 device: str, endpoint: str, peer: str = "the Modbus server",
                 connect_hint: str = "") -> None:
        self.host = host
        self.port: int = check_range("port", port, 1, 65535, integer=True)
        self.unit_id: int = check_range("unit_id", unit_id, 0, 255, integer=True)
        self.wire = wire
        self.extra = extra
        self.family, self.endpoint = device, endpoint
        self.peer = peer
        self.connect_hint = connect_hint
        self.client: Any = None
        #: while True, the bytes sent are replaced by a placeholder in the wire log (passwords)
        self.secret = False
        self._pymodbus: Any = None
        self._unit_kw = "device_id"
        self._request: bytes = b""  # the frame last sent
        self._reply: bytes = b""    # what arrived for it so far

    def _make(self) -> Any:
        pm_client = require("pymodbus.client", self.extra)
        self._pymodbus = require("pymodbus", self.extra)
        quiet_pymodbus()  # its ERROR lines are our typed exceptions
        # pymodbus renamed "slave" to "device_id" in 3.10; the client supports both sides.
        params = inspect.signature(pm_client.ModbusTcpClient.read_holding_registers).parameters
        self._unit_kw = "device_id" if "device_id" in params else "slave"
        # retries=0: pymodbus would otherwise send a timed-out request (a write too) again.
        return pm_client.ModbusTcpClient(self.host, port=self.port, timeout=3.0, retries=0,
                                         trace_packet=self._trace)

    def _trace(self, sending: bool, data: bytes) -> bytes:
        """pymodbus' packet hook (caller's thread): log, and refuse a reply that cannot be one."""
        if sending:
            self._request, self._reply = bytes(data), b""
            self.wire.sent(b"<a password write, not logged>" if self.secret else data)
            return data
        self._reply = bytes(data)  # pymodbus passes everything received for this request
        self.wire.received(data)
        problem = reply_problem(self._request, self._reply)
        if problem is not None:
            raise _GarbledReply(problem)
        return data

    @property
    def sock(self) -> Optional[socket.socket]:
        """The connected socket (for watching it while idle), or None when closed."""
        return None if self.client is None else self.client.socket

    def open(self, timeout: float) -> None:
        """Connect unless connected; blocks until connected or ``timeout`` seconds passed.

        :raises BackendUnavailableError: pymodbus is missing (names the extra).
        :raises DeviceConnectionError: the server could not be reached.
        """
        if self.client is None:
            self.client = self._make()
        if self.client.socket is not None:
            return
        self.client.comm_params.timeout_connect = max(0.05, timeout)
        if not self.client.connect():
            hint = f" ({self.connect_hint})" if self.connect_hint else ""
            raise DeviceConnectionError(
                f"cannot connect to {self.peer} at {self.host}:{self.port}{hint}",
                device=self.family, endpoint=self.endpoint)

    def close(self) -> None:
        """Close the socket (idempotent); the next request re-opens it."""
        if self.client is not None:
            self.client.close()

    def abort(self) -> None:
        """From another thread: wake a blocked request (its recv sees EOF). Never blocks."""
        sock = self.sock
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def _garbled(self, what: str, detail: str, cause: BaseException) -> ModbusLinkDown:
        err = ProtocolError(f"{what}: garbled reply from {self.peer} ({detail}); the "
                            f"connection is re-opened", frames=self.wire.recent(),
                            device=self.family, endpoint=self.endpoint)
        return ModbusLinkDown(err, cause)

    def _execute(self, what: str, call: Callable[[], Any], timeout: float) -> Any:
        try:
            self.open(timeout)  # reopens lazily after an idle close
        except DeviceConnectionError as exc:
            raise ModbusLinkDown(exc, exc) from exc
        # pymodbus' synchronous client waits for a reply for timeout_connect seconds.
        self.client.comm_params.timeout_connect = max(0.05, timeout)
        exceptions = self._pymodbus.exceptions
        self._request = self._reply = b""
        err: PyBurnerKitError
        try:
            response = call()
        except _GarbledReply as exc:
            raise self._garbled(what, str(exc), exc) from exc
        except exceptions.ConnectionException as exc:
            err = ConnectionLostError(f"{what}: the connection dropped ({exc})",
                                      device=self.family, endpoint=self.endpoint)
            raise ModbusLinkDown(err, exc) from exc
        except exceptions.ModbusIOException as exc:
            if self._reply:  # bytes came, but never a reply pymodbus could decode
                raise self._garbled(what, f"{len(self._reply)} bytes that are no complete "
                                    f"reply: {self._reply[:32].hex(' ')}", exc) from exc
            err = DeviceTimeoutError(f"{what}: no answer within {timeout:.3g} s",
                                     device=self.family, endpoint=self.endpoint)
            raise ModbusLinkDown(err, exc) from exc
        except exceptions.ModbusException as exc:
            raise self._garbled(what, str(exc), exc) from exc
        except OSError as exc:
            err = ConnectionLostError(f"{what}: {exc}", device=self.family,
                                      endpoint=self.endpoint)
            raise ModbusLinkDown(err, exc) from exc
        except Exception as exc:  # pymodbus tripping over hostile bytes: still their fault
            raise self._garbled(what, f"{type(exc).__name__}: {exc}", exc) from exc
        if response is None:
            err = DeviceTimeoutError(f"{what}: no answer", device=self.family,
                                     endpoint=self.endpoint)
            raise ModbusLinkDown(err, TimeoutError(what))
        if response.isError():
            code = getattr(response, "exception_code", None)
            name = EXCEPTION_NAMES.get(code, "exception")  # type: ignore[arg-type]
            raise DeviceError(f"{what}: {self.peer} answered Modbus exception {code} ({name})",
                              code=code, detail=name, device=self.family,
                              endpoint=self.endpoint)
        return response

    def read(self, address: int, count: int, timeout: float) -> List[int]:
        """Read ``count`` holding registers (function 3) from PDU ``address``; blocks until
        the reply came or ``timeout`` seconds passed.

        :returns: the registers, each 0..65535.
        :raises DeviceError: the server answered a Modbus exception (the link stays up).
        :raises ModbusLinkDown: carrying :class:`~pyburnerkit.errors.DeviceTimeoutError`
            (silence), :class:`~pyburnerkit.errors.ProtocolError` (a garbled reply),
            :class:`~pyburnerkit.errors.ConnectionLostError` or
            :class:`~pyburnerkit.errors.DeviceConnectionError`; close the link before the next
            request.
        :raises BackendUnavailableError: pymodbus is missing.
        """
        kw = {"count": count, self._unit_kw: self.unit_id}
        what = f"read {count} registers at {address}"
        response = self._execute(
            what, lambda: self.client.read_holding_registers(address, **kw), timeout)
        values = list(getattr(response, "registers", None) or ())
        if getattr(response, "function_code", None) != 3 or len(values) != count:
            raise self._garbled(what, f"got {len(values)} registers in a function "
                                f"{getattr(response, 'function_code', '?')} reply",
                                ProtocolError(what))
        return values

    def write(self, address: int, values: Sequence[int], timeout: float) -> None:
        """Write holding registers (function 16) from PDU ``address``; blocks until the server
        acknowledged or ``timeout`` seconds passed. Never retried: after a timeout the server
        may still apply the write.

        :raises DeviceError: the server answered a Modbus exception (the link stays up).
        :raises ModbusLinkDown: as :meth:`read`, also when the acknowledgement echoes another
            address or count.
        :raises BackendUnavailableError: pymodbus is missing.
        """
        kw = {self._unit_kw: self.unit_id}
        what = f"write {len(values)} registers at {address}"
        response = self._execute(
            what, lambda: self.client.write_registers(address, list(values), **kw), timeout)
        echoed = (getattr(response, "function_code", None), getattr(response, "address", None),
                  getattr(response, "count", None))
        if echoed != (16, address, len(values)):
            raise self._garbled(what, f"the acknowledgement says function {echoed[0]}, "
                                f"address {echoed[1]}, {echoed[2]} registers",
                                ProtocolError(what))
