"""Rich display for notebooks: HTML tables (``_repr_html_``) and IPython pretty text
(``_repr_pretty_``) for clients and the models they hand out.

Nothing here does I/O or blocks: a client's display reads its cache, a model's its own fields.
Every text that reaches HTML is escaped; values under secret-looking names (password, token...)
are shown as ``<hidden>``. Units come from the field-name convention every family follows (a
name ends in its unit: ``voltage_v``, ``flow_ml_s``) unless a model says otherwise.
"""

from __future__ import annotations

import dataclasses
import enum
import html
import time
from typing import Any, ClassVar, Iterable, List, Mapping, Optional, Sequence, Tuple

from ..types import HIDDEN, Model, is_secret_key

__all__ = ["Displayable", "Row", "Section", "unit_of", "format_value", "rows_of",
           "render_html", "render_text", "client_sections", "client_html", "client_text"]

#: (name, value as text, unit)
Row = Tuple[str, str, str]
#: (title, rows); an empty title is the object itself
Section = Tuple[str, List[Row]]

#: Name endings and their units, longest first so that ``_ml_s`` wins over ``_s``.
UNIT_SUFFIXES: Tuple[Tuple[str, str], ...] = (
    ("_v_per_s", "V/s"), ("_ml_s", "mL/s"), ("_g_s", "g/s"), ("_bytes", "B"), ("_kwh", "kWh"),
    ("_pct", "%"), ("_rpm", "rpm"), ("_dbm", "dBm"), ("_ohm", "Ω"), ("_deg", "°"),
    ("_bar", "bar"), ("_ah", "Ah"), ("_wh", "Wh"), ("_hz", "Hz"), ("_ml", "mL"),
    ("_mm", "mm"), ("_ms", "ms"), ("_c", "°C"), ("_v", "V"), ("_a", "A"), ("_w", "W"),
    ("_g", "g"), ("_s", "s"), ("_m", "m"), ("_h", "h"),
)

#: Most rows one display shows (a Mate3 system has hundreds); the rest is counted.
MAX_ROWS = 400
_MAX_INLINE = 6


def unit_of(name: str) -> str:
    """The unit a field name ends in (``"flow_ml_s"`` -> ``"mL/s"``), or ``""``."""
    base = name.rsplit(".", 1)[-1].split("[", 1)[0].lower()
    for suffix, unit in UNIT_SUFFIXES:
        if base.endswith(suffix) and len(base) > len(suffix):
            return unit
    return ""


def format_value(value: Any) -> str:
    """One scalar as people read it: floats to 6 significant digits (a float32 reading shows
    3.6, not 3.5999999046325684), enums by name (and text, when they have one)."""
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, enum.Enum):
        # a code table's own wording helps ("E-05: Overheat"); its placeholder for codes
        # it has no text for ("Unknown") does not
        text = getattr(value, "text", None)
        text = text.strip() if isinstance(text, str) else ""
        if text and not text.lower().startswith("unknown") and \
                text.lower() != value.name.replace("_", " ").lower():
            return f"{value.name} ({text})"
        return value.name
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, (bytes, bytearray)):
        return f"<{len(value)} bytes>"
    if isinstance(value, str):
        return value.strip()
    return str(value)


def _is_scalar(value: Any) -> bool:
    return value is None or isinstance(value, (str, int, float, bool, enum.Enum, bytes,
                                               bytearray))


def _add(rows: List[Row], name: str, text: str, unit: str) -> bool:
    if len(rows) >= MAX_ROWS:
        return False
    rows.append((name, text, unit))
    return True


def rows_of(obj: Any, prefix: str = "", units: Optional[Mapping[str, str]] = None
            ) -> List[Row]:
    """The rows of a dataclass (or mapping) as a display shows them.

    Fields declared ``repr=False`` (raw frames, register words) and fields that are None
    (not reported) are left out; nested dataclasses are flattened into dotted names; a
    sequence of numbers is one row. ``units`` overrides the unit of a field by name.
    """
    rows: List[Row] = []
    _flatten(obj, prefix, rows, units or {})
    return rows


