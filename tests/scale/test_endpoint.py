"""The Skale client's endpoint: a Bluetooth address or ``sim://[?options]``, parsed by the shared
parser; ``sim://`` runs a simulated Skale in the client's own process, owned by the client."""

from __future__ import annotations

import threading
from typing import List

import pytest

from pyburnerkit.errors import ConfigurationError, WriteNotAllowedError
from pyburnerkit.scale import SkaleClient as LazySkaleClient
from pyburnerkit.scale.client import SkaleClient
from pyburnerkit.scale.models import TareSeen
from pyburnerkit.scale.sim import DEFAULT_SKALE_ADDRESS, SkaleSim

from ..ble.simrig import SPEED
from ..helpers import Recorder


def _sim_threads() -> List[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith("pyburnerkit-sim-ble")]


def test_the_package_name_is_the_client_class() -> None:
    assert LazySkaleClient is SkaleClient


def test_sim_endpoint_runs_a_simulated_skale_in_process_end_to_end() -> None:
    before = _sim_threads()
    client = SkaleClient(f"sim://?speed={SPEED:g}", allow_writes=True)
    try:
        assert client.simulator is None and _sim_threads() == before  # no I/O yet
        assert client.endpoint == "sim" and client.address == DEFAULT_SKALE_ADDRESS
        assert client.time_scale == SPEED  # the weight model follows the simulator's clock
        events = Recorder()
        client.subscribe(events)
        client.connect()
        sim = client.simulator
        assert isinstance(sim, SkaleSim) and sim.bench.speed == SPEED
        info = client.info
        assert info is not None and info.model == "SkaleII" and info.battery == 57
        sim.run(lambda: setattr(sim.bench, "extra_g", 18.5))  # a dose on the scale
        client.wait_for(lambda c: c.weight == 18.5, timeout=10)
        client.tare()
        events.wait_for(lambda e: isinstance(e, TareSeen))
        client.wait_for(lambda c: c.weight is not None and abs(c.weight) < 0.05, timeout=10)
        client.set_display(False)
        client.set_units("oz")
        assert sim.run(lambda: (sim.skale.display_on, sim.skale.grams)) == (False, False)
        assert client.read_battery() == 57
    finally:
        client.close()
    assert client.closed and _sim_threads() == before  # the simulator closed with the client


def test_sim_options_reach_the_simulator_and_time_scale_can_be_given() -> None:
    address = "CF:75:75:5E:00:02"
    with SkaleClient(f"sim://skale?address={address}&speed=4&noise_g=0",
                     time_scale=4.0) as scale:
        sim = scale.simulator
        assert sim is not None and sim.skale.address == address == scale.address
        assert scale.endpoint == "sim:skale"
        assert sim.run(lambda: sim.skale.noise_g) == 0.0
        scale.wait_for(lambda c: c.weight is not None, timeout=10)


def test_an_address_is_the_endpoint_in_upper_case() -> None:
    client = SkaleClient("cf:75:75:5e:a1:e5")
    try:
        assert client.address == client.endpoint == "CF:75:75:5E:A1:E5"
        assert client.time_scale == 1.0
    finally:
        client.close()


@pytest.mark.parametrize("endpoint, message", [
    ("skale.local", "Skale endpoint 'skale.local' is not a Bluetooth address"),
    ("sim://de1", "unknown simulator 'de1'; expected sim:// or sim://scale, sim://skale"),
    ("sim://?firmware_build=1", "unknown sim:// option 'firmware_build'; known: address"),
    ("sim://?speed=5000", "speed=5000.0 x real time is out of range"),
    ("CF:75:75:5E:A1", "is not a Bluetooth address"),
])
def test_a_bad_endpoint_is_refused_at_construction(endpoint: str, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        SkaleClient(endpoint)


@pytest.mark.parametrize("option, value, message", [
    ("sensor_lag_s", 6, "sensor_lag_s=6 s is out of range: the limit is 0..5 s"),
    ("time_scale", 0, "time_scale=0 x real time is out of range: the limit is 0.01..1000"),
    ("silence_timeout", -1, "silence_timeout=-1 s is out of range: the limit is 0.1..3600 s"),
])
def test_constructor_values_are_checked(option: str, value: float, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        SkaleClient("sim://", **{option: value})


def test_button_tares_needs_writes_on_a_sim_client_too() -> None:
    with pytest.raises(WriteNotAllowedError, match=r"button_tares=True .*\[scale sim\]"):
        SkaleClient("sim://", button_tares=True)
