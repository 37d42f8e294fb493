"""MQTT sink with Home Assistant discovery and commands (paho-mqtt 2.x; ``pip install
"pyburnerkit[mqtt]"``).

Topics (``root`` defaults to ``pyburnerkit``; names are made topic-safe: ``/Dc/0/Voltage`` ->
``Dc_0_Voltage``)::

    <root>/status                                   "online" (retained); last will "offline"
    <root>/<family>/<device>/availability           "online" / "offline" (retained)
    <root>/<family>/<device>[/<channel>]/<field>    {"value": 21.5, "unit": "°C", "ts": ...,
                                                     "text": null, "uid": "..."}   QoS 1
    <root>/<family>/<device>[/<channel>]/<field>/set        a command (with a router)
    <root>/<family>/<device>[/<channel>]/<field>/mode/set   a climate's mode command
    <root>/<family>/<device>/error                  {"field", "payload", "error"} of a refused
                                                    command (not retained)
    <root>/alerts/<rule>/<device>                   alert state (retained)

Home Assistant discovery (``discovery=True``) reads each family's semantic table
(:mod:`pyburnerkit.semantics`; a family without one, or a field the table does not know, is a
disabled diagnostic sensor named by its key): one retained config per entity at
``<prefix>/<platform>/<node>/<field>/config``, or, with ``discovery_mode="device"``, one
device-based config per Home Assistant device at ``<prefix>/device/<node>/config`` (HA
2024.11+). What is announced, and why, is described in ``docs/home-assistant.rst``:

* **platform** by the entity's kind: ``sensor`` (``enum`` with ``options`` for enumerations),
  ``binary_sensor``, and, when a :class:`CommandRouter` is attached and says the field may be
  changed on that device, ``number``/``select``/``switch``/``button``/``climate`` with a
  ``command_topic``. Otherwise a setting is announced read-only (a number or select as a
  ``sensor``, a switch as a ``binary_sensor``, a climate as a sensor of its set point; a
  ``config`` category becomes ``diagnostic``, which is all HA allows on sensors) and a button
  is not announced.
* **topology**: one HA device per physical device. A family whose table says
  ``per_channel`` (a Mate3's HUB ports, a cycler's channels, Victron services) gets one device
  per channel, linked to the family device by ``via_device``; a channel named after the family
  (the Mate3's own registers) belongs to the family device. The device block has the
  manufacturer (registry), the model (table, or what the source reports), the serial number
  and firmware when the source knows them (its ``device_info(channel)``), and
  ``configuration_url`` when given. Every family device also gets a
  ``Connection`` connectivity sensor that follows the device's link.
* **hygiene**: stable ``unique_id`` (``pyburnerkit_<family>_<device>[_<channel>]_<field>``,
  unchanged since the first releases), a readable ``default_entity_id``/``object_id``, an
  ``origin`` block with the package version, availability of the recorder (with a last will)
  and of the device. A config superseded by another topic for the same unique id (the entity
  changed platform or device, or an older release's layout is still retained on the broker)
  is deleted with an empty retained payload; discovery is re-sent when ``<prefix>/status``
  says ``online``.

Delivery: every publish is QoS 1 and a batch counts as written only when the broker acknowledged
all of it; otherwise the whole batch is spooled and sent again (at least once). Commands are
never retried: a refused or failed one is published on the error topic and logged.
"""

from __future__ import annotations

import functools
import itertools
import json
import logging
import os
import re
import ssl
import threading
import time
import unicodedata
from dataclasses import dataclass, field as dc_field, replace
from typing import (Any, Callable, Dict, Iterable, List, Mapping, Optional, Protocol, Sequence,
                    Set, Tuple)

from ..._core.extras import require
from ...errors import ConfigurationError
from ...semantics import UNKNOWN, Entity, FieldTable
from ..samples import FieldMeta, Message, Sample, normalise_value, slug
from ..sources import DEVICE_INFO_KEYS, field_table, live_source, table_lookup
from .base import Item, Sink

log = logging.getLogger(__name__)

__all__ = ["MqttSink", "CommandRouter", "Reply", "FieldRef", "Announcement", "Discovery",
           "state_topic", "unique_id", "device_id"]

ORIGIN_URL = "https://github.com/pyburnerkit/pyburnerkit"

#: ``reply(ok, message, value)``: how a router reports the outcome of one command
Reply = Callable[[bool, str, Any], None]


class CommandRouter(Protocol):
    """What the MQTT sink needs from the command router (``pyburnerkit.recorder.commands``).

    The payloads the router receives are the ones Home Assistant publishes for the entities
    this sink announces: a ``number``'s value as text (``"22.5"``), a ``select``'s option,
    ``"ON"``/``"OFF"`` for a ``switch``, ``"PRESS"`` for a ``button``; for a ``climate`` (the
    table's field of kind climate) the target temperature as text (``"21.0"``) or, from its
    mode topic, ``"heat"`` / ``"off"`` - both under the climate's own field name.
    """

    def controllable(self, family: str, device: str, channel: str, field: str) -> bool:
        """Whether commands for ``field`` of that device would be carried out (writes allowed
        by the device's config, the field safe or opted in). Called on the sink's worker
        thread when it builds discovery; must not block."""
        ...

    def submit(self, family: str, device: str, channel: str, field: str, payload: str,
               reply: Reply) -> None:
        """Run one command without blocking the caller (the MQTT network thread): the router
        validates and runs it on a thread of its own, then calls ``reply(ok, message,
        value)`` exactly once from that thread - ``value`` is the confirmed new value (or
        None for an action). Never retried."""
        ...


# --------------------------------------------------------------------------------- naming
def state_topic(root: str, family: str, device: str, channel: str, field: str) -> str:
    parts = [root, slug(family), slug(device)]
    if channel:
        parts.append(slug(channel))
    parts.append(slug(field))
    return "/".join(parts)


def unique_id(family: str, device: str, channel: str, field: str) -> str:
    parts = ["pyburnerkit", family, device] + ([channel] if channel else []) + [field]
    return slug("_".join(slug(p) for p in parts)).lower()


def device_id(family: str, device: str, channel: str = "") -> str:
    """The Home Assistant device identifier (and discovery node id) of a device, or of one of
    its channels when the channel is a physical device of its own."""
    base = f"pyburnerkit_{slug(family)}_{slug(device)}"
    return slug(f"{base}_{slug(channel)}" if channel else base).lower()


