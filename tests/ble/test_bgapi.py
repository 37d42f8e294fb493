"""The BGAPI backend, selected with ``backend="bgapi"``: unmodified pygatt drives an emulated
BLED112 on a pseudo-terminal that reaches the simulated DE1 (no USB dongle here)."""

from __future__ import annotations

from typing import Iterator

import pytest

from pyburnerkit import ConnectionState, ConnectionStateChanged, Reconnect
from pyburnerkit.ble.fakebgapi import FakeBled112
from pyburnerkit.de1 import codec
from pyburnerkit.de1.client import DE1Client
from pyburnerkit.de1.models import MachineState as S, ShotSampleEvent
from pyburnerkit.rigs.espresso import DE1Rig

from ..helpers import Recorder


@pytest.fixture
def dongle(rig: DE1Rig) -> Iterator[FakeBled112]:
    d = FakeBled112(rig.host).start()
    try:
        yield d
    finally:
        d.close()


def test_de1_over_bgapi(rig: DE1Rig, dongle: FakeBled112) -> None:
    with DE1Client(rig.de1.address, backend="bgapi", serial_port=dongle.port,
                   allow_remote_start=True, allow_writes=True).connect() as de1:
        assert de1.info.firmware_build == 1333 and de1.state is S.SLEEP
        order = [u for u, mode in rig.run(lambda: list(rig.de1.cccd_log)) if mode == 1]
        assert order == list(codec.SUBSCRIBE_ORDER)
        assert de1.wake().state is S.IDLE
        assert de1.start_espresso().state is S.ESPRESSO
        de1.wait_for(lambda c: c.volume[1] > 0.5, timeout=30)
        de1.stop()
        assert de1.write_setting("fan_threshold", 45) == 45


def test_bgapi_link_loss_is_caught_by_the_watchdog_and_reconnects(
        rig: DE1Rig, dongle: FakeBled112) -> None:
    # BGAPI has no disconnect callback in pygatt: silence is how the client notices
    events = Recorder()
    with DE1Client(rig.de1.address, backend="bgapi", serial_port=dongle.port,
                   silence_timeout=1.0, reconnect=Reconnect(min_delay=0.05, max_delay=0.5),
                   on_event=events).connect() as de1:
        rig.host.drop_all()
        events.wait_for(lambda e: isinstance(e, ConnectionStateChanged)
                        and e.state is ConnectionState.RECONNECTING, timeout=10)
        de1.wait_for(lambda c: c.connected and not c.stale, timeout=20)
        count = len(events.events)
        fresh = events.wait_for(lambda e: isinstance(e, ShotSampleEvent)
                                and events.events.index(e) > count, timeout=10)
        assert fresh.sample is not None
        assert de1.read_state().state is S.SLEEP
