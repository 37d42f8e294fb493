"""pyBurner-compatible names: port a pyBurner script by changing one import.

::

    # from pyburner import Client
    from pyburnerkit.afterburner.compat import Client

    client = Client("192.168.4.1", allow_writes=True)   # pyBurner: Client("192.168.4.1")
    client.init_websocket()                             # returns once the whole state is in
    print(client.fetch_data("TempCurrent"))
    client.set_tempdesired(21)                          # returns once the heater shows 21
    client.close_websocket()

:class:`Client` is an :class:`~pyburnerkit.afterburner.AfterburnerClient` (every native method
works on it too) with pyBurner 1.0.2's names added: ``init_websocket``, ``close_websocket``,
``refresh``, ``fetch_data``, ``heater_data``, ``afterburner_ip`` and the ``set_*`` setters.
They block instead of being coroutines, so no event loop is needed. Code that keeps pyBurner's
``async``/``await`` form uses ``pyburnerkit.afterburner.aiocompat`` instead
(``import pyburnerkit.afterburner.aiocompat as pyburner``).

``heater_data`` is pyBurner's dict, kept current: one ``dict`` object per client that every
pushed frame updates in place (keys are merged, never deleted, with the JSON types the
controller sent), so a reference kept from an earlier read shows the latest values too.

Differences from pyBurner, all deliberate:

* **Writes need** ``allow_writes=True`` on the constructor (pyBurner wrote without asking).
  Without it every setter raises :class:`~pyburnerkit.errors.WriteNotAllowedError` naming that
  keyword and sends nothing - except ``set_runmode(0)``, a stop, which is always allowed.
* Setters return ``True`` once the controller shows the value and raise otherwise
  (pyBurner returned ``None`` on a mismatch); values the firmware would ignore or truncate
  (``set_froston(3.5)``) raise :class:`~pyburnerkit.errors.ConfigurationError` before sending.
* ``fetch_data`` returns the value with the type the controller sent (pyBurner: ``str(value)``).
* The default port is 81, where the firmware serves its WebSocket (pyBurner's ``ws://<ip>``
  meant port 80).
"""

from __future__ import annotations

import threading
from typing import Any, Dict

from .._core.timeouts import TimeoutArg
from ..errors import ConfigurationError
from ..types import DEFAULT
from .client import AfterburnerClient
from .models import HeaterStatus, StatusChanged, SystemInfoChanged

__all__ = ["Client"]


