"""How a round's requests become frames: every command sent once, in order, in frames the
firmware's 512-byte parse buffer holds, the query last. Sizes are counted item by item rather
than by encoding each trial frame, so the count is checked against the real encoding."""

from __future__ import annotations

from typing import Any, Dict, List

from hypothesis import given, settings
from hypothesis import strategies as st

from pyburnerkit._core.pending import Pending
from pyburnerkit.afterburner import codec
from pyburnerkit.afterburner.client import LATE_KEYS, Exchange, build_round

KEYS = st.sampled_from(["TempDesired", "Run", "CyclicOff", "FrostOn", "Humidstart", "PumpMin",
                        "MPasswd", "SSID", "a" * 60, "Refresh", "DateTime", "TQuery"])
VALUES = st.one_of(st.integers(-10**6, 10**6), st.floats(allow_nan=True),
                   st.text(max_size=120), st.booleans(), st.none())


@settings(max_examples=300)
@given(st.dictionaries(st.text(max_size=20), VALUES, max_size=8))
def test_item_sizes_add_up_to_the_encoded_frame(frame: Dict[str, Any]) -> None:
    counted = 2 + sum(codec.encoded_item_bytes(k, v) for k, v in frame.items()) \
        + max(0, len(frame) - 1)
    assert counted == len(codec.encode_frame(frame).encode("utf-8"))


@settings(max_examples=300)
@given(st.lists(st.dictionaries(KEYS, VALUES, min_size=1, max_size=4), min_size=1, max_size=8))
def test_a_round_carries_every_command_in_order_within_the_parse_buffer(
        frames_asked: List[Dict[str, Any]]) -> None:
    requests = [Pending("r", Exchange(frame)) for frame in frames_asked]
    frames, writers = build_round(requests)
    for frame in frames:
        assert len(codec.encode_frame(frame)) <= codec.MAX_COMMAND_BYTES or len(frame) == 1
    assert frames[-1].get("SQuery") == 1
    assert all("SQuery" not in frame for frame in frames[:-1])
    # The commands, as the firmware handles them: frame after frame, key after key.
    sent = [(k, v) for frame in frames for k, v in frame.items()
            if k not in LATE_KEYS and k != "SQuery"]
    asked = [(k, v) for frame in frames_asked for k, v in frame.items() if k not in LATE_KEYS]
    assert sent == asked
    for key in LATE_KEYS:
        if any(key in frame for frame in frames_asked):
            assert key in frames[-1] and all(key not in f for f in frames[:-1])
    for identity, request in writers.items():
        assert identity in request.payload.writes
