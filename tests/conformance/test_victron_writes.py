"""Write safety for Victron: every operation that changes something on the bus (a service's
value, localsettings) is listed here, refused without the opt-in with nothing reaching the
simulated bus, checked against the limits the bus reports before sending, and never retried.

Library names are as a user calls them on the client: ``VictronMonitor.set_value``,
``VictronMonitor.settings.add`` (``settings.*`` is :class:`VictronSettings`), and
``VictronService.allocate_device_instance``; ``settings.add_settings`` (aiovelib's name) is
the compat monitor's (:mod:`pyburnerkit.victron.compat`). ``call_method`` (and its aiovelib
name ``dbus_call``) sends any D-Bus method: only a short list known to only read goes without
the opt-in, and a SetValue sent through it is checked against the path's limits as
``set_value`` is. ``compat.Monitor.*`` are the methods of aiovelib's ``Monitor``
(:mod:`pyburnerkit.victron.compat.client`), ``compat.handler.*`` those of its per-service
handler objects (``Service``, and ``SettingsService`` of
:mod:`pyburnerkit.victron.compat.localsettings` for ``add_settings``). Publishing a service's
*own* values (``VictronService.set/update/batch/add_item/register``) changes no other device
and is not a write in this sense.
"""

from __future__ import annotations

from typing import Any, Callable, Dict, Iterator, List, Tuple

import pytest

from pyburnerkit.cli.main import main
from pyburnerkit.errors import ConfigurationError, DeviceTimeoutError, WriteNotAllowedError
from pyburnerkit.victron import Setting, VictronMonitor, VictronService, compat
from pyburnerkit.victron.compat.client import Monitor as AioMonitor
from pyburnerkit.victron.compat.client import Service as AioService
from pyburnerkit.victron.compat.client import Variant, servicetype
from pyburnerkit.victron.compat.localsettings import Setting as AioSetting
from pyburnerkit.victron.compat.localsettings import SettingsService
from pyburnerkit.victron.sim import VictronSim

from ..helpers import wait_until
from .stress import WriteOp

SETTINGS = "com.victronenergy.settings"
LIMITED = "/Settings/Writes/Current"       # 0..50 A, created by the fixture
REMOVABLE = "/Settings/Writes/Spare"

WRITE_OPERATIONS: List[WriteOp] = [
    WriteOp("set_value", note="VictronMonitor: SetValue on any service's path"),
    WriteOp("set_value_nowait", note="VictronMonitor: SetValue, answer in a Future"),
    WriteOp("settings.add", note="VictronSettings (monitor.settings): AddSettings"),
    WriteOp("settings.add_settings", note="compat.VictronSettings (aiovelib's name): the "
                                          "same as add"),
    WriteOp("settings.set", note="VictronSettings: SetValue on a setting"),
    WriteOp("settings.remove", note="VictronSettings: RemoveSettings (takes no value)"),
    WriteOp("settings.allocate_instance", note="VictronSettings: AddSettings of "
                                               "ClassAndVrmInstance"),
    WriteOp("allocate_device_instance", note="VictronService: AddSettings of its "
                                             "ClassAndVrmInstance in localsettings"),
    WriteOp("call_method", note="VictronMonitor: any D-Bus method; read-only ones listed in "
                                "the client go without the opt-in, SetValue is limit-checked"),
    WriteOp("dbus_call", note="compat.VictronMonitor (aiovelib's name): call_method"),
    WriteOp("compat.Monitor.set_value", note="compat.client.Monitor: SetValue (aiovelib)"),
    WriteOp("compat.Monitor.set_value_async",
            note="compat.client.Monitor: SetValue, a Future back (aiovelib)"),
    WriteOp("compat.Monitor.dbus_call", note="compat.client.Monitor: call_method (aiovelib)"),
    WriteOp("compat.handler.set_value", note="compat.client.Service handler: SetValue on "
                                             "its service"),
    WriteOp("compat.handler.set_value_async",
            note="compat.client.Service handler: SetValue, a Future back"),
    WriteOp("compat.handler.add_settings", note="compat.localsettings.SettingsService "
                                                "handler: AddSettings"),
    WriteOp("set", kind="cli", note="pyburnerkit victron set SERVICE PATH VALUE"),
]

