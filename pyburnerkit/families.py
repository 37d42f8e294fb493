"""The family registry: which device families (and recorder sinks) this installation offers.

A :class:`Family` names everything the generic layers need about one device family - its
extra, its manufacturer, and dotted ``"module:attr"`` paths to its client and simulator
factories, CLI module, recorder adapter and field table. The CLI, the recorder and the
MQTT/Home Assistant layer read this module only; none of them lists families by hand.

Built-in families are declared below. Third-party packages add theirs through the entry-point
group ``pyburnerkit.families`` (as python-can does with ``can.interface``); each entry point
loads to a :class:`Family`. Sinks work the same way (:class:`SinkType`, group
``pyburnerkit.sinks``).

Importing this module imports no family and no optional dependency: everything is a string
until :meth:`Family.load` is called. Discovery runs once, on the first :func:`families` /
:func:`sinks` call, on the calling thread; :func:`refresh` forgets the result (tests, or after
installing a plug-in in a running interpreter).
"""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
import logging
import threading
from dataclasses import dataclass
from typing import Any, Dict, FrozenSet, Iterable, List, Optional, Tuple, Type, TypeVar, Union

from .errors import BackendUnavailableError, ConfigurationError

log = logging.getLogger(__name__)

__all__ = ["Family", "SinkType", "families", "get", "available", "missing", "require",
           "sinks", "get_sink", "problems", "refresh", "load_path",
           "FAMILY_GROUP", "SINK_GROUP"]

FAMILY_GROUP = "pyburnerkit.families"
SINK_GROUP = "pyburnerkit.sinks"


def load_path(path: str) -> Any:
    """Import ``"package.module:attr"`` (or ``"package.module"``) and return the object.

    :raises ConfigurationError: the path is not of that form.
    :raises ImportError: the module (or something it imports) is missing; a family module
        that needs an absent extra raises :class:`~pyburnerkit.errors.BackendUnavailableError`.
    """
    module, _, attr = path.partition(":")
    if not module:
        raise ConfigurationError(f"expected 'package.module:attr', got {path!r}")
    obj: Any = importlib.import_module(module)
    for part in filter(None, attr.split(".")):
        obj = getattr(obj, part)
    return obj


def _missing_modules(requires: Iterable[str]) -> List[str]:
    # find_spec on the top-level name only: it locates a package without importing it
    out = []
    for name in requires:
        try:
            found = importlib.util.find_spec(name.split(".")[0]) is not None
        except (ImportError, ValueError):
            found = False
        if not found:
            out.append(name)
    return out


@dataclass(frozen=True)
class Family:
    """One device family, as the generic layers see it. Every path is ``"module:attr"``
    (``cli`` is a module path) and is imported only by :meth:`load`.

    :param name: the CLI and recorder name (``"afterburner"``); lower case, unique.
    :param title: one line for ``--help``.
    :param extra: the ``pip install "pyburnerkit[extra]"`` that installs its dependencies
        (for a third-party family: the name of its own distribution's extra, or None).
    :param manufacturer: shown as the device manufacturer (Home Assistant discovery).
    :param requires: importable module names the extra provides; :func:`available` checks
        them without importing them.
    :param client: the client class (or factory).
    :param simulator: the simulator class (or factory).
    :param cli: module exposing ``register(subparsers)`` for ``pyburnerkit <name> ...``.
    :param cli_sim: callable ``(sim_subparsers)`` adding ``pyburnerkit sim <name>``.
    :param cli_demo: callable ``(write, *, duration)`` run by ``pyburnerkit demo``.
    :param recorder: the recorder adapter, a :class:`~pyburnerkit.recorder.sources.Source`
        subclass taking the client as first argument (``from_config`` for config files).
    :param recorder_demo: callable returning ``(sources, cleanup)`` on a loopback simulator,
        for ``pyburnerkit record --demo``.
    :param fields: the family's :class:`~pyburnerkit.semantics.FieldTable` (names, units, HA
        entity kinds, controls of every recorded field).
    """

    name: str
    title: str = ""
    extra: Optional[str] = None
    manufacturer: str = ""
    requires: Tuple[str, ...] = ()
    client: Optional[str] = None
    simulator: Optional[str] = None
    cli: Optional[str] = None
    cli_sim: Optional[str] = None
    cli_demo: Optional[str] = None
    recorder: Optional[str] = None
    recorder_demo: Optional[str] = None
    fields: Optional[str] = None

    def load(self, what: str) -> Any:
        """Import and return the object one of the path fields names (``"client"``...).

        :raises ConfigurationError: the family declares no such path.
        :raises ImportError: see :func:`load_path`.
        """
        path = getattr(self, what, None) if what in _PATH_FIELDS else None
        if not path:
            raise ConfigurationError(f"family {self.name!r} has no {what}")
        return load_path(path)


_PATH_FIELDS = frozenset({"client", "simulator", "cli", "cli_sim", "cli_demo", "recorder",
                          "recorder_demo", "fields"})


