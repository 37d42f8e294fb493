"""The blocking Mate3 client and the session that polls the Mate3s over Modbus TCP (pymodbus).

The Mate3s answers; it never pushes. So the session is request/response only: every user call
becomes one *operation* (a full read, a targeted read, a write), run on the I/O thread as a
short series of Modbus requests. Operations start at least ``min_poll_interval`` seconds apart
(the Mate3s' Modbus interface is known to hang when polled hard), over one TCP connection
(the Mate3s serves one Modbus client at a time), optionally closed while idle.

Requests never cross the end of the map and never ask for more than ``max_registers``
registers; a full read coalesces the whole map across block boundaries (13 requests for the
chinezbrun system), and every full read re-checks the block headers it covers, re-walking the
chain when the devices changed.

The Modbus TCP link itself (pymodbus, garbled-reply detection) is the shared
:class:`~pyburnerkit.transports.modbus.ModbusLink`; this module adds only the Mate3's wording.
"""

from __future__ import annotations

import logging
import socket
import time
from collections import deque
from dataclasses import replace
from typing import (Any, Deque, Dict, Iterable, List, Mapping, Optional, Protocol, Sequence,
                    Tuple)

from .._core.client import BaseClient
from .._core.endpoint import Endpoint, parse_endpoint
from .._core.extras import require
from .._core.loop import TimerHandle
from .._core.pending import Pending
from .._core.session import Session
from .._core.timeouts import Deadline, TimeoutArg, resolve_timeout
from ..errors import (ConfigurationError, ConnectionLostError, DeviceError,
                      DeviceTimeoutError, ProtocolError, PyBurnerKitError,
                      WriteNotAllowedError, check_range)
from ..transports.modbus import EXCEPTION_NAMES, ModbusLink, ModbusLinkDown
from ..types import DEFAULT, ConnectionState
from . import codec, limits
from .models import (Device, DeviceMovedError, FieldDef, FieldType, FieldValue, Layout,
                     Mate3System, Mode, SystemUpdated, WritePlan)

log = logging.getLogger(__name__)

DEFAULT_PORT = 502
#: The Mate3's own endpoint form, besides the shared ones: a register dump served in memory.
REPLAY = "replay:"
#: The one name ``sim://`` accepts (``sim://`` alone means it too).
SIM_NAME = "mate3"


def _parse(endpoint: object) -> Endpoint:
    """The endpoint string as an :class:`~pyburnerkit._core.endpoint.Endpoint`: the shared
    forms through the shared parser (no port when none was named), and ``replay:FILE``,
    which is no URL (a Windows or relative path has no ``//``), as scheme ``replay`` with the
    file as ``path``. Pure: touches neither the network nor the file.

    :raises ConfigurationError: naming the string and the accepted forms.
    """
    if isinstance(endpoint, str) and endpoint.strip().startswith(REPLAY):
        path = endpoint.strip()[len(REPLAY):]
        if not path:
            raise ConfigurationError(f"Mate3 endpoint {endpoint!r} names no dump file "
                                     f"(expected replay:FILE)")
        return Endpoint(endpoint.strip(), "replay", path=path)
    try:
        parsed = parse_endpoint(endpoint, scheme="modbus", default_port=None, what="Mate3")
    except ConfigurationError as exc:
        raise ConfigurationError(f"{exc} (the Mate3 also takes replay:FILE)") from None
    if parsed.is_sim and parsed.name not in ("", SIM_NAME):
        raise ConfigurationError(f"Mate3 endpoint {endpoint!r}: the simulator is "
                                 f"sim://{SIM_NAME}, not sim://{parsed.name}")
    return parsed


# ------------------------------------------------------------------------------ links
#: The shared link's error, under the name this module (and its tests) always used.
_LinkDown = ModbusLinkDown


class _Link(Protocol):
    """What the session drives: the Modbus TCP link or a register dump (session thread)."""

    secret: bool

    @property
    def sock(self) -> Optional[socket.socket]: ...

    def open(self, timeout: float) -> None: ...

    def close(self) -> None: ...

    def abort(self) -> None: ...

    def read(self, address: int, count: int, timeout: float) -> List[int]: ...

    def write(self, address: int, values: Sequence[int], timeout: float) -> None: ...


class _ModbusLink(ModbusLink):
    """The shared Modbus TCP link, speaking of "the Mate3" in its messages (session thread)."""

    def __init__(self, host: str, port: int, unit_id: int, wire: Any, family: str,
                 endpoint: str) -> None:
        super().__init__(host, port, unit_id=unit_id, wire=wire, extra="mate3", device=family,
                         endpoint=endpoint, peer="the Mate3",
                         connect_hint="is Modbus/SunSpec enabled on the Mate, and no other "
                                      "Modbus client connected?")


class _ReplayLink:
    """Serves reads (and writes, in memory) from a register image instead of a device."""

    sock: Optional[socket.socket] = None  # nothing to watch: a dump never speaks unasked

    def __init__(self, registers: Mapping[int, int], max_registers: int, family: str,
                 endpoint: str) -> None:
        from .sim import RegisterSpace  # pure: no pymodbus needed
        self.space = RegisterSpace(registers, max_registers)
        self.family, self.endpoint = family, endpoint
        self.secret = False

    def open(self, timeout: float) -> None:
        pass

    def close(self) -> None:
        pass

    def abort(self) -> None:
        pass

    def _error(self, what: str, code: int) -> DeviceError:
        name = EXCEPTION_NAMES[code]
        return DeviceError(f"{what}: the register dump answers Modbus exception {code} ({name})",
                           code=code, detail=name, device=self.family, endpoint=self.endpoint)

    def read(self, address: int, count: int, timeout: float) -> List[int]:
        result = self.space.read(address, count)
        if isinstance(result, int):
            raise self._error(f"read {count} registers at {address}", result)
        return result

    def write(self, address: int, values: Sequence[int], timeout: float) -> None:
        code = self.space.write(address, list(values))
        if code is not None:
            raise self._error(f"write {len(values)} registers at {address}", code)


