"""Service and monitor details: validators that take their time, item types on the wire,
private connections, closing from callbacks, writes after close, forged NameOwnerChanged."""

from __future__ import annotations

import threading
from typing import Any, List

import dbus
import dbus.lowlevel
import pytest

from pyburnerkit.errors import ClientClosedError, ConfigurationError
from pyburnerkit.victron import (ServiceRemoved, Setting, SetValueError, ValueWritten,
                                 VictronMonitor, VictronService, codec)
from pyburnerkit.victron.sim import VictronSim

NAME = "com.victronenergy.grid.pbkmore"


def test_a_slow_validator_does_not_block_the_service(monitor: VictronMonitor,
                                                     sim: VictronSim) -> None:
    entered = threading.Event()
    release = threading.Event()
    threads: List[str] = []

    def validator(path: str, value: Any) -> bool:
        threads.append(threading.current_thread().name)
        entered.set()
        if not release.wait(20):
            return False
        return value < 100

    def exploding(path: str, value: Any) -> bool:
        raise RuntimeError("validator bug")

    svc = VictronService(NAME, bus=sim.address)
    svc.add_mandatory_paths(device_instance=44)
    svc.add_item("/Limit", 1, writable=True, validator=validator)
    svc.add_item("/Other", 1, writable=True, validator=exploding)
    svc.register()
    try:
        monitor.wait_for_service(NAME, timeout=5)
        fut = monitor.set_value_nowait(NAME, "/Limit", 5, timeout=30)
        assert entered.wait(10)
        # The validator is deciding; the service still answers other calls meanwhile.
        assert monitor.read_value(NAME, "/Limit", timeout=10) == 1
        assert monitor.read_items(NAME, timeout=10)["/Limit"].value == 1
        assert not fut.done()
        release.set()
        assert fut.result(10) is None        # the reply came when the validator answered
        assert svc.get("/Limit") == 5
        assert threads == [svc.events_thread.name]
        with pytest.raises(SetValueError) as err:
            monitor.set_value(NAME, "/Other", 2, timeout=10)   # a raising validator refuses
        assert err.value.code == codec.SET_VETOED and svc.get("/Other") == 1
    finally:
        release.set()
        svc.close()


def test_item_types_on_the_wire(monitor: VictronMonitor, sim: VictronSim, raw: Any) -> None:
    svc = VictronService(NAME, bus=sim.address)
    svc.add_mandatory_paths(device_instance=45)
    svc.add_item("/Flag", True)
    svc.add_item("/Big", 2 ** 40)
    svc.add_item("/Empty", [], kind=list)
    svc.add_item("/Cells", [3.3, 3.4])
    svc.add_item("/Nothing", None)
    svc.register()
    try:
        def get(path: str) -> Any:
            return raw.call_blocking(NAME, path, codec.BUSITEM, "GetValue", "", (), timeout=5)
        assert isinstance(get("/Flag"), dbus.Boolean)
        assert isinstance(get("/Big"), dbus.Int64) and int(get("/Big")) == 2 ** 40
        empty = get("/Empty")
        assert isinstance(empty, dbus.Array) and empty.signature == "u"   # not the invalid ai
        assert get("/Cells").signature == "d"
        nothing = get("/Nothing")
        assert nothing.signature == "i" and len(nothing) == 0               # invalid
        texts = raw.call_blocking(NAME, "/", codec.BUSITEM, "GetText", "", (), timeout=5)
        assert texts["Nothing"] == "---" and texts["Flag"] == "True"       # velib's root dict
        info = monitor.wait_for_service(NAME, timeout=5)
        assert info.get("/Flag") is True and info.get("/Big") == 2 ** 40
        assert info.get("/Cells") == [3.3, 3.4]
        assert all(type(v.value) in (bool, int, float, str, list, type(None))
                   for v in info.values.values())                          # no dbus types
    finally:
        svc.close()


def test_private_connections_never_the_shared_singletons(sim: VictronSim,
                                                         monkeypatch) -> None:
    monkeypatch.setenv("DBUS_SESSION_BUS_ADDRESS", sim.address)
    import dbus._dbus as shared
    assert shared.Bus._shared_instances == {}
    with VictronMonitor() as one, VictronMonitor() as two:    # Venus's bus choice: session
        assert one.bus_address == sim.address
        assert one._session.conn is not two._session.conn
        assert one._session.conn.get_unique_name() != two._session.conn.get_unique_name()
        assert shared.Bus._shared_instances == {}      # dbus.SessionBus() never called


