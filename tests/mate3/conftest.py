"""Fixtures for the Mate3 tests: a real simulator on 127.0.0.1 and clients that always close."""

from __future__ import annotations

from typing import Any, Callable, Iterator, List

import pytest

from pyburnerkit.mate3.client import Mate3Client
from pyburnerkit.mate3.sim import Mate3Sim

from ..helpers import wait_until


@pytest.fixture
def sim() -> Iterator[Mate3Sim]:
    """The chinezbrun Mate3s served over real Modbus TCP on a free port."""
    server = Mate3Sim(seed=1).start()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def make_sim() -> Iterator[Callable[..., Mate3Sim]]:
    made: List[Mate3Sim] = []

    def factory(**options: Any) -> Mate3Sim:
        server = Mate3Sim(**options).start()
        made.append(server)
        return server

    try:
        yield factory
    finally:
        for server in made:
            server.close()


@pytest.fixture
def make_client() -> Iterator[Callable[..., Mate3Client]]:
    """Clients for a simulator (fast timings by default); every one is closed at teardown."""
    made: List[Mate3Client] = []

    def factory(target: Any, *, connect: bool = True, **options: Any) -> Mate3Client:
        endpoint = target.endpoint if isinstance(target, Mate3Sim) else target
        options.setdefault("min_poll_interval", 0)
        options.setdefault("request_timeout", 2.0)
        options.setdefault("timeout", 10.0)
        client = Mate3Client(endpoint, **options)
        made.append(client)
        if connect:
            client.connect()
        return client

    try:
        yield factory
    finally:
        for client in made:
            client.close()


def eventually(predicate: Callable[[], Any], timeout: float = 10.0) -> Any:
    """Wait (bounded) for a condition on something that has no event to wait on (the
    simulator's connection count); fails the test when it never holds."""
    return wait_until(predicate, timeout, "the condition")
