"""What a Mate3 user sees: register definitions, decoded values, devices and the whole system.

Everything here is immutable. A :class:`Mate3System` is one consistent reading of the whole
OutBack system (the Mate3s and each HUB device with its configuration block); every
:class:`FieldValue` carries its scaled value, raw value, unit, scale factor, implemented flag,
register address and read time.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any, Dict, Iterator, List, Mapping, Optional, Tuple

from ..errors import DeviceError
from .._core.display import Displayable, Row, Section
from ..types import Event, is_secret_key

__all__ = [
    "Mode", "FieldType", "FieldDef", "BlockDef", "EnumValue", "Flags", "FieldValue", "BlockInfo",
    "Layout", "Device", "DeviceKind", "Mate3System", "SystemUpdated", "DeviceMovedError",
    "WritePlan",
]


class Mode(enum.Enum):
    """Access mode of a register field."""

    R = "r"
    W = "w"
    RW = "rw"

    @property
    def readable(self) -> bool:
        return self is not Mode.W

    @property
    def writable(self) -> bool:
        return self is not Mode.R


class FieldType(enum.Enum):
    """Register field types as the OutBack map names them."""

    UINT16 = "uint16"
    INT16 = "int16"
    UINT32 = "uint32"
    STRING = "string"
    ENUM_UINT16 = "enum_uint16"
    ENUM_INT16 = "enum_int16"
    BITFIELD16 = "bitfield16"
    BITFIELD32 = "bitfield32"
    IPV4 = "ipv4_uint32"

    @property
    def is_enum(self) -> bool:
        return self in (FieldType.ENUM_UINT16, FieldType.ENUM_INT16)

    @property
    def is_bitfield(self) -> bool:
        return self in (FieldType.BITFIELD16, FieldType.BITFIELD32)

    @property
    def is_number(self) -> bool:
        return self in (FieldType.UINT16, FieldType.INT16, FieldType.UINT32)


@dataclass(frozen=True)
class FieldDef(Displayable):
    """One field of a block. ``start`` is the 1-based offset in the block (the DID is 1)."""

    block_did: int
    name: str
    start: int
    size: int
    type: FieldType
    mode: Mode
    units: str = ""
    scale_factor_field: Optional[str] = None
    description: str = ""
    options: Mapping[int, str] = field(default_factory=dict, compare=False, repr=False)
    flags: Mapping[int, str] = field(default_factory=dict, compare=False, repr=False)

    @property
    def end(self) -> int:
        """The last offset this field covers."""
        return self.start + self.size - 1


@dataclass(frozen=True)
class BlockDef(Displayable):
    """The definition of one block (model) of the map, keyed by its DID."""

    did: int
    name: str
    fields: Mapping[str, FieldDef] = field(repr=False)

    @property
    def defined_length(self) -> int:
        """The L the table implies (registers after DID and L); devices may report another."""
        return max((f.end for f in self.fields.values()), default=2) - 2

    @property
    def has_port(self) -> bool:
        return "port_number" in self.fields and self.fields["port_number"].start == 3


class EnumValue(int):
    """An enum register value: an int that also knows its label.

    A value the table does not know is kept (``known`` is False, label ``"unknown (N)"``)
    instead of being dropped.
    """

    label: str
    known: bool

    def __new__(cls, value: int, label: Optional[str]) -> "EnumValue":
        obj = super().__new__(cls, value)
        obj.known = label is not None
        obj.label = label if label is not None else f"unknown ({value})"
        return obj

    def __repr__(self) -> str:
        return f"<{self.label}: {int(self)}>"

    def __str__(self) -> str:
        return self.label

    def __reduce__(self) -> Any:
        return (EnumValue, (int(self), self.label if self.known else None))

    def _to_plain(self) -> str:
        """``to_dict()``'s form: the label (``"unknown (N)"`` for a code the table lacks)."""
        return self.label


class Flags(int):
    """A bitfield register value: an int with the labels of the set bits it knows.

    ``unknown_bits`` holds the set bits the table has no label for.
    """

    names: Tuple[str, ...]
    unknown_bits: int

    def __new__(cls, value: int, table: Mapping[int, str]) -> "Flags":
        obj = super().__new__(cls, value)
        names = []
        known = 0
        for mask, label in sorted(table.items()):
            if mask and value & mask == mask:
                names.append(label)
                known |= mask
        obj.names = tuple(names)
        obj.unknown_bits = value & ~known
        return obj

    def __repr__(self) -> str:
        shown = "|".join(self.names) or "-"
        return f"<Flags 0x{int(self):04x} {shown}>"

    def __str__(self) -> str:
        parts = list(self.names)
        if self.unknown_bits:
            parts.append(f"0x{self.unknown_bits:x}")
        return ",".join(parts) if parts else "0"

    def __reduce__(self) -> Any:
        return (_flags_from_names, (int(self), self.names))

    def _to_plain(self) -> List[str]:
        """``to_dict()``'s form: the set bits' labels, then unknown bits as hex text."""
        return list(self.names) + ([f"0x{self.unknown_bits:x}"] if self.unknown_bits else [])


