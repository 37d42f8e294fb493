"""The client contract, run against the simulated Venus bus (a real private dbus-daemon).

The "device" is the simulator's solar charger on the bus; the client is a VictronMonitor.
A drop or restart is the dbus-daemon dying and coming back on the same socket path.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from typing import Any, Optional

from pyburnerkit.victron import VictronMonitor
from pyburnerkit.victron.sim import VictronSim

from .contract import ClientContract
from .harness import Harness


class VictronHarness(Harness):
    family = "victron"

    def __init__(self) -> None:
        self.sim: Optional[VictronSim] = None
        self.directory: Optional[str] = None
        self._mode = 1
        self._writes_before = 0
        self.address = ""

    def start(self) -> None:
        if self.directory is None:
            self.directory = tempfile.mkdtemp(prefix="pbk-victron-contract-")
        os.makedirs(self.directory, mode=0o700, exist_ok=True)   # again after a stop: same address
        self.sim = VictronSim(interval=0, directory=self.directory).start()
        self.address = self.sim.address

    def stop(self) -> None:
        if self.sim is not None:
            self._writes_before += self.sim.set_calls(VictronSim.SOLAR, "/Mode")
            self.sim.close()
            self.sim = None
        if self.directory is not None:
            # The socket goes with it: a client made now finds no bus at the old address.
            shutil.rmtree(self.directory, ignore_errors=True)

    def restart(self) -> None:
        assert self.sim is not None
        self.sim.restart()

    def make_client(self, **options: Any) -> VictronMonitor:
        address = self.address
        return VictronMonitor(address, allow_writes=True,
                              service_types={"com.victronenergy.solarcharger": None},
                              **options)

    def read(self, client: VictronMonitor, timeout: Any) -> Any:
        return client.read_value(VictronSim.SOLAR, "/Yield/Power", timeout=timeout)

    def write(self, client: VictronMonitor, timeout: Any) -> Any:
        self._mode = 4 if self._mode == 1 else 1
        return client.set_value(VictronSim.SOLAR, "/Mode", self._mode, timeout=timeout)

    def writes_received(self) -> int:
        assert self.sim is not None
        return self._writes_before + self.sim.set_calls(VictronSim.SOLAR, "/Mode")

    def hold_replies(self, seconds: float) -> None:
        assert self.sim is not None
        self.sim.hold_replies(seconds)

    def drop(self) -> None:
        assert self.sim is not None
        self.sim.drop()

    def silence(self, on: bool) -> None:
        assert self.sim is not None
        self.sim.silence(on)

    def has_fresh_data(self, client: VictronMonitor) -> bool:
        return (client.service(VictronSim.SOLAR) is not None
                and not client.is_stale(VictronSim.SOLAR))


class TestVictronContract(ClientContract):
    harness_class = VictronHarness
