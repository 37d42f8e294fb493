"""The notification hand-over from the transport's thread to the I/O thread (issue 16):
batched, in order, never a lost wake-up, link loss after the values that preceded it."""

from __future__ import annotations

import threading
from typing import Any, Dict, List, Tuple

from pyburnerkit.de1.client import DE1Client
from pyburnerkit.rigs.espresso import DE1Rig
from pyburnerkit.types import ConnectionState, ConnectionStateChanged

from .simrig import sim_transport

#: A characteristic no DE1 handler knows: the values the tests inject are theirs alone.
TEST_UUID = "0000feed-0000-1000-8000-00805f9b34fb"


class Recorder:
    """Stands in for the family's ``on_value``: records what the I/O thread is handed."""

    def __init__(self, session: Any, expected: int) -> None:
        self.session = session
        self.family_on_value = session.on_value
        self.expected = expected
        self.got: List[Tuple[bytes, int, Any]] = []  # (value, batch number, link state)
        self.off_thread: List[str] = []
        self.done = threading.Event()
        session.on_value = self  # an instance attribute: _handle_value calls it

    def __call__(self, uuid: str, data: bytes) -> None:
        if uuid != TEST_UUID:
            self.family_on_value(uuid, data)  # the simulator's own stream carries on
            return
        if not self.session.loop.in_loop_thread():
            self.off_thread.append(threading.current_thread().name)
        self.got.append((data, self.session.batches, self.session.state))
        if len(self.got) >= self.expected:
            self.done.set()


def block_io_thread(session: Any) -> threading.Event:
    """Hold the I/O thread in a call until the returned event is set (at most 10 s)."""
    gate, held = threading.Event(), threading.Event()

    def hold() -> None:
        held.set()
        gate.wait(10)

    session.call_soon_threadsafe(hold)
    assert held.wait(10), "the I/O thread did not run the blocking call"
    return gate


def test_many_producers_lose_no_value_and_keep_each_ones_order(rig: DE1Rig) -> None:
    producers, each = 4, 3000
    with DE1Client(rig.de1.address, transport=sim_transport(rig), timeout=5.0) as client:
        client.connect()
        session = client._session
        recorder = Recorder(session, producers * each)
        gen = session._generation
        start = threading.Barrier(producers)

        def produce(who: int) -> None:
            start.wait(10)
            for seq in range(each):
                session._arrive(gen, TEST_UUID, bytes([who]) + seq.to_bytes(4, "big"))

        threads = [threading.Thread(target=produce, args=(i,), name=f"producer-{i}")
                   for i in range(producers)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        assert recorder.done.wait(30), f"only {len(recorder.got)} values were handed over"
        assert recorder.off_thread == []
        seen: Dict[int, List[int]] = {}
        for data, _, _ in recorder.got:
            seen.setdefault(data[0], []).append(int.from_bytes(data[1:], "big"))
        assert {who: len(v) for who, v in seen.items()} == {i: each for i in range(producers)}
        assert all(v == sorted(v) for v in seen.values())
        assert client.connected


def test_values_queued_while_the_io_thread_is_busy_are_one_batch(rig: DE1Rig) -> None:
    with DE1Client(rig.de1.address, transport=sim_transport(rig), timeout=5.0) as client:
        client.connect()
        session = client._session
        recorder = Recorder(session, 50)
        transport = session.transport
        gate = block_io_thread(session)
        wakeups = session.loop.wakeups_sent
        for i in range(50):
            transport.on_value(TEST_UUID, bytes([i]))  # as the transport's thread does
        written = session.loop.wakeups_sent - wakeups
        gate.set()
        assert recorder.done.wait(10)
        assert [data[0] for data, _, _ in recorder.got] == list(range(50))
        assert len({batch for _, batch, _ in recorder.got}) == 1  # one drain took all 50
        assert written <= 1  # at most one wake-up for the 50 (none when one was pending)


def test_link_loss_is_handled_after_the_values_before_it(rig: DE1Rig) -> None:
    with DE1Client(rig.de1.address, transport=sim_transport(rig), timeout=5.0) as client:
        client.connect()
        session = client._session
        recorder = Recorder(session, 3)
        transport = session.transport
        gate = block_io_thread(session)
        for i in range(3):
            transport.on_value(TEST_UUID, bytes([i]))
        transport.on_lost()
        gate.set()
        assert recorder.done.wait(10)
        assert [state for _, _, state in recorder.got] == [ConnectionState.CONNECTED] * 3
        # the loss was handled after them, and the client reconnects
        client.wait_for(lambda c: session._generation > 1 and c.connected, timeout=20)


def test_silence_watchdog_still_drops_a_silent_link(rig: DE1Rig) -> None:
    with DE1Client(rig.de1.address, transport=sim_transport(rig), timeout=5.0,
                   silence_timeout=0.5) as client:
        client.connect()
        session = client._session
        generation = session._generation
        errors: List[BaseException] = []
        lost = threading.Event()

        def on_state(event: ConnectionStateChanged) -> None:
            if event.state is ConnectionState.RECONNECTING and event.error is not None:
                errors.append(event.error)
                lost.set()

        client.subscribe(on_state, ConnectionStateChanged)
        rig.host.silence(True)
        try:
            assert lost.wait(20), "the watchdog never dropped the silent link"
            assert "no notification" in str(errors[0])
        finally:
            rig.host.silence(False)
        client.wait_for(lambda c: c.connected and session._generation > generation,
                        timeout=20)