# ------------------------------------------------------------------------------ session
class Mate3Session(Session):
    """The I/O thread of one :class:`Mate3Client`: operations, pacing, discovery, cache."""

    family = "mate3"

    def __init__(self, *, link: _Link, min_poll_interval: float, request_timeout: float,
                 idle_close: Optional[float], poll_interval: Optional[float],
                 max_registers: int, base: int, **common: Any) -> None:
        super().__init__(**common)
        self.link = link
        self.min_poll_interval = min_poll_interval
        self.request_timeout = request_timeout
        self.idle_close = idle_close
        self.poll_interval = poll_interval
        self.max_registers = max_registers
        self.base = base
        self.layout: Optional[Layout] = None
        self.requests_sent = 0
        self.registers_read = 0
        self.protocol_errors = 0  # garbled replies and unsolicited bytes (each drops the link)
        self.warnings: List[str] = []
        self._queue: Deque[Pending] = deque()
        self._next_start = 0.0
        self._pace_timer: Optional[TimerHandle] = None
        self._idle_timer: Optional[TimerHandle] = None
        self._poll_timer: Optional[TimerHandle] = None
        self._watched: Optional[socket.socket] = None
        self._full_regs: Dict[int, int] = {}  # the registers of the last full read or walk
        self._decoder = codec.SystemDecoder()  # keeps the last read's blocks (I/O thread)

    # ------------------------------------------------------------------ link hooks
    def open_transport(self, deadline: Deadline) -> None:
        left = deadline.remaining()
        self.link.open(min(self.request_timeout, left if left is not None else 1e9))
        # The device has answered only once the SunSpec walk has read its whole map; that
        # also primes the cache (and re-checks the devices after every reconnect).
        try:
            self._discover_and_publish(deadline)
        except _LinkDown as down:
            raise down.error from down.cause
        self._next_start = time.monotonic() + self.min_poll_interval
        self.established()

    def close_transport(self) -> None:
        self._unwatch()
        self.link.close()

    def abort_blocking(self) -> None:
        self.link.abort()

    def on_established(self) -> None:
        self._arm_idle()
        self._schedule_poll()

    def take_unsent(self) -> List[Pending]:
        # Operations still waiting for their turn (pacing) never reached the wire: they wait
        # for the next link instead of failing. Background polls are simply re-armed.
        return [p for p in self._queue if not p.payload.get("poll")]

    def on_link_down(self) -> None:
        for timer in (self._pace_timer, self._idle_timer, self._poll_timer):
            if timer is not None:
                timer.cancel()
        self._pace_timer = self._idle_timer = self._poll_timer = None
        self._queue.clear()
        self._unwatch()

    # ------------------------------------------------------------------ idle link watch
    def _watch(self) -> None:
        sock = self.link.sock
        if sock is None or self._watched is not None:
            return
        self.loop.add_reader(sock, self._idle_readable)
        self._watched = sock

    def _unwatch(self) -> None:
        if self._watched is not None:
            self.loop.remove_reader(self._watched)
            self._watched = None

    def _idle_readable(self) -> None:
        # The Mate3s never speaks unasked: readable while idle means EOF, a reset or garbage.
        sock = self._watched
        self._unwatch()
        error: Optional[OSError]
        try:
            data = sock.recv(4096) if sock is not None else b""
        except (BlockingIOError, InterruptedError):
            self._watch()
            return
        except OSError as exc:
            data, error = b"", exc
        else:
            error = None
        if data:
            self.wire.received(data)
            cause: BaseException = ProtocolError(
                f"{len(data)} unsolicited bytes from the Mate3; the connection is re-opened",
                frames=self.wire.recent(), device=self.family, endpoint=self.endpoint)
            self._count_protocol_error(cause)
        else:
            cause = error or ConnectionResetError("the Mate3 closed the connection")
        if self.idle_close is not None and not data:
            self.link.close()  # we would have closed it soon anyway; reopen on demand
            return
        self.link_failed(cause)

    def _count_protocol_error(self, error: BaseException) -> None:
        self.protocol_errors += 1
        log.warning("mate3 %s: %s", self.endpoint, error)

    def _arm_idle(self) -> None:
        if self._idle_timer is not None:
            self._idle_timer.cancel()
            self._idle_timer = None
        if self.idle_close is not None:
            self._idle_timer = self.loop.call_later(self.idle_close, self._close_idle)
        self._watch()

    def _close_idle(self) -> None:
        self._idle_timer = None
        if not self._queue:
            self._unwatch()
            self.link.close()

    # ------------------------------------------------------------------ operations
    def start_request(self, request: Pending) -> None:
        self._queue.append(request)
        self._pump()

    def _schedule_poll(self) -> None:
        if self.poll_interval is None or self._poll_timer is not None:
            return
        self._poll_timer = self.loop.call_later(self.poll_interval, self._poll_due)

    def _poll_due(self) -> None:
        self._poll_timer = None
        poll = Pending("background poll", {"op": "read_all", "poll": True, "deadline": Deadline(
            max(self.request_timeout * 20, self.poll_interval or 0))})
        poll.add_done_callback(self._poll_done)
        self._queue.append(poll)
        self._pump()

    def _poll_done(self, poll: Pending) -> None:
        if poll.error is not None and not isinstance(poll.error, ConnectionLostError):
            log.warning("mate3 %s: background poll failed: %s", self.endpoint, poll.error)

    def _pump(self) -> None:
        if self._pace_timer is not None:
            return
        while self._queue:
            wait = self._next_start - time.monotonic()
            if wait > 0:
                self._pace_timer = self.loop.call_later(wait, self._paced)
                return
            request = self._queue.popleft()
            if request.done():
                continue  # the caller gave up before its turn
            self._next_start = time.monotonic() + self.min_poll_interval
            self._run_op(request)
            if self.state is not ConnectionState.CONNECTED:
                return
        if self.state is ConnectionState.CONNECTED:
            self._arm_idle()
            self._schedule_poll()

    def _paced(self) -> None:
        self._pace_timer = None
        self._pump()

    def _run_op(self, request: Pending) -> None:
        self._unwatch()
        if self._idle_timer is not None:
            self._idle_timer.cancel()
            self._idle_timer = None
        payload = request.payload
        deadline: Deadline = payload["deadline"]
        try:
            op = payload["op"]
            if op == "read_all":
                result: Any = self._op_read_all(deadline)
            elif op == "read":
                result = self._op_read_fields(payload["paths"], deadline, payload["verify"])
            elif op == "write":
                result = self._op_write(payload["path"], payload["value"], payload["expert"],
                                        deadline, dry_run=payload.get("dry_run", False))
            elif op == "dump":
                result = self._op_dump(deadline)
            elif op == "registers":
                result = self._read(payload["address"], payload["count"], deadline)
            elif op == "write_registers":
                self._op_write_registers(payload["address"], payload["values"],
                                         payload["expert"], deadline)
                result = None
            else:
                raise AssertionError(op)
        except _LinkDown as down:
            if isinstance(down.error, ProtocolError):
                self._count_protocol_error(down.error)
            request.fail(down.error)
            self.link_failed(down.cause)
        except PyBurnerKitError as exc:
            request.fail(exc)
        except Exception as exc:  # a bug: fail this call, keep the I/O thread serving
            log.error("mate3 %s: %s failed unexpectedly", self.endpoint, request.description,
                      exc_info=True)
            request.fail(exc)
        else:
            request.resolve(result)

    # ------------------------------------------------------------------ register access
    def _timeout(self, deadline: Deadline) -> float:
        left = deadline.remaining()
        if left is not None and left <= 0:
            raise DeviceTimeoutError("the call's timeout ran out before the next request",
                                     device=self.family, endpoint=self.endpoint)
        return self.request_timeout if left is None else min(self.request_timeout, left)

    def _read(self, address: int, count: int, deadline: Deadline) -> List[int]:
        self.requests_sent += 1
        self.registers_read += count
        return self.link.read(address, count, self._timeout(deadline))

    def _read_plan(self, plan: Iterable[Tuple[int, int]], deadline: Deadline) -> Dict[int, int]:
        regs: Dict[int, int] = {}
        for address, count in plan:
            values = self._read(address, count, deadline)
            regs.update(zip(range(address, address + len(values)), values))
        return regs

    def _walk(self, deadline: Deadline) -> Tuple[Layout, Dict[int, int]]:
        walker = codec.Walker(self.base, self.max_registers)
        while not walker.done:
            step = walker.next_read()
            assert step is not None
            address, count = step
            try:
                values = self._read(address, count, deadline)
            except DeviceError as exc:
                if address == self.base:
                    raise DeviceError(
                        f"no SunSpec map at {self.base} ({exc}); is SunSpec/Modbus enabled "
                        f"on the Mate?", code=exc.code, detail=exc.detail, device=self.family,
                        endpoint=self.endpoint) from exc
                raise
            walker.feed(address, values)
        return walker.layout(), walker.registers

    def _publish(self, system: Mate3System, paths: Tuple[str, ...] = ()) -> None:
        self.cache.update([("system", system), ("layout", system.layout)], at=system.read_at)
        self.dispatcher.publish(SystemUpdated(system, paths))

    def _discover_and_publish(self, deadline: Deadline) -> Mate3System:
        layout, regs = self._walk(deadline)
        self._full_regs = regs
        return self._decode_and_publish(layout, regs)

    def _decode_and_publish(self, layout: Layout, regs: Mapping[int, int]) -> Mate3System:
        notes: List[str] = []
        # Only the blocks whose registers changed since the last read are decoded again
        # (decoding the whole system was 43% of a full read's time); equal to build_system.
        system = self._decoder.decode(layout, regs, time.time(), notes)
        for note in notes:
            if note not in self.warnings:
                log.warning("mate3 %s: %s", self.endpoint, note)
        self.warnings = notes
        if self.layout is not None and self.layout.signature() != layout.signature():
            log.info("mate3 %s: the block layout changed; devices re-discovered", self.endpoint)
        self.layout = layout
        self._publish(system)
        return system

    def _op_read_all(self, deadline: Deadline) -> Mate3System:
        if self.layout is None:
            return self._discover_and_publish(deadline)
        regs = self._read_plan(codec.full_read_plan(self.layout, self.max_registers), deadline)
        self._full_regs = regs
        layout = self.layout
        if not codec.check_layout(layout, regs):
            # The devices changed. The registers just read usually hold the whole new chain;
            # walk them, and walk the device only when the chain now runs past them.
            try:
                layout = codec.layout_from_registers(regs, self.base)
            except ProtocolError:
                return self._discover_and_publish(deadline)
        return self._decode_and_publish(layout, regs)

    def _op_dump(self, deadline: Deadline) -> Dict[int, int]:
        # One full read (which re-walks when the devices changed) gives the whole map.
        self._op_read_all(deadline)
        layout = self.layout
        assert layout is not None
        return {a: v for a, v in self._full_regs.items()
                if layout.base <= a <= layout.last_address}

    def _resolve(self, system: Mate3System, path: str) -> Tuple[Device, FieldDef]:
        owner, name = codec.split_path(path)
        try:
            dev = system.device(owner)
        except KeyError:
            raise ConfigurationError(f"no device {owner!r} in this system; devices: "
                                     f"{', '.join(p for p, _ in system.blocks())}") from None
        bdef = codec.block_defs().get(dev.did)
        fdef = bdef.fields.get(name) if bdef else None
        if fdef is None or fdef.end > dev.length + 2:
            raise ConfigurationError(f"{owner} ({dev.name}) has no field {name!r}")
        return dev, fdef

    def _header_addresses(self, dev: Device) -> List[int]:
        return [dev.address, dev.address + 1] + ([dev.address + 2] if dev.port is not None
                                                  else [])

    def _same_block(self, dev: Device, regs: Mapping[int, int]) -> bool:
        return (regs.get(dev.address) == dev.did and regs.get(dev.address + 1) == dev.length
                and (dev.port is None or regs.get(dev.address + 2) == dev.port))

    def _op_read_fields(self, paths: Sequence[str], deadline: Deadline,
                        verify: bool = True) -> Dict[str, FieldValue]:
        system = self.cache.value("system")
        if system is None:
            system = self._op_read_all(deadline)
        targets = [(path,) + self._resolve(system, path) for path in paths]
        addresses: List[int] = []
        for path, dev, fdef in targets:
            if not fdef.mode.readable:
                raise ConfigurationError(f"{path} is write-only: the Mate3 cannot read it back")
            if verify:
                addresses += self._header_addresses(dev)
            addresses += codec.field_addresses(dev.did, dev.address, fdef, dev.length)
        regs = self._read_plan(codec.coalesce(addresses, self.max_registers, max_gap=0),
                               deadline)
        if verify and not all(self._same_block(dev, regs) for _, dev, _ in targets):
            # Devices moved between HUB ports: walk again, then answer by path.
            system = self._discover_and_publish(deadline)
            answers: Dict[str, FieldValue] = {}
            for path in paths:
                try:
                    answers[path] = system.get(path)
                except KeyError:
                    raise DeviceMovedError(
                        f"{path} is no longer in the system: the devices changed (now: "
                        f"{', '.join(p for p, _ in system.devices())}); the system was read "
                        f"again", device=self.family, endpoint=self.endpoint) from None
            return answers
        fresh = codec.update_values(system, regs, paths, time.time())
        self._publish(fresh, tuple(paths))
        return {path: fresh.get(path) for path in paths}

    def _op_write(self, path: str, value: Any, expert: bool, deadline: Deadline,
                  dry_run: bool = False) -> Any:
        system = self.cache.value("system")
        plan, encoded, regs = self._prepare_write(system, path, value, expert, deadline)
        if dry_run:
            return plan
        fdef = self._resolve(system, path)[1]
        address = plan.address
        self.requests_sent += 1
        self.link.secret = plan.secret
        try:
            self.link.write(address, encoded, self._timeout(deadline))
        finally:
            self.link.secret = False
        if fdef.mode is Mode.W:
            return None  # a command or password: the Mate3 cannot show it back
        back = self._read(address, fdef.size, deadline)
        if back != encoded:
            raise DeviceError(
                f"wrote {path}={value!r} (registers {encoded}) but the Mate3 shows {back}; "
                f"it did not take the value", code=None, detail="read-back mismatch",
                device=self.family, endpoint=self.endpoint)
        regs.update({address + i: v for i, v in enumerate(back)})
        fresh = codec.update_values(system, regs, [path], time.time())
        self._publish(fresh, (path,))
        return fresh.get(path)

    def _prepare_write(self, system: Mate3System, path: str, value: Any, expert: bool,
                       deadline: Deadline) -> Tuple[WritePlan, List[int], Dict[int, int]]:
        """Read what the check needs (the block header, the scale factor, the register a
        clear command is computed from, the Mate3's nominal voltage), check the value against
        the field's limit and encode it. Sends no write."""
        dev, fdef = self._resolve(system, path)
        if not fdef.mode.writable:
            raise ConfigurationError(f"{path} is read-only")
        limit = limits.limit_for(dev.did, fdef.name)
        wanted = self._header_addresses(dev)
        sf_addr = None
        if fdef.scale_factor_field:
            sf_def = codec.scale_factor_def(dev.did, fdef, dev.length)
            if sf_def is None:  # never read a register past the block as a scale factor
                raise ConfigurationError(
                    f"refusing to write {path}: its scale factor {fdef.scale_factor_field} "
                    f"lies beyond this {dev.did} block (length {dev.length}), so the value "
                    f"cannot be scaled")
            sf_addr = dev.address + sf_def.start - 1
            wanted.append(sf_addr)
        companion_addr = _companion_address(dev, limit)
        if companion_addr is not None:
            wanted.append(companion_addr)
        mate3, nominal_addr = _nominal_source(system, limit)
        if mate3 is not None and nominal_addr is not None:
            wanted += self._header_addresses(mate3) + [nominal_addr]
        regs = self._read_plan(codec.coalesce(wanted, self.max_registers, max_gap=0), deadline)
        for block in (dev, mate3 if nominal_addr is not None else None):
            if block is not None and not self._same_block(block, regs):
                raise self._moved(path, block, regs)
        sf = codec.scale_factor_of(dev.did, dev.address, fdef, regs) if sf_addr else None
        nominal = None
        if nominal_addr is not None:
            sv_def = codec.block_defs()[64110].fields["system_voltage"]
            raw, ok = codec.decode_raw(sv_def, [regs[nominal_addr]])
            nominal = limits.nominal_of(raw, ok)
        companion_raw = regs.get(companion_addr) if companion_addr is not None else None
        encoded = checked_registers(path, fdef, value, sf, nominal=nominal,
                                    companion_raw=companion_raw, expert=expert)
        secret = codec.is_secret(fdef.name)
        plan = WritePlan(
            path=path, value=codec.HIDDEN if secret else value,
            address=dev.address + fdef.start - 1,
            registers=() if secret else tuple(encoded), units=fdef.units, scale_factor=sf,
            limit=limits.describe(fdef, nominal=nominal, companion_raw=companion_raw),
            mode=fdef.mode, secret=secret)
        return plan, encoded, regs

    def _op_write_registers(self, address: int, words: List[int], expert: bool,
                            deadline: Deadline) -> None:
        """Check a raw write against every field it covers with fresh registers (as
        :meth:`_prepare_write` checks a field write), then send it as one FC16 request."""
        system = self.cache.value("system")
        if system is None:
            system = self._op_read_all(deadline)
        targets = raw_targets(system, address, words)
        secret = _covers_secret(targets)
        for path, dev, fdef, offset in targets:
            chunk = words[offset:offset + fdef.size]
            value = raw_value(path, fdef, chunk, self._fresh_scale_factor(path, dev, fdef,
                                                                          deadline))
            try:
                # Reads the header, scale factor and limit inputs again, checks, encodes.
                _, encoded, _ = self._prepare_write(system, path, value, expert, deadline)
            except ConfigurationError as exc:
                raise _raw_refused(address, words, secret, exc) from None
            # A scale factor that changed between the two reads shows up here.
            _check_round_trip(path, fdef, address + offset, chunk, value, encoded)
        self.requests_sent += 1
        self.link.secret = secret
        try:
            self.link.write(address, words, self._timeout(deadline))
        finally:
            self.link.secret = False

    def _fresh_scale_factor(self, path: str, dev: Device, fdef: FieldDef,
                            deadline: Deadline) -> Optional[int]:
        """The scale factor of ``fdef`` as the device has it now (None if it has none), to
        decode raw registers with; the block header is read along and checked."""
        sf_def = codec.scale_factor_def(dev.did, fdef, dev.length) \
            if fdef.scale_factor_field else None
        if sf_def is None:
            return None
        sf_addr = dev.address + sf_def.start - 1
        wanted = self._header_addresses(dev) + [sf_addr]
        regs = self._read_plan(codec.coalesce(wanted, self.max_registers, max_gap=0), deadline)
        if not self._same_block(dev, regs):
            raise self._moved(path, dev, regs)
        return codec.scale_factor_of(dev.did, dev.address, fdef, regs)

    def _moved(self, path: str, dev: Device, regs: Mapping[int, int]) -> DeviceMovedError:
        found_port = regs.get(dev.address + 2) if dev.port is not None else None
        return DeviceMovedError(
            f"refusing to write {path}: the block at {dev.address} is now DID "
            f"{regs.get(dev.address)} (length {regs.get(dev.address + 1)}"
            + (f", HUB port {found_port}" if dev.port is not None else "")
            + f"), not DID {dev.did} (length {dev.length}"
            + (f", HUB port {dev.port}" if dev.port is not None else "")
            + "); nothing was written. Read the system again and retry.",
            device=self.family, endpoint=self.endpoint)


