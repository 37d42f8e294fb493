"""Write safety of the Mate3 family: every device-changing operation, library and CLI, is
refused without the opt-in with nothing reaching the simulator, and refuses a value outside
the field's documented limit before sending, naming the value, the limit and the unit.
"""

from __future__ import annotations

from typing import Any, Iterator, List, Tuple

import pytest

from pyburnerkit import ConfigurationError, DeviceError, WriteNotAllowedError
from pyburnerkit.cli.main import main
from pyburnerkit.mate3 import codec
from pyburnerkit.mate3.client import Mate3Client
from pyburnerkit.mate3.sim import Mate3Sim

from .stress import WriteOp

WRITE_OPERATIONS: List[WriteOp] = [
    WriteOp("write", "library", note="the one method that changes the device"),
    WriteOp("plan_write", "library",
            note="dry run of write: reads only, never writes, so it needs no opt-in"),
    WriteOp("validate_write", "library",
            note="the check of write alone: sends nothing, so it needs no opt-in"),
    WriteOp("write_registers", "library",
            note="raw FC16 for experts: every known field it covers is decoded and checked "
                 "as write checks it"),
    WriteOp("write --set PATH=VALUE", "cli", note="needs --allow-writes; --expert optional"),
    WriteOp("write --dry-run --set PATH=VALUE", "cli",
            note="prints the registers that would be written; never writes"),
    WriteOp("registers write ADDRESS VALUE...", "cli",
            note="raw FC16: needs --allow-writes; checked as write_registers"),
]

#: the operations that really write (the others are dry by design)
WRITING = {"write", "write --set PATH=VALUE", "write_registers",
           "registers write ADDRESS VALUE..."}
#: the operations that take raw register values instead of a path and a value
RAW = {"write_registers", "registers write ADDRESS VALUE..."}

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


#: BAD_VALUES that raw registers can express (a 30-register text field holds at most 60
#: characters, so the text row has no raw form; a longer raw write runs into the next field)
RAW_BAD_VALUES = [case for case in BAD_VALUES if not isinstance(case[2], str)]


def _raw_form(sim: Mate3Sim, path: str, value: Any) -> Tuple[int, List[int]]:
    """Where ``path`` sits on the simulated Mate3 and the raw registers that hold ``value``
    there, encoded as the field is (scale factor, sign, text), with no check at all: what an
    expert would type."""
    regs = sim.space.snapshot()
    system = codec.build_system(sim.space.layout, regs, 0.0)
    owner, name = codec.split_path(path)
    dev = system.device(owner)
    fdef = codec.block_defs()[dev.did].fields[name]
    address = dev.address + fdef.start - 1
    if isinstance(value, str):
        data = value.encode("ascii").ljust(2 * fdef.size, b"\0")
        return address, [int.from_bytes(data[i:i + 2], "big") for i in range(0, len(data), 2)]
    sf = codec.scale_factor_of(dev.did, dev.address, fdef, regs) or 0
    raw = int(round(value * 10 ** -sf))
    if fdef.size == 2:
        return address, [(raw >> 16) & 0xFFFF, raw & 0xFFFF]
    return address, [raw & 0xFFFF]


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
    if op.name in RAW:
        path, _, text = assignment.partition("=")
        address, regs = _raw_form(sim, path, float(text))
        words = ["mate3", "registers", "write", str(address), *map(str, regs)]
    else:
        words = ["mate3", "write"]
    words += ["--host", sim.endpoint, "--min-poll-interval", "0"]
    if "--dry-run" in op.name:
        words.append("--dry-run")
    if opt_in:
        words.append("--allow-writes")
    return words if op.name in RAW else words + ["--set", assignment]


