"""What an Afterburner user sees: enums with the firmware's texts, status, timers, events.

Temperatures are always °C on the wire (``TempMode`` only changes the controller's display).
Field names carry their unit.
"""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass, field
from typing import Any, FrozenSet, Mapping, Optional

from .._core.display import Displayable
from ..types import CodeEnum, Event


class _CodeEnum(CodeEnum):
    """A code table with the firmware's texts."""

    @property
    def text(self) -> str:
        return self._texts().get(int(self), self._unknown_text())

    @classmethod
    def _texts(cls) -> Mapping[int, str]:
        return {}

    @classmethod
    def _unknown_text(cls) -> str:
        return "Unknown"


class RunState(_CodeEnum):
    """``RunState``: 0-8 come from the heater, 9-12 are the Afterburner's own."""

    STOPPED = 0
    STARTING = 1
    IGNITING = 2
    IGNITION_RETRY_PAUSE = 3
    IGNITED = 4
    RUNNING = 5
    STOPPING = 6
    SHUTTING_DOWN = 7
    COOLING = 8
    HEATING_GLOW_PLUG = 9
    SUSPENDED = 10
    SUSPENDING = 11
    SUSPEND_COOLING = 12

    @classmethod
    def _texts(cls) -> Mapping[int, str]:
        return RUN_STATE_TEXTS

    @classmethod
    def _unknown_text(cls) -> str:
        return "Unknown run state"

    @property
    def is_on(self) -> bool:
        """The firmware's own test (MQTT ``sts/Run``): anything but 0, so Suspended is on."""
        return self != RunState.STOPPED

    @property
    def is_heating(self) -> bool:
        """Starting up or burning fuel (not stopping, cooling or suspended)."""
        return self in _HEATING


RUN_STATE_TEXTS = {
    0: " Stopped/Ready ", 1: "Starting...", 2: "Igniting...", 3: "Ignition retry pause",
    4: "Ignited", 5: "Running", 6: "Stopping", 7: "Shutting down", 8: "Cooling",
    9: "Heating glow plug", 10: "Suspended", 11: "Suspending...", 12: "Suspend cooling",
}
_HEATING = frozenset({RunState.STARTING, RunState.IGNITING, RunState.IGNITION_RETRY_PAUSE,
                      RunState.IGNITED, RunState.RUNNING, RunState.HEATING_GLOW_PLUG})


class ErrorState(_CodeEnum):
    """``ErrorState``: 0 and 1 both mean OK; 11-13 are made up by the Afterburner."""

    OK = 0
    OK_RUNNING = 1
    LOW_VOLTAGE = 2
    HIGH_VOLTAGE = 3
    GLOW_PLUG_FAULT = 4
    PUMP_FAULT = 5
    OVERHEAT = 6
    MOTOR_FAULT = 7
    NO_HEATER_COMMS = 8
    FLAME_OUT = 9
    TEMP_SENSE = 10
    IGNITION_FAIL = 11
    FAILED_FIRST_IGNITE = 12
    EXCESS_FUEL_SHUTDOWN = 13

    @classmethod
    def _texts(cls) -> Mapping[int, str]:
        return ERROR_STATE_TEXTS

    @classmethod
    def _unknown_text(cls) -> str:
        return "Unknown error?"

    @property
    def is_error(self) -> bool:
        return int(self) > 1


ERROR_STATE_TEXTS = {
    0: "E-00: OK", 1: "E-00: OK", 2: "E-01: Low voltage", 3: "E-02: High voltage",
    4: "E-03: Glow plug fault", 5: "E-04: Pump fault", 6: "E-05: Overheat",
    7: "E-06: Motor fault", 8: "E-07: No heater comms", 9: "E-08: Flame out",
    10: "E-09: Temp sense", 11: "E-10: Ignition fail", 12: "E-11: Failed 1st ignite",
    13: "E-12: Excess fuel shutdown",
}


class ThermostatMethod(_CodeEnum):
    """``ThermostatMethod`` (used when the demand mode is THERMOSTAT)."""

    STANDARD = 0
    DEADBAND = 1
    LINEAR_HZ = 2
    EXTERNAL = 3
    STOP_START = 4

    @classmethod
    def _texts(cls) -> Mapping[int, str]:
        return {0: "Standard", 1: "Deadband", 2: "Linear Hz", 3: "External thermostat",
                4: "Stop/Start"}


class DemandMode(_CodeEnum):
    """``Thermostat``: fixed pump rate (TempDesired is a demand index) or thermostat (°C)."""

    FIXED_HZ = 0
    THERMOSTAT = 1


class TemperatureUnit(_CodeEnum):
    """``TempMode``: the controller's display unit only; the wire is always °C."""

    CELSIUS = 0
    FAHRENHEIT = 1


@dataclass(frozen=True)
class Bluewire(Displayable):
    """``BluewireStat``: who drives the heater bus and whether the heater answers."""

    text: str
    oem_controller: bool
    heater_responding: bool

    @classmethod
    def parse(cls, text: str) -> "Bluewire":
        parts = [p.strip() for p in text.split(",")]
        return cls(text, parts[0].upper() == "OEM", "Htr" in parts[1:])


WEEKDAYS = ("Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat")


