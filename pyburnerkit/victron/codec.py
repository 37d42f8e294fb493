"""Pure value wrapping and unwrapping for the Venus OS ``com.victronenergy.BusItem`` interface.

No I/O and no threads: this module turns Python values into explicit dbus-python types (never
letting dbus-python guess, which fails for ``None``, ``[]`` and ints above 2**31) and turns
whatever arrives from the bus back into plain Python values, so no dbus type reaches a user.

Rules (spec section 1.9):

====================  ===========================================================
Python                D-Bus
====================  ===========================================================
``None``              invalid: an empty ``ai`` array
``bool``              ``b`` (checked before int)
``int``               ``i``, or ``x`` when it does not fit in 32 bits (``t`` above 2**63)
``float``             ``d``
``str``               ``s``
``[]``                ``au`` (a real empty list must not look like invalid)
list of int/float/str ``ai``/``ax``/``ad``/``as``
dict                  ``a{sv}`` (values wrapped recursively)
====================  ===========================================================

On the way in, *any* empty array means invalid (``None``), as velib and aiovelib both read it.
"""

from __future__ import annotations

import math
import re
from typing import Any, Dict, Iterable, List, Mapping, Optional, Tuple

from .._core.extras import require
from ..errors import ConfigurationError, ProtocolError

BUSITEM = "com.victronenergy.BusItem"
SETTINGS_IFACE = "com.victronenergy.Settings"
SETTINGS_SERVICE = "com.victronenergy.settings"
NAMESPACE = "com.victronenergy"
DBUS_NAME = "org.freedesktop.DBus"
DBUS_PATH = "/org/freedesktop/DBus"
INTROSPECTABLE = "org.freedesktop.DBus.Introspectable"

INT32_MIN, INT32_MAX = -2 ** 31, 2 ** 31 - 1
INT64_MIN, INT64_MAX = -2 ** 63, 2 ** 63 - 1
UINT64_MAX = 2 ** 64 - 1

#: SetValue reply codes this package uses as a *service* (velib's convention). Clients only
#: rely on "0 means accepted".
SET_OK = 0
SET_REFUSED = 1          #: not writable, or the value cannot be coerced to the item's type
SET_VETOED = 2           #: the item's validator said no

#: localsettings AddSettings / AddSetting error codes (spec section 3.2).
ADD_SETTING_ERRORS = {
    0: ("NoError", "no error"),
    -1: ("Error", "the settings service refused the request"),
    -2: ("UnderscorePrefix", "a path element starts with an underscore"),
    -3: ("UnknownType", "the default is not an int, float or str"),
    -4: ("InvalidPath", "the path is missing or not a string"),
    -5: ("TypeDiffer", "the setting exists with another type"),
    -6: ("InvalidDefault", "the default cannot be used (e.g. a malformed class:instance)"),
    -7: ("DefaultOutOfRange", "the default is outside min..max"),
    -8: ("IsGroup", "the path is an existing group"),
    -9: ("NotInSettings", "the path is outside /Settings/"),
}

_PATH_RE = re.compile(r"^(/[A-Za-z0-9_]+)+$")
_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*(\.[A-Za-z0-9_-]+)+$")


def _dbus() -> Any:
    return require("dbus", "victron")


# ------------------------------------------------------------------ names and paths
def check_path(path: Any, *, allow_root: bool = False) -> str:
    """An absolute object path as Venus uses them (``/Ac/Power``), else ConfigurationError."""
    if allow_root and path == "/":
        return path
    if not isinstance(path, str) or not _PATH_RE.match(path):
        raise ConfigurationError(
            f"path {path!r} is not a D-Bus object path like '/Ac/Power' (a leading '/', "
            f"elements of letters, digits and '_', no trailing '/')")
    return path


def check_service_name(name: Any, *, venus: bool = True) -> str:
    """A well-known bus name; with ``venus`` it must start with ``com.victronenergy.``."""
    if not isinstance(name, str) or len(name) > 255 or not _NAME_RE.match(name):
        raise ConfigurationError(f"service name {name!r} is not a valid D-Bus well-known name")
    if venus and not name.startswith(NAMESPACE + "."):
        raise ConfigurationError(
            f"service name {name!r} must start with '{NAMESPACE}.' (e.g. "
            f"'com.victronenergy.grid.mymeter')")
    return name


