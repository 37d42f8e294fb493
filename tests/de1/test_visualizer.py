"""Visualizer upload against a local HTTP server on 127.0.0.1 (never the real site): the POST
pyDE1 makes (multipart ``file``, HTTP Basic), the answer's id, refusals, and credentials kept
out of logs, reprs and errors."""

from __future__ import annotations

import base64
import json
import logging
import sys
import threading
from email.parser import BytesParser
from email.policy import HTTP
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Dict, Iterator, List, Tuple

import pytest

from pyburnerkit.de1.models import ShotRecord
from pyburnerkit.de1.visualizer import (ENV_PASSWORD, ENV_USERNAME, VisualizerUpload,
                                        VisualizerUploader)
from pyburnerkit.errors import (AuthenticationError, ConfigurationError, DeviceError,
                                DeviceTimeoutError)

USER = "barista@example.com"
PASSWORD = "s3cret-Token-123"


class FakeVisualizer:
    """A tiny upload endpoint: records each request; answers what the test set."""

    def __init__(self) -> None:
        self.requests: List[Dict[str, Any]] = []
        self.answer: Tuple[int, bytes] = (200, b'{"id": "5e1f"}')
        self.hold = threading.Event()
        self.hold.set()  # cleared: the handler waits (a silent server) until set again
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                length = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(length)
                outer.requests.append({"path": self.path, "headers": dict(self.headers),
                                       "body": body})
                outer.hold.wait(10)
                status, reply = outer.answer
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, *args: Any) -> None:
                pass

        class Server(ThreadingHTTPServer):
            def handle_error(self, request: Any, client_address: Any) -> None:
                # the answer to a client that gave up (the silent-server test) finds the
                # connection closed: expected there, not worth socketserver's traceback
                if not isinstance(sys.exc_info()[1], (BrokenPipeError, ConnectionResetError)):
                    super().handle_error(request, client_address)

        self.server = Server(("127.0.0.1", 0), Handler)
        # server_close() joins the handler threads, so a request the test gave up on (a
        # silent server) has closed its socket before the fixture's leak check looks
        self.server.daemon_threads = False
        self.server.block_on_close = True
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}/api/shots/upload"
        # a short poll interval only makes shutdown() return sooner
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,),
                                       name="fake-visualizer")

    def start(self) -> "FakeVisualizer":
        self.thread.start()
        return self

    def close(self) -> None:
        self.hold.set()
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)


@pytest.fixture
def server() -> Iterator[FakeVisualizer]:
    fake = FakeVisualizer().start()
    try:
        yield fake
    finally:
        fake.close()


def shot(duration: float = 25.0) -> ShotRecord:
    n = 5
    times = tuple(duration * i / (n - 1) for i in range(n))
    return ShotRecord(start_time=1_700_000_000.0, profile={"title": "Blooming"},
                      elapsed_s=times, pressure_bar=(0, 2, 9, 9, 3), flow_ml_s=(0, 4, 2, 2, 1),
                      weight_g=(0, 1, 10, 30, 36), mix_temp_c=(90,) * n,
                      head_temp_c=(91,) * n, set_pressure_bar=(0, 0, 9, 9, 9),
                      set_flow_ml_s=(4, 4, 0, 0, 0), set_head_temp_c=(92,) * n,
                      frame=(0, 0, 1, 1, 1), final_weight_g=36.2, stop_reason="weight",
                      volume_preinfuse_ml=8.0, volume_pour_ml=30.0,
                      volume_by_frames=(8.0, 30.0) + (0.0,) * 18,
                      volume_ml=(0, 4, 12, 25, 38))


def uploader(server: FakeVisualizer, **kw: Any) -> VisualizerUploader:
    kw.setdefault("username", USER)
    kw.setdefault("password", PASSWORD)
    return VisualizerUploader(server.url, environ={}, **kw)


def test_upload_posts_the_shot_as_pyde1_does(server: FakeVisualizer) -> None:
    result = uploader(server).upload(shot())
    assert result == VisualizerUpload("5e1f", f"http://127.0.0.1:{server.port}/shots/5e1f", 200)
    (request,) = server.requests
    assert request["path"] == "/api/shots/upload"
    auth = request["headers"]["Authorization"]
    assert auth == "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    message = BytesParser(policy=HTTP).parsebytes(
        b"Content-Type: " + request["headers"]["Content-Type"].encode() + b"\r\n\r\n"
        + request["body"])
    (part,) = list(message.iter_parts())
    assert part.get_param("name", header="content-disposition") == "file"
    assert part.get_filename() == "1700000000.json"
    uploaded = json.loads(part.get_payload(decode=True))
    assert uploaded["profile"]["title"] == "Blooming"
    assert uploaded["totals"]["weight"][-1] == "36.00"
    assert uploaded["totals"]["water_dispensed"][-1] == "38.00"
    assert uploaded["meta"]["out"] == "36.2"


