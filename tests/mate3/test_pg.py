"""``pyburnerkit mate3 pg CONFIG.yaml``: mate3_pg's own definitions file and options, against
a throwaway PostgreSQL cluster and the Mate3 simulator over real Modbus TCP."""

from __future__ import annotations

import itertools
import os
import textwrap
from typing import Iterator

import psycopg
import pytest

from pyburnerkit.cli.main import main
from pyburnerkit.errors import ConfigurationError
from pyburnerkit.mate3.compat import Device
from pyburnerkit.mate3.pg import parse_definitions
from pyburnerkit.mate3.sim import Mate3Sim

from ..recorder.services import PostgresCluster

#: mate3's own example file (shared/data/mate3/examples/postgress_monitoring/config.yaml),
#: shipped with the tests
SEED_CONFIG = os.path.join(os.path.dirname(__file__), "data", "mate3_pg_config.yaml")
_dbs = itertools.count(1)


@pytest.fixture(scope="module")
def cluster() -> Iterator[PostgresCluster]:
    pg = PostgresCluster()
    try:
        yield pg
    finally:
        pg.destroy()


@pytest.fixture
def dsn(cluster: PostgresCluster) -> str:
    return cluster.create_db(f"mate3pg_{os.getpid()}_{next(_dbs)}")


@pytest.fixture
def seed_system() -> Iterator[Mate3Sim]:
    """The system the example file describes: a Radian on port 1, controllers on 2 and 3."""
    sim = Mate3Sim(description="gs-single:1,cc:2,cc:3").start()
    try:
        sim.set({"charge_controllers[2].watts": 410, "charge_controllers[3].watts": 620,
                 "single_phase_radian_inverters[1].battery_voltage": 51.3})
        yield sim
    finally:
        sim.close()


def pg(capsys, config, sim, dsn, *more):
    code = main(["mate3", "pg", str(config), "-H", sim.endpoint, "--database-url", dsn,
                 "--interval", "0.01", "--min-poll-interval", "0", *more])
    out, err = capsys.readouterr()
    return code, out, err


def rows(dsn, sql):
    with psycopg.connect(dsn) as conn:
        return conn.execute(sql).fetchall()


def test_the_seed_example_file_fills_its_wide_table(capsys, seed_system, dsn):
    code, _, err = pg(capsys, SEED_CONFIG, seed_system, dsn, "--count", "2")
    assert code == 0, err
    got = rows(dsn, "SELECT battery_voltage, cc1_watts, cc2_watts, cc1_charger_state, "
                    "timestamp FROM my_database_table ORDER BY timestamp")
    assert len(got) == 2
    assert [tuple(float(v) for v in r[:3]) for r in got] == [(51.3, 410.0, 620.0)] * 2
    assert isinstance(got[0][3], int)  # an enumeration: its number, as mate3_pg stored it
    types = dict(rows(dsn, "SELECT column_name, data_type FROM information_schema.columns "
                           "WHERE table_name = 'my_database_table'"))
    assert types["battery_voltage"] == "numeric" and types["cc1_charger_state"] == "integer"
    assert "my_database_table.cc1_watts <- charge_controller.watts on HUB port 2" in err



def test_duration_ends_the_wait_between_readings(capsys, seed_system, dsn):
    """``--duration`` ends the run even in the middle of a long ``--interval``: the timer
    wakes the signal-aware wait, not only the event it waits on."""
    import time
    started = time.monotonic()
    code = main(["mate3", "pg", SEED_CONFIG, "-H", seed_system.endpoint, "--database-url", dsn,
                 "--interval", "3600", "--duration", "0.5", "--min-poll-interval", "0"])
    _, err = capsys.readouterr()
    assert code == 0, err
    assert time.monotonic() - started < 10
    assert "1 row(s) written" in err

