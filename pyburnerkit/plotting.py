"""Plots for people who would rather look than read: a shot's curves, a recording's series.

Needs matplotlib: ``pip install "pyburnerkit[plot]"`` (a missing matplotlib raises
:class:`~pyburnerkit.errors.BackendUnavailableError` naming that command). Nothing here talks
to a device. Figures are made with ``matplotlib.pyplot`` (so notebooks show them inline and
scripts with ``plt.show()``), unless you pass an ``ax`` to draw on. Like pandas' ``.plot()``,
each function returns Axes, not the figure (a returned figure would show twice in a
notebook); ``ax.figure.savefig("shot.png")`` saves it.
"""

from __future__ import annotations

from typing import Any, Dict, List, Mapping, Optional, Sequence

from ._core.extras import require
from .errors import ConfigurationError

__all__ = ["plot_shot", "plot_timeseries", "require_matplotlib"]

#: The extra that installs matplotlib.
EXTRA = "plot"


def require_matplotlib() -> Any:
    """Import matplotlib or raise :class:`~pyburnerkit.errors.BackendUnavailableError`
    naming ``pip install "pyburnerkit[plot]"``."""
    return require("matplotlib", EXTRA)


def _pyplot() -> Any:
    require_matplotlib()
    return require("matplotlib.pyplot", EXTRA)


def plot_shot(record: Any, ax: Optional[Any] = None, *, temperature_ax: Optional[Any] = None,
              title: Optional[str] = None) -> Any:
    """Draw a shot record (:class:`~pyburnerkit.de1.models.ShotRecord`): pressure (bar) and
    flow (mL/s) with their targets dashed, weight (g) on a right-hand axis, and below them
    the mix, head and target head temperatures (°C), all against the shot's elapsed seconds.

    :param ax: the Axes for pressure and flow (weight goes on its twin); by default a new
        figure with two rows, the temperatures in the second.
    :param temperature_ax: where the temperatures go when ``ax`` is given (left out when
        both ``ax`` is given and this is None).
    :returns: the pressure/flow Axes (``ax.figure.axes`` holds the others).
    :raises BackendUnavailableError: matplotlib is not installed.
    """
    elapsed = list(record.elapsed_s)
    if ax is None:
        plt = _pyplot()
        fig, (ax, temperature_ax) = plt.subplots(2, 1, sharex=True, figsize=(9, 6),
                                                 gridspec_kw={"height_ratios": [2, 1]})
    else:
        require_matplotlib()
    ax.plot(elapsed, record.pressure_bar, color="tab:green", label="pressure (bar)")
    ax.plot(elapsed, _goal(record.set_pressure_bar), color="tab:green", linestyle="--",
            label="target pressure (bar)")
    ax.plot(elapsed, record.flow_ml_s, color="tab:blue", label="flow (mL/s)")
    ax.plot(elapsed, _goal(record.set_flow_ml_s), color="tab:blue", linestyle="--",
            label="target flow (mL/s)")
    ax.set_ylabel("bar, mL/s")
    handles, labels = ax.get_legend_handles_labels()
    if len(record.weight_g) == len(elapsed) and elapsed:
        weight_ax = ax.twinx()
        weight_ax.plot(elapsed, record.weight_g, color="tab:brown", label="weight (g)")
        weight_ax.set_ylabel("g")
        more_handles, more_labels = weight_ax.get_legend_handles_labels()
        handles, labels = handles + more_handles, labels + more_labels
    ax.legend(handles, labels, loc="upper left", fontsize="small")
    ax.set_title(title if title is not None else _shot_title(record))
    if temperature_ax is not None:
        temperature_ax.plot(elapsed, record.mix_temp_c, color="tab:red", label="mix (°C)")
        temperature_ax.plot(elapsed, record.head_temp_c, color="tab:orange",
                            label="head (°C)")
        temperature_ax.plot(elapsed, record.set_head_temp_c, color="tab:orange",
                            linestyle="--", label="target head (°C)")
        temperature_ax.set_ylabel("°C")
        temperature_ax.set_xlabel("time (s)")
        temperature_ax.legend(loc="lower right", fontsize="small")
    else:
        ax.set_xlabel("time (s)")
    return ax


