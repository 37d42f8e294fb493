"""The shot sequencer with a simulated DE1 and Skale II (in-process transport): gates, stop at
weight / volume / time, move-on-by-weight, auto-tare, shot record."""

from __future__ import annotations

from typing import Any

import pytest

from pyburnerkit.errors import ConfigurationError
from pyburnerkit.de1.client import DE1Client
from pyburnerkit.de1.models import GateChanged, MachineState as S, StopAtTriggered
from pyburnerkit.de1.profile import visualizer_json
from pyburnerkit.de1.sequencer import GATES, ShotSequencer
from pyburnerkit.rigs.espresso import DE1Rig

from ..ble.simrig import SPEED, pair, sim_transport  # noqa: F401  (pair is a fixture)
from ..helpers import Recorder
from .test_profile_firmware import PROFILE


def shot(de1: DE1Client, seq: ShotSequencer) -> Any:
    de1.start_espresso()
    return seq.wait_complete(timeout=60)


def test_stop_at_weight_with_gates_in_order(rig: DE1Rig, pair: Any) -> None:
    de1, scale = pair
    events = Recorder()
    with ShotSequencer(de1, scale, stop_at_weight=30, time_scale=SPEED,
                       on_event=events) as seq:
        record = shot(de1, seq)
    gates = [e.gate for e in events.events if isinstance(e, GateChanged)]
    assert gates == list(GATES)
    stop = [e for e in events.events if isinstance(e, StopAtTriggered)]
    assert [e.stop_at for e in stop] == ["weight"] and stop[0].current < 30
    assert record.stop_reason == "weight"
    assert abs(record.final_weight_g - 30) < 1.5, record.final_weight_g
    assert abs(rig.run(lambda: rig.skale.reading()) - record.final_weight_g) < 0.3
    assert len(record.elapsed_s) > 10 and max(record.pressure_bar) > 5
    assert visualizer_json(record)["meta"]["out"] == f"{record.final_weight_g:.1f}"


def test_auto_tare_zeroes_the_scale_at_the_start(rig: DE1Rig, pair: Any) -> None:
    de1, scale = pair
    rig.run(lambda: setattr(rig.bench, "extra_g", 250.0))  # a cup on the scale
    scale.wait_for(lambda c: c.weight is not None and c.weight > 200, timeout=10)
    with ShotSequencer(de1, scale, stop_at_weight=20, time_scale=SPEED) as seq:
        record = shot(de1, seq)
    assert 0x10 in rig.run(lambda: list(rig.skale.commands))
    assert abs(record.final_weight_g - 20) < 1.5, record.final_weight_g


def test_stop_at_volume(pair: Any) -> None:
    de1, scale = pair
    with ShotSequencer(de1, None, stop_at_volume=15, time_scale=SPEED) as seq:
        record = shot(de1, seq)
    assert record.stop_reason == "volume"
    assert seq.triggered[0].current >= 15 and de1.volume[1] < 25


def test_stop_at_time_uses_the_de1_clock(pair: Any) -> None:
    de1, scale = pair
    with ShotSequencer(de1, None, stop_at_time=8.0, time_scale=SPEED) as seq:
        record = shot(de1, seq)
    assert record.stop_reason == "time"
    assert 8.0 <= seq.triggered[0].current < 9.0
    # the stop-at-time timer may fire before the 8.0 s sample arrives (samples come every
    # 0.25 s of DE1 time), so the last sample recorded can be the one before it
    assert 8.0 - 0.26 <= record.elapsed_s[-1] < 10.0


def test_profile_targets_and_move_on_by_weight(rig: DE1Rig, pair: Any) -> None:
    de1, scale = pair
    profile = dict(PROFILE, target_weight=25)
    profile["steps"] = [dict(PROFILE["steps"][0], weight=3, seconds=60, exit=None),
                        dict(PROFILE["steps"][1], limiter=None, weight=0)]
    de1.upload_profile(profile)
    with ShotSequencer(de1, scale, time_scale=SPEED) as seq:
        record = shot(de1, seq)
    kinds = [e.stop_at for e in seq.triggered]
    assert kinds == ["move on by weight", "weight"], kinds
    assert S.SKIP_TO_NEXT in rig.run(lambda: list(rig.de1.state_requests))
    assert seq.triggered[0].frame == 0 and 1 in record.frame
    assert abs(record.final_weight_g - 25) < 1.5


