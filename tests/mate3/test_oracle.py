"""The decode oracle: the real chinezbrun dump against what mate3 0.6.2 decodes from it.

Every field must match mate3's ``implemented``, ``scale_factor``, ``raw_value`` and ``value``,
except the fields listed in ``DIFFERENCES``, where mate3 is wrong; each has its own test naming
the reason.
"""

from __future__ import annotations

import json
import os
import re

import pytest

from pyburnerkit.mate3 import codec
from pyburnerkit.mate3.models import EnumValue, Flags

EXPECTED = os.path.join(os.path.dirname(__file__), "data", "chinezbrun_expected_0.6.2.json")
ENUM_REPR = re.compile(r"^<(\w+)\.(.*): (-?\d+)>$")

#: (block address, field) where pyburnerkit deliberately differs from mate3 0.6.2
DIFFERENCES = {
    (40069, "gateway_type"),   # enum value 3 unknown to the table: mate3 drops it
    (40630, "gt_number"),      # beyond 64117's device length: mate3 over-reads
    (40769, "gt_number"),
}


@pytest.fixture(scope="module")
def system():
    regs = codec.bundled_dump()
    return codec.build_system(codec.layout_from_registers(regs), regs, 0.0)


@pytest.fixture(scope="module")
def expected():
    with open(EXPECTED, encoding="utf-8") as fh:
        return json.load(fh)


def ours(value):
    if isinstance(value, EnumValue):
        return ("enum", value.label, int(value))
    if isinstance(value, Flags):
        return int(value)
    return value


def theirs(value):
    match = ENUM_REPR.match(value) if isinstance(value, str) else None
    return ("enum", match.group(2), int(match.group(3))) if match else value


def test_every_mate3_field_matches_except_documented_fixes(system, expected):
    by_address = {dev.address: dev for _, dev in system.blocks()}
    compared = 0
    mismatches = []
    for block in expected:
        dev = by_address[block["address"]]
        for name, exp in block["values"].items():
            if (block["address"], name) in DIFFERENCES:
                continue
            fv = dev.values[name]
            got = (fv.implemented, fv.scale_factor, ours(fv.raw), ours(fv.value))
            want = (exp["implemented"], exp["scale_factor"], theirs(exp["raw_value"]),
                    theirs(exp["value"]))
            compared += 1
            if got != want or type(ours(fv.value)) is not type(theirs(exp["value"])):
                mismatches.append((block["name"], name, got, want))
        # pyburnerkit decodes exactly the readable fields mate3 exposes (plus 64117's fix).
        assert set(dev.values) == {n for n in block["values"]
                                   if (block["address"], n) not in DIFFERENCES
                                   or n == "gateway_type"}
    assert not mismatches, mismatches[:5]
    assert compared == 714


def test_devices_are_the_ones_mate3_exposes(system, expected):
    names = {b["address"]: b["name"] for b in expected}
    assert system.mate3.address == 40069 and names[40069] == "Mate3DeviceValues"
    assert {p: d.address for p, d in system.charge_controllers.items()} == {3: 40908, 4: 41026}
    assert {p: d.config.address for p, d in system.charge_controllers.items()} == \
        {3: 40936, 4: 41054}
    assert system.fndcs[5].address == 41144 and system.fndcs[5].config.address == 41222
    assert {p: d.address for p, d in system.single_phase_radian_inverters.items()} == \
        {1: 40630, 2: 40769}


def test_fix_unknown_enum_value_is_kept_not_dropped(system, expected):
    """mate3 0.6.2 warns "3 is not a valid gateway_type" and marks the field not implemented
    (issue #28); the value is real, the table just lacks it."""
    mate3_view = next(b for b in expected if b["address"] == 40069)["values"]["gateway_type"]
    assert mate3_view["implemented"] is False
    fv = system.mate3.gateway_type
    assert fv.implemented and fv.raw == 3 and fv.value.label == "unknown (3)"
    assert not fv.value.known


def test_fix_64117_not_read_past_its_device_length(system, expected):
    """mate3 uses its own length (47) for 64117 although the device reports 46, so its
    ``gt_number`` is the DID of the next block (64116). pyburnerkit leaves the field out."""
    for address in (40630, 40769):
        mate3_view = next(b for b in expected if b["address"] == address)["values"]
        assert mate3_view["gt_number"]["value"] == 64116  # the next block's DID
    regs = codec.bundled_dump()
    assert regs[40630 + 48] == 64116  # register 49 of the block is the next DID
    for dev in system.single_phase_radian_inverters.values():
        assert "gt_number" not in dev.values
        assert max(v.address + v.size - 1 for v in dev.values.values()) <= dev.address + 47


def test_config_blocks_and_blocks_mate3_hides_are_decoded(system):
    cfg = system.mate3.config  # 64120: mate3 never shows it in its CLI output
    assert cfg.did == 64120 and cfg.length == 27
    assert cfg.set_ac_output_offline_freq.address == 40491 + 28
    assert system.get("charge_controllers[3].config.absorb_volts").value == 58.8
    optics = [d for d in system.others if d.did == 64255]
    assert optics and optics[0].values  # mate3 reads 64255 but never exposes it


def test_field_value_metadata(system):
    fv = system.get("charge_controllers[3].battery_voltage")
    assert fv.units == "Volts" and fv.scale_factor == -1 and fv.implemented
    assert fv.address == 40908 + 8 and fv.registers == (fv.raw,)
    assert fv.value == round(fv.raw * 0.1, 1)
    assert str(fv).endswith("Volts")
