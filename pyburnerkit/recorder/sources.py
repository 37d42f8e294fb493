"""Sources: one small adapter per device family, importing its family only when used.

A source turns a client's data into *readings* ``(channel, field, value, unit)``; the recorder
stamps them into :class:`~pyburnerkit.recorder.samples.Sample` objects. Two kinds:

* **push** sources (Afterburner, Victron, DE1/scale) subscribe to the client's events; their
  callback runs on the client's events thread and hands readings over without blocking;
* **poll** sources (Mate3, Arbin, :class:`CallableSource`) are read at an interval on a recorder
  thread, ``pyburnerkit-recorder-poll-<device>``.

Families that land later plug in with :func:`register_adapter`. The client keeps reconnecting by
itself; a source only reports its connection state (``on_state``).
"""

from __future__ import annotations

import importlib
import logging
import threading
from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional, Tuple, Type

from ..errors import ConfigurationError
from .samples import FieldMeta, unit_for_name

log = logging.getLogger(__name__)

#: (channel, field, value, unit), or (channel, field, value, unit, kind) from a source that
#: knows what kind of device sits on the channel (Mate3: ``charge_controller`` on port 3)
Reading = Tuple[Any, ...]
Emit = Callable[["Source", List[Reading]], None]
OnState = Callable[["Source", str, Optional[BaseException]], None]

__all__ = ["Source", "CallableSource", "AfterburnerSource", "ArbinSource", "Mate3Source",
           "VictronSource", "DE1Source", "ScaleSource", "adapt", "register_adapter",
           "open_source", "Reading", "meta_for"]