def _cached_scale_factor(dev: Device, fdef: FieldDef) -> Optional[int]:
    if not fdef.scale_factor_field:
        return None
    sf_value = dev.values.get(fdef.scale_factor_field)
    if sf_value is None or not sf_value.implemented:
        return None
    return codec.to_int16(int(sf_value.raw) & 0xFFFF)  # SFs are signed


def _cached_nominal(system: Mate3System) -> Optional[int]:
    fv = system.mate3.values.get("system_voltage") if system.mate3 is not None else None
    return limits.nominal_of(fv.raw, fv.implemented) if fv is not None else None


def _cached_register(dev: Device, name: Optional[str]) -> Optional[int]:
    fv = dev.values.get(name) if name else None
    return fv.registers[0] if fv is not None and fv.registers else None


def checked_registers(path: str, fdef: FieldDef, value: Any, sf: Optional[int], *,
                      nominal: Optional[int], companion_raw: Optional[int],
                      expert: bool) -> List[int]:
    """The one check every write goes through (library, CLI, dry run): the field's documented
    limit (:mod:`.limits`), then the type, enum option, length and scale-factor resolution
    (:func:`.codec.encode_field`). Returns the registers to send.

    :raises ConfigurationError: naming the path, the value, the limit and the unit.
    """
    limits.check_value(path, fdef, value, nominal=nominal, companion_raw=companion_raw,
                       expert=expert)
    return codec.encode_field(fdef, value, sf)


