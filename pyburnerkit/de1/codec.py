"""Pure encode/decode for every DE1 characteristic (spec ``de1.md`` sections 0-5).

No I/O, no threads. Characteristic payloads are big-endian; data inside MMR registers is
little-endian 32-bit. Every decoder raises :class:`~pyburnerkit.errors.ProtocolError` (and only
that) on a payload it cannot decode; every encoder raises
:class:`~pyburnerkit.errors.ConfigurationError` naming the value, the limit and the unit for a
value the wire format cannot carry.
"""

from __future__ import annotations

import struct
from typing import Dict, List, Mapping, Optional, Sequence, Tuple, TypedDict

from ..ble.uuids import uuid16
from ..errors import ConfigurationError, ProtocolError, check_range
from .models import (CalCommand, CalTarget, Calibration, FirmwareMap, FirmwareVersion,
                     Frame, MachineState, ShotSample, ShotSettings, StateInfo, SubState,
                     Temperatures, Versions, WaterLevels)

# ---------------------------------------------------------------------- UUIDs (section 1)
# uuid16 lives in pyburnerkit.ble.uuids (the scale codec uses it too); still importable here.

SERVICE = uuid16(0xA000)
VERSIONS = uuid16(0xA001)
REQUESTED_STATE = uuid16(0xA002)
SET_TIME = uuid16(0xA003)
SHOT_DIRECTORY = uuid16(0xA004)
READ_FROM_MMR = uuid16(0xA005)
WRITE_TO_MMR = uuid16(0xA006)
SHOT_MAP_REQUEST = uuid16(0xA007)
DELETE_SHOT_RANGE = uuid16(0xA008)
FW_MAP_REQUEST = uuid16(0xA009)
TEMPERATURES = uuid16(0xA00A)
SHOT_SETTINGS = uuid16(0xA00B)
DEPRECATED_SHOT_DESC = uuid16(0xA00C)
SHOT_SAMPLE = uuid16(0xA00D)
STATE_INFO = uuid16(0xA00E)
HEADER_WRITE = uuid16(0xA00F)
FRAME_WRITE = uuid16(0xA010)
WATER_LEVELS = uuid16(0xA011)
CALIBRATION = uuid16(0xA012)

#: name, uuid, (read, write, notify) as in spec table 1.
CHARACTERISTICS: Tuple[Tuple[str, str, Tuple[bool, bool, bool]], ...] = (
    ("Versions", VERSIONS, (True, False, True)),
    ("RequestedState", REQUESTED_STATE, (True, True, True)),
    ("SetTime", SET_TIME, (True, True, True)),
    ("ShotDirectory", SHOT_DIRECTORY, (True, True, True)),
    ("ReadFromMMR", READ_FROM_MMR, (True, True, True)),
    ("WriteToMMR", WRITE_TO_MMR, (False, True, True)),
    ("ShotMapRequest", SHOT_MAP_REQUEST, (False, True, True)),
    ("DeleteShotRange", DELETE_SHOT_RANGE, (False, True, True)),
    ("FWMapRequest", FW_MAP_REQUEST, (False, True, True)),
    ("Temperatures", TEMPERATURES, (True, False, True)),
    ("ShotSettings", SHOT_SETTINGS, (True, True, True)),
    ("DeprecatedShotDesc", DEPRECATED_SHOT_DESC, (True, True, True)),
    ("ShotSample", SHOT_SAMPLE, (True, False, True)),
    ("StateInfo", STATE_INFO, (True, False, True)),
    ("HeaderWrite", HEADER_WRITE, (True, True, True)),
    ("FrameWrite", FRAME_WRITE, (True, True, True)),
    ("WaterLevels", WATER_LEVELS, (True, True, True)),
    ("Calibration", CALIBRATION, (True, True, True)),
)
NAME_BY_UUID = {uuid: name for name, uuid, _ in CHARACTERISTICS}

#: Subscription order used at connect: request/response characteristics first, then the
#: periodic ones, the high-rate ShotSample last (avoids pygatt's subscribe stall, spec 5.6).
#: Temperatures (A00A) is not subscribed by pyDE1; here it is, so live temperatures reach the
#: cache and arrive as events like the other telemetry.
SUBSCRIBE_ORDER = (READ_FROM_MMR, WRITE_TO_MMR, FW_MAP_REQUEST, SHOT_SETTINGS, HEADER_WRITE,
                   FRAME_WRITE, CALIBRATION, REQUESTED_STATE, STATE_INFO, WATER_LEVELS,
                   TEMPERATURES, SHOT_SAMPLE)


