"""The names mate3 users import (``mate3`` 0.2-0.4 and its CLI habits), on
:class:`~pyburnerkit.mate3.Mate3Client`.

A script written for mate3 ports by changing its imports to this module::

    from pyburnerkit.mate3.compat import (mate3_connection, Device, ChargeControllerParser,
                                          ChargeControllerConfigurationParser)

    with mate3_connection(host, port) as client:
        for block in client.all_blocks():
            print(block)
        values = client.get_values(ChargeControllerParser.battery_current)
        print(values[ChargeControllerParser.battery_current])   # one value per controller

What stays as mate3 had it: ``mate3_connection(host, port)`` as a context manager, the
``Device`` enumeration, the ``*Parser`` classes whose attributes are ``Field`` objects,
``all_blocks()``, ``get_device_blocks(device)``, ``get_values(*fields)`` (a list per field,
one value per device of that type, in address order) and ``set_value(field, value, port=)``
with **raw** register integers by default (``330`` is 33.0 V when the scale factor is -1),
and mate3 0.4's field names (``temperature_scale_factor``) next to today's
(``temp_scale_factor``).

What does not: writing needs ``mate3_connection(..., allow_writes=True)``, and every value is
checked against the field's documented limit (:mod:`pyburnerkit.mate3.limits`) before
anything is sent; the error names the value, the limit and the unit. ``raw=False`` reads and
writes scaled values instead. Blocks, values and errors come from
:class:`~pyburnerkit.mate3.Mate3Client`, so everything else (pacing, timeouts, the check that a
device did not change HUB port before a write) is as documented there. Each call blocks on the
calling thread until the Mate3 answered.
"""

from __future__ import annotations

import difflib
import enum
from typing import (Any, Dict, Iterator, List, NamedTuple, Optional, Sequence, Tuple, Union)

from .._core.timeouts import TimeoutArg
from ..errors import ConfigurationError, WriteNotAllowedError
from ..types import DEFAULT
from . import codec
from .client import Mate3Client
from .models import Device as _Block
from .models import FieldDef, FieldValue, Mate3System, Mode

__all__ = ["mate3_connection", "Mate3Factory", "Mate3", "Device", "Field", "Mode", "Parser",
           "Block", "PARSERS", "get_parser", "device_named", "field_name", "resolve_path",
           "legacy_blocks", "raw_to_scaled",
           "SunspecCommonModelParser", "SunspecInverterSinglePhaseParser",
           "SunspecInverterSplitPhaseParser", "SunspecInverterThreePhaseParser", "Mate3Parser",
           "ChargeControllerParser", "ChargeControllerConfigurationParser", "FxInverterParser",
           "FxInverterConfigurationParser", "SplitPhaseRadianInverterParser",
           "RadianInverterConfigurationParser", "SinglePhaseRadianInverterParser",
           "FlexnetDcParser", "FlexnetDcConfigurationParser", "OutbackSystemControlParser",
           "OpticsreStatisticsParser"]


class Device(enum.Enum):
    """mate3's device types by SunSpec/OutBack DID (``mate3.base_structures.Device``)."""

    sunspec_header = 21365
    mate3 = 64110
    charge_controller = 64111
    charge_controller_configuration = 64112
    split_phase_radian_inverter = 64115
    radian_inverter_configuration = 64116
    single_phase_radian_inverter = 64117
    fx_inverter = 64113
    fx_inverter_configuration = 64114
    flexnet_dc_configuration = 64119
    flexnet_dc = 64118
    outback_system_control = 64120
    sunspec_common_model = 1
    sunspec_inverter_single_phase = 101
    sunspec_inverter_split_phase = 102
    sunspec_inverter_three_phase = 103
    opticsre_statistics = 64255
    end_of_sun_spec = 65535


