"""pyBurner's ``async`` API on the blocking client: keep ``await`` code, change one import.

::

    # import pyburner
    import pyburnerkit.afterburner.aiocompat as pyburner

    heater = pyburner.Client("192.168.4.1")          # writes: Client(..., allow_writes=True)

    async def main():
        asyncio.create_task(heater.init_websocket())
        await asyncio.sleep(1.5)
        print(await heater.fetch_data("TempCurrent"))
        await heater.close_websocket()

Each coroutine runs the matching blocking call of :class:`pyburnerkit.afterburner.compat.Client`
in the running loop's default executor, so the event loop never blocks and the I/O still runs
on the client's own threads. Everything :mod:`~pyburnerkit.afterburner.compat` says about
differences from pyBurner holds here too (writes need ``allow_writes=True``, setters raise
instead of returning None, values keep their JSON types).

One more difference, deliberate: a read awaits a connect that is still under way (pyBurner's
README sleeps 1.5 s and hopes the connection is up by then; here the sleep is harmless but no
longer needed). If that connect failed, the read answers from the (empty) state, as pyBurner
did, and ``init_websocket`` raised the reason.
"""

from __future__ import annotations

import asyncio
import functools
from typing import Any, Callable, Dict, Optional

from .compat import Client as BlockingClient

__all__ = ["Client"]


class Client:
    """pyBurner's asyncio ``Client``: the same names, as coroutines.

    :param afterburner_ip: ``"192.168.4.1"``, ``"host:port"`` or ``"sim://"``.
    :param options: :class:`~pyburnerkit.afterburner.AfterburnerClient`'s keywords
        (``allow_writes=True`` for the setters, ``timeout``...).

    Constructing does no I/O. ``blocking`` is the underlying
    :class:`pyburnerkit.afterburner.compat.Client` (thread-safe; its native methods work too).
    """

    def __init__(self, afterburner_ip: str = "192.168.4.1", **options: Any) -> None:
        self.blocking = BlockingClient(afterburner_ip, **options)
        self.afterburner_ip = afterburner_ip
        self._connecting: Optional["asyncio.Future[Any]"] = None

    def __repr__(self) -> str:
        return f"<aiocompat.Client {self.blocking!r}>"

    @property
    def heater_data(self) -> Dict[str, Any]:
        """pyBurner's dict, kept current (see :attr:`pyburnerkit.afterburner.compat.Client.heater_data`)."""
        return self.blocking.heater_data

    async def _run(self, call: Callable[..., Any], *args: Any) -> Any:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(None, functools.partial(call, *args))

    async def _after_connect(self) -> None:
        connecting = self._connecting
        if connecting is not None and not connecting.done():
            await asyncio.wait([connecting])

    async def init_websocket(self) -> bool:
        """Connect; returns True once the complete state has arrived.

        :raises ConnectTimeoutError: no complete state within ``connect_timeout``.
        :raises DeviceConnectionError: the link could not be opened.
        """
        loop = asyncio.get_running_loop()
        self._connecting = loop.run_in_executor(None, self.blocking.init_websocket)
        result: bool = await self._connecting
        return result

    async def close_websocket(self) -> bool:
        """Close the link (bounded) and return True."""
        await self._after_connect()
        result: bool = await self._run(self.blocking.close_websocket)
        return result

    async def refresh(self) -> Any:
        """Ask for a full dump and return once it is in (the new status)."""
        await self._after_connect()
        return await self._run(self.blocking.refresh)

    async def fetch_data(self, request: str, refresh: bool = False) -> Any:
        """The value of firmware key ``request`` (None if never reported)."""
        await self._after_connect()
        return await self._run(self.blocking.fetch_data, request, refresh)

    async def set_tempdesired(self, temperature: int) -> bool:
        await self._after_connect()
        result: bool = await self._run(self.blocking.set_tempdesired, temperature)
        return result

    async def set_runmode(self, runmode: int) -> bool:
        await self._after_connect()
        result: bool = await self._run(self.blocking.set_runmode, runmode)
        return result

    async def set_fanmin(self, fan_min: int) -> bool:
        await self._after_connect()
        result: bool = await self._run(self.blocking.set_fanmin, fan_min)
        return result

    async def set_fanmax(self, fan_max: int) -> bool:
        await self._after_connect()
        result: bool = await self._run(self.blocking.set_fanmax, fan_max)
        return result

    async def set_pumpreset(self) -> bool:
        await self._after_connect()
        result: bool = await self._run(self.blocking.set_pumpreset)
        return result

    async def set_pumpmin(self, pump_min: float) -> bool:
        await self._after_connect()
        result: bool = await self._run(self.blocking.set_pumpmin, pump_min)
        return result

    async def set_pumpmax(self, pump_max: float) -> bool:
        await self._after_connect()
        result: bool = await self._run(self.blocking.set_pumpmax, pump_max)
        return result

    async def set_pumpcal(self, pump_cal: float) -> bool:
        await self._after_connect()
        result: bool = await self._run(self.blocking.set_pumpcal, pump_cal)
        return result

    async def set_lowvoltcutout(self, low_volt_cutout: float) -> bool:
        await self._after_connect()
        result: bool = await self._run(self.blocking.set_lowvoltcutout, low_volt_cutout)
        return result

    async def set_froston(self, start_temp: int) -> bool:
        await self._after_connect()
        result: bool = await self._run(self.blocking.set_froston, start_temp)
        return result

    async def set_frostrise(self, temp_rise: int) -> bool:
        await self._after_connect()
        result: bool = await self._run(self.blocking.set_frostrise, temp_rise)
        return result
