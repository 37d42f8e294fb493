"""Pure encode/decode of the Afterburner WebSocket JSON: no I/O, no threads, no logging.

Both directions live here: the client's view (frames to typed models, settings to commands,
with the firmware's limits checked first) and the device's view used by the simulator (the
firmware reads every command value as text and converts it with Arduino's ``toInt`` /
``toFloat``, so ``true`` or ``"heat"`` mean 0).
"""

from __future__ import annotations

import datetime as _dt
import enum
import functools
import json
import math
import re
from dataclasses import dataclass
from typing import Any, Callable, Dict, FrozenSet, Iterable, Mapping, Optional, Tuple, TypeVar

from ..errors import ConfigurationError, ProtocolError, check_range
from .models import (WEEKDAYS, Bluewire, DemandMode, ErrorState, HeaterStatus, RunState,
                     SystemInfo, TemperatureUnit, ThermostatMethod, Timer)

#: The firmware parses at most this many bytes of one command frame; larger ones are dropped.
MAX_COMMAND_BYTES = 512
#: Outbound frames are at most this long (one group per frame).
MAX_FRAME_BYTES = 800
NVSAVE_CODE = 8861
TIMER_COUNT = 14
#: Keys whose value is a credential. The V3.2 firmware sends the MQTT broker password in clear
#: on every refresh; newer builds may add Wi-Fi or other credentials, so any key whose name
#: looks like one (see :func:`is_secret_key`) is hidden too.
SECRET_KEYS = frozenset({"MPasswd"})
_SECRET_NAME = re.compile(r"pass|pwd|secret|token|credential|psk", re.IGNORECASE)
MASK = "***"

Scalar = Any
#: a frozen dataclass (a status, the system info) copied with some fields changed
D = TypeVar("D")


# ------------------------------------------------------------------------- frame level
def decode_frame(data: Any) -> Dict[str, Scalar]:
    """One WebSocket text frame to a flat dict.

    The firmware's float printer emits a bare ``NaN`` (invalid JSON, accepted here). Error
    messages quote the frame with every credential masked (:func:`redact_text`).

    :raises ProtocolError: not UTF-8 text, not JSON, not an object, or a nested value.
    """
    if isinstance(data, (bytes, bytearray, memoryview)):
        try:
            data = bytes(data).decode("utf-8")
        except UnicodeDecodeError as exc:
            exc.object = redact(exc.object).encode("utf-8", "replace")
            raise ProtocolError(f"frame is not UTF-8 text: {exc.reason} at byte "
                                f"{exc.start}") from exc
    if not isinstance(data, str):
        raise ProtocolError(f"frame must be text, got {type(data).__name__}")
    try:
        obj = json.loads(data)
    except (ValueError, RecursionError) as exc:
        if isinstance(exc, json.JSONDecodeError):
            exc.doc = redact_text(exc.doc)  # the cause keeps the frame: mask it there too
            detail = f"{exc.msg} at char {exc.pos}"
        else:
            detail = type(exc).__name__
        raise ProtocolError(f"frame is not JSON: {detail}: "
                            f"{_excerpt(redact_text(data))}") from exc
    if not isinstance(obj, dict):
        raise ProtocolError(f"frame must be one JSON object, got {type(obj).__name__}")
    for key, value in obj.items():
        if isinstance(value, (dict, list)):
            raise ProtocolError(f"frame key {key!r} holds a nested value; the protocol is flat")
    return obj


def _excerpt(text: str, limit: int = 80) -> str:
    return repr(text if len(text) <= limit else text[:limit] + "...")


def encode_frame(mapping: Mapping[str, Scalar]) -> str:
    """A flat mapping to compact JSON text, as the firmware writes and expects it.

    NaN goes out as the bare token ``NaN``, as the firmware's float printer does.
    """
    return _ENCODER.encode(mapping if type(mapping) is dict else dict(mapping))


