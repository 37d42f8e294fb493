"""Plots with matplotlib's Agg backend, rendered to files; checked by their axes and lines (the
data drawn, labels, units), never by pixels."""

from __future__ import annotations

import dataclasses
import math
import subprocess
import sys
import textwrap
from typing import Iterator

import matplotlib

matplotlib.use("Agg")  # before pyplot: no display here

import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402

from pyburnerkit.de1 import DE1Client  # noqa: E402
from pyburnerkit.de1.models import ShotRecord  # noqa: E402
from pyburnerkit.de1.sequencer import ShotSequencer  # noqa: E402
from pyburnerkit.errors import ConfigurationError  # noqa: E402
from pyburnerkit.recorder import Recorder, SQLiteSink  # noqa: E402
from pyburnerkit.recorder.sinks.sqlite import plot_recording  # noqa: E402

from ..recorder.util import PushSource  # noqa: E402

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def shot() -> ShotRecord:
    """A 10 s espresso pulled on the simulated DE1 at 20x speed."""
    with DE1Client("sim://?speed=20", allow_writes=True, allow_remote_start=True) as de1:
        de1.wake()
        with ShotSequencer(de1, None, stop_at_time=10.0, time_scale=20) as seq:
            de1.start_espresso()
            record = seq.wait_complete(timeout=60)
    assert len(record.elapsed_s) > 10
    return record


@pytest.fixture(autouse=True)
def close_figures() -> Iterator[None]:
    yield
    plt.close("all")


def lines_by_label(figure: matplotlib.figure.Figure) -> dict:
    return {line.get_label(): line for ax in figure.axes for line in ax.get_lines()}


def same(drawn: object, values: object) -> bool:
    a, b = list(drawn), list(values)  # type: ignore[call-overload]
    return len(a) == len(b) and all(x == y or (math.isnan(x) and math.isnan(y))
                                    for x, y in zip(a, b))


def test_shot_plot_draws_pressure_flow_weight_and_temperatures(shot: ShotRecord,
                                                               tmp_path) -> None:
    # the simulator pours into no scale here: give the record a weight curve to draw
    weighed = dataclasses.replace(shot, weight_g=tuple(2.0 * t for t in shot.elapsed_s),
                                  final_weight_g=2.0 * shot.elapsed_s[-1])
    ax = weighed.plot()
    figure = ax.figure
    lines = lines_by_label(figure)
    assert set(lines) == {"pressure (bar)", "target pressure (bar)", "flow (mL/s)",
                          "target flow (mL/s)", "weight (g)", "mix (°C)", "head (°C)",
                          "target head (°C)"}
    assert same(lines["pressure (bar)"].get_xdata(), shot.elapsed_s)
    assert same(lines["pressure (bar)"].get_ydata(), shot.pressure_bar)
    assert same(lines["flow (mL/s)"].get_ydata(), shot.flow_ml_s)
    assert same(lines["weight (g)"].get_ydata(), weighed.weight_g)
    assert same(lines["mix (°C)"].get_ydata(), shot.mix_temp_c)
    # a target of 0 (the frame pumps to the other goal) is a gap, not a line at zero
    goals = lines["target pressure (bar)"].get_ydata()
    assert any(math.isnan(v) for v in goals) and max(v for v in goals if v == v) == \
        max(shot.set_pressure_bar)
    assert len(figure.axes) == 3  # pressure/flow, its weight twin, temperatures
    units = {a.get_ylabel() for a in figure.axes}
    assert units == {"bar, mL/s", "g", "°C"}
    below = [a for a in figure.axes if a.get_ylabel() == "°C"][0]
    assert below.get_xlabel() == "time (s)" and below.get_shared_x_axes().joined(below, ax)
    assert ax.get_title().endswith(f"{weighed.final_weight_g:.1f} g")
    out = tmp_path / "shot.png"
    figure.savefig(out)
    assert out.read_bytes().startswith(PNG)


def test_shot_plot_on_the_callers_axes(shot: ShotRecord) -> None:
    figure, own = plt.subplots()
    ax = shot.plot(own, title="mine")
    assert ax is own and ax.get_title() == "mine"
    assert len(figure.axes) == 1  # no weight curve, no temperature axes asked for
    assert "pressure (bar)" in lines_by_label(figure) and "mix (°C)" not in \
        lines_by_label(figure)


def test_recording_plot_one_axes_per_unit(tmp_path) -> None:
    db = str(tmp_path / "r.db")
    bank = PushSource("bank")
    sink = SQLiteSink(db)
    recorder = Recorder([bank], [sink], spool_dir=str(tmp_path / "spool"),
                        progress_interval=None)
    units = {"voltage_v": "V", "current_a": "A", "temperature_c": "°C"}
    with recorder:
        for i in range(5):
            bank.push({"voltage_v": 3.6 + i / 100, "current_a": 1.0 + i,
                       "temperature_c": 25 + i, "state": "charge"}, units=units)
        recorder.wait_for(lambda r: r.sink("sqlite").written == 20, timeout=10)
        axes = sink.plot()  # while recording: the sink's own file
    assert [a.get_ylabel() for a in axes] == ["A", "°C", "V"]  # one scale per unit, by column
    labels = [[line.get_label() for line in a.get_lines()] for a in axes]
    assert labels == [["current_a (A)"], ["temperature_c (°C)"], ["voltage_v (V)"]]
    volts = axes[2].get_lines()[0].get_ydata()
    assert [round(v, 2) for v in volts] == [3.6, 3.61, 3.62, 3.63, 3.64]
    assert axes[-1].get_xlabel() == "time (UTC)"
    out = tmp_path / "series.png"
    axes[0].figure.savefig(out)
    assert out.read_bytes().startswith(PNG)
    only = plot_recording(db, ["voltage_v"], title="cell")
    assert len(only) == 1 and only[0].get_title() == "cell"
    with pytest.raises(ConfigurationError, match="'state' is not numeric"):
        plot_recording(db, ["state"])
    with pytest.raises(ConfigurationError, match="no column 'power_w'"):
        plot_recording(db, ["power_w"])


def test_missing_matplotlib_names_the_extra(shot: ShotRecord, tmp_path) -> None:
    # a real interpreter in which matplotlib cannot be imported (a None entry in sys.modules
    # is Python's documented way to make an import fail): no mock of our code
    script = textwrap.dedent("""
        import sys
        sys.modules["matplotlib"] = None
        from pyburnerkit.de1.models import ShotRecord
        from pyburnerkit.errors import BackendUnavailableError
        shot = ShotRecord(0.0, None, (0.0, 1.0), (1.0, 2.0), (1.0, 1.0), (), (90.0, 91.0),
                          (90.0, 90.0), (0.0, 9.0), (2.0, 0.0), (92.0, 92.0), (0, 1))
        for call in (shot.plot, lambda: __import__("pyburnerkit.recorder.sinks.sqlite",
                     fromlist=["x"]).plot_recording(sys.argv[1])):
            try:
                call()
            except BackendUnavailableError as exc:
                print("ERROR:", exc)
        """)
    result = subprocess.run([sys.executable, "-c", script, str(tmp_path / "none.db")],
                            capture_output=True, text=True, timeout=60)
    errors = [line for line in result.stdout.splitlines() if line.startswith("ERROR:")]
    assert len(errors) == 2, result.stdout + result.stderr
    for line in errors:
        assert 'pip install "pyburnerkit[plot]"' in line and "matplotlib" in line