class Client(AfterburnerClient):
    """pyBurner's ``Client``, blocking and thread-safe.

    :param afterburner_ip: as for pyBurner (``"192.168.4.1"``, ``"host:port"``) or any
        endpoint :class:`~pyburnerkit.afterburner.AfterburnerClient` takes (``"sim://"``).
    :param options: :class:`~pyburnerkit.afterburner.AfterburnerClient`'s keywords;
        ``allow_writes=True`` is the one pyBurner code needs for its setters.
    """

    def __init__(self, afterburner_ip: str = "192.168.4.1", **options: Any) -> None:
        super().__init__(afterburner_ip, **options)
        #: the endpoint as given (pyBurner's dataclass field)
        self.afterburner_ip = afterburner_ip
        self._heater_data: Dict[str, Any] = {}
        self._heater_data_lock = threading.Lock()
        # Pushed frames reach the dict from the events thread; every read through the
        # property also merges the cache first, so a value a setter just confirmed is there
        # even before its event was delivered.
        self.subscribe(self._merge_heater_data, StatusChanged, SystemInfoChanged)

    def _merge_heater_data(self, _event: Any = None) -> None:
        fresh = dict(self.status.raw)
        fresh.update(self._cache.value("system_keys", {}))
        with self._heater_data_lock:
            data = self._heater_data
            for key, value in fresh.items():
                # Only changed keys are written: a thread iterating the dict meanwhile sees
                # values change in place but never a new size, unless a key is new.
                if key not in data or data[key] != value or type(data[key]) is not type(value):
                    data[key] = value

    # ------------------------------------------------------------------ link and reads
    def init_websocket(self) -> bool:
        """pyBurner's connect: blocks until the complete state has arrived.

        :raises ConnectTimeoutError: no complete state within ``connect_timeout``.
        :raises DeviceConnectionError: the link could not be opened.
        """
        self.connect()
        return True

    def close_websocket(self) -> bool:
        """pyBurner's close (:meth:`~pyburnerkit.afterburner.AfterburnerClient.close`)."""
        self.close()
        return True

    def refresh(self, timeout: TimeoutArg = DEFAULT) -> HeaterStatus:
        """pyBurner's refresh: :meth:`~pyburnerkit.afterburner.AfterburnerClient.read_status` (blocks until the full dump is in).

        :raises DeviceTimeoutError: no dump within ``timeout`` seconds.
        """
        return self.read_status(timeout)

    def fetch_data(self, key: str, refresh: bool = False,
                   timeout: TimeoutArg = DEFAULT) -> Any:
        """pyBurner's accessor: :meth:`~pyburnerkit.afterburner.AfterburnerClient.reported_value` of a firmware key (None if unseen),
        after a :meth:`~pyburnerkit.afterburner.AfterburnerClient.read_status` when ``refresh`` is set.

        :raises DeviceTimeoutError: ``refresh`` and no dump within ``timeout`` seconds.
        """
        if refresh:
            self.read_status(timeout)
        return self.reported_value(key)

    @property
    def heater_data(self) -> Dict[str, Any]:
        """pyBurner's state dict: every key as last reported, kept current (never blocks).

        The same ``dict`` every time, updated in place as frames arrive (on the events
        thread) and on every read of this property, merging keys and never deleting any, as
        pyBurner's ``heater_data.update(frame)`` did. Writing into it changes nothing on the
        heater; a written key is overwritten by the controller's value on the next update.
        Iterate over ``dict(client.heater_data)`` when another thread may be adding keys
        (a key the controller had not sent before).
        """
        self._merge_heater_data()
        return self._heater_data

    # ------------------------------------------------------------------ setters
    def set_tempdesired(self, temperature: int) -> bool:
        """pyBurner's :meth:`~pyburnerkit.afterburner.AfterburnerClient.set_desired_temperature`. If this call times out, the device may
        still apply the write later; it is never retried automatically.

        :raises WriteNotAllowedError: without ``allow_writes=True`` (nothing is sent).
        """
        self._require_writes("set_tempdesired()")
        self.set_desired_temperature(temperature)
        return True

    def set_runmode(self, mode: int) -> bool:
        """pyBurner's :meth:`~pyburnerkit.afterburner.AfterburnerClient.run` (1 start, 0 stop). If this call times out, the device may
        still apply the write later; it is never retried automatically.

        Starting (1) needs ``allow_writes=True``. Stopping (0) is always allowed, without
        ``allow_writes``, like :meth:`~pyburnerkit.afterburner.AfterburnerClient.stop`: it makes the heater safe.

        :raises WriteNotAllowedError: 1 without ``allow_writes`` (nothing is sent).
        :raises ConfigurationError: not 0 or 1.
        """
        if mode not in (0, 1) or isinstance(mode, bool):
            raise ConfigurationError(f"run mode must be 0 or 1, got {mode!r}")
        if mode:
            self._require_writes("set_runmode(1)")
        self.run(bool(mode))
        return True

    def set_fanmin(self, rpm: int) -> bool:
        """pyBurner's fan minimum. If this call times out, the device may still apply the
        write later; it is never retried automatically.

        :raises WriteNotAllowedError: without ``allow_writes=True`` (nothing is sent).
        """
        self._require_writes("set_fanmin()")
        self.set_fan_limits(min_rpm=rpm)
        return True

    def set_fanmax(self, rpm: int) -> bool:
        """pyBurner's fan maximum. If this call times out, the device may still apply the
        write later; it is never retried automatically.

        :raises WriteNotAllowedError: without ``allow_writes=True`` (nothing is sent).
        """
        self._require_writes("set_fanmax()")
        self.set_fan_limits(max_rpm=rpm)
        return True

    def set_pumpmin(self, hz: float) -> bool:
        """pyBurner's pump minimum. If this call times out, the device may still apply the
        write later; it is never retried automatically.

        :raises WriteNotAllowedError: without ``allow_writes=True`` (nothing is sent).
        """
        self._require_writes("set_pumpmin()")
        self.set_pump_limits(min_hz=hz)
        return True

    def set_pumpmax(self, hz: float) -> bool:
        """pyBurner's pump maximum. If this call times out, the device may still apply the
        write later; it is never retried automatically.

        :raises WriteNotAllowedError: without ``allow_writes=True`` (nothing is sent).
        """
        self._require_writes("set_pumpmax()")
        self.set_pump_limits(max_hz=hz)
        return True

    def set_pumpcal(self, ml: float) -> bool:
        """pyBurner's pump calibration. If this call times out, the device may still apply
        the write later; it is never retried automatically.

        :raises WriteNotAllowedError: without ``allow_writes=True`` (nothing is sent).
        """
        self._require_writes("set_pumpcal()")
        self.set_pump_calibration(ml)
        return True

    def set_pumpreset(self) -> bool:
        """pyBurner's fuel-gauge reset. If this call times out, the device may still apply the
        write later; it is never retried automatically.

        :raises WriteNotAllowedError: without ``allow_writes=True`` (nothing is sent).
        """
        self._require_writes("set_pumpreset()")
        self.reset_fuel_gauge()
        return True

    def set_lowvoltcutout(self, volts: float) -> bool:
        """pyBurner's low-voltage cut-out. If this call times out, the device may still apply
        the write later; it is never retried automatically.

        :raises WriteNotAllowedError: without ``allow_writes=True`` (nothing is sent).
        """
        self._require_writes("set_lowvoltcutout()")
        self.set_low_voltage_cutout(volts)
        return True

    def set_froston(self, temperature: int) -> bool:
        """pyBurner's frost start temperature. If this call times out, the device may still
        apply the write later; it is never retried automatically.

        :raises WriteNotAllowedError: without ``allow_writes=True`` (nothing is sent).
        """
        self._require_writes("set_froston()")
        self.set(frost_on=temperature)
        return True

    def set_frostrise(self, temperature: int) -> bool:
        """pyBurner's frost rise. If this call times out, the device may still apply the write
        later; it is never retried automatically.

        :raises WriteNotAllowedError: without ``allow_writes=True`` (nothing is sent).
        """
        self._require_writes("set_frostrise()")
        self.set(frost_rise=temperature)
        return True