def _flags_from_names(value: int, names: Tuple[str, ...]) -> Flags:
    obj = Flags(value, {})
    obj.names = names
    return obj


@dataclass(frozen=True)
class FieldValue(Displayable):
    """One decoded field.

    ``value`` is the scaled value (raw x 10^scale_factor), an :class:`EnumValue`, a
    :class:`Flags`, a string or a dotted IPv4 address; it is None when the field is not
    implemented (the device sends the type's "not implemented" sentinel) or cannot be scaled.
    ``raw`` is the unscaled value. ``read_at`` is UTC epoch seconds.
    """

    name: str
    value: Any
    raw: Any
    units: str
    scale_factor: Optional[int]
    implemented: bool
    address: int
    size: int
    mode: Mode
    read_at: float
    registers: Tuple[int, ...] = field(default=(), repr=False)
    note: Optional[str] = None

    def __str__(self) -> str:
        if not self.implemented:
            return "not implemented"
        text = str(self.value)
        return f"{text} {self.units}".rstrip() if self.units else text


@dataclass(frozen=True)
class BlockInfo(Displayable):
    """Where one block sits, as the device reports it (``length`` = registers after DID, L)."""

    did: int
    address: int
    length: int
    port: Optional[int] = None

    @property
    def end(self) -> int:
        """The last register address of the block (inclusive)."""
        return self.address + 1 + self.length


@dataclass(frozen=True)
class Layout(Displayable):
    """The block chain found by discovery: the SunSpec marker, blocks, and the end marker."""

    base: int
    blocks: Tuple[BlockInfo, ...]
    end_address: int  # address of the end marker's DID

    @property
    def last_address(self) -> int:
        """The last register of the map (the end marker's L)."""
        return self.end_address + 1

    def signature(self) -> Tuple[Tuple[int, int, int, Optional[int]], ...]:
        return tuple((b.did, b.address, b.length, b.port) for b in self.blocks)

    def _display_sections(self) -> List[Section]:
        rows: List[Row] = [(f"blocks[{i}]", f"DID {b.did} at {b.address}, {b.length} registers"
                            + ("" if b.port is None else f", port {b.port}"), "")
                           for i, b in enumerate(self.blocks)]
        return [("", [("base", str(self.base), ""), *rows,
                      ("end_address", str(self.end_address), "")])]


class DeviceKind(enum.Enum):
    """The kinds of block pyburnerkit groups into devices."""

    COMMON = "common"
    MATE3 = "mate3"
    MATE3_CONFIG = "mate3_config"
    CHARGE_CONTROLLER = "charge_controller"
    CHARGE_CONTROLLER_CONFIG = "charge_controller_config"
    FX_INVERTER = "fx_inverter"
    FX_INVERTER_CONFIG = "fx_inverter_config"
    SPLIT_PHASE_RADIAN_INVERTER = "split_phase_radian_inverter"
    SINGLE_PHASE_RADIAN_INVERTER = "single_phase_radian_inverter"
    RADIAN_INVERTER_CONFIG = "radian_inverter_config"
    FNDC = "fndc"
    FNDC_CONFIG = "fndc_config"
    SUNSPEC_INVERTER = "sunspec_inverter"
    OPTICS = "optics"
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class Device(Displayable):
    """One block's decoded values (and, for a real-time block, its configuration block).

    Field values are reachable as attributes (``cc.battery_voltage.value``) or by name
    (``cc["battery_voltage"]``).
    """

    kind: DeviceKind
    did: int
    name: str
    address: int
    length: int
    port: Optional[int]
    values: Mapping[str, FieldValue] = field(repr=False)
    config: Optional["Device"] = None

    def __getattr__(self, name: str) -> FieldValue:
        values: Optional[Mapping[str, FieldValue]] = self.__dict__.get("values")
        if values is not None and name in values:
            return values[name]
        raise AttributeError(f"{self.__dict__.get('name', 'device')!r} has no field {name!r}")

    def __getitem__(self, name: str) -> FieldValue:
        return self.values[name]

    def __dir__(self) -> Any:
        return list(super().__dir__()) + list(self.values)

    @property
    def info(self) -> BlockInfo:
        return BlockInfo(self.did, self.address, self.length, self.port)

    def _display_title(self) -> str:
        port = "" if self.port is None else f" port {self.port}"
        return f"{self.name} ({self.kind.value}{port})"

    def _display_rows(self) -> List[Row]:
        # str() of an EnumValue/Flags is its label(s); a password register is never shown
        return [(name, "<hidden>" if is_secret_key(name) else
                 (str(fv.value) if fv.implemented and fv.value is not None
                  else "not implemented"), fv.units if fv.implemented else "")
                for name, fv in self.values.items()]

    def _display_sections(self) -> List[Section]:
        sections: List[Section] = [(self._display_title(), self._display_rows())]
        if self.config is not None:
            sections.append((f"config: {self.config._display_title()}",
                             self.config._display_rows()))
        return sections


