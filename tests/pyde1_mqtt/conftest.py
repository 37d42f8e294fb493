"""Fixtures for pyDE1's outbound MQTT API: a real mosquitto, the simulated DE1 + Skale rig,
and clients on it. A missing mosquitto fails the tests (it is never skipped)."""

from __future__ import annotations

from typing import Iterator, List

import pytest

from pyburnerkit.service.pyde1_mqtt import Pyde1MqttPublisher

from ..ble.simrig import pair, rig  # noqa: F401  (pytest fixtures)
from ..recorder.services import Mosquitto


@pytest.fixture
def broker() -> Iterator[Mosquitto]:
    b = Mosquitto()
    try:
        yield b
    finally:
        b.destroy()


@pytest.fixture
def publishers() -> Iterator[List[Pyde1MqttPublisher]]:
    """Publishers a test made; each is closed afterwards (close is idempotent)."""
    made: List[Pyde1MqttPublisher] = []
    yield made
    for p in made:
        p.close()
