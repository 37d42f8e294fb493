"""Sources: the generic half of the recorder's device adapters.

Each family's adapter (a :class:`Source` subclass) lives in ``recorder/adapters/<family>.py``
or in the family's own distribution; the family registry (:mod:`pyburnerkit.families`) names
it, and :func:`adapt` / :func:`open_source` import it only when a device of that family is
recorded. This module keeps what every adapter shares.

A source turns a client's data into *readings* ``(channel, field, value, unit)``; the recorder
stamps them into :class:`~pyburnerkit.recorder.samples.Sample` objects. Two kinds:

* **push** sources (Afterburner, Victron, DE1/scale) subscribe to the client's events; their
  callback runs on the client's events thread and hands readings over without blocking;
* **poll** sources (Mate3, Arbin, :class:`CallableSource`) are read at an interval on a recorder
  thread, ``pyburnerkit-recorder-poll-<device>``.

A family registered in :mod:`pyburnerkit.families` brings its adapter along;
:func:`register_adapter` overrides it (or adds one) at run time. The client keeps reconnecting by
itself; a source only reports its connection state (``on_state``).
"""

from __future__ import annotations

import importlib
import logging
import threading
import weakref
from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional, Tuple

from .. import families as registry
from ..errors import ConfigurationError, PyBurnerKitError
from ..semantics import Entity, FieldTable
from .samples import FieldMeta, Labelled, unit_for_name

log = logging.getLogger(__name__)

#: (channel, field, value, unit), or (channel, field, value, unit, kind) from a source that
#: knows what kind of device sits on the channel (Mate3: ``charge_controller`` on port 3)
Reading = Tuple[Any, ...]
Emit = Callable[["Source", List[Reading]], None]
OnState = Callable[["Source", str, Optional[BaseException]], None]

__all__ = ["Source", "CallableSource", "PushSource", "PollSource", "AfterburnerSource",
           "ArbinSource", "Mate3Source", "VictronSource", "DE1Source", "ScaleSource", "adapt",
           "register_adapter", "adapter_class", "open_source", "demo_sources", "Reading",
           "meta_for", "dataclass_readings", "field_table", "table_lookup", "table_entity",
           "live_source", "DEVICE_INFO_KEYS"]


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


# --------------------------------------------------------------------------------- tables
_tables: Dict[str, Optional[FieldTable]] = {}
_tables_lock = threading.Lock()


def field_table(family: str) -> Optional[FieldTable]:
    """The semantic table (:class:`~pyburnerkit.semantics.FieldTable`) the family registry
    names for ``family``, or None when there is none: an unknown family, a family without a
    ``fields`` path, or a table module that cannot be imported (logged once).

    Loaded once per family and process; the first call imports the table on the calling
    thread, later calls only read a dict. Never raises.
    """
    with _tables_lock:
        if family in _tables:
            return _tables[family]
    table: Optional[FieldTable] = None
    try:
        entry = registry.get(family)
        if entry.fields:
            table = entry.load("fields")
    except ConfigurationError:  # not a registered family: its fields are unknown
        table = None
    except ImportError as exc:  # the family's table is not there (yet): every field unknown
        log.info("%s: no field table (%s); its fields are announced as unknown", family, exc)
    except Exception as exc:  # a broken plug-in table must not stop recording
        log.warning("%s: its field table failed to load (%s: %s); its fields are announced "
                    "as unknown", family, type(exc).__name__, exc)
    with _tables_lock:
        return _tables.setdefault(family, table)


def table_lookup(table: Optional[FieldTable], field: str,
                 channel: str = "") -> Optional[Entity]:
    """``table.lookup(field)``, asking with ``channel=`` a table whose meanings depend on the
    channel (Victron: the service type), named by its key when the entry has no name; None
    when there is no table or it does not know the field."""
    if table is None:
        return None
    if _takes_channel(type(table)):
        finder: Callable[..., Optional[Entity]] = table.lookup
        found = finder(field, channel=channel)
    else:
        found = table.lookup(field)
    if found is not None and not found.name:
        from dataclasses import replace
        found = replace(found, name=field)
    return found


_channel_lookup: Dict[type, bool] = {}


def _takes_channel(cls: type) -> bool:
    cached = _channel_lookup.get(cls)
    if cached is None:
        import inspect
        try:
            cached = "channel" in inspect.signature(getattr(cls, "lookup")).parameters
        except (TypeError, ValueError):
            cached = False
        _channel_lookup[cls] = cached
    return cached


