"""Regression tests of the hardening issue: hostile peers, write opt-in and limits, docstrings.

Every test here failed before its fix (see the report of the hardening work).
"""

from __future__ import annotations

import inspect
import logging
from typing import Any, List

import dbus
import pytest

from pyburnerkit.cli.main import main
from pyburnerkit.errors import ConfigurationError, WriteNotAllowedError
from pyburnerkit.victron import Setting, VictronMonitor, VictronService
from pyburnerkit.victron import compat
from pyburnerkit.victron.client import VictronSettings
from pyburnerkit.victron.sim import SimService, VictronSim

HOSTILE = "com.victronenergy.tank.hostile"
GOOD = "com.victronenergy.tank.good"


def _entry(**fields: Any) -> Any:
    return dbus.Dictionary(fields, signature="sv")


def _hostile_items() -> Any:
    """A GetItems answer with one good entry and several a buggy producer could send."""
    return dbus.Dictionary({
        "/DeviceInstance": _entry(Value=dbus.Int32(7, variant_level=1),
                                  Text=dbus.String("7", variant_level=1)),
        "/Level": _entry(Value=dbus.Double(42.0, variant_level=1),
                         Text=dbus.String("42 %", variant_level=1)),
        "/BadText": _entry(Value=dbus.Int32(1, variant_level=1),
                           Text=dbus.Byte(0xDA, variant_level=1)),          # the reported one
        "/BadValue": _entry(Value=dbus.Struct((dbus.Byte(0xDA), dbus.ObjectPath("/x")),
                                              variant_level=1),
                            Text=dbus.Struct((dbus.Byte(0xFF),), variant_level=1)),
        "not a path": _entry(Value=dbus.Int32(1, variant_level=1)),
    }, signature="sa{sv}")


class Hostile(SimService):
    """A peer on the real bus whose GetItems and signals carry garbage."""

    def handle(self, msg: Any) -> None:
        if msg.get_member() == "GetItems":
            self.reply(msg, "a{sa{sv}}", _hostile_items())
        else:
            super().handle(msg)

    def send_garbage(self) -> None:
        self.signal("/", "ItemsChanged", "a{sa{sv}}", dbus.Dictionary({
            "/Level": _entry(Value=dbus.Double(43.0, variant_level=1),
                             Text=dbus.Byte(0xDA, variant_level=1)),
            "/Other": _entry(Value=dbus.Array([dbus.Byte(0xDA)], signature="y",
                                              variant_level=1),
                             Text=dbus.Array([dbus.String("x")], signature="s",
                                             variant_level=1))}, signature="sa{sv}"))
        self.signal("/", "ItemsChanged", "a{ya{sv}}", dbus.Dictionary(
            {dbus.Byte(0xDA): _entry(Value=dbus.Int32(1, variant_level=1))}, signature="ya{sv}"))
        self.signal("/Level", "PropertiesChanged", "a{sv}",
                    _entry(Value=dbus.Double(44.0, variant_level=1),
                           Text=dbus.Byte(0xC3, variant_level=1)))
        self.signal("/Level", "PropertiesChanged", "a{yv}",
                    dbus.Dictionary({dbus.Byte(0xDA): dbus.Int32(1, variant_level=1)},
                                    signature="yv"))
        self.signal("/Level", "PropertiesChanged", "a{sv}",
                    _entry(Min=dbus.String("low", variant_level=1),
                           Max=dbus.Byte(0xDA, variant_level=1)))
        self.signal("/", "ItemsChanged", "i", dbus.Int32(5))
        # Then a well-formed change, which must still be applied.
        self.signal("/", "ItemsChanged", "a{sa{sv}}", dbus.Dictionary({
            "/Level": _entry(Value=dbus.Double(45.0, variant_level=1),
                             Text=dbus.String("45 %", variant_level=1))}, signature="sa{sv}"))


def test_a_hostile_service_costs_only_its_own_entries(sim: VictronSim, caplog) -> None:
    caplog.set_level(logging.WARNING, logger="pyburnerkit.victron")
    with VictronMonitor(sim.address, timeout=5.0,
                        service_types={"com.victronenergy.tank": None}) as monitor:
        hostile = Hostile(sim, HOSTILE, {"/DeviceInstance": 7, "/Level": 42.0})

        def export() -> None:
            hostile.connect()
            sim.services[HOSTILE] = hostile
        sim.run_on_thread(export)
        info = monitor.wait_for_service(HOSTILE, timeout=5)
        assert info.get("/Level") == 42.0 and info.device_instance == 7
        assert set(info.values) == {"/DeviceInstance", "/Level"}   # the garbage cost only itself
        sim.run_on_thread(hostile.send_garbage)
        assert monitor.wait_for_value(HOSTILE, "/Level", lambda v: v == 45.0, timeout=5) == 45.0
        sim.add_service(GOOD, {"/DeviceInstance": 9, "/Level": 3.0})
        assert monitor.wait_for_service(GOOD, timeout=5).get("/Level") == 3.0
        assert monitor.connected and monitor.read_value(GOOD, "/Level", timeout=5) == 3.0
        assert monitor.protocol_errors >= 5
    warnings = [r for r in caplog.records if HOSTILE in r.getMessage()]
    assert len(warnings) == 1, [r.getMessage() for r in warnings]     # logged once


