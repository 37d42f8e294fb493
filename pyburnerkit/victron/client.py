"""Blocking Venus OS D-Bus clients: publish a service, watch and control services, settings.

Threads (see ``docs/victron.rst``): each client has its own ``pyburnerkit-victron-<endpoint>-io``
session thread, which owns the client's protocol state, and an ``...-events`` thread for
callbacks and validators. The process-wide GLib pump (:mod:`.bus`) owns the connections: it
sends what the sessions post to it and hands incoming messages to the owning session. Every
D-Bus call a client makes is asynchronous on its own connection, so a call to an object
exported by the same process can never deadlock (spec 6.6 #1), and no thread ever blocks on
the bus except the caller of a public blocking method, which waits on its request with a
timeout.
"""

from __future__ import annotations

import collections
import concurrent.futures
import contextlib
import logging
import threading
import time
from types import MappingProxyType
from typing import (Any, Callable, Deque, Dict, FrozenSet, Iterable, Iterator, List, Mapping, Optional,
                    Sequence, Set, Tuple, TypeVar, Union)

from .._core.client import BaseClient
from .._core.extras import require
from .._core.pending import Pending
from .._core.session import Session
from .._core.timeouts import Deadline, TimeoutArg, resolve_timeout
from ..errors import (ConfigurationError, ConnectionLostError, DeviceConnectionError,
                      DeviceError, DeviceTimeoutError, ProtocolError, PyBurnerKitError,
                      UnsupportedFeatureError, WriteNotAllowedError, check_range)
from ..types import DEFAULT
from . import codec
from .bus import (ERROR, METHOD_CALL, METHOD_RETURN, PUMP, SIGNAL, bus_label, close_connection,
                  is_disconnect, open_connection, parse_bus_endpoint, resolve_bus_address)
from .models import (ItemValue, NameTakenError, ServiceAdded, ServiceInfo, ServiceRemoved,
                     SetValueError, Setting, SettingsError, ValuesChanged, ValueWritten,
                     WriteRequested)

log = logging.getLogger(__name__)

R = TypeVar("R")
E = TypeVar("E")

__all__ = ["VictronService", "VictronMonitor", "VictronSettings", "WriteCompleted"]

_UNKNOWN_METHOD = "org.freedesktop.DBus.Error.UnknownMethod"
_UNKNOWN_OBJECT = "org.freedesktop.DBus.Error.UnknownObject"
_NO_REPLY = "org.freedesktop.DBus.Error.NoReply"
_TIMEOUT_ERRORS = (_NO_REPLY, "org.freedesktop.DBus.Error.Timeout")
#: Our own name for a reply dbus-python could not even decode (never sent on the bus).
_MALFORMED_REPLY = "com.pyburnerkit.Error.MalformedReply"
#: Signals a burst may put in the inbox before the I/O thread is woken without waiting for
#: the pump to finish dispatching (see ``_BusSession._enqueue``).
INBOX_WAKE_BATCH = 64
#: A message that finds the inbox empty within this many seconds of the last wake-up is part
#: of a burst and waits for the end of the dispatch; a lone one wakes the I/O thread at once.
FLOOD_GAP_S = 0.0005
#: On an orderly close, how long the session waits for the bus to take in what it sent
#: (see ``_BusSession.close_transport``); a stalled daemon costs at most this.
CLOSE_FLUSH_S = 1.0


_LOWLEVEL: Any = None


def _lowlevel() -> Any:
    # Cached: the GLib thread asks for it on every message it hands over.
    global _LOWLEVEL
    if _LOWLEVEL is None:
        _LOWLEVEL = require("dbus.lowlevel", "victron")
    return _LOWLEVEL


# ====================================================================== the session
class _BusSession(Session):
    """A :class:`Session` whose transport is one private bus connection.

    The GLib pump calls :meth:`_filter` / :meth:`_on_object` for this connection's messages;
    both only enqueue into this session's loop. Everything else runs on the I/O thread.
    """

    family = "victron"

    def __init__(self, *, client: "_VictronClient", address: str, export: bool,
                 **common: Any) -> None:
        super().__init__(**common)
        self.client = client
        self.address = address
        self.export = export
        self.conn: Any = None
        self._pumped = False
        self._filter_ref: Any = None
        #: what the pump hands over, in arrival order (see :meth:`_enqueue`)
        self._inbox: Deque[Tuple[Callable[..., Any], Tuple[Any, ...]]] = collections.deque()
        #: a drain is owed and not scheduled yet (pump thread only; see _enqueue)
        self._wake_due = False
        self._woken_at = 0.0  # time.monotonic() of the last wake the pump gave (pump thread)
        # bound once: the pump hands over each signal
        self._on_signal: Callable[..., None] = self.client._io_signal
        self._not_handled = _lowlevel().HANDLER_RESULT_NOT_YET_HANDLED

    # -- transport ---------------------------------------------------------------------
    def open_transport(self, deadline: Deadline) -> None:
        dbus = require("dbus", "victron")
        _init_fast_types()
        PUMP.acquire()
        self._pumped = True
        self._filter_ref = self._filter

        def setup(conn: Any) -> None:  # on the pump thread, before any dispatch
            conn.add_message_filter(self._filter_ref)
            if self.export:
                conn._register_object_path("/", self._on_object, None, True)
        try:
            conn = open_connection(self.address, setup)
        except dbus.exceptions.DBusException as exc:
            raise DeviceConnectionError(
                f"cannot connect to the bus at {self.address}: {exc.get_dbus_message()}",
                device=self.family, endpoint=self.endpoint) from exc
        except TimeoutError as exc:
            raise DeviceConnectionError(f"cannot connect to the bus at {self.address}: {exc}",
                                        device=self.family, endpoint=self.endpoint) from exc
        self.conn = conn
        self.wire.sent(f"connected to {self.address} as {conn.get_unique_name()}")
        self.client._io_opened(self)

    def close_transport(self) -> None:
        conn, self.conn = self.conn, None
        if conn is not None:
            if self.closing and not PUMP.in_pump():  # the pump must be free to answer
                self._flush_sent(conn)
            filt, export = self._filter_ref, self.export

            def cleanup() -> None:
                conn.remove_message_filter(filt)
                if export:
                    conn._unregister_object_path("/")
            close_connection(conn, cleanup)
        if self._pumped:
            self._pumped = False
            PUMP.release()

    def _flush_sent(self, conn: Any) -> None:
        """I/O thread, on an orderly close: wait (at most :data:`CLOSE_FLUSH_S`) until the bus
        has read everything this connection sent, so that values set just before ``close()``
        still reach the bus. Closing the connection discards what libdbus has not written yet
        (a burst of signals outruns the socket).

        A Ping to the bus daemon goes out behind everything posted before it, and the daemon
        reads a connection's messages in order: its reply means the rest was read. The reply
        is taken on the pump thread, as this thread is the one waiting.
        """
        done = threading.Event()
        flushed = [False]
        lowlevel = _lowlevel()

        def on_reply(reply: Any) -> None:  # pump thread
            # libdbus also calls this with an error of its own (a timeout, a disconnect)
            flushed[0] = reply.get_type() == METHOD_RETURN
            done.set()

        def ping() -> None:  # pump thread, after the sends posted before it
            try:
                msg = lowlevel.MethodCallMessage(codec.DBUS_NAME, codec.DBUS_PATH,
                                                 "org.freedesktop.DBus.Peer", "Ping")
                conn.send_message_with_reply(msg, on_reply, CLOSE_FLUSH_S + 1.0)
            except Exception:  # a connection already gone has nothing left to flush
                flushed[0] = True
                done.set()
        PUMP.post(ping)
        if not (done.wait(CLOSE_FLUSH_S) and flushed[0]):
            log.warning("%s: the bus did not take in what was sent within %g s; closing "
                        "anyway (the last messages may be lost)", self.endpoint, CLOSE_FLUSH_S)

    def start_request(self, request: Pending) -> None:
        if self.conn is None:
            raise ConnectionLostError("not connected", device=self.family, endpoint=self.endpoint)
        request.payload(self, request)

    def on_link_down(self) -> None:
        self.client._io_link_down(self)

    def on_established(self) -> None:
        self.client._io_established(self)

    # -- pump side (GLib thread: enqueue only) -----------------------------------------
    def _filter(self, conn: Any, msg: Any) -> Any:
        # Called for every message the bus delivers: kept to the fewest calls into the message.
        if msg.get_type() == SIGNAL:
            if msg.get_member() == "Disconnected" and is_disconnect(msg):
                self._enqueue(self._disconnected, conn)
            else:
                self._enqueue(self._on_signal, self, conn, msg)
        return self._not_handled

    def _on_object(self, conn: Any, msg: Any) -> Any:
        if msg.get_type() != METHOD_CALL:
            return _lowlevel().HANDLER_RESULT_NOT_YET_HANDLED
        self._enqueue(self.client._io_method_call, self, conn, msg)
        return _lowlevel().HANDLER_RESULT_HANDLED

    def _enqueue(self, fn: Callable[..., Any], *args: Any) -> None:
        """Any thread: run ``fn(*args)`` on the I/O thread, where nothing it raises can end
        the thread (see :meth:`_guarded`), after everything enqueued before it.

        Everything the pump hands over (signals, replies, method calls, the disconnect) goes
        through one inbox, so it keeps its order; only the call that finds the inbox empty
        schedules a drain, so a flood of signals costs one loop call per batch instead of one
        per message.
        """
        inbox = self._inbox
        inbox.append((fn, args))
        if len(inbox) == 1:  # nobody has scheduled a drain that will see this entry
            now = time.monotonic()
            if now - self._woken_at < FLOOD_GAP_S and PUMP.in_pump():
                # Messages are coming fast: wake the I/O thread once the pump has dispatched
                # what the bus sent so far (a burst costs one wake-up, not one per signal) ...
                self._wake_due = True
                PUMP.after_dispatch(self._wake_io)
            else:  # a lone message (or not on the pump): at once, no idle source to pay for
                self._woken_at = now
                self.call_soon_threadsafe(self._drain_inbox)
        elif self._wake_due and len(inbox) >= INBOX_WAKE_BATCH:
            # ... or at once when the burst grows this long: under a flood the pump may not
            # get idle for a while, and the I/O thread must not wait for it.
            self._wake_io()

    def _wake_io(self) -> None:
        """Pump thread: schedule the drain :meth:`_enqueue` deferred, unless it already did."""
        if self._wake_due:
            self._wake_due = False
            self._woken_at = time.monotonic()
            self.call_soon_threadsafe(self._drain_inbox)

    def _drain_inbox(self) -> None:
        """I/O thread: run what the inbox holds now. Value signals in a row are applied at
        once and published together (:meth:`_VictronClient._io_flush_batch`): the cache
        once, then their ``ValuesChanged`` events in order, each event still one signal."""
        inbox = self._inbox
        client = self.client
        on_signal = self._on_signal
        # only what is here now: the loop's readers and timers get their turn in a flood
        left = len(inbox)
        try:
            while left:
                # One try per batch, not per signal (signals are most of a flood); whatever
                # one entry raises is handled as _guarded would, and the rest still run.
                try:
                    while left:
                        left -= 1
                        fn, args = inbox.popleft()
                        if fn is on_signal:
                            on_signal(*args, True)
                        else:
                            self._guarded(client._io_flush_batch)
                            fn(*args)
                except Exception as exc:
                    self._failed(fn, exc)
        finally:
            self._guarded(client._io_flush_batch)
            if inbox:  # more arrived meanwhile; the pump saw a non-empty inbox and left it
                self.call_soon_threadsafe(self._drain_inbox)

    def _guarded(self, fn: Callable[..., Any], *args: Any) -> None:
        """I/O thread: what a peer sends must never end the session. A PyBurnerKitError is a
        peer's fault (counted, logged); anything else is our bug, logged with its traceback
        and counted, and the session goes on."""
        try:
            fn(*args)
        except Exception as exc:
            self._failed(fn, exc)

    def _failed(self, fn: Callable[..., Any], exc: Exception) -> None:
        if isinstance(exc, PyBurnerKitError):
            self.client._io_peer_error(None, str(exc))
        else:
            self.client._io_unexpected(fn, exc)

    # -- I/O thread helpers ------------------------------------------------------------
    def _disconnected(self, conn: Any) -> None:
        if conn is self.conn:
            self.link_failed(ConnectionLostError(
                "the bus connection closed (the dbus-daemon went away?)",
                device=self.family, endpoint=self.endpoint))

    def send(self, msg: Any) -> None:
        """Queue ``msg``; the pump thread, which owns the connection, sends it."""
        conn = self.conn
        if conn is None:
            return

        def go() -> None:  # pump thread
            try:
                conn.send_message(msg)
            except Exception as exc:
                self._enqueue(self._send_failed, conn, exc)
        PUMP.post(go)

    def _send_failed(self, conn: Any, exc: Exception) -> None:
        if conn is self.conn:
            self.link_failed(ConnectionLostError(f"sending failed: {exc}", device=self.family,
                                                 endpoint=self.endpoint))

    def call(self, dest: str, path: str, iface: str, member: str, signature: str,
             args: Tuple[Any, ...], on_reply: Callable[[Any, Any], Any],
             timeout: Optional[float]) -> None:
        """Send a method call; ``on_reply(ok, payload)`` runs on the I/O thread later.

        ``payload`` is the reply's argument list, or ``(error_name, error_text)``.
        """
        low = _lowlevel()
        conn = self.conn
        if conn is None:
            on_reply(False, ("org.freedesktop.DBus.Error.Disconnected", "not connected"))
            return
        try:
            msg = low.MethodCallMessage(dest, path, iface, member)
            if signature:
                msg.append(*args, signature=signature)
        except (TypeError, ValueError) as exc:  # bad input must never take the link down
            on_reply(False, ("org.freedesktop.DBus.Error.InvalidArgs", str(exc)))
            return
        seconds = 25.0 if timeout is None else max(0.001, min(timeout, 2_000_000.0))
        self.wire.sent((member, dest, path))

        def on_message(reply: Any) -> None:  # GLib thread (or the closing thread)
            self._enqueue(self._deliver_reply, conn, reply, on_reply)

        def go() -> None:  # pump thread, which owns the connection
            try:
                conn.send_message_with_reply(msg, on_message, seconds, require_main_loop=True)
            except Exception as exc:
                self._enqueue(on_reply, False,
                              ("org.freedesktop.DBus.Error.Disconnected", str(exc)))
        PUMP.post(go)

    def _deliver_reply(self, conn: Any, reply: Any, on_reply: Callable[[Any, Any], Any]) -> None:
        """I/O thread: hand a reply to its caller as ``(True, args)`` or ``(False, (error
        name, text))``; a reply dbus-python cannot decode, or an error whose text is not a
        string, becomes our :data:`_MALFORMED_REPLY` error (a ProtocolError for the caller)."""
        try:
            is_error = reply.get_type() == ERROR
            args = reply.get_args_list()
            name = str(reply.get_error_name() or "") if is_error else ""
        except Exception as exc:  # e.g. a type dbus-python cannot represent
            on_reply(False, (_MALFORMED_REPLY, f"undecodable reply: {type(exc).__name__}: "
                                               f"{exc}"))
            return
        if not is_error:
            on_reply(True, args)
            return
        text = args[0] if args else ""
        if not isinstance(text, str):
            on_reply(False, (_MALFORMED_REPLY, f"error {name} carried no text but "
                                               f"{type(text).__name__}"))
            return
        on_reply(False, (name, str.__str__(text)))

    def reply(self, call: Any, signature: str = "", *args: Any) -> None:
        if call.get_no_reply():
            return
        msg = _lowlevel().MethodReturnMessage(call)
        if signature:
            msg.append(*args, signature=signature)
        self.send(msg)

    def reply_error(self, call: Any, name: str, text: str) -> None:
        if call.get_no_reply():
            return
        self.send(_lowlevel().ErrorMessage(call, name, text))

    def error_for(self, what: str, payload: Tuple[str, str]) -> PyBurnerKitError:
        name, text = payload
        if name == _NO_REPLY and "disconnected" in text:
            # The daemon's answer when the service left the bus while our call was pending.
            return ConnectionLostError(f"{what}: the service left the bus before replying; "
                                       f"it was not retried ({text})", device=self.family,
                                       endpoint=self.endpoint)
        if name in _TIMEOUT_ERRORS:
            return DeviceTimeoutError(f"{what}: no reply ({text})", device=self.family,
                                      endpoint=self.endpoint)
        if name == "org.freedesktop.DBus.Error.Disconnected":
            return ConnectionLostError(f"{what}: {text}", device=self.family,
                                       endpoint=self.endpoint)
        if name == _MALFORMED_REPLY:
            return ProtocolError(f"{what}: {text}", device=self.family, endpoint=self.endpoint)
        if name == _UNKNOWN_METHOD:
            return UnsupportedFeatureError(f"{what}: {name}: {text}", code=name, detail=text,
                                           device=self.family, endpoint=self.endpoint)
        return DeviceError(f"{what}: {name}: {text}", code=name, detail=text,
                           device=self.family, endpoint=self.endpoint)


