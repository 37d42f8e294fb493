"""Checks of MQTT discovery payloads and of the states they will show, against the rules
transcribed in :mod:`tests.ha.rules` (Home Assistant 2025.12.5).

Each check names the Home Assistant rule it stands for. Where Home Assistant would only drop
an option silently (an unknown key) or log a warning (a state class the device class does not
take), these checks fail too: the entity would not look the way the table says.
"""

from __future__ import annotations

import json
import re
from typing import Any, Dict, List, Mapping, Optional

import jinja2

from . import rules

#: homeassistant/components/mqtt/discovery.py: TOPIC_MATCHER (after the prefix)
DISCOVERY_TOPIC = re.compile(r"(?P<component>\w+)/(?:(?P<node_id>[a-zA-Z0-9_-]+)/)"
                             r"?(?P<object_id>[a-zA-Z0-9_-]+)/config")
#: an entity id's object part (homeassistant/core.py: valid_entity_id)
OBJECT_ID = re.compile(r"^(?!_)[a-z0-9_]+(?<!_)$")

_TOPIC_KEYS = re.compile(r".*_topic$")
_jinja = jinja2.Environment(undefined=jinja2.StrictUndefined)


def payload_problems(prefix: str, topic: str, payload: Mapping[str, Any]) -> List[str]:
    """Everything wrong with one retained discovery config (empty when it is valid)."""
    out: List[str] = []
    match = DISCOVERY_TOPIC.fullmatch(topic[len(prefix) + 1:]) \
        if topic.startswith(prefix + "/") else None
    if match is None:
        return [f"{topic}: not a discovery topic HA reads"]
    platform = match["component"]
    if platform not in rules.PLATFORM_KEYS:
        return [f"{topic}: platform {platform!r} is not one this project announces"]
    where = f"{platform} {payload.get('unique_id', topic)}"
    allowed = rules.COMMON_KEYS | rules.PLATFORM_KEYS[platform]
    for key in sorted(set(payload) - allowed):
        out.append(f"{where}: option {key!r} is not in HA's {platform} schema (dropped)")
    for key in sorted(rules.REQUIRED_KEYS[platform] - set(payload)):
        out.append(f"{where}: required option {key!r} is missing")
    out += _common_problems(where, platform, payload)
    check = _PLATFORM_CHECKS.get(platform)
    if check is not None:
        out += check(where, payload)
    return out


def _common_problems(where: str, platform: str, p: Mapping[str, Any]) -> List[str]:
    out = []
    if not p.get("unique_id"):
        out.append(f"{where}: no unique_id (HA could not keep the entity's settings)")
    device = p.get("device")
    if not isinstance(device, dict):
        out.append(f"{where}: no device block")
    else:
        for key in sorted(set(device) - rules.DEVICE_KEYS):
            out.append(f"{where}: device option {key!r} is not in HA's device schema")
        if not device.get("identifiers") and not device.get("connections"):
            out.append(f"{where}: the device has no identifiers")
        url = device.get("configuration_url")
        if url is not None and not re.match(r"(https?|homeassistant)://", str(url)):
            out.append(f"{where}: configuration_url {url!r} is not an http(s) URL")
        for key, value in device.items():
            if key not in ("identifiers", "connections") and not isinstance(value, str):
                out.append(f"{where}: device {key} must be text, got {value!r}")
    origin = p.get("origin")
    if not isinstance(origin, dict) or not origin.get("name"):
        out.append(f"{where}: origin block without a name")
    else:
        for key in sorted(set(origin) - rules.ORIGIN_KEYS):
            out.append(f"{where}: origin option {key!r} is not in HA's origin schema")
    for entry in p.get("availability", []):
        if not isinstance(entry, dict) or "topic" not in entry:
            out.append(f"{where}: availability entry without a topic: {entry!r}")
    if p.get("availability_mode", "latest") not in ("all", "any", "latest"):
        out.append(f"{where}: availability_mode {p['availability_mode']!r}")
    category = p.get("entity_category")
    if category is not None and category not in rules.ENTITY_CATEGORIES:
        out.append(f"{where}: entity_category {category!r}")
    if category == "config" and platform in rules.NO_CONFIG_CATEGORY:
        out.append(f"{where}: a {platform} cannot have entity_category config (HA refuses "
                   f"to add it)")
    if "icon" in p and ":" not in str(p["icon"]):
        out.append(f"{where}: icon {p['icon']!r} is not prefix:name")
    if not isinstance(p.get("enabled_by_default", True), bool):
        out.append(f"{where}: enabled_by_default must be true or false")
    if p.get("qos", 0) not in (0, 1, 2):
        out.append(f"{where}: qos {p['qos']!r}")
    for key in ("object_id",):
        if key in p and not OBJECT_ID.match(str(p[key])):
            out.append(f"{where}: {key} {p[key]!r} is not a valid entity id part")
    if "default_entity_id" in p:
        domain, _, object_id = str(p["default_entity_id"]).partition(".")
        if domain != platform or not OBJECT_ID.match(object_id):
            out.append(f"{where}: default_entity_id {p['default_entity_id']!r} is not "
                       f"{platform}.<object id>")
    for key, value in p.items():
        if _TOPIC_KEYS.match(key) and (not isinstance(value, str) or not value
                                       or "#" in value or "+" in value):
            out.append(f"{where}: {key} {value!r} is not a topic without wildcards")
        if key.endswith("_template"):
            try:
                _jinja.parse(value)
            except jinja2.TemplateSyntaxError as exc:
                out.append(f"{where}: {key} does not compile: {exc}")
    return out


