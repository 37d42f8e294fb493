"""Monitor edge cases: PropertiesChanged producers, missing Text/Value, start-up races, and a
service that survives a dbus-daemon restart."""

from __future__ import annotations

import threading
from typing import Any, List

import dbus

from pyburnerkit.types import Reconnect
from pyburnerkit.victron import ServiceAdded, ValuesChanged, VictronMonitor, VictronService
from pyburnerkit.victron import codec
from pyburnerkit.victron.sim import VictronSim


def send_signal(sim: VictronSim, service: str, path: str, member: str, sig: str,
                payload: Any) -> None:
    sim.run_on_thread(lambda: sim.services[service].signal(path, member, sig, payload))


def test_properties_changed_and_entries_without_text_or_value(monitor: VictronMonitor,
                                                              sim: VictronSim) -> None:
    got: List[ValuesChanged] = []
    ev = threading.Event()

    def on_change(e: ValuesChanged) -> None:
        if e.service == sim.GRID:
            got.append(e)
            ev.set()
    monitor.subscribe(on_change, ValuesChanged)
    # A PropertiesChanged with only limits (no Value) must not touch the cache ...
    send_signal(sim, sim.GRID, "/Ac/Power", "PropertiesChanged", "a{sv}",
                dbus.Dictionary({"Min": dbus.Int32(0, variant_level=1)}, signature="sv"))
    # ... and an ItemsChanged entry without Text falls back to the value's own text.
    send_signal(sim, sim.GRID, "/", "ItemsChanged", "a{sa{sv}}", dbus.Dictionary(
        {"/Ac/Power": dbus.Dictionary({"Value": dbus.Double(99.5, variant_level=1)},
                                      signature="sv")}, signature="sa{sv}"))
    assert ev.wait(5)
    assert len(got) == 1 and got[0].values["/Ac/Power"].value == 99.5
    assert got[0].values["/Ac/Power"].text == "99.5"
    # A PropertiesChanged with a Value (older producers) updates the path it was sent on.
    send_signal(sim, sim.GRID, "/Ac/L1/Voltage", "PropertiesChanged", "a{sv}",
                codec.item_entry(231.0, "231 V"))
    assert monitor.wait_for_value(sim.GRID, "/Ac/L1/Voltage", lambda v: v == 231.0,
                                  timeout=5) == 231.0
    assert monitor.get_text(sim.GRID, "/Ac/L1/Voltage") == "231 V"


def test_a_service_appearing_during_the_start_up_scan_is_added_once(sim: VictronSim) -> None:
    sim.hold_replies(0.2)  # the scan of every simulated service takes a while
    added: List[str] = []
    drained = threading.Event()
    sentinel = object()

    def on_event(e: Any) -> None:
        if isinstance(e, ServiceAdded):
            added.append(e.service.name)
        elif e is sentinel:
            drained.set()
    mon = VictronMonitor(sim.address, on_event=on_event)
    try:
        starter = threading.Thread(target=mon.connect, name="starter")
        starter.start()
        sim.add_service("com.victronenergy.tank.late", {"/DeviceInstance": 9, "/Level": 1.0})
        starter.join(15)
        mon.wait_for_service("com.victronenergy.tank.late", timeout=10)
        mon.wait_for(lambda m: len(m.services()) == 5, timeout=10)
        # Every scan is done: once the events thread reaches a marker, all ServiceAdded
        # events queued before it have been delivered.
        mon._dispatcher.publish(sentinel)
        assert drained.wait(5)
        assert len(added) == len(set(added)) == 5, added   # nobody twice
        assert "com.victronenergy.tank.late" in added
    finally:
        mon.close()


def test_the_same_name_scanned_twice_is_one_service(monitor: VictronMonitor,
                                                    sim: VictronSim) -> None:
    # The venus#1684 race, driven directly: a NameOwnerChanged for a name the ListNames scan
    # already holds must not start a second scan.
    owner = monitor.service(sim.GRID).owner
    before = monitor._scan_seq
    done = threading.Event()

    def again(session: Any) -> None:
        monitor._io_begin_scan(session, sim.GRID, owner)
        monitor._io_begin_scan(session, sim.GRID, None)
        done.set()
    monitor._on_io(again)
    assert done.wait(5)
    assert monitor._scan_seq == before


def test_service_survives_a_daemon_restart(sim: VictronSim) -> None:
    svc = VictronService("com.victronenergy.grid.survivor", bus=sim.address,
                         reconnect=Reconnect(min_delay=0.05, max_delay=0.3))
    svc.add_mandatory_paths(device_instance=41)
    svc.add_item("/Ac/Power", 5.0)
    mon = VictronMonitor(sim.address,
                         reconnect=Reconnect(min_delay=0.05, max_delay=0.3))
    try:
        svc.register()
        mon.connect()
        mon.wait_for_service(svc.name, timeout=5)
        sim.restart()
        svc.set("/Ac/Power", 6.0)   # queued or sent: the value is what a rescan will see
        info = mon.wait_for(lambda m: (m.connected and m.service(svc.name) is not None
                                       and not m._cache.is_stale(svc.name)
                                       and m.service(svc.name)), timeout=10)
        assert info.get("/Ac/Power") == 6.0 and info.device_instance == 41
    finally:
        mon.close()
        svc.close()
