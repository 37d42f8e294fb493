"""The Recorder: sources in, normalised samples out to every sink, nothing lost.

Threads (all named, all stopped and joined by :meth:`Recorder.close`):

* ``pyburnerkit-recorder-events``: runs your callbacks (progress, sink health, device state,
  alerts, samples), one at a time, never under a recorder lock;
* ``pyburnerkit-recorder-sink-<name>``: one per sink, writes batches, spools while the sink is
  down, holds samples in memory while the spool cannot be written (disk full), retries both
  with backoff;
* ``pyburnerkit-recorder-poll-<device>``: one per poll source, sleeps on the stop event between
  polls (no busy loop);
* ``pyburnerkit-recorder-timer``: progress events and silence alerts, on timers;
* ``pyburnerkit-recorder-commands``: runs the commands a sink (Home Assistant over MQTT) asks
  for, one at a time (started by the first command; see :mod:`pyburnerkit.recorder.commands`);
* push sources deliver on their client's own events thread; handing samples to the sinks
  never blocks it.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import warnings
from dataclasses import dataclass, replace
from typing import (Any, Callable, Dict, Iterable, Iterator, List, Mapping, Optional, Set,
                    Tuple, Type)

from .._core.backoff import Reconnect
from .._core.dispatcher import Dispatcher, Subscription
from .._core.timeouts import Deadline
from ..errors import ClientClosedError, ConfigurationError, DeviceTimeoutError
from ..types import Event
from .alerts import AlertEngine, AlertRule
from .commands import Commands
from .samples import FieldMeta, Message, Sample, SampleFactory, slug
from .sinks.base import Sink, SinkWorker, describe_error
from .sinks.sqlite import SQLiteSink
from .sources import Reading, Source, adapt
from .spool import Spool

log = logging.getLogger(__name__)

__all__ = ["Recorder", "SamplesReceived", "SinkHealthChanged", "SpoolStateChanged",
           "DeviceStateChanged", "RecorderProgress", "RecorderStatus", "SinkStats",
           "default_spool_dir"]


# ------------------------------------------------------------------------------------ events
@dataclass(frozen=True)
class SamplesReceived(Event):
    """Samples that reached the recorder (already handed to every sink)."""

    samples: Tuple[Sample, ...]


@dataclass(frozen=True)
class SinkHealthChanged(Event):
    """A sink went down (``error`` says why; samples now go to its spool) or came back."""

    sink: str
    healthy: bool
    error: Optional[BaseException] = None


@dataclass(frozen=True)
class SpoolStateChanged(Event):
    """A sink's spool could not be written (``writable`` False: disk full, read-only...;
    samples are held in memory, ``in_memory`` of them now, up to ``memory_max``) or works
    again (``writable`` True; what was held in memory goes to the spool or the sink)."""

    sink: str
    writable: bool
    error: Optional[BaseException] = None
    in_memory: int = 0


@dataclass(frozen=True)
class DeviceStateChanged(Event):
    """A source's connection changed (``connected``, ``reconnecting``, ``closed``...)."""

    family: str
    device: str
    state: str
    error: Optional[BaseException] = None


