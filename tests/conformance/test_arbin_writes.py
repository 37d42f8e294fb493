"""Write safety of the Arbin family: every device-changing operation, library and CLI.

``WRITE_OPERATIONS`` names each one. For each, the tests below check over real CTI TCP that:

* without the opt-in (``allow_writes=True``, ``'allow_writes': True`` in a pycti-style config,
  ``--allow-writes``) it is refused with :class:`WriteNotAllowedError` (CLI: exit code 2, one
  line) and no command reaches the simulated cycler;
* every value it takes is checked before sending: an out-of-limits value is a
  :class:`ConfigurationError` (CLI: exit code 2) naming the value, the limit and the unit, and
  the cycler receives no command;
* a write that timed out is never sent again by any layer, although the cycler may apply it;
* its docstring says so.

Stop is gated like every other command (see the ``note`` of its rows): it ends a running test,
and ``--all`` / ``all_channels=True`` ends every test on a shared cycler, so an unintended stop
destroys data; the cycler's own safety limits, not CTI, are what keep a cell safe.
"""

from __future__ import annotations

import math
from typing import Any, Callable, Dict, Iterator, List, NamedTuple, Sequence, Tuple

import pytest

from pyburnerkit import ConfigurationError, DeviceTimeoutError, WriteNotAllowedError
from pyburnerkit.arbin import codec
from pyburnerkit.arbin.client import ChannelClient
from pyburnerkit.arbin.compat import ChannelInterface
from pyburnerkit.arbin.sim import ArbinSim
from pyburnerkit.cli.main import main
from pyburnerkit.types import Reconnect

from ..helpers import CallInThread, wait_until
from .stress import WriteOp

USER, SECRET = "writes-user", "writes-secret"
FAST = Reconnect(min_delay=0.05, max_delay=0.3, jitter=0.0)
TIMED_OUT_SENTENCE = ("If this call times out, the device may still apply the write later; "
                      "it is never retried automatically.")
STOP_NOTE = ("gated like the others: stop ends a running test (all_channels / --all: every test "
             "on a shared cycler); CTI stop is not the cell's safety mechanism, the cycler's "
             "safety limits are")

WRITE_OPERATIONS: List[WriteOp] = [
    WriteOp("assign_schedule", note="ChannelClient"),
    WriteOp("start", note="ChannelClient"),
    WriteOp("stop", note="ChannelClient; " + STOP_NOTE),
    WriteOp("resume", note="ChannelClient"),
    WriteOp("continue_test", note="ChannelClient"),
    WriteOp("jump_to_step", note="ChannelClient"),
    WriteOp("set_meta_variable", note="ChannelClient"),
    WriteOp("set_meta_variables", note="ChannelClient"),
    WriteOp("assign_schedule", note="compat.ChannelInterface (pycti API)"),
    WriteOp("start_test", note="compat.ChannelInterface (pycti API; assigns, then starts)"),
    WriteOp("stop_test", note="compat.ChannelInterface (pycti API); " + STOP_NOTE),
    WriteOp("set_meta_variable", note="compat.ChannelInterface (pycti API)"),
    WriteOp("assign --channel 2 --schedule Rest+207855.sdx", kind="cli"),
    WriteOp("start --channel 2 --test-name cli-test", kind="cli"),
    WriteOp("stop --channel 2", kind="cli", note=STOP_NOTE),
    WriteOp("stop --all", kind="cli", note=STOP_NOTE),
    WriteOp("set-mv --channel 2 --mv 1 --value 0.5", kind="cli"),
]


def op_id(op: WriteOp) -> str:
    owner = "compat." if op.note.startswith("compat") else ""
    return f"{op.kind}:{owner}{op.name}"


class Bad(NamedTuple):
    """An out-of-limits use of an operation and what its message must name."""

    label: str
    call: Any  # library: callable(target); cli: extra/replacement argv words
    value: str
    limit: str
    unit: str
    channel: int = 2  # the channel of the client it runs on (17: beyond the cycler's 16)


