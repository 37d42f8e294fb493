"""The blocking Afterburner client and the session that speaks the WebSocket JSON protocol.

How a request is confirmed
==========================

The controller acknowledges nothing. It handles the commands it receives one by one, in
order, and after each heater-bus cycle (an *update*, about once a second) it sends the keys
that changed, one frame per group: main, extended, timers, MQTT, network, system, GPIO.
``{"SQuery":1}`` makes the next update carry the whole system group (``SysUpTime`` among
it). Every query handled before one update gets that ONE frame: answers do not pair 1:1 with
queries, so a client that pairs them first-in first-out falls out of step for good as soon as
two queries share an update (two threads, a timed-out call and the next, the keep-alive and a
call, a backlog after a stall).

So requests travel in *rounds* (:class:`Round`): a round's commands, then ``SQuery`` in the
round's last frame. The round is answered by the first frame carrying ``SysUpTime`` that
arrives after it was sent, and the pushed state at that moment shows each command's effect
(the firmware sends the main and extended groups before the system group of the same update).

Why that frame answers the round and not an earlier query (a frame "already in flight"):
**at most one round is on the wire at a time.** A round's query goes out only after the
previous round's answer has been received, so no system frame caused by an earlier query of
ours can still be on its way: the next ``SysUpTime`` frame comes from an update after the
controller handled our whole round (commands before the query, same connection, handled in
order; the keys that make the firmware emit or suppress frames - ``Refresh``, ``DateTime``,
``TQuery`` - share the query's frame, so no update falls between them and the query).
Requests made while a round is on the wire wait in the next round, whose commands are sent
only then: one update later they are answered. Only another client's query or refresh can
produce a ``SysUpTime`` frame we did not ask for; that can complete a round early, so every
setter still checks the reported value, and a value that does not show yet is checked once
more on the next round before :class:`~pyburnerkit.errors.DeviceError` is raised. A caller that
times out simply leaves its round; nothing waits for it.
"""

from __future__ import annotations

import datetime as _dt
import logging
import socket
import time
import traceback
from types import MappingProxyType
from typing import (TYPE_CHECKING, Any, Callable, Dict, FrozenSet, Iterable, List, Mapping,
                    Optional, Set, Tuple, Type, TypeVar)

from .._core.client import BaseClient
from .._core.endpoint import Endpoint, parse_endpoint
from .._core.extras import require
from .._core.net import connect_tcp, release_socket, shutdown_socket
from .._core.pending import Pending
from .._core.session import Session
from .._core.timeouts import Deadline, TimeoutArg
from .._core.wsframe import whole_frame_buffered
from ..errors import (ConfigurationError, DeviceConnectionError, DeviceError, ProtocolError,
                      UnsupportedFeatureError, WriteNotAllowedError, check_range)
from ..types import DEFAULT
from . import codec
from .models import (DemandMode, HeaterStatus, RunState, StartRefused, StatusChanged,
                     SystemInfo, SystemInfoChanged, ThermostatMethod, Timer, TimerChanged)

if TYPE_CHECKING:
    from .sim import AfterburnerSim

E = TypeVar("E", DemandMode, ThermostatMethod)

log = logging.getLogger(__name__)

DEFAULT_PORT = 81
#: Frames that identify the two groups a complete state needs.
MAIN_GROUP_KEY = "RunState"
EXTENDED_GROUP_KEY = "ThermostatMethod"
#: Only a system frame that answers a query (or a refresh) carries this key; the frame the
#: firmware sends after a clock change has the date alone.
ANSWER_KEY = "SysUpTime"
#: Consecutive undecodable frames after which the link is considered broken.
MAX_BAD_FRAMES = 5
#: Keys kept from the controller's frames at most: newer firmware adds keys (kept in
#: ``status.raw``), but a hostile peer must not grow the cache without bound.
MAX_KEPT_KEYS = 512
#: After an answer, how long the next round waits for the callers just answered to come back
#: (seconds). Without it a burst of callers splits into two alternating rounds and each call
#: takes two updates; it never waits once they are back, or when nobody was answered.
ROUND_GATHER_S = 0.03
#: How long a request that finds the link idle waits for companions (seconds): threads that
#: start calling together then share the first round too.
ROUND_START_GATHER_S = 0.01
#: Keys that ask for frames (or re-prime the timer report): they travel in the round's last
#: frame, with the query, in this order (a refresh re-primes the timers, so TQuery follows).
LATE_KEYS = ("Refresh", "DateTime", "TQuery")
#: Keys that ask for data and change nothing on the device.
QUERY_KEYS = frozenset({"Refresh", "SQuery", "TQuery", "TimerRefresh", "IQuery", "MQuery"})
#: Keys of event-style frames: they are not state.
_EVENT_KEYS = frozenset({"StartString", "Reboot", "LoadWebContent", "TimerRefresh",
                         "TimerConflict"})
_TIMER_KEYS = frozenset(codec.TIMER_KEYS)
#: Bytes asked of the socket per read. websocket-client reads a frame in three exact reads
#: (header, length, payload); one larger read takes a whole update's frames at once, and the
#: frames already read are handled without another wait or syscall (see ``_on_readable``).
READ_AHEAD_BYTES = 16 * 1024


def read_ahead(ws: Any) -> bool:
    """Make ``ws`` (a connected ``websocket.WebSocket``) read up to :data:`READ_AHEAD_BYTES` per
    socket read instead of exactly the bytes a frame still needs.

    websocket-client's frame reader keeps whatever a read returned beyond the current frame
    for the next one (``frame_buffer.recv_buffer``). If this version of it does not look like
    that, nothing is changed and False is returned: the exact reads then stay (slower, as
    correct).
    """
    frames = getattr(ws, "frame_buffer", None)
    exact = getattr(frames, "recv", None)
    if not callable(exact) or not isinstance(getattr(frames, "recv_buffer", None), list):
        return False

    def recv(size: int) -> Any:
        return exact(max(size, READ_AHEAD_BYTES))

    frames.recv = recv  # type: ignore[union-attr]
    return True


def frame_read_ahead(ws: Any) -> bool:
    """Whether a whole frame is already in ``ws``'s read-ahead buffer (never blocks)."""
    buffered = ws.frame_buffer.recv_buffer
    if not buffered:
        return False
    return whole_frame_buffered(buffered[0] if len(buffered) == 1 else b"".join(buffered))


#: What :attr:`AfterburnerClient.status` shows before the first state (shared: it is frozen
#: and its ``raw`` is read-only).
_NO_STATUS = HeaterStatus(raw=MappingProxyType({}))


def parse_url(text: object) -> Endpoint:
    """Read an endpoint string the Afterburner way: ``host``, ``host:port``,
    ``ws://host[:port][/path]`` (port 81 and path ``/`` unless given, as the firmware serves
    them) or ``sim://[?options]``. The shared ``parse_endpoint`` does the parsing; this only
    supplies the family's scheme and port, and refuses ``wss://`` with the reason.

    :raises ConfigurationError: anything else (the message names the string and the forms).
    """
    endpoint = parse_endpoint(text, scheme="ws", default_port=DEFAULT_PORT, schemes=("wss",),
                              what="Afterburner")
    if endpoint.scheme == "wss":
        raise ConfigurationError(
            f"wss:// is not supported ({text!r}): the released firmware serves plain ws:// only")
    return endpoint