def _goal(values: Sequence[float]) -> List[float]:
    # a frame pumps to a pressure *or* a flow goal and reports 0 for the other: a gap in the
    # dashed line (as de1app and Visualizer draw it), not a line at zero
    return [v if v > 0 else float("nan") for v in values]


def _shot_title(record: Any) -> str:
    profile = record.profile if isinstance(record.profile, Mapping) else {}
    name = profile.get("title") or profile.get("name")
    parts = [str(name) if name else "shot"]
    if record.elapsed_s:
        parts.append(f"{record.elapsed_s[-1]:.1f} s")
    if record.final_weight_g is not None:
        parts.append(f"{record.final_weight_g:.1f} g")
    return ", ".join(parts)


def plot_timeseries(frame: Any, columns: Optional[Sequence[str]] = None,
                    ax: Optional[Any] = None, *, units: Optional[Dict[str, str]] = None,
                    title: Optional[str] = None) -> List[Any]:
    """Draw the numeric columns of a wide DataFrame (``to_dataframe(..., wide=True)``)
    against its time index, one Axes per unit so that volts and amps get their own scale.

    :param columns: the columns to draw (default: every numeric column).
    :param ax: draw everything on this one Axes instead.
    :param units: column -> unit (default: ``frame.attrs["units"]``, which
        ``to_dataframe`` fills).
    :returns: the Axes, one per unit, top to bottom.
    :raises ConfigurationError: a named column is missing or not numeric, or nothing to draw.
    :raises BackendUnavailableError: matplotlib is not installed.
    """
    require_matplotlib()
    units = dict(frame.attrs.get("units", {}) if units is None else units)
    numeric = [c for c in frame.columns if frame[c].dtype.kind in "fiu"]
    if columns is None:
        chosen = numeric
    else:
        chosen = list(columns)
        for column in chosen:
            if column not in frame.columns:
                raise ConfigurationError(f"no column {column!r} to plot (the frame has "
                                         f"{', '.join(map(str, frame.columns)) or 'none'})")
            if column not in numeric:
                raise ConfigurationError(f"column {column!r} is not numeric (dtype "
                                         f"{frame[column].dtype}); only numbers can be plotted")
    if not chosen:
        raise ConfigurationError("nothing to plot: the frame has no numeric column")
    groups: Dict[str, List[str]] = {}
    for column in chosen:
        groups.setdefault(units.get(column, ""), []).append(column)
    if ax is not None:
        axes = [ax] * len(groups)
    else:
        plt = _pyplot()
        fig, made = plt.subplots(len(groups), 1, sharex=True, squeeze=False,
                                 figsize=(9, 2.5 + 2 * len(groups)))
        axes = [row[0] for row in made]
    for target, (unit, names) in zip(axes, groups.items()):
        for name in names:
            series = frame[name].dropna()
            # a recorder stores a value when it changes: it holds until the next sample, so
            # steps, not slopes between samples
            target.plot(series.index, series.values, drawstyle="steps-post",
                        label=f"{name} ({unit})" if unit else str(name))
        if unit:
            target.set_ylabel(unit)
        target.legend(loc="best", fontsize="small")
    if str(getattr(frame.index, "dtype", "")).startswith("datetime64"):
        dates = require("matplotlib.dates", EXTRA)
        locator = dates.AutoDateLocator()
        axes[-1].xaxis.set_major_locator(locator)
        axes[-1].xaxis.set_major_formatter(dates.ConciseDateFormatter(locator))
    axes[-1].set_xlabel("time (UTC)")
    if title:
        axes[0].set_title(title)
    unique: List[Any] = []
    for target in axes:
        if target not in unique:
            unique.append(target)
    return unique