def _entity_slug(*parts: str) -> str:
    """An entity id's object part as Home Assistant makes one: ASCII, lower case, words
    joined by ``_``."""
    text = unicodedata.normalize("NFKD", " ".join(p for p in parts if p))
    text = text.encode("ascii", "ignore").decode().lower()
    return re.sub(r"[^a-z0-9]+", "_", text).strip("_") or "entity"


def _manufacturer(family: str) -> str:
    """The manufacturer the family registry names; the family itself for an unknown one."""
    from ...families import families
    for entry in families():
        if entry.name == family:
            return entry.manufacturer or family
    return family


def _climate_unit(unit: str) -> Optional[str]:
    return {"°C": "C", "°F": "F"}.get(unit)


# --------------------------------------------------------------------------------- builder
@dataclass(frozen=True)
class FieldRef:
    """One field of one device (the recorder's names, not the topic-safe ones)."""

    family: str
    device: str
    channel: str
    field: str


@dataclass(frozen=True)
class Announcement:
    """One Home Assistant entity: where its config goes, the config, and the command topics
    it listens to (``topic -> (field, aspect)``; aspect ``"value"`` or ``"mode"``)."""

    platform: str
    node: str
    object_path: str
    payload: Dict[str, Any]
    prefix: str
    commands: Mapping[str, Tuple[FieldRef, str]] = dc_field(default_factory=dict)

    @property
    def topic(self) -> str:
        return f"{self.prefix}/{self.platform}/{self.node}/{self.object_path}/config"

    @property
    def unique_id(self) -> str:
        uid: str = self.payload["unique_id"]
        return uid


#: what the sink remembers of a field: its entity, the unit its samples carry, whether the
#: device reports it (an action does not)
@dataclass(frozen=True)
class _Known:
    entity: Entity
    unit: str = ""
    sampled: bool = True


#: device classes whose state is not a number
_NON_NUMERIC = ("enum", "date", "timestamp")


