"""pyDE1's resource table for :class:`~pyburnerkit.service.pyde1_http.Pyde1App`.

Each :class:`Resource` names a pyDE1 path (without the leading ``/``), the methods pyDE1 allows
on it (its ``Resource.can_get`` / ``can_put`` / ``can_patch`` rules), the JSON keys it carries
with pyDE1's value types (:class:`Field`), a getter building the GET document from the
clients' caches, and a setter that hands validated values to the clients' own setters. An
aggregate (``de1``, ``de1/control``, ``de1/setting``, ``de1/calibration``, ``scale``) is made of
its children, keyed as pyDE1 keys them.

Nothing here talks HTTP; handlers raise :class:`ApiError` (pyDE1's own refusals) or let the
library's errors through, and :mod:`pyburnerkit.service.pyde1_http` maps both to status codes.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, FrozenSet, List, Mapping, Optional, Protocol, Tuple

from ..de1.models import MachineState, Mode, StateInfo, SubState

__all__ = ["ApiError", "Field", "Resource", "RESOURCES", "RESOURCE_VERSION", "MAPPING_VERSION",
           "state_name", "substate_name", "resource_for"]

RESOURCE_VERSION = "5.0.0"
MAPPING_VERSION = "7.0.0"

GET, PATCH, PUT = "GET", "PATCH", "PUT"
_ALL: FrozenSet[str] = frozenset({GET, PATCH, PUT})


class ApiError(Exception):
    """A refusal pyDE1 itself would make: ``status`` is the HTTP code, ``kind`` pyDE1's
    exception class name (the body reads ``kind('message')`` as pyDE1's ``repr`` does)."""

    def __init__(self, status: int, kind: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.kind = kind
        self.message = message


def not_connected(what: str) -> ApiError:
    return ApiError(409, f"{what}NotConnectedError", f"{what} not connected")


def unsupported(message: str) -> ApiError:
    return ApiError(418, "DE1APIUnsupportedFeatureError", message)


# ------------------------------------------------------------------------ value types

@dataclass(frozen=True)
class Field:
    """One JSON key: pyDE1's value type (``int``, ``float``, ``bool``, ``str``, ``weights``
    = a list of grams or nulls), whether null is accepted, and whether it can be written."""

    kind: str
    optional: bool = False
    read_only: bool = False

    def check(self, where: str, value: Any) -> None:
        """pyDE1's type check: an int is accepted for a float, nothing else is converted (a
        string ``"0.0"`` for an int is refused). Stricter than pyDE1 in one point: a JSON
        ``true``/``false`` is not a number (Python's ``bool`` is an ``int``, pyDE1 lets it by).

        :raises ApiError: 400 ``DE1APITypeError`` naming the key, the type and the value.
        """
        if value is None and self.optional:
            return
        if _is_kind(self.kind, value):
            return
        expected = f"Optional[{self.kind}]" if self.optional else self.kind
        shown = json.dumps(value)  # as the client wrote it
        raise ApiError(400, "DE1APITypeError",
                       f"Expected {expected} value at {where}:, not {shown}")


def _is_kind(kind: str, value: Any) -> bool:
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    if kind == "int":
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == "float":
        return number
    if kind == "bool":
        return isinstance(value, bool)
    if kind == "str":
        return isinstance(value, str)
    if kind == "weights":
        return isinstance(value, list) and all(
            v is None or (isinstance(v, (int, float)) and not isinstance(v, bool)) for v in value)
    raise AssertionError(kind)


class Pyde1Context(Protocol):
    """What the resources read and change through: implemented by
    :class:`pyburnerkit.service.pyde1_http.Pyde1App` (a protocol here, so that the table does
    not import the app that routes to it)."""

    de1: Any
    scale: Any
    request_timeout: float

    def require_de1(self) -> Any: ...
    def require_info(self) -> Any: ...
    def require_scale(self) -> Any: ...
    def controls(self, mode: str) -> Dict[str, Any]: ...
    def check_controls(self, mode: str, values: Mapping[str, Any]) -> None: ...
    def update_controls(self, mode: str, values: Mapping[str, Any]) -> None: ...
    def rinse_by_de1(self) -> bool: ...
    def shot_settings(self, **changes: Any) -> None: ...
    def write_setting(self, name: str, value: Any) -> None: ...
    def selected_profile(self) -> Optional[str]: ...
    def upload_stored_profile(self, profile_id: str) -> List[Any]: ...
    def module_versions(self) -> Dict[str, Optional[str]]: ...
    def state_updated_at(self) -> Optional[float]: ...
    def last_state_update(self) -> Optional[str]: ...


Getter = Callable[[Pyde1Context], Any]
Setter = Callable[[Pyde1Context, Dict[str, Any]], List[Any]]


@dataclass(frozen=True)
class Resource:
    """One pyDE1 resource. ``needs`` is the device that must be connected (``"de1"``,
    ``"scale"`` or None); ``raw`` means PUT carries the body verbatim (profile, firmware);
    ``missing`` means pyDE1 knows the resource but pyburnerkit does not offer it (418);
    ``always_allowed`` lists the JSON values of the first key that need no ``allow_writes``
    (``Stop`` and friends: the library never refuses a stop)."""

    path: str
    methods: FrozenSet[str]
    fields: Mapping[str, Field] = field(default_factory=dict)
    get: Optional[Getter] = None
    set: Optional[Setter] = None
    children: Tuple[Tuple[str, str], ...] = ()
    needs: Optional[str] = "de1"
    raw: bool = False
    limit: int = 16 * 1024
    missing: str = ""
    pyde1_name: str = ""
    always_allowed: FrozenSet[Any] = frozenset()

    @property
    def name(self) -> str:
        """pyDE1's ``Resource`` member, as its 405 and 501 texts print it."""
        return "Resource." + (self.pyde1_name or self.path.upper().replace("/", "_"))


# ------------------------------------------------------------------------ names

_SUBSTATE_ERRORS = {
    SubState.ERROR_NAN: "NaN", SubState.ERROR_INF: "Inf", SubState.ERROR_GENERIC: "Generic",
    SubState.ERROR_ACC: "ACC", SubState.ERROR_TSENSOR: "TSensor",
    SubState.ERROR_PSENSOR: "PSensor", SubState.ERROR_WLEVEL: "WLevel",
    SubState.ERROR_DIP: "DIP", SubState.ERROR_ASSERTION: "Assertion",
    SubState.ERROR_UNSAFE: "Unsafe", SubState.ERROR_INVALID_PARM: "InvalidParm",
    SubState.ERROR_FLASH: "Flash", SubState.ERROR_OOM: "OOM",
    SubState.ERROR_DEADLINE: "Deadline", SubState.ERROR_HI_CURRENT: "HiCurrent",
    SubState.ERROR_LO_CURRENT: "LoCurrent", SubState.ERROR_BOOT_FILL: "BootFill"}


def _camel(name: str) -> str:
    return "".join(part.capitalize() for part in name.split("_"))


def state_name(state: MachineState) -> str:
    """pyDE1's name of a machine state (``GOING_TO_SLEEP`` -> ``GoingToSleep``)."""
    return _camel(state.name)


def substate_name(substate: SubState) -> str:
    """pyDE1's name of a substate (``PRE_INFUSE`` -> ``PreInfuse``, ``ERROR_NAN`` ->
    ``Error_NaN``)."""
    special = _SUBSTATE_ERRORS.get(substate)
    return f"Error_{special}" if special else _camel(substate.name)


# ------------------------------------------------------------------------ getters

def _reg(app: Pyde1Context, name: str) -> Optional[float]:
    value: Optional[float] = app.require_de1().registers.get(name)
    return value


def _flag(app: Pyde1Context, name: str) -> Optional[bool]:
    value = _reg(app, name)
    return None if value is None else bool(value)


def _settings(app: Pyde1Context) -> Any:
    settings = app.require_de1().shot_settings
    if settings is None:
        raise not_connected("DE1")
    return settings


def _get_version(app: Pyde1Context) -> Dict[str, Any]:
    return {"resource_version": RESOURCE_VERSION, "mapping_version": MAPPING_VERSION,
            "platform": sys.platform, "python": sys.version,
            "python_info": {"major": sys.version_info.major, "minor": sys.version_info.minor,
                            "micro": sys.version_info.micro,
                            "releaselevel": sys.version_info.releaselevel,
                            "serial": sys.version_info.serial},
            "module_versions": app.module_versions(), "source_data": None}


def _get_state(app: Pyde1Context) -> Dict[str, Any]:
    de1 = app.require_de1()
    info: Optional[StateInfo] = de1.state_info
    if info is None:
        raise not_connected("DE1")
    return {"state": {"state": state_name(info.state), "substate": substate_name(info.substate),
                      "last_updated": app.state_updated_at()},
            "mqtt": app.last_state_update()}


def _get_feature_flags(app: Pyde1Context) -> Dict[str, Any]:
    info = app.require_info()
    build = info.firmware_build
    f = info.features
    regs = app.require_de1().registers
    return {"feature_flags": {
        "fw_version": build, "ghc_active": info.ghc_active,
        "skip_to_next": f.skip_to_next, "safe_to_read_mmr_continuous":
            f.safe_to_read_mmr_continuous, "rinse_control": f.rinse_control,
        "hot_water_flow_control": build >= 1283, "sched_idle": f.sched_idle,
        "steam_purge_mode": build >= 1320, "allow_usb_charging": build >= 1320,
        "app_feature_flag_user_present": build >= 1320, "refill_kit_present": build >= 1320,
        "user_present": f.user_present, "mmr_pref_ghc_mci": False,
        "mmr_max_shot_press": False,
        "last_mmr0x80": max((a for a in _register_addresses(regs)), default=0) & 0xFFFF}}


def _register_addresses(regs: Mapping[str, float]) -> List[int]:
    from ..de1.codec import REGISTER_BY_NAME
    return [REGISTER_BY_NAME[name].address for name in regs if name in REGISTER_BY_NAME]


def _fw(version: Any) -> Dict[str, Any]:
    return {"api": version.api_version, "release": version.release,
            "commits": version.commits, "changes": version.changes,
            "blesha_hexstr": f"{version.sha:08x}"}


def _ghc_text(bits: int) -> str:
    names = [name for bit, name in ((0x04, "GHC_ACTIVE"), (0x02, "TOUCH_CONTROLLER_PRESENT"),
                                    (0x01, "LED_CONTROLLER_PRESENT"),
                                    (0x80000000, "FACTORY_MODE")) if bits & bit]
    return "|".join(names) if names else "0"


def _get_read_once(app: Pyde1Context) -> Dict[str, Any]:
    info = app.require_info()
    return {"hw_config_hexstr": f"{info.hw_config:08x}", "model_hexstr": f"{info.model:08x}",
            "cpu_board_model": info.cpu_board_model,
            "firmware_model": info.machine_model.name,
            "firmware_build_number": info.firmware_build,
            "ghc_info": _ghc_text(info.ghc_info),
            "serial_number_hexstr": f"{info.serial_number:08x}",
            "heater_voltage": info.heater_voltage,
            "version_ble": _fw(info.versions.ble), "version_lv": _fw(info.versions.firmware)}


def _get_de1_id(app: Pyde1Context) -> Dict[str, Any]:
    de1 = app.de1
    return {"id": None if de1 is None else de1.address, "name": None if de1 is None else "DE1"}


def _availability(client: Any) -> str:
    """pyDE1's DeviceAvailability state for a client's connection state."""
    if client is None:
        return "released"
    state = client.connection_state.value
    return {"connected": "ready", "connecting": "capturing", "reconnecting": "capturing",
            "idle": "initial", "closed": "released"}.get(state, "unknown")


def _connectivity(client: Any) -> str:
    return "ready" if client is not None and client.connected else "not_connected"


def _get_de1_availability(app: Pyde1Context) -> Dict[str, Any]:
    return {"mode": _availability(app.de1), "mqtt": None}


def _get_de1_connectivity(app: Pyde1Context) -> Dict[str, Any]:
    return {"mode": _connectivity(app.de1)}


def _get_profile_id(app: Pyde1Context) -> Dict[str, Any]:
    app.require_de1()
    return {"id": app.selected_profile()}


def _get_time(app: Pyde1Context) -> Dict[str, Any]:
    return {"timestamp": app.require_de1().read_time(timeout=app.request_timeout)}


def _set_time(app: Pyde1Context, values: Dict[str, Any]) -> List[Any]:
    app.require_de1().set_time(values["timestamp"], timeout=app.request_timeout)
    return []


def _get_firmware_id(app: Pyde1Context) -> Dict[str, Any]:
    return {"id": app.require_info().firmware_build}


def _get_espresso(app: Pyde1Context) -> Dict[str, Any]:
    app.require_de1()
    return app.controls("espresso")


def _get_steam(app: Pyde1Context) -> Dict[str, Any]:
    doc = app.controls("steam")
    doc["stop_at_time"] = _settings(app).steam_length_s
    return doc


def _get_hot_water(app: Pyde1Context) -> Dict[str, Any]:
    s = _settings(app)
    doc = app.controls("hot_water")
    doc.update(stop_at_time=s.hot_water_length_s, stop_at_volume=s.hot_water_volume_ml,
               temperature=s.hot_water_temp_c)
    return doc


def _get_rinse(app: Pyde1Context) -> Dict[str, Any]:
    doc = app.controls("hot_water_rinse")
    if app.rinse_by_de1():
        doc["stop_at_time"] = _reg(app, "flush_timeout")
    doc.update(temperature=_reg(app, "flush_temperature"), flow=_reg(app, "flush_flow"))
    return doc


def _get_tank(app: Pyde1Context) -> Dict[str, Any]:
    return {"temperature": _reg(app, "tank_temperature")}


def _get_fan(app: Pyde1Context) -> Dict[str, Any]:
    return {"temperature": _reg(app, "fan_threshold")}


def _get_fill(app: Pyde1Context) -> Dict[str, Any]:
    levels = app.require_de1().water_levels
    if levels is None:
        raise not_connected("DE1")
    return {"start_fill_level": levels.start_fill_level_mm}


def _get_before_flow(app: Pyde1Context) -> Dict[str, Any]:
    return {key: _reg(app, key) for key in _BEFORE_FLOW}


def _get_group_temp(app: Pyde1Context) -> Dict[str, Any]:
    return {"temperature": _settings(app).group_temp_c}


def _get_steam_setting(app: Pyde1Context) -> Dict[str, Any]:
    return {"temperature": _settings(app).steam_temp_c, "flow": _reg(app, "steam_flow"),
            "high_flow_time": _reg(app, "steam_high_flow_start"),
            "purge_deferred": _flag(app, "steam_purge_mode")}


def _get_usb(app: Pyde1Context) -> Dict[str, Any]:
    return {"enabled": _flag(app, "usb_outlet")}


def _get_refill_kit(app: Pyde1Context) -> Dict[str, Any]:
    value = _reg(app, "refill_kit_present")
    return {"present": None if value is None else value == 1}


def _get_line_frequency(app: Pyde1Context) -> Dict[str, Any]:
    return {"hz": app.require_de1().line_frequency}


def _get_flow_multiplier(app: Pyde1Context) -> Dict[str, Any]:
    return {"multiplier": _reg(app, "flow_calibration")}


def _get_presence(app: Pyde1Context) -> Dict[str, Any]:
    return {"user": _flag(app, "user_present")}


def _get_scale_id(app: Pyde1Context) -> Dict[str, Any]:
    scale = app.scale
    if scale is None:
        return {"id": None, "name": None, "type": None}
    info = scale.info
    name = "AtomaxSkaleII: Skale" if info is None else f"AtomaxSkaleII: {info.model}"
    return {"id": scale.address, "name": name, "type": "AtomaxSkaleII"}


def _get_scale_availability(app: Pyde1Context) -> Dict[str, Any]:
    return {"mode": _availability(app.scale), "mqtt": None}


def _get_scale_connectivity(app: Pyde1Context) -> Dict[str, Any]:
    return {"mode": _connectivity(app.scale)}


def _get_empty(app: Pyde1Context) -> Dict[str, Any]:
    return {}


# ------------------------------------------------------------------------ setters
# Each gets the keys of one PATCH, already type-checked, and calls the clients' setters.

def _set_mode(app: Pyde1Context, values: Dict[str, Any]) -> List[Any]:
    text = values["mode"]
    mode = next((m for m in Mode if m.value == text), None)
    if mode is None:  # pyDE1 looks the value up in its DE1ModeEnum, exactly
        raise ApiError(400, "DE1APIValueError", f"{text!r} is not a valid DE1ModeEnum")
    app.require_de1().request_mode(mode, timeout=app.request_timeout)
    return []


def _set_espresso(app: Pyde1Context, values: Dict[str, Any]) -> List[Any]:
    app.update_controls("espresso", values)
    return []


def _set_steam(app: Pyde1Context, values: Dict[str, Any]) -> List[Any]:
    values = dict(values)
    length = values.pop("stop_at_time", None)
    if values:
        app.check_controls("steam", values)
    if length is not None:
        app.shot_settings(steam_length_s=length)
    if values:
        app.update_controls("steam", values)
    return []


def _set_hot_water(app: Pyde1Context, values: Dict[str, Any]) -> List[Any]:
    values = dict(values)
    device = {name: values.pop(key) for key, name in (
        ("stop_at_time", "hot_water_length_s"), ("stop_at_volume", "hot_water_volume_ml"),
        ("temperature", "hot_water_temp_c")) if key in values}
    if values:
        app.check_controls("hot_water", values)
    if device:
        app.shot_settings(**device)
    if values:
        app.update_controls("hot_water", values)
    return []


def _set_rinse(app: Pyde1Context, values: Dict[str, Any]) -> List[Any]:
    values = dict(values)
    registers = [(name, values.pop(key)) for key, name in (
        ("temperature", "flush_temperature"), ("flow", "flush_flow")) if key in values]
    if app.rinse_by_de1() and values.get("stop_at_time") is not None:
        registers.append(("flush_timeout", values.pop("stop_at_time")))
    if values:
        app.check_controls("hot_water_rinse", values)
    for name, value in registers:
        app.write_setting(name, value)
    if values:
        app.update_controls("hot_water_rinse", values)
    return []


def _registers(*pairs: Tuple[str, str]) -> Setter:
    """A setter writing each key to its MMR setting (bools as 0/1), in the order given."""
    def setter(app: Pyde1Context, values: Dict[str, Any]) -> List[Any]:
        for key, name in pairs:
            if key in values:
                app.write_setting(name, values[key])
        return []
    return setter


def _set_fill(app: Pyde1Context, values: Dict[str, Any]) -> List[Any]:
    app.require_de1().set_refill_level(values["start_fill_level"], timeout=app.request_timeout)
    return []


def _shot_setting(name: str) -> Setter:
    def setter(app: Pyde1Context, values: Dict[str, Any]) -> List[Any]:
        app.shot_settings(**{name: values["temperature"]})
        return []
    return setter


def _set_steam_setting(app: Pyde1Context, values: Dict[str, Any]) -> List[Any]:
    if "temperature" in values:
        app.shot_settings(steam_temp_c=values["temperature"])
    return _registers(("flow", "steam_flow"), ("high_flow_time", "steam_high_flow_start"),
                      ("purge_deferred", "steam_purge_mode"))(app, values)


def _set_refill_kit(app: Pyde1Context, values: Dict[str, Any]) -> List[Any]:
    app.write_setting("refill_kit_present", 1 if values["present"] else 0)
    return []


def _set_line_frequency(app: Pyde1Context, values: Dict[str, Any]) -> List[Any]:
    raise unsupported("the line frequency is fixed when the DE1 client is opened "
                      "(line_frequency= in the device's options)")


def _set_reconnect(what: str) -> Setter:
    def setter(app: Pyde1Context, values: Dict[str, Any]) -> List[Any]:
        raise unsupported(f"the {what} is chosen in the service's configuration; "
                          f"pyburnerkit does not scan, capture or release over the API")
    return setter


def _set_tare(app: Pyde1Context, values: Dict[str, Any]) -> List[Any]:
    if values["tare"]:  # pyDE1 takes null and false as "do nothing"
        app.require_scale().tare(timeout=app.request_timeout)
    return []


def _set_display(app: Pyde1Context, values: Dict[str, Any]) -> List[Any]:
    app.require_scale().set_display(bool(values["display_on"]), timeout=app.request_timeout)
    return []


def _set_profile_id(app: Pyde1Context, values: Dict[str, Any]) -> List[Any]:
    return app.upload_stored_profile(values["id"])


# ------------------------------------------------------------------------ the table

_BEFORE_FLOW = ("heater_phase1_flow", "heater_phase2_flow", "heater_phase2_timeout",
                "heater_idle_temperature")

_F = Field
_ESPRESSO_FIELDS = {
    "stop_at_time": _F("float", True), "stop_at_volume": _F("float", True),
    "stop_at_weight": _F("float", True), "move_on_weight": _F("weights"),
    "disable_auto_tare": _F("bool"), "profile_can_override_stop_limits": _F("bool"),
    "profile_can_override_tank_temperature": _F("bool"),
    "first_drops_threshold": _F("float", True), "last_drops_minimum_time": _F("float")}
_APP_STOP_FIELDS = {"stop_at_volume": _F("float", True), "stop_at_weight": _F("float", True),
                    "disable_auto_tare": _F("bool")}


def _missing(path: str, methods: FrozenSet[str], what: str, **kw: Any) -> Resource:
    return Resource(path, methods, needs=None, missing=what, **kw)


_TABLE: Tuple[Resource, ...] = (
    Resource("version", frozenset({GET}), get=_get_version, needs=None),
    _missing("scan", frozenset({PUT}), "scanning for devices"),
    _missing("scan/devices", frozenset({GET}), "scanning for devices"),
    _missing("logs", frozenset({GET}), "log files over HTTP (use journald or the service's "
             "log file)"),
    _missing("log/{id}", frozenset({GET}), "log files over HTTP (use journald or the "
             "service's log file)", pyde1_name="LOG"),
    Resource("de1", _ALL, children=(
        ("availability", "de1/availability"), ("calibration", "de1/calibration"),
        ("connectivity", "de1/connectivity"), ("control", "de1/control"), ("id", "de1/id"),
        ("read_once", "de1/read_once_values"), ("setting", "de1/setting"),
        ("state", "de1/state"))),
    Resource("de1/id", _ALL, {"id": _F("str", True), "name": _F("str", read_only=True)},
             get=_get_de1_id, set=_set_reconnect("DE1"), needs=None),
    Resource("de1/mode", frozenset({PATCH, PUT}),
             {"mode": _F("str")}, set=_set_mode,
             always_allowed=frozenset({"Stop", "EndSteam", "NoRequest"})),
    Resource("de1/state", frozenset({GET}), get=_get_state),
    Resource("de1/feature_flags", _ALL, {"feature_flags": _F("str", read_only=True)},
             get=_get_feature_flags),
    Resource("de1/profile", frozenset({PUT}), raw=True),
    Resource("de1/profile/id", frozenset({GET, PUT}), {"id": _F("str")},
             get=_get_profile_id, set=_set_profile_id),
    Resource("de1/profile/store", frozenset({PUT}), raw=True, needs=None),
    Resource("de1/profiles", frozenset()),
    Resource("de1/firmware", frozenset({PUT}), raw=True, limit=1024 * 1024),
    Resource("de1/firmware/cancel", frozenset({PATCH, PUT}), raw=True, needs=None),
    Resource("de1/firmware/id", frozenset({GET, PUT}), {"id": _F("int", read_only=True)},
             get=_get_firmware_id),
    Resource("de1/firmwares", frozenset()),
    Resource("de1/availability", _ALL, {"mode": _F("str"), "mqtt": _F("str", read_only=True)},
             get=_get_de1_availability, set=_set_reconnect("DE1"), needs=None),
    Resource("de1/connectivity", _ALL, {"mode": _F("str")}, get=_get_de1_connectivity,
             set=_set_reconnect("DE1"), needs=None),
    Resource("de1/control", _ALL, children=(
        ("espresso", "de1/control/espresso"), ("hot_water", "de1/control/hot_water"),
        ("hot_water_rinse", "de1/control/hot_water_rinse"), ("steam", "de1/control/steam"),
        ("tank_water_threshold", "de1/control/tank_water_threshold"))),
    Resource("de1/control/espresso", _ALL, _ESPRESSO_FIELDS, get=_get_espresso,
             set=_set_espresso),
    Resource("de1/control/steam", _ALL, {"stop_at_time": _F("int"), **_APP_STOP_FIELDS},
             get=_get_steam, set=_set_steam),
    Resource("de1/control/hot_water", _ALL,
             {"stop_at_time": _F("int"), "stop_at_volume": _F("int"),
              "stop_at_weight": _F("float", True), "disable_auto_tare": _F("bool"),
              "temperature": _F("int")}, get=_get_hot_water, set=_set_hot_water),
    Resource("de1/control/hot_water_rinse", _ALL,
             {"stop_at_time": _F("float", True), **_APP_STOP_FIELDS,
              "temperature": _F("float"), "flow": _F("float")},
             get=_get_rinse, set=_set_rinse),
    Resource("de1/control/tank_water_threshold", _ALL, {"temperature": _F("int")},
             get=_get_tank, set=_registers(("temperature", "tank_temperature"))),
    Resource("de1/setting", _ALL, children=(
        ("before_flow", "de1/setting/before_flow"), ("fan_threshold", "de1/setting/fan_threshold"),
        ("refill_kit", "de1/setting/refill_kit"),
        ("start_fill_level", "de1/setting/start_fill_level"), ("steam", "de1/setting/steam"),
        ("target_group_temp", "de1/setting/target_group_temp"),
        ("usb_outlet", "de1/setting/usb_outlet"))),
    _missing("de1/setting/auto_off_time", _ALL, "the auto-off timer (an app-side timer in "
             "pyDE1)"),
    Resource("de1/setting/fan_threshold", _ALL, {"temperature": _F("int")}, get=_get_fan,
             set=_registers(("temperature", "fan_threshold"))),
    Resource("de1/setting/start_fill_level", _ALL, {"start_fill_level": _F("int")},
             get=_get_fill, set=_set_fill),
    Resource("de1/setting/before_flow", _ALL, {key: _F("float") for key in _BEFORE_FLOW},
             get=_get_before_flow, set=_registers(*((k, k) for k in _BEFORE_FLOW))),
    Resource("de1/setting/target_group_temp", _ALL, {"temperature": _F("float")},
             get=_get_group_temp, set=_shot_setting("group_temp_c")),
    Resource("de1/setting/steam", _ALL,
             {"temperature": _F("int"), "flow": _F("float"), "high_flow_time": _F("float"),
              "purge_deferred": _F("bool")}, get=_get_steam_setting, set=_set_steam_setting),
    Resource("de1/setting/usb_outlet", _ALL, {"enabled": _F("bool")}, get=_get_usb,
             set=_registers(("enabled", "usb_outlet"))),
    Resource("de1/setting/refill_kit", _ALL, {"present": _F("bool")}, get=_get_refill_kit,
             set=_set_refill_kit),
    # not a child of de1/setting: GET there reads caches only, this one asks the DE1
    Resource("de1/setting/time", _ALL, {"timestamp": _F("int")}, get=_get_time,
             set=_set_time),
    Resource("de1/calibration", _ALL, children=(
        ("flow_multiplier", "de1/calibration/flow_multiplier"),
        ("line_frequency", "de1/calibration/line_frequency"))),
    Resource("de1/calibration/line_frequency", _ALL, {"hz": _F("int")},
             get=_get_line_frequency, set=_set_line_frequency),
    Resource("de1/calibration/flow_multiplier", _ALL, {"multiplier": _F("float")},
             get=_get_flow_multiplier, set=_registers(("multiplier", "flow_calibration"))),
    _missing("de1/calibration/internal", _ALL, "the DE1's internal calibration over HTTP "
             "(needs the DE1's write key: use DE1Client.write_calibration)"),
    Resource("de1/parameters", _ALL, get=_get_empty, pyde1_name="DE1_PARAMETER_SET"),
    Resource("de1/read_once_values", frozenset({GET}), get=_get_read_once,
             pyde1_name="DE1_READ_ONCE"),
    Resource("de1/presence", _ALL, {"user": _F("bool")}, get=_get_presence,
             set=_registers(("user", "user_present"))),
    Resource("scale", _ALL, children=(
        ("availability", "scale/availability"), ("connectivity", "scale/connectivity"),
        ("id", "scale/id")), needs=None),
    Resource("scale/id", _ALL, {"id": _F("str", True), "name": _F("str", read_only=True),
                                "type": _F("str", read_only=True)},
             get=_get_scale_id, set=_set_reconnect("scale"), needs=None),
    Resource("scale/tare", frozenset({PATCH, PUT}), {"tare": _F("bool", True)},
             set=_set_tare, needs="scale"),
    Resource("scale/display", frozenset({PATCH, PUT}), {"display_on": _F("bool", True)},
             set=_set_display, needs="scale"),
    Resource("scale/availability", _ALL, {"mode": _F("str"), "mqtt": _F("str", read_only=True)},
             get=_get_scale_availability, set=_set_reconnect("scale"), needs=None),
    Resource("scale/connectivity", _ALL, {"mode": _F("str")}, get=_get_scale_connectivity,
             set=_set_reconnect("scale"), needs=None),
    _missing("flow_sequencer", _ALL, "the flow sequencer resource (use de1/control/*)"),
    _missing("flow_sequencer/settings", _ALL, "the flow sequencer resource (use "
             "de1/control/*)", pyde1_name="FLOW_SEQUENCER_SETTING"),
    _missing("flow_sequencer/parameter_set", _ALL, "the flow sequencer resource (use "
             "de1/control/*)"),
    _missing("thermometer", _ALL, "thermometers (BlueDOT)"),
    _missing("thermometer/id", _ALL, "thermometers (BlueDOT)"),
    _missing("thermometer/availability", _ALL, "thermometers (BlueDOT)"),
)

RESOURCES: Mapping[str, Resource] = {r.path: r for r in _TABLE}

#: First path segments of pyDE1's resources: the service routes these to the pyDE1 app.
ROOTS = ("version", "scan", "logs", "log", "de1", "scale", "flow_sequencer", "thermometer")


def resource_for(path: str) -> Optional[Resource]:
    """The resource at ``path`` (no leading ``/``), or None. ``log/<id>`` is pyDE1's one
    parametrised path."""
    found = RESOURCES.get(path)
    if found is None and path.startswith("log/") and len(path) > 4 and "/" not in path[4:]:
        found = RESOURCES["log/{id}"]
    return found
