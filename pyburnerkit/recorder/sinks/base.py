"""The sink interface and the worker thread that feeds one sink through its spool.

Where a sample can be, in order: the worker's memory queue, the sink's spool file on disk, the
sink. The worker moves it along and never drops it silently:

* sink up: batches go straight from memory to the sink (through the spool first while the
  spool still holds older samples, so they keep their order);
* sink down: memory goes to the spool; the sink is reopened with backoff;
* spool unwritable too (disk full, read-only, I/O error): samples stay in memory, up to
  ``memory_limit`` per sink, and the spool is retried with backoff; the worker says so once
  (an ERROR log line, a :class:`~pyburnerkit.recorder.SpoolStateChanged` event,
  :attr:`SinkWorker.spool_error`) and again when the spool works again;
* sink up but spool unwritable: what the spool already holds is still read and delivered
  first (reading needs no space; only *writing* waits for the spool's retry time), then
  memory; a spool that cannot even record that a batch was delivered never hands it out
  again (see :mod:`~pyburnerkit.recorder.spool`), so a disk the spool filled itself never
  stops delivery;
* only past ``memory_limit``, or when neither the sink nor the spool can take them at
  shutdown, are samples lost: the oldest first, counted in :attr:`SinkWorker.dropped`, logged
  as ERROR with the word LOST (at most once per 10 s).
"""

from __future__ import annotations

import collections
import logging
import random
import threading
import time
from typing import Any, Callable, Deque, List, Optional, Sequence, Union

from ..._core.backoff import Reconnect
from ..._core.timeouts import Deadline
from ..samples import FieldMeta, Message, Sample
from ..secrets import redact_text
from ..spool import Spool, SpoolError, is_disk_full

log = logging.getLogger(__name__)

Item = Union[Sample, Message]


class Sink:
    """Base class of every sink. All methods run on the sink's own worker thread.

    ``open()`` connects (raise on failure: the worker retries with backoff), ``write(items)``
    stores a batch or raises (the batch then goes to the spool and is written again later, so
    writes must be idempotent by ``Sample.uid`` or tolerate duplicates), ``close()`` releases
    everything and must not raise.
    """

    #: a short name used in thread names, events and the spool file name
    name = "sink"
    #: True for sinks that store Message items (MQTT); others never receive them
    wants_messages = False

    def open(self) -> None:
        raise NotImplementedError

    def write(self, items: Sequence[Item]) -> None:
        raise NotImplementedError

    def close(self) -> None:
        pass

    def identity(self) -> str:
        """Where this sink writes (no secrets): names its spool file."""
        return f"{type(self).__name__}:{self.name}"

    def maintain(self) -> None:
        """Housekeeping on the worker thread after the sink asked for it via ``self.wake()``."""

    def describe(self, family: str, device: str, channel: str, field: str,
                 meta: FieldMeta) -> None:
        """A field was seen for the first time (MQTT uses it for discovery). Any thread."""

    def report(self) -> str:
        """What this sink did beyond the samples it wrote, as the far end confirmed it (MQTT:
        the Home Assistant entities the broker acknowledged), or ``""``. Any thread; never
        blocks. Final reports print it after the sink's real state, so it must never claim
        what the far end did not confirm."""
        return ""

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name}>"


_OUTAGE_WORDS = ("disk i/o error", "readonly database", "read-only", "unable to open",
                 "connection", "timeout", "timed out", "server closed", "terminating")


def is_outage(exc: BaseException) -> bool:
    """Whether a failed write means the sink (or its disk) is down, not that a sample is bad:
    such a failure never gets a sample rejected, however often it repeats."""
    if is_disk_full(exc) or isinstance(exc, (OSError, ConnectionError, TimeoutError)):
        return True
    text = str(exc).lower()
    return any(word in text for word in _OUTAGE_WORDS)


def is_refusal(exc: BaseException) -> bool:
    """Whether the far end actively said no (a closed port, a broker or server that refused
    the connection or the credentials), as opposed to a time-out or a local problem."""
    if isinstance(exc, ConnectionRefusedError):
        return True
    return "refused" in str(exc).lower()


