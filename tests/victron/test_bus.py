"""Integration tests on a real private dbus-daemon: service, monitor, settings, dbus-send."""

from __future__ import annotations

import shutil
import subprocess
import threading
from typing import Any, List

import pytest

from pyburnerkit.errors import (ClientClosedError, ConfigurationError, WriteNotAllowedError)
from pyburnerkit.victron import (NameTakenError, ServiceAdded, ServiceRemoved, Setting,
                                 SettingsError, SetValueError, ValuesChanged, ValueWritten,
                                 VictronMonitor, VictronService)
from pyburnerkit.victron.sim import VictronSim

NAME = "com.victronenergy.grid.pbktest"


def make_service(sim: VictronSim, name: str = NAME, **kw: Any) -> VictronService:
    svc = VictronService(name, bus=sim.address, **kw)
    svc.add_mandatory_paths(product_name="Test meter", device_instance=40)
    svc.add_item("/Ac/Power", 0.0, unit="W")
    svc.add_item("/Ac/L1/Power", 0.0, text="{:.1f} W")
    svc.add_item("/Limit", 5, writable=True, validator=lambda p, v: 0 <= v <= 10)
    svc.add_item("/Name", "abc", writable=True)
    return svc


@pytest.fixture
def service(sim: VictronSim):
    svc = make_service(sim)
    svc.register()
    try:
        yield svc
    finally:
        svc.close()


def dbus_send(sim: VictronSim, *args: str) -> str:
    exe = shutil.which("dbus-send")
    assert exe is not None, "dbus-send is missing (apt-get install dbus)"
    out = subprocess.run([exe, f"--bus={sim.address}", "--print-reply", *args],
                         capture_output=True, text=True, timeout=10)
    assert out.returncode == 0, out.stderr
    return out.stdout


def test_monitor_discovers_the_simulated_services(monitor: VictronMonitor,
                                                  sim: VictronSim) -> None:
    services = monitor.services()
    assert services[sim.BATTERY] == 512 and services[sim.GRID] == 30
    assert "com.victronenergy.settings" in services
    assert monitor.get_value(sim.BATTERY, "/Soc") == 80.0
    assert monitor.get_text(sim.GRID, "/ProductId") == "0xB012"
    assert monitor.get_value(sim.SOLAR, "/Link/ChargeVoltage") is None   # invalid
    assert monitor.seen(sim.SOLAR, "/Link/ChargeVoltage")
    assert not monitor.seen(sim.SOLAR, "/Nope")
    assert monitor.services("com.victronenergy.grid") == {sim.GRID: 30}


def test_our_service_is_scanned_and_followed(monitor: VictronMonitor, service: VictronService) -> None:
    info = monitor.wait_for_service(NAME, timeout=5)
    assert info.device_instance == 40
    assert info.values["/Ac/L1/Power"].text == "0.0 W"
    seen: List[ValuesChanged] = []
    got = threading.Event()

    def on_change(ev: ValuesChanged) -> None:
        if ev.service == NAME:
            seen.append(ev)
            got.set()
    monitor.subscribe(on_change, ValuesChanged)
    with service.batch() as b:
        b["/Ac/Power"] = 1200.0
        b["/Ac/L1/Power"] = 1200.0
    assert got.wait(5)
    assert set(seen[0].values) == {"/Ac/Power", "/Ac/L1/Power"}   # one ItemsChanged
    assert seen[0].values["/Ac/Power"].text == "1200W"
    service.set("/Ac/Power", None)
    assert monitor.wait_for_value(NAME, "/Ac/Power", lambda v: v is None, timeout=5) is None
    assert monitor.get_text(NAME, "/Ac/Power") == "---"


