"""Recorder adapter of the Mate3 family (poll)."""

from __future__ import annotations

from typing import Any, Callable, Dict, List, Mapping, Optional, Tuple

from ..samples import Labelled
from ..sources import PollSource, Reading, Source, retrying_options


_MATE3_UNITS = {"Volts": "V", "Volts AC": "V", "Volts DC": "V", "Amps": "A", "Watts": "W",
                "kW": "kW", "kWatts": "kW", "kWh": "kWh", "KWH": "kWh", "AH": "Ah", "Hz": "Hz",
                "Percent": "%", "Degrees C": "°C", "Seconds": "s", "Minute": "min",
                "Minutes": "min", "Hour": "h", "Hours": "h", "Days": "d", "Weeks": "wk"}
_MATE3_SKIP = frozenset({"did", "length", "port_number"})


class Mate3Source(PollSource):
    """Polls a :class:`~pyburnerkit.mate3.Mate3Client` (``read_all()``) at most once a second
    (the driver enforces the Mate3s' pace). Channel = the HUB port (``"3"``) or ``"mate3"``;
    fields are the SunSpec/OutBack field names (``battery_voltage``); configuration blocks and
    scale-factor registers are left out. Each sample carries the device kind found on its port
    (``Sample.kind``: ``charge_controller``, ``single_phase_radian_inverter``...), so mate3_pg
    definitions match on port + device + field, even after devices were re-plugged."""

    default_interval = 5.0

    def __init__(self, client: Any, *, device: Optional[str] = None,
                 interval: Optional[float] = None, owns_client: bool = False) -> None:
        super().__init__("mate3", client, device=device, interval=interval,
                         owns_client=owns_client)
        #: channel -> what its blocks say about the device (model, serial, firmware)
        self._info: Dict[str, Dict[str, str]] = {}

    @classmethod
    def from_config(cls, url: str, device: Optional[str], options: Mapping[str, Any]
                    ) -> "Mate3Source":
        from ...mate3 import Mate3Client
        opts = retrying_options(options)
        return cls(Mate3Client(url, **opts), device=device, owns_client=True)

    def poll(self) -> List[Reading]:
        if not self._ready():
            return []
        system = self.client.read_all()
        out: List[Reading] = []
        for path, dev in system.devices():
            channel = str(dev.port) if dev.port is not None else path
            kind = getattr(dev.kind, "value", str(dev.kind))  # what sits on this port now
            self._info[channel] = _identify(dev, system.common if dev.port is None else None)
            for name, fv in dev.values.items():
                if not fv.implemented or name in _MATE3_SKIP or name.endswith("_scale_factor") \
                        or fv.units in ("Registers", "Port"):
                    continue
                value = fv.value
                if hasattr(value, "label"):      # EnumValue: number + label
                    value = Labelled(int(value), value.label)
                elif hasattr(value, "names"):    # Flags: number + set bit names
                    value = Labelled(int(value), ",".join(value.names))
                out.append((channel, name, value, _MATE3_UNITS.get(fv.units, fv.units), kind))
        return out

    def device_info(self, channel: str) -> Dict[str, str]:
        """Per HUB port: the device kind, serial number and firmware from its configuration
        block; for the Mate3 itself (channel ``mate3``) the SunSpec common block's serial and
        the OutBack firmware. Known after the first poll."""
        return dict(self._info.get(channel, {}))


#: what each HUB device kind is called on OutBack's own labels
_MODELS = {"charge_controller": "FLEXmax charge controller", "fndc": "FLEXnet DC",
           "fx_inverter": "FX inverter",
           "single_phase_radian_inverter": "Radian inverter (single phase)",
           "split_phase_radian_inverter": "Radian inverter (split phase)"}


def _value(dev: Any, name: str) -> Any:
    fv = dev.values.get(name) if dev is not None else None
    return None if fv is None or not getattr(fv, "implemented", True) else fv.value


def _identify(dev: Any, common: Any) -> Dict[str, str]:
    """Model, serial and firmware of one Mate3 device (``common``: the SunSpec common block,
    for the Mate3 itself)."""
    out: Dict[str, str] = {}
    kind = str(getattr(dev.kind, "value", dev.kind))
    if dev.port is not None:
        out["name"] = f"port {dev.port}"
        out["model"] = _MODELS.get(kind, kind.replace("_", " ").capitalize())
    blocks = [dev.config, dev] if dev.port is not None else [dev]
    for block in blocks:
        numbers = [_value(block, f"{part}_firmware_number") for part in ("major", "mid", "minor")]
        if all(isinstance(n, int) for n in numbers):
            out.setdefault("sw_version", ".".join(str(n) for n in numbers))
        serial = _value(block, "serial_number")
        if isinstance(serial, str) and serial.strip("\x00\xff "):
            out.setdefault("serial_number", serial.strip("\x00\xff "))
    for name, key in (("serial_number", "serial_number"), ("model", "model")):
        value = _value(common, name)
        if isinstance(value, str) and value.strip("\x00\xff "):
            out.setdefault(key, value.strip("\x00\xff "))
    return out


def demo_sources() -> Tuple[List[Source], Callable[[], None]]:
    """A source on a loopback simulator, and the cleanup to run after its client closed
    (``pyburnerkit record --demo``)."""
    from ...mate3 import Mate3Client
    client = Mate3Client("sim://mate3", retry_first=True)  # a Modbus TCP simulator on loopback
    return [Mate3Source(client, device="demo-mate3", interval=2.0, owns_client=True)], \
        lambda: None
