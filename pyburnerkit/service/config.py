"""The service's TOML configuration: the recorder's sections plus ``[http]``, ``[mqtt]`` and
``[service]``.

Example (``pyburnerkit serve service.toml``)::

    [[devices]]                       # as for `pyburnerkit record` (see the recorder docs)
    family = "afterburner"
    url = "192.168.4.1"
    id = "cabin"
    [devices.options]
    allow_writes = true               # without it the API refuses every change (403)

    [[sinks]]                         # optional: with none, nothing is recorded
    type = "sqlite"
    path = "service.db"

    [http]
    bind = "127.0.0.1:1234"           # host:port; pyDE1's port by default
    token_file = "/etc/pyburnerkit/token"   # or token = "${API_TOKEN}", or token_env = "NAME"
    insecure = false                  # true: serve a non-loopback address without a token
    threads = 16                      # HTTP worker threads
    max_streams = 8                   # event streams (SSE) open at once

    [mqtt]                            # pyDE1's outbound MQTT API for the DE1 and its scale
    host = "broker.lan"
    port = 1883
    topic_root = "pyDE1"
    username = "pyde1"
    password = "${MQTT_PASSWORD}"

    [service]
    request_timeout = 5               # seconds a device call of one request may take (504)
    shutdown_timeout = 10             # seconds SIGTERM may take to close everything
    log_file = "/var/log/pyburnerkit/service.log"   # reopened on SIGHUP (logrotate)
    log_level = "info"
    profile_db = "/var/lib/pyburnerkit/profiles.db"   # pyDE1's profile library

Binding anything but a loopback address needs a bearer token (``token``, ``token_file``,
``token_env``, or the environment variable ``PYBURNERKIT_HTTP_TOKEN``) or ``insecure = true``;
the token never appears in a log, a repr or an error.
"""

from __future__ import annotations

import ipaddress
import os
import sys
from dataclasses import dataclass, field
from typing import Any, Dict, List, Mapping, Optional, Tuple

from ..errors import ConfigurationError
from ..recorder.config import (RecorderConfig, _check_keys, _interpolate, parse_config,
                               read_env_file)
from ..recorder.secrets import split_secret_env

if sys.version_info >= (3, 11):
    import tomllib as _toml
else:  # pragma: no cover - exercised on 3.9/3.10
    try:
        import tomli as _toml  # type: ignore[no-redef,import-not-found,unused-ignore]
    except ImportError:  # pragma: no cover
        _toml = None  # type: ignore[assignment,unused-ignore]

__all__ = ["ServiceConfig", "HttpSettings", "MqttSettings", "ServiceSettings",
           "load_service_config", "parse_service_config", "parse_bind", "check_bind",
           "is_loopback", "TOKEN_ENV", "DEFAULT_PORT"]

#: the environment variable read for the bearer token when the config names none
TOKEN_ENV = "PYBURNERKIT_HTTP_TOKEN"
#: pyDE1's port: a pyDE1 client's default base URL works unchanged
DEFAULT_PORT = 1234

HTTP_KEYS = {"bind", "token", "token_file", "token_env", "insecure", "threads", "max_streams"}
MQTT_KEYS = {"host", "port", "topic_root", "username", "password", "tls", "ca_certs",
             "client_id"}
SERVICE_KEYS = {"request_timeout", "shutdown_timeout", "log_file", "log_level", "profile_db"}
LOG_LEVELS = ("debug", "info", "warning", "error")


@dataclass(frozen=True)
class HttpSettings:
    """``[http]``. ``token`` is kept out of ``repr()``."""

    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    token: Optional[str] = field(default=None, repr=False)
    insecure: bool = False
    threads: int = 16
    max_streams: int = 8

    @property
    def has_token(self) -> bool:
        return bool(self.token)


