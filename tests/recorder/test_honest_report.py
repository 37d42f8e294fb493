"""The recorder says what really happened: each sink's real state (connected or refused),
what it wrote, what waits in its spool and where, what it dropped, what the far end
confirmed (Home Assistant entities the broker acknowledged), and which device delivered
nothing. ``pyburnerkit record`` exits 1 when anything was lost."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

from pyburnerkit.recorder import MqttSink, Recorder, SQLiteSink
from pyburnerkit.recorder.sources import CallableSource

from .util import PushSource, Subscriber

ROOT = Path(__file__).resolve().parents[2]


def closed_port() -> int:
    """A loopback port nothing listens on: connections to it are refused."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _never(*_: object) -> dict:
    raise ConnectionError("no answer from the test device")


def test_a_refused_broker_is_reported_as_refused_with_the_spool_path(tmp_path: Path) -> None:
    port = closed_port()
    push = PushSource("meter")
    dead = CallableSource(_never, family="testdev", device="dead", interval=0.05)
    mqtt = MqttSink("127.0.0.1", port)
    rec = Recorder([push, dead], [mqtt, SQLiteSink(str(tmp_path / "x.db"))],
                   spool_dir=str(tmp_path / "spool"), progress_interval=None)
    with rec:
        push.started.wait(10)
        push.push({"voltage_v": 12.5, "current_a": 1.0})
        # the spool also holds the availability messages of both devices
        rec.wait_for(lambda r: r.sink("sqlite").written == 2 and r.sink("mqtt").spooled >= 2
                     and r.sink("mqtt").state == "refused", timeout=20)
    lines = rec.report()
    stats = rec.sink("mqtt")
    assert stats.state == "refused" and stats.connections == 0 and stats.failures >= 1
    assert os.path.isfile(stats.spool_path)
    assert os.path.dirname(stats.spool_path) == str(tmp_path / "spool")
    mqtt_line = [x for x in lines if x.startswith("sink mqtt ")][0]
    assert mqtt_line.startswith(f"sink mqtt (mqtt:127.0.0.1:{port}/pyburnerkit): "
                                f"NEVER CONNECTED, REFUSED ")
    assert "Connection refused" in mqtt_line
    assert stats.spooled >= 2 and stats.dropped == 0
    assert f"0 written; {stats.spooled} spooled for next run in {stats.spool_path}" in mqtt_line
    assert "NO Home Assistant entity announced" in mqtt_line
    assert mqtt.announced == 0
    sqlite_line = [x for x in lines if x.startswith("sink sqlite ")][0]
    assert sqlite_line.endswith(": connected; 2 written")
    assert "device testdev/meter: 2 samples" in lines
    dead_line = [x for x in lines if x.startswith("device testdev/dead")][0]
    assert dead_line.startswith("device testdev/dead: NOTHING RECORDED (last state ")
    assert "no answer from the test device" in dead_line
    assert not [x for x in lines if "LOST" in x]  # spooled is not lost


def test_announced_counts_what_the_broker_acknowledged(tmp_path: Path, broker) -> None:
    sub = Subscriber(broker.port, "homeassistant/#")
    try:
        push = PushSource("meter")
        mqtt = MqttSink("127.0.0.1", broker.port)
        rec = Recorder([push], [mqtt], spool_dir=str(tmp_path / "spool"),
                       progress_interval=None)
        with rec:
            push.started.wait(10)
            push.push({"voltage_v": 12.5, "current_a": 1.0})
            rec.wait_for(lambda r: r.sink("mqtt").written == 2, timeout=20)
            announced = mqtt.announced
            # two sensors and the device's connection sensor, each acknowledged
            assert announced == len(mqtt.configs) == 3
            retained = sub.wait_for(lambda m: len({t for t, p, _ in m
                                                   if t.endswith("/config") and p}) == 3 and m)
        assert {t for t, p, _ in retained if t.endswith("/config") and p} == set(mqtt.configs)
        line = [x for x in rec.report() if x.startswith("sink mqtt ")][0]
        assert ": connected; 2 written; 3 Home Assistant entities announced (acknowledged " \
               "by the broker)" in line
    finally:
        sub.close()


