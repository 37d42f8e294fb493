"""Write safety of the Mate3 family: every device-changing operation, library and CLI, is
refused without the opt-in with nothing reaching the simulator, and refuses a value outside
the field's documented limit before sending, naming the value, the limit and the unit.
"""

from __future__ import annotations

from typing import Any, Iterator, List

import pytest

from pyburnerkit import ConfigurationError, WriteNotAllowedError
from pyburnerkit.cli.main import main
from pyburnerkit.mate3.client import Mate3Client
from pyburnerkit.mate3.sim import Mate3Sim

from .stress import WriteOp

WRITE_OPERATIONS: List[WriteOp] = [
    WriteOp("write", "library", note="the one method that changes the device"),
    WriteOp("plan_write", "library",
            note="dry run of write: reads only, never writes, so it needs no opt-in"),
    WriteOp("validate_write", "library",
            note="the check of write alone: sends nothing, so it needs no opt-in"),
    WriteOp("write --set PATH=VALUE", "cli", note="needs --allow-writes; --expert optional"),
    WriteOp("write --dry-run --set PATH=VALUE", "cli",
            note="prints the registers that would be written; never writes"),
]

#: the operations that really write (the others are dry by design)
WRITING = {"write", "write --set PATH=VALUE"}

# (path, out-of-limit value as the CLI types it, as the library takes it, the limit as the
# message shows it, the unit or None for fields without one)
BAD_VALUES = [
    ("charge_controllers[3].config.absorb_volts", "999", 999, "48..66", "Volts"),
    ("single_phase_radian_inverters[1].config.low_battery_cut_out_voltage", "30", 30,
     "40..66", "DC Volts"),
    ("mate3.config.set_absorb_voltage", "70.5", 70.5, "48..66", "Volts"),
    ("mate3.set_time_zone", "15", 15, "-12..14", "Hours"),
    ("mate3.ags_exercise_period", "241", 241, "1..240", "Minutes"),
    ("mate3.config.set_ac_output_offline_freq", "55", 55, "46.5..54.1 Hz or 55.8..64.9", "Hz"),
    ("charge_controllers[3].config.temp_comp_slope", "9", 9, "2..6", "Milli Volts"),
    ("fndcs[5].config.charge_factor", "101", 101, "0..100", "Percent"),
    ("charge_controllers[3].config.bulk_current", "60", 60, "no documented limit", "Amps"),
    ("charge_controllers[3].config.clear_data_log_write_complement", "1", 1,
     str(~1059 & 0xFFFF), None),
    ("mate3.config.set_inverter_mode", "7", 7, "1='Off'", None),
    ("mate3.system_name", "x" * 61, "x" * 61, "60 characters", None),
]


@pytest.fixture
def sim() -> Iterator[Mate3Sim]:
    server = Mate3Sim(seed=9).start()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def clients() -> Iterator[List[Mate3Client]]:
    made: List[Mate3Client] = []
    yield made
    for client in made:
        client.close()


def _client(sim: Mate3Sim, clients: List[Mate3Client], allow_writes: bool) -> Mate3Client:
    client = Mate3Client(sim.endpoint, allow_writes=allow_writes, min_poll_interval=0,
                         request_timeout=2.0, timeout=10.0)
    clients.append(client)
    return client.connect()


def _run_cli(capsys: Any, *argv: str) -> Any:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def _cli_words(op: WriteOp, sim: Mate3Sim, assignment: str, opt_in: bool) -> List[str]:
    words = ["mate3", "write", "--host", sim.endpoint, "--min-poll-interval", "0"]
    if "--dry-run" in op.name:
        words.append("--dry-run")
    if opt_in:
        words.append("--allow-writes")
    return words + ["--set", assignment]


def _call(op: WriteOp, client: Mate3Client, path: str, value: Any) -> Any:
    return getattr(client, op.name)(path, value)


def test_the_table_names_every_public_write_method_of_the_client():
    named = {op.name for op in WRITE_OPERATIONS if op.kind == "library"}
    public = {name for name in dir(Mate3Client) if "write" in name and not name.startswith("_")}
    public.discard("allow_writes")
    assert public <= named, public - named


@pytest.mark.parametrize("op", WRITE_OPERATIONS, ids=lambda op: f"{op.kind}:{op.name}")
def test_refused_without_the_opt_in_and_nothing_sent(op, sim, clients, capsys):
    path = "charge_controllers[3].config.absorb_volts"
    if op.kind == "library":
        client = _client(sim, clients, allow_writes=False)
        if op.name in WRITING:
            with pytest.raises(WriteNotAllowedError, match="allow_writes"):
                _call(op, client, path, 57.6)
        else:
            _call(op, client, path, 57.6)  # dry by design: allowed, and it writes nothing
    else:
        code, out, err = _run_cli(capsys, *_cli_words(op, sim, f"{path}=57.6", opt_in=False))
        if op.name in WRITING:
            assert code == 2 and "--allow-writes" in err and "WriteNotAllowedError" in err
            assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
        else:
            assert code == 0 and "would write" in out, err
    assert sim.writes_received() == 0
    assert sim.registers[40946] == 588  # as in the dump


@pytest.mark.parametrize("op", WRITE_OPERATIONS, ids=lambda op: f"{op.kind}:{op.name}")
@pytest.mark.parametrize("path, text, value, limit, unit", BAD_VALUES,
                         ids=[case[0] for case in BAD_VALUES])
def test_an_out_of_limit_value_is_refused_before_sending(op, path, text, value, limit, unit,
                                                         sim, clients, capsys):
    if op.kind == "library":
        client = _client(sim, clients, allow_writes=True)
        with pytest.raises(ConfigurationError) as info:
            _call(op, client, path, value)
        message = str(info.value)
    else:
        code, _, message = _run_cli(capsys, *_cli_words(op, sim, f"{path}={text}", opt_in=True))
        assert code == 2 and len(message.strip().splitlines()) == 1, message
    shown = str(value) if len(str(value)) < 20 else "61 characters"
    assert shown in message or repr(value) in message, message
    assert limit in message, message
    if unit is not None:
        assert unit in message, message
    assert sim.writes_received() == 0
