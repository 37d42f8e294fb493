"""The checks of validate.py catch what Home Assistant refuses (else a green discovery test
would prove nothing)."""

from __future__ import annotations

from typing import Any, Dict

import pytest

from . import rules, validate

DEVICE = {"identifiers": ["pyburnerkit_x_y"], "name": "x y", "manufacturer": "m"}
ORIGIN = {"name": "pyburnerkit", "sw_version": "0.1.0"}


def _sensor(**options: Any) -> Dict[str, Any]:
    payload = {"name": "T", "unique_id": "u", "state_topic": "r/x/y/T", "device": DEVICE,
               "origin": ORIGIN, "value_template": "{{ value_json.value }}"}
    payload.update(options)
    return payload


def _problems(payload: Dict[str, Any], platform: str = "sensor") -> str:
    return "\n".join(validate.payload_problems("ha", f"ha/{platform}/node/obj/config",
                                               payload))


def test_a_valid_sensor_passes() -> None:
    assert _problems(_sensor(unit_of_measurement="°C", device_class="temperature",
                             state_class="measurement", suggested_display_precision=1)) == ""


@pytest.mark.parametrize("options, complaint", [
    ({"unit_of_measurement": "RPM"}, ""),  # no device class: any unit
    ({"unit_of_measurement": "mL", "device_class": "volume", "state_class": "measurement"},
     "impossible with device class 'volume'"),
    ({"unit_of_measurement": "h", "device_class": "duration", "state_class": "bogus"},
     "state class 'bogus' does not exist"),
    ({"unit_of_measurement": "°C", "device_class": "voltage"}, "not valid with device class"),
    ({"device_class": "temperature"}, "unit None is not valid"),
    ({"unit_of_measurement": "kWh", "device_class": "energy", "state_class": "measurement"},
     "impossible with device class 'energy'"),
    ({"device_class": "enum", "options": ["A"], "state_class": "measurement"},
     "options together with a state class"),
    ({"options": ["A"]}, "options without device class enum"),
    ({"device_class": "enum"}, "enum sensor without options"),
    ({"entity_category": "config"}, "cannot have entity_category config"),
    ({"command_topic": "r/x/y/T/set"}, "'command_topic' is not in HA's sensor schema"),
    ({"icon": "fan"}, "is not prefix:name"),
    ({"device": {"name": "no id"}}, "no identifiers"),
    ({"device": dict(DEVICE, model_name="x")}, "device option 'model_name'"),
    ({"default_entity_id": "number.t"}, "is not sensor.<object id>"),
    ({"value_template": "{{ value_json.value "}, "does not compile"),
])
def test_what_home_assistant_refuses_is_caught(options: Dict[str, Any], complaint: str
                                               ) -> None:
    found = _problems(_sensor(**options))
    if complaint:
        assert complaint in found
    else:
        assert found == ""


def test_platform_rules() -> None:
    number = {"name": "N", "unique_id": "n", "command_topic": "a/set", "device": DEVICE,
              "origin": ORIGIN, "min": 5, "max": 1, "state_class": "measurement"}
    found = _problems(number, "number")
    assert "min 5.0 > max 1.0" in found and "'state_class' is not in HA's number" in found
    select = {"name": "S", "unique_id": "s", "command_topic": "a/set", "device": DEVICE,
              "origin": ORIGIN}
    assert "required option 'options' is missing" in _problems(select, "select")
    climate = {"name": "C", "unique_id": "c", "device": DEVICE, "origin": ORIGIN,
               "modes": ["heat", "boil"], "precision": 0.2, "temperature_unit": "K",
               "unit_of_measurement": "°C"}
    found = _problems(climate, "climate")
    assert "boil" in found and "precision" in found and "temperature_unit" in found
    assert "'unit_of_measurement' is not in HA's climate schema" in found
    assert "HA_VERSION" not in found and rules.HA_VERSION.startswith("2025.")


def test_states_are_checked_against_their_entity() -> None:
    enum = _sensor(device_class="enum", options=["STOPPED", "RUNNING"],
                   value_template="{{ value_json.text }}")
    assert validate.state_problems("sensor", enum, b'{"value": 5, "text": "RUNNING"}') == []
    assert "not one of its options" in validate.state_problems(
        "sensor", enum, b'{"value": 9, "text": "EXPLODING"}')[0]
    number = _sensor(unit_of_measurement="V")
    assert "not a number" in validate.state_problems("sensor", number,
                                                     b'{"value": "n/a", "text": null}')[0]
    binary = {"unique_id": "b", "value_template": "{{ 'ON' if value_json.value else 'OFF' }}"}
    assert validate.state_problems("binary_sensor", binary, b'{"value": 0}') == []


def test_an_enum_code_no_table_names_is_shown_as_unknown() -> None:
    """A device may report a code the table has no option for (``UNKNOWN_7``, from
    ``pyburnerkit.types``): the sink's enum template renders it as ``None``, which Home
    Assistant reads as unknown, instead of a state HA rejects."""
    from pyburnerkit.recorder.sinks.mqtt import Discovery
    from pyburnerkit.semantics import Entity
    entity = Entity("State", device_class="enum", options=("STOPPED", "RUNNING"))
    payload = _sensor(**Discovery._sensor_options(entity))
    assert validate.render(payload["value_template"],
                           b'{"value": 5, "text": "RUNNING"}') == "RUNNING"
    assert validate.render(payload["value_template"],
                           b'{"value": 7, "text": "UNKNOWN_7"}') == "None"
    assert validate.state_problems("sensor", payload, b'{"value": 7, "text": "UNKNOWN_7"}') == []
    # a plain template would have shown the code, which HA refuses
    plain = dict(payload, value_template="{{ value_json.text }}")
    assert "not one of its options" in validate.state_problems(
        "sensor", plain, b'{"value": 7, "text": "UNKNOWN_7"}')[0]
