"""What each field the Afterburner recorder adapter produces means (Home Assistant and every
other layer that shows a field).

The adapter (``pyburnerkit.recorder.adapters.afterburner``) emits every key of
``codec.STATUS_KEYS`` the controller pushes, under its firmware
name (``TempCurrent``, ``RunState``...), on the device's only channel: one controller is one
physical device. Enumerations arrive as numbers with the member's name as text
(``RunState`` 5, ``"RUNNING"``), so an enum's ``options`` are the member names;
``BluewireStat`` arrives as the firmware's text (``"BTC,Htr"``).

A person's dashboard shows the heater as a ``climate`` entity (set point, current
temperature, heat/off mapped to :meth:`~pyburnerkit.afterburner.AfterburnerClient.run`), the
temperatures, run state, error, supply voltage, fan speed, pump rate and the fuel gauge.
Settings the library can change are ``number``/``select``/``switch`` entities under the config
category, each naming the client method that checks the firmware's limits
(``codec.SETTINGS``; the limits below are read from there).
Only the set point, start and stop are ``safe``: pump, fan, voltage and calibration settings
change how the heater burns and need the user to list them by name.

Choices worth knowing:

* The adapter spells fan speeds ``RPM`` and gives ``TempDesired`` no unit; the table says
  ``rpm`` (Home Assistant's spelling) and ``°C`` (in thermostat mode the set point is whole
  °C; in fixed-Hz mode the same 8-35 number is a demand index).
* ``PumpCount`` (pump strokes since the fuel gauge was reset) only grows and restarts from 0
  when the gauge is reset: Home Assistant's ``total_increasing`` (``total`` without a
  ``last_reset`` would book each reset as negative fuel).
* ``PumpCal`` is millilitres per stroke, a calibration setting: no device class, no state
  class.
* Offsets and bands (``TempOffset``, ``ThermostatWindow``, ``CyclicOff``, ``CyclicOn``,
  ``FrostRise``) are temperature *differences*: unit °C but no ``temperature`` device class,
  which Home Assistant would convert as absolute temperatures for a °F user (+2 °C is not
  35.6 °F). ``FrostOn`` is a threshold whose 0 means "off", so it has no device class either.
* ``CyclicOff``/``CyclicOn`` are also reported as ``ThermostatOvertemp``/``ThermostatUndertemp``
  (the same values); only the first spelling is a control, the aliases are hidden diagnostics.
* Actions have no reported field of their own, so their keys name the action: ``Start``,
  ``Stop``, ``FuelGaugeReset``, ``NVsave`` (buttons) and ``PumpPrime``. Priming runs the fuel
  pump until it is stopped (``prime_pump(False)``), and the controller reports no priming
  state, so it is a ``switch`` whose state is the last confirmed command, not a button.
* Settings live in the controller's RAM until
  :meth:`~pyburnerkit.afterburner.AfterburnerClient.save` (the ``NVsave`` button); the set
  point lives in battery-backed RAM and needs no save.
"""

from __future__ import annotations

from typing import Any, Dict, Optional, Pattern, Tuple, Union

from ..semantics import Control, Entity, FieldTable
from .codec import LVC_RANGES, SETTINGS
from .models import DemandMode, ErrorState, RunState, TemperatureUnit, ThermostatMethod

__all__ = ["TABLE"]


def _limits(name: str, **control: Any) -> Control:
    """A number's control with the firmware's limits of setting ``name`` (a value outside
    ``low..high`` that means "off" widens the range to include it)."""
    setting = SETTINGS[name]
    low = setting.low
    if setting.off_value is not None:
        low = min(low, setting.off_value)
    step = setting.step if setting.step is not None else (1 if setting.integer else None)
    control.setdefault("minimum", low)
    control.setdefault("maximum", setting.high)
    control.setdefault("step", step)
    return Control(**control)


def _setting(name: str, unit: str, control: Control, *, device_class: Optional[str] = None,
             icon: Optional[str] = None, precision: Optional[int] = None,
             kind: str = "number", options: Tuple[str, ...] = ()) -> Entity:
    # A setting: config category, never a state class, hidden until someone wants it.
    return Entity(name, unit, device_class, None, "config", False, precision, icon, kind,
                  options, control)


