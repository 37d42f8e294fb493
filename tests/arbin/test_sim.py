"""The simulated cycler's state machine and quirks, driven over real TCP with a raw CTI socket."""

from __future__ import annotations

import socket
import struct

import pytest

from pyburnerkit.arbin import codec
from pyburnerkit.arbin.models import (AssignResult, ChannelState, ContinueResult, LoginResult,
                                      SetMVResult, StartResult, StopResult)
from pyburnerkit.arbin.sim import ArbinSim
from pyburnerkit.errors import ConfigurationError

from .conftest import SECRET, USER, RawCti


def ask_raw(cti: RawCti, frame: bytes):
    """Send a hand-made frame and decode the one feedback."""
    cti.sock.sendall(frame)
    while True:
        data = cti.sock.recv(1 << 20)
        if not data:
            raise ConnectionResetError("the simulator closed the connection")
        frames = cti.reader.feed(data)
        if frames:
            return codec.decode_feedback(frames[0])


def info(cti: RawCti, index: int, aux: int = 0):
    return cti.ask(codec.ChannelInfoRequest(index, 1, aux))


def test_login_checks_credentials(sim: ArbinSim) -> None:
    with RawCti(sim.port, login=False) as cti:
        assert cti.ask(codec.LoginRequest(USER, "wrong")).info.result is LoginResult.FAILED
        ok = cti.ask(codec.LoginRequest(USER, SECRET)).info
        assert ok.result is LoginResult.SUCCESS and ok.num_channels == 16
        assert cti.ask(codec.LoginRequest(USER, SECRET)).info.result is \
            LoginResult.ALREADY_LOGGED_IN


def test_commands_before_login_drop_the_connection(sim: ArbinSim) -> None:
    with RawCti(sim.port, login=False) as cti:
        with pytest.raises((ConnectionResetError, ConnectionError)):
            info(cti, 0)


def test_full_test_lifecycle_with_the_cell_model(sim: ArbinSim, clock) -> None:
    with RawCti(sim.port) as cti:
        assert info(cti, 2).statuses[0].state is ChannelState.IDLE
        fb = cti.ask(codec.StartRequest("t", (2,)))
        assert fb.result is StartResult.NO_SCHEDULE_ASSIGNED
        fb = cti.ask(codec.AssignScheduleRequest(2, "Missing.sdx"))
        assert fb.result is AssignResult.SCHEDULE_NOT_FOUND
        assert cti.ask(codec.AssignScheduleRequest(2, "CC_Cycle.sdx")).ok
        fb = cti.ask(codec.StartRequest("t", (2,)))
        assert fb.ok and fb.channel_index == 2  # the feedback echoes the channel
        rest = info(cti, 2).statuses[0]
        assert rest.state is ChannelState.REST and rest.step_and_cycle == "[1] 1: Step_A, Rest"
        assert cti.ask(codec.AssignScheduleRequest(2, "CC_Cycle.sdx")).result is \
            AssignResult.CHANNEL_RUNNING
        clock.advance(61)
        charge = info(cti, 2).statuses[0]
        assert charge.state is ChannelState.CHARGE and (charge.cycle, charge.step) == (1, 2)
        assert charge.current_a == pytest.approx(1.0) and charge.voltage_v > rest.voltage_v
        assert charge.charge_capacity_ah > 0 and charge.exit_condition == "Step_Time>=60"
        assert charge.test_time_s == pytest.approx(61, abs=1e-3)
        clock.advance(6 * 3600)  # both cycles run to their voltage limits (~4.8 h)
        done = info(cti, 2).statuses[0]
        assert done.state is ChannelState.FINISHED and done.current_a == 0
        assert done.discharge_capacity_ah > 0.5 and done.charge_energy_wh > 0


