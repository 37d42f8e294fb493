"""How the client reads WebSocket frames off the socket, against a scripted controller peer.

The client reads ahead (one large read takes a whole update's frames) and then handles every
whole frame that read brought before it waits again. These tests deliver the same frames in
the shapes TCP may give them: all in one segment, a frame and a piece of the next, one byte
at a time, and a frame that stops half-way. A frame left in the read-ahead buffer would never
be handled (no readable event comes for bytes already read), so "all in one segment" hangs a
client that forgets to look there.
"""

from __future__ import annotations

import json
import socket
import threading
from typing import Any, Callable, Iterator, List, Optional

import pytest

from pyburnerkit import ConnectionState, ConnectionStateChanged, Reconnect
from pyburnerkit._core.wsframe import OP_TEXT, encode_frame
from pyburnerkit._core.wsserver import accept_key
from pyburnerkit.afterburner import AfterburnerClient

from ..helpers import Recorder

MAIN = {"RunState": 0, "TempCurrent": 18.5, "TempDesired": 21}
EXTENDED = {"ThermostatMethod": 0, "CyclicOff": 0}
SYSTEM = {"DateTime": "15/1/2026 07:30:00", "SysUpTime": 5, "SysVer": "V3.2.1"}


def text_frame(obj: Any) -> bytes:
    return encode_frame(OP_TEXT, json.dumps(obj).encode("utf-8"))


DUMP = text_frame(MAIN) + text_frame(EXTENDED) + text_frame(SYSTEM)


class ScriptedController:
    """A TCP peer that completes the WebSocket hand-shake, then runs ``script(conn)`` on its
    own thread and reads (and keeps) whatever the client sends until the client hangs up."""

    def __init__(self, script: Callable[[socket.socket], None]) -> None:
        self.script = script
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.received = bytearray()
        self.error: Optional[BaseException] = None
        self.script_done = threading.Event()
        self.thread = threading.Thread(target=self._serve, name="test-scripted-controller")
        self.thread.start()

    def _serve(self) -> None:
        try:
            self.listener.settimeout(10)
            conn, _ = self.listener.accept()
            with conn:
                conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                conn.settimeout(10)
                request = b""
                while b"\r\n\r\n" not in request:
                    chunk = conn.recv(4096)
                    if not chunk:
                        return
                    request += chunk
                key = next(line.split(b":", 1)[1].strip().decode()
                           for line in request.split(b"\r\n")
                           if line.lower().startswith(b"sec-websocket-key:"))
                conn.sendall(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                             b"Connection: Upgrade\r\nSec-WebSocket-Accept: "
                             + accept_key(key).encode() + b"\r\n\r\n")
                self.script(conn)
                self.script_done.set()
                while True:
                    chunk = conn.recv(4096)
                    if not chunk:
                        return
                    self.received += chunk
        except OSError as exc:  # the client hung up mid-script: fine, its test decides
            if not self.script_done.is_set():
                self.error = exc
        except BaseException as exc:  # pragma: no cover - a bug in the script itself
            self.error = exc

    def close(self) -> None:
        self.listener.close()
        self.thread.join(10)
        assert not self.thread.is_alive()


@pytest.fixture
def controller() -> Iterator[Callable[[Callable[[socket.socket], None]], ScriptedController]]:
    made: List[ScriptedController] = []

    def make(script: Callable[[socket.socket], None]) -> ScriptedController:
        made.append(ScriptedController(script))
        return made[-1]

    yield make
    for peer in made:
        peer.close()


def client_for(peer: ScriptedController, **options: Any) -> AfterburnerClient:
    # A long refresh grace: the client must get its state from what the peer pushes.
    options.setdefault("refresh_grace", 30.0)
    return AfterburnerClient(f"127.0.0.1:{peer.port}", connect_timeout=5, **options)


def test_a_whole_dump_in_one_segment_is_handled_without_more_data(controller: Any) -> None:
    peer = controller(lambda conn: conn.sendall(DUMP))
    with client_for(peer) as heater:
        heater.connect()
        assert heater.status.temperature_c == 18.5
        assert heater.system_info.firmware_version == "V3.2.1"
    assert peer.error is None


def test_frames_and_a_piece_of_the_next_then_the_rest(controller: Any) -> None:
    cut = len(text_frame(MAIN)) + 3  # the main frame and 3 bytes of the extended one

    def script(conn: socket.socket) -> None:
        conn.sendall(DUMP[:cut])
        conn.sendall(DUMP[cut:])

    peer = controller(script)
    with client_for(peer) as heater:
        heater.connect()
        assert heater.status.thermostat_method is not None
    assert peer.error is None


def test_a_dump_one_byte_per_segment(controller: Any) -> None:
    gap = threading.Event()

    def script(conn: socket.socket) -> None:
        for i in range(len(DUMP)):
            conn.sendall(DUMP[i:i + 1])
            gap.wait(0.001)  # separate segments, so the client reads partial headers

    peer = controller(script)
    with client_for(peer) as heater:
        heater.connect()
        assert heater.system_info.uptime_s == 5
    assert peer.error is None


def test_a_frame_that_stops_half_way_drops_the_link_within_the_bound(controller: Any) -> None:
    release = threading.Event()
    head = text_frame({"TempCurrent": 19.0})

    def script(conn: socket.socket) -> None:
        conn.sendall(DUMP)
        conn.sendall(head[:len(head) // 2])  # then nothing more: the TCP link stays up
        release.wait(20)

    peer = controller(script)
    states = Recorder()
    with client_for(peer, liveness_timeout=1.0, liveness_interval=30.0,
                    reconnect=Reconnect(30.0, 30.0, jitter=0)) as heater:
        heater.subscribe(states, ConnectionStateChanged)
        heater.connect()
        try:
            lost = states.wait_for(lambda e: e.state is not ConnectionState.CONNECTED
                                   and e.error is not None, timeout=10)
            assert "stalled" in str(lost.error)
            assert heater.io_thread.is_alive()
        finally:
            release.set()
