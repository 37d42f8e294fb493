"""Bluetooth UUID helpers shared by every BLE family's codec. Pure; no I/O."""

from __future__ import annotations

__all__ = ["uuid16"]


def uuid16(short: int) -> str:
    """The full lowercase 128-bit UUID of a 16-bit Bluetooth SIG-base UUID.

    pygatt and the simulated peripherals both key characteristics by this full, lowercase
    form, so every codec spells its UUIDs through this one function.
    """
    return f"0000{short:04x}-0000-1000-8000-00805f9b34fb"
