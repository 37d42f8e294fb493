"""pyDE1's Python names on top of pyburnerkit's DE1 pieces, so code written against pyDE1's
modules ports by changing its imports to this one.

=====================================  ==================================================
pyDE1                                  here
=====================================  ==================================================
``pyDE1.de1.profile.ProfileByFrames``  :class:`ProfileByFrames` (``from_json``,
                                       ``from_json_file``, ``id``, ``fingerprint``,
                                       ``source``, ``header_write()``...; ``.program`` is
                                       what :meth:`~pyburnerkit.de1.DE1Client.upload_profile`
                                       takes)
``DE1ProfileValidationError``          :class:`~pyburnerkit.errors.ConfigurationError`
``SourceFormat``                       :class:`SourceFormat`
``pyDE1.de1.c_api.API_MachineStates``  :class:`API_MachineStates` (same names and codes)
``API_Substates``                      :class:`API_Substates` (same names and codes)
``MMR0x80LowAddr``                     :class:`MMR0x80LowAddr` (``.address`` is the full
                                       address :meth:`~pyburnerkit.de1.DE1Client.read_mmr`
                                       takes)
=====================================  ==================================================

The running pyDE1 service (its HTTP and MQTT APIs) is ``pyburnerkit serve`` (see the service
docs); the DE1 itself is :class:`~pyburnerkit.de1.client.DE1Client`. Differences that remain
are listed in ``docs/migrating/pyde1.rst``.
"""

from __future__ import annotations

import enum
import io
from typing import Any, Iterator, List, Optional, Union

from ..errors import ConfigurationError
from . import codec
from .models import MachineState, SubState
from .profile import Program, load

__all__ = ["API_MachineStates", "API_Substates", "DE1ProfileValidationError",
           "DE1ProfileValidationErrorJSON", "FrameWrite", "MMR0x80LowAddr", "ProfileByFrames",
           "SourceFormat", "state_from_pyde1", "substate_from_pyde1"]

#: pyDE1's profile errors are ValueErrors; ours are ConfigurationError (also a ValueError).
DE1ProfileValidationError = ConfigurationError
DE1ProfileValidationErrorJSON = ConfigurationError


class SourceFormat(enum.Enum):
    JSONv2 = "JSONv2"


class API_MachineStates(enum.IntEnum):
    """pyDE1's machine-state names (codes as :class:`~pyburnerkit.de1.models.MachineState`)."""

    Sleep = 0x00
    GoingToSleep = 0x01
    Idle = 0x02
    Busy = 0x03
    Espresso = 0x04
    Steam = 0x05
    HotWater = 0x06
    ShortCal = 0x07
    SelfTest = 0x08
    LongCal = 0x09
    Descale = 0x0A
    FatalError = 0x0B
    Init = 0x0C
    NoRequest = 0x0D
    SkipToNext = 0x0E
    HotWaterRinse = 0x0F
    SteamRinse = 0x10
    Refill = 0x11
    Clean = 0x12
    InBootLoader = 0x13
    AirPurge = 0x14
    SchedIdle = 0x15

    @property
    def is_flow_state(self) -> bool:
        return MachineState(int(self)).is_flow


class API_Substates(enum.IntEnum):
    """pyDE1's substate names (codes as :class:`~pyburnerkit.de1.models.SubState`)."""

    NoState = 0x00
    HeatWaterTank = 0x01
    HeatWaterHeater = 0x02
    StabilizeMixTemp = 0x03
    PreInfuse = 0x04
    Pour = 0x05
    Flush = 0x06
    Steaming = 0x07
    DescaleInit = 0x08
    DescaleFillGroup = 0x09
    DescaleReturn = 0x0A
    DescaleGroup = 0x0B
    DescaleSteam = 0x0C
    CleanInit = 0x0D
    CleanFillGroup = 0x0E
    CleanSoak = 0x0F
    CleanGroup = 0x10
    PausedRefill = 0x11
    PausedSteam = 0x12
    UserNotPresent = 0x13
    SteamPuff = 0x14
    UNKNOWN = 199
    Error_NaN = 200
    Error_Inf = 201
    Error_Generic = 202
    Error_ACC = 203
    Error_TSensor = 204
    Error_PSensor = 205
    Error_WLevel = 206
    Error_DIP = 207
    Error_Assertion = 208
    Error_Unsafe = 209
    Error_InvalidParm = 210
    Error_Flash = 211
    Error_OOM = 212
    Error_Deadline = 213
    Error_HiCurrent = 214
    Error_LoCurrent = 215
    Error_BootFill = 216
    ERROR_UNKNOWN = 299

    @property
    def is_error_state(self) -> bool:
        return self.value >= 200

    @property
    def flow_phase(self) -> str:
        """pyDE1's 'before' / 'during' / 'after' (or 'not_in_flow')."""
        phase = SubState(int(self)).flow_phase.value
        return "not_in_flow" if phase == "none" else phase


