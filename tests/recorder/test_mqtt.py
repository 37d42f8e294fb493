"""Recording into a real mosquitto broker, read with a plain MQTT subscriber."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import textwrap
import threading

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


def _configs(msgs, prefix="homeassistant"):
    """The last non-empty config per discovery topic."""
    out = {}
    for t, p, _ in msgs:
        if t.startswith(prefix + "/") and t.endswith("/config"):
            if p:
                out[t] = json.loads(p)
            else:
                out.pop(t, None)
    return out


def test_home_assistant_discovery_payloads(tmp_path, broker, heater_sim):
    """What a new user sees (writes not allowed): typed sensors from the semantic table,
    settings as diagnostics, no controls, one device with its link sensor."""
    sub = Subscriber(broker.port, "ha/#")
    try:
        client = AfterburnerClient(f"ws://127.0.0.1:{heater_sim.port}/", retry_first=True)
        heater = AfterburnerSource(client, device="cabin", owns_client=True)
        other = PushSource("meter-1")  # a family without a semantic table
        sink = MqttSink("127.0.0.1", broker.port, discovery_prefix="ha")
        rec = _rec(tmp_path, [heater, other], [sink])
        with rec:
            other.push({"energy_kwh": 1234.5, "mode": "Inverting"},
                       units={"energy_kwh": "kWh"})
            rec.wait_for(lambda r: r.device_counts.get("afterburner/cabin", 0) >= 40,
                         timeout=20)
            target = rec.received  # written means announced too: discovery goes first
            rec.wait_for(lambda r: r.sink("mqtt").written >= target, timeout=20)
            want = set(sink.configs)
            msgs = sub.wait_for(lambda m: want <= set(_configs(m, "ha")) and m)
        configs = _configs(msgs, "ha")
        node = "ha/{}/pyburnerkit_afterburner_cabin/{}/config"
        temp = configs[node.format("sensor", "TempCurrent")]
        assert temp["name"] == "Temperature"
        assert temp["unique_id"] == "pyburnerkit_afterburner_cabin_tempcurrent"
        assert temp["default_entity_id"] == "sensor.cabin_temperature"
        assert temp["state_topic"] == "pyburnerkit/afterburner/cabin/TempCurrent"
        assert temp["value_template"] == "{{ value_json.value }}"
        assert temp["device_class"] == "temperature" and temp["state_class"] == "measurement"
        assert temp["unit_of_measurement"] == "°C" and temp["suggested_display_precision"] == 1
        assert temp["enabled_by_default"] is True and "entity_category" not in temp
        assert temp["device"] == {"identifiers": ["pyburnerkit_afterburner_cabin"],
                                  "name": "afterburner cabin",
                                  "manufacturer": "Afterburner (Ray Jones)",
                                  "model": "Afterburner", "sw_version": "V3.2.1"}
        assert temp["availability"] == [{"topic": "pyburnerkit/status"},
                                        {"topic": "pyburnerkit/afterburner/cabin/availability"}]
        assert temp["availability_mode"] == "all"
        assert temp["origin"]["name"] == "pyburnerkit" and temp["origin"]["sw_version"]
        fan = configs[node.format("sensor", "FanRPM")]
        assert fan["unit_of_measurement"] == "rpm" and fan["icon"] == "mdi:fan"
        run = configs[node.format("sensor", "RunState")]
        assert run["device_class"] == "enum" and "STOPPED" in run["options"]
        assert "state_class" not in run and "unit_of_measurement" not in run
        # a setting nobody may change is shown as what it reads, as a diagnostic (HA allows
        # no config category on sensors); the set point stands in for the thermostat
        pump = configs[node.format("sensor", "PumpMin")]
        assert pump["entity_category"] == "diagnostic" and pump["enabled_by_default"] is False
        assert pump["unit_of_measurement"] == "Hz" and "state_class" not in pump
        set_point = configs[node.format("sensor", "TempDesired")]
        assert set_point["name"] == "Heater set point" and set_point["enabled_by_default"]
        link = configs[node.format("binary_sensor", "connection")]
        assert link["device_class"] == "connectivity"
        assert link["state_topic"] == "pyburnerkit/afterburner/cabin/availability"
        assert link["payload_on"] == "online" and link["availability"] == [
            {"topic": "pyburnerkit/status"}]
        platforms = {t.split("/")[1] for t in configs}
        assert platforms == {"sensor", "binary_sensor"}  # no controls without a router's yes
        assert not any("/Start/" in t or "/Stop/" in t for t in configs)  # buttons: none
        assert not any("command_topic" in c for c in configs.values())
        # a family without a table: every field a disabled diagnostic named by its key
        energy = configs["ha/sensor/pyburnerkit_testdev_meter-1/energy_kwh/config"]
        assert energy["name"] == "energy_kwh" and energy["enabled_by_default"] is False
        assert energy["entity_category"] == "diagnostic"
        assert energy["unit_of_measurement"] == "kWh" and "device_class" not in energy
        mode = configs["ha/sensor/pyburnerkit_testdev_meter-1/mode/config"]
        assert "unit_of_measurement" not in mode and mode["value_template"].startswith(
            "{{ value_json.text")
        ids = [c["unique_id"] for c in configs.values()]
        assert len(ids) == len(set(ids))
    finally:
        sub.close()
    late = Subscriber(broker.port, "ha/sensor/pyburnerkit_afterburner_cabin/TempCurrent/config")
    try:  # a Home Assistant that starts later still finds the (retained) config
        late.wait_for(lambda m: m and m[0][2] is True)
    finally:
        late.close()


class Device(PushSource):
    """A push source that also says what it knows of its devices (serial, firmware)."""

    def __init__(self, device, family, info):
        super().__init__(device, family=family)
        self.info = info

    def device_info(self, channel):
        return dict(self.info.get(channel, {}))


def test_one_home_assistant_device_per_physical_device(tmp_path, broker):
    """A per-channel family (Mate3: one device per HUB port) gets a device per channel linked
    to the family device, with what the source knows: model, serial, firmware."""
    sub = Subscriber(broker.port, "homeassistant/#")
    try:
        mate = Device("m1", "mate3", {
            "3": {"name": "port 3", "model": "FLEXmax charge controller",
                  "serial_number": "CC123", "sw_version": "3.3.0"},
            "mate3": {"model": "MATE3S", "serial_number": "MA19", "sw_version": "1.4.2"}})
        sink = MqttSink("127.0.0.1", broker.port,
                        configuration_url="http://recorder.lan:8080/")
        rec = _rec(tmp_path, [mate], [sink])
        with rec:
            mate.push({"battery_voltage": 51.2, "watts": 400}, channel="3",
                      units={"battery_voltage": "V", "watts": "W"}, kind="charge_controller")
            mate.push({"measured_system_voltage": 50.6}, channel="mate3",
                      units={"measured_system_voltage": "V"}, kind="mate3")
            rec.wait_for(lambda r: r.sink("mqtt").written >= 3, timeout=20)
            want = set(sink.configs)
            msgs = sub.wait_for(lambda m: want <= set(_configs(m)) and m)
        configs = _configs(msgs)
        port = configs["homeassistant/sensor/pyburnerkit_mate3_m1_3/battery_voltage/config"]
        assert port["unique_id"] == "pyburnerkit_mate3_m1_3_battery_voltage"  # as before
        assert port["device"] == {
            "identifiers": ["pyburnerkit_mate3_m1_3"], "name": "mate3 m1 port 3",
            "via_device": "pyburnerkit_mate3_m1", "manufacturer": "OutBack Power",
            "model": "FLEXmax charge controller", "serial_number": "CC123",
            "sw_version": "3.3.0", "configuration_url": "http://recorder.lan:8080/"}
        assert port["default_entity_id"].startswith("sensor.m1_port_3_")
        # the Mate3's own registers (channel "mate3") are the family device itself
        own = configs["homeassistant/sensor/pyburnerkit_mate3_m1/mate3_measured_system_voltage/"
                      "config"]
        assert own["device"]["identifiers"] == ["pyburnerkit_mate3_m1"]
        assert own["device"]["serial_number"] == "MA19" and "via_device" not in own["device"]
        link = configs["homeassistant/binary_sensor/pyburnerkit_mate3_m1/connection/config"]
        assert link["device"]["model"] == "MATE3S"
        assert {c["device"]["identifiers"][0] for c in configs.values()} == {
            "pyburnerkit_mate3_m1", "pyburnerkit_mate3_m1_3"}
    finally:
        sub.close()
    with pytest.raises(ConfigurationError, match="configuration_url"):
        MqttSink("h", configuration_url="recorder.lan")


def test_firmware_learnt_later_reaches_the_device_block(tmp_path, broker):
    """A serial number or firmware the source learns after the first samples (a heater's
    system group arrives later) is announced again with the device block."""
    topic = "homeassistant/sensor/pyburnerkit_afterburner_h1/TempCurrent/config"
    sub = Subscriber(broker.port, topic)
    try:
        heater = Device("h1", "afterburner", {})
        sink = MqttSink("127.0.0.1", broker.port)
        sink.info_interval = 0  # look at every batch
        rec = _rec(tmp_path, [heater], [sink])
        with rec:
            heater.push({"TempCurrent": 12.0}, units={"TempCurrent": "°C"})
            first = sub.wait_for(lambda m: m and json.loads(m[0][1]))
            heater.info[""] = {"sw_version": "V3.2.1", "serial_number": "X1"}
            heater.push({"TempCurrent": 12.5}, units={"TempCurrent": "°C"})
            later = sub.wait_for(lambda m: [json.loads(p)["device"] for _, p, _ in m
                                            if "sw_version" in json.loads(p)["device"]])
        assert "sw_version" not in first["device"]
        assert later[0]["sw_version"] == "V3.2.1" and later[0]["serial_number"] == "X1"
    finally:
        sub.close()


def test_discovery_republished_when_home_assistant_comes_online(tmp_path, broker):
    import paho.mqtt.publish as publish
    topic = "homeassistant/sensor/pyburnerkit_testdev_m/power_w/config"
    sub = Subscriber(broker.port, topic)
    try:
        push = PushSource("m")
        rec = _rec(tmp_path, [push], [MqttSink("127.0.0.1", broker.port)])
        with rec:
            push.push({"power_w": 5.0}, units={"power_w": "W"})
            sub.wait_for(lambda m: len(m) == 1)
            publish.single("homeassistant/status", "online", hostname="127.0.0.1",
                           port=broker.port)
            msgs = sub.wait_for(lambda m: len(m) >= 2 and m)
        assert msgs[0][0] == msgs[1][0] == topic
        assert msgs[0][1] == msgs[1][1]  # the same config again
        assert json.loads(msgs[1][1])["unit_of_measurement"] == "W"
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
    """discovery_mode="device": one retained config per HA device (HA 2024.11+) with device,
    origin and qos once and one component per entity."""
    sub = Subscriber(broker.port, "homeassistant/#")
    try:
        meter = PushSource("meter-1", family="afterburner")
        sink = MqttSink("127.0.0.1", broker.port, discovery_mode="device")
        rec = _rec(tmp_path, [meter], [sink])
        topic = "homeassistant/device/pyburnerkit_afterburner_meter-1/config"
        with rec:
            meter.push({"TempCurrent": 12.5, "RunState": 0}, units={"TempCurrent": "°C"})
            rec.wait_for(lambda r: r.sink("mqtt").written == 2, timeout=20)
            meter.push({"InputVoltage": 12.1}, units={"InputVoltage": "V"})  # a later field
            msgs = sub.wait_for(
                lambda m: [x for x in m if x[0] == topic
                           and len(json.loads(x[1])["components"]) == 4] and m)
        assert {t for t, _, _ in msgs} == {topic}  # no per-entity configs in this mode
        cfg = json.loads([p for t, p, _ in msgs if t == topic][-1])
        assert cfg["device"]["identifiers"] == ["pyburnerkit_afterburner_meter-1"]
        assert cfg["device"]["manufacturer"] == "Afterburner (Ray Jones)"
        assert cfg["origin"]["name"] == "pyburnerkit" and cfg["qos"] == 1
        comps = cfg["components"]
        assert set(comps) == {"pyburnerkit_afterburner_meter-1_tempcurrent",
                              "pyburnerkit_afterburner_meter-1_runstate",
                              "pyburnerkit_afterburner_meter-1_inputvoltage",
                              "pyburnerkit_afterburner_meter-1_link"}
        temp = comps["pyburnerkit_afterburner_meter-1_tempcurrent"]
        assert temp["platform"] == "sensor" and temp["device_class"] == "temperature"
        assert temp["state_topic"] == "pyburnerkit/afterburner/meter-1/TempCurrent"
        assert "device" not in temp and temp["availability"][1] == {
            "topic": "pyburnerkit/afterburner/meter-1/availability"}
        assert comps["pyburnerkit_afterburner_meter-1_link"]["platform"] == "binary_sensor"
        assert comps["pyburnerkit_afterburner_meter-1_runstate"]["device_class"] == "enum"
    finally:
        sub.close()
    with pytest.raises(ConfigurationError, match="discovery_mode"):
        MqttSink("h", discovery_mode="entity")


# ------------------------------------------------------------------------------ commands
class FakeRouter:
    """Test double of the command router (``pyburnerkit.recorder.commands.Commands``, whose
    own tests are tests/recorder/test_commands.py; tests/ha/test_commands_e2e.py runs both
    together): it says which fields are controllable and answers each command from a thread
    of its own, as the real one does. ``answer(field, payload) -> (ok, message, value)``."""

    def __init__(self, allowed, answer=lambda field, payload: (True, "", None)):
        self.allowed = set(allowed)
        self.answer = answer
        self.submitted = []
        self.cond = threading.Condition()
        self.threads = []

    def controllable(self, family, device, channel, field):
        return field in self.allowed

    def submit(self, family, device, channel, field, payload, reply):
        with self.cond:
            self.submitted.append((family, device, channel, field, payload))
            self.cond.notify_all()
        answer = self.answer(field, payload) if field in self.allowed else (
            False, f"{field} is not controllable here", None)
        thread = threading.Thread(target=reply, args=answer, name="test-router")
        self.threads.append(thread)
        thread.start()

    def wait_for(self, predicate, timeout=15.0):
        with self.cond:
            if not self.cond.wait_for(lambda: predicate(list(self.submitted)), timeout):
                raise AssertionError(f"router saw {self.submitted}")

    def join(self):
        for thread in self.threads:
            thread.join(10)


class RoutedSink(MqttSink):
    """An MQTT sink that takes the test double instead of the recorder's router."""

    def __init__(self, *args, router, **kw):
        super().__init__(*args, **kw)
        self.fake = router

    def attach_commands(self, router):
        super().attach_commands(self.fake)


