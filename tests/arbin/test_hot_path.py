"""The lean receive and decode path (issue 16): equal results to the straightforward code.

The reference implementations below are the plain per-byte versions the codec used before; the
codec's vectorised versions must agree with them on any input.
"""

from __future__ import annotations

import dataclasses
import random
import struct
from typing import List

import pytest
from hypothesis import given, settings, strategies as st

from pyburnerkit.arbin import codec
from pyburnerkit.arbin.models import (AuxReading, BmsReading, ChannelState, ChannelStatus,
                                      SmbReading)
from pyburnerkit.errors import ProtocolError

from .captures import all_captures, capture

CAPTURES = all_captures()  # fails the module (never skips it) when the captures are missing


def reference_checksum(data: bytes) -> int:
    return sum(data) & 0xFFFF


def reference_decode_wide(raw: bytes) -> str:
    """Search the NUL unit one unit at a time, then decode what precedes it."""
    raw = bytes(raw)
    end = len(raw) - (len(raw) % 2)
    for i in range(0, end, 2):
        if raw[i] == 0 and raw[i + 1] == 0:
            end = i
            break
    text = raw[:end].decode("utf-16-le", errors="replace")
    return text[1:] if text.startswith("\ufeff") else text


# ---------------------------------------------------------------------- checksum
@settings(max_examples=150, deadline=None)
@given(st.binary(min_size=0, max_size=20000))
def test_checksum_equals_the_byte_sum(data: bytes) -> None:
    assert codec.checksum(data) == reference_checksum(data)
    assert codec.checksum(memoryview(data)) == reference_checksum(data)


@pytest.mark.parametrize("size", [4095, 4096, 4097, 65535, 65536, 65537, 448792, 448793])
@pytest.mark.parametrize("fill", [0x00, 0x01, 0xFF, None])
def test_checksum_at_lane_and_fold_boundaries(size: int, fill) -> None:
    # all 0xFF is the worst case for the lanes (every fold at its largest sum)
    data = random.Random(size).randbytes(size) if fill is None else bytes([fill]) * size
    assert codec.checksum(data) == reference_checksum(data)


def test_checksum_of_the_largest_frame_of_ff_bytes() -> None:
    data = b"\xff" * codec.MAX_FRAME
    assert codec.checksum(data) == reference_checksum(data)


# ---------------------------------------------------------------------- wide strings
UTF16_UNITS = st.lists(st.sampled_from([0x0000, 0x0041, 0x00E9, 0xFEFF, 0xD800, 0xDBFF, 0xDC00,
                                        0xDFFF, 0x4E2D, 0xFFFF, 0x0100]), max_size=60)


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.binary(max_size=400),
                 UTF16_UNITS.map(lambda units: struct.pack(f"<{len(units)}H", *units))))
def test_decode_wide_equals_the_unit_by_unit_search(raw: bytes) -> None:
    assert codec.decode_wide(raw) == reference_decode_wide(raw)


@pytest.mark.parametrize("raw", [b"", b"\0", b"\0\0", b"A", b"A\0", b"A\0B", b"\xff\xfeA\0",
                                 b"\0\xd8\0\0A\0", b"\0\xd8", b"\0\xdcA\0\0\0B\0"])
def test_decode_wide_edge_cases(raw: bytes) -> None:
    assert codec.decode_wide(raw) == reference_decode_wide(raw)


# ---------------------------------------------------------------------- channel records
TEXT = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\0"),
               max_size=20)
FLOAT32 = st.floats(width=32, allow_nan=False)


@st.composite
def statuses(draw, readings: bool) -> ChannelStatus:
    kw = dict(channel=draw(st.integers(1, 512)),
              state=ChannelState(draw(st.integers(-5, 40))),
              comm_failure=draw(st.booleans()), schedule=draw(TEXT), test_name=draw(TEXT),
              exit_condition=draw(TEXT), step_and_cycle=draw(TEXT), barcode=draw(TEXT),
              can_config_name=draw(TEXT), smb_config_name=draw(TEXT),
              master_channel=draw(st.integers(1, 512)),
              test_time_s=draw(st.floats(allow_nan=False)),
              step_time_s=draw(st.floats(allow_nan=False)),
              voltage_v=draw(FLOAT32), current_a=draw(FLOAT32))
    if readings:
        kw["aux"] = {"voltage": (AuxReading(draw(FLOAT32), draw(FLOAT32)),)}
        kw["bms"] = (BmsReading(3, 1.5, "V"),)
        kw["smb"] = (SmbReading(1, "ok", ""), SmbReading(2, 4.25, "A"))
    return ChannelStatus(**kw)


