"""Hostile or broken frames from the controller: the I/O thread survives, secrets stay hidden."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from pyburnerkit import DeviceTimeoutError, ProtocolError, Reconnect
from pyburnerkit.afterburner import AfterburnerClient, AfterburnerSim, RunState

from ..helpers import CallInThread, wait_until

PASSWORD = "hunter2-Secret"


#: What the firmware sends when it answers a query (the system group).
SYSTEM_ANSWER = '{"DateTime":"15/1/2026 07:30:05","SysUpTime":5,"SysVer":"V3.2.1"}'


def command_then_query_sent(sim: AfterburnerSim, key: str) -> bool:
    frames = list(sim.received)
    firsts = [i for i, f in enumerate(frames) if key in f]
    return bool(firsts) and any("SQuery" in f for f in frames[firsts[-1]:])


@pytest.mark.parametrize("text", ['{"RunState":"1e3"}', '{"RunState":"2.5"}',
                                  '{"RunState":"NaN"}', '{"PumpCount":"1e999"}',
                                  '{"TempCurrent":' + "9" * 400 + "}"])
def test_numbers_sent_as_text_never_kill_the_io_thread(sim: AfterburnerSim, text: str) -> None:
    with AfterburnerClient(f"127.0.0.1:{sim.port}", refresh_grace=0.2,
                           allow_writes=True) as heater:
        # The real heater reports the new run state one bus cycle after the controller
        # answered the query, so a start waits on pushed RunState frames for a while.
        sim.silence(True)
        start = CallInThread(lambda: heater.start(timeout=3))
        wait_until(lambda: command_then_query_sent(sim, "Run"), message="the start")
        sim.send_garbage(SYSTEM_ANSWER)
        sim.send_garbage(text)
        sim.silence(False)
        start.join(10)
        assert start.error is None, start.error
        assert heater.io_thread.is_alive() and not heater.closed
        assert heater.read_system_info(timeout=3).firmware_version == "V3.2.1"
        assert heater.status.run_state is not None and heater.status.run_state.is_on


def test_a_stop_settles_despite_a_text_run_state(sim: AfterburnerSim) -> None:
    with AfterburnerClient(f"127.0.0.1:{sim.port}", refresh_grace=0.2,
                           allow_writes=True) as heater:
        heater.start(timeout=3)
        sim.silence(True)
        stop = CallInThread(lambda: heater.stop(timeout=3))
        wait_until(lambda: command_then_query_sent(sim, "Run")
                   and any(f.get("Run") == 0 for f in list(sim.received)), message="the stop")
        sim.send_garbage(SYSTEM_ANSWER)
        sim.send_garbage('{"RunState":"6.0"}')
        stop.join(10)
        assert stop.error is None, stop.error
        assert heater.status.run_state is RunState.STOPPING
        sim.silence(False)
        assert heater.io_thread.is_alive()
        assert heater.read_system_info(timeout=3).firmware_version == "V3.2.1"


def secret_free(text: str) -> bool:
    return PASSWORD not in text and "hunter2" not in text


@pytest.mark.parametrize("garbage", [
    '{"MPasswd":"' + PASSWORD + '","RunState":',          # truncated JSON
    '{"MUser":"me","MPasswd":"' + PASSWORD + '",',         # unterminated object
    '{"MPasswd":"' + PASSWORD,                              # unterminated string
    '{"MPasswd":' + PASSWORD + "}",                         # bare token
    '{"RunState":"x","MPasswd":"' + PASSWORD + '"}',        # decodes, then fails a check
    '{"MPasswd":"' + PASSWORD + '","RunState":[1]}',        # nested value
])
def test_a_password_in_an_undecodable_frame_never_leaks(sim: AfterburnerSim, caplog: Any,
                                                        garbage: str) -> None:
    sim.set(MPasswd=PASSWORD, MUser="me")
    with caplog.at_level(logging.DEBUG, logger="pyburnerkit"):
        with AfterburnerClient(f"127.0.0.1:{sim.port}", refresh_grace=0.2,
                               reconnect=Reconnect(30.0, 30.0, jitter=0.0)) as heater:
            heater.read_status(timeout=3)
            for _ in range(5):  # enough bad frames in a row to give the link up
                sim.send_garbage(garbage)
            wait_until(lambda: isinstance(heater.last_error, ProtocolError),
                       message="the link given up after bad frames")
            error = heater.last_error
            assert secret_free(str(error)) and secret_free(repr(error)), error
            assert error.frames, "ProtocolError carries no recent frames"
            assert all(secret_free(repr(frame)) for frame in error.frames), error.frames
            assert secret_free(repr(heater.status)) and secret_free(repr(heater.status.raw))
    records = [r.getMessage() for r in caplog.records]
    assert any("undecodable" in m for m in records)
    assert any(r.name == "pyburnerkit.afterburner.wire" for r in caplog.records)
    leaked = [m for m in records if not secret_free(m)]
    assert not leaked, leaked


def test_a_bug_while_handling_a_frame_is_logged_once_counted_and_survived(
        caplog: Any, monkeypatch: Any) -> None:
    from pyburnerkit.afterburner import codec
    real = codec.update_system_info

    def broken(*args: Any) -> Any:
        raise RuntimeError("a bug in the decoder")

    with AfterburnerSim(tick=0.2, seed=9).start() as slow, \
            AfterburnerClient(f"127.0.0.1:{slow.port}", refresh_grace=0.2) as heater:
        heater.read_system_info(timeout=3)
        with caplog.at_level(logging.WARNING, logger="pyburnerkit"):
            monkeypatch.setattr(codec, "update_system_info", broken)
            with pytest.raises(DeviceTimeoutError):
                heater.read_system_info(timeout=0.5)  # each answer meets the bug
            monkeypatch.setattr(codec, "update_system_info", real)
            # The caller of a lost answer rides the next round: no one waits for ever.
            assert heater.read_system_info(timeout=3).firmware_version == "V3.2.1"
        assert heater.io_thread.is_alive() and not heater.closed and heater.connected
        bugs = heater._session.unexpected_errors
        assert bugs >= 1 and heater.protocol_errors >= bugs
    tracebacks = [r for r in caplog.records if "Traceback" in r.getMessage()
                  or "could not be handled" in r.getMessage()]
    assert len(tracebacks) == 1 and "in broken" in tracebacks[0].getMessage()
    assert "RuntimeError: a bug in the decoder" in tracebacks[0].getMessage()
    assert sum("could not handle a frame" in r.getMessage() for r in caplog.records) == bugs