def _heater_answer(field, payload):
    if field == "TempDesired" and payload not in ("heat", "off"):
        value = float(payload)
        if not 8 <= value <= 35:
            return False, f"desired temperature {payload} is out of range: the limit is " \
                          f"8..35 °C", None
        return True, "", value
    return True, "", None


def test_commands_from_home_assistant(tmp_path, broker, caplog):
    import paho.mqtt.publish as publish
    router = FakeRouter({"TempDesired", "Start", "PumpMin"}, _heater_answer)
    sub = Subscriber(broker.port, "#")
    heater = PushSource("cabin", family="afterburner")
    sink = RoutedSink("127.0.0.1", broker.port, router=router)
    rec = _rec(tmp_path, [heater], [sink])
    base = "pyburnerkit/afterburner/cabin"
    try:
        with rec:
            heater.push({"TempDesired": 22, "TempCurrent": 18.5, "RunState": 0,
                         "PumpMin": 1.6}, units={"TempCurrent": "°C", "PumpMin": "Hz"})
            rec.wait_for(lambda r: r.sink("mqtt").written >= 4, timeout=20)
            configs = _configs(sub.wait_for(lambda m: set(sink.configs) <= set(_configs(m))
                                            and m))
            node = "homeassistant/{}/pyburnerkit_afterburner_cabin/{}/config"
            climate = configs[node.format("climate", "TempDesired")]
            assert climate["temperature_command_topic"] == f"{base}/TempDesired/set"
            assert climate["temperature_state_topic"] == f"{base}/TempDesired"
            assert climate["current_temperature_topic"] == f"{base}/TempCurrent"
            assert climate["mode_command_topic"] == f"{base}/TempDesired/mode/set"
            assert climate["mode_state_topic"] == f"{base}/RunState"
            assert climate["modes"] == ["off", "heat"] and climate["temperature_unit"] == "C"
            assert (climate["min_temp"], climate["max_temp"]) == (8, 35)
            assert climate["temp_step"] == 1
            number = configs[node.format("number", "PumpMin")]
            assert number["command_topic"] == f"{base}/PumpMin/set"
            assert number["entity_category"] == "config"
            assert number["unit_of_measurement"] == "Hz"
            start = configs[node.format("button", "Start")]
            assert start["command_topic"] == f"{base}/Start/set"
            assert node.format("button", "Stop") not in configs  # the router said no

            publish.single(f"{base}/TempDesired/set", "23", hostname="127.0.0.1",
                           port=broker.port)
            confirmed = sub.wait_for(lambda m: [json.loads(p) for t, p, _ in m
                                                if t == f"{base}/TempDesired"
                                                and json.loads(p)["uid"].startswith("cmd-")])
            assert confirmed[0]["value"] == 23.0 and confirmed[0]["unit"] == "°C"
            assert router.submitted[0] == ("afterburner", "cabin", "", "TempDesired", "23")

            with caplog.at_level(logging.WARNING, logger="pyburnerkit.recorder.sinks.mqtt"):
                publish.single(f"{base}/TempDesired/set", "99", hostname="127.0.0.1",
                               port=broker.port)
                error = sub.wait_for(lambda m: [(json.loads(p), r) for t, p, r in m
                                                if t == f"{base}/error"])
            assert error[0][0] == {"field": "TempDesired", "payload": "99",
                                   "error": "desired temperature 99 is out of range: the "
                                            "limit is 8..35 °C"}
            assert error[0][1] is False  # not retained
            assert "refused" in caplog.text and "8..35" in caplog.text

            publish.single(f"{base}/Stop/set", "PRESS", hostname="127.0.0.1", port=broker.port)
            publish.single(f"{base}/TempDesired/mode/set", "heat", hostname="127.0.0.1",
                           port=broker.port)
            publish.single(f"{base}/Start/set", "PRESS", hostname="127.0.0.1", port=broker.port)
            router.wait_for(lambda s: len(s) == 5)
            # in order; Stop has no command topic in HA, but a command sent to it by hand is
            # still answered: the router says why not
            assert [s[3:] for s in router.submitted[2:]] == [
                ("Stop", "PRESS"), ("TempDesired", "heat"), ("Start", "PRESS")]
            stop = sub.wait_for(lambda m: [json.loads(p) for t, p, _ in m
                                           if t == f"{base}/error"
                                           and json.loads(p)["field"] == "Stop"])
            assert stop[0]["error"] == "Stop is not controllable here"
        router.join()
    finally:
        sub.close()