# ====================================================================== shared facade
def _one_bus(keyword: str, given: Optional[str], bus_address: Optional[str]) -> Optional[str]:
    """The endpoint from ``keyword`` or from its older spelling ``bus_address=`` (not both)."""
    if bus_address is None:
        return given
    if given is not None and given != bus_address:
        raise ConfigurationError(f"the bus was given twice ({keyword}={given!r} and "
                                 f"bus_address={bus_address!r}): give it once, as {keyword}")
    return bus_address


class _VictronClient(BaseClient[_BusSession]):
    """What the service and the monitor share: the bus endpoint, one session, peer errors.

    ``bus`` is the endpoint string (see :func:`.bus.parse_bus_endpoint`); None picks the
    bus as Venus programs do. ``label`` names the client in thread names and errors (None:
    derived from the bus).
    """

    family = "victron"
    _export = False

    #: How many warnings per client name a misbehaving peer at most (then DEBUG only).
    _WARNED_LIMIT = 256

    allow_writes: bool  # set by each subclass

    def __init__(self, bus: Optional[str], label: Optional[str], **kw: Any) -> None:
        self._sim_options: Optional[Dict[str, Any]] = None
        address: Optional[str] = None
        parsed = None if bus is None else parse_bus_endpoint(bus)
        if parsed is not None and parsed.is_sim:
            from .sim import VictronSim
            self._sim_options = VictronSim.parse_options(parsed.options)
            default_label = f"sim-{parsed.name}" if parsed.name else "sim"
        else:
            address = resolve_bus_address(bus)
            default_label = bus_label(address)
        super().__init__(label or default_label, **kw)
        #: The bus address the client connects to (for ``sim://``: None until
        #: :meth:`connect` has started the simulator, then its private bus).
        self.bus_address = address
        #: Malformed messages from peers that were dropped (each cost only its own entries).
        self.protocol_errors = 0
        self._unexpected_errors = 0   # our bugs caught on the I/O thread (tests assert 0)
        self._warned: Set[str] = set()

    def _make_session(self, **common: Any) -> _BusSession:
        if self._sim_options is not None:
            from .sim import VictronSim
            options = self._sim_options
            sim = self._own_simulator(lambda: VictronSim(**options).start())
            self.bus_address = sim.address
        address = self.bus_address
        assert address is not None  # resolved in __init__, or the simulator's just above
        return _BusSession(client=self, address=address, export=self._export, **common)

    def _guard_blocking(self) -> None:
        if PUMP.in_pump():
            raise RuntimeError("a blocking pyburnerkit call was made on the D-Bus pump thread; "
                               "it would deadlock")
        super()._guard_blocking()

    # -- I/O thread: misbehaving peers --------------------------------------------------
    def _io_peer_error(self, peer: Optional[str], what: str) -> None:
        """Count one malformed message; log it once per peer (later ones at DEBUG)."""
        self.protocol_errors += 1
        key = peer or "a peer"
        if key in self._warned:
            log.debug("%s: %s sent malformed data again: %s", self.endpoint, key, what)
            return
        if len(self._warned) >= self._WARNED_LIMIT:
            self._warned.clear()
        self._warned.add(key)
        log.warning("%s: ignoring malformed data from %s (only the bad entries are lost; "
                    "more from it are logged at DEBUG): %s", self.endpoint, key, what)

    def _io_unexpected(self, fn: Any, exc: BaseException) -> None:
        self.protocol_errors += 1
        self._unexpected_errors += 1
        log.error("%s: %s failed on the I/O thread; the message was dropped and the client "
                  "goes on", self.endpoint, getattr(fn, "__qualname__", fn), exc_info=exc)

    # -- I/O thread hooks (overridden) -------------------------------------------------
    def _io_opened(self, s: _BusSession) -> None:
        s.established()

    def _io_established(self, s: _BusSession) -> None:
        pass

    def _io_link_down(self, s: _BusSession) -> None:
        pass

    def _io_signal(self, s: _BusSession, conn: Any, msg: Any, defer: bool = False) -> None:
        pass

    def _io_flush_batch(self) -> None:
        """Publish what signals drained with ``defer`` left (I/O thread)."""

    def _io_method_call(self, s: _BusSession, conn: Any, msg: Any) -> None:
        s.reply_error(msg, _UNKNOWN_OBJECT, "nothing is exported here")

    # -- requests ----------------------------------------------------------------------
    def _request(self, description: str, dest: str, path: str, iface: str, member: str,
                 signature: str, args: Tuple[Any, ...],
                 convert: Callable[[_BusSession, List[Any]], R],
                 timeout: TimeoutArg = DEFAULT, *, is_write: bool = False,
                 prepare: Optional[Callable[..., None]] = None) -> R:
        """One D-Bus call on the I/O thread, blocking until ``convert(session, reply_args)``
        gave the result (it may raise a PyBurnerKitError) or ``timeout`` passed.

        ``prepare(session, request, send)``, when given, runs first on the I/O thread (e.g.
        to ask for limits); it calls ``send()`` to go on or fails ``request``. Nothing is sent
        once the request is done (the caller timed out or the client closed meanwhile).
        """
        seconds = resolve_timeout(timeout, self.timeout)
        request = self._make_request(description, dest, path, iface, member, signature, args,
                                     convert, seconds, is_write, prepare)
        result: R = self._call(request, seconds)
        return result

    def _request_nowait(self, description: str, dest: str, path: str, iface: str, member: str,
                        signature: str, args: Tuple[Any, ...],
                        convert: Callable[[_BusSession, List[Any]], Any],
                        timeout: TimeoutArg = DEFAULT, *, is_write: bool = False,
                        prepare: Optional[Callable[..., None]] = None) -> Pending:
        """:meth:`_request` without waiting: the request is submitted and returned."""
        seconds = resolve_timeout(timeout, self.timeout)
        request = self._make_request(description, dest, path, iface, member, signature, args,
                                     convert, seconds, is_write, prepare)
        session = self._require_session()
        self._outstanding.add(request)
        session.submit(request)
        return request

    def _make_request(self, description: str, dest: str, path: str, iface: str, member: str,
                      signature: str, args: Tuple[Any, ...],
                      convert: Callable[[_BusSession, List[Any]], Any],
                      seconds: Optional[float], is_write: bool,
                      prepare: Optional[Callable[..., None]]) -> Pending:
        """The Pending behind :meth:`_request` (the call itself starts on the I/O thread)."""

        def start(s: _BusSession, request: Pending) -> None:
            if prepare is None:
                send(s, request)
            else:
                prepare(s, request, lambda: send(s, request))

        def send(s: _BusSession, request: Pending) -> None:
            if request.done():
                return

            def done(ok: bool, payload: Any) -> None:
                if request.done():
                    return
                if not ok:
                    request.fail(s.error_for(description, payload))
                    return
                try:
                    request.resolve(convert(s, payload))
                except PyBurnerKitError as exc:
                    request.fail(exc)
                except Exception as exc:  # a malformed reply
                    request.fail(ProtocolError(f"{description}: unexpected reply "
                                               f"{codec._show(payload)}: {type(exc).__name__}: "
                                               f"{exc}", device=self.family,
                                               endpoint=self.endpoint))
            s.call(dest, path, iface, member, signature, args, done,
                   None if seconds is None else seconds + 0.5)

        return Pending(description, start, is_write=is_write)

    def _on_io(self, fn: Callable[..., Any], *args: Any) -> None:
        session = self._session
        if session is not None:
            session.call_soon_threadsafe(fn, session, *args)


# ====================================================================== Service (publish)
class _Item:
    __slots__ = ("path", "kind", "writable", "validator", "text", "unit", "description",
                 "text_failed")

    def __init__(self, path: str, kind: Optional[type], writable: bool,
                 validator: Optional[Callable[[str, Any], Any]],
                 text: Optional[Union[str, Callable[[Any], str]]], unit: str,
                 description: str) -> None:
        self.path = path
        self.kind = kind
        self.writable = writable
        self.validator = validator
        self.text = text
        self.unit = unit
        self.description = description
        self.text_failed = False

    def format(self, value: Any) -> str:
        """GetText for ``value``; never raises (a failing ``text`` falls back to the default
        text, logged once), because it runs on the I/O thread for every reply and signal."""
        if value is None:
            return "---"
        try:
            if callable(self.text):
                return str(self.text(value))
            if isinstance(self.text, str):
                return self.text.format(value)
        except Exception:
            if not self.text_failed:
                self.text_failed = True
                log.warning("text for %s failed on %r; using the default text", self.path,
                            value, exc_info=True)
        return codec.default_text(self.path, value) + self.unit