class Discovery:
    """Builds Home Assistant discovery configs from the semantic tables. Pure: no I/O, no
    threads; every method returns new objects. The sink holds one; tests use it directly.

    :param prefix: the discovery prefix (``homeassistant``).
    :param root: the sink's topic root.
    :param qos: the QoS Home Assistant uses for state and command topics.
    :param version: the package version (the ``origin`` block).
    :param configuration_url: where a device is configured (the HTTP service), or None.
    """

    def __init__(self, prefix: str, root: str, *, qos: int = 1, version: str = "",
                 configuration_url: Optional[str] = None) -> None:
        self.prefix = prefix
        self.root = root
        self.qos = qos
        self.version = version
        self.configuration_url = configuration_url

    # -- placement ------------------------------------------------------------------------
    @staticmethod
    def is_channel_device(family: str, channel: str, table: Optional[FieldTable]) -> bool:
        """Whether ``channel`` is a Home Assistant device of its own."""
        return bool(table is not None and table.per_channel and channel
                    and slug(channel).lower() != slug(family).lower())

    def node(self, ref: FieldRef, table: Optional[FieldTable]) -> str:
        if self.is_channel_device(ref.family, ref.channel, table):
            return device_id(ref.family, ref.device, ref.channel)
        return device_id(ref.family, ref.device)

    def device_block(self, family: str, device: str, channel: str,
                     table: Optional[FieldTable], info: Mapping[str, str],
                     family_info: Optional[Mapping[str, str]] = None) -> Dict[str, Any]:
        """The ``device`` block of the HA device holding ``channel`` (``info``: what the
        source reports for that channel; ``family_info``: for the family device)."""
        family_info = family_info or {}
        own = self.is_channel_device(family, channel, table)
        model = (table.model if table is not None else "") or family
        if own:
            block: Dict[str, Any] = {
                "identifiers": [device_id(family, device, channel)],
                "name": f"{family} {device} {info.get('name') or channel}",
                "via_device": device_id(family, device)}
            details = info
        else:
            block = {"identifiers": [device_id(family, device)], "name": f"{family} {device}"}
            details = family_info if channel else info
        block["manufacturer"] = _manufacturer(family)
        block["model"] = details.get("model") or model
        for key in ("serial_number", "sw_version", "hw_version"):
            if details.get(key):
                block[key] = details[key]
        if self.configuration_url:
            block["configuration_url"] = self.configuration_url
        return block

    def _common(self, ref: FieldRef, entity: Entity, platform: str, object_id: str,
                device: Dict[str, Any], uid: str) -> Dict[str, Any]:
        payload: Dict[str, Any] = {
            "name": entity.name or ref.field,
            "unique_id": uid,
            # object_id for Home Assistant before 2025.10, default_entity_id after it
            "object_id": object_id,
            "default_entity_id": f"{platform}.{object_id}",
            "availability": [
                {"topic": f"{self.root}/status"},
                {"topic": f"{self.root}/{slug(ref.family)}/{slug(ref.device)}/availability"},
            ],
            "availability_mode": "all",
            "qos": self.qos,
            "enabled_by_default": bool(entity.enabled),
            "device": device,
            "origin": {"name": "pyburnerkit", "sw_version": self.version,
                       "support_url": ORIGIN_URL},
        }
        if entity.category:
            payload["entity_category"] = entity.category
        if entity.icon:
            payload["icon"] = entity.icon
        return payload

    def link_entity(self, family: str, device: str, device_block: Dict[str, Any],
                    object_prefix: str) -> Announcement:
        """The family device's ``Connection`` sensor: on while the device's link is up. Its
        availability is the recorder's only, so a dropped link reads "off", not
        "unavailable"."""
        node = device_id(family, device)
        object_id = _entity_slug(object_prefix, "connection")
        payload = {
            "name": "Connection",
            "unique_id": unique_id(family, device, "", "link"),
            "object_id": object_id,
            "default_entity_id": f"binary_sensor.{object_id}",
            "state_topic": f"{self.root}/{slug(family)}/{slug(device)}/availability",
            "payload_on": "online", "payload_off": "offline",
            "device_class": "connectivity", "entity_category": "diagnostic",
            "enabled_by_default": True,
            "availability": [{"topic": f"{self.root}/status"}],
            "qos": self.qos, "device": device_block,
            "origin": {"name": "pyburnerkit", "sw_version": self.version,
                       "support_url": ORIGIN_URL},
        }
        return Announcement("binary_sensor", node, "connection", payload, self.prefix)

    # -- one entity -----------------------------------------------------------------------
    def announce(self, ref: FieldRef, known: _Known, *, table: Optional[FieldTable],
                 device: Dict[str, Any], object_id: Callable[[str], str],
                 controllable: Callable[[FieldRef], bool]) -> Optional[Announcement]:
        """The announcement of one field, or None when it is not announced (a button nobody
        may press, a setting the device does not report that nobody may change).
        ``object_id(name)``: the entity id's object part for the entity's name;
        ``controllable(ref)``: whether a command router takes commands for the field."""
        entity = known.entity
        kind = entity.kind
        writable = entity.control is not None and kind != "sensor" \
            and kind != "binary_sensor" and controllable(ref)
        if (kind == "button" or not known.sampled) and not writable:
            return None
        if kind == "climate" and writable:
            return self._climate(ref, known, table, device, object_id(entity.name))
        if kind in ("number", "select", "switch", "climate") and not writable:
            entity = self._read_only(entity)
            kind = entity.kind
        uid = unique_id(ref.family, ref.device, ref.channel, ref.field)
        topic = state_topic(self.root, ref.family, ref.device, ref.channel, ref.field)
        node = self.node(ref, table)
        own = self.is_channel_device(ref.family, ref.channel, table)
        object_path = slug(ref.field if own or not ref.channel
                           else f"{ref.channel}_{ref.field}")
        payload = self._common(ref, entity, kind, object_id(entity.name or ref.field), device,
                               uid)
        commands: Dict[str, Tuple[FieldRef, str]] = {}
        if kind == "sensor":
            payload["state_topic"] = topic
            payload.update(self._sensor_options(entity))
        elif kind == "binary_sensor":
            payload["state_topic"] = topic
            payload["value_template"] = "{{ 'ON' if value_json.value else 'OFF' }}"
            if entity.device_class:
                payload["device_class"] = entity.device_class
        else:
            control = entity.control
            assert control is not None  # writable
            payload["command_topic"] = f"{topic}/set"
            commands[f"{topic}/set"] = (ref, "value")
            if kind != "button":
                payload["state_topic"] = topic
            if kind == "number":
                payload["value_template"] = "{{ value_json.value }}"
                payload["mode"] = "box"  # typed, not dragged: these are device settings
                for key, value in (("min", control.minimum), ("max", control.maximum),
                                   ("step", control.step)):
                    if value is not None:
                        payload[key] = value
                if entity.unit:
                    payload["unit_of_measurement"] = entity.unit
                if entity.device_class:
                    payload["device_class"] = entity.device_class
            elif kind == "select":
                payload["value_template"] = _TEXT_TEMPLATE
                payload["options"] = list(entity.options or (control.choices or {}))
            elif kind == "switch":
                on, off = json.dumps(control.on), json.dumps(control.off)
                payload["value_template"] = (
                    "{{ 'ON' if value_json.value == %s else ('OFF' if value_json.value == %s"
                    " else 'None') }}" % (on, off))
                if entity.device_class:
                    payload["device_class"] = entity.device_class
            elif kind == "button":
                if entity.device_class:
                    payload["device_class"] = entity.device_class
        return Announcement(kind, node, object_path, payload, self.prefix, commands)

    @staticmethod
    def _read_only(entity: Entity) -> Entity:
        """A setting nobody may change, shown as what it reads (HA allows no ``config``
        category on sensors)."""
        category = "diagnostic" if entity.category == "config" else entity.category
        if entity.kind == "switch":
            return replace(entity, kind="binary_sensor", category=category, control=None)
        if entity.kind == "select":
            options = entity.options
            if not options and entity.control is not None:
                options = tuple(entity.control.choices or {})
            return replace(entity, kind="sensor", category=category, device_class="enum",
                           options=tuple(options), unit="", state_class=None, control=None)
        if entity.kind == "climate":
            device_class = "temperature" if _climate_unit(entity.unit) else None
            return replace(entity, kind="sensor", name=f"{entity.name} set point",
                           category=category, device_class=device_class, state_class=None,
                           control=None, links={})
        return replace(entity, kind="sensor", category=category, state_class=None,
                       control=None)

    @staticmethod
    def _sensor_options(entity: Entity) -> Dict[str, Any]:
        out: Dict[str, Any] = {}
        if entity.device_class == "enum" or entity.options:
            out["value_template"] = _enum_template(entity.options)
            out["device_class"] = "enum"
            out["options"] = list(entity.options)
            return out
        # Home Assistant expects a number whenever any of these is set
        numeric = bool(entity.unit or entity.state_class or entity.precision is not None
                       or (entity.device_class and entity.device_class not in _NON_NUMERIC))
        out["value_template"] = "{{ value_json.value }}" if numeric else _TEXT_TEMPLATE
        if entity.unit:
            out["unit_of_measurement"] = entity.unit
        if entity.device_class:
            out["device_class"] = entity.device_class
        if entity.state_class:
            out["state_class"] = entity.state_class
        if entity.precision is not None:
            out["suggested_display_precision"] = entity.precision
        return out

    def _climate(self, ref: FieldRef, known: _Known, table: Optional[FieldTable],
                 device: Dict[str, Any], object_id: str) -> Announcement:
        """The heater as a thermostat: set point, current temperature, heat/off."""
        entity = known.entity
        control = entity.control
        assert control is not None
        topic = state_topic(self.root, ref.family, ref.device, ref.channel, ref.field)
        uid = unique_id(ref.family, ref.device, ref.channel, ref.field)
        payload = self._common(ref, entity, "climate", object_id, device, uid)
        payload.update({
            "temperature_state_topic": topic,
            "temperature_state_template": "{{ value_json.value }}",
            "temperature_command_topic": f"{topic}/set",
            "modes": ["off", "heat"],
            "mode_command_topic": f"{topic}/mode/set",
            "optimistic": False,
        })
        commands = {f"{topic}/set": (ref, "value"), f"{topic}/mode/set": (ref, "mode")}
        current = entity.links.get("current")
        if current:
            payload["current_temperature_topic"] = state_topic(
                self.root, ref.family, ref.device, ref.channel, current)
            payload["current_temperature_template"] = "{{ value_json.value }}"
        mode = entity.links.get("mode")
        if mode:
            # the run state is a number: 0 is stopped, anything else means the heater is on
            payload["mode_state_topic"] = state_topic(self.root, ref.family, ref.device,
                                                      ref.channel, mode)
            payload["mode_state_template"] = "{{ 'off' if value_json.value == 0 else 'heat' }}"
        for key, value in (("min_temp", control.minimum), ("max_temp", control.maximum),
                           ("temp_step", control.step)):
            if value is not None:
                payload[key] = value
        step = control.step or 1.0
        payload["precision"] = 1.0 if step >= 1 else (0.5 if step >= 0.5 else 0.1)
        unit = _climate_unit(entity.unit)
        if unit:
            payload["temperature_unit"] = unit
        own = self.is_channel_device(ref.family, ref.channel, table)
        object_path = slug(ref.field if own or not ref.channel else f"{ref.channel}_{ref.field}")
        return Announcement("climate", self.node(ref, table), object_path, payload, self.prefix,
                            commands)