def _check_interval(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise ConfigurationError(f"poll interval must be a positive number of seconds, "
                                 f"got {value!r}")
    return float(value)


# --------------------------------------------------------------------------------- metadata
_UNIT_CLASSES: Dict[str, Tuple[Optional[str], Optional[str]]] = {
    "°C": ("temperature", "measurement"), "V": ("voltage", "measurement"),
    "A": ("current", "measurement"), "mA": ("current", "measurement"),
    "W": ("power", "measurement"), "kW": ("power", "measurement"),
    "VA": ("apparent_power", "measurement"),
    "Wh": ("energy", "total_increasing"), "kWh": ("energy", "total_increasing"),
    "Hz": ("frequency", "measurement"), "hPa": ("pressure", "measurement"),
    "bar": ("pressure", "measurement"), "dBm": ("signal_strength", "measurement"),
    "s": ("duration", "measurement"), "ms": ("duration", "measurement"),
    "h": ("duration", "total_increasing"), "g": ("weight", "measurement"),
    "mL": ("volume", "total_increasing"), "m": ("distance", "measurement"),
    # amp-hours go both ways (Victron ConsumedAmphours is negative and returns to 0 when
    # full): "total", never "total_increasing" (HA would read every decrease as a reset)
    "Ah": (None, "total"), "%": (None, "measurement"),
    "min": ("duration", "measurement"), "d": ("duration", "measurement"),
    "RPM": (None, "measurement"), "Ω": (None, "measurement"),
}


def meta_for(field: str, unit: str, *, numeric: bool = True,
             diagnostic: bool = False) -> FieldMeta:
    """Home Assistant presentation guessed from the unit and the name."""
    if not numeric:
        return FieldMeta(unit="", device_class=None, state_class=None, diagnostic=diagnostic)
    device_class, state_class = _UNIT_CLASSES.get(unit, (None, "measurement"))
    lower = field.lower()
    if unit == "%":
        if "humid" in lower:
            device_class = "humidity"
        elif "soc" in lower or "battery" in lower:
            device_class = "battery"
    return FieldMeta(unit=unit, device_class=device_class, state_class=state_class,
                     diagnostic=diagnostic)


# --------------------------------------------------------------------------------- base
class Source:
    """One device (or one client) feeding the recorder.

    :param family: the driver family (``"afterburner"``...).
    :param device: a stable id for the device (serial, address, or a name you choose).
    :param kind: ``"push"`` or ``"poll"``.
    :param interval: seconds between polls (poll sources).
    :param owns_client: close the client when the recorder closes.
    """

    kind = "push"

    def __init__(self, family: str, device: str, *, client: Any = None,
                 interval: Optional[float] = None, owns_client: bool = False) -> None:
        if not isinstance(device, str) or not device:
            raise ConfigurationError(f"device id must be a non-empty string, got {device!r}")
        self.family = family
        self.device = device
        self.client = client
        self.interval = None if interval is None else _check_interval(interval)
        self.owns_client = owns_client
        self._emit: Optional[Emit] = None
        self._on_state: Optional[OnState] = None
        self._subscriptions: List[Any] = []
        self._connector: Optional[threading.Thread] = None

    # -- recorder side --------------------------------------------------------------------
    def start(self, emit: Emit, on_state: OnState) -> None:
        """Begin delivering readings (push sources subscribe here). Any thread."""
        self._emit = emit
        self._on_state = on_state

    def poll(self) -> List[Reading]:
        """Read the device once (poll sources; runs on the source's poll thread)."""
        return []

    def stop(self) -> None:
        """Stop delivering readings (cancel subscriptions); must not raise."""
        for sub in self._subscriptions:
            try:
                sub.cancel()
            except Exception:
                pass
        self._subscriptions = []
        self._emit = None

    def close_client(self, timeout: Optional[float]) -> None:
        if self.owns_client and self.client is not None and hasattr(self.client, "close"):
            self.client.close(timeout=timeout)

    def join(self, timeout: Optional[float]) -> None:
        thread = self._connector
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)

    def _connect_in_background(self) -> bool:
        """Connect an idle client on a helper thread (clients connect in their own time).

        An owned client waits for its device as long as it takes (it retries by itself); a
        client you passed in gets its own connect timeout. Returns False if nothing was needed.
        """
        client = self.client
        state = getattr(client, "connection_state", None)
        if client is None or state is None or state.value != "idle":
            return False

        def run() -> None:
            try:
                if self.owns_client:
                    client.connect(timeout=None)
                else:
                    client.connect()
            except Exception as exc:
                if not getattr(client, "closed", False):
                    log.warning("%s %s: could not connect: %s", self.family, self.device, exc)
                self.state("closed", exc)

        self._connector = threading.Thread(target=run, daemon=True,
                                           name=f"pyburnerkit-recorder-connect-{self.device}")
        self._connector.start()
        return True

    def meta(self, channel: str, field: str, unit: str, value: Any) -> FieldMeta:
        numeric = isinstance(value, (int, float)) and not isinstance(value, bool)
        return meta_for(field, unit, numeric=numeric or isinstance(value, bool))

    # -- helpers for subclasses -------------------------------------------------------------
    def emit(self, readings: List[Reading]) -> None:
        emit = self._emit
        if emit is not None and readings:
            emit(self, readings)

    def state(self, state: str, error: Optional[BaseException] = None) -> None:
        cb = self._on_state
        if cb is not None:
            cb(self, state, error)

    def _follow_connection(self) -> None:
        """Report the client's connection state changes (clients of every family have them)."""
        from ..types import ConnectionStateChanged
        client = self.client
        if client is None or not hasattr(client, "subscribe"):
            return

        def on_change(event: Any) -> None:
            self.state(event.state.value, event.error)

        self._subscriptions.append(client.subscribe(on_change, ConnectionStateChanged))

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.family}/{self.device}>"