class VictronService(_VictronClient):
    """Publish one ``com.victronenergy.*`` service (a driver's side of the bus).

    Build the items, then :meth:`register` (which connects if needed and claims the name only
    once every path exists)::

        svc = VictronService("com.victronenergy.grid.mymeter")
        svc.add_mandatory_paths(product_name="My meter", device_instance=30)
        svc.add_item("/Ac/Power", 0.0, unit="W")
        svc.register()
        with svc.batch() as b:             # one ItemsChanged for both
            b["/Ac/Power"] = 1234.0
            b["/Ac/L1/Power"] = 1234.0
        svc.close()

    :param name: the well-known name to claim (``com.victronenergy.<type>.<suffix>``). It
        comes first because it is what the service *is*; it also names the client's threads
        (``pyburnerkit-victron-<name>-io``).
    :param bus: the endpoint, second (positional or ``bus=``) as in velib's
        ``VeDbusService(name, bus)``: ``"system"``, ``"session"``, a D-Bus address
        (``"unix:path=/run/dbus/system_bus_socket"``, ``"tcp:host=10.0.0.2,port=78"``) or
        ``"sim://[?interval=1&seed=0&demo=1]"`` (a private simulated Venus bus, started by
        :meth:`connect` and closed with the service: see :attr:`simulator`). None (default)
        picks the bus as Venus programs do: the session bus when
        ``DBUS_SESSION_BUS_ADDRESS`` is set, else the system bus.
    :param bus_address: the older spelling of ``bus`` (still accepted; give one of them).
    :param allow_writes: needed only by :meth:`allocate_device_instance`, which creates a
        setting in localsettings; publishing our own values never changes another device.
    :raises ConfigurationError: a bad name or endpoint (no I/O is done here).

    Remote SetValue replies: 0 accepted (also for an unchanged value), 1 not writable or
    not coercible to the item's type, 2 refused by the item's validator.
    """

    _export = True

    def __init__(self, name: str, bus: Optional[str] = None, *,
                 bus_address: Optional[str] = None, allow_writes: bool = False,
                 **kw: Any) -> None:
        codec.check_service_name(name)
        super().__init__(_one_bus("bus", bus, bus_address), name, **kw)
        self.name = name
        #: Needed only for :meth:`allocate_device_instance`, which changes localsettings;
        #: publishing our own values never needs it.
        self.allow_writes = bool(allow_writes)
        self._items: Dict[str, _Item] = {}
        self._values: Dict[str, Any] = {}
        self._registered = False
        self._validations: Dict[int, Tuple[Any, Any, str, Any]] = {}
        self._token = 0
        self._tls = threading.local()
        self._dispatcher.subscribe(self._run_validator, (WriteRequested,))

    # -- items -------------------------------------------------------------------------
    def add_item(self, path: str, value: Any = None, *, writable: bool = False,
                 kind: Optional[type] = None, unit: str = "",
                 text: Optional[Union[str, Callable[[Any], str]]] = None,
                 validator: Optional[Callable[[str, Any], Any]] = None,
                 description: str = "") -> None:
        """Add a path. ``kind`` (int, float, str, bool, list) fixes the type (default: the
        type of ``value``, none for None); ``text`` is a format string (``"{:.0f} W"``) or a
        callable for GetText; ``unit`` is appended to the default text. ``validator(path,
        value) -> bool`` decides remote writes on the events thread (writable items only).
        After :meth:`register` the new path is announced with an ItemsChanged.
        """
        codec.check_path(path)
        if self._closing:
            raise self._closed_error()
        if path in self._items:
            raise ConfigurationError(f"path {path} already exists on {self.name}")
        if kind is None and value is not None:
            kind = list if isinstance(value, tuple) else type(value)
        if kind not in (None, int, float, str, bool, list):
            raise ConfigurationError(f"kind={kind!r} for {path}: use int, float, str, bool, "
                                     f"list or None")
        if validator is not None and not callable(validator):
            raise ConfigurationError(f"validator for {path} must be callable")
        if validator is not None and not writable:
            raise ConfigurationError(f"{path} has a validator but writable=False")
        if text is not None and not (callable(text) or isinstance(text, str)):
            raise ConfigurationError(f"text for {path} must be a format string like "
                                     f"'{{:.1f}} W' or a callable, got {text!r}")
        value = codec.coerce(value, kind, name=path)
        codec.wrap(value)  # refuse unsendable values now
        if isinstance(text, str) and value is not None:
            try:
                text.format(value)
            except Exception as exc:
                raise ConfigurationError(f"text {text!r} for {path} cannot format its value "
                                         f"{value!r}: {exc}") from None
        item = _Item(path, kind, bool(writable), validator, text, unit, description)
        with self._lock:
            items = dict(self._items)
            items[path] = item
            self._items = items
            if self._session is None:
                self._values[path] = value
                return
        self._on_io(self._io_apply, {path: value}, True)

    def add_mandatory_paths(self, *, process_name: str = "pyburnerkit",
                            process_version: str = "", connection: str = "D-Bus",
                            device_instance: int = 0, product_id: int = 0xFFFF,
                            product_name: str = "", firmware_version: Any = "",
                            hardware_version: Any = "", connected: int = 1) -> None:
        """The nine paths every Venus service publishes (spec 2.2).

        :raises ConfigurationError: ``device_instance`` outside 0..2147483647 (an Int32 on
            the bus), ``product_id`` outside 0..65535 (a u16), ``connected`` not 0 or 1.
        """
        from .. import __version__
        instance = check_range("device_instance", device_instance, 0, 2 ** 31 - 1,
                               integer=True)
        product = check_range("product_id", product_id, 0, 0xFFFF, integer=True)
        online = check_range("connected", connected, 0, 1, integer=True)
        self.add_item("/Mgmt/ProcessName", process_name)
        self.add_item("/Mgmt/ProcessVersion", process_version or __version__)
        self.add_item("/Mgmt/Connection", connection)
        self.add_item("/DeviceInstance", instance, kind=int)
        self.add_item("/ProductId", product, kind=int)
        self.add_item("/ProductName", product_name)
        self.add_item("/FirmwareVersion", firmware_version)
        self.add_item("/HardwareVersion", hardware_version)
        self.add_item("/Connected", online, kind=int)

    def paths(self) -> List[str]:
        return list(self._items)

    def get(self, path: str, default: Any = None) -> Any:
        """The current local value of ``path`` (None = invalid)."""
        return self._values.get(path, default)

    def __getitem__(self, path: str) -> Any:
        if path not in self._items:
            raise KeyError(path)
        return self._values.get(path)

    def __setitem__(self, path: str, value: Any) -> None:
        self.set(path, value)

    def __contains__(self, path: object) -> bool:
        return path in self._items

    def _coerce(self, path: str, value: Any) -> Any:
        item = self._items.get(path)
        if item is None:
            raise ConfigurationError(f"{path} is not a path of {self.name} (add_item first)")
        value = codec.coerce(value, item.kind, name=path)
        codec.wrap(value)
        return value

    def set(self, path: str, value: Any) -> None:
        """Update one value locally: one ItemsChanged when it changed. Non-blocking; never
        runs the validator. ``None`` makes the value invalid."""
        self.update({path: value})

    def update(self, values: Mapping[str, Any]) -> None:
        """Update several values at once: one ItemsChanged holding the ones that changed."""
        changes = {path: self._coerce(path, v) for path, v in values.items()}
        if self._closing:
            raise self._closed_error()
        if not changes:
            return
        with self._lock:
            if self._session is None:
                self._values.update(changes)
                return
        self._on_io(self._io_apply, changes, False)

    @contextlib.contextmanager
    def batch(self) -> Iterator["_Batch"]:
        """``with svc.batch() as b: b[path] = v`` sends one ItemsChanged when the block ends
        (nothing when it raises: all or nothing). Nested batches each flush their own
        changes. Works in any state; never connects or closes the service."""
        batch = _Batch(self)
        yield batch
        batch.flush()

    def __enter__(self) -> Any:
        """The ``with`` block that brings the service up also takes it down; a ``with`` on a
        service that is already up is aiovelib's and velib's bundled update.

        * Not connected yet (``with VictronService(...) as svc:``): connects (blocking, as
          :meth:`connect`), returns the service, and :meth:`close` runs when the block ends.
        * Already connected (``svc.register()`` ... ``with svc as s: s[path] = v``): returns
          a batch; every value set on it goes out in **one** ItemsChanged when the block ends,
          also when the block raises (what was set is published, as the seeds do; use
          :meth:`batch` for all-or-nothing). The service stays up.

        :meth:`closing` always closes at the end, whatever the state.

        :raises ClientClosedError: the service was closed.
        """
        if self._closing:
            raise self._closed_error()
        stack = self._contexts()
        if self._session is None:
            self.connect()
            stack.append(None)
            return self
        batch = _Batch(self)
        stack.append(batch)
        return batch

    def __exit__(self, *exc_info: Any) -> None:
        stack = self._contexts()
        batch = stack.pop() if stack else None
        if batch is None:
            self.close()
        elif not self._closing:
            batch.flush()

    def _contexts(self) -> List[Optional["_Batch"]]:
        """This thread's open ``with`` blocks on the service (None: one that closes)."""
        stack: Optional[List[Optional[_Batch]]] = getattr(self._tls, "stack", None)
        if stack is None:
            stack = []
            self._tls.stack = stack
        return stack

    @contextlib.contextmanager
    def closing(self, timeout: TimeoutArg = DEFAULT) -> Iterator["VictronService"]:
        """``with svc.closing() as svc:`` connects if needed (blocking, as :meth:`connect`)
        and closes the service when the block ends, whatever state it was in. The explicit
        form of the lifecycle ``with`` (see ``__enter__``)."""
        try:
            if self._session is None:
                self.connect(timeout)
            yield self
        finally:
            self.close()

    def remove_item(self, path: str) -> None:
        """Remove a path (aiovelib's ``remove_item``, velib's ``del service[path]``).
        Non-blocking. Once the service is up, watchers first get one ItemsChanged making the
        value invalid (so nobody keeps a stale value), then the path is gone: GetValue on it
        fails with ``UnknownObject`` and GetItems leaves it out. ``del svc[path]`` is the same.

        :raises KeyError: ``path`` is not a path of this service.
        :raises ClientClosedError: the service was closed.
        """
        codec.check_path(path)
        if self._closing:
            raise self._closed_error()
        with self._lock:
            if path not in self._items:
                raise KeyError(f"{path} is not a path of {self.name}")
            items = dict(self._items)
            del items[path]
            self._items = items
            if self._session is None:
                self._values.pop(path, None)
                return
        self._on_io(self._io_remove_item, path)

    def __delitem__(self, path: str) -> None:
        self.remove_item(path)

    # -- lifecycle ---------------------------------------------------------------------
    def register(self, timeout: TimeoutArg = DEFAULT) -> "VictronService":
        """Connect if needed, then claim the name (once all paths exist).

        :raises NameTakenError: another connection owns the name.
        """
        if self._session is None:
            self.connect()
        if "/DeviceInstance" not in self._items and self.name != codec.SETTINGS_SERVICE:
            log.warning("%s registers without /DeviceInstance: scanners may skip it "
                        "(use add_mandatory_paths)", self.name)

        def convert(s: _BusSession, args: List[Any]) -> "VictronService":
            code = int(args[0])
            if code in (1, 4):  # primary owner / already owner
                self._registered = True
                return self
            raise NameTakenError(f"the name {self.name} is already taken on {s.address} "
                                 f"(RequestName returned {code}); is another driver running?",
                                 device=self.family, endpoint=self.endpoint)
        return self._request(f"RequestName {self.name}", codec.DBUS_NAME, codec.DBUS_PATH,
                             codec.DBUS_NAME, "RequestName", "su", (self.name, 4), convert,
                             timeout)

    @property
    def registered(self) -> bool:
        return self._registered and self.connected

    def allocate_device_instance(self, unique_id: str, device_class: str, preferred: int,
                                 timeout: TimeoutArg = DEFAULT) -> int:
        """Ask localsettings for a VRM device instance (``ClassAndVrmInstance``), publish it
        as ``/DeviceInstance`` and return it. Call after :meth:`connect`, before register.
        Blocks until localsettings answered. It creates a setting on the GX, so the service
        must be opened with ``allow_writes=True``.
        If this call times out, the device may still apply the write later; it is never
        retried automatically.

        :raises WriteNotAllowedError: the service was not opened with ``allow_writes=True``.
        """
        if not self.allow_writes:
            raise WriteNotAllowedError(
                f"allocating a device instance for {unique_id!r} creates a setting in "
                f"{codec.SETTINGS_SERVICE}: open the service with allow_writes=True",
                device=self.family, endpoint=self.endpoint)
        if self._session is None:
            self.connect()
        instance = _allocate(self, unique_id, device_class, preferred, timeout)
        if "/DeviceInstance" in self._items:
            self.set("/DeviceInstance", instance)
        else:
            self.add_item("/DeviceInstance", instance, kind=int)
        return instance

    # -- I/O thread --------------------------------------------------------------------
    def _io_established(self, s: _BusSession) -> None:
        if self._registered:  # a reconnect: claim the name again
            def done(ok: bool, payload: Any) -> None:
                if not ok or int(payload[0]) not in (1, 4):
                    s.link_failed(NameTakenError(f"could not re-claim {self.name}",
                                                 device=self.family, endpoint=self.endpoint))
            s.call(codec.DBUS_NAME, codec.DBUS_PATH, codec.DBUS_NAME, "RequestName", "su",
                   (self.name, 4), done, self.timeout)

    def _io_remove_item(self, s: _BusSession, path: str) -> None:
        if path in self._items:
            return  # added again meanwhile: its own update follows in order
        old = self._values.pop(path, None)
        if old is not None and s.conn is not None:
            msg = _lowlevel().SignalMessage("/", codec.BUSITEM, "ItemsChanged")
            msg.append(codec.items_dict([(path, None, "")]), signature="a{sa{sv}}")
            s.send(msg)

    def _io_apply(self, s: _BusSession, changes: Mapping[str, Any], force: bool) -> None:
        changed = []
        items = self._items
        for path, value in changes.items():
            if path not in items:
                continue  # removed after this update was queued
            if not force and path in self._values and _same(self._values[path], value):
                continue
            self._values[path] = value
            changed.append(path)
        if changed and s.conn is not None:
            self._emit_items_changed(s, changed)

    def _emit_items_changed(self, s: _BusSession, paths: Iterable[str]) -> None:
        items = self._items
        payload = codec.items_dict((p, self._values.get(p), items[p].format(self._values.get(p)))
                                   for p in paths if p in items)
        msg = _lowlevel().SignalMessage("/", codec.BUSITEM, "ItemsChanged")
        msg.append(payload, signature="a{sa{sv}}")
        s.send(msg)

    def _io_method_call(self, s: _BusSession, conn: Any, msg: Any) -> None:
        if conn is not s.conn:
            return
        path, member, iface = msg.get_path(), msg.get_member(), msg.get_interface()
        self._wire.received((member, path))
        try:
            if iface == codec.INTROSPECTABLE or member == "Introspect":
                s.reply(msg, "s", self._introspect(path))
                return
            if iface not in (None, codec.BUSITEM):
                s.reply_error(msg, _UNKNOWN_METHOD, f"no interface {iface}")
                return
            item = self._items.get(path)
            if member == "GetItems" and path == "/":
                s.reply(msg, "a{sa{sv}}", codec.items_dict(
                    (p, self._values.get(p), it.format(self._values.get(p)))
                    for p, it in self._items.items()))
            elif member == "GetValue":
                if item is not None:
                    s.reply(msg, "v", codec.wrap(self._values.get(path), 1))
                elif self._is_node(path):
                    s.reply(msg, "v", codec.wrap(self._tree(path, False), 1))
                else:
                    s.reply_error(msg, _UNKNOWN_OBJECT, f"no path {path}")
            elif member == "GetText":
                if item is not None:
                    s.reply(msg, "s", item.format(self._values.get(path)))
                elif self._is_node(path):
                    s.reply(msg, "v", codec.wrap(self._tree(path, True), 1))
                else:
                    s.reply_error(msg, _UNKNOWN_OBJECT, f"no path {path}")
            elif member == "SetValue" and item is not None:
                args = msg.get_args_list()
                self._io_set_value(s, msg, item, args[0] if args else None)
            elif member == "GetDescription" and item is not None:
                s.reply(msg, "s", item.description or "No description given")
            else:
                s.reply_error(msg, _UNKNOWN_METHOD, f"{member} is not supported on {path}")
        except PyBurnerKitError as exc:
            s.reply_error(msg, "org.freedesktop.DBus.Error.Failed", str(exc))
        except Exception as exc:  # never leave a caller without a reply
            log.exception("%s: answering %s on %s failed", self.name, member, path)
            s.reply_error(msg, "org.freedesktop.DBus.Error.Failed", f"{type(exc).__name__}: "
                                                                    f"{exc}")

    def _is_node(self, path: str) -> bool:
        return any(codec.under(p, path) for p in self._items)

    def _tree(self, base: str, text: bool) -> Dict[str, Any]:
        out = {}
        for p, item in self._items.items():
            if codec.under(p, base):
                value = self._values.get(p)
                out[codec.relative(p, base)] = item.format(value) if text else value
        return out

    def _introspect(self, path: str) -> str:
        children = set()
        for p in self._items:
            if codec.under(p, path):
                children.add(codec.relative(p, path).split("/")[0])
        text_type = "s" if path in self._items else "v"   # root and nodes: velib's dict
        methods = ("<interface name='com.victronenergy.BusItem'>"
                   "<method name='GetValue'><arg direction='out' type='v'/></method>"
                   f"<method name='GetText'><arg direction='out' type='{text_type}'/></method>"
                   "<method name='SetValue'><arg direction='in' type='v'/>"
                   "<arg direction='out' type='i'/></method>"
                   "<method name='GetItems'><arg direction='out' type='a{sa{sv}}'/></method>"
                   "<signal name='ItemsChanged'><arg type='a{sa{sv}}'/></signal>"
                   "<signal name='PropertiesChanged'><arg type='a{sv}'/></signal>"
                   "</interface>")
        nodes = "".join(f"<node name='{c}'/>" for c in sorted(children))
        return (f"<node><interface name='{codec.INTROSPECTABLE}'><method name='Introspect'>"
                f"<arg direction='out' type='s'/></method></interface>{methods}{nodes}</node>")

    def _io_set_value(self, s: _BusSession, msg: Any, item: _Item, raw: Any) -> None:
        if not item.writable:
            s.reply(msg, "i", codec.SET_REFUSED)
            return
        try:
            value = codec.coerce(codec.unwrap(raw), item.kind, name=item.path)
        except PyBurnerKitError:
            s.reply(msg, "i", codec.SET_REFUSED)
            return
        if _same(self._values.get(item.path), value):
            s.reply(msg, "i", codec.SET_OK)
            return
        sender = msg.get_sender() or ""
        if item.validator is None:
            self._io_accept(s, msg, item.path, value, sender)
            return
        self._token += 1
        self._validations[self._token] = (s.conn, msg, item.path, value)
        self._dispatcher.publish(_Validate(self.name, item.path, value, sender, self._token))

    def _io_accept(self, s: _BusSession, msg: Any, path: str, value: Any, sender: str) -> None:
        self._values[path] = value
        self._emit_items_changed(s, [path])
        s.reply(msg, "i", codec.SET_OK)
        self._dispatcher.publish(ValueWritten(self.name, path, value, sender))

    def _io_validated(self, s: _BusSession, token: int, accepted: bool) -> None:
        entry = self._validations.pop(token, None)
        if entry is None:
            return
        conn, msg, path, value = entry
        if conn is not s.conn:
            return  # the link dropped meanwhile: the caller got an error already
        if path not in self._items:
            s.reply(msg, "i", codec.SET_REFUSED)   # removed while its validator decided
            return
        if accepted:
            self._io_accept(s, msg, path, value, msg.get_sender() or "")
        else:
            s.reply(msg, "i", codec.SET_VETOED)

    # -- events thread -----------------------------------------------------------------
    def _run_validator(self, event: WriteRequested) -> None:
        if not isinstance(event, _Validate):
            return
        item = self._items.get(event.path)
        accepted = False
        try:
            accepted = bool(item is not None and item.validator is not None
                            and item.validator(event.path, event.value))
        except Exception:
            log.exception("validator for %s raised: the write is refused", event.path)
        self._on_io(self._io_validated, event.token, accepted)


