"""Atomax Skale II over BLE (pygatt): tare, display, units, weight stream with flow and period
estimation. Import :class:`SkaleClient` from ``pyburnerkit.scale.client``."""

from __future__ import annotations

from .models import ButtonPressed, ScaleInfo, TareSeen, WeightReading

__all__ = ["SkaleClient", "ButtonPressed", "ScaleInfo", "TareSeen", "WeightReading"]


def __getattr__(name: str):  # keep ``import pyburnerkit.scale`` free of pygatt
    if name == "SkaleClient":
        from .client import SkaleClient
        return SkaleClient
    raise AttributeError(name)