_UNIQUE_RE = re.compile(r"^:[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)+$")


def check_destination(name: Any) -> str:
    """A name a call can go to: a well-known name (any namespace) or a unique ``:1.42``."""
    if isinstance(name, str) and len(name) <= 255 and _UNIQUE_RE.match(name):
        return name
    return check_service_name(name, venus=False)


def service_class(name: str) -> str:
    """The first three dot-separated parts: ``com.victronenergy.grid.x`` -> ``...grid``."""
    return ".".join(name.split(".")[:3])


def relative(path: str, base: str) -> str:
    """``/Ac/L1/Power`` relative to ``/Ac`` -> ``L1/Power`` (to ``/`` -> ``Ac/L1/Power``)."""
    if base == "/":
        return path[1:]
    return path[len(base) + 1:]


def under(path: str, base: str) -> bool:
    """True when ``path`` lies strictly below ``base`` (``/`` holds everything)."""
    return base == "/" or path.startswith(base + "/")


# ------------------------------------------------------------------ Python -> D-Bus
def wrap(value: Any, variant_level: int = 0) -> Any:
    """An explicit dbus-python value for ``value`` (see the module table).

    :raises ConfigurationError: for a value D-Bus cannot carry (NaN is fine, ``set`` or an
        object is not) or an int wider than 64 bits.
    """
    dbus = _dbus()
    kw = {"variant_level": variant_level} if variant_level else {}
    if value is None:
        return dbus.Array([], signature="i", **kw)
    if isinstance(value, bool):
        return dbus.Boolean(value, **kw)
    if isinstance(value, int):
        if INT32_MIN <= value <= INT32_MAX:
            return dbus.Int32(value, **kw)
        if INT64_MIN <= value <= INT64_MAX:
            return dbus.Int64(value, **kw)
        if 0 <= value <= UINT64_MAX:
            return dbus.UInt64(value, **kw)
        raise ConfigurationError(f"value {value!r} does not fit in 64 bits (the D-Bus limit)")
    if isinstance(value, float):
        return dbus.Double(value, **kw)
    if isinstance(value, str):
        return dbus.String(value, **kw)
    if isinstance(value, (list, tuple)):
        return _wrap_list(list(value), kw)
    if isinstance(value, Mapping):
        return dbus.Dictionary({str(k): wrap(v, 1) for k, v in value.items()},
                               signature="sv", **kw)
    raise ConfigurationError(
        f"value {value!r} of type {type(value).__name__} cannot be sent on D-Bus (use None, "
        f"bool, int, float, str, or a list of one of those)")


def _wrap_list(items: List[Any], kw: Dict[str, Any]) -> Any:
    dbus = _dbus()
    if not items:
        return dbus.Array([], signature="u", **kw)   # a real empty list, not "invalid"
    if all(isinstance(v, bool) for v in items):
        return dbus.Array([dbus.Boolean(v) for v in items], signature="b", **kw)
    if all(isinstance(v, int) and not isinstance(v, bool) for v in items):
        if all(INT32_MIN <= v <= INT32_MAX for v in items):
            return dbus.Array([dbus.Int32(v) for v in items], signature="i", **kw)
        if all(INT64_MIN <= v <= INT64_MAX for v in items):
            return dbus.Array([dbus.Int64(v) for v in items], signature="x", **kw)
        raise ConfigurationError(f"list {items!r} holds an int wider than 64 bits")
    if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in items):
        return dbus.Array([dbus.Double(float(v)) for v in items], signature="d", **kw)
    if all(isinstance(v, str) for v in items):
        return dbus.Array([dbus.String(v) for v in items], signature="s", **kw)
    return dbus.Array([wrap(v, 1) for v in items], signature="v", **kw)


