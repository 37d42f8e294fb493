"""The recorder's unit column agrees with the family's semantic table (issue 12: "names and
units agree everywhere"): every family's simulator is recorded for a few rounds and each
numeric sample whose field the table knows carries the table's unit (``rpm``, not the driver's
``RPM``; ``°C`` on the heater's set point, where the driver's field name says nothing)."""

from __future__ import annotations

from typing import Any, Dict, List, Tuple

import pytest

from pyburnerkit import families
from pyburnerkit.recorder import Recorder
from pyburnerkit.recorder.sources import table_entity

from .util import collect

DEMOS = [f.name for f in families.families() if f.recorder_demo]
MIN_SAMPLES = {"afterburner": 80, "arbin": 320, "mate3": 700, "victron": 20, "de1": 30,
               "scale": 10}


@pytest.mark.parametrize("family", DEMOS)
def test_recorded_units_are_the_tables(family: str, tmp_path: Any) -> None:
    sources, cleanup = families.get(family).load("recorder_demo")()
    names = [f"{s.family}/{s.device}" for s in sources]
    try:
        rec = Recorder(sources, [], spool_dir=str(tmp_path / "spool"), progress_interval=None)
        got = collect(rec)
        with rec:
            rec.wait_for(lambda r: all(r.device_counts.get(n, 0) >= MIN_SAMPLES[family]
                                       for n in names), timeout=90)
    finally:
        cleanup()
    checked = 0
    wrong: Dict[Tuple[str, str], Tuple[str, str]] = {}
    for s in list(got):
        if s.text is not None or isinstance(s.value, str):
            continue  # shown as text: no unit anywhere
        entity = table_entity(s.family, s.field, s.channel)
        if entity is None or not entity.unit:
            continue
        checked += 1
        if s.unit != entity.unit:
            wrong[(s.channel, s.field)] = (s.unit, entity.unit)
    problems: List[str] = [f"{ch}/{f}: recorded {got_!r}, table {want!r}"
                           for (ch, f), (got_, want) in sorted(wrong.items())]
    assert checked, f"{family}: no recorded field has a unit in the table"
    assert not problems, "\n".join(problems)
