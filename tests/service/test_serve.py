"""``pyburnerkit serve`` as a real process, systemd's notify protocol over a real unix datagram
socket, the service config file, the log file reopened for logrotate, and pyDE1's routes
served beside the generic API."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path
from typing import Iterator, List

import pytest
import requests

from pyburnerkit.errors import ConfigurationError
from pyburnerkit.service import Notifier, Service, load_service_config

from .conftest import API, connected_with_fields, make_service, wait_hub

HEATER = [dict(family="afterburner", url="sim://?tick=0.05&speed=30&seed=3", id="heater")]


@pytest.fixture
def notify_socket(tmp_path: Path) -> Iterator[socket.socket]:
    """A unix datagram socket standing where systemd's would be."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(tmp_path / "notify"))
    sock.settimeout(30)
    try:
        yield sock
    finally:
        sock.close()


def _messages_until(sock: socket.socket, word: str) -> List[str]:
    seen: List[str] = []
    while not any(word in m for m in seen):
        seen.append(sock.recv(4096).decode())
    return seen


def test_systemd_ready_watchdog_and_stopping(notify_socket: socket.socket,
                                             services: List[Service]) -> None:
    path = notify_socket.getsockname()
    notifier = Notifier({"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "100000"})
    assert notifier.enabled and notifier.watchdog_interval == pytest.approx(0.05)
    service = make_service(HEATER, notifier=notifier)
    ready = _messages_until(notify_socket, "READY=1")
    assert ready[-1].startswith("READY=1\nSTATUS=serving 1 devices on http://127.0.0.1:")
    assert "WATCHDOG=1" in _messages_until(notify_socket, "WATCHDOG=1")[-1]
    assert service.close(timeout=15.0)
    assert any(m.startswith("STOPPING=1") for m in _messages_until(notify_socket,
                                                                   "STOPPING=1"))
    # outside systemd nothing is sent and nothing fails
    assert Notifier({}).notify("READY=1") is False
    # a watchdog for another process is not ours to feed
    assert Notifier({"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "100000",
                     "WATCHDOG_PID": "1"}).watchdog_interval is None


def test_serve_demo_as_a_process(notify_socket: socket.socket, tmp_path: Path) -> None:
    env = dict(os.environ, NOTIFY_SOCKET=notify_socket.getsockname(),
               PYTHONUNBUFFERED="1")
    proc = subprocess.Popen([sys.executable, "-m", "pyburnerkit.cli.main", "serve", "--demo"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
                            cwd=str(tmp_path), text=True)
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline().strip()
        assert first.startswith("HTTP=http://127.0.0.1:"), first
        url = first[len("HTTP="):]
        assert "READY=1" in _messages_until(notify_socket, "READY=1")[-1]
        devices = requests.get(f"{url}{API}/devices", timeout=10).json()["devices"]
        families = {d["family"] for d in devices}
        assert {"afterburner", "arbin", "mate3", "victron", "de1", "scale"} <= families
        assert all(not d["writes_allowed"] for d in devices)  # the demo is read-only
        proc.send_signal(signal.SIGTERM)
        # bounded: the service's shutdown timeout (10 s) plus the interpreter's exit
        assert proc.wait(timeout=30) == 0
        assert "STOPPING=1" in _messages_until(notify_socket, "STOPPING=1")[-1]
        err = proc.stderr.read() if proc.stderr else ""
        assert "serve: stopped" in err and "did not stop" not in err, err
        assert "Traceback" not in err
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()


def test_the_config_file_builds_a_service_without_sinks(tmp_path: Path,
                                                        services: List[Service]) -> None:
    token_file = tmp_path / "token"
    token_file.write_text("file-token-123\n")
    config = tmp_path / "service.toml"
    config.write_text(f"""
[[devices]]
family = "afterburner"
url = "sim://?tick=0.05&speed=30&seed=4"
id = "cabin"
[devices.options]
allow_writes = true

[http]
bind = "127.0.0.1:0"
token_file = "token"

[service]
request_timeout = 2
log_file = "service.log"
""")
    cfg = load_service_config(str(config))
    assert cfg.http.port == 0 and cfg.http.token == "file-token-123"
    assert "file-token-123" not in repr(cfg) and cfg.recorder.sinks == []
    service = Service.from_config(cfg).start()
    services.append(service)
    assert service.recorder.sinks == []  # nothing recorded, everything served
    wait_hub(service, "cabin", connected_with_fields)
    auth = {"Authorization": "Bearer file-token-123"}
    reply = requests.patch(f"{service.url}{API}/devices/cabin", json={"TempDesired": 20},
                           headers=auth, timeout=30)
    assert reply.status_code == 200 and reply.json()["confirmed"] == {"TempDesired": 20}

    # logrotate moves the file away; SIGHUP's action opens a new one
    log_path = tmp_path / "service.log"
    assert "service listening on" in log_path.read_text()
    log_path.rename(tmp_path / "service.log.1")
    service.reopen_logs()
    assert "log file reopened" in log_path.read_text()


def test_the_profile_library_is_where_the_config_says(tmp_path: Path,
                                                      services: List[Service]) -> None:
    """pyDE1's profile library goes to ``[service] profile_db`` (relative to the config, as
    every path of it), not to whatever directory the service happened to start in."""
    config = tmp_path / "service.toml"
    config.write_text("""
[[devices]]
family = "de1"
url = "sim://"
id = "de1"
[devices.options]
allow_writes = true

[http]
bind = "127.0.0.1:0"

[service]
profile_db = "state/profiles.db"
""")
    (tmp_path / "state").mkdir()
    cfg = load_service_config(str(config))
    assert cfg.service.profile_db == str(tmp_path / "state" / "profiles.db")
    service = Service.from_config(cfg).start()
    services.append(service)
    assert service.pyde1_app.library.path == str(tmp_path / "state" / "profiles.db")
    body = (b'{"version": "2", "title": "t", "author": "a", "notes": "", "beverage_type": '
            b'"espresso", "steps": [{"name": "s", "temperature": 90, "sensor": "coffee", '
            b'"pump": "pressure", "transition": "fast", "pressure": 9, "seconds": 25}], '
            b'"tank_temperature": 0, "target_weight": 36, "target_volume": 0, '
            b'"target_volume_count_start": 0, "legacy_profile_type": "", "type": "advanced", '
            b'"lang": "en", "hidden": false, "reference_file": "", "changes_since_last_espresso"'
            b': ""}')
    stored = requests.put(f"{service.url}/de1/profile/store", data=body, timeout=30)
    assert stored.status_code == 200, stored.text
    assert (tmp_path / "state" / "profiles.db").stat().st_size > 0


@pytest.mark.parametrize("text, message", [
    ('[http]\nbind = "0.0.0.0:1234"\n', "bearer token"),
    ('[http]\nbind = "127.0.0.1:99999"\n', "0..65535"),
    ('[http]\nbind = "127.0.0.1:0"\nwho = 1\n', "unknown key(s) who"),
    ('[service]\nrequest_timeout = 0\n', "request_timeout"),
    ('[mqtt]\nport = 1883\n', "host"),
    ('[http]\ntoken_env = "NOT_SET_ANYWHERE_XYZ"\n', "NOT_SET_ANYWHERE_XYZ"),
])
def test_bad_service_configs_are_refused(tmp_path: Path, text: str, message: str) -> None:
    config = tmp_path / "bad.toml"
    config.write_text(text)
    with pytest.raises(ConfigurationError, match=message.replace("(", r"\(")
                       .replace(")", r"\)")):
        load_service_config(str(config), environ={})


def test_insecure_or_a_token_from_the_environment_allow_any_address(tmp_path: Path) -> None:
    config = tmp_path / "open.toml"
    config.write_text('[http]\nbind = "0.0.0.0:1234"\ninsecure = true\n')
    assert load_service_config(str(config), environ={}).http.insecure
    config.write_text('[http]\nbind = "0.0.0.0:1234"\n')
    cfg = load_service_config(str(config), environ={"PYBURNERKIT_HTTP_TOKEN": "env-tok"})
    assert cfg.http.token == "env-tok" and "env-tok" not in repr(cfg)


def test_pyde1_routes_are_served_beside_the_generic_api(services: List[Service]) -> None:
    service = make_service([dict(family="de1", url="sim://", id="espresso"),
                            dict(family="scale", url="sim://", id="skale")])
    services.append(service)
    wait_hub(service, "espresso", connected_with_fields)
    version = requests.get(f"{service.url}/version", timeout=10)
    assert version.status_code == 200 and isinstance(version.json(), dict)
    listed = requests.get(f"{service.url}{API}/devices", timeout=10).json()["devices"]
    assert {d["name"] for d in listed} == {"espresso", "skale"}
    reply = requests.get(f"{service.url}/nothing/here", timeout=10)
    assert reply.status_code == 404 and reply.json()["error"] == "NotFound"


def test_serve_demo_publishes_pyde1_and_home_assistant_topics(tmp_path: Path) -> None:
    from tests.recorder.services import Mosquitto
    from tests.recorder.util import Subscriber
    broker = Mosquitto()
    sub = None
    proc = None
    try:
        sub = Subscriber(broker.port, "#")
        proc = subprocess.Popen(
            [sys.executable, "-m", "pyburnerkit.cli.main", "serve", "--demo", "--mqtt",
             f"127.0.0.1:{broker.port}"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            cwd=str(tmp_path), text=True, env=dict(os.environ, PYTHONUNBUFFERED="1"))
        assert proc.stdout is not None
        assert proc.stdout.readline().startswith("HTTP=http://127.0.0.1:")

        wanted = {"homeassistant/": False, "pyburnerkit/afterburner/": False,
                  "pyDE1/status": False}
        scanned = [0]

        def all_seen(messages: List[tuple]) -> bool:  # type: ignore[type-arg]
            # scan only what arrived since the last wake: the demo publishes thousands
            for topic, payload, _ in messages[scanned[0]:]:
                for prefix in wanted:
                    if topic.startswith(prefix) and (prefix != "pyDE1/status"
                                                     or payload == b"Here"):
                        wanted[prefix] = True
            scanned[0] = len(messages)
            return all(wanted.values())
        sub.wait_for(all_seen, timeout=30)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
        # pyDE1's retained status says the service left cleanly
        sub.wait_for(lambda m: [p for t, p, _ in m if t.startswith("pyDE1/status")
                                and p == b"Gone"])
    finally:
        if proc is not None:
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)
            for stream in (proc.stdout, proc.stderr):
                if stream is not None:
                    stream.close()
        if sub is not None:
            sub.close()
        broker.destroy()
