"""Fixtures for the aiovelib ports: the Victron simulator on a real private dbus-daemon."""

from __future__ import annotations

import shutil
from typing import Iterator

import pytest

from pyburnerkit.victron.sim import VictronSim


@pytest.fixture
def victron_sim() -> Iterator[VictronSim]:
    """localsettings and the demo services on a private dbus-daemon; values move only when a
    test says so. Fails, never skips, when dbus-daemon is missing."""
    if shutil.which("dbus-daemon") is None:
        pytest.fail("dbus-daemon is not installed (apt-get install dbus): the aiovelib ports "
                    "need the real daemon")
    sim = VictronSim(interval=0)
    sim.start()
    try:
        yield sim
    finally:
        sim.close()
