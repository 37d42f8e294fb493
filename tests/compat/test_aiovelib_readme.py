"""aiovelib's README and module examples, ported with one import change each (plus the
blocking form: no ``await``, the bus is an endpoint string), run against the Victron
simulator on a real private dbus-daemon.

The only other edits: ``print`` in a hook puts its line on a queue so the test can wait for
it, and the "sleep 2 s then act" of aiovelib's ``client.py`` demo is a wait on the service.
"""

from __future__ import annotations

import queue
import threading
from typing import Any, Dict, Iterator, List

import pytest

# from aiovelib.client import Monitor, Service, ServiceHandler
from pyburnerkit.victron.compat.client import (DbusException, Monitor, Service, ServiceHandler,
                                               Variant)
# from aiovelib.localsettings import SettingsService, Setting, SETTINGS_SERVICE
from pyburnerkit.victron.compat.localsettings import (SETTINGS_SERVICE, Setting,
                                                      SettingException, SettingsService)
# from aiovelib.service import Service, IntegerItem, DoubleItem, TextItem
from pyburnerkit.victron.compat import service as aioservice
from pyburnerkit.victron.compat.service import DoubleItem, IntegerItem, TextArrayItem, TextItem

from pyburnerkit.errors import ConfigurationError, WriteNotAllowedError
from pyburnerkit.victron import ValuesChanged, VictronMonitor
from pyburnerkit.victron.sim import VictronSim

from ._aiovelib_fixtures import victron_sim  # noqa: F401  (a fixture)

EXAMPLE = "com.victronenergy.grid.example"


# ---------------------------------------------------------------- README: aiovelib.client
class GridMeterService(Service, ServiceHandler):
    servicetype = "com.victronenergy.grid"
    paths = {"/Ac/Power", "/Ac/L1/Voltage"}


# ---------------------------------------------------------- README: aiovelib.localsettings
class MySettings(SettingsService, ServiceHandler):
    pass


lines: "queue.Queue[str]" = queue.Queue()


class MyMonitor(Monitor):
    def itemsChanged(self, service: Any, values: Dict[str, Any]) -> None:
        for p, v in values.items():
            lines.put(f"{service.name}{p} changed to {v}")


@pytest.fixture(autouse=True)
def fresh_lines() -> Iterator[None]:
    while not lines.empty():
        lines.get_nowait()
    yield


def next_line(matching: str) -> str:
    while True:
        line = lines.get(timeout=5)
        if matching in line:
            return line


# ---------------------------------------------------------------- README: aiovelib.service
def publish_example(bus: str) -> aioservice.Service:
    service = aioservice.Service.create(bus, 'com.victronenergy.grid.example')

    service.add_item(IntegerItem('/Int', 1, writeable=True))
    service.add_item(DoubleItem('/Double', 2.0, writeable=True))
    service.add_item(TextItem('/Text', 'This is text', writeable=True))
    return service


def test_readme_service_bundles_updates_and_stays_up(victron_sim: VictronSim) -> None:
    service = publish_example(victron_sim.address)
    try:
        with VictronMonitor(victron_sim.address, timeout=5.0) as watcher:
            watcher.wait_for_value(EXAMPLE, "/Text", timeout=5)
            got: "queue.Queue[ValuesChanged]" = queue.Queue()
            watcher.subscribe(lambda ev: got.put(ev) if ev.service == EXAMPLE else None,
                              ValuesChanged)

            with service as ctx:
                ctx['/Int'] = 11
                ctx['/Double'] = 3.141592654

            event = got.get(timeout=5)        # one ItemsChanged carried both
            assert {p: v.value for p, v in event.values.items()} == {
                "/Int": 11, "/Double": 3.141592654}
            assert not service.closed and service["/Int"] == 11
            assert service.get_item("/Int").value == 11
            assert watcher.read_value(EXAMPLE, "/Double", timeout=5) == 3.141592654
    finally:
        service.close()
    assert service.closed


def test_service_demo_onchange_and_remove_item(victron_sim: VictronSim) -> None:
    # aiovelib/service.py's own demo: register first, then the items, then a batch.
    service = aioservice.Service(victron_sim.address, 'com.victronenergy.grid.example')
    service.register()

    def check_int(v: int) -> bool:
        if 0 < v < 100:
            return True
        return False

    service.add_item(IntegerItem('/DeviceInstance', 0))
    service.add_item(IntegerItem('/Int', 1, writeable=True, onchange=check_int))
    service.add_item(TextArrayItem('/Array', ['a', 'b'], writeable=True))
    try:
        with MyMonitor.create(victron_sim.address, allow_writes=True, timeout=5.0) as monitor:
            monitor.wait_for_service(EXAMPLE)
            assert monitor.set_value(EXAMPLE, "/Int", 50) == 0
            assert service["/Int"] == 50
            assert monitor.set_value(EXAMPLE, "/Int", 150) != 0   # onchange said no
            assert service["/Int"] == 50
            with service as s:
                s['/Int'] = 11
                s['/Array'] = ['c', 'd']
            assert monitor.native.wait_for_value(EXAMPLE, "/Array",
                                                 lambda v: v == ['c', 'd']) == ['c', 'd']
            service.get_item('/Int').set_local_value(12)
            assert monitor.native.wait_for_value(EXAMPLE, "/Int", lambda v: v == 12) == 12
            service.remove_item('/Int')
            assert service.get_item('/Int') is None
            assert monitor.native.wait_for_value(EXAMPLE, "/Int", lambda v: v is None) is None
    finally:
        service.close()


