"""What an Arbin user sees: status and result codes with Arbin's meanings, typed readings, events.

Channels are 1-based everywhere in this module (the wire uses 0-based indexes; the codec
converts). Field names carry their unit. Codes a table does not know decode to an
``UNKNOWN_<n>`` member whose text is ``"unknown (n)"``, never to an exception.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass, field
from typing import Any, Dict, Mapping, Optional, Tuple

from .._core.display import Displayable
from ..types import CodeEnum, Event


class _CodeEnum(CodeEnum):
    """A code table with Arbin's meanings; unknown codes read "unknown (n)"."""

    @property
    def text(self) -> str:
        """Arbin's meaning of the code."""
        return _TEXTS.get(type(self).__name__, {}).get(int(self), f"unknown ({int(self)})")

    @property
    def known(self) -> bool:
        return int(self) in _TEXTS.get(type(self).__name__, {})


_TEXTS: Dict[str, Dict[int, str]] = {}


def _texts(cls: type, table: Mapping[int, str]) -> None:
    _TEXTS[cls.__name__] = dict(table)


class ChannelState(_CodeEnum):
    """The channel status code (i16 in every channel-info record), 0-31."""

    IDLE = 0
    TRANSITION = 1
    CHARGE = 2
    DISCHARGE = 3
    REST = 4
    WAIT = 5
    EXTERNAL_CHARGE = 6
    CALIBRATION = 7
    UNSAFE = 8
    PULSE = 9
    INTERNAL_RESISTANCE = 10
    AC_IMPEDANCE = 11
    ACI_CELL = 12
    TEST_SETTINGS = 13
    ERROR = 14
    FINISHED = 15
    VOLT_METER = 16
    WAITING_FOR_ACS = 17
    PAUSE = 18
    EMPTY = 19
    IDLE_FROM_MCU = 20
    START = 21
    RUNNING = 22
    STEP_TRANSFER = 23
    RESUME = 24
    GO_PAUSE = 25
    GO_STOP = 26
    GO_NEXT_STEP = 27
    ONLINE_UPDATE = 28
    DAQ_MEMORY_UNSAFE = 29
    ACR = 30
    SUSPENDED = 31

    @property
    def is_running(self) -> bool:
        """A test is executing on the channel (a step is under way)."""
        return self in _RUNNING_STATES


_texts(ChannelState, {
    0: "Idle", 1: "Transition", 2: "Charge", 3: "Discharge", 4: "Rest", 5: "Wait",
    6: "External Charge", 7: "Calibration", 8: "Unsafe", 9: "Pulse", 10: "Internal Resistance",
    11: "AC Impedance", 12: "ACI Cell", 13: "Test Settings", 14: "Error", 15: "Finished",
    16: "Volt Meter", 17: "Waiting for ACS", 18: "Pause", 19: "Empty", 20: "Idle from MCU",
    21: "Start", 22: "Running", 23: "Step Transfer", 24: "Resume", 25: "Go Pause",
    26: "Go Stop", 27: "Go Next Step", 28: "Online Update", 29: "DAQ Memory Unsafe", 30: "ACR",
    31: "Suspended",
})

_RUNNING_STATES = frozenset({
    ChannelState.TRANSITION, ChannelState.CHARGE, ChannelState.DISCHARGE, ChannelState.REST,
    ChannelState.WAIT, ChannelState.PULSE, ChannelState.INTERNAL_RESISTANCE,
    ChannelState.AC_IMPEDANCE, ChannelState.ACI_CELL, ChannelState.START,
    ChannelState.RUNNING, ChannelState.STEP_TRANSFER, ChannelState.RESUME, ChannelState.ACR,
})


class LoginResult(_CodeEnum):
    """Login feedback result (u32)."""

    SHOULD_NOT_HAPPEN = 0
    SUCCESS = 1
    FAILED = 2
    ALREADY_LOGGED_IN = 3

    @property
    def ok(self) -> bool:
        return self in (LoginResult.SUCCESS, LoginResult.ALREADY_LOGGED_IN)


_texts(LoginResult, {0: "no result (should not happen)", 1: "success",
                     2: "failed (wrong credentials or no CTI permission)",
                     3: "success (already logged in before)"})


class _CommandResult(_CodeEnum):
    @property
    def ok(self) -> bool:
        return int(self) == 0


