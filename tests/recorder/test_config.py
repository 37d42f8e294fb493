"""TOML config + environment + .env."""

from __future__ import annotations

import sqlite3
import textwrap

import pytest

from pyburnerkit.errors import ConfigurationError
from pyburnerkit.recorder.config import load_config, read_env_file


def _write(path, text):
    path.write_text(textwrap.dedent(text))
    return str(path)


def test_full_config_with_env_and_dotenv(tmp_path):
    (tmp_path / ".env").write_text("# secrets\nMQTT_PASSWORD='from-dotenv'\n"
                                   "export PG_DSN=postgresql://u:p@h/db\nDB_NAME=dotenv.db\n")
    path = _write(tmp_path / "rec.toml", """
        [recorder]
        progress_interval = 2
        spool_dir = "spool"

        [[devices]]
        family = "afterburner"
        url = "sim://?speed=30&tick=0.05"
        id = "cabin"
        [devices.options]
        liveness_interval = 10

        [[sinks]]
        type = "sqlite"
        path = "${DB_NAME}"

        [[sinks]]
        type = "mqtt"
        host = "${MQTT_HOST:-localhost}"
        password = "${MQTT_PASSWORD}"
        discovery_prefix = "ha"
        discovery_mode = "device"

        [[sinks]]
        type = "postgres"
        dsn = "${PG_DSN}"

        [[alerts]]
        name = "hot"
        field = "TempCurrent"
        above = 30
        hysteresis = 1.5
        command = "notify-send 'heater hot'"
    """)
    cfg = load_config(path, environ={"DB_NAME": "env-wins.db"})
    assert cfg.recorder["spool_dir"] == str(tmp_path / "spool")
    assert cfg.devices[0].family == "afterburner" and cfg.devices[0].id == "cabin"
    assert cfg.devices[0].options == {"liveness_interval": 10}
    kinds = [k for k, _ in cfg.sinks]
    assert kinds == ["sqlite", "mqtt", "postgres"]
    assert cfg.sinks[0][1]["path"] == str(tmp_path / "env-wins.db")  # environment beats .env
    assert cfg.sinks[1][1] == {"host": "localhost", "password": "from-dotenv",
                               "discovery_prefix": "ha", "discovery_mode": "device"}
    mqtt = cfg.build_sinks()[1]
    assert mqtt.discovery_mode == "device" and mqtt.prefix == "ha"
    assert "from-dotenv" not in repr(mqtt)
    assert cfg.sinks[2][1]["dsn"] == "postgresql://u:p@h/db"
    rule = cfg.alerts[0]
    assert (rule.name, rule.field, rule.above, rule.hysteresis) == ("hot", "TempCurrent", 30,
                                                                    1.5)
    assert rule.command == ("notify-send", "heater hot")


def test_config_builds_a_working_recorder(tmp_path):
    path = _write(tmp_path / "rec.toml", """
        [recorder]
        spool_dir = "spool"
        progress_interval = 1

        [[devices]]
        family = "afterburner"
        url = "sim://?speed=30&tick=0.05"
        id = "cabin"

        [[sinks]]
        type = "sqlite"
        path = "out.db"
    """)
    rec = load_config(path).build()
    with rec:
        rec.wait_for(lambda r: r.sink("sqlite").written >= 20, timeout=20)
    db = sqlite3.connect(str(tmp_path / "out.db"))
    try:
        rows = db.execute("SELECT DISTINCT family, device FROM samples").fetchall()
    finally:
        db.close()
    assert rows == [("afterburner", "cabin")]


@pytest.mark.parametrize("text, match", [
    ("[[sinks]]\ntype = 'oracle'\n", "type='oracle'"),
    ("[[sinks]]\ntype = 'sqlite'\nfile = 'x'\n", "unknown key.*file"),
    ("[recorder]\nspeed = 1\n", "unknown key.*speed"),
    ("[[devices]]\nfamily = 'afterburner'\n", "needs family and url"),
    ("[[alerts]]\nname = 'a'\nfield = 'x'\n", "above= and/or below="),
    ("[[sinks]]\ntype = 'mqtt'\npassword = '${NOPE_NOT_SET}'\n", "NOPE_NOT_SET is not set"),
    ("[[sinks]\n", "invalid TOML"),
    ("[bogus]\n", "unknown key.*bogus"),
])
def test_bad_configs_name_the_problem(tmp_path, text, match):
    path = _write(tmp_path / "bad.toml", text)
    with pytest.raises(ConfigurationError, match=match):
        load_config(path, environ={})


def test_unknown_family_is_refused_when_building(tmp_path):
    path = _write(tmp_path / "x.toml", "[[devices]]\nfamily = 'toaster'\nurl = 'x'\n")
    with pytest.raises(ConfigurationError, match="no recorder adapter for family 'toaster'"):
        load_config(path, environ={}).build()


def test_missing_file():
    with pytest.raises(ConfigurationError, match="not found"):
        load_config("/nonexistent/rec.toml")


def test_env_files_are_read_as_python_dotenv_reads_them(tmp_path):
    """Comments, ``export``, quotes and ``${VAR}`` expansion (the hand-written fallback this
    replaced expanded nothing: ``${BASE}-1`` stayed as written)."""
    env = tmp_path / ".env"
    env.write_text("BASE=cell\n# c\nexport B = \"two words\"\nC=x # trailing\n"
                   "NAME=${BASE}-1\n")
    assert read_env_file(str(env)) == {"BASE": "cell", "B": "two words", "C": "x",
                                       "NAME": "cell-1"}


def test_config_with_arbin_mate3_and_victron_simulators(tmp_path):
    from pyburnerkit.arbin import ArbinSim
    from pyburnerkit.victron import VictronSim
    with ArbinSim(channels=2, username="cfg", password="secret").start() as cycler, \
            VictronSim(interval=0.05) as venus:
        (tmp_path / ".env").write_text("ARBIN_PASSWORD=secret\n")
        path = _write(tmp_path / "lab.toml", f"""
            [recorder]
            spool_dir = "spool"
            progress_interval = 1

            [[devices]]
            family = "arbin"
            url = "127.0.0.1:{cycler.port}"
            id = "mits"
            interval = 0.2
            [devices.options]
            username = "cfg"
            password = "${{ARBIN_PASSWORD}}"

            [[devices]]
            family = "mate3"
            url = "sim://mate3"
            id = "house"
            interval = 0.5
            [devices.options]
            min_poll_interval = 0

            [[devices]]
            family = "victron"
            url = "{venus.address}"
            id = "venus"

            [[sinks]]
            type = "sqlite"
            path = "lab.db"
        """)
        rec = load_config(path, environ={}).build()
        with rec:
            rec.wait_for(lambda r: len(r.device_counts) == 3, timeout=30)
    db = sqlite3.connect(str(tmp_path / "lab.db"))
    try:
        rows = dict(db.execute("SELECT family, device FROM samples GROUP BY family").fetchall())
    finally:
        db.close()
    assert rows == {"arbin": "mits", "mate3": "house", "victron": "venus"}
