"""MQTT sink with Home Assistant discovery (paho-mqtt 2.x; ``pip install "pyburnerkit[mqtt]"``).

Topics (``root`` defaults to ``pyburnerkit``; names are made topic-safe: ``/Dc/0/Voltage`` ->
``Dc_0_Voltage``)::

    <root>/status                                   "online" (retained); last will "offline"
    <root>/<family>/<device>/availability           "online" / "offline" (retained)
    <root>/<family>/<device>[/<channel>]/<field>    {"value": 21.5, "unit": "°C", "ts": ...,
                                                     "text": null, "uid": "..."}   QoS 1
    <root>/alerts/<rule>/<device>                   alert state (retained)

Home Assistant discovery (``discovery=True``): one retained config per field at
``<prefix>/sensor/pyburnerkit_<family>_<device>/<field>/config`` (or, with
``discovery_mode="device"``, one device-based config per device at
``<prefix>/device/pyburnerkit_<family>_<device>/config`` whose ``components`` hold the same
per-field entries; Home Assistant 2024.11+) with a stable ``unique_id``,
a ``device`` block per device, ``availability`` (recorder status + device), ``device_class``,
``state_class`` and ``unit_of_measurement`` (energy totals in Wh/kWh are ``total_increasing``,
so HA's Energy dashboard accepts them), diagnostic fields disabled by default, and an ``origin``
block. Configs are re-published whenever ``<prefix>/status`` says ``online`` (HA restarted).

Delivery: every publish is QoS 1 and a batch counts as written only when the broker acknowledged
all of it; otherwise the whole batch is spooled and sent again (at least once).
"""

from __future__ import annotations

import functools
import json
import logging
import ssl
import threading
import time
from typing import Any, Dict, List, Optional, Sequence, Set, Tuple

from ..._core.extras import require
from ...errors import ConfigurationError
from ..samples import FieldMeta, Message, Sample, slug
from .base import Item, Sink

log = logging.getLogger(__name__)

ORIGIN_URL = "https://github.com/pyburnerkit/pyburnerkit"


def state_topic(root: str, family: str, device: str, channel: str, field: str) -> str:
    parts = [root, slug(family), slug(device)]
    if channel:
        parts.append(slug(channel))
    parts.append(slug(field))
    return "/".join(parts)


def unique_id(family: str, device: str, channel: str, field: str) -> str:
    parts = ["pyburnerkit", family, device] + ([channel] if channel else []) + [field]
    return slug("_".join(slug(p) for p in parts)).lower()


def device_id(family: str, device: str) -> str:
    return slug(f"pyburnerkit_{slug(family)}_{slug(device)}").lower()


def discovery_config(prefix: str, root: str, family: str, device: str, channel: str, field: str,
                     meta: FieldMeta, *, qos: int = 1,
                     sw_version: str = "") -> Tuple[str, Dict[str, Any]]:
    """The (topic, payload) of one Home Assistant MQTT discovery config."""
    node = device_id(family, device)
    object_id = slug(f"{channel}_{field}" if channel else field)
    name = meta.name or (f"{channel} {field}" if channel else field)
    payload: Dict[str, Any] = {
        "name": name,
        "unique_id": unique_id(family, device, channel, field),
        "state_topic": state_topic(root, family, device, channel, field),
        "value_template": ("{{ value_json.text }}" if meta.state_class is None
                           and meta.device_class is None and meta.unit == ""
                           else "{{ value_json.value }}"),
        "availability": [
            {"topic": f"{root}/status"},
            {"topic": f"{root}/{slug(family)}/{slug(device)}/availability"},
        ],
        "availability_mode": "all",
        "qos": qos,
        "device": {
            "identifiers": [node],
            "name": f"{family} {device}",
            "manufacturer": _manufacturer(family),
            "model": family,
        },
        "origin": {"name": "pyburnerkit", "sw_version": sw_version, "support_url": ORIGIN_URL},
    }
    if meta.unit:
        payload["unit_of_measurement"] = meta.unit
    if meta.device_class:
        payload["device_class"] = meta.device_class
    if meta.state_class:
        payload["state_class"] = meta.state_class
    if meta.diagnostic:
        payload["entity_category"] = "diagnostic"
        payload["enabled_by_default"] = False
    return f"{prefix}/sensor/{node}/{object_id}/config", payload


#: options of a per-field config that device-based discovery states once for the whole device
_SHARED = ("device", "origin", "availability", "availability_mode", "qos")


def device_discovery_config(prefix: str, node: str,
                            fields: Dict[str, Dict[str, Any]]) -> Tuple[str, Dict[str, Any]]:
    """The (topic, payload) of one Home Assistant *device-based* discovery config
    (``<prefix>/device/<node>/config``, HA 2024.11+) from the per-field configs of one device
    (as made by :func:`discovery_config`): device, origin, availability and qos once, one
    ``components`` entry per field keyed by its unique id, each with ``platform: sensor``."""
    first = next(iter(fields.values()))
    payload: Dict[str, Any] = {k: first[k] for k in _SHARED if k in first}
    components: Dict[str, Any] = {}
    for cfg in fields.values():
        component = {"platform": "sensor"}
        component.update((k, v) for k, v in cfg.items() if k not in _SHARED)
        components[cfg["unique_id"]] = component
    payload["components"] = components
    return f"{prefix}/device/{node}/config", payload


