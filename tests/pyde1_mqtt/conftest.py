"""Fixtures for pyDE1's outbound MQTT API: a real mosquitto, the simulated DE1 + Skale rig,
and clients on it. A missing mosquitto fails the tests (it is never skipped)."""

from __future__ import annotations

from typing import Iterator, List, Tuple

import pytest

from pyburnerkit.de1.client import DE1Client
from pyburnerkit.rigs.espresso import DE1Rig
from pyburnerkit.scale.client import SkaleClient
from pyburnerkit.service.pyde1_mqtt import Pyde1MqttPublisher

from ..ble.simrig import SPEED, rig, sim_transport  # noqa: F401  (rig is a fixture)
from ..recorder.services import Mosquitto


@pytest.fixture
def broker() -> Iterator[Mosquitto]:
    b = Mosquitto()
    try:
        yield b
    finally:
        b.destroy()


@pytest.fixture
def pair(rig: DE1Rig) -> Iterator[Tuple[DE1Client, SkaleClient]]:  # noqa: F811
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


@pytest.fixture
def publishers() -> Iterator[List[Pyde1MqttPublisher]]:
    """Publishers a test made; each is closed afterwards (close is idempotent)."""
    made: List[Pyde1MqttPublisher] = []
    yield made
    for p in made:
        p.close()
