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
        return "/"
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
    if not isinstance(name, str):
        raise ConfigurationError(f"service name {_show(name)} is not a string")
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
        return dbus.String(_sendable_text(value), **kw)
    if isinstance(value, (list, tuple)):
        return _wrap_list(list(value), kw)
    if isinstance(value, Mapping):
        for key in value:
            if not isinstance(key, str):
                raise ConfigurationError(f"dict key {_show(key)} cannot be sent on D-Bus: the "
                                         f"keys of a dict value must be str")
        return dbus.Dictionary({_sendable_text(str.__str__(k)): wrap(v, 1)
                                for k, v in value.items()}, signature="sv", **kw)
    raise ConfigurationError(
        f"value {_show(value)} of type {type(value).__name__} cannot be sent on D-Bus (use "
        f"None, bool, int, float, str, or a list of one of those)")


def _sendable_text(text: str) -> str:
    """``text`` if D-Bus can carry it (valid UTF-8 without NUL), else ConfigurationError."""
    if "\x00" in text:
        raise ConfigurationError(f"text {_show(text)} contains a NUL character, which D-Bus "
                                 f"strings cannot carry")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ConfigurationError(f"text {_show(text)} is not valid Unicode ({exc.reason}); "
                                 f"D-Bus strings are UTF-8") from None
    return text


def _show(value: Any, limit: int = 80) -> str:
    """A repr for error messages that never raises (a dbus.Byte's str() can) and stays short."""
    try:
        text = repr(value)
    except Exception:
        text = f"<{type(value).__name__}>"
    return text if len(text) <= limit else text[:limit - 3] + "..."


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
        raise ConfigurationError(f"list {_show(items)} holds an int wider than 64 bits")
    if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in items):
        return dbus.Array([dbus.Double(float(v)) for v in items], signature="d", **kw)
    if all(isinstance(v, str) for v in items):
        return dbus.Array([dbus.String(_sendable_text(v)) for v in items], signature="s", **kw)
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
#: What a GetItems / ItemsChanged / PropertiesChanged entry says: (has a Value, the value,
#: the Text or None when it carried none).
Entry = Tuple[bool, Any, Optional[str]]
#: A path's limits as the bus reports them: ``(min, max)``; ``(None, None)`` when the bus
#: says there are none (localsettings' min = max = 0).
Limits = Tuple[Optional[float], Optional[float]]
NO_LIMITS: Limits = (None, None)

#: D-Bus allows 32 levels of arrays plus 32 of structs; variants add more. Deeper is garbage.
_MAX_DEPTH = 96


def unwrap(value: Any) -> Any:
    """Plain Python for any dbus-python value; every empty array becomes ``None`` (invalid).

    :raises ProtocolError: for anything that is not a D-Bus value (a Unix fd, a Python object
        D-Bus cannot carry, nesting deeper than D-Bus allows). Nothing else, whatever it gets.
    """
    try:
        return _unwrap(value, _dbus(), 0)
    except ProtocolError:
        raise
    except RecursionError:
        raise ProtocolError("a D-Bus value nested too deeply") from None
    except Exception as exc:   # e.g. an unhashable dict key built by a hostile payload
        raise ProtocolError(f"undecodable D-Bus value {_show(value)}: {type(exc).__name__}: "
                            f"{exc}") from None


def _unwrap(value: Any, dbus: Any, depth: int) -> Any:
    if depth > _MAX_DEPTH:
        raise ProtocolError("a D-Bus value nested too deeply")
    if value is None:
        return None
    if isinstance(value, bool):            # dbus.Boolean is an int, plain bool too
        return bool(value)
    if isinstance(value, dbus.Boolean):
        return bool(value)
    if isinstance(value, int):             # dbus.Byte, Int16 ... UInt64 and plain int
        return int(value)
    if isinstance(value, float):           # dbus.Double and plain float
        return float(value)
    if isinstance(value, str):             # dbus.String, ObjectPath, Signature and plain str
        return str.__str__(value)
    if isinstance(value, bytes):           # dbus.ByteArray and plain bytes
        return bytes(value)
    if isinstance(value, list):            # dbus.Array and plain list
        if len(value) == 0:
            return None
        return [_unwrap(v, dbus, depth + 1) for v in value]
    if isinstance(value, tuple):           # dbus.Struct and plain tuple
        return tuple(_unwrap(v, dbus, depth + 1) for v in value)
    if isinstance(value, dict):            # dbus.Dictionary and plain dict
        return {_unwrap(k, dbus, depth + 1): _unwrap(v, dbus, depth + 1)
                for k, v in value.items()}
    raise ProtocolError(f"unexpected D-Bus value {_show(value)} ({type(value).__name__})")


