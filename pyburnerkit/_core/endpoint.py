"""One endpoint convention for every family: the string a client is opened with.

Every client's first argument is an endpoint string, parsed here and nowhere else:

* ``"sim://"`` or ``"sim://NAME?key=value&..."``: the family's built-in simulator, run in
  process by the client (the options go to the simulator);
* ``"host"`` or ``"host:port"`` (``"[v6addr]:port"`` for IPv6): the family's network scheme on
  its default port;
* ``"SCHEME://host[:port][/path][?query]"`` for a scheme the family accepts (``ws://``,
  ``modbus://``, ``cti://``...);
* families whose devices are not on IP (BLE, D-Bus) accept their own address forms: a string
  with more than one colon and no brackets is an address, not ``host:port``
  (``"D9:B2:48:AA:BB:CC"``), and with ``opaque=True`` a ``transport:key=value`` string is
  passed through whole (a D-Bus address such as ``"unix:path=/run/dbus/system_bus_socket"``).

Parsing raises :class:`~pyburnerkit.errors.ConfigurationError` naming the string and the
forms the family accepts; it never touches the network.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Iterable, Mapping, Optional
from urllib.parse import parse_qsl, urlsplit

from ..errors import ConfigurationError

__all__ = ["Endpoint", "parse_endpoint", "sim_options", "flag", "SIM"]

#: The scheme of the in-process simulator.
SIM = "sim"

# ``transport:key=value[,key=value]`` (D-Bus addresses); never host:port, whose port is digits
_OPAQUE_ADDRESS = re.compile(r"^[A-Za-z][A-Za-z0-9-]*:[A-Za-z_][A-Za-z0-9_-]*=")


@dataclass(frozen=True)
class Endpoint:
    """A parsed endpoint. ``port`` is the family's default when the string named none."""

    text: str
    scheme: str
    host: str = ""
    port: Optional[int] = None
    path: str = ""
    options: Dict[str, str] = field(default_factory=dict)

    @property
    def is_sim(self) -> bool:
        """Whether this names the in-process simulator (``sim://...``)."""
        return self.scheme == SIM

    @property
    def name(self) -> str:
        """For ``sim://NAME``, the ``NAME`` (empty when none was given)."""
        return self.host if self.is_sim else ""

    @property
    def netloc(self) -> str:
        """``host:port`` (``[v6]:port`` for IPv6), or just the host when there is no port."""
        host = f"[{self.host}]" if ":" in self.host and self.port is not None else self.host
        return host if self.port is None else f"{host}:{self.port}"

    def __str__(self) -> str:
        return self.text


def parse_endpoint(text: object, *, scheme: str, default_port: Optional[int] = None,
                   schemes: Iterable[str] = (), opaque: bool = False,
                   what: str = "device") -> Endpoint:
    """Parse an endpoint string (see the module docstring for the forms).

    :param scheme: the family's network scheme, given to bare ``host[:port]`` strings.
    :param default_port: used when the string names no port.
    :param schemes: further URL schemes the family accepts besides ``scheme`` and ``sim``.
    :param opaque: accept ``transport:key=value`` addresses whole (D-Bus).
    :param what: the device, for error messages (``"Mate3"``).
    :raises ConfigurationError: not a string, empty, an unknown scheme, a bad port or query.
    """
    accepted = [scheme, *[s for s in schemes if s != scheme], SIM]
    forms = f"host, host:port, {', '.join(s + '://' for s in accepted)}"
    if not isinstance(text, str) or not text.strip():
        raise ConfigurationError(f"expected an endpoint for the {what} ({forms}), got {text!r}")
    raw = text.strip()
    if opaque and _OPAQUE_ADDRESS.match(raw):
        return Endpoint(raw, scheme, host=raw)
    if "://" not in raw:
        if raw.count(":") > 1 and not raw.startswith("["):
            # a MAC address or a bare IPv6 address: no port can be told apart
            return Endpoint(raw, scheme, host=raw, port=default_port)
        raw_url = f"{scheme}://{raw}"
    else:
        raw_url = raw
    try:
        parts = urlsplit(raw_url)
        port = parts.port
    except ValueError as exc:
        raise ConfigurationError(f"bad {what} endpoint {text!r}: {exc} (expected {forms})") \
            from None
    if "@" in parts.netloc:
        # never echo the text: what precedes "@" is a user name and perhaps a password
        raise ConfigurationError(
            f"{what} endpoint must not carry credentials (user:password@); pass them as the "
            f"client's own arguments (username=, password=, or an env file)")
    found = parts.scheme.lower()
    if found not in accepted:
        raise ConfigurationError(
            f"unsupported scheme {parts.scheme!r} in {what} endpoint {text!r}; expected {forms}")
    try:
        options = dict(parse_qsl(parts.query, keep_blank_values=True, strict_parsing=True)) \
            if parts.query else {}
    except ValueError:
        raise ConfigurationError(f"bad query {parts.query!r} in {what} endpoint {text!r}: "
                                 f"expected key=value&key=value") from None
    host = parts.hostname or ""
    if found != SIM and not host:
        raise ConfigurationError(f"{what} endpoint {text!r} names no host (expected {forms})")
    if port is not None and not 0 < port < 65536:
        raise ConfigurationError(f"{what} endpoint {text!r}: port {port} is not in 1..65535")
    return Endpoint(text.strip(), found, host=host,
                    port=port if port is not None else (None if found == SIM else default_port),
                    path=parts.path, options=options)


def flag(text: str) -> bool:
    """A ``sim://`` on/off option: ``1/true/yes/on`` or a bare ``?name`` is on,
    ``0/false/no/off`` is off; anything else raises ``ValueError``."""
    lowered = text.strip().lower()
    if lowered in ("", "1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ValueError(text)


def sim_options(options: Mapping[str, str], kinds: Mapping[str, Callable[[str], Any]], *,
                aliases: Optional[Mapping[str, str]] = None,
                limits: Optional[Mapping[str, Callable[[Any], Any]]] = None,
                what: str = "sim://") -> Dict[str, Any]:
    """Turn the query of a ``sim://`` endpoint into simulator constructor keywords.

    :param kinds: option name -> converter from its text (``float``, ``int``, :func:`flag`...).
    :param aliases: other spellings of an option name (``ambient`` for ``ambient_c``).
    :param limits: option name -> check of the converted value, returning it (or raising
        ``ConfigurationError``); run here so that a bad endpoint is refused when the client is
        made, not later on its I/O thread.
    :raises ConfigurationError: an unknown option (the message lists the known ones) or a value
        its converter refuses.
    """
    kwargs: Dict[str, Any] = {}
    for key, text in options.items():
        name = (aliases or {}).get(key, key)
        convert = kinds.get(name)
        if convert is None:
            raise ConfigurationError(f"unknown {what} option {key!r}; known: "
                                     f"{', '.join(sorted(kinds))}")
        try:
            value = convert(text)
        except ValueError:
            raise ConfigurationError(f"{what} option {key}={text!r} is not valid") from None
        check = (limits or {}).get(name)
        kwargs[name] = check(value) if check is not None else value
    return kwargs
