"""JSON profile v2 -> DE1 wire program (header, frames, extension frames, tail); fingerprint;
Visualizer-compatible shot export (spec ``de1.md`` section 4).
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass, field, replace
from typing import Any, Dict, List, Mapping, Optional, Tuple, Union, overload

from ..errors import ConfigurationError, check_range
from . import codec
from .models import Frame, ShotRecord

BEVERAGE_TYPES = ("espresso", "calibrate", "cleaning", "manual", "pourover", "tea_portafilter")


@dataclass(frozen=True)
class Program:
    """A profile ready for upload."""

    title: str
    header: bytes
    frames: Tuple[bytes, ...]
    ext_frames: Tuple[bytes, ...]
    tail: bytes
    target_volume_ml: Optional[float]
    target_weight_g: Optional[float]
    tank_temperature_c: Optional[float]
    move_on_weight_g: Tuple[Optional[float], ...]
    preinfuse_frames: int
    profile_id: str
    source: Mapping[str, Any]
    #: the JSON source exactly as loaded; ``profile_id`` is its SHA-1 (pyDE1's profile id)
    raw: bytes = field(default=b"", repr=False, compare=False)

    @property
    def wire(self) -> bytes:
        return self.header + b"".join(self.frames) + b"".join(self.ext_frames) + self.tail

    @property
    def fingerprint(self) -> str:
        """SHA-1 over the concatenated wire bytes (header, frames, ext frames, tail)."""
        return hashlib.sha1(self.wire).hexdigest()


@overload
def _num(where: str, value: Any, *, default: float) -> float: ...


@overload
def _num(where: str, value: Any, *, default: None = None) -> Optional[float]: ...


def _num(where: str, value: Any, *, default: Optional[float] = None) -> Optional[float]:
    """de1app writes numbers as strings: accept both."""
    if value is None or value == "":
        return default
    if isinstance(value, bool):
        raise ConfigurationError(f"{where} must be a number, got {value!r}")
    try:
        out = float(value)
    except (TypeError, ValueError):
        raise ConfigurationError(f"{where} must be a number, got {value!r}") from None
    if out != out or out in (float("inf"), float("-inf")):
        raise ConfigurationError(f"{where} must be a finite number, got {value!r}")
    return out


def _range(where: str, value: float, low: float, high: float, unit: str) -> float:
    # a whole number is checked (and so shown) as the profile wrote it: "pressure=17 bar"
    shown = int(value) if float(value).is_integer() else value
    check_range(where, shown, low, high, unit)
    return value


def load(source: Union[str, bytes, Mapping[str, Any]]) -> Program:
    """Validate a JSON v2 profile (text, bytes, a path ending in .json, or a dict)."""
    raw: Optional[bytes] = None
    if isinstance(source, (bytes, bytearray)):
        raw = bytes(source)
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ConfigurationError(f"the profile is not UTF-8 text: {exc}") from None
    elif isinstance(source, str) and source.lstrip().startswith("{"):
        text = source
    elif isinstance(source, str):
        try:
            with open(source, "rb") as fh:  # bytes: the id is the SHA-1 of the file as it is
                raw = fh.read()
        except OSError as exc:
            raise ConfigurationError(f"cannot read profile file {source!r}: {exc}") from exc
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ConfigurationError(f"the profile file {source!r} is not UTF-8 text: "
                                     f"{exc}") from None
    elif isinstance(source, Mapping):
        text = json.dumps(source, sort_keys=True)
    else:
        raise ConfigurationError(f"a profile must be JSON text, a path or a dict, got "
                                 f"{type(source).__name__}")
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise ConfigurationError(f"the profile is not valid JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigurationError("a profile must be a JSON object")
    if raw is None:
        raw = text.encode("utf-8")
    # pyDE1's id: the SHA-1 of the source as it was given (bytes as they came)
    program = compile_profile(data, profile_id=hashlib.sha1(raw).hexdigest())
    return replace(program, raw=raw)


def compile_profile(data: Mapping[str, Any], profile_id: str = "") -> Program:
    version = str(data.get("version", ""))
    if version.split(".")[0] != "2":
        raise ConfigurationError(f"profile version {version!r} is not supported: only 2.x")
    beverage = data.get("beverage_type", "espresso")
    if beverage not in BEVERAGE_TYPES:
        raise ConfigurationError(f"beverage_type {beverage!r} is not one of "
                                 f"{', '.join(BEVERAGE_TYPES)}")
    steps = data.get("steps")
    if not isinstance(steps, list) or not steps:
        raise ConfigurationError("a profile needs a non-empty 'steps' list")
    if len(steps) > codec.MAX_FRAMES:
        raise ConfigurationError(f"the profile has {len(steps)} steps: the limit is "
                                 f"{codec.MAX_FRAMES} frames")
    frames: List[bytes] = []
    ext: List[bytes] = []
    move_on: List[Optional[float]] = []
    for i, step in enumerate(steps):
        if not isinstance(step, dict):
            raise ConfigurationError(f"step {i} must be an object")
        where = f"step {i} ({step.get('name', '')!s})"
        pump = step.get("pump")
        if pump not in ("pressure", "flow"):
            raise ConfigurationError(f"{where}: pump must be 'pressure' or 'flow', got {pump!r}")
        unit = "bar" if pump == "pressure" else "mL/s"
        setv = _num(f"{where} {pump}", step.get(pump))
        if setv is None:
            raise ConfigurationError(f"{where}: a {pump} step needs a '{pump}' value")
        _range(f"{where} {pump}", setv, 0, 15.9, unit)
        temp = _range(f"{where} temperature", _num(f"{where} temperature",
                                                   step.get("temperature"), default=92.0), 0, 105,
                      "°C")
        seconds = _range(f"{where} seconds", _num(f"{where} seconds", step.get("seconds"),
                                                  default=0.0), 0, 127, "s")
        volume = _range(f"{where} volume", _num(f"{where} volume", step.get("volume"),
                                                default=0.0), 0, 1023, "mL")
        transition = step.get("transition", "fast")
        if transition not in ("fast", "smooth"):
            raise ConfigurationError(f"{where}: transition must be fast or smooth")
        sensor = step.get("sensor", "coffee")
        if sensor not in ("coffee", "water"):
            raise ConfigurationError(f"{where}: sensor must be coffee or water")
        flags = 0x40  # IgnoreLimit, as both apps do
        if pump == "flow":
            flags |= 0x01
        if sensor == "water":
            flags |= 0x10
        if transition == "smooth":
            flags |= 0x20
        trigger = 0.0
        exit_ = step.get("exit")
        if exit_:
            if not isinstance(exit_, Mapping):
                raise ConfigurationError(f"{where}: exit must be an object, got {exit_!r}")
            etype, cond = exit_.get("type"), exit_.get("condition")
            if etype not in ("pressure", "flow") or cond not in ("over", "under"):
                raise ConfigurationError(f"{where}: exit needs type pressure|flow and "
                                         f"condition over|under")
            flags |= 0x02
            if cond == "over":
                flags |= 0x04
            if etype == "flow":
                flags |= 0x08
            trigger = _range(f"{where} exit value", _num(f"{where} exit value",
                                                         exit_.get("value"), default=0.0),
                             0, 15.9, "bar" if etype == "pressure" else "mL/s")
        frames.append(codec.encode_frame(i, Frame(flags, setv, temp, seconds, trigger,
                                                  int(round(volume)))))
        limiter = step.get("limiter")
        if limiter:
            if not isinstance(limiter, Mapping):
                raise ConfigurationError(f"{where}: limiter must be an object, got {limiter!r}")
            value = _num(f"{where} limiter value", limiter.get("value"), default=0.0) or 0.0
            rng = _num(f"{where} limiter range", limiter.get("range"), default=0.6) or 0.0
            if value > 0:
                ext.append(codec.encode_ext_frame(i, _range(f"{where} limiter value", value, 0,
                                                            15.9, ""),
                                                  _range(f"{where} limiter range", rng, 0,
                                                         15.9, "")))
        weight = _num(f"{where} weight", step.get("weight"), default=0.0) or 0.0
        move_on.append(_range(f"{where} weight", weight, 0, 2000, "g") or None)
    pre = int(_num("target_volume_count_start", data.get("target_volume_count_start"),
                   default=0.0) or 0)
    _range("target_volume_count_start", pre, 0, len(steps), "frames")
    header = codec.encode_header(len(steps), pre, 0.0, 6.0)
    tail = codec.encode_tail(len(steps), 0)  # stop-at-volume is done by the app (spec 4.2)
    tv = _num("target_volume", data.get("target_volume"), default=0.0) or None
    tw = _num("target_weight", data.get("target_weight"), default=0.0) or None
    tank = _num("tank_temperature", data.get("tank_temperature"), default=0.0) or None
    if tv is not None:
        _range("target_volume", tv, 0, 2000, "mL")
    if tw is not None:
        _range("target_weight", tw, 0, 2000, "g")
    if tank is not None:
        _range("tank_temperature", tank, 0, 60, "°C")
    return Program(str(data.get("title", "")), header, tuple(frames), tuple(ext), tail, tv, tw,
                   tank, tuple(move_on), pre, profile_id, dict(data))


def visualizer_json(shot: ShotRecord) -> Dict[str, Any]:
    """A shot in the JSON shape Visualizer (visualizer.coffee) imports (de1app's v2 export)."""
    def s(values: Any) -> List[str]:
        return [f"{v:.2f}" for v in values]

    profile = dict(shot.profile or {})
    return {
        "version": "2",
        "clock": int(shot.start_time),
        "date": time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(shot.start_time)),
        "timestamp": int(shot.start_time),
        "elapsed": s(shot.elapsed_s),
        "timers": {},
        "pressure": {"pressure": s(shot.pressure_bar), "goal": s(shot.set_pressure_bar)},
        "flow": {"flow": s(shot.flow_ml_s), "by_weight": [], "goal": s(shot.set_flow_ml_s)},
        "temperature": {"basket": s(shot.head_temp_c), "mix": s(shot.mix_temp_c),
                        "goal": s(shot.set_head_temp_c)},
        "totals": {"weight": s(shot.weight_g), "water_dispensed": s(shot.volume_ml)},
        "state_change": [],
        "profile": profile,
        "meta": {"bean": {}, "shot": {"enjoyment": 0}, "grinder": {},
                 "in": "", "out": f"{shot.final_weight_g or 0:.1f}",
                 "time": f"{shot.elapsed_s[-1] if shot.elapsed_s else 0:.1f}"},
        "app": {"app_name": "pyburnerkit", "data": {"settings": {
            "profile_title": profile.get("title", ""), "stop_reason": shot.stop_reason}}},
    }
