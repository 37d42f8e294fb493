"""Issue 14: the connect / kick-out command, get-MV, update_channel_status on ArbinSim, and the
CLI's $PYBURNERKIT_ARBIN_HOST - codec, simulator over real TCP, client, CLI."""

from __future__ import annotations

import json
import struct

import pytest
from hypothesis import given, settings, strategies as st

from pyburnerkit.arbin import (ChannelState, ConnectResult, GetMVResult, MetaCode,
                               MetaValueType, codec)
from pyburnerkit.arbin.client import ChannelClient, CyclerClient
from pyburnerkit.arbin.sim import ArbinSim
from pyburnerkit.cli.main import main
from pyburnerkit.errors import (ConfigurationError, DeviceError, ProtocolError,
                                WriteNotAllowedError)

from .conftest import FAST, SECRET, USER, RawCti


# ------------------------------------------------------------------ codec
def test_connect_frames_have_the_documented_sizes() -> None:
    request = codec.encode_request(codec.ConnectRequest(kick_out=True))
    assert len(request) == 58 and struct.unpack_from("<III", request, 8) == \
        (46, 0xEEAB0002, 0)
    assert struct.unpack_from("<I", request, 20)[0] == 1 and request[24:56] == bytes(32)
    assert codec.decode_request(request) == codec.ConnectRequest(True)
    feedback = codec.encode_feedback(codec.ConnectFeedback(False, ConnectResult.REJECTED))
    assert len(feedback) == 62 and struct.unpack_from("<I", feedback, 8)[0] == 62
    decoded = codec.decode_feedback(feedback)
    assert decoded == codec.ConnectFeedback(False, ConnectResult.REJECTED) and not decoded.ok


def test_get_mv_frames_round_trip() -> None:
    request = codec.encode_request(codec.GetMVRequest(3, MetaCode.PV_VOLTAGE))
    assert len(request) == 50 and codec.command_of(request) == 0xBB150003
    assert codec.decode_request(request) == codec.GetMVRequest(3, 21)
    for kind, value in ((MetaValueType.DOUBLE, 3.25), (MetaValueType.LONG, 7)):
        frame = codec.encode_feedback(codec.GetMVFeedback(3, GetMVResult.SUCCESS, 21, kind,
                                                          value))
        assert len(frame) == 75
        got = codec.decode_feedback(frame)
        assert got.value == value and type(got.value) is type(value) and got.ok
    with pytest.raises(ConfigurationError, match="meta code"):
        codec.encode_request(codec.GetMVRequest(0, 2 ** 31))


@settings(max_examples=60, deadline=None)
@given(st.binary(max_size=120))
def test_random_or_cut_feedback_bytes_are_protocol_errors(junk: bytes) -> None:
    good = codec.encode_feedback(codec.GetMVFeedback(0, GetMVResult.SUCCESS, 52))
    for frame in (junk, good[:len(junk) % len(good)],
                  codec.build_frame(codec.GET_MV_FEEDBACK, junk, feedback=True),
                  codec.build_frame(codec.CONNECT_FEEDBACK, junk, feedback=True)):
        try:
            codec.decode_feedback(frame)
        except ProtocolError:
            pass


# ------------------------------------------------------------------ simulator
def test_connect_before_login_is_answered(sim: ArbinSim) -> None:
    with RawCti(sim.port, login=False) as raw:
        # Arbin's own client sends connect first; the simulator answers instead of dropping.
        assert raw.ask(codec.ConnectRequest(True)) == codec.ConnectFeedback(True)
        assert raw.ask(codec.LoginRequest(USER, SECRET)).info.result.ok


def test_a_full_server_rejects_or_kicks_out() -> None:
    with ArbinSim(4, username=USER, password=SECRET, max_clients=1).start() as sim:
        with RawCti(sim.port) as first, RawCti(sim.port) as second:
            refused = second.ask(codec.ConnectRequest(False))
            assert refused.result is ConnectResult.REJECTED
            assert second.ask(codec.ConnectRequest(True)).ok
            assert sim.kicked_out == 1
            with pytest.raises(ConnectionResetError):  # the first client was dropped (RST)
                first.sock.recv(10)


def test_get_mv_answers_from_the_running_channel(sim: ArbinSim, clock) -> None:
    sim.preset(2, schedule="CC_Cycle.sdx", test_name="mv")
    clock.advance(90.0)  # past step 1 (60 s rest): charging in step 2
    with RawCti(sim.port) as raw:
        status = sim.channel_status(2)
        volts = raw.ask(codec.GetMVRequest(1, MetaCode.PV_VOLTAGE))
        assert volts.ok and volts.value == pytest.approx(status.voltage_v)
        step = raw.ask(codec.GetMVRequest(1, MetaCode.PV_STEP_INDEX))
        assert (step.value_type, step.value) == (MetaValueType.LONG, 2)
        assert raw.ask(codec.GetMVRequest(1, MetaCode.PV_CYCLE_INDEX)).value == 1
        assert raw.ask(codec.SetMVRequest(1, MetaCode.MV_UD3, 1.5)).ok
        assert raw.ask(codec.GetMVRequest(1, MetaCode.MV_UD3)).value == 1.5
        assert raw.ask(codec.GetMVRequest(1, 999)).result is \
            GetMVResult.META_CODE_DOES_NOT_EXIST
        assert raw.ask(codec.GetMVRequest(1, MetaCode.TC_TIMER1)).result is \
            GetMVResult.META_CODE_UNSUPPORTED
        assert raw.ask(codec.GetMVRequest(40, 21)).result is GetMVResult.CHANNEL_INDEX_ERROR