@dataclass(frozen=True)
class SinkStats:
    """One sink's figures: ``written`` samples, ``queued`` items in memory, ``spooled`` items
    on disk, ``dropped`` items lost (memory over its limit, a full spool, nowhere to go at
    close), ``rejected`` samples the sink refused as bad data, ``spool_error`` why the spool
    cannot be written right now (None while it works)."""

    name: str
    healthy: bool
    written: int
    rate: float
    queued: int
    spooled: int
    dropped: int
    failures: int
    rejected: int = 0
    spool_error: Optional[str] = None
    #: the sink's real state: ``connected`` (open now, or until the recorder closed it),
    #: ``down`` (it was connected, then failed), ``refused`` (never connected: the far end
    #: refused every attempt), ``unreachable`` (never connected, any other failure) or
    #: ``not opened`` (no attempt yet)
    state: str = ""
    #: the last failure of the sink (type and redacted message), or None
    error: Optional[str] = None
    #: how often the sink connected (0: never)
    connections: int = 0
    #: where (no secrets) the sink writes, e.g. ``mqtt:localhost:1883/pyburnerkit``
    target: str = ""
    #: the spool file holding what the sink has not taken yet
    spool_path: str = ""
    #: what the sink itself confirms beyond samples (:meth:`Sink.report`), or ""
    detail: str = ""

    @property
    def lost(self) -> int:
        """Items that will never reach this sink (dropped + rejected)."""
        return self.dropped + self.rejected

    def describe(self) -> str:
        """One honest line: the sink's real state, what it wrote, what waits in its spool
        (and where), what was lost, and what the sink itself confirmed."""
        where = f" ({self.target})" if self.target else ""
        if self.state == "connected":
            state = "connected"
        elif self.state == "down":
            state = f"DOWN after {self.connections} connection(s)" + (
                f": {self.error}" if self.error else "")
        elif self.state in ("refused", "unreachable"):
            verb = "REFUSED" if self.state == "refused" else "UNREACHABLE"
            state = (f"NEVER CONNECTED, {verb} {self.failures} time(s)"
                     + (f": {self.error}" if self.error else ""))
        else:
            state = self.state or ("connected" if self.healthy else "down")
        parts = [f"{self.written} written"]
        if self.spooled:
            parts.append(f"{self.spooled} spooled for next run in {self.spool_path}"
                         if self.spool_path else f"{self.spooled} spooled for next run")
        if self.queued:
            parts.append(f"{self.queued} still in memory")
        if self.dropped:
            parts.append(f"{self.dropped} DROPPED")
        if self.rejected:
            parts.append(f"{self.rejected} REFUSED by the sink as bad data")
        if self.spool_error:
            parts.append(f"spool NOT WRITABLE: {self.spool_error}")
        if self.detail:
            parts.append(self.detail)
        return f"sink {self.name}{where}: {state}; {'; '.join(parts)}"


@dataclass(frozen=True)
class RecorderStatus:
    """Everything :meth:`Recorder.status` knows: is any sample lost, and where the rest are."""

    state: str
    received: int
    sinks: Tuple[SinkStats, ...]

    @property
    def lost(self) -> int:
        """Items lost over all sinks (0 while nothing was)."""
        return sum(s.lost for s in self.sinks)

    @property
    def ok(self) -> bool:
        """Nothing lost, and every spool can be written."""
        return self.lost == 0 and all(s.spool_error is None for s in self.sinks)

    def sink(self, name: str) -> SinkStats:
        for stats in self.sinks:
            if stats.name == name:
                return stats
        raise ConfigurationError(f"no sink named {name!r}; sinks: "
                                 f"{', '.join(s.name for s in self.sinks)}")

    def report(self) -> List[str]:
        """One :meth:`SinkStats.describe` line per sink."""
        return [s.describe() for s in self.sinks]

    def problems(self) -> List[str]:
        """One line per sink that lost samples or cannot spool, e.g. for a final report."""
        lines = []
        for s in self.sinks:
            parts = []
            if s.dropped:
                parts.append(f"{s.dropped} dropped")
            if s.rejected:
                parts.append(f"{s.rejected} refused by the sink")
            if s.spool_error:
                parts.append(f"spool not writable: {s.spool_error}")
            if parts:
                lines.append(f"sink {s.name}: {', '.join(parts)}")
        return lines


@dataclass(frozen=True)
class RecorderProgress(Event):
    """Periodic progress: samples per second per device and per sink, spool depth."""

    elapsed: float
    received: int
    device_rates: Mapping[str, float]
    device_counts: Mapping[str, int]
    sinks: Tuple[SinkStats, ...]

    def format(self) -> str:
        devices = ", ".join(f"{k} {v:.1f}/s" for k, v in sorted(self.device_rates.items()))
        sinks = ", ".join(
            f"{s.name} {s.rate:.1f}/s{'' if s.healthy else ' DOWN'}"
            f" spool {s.spooled}"
            f"{' NOT WRITABLE' if s.spool_error else ''}"
            f"{f' memory {s.queued}' if s.spool_error else ''}"
            f"{f' LOST {s.lost}' if s.lost else ''}" for s in self.sinks)
        return (f"[{self.elapsed:7.1f}s] {self.received} samples | devices: {devices or '-'} "
                f"| sinks: {sinks or '-'}")


