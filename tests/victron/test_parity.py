"""Issue 14 (aiovelib parity) on the native clients, over the real private dbus-daemon:
``with service as s`` as the bundled update, the closing forms, ``remove_item``, setting
aliases, GetMin/GetMax, the general method call and its write gate."""

from __future__ import annotations

import queue
from typing import Any, Iterator, List

import pytest

from pyburnerkit.errors import (ClientClosedError, ConfigurationError, DeviceError,
                                UnsupportedFeatureError, WriteNotAllowedError)
from pyburnerkit.victron import (Setting, SetValueError, ValuesChanged, VictronMonitor,
                                 VictronService, codec)
from pyburnerkit.victron.sim import VictronSim

NAME = "com.victronenergy.grid.pbkparity"


@pytest.fixture
def service(sim: VictronSim) -> Iterator[VictronService]:
    svc = VictronService(NAME, bus=sim.address, timeout=5.0)
    svc.add_mandatory_paths(device_instance=61)
    svc.add_item("/Ac/Power", 0.0, unit="W")
    svc.add_item("/Ac/L1/Power", 0.0, unit="W")
    svc.add_item("/Mode", 1, writable=True)
    svc.register()
    try:
        yield svc
    finally:
        svc.close()


def changes_of(monitor: VictronMonitor) -> "queue.Queue[ValuesChanged]":
    """Every ValuesChanged of our service: one per ItemsChanged signal it sent."""
    got: "queue.Queue[ValuesChanged]" = queue.Queue()
    monitor.subscribe(lambda ev: got.put(ev) if ev.service == NAME else None, ValuesChanged)
    return got


def test_with_on_a_live_service_sends_one_items_changed_and_keeps_it_up(
        monitor: VictronMonitor, service: VictronService) -> None:
    monitor.wait_for_service(NAME, timeout=5)
    got = changes_of(monitor)
    with service as s:
        assert s is not service                       # the seeds' collector, not the service
        s["/Ac/Power"] = 1234.0
        s["/Ac/L1/Power"] = 1234.0
        assert s["/Ac/Power"] == 1234.0 and service.get("/Ac/Power") == 0.0  # not sent yet
    event = got.get(timeout=5)
    assert dict((p, v.value) for p, v in event.values.items()) == {
        "/Ac/Power": 1234.0, "/Ac/L1/Power": 1234.0}  # both in one signal
    assert not service.closed and service.registered
    assert monitor.read_value(NAME, "/Ac/Power", timeout=5) == 1234.0


def test_the_seed_idiom_publishes_what_was_set_when_the_block_raises(
        monitor: VictronMonitor, service: VictronService) -> None:
    monitor.wait_for_service(NAME, timeout=5)
    with pytest.raises(RuntimeError):
        with service as s:
            s["/Ac/Power"] = 5.0
            raise RuntimeError("driver bug")
    assert monitor.wait_for_value(NAME, "/Ac/Power", lambda v: v == 5.0, timeout=5) == 5.0
    assert not service.closed
    # batch() stays all-or-nothing.
    with pytest.raises(RuntimeError):
        with service.batch() as b:
            b["/Ac/Power"] = 6.0
            raise RuntimeError("driver bug")
    assert service.get("/Ac/Power") == 5.0
    assert monitor.read_value(NAME, "/Ac/Power", timeout=5) == 5.0


def test_bad_values_are_refused_when_set_in_the_block(service: VictronService) -> None:
    with service as s:
        with pytest.raises(ConfigurationError, match="/Mode"):
            s["/Mode"] = "two"
        with pytest.raises(ConfigurationError, match="/Nope"):
            s["/Nope"] = 1
    assert service.get("/Mode") == 1


def test_nested_blocks_each_flush_their_own(monitor: VictronMonitor,
                                            service: VictronService) -> None:
    monitor.wait_for_service(NAME, timeout=5)
    got = changes_of(monitor)
    with service as outer:
        outer["/Ac/Power"] = 1.0
        with service as inner:
            inner["/Ac/L1/Power"] = 2.0
        assert set(got.get(timeout=5).values) == {"/Ac/L1/Power"}
    assert set(got.get(timeout=5).values) == {"/Ac/Power"}


def test_with_on_a_fresh_service_opens_and_closes_it(sim: VictronSim) -> None:
    svc = VictronService(NAME, bus=sim.address, timeout=5.0)
    with svc as s:
        assert s is svc and svc.connected          # the block brought it up ...
        svc.add_mandatory_paths(device_instance=62)
        svc.register()
        with svc as b:                              # ... a nested block on it is a batch
            b["/Connected"] = 0
        assert not svc.closed
    assert svc.closed                               # ... and the outer block closes it
    with pytest.raises(ClientClosedError):
        svc.set("/Connected", 1)
    with pytest.raises(ClientClosedError):
        with svc:
            pass


