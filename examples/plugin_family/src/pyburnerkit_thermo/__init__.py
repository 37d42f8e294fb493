"""pyburnerkit-thermo: the Acme TR-1 thermometer/relay box as a pyburnerkit device family.

A worked example of a family that lives in its own distribution. Quick start against the
simulator::

    from pyburnerkit_thermo import ThermoClient

    with ThermoClient("sim://?speed=60", allow_writes=True) as box:
        print(box.read_status())
        box.set_relay(True)

Importing this package is cheap (the registry imports it through the entry point on every
``pyburnerkit`` start): the client and the simulator load on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .models import DEFAULT_PORT, DeviceInfo, ErrorCode, Status, StatusChanged

if TYPE_CHECKING:  # type checkers and IDEs see the real classes; at run time they stay lazy
    from .client import ThermoClient
    from .sim import ThermoSim

__version__ = "0.1.0"

__all__ = ["ThermoClient", "ThermoSim", "Status", "StatusChanged", "DeviceInfo", "ErrorCode",
           "DEFAULT_PORT"]


def __getattr__(name: str) -> Any:
    if name == "ThermoClient":
        from .client import ThermoClient
        return ThermoClient
    if name == "ThermoSim":
        from .sim import ThermoSim
        return ThermoSim
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