def test_writes_by_monitor_validator_and_codes(monitor: VictronMonitor,
                                              service: VictronService) -> None:
    monitor.wait_for_service(NAME, timeout=5)
    written = []
    ok = threading.Event()
    service.subscribe(lambda ev: (written.append((ev.path, ev.value,
                                                  threading.current_thread().name)),
                                  ok.set()), ValueWritten)
    monitor.set_value(NAME, "/Limit", 7)
    assert service.get("/Limit") == 7
    assert ok.wait(5) and written[0][:2] == ("/Limit", 7)
    assert written[0][2].endswith("-events")
    with pytest.raises(SetValueError) as err:
        monitor.set_value(NAME, "/Limit", 70)          # the validator refuses
    assert err.value.code == 2 and service.get("/Limit") == 7
    with pytest.raises(SetValueError) as err:
        monitor.set_value(NAME, "/Ac/Power", 1.0)      # not writable
    assert err.value.code == 1
    with pytest.raises(SetValueError) as err:
        monitor.set_value(NAME, "/Limit", "seven")     # not coercible
    assert err.value.code == 1
    fut = monitor.set_value_nowait(NAME, "/Name", "xyz")
    fut.result(5)
    assert monitor.wait_for_value(NAME, "/Name", lambda v: v == "xyz", timeout=5) == "xyz"


def test_dbus_send_reads_and_writes_our_service(sim: VictronSim, service: VictronService) -> None:
    out = dbus_send(sim, f"--dest={NAME}", "/Ac/L1/Power", "com.victronenergy.BusItem.GetText")
    assert '"0.0 W"' in out
    out = dbus_send(sim, f"--dest={NAME}", "/", "com.victronenergy.BusItem.GetItems")
    assert "/Mgmt/ProcessName" in out and "/Ac/Power" in out
    out = dbus_send(sim, f"--dest={NAME}", "/Limit", "com.victronenergy.BusItem.SetValue",
                    "variant:int32:9")
    assert "int32 0" in out and service.get("/Limit") == 9
    out = dbus_send(sim, f"--dest={NAME}", "/Limit", "com.victronenergy.BusItem.SetValue",
                    "variant:int32:11")
    assert "int32 2" in out and service.get("/Limit") == 9
    out = dbus_send(sim, f"--dest={NAME}", "/", "com.victronenergy.BusItem.GetValue")
    assert '"Ac/Power"' in out          # velib's root dictionary, relative keys


def test_a_taken_name_fails_clearly(sim: VictronSim, service: VictronService) -> None:
    other = make_service(sim)
    try:
        with pytest.raises(NameTakenError, match="already taken"):
            other.register()
    finally:
        other.close()


def test_services_appear_and_leave(monitor: VictronMonitor, sim: VictronSim) -> None:
    events: List[Any] = []
    cond = threading.Condition()

    def record(ev: Any) -> None:
        name = ev.service.name if isinstance(ev, ServiceAdded) else ev.name
        if name != "com.victronenergy.tank.t1":
            return   # the start-up scan's own events may still be on their way
        with cond:
            events.append(ev)
            cond.notify_all()
    monitor.subscribe(record, ServiceAdded, ServiceRemoved)
    sim.add_service("com.victronenergy.tank.t1", {"/DeviceInstance": 7, "/Level": 50.0})
    info = monitor.wait_for_service("com.victronenergy.tank.t1", timeout=5)
    assert info.get("/Level") == 50.0 and info.device_instance == 7
    sim.remove_service("com.victronenergy.tank.t1")
    monitor.wait_for(lambda m: m.service("com.victronenergy.tank.t1") is None, timeout=5)
    with cond:
        assert cond.wait_for(lambda: any(isinstance(e, ServiceRemoved) for e in events), 5)
    assert [type(e).__name__ for e in events] == ["ServiceAdded", "ServiceRemoved"]
    assert events[1].device_instance == 7


def test_filters_by_type_and_paths(sim: VictronSim) -> None:
    with VictronMonitor(sim.address,
                        service_types={"com.victronenergy.battery": ["/Soc"]}) as mon:
        assert list(mon.services()) == [sim.BATTERY]
        info = mon.service(sim.BATTERY)
        assert set(info.values) == {"/Soc", "/DeviceInstance"}
        sim.set_values(sim.BATTERY, {"/Soc": 55.5, "/Dc/0/Voltage": 51.0})
        assert mon.wait_for_value(sim.BATTERY, "/Soc", lambda v: v == 55.5, timeout=5) == 55.5
        assert not mon.seen(sim.BATTERY, "/Dc/0/Voltage")


