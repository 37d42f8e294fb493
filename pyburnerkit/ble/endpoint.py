"""The endpoint strings every BLE client takes, parsed by the one shared parser, and the link
(:func:`ble_link`) each resolves to.

A BLE client's first argument is the device's Bluetooth address (``"00:A0:50:DE:01:01"``,
any case) or ``"sim://[NAME][?key=value&...]"`` for the family's simulator run in process
(``NAME``, when given, must be one the family answers to; the options go to the simulator).
Both are parsed by :func:`pyburnerkit._core.endpoint.parse_endpoint` with the ``ble`` scheme:
an address has more than one colon, so it is a host, never ``host:port``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Mapping, Optional, Type

from .._core.endpoint import Endpoint, parse_endpoint
from ..errors import ConfigurationError
from .rig import SimRig
from .transport import PygattTransport, SimTransport, Transport

__all__ = ["SCHEME", "BleLink", "ble_link", "parse_ble_endpoint"]

SCHEME = "ble"

_ADDRESS = re.compile(r"^[0-9A-Fa-f]{2}(:[0-9A-Fa-f]{2}){5}$")


def parse_ble_endpoint(text: object, *, what: str, sim_names: Iterable[str] = ()) -> Endpoint:
    """Parse a BLE client's endpoint. For an address, ``host`` is it in upper case.

    :param what: the device, for error messages (``"DE1"``).
    :param sim_names: the names ``sim://NAME`` may give (besides none at all).
    :raises ConfigurationError: not a Bluetooth address nor a ``sim://`` URL, an unknown
        simulator name, or a malformed query; the message names the string and the forms.
    """
    forms = "a Bluetooth address (AA:BB:CC:DD:EE:FF) or sim://[?options]"
    if isinstance(text, str) and text.strip().lower().startswith("sim://"):
        where = parse_endpoint(text, scheme=SCHEME, what=what)  # its query errors say enough
        names = list(sim_names)
        if where.name and where.name.lower() not in names:
            raise ConfigurationError(
                f"{what} endpoint {text!r} names an unknown simulator {where.name!r}; expected "
                f"sim://{'' if not names else ' or ' + ', '.join('sim://' + n for n in names)}")
        if where.path not in ("", "/"):
            raise ConfigurationError(f"{what} endpoint {text!r} has a path; expected {forms}")
        return where
    try:
        where = parse_endpoint(text, scheme=SCHEME, what=what)
    except ConfigurationError:
        raise ConfigurationError(f"{what} endpoint {text!r} is not {forms}") from None
    if not _ADDRESS.match(where.host) or where.scheme != SCHEME:
        raise ConfigurationError(f"{what} endpoint {text!r} is not {forms}")
    return Endpoint(where.text, SCHEME, host=where.host.upper())


@dataclass(frozen=True)
class BleLink:
    """What a BLE client connects through, as :func:`ble_link` resolved it from its endpoint.

    ``address`` is the device's address (the simulated device's for ``sim://``), ``label`` the
    client's endpoint for thread names and errors (the address, or ``sim``/``sim:NAME``),
    ``transport`` the GATT transport, ``sim_options`` the simulator's keywords (empty unless
    ``sim://``).
    """

    address: str
    label: str
    transport: Transport
    sim_options: Mapping[str, Any]


def ble_link(where: Endpoint, *, simulator: Type[SimRig], default_address: str,
             own_simulator: Callable[[Callable[[], SimRig]], SimRig],
             transport: Optional[Transport] = None, **pygatt_options: Any) -> BleLink:
    """The link a BLE client uses for a parsed endpoint; does no I/O.

    For ``sim://`` an in-process :class:`~pyburnerkit.ble.transport.SimTransport` whose
    simulator (``simulator`` built from the endpoint's options, hosting its device at
    ``address`` or ``default_address``) is made by ``own_simulator`` on the client's I/O thread
    when it first connects, and closed with the client; for an address the given
    ``transport`` (the expert hook) or pygatt with ``pygatt_options``.

    :raises ConfigurationError: an unknown ``sim://`` option or a value out of range, a
        ``transport`` given with ``sim://``, or a bad pygatt option.
    """
    if not where.is_sim:
        return BleLink(where.host, where.host,
                       transport or PygattTransport(**pygatt_options), {})
    if transport is not None:
        raise ConfigurationError(f"transport= has no meaning with {where.text!r}: a sim:// "
                                 f"client makes its own link to its simulator")
    options = simulator.parse_options(where.options)
    address = str(options.get("address", default_address)).upper()

    def start() -> SimRig:
        return simulator(**options).start(listen=False)

    link = SimTransport(host_factory=lambda: own_simulator(start).host)
    return BleLink(address, f"sim:{where.name}" if where.name else "sim", link, options)