class _Validate(WriteRequested):
    token: int

    def __init__(self, service: str, path: str, value: Any, sender: str, token: int) -> None:
        super().__init__(service, path, value, sender)
        object.__setattr__(self, "token", token)


class _Batch:
    """The collector of :meth:`VictronService.batch` and of ``with svc as s``: values are
    checked (type, sendable) as they are set, and go out together on :meth:`flush`."""

    def __init__(self, service: VictronService) -> None:
        self._service = service
        self.changes: Dict[str, Any] = {}

    def __setitem__(self, path: str, value: Any) -> None:
        self.changes[path] = self._service._coerce(path, value)

    def __getitem__(self, path: str) -> Any:
        if path in self.changes:
            return self.changes[path]
        return self._service[path]

    def __contains__(self, path: object) -> bool:
        return path in self._service

    def flush(self) -> None:
        """Send what was set so far as one ItemsChanged (only the values that changed) and
        start afresh. Non-blocking."""
        changes, self.changes = self.changes, {}
        self._service.update(changes)


def _same(a: Any, b: Any) -> bool:
    return type(a) is type(b) and a == b


# ====================================================================== Monitor (watch)
#: (interface, member) pairs :meth:`VictronMonitor.call_method` sends without allow_writes.
_READ_ONLY_METHODS = frozenset(
    [(codec.BUSITEM, m) for m in ("GetValue", "GetText", "GetItems", "GetMin", "GetMax",
                                  "GetDefault", "GetDescription")]
    + [(codec.SETTINGS_IFACE, m) for m in ("GetAttributes", "GetSilent")]
    + [(codec.INTROSPECTABLE, "Introspect"), ("org.freedesktop.DBus.Properties", "Get"),
       ("org.freedesktop.DBus.Properties", "GetAll"), ("org.freedesktop.DBus.Peer", "Ping"),
       ("com.victronenergy.VregLink", "GetVreg")]
    + [(codec.DBUS_NAME, m) for m in ("ListNames", "GetNameOwner", "NameHasOwner",
                                      "ListActivatableNames", "GetId")])


def _is_dbus_value(value: Any) -> bool:
    return type(value).__module__.startswith(("dbus", "_dbus"))


class WriteCompleted(ValueWritten):
    """A :meth:`VictronMonitor.set_value_nowait` finished (``error`` None means accepted)."""

    error: Optional[BaseException]

    def __init__(self, service: str, path: str, value: Any, sender: str,
                 error: Optional[BaseException], future: Any) -> None:
        super().__init__(service, path, value, sender)
        object.__setattr__(self, "error", error)
        object.__setattr__(self, "_future", future)


def _signal_payload(msg: Any, member: str) -> Any:
    """The ``{path: entry}`` dict a BusItem signal carries (still dbus-typed): ItemsChanged's
    body, or PropertiesChanged's entry under the object path; None for a signal that is not
    ours to read.

    :raises ProtocolError: a message whose body is not one value.
    """
    if member == "ItemsChanged":
        if not msg.has_path("/"):
            return None  # only the root sends it
        path = "/"
    elif member == "PropertiesChanged":
        path = msg.get_path()
    else:
        return None
    try:
        args = msg.get_args_list()
    except Exception as exc:  # a type dbus-python cannot represent
        raise ProtocolError(f"{member}: undecodable body: {type(exc).__name__}: {exc}") \
            from None
    if len(args) != 1:
        raise ProtocolError(f"{member} carried {len(args)} values, not one dict")
    return args[0] if member == "ItemsChanged" else {path: args[0]}


def _split_items_fast(payload: Any) -> Tuple[Dict[str, codec.Entry],
                                             Mapping[str, codec.Limits], Sequence[str]]:
    """:func:`codec.split_items` for the shape nearly every signal has (paths to dicts of
    ``Value`` and ``Text``), without its generic type checks; anything else - limits, a
    missing key, an odd type, a bad path - goes to :func:`codec.split_items` whole, so
    the checks and the problems it reports stay the codec's."""
    entries = _fast_items(payload, _as_entry)
    if entries is None:
        return codec.split_items(payload)
    return entries, _NO_LIMITS, _NO_PROBLEMS


def _as_entry(value: Any, text: str) -> codec.Entry:
    return (True, value, text)


def _fast_items(payload: Any, make: Callable[[Any, str], E]) -> Optional[Dict[str, E]]:
    """``{path: make(value, text)}`` with plain values, when every entry of ``payload`` has
    the usual shape (only ``Value`` and ``Text``, a well-formed path, a value of a common
    type); None for anything else, which the caller hands to the codec whole."""
    if type(payload) is not _DICT_TYPE:
        return None
    items: Dict[str, E] = {}
    for path, entry in payload.items():
        if type(entry) is not _DICT_TYPE or len(entry) != 2 or type(path) is not _STR_TYPE:
            return None
        try:
            value, text = entry["Value"], entry["Text"]
        except KeyError:
            return None
        if not isinstance(text, str):
            return None
        if path not in _GOOD_PATHS:
            if not _PATH_MATCH(path):
                return None
            if len(_GOOD_PATHS) >= _GOOD_PATHS_MAX:
                _GOOD_PATHS.clear()  # a peer inventing paths costs re-checks, never memory
            _GOOD_PATHS.add(str.__str__(path))
        kind = type(value)
        if kind is _DOUBLE_TYPE:
            plain: Any = float(value)
        elif kind in _INT_TYPES:
            plain = int(value)
        elif kind is _STR_TYPE:
            plain = str.__str__(value)
        else:
            try:
                plain = codec.unwrap(value)
            except ProtocolError:
                return None
        items[str.__str__(path)] = make(plain, str.__str__(text))
    return items


_new_object = object.__new__
_now = time.time


def _item_value(value: Any, text: str) -> ItemValue:
    """``ItemValue(value, text)`` without the frozen dataclass's ``__init__`` (one per path of
    every signal: half the cost). Same fields, same object; tests/victron/test_hot_path.py
    fails if the dataclass grows a field this does not set."""
    item = _new_object(ItemValue)
    fields = item.__dict__
    fields["value"] = value
    fields["text"] = text
    return item


def _values_changed(service: str, values: Mapping[str, ItemValue]) -> ValuesChanged:
    """``ValuesChanged(service, values)`` the way :func:`_item_value` makes an item."""
    event = _new_object(ValuesChanged)
    fields = event.__dict__
    fields["timestamp"] = _now()
    fields["service"] = service
    fields["values"] = values
    return event


#: shared empty results of :func:`_split_items_fast`, read-only so no caller can change them
_NO_LIMITS: Mapping[str, codec.Limits] = MappingProxyType({})
_NO_PROBLEMS: Sequence[str] = ()
#: object paths already found well-formed (a set lookup instead of a regex match per entry)
_GOOD_PATHS: Set[str] = set()
_GOOD_PATHS_MAX = 4096


_DICT_TYPE: Any = None
_STR_TYPE: Any = None
_DOUBLE_TYPE: Any = None
#: the integer types codec.unwrap turns into int (dbus.Boolean, an int too, is left to it)
_INT_TYPES: FrozenSet[Any] = frozenset()
_PATH_MATCH = codec._PATH_RE.match


