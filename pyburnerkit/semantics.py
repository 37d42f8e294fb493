"""What a recorded field means: one table per family, read by every layer that shows a field.

Each family ships a :class:`FieldTable` next to its models (``pyburnerkit/<family>/semantics.py``,
registered as the family's ``fields`` in :mod:`pyburnerkit.families`). For every field the
recorder produces it says the friendly name, the unit (Home Assistant's spelling), the
``device_class``, the ``state_class`` (``measurement``, ``total``, ``total_increasing`` only
where that is true: energy counters and the like, never settings), the ``entity_category``
(``diagnostic`` for internals, ``config`` for settings), whether a dashboard shows it by
default, the display precision, an icon where HA has no device class, the kind of entity
(``sensor``, ``binary_sensor``, ``number``, ``select``, ``switch``, ``button``, ``climate``)
and, for a setting or action, how it is changed (:class:`Control`).

The Home Assistant discovery of the MQTT sink, the recorder's columns, the CLI and the HTTP
API read these tables, so a field has one name and one unit everywhere. Pure data: importing
this module imports nothing else of the package.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from typing import Any, Dict, Iterable, Mapping, Optional, Pattern, Tuple, Union

__all__ = ["Entity", "Control", "FieldTable", "compile_key", "KINDS", "STATE_CLASSES",
           "CATEGORIES", "UNKNOWN"]

#: Home Assistant entity platforms a table may name.
KINDS = ("sensor", "binary_sensor", "number", "select", "switch", "button", "climate")
STATE_CLASSES = ("measurement", "total", "total_increasing")
CATEGORIES = ("diagnostic", "config")


@dataclass(frozen=True)
class Control:
    """How a setting or an action is changed from outside (Home Assistant, HTTP, MQTT).

    :param method: the client method that makes the change (``"set_desired_temperature"``);
        it validates limits and write gating itself, so a command goes through exactly the
        checks a script's call does.
    :param argument: how the command's value is passed: ``"value"`` (one positional argument,
        converted by ``convert``), ``"none"`` (a button: no argument), or a keyword name.
    :param minimum: / :param maximum: / :param step: the limits a ``number`` shows (the
        method still checks them); ``None`` where the kind has none.
    :param choices: a ``select``'s options (the payload HA sends) -> the value passed.
    :param on: / :param off: a ``switch``'s payload values passed for ON and OFF.
    :param safe: controllable as soon as the device's config allows writes. Fields that are not
        safe (pump calibration, voltage limits...) need the user to list them by name too.
    """

    method: str
    argument: str = "value"
    minimum: Optional[float] = None
    maximum: Optional[float] = None
    step: Optional[float] = None
    choices: Optional[Mapping[str, Any]] = None
    on: Any = True
    off: Any = False
    safe: bool = False


@dataclass(frozen=True)
class Entity:
    """The meaning of one field (see the module docstring for each attribute)."""

    name: str
    unit: str = ""
    device_class: Optional[str] = None
    state_class: Optional[str] = None
    category: Optional[str] = None
    enabled: bool = False
    precision: Optional[int] = None
    icon: Optional[str] = None
    kind: str = "sensor"
    options: Tuple[str, ...] = ()
    control: Optional[Control] = None
    #: other fields a composite entity reads (a ``climate``: ``{"current": "TempCurrent",
    #: "mode": "RunState"}``); the discovery layer maps them to the platform's own options
    links: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # Tables are data written by hand: refuse a typo when the module is imported.
        if self.kind not in KINDS:
            raise ValueError(f"{self.name!r}: kind {self.kind!r} is not one of {KINDS}")
        if self.state_class is not None and self.state_class not in STATE_CLASSES:
            raise ValueError(f"{self.name!r}: state_class {self.state_class!r} is not one of "
                             f"{STATE_CLASSES}")
        if self.category is not None and self.category not in CATEGORIES:
            raise ValueError(f"{self.name!r}: category {self.category!r} is not one of "
                             f"{CATEGORIES}")
        if self.kind in ("number", "select", "switch", "button", "climate") \
                and self.control is None:
            raise ValueError(f"{self.name!r}: a {self.kind} needs a control")

    @property
    def controllable(self) -> bool:
        return self.control is not None


#: What a field no table knows becomes: shown to nobody by default, named by its key.
UNKNOWN = Entity("", category="diagnostic")

_Key = Union[str, Pattern[str]]


@dataclass(frozen=True)
class FieldTable:
    """The semantic table of one family.

    :param family: the family's registry name.
    :param fields: field name -> :class:`Entity`; a key may be a compiled regular expression
        (``re.compile(r"charge_controller\\.\\w+_v")``) matched in full against field names
        when no exact key matched (Mate3 has hundreds of register fields); patterns are tried
        in order.
    :param per_channel: whether each recorder channel is a physical device of its own (a Mate3
        HUB port, a cycler channel) linked to the family device by ``via_device``.
    :param model: the device model shown in Home Assistant, when the family knows it.
    """

    family: str
    fields: Mapping[_Key, Entity]
    per_channel: bool = False
    model: str = ""
    _exact: Dict[str, Entity] = field(default_factory=dict, init=False, repr=False,
                                      compare=False)
    _patterns: Tuple[Tuple[Pattern[str], Entity], ...] = field(default=(), init=False,
                                                               repr=False, compare=False)

    def __post_init__(self) -> None:
        exact = {k: v for k, v in self.fields.items() if isinstance(k, str)}
        patterns = tuple((k, v) for k, v in self.fields.items() if not isinstance(k, str))
        object.__setattr__(self, "_exact", exact)
        object.__setattr__(self, "_patterns", patterns)

    def lookup(self, field_name: str, channel: Optional[str] = None) -> Optional[Entity]:
        """The entity of ``field_name``, or None when the table does not know it.

        ``channel`` is the recorder channel the field came from; a family whose field names
        mean different things on different channels (Victron paths per service type)
        overrides this to use it. Callers always pass it when they know it."""
        found = self._exact.get(field_name)
        if found is not None:
            return found
        for pattern, entity in self._patterns:
            if pattern.fullmatch(field_name):
                return entity
        return None

    def entity(self, field_name: str, channel: Optional[str] = None) -> Entity:
        """The entity of ``field_name`` (on ``channel``, see :meth:`lookup`); an unknown field
        is a disabled diagnostic sensor named by its key (:data:`UNKNOWN`)."""
        found = self.lookup(field_name, channel)
        if found is None:
            return replace(UNKNOWN, name=field_name)
        if not found.name:
            return replace(found, name=field_name)
        return found

    def names(self) -> Iterable[str]:
        """The exact field names (patterns excluded)."""
        return self._exact.keys()

    def controls(self) -> Dict[str, Entity]:
        """Exact field name -> entity, for the fields that can be changed."""
        return {k: v for k, v in self._exact.items() if v.control is not None}


def compile_key(pattern: str) -> Pattern[str]:
    """A table key that matches many fields (an anchored regular expression)."""
    return re.compile(pattern)
