"""Blocking clients for Arbin cyclers over CTI, on one I/O thread per client.

* :class:`CyclerClient` reads: log-in details, channel count, the status of one channel, of a
  list or of every channel in one request, and ``watch()`` polls at an interval.
* :class:`ChannelClient` adds control of one channel (or several where CTI allows it): assign
  a schedule, start, stop, resume, continue, jump to a step, set meta variables.

CTI is lock-step: one request, one feedback, no request id. The session therefore keeps one
request on the wire at a time and queues the rest. If a caller gives up on a request before
its feedback came (its ``timeout``), the late feedback could be taken for the next one's, so
the session reconnects (and logs in again) to get back in step. A request that was on the
wire when the link dropped fails with :class:`~pyburnerkit.errors.ConnectionLostError` and is
never resent; requests still queued go out on the next link after the log-in.
"""

from __future__ import annotations

import logging
import os
import re
import threading
import time
from typing import (Any, Callable, Dict, Iterable, List, Mapping, Optional, Sequence,
                    Tuple, TypeVar, Union)

from .._core.client import BaseClient
from .._core.endpoint import Endpoint, parse_endpoint
from .._core.extras import require
from .._core.loop import TimerHandle
from .._core.pending import Pending, RequestQueue
from .._core.stream import StreamSession
from .._core.timeouts import Deadline, TimeoutArg
from ..errors import (AuthenticationError, ConfigurationError, DeviceError, DeviceTimeoutError,
                      ProtocolError, PyBurnerKitError, UnsupportedFeatureError,
                      WriteNotAllowedError, check_range)
from ..types import DEFAULT, ConnectionState
from . import codec
from .models import (AuxOption, ChannelStateChanged, ChannelStatus, CommandAcknowledged,
                     ConnectResult, CyclerInfo, InfoSelection, MV_META_CODES, MetaCode,
                     StatusSnapshot)

log = logging.getLogger(__name__)

DEFAULT_PORT = 9031
#: The URL scheme of a CTI endpoint (``cti://host[:port]``).
SCHEME = "cti"
USERNAME_VAR = "ARBIN_CTI_USERNAME"
PASSWORD_VAR = "ARBIN_CTI_PASSWORD"
CYCLER_TOPIC = "cycler"

#: What a request's ``finish`` makes of its feedback (the blocking call's return value).
R = TypeVar("R")


def channel_topic(channel: int) -> str:
    return f"channel/{channel}"


def check_whole(name: str, value: Any, low: int, high: int, unit: str) -> int:
    """A whole number in ``low..high``; ``unit`` says what the number counts.

    :raises ConfigurationError: naming the value, the limit and the unit.
    """
    try:
        return int(check_range(name, value, low, high, integer=True))
    except ConfigurationError as exc:
        # The unit here is a phrase ("1-based channel numbers; this cycler has 16 channels"),
        # which reads best after the shared message rather than inside it.
        raise ConfigurationError(f"{exc} ({unit})") from None


def _channel_unit(count: int) -> str:
    if count:
        return f"1-based channel numbers; this cycler has {count} channels"
    return "1-based channel numbers; checked against the cycler's count once connected"


class Credentials:
    """A CTI user name and password that never show in reprs, logs or exceptions."""

    __slots__ = ("_username", "_password")

    def __init__(self, username: str, password: str) -> None:
        self._username = username
        self._password = password

    def reveal(self) -> Tuple[str, str]:
        return self._username, self._password

    def __repr__(self) -> str:
        return "<Credentials (hidden)>"

    __str__ = __repr__

    def __reduce__(self) -> Any:  # never pickle secrets by accident
        raise TypeError("Credentials cannot be pickled")


def resolve_credentials(username: Optional[str] = None, password: Optional[str] = None,
                        env_file: Optional[Union[str, "os.PathLike[str]"]] = None, *,
                        missing_file_ok: bool = False) -> Credentials:
    """Credentials from arguments, else the ``.env`` file, else the environment.

    The file wins over the environment, as pycti's ``load_dotenv(override=True)`` does, but
    the process environment is never modified.

    :raises ConfigurationError: a value is missing or empty, or ``env_file`` does not exist.
    """
    file_values: Dict[str, Optional[str]] = {}
    if env_file is not None:
        path = os.fspath(env_file)
        if os.path.isfile(path):
            dotenv = require("dotenv", "arbin")
            file_values = dict(dotenv.dotenv_values(path))
        elif not missing_file_ok:
            raise ConfigurationError(f"the .env file {path!r} does not exist")
    user = username if username is not None else (file_values.get(USERNAME_VAR)
                                                  or os.environ.get(USERNAME_VAR))
    secret = password if password is not None else (file_values.get(PASSWORD_VAR)
                                                    or os.environ.get(PASSWORD_VAR))
    user = _credential(user, "username", USERNAME_VAR)
    secret = _credential(secret, "password", PASSWORD_VAR)
    # Check the field sizes now, without echoing the values.
    codec.LoginRequest(user, secret).encode_args()
    return Credentials(user, secret)


def _credential(value: Any, what: str, var: str) -> str:
    if not isinstance(value, str) or not value:
        raise ConfigurationError(
            f"no Arbin CTI {what}: pass {what}=, or set {var} in the environment or in a "
            ".env file (env_file=)")
    return value


class _Call:
    """What a request carries to the I/O thread: its frame and how to read the answer."""

    __slots__ = ("frame", "expect", "finish")

    def __init__(self, frame: bytes, expect: int, finish: Callable[[Any], Any]) -> None:
        self.frame = frame
        self.expect = expect
        self.finish = finish