#: The D-Bus methods that change something, counted by the simulator on receipt.
WRITE_MEMBERS = ("SetValue", "AddSettings", "AddSetting", "AddSilentSetting", "RemoveSettings",
                 "SetDefault")


def writes_received(sim: VictronSim) -> int:
    names = [SETTINGS] + list(sim.services)
    return sum(sim.calls(name, member) for name in names for member in WRITE_MEMBERS)


@pytest.fixture
def sim() -> Iterator[VictronSim]:
    simulator = VictronSim(interval=0).start()
    try:
        with VictronMonitor(simulator.address, allow_writes=True) as setup:
            setup.settings.add([Setting(LIMITED, 10, 0, 50), Setting(REMOVABLE, 1)])
        yield simulator
    finally:
        simulator.close()


def monitor_for(sim: VictronSim, allow_writes: bool) -> VictronMonitor:
    return VictronMonitor(sim.address, allow_writes=allow_writes, timeout=5.0)


def compat_monitor_for(sim: VictronSim, allow_writes: bool) -> compat.VictronMonitor:
    return compat.VictronMonitor(sim.address, allow_writes=allow_writes, timeout=5.0)


def aiovelib_monitor_for(sim: VictronSim, allow_writes: bool,
                         settings_handler: bool = False) -> AioMonitor:
    """aiovelib's Monitor tracking the solar charger and localsettings, with generic handlers
    (every path tracked) or, with ``settings_handler``, localsettings' SettingsService. The
    handlers are passed, not registered, so no other test sees them."""
    settings = SettingsService if settings_handler else AioService
    return AioMonitor(sim.address, handlers={servicetype(VictronSim.SOLAR): AioService,
                                              SETTINGS: settings},
                       allow_writes=allow_writes, timeout=5.0)


def client_for(sim: VictronSim, kind: str, allow_writes: bool) -> Any:
    """A new client of ``kind``: "monitor", "compat" (the compat monitor), "service",
    "aiovelib" (aiovelib's Monitor) or "aiosettings" (the same with SettingsService)."""
    if kind == "monitor":
        return monitor_for(sim, allow_writes)
    if kind == "compat":
        return compat_monitor_for(sim, allow_writes)
    if kind in ("aiovelib", "aiosettings"):
        return aiovelib_monitor_for(sim, allow_writes, kind == "aiosettings")
    return service_for(sim, allow_writes)


def native_of(client: Any) -> Any:
    """The client whose ``timeout`` and reads the tests drive (aiovelib's Monitor wraps one)."""
    return client.native if isinstance(client, AioMonitor) else client


def handler(monitor: AioMonitor, name: str) -> Any:
    """aiovelib's handler object of ``name`` (scanned when the monitor connected)."""
    found = monitor.get_service(name)
    assert found is not None, f"no handler for {name}"
    return found


def service_for(sim: VictronSim, allow_writes: bool) -> VictronService:
    svc = VictronService("com.victronenergy.grid.writes", bus=sim.address,
                         allow_writes=allow_writes, timeout=5.0)
    svc.add_mandatory_paths(device_instance=0)
    return svc


def cli(sim: VictronSim, *words: str) -> int:
    return main(["victron", *words, "--bus-address", sim.address])


