"""``pyburnerkit mate3 ...`` and ``pyburnerkit sim mate3``, in-process and as real processes."""

from __future__ import annotations

import csv
import io
import json
import os
import signal
import subprocess
import sys

import pytest

from pyburnerkit.cli import mate3 as mate3_cli
from pyburnerkit.cli.main import main
from pyburnerkit.mate3 import codec

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture
def dump_file(tmp_path):
    path = tmp_path / "modbus.json"
    path.write_text(codec.dump_json(codec.bundled_dump()))
    return str(path)


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_read_from_a_dump_text(capsys, dump_file):
    code, out, err = run(capsys, "mate3", "read", "--dump", dump_file)
    assert code == 0, err
    assert "charge_controllers[3]: ChargeController (port 3, DID 64111, address 40908)" in out
    assert "mate3.config: OutBackSystemControl" in out
    line = next(l for l in out.splitlines() if l.strip().startswith("absorb_volts"))
    assert line.split()[1:] == ["Y", "-1", "588", "58.8", "Volts"]


def test_read_json_has_every_block_with_raw_values(capsys, dump_file):
    code, out, _ = run(capsys, "mate3", "read", "--format", "json", "--dump", dump_file)
    blocks = {b["path"]: b for b in json.loads(out)}
    assert blocks["charge_controllers[3].config"]["values"]["absorb_volts"] == {
        "value": 58.8, "raw": 588, "units": "Volts", "scale_factor": -1, "implemented": True,
        "address": 40946, "read_at": blocks["charge_controllers[3].config"]["values"]
        ["absorb_volts"]["read_at"]}
    gateway = blocks["mate3"]["values"]["gateway_type"]
    assert gateway["value"] == "unknown (3)" and gateway["raw"] == 3
    assert blocks["mate3"]["values"]["enable_dhcp"]["value"] == "DHCP Enabled"


def test_read_fields_jsonl_and_csv(capsys, dump_file):
    fields = ["--field", "fndcs[5].state_of_charge", "--field",
              "single_phase_radian_inverters[1].sell_status"]
    code, out, _ = run(capsys, "mate3", "read", "--format", "jsonl", *fields, "--dump",
                       dump_file)
    rows = [json.loads(line) for line in out.splitlines()]
    assert [r["path"] for r in rows] == [fields[1], fields[3]]
    assert rows[1]["value"] == 80 and isinstance(rows[1]["flags"], list)
    code, out, _ = run(capsys, "mate3", "--format", "csv", "read", *fields,
                       "--dump", dump_file)
    table = list(csv.DictReader(io.StringIO(out)))
    assert table[0]["path"] == "fndcs[5].state_of_charge" and table[0]["units"] == "Percent"


def test_global_options_before_or_after_the_subcommand(capsys, sim):
    before = run(capsys, "mate3", "--host", sim.endpoint, "--format", "json", "devices")
    after = run(capsys, "mate3", "devices", "--host", sim.endpoint, "--format", "json")
    assert before[0] == after[0] == 0
    assert json.loads(before[1]) == json.loads(after[1])
    rows = {r["path"]: r for r in json.loads(before[1])}
    assert rows["charge_controllers[4]"]["config_address"] == 41054
    assert rows["mate3"]["port"] is None


def test_devices_text_from_a_live_simulator(capsys, sim):
    code, out, _ = run(capsys, "mate3", "devices", "--host", "127.0.0.1", "--port",
                       str(sim.port))
    assert code == 0
    assert any(l.split()[:4] == ["fndcs[5]", "FLEXnetDCRealTime", "41144", "5"]
               for l in out.splitlines())


def test_write_needs_allow_writes_and_then_writes(capsys, sim):
    path = "charge_controllers[3].config.absorb_volts"
    code, out, err = run(capsys, "mate3", "write", "--host", sim.endpoint, "--set",
                         f"{path}=57.6")
    assert code == 2 and "--allow-writes" in err and sim.writes_received() == 0
    code, out, err = run(capsys, "mate3", "write", "--host", sim.endpoint, "--allow-writes",
                         "--min-poll-interval", "0", "--set", f"{path}=57.6",
                         "--set", "mate3.system_name=cabin",
                         "--set", "mate3.config.set_inverter_mode=Search")
    assert code == 0, err
    assert f"{path} = 57.6 Volts" in out and "mate3.system_name = cabin" in out
    assert "mate3.config.set_inverter_mode = sent (write-only)" in out
    assert sim.registers[40946] == 576 and sim.commands == [(40498, (2,))]


def test_write_values_are_parsed_never_evaluated(capsys, sim):
    code, _, err = run(capsys, "mate3", "write", "--host", sim.endpoint, "--allow-writes",
                       "--set", "charge_controllers[3].config.absorb_volts=__import__('os')")
    assert code == 2 and "takes a number" in err
    code, _, err = run(capsys, "mate3", "write", "--host", sim.endpoint, "--allow-writes",
                       "--set", "charge_controllers[3].config.absorb_volts=57.6",
                       "--set", "charge_controllers[3].config.float_volts=9999")
    assert code == 2 and "out of range" in err
    assert sim.writes_received() == 0  # one bad value: nothing written at all


