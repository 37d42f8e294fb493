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
errors, same write opt-in). Only the names pyburnerkit had are here so far; the rest of
aiovelib's client API (``Monitor.create``, ``ServiceHandler``...) is not provided yet.
"""

from __future__ import annotations

from typing import Any, Dict, Iterable, Tuple, Union

from .._core.timeouts import TimeoutArg
from ..types import DEFAULT
from . import client
from .models import ItemValue, Setting

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

    def fetch_items(self, service: str, timeout: TimeoutArg = DEFAULT) -> Dict[str, ItemValue]:
        """The ``fetch_`` spelling of :meth:`~pyburnerkit.victron.VictronMonitor.read_items`
        (GetItems on the bus, blocking until the service answered)."""
        return self.read_items(service, timeout)
