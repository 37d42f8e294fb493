"""The blocking client of the TR-1, and the session that speaks its protocol on the I/O thread.

The shape is pyburnerkit's: :class:`ThermoClient` is the facade (no I/O in the constructor,
``connect()`` blocks until the box answered ``ID``), :class:`ThermoSession` owns the socket on
the client's ``pyburnerkit-thermo-<endpoint>-io`` thread, and events reach callbacks on the
``...-events`` thread. Threads, reconnects, stale data, timeouts and ``close()`` come from
pyburnerkit's core; this module only knows the protocol.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, Callable, Dict, List, Optional

from pyburnerkit.driver import (DEFAULT, BaseClient, Deadline, Pending, RequestQueue,
                                StreamSession, TimeoutArg, TimerHandle, check_range,
                                parse_endpoint)
from pyburnerkit.errors import (ConfigurationError, DeviceError, DeviceTimeoutError,
                                ProtocolError, WriteNotAllowedError)

from . import codec
from .models import (DEFAULT_PORT, LIMIT_MAX_C, LIMIT_MIN_C, LIMIT_STEP_C, DeviceInfo, Status,
                     StatusChanged)

if TYPE_CHECKING:
    from .sim import ThermoSim

__all__ = ["ThermoClient", "ThermoSession", "SCHEME"]

log = logging.getLogger(__name__)

#: The URL scheme of the box (``thermo://host:port``); a bare ``host[:port]`` means the same.
SCHEME = "thermo"
INFO_TOPIC = "info"
STATUS_TOPIC = "status"


class _Call:
    """A request on its way to the I/O thread: its line, and what to make of the reply
    (``finish`` runs on the I/O thread and may raise ProtocolError)."""

    __slots__ = ("line", "finish")

    def __init__(self, line: bytes, finish: Callable[[str], Any]) -> None:
        self.line = line
        self.finish = finish


class ThermoSession(StreamSession):
    """The TR-1 protocol on the I/O thread: one request on the wire at a time, in order.

    A reply is matched to the oldest request sent, so the session never lets two requests
    overlap. A caller that gives up (its timeout) leaves its request on the wire: the late
    reply is still consumed for it and discarded, keeping the stream in step. Only a box that
    stays silent for ``reply_timeout`` makes the session drop the link and reconnect.
    """

    family = "thermo"

    def __init__(self, *, host: str, port: int, reply_timeout: float,
                 sim_factory: Optional[Callable[[], "ThermoSim"]] = None,
                 **common: Any) -> None:
        super().__init__(host=host, port=port, reply_timeout=reply_timeout,
                         sim_factory=sim_factory, **common)
        self._reader = codec.LineReader()
        self._queue = RequestQueue()
        self._current: Optional[Pending] = None
        self._hello: Optional[Pending] = None
        self._reply_timer: Optional[TimerHandle] = None

    # ------------------------------------------------------------------ transport
    def open_transport(self, deadline: Deadline) -> None:
        self.open_stream(deadline, self._on_readable)
        # the box has no greeting: ID is the hand-shake, and its answer proves it is a TR-1
        self._hello = Pending("identify", _Call(codec.encode_request(codec.Identify()),
                                                codec.decode_info))
        self._send(self._hello)

    def on_stream_closed(self) -> None:
        self._reader.clear()

    def on_link_down(self) -> None:
        self._cancel_reply_timer()
        self._current = None
        self._hello = None

    def take_unsent(self) -> List[Pending]:
        # queued behind the request on the wire, never sent: they wait for the next link
        return self._queue.take_unsent()

    # ------------------------------------------------------------------ requests
    def start_request(self, request: Pending) -> None:
        self._queue.append(request)
        self._send_next()

    def _send_next(self) -> None:
        while self._current is None and self._sock is not None:
            request = self._queue.pop_live()  # skips callers that gave up before their turn
            if request is None:
                return
            self._send(request)

    def _send(self, request: Pending) -> None:
        call: _Call = request.payload
        sock = self._sock
        if sock is None:
            return
        self._current = request
        self.wire.sent(call.line.decode("ascii").rstrip("\n"))
        self._reply_timer = self.loop.call_later(self.reply_timeout, self._silent, request)
        try:
            sock.sendall(call.line)
        except OSError as exc:
            self.link_failed(exc)

    def _silent(self, request: Pending) -> None:
        self._reply_timer = None
        self.link_failed(DeviceTimeoutError(
            f"no reply to {request.description!r} within {self.reply_timeout:g} s",
            device=self.family, endpoint=self.endpoint))

    def _cancel_reply_timer(self) -> None:
        if self._reply_timer is not None:
            self._reply_timer.cancel()
            self._reply_timer = None

    # ------------------------------------------------------------------ receiving
    def _on_readable(self) -> None:
        sock = self._sock
        if sock is None:
            return
        try:
            data = sock.recv(4096)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            self.link_failed(exc)
            return
        if not data:
            self.link_failed(ConnectionResetError("the box closed the connection"))
            return
        try:
            for line in self._reader.feed(data):
                self._on_line(line)
        except ProtocolError as exc:
            self._out_of_step(exc)
            return
        except Exception as exc:  # a bug while handling a reply must not kill the I/O thread
            log.error("%s: error while handling a reply", self.endpoint, exc_info=True)
            error = ProtocolError(f"could not handle a reply ({type(exc).__name__}: {exc})")
            error.__cause__ = exc
            self._out_of_step(error)
            return
        self._send_next()

    def _on_line(self, line: str) -> None:
        self.wire.received(line)
        request = self._current
        if request is None:
            raise ProtocolError(f"a reply nobody asked for: {line!r}")
        self._cancel_reply_timer()
        # decode while the request is still current: if the reply is unreadable,
        # _out_of_step fails this request with the ProtocolError
        refusal = codec.decode_refusal(line)
        if request is self._hello:
            if refusal is not None:
                raise ProtocolError(f"the device refused ID ({line!r}): not a TR-1?")
            info = codec.decode_info(line)
            self._current = self._hello = None
            self.cache.set(INFO_TOPIC, info)
            self.established()
            return
        if refusal is not None:
            self._current = None
            request.fail(DeviceError(
                f"{request.description!r} refused: {refusal.text} "
                f"(ERR {int(refusal.code)} {refusal.code.name})", code=refusal.code,
                detail=refusal.text, device=self.family, endpoint=self.endpoint))
            return
        call: _Call = request.payload
        value = call.finish(line)
        self._current = None
        request.resolve(value)

    def _out_of_step(self, exc: ProtocolError) -> None:
        """A reply that cannot be read: which request it answered is unknown from here on, so
        the request on the wire fails with it and the link is rebuilt."""
        exc.device, exc.endpoint = self.family, self.endpoint
        exc.frames = self.wire.recent()
        log.warning("%s: %s; reconnecting", self.endpoint, exc)
        request, self._current = self._current, None
        if request is not None:
            request.fail(exc)
        self.link_failed(exc)

    # ------------------------------------------------------------------ cache
    def store_status(self, status: Status) -> Status:
        """Cache a fresh status and publish :class:`StatusChanged` if it differs (I/O thread)."""
        previous: Optional[Status] = self.cache.value(STATUS_TOPIC)
        self.cache.set(STATUS_TOPIC, status)
        if status != previous:
            self.dispatcher.publish(StatusChanged(status, previous))
        return status


class ThermoClient(BaseClient[ThermoSession]):
    """A connection to one TR-1 thermometer/relay box.

    :param endpoint: ``"host"``, ``"host:port"`` (port 7878 by default),
        ``"thermo://host:port"``, or ``"sim://[?temperature=20&limit=30&speed=60&seed=1]"`` for
        the simulator run in process.
    :param allow_writes: permit :meth:`set_relay` and :meth:`set_limit` (off by default: a
        relay switches real equipment).
    :param reply_timeout: seconds of silence after a request before the link is rebuilt
        (default: ``timeout`` + 1 s, so a caller's own timeout fires first).
    :param options: ``timeout``, ``connect_timeout``, ``reconnect``, ``retry_first``,
        ``on_event``, ``trace`` as for every pyburnerkit client.
    :raises ConfigurationError: a malformed endpoint or option.

    Every method is thread-safe. Callbacks run on ``pyburnerkit-thermo-<endpoint>-events``.
    """

    family = "thermo"

    def __init__(self, endpoint: str, *, allow_writes: bool = False,
                 reply_timeout: Optional[float] = None, **options: Any) -> None:
        parsed = parse_endpoint(endpoint, scheme=SCHEME, default_port=DEFAULT_PORT,
                                what="TR-1")
        self._sim_options: Optional[Dict[str, Any]] = None
        if parsed.is_sim:
            from .sim import ThermoSim
            self._sim_options = ThermoSim.parse_options(parsed.options)
        elif parsed.options or parsed.path not in ("", "/"):
            raise ConfigurationError(f"TR-1 endpoint {endpoint!r}: expected host[:port], "
                                     f"with no path or query")
        self.host = parsed.host
        self.port = parsed.port or DEFAULT_PORT
        self.allow_writes = bool(allow_writes)
        if reply_timeout is not None:  # checked before the base registers the client
            reply_timeout = float(check_range("reply_timeout", reply_timeout, 0.01, 3600.0,
                                              "s"))
        super().__init__(parsed.text if parsed.is_sim else parsed.netloc, **options)
        self.reply_timeout = (reply_timeout if reply_timeout is not None
                              else (self.timeout or 0.0) + 1.0)

    def _make_session(self, **common: Any) -> ThermoSession:
        return ThermoSession(host=self.host, port=self.port, reply_timeout=self.reply_timeout,
                             sim_factory=None if self._sim_options is None else self._in_process,
                             **common)

    def _in_process(self) -> "ThermoSim":
        from .sim import ThermoSim
        options = self._sim_options or {}
        sim: ThermoSim = self._own_simulator(lambda: ThermoSim(**options).start(listen=False))
        return sim

    # ------------------------------------------------------------------ cached, never block
    @property
    def info(self) -> Optional[DeviceInfo]:
        """Model, serial and firmware from the last hand-shake (None before the first)."""
        info: Optional[DeviceInfo] = self._cache.value(INFO_TOPIC)
        return info

    @property
    def status(self) -> Optional[Status]:
        """The status of the last :meth:`read_status` (None before the first)."""
        status: Optional[Status] = self._cache.value(STATUS_TOPIC)
        return status

    # ------------------------------------------------------------------ requests
    def read_status(self, timeout: TimeoutArg = DEFAULT) -> Status:
        """Ask the box for its status. Blocks until it answered; publishes
        :class:`~pyburnerkit_thermo.models.StatusChanged` when the status differs from the
        last one.

        :raises DeviceTimeoutError: no answer within ``timeout``.
        :raises ConnectionLostError: the link dropped while the request was on the wire.
        :raises ProtocolError: the answer could not be read (the link is rebuilt).
        """
        session = self._require_session()
        call = _Call(codec.encode_request(codec.Read()),
                     lambda line: session.store_status(codec.decode_status(line)))
        status: Status = self._call(Pending("read status", call), timeout)
        return status

    def set_relay(self, on: bool, timeout: TimeoutArg = DEFAULT) -> None:
        """Close (``True``) or open (``False``) the relay. Blocks until the box said OK.

        :raises WriteNotAllowedError: the client was not opened with ``allow_writes=True``.
        :raises ConfigurationError: ``on`` is neither a bool nor 0/1 (nothing was sent).
        :raises DeviceError: the box refused (code ``OVER_LIMIT`` at or above the limit).
        """
        self._check_writes("set_relay")
        value = on if isinstance(on, bool) else bool(check_range("relay", on, 0, 1,
                                                                 integer=True))
        self._write(f"set relay {int(value)}", codec.SetRelay(value), timeout)

    def set_limit(self, celsius: float, timeout: TimeoutArg = DEFAULT) -> None:
        """Set the over-temperature cut-out. Blocks until the box said OK.

        :param celsius: 0..60 °C in steps of 0.5 °C (the box would round anything finer).
        :raises WriteNotAllowedError: the client was not opened with ``allow_writes=True``.
        :raises ConfigurationError: out of range or off the 0.5 °C grid (nothing was sent).
        :raises DeviceError: the box refused.
        """
        self._check_writes("set_limit")
        value = float(check_range("limit", celsius, LIMIT_MIN_C, LIMIT_MAX_C, "°C",
                                  step=LIMIT_STEP_C))
        self._write(f"set limit {value:g}", codec.SetLimit(value), timeout)

    def _check_writes(self, what: str) -> None:
        if not self.allow_writes:
            raise WriteNotAllowedError(f"{what} changes the box: open the client with "
                                       f"allow_writes=True (nothing was sent)",
                                       device=self.family, endpoint=self.endpoint)

    def _write(self, description: str, request: codec.Request, timeout: TimeoutArg) -> None:
        call = _Call(codec.encode_request(request), codec.decode_ok)
        self._call(Pending(description, call, is_write=True), timeout)