class AssignResult(_CommandResult):
    """Assign-schedule feedback result (u8)."""

    SUCCESS = 0
    CHANNEL_DOES_NOT_EXIST = 0x10
    MONITOR_WINDOW_IN_USE = 0x11
    SCHEDULE_NAME_EMPTY = 0x12
    SCHEDULE_NOT_FOUND = 0x13
    CHANNEL_RUNNING = 0x14
    CHANNEL_DOWNLOADING = 0x15
    BATCH_FILE_OPEN = 0x16
    ASSIGN_FAILED = 0x17
    SAVE_FAILED = 0x18
    UNSUPPORTED_FILE_TYPE = 0x19
    NOT_ASSIGN_SCHEDULE = 0x1A
    AUX_REQUIREMENT_MISSING = 0x1B
    SCHEDULE_RUNNING = 0x1C
    MUID_MISMATCH = 0x1D
    SCHEDULE_CLEARED = 0x1E


_texts(AssignResult, {
    0: "success", 0x10: "channel does not exist", 0x11: "monitor window in use",
    0x12: "schedule name is empty", 0x13: "schedule not found", 0x14: "channel is running",
    0x15: "channel is downloading another schedule", 0x16: "batch file is open",
    0x17: "assign failed", 0x18: "save failed", 0x19: "unsupported file type",
    0x1A: "not an assign-schedule file", 0x1B: "schedule lacks an aux requirement",
    0x1C: "schedule is running", 0x1D: "MUID mismatch", 0x1E: "schedule was cleared",
})


class StartResult(_CommandResult):
    """Start feedback result (u8); resume and jump-to-step use the same numbering."""

    SUCCESS = 0
    INVALID_CHANNEL = 0x10
    MONITOR_WINDOW_IN_USE = 0x11
    CHANNEL_RUNNING_OR_UNSAFE = 0x12
    DAQ_NOT_CONNECTED = 0x13
    SCHEDULE_INCOMPATIBLE = 0x14
    NO_SCHEDULE_ASSIGNED = 0x15
    SCHEDULE_VERSION_MISMATCH = 0x16
    POWER_PROTECTED = 0x17
    RESULTS_FILE_SIZE_LIMIT = 0x18
    INVALID_STEP_NUMBER = 0x19
    NO_CAN_CONFIG = 0x1A
    INVALID_AUX_COUNT = 0x1B
    INVALID_BUILTIN_AUX_COUNT = 0x1C
    POWER_CLAMP_CHECK = 0x1D
    CHECK_AUX_TEST_SETTING = 0x1E
    NO_SELECTED_CHANNELS = 0x1F
    BT6000_RUNNING_GROUP = 0x20
    DAQ_DOWNLOADING_SCHEDULE = 0x21
    DATABASE_QUERY_ERROR = 0x22
    TEST_NAME_PROBLEM = 0x23
    INVALID_GO_STEP = 0x24
    INVALID_PARALLEL_CHANNEL = 0x25
    SAFETY_PRECHECK_FAILED = 0x26
    SCHEDULE_NAME_DIFFERENT = 0x27
    BATTERY_SIMULATION_NOT_PARALLEL = 0x28
    CSV_WAIT_TIME = 0x29
    CHANNEL_SUSPENDED = 0x2A
    TEST_NAME_TOO_LONG = 0x2B


_texts(StartResult, {
    0: "success", 0x10: "invalid channel index",
    0x11: "someone controls the monitor window (Start/Resume dialog open)",
    0x12: "channel is running or unsafe", 0x13: "not connected to the DAQ",
    0x14: "schedule incompatible with the system configuration",
    0x15: "no schedule assigned", 0x16: "schedule version mismatch", 0x17: "power protected",
    0x18: "results file size limit", 0x19: "invalid step number", 0x1A: "no CAN configuration",
    0x1B: "invalid aux count in the schedule", 0x1C: "invalid built-in aux count",
    0x1D: "power clamp check", 0x1E: "check the Aux Test Setting tab",
    0x1F: "no selected channels", 0x20: "BT6000 running group",
    0x21: "DAQ still downloading the schedule", 0x22: "database query error",
    0x23: "test name empty or already exists (resume: schedule differs from the last one)",
    0x24: "invalid step (go-step)", 0x25: "invalid parallel channel",
    0x26: "safety pre-check failed", 0x27: "schedule name different",
    0x28: "battery simulation not parallel", 0x29: "CSV wait time",
    0x2A: "channel suspended", 0x2B: "test name too long",
})


