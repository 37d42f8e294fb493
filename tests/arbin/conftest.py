"""Fixtures for the Arbin tests: a real CTI simulator on 127.0.0.1 and clients that close."""

from __future__ import annotations

import socket
from typing import Any, Iterator, List

import pytest

from pyburnerkit.arbin import codec
from pyburnerkit.arbin.client import ChannelClient, CyclerClient
from pyburnerkit.arbin.sim import ArbinSim
from pyburnerkit.types import Reconnect

USER, SECRET = "lab-user", "s3cret-Pa55"
FAST = Reconnect(min_delay=0.05, max_delay=0.3, jitter=0.0)


class ManualClock:
    """A clock the test moves by hand (the simulator's cell model reads it lazily)."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def sim(clock: ManualClock) -> Iterator[ArbinSim]:
    server = ArbinSim(16, username=USER, password=SECRET, clock=clock).start()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def clients() -> Iterator[List[Any]]:
    made: List[Any] = []
    yield made
    for client in made:
        client.close()


@pytest.fixture
def cycler(sim: ArbinSim, clients: List[Any]) -> CyclerClient:
    client = CyclerClient(sim.endpoint, username=USER, password=SECRET, timeout=5.0,
                          connect_timeout=5.0, reconnect=FAST)
    clients.append(client)
    return client.connect()


@pytest.fixture
def channel(sim: ArbinSim, clients: List[Any]) -> ChannelClient:
    client = ChannelClient(sim.endpoint, channel=3, allow_writes=True, username=USER,
                           password=SECRET, timeout=5.0, connect_timeout=5.0, reconnect=FAST)
    clients.append(client)
    return client.connect()


class RawCti:
    """A bare lock-step CTI socket written with the codec (no session), for simulator tests."""

    def __init__(self, port: int, username: str = USER, password: str = SECRET,
                 login: bool = True) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=5.0)
        self.reader = codec.FrameReader(feedback=True)
        if login:
            try:
                info = self.ask(codec.LoginRequest(username, password)).info
            except BaseException:
                self.sock.close()
                raise
            assert info.result.ok, info.result

    def ask(self, message: Any) -> Any:
        self.sock.sendall(codec.encode_request(message))
        while True:
            data = self.sock.recv(1 << 20)
            if not data:
                raise ConnectionResetError("closed")
            frames = self.reader.feed(data)
            if frames:
                assert len(frames) == 1
                return codec.decode_feedback(frames[0])

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> "RawCti":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
