"""The service's view of its devices: the latest value of every field, the connection state
and the last update time of each device, fed by the recorder's public events
(:class:`~pyburnerkit.recorder.SamplesReceived`,
:class:`~pyburnerkit.recorder.DeviceStateChanged`), so the HTTP API shows the same field names
and units the recorder stores.

Fields are keyed ``<field>`` on a device without channels and ``<channel>/<field>`` otherwise
(``3/battery_voltage``, ``com.victronenergy.battery.ttyO1/Dc/0/Voltage``).

The hub is updated on the recorder's events thread and read by any thread without waiting on
a device. Event streams (SSE) wait on it with :meth:`DeviceHub.wait` and end at once when the
hub closes.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Deque, Dict, List, Optional, Tuple

from ..errors import ConfigurationError
from ..recorder.secrets import redact_dsn, redact_text

__all__ = ["DeviceHub", "DeviceEntry", "field_key"]

#: events kept per device for streams that fall behind (older ones: a full snapshot instead)
BACKLOG = 256


def field_key(channel: str, name: str) -> str:
    """The API's key of a field (see the module docs)."""
    if not channel:
        return name
    return f"{channel}/{name}".replace("//", "/")


@dataclass
class DeviceEntry:
    """One device as the API shows it (mutated only under the hub's lock): what
    :meth:`~pyburnerkit.service.DeviceHub.entry` returns and the other
    :class:`~pyburnerkit.service.DeviceHub` methods take. Read its fields through the hub
    (:meth:`~pyburnerkit.service.DeviceHub.state`), which copies them under the lock."""

    #: the device's name in the API (its id in the config)
    name: str
    #: its family (``"mate3"``, ``"de1"``...)
    family: str
    #: the device id its samples carry (the same as ``name``)
    device: str
    #: the recorder source that feeds it
    source: Any
    #: the connection state of the last event (``"idle"`` before any)
    connection: str = "idle"
    #: the last connection error (redacted), or None
    error: Optional[str] = None
    #: UTC epoch seconds of the newest value, or None
    last_update: Optional[float] = None
    #: key (``<field>`` or ``<channel>/<field>``) -> ``{"channel", "field", "name", "value",
    #: "unit", "text", "timestamp"}`` of every field seen
    fields: Dict[str, Dict[str, Any]] = field(default_factory=dict)
    #: key -> (channel, field) of every field seen
    places: Dict[str, Tuple[str, str]] = field(default_factory=dict)
    #: sequence number of the newest event (the cursor
    #: :meth:`~pyburnerkit.service.DeviceHub.wait` takes)
    seq: int = 0
    #: the newest events as ``(seq, kind, data)``, at most ``BACKLOG`` (256)
    backlog: Deque[Tuple[int, str, Dict[str, Any]]] = field(
        default_factory=lambda: deque(maxlen=BACKLOG))

    @property
    def client(self) -> Any:
        """The source's client (None for a source without one)."""
        return getattr(self.source, "client", None)

    @property
    def endpoint(self) -> str:
        """The client's endpoint with any password removed ("" without a client)."""
        client = self.client
        endpoint = getattr(client, "endpoint", None)
        return redact_dsn(str(endpoint)) if endpoint is not None else ""

    def live_connection(self) -> str:
        """The client's own connection state when it has one, else the last event's."""
        state = getattr(self.client, "connection_state", None)
        value = getattr(state, "value", None)
        return str(value) if isinstance(value, str) else self.connection