class StopResult(_CommandResult):
    """Stop feedback result (u8)."""

    SUCCESS = 0
    CHANNEL_DOES_NOT_EXIST = 0x10
    MONITOR_WINDOW_IN_USE = 0x11
    NOT_RUNNING = 0x12
    NOT_CONNECTED = 0x13


_texts(StopResult, {0: "success", 0x10: "channel index does not exist",
                    0x11: "monitor window in use by someone else", 0x12: "channel not running",
                    0x13: "not connected"})


class SetMVResult(_CommandResult):
    """Set-meta-variable feedback result (u8), as Arbin documents it (pycti swaps 0x11/0x12)."""

    SUCCESS = 0
    FAILED = 0x10
    META_CODE_DOES_NOT_EXIST = 0x11
    CHANNEL_NOT_RUNNING = 0x12
    META_CODE_NOT_IN_PRO7 = 0x13
    UPDATE_TOO_FREQUENT = 0x14


_texts(SetMVResult, {0: "success", 0x10: "set meta variable failed",
                     0x11: "meta code does not exist", 0x12: "channel is not running",
                     0x13: "meta code does not exist in Pro7",
                     0x14: "update too frequent (less than 200 ms apart)"})


class ContinueResult(_CommandResult):
    """Continue feedback result (u8)."""

    SUCCESS = 0
    INVALID_CHANNEL = 0x10
    MONITOR_WINDOW_IN_USE = 0x11
    CHANNEL_RUNNING = 0x12
    NOT_CONNECTED = 0x13
    CALIBRATING = 0x14
    NOT_IN_NORMAL_PAUSE = 0x15
    UNSAFE = 0x16


_texts(ContinueResult, {0: "success", 0x10: "invalid channel index",
                        0x11: "monitor window in use", 0x12: "channel is running",
                        0x13: "not connected", 0x14: "channel is calibrating",
                        0x15: "channel is not in a normal pause", 0x16: "channel is unsafe"})


class SerialResult(_CommandResult):
    """Get-serial feedback result (u8); only 0 (success) is documented."""

    SUCCESS = 0


_texts(SerialResult, {0: "success"})


class ConnectResult(_CommandResult):
    """Connect (kick-out flag) feedback result (u32): 0 accepted, 1 rejected (server full)."""

    ACCEPTED = 0
    REJECTED = 1


_texts(ConnectResult, {0: "accepted", 1: "rejected (the CTI server is full)"})


class GetMVResult(_CommandResult):
    """Get-meta-variable feedback result (u8), as Arbin's DLL names the codes."""

    SUCCESS = 0
    ERROR = 0x10
    DATA_TYPE_UNSUPPORTED = 0x11
    META_CODE_DOES_NOT_EXIST = 0x12
    CHANNEL_INDEX_ERROR = 0x13
    AUX_INDEX_ERROR = 0x14
    AUX_NOT_ASSIGNED = 0x15
    CANBMS_INDEX_ERROR = 0x16
    CANBMS_DOES_NOT_EXIST = 0x17
    CANBMS_DISABLED = 0x18
    DAQ_NOT_CONNECTED = 0x19
    TIMEOUT = 0x1A
    MCU_ACK_FAILED = 0x1B
    META_CODE_UNSUPPORTED = 0x1C
    SMB_INDEX_ERROR = 0x1D
    SMB_DOES_NOT_EXIST = 0x1E
    SMB_DISABLED = 0x1F
    SMB_ERROR = 0x20
    AUX_TYPE_ERROR = 0x21
    NULL_OBJECT = 0x22
    DCOM_ERROR = 0x23
    WRITE_NOT_SUPPORTED = 0x24
    EQ_INDEX_ERROR = 0x25
    CELL_INDEX_ERROR = 0x26