def test_credentials_come_from_the_environment(server: FakeVisualizer) -> None:
    env = {ENV_USERNAME: USER, ENV_PASSWORD: PASSWORD,
           "PYBURNERKIT_VISUALIZER_URL": server.url}
    up = VisualizerUploader.from_env(environ=env)
    assert up.upload(b'{"version": "2"}', filename="x.json").id == "5e1f"
    assert server.requests[-1]["headers"]["Authorization"].startswith("Basic ")


def test_credentials_come_from_a_config_file(server: FakeVisualizer, tmp_path: Path) -> None:
    path = tmp_path / "visualizer.toml"
    path.write_text(f'[visualizer]\nurl = "{server.url}"\nUSERNAME = "{USER}"\n'
                    f'PASSWORD = "{PASSWORD}"\nMIN_FLOW_TIME = 10\n', encoding="utf-8")
    up = VisualizerUploader.from_file(str(path), environ={})
    assert up.min_flow_time_s == 10.0
    assert up.upload(shot()).id == "5e1f"
    with pytest.raises(ConfigurationError, match="flowed 4.0 s: the limit is at least 10 s"):
        up.upload(shot(duration=4.0))
    assert len(server.requests) == 1


def test_no_credentials_sends_nothing(server: FakeVisualizer) -> None:
    up = VisualizerUploader(server.url, environ={})
    with pytest.raises(ConfigurationError, match=ENV_PASSWORD):
        up.upload(shot())
    assert server.requests == []


def test_refused_credentials(server: FakeVisualizer, caplog: pytest.LogCaptureFixture) -> None:
    server.answer = (401, f'{{"error": "bad password {PASSWORD} for {USER}"}}'.encode())
    up = uploader(server)
    with caplog.at_level(logging.DEBUG):
        with pytest.raises(AuthenticationError, match="HTTP 401") as info:
            up.upload(shot())
    assert PASSWORD not in str(info.value) and USER not in str(info.value)
    assert PASSWORD not in caplog.text and PASSWORD not in repr(up)
    assert USER not in repr(up) and "credentials set" in repr(up)


def test_a_server_error_is_scrubbed_and_not_retried(server: FakeVisualizer,
                                                    caplog: pytest.LogCaptureFixture) -> None:
    server.answer = (500, f"crash while handling {USER}:{PASSWORD}".encode())
    with caplog.at_level(logging.DEBUG):
        with pytest.raises(DeviceError, match="HTTP 500") as info:
            uploader(server).upload(shot())
    assert info.value.code == 500
    assert PASSWORD not in str(info.value) and PASSWORD not in (info.value.detail or "")
    assert "***" in str(info.value)
    assert PASSWORD not in caplog.text
    assert len(server.requests) == 1  # a failed POST is never repeated


def test_an_answer_without_id_is_an_error(server: FakeVisualizer) -> None:
    server.answer = (200, b"<html>ok</html>")
    with pytest.raises(DeviceError, match="without a shot id"):
        uploader(server).upload(shot())


def test_a_silent_server_times_out(server: FakeVisualizer) -> None:
    server.hold.clear()
    with pytest.raises(DeviceTimeoutError, match="not retried"):
        uploader(server, timeout=0.5).upload(shot())
    server.hold.set()
    assert len(server.requests) == 1


def test_unsafe_urls_are_refused_without_repeating_secrets() -> None:
    with pytest.raises(ConfigurationError) as info:
        VisualizerUploader(f"https://{USER}:{PASSWORD}@visualizer.coffee/api/shots/upload")
    assert PASSWORD not in str(info.value)
    with pytest.raises(ConfigurationError, match="plain HTTP to visualizer.example"):
        VisualizerUploader("http://visualizer.example/api/shots/upload", environ={})
    VisualizerUploader("http://visualizer.example/up", allow_insecure=True, environ={})
    with pytest.raises(ConfigurationError, match="http"):
        VisualizerUploader("ftp://example.com/x", environ={})
    with pytest.raises(ConfigurationError, match="unknown Visualizer setting 'token'"):
        VisualizerUploader.from_config({"token": PASSWORD})
