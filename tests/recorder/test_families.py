"""Every family's adapter against its own simulator (real transports where the family has one:
CTI over TCP, Modbus TCP, a private dbus-daemon; the BLE families through the simulator's
in-process GATT link and once through pygatt and the fake ``gatttool`` process, since no
Bluetooth radio exists here)."""

from __future__ import annotations

import pytest

from pyburnerkit.recorder import Recorder, SQLiteSink
from pyburnerkit.recorder.sources import (ArbinSource, DE1Source, Mate3Source, ScaleSource,
                                          VictronSource, adapt)

from .util import collect


def _rec(tmp_path, sources):
    return Recorder(sources, [SQLiteSink(str(tmp_path / "r.db"))],
                    spool_dir=str(tmp_path / "spool"), progress_interval=None)


def _latest(samples, field, channel=None):
    for s in reversed(samples):
        if s.field == field and (channel is None or s.channel == channel):
            return s
    raise AssertionError(f"no sample of {field} (channel {channel})")


def test_arbin_all_channels_each_poll(tmp_path):
    from pyburnerkit.arbin import ArbinSim, CyclerClient
    with ArbinSim(channels=4, username="lab", password="pw", time_scale=10).start() as sim:
        client = CyclerClient(f"127.0.0.1:{sim.port}", username="lab", password="pw",
                              retry_first=True)
        source = ArbinSource(client, device="mits-1", interval=0.1, owns_client=True)
        assert isinstance(adapt(client), ArbinSource)
        rec = _rec(tmp_path, [source])
        got = collect(rec)
        with rec:
            rec.wait_for(lambda r: len({s.channel for s in got if s.field == "voltage_v"}) == 4
                         and r.sink("sqlite").written > 0, timeout=30)
        assert not client.connected
    volt = _latest(got, "voltage_v", "2")
    assert volt.family == "arbin" and volt.device == "mits-1" and volt.unit == "V"
    assert 0 < volt.value < 10
    state = _latest(got, "state", "1")
    assert state.text is not None  # e.g. IDLE, kept next to its code
    assert _latest(got, "charge_capacity_ah", "3").unit == "Ah"
    assert _latest(got, "dvdt_v_per_s", "1").unit == "V/s"


def test_mate3_hub_ports_as_channels(tmp_path):
    from pyburnerkit.mate3 import Mate3Client
    client = Mate3Client("sim://mate3", min_poll_interval=0, retry_first=True)
    source = Mate3Source(client, device="mate3s", interval=0.2, owns_client=True)
    rec = _rec(tmp_path, [source])
    got = collect(rec)
    with rec:
        rec.wait_for(lambda r: any(s.field == "battery_voltage" for s in got), timeout=30)
    volt = _latest(got, "battery_voltage", "3")
    assert volt.unit == "V" and 40 < volt.value < 70
    assert not any(s.field.endswith("_scale_factor") or s.field == "did" for s in got)
    assert {s.channel for s in got} >= {"3", "4"}
    labelled = [s for s in got if s.text is not None]
    assert labelled  # enums such as the charger state keep their labels


def test_victron_services_and_paths(tmp_path):
    from pyburnerkit.victron import VictronMonitor, VictronSim
    with VictronSim(interval=0.05) as sim:
        monitor = VictronMonitor(bus_address=sim.address, retry_first=True)
        source = VictronSource(monitor, device="venus", owns_client=True)
        rec = _rec(tmp_path, [source])
        got = collect(rec)
        with rec:
            rec.wait_for(lambda r: sum(1 for s in got if s.field == "/Dc/0/Voltage") >= 4,
                         timeout=30)
    volt = _latest(got, "/Dc/0/Voltage", VictronSim.BATTERY)
    assert volt.family == "victron" and volt.unit == "V" and 40 < volt.value < 70
    assert _latest(got, "/Soc", VictronSim.BATTERY).unit == "%"
    assert _latest(got, "/Ac/Energy/Forward", VictronSim.GRID).unit == "kWh"
    meta = source.meta(VictronSim.GRID, "/Ac/Energy/Forward", "kWh", 1.0)
    assert meta.device_class == "energy" and meta.state_class == "total_increasing"
    assert source.meta(VictronSim.BATTERY, "/Mgmt/ProcessName", "", "x").diagnostic


