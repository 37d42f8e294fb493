"""Write safety of the Afterburner family: every device-changing operation, library and CLI.

The policy (docs/afterburner.rst, "Writes need allow_writes"):

* every row of ``WRITE_OPERATIONS`` is refused with :class:`WriteNotAllowedError` - a one-line
  message saying how to enable it (``allow_writes=True`` / ``--allow-writes``) - unless the
  client was opened with ``allow_writes=True``; the CLI exits with code 2 and one line, before
  it even connects. Nothing reaches the controller. That includes everyday operation (starting,
  set points, modes, timers, the clock, ``save``) and the pyBurner names of
  ``compat.Client``.
* ``ALWAYS_ALLOWED`` lists the only exceptions: the actions that make the heater safe -
  stopping it (``stop()``, ``run(False)``, ``compat.Client.set_runmode(0)``, CLI ``run off``) and
  stopping pump priming (``prime_pump(False)``). A program without the opt-in must still be
  able to shut a heater down, so these are never refused.

For every operation that takes a value, an out-of-limits value (given the opt-in) is a
:class:`ConfigurationError` (CLI: exit code 2) naming the value, the limit and the unit, raised
before anything is sent. A write that timed out is never sent again by any layer (the
controller may still apply it), and every write method's docstring says so.
"""

from __future__ import annotations

import datetime as dt
import inspect
import socket
from typing import Any, Callable, Dict, Iterator, List, NamedTuple, Sequence

import pytest

from pyburnerkit import ConfigurationError, DeviceTimeoutError, WriteNotAllowedError
from pyburnerkit._core.client import BaseClient
from pyburnerkit.afterburner import (AfterburnerClient, AfterburnerSim, DemandMode, RunState,
                                     ThermostatMethod, Timer)
from pyburnerkit.afterburner.client import QUERY_KEYS
from pyburnerkit.afterburner.compat import Client as PyBurnerClient
from pyburnerkit.cli.main import main

from ..helpers import wait_until
from .stress import WriteOp

TIMED_OUT_SENTENCE = ("If this call times out, the device may still apply the write later; "
                      "it is never retried automatically.")
OPT_IN = "opt-in: refused unless allow_writes=True / --allow-writes"
SAFE = "always allowed: it makes the heater safe"
#: Rows of pyBurner's names, which live on compat.Client, not on AfterburnerClient.
PYBURNER = "compat.Client (pyBurner name)"

WRITE_OPERATIONS: List[WriteOp] = [
    WriteOp("set", note=OPT_IN + " (every setting)"),
    WriteOp("run", note=OPT_IN + " for run(True); run(False) is in ALWAYS_ALLOWED"),
    WriteOp("start", note=OPT_IN),
    WriteOp("set_desired_temperature", note=OPT_IN),
    WriteOp("set_demand_mode", note=OPT_IN),
    WriteOp("set_thermostat", note=OPT_IN),
    WriteOp("set_cyclic", note=OPT_IN),
    WriteOp("set_frost", note=OPT_IN),
    WriteOp("set_humidity_start", note=OPT_IN),
    WriteOp("set_fan_limits", note=OPT_IN + " (mixture)"),
    WriteOp("set_pump_limits", note=OPT_IN + " (mixture)"),
    WriteOp("set_pump_calibration", note=OPT_IN + " (calibration)"),
    WriteOp("set_low_voltage_cutout", note=OPT_IN + " (supply protection)"),
    WriteOp("set_system_voltage", note=OPT_IN + " (supply)"),
    WriteOp("prime_pump", note=OPT_IN + " for prime_pump(True) (runs the fuel pump); "
                                        "prime_pump(False) is in ALWAYS_ALLOWED"),
    WriteOp("reset_fuel_gauge", note=OPT_IN),
    WriteOp("set_timer", note=OPT_IN),
    WriteOp("set_datetime", note=OPT_IN),
    WriteOp("save", note=OPT_IN + " (NVsave: persists the RAM settings)"),
    WriteOp("set_tempdesired", note=OPT_IN + "; " + PYBURNER),
    WriteOp("set_runmode", note=OPT_IN + " for set_runmode(1); set_runmode(0) is in "
                                         "ALWAYS_ALLOWED; " + PYBURNER),
    WriteOp("set_froston", note=OPT_IN + "; " + PYBURNER),
    WriteOp("set_frostrise", note=OPT_IN + "; " + PYBURNER),
    WriteOp("set_pumpreset", note=OPT_IN + "; " + PYBURNER),
    WriteOp("set_fanmin", note=OPT_IN + "; " + PYBURNER),
    WriteOp("set_fanmax", note=OPT_IN + "; " + PYBURNER),
    WriteOp("set_pumpmin", note=OPT_IN + "; " + PYBURNER),
    WriteOp("set_pumpmax", note=OPT_IN + "; " + PYBURNER),
    WriteOp("set_pumpcal", note=OPT_IN + "; " + PYBURNER),
    WriteOp("set_lowvoltcutout", note=OPT_IN + "; " + PYBURNER),
    WriteOp("set PumpMin=1.8", kind="cli", note=OPT_IN + " (a mixture setting)"),
    WriteOp("set desired_temperature=25", kind="cli", note=OPT_IN + " (a set point)"),
    WriteOp("run on", kind="cli", note=OPT_IN),
    WriteOp("save", kind="cli", note=OPT_IN),
]