class CallableSource(Source):
    """A poll source around any function returning ``{field: value}`` or readings.

    The function's dict values may be plain values or ``(value, unit)`` pairs; it may also return
    a list of ``(channel, field, value, unit)`` readings. Units default to a guess from the name
    (``voltage_v`` -> V).
    """

    kind = "poll"

    def __init__(self, read: Callable[[], Any], *, family: str = "custom",
                 device: str = "custom", interval: float = 1.0, channel: str = "") -> None:
        super().__init__(family, device, interval=interval)
        if not callable(read):
            raise ConfigurationError(f"read must be callable, got {read!r}")
        self._read = read
        self.channel = channel

    def poll(self) -> List[Reading]:
        data = self._read()
        if isinstance(data, Mapping):
            out: List[Reading] = []
            for field, value in data.items():
                if isinstance(value, tuple) and len(value) == 2:
                    out.append((self.channel, str(field), value[0], str(value[1])))
                else:
                    out.append((self.channel, str(field), value, unit_for_name(str(field))))
            return out
        return [tuple(r) for r in data]  # type: ignore[misc]


# --------------------------------------------------------------------------------- afterburner
#: Afterburner keys that describe settings or the network: HA shows them as diagnostics,
#: disabled by default.
AFTERBURNER_DIAGNOSTIC = frozenset({
    "TempMode", "TempMin", "TempMax", "Thermostat", "PumpFixed", "PumpMin", "PumpMax", "FanMin",
    "FanMax", "FanSensor", "BluewireStat", "ThermostatMethod", "ThermostatWindow", "CyclicOff",
    "ThermostatOvertemp", "CyclicOn", "ThermostatUndertemp", "CyclicTemp", "FrostOn",
    "FrostRise", "PumpCal", "LowVoltCutout", "HumidStart", "TempOffset", "Temp2Offset",
    "Temp3Offset", "Temp4Offset", "TempType", "Altitude", "IP_STA", "IP_AP", "IP_STASSID",
    "IP_STARSSI", "MEn", "MOnline", "ExtThermoTmout", "SystemVoltage",
})


def _retrying(options: Mapping[str, Any]) -> Dict[str, Any]:
    """Client options for a configured source: a device that is not up yet is retried."""
    opts = dict(options)
    opts.setdefault("retry_first", True)
    return opts


class _PushSource(Source):
    """A source that follows one client's events; subclasses name the family and client."""

    kind = "push"
    family_name = ""
    #: (module relative to this package, class) of the client a configured source builds
    client_path = ("", "")

    def __init__(self, client: Any, *, device: Optional[str] = None,
                 owns_client: bool = False) -> None:
        super().__init__(self.family_name, device or _endpoint_id(client), client=client,
                         owns_client=owns_client)

    @classmethod
    def from_config(cls, url: str, device: Optional[str], options: Mapping[str, Any]
                    ) -> "_PushSource":
        return cls(cls._make_client(url, _retrying(options)), device=device, owns_client=True)

    @classmethod
    def _make_client(cls, url: str, options: Dict[str, Any]) -> Any:
        module, name = cls.client_path
        return getattr(importlib.import_module(module, __package__), name)(url, **options)


class AfterburnerSource(_PushSource):
    """Follows an :class:`~pyburnerkit.afterburner.AfterburnerClient` (push).

    Every changed key of every ``StatusChanged`` event becomes a reading under its wire name
    (``TempCurrent``, ``RunState``...), typed by the driver's codec; units come from the
    driver's field names (``temperature_c`` -> °C).
    """

    family_name = "afterburner"
    client_path = ("..afterburner", "AfterburnerClient")

    def __init__(self, client: Any, *, device: Optional[str] = None,
                 owns_client: bool = False) -> None:
        super().__init__(client, device=device, owns_client=owns_client)
        from ..afterburner import codec
        self._codec = codec

    def _readings(self, keys: Mapping[str, Any]) -> List[Reading]:
        out: List[Reading] = []
        table = self._codec.STATUS_KEYS
        for key, raw in keys.items():
            spec = table.get(key)
            if spec is None:
                continue
            attr, convert = spec
            try:
                value = convert(key, raw)
            except Exception:  # a value the codec cannot type: keep it as the device sent it
                value = raw
            if key == "BluewireStat":
                value = getattr(value, "text", raw)
            out.append(("", key, value, unit_for_name(attr)))
        return out

    def start(self, emit: Emit, on_state: OnState) -> None:
        super().start(emit, on_state)
        from ..afterburner.models import StatusChanged
        client = self.client

        def on_status(event: Any) -> None:
            self.emit(self._readings(event.changed))

        self._subscriptions.append(client.subscribe(on_status, StatusChanged))
        self._follow_connection()
        if not self._connect_in_background():
            if not client.stale:
                self.emit(self._readings(client.status.raw))
                self.state("connected")

    def meta(self, channel: str, field: str, unit: str, value: Any) -> FieldMeta:
        base = super().meta(channel, field, unit, value)
        if field in AFTERBURNER_DIAGNOSTIC:
            return FieldMeta(base.unit, base.device_class, base.state_class, True)
        return base