_UNSET: Any = object()

#: a text state: the enum name when the value has one, else the value itself
_TEXT_TEMPLATE = "{{ value_json.text if value_json.text is not none else value_json.value }}"


def _enum_template(options: Sequence[str]) -> str:
    """An enum sensor's template: its text when it is one of ``options``, else ``None``, which
    Home Assistant's MQTT sensor reads as *unknown* (``PAYLOAD_NONE``). A device may report a
    code no table names (``UNKNOWN_7``); HA would reject the state as not an option."""
    return ("{%% set v = (value_json.text if value_json.text is not none else value_json.value)"
            " | string %%}{{ v if v in %s else 'None' }}"
            % json.dumps(list(options), ensure_ascii=False))

def device_discovery_config(prefix: str, node: str,
                            entities: Sequence[Announcement]) -> Tuple[str, Dict[str, Any]]:
    """The (topic, payload) of one Home Assistant *device-based* discovery config
    (``<prefix>/device/<node>/config``, HA 2024.11+) from the announcements of one device:
    device, origin and qos once, one ``components`` entry per entity keyed by its unique id
    with its ``platform``. Availability stays per component (the link sensor has its own)."""
    first = entities[0].payload
    payload: Dict[str, Any] = {k: first[k] for k in ("device", "origin", "qos") if k in first}
    components: Dict[str, Any] = {}
    for ann in entities:
        component: Dict[str, Any] = {"platform": ann.platform}
        component.update((k, v) for k, v in ann.payload.items()
                         if k not in ("device", "origin", "qos"))
        components[ann.unique_id] = component
    payload["components"] = components
    return f"{prefix}/device/{node}/config", payload


def _close_orphan_sockets(exc: BaseException) -> None:
    """Close sockets left in the frames of a failed ``connect()``.

    paho-mqtt 2.x does not close its TLS socket when the handshake fails (certificate not
    trusted); the socket would stay open until garbage collection and then warn.
    """
    import socket as _socket
    tb = exc.__traceback__
    while tb is not None:
        for value in list(tb.tb_frame.f_locals.values()):
            if isinstance(value, _socket.socket):
                try:
                    value.close()
                except OSError:
                    pass
        tb = tb.tb_next


_CONFIG_TOPIC = re.compile(r"(?P<platform>[^/]+)/(?P<node>[^/]+)/(?P<object>[^/]+)/config")