def test_service_closed_from_its_own_callback(monitor: VictronMonitor, sim: VictronSim) -> None:
    svc = VictronService(NAME, bus=sim.address)
    svc.add_mandatory_paths(device_instance=46)
    svc.add_item("/Stop", 0, writable=True)
    closed = threading.Event()

    def on_write(ev: ValueWritten) -> None:
        svc.close()
        closed.set()
    svc.subscribe(on_write, ValueWritten)
    removed = threading.Event()
    monitor.subscribe(lambda ev: removed.set() if ev.name == NAME else None, ServiceRemoved)
    svc.register()
    try:
        monitor.wait_for_service(NAME, timeout=5)
        monitor.set_value(NAME, "/Stop", 1)
        assert closed.wait(5)
        assert removed.wait(5)           # the name was released
        with pytest.raises(ClientClosedError):
            svc.set("/Stop", 2)
        with pytest.raises(ClientClosedError):
            svc.add_item("/New", 1)
    finally:
        svc.close()


def test_a_forged_name_owner_changed_is_ignored(monitor: VictronMonitor, sim: VictronSim,
                                                raw: Any) -> None:
    # Anyone can send a signal that looks like the bus's; only the bus may remove a service.
    msg = dbus.lowlevel.SignalMessage(codec.DBUS_PATH, codec.DBUS_NAME, "NameOwnerChanged")
    msg.append(sim.GRID, monitor.service(sim.GRID).owner, "", signature="sss")
    msg.set_destination(monitor._session.conn.get_unique_name())
    raw.send_message(msg)
    raw.flush()
    # Then a real change on the bus: once it is seen, the forged signal (sent before it, on
    # the monitor's own connection) has been handled too.
    sim.set_values(sim.GRID, {"/Ac/Power": 1234.0})
    assert monitor.wait_for_value(sim.GRID, "/Ac/Power", lambda v: v == 1234.0,
                                  timeout=5) == 1234.0
    assert monitor.service(sim.GRID) is not None


def test_add_settings_typed_values_and_security_profile(monitor: VictronMonitor) -> None:
    values = monitor.settings.add([Setting("/Settings/Pbk2/F", 2.0, 0.0, 5.0),
                                   Setting("/Settings/Pbk2/I", 2),
                                   Setting("/Settings/System/SecurityProfile", 1)])
    assert type(values["/Settings/Pbk2/F"]) is float and type(values["/Settings/Pbk2/I"]) is int
    assert type(monitor.settings.get("/Settings/Pbk2/F")) is float
    with pytest.raises(SetValueError) as err:
        monitor.settings.set("/Settings/System/SecurityProfile", 0)
    assert err.value.code == -1


def test_every_settings_error_code_has_a_name() -> None:
    for code, name in [(-2, "UnderscorePrefix"), (-3, "UnknownType"), (-4, "InvalidPath"),
                       (-5, "TypeDiffer"), (-6, "InvalidDefault"), (-7, "DefaultOutOfRange"),
                       (-8, "IsGroup"), (-9, "NotInSettings")]:
        assert codec.setting_error_text(code).startswith(f"{name} ({code}): ")
    assert "unknown" in codec.setting_error_text(-42)


def test_waiting_for_a_filtered_out_service_is_refused_at_once(sim: VictronSim) -> None:
    with VictronMonitor(sim.address,
                        service_types={"com.victronenergy.battery": None}) as mon:
        assert mon.wait_for_service(sim.BATTERY, timeout=5).device_instance == 512
        with pytest.raises(ConfigurationError, match="com.victronenergy.grid"):
            mon.wait_for_service(sim.GRID, timeout=30)


def test_a_daemon_that_never_listens_fails_in_time(tmp_path, monkeypatch) -> None:
    from pyburnerkit.errors import DeviceConnectionError
    from pyburnerkit.victron import sim as sim_module
    fake = tmp_path / "dbus-daemon"
    fake.write_text("#!/bin/sh\nexec sleep 60\n")
    fake.chmod(0o755)
    monkeypatch.setattr(sim_module, "find_dbus_daemon", lambda: str(fake))
    daemon = sim_module.DbusDaemon()
    try:
        with pytest.raises(DeviceConnectionError, match="did not print its address"):
            daemon.start(timeout=0.5)
        assert daemon.proc is None          # the stuck process was stopped
    finally:
        daemon.close()