def _dataclass_readings(obj: Any, channel: str, skip: Iterable[str] = ()) -> List[Reading]:
    """Readings from a frozen dataclass whose field names carry their unit (``voltage_v``)."""
    import dataclasses
    out: List[Reading] = []
    skipped = set(skip)
    for f in dataclasses.fields(obj):
        if f.name in skipped:
            continue
        value = getattr(obj, f.name)
        if isinstance(value, (int, float, str)) or value is None or hasattr(value, "value"):
            out.append((channel, f.name, value, unit_for_name(f.name)))
    return out


class _PollSource(Source):
    """Shared parts of the request/response families (Arbin, Mate3)."""

    kind = "poll"
    default_interval = 1.0

    def __init__(self, family: str, client: Any, *, device: Optional[str],
                 interval: Optional[float], owns_client: bool) -> None:
        super().__init__(family, device or _endpoint_id(client), client=client,
                         interval=interval if interval is not None else self.default_interval,
                         owns_client=owns_client)

    def start(self, emit: Emit, on_state: OnState) -> None:
        super().start(emit, on_state)
        self._follow_connection()
        if not self._connect_in_background() and self._ready():
            self.state("connected")

    def _ready(self) -> bool:
        """Wait (bounded) for the client's first connection; False if it is not there yet.

        The wait ends at once when the recorder closes the client.
        """
        state = getattr(self.client, "connection_state", None)
        if state is None or state.value == "connected":
            return True
        try:
            self.client.wait_for(lambda c: c.connected, timeout=max(5.0, self.interval or 1.0))
        except Exception:  # not connected in time, or closed: try again next turn
            return False
        return True


# --------------------------------------------------------------------------------- arbin
class ArbinSource(_PollSource):
    """Polls an Arbin :class:`~pyburnerkit.arbin.CyclerClient` with one all-channel request
    per interval. Channel = the 1-based channel number; fields are the driver's unit-suffixed
    names (``voltage_v``, ``charge_capacity_ah``...) plus ``state`` (``UNSAFE``...), the test
    and schedule names, and ``aux_<type>_<n>`` readings."""

    default_interval = 1.0

    def __init__(self, client: Any, *, device: Optional[str] = None,
                 interval: Optional[float] = None, owns_client: bool = False) -> None:
        super().__init__("arbin", client, device=device, interval=interval,
                         owns_client=owns_client)

    @classmethod
    def from_config(cls, url: str, device: Optional[str], options: Mapping[str, Any]
                    ) -> "ArbinSource":
        from ..arbin import CyclerClient
        opts = _retrying(options)
        if "://" in url:  # sim://... (the driver's in-process simulator)
            return cls(CyclerClient(url, **opts), device=device, owns_client=True)
        host, _, port = url.rpartition(":") if url.count(":") == 1 else (url, "", "")
        try:
            number = int(port) if port else 9031
        except ValueError:
            raise ConfigurationError(f"arbin url must be host or host:port, got {url!r}") from None
        client = CyclerClient(host or url, number, **opts)
        return cls(client, device=device, owns_client=True)

    def poll(self) -> List[Reading]:
        if not self._ready():
            return []
        out: List[Reading] = []
        for status in self.client.read_all_statuses():
            channel = str(status.channel)
            out.extend(_dataclass_readings(
                status, channel, skip=("channel", "aux", "bms", "smb", "comm_failure")))
            out.append((channel, "comm_failure", bool(status.comm_failure), ""))
            for kind, readings in (status.aux or {}).items():
                unit = {"temperature": "°C", "voltage": "V", "pressure": "Pa",
                        "current": "A", "ph": "", "flow_rate": ""}.get(str(kind).lower(), "")
                for i, reading in enumerate(readings, 1):
                    out.append((channel, f"aux_{kind}_{i}", reading.value, unit))
        return out

    def meta(self, channel: str, field: str, unit: str, value: Any) -> FieldMeta:
        base = super().meta(channel, field, unit, value)
        if field in ("internal_resistance_ohm", "acr_ohm", "aci_ohm", "aci_phase_deg",
                     "master_channel", "comm_failure", "dvdt_v_per_s"):
            return FieldMeta(base.unit, base.device_class, base.state_class, True)
        if unit in ("Wh", "Ah") and ("charge" in field):
            # capacities and energies restart with every test: total, not total_increasing
            return FieldMeta(base.unit, base.device_class, "total", base.diagnostic)
        return base


