"""The BLE session: the one worker thread that owns a transport (and so every pygatt call).

Per link: start the adapter (a fresh gatttool process per attempt, so no state of a dead link
survives), connect, discover (cached per address), subscribe in the family's order (streams
last), then the family's initialisation, which calls :meth:`established` once the device has
answered. Link loss comes from the transport's disconnect callback or from the silence
watchdog; the base :class:`~pyburnerkit._core.session.Session` then reconnects with backoff and
this class replays the subscriptions and the initialisation.
"""

from __future__ import annotations

import collections
import itertools
import logging
import time
from typing import (Any, Callable, Deque, Dict, FrozenSet, List, Optional, Sequence, Tuple,
                    TypeVar)

from .._core.pending import Pending
from .._core.session import Session
from .._core.timeouts import Deadline
from ..errors import DeviceTimeoutError, ProtocolError, PyBurnerKitError
from ..types import ConnectionState
from .transport import LinkDown, Transport

log = logging.getLogger(__name__)

#: A request's payload: ``op(session, request)``; it resolves the request itself (now or later).
Op = Callable[["BleSession", Pending], Any]

_E = TypeVar("_E", bound=BaseException)

#: What the transport's threads hand over: (link generation, uuid, value, arrival number);
#: uuid None = link lost. Arrival numbers grow in the order the transport saw the values.
_Item = Tuple[int, Optional[str], Optional[bytes], int]


