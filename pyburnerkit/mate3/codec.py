"""Pure encode/decode of the Mate3s SunSpec register map: no I/O, no threads, no logging.

* register tables (package data) loaded into :class:`~.models.BlockDef` definitions;
* one field: registers <-> raw/scaled values for every field type, with the "not implemented"
  sentinels;
* one block: the device-reported length decides which fields exist;
* discovery: :class:`Walker`, a state machine that says which registers to read next and
  never asks for a register beyond the next block header it is sure exists;
* the system: blocks paired into devices per HUB port;
* read planning: address ranges coalesced into requests of at most 100 registers;
* dump files (``{"<pdu address>": value}``, the format mate3 uses).

Both the client and the simulator use this module.
"""

from __future__ import annotations

import csv
import functools
import ipaddress
import json
import os
import re
from typing import (Any, Callable, Dict, Iterable, List, Mapping, MutableMapping, Optional,
                    Sequence, Tuple)

from ..errors import ConfigurationError, ProtocolError, check_range
# The Modbus/TCP reply check lives with the shared link that uses it; re-exported here, where
# it used to be (pure: importing it imports no pymodbus).
from ..transports.modbus import reply_problem  # noqa: F401
from .models import (BlockDef, BlockInfo, Device, DeviceKind, EnumValue, FieldDef, FieldType,
                     FieldValue, Flags, Layout, Mate3System, Mode, empty_groups, group_of)

SUNSPEC_BASE = 40000
SUNS_MARKER = (0x5375, 0x6E53)
COMMON_DID = 1
END_DID = 0xFFFF
#: the most registers one request may ask for (mate3's dump read 100 at a time on a Mate3s)
MAX_REGISTERS = 100
#: the most blocks discovery accepts before it calls the chain broken
MAX_BLOCKS = 256
#: scale factors outside this range are refused (as mate3 does)
SF_LIMIT = 10

DATA_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data")

#: real-time DID -> (config DID, device kind, config kind)
PAIRS: Dict[int, Tuple[int, DeviceKind, DeviceKind]] = {
    64111: (64112, DeviceKind.CHARGE_CONTROLLER, DeviceKind.CHARGE_CONTROLLER_CONFIG),
    64113: (64114, DeviceKind.FX_INVERTER, DeviceKind.FX_INVERTER_CONFIG),
    64115: (64116, DeviceKind.SPLIT_PHASE_RADIAN_INVERTER, DeviceKind.RADIAN_INVERTER_CONFIG),
    64117: (64116, DeviceKind.SINGLE_PHASE_RADIAN_INVERTER, DeviceKind.RADIAN_INVERTER_CONFIG),
    64118: (64119, DeviceKind.FNDC, DeviceKind.FNDC_CONFIG),
}
CONFIG_DIDS = {cfg for cfg, _, _ in PAIRS.values()}
OTHER_KINDS = {1: DeviceKind.COMMON, 101: DeviceKind.SUNSPEC_INVERTER,
               102: DeviceKind.SUNSPEC_INVERTER, 103: DeviceKind.SUNSPEC_INVERTER,
               64255: DeviceKind.OPTICS, 64110: DeviceKind.MATE3,
               64120: DeviceKind.MATE3_CONFIG, 64112: DeviceKind.CHARGE_CONTROLLER_CONFIG,
               64114: DeviceKind.FX_INVERTER_CONFIG, 64116: DeviceKind.RADIAN_INVERTER_CONFIG,
               64119: DeviceKind.FNDC_CONFIG}

_SENTINEL = {FieldType.UINT16: 0xFFFF, FieldType.INT16: 0x8000, FieldType.UINT32: 0xFFFFFFFF,
             FieldType.BITFIELD16: 0xFFFF, FieldType.BITFIELD32: 0xFFFFFFFF}