_texts(GetMVResult, {
    0: "success", 0x10: "error", 0x11: "data type unsupported",
    0x12: "meta code does not exist", 0x13: "channel index error", 0x14: "aux index error",
    0x15: "aux not assigned", 0x16: "CAN BMS index error", 0x17: "CAN BMS does not exist",
    0x18: "CAN BMS disabled", 0x19: "DAQ not connected", 0x1A: "timeout",
    0x1B: "MCU acknowledgement failed", 0x1C: "meta code unsupported",
    0x1D: "SMB index error", 0x1E: "SMB does not exist", 0x1F: "SMB disabled",
    0x20: "SMB error", 0x21: "aux type error", 0x22: "null object", 0x23: "DCOM error",
    0x24: "write not supported", 0x25: "EQ index error", 0x26: "cell index error",
})


class MetaValueType(enum.IntEnum):
    """How a meta variable's value is carried (Arbin's ``METAVARIABLE_VALUE_TYPE``)."""

    LONG = 0
    DOUBLE = 1
    STRING = 2


class MetaCode(enum.IntEnum):
    """Meta codes (Arbin's ``ETE_METAVARIABLE_CODE``, the part the spec lists)."""

    PV_STEP_INDEX = 1
    PV_CYCLE_INDEX = 2
    PV_STEP_TIME = 3
    PV_TEST_TIME = 4
    PV_VOLTAGE = 21
    PV_CURRENT = 22
    PV_CHARGE_CAPACITY = 23
    PV_DISCHARGE_CAPACITY = 24
    PV_CHARGE_ENERGY = 25
    PV_DISCHARGE_ENERGY = 26
    PV_DVDT = 27
    PV_INTERNAL_RESISTANCE = 30
    MV_UD1 = 52
    MV_UD2 = 53
    MV_UD3 = 54
    MV_UD4 = 55
    TC_TIMER1 = 61
    TC_TIMER2 = 62
    TC_TIMER3 = 63
    TC_TIMER4 = 64
    TC_COUNTER1 = 73
    TC_COUNTER2 = 74
    TC_COUNTER3 = 75
    TC_COUNTER4 = 76
    MV_UD5 = 105
    MV_UD6 = 106
    MV_UD7 = 107
    MV_UD8 = 108
    MV_UD9 = 109
    MV_UD10 = 110
    MV_UD11 = 111
    MV_UD12 = 112
    MV_UD13 = 113
    MV_UD14 = 114
    MV_UD15 = 115
    MV_UD16 = 116
    PV_TEMPERATURE = 240


class CtiVersion(_CodeEnum):
    """The CTI version enum of the login feedback (partial)."""

    PRO7 = 0
    PRO8 = 1
    PRO8_2 = 2
    MITSX_1 = 0x1000001
    MITSX_2 = 0x1000002
    MITSX_3 = 0x1000003
    MITSX_4 = 0x1000004


_texts(CtiVersion, {0: "MITS Pro 7", 1: "MITS Pro 8", 2: "MITS Pro 8.2", 0x1000001: "MITS X.1",
                    0x1000002: "MITS X.2", 0x1000003: "MITS X.3", 0x1000004: "MITS X.4"})


class InfoSelection(enum.IntEnum):
    """Which channels an all-channel info request returns."""

    ALL = 1
    RUNNING = 2
    UNSAFE = 3


class AuxOption(enum.IntFlag):
    """Extra readings a channel-info request asks for."""

    NONE = 0
    CAN_BMS = 0x100
    SMB = 0x200
    AUX = 0x400


#: Aux reading groups in the order their counts (and values) appear in a record.
AUX_TYPES = ("voltage", "temperature", "pressure", "external", "flow", "ao", "di", "do",
             "humidity", "safety", "ph", "density")

#: Meta codes of the 16 user meta variables MV_UD1..MV_UD16.
MV_META_CODES = {n: (51 + n if n <= 4 else 100 + n) for n in range(1, 17)}
META_CODE_TO_MV = {code: n for n, code in MV_META_CODES.items()}


@dataclass(frozen=True)
class AuxReading(Displayable):
    """One auxiliary reading: its value and its rate of change (``dt``: value per second)."""

    value: float
    dt: float


@dataclass(frozen=True)
class BmsReading(Displayable):
    index: int
    value: float
    unit: str = ""


@dataclass(frozen=True)
class SmbReading(Displayable):
    index: int
    value: Any  # float or str
    unit: str = ""


_STEP_RE = re.compile(r"^\s*\[(\d+)\]\s*(\d+)\s*:?\s*(.*?)\s*$")