@dataclass(frozen=True)
class Timer(Displayable):
    """One of the 14 timers. ``days`` holds weekday names (``"Mon"``...); ``next_only`` arms it
    for its next occurrence only; an empty ``days`` with ``next_only`` False is disarmed."""

    id: int
    start: Optional[_dt.time] = None
    stop: Optional[_dt.time] = None
    days: FrozenSet[str] = frozenset()
    next_only: bool = False
    repeat: bool = False
    temperature_c: Optional[int] = None

    @property
    def armed(self) -> bool:
        return self.next_only or bool(self.days)


@dataclass(frozen=True)
class SystemInfo(Displayable):
    """The system group, sent only on request (``SQuery``), a refresh, or a clock change."""

    datetime: Optional[_dt.datetime] = None
    uptime_s: Optional[int] = None
    firmware_version: Optional[str] = None
    firmware_date: Optional[str] = None
    free_memory_bytes: Optional[int] = None
    run_time_s: Optional[int] = None
    glow_time_s: Optional[int] = None
    time_12hr: Optional[bool] = None

    @property
    def run_time_h(self) -> Optional[float]:
        return None if self.run_time_s is None else self.run_time_s / 3600.0

    @property
    def glow_time_h(self) -> Optional[float]:
        return None if self.glow_time_s is None else self.glow_time_s / 3600.0


@dataclass(frozen=True)
class HeaterStatus(Displayable):
    """Everything the controller has pushed, merged, typed. ``None`` = not (yet) reported.

    ``raw`` keeps every key as the device sent it (minus the MQTT password), so keys of newer
    firmware are never lost.
    """

    # main status group
    temperature_c: Optional[float] = None
    temperature2_c: Optional[float] = None
    temperature3_c: Optional[float] = None
    temperature4_c: Optional[float] = None
    desired_temperature: Optional[int] = None
    temperature_unit: Optional[TemperatureUnit] = None
    desired_min_c: Optional[float] = None
    desired_max_c: Optional[float] = None
    body_temperature_c: Optional[float] = None
    run_state: Optional[RunState] = None
    run_string: Optional[str] = None
    error_state: Optional[ErrorState] = None
    error_string: Optional[str] = None
    demand_mode: Optional[DemandMode] = None
    pump_fixed_hz: Optional[float] = None
    pump_min_hz: Optional[float] = None
    pump_max_hz: Optional[float] = None
    pump_actual_hz: Optional[float] = None
    fan_min_rpm: Optional[int] = None
    fan_max_rpm: Optional[int] = None
    fan_rpm: Optional[int] = None
    fan_voltage_v: Optional[float] = None
    fan_sensor: Optional[int] = None
    input_voltage_v: Optional[float] = None
    system_voltage_v: Optional[float] = None
    glow_voltage_v: Optional[float] = None
    glow_current_a: Optional[float] = None
    bluewire: Optional[Bluewire] = None
    # extended settings group
    thermostat_method: Optional[ThermostatMethod] = None
    thermostat_window_c: Optional[float] = None
    cyclic_off_c: Optional[int] = None
    cyclic_on_c: Optional[int] = None
    cyclic_temperature_c: Optional[int] = None
    frost_on_c: Optional[int] = None
    frost_rise_c: Optional[int] = None
    pump_count: Optional[float] = None
    pump_cal_ml: Optional[float] = None
    low_volt_cutout_v: Optional[float] = None
    humidity_start_pct: Optional[int] = None
    temp_offset_c: Optional[float] = None
    temp2_offset_c: Optional[float] = None
    temp3_offset_c: Optional[float] = None
    temp4_offset_c: Optional[float] = None
    temp_type: Optional[str] = None
    altitude_m: Optional[int] = None
    humidity_pct: Optional[float] = None
    # network, MQTT and GPIO groups
    ip_sta: Optional[str] = None
    ip_ap: Optional[str] = None
    wifi_ssid: Optional[str] = None
    wifi_rssi_dbm: Optional[float] = None
    mqtt_enabled: Optional[bool] = None
    mqtt_online: Optional[bool] = None
    gpio_in1: Optional[bool] = None
    gpio_in2: Optional[bool] = None
    gpio_out1: Optional[bool] = None
    gpio_out2: Optional[bool] = None
    gpio_analogue_pct: Optional[int] = None
    ext_thermo_timeout_ms: Optional[int] = None
    # what the frames carried, untyped
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @property
    def is_on(self) -> Optional[bool]:
        return None if self.run_state is None else self.run_state.is_on

    @property
    def fuel_used_ml(self) -> Optional[float]:
        """Fuel since the last gauge reset: PumpCount x PumpCal (as the firmware's MQTT does)."""
        if self.pump_count is None or self.pump_cal_ml is None:
            return None
        return self.pump_count * self.pump_cal_ml

    @property
    def fuel_rate_ml_h(self) -> Optional[float]:
        """Current fuel rate: PumpActual x PumpCal x 3600."""
        if self.pump_actual_hz is None or self.pump_cal_ml is None:
            return None
        return self.pump_actual_hz * self.pump_cal_ml * 3600.0


# ---------------------------------------------------------------------------------- events
@dataclass(frozen=True)
class StatusChanged(Event, Displayable):
    """Keys changed. ``changed`` holds the wire keys with their new values."""

    status: HeaterStatus
    changed: Mapping[str, Any]


@dataclass(frozen=True)
class TimerChanged(Event, Displayable):
    timer: Timer


@dataclass(frozen=True)
class SystemInfoChanged(Event, Displayable):
    info: SystemInfo


@dataclass(frozen=True)
class StartRefused(Event, Displayable):
    """The controller refused a start: ``reason`` is its ``StartString``."""

    reason: str