def test_readme_monitor_subclass_with_a_handler(victron_sim: VictronSim) -> None:
    monitor = MyMonitor.create(victron_sim.address, timeout=5.0)
    try:
        grid = monitor.get_service(VictronSim.GRID)
        assert isinstance(grid, GridMeterService) and grid.name == VictronSim.GRID
        assert monitor.get_value(VictronSim.GRID, "/Ac/Power") == 1500.0
        assert monitor.seen(VictronSim.GRID, "/Ac/L1/Voltage")
        assert not monitor.seen(VictronSim.GRID, "/Ac/L1/Current")   # not in paths
        assert monitor.get_service(VictronSim.BATTERY) is None           # no handler
        assert {s.name for s in monitor.services} >= {VictronSim.GRID, SETTINGS_SERVICE}

        victron_sim.set_values(VictronSim.GRID, {"/Ac/L1/Current": 7.0, "/Ac/Power": 1600.0})
        assert next_line("/Ac/") == f"{VictronSim.GRID}/Ac/Power changed to 1600.0"
        assert monitor.get_value(VictronSim.GRID, "/Ac/Power") == 1600.0
    finally:
        monitor.close()


def test_readme_monitor_with_an_itemschanged_callable(victron_sim: VictronSim) -> None:
    seen: "queue.Queue[Any]" = queue.Queue()

    def on_update(service: Any, values: Dict[str, Any]) -> None:
        for p, v in values.items():
            seen.put((service.name, p, v))

    monitor = Monitor.create(victron_sim.address, on_update, timeout=5.0)
    try:
        victron_sim.set_values(VictronSim.GRID, {"/Ac/L1/Voltage": 231.0})
        assert seen.get(timeout=5) == (VictronSim.GRID, "/Ac/L1/Voltage", 231.0)
    finally:
        monitor.close()


def test_client_demo_set_value_async_and_seen(victron_sim: VictronSim) -> None:
    # aiovelib/client.py's demo, against the README's example service. The demo's own
    # GridService is given as handlers= here: registering it with ServiceHandler would
    # replace the README's GridMeterService for every other test of this module.
    class GridService(Service):
        servicetype = "com.victronenergy.grid"
        paths = {"/Int", "/Double", "/Text"}

    service = publish_example(victron_sim.address)
    try:
        monitor = MyMonitor.create(victron_sim.address, allow_writes=True, timeout=5.0,
                                   handlers={GridService.servicetype: GridService})
        try:
            monitor.wait_for_service("com.victronenergy.grid.example")
            done = [monitor.set_value_async("com.victronenergy.grid.example", "/Double", 55.1),
                    monitor.set_value_async("com.victronenergy.grid.example", "/Int", 44),
                    monitor.set_value_async("com.victronenergy.grid.example", "/Text",
                                            "Modified by me!")]
            assert monitor.seen("com.victronenergy.grid.example", "/Nothing") is False
            assert monitor.seen("com.victronenergy.grid.example", "/Double") is True
            assert not monitor.seen(VictronSim.GRID, "/Ac/Power")   # not in GridService.paths
            for future in done:
                assert future.result(5) is None
            assert (service["/Double"], service["/Int"], service["/Text"]) == (
                55.1, 44, "Modified by me!")
            assert monitor.set_value_async("com.victronenergy.grid.nothere", "/Int", 1) == -1
        finally:
            monitor.close()
    finally:
        service.close()


def test_readme_localsettings(victron_sim: VictronSim) -> None:
    monitor = MyMonitor.create(victron_sim.address, allow_writes=True, timeout=5.0)
    try:
        service = monitor.wait_for_service(SETTINGS_SERVICE)
        assert isinstance(service, MySettings)
        service.add_settings(
            Setting("/Settings/AioVelib/OptionA", 3, 0, 5),
            Setting("/Settings/AioVelib/OptionB", "x")
        )
        assert service.get_value("/Settings/AioVelib/OptionA") == 3
        assert victron_sim.settings.settings["/Settings/AioVelib/OptionB"].value == "x"

        # Changes arrive through itemsChanged, for the added settings only.
        assert service.set_value("/Settings/AioVelib/OptionA", 4) == 0
        # (the add above may still announce "changed to 3" first: wait for the change itself;
        # a change that never arrives ends the wait with queue.Empty)
        next_line(f"{SETTINGS_SERVICE}/Settings/AioVelib/OptionA changed to 4")
        assert service.fetch_min("/Settings/AioVelib/OptionA") == 0
        assert service.fetch_max("/Settings/AioVelib/OptionA") == 5
        assert service.fetch_value("/Settings/AioVelib/OptionA") == 4

        service.add_settings(Setting("/Settings/AioVelib/OptionC", 1, 0, 2, alias="c"))
        assert service.alias("c") == "/Settings/AioVelib/OptionC"
        assert service.get_value(service.alias("c")) == 1
        assert monitor.native.settings.get("c") == 1
        with pytest.raises(SettingException) as err:   # OptionA exists as an int
            service.add_settings(Setting("/Settings/AioVelib/OptionA", "text"))
        assert err.value.path == "/Settings/AioVelib/OptionA"
    finally:
        monitor.close()