def test_malformed_peers_never_take_the_monitor_down(monitor: VictronMonitor,
                                                     sim: VictronSim) -> None:
    from pyburnerkit.victron.sim import SimService

    class Broken(SimService):
        def handle(self, msg: Any) -> None:
            if msg.get_member() == "GetItems":
                self.reply(msg, "s", "not a dict")           # wrong reply type
            else:
                super().handle(msg)

    def add() -> None:
        svc = Broken(sim, "com.victronenergy.tank.broken", {"/DeviceInstance": 8})
        svc.connect()
        sim.services[svc.name] = svc
        svc.signal("/Level", "PropertiesChanged", "s", "garbage")   # wrong signal payload
        svc.signal("/", "ItemsChanged", "as", ["garbage"])
    sim.run_on_thread(add)
    sim.add_service("com.victronenergy.tank.good", {"/DeviceInstance": 9, "/Level": 3.0})
    assert monitor.wait_for_service("com.victronenergy.tank.good", timeout=5).get("/Level") == 3.0
    assert monitor.connected and monitor.service("com.victronenergy.tank.broken") is None
    with pytest.raises(ConfigurationError):
        monitor.read_value("not a bus name!", "/Level")
    assert monitor.read_value(sim.GRID, "/Ac/Power", timeout=5) == 1500.0


def test_a_failing_text_never_breaks_the_service(monitor: VictronMonitor,
                                                 sim: VictronSim) -> None:
    svc = VictronService(NAME, bus=sim.address)
    svc.add_mandatory_paths(device_instance=47)
    svc.add_item("/X", 1.0, text=lambda v: "ok" if v < 1.5 else 1 / 0)
    with pytest.raises(ConfigurationError, match="cannot format"):
        svc.add_item("/Y", 1.5, text="{:d} W")
    svc.register()
    try:
        monitor.wait_for_service(NAME, timeout=5)
        svc.set("/X", 2.0)
        assert monitor.wait_for_value(NAME, "/X", lambda v: v == 2.0, timeout=5) == 2.0
        assert monitor.get_text(NAME, "/X") == "2"             # the default text instead
        assert monitor.read_items(NAME, timeout=5)["/X"].text == "2"
        assert svc.connected
    finally:
        svc.close()


def test_work_the_pump_was_too_late_for_never_runs() -> None:
    # A caller that gave up (e.g. opening a connection) must not have its work done later
    # for nobody: that would be a connection no one closes.
    from pyburnerkit.victron.bus import PUMP
    PUMP.acquire()
    gate = threading.Event()
    stuck = threading.Event()
    late = threading.Event()

    def hold_the_pump() -> None:
        stuck.set()
        gate.wait(10)
    busy = threading.Thread(target=PUMP.run_in_pump, args=(hold_the_pump,),
                            name="busy-pump-user")
    try:
        busy.start()
        assert stuck.wait(10)
        with pytest.raises(TimeoutError):
            PUMP.run_in_pump(late.set, timeout=0.2)     # the pump is stuck in gate.wait
        gate.set()
        assert PUMP.run_in_pump(lambda: "flushed", timeout=10) == "flushed"   # FIFO: after it
        assert not late.is_set()
    finally:
        gate.set()
        busy.join(10)
        PUMP.release()


def test_every_message_goes_out_from_the_pump_thread(monitor: VictronMonitor,
                                                     sim: VictronSim, monkeypatch) -> None:
    from pyburnerkit.victron import bus
    ran_on: List[str] = []
    real_post = bus.PUMP.post

    def recording_post(fn: Any) -> None:
        def wrapped() -> None:
            ran_on.append(threading.current_thread().name)
            fn()
        real_post(wrapped)
    monkeypatch.setattr(bus.PUMP, "post", recording_post)
    svc = VictronService(NAME, bus=sim.address)
    svc.add_mandatory_paths(device_instance=48)
    svc.add_item("/Mode", 1, writable=True)
    svc.register()                                  # RequestName
    try:
        monitor.wait_for_service(NAME, timeout=5)   # the monitor's scan
        monitor.set_value(NAME, "/Mode", 4)         # a call, a reply and an ItemsChanged
        svc.set("/Mode", 1)                         # a signal
        assert monitor.wait_for_value(NAME, "/Mode", lambda v: v == 1, timeout=5) == 1
    finally:
        svc.close()
    assert len(ran_on) >= 6
    assert set(ran_on) == {bus.PUMP_THREAD_NAME}