class ArbinSession(StreamSession):
    family = "arbin"

    def __init__(self, *, host: str, port: Optional[int], credentials: Credentials,
                 reply_timeout: float, call_timeout: Optional[float] = None,
                 aux_options: int = 0, sim_factory: Optional[Callable[[], Any]] = None,
                 **common: Any) -> None:
        super().__init__(host=host, port=port, reply_timeout=reply_timeout,
                         sim_factory=sim_factory, **common)
        self.call_timeout = call_timeout
        self.aux_options = aux_options
        self._credentials = credentials
        # one receive buffer for the life of the session: the socket reads straight into
        # it and frames are cut out in place (no per-read bytes, no concatenation)
        self._reader = codec.FrameBuffer(feedback=True)
        self._logging_in = False
        self._queue = RequestQueue()
        self._current: Optional[Pending] = None
        self._reply_timer: Optional[TimerHandle] = None
        self._watch: Optional[Tuple[float, Optional[Tuple[int, ...]], int, int]] = None
        self._watch_timer: Optional[TimerHandle] = None
        self._watch_request: Optional[Pending] = None
        self._watch_id = 0
        #: feedbacks that could not be framed, decoded or handled (each dropped the link)
        self.protocol_errors = 0
        # True while handle_bytes works through one read: requests wait until it is done, so
        # that a frame later in the same read is never taken for the answer to a new request.
        self._receiving = False

    def __repr__(self) -> str:
        return f"<ArbinSession {self.endpoint} {self.state.value}>"

    # ------------------------------------------------------------------ transport
    def open_transport(self, deadline: Deadline) -> None:
        sock = self.open_stream(deadline, self._on_readable, what="CTI port")
        self._reader.clear()  # the loop thread runs the reader only after this returns
        self._logging_in = True
        # The session logs in before anything else goes out, on every (re)connect.
        user, secret = self._credentials.reveal()
        frame = codec.encode_request(codec.LoginRequest(user, secret))
        self.wire.sent(frame)
        sock.sendall(frame)
        wait = self.reply_timeout
        if self.ever_connected and self.call_timeout:
            # Callers queued for the new link wait at most their call timeout; an attempt
            # whose login goes unanswered longer than that is retried instead.
            wait = min(wait, self.call_timeout)
        self._arm_reply_timer("login", wait)

    def on_stream_closed(self) -> None:
        self._reader.clear()

    def on_link_down(self) -> None:
        self._cancel_reply_timer()
        self._current = None
        self._logging_in = False
        if self._watch_timer is not None:
            self._watch_timer.cancel()
            self._watch_timer = None
        self._watch_request = None

    def on_established(self) -> None:
        if self._watch is not None:
            self._watch_poll(self._watch_id)
        elif any(topic.startswith("channel/") for topic in self.cache.snapshot()):
            self._refresh()  # cached channels are stale after a reconnect: refresh them once

    def _refresh(self) -> None:
        frame = codec.encode_request(codec.ChannelInfoRequest(codec.ALL_CHANNELS, 1,
                                                              self.aux_options))

        def finish(message: codec.ChannelInfoFeedback) -> None:
            self.store_statuses(message.statuses)

        self.start_now(Pending("refresh after reconnect",
                                      _Call(frame, codec.CHANNEL_INFO_FEEDBACK, finish)))

    def take_unsent(self) -> List[Pending]:
        # Requests queued behind the one on the wire were never sent: the base keeps them for
        # the next link instead of failing them as "lost".
        return self._queue.take_unsent()

    # ------------------------------------------------------------------ requests
    def start_request(self, request: Pending) -> None:
        self._queue.append(request)
        if self._current is None and not self._receiving:
            self._send_next()

    def _send_next(self) -> None:
        if self._queue and self._current is None and self._sock is not None and \
                self._reader.buffered and not self._logging_in:
            # Bytes arrived while nothing was outstanding: the start of a frame nobody asked
            # for. Its rest would be cut from the next feedback, so get back in step first;
            # the queued requests were never sent and go out on the new link.
            self._protocol_failure(ProtocolError(
                f"{self._reader.buffered} stray bytes arrived while no request was "
                "outstanding; reconnecting before the next request"))
            return
        while self._current is None and self._sock is not None:
            request = self._queue.pop_live()
            if request is None:
                return
            call: _Call = request.payload
            self._current = request
            self.wire.sent(call.frame)
            try:
                self._sock.sendall(call.frame)
            except OSError as exc:
                self.link_failed(exc)
                return
            self._arm_reply_timer(request.description)
            request.add_done_callback(self._done_elsewhere)

    def _done_elsewhere(self, request: Pending) -> None:
        # Any thread: a caller that gave up (or close()) completed the request early. The
        # normal completion happens on the I/O thread itself and needs no check.
        if not self.loop.in_loop_thread():
            self.call_soon_threadsafe(self._check_abandoned, request)

    def _check_abandoned(self, request: Pending) -> None:
        if request is self._current and self.state is ConnectionState.CONNECTED:
            self.link_failed(DeviceTimeoutError(
                f"{request.description!r} was abandoned before its feedback arrived; "
                "reconnecting so that feedbacks stay in step", device=self.family,
                endpoint=self.endpoint))

    def _arm_reply_timer(self, what: str, seconds: Optional[float] = None) -> None:
        self._cancel_reply_timer()
        wait = self.reply_timeout if seconds is None else seconds
        self._reply_timer = self.loop.call_later(wait, self._reply_timed_out, what, wait)

    def _cancel_reply_timer(self) -> None:
        if self._reply_timer is not None:
            self._reply_timer.cancel()
            self._reply_timer = None

    def _reply_timed_out(self, what: str, seconds: float) -> None:
        self._reply_timer = None
        self.link_failed(DeviceTimeoutError(
            f"no feedback to {what!r} within {seconds:g} s", device=self.family,
            endpoint=self.endpoint))

    # ------------------------------------------------------------------ receiving
    def _on_readable(self) -> None:
        sock = self._sock
        if sock is None:
            return
        try:
            count = sock.recv_into(self._reader.space())
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            self.link_failed(exc)
            return
        if not count:
            self.link_failed(ConnectionResetError("the cycler closed the connection"))
            return
        self._reader.commit(count)
        self._take_frames()

    def handle_bytes(self, data: bytes) -> None:
        """The frame handler: what the I/O thread does with bytes read from the cycler.

        Cuts them into frames (token, length), checks each (checksum, extended code), decodes
        it and hands it to the request it answers. Never raises: anything wrong with what the peer
        sent - or a bug met while handling it - becomes a :class:`~pyburnerkit.errors.ProtocolError`
        that is logged, counted (``protocol_errors``), fails the request on the wire and drops the
        link so that the next one starts in step (queued requests wait for it).

        The socket path receives into the session's buffer directly; this copies ``data`` in.
        """
        self._reader.write(data)
        self._take_frames()

    def _take_frames(self) -> None:
        try:
            frames = self._reader.take_frames()
        except ProtocolError as exc:
            self.wire.received(self._reader.head(64))
            self._protocol_failure(exc)
            return
        self._receiving = True
        try:
            for frame in frames:
                if not self._handle_frame(frame):
                    return
        finally:
            self._receiving = False
        self._send_next()

    def _handle_frame(self, frame: bytes) -> bool:
        """Decode one frame and hand it on; False when the link went down meanwhile."""
        self.wire.received(frame)
        request = self._current
        try:
            self._handle(codec.decode_feedback(frame))
        except ProtocolError as exc:
            self._protocol_failure(exc, request)
            return False
        except Exception as exc:  # a bug must not kill the I/O thread: resynchronise
            log.error("%s: error while handling a received %s", self.endpoint,
                      codec.COMMAND_NAMES.get(codec.command_of(frame) or 0, "frame"),
                      exc_info=True)
            error = ProtocolError(f"could not handle a received frame "
                                  f"({type(exc).__name__}: {exc})")
            error.__cause__ = exc
            self._protocol_failure(error, request)
            return False
        return self._sock is not None

    def _protocol_failure(self, exc: ProtocolError, request: Optional[Pending] = None) -> None:
        self.protocol_errors += 1
        exc.device, exc.endpoint = self.family, self.endpoint
        exc.frames = self.wire.recent()
        log.warning("%s: feedback undecodable or out of step, reconnecting: %s", self.endpoint,
                    exc)
        current, self._current = self._current, None
        for pending in (current, request):
            if pending is not None and not pending.done():
                pending.fail(exc)
        self.link_failed(exc)

    def _handle(self, message: Any) -> None:
        if self._logging_in:
            self._cancel_reply_timer()
            if not isinstance(message, codec.LoginFeedback):
                self._protocol_failure(ProtocolError(
                    f"expected the login feedback, got {type(message).__name__}"))
                return
            info = message.info
            if not info.result.ok:
                self.link_failed(AuthenticationError(
                    f"the cycler refused the CTI log-in: {info.result.text} "
                    f"(result {int(info.result)})", device=self.family, endpoint=self.endpoint))
                return
            self._logging_in = False
            self.cache.set(CYCLER_TOPIC, info)
            self.established()
            return
        current = self._current
        if current is None:
            log.warning("%s: unsolicited %s ignored", self.endpoint, type(message).__name__)
            return
        call: _Call = current.payload
        if isinstance(message, codec.UnknownCommandFeedback):
            # A proper answer (the link stays in step): this cycler lacks the command.
            self._cancel_reply_timer()
            self._current = None
            current.fail(UnsupportedFeatureError(
                f"{current.description!r}: the cycler does not know this CTI command "
                "(unknown-command feedback 0xBB111111)", device=self.family,
                endpoint=self.endpoint))
            return
        if message.command != call.expect:
            self._protocol_failure(ProtocolError(
                f"expected {codec.COMMAND_NAMES.get(call.expect, hex(call.expect))}, got "
                f"{codec.COMMAND_NAMES.get(message.command, hex(message.command))}"))
            return
        self._cancel_reply_timer()
        self._current = None
        try:
            value = call.finish(message)
        except PyBurnerKitError as exc:
            current.fail(exc)
        else:
            current.resolve(value)

    # ------------------------------------------------------------------ cache
    def store_statuses(self, statuses: Sequence[ChannelStatus]) -> None:
        """Cache fresh statuses and publish the events (I/O thread)."""
        if not statuses:
            return
        changes = []
        for status in statuses:
            old = self.cache.value(channel_topic(status.channel))
            if old is None or old.state != status.state:
                changes.append(ChannelStateChanged(status.channel,
                                                   None if old is None else old.state,
                                                   status.state, status))
        self.cache.update((channel_topic(s.channel), s) for s in statuses)
        self.dispatcher.publish(StatusSnapshot(tuple(statuses)))
        for event in changes:
            self.dispatcher.publish(event)

    # ------------------------------------------------------------------ watch
    def set_watch(self, spec: Optional[Tuple[float, Optional[Tuple[int, ...]], int, int]]) -> None:
        """Start, replace (``spec``) or stop (None) the periodic poll (I/O thread)."""
        self._watch = spec
        self._watch_id += 1
        if self._watch_timer is not None:
            self._watch_timer.cancel()
            self._watch_timer = None
        if spec is not None and self._watch_request is None:
            self._watch_poll(self._watch_id)
        # else: the poll in flight schedules the next one with the new spec when it completes

    def _watch_poll(self, watch_id: int) -> None:
        self._watch_timer = None
        spec = self._watch
        if spec is None or watch_id != self._watch_id or self._watch_request is not None or \
                self.state is not ConnectionState.CONNECTED:
            return
        interval, channels, selection, aux = spec
        started = time.monotonic()
        frame = codec.encode_request(codec.ChannelInfoRequest(codec.ALL_CHANNELS, selection, aux))

        def finish(message: codec.ChannelInfoFeedback) -> Tuple[ChannelStatus, ...]:
            if watch_id != self._watch_id:
                return ()  # the watch was replaced or cancelled meanwhile: publish nothing
            chosen = message.statuses
            if channels is not None:
                chosen = tuple(s for s in chosen if s.channel in channels)
            self.store_statuses(chosen)
            return chosen

        request = Pending("watch poll", _Call(frame, codec.CHANNEL_INFO_FEEDBACK, finish))
        self._watch_request = request
        request.add_done_callback(
            lambda p: self.call_soon_threadsafe(self._watch_done, started, p))
        self.start_now(request)


    def _watch_done(self, started: float, request: Pending) -> None:
        if request is not self._watch_request:
            return  # a poll from before a reconnect: the new link runs its own
        self._watch_request = None
        if request.error is not None:
            log.debug("%s: watch poll failed: %s", self.endpoint, request.error)
        spec = self._watch
        if spec is None or self.state is not ConnectionState.CONNECTED:
            return
        delay = max(0.0, spec[0] - (time.monotonic() - started))
        self._watch_timer = self.loop.call_later(delay, self._watch_poll, self._watch_id)