@dataclass(frozen=True)
class MqttSettings:
    """``[mqtt]``: the broker pyDE1's topics go to. ``password`` is kept out of ``repr()``."""

    host: str
    port: int = 1883
    topic_root: str = "pyDE1"
    username: Optional[str] = None
    password: Optional[str] = field(default=None, repr=False)
    tls: bool = False
    ca_certs: Optional[str] = None
    client_id: Optional[str] = None


@dataclass(frozen=True)
class ServiceSettings:
    """``[service]``."""

    request_timeout: float = 5.0
    shutdown_timeout: float = 10.0
    log_file: Optional[str] = None
    log_level: str = "info"
    #: the SQLite file of pyDE1's profile library (None: the library's default file in the
    #: working directory)
    profile_db: Optional[str] = None


@dataclass
class ServiceConfig:
    """A parsed service config: the recorder's part and the service's own sections. Its
    ``repr()`` shows no secret (the recorder part hides its own; token and MQTT password are
    not shown)."""

    recorder: RecorderConfig
    http: HttpSettings = field(default_factory=HttpSettings)
    mqtt: Optional[MqttSettings] = None
    service: ServiceSettings = field(default_factory=ServiceSettings)
    path: Optional[str] = None


def is_loopback(host: str) -> bool:
    """Whether ``host`` only reaches this machine (``127.0.0.0/8``, ``::1``, ``localhost``)."""
    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to anything


def parse_bind(text: Any, where: str = "bind", default_port: int = DEFAULT_PORT
               ) -> Tuple[str, int]:
    """``"host:port"`` (``"[::1]:1234"`` for IPv6, ``"host"`` alone takes ``default_port``;
    port 0 picks a free one).

    :raises ConfigurationError: not of that form, or a port outside 0..65535.
    """
    if not isinstance(text, str) or not text.strip():
        raise ConfigurationError(f"{where} must be 'HOST:PORT' (e.g. 127.0.0.1:1234), "
                                 f"got {text!r}")
    text = text.strip()
    if text.startswith("["):
        host, sep, rest = text[1:].partition("]")
        port_text = rest[1:] if rest.startswith(":") else ""
        if not sep or (rest and not rest.startswith(":")):
            raise ConfigurationError(f"{where}: {text!r} is not '[IPv6]:PORT'")
    elif text.count(":") == 1:
        host, _, port_text = text.partition(":")
    else:
        host, port_text = text, ""
    if not host:
        raise ConfigurationError(f"{where}: {text!r} names no host (e.g. 127.0.0.1:1234)")
    if port_text == "":
        return host, default_port
    try:
        port = int(port_text)
    except ValueError:
        raise ConfigurationError(f"{where}: port {port_text!r} is not a number") from None
    if not 0 <= port <= 65535:
        raise ConfigurationError(f"{where}: port {port} is out of range: the limit is "
                                 f"0..65535")
    return host, port


def check_bind(host: str, token: Optional[str], insecure: bool) -> None:
    """Refuse to serve a non-loopback address with no token unless ``insecure`` says so.

    :raises ConfigurationError: naming the address and the two ways out.
    """
    if is_loopback(host) or token or insecure:
        return
    raise ConfigurationError(
        f"binding {host} exposes the devices to the network: set a bearer token ([http] "
        f"token, token_file or token_env, or the environment variable {TOKEN_ENV}), or "
        f"insecure = true under [http] to serve it without one")


