"""What pyDE1 users rely on beyond the HTTP/MQTT APIs: raw MMR read/write for experts (gated,
limits checked before sending), SetTime and ShotDirectory, per-frame volumes on samples and the
shot record. Against the simulated DE1 over the in-process transport."""

from __future__ import annotations

from typing import Any, Iterator, List

import pytest

from pyburnerkit.de1 import codec
from pyburnerkit.de1.client import DE1Client
from pyburnerkit.de1.models import (MachineState as S, ShotSampleEvent, VOLUME_FRAMES)
from pyburnerkit.de1.sequencer import ShotSequencer
from pyburnerkit.errors import (ConfigurationError, UnsupportedFeatureError,
                                WriteNotAllowedError)
from pyburnerkit.rigs.espresso import DE1Rig

from ..ble.simrig import SPEED
from ..helpers import Recorder
from .test_client import make


@pytest.fixture
def de1(rig: DE1Rig) -> Iterator[DE1Client]:
    client = make(rig, allow_writes=True, allow_remote_start=True)
    client.connect()
    try:
        yield client
    finally:
        client.close()


@pytest.fixture
def reader(rig: DE1Rig) -> Iterator[DE1Client]:
    client = make(rig)
    client.connect()
    try:
        yield client
    finally:
        client.close()


def writes_to(rig: DE1Rig, uuid: str) -> List[bytes]:
    return rig.run(lambda: [d for u, d in rig.de1.writes if u == uuid])


# ----------------------------------------------------------------------------- raw MMR reads
def test_read_mmr_returns_raw_words_in_order(rig: DE1Rig, reader: DE1Client) -> None:
    # fan threshold 50 °C, tank 0, phase-1 flow 2.0 mL/s (raw 20) in the simulator
    assert reader.read_mmr(0x803808, 3) == [50, 0, 20]
    assert reader.read_mmr("flush_temperature") == [850]  # raw: 85.0 °C x 10
    rig.run(lambda: rig.de1.registers.__setitem__(0x803808, 42))
    assert reader.read_mmr(0x803808) == [42]
    assert reader.registers["fan_threshold"] == 42  # a known register updates the cache too


@pytest.mark.parametrize("address, words, text", [
    (0x000100, 1, "register page 0x800000..0x80FFFF"),
    (0x803809, 1, "not word aligned"),
    (0x803808, 0, "1..256 words"),
    (0x80FFFC, 2, "ends at 0x810003: the limit is 0x80FFFF"),
])
def test_read_mmr_refuses_bad_requests_before_sending(rig: DE1Rig, reader: DE1Client,
                                                      address: int, words: int,
                                                      text: str) -> None:
    before = writes_to(rig, codec.READ_FROM_MMR)
    with pytest.raises(ConfigurationError, match=text):
        reader.read_mmr(address, words)
    assert writes_to(rig, codec.READ_FROM_MMR) == before


def test_read_mmr_will_not_freeze_old_firmware() -> None:
    with DE1Client("sim://?speed=10&firmware_build=1250", timeout=5.0).connect() as old:
        sim = old.simulator
        assert sim is not None
        with pytest.raises(UnsupportedFeatureError, match="build 1265"):
            old.read_mmr(0x80381C, 2)  # covers 0x803820
        assert not sim.run(lambda: sim.de1.mmr_frozen)
        assert old.read_mmr(0x80381C) == [0x03]  # next to it is fine


# ----------------------------------------------------------------------------- raw MMR writes
def test_write_mmr_writes_and_reads_back(rig: DE1Rig, de1: DE1Client) -> None:
    assert de1.write_mmr(0x803808, 45) == 45
    assert rig.run(lambda: rig.de1.registers[0x803808]) == 45
    assert de1.write_mmr("flush_temperature", 900) == 900  # 90.0 °C
    assert de1.registers["flush_temperature"] == 90.0


def test_write_mmr_needs_writes(rig: DE1Rig, reader: DE1Client) -> None:
    before = writes_to(rig, codec.WRITE_TO_MMR)
    with pytest.raises(WriteNotAllowedError, match="allow_writes=True"):
        reader.write_mmr(0x803808, 45)
    assert writes_to(rig, codec.WRITE_TO_MMR) == before