class MqttSink(Sink):
    """Publish samples to an MQTT broker, with Home Assistant discovery and commands.

    :param host: the broker's host name or address.
    :param port: the broker's port (8883 is usual with ``tls=True``).
    :param topic_root: the first level of every topic.
    :param username: broker user name.
    :param password: broker password (it never appears in logs).
    :param tls: use TLS; ``ca_certs`` (a CA file; default: the system store), ``certfile`` /
        ``keyfile`` (client certificate), ``tls_insecure`` (skip host name checks).
    :param discovery: publish Home Assistant discovery configs under ``discovery_prefix``.
    :param discovery_mode: ``"component"`` (one config per entity, every HA version) or
        ``"device"`` (one config per HA device with a ``components`` map, HA 2024.11+). Do
        not switch an installation between the two without removing the old retained
        configs: both carry the same unique ids.
    :param configuration_url: shown on every device's page in Home Assistant (the HTTP
        service's address), or None.
    :param qos: 1 (default) or 0; 0 gives up the delivery guarantee.
    :param ack_timeout: seconds to wait for the broker to acknowledge a batch.
    """

    wants_messages = True

    def __init__(self, host: str = "localhost", port: int = 1883, *, name: str = "mqtt",
                 topic_root: str = "pyburnerkit", username: Optional[str] = None,
                 password: Optional[str] = None, tls: bool = False,
                 ca_certs: Optional[str] = None, certfile: Optional[str] = None,
                 keyfile: Optional[str] = None, tls_insecure: bool = False,
                 client_id: Optional[str] = None, keepalive: int = 30, qos: int = 1,
                 discovery: bool = True, discovery_prefix: str = "homeassistant",
                 discovery_mode: str = "component", configuration_url: Optional[str] = None,
                 connect_timeout: float = 5.0, ack_timeout: float = 10.0) -> None:
        require("paho.mqtt.client", "mqtt")
        if not isinstance(host, str) or not host:
            raise ConfigurationError(f"MQTT host must be a host name, got {host!r}")
        if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
            raise ConfigurationError(f"MQTT port={port!r} is out of range: the limit is 1..65535")
        for label, value in (("connect_timeout", connect_timeout),
                             ("ack_timeout", ack_timeout), ("keepalive", keepalive)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
                raise ConfigurationError(
                    f"MQTT {label}={value!r} must be a positive number of seconds")
        if discovery_mode not in ("component", "device"):
            raise ConfigurationError(
                f"MQTT discovery_mode={discovery_mode!r} must be 'component' (one config per "
                f"field) or 'device' (one config per device, Home Assistant 2024.11+)")
        if qos not in (0, 1):
            raise ConfigurationError(f"MQTT qos={qos!r} must be 0 or 1")
        for label, topic in (("topic_root", topic_root), ("discovery_prefix", discovery_prefix)):
            if not isinstance(topic, str) or not topic or any(c in topic for c in "#+") \
                    or topic.startswith("/") or topic.endswith("/"):
                raise ConfigurationError(
                    f"MQTT {label}={topic!r} must be a topic without wildcards or outer '/'")
        if configuration_url is not None and (
                not isinstance(configuration_url, str)
                or not re.match(r"(https?|homeassistant)://", configuration_url)):
            raise ConfigurationError(f"MQTT configuration_url={configuration_url!r} must be "
                                     f"an http:// or https:// address")
        from ... import __version__
        self.host = host
        self.port = port
        self.name = name
        self.root = topic_root
        self.username = username
        self._password = password
        self.tls = bool(tls)
        self.ca_certs = ca_certs
        self.certfile = certfile
        self.keyfile = keyfile
        self.tls_insecure = tls_insecure
        self.client_id = client_id or f"pyburnerkit-recorder-{slug(name)}-{id(self) & 0xffff:x}"
        self.keepalive = keepalive
        self.qos = qos
        self.discovery = discovery
        self.prefix = discovery_prefix
        self.discovery_mode = discovery_mode
        self.configuration_url = configuration_url
        self.builder = Discovery(discovery_prefix, topic_root, qos=qos, version=__version__,
                                 configuration_url=configuration_url)
        self.connect_timeout = connect_timeout
        self.ack_timeout = ack_timeout
        self._client: Any = None
        self._connected = threading.Event()
        self._connack = threading.Event()
        self._connect_rc: Any = None
        self._lock = threading.Lock()
        self._router: Optional[CommandRouter] = None
        # -- discovery state (under _lock) --
        self._fields: Dict[FieldRef, _Known] = {}
        self._dirty: Set[FieldRef] = set()
        self._places: Set[Tuple[str, str, str]] = set()     # (family, device, channel) seen
        self._devices_online: Set[Tuple[str, str]] = set()
        self._links: Set[Tuple[str, str]] = set()            # family devices with a link sensor
        self._configs: Dict[str, Dict[str, Any]] = {}         # topic -> payload (announced)
        self._ref_topic: Dict[Any, str] = {}                  # field (or link) -> its topic
        self._uid_topic: Dict[str, str] = {}                  # unique id -> its topic
        self._sent: Dict[str, str] = {}                       # topic -> JSON last published
        # config topic -> [publish handle, entities in it, entities the broker acknowledged]:
        # what `announced` reports is only what the broker confirmed
        self._config_acks: Dict[str, List[Any]] = {}
        self._deletes: Set[str] = set()                        # config topics to clear
        self._broker_configs: Dict[str, str] = {}             # retained config -> unique id
        self._nodes: Set[str] = set()                          # nodes whose configs we read
        self._commands: Dict[str, Tuple[FieldRef, str]] = {}
        self._state_refs: Dict[str, FieldRef] = {}            # state topic -> field
        self._announcements: Dict[str, Announcement] = {}     # topic -> what it announces
        self._removed: Dict[str, Dict[str, str]] = {}         # node -> uid -> platform
        self._info: Dict[Tuple[str, str, str], Dict[str, str]] = {}  # worker thread only
        self._labelers: Dict[Tuple[str, str, str, str], Any] = {}    # worker thread only
        self._next_info_check = 0.0
        #: seconds between two looks at what the sources know of their devices
        self.info_interval = 30.0
        self._object_ids: Dict[str, Dict[str, Any]] = {}      # node -> object id -> owner
        #: the last retained message written per topic (device availability, alert states):
        #: re-published on every (re)connection, since a broker restarted without persistence
        #: has forgotten them, and never contradicted by a default "online"
        self._retained: Dict[str, str] = {}
        self._republish = False
        self._reply_ids = itertools.count(1)
        self._run_id = os.urandom(4).hex()
        self.wake: Any = None  # set by the worker: asks it to call maintain()
        self.discovery_published = 0
        self.commands_received = 0

    def __repr__(self) -> str:
        return f"<MqttSink {self.name} {self.host}:{self.port} root={self.root}>"

    def identity(self) -> str:
        return f"mqtt:{self.host}:{self.port}/{self.root}"

    # -- commands (before open) ---------------------------------------------------------------
    def attach_commands(self, router: CommandRouter) -> None:
        """Take Home Assistant's commands to ``router``: controllable entities get a
        ``command_topic`` and the sink subscribes to them. Call before the recorder opens the
        sink (a later call takes effect at the next connection)."""
        with self._lock:
            self._router = router
            self._dirty.update(self._fields)

    # -- discovery bookkeeping (any thread) ---------------------------------------------------
    def describe(self, family: str, device: str, channel: str, field: str,
                 meta: FieldMeta) -> None:
        if not self.discovery:
            return
        table = field_table(family)
        entity = table_lookup(table, field, channel)
        if entity is None:
            # no table knows it: a disabled diagnostic named by its key, with the unit it
            # came with (the recorder gives text values none)
            entity = replace(UNKNOWN, name=meta.name or field, unit=meta.unit)
        ref = FieldRef(family, device, channel, field)
        known = _Known(entity, meta.unit)
        with self._lock:
            self._devices_online.add((family, device))
            place = (family, device, channel)
            if place not in self._places:
                self._places.add(place)
                self._add_actions(family, device, channel, table)
            if ref not in self._fields or not self._fields[ref].sampled:
                self._fields[ref] = known
                self._dirty.add(ref)
                self._state_refs[state_topic(self.root, family, device, channel, field)] = ref
            if (family, device) not in self._links:
                self._links.add((family, device))
                self._dirty.add(FieldRef(family, device, "", ""))  # the link sensor

    def _add_actions(self, family: str, device: str, channel: str,
                     table: Optional[FieldTable]) -> None:
        """Entities the device never reports (buttons; switches such as pump priming whose
        state is the last confirmed command) are announced when the device is first seen;
        the router decides which appear. Caller holds ``_lock``."""
        if table is None:
            return
        kinds = ("button",) if table.per_channel else ("button", "switch")
        for name, entity in table.controls().items():
            if entity.kind in kinds:
                ref = FieldRef(family, device, channel, name)
                if ref not in self._fields:
                    self._fields[ref] = _Known(entity, "", sampled=False)
                    self._dirty.add(ref)
                    self._state_refs[state_topic(self.root, family, device, channel,
                                                 name)] = ref

    @property
    def configs(self) -> Dict[str, Dict[str, Any]]:
        """Every config built so far: discovery topic -> payload. Built is not announced:
        :attr:`announced` counts what the broker acknowledged."""
        with self._lock:
            return dict(self._configs)

    @property
    def announced(self) -> int:
        """Home Assistant entities whose discovery config the broker acknowledged (QoS 1,
        retained), and not deleted since. 0 while the broker was never reached. Any thread;
        never blocks."""
        with self._lock:
            total = 0
            for entry in self._config_acks.values():
                info, count = entry[0], entry[1]
                if info is not None and info.is_published():
                    entry[2] = count
                total += entry[2]
            return total

    def _track_config(self, topic: str, info: Any, count: int) -> None:
        """Remember the publish of a config (``count`` entities) until the broker acks it."""
        with self._lock:
            entry = self._config_acks.setdefault(topic, [None, 0, 0])
            entry[0], entry[1] = info, count

    def report(self) -> str:
        """How many Home Assistant entities the broker acknowledged (or that it
        acknowledged none although there were some to announce)."""
        if not self.discovery:
            return ""
        acked = self.announced
        with self._lock:
            built = len(self._fields) + len(self._links)
        if acked:
            return f"{acked} Home Assistant entities announced (acknowledged by the broker)"
        if built:
            return "NO Home Assistant entity announced (the broker acknowledged none)"
        return ""

    # -- worker thread ------------------------------------------------------------------------
    def open(self) -> None:
        mqtt = require("paho.mqtt.client", "mqtt")
        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=self.client_id,
                             protocol=mqtt.MQTTv311, reconnect_on_failure=False)
        client.max_inflight_messages_set(1000)
        client.max_queued_messages_set(0)
        client.will_set(f"{self.root}/status", "offline", qos=1, retain=True)
        if self.username is not None:
            client.username_pw_set(self.username, self._password)
        if self.tls:
            client.tls_set(ca_certs=self.ca_certs, certfile=self.certfile, keyfile=self.keyfile,
                           cert_reqs=ssl.CERT_REQUIRED)
            if self.tls_insecure:
                client.tls_insecure_set(True)
        self._connected.clear()
        self._connack.clear()
        self._connect_rc = None
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        self._client = client
        try:
            client.connect(self.host, self.port, self.keepalive)  # OSError when refused
        except Exception as exc:
            _close_orphan_sockets(exc)
            raise
        client.loop_start()
        if not self._connack.wait(self.connect_timeout):
            raise ConnectionError(f"MQTT broker {self.host}:{self.port} did not answer the "
                                  f"connection within {self.connect_timeout:g} s")
        if not self._connected.is_set():
            raise ConnectionError(f"MQTT broker {self.host}:{self.port} refused the "
                                  f"connection: {self._connect_rc}")
        infos = [client.publish(f"{self.root}/status", "online", qos=1, retain=True)]
        with self._lock:
            router = self._router
            self._nodes = set()  # a new session: read the retained configs again
            self._sent = {}
        if self.discovery:
            client.subscribe(f"{self.prefix}/status", qos=1)
        if router is not None:
            # <field>/set, <channel>/<field>/set or <field>/mode/set, and
            # <channel>/<field>/mode/set: level counts differ, so no message matches twice
            for levels in (3, 4, 5):
                client.subscribe(f"{self.root}/{'+/' * levels}set", qos=1)
        for topic, payload in list(self._retained.items()):
            infos.append(client.publish(topic, payload, qos=1, retain=True))
        infos += self._publish_discovery(client, everything=True)
        self._wait(infos)

    def _on_connect(self, client: Any, userdata: Any, flags: Any, rc: Any,
                    properties: Any = None) -> None:
        self._connect_rc = rc
        if not rc.is_failure:
            self._connected.set()
        self._connack.set()

    def _on_disconnect(self, client: Any, userdata: Any, flags: Any, rc: Any,
                       properties: Any = None) -> None:
        was = self._connected.is_set()
        self._connected.clear()
        self._connack.set()
        wake = self.wake
        if was and wake is not None and self._client is not None:
            wake()  # the worker notices at once (maintain() raises), even with nothing to send

    # -- paho's network thread ----------------------------------------------------------------
    def _on_message(self, client: Any, userdata: Any, msg: Any) -> None:
        # paho's thread: flag and wake the worker, or hand a command to the router; nothing
        # here blocks
        topic: str = msg.topic
        if topic == f"{self.prefix}/status":
            if msg.payload.strip().lower() == b"online":
                self._republish = True
                self._nudge()
            return
        if topic.startswith(f"{self.prefix}/"):
            self._on_config(topic, msg.payload)
            return
        if topic.endswith("/set"):
            self._on_command(topic, msg)

    def _nudge(self) -> None:
        wake = self.wake
        if wake is not None:
            wake()

    def _on_config(self, topic: str, raw: bytes) -> None:
        """A retained discovery config of one of our devices (ours, or an older run's)."""
        uid = ""
        if raw:
            try:
                uid = str(json.loads(raw).get("unique_id") or "")
            except (ValueError, AttributeError):
                uid = ""
        with self._lock:
            if not raw:
                self._broker_configs.pop(topic, None)
                return
            self._broker_configs[topic] = uid
            current = self._uid_topic.get(uid)
            stale = bool(uid) and current is not None and current != topic
            if stale:
                self._deletes.add(topic)
        if stale:
            self._nudge()

    def _on_command(self, topic: str, msg: Any) -> None:
        with self._lock:
            entry = self._commands.get(topic)
            if entry is None and not topic.endswith("/mode/set"):
                # a field announced read-only: the router still says why it refuses
                ref = self._state_refs.get(topic[:-len("/set")])
                entry = None if ref is None else (ref, "value")
            router = self._router
        if entry is None or router is None:
            log.debug("mqtt %s: no entity takes commands on %s", self.name, topic)
            return
        ref, aspect = entry
        text = msg.payload.decode("utf-8", "replace").strip()
        reply = functools.partial(self._reply, ref, aspect, text)
        self.commands_received += 1
        if msg.retain:
            # a command kept by the broker is an old one: carrying it out now would be a retry
            reply(False, "retained commands are ignored (publish commands with retain=false)",
                  None)
            return
        try:
            router.submit(ref.family, ref.device, ref.channel, ref.field, text, reply)
        except Exception as exc:  # the router could not even take it: say so, never retry
            reply(False, f"{type(exc).__name__}: {exc}", None)

    def _reply(self, ref: FieldRef, aspect: str, payload: str, ok: bool, message: str,
               value: Any) -> None:
        """The router's answer (its thread): the confirmed state, or the refusal."""
        client = self._client
        if not ok:
            log.warning("mqtt %s: command %s=%r for %s/%s refused: %s", self.name,
                        ref.field, payload, ref.family, ref.device, message)
            body: Dict[str, Any] = {"field": ref.field, "payload": payload, "error": message}
            if ref.channel:
                body["channel"] = ref.channel
            if client is not None:
                client.publish(f"{self.root}/{slug(ref.family)}/{slug(ref.device)}/error",
                               json.dumps(body, ensure_ascii=False), qos=1, retain=False)
            return
        log.info("mqtt %s: command %s=%r for %s/%s done", self.name, ref.field, payload,
                 ref.family, ref.device)
        field = ref.field
        if aspect == "mode":  # the confirmed state shows in the run state the device reports
            return
        with self._lock:
            known = self._fields.get(ref)
        if known is None or known.entity.kind == "button" or client is None:
            return
        norm = normalise_value(value)
        if norm is None:
            return
        number, text = norm
        if text is None and isinstance(number, str):
            text = number
        body = {"value": number, "unit": known.unit or known.entity.unit, "ts": time.time(),
                "text": text, "uid": f"cmd-{self._run_id}-{next(self._reply_ids)}"}
        client.publish(state_topic(self.root, ref.family, ref.device, ref.channel, field),
                       json.dumps(body, ensure_ascii=False), qos=self.qos)

    # -- worker thread ------------------------------------------------------------------------
    def maintain(self) -> None:
        """Called by the worker after ``wake``: report a lost connection, re-publish
        discovery if HA came online, delete superseded configs."""
        if self._client is None:
            return
        if not self._connected.is_set():
            raise ConnectionError(f"MQTT broker {self.host}:{self.port} connection lost")
        everything = self._republish
        self._republish = False
        if everything:
            log.info("mqtt %s: Home Assistant is online, re-publishing discovery", self.name)
        self._wait(self._publish_discovery(self._client, everything=everything))

    def _device_info(self, family: str, device: str, channel: str) -> Dict[str, str]:
        source = live_source(family, device)
        if source is None:
            return {}
        try:
            info = source.device_info(channel)
        except Exception:  # a source that cannot say: the device block goes without
            log.debug("%s/%s: device_info failed", family, device, exc_info=True)
            return {}
        return {k: str(v) for k, v in info.items() if k in DEVICE_INFO_KEYS and v}

    def _refresh_info(self, places: Iterable[Tuple[str, str, str]]) -> None:
        """Ask the sources what they now know of these devices; a device whose block
        changed is announced again."""
        changed = []
        for place in places:
            info = self._device_info(*place)
            if info != self._info.get(place, {}):
                self._info[place] = info
                changed.append(place)
        if not changed:
            return
        with self._lock:
            for ref in self._fields:
                for family, device, channel in changed:
                    if ref.family == family and ref.device == device:
                        self._dirty.add(ref)
            for family, device, _ in changed:
                self._dirty.add(FieldRef(family, device, "", ""))

    def _controllable(self, router: Optional[CommandRouter]) -> Callable[[FieldRef], bool]:
        def check(ref: FieldRef) -> bool:
            if router is None:
                return False
            try:
                return bool(router.controllable(ref.family, ref.device, ref.channel, ref.field))
            except Exception:  # a router that cannot say: read-only
                log.exception("mqtt %s: the command router failed on %s", self.name, ref)
                return False
        return check

    def _build(self, refs: Iterable[FieldRef],
               router: Optional[CommandRouter]) -> List[Tuple[FieldRef, Optional[Announcement]]]:
        """The announcements of ``refs`` (worker thread; no lock held while the router and
        the sources are asked)."""
        check = self._controllable(router)
        out: List[Tuple[FieldRef, Optional[Announcement]]] = []
        for ref in refs:
            table = field_table(ref.family)
            family_info = self._info.get((ref.family, ref.device, ""), {})
            if not family_info and table is not None and table.per_channel:
                family_info = self._info.get((ref.family, ref.device, ref.family), {})
            info = self._info.get((ref.family, ref.device, ref.channel), {})
            device = self.builder.device_block(ref.family, ref.device, ref.channel, table,
                                               info, family_info)
            if not ref.field:  # the family device's link sensor
                out.append((ref, self.builder.link_entity(
                    ref.family, ref.device,
                    self.builder.device_block(ref.family, ref.device, "", table, family_info),
                    ref.device)))
                continue
            with self._lock:
                known = self._fields.get(ref)
            if known is None:
                continue
            node = self.builder.node(ref, table)
            label = info.get("name") or ref.channel \
                if self.builder.is_channel_device(ref.family, ref.channel, table) else ""
            object_id = functools.partial(self._object_id, node, ref, ref.device, label)
            out.append((ref, self.builder.announce(ref, known, table=table, device=device,
                                                   object_id=object_id, controllable=check)))
        return out

    def _object_id(self, node: str, ref: FieldRef, *parts: str) -> str:
        """A readable entity id, unique on its device (a clash falls back to the field)."""
        wanted = _entity_slug(*parts)
        with self._lock:
            taken = self._object_ids.setdefault(node, {})
            owner = taken.get(wanted)
            if owner is None or owner == ref:
                taken[wanted] = ref
                return wanted
            fallback = _entity_slug(*parts[:-1], ref.field)
            taken.setdefault(fallback, ref)
            return fallback

    def _publish_discovery(self, client: Any, *, everything: bool = False) -> List[Any]:
        """Publish what changed (``everything``: all of it again), delete superseded configs,
        subscribe to new devices' retained configs. Returns the publish handles."""
        with self._lock:
            places = set(self._places)
        self._refresh_info(places)
        with self._lock:
            refs = set(self._fields) | {FieldRef(f, d, "", "") for f, d in self._links} \
                if everything else set(self._dirty)
            self._dirty.clear()
            router = self._router
            devices = sorted(self._devices_online)
        infos: List[Any] = []
        for family, device in devices:
            topic = f"{self.root}/{slug(family)}/{slug(device)}/availability"
            if topic not in self._retained:  # data came in, its state was never reported
                infos.append(client.publish(topic, "online", qos=1, retain=True))
        if not self.discovery:
            return infos
        built = self._build(sorted(refs, key=lambda r: (r.family, r.device, r.channel,
                                                        r.field)), router)
        publish: Dict[str, Dict[str, Any]] = {}
        nodes: Set[str] = set()
        with self._lock:
            for ref, ann in built:
                old = self._ref_topic.pop(ref, None)
                if ann is None:
                    if old is not None:
                        self._drop(old)
                    continue
                if old is not None and old != ann.topic:
                    self._drop(old)
                previous = self._uid_topic.get(ann.unique_id)
                if previous is not None and previous != ann.topic:
                    self._drop(previous)
                self._ref_topic[ref] = ann.topic
                self._uid_topic[ann.unique_id] = ann.topic
                self._configs[ann.topic] = ann.payload
                self._announcements[ann.topic] = ann
                publish[ann.topic] = ann.payload
                nodes.add(ann.node)
                for topic, target in ann.commands.items():
                    self._commands[topic] = target
            # configs of an older run (or layout) for a unique id announced elsewhere now
            for topic, uid in self._broker_configs.items():
                current = self._uid_topic.get(uid)
                if uid and current is not None and current != topic:
                    self._deletes.add(topic)
            deletes, self._deletes = self._deletes - set(self._configs), set()
            new_nodes = nodes - self._nodes
            self._nodes |= new_nodes
            if everything:
                publish = dict(self._configs)
        for node in sorted(new_nodes):
            # the retained configs of this device (an older run's too) come back to
            # _on_config, which spots those a new topic superseded
            client.subscribe(f"{self.prefix}/+/{node}/+/config", qos=1)
        for topic in sorted(deletes):
            if self.discovery_mode == "device" and topic not in self._broker_configs:
                continue  # a component of a device config, never a topic of its own
            infos.append(client.publish(topic, b"", qos=1, retain=True))
            with self._lock:
                self._broker_configs.pop(topic, None)
                self._sent.pop(topic, None)
                self._config_acks.pop(topic, None)
        if self.discovery_mode == "device":
            infos += self._publish_devices(client, publish, everything)
            return infos
        for topic, payload in sorted(publish.items()):
            text = json.dumps(payload, ensure_ascii=False)
            if not everything and self._sent.get(topic) == text:
                continue
            info = client.publish(topic, text, qos=1, retain=True)
            infos.append(info)
            self._track_config(topic, info, 1)
            self._sent[topic] = text
            self.discovery_published += 1
        return infos

    def _drop(self, topic: str) -> None:
        """Forget an announcement and delete its retained config (caller holds ``_lock``)."""
        self._configs.pop(topic, None)
        ann = self._announcements.pop(topic, None)
        if ann is not None:
            for command in ann.commands:
                self._commands.pop(command, None)
            if self._uid_topic.get(ann.unique_id) == topic:
                del self._uid_topic[ann.unique_id]
            # device-based discovery removes a component sent once with its platform only
            self._removed.setdefault(ann.node, {})[ann.unique_id] = ann.platform
        self._deletes.add(topic)

    def _publish_devices(self, client: Any, changed: Mapping[str, Dict[str, Any]],
                         everything: bool) -> List[Any]:
        """Device-based discovery: one config per HA device holding every component."""
        with self._lock:
            by_node: Dict[str, List[Announcement]] = {}
            for ann in self._announcements.values():
                by_node.setdefault(ann.node, []).append(ann)
            touched = {self._announcements[t].node for t in changed if t in self._announcements}
            removed, self._removed = self._removed, {}
            touched |= set(removed)
        infos = []
        for node in sorted(set(by_node) | set(removed) if everything else touched):
            anns = sorted(by_node.get(node, []), key=lambda a: a.unique_id)
            if not anns:
                continue
            topic, payload = device_discovery_config(self.prefix, node, anns)
            for uid, platform in removed.get(node, {}).items():
                payload["components"].setdefault(uid, {"platform": platform})
            text = json.dumps(payload, ensure_ascii=False)
            if not everything and self._sent.get(topic) == text:
                continue
            info = client.publish(topic, text, qos=1, retain=True)
            infos.append(info)
            self._track_config(topic, info, len(anns))
            self._sent[topic] = text
            self.discovery_published += 1
        return infos

    def _wait(self, infos: Sequence[Any]) -> None:
        """Block until the broker acknowledged every publish; raise at once if the link drops
        (paho's own wait re-checks ten times per timeout; we slice it the same way)."""
        deadline = time.monotonic() + self.ack_timeout
        for info in infos:
            if info.rc == 4:  # MQTT_ERR_NO_CONN
                raise ConnectionError("MQTT broker connection lost")
            while not info.is_published():
                if not self._connected.is_set():
                    raise ConnectionError("MQTT broker connection lost before the "
                                          "acknowledgement")
                left = deadline - time.monotonic()
                if left <= 0:
                    raise ConnectionError(
                        f"MQTT broker did not acknowledge within {self.ack_timeout:g} s")
                try:
                    info.wait_for_publish(min(left, 0.1))
                except (RuntimeError, ValueError) as exc:
                    raise ConnectionError(f"MQTT publish failed: {exc}") from exc

    def write(self, items: Sequence[Item]) -> None:
        client = self._client
        if client is None or not self._connected.is_set():
            raise ConnectionError("MQTT broker connection is down")
        infos = []
        now = time.monotonic()
        if now >= self._next_info_check:
            # serial numbers and firmware may be known only after the first samples (a
            # heater's system group, a Mate3's configuration blocks): look again now and then
            self._next_info_check = now + self.info_interval
            with self._lock:
                places = set(self._places)
            self._refresh_info(places)
        with self._lock:
            pending = bool(self._dirty or self._deletes)
        if pending:
            infos += self._publish_discovery(client)
        qos, root = self.qos, self.root
        dumps = functools.partial(json.dumps, ensure_ascii=False)
        for item in items:
            if isinstance(item, Sample):
                topic = state_topic(root, item.family, item.device, item.channel, item.field)
                value = item.value
                text = item.text if item.text is not None else (
                    value if isinstance(value, str) else self._label(item))
                payload = dumps({"value": value, "unit": item.unit, "ts": item.timestamp,
                                 "text": text, "uid": item.uid})
                infos.append(client.publish(topic, payload, qos=qos))
            elif isinstance(item, Message):
                topic = f"{root}/{item.topic}"
                infos.append(client.publish(topic, item.payload, qos=1, retain=item.retain))
        if qos:
            self._wait(infos)
        for item in items:  # acknowledged: remember the retained state
            if isinstance(item, Message) and item.retain:
                self._retained[f"{root}/{item.topic}"] = item.payload

    def _label(self, sample: Sample) -> Optional[str]:
        """The option name of an enumeration that arrives as a bare code (Victron's
        ``/State`` 3 -> ``Bulk``), from a table that can say (a ``label()`` method)."""
        key = (sample.family, sample.device, sample.channel, sample.field)
        labeler = self._labelers.get(key, _UNSET)
        if labeler is _UNSET:
            labeler = None
            table = field_table(sample.family)
            method = getattr(table, "label", None)
            entity = table_lookup(table, sample.field, sample.channel)
            if callable(method) and entity is not None and (
                    entity.device_class == "enum" or entity.kind == "select"):
                labeler = functools.partial(method, sample.field, channel=sample.channel)
            self._labelers[key] = labeler
        if labeler is None:
            return None
        try:
            label = labeler(sample.value)
        except Exception:  # a table that cannot label this value: the number stands alone
            return None
        return None if label is None else str(label)

    def close(self) -> None:
        client, self._client = self._client, None
        if client is None:
            return
        try:
            if self._connected.is_set():
                info = client.publish(f"{self.root}/status", "offline", qos=1, retain=True)
                try:
                    info.wait_for_publish(1.0)
                except (RuntimeError, ValueError):
                    pass
                client.disconnect()
        except Exception:
            log.debug("mqtt %s: disconnect failed", self.name, exc_info=True)
        try:
            client.loop_stop()
        except Exception:
            log.debug("mqtt %s: loop_stop failed", self.name, exc_info=True)
        # paho keeps its socket and wake-up socket pair until garbage collection; release them
        # now (a refused or failed connection would otherwise hold them open)
        closer = getattr(client, "_reset_sockets", None)
        if closer is not None:
            try:
                closer()
            except Exception:
                pass
        self._connected.clear()
