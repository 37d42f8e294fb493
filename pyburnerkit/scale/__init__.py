"""Atomax Skale II over BLE (pygatt): tare, display, units, weight stream with flow and period
estimation. ``from pyburnerkit.scale import SkaleClient``; ``SkaleClient("sim://")`` runs a
simulated Skale in process (:class:`~pyburnerkit.scale.sim.SkaleSim`).

Importing this package does not import pygatt: the client and the simulator are imported on
first use (type checkers see them through the ``TYPE_CHECKING`` imports below).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .models import ButtonPressed, ScaleInfo, TareSeen, WeightReading

if TYPE_CHECKING:
    from .client import SkaleClient
    from .sim import SkaleSim

__all__ = ["SkaleClient", "SkaleSim", "ButtonPressed", "ScaleInfo", "TareSeen", "WeightReading"]


def __getattr__(name: str) -> Any:
    if name == "SkaleClient":
        from .client import SkaleClient
        return SkaleClient
    if name == "SkaleSim":
        from .sim import SkaleSim
        return SkaleSim
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
