"""The BLE transport and the fake gatttool: unmodified pygatt against the simulated radio,
the subscribe-stall workaround, backend selection and clear errors."""

from __future__ import annotations

import sys
import threading
import time
from typing import List

import pytest

from pyburnerkit.errors import (BackendUnavailableError, ConfigurationError,
                                DeviceConnectionError, DeviceTimeoutError)
from pyburnerkit.ble.transport import PygattTransport
from pyburnerkit.de1 import codec

from .simrig import RigOnPath


def test_raw_pygatt_against_the_fake(rig_on_path: RigOnPath) -> None:
    """pygatt's own API end to end: connect, discover, read (uuid/handle), write, notify."""
    import pygatt

    adapter = pygatt.GATTToolBackend()
    adapter.start(reset_on_start=False)
    try:
        device = adapter.connect(rig_on_path.de1.address, timeout=5)
        chars = device.discover_characteristics()
        assert len(chars) == 18
        assert device.char_read(codec.STATE_INFO) == bytearray(b"\x00\x00")
        handle = device.get_handle(codec.STATE_INFO)
        assert device.char_read_handle(handle) == bytearray(b"\x00\x00")
        got: List[bytes] = []
        seen = threading.Event()

        def on_state(h: int, value: bytearray) -> None:
            got.append(bytes(value))
            if value[0] == 2:
                seen.set()

        device.subscribe(codec.STATE_INFO, callback=on_state)
        device.char_write(codec.REQUESTED_STATE, bytearray(b"\x02"))  # wake -> Idle
        assert seen.wait(5)
        assert got[-1] == b"\x02\x00"
        with pytest.raises(pygatt.exceptions.NotificationTimeout):
            device.char_read("0000ffff-0000-1000-8000-00805f9b34fb", timeout=0.5)
        device.disconnect()
        with pytest.raises(pygatt.exceptions.NotConnectedError):
            adapter.connect("11:22:33:44:55:66", timeout=0.5)
    finally:
        adapter.stop()
        adapter._receiver.join(2)


def test_subscribe_during_a_fast_stream_does_not_stall(rig_on_path: RigOnPath) -> None:
    """Our subscribe never holds pygatt's device lock while waiting for the CCCD ack, so a
    20 Hz stream on another characteristic (with pygatt's default 50 ms send delay, the
    worst case measured in specs/pygatt.md 5.6) cannot stall it."""
    env = rig_on_path
    t = PygattTransport()  # pygatt's default send delay
    values: List[str] = []
    t.on_value = lambda uuid, data: values.append(uuid)
    try:
        t.open(3)
        t.connect(env.de1.address, 5)
        t.discover()
        from pyburnerkit.de1.models import MachineState
        env.rig.run(lambda: env.de1.request(MachineState.IDLE))  # awake: full sample rate
        t.subscribe(codec.SHOT_SAMPLE)  # starts a 16 Hz stream at SPEED 4
        t0 = time.monotonic()
        before = len(values)
        for uuid in (codec.STATE_INFO, codec.WATER_LEVELS, codec.READ_FROM_MMR,
                     codec.CALIBRATION, codec.SHOT_SETTINGS, codec.FRAME_WRITE):
            start = time.monotonic()
            t.subscribe(uuid, timeout=3.0)
            assert time.monotonic() - start < 2.5, f"subscribe {uuid} stalled"
        assert time.monotonic() - t0 < 10
        # the stream really ran while we subscribed
        assert values[before:].count(codec.SHOT_SAMPLE) >= 3
    finally:
        t.close()


def test_timeouts_and_missing_programs(rig_on_path: RigOnPath, monkeypatch) -> None:
    t = PygattTransport(send_delay=0.002)
    try:
        t.open(3)
        t.connect(rig_on_path.de1.address, 5)
        t.discover()
        rig_on_path.rig.host.silence(True)
        started = time.monotonic()
        with pytest.raises(DeviceTimeoutError):
            t.read(codec.STATE_INFO, timeout=0.3)
        assert time.monotonic() - started < 2
    finally:
        rig_on_path.rig.host.silence(False)
        t.close()
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(DeviceConnectionError, match="could not start gatttool"):
        PygattTransport().open(1)


def test_backend_selection_and_bad_options() -> None:
    with pytest.raises(ConfigurationError, match="backend='bluez'"):
        PygattTransport("bluez")
    with pytest.raises(ConfigurationError, match="send_delay=5"):
        PygattTransport(send_delay=5)
    bgapi = PygattTransport("bgapi", serial_port="/dev/nonexistent-bled112")
    with pytest.raises(DeviceConnectionError, match="bgapi.*BLED112"):
        bgapi.open(1)
    bgapi.close()


def test_missing_pygatt_names_the_extra(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "pygatt", None)  # as if it were not installed
    with pytest.raises(BackendUnavailableError, match=r'pip install "pyburnerkit\[de1\]"'):
        PygattTransport()
