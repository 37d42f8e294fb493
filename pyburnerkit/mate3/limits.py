"""The limits of every writable Mate3 field, checked before anything is sent. Pure: no I/O.

The table ``data/mate3_write_limits.csv`` has one row per writable field of OutBack's map
(``device_id``, ``field_name``) and says, in its ``source`` column, where the limit comes from.
Kinds:

``enum``
    one of the field's enumerated values (``mate3_enum_bitfield_values.csv``);
``text`` / ``ipv4``
    ASCII text of at most two characters per register / a dotted IPv4 address;
``range``
    ``low..high`` in the field's scaled unit (several ranges separated by ``;``), mostly as
    OutBack's field descriptions state them ("0-23", "1-240 minutes", "-12.0 ... +14.0");
``battery``
    a battery voltage set point: ``low..high`` is the window for a 12 V system, scaled by the
    nominal battery voltage the Mate3 reports (64110 ``system_voltage``; 12, 24, 36, 48 or
    60 V), so 12.0..16.5 becomes 48..66 V on a 48 V system. OutBack's map states no voltage
    ranges; the windows are pyburnerkit's (see ``docs/mate3.rst``);
``complement``
    a "write value's complement" clear command: the only value accepted is the bitwise
    complement of the field named in ``companion`` (the "read value needed to clear" register),
    as read just before the write;
``none``
    no documented limit. Such a field is refused unless the caller passes the expert override
    (``expert=True``, CLI ``--expert``); then only the register type's range is checked.

The expert override never loosens a documented limit.
"""

from __future__ import annotations

import csv
import functools
import os
from dataclasses import dataclass
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

from ..errors import ConfigurationError
from .models import FieldDef

#: nominal battery voltages a Mate3 system can report (64110 ``system_voltage``)
NOMINAL_VOLTAGES = (12, 24, 36, 48, 60)
#: the nominal voltage the ``battery`` windows of the table are written for
REFERENCE_NOMINAL = 12
KINDS = ("enum", "text", "ipv4", "range", "battery", "complement", "none")
#: how the override is named in messages (library keyword, CLI option)
EXPERT_HINT = "pass expert=True (CLI: --expert)"

_TABLE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data",
                      "mate3_write_limits.csv")


@dataclass(frozen=True)
class Limit:
    """The documented limit of one writable field (a row of ``mate3_write_limits.csv``)."""

    did: int
    field: str
    kind: str
    ranges: Tuple[Tuple[float, float], ...]
    unit: str
    companion: Optional[str]
    source: str


def _parse_ranges(text: str) -> Tuple[Tuple[float, float], ...]:
    out = []
    for part in filter(None, (p.strip() for p in text.split(";"))):
        low, _, high = part.partition("..")
        out.append((float(low), float(high)))
    return tuple(out)