#: other spellings of a device users write: mate3 0.5/0.6's attribute names (plural groups,
#: singular accessors, ``.config``), pyburnerkit's kinds and the simulator's short names
_DEVICE_ALIASES: Dict[str, Device] = {
    "mate3s": Device.mate3, "mate3.config": Device.outback_system_control,
    "mate3_config": Device.outback_system_control,
    "charge_controllers": Device.charge_controller, "cc": Device.charge_controller,
    "charge_controller_config": Device.charge_controller_configuration,
    "fx_inverters": Device.fx_inverter, "fx": Device.fx_inverter,
    "fx_inverter_config": Device.fx_inverter_configuration,
    "single_phase_radian_inverters": Device.single_phase_radian_inverter,
    "gs_single": Device.single_phase_radian_inverter,
    "split_phase_radian_inverters": Device.split_phase_radian_inverter,
    "gs_split": Device.split_phase_radian_inverter,
    "radian_inverter_config": Device.radian_inverter_configuration,
    "fndc": Device.flexnet_dc, "fndcs": Device.flexnet_dc, "flexnetdc": Device.flexnet_dc,
    "fndc_config": Device.flexnet_dc_configuration, "common": Device.sunspec_common_model,
}
#: the configuration block of each real-time device (``charge_controllers.config``)
_CONFIG_OF = {Device.mate3: Device.outback_system_control,
              Device.charge_controller: Device.charge_controller_configuration,
              Device.fx_inverter: Device.fx_inverter_configuration,
              Device.single_phase_radian_inverter: Device.radian_inverter_configuration,
              Device.split_phase_radian_inverter: Device.radian_inverter_configuration,
              Device.flexnet_dc: Device.flexnet_dc_configuration}
#: mate3 0.4 field names that are spelled otherwise in OutBack's newer map (same register);
#: "temperature_*" -> "temp_*" is handled as a rule
_OLD_FIELD_NAMES = {
    "sunspec_did": "did", "sunspec_length": "length", "serialnumber": "serial_number",
    "deviceaddress": "device_address", "ac_currenta": "ac_current_a",
    "ac_currentb": "ac_current_b", "ac_currentc": "ac_current_c",
    "ac_voltageab": "ac_voltage_ab", "ac_voltagebc": "ac_voltage_bc",
    "ac_voltageca": "ac_voltage_ca", "ac_voltagean": "ac_voltage_an",
    "ac_voltagebn": "ac_voltage_bn", "ac_voltagecn": "ac_voltage_cn",
    "lifetime_kamp_hours": "lifetime_k_amp_hours", "lifetime_kah_removed":
    "lifetime_k_ah_removed", "refloat_volts": "re_float_volts", "rebulk_volts": "re_bulk_volts",
    "grid_zero_dod_volts": "grid_zero_do_d_volts",
    "grid_zero_dod_max_offset_ac_amps": "grid_zero_do_d_max_offset_ac_amps",
}


