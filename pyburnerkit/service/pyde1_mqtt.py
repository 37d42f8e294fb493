"""pyDE1's outbound MQTT API (spec section 8) for a DE1 client and its scale (paho-mqtt 2.x;
``pip install "pyburnerkit[mqtt]"``).

>>> with Pyde1MqttPublisher(de1, scale, host="127.0.0.1") as publisher:   # doctest: +SKIP
...     de1.start_espresso()

Topics (``topic_root`` defaults to ``pyDE1``)::

    pyDE1/status/controller            "Here" on connect, "Gone" on close, "Died" (the will)
                                       retained, QoS 0
    pyDE1/<Class>                      JSON, QoS 0, not retained: StateUpdate,
                                       ShotSampleWithVolumesUpdate, WaterLevelUpdate,
                                       WeightAndFlowUpdate, ScaleButtonPress, ScaleTareSeen,
                                       SequencerGateNotification, StopAtNotification,
                                       AutoTareNotification, DeviceAvailability,
                                       FirmwareUpload

Every JSON payload has pyDE1's ``version``, ``class``, ``sender``, ``arrival_time`` (when the
client received the notification), ``create_time`` (when this publisher took the event) and
``event_time`` (when it was handed to the broker connection), all ``time.time()`` floats, and
the class's fields with pyDE1's names and units. What each class is built from, and which
pyDE1 classes have no source in pyburnerkit (and are not sent), is listed in
:mod:`pyburnerkit.service.pyde1_payloads`.

The shot sequencer's gates, stop-at triggers and auto-tare windows come from a
:class:`~pyburnerkit.de1.sequencer.ShotSequencer`, not from the clients: pass
:meth:`Pyde1MqttPublisher.sequencer_event` as the sequencer's ``on_event``, or call
:meth:`Pyde1MqttPublisher.attach_sequencer`.

Threads and back-pressure: the clients' subscriptions (their events threads) and the
sequencer's callback only append the event to a bounded queue (``max_queued`` events) and
return; they never touch the broker and never wait for it. One worker thread
(``pyburnerkit-pyde1-mqtt-<host>:<port>``) builds the JSON and hands it to paho (TCP_NODELAY set on its socket), whose own
network thread (``paho-mqtt-client-<client id>``) does the socket I/O and reconnects (1 s
doubling to 30 s). At most ``max_inflight`` messages wait inside paho for the socket at any
time; while the broker stalls (or the link is down) the worker stops handing over and the
queue keeps the newest ``max_queued`` events, dropping the oldest and counting them in
:attr:`Pyde1MqttPublisher.dropped`. Messages queued while the link is down are sent, oldest
first, once it is back, after the new "Here".
"""

from __future__ import annotations

import collections
import json
import logging
import os
import socket
import ssl
import threading
import time
import uuid
from typing import Any, Deque, List, Optional, Set, Tuple

from .._core.extras import require
from ..errors import (AuthenticationError, ConfigurationError, ConnectTimeoutError,
                      DeviceConnectionError, check_range)
from ..types import ConnectionStateChanged
from .pyde1_payloads import PayloadBuilder

log = logging.getLogger(__name__)

__all__ = ["Pyde1MqttPublisher", "STATUS_HERE", "STATUS_GONE", "STATUS_DIED"]

STATUS_HERE = "Here"
STATUS_GONE = "Gone"
STATUS_DIED = "Died"

_KEEPALIVE_S = 60


