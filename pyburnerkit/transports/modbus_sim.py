"""The Modbus TCP server side: a pymodbus server serving a register space, with fault injection.

A family's simulator gives :class:`ModbusSimServer` a *register space* (a
:class:`ServedSpace`), any object with

* ``read(address, count)`` -> a list of registers, or a Modbus exception code (int);
* ``write(address, values)`` -> None, or a Modbus exception code;

(:class:`HoldingRegisters` is a plain one) and gets a real Modbus TCP server on 127.0.0.1 that
answers function codes 3, 6 and 16 from it, plus the shared fault-injection vocabulary:
:meth:`~ModbusSimServer.disconnect`, :meth:`~ModbusSimServer.refuse_connections`,
:meth:`~ModbusSimServer.delay_responses`, :meth:`~ModbusSimServer.send_garbage`,
:meth:`~ModbusSimServer.reply_error`, :meth:`~ModbusSimServer.silence` and
:attr:`~ModbusSimServer.received`. It knows no device: the register map, which registers are
writable and what a write means belong to the space.

The server runs on its own thread, ``pyburnerkit-sim-<name>-<port>``, with a private asyncio
loop; :meth:`~ModbusSimServer.close` stops it within its timeout. pymodbus is imported only by
:meth:`~ModbusSimServer.start`; the server needs the pymodbus 3.16 server API.
"""

from __future__ import annotations

import asyncio
import logging
import random
import socket
import struct
import threading
from typing import (Any, Callable, Coroutine, Dict, Iterable, List, Mapping, Optional, Protocol,
                    Set, Tuple, Union, cast)

from .._core.extras import require
from .._core.timeouts import Deadline
from ..errors import BackendUnavailableError, ConfigurationError, check_range
from .modbus import quiet_pymodbus

log = logging.getLogger(__name__)

__all__ = ["HoldingRegisters", "ModbusSimServer", "ILLEGAL_FUNCTION", "ILLEGAL_ADDRESS",
           "ILLEGAL_VALUE", "DEVICE_FAILURE", "ServedSpace"]

ILLEGAL_FUNCTION = 1
ILLEGAL_ADDRESS = 2
ILLEGAL_VALUE = 3
DEVICE_FAILURE = 4

#: The most a fault-injection count may ask for (a bound only so a typo is caught).
_MAX_COUNT = 10 ** 9


class ServedSpace(Protocol):
    """What :class:`ModbusSimServer` serves: the register map of one device (server thread)."""

    def read(self, address: int, count: int) -> Union[List[int], int]:
        """``count`` registers from ``address``, or a Modbus exception code."""

    def write(self, address: int, values: List[int]) -> Optional[int]:
        """Store a write; None, or a Modbus exception code."""