#: attribute name of each device group in :class:`Mate3System`
GROUPS = ("charge_controllers", "fndcs", "fx_inverters", "single_phase_radian_inverters",
          "split_phase_radian_inverters")


@dataclass(frozen=True)
class Mate3System(Displayable):
    """One reading of the whole system. HUB devices are keyed by their HUB port."""

    common: Optional[Device]
    mate3: Optional[Device]
    charge_controllers: Mapping[int, Device]
    fndcs: Mapping[int, Device]
    fx_inverters: Mapping[int, Device]
    single_phase_radian_inverters: Mapping[int, Device]
    split_phase_radian_inverters: Mapping[int, Device]
    others: Tuple[Device, ...]
    layout: Layout = field(repr=False)
    read_at: float = 0.0

    def devices(self) -> Iterator[Tuple[str, Device]]:
        """``(path, device)`` for the Mate3s and every HUB device, in a stable order."""
        if self.mate3 is not None:
            yield "mate3", self.mate3
        for group in GROUPS:
            for port, dev in sorted(getattr(self, group).items()):
                yield f"{group}[{port}]", dev

    def blocks(self) -> Iterator[Tuple[str, Device]]:
        """Every decoded block with its path, configuration blocks included."""
        for path, dev in self.devices():
            yield path, dev
            if dev.config is not None:
                yield f"{path}.config", dev.config
        if self.common is not None:
            yield "common", self.common
        for index, dev in enumerate(self.others):
            yield f"others[{index}]", dev

    def device(self, path: str) -> Device:
        """The device (or ``.config`` block) at ``path``, e.g. ``charge_controllers[3].config``."""
        for known, dev in self.blocks():
            if known == path:
                return dev
        raise KeyError(path)

    def _display_sections(self) -> List[Section]:
        return [(f"{path}: {dev._display_title()}", dev._display_rows())
                for path, dev in self.blocks()]

    def get(self, path: str) -> FieldValue:
        """The field at ``path``, e.g. ``charge_controllers[3].config.absorb_volts``."""
        owner, _, name = path.rpartition(".")
        try:
            return self.device(owner).values[name]
        except KeyError:
            raise KeyError(path) from None


@dataclass(frozen=True)
class SystemUpdated(Event, Displayable):
    """New values arrived (a full read, a targeted read, or a write's read-back)."""

    system: Mate3System
    paths: Tuple[str, ...] = ()


@dataclass(frozen=True)
class WritePlan(Displayable):
    """What one write sends, as checked just before sending (see ``Mate3Client.plan_write``).

    ``registers`` go to ``address`` in one FC16 request. ``limit`` says which limit the value
    was checked against and where that limit comes from. For a password field ``value`` is
    ``"<hidden>"`` and ``registers`` is empty (``secret`` is True), so a plan never shows it.
    """

    path: str
    value: Any
    address: int
    registers: Tuple[int, ...]
    units: str
    scale_factor: Optional[int]
    limit: str
    mode: Mode
    secret: bool = False


class DeviceMovedError(DeviceError):
    """The block at the cached address is no longer the device meant (DID or HUB port changed).

    Nothing was written. Read the system again (``read_all()``) and retry with the new path.
    """


def group_of(kind: DeviceKind) -> Optional[str]:
    return {DeviceKind.CHARGE_CONTROLLER: "charge_controllers", DeviceKind.FNDC: "fndcs",
            DeviceKind.FX_INVERTER: "fx_inverters",
            DeviceKind.SINGLE_PHASE_RADIAN_INVERTER: "single_phase_radian_inverters",
            DeviceKind.SPLIT_PHASE_RADIAN_INVERTER: "split_phase_radian_inverters"}.get(kind)


def empty_groups() -> Dict[str, Dict[int, Device]]:
    return {g: {} for g in GROUPS}
