"""CyclerClient / ChannelClient against the simulated cycler over real TCP."""

from __future__ import annotations

import logging
import threading
from typing import Any, List

import pytest

from pyburnerkit import (AuthenticationError, ConfigurationError, ConnectionLostError,
                         ConnectionState, DeviceError, ProtocolError, UnsupportedFeatureError,
                         WriteNotAllowedError)
from pyburnerkit.arbin import codec
from pyburnerkit.arbin.client import ChannelClient, CyclerClient, resolve_credentials
from pyburnerkit.arbin.models import (ChannelState, ChannelStateChanged, CommandAcknowledged,
                                      InfoSelection, StartResult, StatusSnapshot)
from pyburnerkit.arbin.sim import ArbinSim

from ..helpers import CallInThread, Recorder, wait_until
from .conftest import FAST, SECRET, USER


def make(sim: ArbinSim, clients: List[Any], cls: Any = CyclerClient, **kw: Any) -> Any:
    kw.setdefault("username", USER)
    kw.setdefault("password", SECRET)
    kw.setdefault("timeout", 5.0)
    kw.setdefault("connect_timeout", 5.0)
    kw.setdefault("reconnect", FAST)
    client = cls(sim.endpoint, **kw)
    clients.append(client)
    return client


# ---------------------------------------------------------------------- reading
def test_login_details_and_one_channel(cycler: CyclerClient) -> None:
    assert cycler.channel_count == 16 and cycler.info.serial_number == "207855"
    status = cycler.read_status(16)
    assert status.channel == 16 and status.state is ChannelState.IDLE
    assert status.aux["temperature"][0].value == pytest.approx(25.0)
    assert cycler.cached_status(16) == status and not cycler.is_stale(16)
    assert cycler.read_serial() == 207855


def test_list_and_all_channels_use_one_request(sim: ArbinSim, cycler: CyclerClient) -> None:
    before = sim.count(codec.ChannelInfoRequest)
    assert [s.channel for s in cycler.read_statuses([5, 2, 9])] == [5, 2, 9]
    assert len(cycler.read_all_statuses()) == 16
    assert sim.count(codec.ChannelInfoRequest) == before + 2
    assert sorted(cycler.statuses) == list(range(1, 17))
    sim.preset(4, schedule="Rest+207855.sdx")
    running = cycler.read_all_statuses(InfoSelection.RUNNING)
    assert [s.channel for s in running] == [4]


def test_mits10_all_channel_answer_to_a_one_channel_request(clock, clients) -> None:
    with ArbinSim(16, username=USER, password=SECRET, mits10=True, clock=clock).start() as sim:
        sim.preset(6, schedule="Rest+207855.sdx", test_name="six")
        client = make(sim, clients).connect()
        status = client.read_status(6)
        assert status.channel == 6 and status.test_name == "six"
        client.close()


def test_channels_are_checked_before_sending(sim: ArbinSim, cycler: CyclerClient) -> None:
    before = len(sim.run_sync(lambda: list(sim.received)))
    for bad in (0, 17, -1, 2.5, "3"):
        with pytest.raises(ConfigurationError, match="channel"):
            cycler.read_status(bad)
    with pytest.raises(ConfigurationError, match=r"1\.\.16"):
        cycler.read_statuses([1, 40])
    assert len(sim.run_sync(lambda: list(sim.received))) == before


def test_watch_delivers_snapshots_and_state_changes(sim: ArbinSim, clients, clock) -> None:
    events = Recorder()
    client = make(sim, clients, on_event=events).connect()
    with client.watch(0.02, channels=[2, 3]):
        first = events.wait_for(lambda e: isinstance(e, StatusSnapshot))
        assert [s.channel for s in first.statuses] == [2, 3]
        sim.preset(3, schedule="Rest+207855.sdx")
        change = events.wait_for(lambda e: isinstance(e, ChannelStateChanged)
                                 and e.channel == 3 and e.state is ChannelState.REST)
        assert change.previous is ChannelState.IDLE
        client.wait_for(lambda c: c.cached_status(3).state is ChannelState.REST)
    assert client.cached_status(1) is None


