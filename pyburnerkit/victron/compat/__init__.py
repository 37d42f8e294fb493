"""aiovelib's method names on the blocking Victron clients.

The native classes use the verbs every pyburnerkit family uses (``read_*`` asks the bus,
``set_*`` changes it). Code written against the names aiovelib uses (``fetch_value``,
``add_settings``), including code written for earlier pyburnerkit releases, which had them on
the native classes, keeps working by changing one import::

    # from pyburnerkit.victron import VictronMonitor
    from pyburnerkit.victron.compat import VictronMonitor

    with VictronMonitor("system") as mon:
        mon.fetch_value("com.victronenergy.battery.ttyO1", "/Soc")
        mon.settings.add_settings([Setting("/Settings/MyDriver/Limit", 10, 0, 50)])

Every name here maps onto one native method and behaves exactly like it (same blocking, same
errors, same write opt-in).

aiovelib's own classes live in submodules named like aiovelib's, so a port changes only the
package in its imports (and drops ``await``; see ``docs/migrating/aiovelib.rst``):

========================================  =================================================
aiovelib                                  pyburnerkit
========================================  =================================================
``aiovelib.service`` (publish)            ``pyburnerkit.victron.compat.service``
``aiovelib.client`` (monitor)             ``pyburnerkit.victron.compat.client``
``aiovelib.localsettings``                ``pyburnerkit.victron.compat.localsettings``
========================================  =================================================
"""

from __future__ import annotations

from typing import Any, Dict, Iterable, List, Tuple, Union

from ..._core.timeouts import TimeoutArg
from ...types import DEFAULT
from .. import client, codec
from ..models import ItemValue, Setting

__all__ = ["VictronMonitor", "VictronSettings"]


class VictronSettings(client.VictronSettings):
    """:class:`pyburnerkit.victron.VictronSettings` with aiovelib's ``add_settings``."""

    def add_settings(self, settings: Iterable[Union[Setting, Tuple[Any, ...]]],
                     timeout: TimeoutArg = DEFAULT) -> Dict[str, Any]:
        """aiovelib's name for :meth:`~pyburnerkit.victron.VictronSettings.add`: one
        AddSettings call, blocking until localsettings answered; ``{path: current value}``.
        If this call times out, the device may still apply the write later; it is never
        retried automatically.

        :raises WriteNotAllowedError: the monitor was not opened with ``allow_writes=True``.
        :raises ConfigurationError: a malformed entry or a default outside its limits.
        :raises SettingsError: for refused entries, naming each path and error code.
        """
        return self.add(settings, timeout)


class VictronMonitor(client.VictronMonitor):
    """:class:`pyburnerkit.victron.VictronMonitor` with aiovelib's ``fetch_*`` names, and
    a ``settings`` helper that also has ``add_settings``. Constructed exactly like the
    native monitor."""

    settings: VictronSettings

    def __init__(self, *args: Any, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.settings = VictronSettings(self)

    def fetch_value(self, service: str, path: str, timeout: TimeoutArg = DEFAULT) -> Any:
        """aiovelib's name for :meth:`~pyburnerkit.victron.VictronMonitor.read_value`
        (GetValue on the bus, blocking until the service answered)."""
        return self.read_value(service, path, timeout)

    def fetch_text(self, service: str, path: str, timeout: TimeoutArg = DEFAULT) -> Any:
        """The ``fetch_`` spelling of :meth:`~pyburnerkit.victron.VictronMonitor.read_text`
        (GetText on the bus, blocking until the service answered)."""
        return self.read_text(service, path, timeout)

    def fetch_min(self, service: str, path: str, timeout: TimeoutArg = DEFAULT) -> Any:
        """aiovelib's name for :meth:`~pyburnerkit.victron.VictronMonitor.read_min` (GetMin
        on the bus, blocking until the service answered)."""
        return self.read_min(service, path, timeout)

    def fetch_max(self, service: str, path: str, timeout: TimeoutArg = DEFAULT) -> Any:
        """aiovelib's name for :meth:`~pyburnerkit.victron.VictronMonitor.read_max` (GetMax
        on the bus, blocking until the service answered)."""
        return self.read_max(service, path, timeout)

    def dbus_call(self, name: str, path: str, member: str, signature: str = "",
                  *params: Any, interface: str = codec.BUSITEM,
                  timeout: TimeoutArg = DEFAULT) -> List[Any]:
        """aiovelib's name for :meth:`~pyburnerkit.victron.VictronMonitor.call_method`
        (plain values back; the same write opt-in for methods not known to only read)."""
        return self.call_method(name, path, member, signature, *params, interface=interface,
                                timeout=timeout)

    def fetch_items(self, service: str, timeout: TimeoutArg = DEFAULT) -> Dict[str, ItemValue]:
        """The ``fetch_`` spelling of :meth:`~pyburnerkit.victron.VictronMonitor.read_items`
        (GetItems on the bus, blocking until the service answered)."""
        return self.read_items(service, timeout)