#: The safety actions, never refused: a program without the opt-in can always shut down.
ALWAYS_ALLOWED: List[WriteOp] = [
    WriteOp("stop", note=SAFE),
    WriteOp("run", note=SAFE + ": run(False) only"),
    WriteOp("set_runmode", note=SAFE + ": set_runmode(0) only (pyBurner's stop); " + PYBURNER),
    WriteOp("prime_pump", note=SAFE + ": prime_pump(False) only (stops the fuel pump)"),
    WriteOp("run off", kind="cli", note=SAFE),
]

# A valid use of every library operation (timeouts short: the controller answers at once).
T = 3.0
LIBRARY_CALLS: Dict[str, Callable[[AfterburnerClient], Any]] = {
    "set": lambda c: c.set(T, desired_temperature=25),
    "run": lambda c: c.run(True, T),
    "start": lambda c: c.start(T),
    "set_desired_temperature": lambda c: c.set_desired_temperature(25, T),
    "set_demand_mode": lambda c: c.set_demand_mode(DemandMode.FIXED_HZ, T),
    "set_thermostat": lambda c: c.set_thermostat(ThermostatMethod.DEADBAND, window_c=1.5,
                                                 timeout=T),
    "set_cyclic": lambda c: c.set_cyclic(3, -2, T),
    "set_frost": lambda c: c.set_frost(4, 3, T),
    "set_humidity_start": lambda c: c.set_humidity_start(70, T),
    "set_fan_limits": lambda c: c.set_fan_limits(1700, 4400, T),
    "set_pump_limits": lambda c: c.set_pump_limits(1.7, 5.4, T),
    "set_pump_calibration": lambda c: c.set_pump_calibration(0.025, T),
    "set_low_voltage_cutout": lambda c: c.set_low_voltage_cutout(11.0, T),
    "set_system_voltage": lambda c: c.set_system_voltage(12, T),
    "prime_pump": lambda c: c.prime_pump(True, T),
    "reset_fuel_gauge": lambda c: c.reset_fuel_gauge(T),
    "set_timer": lambda c: c.set_timer(Timer(2, dt.time(6, 0), dt.time(7, 0),
                                             frozenset({"Mon"})), T),
    "set_datetime": lambda c: c.set_datetime(dt.datetime(2027, 3, 4, 5, 6, 7), T),
    "save": lambda c: c.save(T),
    "set_tempdesired": lambda c: c.set_tempdesired(24),
    "set_runmode": lambda c: c.set_runmode(1),
    "set_froston": lambda c: c.set_froston(4),
    "set_frostrise": lambda c: c.set_frostrise(6),
    "set_pumpreset": lambda c: c.set_pumpreset(),
    "set_fanmin": lambda c: c.set_fanmin(1700),
    "set_fanmax": lambda c: c.set_fanmax(4400),
    "set_pumpmin": lambda c: c.set_pumpmin(1.7),
    "set_pumpmax": lambda c: c.set_pumpmax(5.4),
    "set_pumpcal": lambda c: c.set_pumpcal(0.025),
    "set_lowvoltcutout": lambda c: c.set_lowvoltcutout(11.0),
}