def default_spool_dir() -> str:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "pyburnerkit", "spool")


# ------------------------------------------------------------------------------------ recorder
class Recorder:
    """Record ``sources`` into ``sinks`` in the background.

    :param sources: clients of any family (adapted by family), or :class:`Source` objects
        (e.g. ``AfterburnerSource(client, device="cabin")``, :class:`CallableSource`).
    :param sinks: :class:`Sink` objects; default one :class:`SQLiteSink` on ``pyburnerkit.db``.
    :param alerts: :class:`AlertRule` objects.
    :param spool_dir: where each sink's spool file lives (default ``~/.cache/pyburnerkit/spool``).
        Samples spooled by an earlier run are written when the sink is next up.
    :param spool_max: items per sink spool before the oldest are dropped (counted, warned).
    :param memory_max: items per sink held in memory while neither the sink nor its spool can
        take them (e.g. the spool's disk is full); past it the oldest are dropped (counted,
        logged as LOST, reported by :meth:`status` and by ``close()`` returning False).
    :param sink_reconnect: backoff between attempts to reopen a sink that is down and to
        write a spool that failed (default 0.2 s doubling to 10 s).
    :param progress_interval: seconds between :class:`RecorderProgress` events (None: never).
    :param on_event: a callback for every event (same as :meth:`subscribe`).
    :param controls: per device (``"family/device"``), fields a sink may change although the
        family's table does not mark them safe: ``{"afterburner/cabin": ["PumpCal"]}``.
        Nothing is controllable on a device whose client does not allow writes. See
        :class:`~pyburnerkit.recorder.commands.Commands`.
    :param command_timeout: seconds each command may take on its device.

    Sinks that take commands (they have ``attach_commands(router)``: the MQTT sink) get the
    recorder's router (``rec.commands``, a :class:`~pyburnerkit.recorder.commands.Commands`)
    before they are opened; each command's outcome is also a
    :class:`~pyburnerkit.recorder.commands.CommandHandled` event.

    ``start()`` returns at once; ``close()`` stops sources, flushes every sink (or its spool)
    and joins every thread against one deadline. Use it as a context manager.
    """

    def __init__(self, sources: Iterable[Any] = (), sinks: Optional[Iterable[Sink]] = None, *,
                 alerts: Iterable[AlertRule] = (), spool_dir: Optional[str] = None,
                 spool_max: int = 1_000_000, progress_interval: Optional[float] = 5.0,
                 batch_size: int = 2000, on_event: Optional[Callable[[Event], Any]] = None,
                 max_pending_events: int = 10000, memory_max: int = 200_000,
                 sink_reconnect: Optional[Reconnect] = None,
                 controls: Optional[Mapping[str, Iterable[str]]] = None,
                 command_timeout: float = 10.0) -> None:
        self._closed = True
        self.sources: List[Source] = [adapt(s) for s in sources]
        ids = [(s.family, s.device) for s in self.sources]
        dupes = {i for i in ids if ids.count(i) > 1}
        if dupes:
            raise ConfigurationError(
                f"two sources share a device id: {sorted(dupes)}; give each a distinct device=")
        self.sinks: List[Sink] = list(sinks) if sinks is not None else [SQLiteSink()]
        names = [s.name for s in self.sinks]
        if len(set(names)) != len(names):
            raise ConfigurationError(f"sink names must be unique (name=...), got {names}")
        if progress_interval is not None and (isinstance(progress_interval, bool) or
                                              not isinstance(progress_interval, (int, float))
                                              or progress_interval <= 0):
            raise ConfigurationError(
                f"progress_interval must be a positive number of seconds or None, "
                f"got {progress_interval!r}")
        for label, value in (("batch_size", batch_size), ("spool_max", spool_max),
                             ("memory_max", memory_max)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigurationError(
                    f"{label} must be a whole number >= 1 (samples), got {value!r}")
        self.progress_interval = progress_interval
        self.spool_dir = spool_dir or default_spool_dir()
        self.spool_max = spool_max
        self.memory_max = memory_max
        if sink_reconnect is not None and not isinstance(sink_reconnect, Reconnect):
            raise ConfigurationError(f"sink_reconnect must be a Reconnect(...) policy, got "
                                     f"{sink_reconnect!r}")
        self.sink_reconnect = sink_reconnect or Reconnect(min_delay=0.2, max_delay=10.0)
        self.batch_size = batch_size
        #: the command router handed to the sinks that take commands
        self.factory = SampleFactory()
        self._dispatcher = Dispatcher("pyburnerkit-recorder-events",
                                      max_pending=max_pending_events)
        #: the command router handed to the sinks that take commands; each command's outcome
        #: is published as a :class:`~pyburnerkit.recorder.commands.CommandHandled` event
        self.commands = Commands(self.sources, controls=controls, timeout=command_timeout,
                                 on_result=self._dispatcher.publish)
        self.alerts = AlertEngine(list(alerts), self._dispatcher.publish, self._send_messages)
        self._workers: List[SinkWorker] = []
        self._message_workers: List[SinkWorker] = []
        self._poll_threads: List[threading.Thread] = []
        self._timer_thread: Optional[threading.Thread] = None
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self._lifecycle = threading.Lock()  # start() runs whole before close() proceeds
        self._known_fields: Set[Tuple[str, str, str, str]] = set()
        # (family, device, channel, field) -> the unit the family's semantic table gives a
        # field whose source reports another spelling (RPM) or none: the table's wins, so the
        # recorded column, Home Assistant and the HTTP API show one unit
        self._table_units: Dict[Tuple[str, str, str, str], str] = {}
        self._counts: Dict[str, int] = {}
        # "family/device" -> (last connection state, its error as text): for the final report
        self._device_states: Dict[str, Tuple[str, Optional[str]]] = {}
        self._received = 0
        self.poll_errors = 0
        self._started_at: Optional[float] = None
        self._last_progress: Tuple[float, Dict[str, int], Dict[str, int]] = (0.0, {}, {})
        self._state = "idle"
        self._want_samples = False
        if on_event is not None:
            self.subscribe(on_event)
        self._closed = False

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> "Recorder":
        """Start every thread and source; returns at once (sources connect in the background)."""
        with self._lifecycle:
            with self._lock:
                if self._state != "idle":
                    raise ClientClosedError("a Recorder can be started once")
                self._state = "running"
            try:
                self._start()
                failure = None
            except BaseException as exc:  # e.g. an unwritable spool directory
                failure = exc
        if failure is not None:
            self.close(timeout=5.0)
            raise failure
        return self

    def _start(self) -> None:
        self._started_at = time.monotonic()
        self._last_progress = (self._started_at, {}, {})
        self._dispatcher.start()
        for sink in self.sinks:
            attach = getattr(sink, "attach_commands", None)
            if callable(attach):  # before the sink opens: it subscribes to commands then
                attach(self.commands)
        for sink in self.sinks:
            spool = Spool.for_sink(self.spool_dir, sink.name, sink.identity(), self.spool_max)
            worker = SinkWorker(sink, spool, batch_size=self.batch_size,
                                memory_limit=self.memory_max, reconnect=self.sink_reconnect,
                                on_health=self._on_health, on_progress=self._wake_waiters,
                                on_spool=self._on_spool)
            self._workers.append(worker)
            if sink.wants_messages:
                self._message_workers.append(worker)
            worker.start()
        for source in self.sources:
            self.alerts.expect(source.family, source.device)
            source.start(self._emit, self._on_state)
            if source.kind == "poll":
                thread = threading.Thread(target=self._poll_loop, args=(source,), daemon=True,
                                          name=f"pyburnerkit-recorder-poll-{source.device}")
                self._poll_threads.append(thread)
                thread.start()
        self._timer_thread = threading.Thread(target=self._timer_loop, daemon=True,
                                              name="pyburnerkit-recorder-timer")
        self._timer_thread.start()
        log.info("recorder started: %d sources, sinks %s", len(self.sources),
                 ", ".join(s.name for s in self.sinks))

    def close(self, timeout: Optional[float] = 10.0) -> bool:
        """Stop sources, flush every sink (to the sink, or to its spool), join every thread.

        Blocks until every thread stopped or ``timeout`` seconds passed. Idempotent, safe from
        any thread including a callback (never joins its own thread).

        :returns: True when everything stopped within ``timeout`` seconds AND no sample was
            lost (see :meth:`status`: dropped from a full memory queue or spool, refused by a
            sink, or with nowhere to go at close). False otherwise, with the reason logged.
        """
        with self._lifecycle:  # a close() racing start() (e.g. from a callback) waits for it
            pass
        with self._lock:
            first = self._state not in ("closing", "closed")
            was_running = self._state == "running"
            self._state = "closed" if self._state == "idle" else "closing"
            self._cond.notify_all()
        deadline = Deadline(timeout)
        self._stop.set()
        ok = True
        if first:
            self._closed = True
            # no new command from here; one running on a device ends when its client closes
            self.commands.stop()
            for source in self.sources:
                source.stop()
            for source in self.sources:
                try:
                    source.close_client(deadline.remaining())
                except Exception:
                    log.debug("closing %r failed", source, exc_info=True)
            for source in self.sources:
                source.join(deadline.remaining())
            self.alerts.close(deadline.remaining())
        # joined before the sinks close, so the last replies still reach them
        if not self.commands.close(deadline.remaining()):
            ok = False
        me = threading.current_thread()
        for thread in self._poll_threads + ([self._timer_thread] if self._timer_thread else []):
            if thread is not me:
                thread.join(deadline.remaining())
                ok = ok and not thread.is_alive()
        for worker in self._workers:
            worker.stop(deadline)
        for worker in self._workers:
            if not worker.join(deadline):
                ok = False
                log.warning("sink %s did not finish within %s s; unsent samples stay queued",
                            worker.sink.name, timeout)
        if first and was_running:
            self._publish_progress()
        status = self.status()
        if status.lost:
            ok = False
            if first:
                log.error("recorder closed with %d samples LOST: %s", status.lost,
                          "; ".join(status.problems()))
        if not self._dispatcher.close(deadline):
            ok = False
        if self._dispatcher.thread is None:
            self._dispatcher.close_streams()
        with self._lock:
            self._state = "closed"
            self._cond.notify_all()
        return ok

    def join(self, timeout: Optional[float] = None) -> bool:
        """Block until the recorder is closed (by another thread or a callback) or ``timeout``
        seconds have passed: ``rec.join(60)`` records for a minute.

        :returns: True when the recorder was closed.
        :raises RuntimeError: when called from a recorder callback.
        """
        self._guard_events_thread("join")
        deadline = Deadline(timeout)
        with self._cond:
            while self._state != "closed":
                left = deadline.remaining()
                if left is not None and left <= 0:
                    return False
                self._cond.wait(left)
        return True

    def _guard_events_thread(self, what: str) -> None:
        if self._dispatcher.thread is threading.current_thread():
            raise RuntimeError(
                f"Recorder.{what}() was called from a recorder callback; it would block the "
                f"events thread (close() is fine from callbacks)")

    @property
    def running(self) -> bool:
        return self._state == "running"

    @property
    def lingering(self) -> List[str]:
        """Names of the recorder's threads still alive (after a ``close()`` that timed out)."""
        threads = self._poll_threads + [w.thread for w in self._workers]
        if self.commands.thread is not None:
            threads.append(self.commands.thread)
        if self._timer_thread is not None:
            threads.append(self._timer_thread)
        if self._dispatcher.thread is not None:
            threads.append(self._dispatcher.thread)
        return [t.name for t in threads if t.is_alive()]

    def __enter__(self) -> "Recorder":
        if self._state == "idle":
            self.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __del__(self) -> None:
        if getattr(self, "_closed", True):
            return
        if getattr(self, "_state", "idle") == "running":
            warnings.warn(f"{self!r} was not closed", ResourceWarning, stacklevel=2)
            try:
                self.close(timeout=0)
            except Exception:
                pass

    def __repr__(self) -> str:
        return (f"<Recorder {self._state} sources={len(self.sources)} "
                f"sinks={[s.name for s in self.sinks]} received={self._received}>")

    # ------------------------------------------------------------------ events & waiting
    def subscribe(self, callback: Callable[[Any], Any], *event_types: Type[Event]) -> Subscription:
        """Call ``callback(event)`` on the events thread for every (or every matching) event.

        :meth:`wait_for` predicates are re-checked after each callback, so they may look at what
        callbacks collected.
        """
        if not callable(callback):
            raise ConfigurationError(f"callback must be callable, got {callback!r}")

        def deliver(event: Any) -> Any:
            try:
                return callback(event)
            finally:
                self._wake_waiters()

        self._note_interest(event_types)
        return self._dispatcher.subscribe(deliver, event_types or None)

    def _note_interest(self, event_types: Tuple[Type[Event], ...]) -> None:
        # SamplesReceived is the only high-rate event: publish it only if someone listens
        if not event_types or any(issubclass(SamplesReceived, t) for t in event_types):
            self._want_samples = True

    def events(self, timeout: Optional[float] = None, *event_types: Type[Event],
               maxlen: int = 1000) -> Iterator[Any]:
        """Iterate over events as they arrive (ends when the recorder closes or after
        ``timeout`` seconds without one); keeps at most ``maxlen`` unread, dropping the oldest."""
        self._note_interest(event_types)
        return self._dispatcher.events(timeout, maxlen, event_types or None)

    def wait_for(self, predicate: Callable[["Recorder"], Any], timeout: float = 10.0) -> Any:
        """Block until ``predicate(recorder)`` is truthy (re-checked on every batch received,
        sink write and health change).

        :raises DeviceTimeoutError: not within ``timeout`` seconds.
        :raises RuntimeError: when called from a recorder callback (it would block the events
            thread that the condition may be waiting for).
        """
        self._guard_events_thread("wait_for")
        deadline = Deadline(timeout)
        with self._cond:
            while True:
                result = predicate(self)
                if result:
                    return result
                left = deadline.remaining()
                if left is not None and left <= 0:
                    raise DeviceTimeoutError(
                        f"recorder condition did not hold within {timeout:g} s")
                self._cond.wait(left)

    # ------------------------------------------------------------------ statistics
    @property
    def received(self) -> int:
        return self._received

    def sink_stats(self) -> Tuple[SinkStats, ...]:
        elapsed = max(1e-9, time.monotonic() - (self._started_at or time.monotonic()))
        return tuple(_stats(w, w.written / elapsed) for w in self._workers)

    def sink(self, name: str) -> SinkStats:
        for stats in self.sink_stats():
            if stats.name == name:
                return stats
        raise ConfigurationError(f"no sink named {name!r}")

    def status(self) -> RecorderStatus:
        """Where every sample is, and whether any was lost (never blocks; any thread).

        ``status().lost`` counts items that will never reach a sink; ``status().ok`` is True
        while nothing was lost and every spool can be written; ``status().problems()`` says
        what went wrong, one line per sink.
        """
        return RecorderStatus(self._state, self._received, self.sink_stats())

    def report(self) -> List[str]:
        """The honest end-of-run report, one line each: every device with the samples it
        delivered (a device that delivered none says so, with its last connection state and
        error), every sink's real state (:meth:`SinkStats.describe`: connected or refused,
        written, spooled and where, lost, what the far end confirmed), and the losses.
        Never blocks; any thread."""
        lines = []
        counts = dict(self._counts)
        for source in self.sources:
            name = f"{source.family}/{source.device}"
            count = counts.get(name, 0)
            if count:
                lines.append(f"device {name}: {count} samples")
                continue
            state, error = self._device_states.get(name, ("", None))
            why = f"last state {state}" if state else "it never reported a connection state"
            if error:
                why += f": {error}"
            lines.append(f"device {name}: NOTHING RECORDED ({why})")
        status = self.status()
        lines.extend(status.report())
        if status.lost:
            lines.append(f"{status.lost} samples were LOST: {'; '.join(status.problems())}")
        return lines

    @property
    def device_counts(self) -> Dict[str, int]:
        """Samples received so far per ``family/device``."""
        return dict(self._counts)

    def progress(self, *, _advance: bool = False) -> RecorderProgress:
        """Rates since the last progress event, totals since the start (reading it changes
        nothing; the periodic :class:`RecorderProgress` events advance the window)."""
        now = time.monotonic()
        last_t, last_dev, last_sink = self._last_progress
        span = max(1e-9, now - last_t)
        counts = dict(self._counts)
        device_rates = {k: (v - last_dev.get(k, 0)) / span for k, v in counts.items()}
        sinks = []
        written = {}
        for w in self._workers:
            written[w.sink.name] = w.written
            sinks.append(_stats(w, (w.written - last_sink.get(w.sink.name, 0)) / span))
        if _advance:
            self._last_progress = (now, counts, written)
        return RecorderProgress(now - (self._started_at or now), self._received, device_rates,
                                counts, tuple(sinks))

    def _publish_progress(self) -> None:
        self._dispatcher.publish(self.progress(_advance=True))

    # ------------------------------------------------------------------ ingestion
    def _emit(self, source: Source, readings: List[Reading],
              timestamp: Optional[float] = None) -> None:
        """Readings from a source (any thread): stamp, hand to every sink, evaluate alerts."""
        if self._state != "running":
            return
        ts = time.time() if timestamp is None else timestamp
        make = self.factory.make
        samples = []
        for reading in readings:
            # (channel, field, value, unit) or, from sources that know the device kind on
            # the channel (Mate3 HUB ports), (channel, field, value, unit, kind)
            s = make(ts, source.family, source.device, *reading)
            if s is not None:
                samples.append(s)
        if not samples:
            return
        new = []
        for s in samples:
            key = (s.family, s.device, s.channel, s.field)
            if key not in self._known_fields:
                new.append((key, s))
        if new:
            with self._lock:
                for key, s in new:
                    if key in self._known_fields:
                        continue
                    meta = source.meta(s.channel, s.field, s.unit, s.value)
                    if s.text is not None or isinstance(s.value, str):  # shown as text
                        meta = FieldMeta("", None, None, meta.diagnostic, meta.name)
                    elif meta.unit and meta.unit != s.unit:
                        # before the field counts as known: another source thread that sees
                        # it known (unlocked check above) must also see its unit
                        self._table_units[key] = meta.unit
                    self._known_fields.add(key)
                    for sink in self.sinks:
                        try:
                            sink.describe(s.family, s.device, s.channel, s.field, meta)
                        except Exception:
                            log.exception("sink %s: describe failed", sink.name)
        units = self._table_units
        if units:
            samples = [_with_unit(s, units) for s in samples]
        for worker in self._workers:
            worker.put(samples)
        name = f"{source.family}/{source.device}"
        with self._cond:
            self._counts[name] = self._counts.get(name, 0) + len(samples)
            self._received += len(samples)
            self._cond.notify_all()
        self.alerts.on_samples(samples)
        if self._want_samples:
            self._dispatcher.publish(SamplesReceived(tuple(samples)))

    def record(self, family: str, device: str, values: Mapping[str, Any], *,
               channel: str = "", units: Optional[Mapping[str, str]] = None,
               timestamp: Optional[float] = None) -> None:
        """Record values that did not come from a source (a manual note, a lab reading)."""
        src = Source(family, device)
        units = units or {}
        self._emit(src, [(channel, k, v, units.get(k, "")) for k, v in values.items()],
                   timestamp)

    def _send_messages(self, messages: List[Message]) -> None:
        for worker in self._message_workers:
            worker.put(messages)

    def _on_state(self, source: Source, state: str, error: Optional[BaseException]) -> None:
        name = f"{source.family}/{source.device}"
        previous = self._device_states.get(name)
        # "closed" at shutdown must not hide why a device never delivered
        if not (state == "closed" and previous is not None and previous[1]):
            self._device_states[name] = (state, describe_error(error))
        self._dispatcher.publish(DeviceStateChanged(source.family, source.device, state, error))
        online = "online" if state == "connected" else "offline"
        self._send_messages([Message(f"{slug(source.family)}/{slug(source.device)}/availability",
                                     online, True)])

    def _wake_waiters(self) -> None:
        with self._cond:
            self._cond.notify_all()

    def _on_spool(self, name: str, writable: bool, error: Optional[BaseException],
                  in_memory: int) -> None:
        self._dispatcher.publish(SpoolStateChanged(name, writable, error, in_memory))
        with self._cond:
            self._cond.notify_all()

    def _on_health(self, name: str, healthy: bool, error: Optional[BaseException]) -> None:
        self._dispatcher.publish(SinkHealthChanged(name, healthy, error))
        with self._cond:
            self._cond.notify_all()

    # ------------------------------------------------------------------ threads
    def _poll_loop(self, source: Source) -> None:
        interval = source.interval or 1.0
        next_at = time.monotonic()
        failing = False
        announced = source.client is not None  # clients report their own connection state
        while not self._stop.is_set():
            try:
                readings = source.poll()
            except Exception as exc:  # a device error must not stop recording
                self.poll_errors += 1
                if not failing:
                    log.warning("%s/%s: poll failed: %s", source.family, source.device, exc)
                    source.state("reconnecting", exc)
                failing = True
            else:
                if failing or not announced:
                    source.state("connected")
                    announced = True
                failing = False
                self._emit(source, readings)
            next_at += interval
            delay = next_at - time.monotonic()
            if delay < 0:  # a slow device: skip the missed slots instead of bursting
                next_at = time.monotonic()
                delay = 0
            if self._stop.wait(delay):
                return

    def _timer_loop(self) -> None:
        next_progress = None
        if self.progress_interval:
            next_progress = time.monotonic() + self.progress_interval
        while True:
            now = time.monotonic()
            waits = []
            if next_progress is not None:
                if now >= next_progress:
                    self._publish_progress()
                    next_progress = now + float(self.progress_interval or 0)
                waits.append(next_progress - now)
            silence = self.alerts.check_silence()
            if silence is not None:
                waits.append(silence)
            timeout = min(waits) if waits else None
            if self._stop.wait(timeout):
                return


def _stats(worker: SinkWorker, rate: float) -> SinkStats:
    sink = worker.sink
    try:
        detail = sink.report()
    except Exception:  # a sink that cannot say: the report goes without
        log.debug("sink %s: report() failed", sink.name, exc_info=True)
        detail = ""
    try:
        target = sink.identity()
    except Exception:
        target = ""
    return SinkStats(sink.name, worker.healthy, worker.written, rate, worker.queued,
                     worker.spooled, worker.dropped + worker.spool.dropped, worker.failures,
                     worker.rejected, worker.spool_error, state=worker.state,
                     error=describe_error(worker.last_error), connections=worker.connections,
                     target=target, spool_path=os.path.abspath(worker.spool.path),
                     detail=detail)


def _with_unit(sample: Sample, units: Mapping[Tuple[str, str, str, str], str]) -> Sample:
    """``sample`` with the unit its field's table gives, when that differs from the source's."""
    unit = units.get((sample.family, sample.device, sample.channel, sample.field))
    if unit is None or unit == sample.unit:
        return sample
    return replace(sample, unit=unit)