# --------------------------------------------------------------------------------- mate3
_MATE3_UNITS = {"Volts": "V", "Volts AC": "V", "Volts DC": "V", "Amps": "A", "Watts": "W",
                "kW": "kW", "kWatts": "kW", "kWh": "kWh", "KWH": "kWh", "AH": "Ah", "Hz": "Hz",
                "Percent": "%", "Degrees C": "°C", "Seconds": "s", "Minute": "min",
                "Minutes": "min", "Hour": "h", "Hours": "h", "Days": "d", "Weeks": "wk"}
_MATE3_SKIP = frozenset({"did", "length", "port_number"})


class Mate3Source(_PollSource):
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

    @classmethod
    def from_config(cls, url: str, device: Optional[str], options: Mapping[str, Any]
                    ) -> "Mate3Source":
        from ..mate3 import Mate3Client
        opts = _retrying(options)
        return cls(Mate3Client(url, **opts), device=device, owns_client=True)

    def poll(self) -> List[Reading]:
        if not self._ready():
            return []
        system = self.client.read_all()
        out: List[Reading] = []
        for path, dev in system.devices():
            channel = str(dev.port) if dev.port is not None else path
            kind = getattr(dev.kind, "value", str(dev.kind))  # what sits on this port now
            for name, fv in dev.values.items():
                if not fv.implemented or name in _MATE3_SKIP or name.endswith("_scale_factor") \
                        or fv.units in ("Registers", "Port"):
                    continue
                value = fv.value
                if hasattr(value, "label"):      # EnumValue: number + label
                    value = _Labelled(int(value), value.label)
                elif hasattr(value, "names"):    # Flags: number + set bit names
                    value = _Labelled(int(value), ",".join(value.names))
                out.append((channel, name, value, _MATE3_UNITS.get(fv.units, fv.units), kind))
        return out

    def meta(self, channel: str, field: str, unit: str, value: Any) -> FieldMeta:
        base = super().meta(channel, field, unit, value)
        if unit in ("kWh", "Wh") and not field.endswith(("_today", "_daily")):
            return base
        if unit in ("kWh", "Wh"):  # daily counters reset at midnight
            return FieldMeta(base.unit, base.device_class, "total_increasing", base.diagnostic)
        return base


class _Labelled:
    """A number with a label (Mate3 enums and flags); normalised to value + text."""

    def __init__(self, value: int, label: str) -> None:
        self.value = value
        self.name = label


# --------------------------------------------------------------------------------- victron
_VICTRON_UNITS = {"Voltage": "V", "V": "V", "Current": "A", "I": "A", "Power": "W",
                  "Temperature": "°C", "Soc": "%", "ConsumedAmphours": "Ah", "TimeToGo": "s",
                  "Forward": "kWh", "Reverse": "kWh", "User": "kWh", "System": "kWh",
                  "Frequency": "Hz", "F": "Hz", "P": "W"}