# Each operation, called with a good value: ``run(client)`` on a connected client of ``kind``.
GOOD: Dict[str, Tuple[str, Callable[[Any], Any]]] = {
    "set_value": ("monitor", lambda m: m.set_value(VictronSim.SOLAR, "/Mode", 4)),
    "set_value_nowait": ("monitor",
                         lambda m: m.set_value_nowait(VictronSim.SOLAR, "/Mode", 4).result(5)),
    "settings.add": ("monitor", lambda m: m.settings.add([Setting("/Settings/Writes/New", 3)])),
    "settings.add_settings": ("compat", lambda m: m.settings.add_settings(
        [Setting("/Settings/Writes/New", 3)])),
    "settings.set": ("monitor", lambda m: m.settings.set(LIMITED, 20)),
    "settings.remove": ("monitor", lambda m: m.settings.remove([REMOVABLE])),
    "settings.allocate_instance": ("monitor",
                                   lambda m: m.settings.allocate_instance("wr_A", "grid", 40)),
    "allocate_device_instance": ("service",
                                 lambda s: s.allocate_device_instance("wr_B", "grid", 40)),
    "call_method": ("monitor", lambda m: m.call_method(VictronSim.SOLAR, "/Mode", "SetValue",
                                                       "v", 4)),
    "dbus_call": ("compat", lambda m: m.dbus_call(VictronSim.SOLAR, "/Mode", "SetValue", "v",
                                                  4)),
    "compat.Monitor.set_value": ("aiovelib", lambda m: _accepted(
        m.set_value(VictronSim.SOLAR, "/Mode", 4))),
    "compat.Monitor.set_value_async": ("aiovelib", lambda m: _future(
        m.set_value_async(VictronSim.SOLAR, "/Mode", 4))),
    "compat.Monitor.dbus_call": ("aiovelib", lambda m: m.dbus_call(
        VictronSim.SOLAR, "/Mode", "SetValue", "v", 4)),
    "compat.handler.set_value": ("aiovelib", lambda m: _accepted(
        handler(m, VictronSim.SOLAR).set_value("/Mode", 4))),
    "compat.handler.set_value_async": ("aiovelib", lambda m: _future(
        handler(m, VictronSim.SOLAR).set_value_async("/Mode", 4))),
    "compat.handler.add_settings": ("aiosettings", lambda m: handler(m, SETTINGS).add_settings(
        AioSetting("/Settings/Writes/New", 3))),
}


def _accepted(code: int) -> None:
    """aiovelib's set_value answers the service's code instead of raising: 0 is accepted."""
    assert code == 0, f"SetValue answered {code}"


def _future(answer: Any) -> Any:
    """aiovelib's set_value_async answers -1 for a path not in the cache, else a Future."""
    assert answer != -1, "set_value_async found the path not in the cache"
    return answer.result(5)

# Each value-taking operation with a value outside the limits the bus (or the protocol) sets,
# and what its error must name: the value, the limits, and the unit where one is known.
OUT_OF_LIMITS: Dict[str, Tuple[str, Callable[[Any], Any], List[str]]] = {
    "set_value": ("monitor", lambda m: m.set_value(SETTINGS, LIMITED, 75), ["75", "0..50"]),
    "set_value_nowait": ("monitor", lambda m: m.set_value_nowait(SETTINGS, LIMITED,
                                                                 -1).result(5), ["-1", "0..50"]),
    "settings.add": ("monitor", lambda m: m.settings.add(
        [Setting("/Settings/Writes/Volts", 60.0, 40.0, 58.0, unit="V")]),
        ["60", "40..58", "V"]),
    "settings.add_settings": ("compat", lambda m: m.settings.add_settings(
        [Setting("/Settings/Writes/Volts", 30.0, 40.0, 58.0, unit="V")]),
        ["30", "40..58", "V"]),
    "settings.set": ("monitor", lambda m: m.settings.set(LIMITED, 51), ["51", "0..50"]),
    "settings.allocate_instance": ("monitor", lambda m: m.settings.allocate_instance(
        "wr_C", "grid", -1), ["-1", "0..2147483647"]),
    "allocate_device_instance": ("service", lambda s: s.allocate_device_instance(
        "wr_D", "grid", 2 ** 31), ["2147483648", "0..2147483647"]),
    "call_method": ("monitor", lambda m: m.call_method(SETTINGS, LIMITED, "SetValue", "v", 75),
                    ["75", "0..50"]),
    "dbus_call": ("compat", lambda m: m.dbus_call(SETTINGS, LIMITED, "SetValue", "v", 60),
                  ["60", "0..50"]),
    "compat.Monitor.set_value": ("aiovelib", lambda m: m.set_value(SETTINGS, LIMITED, 51),
                                 ["51", "0..50"]),
    "compat.Monitor.set_value_async": ("aiovelib", lambda m: _future(
        m.set_value_async(SETTINGS, LIMITED, 52)), ["52", "0..50"]),
    "compat.Monitor.dbus_call": ("aiovelib", lambda m: m.dbus_call(
        SETTINGS, LIMITED, "SetValue", "v", Variant("i", 53)), ["53", "0..50"]),
    "compat.handler.set_value": ("aiovelib", lambda m: handler(m, SETTINGS).set_value(
        LIMITED, 54), ["54", "0..50"]),
    "compat.handler.set_value_async": ("aiovelib", lambda m: _future(
        handler(m, SETTINGS).set_value_async(LIMITED, -2)), ["-2", "0..50"]),
    "compat.handler.add_settings": ("aiosettings", lambda m: handler(m, SETTINGS).add_settings(
        AioSetting("/Settings/Writes/Amps", 70, 0, 60, unit="A")),
        ["70", "0..60", "A"]),
}


