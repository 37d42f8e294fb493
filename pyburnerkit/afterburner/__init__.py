"""Afterburner (Ray Jones) diesel-heater controller over its WebSocket JSON interface.

Quick start (no hardware: ``sim://`` runs the built-in simulator in process)::

    from pyburnerkit.afterburner import AfterburnerClient

    with AfterburnerClient("sim://", allow_writes=True) as heater:   # or "192.168.4.1", ...
        print(heater.status.temperature_c, heater.status.run_state)
        heater.set_desired_temperature(21)     # refused without allow_writes=True

Every method that changes the heater needs ``allow_writes=True``; only stopping it
(``stop()``) and stopping pump priming are always allowed.

The client needs the ``afterburner`` extra (websocket-client). pyBurner's names live in
:mod:`pyburnerkit.afterburner.compat`.
"""

from typing import TYPE_CHECKING

from .models import (Bluewire, DemandMode, ErrorState, HeaterStatus, RunState, StartRefused,
                     StatusChanged, SystemInfo, ThermostatMethod, Timer, TimerChanged)

if TYPE_CHECKING:  # type checkers and IDEs see the real classes; at run time they stay lazy
    from .client import AfterburnerClient
    from .sim import AfterburnerSim

__all__ = ["AfterburnerClient", "AfterburnerSim", "HeaterStatus", "SystemInfo", "Timer",
           "RunState", "ErrorState", "ThermostatMethod", "DemandMode", "Bluewire",
           "StatusChanged", "TimerChanged", "StartRefused"]


def __getattr__(name: str) -> object:
    # Lazy, so the models import without websocket-client installed.
    if name == "AfterburnerClient":
        from .client import AfterburnerClient
        return AfterburnerClient
    if name == "AfterburnerSim":
        from .sim import AfterburnerSim
        return AfterburnerSim
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
