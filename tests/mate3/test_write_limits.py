"""Every Mate3 set point is checked against its documented limit before anything is sent.

Regression tests for the hardening issue "writes that can damage equipment": ``absorb_volts=999``
used to pass (only the register type's range was checked) and reach the device.
"""

from __future__ import annotations

import csv
import os

import pytest

from pyburnerkit import ConfigurationError, WriteNotAllowedError
from pyburnerkit.cli.main import main
from pyburnerkit.mate3 import codec, limits
from pyburnerkit.mate3.models import FieldType, WritePlan

ABSORB = "charge_controllers[3].config.absorb_volts"
ABSORB_ADDRESS = 40946  # 64112 on port 3 starts at 40908; absorb_volts is offset 39
SYSTEM_VOLTAGE = 40069 + 405  # 64110 system_voltage (offset 406)


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


# ------------------------------------------------------------------------------ the table
def test_every_writable_field_has_exactly_one_limit_row_and_no_row_is_stray():
    writable = {(did, f.name) for did, b in codec.block_defs().items()
                for f in b.fields.values() if f.mode.writable}
    path = os.path.join(codec.DATA_DIR, "mate3_write_limits.csv")
    with open(path, newline="", encoding="utf-8") as fh:
        rows = [(int(r["device_id"]), r["field_name"]) for r in csv.DictReader(fh)]
    assert len(rows) == len(set(rows)), "a field is listed twice"
    assert set(rows) == writable
    for did, name in writable:
        limit = limits.limit_for(did, name)
        assert limit.source, (did, name)  # every limit says where it comes from


def test_limit_kinds_match_the_field_types():
    for did, bdef in codec.block_defs().items():
        for fdef in bdef.fields.values():
            if not fdef.mode.writable:
                continue
            kind = limits.limit_for(did, fdef.name).kind
            if fdef.type.is_enum:
                assert kind == "enum", fdef
            elif fdef.type is FieldType.STRING:
                assert kind == "text", fdef
            elif fdef.type is FieldType.IPV4:
                assert kind == "ipv4", fdef
            else:
                assert kind in ("range", "battery", "complement", "none"), fdef


def test_battery_limits_scale_with_the_nominal_voltage():
    fdef = codec.block_defs()[64112].fields["absorb_volts"]
    for nominal, low, high in ((12, 12.0, 16.5), (24, 24.0, 33.0), (48, 48.0, 66.0),
                               (60, 60.0, 82.5)):
        assert limits.window(fdef, nominal) == [(low, high)]
        limits.check_value(ABSORB, fdef, high, nominal=nominal)
        with pytest.raises(ConfigurationError, match=f"{nominal} V system"):
            limits.check_value(ABSORB, fdef, high + 0.1, nominal=nominal)
    with pytest.raises(ConfigurationError, match="nominal battery voltage"):
        limits.check_value(ABSORB, fdef, 14.4, nominal=None)
    with pytest.raises(ConfigurationError, match="26 V"):
        limits.check_value(ABSORB, fdef, 14.4, nominal=26)


def test_a_field_with_two_documented_ranges():
    fdef = codec.block_defs()[64120].fields["set_ac_output_offline_freq"]
    path = "mate3.config.set_ac_output_offline_freq"
    limits.check_value(path, fdef, 50.0)
    limits.check_value(path, fdef, 60.0)
    with pytest.raises(ConfigurationError) as info:
        limits.check_value(path, fdef, 55.0)
    assert "55.0 Hz" in str(info.value) and "46.5..54.1 Hz or 55.8..64.9 Hz" in str(info.value)


def test_a_field_without_a_documented_limit_needs_the_expert_override():
    fdef = codec.block_defs()[64112].fields["bulk_current"]
    path = "charge_controllers[3].config.bulk_current"
    with pytest.raises(ConfigurationError) as info:
        limits.check_value(path, fdef, 60)
    text = str(info.value)
    assert "60" in text and "Amps" in text and "no documented limit" in text
    assert "expert" in text
    limits.check_value(path, fdef, 60, expert=True)


def test_the_expert_override_never_loosens_a_documented_limit():
    fdef = codec.block_defs()[64112].fields["absorb_volts"]
    with pytest.raises(ConfigurationError, match="999"):
        limits.check_value(ABSORB, fdef, 999, nominal=48, expert=True)


# ------------------------------------------------------------------------------ library
def test_absorb_999_volts_is_refused_naming_value_limit_and_unit(sim, make_client):
    client = make_client(sim, allow_writes=True)
    with pytest.raises(ConfigurationError) as info:
        client.write(ABSORB, 999)
    text = str(info.value)
    assert "999" in text and "48..66" in text and "Volts" in text and "48 V system" in text
    assert sim.writes_received() == 0


def test_the_limit_follows_the_nominal_voltage_the_mate3_reports(sim, make_client):
    sim.set(**{f"r{SYSTEM_VOLTAGE}": 12})
    client = make_client(sim, allow_writes=True)
    with pytest.raises(ConfigurationError, match="12..16.5 Volts"):
        client.write(ABSORB, 57.6)
    assert sim.writes_received() == 0
    assert client.write(ABSORB, 14.4).value == 14.4
    assert sim.registers[ABSORB_ADDRESS] == 144


