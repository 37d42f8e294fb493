"""A sixth family arrives as a separate distribution and pyburnerkit offers it untouched: in the
CLI, ``sim``, ``demo``, the recorder (config file and ``--demo``), with its write gate; and a
broken plug-in costs only its own commands.

Everything runs in subprocesses that see the pip-installed example (see conftest.py).
"""

from __future__ import annotations

import importlib.util
import json
import re
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import List

import pyburnerkit.families as registry
from pyburnerkit.recorder import read_samples

from .conftest import Installed, stop

FIELDS = {"temperature_c": "°C", "humidity_pct": "%", "relay": "", "limit_c": "°C"}


def _wait_for_line(proc: "subprocess.Popen[str]", pattern: str) -> List[str]:
    """Read the child's stderr line by line until one matches ``pattern``; the lines read.

    :raises AssertionError: the child ended first (its output is in the message).
    """
    assert proc.stderr is not None
    seen: List[str] = []
    for line in proc.stderr:
        seen.append(line.rstrip("\n"))
        if re.search(pattern, line):
            return seen
    raise AssertionError(f"{pattern!r} never appeared; exit {proc.wait()}; stderr:\n"
                         + "\n".join(seen))


def test_this_process_does_not_see_the_plugin(installed: Installed) -> None:
    # the install went to a directory of its own: the shared environment is unchanged
    assert importlib.util.find_spec("pyburnerkit_thermo") is None
    assert "thermo" not in [f.name for f in registry.families()]
    assert (installed.site / "pyburnerkit_thermo" / "py.typed").is_file()


def test_the_cli_lists_the_family_and_its_simulator(installed: Installed) -> None:
    top = installed.cli("--help")
    assert top.returncode == 0, top.stderr
    assert re.search(r"^\s+thermo\s+Acme TR-1 thermometer/relay box \(plug-in\)$",
                     top.stdout, re.M), top.stdout
    assert top.stderr == ""  # nothing about the plug-in to warn of
    sim = installed.cli("sim", "--help")
    assert sim.returncode == 0 and "simulated Acme TR-1 box (plug-in)" in sim.stdout
    group = installed.cli("thermo", "--help")
    assert group.returncode == 0
    assert all(c in group.stdout for c in ("read", "watch", "set-relay", "set-limit"))


def test_the_family_cli_reads_the_simulator_over_tcp_and_writes_need_the_opt_in(
        installed: Installed, sim: str) -> None:
    read = installed.cli("thermo", "read", "--endpoint", sim, "--format", "json")
    assert read.returncode == 0, read.stderr
    status = json.loads(read.stdout)
    assert status["relay"] is False and status["limit_c"] == 30.0
    assert set(status) == set(FIELDS)

    refused = installed.cli("thermo", "set-relay", "on", "--endpoint", sim)
    assert refused.returncode == 2
    assert refused.stderr.strip() == ("pyburnerkit: error: 'thermo set-relay' changes the box: "
                                      "add --allow-writes to really send it (nothing was sent)")
    too_fine = installed.cli("thermo", "set-limit", "30.3", "--endpoint", sim,
                             "--allow-writes")
    assert too_fine.returncode == 2
    assert "limit=30.3 °C has more resolution than the device keeps" in too_fine.stderr
    unchanged = json.loads(installed.cli("thermo", "read", "--endpoint", sim,
                                         "--format", "json").stdout)
    assert (unchanged["relay"], unchanged["limit_c"]) == (False, 30.0)  # nothing was sent

    written = installed.cli("thermo", "set-relay", "on", "--endpoint", sim, "--allow-writes",
                            "--format", "json")
    assert written.returncode == 0, written.stderr
    assert json.loads(written.stdout)["relay"] is True


def test_demo_includes_the_family(installed: Installed) -> None:
    # the plain command, every family: the plug-in's part runs among the built-ins' (whose
    # own tests hold their parts to exit code 0)
    done = installed.cli("demo", "--duration", "0.5", timeout=300)
    assert "thermo demo failed" not in done.stderr, done.stderr
    lines = done.stdout.splitlines()
    assert "== thermo ==" in lines, done.stdout + done.stderr
    start = lines.index("== thermo ==")
    assert lines[start + 1].startswith("thermo: simulated TR-1 on thermo://127.0.0.1:")
    assert lines[start + 2] == "thermo: TR-1, serial 0042, firmware 1.3"
    assert "thermo: relay closed; heating until the box cuts out" in lines
    assert lines[-1].startswith("demo finished in") and "thermo" not in lines[-1]


