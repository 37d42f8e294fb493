"""Recorder adapter of the Afterburner family (push)."""

from __future__ import annotations

from typing import Any, Callable, List, Mapping, Optional, Tuple

from ..samples import FieldMeta, unit_for_name
from ..sources import Emit, OnState, PushSource, Reading, Source


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



class AfterburnerSource(PushSource):
    """Follows an :class:`~pyburnerkit.afterburner.AfterburnerClient` (push).

    Every changed key of every ``StatusChanged`` event becomes a reading under its wire name
    (``TempCurrent``, ``RunState``...), typed by the driver's codec; units come from the
    driver's field names (``temperature_c`` -> °C).
    """

    family_name = "afterburner"

    def __init__(self, client: Any, *, device: Optional[str] = None,
                 owns_client: bool = False) -> None:
        super().__init__(client, device=device, owns_client=owns_client)
        from ...afterburner import codec
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
        from ...afterburner.models import StatusChanged
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


def demo_sources() -> Tuple[List[Source], Callable[[], None]]:
    """A source on a loopback simulator, and the cleanup to run after its client closed
    (``pyburnerkit record --demo``)."""
    from ...afterburner import AfterburnerClient
    from ...afterburner.sim import AfterburnerSim
    sim = AfterburnerSim(tick=0.2, speed=30.0, seed=3).start("127.0.0.1", 0)
    try:
        client = AfterburnerClient(f"ws://127.0.0.1:{sim.port}/", retry_first=True)
    except BaseException:
        sim.close()
        raise
    source = AfterburnerSource(client, device="demo-heater", owns_client=True)
    return [source], sim.close