def test_stop_resume_continue_and_jump(sim: ArbinSim, clock) -> None:
    with RawCti(sim.port) as cti:
        assert cti.ask(codec.StopRequest(4)).ok  # stopping an idle channel succeeds (quirk)
        assert cti.ask(codec.ResumeRequest(4)).result is StartResult.NO_SCHEDULE_ASSIGNED
        cti.ask(codec.AssignScheduleRequest(4, "CC_Cycle.sdx"))
        assert cti.ask(codec.ResumeRequest(4)).result is StartResult.TEST_NAME_PROBLEM
        assert cti.ask(codec.JumpRequest(4, 1)).result is StartResult.INVALID_GO_STEP
        cti.ask(codec.StartRequest("t", (4,)))
        assert cti.ask(codec.JumpRequest(4, 3)).ok
        assert info(cti, 4).statuses[0].state is ChannelState.DISCHARGE
        assert cti.ask(codec.StopRequest(4)).ok
        stopped = info(cti, 4).statuses[0]
        assert stopped.state is ChannelState.IDLE and stopped.exit_condition == "Stopped by CTI"
        assert cti.ask(codec.ResumeRequest(4)).ok
        assert info(cti, 4).statuses[0].step == 4
        assert cti.ask(codec.ContinueRequest((4,))).result is ContinueResult.CHANNEL_RUNNING
        sim.set_state(5, ChannelState.PAUSE)
        assert info(cti, 4).statuses[0].state is ChannelState.PAUSE
        assert cti.ask(codec.ContinueRequest((4,))).ok
        assert cti.ask(codec.JumpRequest(4, 99)).ok  # beyond the last step ends the test
        assert info(cti, 4).statuses[0].state is ChannelState.FINISHED
        assert cti.ask(codec.StopRequest(99)).result is StopResult.CHANNEL_DOES_NOT_EXIST


def test_start_several_channels_is_all_or_nothing(sim: ArbinSim) -> None:
    with RawCti(sim.port) as cti:
        cti.ask(codec.AssignScheduleRequest(0, "Rest+207855.sdx", assign_all=True))
        sim.set_state(3, ChannelState.UNSAFE)
        fb = cti.ask(codec.StartRequest("t", (0, 1, 2)))
        assert fb.result is StartResult.CHANNEL_RUNNING_OR_UNSAFE and fb.channel_index == 2
        assert all(s.state in (ChannelState.IDLE, ChannelState.UNSAFE)
                   for s in info(cti, -1).statuses)
        assert cti.ask(codec.StartRequest("t", (0, 1))).ok
        running = cti.ask(codec.ChannelInfoRequest(-1, 2, 0)).statuses
        assert [s.channel for s in running] == [1, 2]
        unsafe = cti.ask(codec.ChannelInfoRequest(-1, 3, 0)).statuses
        assert [s.channel for s in unsafe] == [3]


def test_meta_variables_only_apply_while_running(sim: ArbinSim, clock) -> None:
    with RawCti(sim.port) as cti:
        assert cti.ask(codec.SetMVRequest(6, 52, 1.5)).result is SetMVResult.CHANNEL_NOT_RUNNING
        cti.ask(codec.AssignScheduleRequest(6, "MV_Charge.sdx"))
        cti.ask(codec.StartRequest("mv", (6,)))
        assert cti.ask(codec.SetMVRequest(6, 77, 1.5)).result is \
            SetMVResult.META_CODE_DOES_NOT_EXIST
        assert cti.ask(codec.SetMVRequest(6, 52, 1.5, mv_type=2)).result is SetMVResult.FAILED
        assert cti.ask(codec.SetMVRequest(6, 52, 1.5)).ok
        clock.advance(10)
        assert info(cti, 6).statuses[0].current_a == pytest.approx(1.5)  # closed-loop current
        batch = codec.UpdateMVAdvancedRequest((codec.MVUpdate(6, 52, 0.5),
                                               codec.MVUpdate(6, 116, 9.0)))
        assert cti.ask(batch).ok
        assert cti.ask(batch).result is SetMVResult.UPDATE_TOO_FREQUENT  # < 200 ms apart
        clock.advance(0.3)
        assert cti.ask(batch).ok
        assert sim.meta_variables(7) == {1: 0.5, 16: 9.0}


def test_aux_readings_only_when_asked(sim: ArbinSim) -> None:
    with RawCti(sim.port) as cti:
        assert info(cti, 0).statuses[0].aux == {}
        aux = info(cti, 0, aux=0x400).statuses[0].aux
        assert set(aux) == {"voltage", "temperature"}
        assert aux["temperature"][0].value == pytest.approx(25.0)


def test_all_channel_reply_and_mits10_mode(clock) -> None:
    with ArbinSim(512, mits10=True, clock=clock).start() as big:
        with RawCti(big.port, "admin", "000000") as cti:
            all_ = info(cti, -1).statuses
            assert len(all_) == 512 and [s.channel for s in all_] == list(range(1, 513))
            single = info(cti, 5).statuses  # MITS 10 answers with every channel
            assert len(single) == 512
            assert cti.ask(codec.GetSerialRequest()).serial == 207855