def device_named(name: Union[str, Device]) -> Device:
    """The :class:`Device` a name means: mate3 0.4's (``charge_controller``,
    ``radian_inverter_configuration``), mate3 0.6's (``charge_controllers``,
    ``charge_controllers.config``, ``fndc``) or pyburnerkit's (``fndcs``).

    :raises ConfigurationError: an unknown name (with the closest known one).
    """
    if isinstance(name, Device):
        return name
    key = str(name).strip().lower().replace("-", "_").replace(" ", "_")
    config = key.endswith(".config")
    base = key[:-len(".config")] if config else key
    found = Device.__members__.get(base) or _DEVICE_ALIASES.get(base)
    if found is not None and config:
        found = _CONFIG_OF.get(found)
    if found is None or found in (Device.sunspec_header, Device.end_of_sun_spec):
        known = [d.name for d in Device if d not in (Device.sunspec_header,
                                                     Device.end_of_sun_spec)]
        close = difflib.get_close_matches(key, known + list(_DEVICE_ALIASES), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ConfigurationError(f"unknown mate3 device {name!r}{hint}; known: "
                                 f"{', '.join(known)}")
    return found


def field_name(device: Device, name: str) -> str:
    """Today's name of field ``name`` of ``device``, accepting mate3 0.4's spelling
    (``temperature_scale_factor`` -> ``temp_scale_factor``).

    :raises ConfigurationError: the device has no such field (with the closest names).
    """
    bdef = codec.block_defs().get(device.value)
    fields = bdef.fields if bdef is not None else {}
    if name in fields:
        return name
    candidates = [_OLD_FIELD_NAMES.get(name, "")]
    if name.startswith("temperature_"):
        candidates.append("temp_" + name[len("temperature_"):])
    for candidate in candidates:
        if candidate in fields:
            return candidate
    close = difflib.get_close_matches(name, list(fields), n=3)
    hint = f"; did you mean {', '.join(close)}?" if close else ""
    raise ConfigurationError(f"mate3 device {device.name} has no field {name!r}{hint}")


# ------------------------------------------------------------------------------ fields
class Field(NamedTuple):
    """One field definition, as mate3's parsers hold them (``ChargeControllerParser.watts``).

    ``name`` is the spelling it was looked up by; ``path_name`` is today's name. ``type`` is
    the register type's name (``"uint16"``, ``"string"``...); ``scale_factor`` names the
    scale-factor field, if any.
    """

    start: int
    size: int
    type: str
    mode: Mode = Mode.R
    description: str = ""
    units: Optional[str] = None
    scale_factor: Optional[str] = None
    name: Optional[str] = None
    device: Optional[Device] = None
    path_name: Optional[str] = None

    @property
    def end(self) -> int:
        return self.start + self.size


def _field(device: Device, fdef: FieldDef, spelled: str) -> Field:
    return Field(start=fdef.start, size=fdef.size, type=fdef.type.value, mode=fdef.mode,
                 description=fdef.description, units=fdef.units or None,
                 scale_factor=fdef.scale_factor_field, name=spelled, device=device,
                 path_name=fdef.name)


class Parser:
    """A mate3 parser: its attributes are the :class:`Field` objects of one device type
    (``ChargeControllerParser.battery_current``), by today's or mate3 0.4's names."""

    def __init__(self, device: Device) -> None:
        self.device = device
        bdef = codec.block_defs()[device.value]
        self._defs = dict(bdef.fields)
        self.__name__ = _camel(device.name) + "Parser"

    @property
    def fields(self) -> Dict[str, Field]:
        """Every field of this device type by today's name."""
        return {name: _field(self.device, fdef, name) for name, fdef in self._defs.items()}

    def __getattr__(self, name: str) -> Field:
        if name.startswith("__"):
            raise AttributeError(name)
        try:
            canonical = field_name(self.device, name)
        except ConfigurationError as exc:
            raise AttributeError(str(exc)) from None
        return _field(self.device, self._defs[canonical], name)

    def __dir__(self) -> List[str]:
        return sorted(set(super().__dir__()) | set(self._defs))

    def __repr__(self) -> str:
        return f"<{self.__name__} ({len(self._defs)} fields, DID {self.device.value})>"


def _camel(name: str) -> str:
    return "".join(part.capitalize() for part in name.split("_"))


#: a parser per device type the register tables know, by device
PARSERS: Dict[Device, Parser] = {d: Parser(d) for d in Device
                                 if d.value in codec.block_defs() and d.value != 21365}


def get_parser(device: Union[str, Device]) -> Parser:
    """The parser of a device type (``mate3.base_structures.get_parser``).

    :raises ConfigurationError: a device type with no register table.
    """
    found = device_named(device)
    if found not in PARSERS:
        raise ConfigurationError(f"no parser for device {found.name} (DID {found.value})")
    return PARSERS[found]


SunspecCommonModelParser = PARSERS[Device.sunspec_common_model]
SunspecInverterSinglePhaseParser = PARSERS[Device.sunspec_inverter_single_phase]
SunspecInverterSplitPhaseParser = PARSERS[Device.sunspec_inverter_split_phase]
SunspecInverterThreePhaseParser = PARSERS[Device.sunspec_inverter_three_phase]
Mate3Parser = PARSERS[Device.mate3]
ChargeControllerParser = PARSERS[Device.charge_controller]
ChargeControllerConfigurationParser = PARSERS[Device.charge_controller_configuration]
FxInverterParser = PARSERS[Device.fx_inverter]
FxInverterConfigurationParser = PARSERS[Device.fx_inverter_configuration]
SplitPhaseRadianInverterParser = PARSERS[Device.split_phase_radian_inverter]
RadianInverterConfigurationParser = PARSERS[Device.radian_inverter_configuration]
SinglePhaseRadianInverterParser = PARSERS[Device.single_phase_radian_inverter]
FlexnetDcParser = PARSERS[Device.flexnet_dc]
FlexnetDcConfigurationParser = PARSERS[Device.flexnet_dc_configuration]
OutbackSystemControlParser = PARSERS[Device.outback_system_control]
OpticsreStatisticsParser = PARSERS[Device.opticsre_statistics]


# ------------------------------------------------------------------------------ blocks
def _plain(fv: FieldValue, raw: bool) -> Any:
    """A field's value as mate3 0.4 gave it (raw integers, text, dotted addresses) or, with
    ``raw=False``, scaled (None when not implemented)."""
    if not raw:
        return fv.value
    value = fv.raw
    if isinstance(value, int) and not isinstance(value, bool):
        return int(value)  # enum and flag values as the plain number mate3 0.4 returned
    return value


class Block:
    """One block as mate3's ``all_blocks()`` gave it: ``device``, ``port_number`` and each
    field's value as an attribute (today's or mate3 0.4's name). ``address`` is where the
    block starts; ``path`` is its pyburnerkit path (``charge_controllers[3].config``).

    :param path: the block's pyburnerkit path.
    :param dev: the decoded block.
    :type dev: ~pyburnerkit.mate3.Device
    :param raw: keep mate3 0.4's raw register integers instead of scaled values.
    """

    def __init__(self, path: str, dev: _Block, raw: bool) -> None:
        self.device = Device(dev.did)
        self.path = path
        self.address = dev.address
        self._values = {name: _plain(fv, raw) for name, fv in dev.values.items()}

    def __getattr__(self, name: str) -> Any:
        values = self.__dict__.get("_values")
        if values is None or name.startswith("__"):
            raise AttributeError(name)
        if name in values:
            return values[name]
        try:
            canonical = field_name(self.__dict__["device"], name)
        except ConfigurationError as exc:
            raise AttributeError(str(exc)) from None
        return values.get(canonical)  # a field past the block's length: not present

    def _asdict(self) -> Dict[str, Any]:
        return {"device": self.device, **self._values}

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Block) and self._asdict() == other._asdict()

    __hash__ = None  # type: ignore[assignment]  # mutable-looking record, as NamedTuple rows

    def __repr__(self) -> str:
        shown = ", ".join(f"{k}={v!r}" for k, v in self._values.items())
        return f"{_camel(self.device.name)}Block(device={self.device!r}, {shown})"