def _number(section: Mapping[str, Any], key: str, default: float, where: str, *,
            integer: bool = False, minimum: float = 0.0) -> Any:
    value = section.get(key, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= minimum \
            or (integer and not float(value).is_integer()):
        kind = "whole number" if integer else "number"
        raise ConfigurationError(f"{where}: {key} must be a {kind} above {minimum:g}, got "
                                 f"{value!r}")
    return int(value) if integer else float(value)


def _bool(section: Mapping[str, Any], key: str, where: str) -> bool:
    value = section.get(key, False)
    if not isinstance(value, bool):
        raise ConfigurationError(f"{where}: {key} must be true or false, got {value!r}")
    return value


def _read_token(path: str, where: str) -> str:
    try:
        with open(path, encoding="utf-8") as fh:
            token = fh.read().strip()
    except OSError as exc:
        raise ConfigurationError(f"{where}: token_file {path!r} cannot be read "
                                 f"({exc.strerror or type(exc).__name__})") from None
    if not token:
        raise ConfigurationError(f"{where}: token_file {path!r} is empty")
    return token


def _http(section: Mapping[str, Any], env: Mapping[str, str], base_dir: str,
          where: str) -> HttpSettings:
    _check_keys(section, HTTP_KEYS, where)
    host, port = parse_bind(section.get("bind", f"127.0.0.1:{DEFAULT_PORT}"),
                            f"{where} bind")
    given = [k for k in ("token", "token_file", "token_env") if k in section]
    if len(given) > 1:
        raise ConfigurationError(f"{where}: give one of token, token_file, token_env, not "
                                 f"{' and '.join(given)}")
    token: Optional[str] = None
    if "token" in section:
        token = section["token"]
        if not isinstance(token, str) or not token.strip():
            raise ConfigurationError(f"{where}: token must be a non-empty string")
        token = token.strip()
    elif "token_file" in section:
        path = str(section["token_file"])
        token = _read_token(path if os.path.isabs(path) else os.path.join(base_dir, path),
                            where)
    elif "token_env" in section:
        name = str(section["token_env"])
        token = env.get(name, "").strip() or None
        if token is None:
            raise ConfigurationError(f"{where}: token_env names {name}, which is not set "
                                     f"(set it, or put it in .env)")
    else:
        token = env.get(TOKEN_ENV, "").strip() or None
    insecure = _bool(section, "insecure", where)
    threads = _number(section, "threads", 16, where, integer=True)
    streams = _number(section, "max_streams", 8, where, integer=True)
    if streams >= threads:
        raise ConfigurationError(f"{where}: max_streams ({streams}) must be below threads "
                                 f"({threads}): each open event stream holds a thread")
    check_bind(host, token, insecure)
    return HttpSettings(host, port, token, insecure, threads, streams)


def _mqtt(section: Mapping[str, Any], base_dir: str, where: str) -> MqttSettings:
    _check_keys(section, MQTT_KEYS, where)
    host = section.get("host")
    if not isinstance(host, str) or not host:
        raise ConfigurationError(f"{where}: host must name the broker, e.g. "
                                 f"host = \"127.0.0.1\"")
    port = section.get("port", 1883)
    if isinstance(port, bool) or not isinstance(port, int) or not 0 < port <= 65535:
        raise ConfigurationError(f"{where}: port must be a whole number in 1..65535, got "
                                 f"{port!r}")
    root = section.get("topic_root", "pyDE1")
    if not isinstance(root, str) or not root or root.strip("/") != root \
            or any(c in root for c in "#+"):
        raise ConfigurationError(f"{where}: topic_root {root!r} must be a topic without "
                                 f"wildcards or leading/trailing '/'")
    ca_certs = section.get("ca_certs")
    if isinstance(ca_certs, str) and not os.path.isabs(ca_certs):
        ca_certs = os.path.join(base_dir, ca_certs)
    for key in ("username", "password", "client_id"):
        if key in section and not isinstance(section[key], str):
            raise ConfigurationError(f"{where}: {key} must be a string")
    return MqttSettings(host, port, root, section.get("username"), section.get("password"),
                        _bool(section, "tls", where), ca_certs, section.get("client_id"))


def _service(section: Mapping[str, Any], base_dir: str, where: str) -> ServiceSettings:
    _check_keys(section, SERVICE_KEYS, where)
    log_file = section.get("log_file")
    if log_file is not None:
        if not isinstance(log_file, str) or not log_file:
            raise ConfigurationError(f"{where}: log_file must be a path")
        if not os.path.isabs(log_file):
            log_file = os.path.join(base_dir, log_file)
    profile_db = section.get("profile_db")
    if profile_db is not None and (not isinstance(profile_db, str) or not profile_db):
        raise ConfigurationError(f"{where}: profile_db must be a path")
    if profile_db is not None and not os.path.isabs(profile_db):
        profile_db = os.path.join(base_dir, profile_db)  # as every path of the config
    level = str(section.get("log_level", "info")).lower()
    if level not in LOG_LEVELS:
        raise ConfigurationError(f"{where}: log_level {level!r} must be one of "
                                 f"{', '.join(LOG_LEVELS)}")
    return ServiceSettings(_number(section, "request_timeout", 5.0, where),
                           _number(section, "shutdown_timeout", 10.0, where),
                           log_file, level, profile_db)


def _environment(data: Mapping[str, Any], base_dir: str, where: str,
                 environ: Optional[Mapping[str, str]]) -> Dict[str, str]:
    """The variables ``${VAR}`` may name: ``.env`` (as the recorder finds it), then the
    environment, which wins."""
    env: Dict[str, str] = {}
    recorder = data.get("recorder") or {}
    env_file = recorder.get("env_file") if isinstance(recorder, dict) else None
    if env_file is None:
        candidate = os.path.join(base_dir, ".env")
        env_file = candidate if os.path.exists(candidate) else None
    elif not os.path.isabs(env_file):
        env_file = os.path.join(base_dir, env_file)
    if env_file is not None and os.path.exists(env_file):
        env.update(read_env_file(env_file))
    env.update(os.environ if environ is None else environ)
    return env


def parse_service_config(data: Mapping[str, Any], *, base_dir: str = ".",
                         path: Optional[str] = None,
                         environ: Optional[Mapping[str, str]] = None) -> ServiceConfig:
    """Parse a service config already read from TOML.

    :raises ConfigurationError: anything the recorder refuses in its sections, an unknown key,
        a bad value, or a non-loopback bind without a token (and without ``insecure``).
    """
    where = path or "config"
    own = {"http", "mqtt", "service"}
    for name in own:
        if name in data and not isinstance(data[name], dict):
            raise ConfigurationError(f"{where}: [{name}] must be a table")
    recorder = parse_config({k: v for k, v in data.items() if k not in own},
                            base_dir=base_dir, path=path, environ=environ)
    env = _environment(data, base_dir, where, environ)
    used: Dict[str, str] = {}
    sections = _interpolate({k: data[k] for k in own if k in data}, env, where, used)
    # the secrets of these sections are hidden wherever the recorder hides its own
    recorder.secrets = tuple(recorder.secrets) + split_secret_env(used)
    http = _http(sections.get("http", {}), env, base_dir, f"{where} [http]")
    mqtt = (_mqtt(sections["mqtt"], base_dir, f"{where} [mqtt]") if "mqtt" in sections
            else None)
    service = _service(sections.get("service", {}), base_dir, f"{where} [service]")
    secrets: List[str] = [s for s in (http.token, mqtt.password if mqtt else None) if s]
    recorder.secrets = tuple(recorder.secrets) + tuple(secrets)
    return ServiceConfig(recorder, http, mqtt, service, path)


def load_service_config(path: str, *, environ: Optional[Mapping[str, str]] = None
                        ) -> ServiceConfig:
    """Read a service config file (see the module docs).

    :raises ConfigurationError: unreadable TOML, or see :func:`parse_service_config`.
    """
    if _toml is None:  # pragma: no cover - Python < 3.11 without tomli
        raise ConfigurationError('reading TOML on Python < 3.11 needs tomli: pip install tomli')
    try:
        with open(path, "rb") as fh:
            data = _toml.load(fh)
    except FileNotFoundError:
        raise ConfigurationError(f"config file {path!r} not found") from None
    except _toml.TOMLDecodeError as exc:
        raise ConfigurationError(f"{path}: invalid TOML: {exc}") from None
    return parse_service_config(data, base_dir=os.path.dirname(os.path.abspath(path)),
                                path=path, environ=environ)