def test_a_hostile_reply_to_read_items_is_a_protocol_error(sim: VictronSim) -> None:
    from pyburnerkit.errors import ProtocolError
    with VictronMonitor(sim.address, timeout=5.0,
                        service_types={"com.victronenergy.tank": None}) as monitor:
        hostile = Hostile(sim, HOSTILE, {"/DeviceInstance": 7})

        def export() -> None:
            hostile.connect()
            sim.services[HOSTILE] = hostile
        sim.run_on_thread(export)
        monitor.wait_for_service(HOSTILE, timeout=5)
        with pytest.raises(ProtocolError, match="/BadText"):
            monitor.read_items(HOSTILE, timeout=5)
        assert monitor.read_value(HOSTILE, "/DeviceInstance", timeout=5) == 7


# ---------------------------------------------------------------------- writes: opt-in
def test_settings_add_needs_allow_writes(sim: VictronSim) -> None:
    with VictronMonitor(sim.address, timeout=5.0) as monitor:
        before = sim.calls(sim.settings.name, "AddSettings")
        with pytest.raises(WriteNotAllowedError, match="allow_writes"):
            monitor.settings.add([Setting("/Settings/Pbk/Limit", 5, 0, 10)])
        with pytest.raises(WriteNotAllowedError):
            monitor.settings.allocate_instance("pbk_SN1", "grid", 30)
        assert sim.calls(sim.settings.name, "AddSettings") == before
        assert "/Settings/Pbk/Limit" not in sim.settings.settings


def test_a_service_allocates_its_instance_only_with_allow_writes(sim: VictronSim) -> None:
    with VictronService("com.victronenergy.grid.pbkguard", bus=sim.address) as svc:
        svc.connect()
        with pytest.raises(WriteNotAllowedError, match="allow_writes"):
            svc.allocate_device_instance("pbk_guard", "grid", 30)
        assert sim.calls(sim.settings.name, "AddSettings") == 0
    with VictronService("com.victronenergy.grid.pbkguard", bus=sim.address,
                        allow_writes=True) as svc:
        svc.connect()
        assert svc.allocate_device_instance("pbk_guard", "grid", 30) == 30


# ---------------------------------------------------------------------- writes: limits
def test_settings_limits_are_checked_before_sending(sim: VictronSim) -> None:
    with VictronMonitor(sim.address, timeout=5.0, allow_writes=True,
                        service_types={"com.victronenergy.battery": None}) as monitor:
        monitor.settings.add([Setting("/Settings/Pbk/Current", 10, 0, 50, unit="A")])
        writes = sim.settings_writes
        with pytest.raises(ConfigurationError) as err:
            monitor.settings.set("/Settings/Pbk/Current", 75)
        message = str(err.value)
        assert "75" in message and "0..50" in message and "A" in message
        assert sim.settings_writes == writes                  # nothing reached the bus
        monitor.settings.set("/Settings/Pbk/Current", 20)
        assert sim.settings_writes == writes + 1


def test_limits_the_bus_reports_are_checked_even_for_unknown_settings(sim: VictronSim,
                                                                      raw: Any) -> None:
    # Another program created the setting: its limits come from GetMin/GetMax.
    from pyburnerkit.victron import codec
    root = raw.get_object("com.victronenergy.settings", "/")
    root.AddSettings(codec.add_settings_request(
        [{"path": "/Settings/Other/Level", "default": 5, "min": 1, "max": 9}]),
        dbus_interface="com.victronenergy.Settings")
    with VictronMonitor(sim.address, timeout=5.0, allow_writes=True,
                        service_types={"com.victronenergy.battery": None}) as monitor:
        writes = sim.settings_writes
        with pytest.raises(ConfigurationError, match=r"12.*1\.\.9"):
            monitor.set_value("com.victronenergy.settings", "/Settings/Other/Level", 12)
        with pytest.raises(ConfigurationError, match=r"1\.\.9"):
            monitor.set_value_nowait("com.victronenergy.settings", "/Settings/Other/Level",
                                     0).result(5)
        assert sim.settings_writes == writes
        monitor.set_value("com.victronenergy.settings", "/Settings/Other/Level", 8)
        assert sim.settings_writes == writes + 1


def test_a_setting_with_a_default_out_of_its_range_is_refused(sim: VictronSim) -> None:
    with VictronMonitor(sim.address, timeout=5.0, allow_writes=True) as monitor:
        with pytest.raises(ConfigurationError, match=r"min 10.*max 5"):
            monitor.settings.add([Setting("/Settings/Pbk/Odd", 7, 10, 5)])
        assert sim.calls(sim.settings.name, "AddSettings") == 0


# ---------------------------------------------------------------------- CLI
def test_cli_set_needs_allow_writes(sim: VictronSim, capsys) -> None:
    assert main(["victron", "set", sim.SOLAR, "/Mode", "4", "--bus-address", sim.address]) == 2
    err = capsys.readouterr().err
    assert "--allow-writes" in err and "Traceback" not in err and len(err.splitlines()) == 1
    assert sim.set_calls(sim.SOLAR, "/Mode") == 0 and sim.value(sim.SOLAR, "/Mode") == 1


# ---------------------------------------------------------------------- docstrings
WRITE_METHODS: List[Any] = [
    VictronMonitor.set_value, VictronMonitor.set_value_nowait, VictronSettings.add,
    compat.VictronSettings.add_settings, VictronSettings.set, VictronSettings.remove,
    VictronSettings.allocate_instance, VictronService.allocate_device_instance,
]


@pytest.mark.parametrize("method", WRITE_METHODS, ids=lambda m: m.__qualname__)
def test_every_write_method_says_a_timed_out_write_may_still_apply(method: Any) -> None:
    doc = " ".join(inspect.getdoc(method).split())
    assert ("If this call times out, the device may still apply the write later; it is never "
            "retried automatically.") in doc