# The safety actions, as a client without the opt-in uses them.
SAFE_CALLS: Dict[str, Callable[[AfterburnerClient], Any]] = {
    "stop": lambda c: c.stop(T),
    "run": lambda c: c.run(False, T),
    "set_runmode": lambda c: c.set_runmode(0),
    "prime_pump": lambda c: c.prime_pump(False, T),
}


class Bad(NamedTuple):
    """An out-of-limits use and what its message must name ("" when there is no unit)."""

    call: Any  # library: callable(client); cli: argv after "afterburner"
    value: str
    limit: str
    unit: str


BAD_VALUES: Dict[str, Sequence[Bad]] = {
    "set": [Bad(lambda c: c.set(desired_temperature=36), "36", "8..35", "°C"),
            Bad(lambda c: c.set(PumpMin=0.3), "0.3", "0.4..5", "Hz"),
            Bad(lambda c: c.set(ext_thermo_timeout=3_600_001), "3600001", "0..3600000", "ms")],
    "run": [Bad(lambda c: c.run(2), "2", "True/False", "")],
    "set_desired_temperature": [Bad(lambda c: c.set_desired_temperature(7), "7", "8..35", "°C"),
                                Bad(lambda c: c.set_desired_temperature(22.5), "22.5", "8..35",
                                    "°C")],
    "set_demand_mode": [Bad(lambda c: c.set_demand_mode(2), "2", "0 (FIXED_HZ), 1 (THERMOSTAT)",
                            "")],
    "set_thermostat": [Bad(lambda c: c.set_thermostat(5), "5", "4 (STOP_START)", ""),
                       Bad(lambda c: c.set_thermostat(window_c=0.1), "0.1", "0.2..10", "°C")],
    "set_cyclic": [Bad(lambda c: c.set_cyclic(11), "11", "2..10", "°C"),
                   Bad(lambda c: c.set_cyclic(1), "1", "2..10", "°C"),
                   Bad(lambda c: c.set_cyclic(3, 1), "1", "-20..0", "°C")],
    "set_frost": [Bad(lambda c: c.set_frost(31), "31", "0..30", "°C"),
                  Bad(lambda c: c.set_frost(5, -1), "-1", "0..30", "°C")],
    "set_humidity_start": [Bad(lambda c: c.set_humidity_start(40), "40", "50..100", "%")],
    "set_fan_limits": [Bad(lambda c: c.set_fan_limits(min_rpm=499), "499", "500..5000", "RPM")],
    "set_pump_limits": [Bad(lambda c: c.set_pump_limits(max_hz=10.5), "10.5", "1..10", "Hz"),
                        Bad(lambda c: c.set_pump_limits(min_hz=1.55), "1.55", "steps of 0.1",
                            "Hz")],
    "set_pump_calibration": [Bad(lambda c: c.set_pump_calibration(1.5), "1.5", "0.001..1",
                                 "mL")],
    "set_low_voltage_cutout": [Bad(lambda c: c.set_low_voltage_cutout(9.9), "9.9", "10..12.5",
                                   "V")],
    "set_system_voltage": [Bad(lambda c: c.set_system_voltage(48), "48", "12 or 24", "V")],
    "prime_pump": [Bad(lambda c: c.prime_pump(2), "2", "True/False", "")],
    "set_timer": [Bad(lambda c: c.set_timer(Timer(15)), "15", "1..14", ""),
                  Bad(lambda c: c.set_timer(Timer(3, temperature_c=40)), "40", "8..35", "°C")],
    "set_datetime": [Bad(lambda c: c.set_datetime(dt.datetime(1999, 12, 31)), "1999",
                         "2000..2099", "")],
    "set_tempdesired": [Bad(lambda c: c.set_tempdesired(40), "40", "8..35", "°C")],
    "set_runmode": [Bad(lambda c: c.set_runmode(2), "2", "0 or 1", "")],
    "set_froston": [Bad(lambda c: c.set_froston(-1), "-1", "0..30", "°C")],
    "set_frostrise": [Bad(lambda c: c.set_frostrise(31), "31", "0..30", "°C")],
    "set_fanmin": [Bad(lambda c: c.set_fanmin(6000), "6000", "500..5000", "RPM")],
    "set_fanmax": [Bad(lambda c: c.set_fanmax(100), "100", "500..5000", "RPM")],
    "set_pumpmin": [Bad(lambda c: c.set_pumpmin(6), "6", "0.4..5", "Hz")],
    "set_pumpmax": [Bad(lambda c: c.set_pumpmax(0.5), "0.5", "1..10", "Hz")],
    "set_pumpcal": [Bad(lambda c: c.set_pumpcal(0), "0", "0.001..1", "mL")],
    "set_lowvoltcutout": [Bad(lambda c: c.set_lowvoltcutout(13), "13", "10..12.5", "V")],
    "cli:set desired_temperature=25": [Bad(["set", "desired_temperature=99", "--allow-writes"],
                                           "99", "8..35", "°C")],
    "cli:set PumpMin=1.8": [Bad(["set", "PumpMin=9", "--allow-writes"], "9", "0.4..5", "Hz")],
    "cli:run on": [Bad(["run", "maybe"], "maybe", "'on', 'off'", "")],
}
#: Operations that take no value at all.
NO_VALUE = {"start", "reset_fuel_gauge", "save", "set_pumpreset", "cli:save"}


