"""Write safety of the Skale II (``family = "scale"``). Its rows are also part of
``test_de1_writes.WRITE_OPERATIONS``, the table the cross-family check reads for the scale.

Tare, ``set_display``, ``set_units`` and the timer commands (``start_timer``, ``stop_timer``,
``reset_timer`` and pyDE1's names for them, ``timer_start``, ``timer_stop``, ``timer_reset``)
change the scale: they need ``allow_writes=True`` (``--allow-writes`` for ``scale tare`` and
``scale timer start|stop|reset``), send nothing without it, say in their docstring that a
timed-out write may still be applied, and are never retried. The connect sequence (grams, display
on) is sent on every connect whatever the opt-in: the weight stream is only in grams after it.
Button 1 tares only on a client opened for writes (``button_tares`` follows ``allow_writes``).
"""

from __future__ import annotations

import threading
from typing import Any, Callable, Dict, Iterator, List

import pytest

from pyburnerkit import DeviceTimeoutError, Reconnect, WriteNotAllowedError
from pyburnerkit.cli.main import main
from pyburnerkit.rigs.espresso import DE1Rig
from pyburnerkit.errors import ConfigurationError
from pyburnerkit.scale import codec
from pyburnerkit.scale.client import SkaleClient
from pyburnerkit.scale.models import ButtonPressed

from ..ble.simrig import SEND_DELAY, SPEED, RigOnPath, rig_on_path, sim_transport  # noqa: F401
from ..helpers import Recorder
from .stress import WriteOp

NEVER_RETRIED = ("If this call times out, the device may still apply the write later; it is "
                 "never retried automatically.")

WRITE_OPERATIONS: List[WriteOp] = [
    WriteOp("tare", note="allow_writes"),
    WriteOp("set_display", note="allow_writes"),
    WriteOp("set_units", note="allow_writes; 'g' or 'oz'"),
    WriteOp("start_timer", note="allow_writes; no value (timer_style is checked when the "
                                "client is made)"),
    WriteOp("stop_timer", note="allow_writes"),
    WriteOp("reset_timer", note="allow_writes"),
    WriteOp("timer_start", note="pyDE1's name for start_timer"),
    WriteOp("timer_stop", note="pyDE1's name for stop_timer"),
    WriteOp("timer_reset", note="pyDE1's name for reset_timer"),
    WriteOp("tare", kind="cli", note="scale tare --allow-writes"),
    WriteOp("timer start", kind="cli"),
    WriteOp("timer stop", kind="cli"),
    WriteOp("timer reset", kind="cli"),
]

CALLS: Dict[str, Callable[[SkaleClient], Any]] = {
    "tare": lambda s: s.tare(),
    "set_display": lambda s: s.set_display(False),
    "set_units": lambda s: s.set_units("oz"),
    "start_timer": lambda s: s.start_timer(),
    "stop_timer": lambda s: s.stop_timer(),
    "reset_timer": lambda s: s.reset_timer(),
    "timer_start": lambda s: s.timer_start(),
    "timer_stop": lambda s: s.timer_stop(),
    "timer_reset": lambda s: s.timer_reset(),
}


@pytest.fixture
def rig() -> Iterator[DE1Rig]:
    r = DE1Rig(speed=SPEED).start()
    try:
        yield r
    finally:
        r.close()


def commands(rig: DE1Rig) -> List[int]:
    return rig.run(lambda: list(rig.skale.commands))


def test_the_table_names_every_write_method() -> None:
    public = {name for name in dir(SkaleClient) if not name.startswith("_")
              and callable(getattr(SkaleClient, name))}
    not_device_changing = {"connect", "close", "subscribe", "events", "wait_for", "is_stale",
                           "read_battery", "release", "capture", "follow", "start_connect",
                           "wait_connected"}
    assert public - not_device_changing == {op.name for op in WRITE_OPERATIONS
                                            if op.kind == "library"} == set(CALLS)


@pytest.mark.parametrize("name", sorted(CALLS))
def test_refused_without_allow_writes(rig: DE1Rig, name: str) -> None:
    with SkaleClient(rig.skale.address, transport=sim_transport(rig),
                     time_scale=SPEED) as scale:
        before = commands(rig)
        with pytest.raises(WriteNotAllowedError, match="allow_writes=True") as caught:
            CALLS[name](scale)
        assert (caught.value.device, caught.value.endpoint) == ("scale", rig.skale.address)
        assert commands(rig) == before