# ---------------------------------------------------------------------- control
def test_control_round_trip(sim: ArbinSim, channel: ChannelClient, clock) -> None:
    channel.assign_schedule("MV_Charge.sdx")
    channel.start("closed-loop")
    assert channel.read_status().state is ChannelState.CHARGE
    channel.set_meta_variable(1, 0.75)
    channel.set_meta_variables({2: 1.0, (3, 16): 2.0})  # mv numbers or (channel, mv) keys
    assert sim.meta_variables(3) == {1: 0.75, 2: 1.0, 16: 2.0}
    clock.advance(5)
    assert channel.read_status().current_a == pytest.approx(0.75)
    channel.jump_to_step(1)
    channel.stop()
    assert channel.read_status().state is ChannelState.IDLE
    channel.resume()
    assert channel.read_status().is_running
    channel.stop(all_channels=True)


def test_non_success_results_raise_device_error_with_code(sim, channel: ChannelClient) -> None:
    acks = Recorder()
    channel.subscribe(acks, CommandAcknowledged)
    with pytest.raises(DeviceError) as info:
        channel.start("t")
    assert info.value.code == 0x15 and "no schedule assigned" in str(info.value)
    assert "channel 3" in str(info.value)
    with pytest.raises(DeviceError) as info:
        channel.set_meta_variable(1, 2.0)
    assert info.value.code == 0x12 and info.value.detail == "channel is not running"
    ack = acks.wait_for(lambda e: e.command == "start")
    assert ack.result is StartResult.NO_SCHEDULE_ASSIGNED and not ack.ok


def test_start_several_channels_names_the_failing_one(sim, channel: ChannelClient) -> None:
    channel.assign_schedule("Rest+207855.sdx", all_channels=True)
    sim.set_state(5, ChannelState.UNSAFE)
    with pytest.raises(DeviceError, match="channel 5") as info:
        channel.start("multi", channels=[3, 4, 5])
    assert info.value.code == 0x12
    channel.start("multi", channels=[3, 4])
    assert sim.channel_status(4).test_name == "multi"


def test_writes_need_allow_writes_and_bad_values_never_reach_the_cycler(sim, clients) -> None:
    client = make(sim, clients, ChannelClient, channel=1).connect()
    writer = make(sim, clients, ChannelClient, channel=1, allow_writes=True).connect()

    def commands() -> int:
        return sim.run_sync(lambda: sum(not isinstance(r, codec.LoginRequest)
                                        for r in sim.received))

    before = commands()
    for call in (lambda: client.start("t"), lambda: client.assign_schedule("x.sdx"),
                 lambda: client.set_meta_variable(1, 1.0), lambda: client.jump_to_step(2),
                 lambda: client.resume(), lambda: client.continue_test(),
                 lambda: client.set_meta_variables({1: 1.0}), lambda: client.stop(),
                 lambda: client.stop(all_channels=True)):
        with pytest.raises(WriteNotAllowedError, match="allow_writes=True"):
            call()
    writer.stop()  # the one command below that reaches the cycler
    with pytest.raises(ConfigurationError, match=r"meta variable number=17 .* 1\.\.16"):
        writer.set_meta_variable(17, 1.0)
    with pytest.raises(ConfigurationError, match="71 characters"):
        writer.start("n" * 80)
    with pytest.raises(ConfigurationError, match="finite"):
        writer.set_meta_variable(1, float("inf"))
    with pytest.raises(ConfigurationError, match="step"):
        writer.jump_to_step(0)
    with pytest.raises(ConfigurationError, match=r"\(channel, mv\) pair"):
        writer.set_meta_variables({(1, 2, 3): 1.0})
    with pytest.raises(ConfigurationError, match=r"channel=17 .* 1\.\.16"):
        writer.set_meta_variables({(17, 1): 1.0})
    with pytest.raises(ConfigurationError, match=r"0 entries .* 1\.\.160 entries"):
        writer.set_meta_variables({})
    assert commands() == before + 1  # only the stop reached the cycler


def test_allow_control_zero_is_refused_client_side(clients) -> None:
    with ArbinSim(2, username=USER, password=SECRET, allow_control=False).start() as sim:
        client = make(sim, clients, ChannelClient, channel=1, allow_writes=True).connect()
        with pytest.raises(UnsupportedFeatureError, match="allow_control"):
            client.start("t")
        client.close()