def item_entry(value: Any, text: str) -> Any:
    """One ``{"Value": v, "Text": s}`` entry of GetItems / ItemsChanged / PropertiesChanged."""
    dbus = _dbus()
    return dbus.Dictionary({"Value": wrap(value, 1), "Text": dbus.String(text, variant_level=1)},
                           signature="sv")


def items_dict(items: Iterable[Tuple[str, Any, str]]) -> Any:
    """``[(path, value, text)]`` -> the ``a{sa{sv}}`` payload of GetItems / ItemsChanged."""
    dbus = _dbus()
    return dbus.Dictionary({path: item_entry(value, text) for path, value, text in items},
                           signature="sa{sv}")


# ------------------------------------------------------------------ D-Bus -> Python
def unwrap(value: Any) -> Any:
    """Plain Python for any dbus-python value; every empty array becomes ``None`` (invalid)."""
    dbus = _dbus()
    if isinstance(value, dbus.Boolean):
        return bool(value)
    if isinstance(value, (dbus.Byte, dbus.Int16, dbus.UInt16, dbus.Int32, dbus.UInt32,
                          dbus.Int64, dbus.UInt64)):
        return int(value)
    if isinstance(value, dbus.Double):
        return float(value)
    if isinstance(value, (dbus.String, dbus.ObjectPath, dbus.Signature)):
        return str(value)
    if isinstance(value, (dbus.Array, list)):
        if len(value) == 0:
            return None
        return [unwrap(v) for v in value]
    if isinstance(value, (dbus.Struct, tuple)):
        return tuple(unwrap(v) for v in value)
    if isinstance(value, (dbus.Dictionary, dict)):
        return {unwrap(k): unwrap(v) for k, v in value.items()}
    if isinstance(value, (dbus.ByteArray, bytes)):
        return bytes(value)
    if isinstance(value, (bool, int, float, str)) or value is None:
        return value
    raise ProtocolError(f"unexpected D-Bus value {value!r} ({type(value).__name__})")


def parse_items(payload: Any) -> Dict[str, Tuple[bool, Any, Optional[str]]]:
    """An ``a{sa{sv}}`` (GetItems, ItemsChanged) -> ``{path: (has_value, value, text)}``.

    Entries without ``Value`` keep ``has_value=False`` (only limits changed); entries without
    ``Text`` give ``text=None`` (the caller falls back to ``str(value)``).

    :raises ProtocolError: when the payload is not a mapping of paths to mappings.
    """
    if not isinstance(payload, Mapping):
        raise ProtocolError(f"expected a dict of paths, got {type(payload).__name__}")
    out: Dict[str, Tuple[bool, Any, Optional[str]]] = {}
    for path, entry in payload.items():
        if not isinstance(entry, Mapping):
            raise ProtocolError(f"entry for {path!r} is not a dict: {entry!r}")
        out[str(path)] = parse_entry(entry)
    return out


def parse_entry(entry: Mapping[str, Any]) -> Tuple[bool, Any, Optional[str]]:
    """One ``{"Value", "Text", ...}`` dict -> ``(has_value, value, text or None)``."""
    if not isinstance(entry, Mapping):
        raise ProtocolError(f"expected a dict with Value and Text, got {entry!r}")
    has_value = "Value" in entry
    value = unwrap(entry["Value"]) if has_value else None
    text = entry.get("Text")
    return has_value, value, (None if text is None else str(text))


def parse_root_dict(values: Any, texts: Any) -> Dict[str, Tuple[bool, Any, Optional[str]]]:
    """The legacy velib root ``GetValue``/``GetText`` dicts (relative keys) -> absolute paths."""
    if not isinstance(values, Mapping):
        raise ProtocolError("the root GetValue did not return a dict (no legacy scan possible)")
    texts = texts if isinstance(texts, Mapping) else {}
    out: Dict[str, Tuple[bool, Any, Optional[str]]] = {}
    for key, value in values.items():
        text = texts.get(key)
        out["/" + str(key).lstrip("/")] = (True, unwrap(value), None if text is None else str(text))
    return out


