"""A simulated Afterburner controller with a heater attached, speaking the real WebSocket JSON.

It behaves as spec ``afterburner.md`` describes the V3.2 firmware:

* a new client (the tracked-client count goes up) or ``{"Refresh":…}`` resets the moderators,
  so the complete state goes to every client at the next update, in group frames (main,
  extended, timers, MQTT, network, system, GPIO) of at most 800 bytes;
* afterwards only changed keys are sent, once per update tick (1 s by default, ``tick=0`` sends
  right after each command), with the firmware's hold-off intervals for noisy keys;
* at most 4 clients are tracked; a fifth may still send commands but receives nothing;
* command values are read as text (``true`` and ``"heat"`` are 0); out-of-range values are
  ignored or clamped as the firmware does; frames over 512 bytes are dropped; pings get no
  pong (and their payload is not consumed, as in the firmware's WebSocket reader);
* ``SQuery``/``TQuery``/``IQuery``/``MQuery``, ``NVsave`` 8861, timers, date/time;
* a heater model: start-up through the run states, flame, body temperature, thermostat
  regulation against an ambient model, cyclic suspension, frost start, cooldown on stop,
  fuel counting, and the low-voltage cut-out as an error.

Run it with ``pyburnerkit sim afterburner`` or ``AfterburnerSim().start()``; ``sim://`` URLs
attach a client to one in process. Time can run faster than real time (``speed``).
"""

from __future__ import annotations

import datetime as _dt
import functools
import json
import math
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Mapping, Optional, Tuple

from .._core.simserver import SimConnection
from .._core.endpoint import flag, sim_options
from .._core.wsserver import WebSocketSimServer
from ..errors import ConfigurationError, check_range
from . import codec
from .models import ERROR_STATE_TEXTS, RUN_STATE_TEXTS, WEEKDAYS, ErrorState, RunState

MAX_CLIENTS = 4
#: Limits of the numeric constructor arguments (and ``sim://`` options): low, high, unit,
#: whole numbers only.
LIMITS: Dict[str, Tuple[float, float, str, bool]] = {
    "tick": (0, 60, "s", False),
    "speed": (0.01, 10000, "x real time", False),
    "physics_interval": (0.001, 10, "s", False),
    "sensors": (1, 4, "", True),
}

MAIN_GROUP = ("TempCurrent", "Temp2Current", "Temp3Current", "Temp4Current", "TempDesired",
              "TempMode", "TempMin", "TempMax", "TempBody", "RunState", "RunString",
              "ErrorState", "ErrorString", "Thermostat", "PumpFixed", "PumpMin", "PumpMax",
              "PumpActual", "FanMin", "FanMax", "FanRPM", "FanVoltage", "FanSensor",
              "InputVoltage", "SystemVoltage", "GlowVoltage", "GlowCurrent", "BluewireStat")
EXTENDED_GROUP = ("ThermostatMethod", "ThermostatWindow", "ThermostatOvertemp",
                  "ThermostatUndertemp", "CyclicTemp", "CyclicOff", "CyclicOn", "FrostOn",
                  "FrostRise", "PumpCount", "PumpCal", "LowVoltCutout", "HumidStart",
                  "TempOffset", "Temp2Offset", "Temp3Offset", "Temp4Offset", "TempType")
MQTT_GROUP = ("MEn", "MOnline", "MHost", "MPort", "MUser", "MPasswd", "MQoS", "MTopic")
NETWORK_GROUP = ("IP_AP", "IP_APMAC", "IP_STA", "IP_STAMAC", "IP_STASSID", "IP_STAGATEWAY",
                 "IP_STARSSI", "IP_OTA", "BT_MAC")
SYSTEM_GROUP = ("DateTime", "Time12hr", "SysUpTime", "SysVer", "SysDate", "SysFreeMem",
                "SysRunTime", "SysGlowTime")
GPIO_GROUP = ("GPin1", "GPin2", "GPout1", "GPout2", "GPmodeIn1", "GPmodeIn2", "GPmodeOut1",
              "GPmodeOut2", "GPmodeAnlg", "GPoutThr1", "GPoutThr2", "GPanlg",
              "ExtThermoTmout", "ExtThermoStop")
#: Minimum seconds between two reports of a noisy key (the firmware's hold-offs).
HOLDOFF = {"TempCurrent": 5.0, "Temp2Current": 5.0, "Temp3Current": 5.0, "Temp4Current": 5.0,
           "TempBody": 5.0, "GlowVoltage": 5.0, "GlowCurrent": 5.0, "FanRPM": 2.0,
           "FanVoltage": 2.5, "InputVoltage": 10.0, "PumpCount": 10.0, "IP_STARSSI": 10.0,
           "Humidity": 30.0, "Altitude": 60.0}