class MMR0x80LowAddr(enum.IntEnum):
    """pyDE1's register names: the low 16 bits of an address in the 0x80 page."""

    HW_CONFIG = 0x0000
    MODEL = 0x0004
    CPU_BOARD_MODEL = 0x0008
    V13_MODEL = 0x000C
    CPU_FIRMWARE_BUILD = 0x0010
    DEBUG_LEN = 0x2800
    DEBUG_BUFFER = 0x2804
    DEBUG_CONFIG = 0x3804
    FAN_THRESHOLD = 0x3808
    TANK_TEMP = 0x380C
    HEATER_UP1_FLOW = 0x3810
    HEATER_UP2_FLOW = 0x3814
    WATER_HEATER_IDLE_TEMP = 0x3818
    GHC_INFO = 0x381C
    PREF_GHC_MCI = 0x3820
    MAX_SHOT_PRESS = 0x3824
    TARGET_STEAM_FLOW = 0x3828
    STEAM_START_SECS = 0x382C
    SERIAL_NUMBER = 0x3830
    HEATER_VOLTAGE = 0x3834
    HEATER_UP2_TIMEOUT = 0x3838
    CAL_FLOW_EST = 0x383C
    FLUSH_FLOW_RATE = 0x3840
    FLUSH_TEMP = 0x3844
    FLUSH_TIMEOUT = 0x3848
    HOT_WATER_FLOW_RATE = 0x384C
    STEAM_PURGE_MODE = 0x3850
    ALLOW_USB_CHARGING = 0x3854
    APP_FEATURE_FLAGS = 0x3858
    REFILL_KIT_PRESENT = 0x385C
    USER_PRESENT = 0x3860

    @property
    def address(self) -> int:
        """The full 24-bit address (``0x80`` page)."""
        return codec.MMR_PAGE | int(self)

    @property
    def register_name(self) -> Optional[str]:
        """pyburnerkit's name of the register (``codec.REGISTERS``), if it has one."""
        reg = codec.REGISTER_BY_ADDRESS.get(self.address)
        return None if reg is None else reg.name


def state_from_pyde1(name: Union[str, int]) -> MachineState:
    """pyDE1's state name (``"Espresso"``) or code -> :class:`~pyburnerkit.de1.MachineState`."""
    value = API_MachineStates[name] if isinstance(name, str) else API_MachineStates(name)
    return MachineState(int(value))


def substate_from_pyde1(name: Union[str, int]) -> SubState:
    """pyDE1's substate name (``"PreInfuse"``) or code -> :class:`~pyburnerkit.de1.SubState`."""
    value = API_Substates[name] if isinstance(name, str) else API_Substates(name)
    return SubState(int(value))


class FrameWrite:
    """One HeaderWrite or FrameWrite packet, as pyDE1's ``FrameWrite_*`` objects show it."""

    def __init__(self, kind: str, data: bytes) -> None:
        self.kind = kind  # "header", "frame", "ext", "tail"
        self._data = bytes(data)

    @property
    def FrameToWrite(self) -> Optional[int]:
        return None if self.kind == "header" else self._data[0]

    def as_wire_bytes(self) -> bytes:
        return self._data

    def log_string(self) -> str:
        return f"{self.kind} {self._data.hex(' ')}"

    def __repr__(self) -> str:
        return f"FrameWrite({self.kind}, {self._data.hex(' ')})"