def table_entity(family: str, field: str, channel: str = "") -> Optional[Entity]:
    """The entity the family's table gives ``field`` on ``channel``, or None (no table, or
    the table does not know the field)."""
    return table_lookup(field_table(family), field, channel)


#: the keys :meth:`Source.device_info` may return (Home Assistant's device block names)
DEVICE_INFO_KEYS = ("name", "model", "serial_number", "sw_version", "hw_version")

# the sources being recorded, by (family, device): sinks ask them what they know about the
# devices (serial number, firmware) without holding them alive
_live: "weakref.WeakValueDictionary[Tuple[str, str], Source]" = weakref.WeakValueDictionary()
_live_lock = threading.Lock()


def live_source(family: str, device: str) -> Optional["Source"]:
    """The started source that records ``device`` of ``family`` in this process, or None.
    Any thread; never blocks."""
    with _live_lock:
        return _live.get((family, device))


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
        with _live_lock:
            _live[(self.family, self.device)] = self

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
        with _live_lock:
            if _live.get((self.family, self.device)) is self:
                del _live[(self.family, self.device)]

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
        """How ``field`` is presented: from the family's semantic table when it knows the
        field (``diagnostic`` for anything not shown on a dashboard by default), else a guess
        from the unit. Called once per new field, on the thread that emitted it."""
        entity = table_entity(self.family, field, channel)
        if entity is not None:
            return FieldMeta(entity.unit or unit, entity.device_class, entity.state_class,
                             entity.category is not None or not entity.enabled, entity.name)
        # a field no table knows is a disabled diagnostic (semantics.UNKNOWN); the unit
        # still gives its classes
        numeric = isinstance(value, (int, float)) and not isinstance(value, bool)
        return meta_for(field, unit, numeric=numeric or isinstance(value, bool),
                        diagnostic=True)

    def device_info(self, channel: str) -> Dict[str, str]:
        """What the source knows about the physical device on ``channel`` (``""``: the
        device itself), for Home Assistant's device block: any of ``DEVICE_INFO_KEYS``
        (``serial_number``, ``sw_version``...). Reads the client's caches: never blocks;
        any thread. The base class knows nothing."""
        return {}

    # -- helpers for subclasses -------------------------------------------------------------
    def emit(self, readings: List[Reading]) -> None:
        emit = self._emit
        if emit is not None and readings:
            emit(self, readings)

    def state(self, state: str, error: Optional[BaseException] = None) -> None:
        cb = self._on_state
        if cb is not None:
            cb(self, state, error)

    def _follow_connection(self, on_connected: Optional[Callable[[], None]] = None) -> None:
        """Report the client's connection state changes (clients of every family have them).

        ``on_connected`` runs after each report of ``connected`` (a connect in the background,
        every reconnection), on the client's event thread: a source emits there what the
        client read at connect and announces no event for (a scan, a battery level)."""
        from ..types import ConnectionStateChanged
        client = self.client
        if client is None or not hasattr(client, "subscribe"):
            return

        def on_change(event: Any) -> None:
            self.state(event.state.value, event.error)
            if on_connected is not None and event.state.value == "connected":
                on_connected()

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
        return [tuple(r) for r in data]



# --------------------------------------------------------------------------------- shared
def retrying_options(options: Mapping[str, Any]) -> Dict[str, Any]:
    """Client options for a configured source: a device that is not up yet is retried."""
    opts = dict(options)
    opts.setdefault("retry_first", True)
    return opts


class PushSource(Source):
    """A source that follows one client's events; subclasses name their family, whose
    registered client factory builds the client of a configured source."""

    kind = "push"
    family_name = ""

    def __init__(self, client: Any, *, device: Optional[str] = None,
                 owns_client: bool = False) -> None:
        super().__init__(self.family_name, device or endpoint_id(client), client=client,
                         owns_client=owns_client)

    @classmethod
    def from_config(cls, url: str, device: Optional[str], options: Mapping[str, Any]
                    ) -> "PushSource":
        return cls(cls._make_client(url, retrying_options(options)), device=device,
                   owns_client=True)

    @classmethod
    def _make_client(cls, url: str, options: Dict[str, Any]) -> Any:
        return registry.get(cls.family_name).load("client")(url, **options)


def dataclass_readings(obj: Any, channel: str, skip: Iterable[str] = ()) -> List[Reading]:
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