def key(op: WriteOp) -> str:
    return op.name if op.kind == "library" else f"cli:{op.name}"


LIBRARY = [op for op in WRITE_OPERATIONS if op.kind == "library"]
CLI = [op for op in WRITE_OPERATIONS if op.kind == "cli"]
SAFE_LIBRARY = [op for op in ALWAYS_ALLOWED if op.kind == "library"]
SAFE_CLI = [op for op in ALWAYS_ALLOWED if op.kind == "cli"]


@pytest.fixture
def sim() -> Iterator[AfterburnerSim]:
    server = AfterburnerSim(tick=0, seed=2).start()
    yield server
    server.close()


@pytest.fixture
def refused_host() -> Iterator[str]:
    """host:port where nothing listens (a bound socket that never listens refuses)."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    yield f"127.0.0.1:{sock.getsockname()[1]}"
    sock.close()


def writes_received(sim: AfterburnerSim) -> List[dict]:
    """Frames the controller got that change something (queries left out)."""
    return [f for f in list(sim.received) if set(f) - QUERY_KEYS]


def owner(name: str) -> type:
    """The class whose method ``name`` is: compat.Client for pyBurner's names."""
    rows = [op for op in LIBRARY + SAFE_LIBRARY if op.name == name]
    return PyBurnerClient if rows and PYBURNER in rows[0].note else AfterburnerClient


def client_for(sim: AfterburnerSim, cls: type = AfterburnerClient,
               **options: Any) -> AfterburnerClient:
    client: AfterburnerClient = cls(f"127.0.0.1:{sim.port}", refresh_grace=0.2, timeout=5.0,
                                    **options)
    return client.connect()


def cli(host: str, capsys: Any, words: Sequence[str]) -> tuple:
    code = main(["afterburner", *words, "--host", host, "--timeout", "3"])
    out, err = capsys.readouterr()
    return code, out, err


def heater_state(sim: AfterburnerSim) -> RunState:
    return RunState(int(sim.snapshot()["RunState"]))


def start_the_heater(sim: AfterburnerSim) -> None:
    """Another client, opened for writes, starts the heater (so that stopping it shows)."""
    with client_for(sim, allow_writes=True) as operator:
        operator.start(T)
    assert heater_state(sim).is_heating


def doc_of(name: str) -> str:
    return " ".join((getattr(owner(name), name).__doc__ or "").split())


# ------------------------------------------------------------------------------ the table
def test_the_table_lists_every_public_write_method() -> None:
    listed = {op.name for op in LIBRARY}
    assert listed == set(LIBRARY_CALLS)
    assert {op.name for op in SAFE_LIBRARY} == set(SAFE_CALLS)
    native = {name for name in listed | set(SAFE_CALLS) if owner(name) is AfterburnerClient}
    compat = (listed | set(SAFE_CALLS)) - native
    readers = {"read_status", "read_system_info", "read_timers", "reported_value"}
    public = {name for name, member in inspect.getmembers(AfterburnerClient, inspect.isfunction)
              if not name.startswith("_") and name not in dir(BaseClient)}
    assert public - readers == native, "a public method is neither a read nor in the table"
    # pyBurner's names are on compat.Client only; its readers change nothing.
    compat_readers = {"init_websocket", "close_websocket", "refresh", "fetch_data"}
    added = {name for name, member in vars(PyBurnerClient).items()
             if inspect.isfunction(member) and not name.startswith("_")}
    assert added - compat_readers == compat, "a pyBurner method is neither a read nor listed"
    assert not added & set(dir(AfterburnerClient)), "a pyBurner name is on the native class"
    # Every operation that takes a value has out-of-limits cases below.
    assert {key(op) for op in WRITE_OPERATIONS} - NO_VALUE == set(BAD_VALUES)