def legacy_blocks(system: Mate3System) -> List[Tuple[str, _Block]]:
    """``(path, block)`` for every block mate3 knew, in address order."""
    known = {d.value for d in Device}
    return sorted(((p, d) for p, d in system.blocks() if d.did in known),
                  key=lambda item: item[1].address)


def _matching(system: Mate3System, device: Device, port: Optional[int]
              ) -> List[Tuple[str, _Block]]:
    found = [(p, d) for p, d in legacy_blocks(system) if d.did == device.value]
    if port is None:
        return found
    # a port means a HUB port; the Mate3 and its system control block have none (ignored)
    return [(p, d) for p, d in found if d.port is None or d.port == port]


def _ports(blocks: Sequence[Tuple[str, _Block]]) -> str:
    return ", ".join(str(d.port) for _, d in blocks) or "none"


def resolve_path(system: Mate3System, name: Union[str, Field], port: Optional[int] = None
                 ) -> str:
    """The pyburnerkit path (``charge_controllers[3].config.absorb_volts``) a mate3 name
    means in this system: a :class:`Field`, ``device.field`` with mate3 0.4's device names
    (``charge_controller_configuration.absorb_volts``) or 0.6's singular accessors
    (``charge_controller.config.absorb_volts``), or a path already (which names its own
    port). ``port`` picks the HUB port for mate3's names; without it the device type must be
    present once.

    :raises ConfigurationError: unknown device or field, no such device (on that port), or
        several and no port given (naming the ports found).
    """
    if isinstance(name, Field):
        if name.device is None or name.path_name is None:
            raise ConfigurationError(f"field {name.name!r} belongs to no device")
        device, fname = name.device, name.path_name
        shown = f"{device.name}.{name.name}"
    else:
        text = str(name).strip()
        try:
            owner, fname = codec.split_path(text)
        except ConfigurationError:
            raise ConfigurationError(
                f"field path {text!r} is not DEVICE[.config].FIELD, e.g. mate3.system_name "
                f"or charge_controllers[3].config.absorb_volts (mate3's names such as "
                f"charge_controller_configuration.absorb_volts work too)") from None
        try:
            dev = system.device(owner)
        except KeyError:
            pass
        else:  # already a path of this system: it names its own port
            return text
        if "[" in owner:
            raise ConfigurationError(f"no device {owner!r} in this system; devices: "
                                     f"{', '.join(p for p, _ in system.blocks())}")
        device = device_named(owner)
        fname = field_name(device, fname)
        shown = text
    blocks = _matching(system, device, port)
    if not blocks:
        where = f" on hub port {port}" if port is not None else ""
        present = _matching(system, device, None)
        also = f" (it is on port(s) {_ports(present)})" if present else ""
        raise ConfigurationError(f"No device of type {device.name} found{where} for {shown}"
                                 f"{also}")
    if len(blocks) > 1:
        raise ConfigurationError(f"Multiple devices of type {device.name} found (HUB ports "
                                 f"{_ports(blocks)}) for {shown}: give the port (port=N, "
                                 f"CLI --hub-port N)")
    path, dev = blocks[0]
    fdef = codec.block_defs()[dev.did].fields[fname]
    if fdef.end > dev.length + 2:
        raise ConfigurationError(f"{shown}: this {device.name} block is {dev.length} "
                                 f"registers long and has no {fname}")
    return f"{path}.{fname}"


