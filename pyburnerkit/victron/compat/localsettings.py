"""aiovelib's ``aiovelib.localsettings`` on the blocking Victron monitor.

::

    # from aiovelib.client import Monitor, ServiceHandler
    # from aiovelib.localsettings import SettingsService, Setting, SETTINGS_SERVICE
    from pyburnerkit.victron.compat.client import Monitor, ServiceHandler
    from pyburnerkit.victron.compat.localsettings import (SETTINGS_SERVICE, Setting,
                                                          SettingsService)

    class MySettings(SettingsService, ServiceHandler):
        pass

    monitor = Monitor.create("session", allow_writes=True)     # AddSettings is a write
    settings = monitor.wait_for_service(SETTINGS_SERVICE)
    settings.add_settings(Setting("/Settings/AioVelib/OptionA", 3, 0, 5, alias="a"),
                          Setting("/Settings/AioVelib/OptionB", "x"))
    settings.get_value(settings.alias("a"))

``add_settings`` blocks until localsettings answered; it checks every entry (types, a
default inside its limits) before anything is sent and needs ``allow_writes=True``.
"""

from __future__ import annotations

from typing import Any, Dict, Optional, Set

from ..._core.timeouts import TimeoutArg
from ...types import DEFAULT
from .. import codec
from ..models import Setting as _Setting
from ..models import SettingsError
from .client import DbusException, Monitor, Service

__all__ = ["SETTINGS_INTERFACE", "SETTINGS_PATH", "SETTINGS_SERVICE", "Setting",
           "SettingException", "SettingsService"]

SETTINGS_SERVICE = codec.SETTINGS_SERVICE
SETTINGS_INTERFACE = codec.SETTINGS_IFACE
SETTINGS_PATH = "/Settings"


class SettingException(SettingsError, DbusException):
    """localsettings refused a setting: ``.path`` is the first refused path, ``.errors``
    maps every refused path to its AddSettings error code."""

    def __init__(self, message: str, *, path: Optional[str] = None, **kw: Any) -> None:
        super().__init__(message, **kw)
        self.path = path


class Setting(_Setting):
    """aiovelib's ``Setting(path, default, _min=None, _max=None, silent=False, alias=None)``,
    a :class:`pyburnerkit.victron.Setting` (so the native ``settings.add`` takes it too).
    ``unit`` (keyword only) names the unit in out-of-range errors."""

    def __init__(self, path: str, default: Any, _min: Optional[float] = None,
                 _max: Optional[float] = None, silent: bool = False,
                 alias: Optional[str] = None, *, unit: str = "") -> None:
        super().__init__(path, default, _min, _max, bool(silent), unit, alias)


class SettingsService(Service):
    """The handler of ``com.victronenergy.settings``: tracks only the settings it added.
    Mix in :class:`~pyburnerkit.victron.compat.client.ServiceHandler` to register it."""

    servicetype = SETTINGS_SERVICE
    paths: Optional[Set[str]] = set()

    def __init__(self, monitor: Monitor, name: str, owner: str) -> None:
        super().__init__(monitor, name, owner)
        self.aliases: Dict[str, str] = {}

    def add_settings(self, *settings: _Setting, timeout: TimeoutArg = DEFAULT) -> None:
        """One AddSettings call for all entries, blocking until localsettings answered; the
        accepted settings are tracked (their changes reach ``itemsChanged``).
        If this call times out, localsettings may still add them later; it is never retried.

        :raises SettingException: for the first refused entry (``.path``), after the
            accepted ones were recorded.
        :raises WriteNotAllowedError: the monitor was not built with ``allow_writes=True``.
        :raises ConfigurationError: a malformed entry (nothing is sent).
        """
        native = self.monitor.native.settings
        try:
            accepted = native.add(list(settings), timeout)
        except SettingsError as exc:
            refused = exc.errors
            self._record([s for s in settings if s.path not in refused])
            first = next((s.path for s in settings if s.path in refused), None)
            raise SettingException(str(exc), path=first, errors=refused, code=exc.code,
                                   device="victron", endpoint=self.monitor.native.endpoint) \
                from exc
        self._record([s for s in settings if s.path in accepted])

    def _record(self, settings: Any) -> None:
        for setting in settings:
            if self.paths is not None:
                self.paths.add(setting.path)
            if setting.alias is not None:
                self.aliases[setting.alias] = setting.path

    def alias(self, a: str) -> Optional[str]:
        """The path of the setting added with alias ``a`` (None if unknown)."""
        return self.aliases.get(a)