def test_an_unknown_nominal_voltage_refuses_battery_set_points(sim, make_client):
    sim.set(**{f"r{SYSTEM_VOLTAGE}": 0xFFFF})  # "not implemented"
    client = make_client(sim, allow_writes=True)
    with pytest.raises(ConfigurationError, match="nominal battery voltage"):
        client.write(ABSORB, 57.6)
    assert sim.writes_received() == 0


def test_the_session_checks_again_with_what_it_reads_just_before_the_write(sim, make_client):
    # The nominal voltage changed on the device after the client read it: the value passes the
    # client-side check (48 V system) but not the one made with fresh registers (12 V).
    client = make_client(sim, allow_writes=True)
    sim.set(**{f"r{SYSTEM_VOLTAGE}": 12})
    with pytest.raises(ConfigurationError, match="12 V system"):
        client.write(ABSORB, 57.6)
    assert sim.writes_received() == 0


def test_a_field_without_a_limit_is_refused_then_written_with_expert(sim, make_client):
    client = make_client(sim, allow_writes=True)
    path = "charge_controllers[3].config.bulk_current"
    with pytest.raises(ConfigurationError, match="no documented limit"):
        client.write(path, 55)
    assert sim.writes_received() == 0
    assert client.write(path, 55, expert=True).value == 55
    assert sim.writes_received() == 1


def test_a_write_complement_takes_only_the_complement_of_its_read_register(sim, make_client):
    client = make_client(sim, allow_writes=True)
    path = "charge_controllers[3].config.clear_data_log_write_complement"
    token = client.read_value("charge_controllers[3].config.clear_data_log_read")
    with pytest.raises(ConfigurationError) as info:
        client.write(path, 1)
    assert str(~token & 0xFFFF) in str(info.value) and "clear_data_log_read" in str(info.value)
    assert sim.writes_received() == 0
    assert client.write(path, ~token & 0xFFFF) is None
    assert sim.commands[-1][1] == (~token & 0xFFFF,)


def test_dry_run_reads_but_never_writes(sim, make_client):
    client = make_client(sim)  # no allow_writes needed: nothing is changed
    plan = client.plan_write(ABSORB, 57.6)
    assert isinstance(plan, WritePlan)
    assert plan.address == ABSORB_ADDRESS and plan.registers == (576,)
    assert plan.value == 57.6 and plan.units == "Volts" and plan.scale_factor == -1
    assert "48..66 Volts" in plan.limit
    with pytest.raises(ConfigurationError, match="999"):
        client.plan_write(ABSORB, 999)
    assert sim.writes_received() == 0


def test_write_docstring_warns_about_timed_out_writes():
    from pyburnerkit.mate3.client import Mate3Client
    sentence = ("If this call times out, the device may still apply the write later; it is "
                "never retried automatically.")
    assert sentence in " ".join(Mate3Client.write.__doc__.split())


# ------------------------------------------------------------------------------ CLI
def test_cli_refuses_999_volts_before_sending(capsys, sim):
    code, _, err = run(capsys, "mate3", "write", "--host", sim.endpoint, "--allow-writes",
                       "--min-poll-interval", "0", "--set", f"{ABSORB}=999")
    assert code == 2
    assert "999" in err and "48..66 Volts" in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1
    assert sim.writes_received() == 0


def test_cli_dry_run_prints_the_registers_and_sends_nothing(capsys, sim):
    code, out, err = run(capsys, "mate3", "write", "--host", sim.endpoint, "--dry-run",
                         "--min-poll-interval", "0", "--set", f"{ABSORB}=57.6",
                         "--set", "mate3.system_name=cabin")
    assert code == 0, err
    assert f"{ABSORB} = 57.6 Volts" in out and f"{ABSORB_ADDRESS}" in out and "[576]" in out
    assert "mate3.system_name" in out and "would write" in out
    assert sim.writes_received() == 0


def test_cli_dry_run_still_refuses_a_bad_value(capsys, sim):
    code, _, err = run(capsys, "mate3", "write", "--host", sim.endpoint, "--dry-run",
                       "--min-poll-interval", "0", "--set", f"{ABSORB}=999")
    assert code == 2 and "48..66 Volts" in err
    assert sim.writes_received() == 0


def test_cli_expert_override(capsys, sim):
    path = "charge_controllers[3].config.bulk_current"
    code, _, err = run(capsys, "mate3", "write", "--host", sim.endpoint, "--allow-writes",
                       "--min-poll-interval", "0", "--set", f"{path}=55")
    assert code == 2 and "no documented limit" in err and "--expert" in err
    assert sim.writes_received() == 0
    code, out, err = run(capsys, "mate3", "write", "--host", sim.endpoint, "--allow-writes",
                         "--expert", "--min-poll-interval", "0", "--set", f"{path}=55")
    assert code == 0, err
    assert f"{path} = 55 Amps" in out and sim.writes_received() == 1


def test_cli_without_allow_writes_exits_2_with_one_line(capsys, sim):
    code, _, err = run(capsys, "mate3", "write", "--host", sim.endpoint,
                       "--set", f"{ABSORB}=57.6")
    assert code == 2 and "--allow-writes" in err and "WriteNotAllowedError" in err
    assert len(err.strip().splitlines()) == 1
    assert sim.writes_received() == 0


def test_library_refuses_without_allow_writes_before_checking_anything(sim, make_client):
    client = make_client(sim)
    with pytest.raises(WriteNotAllowedError):
        client.write(ABSORB, 999)
    assert sim.writes_received() == 0
