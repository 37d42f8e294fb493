"""Golden vectors, the real wire captures and property tests for the pure CTI codec."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given, settings, strategies as st

from pyburnerkit.errors import ConfigurationError, ProtocolError
from pyburnerkit.arbin import codec
from pyburnerkit.arbin.models import (AssignResult, AuxReading, ChannelState, ChannelStatus,
                                      ContinueResult, CyclerInfo, LoginResult, SetMVResult,
                                      StartResult, StopResult, parse_step_and_cycle)

from .captures import capture, capture_json, captures_dir

CAPTURES = captures_dir()  # fails the module (never skips it) when the captures are missing


# ---------------------------------------------------------------------- framing facts
def test_token_wire_bytes_and_request_length_convention() -> None:
    frame = codec.encode_request(codec.StopRequest(13))
    assert frame[:8] == bytes.fromhex("dddddddddddddd11")
    assert len(frame) == 128
    assert struct.unpack_from("<I", frame, 8)[0] == 116  # total - 12
    assert struct.unpack_from("<H", frame, 126)[0] == sum(frame[:126]) & 0xFFFF


def test_feedback_length_is_the_total() -> None:
    frame = codec.encode_feedback(codec.command_feedback(codec.STOP_SCHEDULE, 3, 0))
    assert len(frame) == 128 and struct.unpack_from("<I", frame, 8)[0] == 128


@pytest.mark.parametrize("message,size", [
    (codec.LoginRequest("user", "pw"), 86),
    (codec.ChannelInfoRequest(-1, 1, 0x400), 62),
    (codec.AssignScheduleRequest(0, "a.sdx"), 671),
    (codec.StartRequest("t", (0,)), 172),
    (codec.StartRequest("t", (0, 1, 2)), 176),
    (codec.StopRequest(1, True), 128),
    (codec.ResumeRequest(1), 128),
    (codec.ContinueRequest((1, 2)), 30),
    (codec.JumpRequest(2, 5), 131),
    (codec.SetMVRequest(1, 52, 2.5), 74),
    (codec.UpdateMVAdvancedRequest((codec.MVUpdate(0, 52, 1.0), codec.MVUpdate(1, 105, 2.0))),
     58),
    (codec.GetSerialRequest(), 128),
])
def test_every_request_has_the_spec_size_and_round_trips(message, size) -> None:
    frame = codec.encode_request(message)
    assert len(frame) == size
    assert struct.unpack_from("<I", frame, 8)[0] == size - 12
    assert struct.unpack_from("<I", frame, 12)[0] == message.command
    assert codec.decode_request(frame) == message


def test_golden_jump_layout_step_before_channel() -> None:
    frame = codec.encode_request(codec.JumpRequest(channel_index=7, step_index=2))
    assert struct.unpack_from("<ii", frame, 20) == (2, 7)
    assert frame[28:129] == bytes(101)


def test_golden_set_mv_layout() -> None:
    frame = codec.encode_request(codec.SetMVRequest(5, 105, 1.5))
    assert struct.unpack_from("<Iii", frame, 20) == (5, 1, 105)
    assert frame[32:48] == bytes(16)
    assert struct.unpack_from("<if", frame, 48) == (1, 1.5)


@pytest.mark.parametrize("message", [
    codec.command_feedback(codec.ASSIGN_SCHEDULE, 2, 0x13),
    codec.command_feedback(codec.START_SCHEDULE, 2, 0x2B),
    codec.command_feedback(codec.STOP_SCHEDULE, 0, 0),
    codec.command_feedback(codec.RESUME_SCHEDULE, 0, 0x23),
    codec.command_feedback(codec.CONTINUE_CHANNEL, 0, 0x15),
    codec.command_feedback(codec.JUMP_CHANNEL, 0, 0x24),
    codec.command_feedback(codec.SET_MV, 0, 0x12),
    codec.command_feedback(codec.UPDATE_MV_ADVANCED, 0, 0x14),
    codec.SerialFeedback(207855),
    codec.LoginFeedback(CyclerInfo(LoginResult.SUCCESS, "10.0.0.2", "1", num_channels=8,
                                   picture=b"\x89PNG")),
])
def test_every_feedback_round_trips(message) -> None:
    frame = codec.encode_feedback(message)
    assert struct.unpack_from("<I", frame, 8)[0] == len(frame)
    assert codec.decode_feedback(frame) == message


def test_result_codes_carry_arbins_meanings() -> None:
    assert SetMVResult(0x11).text == "meta code does not exist"  # pycti swaps these two
    assert SetMVResult(0x12).text == "channel is not running"
    assert AssignResult(0x13).text == "schedule not found"
    assert StartResult(0x15).text == "no schedule assigned"
    assert StopResult(0x10).text == "channel index does not exist"
    assert ContinueResult(0x15).text == "channel is not in a normal pause"
    assert ChannelState(31).text == "Suspended"  # pycti's table stops at 30
    assert [ChannelState(i).text for i in range(3)] == ["Idle", "Transition", "Charge"]


def test_unknown_codes_decode_to_unknown_values() -> None:
    frame = codec.encode_feedback(codec.command_feedback(codec.START_SCHEDULE, 1, 0x7F))
    fb = codec.decode_feedback(frame)
    assert fb.result.name == "UNKNOWN_127" and fb.result.text == "unknown (127)"
    status = ChannelStatus(channel=1, state=ChannelState(99))
    back = codec.decode_feedback(codec.encode_feedback(codec.ChannelInfoFeedback((status,))))
    assert back.statuses[0].state.text == "unknown (99)"
    assert LoginResult(7).text == "unknown (7)"


def test_channel_record_with_aux_round_trips_and_step_parsing() -> None:
    status = ChannelStatus(channel=5, state=ChannelState.CHARGE, schedule="S.sdx",
                           test_name="tëst", step_and_cycle="[3] 12: Step_L, Charge",
                           voltage_v=3.5, current_a=1.0, master_channel=5,
                           aux={"temperature": (AuxReading(25.5, 0.5), AuxReading(30.0, 0.0)),
                                "density": (AuxReading(1.0, 0.0),)})
    frame = codec.encode_feedback(codec.ChannelInfoFeedback((status,)))
    assert len(frame) == 1779 + 3 * 8
    back = codec.decode_feedback(frame).statuses[0]
    assert back == status
    assert (back.cycle, back.step, back.step_label) == (3, 12, "Step_L, Charge")
    assert parse_step_and_cycle("N/A") == (None, None, "N/A")


def test_all_channel_frame_size_matches_mits10_observation() -> None:
    statuses = tuple(ChannelStatus(channel=i, state=ChannelState.IDLE) for i in range(1, 17))
    frame = codec.encode_feedback(codec.ChannelInfoFeedback(statuses))
    assert len(frame) == 28074  # issue #24: 24 + 16 * 1753 + 2
    feedback = codec.decode_feedback(frame)
    assert feedback.find(6).channel == 6 and feedback.find(17) is None


# ---------------------------------------------------------------------- strings
def test_strings_too_long_are_errors_never_truncated() -> None:
    with pytest.raises(ConfigurationError, match="71 characters"):
        codec.encode_request(codec.StartRequest("x" * 72, (0,)))
    codec.encode_request(codec.StartRequest("x" * 71, (0,)))
    with pytest.raises(ConfigurationError, match="31 bytes"):
        codec.encode_request(codec.LoginRequest("u" * 32, "p"))
    with pytest.raises(ConfigurationError, match="199 characters"):
        codec.encode_request(codec.AssignScheduleRequest(0, "s" * 200))
    with pytest.raises(ConfigurationError, match="NUL"):
        codec.encode_request(codec.StartRequest("a\0b", (0,)))


def test_too_long_password_error_does_not_echo_it() -> None:
    secret = "hunter2-" * 5
    with pytest.raises(ConfigurationError) as info:
        codec.encode_request(codec.LoginRequest("user", secret))
    assert secret not in str(info.value)
    assert "hunter2" not in repr(codec.LoginRequest("user", secret))


def test_wide_strings_are_utf16le_and_narrow_are_single_byte() -> None:
    frame = codec.encode_request(codec.StartRequest("Aé", (0,)))
    assert frame[20:26] == "Aé".encode("utf-16-le") + b"\0\0"
    frame = codec.encode_request(codec.LoginRequest("ab", "cd"))
    assert frame[20:23] == b"ab\0" and frame[52:55] == b"cd\0"


def test_out_of_range_fields_are_configuration_errors() -> None:
    with pytest.raises(ConfigurationError):
        codec.encode_request(codec.SetMVRequest(0, 52, float("nan")))
    with pytest.raises(ConfigurationError):
        codec.encode_request(codec.SetMVRequest(0, 52, 1e39))
    with pytest.raises(ConfigurationError):
        codec.encode_request(codec.StartRequest("t", ()))
    with pytest.raises(ConfigurationError):
        codec.encode_request(codec.UpdateMVAdvancedRequest(tuple(
            codec.MVUpdate(0, 52, 1.0) for _ in range(161))))


# ---------------------------------------------------------------------- captures
CLIENT_CAPTURES = {
    "client_login_msg": lambda j: codec.LoginRequest(j["username"], j["password"]),
    "client_channel_info_msg": lambda j: codec.ChannelInfoRequest(
        j["channel"], j["channel_selection"], j["aux_options"]),
    "client_assign_schedule_msg": lambda j: codec.AssignScheduleRequest(
        j["channel"], j["schedule"], j["test_capacity_ah"], j["barcode"],
        tuple(j[f"user_variable_{i}"] for i in range(1, 17))),
    "client_start_schedule_msg": lambda j: codec.StartRequest(j["test_name"], (j["channel"],)),
    "client_stop_schedule_msg": lambda j: codec.StopRequest(j["channel"]),
    "client_set_meta_variable_msg": lambda j: codec.SetMVRequest(
        j["channel"], j["mv_meta_code"], j["mv_data"], j["mv_type"], j["mv_value_type"]),
}


@pytest.mark.parametrize("name", sorted(CLIENT_CAPTURES))
def test_encoder_reproduces_captured_client_frames(name: str) -> None:
    doc = capture_json(name)
    message = CLIENT_CAPTURES[name](doc)
    frame = codec.encode_request(message)
    assert frame == capture(name)
    assert struct.unpack_from("<I", frame, 8)[0] == doc["msg_length"]
    assert codec.decode_request(capture(name)) == message


@pytest.mark.parametrize("name", ["server_assign_schedule_msg", "server_start_schedule_msg",
                                  "server_stop_schedule_msg", "server_set_meta_variable_msg"])
def test_captured_command_feedbacks_decode(name: str) -> None:
    doc = capture_json(name)
    raw = capture(name)
    fb = codec.decode_feedback(raw)
    assert fb.command == doc["command_code"] and fb.channel_index == doc["channel"] == 13
    assert fb.ok and fb.result.text == doc["result"] == "success"
    assert len(raw) == doc["msg_length"] == 128
    assert codec.encode_feedback(fb) == raw


def test_captured_channel_info_decodes_to_documented_values() -> None:
    doc = capture_json("server_channel_info_msg")
    raw = capture("server_channel_info_msg")
    (status,) = codec.decode_feedback(raw).statuses
    assert status.channel - 1 == doc["channel"] == 13
    assert status.state.text == doc["status"] == "Rest"
    assert status.schedule == doc["schedule"] and status.test_name == doc["testname"]
    assert status.exit_condition == "N/A" and status.step_and_cycle == "[1] 1: Step_A, Rest"
    assert (status.cycle, status.step) == (1, 1)
    assert status.voltage_v == pytest.approx(doc["voltage_v"]) == pytest.approx(3.4564647)
    assert status.test_time_s == doc["test_time_s"] and status.master_channel == 14
    assert status.aux == {} and len(raw) == 1779
    assert codec.encode_feedback(codec.ChannelInfoFeedback((status,))) == raw


def test_captured_login_feedback_decodes() -> None:
    doc = capture_json("server_login_msg")
    raw = capture("server_login_msg")
    info = codec.decode_feedback(raw).info
    assert info.result is LoginResult.SUCCESS and info.num_channels == 16
    assert info.serial_number == doc["cycler_sn"] and info.note == doc["note"]
    assert (info.itac, int(info.version), info.allow_control, info.user_type) == (
        doc["itac"], doc["version"], True, 0)
    assert info.ip_address == ".".join(str(ord(c)) for c in doc["ip_address"])
    assert codec.encode_feedback(codec.LoginFeedback(info)) == raw


def test_every_capture_ends_with_its_byte_sum() -> None:
    for path in CAPTURES.glob("*.bin"):
        raw = path.read_bytes()
        assert struct.unpack_from("<H", raw, len(raw) - 2)[0] == codec.checksum(raw[:-2])


# ---------------------------------------------------------------------- stream reading
def test_reader_reassembles_across_segments_and_keeps_extra_bytes() -> None:
    a = capture("server_login_msg")
    b = capture("server_channel_info_msg")
    stream = a + b + b[:30]
    reader = codec.FrameReader(feedback=True)
    frames = []
    for i in range(0, len(stream), 7):
        frames += reader.feed(stream[i:i + 7])
    assert frames == [a, b]
    assert reader.buffered == 30
    assert reader.feed(b[30:]) == [b]


def test_request_reader_uses_request_lengths() -> None:
    reader = codec.FrameReader(feedback=False)
    raw = capture("client_login_msg") + capture("client_stop_schedule_msg")
    assert reader.feed(raw) == [capture("client_login_msg"), capture("client_stop_schedule_msg")]


def test_checksum_mismatch_is_a_protocol_error() -> None:
    raw = bytearray(capture("server_stop_schedule_msg"))
    raw[30] ^= 1
    with pytest.raises(ProtocolError, match="checksum"):
        codec.decode_feedback(bytes(raw))


def test_bad_token_in_stream_is_a_protocol_error() -> None:
    with pytest.raises(ProtocolError, match="token"):
        codec.FrameReader(feedback=True).feed(b"GET / HTTP/1.1\r\n")


# ---------------------------------------------------------------------- properties
FEEDBACKS = [capture(n) for n in ("server_login_msg", "server_channel_info_msg",
                                  "server_stop_schedule_msg", "server_set_meta_variable_msg")]
REQUESTS = [capture(p.stem) for p in sorted(CAPTURES.glob("client_*.bin"))]


def _only_protocol_errors(decode, data: bytes) -> None:
    try:
        decode(data)
    except ProtocolError:
        pass


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=2000))
def test_random_bytes_are_protocol_errors(data: bytes) -> None:
    # Random bytes never form a frame (token, length and checksum would all have to match).
    for decode, raw in ((codec.decode_feedback, data), (codec.decode_request, data),
                        (codec.decode_feedback, codec.TOKEN_BYTES + data),
                        (codec.decode_request, codec.TOKEN_BYTES + data)):
        with pytest.raises(ProtocolError):
            decode(raw)
    # A stream reader may wait for more bytes, but never returns a frame or raises otherwise.
    try:
        assert codec.FrameReader(feedback=True).feed(data) == [] or data[:8] == \
            codec.TOKEN_BYTES
    except ProtocolError:
        pass


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(FEEDBACKS + REQUESTS), st.data())
def test_truncated_frames_are_protocol_errors(frame: bytes, data) -> None:
    cut = data.draw(st.integers(0, len(frame) - 1))
    decode = codec.decode_feedback if frame in FEEDBACKS else codec.decode_request
    with pytest.raises(ProtocolError):
        decode(frame[:cut])


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(FEEDBACKS + REQUESTS), st.integers(-40, 40).filter(lambda d: d != 0))
def test_mis_sized_frames_are_protocol_errors(frame: bytes, delta: int) -> None:
    bad = bytearray(frame)
    length = struct.unpack_from("<I", bad, 8)[0]
    struct.pack_into("<I", bad, 8, max(0, length + delta))
    decode = codec.decode_feedback if frame in FEEDBACKS else codec.decode_request
    with pytest.raises(ProtocolError):
        decode(bytes(bad))


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(FEEDBACKS + REQUESTS), st.data())
def test_mis_summed_frames_are_protocol_errors(frame: bytes, data) -> None:
    bad = bytearray(frame)
    pos = data.draw(st.integers(12, len(bad) - 3))
    bad[pos] = (bad[pos] + data.draw(st.integers(1, 255))) & 0xFF
    decode = codec.decode_feedback if frame in FEEDBACKS else codec.decode_request
    with pytest.raises(ProtocolError):
        decode(bytes(bad))


@settings(max_examples=100, deadline=None)
@given(st.binary(min_size=1, max_size=3000))
def test_random_argument_bytes_with_valid_framing_only_raise_protocol_error(args: bytes) -> None:
    for command in (codec.LOGIN_FEEDBACK, codec.CHANNEL_INFO_FEEDBACK, codec.SET_MV_FEEDBACK):
        _only_protocol_errors(codec.decode_feedback,
                              codec.build_frame(command, args, feedback=True))
    for command in codec.REQUEST_TYPES:
        _only_protocol_errors(codec.decode_request, codec.build_frame(command, args,
                                                                      feedback=False))


@settings(max_examples=100, deadline=None)
@given(st.text(max_size=71), st.lists(st.integers(0, 511), min_size=1, max_size=64))
def test_start_round_trips(name: str, channels) -> None:
    message = codec.StartRequest(name.replace("\0", ""), tuple(channels))
    try:
        frame = codec.encode_request(message)
    except ConfigurationError:
        return  # characters outside the BMP take two UTF-16 units and may not fit
    assert codec.decode_request(frame) == message


def test_unknown_command_feedback_decodes_with_raw_arguments() -> None:
    frame = codec.build_frame(codec.UNKNOWN_COMMAND_FEEDBACK, b"\x01\x00\x34\xbb",
                              feedback=True)
    fb = codec.decode_feedback(frame)
    assert isinstance(fb, codec.UnknownCommandFeedback)
    assert fb.request_command == codec.GET_SERIAL and codec.encode_feedback(fb) == frame
    odd = codec.decode_feedback(codec.build_frame(codec.UNKNOWN_COMMAND_FEEDBACK, bytes(7),
                                                  feedback=True))
    assert odd.raw == bytes(7) and odd.request_command is None