def _flatten(value: Any, name: str, rows: List[Row], units: Mapping[str, str]) -> None:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        for f in dataclasses.fields(value):
            if not f.repr:
                continue
            child = f"{name}.{f.name}" if name else f.name
            if is_secret_key(f.name):
                _add(rows, child, HIDDEN, "")
                continue
            item = getattr(value, f.name)
            if item is None:
                continue
            _flatten(item, child, rows, units)
        return
    unit = units.get(name, units.get(name.rsplit(".", 1)[-1], unit_of(name)))
    if isinstance(value, Mapping):
        for key, item in value.items():
            child = f"{name}[{key}]" if name else str(key)
            if is_secret_key(key):
                _add(rows, child, HIDDEN, "")
            elif item is not None:
                _flatten(item, child, rows, units)
        return
    if isinstance(value, (tuple, list, set, frozenset)):
        items = sorted(value, key=repr) if isinstance(value, (set, frozenset)) else list(value)
        if all(_is_scalar(v) for v in items):
            if len(items) <= _MAX_INLINE:
                _add(rows, name, ", ".join(format_value(v) for v in items), unit)
            else:
                _add(rows, name, f"{len(items)} values, {format_value(items[0])} … "
                                 f"{format_value(items[-1])}", unit)
            return
        for index, item in enumerate(items):
            if len(rows) >= MAX_ROWS:
                return
            _flatten(item, f"{name}[{index}]", rows, units)
        return
    _add(rows, name, format_value(value), unit)


