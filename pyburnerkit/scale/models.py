"""What a scale user sees: weight readings with flow, buttons, info."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from .._core.display import Displayable
from ..types import Event


@dataclass(frozen=True)
class WeightReading(Event, Displayable):
    """One weight report. ``weight_time`` is when the weight was true (arrival − sensor lag),
    on ``time.monotonic``; flows are g/s over the last ~10 periods (None until known)."""

    weight_g: float
    arrival_time: float
    weight_time: float
    average_flow_g_s: Optional[float] = None
    median_weight_g: Optional[float] = None
    median_flow_g_s: Optional[float] = None
    period_s: float = 0.1


@dataclass(frozen=True)
class ButtonPressed(Event, Displayable):
    button: int


@dataclass(frozen=True)
class TareSeen(Event, Displayable):
    """The scale reported (near) zero after a tare request."""


@dataclass(frozen=True)
class ScaleInfo(Displayable):
    model: str
    manufacturer: str
    firmware: str
    hardware: str
    software: str
    battery: int