def run_with(sim: VictronSim, kind: str, allow_writes: bool, call: Callable[[Any], Any]) -> Any:
    client = client_for(sim, kind, allow_writes)
    with client:
        client.connect()
        return call(client)


def test_the_table_names_every_write_once() -> None:
    names = [(op.kind, op.name) for op in WRITE_OPERATIONS]
    assert len(names) == len(set(names))
    assert {op.name for op in WRITE_OPERATIONS if op.kind == "library"} == set(GOOD)


@pytest.mark.parametrize("op", WRITE_OPERATIONS, ids=lambda op: f"{op.kind}:{op.name}")
def test_refused_without_the_opt_in_and_nothing_is_sent(sim: VictronSim, op: WriteOp,
                                                        capsys) -> None:
    before = writes_received(sim)
    if op.kind == "cli":
        assert cli(sim, "set", VictronSim.SOLAR, "/Mode", "4") == 2
        err = capsys.readouterr().err
        assert "--allow-writes" in err and len(err.strip().splitlines()) == 1
    else:
        kind, call = GOOD[op.name]
        with pytest.raises(WriteNotAllowedError, match="allow_writes"):
            run_with(sim, kind, False, call)
    assert writes_received(sim) == before
    assert sim.value(VictronSim.SOLAR, "/Mode") == 1


@pytest.mark.parametrize("op", [op for op in WRITE_OPERATIONS if op.name in OUT_OF_LIMITS
                                or op.kind == "cli"], ids=lambda op: f"{op.kind}:{op.name}")
def test_out_of_limits_values_are_refused_before_sending(sim: VictronSim, op: WriteOp,
                                                         capsys) -> None:
    before = writes_received(sim)
    if op.kind == "cli":
        assert cli(sim, "set", SETTINGS, LIMITED, "99", "--allow-writes") == 2
        message = capsys.readouterr().err
        expected = ["99", "0..50"]
    else:
        kind, call, expected = OUT_OF_LIMITS[op.name]
        with pytest.raises(ConfigurationError) as err:
            run_with(sim, kind, True, call)
        message = str(err.value)
    assert all(part in message for part in expected), message
    assert writes_received(sim) == before


@pytest.mark.parametrize("op", WRITE_OPERATIONS, ids=lambda op: f"{op.kind}:{op.name}")
def test_the_opt_in_lets_a_good_write_through(sim: VictronSim, op: WriteOp, capsys) -> None:
    before = writes_received(sim)
    if op.kind == "cli":
        assert cli(sim, "set", VictronSim.SOLAR, "/Mode", "4", "--allow-writes") == 0
    else:
        kind, call = GOOD[op.name]
        run_with(sim, kind, True, call)
    assert writes_received(sim) == before + 1


@pytest.mark.parametrize("op", [op for op in WRITE_OPERATIONS if op.kind == "library"],
                         ids=lambda op: op.name)
def test_a_timed_out_write_is_sent_once_and_never_retried(sim: VictronSim, op: WriteOp) -> None:
    kind, call = GOOD[op.name]
    client = client_for(sim, kind, True)
    with client:
        client.connect()
        native = native_of(client)
        monitors = ("monitor", "compat", "aiovelib", "aiosettings")
        if kind in monitors:
            native.settings.add([Setting(LIMITED, 10, 0, 50)])   # its limits are now known
        before = writes_received(sim)
        sim.hold_replies(0.6)                     # the device is slow, not dead
        native.timeout = 0.2
        with pytest.raises(DeviceTimeoutError):
            call(client)
        sim.hold_replies(0.0)
        native.timeout = 5.0
        # The held write is applied late (the device recovered): wait for its effect. A
        # retry would have been sent when the call timed out, so it would have arrived by now.
        wait_until(lambda: APPLIED[op.name](sim), timeout=5, message="the late write applied")
        if kind in monitors:
            native.read_value(SETTINGS, LIMITED)   # and flush our own outgoing queue
        assert writes_received(sim) == before + 1