#: How long each start-up/shutdown phase lasts, in simulated seconds.
PHASE_SECONDS = {RunState.STARTING: 8.0, RunState.HEATING_GLOW_PLUG: 15.0,
                 RunState.IGNITING: 20.0, RunState.IGNITED: 15.0, RunState.STOPPING: 2.0,
                 RunState.SHUTTING_DOWN: 10.0, RunState.SUSPENDING: 10.0}
BURNING = frozenset({RunState.IGNITING, RunState.IGNITED, RunState.RUNNING})
GLOWING = frozenset({RunState.HEATING_GLOW_PLUG, RunState.IGNITING, RunState.SHUTTING_DOWN,
                     RunState.SUSPENDING})


def _checked(name: str, value: Any) -> Any:
    low, high, unit, integer = LIMITS[name]
    return check_range(name, value, low, high, unit, integer=integer)


@dataclass
class HeaterModel:
    """The heater, its cabin and its battery, advanced in simulated seconds by :meth:`step`."""

    ambient_c: float = 5.0
    temp_c: float = 15.0
    body_c: float = 15.0
    battery_v: float = 12.9
    run_state: RunState = RunState.STOPPED
    error_state: int = 0
    pump_hz: float = 0.0
    fan_rpm: float = 0.0
    glow_v: float = 0.0
    glow_a: float = 0.0
    pump_count: float = 7239.5
    run_time_s: float = 0.0
    glow_time_s: float = 0.0
    priming: bool = False
    frost_started: bool = False
    heater_present: bool = True
    phase_s: float = 0.0
    settings: Dict[str, Any] = field(default_factory=lambda: dict(DEFAULT_SETTINGS))

    # -------------------------------------------------------------- derived values
    @property
    def input_v(self) -> float:
        fan_load = 0.3 * (self.fan_rpm / 5000.0)
        return max(0.0, self.battery_v - 0.08 * self.glow_a - fan_load)

    @property
    def cyclic_off(self) -> int:
        stored = int(self.settings["CyclicOffStored"])
        return stored + 1 if stored > 0 else 0

    def demand_fraction(self) -> float:
        """0..1 of the pump range: from the thermostat error, or the fixed demand index."""
        s = self.settings
        if int(s["Thermostat"]) == 0:
            return (int(s["TempDesired"]) - 8) / 27.0
        window = max(0.2, float(s["ThermostatWindow"]))
        error = float(s["TempDesired"]) - self.temp_c
        if int(s["ThermostatMethod"]) == 1:  # deadband: full or minimum power
            return 1.0 if error > window / 2 else 0.0
        return min(1.0, max(0.0, 0.5 + error / (2.0 * window)))

    def pump_fixed_hz(self) -> float:
        s = self.settings
        fraction = (int(s["TempDesired"]) - 8) / 27.0
        return float(s["PumpMin"]) + fraction * (float(s["PumpMax"]) - float(s["PumpMin"]))

    # -------------------------------------------------------------- requests
    def start(self) -> str:
        """A start request; returns the firmware's ``StartString`` ('' = accepted)."""
        s = self.settings
        lvc = float(s["LowVoltCutout"])
        if not self.heater_present or (lvc > 0 and self.input_v < lvc):
            return "Battery below LVC!"
        if self.run_state.is_on:
            return ""
        if int(s["Thermostat"]) == 1 and self.temp_c > float(s["TempDesired"]) \
                and self.cyclic_off == 0:
            return "Ambient too warm!"
        if self.cyclic_off and self.temp_c > float(s["TempDesired"]) + self.cyclic_off:
            self._enter(RunState.SUSPENDED)
            return "Immediate Cyclic suspension!"
        self.error_state = 0
        self.priming = False
        self._enter(RunState.STARTING)
        return ""

    def stop(self) -> None:
        self.frost_started = False
        if self.run_state in (RunState.SUSPENDED,):
            self._enter(RunState.STOPPED)
        elif self.run_state.is_heating or self.run_state == RunState.SUSPEND_COOLING:
            self._enter(RunState.STOPPING)

    def fault(self, code: int) -> None:
        """The heater reports error ``code`` and shuts down if it was burning."""
        self.error_state = code
        if self.run_state.is_heating:
            self._enter(RunState.SHUTTING_DOWN)

    def _enter(self, state: RunState) -> None:
        self.run_state = state
        self.phase_s = 0.0

    # -------------------------------------------------------------- physics
    def step(self, dt: float) -> None:
        s = self.settings
        state = self.run_state
        self.phase_s += dt
        burning = state in BURNING
        demand = self.demand_fraction() if state == RunState.RUNNING else 0.0
        pump_min, pump_max = float(s["PumpMin"]), float(s["PumpMax"])
        fan_min, fan_max = float(s["FanMin"]), float(s["FanMax"])
        if state == RunState.RUNNING:
            self.pump_hz = pump_min + demand * (pump_max - pump_min)
            self.fan_rpm = fan_min + demand * (fan_max - fan_min)
        elif state in (RunState.IGNITING, RunState.IGNITED):
            self.pump_hz = pump_min
            self.fan_rpm = fan_min
        elif state in (RunState.STARTING, RunState.HEATING_GLOW_PLUG):
            self.pump_hz = 0.0
            self.fan_rpm = min(fan_min, self.fan_rpm + 400.0 * dt)
        elif state in (RunState.STOPPING, RunState.SHUTTING_DOWN, RunState.COOLING,
                       RunState.SUSPENDING, RunState.SUSPEND_COOLING):
            self.pump_hz = 0.0
            self.fan_rpm = fan_max * 0.6
        else:
            self.pump_hz = 5.0 if self.priming else 0.0
            self.fan_rpm = max(0.0, self.fan_rpm - 800.0 * dt)
        glowing = state in GLOWING
        self.glow_v = 8.5 if glowing else 0.0
        self.glow_a = 9.0 if glowing else 0.0
        # Heat: ~0.45 kW per pump Hz into the cabin, losses to the outside.
        heat_kw = self.pump_hz * 0.45 if burning else 0.0
        self.temp_c += dt * (0.05 * heat_kw - 0.004 * (self.temp_c - self.ambient_c))
        body_target = (self.ambient_c + 60.0 + 25.0 * self.pump_hz) if burning else self.temp_c
        self.body_c += (body_target - self.body_c) * min(1.0, dt / 30.0)
        self.pump_count += self.pump_hz * dt
        if state.is_on:
            self.run_time_s += dt
        if glowing:
            self.glow_time_s += dt
        self._advance(dt)

    def _advance(self, dt: float) -> None:
        s = self.settings
        state, phase = self.run_state, self.phase_s
        lvc = float(s["LowVoltCutout"])
        if lvc > 0 and state.is_heating and self.input_v < lvc:
            self.fault(int(ErrorState.LOW_VOLTAGE))
            return
        desired = float(s["TempDesired"])
        if state == RunState.STARTING and phase >= PHASE_SECONDS[state]:
            self._enter(RunState.HEATING_GLOW_PLUG)
        elif state == RunState.HEATING_GLOW_PLUG and phase >= PHASE_SECONDS[state]:
            self._enter(RunState.IGNITING)
        elif state == RunState.IGNITING and (self.body_c > 60.0 or phase >= PHASE_SECONDS[state]):
            self._enter(RunState.IGNITED)
        elif state == RunState.IGNITED and phase >= PHASE_SECONDS[state]:
            self._enter(RunState.RUNNING)
        elif state == RunState.RUNNING:
            if self.cyclic_off and self.temp_c > desired + self.cyclic_off:
                self._enter(RunState.SUSPENDING)
            elif self.frost_started and int(s["FrostRise"]) > 0 and \
                    self.temp_c > int(s["FrostOn"]) + int(s["FrostRise"]):
                self.stop()
        elif state == RunState.STOPPING and phase >= PHASE_SECONDS[state]:
            self._enter(RunState.SHUTTING_DOWN)
        elif state == RunState.SHUTTING_DOWN and phase >= PHASE_SECONDS[state]:
            self._enter(RunState.COOLING)
        elif state == RunState.SUSPENDING and phase >= PHASE_SECONDS[state]:
            self._enter(RunState.SUSPEND_COOLING)
        elif state in (RunState.COOLING, RunState.SUSPEND_COOLING) and self.body_c < 55.0:
            self._enter(RunState.STOPPED if state == RunState.COOLING else RunState.SUSPENDED)
        elif state == RunState.SUSPENDED and \
                self.temp_c < desired + int(s["CyclicOn"]):
            self._enter(RunState.STARTING)
        elif state == RunState.STOPPED and int(s["FrostOn"]) > 0 and \
                self.temp_c < int(s["FrostOn"]) and self.error_state < 2:
            if self.start() == "":
                self.frost_started = True

    def reported_error(self) -> int:
        if self.error_state >= 2:
            return self.error_state
        if not self.heater_present:
            return int(ErrorState.NO_HEATER_COMMS)
        return 1 if self.run_state.is_on else 0