def _companion_address(dev: Device, limit: limits.Limit) -> Optional[int]:
    """Where the register a "write complement" command is computed from sits (None if the
    field is not such a command or the register lies beyond the block)."""
    if limit.kind != "complement" or limit.companion is None:
        return None
    comp = codec.block_defs()[dev.did].fields.get(limit.companion)
    if comp is None or comp.end > dev.length + 2:
        return None
    return dev.address + comp.start - 1


def _nominal_source(system: Mate3System, limit: limits.Limit
                    ) -> Tuple[Optional[Device], Optional[int]]:
    """The Mate3 block and the address of its ``system_voltage``, for battery set points."""
    if limit.kind != "battery" or system.mate3 is None:
        return None, None
    mate3 = system.mate3
    sv_def = codec.block_defs()[64110].fields["system_voltage"]
    if mate3.did != 64110 or sv_def.end > mate3.length + 2:
        return None, None
    return mate3, mate3.address + sv_def.start - 1


# ------------------------------------------------------------------------------ raw writes
def raw_targets(system: Mate3System, address: int,
                words: Sequence[int]) -> List[Tuple[str, Device, FieldDef, int]]:
    """The known fields a raw write of ``words`` at ``address`` covers, as ``(path, device,
    field, index of its first register in words)``. Pure; no I/O.

    Registers of no known field (an unknown block, padding inside a block) cover nothing.

    :raises ConfigurationError: the write covers part of a field, a field that is not
        writable (block headers, measurements, scale factors), the SunSpec marker or end
        block, or a field of a block the system does not expose by a path.
    """
    last = address + len(words) - 1
    span = f"register {address}" if last == address else f"registers {address}..{last}"
    layout = system.layout
    for first, what in ((layout.base, "the SunSpec marker"),
                        (layout.end_address, "the SunSpec end block")):
        if first <= last and address <= first + 1:
            raise ConfigurationError(
                f"refusing to write {span}: {first}..{first + 1} is {what}, which is "
                f"read-only (writing it would hide the map from every client)")
    paths = {dev.address: path for path, dev in system.blocks()}
    devices = {dev.address: dev for _, dev in system.blocks()}
    found: List[Tuple[str, Device, FieldDef, int]] = []
    for block in layout.blocks:
        if block.address > last or block.address + block.length + 1 < address:
            continue
        bdef = codec.block_defs().get(block.did)
        if bdef is None:
            continue  # an unknown block: no documented field, no documented limit
        for fdef in codec.fields_in_block(bdef, block.length):
            start = block.address + fdef.start - 1
            end = start + fdef.size - 1
            if end < address or start > last:
                continue
            owner = paths.get(block.address)
            path = f"{owner}.{fdef.name}" if owner else f"{fdef.name} of DID {block.did} at " \
                                                         f"{block.address}"
            if start < address or end > last:
                raise ConfigurationError(
                    f"refusing to write {span}: they cover only part of {path} (registers "
                    f"{start}..{end}, {fdef.size} registers); a raw write must cover a field "
                    f"whole so that its value can be checked against the field's limit")
            if not fdef.mode.writable:
                where = f"register {start}" if start == end else f"registers {start}..{end}"
                raise ConfigurationError(
                    f"refusing to write {span}: {where} is {path}, which is read-only")
            dev = devices.get(block.address)
            if owner is None or dev is None or dev.did != block.did:
                raise ConfigurationError(
                    f"refusing to write {span}: they cover {path}, a block this system keeps "
                    f"aside (a repeated HUB port), so its limit cannot be checked")
            found.append((path, dev, fdef, start - address))
    return found