def text_of(value: Any, what: str = "Text") -> str:
    """A D-Bus string as a plain ``str``; anything else (a ``dbus.Byte``, a struct) is a
    ProtocolError, never a ``str()`` that may raise or make up text."""
    if isinstance(value, str):
        return str.__str__(value)
    raise ProtocolError(f"{what} must be a string, got {_show(value)} "
                        f"({type(value).__name__})")


def parse_entry(entry: Any) -> Entry:
    """One ``{"Value", "Text", ...}`` dict -> ``(has_value, value, text or None)``.

    :raises ProtocolError: not a dict, a Value that is no D-Bus value, or a Text that is not a
        string. Nothing else.
    """
    if not isinstance(entry, Mapping):
        raise ProtocolError(f"expected a dict with Value and Text, got {_show(entry)}")
    has_value = "Value" in entry
    value = unwrap(entry["Value"]) if has_value else None
    text = entry.get("Text")
    return has_value, value, (None if text is None else text_of(text))


def parse_limits(entry: Any) -> Optional[Limits]:
    """The ``Min``/``Max`` of an entry (localsettings sends them): None when it carries neither,
    :data:`NO_LIMITS` for min = max = 0 (localsettings' "no limits"), else ``(min, max)``.

    :raises ProtocolError: not a dict, or limits that are not numbers or not in order.
    """
    if not isinstance(entry, Mapping):
        raise ProtocolError(f"expected a dict with Min and Max, got {_show(entry)}")
    if "Min" not in entry and "Max" not in entry:
        return None
    low, high = unwrap(entry.get("Min", 0)), unwrap(entry.get("Max", 0))
    for name, limit in (("Min", low), ("Max", high)):
        if (isinstance(limit, bool) or not isinstance(limit, (int, float))
                or not math.isfinite(limit)):
            raise ProtocolError(f"{name} must be a finite number, got {_show(limit)}")
    if low == 0 and high == 0:
        return NO_LIMITS
    if low > high:
        raise ProtocolError(f"Min {low} is above Max {high}")
    return low, high


def split_items(payload: Any) -> Tuple[Dict[str, Entry], Dict[str, Limits], List[str]]:
    """An ``a{sa{sv}}`` (GetItems, ItemsChanged), entry by entry: a malformed entry costs only
    itself. Returns ``(entries, limits, problems)``: ``{path: Entry}``, ``{path: Limits}`` for
    the entries that carry Min/Max, and one line per skipped entry.

    :raises ProtocolError: when the payload itself is not a dict.
    """
    if not isinstance(payload, Mapping):
        raise ProtocolError(f"expected a dict of paths, got {_show(payload)}")
    entries: Dict[str, Entry] = {}
    limits: Dict[str, Limits] = {}
    problems: List[str] = []
    for path, entry in payload.items():
        try:
            if not isinstance(path, str) or not _PATH_RE.match(path):
                raise ProtocolError("the key is not an object path")
            parsed, bounds = parse_entry(entry), parse_limits(entry)
        except ProtocolError as exc:
            problems.append(f"{_show(path, 40)}: {exc.args[0] if exc.args else exc}")
            continue
        path = str.__str__(path)
        entries[path] = parsed
        if bounds is not None:
            limits[path] = bounds
    return entries, limits, problems


