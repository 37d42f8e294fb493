"""The normalised sample every source produces and every sink stores.

One sample is one value of one field of one device at one time::

    Sample(uid="3f2a9c01d4e5-17", timestamp=1763700000.25, family="afterburner",
           device="cabin", channel="", field="TempCurrent", value=21.5, unit="°C")

* ``timestamp`` is UTC epoch seconds (float), taken when the value reached the recorder.
* ``family`` / ``device`` / ``channel`` identify where it came from: the driver family, a stable
  device id (serial, address or the name given in the config) and a port or channel ("" if the
  device has none).
* ``field`` is the name the device itself uses (``TempCurrent``, ``/Dc/0/Voltage``,
  ``voltage_v``) so vendor docs and existing dashboards still match.
* ``value`` is a number (int/float, booleans become 0/1) or text; ``text`` carries the name of an
  enumerated value next to its number (``RunState`` 5 -> ``"RUNNING"``).
* ``kind`` says what sits on the channel when the source knows (Mate3: the HUB device kind,
  ``charge_controller``, ``fndc``...; "" otherwise). The long-format tables do not store it;
  it lets a sink tell apart devices that share a port over time (mate3_pg definitions).
* ``uid`` is unique per sample; databases store it under a unique index, so a batch written twice
  (a retry after a lost acknowledgement) is stored once.
"""

from __future__ import annotations

import enum
import itertools
import math
import os
import re
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Tuple, Union

__all__ = ["Sample", "Message", "FieldMeta", "SampleFactory", "Labelled", "normalise_value",
           "unit_for_name",
           "sample_to_row", "sample_from_row"]

Number = Union[int, float]


@dataclass(frozen=True)
class Sample:
    uid: str
    timestamp: float
    family: str
    device: str
    channel: str
    field: str
    value: Union[Number, str, None]
    unit: str = ""
    text: Optional[str] = None
    kind: str = ""

    @property
    def device_key(self) -> Tuple[str, str, str]:
        return (self.family, self.device, self.channel)

    @property
    def number(self) -> Optional[float]:
        """The value as a float, or None when it is text."""
        v = self.value
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            return float(v)
        return None


@dataclass(frozen=True)
class Message:
    """A non-sample item for message sinks (alerts, device availability): MQTT only.

    ``topic`` is relative to the sink's topic root.
    """

    topic: str
    payload: str
    retain: bool = False


@dataclass(frozen=True)
class FieldMeta:
    """How a field should be presented (Home Assistant discovery, docs)."""

    unit: str = ""
    device_class: Optional[str] = None
    state_class: Optional[str] = "measurement"
    diagnostic: bool = False
    name: Optional[str] = None


class SampleFactory:
    """Builds samples with unique ids: ``<run id>-<counter>`` (run id random per recorder run).

    ``next()`` on an ``itertools.count`` is atomic under the GIL, so any thread may call
    :meth:`make`.
    """

    def __init__(self, run_id: Optional[str] = None) -> None:
        self.run_id = run_id or os.urandom(6).hex()
        self._seq = itertools.count(1)

    def make(self, timestamp: float, family: str, device: str, channel: str, field: str,
             value: Any, unit: str = "", kind: str = "") -> Optional[Sample]:
        """A sample, or None when the value is absent (None/NaN) or not a scalar."""
        norm = normalise_value(value)
        if norm is None:
            return None
        number, text = norm
        return Sample(f"{self.run_id}-{next(self._seq)}", timestamp, family, device,
                      channel, field, number, unit, text, kind)


class Labelled:
    """A number with a label (Mate3 enums and flags); recorded as value + text.

    An adapter wraps a driver value in it when the driver's type is not an :class:`enum.Enum`
    but still carries a name for its number.
    """

    __slots__ = ("value", "name")

    def __init__(self, value: int, label: str) -> None:
        self.value = value
        self.name = label

    def __repr__(self) -> str:
        return f"Labelled({self.value!r}, {self.name!r})"


def normalise_value(value: Any) -> Optional[Tuple[Union[Number, str], Optional[str]]]:
    """Value to (value, enum text): bool -> 0/1, Enum -> (number, NAME), NaN/None -> None."""
    if value is None:
        return None
    if isinstance(value, enum.Enum):
        raw = value.value
        if isinstance(raw, (int, float)) and not isinstance(raw, bool):
            return raw, value.name
        return str(raw), value.name
    if isinstance(value, bool):
        return int(value), None
    if isinstance(value, Labelled):  # a driver's number + label (Mate3 enums, flags)
        return value.value, value.name
    if isinstance(value, int):
        return value, None
    if isinstance(value, float):
        if math.isnan(value) or math.isinf(value):
            return None
        return value, None
    if isinstance(value, str):
        return value, None
    if hasattr(value, "isoformat"):
        return value.isoformat(), None
    return None


_SUFFIX_UNITS: List[Tuple[str, str]] = [
    ("_degc", "°C"), ("_c", "°C"), ("_hz", "Hz"), ("_rpm", "RPM"), ("_kwh", "kWh"),
    ("_wh", "Wh"), ("_ah", "Ah"), ("_kw", "kW"), ("_w", "W"), ("_va", "VA"), ("_v", "V"),
    ("_ma", "mA"), ("_a", "A"), ("_pct", "%"), ("_percent", "%"), ("_ml", "mL"),
    ("_ml_h", "mL/h"), ("_ml_s", "mL/s"), ("_dbm", "dBm"), ("_ms", "ms"), ("_s", "s"),
    ("_h", "h"), ("_bar", "bar"), ("_v_per_s", "V/s"), ("_deg", "°"), ("_g_s", "g/s"),
    ("_ml_s", "mL/s"), ("_mm", "mm"), ("_hpa", "hPa"), ("_g", "g"), ("_ohm", "Ω"),
    ("_m", "m"), ("_bytes", "B"), ("_vbys", "V/s"), ("_degrees", "°"),
]


def unit_for_name(name: str) -> str:
    """Guess a unit from a unit-suffixed name (``voltage_v`` -> V, ``temperature_c`` -> °C)."""
    lower = name.lower()
    for suffix, unit in sorted(_SUFFIX_UNITS, key=lambda p: -len(p[0])):
        if lower.endswith(suffix):
            return unit
    return ""


def sample_to_row(item: Union[Sample, Message]) -> List[Any]:
    """A JSON-ready list (used by the spool)."""
    if isinstance(item, Message):
        return ["M", item.topic, item.payload, item.retain]
    row = ["S", item.uid, item.timestamp, item.family, item.device, item.channel, item.field,
           item.value, item.unit, item.text]
    if item.kind:  # rows spooled by earlier versions have no kind: both shapes read back
        row.append(item.kind)
    return row


def sample_from_row(row: List[Any]) -> Union[Sample, Message]:
    if row[0] == "M":
        return Message(row[1], row[2], bool(row[3]))
    return Sample(*row[1:])


_SAFE = re.compile(r"[^A-Za-z0-9_-]+")


def slug(text: str) -> str:
    """A topic/identifier-safe form of ``text`` (``/Dc/0/Voltage`` -> ``Dc_0_Voltage``)."""
    return _SAFE.sub("_", str(text)).strip("_") or "_"


def as_dict(sample: Sample) -> Dict[str, Any]:
    return {"uid": sample.uid, "timestamp": sample.timestamp, "family": sample.family,
            "device": sample.device, "channel": sample.channel, "field": sample.field,
            "value": sample.value, "unit": sample.unit, "text": sample.text,
            "kind": sample.kind}