def encoded_item_bytes(key: str, value: Scalar) -> int:
    """Bytes ``"key":value`` takes in :func:`encode_frame`'s output (which is ASCII), so a
    frame's size is 2 + its items + a comma between each two, without encoding it whole."""
    return len(_ENCODER.encode(key)) + 1 + len(_ENCODER.encode(value))


#: One encoder for every frame: ``json.dumps`` with options builds a new one per call.
_ENCODER = json.JSONEncoder(separators=(",", ":"), allow_nan=True)


# ------------------------------------------------------------------------- secrets
def is_secret_key(key: Any) -> bool:
    """Whether a frame key carries a credential (``MPasswd``, or a name like one)."""
    return isinstance(key, str) and _secret_name(key)


@functools.lru_cache(maxsize=4096)  # every frame's keys are checked: the names repeat
def _secret_name(key: str) -> bool:
    return key in SECRET_KEYS or bool(_SECRET_NAME.search(key))


#: ``"key" : value`` in raw JSON-ish text. The value is a string (possibly cut off, as in a
#: truncated frame) or a bare token up to the next separator.
_KEY_VALUE = re.compile(r'"((?:[^"\\]|\\.)*)"(\s*:\s*)("(?:[^"\\]|\\.?)*"?|[^,}\]\s]*)')


def _unescaped(key_text: str) -> str:
    try:
        return str(json.loads(f'"{key_text}"'))
    except ValueError:
        return key_text.replace("\\", "")


def redact_text(text: str) -> str:
    """Mask the value of every credential key in raw frame text, decodable or not.

    Used for frames that failed to decode (a truncated ``{"MPasswd":"...`` included), so a
    password never reaches a log line, the wire log or :attr:`ProtocolError.frames`.
    """
    def mask(match: "re.Match[str]") -> str:
        if not is_secret_key(_unescaped(match.group(1))):
            return match.group(0)
        return f'"{match.group(1)}"{match.group(2)}"{MASK}"'
    return _KEY_VALUE.sub(mask, text)


def redact(frame: Any) -> Any:
    """A copy of ``frame`` with credentials masked: dicts by key, raw text and bytes by
    pattern (bytes come back as text). Anything else is returned unchanged."""
    if isinstance(frame, dict):
        if any(is_secret_key(k) for k in frame):
            return {k: (MASK if is_secret_key(k) else v) for k, v in frame.items()}
        return frame
    if isinstance(frame, str):
        return redact_text(frame)
    if isinstance(frame, (bytes, bytearray, memoryview)):
        return redact_text(bytes(frame).decode("utf-8", "replace"))
    return frame


# ------------------------------------------------------------------------- value converters
def _number(key: str, value: Any) -> Optional[float]:
    """A JSON number, or a number the firmware printed as text; ``None`` for NaN."""
    if isinstance(value, bool) or value is None:
        raise ProtocolError(f"{key}: expected a number, got {value!r}")
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return None if math.isnan(value) else value
    if isinstance(value, str):
        try:
            number = float(value)
        except (ValueError, OverflowError):
            raise ProtocolError(f"{key}: expected a number, got {_excerpt(value)}") from None
        return None if math.isnan(number) else number
    raise ProtocolError(f"{key}: expected a number, got {type(value).__name__}")


def _as_float(key: str, value: Any) -> Optional[float]:
    number = _number(key, value)
    if number is None:
        return None
    try:
        return float(number)
    except OverflowError:
        raise ProtocolError(f"{key}: number out of range: {_excerpt(str(value))}") from None


def _as_int(key: str, value: Any) -> Optional[int]:
    number = _number(key, value)
    if number is None:
        return None
    if isinstance(number, float) and math.isinf(number):
        raise ProtocolError(f"{key}: expected a whole number, got {value!r}")
    return int(number)


def _as_bool(key: str, value: Any) -> Optional[bool]:
    number = _as_int(key, value)
    return None if number is None else bool(number)


def _as_str(key: str, value: Any) -> str:
    if isinstance(value, (dict, list)):
        raise ProtocolError(f"{key}: expected text, got {type(value).__name__}")
    return value if isinstance(value, str) else str(value)


