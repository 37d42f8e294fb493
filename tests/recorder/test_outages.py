"""PostgreSQL and mosquitto both crash (SIGKILL-like) mid-recording and come back: the
databases end up with every sample exactly once and MQTT delivers everything the broker did not
already acknowledge before it died (at least once)."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess

import psycopg

from pyburnerkit.recorder import MqttSink, PostgresSink, Recorder, SQLiteSink

from .services import Mosquitto
from .util import Subscriber, collect, counter_source


def test_kill_postgres_and_mosquitto_mid_recording(tmp_path, own_pg_cluster):
    pg = own_pg_cluster
    dsn = pg.create_db("outage")
    broker = Mosquitto(password_file="yes", start=False)
    pwfile = os.path.join(broker.base, "passwd")

    def users(*names):
        """Rewrite the broker's password file (mosquitto re-reads it on SIGHUP)."""
        open(pwfile, "w").close()
        for name in names:
            subprocess.run(["mosquitto_passwd", "-b", pwfile, name, "pw-" + name], check=True)
        os.chmod(pwfile, 0o644)

    def subscriber():
        return Subscriber(broker.port, "pyburnerkit/testdev/#", username="sub",
                          password="pw-sub")

    users("sub", "rec")
    broker.add_conf("allow_anonymous false", f"password_file {pwfile}")
    broker.start()
    sub = None
    try:
        sub = subscriber()
        source, counter = counter_source(interval=0.003)
        sinks = [SQLiteSink(str(tmp_path / "r.db")), PostgresSink(dsn, connect_timeout=2),
                 MqttSink("127.0.0.1", broker.port, ack_timeout=3, connect_timeout=2,
                          username="rec", password="pw-rec")]
        rec = Recorder([source], sinks, spool_dir=str(tmp_path / "spool"),
                       progress_interval=None)
        got = collect(rec)
        with rec:
            rec.wait_for(lambda r: r.sink("postgres").written >= 100
                         and r.sink("mqtt").written >= 100, timeout=30)
            broker.stop(kill=True)  # SIGKILL: no clean shutdown, no saved state
            pg.stop("immediate")
            killed_at = rec.received  # every later sample was made while both were dead
            rec.wait_for(lambda r: not r.sink("postgres").healthy and not r.sink("mqtt").healthy
                         and r.sink("postgres").spooled >= 100 and r.sink("mqtt").spooled >= 100,
                         timeout=30)
            sub.close()
            sub = None
            # the broker comes back (same port) refusing the recorder until our subscriber is
            # in: what the recorder spooled must reach a subscriber that was there before it
            users("sub")
            broker.start()
            sub = subscriber()
            users("sub", "rec")
            broker.proc.send_signal(signal.SIGHUP)
            pg.start()
            rec.wait_for(lambda r: all(r.sink(n).healthy and r.sink(n).spooled == 0
                                       for n in ("postgres", "mqtt"))
                         and r.sink("postgres").written > killed_at + 200, timeout=60)
        total = len(got)
        assert rec.sink("sqlite").written == rec.sink("postgres").written == total
        assert rec.sink("mqtt").written >= total  # at least once
        want = {s.uid for s in got}
        with psycopg.connect(dsn) as conn:
            uids = [r[0] for r in conn.execute("SELECT uid FROM pyburnerkit_samples")]
        assert len(uids) == len(set(uids)) == total and set(uids) == want
        db = sqlite3.connect(str(tmp_path / "r.db"))
        try:
            luids = [r[0] for r in db.execute("SELECT uid FROM samples")]
        finally:
            db.close()
        assert len(luids) == len(set(luids)) == total and set(luids) == want
        energy = sorted(s.value for s in got if s.field == "energy_wh")
        assert energy == [float(i) for i in range(1, counter.count + 1)]

        seq = {s.uid: int(s.uid.rsplit("-", 1)[1]) for s in got}
        after = {u for u, n in seq.items() if n > killed_at}

        def uids_seen(m):
            return {json.loads(p)["uid"] for t, p, _ in m if not t.endswith("/availability")}

        seen = sub.wait_for(lambda m: after <= uids_seen(m) and uids_seen(m), timeout=30)
        assert seen <= want  # nothing invented
    finally:
        if sub is not None:
            sub.close()
        broker.destroy()
