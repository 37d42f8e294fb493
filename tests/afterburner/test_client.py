"""The Afterburner client against the simulator over a real WebSocket."""

from __future__ import annotations

import datetime as dt
import logging
import threading
from typing import Any, List

import pytest

from pyburnerkit import (ClientClosedError, ConfigurationError, ConnectionState,
                         ConnectTimeoutError,
                         ConnectionStateChanged, DeviceError, DeviceTimeoutError, Reconnect,
                         UnsupportedFeatureError, WriteNotAllowedError)
from pyburnerkit.afterburner import (AfterburnerClient, AfterburnerSim, DemandMode, RunState,
                                     StartRefused, StatusChanged, Timer)
from pyburnerkit.afterburner.client import Exchange, parse_url

from ..helpers import CallInThread, Recorder, wait_until


def test_connect_returns_with_the_complete_state(client: AfterburnerClient) -> None:
    status = client.status
    assert status.run_state is RunState.STOPPED
    assert status.desired_temperature == 22 and status.pump_cal_ml == 0.022
    assert status.bluewire is not None and status.bluewire.heater_responding
    assert client.system_info.firmware_version == "V3.2.1"
    assert client.connected and not client.stale


def test_setter_blocks_until_the_pushed_state_shows_the_value(client: AfterburnerClient,
                                                              sim: AfterburnerSim) -> None:
    status = client.set_desired_temperature(27)
    assert status.desired_temperature == 27
    assert sim.snapshot()["TempDesired"] == 27
    # Setting the value it already has is confirmed too (no change is pushed then).
    assert client.set_desired_temperature(27).desired_temperature == 27
    client.set_cyclic(3, -2)
    assert client.status.cyclic_off_c == 3 and client.status.cyclic_on_c == -2
    client.set_thermostat(window_c=1.5)
    assert client.status.thermostat_window_c == 1.5
    client.set_pump_limits(min_hz=1.8, max_hz=5.2)
    assert (client.status.pump_min_hz, client.status.pump_max_hz) == (1.8, 5.2)
    client.set_demand_mode(DemandMode.FIXED_HZ)
    assert client.status.demand_mode is DemandMode.FIXED_HZ


def test_bad_input_is_refused_before_anything_is_sent(client: AfterburnerClient,
                                                      sim: AfterburnerSim) -> None:
    before = len(sim.received)
    with pytest.raises(ConfigurationError, match=r"desired_temperature=36 °C .* 8..35 °C"):
        client.set_desired_temperature(36)
    with pytest.raises(ConfigurationError, match="unknown setting"):
        client.set(warp_speed=9)
    with pytest.raises(ConfigurationError):
        client.set_timer(Timer(0))
    assert len(sim.received) == before


def test_writes_need_allow_writes_but_stopping_never_does(sim: AfterburnerSim) -> None:
    with AfterburnerClient(f"127.0.0.1:{sim.port}", refresh_grace=0.2) as heater:
        before = len(sim.received)
        with pytest.raises(WriteNotAllowedError,
                           match=r"^set_desired_temperature\(\) changes the heater: open the "
                                 r"client with allow_writes=True \(CLI: --allow-writes\)"):
            heater.set_desired_temperature(20)
        with pytest.raises(WriteNotAllowedError, match=r"^start\(\) "):
            heater.start()
        with pytest.raises(WriteNotAllowedError, match=r"^set_fan_limits\(\) "):
            heater.set_fan_limits(1700)
        assert len(sim.received) == before  # refused before submitting: nothing to wait for
        assert not heater.stop().run_state.is_heating  # the safety stop is never refused
        assert {"Run": 0, "SQuery": 1} in list(sim.received)


def test_a_write_that_skips_its_own_check_is_refused_at_the_last_gate(
        sim: AfterburnerSim) -> None:
    # Every write method checks allow_writes itself (so that the message names it); the
    # request path checks again, so a write method added without that check is refused too.
    with AfterburnerClient(f"127.0.0.1:{sim.port}", refresh_grace=0.2) as heater:
        with pytest.raises(WriteNotAllowedError, match="allow_writes=True"):
            heater._exchange("a new write", Exchange({"TempDesired": 30}), 3.0)
        heater.read_system_info(timeout=3)
        assert not any("TempDesired" in frame for frame in list(sim.received))


def test_device_ignoring_a_value_raises_device_error() -> None:
    # An OEM controller on the bus makes the firmware refuse set-point and mode changes.
    with AfterburnerSim(tick=0, oem=True).start() as sim, \
            AfterburnerClient(f"127.0.0.1:{sim.port}", refresh_grace=0.2,
                              allow_writes=True) as heater:
        with pytest.raises(UnsupportedFeatureError):
            heater.set_desired_temperature(25)
        with pytest.raises(DeviceError, match="did not take Thermostat=0: it reports 1"):
            heater.set(demand_mode=0)