def test_a_port_holding_another_device_leaves_the_column_empty(capsys, dsn):
    # the chinezbrun system: port 2 holds a Radian, not the example's charge controller
    sim = Mate3Sim().start()
    try:
        code, _, err = pg(capsys, SEED_CONFIG, sim, dsn, "--count", "1")
    finally:
        sim.close()
    assert code == 0, err
    assert ("my_database_table.cc1_watts: no charge_controller on HUB port 2 (port 2 holds "
            "radian_inverter_configuration, single_phase_radian_inverter)") in err
    (cc1, cc2, volts), = rows(dsn, "SELECT cc1_watts, cc2_watts, battery_voltage "
                                   "FROM my_database_table")
    assert cc1 is None and cc2 is not None and volts is not None


def test_mate3_06_names_config_blocks_and_old_field_names(tmp_path, capsys, seed_system, dsn):
    config = tmp_path / "defs.yaml"
    config.write_text(textwrap.dedent("""\
        tables:
          settings:
            - {port: 3, device: charge_controllers, field: watts, db_column: cc_w}
            - {port: 3, device: charge_controller_configuration, field: absorb_volts,
               db_column: absorb}
            - {port: 3, device: charge_controller, field: temperature_enclosure,
               db_column: enclosure}
            - {device: mate3, field: system_name, db_column: name}
        """))
    code, _, err = pg(capsys, config, seed_system, dsn, "--count", "1", "-q")
    assert code == 0 and err == ""  # -q: no status lines
    (cc_w, absorb, name), = rows(dsn, "SELECT cc_w, absorb, name FROM settings")
    assert cc_w == 620 and float(absorb) > 40 and isinstance(name, str) and name


def test_bad_definitions_are_refused_before_anything_is_opened(tmp_path, capsys,
                                                              seed_system, dsn):
    config = tmp_path / "bad.yaml"
    config.write_text("tables:\n  t:\n    - {port: 2, device: inverter, field: watts, "
                      "db_column: w}\n")
    code, _, err = pg(capsys, config, seed_system, dsn, "--count", "1")
    assert code == 2 and "table 't' entry 1" in err and "unknown mate3 device 'inverter'" in err
    assert len(seed_system.received) == 0  # the Mate3 was never asked
    with pytest.raises(ConfigurationError, match="port=11 .* 1..10"):
        parse_definitions({"tables": {"t": [{"port": 11, "device": "fndc",
                                               "field": "battery_voltage",
                                               "db_column": "v"}]}})
    with pytest.raises(ConfigurationError, match="'v' is already used"):
        parse_definitions({"tables": {"t": [
            {"port": 1, "device": "fndc", "field": "battery_voltage", "db_column": "v"},
            {"port": 2, "device": "fndc", "field": "battery_voltage", "db_column": "v"}]}})
    defs = parse_definitions({"tables": {"t": [{"port": 4, "device": "flexnet_dc",
                                                 "field": "battery_voltage",
                                                 "db_column": "v"}]}})
    assert defs[0].device is Device.flexnet_dc and defs[0].port == 4


def test_hypertables_without_timescaledb_is_a_clear_error(capsys, seed_system, dsn):
    code, _, err = pg(capsys, SEED_CONFIG, seed_system, dsn, "--count", "1", "--hypertables")
    assert code == 2 and "--hypertables needs TimescaleDB" in err


def test_the_database_password_never_shows(capsys, seed_system, cluster):
    url = f"postgresql://postgres:s3cr3t-pw@127.0.0.1:{cluster.port}/no_such_db"
    code, out, err = pg(capsys, SEED_CONFIG, seed_system, url, "--count", "1")
    assert code == 1 and "no_such_db" in err
    assert "s3cr3t-pw" not in out + err


def test_the_example_file_parses_to_the_devices_it_names():
    import yaml
    with open(SEED_CONFIG) as fh:
        defs = parse_definitions(yaml.safe_load(fh), SEED_CONFIG)
    assert [(d.port, d.device, d.field) for d in defs if d.db_column.startswith("cc")] == [
        (2, Device.charge_controller, "watts"), (2, Device.charge_controller, "battery_current"),
        (2, Device.charge_controller, "charger_state"), (3, Device.charge_controller, "watts"),
        (3, Device.charge_controller, "battery_current"),
        (3, Device.charge_controller, "charger_state")]
    assert {d.table for d in defs} == {"my_database_table"} and len(defs) == 11
