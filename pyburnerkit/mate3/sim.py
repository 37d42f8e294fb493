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

The Modbus TCP side is the shared :class:`~pyburnerkit.transports.modbus_sim.ModbusSimServer`:
it runs on its own thread, ``pyburnerkit-sim-mate3-<port>``, with a private asyncio loop;
:meth:`Mate3Sim.close` stops it within its timeout. Fault injection (any thread):
:meth:`disconnect`, :meth:`refuse_connections`, :meth:`delay_responses`, :meth:`send_garbage`,
:meth:`reply_error`, :meth:`silence`, and :attr:`received` come from it; :meth:`set` and
:meth:`swap_ports` change the Mate3's own state.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from typing import Any, Callable, Dict, List, Mapping, Optional, Tuple

from ..errors import ConfigurationError, check_range
from .._core.endpoint import flag, sim_options
from ..transports.modbus_sim import (DEVICE_FAILURE, ILLEGAL_ADDRESS, ILLEGAL_FUNCTION,
                                     ILLEGAL_VALUE, HoldingRegisters, ModbusSimServer)
from . import codec
from .models import Device, Mode

log = logging.getLogger(__name__)

__all__ = ["Mate3Sim", "RegisterSpace", "ILLEGAL_FUNCTION", "ILLEGAL_ADDRESS", "ILLEGAL_VALUE",
           "DEVICE_FAILURE"]


class RegisterSpace(HoldingRegisters):
    """The device model: a SunSpec register image, with writable and write-only registers
    taken from the block tables (read-write fields store writes; write-only fields, i.e.
    passwords and commands, accept them but read back as before; anything else refuses).

    Thread-safe: the server thread reads and writes it; tests and :meth:`Mate3Sim.set` too.

    :raises Exception: the image is not a SunSpec map (no marker, a broken chain).
    """

    def __init__(self, registers: Mapping[int, int], max_registers: int) -> None:
        super().__init__(registers, max_registers, writable=())
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


class Mate3Sim(ModbusSimServer):
    """A simulated Mate3s serving Modbus TCP on a real socket (a
    :class:`~pyburnerkit.transports.modbus_sim.ModbusSimServer`, whose fault injection it has).

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
            space = RegisterSpace(registers, max_registers)
        except Exception as exc:
            raise ConfigurationError(f"the register image is not a SunSpec map: {exc}") from exc
        super().__init__(space, name="mate3", extra="mate3", unit_ids=(0,),
                         single_client=single_client, seed=seed)
        self.space: RegisterSpace = space
        self.live = live
        self.speed = float(speed)
        self.live_tick = float(live_tick)
        self.clock = clock
        self._model = _LiveModel(self) if live else None

    @staticmethod
    def parse_options(options: Mapping[str, str]) -> Dict[str, Any]:
        """The query of a ``sim://mate3?...`` endpoint as constructor arguments:
        ``description`` (or ``system``, the CLI's word), ``dump``, ``live``, ``speed``,
        ``live_tick``, ``single_client``, ``max_registers``, ``seed``. Pure; starts nothing.

        :raises ConfigurationError: an unknown option or a value of the wrong kind.
        """
        kinds: Dict[str, Callable[[str], Any]] = {
            "description": str, "dump": str, "live": flag, "speed": float, "live_tick": float,
            "single_client": flag, "max_registers": int, "seed": int}
        return sim_options(options, kinds, aliases={"system": "description"},
                           what="sim://mate3")

    def start(self, host: str = "127.0.0.1", port: int = 0, timeout: float = 5.0) -> "Mate3Sim":
        """Start serving on ``host:port`` (0 picks a free port) on the simulator's thread.

        :returns: self; its ``port`` attribute then holds the real port.
        :raises BackendUnavailableError: pymodbus is missing (``pyburnerkit[mate3]``).
        :raises OSError: the address could not be bound.
        """
        super().start(host, port, timeout)
        return self

    def __enter__(self) -> "Mate3Sim":
        return self.start() if self._thread is None else self

    def on_serving(self) -> None:
        if self._model is not None:
            self.spawn(self._live())

    # ------------------------------------------------------------------ device state
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
    def commands(self) -> List[Tuple[int, Tuple[int, ...]]]:
        """Writes to write-only registers (commands), in order."""
        return list(self.space.commands)

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

    async def _live(self) -> None:
        model = self._model
        assert model is not None
        while True:
            await asyncio.sleep(self.live_tick)
            model.step(self.live_tick * self.speed)


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
        self.day_seconds: float = start.tm_hour * 3600 + start.tm_min * 60 + start.tm_sec

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


def _fit(dev: Device, name: str, value: float) -> Optional[float]:
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