def test_start_and_stop(sim: AfterburnerSim) -> None:
    events = Recorder()
    with AfterburnerClient(f"127.0.0.1:{sim.port}", refresh_grace=0.2, on_event=events,
                           allow_writes=True) as heater:
        assert heater.start().run_state.is_on
        sim.advance(60)
        heater.wait_for(lambda c: c.status.run_state in (RunState.IGNITED, RunState.RUNNING),
                        timeout=5)
        stopped = heater.stop()
        assert not stopped.run_state.is_heating

        def states() -> list:
            return [e.status.run_state for e in list(events.events)
                    if isinstance(e, StatusChanged) and "RunState" in e.changed]
        # events reach the callback thread after the calls returned: wait for the first two
        wait_until(lambda: len(states()) >= 2, timeout=5, message="two RunState changes")
        assert states()[:2] == [RunState.STOPPED, RunState.STARTING]


def test_start_refused_raises_with_the_firmware_reason(sim: AfterburnerSim) -> None:
    sim.set(temp_c=30.0)
    events = Recorder()
    with AfterburnerClient(f"127.0.0.1:{sim.port}", refresh_grace=0.2, on_event=events,
                           allow_writes=True) as heater:
        with pytest.raises(DeviceError, match="Ambient too warm!") as info:
            heater.start()
        assert info.value.detail == "Ambient too warm!"
        events.wait_for(lambda e: isinstance(e, StartRefused) and e.reason == "Ambient too warm!")
        assert heater.status.run_state is RunState.STOPPED


def test_timers_system_info_clock_and_save(client: AfterburnerClient,
                                           sim: AfterburnerSim) -> None:
    timers = client.read_timers()
    assert [t.id for t in timers] == list(range(1, 15))
    wanted = Timer(3, dt.time(6, 30), dt.time(7, 15), frozenset({"Mon", "Fri"}), False, True, 21)
    timer = client.set_timer(wanted)
    assert timer.start == dt.time(6, 30) and timer.days == frozenset({"Mon", "Fri"})
    assert sim.timers[3].days == "Mon,Fri"
    when = dt.datetime(2027, 2, 3, 4, 5, 6)
    assert client.set_datetime(when).datetime == when
    info = client.read_system_info()
    assert info.uptime_s is not None and info.run_time_h is not None
    client.save()
    assert sim.nvsave_count == 1


def test_fuel_gauge_reset_waits_for_the_held_back_report(sim: AfterburnerSim) -> None:
    with AfterburnerClient(f"127.0.0.1:{sim.port}", refresh_grace=0.2,
                           allow_writes=True) as heater:
        assert heater.status.pump_count > 1000
        worker = CallInThread(lambda: heater.reset_fuel_gauge(timeout=10))
        wait_until(lambda: any("PumpCount" in f for f in list(sim.received)))
        sim.advance(11)  # past the firmware's 10 s hold-off for PumpCount
        worker.join(10)
        assert worker.error is None, worker.error
        assert heater.status.pump_count == 0 and heater.status.fuel_used_ml == 0


def test_garbage_frames_are_dropped_and_the_session_survives(client: AfterburnerClient,
                                                             sim: AfterburnerSim,
                                                             caplog: Any) -> None:
    with caplog.at_level(logging.WARNING, logger="pyburnerkit"):
        sim.send_garbage()
        sim.send_garbage("[1,2,3]")
        assert client.read_system_info().firmware_version == "V3.2.1"
    assert client.connected
    assert sum("undecodable" in r.getMessage() for r in caplog.records) == 2


def test_many_garbage_frames_force_a_reconnect(sim: AfterburnerSim) -> None:
    events = Recorder()
    with AfterburnerClient(f"127.0.0.1:{sim.port}", refresh_grace=0.2, on_event=events,
                           reconnect=Reconnect(0.05, 0.2)) as heater:
        for _ in range(5):
            sim.send_garbage()
        events.wait_for(lambda e: isinstance(e, ConnectionStateChanged)
                        and e.state is ConnectionState.RECONNECTING)
        heater.wait_for(lambda c: c.connected and not c.stale, timeout=10)