def _enum(cls: Any) -> Callable[[str, Any], Any]:
    def convert(key: str, value: Any) -> Any:
        number = _as_int(key, value)
        return None if number is None else cls(number)
    return convert


def _bluewire(key: str, value: Any) -> Bluewire:
    return Bluewire.parse(_as_str(key, value))


#: wire key -> (HeaterStatus field, converter)
STATUS_KEYS: Dict[str, Tuple[str, Callable[[str, Any], Any]]] = {
    "TempCurrent": ("temperature_c", _as_float),
    "Temp2Current": ("temperature2_c", _as_float),
    "Temp3Current": ("temperature3_c", _as_float),
    "Temp4Current": ("temperature4_c", _as_float),
    "TempDesired": ("desired_temperature", _as_int),
    "TempMode": ("temperature_unit", _enum(TemperatureUnit)),
    "TempMin": ("desired_min_c", _as_float),
    "TempMax": ("desired_max_c", _as_float),
    "TempBody": ("body_temperature_c", _as_float),
    "RunState": ("run_state", _enum(RunState)),
    "RunString": ("run_string", _as_str),
    "ErrorState": ("error_state", _enum(ErrorState)),
    "ErrorString": ("error_string", _as_str),
    "Thermostat": ("demand_mode", _enum(DemandMode)),
    "PumpFixed": ("pump_fixed_hz", _as_float),
    "PumpMin": ("pump_min_hz", _as_float),
    "PumpMax": ("pump_max_hz", _as_float),
    "PumpActual": ("pump_actual_hz", _as_float),
    "FanMin": ("fan_min_rpm", _as_int),
    "FanMax": ("fan_max_rpm", _as_int),
    "FanRPM": ("fan_rpm", _as_int),
    "FanVoltage": ("fan_voltage_v", _as_float),
    "FanSensor": ("fan_sensor", _as_int),
    "InputVoltage": ("input_voltage_v", _as_float),
    "SystemVoltage": ("system_voltage_v", _as_float),
    "GlowVoltage": ("glow_voltage_v", _as_float),
    "GlowCurrent": ("glow_current_a", _as_float),
    "BluewireStat": ("bluewire", _bluewire),
    "ThermostatMethod": ("thermostat_method", _enum(ThermostatMethod)),
    "ThermostatWindow": ("thermostat_window_c", _as_float),
    "CyclicOff": ("cyclic_off_c", _as_int),
    "ThermostatOvertemp": ("cyclic_off_c", _as_int),
    "CyclicOn": ("cyclic_on_c", _as_int),
    "ThermostatUndertemp": ("cyclic_on_c", _as_int),
    "CyclicTemp": ("cyclic_temperature_c", _as_int),
    "FrostOn": ("frost_on_c", _as_int),
    "FrostRise": ("frost_rise_c", _as_int),
    "PumpCount": ("pump_count", _as_float),
    "PumpCal": ("pump_cal_ml", _as_float),
    "LowVoltCutout": ("low_volt_cutout_v", _as_float),
    "HumidStart": ("humidity_start_pct", _as_int),
    "TempOffset": ("temp_offset_c", _as_float),
    "Temp2Offset": ("temp2_offset_c", _as_float),
    "Temp3Offset": ("temp3_offset_c", _as_float),
    "Temp4Offset": ("temp4_offset_c", _as_float),
    "TempType": ("temp_type", _as_str),
    "Altitude": ("altitude_m", _as_int),
    "Humidity": ("humidity_pct", _as_float),
    "IP_STA": ("ip_sta", _as_str),
    "IP_AP": ("ip_ap", _as_str),
    "IP_STASSID": ("wifi_ssid", _as_str),
    "IP_STARSSI": ("wifi_rssi_dbm", _as_float),
    "MEn": ("mqtt_enabled", _as_bool),
    "MOnline": ("mqtt_online", _as_bool),
    "GPin1": ("gpio_in1", _as_bool),
    "GPin2": ("gpio_in2", _as_bool),
    "GPout1": ("gpio_out1", _as_bool),
    "GPout2": ("gpio_out2", _as_bool),
    "GPanlg": ("gpio_analogue_pct", _as_int),
    "ExtThermoTmout": ("ext_thermo_timeout_ms", _as_int),
}