class HoldingRegisters:
    """A plain register space: registers, which are writable, which are write-only.

    :param registers: ``{pdu address: value}``; reading any address outside it is
        exception 2 (illegal data address).
    :param max_registers: the most registers one read may ask for (more is exception 3).
    :param writable: the addresses a write may touch (default: all of ``registers``); a
        write touching any other is refused whole with exception 2.
    :param write_only: writable addresses that keep reading back as before (commands,
        passwords); writes touching them are also listed in :attr:`commands`.

    Thread-safe: the server thread reads and writes it, tests and simulators too.
    """

    def __init__(self, registers: Mapping[int, int], max_registers: int = 125, *,
                 writable: Optional[Iterable[int]] = None,
                 write_only: Iterable[int] = ()) -> None:
        # 125 registers fill the largest PDU a function-3 reply can carry
        self.max_registers: int = check_range("max_registers", max_registers, 1, 125,
                                              integer=True)
        self._lock = threading.Lock()
        self.registers: Dict[int, int] = dict(registers)
        self.writable: Set[int] = set(self.registers if writable is None else writable)
        self.write_only: Set[int] = set(write_only)
        #: writes that touched write-only registers: (address, values), oldest first
        self.commands: List[Tuple[int, Tuple[int, ...]]] = []

    def read(self, address: int, count: int) -> Union[List[int], int]:
        """Registers, or a Modbus exception code."""
        if not 1 <= count <= self.max_registers:
            return ILLEGAL_VALUE
        with self._lock:
            try:
                return [self.registers[a] for a in range(address, address + count)]
            except KeyError:
                return ILLEGAL_ADDRESS

    def write(self, address: int, values: List[int]) -> Optional[int]:
        """Store a write; None, or a Modbus exception code."""
        addrs = range(address, address + len(values))
        with self._lock:
            if any(a not in self.registers or a not in self.writable for a in addrs):
                return ILLEGAL_ADDRESS
            for addr, value in zip(addrs, values):
                if addr in self.write_only:
                    continue  # a command: acted on, but it reads back as before
                self.registers[addr] = value
            if any(a in self.write_only for a in addrs):
                self.commands.append((address, tuple(values)))
        return None

    def poke(self, updates: Mapping[int, int]) -> None:
        """Change registers directly (the device changing state by itself).

        :raises ConfigurationError: an address outside the served map.
        """
        with self._lock:
            for addr, value in updates.items():
                if addr not in self.registers:
                    raise ConfigurationError(f"register {addr} is outside the served map")
                self.registers[addr] = value & 0xFFFF

    def snapshot(self) -> Dict[int, int]:
        """A copy of every register."""
        with self._lock:
            return dict(self.registers)