def _need(name: str, data: bytes, length: int, *, at_least: bool = False) -> bytes:
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise ProtocolError(f"{name}: expected bytes, got {type(data).__name__}")
    data = bytes(data)
    if (len(data) < length) if at_least else (len(data) != length):
        raise ProtocolError(
            f"{name}: expected {'at least ' if at_least else ''}{length} bytes, "
            f"got {len(data)}: {data.hex(' ')}", frames=[data])
    return data


# ---------------------------------------------------------------------- fixed point (section 0)


def _enc_range(name: str, value: float, low: float, high: float, unit: str) -> float:
    """``value`` as a float once :func:`~pyburnerkit.errors.check_range` accepted it."""
    return float(check_range(name, value, low, high, unit))


def enc_u8p1(value: float, name: str = "value", unit: str = "") -> int:
    return int(round(_enc_range(name, value, 0, 127.5, unit) * 2))


def enc_u8p4(value: float, name: str = "value", unit: str = "") -> int:
    return min(255, int(round(_enc_range(name, value, 0, 15.9375, unit) * 16)))


def enc_u16p8(value: float, name: str = "value", unit: str = "") -> int:
    return min(0xFFFF, int(round(_enc_range(name, value, 0, 255.99609375, unit) * 256)))


def enc_u16p12(value: float, name: str = "value", unit: str = "") -> int:
    return min(0xFFFF, int(round(_enc_range(name, value, 0, 15.999755859375, unit) * 4096)))


def enc_u24p16(value: float, name: str = "value", unit: str = "") -> bytes:
    raw = min(0xFFFFFF, int(round(_enc_range(name, value, 0, 255.9999847, unit) * 65536)))
    return raw.to_bytes(3, "big")


def dec_u24p16(data: bytes) -> float:
    data = _need("U24P16", data, 3)
    return data[0] + data[1] / 256.0 + data[2] / 65536.0


def enc_f8_1_7(value: float, name: str = "value", unit: str = "s") -> int:
    """F8_1_7: below 12.75 tenths (bit 7 clear), else whole units with bit 7 set (max 127)."""
    v = _enc_range(name, value, 0, 127, unit)
    if v < 12.75:
        return int(round(v * 10))
    return int(round(v)) | 0x80


def dec_f8_1_7(raw: int) -> float:
    if isinstance(raw, bool) or not isinstance(raw, int) or not 0 <= raw <= 0xFF:
        raise ProtocolError(f"F8_1_7: expected one byte (0..255), got {raw!r}")
    return float(raw & 0x7F) if raw & 0x80 else (raw & 0x7F) / 10.0


def enc_u10p0(value: float, name: str = "value", unit: str = "mL") -> int:
    whole: int = check_range(name, value, 0, 1023, unit, integer=True)
    return whole


# ---------------------------------------------------------------------- simple characteristics


def decode_state_info(data: bytes) -> StateInfo:
    data = _need("StateInfo", data, 2)
    return StateInfo(MachineState(data[0]), SubState(data[1]))


def encode_state_info(info: StateInfo) -> bytes:
    return bytes((int(info.state), int(info.substate)))


def encode_requested_state(state: MachineState) -> bytes:
    code = int(state)
    if not 0 <= code <= 0xFF:
        raise ConfigurationError(f"state code {code} does not fit in one byte (0..255)")
    return bytes((code,))


def decode_requested_state(data: bytes) -> MachineState:
    return MachineState(_need("RequestedState", data, 1)[0])


def _dec_fw(block: bytes) -> FirmwareVersion:
    api, rel, commits, changes, sha = struct.unpack(">BBHBI", block)
    return FirmwareVersion(api, dec_f8_1_7(rel), commits, changes, sha)


def _enc_fw(v: FirmwareVersion) -> bytes:
    return struct.pack(">BBHBI", v.api_version, enc_f8_1_7(v.release, "release", ""),
                       v.commits, v.changes, v.sha)


def decode_versions(data: bytes) -> Versions:
    data = _need("Versions", data, 18)
    return Versions(_dec_fw(data[:9]), _dec_fw(data[9:]))


def encode_versions(v: Versions) -> bytes:
    return _enc_fw(v.ble) + _enc_fw(v.firmware)


_SETTINGS = struct.Struct(">BBBBBBBH")


