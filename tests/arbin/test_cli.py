"""``pyburnerkit arbin ...`` in process, and the CLI and simulator as real subprocesses."""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import signal
import subprocess
import sys
import threading

import pytest

from pyburnerkit.cli import arbin as arbin_cli
from pyburnerkit.cli.main import main

from ..helpers import wait_until
from .conftest import SECRET, USER

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture
def env(monkeypatch):
    monkeypatch.setenv("ARBIN_CTI_USERNAME", USER)
    monkeypatch.setenv("ARBIN_CTI_PASSWORD", SECRET)


def run(capsys, *argv: str):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_status_formats(sim, env, capsys) -> None:
    port = str(sim.port)
    code, out, _ = run(capsys, "arbin", "status", "--port", port)
    assert code == 0 and len(out.strip().splitlines()) == 17 and "Idle" in out
    code, out, _ = run(capsys, "arbin", "--port", port, "status", "--channel", "4",
                       "--channel", "2", "--format", "csv")
    rows = list(csv.DictReader(io.StringIO(out)))
    assert code == 0 and [r["channel"] for r in rows] == ["4", "2"]
    assert rows[0]["state"] == "Idle" and float(rows[0]["voltage_v"]) > 3
    code, out, _ = run(capsys, "arbin", "status", "--channel", "7", "--port", port,
                       "--format", "json")
    assert code == 0 and json.loads(out)[0]["channel"] == 7


def test_host_takes_an_endpoint(sim, env, capsys) -> None:
    for host in (f"127.0.0.1:{sim.port}", f"cti://127.0.0.1:{sim.port}"):
        code, out, err = run(capsys, "arbin", "--host", host, "status", "--channel", "3",
                             "--format", "json")
        assert code == 0, err
        assert json.loads(out)[0]["channel"] == 3
    assert sim.logins == 2
    code, _, err = run(capsys, "arbin", "status", "--host", f"127.0.0.1:{sim.port}",
                       "--port", str(sim.port + 1))
    assert code == 2 and f"names port {sim.port} but port={sim.port + 1}" in err
    code, _, err = run(capsys, "arbin", "status", "--host", "http://127.0.0.1")
    assert code == 2 and "unsupported scheme 'http'" in err
    assert sim.logins == 2


def test_host_sim_runs_the_simulator_in_process(monkeypatch, capsys) -> None:
    monkeypatch.delenv("ARBIN_CTI_USERNAME", raising=False)
    monkeypatch.delenv("ARBIN_CTI_PASSWORD", raising=False)
    code, out, err = run(capsys, "arbin", "status", "--host", "sim://?channels=3",
                         "--format", "json")
    assert code == 0, err
    assert [row["channel"] for row in json.loads(out)] == [1, 2, 3]


def test_control_commands_and_errors(sim, env, capsys) -> None:
    port = str(sim.port)
    code, _, err = run(capsys, "arbin", "assign", "--port", port, "--channel", "2",
                       "--schedule", "Nope.sdx", "--allow-writes")
    assert code == 1 and "schedule not found (code 0x13)" in err
    assert run(capsys, "arbin", "--allow-writes", "assign", "--port", port, "--channel", "2",
               "--schedule", "MV_Charge.sdx")[0] == 0  # the option also works before it
    code, out, _ = run(capsys, "arbin", "start", "--port", port, "--channel", "2",
                       "--test-name", "cli-test", "--format", "json", "--allow-writes")
    assert code == 0 and json.loads(out)["result"] == "ok"
    assert sim.channel_status(2).test_name == "cli-test"
    assert run(capsys, "arbin", "set-mv", "--port", port, "--channel", "2", "--mv", "1",
               "--value", "0.5", "--allow-writes")[0] == 0
    assert sim.meta_variables(2) == {1: 0.5}
    code, out, _ = run(capsys, "arbin", "watch", "--port", port, "--channel", "2",
                       "--interval", "0.05", "--count", "2", "--format", "jsonl")
    lines = [json.loads(line) for line in out.splitlines()]
    assert code == 0 and len(lines) == 2 and lines[0]["state"] == "Charge"
    assert run(capsys, "arbin", "stop", "--port", port, "--all", "--allow-writes")[0] == 0
    assert not sim.channel_status(2).is_running
    code, _, err = run(capsys, "arbin", "status", "--port", port, "--channel", "99")
    assert code == 2 and "1..16" in err
    code, _, err = run(capsys, "arbin", "status", "--port", port, "--channel", "1", "--all")
    assert code == 2


def test_control_commands_need_allow_writes_and_send_nothing_without(sim, env, capsys) -> None:
    # Regression: assign / start / set-mv used to run without --allow-writes (docs/cli.rst).
    port = str(sim.port)
    for argv in (["assign", "--channel", "2", "--schedule", "MV_Charge.sdx"],
                 ["start", "--channel", "2", "--test-name", "t"],
                 ["set-mv", "--channel", "2", "--mv", "1", "--value", "0.5"],
                 ["stop", "--all"]):
        code, out, err = run(capsys, "arbin", *argv, "--port", port)
        assert code == 2 and out == "", argv
        assert err.count("\n") == 1 and "--allow-writes" in err and "Traceback" not in err
    assert sim.logins == 0 and sim.run_sync(lambda: list(sim.received)) == []


