"""What a DE1 user sees: machine states and substates with names, decoded characteristics,
read-once info and the events the client delivers. Field names carry their unit.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any, Dict, Mapping, Optional, Tuple

from .._core.display import Displayable
from ..types import CodeEnum, Event


class MachineState(CodeEnum):
    """StateInfo byte 0 / RequestedState value (spec section 2)."""

    SLEEP = 0x00
    GOING_TO_SLEEP = 0x01
    IDLE = 0x02
    BUSY = 0x03
    ESPRESSO = 0x04
    STEAM = 0x05
    HOT_WATER = 0x06
    SHORT_CAL = 0x07
    SELF_TEST = 0x08
    LONG_CAL = 0x09
    DESCALE = 0x0A
    FATAL_ERROR = 0x0B
    INIT = 0x0C
    NO_REQUEST = 0x0D
    SKIP_TO_NEXT = 0x0E
    HOT_WATER_RINSE = 0x0F
    STEAM_RINSE = 0x10
    REFILL = 0x11
    CLEAN = 0x12
    IN_BOOT_LOADER = 0x13
    AIR_PURGE = 0x14
    SCHED_IDLE = 0x15

    @property
    def is_flow(self) -> bool:
        return self in FLOW_STATES


FLOW_STATES = frozenset({MachineState.ESPRESSO, MachineState.STEAM, MachineState.HOT_WATER,
                         MachineState.HOT_WATER_RINSE})


class FlowPhase(enum.Enum):
    NONE = "none"
    BEFORE = "before"
    DURING = "during"
    AFTER = "after"


class SubState(CodeEnum):
    """StateInfo byte 1 (spec section 2); 200 and above are errors."""

    NO_STATE = 0
    HEAT_WATER_TANK = 1
    HEAT_WATER_HEATER = 2
    STABILIZE_MIX_TEMP = 3
    PRE_INFUSE = 4
    POUR = 5
    FLUSH = 6
    STEAMING = 7
    DESCALE_INIT = 8
    DESCALE_FILL_GROUP = 9
    DESCALE_RETURN = 10
    DESCALE_GROUP = 11
    DESCALE_STEAM = 12
    CLEAN_INIT = 13
    CLEAN_FILL_GROUP = 14
    CLEAN_SOAK = 15
    CLEAN_GROUP = 16
    PAUSED_REFILL = 17
    PAUSED_STEAM = 18
    USER_NOT_PRESENT = 19
    STEAM_PUFF = 20
    ERROR_NAN = 200
    ERROR_INF = 201
    ERROR_GENERIC = 202
    ERROR_ACC = 203
    ERROR_TSENSOR = 204
    ERROR_PSENSOR = 205
    ERROR_WLEVEL = 206
    ERROR_DIP = 207
    ERROR_ASSERTION = 208
    ERROR_UNSAFE = 209
    ERROR_INVALID_PARM = 210
    ERROR_FLASH = 211
    ERROR_OOM = 212
    ERROR_DEADLINE = 213
    ERROR_HI_CURRENT = 214
    ERROR_LO_CURRENT = 215
    ERROR_BOOT_FILL = 216

    @property
    def is_error(self) -> bool:
        return int(self) >= 200

    @property
    def flow_phase(self) -> FlowPhase:
        return _PHASES.get(self, FlowPhase.NONE)

    @property
    def text(self) -> str:
        """de1app's display name."""
        return _SUBSTATE_TEXTS.get(int(self), self.name.lower())


_PHASES = {SubState.HEAT_WATER_TANK: FlowPhase.BEFORE, SubState.HEAT_WATER_HEATER: FlowPhase.BEFORE,
           SubState.STABILIZE_MIX_TEMP: FlowPhase.BEFORE, SubState.PRE_INFUSE: FlowPhase.DURING,
           SubState.POUR: FlowPhase.DURING, SubState.STEAMING: FlowPhase.DURING,
           SubState.PAUSED_STEAM: FlowPhase.DURING, SubState.FLUSH: FlowPhase.AFTER}
_SUBSTATE_TEXTS = {0: "ready", 1: "heating", 2: "final heating", 3: "stabilising",
                   4: "preinfusion", 5: "pouring", 6: "ending", 7: "steaming", 17: "refill",
                   20: "puffing"}


class Mode(enum.Enum):
    """What :meth:`DE1Client.request_mode` accepts (pyDE1's API modes)."""

    SLEEP = "Sleep"
    WAKE = "Wake"
    STOP = "Stop"
    END_STEAM = "EndSteam"
    SKIP_TO_NEXT = "SkipToNext"
    ESPRESSO = "Espresso"
    STEAM = "Steam"
    HOT_WATER = "HotWater"
    FLUSH = "HotWaterRinse"
    CLEAN = "Clean"
    DESCALE = "Descale"
    TRANSPORT = "Transport"
    NO_REQUEST = "NoRequest"

    @classmethod
    def parse(cls, text: str) -> "Mode":
        key = str(text).replace("-", "").replace("_", "").lower()
        for m in cls:
            if key in (m.name.replace("_", "").lower(), m.value.lower()):
                return m
        raise ValueError(text)


