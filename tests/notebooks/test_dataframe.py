"""to_dataframe(): the long form's value column is numeric (pivot_table works), and the wide
form has one numeric column per field on a UTC DatetimeIndex. Recorded from a real simulator."""

from __future__ import annotations

import os
from typing import Iterator

import pandas as pd
import pytest

from pyburnerkit.afterburner import AfterburnerClient
from pyburnerkit.recorder import AfterburnerSource, Recorder, SQLiteSink, to_dataframe

from ..recorder.util import PushSource


@pytest.fixture(scope="module")
def recording(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Two heaters recorded into one SQLite file: both full statuses and some changes."""
    workdir = tmp_path_factory.mktemp("rec")
    db = str(workdir / "heaters.db")
    sources = [AfterburnerSource(AfterburnerClient("sim://?speed=30&tick=0.05"), device=name,
                                 owns_client=True) for name in ("cabin", "garage")]
    recorder = Recorder(sources, [SQLiteSink(db)], spool_dir=str(workdir / "spool"),
                        progress_interval=None)
    with recorder:
        recorder.wait_for(lambda r: r.sink("sqlite").written >= 116, timeout=30)
    yield db


def test_long_form_value_is_numeric_and_pivots(recording: str) -> None:
    df = to_dataframe(recording)
    assert df["value"].dtype == "float64"
    texts = df[df["value_text"].notna()]
    assert len(texts), "the heater sends text fields (RunString): they must be kept"
    assert texts["value"].isna().all()
    assert "RunString" in set(texts["field"])
    # what the issue says broke: a pivot over every field of a recording
    table = df.pivot_table(index="time", columns="field", values="value")
    assert "TempCurrent" in table.columns and table["TempCurrent"].notna().any()
    assert all(table[c].dtype == "float64" for c in table.columns)
    assert str(df["time"].dt.tz) == "UTC"


def test_wide_form_one_device(recording: str) -> None:
    df = to_dataframe(recording, device="cabin", wide=True)
    assert isinstance(df.index, pd.DatetimeIndex) and str(df.index.tz) == "UTC"
    assert df.index.name == "time" and df.index.is_monotonic_increasing
    assert df.index.is_unique
    long = to_dataframe(recording, device="cabin")
    numeric_fields = set(long.loc[long["value"].notna(), "field"])
    assert numeric_fields <= set(df.columns)
    for field in numeric_fields:
        assert df[field].dtype == "float64", field
    assert df["RunString"].dropna().map(type).eq(str).all()  # a text-only field stays text
    assert df.attrs["units"]["TempCurrent"] == "°C"
    # the last value of a field in the wide form is the last sample in the long form
    last = long[long["field"] == "TempCurrent"].iloc[-1]
    assert df["TempCurrent"].dropna().iloc[-1] == last["value"]
    assert df["TempCurrent"].dropna().index[-1] == last["time"]


def test_wide_form_several_devices_names_columns_by_device(recording: str) -> None:
    df = to_dataframe(recording, wide=True)
    assert "cabin/TempCurrent" in df.columns and "garage/TempCurrent" in df.columns
    assert "TempCurrent" not in df.columns
    assert df.attrs["units"]["garage/TempCurrent"] == "°C"


def test_wide_form_of_channels_and_of_nothing(tmp_path) -> None:
    db = str(tmp_path / "r.db")
    one, two = PushSource("bank"), PushSource("other")
    rec = Recorder([one, two], [SQLiteSink(db)], spool_dir=str(tmp_path / "spool"),
                   progress_interval=None)
    with rec:
        one.push({"voltage_v": 3.6, "state": "charge"}, channel="1", units={"voltage_v": "V"})
        one.push({"voltage_v": 3.7}, channel="2", units={"voltage_v": "V"})
        two.push({"voltage_v": 12})
        rec.wait_for(lambda r: r.sink("sqlite").written == 4, timeout=10)
    df = to_dataframe(db, wide=True)
    assert sorted(df.columns) == ["bank.1/state", "bank.1/voltage_v", "bank.2/voltage_v",
                                  "other/voltage_v"]
    assert df["other/voltage_v"].dtype == "float64"  # an int sample, still a float column
    assert df["bank.1/voltage_v"].dropna().tolist() == [3.6]
    empty = to_dataframe(db, field="nothing-like-this", wide=True)
    assert len(empty) == 0 and isinstance(empty.index, pd.DatetimeIndex)
    assert os.path.exists(db)