class ModbusSimServer:
    """A Modbus TCP server on a real socket, answering from ``space``.

    :param space: the register space (see the module docstring).
    :param name: names the thread (``pyburnerkit-sim-<name>-<port>``) and the logs.
    :param extra: the pyburnerkit extra that installs pymodbus, named when it is missing.
    :param unit_ids: the unit ids the server declares to pymodbus; requests are answered
        from the one space whatever unit id they carry.
    :param single_client: reset a second simultaneous connection, as a busy device would.
    :param seed: seed of the ``random`` attribute (the garbage bytes; subclasses may use it too).

    Subclasses may override :meth:`on_serving` to start periodic work with :meth:`spawn`.
    """

    #: :attr:`received` keeps at most this many requests (the oldest half goes when it is full)
    RECEIVED_LIMIT = 50000

    def __init__(self, space: ServedSpace, *, extra: str, name: str = "modbus",
                 unit_ids: Iterable[int] = (0,), single_client: bool = False,
                 seed: Optional[int] = None) -> None:
        self.space = space
        self.name = name
        self.extra = extra
        self.unit_ids: List[int] = [check_range("unit_id", u, 0, 255, integer=True)
                                    for u in unit_ids]
        if not self.unit_ids:
            raise ConfigurationError("a Modbus server needs at least one unit id")
        self.single_client = single_client
        self.random = random.Random(seed)
        #: every request, oldest first: ("read", address, count), ("write", address, values)
        #: or ("other", function, None); bounded (see RECEIVED_LIMIT) so a long-running
        #: simulator does not grow without end
        self.received: List[Tuple[str, int, Any]] = []
        self._writes = 0
        self.reply_delay = 0.0
        self._delay_writes_only = False
        self.host = "127.0.0.1"
        self.port = 0
        self._silent = False
        self._refuse = 0
        self._garbage = 0
        self._error_code: Optional[int] = None
        self._error_count: Optional[int] = None
        self._lock = threading.Lock()
        self._loop: Optional[asyncio.AbstractEventLoop] = None
        self._server: Any = None
        self._thread: Optional[threading.Thread] = None
        self._started = threading.Event()
        self._start_error: Optional[BaseException] = None
        self._closed = False
        self._tasks: List["asyncio.Task[Any]"] = []

    # ------------------------------------------------------------------ lifecycle
    def start(self, host: str = "127.0.0.1", port: int = 0,
              timeout: float = 5.0) -> "ModbusSimServer":
        """Start serving on ``host:port`` (0 picks a free port) on the server's thread; blocks
        until it listens or ``timeout`` seconds passed.

        :returns: self; its ``port`` attribute then holds the real port.
        :raises BackendUnavailableError: pymodbus (or its 3.16 server API) is missing.
        :raises OSError: the address could not be bound.
        """
        require("pymodbus", self.extra)
        if self._thread is not None:
            return self
        quiet_pymodbus()
        self.host = host
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, args=(host, port), daemon=True,
                                        name=f"pyburnerkit-sim-{self.name}-{port or 'starting'}")
        self._thread.start()
        self._started.wait(timeout)
        if isinstance(self._start_error, BackendUnavailableError):
            self.close()
            raise self._start_error
        if self._start_error is not None or self._server is None:
            self.close()
            raise OSError(f"the {self.name} simulator could not listen on {host}:{port}: "
                          f"{self._start_error or 'timeout'}")
        self._thread.name = f"pyburnerkit-sim-{self.name}-{self.port}"
        return self

    def close(self, timeout: float = 5.0) -> None:
        """Drop every client, stop listening and join the thread (bounded, idempotent; from
        any thread, the server's own included, which is then not joined)."""
        loop, thread = self._loop, self._thread
        if self._closed or loop is None or thread is None:
            self._closed = True
            return
        self._closed = True
        deadline = Deadline(timeout)
        if self._server is None and self._start_error is not None:
            pass  # it never served (start failed): its thread ends by itself
        elif thread.is_alive() and not loop.is_closed():
            try:
                loop.call_soon_threadsafe(lambda: asyncio.ensure_future(self._shutdown()))
            except RuntimeError:
                pass  # the loop already stopped
        if thread is not threading.current_thread():
            thread.join(deadline.remaining())
            if thread.is_alive():
                log.warning("%s did not stop within %s s", thread.name, timeout)

    def __enter__(self) -> "ModbusSimServer":
        return self.start() if self._thread is None else self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    @property
    def address(self) -> Tuple[str, int]:
        return self.host, self.port

    @property
    def endpoint(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def client_count(self) -> int:
        """Connections open right now."""
        server = self._server
        return 0 if server is None else len(server.active_connections)

    def on_serving(self) -> None:
        """Server thread, once listening: a hook for subclasses (start work with :meth:`spawn`)."""

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> None:
        """Server thread only: run ``coro`` on the server's loop until it ends or close()."""
        self._tasks.append(asyncio.ensure_future(coro))

    # ------------------------------------------------------------------ fault injection
    def disconnect(self) -> None:
        """Reset every client connection at once, like a device reboot; blocks (at most 5 s)
        until done."""
        self._run_sync(self._abort_all)

    def refuse_connections(self, count: int) -> None:
        """Reset the next ``count`` connection attempts as soon as they arrive.

        :raises ConfigurationError: ``count`` is not a whole number >= 0.
        """
        count = check_range("count", count, 0, _MAX_COUNT, integer=True)
        with self._lock:
            self._refuse = count

    def delay_responses(self, seconds: float, *, writes_only: bool = False) -> None:
        """Hold every reply (or only write acknowledgements) back by ``seconds``; 0 restores
        prompt replies.

        :raises ConfigurationError: ``seconds`` is not in 0..3600.
        """
        seconds = float(check_range("seconds", seconds, 0, 3600, "s"))
        self._delay_writes_only = bool(writes_only)
        self.reply_delay = seconds

    def send_garbage(self, count: int = 1) -> None:
        """Answer the next ``count`` requests with 9 random bytes instead of a Modbus reply.

        :raises ConfigurationError: ``count`` is not a whole number >= 0.
        """
        count = check_range("count", count, 0, _MAX_COUNT, integer=True)
        with self._lock:
            self._garbage = count

    def reply_error(self, code: Optional[int] = DEVICE_FAILURE,
                    count: Optional[int] = None) -> None:
        """Answer requests with Modbus exception ``code`` (the next ``count``, or all until
        ``reply_error(None)``).

        :raises ConfigurationError: ``code`` outside 1..255 or ``count`` below 1.
        """
        if code is not None:
            code = check_range("code", code, 1, 255, integer=True)
        if count is not None:
            count = check_range("count", count, 1, _MAX_COUNT, integer=True)
        with self._lock:
            self._error_code = code
            self._error_count = count

    def silence(self, on: bool = True) -> None:
        """Stop answering (``on=True``) or resume, keeping connections open."""
        self._silent = bool(on)

    @property
    def registers(self) -> Dict[int, int]:
        """A copy of the served registers (when the space has ``snapshot()``, as
        :class:`HoldingRegisters` does).

        :raises AttributeError: the space keeps no snapshot.
        """
        snapshot: Callable[[], Dict[int, int]] = getattr(self.space, "snapshot")
        return snapshot()

    def writes_received(self) -> int:
        """Write requests (FC6/FC16) received since the server started, answered or not."""
        return self._writes

    def _log_request(self, entry: Tuple[str, int, Any]) -> None:
        """Server thread: remember one request (bounded)."""
        if entry[0] == "write":
            self._writes += 1
        received = self.received
        received.append(entry)
        if len(received) > self.RECEIVED_LIMIT:
            del received[:len(received) - self.RECEIVED_LIMIT // 2]

    # ------------------------------------------------------------------ internals
    def _run_sync(self, func: Callable[[], Any], timeout: float = 5.0) -> None:
        loop = self._loop
        if loop is None or loop.is_closed() or self._thread is None:
            return
        done = threading.Event()

        def call() -> None:
            try:
                func()
            finally:
                done.set()

        try:
            loop.call_soon_threadsafe(call)
        except RuntimeError:
            return
        done.wait(timeout)

    def _abort_all(self) -> None:
        server = self._server
        if server is None:
            return
        for handler in list(server.active_connections.values()):
            _reset(handler.transport)

    def _take_error(self) -> Optional[int]:
        with self._lock:
            code = self._error_code
            if code is None:
                return None
            if self._error_count is not None:
                self._error_count -= 1
                if self._error_count <= 0:
                    self._error_code = self._error_count = None
            return code

    def _take_garbage(self) -> bool:
        with self._lock:
            if self._garbage > 0:
                self._garbage -= 1
                return True
            return False

    def _take_refusal(self) -> bool:
        with self._lock:
            if self._refuse > 0:
                self._refuse -= 1
                return True
            return False

    def _run(self, host: str, port: int) -> None:
        loop = self._loop
        assert loop is not None
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(self._serve(host, port))
        except BaseException as exc:  # reported to start()
            self._start_error = exc
            self._started.set()
        else:
            self._started.set()
            loop.run_forever()
        finally:
            try:
                pending = [t for t in asyncio.all_tasks(loop) if not t.done()]
                for task in pending:
                    task.cancel()
                if pending:
                    loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
                loop.run_until_complete(loop.shutdown_asyncgens())
            finally:
                loop.close()

    async def _serve(self, host: str, port: int) -> None:
        server = _make_server(self, host, port)
        await server.serve_forever(background=True)
        sock = server.transport.sockets[0]
        self.port = sock.getsockname()[1]
        self._server = server
        self.on_serving()

    async def _shutdown(self) -> None:
        for task in self._tasks:
            task.cancel()
        server = self._server
        if server is not None:
            self._abort_all()
            await server.shutdown()
            await asyncio.sleep(0)
        asyncio.get_running_loop().stop()


def _reset(transport: Any) -> None:
    """Close with RST, as a device that reboots or refuses does."""
    if transport is None:
        return
    sock = transport.get_extra_info("socket")
    if sock is not None:
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass
    transport.abort()


def _make_server(sim: ModbusSimServer, host: str, port: int) -> Any:
    """Build the pymodbus server with the simulator's handler (pymodbus 3.10+ server API)."""
    server_mod = require("pymodbus.server", sim.extra)
    pdu_mod = require("pymodbus.pdu", sim.extra)
    sim_mod = require("pymodbus.simulator", sim.extra)
    try:
        from pymodbus.constants import ExcCodes
        from pymodbus.server.requesthandler import ServerRequestHandler
        sim_mod.SimDevice, sim_mod.SimData  # noqa: B018 (the 3.1x server API)
    except (ImportError, AttributeError) as exc:
        raise BackendUnavailableError(
            sim.extra, "pymodbus", reason=f"the simulator needs the server API of pymodbus "
            f"3.16 (found {getattr(require('pymodbus', sim.extra), '__version__', '?')})"
        ) from exc

    ExceptionResponse = pdu_mod.ExceptionResponse

    class Handler(ServerRequestHandler):
        def server_send(self, pdu: Any, addr: Any) -> None:
            # A client may hang up while its request is being answered (a client closing
            # mid-read, a recorder stopping). A device then simply has nobody to answer;
            # pymodbus would log "Cancel send, because not connected!" as an ERROR with a
            # dump of the last frames, so drop the reply here, quietly.
            if self.transport is None:
                log.debug("%s sim: the client left before its reply; dropped", sim.name)
                return
            super().server_send(pdu, addr)  # type: ignore[no-untyped-call]  # pymodbus

        def callback_connected(self) -> None:
            super().callback_connected()
            busy = sim.single_client and len(self.server.active_connections) > 1
            if sim._take_refusal() or busy:
                _reset(self.transport)

        async def handle_request(self) -> None:
            pdu = self.last_pdu
            if not pdu:
                return
            fc = pdu.function_code
            if fc == 3:
                sim._log_request(("read", pdu.address, pdu.count))
            elif fc in (6, 16):
                sim._log_request(("write", pdu.address, list(pdu.registers)))
            else:
                sim._log_request(("other", fc, None))
            if sim._silent:
                return
            if sim.reply_delay and (fc in (6, 16) or not sim._delay_writes_only):
                await asyncio.sleep(sim.reply_delay)
                if sim._silent or self.transport is None:
                    return
            if self.transport is None:
                return  # the client already left: nobody to answer
            if sim._take_garbage():
                # pymodbus declares a BaseTransport; a TCP server's is an asyncio.Transport
                cast(asyncio.Transport, self.transport).write(
                    bytes(sim.random.getrandbits(8) for _ in range(9)))
                return
            code = sim._take_error()
            if code is not None:
                response = ExceptionResponse(fc, code)
                response.transaction_id = pdu.transaction_id
                response.dev_id = pdu.dev_id
                self.server_send(response, self.last_addr)
                return
            self.last_pdu = pdu
            await super().handle_request()  # type: ignore[no-untyped-call]  # pymodbus

    class Store:
        """Stands in for pymodbus' datastore: answers from the simulator's register space."""

        def device_ids(self) -> List[int]:
            return list(sim.unit_ids)

        async def async_getValues(self, device_id: int, func_code: int, address: int,
                                  count: int = 1) -> Any:
            if func_code not in (3, 6, 16):
                return ExcCodes(ILLEGAL_FUNCTION)
            result = sim.space.read(address, count)
            return ExcCodes(result) if isinstance(result, int) else result

        async def async_setValues(self, device_id: int, func_code: int, address: int,
                                  values: List[int]) -> Any:
            if func_code not in (6, 16):
                return ExcCodes(ILLEGAL_FUNCTION)
            code = sim.space.write(address, list(values))
            return None if code is None else ExcCodes(code)

    class Server(server_mod.ModbusTcpServer):  # type: ignore[misc, name-defined]
        def callback_new_connection(self) -> Any:
            return Handler(  # type: ignore[no-untyped-call]  # pymodbus' __init__ is untyped
                self, self.trace_packet, self.trace_pdu, self.trace_connect)

    placeholder = sim_mod.SimDevice(id=sim.unit_ids[0], simdata=[sim_mod.SimData(0, values=0)])
    server = Server(placeholder, address=(host, port))
    server.context = Store()
    return server