def _init_fast_types() -> None:
    global _DICT_TYPE, _STR_TYPE, _DOUBLE_TYPE, _INT_TYPES
    dbus = require("dbus", "victron")
    _DICT_TYPE, _STR_TYPE, _DOUBLE_TYPE = dbus.Dictionary, dbus.String, dbus.Double
    _INT_TYPES = frozenset((dbus.Byte, dbus.Int16, dbus.UInt16, dbus.Int32, dbus.UInt32,
                            dbus.Int64, dbus.UInt64))


class _Values(Mapping[str, ItemValue]):
    """An immutable ``{path: ItemValue}`` snapshot that shares its unchanged paths with the
    snapshot it came from: a ``base`` dict plus the paths changed since (``delta``).

    Neither dict is ever modified after the snapshot is made, so any thread may read it
    while the I/O thread makes the next one. The delta is folded into a fresh base once it
    holds more than an eighth of the paths, so a signal costs O(paths it changed) amortised.
    """

    __slots__ = ("_base", "_delta", "_extra")

    def __init__(self, base: Dict[str, ItemValue], delta: Dict[str, ItemValue],
                 extra: int) -> None:
        self._base = base
        self._delta = delta
        self._extra = extra  # paths in delta that base lacks

    @classmethod
    def updated(cls, previous: Mapping[str, ItemValue],
                changes: Dict[str, ItemValue]) -> "_Values":
        if isinstance(previous, _Values):
            base, delta, extra = previous._base, dict(previous._delta), previous._extra
        else:
            base, delta, extra = dict(previous), {}, 0
        for path, item in changes.items():
            if path not in base and path not in delta:
                extra += 1
            delta[path] = item
        if len(delta) > 16 and len(delta) * 8 > len(base):
            merged = dict(base)
            merged.update(delta)
            return cls(merged, {}, 0)
        return cls(base, delta, extra)

    def __getitem__(self, path: str) -> ItemValue:
        delta = self._delta
        if path in delta:
            return delta[path]
        return self._base[path]

    def get(self, path: str, default: Any = None) -> Any:
        item = self._delta.get(path)
        return item if item is not None else self._base.get(path, default)

    def __contains__(self, path: object) -> bool:
        return path in self._delta or path in self._base

    def __iter__(self) -> Iterator[str]:
        delta = self._delta
        for path in self._base:
            yield path
        if self._extra:
            base = self._base
            for path in delta:
                if path not in base:
                    yield path

    def __len__(self) -> int:
        return len(self._base) + self._extra

    def __repr__(self) -> str:
        return repr(dict(self.items()))


class _Svc:
    __slots__ = ("name", "owner", "values", "added", "scan_id", "signal_paths", "instance",
                 "service_class")

    def __init__(self, name: str, owner: Optional[str], scan_id: int) -> None:
        self.name = name
        self.service_class = codec.service_class(name)  # once, not per signal
        self.owner = owner
        self.values: Mapping[str, ItemValue] = {}
        self.added = False
        self.scan_id = scan_id
        self.signal_paths: Set[str] = set()
        self.instance: Optional[int] = None