def test_fault_injection(sim: ArbinSim) -> None:
    with RawCti(sim.port) as cti:
        sim.fail_next(codec.STOP_SCHEDULE, 0x11)
        assert cti.ask(codec.StopRequest(0)).result is StopResult.MONITOR_WINDOW_IN_USE
        assert cti.ask(codec.StopRequest(0)).ok
        sim.drop_on_next(codec.STOP_SCHEDULE)
        with pytest.raises((ConnectionError, OSError)):
            cti.ask(codec.StopRequest(0))
    assert sim.count(codec.StopRequest) == 3
    sim.refuse_connections(1)
    with pytest.raises(OSError):
        with RawCti(sim.port) as cti:
            pass
    with RawCti(sim.port) as cti:
        cti.sock.settimeout(0.3)
        sim.silence(True)
        with pytest.raises(socket.timeout):
            info(cti, 0)
        sim.silence(False)


def test_several_clients_share_the_cycler(sim: ArbinSim) -> None:
    with RawCti(sim.port) as a, RawCti(sim.port) as b:
        a.ask(codec.AssignScheduleRequest(9, "Rest+207855.sdx"))
        a.ask(codec.StartRequest("shared", (9,)))
        assert info(b, 9).statuses[0].test_name == "shared"
        assert sim.client_count == 2


def test_simulator_arguments_are_checked() -> None:
    with pytest.raises(ConfigurationError, match="1..512"):
        ArbinSim(513)


def test_requests_naming_no_channel_get_result_codes_and_never_kill_the_cycler(sim) -> None:
    # A start / continue frame with a channel count of 0 decodes fine but names no channel;
    # such a request once crashed the simulator thread for every client.
    start = codec.build_frame(codec.START_SCHEDULE,
                              codec.encode_wide("t", 72, "test name") + bytes(4),
                              feedback=False)
    cont = codec.build_frame(codec.CONTINUE_CHANNEL, bytes(4), feedback=False)
    batch = codec.build_frame(codec.UPDATE_MV_ADVANCED, bytes(20), feedback=False)
    with RawCti(sim.port) as cti, RawCti(sim.port) as other:
        for frame, expected in ((start, StartResult.NO_SELECTED_CHANNELS),
                                (cont, ContinueResult.INVALID_CHANNEL),
                                (batch, SetMVResult.FAILED)):
            cti.sock.sendall(frame)
            fb = _read_one(cti)
            assert fb.result is expected and fb.channel_index == -1
        assert info(other, 0).statuses[0].channel == 1


def _read_one(cti: RawCti):
    while True:
        data = cti.sock.recv(1 << 20)
        if not data:
            raise ConnectionResetError("closed")
        frames = cti.reader.feed(data)
        if frames:
            return codec.decode_feedback(frames[0])


def test_unhandled_request_drops_only_that_connection(sim, monkeypatch) -> None:
    def broken(req):
        raise RuntimeError("handler bug")

    monkeypatch.setattr(sim, "_on_GetSerialRequest", broken)
    with RawCti(sim.port) as victim, RawCti(sim.port) as bystander:
        with pytest.raises((ConnectionError, OSError)):
            victim.ask(codec.GetSerialRequest())
        assert info(bystander, 1).statuses[0].channel == 2  # the cycler still serves others
    with RawCti(sim.port) as late:
        assert info(late, 2).statuses[0].channel == 3


def test_fail_next_only_for_result_code_commands(sim) -> None:
    for command in (codec.CHANNEL_INFO, codec.LOGIN, codec.GET_SERIAL, 0x12345678):
        with pytest.raises(ConfigurationError, match="no result-code feedback"):
            sim.fail_next(command, 0x10)
    with pytest.raises(ConfigurationError, match="0..255"):
        sim.fail_next(codec.STOP_SCHEDULE, 256)
    sim.fail_next(codec.UPDATE_MV_ADVANCED, 0x14)
    with RawCti(sim.port) as cti:
        fb = cti.ask(codec.UpdateMVAdvancedRequest((codec.MVUpdate(5, 52, 1.0),)))
        assert fb.result is SetMVResult.UPDATE_TOO_FREQUENT and fb.channel_index == 5


def test_error_and_comm_failure_injection(sim: ArbinSim) -> None:
    with RawCti(sim.port) as cti:
        cti.ask(codec.AssignScheduleRequest(1, "Rest+207855.sdx"))
        cti.ask(codec.StartRequest("err", (1,)))
        sim.set_state(2, ChannelState.ERROR)
        sim.set_comm_failure(3)
        err, comm = info(cti, 1).statuses[0], info(cti, 2).statuses[0]
        assert err.state is ChannelState.ERROR and not err.is_running and err.current_a == 0
        assert comm.comm_failure and not info(cti, 0).statuses[0].comm_failure
        assert cti.ask(codec.SetMVRequest(1, 52, 1.0)).result is SetMVResult.CHANNEL_NOT_RUNNING
    with pytest.raises(ConfigurationError, match="use start"):
        sim.set_state(1, ChannelState.CHARGE)


