"""Decent DE1 espresso machine over BLE (pygatt).

``from pyburnerkit.de1 import DE1Client``; ``DE1Client("sim://")`` runs a simulated DE1 in
process (:class:`~pyburnerkit.de1.sim.DE1Sim`). Profiles are ``pyburnerkit.de1.profile``,
firmware ``pyburnerkit.de1.firmware``, the shot sequencer ``pyburnerkit.de1.sequencer``.
Importing this package does not import pygatt: the client and the simulator are imported on
first use (type checkers see them through the ``TYPE_CHECKING`` imports below).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .models import MachineState, Mode, StateInfo, SubState

if TYPE_CHECKING:
    from .client import DE1Client
    from .sim import DE1Sim

__all__ = ["DE1Client", "DE1Sim", "MachineState", "Mode", "StateInfo", "SubState"]


def __getattr__(name: str) -> Any:
    if name == "DE1Client":
        from .client import DE1Client
        return DE1Client
    if name == "DE1Sim":
        from .sim import DE1Sim
        return DE1Sim
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