@pytest.mark.parametrize("address, raw, text", [
    (0x803808, 61, r"fan_threshold \(MMR 0x803808\) raw value 61 is out of range: the limit "
                   r"is 0..60 \(0..60 °C\)"),
    (0x803844, 1200, r"flush_temperature \(MMR 0x803844\) raw value 1200 \(= 120 °C\) is out "
                     r"of range: the limit is 0..990 \(0..99 °C, raw = value x 10\)"),
    (0x803830, 1, "serial_number.*read-only"),
    (0x803900, 1, "not a known writable register"),
    (0x000040, 1, "firmware image"),
    (0x803808, -1, "out of range"),
    (0x803808, 4.5, "whole number"),
])
def test_write_mmr_refuses_what_is_out_of_limits(rig: DE1Rig, de1: DE1Client, address: int,
                                                 raw: Any, text: str) -> None:
    before = writes_to(rig, codec.WRITE_TO_MMR)
    with pytest.raises(ConfigurationError, match=text):
        de1.write_mmr(address, raw)
    assert writes_to(rig, codec.WRITE_TO_MMR) == before


def test_write_mmr_refuses_registers_newer_than_the_firmware() -> None:
    with DE1Client("sim://?speed=10&firmware_build=1280", allow_writes=True,
                   timeout=5.0).connect() as old:
        with pytest.raises(UnsupportedFeatureError, match="1283"):
            old.write_mmr("flush_timeout", 100)


# ----------------------------------------------------------------------------- SetTime, ShotDirectory
def test_set_time_writes_pyde1s_u64_and_reads_back(rig: DE1Rig, de1: DE1Client) -> None:
    assert de1.set_time(1_700_000_000) == 1_700_000_000
    assert writes_to(rig, codec.SET_TIME)[-1] == bytes.fromhex("000000006553f100")
    assert de1.read_time() == 1_700_000_000
    now = de1.set_time()  # default: now
    assert now > 1_700_000_000 and rig.run(lambda: rig.de1.set_time_s) == now


def test_set_time_needs_writes(rig: DE1Rig, reader: DE1Client) -> None:
    with pytest.raises(WriteNotAllowedError, match="allow_writes=True"):
        reader.set_time(1)
    assert writes_to(rig, codec.SET_TIME) == []


def test_set_time_is_checked(rig: DE1Rig, de1: DE1Client) -> None:
    for bad in (-1, 2 ** 64, 1.5):
        with pytest.raises(ConfigurationError, match="timestamp"):
            de1.set_time(bad)
    assert writes_to(rig, codec.SET_TIME) == []


def test_shot_directory_reads_raw(rig: DE1Rig, reader: DE1Client) -> None:
    rig.run(lambda: setattr(rig.de1.by_uuid[codec.SHOT_DIRECTORY], "value", b"\x01\x02\x03"))
    assert reader.read_shot_directory() == b"\x01\x02\x03"


# ----------------------------------------------------------------------------- volume_by_frames
def test_volume_by_frames_on_samples_and_on_the_shot_record(de1: DE1Client) -> None:
    samples = Recorder()
    de1.subscribe(samples, ShotSampleEvent)
    de1.wake()
    with ShotSequencer(de1, None, stop_at_time=12.0, time_scale=SPEED) as seq:
        de1.start_espresso()
        record = seq.wait_complete(timeout=60.0)
    by_frames = record.volume_by_frames
    assert len(by_frames) == VOLUME_FRAMES
    # the simulator's default profile: a flow fill (frame 0), then 9 bar (frame 1)
    assert by_frames[0] > 0 and by_frames[1] > 0 and not any(by_frames[2:])
    assert sum(by_frames) == pytest.approx(record.volume_total_ml)
    assert record.volume_ml and record.volume_ml[-1] <= record.volume_total_ml
    assert list(record.volume_ml) == sorted(record.volume_ml)  # cumulative
    assert de1.volume_by_frames == by_frames
    last = [e for e in samples.events if isinstance(e, ShotSampleEvent)][-1]
    assert last.volume_by_frames == by_frames
    assert sum(last.volume_by_frames) == pytest.approx(last.volume_total_ml)
    assert de1.state in (S.ESPRESSO, S.IDLE)


def test_a_flow_without_frames_counts_in_entry_zero(de1: DE1Client) -> None:
    de1.wake()
    de1.start_hot_water()
    de1.wait_for(lambda c: c.volume_by_frames[0] > 5.0, timeout=30.0)
    de1.stop()
    by_frames = de1.volume_by_frames
    assert not any(by_frames[1:])
    assert by_frames[0] == pytest.approx(sum(de1.volume))
