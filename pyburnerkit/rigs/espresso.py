"""A DE1 and a Skale II on one simulated bench: what ``pyburnerkit sim de1``, the DE1 demo and
the shot examples run.

The DE1 pours into the bench's cup and the Skale weighs it, so a shot sequencer stopping at a
weight sees the same world a real machine and scale would show it. Each device is its family's
own simulated peripheral; this rig, above both families, is where they meet.

Reach the devices through pygatt (``start()`` listens on 127.0.0.1; put the directory
:meth:`~pyburnerkit.ble.rig.SimRig.tool_dir` writes first on ``PATH``), or in process with
``transport=rig.transport()``::

    with DE1Rig(speed=4.0) as rig:
        de1 = DE1Client(rig.de1.address, transport=rig.transport(), allow_remote_start=True)
        scale = SkaleClient(rig.skale.address, transport=rig.transport(), time_scale=4.0)

A single device in process needs no rig: ``DE1Client("sim://")``, ``SkaleClient("sim://")``.
"""

from __future__ import annotations

from typing import Any, Callable, ClassVar, Mapping, Optional

from ..ble.rig import flag
from ..de1.sim import DE1Sim
from ..scale.sim import SkalePeripheral

__all__ = ["DE1Rig"]


class DE1Rig(DE1Sim):
    """A simulated radio with a DE1 (``.de1``) and, unless ``with_scale=False``, a Skale II
    (``.skale``, else None) on one bench.

    Parameters as for :class:`~pyburnerkit.de1.sim.DE1Sim` (``speed``, ``firmware_build``,
    ``ghc_active``, ``seed``, DE1 model options; ``de1_address`` is its ``address``), and:

    :param skale_address: the Skale's address (default: the Skale simulator's own).
    :param with_scale: put a Skale on the bench.
    :raises ConfigurationError: ``speed`` out of range.

    The constructor does no I/O.
    """

    OPTIONS: ClassVar[Mapping[str, Callable[[str], Any]]] = {
        **DE1Sim.OPTIONS, "skale_address": str, "with_scale": flag}

    def __init__(self, *, speed: float = 1.0, firmware_build: int = 1333,
                 ghc_active: bool = False, de1_address: Optional[str] = None,
                 skale_address: Optional[str] = None, seed: Optional[int] = None,
                 with_scale: bool = True, **de1_options: Any) -> None:
        if de1_address is not None:
            de1_options["address"] = de1_address
        super().__init__(speed=speed, firmware_build=firmware_build, ghc_active=ghc_active,
                         seed=seed, **de1_options)
        self.skale: Optional[SkalePeripheral] = None
        if with_scale:
            address = (skale_address,) if skale_address else ()  # else the Skale's default
            self.skale = self.add(SkalePeripheral(*address, bench=self.bench, seed=seed))