@dataclass(frozen=True)
class SinkType:
    """One recorder sink kind, as a config file's ``type =`` names it.

    :param factory: ``"module:Class"``, called with the sink's options as keywords.
    :param keys: the option names a config may give (None: any; the sink checks them).
    """

    name: str
    factory: str
    extra: Optional[str] = None
    requires: Tuple[str, ...] = ()
    keys: Optional[FrozenSet[str]] = None

    def load(self) -> Any:
        return load_path(self.factory)


_CLI = "pyburnerkit.cli."
_ADAPTERS = "pyburnerkit.recorder.adapters."

#: The families shipped in this distribution, in the order ``--help`` lists them.
BUILTIN_FAMILIES: Tuple[Family, ...] = (
    Family("afterburner", "Afterburner diesel-heater controller (WebSocket)", "afterburner",
           "Afterburner (Ray Jones)", ("websocket",),
           client="pyburnerkit.afterburner:AfterburnerClient",
           simulator="pyburnerkit.afterburner:AfterburnerSim",
           cli=_CLI + "afterburner", cli_sim=_CLI + "afterburner:register_sim",
           cli_demo=_CLI + "afterburner:demo",
           recorder=_ADAPTERS + "afterburner:AfterburnerSource",
           recorder_demo=_ADAPTERS + "afterburner:demo_sources",
           fields="pyburnerkit.afterburner.semantics:TABLE"),
    # python-dotenv, which reads its credential files, is a core dependency
    Family("arbin", "Arbin battery cyclers (CTI over TCP)", "arbin", "Arbin Instruments", (),
           client="pyburnerkit.arbin:CyclerClient", simulator="pyburnerkit.arbin:ArbinSim",
           cli=_CLI + "arbin", cli_sim=_CLI + "arbin:register_sim",
           cli_demo=_CLI + "arbin:demo",
           recorder=_ADAPTERS + "arbin:ArbinSource",
           recorder_demo=_ADAPTERS + "arbin:demo_sources",
           fields="pyburnerkit.arbin.semantics:TABLE"),
    Family("mate3", "OutBack Mate3/Mate3s (Modbus TCP, SunSpec)", "mate3", "OutBack Power",
           ("pymodbus",),
           client="pyburnerkit.mate3:Mate3Client", simulator="pyburnerkit.mate3:Mate3Sim",
           cli=_CLI + "mate3", cli_sim=_CLI + "mate3:register_sim",
           cli_demo=_CLI + "mate3:demo",
           recorder=_ADAPTERS + "mate3:Mate3Source",
           recorder_demo=_ADAPTERS + "mate3:demo_sources",
           fields="pyburnerkit.mate3.semantics:TABLE"),
    Family("victron", "Victron Venus OS services (D-Bus)", "victron", "Victron Energy",
           ("dbus",),
           client="pyburnerkit.victron:VictronMonitor",
           simulator="pyburnerkit.victron:VictronSim",
           cli=_CLI + "victron", cli_sim=_CLI + "victron:register_sim",
           cli_demo=_CLI + "victron:demo",
           recorder=_ADAPTERS + "victron:VictronSource",
           recorder_demo=_ADAPTERS + "victron:demo_sources",
           fields="pyburnerkit.victron.semantics:TABLE"),
    # the DE1 simulator rig (pyburnerkit.rigs, above both families) also runs the Skale:
    # de1's hooks cover both BLE families
    Family("de1", "Decent DE1 espresso machine (BLE)", "de1", "Decent Espresso", ("pygatt",),
           client="pyburnerkit.de1:DE1Client", simulator="pyburnerkit.rigs.espresso:DE1Rig",
           cli=_CLI + "de1", cli_sim=_CLI + "de1:register_sim", cli_demo=_CLI + "de1:demo",
           recorder=_ADAPTERS + "de1:DE1Source",
           recorder_demo=_ADAPTERS + "de1:demo_sources",
           fields="pyburnerkit.de1.semantics:TABLE"),
    Family("scale", "Atomax Skale II scale (BLE)", "scale", "Atomax (Skale)", ("pygatt",),
           client="pyburnerkit.scale:SkaleClient",
           simulator="pyburnerkit.scale.sim:SkaleSim",
           cli=_CLI + "scale", recorder=_ADAPTERS + "scale:ScaleSource",
           fields="pyburnerkit.scale.semantics:TABLE"),
)

_SQLITE_KEYS = frozenset({"path", "synchronous"})
_POSTGRES_KEYS = frozenset({"dsn", "table", "hypertable", "definitions", "connect_timeout"})
_MQTT_KEYS = frozenset({
    "host", "port", "topic_root", "username", "password", "tls", "ca_certs", "certfile",
    "keyfile", "tls_insecure", "client_id", "keepalive", "qos", "discovery",
    "discovery_prefix", "discovery_mode", "connect_timeout", "ack_timeout",
    "configuration_url"})