def decode_shot_settings(data: bytes) -> ShotSettings:
    data = _need("ShotSettings", data, 9)
    flags, steam_t, steam_len, hw_t, hw_vol, hw_len, esp_vol, group = _SETTINGS.unpack(data)
    return ShotSettings(steam_flags=flags, steam_temp_c=steam_t, steam_length_s=steam_len,
                        hot_water_temp_c=hw_t, hot_water_volume_ml=hw_vol,
                        hot_water_length_s=hw_len, espresso_volume_ml=esp_vol,
                        group_temp_c=group / 256.0)


#: What a client may set in ShotSettings (spec section 1.1): field -> (low, high, unit).
#: Steam temperature is 0 (heater off) or in the range pyDE1 accepts.
SHOT_SETTINGS_LIMITS: Mapping[str, Tuple[float, float, str]] = {
    "steam_flags": (0, 0xC0, ""),
    "steam_temp_c": (135, 160, "°C"),
    "steam_length_s": (0, 255, "s"),
    "hot_water_temp_c": (0, 100, "°C"),
    "hot_water_volume_ml": (0, 255, "mL"),
    "hot_water_length_s": (0, 255, "s"),
    "espresso_volume_ml": (0, 255, "mL"),
    "group_temp_c": (0, 105, "°C"),
}
STEAM_FLAG_BITS = 0xC0  # FastStart 0x80, HighPower 0x40


def check_shot_setting(name: str, value: float) -> None:
    """Check one ShotSettings value a client wants to set against the DE1's limits.

    :raises ConfigurationError: naming the value, the limit and the unit.
    """
    if name not in SHOT_SETTINGS_LIMITS:
        raise ConfigurationError(f"unknown shot setting {name!r}; known: "
                                 f"{', '.join(SHOT_SETTINGS_LIMITS)}")
    low, high, unit = SHOT_SETTINGS_LIMITS[name]
    if name == "steam_temp_c" and value == 0 and not isinstance(value, bool):
        return  # 0 switches the steam heater off
    # every field but the group temperature (U16P8) is a whole byte on the wire
    check_range(name, value, low, high, unit, integer=name != "group_temp_c")
    if name == "steam_flags" and int(value) & ~STEAM_FLAG_BITS:
        raise ConfigurationError(f"steam_flags=0x{int(value):02X}: only FastStart (0x80) and "
                                 f"HighPower (0x40) exist")


def encode_shot_settings(s: ShotSettings) -> bytes:
    """Pack ShotSettings as the wire carries them (each field one byte, group U16P8).

    Only the wire's own limits are checked here, so settings the DE1 reported can always be
    written back (end steam does); :func:`check_shot_setting` holds the limits for values a
    client sets.
    """
    def byte(name: str, v: int, unit: str = "") -> int:
        whole: int = check_range(name, v, 0, 255, unit, integer=True)
        return whole

    return _SETTINGS.pack(byte("steam_flags", s.steam_flags),
                          byte("steam_temp_c", s.steam_temp_c, "°C"),
                          byte("steam_length_s", s.steam_length_s, "s"),
                          byte("hot_water_temp_c", s.hot_water_temp_c, "°C"),
                          byte("hot_water_volume_ml", s.hot_water_volume_ml, "mL"),
                          byte("hot_water_length_s", s.hot_water_length_s, "s"),
                          byte("espresso_volume_ml", s.espresso_volume_ml, "mL"),
                          enc_u16p8(s.group_temp_c, "group_temp_c", "°C"))


def decode_temperatures(data: bytes) -> Temperatures:
    data = _need("Temperatures", data, 16)
    v = [x / 256.0 for x in struct.unpack(">8H", data)]
    return Temperatures(*v)


def encode_temperatures(t: Temperatures) -> bytes:
    vals = (t.water_heater_c, t.steam_heater_c, t.group_heater_c, t.cold_water_c,
            t.target_water_heater_c, t.target_steam_heater_c, t.target_group_heater_c,
            t.target_cold_water_c)
    return struct.pack(">8H", *(enc_u16p8(v, "temperature", "°C") for v in vals))


def decode_water_levels(data: bytes) -> WaterLevels:
    data = _need("WaterLevels", data, 4)
    level, start = struct.unpack(">HH", data)
    return WaterLevels(level / 256.0, start / 256.0)


def encode_water_levels(w: WaterLevels) -> bytes:
    return struct.pack(">HH", enc_u16p8(w.level_mm, "level_mm", "mm"),
                       enc_u16p8(w.start_fill_level_mm, "start_fill_level_mm", "mm"))


