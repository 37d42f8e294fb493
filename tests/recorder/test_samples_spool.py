from __future__ import annotations

import enum
import math

import pytest

from pyburnerkit.errors import ConfigurationError
from pyburnerkit.recorder.samples import (Message, Sample, SampleFactory, normalise_value,
                                          sample_from_row, sample_to_row, slug, unit_for_name)
from pyburnerkit.recorder.spool import Spool


class Mode(enum.IntEnum):
    OFF = 0
    RUNNING = 5


def test_normalise_values():
    assert normalise_value(True) == (1, None)
    assert normalise_value(3) == (3, None)
    assert normalise_value(2.5) == (2.5, None)
    assert normalise_value(Mode.RUNNING) == (5, "RUNNING")
    assert normalise_value("Unsafe") == ("Unsafe", None)
    assert normalise_value(None) is None
    assert normalise_value(math.nan) is None
    assert normalise_value(math.inf) is None
    assert normalise_value([1, 2]) is None


def test_units_from_names():
    assert unit_for_name("voltage_v") == "V"
    assert unit_for_name("temperature_c") == "°C"
    assert unit_for_name("charge_energy_wh") == "Wh"
    assert unit_for_name("charge_capacity_ah") == "Ah"
    assert unit_for_name("pump_actual_hz") == "Hz"
    assert unit_for_name("humidity_pct") == "%"
    assert unit_for_name("status") == ""


def test_factory_makes_unique_ids_and_skips_absent_values():
    f = SampleFactory("run1")
    a = f.make(1.0, "fam", "dev", "", "x", 1)
    b = f.make(1.0, "fam", "dev", "", "x", 1)
    assert a.uid != b.uid and a.uid.startswith("run1-")
    assert f.make(1.0, "fam", "dev", "", "x", None) is None
    assert slug("/Dc/0/Voltage") == "Dc_0_Voltage"


def test_row_roundtrip():
    s = Sample("u-1", 12.5, "fam", "dev", "ch", "f", 3, "V", "NAME")
    assert sample_from_row(sample_to_row(s)) == s
    m = Message("alerts/x", "{}", True)
    assert sample_from_row(sample_to_row(m)) == m
    k = Sample("u-2", 1.0, "mate3", "house", "3", "watts", 5, "W", None, "charge_controller")
    assert sample_from_row(sample_to_row(k)) == k
    # a row spooled by a version without kinds still reads back
    assert sample_from_row(["S", "u-1", 12.5, "fam", "dev", "ch", "f", 3, "V", "NAME"]) == s


def _samples(n, start=0):
    return [Sample(f"u-{i}", float(i), "fam", "dev", "", "f", i, "")
            for i in range(start, start + n)]


def test_spool_is_fifo_and_ack_removes(tmp_path):
    spool = Spool(str(tmp_path / "s.spool"), 100)
    try:
        spool.put(_samples(10))
        last, items = spool.peek(4)
        assert [s.uid for s in items] == ["u-0", "u-1", "u-2", "u-3"]
        spool.ack(last)
        assert len(spool) == 6
        _, items = spool.peek(100)
        assert [s.uid for s in items] == [f"u-{i}" for i in range(4, 10)]
    finally:
        spool.close()


def test_spool_survives_reopen(tmp_path):
    path = str(tmp_path / "s.spool")
    spool = Spool(path, 100)
    spool.put(_samples(5))
    spool.close()
    again = Spool(path, 100)
    try:
        assert len(again) == 5
        assert [s.uid for s in again.peek(10)[1]] == [f"u-{i}" for i in range(5)]
    finally:
        again.close()


def test_full_spool_drops_oldest_counted_and_warns(tmp_path, caplog):
    spool = Spool(str(tmp_path / "s.spool"), 10, name="pg")
    try:
        assert spool.put(_samples(8)) == 0
        with caplog.at_level("WARNING"):
            assert spool.put(_samples(5, start=8)) == 3
        assert spool.dropped == 3 and len(spool) == 10
        assert "spool pg is full" in caplog.text
        assert [s.uid for s in spool.peek(100)[1]] == [f"u-{i}" for i in range(3, 13)]
        # one batch larger than the spool keeps its newest items
        assert spool.put(_samples(15, start=100)) == 15
        assert [s.uid for s in spool.peek(100)[1]] == [f"u-{i}" for i in range(105, 115)]
        assert spool.dropped == 18
        # a sink down for long at a high rate: one warning per interval, not one per batch
        caplog.clear()
        with caplog.at_level("WARNING"):
            for i in range(20):
                spool.put(_samples(5, start=200 + 5 * i))
        assert spool.dropped == 118
        assert caplog.text.count("spool pg is full") == 0  # within 10 s of the last warning
        spool._next_warning = 0.0  # the interval has passed
        with caplog.at_level("WARNING"):
            spool.put(_samples(1, start=999))
        assert caplog.text.count("spool pg is full") == 1
        assert "dropped the 116 oldest (119 dropped so far)" in caplog.text
    finally:
        spool.close()


def test_spool_limit_is_validated(tmp_path):
    with pytest.raises(ConfigurationError, match="max_items"):
        Spool(str(tmp_path / "s.spool"), 0)


def test_spool_files_are_per_target_and_locked(tmp_path):
    d = str(tmp_path)
    a = Spool.for_sink(d, "sqlite", "sqlite:/data/a.db")
    b = Spool.for_sink(d, "sqlite", "sqlite:/data/b.db")  # same sink name, another database
    a2 = Spool.for_sink(d, "sqlite", "sqlite:/data/a.db")  # a second recorder, same database
    try:
        assert len({a.path, b.path, a2.path}) == 3
        assert a2.path.startswith(a.path[:-len(".spool")]) and a2.path.endswith("-1.spool")
        a.put(_samples(3))
    finally:
        for s in (a, b, a2):
            s.close()
    again = Spool.for_sink(d, "sqlite", "sqlite:/data/a.db")  # the lock is free again
    try:
        assert again.path == a.path and len(again) == 3
    finally:
        again.close()


def test_home_assistant_classes_from_units():
    from pyburnerkit.recorder.sources import meta_for
    energy = meta_for("energy_kwh", "kWh")
    assert (energy.device_class, energy.state_class) == ("energy", "total_increasing")
    amp_hours = meta_for("ConsumedAmphours", "Ah")  # goes down and back up: not increasing
    assert (amp_hours.device_class, amp_hours.state_class) == (None, "total")
    assert meta_for("absorb_time", "min").device_class == "duration"
    assert meta_for("soc", "%").device_class == "battery"
    assert meta_for("humidity", "%").device_class == "humidity"
    text = meta_for("mode", "", numeric=False)
    assert (text.device_class, text.state_class, text.unit) == (None, None, "")
