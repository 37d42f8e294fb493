"""The recorder's TOML configuration, with environment variables and ``.env`` for secrets.

Example (``pyburnerkit record recorder.toml``)::

    [recorder]
    progress_interval = 5           # seconds between progress lines/events
    spool_dir = "/var/lib/pyburnerkit/spool"
    spool_max = 1000000             # samples per sink spool before the oldest are dropped
    memory_max = 200000             # samples per sink held in memory while the spool's disk
                                    # is full or unwritable (past it the oldest are LOST)
    env_file = ".env"               # default: a .env next to this file, if present

    [[devices]]
    family = "afterburner"
    url = "192.168.4.1"
    id = "cabin-heater"             # stable device id (default: the endpoint)
    controls = ["PumpCal"]          # also controllable from Home Assistant (not safe)
    [devices.options]               # keyword arguments of the family's client
    liveness_interval = 15
    allow_writes = true             # without it nothing on this device is controllable

    [[sinks]]
    type = "sqlite"
    path = "pyburnerkit.db"

    [[sinks]]
    type = "postgres"
    dsn = "${PYBURNERKIT_PG_DSN}"   # from the environment or .env
    hypertable = "auto"
    definitions = "mate3_pg.yaml"   # optional mate3_pg definitions file

    [[sinks]]
    type = "mqtt"
    host = "broker.lan"
    port = 8883
    tls = true
    username = "recorder"
    password = "${MQTT_PASSWORD}"
    discovery_prefix = "homeassistant"
    discovery_mode = "component"   # or "device": one config per device (HA 2024.11+)

    [[alerts]]
    name = "heater-error"
    kind = "threshold"
    field = "ErrorState"
    above = 1
    command = ["notify-send", "heater error"]

A device's settings and actions can be changed through a sink that takes commands (the MQTT
sink: Home Assistant's controls) only when its client allows writes (``allow_writes = true``
under ``[devices.options]``); then the fields its family's semantic table marks safe are
controllable, plus those listed in ``controls`` (checked here: a name that is not a
controllable field of the family is refused, naming the controllable ones).
``command_timeout`` under ``[recorder]`` bounds each command (seconds, default 10).

Any string may use ``${VAR}`` or ``${VAR:-default}``; variables come from the environment,
then from the ``.env`` file (which never overrides the environment). Relative paths are relative
to the config file.
"""

from __future__ import annotations

import os
import re
import shlex
import sys
from dataclasses import dataclass, field
from typing import AbstractSet, Any, Dict, List, Mapping, Optional, Tuple

from .. import families as registry
from ..errors import ConfigurationError
from .alerts import AlertRule
from .secrets import RedactedDict, redact_dsn, scrub, split_secret_env

if sys.version_info >= (3, 11):
    import tomllib as _toml
else:  # pragma: no cover - exercised on 3.9/3.10
    try:
        import tomli as _toml  # type: ignore[no-redef]
    except ImportError:  # pragma: no cover
        _toml = None  # type: ignore[assignment]

__all__ = ["RecorderConfig", "load_config", "parse_config", "read_env_file"]

_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")

#: option names of the built-in sinks (the registry in pyburnerkit.families holds them)
SINK_KEYS = {entry.name: set(entry.keys or ()) for entry in registry.BUILTIN_SINKS}
PATH_KEYS = {"path", "definitions", "ca_certs", "certfile", "keyfile"}
RECORDER_KEYS = {"progress_interval", "spool_dir", "spool_max", "memory_max", "env_file",
                 "batch_size", "command_timeout"}
DEVICE_KEYS = {"family", "url", "id", "interval", "options", "controls"}
ALERT_KEYS = {"name", "kind", "field", "above", "below", "hysteresis", "values", "seconds",
              "device", "family", "command", "message"}


def read_env_file(path: str) -> Dict[str, str]:
    """The variables of a ``.env`` file, read by python-dotenv (a core dependency): comments,
    quotes, ``export`` and ``${VAR}`` expansion as every dotenv user expects."""
    from dotenv import dotenv_values
    return {k: v for k, v in dotenv_values(path).items() if v is not None}


def _interpolate(value: Any, env: Mapping[str, str], where: str,
                 used: Optional[Dict[str, str]] = None) -> Any:
    """``value`` with ``${VAR}`` substituted; the variables used are noted in ``used``."""
    if used is None:
        used = {}
    if isinstance(value, str):
        def sub(match: "re.Match[str]") -> str:
            name, default = match.group(1), match.group(2)
            if name in env:
                used[name] = env[name]
                return env[name]
            if default is not None:
                return default
            raise ConfigurationError(
                f"{where}: environment variable {name} is not set (set it, or put it in .env)")
        return _VAR.sub(sub, value)
    if isinstance(value, list):
        return [_interpolate(v, env, where, used) for v in value]
    if isinstance(value, dict):
        return {k: _interpolate(v, env, f"{where}.{k}", used) for k, v in value.items()}
    return value