_SIGNED = frozenset({FieldType.INT16, FieldType.ENUM_INT16})


def raw_value(path: str, fdef: FieldDef, words: Sequence[int], sf: Optional[int]) -> Any:
    """The value :meth:`Mate3Client.write` would take to send ``words`` to ``fdef``: the
    inverse of :func:`.codec.encode_field`, without its "not implemented" sentinels (a
    sentinel is then refused by the same check a field write makes). Pure.

    :raises ConfigurationError: a scaled field whose scale factor is unknown or unusable.
    """
    ftype = fdef.type
    if ftype is FieldType.STRING:
        return b"".join(w.to_bytes(2, "big") for w in words).rstrip(b"\0").decode("latin-1")
    if ftype is FieldType.IPV4:
        return f"{words[0] >> 8}.{words[0] & 0xFF}.{words[1] >> 8}.{words[1] & 0xFF}"
    if fdef.size == 2:
        raw = (words[0] << 16) | words[1]
    else:
        raw = codec.to_int16(words[0]) if ftype in _SIGNED else words[0]
    if ftype.is_enum or ftype.is_bitfield or not fdef.scale_factor_field:
        return raw
    if sf is None or not -codec.SF_LIMIT <= sf <= codec.SF_LIMIT:
        raise ConfigurationError(
            f"refusing to write {path} as raw registers: its scale factor "
            f"{fdef.scale_factor_field} ({sf!r}) is not usable (the limit is "
            f"{-codec.SF_LIMIT}..{codec.SF_LIMIT}), so the value cannot be checked")
    return codec.scale(raw, sf)


def _shown_words(fdef: FieldDef, words: Sequence[int]) -> str:
    return codec.HIDDEN if codec.is_secret(fdef.name) else str(list(words))


def _covers_secret(targets: Sequence[Tuple[str, Device, FieldDef, int]]) -> bool:
    return any(codec.is_secret(fdef.name) for _, _, fdef, _ in targets)


def _raw_refused(address: int, words: Sequence[int], secret: bool,
                 exc: ConfigurationError) -> ConfigurationError:
    """The field check's refusal, saying which raw registers it was about (never showing
    registers that hold a password)."""
    shown = codec.HIDDEN if secret else str(list(words))
    return ConfigurationError(f"refusing to write registers {shown} at {address}: {exc}")


def _check_round_trip(path: str, fdef: FieldDef, address: int, words: Sequence[int],
                      value: Any, encoded: Sequence[int]) -> None:
    # Registers that decode to an allowed value but are not what write() would send for it
    # (bytes after a string's end, a scale factor that changed under us) are refused too.
    if list(encoded) != list(words):
        shown = codec.HIDDEN if codec.is_secret(fdef.name) else f"{value!r}"
        raise ConfigurationError(
            f"refusing to write registers {_shown_words(fdef, words)} at {address} to {path}: "
            f"they decode to {shown}, which write() would send as "
            f"{_shown_words(fdef, encoded)}")


