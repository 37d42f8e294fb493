"""mate3's CLI habits in ``pyburnerkit mate3``: -H/-p/-f, prettyjson, the default read,
--list-fields, mate3's DEVICE.FIELD names, and raw register access (gated writes)."""

from __future__ import annotations

import json

from pyburnerkit.cli.main import main

ABSORB = 40946  # charge_controllers[3].config.absorb_volts


def run(capsys, *argv):
    # no pacing between operations: the simulator needs no protection
    code = main(list(argv) + ["--min-poll-interval", "0"])
    out, err = capsys.readouterr()
    return code, out, err


def test_no_subcommand_reads_like_mate3(capsys, sim):
    code, out, err = run(capsys, "mate3", "-H", "127.0.0.1", "-p", str(sim.port),
                         "--min-poll-interval", "0")
    assert code == 0, err
    assert "charge_controllers[3]: ChargeController (port 3, DID 64111, address 40908)" in out


def test_prettyjson_and_json(capsys, sim):
    code, pretty, _ = run(capsys, "mate3", "-H", sim.endpoint, "-f", "prettyjson", "devices")
    code2, plain, _ = run(capsys, "mate3", "devices", "-H", sim.endpoint, "-f", "json")
    assert code == code2 == 0
    assert json.loads(pretty) == json.loads(plain)
    assert '\n    {\n        "path": "mate3"' in pretty  # indented by 4, as mate3's


def test_mate3_device_field_names_with_hub_port(capsys, sim):
    code, out, err = run(capsys, "mate3", "-H", sim.endpoint, "-f", "jsonl",
                         "--field", "charge_controller.battery_voltage", "-P", "4",
                         "--field", "single_phase_radian_inverters[1].battery_voltage")
    assert code == 0, err
    rows = [json.loads(line) for line in out.splitlines()]
    assert [r["path"] for r in rows] == ["charge_controllers[4].battery_voltage",
                                        "single_phase_radian_inverters[1].battery_voltage"]
    code, _, err = run(capsys, "mate3", "read", "-H", sim.endpoint,
                       "--field", "charge_controller.battery_voltage")
    assert code == 2 and "Multiple devices of type charge_controller" in err and "3, 4" in err


def test_list_fields(capsys, sim):
    code, out, err = run(capsys, "mate3", "-H", sim.endpoint, "--list-fields", "-f", "json")
    assert code == 0, err
    listing = json.loads(out)
    assert {d["path"] for d in listing["devices"]} >= {"mate3", "fndcs[5]"}
    absorb = next(f for f in listing["fields"] if f["field"] == "absorb_volts"
                  and f["mate3_name"].startswith("charge_controller_configuration"))
    assert absorb["ports"] == [3, 4] and absorb["units"] == "Volts"
    assert "48..66 Volts" in absorb["limit"]
    assert all(f["mode"] in ("w", "rw") for f in listing["fields"])
    code, out, _ = run(capsys, "mate3", "write", "--list-fields", "-H", sim.endpoint)
    assert code == 0 and "writable fields:" in out
    assert ("charge_controllers[3].config.absorb_volts [Volts] (rw; mate3: "
            "charge_controller_configuration.absorb_volts; ports 3,4)") in out


def test_write_with_mate3_04_names_takes_raw_integers(capsys, sim):
    name = "charge_controller_configuration.absorb_volts"
    code, _, err = run(capsys, "mate3", "write", "-H", sim.endpoint, "--allow-writes",
                       "-s", f"{name}=330", "-P", "3")
    assert code == 2 and "33.0 Volts" in err and "48..66 Volts" in err
    assert sim.writes_received() == 0
    code, out, err = run(capsys, "mate3", "write", "-H", sim.endpoint, "--allow-writes",
                         "--set", f"{name}=576", "--hub-port", "3")
    assert code == 0, err
    assert "charge_controllers[3].config.absorb_volts = 57.6 Volts" in out
    assert sim.registers[ABSORB] == 576


def test_raw_register_read(capsys, sim):
    code, out, err = run(capsys, "mate3", "registers", "read", "40000", "2", "-H",
                         sim.endpoint)
    assert code == 0, err
    assert out.splitlines() == ["40000 = 21365 (0x5375)", "40001 = 28243 (0x6e53)"]
    code, out, _ = run(capsys, "mate3", "-f", "json", "registers", "read", "0x9c40",
                       "-H", sim.endpoint)
    assert json.loads(out) == {"address": 40000, "count": 1, "values": [21365]}
    code, _, err = run(capsys, "mate3", "registers", "read", "40000", "101", "-H",
                       sim.endpoint)
    assert code == 2 and "count=101" in err and "1..100" in err


def test_raw_register_write_is_gated(capsys, sim):
    code, _, err = run(capsys, "mate3", "registers", "write", str(ABSORB), "570",
                       "-H", sim.endpoint)
    assert code == 2 and "--allow-writes" in err and sim.writes_received() == 0
    code, _, err = run(capsys, "mate3", "registers", "write", str(ABSORB), "70000",
                       "--allow-writes", "-H", sim.endpoint)
    assert code == 2 and "70000" in err and "0..65535" in err and sim.writes_received() == 0
    code, out, err = run(capsys, "mate3", "registers", "write", str(ABSORB), "570",
                         "--allow-writes", "-H", sim.endpoint)
    assert code == 0, err
    assert sim.registers[ABSORB] == 570 and "read back [570]" in out
    # a read-only register (a block's DID) is refused before sending, as write --set does
    writes = sim.writes_received()
    code, _, err = run(capsys, "mate3", "registers", "write", "40908", "1",
                       "--allow-writes", "-H", sim.endpoint)
    assert code == 2 and "charge_controllers[3].did" in err and "read-only" in err
    assert sim.writes_received() == writes and sim.registers[40908] == 64111
    # a register of no known field is sent; the simulator, like the device, refuses it
    code, _, err = run(capsys, "mate3", "registers", "write", "40562", "1",
                       "--allow-writes", "-H", sim.endpoint)
    assert code == 1 and "DeviceError" in err and sim.writes_received() == writes + 1