def _call(op: WriteOp, sim: Mate3Sim, client: Mate3Client, path: str, value: Any) -> Any:
    if op.name in RAW:
        return client.write_registers(*_raw_form(sim, path, value))
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
                _call(op, sim, client, path, 57.6)
        else:
            _call(op, sim, client, path, 57.6)  # dry by design: allowed, and it writes nothing
    else:
        code, out, err = _run_cli(capsys, *_cli_words(op, sim, f"{path}=57.6", opt_in=False))
        if op.name in WRITING:
            assert code == 2 and "--allow-writes" in err and "WriteNotAllowedError" in err
            assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
        else:
            assert code == 0 and "would write" in out, err
    assert sim.writes_received() == 0
    assert sim.registers[40946] == 588  # as in the dump


_OUT_OF_LIMIT = [pytest.param(op, *case, id=f"{op.kind}:{op.name}-{case[0]}")
                 for op in WRITE_OPERATIONS
                 for case in (RAW_BAD_VALUES if op.name in RAW else BAD_VALUES)]


@pytest.mark.parametrize("op, path, text, value, limit, unit", _OUT_OF_LIMIT)
def test_an_out_of_limit_value_is_refused_before_sending(op, path, text, value, limit, unit,
                                                         sim, clients, capsys):
    if op.kind == "library":
        client = _client(sim, clients, allow_writes=True)
        with pytest.raises(ConfigurationError) as info:
            _call(op, sim, client, path, value)
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


# ------------------------------------------------------------------ raw register writes
ABSORB = "charge_controllers[3].config.absorb_volts"   # 40946, scale factor -1, 48..66 V
SYSTEM_NAME = "mate3.system_name"                      # 30 registers of text


def test_a_raw_write_over_the_limit_is_refused_with_nothing_sent(sim, clients):
    client = _client(sim, clients, allow_writes=True)
    address, regs = _raw_form(sim, ABSORB, 999)
    assert (address, regs) == (40946, [9990])
    with pytest.raises(ConfigurationError) as info:
        client.write_registers(address, regs)
    message = str(info.value)
    assert all(part in message for part in (ABSORB, "999", "48..66", "Volts", "[9990]"))
    assert sim.writes_received() == 0 and sim.registers[40946] == 588


def test_a_valid_raw_write_goes_through_and_reads_back(sim, clients):
    client = _client(sim, clients, allow_writes=True)
    address, regs = _raw_form(sim, ABSORB, 57.0)
    client.write_registers(address, regs)
    assert sim.writes_received() == 1
    assert client.read_registers(address, 1) == [570]
    assert client.read_value(ABSORB) == 57.0


def test_a_raw_text_write_covering_the_whole_field_goes_through(sim, clients):
    client = _client(sim, clients, allow_writes=True)
    address, regs = _raw_form(sim, SYSTEM_NAME, "cabin")
    client.write_registers(address, regs)
    assert client.read_value(SYSTEM_NAME) == "cabin"


def test_a_raw_write_covering_part_of_a_field_is_refused(sim, clients):
    client = _client(sim, clients, allow_writes=True)
    address, regs = _raw_form(sim, SYSTEM_NAME, "cabin")
    for start, words in ((address, regs[:5]), (address + 3, regs[3:]),
                         (address - 1, [0] + regs[:-1])):
        with pytest.raises(ConfigurationError, match=r"only part of mate3\.system_name"):
            client.write_registers(start, words)
    assert sim.writes_received() == 0


def test_a_raw_write_to_a_register_of_no_known_field_is_allowed(sim, clients):
    # 40562..40571 pad the SunSpec inverter block (DID 101) past its last documented field:
    # no field, so no documented limit. The client sends it; the simulator, like the Mate3,
    # refuses a register outside any field with Modbus exception 2.
    client = _client(sim, clients, allow_writes=True)
    with pytest.raises(DeviceError) as info:
        client.write_registers(40562, [7])
    assert info.value.code == 2
    assert sim.writes_received() == 1


