"""The shared reactor: many clients on one I/O thread and a few events threads, every
per-client contract kept. Real simulators over real loopback sockets; no timing asserts."""

from __future__ import annotations

import socket
import threading
from typing import Any, Dict, Iterator, List, Tuple

import pytest

import pyburnerkit
from pyburnerkit import (ClientClosedError, ConfigurationError, ConnectTimeoutError, Reactor,
                         connect_all)
from pyburnerkit._core.dispatcher import Dispatcher
from pyburnerkit.afterburner import AfterburnerClient, AfterburnerSim
from pyburnerkit.afterburner.models import StatusChanged

FLEET = 100


@pytest.fixture(scope="module")
def sims() -> Iterator[List[AfterburnerSim]]:
    servers = [AfterburnerSim(tick=0, seed=i).start() for i in range(FLEET)]
    yield servers
    for server in servers:
        server.close()


@pytest.fixture(autouse=True)
def no_leaks(request: pytest.FixtureRequest) -> Iterator[None]:
    # the module-scoped simulators outlive each test: check only the reactor's own threads
    # (the suite-wide fixture would count the simulators of the first test as leaked)
    before = {t for t in threading.enumerate()}
    yield
    left = [t for t in threading.enumerate() if t not in before
            and t.name.startswith("pyburnerkit") and not t.name.startswith("pyburnerkit-sim")]
    for thread in left:
        thread.join(5.0)
    assert [t.name for t in left if t.is_alive()] == []


def _heater(sim: AfterburnerSim, reactor: Reactor, **kw: Any) -> AfterburnerClient:
    return AfterburnerClient(f"127.0.0.1:{sim.port}", reactor=reactor, refresh_grace=0.2,
                             timeout=10.0, **kw)


def test_hundred_heaters_share_one_reactor(sims: List[AfterburnerSim]) -> None:
    before = set(threading.enumerate())
    reactor = Reactor(event_threads=2)
    clients = [_heater(sim, reactor, allow_writes=True) for sim in sims]
    try:
        # every client subscribes: the events threads do run
        seen: List[List[Any]] = [[] for _ in clients]
        conds = [threading.Condition() for _ in clients]

        def recorder(i: int) -> Any:
            def on_status(event: StatusChanged) -> None:
                with conds[i]:
                    seen[i].append(event)
                    conds[i].notify_all()
            return on_status
        for i, client in enumerate(clients):
            client.subscribe(recorder(i), StatusChanged)

        assert connect_all(clients, timeout=60.0) == clients
        assert all(c.connected for c in clients)

        # a slow subscriber on client 0 (blocked until released) ...
        entered, release = threading.Event(), threading.Event()

        def slow(event: StatusChanged) -> None:
            entered.set()
            release.wait(30.0)
        clients[0].subscribe(slow, StatusChanged)
        sims[0].set(TempDesired=25)
        assert entered.wait(10.0)
        # ... delays neither another client's I/O nor its callbacks
        n1 = len(seen[1])
        sims[1].set(TempDesired=26)
        with conds[1]:
            assert conds[1].wait_for(
                lambda: any(e.status.desired_temperature == 26 for e in seen[1][n1:]), 10.0)
        assert clients[2].set_desired_temperature(27).desired_temperature == 27
        assert not release.is_set() and entered.is_set()  # client 0 still stuck meanwhile
        release.set()
        with conds[0]:
            assert conds[0].wait_for(
                lambda: any(e.status.desired_temperature == 25 for e in seen[0]), 10.0)

        added = [t for t in threading.enumerate() if t not in before]
        assert len(added) <= 4, [t.name for t in added]
        assert all(t.name.startswith(reactor.name) for t in added)

        # closing one client leaves the others (and the reactor) working
        assert clients[3].close() is True
        assert clients[3].closed and clients[3].connection_state.value == "closed"
        with pytest.raises(ClientClosedError):
            clients[3].read_status(timeout=1.0)
        assert clients[4].read_status().desired_temperature == 22
        assert clients[3] not in reactor.clients and clients[4] in reactor.clients
        assert reactor.io_thread is not None and reactor.io_thread.is_alive()
    finally:
        assert reactor.close(timeout=10.0) is True
    assert all(c.closed for c in clients)
    assert reactor.threads == []
    with pytest.raises(ClientClosedError):
        _heater(sims[5], reactor).connect()


