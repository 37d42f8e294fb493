"""DE1 codec: golden vectors (worked out by hand from spec de1.md section 1), round trips, clear
errors for what cannot be encoded, and hypothesis fuzzing of every decoder."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given, settings, strategies as st

from pyburnerkit.errors import ConfigurationError, ProtocolError
from pyburnerkit.de1 import codec
from pyburnerkit.de1.models import (CalCommand, CalTarget, Calibration, FirmwareMap,
                                    FirmwareVersion, Frame, MachineState, ShotSample,
                                    ShotSettings, StateInfo, SubState, Temperatures,
                                    Versions, WaterLevels)


def test_uuids_and_subscription_order() -> None:
    assert codec.SHOT_SAMPLE == "0000a00d-0000-1000-8000-00805f9b34fb"
    assert codec.SERVICE == "0000a000-0000-1000-8000-00805f9b34fb"
    assert len(codec.CHARACTERISTICS) == 18
    # the high-rate stream is subscribed last, after state and water levels
    assert codec.SUBSCRIBE_ORDER[-1] == codec.SHOT_SAMPLE
    assert codec.SUBSCRIBE_ORDER.index(codec.STATE_INFO) < codec.SUBSCRIBE_ORDER.index(
        codec.WATER_LEVELS)


def test_state_info_golden_and_names() -> None:
    info = codec.decode_state_info(bytes.fromhex("0405"))
    assert info == StateInfo(MachineState.ESPRESSO, SubState.POUR)
    assert info.substate.text == "pouring"
    assert codec.encode_state_info(info) == b"\x04\x05"
    err = codec.decode_state_info(bytes.fromhex("02cb"))
    assert err.substate is SubState.ERROR_ACC and err.is_error
    odd = codec.decode_state_info(bytes.fromhex("3063"))
    assert odd.state.name == "UNKNOWN_48" and odd.substate.name == "UNKNOWN_99"
    assert codec.encode_requested_state(MachineState.HOT_WATER_RINSE) == b"\x0f"


def test_shot_sample_golden() -> None:
    raw = bytes.fromhex("04d2" "9000" "2800" "5c80" "5d4000" "5c00" "5d00" "90" "00" "01" "96")
    s = codec.decode_shot_sample(raw)
    assert s == ShotSample(1234, 9.0, 2.5, 92.5, 93.25, 92.0, 93.0, 9.0, 0.0, 1, 150)
    assert codec.encode_shot_sample(s) == raw


def test_shot_settings_golden_and_limits() -> None:
    # flags 0, steam 160 °C, 120 s, hot water 85 °C / 120 mL / 45 s, espresso 200 mL,
    # group 92.0 °C = 0x5C00
    raw = bytes.fromhex("00" "a0" "78" "55" "78" "2d" "c8" "5c00")
    s = codec.decode_shot_settings(raw)
    assert s == ShotSettings(0, 160, 120, 85, 120, 45, 200, 92.0)
    assert codec.encode_shot_settings(s) == raw
    # what a client may set (spec 1.1): steam 0 (off) or pyDE1's 135..160 °C
    with pytest.raises(ConfigurationError, match=r"steam_temp_c=120 °C is out of range.*135"):
        codec.check_shot_setting("steam_temp_c", 120)
    with pytest.raises(ConfigurationError, match=r"group_temp_c=130.0 °C .*0..105 °C"):
        codec.check_shot_setting("group_temp_c", 130.0)
    with pytest.raises(ConfigurationError, match="only FastStart"):
        codec.check_shot_setting("steam_flags", 0x01)
    codec.check_shot_setting("steam_temp_c", 0)  # steam heater off
    assert codec.encode_shot_settings(ShotSettings(steam_temp_c=0))[1] == 0  # steam off
    # what the DE1 reported can always be packed again (end steam writes it back)
    assert codec.encode_shot_settings(ShotSettings(steam_temp_c=170))[1] == 170
    with pytest.raises(ConfigurationError, match="group_temp_c"):
        codec.encode_shot_settings(ShotSettings(group_temp_c=300.0))


def test_versions_and_f8_1_7() -> None:
    raw = bytes.fromhex("04" "0f" "0064" "00" "12345670" "04" "0d" "0535" "01" "abcdef10")
    v = codec.decode_versions(raw)
    assert v.ble == FirmwareVersion(4, 1.5, 100, 0, 0x12345670)
    assert v.firmware.commits == 1333 and v.firmware.release == pytest.approx(1.3)
    assert codec.encode_versions(v) == raw
    assert codec.enc_f8_1_7(12.7) == 127 and codec.enc_f8_1_7(13) == 0x8D
    assert codec.dec_f8_1_7(0x8D) == 13.0 and codec.dec_f8_1_7(0x05) == 0.5
    with pytest.raises(ConfigurationError, match="128 s is out of range"):
        codec.enc_f8_1_7(128)


def test_water_levels_temperatures_calibration_fwmap() -> None:
    assert codec.decode_water_levels(bytes.fromhex("28800500")) == WaterLevels(40.5, 5.0)
    # the refill write: Level 0, StartFillLevel U16P8 (de1app's scaling, not pyDE1's)
    assert codec.encode_refill_level(7.5) == bytes.fromhex("00000780")
    with pytest.raises(ConfigurationError, match="mm"):
        codec.encode_refill_level(90)
    t = codec.decode_temperatures(bytes.fromhex("5c00" "9600" "5d80" "1400" * 1
                                                + "5c00" "9600" "5c00" "1400"))
    assert t == Temperatures(92.0, 150.0, 93.5, 20.0, 92.0, 150.0, 92.0, 20.0)
    cal = codec.decode_calibration(bytes.fromhex("00000000" "00" "01" "00018000" "fffe8000"))
    assert cal == Calibration(CalCommand.READ, CalTarget.PRESSURE, 1.5, -1.5, 0)
    assert codec.encode_calibration(cal) == bytes.fromhex("0000000000010001" "8000fffe8000")
    fw = codec.decode_fw_map(bytes.fromhex("0000" "01" "01" "000000"))
    assert fw == FirmwareMap(0, 1, 1, 0)
    assert codec.encode_fw_map(FirmwareMap(0, 0, 1, codec.FW_REPORT_FIRST)) == \
        bytes.fromhex("00000001ffffff")


def test_mmr_framing_and_registers() -> None:
    # read 23 words from FAN_THRESHOLD: Len = words - 1, address BE, 16 zero bytes
    assert codec.encode_mmr_read(0x803808, 23) == bytes.fromhex("16803808") + bytes(16)
    # write fan threshold 60: Len 4, address, LE data, padded
    assert codec.encode_mmr_register(0x803808, 60) == \
        bytes.fromhex("04803808" "3c000000") + bytes(12)
    reply = bytes.fromhex("10803808" "32000000" "00000000" "14000000" "28000000")
    assert codec.decode_mmr_reply(reply) == {0x803808: 50, 0x80380C: 0, 0x803810: 20,
                                             0x803814: 40}
    assert codec.encode_mmr_reply(0x803808, [50, 0, 20, 40]) == reply
    reg = codec.REGISTER_BY_NAME["heater_phase1_flow"]
    assert reg.decode(25) == 2.5 and reg.encode(2.5) == 25
    with pytest.raises(ConfigurationError, match=r"steps of 0.1 mL/s"):
        reg.encode(2.55)
    with pytest.raises(ConfigurationError, match=r"fan_threshold=75 °C is out of range"):
        codec.REGISTER_BY_NAME["fan_threshold"].encode(75)
    with pytest.raises(ConfigurationError, match="1..256 words"):
        codec.encode_mmr_read(0x800000, 300)


def test_init_reads_skip_registers_that_freeze_old_firmware() -> None:
    new = codec.init_mmr_reads(1333)
    assert new == [(0x800000, 4), (0x803808, (0x803860 - 0x803808) // 4 + 1)]
    old = codec.init_mmr_reads(1260)
    covered = {a + 4 * i for a, n in old for i in range(n)}
    assert 0x803820 not in covered and 0x803824 not in covered
    assert 0x803828 in covered and 0x80383C in covered and 0x803840 not in covered


def test_profile_frames_golden() -> None:
    # flow 4 mL/s (0x40), 92 °C (184=0xB8), 8 s (80=0x50), exit over 4 bar (0x40), flags
    # CtrlF|DoCompare|DC_GT|IgnoreLimit = 0x47
    frame = Frame(0x47, 4.0, 92.0, 8.0, 4.0, 0)
    raw = bytes.fromhex("00" "47" "40" "b8" "50" "40" "0000")
    assert codec.encode_frame(0, frame) == raw
    assert codec.decode_frame_write(raw) == ("frame", 0, frame)
    assert codec.encode_header(2, 1, 0, 6) == bytes.fromhex("0102010060")
    assert codec.encode_ext_frame(1, 3.0, 0.6) == bytes.fromhex("21" "30" "0a") + bytes(5)
    assert codec.encode_tail(2) == bytes.fromhex("020000") + bytes(5)
    with pytest.raises(ConfigurationError, match="21 frames: the limit is 1..20"):
        codec.encode_header(21, 0)
    with pytest.raises(ConfigurationError, match="frame 3 set value=16.5 bar is out of range"):
        codec.encode_frame(3, Frame(0x40, 16.5, 92, 10, 0, 0))
    with pytest.raises(ConfigurationError, match="frame 0 volume=2000 mL"):
        codec.encode_frame(0, Frame(0x40, 9, 92, 10, 0, 2000))


def test_short_and_wrong_payloads_raise_protocol_error() -> None:
    with pytest.raises(ProtocolError, match="ShotSample: expected 19 bytes, got 3"):
        codec.decode_shot_sample(b"\x01\x02\x03")
    with pytest.raises(ProtocolError):
        codec.decode_state_info(b"\x02")
    with pytest.raises(ProtocolError):
        codec.decode_frame_write(bytes([60]) + bytes(7))
    with pytest.raises(ProtocolError):
        codec.decode_mmr_reply(bytes([17]) + bytes(19))


DECODERS = [codec.decode_state_info, codec.decode_versions, codec.decode_shot_settings,
            codec.decode_temperatures, codec.decode_water_levels, codec.decode_shot_sample,
            codec.decode_calibration, codec.decode_fw_map, codec.decode_mmr,
            codec.decode_mmr_reply, codec.decode_header, codec.decode_frame_write,
            codec.decode_tail, codec.decode_requested_state, codec.decode_firmware_header]


@pytest.mark.parametrize("decoder", DECODERS, ids=lambda d: d.__name__)
@settings(max_examples=150, deadline=None)
@given(data=st.binary(max_size=70))
def test_fuzz_every_decoder_raises_only_protocol_error(decoder, data: bytes) -> None:
    try:
        decoder(data)
    except ProtocolError:
        pass


@settings(max_examples=200, deadline=None)
@given(t=st.integers(0, 65535), p=st.floats(0, 15.99), f=st.floats(0, 15.99),
       temp=st.floats(0, 120), frame=st.integers(0, 19))
def test_shot_sample_round_trip(t: int, p: float, f: float, temp: float, frame: int) -> None:
    s = ShotSample(t, p, f, temp, temp, temp, temp, min(p, 15.9), min(f, 15.9), frame, 140)
    back = codec.decode_shot_sample(codec.encode_shot_sample(s))
    assert back.sample_time == t and back.frame_number == frame
    assert abs(back.group_pressure_bar - p) <= 1 / 8192 + 1e-9
    assert abs(back.group_flow_ml_s - f) <= 1 / 8192 + 1e-9
    assert abs(back.mix_temp_c - temp) <= 1 / 512 + 1e-9
    assert abs(back.head_temp_c - temp) <= 1 / 131072 + 1e-9


@settings(max_examples=200, deadline=None)
@given(flags=st.integers(0, 0x7F), setv=st.floats(0, 15.9), temp=st.floats(0, 127),
       secs=st.floats(0, 127), trig=st.floats(0, 15.9), vol=st.integers(0, 1023),
       index=st.integers(0, 19))
def test_frame_round_trip(flags: int, setv: float, temp: float, secs: float, trig: float,
                          vol: int, index: int) -> None:
    raw = codec.encode_frame(index, Frame(flags, setv, temp, secs, trig, vol))
    kind, idx, back = codec.decode_frame_write(raw)
    assert (kind, idx) == ("frame", index)
    assert back.flags == flags and back.max_volume_ml == vol
    assert abs(back.set_value - setv) <= 1 / 32 + 1e-9
    assert abs(back.temperature_c - temp) <= 0.25 + 1e-9
    tolerance = 0.05 if secs < 12.75 else 0.5
    assert abs(back.seconds - secs) <= tolerance + 1e-9


@settings(max_examples=100, deadline=None)
@given(address=st.integers(0x800000, 0x80FFF0), words=st.lists(st.integers(0, 2 ** 32 - 1),
                                                               min_size=1, max_size=4))
def test_mmr_reply_round_trip(address: int, words: list) -> None:
    values = codec.decode_mmr_reply(codec.encode_mmr_reply(address, words))
    assert values == {address + 4 * i: w for i, w in enumerate(words)}
    assert struct.unpack("<I", struct.pack("<I", words[0]))[0] == values[address]


# ---------------------------------------------------------------- round trips, every characteristic

@settings(max_examples=100, deadline=None)
@given(state=st.sampled_from(list(MachineState)), sub=st.sampled_from(list(SubState)))
def test_state_info_and_requested_state_round_trip(state: MachineState, sub: SubState) -> None:
    assert codec.decode_state_info(codec.encode_state_info(StateInfo(state, sub))) == \
        StateInfo(state, sub)
    assert codec.decode_requested_state(codec.encode_requested_state(state)) is state


_fw = st.builds(FirmwareVersion, st.integers(0, 255),
                st.one_of(st.integers(0, 127).map(lambda t: t / 10.0),
                          st.integers(13, 127).map(float)),
                st.integers(0, 65535), st.integers(0, 255), st.integers(0, 2 ** 32 - 1))


@settings(max_examples=100, deadline=None)
@given(ble=_fw, fw=_fw)
def test_versions_round_trip(ble: FirmwareVersion, fw: FirmwareVersion) -> None:
    back = codec.decode_versions(codec.encode_versions(Versions(ble, fw)))
    assert back == Versions(ble, fw)


@settings(max_examples=100, deadline=None)
@given(flags=st.sampled_from([0, 0x40, 0x80, 0xC0]),
       steam=st.one_of(st.just(0), st.integers(130, 170)), length=st.integers(0, 255),
       hw_temp=st.integers(0, 100), hw_vol=st.integers(0, 255), hw_len=st.integers(0, 255),
       esp=st.integers(0, 255), group=st.integers(0, 105 * 256).map(lambda r: r / 256.0))
def test_shot_settings_round_trip(flags, steam, length, hw_temp, hw_vol, hw_len, esp,
                                  group) -> None:
    s = ShotSettings(flags, steam, length, hw_temp, hw_vol, hw_len, esp, group)
    assert codec.decode_shot_settings(codec.encode_shot_settings(s)) == s


_u16p8 = st.integers(0, 65535).map(lambda r: r / 256.0)


@settings(max_examples=100, deadline=None)
@given(values=st.lists(_u16p8, min_size=8, max_size=8), level=_u16p8, fill=_u16p8)
def test_temperatures_and_water_levels_round_trip(values: list, level: float,
                                                  fill: float) -> None:
    t = Temperatures(*values)
    assert codec.decode_temperatures(codec.encode_temperatures(t)) == t
    w = WaterLevels(level, fill)
    assert codec.decode_water_levels(codec.encode_water_levels(w)) == w
    threshold = fill % 70.0  # the refill write is limited to 0..70 mm
    refill = codec.decode_water_levels(codec.encode_refill_level(threshold))
    assert refill.level_mm == 0.0 and abs(refill.start_fill_level_mm - threshold) <= 1 / 512


@settings(max_examples=100, deadline=None)
@given(cmd=st.sampled_from(list(CalCommand)), target=st.sampled_from(list(CalTarget)),
       reported=st.integers(-2 ** 31, 2 ** 31 - 1), measured=st.integers(-2 ** 31, 2 ** 31 - 1),
       key=st.integers(0, 2 ** 32 - 1))
def test_calibration_round_trip(cmd, target, reported: int, measured: int, key: int) -> None:
    c = Calibration(cmd, target, reported / 65536.0, measured / 65536.0, key)
    assert codec.decode_calibration(codec.encode_calibration(c)) == c


@settings(max_examples=100, deadline=None)
@given(window=st.integers(0, 0xFFFF), erase=st.integers(0, 2), to_map=st.integers(0, 2),
       first=st.integers(0, 0xFFFFFF))
def test_fw_map_round_trip(window: int, erase: int, to_map: int, first: int) -> None:
    m = FirmwareMap(window, erase, to_map, first)
    assert codec.decode_fw_map(codec.encode_fw_map(m)) == m


@settings(max_examples=100, deadline=None)
@given(frames=st.integers(1, 20), data=st.data(), minp=st.integers(0, 255),
       maxf=st.integers(0, 255), vol=st.integers(0, 1023), lim=st.integers(0, 255),
       rng=st.integers(0, 255))
def test_header_ext_frame_and_tail_round_trip(frames: int, data, minp: int, maxf: int,
                                              vol: int, lim: int, rng: int) -> None:
    pre = data.draw(st.integers(0, frames))
    header = codec.encode_header(frames, pre, minp / 16.0, maxf / 16.0)
    assert codec.decode_header(header) == (1, frames, pre, minp / 16.0, maxf / 16.0)
    index = data.draw(st.integers(0, frames - 1))
    assert codec.decode_frame_write(codec.encode_ext_frame(index, lim / 16.0, rng / 16.0)) == \
        ("ext", index, (lim / 16.0, rng / 16.0))
    assert codec.decode_tail(codec.encode_tail(frames, vol)) == (frames, vol)


@settings(max_examples=100, deadline=None)
@given(address=st.integers(0, 0xFFFFFF), words=st.integers(1, 256),
       raw=st.integers(0, 2 ** 32 - 1), chunk=st.binary(min_size=1, max_size=16))
def test_mmr_requests_round_trip(address: int, words: int, raw: int, chunk: bytes) -> None:
    assert codec.decode_mmr(codec.encode_mmr_read(address, words)) == \
        (words - 1, address, bytes(16))
    length, addr, payload = codec.decode_mmr(codec.encode_mmr_register(address, raw))
    assert (length, addr, struct.unpack_from("<I", payload)[0]) == (4, address, raw)
    length, addr, payload = codec.decode_mmr(codec.encode_mmr_write(address, chunk))
    assert (length, addr, payload[:length]) == (len(chunk), address, chunk)


def test_calibration_s32p16_limits() -> None:
    top = (2 ** 31 - 1) / 65536.0
    assert codec.decode_calibration(codec.encode_calibration(
        Calibration(CalCommand.WRITE, CalTarget.FLOW, top, -32768.0, 1))).reported == top
    with pytest.raises(ConfigurationError, match=r"reported=32768.0 is out of range: the limit "
                                                 r"is -32768..32767.99998"):
        codec.encode_calibration(Calibration(CalCommand.WRITE, CalTarget.FLOW, 32768.0, 1.0, 1))