# ----------------------------------------------------------------------------------- requests
def write_identities(frame: Mapping[str, Any]) -> FrozenSet[str]:
    """What a command frame changes: its keys, timer keys per timer id, queries left out."""
    found: Set[str] = set()
    for key, value in frame.items():
        if key in QUERY_KEYS:
            continue
        if key in codec.TIMER_KEYS:
            found.add(f"{key}#{str(value).strip().split(' ', 1)[0]}")
        else:
            found.add(key)
    return frozenset(found)


class Exchange:
    """One request: the command keys it sends and how its effect is recognised.

    :param expect: command key -> (reported key, value) that must show once its round is
        answered.
    :param settle: after the answer, re-checked on every frame until it returns True (a run
        state reached, a timer shown).
    :param settle_keys: the writes ``settle`` waits for; when a later command of ours
        overwrites one of them, waiting is moot and the request completes.
    """

    def __init__(self, frame: Mapping[str, Any], *,
                 expect: Optional[Mapping[str, Tuple[str, Any]]] = None,
                 settle: Optional[Callable[["AfterburnerSession"], Any]] = None,
                 settle_keys: Iterable[str] = ()) -> None:
        self.frame = dict(frame)
        self.expect = dict(expect or {})
        self.settle = settle
        self.settle_keys = frozenset(settle_keys)
        self.writes = write_identities(self.frame)
        #: writes of this request that a later command of ours overwrote
        self.superseded: Set[str] = set()
        self.rechecked = False
        self.start_reason: Optional[str] = None

    @property
    def starts_heater(self) -> bool:
        return "Run" in self.frame and codec.firmware_to_int(self.frame["Run"]) != 0


class Round:
    """Requests whose commands went out together, followed by one query.

    ``members`` are answered by the round's answer; ``starts`` are the members whose start
    request is the round's (the controller answers each start with a ``StartString``).
    """

    __slots__ = ("members", "starts", "sent_at")

    def __init__(self, members: List[Pending], starts: List[Pending]) -> None:
        self.members = members
        self.starts = starts
        self.sent_at = time.monotonic()


def build_round(requests: List[Pending]) -> Tuple[List[Dict[str, Any]], Dict[str, Pending]]:
    """The frames that carry ``requests`` and, per write, the request that wrote it last.

    Commands keep their order; a key never overwrites an earlier value in the same frame (a
    second write goes in the next frame, so the controller handles both, in order); no frame
    exceeds the firmware's 512-byte parse buffer. The last frame holds :data:`LATE_KEYS` and
    the query.
    """
    writers: Dict[str, Pending] = {}
    early: List[Dict[str, Any]] = [{}]
    sizes = [2]  # encoded bytes of each early frame: "{}" plus its items and commas
    late: Dict[str, Any] = {}
    for request in requests:
        exchange: Exchange = request.payload
        for key, value in exchange.frame.items():
            if key in LATE_KEYS:
                if key == "TQuery" and late.get(key, value) != value:
                    value = 0  # two different timers asked for: ask for all of them
                late[key] = value
                continue
            current = early[-1]
            item = codec.encoded_item_bytes(key, value)
            grown = sizes[-1] + item + (1 if current else 0)
            if key in current or grown > codec.MAX_COMMAND_BYTES:
                early.append({key: value})
                sizes.append(2 + item)
            else:
                current[key] = value
                sizes[-1] = grown
        for identity in exchange.writes:
            writers[identity] = request
    last = {key: late[key] for key in LATE_KEYS if key in late}
    last["SQuery"] = 1
    frames = [frame for frame in early if frame]
    if len(frames) == 1 and not set(frames[0]) & set(last):
        # the usual case: one frame, commands first
        size = sizes[0] + sum(1 + codec.encoded_item_bytes(k, v) for k, v in last.items())
        if size <= codec.MAX_COMMAND_BYTES:
            frames[0].update(last)
            return frames, writers
    return frames + [last], writers