SYSTEM_KEYS: Dict[str, Tuple[str, Callable[[str, Any], Any]]] = {
    "DateTime": ("datetime", lambda k, v: parse_datetime(_as_str(k, v))),
    "SysUpTime": ("uptime_s", _as_int),
    "SysVer": ("firmware_version", _as_str),
    "SysDate": ("firmware_date", _as_str),
    "SysFreeMem": ("free_memory_bytes", _as_int),
    "SysRunTime": ("run_time_s", _as_int),
    "SysGlowTime": ("glow_time_s", _as_int),
    "Time12hr": ("time_12hr", _as_bool),
}

TIMER_KEYS = ("TimerStart", "TimerStop", "TimerDays", "TimerRepeat", "TimerTemp")


def convert(key: str, value: Any) -> Any:
    """One status or system key's value, typed as in the models.

    :raises ProtocolError: the value is of the wrong kind.
    """
    spec = STATUS_KEYS.get(key) or SYSTEM_KEYS.get(key)
    if spec is None:
        return value
    return spec[1](key, value)


def check_frame(frame: Mapping[str, Any]) -> None:
    """Convert every known key once, so a bad value is a :class:`ProtocolError` up front."""
    for key, value in frame.items():
        if key in STATUS_KEYS:
            STATUS_KEYS[key][1](key, value)
        elif key in SYSTEM_KEYS:
            SYSTEM_KEYS[key][1](key, value)
        elif key in TIMER_KEYS:
            parse_timer_value(key, value)


def build_status(keys: Mapping[str, Any]) -> HeaterStatus:
    """Merged wire keys to a :class:`HeaterStatus` (unknown keys stay in ``raw``).

    :raises ProtocolError: a known key holds a value of the wrong kind.
    """
    values: Dict[str, Any] = {}
    for key, value in keys.items():
        spec = STATUS_KEYS.get(key)
        if spec is not None:
            values[spec[0]] = spec[1](key, value)
    return HeaterStatus(raw=dict(redact(dict(keys))), **values)


def update_status(previous: HeaterStatus, changed: Mapping[str, Any]) -> HeaterStatus:
    """``previous`` with the wire keys of ``changed`` applied: the same result as
    :func:`build_status` of the merged keys, at the cost of the keys that changed only (a
    frame carries a few; a status has ~60). Unknown keys go to ``raw`` only, credentials
    masked. ``previous`` is not modified.

    :raises ProtocolError: a known key holds a value of the wrong kind (nothing is built).
    """
    fields: Dict[str, Any] = {}
    for key, value in changed.items():
        spec = STATUS_KEYS.get(key)
        if spec is not None:
            fields[spec[0]] = spec[1](key, value)
    raw = dict(previous.raw)
    for key, value in changed.items():
        raw[key] = MASK if is_secret_key(key) else value
    fields["raw"] = raw
    return _with_fields(previous, fields)


def _with_fields(previous: D, fields: Dict[str, Any]) -> D:
    """A copy of the frozen dataclass ``previous`` with ``fields`` set: its attribute dict
    copied and updated, which is what dataclasses.replace() ends with, without re-running
    ``__init__`` over every field (a status has ~60)."""
    copied: D = object.__new__(type(previous))
    attributes = copied.__dict__
    attributes.update(previous.__dict__)
    attributes.update(fields)
    return copied


def build_system_info(keys: Mapping[str, Any]) -> SystemInfo:
    values = {spec[0]: spec[1](key, keys[key]) for key, spec in SYSTEM_KEYS.items()
              if key in keys}
    return SystemInfo(**values)