def test_writes_need_the_opt_in(victron_sim: VictronSim) -> None:
    monitor = MyMonitor.create(victron_sim.address, timeout=5.0)
    try:
        settings = monitor.wait_for_service(SETTINGS_SERVICE)
        with pytest.raises(WriteNotAllowedError):
            settings.add_settings(Setting("/Settings/AioVelib/Blocked", 1))
        with pytest.raises(WriteNotAllowedError):
            monitor.set_value(VictronSim.GRID, "/Ac/Power", 1.0)
        with pytest.raises(WriteNotAllowedError):
            monitor.dbus_call(VictronSim.GRID, "/Ac/Power", "SetValue", "v", 1.0)
        assert "/Settings/AioVelib/Blocked" not in victron_sim.settings.settings
        assert victron_sim.set_calls(VictronSim.GRID, "/Ac/Power") == 0
    finally:
        monitor.close()


def test_dbus_call_returns_variants(victron_sim: VictronSim) -> None:
    monitor = Monitor.create(victron_sim.address, allow_writes=True, timeout=5.0,
                             handlers={"com.victronenergy.solarcharger": Service})
    try:
        reply = monitor.dbus_call(VictronSim.SOLAR, "/Pv/V", "GetValue", "")
        assert isinstance(reply[0], Variant) and reply[0].value == 110.0
        items = monitor.dbus_call(VictronSim.SOLAR, "/", "GetItems", "")[0]
        assert items["/Mode"]["Value"].value == 1
        assert items["/Link/ChargeVoltage"]["Value"].value is None        # invalid
        assert monitor.dbus_call(VictronSim.SOLAR, "/Mode", "SetValue", "v",
                                 Variant("i", 4)) == [0]
        assert victron_sim.value(VictronSim.SOLAR, "/Mode") == 4
        with pytest.raises(DbusException) as err:
            monitor.dbus_call(VictronSim.SOLAR, "/Nope", "GetValue", "")
        assert err.value.code == "org.freedesktop.DBus.Error.UnknownObject"
        solar = monitor.get_service(VictronSim.SOLAR)
        assert solar is not None and solar.fetch_min("/Mode") is None    # refused: logged
        assert monitor.set_value(VictronSim.SOLAR, "/Yield/Power", 1.0) == 1   # read-only
    finally:
        monitor.close()


def test_hooks_run_on_the_events_thread_and_a_bad_one_hurts_nothing(
        victron_sim: VictronSim) -> None:
    callback_errors: List[BaseException] = []   # expected here: not the failing fixture
    added: "queue.Queue[Any]" = queue.Queue()
    removed: "queue.Queue[Any]" = queue.Queue()
    threads: List[str] = []

    class Hooked(Monitor):
        async def serviceAdded(self, service: Any) -> None:   # left async, as in aiovelib
            added.put(service.name)

        def serviceRemoved(self, service: Any) -> None:
            removed.put(service)

        def itemsChanged(self, service: Any, values: Dict[str, Any]) -> None:
            threads.append(threading.current_thread().name)
            if "/Ac/Power" in values and values["/Ac/Power"] < 0:
                raise RuntimeError("hook bug")
            lines.put(f"{service.name} {values}")

    monitor = Hooked.create(victron_sim.address, timeout=5.0,
                            handlers={"com.victronenergy.grid": GridMeterService},
                            on_callback_error=lambda exc, ev: callback_errors.append(exc))
    try:
        assert added.get(timeout=5) == VictronSim.GRID
        victron_sim.set_values(VictronSim.GRID, {"/Ac/Power": -1.0})
        victron_sim.set_values(VictronSim.GRID, {"/Ac/Power": 2.0})
        assert next_line("/Ac/Power") == f"{VictronSim.GRID} {{'/Ac/Power': 2.0}}"
        assert [type(e) for e in callback_errors] == [RuntimeError]
        assert set(threads) == {monitor.native.events_thread.name}
        native = monitor.native
        assert native._unexpected_errors == 0 and native.io_thread.is_alive()

        victron_sim.remove_service(VictronSim.GRID)
        gone = removed.get(timeout=5)
        assert isinstance(gone, GridMeterService) and monitor.get_service(VictronSim.GRID) is None
    finally:
        monitor.close()


def test_handler_classes_need_a_servicetype() -> None:
    with pytest.raises(ConfigurationError, match="servicetype"):
        class Broken(Service, ServiceHandler):
            pass
    with pytest.raises(ConfigurationError, match="async"):
        async def later(item: Any, v: Any) -> None:
            pass
        IntegerItem("/X", 1, writeable=True, onchange=later)
    with pytest.raises(ConfigurationError, match="/X"):
        IntegerItem("/X", "one")
