"""The client against the simulator: in process (``sim://``) and over a real TCP socket."""

from __future__ import annotations

from typing import Iterator, List

import pytest

from pyburnerkit import ConnectionState, ConnectionStateChanged
from pyburnerkit.errors import (ConfigurationError, DeviceError, DeviceTimeoutError,
                                WriteNotAllowedError)
from pyburnerkit_thermo import ErrorCode, Status, StatusChanged, ThermoClient, ThermoSim
from pyburnerkit_thermo import codec


@pytest.fixture
def sim() -> Iterator[ThermoSim]:
    with ThermoSim(seed=1).start("127.0.0.1", 0) as running:
        yield running


def _sets(sim: ThermoSim) -> List[codec.Request]:
    return [r for r in sim.requests if isinstance(r, (codec.SetRelay, codec.SetLimit))]


@pytest.mark.parametrize("text, endpoint", [
    ("box.lan", "box.lan:7878"), ("box.lan:9000", "box.lan:9000"),
    ("thermo://10.0.0.5:7000", "10.0.0.5:7000"), ("sim://?speed=60", "sim://?speed=60")])
def test_endpoint_forms(text: str, endpoint: str) -> None:
    box = ThermoClient(text)  # the constructor does no I/O
    try:
        assert box.endpoint == endpoint
    finally:
        box.close()


@pytest.mark.parametrize("text, message", [
    ("http://box", "unsupported scheme 'http'"), ("box:99999", "port"),
    ("box/path", "no path or query"), ("sim://?colour=red", "unknown sim:// option 'colour'"),
    ("", "TR-1.*got ''")])
def test_bad_endpoints_are_refused_before_any_io(text: str, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        ThermoClient(text)


def test_reads_over_tcp(sim: ThermoSim) -> None:
    with ThermoClient(f"127.0.0.1:{sim.port}") as box:
        assert box.info is not None and box.info.model == "TR-1"
        status = box.read_status()
        assert status == box.status == Status(20.0, status.humidity_pct, False, 30.0)
        assert box.io_thread is not None
        assert box.io_thread.name == f"pyburnerkit-thermo-127.0.0.1:{sim.port}-io"


def test_writes_need_allow_writes_and_valid_values(sim: ThermoSim) -> None:
    with ThermoClient(f"127.0.0.1:{sim.port}") as box:
        with pytest.raises(WriteNotAllowedError, match="allow_writes=True"):
            box.set_relay(True)
    with ThermoClient(f"127.0.0.1:{sim.port}", allow_writes=True) as box:
        with pytest.raises(ConfigurationError, match=r"limit=61 °C is out of range: the "
                                                     r"limit is 0\.\.60 °C"):
            box.set_limit(61)
        with pytest.raises(ConfigurationError, match="steps of 0.5 °C"):
            box.set_limit(30.3)
        with pytest.raises(ConfigurationError, match="relay"):
            box.set_relay(2)  # type: ignore[arg-type]  # what an untyped caller might pass
        assert _sets(sim) == []  # nothing of the above reached the box
        box.set_limit(25.5)
        box.set_relay(True)
        assert box.read_status().limit_c == 25.5
    assert _sets(sim) == [codec.SetLimit(25.5), codec.SetRelay(True)]


def test_the_box_refuses_the_relay_over_its_limit() -> None:
    with ThermoClient("sim://?temperature=35&limit=30", allow_writes=True) as box:
        with pytest.raises(DeviceError) as caught:
            box.set_relay(True)
        assert caught.value.code is ErrorCode.OVER_LIMIT
        assert box.read_status().relay is False


def test_the_relay_heats_until_the_cut_out_on_simulated_time() -> None:
    now = [0.0]  # the simulator's clock: only this test moves it
    with ThermoSim(temperature_c=20.0, limit_c=30.0, clock=lambda: now[0]).start() as sim:
        with ThermoClient(f"127.0.0.1:{sim.port}", allow_writes=True) as box:
            box.set_relay(True)
            now[0] = 40.0  # heating towards 40 °C with a 120 s time constant: 40 - 20/e^(1/3)
            status = box.read_status()
            assert (status.temperature_c, status.relay) == (25.7, True)
            now[0] = 1000.0  # past the limit (at 120 ln 2 s), then cooling back towards 18 °C
            status = box.read_status()
            assert status.relay is False and 18.0 <= status.temperature_c < 18.1


def test_the_cut_out_is_an_event() -> None:
    with ThermoClient("sim://?temperature=20&limit=30", allow_writes=True) as box:
        events = box.events(5.0, StatusChanged)
        box.set_relay(True)
        assert box.read_status().relay is True
        assert box.simulator is not None
        box.simulator.set_temperature(30.0)  # the room reaches the limit
        status = box.read_status()
        assert status.relay is False and status.temperature_c == 30.0
        seen = [next(events), next(events)]
        assert [e.status.relay for e in seen] == [True, False]
        assert seen[1].previous == seen[0].status


def test_a_late_reply_is_not_taken_for_the_next_request(sim: ThermoSim) -> None:
    with ThermoClient(f"127.0.0.1:{sim.port}", allow_writes=True) as box:
        sim.delay_responses(0.5)  # the box holds its answer back longer than we wait
        with pytest.raises(DeviceTimeoutError):
            box.read_status(timeout=0.1)
        sim.delay_responses(0)
        # the READ answer still arrives first: it must be consumed for the abandoned read,
        # and the OK go to this request (a status line here would be a ProtocolError)
        box.set_limit(25.0)
        assert box.read_status().limit_c == 25.0
        assert box.connected


def _until_reconnected(states: Iterator[ConnectionStateChanged]) -> List[ConnectionState]:
    """The states seen until the link is back after a drop (the iterator may still hold the
    CONNECTED of the first connection: that one does not count)."""
    seen: List[ConnectionState] = []
    for event in states:
        seen.append(event.state)
        if event.state is ConnectionState.CONNECTED and ConnectionState.RECONNECTING in seen:
            return seen
    raise AssertionError(f"the link did not come back: {seen}")


def test_a_dropped_link_is_rebuilt(sim: ThermoSim) -> None:
    with ThermoClient(f"127.0.0.1:{sim.port}") as box:
        box.read_status()
        states = box.events(10.0, ConnectionStateChanged)
        sim.disconnect()
        _until_reconnected(states)
        assert box.read_status().limit_c == 30.0


def test_a_reply_nobody_asked_for_rebuilds_the_link(sim: ThermoSim) -> None:
    with ThermoClient(f"127.0.0.1:{sim.port}") as box:
        states = box.events(10.0, ConnectionStateChanged)
        sim.send_raw(b"OK\n")
        _until_reconnected(states)
        assert isinstance(box.read_status(), Status)
