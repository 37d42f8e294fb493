"""The shot sequencer: gates (spec section 6), volume, stop at time / volume / weight
(predictive, with the lag model), move-on-by-weight, auto-tare, and a shot record.

It listens to a :class:`~pyburnerkit.de1.client.DE1Client` and optionally a
:class:`~pyburnerkit.scale.client.SkaleClient` through ordinary subscriptions, so it runs on the
clients' events threads and acts through their blocking methods (allowed there). No thread of
its own: stop-at-time is a timer on the DE1 client's reactor (:meth:`DE1Client.post_later`)
armed when flow begins, so it does not wait for the next ShotSample (up to 0.25 s later), and
is also checked against the DE1 clock on every sample; the other time gates are evaluated on
the DE1's ShotSamples, which arrive at least every ~0.75 s in every state, and on weight
readings (~10/s).

Timers belong to their sequence: they are cancelled when the sequence completes, when a new
one starts and when the sequencer closes, and sequence ids are unique in the process, so a
timer of one sequencer can never act on another sequencer that shares the DE1 client.

Times in the lag model are device seconds; ``time_scale`` (device seconds per real second)
keeps it right against a sped-up simulator.
"""

from __future__ import annotations

import itertools
import logging
import statistics
import threading
import time
from typing import Any, Callable, Dict, List, Optional, Sequence, Set, Tuple

from .models import (FlowPhase, GateChanged, MachineState as S, SequencerTimer, ShotRecord,
                     ShotSampleEvent, StateChanged, StopAtTriggered, SubState as U)

log = logging.getLogger(__name__)

GATES = ("sequence_start", "sequence_flow_begin", "sequence_expect_drops",
         "sequence_exit_preinfuse", "sequence_flow_end", "sequence_flow_state_exit",
         "sequence_last_drops", "sequence_complete")

_WEIGHT_STATES = (S.ESPRESSO, S.HOT_WATER)

_sequence_numbers = itertools.count(1)
_sequence_lock = threading.Lock()


def check_stop_targets(stop_at_weight: Optional[float] = None,
                       stop_at_volume: Optional[float] = None,
                       stop_at_time: Optional[float] = None) -> None:
    """Check stop-at targets (None = off): 0.1..2000 g, 0.1..2000 mL, 0.1..600 s.

    :raises ConfigurationError: naming the value, the limit and the unit.
    """
    from ..errors import check_range
    for name, value, high, unit in (("stop_at_weight", stop_at_weight, 2000, "g"),
                                    ("stop_at_volume", stop_at_volume, 2000, "mL"),
                                    ("stop_at_time", stop_at_time, 600, "s")):
        if value is not None:
            check_range(name, value, 0.1, high, unit)


def next_sequence_id() -> int:
    """A sequence id no other sequence of this process has (any thread)."""
    with _sequence_lock:
        return next(_sequence_numbers)