@pytest.mark.parametrize("name", sorted({op.name for op in LIBRARY + SAFE_LIBRARY}))
def test_every_write_method_says_a_timed_out_write_may_still_be_applied(name: str) -> None:
    assert TIMED_OUT_SENTENCE in doc_of(name), name


@pytest.mark.parametrize("name", sorted(SAFE_CALLS))
def test_the_safety_actions_say_why_they_are_always_allowed(name: str) -> None:
    doc = doc_of(name).lower()
    assert "always allowed" in doc and "safe" in doc and "allow_writes" in doc, doc


# ------------------------------------------------------------------------------ the opt-in
@pytest.mark.parametrize("op", LIBRARY, ids=key)
def test_every_write_is_refused_without_allow_writes(sim: AfterburnerSim, op: WriteOp) -> None:
    with client_for(sim, owner(op.name)) as heater:
        before = len(writes_received(sim))
        with pytest.raises(WriteNotAllowedError) as info:
            LIBRARY_CALLS[op.name](heater)
        message = str(info.value)
        assert "allow_writes=True" in message and "--allow-writes" in message, message
        assert "\n" not in message
        heater.read_system_info(timeout=T)  # anything sent before this would be in by now
        assert len(writes_received(sim)) == before, writes_received(sim)[before:]


@pytest.mark.parametrize("op", LIBRARY, ids=key)
def test_every_write_is_refused_before_the_client_touches_the_link(refused_host: str,
                                                                   op: WriteOp) -> None:
    # Never connected, and nothing listens there: any attempt at I/O would fail differently.
    heater = owner(op.name)(refused_host, timeout=1.0)
    try:
        with pytest.raises(WriteNotAllowedError):
            LIBRARY_CALLS[op.name](heater)
    finally:
        heater.close()


@pytest.mark.parametrize("op", LIBRARY, ids=key)
def test_every_write_works_with_allow_writes(sim: AfterburnerSim, op: WriteOp) -> None:
    if op.name in ("reset_fuel_gauge", "set_pumpreset"):
        sim.set(pump_count=0.5)  # the held-back PumpCount report would take 10 s otherwise
    with client_for(sim, owner(op.name), allow_writes=True) as heater:
        before = len(writes_received(sim))
        LIBRARY_CALLS[op.name](heater)
        assert len(writes_received(sim)) > before


@pytest.mark.parametrize("name", ["stop", "run", "set_runmode"])
def test_stopping_the_heater_is_always_allowed(sim: AfterburnerSim, name: str) -> None:
    start_the_heater(sim)
    with client_for(sim, owner(name)) as heater:  # no allow_writes
        SAFE_CALLS[name](heater)
        assert not heater.status.run_state.is_heating
    assert writes_received(sim)[-1] == {"Run": 0, "SQuery": 1}
    assert not heater_state(sim).is_heating


def test_stopping_pump_priming_is_always_allowed(sim: AfterburnerSim) -> None:
    with client_for(sim, allow_writes=True) as operator:
        operator.prime_pump(True, T)
    assert sim.run_sync(lambda: sim.model.priming)
    with client_for(sim) as heater:  # no allow_writes
        SAFE_CALLS["prime_pump"](heater)
    assert not sim.run_sync(lambda: sim.model.priming)


@pytest.mark.parametrize("op", CLI, ids=key)
def test_cli_writes_are_refused_without_allow_writes_before_connecting(
        sim: AfterburnerSim, refused_host: str, capsys: Any, op: WriteOp) -> None:
    before = len(sim.received)
    code, out, err = cli(f"127.0.0.1:{sim.port}", capsys, op.name.split())
    assert code == 2, err
    assert "--allow-writes" in err and err.count("\n") == 1 and "Traceback" not in err
    assert out == "" and len(sim.received) == before
    # Where nothing listens it says the same (exit 1 would mean it had tried to connect).
    assert cli(refused_host, capsys, op.name.split()) == (code, out, err)