def test_introspection_matches_what_is_answered(sim: VictronSim, raw: Any) -> None:
    svc = VictronService(NAME, bus=sim.address)
    svc.add_mandatory_paths(device_instance=49)
    svc.add_item("/Ac/Power", 1.0)
    svc.register()
    try:
        def xml(path: str) -> str:
            return str(raw.call_blocking(NAME, path, "org.freedesktop.DBus.Introspectable",
                                         "Introspect", "", (), timeout=5))
        root, item = xml("/"), xml("/Ac/Power")
        assert "<node name='Ac'/>" in root and "<node name='Mgmt'/>" in root
        assert "name='GetText'><arg direction='out' type='v'/>" in root     # velib's dict
        assert "name='GetText'><arg direction='out' type='s'/>" in item
        assert isinstance(raw.call_blocking(NAME, "/", codec.BUSITEM, "GetText", "", (),
                                            timeout=5), dbus.Dictionary)
    finally:
        svc.close()


def test_values_set_just_before_close_still_reach_the_bus(sim: VictronSim) -> None:
    """``set()`` queues; ``close()`` right after a burst used to drop what libdbus had not
    written yet (the last ~700 of 3000 values never arrived). The close now waits, bounded,
    until the bus has read everything sent."""
    from pyburnerkit.victron import ValuesChanged
    name = "com.victronenergy.grid.burstclose"
    got: List[Any] = []
    gone = threading.Event()

    def on_event(ev: Any) -> None:
        if isinstance(ev, ValuesChanged) and ev.service == name and "/Ac/Power" in ev.values:
            got.append(ev.values["/Ac/Power"].value)
        elif isinstance(ev, ServiceRemoved) and ev.name == name:
            gone.set()
    with VictronMonitor(sim.address, timeout=5.0) as mon:
        mon.subscribe(on_event)
        mon.connect()
        for round_ in range(5):
            got.clear()
            gone.clear()
            svc = VictronService(name, bus_address=sim.address)
            svc.add_mandatory_paths(device_instance=44)
            svc.add_item("/Ac/Power", 0.0)
            svc.register()
            mon.wait_for_service(name)
            for i in range(1, 3001):
                svc.set("/Ac/Power", float(i))
            assert svc.close()
            assert gone.wait(30), "the service never went away"
            assert got and got[-1] == 3000.0, \
                f"round {round_}: {len(got)} values arrived, the last {got[-1:]}"


def test_a_stalled_daemon_costs_a_close_at_most_the_flush_bound(sim: VictronSim) -> None:
    """The close-time flush waits for the bus's answer; a daemon that stopped answering must
    not hold ``close()`` beyond ``CLOSE_FLUSH_S`` (a warning says the last messages may be
    lost)."""
    import logging
    import os
    import signal
    import time

    from pyburnerkit.victron.client import CLOSE_FLUSH_S
    svc = VictronService("com.victronenergy.grid.stalled", bus_address=sim.address)
    svc.add_mandatory_paths(device_instance=46)
    svc.add_item("/Ac/Power", 0.0)
    svc.register()
    daemon = sim.daemon.proc
    assert daemon is not None
    os.kill(daemon.pid, signal.SIGSTOP)
    try:
        for i in range(100):
            svc.set("/Ac/Power", float(i))
        # a handler on the module's logger itself: what other tests did to the logging
        # configuration (a CLI test's handlers, propagation) cannot hide the warning
        warnings: List[str] = []
        handler = logging.Handler(logging.WARNING)
        handler.emit = lambda record: warnings.append(record.getMessage())  # type: ignore
        logger = logging.getLogger("pyburnerkit.victron.client")
        level = logger.level
        logger.setLevel(logging.WARNING)
        logger.addHandler(handler)
        try:
            started = time.monotonic()
            assert svc.close(timeout=CLOSE_FLUSH_S + 4)
            took = time.monotonic() - started
        finally:
            logger.removeHandler(handler)
            logger.setLevel(level)
        assert CLOSE_FLUSH_S * 0.9 <= took < CLOSE_FLUSH_S + 4, took
        assert any("did not take in what was sent" in w for w in warnings), warnings
    finally:
        os.kill(daemon.pid, signal.SIGCONT)
