"""``pyburnerkit afterburner ...`` in process and as real subprocesses."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from typing import Any

import pytest

from pyburnerkit.afterburner import AfterburnerSim
from pyburnerkit.cli.main import main


def run(capsys: Any, *argv: str) -> tuple:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_status_as_json_with_options_after_the_subcommand(sim: AfterburnerSim, capsys: Any) -> None:
    code, out, err = run(capsys, "afterburner", "status", "--host", "127.0.0.1",
                         "--port", str(sim.port), "--format", "json")
    assert code == 0, err
    record = json.loads(out)
    assert record["run_state"] == "STOPPED" and record["desired_temperature"] == 22
    assert record["fuel_used_ml"] == pytest.approx(7239.5 * 0.022)


def test_options_before_the_subcommand_and_text_output(sim: AfterburnerSim, capsys: Any) -> None:
    code, out, _ = run(capsys, "afterburner", "--host", f"127.0.0.1:{sim.port}", "--format",
                       "text", "status")
    assert code == 0
    assert "desired_temperature" in out and "STOPPED" in out


def test_set_run_and_save(sim: AfterburnerSim, capsys: Any) -> None:
    host = f"127.0.0.1:{sim.port}"
    code, out, err = run(capsys, "afterburner", "set", "desired_temperature=25", "FrostOn=3",
                         "--host", host, "--format", "jsonl", "--allow-writes")
    assert code == 0, err
    assert json.loads(out) == {"desired_temperature": 25, "FrostOn": 3}
    assert sim.snapshot()["FrostOn"] == 3
    code, out, _ = run(capsys, "afterburner", "--allow-writes", "run", "on", "--host", host,
                       "--format", "json")
    assert code == 0 and json.loads(out)["run_state"] == "STARTING"
    code, _, _ = run(capsys, "afterburner", "save", "--host", host, "--allow-writes")
    assert code == 0 and sim.nvsave_count == 1
    # Stopping needs no opt-in: it makes the heater safe.
    code, out, err = run(capsys, "afterburner", "run", "off", "--host", host, "--format", "json")
    assert code == 0, err
    assert json.loads(out)["run_state"] in ("STOPPING", "COOLING", "STOPPED")


def test_writes_without_allow_writes_are_one_line_usage_errors(sim: AfterburnerSim,
                                                               capsys: Any) -> None:
    host = f"127.0.0.1:{sim.port}"
    for command, words in (("set", ["set", "desired_temperature=25"]), ("run on", ["run", "on"]),
                           ("save", ["save"])):
        code, out, err = run(capsys, "afterburner", *words, "--host", host)
        assert code == 2 and out == "", err
        assert err == (f"pyburnerkit: error: 'afterburner {command}' changes the heater: add "
                       "--allow-writes to allow it ('run off' needs no opt-in)\n")
    assert sim.received == [] and sim.nvsave_count == 0


def test_usage_and_device_errors_are_one_line_with_exit_codes(sim: AfterburnerSim,
                                                             capsys: Any) -> None:
    host = f"127.0.0.1:{sim.port}"
    code, _, err = run(capsys, "afterburner", "set", "desired_temperature=99", "--host", host,
                       "--allow-writes")
    assert code == 2 and "8..35 °C" in err and "Traceback" not in err
    code, _, err = run(capsys, "afterburner", "set", "PumpMin=2", "--host", host)
    assert code == 2 and "--allow-writes" in err and err.count("\n") == 1
    code, _, err = run(capsys, "afterburner", "set", "oops", "--host", host)
    assert code == 2 and "KEY=VALUE" in err
    code, _, err = run(capsys, "afterburner", "bogus")
    assert code == 2
    code, _, err = run(capsys, "afterburner", "status", "--host", "127.0.0.1:1", "--timeout", "1")
    assert code == 1 and err.count("\n") == 1 and "Traceback" not in err


def test_port_joins_a_plain_host_and_ipv6_gets_brackets(capsys: Any,
                                                        ipv6_loopback: str) -> None:
    with AfterburnerSim(tick=0).start(ipv6_loopback) as sim:
        code, out, err = run(capsys, "afterburner", "status", "--host", ipv6_loopback, "--port",
                             str(sim.port), "--format", "json")
        assert code == 0, err
        assert json.loads(out)["desired_temperature"] == 22


@pytest.mark.parametrize("host,message", [
    ("ws://127.0.0.1/", "give --port with a plain host, not with a URL"),
    ("127.0.0.1:81", "--host 127.0.0.1:81 names a port already; leave out --port"),
    ("[::1]:81", "--host [::1]:81 names a port already; leave out --port"),
])
def test_port_with_a_host_that_has_one_is_a_usage_error(capsys: Any, host: str,
                                                        message: str) -> None:
    code, out, err = run(capsys, "afterburner", "status", "--host", host, "--port", "8081")
    assert (code, out) == (2, "") and message in err and err.count("\n") == 1, err


def test_a_bad_endpoint_is_a_one_line_usage_error(capsys: Any) -> None:
    code, out, err = run(capsys, "afterburner", "status", "--host", "wss://heater")
    assert (code, out) == (2, "") and "plain ws:// only" in err and err.count("\n") == 1, err


def test_watch_prints_pushed_changes(sim: AfterburnerSim, capsys: Any) -> None:
    sim.set(temp_c=20.0)
    code, out, _ = run(capsys, "afterburner", "watch", "--duration", "0.5", "--host",
                       f"127.0.0.1:{sim.port}", "--format", "jsonl")
    assert code == 0
    lines = [json.loads(line) for line in out.splitlines()]
    assert lines[0]["run_state"] == "STOPPED"


def test_help_everywhere(capsys: Any) -> None:
    for argv in (["--help"], ["afterburner", "--help"], ["afterburner", "set", "--help"],
                 ["sim", "afterburner", "--help"], ["demo", "--help"]):
        with pytest.raises(SystemExit) as info:
            main(argv)
        assert info.value.code == 0
        assert "usage:" in capsys.readouterr().out


def cli(*argv: str) -> list:
    return [sys.executable, "-m", "pyburnerkit.cli.main", *argv]


def test_sim_subcommand_serves_a_real_client_in_another_process() -> None:
    server = subprocess.Popen(cli("sim", "afterburner", "--port", "0", "--tick", "0"),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        url = server.stdout.readline().strip()
        assert url.startswith("ws://127.0.0.1:")
        done = subprocess.run(cli("afterburner", "status", "--host", url, "--format", "json"),
                              capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout)["bluewire"]["text"] == "BTC,Htr"
    finally:
        server.send_signal(signal.SIGINT)
        assert server.wait(timeout=10) == 0
        server.stdout.close()
        server.stderr.close()


def test_demo_runs_on_simulators_and_exits_by_itself() -> None:
    done = subprocess.run(cli("demo", "--only", "afterburner"), capture_output=True, text=True,
                          timeout=120, env=dict(os.environ, PYTHONUNBUFFERED="1"))
    assert done.returncode == 0, done.stderr
    assert "set point 24 °C confirmed" in done.stdout
    assert "run state -> RUNNING" in done.stdout