def test_writes_need_allow_writes(sim: VictronSim) -> None:
    with VictronMonitor(sim.address) as mon:
        with pytest.raises(WriteNotAllowedError, match="allow_writes"):
            mon.set_value(sim.SOLAR, "/Mode", 4)
    assert sim.set_calls(sim.SOLAR, "/Mode") == 0


def test_bad_values_never_reach_the_bus(monitor: VictronMonitor, sim: VictronSim) -> None:
    with pytest.raises(ConfigurationError, match="64 bits"):
        monitor.set_value(sim.SOLAR, "/Mode", 2 ** 80)
    with pytest.raises(ConfigurationError, match="object path"):
        monitor.set_value(sim.SOLAR, "Mode", 1)
    assert sim.set_calls(sim.SOLAR, "/Mode") == 0


def test_settings_add_read_write_and_events(monitor: VictronMonitor, sim: VictronSim) -> None:
    values = monitor.settings.add([Setting("/Settings/Pbk/Int", 5, 0, 10),
                                   Setting("/Settings/Pbk/Text", "hello")])
    assert values == {"/Settings/Pbk/Int": 5, "/Settings/Pbk/Text": "hello"}
    assert monitor.settings.get("/Settings/Pbk/Int") == 5
    monitor.settings.set("/Settings/Pbk/Int", 8)
    assert monitor.wait_for_value("com.victronenergy.settings", "/Settings/Pbk/Int",
                                  lambda v: v == 8, timeout=5) == 8
    with pytest.raises(ConfigurationError, match=r"11.*0\.\.10"):
        monitor.settings.set("/Settings/Pbk/Int", 11)          # out of range: never sent
    with pytest.raises(SetValueError) as err:
        monitor.settings.set("/Settings/Pbk/Int", 7.5)         # not whole: the service says -1
    assert err.value.code == -1
    again = monitor.settings.add([Setting("/Settings/Pbk/Int", 5, 0, 10)])
    assert again == {"/Settings/Pbk/Int": 8}                   # an existing setting keeps its value
    assert monitor.settings.remove(["/Settings/Pbk/Text"]) == {"/Settings/Pbk/Text": 0}
    assert monitor.wait_for_value("com.victronenergy.settings", "/Settings/Pbk/Text",
                                  lambda v: v is None, timeout=5) is None


def test_settings_error_codes(monitor: VictronMonitor) -> None:
    monitor.settings.add([Setting("/Settings/Pbk/F", 1.5)])
    with pytest.raises(SettingsError) as err:
        monitor.settings.add([Setting("/Settings/Pbk/F", 1),          # TypeDiffer
                              Setting("/Settings/_Pbk/X", 1),         # UnderscorePrefix
                              Setting("/Settings/Pbk", 1),            # IsGroup
                              Setting("/Settings/Pbk/Ok", 3)])
    assert err.value.errors == {"/Settings/Pbk/F": -5, "/Settings/_Pbk/X": -2,
                                "/Settings/Pbk": -8}
    assert "TypeDiffer (-5)" in str(err.value) and "IsGroup (-8)" in str(err.value)
    with pytest.raises(SettingsError, match="InvalidDefault"):
        monitor.settings.add([Setting("/Settings/Devices/x/ClassAndVrmInstance", "nonsense")])
    with pytest.raises(ConfigurationError, match="out of range"):
        monitor.settings.add([Setting("/Settings/Pbk/R", 50, 0, 10)])   # refused before the wire
    with pytest.raises(ConfigurationError, match="int, float or str"):
        monitor.settings.add([Setting("/Settings/Pbk/B", True)])