class Displayable(Model):
    """Mixin for models: ``to_dict()`` plus a table in notebooks (HTML) and in IPython (text).

    A model may override :meth:`_display_sections` (several tables, e.g. one per device)
    or set ``_display_units`` (units its field names do not carry).
    """

    __slots__ = ()

    _display_units: ClassVar[Mapping[str, str]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        # IPython takes the first class in the MRO that defines _repr_pretty_ *or*
        # __repr__, and @dataclass writes a __repr__ into every subclass: so each subclass
        # gets the hook in its own namespace (dataclass fields come from annotations only)
        if "_repr_pretty_" not in cls.__dict__:
            cls._repr_pretty_ = Displayable._repr_pretty_  # type: ignore[method-assign]

    def _display_title(self) -> str:
        return type(self).__name__

    def _display_sections(self) -> List[Section]:
        return [("", rows_of(self, units=self._display_units))]

    def _repr_html_(self) -> str:
        return render_html(self._display_title(), self._display_sections())

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        if cycle:
            printer.text(f"{type(self).__name__}(...)")
            return
        printer.text(render_text(self._display_title(), self._display_sections()))


def sections_of(value: Any, title: str = "") -> List[Section]:
    """The sections a value shows as: its own when it is :class:`Displayable` (titled under
    ``title``), one table of its fields otherwise."""
    if isinstance(value, Displayable):
        found = []
        for sub, rows in value._display_sections():
            found.append((" / ".join(t for t in (title, sub) if t), rows))
        return found
    return [(title, rows_of(value))]


# ---------------------------------------------------------------------------------- rendering
_STYLE = ("<style>.pbk-d table{border-collapse:collapse;margin:2px 0 6px 0}"
          ".pbk-d td,.pbk-d th{padding:1px 8px;text-align:left;font-family:monospace}"
          ".pbk-d td.v{text-align:right}.pbk-d summary{font-weight:bold;cursor:pointer}"
          ".pbk-d .badge{padding:0 6px;border-radius:6px;color:#fff}</style>")
_BADGE_COLOURS = {"connected": "#2a7d2a", "connecting": "#b8860b", "reconnecting": "#b8860b",
                  "idle": "#777", "closed": "#a33"}


def _html_table(rows: Sequence[Row]) -> str:
    body = "".join(
        f"<tr><th>{html.escape(name)}</th><td class=\"v\">{html.escape(text)}</td>"
        f"<td>{html.escape(unit)}</td></tr>" for name, text, unit in rows)
    return f"<table>{body}</table>"


def render_html(title: str, sections: Sequence[Section],
                header: Sequence[Tuple[str, str]] = (), badge: str = "") -> str:
    """An HTML block: a title line (with a coloured ``badge``), ``header`` facts, then one
    table per section (collapsible when there are several). Every text is escaped."""
    total = sum(len(rows) for _, rows in sections)
    parts = [f"<div class=\"pbk-d\">{_STYLE}<div><b>{html.escape(title)}</b>"]
    if badge:
        colour = _BADGE_COLOURS.get(badge, "#555")
        parts.append(f" <span class=\"badge\" style=\"background:{colour}\">"
                     f"{html.escape(badge)}</span>")
    parts.append("</div>")
    if header:
        parts.append(_html_table([(k, v, "") for k, v in header]))
    shown = [(t, r) for t, r in sections if r]
    if not shown:
        parts.append("<div><i>no values yet</i></div>")
    before = 0
    for sub, rows in shown:
        table = _html_table(rows)
        if len(shown) == 1 and not sub:
            parts.append(table)
            continue
        # open sections until a screenful is shown; the rest stay one click away
        opened = " open" if total <= 60 or before < 20 else ""
        before += len(rows)
        parts.append(f"<details{opened}><summary>{html.escape(sub or title)} "
                     f"({len(rows)})</summary>{table}</details>")
    if total >= MAX_ROWS:
        parts.append("<div><i>more values not shown: see to_dict()</i></div>")
    parts.append("</div>")
    return "".join(parts)


def render_text(title: str, sections: Sequence[Section],
                header: Sequence[Tuple[str, str]] = ()) -> str:
    """The same as :func:`render_html` as aligned plain text."""
    lines = [title]
    for key, value in header:
        lines.append(f"  {key}: {value}")
    for sub, rows in sections:
        if not rows:
            continue
        indent = "  "
        if sub:
            lines.append(f"  {sub}")
            indent = "    "
        width = max(len(name) for name, _, _ in rows)
        for name, text, unit in rows:
            lines.append(f"{indent}{name.ljust(width)}  {text}{' ' + unit if unit else ''}")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------- clients
def client_sections(client: Any) -> List[Section]:
    """What a client's cache holds, as sections: models as their own tables, plain values
    (flags, numbers) in one ``state`` table. Never blocks (reads the cache only)."""
    state: List[Row] = []
    sections: List[Section] = []
    snapshot = client._cache.snapshot()
    for topic in sorted(snapshot):
        snap = snapshot[topic]
        value = snap.value
        label = f"{topic} (stale)" if snap.stale else topic
        if is_secret_key(topic):
            state.append((topic, HIDDEN, ""))
        elif value is None:
            continue
        elif _is_scalar(value):
            state.append((label, format_value(value), unit_of(topic)))
        elif dataclasses.is_dataclass(value) and not isinstance(value, type):
            sections.extend(sections_of(value, label))
        elif isinstance(value, (tuple, list)):
            state.append((label, f"{len(value)} items", ""))
        else:
            sections.extend([(label, rows_of(value))] if isinstance(value, Mapping) else [])
    if state:
        sections.insert(0, ("state", state))
    return sections


def _client_header(client: Any) -> List[Tuple[str, str]]:
    header = [("endpoint", str(client.endpoint))]
    last = client.last_update
    if last is not None:
        header.append(("last update", f"{time.time() - last:.1f} s ago"
                       + (" (stale)" if client.stale else "")))
    error = client.last_error
    if error is not None:
        header.append(("last error", f"{type(error).__name__}: {error}"))
    return header


def client_html(client: Any) -> str:
    return render_html(f"{type(client).__name__} {client.family}", client_sections(client),
                       _client_header(client), badge=client.connection_state.value)


def client_text(client: Any) -> str:
    title = f"{type(client).__name__} {client.family} [{client.connection_state.value}]"
    return render_text(title, client_sections(client), _client_header(client))


def iter_rows(sections: Iterable[Section]) -> Iterable[Row]:
    for _, rows in sections:
        yield from rows