def test_silence_is_detected_by_the_liveness_query(sim: AfterburnerSim) -> None:
    events = Recorder()
    with AfterburnerClient(f"127.0.0.1:{sim.port}", refresh_grace=0.2, on_event=events,
                           liveness_interval=0.3, liveness_timeout=0.3,
                           reconnect=Reconnect(0.05, 0.2)) as heater:
        sim.silence(True)
        lost = events.wait_for(lambda e: isinstance(e, ConnectionStateChanged)
                               and e.state is ConnectionState.RECONNECTING)
        assert "liveness" in str(lost.error)
        assert heater.stale
        sim.silence(False)
        heater.wait_for(lambda c: c.connected and not c.stale, timeout=10)
    squeries = [f for f in sim.received if f == {"SQuery": 1}]
    assert squeries, "the client never sent a liveness query"


def test_no_websocket_pings_are_sent(client: AfterburnerClient, sim: AfterburnerSim) -> None:
    client.read_system_info()
    assert sim.pings_seen == 0


def test_restart_reconnects_and_rerequests_the_full_state(sim: AfterburnerSim) -> None:
    with AfterburnerClient(f"127.0.0.1:{sim.port}", refresh_grace=0.2, allow_writes=True,
                           reconnect=Reconnect(0.05, 0.2)) as heater:
        port = sim.port
        sim.close()
        heater.wait_for(lambda c: c.stale, timeout=10)
        # A real controller pushes a new client's dump at its next update tick, not at once
        # (a tick of 0 would push it before the client's own request could go out).
        with AfterburnerSim(tick=0.3).start(port=port) as again:
            heater.wait_for(lambda c: c.connected and not c.stale, timeout=10)
            # It asked for the dump itself (the new controller also pushes one unasked).
            wait_until(lambda: {"Refresh": 1} in list(again.received), message="a Refresh")
            assert heater.set_desired_temperature(19).desired_temperature == 19


def test_connect_times_out_when_the_full_state_never_comes(sim: AfterburnerSim) -> None:
    sim.silence(True)
    heater = AfterburnerClient(f"127.0.0.1:{sim.port}", connect_timeout=0.5, refresh_grace=0.1)
    with pytest.raises(ConnectTimeoutError):
        heater.connect()
    assert heater.closed
    wait_until(lambda: {"Refresh": 1} in list(sim.received), message="a Refresh before giving up")


def test_calls_while_reconnecting_time_out_chained_to_the_link_error(sim: AfterburnerSim) -> None:
    with AfterburnerClient(f"127.0.0.1:{sim.port}", refresh_grace=0.2,
                           reconnect=Reconnect(30.0, 30.0, jitter=0)) as heater:
        sim.disconnect()
        heater.wait_for(lambda c: not c.connected, timeout=10)
        with pytest.raises(DeviceTimeoutError) as info:
            heater.read_system_info(timeout=0.2)
        assert info.value.__cause__ is not None


def test_events_iterator_ends_when_the_client_closes(client: AfterburnerClient,
                                                     sim: AfterburnerSim) -> None:
    got: List[Any] = []
    started = threading.Event()

    def consume() -> None:
        started.set()
        for event in client.events(None, StatusChanged):
            got.append(event)

    worker = CallInThread(consume)
    started.wait(5)
    client.set_desired_temperature(24)
    wait_until(lambda: any(e.changed.get("TempDesired") == 24 for e in got))
    client.close()
    worker.join(5)
    assert worker.error is None


def test_in_process_simulator_url() -> None:
    with AfterburnerClient("sim://?tick=0&speed=100&seed=1", allow_writes=True) as heater:
        assert heater.endpoint == "sim"
        assert heater.io_thread.name == "pyburnerkit-afterburner-sim-io"
        assert heater.status.run_state is RunState.STOPPED
        heater.set_desired_temperature(26)
        assert heater.simulator.snapshot()["TempDesired"] == 26
        assert heater.simulator.speed == 100.0 and heater.simulator.tick == 0.0


def test_a_named_in_process_simulator_keeps_its_name_in_the_endpoint() -> None:
    with AfterburnerClient("sim://garage?tick=0&ambient=12") as heater:
        assert heater.endpoint == "sim:garage"
        assert heater.simulator.model.ambient_c == 12.0