def describe_error(exc: Optional[BaseException]) -> Optional[str]:
    """``exc`` as one report line: its type and its message with secrets redacted."""
    if exc is None:
        return None
    text = redact_text(str(exc))
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class SinkWorker:
    """Feeds one sink from a memory queue, spilling to the on-disk spool while it is down.

    :meth:`put` never blocks. See the module docs for where samples go when the sink, the
    spool or both are down, and when (only) they are lost.

    :param memory_limit: items held in memory per sink while neither the sink nor the spool
        can take them; beyond it the oldest are dropped (counted, logged).
    :param reconnect: backoff between attempts to reopen the sink, and between attempts to
        write a spool that failed.
    :param on_health: ``(sink name, healthy, error)`` when the sink goes down or comes back.
    :param on_spool: ``(sink name, writable, error, items in memory)`` when the spool fails or
        works again.
    :param on_progress: called before each step (the recorder wakes its waiters).
    All callbacks run on the worker thread and must not block.
    """

    #: at most one "LOST" log line per this many seconds (the count covers the interval)
    loss_log_interval = 10.0
    #: the most items moved from memory to the spool in one transaction
    spill_chunk = 20_000

    def __init__(self, sink: Sink, spool: Spool, *, batch_size: int = 2000,
                 memory_limit: int = 200_000,
                 reconnect: Reconnect = Reconnect(min_delay=0.2, max_delay=10.0),
                 on_health: Optional[Callable[[str, bool, Optional[BaseException]], Any]] = None,
                 on_progress: Optional[Callable[[], Any]] = None,
                 on_spool: Optional[Callable[[str, bool, Optional[BaseException], int], Any]]
                 = None) -> None:
        self.sink = sink
        self.spool = spool
        self.batch_size = batch_size
        self.memory_limit = memory_limit
        self.reconnect = reconnect
        self.on_health = on_health
        self.on_progress = on_progress
        self.on_spool = on_spool
        self.healthy = False
        self.last_error: Optional[BaseException] = None
        #: the sink's open() succeeded this many times (0: it never connected)
        self.connections = 0
        self.written = 0
        self.failures = 0
        #: items lost from memory (over memory_limit, or with nowhere to go at shutdown)
        self.dropped = 0
        #: samples the sink refused as bad data (dropped after repeated failures)
        self.rejected = 0
        #: why the spool cannot be written right now (None while it works)
        self.spool_error: Optional[str] = spool.error
        #: a spool head batch that failed this many times is written item by item
        self.max_batch_failures = 3
        self._head_failures = 0
        self._queue: Deque[Item] = collections.deque()
        self._cond = threading.Condition()
        self._stop = False
        self._finished = False
        self._flush_deadline: Optional[Deadline] = None
        self._attempt = 0
        self._retry_at = 0.0
        self._spool_attempt = 0
        self._spool_retry_at = 0.0
        self._spool_reported = False
        #: the last spool *read* failed: reading waits for the spool's retry time too
        self._spool_read_failed = False
        self._unlogged_losses = 0
        self._next_loss_log = 0.0
        self._rng = random.Random()
        self._nudged = False
        if hasattr(sink, "wake"):
            sink.wake = self.nudge
        self.thread = threading.Thread(target=self._run, daemon=True,
                                       name=f"pyburnerkit-recorder-sink-{sink.name}")

    # -- any thread -------------------------------------------------------------------------
    def start(self) -> None:
        self.thread.start()

    def put(self, items: Sequence[Item]) -> None:
        """Queue ``items`` for the sink (never blocks; the oldest are dropped, counted and
        logged if the memory queue is over its limit)."""
        if not items:
            return
        with self._cond:
            if self._finished:  # the worker is gone: nothing will ever take them
                self._lose(len(items), "the recorder is closing")
                return
            self._queue.extend(items)
            self._enforce_memory_limit()
            self._cond.notify()

    def _enforce_memory_limit(self) -> None:
        """Drop the oldest items over the limit (caller holds ``_cond``)."""
        over = len(self._queue) - self.memory_limit
        if over > 0:
            for _ in range(over):
                self._queue.popleft()
            if self.spool_error is not None:
                why = f"its spool cannot be written ({self.spool_error})"
            elif not self.healthy:
                why = "the worker cannot spool them as fast as they come"
            else:
                why = "the sink cannot keep up"
            self._lose(over, f"the memory queue is full ({self.memory_limit} items): {why}")

    def _lose(self, count: int, why: str) -> None:
        """Count lost items and say so (at most one line per interval)."""
        self.dropped += count
        self._unlogged_losses += count
        now = time.monotonic()
        if now >= self._next_loss_log:
            log.error("sink %s: %d samples LOST (%d so far): %s", self.sink.name,
                      self._unlogged_losses, self.dropped, why)
            self._unlogged_losses = 0
            self._next_loss_log = now + self.loss_log_interval

    def nudge(self) -> None:
        """Wake the worker to run ``sink.maintain()`` (safe from any thread)."""
        with self._cond:
            self._nudged = True
            self._cond.notify()

    @property
    def queued(self) -> int:
        return len(self._queue)

    @property
    def spooled(self) -> int:
        return len(self.spool)

    @property
    def state(self) -> str:
        """The sink's real state, for reports: ``"connected"`` (open now, or until the
        recorder closed it), ``"down"`` (it was connected, then failed), ``"refused"`` (never
        connected: the far end refused every attempt), ``"unreachable"`` (never connected,
        any other failure) or ``"not opened"`` (no attempt yet)."""
        if self.healthy:
            return "connected"
        if self.connections:
            return "down"
        if self.last_error is None:
            return "not opened"
        return "refused" if is_refusal(self.last_error) else "unreachable"

    def stop(self, deadline: Deadline) -> None:
        """Ask the worker to flush (to the sink, or else to the spool) and exit by ``deadline``."""
        with self._cond:
            self._stop = True
            self._flush_deadline = deadline
            self._cond.notify()

    def join(self, deadline: Deadline) -> bool:
        if self.thread.ident is None or self.thread is threading.current_thread():
            return True
        self.thread.join(deadline.remaining())
        return not self.thread.is_alive()

    # -- worker thread: health --------------------------------------------------------------
    def _set_health(self, healthy: bool, error: Optional[BaseException]) -> None:
        changed = healthy != self.healthy
        self.healthy = healthy
        self.last_error = error
        if changed or error is not None:
            if healthy:
                log.info("sink %s is up", self.sink.name)
            else:
                # str(): a log record must not keep the exception (and its frames) alive
                log.warning("sink %s is down (%s); samples go to %s", self.sink.name,
                            redact_text(str(error)),
                            "the spool" if self.spool_error is None else
                            "memory (the spool cannot be written either)")
            self._call(self.on_health, self.sink.name, healthy, error)

    def _call(self, callback: Optional[Callable[..., Any]], *args: Any) -> None:
        if callback is None:
            return
        try:
            callback(*args)
        except Exception:  # a reporting hook must never stop the worker
            log.exception("sink %s: a status callback failed", self.sink.name)

    def _try_open(self) -> None:
        try:
            self.sink.open()
        except Exception as exc:  # any failure to open: retry later
            self._failed(exc)
            return
        self._attempt = 0
        self.connections += 1
        self._set_health(True, None)

    def _failed(self, exc: BaseException) -> None:
        self.failures += 1
        try:
            self.sink.close()
        except Exception:
            log.debug("sink %s: close failed", self.sink.name, exc_info=True)
        delay = self.reconnect.delay(self._attempt, self._rng)
        self._attempt += 1
        self._retry_at = time.monotonic() + delay
        self._set_health(False, exc)

    # -- worker thread: the spool -----------------------------------------------------------
    def _spool_usable(self, now: Optional[float] = None) -> bool:
        """The spool works, or it failed and its retry time has come."""
        if self.spool_error is None:
            return True
        return (time.monotonic() if now is None else now) >= self._spool_retry_at

    def _spool_readable(self, now: Optional[float] = None) -> bool:
        """Whether to read the spool now. A spool that cannot be *written* (disk full) can
        still be read: its backlog is delivered without waiting for the write retry time."""
        return not self._spool_read_failed or self._spool_usable(now)

    def _spool_failed(self, exc: SpoolError) -> None:
        self.spool_error = str(exc)
        delay = self.reconnect.delay(self._spool_attempt, self._rng)
        self._spool_attempt += 1
        self._spool_retry_at = time.monotonic() + delay
        if not self._spool_reported:
            self._spool_reported = True
            log.error("sink %s: its spool cannot be written (%s); %d samples are kept in "
                      "memory, NOT on disk (at most %d; past that the oldest are LOST); "
                      "retrying", self.sink.name, exc, len(self._queue), self.memory_limit)
            self._call(self.on_spool, self.sink.name, False, exc, len(self._queue))

    def _spool_worked(self) -> None:
        if self.spool_error is None:
            return
        self.spool_error = None
        self._spool_attempt = 0
        if self._spool_reported:
            self._spool_reported = False
            log.warning("sink %s: its spool can be written again", self.sink.name)
            self._call(self.on_spool, self.sink.name, True, None, len(self._queue))

    def _probe_spool(self) -> None:
        try:
            self.spool.probe()
        except SpoolError as exc:
            self._spool_failed(exc)
            return
        self._spool_worked()

    def _take(self, limit: int) -> List[Item]:
        with self._cond:
            n = min(limit, len(self._queue))
            return [self._queue.popleft() for _ in range(n)]

    def _give_back(self, items: List[Item]) -> None:
        """Put items that could not be placed back at the front, in order."""
        if not items:
            return
        with self._cond:
            self._queue.extendleft(reversed(items))
            self._enforce_memory_limit()

    def _spill(self, *, final: bool = False) -> bool:
        """Move the memory queue into the spool (``final``: ignore the retry timer, once).

        :returns: False when the spool could not take them (they stay in memory).
        """
        if not self._queue:
            return True
        if not final and not self._spool_usable():
            return False
        while self._queue:
            chunk = self._take(self.spill_chunk)
            try:
                self.spool.put(chunk)
            except SpoolError as exc:
                self._give_back(chunk)
                self._spool_failed(exc)
                return False
            self._spool_worked()
        return True

    # -- worker thread: writing -------------------------------------------------------------
    def _write(self, items: List[Item]) -> bool:
        try:
            self.sink.write(items)
        except Exception as exc:
            self._failed(exc)
            return False
        self.written += sum(1 for i in items if isinstance(i, Sample))
        return True

    def _write_one_by_one(self, items: List[Item]) -> bool:
        """The same batch failed again and again although the sink reopens fine: some item is
        refused by the sink itself (bad data). Write the items singly; an item that fails twice
        while the sink reopens fine is dropped and counted in :attr:`rejected`.

        :returns: False when the sink itself went down meanwhile (nothing is dropped then).
        """
        for item in items:
            for attempt in (1, 2):
                try:
                    self.sink.write([item])
                except Exception as exc:
                    if is_outage(exc):  # a full disk, a lost server: nobody's fault
                        self._failed(exc)
                        return False
                    try:  # the failed write may have left the connection unusable
                        self.sink.close()
                    except Exception:  # a sink that cannot even close cleanly: reopen anyway
                        log.debug("sink %s: close failed", self.sink.name, exc_info=True)
                    try:
                        self.sink.open()
                    except Exception as again:  # an outage, not bad data
                        self._failed(again)
                        return False
                    if attempt == 2:
                        self.rejected += 1
                        log.error("sink %s refuses a sample; dropped it (%d so far): %r: %s",
                                  self.sink.name, self.rejected, item,
                                  redact_text(str(exc)))
                else:
                    if isinstance(item, Sample):
                        self.written += 1
                    break
        return True

    def _write_spool_head(self) -> None:
        """Write the oldest spooled batch to the sink and remove it from the spool."""
        try:
            last, items = self.spool.peek(self.batch_size)
        except SpoolError as exc:
            self._spool_read_failed = True
            self._spool_failed(exc)
            return
        self._spool_read_failed = False
        if not items:
            return
        if self._head_failures >= self.max_batch_failures:
            # find and drop what the sink refuses, keep the rest
            done = self._write_one_by_one(items)
        else:
            done = self._write(items)
        if not done:
            if self.last_error is None or not is_outage(self.last_error):
                self._head_failures += 1  # may be bad data: count towards item-by-item
            return
        self._head_failures = 0
        try:
            self.spool.ack(last)
        except SpoolError as exc:
            # written, and never handed out again by this spool even when the file could not
            # record it (disk full): the next batch follows at once. Reported as a spool that
            # cannot be written, which it is.
            self._spool_failed(exc)
            return
        self._spool_worked()

    def _step(self) -> None:
        """One move: towards the sink when it is up, else towards the spool."""
        if self.spool_error is not None and self._spool_usable() and not self._queue:
            self._probe_spool()  # nothing to spool: still find out whether it works again
        if self.healthy and len(self.spool) and self._spool_readable():
            # older samples wait in the spool: newer ones queue up behind them there, or, while
            # the spool cannot take them, wait in memory until the spool's backlog is delivered.
            # The backlog is delivered either way: waiting for the spool to be writable first
            # wedged delivery when the spool's own data had filled the disk.
            self._spill()
            self._write_spool_head()
            return
        if self.healthy and self._queue:
            batch = self._take(self.batch_size)
            if not self._write(batch):
                self._give_back(batch)  # spilled to the spool on the next step
            return
        if not self.healthy:
            self._spill()
            if time.monotonic() >= self._retry_at and not self._stop:
                self._try_open()

    def _wait_for_work(self) -> bool:
        """Block until there is something to do; returns whether the sink asked for
        maintenance. Never spins: with nothing possible until a retry time, it sleeps until
        then (or until new items, a nudge or stop)."""
        with self._cond:
            while True:
                if self._stop or self._nudged:
                    break
                now = time.monotonic()
                spool_ok = self._spool_usable(now)
                wake_at = []
                if self.healthy:
                    if self._queue or (len(self.spool) and self._spool_readable(now)):
                        break
                else:
                    if self._queue and spool_ok:
                        break
                    if now >= self._retry_at:
                        break
                    wake_at.append(self._retry_at)
                if self.spool_error is not None:
                    if spool_ok:
                        break  # time to try the spool again (a probe if nothing to spool)
                    wake_at.append(self._spool_retry_at)
                self._cond.wait(min(wake_at) - now if wake_at else None)
            nudged, self._nudged = self._nudged, False
            return nudged

    def _finish_now(self) -> bool:
        """While stopping: whether to stop working (everything placed, or no way to place
        more before the deadline)."""
        late = self._flush_deadline is not None and self._flush_deadline.expired()
        if late:
            return True
        if not self.healthy:
            if time.monotonic() >= self._retry_at:
                self._try_open()  # one more chance to deliver instead of spooling
                return not self.healthy
            return True
        spool_pending = len(self.spool) > 0 and self._spool_readable()
        return not self._queue and not spool_pending

    def _shutdown_spill(self) -> None:
        """Whatever is still in memory goes to the spool; if it cannot, it is lost (said)."""
        self._spill(final=True)
        with self._cond:
            self._finished = True
            rest = len(self._queue)
            self._queue.clear()
            if rest:
                self._next_loss_log = 0.0  # a loss at shutdown is always logged
                self._lose(rest, f"neither the sink nor its spool could take them before the "
                                 f"recorder closed ({self.spool_error or self.last_error})")

    def _pause(self, seconds: float) -> None:
        with self._cond:
            if not self._stop:
                self._cond.wait(seconds)

    def _run(self) -> None:
        crashes = 0
        try:
            if self.spool.error is not None:  # the spool could not even be opened (disk full)
                self._spool_failed(SpoolError(self.spool.error, full=True))
            self._try_open()
            while True:
                try:
                    if self.on_progress is not None:
                        self.on_progress()
                    nudged = self._wait_for_work()
                    stopping = self._stop
                    if nudged and self.healthy:
                        try:
                            self.sink.maintain()
                        except Exception as exc:
                            self._failed(exc)
                    self._step()
                    if stopping and self._finish_now():
                        break
                    crashes = 0
                except Exception as exc:  # a bug must not end recording: report, back off
                    log.exception("sink %s: unexpected error in its worker; it carries on",
                                  self.sink.name)
                    self._failed(exc)
                    if self._stop:
                        break
                    crashes += 1
                    self._pause(self.reconnect.delay(crashes, self._rng))
        finally:
            try:
                self._shutdown_spill()
            except Exception:
                log.exception("sink %s: final spool write failed", self.sink.name)
            try:
                self.sink.close()
            except Exception:
                log.debug("sink %s: close failed", self.sink.name, exc_info=True)
            self.spool.close()