# ---------------------------------------------------------------------- credentials
def test_refused_login_is_an_authentication_error_without_secrets(sim, clients, caplog) -> None:
    caplog.set_level(logging.DEBUG, logger="pyburnerkit")
    client = make(sim, clients, password="wrong-Pa55word")
    with pytest.raises(AuthenticationError) as info:
        client.connect()
    text = str(info.value) + repr(info.value) + repr(client) + caplog.text
    assert "wrong-Pa55word" not in text and USER not in text
    assert client.closed


def test_credentials_never_in_logs_or_reprs(sim, clients, caplog) -> None:
    caplog.set_level(logging.DEBUG, logger="pyburnerkit")
    traced: List[Any] = []
    client = make(sim, clients, trace=lambda d, f: traced.append(f)).connect()
    client.read_status(1)
    assert any("credentials redacted" in str(f) for f in traced)
    everything = caplog.text + repr(client) + repr(client._credentials) + repr(traced) + \
        repr(client._session)
    assert SECRET not in everything and SECRET.encode().hex() not in everything.replace(" ", "")
    assert USER not in everything


def test_credentials_from_environment_and_env_file(sim, clients, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("ARBIN_CTI_USERNAME", USER)
    monkeypatch.setenv("ARBIN_CTI_PASSWORD", "from-environment")
    env = tmp_path / ".env"
    env.write_text(f"ARBIN_CTI_PASSWORD={SECRET}\n")
    with pytest.raises(AuthenticationError):
        make(sim, clients, username=None, password=None).connect()
    client = make(sim, clients, username=None, password=None, env_file=str(env)).connect()
    assert client.connected  # the file wins over the environment, as in pycti
    monkeypatch.delenv("ARBIN_CTI_USERNAME")
    with pytest.raises(ConfigurationError, match="ARBIN_CTI_USERNAME"):
        resolve_credentials(None, None, None)
    with pytest.raises(ConfigurationError, match="does not exist"):
        resolve_credentials("u", "p", str(tmp_path / "missing.env"))


# ---------------------------------------------------------------------- faults
def test_reconnect_logs_in_again_before_anything_else(sim, clients) -> None:
    events = Recorder()
    client = make(sim, clients, on_event=events).connect()
    client.read_status(1)
    assert sim.logins == 1
    sim.disconnect()
    client.wait_for(lambda c: c.connected and sim.logins == 2, timeout=10)
    assert client.read_status(2).channel == 2
    kinds = sim.run_sync(lambda: [type(r).__name__ for r in sim.received])
    second_login = [i for i, k in enumerate(kinds) if k == "LoginRequest"][1]
    assert kinds[second_login - 1] == "ChannelInfoRequest"  # nothing slipped in before it
    assert events.wait_for(lambda e: getattr(e, "state", None) is ConnectionState.RECONNECTING)


def test_drop_during_a_start_fails_it_and_never_resends(sim, channel: ChannelClient) -> None:
    channel.assign_schedule("Rest+207855.sdx")
    sim.drop_on_next(codec.START_SCHEDULE, apply=True)
    with pytest.raises(ConnectionLostError, match="not retried"):
        channel.start("once")
    channel.wait_for(lambda c: c.connected, timeout=10)
    assert channel.read_status().test_name == "once"  # the cycler did start it
    assert sim.count(codec.StartRequest) == 1


def test_queued_requests_survive_a_drop_and_go_out_after_login(sim, channel) -> None:
    sim.silence(True)  # the first request stays on the wire (robust under CPU load)
    first = CallInThread(lambda: channel.read_status(1))
    wait_until(lambda: sim.count(codec.ChannelInfoRequest) >= 1)
    second = CallInThread(lambda: channel.read_status(2))
    wait_until(lambda: channel._session._queue, message="the second request queued")
    sim.silence(False)
    sim.disconnect()
    first.join(10)
    second.join(10)
    assert isinstance(first.error, ConnectionLostError)
    assert second.error is None and second.result.channel == 2


def test_garbage_is_a_protocol_error_then_the_link_recovers(sim, channel) -> None:
    sim.silence(True)  # the real answer never comes; only the garbage does
    call = CallInThread(lambda: channel.read_status(1))
    wait_until(lambda: sim.count(codec.ChannelInfoRequest) >= 1)
    bad = bytearray(codec.encode_feedback(codec.command_feedback(codec.STOP_SCHEDULE, 0, 0)))
    bad[-1] ^= 0xFF
    sim.send_raw(bytes(bad))
    call.join(10)
    assert isinstance(call.error, ProtocolError) and "checksum" in str(call.error)
    assert call.error.frames, "the recent frames travel with the error"
    sim.silence(False)
    # A re-login sent while the cycler was still silent is retried after the call timeout.
    channel.wait_for(lambda c: c.connected, timeout=20)
    assert channel.read_status(1).channel == 1


def test_many_threads_share_one_client(sim, cycler: CyclerClient) -> None:
    results: List[Any] = []
    lock = threading.Lock()

    def worker(ch: int) -> None:
        for _ in range(5):
            status = cycler.read_status(ch)
            with lock:
                results.append(status.channel == ch)

    threads = [threading.Thread(target=worker, args=(c,)) for c in range(1, 9)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(20)
    assert len(results) == 40 and all(results)


def test_watch_survives_a_reconnect_and_can_be_replaced(sim, clients) -> None:
    events = Recorder()

    def snapshot_after(mark: int, channels: List[int]) -> Any:
        return events.wait_for(lambda e: isinstance(e, StatusSnapshot)
                               and any(x is e for x in events.events[mark:])
                               and [s.channel for s in e.statuses] == channels)

    client = make(sim, clients, on_event=events).connect()
    first = client.watch(0.02, channels=[1])
    snapshot_after(0, [1])
    sim.disconnect()
    back = events.wait_for(lambda e: getattr(e, "state", None) is ConnectionState.CONNECTED
                           and e.previous is ConnectionState.RECONNECTING)
    snapshot_after(next(i for i, e in enumerate(events.events) if e is back), [1])
    second = client.watch(0.02, channels=[2])
    assert not first.active
    first.cancel()  # a replaced handle must not stop the newer watch
    snapshot_after(len(events.events), [2])
    snapshot_after(len(events.events), [2])  # and it keeps polling
    second.cancel()
    assert not client.is_stale(2)


def test_abandoned_request_never_pairs_a_late_feedback_with_the_next(sim, channel) -> None:
    from pyburnerkit import DeviceTimeoutError
    sim.delay_responses(0.5)
    with pytest.raises(DeviceTimeoutError):
        channel.read_status(1, timeout=0.1)
    sim.delay_responses(0)
    # The late feedback for channel 1 must not answer this request for channel 2.
    assert channel.read_status(2, timeout=5).channel == 2
    assert channel.read_status(3, timeout=5).channel == 3


def test_feedback_slower_than_reply_timeout_drops_the_link(sim, clients) -> None:
    client = make(sim, clients, ChannelClient, channel=1, allow_writes=True,
                  reply_timeout=0.2).connect()
    sim.preset(1, schedule="Rest+207855.sdx")
    sim.delay_responses(1.0)
    with pytest.raises(ConnectionLostError) as info:
        client.set_meta_variable(1, 2.0, timeout=5)
    assert "within 0.2 s" in str(info.value)
    sim.delay_responses(0)
    client.wait_for(lambda c: c.connected, timeout=10)
    assert sim.count(codec.SetMVRequest) == 1


def test_silent_cycler_at_connect_is_a_connect_timeout(sim, clients) -> None:
    from pyburnerkit import ConnectTimeoutError
    sim.silence(True)
    client = make(sim, clients, connect_timeout=0.3, reconnect=None)
    with pytest.raises(ConnectTimeoutError) as info:
        client.connect()
    assert SECRET not in str(info.value) and client.closed


def test_in_process_simulator_url() -> None:
    with CyclerClient("sim://?channels=8&time_scale=60&seed=2") as cycler:
        assert cycler.info.num_channels == 8
        assert cycler.read_status(8).channel == 8
        assert cycler.simulator is not None and cycler.simulator.logins == 1
    with pytest.raises(ConfigurationError, match="unknown sim:// option"):
        CyclerClient("sim://?warp=1")


def test_command_the_cycler_lacks_is_unsupported_and_the_link_stays(clients) -> None:
    from pyburnerkit.arbin.sim import UnknownRequest
    with ArbinSim(4, username=USER, password=SECRET,
                  unsupported={codec.GET_SERIAL, codec.UPDATE_MV_ADVANCED}).start() as sim:
        client = make(sim, clients, ChannelClient, channel=1, allow_writes=True).connect()
        with pytest.raises(UnsupportedFeatureError, match="0xBB111111"):
            client.read_serial()
        with pytest.raises(UnsupportedFeatureError):
            client.set_meta_variables({1: 1.0})
        assert client.read_status().channel == 1
        assert sim.logins == 1 and sim.count(UnknownRequest) == 2  # no reconnect needed
        client.close()


def test_a_decoder_bug_is_a_protocol_error_and_never_kills_the_io_thread(sim, clients,
                                                                         monkeypatch) -> None:
    # Whatever goes wrong while a received frame is handled (here: a decoder with a bug) must
    # end as ProtocolError plus the documented recovery (reconnect), never as a dead client.
    client = make(sim, clients).connect()
    real = codec.decode_feedback
    broken = threading.Event()

    def decode_once_broken(frame: bytes) -> Any:
        if not broken.is_set() and codec.command_of(frame) == codec.GET_SERIAL_FEEDBACK:
            broken.set()
            raise ValueError("a bug in a decoder")
        return real(frame)

    monkeypatch.setattr(codec, "decode_feedback", decode_once_broken)
    with pytest.raises(ProtocolError, match="a bug in a decoder") as info:
        client.read_serial()
    assert isinstance(info.value.__cause__, ValueError)
    assert client.protocol_errors == 1
    client.wait_for(lambda c: c.connected, timeout=10)
    assert client.io_thread.is_alive() and not client.closed
    assert client.read_serial() == 207855


def test_stray_partial_frame_while_idle_never_fails_the_next_request(sim, clients) -> None:
    # CTI is lock-step: bytes that arrive while nothing is outstanding are out of step. A
    # partial frame used to sit in the reader and corrupt the next request's feedback (which
    # then failed with ProtocolError, after the cycler had carried the request out).
    client = make(sim, clients, ChannelClient, channel=1, allow_writes=True).connect()
    sim.preset(1, schedule="Rest+207855.sdx")
    stray = codec.encode_feedback(codec.command_feedback(codec.STOP_SCHEDULE, 0, 0))[:40]
    sim.send_raw(stray)
    wait_until(lambda: client._session._reader.buffered == len(stray),
               message="the stray bytes reaching the client")
    client.set_meta_variable(1, 0.5)  # goes out on a fresh link and succeeds
    assert sim.meta_variables(1) == {1: 0.5} and sim.count(codec.SetMVRequest) == 1
    assert client.protocol_errors == 1 and sim.logins == 2


def test_a_replaced_watch_never_publishes_its_poll_in_flight(sim, clients) -> None:
    events = Recorder()
    client = make(sim, clients, on_event=events).connect()
    first = client.watch(0.01, channels=[4])
    events.wait_for(lambda e: isinstance(e, StatusSnapshot))
    sim.delay_responses(0.5)  # every poll the cycler receives from now on answers late
    sim.preset(4, schedule="Rest+207855.sdx")  # so polls received from now on show it running
    polls = sim.count(codec.ChannelInfoRequest)
    wait_until(lambda: sim.count(codec.ChannelInfoRequest) > polls,
               message="a poll of the first watch in flight")
    second = client.watch(0.01, channels=[5])  # replaces the first while its poll is held
    sim.delay_responses(0)
    events.wait_for(lambda e: isinstance(e, StatusSnapshot)
                    and [s.channel for s in e.statuses] == [5])
    first.cancel()
    second.cancel()
    running_four = [e for e in events.events if isinstance(e, StatusSnapshot)
                    and any(s.channel == 4 and s.is_running for s in e.statuses)]
    assert running_four == [], "the replaced watch published its late poll"


def test_is_stale_takes_a_cache_topic_as_every_client_does(cycler: CyclerClient) -> None:
    # Regression: a topic string was looked up as "channel/<topic>" and so always read stale.
    cycler.read_status(1, timeout=5)
    assert cycler.is_stale("cycler") is False  # the login feedback is fresh
    assert cycler.is_stale(1) is False
    assert cycler.is_stale("no-such-topic") is True
