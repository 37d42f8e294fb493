"""A Mate3s on Modbus TCP: a pymodbus server serving a SunSpec register space.

By default it serves the public chinezbrun dump of a real Mate3s exactly as recorded; it can
also serve any dump file or a system generated from a short description
(``"cc:3,fndc:5,gs-single:1"``, see :func:`~.codec.parse_description`). It behaves like the
device as far as the public record goes:

* exception replies for registers outside the map (code 2) and for requests above the
  per-request register limit (100 by default, code 3);
* write-only registers (passwords, the URL lock, the 64120 commands, the "write complement"
  clears) accept writes but keep reading back as the device shows them (0xFFFF or 0x0000);
* read-write registers store what is written; writes to read-only registers, block headers
  or registers outside any field are refused (code 2);
* optionally one client at a time (``single_client=True``; a second connection is reset).

With ``live=True`` the charge controllers' power follows a day curve and the battery voltage and
state of charge respond to charge and load, ``speed`` times faster than real time. Without it
the served registers stay exactly as recorded unless a client (or :meth:`Mate3Sim.set`) writes.

The server runs on its own thread, ``pyburnerkit-sim-mate3-<port>``, with a private asyncio
loop; :meth:`Mate3Sim.close` stops it within its timeout. Fault injection (any thread):
:meth:`disconnect`, :meth:`refuse_connections`, :meth:`delay_responses`, :meth:`send_garbage`,
:meth:`reply_error`, :meth:`silence`, :meth:`set`, and :attr:`received`.
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
import socket
import struct
import threading
import time
from typing import Any, Callable, Dict, List, Mapping, Optional, Set, Tuple

from .._core.extras import require
from .._core.timeouts import Deadline
from ..errors import BackendUnavailableError, ConfigurationError, check_range
from . import codec
from ._logs import quiet_pymodbus
from .models import Mode

log = logging.getLogger(__name__)

ILLEGAL_FUNCTION = 1
ILLEGAL_ADDRESS = 2
ILLEGAL_VALUE = 3
DEVICE_FAILURE = 4


class RegisterSpace:
    """The device model: registers, which of them are write-only or read-only, and writes.

    Thread-safe: the server thread reads and writes it; tests and :meth:`Mate3Sim.set` too.
    """

    def __init__(self, registers: Mapping[int, int], max_registers: int) -> None:
        self.max_registers = max_registers
        self._lock = threading.Lock()
        self.registers: Dict[int, int] = dict(registers)
        self.write_only: Set[int] = set()
        self.writable: Set[int] = set()
        self.commands: List[Tuple[int, Tuple[int, ...]]] = []  # writes to write-only fields
        self.layout = codec.layout_from_registers(self.registers)
        self._classify()

    def _classify(self) -> None:
        for block in self.layout.blocks:
            bdef = codec.block_defs().get(block.did)
            if bdef is None:
                continue
            for fdef in codec.fields_in_block(bdef, block.length):
                addrs = range(block.address + fdef.start - 1, block.address + fdef.end)
                if fdef.mode is Mode.W:
                    self.write_only.update(addrs)
                if fdef.mode.writable:
                    self.writable.update(addrs)

    def read(self, address: int, count: int) -> Any:
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
        """Change registers directly (the device changing state by itself)."""
        with self._lock:
            for addr, value in updates.items():
                if addr not in self.registers:
                    raise ConfigurationError(f"register {addr} is outside the served map")
                self.registers[addr] = value & 0xFFFF

    def snapshot(self) -> Dict[int, int]:
        with self._lock:
            return dict(self.registers)


class Mate3Sim:
    """A simulated Mate3s serving Modbus TCP on a real socket.

    :param registers: a register image ``{address: value}``; by default the bundled dump.
    :param dump: a dump file to serve instead (JSON ``{"<address>": value}``).
    :param description: a generated system instead, e.g. ``"cc:3,cc:4,fndc:5"``.
    :param live: let values follow a day curve and a battery model.
    :param speed: simulated seconds per real second in live mode.
    :param single_client: reset a second simultaneous connection, as a busy Mate3s would.
    :param max_registers: the per-request register limit.
    :param seed: seed of the garbage and live-model randomness.
    """

    name = "mate3"
    #: :attr:`received` keeps at most this many requests (the oldest half goes when it is full)
    RECEIVED_LIMIT = 50000

    def __init__(self, registers: Optional[Mapping[int, int]] = None, *,
                 dump: Optional[str] = None, description: Optional[str] = None,
                 live: bool = False, speed: float = 1.0, live_tick: float = 1.0,
                 single_client: bool = False, max_registers: int = codec.MAX_REGISTERS,
                 seed: Optional[int] = None,
                 clock: Callable[[], float] = time.time) -> None:
        if sum(x is not None for x in (registers, dump, description)) > 1:
            raise ConfigurationError("give at most one of registers, dump and description")
        if dump is not None:
            registers = codec.load_dump(dump)
        elif description is not None:
            registers = codec.build_image(codec.parse_description(description))
        elif registers is None:
            registers = codec.bundled_dump()
        check_range("speed", speed, 0.001, 1e6)
        check_range("live_tick", live_tick, 0.01, 60, "s")
        check_range("max_registers", max_registers, 1, 125, integer=True)
        try:
            self.space = RegisterSpace(registers, max_registers)
        except Exception as exc:
            raise ConfigurationError(f"the register image is not a SunSpec map: {exc}") from exc
        self.live = live
        self.speed = float(speed)
        self.live_tick = float(live_tick)
        self.single_client = single_client
        self.random = random.Random(seed)
        self.clock = clock
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
        self._live_task: Optional[asyncio.Task] = None
        self._model = _LiveModel(self) if live else None

    # ------------------------------------------------------------------ lifecycle
    def start(self, host: str = "127.0.0.1", port: int = 0, timeout: float = 5.0) -> "Mate3Sim":
        """Start serving on ``host:port`` (0 picks a free port) on the simulator's thread.

        :returns: self; :attr:`port` then holds the real port.
        :raises OSError: the address could not be bound.
        """
        require("pymodbus", "mate3")
        if self._thread is not None:
            return self
        quiet_pymodbus()
        self.host = host
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, args=(host, port), daemon=True,
                                        name=f"pyburnerkit-sim-mate3-{port or 'starting'}")
        self._thread.start()
        self._started.wait(timeout)
        if self._start_error is not None or self._server is None:
            self.close()
            raise OSError(f"the Mate3 simulator could not listen on {host}:{port}: "
                          f"{self._start_error or 'timeout'}")
        self._thread.name = f"pyburnerkit-sim-mate3-{self.port}"
        return self

    def close(self, timeout: float = 5.0) -> None:
        """Drop every client, stop listening and join the thread (bounded, idempotent)."""
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

    def __enter__(self) -> "Mate3Sim":
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
        server = self._server
        return 0 if server is None else len(server.active_connections)

    # ------------------------------------------------------------------ fault injection
    def disconnect(self) -> None:
        """Reset every client connection at once, like a device reboot."""
        self._run_sync(self._abort_all)

    def refuse_connections(self, count: int) -> None:
        """Reset the next ``count`` connection attempts as soon as they arrive."""
        with self._lock:
            self._refuse = int(count)

    def delay_responses(self, seconds: float, *, writes_only: bool = False) -> None:
        """Hold every reply (or only write acknowledgements) back by ``seconds``; 0 restores
        prompt replies."""
        self._delay_writes_only = bool(writes_only)
        self.reply_delay = max(0.0, float(seconds))

    def send_garbage(self, count: int = 1) -> None:
        """Answer the next ``count`` requests with random bytes instead of a Modbus reply."""
        with self._lock:
            self._garbage = int(count)

    def reply_error(self, code: Optional[int] = DEVICE_FAILURE,
                    count: Optional[int] = None) -> None:
        """Answer requests with Modbus exception ``code`` (the next ``count``, or all until
        ``reply_error(None)``)."""
        with self._lock:
            self._error_code = code
            self._error_count = count

    def silence(self, on: bool = True) -> None:
        """Stop answering (``on=True``) or resume, keeping connections open."""
        self._silent = bool(on)

    def set(self, values: Optional[Mapping[str, Any]] = None, **registers: int) -> None:
        """Change the device state: ``set({"charge_controllers[3].battery_voltage": 52.4})``
        encodes with the block's own scale factor; ``set(r40950=123)`` pokes a register."""
        updates: Dict[int, int] = {}
        for key, value in registers.items():
            if not key.startswith("r"):
                raise ConfigurationError(f"register keywords look like r40950=..., got {key}")
            updates[int(key[1:])] = int(value)
        if values:
            updates.update(self._encode_paths(values))
        self.space.poke(updates)

    def swap_ports(self, a: int, b: int) -> None:
        """Exchange the HUB ports of the devices on ports ``a`` and ``b`` (devices re-plugged)."""
        updates = {}
        for block in self.space.layout.blocks:
            if block.port in (a, b):
                updates[block.address + 2] = b if block.port == a else a
        self.space.poke(updates)

    @property
    def registers(self) -> Dict[int, int]:
        return self.space.snapshot()

    @property
    def commands(self) -> List[Tuple[int, Tuple[int, ...]]]:
        """Writes to write-only registers (commands), in order."""
        return list(self.space.commands)

    def writes_received(self) -> int:
        """Write requests (FC6/FC16) received since the simulator started, answered or not."""
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
    def _encode_paths(self, values: Mapping[str, Any]) -> Dict[int, int]:
        regs = self.space.snapshot()
        system = codec.build_system(self.space.layout, regs, 0.0)
        updates: Dict[int, int] = {}
        for path, value in values.items():
            owner, name = codec.split_path(path)
            try:
                dev = system.device(owner)
                fdef = codec.block_defs()[dev.did].fields[name]
            except KeyError:
                raise ConfigurationError(f"no field {path!r} in the simulated system") from None
            sf = codec.scale_factor_of(dev.did, dev.address, fdef, regs)
            for offset, reg in enumerate(codec.encode_field(fdef, value, sf)):
                updates[dev.address + fdef.start - 1 + offset] = reg
        return updates

    def _run_sync(self, func: Callable[[], Any], timeout: float = 5.0) -> Any:
        loop = self._loop
        if loop is None or loop.is_closed() or self._thread is None:
            return None
        done = threading.Event()

        def call() -> None:
            try:
                func()
            finally:
                done.set()

        try:
            loop.call_soon_threadsafe(call)
        except RuntimeError:
            return None
        done.wait(timeout)
        return None

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
        if self._model is not None:
            self._live_task = asyncio.ensure_future(self._live())

    async def _shutdown(self) -> None:
        if self._live_task is not None:
            self._live_task.cancel()
        server = self._server
        if server is not None:
            self._abort_all()
            await server.shutdown()
            await asyncio.sleep(0)
        asyncio.get_running_loop().stop()

    async def _live(self) -> None:
        model = self._model
        assert model is not None
        while True:
            await asyncio.sleep(self.live_tick)
            model.step(self.live_tick * self.speed)


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