class BleSession(Session):
    """The I/O thread of a BLE client.

    Notifications reach it in batches. The transport's thread (pygatt's receiver, the
    simulator's) only appends to an inbox and, when no hand-over is pending, asks the loop to
    drain it: that is the only moment it writes a wake-up byte. After a drain that found
    values the hand-over stays pending until the next loop pass (``notify_batch_s`` later) drains
    again, so values arriving meanwhile cost the receiver no system call (each one released
    the GIL to our threads). A drain that finds nothing ends the batch: the next value is
    handed over at once. Link loss goes through the same inbox, so it is handled after the
    values that preceded it.

    ``notify_batch_s`` stays 0 by default: measured with pygatt (``benchmarks/de1.py``), a
    2 ms collecting window let pygatt's receiver fall behind, and pexpect, which searches its
    whole backlog for each line, then spent more per line than the window saved (at 1,200
    notifications/s: 1,035 delivered at 71% of a core, against all 1,200 at 25% without it).
    """

    subscribe_uuids: Sequence[str] = ()
    #: Characteristics whose value a read gives whole and current (state, not events): a
    #: notification of one that the transport received before a read of it returned is older
    #: than what the read gave, and is dropped when its turn comes (see :meth:`read`).
    read_supersedes: FrozenSet[str] = frozenset()
    #: Seconds between a drain that found values and the next drain (the most a value waits
    #: when it arrives that soon after a batch; after a quiet spell a value is handled at once).
    notify_batch_s = 0.0

    def __init__(self, *, transport: Transport, address: str, silence_timeout: Optional[float],
                 op_timeout: float, **common: Any) -> None:
        super().__init__(**common)
        self.transport = transport
        self.address = address
        self.silence_timeout = silence_timeout
        self.op_timeout = op_timeout
        self._generation = 0
        self._watchdog: Any = None
        self.handles: Dict[str, int] = {}
        self.released = False  # let go of the device on purpose (no reconnect until capture)
        self.protocol_errors = 0  # notifications that could not be handled (logged, dropped)
        self._held: List[Pending] = []  # requests that arrived while the link waits for its reset
        self._inbox: Deque[_Item] = collections.deque()  # appended by the transport's thread
        # True while a drain of the inbox is scheduled (a call or the batching timer): the
        # transport's thread then appends without waking the loop
        self._inbox_pending = False
        self._heard_at = 0.0  # time.monotonic() of the last notification (silence watchdog)
        self.notifications = 0  # values handed over to this session
        self.superseded = 0  # notifications dropped as older than a read (read_supersedes)
        self._arrivals = itertools.count(1)  # next() is atomic: any transport thread may call
        self._last_arrival = 0
        self._read_marks: Dict[str, int] = {}  # uuid -> last arrival when a read of it returned
        self.batches = 0  # drains that handled at least one value
        # errors the transport raises name this device, like every error of the client
        transport.device = self.family
        transport.endpoint = self.endpoint

    def _stamp(self, exc: _E) -> _E:
        """Fill in ``device``/``endpoint`` of one of our errors that lacks them."""
        if isinstance(exc, PyBurnerKitError):
            if exc.device is None:
                exc.device = self.family
            if exc.endpoint is None:
                exc.endpoint = self.endpoint
        return exc

    def link_failed(self, exc: BaseException) -> None:
        super().link_failed(self._stamp(exc))

    # ------------------------------------------------------------------ Session hooks
    def open_transport(self, deadline: Deadline) -> None:
        try:
            self._open_link(deadline)
        except PyBurnerKitError as exc:  # the attempt's error names the device
            raise self._stamp(exc)

    def _open_link(self, deadline: Deadline) -> None:
        self._generation += 1
        gen = self._generation
        t = self.transport
        t.on_value = lambda uuid, data: self._arrive(gen, uuid, data)
        t.on_lost = lambda: self._arrive(gen, None, None)
        left = deadline.remaining() or self.connect_timeout
        t.open(left)
        t.connect(self.address, timeout=max(0.5, deadline.remaining() or left))
        self.handles = t.discover()
        for uuid in self.subscribe_uuids:
            if uuid in self.handles:
                t.subscribe(uuid, timeout=self.op_timeout)
        self._kick_watchdog()
        self.begin_init()

    def close_transport(self) -> None:
        self._generation += 1  # late values from the old link are ignored
        if self._watchdog is not None:
            self._watchdog.cancel()
            self._watchdog = None
        self.transport.disconnect()
        self.transport.close()

    def abort_blocking(self) -> None:
        self.transport.abort()

    def start_request(self, request: Pending) -> None:
        if self.transport.out_of_step:  # the link is about to be reset: wait for the new one
            self._held.append(request)
            return
        self.run_op(request.payload, request)

    def take_unsent(self) -> List[Pending]:
        held, self._held = self._held, []
        return held

    # ------------------------------------------------------------------ release / capture
    def release(self) -> None:
        """Drop the link on purpose and stop reconnecting until :meth:`capture` (I/O thread).

        pyDE1 releases the scale while the DE1 sleeps (spec section 10), so the adapter is not
        kept busy with a scale that has powered itself off. Requests made meanwhile wait for
        the capture (or their timeout)."""
        if self.released or self._finished:
            return
        self.released = True
        if self._retry_timer is not None:
            self._retry_timer.cancel()
            self._retry_timer = None
        reason = LinkDown(f"{self.address} released", device=self.family, endpoint=self.endpoint)
        if self.state is ConnectionState.CONNECTED:
            self.link_failed(reason)
        elif self._connect_timer is not None:  # an initialisation under way
            self._attempt_failed(reason)

    def capture(self) -> None:
        """Undo :meth:`release`: connect again now (I/O thread)."""
        if not self.released or self._finished:
            return
        self.released = False
        if self.state is not ConnectionState.CONNECTED and self._retry_timer is None \
                and self._connect_timer is None:
            self._attempt = 0
            self._begin_attempt()

    def _schedule_retry(self, exc: BaseException) -> None:
        if self.released:  # no reconnect while released; capture() starts the next attempt
            self.last_error = exc
            self._set_state(ConnectionState.RECONNECTING, error=exc)
            return
        super()._schedule_retry(exc)

    # ------------------------------------------------------------------ family hooks
    def begin_init(self) -> None:
        """Read what the family needs; call :meth:`established` when done (I/O thread)."""
        self.established()

    def on_value(self, uuid: str, data: bytes) -> None:
        """A notification (I/O thread)."""

    # ------------------------------------------------------------------ helpers (I/O thread)
    def run_op(self, op: Op, request: Pending) -> None:
        """Run ``op``; a lost link triggers a reconnect, other errors fail the request."""
        try:
            op(self, request)
        except LinkDown as exc:
            request.fail(self._stamp(exc))
            self.link_failed(exc)
        except PyBurnerKitError as exc:
            request.fail(self._stamp(exc))

    def guard(self, fn: Callable[[], Any]) -> bool:
        """Run a step outside a request (timer, notification); turn a lost link into a retry."""
        try:
            fn()
            return True
        except LinkDown as exc:
            self.link_failed(exc)
        return False

    # ------------------------------------------------------------------ hand-over
    def _arrive(self, gen: int, uuid: Optional[str], data: Optional[bytes]) -> None:
        """The transport's thread: number a value (or the link loss) and queue it."""
        number = next(self._arrivals)
        self._last_arrival = number
        self._enqueue((gen, uuid, data, number))

    def _enqueue(self, item: _Item) -> None:
        """The transport's thread: queue a value (or the link loss) for the I/O thread.

        Never blocks and takes no lock of ours. Safe against lost wake-ups: the I/O thread
        lowers ``_inbox_pending`` before it looks at the inbox for the last time, so an item
        appended while the flag is still up is seen by that look, and the first item after
        it went down schedules a drain. Two threads racing on the flag schedule two drains,
        which costs an empty drain, never a lost item."""
        self._inbox.append(item)
        if not self._inbox_pending:
            self._inbox_pending = True
            self.loop.call_soon_threadsafe(self._drain)

    def _drain(self) -> None:
        """Handle every queued value in order (I/O thread)."""
        inbox = self._inbox
        if not inbox:
            self._inbox_pending = False
            if not inbox:
                return  # nothing arrived during the batching window: hand-overs are immediate
            self._inbox_pending = True  # one arrived as the flag went down: handle it now
        self.batches += 1
        heard = False
        for _ in range(len(inbox)):  # only what is here now; later values go to the next batch
            gen, uuid, data, arrival = inbox.popleft()
            if uuid is None:
                self._lost(gen)
            else:
                heard = True
                self._handle_value(gen, uuid, data, arrival)  # type: ignore[arg-type]
        if heard:
            self._heard()
        # keep the hand-over pending: what arrives within the window waits for this timer
        self.loop.call_later(self.notify_batch_s, self._drain)

    def _value(self, gen: int, uuid: str, data: bytes) -> None:
        """One notification, handled at once (I/O thread); see :meth:`_handle_value`."""
        if gen != self._generation:
            return
        self._handle_value(gen, uuid, data, next(self._arrivals))
        self._heard()

    def _handle_value(self, gen: int, uuid: str, data: bytes, arrival: int) -> None:
        """A notification (I/O thread). Whatever the peer sent, this never raises: an
        undecodable value, or one the family code cannot handle, becomes a
        :class:`ProtocolError` that is logged, counted (``protocol_errors``) and dropped; the
        link and everything in flight carry on."""
        if gen != self._generation:
            return
        self.notifications += 1
        self.wire.received((uuid[4:8], data))
        if arrival <= self._read_marks.get(uuid, 0):
            self.superseded += 1  # a read of it returned since: it would put an older value back
            return
        try:
            self.on_value(uuid, data)
        except LinkDown as exc:  # a write the handler made found the link gone
            self.link_failed(exc)
        except ProtocolError as exc:
            self._bad_value(self._stamp(exc), uuid)
        except Exception as exc:  # a value the handler did not expect: never kill the thread
            error = ProtocolError(f"notification {uuid[4:8]} could not be handled: "
                                  f"{type(exc).__name__}: {exc}", device=self.family,
                                  endpoint=self.endpoint)
            error.__cause__ = exc
            self._bad_value(error, uuid, exc_info=True)

    def _bad_value(self, error: ProtocolError, uuid: str, exc_info: bool = False) -> None:
        self.protocol_errors += 1
        error.frames = self.wire.recent()
        log.warning("%s %s: dropped a notification of %s (%d so far): %s", self.family,
                    self.endpoint, uuid[4:8], self.protocol_errors, error,
                    exc_info=error if exc_info else None)

    def _lost(self, gen: int) -> None:
        if gen != self._generation:
            return
        self.link_failed(LinkDown(f"the BLE link to {self.address} was lost",
                                  device=self.family, endpoint=self.endpoint))

    def _heard(self) -> None:
        """Notifications arrived: the link is alive (I/O thread)."""
        self._heard_at = time.monotonic()
        if self._watchdog is None:
            self._kick_watchdog()

    def _kick_watchdog(self) -> None:
        if self.silence_timeout is None:
            return
        if self._watchdog is not None:
            self._watchdog.cancel()
        self._heard_at = time.monotonic()
        gen = self._generation
        self._watchdog = self.loop.call_later(self.silence_timeout, self._silent, gen)

    def _silent(self, gen: int) -> None:
        # One timer per silence period, not one per notification: when it fires, it looks at
        # when the link was last heard and sleeps again for the rest of the period if needed.
        self._watchdog = None
        if gen != self._generation or self.silence_timeout is None:
            return
        quiet = time.monotonic() - self._heard_at
        if quiet < self.silence_timeout:
            self._watchdog = self.loop.call_later(self.silence_timeout - quiet, self._silent,
                                                  gen)
            return
        self.link_failed(LinkDown(
            f"no notification from {self.address} for {self.silence_timeout:g} s",
            device=self.family, endpoint=self.endpoint))

    def write(self, uuid: str, data: bytes, response: bool = True) -> None:
        self.wire.sent((uuid[4:8], data))
        try:
            self.transport.write(uuid, data, response, timeout=self.op_timeout)
        except DeviceTimeoutError:
            self._resync_if_out_of_step()
            raise

    def read(self, uuid: str) -> bytes:
        try:
            data = self.transport.read(uuid, timeout=self.op_timeout)
        except DeviceTimeoutError:
            self._resync_if_out_of_step()
            raise
        self.wire.received((uuid[4:8], data))
        if uuid in self.read_supersedes:
            # What the transport received before this answer is older than it (one stream,
            # in order); a value arriving just as we look may be counted with them, which
            # only drops a value the read already matched.
            self._read_marks[uuid] = self._last_arrival
        return data

    def _resync_if_out_of_step(self) -> None:
        """After an unanswered request whose answer may still come, reset the link once the
        current step has failed with its timeout (I/O thread). A late answer would otherwise
        be taken for the next request's (pygatt keeps no request ids): measured, a 2 s stall
        with a 1 s timeout made the next nine reads return their predecessor's value. The
        fresh link (a new gatttool) has no late answers in it; the recovery is a reconnect.
        Requests arriving meanwhile wait for the new link (they never reached the wire)."""
        if not self.transport.out_of_step:
            return
        gen = self._generation
        self.loop.call_soon_threadsafe(self._reset_out_of_step, gen)

    def _reset_out_of_step(self, gen: int) -> None:
        if gen != self._generation or self._finished:
            return
        self.link_failed(LinkDown(
            f"{self.address} left a request unanswered for {self.op_timeout:g} s; the link is "
            f"reset so that a late answer cannot be taken for another request",
            device=self.family, endpoint=self.endpoint))