def test_closing_closes_a_live_service(sim: VictronSim) -> None:
    svc = VictronService(NAME, bus=sim.address, timeout=5.0)
    svc.add_mandatory_paths(device_instance=63)
    svc.register()
    with svc.closing() as s:
        assert s is svc and svc.registered
    assert svc.closed
    fresh = VictronService(NAME, bus=sim.address, timeout=5.0)
    with fresh.closing() as s:
        assert s.connected
    assert fresh.closed


def test_remove_item_invalidates_then_unexports(monitor: VictronMonitor,
                                                service: VictronService) -> None:
    service.set("/Ac/Power", 50.0)
    monitor.wait_for_value(NAME, "/Ac/Power", lambda v: v == 50.0, timeout=5)
    service.remove_item("/Ac/Power")
    assert "/Ac/Power" not in service and "/Ac/Power" not in service.paths()
    # Watchers are told the value is gone, not left with a stale 50 W.
    assert monitor.wait_for_value(NAME, "/Ac/Power", lambda v: v is None, timeout=5) is None
    with pytest.raises(DeviceError) as err:
        monitor.read_value(NAME, "/Ac/Power", timeout=5)
    assert err.value.code == "org.freedesktop.DBus.Error.UnknownObject"
    assert "/Ac/Power" not in monitor.read_items(NAME, timeout=5)
    del service["/Ac/L1/Power"]
    assert "/Ac/L1/Power" not in monitor.read_items(NAME, timeout=5)
    with pytest.raises(KeyError, match="/Ac/Power"):
        service.remove_item("/Ac/Power")
    service.add_item("/Ac/Power", 7.0)              # a path can come back
    assert monitor.read_value(NAME, "/Ac/Power", timeout=5) == 7.0


def test_remove_item_before_connecting(sim: VictronSim) -> None:
    svc = VictronService(NAME, bus=sim.address, timeout=5.0)
    svc.add_mandatory_paths(device_instance=64)
    svc.add_item("/Gone", 1)
    svc.remove_item("/Gone")
    svc.register()
    try:
        with VictronMonitor(sim.address, timeout=5.0) as mon:
            assert not mon.wait_for_service(NAME, timeout=5).values.get("/Gone")
            assert "/Gone" not in mon.read_items(NAME, timeout=5)
    finally:
        svc.close()


def test_setting_aliases(monitor: VictronMonitor, sim: VictronSim) -> None:
    path = "/Settings/Pbk/Parity/Limit"
    added = monitor.settings.add([Setting(path, 5, 0, 10, unit="A", alias="limit"),
                                  Setting("/Settings/Pbk/Parity/Name", "x", alias="name")])
    assert added[path] == 5
    assert monitor.settings.alias("limit") == path and monitor.settings.alias("nope") is None
    assert dict(monitor.settings.aliases) == {"limit": path,
                                              "name": "/Settings/Pbk/Parity/Name"}
    assert monitor.settings.get("limit") == 5
    monitor.settings.set("limit", 7)
    assert sim.settings.settings[path].value == 7
    with pytest.raises(ConfigurationError, match="10"):   # limits still apply through aliases
        monitor.settings.set("limit", 11)
    before = sim.calls(sim.settings.name, "AddSettings")
    with pytest.raises(ConfigurationError, match="already names"):
        monitor.settings.add([Setting("/Settings/Pbk/Parity/Other", 1, alias="limit")])
    with pytest.raises(ConfigurationError, match="alias"):
        monitor.settings.add([Setting("/Settings/Pbk/Parity/Other", 1, alias="/bad")])
    assert sim.calls(sim.settings.name, "AddSettings") == before   # nothing was sent
    with pytest.raises(ConfigurationError, match="unknown|neither"):
        monitor.settings.get("unknown")


def test_read_min_and_max(monitor: VictronMonitor) -> None:
    path = "/Settings/Pbk/Parity/Current"
    monitor.settings.add([Setting(path, 10, 0, 50)])
    assert monitor.read_min(codec.SETTINGS_SERVICE, path, timeout=5) == 0
    assert monitor.read_max(codec.SETTINGS_SERVICE, path, timeout=5) == 50
    assert monitor.read_default(codec.SETTINGS_SERVICE, path, timeout=5) == 10
    with pytest.raises(UnsupportedFeatureError):
        monitor.read_min(VictronSim.BATTERY, "/Soc", timeout=5)