class ShotSequencer:
    """Watches one flow sequence at a time and applies the stop-at rules.

    :param de1: the DE1 client to follow and act on.
    :param scale: a scale client, or None. Duck-typed (the de1 family does not import the
        scale family), shaped as :class:`~pyburnerkit.scale.client.SkaleClient` is:
        ``subscribe(callback)``, ``tare(wait=)``, ``weight``; the events with ``weight_g`` and
        ``weight_time`` are its weight readings.
    :param stop_at_weight: grams, or None (a profile's ``target_weight`` applies when
        ``profile_can_override`` and none is given).
    :param stop_at_volume: mL of pour volume (after preinfusion), or None.
    :param stop_at_time: seconds of flow, or None.
    :param move_on_weight: per-frame grams (None = no move-on for that frame).
    :param stop_lead_time, fall_time, weight_adjust: the lag model, seconds (pyDE1's defaults).
    :param watchdog_s: complete a sequence that has not completed this long after it started
        (pyDE1: 270 s), so a lost link or a stuck state does not hold it open; None disables.
    :raises WriteNotAllowedError: ``auto_tare`` with a scale client not opened with
        ``allow_writes=True`` (taring changes the scale), or ``move_on_weight`` with a DE1
        client not opened with ``allow_remote_start=True`` (it sends SkipToNext).

    Stopping a flow is always allowed (a stop is never refused), so stop-at-weight, -volume
    and -time work on a DE1 client opened without any write permission, e.g. for a shot
    started on the machine itself.
    """

    def __init__(self, de1: Any, scale: Any = None, *, stop_at_weight: Optional[float] = None,
                 stop_at_volume: Optional[float] = None, stop_at_time: Optional[float] = None,
                 move_on_weight: Sequence[Optional[float]] = (), auto_tare: bool = True,
                 profile_can_override: bool = True, stop_lead_time: float = 0.1,
                 fall_time: float = 0.17, weight_adjust: float = -0.07,
                 first_drops_threshold: float = 0.0, last_drops_minimum_time: float = 3.0,
                 watchdog_s: Optional[float] = 270.0, time_scale: float = 1.0,
                 on_event: Optional[Callable[[Any], Any]] = None) -> None:
        from ..ble.bench import MAX_SPEED, MIN_SPEED
        from ..errors import WriteNotAllowedError, check_range
        check_stop_targets(stop_at_weight, stop_at_volume, stop_at_time)
        if watchdog_s is not None:
            check_range("watchdog_s", watchdog_s, 1.0, 3600.0, "s")
        check_range("time_scale", time_scale, MIN_SPEED, MAX_SPEED, "x real time")
        if auto_tare and scale is not None and not getattr(scale, "allow_writes", True):
            raise WriteNotAllowedError(
                "auto-tare tares the scale: open the scale client with allow_writes=True, or "
                "pass auto_tare=False", device="scale", endpoint=getattr(scale, "endpoint", None))
        if any(move_on_weight) and not getattr(de1, "allow_remote_start", True):
            raise WriteNotAllowedError(
                "move-on-by-weight sends SkipToNext: open the DE1 client with "
                "allow_remote_start=True", device="de1", endpoint=getattr(de1, "endpoint", None))
        self.de1 = de1
        self.scale = scale
        self.stop_at_weight = stop_at_weight
        self.stop_at_volume = stop_at_volume
        self.stop_at_time = stop_at_time
        self.move_on_weight = list(move_on_weight)
        self.auto_tare = auto_tare and scale is not None
        self.profile_can_override = profile_can_override
        self.lead_s = stop_lead_time + fall_time - weight_adjust
        self.first_drops_threshold = first_drops_threshold
        self.last_drops_minimum_time = last_drops_minimum_time
        self.ts = time_scale
        self.watchdog_s = watchdog_s
        self.on_event = on_event
        self._lock = threading.Lock()
        self._subs: List[Any] = []
        self._timers: List[Any] = []  # LaterEvent handles of the current sequence
        self._closed = False
        self._complete = threading.Condition(self._lock)
        self.sequence_id = 0  # unique in the process once a sequence started
        self.records: List[ShotRecord] = []
        self.triggered: List[StopAtTriggered] = []
        self._reset(None)

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> "ShotSequencer":
        self._subs.append(self.de1.subscribe(self._de1_event, StateChanged, ShotSampleEvent,
                                             SequencerTimer))
        if self.scale is not None:
            # the scale is duck-typed (de1 does not import the scale family): every event of
            # it reaches _weight, which keeps only weight readings
            self._subs.append(self.scale.subscribe(self._weight))
        return self

    def close(self) -> None:
        """Stop following the clients and cancel every timer of this sequencer (idempotent;
        any thread, including the clients' callbacks). Nothing of it acts afterwards."""
        with self._lock:
            self._closed = True
            subs, self._subs = self._subs, []
            timers, self._timers = self._timers, []
        for sub in subs:
            sub.cancel()
        for timer in timers:
            timer.cancel()

    def __enter__(self) -> "ShotSequencer":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def wait_complete(self, timeout: float = 300.0) -> ShotRecord:
        """Block until the current (or next) sequence completes; returns its record."""
        deadline = time.monotonic() + timeout
        with self._complete:
            count = len(self.records)
            if self.gates.get("sequence_start") is None and self.records:
                return self.records[-1]
            while len(self.records) == count:
                left = deadline - time.monotonic()
                if left <= 0:
                    from ..errors import DeviceTimeoutError
                    raise DeviceTimeoutError(f"no completed shot within {timeout:g} s")
                self._complete.wait(left)
            return self.records[-1]

    # ------------------------------------------------------------------ state
    def _reset(self, state: Optional[S]) -> None:
        self.gates: Dict[str, Optional[float]] = {g: None for g in GATES}
        self.active_state = state
        self.elapsed = 0.0
        self._prev_sample_time: Optional[int] = None
        self.frame = 0
        self._frame_weight: Optional[float] = None
        self._moved_frames: Set[int] = set()
        self._stop_sent = False
        self._last_tare = 0.0
        self._samples: List[Tuple[float, Any]] = []
        self._volumes: List[float] = []  # cumulative mL, parallel to _samples
        # the newest volumes of this sequence: (preinfuse, pour, by frames)
        self._last_volumes: Tuple[float, float, Tuple[float, ...]] = (0.0, 0.0, ())
        self._weights: List[Tuple[float, float]] = []
        self._last_sample: Optional[Tuple[float, Any]] = None
        self.stop_reason: Optional[str] = None
        self._watchdog_fired = False
        self.target_weight = self.stop_at_weight
        self.target_volume = self.stop_at_volume
        self.move_on = list(self.move_on_weight)
        if self.profile_can_override and state is S.ESPRESSO:
            program = self.de1.profile
            if program is not None:
                if self.target_weight is None and program.target_weight_g:
                    self.target_weight = program.target_weight_g
                if self.target_volume is None and program.target_volume_ml:
                    self.target_volume = program.target_volume_ml
                if not self.move_on:
                    self.move_on = list(program.move_on_weight_g)

    def _set_gate(self, gate: str) -> None:
        if self.gates[gate] is None:
            self.gates[gate] = time.monotonic()
            self._emit(GateChanged(gate, self.active_state or S.IDLE, self.sequence_id))

    def _emit(self, event: Any) -> None:
        if isinstance(event, StopAtTriggered):
            self.triggered.append(event)
        if self.on_event is not None:
            try:
                self.on_event(event)
            except Exception:
                log.exception("sequencer on_event callback raised")

    # ------------------------------------------------------------------ DE1 events
    def _de1_event(self, event: Any) -> None:
        actions: List[Callable[[], Any]] = []
        with self._lock:
            if self._closed:  # an event already queued when close() ran
                return
            if isinstance(event, StateChanged):
                self._state(event, actions)
            elif isinstance(event, SequencerTimer):
                self._timer(event, actions)
            else:
                self._sample(event, actions)
        for action in actions:
            self._act(action)

    def _state(self, ev: StateChanged, actions: List[Callable[[], Any]]) -> None:
        flow = ev.state.is_flow
        was_flow = ev.previous_state is not None and ev.previous_state.is_flow
        if flow and not (was_flow and ev.previous_state == ev.state):
            actions.extend(self._drop_timers())  # the previous sequence's timers die here
            self.sequence_id = next_sequence_id()
            self._reset(ev.state)
            self._set_gate("sequence_start")
            if self.watchdog_s is not None:  # pyDE1 completes a sequence after 270 s anyway
                dog = SequencerTimer(self.sequence_id, "watchdog")
                dog_delay = self.watchdog_s / self.ts
                actions.append(lambda: self._arm(dog_delay, dog))
            if self.auto_tare and ev.state in _WEIGHT_STATES:
                actions.append(lambda: self.scale.tare(wait=False))
                self._last_tare = time.monotonic()
        if self.gates["sequence_start"] is None:
            return
        phase = ev.substate.flow_phase if flow else FlowPhase.NONE
        if phase is FlowPhase.DURING and self.gates["sequence_flow_begin"] is None:
            self._set_gate("sequence_flow_begin")
            if self.stop_at_time is not None:
                timer = SequencerTimer(self.sequence_id, "stop_at_time")
                delay = self.stop_at_time / self.ts
                actions.append(lambda: self._arm(delay, timer))
        if ev.previous_substate is U.PRE_INFUSE and ev.substate is not U.PRE_INFUSE:
            self._set_gate("sequence_exit_preinfuse")
        if self.gates["sequence_flow_begin"] is not None and phase is not FlowPhase.DURING:
            self._set_gate("sequence_flow_end")
        if not flow:
            self._set_gate("sequence_flow_state_exit")
            if self.gates["sequence_flow_begin"] is None:
                self._finish()  # left the flow state before flow began

    def _sample(self, ev: ShotSampleEvent, actions: List[Callable[[], Any]]) -> None:
        if self.gates["sequence_start"] is None or self.gates["sequence_complete"] is not None:
            return
        s = ev.sample
        now = time.monotonic()
        self._last_sample = (now, s)
        # getattr: events published by code older than volume_by_frames lack the field
        self._last_volumes = (ev.volume_preinfuse_ml, ev.volume_pour_ml,
                              tuple(getattr(ev, "volume_by_frames", ())))
        if self.gates["sequence_flow_begin"] is not None and \
                self.gates["sequence_flow_end"] is None:
            if self._prev_sample_time is not None:
                delta = (s.sample_time - self._prev_sample_time) % 65536
                if delta <= 100:
                    self.elapsed += delta / (2.0 * self.de1.line_frequency)
            self._prev_sample_time = s.sample_time
            self._samples.append((self.elapsed, s))
            self._volumes.append(ev.volume_total_ml)
            if self.gates["sequence_expect_drops"] is None and \
                    s.group_pressure_bar > self.first_drops_threshold:
                self._set_gate("sequence_expect_drops")
            if s.frame_number != self.frame:
                self.frame = s.frame_number
                self._frame_weight = self._weights[-1][1] if self._weights else None
            if not self._stop_sent and self.stop_at_time is not None and \
                    self.elapsed >= self.stop_at_time:
                self._trigger("time", self.stop_at_time, self.elapsed, actions)
            if not self._stop_sent and self.target_volume is not None and \
                    self.active_state in _WEIGHT_STATES and \
                    (self.gates["sequence_exit_preinfuse"] is not None
                     or self.active_state is S.HOT_WATER) and \
                    ev.volume_pour_ml >= self.target_volume:
                self._trigger("volume", self.target_volume, ev.volume_pour_ml, actions)
        end = self.gates["sequence_flow_end"]
        if end is not None and self.gates["sequence_last_drops"] is None and \
                now - end >= self.last_drops_minimum_time / self.ts:
            self._set_gate("sequence_last_drops")
        if self.gates["sequence_last_drops"] is not None and \
                self.gates["sequence_flow_state_exit"] is not None:
            self._finish()

    def _timer(self, ev: SequencerTimer, actions: List[Callable[[], Any]]) -> None:
        if ev.name == "watchdog":
            if ev.sequence_id == self.sequence_id and self.gates["sequence_start"] is not None \
                    and self.gates["sequence_complete"] is None:
                log.warning("shot sequence %d not complete after %g s: completing it",
                            self.sequence_id, self.watchdog_s)
                self._watchdog_fired = True
                self._finish()
            return
        begin = self.gates["sequence_flow_begin"]
        if ev.sequence_id != self.sequence_id or ev.name != "stop_at_time" or begin is None \
                or self.gates["sequence_flow_end"] is not None or self._stop_sent \
                or self.stop_at_time is None:
            return
        current = max(self.elapsed, (time.monotonic() - begin) * self.ts)
        self._trigger("time", self.stop_at_time, current, actions)

    # ------------------------------------------------------------------ timers
    def _arm(self, delay_s: float, timer: SequencerTimer) -> None:
        """Start a timer for the sequence ``timer`` names (events thread, no lock held). A
        sequence that ended (or a sequencer that closed) meanwhile gets no timer."""
        later = self.de1.post_later(delay_s, timer)
        with self._lock:
            current = not self._closed and timer.sequence_id == self.sequence_id and \
                self.gates["sequence_complete"] is None
            if current:
                self._timers.append(later)
        if not current:
            later.cancel()

    def _drop_timers(self) -> List[Callable[[], Any]]:
        """Under the lock: forget this sequence's timers; returns the actions cancelling them."""
        timers, self._timers = self._timers, []
        return [timer.cancel for timer in timers]

    def _trigger(self, kind: str, target: float, current: float,
                 actions: List[Callable[[], Any]]) -> None:
        self._stop_sent = True
        self.stop_reason = kind
        self._emit(StopAtTriggered(kind, target, current, self.frame))
        actions.append(self.de1.stop_flow)

    # ------------------------------------------------------------------ weights
    def _weight(self, r: Any) -> None:
        if not (hasattr(r, "weight_g") and hasattr(r, "weight_time")):
            return  # not a weight reading (a button, a tare seen, a link change)
        actions: List[Callable[[], Any]] = []
        with self._lock:
            if self._closed:
                return
            self._on_weight(r, actions)
        for action in actions:
            self._act(action)

    def _on_weight(self, r: Any, actions: List[Callable[[], Any]]) -> None:
        if self.gates["sequence_start"] is None or self.gates["sequence_complete"] is not None:
            return
        now = time.monotonic()
        self._weights.append((r.weight_time, r.weight_g))
        if self.active_state not in _WEIGHT_STATES:
            return
        if self.auto_tare and self.gates["sequence_expect_drops"] is None:
            if abs(r.weight_g) > 0.05 and now - self._last_tare >= 0.25 / self.ts:
                self._last_tare = now
                actions.append(lambda: self.scale.tare(wait=False))
            return
        if self.gates["sequence_expect_drops"] is None or \
                self.gates["sequence_flow_end"] is not None:
            return
        flow = self._mass_flow(r, now)
        if flow is None:
            return
        period = r.period_s
        if not self._stop_sent and self.target_weight is not None:
            if self._due(r.weight_time, r.weight_g, self.target_weight, flow, now, period):
                self._trigger("weight", self.target_weight, r.weight_g, actions)
                return
        idx = self.frame
        move_on = self.move_on[idx] if idx < len(self.move_on) else None
        if self.active_state is S.ESPRESSO and move_on and idx not in self._moved_frames:
            base = self._frame_weight or 0.0
            if self._due(r.weight_time, r.weight_g - base, move_on, flow, now, period):
                self._moved_frames.add(idx)
                self._emit(StopAtTriggered("move on by weight", move_on,
                                           r.weight_g - base, idx))
                actions.append(self.de1.skip_to_next)

    def _mass_flow(self, r: Any, now: float) -> Optional[float]:
        """g per device second, with pyDE1's bump resistance."""
        flow: Optional[float] = r.average_flow_g_s  # the scale is duck-typed
        if flow is None:
            return None
        if flow > 10.0 and self._last_sample is not None:
            at, sample = self._last_sample
            if now - at < 0.6 / self.ts:
                recent: float = sample.group_flow_ml_s * 1.1
                return recent
            flows: List[float] = [s.group_flow_ml_s for _, s in self._samples[-5:]]
            return statistics.median(flows) * 1.1 if flows else None
        return max(0.0, flow)

    def _due(self, t_w: float, w: float, target: float, flow: float, now: float,
             period: float) -> bool:
        if w >= target:
            return True
        if flow <= 0:
            return False
        t_stop = t_w + ((target - w) / flow - self.lead_s) / self.ts
        # the next reading comes one period later: act now when that would be later than due
        return now >= t_stop - period / 2.0

    # ------------------------------------------------------------------ finishing
    def _finish(self) -> None:
        self._set_gate("sequence_complete")
        for cancel in self._drop_timers():  # never blocks: safe under the lock
            cancel()
        samples = self._samples
        weights = [w for _, w in self._weights]
        final = self.scale.weight if self.scale is not None else None
        record = ShotRecord(
            start_time=time.time() - (time.monotonic() - (self.gates["sequence_start"] or 0)),
            profile=(self.de1.profile.source if self.de1.profile is not None else None),
            elapsed_s=tuple(e for e, _ in samples),
            pressure_bar=tuple(s.group_pressure_bar for _, s in samples),
            flow_ml_s=tuple(s.group_flow_ml_s for _, s in samples),
            weight_g=tuple(weights[-len(samples):]) if samples else tuple(),
            mix_temp_c=tuple(s.mix_temp_c for _, s in samples),
            head_temp_c=tuple(s.head_temp_c for _, s in samples),
            set_pressure_bar=tuple(s.set_group_pressure_bar for _, s in samples),
            set_flow_ml_s=tuple(s.set_group_flow_ml_s for _, s in samples),
            set_head_temp_c=tuple(s.set_head_temp_c for _, s in samples),
            frame=tuple(s.frame_number for _, s in samples),
            final_weight_g=final, stop_reason=self.stop_reason,
            volume_preinfuse_ml=self._last_volumes[0], volume_pour_ml=self._last_volumes[1],
            volume_by_frames=self._last_volumes[2], volume_ml=tuple(self._volumes),
            extra={"state": self.active_state.name if self.active_state else None,
                   "target_weight_g": self.target_weight, "sequence_id": self.sequence_id,
                   "watchdog": self._watchdog_fired})
        self.records.append(record)
        self._complete.notify_all()

    def _act(self, action: Callable[[], Any]) -> None:
        try:
            action()
        except Exception as exc:  # a stop that fails must be visible, not fatal here
            log.warning("sequencer action failed: %s", exc)
