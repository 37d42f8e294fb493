"""Secrets never show: DSNs and URLs in every form libpq accepts, config reprs (values that came
from ``.env``), sink reprs, errors and logs."""

from __future__ import annotations

import logging
import textwrap
from urllib.parse import quote

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from psycopg.conninfo import conninfo_to_dict

from pyburnerkit.errors import ConfigurationError
from pyburnerkit.recorder import PostgresSink, Recorder, SinkHealthChanged
from pyburnerkit.recorder.config import DeviceSpec, load_config
from pyburnerkit.recorder.secrets import redact_dsn, redact_text

#: passwords as people have them: quotes, spaces, @ : / % = \ and friends
PASSWORDS = st.text(
    alphabet=st.sampled_from(list("abcXYZ019 '\"@:/%=\\?#&;!$-_.,+~^`*()[]{}<>|é€")),
    min_size=1, max_size=24)
NAMES = st.text(alphabet=st.sampled_from(list("abcdefghijklmnopqrstuvwxyz_")), min_size=1,
                max_size=10)
HOSTS = st.sampled_from(["db.example", "127.0.0.1", "timescale.lab.local", "pg"])
PORTS = st.integers(1, 65535)


def libpq_quote(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


@settings(max_examples=300, deadline=None)
@given(PASSWORDS, NAMES, HOSTS, PORTS, NAMES, st.booleans())
def test_key_value_dsn_password_never_survives(password, user, host, port, db, spaced):
    eq = " = " if spaced else "="
    dsn = (f"host{eq}{host} port{eq}{port} user{eq}{user} password{eq}{libpq_quote(password)}"
           f" dbname{eq}{db}")
    assert conninfo_to_dict(dsn)["password"] == password  # libpq reads what we meant
    expected = (f"host{eq}{host} port{eq}{port} user{eq}{user} password{eq}***"
                f" dbname{eq}{db}")
    assume(password not in expected)  # a password like "=" or "a" shows anyway
    redacted = redact_dsn(dsn)
    assert password not in redacted and libpq_quote(password) not in redacted
    assert redacted == expected


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("abcXYZ019@:/%=!$-_.,+")), min_size=1,
               max_size=20), NAMES, HOSTS)
def test_bare_key_value_password_at_the_end(password, user, host):
    dsn = f"user={user} host={host} password={password}"
    assert conninfo_to_dict(dsn)["password"] == password
    assume(password not in f"user={user} host={host} password=***")
    assert redact_dsn(dsn) == f"user={user} host={host} password=***"


@settings(max_examples=300, deadline=None)
@given(PASSWORDS, NAMES, HOSTS, PORTS, NAMES)
def test_url_password_never_survives_raw_or_encoded(password, user, host, port, db):
    encoded = quote(password, safe="")
    expected = f"postgresql://{user}:***@{host}:{port}/{db}"
    assume(password not in expected and encoded not in expected)
    for shown in (password, encoded):  # as typed, and percent-encoded
        url = f"postgresql://{user}:{shown}@{host}:{port}/{db}"
        redacted = redact_dsn(url)
        assert password not in redacted and shown not in redacted, redacted
        assert redacted == expected
    in_query = f"postgresql://{user}@{host}:{port}/{db}?sslmode=require&password={encoded}" \
               f"&application_name=rec"
    expected = f"postgresql://{user}@{host}:{port}/{db}?sslmode=require&password=***" \
               f"&application_name=rec"
    assume(password not in expected and encoded not in expected)
    assert conninfo_to_dict(in_query)["password"] == password
    redacted = redact_dsn(in_query)
    assert encoded not in redacted and password not in redacted
    assert redacted == expected


@settings(max_examples=200, deadline=None)
@given(PASSWORDS, st.sampled_from(["password", "MQTT_PASSWORD", "token", "api_key",
                                   "secret", "sslpassword", "passwd"]))
def test_option_mappings_never_show_secret_values(secret, key):
    from pyburnerkit.recorder.secrets import RedactedDict
    options = RedactedDict({key: secret, "host": "broker.lan", "port": 8883})
    shown = repr(options)
    assume(secret not in "{'%s': '***', 'host': 'broker.lan', 'port': 8883}" % key)
    assert secret not in shown and "broker.lan" in shown and "8883" in shown
    assert options[key] == secret  # only the display is redacted


def test_the_reported_cases():
    assert redact_dsn("host=db user=rec password='a b' dbname=lab") == \
        "host=db user=rec password=*** dbname=lab"
    assert redact_dsn("postgresql://rec:p@ss@db:5432/lab") == "postgresql://rec:***@db:5432/lab"
    assert redact_dsn("host=db password=a b user=x") == "host=db password=*** user=x"
    assert redact_dsn("host=db sslpassword='k k' user=x") == "host=db sslpassword=*** user=x"
    assert redact_dsn("postgresql://db/lab") == "postgresql://db/lab"


def test_a_url_with_an_unencoded_at_in_the_password_is_refused_without_showing_it():
    with pytest.raises(ConfigurationError, match="unencoded @") as info:
        PostgresSink("postgresql://rec:p@ssw0rd@db:5432/lab")
    assert "ssw0rd" not in str(info.value)