def _make_server(sim: Mate3Sim, host: str, port: int) -> Any:
    """Build the pymodbus server with the simulator's handler (pymodbus 3.10+ server API)."""
    server_mod = require("pymodbus.server", "mate3")
    pdu_mod = require("pymodbus.pdu", "mate3")
    sim_mod = require("pymodbus.simulator", "mate3")
    try:
        from pymodbus.server.requesthandler import ServerRequestHandler
        sim_mod.SimDevice, sim_mod.SimData  # noqa: B018 (the 3.1x server API)
    except (ImportError, AttributeError) as exc:
        raise BackendUnavailableError(
            "mate3", "pymodbus", reason=f"the simulator needs the server API of pymodbus "
            f"3.16 (found {getattr(require('pymodbus', 'mate3'), '__version__', '?')})"
        ) from exc

    ExceptionResponse = pdu_mod.ExceptionResponse

    class Handler(ServerRequestHandler):  # type: ignore[misc, valid-type]
        def server_send(self, pdu: Any, addr: Any) -> None:
            # A client may hang up while its request is being answered (a client closing
            # mid-read, a recorder stopping). A Mate3s then simply has nobody to answer;
            # pymodbus would log "Cancel send, because not connected!" as an ERROR with a
            # dump of the last frames, so drop the reply here, quietly.
            if self.transport is None:
                log.debug("mate3 sim: the client left before its reply; dropped")
                return
            super().server_send(pdu, addr)

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
                self.transport.write(bytes(sim.random.getrandbits(8) for _ in range(9)))
                return
            code = sim._take_error()
            if code is not None:
                response = ExceptionResponse(fc, code)
                response.transaction_id = pdu.transaction_id
                response.dev_id = pdu.dev_id
                self.server_send(response, self.last_addr)
                return
            self.last_pdu = pdu
            await super().handle_request()

    class Store:
        """Stands in for pymodbus' datastore: answers from the simulator's register space."""

        def device_ids(self) -> List[int]:
            return [0]

        async def async_getValues(self, device_id: int, func_code: int, address: int,
                                  count: int = 1) -> Any:
            if func_code not in (3, 6, 16):
                return _exc(ILLEGAL_FUNCTION)
            result = sim.space.read(address, count)
            return _exc(result) if isinstance(result, int) else result

        async def async_setValues(self, device_id: int, func_code: int, address: int,
                                  values: List[int]) -> Any:
            if func_code not in (6, 16):
                return _exc(ILLEGAL_FUNCTION)
            code = sim.space.write(address, list(values))
            return None if code is None else _exc(code)

    class Server(server_mod.ModbusTcpServer):  # type: ignore[misc, name-defined]
        def callback_new_connection(self) -> Any:
            return Handler(self, self.trace_packet, self.trace_pdu, self.trace_connect)

    placeholder = sim_mod.SimDevice(id=0, simdata=[sim_mod.SimData(0, values=0)])
    server = Server(placeholder, address=(host, port))
    server.context = Store()
    return server