def raw_to_scaled(system: Mate3System, path: str, value: Any) -> Any:
    """A raw register integer (mate3 0.4's write value: 330 for 33.0 V with scale factor -1)
    as the scaled value :meth:`~pyburnerkit.mate3.Mate3Client.write` takes, with the scale
    factor of the last read. Text, addresses and unscaled fields pass unchanged.

    :raises ConfigurationError: a raw value for a scaled field that is not a whole number.
    """
    owner, fname = codec.split_path(path)
    dev = system.device(owner)
    fdef = codec.block_defs()[dev.did].fields[fname]
    if not fdef.scale_factor_field:
        return value
    sf_value = dev.values.get(fdef.scale_factor_field)
    if sf_value is None or not sf_value.implemented:
        raise ConfigurationError(f"{path}: its scale factor {fdef.scale_factor_field} is not "
                                 f"implemented, so raw value {value!r} cannot be scaled")
    sf = codec.to_int16(int(sf_value.raw) & 0xFFFF)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigurationError(
            f"{path} takes a raw whole number of register units (scale factor {sf}), got "
            f"{value!r}; pass raw=False for a value in {fdef.units or 'its unit'}")
    return codec.scale(value, sf) if sf else value


# ------------------------------------------------------------------------------ client
class Mate3:
    """mate3 0.4's client object (what ``with mate3_connection(...) as client`` gives), on a
    connected :class:`~pyburnerkit.mate3.Mate3Client` (``.client``). Every call blocks until
    the Mate3 answered and raises what :class:`~pyburnerkit.mate3.Mate3Client` raises."""

    def __init__(self, client: Mate3Client) -> None:
        self.client = client

    def _system(self) -> Mate3System:
        system = self.client.system
        if system is None:
            raise ConfigurationError("the Mate3 client is not connected")
        return system

    def all_blocks(self, *, raw: bool = True, timeout: TimeoutArg = DEFAULT
                   ) -> Iterator[Block]:
        """Read the whole system now and yield every block (address order)."""
        system = self.client.read_all(timeout=timeout)
        for path, dev in legacy_blocks(system):
            yield Block(path, dev, raw)

    def get_device_blocks(self, device: Union[str, Device], *, raw: bool = True,
                          timeout: TimeoutArg = DEFAULT) -> Iterator[Block]:
        """Read the whole system now and yield the blocks of one device type (one per
        device of that type). mate3 0.4 yielded every block here, a bug."""
        wanted = device_named(device)
        system = self.client.read_all(timeout=timeout)
        for path, dev in legacy_blocks(system):
            if dev.did == wanted.value:
                yield Block(path, dev, raw)

    def get_values(self, *fields: Union[Field, str], raw: bool = True,
                   port: Optional[int] = None, timeout: TimeoutArg = DEFAULT
                   ) -> Dict[Any, List[Any]]:
        """Read only these fields now: ``{field: [value per device of its type]}`` in
        address order (``port=`` keeps the device on that HUB port). Raw register values by
        default, as mate3 0.4; ``raw=False`` for scaled values.

        :raises ConfigurationError: an unknown device or field.
        """
        system = self._system()
        wanted: Dict[Any, List[str]] = {}
        for spec in fields:
            if isinstance(spec, Field):
                device, fname = spec.device, spec.path_name
                if device is None or fname is None:
                    raise ConfigurationError(f"field {spec.name!r} belongs to no device")
            else:
                owner, _, text = str(spec).rpartition(".")
                device = device_named(owner)
                fname = field_name(device, text)
            blocks = _matching(system, device, port)
            wanted[spec] = [f"{p}.{fname}" for p, d in blocks
                            if codec.block_defs()[d.did].fields[fname].end <= d.length + 2]
        paths = sorted({p for ps in wanted.values() for p in ps})
        got = self.client.read(*paths, timeout=timeout) if paths else {}
        return {spec: [_plain(got[p], raw) for p in ps] for spec, ps in wanted.items()}

    def set_value(self, field: Union[Field, str], value: Any, port: Optional[int] = None, *,
                  raw: bool = True, expert: bool = False,
                  timeout: TimeoutArg = DEFAULT) -> Any:
        """Write one field of the device of its type (on HUB ``port`` when there are
        several) and read it back. ``value`` is a raw register integer, as in mate3 0.4
        (``330`` = 33.0 V for a scale factor of -1), or with ``raw=False`` the scaled value.

        Refused before anything is sent: without ``allow_writes=True`` on the connection
        (:class:`~pyburnerkit.errors.WriteNotAllowedError`), and for a value outside the
        field's documented limit (:class:`~pyburnerkit.errors.ConfigurationError` naming the
        value, the limit and the unit). Never retried.

        :returns: the value read back (raw or scaled, like ``value``), or None for a
            write-only command field.
        """
        if not self.client.allow_writes:
            raise WriteNotAllowedError(
                f"refusing set_value({_shown(field)}, {value!r}): the connection was not "
                f"opened for writes; use mate3_connection(host, port, allow_writes=True) "
                f"(set points and commands can damage equipment)",
                device="mate3", endpoint=self.client.endpoint)
        system = self._system()
        path = resolve_path(system, field, port)
        scaled = raw_to_scaled(system, path, value) if raw else value
        try:
            back = self.client.write(path, scaled, timeout=timeout, expert=expert)
        except ConfigurationError as exc:
            if raw and scaled != value:
                raise ConfigurationError(f"raw value {value!r} for {path} is {scaled!r} "
                                         f"after scaling: {exc}") from exc
            raise
        return None if back is None else _plain(back, raw)