def test_a_config_naming_the_family_records_it_into_sqlite(installed: Installed, sim: str,
                                                           tmp_path: Path) -> None:
    db = tmp_path / "thermo.db"
    config = tmp_path / "recorder.toml"
    config.write_text(textwrap.dedent(f"""
        [recorder]
        spool_dir = "spool"

        [[devices]]
        family = "thermo"
        url = "{sim}"
        id = "greenhouse"
        interval = 0.1

        [[sinks]]
        type = "sqlite"
        path = "{db.name}"
        """), encoding="utf-8")
    proc = installed.start("record", str(config), "--progress", "0.2",
                           stdout=subprocess.DEVNULL)
    try:
        # a progress line names the device once the recorder holds samples from it
        _wait_for_line(proc, r"devices: .*thermo/greenhouse \d")
    finally:
        code = stop(proc)
    assert code == 0
    rows = list(read_samples(str(db), family="thermo"))
    assert rows, "no thermo samples in the database"
    assert {r["device"] for r in rows} == {"greenhouse"}
    assert {(r["field"], r["unit"]) for r in rows} == set(FIELDS.items())
    first = {r["field"]: r["value"] for r in rows[:4]}
    assert first["limit_c"] == 30.0 and first["relay"] == 0


def test_the_family_table_is_found_through_the_registry(installed: Installed) -> None:
    """The plug-in's semantic table (``fields=``) is what the recorder and Home Assistant
    discovery read: its settings are controls, and a control list naming them is accepted
    while a name the table lacks is refused with the ones that exist."""
    script = textwrap.dedent("""
        from pyburnerkit import families
        from pyburnerkit.errors import ConfigurationError
        from pyburnerkit.recorder.commands import check_controls
        table = families.get("thermo").load("fields")
        print(table.entity("limit_c").kind, table.entity("limit_c").control.maximum)
        print(table.entity("relay").kind, table.entity("relay").control.safe)
        print(check_controls("thermo", ["relay"]))
        try:
            check_controls("thermo", ["fan"])
        except ConfigurationError as exc:
            print("refused:", exc)
        """)
    done = subprocess.run([sys.executable, "-c", script], env=installed.env(),
                          cwd=str(installed.home), capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[:3] == ["number 60.0", "switch False", "('relay',)"]
    assert lines[3].startswith("refused:") and "'fan'" in lines[3] and "limit_c" in lines[3]


def test_the_service_serves_the_family(installed: Installed, sim: str, tmp_path: Path) -> None:
    """``pyburnerkit serve`` over a config naming the plug-in: the generic HTTP API lists the
    box, streams its readings, and changes its cut-out through the family's own setter (the
    table's control), refusing a value outside the limits before anything is sent."""
    import requests
    config = tmp_path / "service.toml"
    config.write_text(textwrap.dedent(f"""
        [[devices]]
        family = "thermo"
        url = "{sim}"
        id = "greenhouse"
        interval = 0.1
        controls = ["limit_c"]
        [devices.options]
        allow_writes = true

        [http]
        bind = "127.0.0.1:0"
        """), encoding="utf-8")
    proc = installed.start("serve", str(config))
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline().strip()
        assert first.startswith("HTTP=http://127.0.0.1:"), first
        base = first[len("HTTP="):] + "/api/v1"
        listed = requests.get(f"{base}/devices", timeout=30).json()
        assert [(d["family"], d["name"]) for d in listed["devices"]] == \
            [("thermo", "greenhouse")], listed
        with requests.get(f"{base}/devices/greenhouse/events", stream=True,
                          timeout=30) as stream:
            for line in stream.iter_lines(decode_unicode=True):
                if line.startswith("data:") and '"temperature_c"' in line:
                    break
        changed = requests.patch(f"{base}/devices/greenhouse", json={"limit_c": 25.5},
                                 timeout=30)
        assert changed.status_code == 200, changed.text
        refused = requests.patch(f"{base}/devices/greenhouse", json={"limit_c": 61},
                                 timeout=30)
        assert refused.status_code == 400 and "60" in refused.text, refused.text
        state = requests.get(f"{base}/devices/greenhouse", timeout=30).json()
        assert state["fields"]["limit_c"]["value"] == 25.5
    finally:
        code = stop(proc)
    assert code == 0


def test_record_demo_includes_the_family(installed: Installed, tmp_path: Path) -> None:
    db = tmp_path / "demo.db"
    proc = installed.start("record", "--demo", "--db", str(db), "--progress", "0.2",
                           stdout=subprocess.DEVNULL)
    try:
        _wait_for_line(proc, r"devices: .*thermo/demo-thermo \d")
    finally:
        code = stop(proc)
    assert code == 0
    fields = {r["field"] for r in read_samples(str(db), family="thermo",
                                                  device="demo-thermo")}
    assert fields == set(FIELDS)


BREAKAGE = '''
from pyburnerkit.families import Family

RAISING_CLI = Family("raisingcli", "a plug-in whose hooks raise", cli="thermo_breakage",
                     cli_demo="thermo_breakage:demo")
NO_ADAPTER = Family("noadapter", "a plug-in whose recorder adapter is missing",
                    recorder="thermo_breakage_missing:NoSource")


def register(subparsers):
    raise RuntimeError("register() of a broken plug-in")


def demo(write, *, duration):
    write("raisingcli: about to fail")
    raise RuntimeError("demo() of a broken plug-in")
'''

BREAKAGE_ENTRY_POINTS = '''
[pyburnerkit.families]
broken = pyburnerkit_thermo.no_such_module:FAMILY
thermo-copy = pyburnerkit_thermo.family:FAMILY
raisingcli = thermo_breakage:RAISING_CLI
noadapter = thermo_breakage:NO_ADAPTER
'''


def test_broken_plugins_are_reported_and_the_rest_works(installed: Installed,
                                                        tmp_path: Path) -> None:
    broken = tmp_path / "broken-site"
    info = broken / "thermo_breakage-0.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: thermo-breakage\n"
                                   "Version: 0.1\n")
    (info / "entry_points.txt").write_text(BREAKAGE_ENTRY_POINTS)
    (broken / "thermo_breakage.py").write_text(textwrap.dedent(BREAKAGE))

    top = installed.cli("--help", extra_paths=[broken])
    assert top.returncode == 0, top.stderr
    assert re.search(r"^\s+thermo\s+Acme TR-1", top.stdout, re.M)
    assert "record" in top.stdout and "mate3" in top.stdout
    warnings = top.stderr.splitlines()
    assert any("'broken'" in w and "ModuleNotFoundError" in w for w in warnings), warnings
    assert any("'thermo-copy'" in w and "'thermo', which is already taken" in w
               for w in warnings), warnings
    assert ("pyburnerkit: warning: no raisingcli commands (raisingcli: RuntimeError: "
            "register() of a broken plug-in)") in warnings
    assert len(warnings) == 3, warnings

    read = installed.cli("thermo", "read", "--endpoint", "sim://", extra_paths=[broken])
    assert read.returncode == 0 and "temperature_c" in read.stdout, read.stderr

    demo = installed.cli("demo", "--only", "raisingcli", "--only", "thermo", "--duration",
                         "0.3", extra_paths=[broken])
    assert demo.returncode == 1  # one family failed; the other ran all the same
    assert ("pyburnerkit: raisingcli demo failed: RuntimeError: demo() of a broken plug-in"
            in demo.stderr), demo.stderr
    assert "thermo: TR-1, serial 0042, firmware 1.3" in demo.stdout
    assert demo.stdout.splitlines()[-1].endswith("(1 device families, all on simulators; "
                                                 "FAILED: raisingcli)")

    config = tmp_path / "noadapter.toml"
    config.write_text('[[devices]]\nfamily = "noadapter"\nurl = "sim://"\n')
    record = installed.cli("record", str(config), "--duration", "1", extra_paths=[broken])
    assert record.returncode == 2
    assert ("pyburnerkit: error: the recorder adapter of family 'noadapter' "
            "(thermo_breakage_missing:NoSource) failed to load: ModuleNotFoundError"
            in record.stderr), record.stderr


def test_the_example_s_own_tests_pass_against_the_installed_package(
        installed: Installed) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
         "tests"], cwd=str(installed.source), env=installed.env(), capture_output=True,
        text=True, timeout=110)
    assert done.returncode == 0, done.stdout + done.stderr
    assert re.search(r"^\d+ passed", done.stdout.splitlines()[-1]), done.stdout