def check_raw_write(system: Mate3System, address: int, words: Sequence[int],
                    expert: bool = False) -> None:
    """Check a raw write against the cached system with no I/O: every known field it covers
    must be covered whole, writable, and hold a value within the field's documented limit
    (with the cached scale factor, nominal voltage and clear-command register).

    :raises ConfigurationError: naming the field path, the value, the limit and the unit.
    """
    targets = raw_targets(system, address, words)
    secret = _covers_secret(targets)
    for path, dev, fdef, offset in targets:
        chunk = words[offset:offset + fdef.size]
        sf = _cached_scale_factor(dev, fdef)
        value = raw_value(path, fdef, chunk, sf)
        limit = limits.limit_for(dev.did, fdef.name)
        try:
            encoded = checked_registers(path, fdef, value, sf, nominal=_cached_nominal(system),
                                        companion_raw=_cached_register(dev, limit.companion),
                                        expert=expert)
        except ConfigurationError as exc:
            raise _raw_refused(address, words, secret, exc) from None
        _check_round_trip(path, fdef, address + offset, chunk, value, encoded)


# ------------------------------------------------------------------------------ facade
class Mate3Client(BaseClient[Mate3Session]):
    """A connection to one OutBack Mate3/Mate3s (or its simulator, or a register dump).

    :param endpoint: where the Mate3 is, parsed by the shared
        :func:`~pyburnerkit._core.endpoint.parse_endpoint`: ``"192.168.0.150"`` (port 502),
        ``"host:1502"``, ``"[fe80::1]:502"``, ``"modbus://host[:port]"``, or
        ``"sim://mate3"`` (also ``"sim://"``): a simulated Mate3s on 127.0.0.1, started on
        :meth:`connect` and closed with this client; its query holds the simulator's
        options (``"sim://mate3?description=cc:3,fndc:5&live=1&seed=7"``, see
        :meth:`Mate3Sim.parse_options <pyburnerkit.mate3.Mate3Sim.parse_options>`).
        One form is the Mate3's own: ``"replay:FILE.json"`` serves reads (and in-memory
        writes) from a register dump, with no network; it is recognised before the shared
        parser, because a file path is no URL.
    :param port: the Modbus TCP port when ``endpoint`` names none (default 502), for code
        written as ``Mate3Client(host, port=...)``; the documented form is ``"host:port"``.
        A port that contradicts the endpoint's, or one given with ``sim://``/``replay:``, is
        refused.
    :param allow_writes: allow :meth:`write` at all (set points and commands can damage
        equipment); without it every write raises
        :class:`~pyburnerkit.errors.WriteNotAllowedError`. Even then, every value is checked against
        its field's documented limit before it is sent (:mod:`pyburnerkit.mate3.limits`;
        :meth:`plan_write` is the dry run).
    :param min_poll_interval: seconds between the starts of two operations (default 1 s, to
        protect the Mate3s' Modbus interface; 0 for dumps and simulators).
    :param request_timeout: seconds to wait for each Modbus reply (capped by the call's
        timeout); silence past it is :class:`~pyburnerkit.errors.DeviceTimeoutError` and the link is
        re-opened.
    :param idle_close: close the TCP connection after this many idle seconds and reopen it on
        the next call (the Mate3s serves one Modbus client at a time); None keeps it open.
    :param poll_interval: also read the whole system in the background every so many seconds
        (delivered as :class:`SystemUpdated` events); None (default) reads only when asked.
    :param unit_id: the Modbus unit id (the Mate3s answers 0, what mate3 always sent).
    :param max_registers: the most registers per request (at most 100).
    :param sim_options: more :class:`~pyburnerkit.mate3.sim.Mate3Sim` arguments for a
        ``sim://`` endpoint (any Python value, e.g. ``registers`` or ``clock``); they win over
        the endpoint's query.
    :param options: the keywords every client takes: ``timeout`` (default 15 s),
        ``connect_timeout``, ``reconnect``, ``retry_first``, ``on_event``, ``trace``...
        (see :class:`~pyburnerkit._core.client.BaseClient`).
    :raises ConfigurationError: a bad endpoint or option (nothing is opened).
    :raises BackendUnavailableError: pymodbus is missing for a network or ``sim://``
        endpoint (``pip install "pyburnerkit[mate3]"``).

    The constructor does no I/O. Every method is thread-safe; operations are serialised on
    the I/O thread ``pyburnerkit-mate3-<endpoint>-io``; callbacks run on ``...-events``.
    :meth:`connect` walks the SunSpec block chain and reads the whole system once.
    """

    family = "mate3"
    default_timeout = 15.0

    def __init__(self, endpoint: str, *, port: Optional[int] = None,
                 allow_writes: bool = False, min_poll_interval: Optional[float] = None,
                 request_timeout: float = 3.0, idle_close: Optional[float] = None,
                 poll_interval: Optional[float] = None, unit_id: int = 0,
                 max_registers: int = codec.MAX_REGISTERS, base: int = codec.SUNSPEC_BASE,
                 sim_options: Optional[Mapping[str, Any]] = None, **options: Any) -> None:
        target = _parse(endpoint)
        network = target.scheme == "modbus"
        if port is not None:
            check_range("port", port, 1, 65535, integer=True)
            if not network:
                raise ConfigurationError(f"port={port!r} applies to a Mate3 on the network, "
                                         f"not to {target.text!r}")
            if target.port is not None and target.port != port:
                raise ConfigurationError(f"the Mate3 endpoint {target.text!r} names port "
                                         f"{target.port} but port={port!r} was given")
        if sim_options is not None and not target.is_sim:
            raise ConfigurationError(f"sim_options apply to a sim:// endpoint, not to "
                                     f"{target.text!r}")
        self.kind = "tcp" if network else target.scheme
        #: the host, or for ``replay:`` the dump file
        self.host = target.path if self.kind == "replay" else target.host
        self.port = (target.port or port or DEFAULT_PORT) if network else 0
        self.allow_writes = bool(allow_writes)
        if min_poll_interval is None:
            min_poll_interval = 1.0 if network else 0.0
        self.min_poll_interval = float(check_range("min_poll_interval", min_poll_interval,
                                                   0, 3600, "s"))
        self.request_timeout = float(check_range("request_timeout", request_timeout, 0.01,
                                                 600, "s"))
        self.idle_close = None if idle_close is None else float(
            check_range("idle_close", idle_close, 0.01, 86400, "s"))
        self.poll_interval = None if poll_interval is None else float(
            check_range("poll_interval", poll_interval, 0.01, 86400, "s"))
        self.unit_id: int = check_range("unit_id", unit_id, 0, 255, integer=True)
        self.max_registers: int = check_range("max_registers", max_registers, 1,
                                              codec.MAX_REGISTERS, integer=True)
        self.base: int = check_range("base", base, 0, 0xFFFF, integer=True)
        self._sim_options: Dict[str, Any] = {}
        self._replay: Optional[Dict[int, int]] = None
        if self.kind == "replay":
            self._replay = codec.load_dump(self.host)
            name = f"replay-{self.host.rsplit('/', 1)[-1]}"
        else:
            require("pymodbus", "mate3")
            if target.is_sim:
                from .sim import Mate3Sim
                self._sim_options = {**Mate3Sim.parse_options(target.options),
                                     **(sim_options or {})}
                name = "sim"
            else:
                name = replace(target, port=self.port).netloc  # "[v6]:port" for IPv6
        super().__init__(name, **options)

    @classmethod
    def from_dump(cls, path: str, **options: Any) -> "Mate3Client":
        """A client that serves reads (and in-memory writes) from a register dump file
        (the same as ``Mate3Client(f"replay:{path}")``)."""
        return cls(f"{REPLAY}{path}", **options)

    def _make_session(self, **common: Any) -> Mate3Session:
        link: _Link
        if self.kind == "replay":
            assert self._replay is not None
            link = _ReplayLink(self._replay, self.max_registers, self.family, self.endpoint)
        else:
            host, port = self.host, self.port
            if self.kind == "sim":
                from .sim import Mate3Sim
                options = self._sim_options
                sim: Mate3Sim = self._own_simulator(lambda: Mate3Sim(**options).start())
                host, port = sim.host, sim.port
            link = _ModbusLink(host, port, self.unit_id, common["wire"], self.family,
                               self.endpoint)
        return Mate3Session(link=link, min_poll_interval=self.min_poll_interval,
                            request_timeout=self.request_timeout, idle_close=self.idle_close,
                            poll_interval=self.poll_interval, max_registers=self.max_registers,
                            base=self.base, **common)

    # ------------------------------------------------------------------ cached state
    @property
    def system(self) -> Optional[Mate3System]:
        """The latest reading of the whole system (never blocks; None before connect)."""
        system: Optional[Mate3System] = self._cache.value("system")
        return system

    @property
    def layout(self) -> Optional[Layout]:
        """Where each SunSpec block sits, from the last walk (never blocks; None before
        connect)."""
        layout: Optional[Layout] = self._cache.value("layout")
        return layout

    @property
    def stale(self) -> bool:
        """True while :attr:`system` is not live (never read, or the link is down)."""
        return self._cache.is_stale("system")

    @property
    def stats(self) -> Dict[str, int]:
        """Modbus requests sent, registers read, and protocol errors (garbled replies,
        unsolicited bytes; each one re-opened the link) since the client was made."""
        session = self._session
        if session is None:
            return {"requests": 0, "registers": 0, "protocol_errors": 0}
        return {"requests": session.requests_sent, "registers": session.registers_read,
                "protocol_errors": session.protocol_errors}

    @property
    def warnings(self) -> List[str]:
        """What the last discovery found odd (unknown blocks, devices without config...)."""
        session = self._session
        return [] if session is None else list(session.warnings)

    # ------------------------------------------------------------------ operations
    def _op(self, description: str, payload: Dict[str, Any], timeout: TimeoutArg,
            is_write: bool = False) -> Any:
        # The session paces its requests against the same deadline the caller waits on.
        payload["deadline"] = Deadline(resolve_timeout(timeout, self.timeout))
        return self._call(Pending(description, payload, is_write=is_write), timeout)

    def read_all(self, timeout: TimeoutArg = DEFAULT) -> Mate3System:
        """Read the whole system (every block, coalesced into requests of at most 100
        registers) and block until done; devices are re-discovered if they changed.

        :raises DeviceError: the Mate3 answered a Modbus exception.
        :raises DeviceTimeoutError: no answer in time.
        """
        system: Mate3System = self._op("read all", {"op": "read_all"}, timeout)
        return system

    def read(self, *paths: str, verify: bool = True,
             timeout: TimeoutArg = DEFAULT) -> Dict[str, FieldValue]:
        """Read only the named fields: their registers and scale factors, plus (with
        ``verify``) their blocks' headers, so that a device that moved to another HUB port is
        noticed (the system is then re-discovered and the paths answered from it).

        :param paths: e.g. ``"charge_controllers[3].battery_voltage"``, ``"mate3.system_name"``.
        :param verify: also read each block's DID, length and HUB port (3 registers, usually
            in the same request as the scale factors).
        :returns: path -> :class:`FieldValue`.
        :raises ConfigurationError: an unknown path or a write-only field.
        """
        if not paths:
            raise ConfigurationError("name at least one field path to read")
        for path in paths:
            codec.split_path(path)
        values: Dict[str, FieldValue] = self._op(
            f"read {', '.join(paths)}",
            {"op": "read", "paths": list(paths), "verify": bool(verify)}, timeout)
        return values

    def read_value(self, path: str, timeout: TimeoutArg = DEFAULT) -> Any:
        """The scaled value of one field, read from the device now."""
        return self.read(path, timeout=timeout)[path].value

    def write(self, path: str, value: Any, timeout: TimeoutArg = DEFAULT, *,
              expert: bool = False) -> Optional[FieldValue]:
        """Write one field and, for read-write fields, read it back; block until the Mate3
        acknowledged the write (and answered the read-back).

        The value is checked before anything is sent: the field's documented limit (a range,
        a battery voltage window scaled to the nominal voltage the Mate3 reports, an
        enumeration, a text length; see :mod:`pyburnerkit.mate3.limits`), then its type and
        resolution. The block header, the scale factor and whatever the limit depends on are
        read just before the write and the check is made again with them; the write is
        refused with :class:`DeviceMovedError` if the block at the cached address no longer
        has the same DID and HUB port. If this call times out, the device may still apply the
        write later; it is never retried automatically.

        :param expert: also write fields that have no documented limit (only their register
            range is then checked). It never loosens a documented limit.
        :returns: the read-back :class:`FieldValue`, or None for write-only command fields.
        :raises WriteNotAllowedError: the client was not opened with ``allow_writes=True``.
        :raises ConfigurationError: a bad path, a read-only field, or a value outside the
            field's limit (the message names the value, the limit and the unit), or a field
            without a documented limit and no ``expert``.
        :raises DeviceError: the Mate3 refused the write or shows another value afterwards.
        :raises DeviceTimeoutError: no answer in time (the write may still be applied).
        :raises ProtocolError: a garbled reply (the write may have been applied).
        """
        if not self.allow_writes:
            shown = codec.HIDDEN if codec.is_secret(path) else repr(value)
            raise WriteNotAllowedError(
                f"refusing to write {path}={shown}: the client was not opened with "
                f"allow_writes=True (set points and commands can damage equipment)",
                device=self.family, endpoint=self.endpoint)
        self.validate_write(path, value, expert=expert)
        back: Optional[FieldValue] = self._op(
            f"write {path}", {"op": "write", "path": path, "value": value,
                              "expert": bool(expert)}, timeout, is_write=True)
        return back

    def plan_write(self, path: str, value: Any, timeout: TimeoutArg = DEFAULT, *,
                   expert: bool = False) -> WritePlan:
        """A dry run of :meth:`write`: read what the check needs (block header, scale factor,
        nominal voltage), check the value exactly as :meth:`write` would, and return the
        registers it would send, without sending them. Needs no ``allow_writes``: nothing on
        the device changes. Blocks until those reads are answered.

        :raises ConfigurationError: as :meth:`write`, before anything would be sent.
        :raises DeviceMovedError: the block at the cached address is another device now.
        """
        self.validate_write(path, value, expert=expert)
        plan: WritePlan = self._op(f"plan write {path}",
                                   {"op": "write", "path": path, "value": value,
                                    "expert": bool(expert), "dry_run": True}, timeout)
        return plan

    def validate_write(self, path: str, value: Any, *, expert: bool = False) -> None:
        """Check a write without sending or reading anything: the path, the field's mode, its
        documented limit and the value's type, enum option and resolution, with the cached
        scale factor, nominal voltage and clear-command register. Never blocks. The session
        checks again with fresh registers just before a write.

        :raises ConfigurationError: naming the value, the limit and the unit.
        """
        owner, name = codec.split_path(path)
        system = self.system
        if system is None:
            return  # not connected yet: the session checks again
        try:
            dev = system.device(owner)
        except KeyError:
            raise ConfigurationError(f"no device {owner!r} in this system") from None
        bdef = codec.block_defs().get(dev.did)
        fdef = bdef.fields.get(name) if bdef else None
        if fdef is None or fdef.end > dev.length + 2:
            raise ConfigurationError(f"{owner} ({dev.name}) has no field {name!r}")
        if not fdef.mode.writable:
            raise ConfigurationError(f"{path} is read-only")
        limit = limits.limit_for(dev.did, name)
        checked_registers(path, fdef, value, _cached_scale_factor(dev, fdef),
                          nominal=_cached_nominal(system),
                          companion_raw=_cached_register(dev, limit.companion),
                          expert=expert)

    def field_def(self, path: str) -> FieldDef:
        """The definition of the field at ``path`` in the current system."""
        owner, name = codec.split_path(path)
        system = self.system
        if system is None:
            raise ConfigurationError("not connected: no system to resolve the path in")
        try:
            return codec.block_defs()[system.device(owner).did].fields[name]
        except KeyError:
            raise ConfigurationError(f"no field {path!r} in this system") from None

    def read_registers(self, address: int, count: int = 1,
                       timeout: TimeoutArg = DEFAULT) -> List[int]:
        """Read ``count`` holding registers from ``address`` (PDU address, e.g. 40000) with
        one FC3 request, for experts, and block until the Mate3 answered. Nothing is decoded
        and the cached system is not changed.

        :raises ConfigurationError: an address outside 0..65535 or a count outside
            1..``max_registers`` (before anything is sent).
        :raises DeviceError: the Mate3 answered a Modbus exception (e.g. 2, illegal address).
        :raises DeviceTimeoutError: no answer in time.
        """
        check_range("address", address, 0, 0xFFFF, "register", integer=True)
        check_range("count", count, 1, self.max_registers, "registers", integer=True)
        if address + count - 1 > 0xFFFF:
            raise ConfigurationError(f"registers {address}..{address + count - 1} run past the "
                                     f"last Modbus address 65535")
        regs: List[int] = self._op(f"read {count} registers at {address}",
                                   {"op": "registers", "address": address, "count": count},
                                   timeout)
        return regs

    def write_registers(self, address: int, values: Sequence[int],
                        timeout: TimeoutArg = DEFAULT, *, expert: bool = False) -> None:
        """Write raw register values from ``address`` with one FC16 request, for experts,
        and block until the Mate3 acknowledged it. Never retried; the cached system is not
        changed (call :meth:`read_all` to see the effect).

        A raw write is checked exactly as :meth:`write` checks a field, for every known field
        it covers: the registers are decoded the way the field is encoded (its scale factor,
        sign, text, enumeration) and the value must be within the field's documented limit,
        with the block header, scale factor, nominal voltage and clear-command register read
        fresh just before sending (:class:`DeviceMovedError` if the block moved). A write
        covering only part of a multi-register field, or any register of a field
        :meth:`write` refuses (read-only fields, block headers, scale factors, the SunSpec
        marker and end block), is refused. Registers that belong to no known field (an
        unknown block, padding inside a block) have no documented limit: only their 0..65535
        range is checked, and the device decides. Register values of password fields never
        appear in messages or the wire log.

        :param expert: as for :meth:`write`: also write known fields that have no documented
            limit. It never loosens a documented limit.
        :raises WriteNotAllowedError: the client was not opened with ``allow_writes=True``.
        :raises ConfigurationError: a bad address, no values or too many, a value outside
            0..65535, or a covered field refused as above; the message names the field path,
            the value, the limit and the unit (before anything is sent).
        :raises DeviceMovedError: a covered block is another device now (nothing was sent).
        :raises DeviceError: the Mate3 refused the write (Modbus exception).
        :raises DeviceTimeoutError: no answer in time (the write may still be applied).
        """
        words = list(values)
        if not self.allow_writes:
            raise WriteNotAllowedError(
                f"refusing to write {len(words)} raw register(s) at {address}: the client was "
                f"not opened with allow_writes=True (set points and commands can damage "
                f"equipment)", device=self.family, endpoint=self.endpoint)
        check_range("address", address, 0, 0xFFFF, "register", integer=True)
        check_range("number of registers", len(words), 1, min(123, self.max_registers),
                    "registers", integer=True)
        if address + len(words) - 1 > 0xFFFF:
            raise ConfigurationError(f"registers {address}..{address + len(words) - 1} run "
                                     f"past the last Modbus address 65535")
        words = [check_range(f"register {address + offset}", word, 0, 0xFFFF, integer=True)
                 for offset, word in enumerate(words)]
        system = self.system
        if system is not None:  # refuse at once; the session checks again with fresh values
            check_raw_write(system, address, words, expert=bool(expert))
        self._op(f"write {len(words)} registers at {address}",
                 {"op": "write_registers", "address": address, "values": words,
                  "expert": bool(expert)}, timeout, is_write=True)

    def read_dump(self, timeout: TimeoutArg = DEFAULT) -> Dict[int, int]:
        """Read every register of the map, marker to end marker, and block until done (for a
        dump file or a bug report; it may include passwords as the device shows them). The
        result is what ``replay:FILE`` and ``Mate3Sim(dump=FILE)`` serve once saved with
        ``pyburnerkit.mate3.codec.write_dump``.

        :raises DeviceError: the Mate3 answered a Modbus exception.
        :raises DeviceTimeoutError: no answer in time.
        """
        regs: Dict[int, int] = self._op("read dump", {"op": "dump"}, timeout)
        return regs