def _fields(status: ChannelStatus) -> dict:
    return {f.name: getattr(status, f.name) for f in dataclasses.fields(status)}


@settings(max_examples=60, deadline=None)
@given(st.lists(st.one_of(statuses(False), statuses(True)), max_size=12))
def test_decoded_statuses_equal_constructor_built_ones(records: List[ChannelStatus]) -> None:
    frame = codec.encode_feedback(codec.ChannelInfoFeedback(tuple(records)))
    decoded = codec.decode_feedback(frame).statuses
    assert len(decoded) == len(records)
    for got, sent in zip(decoded, records):
        # what the model's own constructor makes of the same field values
        rebuilt = ChannelStatus(**_fields(got))
        assert type(got) is ChannelStatus
        assert got == rebuilt and hash(got) == hash(rebuilt)
        assert (got.channel, got.state, got.schedule, got.test_name, got.aux, got.bms,
                got.smb) == (sent.channel, sent.state, sent.schedule, sent.test_name, sent.aux,
                             sent.bms, sent.smb)
        with pytest.raises(dataclasses.FrozenInstanceError):
            got.voltage_v = 1.0  # type: ignore[misc]


def test_bare_and_general_paths_decode_alike() -> None:
    bare = [ChannelStatus(channel=i, state=ChannelState.CHARGE, schedule=f"s{i}.sdx",
                          voltage_v=3.5) for i in range(1, 40)]
    with_aux = bare[:5] + [dataclasses.replace(bare[5], aux={"voltage": (AuxReading(1, 2),)})]
    fast = codec.decode_feedback(codec.encode_feedback(codec.ChannelInfoFeedback(tuple(bare))))
    slow = codec.decode_feedback(codec.encode_feedback(
        codec.ChannelInfoFeedback(tuple(with_aux))))
    assert fast.statuses[:5] == slow.statuses[:5]
    assert slow.statuses[5].aux == {"voltage": (AuxReading(1.0, 2.0),)}


def test_readings_announced_in_a_frame_sized_for_bare_records_are_a_protocol_error() -> None:
    record = codec.encode_channel_record(ChannelStatus(channel=1, state=ChannelState.REST))
    counts_at = codec.CHANNEL_RECORD_SIZE - 28  # the 14 u16 reading counts end the record
    bad = bytearray(record)
    struct.pack_into("<H", bad, counts_at, 1)  # one aux voltage reading, not in the frame
    args = struct.pack("<I", 2) + bytes(bad) + record
    frame = codec.build_frame(codec.CHANNEL_INFO_FEEDBACK, args, feedback=True)
    with pytest.raises(ProtocolError):
        codec.decode_feedback(frame)


def test_captured_channel_info_decodes_alike_through_a_memoryview_free_copy() -> None:
    raw = capture("server_channel_info_msg")
    assert codec.decode_feedback(raw) == codec.decode_feedback(bytearray(raw))


# ---------------------------------------------------------------------- the receive buffer
def _through_buffer(buffer: codec.FrameBuffer, stream: bytes, cuts: List[int]) -> List[bytes]:
    """Receive ``stream`` in the pieces ``cuts`` gives, as recv_into would, and take frames."""
    frames: List[bytes] = []
    pos = 0
    for cut in cuts + [len(stream)]:
        while pos < min(cut, len(stream)):
            space = buffer.space()
            assert len(space) >= 1
            piece = stream[pos:min(cut, pos + len(space))]
            space[:len(piece)] = piece
            buffer.commit(len(piece))
            pos += len(piece)
            frames += buffer.take_frames()
    return frames


FEEDBACK_CAPTURES = [raw for name, raw in CAPTURES.items() if name.startswith("server_")]
REQUEST_CAPTURES = [raw for name, raw in CAPTURES.items() if name.startswith("client_")]


