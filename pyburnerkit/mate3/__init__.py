"""OutBack Mate3/Mate3s over Modbus TCP (SunSpec blocks).

:class:`Mate3Client` (needs ``pip install "pyburnerkit[mate3]"``) reads and writes the whole
OutBack system; ``pyburnerkit.mate3.codec`` is the pure register codec and :class:`Mate3Sim` a
Modbus TCP simulator of a Mate3s.
"""

from .models import (BlockInfo, Device, DeviceKind, DeviceMovedError, EnumValue, FieldValue,
                     Flags, Layout, Mate3System, SystemUpdated)

__all__ = ["Mate3Client", "Mate3Sim", "BlockInfo", "Device", "DeviceKind", "DeviceMovedError",
           "EnumValue", "FieldValue", "Flags", "Layout", "Mate3System", "SystemUpdated"]


def __getattr__(name):  # the client and simulator import pymodbus lazily
    if name == "Mate3Client":
        from .client import Mate3Client
        return Mate3Client
    if name == "Mate3Sim":
        from .sim import Mate3Sim
        return Mate3Sim
    raise AttributeError(name)
