"""Discovery (the walk) and pairing of blocks into devices, on real and synthetic images."""

from __future__ import annotations

from typing import Dict, List, Tuple

import pytest

from pyburnerkit.errors import ConfigurationError, ProtocolError
from pyburnerkit.mate3 import codec
from pyburnerkit.mate3.models import DeviceKind


def walk(regs: Dict[int, int], max_registers: int = 100) -> Tuple[codec.Walker, List]:
    """Drive the walker like a client would, failing on any read outside the image."""
    walker = codec.Walker(max_registers=max_registers)
    reads = []
    while not walker.done:
        address, count = walker.next_read()
        assert 1 <= count <= max_registers
        missing = [a for a in range(address, address + count) if a not in regs]
        assert not missing, f"the walk read outside the map: {missing[:3]}"
        reads.append((address, count))
        walker.feed(address, [regs[a] for a in range(address, address + count)])
        assert len(reads) < 200
    return walker, reads


def test_walk_of_the_real_dump_matches_the_documented_layout():
    regs = codec.bundled_dump()
    walker, reads = walk(regs)
    layout = walker.layout()
    starts = [(b.address, b.did, b.length, b.port) for b in layout.blocks]
    assert starts[:3] == [(40002, 1, 65, None), (40069, 64110, 420, None),
                          (40491, 64120, 27, None)]
    assert (40630, 64117, 46, 1) in starts and (41222, 64119, 52, 5) in starts
    assert layout.end_address == 41276 and layout.last_address == max(regs)
    # Every register read exactly once, never past the end marker.
    covered = [a for address, count in reads for a in range(address, address + count)]
    assert len(covered) == len(set(covered)) == len(regs)


def test_full_read_plan_needs_13_requests_of_at_most_100():
    layout = codec.layout_from_registers(codec.bundled_dump())
    plan = codec.full_read_plan(layout)
    assert len(plan) == 13 and max(c for _, c in plan) == 100
    assert plan[0][0] == 40000 and sum(c for _, c in plan) == 1278


def test_unknown_blocks_are_skipped_by_their_length():
    specs = [(120, None, 14), (64111, 3, None), (64112, 3, None), (63000, None, 0),
             (64118, 5, None), (64119, 5, None)]
    regs = codec.build_image(specs)
    walker, _ = walk(regs)
    notes: List[str] = []
    system = codec.build_system(walker.layout(), regs, 0.0, notes)
    assert set(system.charge_controllers) == {3} and set(system.fndcs) == {5}
    unknown = [d for d in system.others if d.kind is DeviceKind.UNKNOWN]
    assert [(d.did, d.length) for d in unknown] == [(120, 14), (63000, 0)]
    assert any("unknown block 120" in n for n in notes)


def test_missing_config_block_keeps_the_device_without_config():
    regs = codec.build_image([(64111, 3, None), (64111, 4, None), (64112, 4, None)])
    notes: List[str] = []
    system = codec.build_system(codec.layout_from_registers(regs), regs, 0.0, notes)
    assert system.charge_controllers[3].config is None
    assert system.charge_controllers[4].config.port == 4
    assert any("port 3 has no 64112" in n for n in notes)


def test_config_without_real_time_block_goes_to_others():
    regs = codec.build_image([(64112, 7, None)])
    system = codec.build_system(codec.layout_from_registers(regs), regs, 0.0)
    assert not system.charge_controllers
    assert [d.kind for d in system.others] == [DeviceKind.CHARGE_CONTROLLER_CONFIG]


def test_gs_config_block_shared_by_single_and_split_phase_units():
    regs = codec.build_image(codec.parse_description("gs-single:1,gs-split:2"))
    system = codec.build_system(codec.layout_from_registers(regs), regs, 0.0)
    assert system.single_phase_radian_inverters[1].config.did == 64116
    assert system.single_phase_radian_inverters[1].config.port == 1
    assert system.split_phase_radian_inverters[2].config.did == 64116
    assert system.split_phase_radian_inverters[2].config.port == 2


def test_config_pairs_by_port_not_by_position():
    # Config blocks listed in the opposite order from their devices.
    regs = codec.build_image([(64111, 3, None), (64111, 4, None), (64112, 4, None),
                              (64112, 3, None)])
    system = codec.build_system(codec.layout_from_registers(regs), regs, 0.0)
    for port in (3, 4):
        cc = system.charge_controllers[port]
        assert cc.config.port == port and cc.config.address > cc.address


def test_swapped_ports_change_the_layout_signature():
    a = codec.build_image(codec.parse_description("cc:3,fndc:5"))
    b = codec.build_image(codec.parse_description("cc:5,fndc:3"))
    la, lb = codec.layout_from_registers(a), codec.layout_from_registers(b)
    assert [x.address for x in la.blocks] == [x.address for x in lb.blocks]
    assert la.signature() != lb.signature()
    assert codec.check_layout(la, a) and not codec.check_layout(la, b)


def test_64117_is_read_by_the_device_length():
    regs = codec.bundled_dump()
    system = codec.build_system(codec.layout_from_registers(regs), regs, 0.0)
    gs = system.single_phase_radian_inverters[1]
    assert gs.length == 46 and "gt_number" not in gs.values
    assert gs.ac_couple_kw.address == gs.address + 47  # the last field inside the block


def test_no_marker_and_broken_chains_are_protocol_errors():
    regs = codec.bundled_dump()
    bad = dict(regs)
    bad[40000] = 0
    with pytest.raises(ProtocolError, match="SunSpec marker"):
        walk(bad)
    truncated = {a: v for a, v in regs.items() if a < 41000}
    with pytest.raises(ProtocolError, match="missing"):
        codec.layout_from_registers(truncated)
    huge = dict(regs)
    huge[40069 + 1] = 0xFFF0
    with pytest.raises(ProtocolError, match="beyond the register space"):
        codec.layout_from_registers(huge)


def test_walk_feed_must_follow_the_plan():
    walker = codec.Walker()
    with pytest.raises(ProtocolError):
        walker.feed(40010, [1])
    with pytest.raises(ProtocolError, match="did not reach"):
        walker.layout()


def test_description_errors():
    with pytest.raises(ConfigurationError, match="unknown device kind 'xx'"):
        codec.parse_description("xx:3")
    with pytest.raises(ConfigurationError, match="used twice"):
        codec.parse_description("cc:3,fndc:3")
    with pytest.raises(ConfigurationError, match="out of range"):
        codec.parse_description("cc:11")


def test_coalesce_limits_and_gaps():
    assert codec.coalesce([1, 2, 3, 10]) == [(1, 10)]
    assert codec.coalesce([1, 2, 3, 10], max_gap=3) == [(1, 3), (10, 1)]
    assert codec.coalesce(range(0, 250)) == [(0, 100), (100, 100), (200, 50)]
    assert codec.coalesce([]) == []