@settings(max_examples=80, deadline=None)
@given(st.lists(st.sampled_from(range(len(FEEDBACK_CAPTURES))), min_size=1, max_size=8),
       st.lists(st.integers(0, 40000), max_size=12), st.integers(22, 70000))
def test_buffer_returns_the_captured_frames_byte_exact(order, cuts, size) -> None:
    stream = b"".join(FEEDBACK_CAPTURES[i] for i in order)
    buffer = codec.FrameBuffer(feedback=True, size=size, keep=size)
    frames = _through_buffer(buffer, stream, sorted(cuts))
    assert frames == [FEEDBACK_CAPTURES[i] for i in order]
    assert all(type(frame) is bytes for frame in frames)
    assert buffer.buffered == 0
    assert buffer.capacity <= max(size, 22)  # grown for a big frame, given back once empty


def test_request_buffer_uses_request_lengths_and_keeps_a_partial_frame() -> None:
    buffer = codec.FrameBuffer(feedback=False, size=64)
    stream = b"".join(REQUEST_CAPTURES)
    buffer.write(stream[:-5])
    assert buffer.take_frames() == REQUEST_CAPTURES[:-1]
    assert buffer.buffered == len(REQUEST_CAPTURES[-1]) - 5
    buffer.write(stream[-5:])
    assert buffer.take_frames() == REQUEST_CAPTURES[-1:]


def test_buffer_is_reused_while_frames_fit() -> None:
    frame = capture("server_channel_info_msg")
    buffer = codec.FrameBuffer(feedback=True, size=4 * len(frame))
    first = buffer._buf
    for _ in range(50):
        buffer.write(frame)
        assert buffer.take_frames() == [frame]
    assert buffer._buf is first


def test_buffer_grows_for_a_large_frame_and_keeps_it_up_to_keep() -> None:
    statuses_ = tuple(ChannelStatus(channel=i, state=ChannelState.REST) for i in range(1, 257))
    big = codec.encode_feedback(codec.ChannelInfoFeedback(statuses_))
    buffer = codec.FrameBuffer(feedback=True, size=4096, keep=1 << 20)
    assert _through_buffer(buffer, big + big, [1000, 70000, len(big) + 3]) == [big, big]
    assert len(big) <= buffer.capacity <= 1 << 20  # kept for the next poll
    small = codec.FrameBuffer(feedback=True, size=4096, keep=8192)
    assert _through_buffer(small, big, []) == [big]
    assert small.capacity == 4096  # larger than keep: given back


@pytest.mark.parametrize("junk", [b"GET / HTTP/1.1\r\n", b"\xdd\xdd\x00", b"x"])
def test_buffer_bad_token_is_a_protocol_error_naming_the_bytes(junk: bytes) -> None:
    buffer = codec.FrameBuffer(feedback=True)
    buffer.write(junk)
    with pytest.raises(ProtocolError, match="token"):
        buffer.take_frames()
    assert buffer.head(4) == junk[:4]
    buffer.clear()
    assert buffer.buffered == 0 and buffer.take_frames() == []


def test_buffer_impossible_length_is_a_protocol_error() -> None:
    buffer = codec.FrameBuffer(feedback=True)
    buffer.write(codec.TOKEN_BYTES + struct.pack("<I", codec.MAX_FRAME + 1))
    with pytest.raises(ProtocolError, match="impossible"):
        buffer.take_frames()


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=3000), st.lists(st.integers(0, 3000), max_size=6))
def test_buffer_random_bytes_only_raise_protocol_error(data: bytes, cuts) -> None:
    buffer = codec.FrameBuffer(feedback=True, size=32)
    try:
        frames = _through_buffer(buffer, data, sorted(cuts))
    except ProtocolError:
        return
    reader = codec.FrameReader(feedback=True)
    assert frames == reader.feed(data)


# ---------------------------------------------------------------------- the client
def test_client_reuses_one_receive_buffer_across_wide_reads(sim, cycler) -> None:
    first = cycler.read_all_statuses()
    session = cycler._session
    buffer = session._reader._buf
    for _ in range(5):
        again = cycler.read_all_statuses()
        assert [s.channel for s in again] == [s.channel for s in first]
    assert session._reader._buf is buffer
    assert session._reader.buffered == 0