def test_unknown_commands_get_the_unknown_command_feedback(sim: ArbinSim) -> None:
    from pyburnerkit.arbin.sim import UnknownRequest
    check_file = codec.build_frame(0xBB350003, bytes(8), feedback=False)  # a DLL-only command
    with RawCti(sim.port) as cti:
        cti.sock.sendall(check_file)
        fb = _read_one(cti)
        assert isinstance(fb, codec.UnknownCommandFeedback) and fb.request_command == 0xBB350003
        assert info(cti, 0).statuses[0].channel == 1  # the link stays in step
    assert sim.count(UnknownRequest) == 1
    with RawCti(sim.port, login=False) as cti:  # still: nothing before the log-in
        cti.sock.sendall(check_file)
        with pytest.raises((ConnectionError, OSError)):
            _read_one(cti)
    with pytest.raises(ConfigurationError, match="login"):
        ArbinSim(unsupported={codec.LOGIN})


@pytest.mark.parametrize("step_index", [-1, -5, -0x80000000])
def test_negative_jump_step_is_refused_and_never_poisons_the_cycler(sim: ArbinSim,
                                                                    step_index: int) -> None:
    # A hostile client can put any i32 in the step field. It used to be stored as the step
    # index, after which every request of every client failed in the cell model.
    sim.preset(1, schedule="Rest+207855.sdx")
    raw = codec.build_frame(codec.JUMP_CHANNEL, struct.pack("<ii", step_index, 0) + bytes(101),
                            feedback=False)
    with RawCti(sim.port) as hostile, RawCti(sim.port) as polite:
        reply = ask_raw(hostile, raw)
        assert reply.result is StartResult.INVALID_GO_STEP and reply.channel_index == 0
        assert info(polite, 0).statuses[0].step_and_cycle == "[1] 1: Step_A, Rest"
        assert info(hostile, -1).statuses[0].is_running


def test_silence_from_a_command_applies_it_and_answers_nothing_more(sim: ArbinSim) -> None:
    sim.preset(1, schedule="Rest+207855.sdx")
    sim.silence_from(codec.SET_MV)
    with RawCti(sim.port) as cti:
        assert info(cti, 0).statuses[0].is_running  # answered: the trigger has not come yet
        cti.sock.sendall(codec.encode_request(codec.SetMVRequest(0, 52, 1.5)))
        cti.sock.sendall(codec.encode_request(codec.ChannelInfoRequest(0)))
        cti.sock.settimeout(0.3)
        with pytest.raises(socket.timeout):
            cti.sock.recv(1 << 16)
    assert sim.meta_variables(1) == {1: 1.5}  # applied, only the answers are lost
    sim.silence(False)
    with RawCti(sim.port) as cti:
        assert info(cti, 0).statuses[0].channel == 1


@pytest.mark.parametrize("request_args", [
    (codec.STOP_SCHEDULE, struct.pack("<IB", 0xFFFFFFFE, 0) + bytes(101)),
    (codec.RESUME_SCHEDULE, struct.pack("<IB", 0x80000000, 0) + bytes(101)),
    (codec.SET_MV, struct.pack("<Iii16xif16x", 0xFFFFFFFE, 1, 52, 1, 1.0)),
])
def test_u32_channel_fields_beyond_i32_get_an_answer_not_a_dropped_link(sim: ArbinSim,
                                                                         request_args) -> None:
    # Stop, resume and set-MV carry the channel as u32; the feedback echoes it as i32 (the
    # same four bytes). Values above 0x7FFFFFFF used to break the reply and cost the link.
    command, args = request_args
    with RawCti(sim.port) as cti:
        reply = ask_raw(cti, codec.build_frame(command, args, feedback=False))
        assert not reply.ok and reply.channel_index < 0
        assert struct.pack("<i", reply.channel_index) == args[:4]
        assert info(cti, 0).statuses[0].channel == 1  # the same link still serves


def test_the_request_record_is_bounded_but_counts_everything(clock) -> None:
    # A simulator serving for days used to keep every request it ever received.
    with ArbinSim(2, username=USER, password=SECRET, clock=clock, max_recorded=5).start() as sim:
        with RawCti(sim.port) as cti:
            for _ in range(20):
                info(cti, 0)
        assert len(sim.run_sync(lambda: list(sim.received))) == 5
        assert sim.count(codec.ChannelInfoRequest) == 20 and sim.count(codec.LoginRequest) == 1
    with pytest.raises(ConfigurationError, match="max_recorded"):
        ArbinSim(2, max_recorded=-1)