DEFAULT_SETTINGS: Dict[str, Any] = {
    "TempDesired": 22, "CyclicTemp": 22, "TempMode": 0, "Thermostat": 1,
    "ThermostatMethod": 0, "ThermostatWindow": 1.0, "CyclicOffStored": 0, "CyclicOn": -1,
    "FrostOn": 0, "FrostRise": 5, "HumidStart": 0, "PumpMin": 1.6, "PumpMax": 5.5,
    "FanMin": 1680, "FanMax": 4500, "FanSensor": 1, "SystemVoltage": 12,
    "LowVoltCutout": 11.5, "PumpCal": 0.022, "TempOffset": 0.0, "Temp2Offset": 0.0,
    "Temp3Offset": 0.0, "Temp4Offset": 0.0, "Time12hr": 0, "GPout1": 0, "GPout2": 0,
    "GPoutThr1": 0, "GPoutThr2": 0, "ExtThermoTmout": 0, "MEn": 0, "MHost": "",
    "MPort": 1883, "MUser": "", "MPasswd": "", "MQoS": 0, "SMenu": 0,
}


@dataclass
class SimTimer:
    start: str = "00:00"
    stop: str = "00:00"
    days: str = "None"
    repeat: int = 0
    temp: int = 0

    def keys(self, timer_id: int) -> Dict[str, str]:
        return {"TimerStart": f"{timer_id} {self.start}", "TimerStop": f"{timer_id} {self.stop}",
                "TimerDays": f"{timer_id} {self.days}", "TimerRepeat": f"{timer_id} {self.repeat}",
                "TimerTemp": f"{timer_id} {self.temp}"}