#: The sinks shipped in this distribution.
BUILTIN_SINKS: Tuple[SinkType, ...] = (
    SinkType("sqlite", "pyburnerkit.recorder.sinks.sqlite:SQLiteSink", None, (), _SQLITE_KEYS),
    SinkType("postgres", "pyburnerkit.recorder.sinks.postgres:PostgresSink", "postgres",
             ("psycopg",), _POSTGRES_KEYS),
    SinkType("mqtt", "pyburnerkit.recorder.sinks.mqtt:MqttSink", "mqtt", ("paho",),
             _MQTT_KEYS),
)

_T = TypeVar("_T", Family, SinkType)
# re-entrant: a plug-in module may itself ask the registry while it is being loaded
_lock = threading.RLock()
_families: Optional[Dict[str, Family]] = None
_sinks: Optional[Dict[str, SinkType]] = None
_problems: List[ConfigurationError] = []


def _entry_points(group: str) -> List[Any]:
    return list(importlib.metadata.entry_points(group=group))


def _discover(group: str, builtins: Iterable[_T], kind: Type[_T]) -> Dict[str, _T]:
    """Built-ins, then every entry point of ``group``; a broken or duplicate plug-in is logged
    and recorded in :func:`problems`, and the others still load."""
    found: Dict[str, _T] = {item.name: item for item in builtins}
    for ep in sorted(_entry_points(group), key=lambda e: e.name):
        where = f"{ep.value} ({group} entry point {ep.name!r})"
        try:
            loaded: Any = ep.load()
        except Exception as exc:  # whatever a third-party import raises: report, go on
            _report(ConfigurationError(f"plug-in {where} failed to load: "
                                       f"{type(exc).__name__}: {exc}"))
            continue
        if not isinstance(loaded, kind):
            _report(ConfigurationError(f"plug-in {where} is a {type(loaded).__name__}, "
                                       f"not a pyburnerkit {kind.__name__}"))
            continue
        item: _T = loaded
        if item.name in found:
            _report(ConfigurationError(f"plug-in {where} registers {item.name!r}, which is "
                                       f"already taken; ignored"))
            continue
        found[item.name] = item
    return found


def _report(problem: ConfigurationError) -> None:
    log.error("%s", problem)
    _problems.append(problem)


def families() -> List[Family]:
    """Every family: built-ins first (in ``--help`` order), then plug-ins by name."""
    global _families
    with _lock:
        if _families is None:
            _families = _discover(FAMILY_GROUP, BUILTIN_FAMILIES, Family)
        return list(_families.values())


def sinks() -> List[SinkType]:
    """Every sink kind: built-ins first, then plug-ins (group ``pyburnerkit.sinks``)."""
    global _sinks
    with _lock:
        if _sinks is None:
            _sinks = _discover(SINK_GROUP, BUILTIN_SINKS, SinkType)
        return list(_sinks.values())


def get(name: str) -> Family:
    """The family called ``name``.

    :raises ConfigurationError: no such family (the message lists the known ones).
    """
    for family in families():
        if family.name == name:
            return family
    raise ConfigurationError(f"unknown device family {name!r}; known: "
                             f"{', '.join(f.name for f in families())}")


def get_sink(name: str) -> SinkType:
    """The sink kind called ``name``; :raises ConfigurationError: no such sink."""
    for sink in sinks():
        if sink.name == name:
            return sink
    raise ConfigurationError(f"unknown sink type {name!r}; known: "
                             f"{', '.join(s.name for s in sinks())}")


def _lookup(item: Union[str, Family, SinkType]) -> Union[Family, SinkType]:
    return get(item) if isinstance(item, str) else item


def missing(item: Union[str, Family, SinkType]) -> Optional[str]:
    """None when the dependencies of a family (or sink) are installed, else one line naming
    the ``pip install`` command that adds them. Imports nothing."""
    entry = _lookup(item)
    absent = _missing_modules(entry.requires)
    if not absent:
        return None
    hint = (f'pip install "pyburnerkit[{entry.extra}]"' if entry.extra
            else f"install {', '.join(absent)}")
    return f"{entry.name} needs the Python module {absent[0]!r}: {hint}"


def available(item: Union[str, Family, SinkType]) -> bool:
    """Whether the extra of a family (or sink) is installed; see :func:`missing` for why not."""
    return missing(item) is None


def require(item: Union[str, Family, SinkType]) -> None:
    """:raises BackendUnavailableError: the extra is not installed (message names pip)."""
    entry = _lookup(item)
    absent = _missing_modules(entry.requires)
    if absent:
        raise BackendUnavailableError(entry.extra or entry.name, absent[0])


def problems() -> List[ConfigurationError]:
    """The plug-ins that could not be registered since the last :func:`refresh`."""
    families()
    sinks()
    with _lock:
        return list(_problems)


def refresh() -> None:
    """Forget what discovery found; the next call looks at the entry points again."""
    global _families, _sinks
    with _lock:
        _families = None
        _sinks = None
        del _problems[:]