def test_device_instance_allocation(monitor: VictronMonitor, sim: VictronSim) -> None:
    a = monitor.settings.allocate_instance("drv_A", "grid", 30)
    b = monitor.settings.allocate_instance("drv_B", "grid", 30)
    assert (a, b) == (30, 31)       # the sim's grid meter publishes 30 but has no setting
    assert monitor.settings.allocate_instance("drv_A", "grid", 30) == 30
    svc = make_service(sim, "com.victronenergy.grid.alloc", allow_writes=True)
    try:
        svc.connect()
        assert svc.allocate_device_instance("drv_C", "grid", 30) == 32
        svc.register()
        assert monitor.wait_for_service("com.victronenergy.grid.alloc", timeout=5) \
            .device_instance == 32
    finally:
        svc.close()


def test_close_from_a_callback_and_closed_errors(sim: VictronSim) -> None:
    mon = VictronMonitor(sim.address, allow_writes=True)
    closed = threading.Event()

    def on_change(ev: Any) -> None:
        mon.close()
        closed.set()
    mon.subscribe(on_change, ValuesChanged)
    mon.connect()
    sim.set_values(sim.GRID, {"/Ac/Power": 1.0})
    assert closed.wait(5)
    mon.close()
    with pytest.raises(ClientClosedError):
        mon.read_value(sim.GRID, "/Ac/Power")


def test_service_close_releases_the_name(monitor: VictronMonitor, sim: VictronSim) -> None:
    svc = make_service(sim)
    svc.register()
    monitor.wait_for_service(NAME, timeout=5)
    svc.close()
    monitor.wait_for(lambda m: m.service(NAME) is None, timeout=5)
    again = make_service(sim)
    try:
        again.register()         # the name is free again
        assert again.registered
    finally:
        again.close()


def test_legacy_service_without_getitems(monitor: VictronMonitor, sim: VictronSim) -> None:
    # A legacy velib-style service that has no GetItems: the monitor falls back to the root
    # GetValue/GetText dictionaries.
    from pyburnerkit.victron.sim import SimService

    class Legacy(SimService):
        def handle(self, msg: Any) -> None:
            if msg.get_member() == "GetItems":
                self.error(msg, "org.freedesktop.DBus.Error.UnknownMethod", "no GetItems")
            else:
                super().handle(msg)

    def add() -> None:
        svc = Legacy(sim, "com.victronenergy.pvinverter.old", {"/DeviceInstance": 3,
                                                                "/Ac/Power": 42.0})
        svc.connect()
        sim.services[svc.name] = svc
    sim.run_on_thread(add)
    info = monitor.wait_for_service("com.victronenergy.pvinverter.old", timeout=5)
    assert info.get("/Ac/Power") == 42.0 and info.device_instance == 3


def test_blocking_call_on_the_io_thread_raises(monitor: VictronMonitor, sim: VictronSim) -> None:
    box: List[Any] = []
    done = threading.Event()

    def on_io(session: Any) -> None:
        try:
            monitor.read_value(sim.GRID, "/Ac/Power")
        except RuntimeError as exc:
            box.append(exc)
        done.set()
    monitor._on_io(on_io)
    assert done.wait(5)
    assert box and "I/O thread" in str(box[0])


def test_thread_names(monitor: VictronMonitor) -> None:
    assert monitor.io_thread.name == f"pyburnerkit-victron-{monitor.endpoint}-io"
    assert monitor.events_thread.name == f"pyburnerkit-victron-{monitor.endpoint}-events"


def test_set_value_nowait_future(monitor: VictronMonitor, sim: VictronSim) -> None:
    fut = monitor.set_value_nowait(sim.SOLAR, "/Mode", 4)
    assert fut.result(5) is None
    assert sim.value(sim.SOLAR, "/Mode") == 4
    refused = monitor.set_value_nowait(sim.GRID, "/Ac/Power", 1.0)
    with pytest.raises(SetValueError) as err:
        refused.result(5)
    assert err.value.code == 1
    sim.hold_replies(30)
    stuck = monitor.set_value_nowait(sim.SOLAR, "/Mode", 1, timeout=0.3)
    with pytest.raises(Exception) as err:
        stuck.result(5)
    assert type(err.value).__name__ == "DeviceTimeoutError"
    pending = monitor.set_value_nowait(sim.SOLAR, "/Mode", 1, timeout=30)   # replies still held
    monitor.close()
    with pytest.raises(ClientClosedError):
        pending.result(5)
