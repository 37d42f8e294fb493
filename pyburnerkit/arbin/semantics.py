"""What each field the Arbin recorder adapter produces means (Home Assistant and every other
layer that shows a field).

The adapter (``pyburnerkit.recorder.adapters.arbin``) polls a
:class:`~pyburnerkit.arbin.CyclerClient` and emits, per channel, the unit-suffixed fields of
:class:`~pyburnerkit.arbin.ChannelStatus` (``voltage_v``, ``charge_capacity_ah``...), the
channel ``state``, ``comm_failure`` and one ``aux_<type>_<n>`` reading per auxiliary input
(types as in :data:`~pyburnerkit.arbin.AUX_TYPES`, ``n`` 1-based).

Every cycler channel holds a cell under test, so each channel is a physical device of its own
(``per_channel=True``); a person's dashboard per channel shows its state, voltage, current,
power, the capacity and energy counters of the running test, the test time, the step, the test
name, the first aux temperature and whether the cycler lost contact with the channel.

**No controls.** The adapter wraps a :class:`~pyburnerkit.arbin.CyclerClient`, which only
reads: stop, start, resume and the meta variables live on
:class:`~pyburnerkit.arbin.ChannelClient`, and one of those commands only the channel it was
opened for. A stop button on every channel device would therefore have no client method that
stops *that* channel, so the table declares no control at all; every entity is a sensor or a
binary sensor.

Counters: ``charge_capacity_ah``, ``discharge_capacity_ah``, ``charge_energy_wh`` and
``discharge_energy_wh`` only grow during a test and start again from 0 when the next test (or a
schedule step that resets them) begins. That is what Home Assistant's ``total_increasing``
describes (a positive total that periodically restarts from 0; a drop is read as a new cycle).
``total`` without a ``last_reset`` would book each new test as a negative amount in the
long-term statistics.
"""

from __future__ import annotations

from typing import Dict, Mapping, Optional, Pattern, Tuple, Union

from ..semantics import Entity, FieldTable, compile_key
from .models import AUX_TYPES, ChannelState

__all__ = ["TABLE", "AUX_NAMED"]

#: Aux inputs per type that get a friendly numbered name ("Aux voltage 3"); later ones are
#: still known (a pattern) and named by their key.
AUX_NAMED = 8

#: The state class of the per-test counters (see the module docstring).
_PER_TEST_COUNTER = "total_increasing"

_STATE_OPTIONS = tuple(state.name for state in ChannelState)


def _text(name: str, icon: str, *, enabled: bool = False,
          category: Optional[str] = None) -> Entity:
    # Free text the cycler reports (names, step descriptions): no unit, no state class.
    return Entity(name, icon=icon, enabled=enabled, category=category)


_CHANNEL: Dict[str, Entity] = {
    "state": Entity("Channel state", device_class="enum", options=_STATE_OPTIONS,
                    icon="mdi:battery-sync", enabled=True),
    "comm_failure": Entity("Communication failure", device_class="problem",
                           kind="binary_sensor", category="diagnostic", enabled=True),
    "voltage_v": Entity("Voltage", "V", "voltage", "measurement", enabled=True, precision=4),
    "current_a": Entity("Current", "A", "current", "measurement", enabled=True, precision=4),
    "power_w": Entity("Power", "W", "power", "measurement", enabled=True, precision=3),
    # Ah has no Home Assistant device class: a plain sensor with its unit and an icon.
    "charge_capacity_ah": Entity("Charge capacity", "Ah", None, _PER_TEST_COUNTER,
                                 enabled=True, precision=4, icon="mdi:battery-arrow-up"),
    "discharge_capacity_ah": Entity("Discharge capacity", "Ah", None, _PER_TEST_COUNTER,
                                    enabled=True, precision=4,
                                    icon="mdi:battery-arrow-down"),
    "charge_energy_wh": Entity("Charge energy", "Wh", "energy", _PER_TEST_COUNTER,
                               enabled=True, precision=4),
    "discharge_energy_wh": Entity("Discharge energy", "Wh", "energy", _PER_TEST_COUNTER,
                                  enabled=True, precision=4),
    # Elapsed times restart with each test (and step): a measurement, never a counter.
    "test_time_s": Entity("Test time", "s", "duration", "measurement", enabled=True,
                          precision=0),
    "step_time_s": Entity("Step time", "s", "duration", "measurement", precision=0),
    "step_and_cycle": _text("Cycle and step", "mdi:format-list-numbered", enabled=True),
    "test_name": _text("Test name", "mdi:flask-outline", enabled=True),
    "schedule": _text("Schedule", "mdi:file-document-outline"),
    "exit_condition": _text("Last step exit condition", "mdi:exit-run"),
    "barcode": _text("Cell barcode", "mdi:barcode"),
    "can_config_name": _text("CAN configuration", "mdi:cog-outline", category="diagnostic"),
    "smb_config_name": _text("SMBus configuration", "mdi:cog-outline",
                             category="diagnostic"),
    # An index (this channel's own number unless paralleled), not a quantity.
    "master_channel": Entity("Master channel", icon="mdi:link-variant", category="diagnostic"),
    # Resistance, impedance, phase and dV/dt have no device class in Home Assistant.
    "internal_resistance_ohm": Entity("Internal resistance", "Ω", None, "measurement",
                                      precision=4, icon="mdi:omega"),
    "acr_ohm": Entity("AC resistance", "Ω", None, "measurement", precision=4,
                      icon="mdi:omega"),
    "aci_ohm": Entity("AC impedance", "Ω", None, "measurement", precision=4,
                      icon="mdi:omega"),
    "aci_phase_deg": Entity("AC impedance phase", "°", None, "measurement", precision=2,
                            icon="mdi:angle-acute"),
    "dvdt_v_per_s": Entity("Voltage rate of change", "V/s", None, "measurement",
                           precision=6, icon="mdi:chart-line-variant"),
}