def parse_items(payload: Any) -> Dict[str, Entry]:
    """An ``a{sa{sv}}`` (GetItems, ItemsChanged) -> ``{path: (has_value, value, text)}``.

    Entries without ``Value`` keep ``has_value=False`` (only limits changed); entries without
    ``Text`` give ``text=None`` (the caller falls back to ``str(value)``).

    :raises ProtocolError: when the payload is not a mapping of paths to well-formed entries
        (the message names the bad entries).
    """
    entries, _limits, problems = split_items(payload)
    if problems:
        shown = "; ".join(problems[:5]) + (f" (+{len(problems) - 5} more)"
                                           if len(problems) > 5 else "")
        raise ProtocolError(f"{len(problems)} malformed entr{'y' if len(problems) == 1 else 'ies'}"
                            f": {shown}")
    return entries


def parse_root_dict(values: Any, texts: Any) -> Dict[str, Entry]:
    """The legacy velib root ``GetValue``/``GetText`` dicts (relative keys) -> absolute paths.

    :raises ProtocolError: values is not a dict of relative paths, or holds garbage.
    """
    if not isinstance(values, Mapping):
        raise ProtocolError("the root GetValue did not return a dict (no legacy scan possible)")
    texts = texts if isinstance(texts, Mapping) else {}
    out: Dict[str, Entry] = {}
    for key, value in values.items():
        path = "/" + text_of(key, "a root GetValue key").lstrip("/")
        if not _PATH_RE.match(path):
            raise ProtocolError(f"root GetValue key {_show(key)} is not a relative path")
        try:
            text = texts.get(key)
        except TypeError:   # a key of the other dict that cannot be compared
            text = None
        out[path] = (True, unwrap(value), None if text is None else text_of(text))
    return out


# ------------------------------------------------------------------ text and types
def default_text(path: str, value: Any, *, invalid: str = "---") -> str:
    """velib's text rule: ``---`` for invalid, ``/ProductId`` in hex, else ``str(value)``.
    Never raises (a ``dbus.Byte``'s own ``str()`` can)."""
    if value is None:
        return invalid
    if isinstance(value, bool):
        return str(bool(value))
    if isinstance(value, int):
        if isinstance(path, str) and path == "/ProductId":
            return f"0x{int(value):X}"
        return str(int(value))
    if isinstance(value, float):
        value = float(value)
        return f"{value:g}" if math.isfinite(value) else str(value)
    if isinstance(value, str):
        return str.__str__(value)
    try:
        return str(value)
    except Exception:
        return _show(value)


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
    raise ConfigurationError(f"{name}={_show(value)} is not a valid {kind.__name__}")


def parse_class_instance(text: Any) -> Tuple[str, int]:
    """``"grid:30"`` -> ``("grid", 30)``, else ProtocolError."""
    if not isinstance(text, str) or text.count(":") != 1:
        raise ProtocolError(f"expected 'class:instance', got {_show(text)}")
    cls, _, number = str.__str__(text).partition(":")
    try:
        return cls, int(number)
    except ValueError:
        raise ProtocolError(f"expected 'class:instance', got {_show(text)}") from None


def setting_error_text(code: int) -> str:
    if isinstance(code, bool) or not isinstance(code, int):
        return f"Unknown ({_show(code)}): not an error code"
    name, meaning = ADD_SETTING_ERRORS.get(int(code), (f"Unknown{code}", "unknown error code"))
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
    """The ``aa{sv}`` reply -> ``[(path or None, error code, value or None)]`` in order.

    :raises ProtocolError: the reply is not a list of dicts with an integer ``error``.
    """
    if not isinstance(reply, (list, tuple)):
        raise ProtocolError(f"AddSettings replied {type(reply).__name__}, expected a list")
    out = []
    for entry in reply:
        if not isinstance(entry, Mapping):
            raise ProtocolError(f"AddSettings reply entry is not a dict: {_show(entry)}")
        path = entry.get("path")
        code = unwrap(entry.get("error", -1))
        if isinstance(code, bool) or not isinstance(code, int):
            raise ProtocolError(f"AddSettings reply: error must be an integer, got {_show(code)}")
        out.append((None if path is None else text_of(path, "path"), code,
                    unwrap(entry["value"]) if "value" in entry else None))
    return out
