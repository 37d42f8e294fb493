"""``pyburnerkit de1 ...``, ``pyburnerkit scale ...`` and ``pyburnerkit sim de1``: in process
through pygatt and the fake gatttool, and once as real subprocesses."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

from pyburnerkit.cli.main import main
from pyburnerkit.de1.firmware import make_test_image

from ..ble.simrig import SPEED, RigOnPath
from .test_profile_firmware import PROFILE


def run(capsys, *argv: str) -> tuple:
    code = main(list(argv) + ["--send-delay", "0.002"])
    out, err = capsys.readouterr()
    return code, out, err


def test_status_mode_and_errors(rig_on_path: RigOnPath, capsys) -> None:
    import dataclasses
    address = rig_on_path.de1.address
    de1 = rig_on_path.de1
    # hot water runs 255 simulated seconds (25 s here), longer than this whole test
    rig_on_path.rig.run(lambda: setattr(de1, "settings", dataclasses.replace(
        de1.settings, hot_water_length_s=255)))
    code, out, _ = run(capsys, "de1", "status", "--address", address, "--format", "json")
    assert code == 0
    status = json.loads(out)
    assert status["state"] == "SLEEP" and status["firmware_build"] == 1333
    code, out, _ = run(capsys, "de1", "--address", address, "mode", "wake", "--allow-writes",
                         "--format", "json")
    assert code == 0 and json.loads(out)["state"] == "IDLE"
    code, out, _ = run(capsys, "de1", "mode", "hotwater", "--address", address, "--allow-writes")
    assert code == 0 and "HOT_WATER" in out
    code, _, err = run(capsys, "de1", "mode", "espresso", "--address", address, "--allow-writes")
    assert code == 1 and "DeviceError" in err and "HOT_WATER" in err
    code, _, err = run(capsys, "de1", "mode", "frappe", "--address", address)
    assert code == 2 and "unknown mode 'frappe'" in err
    code, out, _ = run(capsys, "de1", "watch", "--duration", "0.6", "--address", address,
                       "--format", "jsonl")
    records = [json.loads(line) for line in out.splitlines()]
    assert code == 0 and records[0]["state"] == "HOT_WATER"
    assert any(r.get("event") == "sample" for r in records[1:])


def test_profile_and_firmware_upload(rig_on_path: RigOnPath, capsys, tmp_path) -> None:
    address = rig_on_path.de1.address
    path = tmp_path / "profile.json"
    path.write_text(json.dumps(PROFILE))
    code, out, _ = run(capsys, "de1", "profile", "upload", str(path), "--address", address,
                       "--allow-writes", "--format", "json")
    assert code == 0 and json.loads(out)["frames"] == 2
    assert rig_on_path.rig.run(lambda: rig_on_path.de1.profiles_accepted) == 1
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(dict(PROFILE, steps=[])))
    code, _, err = run(capsys, "de1", "profile", "upload", str(bad), "--address", address,
                       "--allow-writes")
    assert code == 2 and "non-empty 'steps'" in err
    fw = tmp_path / "bootfwupdate.dat"
    fw.write_bytes(make_test_image(version=1402, body_bytes=256))
    code, out, _ = run(capsys, "de1", "firmware", "upload", str(fw), "--address", address,
                       "--allow-writes", "--format", "json")
    assert code == 0 and json.loads(out)["version"] == 1402


def test_shot_with_stop_at_weight_and_scale_commands(rig_on_path: RigOnPath, capsys,
                                                     tmp_path) -> None:
    env = rig_on_path
    viz = tmp_path / "shot.json"
    code, out, err = run(capsys, "de1", "shot", "--stop-at-weight", "28", "--scale",
                         env.skale.address, "--address", env.de1.address, "--time-scale",
                         str(SPEED), "--visualizer", str(viz), "--format", "json",
                         "--allow-writes")
    assert code == 0, err
    result = json.loads(out)
    assert result["stop_reason"] == "weight" and abs(result["final_weight_g"] - 28) < 2.0
    assert json.loads(viz.read_text())["meta"]["out"] == f"{result['final_weight_g']:.1f}"
    code, _, err = run(capsys, "de1", "shot", "--address", env.de1.address)
    assert code == 2 and "--stop-at-weight" in err
    code, out, _ = run(capsys, "scale", "tare", "--address", env.skale.address, "--format",
                       "json", "--allow-writes")
    assert code == 0 and json.loads(out)["tared"] is True
    code, out, _ = run(capsys, "scale", "watch", "--duration", "0.5", "--address",
                       env.skale.address, "--format", "jsonl")
    lines = [json.loads(line) for line in out.splitlines()]
    assert code == 0 and lines and lines[0]["event"] == "weight"
    code, out, _ = run(capsys, "de1", "scan", "--seconds", "0.5", "--format", "json")
    assert code == 0 and json.loads(out) == [{"address": env.de1.address, "name": "DE1"}]


def test_sim_and_cli_as_real_processes(tmp_path) -> None:
    """`pyburnerkit sim de1` prints PATH=, DE1=, SKALE=; another process with that PATH
    reaches the simulated DE1 with no other set-up."""
    env = dict(os.environ)
    cmd = [sys.executable, "-m", "pyburnerkit.cli.main"]
    sim = subprocess.Popen(cmd + ["sim", "de1", "--speed", "4", "--dir", str(tmp_path / "t")],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                           cwd=os.getcwd())
    try:
        lines = [sim.stdout.readline().strip() for _ in range(3)]
        assert lines[0].startswith("PATH=") and lines[1].startswith("DE1=") and \
            lines[2].startswith("SKALE="), lines
        path = lines[0].split("=", 1)[1]
        de1 = lines[1].split("=", 1)[1]
        env["PATH"] = path + os.pathsep + env.get("PATH", "")
        out = subprocess.run(cmd + ["de1", "status", "--address", de1, "--format", "json"],
                             capture_output=True, text=True, env=env, timeout=60)
        assert out.returncode == 0, out.stderr
        assert json.loads(out.stdout)["state"] == "SLEEP"
    finally:
        sim.send_signal(signal.SIGINT)
        try:
            assert sim.wait(10) == 0
        finally:
            if sim.poll() is None:
                sim.kill()
            sim.stdout.close()
            sim.stderr.close()


def test_demo_runs_the_real_path_and_cleans_up() -> None:
    from pyburnerkit.cli.de1 import demo
    lines: list = []
    path_before = os.environ.get("PATH")
    demo(lines.append, duration=3.0)
    assert "connected through pygatt + fake gatttool" in lines[0]
    assert "shot stopped by weight" in lines[-1]
    assert os.environ.get("PATH") == path_before


def test_interrupted_shot_stops_the_machine(rig_on_path: RigOnPath, capsys, monkeypatch) -> None:
    """Ctrl-C while ``de1 shot`` waits must not leave the DE1 pouring. The interrupt is
    injected where it would land (in the wait), once the simulated machine is pouring."""
    from pyburnerkit.de1.models import MachineState as S, SubState as U
    from pyburnerkit.de1.sequencer import ShotSequencer

    def interrupted(self, timeout: float = 300.0):
        self.de1.wait_for(lambda c: c.substate in (U.PRE_INFUSE, U.POUR), timeout=30)
        raise KeyboardInterrupt

    monkeypatch.setattr(ShotSequencer, "wait_complete", interrupted)
    code, _, _ = run(capsys, "de1", "shot", "--stop-at-time", "500", "--address",
                     rig_on_path.de1.address, "--time-scale", str(SPEED), "--allow-writes")
    assert code == 130
    requests = rig_on_path.rig.run(lambda: list(rig_on_path.de1.state_requests))
    assert requests[-2:] == [S.ESPRESSO, S.IDLE]
    assert rig_on_path.rig.run(lambda: rig_on_path.de1.pump_on) is False


def test_the_cli_takes_sim_endpoints_for_both_ble_families(capsys) -> None:
    """``--address sim://`` runs the device's simulator inside the command: no tools on PATH."""
    code, out, _ = run(capsys, "de1", "status", "--address", "sim://?firmware_build=1290",
                       "--format", "json")
    assert code == 0
    status = json.loads(out)
    assert status["firmware_build"] == 1290 and status["state"] == "SLEEP"
    code, out, _ = run(capsys, "scale", "tare", "--address", "sim://", "--allow-writes",
                       "--format", "json")
    assert code == 0 and json.loads(out)["tared"] is True
    code, _, err = run(capsys, "scale", "status", "--address", "sim://?colour=red")
    assert code == 2 and "unknown sim:// option 'colour'" in err
