"""Shared test fixtures for the BLE families: a simulated DE1 + Skale behind fake
``gatttool``/``hcitool`` programs first on PATH, so unmodified pygatt drives them."""

from __future__ import annotations

import os
import shutil
import tempfile
from typing import Any, Iterator, Optional, Tuple

import pytest

from pyburnerkit.ble.transport import SimTransport
from pyburnerkit.de1.client import DE1Client
from pyburnerkit.rigs.espresso import DE1Rig
from pyburnerkit.scale.client import SkaleClient

#: Tests run the simulated world this many times faster than real time.
SPEED = 10.0
#: pexpect's pause before each gatttool command in most tests (pygatt keeps 50 ms; one test
#: runs with pygatt's default).
SEND_DELAY = 0.002


class RigOnPath:
    """A started rig plus a temp dir with the fake tools, put first on PATH (restored after)."""

    def __init__(self, **rig_options: Any) -> None:
        rig_options.setdefault("speed", SPEED)
        self.options = rig_options
        self.rig = DE1Rig(**rig_options).start()
        self.port = self.rig.host.port
        self.dir = tempfile.mkdtemp(prefix="pbk-ble-")
        self.rig.tool_dir(self.dir)
        self._old_path: Optional[str] = os.environ.get("PATH")
        os.environ["PATH"] = self.dir + os.pathsep + (self._old_path or "")

    @property
    def de1(self) -> Any:
        return self.rig.de1

    @property
    def skale(self) -> Any:
        return self.rig.skale

    def restart(self) -> None:
        """Power-cycle the simulated radio on the same port (the fake tools keep working)."""
        self.rig.close()
        self.rig = DE1Rig(**self.options).start(port=self.port)

    def stop_rig(self) -> None:
        self.rig.close()

    def close(self) -> None:
        self.rig.close()
        if self._old_path is not None:
            os.environ["PATH"] = self._old_path
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture
def rig_on_path() -> Iterator[RigOnPath]:
    r = RigOnPath()
    try:
        yield r
    finally:
        r.close()


@pytest.fixture
def rig() -> Iterator[DE1Rig]:
    """An in-process rig (no fake tools) for fast tests with :class:`SimTransport`."""
    r = DE1Rig(speed=SPEED).start(listen=False)
    try:
        yield r
    finally:
        r.close()


def sim_transport(rig: DE1Rig) -> SimTransport:
    """The expert hook: an in-process link to a rig shared by several clients."""
    return rig.transport()


@pytest.fixture
def pair(rig: DE1Rig) -> Iterator[Tuple[DE1Client, SkaleClient]]:
    """A connected, awake DE1 client (writes and remote start allowed) and Skale client on
    ``rig``, over the in-process transport."""
    de1 = DE1Client(rig.de1.address, transport=sim_transport(rig), allow_remote_start=True,
                    allow_writes=True)
    scale = SkaleClient(rig.skale.address, transport=sim_transport(rig), time_scale=SPEED,
                        allow_writes=True)
    try:
        de1.connect()
        scale.connect()
        de1.wake()
        yield de1, scale
    finally:
        de1.close()
        scale.close()