def test_call_method_reads_freely_and_gates_writes(sim: VictronSim) -> None:
    with VictronMonitor(sim.address, timeout=5.0) as mon:
        assert mon.call_method(VictronSim.BATTERY, "/Soc", "GetValue") == [
            sim.value(VictronSim.BATTERY, "/Soc")]
        assert mon.call_method(codec.DBUS_NAME, codec.DBUS_PATH, "NameHasOwner", "s",
                               VictronSim.BATTERY, interface=codec.DBUS_NAME) == [True]
        before = sim.set_calls(VictronSim.SOLAR, "/Mode")
        with pytest.raises(WriteNotAllowedError, match="allow_writes"):
            mon.call_method(VictronSim.SOLAR, "/Mode", "SetValue", "v", 4)
        assert sim.set_calls(VictronSim.SOLAR, "/Mode") == before
    with VictronMonitor(sim.address, timeout=5.0, allow_writes=True) as mon:
        assert mon.call_method(VictronSim.SOLAR, "/Mode", "SetValue", "v", 4) == [0]
        assert sim.value(VictronSim.SOLAR, "/Mode") == 4
        with pytest.raises(DeviceError) as err:
            mon.call_method(VictronSim.SOLAR, "/Nope", "GetValue")
        assert err.value.code == "org.freedesktop.DBus.Error.UnknownObject"
        with pytest.raises(ConfigurationError, match="signature"):
            mon.call_method(VictronSim.SOLAR, "/Mode", "SetValue", "v")   # missing argument
        with pytest.raises(ConfigurationError, match="signature"):
            mon.call_method(VictronSim.SOLAR, "/Mode", "SetValue", "i", "four")
        with pytest.raises(ConfigurationError, match="member"):
            mon.call_method(VictronSim.SOLAR, "/Mode", "Set Value", "v", 4)
        assert sim.value(VictronSim.SOLAR, "/Mode") == 4


def test_a_removed_item_refuses_a_pending_write(monitor: VictronMonitor,
                                                sim: VictronSim) -> None:
    entered: "queue.Queue[bool]" = queue.Queue()
    release: "queue.Queue[bool]" = queue.Queue()

    def validator(path: str, value: Any) -> bool:
        entered.put(True)
        return release.get(timeout=20)

    svc = VictronService(NAME, bus=sim.address, timeout=5.0)
    svc.add_mandatory_paths(device_instance=65)
    svc.add_item("/Limit", 1, writable=True, validator=validator)
    svc.register()
    try:
        monitor.wait_for_service(NAME, timeout=5)
        fut = monitor.set_value_nowait(NAME, "/Limit", 5, timeout=20)
        assert entered.get(timeout=10)
        svc.remove_item("/Limit")
        release.put(True)
        with pytest.raises(SetValueError) as err:
            fut.result(10)
        assert err.value.code == codec.SET_REFUSED
        assert svc._unexpected_errors == 0 and svc.io_thread is not None \
            and svc.io_thread.is_alive()
    finally:
        release.put(False)
        svc.close()


def test_items_removed_and_set_from_many_threads_never_hurt_the_io_thread(
        monitor: VictronMonitor, service: VictronService) -> None:
    import threading
    errors: List[BaseException] = []

    def churn(i: int) -> None:
        try:
            for n in range(30):
                path = f"/Churn/T{i}"
                service.add_item(path, n)
                service.set(path, n + 1)
                with service as s:
                    s[path] = n + 2
                service.remove_item(path)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)
    threads = [threading.Thread(target=churn, args=(i,)) for i in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert errors == []
    service.set("/Ac/Power", 99.0)
    assert monitor.wait_for_value(NAME, "/Ac/Power", lambda v: v == 99.0, timeout=5) == 99.0
    assert service._unexpected_errors == 0
    assert not any(p.startswith("/Churn") for p in monitor.read_items(NAME, timeout=5))


def test_the_compat_monitor_has_aiovelibs_low_level_names(sim: VictronSim) -> None:
    from pyburnerkit.victron import compat
    path = "/Settings/Pbk/Parity/Compat"
    with compat.VictronMonitor(sim.address, timeout=5.0, allow_writes=True) as mon:
        mon.settings.add_settings([Setting(path, 2, 1, 9, alias="compat")])
        assert mon.fetch_min(codec.SETTINGS_SERVICE, path) == 1
        assert mon.fetch_max(codec.SETTINGS_SERVICE, path) == 9
        assert mon.dbus_call(codec.SETTINGS_SERVICE, path, "GetValue", "") == [2]
        assert mon.dbus_call(codec.SETTINGS_SERVICE, path, "SetValue", "v", 3) == [0]
        assert mon.wait_for_value(codec.SETTINGS_SERVICE, path, lambda v: v == 3) == 3
        assert mon.settings.get("compat") == 3
