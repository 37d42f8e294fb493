"""One command line: every family group against ``docs/cli.rst``'s options and exit codes.

The option checks walk the real argparse tree that ``pyburnerkit`` builds. The exit-code and
Ctrl-C checks run ``python -m pyburnerkit`` as real subprocesses against our simulators on
loopback (or ``sim://`` inside the subprocess) and send real signals.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import re
import signal
import socket
import struct
import subprocess
import sys
from pathlib import Path
from typing import Dict, Iterator, List, Tuple

import pytest

from pyburnerkit.afterburner import AfterburnerSim
from pyburnerkit.cli.common import cli_wording, real_float, to_plain
from pyburnerkit.cli.main import build_parser, main

ROOT = Path(__file__).resolve().parents[2]
DOC = (ROOT / "docs" / "cli.rst").read_text(encoding="utf-8")
FAMILIES = ["afterburner", "arbin", "mate3", "victron", "de1", "scale"]
STREAMING = {"watch", "top"}


def _subparsers(parser: argparse.ArgumentParser) -> Dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def _leaves(parser: argparse.ArgumentParser, path: Tuple[str, ...] = ()
            ) -> Iterator[Tuple[Tuple[str, ...], argparse.ArgumentParser]]:
    children = _subparsers(parser)
    if not children:
        yield path, parser
    for name, child in children.items():
        yield from _leaves(child, path + (name,))


def _options(parser: argparse.ArgumentParser) -> Dict[str, argparse.Action]:
    return {opt: action for action in parser._actions for opt in action.option_strings}


def _doc_table(title: str) -> List[str]:
    """The first-column entries of the list-table under ``title`` in docs/cli.rst."""
    section = DOC.split(title, 1)[1].split("\n\n\n", 1)[0]
    section = re.split(r"\n[A-Z][^\n]*\n-{3,}\n", section, maxsplit=1)[0]
    return re.findall(r"^   \* - (.+)$", section, flags=re.M)[1:]  # [0] is the header


def test_the_doc_tables_list_the_shared_options_and_every_exit_code() -> None:
    options = _doc_table("Options every family shares")
    assert [o.split()[0].strip("`") for o in options] == [
        "--format", "--host", "--timeout", "--allow-writes", "--duration", "--count"]
    assert _doc_table("Exit codes") == ["0", "1", "2", "3", "130"]
    assert "register-python-argcomplete pyburnerkit" in DOC


@pytest.mark.parametrize("family", FAMILIES)
def test_every_subcommand_of_every_group_has_the_shared_options(family: str) -> None:
    group = _subparsers(build_parser())[family]
    doc_formats = re.search(r"``--format ([a-z|]+)``", DOC)
    assert doc_formats is not None
    formats = set(doc_formats.group(1).split("|"))
    leaves = list(_leaves(group))
    assert "top" in {path[-1] for path, _ in leaves}
    for path, parser in leaves:
        where = " ".join((family,) + path)
        opts = _options(parser)
        assert "--host" in opts, where
        assert "--timeout" in opts, where
        assert "--allow-writes" in opts, where
        fmt = opts.get("--format")
        assert fmt is not None and formats <= set(fmt.choices or ()), where
        if path[-1] in STREAMING:
            assert {"--duration", "--count"} <= set(opts), where
    # the endpoint variable is the documented one, named in --help
    help_text = group.format_help() + "".join(p.format_help() for _, p in leaves[:1])
    assert f"PYBURNERKIT_{family.upper()}_HOST" in help_text


def test_the_endpoint_variable_is_read_when_the_command_runs(monkeypatch, capsys) -> None:
    with AfterburnerSim(tick=0, seed=3).start() as sim:
        monkeypatch.setenv("PYBURNERKIT_AFTERBURNER_HOST", f"127.0.0.1:{sim.port}")
        assert main(["afterburner", "status", "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["run_state"] == "STOPPED"


# ------------------------------------------------------------------------ values
def test_a_float32_reading_prints_at_its_real_precision() -> None:
    single = struct.unpack("<f", struct.pack("<f", 3.6))[0]
    assert single == 3.5999999046325684
    assert real_float(single) == 3.6
    assert to_plain({"v": single, "noise": 7239.5 * 0.022}) == {"v": 3.6, "noise": 159.269}
    assert real_float(0.1) == 0.1 and real_float(1e300) == 1e300


def test_python_api_wording_becomes_command_line_wording() -> None:
    said = cli_wording("a cycler endpoint cannot carry credentials (user:password@host); pass "
                       "username= / password=, or set ARBIN_CTI_USERNAME / ARBIN_CTI_PASSWORD")
    assert "--username" in said and "username=" not in said
    assert cli_wording("save changes the heater: open the client with allow_writes=True "
                       "(CLI: --allow-writes) to allow it") == \
        "save changes the heater: add --allow-writes to allow it"


# ------------------------------------------------------------------------ subprocesses
def _env(**extra: str) -> Dict[str, str]:
    env = dict(os.environ, PYTHONPATH=str(ROOT), COLUMNS="120")
    env.update(extra)
    return env


def _run(*argv: str, env: Dict[str, str] = None, timeout: float = 60
         ) -> "subprocess.CompletedProcess[str]":
    return subprocess.run([sys.executable, "-m", "pyburnerkit", *argv], capture_output=True,
                          text=True, env=env or _env(), timeout=timeout, cwd=str(ROOT))


@pytest.fixture
def heater() -> Iterator[AfterburnerSim]:
    sim = AfterburnerSim(tick=0.1, speed=5.0, seed=3).start()
    try:
        yield sim
    finally:
        sim.close()


def test_exit_codes_0_1_2_without_tracebacks(heater: AfterburnerSim) -> None:
    host = f"127.0.0.1:{heater.port}"
    ok = _run("afterburner", "status", "--host", host, "--format", "jsonl")
    assert ok.returncode == 0 and json.loads(ok.stdout)["run_state"] == "STOPPED"
    refused = _run("afterburner", "save", "--host", host)
    assert refused.returncode == 2 and "--allow-writes" in refused.stderr
    bad = _run("afterburner", "watch", "--host", host, "--count", "-1")
    assert bad.returncode == 2 and "below 0" in bad.stderr
    with socket.socket() as probe:  # a port that surely has no listener once closed
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    down = _run("afterburner", "status", "--host", f"127.0.0.1:{port}", "--timeout", "1")
    assert down.returncode == 1 and down.stderr.count("\n") == 1, down.stderr
    for done in (ok, refused, bad, down):
        assert "Traceback" not in done.stderr


def test_a_missing_extra_exits_3_and_names_it(heater: AfterburnerSim, tmp_path: Path) -> None:
    # rich cannot be uninstalled for one test: a package named rich that fails to import,
    # first on the path, is what Python sees when it is not installed
    (tmp_path / "rich").mkdir()
    (tmp_path / "rich" / "__init__.py").write_text(
        "raise ModuleNotFoundError(\"No module named 'rich'\", name='rich')\n")
    env = _env(PYTHONPATH=os.pathsep.join([str(tmp_path), str(ROOT)]))
    done = _run("afterburner", "top", "--host", f"127.0.0.1:{heater.port}", "--count", "1",
                env=env)
    assert done.returncode == 3, done.stderr
    assert 'pip install "pyburnerkit[top]"' in done.stderr and "Traceback" not in done.stderr
    assert done.stdout == ""


def test_arbin_errors_use_command_line_wording() -> None:
    done = _run("arbin", "status", "--host", "someone:secret@127.0.0.1")
    assert done.returncode == 2 and "--username" in done.stderr
    assert "username=" not in done.stderr and "secret" not in done.stderr


def _interrupt_after(proc: "subprocess.Popen[str]", ready: str, stream: str = "stdout"
                     ) -> Tuple[str, str]:
    """Wait for a line containing ``ready`` on ``stream``, send SIGINT, collect the rest."""
    pipe = proc.stdout if stream == "stdout" else proc.stderr
    assert pipe is not None
    seen = []
    for line in pipe:
        seen.append(line)
        if ready in line:
            break
    else:
        raise AssertionError(f"never saw {ready!r}: {seen!r}")
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    if stream == "stdout":
        return "".join(seen) + out, err
    return out, "".join(seen) + err


def _popen(*argv: str, env: Dict[str, str] = None) -> "subprocess.Popen[str]":
    return subprocess.Popen([sys.executable, "-m", "pyburnerkit", *argv], text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env or _env(),
                            cwd=str(ROOT))


def test_ctrl_c_on_a_watch_exits_130_with_whole_lines(heater: AfterburnerSim) -> None:
    proc = _popen("afterburner", "watch", "--host", f"127.0.0.1:{heater.port}", "--format",
                  "jsonl")
    try:
        out, err = _interrupt_after(proc, "run_state")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 130, err
    assert err.strip().splitlines()[-1] == "pyburnerkit: interrupted" and "Traceback" not in err
    assert out.endswith("\n")
    records = [json.loads(line) for line in out.splitlines()]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", records[0]["time"])


def test_ctrl_c_on_victron_watch_exits_130() -> None:
    from pyburnerkit.victron.sim import VictronSim
    with VictronSim(interval=0.05) as sim:
        proc = _popen("victron", "watch", sim.GRID, "--bus", sim.address, "--format", "csv")
        try:
            out, err = _interrupt_after(proc, "/Ac/Power")
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
    assert proc.returncode == 130, err
    assert "Traceback" not in err and "interrupted" in err
    rows = list(csv.DictReader(io.StringIO(out)))
    assert rows and set(rows[0]) == {"time", "service", "path", "value", "text"}
    assert out.count("time,service") == 1  # one header for the whole stream


def test_an_interrupted_firmware_upload_says_where_it_stopped(tmp_path: Path) -> None:
    from pyburnerkit.de1.firmware import make_test_image
    image = tmp_path / "bootfwupdate.dat"
    image.write_bytes(make_test_image(1402, body_bytes=1 << 19))  # long enough to interrupt
    proc = _popen("de1", "firmware", "upload", str(image), "--address", "sim://",
                  "--allow-writes", env=_env(PYBURNERKIT_PROGRESS_INTERVAL="0"))
    try:
        out, err = _interrupt_after(proc, "uploading:", stream="stderr")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 130, err
    assert out == "" and "Traceback" not in err
    last = err.strip().splitlines()
    assert last[-1] == "pyburnerkit: interrupted"
    assert re.match(r"firmware upload: interrupted at .* of 512\.\d KiB", last[-2]), last[-2]
    assert err.startswith("firmware upload: started: 0 B of 512.1 KiB")


def test_top_prints_one_table_per_refresh_when_not_a_terminal(heater: AfterburnerSim) -> None:
    done = _run("afterburner", "top", "--host", f"127.0.0.1:{heater.port}", "--count", "2",
                "--interval", "0.1")
    assert done.returncode == 0, done.stderr
    assert done.stdout.count(f"afterburner 127.0.0.1:{heater.port}") == 2  # two titles
    rows = [line.split() for line in done.stdout.splitlines() if "TempCurrent" in line]
    assert len(rows) == 2
    assert rows[0][-2:] == ["°C", "TempCurrent"]  # name, value, unit and key from the table
    records = _run("afterburner", "top", "--host", f"127.0.0.1:{heater.port}", "--count",
                   "1", "--format", "jsonl")
    assert records.returncode == 0, records.stderr
    fields = {r["field"]: r for r in map(json.loads, records.stdout.splitlines())}
    assert fields["InputVoltage"]["unit"] == "V" and fields["InputVoltage"]["name"]
    assert isinstance(fields["InputVoltage"]["value"], float)


def test_shell_completion_answers_when_argcomplete_asks(tmp_path: Path) -> None:
    answer = tmp_path / "completion.txt"
    line = "pyburnerkit afterburner wa"
    done = _run(env=_env(_ARGCOMPLETE="1", COMP_LINE=line, COMP_POINT=str(len(line)),
                         _ARGCOMPLETE_STDOUT_FILENAME=str(answer)))
    assert done.returncode == 0, done.stderr
    assert answer.read_text().split() == ["watch"]
