"""Decent DE1 espresso machine over BLE (pygatt).

``from pyburnerkit.de1.client import DE1Client``; the simulator is ``pyburnerkit.de1.sim``,
profiles ``pyburnerkit.de1.profile``, firmware ``pyburnerkit.de1.firmware``, the shot sequencer
``pyburnerkit.de1.sequencer``.
Importing this package does not import pygatt.
"""

from __future__ import annotations

from .models import MachineState, Mode, StateInfo, SubState

__all__ = ["DE1Client", "MachineState", "Mode", "StateInfo", "SubState"]


def __getattr__(name: str):
    if name == "DE1Client":
        from .client import DE1Client
        return DE1Client
    raise AttributeError(name)
