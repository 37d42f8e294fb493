"""The wire log is bounded by bytes, not frames, and keeps long frames cut (issue 16)."""

from __future__ import annotations

import sys
from typing import Any, List

import pytest

from pyburnerkit import ConfigurationError
from pyburnerkit._core.wire import (DEFAULT_FRAME_BYTES, DEFAULT_WIRE_LOG_BYTES, TruncatedBytes,
                                    TruncatedText, WireLog)


def deep_size(obj: Any, seen: Any = None) -> int:
    """Bytes the objects reachable from ``obj`` occupy (each object counted once)."""
    seen = set() if seen is None else seen
    if id(obj) in seen:
        return 0
    seen.add(id(obj))
    size = sys.getsizeof(obj)
    if isinstance(obj, dict):
        size += sum(deep_size(k, seen) + deep_size(v, seen) for k, v in obj.items())
    elif isinstance(obj, (list, tuple)):
        size += sum(deep_size(item, seen) for item in obj)
    return size


def test_defaults_are_documented_values() -> None:
    wire = WireLog("generic")
    assert (wire.max_bytes, wire.frame_bytes) == (DEFAULT_WIRE_LOG_BYTES, DEFAULT_FRAME_BYTES)
    assert DEFAULT_WIRE_LOG_BYTES == 64 * 1024 and DEFAULT_FRAME_BYTES == 1024


def test_large_frames_are_cut_and_the_ring_stays_within_its_bytes() -> None:
    wire = WireLog("generic", max_bytes=16 * 1024, frame_bytes=512)
    frames = [bytes([i % 256]) * 30000 for i in range(200)]
    for frame in frames:
        wire.received(frame)
    kept = wire.recent()
    assert wire.bytes <= 16 * 1024
    # what the ring really holds, measured object by object, stays within the bound too
    assert deep_size(kept) <= 16 * 1024
    # the newest frames, oldest first, each cut to 512 bytes and saying how long it was
    assert [f[:1] for _, _, f in kept] == [fr[:1] for fr in frames[-len(kept):]]
    assert all(isinstance(f, TruncatedBytes) and len(f) == 512 and f.size == 30000
               for _, _, f in kept)
    assert "30000 bytes" in repr(kept[-1][2])
    assert len(kept) > 10  # bounded by bytes: many cut frames fit, not one


def test_a_count_of_small_frames_is_not_the_bound() -> None:
    wire = WireLog("generic", max_bytes=64 * 1024)
    for i in range(5000):
        wire.sent(b"\x01\x02\x03\x04")
    # far more than the old 32-frame ring, and still within the bytes
    assert 32 < len(wire.recent()) < 5000
    assert wire.bytes <= 64 * 1024
    assert deep_size(wire.recent()) <= 64 * 1024


def test_text_is_cut_and_small_objects_are_kept_as_they_are() -> None:
    wire = WireLog("generic", frame_bytes=400)
    wire.received("x" * 1000)
    small = {"RunState": 5, "TempDesired": 21}
    wire.received(small)
    wire.sent(("ItemsChanged", 3))
    big = {f"Key{i}": i for i in range(500)}
    wire.received(big)
    text, obj, pair, cut = [f for _, _, f in wire.recent()]
    assert isinstance(text, TruncatedText) and len(text) == 400 and text.size == 1000
    assert obj is small
    assert pair == ("ItemsChanged", 3)
    # a container too big for one frame's share is kept as its text, cut
    assert isinstance(cut, TruncatedText) and cut.startswith('{"Key0":0,') and len(cut) == 400


def test_the_newest_frame_always_stays_even_when_alone_over_the_bound() -> None:
    wire = WireLog("generic", max_bytes=1024, frame_bytes=1024)
    wire.received(b"a")
    wire.received(b"b" * 5000)
    kept = wire.recent()
    assert len(kept) == 1 and kept[0][2][:1] == b"b"


def test_a_reused_receive_buffer_is_copied_not_pinned() -> None:
    wire = WireLog("generic")
    buffer = bytearray(b"frame-one")
    wire.received(memoryview(buffer)[:5])
    wire.received(buffer)
    buffer[:] = b"XXXXXXXXX"
    assert [f for _, _, f in wire.recent()] == [b"frame", b"frame-one"]


def test_an_optional_frame_count_caps_as_well() -> None:
    wire = WireLog("generic", 3)
    for i in range(10):
        wire.sent(bytes([i]))
    assert [f for _, _, f in wire.recent()] == [b"\x07", b"\x08", b"\x09"]


@pytest.mark.parametrize("kwargs, words", [
    ({"max_bytes": 10}, ["max_bytes", "10", "bytes"]),
    ({"frame_bytes": 2}, ["frame_bytes", "2", "bytes"]),
    ({"max_bytes": 2048, "frame_bytes": 4096}, ["frame_bytes", "4096", "2048"]),
])
def test_bad_bounds_are_refused_with_value_limit_and_unit(kwargs: Any, words: List[str]) -> None:
    with pytest.raises(ConfigurationError) as info:
        WireLog("generic", **kwargs)
    assert all(w in str(info.value) for w in words), str(info.value)


def test_a_256_channel_arbin_client_holds_at_most_a_mebibyte_of_wire_log() -> None:
    from pyburnerkit.arbin import CyclerClient
    with CyclerClient("sim://?channels=256", aux=False) as cycler:
        for _ in range(40):
            assert len(cycler.read_all_statuses()) == 256
        frames = cycler._wire.recent()
        assert any(isinstance(f, TruncatedBytes) and f.size > DEFAULT_FRAME_BYTES
                   for _, _, f in frames), "the all-channel replies are longer than a cut"
        assert cycler._wire.bytes <= DEFAULT_WIRE_LOG_BYTES
        assert deep_size(frames) <= 1 << 20
