"""The CLI for the pyDE1-parity features: ``de1 mmr``, ``de1 time``, ``de1 profile
store|list|select``, ``de1 visualizer upload`` and ``scale timer``, against in-process
simulators (``--address sim://``) and a local HTTP server."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterator, Tuple

import pytest

from pyburnerkit.cli.main import main

from .test_profile_firmware import PROFILE
from .test_visualizer import PASSWORD, USER, FakeVisualizer


def run(capsys: Any, *argv: str) -> Tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_mmr_read_and_gated_write(capsys: Any) -> None:
    code, out, _ = run(capsys, "de1", "mmr", "read", "fan_threshold", "2", "--address", "sim://",
                       "--format", "json")
    rows = json.loads(out)
    assert code == 0 and rows[0] == {"address": "0x803808", "raw": 50, "name": "fan_threshold",
                                     "value": 50, "unit": "°C"}
    assert rows[1]["name"] == "tank_temperature"
    code, _, err = run(capsys, "de1", "mmr", "write", "0x803808", "45", "--address", "sim://")
    assert code == 2 and "--allow-writes" in err
    code, _, err = run(capsys, "de1", "mmr", "write", "0x803844", "1200", "--address", "sim://",
                       "--allow-writes")
    assert code != 0 and "raw value 1200 (= 120 °C) is out of range" in err
    code, out, _ = run(capsys, "de1", "mmr", "write", "fan_threshold", "45", "--address",
                       "sim://", "--allow-writes", "--format", "json")
    assert code == 0 and json.loads(out)["raw"] == 45


def test_time_set(capsys: Any) -> None:
    code, out, _ = run(capsys, "de1", "time", "set", "--timestamp", "1700000000", "--address",
                       "sim://", "--allow-writes", "--format", "json")
    assert code == 0 and json.loads(out) == {"timestamp": 1700000000}
    code, _, err = run(capsys, "de1", "time", "set", "--address", "sim://")
    assert code == 2 and "--allow-writes" in err


def test_profile_library_commands(capsys: Any, tmp_path: Path) -> None:
    db = str(tmp_path / "lib.db")
    path = tmp_path / "p.json"
    path.write_text(json.dumps(PROFILE), encoding="utf-8")
    code, out, _ = run(capsys, "de1", "profile", "store", str(path), "--db", db,
                       "--format", "json")
    entry = json.loads(out)
    assert code == 0 and entry["title"] == "Test blooming"
    code, _, err = run(capsys, "de1", "profile", "select", entry["id"], "--db", db,
                       "--address", "sim://")
    assert code == 2 and "--allow-writes" in err
    code, out, _ = run(capsys, "de1", "profile", "select", entry["id"], "--db", db,
                       "--address", "sim://", "--allow-writes", "--format", "json")
    assert code == 0 and json.loads(out)["selected"] is True
    code, out, _ = run(capsys, "de1", "profile", "list", "--db", db, "--format", "json")
    (listed,) = json.loads(out)
    assert listed["id"] == entry["id"] and listed["selected"] is True
    code, _, err = run(capsys, "de1", "profile", "select", "0" * 40, "--db", db,
                       "--address", "sim://", "--allow-writes")
    assert code != 0 and "no profile with id" in err


@pytest.fixture
def server() -> Iterator[FakeVisualizer]:
    fake = FakeVisualizer().start()
    try:
        yield fake
    finally:
        fake.close()


def test_visualizer_upload(capsys: Any, tmp_path: Path, server: FakeVisualizer,
                           monkeypatch: pytest.MonkeyPatch) -> None:
    shot = tmp_path / "shot.json"
    shot.write_text('{"version": "2", "elapsed": ["0.0", "1.0"]}', encoding="utf-8")
    monkeypatch.delenv("PYBURNERKIT_VISUALIZER_USERNAME", raising=False)
    monkeypatch.delenv("PYBURNERKIT_VISUALIZER_PASSWORD", raising=False)
    code, _, err = run(capsys, "de1", "visualizer", "upload", str(shot), "--url", server.url)
    assert code != 0 and "no Visualizer credentials" in err and server.requests == []
    config = tmp_path / "viz.toml"
    config.write_text(f'[visualizer]\nurl = "{server.url}"\nusername = "{USER}"\n'
                      f'password = "{PASSWORD}"\n', encoding="utf-8")
    code, out, err = run(capsys, "de1", "visualizer", "upload", str(shot), "--config",
                         str(config), "--format", "json")
    assert code == 0 and json.loads(out)["id"] == "5e1f"
    assert PASSWORD not in out + err
    assert server.requests[-1]["body"].count(b'"elapsed"') == 1


def test_scale_timer(capsys: Any) -> None:
    code, _, err = run(capsys, "scale", "timer", "start", "--address", "sim://")
    assert code == 2 and "--allow-writes" in err
    code, out, _ = run(capsys, "scale", "timer", "start", "--address", "sim://",
                       "--allow-writes", "--format", "json")
    assert code == 0 and json.loads(out) == {"timer": "start", "timer_style": "pyde1"}
    code, out, _ = run(capsys, "scale", "timer", "reset", "--timer-style", "de1app",
                       "--address", "sim://", "--allow-writes", "--format", "json")
    assert code == 0 and json.loads(out)["timer_style"] == "de1app"
