"""What a Victron D-Bus user sees: item values, service snapshots, settings and events.

Values are always plain Python (``None`` means invalid); no dbus-python type leaks out.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, List, Mapping, Optional

from ..errors import DeviceConnectionError, DeviceError
from .._core.display import Displayable, Row, Section, format_value
from ..types import Event, is_secret_key

__all__ = ["ItemValue", "ServiceInfo", "Setting", "ServiceAdded", "ServiceRemoved",
           "ValuesChanged", "WriteRequested", "ValueWritten", "NameTakenError",
           "SettingsError", "SetValueError"]

_EMPTY: Mapping[str, "ItemValue"] = MappingProxyType({})


@dataclass(frozen=True)
class ItemValue(Displayable):
    """One path's value and display text (Text is for people: never parse it)."""

    value: Any
    text: str

    @property
    def valid(self) -> bool:
        return self.value is not None


@dataclass(frozen=True)
class ServiceInfo(Displayable):
    """A monitored service as last seen: its name, owner and every tracked path."""

    name: str
    owner: str
    device_instance: Optional[int]
    values: Mapping[str, ItemValue] = field(default_factory=lambda: _EMPTY, repr=False)

    @property
    def service_class(self) -> str:
        return ".".join(self.name.split(".")[:3])

    def get(self, path: str, default: Any = None) -> Any:
        item = self.values.get(path)
        return default if item is None or item.value is None else item.value

    def _display_sections(self) -> List[Section]:
        # the D-Bus Text carries the unit ("12.30V"), so it is the shown value; invalid
        # items show as such rather than vanish
        instance = "" if self.device_instance is None else f" (instance {self.device_instance})"
        rows: List[Row] = [(path, "<hidden>" if is_secret_key(path.rsplit("/", 1)[-1]) else
                            (item.text or format_value(item.value)) if item.valid
                            else "invalid", "")
                           for path, item in sorted(self.values.items())]
        return [(f"{self.name}{instance}", rows)]


@dataclass(frozen=True)
class Setting(Displayable):
    """One entry of an AddSettings call. The type of ``default`` (int, float, str) is the
    setting's type; ``min``/``max`` of None mean no limit (give both or neither); ``silent``
    hides changes from logs. ``unit`` never goes on the bus: it only makes the errors of
    out-of-range writes clearer (``"A"``, ``"V"``, ``"%"``). ``alias`` (aiovelib's and
    velib's short name, e.g. ``"limit"``) never goes on the bus either: once added,
    ``settings.alias("limit")`` gives the path and ``settings.get("limit")`` the value."""

    path: str
    default: Any
    min: Optional[float] = None
    max: Optional[float] = None
    silent: bool = False
    unit: str = ""
    alias: Optional[str] = None


@dataclass(frozen=True)
class ServiceAdded(Event, Displayable):
    """A service appeared on the bus and its first scan finished."""

    service: ServiceInfo


@dataclass(frozen=True)
class ServiceRemoved(Event, Displayable):
    """A service left the bus (its name lost its owner)."""

    name: str
    device_instance: Optional[int]


@dataclass(frozen=True)
class ValuesChanged(Event, Displayable):
    """Paths of one service changed (from ItemsChanged or PropertiesChanged)."""

    service: str
    values: Mapping[str, ItemValue]


@dataclass(frozen=True)
class WriteRequested(Event, Displayable):
    """A remote SetValue on a validated item of *our* service; its validator is deciding."""

    service: str
    path: str
    value: Any
    sender: str


@dataclass(frozen=True)
class ValueWritten(Event, Displayable):
    """A remote SetValue on our service was accepted and stored."""

    service: str
    path: str
    value: Any
    sender: str


class NameTakenError(DeviceConnectionError):
    """The well-known name is already owned by another connection."""


class SetValueError(DeviceError):
    """A SetValue came back non-zero (``code``), or failed with a D-Bus error (``detail``)."""


class SettingsError(DeviceError):
    """AddSettings refused some entries; ``errors`` maps each path to its code."""

    def __init__(self, message: str, *, errors: Optional[Mapping[str, int]] = None,
                 **kw: Any) -> None:
        super().__init__(message, **kw)
        self.errors = dict(errors or {})
