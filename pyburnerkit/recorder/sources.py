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
from typing import (Any, Callable, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple,
                    Type)

from ..errors import ConfigurationError
from .samples import FieldMeta, unit_for_name

log = logging.getLogger(__name__)

#: (channel, field, value, unit)
Reading = Tuple[str, str, Any, str]
Emit = Callable[["Source", List[Reading]], None]
OnState = Callable[["Source", str, Optional[BaseException]], None]

__all__ = ["Source", "CallableSource", "AfterburnerSource", "adapt", "register_adapter",
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
    "Ah": (None, "total_increasing"), "%": (None, "measurement"),
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


class AfterburnerSource(Source):
    """Follows an :class:`~pyburnerkit.afterburner.AfterburnerClient` (push).

    Every changed key of every ``StatusChanged`` event becomes a reading under its wire name
    (``TempCurrent``, ``RunState``...), typed by the driver's codec; units come from the
    driver's field names (``temperature_c`` -> °C).
    """

    kind = "push"

    def __init__(self, client: Any, *, device: Optional[str] = None,
                 owns_client: bool = False) -> None:
        super().__init__("afterburner", device or _endpoint_id(client), client=client,
                         owns_client=owns_client)
        from ..afterburner import codec
        self._codec = codec

    @classmethod
    def from_config(cls, url: str, device: Optional[str], options: Mapping[str, Any]
                    ) -> "AfterburnerSource":
        from ..afterburner import AfterburnerClient
        opts = dict(options)
        opts.setdefault("retry_first", True)
        client = AfterburnerClient(url, **opts)
        return cls(client, device=device, owns_client=True)

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


def _endpoint_id(client: Any) -> str:
    return str(getattr(client, "endpoint", None) or "device")


# --------------------------------------------------------------------------------- registry
#: family -> "module:Class" of its adapter; the module is imported only when used.
_ADAPTERS: Dict[str, str] = {
    "afterburner": "pyburnerkit.recorder.sources:AfterburnerSource",
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