def test_callbacks_stay_in_order_per_client_and_never_overlap() -> None:
    """Stress: four producers publish into six clients' queues on one hub of two events
    threads; each client's callbacks see its events in order, complete, one at a time."""
    reactor = Reactor(event_threads=2)
    reactor._start_locked()  # the hub needs no I/O; this makes the loop the test releases
    per_client, clients = 3000, 6
    dispatchers = [Dispatcher(f"pyburnerkit-test-{i}", max_pending=10 ** 6, hub=reactor._events)
                   for i in range(clients)]
    got: List[List[Tuple[int, int]]] = [[] for _ in range(clients)]
    running = [0] * clients
    overlaps: List[int] = []
    done = threading.Semaphore(0)

    def make(i: int) -> Any:
        def cb(event: Tuple[int, int]) -> None:
            running[i] += 1
            if running[i] != 1:
                overlaps.append(i)
            got[i].append(event)
            running[i] -= 1
            if len(got[i]) == per_client * 2:
                done.release()
        return cb
    for i, d in enumerate(dispatchers):
        d.subscribe(make(i))
        d.start()

    def produce(p: int) -> None:
        for n in range(per_client // 2):
            for d in dispatchers:
                d.publish((p, n))
    producers = [threading.Thread(target=produce, args=(p,)) for p in range(4)]
    for t in producers:
        t.start()
    for t in producers:
        t.join()
    for _ in range(clients):
        assert done.acquire(timeout=30.0)
    assert overlaps == []
    for events in got:
        for p in range(4):
            assert [n for q, n in events if q == p] == list(range(per_client // 2))
    for d in dispatchers:
        assert d.close(pyburnerkit._core.timeouts.Deadline(5.0))
    assert reactor.close(timeout=5.0)


def test_cross_thread_calls_are_never_lost_on_a_strand(sims: List[AfterburnerSim]) -> None:
    """Stress the strand's coalesced hand-off: every call queued from four threads runs, on
    the reactor's I/O thread, in each producer's order."""
    with Reactor() as reactor:
        client = _heater(sims[0], reactor).connect()
        session = client._session
        assert session is not None
        ran: List[Tuple[int, int]] = []
        threads_seen = set()
        finished = threading.Semaphore(0)
        count = 5000

        def call(p: int, n: int) -> None:
            ran.append((p, n))
            threads_seen.add(threading.current_thread().name)
            if n == count - 1:
                finished.release()

        def produce(p: int) -> None:
            for n in range(count):
                session.call_soon_threadsafe(call, p, n)
        producers = [threading.Thread(target=produce, args=(p,)) for p in range(4)]
        for t in producers:
            t.start()
        for t in producers:
            t.join()
        for _ in producers:
            assert finished.acquire(timeout=30.0)
        assert len(ran) == 4 * count
        for p in range(4):
            assert [n for q, n in ran if q == p] == list(range(count))
        assert threads_seen == {f"{reactor.name}-io"}


def test_close_from_callbacks_and_blocking_call_on_io_thread(
        sims: List[AfterburnerSim]) -> None:
    with Reactor() as reactor:
        a, b, c = (_heater(sim, reactor) for sim in sims[10:13])
        connect_all([a, b, c], timeout=30.0)
        results: Dict[str, Any] = {}
        done = threading.Event()

        def closer(event: StatusChanged) -> None:
            results["b"] = b.close()  # another client's close from a callback
            results["a"] = a.close()  # its own, from its own callback
            done.set()
        a.subscribe(closer, StatusChanged)
        sims[10].set(TempDesired=24)
        assert done.wait(10.0)
        assert results == {"a": True, "b": True} and a.closed and b.closed

        # a blocking call made on the shared I/O thread raises at once instead of deadlocking
        session = c._session
        assert session is not None
        caught: List[BaseException] = []
        raised = threading.Event()

        def on_io() -> None:
            try:
                c.read_status(timeout=1.0)
            except RuntimeError as exc:
                caught.append(exc)
            raised.set()
        session.call_soon_threadsafe(on_io)
        assert raised.wait(10.0)
        assert caught and "I/O thread" in str(caught[0])
        assert c.read_status().run_state is not None


def test_silent_device_does_not_hold_up_the_others(sims: List[AfterburnerSim]) -> None:
    """A device that accepts TCP but never answers the hand-shake: its open waits out its
    own timeout while another client's open (which queued behind it) and a connected client's
    I/O go on."""
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(4)
    try:
        with Reactor(connect_patience=0.05) as reactor:
            live = _heater(sims[20], reactor).connect()
            dead = AfterburnerClient(f"127.0.0.1:{silent.getsockname()[1]}", reactor=reactor,
                                     connect_timeout=60.0, reconnect=None)
            dead.start_connect()
            late = _heater(sims[21], reactor)
            assert late.connect(timeout=30.0) is late  # got a connect thread of its own
            assert live.read_status().run_state is not None
            assert not dead.connected
            assert dead.close(timeout=5.0) is True  # interrupts the hand-shake
            with pytest.raises(ClientClosedError):
                dead.wait_connected(timeout=1.0)
    finally:
        silent.close()


def test_connect_all_reports_failures() -> None:
    refused = socket.socket()
    refused.bind(("127.0.0.1", 0))
    port = refused.getsockname()[1]
    refused.close()  # nothing listens there now
    with Reactor() as reactor:
        client = AfterburnerClient(f"127.0.0.1:{port}", reactor=reactor, reconnect=None)
        result = connect_all([client], timeout=10.0, return_exceptions=True)
        assert isinstance(result[0], pyburnerkit.DeviceConnectionError)
        assert client.closed
        other = AfterburnerClient(f"127.0.0.1:{port}", reactor=reactor, reconnect=None)
        with pytest.raises(pyburnerkit.DeviceConnectionError):
            connect_all([other], timeout=10.0)


def test_connect_all_times_out_with_its_shared_deadline() -> None:
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(4)
    try:
        # default threads per client: connect_all works without a reactor too
        client = AfterburnerClient(f"127.0.0.1:{silent.getsockname()[1]}",
                                   connect_timeout=60.0)
        with pytest.raises(ConnectTimeoutError):
            connect_all([client], timeout=0.2)
        assert client.closed
    finally:
        silent.close()


def test_bad_reactor_arguments_are_refused() -> None:
    with pytest.raises(ConfigurationError, match="event_threads"):
        Reactor(event_threads=0)
    with pytest.raises(ConfigurationError, match="connect_patience"):
        Reactor(connect_patience=-1)
    with pytest.raises(ConfigurationError, match="reactor"):
        AfterburnerClient("127.0.0.1:1", reactor="shared")  # type: ignore[arg-type]


def test_default_reactor_is_shared_and_replaced_after_close(
        sims: List[AfterburnerSim]) -> None:
    first = pyburnerkit.default_reactor()
    assert pyburnerkit.default_reactor() is first
    client = _heater(sims[30], first).connect()
    assert client.io_thread is first.io_thread
    assert first.close() is True and client.closed
    second = pyburnerkit.default_reactor()
    assert second is not first
    second.close()
