"""Pure codec tests: golden frames from the spec, the firmware's parsing rules, fuzzing."""

from __future__ import annotations

import datetime as dt
import json
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pyburnerkit.afterburner import codec
from pyburnerkit.afterburner.models import (Bluewire, DemandMode, ErrorState, RunState,
                                            ThermostatMethod, Timer)
from pyburnerkit.errors import ConfigurationError, ProtocolError

# The spec's first frames after connecting (section 5): real key names and formats.
MAIN_FRAME = ('{"TempCurrent":19.4,"TempDesired":22,"TempMode":0,"TempMin":8,"TempMax":35,'
              '"TempBody":21,"RunState":0,"RunString":" Stopped/Ready ","ErrorState":1,'
              '"ErrorString":"E-00: OK","Thermostat":1,"PumpFixed":1.6,"PumpMin":1.6,'
              '"PumpMax":5.5,"PumpActual":0,"FanMin":1680,"FanMax":4500,"FanRPM":0,'
              '"FanVoltage":0,"FanSensor":1,"InputVoltage":12.9,"SystemVoltage":12,'
              '"GlowVoltage":0,"GlowCurrent":0,"BluewireStat":"BTC,Htr"}')
EXTENDED_FRAME = ('{"ThermostatMethod":0,"ThermostatWindow":1,"ThermostatOvertemp":0,'
                  '"ThermostatUndertemp":-1,"CyclicTemp":22,"CyclicOff":0,"CyclicOn":-1,'
                  '"FrostOn":0,"FrostRise":5,"PumpCount":7239.5,"PumpCal":0.022,'
                  '"LowVoltCutout":11.5,"TempOffset":0,"TempType":"DS18B20"}')


def test_spec_frames_decode_to_a_typed_status() -> None:
    keys = {**codec.decode_frame(MAIN_FRAME), **codec.decode_frame(EXTENDED_FRAME)}
    status = codec.build_status(keys)
    assert status.temperature_c == 19.4
    assert status.desired_temperature == 22
    assert status.run_state is RunState.STOPPED and status.run_state.text == " Stopped/Ready "
    assert status.error_state is ErrorState.OK_RUNNING and not status.error_state.is_error
    assert status.demand_mode is DemandMode.THERMOSTAT
    assert status.thermostat_method is ThermostatMethod.STANDARD
    assert status.bluewire == Bluewire("BTC,Htr", oem_controller=False, heater_responding=True)
    assert status.cyclic_on_c == -1 and status.cyclic_off_c == 0
    assert status.pump_count == 7239.5 and status.pump_cal_ml == 0.022
    # Derived, as the firmware's MQTT does: PumpCount x PumpCal, PumpActual x PumpCal x 3600.
    assert status.fuel_used_ml == pytest.approx(159.269)
    assert status.fuel_rate_ml_h == 0.0
    assert status.is_on is False


def test_unknown_enum_codes_are_kept() -> None:
    status = codec.build_status({"RunState": 17, "ErrorState": 42})
    assert status.run_state == 17 and status.run_state.name == "UNKNOWN_17"
    assert status.run_state.text == "Unknown run state"
    assert status.error_state.text == "Unknown error?"


def test_bare_nan_from_the_firmware_float_printer_is_accepted() -> None:
    frame = codec.decode_frame('{"TempCurrent":NaN,"TempBody":45}')
    assert math.isnan(frame["TempCurrent"])
    status = codec.build_status(frame)
    assert status.temperature_c is None and status.body_temperature_c == 45.0


def test_whole_floats_look_like_ints_and_still_decode_as_floats() -> None:
    status = codec.build_status(codec.decode_frame('{"TempBody":45,"PumpMin":2}'))
    assert isinstance(status.body_temperature_c, float) and status.body_temperature_c == 45.0
    assert codec.firmware_number(45.0) == 45 and codec.firmware_number(1.60000002) == 1.6


def test_encode_is_compact_like_the_firmware() -> None:
    assert codec.encode_frame({"PumpMin": 1.6, "NVsave": 8861}) == '{"PumpMin":1.6,"NVsave":8861}'


@pytest.mark.parametrize("text", ["not json", "[1,2]", '"text"', '{"a":{"b":1}}', '{"a":[1]}',
                                  b"\xff\xfe"])
def test_bad_frames_are_protocol_errors(text: object) -> None:
    with pytest.raises(ProtocolError):
        codec.decode_frame(text)


@pytest.mark.parametrize("frame", [{"RunState": "abc"}, {"TempCurrent": True},
                                   {"DateTime": "yesterday"}, {"TimerStart": "x 06:30"},
                                   {"TimerStart": "15 06:30"}, {"TimerDays": "3 Funday"}])
def test_bad_values_of_known_keys_are_protocol_errors(frame: dict) -> None:
    with pytest.raises(ProtocolError):
        codec.check_frame(frame)


def test_mqtt_password_is_redacted() -> None:
    frame = {"MHost": "broker", "MPasswd": "hunter2"}
    assert codec.redact(frame) == {"MHost": "broker", "MPasswd": "***"}
    assert "hunter2" not in repr(codec.build_status(frame))
    assert "hunter2" not in json.dumps(dict(codec.build_status(frame).raw))