FLOW_MODES = frozenset({Mode.ESPRESSO, Mode.STEAM, Mode.HOT_WATER, Mode.FLUSH})


class MachineModel(CodeEnum):
    UNSET = 0
    DE1 = 1
    DE1PLUS = 2
    DE1PRO = 3
    DE1XL = 4
    DE1CAFE = 5
    DE1XXL = 6


class CalCommand(CodeEnum):
    READ = 0
    WRITE = 1
    RESET_TO_FACTORY = 2
    READ_FACTORY = 3


class CalTarget(CodeEnum):
    FLOW = 0
    PRESSURE = 1
    TEMPERATURE = 2
    ERROR = 255


@dataclass(frozen=True)
class StateInfo(Displayable):
    state: MachineState
    substate: SubState

    @property
    def is_error(self) -> bool:
        return self.state is MachineState.FATAL_ERROR or self.substate.is_error


@dataclass(frozen=True)
class FirmwareVersion(Displayable):
    api_version: int
    release: float
    commits: int
    changes: int
    sha: int


@dataclass(frozen=True)
class Versions(Displayable):
    ble: FirmwareVersion
    firmware: FirmwareVersion


@dataclass(frozen=True)
class ShotSettings(Displayable):
    steam_flags: int = 0
    steam_temp_c: int = 160
    steam_length_s: int = 120
    hot_water_temp_c: int = 85
    hot_water_volume_ml: int = 120
    hot_water_length_s: int = 45
    espresso_volume_ml: int = 200
    group_temp_c: float = 92.0


@dataclass(frozen=True)
class Temperatures(Displayable):
    water_heater_c: float
    steam_heater_c: float
    group_heater_c: float
    cold_water_c: float
    target_water_heater_c: float
    target_steam_heater_c: float
    target_group_heater_c: float
    target_cold_water_c: float


@dataclass(frozen=True)
class WaterLevels(Displayable):
    level_mm: float
    start_fill_level_mm: float


@dataclass(frozen=True)
class ShotSample(Displayable):
    sample_time: int
    group_pressure_bar: float
    group_flow_ml_s: float
    mix_temp_c: float
    head_temp_c: float
    set_mix_temp_c: float
    set_head_temp_c: float
    set_group_pressure_bar: float
    set_group_flow_ml_s: float
    frame_number: int
    steam_temp_c: int


@dataclass(frozen=True)
class Calibration(Displayable):
    command: CalCommand
    target: CalTarget
    reported: float
    measured: float
    key: int = 0


@dataclass(frozen=True)
class FirmwareMap(Displayable):
    window_increment: int
    erase: int
    to_map: int
    first_error: int


@dataclass(frozen=True)
class Frame(Displayable):
    """One profile frame on the wire (FrameWrite shape 1)."""

    flags: int
    set_value: float
    temperature_c: float
    seconds: float
    trigger: float
    max_volume_ml: int


@dataclass(frozen=True)
class FeatureFlags(Displayable):
    skip_to_next: bool
    safe_to_read_mmr_continuous: bool
    rinse_control: bool
    sched_idle: bool
    user_present: bool

    @classmethod
    def from_build(cls, build: int) -> "FeatureFlags":
        return cls(build >= 1260, build >= 1265, build >= 1283, build >= 1293, build >= 1320)


@dataclass(frozen=True)
class DE1Info(Displayable):
    """Read once at connect."""

    versions: Versions
    firmware_build: int
    features: FeatureFlags
    hw_config: int
    model: int
    cpu_board_model: float
    machine_model: MachineModel
    serial_number: int
    ghc_info: int
    heater_voltage: int

    @property
    def ghc_active(self) -> bool:
        return bool(self.ghc_info & 0x04)


# ------------------------------------------------------------------------ events


@dataclass(frozen=True)
class StateChanged(Event, Displayable):
    state: MachineState
    substate: SubState
    previous_state: Optional[MachineState]
    previous_substate: Optional[SubState]


#: How many per-frame volumes a flow keeps (pyDE1 keeps one per possible profile frame).
VOLUME_FRAMES = 20


@dataclass(frozen=True)
class ShotSampleEvent(Event, Displayable):
    """A ShotSample with the volumes integrated so far in the current (or last) flow.

    ``volume_by_frames`` is pyDE1's ``volume_by_frames``: mL per profile frame (20 entries);
    espresso volume goes to the frame the sample reports, every other flow to entry 0.
    """

    sample: ShotSample
    volume_preinfuse_ml: float = 0.0
    volume_pour_ml: float = 0.0
    volume_by_frames: Tuple[float, ...] = ()

    @property
    def volume_total_ml(self) -> float:
        return self.volume_preinfuse_ml + self.volume_pour_ml