def test_sequencer_validates_targets(pair: Any) -> None:
    de1, scale = pair
    with pytest.raises(ConfigurationError, match="stop_at_weight=-3 g is out of range"):
        ShotSequencer(de1, scale, stop_at_weight=-3)


def test_stop_at_time_fires_between_samples_on_a_timer() -> None:
    """Stop-at-time is a timer armed at flow begin, not a check on the next ShotSample: at real
    speed samples come every 0.25 s, and 1.1 s lies between the 1.0 s and 1.25 s samples, so a
    per-sample check could only trigger on a sample at or after 1.25 s of flow."""
    rig = DE1Rig(speed=1.0).start()
    de1 = DE1Client(rig.de1.address, transport=sim_transport(rig), allow_remote_start=True,
                    allow_writes=True)
    seen = []
    try:
        de1.connect()
        de1.wake()
        with ShotSequencer(de1, None, stop_at_time=1.1, last_drops_minimum_time=0.5) as seq:
            seq.on_event = lambda e: seen.append(
                (e, seq._samples[-1][0] if seq._samples else None)) \
                if isinstance(e, StopAtTriggered) else None
            record = shot(de1, seq)
    finally:
        de1.close()
        rig.close()
    assert record.stop_reason == "time"
    (event, last_sample_elapsed), = seen
    assert event.stop_at == "time" and event.current >= 1.1
    assert last_sample_elapsed is not None and last_sample_elapsed < 1.1, last_sample_elapsed
    assert max(record.elapsed_s) < 2.5


def test_watchdog_completes_a_sequence_that_does_not_end(rig: DE1Rig, pair: Any) -> None:
    de1, scale = pair
    gates = Recorder()
    with ShotSequencer(de1, None, watchdog_s=2.0, time_scale=SPEED, on_event=gates) as seq:
        record = shot(de1, seq)  # the default profile pours far longer than 2 s
        assert record.extra["watchdog"] is True and record.stop_reason is None
        assert seq.gates["sequence_flow_end"] is None  # completed while still pouring
        assert de1.state is S.ESPRESSO
    de1.stop()
    with pytest.raises(ConfigurationError, match="watchdog_s=0.1 s is out of range"):
        ShotSequencer(de1, None, watchdog_s=0.1)


def test_timers_of_a_closed_sequencer_never_act_on_a_later_one(rig: DE1Rig, pair: Any) -> None:
    """Regression: a closed sequencer's watchdog fired inside a later shot and ended it (the
    timer was never cancelled and every sequencer numbered its sequences from 1). Here the
    first sequencer's watchdog (20 s) is due while the second sequencer's shot pours: it must
    have died with the first sequencer, and the second shot stops at its weight."""
    from pyburnerkit.de1.models import SequencerTimer
    de1, scale = pair
    timers = Recorder()
    de1.subscribe(timers, SequencerTimer)
    with ShotSequencer(de1, None, stop_at_time=2.0, watchdog_s=20.0,
                       time_scale=SPEED) as first_seq:
        first = shot(de1, first_seq)
    assert first.stop_reason == "time"
    de1.wait_for(lambda c: c.state is S.IDLE, timeout=20)
    after_close = len(timers.events)
    with ShotSequencer(de1, scale, stop_at_weight=30, time_scale=SPEED) as second_seq:
        second = shot(de1, second_seq)
    assert second.stop_reason == "weight", second.extra
    assert second.extra["watchdog"] is False
    assert abs(second.final_weight_g - 30) < 1.5, second.final_weight_g
    assert len(second.elapsed_s) > 10  # the whole pour was recorded, not cut short
    assert second.extra["sequence_id"] != first.extra["sequence_id"]
    assert timers.events[after_close:] == [], "a closed sequencer's timer still fired"