def test_timers_parse_and_format() -> None:
    timer = Timer(1)
    timer = codec.apply_timer_key(timer, "TimerStart", "3 06:30")
    timer = codec.apply_timer_key(timer, "TimerStop", "3 07:15")
    timer = codec.apply_timer_key(timer, "TimerDays", "3 Mon,Wed,Sat")
    timer = codec.apply_timer_key(timer, "TimerRepeat", "3 1")
    timer = codec.apply_timer_key(timer, "TimerTemp", "3 21")
    assert timer.start == dt.time(6, 30) and timer.stop == dt.time(7, 15)
    assert timer.days == frozenset({"Mon", "Wed", "Sat"}) and timer.repeat
    assert timer.temperature_c == 21 and timer.armed
    assert codec.parse_timer_value("TimerDays", "4 Next") == (4, (frozenset(), True))
    commands = codec.timer_commands(Timer(3, dt.time(6, 30), dt.time(7, 15),
                                          frozenset({"Sat", "Mon"}), False, True, 21))
    assert commands == {"TimerStart": "3 06:30", "TimerStop": "3 07:15",
                        "TimerDays": "3 Mon,Sat", "TimerRepeat": "3 1", "TimerTemp": "3 21"}
    with pytest.raises(ConfigurationError, match="1..14"):
        codec.timer_commands(Timer(15))


def test_datetime_round_trip() -> None:
    value = dt.datetime(2026, 3, 4, 5, 6, 7)
    assert codec.format_datetime(value) == "4/3/2026 05:06:07"
    assert codec.parse_datetime("4/3/2026 05:06:07") == value


# ------------------------------------------------------------------------- settings limits
@pytest.mark.parametrize("name,value,fragment", [
    ("desired_temperature", 7, "8..35 °C"),
    ("desired_temperature", 36, "8..35 °C"),
    ("desired_temperature", 21.5, "whole number"),
    ("thermostat_window", 0.1, "0.2..10 °C"),
    ("cyclic_off", 1, "stores it as 2 °C"),
    ("cyclic_off", 11, "2..10 °C"),
    ("cyclic_on", 1, "-20..0 °C"),
    ("frost_on", 31, "0..30 °C"),
    ("frost_rise", -1, "0..30 °C"),
    ("humidity_start", 40, "50..100 %"),
    ("pump_min", 0.3, "0.4..5 Hz"),
    ("pump_max", 10.5, "1..10 Hz"),
    ("pump_min", 1.65, "steps of 0.1 Hz"),
    ("fan_min", 400, "500..5000 RPM"),
    ("pump_cal", 0.0005, "0.001..1 mL"),
    ("low_volt_cutout", 9.5, "10..12.5 V"),
    ("low_volt_cutout", 11.55, "steps of 0.1 V"),
    ("system_voltage", 18, "12 or 24 V"),
    ("desired_temperature", "22", "must be a number"),
    ("desired_temperature", True, "must be a number"),
])
def test_settings_are_checked_against_the_firmware_limits(name: str, value: object,
                                                          fragment: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        codec.validate_setting(codec.SETTINGS[name], value)
    assert fragment in str(info.value)
    assert repr(value) in str(info.value) or str(value) in str(info.value)


def test_off_values_and_24_volt_cutout_limits() -> None:
    assert codec.validate_setting(codec.SETTINGS["cyclic_off"], 0) == 0
    assert codec.validate_setting(codec.SETTINGS["humidity_start"], 0) == 0
    assert codec.validate_setting(codec.SETTINGS["low_volt_cutout"], 0) == 0
    lvc = codec.SETTINGS["low_volt_cutout"]
    assert codec.validate_setting(lvc, 23.5, system_voltage=24) == 23.5
    with pytest.raises(ConfigurationError, match="20..25 V"):
        codec.validate_setting(lvc, 11.5, system_voltage=24)


# ------------------------------------------------------------------------- firmware parsing
@pytest.mark.parametrize("value,expected", [(22, 22), ("22", 22), (22.7, 22), (True, 0),
                                            ("heat", 0), (None, 0), ("-3x", -3)])
def test_firmware_reads_values_as_text_then_to_int(value: object, expected: int) -> None:
    assert codec.firmware_to_int(value) == expected


@pytest.mark.parametrize("value,expected", [(1.6, 1.6), ("1.6", 1.6), (False, 0.0), ("x", 0.0)])
def test_firmware_to_float(value: object, expected: float) -> None:
    assert codec.firmware_to_float(value) == expected


# ------------------------------------------------------------------------- fuzzing
@settings(max_examples=300, deadline=None)
@given(st.one_of(st.text(max_size=200), st.binary(max_size=200)))
def test_random_frames_only_raise_protocol_error(data: object) -> None:
    try:
        frame = codec.decode_frame(data)
        codec.check_frame(frame)
        codec.build_status(frame)
        codec.build_system_info(frame)
    except ProtocolError:
        pass


scalars = st.one_of(st.none(), st.booleans(), st.integers(-10**12, 10**12),
                    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=20))


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.sampled_from(sorted(set(codec.STATUS_KEYS) | set(codec.SYSTEM_KEYS)
                                              | set(codec.TIMER_KEYS))), scalars, max_size=8))
def test_known_keys_with_random_values_only_raise_protocol_error(frame: dict) -> None:
    text = json.dumps(frame)
    try:
        decoded = codec.decode_frame(text)
        codec.check_frame(decoded)
        codec.build_status(decoded)
        codec.build_system_info(decoded)
    except ProtocolError:
        pass


@settings(max_examples=200, deadline=None)
@given(st.binary(min_size=1, max_size=60).map(lambda b: MAIN_FRAME[: len(b) % len(MAIN_FRAME)]))
def test_truncated_frames_are_protocol_errors(text: str) -> None:
    with pytest.raises(ProtocolError):
        codec.decode_frame(text)