def _setting(path: str) -> Callable[[VictronSim], bool]:
    return lambda sim: sim.run_on_thread(lambda: path in sim.settings.settings)


#: How to see that each GOOD write took effect on the simulator.
APPLIED: Dict[str, Callable[[VictronSim], bool]] = {
    "set_value": lambda sim: sim.value(VictronSim.SOLAR, "/Mode") == 4,
    "set_value_nowait": lambda sim: sim.value(VictronSim.SOLAR, "/Mode") == 4,
    "settings.add": _setting("/Settings/Writes/New"),
    "settings.add_settings": _setting("/Settings/Writes/New"),
    "settings.set": lambda sim: sim.run_on_thread(
        lambda: sim.settings.settings[LIMITED].value == 20),
    "settings.remove": lambda sim: not _setting(REMOVABLE)(sim),
    "settings.allocate_instance": _setting("/Settings/Devices/wr_A/ClassAndVrmInstance"),
    "allocate_device_instance": _setting("/Settings/Devices/wr_B/ClassAndVrmInstance"),
    "call_method": lambda sim: sim.value(VictronSim.SOLAR, "/Mode") == 4,
    "dbus_call": lambda sim: sim.value(VictronSim.SOLAR, "/Mode") == 4,
    "compat.Monitor.set_value": lambda sim: sim.value(VictronSim.SOLAR, "/Mode") == 4,
    "compat.Monitor.set_value_async": lambda sim: sim.value(VictronSim.SOLAR, "/Mode") == 4,
    "compat.Monitor.dbus_call": lambda sim: sim.value(VictronSim.SOLAR, "/Mode") == 4,
    "compat.handler.set_value": lambda sim: sim.value(VictronSim.SOLAR, "/Mode") == 4,
    "compat.handler.set_value_async": lambda sim: sim.value(VictronSim.SOLAR, "/Mode") == 4,
    "compat.handler.add_settings": _setting("/Settings/Writes/New"),
}


# ------------------------------------------------------------------ raw method calls
@pytest.mark.parametrize("kind, call", [
    ("monitor", lambda m, *a: m.call_method(*a)),
    ("compat", lambda m, *a: m.dbus_call(*a)),
    ("aiovelib", lambda m, *a: m.dbus_call(*a)),
], ids=["call_method", "dbus_call", "compat.Monitor.dbus_call"])
def test_a_raw_call_reads_freely_and_anything_else_needs_the_opt_in(sim: VictronSim, kind: str,
                                                                    call: Any) -> None:
    before = writes_received(sim)
    client = client_for(sim, kind, False)
    with client:
        client.connect()
        answer = call(client, VictronSim.SOLAR, "/Mode", "GetValue")   # known to only read
        assert answer in ([1], [Variant("i", 1)])
        with pytest.raises(WriteNotAllowedError, match="allow_writes"):
            call(client, VictronSim.SOLAR, "/Mode", "Frobnicate", "i", 1)  # not known: refused
    assert sim.calls(VictronSim.SOLAR, "Frobnicate") == 0
    assert writes_received(sim) == before


@pytest.mark.parametrize("member, signature, args, expected", [
    ("AddSettings", "aa{sv}", ([{"path": "/Writes/Raw", "default": 70, "min": 0, "max": 60}],),
     ["70", "0..60"]),
    ("AddSetting", "ssvsvv", ("Writes", "Legacy", 9, "i", 1, 5), ["9", "1..5"]),
], ids=["AddSettings", "AddSetting"])
def test_a_raw_call_creating_a_setting_checks_its_default_before_sending(
        sim: VictronSim, member: str, signature: str, args: Tuple[Any, ...],
        expected: List[str]) -> None:
    before = writes_received(sim)
    with monitor_for(sim, True) as monitor:
        monitor.connect()
        with pytest.raises(ConfigurationError) as err:
            monitor.call_method(SETTINGS, "/Settings", member, signature, *args,
                                interface="com.victronenergy.Settings")
    assert all(part in str(err.value) for part in expected), str(err.value)
    assert writes_received(sim) == before