def _check_keys(section: Mapping[str, Any], allowed: AbstractSet[str], where: str) -> None:
    unknown = sorted(set(section) - allowed)
    if unknown:
        raise ConfigurationError(
            f"{where}: unknown key(s) {', '.join(unknown)}; allowed: {', '.join(sorted(allowed))}")


@dataclass
class DeviceSpec:
    """One ``[[devices]]`` entry. Its ``repr()`` hides credentials (URL passwords, options such
    as ``password``/``token``, values that came from secret variables)."""

    family: str
    url: str
    id: Optional[str] = None
    interval: Optional[float] = None
    options: Dict[str, Any] = field(default_factory=dict)
    secrets: Tuple[str, ...] = field(default=(), repr=False, compare=False)
    #: fields controllable from a sink (Home Assistant) although not marked safe
    controls: Tuple[str, ...] = ()

    def __repr__(self) -> str:
        options = RedactedDict(self.options, secrets=self.secrets)
        return scrub(f"DeviceSpec(family={self.family!r}, url={redact_dsn(self.url)!r}, "
                     f"id={self.id!r}, interval={self.interval!r}, options={options!r}, "
                     f"controls={self.controls!r})", self.secrets)

    __str__ = __repr__


@dataclass
class RecorderConfig:
    """A parsed config. ``repr()``/``str()`` never show a secret: not the DSN or MQTT
    passwords, not the device credentials, not any value that came from a variable whose name
    says it is secret (``*PASSWORD*``, ``*TOKEN*``, ``*SECRET*``, ``*API_KEY*``...)."""

    devices: List[DeviceSpec] = field(default_factory=list)
    sinks: List[Tuple[str, Dict[str, Any]]] = field(default_factory=list)
    alerts: List[AlertRule] = field(default_factory=list)
    recorder: Dict[str, Any] = field(default_factory=dict)
    path: Optional[str] = None
    #: values substituted from secret variables: hidden wherever they appear
    secrets: Tuple[str, ...] = field(default=(), repr=False, compare=False)

    def __repr__(self) -> str:
        sinks = [(kind, RedactedDict(opts, secrets=self.secrets)) for kind, opts in self.sinks]
        text = (f"RecorderConfig(path={self.path!r}, devices={self.devices!r}, "
                f"sinks={sinks!r}, alerts={self.alerts!r}, "
                f"recorder={RedactedDict(self.recorder, secrets=self.secrets)!r})")
        return scrub(text, self.secrets)

    __str__ = __repr__

    def build_sinks(self) -> List[Any]:
        out = []
        names: Dict[str, int] = {}
        for kind, opts in self.sinks:
            opts = dict(opts)
            count = names.get(kind, 0)
            names[kind] = count + 1
            opts.setdefault("name", kind if count == 0 else f"{kind}{count + 1}")
            out.append(registry.get_sink(kind).load()(**opts))
        return out

    def build_sources(self) -> List[Any]:
        """One source per ``[[devices]]`` entry, in order (their clients are not connected)."""
        from .sources import open_source
        sources = []
        try:
            for spec in self.devices:
                sources.append(open_source(spec.family, spec.url, device=spec.id,
                                           interval=spec.interval, options=spec.options))
        except BaseException:
            for s in sources:
                s.close_client(1.0)
            raise
        return sources

    def build(self, **overrides: Any) -> Any:
        """A ready (not started) :class:`~pyburnerkit.recorder.Recorder`."""
        from .recorder import Recorder
        opts = {k: v for k, v in self.recorder.items() if k != "env_file"}
        opts.update(overrides)
        sinks = self.build_sinks()
        sources = self.build_sources()
        controls = {f"{source.family}/{source.device}": spec.controls
                    for spec, source in zip(self.devices, sources) if spec.controls}
        try:
            return Recorder(sources, sinks or None, alerts=self.alerts, controls=controls,
                            **opts)
        except BaseException:
            for s in sources:
                s.close_client(1.0)
            raise


def load_config(path: str, *, environ: Optional[Mapping[str, str]] = None) -> RecorderConfig:
    """Read a TOML recorder config (see the module docs).

    :raises ConfigurationError: unreadable TOML, unknown keys, missing variables, bad values.
    """
    if _toml is None:  # pragma: no cover
        raise ConfigurationError('reading TOML on Python < 3.11 needs tomli: pip install tomli')
    try:
        with open(path, "rb") as fh:
            data = _toml.load(fh)
    except FileNotFoundError:
        raise ConfigurationError(f"config file {path!r} not found") from None
    except _toml.TOMLDecodeError as exc:
        raise ConfigurationError(f"{path}: invalid TOML: {exc}") from None
    return parse_config(data, base_dir=os.path.dirname(os.path.abspath(path)), path=path,
                        environ=environ)