_VICTRON_DIAGNOSTIC = ("/Mgmt/", "/ProductId", "/FirmwareVersion", "/HardwareVersion",
                       "/DeviceInstance", "/ProductName", "/CustomName", "/Connected",
                       "/Serial", "/Settings/")


class VictronSource(_PushSource):
    """Follows a :class:`~pyburnerkit.victron.VictronMonitor` (push): every ``ValuesChanged``
    becomes readings with channel = the D-Bus service (``com.victronenergy.battery.ttyO1``)
    and field = the D-Bus path (``/Dc/0/Voltage``), as venus-grafana and dbus-flashmq name
    them. Invalid values (empty arrays on the bus) are skipped."""

    family_name = "victron"

    @classmethod
    def _make_client(cls, url: str, options: Dict[str, Any]) -> Any:
        from ..victron import VictronMonitor
        if url and url != "default":  # an address, or "system" / "session"
            options.setdefault("bus_address", url)
        return VictronMonitor(**options)

    @staticmethod
    def unit_for(path: str) -> str:
        last = path.rstrip("/").rsplit("/", 1)[-1]
        return _VICTRON_UNITS.get(last, "")

    def _readings(self, service: str, values: Mapping[str, Any]) -> List[Reading]:
        out: List[Reading] = []
        for path, item in values.items():
            value = getattr(item, "value", item)
            if value is None or isinstance(value, (list, tuple, dict)):
                continue
            out.append((service, path, value, self.unit_for(path)))
        return out

    def start(self, emit: Emit, on_state: OnState) -> None:
        super().start(emit, on_state)
        from ..victron import ValuesChanged
        client = self.client

        def on_values(event: Any) -> None:
            self.emit(self._readings(event.service, event.values))

        self._subscriptions.append(client.subscribe(on_values, ValuesChanged))
        self._follow_connection()
        if not self._connect_in_background():
            for name in client.services():
                info = client.service(name)
                if info is not None:
                    self.emit(self._readings(name, info.values))
            self.state("connected")

    def meta(self, channel: str, field: str, unit: str, value: Any) -> FieldMeta:
        base = super().meta(channel, field, unit, value)
        diagnostic = field.startswith(_VICTRON_DIAGNOSTIC)
        state_class = base.state_class
        if unit == "kWh":
            state_class = "total_increasing"
        return FieldMeta(base.unit, base.device_class, state_class, diagnostic)


# --------------------------------------------------------------------------------- de1 / scale
class DE1Source(_PushSource):
    """Follows a :class:`~pyburnerkit.de1.client.DE1Client` (push): machine state and
    substate (``state`` / ``substate``, enum names kept), every shot sample (``group_pressure_bar``
    ...), water level and heater temperatures, under the driver's unit-suffixed names."""

    family_name = "de1"
    client_path = ("..de1", "DE1Client")

    def start(self, emit: Emit, on_state: OnState) -> None:
        super().start(emit, on_state)
        from ..de1.models import (ShotSampleEvent, StateChanged, TemperaturesChanged,
                                  WaterLevelsChanged)

        def on_event(event: Any) -> None:
            if isinstance(event, StateChanged):
                self.emit([("", "state", event.state, ""), ("", "substate", event.substate, "")])
            elif isinstance(event, ShotSampleEvent):
                readings = _dataclass_readings(event.sample, "")
                readings.append(("", "volume_total_ml", event.volume_total_ml, "mL"))
                self.emit(readings)
            elif isinstance(event, WaterLevelsChanged):
                self.emit(_dataclass_readings(event.levels, ""))
            elif isinstance(event, TemperaturesChanged):
                self.emit(_dataclass_readings(event.temperatures, ""))

        self._subscriptions.append(self.client.subscribe(
            on_event, StateChanged, ShotSampleEvent, WaterLevelsChanged, TemperaturesChanged))
        self._follow_connection()
        if not self._connect_in_background():
            info = self.client.state_info
            if info is not None:
                self.emit([("", "state", info.state, ""), ("", "substate", info.substate, "")])
            self.state("connected")

    def meta(self, channel: str, field: str, unit: str, value: Any) -> FieldMeta:
        base = super().meta(channel, field, unit, value)
        if field in ("sample_time", "frame_number") or field.startswith(("set_", "target_")):
            return FieldMeta(base.unit, base.device_class, base.state_class, True)
        if field == "volume_total_ml":  # restarts with every shot
            return FieldMeta(base.unit, base.device_class, "total", base.diagnostic)
        return base