def _unit_problems(where: str, device_class: Optional[str], unit: Optional[str]) -> List[str]:
    # mqtt/sensor.py validate_sensor_state_and_device_class_config: the unit must be one the
    # device class takes. A numeric class without a unit is checked too (HA would convert
    # nothing and show a bare number).
    if device_class is None or device_class not in rules.DEVICE_CLASS_UNITS:
        return []
    if unit not in rules.DEVICE_CLASS_UNITS[device_class]:
        return [f"{where}: unit {unit!r} is not valid with device class {device_class!r} "
                f"(HA takes {sorted(map(str, rules.DEVICE_CLASS_UNITS[device_class]))})"]
    return []


def _sensor(where: str, p: Mapping[str, Any]) -> List[str]:
    out = []
    device_class = p.get("device_class")
    state_class = p.get("state_class")
    unit = p.get("unit_of_measurement")
    options = p.get("options")
    if device_class is not None and device_class not in rules.SENSOR_DEVICE_CLASSES:
        out.append(f"{where}: sensor device class {device_class!r} does not exist")
    if state_class is not None and state_class not in rules.STATE_CLASSES:
        out.append(f"{where}: state class {state_class!r} does not exist")
    if options is not None:
        # mqtt/sensor.py: options need device class enum, and no state class or unit
        if not options:
            out.append(f"{where}: an empty options list")
        if state_class or unit:
            out.append(f"{where}: options together with a state class or unit")
        if device_class != "enum":
            out.append(f"{where}: options without device class enum")
    if device_class in rules.NON_NUMERIC_DEVICE_CLASSES and (unit or state_class):
        out.append(f"{where}: a {device_class} sensor with a unit or state class")
    if device_class == "enum" and options is None:
        out.append(f"{where}: an enum sensor without options")
    if state_class in rules.STATE_CLASS_UNITS and unit not in rules.STATE_CLASS_UNITS[
            state_class]:
        out.append(f"{where}: unit {unit!r} is not valid with state class {state_class!r}")
    out += _unit_problems(where, device_class, unit)
    if device_class is not None and state_class is not None \
            and device_class in rules.DEVICE_CLASS_STATE_CLASSES \
            and state_class not in rules.DEVICE_CLASS_STATE_CLASSES[device_class]:
        # sensor/__init__.py warns "state class ... impossible considering device class"
        out.append(f"{where}: state class {state_class!r} is impossible with device class "
                   f"{device_class!r} (HA takes "
                   f"{sorted(rules.DEVICE_CLASS_STATE_CLASSES[device_class])})")
    precision = p.get("suggested_display_precision")
    if precision is not None and (not isinstance(precision, int) or precision < 0):
        out.append(f"{where}: suggested_display_precision {precision!r}")
    if p.get("entity_category") is not None and state_class is not None \
            and p.get("entity_category") == "config":
        out.append(f"{where}: a setting with a state class")
    return out


def _binary_sensor(where: str, p: Mapping[str, Any]) -> List[str]:
    device_class = p.get("device_class")
    if device_class is not None and device_class not in rules.BINARY_SENSOR_DEVICE_CLASSES:
        return [f"{where}: binary sensor device class {device_class!r} does not exist"]
    return []


def _number(where: str, p: Mapping[str, Any]) -> List[str]:
    out = []
    device_class = p.get("device_class")
    if device_class is not None and device_class not in rules.NUMBER_DEVICE_CLASSES:
        out.append(f"{where}: number device class {device_class!r} does not exist")
    out += _unit_problems(where, device_class, p.get("unit_of_measurement"))
    low, high = float(p.get("min", 1)), float(p.get("max", 100))
    if low > high:
        out.append(f"{where}: min {low} > max {high}")
    if float(p.get("step", 1)) < 1e-3:
        out.append(f"{where}: step {p.get('step')} is below HA's 0.001")
    if p.get("mode", "auto") not in rules.NUMBER_MODES:
        out.append(f"{where}: number mode {p['mode']!r}")
    return out


def _select(where: str, p: Mapping[str, Any]) -> List[str]:
    options = p.get("options")
    if not isinstance(options, list) or not options \
            or not all(isinstance(o, str) for o in options):
        return [f"{where}: select options must be a non-empty list of text: {options!r}"]
    return []