def test_dump_really_writes_the_file(capsys, sim, tmp_path):
    out_file = tmp_path / "saved.json"
    code, _, err = run(capsys, "mate3", "dump", str(out_file), "--host", sim.endpoint)
    assert code == 0 and "1278 registers" in err
    saved = codec.load_dump(str(out_file))
    assert saved == sim.registers


def test_usage_errors(capsys, dump_file, monkeypatch):
    monkeypatch.delenv(mate3_cli.HOST_ENV, raising=False)
    code, _, err = run(capsys, "mate3", "read")
    assert code == 2 and "--host" in err
    code, _, err = run(capsys, "mate3", "read", "--host", "127.0.0.1", "--dump", dump_file)
    assert code == 2 and "not both" in err
    code, _, err = run(capsys, "mate3", "read", "--field", "nope", "--dump", dump_file)
    assert code == 2 and "DEVICE[.config].FIELD" in err
    code, _, err = run(capsys, "mate3", "read", "--dump", "/nonexistent.json")
    assert code == 2 and "cannot read" in err


def test_port_in_the_host_or_as_an_option(capsys, sim):
    for argv in (("--host", f"127.0.0.1:{sim.port}"), ("--host", f"modbus://127.0.0.1:{sim.port}"),
                 ("--host", f"127.0.0.1:{sim.port}", "--port", str(sim.port))):
        code, out, _ = run(capsys, "mate3", "devices", "--format", "json", *argv)
        assert code == 0 and [row["port"] for row in json.loads(out)][:3] == [None, 3, 4]
    reads = len(sim.received)
    code, _, err = run(capsys, "mate3", "devices", "--host", f"127.0.0.1:{sim.port}",
                       "--port", "502")
    assert code == 2 and f"names port {sim.port} but port=502" in err
    code, _, err = run(capsys, "mate3", "devices", "--host", "ws://127.0.0.1")
    assert code == 2 and "unsupported scheme 'ws'" in err
    assert len(sim.received) == reads  # refused before anything was sent


def test_device_errors_exit_1(capsys):
    code, _, err = run(capsys, "mate3", "devices", "--host", "127.0.0.1:1", "--timeout", "2")
    assert code == 1 and "DeviceConnectionError" in err and "Traceback" not in err


def test_demo_runs_and_cleans_up():
    lines = []
    mate3_cli.demo(lines.append, duration=0.5)
    text = "\n".join(lines)
    assert "full read in 13 requests" in text
    assert "write is refused" in text and "now at address 41026" in text


def test_sim_and_cli_as_real_processes(tmp_path):
    env = dict(os.environ, PYTHONPATH=ROOT)
    server = subprocess.Popen([sys.executable, "-m", "pyburnerkit.cli.main", "sim", "mate3",
                               "--port", "0", "--system", "cc:2,fndc:4"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              env=env, cwd=ROOT)
    try:
        where = server.stdout.readline().strip()
        assert where.startswith("modbus://127.0.0.1:"), where
        done = subprocess.run([sys.executable, "-m", "pyburnerkit.cli.main", "mate3",
                               "--format", "json", "devices", "--host", where],
                              capture_output=True, text=True, timeout=60, env=env, cwd=ROOT)
        assert done.returncode == 0, done.stderr
        paths = [row["path"] for row in json.loads(done.stdout)]
        assert paths == ["mate3", "charge_controllers[2]", "fndcs[4]"]
    finally:
        server.send_signal(signal.SIGINT)
        try:
            server.wait(10)
        finally:
            server.stdout.close()
            server.stderr.close()
    assert server.returncode == 0


def test_host_from_the_environment_and_its_yielding_to_dump(capsys, sim, dump_file,
                                                            monkeypatch):
    monkeypatch.setenv(mate3_cli.HOST_ENV, sim.endpoint)
    code, out, err = run(capsys, "mate3", "devices", "--format", "json",
                         "--min-poll-interval", "0")
    assert code == 0, err
    assert [row["port"] for row in json.loads(out)][:3] == [None, 3, 4]
    reads_before = len(sim.received)
    code, out, err = run(capsys, "mate3", "read", "--dump", dump_file, "--field",
                         "mate3.system_name")
    assert code == 0, err
    assert out.startswith("mate3.system_name = ")
    assert len(sim.received) == reads_before  # served from the dump, not the device


def test_password_writes_are_hidden_in_command_output(capsys, sim):
    code, out, err = run(capsys, "mate3", "write", "--host", sim.endpoint, "--allow-writes",
                         "--min-poll-interval", "0", "--format", "json",
                         "--set", "mate3.write_password=hunter22")
    assert code == 0, err
    assert json.loads(out)[0]["value"] == "<hidden>"
    assert "hunter22" not in out + err
    assert sim.commands[-1][0] == 40069 + 13  # it was sent all the same
    code, out, err = run(capsys, "mate3", "write", "--host", sim.endpoint,
                         "--set", "mate3.write_password=hunter22")
    assert code == 2 and "hunter22" not in out + err
