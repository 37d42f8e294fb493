"""Recorder adapter of the Victron family (push)."""

from __future__ import annotations

from typing import Any, Callable, Dict, List, Mapping, Tuple

from ..samples import FieldMeta
from ..sources import Emit, OnState, PushSource, Reading, Source


_VICTRON_UNITS = {"Voltage": "V", "V": "V", "Current": "A", "I": "A", "Power": "W",
                  "Temperature": "°C", "Soc": "%", "ConsumedAmphours": "Ah", "TimeToGo": "s",
                  "Forward": "kWh", "Reverse": "kWh", "User": "kWh", "System": "kWh",
                  "Frequency": "Hz", "F": "Hz", "P": "W"}
_VICTRON_DIAGNOSTIC = ("/Mgmt/", "/ProductId", "/FirmwareVersion", "/HardwareVersion",
                       "/DeviceInstance", "/ProductName", "/CustomName", "/Connected",
                       "/Serial", "/Settings/")


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
        from ...victron import ValuesChanged
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


def demo_sources() -> Tuple[List[Source], Callable[[], None]]:
    """A source on the in-process simulator, and the cleanup to run after its client closed
    (``pyburnerkit record --demo``): nothing, as the monitor owns its simulator."""
    from ...victron import VictronMonitor
    # a private dbus-daemon with moving demo services, started on connect, closed with it
    monitor = VictronMonitor("sim://?interval=1", retry_first=True)
    return [VictronSource(monitor, device="demo-venus", owns_client=True)], lambda: None
