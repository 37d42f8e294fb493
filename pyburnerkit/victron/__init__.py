"""Victron Venus OS over D-Bus: publish services, watch and control them, use localsettings.

Quick start against the built-in simulated bus (a private ``dbus-daemon``)::

    from pyburnerkit.victron import VictronMonitor, VictronSim

    with VictronSim() as sim, VictronMonitor(bus_address=sim.address) as mon:
        print(mon.services())
        print(mon.get_value("com.victronenergy.battery.sim", "/Soc"))

Needs the ``victron`` extra (dbus-python) and the system's libglib-2.0; the simulator also
needs the ``dbus-daemon`` program (Debian package ``dbus``).
"""

from .models import (ItemValue, NameTakenError, ServiceAdded, ServiceInfo, ServiceRemoved,
                     Setting, SettingsError, SetValueError, ValuesChanged, ValueWritten,
                     WriteRequested)

__all__ = ["VictronService", "VictronMonitor", "VictronSettings", "VictronSim", "ItemValue",
           "ServiceInfo", "Setting", "ServiceAdded", "ServiceRemoved", "ValuesChanged",
           "WriteRequested", "ValueWritten", "WriteCompleted", "NameTakenError",
           "SettingsError", "SetValueError"]


def __getattr__(name: str):  # lazy, so models import without dbus-python installed
    if name in ("VictronService", "VictronMonitor", "VictronSettings", "WriteCompleted"):
        from . import client
        return getattr(client, name)
    if name == "VictronSim":
        from .sim import VictronSim
        return VictronSim
    raise AttributeError(name)