def _shown(field: Union[Field, str]) -> str:
    if isinstance(field, Field) and field.device is not None:
        return f"{field.device.name}.{field.name}"
    return str(field)


class Mate3Factory:
    """``mate3_connection(host, port=502)``: a context manager that connects (walks the
    SunSpec map and reads the whole system once, blocking) and yields a :class:`Mate3`;
    leaving it closes the client (bounded).

    :param host: the Mate3's address (or any :class:`~pyburnerkit.mate3.Mate3Client` endpoint, e.g.
        ``"sim://mate3"`` or ``"replay:dump.json"``).
    :param port: the Modbus TCP port (default 502; ignored for ``sim://`` and ``replay:``).
    :param allow_writes: let ``set_value`` write (mate3 had no such switch).
    :param options: more :class:`~pyburnerkit.mate3.Mate3Client` keywords (``timeout``,
        ``min_poll_interval``).
    """

    def __init__(self, host: str, port: Optional[int] = None, *, allow_writes: bool = False,
                 **options: Any) -> None:
        network = not str(host).startswith(("sim:", "replay:"))
        self.client = Mate3Client(host, port=port if network else None,
                                  allow_writes=allow_writes, **options)

    def __enter__(self) -> Mate3:
        try:
            self.client.connect()
        except BaseException:
            self.client.close()
            raise
        return Mate3(self.client)

    def __exit__(self, *exc: Any) -> None:
        self.client.close()


mate3_connection = Mate3Factory