class DeviceHub:
    """The state cache behind the API. Thread-safe; nothing in it blocks on a device.

    :param sources: the recorder's sources; each becomes a device named by its device id.
    :raises ConfigurationError: two sources of different families share a device id (the API
        names devices by id alone).
    """

    def __init__(self, sources: List[Any]) -> None:
        self._cond = threading.Condition()
        self._closed = False
        self.devices: Dict[str, DeviceEntry] = {}
        for source in sources:
            name = str(source.device)
            if name in self.devices:
                other = self.devices[name]
                raise ConfigurationError(
                    f"two devices are called {name!r} ({other.family} and {source.family}); "
                    f"give each a distinct id in the config")
            entry = DeviceEntry(name, str(source.family), name, source)
            entry.connection = entry.live_connection()
            self.devices[name] = entry

    # ----------------------------------------------------------------- recorder side
    def on_event(self, event: Any) -> None:
        """The recorder's callback (its events thread): samples and connection changes."""
        samples = getattr(event, "samples", None)
        if samples is not None:
            self._on_samples(samples)
            return
        state = getattr(event, "state", None)
        if isinstance(state, str):
            error = getattr(event, "error", None)
            self._on_state(str(event.family), str(event.device), state, error)

    def _on_samples(self, samples: Any) -> None:
        by_device: Dict[str, List[Any]] = {}
        for s in samples:
            by_device.setdefault(str(s.device), []).append(s)
        with self._cond:
            for name, batch in by_device.items():
                entry = self.devices.get(name)
                if entry is None or entry.family != batch[0].family:
                    continue  # recorded by hand (Recorder.record) for no known device
                changed: Dict[str, Dict[str, Any]] = {}
                for s in batch:
                    key = field_key(s.channel, s.field)
                    entry.places[key] = (s.channel, s.field)
                    item = entry.fields.get(key)
                    if item is None:
                        item = {"channel": s.channel, "field": s.field,
                                "name": _friendly(entry.family, s.channel, s.field)}
                        entry.fields[key] = item
                    item["value"] = s.value
                    item["unit"] = s.unit
                    item["text"] = s.text
                    item["timestamp"] = s.timestamp
                    changed[key] = {"value": s.value, "unit": s.unit, "text": s.text,
                                    "timestamp": s.timestamp}
                    if entry.last_update is None or s.timestamp > entry.last_update:
                        entry.last_update = s.timestamp
                self._push(entry, "samples", {"device": name, "fields": changed})
            self._cond.notify_all()

    def _on_state(self, family: str, device: str, state: str,
                  error: Optional[BaseException]) -> None:
        with self._cond:
            entry = self.devices.get(device)
            if entry is None or entry.family != family:
                return
            entry.connection = state
            entry.error = redact_text(str(error)) if error is not None else None
            self._push(entry, "state", {"device": device, "connection": state,
                                        "error": entry.error})
            self._cond.notify_all()

    def confirm(self, entry: DeviceEntry, key: str, value: Any,
                text: Optional[str] = None) -> None:
        """A setting the device just confirmed (a PATCH through the API): shown at once, so
        a GET right after the change reads it, before the next reading of the device
        arrives. Any thread; never blocks on I/O."""
        now = time.time()
        with self._cond:
            item = entry.fields.get(key)
            if item is None:
                return  # never read from the device: the next reading brings it
            item["value"] = value
            item["text"] = text
            item["timestamp"] = now
            entry.last_update = now
            self._push(entry, "samples", {"device": entry.name, "fields": {key: {
                "value": value, "unit": item.get("unit", ""), "text": text,
                "timestamp": now}}})
            self._cond.notify_all()

    @staticmethod
    def _push(entry: DeviceEntry, kind: str, data: Dict[str, Any]) -> None:
        entry.seq += 1
        entry.backlog.append((entry.seq, kind, data))

    # ----------------------------------------------------------------- API side
    def entry(self, name: str) -> DeviceEntry:
        """The device called ``name`` (never blocks).

        :raises KeyError: no such device.
        """
        return self.devices[name]

    def summary(self, entry: DeviceEntry) -> Dict[str, Any]:
        with self._cond:
            return {"name": entry.name, "family": entry.family, "endpoint": entry.endpoint,
                    "connection": entry.live_connection(), "last_update": entry.last_update,
                    "writes_allowed": bool(getattr(entry.client, "allow_writes", False)),
                    "href": f"/api/v1/devices/{entry.name}"}

    def listing(self) -> List[Dict[str, Any]]:
        return [self.summary(entry) for entry in self.devices.values()]

    def state(self, entry: DeviceEntry) -> Dict[str, Any]:
        """The full cached state of one device (never blocks on it)."""
        out = self.summary(entry)
        with self._cond:
            connection = out["connection"]
            out["stale"] = connection != "connected"
            out["error"] = entry.error if connection != "connected" else None
            out["fields"] = {k: dict(v) for k, v in entry.fields.items()}
        return out

    def place(self, entry: DeviceEntry, key: str) -> Optional[Tuple[str, str]]:
        with self._cond:
            return entry.places.get(key)

    def cursor(self, entry: DeviceEntry) -> int:
        with self._cond:
            return entry.seq

    def wait(self, entry: DeviceEntry, after: int, timeout: float
             ) -> Tuple[int, List[Tuple[str, Dict[str, Any]]], bool]:
        """Block until ``entry`` has events after sequence number ``after``, the hub closes, or
        ``timeout`` seconds pass.

        :returns: ``(cursor, events, resync)``: the new cursor, the events after ``after``
            (oldest first) and whether some were lost to the backlog's bound (then the caller
            should send a full snapshot). No events and the same cursor on timeout or close.
        """
        with self._cond:
            if not self._closed and entry.seq <= after:
                self._cond.wait_for(lambda: self._closed or entry.seq > after, timeout)
            if entry.seq <= after:
                return after, [], False
            events = [(kind, data) for seq, kind, data in entry.backlog if seq > after]
            first = entry.backlog[0][0] if entry.backlog else entry.seq + 1
            return entry.seq, events, first > after + 1

    @property
    def closed(self) -> bool:
        return self._closed

    def close(self) -> None:
        """Wake every waiting stream; they end. Idempotent, any thread."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()


def _friendly(family: str, channel: str, name: str) -> str:
    try:
        from ..recorder.sources import table_entity
        entity = table_entity(family, name, channel)
    except Exception:  # a family without a table (a plug-in): the key names it
        entity = None
    return entity.name if entity is not None and entity.name else name