def _diagnostic(name: str, unit: str = "", device_class: Optional[str] = None,
                state_class: Optional[str] = None, *, icon: Optional[str] = None,
                precision: Optional[int] = None, kind: str = "sensor",
                options: Tuple[str, ...] = ()) -> Entity:
    return Entity(name, unit, device_class, state_class, "diagnostic", False, precision, icon,
                  kind, options)


def _choices(enum_class: Any) -> Dict[str, Any]:
    # The select's options are the member names the recorder publishes as the enum's text.
    return {member.name: member for member in enum_class}


_RUN_STATES = tuple(state.name for state in RunState)
_ERROR_STATES = tuple(state.name for state in ErrorState)
#: BluewireStat texts of the V3.2 firmware (who drives the heater bus, whether it answers).
_BLUEWIRE = ("BTC,Htr", "BTC", "OEM,Htr", "OEM")
#: The 24 V range is the widest: on a 12 V system the method refuses what is above 12.5 V.
_LVC_MAX = max(high for _, high in LVC_RANGES.values())

_DEMAND = _choices(DemandMode)
_METHOD = _choices(ThermostatMethod)
_UNIT = _choices(TemperatureUnit)

_FIELDS: Dict[Union[str, Pattern[str]], Entity] = {
    # ------------------------------------------------------------------ what a person watches
    "TempDesired": Entity(
        "Heater", "°C", enabled=True, precision=1, icon="mdi:radiator", kind="climate",
        control=_limits("desired_temperature", method="set_desired_temperature", safe=True),
        links={"current": "TempCurrent", "mode": "RunState"}),
    "TempCurrent": Entity("Temperature", "°C", "temperature", "measurement", enabled=True,
                          precision=1),
    "TempBody": Entity("Heater body temperature", "°C", "temperature", "measurement",
                       enabled=True, precision=0),
    "RunState": Entity("Run state", device_class="enum", enabled=True, icon="mdi:fire",
                       options=_RUN_STATES),
    "ErrorState": Entity("Error", device_class="enum", enabled=True,
                         icon="mdi:alert-circle-outline", options=_ERROR_STATES),
    "InputVoltage": Entity("Supply voltage", "V", "voltage", "measurement", enabled=True,
                           precision=1),
    "FanRPM": Entity("Fan speed", "rpm", None, "measurement", enabled=True, precision=0,
                     icon="mdi:fan"),
    "PumpActual": Entity("Pump rate", "Hz", "frequency", "measurement", enabled=True,
                         precision=1, icon="mdi:pump"),
    # the fuel gauge: strokes since the last reset (see the module docstring)
    "PumpCount": Entity("Fuel pump strokes", "", None, "total_increasing", enabled=True,
                        precision=0, icon="mdi:gas-station"),
    # BME280 only; only sent when one is fitted
    "Humidity": Entity("Humidity", "%", "humidity", "measurement", enabled=True, precision=0),

    # ------------------------------------------------------------------ heater internals
    "RunString": _diagnostic("Run state text", icon="mdi:text"),
    "ErrorString": _diagnostic("Error text", icon="mdi:text"),
    "BluewireStat": _diagnostic("Heater bus", device_class="enum", icon="mdi:cable-data",
                                options=_BLUEWIRE),
    "PumpFixed": _diagnostic("Pump rate at fixed demand", "Hz", "frequency", "measurement",
                             icon="mdi:pump", precision=1),
    "FanVoltage": _diagnostic("Fan voltage", "V", "voltage", "measurement", precision=1),
    "GlowVoltage": _diagnostic("Glow plug voltage", "V", "voltage", "measurement",
                               precision=1),
    "GlowCurrent": _diagnostic("Glow plug current", "A", "current", "measurement",
                               precision=2),
    # fixed by the firmware (8 and 35 °C): limits, not measurements
    "TempMin": _diagnostic("Set point minimum", "°C", "temperature", precision=0),
    "TempMax": _diagnostic("Set point maximum", "°C", "temperature", precision=0),
    "TempType": _diagnostic("Temperature sensor type", icon="mdi:thermometer-probe"),
    "Altitude": _diagnostic("Altitude", "m", "distance", "measurement", precision=0),
    "ThermostatOvertemp": _diagnostic("Cyclic stop offset (thermostat overtemp)", "°C",
                                      icon="mdi:thermometer-chevron-up"),
    "ThermostatUndertemp": _diagnostic("Cyclic restart offset (thermostat undertemp)", "°C",
                                       icon="mdi:thermometer-chevron-down"),

    # ------------------------------------------------------------------ network and MQTT
    "IP_STA": _diagnostic("Wi-Fi IP address", icon="mdi:ip-network"),
    "IP_AP": _diagnostic("Access point IP address", icon="mdi:access-point"),
    "IP_STASSID": _diagnostic("Wi-Fi network", icon="mdi:wifi"),
    "IP_STARSSI": _diagnostic("Wi-Fi signal", "dBm", "signal_strength", "measurement",
                              precision=0),
    "MEn": _diagnostic("MQTT enabled", kind="binary_sensor", icon="mdi:message-processing"),
    "MOnline": _diagnostic("MQTT connected", device_class="connectivity",
                           kind="binary_sensor"),

    # ------------------------------------------------------------------ GPIO (boards with it)
    "GPin1": Entity("Input 1", kind="binary_sensor", icon="mdi:electric-switch"),
    "GPin2": Entity("Input 2", kind="binary_sensor", icon="mdi:electric-switch"),
    "GPanlg": Entity("Analogue input", "%", None, "measurement", precision=0,
                     icon="mdi:knob"),
    # switch wiring the user made: never safe
    "GPout1": _setting("Output 1", "", Control("set", argument="gpio_out1", on=1, off=0),
                       kind="switch", icon="mdi:electric-switch-closed"),
    "GPout2": _setting("Output 2", "", Control("set", argument="gpio_out2", on=1, off=0),
                       kind="switch", icon="mdi:electric-switch-closed"),

    # ------------------------------------------------------------------ thermostat settings
    "Thermostat": _setting("Demand mode", "", Control("set_demand_mode", choices=_DEMAND),
                           kind="select", options=tuple(_DEMAND), icon="mdi:thermostat"),
    "ThermostatMethod": _setting(
        "Thermostat method", "", Control("set_thermostat", argument="method", choices=_METHOD),
        kind="select", options=tuple(_METHOD), icon="mdi:thermostat-auto"),
    # 0.1 °C: the resolution the firmware keeps (the library checks only the range)
    "ThermostatWindow": _setting(
        "Thermostat window", "°C",
        _limits("thermostat_window", method="set_thermostat", argument="window_c", step=0.1),
        icon="mdi:arrow-expand-vertical", precision=1),
    "CyclicTemp": _setting(
        "Cyclic set point", "°C",
        _limits("cyclic_temperature", method="set", argument="cyclic_temperature"),
        device_class="temperature", precision=0),
    # 0 turns cyclic mode off; 1 is refused (the firmware would store 2)
    "CyclicOff": _setting("Cyclic stop offset", "°C", _limits("cyclic_off", method="set_cyclic"),
                          icon="mdi:thermometer-chevron-up", precision=0),
    "CyclicOn": _setting("Cyclic restart offset", "°C",
                         _limits("cyclic_on", method="set", argument="cyclic_on"),
                         icon="mdi:thermometer-chevron-down", precision=0),
    "FrostOn": _setting("Frost start temperature", "°C", _limits("frost_on", method="set_frost"),
                        icon="mdi:snowflake-thermometer", precision=0),
    "FrostRise": _setting("Frost stop rise", "°C",
                          _limits("frost_rise", method="set", argument="frost_rise"),
                          icon="mdi:snowflake-melt", precision=0),
    # 0 = off, else 50-100 % (a BME280 is needed)
    "HumidStart": _setting("Humidity start", "%",
                           _limits("humidity_start", method="set_humidity_start"),
                           device_class="humidity", precision=0),
    "ExtThermoTmout": _setting(
        "External thermostat hold time", "ms",
        _limits("ext_thermo_timeout", method="set", argument="ext_thermo_timeout"),
        device_class="duration", precision=0),
    "TempMode": _setting(
        "Display temperature unit", "",
        Control("set", argument="temperature_unit", choices=_UNIT),
        kind="select", options=tuple(_UNIT), icon="mdi:temperature-celsius"),

    # ------------------------------------------------------------------ burner tuning
    "PumpMin": _setting("Pump rate minimum", "Hz",
                        _limits("pump_min", method="set_pump_limits", argument="min_hz"),
                        device_class="frequency", precision=1),
    "PumpMax": _setting("Pump rate maximum", "Hz",
                        _limits("pump_max", method="set_pump_limits", argument="max_hz"),
                        device_class="frequency", precision=1),
    "FanMin": _setting("Fan speed minimum", "rpm",
                       _limits("fan_min", method="set_fan_limits", argument="min_rpm"),
                       icon="mdi:fan-chevron-down", precision=0),
    "FanMax": _setting("Fan speed maximum", "rpm",
                       _limits("fan_max", method="set_fan_limits", argument="max_rpm"),
                       icon="mdi:fan-chevron-up", precision=0),
    # SN-1 / SN-2 sensors: pulses per revolution the fan speed is divided by
    "FanSensor": _setting("Fan sensor divisor", "",
                          _limits("fan_sensor", method="set", argument="fan_sensor"),
                          icon="mdi:fan-alert", precision=0),
    "PumpCal": _setting("Pump calibration", "mL",
                        _limits("pump_cal", method="set_pump_calibration"),
                        icon="mdi:beaker-outline", precision=3),
    # 0 = off; 10.0-12.5 V on 12 V systems, 20.0-25.0 V on 24 V (the method checks which)
    "LowVoltCutout": _setting(
        "Low-voltage cut-out", "V",
        _limits("low_volt_cutout", method="set_low_voltage_cutout", maximum=_LVC_MAX),
        device_class="voltage", precision=1),
    # 12 or 24 V: a step of 12 leaves exactly those two
    "SystemVoltage": _setting("System voltage", "V",
                              _limits("system_voltage", method="set_system_voltage",
                                      step=SETTINGS["system_voltage"].high
                                      - SETTINGS["system_voltage"].low),
                              device_class="voltage", precision=0),

    # ------------------------------------------------------------------ actions
    # The climate entity starts and stops the heater too; the buttons serve scripts and
    # automations. stop() works even without allow_writes (it makes the heater safe).
    "Start": Entity("Start", kind="button", icon="mdi:play",
                    control=Control("start", argument="none", safe=True)),
    "Stop": Entity("Stop", kind="button", icon="mdi:stop",
                   control=Control("stop", argument="none", safe=True)),
    "PumpPrime": _setting("Pump priming", "",
                          Control("prime_pump", on=True, off=False),
                          kind="switch", icon="mdi:pump"),
    "FuelGaugeReset": _setting("Reset fuel gauge", "",
                               Control("reset_fuel_gauge", argument="none"),
                               kind="button", icon="mdi:gas-station-off"),
    "NVsave": _setting("Save settings", "", Control("save", argument="none"),
                       kind="button", icon="mdi:content-save"),
}

# Extra DS18B20 sensors (Temp2..Temp4): sent only when fitted, so enabled ones cost nothing
# on a controller with one sensor.
for _n in (2, 3, 4):
    _FIELDS[f"Temp{_n}Current"] = Entity(f"Temperature {_n}", "°C", "temperature",
                                         "measurement", enabled=True, precision=1)
for _n, _name in ((1, "TempOffset"), (2, "Temp2Offset"), (3, "Temp3Offset"),
                  (4, "Temp4Offset")):
    _FIELDS[_name] = _setting(
        "Temperature offset" if _n == 1 else f"Temperature {_n} offset", "°C",
        _limits("temp_offset" if _n == 1 else f"temp{_n}_offset", method="set",
                argument="temp_offset" if _n == 1 else f"temp{_n}_offset"),
        icon="mdi:thermometer-plus", precision=1)

TABLE = FieldTable("afterburner", _FIELDS, per_channel=False, model="Afterburner")