class VictronMonitor(_VictronClient):
    """Watch ``com.victronenergy.*`` services and control them (a GUI's or a tool's side).

    ``service_types`` maps a service class (``"com.victronenergy.battery"``) to the paths to
    track (``None`` means all); by default every service and path is tracked. Reads come from
    the cache and never block; :meth:`set_value` blocks until the service replied.
    Writes (``set_value*``, every ``settings`` call that changes localsettings) need
    ``allow_writes=True`` (they can switch inverters and chargers) and are checked against the
    limits the bus reports before anything is sent. ``protocol_errors`` counts the malformed
    messages of peers that were dropped (each costs only its own entries).

    :param endpoint: the bus: ``"system"``, ``"session"``, a D-Bus address
        (``"unix:path=/run/dbus/system_bus_socket"``, ``"tcp:host=10.0.0.2,port=78"``) or
        ``"sim://[?interval=1&seed=0&demo=1]"`` (a private simulated Venus bus with
        localsettings and demo services, started by :meth:`connect` and closed with the
        monitor: see :attr:`simulator`). None (default) picks the bus as Venus programs do:
        the session bus when ``DBUS_SESSION_BUS_ADDRESS`` is set, else the system bus.
    :param bus_address: the older spelling of ``endpoint`` (still accepted; give one of them).
    :raises ConfigurationError: a bad endpoint or ``service_types`` (no I/O is done here).
    """

    def __init__(self, endpoint: Optional[str] = None, *, bus_address: Optional[str] = None,
                 service_types: Optional[Mapping[str, Optional[Iterable[str]]]] = None,
                 allow_writes: bool = False, **kw: Any) -> None:
        super().__init__(_one_bus("endpoint", endpoint, bus_address), None, **kw)
        self.allow_writes = bool(allow_writes)
        self._types: Optional[Dict[str, Optional[FrozenSet[str]]]] = None
        if service_types is not None:
            self._types = {}
            for cls, paths in service_types.items():
                codec.check_service_name(cls)
                self._types[codec.service_class(cls)] = (
                    None if paths is None else frozenset(codec.check_path(p) for p in paths))
        self._settings_paths: Set[str] = set()
        #: alias -> settings path (replaced whole on the I/O thread; any thread reads it)
        self._aliases: Dict[str, str] = {}
        #: service -> path -> limits the bus reported (written on the I/O thread, replaced
        #: whole, so any thread may read it).
        self._limits: Dict[str, Dict[str, codec.Limits]] = {}
        self._units: Dict[Tuple[str, str], str] = {}
        self._svcs: Dict[str, _Svc] = {}
        # signals drained in one batch, published by _io_flush_batch (I/O thread only)
        self._batch_svcs: Dict[str, _Svc] = {}
        self._batch_events: List[ValuesChanged] = []
        self._batch_signals = self._batch_paths = 0
        self._owners: Dict[str, Set[str]] = {}
        self._scan_seq = 0
        self._initial: Optional[Set[str]] = None
        self._scanned = threading.Event()
        self.settings = VictronSettings(self)
        self._dispatcher.subscribe(self._finish_future, (WriteCompleted,))

    # -- lifecycle ---------------------------------------------------------------------
    def connect(self, timeout: TimeoutArg = DEFAULT) -> "VictronMonitor":
        """Connect, discover the services and wait (within the timeout) for their first scan."""
        seconds = resolve_timeout(timeout, self.connect_timeout)
        deadline = Deadline(seconds)
        super().connect(seconds)
        try:
            self.wait_for(lambda c: c._scanned.is_set(), deadline.remaining())
        except DeviceTimeoutError:
            # The bus answered; a slow service is still being scanned and will be added (with
            # a ServiceAdded event) when its GetItems answers.
            log.warning("%s: the first scan of every service did not finish within %s s; "
                        "connected anyway", self.endpoint, seconds)
        return self

    # -- cache reads (never block) -----------------------------------------------------
    def service(self, name: str) -> Optional[ServiceInfo]:
        """The service's snapshot, or None when it is not on the bus (or not tracked)."""
        info: Optional[ServiceInfo] = self._cache.value(name)
        return info

    def services(self, service_class: Optional[str] = None) -> Dict[str, Optional[int]]:
        """``{name: device_instance}`` of the tracked services (of one class if given)."""
        out = {}
        for name, snap in self._cache.snapshot().items():
            info = snap.value
            if info is None:
                continue
            if service_class is None or codec.service_class(name) == service_class:
                out[name] = info.device_instance
        return out

    def get_value(self, service: str, path: str, default: Any = None) -> Any:
        """The cached value; ``default`` for an unknown service or path or an invalid value."""
        info = self._cache.value(service)
        return default if info is None else info.get(path, default)

    def get_text(self, service: str, path: str, default: Optional[str] = None) -> Optional[str]:
        info = self._cache.value(service)
        item = None if info is None else info.values.get(path)
        return default if item is None else item.text

    def seen(self, service: str, path: str) -> bool:
        """True if the path was ever received for the service, valid or not."""
        info = self._cache.value(service)
        return info is not None and path in info.values

    def wait_for_service(self, name: str, timeout: TimeoutArg = DEFAULT) -> ServiceInfo:
        """Block until the service is on the bus and scanned; return its snapshot.

        :raises ConfigurationError: ``service_types`` leaves the service out (it would never
            be tracked, so waiting could only time out).
        """
        codec.check_service_name(name)
        if not self._wanted(name):
            raise ConfigurationError(
                f"{name} is not tracked by this monitor: add its class "
                f"'{codec.service_class(name)}' to service_types (now "
                f"{sorted(self._types or ())})")

        def scanned(c: "VictronMonitor") -> Optional[ServiceInfo]:
            return c.service(name)
        info = self.wait_for(scanned, timeout)
        assert info is not None  # wait_for returns only what is truthy
        return info

    def wait_for_value(self, service: str, path: str, predicate: Optional[Callable[[Any], Any]] = None,
                       timeout: TimeoutArg = DEFAULT) -> Any:
        """Block until ``predicate(value)`` holds (default: the path is seen); return it."""
        def check(c: "VictronMonitor") -> Any:
            info = c._cache.value(service)
            if info is None or path not in info.values:
                return None
            value = info.values[path].value
            ok = True if predicate is None else predicate(value)
            return (value,) if ok else None
        return self.wait_for(check, timeout)[0]

    # -- round trips -------------------------------------------------------------------
    def read_value(self, service: str, path: str, timeout: TimeoutArg = DEFAULT) -> Any:
        """GetValue on the bus (not the cache), blocking until the service answered; ``/``
        gives velib's root dict. None means the value is invalid.

        :raises ConfigurationError: a malformed service name or path (nothing is sent).
        :raises DeviceError: the service refused (e.g. ``UnknownObject`` for a missing path).
        :raises DeviceTimeoutError: no answer within ``timeout`` seconds.
        """
        codec.check_destination(service)
        codec.check_path(path, allow_root=True)
        return self._request(f"GetValue {service}{path}", service, path, codec.BUSITEM,
                             "GetValue", "", (), lambda s, a: codec.unwrap(a[0]), timeout)

    def read_text(self, service: str, path: str, timeout: TimeoutArg = DEFAULT) -> Any:
        """GetText on the bus, blocking until the service answered: the display text (a
        dict of texts for ``/`` on velib services). Raises as :meth:`read_value`."""
        codec.check_destination(service)
        codec.check_path(path, allow_root=True)
        return self._request(f"GetText {service}{path}", service, path, codec.BUSITEM,
                             "GetText", "", (), lambda s, a: codec.unwrap(a[0]), timeout)

    def read_items(self, service: str, timeout: TimeoutArg = DEFAULT) -> Dict[str, ItemValue]:
        """GetItems on the bus, blocking until the service answered: ``{path: ItemValue}``.

        Besides the errors below, raises as :meth:`read_value`.

        :raises UnsupportedFeatureError: the service has no GetItems (an old velib service).
        :raises ProtocolError: the reply is not GetItems' dict.
        """
        codec.check_destination(service)

        def convert(s: _BusSession, a: List[Any]) -> Dict[str, ItemValue]:
            return {p: ItemValue(v, t if t is not None else codec.default_text(p, v))
                    for p, (has, v, t) in codec.parse_items(a[0]).items() if has}
        return self._request(f"GetItems {service}", service, "/", codec.BUSITEM, "GetItems",
                             "", (), convert, timeout)

    def read_min(self, service: str, path: str, timeout: TimeoutArg = DEFAULT) -> Any:
        """GetMin on the bus, blocking until the service answered (aiovelib's ``fetch_min``).
        localsettings answers 0 for a setting without limits. Raises as :meth:`read_value`.

        :raises UnsupportedFeatureError: the service has no GetMin (most services but
            localsettings and a few C++ ones).
        """
        return self._read_attribute("GetMin", service, path, timeout)

    def read_max(self, service: str, path: str, timeout: TimeoutArg = DEFAULT) -> Any:
        """GetMax on the bus, blocking until the service answered (aiovelib's ``fetch_max``).
        Raises as :meth:`read_min`."""
        return self._read_attribute("GetMax", service, path, timeout)

    def read_default(self, service: str, path: str, timeout: TimeoutArg = DEFAULT) -> Any:
        """GetDefault on the bus, blocking until the service answered. Raises as
        :meth:`read_min`."""
        return self._read_attribute("GetDefault", service, path, timeout)

    def _read_attribute(self, member: str, service: str, path: str,
                        timeout: TimeoutArg) -> Any:
        codec.check_destination(service)
        codec.check_path(path)
        return self._request(f"{member} {service}{path}", service, path, codec.BUSITEM, member,
                             "", (), lambda s, a: codec.unwrap(a[0]), timeout)

    def call_method(self, service: str, path: str, member: str, signature: str = "",
                    *args: Any, interface: str = codec.BUSITEM,
                    timeout: TimeoutArg = DEFAULT) -> List[Any]:
        """Any D-Bus method call (aiovelib's ``dbus_call``), blocking until the reply came;
        returns the reply's values as plain Python (variants unwrapped, invalid as None).

        ``signature`` types ``args`` (``"v"`` arguments are wrapped as the values of
        :meth:`set_value`, so ``None`` is the invalid marker and big ints become Int64).
        A method known to only read (GetValue, GetText, GetItems, GetMin, GetMax,
        GetDefault, GetDescription, Introspect, GetAttributes, GetSilent, the bus's
        ListNames/GetNameOwner/NameHasOwner, Properties.Get/GetAll, GetVreg) is sent
        freely; **any other method may change a device**, so it needs ``allow_writes=True``
        and, like every write, is never retried (after a timeout the service may still
        have acted on it). A value with limits is checked as the named writes check it,
        before anything is sent: a SetValue as :meth:`set_value` does, the default of a
        setting that AddSettings/AddSetting/AddSilentSetting creates against the min and max
        sent with it.

        :raises ConfigurationError: a bad name, path, member or signature, arguments that
            do not match the signature, or a value outside its limits (naming the value, the
            limits and the unit where known); nothing is sent.
        :raises WriteNotAllowedError: a method not known to only read, without
            ``allow_writes=True``.
        :raises DeviceError: the service answered with a D-Bus error (``.code`` is its name;
            :class:`~pyburnerkit.errors.UnsupportedFeatureError` for ``UnknownMethod``).
        :raises DeviceTimeoutError: no reply within ``timeout``.
        """
        message, prepare = self._check_call_and_limits(service, path, member, signature, args,
                                                       interface, timeout)
        return self._request(
            f"{member} {service}{path}", service, path, interface, member, signature,
            message, lambda s, a: [codec.unwrap(v) for v in a], timeout,
            is_write=(interface, member) not in _READ_ONLY_METHODS, prepare=prepare)

    def _check_call_and_limits(self, service: str, path: str, member: str, signature: str,
                               args: Tuple[Any, ...], interface: str, timeout: TimeoutArg
                               ) -> Tuple[Tuple[Any, ...], Optional[Callable[..., None]]]:
        """:meth:`_check_call`, plus the limits the bus reports for the methods that carry a
        value with limits, exactly as the named writes check them (any thread, no I/O): a
        SetValue as :meth:`set_value` (its ``prepare`` step asks localsettings for a
        setting's min/max first), the defaults of AddSettings/AddSetting/AddSilentSetting
        against the min/max given with them. Returns the wrapped arguments and ``prepare``.

        :raises WriteNotAllowedError: as :meth:`_check_call`.
        :raises ConfigurationError: as :meth:`_check_call`, or a value outside its limits.
        """
        wrapped = self._check_call(service, path, member, signature, args, interface)
        if interface == codec.BUSITEM and member == "SetValue" and len(wrapped) == 1:
            _, prepare = self._check_set(service, path, codec.unwrap(wrapped[0]), timeout)
            return wrapped, prepare
        if interface == codec.SETTINGS_IFACE and member == "AddSettings" and len(wrapped) == 1:
            for entry in codec.unwrap(wrapped[0]) or ():
                if isinstance(entry, Mapping):
                    _check_default(f"{service}{path}", entry.get("path"), entry.get("default"),
                                   entry.get("min"), entry.get("max"))
        elif (interface == codec.SETTINGS_IFACE and member in ("AddSetting", "AddSilentSetting")
              and len(wrapped) == 6):
            group, name, default, _, low, high = (codec.unwrap(a) for a in wrapped)
            if not (low == 0 and high == 0):   # localsettings: min = max = 0 is no limit
                _check_default(f"{service}{path}", f"{group}/{name}", default, low, high)
        return wrapped, None

    def _check_call(self, service: str, path: str, member: str, signature: str,
                    args: Tuple[Any, ...], interface: str) -> Tuple[Any, ...]:
        """The arguments of :meth:`call_method`, checked and wrapped (any thread, no I/O)."""
        dbus = require("dbus", "victron")
        codec.check_destination(service)
        codec.check_path(path, allow_root=True)
        for what, value in (("member", member), ("interface", interface)):
            parts = value.split(".") if isinstance(value, str) else [""]
            if not all(p.isidentifier() for p in parts) or (what == "member") != (len(parts) == 1):
                raise ConfigurationError(f"{what} {codec._show(value)} is not a D-Bus "
                                         f"{what} name (e.g. 'GetValue', "
                                         f"'com.victronenergy.BusItem')")
        if not isinstance(signature, str):
            raise ConfigurationError(f"signature must be a str like 'v' or 'aa{{sv}}', got "
                                     f"{codec._show(signature)}")
        try:
            types = list(dbus.Signature(signature))
            if len(types) != len(args):
                raise ValueError(f"it has {len(types)} argument type(s) for {len(args)} "
                                 f"argument(s)")
            wrapped = tuple(codec.wrap(a, 1) if t == "v" and not _is_dbus_value(a) else a
                            for t, a in zip(types, args))
            # Marshal once here, so a mismatch is the caller's error, not the link's.
            _lowlevel().MethodCallMessage(service, path, interface, member).append(
                *wrapped, signature=signature)
        except (TypeError, ValueError, OverflowError) as exc:
            raise ConfigurationError(f"{member} {service}{path}: arguments "
                                     f"{codec._show(args)} do not match signature "
                                     f"{signature!r}: {exc}") from None
        if (interface, member) not in _READ_ONLY_METHODS and not self.allow_writes:
            raise WriteNotAllowedError(
                f"{interface}.{member} on {service}{path} refused: a method call that is not "
                f"known to only read may change a device; open the monitor with "
                f"allow_writes=True", device=self.family, endpoint=self.endpoint)
        return wrapped

    def set_value(self, service: str, path: str, value: Any,
                  timeout: TimeoutArg = DEFAULT) -> None:
        """SetValue, blocking until the service answered (or ``timeout`` seconds).

        The value is checked first against the path's limits where the bus tells them: the
        ``Min``/``Max`` a service publishes in GetItems and its signals (localsettings does),
        and, for a setting of ``com.victronenergy.settings`` not in the cache, its
        GetMin/GetMax (two more round trips, before anything is written).
        If this call times out, the device may still apply the write later; it is never
        retried automatically.

        :raises WriteNotAllowedError: the monitor was not opened with ``allow_writes=True``.
        :raises ConfigurationError: a value D-Bus cannot carry, or outside the path's limits
            (the message names the value, the limits and the unit where known); nothing is
            sent.
        :raises SetValueError: the service returned a non-zero code (``.code``).
        :raises DeviceTimeoutError: no answer within ``timeout``.
        """
        wrapped, prepare = self._check_set(service, path, value, timeout)
        self._request(f"SetValue {service}{path}", service, path, codec.BUSITEM, "SetValue",
                      "v", (wrapped,), self._set_reply(service, path, value), timeout,
                      is_write=True, prepare=prepare)

    def set_value_nowait(self, service: str, path: str, value: Any,
                         timeout: TimeoutArg = DEFAULT) -> "concurrent.futures.Future[None]":
        """Like :meth:`set_value` but returns a Future at once. Its result (or exception,
        among them the ConfigurationError of a value outside limits the bus reported) is set
        on the events thread, so its done-callbacks run there too.
        If this call times out, the device may still apply the write later; it is never
        retried automatically.

        :raises WriteNotAllowedError: at once, without ``allow_writes=True``.
        :raises ConfigurationError: at once, for a value D-Bus cannot carry or outside limits
            already in the cache.
        """
        wrapped, prepare = self._check_set(service, path, value, timeout)
        pending = self._request_nowait(
            f"SetValue {service}{path}", service, path, codec.BUSITEM, "SetValue", "v",
            (wrapped,), self._set_reply(service, path, value), timeout, is_write=True,
            prepare=prepare)
        future: "concurrent.futures.Future[None]" = concurrent.futures.Future()
        future.set_running_or_notify_cancel()
        seconds = resolve_timeout(timeout, self.timeout)

        def completed(p: Pending) -> None:
            self._outstanding.discard(p)
            event = WriteCompleted(service, path, value, "", p.error, future)
            if self._closing and threading.current_thread() is not self.events_thread:
                self._finish_future(event)  # the events thread may be gone: never strand it
            else:
                self._dispatcher.publish(event)
        pending.add_done_callback(completed)
        if seconds is not None:
            def expire(s: _BusSession) -> None:
                s.loop.call_later(seconds, lambda: pending.fail(DeviceTimeoutError(
                    f"SetValue {service}{path}: no answer within {seconds:g} s",
                    device=self.family, endpoint=self.endpoint)))
            self._on_io(expire)
        return future

    def _check_set(self, service: str, path: str, value: Any, timeout: TimeoutArg
                   ) -> Tuple[Any, Optional[Callable[..., None]]]:
        """Everything a SetValue checks before it is sent (any thread, no I/O); returns the
        wrapped value and the ``prepare`` step that asks for a setting's limits first, if
        one is needed.

        :raises WriteNotAllowedError: without ``allow_writes``.
        :raises ConfigurationError: a bad name, path or value, or a value outside limits
            already in the cache.
        """
        codec.check_destination(service)
        codec.check_path(path)
        if not self.allow_writes:
            raise WriteNotAllowedError(
                f"SetValue {service}{path}={codec._show(value)} refused: open the monitor with "
                f"allow_writes=True to change values on the bus", device=self.family,
                endpoint=self.endpoint)
        wrapped = codec.wrap(value, 1)   # a value D-Bus cannot carry is refused here
        unit = self._units.get((service, path), "")
        limits = self._limits.get(service, {}).get(path)
        if limits is not None:
            _check_limits(f"{service}{path}", value, limits, unit)
        elif service == codec.SETTINGS_SERVICE:
            return wrapped, self._limits_first(service, path, value, unit, timeout)
        return wrapped, None

    def _set_reply(self, service: str, path: str,
                   value: Any) -> Callable[[_BusSession, List[Any]], None]:
        """SetValue's answer: 0 accepted, anything else a SetValueError carrying the code."""
        def convert(s: _BusSession, a: List[Any]) -> None:
            code = int(a[0])
            if code != 0:
                raise SetValueError(f"SetValue {service}{path}={codec._show(value)} was "
                                    f"refused with code {code}", code=code,
                                    device=self.family, endpoint=self.endpoint)
        return convert

    def _limits_first(self, service: str, path: str, value: Any, unit: str,
                      timeout: TimeoutArg) -> Callable[..., None]:
        """A ``prepare`` step for :meth:`_request`: GetMin and GetMax of a setting, then the
        limit check, then the SetValue (only if the check passed and the caller still waits).
        A service without GetMin/GetMax (UnknownMethod/UnknownObject) reports no limits."""
        seconds = resolve_timeout(timeout, self.timeout)

        def prepare(s: _BusSession, request: Pending, send: Callable[[], None]) -> None:
            got: Dict[str, Any] = {}

            def answer(key: str) -> Callable[[bool, Any], None]:
                def done(ok: bool, payload: Any) -> None:
                    if request.done():
                        return
                    if ok:
                        got[key] = payload[0] if payload else None
                    elif payload[0] in (_UNKNOWN_METHOD, _UNKNOWN_OBJECT):
                        got[key] = None
                    else:
                        request.fail(s.error_for(f"Get{key} {service}{path} (asked before "
                                                 f"SetValue; nothing was written)", payload))
                        return
                    if len(got) == 2:
                        self._io_check_then_send(request, service, path, value, unit, got,
                                                 send)
                return done
            for key in ("Min", "Max"):
                s.call(service, path, codec.BUSITEM, f"Get{key}", "", (), answer(key),
                       None if seconds is None else seconds + 0.5)
        return prepare

    def _io_check_then_send(self, request: Pending, service: str, path: str, value: Any,
                            unit: str, got: Mapping[str, Any], send: Callable[[], None]) -> None:
        try:
            if got["Min"] is not None and got["Max"] is not None:
                limits = codec.parse_limits({"Min": got["Min"], "Max": got["Max"]})
                _check_limits(f"{service}{path}", value, limits or codec.NO_LIMITS, unit)
        except PyBurnerKitError as exc:
            request.fail(exc)
            return
        send()

    def _finish_future(self, event: WriteCompleted) -> None:
        future = getattr(event, "_future", None)
        if future is None or future.done():
            return
        if event.error is None:
            future.set_result(None)
        else:
            future.set_exception(event.error)

    # -- filters -----------------------------------------------------------------------
    def _wanted(self, name: str) -> bool:
        if not name.startswith(codec.NAMESPACE + "."):
            return False
        if self._types is None:
            return True
        cls = codec.service_class(name)
        return cls in self._types or (cls == codec.SETTINGS_SERVICE and bool(self._settings_paths))

    def _wanted_paths(self, name: str) -> Optional[FrozenSet[str]]:
        """None when every path of ``name`` is tracked; else the paths surely tracked (a
        path outside them may still be, see :meth:`_path_wanted`)."""
        if self._types is None:
            return None
        paths = self._types.get(codec.service_class(name), frozenset())
        return None if paths is None else paths

    def _path_wanted(self, name: str, path: str) -> bool:
        if self._types is None:
            return True
        cls = codec.service_class(name)
        paths = self._types.get(cls, frozenset())
        if cls == codec.SETTINGS_SERVICE and path in self._settings_paths:
            return True
        return paths is None or path in paths or path == "/DeviceInstance"

    # -- I/O thread: discovery ---------------------------------------------------------
    def _io_opened(self, s: _BusSession) -> None:
        def ignore(ok: bool, payload: Any) -> None:
            if not ok:
                log.warning("AddMatch failed: %s", payload)
        s.call(codec.DBUS_NAME, codec.DBUS_PATH, codec.DBUS_NAME, "AddMatch", "s",
               (codec.match_rule(type="signal", interface=codec.BUSITEM),), ignore, self.timeout)
        s.call(codec.DBUS_NAME, codec.DBUS_PATH, codec.DBUS_NAME, "AddMatch", "s",
               (codec.match_rule(type="signal", sender=codec.DBUS_NAME,
                                 interface=codec.DBUS_NAME, member="NameOwnerChanged",
                                 arg0namespace=codec.NAMESPACE),), ignore, self.timeout)

        def listed(ok: bool, payload: Any) -> None:
            if not ok:
                s.link_failed(s.error_for("ListNames", payload))
                return
            names = [str(n) for n in payload[0] if self._wanted(str(n))]
            for gone in [n for n in self._svcs if n not in names]:
                self._io_remove(gone)
            self._initial = set(names)
            s.established()
            for name in names:
                self._io_begin_scan(s, name, None)
            self._io_check_initial(None)
        s.call(codec.DBUS_NAME, codec.DBUS_PATH, codec.DBUS_NAME, "ListNames", "", (), listed,
               self.timeout)

    def _io_link_down(self, s: _BusSession) -> None:
        self._owners.clear()
        for svc in self._svcs.values():
            svc.scan_id = -1  # in-flight scans are void
            svc.owner = None

    def _io_check_initial(self, done_name: Optional[str]) -> None:
        if self._initial is None:
            return
        if done_name is not None:
            self._initial.discard(done_name)
        if not self._initial:
            self._initial = None
            self._scanned.set()
            self._cache.notify()

    def _io_begin_scan(self, s: _BusSession, name: str, owner: Optional[str]) -> None:
        svc = self._svcs.get(name)
        if svc is not None and svc.scan_id >= 0 and (owner is None or svc.owner == owner):
            return  # already scanning or scanned (a NameOwnerChanged during the start-up scan)
        self._scan_seq += 1
        scan_id = self._scan_seq
        new = _Svc(name, owner, scan_id)
        if svc is not None:
            new.values = svc.values  # stale values stay readable until the rescan finishes
            new.added = svc.added
            new.instance = svc.instance
        self._svcs[name] = new
        if owner is not None:
            self._owners.setdefault(owner, set()).add(name)
            self._io_get_items(s, new)
            return

        def got_owner(ok: bool, payload: Any) -> None:
            cur = self._svcs.get(name)
            if cur is not new or new.scan_id != scan_id:
                return
            if not ok:
                self._io_scan_failed(name, f"GetNameOwner: {payload}")
                return
            new.owner = str(payload[0])
            self._owners.setdefault(new.owner, set()).add(name)
            self._io_get_items(s, new)
        s.call(codec.DBUS_NAME, codec.DBUS_PATH, codec.DBUS_NAME, "GetNameOwner", "s", (name,),
               got_owner, self.timeout)

    def _io_get_items(self, s: _BusSession, svc: _Svc) -> None:
        scan_id = svc.scan_id
        owner = svc.owner
        assert owner is not None  # a scan asks for items only once the owner is known

        def got_items(ok: bool, payload: Any) -> None:
            if self._svcs.get(svc.name) is svc and svc.scan_id == scan_id:
                self._io_scan_reply(s, svc, ok, payload)
        s.call(owner, "/", codec.BUSITEM, "GetItems", "", (), got_items, self.timeout)

    def _io_scan_reply(self, s: _BusSession, svc: _Svc, ok: bool, payload: Any) -> None:
        """I/O thread: the GetItems answer of a current scan. A malformed entry costs only
        itself (counted, logged once per service); a reply that is no dict fails the scan."""
        if not ok:
            if payload and payload[0] in (_UNKNOWN_METHOD, _UNKNOWN_OBJECT):
                self._io_legacy_scan(s, svc)
            else:
                self._io_scan_failed(svc.name, f"GetItems: {payload}")
            return
        try:
            if not isinstance(payload, (list, tuple)) or len(payload) != 1:
                raise ProtocolError(f"GetItems answered {len(payload or ())} values, not one")
            entries, limits, problems = codec.split_items(payload[0])
        except ProtocolError as exc:
            self._io_peer_error(svc.name, f"GetItems: {exc}")
            self._io_scan_failed(svc.name, f"GetItems: {exc}")
            return
        if problems:
            self._io_peer_error(svc.name, f"GetItems: {'; '.join(problems[:5])}")
        self._io_scanned(svc, entries, limits)

    def _io_legacy_scan(self, s: _BusSession, svc: _Svc) -> None:
        """velib's fallback for services without GetItems: the root GetValue/GetText dicts."""
        scan_id = svc.scan_id
        owner = svc.owner
        # Only a current scan gets here, and a link-down voids the scan as it clears the owner.
        assert owner is not None
        got: Dict[str, Any] = {}

        def part(key: str) -> Callable[[bool, Any], None]:
            def done(ok: bool, payload: Any) -> None:
                if self._svcs.get(svc.name) is not svc or svc.scan_id != scan_id:
                    return
                got[key] = payload[0] if ok and payload else None
                if len(got) < 2:
                    return
                try:
                    items = codec.parse_root_dict(got["v"], got["t"])
                except ProtocolError as exc:
                    self._io_scan_failed(svc.name, f"no GetItems, and the root GetValue: {exc}")
                    return
                self._io_scanned(svc, items, {})
            return done
        s.call(owner, "/", codec.BUSITEM, "GetValue", "", (), part("v"), self.timeout)
        s.call(owner, "/", codec.BUSITEM, "GetText", "", (), part("t"), self.timeout)

    def _io_scan_failed(self, name: str, why: str) -> None:
        log.warning("could not scan %s: %s", name, why)
        svc = self._svcs.get(name)
        if svc is not None and not svc.added:
            self._io_forget(name)
        self._io_check_initial(name)

    def _io_scanned(self, svc: _Svc, items: Mapping[str, codec.Entry],
                    limits: Mapping[str, codec.Limits]) -> None:
        values = {}
        for path, (has, value, text) in items.items():
            if not has or not self._path_wanted(svc.name, path):
                continue
            if path in svc.signal_paths and path in svc.values:
                values[path] = svc.values[path]  # a signal newer than the scan wins
                continue
            values[path] = ItemValue(value, text if text is not None
                                     else codec.default_text(path, value))
        for path in svc.signal_paths:
            if path not in values and path in svc.values:
                values[path] = svc.values[path]
        svc.values = values
        svc.signal_paths = set()
        self._limits[svc.name] = {p: lim for p, lim in limits.items()
                                  if self._path_wanted(svc.name, p)}
        inst = values.get("/DeviceInstance")
        svc.instance = inst.value if inst is not None and isinstance(inst.value, int) else None
        first = not svc.added
        svc.added = True
        info = self._io_publish(svc)
        if first:
            self._dispatcher.publish(ServiceAdded(info))
        self._io_check_initial(svc.name)

    def _io_publish(self, svc: _Svc) -> ServiceInfo:
        values = svc.values
        info = ServiceInfo(svc.name, svc.owner or "", svc.instance,
                           values if isinstance(values, _Values) else MappingProxyType(values))
        self._cache.set(svc.name, info)
        return info

    def _io_forget(self, name: str) -> Optional[_Svc]:
        svc = self._svcs.pop(name, None)
        self._limits.pop(name, None)
        self._warned.discard(name)
        if svc is not None and svc.owner is not None:
            names = self._owners.get(svc.owner)
            if names is not None:
                names.discard(name)
                if not names:
                    del self._owners[svc.owner]
        return svc

    def _io_remove(self, name: str) -> None:
        svc = self._io_forget(name)
        if svc is not None and svc.added:
            self._cache.set(name, None)
            self._dispatcher.publish(ServiceRemoved(name, svc.instance))

    # -- I/O thread: signals -----------------------------------------------------------
    @staticmethod
    def _decode_signal(msg: Any) -> Optional[Tuple[Dict[str, codec.Entry],
                                                   Mapping[str, codec.Limits], Sequence[str]]]:
        """A BusItem signal -> ``(entries, limits, problems)`` (as :func:`codec.split_items`),
        or None for a signal that is not ours to read.

        :raises ProtocolError: a message whose body is not one dict; nothing else.
        """
        payload = _signal_payload(msg, msg.get_member())
        return None if payload is None else _split_items_fast(payload)

    def _io_signal(self, s: _BusSession, conn: Any, msg: Any, defer: bool = False) -> None:
        """A signal from the bus. With ``defer`` (a batch of signals being drained) value
        changes are published by :meth:`_io_flush_batch`; anything else flushes first, so
        events keep the order of the signals."""
        if conn is not s.conn:
            return
        member, iface = msg.get_member(), msg.get_interface()
        if member == "NameOwnerChanged" and iface == codec.DBUS_NAME:
            self._io_flush_batch()
            if msg.get_sender() != codec.DBUS_NAME:
                return  # only the bus itself may say who owns a name
            name, old, new = (str(a) for a in msg.get_args_list())
            if not self._wanted(name):
                return
            if old:
                self._io_remove(name)
            if new:
                self._io_begin_scan(s, name, new)
            return
        if iface != codec.BUSITEM:
            return
        names = self._owners.get(msg.get_sender() or "")
        if not names:
            return
        try:
            payload = _signal_payload(msg, member)
        except ProtocolError as exc:
            self._io_signal_problems(names, str(exc))
            return
        if payload is None:
            return
        tried = False
        if len(names) == 1:
            # The usual case, one announced service per sender, in one pass: the payload
            # straight to items, without the (has, value, text) entries of the general path.
            (name,) = names
            svc = self._svcs.get(name)
            if svc is not None and svc.added:
                items = _fast_items(payload, _item_value)
                if items is not None:
                    self._io_count_signal(member, len(items), defer)
                    self._io_store(svc, self._io_wanted_only(svc, items), defer)
                    return
                tried = True
        try:
            changes, limits, problems = (codec.split_items(payload) if tried
                                         else _split_items_fast(payload))
        except ProtocolError as exc:
            self._io_signal_problems(names, str(exc))
            return
        if problems:
            self._io_signal_problems(names, f"{member}: {'; '.join(problems[:5])}")
        self._io_count_signal(member, len(changes), defer)
        for name in list(names):
            svc = self._svcs.get(name)
            if svc is not None:
                self._io_apply_changes(svc, changes, limits, defer)

    def _io_signal_problems(self, names: Iterable[str], problem: str) -> None:
        for name in sorted(names):
            self._io_peer_error(name, problem)

    def _io_count_signal(self, member: str, paths: int, defer: bool) -> None:
        if defer:  # the wire log gets one line per batch (_io_flush_batch), not per signal
            self._batch_signals += 1
            self._batch_paths += paths
        else:
            self._wire.received((member, paths))

    def _io_flush_batch(self) -> None:
        """Publish what deferred signals changed: each touched service's snapshot to the cache
        first, then their events in order (one lock hold), so a callback always finds the
        cache at least as new as its event."""
        if self._batch_signals:
            self._wire.received(("signals", self._batch_signals, "paths", self._batch_paths))
            self._batch_signals = self._batch_paths = 0
        events = self._batch_events
        if not events:
            return
        touched, self._batch_svcs = self._batch_svcs, {}
        self._batch_events = []
        for name, svc in touched.items():
            if self._svcs.get(name) is svc:
                self._io_publish(svc)
        self._dispatcher.publish_many(events)

    def _io_apply_changes(self, svc: _Svc, changes: Mapping[str, codec.Entry],
                          limits: Mapping[str, codec.Limits], defer: bool = False) -> None:
        if limits:
            wanted_limits = {p: lim for p, lim in limits.items()
                             if self._path_wanted(svc.name, p)}
            if wanted_limits:
                known = dict(self._limits.get(svc.name, {}))
                known.update(wanted_limits)
                self._limits[svc.name] = known
        updated = self._io_wanted_only(svc, {
            path: ItemValue(value, text if text is not None else codec.default_text(path, value))
            for path, (has, value, text) in changes.items() if has})
        self._io_store(svc, updated, defer)

    def _io_wanted_only(self, svc: _Svc, items: Dict[str, ItemValue]) -> Dict[str, ItemValue]:
        """``items`` without the paths this monitor does not track (``items`` itself when it
        tracks every path of the service's class)."""
        types = self._types
        wanted = None if types is None else types.get(svc.service_class, frozenset())
        if wanted is None:
            return items
        return {path: item for path, item in items.items()
                if path in wanted or self._path_wanted(svc.name, path)}

    def _io_store(self, svc: _Svc, updated: Dict[str, ItemValue], defer: bool) -> None:
        """Apply a signal's tracked changes to ``svc``: its next snapshot and, once the
        service is announced, its ``ValuesChanged`` (batched with ``defer``)."""
        if not updated:
            return
        if not svc.added:
            svc.signal_paths.update(updated)
        # A new snapshot that shares the unchanged paths with the previous one: a signal
        # costs what it changed, not a copy of every path of the service.
        svc.values = _Values.updated(svc.values, updated)
        if "/DeviceInstance" in updated and isinstance(updated["/DeviceInstance"].value, int):
            svc.instance = updated["/DeviceInstance"].value
        if not svc.added:
            return
        event = _values_changed(svc.name, MappingProxyType(updated))
        if defer:
            self._batch_svcs[svc.name] = svc
            self._batch_events.append(event)
            return
        self._io_publish(svc)
        self._dispatcher.publish(event)

    # -- I/O thread: settings helper support -------------------------------------------
    def _io_settings_seen(self, s: _BusSession, owner: str, values: Mapping[str, Any],
                          limits: Mapping[str, codec.Limits]) -> None:
        name = codec.SETTINGS_SERVICE
        self._settings_paths.update(values)
        svc = self._svcs.get(name)
        if svc is None or svc.owner != owner:
            self._scan_seq += 1
            svc = _Svc(name, owner, self._scan_seq)
            self._svcs[name] = svc
            self._owners.setdefault(owner, set()).add(name)
        fresh = {p: (True, v, None) for p, v in values.items()}
        if not svc.added:
            svc.added = True
            self._io_apply_changes(svc, fresh, limits)
            self._dispatcher.publish(ServiceAdded(self._io_publish(svc)))
        else:
            self._io_apply_changes(svc, fresh, limits)


