"""What the DE1's recorded fields mean, and the machine's controls (the family's
:class:`~pyburnerkit.semantics.FieldTable`).

The recorder's DE1 adapter emits the machine state and substate (enum names), every shot
sample (pressure, flow, temperatures, the profile's targets, the frame and the DE1's clock), the
shot volume, the water levels and the heater temperatures under the driver's unit-suffixed
names; this table gives each of them its Home Assistant meaning. Actions are ``button``
entries named after the :class:`~pyburnerkit.de1.DE1Client` method they call; their
``safe`` flag follows the client's own gating: what ``allow_writes`` alone permits (stop, sleep,
wake) is safe, what also needs ``allow_remote_start`` (anything that starts water flowing:
espresso, steam, hot water, flush, skip to next frame) is not, so a user opts in per field.

Pure data: importing it imports the DE1 models, not the client (no pygatt).
"""

from __future__ import annotations

from ..semantics import Control, Entity, FieldTable
from .models import MachineState, SubState

__all__ = ["TABLE", "REFILL_LEVEL_MM"]

#: The refill threshold the client accepts (``DE1Client.set_refill_level``, checked by
#: ``codec.encode_refill_level`` before anything is sent), in mm.
REFILL_LEVEL_MM = (0.0, 70.0)


def _temperature(name: str, *, enabled: bool = False, precision: int = 1) -> Entity:
    return Entity(name, unit="°C", device_class="temperature", state_class="measurement",
                  precision=precision, enabled=enabled,
                  category=None if enabled else "diagnostic")


def _pressure(name: str, *, enabled: bool = False) -> Entity:
    return Entity(name, unit="bar", device_class="pressure", state_class="measurement",
                  precision=1, enabled=enabled, category=None if enabled else "diagnostic")


def _flow(name: str, *, enabled: bool = False) -> Entity:
    # HA has no device class for mL/s (volume_flow_rate knows L/min, m³/h...): unit and icon
    return Entity(name, unit="mL/s", state_class="measurement", precision=1,
                  icon="mdi:water-pump", enabled=enabled,
                  category=None if enabled else "diagnostic")


def _button(name: str, method: str, icon: str, *, safe: bool, enabled: bool) -> Entity:
    return Entity(name, kind="button", icon=icon, enabled=enabled,
                  control=Control(method, argument="none", safe=safe))


TABLE = FieldTable("de1", {
    # ---- what the machine is doing: the dashboard's headline
    "state": Entity("State", device_class="enum", enabled=True, icon="mdi:coffee-maker",
                    options=tuple(m.name for m in MachineState)),
    "substate": Entity("Substate", device_class="enum", enabled=True, icon="mdi:list-status",
                       options=tuple(s.name for s in SubState)),

    # ---- shot samples (ShotSample: 4 per second on 50 Hz mains, a third of that asleep)
    "group_pressure_bar": _pressure("Pressure", enabled=True),
    "group_flow_ml_s": _flow("Flow", enabled=True),
    "head_temp_c": _temperature("Group head temperature", enabled=True),
    "mix_temp_c": _temperature("Mix temperature", enabled=True),
    "steam_temp_c": _temperature("Steam temperature", enabled=True, precision=0),  # whole °C
    # the profile's goals while a shot runs: useful in a graph, not on a dashboard
    "set_group_pressure_bar": _pressure("Target pressure"),
    "set_group_flow_ml_s": _flow("Target flow"),
    "set_head_temp_c": _temperature("Target group head temperature"),
    "set_mix_temp_c": _temperature("Target mix temperature"),
    # an index and a wrapping clock (AC half-cycles): neither is a quantity to graph
    "frame_number": Entity("Profile frame", category="diagnostic", precision=0,
                           icon="mdi:format-list-numbered"),
    "sample_time": Entity("Sample clock", category="diagnostic", precision=0,
                          icon="mdi:sine-wave"),
    # integrated by the client, back to 0 when a flow starts: HA's total_increasing reads a
    # drop as a new cycle, so the statistics sum the water of every shot (the adapter's own
    # guess, "total", would count each restart as water taken back)
    "volume_total_ml": Entity("Shot volume", unit="mL", device_class="volume",
                              state_class="total_increasing", enabled=True, precision=0),

    # ---- water tank (WaterLevels); the refill threshold is a setting the client writes
    "level_mm": Entity("Water level", unit="mm", device_class="distance",
                       state_class="measurement", enabled=True, precision=0),
    "start_fill_level_mm": Entity(
        "Refill level", unit="mm", device_class="distance", category="config", precision=0,
        kind="number",
        control=Control("set_refill_level", minimum=REFILL_LEVEL_MM[0],
                        maximum=REFILL_LEVEL_MM[1], step=1.0)),

    # ---- heaters (Temperatures): internals next to the sample's group head and mix values
    "water_heater_c": _temperature("Water heater temperature"),
    "steam_heater_c": _temperature("Steam heater temperature"),
    "group_heater_c": _temperature("Group heater temperature"),
    "cold_water_c": _temperature("Cold water temperature"),
    "target_water_heater_c": _temperature("Water heater target temperature"),
    "target_steam_heater_c": _temperature("Steam heater target temperature"),
    "target_group_heater_c": _temperature("Group heater target temperature"),
    "target_cold_water_c": _temperature("Cold water target temperature"),

    # ---- actions. Stopping needs no permission at all; sleep and wake need allow_writes.
    "stop": _button("Stop", "stop", "mdi:stop", safe=True, enabled=True),
    "end_steam": _button("End steam", "end_steam", "mdi:stop-circle-outline", safe=True,
                         enabled=False),
    "wake": _button("Wake", "wake", "mdi:power", safe=True, enabled=True),
    "sleep": _button("Sleep", "sleep", "mdi:sleep", safe=True, enabled=True),
    # starting water through the group or the wand needs allow_remote_start as well: someone
    # may be standing at the machine, so each is controllable only when listed by name
    "start_flush": _button("Flush", "start_flush", "mdi:water-sync", safe=False, enabled=True),
    "start_espresso": _button("Start espresso", "start_espresso", "mdi:coffee", safe=False,
                              enabled=False),
    "start_steam": _button("Start steam", "start_steam", "mdi:kettle-steam", safe=False,
                           enabled=False),
    "start_hot_water": _button("Start hot water", "start_hot_water", "mdi:kettle", safe=False,
                               enabled=False),
    "skip_to_next": _button("Skip to next frame", "skip_to_next", "mdi:skip-next", safe=False,
                            enabled=False),
}, model="DE1")
