"""How the client pairs its queries with the controller's answers (regressions of the hardening
issue): the firmware answers every query made within one update with a single system frame.
"""

from __future__ import annotations

import threading
import time
from typing import Any, Iterator, List

import pytest

from pyburnerkit import ConnectionLostError, DeviceTimeoutError, Reconnect
from pyburnerkit.afterburner import AfterburnerClient, AfterburnerSim

from ..helpers import CallInThread, wait_until

TICK = 0.5


@pytest.fixture
def slow_sim() -> Iterator[AfterburnerSim]:
    """A simulator that, like the firmware, reports once per update (every 0.5 s here)."""
    server = AfterburnerSim(tick=TICK, seed=5).start()
    yield server
    server.close()


def squeries(sim: AfterburnerSim) -> int:
    return sum(1 for frame in list(sim.received) if "SQuery" in frame)


def test_a_timed_out_query_does_not_wedge_later_calls(slow_sim: AfterburnerSim) -> None:
    # The reproducer: the timed-out query and the next one are answered by one frame.
    with AfterburnerClient(f"127.0.0.1:{slow_sim.port}", refresh_grace=0.2,
                           allow_writes=True) as heater:
        heater.read_system_info(timeout=3)  # returns just after an update...
        with pytest.raises(DeviceTimeoutError):
            heater.read_system_info(timeout=0.1)  # ...so the next answer is ~0.5 s away
        assert heater.read_system_info(timeout=3).firmware_version == "V3.2.1"
        assert heater.set_desired_temperature(23, timeout=3).desired_temperature == 23
        assert heater.read_system_info(timeout=3).uptime_s is not None


def test_two_threads_in_one_update_are_both_answered(slow_sim: AfterburnerSim) -> None:
    with AfterburnerClient(f"127.0.0.1:{slow_sim.port}", refresh_grace=0.2,
                           allow_writes=True) as heater:
        heater.read_system_info(timeout=3)  # line up just after an update
        go = threading.Barrier(2)

        def read() -> Any:
            go.wait(5)
            return heater.read_system_info(timeout=3)

        def write() -> Any:
            go.wait(5)
            return heater.set_desired_temperature(26, timeout=3)

        calls = [CallInThread(read), CallInThread(write)]
        for call in calls:
            call.join(10)
        assert [c.error for c in calls] == [None, None]
        assert calls[1].result.desired_temperature == 26
        # ...and the link is not left out of step afterwards.
        assert heater.set_desired_temperature(21, timeout=3).desired_temperature == 21


def io_thread_caught_up(heater: AfterburnerClient) -> None:
    """Block until the client's I/O thread has handled everything handed to it so far."""
    done = threading.Event()
    heater._session.loop.call_soon_threadsafe(done.set)
    assert done.wait(5), "the I/O thread did not run a queued call"


def test_a_keep_alive_and_a_call_in_one_update() -> None:
    # A quiet heater (cabin at ambient) pushes nothing, so the keep-alive goes out on time.
    with AfterburnerSim(tick=TICK, ambient_c=15.0, start_temp_c=15.0).start() as slow_sim, \
            AfterburnerClient(f"127.0.0.1:{slow_sim.port}", refresh_grace=0.2,
                              liveness_interval=3.0, allow_writes=True) as heater:
        heater.read_system_info(timeout=3)
        before = squeries(slow_sim)
        slow_sim.silence(True)  # takes commands, answers nothing: the update is held open
        wait_until(lambda: squeries(slow_sim) > before, timeout=10,
                   message="a keep-alive query")
        call = CallInThread(lambda: heater.read_system_info(timeout=2.0))
        wait_until(lambda: len(heater._outstanding) > 0, message="the call being made")
        io_thread_caught_up(heater)
        slow_sim.silence(False)  # one update now answers the keep-alive and the call
        call.join(10)
        # Before the fix the keep-alive took that one frame and the call waited for the next
        # keep-alive (3 s later), after the call's timeout.
        assert call.error is None, call.error
        assert heater.set_desired_temperature(24, timeout=3).desired_temperature == 24


def test_many_calls_after_a_backlog_all_complete(slow_sim: AfterburnerSim) -> None:
    # A stall leaves several callers waiting; one update later they all must be answered.
    with AfterburnerClient(f"127.0.0.1:{slow_sim.port}", refresh_grace=0.2) as heater:
        heater.read_system_info(timeout=3)
        slow_sim.silence(True)
        timed_out: List[BaseException] = []
        for _ in range(3):
            try:
                heater.read_system_info(timeout=0.15)
            except DeviceTimeoutError as exc:
                timed_out.append(exc)
        assert len(timed_out) == 3
        waiting = [CallInThread(lambda: heater.read_system_info(timeout=5)) for _ in range(4)]
        slow_sim.silence(False)
        for call in waiting:
            call.join(10)
        assert [c.error for c in waiting] == [None] * 4


def test_a_keep_alive_waiting_for_its_answer_does_not_spin() -> None:
    # While the keep-alive query waits for its answer the I/O thread must sleep: before the
    # fix it re-armed its check with a zero delay and ran a core flat out until the answer.
    with AfterburnerSim(tick=0, ambient_c=15.0, start_temp_c=15.0).start() as sim, \
            AfterburnerClient(f"127.0.0.1:{sim.port}", refresh_grace=0.2,
                              liveness_interval=0.2, liveness_timeout=5.0) as heater:
        heater.read_system_info(timeout=3)
        sim.silence(True)
        before = squeries(sim)
        wait_until(lambda: squeries(sim) > before, message="a keep-alive query")
        cpu = time.process_time()
        threading.Event().wait(0.5)  # the measurement window (nothing is asserted on state)
        used = time.process_time() - cpu
        sim.silence(False)
        assert used < 0.2, f"{used:.2f} s of CPU in 0.5 s while waiting for the keep-alive"
        assert heater.read_system_info(timeout=3).uptime_s is not None


def test_an_answer_lost_in_transit_rebuilds_the_link_instead_of_wedging(
        sim: AfterburnerSim) -> None:
    # The controller answered, but the answer never arrived whole (here: it sends nothing but
    # an unrelated push). Other frames keep coming, so the link looks alive; after
    # liveness_timeout the client resynchronises by reconnecting.
    with AfterburnerClient(f"127.0.0.1:{sim.port}", refresh_grace=0.2, liveness_timeout=0.5,
                           reconnect=Reconnect(0.05, 0.2)) as heater:
        sim.silence(True)
        call = CallInThread(lambda: heater.read_system_info(timeout=5))
        wait_until(lambda: squeries(sim) > 0, message="the query")
        sim.send_garbage('{"TempCurrent":15.1}')
        call.join(10)
        assert isinstance(call.error, ConnectionLostError), call.error
        sim.silence(False)
        heater.wait_for(lambda c: c.connected and not c.stale, timeout=10)
        assert heater.read_system_info(timeout=3).firmware_version == "V3.2.1"