def parse_step_and_cycle(text: str) -> Tuple[Optional[int], Optional[int], str]:
    """``"[1] 2: Step_B, Charge"`` to ``(cycle, step, label)``; ``(None, None, text)`` if other."""
    match = _STEP_RE.match(text or "")
    if not match:
        return None, None, text or ""
    return int(match.group(1)), int(match.group(2)), match.group(3)


@dataclass(frozen=True, repr=False)
class ChannelStatus(Displayable):
    """One channel's readings, as one record of a channel-info feedback.

    The repr is a one-line summary; every field is an attribute (``dataclasses.asdict`` gives
    them all).
    """

    channel: int  #: 1-based channel number
    state: ChannelState
    comm_failure: bool = False
    schedule: str = ""
    test_name: str = ""
    exit_condition: str = ""
    step_and_cycle: str = ""  #: step and cycle as the cycler words them; see :attr:`step`
    barcode: str = ""
    can_config_name: str = ""
    smb_config_name: str = ""
    master_channel: int = 0  #: 1-based; equals ``channel`` when not paralleled
    test_time_s: float = 0.0
    step_time_s: float = 0.0
    voltage_v: float = 0.0
    current_a: float = 0.0
    power_w: float = 0.0
    charge_capacity_ah: float = 0.0
    discharge_capacity_ah: float = 0.0
    charge_energy_wh: float = 0.0
    discharge_energy_wh: float = 0.0
    internal_resistance_ohm: float = 0.0
    dvdt_v_per_s: float = 0.0
    acr_ohm: float = 0.0
    aci_ohm: float = 0.0
    aci_phase_deg: float = 0.0
    #: aux readings by type (keys of :data:`AUX_TYPES` that have readings)
    aux: Mapping[str, Tuple[AuxReading, ...]] = field(default_factory=dict, hash=False)
    bms: Tuple[BmsReading, ...] = ()
    smb: Tuple[SmbReading, ...] = ()

    def __repr__(self) -> str:
        text = (f"ChannelStatus(channel={self.channel}, state={self.state.name}, "
                f"voltage_v={self.voltage_v:.4f}, current_a={self.current_a:.4f}")
        if self.step_and_cycle:
            text += f", step_and_cycle={self.step_and_cycle!r}"
        if self.test_name:
            text += f", test_name={self.test_name!r}"
        return text + ")"

    @property
    def channel_index(self) -> int:
        """The 0-based index used on the wire."""
        return self.channel - 1

    @property
    def cycle(self) -> Optional[int]:
        """Cycle number parsed from :attr:`step_and_cycle` (None when the text has none)."""
        return parse_step_and_cycle(self.step_and_cycle)[0]

    @property
    def step(self) -> Optional[int]:
        """Step number parsed from :attr:`step_and_cycle` (None when the text has none)."""
        return parse_step_and_cycle(self.step_and_cycle)[1]

    @property
    def step_label(self) -> str:
        return parse_step_and_cycle(self.step_and_cycle)[2]

    @property
    def is_running(self) -> bool:
        return self.state.is_running


@dataclass(frozen=True)
class CyclerInfo(Displayable):
    """The login feedback: who the cycler is and what this user may do."""

    result: LoginResult
    ip_address: str = "0.0.0.0"
    serial_number: str = ""
    note: str = ""
    nickname: str = ""
    location: str = ""
    emergency_contact: str = ""
    other_comments: str = ""
    email: str = ""
    call: str = ""
    itac: int = 0
    version: CtiVersion = CtiVersion.PRO8
    allow_control: bool = True
    num_channels: int = 0
    user_type: int = 0
    picture: bytes = field(default=b"", repr=False)

    @property
    def super_user(self) -> bool:
        return self.user_type == 1


@dataclass(frozen=True)
class StatusSnapshot(Event, Displayable):
    """A watch poll (or any status read) answered: the channels it returned, 1-based."""

    statuses: Tuple[ChannelStatus, ...]


@dataclass(frozen=True)
class ChannelStateChanged(Event, Displayable):
    """A channel's state code changed between two reads."""

    channel: int
    previous: Optional[ChannelState]
    state: ChannelState
    status: ChannelStatus


@dataclass(frozen=True)
class CommandAcknowledged(Event, Displayable):
    """The cycler answered a control command (``result`` is its result enum; 0 = success)."""

    command: str
    channel: Optional[int]
    result: Any

    @property
    def ok(self) -> bool:
        return int(self.result) == 0
