"""Fixtures for pyDE1's HTTP API: a simulated DE1 and Skale II on one bench (the Skale weighs
what the DE1 pours), their real clients, and :class:`Pyde1App` served by waitress on a free
loopback port, driven with ``requests`` over real HTTP."""

from __future__ import annotations

import socket
import threading
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple

import pytest
import requests
import waitress

from pyburnerkit.de1.client import DE1Client
from pyburnerkit.rigs.espresso import DE1Rig
from pyburnerkit.scale.client import SkaleClient
from pyburnerkit.service.pyde1_http import Pyde1App

#: The simulated world runs this many times faster than real time.
SPEED = 10.0


class Server:
    """One waitress server for one app on 127.0.0.1:<free port>, run on its own thread.

    :meth:`close` closes the listening socket and every connection on the server's own loop
    thread (a thunk pulled through waitress's trigger), joins that thread, then stops the
    worker threads: no socket outlives the test."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.server: Any = waitress.create_server(app, host="127.0.0.1", port=0, threads=4,
                                                  clear_untrusted_proxy_headers=True)
        self.port = int(self.server.effective_port)
        self.url = f"http://127.0.0.1:{self.port}"
        self.thread = threading.Thread(target=self.server.run, name="test-waitress",
                                       daemon=True)
        self.thread.start()

    def close(self) -> None:
        from waitress import wasyncore
        server = self.server
        server.trigger.pull_trigger(lambda: wasyncore.close_all(server._map))
        self.thread.join(10)
        assert not self.thread.is_alive(), "waitress did not stop"
        server.task_dispatcher.shutdown()

    # requests helpers: one connection per call (closed at once), JSON bodies as text so a
    # test controls the exact bytes
    def get(self, path: str) -> requests.Response:
        return requests.get(self.url + path, timeout=30)

    def patch(self, path: str, body: Any = None, *,
              raw: Optional[bytes] = None) -> requests.Response:
        data = raw if raw is not None else (None if body is None else _dumps(body))
        return requests.patch(self.url + path, data=data, timeout=30)

    def put(self, path: str, body: Any = None, *,
            raw: Optional[bytes] = None) -> requests.Response:
        data = raw if raw is not None else (None if body is None else _dumps(body))
        return requests.put(self.url + path, data=data, timeout=30)

    def raw_request(self, request: bytes) -> Tuple[int, Dict[str, str], bytes]:
        """Send bytes as they are (e.g. without Content-Length); returns status, headers (lower
        case names) and body of the answer. The connection is closed by us afterwards."""
        with socket.create_connection(("127.0.0.1", self.port), timeout=30) as sock:
            sock.sendall(request)
            chunks: List[bytes] = []
            while True:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                chunks.append(chunk)
        head, _, body = b"".join(chunks).partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        return status, headers, body


def _dumps(body: Any) -> bytes:
    import json
    return body if isinstance(body, bytes) else json.dumps(body).encode()


class Bench:
    """The module's simulated rig and its two clients (DE1 with every permission, Skale with
    writes), connected once for the whole module."""

    def __init__(self) -> None:
        self.rig = DE1Rig(speed=SPEED).start(listen=False)
        self.de1 = DE1Client(self.rig.de1.address, transport=self.rig.transport(),
                             allow_writes=True, allow_remote_start=True)
        assert self.rig.skale is not None
        self.scale = SkaleClient(self.rig.skale.address, transport=self.rig.transport(),
                                 time_scale=SPEED, allow_writes=True)
        self.de1.connect()
        self.scale.connect()

    def close(self) -> None:
        self.de1.close()
        self.scale.close()
        self.rig.close()


@pytest.fixture(scope="module")
def bench() -> Iterator[Bench]:
    b = Bench()
    try:
        yield b
    finally:
        b.close()


ServeFactory = Callable[..., Server]


@pytest.fixture
def library_path(tmp_path: Path) -> Path:
    """The test's profile library (pyDE1's database), empty at the start."""
    return tmp_path / "pyde1-profiles.db"


@pytest.fixture
def serve(library_path: Path) -> Iterator[ServeFactory]:
    """``serve(de1, scale, allow_writes=...)`` -> a started :class:`Server` around a new
    :class:`Pyde1App` (its profile library in the test's ``library_path`` unless given); both
    are closed at the end of the test."""
    made: List[Tuple[Pyde1App, Server]] = []

    def factory(de1: Any, scale: Any, **kw: Any) -> Server:
        kw.setdefault("library", library_path)
        app = Pyde1App(de1, scale, **kw)
        server = Server(app)
        made.append((app, server))
        return server

    yield factory
    for app, server in reversed(made):
        server.close()
        app.close()


@pytest.fixture
def api(bench: Bench, serve: ServeFactory) -> Server:
    """The API over the module's DE1 and Skale, writes allowed."""
    return serve(bench.de1, bench.scale, allow_writes=True)


@pytest.fixture
def readonly_api(bench: Bench, serve: ServeFactory) -> Server:
    """The API over the same clients, writes not allowed."""
    return serve(bench.de1, bench.scale, allow_writes=False)