def update_system_info(previous: SystemInfo, previous_keys: Mapping[str, Any],
                       changed: Mapping[str, Any]) -> SystemInfo:
    """``previous`` (built from ``previous_keys``) with the system keys of ``changed``
    applied: the same result as :func:`build_system_info` of the merged keys, converting only
    the values that differ from ``previous_keys`` (every answer repeats the whole group, and
    most of it - the version, the clock within the second - is unchanged).

    :raises ProtocolError: a known key holds a value of the wrong kind (nothing is built).
    """
    fields: Dict[str, Any] = {}
    for key, value in changed.items():
        spec = SYSTEM_KEYS.get(key)
        if spec is not None and (key not in previous_keys or previous_keys[key] != value
                                 or type(previous_keys[key]) is not type(value)):
            fields[spec[0]] = spec[1](key, value)
    return _with_fields(previous, fields) if fields else previous


# ------------------------------------------------------------------------- date and time
_DATETIME = re.compile(r"^\s*(\d{1,2})/(\d{1,2})/(\d{4})\s+(\d{1,2}):(\d{2}):(\d{2})\s*$")


def parse_datetime(text: str) -> _dt.datetime:
    """``"D/M/YYYY HH:MM:SS"`` (the controller's local time, no zone) to a naive datetime."""
    match = _DATETIME.match(text)
    if not match:
        raise ProtocolError(f"DateTime: expected 'D/M/YYYY HH:MM:SS', got {_excerpt(text)}")
    day, month, year, hour, minute, second = (int(g) for g in match.groups())
    try:
        return _dt.datetime(year, month, day, hour, minute, second)
    except (ValueError, OverflowError) as exc:
        raise ProtocolError(f"DateTime: {text!r}: {exc}") from exc


def format_datetime(value: _dt.datetime) -> str:
    return (f"{value.day}/{value.month}/{value.year} "
            f"{value.hour:02d}:{value.minute:02d}:{value.second:02d}")


# ------------------------------------------------------------------------- timers
def parse_timer_value(key: str, value: Any) -> Tuple[int, Any]:
    """A timer key's ``"ID rest"`` value to (id, parsed rest).

    TimerStart/TimerStop -> ``datetime.time``; TimerDays -> ``(frozenset(days), next_only)``;
    TimerRepeat -> bool; TimerTemp -> int °C.
    """
    text = _as_str(key, value).strip()
    head, _, rest = text.partition(" ")
    try:
        timer_id = int(head)
    except ValueError:
        raise ProtocolError(f"{key}: expected 'ID ...', got {_excerpt(text)}") from None
    if not 1 <= timer_id <= TIMER_COUNT:
        raise ProtocolError(f"{key}: timer id {timer_id} is outside 1..{TIMER_COUNT}")
    rest = rest.strip()
    if key in ("TimerStart", "TimerStop"):
        return timer_id, _parse_hhmm(key, rest)
    if key == "TimerDays":
        return timer_id, _parse_days(key, rest)
    if key == "TimerRepeat":
        return timer_id, bool(_as_int(key, rest or "0"))
    if key == "TimerTemp":
        return timer_id, _as_int(key, rest or "0")
    raise ProtocolError(f"{key} is not a timer key")


def _parse_hhmm(key: str, text: str) -> _dt.time:
    hour, sep, minute = text.partition(":")
    try:
        return _dt.time(int(hour), int(minute))
    except (ValueError, OverflowError):
        raise ProtocolError(f"{key}: expected 'HH:MM', got {_excerpt(text)}") from None


def _parse_days(key: str, text: str) -> Tuple[FrozenSet[str], bool]:
    if text in ("", "None"):
        return frozenset(), False
    if text == "Next":
        return frozenset(), True
    days = [d.strip() for d in text.split(",") if d.strip()]
    unknown = [d for d in days if d not in WEEKDAYS]
    if unknown:
        raise ProtocolError(f"{key}: unknown day names in {_excerpt(text)}")
    return frozenset(days), False