def test_units_outside_the_choice_refused_before_sending(rig: DE1Rig) -> None:
    with SkaleClient(rig.skale.address, transport=sim_transport(rig), time_scale=SPEED,
                     allow_writes=True) as scale:
        before = commands(rig)
        with pytest.raises(ConfigurationError, match="unit 'lb': expected 'g' or 'oz'"):
            scale.set_units("lb")
        assert commands(rig) == before


def test_a_timer_style_outside_the_choice_refused_before_connecting(rig: DE1Rig) -> None:
    with pytest.raises(ConfigurationError, match="acaia"):
        SkaleClient(rig.skale.address, transport=sim_transport(rig), allow_writes=True,
                    timer_style="acaia")
    assert rig.run(lambda: rig.host.requests) == 0 and commands(rig) == []


def test_the_timer_commands_go_through_when_allowed(rig: DE1Rig) -> None:
    """The calls the refusal test makes are the ones that work once opted in."""
    with SkaleClient(rig.skale.address, transport=sim_transport(rig), time_scale=SPEED,
                     allow_writes=True) as scale:
        scale.timer_start()
        assert rig.run(lambda: rig.skale.timer_running) and scale.timer_running is True
        scale.stop_timer()
        assert rig.run(lambda: rig.skale.timer_running) is False
        scale.reset_timer()
        assert rig.run(lambda: rig.skale.timer_s) == 0.0


@pytest.mark.parametrize("name", sorted(CALLS))
def test_every_write_method_says_a_timed_out_write_may_still_apply(name: str) -> None:
    doc = " ".join((getattr(SkaleClient, name).__doc__ or "").split())
    assert NEVER_RETRIED in doc


def test_the_button_tares_only_a_client_opened_for_writes(rig: DE1Rig) -> None:
    with pytest.raises(WriteNotAllowedError, match="button_tares=True"):
        SkaleClient(rig.skale.address, transport=sim_transport(rig), button_tares=True)
    presses = Recorder()
    with SkaleClient(rig.skale.address, transport=sim_transport(rig),
                     time_scale=SPEED) as scale:
        scale.subscribe(presses, ButtonPressed)
        before = commands(rig)
        rig.host.call_soon(rig.skale.press, 1)
        presses.wait_for(lambda e: e.button == 1)
        assert scale.read_battery() == 57  # a round trip after the press was handled
        assert commands(rig) == before


@pytest.mark.parametrize("op", [op for op in WRITE_OPERATIONS if op.kind == "cli"],
                         ids=lambda op: op.name)
def test_cli_write_refused_without_allow_writes(rig_on_path: RigOnPath, op: WriteOp,
                                                capsys: Any) -> None:
    code = main(["scale", *op.name.split(), "--address", rig_on_path.skale.address,
                 "--send-delay", "0.002"])
    out, err = capsys.readouterr()
    assert code == 2 and "--allow-writes" in err and len(err.strip().splitlines()) == 1
    assert out == "" and "Traceback" not in err
    assert rig_on_path.rig.run(lambda: rig_on_path.rig.host.requests) == 0


def test_a_timed_out_tare_is_never_retried(rig_on_path: RigOnPath) -> None:
    """Through pygatt: the scale answers 2 s late (twice the 1 s timeout); the tare times out,
    the scale applies it anyway, and it received exactly one tare once it answers again."""
    env = rig_on_path
    scale = SkaleClient(env.skale.address, send_delay=SEND_DELAY, time_scale=SPEED,
                        timeout=1.0, allow_writes=True,
                        reconnect=Reconnect(min_delay=0.05, max_delay=0.5, jitter=0.0))

    def tares() -> int:
        return env.rig.run(lambda: env.skale.commands.count(codec.CMD_TARE))

    try:
        scale.connect()
        env.rig.host.delay_responses(2.0)
        with pytest.raises(DeviceTimeoutError):
            scale.tare(wait=False)
        assert tares() == 1
        flushed = threading.Event()  # everything held back has gone out when this fires
        env.rig.run(lambda: env.rig.host.call_later(2.1, flushed.set))
        env.rig.host.delay_responses(0.0)
        assert flushed.wait(5.0)
        assert scale.read_battery(timeout=5.0) == 57
        assert tares() == 1, "the timed-out tare was sent again"
    finally:
        scale.close()