def _manufacturer(family: str) -> str:
    """The manufacturer the family registry names; the family itself for an unknown one."""
    from ...families import families
    for entry in families():
        if entry.name == family:
            return entry.manufacturer or family
    return family


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


class MqttSink(Sink):
    """Publish samples to an MQTT broker, with Home Assistant discovery.

    :param host: the broker's host name or address.
    :param port: the broker's port (8883 is usual with ``tls=True``).
    :param topic_root: the first level of every topic.
    :param username: broker user name.
    :param password: broker password (it never appears in logs).
    :param tls: use TLS; ``ca_certs`` (a CA file; default: the system store), ``certfile`` /
        ``keyfile`` (client certificate), ``tls_insecure`` (skip host name checks).
    :param discovery: publish Home Assistant discovery configs under ``discovery_prefix``.
    :param discovery_mode: ``"component"`` (one config per field, every HA version) or
        ``"device"`` (one config per device with a ``components`` map, HA 2024.11+). Do not
        switch an installation between the two without removing the old retained configs:
        both carry the same unique ids.
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
                 discovery_mode: str = "component",
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
        self._device_fields: Dict[str, Dict[str, Dict[str, Any]]] = {}  # node -> field configs
        self.connect_timeout = connect_timeout
        self.ack_timeout = ack_timeout
        self._client: Any = None
        self._connected = threading.Event()
        self._connack = threading.Event()
        self._connect_rc: Any = None
        self._lock = threading.Lock()
        self._configs: Dict[str, Dict[str, Any]] = {}     # topic -> payload (all known)
        self._unsent: List[str] = []                        # config topics not yet published
        self._devices_online: Set[Tuple[str, str]] = set()
        #: the last retained message written per topic (device availability, alert states):
        #: re-published on every (re)connection, since a broker restarted without persistence
        #: has forgotten them, and never contradicted by a default "online"
        self._retained: Dict[str, str] = {}
        self._republish = False
        self.wake: Any = None  # set by the worker: asks it to call maintain()
        self.discovery_published = 0

    def __repr__(self) -> str:
        return f"<MqttSink {self.name} {self.host}:{self.port} root={self.root}>"

    def identity(self) -> str:
        return f"mqtt:{self.host}:{self.port}/{self.root}"

    # -- discovery bookkeeping (any thread) ---------------------------------------------------
    def describe(self, family: str, device: str, channel: str, field: str,
                 meta: FieldMeta) -> None:
        if not self.discovery:
            return
        from ... import __version__
        topic, payload = discovery_config(self.prefix, self.root, family, device, channel,
                                          field, meta, qos=self.qos, sw_version=__version__)
        with self._lock:
            if self.discovery_mode == "device":  # the device's config grows by one component
                node = device_id(family, device)
                fields = self._device_fields.setdefault(node, {})
                fields[topic] = payload
                topic, payload = device_discovery_config(self.prefix, node, fields)
                if topic not in self._unsent:
                    self._unsent.append(topic)
            elif topic not in self._configs:
                self._unsent.append(topic)
            self._configs[topic] = payload
            self._devices_online.add((family, device))

    @property
    def configs(self) -> Dict[str, Dict[str, Any]]:
        with self._lock:
            return dict(self._configs)

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
        if self.discovery:
            client.subscribe(f"{self.prefix}/status", qos=1)
        with self._lock:
            self._unsent = list(self._configs)
        for topic, payload in list(self._retained.items()):
            infos.append(client.publish(topic, payload, qos=1, retain=True))
        infos += self._publish_discovery(client)
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

    def _on_message(self, client: Any, userdata: Any, msg: Any) -> None:
        # paho's thread: only flag and wake the worker, which re-publishes
        if msg.topic == f"{self.prefix}/status" and msg.payload.strip().lower() == b"online":
            self._republish = True
            wake = self.wake
            if wake is not None:
                wake()

    def maintain(self) -> None:
        """Called by the worker after ``wake``: report a lost connection, re-publish
        discovery if HA came online."""
        if self._client is None:
            return
        if not self._connected.is_set():
            raise ConnectionError(f"MQTT broker {self.host}:{self.port} connection lost")
        if not self._republish:
            return
        self._republish = False
        with self._lock:
            self._unsent = list(self._configs)
        log.info("mqtt %s: Home Assistant is online, re-publishing %d discovery configs",
                 self.name, len(self._unsent))
        self._wait(self._publish_discovery(self._client))

    def _publish_discovery(self, client: Any) -> List[Any]:
        with self._lock:
            topics, self._unsent = self._unsent, []
            configs = [(t, self._configs[t]) for t in topics]
            devices = sorted(self._devices_online)
        infos = []
        for family, device in devices:
            topic = f"{self.root}/{slug(family)}/{slug(device)}/availability"
            if topic not in self._retained:  # data came in, its state was never reported
                infos.append(client.publish(topic, "online", qos=1, retain=True))
        for topic, payload in configs:
            infos.append(client.publish(topic, json.dumps(payload, ensure_ascii=False), qos=1,
                                        retain=True))
        self.discovery_published += len(configs)
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
        with self._lock:
            pending = bool(self._unsent)
        if pending:
            infos += self._publish_discovery(client)
        qos, root = self.qos, self.root
        dumps = functools.partial(json.dumps, ensure_ascii=False)
        for item in items:
            if isinstance(item, Sample):
                topic = state_topic(root, item.family, item.device, item.channel, item.field)
                value = item.value
                text = item.text if item.text is not None else (
                    value if isinstance(value, str) else None)
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