def apply_timer_key(timer: Timer, key: str, value: Any) -> Timer:
    """A copy of ``timer`` with one parsed timer key applied."""
    from dataclasses import replace
    _, parsed = parse_timer_value(key, value)
    if key == "TimerStart":
        return replace(timer, start=parsed)
    if key == "TimerStop":
        return replace(timer, stop=parsed)
    if key == "TimerDays":
        return replace(timer, days=parsed[0], next_only=parsed[1])
    if key == "TimerRepeat":
        return replace(timer, repeat=parsed)
    return replace(timer, temperature_c=parsed or None)


def format_days(days: Iterable[str], next_only: bool) -> str:
    if next_only:
        return "Next"
    chosen = [d for d in WEEKDAYS if d in set(days)]
    return ",".join(chosen) if chosen else "None"


def timer_commands(timer: Timer) -> Dict[str, str]:
    """The command keys that program ``timer`` (validated).

    :raises ConfigurationError: not a Timer, or a bad id, time, day name, flag or temperature.
    """
    if not isinstance(timer, Timer):
        raise ConfigurationError(f"expected a Timer, got {timer!r}")
    check_range("timer id", timer.id, 1, TIMER_COUNT, integer=True)
    for name, value in (("start", timer.start), ("stop", timer.stop)):
        if value is not None and not isinstance(value, _dt.time):
            raise ConfigurationError(
                f"timer {name} must be a datetime.time (HH:MM) or None, got {value!r}")
    for name, flag in (("repeat", timer.repeat), ("next_only", timer.next_only)):
        if not isinstance(flag, bool) and flag not in (0, 1):
            raise ConfigurationError(f"timer {name} must be True or False, got {flag!r}")
    if isinstance(timer.days, str) or not isinstance(timer.days, Iterable):
        raise ConfigurationError(f"timer days must be a set of day names, got {timer.days!r}")
    unknown = set(timer.days) - set(WEEKDAYS)
    if unknown:
        raise ConfigurationError(
            f"timer days {sorted(map(str, unknown))} are not day names; use "
            f"{', '.join(WEEKDAYS)}")
    commands: Dict[str, str] = {}
    if timer.start is not None:
        commands["TimerStart"] = f"{timer.id} {timer.start.hour:02d}:{timer.start.minute:02d}"
    if timer.stop is not None:
        commands["TimerStop"] = f"{timer.id} {timer.stop.hour:02d}:{timer.stop.minute:02d}"
    commands["TimerDays"] = f"{timer.id} {format_days(timer.days, bool(timer.next_only))}"
    commands["TimerRepeat"] = f"{timer.id} {int(bool(timer.repeat))}"
    temp = timer.temperature_c or 0
    if temp:
        check_range("timer temperature (or 0/None to keep the set point)", temp, 8, 35, "°C",
                    integer=True)
    commands["TimerTemp"] = f"{timer.id} {int(temp)}"
    return commands


# ------------------------------------------------------------------------- settings
@dataclass(frozen=True)
class Setting:
    """One writable value: wire key, the firmware's limits, and how it is confirmed."""

    name: str
    key: str
    low: float
    high: float
    unit: str = ""
    integer: bool = True
    step: Optional[float] = None
    #: a value outside low..high that the firmware still accepts (0 = off)
    off_value: Optional[float] = None
    #: key the device reports the value under, when not ``key``
    reported_as: Optional[str] = None
    doc: str = ""

    @property
    def report_key(self) -> str:
        return self.reported_as or self.key