def _exc(code: int) -> Any:
    from pymodbus.constants import ExcCodes
    return ExcCodes(code)


class _LiveModel:
    """A small physical model behind ``live=True``: sun, charge controllers, battery, load."""

    CAPACITY_WH = 20000.0
    LOAD_W = 600.0

    def __init__(self, sim: Mate3Sim) -> None:
        self.sim = sim
        regs = sim.space.registers
        self.system = codec.build_system(sim.space.layout, regs, 0.0)
        fndc = next(iter(self.system.fndcs.values()), None)
        soc_value = fndc.values.get("state_of_charge") if fndc is not None else None
        soc = soc_value.raw if soc_value is not None and soc_value.implemented else 80
        self.soc = float(min(100, max(0, soc)))
        start = time.localtime(sim.clock())
        self.day_seconds = start.tm_hour * 3600 + start.tm_min * 60 + start.tm_sec

    def step(self, dt: float) -> None:
        self.day_seconds = (self.day_seconds + dt) % 86400
        hour = self.day_seconds / 3600.0
        sun = max(0.0, math.sin(math.pi * (hour - 6.0) / 12.0))
        values: Dict[str, Any] = {}
        charge_w = 0.0
        voltage = 48.0 + 6.0 * self.soc / 100.0
        for port, cc in self.system.charge_controllers.items():
            watts = round(1500.0 * sun * (0.95 + 0.1 * self.sim.random.random()))
            charge_w += watts
            values[f"charge_controllers[{port}].watts"] = _fit(cc, "watts", watts)
            values[f"charge_controllers[{port}].battery_current"] = \
                _fit(cc, "battery_current", watts / voltage)
            values[f"charge_controllers[{port}].battery_voltage"] = \
                _fit(cc, "battery_voltage", voltage)
        net_w = charge_w - self.LOAD_W
        self.soc = min(100.0, max(0.0, self.soc + 100.0 * net_w * dt / 3600.0 / self.CAPACITY_WH))
        voltage = 48.0 + 6.0 * self.soc / 100.0 + net_w / 2000.0
        for port, fndc in self.system.fndcs.items():
            if "state_of_charge" in fndc.values:
                values[f"fndcs[{port}].state_of_charge"] = int(round(self.soc))
            values[f"fndcs[{port}].battery_voltage"] = _fit(fndc, "battery_voltage", voltage)
            values[f"fndcs[{port}].battery_current"] = \
                _fit(fndc, "battery_current", net_w / voltage)
        values = {k: v for k, v in values.items() if v is not None}
        try:
            self.sim.set(values)
        except ConfigurationError:
            log.debug("live model: a value did not fit", exc_info=True)


def _fit(dev: Any, name: str, value: float) -> Optional[float]:
    """``value`` rounded to what the field's scale factor can carry (None if it has none)."""
    fv = dev.values.get(name)
    if fv is None:
        return None
    sf = fv.scale_factor or 0
    fdef = codec.block_defs()[dev.did].fields[name]
    low, high = codec._type_limits(fdef.type)
    raw = int(round(value / 10.0 ** sf))
    raw = max(low, min(high, raw))
    return codec.scale(raw, sf)