# How each aux type reads: (name stem, unit, device class, icon, kind, category). Units
# follow what the adapter emits; types whose unit Arbin's CTI documents nowhere stay unitless
# rather than guessed (a wrong unit would be converted by Home Assistant into wrong numbers).
_AuxSpec = Tuple[str, str, Optional[str], Optional[str], str, Optional[str]]
_AUX: Mapping[str, _AuxSpec] = {
    "voltage": ("Aux voltage", "V", "voltage", None, "sensor", None),
    "temperature": ("Temperature", "°C", "temperature", None, "sensor", None),
    "pressure": ("Aux pressure", "Pa", "pressure", None, "sensor", None),
    "external": ("Aux external input", "", None, "mdi:import", "sensor", None),
    "flow": ("Aux flow", "", None, "mdi:waves-arrow-right", "sensor", None),
    "ao": ("Aux analog output", "", None, "mdi:sine-wave", "sensor", None),
    "di": ("Aux digital input", "", None, "mdi:electric-switch", "binary_sensor", None),
    "do": ("Aux digital output", "", None, "mdi:electric-switch", "binary_sensor", None),
    "humidity": ("Aux humidity", "", None, "mdi:water-percent", "sensor", None),
    "safety": ("Aux safety", "", None, "mdi:shield-alert-outline", "sensor", "diagnostic"),
    "ph": ("Aux pH", "", None, "mdi:ph", "sensor", None),
    "density": ("Aux density", "", None, "mdi:gauge", "sensor", None),
}

_AUX_PRECISION = {"voltage": 4, "temperature": 1}


def _aux(kind: str, n: Optional[int]) -> Entity:
    stem, unit, device_class, icon, platform, category = _AUX[kind]
    binary = platform == "binary_sensor"
    return Entity(
        # a pattern entry has no name: the discovery layer then names it by its key
        f"{stem} {n}" if n is not None else "",
        unit, device_class,
        None if binary else "measurement",
        category=category,
        # the first temperature input is, on a cycler, the cell's own thermocouple
        enabled=kind == "temperature" and n == 1,
        precision=None if binary else _AUX_PRECISION.get(kind, 2),
        icon=icon, kind=platform)


def _fields() -> Dict[Union[str, Pattern[str]], Entity]:
    fields: Dict[Union[str, Pattern[str]], Entity] = {k: v for k, v in _CHANNEL.items()}
    for kind in AUX_TYPES:
        for n in range(1, AUX_NAMED + 1):
            fields[f"aux_{kind}_{n}"] = _aux(kind, n)
    for kind in AUX_TYPES:
        fields[compile_key(rf"aux_{kind}_[1-9][0-9]*")] = _aux(kind, None)
    return fields


TABLE = FieldTable("arbin", _fields(), per_channel=True)
