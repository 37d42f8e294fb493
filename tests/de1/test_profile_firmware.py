"""Profiles (JSON v2 -> wire) and firmware files: golden frames, validation, fingerprint,
Visualizer export, header checks."""

from __future__ import annotations

import hashlib
import json

import pytest

from pyburnerkit.errors import ConfigurationError
from pyburnerkit.de1 import profile as prof
from pyburnerkit.de1.firmware import load_firmware, make_test_image
from pyburnerkit.de1.models import ShotRecord

PROFILE = {
    "version": "2", "title": "Test blooming", "author": "pyburnerkit", "notes": "",
    "beverage_type": "espresso", "target_weight": "36", "target_volume": 0,
    "target_volume_count_start": 1, "tank_temperature": 0,
    "steps": [
        {"name": "fill", "pump": "flow", "flow": "4", "transition": "fast", "temperature": 92,
         "sensor": "coffee", "seconds": 8, "volume": 0,
         "exit": {"type": "pressure", "condition": "over", "value": 4}},
        {"name": "pour", "pump": "pressure", "pressure": 9, "transition": "smooth",
         "temperature": 92.5, "sensor": "water", "seconds": 30, "volume": 100, "weight": 10,
         "limiter": {"value": 3.5, "range": 0.6}},
    ],
}


def test_profile_compiles_to_the_expected_frames() -> None:
    program = prof.compile_profile(PROFILE)
    assert program.header == bytes.fromhex("01" "02" "01" "00" "60")
    # frame 0: CtrlF|DoCompare|DC_GT|IgnoreLimit, 4 mL/s, 92 °C, 8.0 s, trigger 4 bar
    assert program.frames[0] == bytes.fromhex("00" "47" "40" "b8" "50" "40" "0000")
    # frame 1: pressure, TMixTemp|Interpolate|IgnoreLimit = 0x70, 9 bar, 92.5 °C, 30 s
    # (0x80|30 = 0x9E), volume 100 mL
    assert program.frames[1] == bytes.fromhex("01" "70" "90" "b9" "9e" "00" "0064")
    assert program.ext_frames == (bytes.fromhex("21" "38" "0a") + bytes(5),)
    assert program.tail == bytes.fromhex("02" "0000") + bytes(5)
    assert program.target_weight_g == 36.0 and program.target_volume_ml is None
    assert program.move_on_weight_g == (None, 10.0)
    assert program.fingerprint == hashlib.sha1(program.wire).hexdigest()
    assert len(program.wire) == 5 + 8 * 4


def test_profile_id_is_the_sha1_of_the_source_and_fingerprint_tracks_the_wire() -> None:
    text = json.dumps(PROFILE)
    a = prof.load(text)
    assert a.profile_id == hashlib.sha1(text.encode()).hexdigest()
    changed = json.loads(text)
    changed["steps"][1]["pressure"] = 8.5
    assert prof.load(changed).fingerprint != a.fingerprint
    renamed = json.loads(text)
    renamed["title"] = "Another name"
    assert prof.load(renamed).fingerprint == a.fingerprint


@pytest.mark.parametrize("mutate, message", [
    (lambda p: p.update(version="1.0"), "only 2.x"),
    (lambda p: p.update(steps=[]), "non-empty 'steps'"),
    (lambda p: p.update(steps=p["steps"] * 11), "22 steps: the limit is 20 frames"),
    (lambda p: p["steps"][1].update(pressure=17), r"pressure=17 bar is out of range.*15.9 bar"),
    (lambda p: p["steps"][0].update(seconds=200), r"seconds=200 s is out of range"),
    (lambda p: p["steps"][0].update(pump="steam"), "pump must be"),
    (lambda p: p["steps"][1].update(pressure="lots"), "must be a number"),
    (lambda p: p.update(beverage_type="soup"), "beverage_type"),
    (lambda p: p.update(tank_temperature=80), "tank_temperature=80 °C"),
])
def test_profile_validation_names_value_limit_and_unit(mutate, message) -> None:
    data = json.loads(json.dumps(PROFILE))
    mutate(data)
    with pytest.raises(ConfigurationError, match=message):
        prof.compile_profile(data)


def test_profile_file_and_bad_json(tmp_path) -> None:
    path = tmp_path / "p.json"
    path.write_text(json.dumps(PROFILE))
    assert prof.load(str(path)).title == "Test blooming"
    with pytest.raises(ConfigurationError, match="not valid JSON"):
        prof.load("{nope")
    with pytest.raises(ConfigurationError, match="cannot read profile file"):
        prof.load(str(tmp_path / "missing.json"))


def test_visualizer_export_shape() -> None:
    shot = ShotRecord(1700000000.0, PROFILE, (0.0, 0.25), (0.0, 1.5), (4.0, 4.1), (0.0, 0.3),
                      (90.0, 90.5), (91.0, 91.0), (0.0, 0.0), (4.0, 4.0), (92.0, 92.0), (0, 0),
                      final_weight_g=36.2, stop_reason="weight")
    out = prof.visualizer_json(shot)
    assert out["version"] == "2" and out["timestamp"] == 1700000000
    assert out["elapsed"] == ["0.00", "0.25"]
    assert out["pressure"]["pressure"] == ["0.00", "1.50"]
    assert out["totals"]["weight"] == ["0.00", "0.30"]
    assert out["profile"]["title"] == "Test blooming" and out["meta"]["out"] == "36.2"
    json.dumps(out)  # serialisable


def test_firmware_header_checks(tmp_path) -> None:
    image = make_test_image(version=1350, body_bytes=100)
    fw = load_firmware(image)
    assert fw.version == 1350 and fw.byte_count == 100 and fw.chunk_count == 11
    chunks = list(fw.chunks())
    assert chunks[0][0] == 0 and chunks[-1][0] == 160 and len(chunks[-1][1]) == 16
    bad_marker = bytearray(image)
    bad_marker[4:8] = b"\x00\x00\x00\x00"
    with pytest.raises(ConfigurationError, match="board marker 0x00000000, expected 0xDE100001"):
        load_firmware(bytes(bad_marker))
    with pytest.raises(ConfigurationError, match="says 100 bytes .* file has 99"):
        load_firmware(image[:-1])
    with pytest.raises(ConfigurationError, match="not a DE1 firmware file"):
        load_firmware(b"short")
    path = tmp_path / "bootfwupdate.dat"
    path.write_bytes(image)
    assert load_firmware(str(path)).data == image