def encode_refill_level(start_fill_mm: float) -> bytes:
    """The write that sets the refill threshold: Level = 0, StartFillLevel as U16P8 mm."""
    # 0 is allowed: pyDE1 passes it on (its documented HTTP API example writes 0 mm)
    _enc_range("start_fill_level_mm", start_fill_mm, 0, 70, "mm")
    return struct.pack(">HH", 0, enc_u16p8(start_fill_mm, "start_fill_level_mm", "mm"))


def decode_shot_sample(data: bytes) -> ShotSample:
    data = _need("ShotSample", data, 19)
    t, p, f, mix = struct.unpack(">HHHH", data[:8])
    head = dec_u24p16(data[8:11])
    set_mix, set_head = struct.unpack(">HH", data[11:15])
    return ShotSample(sample_time=t, group_pressure_bar=p / 4096.0, group_flow_ml_s=f / 4096.0,
                      mix_temp_c=mix / 256.0, head_temp_c=head, set_mix_temp_c=set_mix / 256.0,
                      set_head_temp_c=set_head / 256.0, set_group_pressure_bar=data[15] / 16.0,
                      set_group_flow_ml_s=data[16] / 16.0, frame_number=data[17],
                      steam_temp_c=data[18])


def encode_shot_sample(s: ShotSample) -> bytes:
    return (struct.pack(">HHHH", s.sample_time & 0xFFFF,
                        enc_u16p12(min(s.group_pressure_bar, 15.9997), "group_pressure_bar", "bar"),
                        enc_u16p12(min(s.group_flow_ml_s, 15.9997), "group_flow_ml_s", "mL/s"),
                        enc_u16p8(s.mix_temp_c, "mix_temp_c", "°C"))
            + enc_u24p16(s.head_temp_c, "head_temp_c", "°C")
            + struct.pack(">HHBBBB", enc_u16p8(s.set_mix_temp_c, "set_mix_temp_c", "°C"),
                          enc_u16p8(s.set_head_temp_c, "set_head_temp_c", "°C"),
                          enc_u8p4(s.set_group_pressure_bar, "set_group_pressure_bar", "bar"),
                          enc_u8p4(s.set_group_flow_ml_s, "set_group_flow_ml_s", "mL/s"),
                          s.frame_number & 0xFF, int(s.steam_temp_c) & 0xFF))


_CAL = struct.Struct(">IBBii")


def decode_calibration(data: bytes) -> Calibration:
    data = _need("Calibration", data, 14)
    key, cmd, target, reported, measured = _CAL.unpack(data)
    return Calibration(CalCommand(cmd), CalTarget(target), reported / 65536.0,
                       measured / 65536.0, key)


def encode_calibration(c: Calibration) -> bytes:
    def s32p16(name: str, v: float) -> int:
        _enc_range(name, v, -32768, 32768, "")
        raw = int(round(v * 65536))
        if not -2 ** 31 <= raw < 2 ** 31:  # S32P16 tops out at 32767.99998
            raise ConfigurationError(f"{name}={v!r} is out of range: the limit is "
                                     f"-32768..32767.99998 (S32P16)")
        return raw

    return _CAL.pack(c.key & 0xFFFFFFFF, int(c.command), int(c.target),
                     s32p16("reported", c.reported), s32p16("measured", c.measured))


def decode_fw_map(data: bytes) -> FirmwareMap:
    data = _need("FWMapRequest", data, 7)
    window, erase, to_map = struct.unpack(">HBB", data[:4])
    return FirmwareMap(window, erase, to_map, int.from_bytes(data[4:7], "big"))


def encode_fw_map(m: FirmwareMap) -> bytes:
    for name, v, hi in (("window_increment", m.window_increment, 0xFFFF),
                        ("erase", m.erase, 2), ("to_map", m.to_map, 2),
                        ("first_error", m.first_error, 0xFFFFFF)):
        if not isinstance(v, int) or not 0 <= v <= hi:
            raise ConfigurationError(f"FWMapRequest {name}={v!r} is out of range 0..{hi}")
    return struct.pack(">HBB", m.window_increment, m.erase, m.to_map) + \
        m.first_error.to_bytes(3, "big")


FW_NO_ERRORS = 0xFFFFFD
FW_REPORT_FIRST = 0xFFFFFF
FW_REPORT_NEXT = 0xFFFFFE


# ---------------------------------------------------------------------- SetTime / ShotDirectory

#: SetTime (A003) as pyDE1 packs it: seconds as a big-endian U64 (spec 1, open point 3).
SET_TIME_LIMIT = 2 ** 64 - 1