@dataclass(frozen=True)
class WaterLevelsChanged(Event, Displayable):
    levels: WaterLevels


@dataclass(frozen=True)
class TemperaturesChanged(Event, Displayable):
    temperatures: Temperatures


@dataclass(frozen=True)
class ShotSettingsChanged(Event, Displayable):
    settings: ShotSettings


@dataclass(frozen=True)
class RegisterChanged(Event, Displayable):
    name: str
    value: float


@dataclass(frozen=True)
class UploadProgress(Event, Displayable):
    """Profile or firmware upload progress; ``phase`` names the step."""

    kind: str  # "profile" | "firmware"
    phase: str  # starting, erasing, uploading, verifying, completed, failed, canceled
    done: int
    total: int


@dataclass(frozen=True)
class GateChanged(Event, Displayable):
    """A shot-sequencer gate was set (spec section 6)."""

    gate: str
    state: MachineState
    sequence_id: int


@dataclass(frozen=True)
class SequencerTimer(Event, Displayable):
    """A timer the shot sequencer asked the DE1 client for (published on its events thread)."""

    sequence_id: int
    name: str


@dataclass(frozen=True)
class StopAtTriggered(Event, Displayable):
    stop_at: str  # "time" | "volume" | "weight" | "move on by weight"
    target: float
    current: float
    frame: int = 0


@dataclass(frozen=True)
class ShotRecord(Displayable):
    """A finished shot, exportable to Visualizer's JSON
    (:func:`~pyburnerkit.de1.profile.visualizer_json`): what the shot sequencer's
    ``wait_complete()`` returns.

    The series (``elapsed_s``, ``pressure_bar`` ... ``frame``, ``volume_ml``) hold one entry
    per DE1 sample taken while water flowed, in order; ``weight_g`` holds the scale's last
    readings (at its own rate, at most as many as there are DE1 samples; empty without a
    scale).
    """

    #: UTC epoch seconds when the sequence started
    start_time: float
    #: the JSON profile the DE1 ran (as loaded), or None when none was uploaded
    profile: Optional[Mapping[str, Any]]
    #: seconds since the flow began, from the DE1's own sample clock
    elapsed_s: Tuple[float, ...]
    #: group pressure (bar)
    pressure_bar: Tuple[float, ...]
    #: group flow (mL/s)
    flow_ml_s: Tuple[float, ...]
    #: the scale's weight readings (g)
    weight_g: Tuple[float, ...]
    #: mix temperature (°C)
    mix_temp_c: Tuple[float, ...]
    #: head (basket) temperature (°C)
    head_temp_c: Tuple[float, ...]
    #: the profile's pressure goal (bar)
    set_pressure_bar: Tuple[float, ...]
    #: the profile's flow goal (mL/s)
    set_flow_ml_s: Tuple[float, ...]
    #: the profile's head temperature goal (°C)
    set_head_temp_c: Tuple[float, ...]
    #: the profile frame running at each sample
    frame: Tuple[int, ...]
    #: the scale's weight when the shot finished (g), or None without a scale
    final_weight_g: Optional[float] = None
    #: what stopped the flow early (``"time"``, ``"volume"``, ``"weight"``), or None when
    #: the profile ended it
    stop_reason: Optional[str] = None
    #: more about the run: ``state``, ``target_weight_g``, ``sequence_id``, ``watchdog``
    extra: Dict[str, Any] = field(default_factory=dict)
    #: volumes at the end of the flow (mL): preinfusion, pour, and per frame as pyDE1 keeps
    #: them (``volume_by_frames``, 20 entries; empty when no sample carried them)
    volume_preinfuse_ml: float = 0.0
    #: the volume poured after preinfusion (mL)
    volume_pour_ml: float = 0.0
    #: the volume of each profile frame (mL), as pyDE1's ``volume_by_frames``
    volume_by_frames: Tuple[float, ...] = ()
    #: the cumulative volume (mL) at each sample, parallel to ``elapsed_s``
    volume_ml: Tuple[float, ...] = ()

    @property
    def volume_total_ml(self) -> float:
        """Preinfusion plus pour volume (mL)."""
        return self.volume_preinfuse_ml + self.volume_pour_ml

    def plot(self, ax: Any = None, *, temperature_ax: Any = None,
             title: Optional[str] = None) -> Any:
        """Draw the shot: pressure and flow with their targets, weight, and the
        temperatures, against elapsed seconds (see :func:`pyburnerkit.plotting.plot_shot`).

        :returns: the pressure/flow matplotlib Axes.
        :raises BackendUnavailableError: matplotlib is missing
            (``pip install "pyburnerkit[plot]"``).
        """
        from ..plotting import plot_shot
        return plot_shot(self, ax, temperature_ax=temperature_ax, title=title)