class Watch:
    """A running ``watch()``: ``cancel()`` it (or leave its ``with`` block) to stop polling."""

    def __init__(self, client: "CyclerClient") -> None:
        self._client = client
        self.active = True

    def cancel(self) -> None:
        """Stop polling. Blocks until the I/O thread took it (at most 1 s): no poll of this
        watch - not even one already on the wire - is published after this returns."""
        if self.active:
            self.active = False
            self._client._cancel_watch(self)

    def __enter__(self) -> "Watch":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.cancel()


class CyclerClient(BaseClient[ArbinSession]):
    """A CTI connection to one Arbin cycler (MITS Pro / MITS 10, or :class:`ArbinSim`).

    :param endpoint: where the cycler is: ``"host"`` or ``"host:port"`` (the PC running MITS
        Pro Console with CTI enabled; port 9031 unless named), ``"cti://host[:port]"``, or
        ``"sim://[?channels=16&time_scale=1&seed=N&mits10=1]"`` for an :class:`ArbinSim` run
        in process (with the simulator's own account unless credentials are given).
    :param port: the CTI port, for an endpoint that names none (kept for scripts that pass
        host and port apart; giving a different port in both places is an error).
    :param username: / :param password: a MITS user with CTI permission; default from
        ``ARBIN_CTI_USERNAME`` / ``ARBIN_CTI_PASSWORD`` in ``env_file`` or the environment.
    :param env_file: a ``.env`` file to read the credentials from (needs python-dotenv).
    :param aux: ask for aux readings (temperature, aux voltage, ...) with every status.
    :param reply_timeout: seconds the session waits for a feedback before it reconnects
        (default: 10 s as Arbin advises, or ``timeout`` + 1 s when that is longer).
    :param timeout: per-call default (10 s, Arbin's advice); ``connect_timeout`` 30 s.
    :raises ConfigurationError: a malformed endpoint, an unknown ``sim://`` option, a port
        outside 1..65535 or named twice differently, or missing credentials. Nothing is
        connected before :meth:`connect`.

    Channels are 1-based and checked against the cycler's channel count before anything is
    sent. Every method is thread-safe; callbacks run on ``pyburnerkit-arbin-<host:port>-events``.
    """

    family = "arbin"
    default_timeout = 10.0
    default_connect_timeout = 30.0

    def __init__(self, endpoint: str, *, port: Optional[int] = None,
                 username: Optional[str] = None, password: Optional[str] = None,
                 env_file: Optional[str] = None, aux: bool = True,
                 reply_timeout: Optional[float] = None, **options: Any) -> None:
        if isinstance(endpoint, str) and "@" in re.split(r"[/?#]", endpoint.split("://", 1)[-1],
                                                        maxsplit=1)[0]:
            # Refused rather than silently dropped, and never echoed: it may hold a password.
            raise ConfigurationError(
                "a cycler endpoint cannot carry credentials (user:password@host); pass "
                f"username= / password=, or set {USERNAME_VAR} / {PASSWORD_VAR}")
        where = parse_endpoint(endpoint, scheme=SCHEME, what="cycler")
        self._sim_options: Optional[Dict[str, Any]] = None
        self.host: str
        #: the CTI port (None for an in-process simulator, which has no socket to name)
        self.port: Optional[int]
        if where.is_sim:
            if port is not None:
                raise ConfigurationError(
                    f"port={port!r} has no meaning for the in-process simulator {endpoint!r}")
            from .sim import ArbinSim, DEFAULT_PASSWORD, DEFAULT_USERNAME
            self._sim_options = ArbinSim.parse_options(where.options)
            username = username if username is not None else DEFAULT_USERNAME
            password = password if password is not None else DEFAULT_PASSWORD
            self._sim_options.update(username=username, password=password)
            self.host, self.port = "sim", None
            label = f"sim:{where.name}" if where.name else "sim"
        else:
            self.host, self.port = where.host, self._resolve_port(where, port)
            label = Endpoint(where.text, SCHEME, host=where.host, port=self.port).netloc
        self._credentials = resolve_credentials(username, password, env_file)
        self.aux_options = int(AuxOption.AUX) if aux else 0
        self._watch_handle: Optional[Watch] = None
        super().__init__(label, **options)
        if reply_timeout is None:
            # Longer than a call's own timeout, so that a caller with the default timeout gets
            # DeviceTimeoutError (then the session resynchronises), not a dropped link.
            reply_timeout = max(10.0, (self.timeout or 0.0) + 1.0)
        self.reply_timeout = float(check_range("reply_timeout", reply_timeout, 0.001, 86400.0,
                                               "s"))

    @staticmethod
    def _resolve_port(where: Endpoint, port: Optional[int]) -> int:
        """The port named by the endpoint or by ``port=`` (not two different ones), else 9031."""
        if where.path not in ("", "/") or where.options:
            raise ConfigurationError(
                f"cycler endpoint {where.text!r} has a path or query, which CTI does not "
                "use (expected host, host:port or cti://host[:port])")
        if port is None:
            return DEFAULT_PORT if where.port is None else where.port
        number = int(check_range("port", port, 1, 65535, integer=True))
        if where.port is not None and where.port != number:
            raise ConfigurationError(
                f"the endpoint {where.text!r} names port {where.port} but port={port!r} was "
                "given too; name the port once")
        return number

    def _make_session(self, **common: Any) -> ArbinSession:
        return ArbinSession(host=self.host, port=self.port, credentials=self._credentials,
                            reply_timeout=self.reply_timeout, call_timeout=self.timeout,
                            aux_options=self.aux_options,
                            sim_factory=None if self._sim_options is None else self._in_process_sim,
                            **common)

    def _in_process_sim(self) -> Any:
        from .sim import ArbinSim
        options = self._sim_options
        assert options is not None  # only a sim:// client gets an in-process simulator
        return self._own_simulator(lambda: ArbinSim(**options).start(listen=False))

    def _redact_frame(self, frame: Any) -> Any:
        return codec.redact(frame)

    # ------------------------------------------------------------------ cached state
    @property
    def info(self) -> Optional[CyclerInfo]:
        """The login feedback of the current (or last) link; never blocks."""
        info: Optional[CyclerInfo] = self._cache.value(CYCLER_TOPIC)
        return info

    @property
    def channel_count(self) -> int:
        """Number of IV channels the cycler reported at log-in (0 before connecting)."""
        info = self.info
        return 0 if info is None else info.num_channels

    def cached_status(self, channel: int) -> Optional[ChannelStatus]:
        """The latest status of ``channel`` seen by any read or watch; never blocks."""
        status: Optional[ChannelStatus] = self._cache.value(channel_topic(channel))
        return status

    @property
    def statuses(self) -> Dict[int, ChannelStatus]:
        """Every cached channel status by channel number; never blocks."""
        out: Dict[int, ChannelStatus] = {}
        for topic, snap in self._cache.snapshot().items():
            if topic.startswith("channel/"):
                out[int(topic[8:])] = snap.value
        return dict(sorted(out.items()))

    def is_stale(self, channel: Union[int, str, None] = None) -> bool:
        """True when the channel's cached status (or, without one, anything) is not live.

        A string is a cache topic, as for the other clients' ``is_stale(topic)``.
        """
        if channel is None or isinstance(channel, str):
            return self._cache.is_stale(channel)
        return self._cache.is_stale(channel_topic(channel))

    # ------------------------------------------------------------------ helpers
    def _check_channel(self, channel: Any, name: str = "channel") -> int:
        """A 1-based channel of this cycler (its count from the login feedback)."""
        count = self.channel_count
        return check_whole(name, channel, 1, count or codec.MAX_CHANNELS, _channel_unit(count))

    @property
    def protocol_errors(self) -> int:
        """How many received frames could not be framed, decoded or handled (each one failed
        the request on the wire and made the session reconnect)."""
        session = self._session
        return 0 if session is None else session.protocol_errors

    def _request(self, description: str, message: Any, finish: Callable[[Any], R],
                 timeout: TimeoutArg, *, is_write: bool = False) -> R:
        """Send ``message`` and block until ``finish`` (run on the I/O thread) turned its
        feedback into the result."""
        frame = codec.encode_request(message)  # bad input fails here, before any I/O
        expect = codec.FEEDBACK_OF[message.command]
        result: R = self._call(Pending(description, _Call(frame, expect, finish),
                                       is_write=is_write), timeout)
        return result

    def _session_store(self, statuses: Sequence[ChannelStatus]) -> None:
        session = self._session
        if session is not None:
            session.store_statuses(statuses)

    # ------------------------------------------------------------------ reads
    def read_status(self, channel: int, timeout: TimeoutArg = DEFAULT) -> ChannelStatus:
        """The status of one channel (1-based), in one request.

        A cycler that answers with every channel (MITS 10) is handled: the record is picked
        by its channel field.
        """
        channel = self._check_channel(channel)

        def finish(message: codec.ChannelInfoFeedback) -> ChannelStatus:
            status = message.find(channel)
            if status is None:
                raise DeviceError(f"the cycler returned no record for channel {channel} "
                                  f"({len(message.statuses)} records)", device=self.family,
                                  endpoint=self.endpoint)
            self._session_store([status])
            return status

        return self._request(f"status of channel {channel}",
                             codec.ChannelInfoRequest(channel - 1, InfoSelection.ALL,
                                                      self.aux_options), finish, timeout)

    def read_all_statuses(self, selection: InfoSelection = InfoSelection.ALL,
                          timeout: TimeoutArg = DEFAULT) -> List[ChannelStatus]:
        """Every channel (or only running / unsafe ones) in one all-channel request."""
        selection = InfoSelection(selection)

        def finish(message: codec.ChannelInfoFeedback) -> List[ChannelStatus]:
            self._session_store(message.statuses)
            return list(message.statuses)

        return self._request("status of all channels",
                             codec.ChannelInfoRequest(codec.ALL_CHANNELS, int(selection),
                                                      self.aux_options), finish, timeout)

    def read_statuses(self, channels: Iterable[int],
                      timeout: TimeoutArg = DEFAULT) -> List[ChannelStatus]:
        """The status of several channels, in the order given, with one all-channel request."""
        wanted = [self._check_channel(c) for c in channels]
        if not wanted:
            raise ConfigurationError("read_statuses needs at least one channel")
        by_channel = {s.channel: s for s in self.read_all_statuses(timeout=timeout)}
        missing = [c for c in wanted if c not in by_channel]
        if missing:
            raise DeviceError(f"the cycler returned no record for channels {missing}",
                              device=self.family, endpoint=self.endpoint)
        return [by_channel[c] for c in wanted]

    def read_serial(self, timeout: TimeoutArg = DEFAULT) -> int:
        """The cycler's serial number (get-serial command)."""
        def finish(message: codec.SerialFeedback) -> int:
            self._raise_for(message.result, "get serial", None)
            return message.serial

        return self._request("get serial", codec.GetSerialRequest(), finish, timeout)

    def read_meta_variable(self, meta_code: Union[int, MetaCode],
                           channel: Optional[int] = None,
                           timeout: TimeoutArg = DEFAULT) -> Union[int, float]:
        """One meta variable of ``channel`` (1-based) with the get-MV command (0xBB150003).

        ``meta_code`` is a :class:`~pyburnerkit.arbin.MetaCode` (``PV_VOLTAGE``,
        ``PV_STEP_INDEX``, ``MV_UD1``...) or its number. Step and cycle indexes come back as
        ints (the numbers the status record carries only as text), everything else as a float.

        Arbin publishes only this command's code; the layout is this package's (see
        ``pyburnerkit.arbin.codec.GetMVRequest``), so a cycler that lays it out
        otherwise answers with a protocol error or the unknown-command feedback.

        Blocks until the cycler answered, at most ``timeout`` seconds. Reads may be repeated
        freely; nothing changes on the cycler.

        :raises ConfigurationError: no channel given (a :class:`ChannelClient` defaults to
            its own), a channel outside the cycler's count or a meta code outside i32.
        :raises DeviceError: the cycler refused (``code``: its result byte, e.g. 0x12 meta
            code does not exist).
        :raises UnsupportedFeatureError: the cycler does not know get-MV.
        :raises DeviceTimeoutError: no feedback within ``timeout``.
        """
        if channel is None:
            raise ConfigurationError("read_meta_variable needs channel= (1-based)")
        channel = self._check_channel(channel)
        code = check_whole("meta code", meta_code, -0x80000000, 0x7FFFFFFF,
                           "Arbin meta codes, e.g. MetaCode.PV_VOLTAGE = 21")

        def finish(message: codec.GetMVFeedback) -> Union[int, float]:
            self._raise_for(message.result, f"get meta code {code}", channel)
            if message.value is None:
                raise DeviceError(f"meta code {code} on channel {channel} came back as "
                                  f"{message.value_type.name}, which has no layout here",
                                  device=self.family, endpoint=self.endpoint)
            return message.value

        return self._request(f"meta code {code} of channel {channel}",
                             codec.GetMVRequest(channel - 1, code), finish, timeout)

    def send_connect(self, kick_out: bool = False,
                     timeout: TimeoutArg = DEFAULT) -> ConnectResult:
        """Send CTI's connect command (0xEEAB0002) with the kick-out flag.

        Arbin's documents disagree on the flag; this package reads ``kick_out=True`` as
        "drop other CTI clients to make room" (what its simulator does). That ends other
        users' sessions, so it needs a :class:`ChannelClient` opened with
        ``allow_writes=True``; ``kick_out=False`` only asks.

        Blocks until the cycler answered, at most ``timeout`` seconds; never retried.

        :returns: ``ConnectResult.ACCEPTED``.
        :raises WriteNotAllowedError: ``kick_out=True`` without ``allow_writes``.
        :raises DeviceError: the cycler rejected the connection (``code`` 1: server full).
        :raises DeviceTimeoutError: no feedback within ``timeout``.
        """
        if kick_out and not getattr(self, "allow_writes", False):
            raise WriteNotAllowedError(
                "send_connect(kick_out=True) drops other CTI clients; open a ChannelClient "
                "with allow_writes=True to allow it (nothing was sent)", device=self.family,
                endpoint=self.endpoint)

        def finish(message: codec.ConnectFeedback) -> ConnectResult:
            if not message.ok:
                raise DeviceError(
                    f"connect refused: {message.result.text} (code {int(message.result)})",
                    code=int(message.result), detail=message.result.text,
                    device=self.family, endpoint=self.endpoint)
            return message.result

        return self._request("connect", codec.ConnectRequest(bool(kick_out)), finish, timeout,
                             is_write=bool(kick_out))

    def watch(self, interval_s: float = 1.0, channels: Optional[Iterable[int]] = None, *,
              selection: InfoSelection = InfoSelection.ALL) -> Watch:
        """Poll every channel (one all-channel request) each ``interval_s`` seconds.

        Each answer updates the cache (``cached_status``) and is delivered as a
        :class:`StatusSnapshot` event (plus :class:`ChannelStateChanged` for state changes).
        Only one watch runs per client; a new call replaces it, and once this returns no poll
        of the replaced watch is published any more. Polling survives reconnects.
        """
        interval = check_range("interval_s", interval_s, 0.01, 86400.0, "s")
        chosen = None if channels is None else tuple(self._check_channel(c) for c in channels)
        self._require_session()
        handle = Watch(self)
        with self._lock:
            previous, self._watch_handle = self._watch_handle, handle
        if previous is not None:
            previous.active = False
        self._set_watch((float(interval), chosen, int(InfoSelection(selection)),
                         self.aux_options))
        return handle

    def _cancel_watch(self, handle: Watch) -> None:
        with self._lock:
            if self._watch_handle is not handle:
                return  # already replaced by a newer watch()
            self._watch_handle = None
        self._set_watch(None)

    def _set_watch(self, spec: Any) -> None:
        """Hand the watch spec to the I/O thread and wait (at most 1 s) until it took it, so
        that no poll of a replaced or cancelled watch is published after this returns."""
        session = self._session
        if session is None or self.closed:
            return
        taken = threading.Event()

        def apply() -> None:
            session.set_watch(spec)
            taken.set()

        session.call_soon_threadsafe(apply)
        if session.thread is not threading.current_thread():
            taken.wait(1.0)

    def _raise_for(self, result: Any, what: str, channel: Optional[int]) -> None:
        if int(result) == 0:
            return
        where = f" on channel {channel}" if channel is not None else ""
        raise DeviceError(f"{what}{where} refused: {result.text} (code 0x{int(result):02X})",
                          code=int(result), detail=result.text, device=self.family,
                          endpoint=self.endpoint)


