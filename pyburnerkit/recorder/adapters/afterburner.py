"""Recorder adapter of the Afterburner family (push)."""

from __future__ import annotations

from typing import Any, Callable, Dict, List, Mapping, Optional, Tuple

from ..samples import unit_for_name
from ..sources import Emit, OnState, PushSource, Reading, Source



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

    def device_info(self, channel: str) -> Dict[str, str]:
        """The firmware version, once the controller reported its system group."""
        version = self.client.system_info.firmware_version
        return {"sw_version": str(version)} if version else {}


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