# ------------------------------------------------------------------------------ tables
def _read_csv(name: str) -> List[Dict[str, str]]:
    with open(os.path.join(DATA_DIR, name), newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


@functools.lru_cache(maxsize=1)
def block_defs() -> Mapping[int, BlockDef]:
    """Every block definition, keyed by DID (from the package data tables).

    The mate3 pseudo-block "SunSpecHeader" is left out: pyburnerkit reads the marker and the
    common model (DID 1) separately.
    """
    options: Dict[Tuple[int, str], Dict[int, str]] = {}
    flags: Dict[Tuple[int, str], Dict[int, str]] = {}
    for row in _read_csv("mate3_enum_bitfield_values.csv"):
        key = (int(row["device_id"]), row["field_name"])
        if row["kind"] == "enum":
            options.setdefault(key, {})[int(row["enum_value"])] = row["label"]
        else:
            flags.setdefault(key, {})[int(row["bit_mask"], 0)] = row["label"]
    rows = _read_csv("mate3_block_fields.csv") + _read_csv("mate3_block_fields_device.csv")
    names: Dict[int, str] = {}
    fields: Dict[int, Dict[str, FieldDef]] = {}
    for row in rows:
        did = int(row["device_id"])
        if row["block_name"] == "SunSpecHeader":
            continue
        names.setdefault(did, row["block_name"])
        key = (did, row["field_name"])
        fields.setdefault(did, {})[row["field_name"]] = FieldDef(
            block_did=did, name=row["field_name"], start=int(row["start"]),
            size=int(row["size"]), type=FieldType(row["type"]), mode=Mode(row["mode"]),
            units=row["units"], scale_factor_field=row["scale_factor_field"] or None,
            description=row["description"], options=options.get(key, {}),
            flags=flags.get(key, {}))
    return {did: BlockDef(did, names[did], fields[did]) for did in fields}


# ------------------------------------------------------------------------------ one field
def to_int16(reg: int) -> int:
    return reg - 0x10000 if reg & 0x8000 else reg


_ENUMS = frozenset({FieldType.ENUM_UINT16, FieldType.ENUM_INT16})
_FLAGS = frozenset({FieldType.BITFIELD16, FieldType.BITFIELD32})
_NUMBERS = frozenset({FieldType.UINT16, FieldType.INT16, FieldType.UINT32})
_ONE_UNSIGNED = frozenset({FieldType.UINT16, FieldType.BITFIELD16, FieldType.ENUM_UINT16})
_ONE_SIGNED = frozenset({FieldType.INT16, FieldType.ENUM_INT16})


def _check_registers(fdef: FieldDef, regs: Sequence[int]) -> None:
    if len(regs) != fdef.size:
        raise ProtocolError(f"{fdef.name}: expected {fdef.size} registers, got {len(regs)}")
    for reg in regs:
        if type(reg) is int and 0 <= reg <= 0xFFFF:
            continue  # the common case, checked cheaply
        if isinstance(reg, bool) or not isinstance(reg, int) or not 0 <= reg <= 0xFFFF:
            raise ProtocolError(f"{fdef.name}: register value {reg!r} is not 0..65535")


def decode_raw(fdef: FieldDef, regs: Sequence[int]) -> Tuple[Any, bool]:
    """Registers to ``(raw, implemented)``. Enums and bitfields come back as plain ints.

    :raises ProtocolError: wrong register count or a value that is not a 16-bit register.
    """
    _check_registers(fdef, regs)
    ftype = fdef.type
    if ftype is FieldType.STRING:
        data = b"".join(r.to_bytes(2, "big") for r in regs)
        if not any(data):
            return None, False
        return data.rstrip(b"\0").decode("latin-1"), True
    if ftype in _ONE_UNSIGNED:
        raw = regs[0]
    elif ftype in _ONE_SIGNED:
        raw = to_int16(regs[0])
    else:  # uint32, bitfield32, ipv4: high word first
        raw = (regs[0] << 16) | regs[1]
    if ftype is FieldType.IPV4:
        if raw == 0:
            return None, False
        return str(ipaddress.IPv4Address(raw)), True
    if ftype in _ENUMS:
        if raw in fdef.options:
            return raw, True
        sentinel = 0xFFFF if ftype is FieldType.ENUM_UINT16 else -0x8000
        return (None, False) if raw == sentinel else (raw, True)
    if raw == _SENTINEL.get(ftype, -1) or (ftype is FieldType.INT16 and raw == -0x8000):
        return None, False
    return raw, True


def scale(raw: int, sf: int) -> float:
    """raw x 10^sf; an int for sf >= 0, a float rounded to -sf decimals otherwise."""
    if sf >= 0:
        return raw * int(10 ** sf)  # stays an int: a whole-number field shows no ".0"
    return round(raw * 10.0 ** sf, -sf)


def decode_field(fdef: FieldDef, regs: Sequence[int], sf: Optional[int] = None,
                 sf_ok: bool = True) -> Tuple[Any, Any, bool, Optional[str]]:
    """Registers to ``(raw, value, implemented, note)``.

    ``sf`` is the raw value of the field's scale factor (None when it has none, or when the
    scale factor is not implemented: then ``sf_ok`` is False and the value stays None).

    :raises ProtocolError: wrong register count or a value that is not a 16-bit register.
    """
    raw, implemented = decode_raw(fdef, regs)
    if not implemented:
        return None, None, False, None
    ftype = fdef.type
    if ftype in _ENUMS:
        enum_value = EnumValue(raw, fdef.options.get(raw))
        return enum_value, enum_value, True, None
    if ftype in _FLAGS:
        flag_value = Flags(raw, fdef.flags)
        return flag_value, flag_value, True, None
    if fdef.scale_factor_field and ftype in _NUMBERS:
        if not sf_ok or sf is None or not -SF_LIMIT <= sf <= SF_LIMIT:
            return raw, None, True, (
                f"scale factor {fdef.scale_factor_field} is not usable ({sf!r}); "
                f"the limit is {-SF_LIMIT}..{SF_LIMIT}")
        return raw, scale(raw, sf), True, None
    return raw, raw, True, None


def _type_limits(ftype: FieldType) -> Tuple[int, int]:
    return {FieldType.UINT16: (0, 0xFFFE), FieldType.INT16: (-0x7FFF, 0x7FFF),
            FieldType.UINT32: (0, 0xFFFFFFFE), FieldType.BITFIELD16: (0, 0xFFFE),
            FieldType.BITFIELD32: (0, 0xFFFFFFFE)}[ftype]


#: what error messages and command output show instead of a password
HIDDEN = "<hidden>"


def is_secret(name: str) -> bool:
    """True for the password fields of 64110 (write-only strings): their values never go
    into logs, messages or command output."""
    return name.endswith("password")


def encode_field(fdef: FieldDef, value: Any, sf: Optional[int] = None) -> List[int]:
    """A user value to the field's registers (the exact inverse of :func:`decode_field`).

    Numbers are given scaled (``absorb_volts=28.8``) and divided by 10^sf; enums take an
    :class:`EnumValue`, a known int or a label; bitfields an int; strings ASCII text of at most
    2 x size characters; IPv4 fields a dotted quad.

    :raises ConfigurationError: wrong type, unknown enum value, out of range, too long, or more
        resolution than the scale factor keeps; the message names the value, limit and unit.
    """
    ftype = fdef.type
    name = fdef.name
    if ftype is FieldType.STRING:
        shown = HIDDEN if is_secret(name) else repr(value)
        if not isinstance(value, str):
            raise ConfigurationError(f"{name} takes text, got {shown}")
        try:
            data = value.encode("ascii")
        except UnicodeEncodeError:
            raise ConfigurationError(f"{name} takes ASCII text only, got {shown}") from None
        limit = 2 * fdef.size
        if len(data) > limit or "\0" in value:
            raise ConfigurationError(
                f"{name}={shown} is {len(data)} characters: the limit is {limit} characters"
                if len(data) > limit else f"{name} must not contain NUL characters")
        data = data.ljust(limit, b"\0")
        return [int.from_bytes(data[i:i + 2], "big") for i in range(0, limit, 2)]
    if ftype is FieldType.IPV4:
        try:
            number = int(ipaddress.IPv4Address(str(value)))
        except ValueError:
            raise ConfigurationError(
                f"{name} takes a dotted IPv4 address, got {value!r}") from None
        return [number >> 16, number & 0xFFFF]
    if ftype.is_enum:
        raw = _enum_raw(fdef, value)
        return [raw & 0xFFFF]
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigurationError(f"{name} takes a number, got {value!r}")
    low, high = _type_limits(ftype)
    if ftype.is_bitfield:
        raw = check_range(name, value, low, high, integer=True)
    elif fdef.scale_factor_field:
        if sf is None or not -SF_LIMIT <= sf <= SF_LIMIT:
            raise ConfigurationError(
                f"{name}: its scale factor {fdef.scale_factor_field} ({sf!r}) is not usable; "
                f"the limit is {-SF_LIMIT}..{SF_LIMIT}")
        step = 10 ** sf if sf >= 0 else 10.0 ** sf
        check_range(name, value, scale(low, sf), scale(high, sf), fdef.units, step=step)
        raw = int(round(value * 10 ** -sf)) if sf < 0 else int(round(value / 10 ** sf))
    else:
        raw = check_range(name, value, low, high, fdef.units, integer=True)
    if ftype in (FieldType.UINT32, FieldType.BITFIELD32):
        return [(raw >> 16) & 0xFFFF, raw & 0xFFFF]
    return [raw & 0xFFFF]


def _enum_raw(fdef: FieldDef, value: Any) -> int:
    known = ", ".join(f"{k}={v!r}" for k, v in sorted(fdef.options.items()))
    if isinstance(value, str):
        wanted = value.strip().lower()
        for raw, label in fdef.options.items():
            if label.lower() == wanted:
                return raw
        try:
            value = int(wanted)
        except ValueError:
            raise ConfigurationError(
                f"{fdef.name}={value!r} is not one of its values: {known}") from None
    if isinstance(value, bool) or not isinstance(value, int) or int(value) not in fdef.options:
        raise ConfigurationError(f"{fdef.name}={value!r} is not one of its values: {known}")
    return int(value)


def parse_value(fdef: FieldDef, text: str) -> Any:
    """Text from a command line to a typed value for :func:`encode_field` (never evaluated).

    :raises ConfigurationError: text that does not fit the field's type.
    """
    text = text.strip()
    if fdef.type is FieldType.STRING:
        if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
            text = text[1:-1]
        return text
    if fdef.type is FieldType.IPV4 or fdef.type.is_enum:
        return text
    try:
        return int(text, 0) if fdef.type.is_bitfield else int(text)
    except ValueError:
        pass
    try:
        number = float(text)
    except ValueError:
        raise ConfigurationError(f"{fdef.name} takes a number, got {text!r}") from None
    if number != number or number in (float("inf"), float("-inf")):
        raise ConfigurationError(f"{fdef.name} takes a finite number, got {text!r}")
    return number


# ------------------------------------------------------------------------------ one block
def fields_in_block(bdef: BlockDef, length: int) -> List[FieldDef]:
    """The fields that lie inside a block of the device-reported ``length``."""
    return [f for f in bdef.fields.values() if f.end <= length + 2]


@functools.lru_cache(maxsize=512)
def _block_plan(did: int, length: int) -> Tuple[Tuple[FieldDef, int, Optional[FieldDef]], ...]:
    """The readable fields of a block of ``length``: (field, offset, its scale factor field or
    None when the scale factor is missing or lies beyond the block)."""
    bdef = block_defs()[did]
    plan = []
    for fdef in fields_in_block(bdef, length):
        if not fdef.mode.readable:
            continue
        sf_def = bdef.fields.get(fdef.scale_factor_field) if fdef.scale_factor_field else None
        if sf_def is not None and sf_def.end > length + 2:
            sf_def = None
        plan.append((fdef, fdef.start - 1, sf_def))
    return tuple(plan)


def decode_block(did: int, address: int, regs: Mapping[int, int], read_at: float,
                 *, length: Optional[int] = None,
                 only: Optional[Iterable[str]] = None) -> Dict[str, FieldValue]:
    """Decode the readable fields of the block at ``address`` from ``regs`` (address -> value).

    ``length`` is the device-reported L (read from ``regs`` if not given); fields beyond it are
    left out. ``only`` restricts decoding to those field names (their scale factors are read
    from ``regs`` too). A field whose registers are missing from ``regs`` is left out.

    :raises ProtocolError: a register value that is not 0..65535, or no length given and none
        in ``regs``.
    """
    if did not in block_defs():
        return {}
    if length is None:
        if address + 1 not in regs:
            raise ProtocolError(f"block {did} at {address}: its length register "
                                f"{address + 1} is missing")
        length = regs[address + 1]
    wanted = set(only) if only is not None else None
    out: Dict[str, FieldValue] = {}
    for fdef, offset, sf_def in _block_plan(did, length):
        if wanted is not None and fdef.name not in wanted:
            continue
        addr = address + offset
        try:
            field_regs = [regs[a] for a in range(addr, addr + fdef.size)]
        except KeyError:
            continue
        sf = None
        sf_ok = True
        if fdef.scale_factor_field:
            sf_addr = address + sf_def.start - 1 if sf_def is not None else None
            if sf_def is None or sf_addr is None or sf_addr not in regs:
                sf_ok = False
            else:
                sf, sf_ok = decode_raw(sf_def, [regs[sf_addr]])
                if sf_def.type is FieldType.UINT16 and sf is not None:
                    sf = to_int16(sf)  # a few tables type an SF as uint16; SFs are signed
        raw, value, implemented, note = decode_field(fdef, field_regs, sf, sf_ok)
        # A full read builds ~1100 of these: fill the frozen dataclass directly (3x faster
        # than its __init__, which goes through object.__setattr__ once per field).
        fv = _new_object(FieldValue)
        fv.__dict__.update(
            name=fdef.name, value=value, raw=raw, units=fdef.units,
            scale_factor=sf if fdef.scale_factor_field else None,
            implemented=implemented, address=addr, size=fdef.size, mode=fdef.mode,
            read_at=read_at, registers=tuple(field_regs), note=note)
        out[fdef.name] = fv
    return out


_new_object = object.__new__


def scale_factor_of(did: int, address: int, fdef: FieldDef,
                    regs: Mapping[int, int]) -> Optional[int]:
    """The raw scale factor of ``fdef`` from ``regs`` (None when it has none or it is unset)."""
    if not fdef.scale_factor_field:
        return None
    sf_def = block_defs()[did].fields[fdef.scale_factor_field]
    sf, ok = decode_raw(sf_def, [regs[address + sf_def.start - 1]])
    if not ok:
        return None
    return to_int16(sf) if sf_def.type is FieldType.UINT16 else sf


# ------------------------------------------------------------------------------ discovery
class Walker:
    """Discovery as a state machine: ask :meth:`next_read`, read, :meth:`feed`, repeat.

    It walks from the SunSpec marker by the length each block reports, skips blocks it does not
    know by that length, stops at the end marker, and never asks for a register beyond the
    next block header it knows to exist (after every block comes another header or the end
    marker, two registers). Reads cross block boundaries freely and are at most
    ``max_registers`` long. Every register read stays in :attr:`registers`.
    """

    def __init__(self, base: int = SUNSPEC_BASE, max_registers: int = MAX_REGISTERS) -> None:
        self.base = base
        self.max_registers = max_registers
        self.registers: Dict[int, int] = {}
        self.blocks: List[BlockInfo] = []
        self.end_address: Optional[int] = None
        self._next_header = base + 2  # the common block's DID follows the 2-register marker
        self._safe_end = base + 3      # marker + first header: the least a SunSpec map has
        self._pos = base
        self._checked_marker = False

    @property
    def done(self) -> bool:
        return self.end_address is not None

    def next_read(self) -> Optional[Tuple[int, int]]:
        """``(address, count)`` to read next, or None when the walk is complete."""
        if self.done:
            return None
        count = min(self.max_registers, self._safe_end - self._pos + 1)
        return self._pos, count

    def feed(self, address: int, values: Sequence[int]) -> None:
        """Hand over the registers read at ``address``.

        :raises ProtocolError: no SunSpec marker, or a block chain that makes no sense.
        """
        if address != self._pos:
            raise ProtocolError(f"discovery expected registers at {self._pos}, got {address}")
        if not values:
            raise ProtocolError(f"the device returned no registers at {address}")
        for offset, value in enumerate(values):
            self.registers[address + offset] = value
        self._pos = address + len(values)
        if not self._checked_marker and self.base + 1 in self.registers:
            marker = (self.registers[self.base], self.registers[self.base + 1])
            if marker != SUNS_MARKER:
                raise ProtocolError(
                    f"no SunSpec marker at {self.base}: read 0x{marker[0]:04x} 0x{marker[1]:04x}"
                    " (is SunSpec/Modbus enabled on the Mate?)")
            self._checked_marker = True
        regs = self.registers
        while self._next_header in regs and self._next_header + 1 in regs:
            addr = self._next_header
            did, length = regs[addr], regs[addr + 1]
            if did == END_DID:
                self.end_address = addr
                return
            if len(self.blocks) >= MAX_BLOCKS:
                raise ProtocolError(f"more than {MAX_BLOCKS} blocks: the chain is broken")
            if addr + length + 3 > 0xFFFF:
                raise ProtocolError(
                    f"block {did} at {addr} claims length {length}, beyond the register space")
            self.blocks.append(BlockInfo(did, addr, length, None))
            self._next_header = addr + length + 2
            self._safe_end = self._next_header + 1
        self._fill_ports()

    def _fill_ports(self) -> None:
        for index, block in enumerate(self.blocks):
            if block.port is None and _has_port(block) and block.address + 2 in self.registers:
                port = self.registers[block.address + 2]
                self.blocks[index] = BlockInfo(block.did, block.address, block.length, port)

    def layout(self) -> Layout:
        if self.end_address is None:
            raise ProtocolError("discovery did not reach the end marker")
        self._fill_ports()
        return Layout(self.base, tuple(self.blocks), self.end_address)


def _has_port(block: BlockInfo) -> bool:
    bdef = block_defs().get(block.did)
    return bool(bdef and bdef.has_port and block.length >= 1)


def layout_from_registers(regs: Mapping[int, int], base: int = SUNSPEC_BASE) -> Layout:
    """Walk a complete register image (a dump, or a full read) without I/O.

    :raises ProtocolError: no marker, a missing register, or a broken chain.
    """
    walker = Walker(base, max_registers=0xFFFF)
    while not walker.done:
        step = walker.next_read()
        assert step is not None
        address, count = step
        try:
            values = [regs[a] for a in range(address, address + count)]
        except KeyError as exc:
            raise ProtocolError(f"register {exc.args[0]} is missing from the image") from None
        walker.feed(address, values)
    return walker.layout()


def check_layout(layout: Layout, regs: Mapping[int, int]) -> bool:
    """True when ``regs`` still show every block of ``layout`` (DID, L and port) in place."""
    for block in layout.blocks:
        if regs.get(block.address) != block.did or regs.get(block.address + 1) != block.length:
            return False
        if block.port is not None and regs.get(block.address + 2) != block.port:
            return False
    end = layout.end_address
    return regs.get(end) == END_DID


# ------------------------------------------------------------------------------ system
def _device(kind: DeviceKind, block: BlockInfo, regs: Mapping[int, int],
            read_at: float) -> Device:
    bdef = block_defs().get(block.did)
    name = bdef.name if bdef else f"Unknown{block.did}"
    values = decode_block(block.did, block.address, regs, read_at, length=block.length)
    return Device(kind, block.did, name, block.address, block.length, block.port, values)


def build_system(layout: Layout, regs: Mapping[int, int], read_at: float,
                 warnings: Optional[List[str]] = None) -> Mate3System:
    """Pair the blocks of ``layout`` into devices and decode them from ``regs``.

    Real-time and configuration blocks pair by HUB port (64110 + 64120 for the Mate3s
    itself); 64116 serves both single- and split-phase GS units. A real-time block without a
    configuration block is kept (``config`` None); a configuration block without a real-time
    block, a repeated port, and unknown blocks go to ``others``. ``warnings`` collects why.
    """
    return _assemble(layout, warnings,
                     lambda kind, block: _device(kind, block, regs, read_at), read_at)


def _assemble(layout: Layout, warnings: Optional[List[str]],
              make: Callable[[DeviceKind, BlockInfo], Device], read_at: float) -> Mate3System:
    """:func:`build_system`'s pairing, with ``make(kind, block)`` building each device."""
    notes = warnings if warnings is not None else []
    configs: Dict[Tuple[int, int], BlockInfo] = {}
    others: List[Device] = []
    used = set()
    for block in layout.blocks:
        if block.did in CONFIG_DIDS and block.port is not None:
            key = (block.did, block.port)
            if key in configs:
                notes.append(f"two {block.did} blocks on port {block.port}; keeping the first")
                continue
            configs[key] = block
    mate3 = mate3_config = common = None
    groups = empty_groups()
    for block in layout.blocks:
        if block.did == 64110 and mate3 is None:
            mate3 = block
        elif block.did == 64120 and mate3_config is None:
            mate3_config = block
        elif block.did == COMMON_DID and common is None:
            common = make(DeviceKind.COMMON, block)
        elif block.did in PAIRS and block.port is not None:
            cfg_did, kind, cfg_kind = PAIRS[block.did]
            group_name = group_of(kind)
            assert group_name is not None  # every PAIRS kind is a device group
            group = groups[group_name]
            if block.port in group:
                notes.append(f"two {block.did} blocks on port {block.port}; keeping the first")
                others.append(make(kind, block))
                continue
            cfg_block = configs.get((cfg_did, block.port))
            cfg = None
            if cfg_block is not None:
                used.add((cfg_did, block.port))
                cfg = make(cfg_kind, cfg_block)
            else:
                notes.append(f"{block.did} on port {block.port} has no {cfg_did} block")
            group[block.port] = _with_config(make(kind, block), cfg)
        elif block.did in CONFIG_DIDS:
            continue
        elif block.did in PAIRS:  # too short to carry its HUB port
            notes.append(f"{block.did} at {block.address} is too short (length "
                         f"{block.length}) to carry a HUB port; kept aside")
            others.append(make(PAIRS[block.did][1], block))
        else:
            kind = OTHER_KINDS.get(block.did, DeviceKind.UNKNOWN)
            if kind is DeviceKind.UNKNOWN:
                notes.append(f"unknown block {block.did} at {block.address} "
                             f"(length {block.length}) skipped")
            others.append(make(kind, block))
    for key, block in configs.items():
        if key not in used:
            notes.append(f"{block.did} on port {block.port} has no real-time block")
            others.append(make(OTHER_KINDS[block.did], block))
    mate3_dev = None
    if mate3 is not None:
        cfg = make(DeviceKind.MATE3_CONFIG, mate3_config) \
            if mate3_config is not None else None
        mate3_dev = _with_config(make(DeviceKind.MATE3, mate3), cfg)
    elif mate3_config is not None:
        others.append(make(DeviceKind.MATE3_CONFIG, mate3_config))
    return Mate3System(common=common, mate3=mate3_dev, others=tuple(others), layout=layout,
                       read_at=read_at, **groups)


class SystemDecoder:
    """Decodes a system as :func:`build_system` does, re-decoding only the blocks whose
    registers changed since its previous call.

    A block's values depend on its own registers alone (fields past its length are left out,
    scale factors lie inside it), so a block whose registers are all as last time gets its
    previous values again, stamped with the new ``read_at``. The result equals
    ``build_system(layout, regs, read_at, warnings)`` for the same arguments. Not thread-safe:
    one owner (a session's I/O thread) calls it.
    """

    def __init__(self) -> None:
        #: (did, address, length) -> (the block's registers, its values), from the last call
        self._blocks: Dict[Tuple[int, int, int],
                           Tuple[Tuple[Optional[int], ...], Dict[str, FieldValue]]] = {}
        #: blocks decoded and blocks reused by the last call (benchmarks and tests read them)
        self.decoded = 0
        self.reused = 0

    def reset(self) -> None:
        """Forget the previous read: the next call decodes every block."""
        self._blocks = {}

    def decode(self, layout: Layout, regs: Mapping[int, int], read_at: float,
               warnings: Optional[List[str]] = None) -> Mate3System:
        """The system of ``layout`` from ``regs`` (see :func:`build_system`).

        :raises ProtocolError: a register value that is not 0..65535.
        """
        previous = self._blocks
        current: Dict[Tuple[int, int, int],
                      Tuple[Tuple[Optional[int], ...], Dict[str, FieldValue]]] = {}
        counts = [0, 0]
        get = regs.get

        def make(kind: DeviceKind, block: BlockInfo) -> Device:
            key = (block.did, block.address, block.length)
            snapshot = tuple(map(get, range(block.address, block.address + block.length + 2)))
            known = current.get(key) or previous.get(key)
            if known is not None and known[0] == snapshot:
                values = _restamped(known[1], read_at)
                counts[1] += 1
            else:
                values = decode_block(block.did, block.address, regs, read_at,
                                      length=block.length)
                counts[0] += 1
            current[key] = (snapshot, values)
            bdef = block_defs().get(block.did)
            name = bdef.name if bdef else f"Unknown{block.did}"
            return Device(kind, block.did, name, block.address, block.length, block.port,
                          values)

        system = _assemble(layout, warnings, make, read_at)
        self._blocks = current
        self.decoded, self.reused = counts
        return system


def _restamped(values: Mapping[str, FieldValue], read_at: float) -> Dict[str, FieldValue]:
    """``values`` with ``read_at`` set to the new read (the same objects when it is already)."""
    out: Dict[str, FieldValue] = {}
    for name, old in values.items():
        if old.read_at == read_at:
            out[name] = old
            continue
        fresh = _new_object(FieldValue)  # as decode_block builds them: no per-field __setattr__
        fresh.__dict__.update(old.__dict__)
        fresh.__dict__["read_at"] = read_at
        out[name] = fresh
    return out


def _with_config(dev: Device, cfg: Optional[Device]) -> Device:
    return Device(dev.kind, dev.did, dev.name, dev.address, dev.length, dev.port, dev.values,
                  cfg)


def update_values(system: Mate3System, regs: Mapping[int, int],
                  paths: Iterable[str], read_at: float) -> Mate3System:
    """A copy of ``system`` with the fields at ``paths`` re-decoded from ``regs``."""
    by_owner: Dict[str, List[str]] = {}
    for path in paths:
        owner, _, name = path.rpartition(".")
        by_owner.setdefault(owner, []).append(name)

    def refresh(path: str, dev: Device) -> Device:
        names = by_owner.get(path)
        if not names:
            return dev
        fresh = decode_block(dev.did, dev.address, regs, read_at, length=dev.length, only=names)
        values = dict(dev.values)
        values.update(fresh)
        return Device(dev.kind, dev.did, dev.name, dev.address, dev.length, dev.port, values,
                      dev.config)

    def with_cfg(path: str, dev: Device) -> Device:
        dev = refresh(path, dev)
        if dev.config is not None:
            dev = _with_config(dev, refresh(f"{path}.config", dev.config))
        return dev

    groups = {g: {p: with_cfg(f"{g}[{p}]", d) for p, d in getattr(system, g).items()}
              for g in empty_groups()}
    mate3 = with_cfg("mate3", system.mate3) if system.mate3 is not None else None
    common = refresh("common", system.common) if system.common is not None else None
    others = tuple(refresh(f"others[{i}]", d) for i, d in enumerate(system.others))
    return Mate3System(common=common, mate3=mate3, others=others, layout=system.layout,
                       read_at=system.read_at, **groups)


# ------------------------------------------------------------------------------ paths
_PATH = re.compile(r"^(?P<owner>[a-z_0-9]+(\[\d+\])?(\.config)?)\.(?P<field>[a-z_0-9]+)$")


def split_path(path: str) -> Tuple[str, str]:
    """``"charge_controllers[3].config.absorb_volts"`` -> (owner path, field name).

    :raises ConfigurationError: a path that is not ``device[.config].field``.
    """
    match = _PATH.match(path.strip())
    if match is None:
        raise ConfigurationError(
            f"field path {path!r} is not DEVICE[.config].FIELD, e.g. mate3.system_name or "
            f"charge_controllers[3].config.absorb_volts")
    return match.group("owner"), match.group("field")


# ------------------------------------------------------------------------------ planning
def coalesce(addresses: Iterable[int], max_registers: int = MAX_REGISTERS,
             max_gap: Optional[int] = None) -> List[Tuple[int, int]]:
    """Sorted register addresses to ``(address, count)`` requests of at most ``max_registers``.

    Neighbouring ranges merge while the request stays within the limit (registers in a gap
    are read too, so only pass addresses from one contiguous map); ``max_gap`` caps the gap
    that may be bridged.
    """
    requests: List[Tuple[int, int]] = []
    start: Optional[int] = None
    last = 0
    for addr in sorted(set(addresses)):
        if start is None:
            start = last = addr
            continue
        gap_ok = max_gap is None or addr - last - 1 <= max_gap
        if addr - start + 1 <= max_registers and gap_ok:
            last = addr
            continue
        requests.append((start, last - start + 1))
        start = last = addr
    if start is not None:
        requests.append((start, last - start + 1))
    return requests


def full_read_plan(layout: Layout, max_registers: int = MAX_REGISTERS) -> List[Tuple[int, int]]:
    """Requests covering the whole map, marker to end marker, across block boundaries."""
    return coalesce(range(layout.base, layout.last_address + 1), max_registers)


def field_addresses(did: int, address: int, fdef: FieldDef,
                    length: Optional[int] = None) -> List[int]:
    """The registers a targeted read of ``fdef`` needs: the field and its scale factor
    (left out when it lies beyond a block of the device-reported ``length``)."""
    addrs = list(range(address + fdef.start - 1, address + fdef.end))
    sf_def = scale_factor_def(did, fdef, length)
    if sf_def is not None:
        addrs.append(address + sf_def.start - 1)
    return addrs


def scale_factor_def(did: int, fdef: FieldDef, length: Optional[int] = None
                     ) -> Optional[FieldDef]:
    """The scale factor field of ``fdef``, or None when it has none or the SF lies beyond a
    block of the device-reported ``length`` (then the block carries no usable scale factor)."""
    if not fdef.scale_factor_field:
        return None
    sf_def = block_defs()[did].fields[fdef.scale_factor_field]
    if length is not None and sf_def.end > length + 2:
        return None
    return sf_def


# ------------------------------------------------------------------------------ dump files
def load_dump(path: str) -> Dict[int, int]:
    """A register dump file (JSON ``{"<pdu address>": value}``) to ``{address: value}``.

    :raises ConfigurationError: the file cannot be read or is not such an object.
    """
    try:
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
    except (OSError, ValueError) as exc:
        raise ConfigurationError(f"cannot read the register dump {path!r}: {exc}") from exc
    return parse_dump(data, path)


def parse_dump(data: Any, source: str = "dump") -> Dict[int, int]:
    if not isinstance(data, dict):
        raise ConfigurationError(f"{source}: a register dump is a JSON object address -> value")
    regs: Dict[int, int] = {}
    for key, value in data.items():
        try:
            addr = int(key)
        except (TypeError, ValueError):
            raise ConfigurationError(f"{source}: {key!r} is not a register address") from None
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 0xFFFF \
                or not 0 <= addr <= 0xFFFF:
            raise ConfigurationError(
                f"{source}: register {key} = {value!r}; the limit is 0..65535")
        regs[addr] = value
    return regs


def dump_json(regs: Mapping[int, int]) -> str:
    return json.dumps({str(a): regs[a] for a in sorted(regs)}, indent=2) + "\n"


def bundled_dump() -> Dict[int, int]:
    """The public chinezbrun Mate3s register dump shipped with the package (a real Mate3s with
    two GS single-phase inverters, two charge controllers and a FLEXnet DC)."""
    return {int(row["address"]): int(row["value"]) for row in _read_csv("chinezbrun_modbus.csv")}


def write_dump(path: str, regs: MutableMapping[int, int]) -> None:
    with open(path, "w", encoding="utf-8") as fh:
        fh.write(dump_json(regs))


# ------------------------------------------------------------------------------ images
#: short names for the device kinds a system description may list (real-time + config DIDs)
DEVICE_SHORT_NAMES: Dict[str, Tuple[int, ...]] = {
    "cc": (64111, 64112), "fx": (64113, 64114), "gs-split": (64115, 64116),
    "gs-single": (64117, 64116), "fndc": (64118, 64119),
}
BlockSpec = Tuple[int, Optional[int], Optional[int]]  # (did, port, length or None = template)


def parse_description(text: str) -> List[BlockSpec]:
    """``"cc:3,cc:4,fndc:5,gs-single:1"`` to block specs (each device with its config block).

    ``unknown:DID:LENGTH`` adds a block pyburnerkit does not know.

    :raises ConfigurationError: an unknown kind, a bad port, or a port used twice.
    """
    specs: List[BlockSpec] = []
    ports = set()
    for item in filter(None, (part.strip() for part in text.split(","))):
        kind, _, rest = item.partition(":")
        kind = kind.strip().lower()
        if kind == "unknown":
            did_text, _, len_text = rest.partition(":")
            try:
                specs.append((int(did_text), None, int(len_text or 10)))
            except ValueError:
                raise ConfigurationError(f"expected unknown:DID:LENGTH, got {item!r}") from None
            continue
        if kind not in DEVICE_SHORT_NAMES:
            raise ConfigurationError(
                f"unknown device kind {kind!r} in {item!r}; known: "
                f"{', '.join(sorted(DEVICE_SHORT_NAMES))}, unknown:DID:LENGTH")
        try:
            number = int(rest)
        except ValueError:
            raise ConfigurationError(f"expected KIND:PORT, got {item!r}") from None
        port = check_range(f"HUB port of {item!r}", number, 1, 10, integer=True)
        if port in ports:
            raise ConfigurationError(f"HUB port {port} is used twice in {text!r}")
        ports.add(port)
        for did in DEVICE_SHORT_NAMES[kind]:
            specs.append((did, port, None))
    return specs


def build_image(specs: Sequence[BlockSpec], *, template: Optional[Mapping[int, int]] = None,
                base: int = SUNSPEC_BASE, with_mate3: bool = True) -> Dict[int, int]:
    """A complete register image: marker, common model, 64110 + 64120, ``specs``, end marker.

    Block contents come from the first block of the same DID in ``template`` (the bundled
    dump by default), with the port set; blocks the template lacks get zeros, scale factors
    of -1 and the table's length.
    """
    if template is None:
        template = bundled_dump()
    try:
        tpl_layout = layout_from_registers(template, base)
        tpl_blocks: Dict[int, BlockInfo] = {}
        for block in tpl_layout.blocks:
            tpl_blocks.setdefault(block.did, block)
    except ProtocolError:
        tpl_blocks = {}
    regs: Dict[int, int] = {base: SUNS_MARKER[0], base + 1: SUNS_MARKER[1]}
    addr = base + 2
    head: List[BlockSpec] = [(COMMON_DID, None, None)]
    if with_mate3:
        head += [(64110, None, None), (64120, None, None)]
    for did, port, length in list(head) + list(specs):
        tpl = tpl_blocks.get(did)
        if length is None:
            if tpl is not None:
                length = tpl.length
            elif did in block_defs():
                length = block_defs()[did].defined_length
            else:
                length = 10
        body = [0] * length
        if tpl is not None:
            for i in range(min(length, tpl.length)):
                body[i] = template[tpl.address + 2 + i]
        elif did in block_defs():
            for fdef in fields_in_block(block_defs()[did], length):
                if fdef.name.endswith("scale_factor") and fdef.size == 1:
                    body[fdef.start - 3] = 0xFFFF  # -1
        if port is not None and length >= 1:
            body[0] = port
        regs[addr] = did
        regs[addr + 1] = length
        for i, value in enumerate(body):
            regs[addr + 2 + i] = value
        addr += 2 + length
    regs[addr] = END_DID
    regs[addr + 1] = 0
    return regs
