"""Recorder adapter of the Skale family (push)."""

from __future__ import annotations

from typing import Any, Dict

from ..sources import Emit, OnState, PushSource


class ScaleSource(PushSource):
    """Follows a :class:`~pyburnerkit.scale.client.SkaleClient` (push): every weight report
    (``weight_g``, ``average_flow_g_s``, ``median_flow_g_s``), and the battery level the
    client reads at each connect (``battery``, %)."""

    family_name = "scale"

    def start(self, emit: Emit, on_state: OnState) -> None:
        super().start(emit, on_state)
        from ...scale.models import WeightReading

        def on_weight(event: Any) -> None:
            self.emit([("", "weight_g", event.weight_g, "g"),
                       ("", "average_flow_g_s", event.average_flow_g_s, "g/s"),
                       ("", "median_flow_g_s", event.median_flow_g_s, "g/s")])

        self._subscriptions.append(self.client.subscribe(on_weight, WeightReading))
        self._follow_connection(self._emit_battery)
        if not self._connect_in_background():
            self.state("connected")
            self._emit_battery()

    def _emit_battery(self) -> None:
        info = self.client.info
        battery = getattr(info, "battery", None)
        if battery is not None:
            self.emit([("", "battery", battery, "%")])

    def device_info(self, channel: str) -> Dict[str, str]:
        """Model and revisions from the Device Information service, read at connect."""
        info = self.client.info
        if info is None:
            return {}
        out = {"model": info.model, "sw_version": info.firmware, "hw_version": info.hardware}
        return {k: str(v) for k, v in out.items() if v}