@pytest.mark.parametrize("text, secret", [
    ("mqtt://rec:top secret@broker:1883", "top secret"),
    ("curl -u admin:hunter2 https://x", "hunter2"),
    ("https://hooks.example/notify?token=abc123def&x=1", "abc123def"),
    ("Authorization: Bearer eyJhbGciOi.xyz", "eyJhbGciOi.xyz"),
    ("--password=hunter2", "hunter2"),
    ("api_key = 'k e y'", "k e y"),
])
def test_free_text_redaction(text, secret):
    redacted = redact_text(text)
    if secret is not None:
        assert secret not in redacted, redacted
    assert "***" in redacted


def test_config_objects_never_show_secrets_from_dotenv(tmp_path):
    (tmp_path / ".env").write_text(
        "PG_DSN=\"host=db user=rec password='pg secret' dbname=lab\"\n"
        "PG_URL=postgresql://rec:url%40secret@db/lab\n"
        "MQTT_PASSWORD='mqtt-secret'\nARBIN_PASSWORD=arbin-secret\n"
        "HOOK_TOKEN=hook-secret\n")
    path = tmp_path / "rec.toml"
    path.write_text(textwrap.dedent("""
        [[devices]]
        family = "arbin"
        url = "sim://"
        [devices.options]
        username = "lab"
        password = "${ARBIN_PASSWORD}"

        [[sinks]]
        type = "postgres"
        dsn = "${PG_DSN}"
        [[sinks]]
        type = "postgres"
        dsn = "${PG_URL}"
        [[sinks]]
        type = "mqtt"
        username = "rec"
        password = "${MQTT_PASSWORD}"

        [[alerts]]
        name = "hot"
        field = "t"
        above = 1
        command = ["curl", "https://hooks.example/x?token=${HOOK_TOKEN}"]
    """))
    cfg = load_config(str(path), environ={})
    secrets = ["pg secret", "url%40secret", "mqtt-secret", "arbin-secret", "hook-secret"]
    shown = [repr(cfg), str(cfg), repr(cfg.devices[0]), repr(cfg.alerts[0]),
             repr(cfg.sinks)] + [repr(s) for s in cfg.build_sinks()]
    for text in shown:
        for secret in secrets:
            assert secret not in text, (secret, text)
    assert "lab" in repr(cfg.devices[0])  # what is not secret stays readable
    assert cfg.sinks[2][1]["password"] == "mqtt-secret"  # the values themselves are intact


def test_device_spec_repr_hides_credentials():
    spec = DeviceSpec("arbin", "tcp://lab:pw@cycler:9031",
                      options={"password": "p w", "token": "t0k"})
    text = repr(spec)
    assert "p w" not in text and "t0k" not in text and ":pw@" not in text
    assert "cycler:9031" in text


def test_a_malformed_dsn_is_refused_without_showing_the_password():
    with pytest.raises(ConfigurationError) as info:
        PostgresSink("host=db password='never shown user=x")
    assert "never" not in str(info.value) and "shown" not in str(info.value)


def test_connection_errors_and_logs_never_show_the_password(tmp_path, caplog):
    from .services import free_port
    secret = "s3cr3t pass@word"
    dsn = f"host=127.0.0.1 port={free_port()} user=rec password={libpq_quote(secret)} " \
          f"dbname=lab connect_timeout=1"
    sink = PostgresSink(dsn, connect_timeout=1)
    rec = Recorder([], [sink], spool_dir=str(tmp_path / "spool"), progress_interval=None)
    health = []
    rec.subscribe(health.append, SinkHealthChanged)
    with caplog.at_level(logging.DEBUG, logger="pyburnerkit"):
        with rec:
            rec.wait_for(lambda r: health, timeout=20)
    assert not health[0].healthy
    texts = [caplog.text, str(health[0].error), repr(health[0].error), repr(sink),
             sink.identity()]
    for text in texts:
        for part in (secret, "s3cr3t", "pass@word"):
            assert part not in text, text


def test_mqtt_password_never_shown_when_the_broker_refuses_it(tmp_path, caplog):
    import os
    import subprocess

    from pyburnerkit.recorder import MqttSink

    from .services import Mosquitto
    broker = Mosquitto(password_file="yes", start=False)
    try:
        pwfile = os.path.join(broker.base, "passwd")
        subprocess.run(["mosquitto_passwd", "-c", "-b", pwfile, "rec", "right-one"],
                       check=True)
        os.chmod(pwfile, 0o644)
        broker.add_conf("allow_anonymous false", f"password_file {pwfile}")
        broker.start()
        secret = "wr0ng pass@word"
        sink = MqttSink("127.0.0.1", broker.port, username="rec", password=secret,
                        connect_timeout=2)
        rec = Recorder([], [sink], spool_dir=str(tmp_path / "spool"), progress_interval=None)
        health = []
        rec.subscribe(health.append, SinkHealthChanged)
        with caplog.at_level(logging.DEBUG, logger="pyburnerkit"):
            with rec:
                rec.wait_for(lambda r: health, timeout=20)
        assert not health[0].healthy and "refused" in str(health[0].error)
        for text in (caplog.text, str(health[0].error), repr(sink), sink.identity()):
            assert "wr0ng" not in text and "pass@word" not in text
    finally:
        broker.destroy()