# ------------------------------------------------------------------ text and types
def default_text(path: str, value: Any, *, invalid: str = "---") -> str:
    """velib's text rule: ``---`` for invalid, ``/ProductId`` in hex, else ``str(value)``."""
    if value is None:
        return invalid
    if path == "/ProductId" and isinstance(value, int) and not isinstance(value, bool):
        return f"0x{value:X}"
    if isinstance(value, float):
        return f"{value:g}" if math.isfinite(value) else str(value)
    return str(value)


def coerce(value: Any, kind: Optional[type], *, name: str = "value") -> Any:
    """Coerce ``value`` to an item's type (``None`` stays invalid), else ConfigurationError.

    ``int`` accepts whole floats only (2.0 -> 2; 2.7 is refused, unlike velib, which would
    silently store 2), ``float`` accepts ints, ``str`` accepts only str.
    """
    if value is None or kind is None:
        return value
    if kind is bool:
        if isinstance(value, bool) or (isinstance(value, int) and value in (0, 1)):
            return bool(value)
    elif kind is int:
        if isinstance(value, bool):
            return int(value)
        if isinstance(value, int):
            return value
        if isinstance(value, float) and math.isfinite(value) and value == int(value):
            return int(value)
    elif kind is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    elif kind is str:
        if isinstance(value, str):
            return value
    elif kind is list:
        if isinstance(value, (list, tuple)):
            return list(value)
    else:
        return value
    raise ConfigurationError(f"{name}={value!r} is not a valid {kind.__name__}")


def parse_class_instance(text: Any) -> Tuple[str, int]:
    """``"grid:30"`` -> ``("grid", 30)``, else ProtocolError."""
    if not isinstance(text, str) or text.count(":") != 1:
        raise ProtocolError(f"expected 'class:instance', got {text!r}")
    cls, _, number = text.partition(":")
    try:
        return cls, int(number)
    except ValueError:
        raise ProtocolError(f"expected 'class:instance', got {text!r}") from None


def setting_error_text(code: int) -> str:
    name, meaning = ADD_SETTING_ERRORS.get(code, (f"Unknown{code}", "unknown error code"))
    return f"{name} ({code}): {meaning}"


def match_rule(**keys: str) -> str:
    """A D-Bus match rule string from keyword pairs (values quoted, quotes escaped)."""
    parts = []
    for key, value in keys.items():
        parts.append("%s='%s'" % (key, value.replace("'", "'\\''")))
    return ",".join(parts)


# ------------------------------------------------------------------ localsettings AddSettings
def add_settings_request(entries: Iterable[Mapping[str, Any]]) -> Any:
    """``[{"path", "default", "min"?, "max"?, "silent"?}]`` -> the ``aa{sv}`` argument.

    The D-Bus type of ``default`` sets the setting's type, so it is wrapped explicitly.
    """
    dbus = _dbus()
    out = []
    for entry in entries:
        d = {"path": dbus.String(entry["path"], variant_level=1),
             "default": wrap(entry["default"], 1)}
        for key in ("min", "max"):
            if entry.get(key) is not None:
                d[key] = wrap(entry[key], 1)
        if entry.get("silent"):
            d["silent"] = dbus.Boolean(True, variant_level=1)
        out.append(dbus.Dictionary(d, signature="sv"))
    return dbus.Array(out, signature="a{sv}")


def parse_add_settings_reply(reply: Any) -> List[Tuple[Optional[str], int, Any]]:
    """The ``aa{sv}`` reply -> ``[(path or None, error code, value or None)]`` in order."""
    if not isinstance(reply, (list, tuple)):
        raise ProtocolError(f"AddSettings replied {type(reply).__name__}, expected a list")
    out = []
    for entry in reply:
        if not isinstance(entry, Mapping):
            raise ProtocolError(f"AddSettings reply entry is not a dict: {entry!r}")
        path = entry.get("path")
        code = unwrap(entry.get("error", -1))
        out.append((None if path is None else str(path), int(code),
                    unwrap(entry["value"]) if "value" in entry else None))
    return out
