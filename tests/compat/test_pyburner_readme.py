"""pyBurner's README example, its examples/ and its tests/client_test.py, ported with one
import change and run against AfterburnerSim over a real WebSocket on 127.0.0.1.

    # import pyburner
    import pyburnerkit.afterburner.aiocompat as pyburner     (async code kept as it is)
    import pyburnerkit.afterburner.compat as pyburner        (the same names, blocking)

The ports differ from pyBurner's files only in the address (a simulator on a free port
instead of ``<afterburner_ip_address>`` / 127.0.0.1:8889) and in ``allow_writes=True`` where
the example writes (writes are opt-in here). pytest-asyncio is not used: each async test is
run with ``asyncio.run``, as the README runs its ``main()``.
"""

from __future__ import annotations

import asyncio
import re
import threading
from typing import Iterator

import pytest

from pyburnerkit.afterburner import AfterburnerSim

import pyburnerkit.afterburner.aiocompat as pyburner  # was: import pyburner
import pyburnerkit.afterburner.compat as pyburner_blocking  # was: import pyburner


@pytest.fixture
def afterburner() -> Iterator[AfterburnerSim]:
    server = AfterburnerSim(tick=0, seed=5).start()
    try:
        yield server
    finally:
        server.close()


def test_readme_example(afterburner: AfterburnerSim, capsys: pytest.CaptureFixture) -> None:
    heater = pyburner.Client(f"127.0.0.1:{afterburner.port}")

    async def main():
        asyncio.create_task(heater.init_websocket())
        # allow time for websocket to connect
        await asyncio.sleep(1.5)
        tasks = await asyncio.gather(
            heater.fetch_data("TempCurrent"),
            heater.fetch_data("TempBody")
        )
        print(f"The ambient temperature is {tasks[0]} degrees.\n"
              f"The heater body temperature is {tasks[1]} degrees.")
        await asyncio.create_task(heater.close_websocket())

    asyncio.run(main())
    out = capsys.readouterr().out
    # The simulated room drifts: the printed values are numbers from the controller's state
    # (None would mean the fetch ran before the state was in).
    match = re.fullmatch(r"The ambient temperature is (\S+) degrees.\n"
                         r"The heater body temperature is (\S+) degrees.\n", out)
    assert match is not None, out
    ambient, body = (float(v) for v in match.groups())
    assert -40 < ambient < 60 and -40 < body < 300
    assert heater.blocking.closed


def test_readme_heater_data(afterburner: AfterburnerSim) -> None:
    heater = pyburner.Client(f"127.0.0.1:{afterburner.port}")

    async def main():
        await heater.init_websocket()
        full = heater.heater_data                       # "Full dictionary"
        specific = heater.heater_data["TempCurrent"]    # "Specific key"
        await heater.refresh()
        value = await heater.fetch_data("TempDesired", refresh=True)
        await heater.close_websocket()
        return full, specific, value

    full, specific, value = asyncio.run(main())
    assert full["RunState"] == 0 and specific == afterburner.snapshot()["TempCurrent"]
    assert value == 22


def test_threading_example(afterburner: AfterburnerSim, capsys: pytest.CaptureFixture) -> None:
    # examples/threading_example.py: an event loop in a thread and run_coroutine_threadsafe.
    heater = pyburner.Client(f"127.0.0.1:{afterburner.port}", allow_writes=True)
    event_loop = asyncio.new_event_loop()

    def background_loop(loop: asyncio.AbstractEventLoop):
        asyncio.set_event_loop(loop)
        loop.run_forever()

    t = threading.Thread(target=background_loop, args=(event_loop,), daemon=True)
    t.start()
    try:
        asyncio.run_coroutine_threadsafe(heater.init_websocket(), event_loop).result(10)
        future = asyncio.run_coroutine_threadsafe(heater.set_tempdesired(22), event_loop)
        print(future.result(10))
        future = asyncio.run_coroutine_threadsafe(heater.fetch_data("TempDesired"), event_loop)
        print(future.result(10))
        asyncio.run_coroutine_threadsafe(heater.close_websocket(), event_loop).result(10)
    finally:
        event_loop.call_soon_threadsafe(event_loop.stop)
        t.join(5)
        event_loop.run_until_complete(event_loop.shutdown_default_executor())
        event_loop.close()
    assert capsys.readouterr().out.split() == ["True", "22"]


def test_client_test_suite() -> None:
    # tests/client_test.py, every test in its order on one client (its session fixture).
    # speed=50: the firmware holds a PumpCount change back 10 s; 0.2 s here.
    afterburner = AfterburnerSim(tick=0, seed=5, speed=50).start()
    heater = pyburner.Client(f"127.0.0.1:{afterburner.port}", allow_writes=True)

    async def suite():
        assert await heater.init_websocket() is True
        try:
            await heater.refresh()
            assert bool(heater.heater_data)
            assert await heater.set_tempdesired(19) is True
            assert await heater.set_runmode(1) is True
            assert await heater.set_fanmin(1750) is True
            assert await heater.set_fanmax(4500) is True  # pyBurner's 5500 is above 5000:
            assert await heater.set_pumpreset() is True   # the firmware ignores it, so it is
            assert await heater.set_pumpmin(1.8) is True  # refused before sending here
            assert await heater.set_pumpmax(5.9) is True
            assert await heater.set_pumpcal(0.035) is True
            assert await heater.set_lowvoltcutout(11.2) is True
            assert await heater.set_froston(1) is True    # pyBurner's 1.1: whole numbers only
            assert await heater.set_frostrise(3) is True
        finally:
            await heater.close_websocket()

    try:
        asyncio.run(suite())
        snapshot = afterburner.snapshot()
    finally:
        afterburner.close()
    assert (snapshot["TempDesired"], snapshot["FanMin"], snapshot["PumpCal"]) == \
        (19, 1750, 0.035)


def test_blocking_names_need_no_event_loop(afterburner: AfterburnerSim) -> None:
    heater = pyburner_blocking.Client(f"127.0.0.1:{afterburner.port}", allow_writes=True)
    assert heater.init_websocket() is True
    try:
        assert heater.set_tempdesired(21) is True
        assert heater.fetch_data("TempDesired", refresh=True) == 21
        assert heater.heater_data["TempDesired"] == 21
    finally:
        assert heater.close_websocket() is True


def test_setters_refuse_without_allow_writes(afterburner: AfterburnerSim) -> None:
    from pyburnerkit.errors import WriteNotAllowedError
    heater = pyburner.Client(f"127.0.0.1:{afterburner.port}")

    async def main():
        await heater.init_websocket()
        try:
            with pytest.raises(WriteNotAllowedError, match="allow_writes"):
                await heater.set_tempdesired(25)
        finally:
            await heater.close_websocket()

    asyncio.run(main())
    assert afterburner.snapshot()["TempDesired"] == 22