def _record(config: Path, *args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(ROOT), XDG_CACHE_HOME=str(config.parent / "cache"))
    return subprocess.run([sys.executable, "-m", "pyburnerkit", "record", str(config),
                           "--quiet", *args], cwd=str(config.parent), env=env,
                          capture_output=True, text=True, timeout=120)


def test_record_exits_1_when_samples_were_dropped(tmp_path: Path) -> None:
    port = closed_port()
    config = tmp_path / "rec.toml"
    config.write_text(textwrap.dedent(f"""
        [recorder]
        spool_dir = "spool"
        spool_max = 1          # one sample per sink spool: the refused broker's overflow

        [[devices]]
        family = "afterburner"
        url = "sim://?speed=30&tick=0.05"
        id = "van"

        [[devices]]
        family = "afterburner"
        url = "127.0.0.1:{closed_port()}"
        id = "gone"

        [[sinks]]
        type = "sqlite"
        path = "van.db"

        [[sinks]]
        type = "mqtt"
        host = "127.0.0.1"
        port = {port}
    """))
    done = _record(config, "--duration", "2")
    err = done.stderr
    assert done.returncode == 1, err
    mqtt_line = [x for x in err.splitlines() if x.startswith("record: sink mqtt ")][0]
    assert "NEVER CONNECTED, REFUSED" in mqtt_line and " DROPPED" in mqtt_line
    spool = [x for x in os.listdir(tmp_path / "spool") if x.endswith(".spool")
             and x.startswith("mqtt-")]
    assert f"1 spooled for next run in {tmp_path / 'spool' / spool[0]}" in mqtt_line
    assert [x for x in err.splitlines() if x.startswith("record: ") and "samples were LOST: sink mqtt: " in x]
    assert [x for x in err.splitlines()
            if x.startswith("record: device afterburner/gone: NOTHING RECORDED")]
    van = [x for x in err.splitlines() if x.startswith("record: device afterburner/van: ")][0]
    assert int(van.split(": ")[2].split()[0]) > 1  # more than the spool could hold


def test_record_exits_0_when_everything_was_written(tmp_path: Path) -> None:
    config = tmp_path / "rec.toml"
    config.write_text(textwrap.dedent("""
        [[devices]]
        family = "afterburner"
        url = "sim://?speed=30&tick=0.05"
        id = "van"

        [[sinks]]
        type = "sqlite"
        path = "van.db"
    """))
    done = _record(config, "--duration", "1")
    assert done.returncode == 0, done.stderr
    assert [x for x in done.stderr.splitlines()
            if x.startswith("record: sink sqlite (sqlite:") and ": connected; " in x]
    assert "LOST" not in done.stderr and "DROPPED" not in done.stderr


def shim(tmp_path: Path, *modules: str) -> str:
    """A PYTHONPATH folder whose packages shadow ``modules`` and fail to import, as a broken
    or half-installed extra does."""
    folder = tmp_path / "shim"
    for module in modules:
        (folder / module).mkdir(parents=True)
        (folder / module / "__init__.py").write_text(
            f"raise ImportError('{module} is blocked by the test shim')\n")
    return str(folder)


def test_record_demo_names_each_skipped_family_with_its_pip_command(tmp_path: Path) -> None:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([shim(tmp_path, "pymodbus"), str(ROOT)]),
               XDG_CACHE_HOME=str(tmp_path / "cache"))
    done = subprocess.run([sys.executable, "-m", "pyburnerkit", "record", "--demo", "--db",
                           str(tmp_path / "demo.db"), "--duration", "1", "--quiet"],
                          cwd=str(tmp_path), env=env, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    lines = done.stderr.splitlines()
    skipped = [x for x in lines if x.startswith("record: mate3: skipped: ")]
    assert len(skipped) == 2  # at the start and again in the final report
    assert skipped[0] == ("record: mate3: skipped: mate3 cannot import the Python module "
                          "'pymodbus' (ImportError: pymodbus is blocked by the test shim): "
                          'pip install "pyburnerkit[mate3]"')
    assert "recording 5 device(s)" in done.stderr
    assert not [x for x in lines if x.startswith("record: device mate3/")]
    devices = [x for x in lines if x.startswith("record: device ")]
    assert len(devices) == 5  # each recorded device has its line
