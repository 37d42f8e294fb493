"""The recorded DE1 and Skale II frames the tests already use (the golden vectors of
``test_codec.py`` and ``tests/scale/test_scale.py``, worked out from spec de1.md), keyed by the
characteristic that carries them. The fuzz tests start from these and mutate them, so hostile
input looks like real traffic that went wrong rather than only random bytes."""

from __future__ import annotations

from typing import Dict, List

from pyburnerkit.de1 import codec
from pyburnerkit.scale import codec as scale_codec

#: characteristic UUID -> frames recorded for it (notifications and read replies).
DE1_FRAMES: Dict[str, List[bytes]] = {
    codec.STATE_INFO: [bytes.fromhex("0405"), bytes.fromhex("02cb"), bytes.fromhex("3063"),
                       bytes.fromhex("0000")],
    codec.SHOT_SAMPLE: [bytes.fromhex("04d2" "9000" "2800" "5c80" "5d4000" "5c00" "5d00" "90"
                                      "00" "01" "96")],
    codec.SHOT_SETTINGS: [bytes.fromhex("00" "a0" "78" "55" "78" "2d" "c8" "5c00")],
    codec.VERSIONS: [bytes.fromhex("04" "0f" "0064" "00" "12345670" "04" "0d" "0535" "01"
                                   "abcdef10")],
    codec.WATER_LEVELS: [bytes.fromhex("28800500"), bytes.fromhex("00000780")],
    codec.TEMPERATURES: [bytes.fromhex("5c00" "9600" "5d80" "1400" "5c00" "9600" "5c00"
                                       "1400")],
    codec.CALIBRATION: [bytes.fromhex("00000000" "00" "01" "00018000" "fffe8000"),
                        bytes.fromhex("0000000000010001" "8000fffe8000")],
    codec.FW_MAP_REQUEST: [bytes.fromhex("0000" "01" "01" "000000"),
                           bytes.fromhex("00000001ffffff")],
    codec.READ_FROM_MMR: [bytes.fromhex("10803808" "32000000" "00000000" "14000000" "28000000")],
    codec.WRITE_TO_MMR: [bytes.fromhex("04803808" "3c000000") + bytes(12)],
    codec.FRAME_WRITE: [bytes.fromhex("00" "47" "40" "b8" "50" "40" "0000"),
                        bytes.fromhex("21" "30" "0a") + bytes(5),
                        bytes.fromhex("020000") + bytes(5)],
    codec.HEADER_WRITE: [bytes.fromhex("0102010060")],
    codec.REQUESTED_STATE: [b"\x0f"],
}

SCALE_FRAMES: Dict[str, List[bytes]] = {
    scale_codec.WEIGHT: [bytes.fromhex("ef680100" "00" "680100"), bytes.fromhex("eff1ffff")],
    scale_codec.BUTTON: [b"\x01", b"\x02"],
    scale_codec.COMMAND: [b"\x10", b"\xca\x05"],
    scale_codec.BATTERY: [bytes((57,))],
}


def all_frames() -> List[bytes]:
    return [frame for table in (DE1_FRAMES, SCALE_FRAMES) for frames in table.values()
            for frame in frames]