def test_victron_values_scanned_at_a_background_connect_are_recorded(tmp_path):
    """A monitor the source connects (as a config does) scans every service's values at
    connect and announces no ValuesChanged for them: a value that never changes (the
    product name) is recorded all the same, once the connection is reported."""
    from pyburnerkit.victron import VictronMonitor, VictronSim
    with VictronSim(interval=0.05) as sim:
        monitor = VictronMonitor(bus_address=sim.address, retry_first=True)
        assert monitor.connection_state.value == "idle"  # the source connects it
        source = VictronSource(monitor, device="venus", owns_client=True)
        rec = _rec(tmp_path, [source])
        got = collect(rec)
        with rec:
            rec.wait_for(lambda r: any(s.field == "/ProductName"
                                       and s.channel == VictronSim.BATTERY for s in got),
                         timeout=30)
    names = {s.channel: s.value for s in got if s.field == "/ProductName"}
    assert VictronSim.BATTERY in names and isinstance(names[VictronSim.BATTERY], str)


def test_scale_battery_is_recorded_at_each_connect(tmp_path):
    """The Skale's battery level is read at connect (no event announces it): the source
    records it once the background connect is reported."""
    from pyburnerkit.ble.transport import SimTransport
    from pyburnerkit.rigs.espresso import DE1Rig
    from pyburnerkit.scale.client import SkaleClient
    rig = DE1Rig(speed=4.0).start()
    try:
        skale = SkaleClient(rig.skale.address, transport=SimTransport(rig.host),
                            retry_first=True)
        source = ScaleSource(skale, device="skale", owns_client=True)
        rec = _rec(tmp_path, [source])
        got = collect(rec)
        with rec:
            rec.wait_for(lambda r: any(s.field == "battery" for s in got), timeout=30)
            expected = skale.info.battery
    finally:
        rig.close()
    battery = _latest(got, "battery")
    assert battery.unit == "%" and battery.value == expected and 0 <= battery.value <= 100


def test_de1_and_scale(tmp_path):
    from pyburnerkit.ble.transport import SimTransport
    from pyburnerkit.de1.client import DE1Client
    from pyburnerkit.rigs.espresso import DE1Rig
    from pyburnerkit.scale.client import SkaleClient
    rig = DE1Rig(speed=4.0).start()
    try:
        de1 = DE1Client(rig.de1.address, transport=SimTransport(rig.host), retry_first=True)
        skale = SkaleClient(rig.skale.address, transport=SimTransport(rig.host),
                            retry_first=True)
        sources = [DE1Source(de1, device="de1", owns_client=True),
                   ScaleSource(skale, device="skale", owns_client=True)]
        rec = _rec(tmp_path, sources)
        got = collect(rec)
        with rec:
            rec.wait_for(lambda r: any(s.family == "scale" and s.field == "weight_g"
                                       for s in got)
                         and any(s.family == "de1" and s.field == "state" for s in got)
                         and any(s.family == "de1" and s.unit == "°C" for s in got),
                         timeout=30)
    finally:
        rig.close()
    state = _latest(got, "state")
    assert state.device == "de1" and state.text is not None
    assert _latest(got, "weight_g").unit == "g"