def test_update_channel_status_pins_readings_until_cleared(sim: ArbinSim) -> None:
    assert sim.update_channel_status(4, {"voltage_v": 2.69, "status": "Rest",
                                         "testname": "pinned"}) is True
    status = sim.channel_status(4)
    assert status.voltage_v == pytest.approx(2.69) and status.state is ChannelState.REST
    assert status.test_name == "pinned"
    with RawCti(sim.port) as raw:
        assert raw.ask(codec.GetMVRequest(3, MetaCode.PV_VOLTAGE)).value == pytest.approx(2.69)
    with pytest.raises(ConfigurationError, match="cannot set 'bogus'"):
        sim.update_channel_status(4, {"bogus": 1})
    with pytest.raises(ConfigurationError, match="is not a channel state"):
        sim.update_channel_status(4, {"status": "Sleeping"})
    with pytest.raises(ConfigurationError, match="channel"):
        sim.update_channel_status(17, {"voltage_v": 1.0})
    sim.clear_channel_status(4)
    assert sim.channel_status(4).state is ChannelState.IDLE
    assert sim.channel_status(4).voltage_v > 3.0


# ------------------------------------------------------------------ client
def test_client_reads_meta_variables(sim: ArbinSim, channel: ChannelClient) -> None:
    channel.assign_schedule("MV_Charge.sdx")
    channel.start("get-mv")
    channel.set_meta_variable(1, 0.75)
    assert channel.read_meta_variable(MetaCode.MV_UD1) == pytest.approx(0.75)
    assert channel.read_meta_variable(MetaCode.PV_STEP_INDEX) == 1
    other = channel.read_meta_variable(MetaCode.PV_VOLTAGE, channel=5)
    assert other == pytest.approx(sim.channel_status(5).voltage_v)
    with pytest.raises(DeviceError, match="meta code does not exist") as info:
        channel.read_meta_variable(999)
    assert info.value.code == 0x12
    with pytest.raises(ConfigurationError, match="17"):
        channel.read_meta_variable(21, channel=17)


def test_cycler_client_needs_a_channel_for_get_mv(cycler: CyclerClient) -> None:
    with pytest.raises(ConfigurationError, match="channel="):
        cycler.read_meta_variable(MetaCode.PV_VOLTAGE)
    assert isinstance(cycler.read_meta_variable(MetaCode.PV_VOLTAGE, channel=1), float)


def test_send_connect_and_the_kick_out_opt_in(clients) -> None:
    with ArbinSim(4, username=USER, password=SECRET, max_clients=1).start() as sim:
        first = CyclerClient(sim.endpoint, username=USER, password=SECRET, reconnect=None)
        clients.append(first)
        first.connect()
        reader = CyclerClient(sim.endpoint, username=USER, password=SECRET, reconnect=None)
        clients.append(reader)
        reader.connect()
        with pytest.raises(DeviceError, match="connect refused") as info:
            reader.send_connect()
        assert info.value.code == 1
        with pytest.raises(WriteNotAllowedError, match="allow_writes"):
            reader.send_connect(kick_out=True)
        assert sim.kicked_out == 0  # nothing was sent
        boss = ChannelClient(sim.endpoint, channel=1, allow_writes=True, username=USER,
                             password=SECRET, reconnect=FAST)
        clients.append(boss)
        boss.connect()
        assert boss.send_connect(kick_out=True) is ConnectResult.ACCEPTED
        assert sim.kicked_out == 2  # room for one: both earlier clients dropped


def test_stop_and_resume_share_one_helper(channel: ChannelClient, sim: ArbinSim) -> None:
    channel.assign_schedule("CC_Cycle.sdx")
    channel.start("fold")
    channel.stop()
    assert sim.channel_status(3).state is ChannelState.IDLE
    channel.resume()
    assert sim.channel_status(3).is_running
    reader = ChannelClient(sim.endpoint, channel=3, username=USER, password=SECRET)
    with pytest.raises(WriteNotAllowedError, match="^resume every channel changes"):
        reader.resume(all_channels=True)
    with pytest.raises(WriteNotAllowedError, match="^stop changes"):
        reader.stop()
    reader.close()


# ------------------------------------------------------------------ CLI
def test_cli_host_comes_from_the_environment(sim: ArbinSim, monkeypatch, capsys) -> None:
    monkeypatch.setenv("ARBIN_CTI_USERNAME", USER)
    monkeypatch.setenv("ARBIN_CTI_PASSWORD", SECRET)
    monkeypatch.setenv("PYBURNERKIT_ARBIN_HOST", f"127.0.0.1:{sim.port}")
    assert main(["arbin", "status", "--channel", "2", "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out)[0]["channel"] == 2
    # --host wins over the variable
    monkeypatch.setenv("PYBURNERKIT_ARBIN_HOST", "127.0.0.1:1")
    assert main(["arbin", "--host", f"cti://127.0.0.1:{sim.port}", "status", "--channel", "5",
                 "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out)[0]["channel"] == 5
    assert sim.logins == 2