def test_missing_credentials_and_wrong_password(sim, capsys, monkeypatch) -> None:
    monkeypatch.delenv("ARBIN_CTI_USERNAME", raising=False)
    monkeypatch.delenv("ARBIN_CTI_PASSWORD", raising=False)
    code, _, err = run(capsys, "arbin", "status", "--port", str(sim.port))
    assert code == 2 and "ARBIN_CTI_USERNAME" in err
    monkeypatch.setenv("ARBIN_CTI_USERNAME", USER)
    monkeypatch.setenv("ARBIN_CTI_PASSWORD", "not-it")
    code, _, err = run(capsys, "arbin", "status", "--port", str(sim.port))
    assert code == 1 and "AuthenticationError" in err and "not-it" not in err


def test_demo_cleans_up() -> None:
    lines = []
    arbin_cli.demo(lines.append, duration=0.5)
    assert any("logged in, 8 channels" in line for line in lines)
    assert any("Charge" in line or "Rest" in line for line in lines)
    assert lines[-1].endswith("Idle")


def test_register_sim_runs_until_stopped(capsys) -> None:
    parser = argparse.ArgumentParser()
    arbin_cli.register_sim(parser.add_subparsers(dest="kind"))
    args = parser.parse_args(["arbin", "--port", "0", "--channels", "3"])
    stop = threading.Event()
    result = []
    thread = threading.Thread(target=lambda: result.append(args.handler(args, stop)),
                              name="test-sim")
    thread.start()
    seen = []
    try:
        wait_until(lambda: seen.append(capsys.readouterr().out) or
                   any("listening on 127.0.0.1:" in s for s in seen),
                   message="the listening line")
    finally:
        stop.set()
        thread.join(10)
    assert not thread.is_alive() and result == [0]


def test_cli_and_simulator_as_real_subprocesses() -> None:
    env = dict(os.environ, PYTHONPATH=ROOT)
    server = subprocess.Popen([sys.executable, "-m", "pyburnerkit.cli.main", "sim", "arbin",
                               "--port", "0", "--channels", "5", "--username", "sub",
                               "--password", "process-pw"],
                              stdout=subprocess.PIPE, text=True, cwd=ROOT, env=env)
    try:
        line = server.stdout.readline()
        assert "listening on 127.0.0.1:" in line, line
        port = line.split("127.0.0.1:")[1].split(";")[0]
        client_env = dict(env, ARBIN_CTI_USERNAME="sub", ARBIN_CTI_PASSWORD="process-pw")
        done = subprocess.run([sys.executable, "-m", "pyburnerkit.cli.main", "arbin", "status",
                               "--port", port, "--format", "csv"], capture_output=True,
                              text=True, cwd=ROOT, env=client_env, timeout=60)
        assert done.returncode == 0, done.stderr
        assert [r["channel"] for r in csv.DictReader(io.StringIO(done.stdout))] == \
            ["1", "2", "3", "4", "5"]
    finally:
        server.send_signal(signal.SIGTERM)
        assert server.wait(20) == 0
        server.stdout.close()


def test_pyburnerkit_demo_runs_the_arbin_part(capsys) -> None:
    code, out, _ = run(capsys, "demo", "--only", "arbin", "--duration", "0.5")
    assert code == 0 and "== arbin ==" in out and "arbin: stopped" in out


def test_watch_csv_is_one_table_and_env_file_gives_credentials(sim, capsys, monkeypatch,
                                                               tmp_path) -> None:
    monkeypatch.delenv("ARBIN_CTI_USERNAME", raising=False)
    monkeypatch.setenv("ARBIN_CTI_PASSWORD", "stale-environment-value")
    env_file = tmp_path / "cti.env"
    env_file.write_text(f"ARBIN_CTI_USERNAME={USER}\nARBIN_CTI_PASSWORD={SECRET}\n")
    code, out, err = run(capsys, "arbin", "--env-file", str(env_file), "watch", "--port",
                         str(sim.port), "--channel", "1", "--channel", "2", "--interval",
                         "0.02", "--count", "3", "--format", "csv")
    assert code == 0, err
    lines = out.splitlines()
    assert sum(line.startswith("channel,") for line in lines) == 1  # one header, not one a poll
    rows = list(csv.DictReader(io.StringIO(out)))
    assert [r["channel"] for r in rows] == ["1", "2"] * 3
    code, _, err = run(capsys, "arbin", "status", "--port", str(sim.port), "--env-file",
                       str(tmp_path / "missing.env"))
    assert code == 2 and "does not exist" in err