@pytest.mark.parametrize("url,message", [
    ("sim://?warp=9", r"unknown sim:// option 'warp'; known: .*speed"),
    ("sim://?seed=x", r"sim:// option seed='x' is not valid"),
    ("sim://?speed=0", r"speed=0.0 x real time is out of range: the limit is 0.01..10000"),
    ("sim://?sensors=5", r"sensors=5 is out of range: the limit is 1..4"),
    ("sim://?tick", r"bad query 'tick'"),
])
def test_bad_simulator_options_are_configuration_errors(url: str, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        AfterburnerClient(url)


@pytest.mark.parametrize("url,expected", [
    ("192.168.4.1", ("ws", "192.168.4.1", 81, "")),
    ("heater.local:80", ("ws", "heater.local", 80, "")),
    ("ws://10.0.0.5:81/", ("ws", "10.0.0.5", 81, "/")),
    ("ws://[::1]:8081/x", ("ws", "::1", 8081, "/x")),
    ("[fe80::1]:82", ("ws", "fe80::1", 82, "")),
    ("  WS://Heater.Local  ", ("ws", "heater.local", 81, "")),
    ("sim://", ("sim", "", None, "")),
])
def test_endpoint_forms(url: str, expected: tuple) -> None:
    address = parse_url(url)
    assert (address.scheme, address.host, address.port, address.path) == expected


@pytest.mark.parametrize("url,label", [
    ("192.168.4.1", "192.168.4.1:81"),
    ("heater.local:80", "heater.local:80"),
    ("ws://[::1]:8081/x", "[::1]:8081"),
])
def test_the_endpoint_label_names_host_and_port(url: str, label: str) -> None:
    heater = AfterburnerClient(url)  # no I/O before connect()
    try:
        assert heater.endpoint == label
    finally:
        heater.close()


@pytest.mark.parametrize("form", ["127.0.0.1:{port}", "ws://127.0.0.1:{port}",
                                  "ws://127.0.0.1:{port}/", "ws://localhost:{port}/",
                                  "[::1]:{port}"])
def test_every_endpoint_form_reaches_the_controller(form: str, request: Any) -> None:
    host = request.getfixturevalue("ipv6_loopback") if form.startswith("[") else "127.0.0.1"
    with AfterburnerSim(tick=0).start(host) as sim, AfterburnerClient(form.format(port=sim.port), refresh_grace=0.2) as heater:
        assert heater.read_system_info(timeout=3).firmware_version == "V3.2.1"


@pytest.mark.parametrize("url,message", [
    ("", r"expected an endpoint for the Afterburner \(host, host:port, ws://, wss://, sim://\), got ''"),
    (None, r"got None"),
    ("http://x", r"unsupported scheme 'http' in Afterburner endpoint 'http://x'; expected"),
    ("wss://x", r"wss:// is not supported \('wss://x'\): the released firmware serves plain"),
    ("ws://:81", r"Afterburner endpoint 'ws://:81' names no host"),
    ("ws://x:99999", r"bad Afterburner endpoint 'ws://x:99999'"),
    ("x:0", r"port 0 is not in 1..65535"),
])
def test_bad_endpoints_are_configuration_errors(url: Any, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        AfterburnerClient(url)


@pytest.mark.parametrize("name,value,limit", [
    ("liveness_interval", 0, "0.05..3600 s"),
    ("liveness_timeout", -1.0, "0.05..600 s"),
    ("refresh_grace", 61, "0..60 s"),
    ("liveness_interval", "15", "0.05..3600 s"),
    ("liveness_timeout", float("nan"), "0.05..600 s"),
])
def test_bad_constructor_numbers_name_value_limit_and_unit(name: str, value: Any,
                                                           limit: str) -> None:
    with pytest.raises(ConfigurationError, match=name) as info:
        AfterburnerClient("sim://", **{name: value})
    assert limit in str(info.value)


def test_credentials_never_reach_logs_or_reprs(sim: AfterburnerSim, caplog: Any) -> None:
    sim.set(MPasswd="hunter2", MUser="me")
    with caplog.at_level(logging.DEBUG, logger="pyburnerkit"):
        with AfterburnerClient(f"127.0.0.1:{sim.port}", refresh_grace=0.2) as heater:
            heater.read_status()
            assert "hunter2" not in repr(heater.status)
            assert heater.reported_value("MPasswd") == "***"
    assert any(r.name == "pyburnerkit.afterburner.wire" for r in caplog.records)
    assert not any("hunter2" in r.getMessage() for r in caplog.records)


def test_closed_client_refuses_calls(sim: AfterburnerSim) -> None:
    heater = AfterburnerClient(f"127.0.0.1:{sim.port}", refresh_grace=0.2,
                               allow_writes=True).connect()
    heater.close()
    with pytest.raises(ClientClosedError):
        heater.set_desired_temperature(20)
    with pytest.raises(ClientClosedError):
        heater.connect()


def test_unclosed_client_warns(sim: AfterburnerSim) -> None:
    heater = AfterburnerClient(f"127.0.0.1:{sim.port}", refresh_grace=0.2).connect()
    with pytest.warns(ResourceWarning, match="was not closed"):
        heater.__del__()
    heater.close()
