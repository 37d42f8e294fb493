from __future__ import annotations

from typing import Iterator

import pytest

from tests.recorder.services import Mosquitto


@pytest.fixture
def broker() -> Iterator[Mosquitto]:
    """A real mosquitto on a free loopback port, removed afterwards."""
    b = Mosquitto()
    try:
        yield b
    finally:
        b.destroy()