# ====================================================================== Settings
def _allocate(client: _VictronClient, unique_id: str, device_class: str, preferred: int,
              timeout: TimeoutArg) -> int:
    if not isinstance(unique_id, str) or not unique_id or "/" in unique_id:
        raise ConfigurationError(f"unique_id {unique_id!r} must be a non-empty string "
                                 f"without '/' (e.g. 'mydriver_SN1234')")
    if not isinstance(device_class, str) or not device_class.isidentifier():
        raise ConfigurationError(f"device_class {device_class!r} must be a word like 'grid'")
    preferred = int(check_range("preferred", preferred, 0, 2 ** 31 - 1, integer=True))
    path = f"/Settings/Devices/{unique_id}/ClassAndVrmInstance"
    result = _add_settings(client, [Setting(path, f"{device_class}:{preferred}")], timeout)
    _cls, instance = codec.parse_class_instance(result[path])
    return instance


def _check_limits(name: str, value: Any, limits: codec.Limits, unit: str) -> Any:
    """``value`` if it lies within the limits the bus reported (``NO_LIMITS``: anything
    goes), else a ConfigurationError naming the value, the limits and the unit."""
    low, high = limits
    if low is None or high is None:
        return value
    return check_range(name, value, low, high, unit)


def _check_default(where: str, path: Any, default: Any, low: Any, high: Any) -> None:
    """The default of a setting a raw AddSettings/AddSetting call creates, inside the min and
    max sent with it (numbers only; text settings have none)."""
    numbers = [v for v in (default, low, high)
               if isinstance(v, (int, float)) and not isinstance(v, bool)]
    if len(numbers) == 3:
        check_range(f"default of {where} {codec._show(path)}", default, low, high)


