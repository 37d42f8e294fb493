"""The sink interface and the worker thread that feeds one sink through its spool."""

from __future__ import annotations

import collections
import logging
import random
import threading
import time
from typing import Any, Callable, Deque, List, Optional, Sequence, Tuple, Union

from ..._core.backoff import Reconnect
from ..._core.timeouts import Deadline
from ..samples import FieldMeta, Message, Sample
from ..spool import Spool

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

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name}>"


class SinkWorker:
    """Feeds one sink from a memory queue, spilling to the on-disk spool while it is down.

    :meth:`put` never blocks: when even the memory queue overflows (``memory_limit`` items, only
    while the worker cannot keep up moving items to the spool) the oldest are dropped and counted.
    """

    def __init__(self, sink: Sink, spool: Spool, *, batch_size: int = 2000,
                 memory_limit: int = 200_000,
                 reconnect: Reconnect = Reconnect(min_delay=0.2, max_delay=10.0),
                 on_health: Optional[Callable[[str, bool, Optional[BaseException]], Any]] = None,
                 on_progress: Optional[Callable[[], Any]] = None) -> None:
        self.sink = sink
        self.spool = spool
        self.batch_size = batch_size
        self.memory_limit = memory_limit
        self.reconnect = reconnect
        self.on_health = on_health
        self.on_progress = on_progress
        self.healthy = False
        self.last_error: Optional[BaseException] = None
        self.written = 0
        self.failures = 0
        self.dropped = 0
        #: samples the sink refused as bad data (dropped after repeated failures)
        self.rejected = 0
        #: a spool head batch that failed this many times is written item by item
        self.max_batch_failures = 3
        self._head_failures = 0
        self._queue: Deque[Item] = collections.deque()
        self._cond = threading.Condition()
        self._stop = False
        self._flush_deadline: Optional[Deadline] = None
        self._attempt = 0
        self._retry_at = 0.0
        self._rng = random.Random()
        self._nudged = False
        if hasattr(sink, "wake"):
            sink.wake = self.nudge  # type: ignore[attr-defined]
        self.thread = threading.Thread(target=self._run, daemon=True,
                                       name=f"pyburnerkit-recorder-sink-{sink.name}")

    # -- any thread -------------------------------------------------------------------------
    def start(self) -> None:
        self.thread.start()

    def put(self, items: Sequence[Item]) -> None:
        if not items:
            return
        with self._cond:
            if self._stop:
                return
            self._queue.extend(items)
            over = len(self._queue) - self.memory_limit
            if over > 0:
                for _ in range(over):
                    self._queue.popleft()
                if self.dropped == 0:
                    log.warning("sink %s: memory queue overflow, dropping the oldest samples",
                                self.sink.name)
                self.dropped += over
            self._cond.notify()

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

    # -- worker thread ------------------------------------------------------------------------
    def _set_health(self, healthy: bool, error: Optional[BaseException]) -> None:
        changed = healthy != self.healthy
        self.healthy = healthy
        self.last_error = error
        if changed or error is not None:
            if healthy:
                log.info("sink %s is up", self.sink.name)
            else:
                # str(): a log record must not keep the exception (and its frames) alive
                log.warning("sink %s is down (%s); samples go to the spool", self.sink.name,
                            str(error))
            if self.on_health is not None:
                self.on_health(self.sink.name, healthy, error)

    def _try_open(self) -> None:
        try:
            self.sink.open()
        except Exception as exc:  # any failure to open: retry later
            self._failed(exc)
            return
        self._attempt = 0
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
                    try:  # the failed write may have left the connection unusable
                        self.sink.close()
                        self.sink.open()
                    except Exception as again:  # an outage, not bad data
                        self._failed(again)
                        return False
                    if attempt == 2:
                        self.rejected += 1
                        log.error("sink %s refuses a sample; dropped it (%d so far): %r: %s",
                                  self.sink.name, self.rejected, item, exc)
                else:
                    if isinstance(item, Sample):
                        self.written += 1
                    break
        return True

    def _wait_for_work(self) -> Tuple[List[Item], bool]:
        """Block until there is something to do; returns the items taken from the memory queue
        and whether the sink asked for maintenance."""
        with self._cond:
            while True:
                if self._stop or self._queue or self._nudged:
                    break
                if self.healthy:
                    if len(self.spool):
                        break
                    self._cond.wait()
                else:
                    left = self._retry_at - time.monotonic()
                    if left <= 0:
                        break
                    self._cond.wait(left)
            if self.healthy and not len(self.spool):
                n = min(self.batch_size, len(self._queue))
            else:
                n = len(self._queue)
            nudged, self._nudged = self._nudged, False
            return [self._queue.popleft() for _ in range(n)], nudged

    def _run(self) -> None:
        try:
            self._try_open()
            while True:
                if self.on_progress is not None:
                    self.on_progress()
                batch, nudged = self._wait_for_work()
                stopping = self._stop
                if nudged:
                    if self.healthy:
                        try:
                            self.sink.maintain()
                        except Exception as exc:
                            self._failed(exc)
                if not self.healthy:
                    self.spool.put(batch)
                    if stopping:
                        if self._flush_deadline is not None and not self._flush_deadline.expired() \
                                and time.monotonic() >= self._retry_at:
                            self._try_open()
                            if self.healthy:
                                continue
                        break
                    if time.monotonic() >= self._retry_at:
                        self._try_open()
                    continue
                if len(self.spool):
                    self.spool.put(batch)
                    last, items = self.spool.peek(self.batch_size)
                    if self._head_failures >= self.max_batch_failures:
                        # find and drop what the sink refuses, keep the rest
                        if self._write_one_by_one(items):
                            self.spool.ack(last)
                            self._head_failures = 0
                    elif self._write(items):
                        self.spool.ack(last)
                        self._head_failures = 0
                    else:
                        self._head_failures += 1
                elif batch:
                    if not self._write(batch):
                        self.spool.put(batch)
                if stopping:
                    done = not self._queue and not len(self.spool)
                    late = self._flush_deadline is not None and self._flush_deadline.expired()
                    if done or late:
                        with self._cond:
                            rest = list(self._queue)
                            self._queue.clear()
                        self.spool.put(rest)
                        break
        except Exception as exc:  # e.g. the spool's disk is full: say so, do not just vanish
            log.exception("sink %s: worker failed; remaining samples are in the spool",
                          self.sink.name)
            try:
                self._set_health(False, exc)  # an error always makes an event
            except Exception:
                log.debug("sink %s: health callback failed", self.sink.name, exc_info=True)
            with self._cond:
                rest = list(self._queue)
                self._queue.clear()
            try:
                self.spool.put(rest)
            except Exception:
                log.exception("sink %s: could not spool %d samples", self.sink.name, len(rest))
        finally:
            try:
                self.sink.close()
            except Exception:
                log.debug("sink %s: close failed", self.sink.name, exc_info=True)
            self.spool.close()