class AfterburnerSession(Session):
    family = "afterburner"

    def __init__(self, *, address: Endpoint,
                 sim_factory: Optional[Callable[[], "AfterburnerSim"]],
                 liveness_interval: float, liveness_timeout: float, refresh_grace: float,
                 **common: Any) -> None:
        super().__init__(**common)
        self._websocket = require("websocket", "afterburner")
        self.address = address
        self.sim_factory = sim_factory
        self.liveness_interval = liveness_interval
        self.liveness_timeout = liveness_timeout
        self.refresh_grace = refresh_grace
        self.keys: Dict[str, Any] = {}
        #: the typed status of ``keys``, updated key by key as frames arrive
        self.status = HeaterStatus()
        self.system_keys: Dict[str, Any] = {}
        #: the typed ``system_keys``, updated key by key
        self.system_info = SystemInfo()
        self.timers: Dict[int, Timer] = {i: Timer(i) for i in range(1, codec.TIMER_COUNT + 1)}
        self.ws: Any = None
        #: frames that could not be decoded or handled (each one logged and dropped)
        self.protocol_errors = 0
        #: of those, the ones that hit an unexpected exception (a bug; logged with traceback)
        self.unexpected_errors = 0
        self._sock: Optional[socket.socket] = None
        self._fd = -1
        self._read_ahead = False
        self._have_main = self._have_extended = self._have_system = False
        self._link_up = False
        self._bad_frames = 0
        self._dropped_keys = 0
        self._last_rx = 0.0
        self._liveness_timer: Any = None
        self._probe_timer: Any = None
        self._refresh_timer: Any = None
        self._round_timer: Any = None
        self._overdue_timer: Any = None
        self._stall_timer: Any = None
        # rounds (see the module docstring); all of it belongs to the I/O thread
        self._round: Optional[Round] = None      # on the wire, not answered yet
        self._open: List[Pending] = []           # waiting for the next round, nothing sent
        self._riders: List[Pending] = []         # sent; re-checked on the next round's answer
        self._next_look: List[Pending] = []      # riders looked at once more on the next frame
        self._settling: List[Pending] = []       # answered; waiting for their settle check
        self._keepalive_due = False
        self._answered_at = 0.0
        self._returning = 0                      # requests the next round waits to gather
        self._opened_at = 0.0                    # when the first waiting request came in

    # ------------------------------------------------------------------ transport
    def open_transport(self, deadline: Deadline) -> None:
        address = self.address
        if self.sim_factory is not None:
            sock = self.sim_factory().attach()
            ws_url = "ws://afterburner.sim/"
        else:
            sock = connect_tcp(self.loop, address.host, address.port or DEFAULT_PORT, deadline,
                               on_socket=self._remember)
            ws_url = f"ws://{address.netloc}{address.path or '/'}"
        self._sock = sock
        ws = self._websocket.WebSocket(enable_multithread=False, skip_utf8_validation=True)
        sock.settimeout(deadline.remaining())
        try:
            # No ping: the firmware never answers one, and a ping payload can desync its reader.
            ws.connect(ws_url, socket=sock, timeout=deadline.remaining())
        except self._websocket.WebSocketException as exc:
            sock.close()
            raise DeviceConnectionError(f"WebSocket hand-shake failed: {exc}",
                                        device=self.family, endpoint=self.endpoint) from exc
        except OSError:
            sock.close()
            raise
        # A frame that starts arriving must finish within this; it never blocks longer.
        sock.settimeout(self._frame_timeout())
        self._read_ahead = read_ahead(ws)
        self.ws = ws
        self._have_main = self._have_extended = self._have_system = False
        self._link_up = False
        self._bad_frames = 0
        self._last_rx = time.monotonic()
        self._fd = self.loop.add_reader(sock, self._on_readable)
        # A controller that did not notice our previous link dropping sees no new client and
        # sends no dump; ask for it at once on a reconnect, after a grace period on first use.
        grace = 0.0 if self._ever_connected else self.refresh_grace
        self._refresh_timer = self.loop.call_later(grace, self._request_refresh)

    def _remember(self, sock: Optional[socket.socket]) -> None:
        self._sock = sock

    def abort_blocking(self) -> None:
        shutdown_socket(self._sock)

    def close_transport(self) -> None:
        for attr in ("_liveness_timer", "_probe_timer", "_refresh_timer", "_round_timer",
                     "_overdue_timer", "_stall_timer"):
            timer = getattr(self, attr)
            if timer is not None:
                timer.cancel()
                setattr(self, attr, None)
        sock, self._sock = self._sock, None
        self.ws = None
        self._link_up = False
        release_socket(self.loop, sock, self._fd if sock is not None else -1)

    def take_unsent(self) -> List[Pending]:
        # Requests still waiting for their round never reached the wire: they wait for the
        # next link instead of failing (nothing of theirs can have been applied).
        unsent, self._open = [r for r in self._open if not r.done()], []
        return unsent

    def on_link_down(self) -> None:
        for attr in ("_round_timer", "_overdue_timer"):
            timer = getattr(self, attr)
            if timer is not None:
                timer.cancel()
                setattr(self, attr, None)
        self._round = None
        self._open, self._riders, self._settling, self._next_look = [], [], [], []
        self._keepalive_due = False
        self._returning = 0

    def on_established(self) -> None:
        self._arm_liveness()
        self._schedule_round()

    # ------------------------------------------------------------------ sending
    def send(self, frame: Mapping[str, Any]) -> None:
        if self.ws is None:
            raise OSError("not connected")
        text = codec.encode_frame(frame)
        self.wire.sent(frame if type(frame) is dict else dict(frame))
        try:
            self.ws.send(text)
        except self._websocket.WebSocketException as exc:
            raise OSError(f"send failed: {exc}") from exc

    def _request_refresh(self) -> None:
        self._refresh_timer = None
        if self._link_up:
            return
        try:
            self.send({"Refresh": 1})
        except OSError as exc:
            self.link_failed(exc)
            return
        # The dump it asks for ends with a system frame: treat it as a round of its own, so
        # no round of ours goes out before that frame could be mistaken for its answer.
        self._put_on_wire(Round([], []))

    # ------------------------------------------------------------------ rounds
    def start_request(self, request: Pending) -> None:
        if not any(not r.done() for r in self._open):
            self._opened_at = time.monotonic()
        self._open.append(request)
        self._schedule_round()

    def _schedule_round(self) -> None:
        """Send the next round now, or once the callers just answered are back (I/O thread)."""
        if self._round is not None or self.ws is None:
            return
        self._open = [r for r in self._open if not r.done()]
        if not (self._open or self._riders or self._keepalive_due):
            return
        if self._returning:
            due = self._answered_at + ROUND_GATHER_S if len(self._open) < self._returning \
                else 0.0
        else:
            due = self._opened_at + ROUND_START_GATHER_S if self._open else 0.0
        wait = due - time.monotonic()
        if wait > 0:
            if self._round_timer is None:
                self._round_timer = self.loop.call_later(wait, self._gathering_over)
            return
        if self._round_timer is not None:
            self._round_timer.cancel()
            self._round_timer = None
        self._send_round()

    def _gathering_over(self) -> None:
        self._round_timer = None
        self._returning = 0
        self._schedule_round()

    def _send_round(self) -> None:
        requests = [r for r in self._open if not r.done()]
        riders = [r for r in self._riders if not r.done()]
        self._open, self._riders = [], []
        self._keepalive_due = False
        self._returning = 0
        frames, writers = build_round(requests)
        for request in requests + riders + self._settling:
            exchange: Exchange = request.payload
            exchange.superseded.update(
                w for w in exchange.writes if writers.get(w, request) is not request)
        starts = [r for r in requests if r.payload.starts_heater
                  and "Run" not in r.payload.superseded]
        self._put_on_wire(Round(requests + riders, starts))
        try:
            for frame in frames:
                self.send(frame)
        except OSError as exc:
            self.link_failed(exc)

    def _put_on_wire(self, round_: Round) -> None:
        self._round = round_
        if self._overdue_timer is not None:
            self._overdue_timer.cancel()
        self._overdue_timer = self.loop.call_later(self.liveness_timeout, self._overdue, round_)

    def _overdue(self, round_: Round) -> None:
        """The round had no answer within ``liveness_timeout``. A silent controller is the
        liveness check's business; one that kept sending other frames lost our answer (it was
        undecodable): rebuild the link, the way back into step (I/O thread)."""
        self._overdue_timer = None
        if self._round is round_ and self._last_rx > round_.sent_at and self.ws is not None:
            self.link_failed(TimeoutError(
                f"the controller's answer to a query was lost (none within "
                f"{self.liveness_timeout:g} s while other frames arrived)"))

    def _answer_lost(self) -> None:
        """The round's answer arrived but could not be decoded or handled: its members ride
        the next round (nothing of theirs is sent again), so no caller waits for ever."""
        round_, self._round = self._round, None
        if self._overdue_timer is not None:
            self._overdue_timer.cancel()
            self._overdue_timer = None
        if round_ is not None:
            self._riders.extend(r for r in round_.members if not r.done())
        self._answered_at = time.monotonic()
        self._returning = 0
        self._schedule_round()

    def _answer_round(self) -> None:
        """The round's answer arrived: check each member (I/O thread)."""
        round_, self._round = self._round, None
        self._answered_at = time.monotonic()
        if self._overdue_timer is not None:
            self._overdue_timer.cancel()
            self._overdue_timer = None
        if round_ is None:
            return
        waiting = [r for r in round_.members if not r.done()]
        for request in waiting:
            self._check_answer(request)
        self._settle()
        # The next round waits (briefly) until it holds the callers already waiting plus
        # those of this round (answered now, or a frame or two later): together they stay
        # one cohort, answered by one update, instead of alternating rounds.
        self._returning = len(waiting) + sum(1 for r in self._open if not r.done())

    def _check_answer(self, request: Pending) -> None:
        exchange: Exchange = request.payload
        if exchange.start_reason:
            request.fail(DeviceError(
                f"the controller refused to start: {exchange.start_reason}", code="StartString",
                detail=exchange.start_reason, device=self.family, endpoint=self.endpoint))
            return
        unmet = {key: want for key, want in exchange.expect.items()
                 if key not in exchange.superseded
                 and not codec.values_match(want[1], self._reported(want[0]))}
        if not unmet:
            self._settling.append(request)
        elif not exchange.rechecked:
            # Not shown yet: the key may be reported after the system frame (the GPIO group
            # follows it in the same update), or the answer was another client's query (see
            # the module docstring). Look again at the next frame and on the next round's
            # answer; the command itself is never sent again.
            exchange.rechecked = True
            self._riders.append(request)
            self._next_look.append(request)
        else:
            reported, expected = next(iter(unmet.values()))
            current = self._reported(reported)
            request.fail(DeviceError(
                f"the controller did not take {reported}={expected!r}: it reports {current!r}",
                code=reported, detail=str(current), device=self.family, endpoint=self.endpoint))

    def _look_again(self) -> None:
        """Riders whose values show in the frame just handled are done (I/O thread)."""
        looking, self._next_look = self._next_look, []
        for request in looking:
            exchange: Exchange = request.payload
            if not request.done() and not any(
                    key not in exchange.superseded
                    and not codec.values_match(want[1], self._reported(want[0]))
                    for key, want in exchange.expect.items()):
                self._riders = [r for r in self._riders if r is not request]
                self._settling.append(request)

    def _settle(self) -> None:
        still: List[Pending] = []
        for request in self._settling:
            if request.done():
                continue
            exchange: Exchange = request.payload
            if exchange.settle is None or exchange.settle_keys & exchange.superseded \
                    or self._settled(exchange):
                request.resolve(None)
            else:
                still.append(request)
        self._settling = still

    def _settled(self, exchange: Exchange) -> bool:
        if exchange.settle is None:
            return True
        try:
            return bool(exchange.settle(self))
        except ProtocolError:
            return False  # a value the controller sent cannot be read: not settled (yet)

    def _reported(self, key: str) -> Any:
        return self.keys[key] if key in self.keys else self.system_keys.get(key)

    def typed(self, key: str) -> Any:
        """A status or system key as last reported, typed (``None`` when unseen or NaN).

        :raises ProtocolError: the value cannot be read.
        """
        value = self._reported(key)
        return None if value is None else codec.convert(key, value)

    # ------------------------------------------------------------------ receiving
    def _on_readable(self) -> None:
        """Handle the frames that arrived (I/O thread): one read from the socket, then every
        whole frame that read brought (a partial one waits for the next readable event).
        A frame already started is read to its end, within the socket timeout."""
        ws = self.ws
        websocket = self._websocket
        if self._stall_timer is not None:  # more bytes came: the read below finishes the frame
            self._stall_timer.cancel()
            self._stall_timer = None
        while ws is not None:
            try:
                opcode, frame = ws.recv_data_frame(True)
            except (websocket.WebSocketConnectionClosedException, OSError) as exc:
                self.link_failed(exc if isinstance(exc, OSError)
                                 else ConnectionResetError(f"connection closed: {exc}"))
                return
            except websocket.WebSocketTimeoutException as exc:
                # A frame stopped half-way: what follows cannot be framed any more.
                self.link_failed(TimeoutError(f"a frame from the controller stalled: {exc}"))
                return
            except Exception as exc:  # a malformed WebSocket frame: the stream may be out of step
                self._bad_frame(ProtocolError(
                    f"bad WebSocket frame: {type(exc).__name__}: {codec.redact_text(str(exc))}"))
                return
            self._last_rx = time.monotonic()
            if opcode == websocket.ABNF.OPCODE_CLOSE:
                self.link_failed(ConnectionResetError("the controller closed the connection"))
                return
            if opcode == websocket.ABNF.OPCODE_TEXT:
                self.handle_text(frame.data if hasattr(frame, "data") else frame)
            # Handling the frame may have dropped or replaced the link: its buffer went with it.
            if self.ws is not ws or not self._read_ahead:
                return
            if not frame_read_ahead(ws):
                if ws.frame_buffer.recv_buffer and self._stall_timer is None:
                    # Part of a frame was read ahead and the rest may never come: no readable
                    # event will report bytes already read, so a timer bounds the wait instead
                    # (the same bound as a frame stalling inside a read).
                    self._stall_timer = self.loop.call_later(self._frame_timeout(),
                                                             self._frame_stalled, ws)
                return

    def _frame_timeout(self) -> float:
        """Seconds a frame that started arriving may take to finish."""
        return max(1.0, self.liveness_timeout)

    def _frame_stalled(self, ws: Any) -> None:
        self._stall_timer = None
        if self.ws is ws and ws.frame_buffer.recv_buffer:
            self.link_failed(TimeoutError(
                f"a frame from the controller stalled: the rest of it did not come within "
                f"{self._frame_timeout():g} s"))

    def handle_text(self, data: Any) -> None:
        """Decode and apply one text frame from the controller (I/O thread).

        Never raises: a frame that cannot be decoded - or a bug met while handling it -
        becomes a :class:`~pyburnerkit.errors.ProtocolError` that is logged, counted
        (``protocol_errors``) and dropped; after :data:`MAX_BAD_FRAMES` in a row the link is
        rebuilt. Nothing of a frame that fails is applied.
        """
        round_ = self._round
        try:
            self._handle_text(data)
            return
        except ProtocolError as exc:
            self._bad_frame(exc)
        except Exception as exc:  # a bug must never kill the I/O thread
            self._unexpected(exc)
        if round_ is not None and self._round is round_ and self._looks_like_answer(data):
            self._answer_lost()

    @staticmethod
    def _looks_like_answer(data: Any) -> bool:
        if isinstance(data, (bytes, bytearray, memoryview)):
            return ANSWER_KEY.encode() in bytes(data)
        return isinstance(data, str) and ANSWER_KEY in data

    def _handle_text(self, data: Any) -> None:
        try:
            obj = codec.decode_frame(data)
        except ProtocolError:
            self.wire.received(data)  # masked by the client's redaction hook
            raise
        self.wire.received(obj)
        # _handle_frame converts every known key before it changes anything, so a bad value
        # is a ProtocolError that leaves no trace (each key is converted once, not twice).
        self._handle_frame(obj)
        self._bad_frames = 0

    def _unexpected(self, exc: Exception) -> None:
        self.unexpected_errors += 1
        summary = f"{type(exc).__name__}: {codec.redact_text(str(exc))}"
        if self.unexpected_errors == 1:
            # The traceback without the raw exception text, which might quote a frame.
            stack = "".join(traceback.format_tb(exc.__traceback__))
            log.error("%s: a frame could not be handled (logged once with its traceback; the "
                      "frame is dropped like an undecodable one):\n%s%s", self.endpoint, stack,
                      summary)
        error = ProtocolError(f"could not handle a frame: {summary}")
        error.__cause__ = exc
        self._bad_frame(error)

    def _bad_frame(self, exc: ProtocolError) -> None:
        self.protocol_errors += 1
        self._bad_frames += 1
        if exc.args:
            exc.args = (codec.redact_text(str(exc.args[0])),) + tuple(exc.args[1:])
        exc.device, exc.endpoint = self.family, self.endpoint
        exc.frames = self.wire.recent()  # already masked when recorded
        log.warning("%s: dropped an undecodable frame (%d in a row): %s", self.endpoint,
                    self._bad_frames, exc)
        if self._bad_frames >= MAX_BAD_FRAMES and self.ws is not None:
            self.link_failed(exc)

    def _handle_frame(self, obj: Dict[str, Any]) -> None:
        if self._probe_timer is not None:
            self._probe_timer.cancel()
            self._probe_timer = None
        timer_keys: Dict[str, Any] = {}
        system: Dict[str, Any] = {}
        status: Dict[str, Any] = {}
        for key, value in obj.items():
            if key in _TIMER_KEYS:
                timer_keys[key] = value
            elif key in codec.SYSTEM_KEYS:
                system[key] = value
            elif key not in _EVENT_KEYS:
                status[key] = value
        # Work everything out first: a value that cannot be read raises here, before any
        # state changed, so a bad frame never leaves half of itself behind.
        keys = self._merged_keys(status) if status else self.keys
        heater = None
        if status:
            kept = status if len(keys) < MAX_KEPT_KEYS else \
                {k: v for k, v in status.items() if k in keys}
            heater = codec.update_status(self.status, kept)
        timers = self._updated_timers(timer_keys) if timer_keys else {}
        system_keys = dict(self.system_keys, **system) if system else self.system_keys
        info = codec.update_system_info(self.system_info, self.system_keys, system) \
            if system else None

        if "StartString" in obj:
            self._start_string(str(obj["StartString"]))
        if heater is not None:  # built exactly when the frame had status keys
            self.keys = keys
            self.status = heater
            self._have_main = self._have_main or MAIN_GROUP_KEY in status
            self._have_extended = self._have_extended or EXTENDED_GROUP_KEY in status
            if self._link_up:
                self._publish_status(heater, status)
        if timers:
            self.timers.update(timers)
            self.cache.set("timers", tuple(self.timers[i] for i in sorted(self.timers)))
            for timer in timers.values():
                self.dispatcher.publish(TimerChanged(timer))
        if info is not None:  # built exactly when the frame had system keys
            self.system_keys = system_keys
            self.system_info = info
            # system_keys is replaced on every change, never changed in place: shared as is.
            self.cache.update([("system", info), ("system_keys", system_keys)])
            if self.dispatcher.listening():
                self.dispatcher.publish(SystemInfoChanged(info))
            self._have_system = True
        self._look_again()
        answered = ANSWER_KEY in system and self._round is not None
        if answered:
            self._answer_round()
        if not self._link_up and self._have_main and self._have_extended and self._have_system \
                and self.ws is not None:
            # The dump ends with the system group: the state is complete.
            self._link_up = True
            self._publish_status(self.status, dict(self.keys))
            self.established()
        self._settle()
        if answered:
            self._schedule_round()

    def _merged_keys(self, status: Mapping[str, Any]) -> Dict[str, Any]:
        merged = dict(self.keys)
        for key, value in status.items():
            if key in merged or key in codec.STATUS_KEYS or len(merged) < MAX_KEPT_KEYS:
                merged[key] = value
            else:
                self._dropped_keys += 1
                if self._dropped_keys == 1:
                    log.warning("%s: the controller sends more than %d distinct keys; further "
                                "unknown keys are not kept", self.endpoint, MAX_KEPT_KEYS)
        return merged

    def _updated_timers(self, keys: Mapping[str, Any]) -> Dict[int, Timer]:
        by_id: Dict[int, Timer] = {}
        for key, value in keys.items():
            timer_id, _ = codec.parse_timer_value(key, value)
            timer = by_id.get(timer_id, self.timers[timer_id])
            by_id[timer_id] = codec.apply_timer_key(timer, key, value)
        return by_id

    def _start_string(self, reason: str) -> None:
        # The controller answers each start request at once, before the round's answer; a
        # StartString while no start of ours is on the wire comes from another client.
        round_ = self._round
        if reason and round_ is not None:
            for request in round_.starts:
                request.payload.start_reason = reason
        if reason:
            self.dispatcher.publish(StartRefused(reason))

    def _publish_status(self, status: HeaterStatus, changed: Mapping[str, Any]) -> None:
        self.cache.set("status", status)
        if self.dispatcher.listening():
            self.dispatcher.publish(StatusChanged(status, codec.redact(dict(changed))))

    # ------------------------------------------------------------------ liveness
    def _arm_liveness(self) -> None:
        due = self._last_rx + self.liveness_interval - time.monotonic()
        if due <= 0:
            due = self.liveness_interval  # a probe is out: its own timer decides
        self._liveness_timer = self.loop.call_later(due, self._liveness_check)

    def _liveness_check(self) -> None:
        self._liveness_timer = None
        if self.ws is None:
            return
        if self._probe_timer is None and \
                time.monotonic() - self._last_rx >= self.liveness_interval:
            # A query always gets an answer (DateTime and SysUpTime are always new). A round
            # already on the wire is a probe of its own.
            if self._round is None:
                self._keepalive_due = True
                self._schedule_round()
            self._probe_timer = self.loop.call_later(self.liveness_timeout, self._silent)
        self._arm_liveness()

    def _silent(self) -> None:
        self._probe_timer = None
        self.link_failed(TimeoutError(
            f"the controller did not answer a liveness query within {self.liveness_timeout:g} s"))


