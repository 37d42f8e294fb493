"""Skale timer start/stop/reset (spec 7.1): the codec's two byte sets, the client against the
simulated Skale (which keeps a timer on its simulated clock), and the write permission."""

from __future__ import annotations

from typing import Any, Iterator

import pytest

from pyburnerkit.errors import ConfigurationError, WriteNotAllowedError
from pyburnerkit.scale import codec
from pyburnerkit.scale.client import SkaleClient


def test_timer_bytes_follow_each_app() -> None:
    # pyDE1: 0xD1 start, 0xD2 stop, 0xD0 zero; de1app: 0xDD start, 0xD1 stop, 0xD0 reset
    assert [codec.encode_timer(a) for a in ("start", "stop", "reset")] == \
        [b"\xd1", b"\xd2", b"\xd0"]
    assert [codec.encode_timer(a, "de1app") for a in ("start", "stop", "reset")] == \
        [b"\xdd", b"\xd1", b"\xd0"]
    assert codec.decode_timer(b"\xd1", "de1app") == "stop"
    assert codec.decode_timer(b"\xd1", "pyde1") == "start"
    assert codec.decode_timer(b"\x10") == ""


def test_timer_bad_action_or_style_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="'lap'"):
        codec.encode_timer("lap")
    with pytest.raises(ConfigurationError, match="timer_style='acaia'"):
        codec.encode_timer("start", "acaia")
    with pytest.raises(ConfigurationError, match="timer_style"):
        SkaleClient("sim://", timer_style="acaia")


@pytest.fixture
def scale() -> Iterator[SkaleClient]:
    client = SkaleClient("sim://?speed=10", allow_writes=True, timeout=5.0).connect()
    try:
        yield client
    finally:
        client.close()


def _sim(client: SkaleClient, fn: Any) -> Any:
    sim = client.simulator
    assert sim is not None
    return sim.run(lambda: fn(sim.skale))


def test_start_stop_reset_drive_the_simulated_timer(scale: SkaleClient) -> None:
    assert scale.timer_running is None
    scale.start_timer()
    assert scale.timer_running is True
    assert _sim(scale, lambda s: (s.timer_running, s.commands[-1])) == (True, 0xD1)
    scale.wait_for(lambda c: _sim(c, lambda s: s.timer_s) > 0.5, timeout=5.0)
    scale.stop_timer()
    assert scale.timer_running is False
    shown = _sim(scale, lambda s: (s.timer_running, s.timer_s, s.commands[-1]))
    assert shown[0] is False and shown[1] > 0.5 and shown[2] == 0xD2
    # stopped: the shown time no longer moves, until reset zeroes it
    assert _sim(scale, lambda s: s.timer_s) == shown[1]
    scale.reset_timer()
    assert _sim(scale, lambda s: (s.timer_s, s.commands[-1])) == (0.0, 0xD0)


def test_pyde1_names_are_the_same_calls(scale: SkaleClient) -> None:
    scale.timer_start()
    assert _sim(scale, lambda s: s.timer_running) is True
    scale.timer_stop()
    scale.timer_reset()
    assert _sim(scale, lambda s: (s.timer_running, s.timer_s)) == (False, 0.0)


def test_de1app_style_sends_de1app_bytes() -> None:
    # the simulator's style is the client's default, so both read the bytes the same way
    with SkaleClient("sim://?speed=10&timer_style=de1app", allow_writes=True).connect() as c:
        assert c.timer_style == "de1app"
        c.start_timer()
        assert _sim(c, lambda s: (s.timer_running, s.commands[-1])) == (True, 0xDD)
        c.stop_timer()
        assert _sim(c, lambda s: (s.timer_running, s.commands[-1])) == (False, 0xD1)


def test_timer_needs_writes_and_sends_nothing_without() -> None:
    with SkaleClient("sim://?speed=10").connect() as c:
        before = _sim(c, lambda s: list(s.commands))
        for call in (c.start_timer, c.stop_timer, c.reset_timer):
            with pytest.raises(WriteNotAllowedError, match="allow_writes"):
                call()
        assert _sim(c, lambda s: list(s.commands)) == before
        assert c.timer_running is None
