"""Skale II: codec golden vectors and fuzzing, the weight processor (period, flow, history
resets), and the client in process and through pygatt + the fake gatttool."""

from __future__ import annotations

from typing import Iterator

import pytest
from hypothesis import given, settings, strategies as st

from pyburnerkit import ConnectionState, ConnectionStateChanged, Reconnect
from pyburnerkit.errors import ConfigurationError, ProtocolError
from pyburnerkit.rigs.espresso import DE1Rig
from pyburnerkit.scale import codec
from pyburnerkit.scale.client import SkaleClient, WeightProcessor
from pyburnerkit.scale.models import ButtonPressed, TareSeen, WeightReading

from ..ble.simrig import SEND_DELAY, SPEED, RigOnPath, sim_transport
from ..helpers import Recorder


def test_weight_golden_vectors() -> None:
    # 36.0 g = 360 counts of 0.1 g = 0x000168, little-endian at bytes 1..3
    assert codec.decode_weight(bytes.fromhex("ef680100" "00" "680100")) == 36.0
    # -1.5 g = -15 = 0xFFFFF1 (24-bit two's complement)
    assert codec.decode_weight(bytes.fromhex("eff1ffff")) == -1.5
    assert codec.encode_weight(36.0) == bytes.fromhex("ef680100" "00" "000000")
    assert codec.encode_command(codec.CMD_TARE) == b"\x10"
    assert codec.encode_command(0xCA, 0x05) == b"\xca\x05"
    with pytest.raises(ConfigurationError, match="unknown Skale command 0x77"):
        codec.encode_command(0x77)
    with pytest.raises(ProtocolError, match="at least 4 bytes"):
        codec.decode_weight(b"\xef\x01")


@pytest.mark.parametrize("decoder", [codec.decode_weight, codec.decode_button,
                                     codec.decode_command, codec.decode_battery])
@settings(max_examples=150, deadline=None)
@given(data=st.binary(max_size=12))
def test_fuzz_scale_decoders(decoder, data: bytes) -> None:
    try:
        decoder(data)
    except ProtocolError:
        pass


def test_processor_flow_period_and_resets() -> None:
    p = WeightProcessor(sensor_lag_s=0.38, nominal_period_s=0.1, k=0.05)
    t = 100.0
    reading = None
    for i in range(30):
        reading, _ = p.add(2.0 * 0.1 * i, t + 0.1 * i)  # 2 g/s, every 0.11 s? no: 0.1 s
    assert reading is not None
    assert reading.weight_time == pytest.approx(t + 2.9 - 0.38)
    assert reading.average_flow_g_s == pytest.approx(2.0, rel=0.02)
    assert reading.median_flow_g_s == pytest.approx(2.0, rel=0.05)
    assert reading.median_weight_g == pytest.approx(2.0 * 0.1 * 24, abs=0.01)
    # a gap longer than 0.8 s empties the history: no flow until 11 new samples
    reading, _ = p.add(10.0, t + 5.0)
    assert reading.average_flow_g_s is None
    # period estimate moves towards the real inter-arrival time (0.15 s here)
    q = WeightProcessor(k=0.2)
    for i in range(60):
        q.add(0.0, 10 + 0.15 * i)
    assert q.period_s == pytest.approx(0.15, abs=0.005)
    # tare seen: near zero within the window after a tare request
    q.tare_pending_until = 10 + 0.15 * 60 + 1.0
    _, seen = q.add(0.02, 10 + 0.15 * 60)
    assert seen


@pytest.fixture
def scale(rig: DE1Rig) -> Iterator[SkaleClient]:
    client = SkaleClient(rig.skale.address, transport=sim_transport(rig), time_scale=SPEED,
                         allow_writes=True)
    client.connect()
    try:
        yield client
    finally:
        client.close()