@pytest.mark.parametrize("op", CLI, ids=key)
def test_cli_writes_work_with_allow_writes(sim: AfterburnerSim, capsys: Any, op: WriteOp) -> None:
    before = len(writes_received(sim))
    code, out, err = cli(f"127.0.0.1:{sim.port}", capsys, op.name.split() + ["--allow-writes"])
    assert code == 0, err
    assert len(writes_received(sim)) > before


def test_cli_run_off_is_always_allowed(sim: AfterburnerSim, capsys: Any) -> None:
    assert [op.name for op in SAFE_CLI] == ["run off"]
    start_the_heater(sim)
    code, out, err = cli(f"127.0.0.1:{sim.port}", capsys, ["run", "off"])
    assert code == 0, err
    assert writes_received(sim)[-1] == {"Run": 0, "SQuery": 1}
    assert not heater_state(sim).is_heating


def test_pyburner_code_ports_with_the_one_allow_writes_keyword(sim: AfterburnerSim) -> None:
    from pyburnerkit.afterburner.compat import Client
    url = f"127.0.0.1:{sim.port}"
    # pyBurner: Client(ip); client.set_tempdesired(23) - refused here, saying what to add...
    client = Client(url)
    assert client.init_websocket() is True
    try:
        with pytest.raises(WriteNotAllowedError, match="allow_writes=True"):
            client.set_tempdesired(23)
        assert client.set_runmode(0) is True  # ...but a pyBurner stop still works
    finally:
        client.close_websocket()
    assert sim.snapshot()["TempDesired"] == 22  # unchanged
    # ...and with that one keyword the same code runs.
    client = Client(url, allow_writes=True)
    assert client.init_websocket() is True
    try:
        assert client.set_tempdesired(23) is True and client.fetch_data("TempDesired") == 23
    finally:
        client.close_websocket()


# ------------------------------------------------------------------------------ the limits
BAD_CASES = [(name, bad) for name, bads in BAD_VALUES.items() for bad in bads]


@pytest.mark.parametrize("name,bad", BAD_CASES,
                         ids=[f"{n}-{i}" for n, bads in BAD_VALUES.items()
                              for i in range(len(bads))])
def test_out_of_limits_values_are_refused_before_sending(sim: AfterburnerSim, capsys: Any,
                                                         name: str, bad: Bad) -> None:
    if name.startswith("cli:"):
        before = len(sim.received)
        code, out, err = cli(f"127.0.0.1:{sim.port}", capsys, bad.call)
        assert code == 2 and "Traceback" not in err, err
        message = err.strip().splitlines()[-1]  # argparse prints its usage lines first
        assert message.startswith("pyburnerkit: error:"), err
        assert len(sim.received) == before
    else:
        with client_for(sim, owner(name), allow_writes=True) as heater:
            before = len(writes_received(sim))
            with pytest.raises(ConfigurationError) as info:
                bad.call(heater)
            message = str(info.value)
            heater.read_system_info(timeout=T)
            assert len(writes_received(sim)) == before
    for part in (bad.value, bad.limit, bad.unit):
        assert part in message, (part, message)


# ------------------------------------------------------------------------------ no retries
RETRY_CASES = {
    "set_desired_temperature": (lambda c: c.set_desired_temperature(27, timeout=0.3),
                                "TempDesired"),
    "run": (lambda c: c.run(True, timeout=0.3), "Run"),
    "set_timer": (lambda c: c.set_timer(Timer(5, dt.time(5, 5)), timeout=0.3), "TimerStart"),
    "save": (lambda c: c.save(timeout=0.3), "NVsave"),
}


@pytest.mark.parametrize("name", sorted(RETRY_CASES))
def test_a_timed_out_write_is_never_sent_again(sim: AfterburnerSim, name: str) -> None:
    call, wire_key = RETRY_CASES[name]
    with client_for(sim, allow_writes=True) as heater:
        sim.silence(True)  # takes every command, answers nothing
        with pytest.raises(DeviceTimeoutError):
            call(heater)
        wait_until(lambda: any(wire_key in f for f in list(sim.received)),
                   message="the write reaching the controller")
        sim.silence(False)
        for _ in range(3):  # more rounds, a keep-alive's worth of traffic
            heater.read_system_info(timeout=T)
        assert sum(wire_key in f for f in list(sim.received)) == 1
