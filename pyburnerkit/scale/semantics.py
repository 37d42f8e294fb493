"""What the Skale's recorded fields mean, and the scale's controls (the family's
:class:`~pyburnerkit.semantics.FieldTable`).

The recorder's scale adapter emits every weight report: the weight and two flow estimates
(g/s over the last ~10 reports). The battery level is what
:meth:`~pyburnerkit.scale.SkaleClient.read_battery` and ``info.battery`` return. Actions
and settings are named after the :class:`~pyburnerkit.scale.SkaleClient` method they
call; all of them need ``allow_writes``, and only the everyday one (tare) is ``safe``.

Pure data: importing it imports nothing of the client (no pygatt).
"""

from __future__ import annotations

from ..semantics import Control, Entity, FieldTable

__all__ = ["TABLE", "DISPLAY_UNITS"]

#: What ``SkaleClient.set_units`` accepts (it refuses anything else before sending).
DISPLAY_UNITS = ("g", "oz")


def _flow(name: str, *, enabled: bool) -> Entity:
    # a mass flow: HA has no device class for g/s, so a unit and an icon
    return Entity(name, unit="g/s", state_class="measurement", precision=1,
                  icon="mdi:scale", enabled=enabled,
                  category=None if enabled else "diagnostic")


TABLE = FieldTable("scale", {
    "weight_g": Entity("Weight", unit="g", device_class="weight", state_class="measurement",
                       enabled=True, precision=1),
    "average_flow_g_s": _flow("Flow", enabled=True),
    # the same flow, robust against a bump on the scale: for graphs next to the shot
    "median_flow_g_s": _flow("Median flow", enabled=False),
    # the Battery Service level byte the client reads at connect (pyDE1 notes the Skale
    # reports 0..63 there; the client passes it on as a percentage)
    "battery": Entity("Battery", unit="%", device_class="battery", state_class="measurement",
                      category="diagnostic", enabled=True, precision=0),

    "tare": Entity("Tare", kind="button", icon="mdi:scale-balance", enabled=True,
                   control=Control("tare", argument="none", safe=True)),
    # settings of the scale itself, changed now and then at the machine, not from a dashboard
    "display_on": Entity("Display", kind="switch", category="config", icon="mdi:monitor",
                         control=Control("set_display", on=True, off=False)),
    "display_unit": Entity("Display unit", kind="select", category="config",
                           icon="mdi:weight-gram", options=DISPLAY_UNITS,
                           control=Control("set_units",
                                           choices={u: u for u in DISPLAY_UNITS})),
}, model="Skale II")