def test_connect_sequence_tare_display_units_buttons(rig: DE1Rig, scale: SkaleClient) -> None:
    assert rig.run(lambda: list(rig.skale.commands))[:3] == [0x03, 0xED, 0xEC]
    assert scale.info.manufacturer == "ATOMAX INC." and scale.info.battery == 57
    rig.run(lambda: setattr(rig.bench, "extra_g", 123.4))
    scale.wait_for(lambda c: c.weight == 123.4, timeout=10)
    events = Recorder()
    scale.subscribe(events)
    scale.tare()
    events.wait_for(lambda e: isinstance(e, TareSeen))
    assert abs(scale.weight) < 0.05
    scale.set_display(False)
    assert rig.run(lambda: rig.skale.display_on) is False and scale.display_on is False
    scale.set_units("oz")
    assert rig.run(lambda: rig.skale.grams) is False
    rig.host.call_soon(rig.skale.press, 2)
    assert events.wait_for(lambda e: isinstance(e, ButtonPressed)).button == 2
    tares = rig.run(lambda: rig.skale.commands.count(0x10))
    rig.run(lambda: setattr(rig.bench, "extra_g", 130.0))
    scale.wait_for(lambda c: c.weight is not None and c.weight > 6, timeout=10)
    rig.host.call_soon(rig.skale.press, 1)  # button 1 tares, as the apps do
    scale.wait_for(lambda c: c.weight is not None and abs(c.weight) < 0.05, timeout=10)
    assert rig.run(lambda: rig.skale.commands.count(0x10)) == tares + 1
    assert scale.read_battery() == 57
    with pytest.raises(ConfigurationError, match="unit 'lb'"):
        scale.set_units("lb")


def test_weight_readings_carry_lag_and_flow(rig: DE1Rig, scale: SkaleClient) -> None:
    events = Recorder()
    scale.subscribe(events, WeightReading)
    r = events.wait_for(lambda e: True)
    assert r.weight_time == pytest.approx(r.arrival_time - 0.38 / SPEED)
    events.wait_for(lambda e: e.average_flow_g_s is not None, timeout=10)
    assert 0.08 <= scale.period_s <= 0.12


def test_skale_through_pygatt_with_reconnect(rig_on_path: RigOnPath) -> None:
    env = rig_on_path
    events = Recorder()
    with SkaleClient(env.skale.address, send_delay=SEND_DELAY, time_scale=SPEED,
                     allow_writes=True, reconnect=Reconnect(min_delay=0.05, max_delay=0.5),
                     on_event=events).connect() as scale:
        env.rig.run(lambda: setattr(env.rig.bench, "extra_g", 50.0))
        scale.wait_for(lambda c: c.weight == 50.0, timeout=10)
        scale.tare()
        assert env.rig.run(lambda: env.skale.tare_offset) == 50.0
        env.rig.host.drop_all()
        events.wait_for(lambda e: isinstance(e, ConnectionStateChanged)
                        and e.state is ConnectionState.RECONNECTING)
        scale.wait_for(lambda c: c.connected and not c.stale, timeout=20)
        env.rig.run(lambda: setattr(env.rig.bench, "extra_g", 60.0))
        scale.wait_for(lambda c: c.weight == 10.0, timeout=10)


def test_the_scale_is_released_while_the_de1_sleeps(rig: DE1Rig) -> None:
    """pyDE1's capture/release (spec section 10): the scale link is dropped while the DE1
    sleeps, with no reconnect attempts, and re-captured when the DE1 leaves Sleep."""
    from pyburnerkit.de1.client import DE1Client
    de1 = DE1Client(rig.de1.address, transport=sim_transport(rig), timeout=5,
                    allow_writes=True)
    scale = SkaleClient(rig.skale.address, transport=sim_transport(rig), time_scale=SPEED,
                        allow_writes=True)
    states = Recorder()

    def since_follow() -> list:  # link states after the first release
        seen = [e.state for e in states.events]
        return seen[seen.index(ConnectionState.RECONNECTING):] \
            if ConnectionState.RECONNECTING in seen else []

    try:
        scale.subscribe(states, ConnectionStateChanged)
        de1.connect()
        scale.connect()
        states.wait_for(lambda e: e.state is ConnectionState.CONNECTED)
        sub = scale.follow(de1)  # the simulated DE1 starts asleep: released at once
        states.wait_for(lambda e: e.state is ConnectionState.RECONNECTING)
        assert scale.released and rig.run(lambda: rig.skale.link) is None
        connects = rig.run(lambda: rig.skale.commands.count(codec.CMD_GRAMS))
        de1.wake()
        states.wait_for(lambda e: len(since_follow()) >= 2)
        # exactly one drop and one reconnect: nothing retried while released
        assert since_follow() == [ConnectionState.RECONNECTING, ConnectionState.CONNECTED]
        assert not scale.released and rig.run(lambda: rig.skale.link) is not None
        assert rig.run(lambda: rig.skale.commands.count(codec.CMD_GRAMS)) == connects + 1
        scale.tare()  # works again after the capture
        de1.sleep()
        states.wait_for(lambda e: len(since_follow()) >= 3)
        assert since_follow()[2] is ConnectionState.RECONNECTING and scale.released
        sub.cancel()
        scale.capture()
        states.wait_for(lambda e: len(since_follow()) >= 4)
        assert since_follow()[3] is ConnectionState.CONNECTED
    finally:
        scale.close()
        de1.close()
