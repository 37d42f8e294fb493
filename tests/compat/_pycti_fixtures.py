"""Shared pieces of the pycti ports: pycti's CI credentials, a spoofer and a raw TCP client.

pycti's own tests start the spoofer at import time on fixed ports (8956, 5678, 5679); the
ports here come from the OS (port 0) so parallel runs never collide, and everything started
is stopped by the fixture.
"""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any, Iterator

import pytest

from pyburnerkit.arbin import codec
from pyburnerkit.arbin.compat import ArbinSpoofer

CAPTURES = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "arbin" / "captures"
FLOAT_TOLERANCE = 0.0001  # pycti's helper_test_utils.Constants.FLOAT_TOLERANCE


def captures() -> Path:
    """The real CTI frames; missing ones fail the module (never a skip)."""
    if not any(CAPTURES.glob("*.bin")):
        raise FileNotFoundError(f"the Arbin CTI captures are missing from {CAPTURES}")
    return CAPTURES


@pytest.fixture
def pycti_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """pycti's CI: credentials in the environment and no .env in the working directory."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("ARBIN_CTI_USERNAME", "username")
    monkeypatch.setenv("ARBIN_CTI_PASSWORD", "password")


@pytest.fixture
def spoofer() -> Iterator[ArbinSpoofer]:
    server = ArbinSpoofer({"ip": "127.0.0.1", "port": 0, "num_channels": 16})
    server.start()
    try:
        yield server
    finally:
        server.stop()


class TcpClient:
    """pycti's test helper ``TcpClient`` (send one frame, read one whole frame back)."""

    def __init__(self, config: Any) -> None:
        self.sock = socket.create_connection((config["ip"], config["port"]), timeout=5.0)
        self.reader = codec.FrameReader(feedback=True)

    def send_recv_msg(self, tx_msg: bytes) -> bytes:
        self.sock.sendall(tx_msg)
        while True:
            data = self.sock.recv(1 << 16)
            if not data:
                raise ConnectionResetError("the spoofer closed the connection")
            frames = self.reader.feed(data)
            if frames:
                return frames[0]

    def close(self) -> None:
        self.sock.close()