class ChannelClient(CyclerClient):
    """Control of one channel (1-based ``channel``), plus everything :class:`CyclerClient` reads.

    :param endpoint: / :param port: as for :class:`CyclerClient` (``"host"``,
        ``"host:port"``, ``"cti://host[:port]"``, ``"sim://..."``).
    :param channel: the channel this client controls (1-based; checked against the cycler's
        channel count once connected).
    :param allow_writes: needed for every command that changes the cycler: assign, start,
        stop, resume, continue, jump, meta variables. Stop is no exception: it ends a running
        test (``all_channels=True``: every test on a shared cycler), and CTI stop is not what
        keeps a cell safe (the cycler's own safety limits are). Without it those commands raise
        :class:`~pyburnerkit.errors.WriteNotAllowedError` and send nothing.
    :param test_name: / :param schedule: defaults for :meth:`start` / :meth:`assign_schedule`.

    Every command checks its values (channels against the cycler's channel count, meta
    variables against MV_UD1..16 and the 32-bit float range, strings against their CTI field
    sizes) before anything is sent, and none is ever retried: see each method.
    """

    def __init__(self, endpoint: str, *, port: Optional[int] = None, channel: int,
                 allow_writes: bool = False, test_name: Optional[str] = None,
                 schedule: Optional[str] = None, **options: Any) -> None:
        self.channel = check_whole("channel", channel, 1, codec.MAX_CHANNELS, _channel_unit(0))
        self.allow_writes = bool(allow_writes)
        self.test_name = test_name
        self.schedule = schedule
        super().__init__(endpoint, port=port, **options)

    def _guard_write(self, what: str) -> None:
        if not self.allow_writes:
            raise WriteNotAllowedError(
                f"{what} changes the cycler; open the client with allow_writes=True to allow "
                "it (nothing was sent)", device=self.family, endpoint=self.endpoint)
        info = self.info
        if info is not None and not info.allow_control:
            raise UnsupportedFeatureError(
                f"{what}: the cycler does not allow this CTI user to control channels "
                "(allow_control=0 in the login feedback)", device=self.family,
                endpoint=self.endpoint)

    def _command(self, what: str, message: Any, channel: Optional[int],
                 timeout: TimeoutArg) -> None:
        def finish(feedback: codec.CommandFeedback) -> None:
            where = channel
            if where is None and 0 <= feedback.channel_index < codec.MAX_CHANNELS:
                where = feedback.channel_index + 1  # the channel the cycler complains about
            self._dispatcher.publish(CommandAcknowledged(what, where, feedback.result))
            self._raise_for(feedback.result, what, where)

        self._request(what if channel is None else f"{what} (channel {channel})", message,
                      finish, timeout, is_write=True)

    def _channels(self, channels: Optional[Iterable[int]], what: str) -> List[int]:
        chosen = [self._check_channel(c) for c in
                  ([self.channel] if channels is None else list(channels))]
        if not chosen:
            raise ConfigurationError(f"{what} needs at least one channel")
        return chosen

    def read_status(self, channel: Optional[int] = None,
                    timeout: TimeoutArg = DEFAULT) -> ChannelStatus:
        """The status of this client's channel (or of ``channel``)."""
        return super().read_status(self.channel if channel is None else channel, timeout)

    def read_meta_variable(self, meta_code: Union[int, MetaCode],
                           channel: Optional[int] = None,
                           timeout: TimeoutArg = DEFAULT) -> Union[int, float]:
        """:meth:`CyclerClient.read_meta_variable` of this client's channel (or ``channel``)."""
        return super().read_meta_variable(meta_code, self.channel if channel is None
                                          else channel, timeout)

    def assign_schedule(self, schedule: Optional[str] = None, *, test_capacity_ah: float = 0.0,
                        barcode: str = "", mv_initial: Optional[Sequence[float]] = None,
                        all_channels: bool = False, timeout: TimeoutArg = DEFAULT) -> None:
        """Assign a schedule file (e.g. ``"Rest+207855.sdx"``, at most 199 characters) to the
        channel, or to every channel.

        ``test_capacity_ah`` (0 or more, Ah), ``barcode`` (at most 71 characters) and
        ``mv_initial`` (16 MV_UD start values; MITS 7 only) go with it.

        Blocks until the cycler's feedback arrived, at most ``timeout`` seconds. If this call
        times out, the device may still apply the write later; it is never retried
        automatically.

        :raises WriteNotAllowedError: the client was opened without ``allow_writes=True``;
            nothing is sent.
        :raises ConfigurationError: the channel, a string or a number outside its limit; nothing
            is sent and the message names the value, the limit and the unit.
        :raises DeviceError: the cycler refused (``code``: its result byte).
        :raises DeviceTimeoutError: no feedback within ``timeout``.
        :raises ConnectionLostError: the link dropped while the command was on the wire.
        """
        self._guard_write("assign schedule")
        schedule = self.schedule if schedule is None else schedule
        if not schedule:
            raise ConfigurationError("assign_schedule needs a schedule name (schedule=)")
        channel = self._check_channel(self.channel)
        values = tuple(mv_initial) if mv_initial is not None else (0.0,) * 16
        self._command("assign schedule", codec.AssignScheduleRequest(
            channel - 1, schedule, test_capacity_ah, barcode, values, all_channels),
            None if all_channels else channel, timeout)

    def start(self, test_name: Optional[str] = None, *, channels: Optional[Iterable[int]] = None,
              timeout: TimeoutArg = DEFAULT) -> None:
        """Start the assigned schedule as ``test_name`` (at most 71 characters) on this
        channel, or on ``channels`` (several in one request).

        Blocks until the cycler's feedback arrived, at most ``timeout`` seconds. If this call
        times out, the device may still apply the write later; it is never retried
        automatically.

        :raises WriteNotAllowedError: the client was opened without ``allow_writes=True``;
            nothing is sent.
        :raises ConfigurationError: a channel or the test name outside its limit; nothing
            is sent and the message names the value, the limit and the unit.
        :raises DeviceError: the cycler refused (``code``: its result byte).
        :raises DeviceTimeoutError: no feedback within ``timeout``.
        :raises ConnectionLostError: the link dropped while the command was on the wire.
        """
        self._guard_write("start")
        test_name = self.test_name if test_name is None else test_name
        if not test_name:
            raise ConfigurationError("start needs a test name (test_name=)")
        chosen = self._channels(channels, "start")
        self._command("start", codec.StartRequest(test_name, tuple(c - 1 for c in chosen)),
                      chosen[0] if len(chosen) == 1 else None, timeout)

    def _one_channel_command(self, what: str, message_type: Any, all_channels: bool,
                             timeout: TimeoutArg) -> None:
        """Stop and resume share one shape: this channel (or all), one 128-byte feedback."""
        self._guard_write(f"{what} every channel" if all_channels else what)
        channel = self._check_channel(self.channel)
        self._command(what, message_type(channel - 1, all_channels),
                      None if all_channels else channel, timeout)

    def stop(self, *, all_channels: bool = False, timeout: TimeoutArg = DEFAULT) -> None:
        """Stop the test on this channel (or on every channel of the cycler).

        Needs ``allow_writes=True`` like every command: a stop ends a running test.

        Blocks until the cycler's feedback arrived, at most ``timeout`` seconds. If this call
        times out, the device may still apply the write later; it is never retried
        automatically.

        :raises WriteNotAllowedError: the client was opened without ``allow_writes=True``;
            nothing is sent.
        :raises ConfigurationError: the channel outside its limit; nothing
            is sent and the message names the value, the limit and the unit.
        :raises DeviceError: the cycler refused (``code``: its result byte).
        :raises DeviceTimeoutError: no feedback within ``timeout``.
        :raises ConnectionLostError: the link dropped while the command was on the wire.
        """
        self._one_channel_command("stop", codec.StopRequest, all_channels, timeout)

    def resume(self, *, all_channels: bool = False, timeout: TimeoutArg = DEFAULT) -> None:
        """Resume a stopped test on this channel (or on every channel).

        Blocks until the cycler's feedback arrived, at most ``timeout`` seconds. If this call
        times out, the device may still apply the write later; it is never retried
        automatically.

        :raises WriteNotAllowedError: the client was opened without ``allow_writes=True``;
            nothing is sent.
        :raises ConfigurationError: the channel outside its limit; nothing
            is sent and the message names the value, the limit and the unit.
        :raises DeviceError: the cycler refused (``code``: its result byte).
        :raises DeviceTimeoutError: no feedback within ``timeout``.
        :raises ConnectionLostError: the link dropped while the command was on the wire.
        """
        self._one_channel_command("resume", codec.ResumeRequest, all_channels, timeout)

    def continue_test(self, *, channels: Optional[Iterable[int]] = None,
                      timeout: TimeoutArg = DEFAULT) -> None:
        """Continue a paused test on this channel (or on ``channels``).

        Blocks until the cycler's feedback arrived, at most ``timeout`` seconds. If this call
        times out, the device may still apply the write later; it is never retried
        automatically.

        :raises WriteNotAllowedError: the client was opened without ``allow_writes=True``;
            nothing is sent.
        :raises ConfigurationError: a channel outside its limit; nothing
            is sent and the message names the value, the limit and the unit.
        :raises DeviceError: the cycler refused (``code``: its result byte).
        :raises DeviceTimeoutError: no feedback within ``timeout``.
        :raises ConnectionLostError: the link dropped while the command was on the wire.
        """
        self._guard_write("continue")
        chosen = self._channels(channels, "continue")
        self._command("continue", codec.ContinueRequest(tuple(c - 1 for c in chosen)),
                      chosen[0] if len(chosen) == 1 else None, timeout)

    def jump_to_step(self, step: int, timeout: TimeoutArg = DEFAULT) -> None:
        """Jump the running test to ``step`` (1-based, as the step text shows it; a step past
        the schedule's last one ends the test).

        Blocks until the cycler's feedback arrived, at most ``timeout`` seconds. If this call
        times out, the device may still apply the write later; it is never retried
        automatically.

        :raises WriteNotAllowedError: the client was opened without ``allow_writes=True``;
            nothing is sent.
        :raises ConfigurationError: the step or the channel outside its limit; nothing
            is sent and the message names the value, the limit and the unit.
        :raises DeviceError: the cycler refused (``code``: its result byte).
        :raises DeviceTimeoutError: no feedback within ``timeout``.
        :raises ConnectionLostError: the link dropped while the command was on the wire.
        """
        self._guard_write("jump to step")
        step = check_whole("step", step, 1, 0x7FFFFFFF,
                           "1-based step numbers, as the step text shows them")
        channel = self._check_channel(self.channel)
        self._command("jump to step", codec.JumpRequest(channel - 1, step - 1), channel, timeout)

    def set_meta_variable(self, mv: int, value: float, timeout: TimeoutArg = DEFAULT) -> None:
        """Set user meta variable MV_UD``mv`` (1..16) of the running test to ``value`` (a
        finite 32-bit float; the schedule gives it its unit).

        Blocks until the cycler's feedback arrived, at most ``timeout`` seconds. If this call
        times out, the device may still apply the write later; it is never retried
        automatically.

        :raises WriteNotAllowedError: the client was opened without ``allow_writes=True``;
            nothing is sent.
        :raises ConfigurationError: the mv number, the value or the channel outside its
            limit; nothing is sent and the message names the value, the limit and the unit.
        :raises DeviceError: the cycler refused (``code``: its result byte).
        :raises DeviceTimeoutError: no feedback within ``timeout``.
        :raises ConnectionLostError: the link dropped while the command was on the wire.
        """
        self._guard_write("set meta variable")
        mv = _check_mv(mv)
        channel = self._check_channel(self.channel)
        self._command(f"set MV_UD{mv}", codec.SetMVRequest(channel - 1, MV_META_CODES[mv],
                                                           value), channel, timeout)

    def set_meta_variables(self, values: Mapping[Any, float],
                           timeout: TimeoutArg = DEFAULT) -> None:
        """Set several meta variables in one request (1..160 entries, at least 200 ms apart).

        Keys are ``mv`` numbers (1..16) for this channel, or ``(channel, mv)`` pairs.

        Blocks until the cycler's feedback arrived, at most ``timeout`` seconds. If this call
        times out, the device may still apply the write later; it is never retried
        automatically.

        :raises WriteNotAllowedError: the client was opened without ``allow_writes=True``;
            nothing is sent.
        :raises ConfigurationError: an mv number, a value, a channel or the entry count
            outside its limit; nothing is sent and the message names the value, the limit
            and the unit.
        :raises DeviceError: the cycler refused (``code``: its result byte).
        :raises DeviceTimeoutError: no feedback within ``timeout``.
        :raises ConnectionLostError: the link dropped while the command was on the wire.
        """
        self._guard_write("set meta variables")
        entries = []
        if not isinstance(values, Mapping):
            raise ConfigurationError("set_meta_variables needs a mapping of mv (or "
                                     f"(channel, mv)) to value, got {type(values).__name__}")
        for key, value in values.items():
            if isinstance(key, tuple) and len(key) != 2:
                raise ConfigurationError(f"meta variable key {key!r} must be an mv number "
                                         "1..16 or a (channel, mv) pair")
            channel, mv = (key if isinstance(key, tuple) else (self.channel, key))
            channel = self._check_channel(channel)
            mv = _check_mv(mv)
            entries.append(codec.MVUpdate(channel - 1, MV_META_CODES[mv], value))
        self._command("set meta variables", codec.UpdateMVAdvancedRequest(tuple(entries)),
                      None, timeout)


def _check_mv(mv: Any) -> int:
    return check_whole("meta variable number", mv, 1, 16, "MV_UD1..MV_UD16")