@pytest.mark.parametrize("address, words, named", [
    (40908, [64111], "charge_controllers[3].did"),        # a block header
    (40945, [1, 570], "charge_controllers[3].config"),    # starts on a read-only field
    (40000, [0x5375, 0x6E53], "SunSpec marker"),
    (41276, [0xFFFF, 0], "SunSpec end block"),
], ids=["header", "read-only-neighbour", "marker", "end"])
def test_a_raw_write_to_what_write_refuses_is_refused(sim, clients, address, words, named):
    client = _client(sim, clients, allow_writes=True)
    with pytest.raises(ConfigurationError) as info:
        client.write_registers(address, words)
    assert named in str(info.value) and "read-only" in str(info.value)
    assert sim.writes_received() == 0


def test_a_raw_write_is_refused_whole_when_one_covered_field_is_out_of_limit(sim, clients):
    # rebulk_volts and float_volts are neighbours: a good first value carries no bad second.
    client = _client(sim, clients, allow_writes=True)
    address, good = _raw_form(sim, "charge_controllers[3].config.rebulk_volts", 52.0)
    after, bad = _raw_form(sim, "charge_controllers[3].config.float_volts", 99.9)
    assert after == address + 1
    before = [sim.registers[address], sim.registers[after]]
    with pytest.raises(ConfigurationError) as info:
        client.write_registers(address, good + bad)
    assert "float_volts=99.9 Volts" in str(info.value) and "rebulk" not in str(info.value)
    assert sim.writes_received() == 0
    assert [sim.registers[address], sim.registers[after]] == before


def test_a_raw_write_is_checked_again_with_the_devices_fresh_scale_factor(sim, clients):
    client = _client(sim, clients, allow_writes=True)
    regs = sim.space.snapshot()
    system = codec.build_system(sim.space.layout, regs, 0.0)
    dev = system.device("charge_controllers[3].config")
    fdef = codec.block_defs()[dev.did].fields["absorb_volts"]
    sf_def = codec.scale_factor_def(dev.did, fdef, dev.length)
    assert sf_def is not None
    # The Mate3 now scales absorb by 10^0: 576 is 576 V, not the 57.6 V the cache implies.
    sim.set(**{f"r{dev.address + sf_def.start - 1}": 0})
    with pytest.raises(ConfigurationError) as info:
        client.write_registers(40946, [576])
    assert "576" in str(info.value) and "48..66" in str(info.value)
    assert sim.writes_received() == 0


def test_a_raw_write_to_a_field_without_a_documented_limit_needs_expert(sim, clients):
    client = _client(sim, clients, allow_writes=True)
    address, regs = _raw_form(sim, "charge_controllers[3].config.bulk_current", 60)
    with pytest.raises(ConfigurationError, match="no documented limit"):
        client.write_registers(address, regs)
    assert sim.writes_received() == 0
    client.write_registers(address, regs, expert=True)
    assert client.read_registers(address, 1) == regs


def test_a_refused_raw_password_write_shows_no_registers(sim, clients):
    client = _client(sim, clients, allow_writes=True)
    fdef = client.field_def("mate3.write_password")
    address = client.system.device("mate3").address + fdef.start - 1
    words = [0xC3A9] * fdef.size  # not ASCII
    with pytest.raises(ConfigurationError) as info:
        client.write_registers(address, words)
    message = str(info.value)
    assert "write_password" in message and "<hidden>" in message
    assert str(0xC3A9) not in message and "C3A9".lower() not in message.lower()
    assert sim.writes_received() == 0


def test_the_cli_raw_write_takes_expert_and_shows_the_limit(sim, capsys):
    address, regs = _raw_form(sim, "charge_controllers[3].config.bulk_current", 60)
    base = ["mate3", "registers", "write", str(address), *map(str, regs), "--host",
            sim.endpoint, "--min-poll-interval", "0", "--allow-writes"]
    code, _, err = _run_cli(capsys, *base)
    assert code == 2 and "no documented limit" in err and "--expert" in err
    assert sim.writes_received() == 0
    code, out, err = _run_cli(capsys, *base, "--expert")
    assert code == 0 and f"read back {regs}" in out, err
    assert sim.writes_received() == 1