def encode_set_time(seconds: int) -> bytes:
    """A SetTime write: whole seconds (pyDE1 sends Unix time) as a big-endian U64.

    :raises ConfigurationError: not a whole number in 0..2**64-1 s.
    """
    whole: int = check_range("timestamp", seconds, 0, SET_TIME_LIMIT, "s", integer=True)
    return struct.pack(">Q", whole)


def decode_set_time(data: bytes) -> int:
    return int(struct.unpack(">Q", _need("SetTime", data, 8))[0])


# ---------------------------------------------------------------------- MMR (section 3)

MMR_PAGE = 0x800000


def encode_mmr_read(address: int, words: int = 1) -> bytes:
    """A ReadFromMMR request for ``words`` 32-bit registers starting at ``address``."""
    if not isinstance(words, int) or not 1 <= words <= 256:
        raise ConfigurationError(f"MMR read length={words!r} words is out of range: 1..256 words")
    _check_addr(address)
    return bytes((words - 1,)) + address.to_bytes(3, "big") + bytes(16)


def encode_mmr_write(address: int, data: bytes) -> bytes:
    """A WriteToMMR frame: Len = data bytes (1..16), address, data zero-padded to 16."""
    if not 1 <= len(data) <= 16:
        raise ConfigurationError(f"MMR write of {len(data)} bytes: the limit is 1..16 bytes")
    _check_addr(address)
    return bytes((len(data),)) + address.to_bytes(3, "big") + bytes(data) + bytes(16 - len(data))


def encode_mmr_register(address: int, raw: int) -> bytes:
    if not isinstance(raw, int) or not -(2 ** 31) <= raw < 2 ** 32:
        raise ConfigurationError(f"MMR value {raw!r} does not fit in 32 bits")
    return encode_mmr_write(address, struct.pack("<I", raw & 0xFFFFFFFF))


def _check_addr(address: int) -> None:
    if not isinstance(address, int) or not 0 <= address <= 0xFFFFFF:
        raise ConfigurationError(f"MMR address {address!r} is out of range 0..0xFFFFFF")


def decode_mmr(data: bytes) -> Tuple[int, int, bytes]:
    """A ReadFromMMR/WriteToMMR frame -> (len byte, address, 16 data bytes)."""
    data = _need("MMR frame", data, 20)
    return data[0], int.from_bytes(data[1:4], "big"), data[4:20]