# ----------------------------------------------------------------------------------- facade
class AfterburnerClient(BaseClient[AfterburnerSession]):
    """A connection to one Afterburner controller (or its simulator).

    :param endpoint: ``"192.168.4.1"``, ``"host:81"``, ``"ws://host:81/"`` (port 81 and path
        ``/`` by default, as the firmware serves them) or ``"sim://"`` for the built-in
        simulator, run in process (``"sim://?speed=60&tick=0.2&seed=1"``; the options are
        :class:`~pyburnerkit.afterburner.AfterburnerSim`'s).
    :param allow_writes: allow changing the heater. Without it every method that changes
        something (starting, set points, modes, settings, timers, the clock, ``save``, the
        pyBurner setters of :mod:`~pyburnerkit.afterburner.compat`) raises
        :class:`~pyburnerkit.errors.WriteNotAllowedError` before anything is sent. The only
        exceptions make the heater safe and are always allowed: :meth:`stop` / ``run(False)``
        and ``prime_pump(False)``.
    :param liveness_interval: seconds of silence (0.05-3600) after which ``{"SQuery":1}``
        checks the link.
    :param liveness_timeout: seconds (0.05-600) to wait for that answer before reconnecting;
        also how long any query may stay unanswered while other frames arrive (its answer was
        lost) before the link is rebuilt. Keep it well above the controller's update interval.
    :param refresh_grace: seconds (0-60) a new link waits for the controller's own dump before
        asking for it with ``{"Refresh":1}``.
    :param options: ``timeout``, ``connect_timeout``, ``reconnect``, ``on_event``, ``trace``...
        as for every client.
    :raises ConfigurationError: a bad endpoint, ``sim://`` option or argument (nothing is
        opened).
    :raises BackendUnavailableError: websocket-client (the ``afterburner`` extra) is missing.

    Every method is thread-safe; commands are serialised on the I/O thread
    ``pyburnerkit-afterburner-<endpoint>-io``; callbacks run on ``...-events``. The controller
    acknowledges nothing, so setters block until the controller has answered a query sent
    after them and the pushed state shows the value; they raise
    :class:`~pyburnerkit.errors.DeviceError` when it shows something else or ignored the value.
    """

    family = "afterburner"

    def __init__(self, endpoint: str = "192.168.4.1", *, allow_writes: bool = False,
                 liveness_interval: float = 15.0, liveness_timeout: float = 5.0,
                 refresh_grace: float = 1.5, **options: Any) -> None:
        require("websocket", "afterburner")  # fail here, not on the first connect
        address = parse_url(endpoint)
        self._address = address
        self._sim_options: Dict[str, Any] = {}
        if address.is_sim:
            from .sim import AfterburnerSim
            self._sim_options = AfterburnerSim.parse_options(address.options)
            label = f"sim:{address.name}" if address.name else "sim"
        else:
            label = address.netloc
        self.allow_writes = bool(allow_writes)
        self.liveness_interval = float(check_range("liveness_interval", liveness_interval,
                                                   0.05, 3600, "s"))
        self.liveness_timeout = float(check_range("liveness_timeout", liveness_timeout,
                                                  0.05, 600, "s"))
        self.refresh_grace = float(check_range("refresh_grace", refresh_grace, 0, 60, "s"))
        super().__init__(label, **options)

    def _make_session(self, **common: Any) -> AfterburnerSession:
        return AfterburnerSession(
            address=self._address,
            sim_factory=self._in_process_sim if self._address.is_sim else None,
            liveness_interval=self.liveness_interval, liveness_timeout=self.liveness_timeout,
            refresh_grace=self.refresh_grace, **common)

    def _in_process_sim(self) -> "AfterburnerSim":
        from .sim import AfterburnerSim
        sim: AfterburnerSim = self._own_simulator(
            lambda: AfterburnerSim(**self._sim_options).start(listen=False))
        return sim

    def _redact_frame(self, frame: Any) -> Any:
        return codec.redact(frame)

    # ------------------------------------------------------------------ cached state
    @property
    def status(self) -> HeaterStatus:
        """The latest pushed state (never blocks; empty before the first connection)."""
        status: Optional[HeaterStatus] = self._cache.value("status")
        return _NO_STATUS if status is None else status

    @property
    def system_info(self) -> SystemInfo:
        """The latest system group (clock, uptime, version, hour meters); see
        :meth:`read_system_info`."""
        info: SystemInfo = self._cache.value("system", SystemInfo())
        return info

    @property
    def timers(self) -> Tuple[Timer, ...]:
        """The timers as last reported; see :meth:`read_timers` (a status read omits them)."""
        timers: Tuple[Timer, ...] = self._cache.value("timers", ())
        return timers

    def reported_value(self, key: str) -> Any:
        """The value of firmware key ``key`` (``"TempDesired"``, ``"SysVer"``...) as the
        controller last reported it, with the JSON type it came in (credentials masked).

        Reads the cache and never blocks (use :meth:`read_status` first for a fresh value).

        :returns: the value, or None when the controller has not reported that key.
        """
        system_keys: Mapping[str, Any] = self._cache.value("system_keys", {})
        if key in system_keys:
            return system_keys[key]
        return self.status.raw.get(key)

    @property
    def stale(self) -> bool:
        return self._cache.is_stale("status")

    @property
    def protocol_errors(self) -> int:
        """How many frames from the controller could not be decoded or handled (each one was
        logged and dropped; five in a row rebuild the link)."""
        session = self._session
        return 0 if session is None else session.protocol_errors

    # ------------------------------------------------------------------ requests
    def _exchange(self, description: str, exchange: Exchange, timeout: TimeoutArg,
                  *, write: bool = True, safety_stop: bool = False) -> Any:
        # The last gate before the wire: a write method that forgot its own check is still
        # refused here (the methods check first, so that the message names them).
        if write and not safety_stop:
            self._require_writes(description)
        return self._call(Pending(description, exchange, is_write=write), timeout)

    def _require_writes(self, action: str) -> None:
        """Refuse ``action`` unless the client was opened with ``allow_writes=True``.

        :raises WriteNotAllowedError: one line saying how to enable it; nothing is sent.
        """
        if not self.allow_writes:
            raise WriteNotAllowedError(
                f"{action} changes the heater: open the client with allow_writes=True (CLI: "
                f"--allow-writes) to allow it; without it only stop() and prime_pump(False) "
                f"work", device=self.family, endpoint=self.endpoint)

    def read_status(self, timeout: TimeoutArg = DEFAULT) -> HeaterStatus:
        """Ask for a full dump (``Refresh``) and block until it has arrived.

        :returns: the fresh, complete status.
        :raises DeviceTimeoutError: no dump within ``timeout`` seconds.
        """
        self._exchange("Refresh", Exchange({"Refresh": 1}), timeout, write=False)
        return self.status

    def read_system_info(self, timeout: TimeoutArg = DEFAULT) -> SystemInfo:
        """Query the system group (``SQuery``): clock, uptime, firmware, hour meters.

        Blocks until the controller's answer (its next update, about a second) is in.

        :raises DeviceTimeoutError: no answer within ``timeout`` seconds.
        """
        self._exchange("SQuery", Exchange({}), timeout, write=False)
        return self.system_info

    def read_timers(self, timeout: TimeoutArg = DEFAULT) -> Tuple[Timer, ...]:
        """Query all 14 timers (``TQuery``) and return them once the answer is in.

        :raises DeviceTimeoutError: no answer within ``timeout`` seconds.
        """
        self._exchange("TQuery", Exchange({"TQuery": 0}), timeout, write=False)
        return self.timers

    def set(self, timeout: TimeoutArg = DEFAULT, **settings: Any) -> HeaterStatus:
        """Change settings by name (see ``codec.SETTINGS``) or firmware key, in one request.

        Each value is checked against the firmware's limits first. Blocks until the pushed
        state shows every value. Settings live in RAM until :meth:`save`. If this call times
        out, the device may still apply the write later; it is never retried automatically.

        :raises WriteNotAllowedError: the client was not opened with ``allow_writes=True``
            (nothing is sent).
        :raises ConfigurationError: unknown name or bad value (nothing is sent).
        :raises DeviceError: the controller ignored a value or reported another one.
        :raises DeviceTimeoutError: no confirmation within ``timeout`` seconds.
        """
        self._require_writes("set()")
        frame = codec.prepare_settings(settings, system_voltage=self.status.system_voltage_v)
        expect = {key: (codec.SETTINGS_BY_KEY[key].report_key, value)
                  for key, value in frame.items()}
        self._exchange(f"set {frame}", Exchange(frame, expect=expect), timeout)
        return self.status

    def run(self, on: bool, timeout: TimeoutArg = DEFAULT) -> HeaterStatus:
        """Start (``True``) or stop (``False``) the heater.

        Start blocks until the controller accepted the request and ``RunState`` left 0; stop
        blocks until the heater is stopping, cooling or stopped. If this call times out, the
        device may still apply the write later; it is never retried automatically.

        Starting needs ``allow_writes=True``. Stopping is always allowed, without
        ``allow_writes``: it makes the heater safe, and a program that may not change the
        heater must still be able to shut it down.

        :raises WriteNotAllowedError: ``on`` without ``allow_writes`` (nothing is sent).
        :raises ConfigurationError: ``on`` is not True/False (or 1/0).
        :raises DeviceError: the controller refused to start (its ``StartString`` reason, e.g.
            ``"Ambient too warm!"``).
        :raises DeviceTimeoutError: not confirmed within ``timeout`` seconds.
        """
        on = _flag("run", on)
        if on:
            self._require_writes("run(True)")
            settle = _run_state_is(lambda s: s.is_on)
        else:
            settle = _run_state_is(lambda s: not s.is_heating)
        self._exchange("start" if on else "stop",
                       Exchange({"Run": int(on)}, settle=settle, settle_keys={"Run"}), timeout,
                       safety_stop=not on)
        return self.status

    def start(self, timeout: TimeoutArg = DEFAULT) -> HeaterStatus:
        """Start the heater: :meth:`run` (``True``); needs ``allow_writes=True``. If this call
        times out, the device may still apply the write later; it is never retried
        automatically.

        :raises WriteNotAllowedError: without ``allow_writes`` (nothing is sent).
        """
        self._require_writes("start()")
        return self.run(True, timeout)

    def stop(self, timeout: TimeoutArg = DEFAULT) -> HeaterStatus:
        """Stop the heater: :meth:`run` (``False``). If this call times out, the device may
        still apply the write later; it is never retried automatically.

        Always allowed, without ``allow_writes``: stopping makes the heater safe, and a program
        that may not change the heater must still be able to shut it down.
        """
        return self.run(False, timeout)

    def set_desired_temperature(self, temperature_c: int,
                                timeout: TimeoutArg = DEFAULT) -> HeaterStatus:
        """Set point in whole °C, 8-35 (a demand index in fixed-Hz mode). If this call times
        out, the device may still apply the write later; it is never retried automatically.

        :raises ConfigurationError: outside 8..35 °C or not whole (nothing is sent).
        :raises UnsupportedFeatureError: an OEM controller on the bus owns the set point.
        :raises WriteNotAllowedError: without ``allow_writes=True`` (nothing is sent).
        """
        self._require_writes("set_desired_temperature()")
        self._refuse_with_oem("the set point")
        return self.set(timeout, desired_temperature=temperature_c)

    def set_demand_mode(self, mode: DemandMode, timeout: TimeoutArg = DEFAULT) -> HeaterStatus:
        """Thermostat (°C set point) or fixed pump rate (demand index). If this call times
        out, the device may still apply the write later; it is never retried automatically.

        :raises ConfigurationError: not a :class:`DemandMode` (0 or 1).
        :raises WriteNotAllowedError: without ``allow_writes=True`` (nothing is sent).
        """
        self._require_writes("set_demand_mode()")
        mode = _member(DemandMode, mode, "demand mode")
        self._refuse_with_oem("the demand mode")
        return self.set(timeout, demand_mode=int(mode))

    def set_thermostat(self, method: Optional[ThermostatMethod] = None, *,
                       window_c: Optional[float] = None,
                       timeout: TimeoutArg = DEFAULT) -> HeaterStatus:
        """Thermostat method (0-4) and/or window (0.2-10 °C). If this call times out, the
        device may still apply the write later; it is never retried automatically.

        :raises WriteNotAllowedError: without ``allow_writes=True`` (nothing is sent).
        """
        self._require_writes("set_thermostat()")
        settings: Dict[str, Any] = {}
        if method is not None:
            settings["thermostat_method"] = int(_member(ThermostatMethod, method,
                                                        "thermostat method"))
        if window_c is not None:
            settings["thermostat_window"] = window_c
        return self.set(timeout, **settings)

    def set_cyclic(self, off_c: int, on_c: Optional[int] = None,
                   timeout: TimeoutArg = DEFAULT) -> HeaterStatus:
        """Cyclic mode: stop at set point + ``off_c`` (0 disables, else 2-10), restart at set
        point + ``on_c`` (-20..0). If this call times out, the device may still apply the
        write later; it is never retried automatically.

        :raises WriteNotAllowedError: without ``allow_writes=True`` (nothing is sent).
        """
        self._require_writes("set_cyclic()")
        settings: Dict[str, Any] = {"cyclic_off": off_c}
        if on_c is not None:
            settings["cyclic_on"] = on_c
        return self.set(timeout, **settings)

    def set_frost(self, on_c: int, rise_c: Optional[int] = None,
                  timeout: TimeoutArg = DEFAULT) -> HeaterStatus:
        """Frost mode: start below ``on_c`` (0 = off, 0-30), stop at ``on_c + rise_c``
        (0-30). If this call times out, the device may still apply the write later; it is
        never retried automatically.

        :raises WriteNotAllowedError: without ``allow_writes=True`` (nothing is sent).
        """
        self._require_writes("set_frost()")
        settings: Dict[str, Any] = {"frost_on": on_c}
        if rise_c is not None:
            settings["frost_rise"] = rise_c
        return self.set(timeout, **settings)

    def set_humidity_start(self, percent: int, timeout: TimeoutArg = DEFAULT) -> HeaterStatus:
        """Start above this humidity (0 = off, else 50-100 %). If this call times out, the
        device may still apply the write later; it is never retried automatically.

        :raises WriteNotAllowedError: without ``allow_writes=True`` (nothing is sent).
        """
        self._require_writes("set_humidity_start()")
        return self.set(timeout, humidity_start=percent)

    def set_fan_limits(self, min_rpm: Optional[int] = None, max_rpm: Optional[int] = None,
                       timeout: TimeoutArg = DEFAULT) -> HeaterStatus:
        """Fan speed at lowest/highest power, 500-5000 RPM. If this
        call times out, the device may still apply the write later; it is never retried
        automatically.

        :raises WriteNotAllowedError: without ``allow_writes=True`` (nothing is sent).
        """
        self._require_writes("set_fan_limits()")
        return self.set(timeout, **_given(fan_min=min_rpm, fan_max=max_rpm))

    def set_pump_limits(self, min_hz: Optional[float] = None, max_hz: Optional[float] = None,
                        timeout: TimeoutArg = DEFAULT) -> HeaterStatus:
        """Pump rate at lowest (0.4-5.0 Hz) / highest (1.0-10.0 Hz) power. If this call times
        out, the device may still apply the write later; it is never retried automatically.

        :raises WriteNotAllowedError: without ``allow_writes=True`` (nothing is sent).
        """
        self._require_writes("set_pump_limits()")
        return self.set(timeout, **_given(pump_min=min_hz, pump_max=max_hz))

    def set_pump_calibration(self, ml_per_stroke: float,
                             timeout: TimeoutArg = DEFAULT) -> HeaterStatus:
        """Pump displacement per stroke, 0.001-1 mL. If this call
        times out, the device may still apply the write later; it is never retried
        automatically.

        :raises WriteNotAllowedError: without ``allow_writes=True`` (nothing is sent).
        """
        self._require_writes("set_pump_calibration()")
        return self.set(timeout, pump_cal=ml_per_stroke)

    def set_low_voltage_cutout(self, volts: float, timeout: TimeoutArg = DEFAULT) -> HeaterStatus:
        """Low-voltage shutdown: 0 (off) or 10.0-12.5 V (20.0-25.0 V on 24 V systems), 0.1 V
        steps. If this call times out, the device may still apply
        the write later; it is never retried automatically.

        :raises WriteNotAllowedError: without ``allow_writes=True`` (nothing is sent).
        """
        self._require_writes("set_low_voltage_cutout()")
        return self.set(timeout, low_volt_cutout=volts)

    def set_system_voltage(self, volts: int, timeout: TimeoutArg = DEFAULT) -> HeaterStatus:
        """The heater's nominal supply, 12 or 24 V. If this call times out, the device may
        still apply the write later; it is never retried automatically.

        :raises WriteNotAllowedError: without ``allow_writes=True`` (nothing is sent).
        """
        self._require_writes("set_system_voltage()")
        return self.set(timeout, system_voltage=volts)

    def reset_fuel_gauge(self, timeout: TimeoutArg = 15.0) -> HeaterStatus:
        """Zero the fuel gauge (``PumpCount`` 0). The firmware reports PumpCount at most every
        10 s, so this can take that long to confirm. If this call times out, the device may
        still apply the write later; it is never retried automatically.

        :raises WriteNotAllowedError: without ``allow_writes=True`` (nothing is sent).
        """
        self._require_writes("reset_fuel_gauge()")
        before = self.status.pump_count
        exchange = Exchange({"PumpCount": 0}, settle=lambda s: _pump_count_reset(s, before),
                            settle_keys={"PumpCount"})
        self._exchange("reset fuel gauge", exchange, timeout)
        return self.status

    def prime_pump(self, on: bool = True, timeout: TimeoutArg = DEFAULT) -> None:
        """Start or stop pump priming (only while the heater is stopped). If this call times
        out, the device may still apply the write later; it is never retried automatically.

        Starting it runs the fuel pump and needs ``allow_writes=True``. Stopping it
        (``prime_pump(False)``) is always allowed, without ``allow_writes``: it stops the fuel
        pump, which makes the heater safe.

        :raises WriteNotAllowedError: ``on`` without ``allow_writes`` (nothing is sent).
        :raises DeviceError: the heater is running.
        """
        on = _flag("prime_pump", on)
        if on:
            self._require_writes("prime_pump(True)")
        state = self.status.run_state
        if on and state is not None and state.is_on:
            raise DeviceError("pump priming is only offered while the heater is stopped "
                              f"(it is {state.name})", code="PumpPrime", device=self.family,
                              endpoint=self.endpoint)
        self._exchange("pump prime" if on else "stop pump priming",
                       Exchange({"PumpPrime": int(on)}), timeout, safety_stop=not on)

    def set_timer(self, timer: Timer, timeout: TimeoutArg = DEFAULT) -> Timer:
        """Program one timer (1-14). Blocks until the controller reports it back. If this call
        times out, the device may still apply the write later; it is never retried
        automatically.

        :raises ConfigurationError: bad id, times, days or temperature (nothing is sent).
        :raises WriteNotAllowedError: without ``allow_writes=True`` (nothing is sent).
        """
        self._require_writes("set_timer()")
        frame = codec.timer_commands(timer)

        def shown(session: AfterburnerSession) -> bool:
            now = session.timers[timer.id]
            return (now.days == frozenset(timer.days) and now.next_only == timer.next_only
                    and now.repeat == bool(timer.repeat)
                    and (timer.start is None or now.start == timer.start)
                    and (timer.stop is None or now.stop == timer.stop))

        exchange = Exchange(dict(frame, TQuery=timer.id), settle=shown)
        exchange.settle_keys = exchange.writes
        self._exchange(f"set timer {timer.id}", exchange, timeout)
        return self.timers[timer.id - 1]

    def set_datetime(self, value: Optional[_dt.datetime] = None,
                     timeout: TimeoutArg = DEFAULT) -> SystemInfo:
        """Set the controller's clock (local time; now by default; years 2000-2099, what its
        clock holds). If this call times out, the device may still apply the write later; it
        is never retried automatically.

        :raises WriteNotAllowedError: without ``allow_writes=True`` (nothing is sent).
        """
        self._require_writes("set_datetime()")
        value = _dt.datetime.now() if value is None else value
        if not isinstance(value, _dt.datetime):
            raise ConfigurationError(f"set_datetime expects a datetime, got {value!r}")
        check_range("year", value.year, 2000, 2099, integer=True)
        value = value.replace(microsecond=0, tzinfo=None)

        def shown(session: AfterburnerSession) -> bool:
            info = codec.build_system_info(session.system_keys)
            return info.datetime is not None and abs(
                (info.datetime - value).total_seconds()) <= 5

        self._exchange("set date/time",
                       Exchange({"DateTime": codec.format_datetime(value)}, settle=shown,
                                settle_keys={"DateTime"}), timeout)
        return self.system_info

    def save(self, timeout: TimeoutArg = DEFAULT) -> None:
        """Persist the RAM settings to flash (``NVsave``). Blocks until the controller has
        processed it (its next answer comes after the save). If this call times out, the
        device may still apply the write later; it is never retried automatically.

        :raises WriteNotAllowedError: without ``allow_writes=True`` (nothing is sent).
        """
        self._require_writes("save()")
        self._exchange("NVsave", Exchange({"NVsave": codec.NVSAVE_CODE}), timeout)

    def _refuse_with_oem(self, what: str) -> None:
        bluewire = self.status.bluewire
        if bluewire is not None and bluewire.oem_controller:
            raise UnsupportedFeatureError(
                f"an OEM controller is on the heater bus ({bluewire.text!r}); it owns {what}, "
                f"and the Afterburner refuses to change it", code="OEM", device=self.family,
                endpoint=self.endpoint)