SETTINGS: Dict[str, Setting] = {s.name: s for s in [
    Setting("desired_temperature", "TempDesired", 8, 35, "°C",
            doc="set point (°C) in thermostat mode, demand index in fixed-Hz mode"),
    Setting("cyclic_temperature", "CyclicTemp", 8, 35, "°C", doc="absolute set point"),
    Setting("demand_mode", "Thermostat", 0, 1, doc="0 fixed Hz, 1 thermostat"),
    Setting("thermostat_method", "ThermostatMethod", 0, 4,
            doc="0 standard, 1 deadband, 2 linear Hz, 3 external, 4 stop/start"),
    Setting("thermostat_window", "ThermostatWindow", 0.2, 10.0, "°C", integer=False,
            doc="band for methods 1 and 2"),
    Setting("cyclic_off", "CyclicOff", 2, 10, "°C", off_value=0,
            doc="stop when ambient > set point + this; 0 turns cyclic mode off"),
    Setting("cyclic_on", "CyclicOn", -20, 0, "°C", doc="restart when ambient < set point + this"),
    Setting("frost_on", "FrostOn", 0, 30, "°C", doc="frost start threshold; 0 = off"),
    Setting("frost_rise", "FrostRise", 0, 30, "°C", doc="frost stop = FrostOn + this"),
    Setting("humidity_start", "HumidStart", 50, 100, "%", off_value=0,
            doc="start above this humidity (BME280); 0 = off"),
    Setting("temperature_unit", "TempMode", 0, 1, doc="display unit: 0 °C, 1 °F"),
    Setting("time_12hr", "Time12hr", 0, 1, doc="12-hour clock on the display"),
    Setting("ext_thermo_timeout", "ExtThermoTmout", 0, 3_600_000, "ms",
            doc="external thermostat hold time"),
    Setting("temp_offset", "TempOffset", -10, 10, "°C", integer=False, step=0.1,
            doc="sensor 1 calibration offset"),
    Setting("temp2_offset", "Temp2Offset", -10, 10, "°C", integer=False, step=0.1,
            doc="sensor 2 calibration offset"),
    Setting("temp3_offset", "Temp3Offset", -10, 10, "°C", integer=False, step=0.1,
            doc="sensor 3 calibration offset"),
    Setting("temp4_offset", "Temp4Offset", -10, 10, "°C", integer=False, step=0.1,
            doc="sensor 4 calibration offset"),
    Setting("gpio_out1", "GPout1", 0, 1, doc="user output 1 (switches wiring)"),
    Setting("gpio_out2", "GPout2", 0, 1, doc="user output 2 (switches wiring)"),
    Setting("pump_min", "PumpMin", 0.4, 5.0, "Hz", integer=False, step=0.1,
            doc="pump rate at lowest power"),
    Setting("pump_max", "PumpMax", 1.0, 10.0, "Hz", integer=False, step=0.1,
            doc="pump rate at highest power"),
    Setting("fan_min", "FanMin", 500, 5000, "RPM", doc="fan speed at lowest power"),
    Setting("fan_max", "FanMax", 500, 5000, "RPM", doc="fan speed at highest power"),
    Setting("fan_sensor", "FanSensor", 1, 2, doc="fan pulse divisor (SN-1/SN-2)"),
    Setting("pump_cal", "PumpCal", 0.001, 1.0, "mL", integer=False, step=0.001,
            doc="pump displacement per stroke"),
    Setting("low_volt_cutout", "LowVoltCutout", 10.0, 12.5, "V", integer=False, step=0.1,
            off_value=0, doc="low-voltage shutdown; 0 = off (24 V: 20.0-25.0)"),
    Setting("system_voltage", "SystemVoltage", 12, 24, "V",
            doc="nominal heater voltage: 12 or 24"),
]}

#: wire key -> setting, for ``set KEY=VALUE`` with firmware key names
SETTINGS_BY_KEY = {s.key: s for s in SETTINGS.values()}
#: Low-voltage cut-out range per system voltage (V).
LVC_RANGES = {12: (10.0, 12.5), 24: (20.0, 25.0)}


def find_setting(name: str) -> Setting:
    """A setting by its name or firmware key.

    :raises ConfigurationError: neither.
    """
    setting = SETTINGS.get(name) or SETTINGS_BY_KEY.get(name)
    if setting is None:
        raise ConfigurationError(
            f"unknown setting {name!r}; known: {', '.join(sorted(SETTINGS))}")
    return setting