# What each library operation does (on a ChannelClient for channel 2 of a 16-channel cycler
# whose channel 2 runs a test) and which request type the cycler sees first.
LIBRARY_CALLS: Dict[str, Tuple[Callable[[Any], Any], type]] = {
    "library:assign_schedule": (lambda c: c.assign_schedule("Rest+207855.sdx", timeout=0.3),
                                codec.AssignScheduleRequest),
    "library:start": (lambda c: c.start("t", timeout=0.3), codec.StartRequest),
    "library:stop": (lambda c: c.stop(timeout=0.3), codec.StopRequest),
    "library:resume": (lambda c: c.resume(timeout=0.3), codec.ResumeRequest),
    "library:continue_test": (lambda c: c.continue_test(timeout=0.3), codec.ContinueRequest),
    "library:jump_to_step": (lambda c: c.jump_to_step(1, timeout=0.3), codec.JumpRequest),
    "library:set_meta_variable": (lambda c: c.set_meta_variable(1, 0.25, timeout=0.3),
                                  codec.SetMVRequest),
    "library:set_meta_variables": (lambda c: c.set_meta_variables({1: 0.5}, timeout=0.3),
                                   codec.UpdateMVAdvancedRequest),
    "library:compat.assign_schedule": (lambda i: i.assign_schedule(),
                                       codec.AssignScheduleRequest),
    "library:compat.start_test": (lambda i: i.start_test(), codec.AssignScheduleRequest),
    "library:compat.stop_test": (lambda i: i.stop_test(), codec.StopRequest),
    "library:compat.set_meta_variable": (lambda i: i.set_meta_variable(1, 0.25),
                                         codec.SetMVRequest),
}

CLI_REQUEST: Dict[str, type] = {
    "assign": codec.AssignScheduleRequest, "start": codec.StartRequest,
    "stop": codec.StopRequest, "set-mv": codec.SetMVRequest,
}

CHANNEL_17 = ("17", "1..16", "1-based channel number")
LONG_NAME = "n" * 80
LONG_SCHEDULE = "s" * 200 + ".sdx"

BAD_VALUES: Dict[str, Sequence[Bad]] = {
    "library:assign_schedule": [
        Bad("schedule name too long", lambda c: c.assign_schedule(LONG_SCHEDULE),
            "204 characters", "199 characters", "characters"),
        Bad("barcode too long", lambda c: c.assign_schedule("a.sdx", barcode="b" * 72),
            "72 characters", "71 characters", "characters"),
        Bad("negative capacity", lambda c: c.assign_schedule("a.sdx", test_capacity_ah=-1.0),
            "-1.0", "0..", "Ah"),
        Bad("NaN capacity", lambda c: c.assign_schedule("a.sdx", test_capacity_ah=math.nan),
            "NaN", "0..", "Ah"),
        Bad("MV initial value", lambda c: c.assign_schedule("a.sdx", mv_initial=[1e39] * 16),
            "1e+39", "3.4", "unit"),
        Bad("channel beyond the cycler", lambda c: c.assign_schedule("a.sdx"), *CHANNEL_17,
            channel=17),
    ],
    "library:start": [
        Bad("test name too long", lambda c: c.start(LONG_NAME), "80 characters",
            "71 characters", "characters"),
        Bad("channel beyond the cycler", lambda c: c.start("t", channels=[2, 17]),
            *CHANNEL_17),
    ],
    "library:stop": [
        Bad("channel beyond the cycler", lambda c: c.stop(), *CHANNEL_17, channel=17),
    ],
    "library:resume": [
        Bad("channel beyond the cycler", lambda c: c.resume(), *CHANNEL_17, channel=17),
    ],
    "library:continue_test": [
        Bad("channel beyond the cycler", lambda c: c.continue_test(channels=[17]),
            *CHANNEL_17),
        Bad("NaN channel", lambda c: c.continue_test(channels=[math.nan]), "NaN", "1..16",
            "1-based channel number"),
    ],
    "library:jump_to_step": [
        Bad("step 0", lambda c: c.jump_to_step(0), "step=0", "1..2147483647", "step number"),
        Bad("step past i32", lambda c: c.jump_to_step(2 ** 31), "2147483648",
            "1..2147483647", "step number"),
        Bad("infinite step", lambda c: c.jump_to_step(math.inf), "inf", "1..2147483647",
            "step number"),
    ],
    "library:set_meta_variable": [
        Bad("mv 17", lambda c: c.set_meta_variable(17, 1.0), "17", "1..16", "MV_UD"),
        Bad("mv 0", lambda c: c.set_meta_variable(0, 1.0), "=0", "1..16", "MV_UD"),
        Bad("infinite value", lambda c: c.set_meta_variable(1, math.inf), "inf", "3.4",
            "unit"),
        Bad("value beyond f32", lambda c: c.set_meta_variable(1, 1e39), "1e+39", "3.4",
            "unit"),
    ],
    "library:set_meta_variables": [
        Bad("mv 17", lambda c: c.set_meta_variables({17: 1.0}), "17", "1..16", "MV_UD"),
        Bad("channel beyond the cycler", lambda c: c.set_meta_variables({(17, 1): 1.0}),
            *CHANNEL_17),
        Bad("NaN value", lambda c: c.set_meta_variables({1: math.nan}), "NaN", "3.4",
            "unit"),
        Bad("161 entries",
            lambda c: c.set_meta_variables(dict(list({(ch, mv): 1.0 for ch in range(1, 12)
                                                      for mv in range(1, 17)}.items())[:161])),
            "161", "1..160", "entries"),
        Bad("empty batch", lambda c: c.set_meta_variables({}), "0", "1..160", "entries"),
    ],
    "library:compat.set_meta_variable": [
        Bad("mv 17", lambda i: i.set_meta_variable(17, 1.0), "17", "1..16", "MV_UD"),
        Bad("value beyond f32", lambda i: i.set_meta_variable(1, 1e39), "1e+39", "3.4",
            "unit"),
    ],
    "library:compat.assign_schedule": [
        Bad("schedule name too long", lambda i: i.assign_schedule(), "204 characters",
            "199 characters", "characters"),
    ],
    "library:compat.start_test": [
        Bad("test name too long", lambda i: i.start_test(), "80 characters", "71 characters",
            "characters"),
    ],
    "cli:assign --channel 2 --schedule Rest+207855.sdx": [
        Bad("schedule name too long", ["--schedule", LONG_SCHEDULE], "204 characters",
            "199 characters", "characters"),
        Bad("channel beyond the cycler", ["--channel", "17"], *CHANNEL_17),
    ],
    "cli:start --channel 2 --test-name cli-test": [
        Bad("test name too long", ["--test-name", LONG_NAME], "80 characters",
            "71 characters", "characters"),
        Bad("channel beyond the cycler", ["--channel", "17"], *CHANNEL_17),
    ],
    "cli:stop --channel 2": [
        Bad("channel beyond the cycler", ["--channel", "17"], *CHANNEL_17),
    ],
    "cli:set-mv --channel 2 --mv 1 --value 0.5": [
        Bad("mv 17", ["--mv", "17"], "17", "1..16", "MV_UD"),
        Bad("infinite value", ["--value", "inf"], "inf", "3.4", "unit"),
        Bad("value beyond f32", ["--value", "1e39"], "1e+39", "3.4", "unit"),
        Bad("channel 0", ["--channel", "0"], "channel=0", "1..", "1-based channel number"),
    ],
}