def _given(**values: Any) -> Dict[str, Any]:
    chosen = {k: v for k, v in values.items() if v is not None}
    if not chosen:
        raise ConfigurationError(f"give at least one of {', '.join(values)}")
    return chosen


def _flag(name: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    raise ConfigurationError(f"{name} expects True/False (or 1/0), got {value!r}")


def _member(enum_class: Type[E], value: object, name: str) -> E:
    """``value`` as a known member of ``enum_class``, or ConfigurationError naming them."""
    known = {int(m): m for m in enum_class}
    if isinstance(value, int) and not isinstance(value, bool) and int(value) in known:
        return known[int(value)]
    choices = ", ".join(f"{int(m)} ({m.name})" for m in enum_class)
    raise ConfigurationError(f"{name} must be one of {choices}; got {value!r}")


def _run_state_is(test: Callable[[RunState], bool]) -> Callable[[AfterburnerSession], bool]:
    def settle(session: AfterburnerSession) -> bool:
        state = session.typed("RunState")
        return state is not None and test(state)
    return settle


def _pump_count_reset(session: AfterburnerSession, before: Optional[float]) -> bool:
    count = session.typed("PumpCount")
    if count is None:
        return False
    # Priming or running pumps count on, so "reset" means "dropped well below before".
    return count < 1.0 or (before is not None and count < before * 0.5)
