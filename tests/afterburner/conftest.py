from __future__ import annotations

import json
import socket
from typing import Any, Dict, Iterator, List

import pytest
import websocket

from pyburnerkit.afterburner import AfterburnerClient, AfterburnerSim


@pytest.fixture
def ipv6_loopback() -> str:
    """``::1``. A host without an IPv6 loopback fails these tests rather than skipping them:
    every Debian kernel has one unless IPv6 was switched off (``net.ipv6.conf.lo``)."""
    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
    except OSError as exc:
        pytest.fail(f"no IPv6 loopback here ({exc}); these tests need ::1 on lo")
    return "::1"


@pytest.fixture
def sim() -> Iterator[AfterburnerSim]:
    """A simulator on a real loopback port that answers right after each command."""
    server = AfterburnerSim(tick=0, seed=3).start()
    yield server
    server.close()


@pytest.fixture
def client(sim: AfterburnerSim) -> Iterator[AfterburnerClient]:
    with AfterburnerClient(f"127.0.0.1:{sim.port}", timeout=5.0, refresh_grace=0.2,
                           allow_writes=True) as heater:
        yield heater


class RawSocket:
    """A plain websocket-client connection, to see exactly what the simulated firmware sends."""

    def __init__(self, port: int) -> None:
        self.ws = websocket.create_connection(f"ws://127.0.0.1:{port}/", timeout=5)
        self.frames: List[Dict[str, Any]] = []

    def send(self, obj: Any) -> None:
        self.ws.send(obj if isinstance(obj, str) else json.dumps(obj))

    def recv(self, timeout: float = 5.0) -> Dict[str, Any]:
        self.ws.settimeout(timeout)
        frame = json.loads(self.ws.recv())
        self.frames.append(frame)
        return frame

    def recv_until(self, key: str, timeout: float = 5.0) -> List[Dict[str, Any]]:
        """Frames up to and including the first one holding ``key``."""
        got = []
        while True:
            frame = self.recv(timeout)
            got.append(frame)
            if key in frame:
                return got

    def close(self) -> None:
        self.ws.close()


@pytest.fixture
def raw(sim: AfterburnerSim) -> Iterator[Any]:
    opened: List[RawSocket] = []

    def make() -> RawSocket:
        conn = RawSocket(sim.port)
        opened.append(conn)
        return conn

    yield make
    for conn in opened:
        conn.close()