def prepare_settings(settings: Mapping[str, Any], *,
                     system_voltage: Optional[float] = None) -> Dict[str, Any]:
    """Settings by name (or firmware key) to the command frame, every check done first.

    Pure: whether writes are allowed at all is the client's (and the CLI's) decision.

    :raises ConfigurationError: none given, an unknown name, or a value outside the firmware's
        limits (the message names the value, the limit and the unit).
    """
    if not settings:
        raise ConfigurationError("set() needs at least one setting")
    chosen = [(find_setting(name), value) for name, value in settings.items()]
    frame: Dict[str, Any] = {}
    for setting, value in chosen:
        if isinstance(value, enum.IntEnum):
            value = int(value)
        frame[setting.key] = validate_setting(setting, value, system_voltage=system_voltage)
    return frame


def validate_setting(setting: Setting, value: Any, *,
                     system_voltage: Optional[float] = None) -> Any:
    """Check ``value`` against the firmware's limits and return the wire value.

    ``system_voltage`` picks the low-voltage cut-out range; unknown (not connected yet), the
    range the value falls in is used and the connected client checks again.

    :raises ConfigurationError: naming the value, the limit and the unit.
    """
    if setting.off_value is not None and value == setting.off_value \
            and not isinstance(value, bool):
        return int(value) if setting.integer else value
    low, high = setting.low, setting.high
    name = setting.name
    if setting.key == "LowVoltCutout":
        volts = 24 if system_voltage is not None and system_voltage > 18 else 12
        if system_voltage is None and isinstance(value, (int, float)) \
                and not isinstance(value, bool) and value > 16:
            volts = 24
        low, high = LVC_RANGES[volts]
        name = f"{setting.name} ({volts} V system)"
    if setting.key == "SystemVoltage":
        if value not in (12, 24) or isinstance(value, bool):
            raise ConfigurationError(f"system_voltage={value!r} V: the device takes 12 or 24 V")
        return int(value)
    if setting.key == "CyclicOff" and value == 1 and not isinstance(value, bool):
        raise ConfigurationError(
            "cyclic_off=1 °C is not a setting of its own: the firmware stores it as 2 °C; "
            "use 0 (off) or 2..10 °C")
    if setting.off_value is not None:
        name = f"{name} (or {setting.off_value:g} for off)"
    checked = check_range(name, value, low, high, setting.unit, integer=setting.integer,
                          step=setting.step)
    if not setting.integer:
        checked = round(float(checked), 6)
    return checked


def values_match(expected: Any, reported: Any) -> bool:
    """Whether a reported value shows the one we sent (floats to the device's resolution)."""
    if reported is None:
        return False
    try:
        return math.isclose(float(expected), float(reported), rel_tol=1e-4, abs_tol=1e-6)
    except (TypeError, ValueError, OverflowError):
        return str(expected) == str(reported)


# ------------------------------------------------------------------------- device side
_LEADING_INT = re.compile(r"^\s*([+-]?\d+)")
_LEADING_FLOAT = re.compile(r"^\s*([+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?)")


def firmware_text(value: Any) -> str:
    """How the firmware sees a JSON value: as text (``true`` -> ``"true"``)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, float) and value == int(value) and not math.isinf(value):
        return str(int(value)) if abs(value) < 1e15 else repr(value)
    return str(value)


def firmware_to_int(value: Any) -> int:
    """Arduino ``String::toInt``: the leading integer of the text, else 0."""
    match = _LEADING_INT.match(firmware_text(value))
    return int(match.group(1)) if match else 0


def firmware_to_float(value: Any) -> float:
    """Arduino ``String::toFloat``: the leading decimal number of the text, else 0."""
    match = _LEADING_FLOAT.match(firmware_text(value))
    return float(match.group(1)) if match else 0.0


def firmware_number(value: float) -> Any:
    """How ArduinoJson prints a number: whole floats without a point, others trimmed."""
    if isinstance(value, float):
        if math.isnan(value):
            return value
        if value == int(value) and abs(value) < 1e9:
            return int(value)
        return float(f"{value:.6g}")
    return value
