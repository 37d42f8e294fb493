"""The DE1 client's endpoint: a Bluetooth address or ``sim://[?options]``, parsed by the shared
parser; ``sim://`` runs a simulated DE1 in the client's own process, owned by the client."""

from __future__ import annotations

import threading

import pytest

from pyburnerkit.de1 import DE1Client as LazyDE1Client
from pyburnerkit.de1.client import DE1Client
from pyburnerkit.de1.models import MachineState as S, ShotSampleEvent
from pyburnerkit.de1.sim import DEFAULT_DE1_ADDRESS, DE1Sim
from pyburnerkit.errors import ConfigurationError

from ..ble.simrig import SPEED
from ..helpers import Recorder


def _sim_threads() -> list:
    return [t.name for t in threading.enumerate() if t.name.startswith("pyburnerkit-sim-ble")]


def test_the_package_name_is_the_client_class() -> None:
    assert LazyDE1Client is DE1Client


def test_sim_endpoint_runs_a_simulated_de1_in_process_end_to_end() -> None:
    before = _sim_threads()
    client = DE1Client(f"sim://?speed={SPEED:g}", allow_writes=True, allow_remote_start=True)
    try:
        # the constructor does no I/O: no simulator yet
        assert client.simulator is None and _sim_threads() == before
        assert client.endpoint == "sim" and client.address == DEFAULT_DE1_ADDRESS
        samples = Recorder()
        client.subscribe(samples, ShotSampleEvent)
        client.connect()
        sim = client.simulator
        assert isinstance(sim, DE1Sim) and sim.bench.speed == SPEED
        info = client.info
        assert info is not None and info.firmware_build == 1333
        assert client.state is S.SLEEP
        assert client.io_thread is not None and "sim" in client.io_thread.name
        samples.wait_for(lambda e: True)  # the simulator streams to this client
        client.wake()
        assert client.state is S.IDLE
        assert sim.run(lambda: sim.de1.state.state) is S.IDLE  # the client's own simulator
        assert client.write_setting("fan_threshold", 42) == 42
        assert sim.run(lambda: sim.de1.registers[0x803808]) == 42
    finally:
        client.close()
    assert client.closed and _sim_threads() == before  # the simulator closed with the client


def test_sim_options_reach_the_simulator() -> None:
    address = "00:A0:50:DE:99:01"
    with DE1Client(f"sim://de1?speed={SPEED:g}&firmware_build=1250&address={address}") as old:
        info = old.info
        assert info is not None and info.firmware_build == 1250
        assert not info.features.skip_to_next  # derived from the simulated build
        assert old.address == address and old.endpoint == "sim:de1"


def test_an_address_is_the_endpoint_in_upper_case() -> None:
    client = DE1Client("00:a0:50:de:01:0f")
    try:
        assert client.address == "00:A0:50:DE:01:0F"
        assert client.endpoint == "00:A0:50:DE:01:0F"  # errors and thread names carry it
        assert client.simulator is None
    finally:
        client.close()


@pytest.mark.parametrize("endpoint, message", [
    ("10.0.0.1", "DE1 endpoint '10.0.0.1' is not a Bluetooth address"),
    ("00:A0:50:DE:01", "is not a Bluetooth address .*or sim://"),
    ("ws://de1.local", "is not a Bluetooth address"),
    ("sim://scale", "unknown simulator 'scale'; expected sim:// or sim://de1"),
    ("sim://?colour=red", "unknown sim:// option 'colour'; known: address, calibration_key"),
    ("sim://?firmware_build=new", "sim:// option firmware_build='new' is not valid"),
    ("sim://?speed=0", r"speed=0.0 x real time is out of range: the limit is 0.01..1000"),
    ("sim://?speed", "bad query 'speed'"),
    ("", "is not a Bluetooth address"),
])
def test_a_bad_endpoint_is_refused_at_construction(endpoint: str, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        DE1Client(endpoint)


def test_sim_makes_its_own_link_so_transport_is_refused() -> None:
    from pyburnerkit.rigs.espresso import DE1Rig
    rig = DE1Rig(with_scale=False)
    try:
        with pytest.raises(ConfigurationError, match="transport= has no meaning with 'sim://'"):
            DE1Client("sim://", transport=rig.transport())
    finally:
        rig.close()


@pytest.mark.parametrize("option, value, message", [
    ("silence_timeout", 0, "silence_timeout=0 s is out of range: the limit is 0.1..3600 s"),
    ("init_timeout", 0.1, "init_timeout=0.1 s is out of range: the limit is 0.5..600 s"),
    ("line_frequency", 55, "line_frequency=55 Hz: expected 50 or 60 Hz"),
    ("send_delay", 2, "send_delay=2 s is out of range: the limit is 0..1 s"),
])
def test_constructor_values_are_checked(option: str, value: float, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        DE1Client("00:A0:50:DE:01:01", **{option: value})