def test_alerts_from_real_simulators(tmp_path):
    """An Arbin channel forced Unsafe and a heater fault, end to end through the drivers."""
    from pyburnerkit.afterburner import AfterburnerClient
    from pyburnerkit.afterburner.sim import AfterburnerSim
    from pyburnerkit.arbin import ArbinSim, ChannelState, CyclerClient
    from pyburnerkit.recorder import AfterburnerSource, AlertChanged, AlertRule

    rules = [AlertRule("unsafe", kind="state", field="state", values=("UNSAFE",),
                       family="arbin"),
             AlertRule("heater-error", field="ErrorState", above=1, family="afterburner")]
    with ArbinSim(channels=2, username="u", password="p").start() as cycler_sim, \
            AfterburnerSim(tick=0.05, speed=30.0, seed=1).start("127.0.0.1", 0) as heater_sim:
        cycler = CyclerClient(f"127.0.0.1:{cycler_sim.port}", username="u", password="p",
                              retry_first=True)
        heater = AfterburnerClient(f"ws://127.0.0.1:{heater_sim.port}/", retry_first=True)
        rec = Recorder([ArbinSource(cycler, device="mits", interval=0.1, owns_client=True),
                        AfterburnerSource(heater, device="cabin", owns_client=True)],
                       [SQLiteSink(str(tmp_path / "r.db"))], alerts=rules,
                       spool_dir=str(tmp_path / "spool"), progress_interval=None)
        seen = []
        rec.subscribe(seen.append, AlertChanged)
        got = collect(rec)
        with rec:
            rec.wait_for(lambda r: {s.family for s in got} == {"arbin", "afterburner"},
                         timeout=30)
            assert seen == []  # healthy devices: nothing fires
            cycler_sim.set_state(2, ChannelState.UNSAFE)
            heater_sim.run_sync(lambda: heater_sim.model.fault(6))  # E-05 overheat
            rec.wait_for(lambda r: {a.rule for a in seen} == {"unsafe", "heater-error"},
                         timeout=30)
            polls = sum(1 for s in got if s.field == "state" and s.channel == "1")
            # more polls with channel 1 fine and channel 2 unsafe: no flapping
            rec.wait_for(lambda r: sum(1 for s in got if s.field == "state"
                                       and s.channel == "1") >= polls + 3, timeout=30)
    unsafe = [a for a in seen if a.rule == "unsafe"]
    assert len(unsafe) == 1 and unsafe[0].active and unsafe[0].channel == "2"
    assert unsafe[0].device == "mits" and unsafe[0].family == "arbin"
    assert "mits channel 2" in unsafe[0].message
    error = [a for a in seen if a.rule == "heater-error"][0]
    assert error.active and error.value > 1


def test_open_source_builds_each_family_from_a_url(tmp_path):
    from pyburnerkit.errors import ConfigurationError
    from pyburnerkit.recorder.sources import families, open_source
    assert families() == ["afterburner", "arbin", "de1", "mate3", "scale", "victron"]
    source = open_source("arbin", "sim://?channels=2", device="lab", interval=0.2)
    assert isinstance(source, ArbinSource) and source.owns_client and source.interval == 0.2
    rec = _rec(tmp_path, [source])
    got = collect(rec)
    with rec:
        rec.wait_for(lambda r: {s.channel for s in got} == {"1", "2"}, timeout=20)
    assert source.client.closed
    with pytest.raises(ConfigurationError, match="host:port"):
        open_source("arbin", "host:abc")


def test_de1_fatal_error_fires_a_state_alert_once(tmp_path):
    """The simulated DE1 reports FatalError (state 0x0B, an error substate) over its GATT link:
    the state rule fires once, with the enum name, and nothing fires while the machine idles."""
    from pyburnerkit.ble.transport import SimTransport
    from pyburnerkit.de1.client import DE1Client
    from pyburnerkit.de1.models import MachineState, SubState
    from pyburnerkit.rigs.espresso import DE1Rig
    from pyburnerkit.recorder import AlertChanged, AlertRule
    rule = AlertRule("de1-fatal", kind="state", field="state", values=("FATAL_ERROR",),
                     family="de1")
    rig = DE1Rig(speed=4.0, with_scale=False).start()
    try:
        de1 = DE1Client(rig.de1.address, transport=SimTransport(rig.host), retry_first=True)
        rec = Recorder([DE1Source(de1, device="de1", owns_client=True)],
                       [SQLiteSink(str(tmp_path / "r.db"))], alerts=[rule],
                       spool_dir=str(tmp_path / "spool"), progress_interval=None)
        seen = []
        rec.subscribe(seen.append, AlertChanged)
        got = collect(rec)
        with rec:
            rec.wait_for(lambda r: any(s.field == "state" for s in got), timeout=30)
            assert seen == []
            rig.run(lambda: rig.de1._set_state(MachineState.FATAL_ERROR,
                                               SubState.ERROR_TSENSOR))
            rec.wait_for(lambda r: seen, timeout=30)
            # still FatalError, another error substate: the rule is already firing
            rig.run(lambda: rig.de1._set_state(MachineState.FATAL_ERROR,
                                               SubState.ERROR_PSENSOR))
            rec.wait_for(lambda r: _latest(got, "substate").text == "ERROR_PSENSOR",
                         timeout=30)
    finally:
        rig.close()
    assert len(seen) == 1 and seen[0].active and seen[0].rule == "de1-fatal"
    assert seen[0].device == "de1" and seen[0].family == "de1"
    assert "FATAL_ERROR" in seen[0].message  # the enum name, not only its number
    assert _latest(got, "state").text == "FATAL_ERROR"