def _check_setting(entry: Any) -> Setting:
    if isinstance(entry, (tuple, list)):
        entry = Setting(*entry)
    if not isinstance(entry, Setting):
        raise ConfigurationError(f"expected a Setting(path, default, min, max, silent), "
                                 f"got {codec._show(entry)}")
    codec.check_path(entry.path)
    if not entry.path.startswith("/Settings/"):
        raise ConfigurationError(f"setting path {entry.path} must start with /Settings/")
    if isinstance(entry.default, bool) or not isinstance(entry.default, (int, float, str)):
        raise ConfigurationError(f"default of {entry.path} must be an int, float or str (its "
                                 f"type is the setting's type), got {codec._show(entry.default)}")
    if isinstance(entry.default, str):
        codec.wrap(entry.default)   # text D-Bus can carry
    if not isinstance(entry.unit, str):
        raise ConfigurationError(f"unit of {entry.path} must be a str like 'A', got "
                                 f"{codec._show(entry.unit)}")
    if entry.alias is not None and (not isinstance(entry.alias, str) or not entry.alias
                                    or entry.alias.startswith("/")):
        raise ConfigurationError(f"alias of {entry.path} must be a non-empty str that does "
                                 f"not start with '/' (e.g. 'limit'), got "
                                 f"{codec._show(entry.alias)}")
    for key in ("min", "max"):
        limit = getattr(entry, key)
        if limit is not None and (isinstance(limit, bool) or not isinstance(limit, (int, float))
                                  or limit != limit or limit in (float("inf"), float("-inf"))):
            raise ConfigurationError(f"{key} of {entry.path} must be a finite number, got "
                                     f"{codec._show(limit)}")
    if (entry.min is None) != (entry.max is None):
        raise ConfigurationError(f"{entry.path}: give both min and max or neither (got min "
                                 f"{entry.min}, max {entry.max})")
    limits = _setting_limits(entry)
    if (limits is not None and limits[0] is not None and limits[1] is not None
            and limits[0] > limits[1]):
        raise ConfigurationError(f"{entry.path}: min {entry.min} is above max {entry.max}"
                                 f"{' ' + entry.unit if entry.unit else ''}")
    if isinstance(entry.default, (int, float)) and limits is not None:
        _check_limits(f"default of {entry.path}", entry.default, limits, entry.unit)
    return entry


def _setting_limits(entry: Setting) -> Optional[codec.Limits]:
    """The limits localsettings will hold for ``entry``: none for a string setting, and
    min = max = 0 (or none given) means no limits."""
    if isinstance(entry.default, str):
        return None
    if entry.min is None or (entry.min == 0 and entry.max == 0):
        return codec.NO_LIMITS
    return entry.min, entry.max


def _add_settings(client: _VictronClient, settings: Iterable[Any], timeout: TimeoutArg,
                  monitor: Optional[VictronMonitor] = None) -> Dict[str, Any]:
    entries = [_check_setting(e) for e in settings]
    if not client.allow_writes:
        paths = ", ".join(e.path for e in entries[:3]) + (" ..." if len(entries) > 3 else "")
        raise WriteNotAllowedError(
            f"AddSettings ({paths}) refused: it creates or changes settings on the GX; open "
            f"the client with allow_writes=True", device=client.family, endpoint=client.endpoint)
    if not entries:
        return {}
    if monitor is not None:
        _check_aliases(monitor, entries)
    payload = codec.add_settings_request(
        [{"path": e.path, "default": e.default, "min": e.min, "max": e.max,
          "silent": e.silent} for e in entries])
    owner_box: List[str] = []

    def convert(s: _BusSession, args: List[Any]) -> Dict[str, Any]:
        results = codec.parse_add_settings_reply(args[0])
        out: Dict[str, Any] = {}
        errors: Dict[str, int] = {}
        for entry, (path, code, value) in zip(entries, results):
            if code != 0:
                errors[entry.path] = code
            else:
                out[entry.path] = value
        if monitor is not None and out:
            aliases = dict(monitor._aliases)
            aliases.update((e.alias, e.path) for e in entries
                           if e.alias is not None and e.path in out)
            monitor._aliases = aliases   # replaced whole: any thread may read it
        if monitor is not None and out and owner_box:
            for entry in entries:
                if entry.path in out and entry.unit:
                    monitor._units[(codec.SETTINGS_SERVICE, entry.path)] = entry.unit
            limits = {e.path: _setting_limits(e) for e in entries if e.path in out}
            monitor._io_settings_seen(s, owner_box[0], out,
                                      {p: lim for p, lim in limits.items() if lim is not None})
        if errors:
            lines = "; ".join(f"{p}: {codec.setting_error_text(c)}" for p, c in errors.items())
            raise SettingsError(f"AddSettings refused {len(errors)} of {len(entries)} "
                                f"setting(s): {lines}", errors=errors, code=min(errors.values()),
                                device=client.family, endpoint=client.endpoint)
        return out

    # The reply's sender (localsettings' unique name) is needed to follow its signals: ask
    # for it first (one more round trip, only for the monitor's cache).
    if monitor is not None:
        try:
            owner_box.append(client._request(
                "GetNameOwner settings", codec.DBUS_NAME, codec.DBUS_PATH, codec.DBUS_NAME,
                "GetNameOwner", "s", (codec.SETTINGS_SERVICE,), lambda s, a: str(a[0]),
                timeout))
        except DeviceError as exc:
            raise DeviceError(f"{codec.SETTINGS_SERVICE} is not on the bus: {exc}",
                              device=client.family, endpoint=client.endpoint) from exc
    return client._request("AddSettings", codec.SETTINGS_SERVICE, "/", codec.SETTINGS_IFACE,
                           "AddSettings", "aa{sv}", (payload,), convert, timeout, is_write=True)


def _check_aliases(monitor: VictronMonitor, entries: List[Setting]) -> None:
    """An alias names one path: refuse one that already names another (nothing is sent)."""
    seen = dict(monitor._aliases)
    for entry in entries:
        if entry.alias is None:
            continue
        known = seen.setdefault(entry.alias, entry.path)
        if known != entry.path:
            raise ConfigurationError(f"alias {entry.alias!r} of {entry.path} already names "
                                     f"{known}: an alias names one setting")


class VictronSettings:
    """localsettings (``com.victronenergy.settings``) through a :class:`VictronMonitor`.

    ``monitor.settings.add([...])`` makes one AddSettings call; the added settings are then
    tracked in the monitor's cache (``get``) and their changes arrive as ``ValuesChanged``
    events for ``com.victronenergy.settings``.
    """

    def __init__(self, monitor: VictronMonitor) -> None:
        self._monitor = monitor

    def add(self, settings: Iterable[Union[Setting, Tuple[Any, ...]]],
            timeout: TimeoutArg = DEFAULT) -> Dict[str, Any]:
        """Create (or find) the settings in one AddSettings call, blocking until
        localsettings answered; returns ``{path: current value}``. An existing setting keeps
        its value, but takes the given default and limits.
        If this call times out, the device may still apply the write later; it is never
        retried automatically.

        :raises WriteNotAllowedError: the monitor was not opened with ``allow_writes=True``.
        :raises ConfigurationError: a malformed entry, min above max, or a default outside
            min..max (naming the value, the limits and the unit); nothing is sent.
        :raises SettingsError: for refused entries, naming each path and error code.
        """
        return _add_settings(self._monitor, settings, timeout, self._monitor)

    def alias(self, name: str) -> Optional[str]:
        """The path an added setting's ``alias`` names (None for an unknown alias), as
        aiovelib's ``SettingsService.alias``. Never blocks."""
        return self._monitor._aliases.get(name)

    @property
    def aliases(self) -> Mapping[str, str]:
        """``{alias: path}`` of the settings added with an alias (a read-only copy)."""
        return MappingProxyType(dict(self._monitor._aliases))

    def _path(self, name: str) -> str:
        if isinstance(name, str) and not name.startswith("/"):
            path = self._monitor._aliases.get(name)
            if path is None:
                raise ConfigurationError(f"{name!r} is neither a path nor the alias of an "
                                         f"added setting (known aliases: "
                                         f"{sorted(self._monitor._aliases)})")
            return path
        return name

    def get(self, path: str, default: Any = None) -> Any:
        """The cached value of a setting, by path or alias (never blocks)."""
        return self._monitor.get_value(codec.SETTINGS_SERVICE, self._path(path), default)

    def set(self, path: str, value: Any, timeout: TimeoutArg = DEFAULT) -> None:
        """SetValue on a setting, blocking until localsettings answered (needs
        ``allow_writes``). The value is checked against the setting's min/max first (from the
        cache, else GetMin/GetMax); localsettings itself refuses a mistyped value with -1
        (:class:`SetValueError`).
        If this call times out, the device may still apply the write later; it is never
        retried automatically.

        :raises ConfigurationError: outside the setting's limits (value, limits and unit in
            the message); nothing is written.
        """
        self._monitor.set_value(codec.SETTINGS_SERVICE, self._path(path), value, timeout)

    def remove(self, paths: Iterable[str], timeout: TimeoutArg = DEFAULT) -> Dict[str, int]:
        """RemoveSettings, blocking until localsettings answered: ``{path: 0 or -1}``.
        If this call times out, the device may still apply the write later; it is never
        retried automatically.

        :raises WriteNotAllowedError: the monitor was not opened with ``allow_writes=True``.
        """
        plist = [codec.check_path(self._path(p)) for p in paths]
        if not self._monitor.allow_writes:
            raise WriteNotAllowedError(f"RemoveSettings ({', '.join(plist[:3])}) refused: "
                                       f"open the monitor with allow_writes=True",
                                       device="victron", endpoint=self._monitor.endpoint)
        dbus = require("dbus", "victron")
        return self._monitor._request(
            "RemoveSettings", codec.SETTINGS_SERVICE, "/", codec.SETTINGS_IFACE,
            "RemoveSettings", "as", (dbus.Array(plist, signature="s"),),
            lambda s, a: {p: int(c) for p, c in zip(plist, a[0])}, timeout, is_write=True)

    def allocate_instance(self, unique_id: str, device_class: str, preferred: int,
                          timeout: TimeoutArg = DEFAULT) -> int:
        """Allocate a VRM device instance for ``unique_id`` (``ClassAndVrmInstance``, an
        AddSettings call that creates a setting); blocks until localsettings answered.
        If this call times out, the device may still apply the write later; it is never
        retried automatically.

        :raises WriteNotAllowedError: the monitor was not opened with ``allow_writes=True``.
        """
        return _allocate(self._monitor, unique_id, device_class, preferred, timeout)
