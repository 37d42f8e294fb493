"""Victron Venus OS over D-Bus: publish services, watch and control them, use localsettings.

Quick start, no hardware: ``"sim://"`` runs the built-in simulated bus (a private
``dbus-daemon`` with localsettings and demo services) inside the monitor::

    from pyburnerkit.victron import VictronMonitor

    with VictronMonitor("sim://") as mon:          # or "system", "unix:path=...", ...
        print(mon.services())
        print(mon.get_value("com.victronenergy.battery.sim", "/Soc"))

Needs the ``victron`` extra (dbus-python) and the system's libglib-2.0; the simulator also
needs the ``dbus-daemon`` program (Debian package ``dbus``). Code written for the older
method names (``fetch_value``...) imports ``pyburnerkit.victron.compat`` instead.
"""

from typing import TYPE_CHECKING, Any

from .models import (ItemValue, NameTakenError, ServiceAdded, ServiceInfo, ServiceRemoved,
                     Setting, SettingsError, SetValueError, ValuesChanged, ValueWritten,
                     WriteRequested)

if TYPE_CHECKING:  # type checkers see the real classes; at runtime they load on first use
    from .client import VictronMonitor, VictronService, VictronSettings, WriteCompleted
    from .sim import VictronSim

__all__ = ["VictronService", "VictronMonitor", "VictronSettings", "VictronSim", "ItemValue",
           "ServiceInfo", "Setting", "ServiceAdded", "ServiceRemoved", "ValuesChanged",
           "WriteRequested", "ValueWritten", "WriteCompleted", "NameTakenError",
           "SettingsError", "SetValueError"]


def __getattr__(name: str) -> Any:  # lazy, so models import without dbus-python installed
    if name in ("VictronService", "VictronMonitor", "VictronSettings", "WriteCompleted"):
        from . import client
        return getattr(client, name)
    if name == "VictronSim":
        from .sim import VictronSim
        return VictronSim
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