def _switch(where: str, p: Mapping[str, Any]) -> List[str]:
    device_class = p.get("device_class")
    if device_class is not None and device_class not in rules.SWITCH_DEVICE_CLASSES:
        return [f"{where}: switch device class {device_class!r} does not exist"]
    return []


def _button(where: str, p: Mapping[str, Any]) -> List[str]:
    device_class = p.get("device_class")
    if device_class is not None and device_class not in rules.BUTTON_DEVICE_CLASSES:
        return [f"{where}: button device class {device_class!r} does not exist"]
    return []


def _climate(where: str, p: Mapping[str, Any]) -> List[str]:
    out = []
    modes = p.get("modes", [])
    if not set(modes) <= rules.HVAC_MODES:
        out.append(f"{where}: modes {modes!r} are not all HVAC modes")
    if "precision" in p and float(p["precision"]) not in rules.CLIMATE_PRECISIONS:
        out.append(f"{where}: precision {p['precision']!r}")
    if "temperature_unit" in p and str(p["temperature_unit"]).upper() \
            not in rules.TEMPERATURE_UNITS:
        out.append(f"{where}: temperature_unit {p['temperature_unit']!r} (C or F)")
    if "min_temp" in p and "max_temp" in p and float(p["min_temp"]) >= float(p["max_temp"]):
        out.append(f"{where}: min_temp >= max_temp")
    return out


_PLATFORM_CHECKS = {"sensor": _sensor, "binary_sensor": _binary_sensor, "number": _number,
                    "select": _select, "switch": _switch, "button": _button,
                    "climate": _climate}


# ------------------------------------------------------------------------------ states
def render(template: str, raw: bytes) -> str:
    """What Home Assistant's ``value_template`` makes of a state payload (``value_json``)."""
    return _jinja.from_string(template).render(value_json=json.loads(raw), value=raw.decode())


def state_problems(platform: str, payload: Mapping[str, Any], raw: bytes,
                   *, template_key: str = "value_template") -> List[str]:
    """Whether the state published for an entity is one Home Assistant accepts (the checks
    of sensor/__init__.py's ``native_value`` handling, select.py and switch.py)."""
    where = f"{platform} {payload.get('unique_id')}"
    template = payload.get(template_key)
    if template is None:
        return []
    try:
        shown = render(template, raw)
    except jinja2.UndefinedError as exc:
        return [f"{where}: {template_key} fails on {raw!r}: {exc}"]
    if platform == "sensor":
        if payload.get("device_class") == "enum":
            # mqtt/sensor.py: the payload "None" (PAYLOAD_NONE) makes the state unknown
            if shown != rules.PAYLOAD_NONE and shown not in payload.get("options", []):
                return [f"{where}: state {shown!r} is not one of its options "
                        f"{payload.get('options')}"]
            return []
        numeric = any(k in payload for k in ("unit_of_measurement", "state_class",
                                             "suggested_display_precision")) \
            or payload.get("device_class") not in (None, "enum", "date", "timestamp")
        if numeric:
            try:
                float(shown)
            except ValueError:
                return [f"{where}: state {shown!r} is not a number ({raw!r})"]
        return []
    if platform in ("binary_sensor", "switch"):
        ok = {payload.get("payload_on", "ON"), payload.get("payload_off", "OFF"), "None"}
        if shown not in ok:
            return [f"{where}: state {shown!r} is not ON/OFF ({raw!r})"]
    if platform == "select" and shown not in payload.get("options", []):
        return [f"{where}: state {shown!r} is not one of its options {payload.get('options')}"]
    if platform == "number":
        try:
            float(shown)
        except ValueError:
            return [f"{where}: state {shown!r} is not a number ({raw!r})"]
    return []


def climate_state_problems(payload: Mapping[str, Any], states: Mapping[str, bytes]
                           ) -> List[str]:
    """The states a climate entity reads from its topics."""
    out = []
    where = f"climate {payload.get('unique_id')}"
    for topic_key, template_key, kind in (
            ("current_temperature_topic", "current_temperature_template", "number"),
            ("temperature_state_topic", "temperature_state_template", "number"),
            ("mode_state_topic", "mode_state_template", "mode")):
        raw = states.get(payload.get(topic_key, ""))
        if raw is None or template_key not in payload:
            continue
        shown = render(payload[template_key], raw)
        if kind == "number":
            try:
                float(shown)
            except ValueError:
                out.append(f"{where}: {topic_key} shows {shown!r}, not a number")
        elif shown not in payload.get("modes", []):
            out.append(f"{where}: mode {shown!r} is not one of {payload.get('modes')}")
    return out


def by_device(configs: Mapping[str, Mapping[str, Any]]) -> Dict[str, List[Mapping[str, Any]]]:
    """Discovery payloads grouped by the HA device they belong to."""
    out: Dict[str, List[Mapping[str, Any]]] = {}
    for payload in configs.values():
        out.setdefault(payload["device"]["identifiers"][0], []).append(payload)
    return out