def decode_mmr_reply(data: bytes) -> Dict[int, int]:
    """A ReadFromMMR notification -> {register address: raw LE U32} for each whole word."""
    length, address, payload = decode_mmr(data)
    if length > 16:
        raise ProtocolError(f"MMR reply length {length} exceeds 16 bytes", frames=[bytes(data)])
    out = {}
    for i in range(length // 4):
        out[address + 4 * i] = struct.unpack_from("<I", payload, 4 * i)[0]
    return out


def encode_mmr_reply(address: int, words: Sequence[int]) -> bytes:
    if len(words) > 4:
        raise ConfigurationError(f"an MMR reply carries at most 4 words, got {len(words)}")
    payload = b"".join(struct.pack("<I", w & 0xFFFFFFFF) for w in words)
    return bytes((len(payload),)) + address.to_bytes(3, "big") + payload + bytes(16 - len(payload))


class Register:
    """One MMR register: address, name, scale (raw = value * scale), writability, unit, range."""

    __slots__ = ("address", "name", "scale", "writable", "unit", "low", "high", "min_build")

    def __init__(self, address: int, name: str, scale: float = 1, writable: bool = False,
                 unit: str = "", low: float = 0, high: float = 2 ** 32 - 1,
                 min_build: int = 0) -> None:
        self.address, self.name, self.scale, self.writable = address, name, scale, writable
        self.unit, self.low, self.high, self.min_build = unit, low, high, min_build

    def decode(self, raw: int) -> float:
        return raw / self.scale if self.scale != 1 else raw

    def encode(self, value: float) -> int:
        """The raw register value for ``value`` (in :attr:`unit`).

        :raises ConfigurationError: out of the register's range, or finer than its steps.
        """
        checked = check_range(self.name, value, self.low, self.high, self.unit,
                              step=None if self.scale == 1 else 1 / self.scale,
                              integer=self.scale == 1)
        return int(round(checked * self.scale))

    def __repr__(self) -> str:
        return f"Register(0x{self.address:06X} {self.name})"


REGISTERS: Tuple[Register, ...] = (
    Register(0x800000, "hw_config"),
    Register(0x800004, "model"),
    Register(0x800008, "cpu_board_model", 1000),
    Register(0x80000C, "machine_model"),
    Register(0x800010, "cpu_firmware_build"),
    Register(0x802800, "debug_len"),
    Register(0x803804, "debug_config"),
    Register(0x803808, "fan_threshold", 1, True, "°C", 0, 60),
    Register(0x80380C, "tank_temperature", 1, True, "°C", 0, 60),
    Register(0x803810, "heater_phase1_flow", 10, True, "mL/s", 0, 10),
    Register(0x803814, "heater_phase2_flow", 10, True, "mL/s", 0, 10),
    Register(0x803818, "heater_idle_temperature", 10, True, "°C", 0, 99),
    Register(0x80381C, "ghc_info"),
    Register(0x803820, "pref_ghc_mci"),
    Register(0x803824, "max_shot_press"),
    Register(0x803828, "steam_flow", 100, True, "mL/s", 0.4, 2.5),
    Register(0x80382C, "steam_high_flow_start", 100, True, "s", 0, 10),
    Register(0x803830, "serial_number"),
    Register(0x803834, "heater_voltage", 1, True, "V", 0, 1240),
    Register(0x803838, "heater_phase2_timeout", 10, True, "s", 0, 60),
    Register(0x80383C, "flow_calibration", 1000, True, "", 0.13, 2.0),
    Register(0x803840, "flush_flow", 10, True, "mL/s", 0, 10, 1283),
    Register(0x803844, "flush_temperature", 10, True, "°C", 0, 99, 1283),
    Register(0x803848, "flush_timeout", 10, True, "s", 0, 255, 1283),
    Register(0x80384C, "hot_water_flow", 10, True, "mL/s", 0, 10, 1283),
    Register(0x803850, "steam_purge_mode", 1, True, "", 0, 1, 1320),
    Register(0x803854, "usb_outlet", 1, True, "", 0, 1, 1320),
    Register(0x803858, "app_feature_flags", 1, True, "", 0, 1, 1320),
    Register(0x80385C, "refill_kit_present", 1, True, "", 0, 2, 1320),
    Register(0x803860, "user_present", 1, True, "", 0, 1, 1320),
)
REGISTER_BY_NAME: Mapping[str, Register] = {r.name: r for r in REGISTERS}
REGISTER_BY_ADDRESS: Mapping[int, Register] = {r.address: r for r in REGISTERS}

GHC_ACTIVE = 0x04


#: The register page an expert may read raw (spec 3): everything the DE1 maps there.
MMR_PAGE_END = 0x80FFFF
#: Registers that freeze firmware up to build 1260 when read (spec 3: PREF_GHC_MCI,
#: MAX_SHOT_PRESS).
FREEZING_REGISTERS = (0x803820, 0x803824)


def check_raw_mmr_read(address: int, words: int = 1) -> None:
    """Check a raw ReadFromMMR request: a word-aligned address in the register page
    (0x800000..0x80FFFF), 1..256 words that stay inside it.

    :raises ConfigurationError: naming the value and the limit.
    """
    check_range("MMR read length", words, 1, 256, "words", integer=True)
    if isinstance(address, bool) or not isinstance(address, int) or \
            not MMR_PAGE <= address <= MMR_PAGE_END:
        raise ConfigurationError(f"MMR address {_hex(address)} is out of range: raw reads are "
                                 f"limited to the register page 0x{MMR_PAGE:06X}..0x"
                                 f"{MMR_PAGE_END:06X}")
    if address % 4:
        raise ConfigurationError(f"MMR address 0x{address:06X} is not word aligned "
                                 f"(registers are 4 bytes: the address must be a multiple of 4)")
    last = address + 4 * words - 1
    if last > MMR_PAGE_END:
        raise ConfigurationError(f"MMR read of {words} words from 0x{address:06X} ends at "
                                 f"0x{last:06X}: the limit is 0x{MMR_PAGE_END:06X}")


def freezes_firmware(address: int, words: int, build: int) -> bool:
    """Whether reading these registers hangs a DE1 with firmware ``build`` (spec 3)."""
    end = address + 4 * words
    return build < 1265 and any(address <= a < end for a in FREEZING_REGISTERS)


def check_raw_mmr_write(address: int, raw: int) -> Register:
    """Check a raw register write against what is known of the register (spec 3): it must be
    a known, writable register and the raw value must encode a value inside its limits.

    :returns: the register.
    :raises ConfigurationError: an address below the register page (the firmware image: use
        the firmware upload), an unknown or read-only register, or a raw value out of the
        register's limits; the message names the value, the limit and the unit.
    """
    if isinstance(address, bool) or not isinstance(address, int):
        raise ConfigurationError(f"MMR address must be an integer, got {address!r}")
    if 0 <= address < MMR_PAGE:
        raise ConfigurationError(
            f"MMR address 0x{address:06X} is in the firmware image (below 0x{MMR_PAGE:06X}): "
            f"raw writes are limited to known registers; use the firmware upload")
    reg = REGISTER_BY_ADDRESS.get(address)
    if reg is None:
        writable = ", ".join(f"0x{r.address:06X} {r.name}" for r in REGISTERS if r.writable)
        raise ConfigurationError(f"MMR address {_hex(address)} is not a known writable "
                                 f"register (nothing was sent); known: {writable}")
    if not reg.writable:
        raise ConfigurationError(f"MMR 0x{address:06X} ({reg.name}) is read-only")
    low_raw = int(round(reg.low * reg.scale))
    high_raw = int(round(reg.high * reg.scale))
    unit = f" {reg.unit}" if reg.unit else ""
    scaled = "" if reg.scale == 1 else f", raw = value x {_num(reg.scale)}"
    if isinstance(raw, bool) or not isinstance(raw, int):
        raise ConfigurationError(f"{reg.name} (MMR 0x{address:06X}) raw value must be a whole "
                                 f"number in {low_raw}..{high_raw}, got {raw!r}")
    if not low_raw <= raw <= high_raw:
        shown = "" if reg.scale == 1 else f" (= {_num(raw / reg.scale)}{unit})"
        raise ConfigurationError(
            f"{reg.name} (MMR 0x{address:06X}) raw value {raw}{shown} is out of range: the "
            f"limit is {low_raw}..{high_raw} ({_num(reg.low)}..{_num(reg.high)}{unit}{scaled})")
    return reg


def _hex(value: object) -> str:
    return f"0x{value:06X}" if isinstance(value, int) and not isinstance(value, bool) \
        else repr(value)


def _num(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


def last_readable_register(build: int) -> int:
    if build < 1250:
        return REGISTER_BY_NAME["heater_phase2_timeout"].address
    if build < 1283:
        return REGISTER_BY_NAME["flow_calibration"].address
    return REGISTER_BY_NAME["user_present"].address


def init_mmr_reads(build: int) -> List[Tuple[int, int]]:
    """The bulk reads done at connect (after CPU_FIRMWARE_BUILD), as (address, words)."""
    reads = [(0x800000, 4)]
    first, last = 0x803808, last_readable_register(build)
    if build >= 1265:
        reads.append((first, (last - first) // 4 + 1))
    else:  # 0x803820/0x803824 freeze older firmware: read around them
        reads.append((first, (0x80381C - first) // 4 + 1))
        if last >= 0x803828:
            reads.append((0x803828, (last - 0x803828) // 4 + 1))
    return reads


# ---------------------------------------------------------------------- profiles (section 4)

MAX_FRAMES = 20
EXT_FRAME_OFFSET = 32


def encode_header(number_of_frames: int, preinfuse_frames: int, minimum_pressure: float = 0.0,
                  maximum_flow: float = 6.0) -> bytes:
    if not isinstance(number_of_frames, int) or not 1 <= number_of_frames <= MAX_FRAMES:
        raise ConfigurationError(
            f"a profile has {number_of_frames!r} frames: the limit is 1..{MAX_FRAMES} frames")
    if not isinstance(preinfuse_frames, int) or not 0 <= preinfuse_frames <= number_of_frames:
        raise ConfigurationError(
            f"preinfuse frame count={preinfuse_frames!r} is out of range: 0..{number_of_frames}")
    return bytes((1, number_of_frames, preinfuse_frames,
                  enc_u8p4(minimum_pressure, "minimum_pressure", "bar"),
                  enc_u8p4(maximum_flow, "maximum_flow", "mL/s")))


def decode_header(data: bytes) -> Tuple[int, int, int, float, float]:
    data = _need("HeaderWrite", data, 5)
    return data[0], data[1], data[2], data[3] / 16.0, data[4] / 16.0


def encode_frame(index: int, frame: Frame) -> bytes:
    if not isinstance(index, int) or not 0 <= index < MAX_FRAMES:
        raise ConfigurationError(f"frame index {index!r} is out of range 0..{MAX_FRAMES - 1}")
    if not 0 <= frame.flags <= 0x7F:
        raise ConfigurationError(f"frame {index}: flags 0x{frame.flags:X} out of range 0..0x7F")
    return struct.pack(">BBBBBBH", index, frame.flags,
                       enc_u8p4(frame.set_value, f"frame {index} set value",
                                "mL/s" if frame.flags & 0x01 else "bar"),
                       enc_u8p1(frame.temperature_c, f"frame {index} temperature", "°C"),
                       enc_f8_1_7(frame.seconds, f"frame {index} seconds", "s"),
                       enc_u8p4(frame.trigger, f"frame {index} exit value",
                                "mL/s" if frame.flags & 0x08 else "bar"),
                       enc_u10p0(frame.max_volume_ml, f"frame {index} volume", "mL"))


def encode_ext_frame(index: int, limiter_value: float, limiter_range: float) -> bytes:
    if not 0 <= index < MAX_FRAMES:
        raise ConfigurationError(f"frame index {index!r} is out of range 0..{MAX_FRAMES - 1}")
    return bytes((EXT_FRAME_OFFSET + index,
                  enc_u8p4(limiter_value, f"frame {index} limiter value", ""),
                  enc_u8p4(limiter_range, f"frame {index} limiter range", ""))) + bytes(5)


def encode_tail(number_of_frames: int, max_total_volume: int = 0) -> bytes:
    if not 1 <= number_of_frames <= MAX_FRAMES:
        raise ConfigurationError(f"tail frame index {number_of_frames} out of range 1..20")
    return struct.pack(">BH", number_of_frames,
                       enc_u10p0(max_total_volume, "max total volume", "mL")) + bytes(5)


def decode_frame_write(data: bytes) -> Tuple[str, int, object]:
    """A FrameWrite payload -> ("frame"|"ext"|"tail", index, decoded)."""
    data = _need("FrameWrite", data, 8)
    idx = data[0]
    if idx < MAX_FRAMES:
        # The tail's index equals the frame count, so 1..20 is ambiguous without the header;
        # callers that know the count call decode_tail for index == count.
        flags, setv, temp, flen, trig, maxvol = struct.unpack(">BBBBBH", data[1:])
        return "frame", idx, Frame(flags, setv / 16.0, temp / 2.0, dec_f8_1_7(flen),
                                   trig / 16.0, maxvol & 0x3FF)
    if EXT_FRAME_OFFSET <= idx < EXT_FRAME_OFFSET + MAX_FRAMES:
        return "ext", idx - EXT_FRAME_OFFSET, (data[1] / 16.0, data[2] / 16.0)
    if idx == MAX_FRAMES:
        return "tail", idx, struct.unpack(">H", data[1:3])[0] & 0x3FF
    raise ProtocolError(f"FrameWrite index {idx} is not a frame, extension frame or tail",
                        frames=[data])


def decode_tail(data: bytes) -> Tuple[int, int]:
    data = _need("FrameWrite tail", data, 8)
    return data[0], struct.unpack(">H", data[1:3])[0] & 0x3FF


# ---------------------------------------------------------------------- firmware file (section 5)

FW_BOARD_MARKER = 0xDE100001
FW_HEADER = struct.Struct("<IIIIIII32sI")


class FirmwareHeader(TypedDict):
    """The 64-byte header of a firmware file, as :func:`decode_firmware_header` returns it."""

    checksum: int
    board_marker: int
    version: int
    byte_count: int
    cpu_bytes: int
    dcsum: int
    iv: bytes
    hsum: int


def decode_firmware_header(data: bytes) -> FirmwareHeader:
    data = _need("firmware header", data, 64, at_least=True)
    (checksum, marker, version, byte_count, cpu_bytes, _unused, dcsum, iv,
     hsum) = FW_HEADER.unpack(data[:64])
    return {"checksum": checksum, "board_marker": marker, "version": version,
            "byte_count": byte_count, "cpu_bytes": cpu_bytes, "dcsum": dcsum,
            "iv": iv, "hsum": hsum}


def encode_firmware_header(version: int, byte_count: int, cpu_bytes: Optional[int] = None,
                           checksum: int = 0, dcsum: int = 0, hsum: int = 0) -> bytes:
    return FW_HEADER.pack(checksum, FW_BOARD_MARKER, version, byte_count,
                          byte_count if cpu_bytes is None else cpu_bytes, 0, dcsum, bytes(32), hsum)
