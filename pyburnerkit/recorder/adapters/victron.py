"""Recorder adapter of the Victron family (push)."""

from __future__ import annotations

from typing import Any, Callable, Dict, List, Mapping, Tuple

from ..sources import Emit, OnState, PushSource, Reading, Source


_VICTRON_UNITS = {"Voltage": "V", "V": "V", "Current": "A", "I": "A", "Power": "W",
                  "Temperature": "°C", "Soc": "%", "ConsumedAmphours": "Ah", "TimeToGo": "s",
                  "Forward": "kWh", "Reverse": "kWh", "User": "kWh", "System": "kWh",
                  "Frequency": "Hz", "F": "Hz", "P": "W"}
#: the D-Bus paths that identify a service's product (Home Assistant's device block)
_VICTRON_INFO = (("model", "/ProductName"), ("serial_number", "/Serial"),
                 ("sw_version", "/FirmwareVersion"), ("hw_version", "/HardwareVersion"))


class VictronSource(PushSource):
    """Follows a :class:`~pyburnerkit.victron.VictronMonitor` (push): every ``ValuesChanged``
    becomes readings with channel = the D-Bus service (``com.victronenergy.battery.ttyO1``)
    and field = the D-Bus path (``/Dc/0/Voltage``), as venus-grafana and dbus-flashmq name
    them. Invalid values (empty arrays on the bus) are skipped."""

    family_name = "victron"

    @classmethod
    def _make_client(cls, url: str, options: Dict[str, Any]) -> Any:
        from ...victron import VictronMonitor
        # "system", "session", an address or "sim://"; "default" (or nothing) picks the bus
        # as Venus programs do
        return VictronMonitor(None if url in ("", "default") else url, **options)

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
        from ...victron import ServiceAdded, ValuesChanged
        client = self.client

        def on_values(event: Any) -> None:
            self.emit(self._readings(event.service, event.values))

        def on_added(event: Any) -> None:
            self.emit(self._readings(event.service.name, event.service.values))

        self._subscriptions.append(client.subscribe(on_values, ValuesChanged))
        # what the monitor scans when a service appears (at a connect in the background, a
        # reconnection, a service started later) comes with no ValuesChanged
        self._subscriptions.append(client.subscribe(on_added, ServiceAdded))
        self._follow_connection()
        if not self._connect_in_background():
            # connected before we subscribed: its ServiceAdded events are gone
            self.state("connected")
            self._emit_scanned()

    def _emit_scanned(self) -> None:
        client = self.client
        for name in client.services():
            info = client.service(name)
            if info is not None:
                self.emit(self._readings(name, info.values))

    def device_info(self, channel: str) -> Dict[str, str]:
        """A service's product name, serial and versions from its D-Bus values; the service
        is named by its class and instance (``battery ttyO1``), or its ``/CustomName``."""
        if not channel:
            return {}
        parts = channel.split(".")
        out = {"name": " ".join(parts[2:]) if len(parts) > 2 else channel}
        info = self.client.service(channel)
        values: Mapping[str, Any] = getattr(info, "values", None) or {}
        for key, path in _VICTRON_INFO + (("name", "/CustomName"),):
            item = values.get(path)
            value = getattr(item, "value", item)
            if value not in (None, "", [], ()):
                out[key] = str(value)
        return out


def demo_sources() -> Tuple[List[Source], Callable[[], None]]:
    """A source on the in-process simulator, and the cleanup to run after its client closed
    (``pyburnerkit record --demo``): nothing, as the monitor owns its simulator."""
    from ...victron import VictronMonitor
    # a private dbus-daemon with moving demo services, started on connect, closed with it
    monitor = VictronMonitor("sim://?interval=1", retry_first=True)
    return [VictronSource(monitor, device="demo-venus", owns_client=True)], lambda: None