# Out-of-limits configs for the pycti-style interface (its methods take their strings from it).
COMPAT_BAD_CONFIG = {"library:compat.assign_schedule": {"schedule_name": LONG_SCHEDULE},
                     "library:compat.start_test": {"test_name": LONG_NAME}}

VALUE_CASES = [pytest.param(key, bad, id=f"{key} / {bad.label}")
               for key, cases in BAD_VALUES.items() for bad in cases]
LIBRARY_OPS = [pytest.param(op, id=op_id(op)) for op in WRITE_OPERATIONS
               if op.kind == "library"]
ALL_OPS = [pytest.param(op, id=op_id(op)) for op in WRITE_OPERATIONS]


# ---------------------------------------------------------------------- fixtures
@pytest.fixture
def sim() -> Iterator[ArbinSim]:
    server = ArbinSim(16, username=USER, password=SECRET).start()
    # Channel 2 runs a test, so that set-MV / jump requests are meaningful.
    server.preset(2, schedule="CC_Cycle.sdx", test_name="running")
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def made() -> Iterator[List[Any]]:
    objects: List[Any] = []
    yield objects
    for obj in objects:
        obj.close()


@pytest.fixture
def credentials(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    monkeypatch.chdir(tmp_path)  # the pycti-style interface reads <cwd>/.env; there is none
    monkeypatch.setenv("ARBIN_CTI_USERNAME", USER)
    monkeypatch.setenv("ARBIN_CTI_PASSWORD", SECRET)


def commands_received(sim: ArbinSim) -> List[Any]:
    """Every request the cycler received except log-ins (which change nothing)."""
    return sim.run_sync(lambda: [r for r in sim.received
                                 if not isinstance(r, codec.LoginRequest)])


def channel_client(sim: ArbinSim, made: List[Any], *, allow_writes: bool,
                   timeout: float = 5.0, channel: int = 2) -> ChannelClient:
    client = ChannelClient(sim.endpoint, channel=channel, allow_writes=allow_writes,
                           username=USER, password=SECRET, timeout=timeout,
                           connect_timeout=5.0, reconnect=FAST)
    made.append(client)
    return client.connect()


def interface(sim: ArbinSim, made: List[Any], *, allow_writes: bool, timeout: float = 5.0,
              **config: Any) -> ChannelInterface:
    settings = {"channel": 2, "ip_address": "127.0.0.1", "port": sim.port,
                "timeout_s": timeout, "test_name": "compat-test",
                "schedule_name": "Rest+207855.sdx"}
    if allow_writes:
        settings["allow_writes"] = True
    settings.update(config)
    made.append(ChannelInterface(settings))
    return made[-1]


def target_for(key: str, sim: ArbinSim, made: List[Any], *, allow_writes: bool,
               timeout: float = 5.0, channel: int = 2, **config: Any) -> Any:
    if key.startswith("library:compat."):
        return interface(sim, made, allow_writes=allow_writes, timeout=timeout, **config)
    return channel_client(sim, made, allow_writes=allow_writes, timeout=timeout,
                          channel=channel)


def cli_argv(op: WriteOp, sim: ArbinSim, *extra: str, replace: Sequence[str] = ()) -> List[str]:
    words = op.name.split()
    for flag, value in zip(replace[::2], replace[1::2]):
        if flag in words:
            words[words.index(flag) + 1] = value
        else:
            words += [flag, value]
    return ["arbin", *words, "--port", str(sim.port), *extra]


def run_cli(capsys: pytest.CaptureFixture, argv: List[str]) -> Tuple[int, str]:
    code = main(argv)
    _, err = capsys.readouterr()
    return code, err


def assert_one_line(err: str) -> None:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert "Traceback" not in err


# ---------------------------------------------------------------------- the table itself
def test_the_table_covers_every_public_control_method() -> None:
    """Every public method ChannelClient adds (CyclerClient only reads) is in the table."""
    from pyburnerkit.arbin.client import CyclerClient
    readers = {"read_status"}  # ChannelClient re-binds it to its channel: still a read
    added = {name for name in vars(ChannelClient) if not name.startswith("_")
             and callable(getattr(ChannelClient, name)) and name not in vars(CyclerClient)}
    compat_added = {name for name in vars(ChannelInterface) if not name.startswith("_")
                    and callable(getattr(ChannelInterface, name))} - {"read_channel_status"}
    table = {op.name for op in WRITE_OPERATIONS if op.kind == "library"}
    assert added - readers <= table and compat_added <= table, (added, compat_added)
    assert set(LIBRARY_CALLS) == {op_id(op) for op in WRITE_OPERATIONS if op.kind == "library"}
    cli_words = {op.name.split()[0] for op in WRITE_OPERATIONS if op.kind == "cli"}
    assert cli_words == set(CLI_REQUEST)


# ---------------------------------------------------------------------- refused without opt-in
@pytest.mark.parametrize("op", ALL_OPS)
def test_refused_without_the_opt_in_and_nothing_is_sent(op: WriteOp, sim: ArbinSim,
                                                        made: List[Any], credentials: None,
                                                        capsys: pytest.CaptureFixture) -> None:
    key = op_id(op)
    if op.kind == "cli":
        code, err = run_cli(capsys, cli_argv(op, sim))
        assert code == 2, err
        assert_one_line(err)
        assert "--allow-writes" in err
        assert sim.logins == 0, "the CLI connected before refusing"
    else:
        target = target_for(key, sim, made, allow_writes=False)
        with pytest.raises(WriteNotAllowedError, match="allow_writes") as info:
            LIBRARY_CALLS[key][0](target)
        assert "\n" not in str(info.value)
    assert commands_received(sim) == []


# ---------------------------------------------------------------------- limits before sending
@pytest.mark.parametrize("key,bad", VALUE_CASES)
def test_out_of_limits_values_are_refused_before_sending(key: str, bad: Bad, sim: ArbinSim,
                                                         made: List[Any], credentials: None,
                                                         capsys: pytest.CaptureFixture) -> None:
    if key.startswith("cli:"):
        op = next(op for op in WRITE_OPERATIONS if op_id(op) == key)
        code, err = run_cli(capsys, cli_argv(op, sim, "--allow-writes", replace=bad.call))
        assert code == 2, err
        assert_one_line(err)
        message = err
    else:
        target = target_for(key, sim, made, allow_writes=True, channel=bad.channel,
                            **COMPAT_BAD_CONFIG.get(key, {}))
        with pytest.raises(ConfigurationError) as info:
            bad.call(target)
        message = str(info.value)
    for part in (bad.value, bad.limit, bad.unit):
        assert part in message, f"{part!r} missing from {message!r}"
    assert commands_received(sim) == []


def test_secrets_are_never_echoed_by_length_errors(sim: ArbinSim) -> None:
    secret = "p" * 40
    with pytest.raises(ConfigurationError) as info:
        ChannelClient(sim.endpoint, channel=1, username="u", password=secret)
    assert "40 bytes" in str(info.value) and "31 bytes" in str(info.value)
    assert secret not in str(info.value)


# ---------------------------------------------------------------------- never retried
@pytest.mark.parametrize("op", LIBRARY_OPS)
def test_docstring_says_a_timed_out_write_may_still_apply(op: WriteOp) -> None:
    owner = ChannelInterface if op.note.startswith("compat") else ChannelClient
    doc = " ".join((getattr(owner, op.name).__doc__ or "").split())
    assert TIMED_OUT_SENTENCE in doc, f"{owner.__name__}.{op.name}"


@pytest.mark.parametrize("op", ALL_OPS)
def test_a_timed_out_write_is_never_sent_again(op: WriteOp, sim: ArbinSim, made: List[Any],
                                               credentials: None,
                                               capsys: pytest.CaptureFixture) -> None:
    key = op_id(op)
    if op.kind == "cli":
        request_type = CLI_REQUEST[op.name.split()[0]]
        # The cycler logs the CLI in, then reads (and applies) the command but never answers.
        sim.silence_from(request_type.command)
        code, err = run_cli(capsys, cli_argv(op, sim, "--allow-writes", "--timeout", "0.3"))
        assert code == 1 and "TimeoutError" in err, err
        sim.silence(False)
    else:
        call, request_type = LIBRARY_CALLS[key]
        # Short call timeouts (a re-login sent while the cycler was still silent waits that
        # long); a pycti-style interface also connects with its one timeout: not too short.
        target = target_for(key, sim, made, allow_writes=True,
                            timeout=0.5 if "compat" in key else 0.3)
        client = target._client if isinstance(target, ChannelInterface) else target
        sim.silence(True)
        if isinstance(target, ChannelInterface):
            assert call(target) is False  # pycti's shape: the timeout is logged, not raised
        else:
            with pytest.raises(DeviceTimeoutError):
                call(target)
        sim.silence(False)
        # The session reconnected (CTI has no request id); a round trip on the new link
        # proves that anything a layer would resend has had its chance to go out.
        client.wait_for(lambda c: c.connected, timeout=10)
        client.read_status(2, timeout=5)
    assert sim.count(request_type) == 1


def test_a_timed_out_write_may_still_have_been_applied(sim: ArbinSim, made: List[Any]) -> None:
    client = channel_client(sim, made, allow_writes=True, timeout=0.3)
    sim.silence(True)
    with pytest.raises(DeviceTimeoutError):
        client.set_meta_variable(3, 1.25)
    sim.silence(False)
    assert sim.meta_variables(2) == {3: 1.25}  # what the docstrings warn about
    client.wait_for(lambda c: c.connected, timeout=10)
    assert sim.count(codec.SetMVRequest) == 1


def test_a_write_that_timed_out_while_queued_never_goes_out(sim: ArbinSim,
                                                            made: List[Any]) -> None:
    client = channel_client(sim, made, allow_writes=True, timeout=5.0)
    sim.silence(True)
    first = CallInThread(lambda: client.read_status(timeout=1.0))
    wait_until(lambda: sim.count(codec.ChannelInfoRequest) >= 1)
    with pytest.raises(DeviceTimeoutError):
        client.set_meta_variable(1, 2.0, timeout=0.1)  # still queued behind the read
    first.join(10)
    sim.silence(False)
    client.wait_for(lambda c: c.connected, timeout=10)
    client.read_status(timeout=5)
    assert sim.count(codec.SetMVRequest) == 0