class Pyde1MqttPublisher:
    """Publish a DE1's (and its scale's) events with pyDE1's MQTT topics and payloads.

    :param de1: a :class:`~pyburnerkit.de1.client.DE1Client`, or None.
    :param scale: a :class:`~pyburnerkit.scale.client.SkaleClient`, or None.
    :param host: the broker's host name or address.
    :param port: the broker's port, 1..65535 (8883 is usual with ``tls=True``).
    :param topic_root: the first level of every topic (pyDE1: ``pyDE1``).
    :param username: broker user name; ``password`` its password (never logged or shown).
    :param tls: connect with TLS; ``ca_certs`` is the CA file (default: the system store).
    :param client_id: the MQTT client id (default: ``pyburnerkit-pyde1-<pid>-<random>``).
    :param connect_timeout: seconds for the TCP (and TLS) connect, 0.1..300 s, also used by
        paho's reconnects.
    :param max_queued: events kept while the broker is slow or away, 1..1,000,000 (the
        oldest are dropped beyond it).
    :param max_inflight: messages handed to paho and not yet written to the socket,
        1..100,000.
    :raises ConfigurationError: an empty host or topic root, or a value out of range.

    The constructor does no I/O.
    """

    def __init__(self, de1: Any, scale: Any, *, host: str, port: int = 1883,
                 topic_root: str = "pyDE1", username: Optional[str] = None,
                 password: Optional[str] = None, tls: bool = False,
                 ca_certs: Optional[str] = None, client_id: Optional[str] = None,
                 connect_timeout: float = 10.0, max_queued: int = 1000,
                 max_inflight: int = 100) -> None:
        if not isinstance(host, str) or not host:
            raise ConfigurationError(f"host must be a broker host name or address, got {host!r}")
        self.port = int(check_range("port", port, 1, 65535, integer=True))
        root = str(topic_root).strip("/")
        if not root or any(c in root for c in "#+\0"):
            raise ConfigurationError(f"topic_root={topic_root!r} must be a non-empty MQTT topic "
                                     f"without wildcards")
        self.connect_timeout = float(check_range("connect_timeout", connect_timeout, 0.1, 300,
                                                 "s"))
        self.max_queued = int(check_range("max_queued", max_queued, 1, 1_000_000,
                                          integer=True))
        self.max_inflight = int(check_range("max_inflight", max_inflight, 1, 100_000,
                                            integer=True))
        self.de1 = de1
        self.scale = scale
        self.host = host
        self.topic_root = root
        self.username = username
        self._password = password
        self.tls = bool(tls)
        self.ca_certs = ca_certs
        self.client_id = client_id or f"pyburnerkit-pyde1-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self.status_topic = f"{root}/status/controller"
        self._builder = PayloadBuilder(
            de1_address=getattr(de1, "address", None),
            scale_address=getattr(scale, "address", None))
        self._cond = threading.Condition()
        self._queue: Deque[Tuple[Any, float, str]] = collections.deque()
        self._inflight: Set[int] = set()
        self._connected = False
        self._connack = threading.Event()
        self._connect_rc: Any = None
        self._disconnected = threading.Event()
        self._stopping = False
        self._started = False
        self._closed: Optional[bool] = None  # close()'s result once closed
        self._close_lock = threading.Lock()
        self._client: Any = None
        self._net_thread: Optional[threading.Thread] = None
        self._worker: Optional[threading.Thread] = None
        self._subs: List[Any] = []
        self._dropped = 0
        self._warned = False
        self._published = 0

    def __repr__(self) -> str:  # no credentials
        return (f"<Pyde1MqttPublisher {self.host}:{self.port} root={self.topic_root!r} "
                f"published={self._published} dropped={self._dropped}>")

    # ------------------------------------------------------------------ counters
    @property
    def dropped(self) -> int:
        """Events dropped because the queue was full (broker slow or away) or still queued
        when :meth:`close` ran."""
        return self._dropped

    @property
    def published(self) -> int:
        """JSON messages handed to the broker connection."""
        return self._published

    @property
    def connected(self) -> bool:
        """Whether the broker accepted the connection and it has not dropped since."""
        return self._connected

    # ------------------------------------------------------------------ lifecycle
    def start(self, timeout: float = 10.0) -> None:
        """Connect to the broker, publish the retained ``Here`` (will ``Died``), start the
        worker and subscribe to the clients' events.

        Blocks until the broker accepted the connection (CONNACK) or ``timeout`` seconds.

        :raises BackendUnavailableError: paho-mqtt is missing (``pip install
            "pyburnerkit[mqtt]"``).
        :raises ConnectTimeoutError: no CONNACK within ``timeout`` seconds.
        :raises AuthenticationError: the broker refused the credentials.
        :raises DeviceConnectionError: the broker is unreachable or refused the connection.
        :raises RuntimeError: started twice, or after :meth:`close`.
        """
        check_range("timeout", timeout, 0.1, 3600, "s")
        mqtt = require("paho.mqtt.client", "mqtt")
        with self._close_lock:
            if self._started or self._closed is not None:
                raise RuntimeError("a Pyde1MqttPublisher can be started only once")
            self._started = True
        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=self.client_id,
                             protocol=mqtt.MQTTv311, reconnect_on_failure=True)
        client.connect_timeout = self.connect_timeout
        client.reconnect_delay_set(1, 30)
        client.will_set(self.status_topic, STATUS_DIED, qos=0, retain=True)
        if self.username is not None:
            client.username_pw_set(self.username, self._password)
        if self.tls:
            client.tls_set(ca_certs=self.ca_certs, cert_reqs=ssl.CERT_REQUIRED)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish
        client.on_connect_fail = self._on_connect_fail
        client.on_socket_open = self._on_socket_open
        self._client = client
        where = f"MQTT broker {self.host}:{self.port}"
        try:
            client.connect(self.host, self.port, _KEEPALIVE_S)
        except (OSError, ssl.SSLError) as exc:
            self._release_sockets(client)
            self._client = None
            self._closed = True
            if isinstance(exc, (socket.timeout, TimeoutError)):
                raise ConnectTimeoutError(f"{where} did not accept a connection within "
                                          f"{self.connect_timeout:g} s") from exc
            raise DeviceConnectionError(f"{where} is unreachable: {exc}") from exc
        client.loop_start()
        self._net_thread = next((t for t in threading.enumerate()
                                 if t.name == f"paho-mqtt-client-{self.client_id}"), None)
        if not self._connack.wait(timeout) or not self._connected:
            rc = self._connect_rc
            self.close(timeout=2.0)
            if rc is None:
                raise ConnectTimeoutError(f"{where} did not answer the connection within "
                                          f"{timeout:g} s")
            if getattr(rc, "value", None) in (4, 5, 134, 135):  # bad credentials / not authorised
                raise AuthenticationError(f"{where} refused the credentials ({rc})")
            raise DeviceConnectionError(f"{where} refused the connection: {rc}")
        self._worker = threading.Thread(
            target=self._run, name=f"pyburnerkit-pyde1-mqtt-{self.host}:{self.port}",
            daemon=True)
        self._worker.start()
        for client_obj, source in ((self.de1, "de1"), (self.scale, "scale")):
            if client_obj is None:
                continue
            self._subs.append(client_obj.subscribe(
                lambda ev, s=source: self._enqueue(ev, s)))
            state = getattr(client_obj, "connection_state", None)
            if state is not None:  # where the link stands now, before any change
                self._enqueue(ConnectionStateChanged(state, state), source)

    def close(self, timeout: float = 5.0) -> bool:
        """Stop publishing: unsubscribe, send what is queued while the link allows, publish the
        retained ``Gone``, disconnect, stop the threads.

        Idempotent and safe from any thread, including the clients' callbacks. Blocks at most
        about ``timeout`` seconds; when the broker does not take the disconnect in time (it
        stalls), the socket is shut so paho's thread ends without a will being sent by us
        (the broker may then publish ``Died``). Events still queued are dropped (counted).

        :returns: True when every thread stopped in time (False: one is still running; it is a
            daemon and ends on its own).
        """
        with self._close_lock:
            if self._closed is not None:
                return self._closed
            self._closed = False
        deadline = time.monotonic() + max(0.0, timeout)
        for sub in self._subs:
            sub.cancel()
        self._subs = []
        ok = True
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        worker = self._worker
        if worker is not None and worker is not threading.current_thread():
            worker.join(max(0.0, deadline - time.monotonic()))
            ok = not worker.is_alive()
        with self._cond:
            self._dropped += len(self._queue)
            self._queue.clear()
        client = self._client
        if client is not None:
            ok = self._disconnect(client, deadline) and ok
        with self._close_lock:
            self._closed = ok
        return ok

    def _disconnect(self, client: Any, deadline: float) -> bool:
        if self._connected:
            info = client.publish(self.status_topic, STATUS_GONE, qos=0, retain=True)
            log.debug("pyde1 mqtt: Gone queued (rc %s)", info.rc)
        client.disconnect()  # DISCONNECT follows Gone on the socket: the broker drops the will
        net = self._net_thread
        if net is not None:
            # the loop ends once DISCONNECT is written; half the budget for that, then shut
            # the socket (a stalled broker never reads it) so the loop ends anyway
            half = max(0.0, (deadline - time.monotonic()) / 2)
            if not self._disconnected.wait(half) and net.is_alive():
                log.info("pyde1 mqtt: the broker %s:%d did not take the disconnect within "
                         "%.1f s; shutting the socket", self.host, self.port, half)
                self._shut_socket(client)
            if net is not threading.current_thread():
                net.join(max(0.0, deadline - time.monotonic()))
            stopped = not net.is_alive()
        else:  # paho's thread was not found by name: its own (unbounded) stop
            client.loop_stop()
            stopped = True
        if stopped:
            self._release_sockets(client)
        self._connected = False
        return stopped

    @staticmethod
    def _shut_socket(client: Any) -> None:
        sock = client.socket()
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass  # paho closed it meanwhile

    @staticmethod
    def _release_sockets(client: Any) -> None:
        # paho keeps its socket and wake-up socket pair until garbage collection (its
        # _reset_sockets, what its __del__ runs); release them now
        closer = getattr(client, "_reset_sockets", None)
        if closer is not None:
            try:
                closer()
            except Exception:
                pass

    def __enter__(self) -> "Pyde1MqttPublisher":
        if not self._started:
            self.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # ------------------------------------------------------------------ sequencer
    def sequencer_event(self, event: Any) -> None:
        """Queue a shot sequencer's event (gate, stop-at); pass this as the sequencer's
        ``on_event``. Runs on whichever thread calls it (the clients' events threads, under
        the sequencer's lock): it only appends to the queue, never blocks."""
        self._enqueue(event, "sequencer")

    def attach_sequencer(self, sequencer: Any) -> None:
        """Publish ``sequencer``'s gates and stop-at triggers (its ``on_event`` is kept and
        still called first), and its auto-tare windows when it auto-tares."""
        previous = getattr(sequencer, "on_event", None)
        self._builder.auto_tare = bool(getattr(sequencer, "auto_tare", False))

        def chained(event: Any) -> None:
            if previous is not None:
                try:
                    previous(event)
                except Exception:
                    log.exception("sequencer on_event callback raised")
            self.sequencer_event(event)

        sequencer.on_event = chained

    # ------------------------------------------------------------------ producers
    def _enqueue(self, event: Any, source: str) -> None:
        taken = time.time()
        with self._cond:
            if self._stopping:
                return
            if len(self._queue) >= self.max_queued:
                self._queue.popleft()
                self._dropped += 1
                if not self._warned:  # once per backlog: it is counted in .dropped
                    self._warned = True
                    log.warning("pyde1 mqtt: the broker %s:%d is not keeping up; dropping the "
                                "oldest events (%d so far)", self.host, self.port,
                                self._dropped)
            self._queue.append((event, taken, source))
            self._cond.notify()

    # ------------------------------------------------------------------ worker
    def _run(self) -> None:
        client = self._client
        topic_prefix = f"{self.topic_root}/"
        while True:
            with self._cond:
                while not self._stopping and not (
                        self._queue and self._connected
                        and len(self._inflight) < self.max_inflight):
                    if not self._queue:
                        self._warned = False  # the backlog is gone
                    self._cond.notify_all()  # for whoever waits for the worker to be idle
                    self._cond.wait()
                if self._stopping and not (self._queue and self._connected and
                                           len(self._inflight) < self.max_inflight):
                    return
                event, taken, source = self._queue.popleft()
            try:
                messages = self._builder.build(event, taken, source)
            except Exception:
                log.exception("pyde1 mqtt: cannot build a payload for %r", event)
                continue
            for cls, payload in messages:
                payload["event_time"] = time.time()
                data = json.dumps(payload)
                with self._cond:  # so on_publish cannot run before the mid is known
                    info = client.publish(topic_prefix + cls, data, qos=0, retain=False)
                    if info.rc == 0:
                        self._inflight.add(info.mid)
                        self._published += 1
                    else:  # the link went down under us: this one is lost
                        self._dropped += 1

    # ------------------------------------------------------------------ paho's thread
    def _on_connect(self, client: Any, userdata: Any, flags: Any, rc: Any,
                    properties: Any = None) -> None:
        self._connect_rc = rc
        if rc.is_failure:
            self._connack.set()
            return
        if self._stopping:  # close() raced with a reconnect: leave again
            client.disconnect()
            return
        client.publish(self.status_topic, STATUS_HERE, qos=0, retain=True)
        self._disconnected.clear()
        with self._cond:
            self._connected = True
            self._inflight.clear()
            self._cond.notify_all()
        self._connack.set()

    @staticmethod
    def _on_socket_open(client: Any, userdata: Any, sock: Any) -> None:
        # paho leaves Nagle on: a message right after another would wait for the broker's
        # delayed ACK (tens of ms); every message here is small and wanted at once
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except (OSError, AttributeError):
            pass  # not a TCP socket (a proxy or WebSocket transport)

    def _on_connect_fail(self, client: Any, userdata: Any) -> None:
        if self._stopping:
            client.disconnect()  # ends paho's retry loop

    def _on_disconnect(self, client: Any, userdata: Any, flags: Any, rc: Any,
                       properties: Any = None) -> None:
        with self._cond:
            was = self._connected
            self._connected = False
            self._inflight.clear()  # paho forgets unsent QoS 0 packets on reconnect
            self._cond.notify_all()
        self._disconnected.set()
        if self._stopping:
            if getattr(rc, "value", 0) != 0:
                client.disconnect()  # the link broke during close(): no reconnect may follow
        elif was:
            log.warning("pyde1 mqtt: lost the broker %s:%d (%s); reconnecting", self.host,
                        self.port, rc)

    def _on_publish(self, client: Any, userdata: Any, mid: int, rc: Any,
                    properties: Any = None) -> None:
        with self._cond:
            if mid in self._inflight:
                self._inflight.discard(mid)
                self._cond.notify_all()
