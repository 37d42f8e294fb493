"""Recorder adapter of the Skale family (push)."""

from __future__ import annotations

from typing import Any

from ..sources import Emit, OnState, PushSource


class ScaleSource(PushSource):
    """Follows a :class:`~pyburnerkit.scale.client.SkaleClient` (push): every weight report
    (``weight_g``, ``average_flow_g_s``, ``median_flow_g_s``)."""

    family_name = "scale"

    def start(self, emit: Emit, on_state: OnState) -> None:
        super().start(emit, on_state)
        from ...scale.models import WeightReading

        def on_weight(event: Any) -> None:
            self.emit([("", "weight_g", event.weight_g, "g"),
                       ("", "average_flow_g_s", event.average_flow_g_s, "g/s"),
                       ("", "median_flow_g_s", event.median_flow_g_s, "g/s")])

        self._subscriptions.append(self.client.subscribe(on_weight, WeightReading))
        self._follow_connection()
        if not self._connect_in_background():
            self.state("connected")
