"""What the TR-1's recorded fields mean (the family's
:class:`~pyburnerkit.semantics.FieldTable`, named by ``fields=`` in :mod:`.family`).

Home Assistant discovery, the recorder's units and the command plane read it: the temperature
and humidity go on a dashboard; the relay is a switch and the cut-out a number once the
device's config allows writes. Closing the relay heats, so it is not ``safe``: a user lists it
in the device's ``controls`` to control it from Home Assistant. Pure data: importing it imports
no client.
"""

from __future__ import annotations

from pyburnerkit.semantics import Control, Entity, FieldTable

from .models import LIMIT_MAX_C, LIMIT_MIN_C, LIMIT_STEP_C

__all__ = ["TABLE"]

TABLE = FieldTable("thermo", {
    "temperature_c": Entity("Temperature", unit="°C", device_class="temperature",
                            state_class="measurement", precision=1, enabled=True),
    "humidity_pct": Entity("Humidity", unit="%", device_class="humidity",
                           state_class="measurement", precision=0, enabled=True),
    "relay": Entity("Heater relay", kind="switch", icon="mdi:radiator", enabled=True,
                    control=Control("set_relay", on=True, off=False)),
    # a setting, changed now and then: configuration, off the dashboard
    "limit_c": Entity("Cut-out temperature", unit="°C", device_class="temperature",
                      category="config", precision=1, kind="number",
                      control=Control("set_limit", minimum=LIMIT_MIN_C, maximum=LIMIT_MAX_C,
                                      step=LIMIT_STEP_C)),
}, model="TR-1")