def test_a_retained_command_is_never_carried_out(tmp_path):
    """A command the broker kept (published with retain) is an old one: carrying it out
    again when the sink reconnects would be a retry. It is refused, and the error says so."""
    import paho.mqtt.publish as publish
    broker = Mosquitto(persistent=True)
    base = "pyburnerkit/afterburner/cabin"
    router = FakeRouter({"Start"})
    heater = PushSource("cabin", family="afterburner")
    sink = RoutedSink("127.0.0.1", broker.port, router=router, ack_timeout=3,
                      connect_timeout=2)
    rec = _rec(tmp_path, [heater], [sink])
    refused = _Refusals()
    logging.getLogger("pyburnerkit.recorder.sinks.mqtt").addHandler(refused)
    try:
        with rec:
            heater.push({"RunState": 0})
            rec.wait_for(lambda r: r.sink("mqtt").written >= 1, timeout=20)
            assert any(t.endswith("/Start/config") for t in sink.configs)
            # sent while the sink listens: a live command (the broker also keeps it)
            publish.single(f"{base}/Start/set", "PRESS", retain=True, hostname="127.0.0.1",
                           port=broker.port)
            router.wait_for(lambda s: len(s) == 1)
            broker.stop()  # saves the retained command
            rec.wait_for(lambda r: not r.sink("mqtt").healthy, timeout=20)
            broker.start()  # the sink reconnects and the broker hands it the old command
            assert refused.wait(30), "the retained command was not refused"
        router.join()
        assert router.submitted == [("afterburner", "cabin", "", "Start", "PRESS")]
        assert "retained" in refused.message
    finally:
        logging.getLogger("pyburnerkit.recorder.sinks.mqtt").removeHandler(refused)
        broker.destroy()