class AfterburnerSim(WebSocketSimServer):
    """The simulated controller. Fault injection and ``set()`` are safe from any thread.

    :param tick: real seconds between update passes (the firmware's blue-wire cycle, 1 s);
        0 sends changes right after each command (0-60 s).
    :param speed: simulated seconds per real second for the heater model and the hold-offs
        (0.01-10000).
    :param ambient_c: outside temperature; the cabin starts at ``start_temp_c``.
    :param sensors: how many temperature sensors are fitted (1-4).
    :param oem: an OEM controller shares the bus (set point and thermostat changes refused).
    :param physics_interval: real seconds between heater-model steps when ``tick`` is 0
        (0.001-10 s).
    :raises ConfigurationError: an argument outside those limits.
    """

    name = "afterburner"
    consume_ping_payload = False  # the firmware's WebSocket reader leaves ping payloads behind

    def __init__(self, *, tick: float = 1.0, speed: float = 1.0, ambient_c: float = 5.0,
                 start_temp_c: float = 15.0, sensors: int = 1, oem: bool = False,
                 firmware: str = "V3.2.1", physics_interval: float = 0.25,
                 start_time: Optional[_dt.datetime] = None, **kw: Any) -> None:
        # Checked before the base class opens its event loop, so a refusal leaks nothing.
        tick = _checked("tick", tick)
        speed = _checked("speed", speed)
        physics_interval = _checked("physics_interval", physics_interval)
        sensors = _checked("sensors", sensors)
        super().__init__(**kw)
        self.tick = float(tick)
        self.speed = float(speed)
        self.physics_interval = float(physics_interval)
        self.model = HeaterModel(ambient_c=ambient_c, temp_c=start_temp_c, body_c=start_temp_c)
        self.sensors = sensors
        self.oem = oem
        self.firmware = firmware
        self.sim_time = 0.0
        self.clock_base = start_time or _dt.datetime(2026, 1, 15, 7, 30, 0)
        self.timers = {i: SimTimer() for i in range(1, codec.TIMER_COUNT + 1)}
        self.saved: Dict[str, Any] = dict(self.model.settings)
        self.nvsave_count = 0
        self.silenced = False
        self.pings_seen = 0
        self._tracked: List[SimConnection] = []
        self._sent: Dict[str, Any] = {}
        self._sent_at: Dict[str, float] = {}
        self._timer_sent: Dict[int, Dict[str, Any]] = {i: {} for i in self.timers}
        #: what the next update sends of the system group: "" nothing, "clock" the date alone
        #: (after a clock change), "full" the whole group (a query, refresh or new client)
        self._system_due = ""
        self._last_physics = 0.0

    @classmethod
    def from_options(cls, options: Mapping[str, str]) -> "AfterburnerSim":
        """Build from ``sim://`` URL options (``speed``, ``tick``, ``seed``, ``ambient``...)."""
        return cls(**cls.parse_options(options))

    @staticmethod
    def parse_options(options: Mapping[str, str]) -> Dict[str, Any]:
        """``sim://`` URL options to constructor arguments.

        :raises ConfigurationError: an unknown option or a value of the wrong kind.
        """
        kinds: Dict[str, Callable[[str], Any]] = {
            "speed": float, "tick": float, "seed": int, "ambient_c": float, "sensors": int,
            "start_temp_c": float, "oem": flag}
        # refused when the URL is read, not when the client connects
        limits = {key: functools.partial(_checked, key) for key in LIMITS}
        return sim_options(options, kinds, limits=limits,
                           aliases={"ambient": "ambient_c", "start_temp": "start_temp_c"})

    # ------------------------------------------------------------------ fault injection
    def set(self, **values: Any) -> None:
        """Change the device state: model fields (``temp_c``, ``battery_v``, ``ambient_c``,
        ``heater_present``...) or firmware setting keys (``TempDesired``...)."""
        def apply() -> None:
            for key, value in values.items():
                if hasattr(self.model, key) and key != "settings":
                    setattr(self.model, key, value)
                elif key in self.model.settings:
                    self.model.settings[key] = value
                else:
                    raise KeyError(f"unknown simulator value {key!r}")
            self._after_change()
        self.run_sync(apply)

    def reply_error(self, code: int) -> None:
        """The heater reports error ``code`` (an ErrorState) and shuts down if burning."""
        def fault() -> None:
            self.model.fault(int(code))
            self._after_change()
        self.run_sync(fault)

    def send_garbage(self, text: str = '{"RunState":') -> None:
        """Send one undecodable text frame to every client."""
        def send_all() -> None:
            for conn in list(self._tracked):
                self.send_text(conn, text)
        self.run_sync(send_all)

    def silence(self, on: bool = True) -> None:
        """Stop (or resume) sending anything; links stay open and commands are still taken."""
        def apply() -> None:
            self.silenced = on
            if not on:
                self._after_change()
        self.run_sync(apply)

    def advance(self, seconds: float) -> None:
        """Run the heater model ``seconds`` of simulated time at once (tests)."""
        def apply() -> None:
            remaining = seconds
            while remaining > 0:
                dt = min(1.0, remaining)
                self._physics(dt)
                remaining -= dt
            self._after_change()
        self.run_sync(apply)

    def snapshot(self) -> Dict[str, Any]:
        """Every key the device would report now (for assertions)."""
        values: Dict[str, Any] = self.run_sync(lambda: dict(self._all_values()))
        return values

    # ------------------------------------------------------------------ WebSocket side
    def on_start(self) -> None:
        self._last_physics = self.clock()
        interval = self.tick if self.tick > 0 else self.physics_interval
        self.call_later(interval, self._on_tick)

    def on_ws_open(self, conn: SimConnection) -> None:
        if len(self._tracked) < MAX_CLIENTS:
            self._tracked.append(conn)
            self._full_dump()  # the client count went up
        if self.tick == 0:
            self._update()

    def on_disconnect(self, conn: SimConnection) -> None:
        if conn in self._tracked:
            self._tracked.remove(conn)

    def on_ws_control(self, conn: SimConnection, opcode: int, payload: bytes) -> None:
        self.pings_seen += 1  # no pong: the firmware ignores pings

    def on_ws_text(self, conn: SimConnection, text: str) -> None:
        if len(text.encode("utf-8")) > codec.MAX_COMMAND_BYTES:
            return  # does not fit the parse buffer: silently dropped
        try:
            obj = json.loads(text)
        except ValueError:
            return
        if not isinstance(obj, dict):
            return
        self.received.append(obj)
        for key, value in obj.items():
            self._command(key, value)
        if self.tick == 0:
            self._update()

    # ------------------------------------------------------------------ commands
    def _command(self, key: str, value: Any) -> None:
        s = self.model.settings
        to_int, to_float = codec.firmware_to_int, codec.firmware_to_float
        if key == "Refresh":
            self._full_dump()
            # The timers are not part of it: their report is re-primed with what they hold
            # now, which also cancels a TQuery handled before the refresh.
            for timer_id, timer in self.timers.items():
                self._timer_sent[timer_id] = timer.keys(timer_id)
            self._broadcast({"Reboot": f"{self.random.randrange(10000):04d}"})
            self._broadcast({"LoadWebContent": "Supported"})
        elif key in ("Run", "RunState"):
            if to_int(value) != 0:
                reason = self.model.start()
                self._broadcast({"StartString": reason})
            else:
                self.model.stop()
        elif key in ("TempDesired", "CyclicTemp"):
            if self.oem:
                self._sent.pop("TempDesired", None)  # refused: the current value is re-sent
            else:
                s["TempDesired"] = s["CyclicTemp"] = min(35, max(8, to_int(value)))
        elif key == "Thermostat":
            if self.oem:
                self._sent.pop("Thermostat", None)
            else:
                s["Thermostat"] = 1 if to_int(value) else 0
        elif key == "ThermostatMethod":
            self._set_if(key, to_int(value), 0, 4)
        elif key == "ThermostatWindow":
            self._set_if(key, round(to_float(value), 1), 0.2, 10.0)
        elif key in ("CyclicOff", "ThermostatOvertemp"):
            number = to_int(value)
            if 0 <= number <= 10:
                # Values above 1 are stored minus one and reported plus one (so 1 and 2 give 2).
                s["CyclicOffStored"] = number - 1 if number > 1 else number
        elif key in ("CyclicOn", "ThermostatUndertemp"):
            self._set_if("CyclicOn", to_int(value), -20, 0)
        elif key in ("FrostOn", "FrostRise"):
            self._set_if(key, to_int(value), 0, 30)
        elif key == "HumidStart":
            number = to_int(value)
            if number == 0 or 50 <= number <= 100:
                s[key] = number
        elif key == "PumpMin":
            s[key] = round(min(5.0, max(0.4, to_float(value))), 1)
        elif key == "PumpMax":
            s[key] = round(min(10.0, max(1.0, to_float(value))), 1)
        elif key in ("FanMin", "FanMax"):
            self._set_if(key, to_int(value), 500, 5000)
        elif key == "FanSensor":
            self._set_if(key, to_int(value), 1, 2)
        elif key == "SystemVoltage":
            number = to_int(value)
            if number in (12, 24):
                s[key] = number
        elif key == "LowVoltCutout":
            volts = math.floor(to_float(value) * 10 + 1e-6) / 10.0
            low, high = (20.0, 25.0) if int(s["SystemVoltage"]) == 24 else (10.0, 12.5)
            if volts == 0 or low <= volts <= high:
                s[key] = volts
        elif key == "PumpCal":
            self._set_if(key, to_float(value), 0.001, 1.0)
        elif key == "PumpCount":
            if to_float(value) == 0:
                self.model.pump_count = 0.0
        elif key == "PumpPrime":
            self.model.priming = bool(to_int(value)) and not self.model.run_state.is_on
        elif key in ("TempOffset", "Temp2Offset", "Temp3Offset", "Temp4Offset"):
            self._set_if(key, round(to_float(value), 1), -10.0, 10.0)
        elif key in ("TempMode", "Time12hr", "GPout1", "GPout2"):
            s[key] = 1 if to_int(value) else 0
        elif key in ("GPOutThr1", "GPOutThr2"):  # accepted spelling differs from the report
            self._set_if("GPoutThr" + key[-1], to_int(value), -50, 50)
        elif key == "ExtThermoTmout":
            self._set_if(key, to_int(value), 0, 3_600_000)
        elif key in ("DateTime", "Date", "Time"):
            self._set_clock(key, codec.firmware_text(value))
        elif key in codec.TIMER_KEYS:
            self._timer_command(key, codec.firmware_text(value))
        elif key in ("TQuery", "TimerRefresh"):
            number = to_int(value)
            for timer_id in (self.timers if number == 0 else [number]):
                if timer_id in self._timer_sent:
                    self._timer_sent[timer_id] = {}
        elif key == "SQuery":
            self._system_due = "full"
        elif key == "IQuery":
            for k in NETWORK_GROUP:
                self._sent.pop(k, None)
        elif key == "MQuery":
            for k in MQTT_GROUP:
                self._sent.pop(k, None)
        elif key == "NVsave":
            if to_int(value) == codec.NVSAVE_CODE:
                self.saved = dict(s)
                self.nvsave_count += 1
        elif key in ("MEn", "MPort", "MQoS"):
            s[key] = to_int(value)
        elif key in ("MHost", "MUser", "MPasswd"):
            s[key] = codec.firmware_text(value)
        # Unknown keys (and the ones an SDK must not send casually) are ignored.

    def _set_if(self, key: str, value: Any, low: float, high: float) -> None:
        if low <= value <= high:
            self.model.settings[key] = value

    def _set_clock(self, key: str, text: str) -> None:
        now = self._now()
        try:
            if key == "DateTime":
                new = codec.parse_datetime(text)
            elif key == "Date":
                day, month, year = (int(x) for x in text.split("/"))
                new = now.replace(year=year, month=month, day=day)
            else:
                hour, minute, second = (int(x) for x in text.split(":"))
                new = now.replace(hour=hour, minute=minute, second=second)
        except (ValueError, Exception):
            return
        self.clock_base += new - now
        self._system_due = self._system_due or "clock"

    def _timer_command(self, key: str, text: str) -> None:
        head, _, rest = text.strip().partition(" ")
        try:
            timer_id = int(head)
        except ValueError:
            return
        timer = self.timers.get(timer_id)
        if timer is None:
            return
        rest = rest.strip()
        if key in ("TimerStart", "TimerStop"):
            hour, _, minute = rest.partition(":")
            try:
                if not (0 <= int(hour) < 24 and 0 <= int(minute) < 60):
                    return
                value = f"{int(hour):02d}:{int(minute):02d}"
            except ValueError:
                return
            setattr(timer, "start" if key == "TimerStart" else "stop", value)
        elif key == "TimerDays":
            days = [d for d in rest.split(",") if d in WEEKDAYS]
            timer.days = rest if rest in ("None", "Next") else (
                ",".join(d for d in WEEKDAYS if d in days) or "None")
        elif key == "TimerRepeat":
            timer.repeat = 1 if codec.firmware_to_int(rest) else 0
        elif key == "TimerTemp":
            temp = codec.firmware_to_int(rest)
            if temp == 0 or 8 <= temp <= 35:
                timer.temp = temp

    # ------------------------------------------------------------------ updates
    def _on_tick(self) -> None:
        now = self.clock()
        self._physics((now - self._last_physics) * self.speed)
        self._last_physics = now
        self._update()
        self.call_later(self.tick if self.tick > 0 else self.physics_interval, self._on_tick)

    def _physics(self, dt: float) -> None:
        if dt <= 0:
            return
        self.sim_time += dt
        self.model.step(dt)

    def _after_change(self) -> None:
        if self.tick == 0:
            self._update()

    def _full_dump(self) -> None:
        self._sent.clear()
        self._sent_at.clear()
        self._system_due = "full"

    def _now(self) -> _dt.datetime:
        return self.clock_base + _dt.timedelta(seconds=self.sim_time)

    def _all_values(self) -> Dict[str, Any]:
        m, s = self.model, self.model.settings
        num = codec.firmware_number
        values: Dict[str, Any] = {}
        temps = [m.temp_c + float(s["TempOffset"])] + \
                [m.temp_c - 0.5 * i + float(s[f"Temp{i + 1}Offset"]) for i in range(1, 4)]
        values["TempCurrent"] = num(round(temps[0], 1))
        for i in range(1, self.sensors):
            values[f"Temp{i + 1}Current"] = num(round(temps[i], 1))
        state = m.run_state
        values.update({
            "TempDesired": int(s["TempDesired"]), "TempMode": int(s["TempMode"]),
            "TempMin": 8, "TempMax": 35, "TempBody": num(round(m.body_c)),
            "RunState": int(state), "RunString": RUN_STATE_TEXTS.get(int(state),
                                                                    "Unknown run state"),
            "ErrorState": m.reported_error(),
            "ErrorString": ERROR_STATE_TEXTS.get(m.reported_error(), "Unknown error?"),
            "Thermostat": int(s["Thermostat"]), "PumpFixed": num(round(m.pump_fixed_hz(), 1)),
            "PumpMin": num(float(s["PumpMin"])), "PumpMax": num(float(s["PumpMax"])),
            "PumpActual": num(round(m.pump_hz, 1)), "FanMin": int(s["FanMin"]),
            "FanMax": int(s["FanMax"]), "FanRPM": int(round(m.fan_rpm)),
            "FanVoltage": num(round(m.fan_rpm / 5000.0 * 12.0, 1)),
            "FanSensor": int(s["FanSensor"]), "InputVoltage": num(round(m.input_v, 1)),
            "SystemVoltage": int(s["SystemVoltage"]), "GlowVoltage": num(round(m.glow_v, 1)),
            "GlowCurrent": num(round(m.glow_a, 2)),
            "BluewireStat": ("OEM" if self.oem else "BTC") + (",Htr" if m.heater_present else ""),
            "ThermostatMethod": int(s["ThermostatMethod"]),
            "ThermostatWindow": num(float(s["ThermostatWindow"])),
            "ThermostatOvertemp": m.cyclic_off, "ThermostatUndertemp": int(s["CyclicOn"]),
            "CyclicTemp": int(s["CyclicTemp"]), "CyclicOff": m.cyclic_off,
            "CyclicOn": int(s["CyclicOn"]), "FrostOn": int(s["FrostOn"]),
            "FrostRise": int(s["FrostRise"]), "PumpCount": num(round(m.pump_count, 1)),
            "PumpCal": num(float(s["PumpCal"])), "LowVoltCutout": num(float(s["LowVoltCutout"])),
            "HumidStart": int(s["HumidStart"]), "TempOffset": num(float(s["TempOffset"])),
            "TempType": "DS18B20",
            "MEn": int(s["MEn"]), "MOnline": 0, "MHost": s["MHost"], "MPort": int(s["MPort"]),
            "MUser": s["MUser"], "MPasswd": s["MPasswd"], "MQoS": int(s["MQoS"]),
            "MTopic": "AfterburnerC0AB95",
            "IP_AP": "192.168.4.1", "IP_APMAC": "24:6F:28:C0:AB:95", "IP_STA": "0.0.0.0",
            "IP_STAMAC": "24:6F:28:C0:AB:94", "IP_STASSID": "", "IP_STAGATEWAY": "0.0.0.0",
            "IP_STARSSI": -60, "IP_OTA": 0, "BT_MAC": "00:00:00:00:00:00",
            "DateTime": codec.format_datetime(self._now()), "Time12hr": int(s["Time12hr"]),
            "SysUpTime": int(self.sim_time), "SysVer": self.firmware, "SysDate": "27 Jul 2020",
            "SysFreeMem": 150000 - int(self.sim_time) % 997,
            "SysRunTime": int(m.run_time_s), "SysGlowTime": int(m.glow_time_s),
            "GPin1": 0, "GPin2": 0, "GPout1": int(s["GPout1"]), "GPout2": int(s["GPout2"]),
            "GPmodeIn1": "Disabled", "GPmodeIn2": "Disabled", "GPmodeOut1": "Disabled",
            "GPmodeOut2": "Disabled", "GPmodeAnlg": "Disabled",
            "GPoutThr1": int(s["GPoutThr1"]), "GPoutThr2": int(s["GPoutThr2"]), "GPanlg": 0,
            "ExtThermoTmout": int(s["ExtThermoTmout"]), "ExtThermoStop": "Off",
        })
        for i in range(1, self.sensors):
            values[f"Temp{i + 1}Offset"] = num(float(s[f"Temp{i + 1}Offset"]))
        return values

    def _update(self) -> None:
        """One moderation pass: each group's changed keys, one frame per group."""
        if self.silenced:
            return
        values = self._all_values()
        group: Tuple[str, ...]
        for group in (MAIN_GROUP, EXTENDED_GROUP):
            self._send_changed(group, values)
        for timer_id, timer in self.timers.items():
            sent = self._timer_sent[timer_id]
            changed = {k: v for k, v in timer.keys(timer_id).items() if sent.get(k) != v}
            if changed:
                sent.update(changed)
                self._broadcast(changed)
                self._broadcast({"TimerRefresh": 1})
        for group in (MQTT_GROUP, NETWORK_GROUP):
            self._send_changed(group, values)
        if self._system_due:
            # After a clock change alone the firmware sends the date (and 12-hour flag) only;
            # SysUpTime and the rest come with a query or a refresh.
            keys = SYSTEM_GROUP if self._system_due == "full" else ("DateTime", "Time12hr")
            self._system_due = ""
            self._broadcast({k: values[k] for k in keys if k in values})
        self._send_changed(GPIO_GROUP, values)

    def _send_changed(self, group: Tuple[str, ...], values: Mapping[str, Any]) -> None:
        changed: Dict[str, Any] = {}
        for key in group:
            if key not in values:
                continue
            value = values[key]
            if key in self._sent and self._sent[key] == value:
                continue
            holdoff = HOLDOFF.get(key)
            if holdoff and key in self._sent and \
                    self.sim_time - self._sent_at.get(key, -1e9) < holdoff:
                continue
            changed[key] = value
            self._sent[key] = value
            self._sent_at[key] = self.sim_time
        if changed:
            self._broadcast(changed)

    def _broadcast(self, frame: Dict[str, Any]) -> None:
        if self.silenced or not frame:
            return
        for chunk in _split(frame):
            text = codec.encode_frame(chunk)
            for conn in list(self._tracked):
                self.send_text(conn, text)


def _split(frame: Dict[str, Any]) -> List[Dict[str, Any]]:
    """Split a group into frames of at most 800 bytes, as the firmware's buffer allows."""
    if len(codec.encode_frame(frame)) <= codec.MAX_FRAME_BYTES:
        return [frame]
    chunks: List[Dict[str, Any]] = [{}]
    for key, value in frame.items():
        trial = dict(chunks[-1], **{key: value})
        if chunks[-1] and len(codec.encode_frame(trial)) > codec.MAX_FRAME_BYTES:
            chunks.append({key: value})
        else:
            chunks[-1] = trial
    return chunks
