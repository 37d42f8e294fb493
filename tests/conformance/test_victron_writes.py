"""Write safety for Victron: every operation that changes something on the bus (a service's
value, localsettings) is listed here, refused without the opt-in with nothing reaching the
simulated bus, checked against the limits the bus reports before sending, and never retried.

Library names are as a user calls them on the client: ``VictronMonitor.set_value``,
``VictronMonitor.settings.add`` (``settings.*`` is :class:`VictronSettings`), and
``VictronService.allocate_device_instance``; ``settings.add_settings`` (aiovelib's name) is
the compat monitor's (:mod:`pyburnerkit.victron.compat`). Publishing a service's *own* values
(``VictronService.set/update/batch/add_item/register``) changes no other device and is not a
write in this sense.
"""

from __future__ import annotations

from typing import Any, Callable, Dict, Iterator, List, Tuple

import pytest

from pyburnerkit.cli.main import main
from pyburnerkit.errors import ConfigurationError, DeviceTimeoutError, WriteNotAllowedError
from pyburnerkit.victron import Setting, VictronMonitor, VictronService, compat
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


def client_for(sim: VictronSim, kind: str, allow_writes: bool) -> Any:
    """A new client of ``kind``: "monitor", "compat" (the compat monitor) or "service"."""
    if kind == "monitor":
        return monitor_for(sim, allow_writes)
    if kind == "compat":
        return compat_monitor_for(sim, allow_writes)
    return service_for(sim, allow_writes)


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
}

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
        if kind in ("monitor", "compat"):
            client.settings.add([Setting(LIMITED, 10, 0, 50)])   # its limits are now known
        before = writes_received(sim)
        sim.hold_replies(0.6)                     # the device is slow, not dead
        client.timeout = 0.2
        with pytest.raises(DeviceTimeoutError):
            call(client)
        sim.hold_replies(0.0)
        client.timeout = 5.0
        # The held write is applied late (the device recovered): wait for its effect. A
        # retry would have been sent when the call timed out, so it would have arrived by now.
        wait_until(lambda: APPLIED[op.name](sim), timeout=5, message="the late write applied")
        if kind in ("monitor", "compat"):
            client.read_value(SETTINGS, LIMITED)   # and flush our own outgoing queue
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
}