@functools.lru_cache(maxsize=1)
def table() -> Mapping[Tuple[int, str], Limit]:
    """Every row of the limits table, keyed by (DID, field name)."""
    rows: Dict[Tuple[int, str], Limit] = {}
    with open(_TABLE, newline="", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            kind = row["kind"]
            if kind not in KINDS:
                raise ValueError(f"{_TABLE}: unknown limit kind {kind!r}")
            key = (int(row["device_id"]), row["field_name"])
            rows[key] = Limit(key[0], key[1], kind, _parse_ranges(row["ranges"]), row["unit"],
                              row["companion"] or None, row["source"])
    return rows


def limit_for(did: int, name: str) -> Limit:
    """The limit of field ``name`` of block ``did``; a field the table does not list has
    no documented limit (kind ``none``)."""
    found = table().get((did, name))
    if found is None:
        return Limit(did, name, "none", (), "", None, "not in pyburnerkit's limits table")
    return found


def _unit(limit: Limit, fdef: FieldDef) -> str:
    return limit.unit or fdef.units


def _fmt(number: float) -> str:
    return f"{number:g}"


def _spans(ranges: Sequence[Tuple[float, float]], unit: str) -> str:
    suffix = f" {unit}" if unit else ""
    return " or ".join(f"{_fmt(lo)}..{_fmt(hi)}{suffix}" for lo, hi in ranges)


def _nominal_problem(nominal: Optional[int]) -> Optional[str]:
    if nominal is None:
        return ("its limit depends on the system's nominal battery voltage, which the Mate3 "
                "does not report (64110 system_voltage is missing or not implemented)")
    if nominal not in NOMINAL_VOLTAGES:
        known = ", ".join(str(v) for v in NOMINAL_VOLTAGES)
        return (f"its limit depends on the system's nominal battery voltage, and the Mate3 "
                f"reports {nominal} V (limits are known for {known} V systems)")
    return None


def window(fdef: FieldDef, nominal: Optional[int] = None) -> List[Tuple[float, float]]:
    """The allowed ranges of a ``range`` or ``battery`` field, in its scaled unit.

    :raises ConfigurationError: a ``battery`` field and an unknown nominal voltage, or a field
        of another kind.
    """
    limit = limit_for(fdef.block_did, fdef.name)
    if limit.kind == "range":
        return list(limit.ranges)
    if limit.kind == "battery":
        problem = _nominal_problem(nominal)
        if problem is not None:
            raise ConfigurationError(f"{fdef.name}: {problem}")
        assert nominal is not None  # _nominal_problem reports a missing one
        factor = nominal / REFERENCE_NOMINAL
        return [(round(lo * factor, 3), round(hi * factor, 3)) for lo, hi in limit.ranges]
    raise ConfigurationError(f"{fdef.name} has no numeric limit (kind {limit.kind})")


def describe(fdef: FieldDef, *, nominal: Optional[int] = None,
             companion_raw: Optional[int] = None) -> str:
    """The limit of ``fdef`` in words, with its source (for plans and documentation)."""
    limit = limit_for(fdef.block_did, fdef.name)
    unit = _unit(limit, fdef)
    if limit.kind == "enum":
        known = ", ".join(f"{k}={v}" for k, v in sorted(fdef.options.items()))
        return f"one of {known} ({limit.source})"
    if limit.kind == "text":
        return f"ASCII text of at most {2 * fdef.size} characters ({limit.source})"
    if limit.kind == "ipv4":
        return f"a dotted IPv4 address ({limit.source})"
    if limit.kind == "complement":
        if companion_raw is None:
            return f"the complement of {limit.companion} ({limit.source})"
        return (f"exactly {~companion_raw & 0xFFFF}, the complement of {limit.companion}="
                f"{companion_raw} ({limit.source})")
    if limit.kind == "none":
        return f"no documented limit; written with the expert override ({limit.source})"
    if limit.kind == "battery":
        if _nominal_problem(nominal) is not None:
            return f"unknown: {_nominal_problem(nominal)} ({limit.source})"
        return (f"{_spans(window(fdef, nominal), unit)} for a {nominal} V system "
                f"({limit.source})")
    return f"{_spans(limit.ranges, unit)} ({limit.source})"


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value == value


def _inside(value: float, ranges: Sequence[Tuple[float, float]]) -> bool:
    # A small tolerance: 57.6 typed by a user is 57.60000000000001 after some arithmetic.
    return any(lo - 1e-9 <= value <= hi + 1e-9 for lo, hi in ranges)


def check_value(path: str, fdef: FieldDef, value: Any, *, nominal: Optional[int] = None,
                companion_raw: Optional[int] = None, expert: bool = False) -> None:
    """Refuse ``value`` for the field at ``path`` unless it is within the field's documented
    limit. Enumerations, text and addresses are checked by ``codec.encode_field``;
    this checks numbers, battery set points and clear commands, and refuses fields without a
    documented limit unless ``expert``.

    :param nominal: the nominal battery voltage the Mate3 reports (``battery`` fields).
    :param companion_raw: the register the ``complement`` fields are computed from.
    :raises ConfigurationError: naming the path, the value, the limit and the unit.
    """
    limit = limit_for(fdef.block_did, fdef.name)
    unit = _unit(limit, fdef)
    shown = f"{path}={value!r}" + (f" {unit}" if unit else "")
    if limit.kind in ("enum", "text", "ipv4"):
        return
    if limit.kind == "none":
        if expert:
            return
        raise ConfigurationError(
            f"refusing to write {shown}: this field has no documented limit (OutBack's map "
            f"states none), so pyburnerkit cannot check the value; {EXPERT_HINT} to write it "
            f"with only its register range checked")
    if limit.kind == "complement":
        _check_complement(path, limit, value, companion_raw)
        return
    if limit.kind == "battery":
        problem = _nominal_problem(nominal)
        if problem is not None:
            if expert:
                return
            raise ConfigurationError(f"refusing to write {shown}: {problem}; {EXPERT_HINT} "
                                     f"to write it with only its register range checked")
    ranges = window(fdef, nominal)
    if not _is_number(value):
        raise ConfigurationError(f"{path} takes a number in {_spans(ranges, unit)}, "
                                 f"got {value!r}")
    if _inside(value, ranges):
        return
    where = f" for the {nominal} V system the Mate3 reports" if limit.kind == "battery" else ""
    plural = "limits are" if len(ranges) > 1 else "limit is"
    raise ConfigurationError(f"{shown} is out of range: the {plural} {_spans(ranges, unit)}"
                             f"{where} ({limit.source})")


def _check_complement(path: str, limit: Limit, value: Any,
                      companion_raw: Optional[int]) -> None:
    if companion_raw is None:
        raise ConfigurationError(
            f"refusing to write {path}={value!r}: its only valid value is the complement of "
            f"{limit.companion}, which could not be read")
    wanted = ~companion_raw & 0xFFFF
    if isinstance(value, bool) or not isinstance(value, int) or value != wanted:
        raise ConfigurationError(
            f"{path}={value!r} is refused: the only value accepted is {wanted}, the "
            f"complement of {limit.companion}={companion_raw} ({limit.source})")


def nominal_of(raw: Any, implemented: bool = True) -> Optional[int]:
    """The nominal battery voltage from the raw 64110 ``system_voltage`` (None if unusable)."""
    if not implemented or isinstance(raw, bool) or not isinstance(raw, int):
        return None
    return raw