class ProfileByFrames:
    """pyDE1's profile object: ``ProfileByFrames().from_json(source)``.

    Validation is pyburnerkit's (every value against the DE1's limits, named with its limit
    and unit); the wire program is pyburnerkit's (spec 4.2), so :attr:`fingerprint` differs
    from pyDE1's for the same profile while :attr:`id` (SHA-1 of the source) is the same.
    Unlike pyDE1 the fingerprint is known before any upload.
    """

    _MAX_SHOT_FRAMES = codec.MAX_FRAMES
    _EXT_OFFSET = codec.EXT_FRAME_OFFSET

    def __init__(self) -> None:
        self._program: Optional[Program] = None
        self._source: Optional[bytes] = None

    # pyDE1's API
    def from_json(self, json_str_or_bytes: Union[str, bytes, bytearray]) -> "ProfileByFrames":
        """:raises ConfigurationError: not a valid JSON v2 profile."""
        if isinstance(json_str_or_bytes, str):
            source = json_str_or_bytes.encode("utf-8")
        elif isinstance(json_str_or_bytes, (bytes, bytearray)):
            source = bytes(json_str_or_bytes)
        else:
            raise ConfigurationError(f"from_json takes JSON text or bytes, got "
                                     f"{type(json_str_or_bytes).__name__}")
        self._program = load(source)
        self._source = source
        return self

    def from_json_file(self, file: Union[str, io.TextIOBase, io.BufferedIOBase, Any]
                       ) -> "ProfileByFrames":
        """A path or an open file (deprecated in pyDE1 too: prefer :meth:`from_json`).

        :param file: the path of a JSON profile, or a file opened in text or binary mode
            (anything with ``read()``).
        :type file: ``str``, ``io.TextIOBase``, ``io.BufferedIOBase`` or any object with ``read()``
        :raises ConfigurationError: not a valid JSON v2 profile.
        :raises OSError: the file cannot be read.
        """
        if isinstance(file, str):
            with open(file, "rb") as fh:
                return self.from_json(fh.read())
        return self.from_json(file.read())

    def validate(self) -> bool:
        """True once a profile was loaded (loading already checked every value)."""
        self._need()
        return True

    @property
    def program(self) -> Program:
        """What :meth:`~pyburnerkit.de1.DE1Client.upload_profile` takes."""
        return self._need()

    @property
    def id(self) -> Optional[str]:
        """pyDE1's profile id: the SHA-1 (hex) of the JSON source; None before loading."""
        return None if self._program is None else self._program.profile_id

    @property
    def fingerprint(self) -> Optional[str]:
        """The SHA-1 (hex) of the wire program pyburnerkit uploads (not pyDE1's value for the
        same profile); None before loading."""
        return None if self._program is None else self._program.fingerprint

    @property
    def source(self) -> Optional[bytes]:
        return self._source

    @property
    def source_format(self) -> Optional[SourceFormat]:
        return None if self._program is None else SourceFormat.JSONv2

    @property
    def title(self) -> Optional[str]:
        return None if self._program is None else self._program.title

    @property
    def tank_temperature(self) -> Optional[float]:
        return None if self._program is None else self._program.tank_temperature_c

    @property
    def target_weight(self) -> Optional[float]:
        return None if self._program is None else self._program.target_weight_g

    @property
    def target_volume(self) -> Optional[float]:
        return None if self._program is None else self._program.target_volume_ml

    @property
    def number_of_preinfuse_frames(self) -> Optional[int]:
        return None if self._program is None else self._program.preinfuse_frames

    def header_write(self) -> FrameWrite:
        return FrameWrite("header", self._need().header)

    def shot_frame_writes(self) -> List[FrameWrite]:
        return [FrameWrite("frame", f) for f in self._need().frames]

    def ext_shot_frame_writes(self) -> Iterator[FrameWrite]:
        return iter([FrameWrite("ext", f) for f in self._need().ext_frames])

    def shot_tail_write(self) -> FrameWrite:
        return FrameWrite("tail", self._need().tail)

    def _need(self) -> Program:
        if self._program is None:
            raise ConfigurationError("no profile loaded: call from_json() first")
        return self._program