class _Refusals(logging.Handler):
    """Sets an event on the sink's first WARNING about a refused command (the error topic is
    not retained, so a subscriber that comes after the reconnection could miss it)."""

    def __init__(self):
        super().__init__(logging.WARNING)
        self.event = threading.Event()
        self.message = ""

    def emit(self, record):
        if "refused" in record.getMessage() and not self.event.is_set():
            self.message = record.getMessage()
            self.event.set()

    def wait(self, timeout):
        return self.event.wait(timeout)


def test_superseded_configs_are_deleted(tmp_path, broker):
    """A config an older release left on the broker for a unique id now announced elsewhere
    is deleted (empty retained payload); so is an entity that changes platform when the
    router changes its mind (seen at Home Assistant's next birth message)."""
    import paho.mqtt.publish as publish
    old = "homeassistant/sensor/pyburnerkit_mate3_m1/3_battery_voltage/config"
    foreign = "homeassistant/sensor/pyburnerkit_mate3_m1/other/config"
    publish.single(old, json.dumps({"unique_id": "pyburnerkit_mate3_m1_3_battery_voltage",
                                    "state_topic": "x"}), retain=True,
                   hostname="127.0.0.1", port=broker.port)
    publish.single(foreign, json.dumps({"unique_id": "someone_else", "state_topic": "y"}),
                   retain=True, hostname="127.0.0.1", port=broker.port)
    router = FakeRouter(set())
    sub = Subscriber(broker.port, "homeassistant/#")
    mate = PushSource("m1", family="mate3")
    heater = PushSource("cabin", family="afterburner")
    sink = RoutedSink("127.0.0.1", broker.port, router=router)
    rec = _rec(tmp_path, [mate, heater], [sink])
    try:
        with rec:
            mate.push({"battery_voltage": 51.0}, channel="3", units={"battery_voltage": "V"})
            heater.push({"PumpMin": 1.6}, units={"PumpMin": "Hz"})
            new = "homeassistant/sensor/pyburnerkit_mate3_m1_3/battery_voltage/config"
            sensor = "homeassistant/sensor/pyburnerkit_afterburner_cabin/PumpMin/config"
            sub.wait_for(lambda m: (old, b"", False) in m and new in _configs(m)
                         and sensor in _configs(m))
            router.allowed.add("PumpMin")  # writes allowed now: the setting becomes a number
            publish.single("homeassistant/status", "online", hostname="127.0.0.1",
                           port=broker.port)
            number = "homeassistant/number/pyburnerkit_afterburner_cabin/PumpMin/config"
            msgs = sub.wait_for(lambda m: number in _configs(m) and (sensor, b"", False) in m
                                and m)
        assert foreign in _configs(msgs)  # not ours to delete: nothing announces its id
        assert sensor not in sink.configs and number in sink.configs
    finally:
        sub.close()
