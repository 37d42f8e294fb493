"""OutBack Mate3/Mate3s over Modbus TCP (SunSpec blocks).

:class:`Mate3Client` (needs ``pip install "pyburnerkit[mate3]"``) reads and writes the whole
OutBack system; ``pyburnerkit.mate3.codec`` is the pure register codec and :class:`Mate3Sim` a
Modbus TCP simulator of a Mate3s. ``Mate3Client("sim://mate3")`` runs one in process.
"""

from typing import TYPE_CHECKING, Any

from .models import (BlockInfo, Device, DeviceKind, DeviceMovedError, EnumValue, FieldValue,
                     Flags, Layout, Mate3System, SystemUpdated)

if TYPE_CHECKING:  # type checkers and IDEs see the real classes; at runtime they stay lazy
    from .client import Mate3Client
    from .sim import Mate3Sim

__all__ = ["Mate3Client", "Mate3Sim", "BlockInfo", "Device", "DeviceKind", "DeviceMovedError",
           "EnumValue", "FieldValue", "Flags", "Layout", "Mate3System", "SystemUpdated"]


def __getattr__(name: str) -> Any:
    # The client and the simulator load on first use: importing the models (the recorder,
    # the CLI's help) then costs neither the session machinery nor the simulator's server.
    if name == "Mate3Client":
        from .client import Mate3Client
        return Mate3Client
    if name == "Mate3Sim":
        from .sim import Mate3Sim
        return Mate3Sim
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