class PollSource(Source):
    """Shared parts of the request/response families (Arbin, Mate3)."""

    kind = "poll"
    default_interval = 1.0

    def __init__(self, family: str, client: Any, *, device: Optional[str],
                 interval: Optional[float], owns_client: bool) -> None:
        super().__init__(family, device or endpoint_id(client), client=client,
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


def endpoint_id(client: Any) -> str:
    return str(getattr(client, "endpoint", None) or "device")



# --------------------------------------------------------------------------------- lookup
#: run-time overrides: family -> "module:Class" (checked before the registry)
_ADAPTERS: Dict[str, str] = {}


def register_adapter(family: str, target: str) -> None:
    """Use ``"package.module:Class"`` as the adapter for ``family``, over what the family
    registry says (a family registered through an entry point needs no call)."""
    if ":" not in target:
        raise ConfigurationError(f"adapter must be 'module:Class', got {target!r}")
    _ADAPTERS[family] = target


def _adapter_path(family: str) -> Optional[str]:
    if family in _ADAPTERS:
        return _ADAPTERS[family]
    for entry in registry.families():
        if entry.name == family:
            return entry.recorder
    return None


def adapter_class(family: str) -> Callable[..., Source]:
    """The adapter class of ``family``, imported now.

    :raises ConfigurationError: the family has no recorder adapter, or its adapter (a
        plug-in's, say) failed to import: the message names the family and the path.
    :raises BackendUnavailableError: the adapter needs an extra that is not installed.
    """
    target = _adapter_path(family)
    if target is None:
        raise ConfigurationError(
            f"no recorder adapter for family {family!r}; known: {', '.join(families())}")
    try:
        adapter: Callable[..., Source] = registry.load_path(target)
    except PyBurnerKitError:
        raise
    except Exception as exc:  # whatever a plug-in raises at import: one line, not a traceback
        raise ConfigurationError(f"the recorder adapter of family {family!r} ({target}) "
                                 f"failed to load: {type(exc).__name__}: {exc}") from exc
    return adapter


def families() -> List[str]:
    """The names of the families the recorder can adapt, sorted."""
    names = set(_ADAPTERS) | {f.name for f in registry.families() if f.recorder}
    return sorted(names)


def adapt(item: Any) -> Source:
    """A :class:`Source` for ``item``: a Source as is, else a client adapted by its family."""
    if isinstance(item, Source):
        return item
    family = getattr(item, "family", None)
    if family is None:
        raise ConfigurationError(f"{item!r} is neither a Source nor a pyburnerkit client")
    source: Source = adapter_class(family)(item)
    return source


def open_source(family: str, url: str, *, device: Optional[str] = None,
                interval: Optional[float] = None,
                options: Optional[Mapping[str, Any]] = None) -> Source:
    """Build a client of ``family`` for ``url`` wrapped in its adapter (used by the config)."""
    cls = adapter_class(family)
    factory = getattr(cls, "from_config", None)
    if factory is None:
        raise ConfigurationError(f"the {family} adapter cannot be built from a config")
    source = factory(url, device, dict(options or {}))
    if not isinstance(source, Source):  # a plug-in's from_config that returns something else
        raise ConfigurationError(f"the {family} adapter's from_config returned "
                                 f"{type(source).__name__}, not a recorder Source")
    if interval is not None:
        source.interval = _check_interval(interval)
    return source


# --------------------------------------------------------------------------------- demo
def demo_sources() -> Tuple[List[Source], List[Callable[[], None]], List[str]]:
    """Every registered family's recorder demo: its simulator on 127.0.0.1 with a source
    following it. Blocks until each simulator listens (not until its client connected).

    :returns: (sources, cleanups to run after the sources' clients are closed, notes on the
        families that could not start).
    """
    sources: List[Source] = []
    cleanups: List[Callable[[], None]] = []
    notes: List[str] = []
    for family in registry.families():
        if not family.recorder_demo:
            continue
        try:
            built, cleanup = family.load("recorder_demo")()
        except Exception as exc:  # a family that is not installed or cannot start here
            notes.append(f"{family.name}: not recorded ({exc})")
            continue
        sources.extend(built)
        cleanups.append(cleanup)
    return sources, cleanups, notes


# --------------------------------------------------------------------------------- old names
#: adapters that lived in this module before they moved next to their family
_MOVED = {"AfterburnerSource": "afterburner",
          "ArbinSource": "arbin", "Mate3Source": "mate3", "VictronSource": "victron",
          "DE1Source": "de1", "ScaleSource": "scale"}
#: the name the Mate3 adapter's labelled numbers had here (now samples.Labelled)
_Labelled = Labelled


def __getattr__(name: str) -> Any:
    # lazy: the adapters import this module, so it cannot import them at the top
    family = _MOVED.get(name)
    if family is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__package__}.adapters.{family}"), name)