def _section_list(data: Mapping[str, Any], *names: str) -> List[Dict[str, Any]]:
    out: List[Dict[str, Any]] = []
    for name in names:
        value = data.get(name)
        if value is None:
            continue
        if isinstance(value, dict):
            value = [value]
        if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
            raise ConfigurationError(f"[[{name}]] must be a table or an array of tables")
        out.extend(value)
    return out


def parse_config(data: Mapping[str, Any], *, base_dir: str = ".", path: Optional[str] = None,
                 environ: Optional[Mapping[str, str]] = None) -> RecorderConfig:
    where = path or "config"
    _check_keys(data, {"recorder", "devices", "device", "sinks", "sink", "alerts", "alert"},
                where)
    recorder = dict(data.get("recorder") or {})
    _check_keys(recorder, RECORDER_KEYS, f"{where} [recorder]")
    env: Dict[str, str] = {}
    env_file = recorder.get("env_file")
    if env_file is None:
        candidate = os.path.join(base_dir, ".env")
        env_file = candidate if os.path.exists(candidate) else None
    elif not os.path.isabs(env_file):
        env_file = os.path.join(base_dir, env_file)
    if env_file is not None:
        if not os.path.exists(env_file):
            raise ConfigurationError(f"{where}: env_file {env_file!r} not found")
        env.update(read_env_file(env_file))
    env.update(os.environ if environ is None else environ)  # the environment wins over .env

    used: Dict[str, str] = {}
    data = _interpolate(dict(data), env, where, used)
    secrets = split_secret_env(used)
    recorder = RedactedDict(data.get("recorder") or {}, secrets=secrets)
    if "spool_dir" in recorder and not os.path.isabs(recorder["spool_dir"]):
        recorder["spool_dir"] = os.path.join(base_dir, recorder["spool_dir"])
    cfg = RecorderConfig(recorder=recorder, path=path, secrets=secrets)

    for i, dev in enumerate(_section_list(data, "devices", "device")):
        loc = f"{where} devices[{i}]"
        _check_keys(dev, DEVICE_KEYS, loc)
        if "family" not in dev or "url" not in dev:
            raise ConfigurationError(f"{loc}: needs family and url")
        options = dev.get("options") or {}
        if not isinstance(options, dict):
            raise ConfigurationError(f"{loc}: options must be a table")
        controls: Tuple[str, ...] = ()
        if "controls" in dev:
            from .commands import check_controls
            controls = check_controls(str(dev["family"]), dev["controls"], f"{loc}: controls")
        cfg.devices.append(DeviceSpec(str(dev["family"]), str(dev["url"]), dev.get("id"),
                                      dev.get("interval"),
                                      RedactedDict(options, secrets=secrets), secrets,
                                      controls))

    for i, sink in enumerate(_section_list(data, "sinks", "sink")):
        loc = f"{where} sinks[{i}]"
        kind = sink.get("type")
        kinds = {entry.name: entry for entry in registry.sinks()}
        if kind not in kinds:
            raise ConfigurationError(
                f"{loc}: type={kind!r} must be one of {', '.join(sorted(kinds))}")
        opts = {k: v for k, v in sink.items() if k != "type"}
        keys = kinds[kind].keys
        if keys is not None:  # a plug-in sink may leave the check of its options to itself
            _check_keys(opts, set(keys) | {"name"}, loc)
        for key in PATH_KEYS & set(opts):
            if isinstance(opts[key], str) and not os.path.isabs(opts[key]):
                opts[key] = os.path.join(base_dir, opts[key])
        if kind == "postgres" and isinstance(opts.get("definitions"), str):
            # a definition that names no device must stop the config here, not at build
            from .sinks.postgres import Mate3Definitions
            try:
                Mate3Definitions.load(opts["definitions"])
            except ConfigurationError as exc:
                raise ConfigurationError(f"{loc}: {exc}") from None
        cfg.sinks.append((kind, RedactedDict(opts, secrets=secrets)))

    for i, rule in enumerate(_section_list(data, "alerts", "alert")):
        loc = f"{where} alerts[{i}]"
        _check_keys(rule, ALERT_KEYS, loc)
        rule = dict(rule)
        if "values" in rule:
            rule["values"] = tuple(rule["values"])
        if "command" in rule:
            cmd = rule["command"]
            rule["command"] = (tuple(shlex.split(cmd)) if isinstance(cmd, str)
                               else tuple(str(c) for c in cmd))
        try:
            cfg.alerts.append(AlertRule(**rule))
        except TypeError as exc:
            raise ConfigurationError(f"{loc}: {exc}") from None
    return cfg