class ScaleSource(_PushSource):
    """Follows a :class:`~pyburnerkit.scale.client.SkaleClient` (push): every weight report
    (``weight_g``, ``average_flow_g_s``, ``median_flow_g_s``)."""

    family_name = "scale"
    client_path = ("..scale", "SkaleClient")

    def start(self, emit: Emit, on_state: OnState) -> None:
        super().start(emit, on_state)
        from ..scale.models import WeightReading

        def on_weight(event: Any) -> None:
            self.emit([("", "weight_g", event.weight_g, "g"),
                       ("", "average_flow_g_s", event.average_flow_g_s, "g/s"),
                       ("", "median_flow_g_s", event.median_flow_g_s, "g/s")])

        self._subscriptions.append(self.client.subscribe(on_weight, WeightReading))
        self._follow_connection()
        if not self._connect_in_background():
            self.state("connected")


def _endpoint_id(client: Any) -> str:
    return str(getattr(client, "endpoint", None) or "device")


# --------------------------------------------------------------------------------- registry
#: family -> "module:Class" of its adapter; the module is imported only when used.
_ADAPTERS: Dict[str, str] = {
    "afterburner": "pyburnerkit.recorder.sources:AfterburnerSource",
    "arbin": "pyburnerkit.recorder.sources:ArbinSource",
    "mate3": "pyburnerkit.recorder.sources:Mate3Source",
    "victron": "pyburnerkit.recorder.sources:VictronSource",
    "de1": "pyburnerkit.recorder.sources:DE1Source",
    "scale": "pyburnerkit.recorder.sources:ScaleSource",
}


def register_adapter(family: str, target: str) -> None:
    """Register ``"package.module:Class"`` as the adapter for ``family`` (for new families)."""
    if ":" not in target:
        raise ConfigurationError(f"adapter must be 'module:Class', got {target!r}")
    _ADAPTERS[family] = target


def adapter_class(family: str) -> Type[Source]:
    target = _ADAPTERS.get(family)
    if target is None:
        raise ConfigurationError(
            f"no recorder adapter for family {family!r}; known: {', '.join(sorted(_ADAPTERS))}")
    module, _, name = target.partition(":")
    return getattr(importlib.import_module(module), name)


def families() -> List[str]:
    return sorted(_ADAPTERS)


def adapt(item: Any) -> Source:
    """A :class:`Source` for ``item``: a Source as is, else a client adapted by its family."""
    if isinstance(item, Source):
        return item
    family = getattr(item, "family", None)
    if family is None:
        raise ConfigurationError(f"{item!r} is neither a Source nor a pyburnerkit client")
    return adapter_class(family)(item)


def open_source(family: str, url: str, *, device: Optional[str] = None,
                interval: Optional[float] = None,
                options: Optional[Mapping[str, Any]] = None) -> Source:
    """Build a client of ``family`` for ``url`` wrapped in its adapter (used by the config)."""
    cls = adapter_class(family)
    factory = getattr(cls, "from_config", None)
    if factory is None:
        raise ConfigurationError(f"the {family} adapter cannot be built from a config")
    source = factory(url, device, dict(options or {}))
    if interval is not None:
        source.interval = _check_interval(interval)
    return source