def test_de1_and_scale_through_pygatt_and_gatttool(tmp_path):
    """The BLE sources over the real BLE client stack: unmodified pygatt drives the fake
    ``gatttool`` process (first on PATH), which reaches the simulated DE1 and Skale over
    127.0.0.1. No Bluetooth radio exists here; everything above the radio is real."""
    from pyburnerkit.de1.client import DE1Client
    from pyburnerkit.scale.client import SkaleClient

    from ..ble.simrig import SEND_DELAY, SPEED, RigOnPath
    env = RigOnPath()
    try:
        de1 = DE1Client(env.de1.address, send_delay=SEND_DELAY, retry_first=True)
        skale = SkaleClient(env.skale.address, send_delay=SEND_DELAY, time_scale=SPEED,
                            retry_first=True)
        rec = _rec(tmp_path, [DE1Source(de1, device="de1", owns_client=True),
                              ScaleSource(skale, device="skale", owns_client=True)])
        got = collect(rec)
        with rec:
            rec.wait_for(lambda r: any(s.family == "scale" and s.field == "weight_g"
                                       for s in got)
                         and any(s.family == "de1" and s.field == "state" for s in got),
                         timeout=60)
            rec.wait_for(lambda r: r.sink("sqlite").written == r.received, timeout=30)
        assert de1.closed and skale.closed
    finally:
        env.close()
    assert _latest(got, "state").text == "SLEEP"
    assert _latest(got, "weight_g").unit == "g"


def test_a_poll_source_survives_the_device_dropping_the_link(tmp_path):
    """The cycler resets the TCP connection (a reboot) twice: the client reconnects by itself,
    the recorder reports it and keeps polling; no sample is lost from the database."""
    from pyburnerkit.arbin import ArbinSim, CyclerClient
    from pyburnerkit.recorder import DeviceStateChanged
    with ArbinSim(channels=2, username="lab", password="pw", time_scale=10).start() as sim:
        client = CyclerClient(f"127.0.0.1:{sim.port}", username="lab", password="pw",
                              retry_first=True)
        rec = _rec(tmp_path, [ArbinSource(client, device="mits", interval=0.05,
                                          owns_client=True)])
        got = collect(rec)
        states = []
        rec.subscribe(lambda e: states.append(e.state), DeviceStateChanged)
        with rec:
            for _ in range(2):
                rec.wait_for(lambda r: states and states[-1] == "connected", timeout=30)
                before = rec.received
                reconnects = states.count("reconnecting")
                sim.disconnect()
                rec.wait_for(lambda r: states.count("reconnecting") > reconnects
                             and states[-1] == "connected", timeout=30)
                rec.wait_for(lambda r: r.received > before + 50, timeout=30)
            rec.wait_for(lambda r: r.sink("sqlite").written == r.received, timeout=30)
    assert rec.sink("sqlite").written == len(got) > 0
    assert {s.channel for s in got[-40:]} == {"1", "2"}
