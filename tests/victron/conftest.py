"""Fixtures: a private dbus-daemon (the real one) with the simulated Venus services on it."""

from __future__ import annotations

import shutil
from typing import Any, Iterator

import pytest

from pyburnerkit.victron import VictronMonitor
from pyburnerkit.victron.sim import VictronSim


@pytest.fixture
def sim() -> Iterator[VictronSim]:
    """A private dbus-daemon with localsettings and the demo services (values move only when a
    test says so: interval=0). Fails, never skips, when dbus-daemon is missing."""
    if shutil.which("dbus-daemon") is None:
        pytest.fail("dbus-daemon is not installed (apt-get install dbus): the Victron tests "
                    "need the real daemon")
    simulator = VictronSim(interval=0)
    simulator.start()
    try:
        yield simulator
    finally:
        simulator.close()


@pytest.fixture
def monitor(sim: VictronSim, callback_errors) -> Iterator[VictronMonitor]:
    mon = VictronMonitor(sim.address, allow_writes=True, timeout=5.0,
                         on_callback_error=lambda exc, ev: callback_errors.append(exc))
    mon.connect()
    try:
        yield mon
    finally:
        mon.close()


@pytest.fixture
def raw(sim: VictronSim) -> Iterator[Any]:
    """A plain loop-less dbus-python connection, as a third-party script would use."""
    import dbus.bus
    conn = dbus.bus.BusConnection(sim.address)
    try:
        yield conn
    finally:
        conn.close()