# --------------------------------------------------------------------------------- demo
def _afterburner_demo() -> Tuple[Source, Callable[[], None]]:
    from ..afterburner import AfterburnerClient
    from ..afterburner.sim import AfterburnerSim
    sim = AfterburnerSim(tick=0.2, speed=30.0, seed=3).start("127.0.0.1", 0)
    try:
        client = AfterburnerClient(f"ws://127.0.0.1:{sim.port}/", retry_first=True)
    except BaseException:
        sim.close()
        raise
    source = AfterburnerSource(client, device="demo-heater", owns_client=True)
    return source, lambda: sim.close()


def _arbin_demo() -> Tuple[Source, Callable[[], None]]:
    from ..arbin import ArbinSim, CyclerClient
    sim = ArbinSim(channels=4, username="demo", password="demo", time_scale=10.0, seed=3)
    sim.start("127.0.0.1", 0)
    try:
        client = CyclerClient("127.0.0.1", sim.port, username="demo", password="demo",
                              retry_first=True)
    except BaseException:
        sim.close()
        raise
    return ArbinSource(client, device="demo-cycler", interval=1.0, owns_client=True), sim.close


def _mate3_demo() -> Tuple[Source, Callable[[], None]]:
    from ..mate3 import Mate3Client
    client = Mate3Client("sim://mate3", retry_first=True)  # a Modbus TCP simulator on loopback
    return Mate3Source(client, device="demo-mate3", interval=2.0, owns_client=True), \
        lambda: None


def _victron_demo() -> Tuple[Source, Callable[[], None]]:
    from ..victron import VictronMonitor, VictronSim
    sim = VictronSim(interval=1.0).start()  # a private dbus-daemon with moving demo services
    try:
        monitor = VictronMonitor(bus_address=sim.address, retry_first=True)
    except BaseException:
        sim.close()
        raise
    return VictronSource(monitor, device="demo-venus", owns_client=True), sim.close


#: family -> builder of (source on a loopback simulator, cleanup); used by ``record --demo``.
DEMO_BUILDERS: Dict[str, Callable[[], Tuple[Source, Callable[[], None]]]] = {
    "afterburner": _afterburner_demo,
    "arbin": _arbin_demo,
    "mate3": _mate3_demo,
    "victron": _victron_demo,
}


def _de1_and_scale_demo() -> Tuple[List[Source], Callable[[], None]]:
    """The DE1 and Skale simulators share one simulated radio; no Bluetooth adapter exists
    in a demo, so the clients use the simulator's in-process GATT link."""
    from ..ble.transport import SimTransport
    from ..de1.client import DE1Client
    from ..de1.sim import DE1Rig
    from ..scale.client import SkaleClient
    rig = DE1Rig(speed=1.0).start()
    try:
        de1 = DE1Client(rig.de1.address, transport=SimTransport(rig.host), retry_first=True)
        skale = SkaleClient(rig.skale.address, transport=SimTransport(rig.host),
                            retry_first=True)
    except BaseException:
        rig.close()
        raise
    return [DE1Source(de1, device="demo-de1", owns_client=True),
            ScaleSource(skale, device="demo-skale", owns_client=True)], rig.close


def demo_sources() -> Tuple[List[Source], List[Callable[[], None]], List[str]]:
    """Every family's simulator on 127.0.0.1 with a source following it.

    :returns: (sources, cleanups to run after the sources' clients are closed, notes on the
        families that could not start).
    """
    sources: List[Source] = []
    cleanups: List[Callable[[], None]] = []
    notes: List[str] = []
    for family, build in DEMO_BUILDERS.items():
        try:
            source, cleanup = build()
        except Exception as exc:  # a family that is not installed or cannot start here
            notes.append(f"{family}: not recorded ({exc})")
            continue
        sources.append(source)
        cleanups.append(cleanup)
    try:
        ble_sources, ble_cleanup = _de1_and_scale_demo()
    except Exception as exc:
        notes.append(f"de1/scale: not recorded ({exc})")
    else:
        sources.extend(ble_sources)
        cleanups.append(ble_cleanup)
    return sources, cleanups, notes
