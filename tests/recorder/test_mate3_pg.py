"""mate3_pg definitions: every column gets the value of the device it names (HUB port AND
device kind), and a definition naming no known device is refused when the config loads."""

from __future__ import annotations

import textwrap

import psycopg
import pytest

from pyburnerkit.errors import ConfigurationError
from pyburnerkit.mate3 import Mate3Client
from pyburnerkit.mate3.sim import Mate3Sim
from pyburnerkit.recorder import PostgresSink, Recorder
from pyburnerkit.recorder.config import load_config
from pyburnerkit.recorder.sinks.postgres import Mate3Definitions
from pyburnerkit.recorder.sources import Mate3Source

#: a Radian on port 1, charge controllers on 2 and 3, a FLEXnet DC on 4; each with its own
#: battery voltage so a value that lands in the wrong column shows
LAYOUT = "gs-single:1,cc:2,cc:3,fndc:4"
VOLTS = {"single_phase_radian_inverters[1]": 50.8, "charge_controllers[2]": 51.2,
         "charge_controllers[3]": 52.4, "fndcs[4]": 53.6}

DEFINITIONS = """
tables:
  power:
    - port: 1
      device: "charge_controller"     # there is no charge controller on port 1
      field: "battery_voltage"
      db_column: "cc_port1_v"
    - port: 1
      device: "single_phase_radian_inverter"
      field: "battery_voltage"
      db_column: "radian_v"
    - port: 2
      device: "charge_controllers"    # mate3 0.6's plural names work too
      field: "battery_voltage"
      db_column: "cc2_v"
    - port: 3
      device: "charge_controller"
      field: "battery_voltage"
      db_column: "cc3_v"
    - port: 4
      device: "fndc"
      field: "battery_voltage"
      db_column: "fndc_v"
"""


@pytest.fixture
def mate3_sim():
    sim = Mate3Sim(description=LAYOUT).start()
    try:
        sim.set({f"{path}.battery_voltage": v for path, v in VOLTS.items()})
        yield sim
    finally:
        sim.close()


def _rows(dsn):
    with psycopg.connect(dsn) as conn:
        try:
            return conn.execute("SELECT radian_v, cc_port1_v, cc2_v, cc3_v, fndc_v FROM power "
                                "ORDER BY timestamp").fetchall()
        except psycopg.errors.UndefinedTable:  # the sink has not made it yet
            return []


def test_each_column_gets_the_device_it_names(tmp_path, pg_dsn, mate3_sim):
    defs = tmp_path / "config.yaml"
    defs.write_text(DEFINITIONS)
    client = Mate3Client(f"127.0.0.1:{mate3_sim.port}", min_poll_interval=0)
    source = Mate3Source(client, device="house", interval=0.1, owns_client=True)
    rec = Recorder([source], [PostgresSink(pg_dsn, definitions=str(defs))],
                   spool_dir=str(tmp_path / "spool"), progress_interval=None)
    with rec:
        rec.wait_for(lambda r: len(_rows(pg_dsn)) >= 2, timeout=30)
        before = len(_rows(pg_dsn))
        # the installer re-plugs: the charge controller from port 2 now sits on port 1 and
        # the Radian on port 2
        mate3_sim.swap_ports(1, 2)
        rec.wait_for(lambda r: any(row[1] is not None for row in _rows(pg_dsn)), timeout=30)
    rows = _rows(pg_dsn)
    first, last = rows[:before], [r for r in rows[before:] if r[1] is not None]
    for radian_v, cc_port1_v, cc2_v, cc3_v, fndc_v in first:
        assert (radian_v, cc_port1_v, cc2_v, cc3_v, fndc_v) == (50.8, None, 51.2, 52.4, 53.6)
    # after the swap: port 1 holds the charge controller (51.2 V); no Radian is on port 1
    # and no charge controller on port 2
    assert last and all(r == (None, 51.2, None, 52.4, 53.6) for r in last), last


@pytest.mark.parametrize("device, reason", [
    ("charge_controler", "unknown device 'charge_controler'"),
    ("inverter", "ambiguous"),
    ("radian_inverter", "ambiguous"),
    ("charge_controller_config", "configuration"),
    (None, "needs a device"),
])
def test_unknown_or_ambiguous_devices_are_refused(device, reason):
    entry = {"port": 1, "field": "battery_voltage", "db_column": "v"}
    if device is not None:
        entry["device"] = device
    with pytest.raises(ConfigurationError, match=reason) as info:
        Mate3Definitions({"power": [entry]})
    assert "power" in str(info.value)  # names the table


def test_ports_must_fit_the_device():
    with pytest.raises(ConfigurationError, match="HUB port"):
        Mate3Definitions({"t": [{"port": 11, "device": "fndc", "field": "x", "db_column": "a"}]})
    with pytest.raises(ConfigurationError, match="no HUB port"):
        Mate3Definitions({"t": [{"port": 3, "device": "mate3", "field": "x", "db_column": "a"}]})
    ok = Mate3Definitions({"t": [{"device": "mate3", "field": "x", "db_column": "a"},
                                 {"port": "4", "device": "FNDC", "field": "y",
                                  "db_column": "b"}]})
    assert ok.tables["t"][1][:2] == ("4", "fndc")


def test_a_bad_definitions_file_is_refused_when_the_config_loads(tmp_path):
    (tmp_path / "defs.yaml").write_text(textwrap.dedent("""
        tables:
          power:
            - port: 2
              device: "charge_controler"
              field: "watts"
              db_column: "cc_watts"
    """))
    cfg = tmp_path / "rec.toml"
    cfg.write_text(textwrap.dedent("""
        [[sinks]]
        type = "postgres"
        dsn = "postgresql://rec@127.0.0.1:1/x"
        definitions = "defs.yaml"
    """))
    with pytest.raises(ConfigurationError, match="charge_controler") as info:
        load_config(str(cfg))
    assert "defs.yaml" in str(info.value) and "known" in str(info.value)


def test_the_device_names_are_the_drivers_device_kinds():
    from pyburnerkit.mate3.models import GROUPS, DeviceKind
    from pyburnerkit.recorder.sinks.postgres import MATE3_HUB_DEVICES
    kinds = {k.value for k in DeviceKind}
    assert set(MATE3_HUB_DEVICES) <= kinds and "mate3" in kinds
    # every device group of a Mate3System (mate3 0.6 names) maps to its kind
    assert {g[:-1] for g in GROUPS} == set(MATE3_HUB_DEVICES)
