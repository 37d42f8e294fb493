"""Recording into a real mosquitto broker, read with a plain MQTT subscriber."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

from pyburnerkit.afterburner.sim import AfterburnerSim
from pyburnerkit.afterburner import AfterburnerClient
from pyburnerkit.errors import ConfigurationError
from pyburnerkit.recorder import (AfterburnerSource, AlertRule, MqttSink, Recorder,
                                  SinkHealthChanged)

from .services import Mosquitto
from .util import PushSource, Subscriber, collect, counter_source


def _rec(tmp_path, sources, sinks, **kw):
    kw.setdefault("progress_interval", None)
    return Recorder(sources, sinks, spool_dir=str(tmp_path / "spool"), **kw)


def _json(messages, topic):
    return [json.loads(p) for t, p, _ in messages if t == topic]


@pytest.fixture
def heater_sim():
    sim = AfterburnerSim(tick=0.05, speed=30.0, seed=5).start("127.0.0.1", 0)
    try:
        yield sim
    finally:
        sim.close()


def test_samples_arrive_as_json_under_the_topic_root(tmp_path, broker):
    sub = Subscriber(broker.port, "lab/#")
    try:
        push = PushSource("cell-7")
        rec = _rec(tmp_path, [push], [MqttSink("127.0.0.1", broker.port, topic_root="lab")])
        got = collect(rec)
        with rec:
            push.push({"voltage_v": 3.71, "status": "Rest"}, channel="3",
                      units={"voltage_v": "V"})
            rec.wait_for(lambda r: r.sink("mqtt").written == 2, timeout=20)
            msgs = sub.wait_for(lambda m: len(_json(m, "lab/testdev/cell-7/3/status")) == 1 and m)
        volt = _json(msgs, "lab/testdev/cell-7/3/voltage_v")[0]
        assert volt["value"] == 3.71 and volt["unit"] == "V"
        assert volt["uid"] in {s.uid for s in got}
        assert abs(volt["ts"] - got[0].timestamp) < 1e-6
        status = _json(msgs, "lab/testdev/cell-7/3/status")[0]
        assert status["value"] == "Rest" and status["text"] == "Rest"
        assert ("lab/status", b"online", False) in msgs
        final = sub.wait_for(lambda m: [x for x in m if x[0] == "lab/status"
                                        and x[1] == b"offline"])
        assert final  # a clean close says offline
    finally:
        sub.close()


def test_home_assistant_discovery_payloads(tmp_path, broker, heater_sim):
    sub = Subscriber(broker.port, "ha/#")
    try:
        client = AfterburnerClient(f"ws://127.0.0.1:{heater_sim.port}/", retry_first=True)
        heater = AfterburnerSource(client, device="cabin", owns_client=True)
        meter = PushSource("meter-1", family="mate3")
        sink = MqttSink("127.0.0.1", broker.port, discovery_prefix="ha")
        rec = _rec(tmp_path, [heater, meter], [sink])
        with rec:
            meter.push({"energy_kwh": 1234.5}, units={"energy_kwh": "kWh"})
            msgs = sub.wait_for(
                lambda m: len([x for x in m if x[0].endswith("/config")]) >= 30 and m)
            configs = {t: json.loads(p) for t, p, _ in msgs if t.endswith("/config")}
        temp = configs["ha/sensor/pyburnerkit_afterburner_cabin/TempCurrent/config"]
        assert temp["unique_id"] == "pyburnerkit_afterburner_cabin_tempcurrent"
        assert temp["state_topic"] == "pyburnerkit/afterburner/cabin/TempCurrent"
        assert temp["value_template"] == "{{ value_json.value }}"
        assert temp["device_class"] == "temperature" and temp["state_class"] == "measurement"
        assert temp["unit_of_measurement"] == "°C"
        assert temp["device"]["identifiers"] == ["pyburnerkit_afterburner_cabin"]
        assert temp["device"]["name"] == "afterburner cabin"
        assert temp["availability"] == [{"topic": "pyburnerkit/status"},
                                        {"topic": "pyburnerkit/afterburner/cabin/availability"}]
        assert temp["origin"]["name"] == "pyburnerkit"
        assert "entity_category" not in temp
        volts = configs["ha/sensor/pyburnerkit_afterburner_cabin/InputVoltage/config"]
        assert volts["device_class"] == "voltage" and volts["unit_of_measurement"] == "V"
        diag = configs["ha/sensor/pyburnerkit_afterburner_cabin/PumpMin/config"]
        assert diag["entity_category"] == "diagnostic" and diag["enabled_by_default"] is False
        run = configs["ha/sensor/pyburnerkit_afterburner_cabin/RunState/config"]
        assert run["value_template"] == "{{ value_json.text }}"
        assert "state_class" not in run and "unit_of_measurement" not in run
        energy = configs["ha/sensor/pyburnerkit_mate3_meter-1/energy_kwh/config"]
        assert energy["device_class"] == "energy"
        assert energy["state_class"] == "total_increasing"  # usable in the Energy dashboard
        assert energy["unit_of_measurement"] == "kWh"
        assert energy["device"]["manufacturer"] == "OutBack Power"
        retained = [x for x in msgs if x[0].endswith("/config")]
        assert all(x[2] is False for x in retained)  # live delivery; retained flag set below
        ids = [c["unique_id"] for c in configs.values()]
        assert len(ids) == len(set(ids))
    finally:
        sub.close()
    late = Subscriber(broker.port, "ha/sensor/pyburnerkit_afterburner_cabin/TempCurrent/config")
    try:  # a Home Assistant that starts later still finds the (retained) config
        late.wait_for(lambda m: m and m[0][2] is True)
    finally:
        late.close()


def test_discovery_republished_when_home_assistant_comes_online(tmp_path, broker):
    import paho.mqtt.publish as publish
    sub = Subscriber(broker.port, "homeassistant/sensor/#")
    try:
        push = PushSource("m")
        rec = _rec(tmp_path, [push], [MqttSink("127.0.0.1", broker.port)])
        with rec:
            push.push({"power_w": 5.0}, units={"power_w": "W"})
            sub.wait_for(lambda m: len(m) == 1)
            publish.single("homeassistant/status", "online", hostname="127.0.0.1",
                           port=broker.port)
            msgs = sub.wait_for(lambda m: len(m) >= 2 and m)
        topic = "homeassistant/sensor/pyburnerkit_testdev_m/power_w/config"
        assert msgs[0][0] == msgs[1][0] == topic
        assert json.loads(msgs[1][1])["device_class"] == "power"
    finally:
        sub.close()


def test_broker_restart_mid_recording_delivers_every_sample(tmp_path):
    broker = Mosquitto(persistent=True)
    sub = None
    try:
        sub = Subscriber(broker.port, "pyburnerkit/testdev/#", client_id="pbk-test-sub",
                         clean=False)
        source, _ = counter_source(interval=0.005)
        rec = _rec(tmp_path, [source], [MqttSink("127.0.0.1", broker.port, ack_timeout=3)])
        got = collect(rec)
        with rec:
            rec.wait_for(lambda r: r.sink("mqtt").written >= 100, timeout=20)
            broker.stop()
            rec.wait_for(lambda r: not r.sink("mqtt").healthy and r.sink("mqtt").spooled >= 50,
                         timeout=20)
            broker.start()
            rec.wait_for(lambda r: r.sink("mqtt").healthy and r.sink("mqtt").spooled == 0
                         and r.sink("mqtt").written >= 300, timeout=60)
        want = {s.uid for s in got}

        def uids(m):
            return {json.loads(p)["uid"] for t, p, _ in m if not t.endswith("/availability")}

        seen = sub.wait_for(lambda m: want <= uids(m) and uids(m), timeout=30)
        assert seen == want  # at least once: every sample, none invented
    finally:
        if sub is not None:
            sub.close()
        broker.destroy()


def test_last_will_says_offline_when_the_recorder_dies(tmp_path, broker):
    script = textwrap.dedent(f"""
        import sys
        from pyburnerkit.recorder import Recorder, MqttSink, CallableSource
        rec = Recorder([CallableSource(lambda: {{"x": 1}}, interval=0.1)],
                       [MqttSink("127.0.0.1", {broker.port}, keepalive=5)],
                       spool_dir={str(tmp_path / "sp")!r}, progress_interval=None)
        rec.start()
        rec.wait_for(lambda r: r.sink("mqtt").written > 0, timeout=20)
        print("ready", flush=True)
        sys.stdin.read()
    """)
    sub = Subscriber(broker.port, "pyburnerkit/status")
    proc = subprocess.Popen([sys.executable, "-c", script], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, cwd=os.getcwd())
    try:
        assert proc.stdout.readline().strip() == b"ready"
        sub.wait_for(lambda m: ("pyburnerkit/status", b"online", False) in m)
        proc.kill()  # no clean shutdown: the broker publishes the will
        proc.wait(10)
        sub.wait_for(lambda m: m[-1][:2] == ("pyburnerkit/status", b"offline"))
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        proc.stdin.close()
        proc.stdout.close()
        sub.close()


def test_alerts_are_published(tmp_path, broker):
    sub = Subscriber(broker.port, "pyburnerkit/alerts/#")
    try:
        push = PushSource("heater")
        rule = AlertRule("hot", field="temp_c", above=30, hysteresis=2)
        rec = _rec(tmp_path, [push], [MqttSink("127.0.0.1", broker.port)], alerts=[rule])
        with rec:
            push.push({"temp_c": 31.0})
            push.push({"temp_c": 29.0})  # inside the hysteresis: still firing
            push.push({"temp_c": 27.5})
            msgs = sub.wait_for(lambda m: len(m) >= 2 and m)
        payloads = [json.loads(p) for t, p, _ in msgs]
        assert [p["active"] for p in payloads] == [True, False]
        assert all(t == "pyburnerkit/alerts/hot/heater" for t, _, _ in msgs)
        assert payloads[0]["value"] == 31.0 and payloads[1]["value"] == 27.5
    finally:
        sub.close()


def test_username_and_password(tmp_path):
    broker = Mosquitto(password_file="yes", start=False)
    try:
        pwfile = os.path.join(broker.base, "passwd")
        open(pwfile, "w").close()
        subprocess.run(["mosquitto_passwd", "-b", pwfile, "rec", "s3cret"], check=True)
        os.chmod(pwfile, 0o644)
        broker.add_conf("allow_anonymous false", f"password_file {pwfile}")
        broker.start()
        bad = MqttSink("127.0.0.1", broker.port, username="rec", password="wrong",
                       connect_timeout=2, name="bad")
        good = MqttSink("127.0.0.1", broker.port, username="rec", password="s3cret",
                        name="good")
        push = PushSource()
        rec = _rec(tmp_path, [push], [bad, good])
        health = []
        rec.subscribe(health.append, SinkHealthChanged)
        with rec:
            push.push({"x": 1})
            rec.wait_for(lambda r: r.sink("good").written == 1
                         and any(h.sink == "bad" and not h.healthy for h in health), timeout=20)
        # the sample and the device's availability message wait in the bad sink's spool
        assert not rec.sink("bad").healthy and rec.sink("bad").spooled == 2
        assert rec.sink("bad").written == 0
        assert "s3cret" not in repr(good) and "wrong" not in str(
            [h.error for h in health if h.sink == "bad"])
    finally:
        broker.destroy()


def test_tls(tmp_path):
    broker = Mosquitto(start=False)
    d = broker.base
    ca_key, ca, key, csr, crt = (os.path.join(d, n) for n in
                                 ("ca.key", "ca.crt", "srv.key", "srv.csr", "srv.crt"))
    run = lambda *a: subprocess.run(a, check=True, capture_output=True)  # noqa: E731
    run("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", ca_key, "-out",
        ca, "-days", "2", "-subj", "/CN=pbk-test-ca")
    run("openssl", "req", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", csr,
        "-subj", "/CN=localhost")
    ext = os.path.join(d, "ext.cnf")
    with open(ext, "w") as fh:
        fh.write("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
    run("openssl", "x509", "-req", "-in", csr, "-CA", ca, "-CAkey", ca_key, "-CAcreateserial",
        "-out", crt, "-days", "2", "-extfile", ext)
    for path in (ca, key, crt):
        os.chmod(path, 0o644)
    broker.add_conf(f"cafile {ca}", f"certfile {crt}", f"keyfile {key}")
    broker.start()
    try:
        push = PushSource()
        untrusted = MqttSink("127.0.0.1", broker.port, tls=True, name="untrusted",
                             connect_timeout=2)  # the system store does not know our CA
        trusted = MqttSink("127.0.0.1", broker.port, tls=True, ca_certs=ca, name="trusted")
        rec = _rec(tmp_path, [push], [untrusted, trusted])
        with rec:
            push.push({"x": 1})
            rec.wait_for(lambda r: r.sink("trusted").written == 1
                         and r.sink("untrusted").failures >= 1, timeout=20)
        assert not rec.sink("untrusted").healthy
    finally:
        broker.destroy()


def test_options_are_validated():
    with pytest.raises(ConfigurationError, match="port"):
        MqttSink("h", 0)
    with pytest.raises(ConfigurationError, match="qos"):
        MqttSink("h", qos=2)
    with pytest.raises(ConfigurationError, match="topic_root"):
        MqttSink("h", topic_root="a/#")
    with pytest.raises(ConfigurationError, match="ack_timeout=0 must be a positive number"):
        MqttSink("h", ack_timeout=0)
    with pytest.raises(ConfigurationError, match="keepalive"):
        MqttSink("h", keepalive="30")


def test_broker_restart_keeps_the_real_availability_of_each_device(tmp_path, broker):
    """A broker restarted without persistence forgets retained messages: the sink publishes
    them again, and a device that went offline is not announced online by discovery."""
    up, down = PushSource("up"), PushSource("down")
    rec = _rec(tmp_path, [up, down], [MqttSink("127.0.0.1", broker.port, ack_timeout=3,
                                               connect_timeout=2)])
    with rec:
        up.push({"power_w": 1.0}, units={"power_w": "W"})
        down.push({"power_w": 2.0}, units={"power_w": "W"})
        rec.wait_for(lambda r: r.sink("mqtt").written == 2, timeout=20)
        down.state("reconnecting")  # the device link dropped
        sub = Subscriber(broker.port, "pyburnerkit/testdev/down/availability")
        try:
            sub.wait_for(lambda m: m and m[-1][1] == b"offline")
        finally:
            sub.close()
        broker.stop()
        rec.wait_for(lambda r: not r.sink("mqtt").healthy, timeout=20)
        broker.start()
        rec.wait_for(lambda r: r.sink("mqtt").healthy, timeout=30)
        up.push({"energy_wh": 5.0}, units={"energy_wh": "Wh"})  # a new field: new discovery
        rec.wait_for(lambda r: r.sink("mqtt").written == 3, timeout=20)
        late = Subscriber(broker.port, "pyburnerkit/testdev/+/availability")
        try:
            msgs = late.wait_for(lambda m: len(m) >= 2 and m)
        finally:
            late.close()
    retained = {t: p for t, p, r in msgs if r}
    assert retained == {"pyburnerkit/testdev/up/availability": b"online",
                        "pyburnerkit/testdev/down/availability": b"offline"}


def test_device_based_discovery(tmp_path, broker):
    """discovery_mode="device": one retained config per device (HA 2024.11+) with device,
    origin, availability and qos once and one component per field."""
    sub = Subscriber(broker.port, "homeassistant/#")
    try:
        meter = PushSource("meter-1", family="mate3")
        rec = _rec(tmp_path, [meter], [MqttSink("127.0.0.1", broker.port,
                                                discovery_mode="device")])
        topic = "homeassistant/device/pyburnerkit_mate3_meter-1/config"
        with rec:
            meter.push({"energy_kwh": 1234.5, "mode": "Inverting"},
                       units={"energy_kwh": "kWh"})
            rec.wait_for(lambda r: r.sink("mqtt").written == 2, timeout=20)
            meter.push({"battery_voltage": 52.1}, units={"battery_voltage": "V"})  # later field
            msgs = sub.wait_for(
                lambda m: [x for x in m if x[0] == topic
                           and len(json.loads(x[1])["components"]) == 3] and m)
        assert {t for t, _, _ in msgs} == {topic}  # no per-field configs in this mode
        cfg = json.loads([p for t, p, _ in msgs if t == topic][-1])
        assert cfg["device"]["identifiers"] == ["pyburnerkit_mate3_meter-1"]
        assert cfg["device"]["manufacturer"] == "OutBack Power"
        assert cfg["origin"]["name"] == "pyburnerkit"
        assert cfg["availability"][1] == {"topic": "pyburnerkit/mate3/meter-1/availability"}
        assert cfg["qos"] == 1
        comps = cfg["components"]
        assert set(comps) == {"pyburnerkit_mate3_meter-1_energy_kwh",
                              "pyburnerkit_mate3_meter-1_mode",
                              "pyburnerkit_mate3_meter-1_battery_voltage"}
        energy = comps["pyburnerkit_mate3_meter-1_energy_kwh"]
        assert energy["platform"] == "sensor" and energy["device_class"] == "energy"
        assert energy["state_class"] == "total_increasing"
        assert energy["unit_of_measurement"] == "kWh"
        assert energy["unique_id"] == "pyburnerkit_mate3_meter-1_energy_kwh"
        assert energy["state_topic"] == "pyburnerkit/mate3/meter-1/energy_kwh"
        assert "device" not in energy and "availability" not in energy
        assert comps["pyburnerkit_mate3_meter-1_mode"]["value_template"] == \
            "{{ value_json.text }}"
    finally:
        sub.close()
    with pytest.raises(ConfigurationError, match="discovery_mode"):
        MqttSink("h", discovery_mode="entity")
