"""Incremental decoding (issue 16): only changed blocks are decoded again, and the result is
always what a full decode of the same registers gives."""

from __future__ import annotations

from typing import Dict, List, Optional, Tuple

import pytest
from hypothesis import given, settings, strategies as st

from pyburnerkit.errors import ProtocolError
from pyburnerkit.mate3 import codec
from pyburnerkit.mate3.models import Layout

DUMP = codec.bundled_dump()
LAYOUT = codec.layout_from_registers(DUMP)
FIRST, LAST = LAYOUT.base, LAYOUT.last_address


def full(layout: Layout, regs: Dict[int, int], read_at: float) -> Tuple[object, List[str]]:
    notes: List[str] = []
    return codec.build_system(layout, regs, read_at, notes), notes


def incremental(decoder: codec.SystemDecoder, layout: Layout, regs: Dict[int, int],
                read_at: float) -> Tuple[object, List[str]]:
    notes: List[str] = []
    return decoder.decode(layout, regs, read_at, notes), notes


def block_of(address: int) -> Optional[Tuple[int, int, int]]:
    for block in LAYOUT.blocks:
        if block.address <= address <= block.address + block.length + 1:
            return block.did, block.address, block.length
    return None


# one change: set a register (anywhere in the map, headers included) or forget it
CHANGE = st.tuples(st.integers(FIRST, LAST),
                   st.one_of(st.integers(0, 0xFFFF), st.none()))
ROUNDS = st.lists(st.tuples(st.lists(CHANGE, max_size=12), st.booleans()),
                  min_size=1, max_size=6)


@settings(max_examples=120, deadline=None)
@given(ROUNDS)
def test_incremental_decode_equals_a_full_decode(rounds) -> None:
    decoder = codec.SystemDecoder()
    regs = dict(DUMP)
    read_at = 1000.0
    assert incremental(decoder, LAYOUT, regs, read_at) == full(LAYOUT, regs, read_at)
    for changes, same_time in rounds:
        changed_blocks = set()
        for address, value in changes:
            old = regs.get(address)
            if value is None:
                regs.pop(address, None)
            else:
                regs[address] = value
            if regs.get(address) != old:
                changed_blocks.add(block_of(address))
        if not same_time:
            read_at += 1.5
        assert incremental(decoder, LAYOUT, regs, read_at) == full(LAYOUT, regs, read_at)
        # at most the blocks that changed were decoded again; every other one was reused
        assert decoder.decoded <= len(changed_blocks - {None})


@settings(max_examples=40, deadline=None)
@given(st.lists(CHANGE, min_size=1, max_size=8), st.integers(1, len(LAYOUT.blocks) - 1))
def test_incremental_decode_follows_layout_changes(changes, keep) -> None:
    decoder = codec.SystemDecoder()
    regs = dict(DUMP)
    smaller = Layout(blocks=LAYOUT.blocks[:keep], base=LAYOUT.base,
                     end_address=LAYOUT.blocks[keep].address)
    incremental(decoder, LAYOUT, regs, 1.0)
    assert incremental(decoder, smaller, regs, 2.0) == full(smaller, regs, 2.0)
    for address, value in changes:
        if value is not None:
            regs[address] = value
    assert incremental(decoder, LAYOUT, regs, 3.0) == full(LAYOUT, regs, 3.0)


def test_one_changed_field_decodes_one_block_and_reuses_the_rest() -> None:
    decoder = codec.SystemDecoder()
    regs = dict(DUMP)
    first = decoder.decode(LAYOUT, regs, 10.0)
    assert decoder.reused == 0 and decoder.decoded > 1
    everything = decoder.decoded

    again = decoder.decode(LAYOUT, regs, 11.0)
    assert (decoder.decoded, decoder.reused) == (0, everything)
    assert again == codec.build_system(LAYOUT, regs, 11.0)
    cc = first.charge_controllers[3]
    assert again.charge_controllers[3].battery_voltage.read_at == 11.0
    assert cc.battery_voltage.read_at == 10.0  # the earlier system is left as it was

    fdef = codec.block_defs()[cc.did].fields["battery_voltage"]
    address = cc.address + fdef.start - 1
    regs[address] = regs[address] + 7
    third = decoder.decode(LAYOUT, regs, 12.0)
    assert (decoder.decoded, decoder.reused) == (1, everything - 1)
    assert third.charge_controllers[3].battery_voltage.raw == \
        cc.battery_voltage.raw + 7
    assert third == codec.build_system(LAYOUT, regs, 12.0)


def test_a_changed_scale_factor_redecodes_the_values_it_scales() -> None:
    decoder = codec.SystemDecoder()
    regs = dict(DUMP)
    before = decoder.decode(LAYOUT, regs, 1.0).charge_controllers[3]
    fdef = codec.block_defs()[before.did].fields["battery_voltage"]
    sf_def = codec.scale_factor_def(before.did, fdef, before.length)
    assert sf_def is not None
    address = before.address + sf_def.start - 1
    regs[address] = (regs[address] - 1) & 0xFFFF
    after = decoder.decode(LAYOUT, regs, 2.0)
    assert after == codec.build_system(LAYOUT, regs, 2.0)
    assert after.charge_controllers[3].battery_voltage.scale_factor == \
        before.battery_voltage.scale_factor - 1


def test_a_bad_register_raises_and_leaves_the_decoder_usable() -> None:
    decoder = codec.SystemDecoder()
    regs = dict(DUMP)
    decoder.decode(LAYOUT, regs, 1.0)
    cc = LAYOUT.blocks[3]
    regs[cc.address + 4] = 70000
    with pytest.raises(ProtocolError):
        decoder.decode(LAYOUT, regs, 2.0)
    regs[cc.address + 4] = DUMP[cc.address + 4]
    assert decoder.decode(LAYOUT, regs, 3.0) == codec.build_system(LAYOUT, regs, 3.0)


# ---------------------------------------------------------------------- through the client
def test_client_reads_reuse_unchanged_blocks_and_show_every_change(sim, make_client) -> None:
    client = make_client(sim)
    client.read_all()
    decoder = client._session._decoder
    assert decoder.decoded == 0  # nothing changed on the simulator since the walk
    sim.set({"charge_controllers[3].battery_voltage": 51.2})
    system = client.read_all()
    assert decoder.decoded == 1
    assert system.charge_controllers[3].battery_voltage.value == pytest.approx(51.2)
    assert system == codec.build_system(system.layout, client._session._full_regs,
                                        system.read_at)
