"""The command plane behind Home Assistant's controls (issue 12), against real simulators and
real clients: what may be changed, how a payload becomes a library call, what a refusal says,
ordering, a full queue, and closing while a command runs."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
from typing import Any, Iterator, List, Optional, Sequence, Tuple

import pytest

from pyburnerkit.afterburner import AfterburnerClient
from pyburnerkit.afterburner.models import RunState, ThermostatMethod
from pyburnerkit.afterburner.sim import AfterburnerSim
from pyburnerkit.errors import ConfigurationError
from pyburnerkit.recorder import AfterburnerSource, Recorder
from pyburnerkit.recorder.commands import CommandHandled, Commands, check_controls
from pyburnerkit.recorder.config import parse_config
from pyburnerkit.recorder.sinks.base import Sink

DEVICE = "cabin"


class Replies:
    """The replies of submitted commands, with the thread each ran on; ``wait(n)`` blocks on a
    condition until ``n`` have arrived."""

    def __init__(self) -> None:
        self.items: List[Tuple[bool, str, Any]] = []
        self.threads: List[str] = []
        self.cond = threading.Condition()

    def __call__(self, ok: bool, message: str, confirmed: Any) -> None:
        with self.cond:
            self.items.append((ok, message, confirmed))
            self.threads.append(threading.current_thread().name)
            self.cond.notify_all()

    def wait(self, n: int = 1, timeout: float = 30.0) -> List[Tuple[bool, str, Any]]:
        with self.cond:
            if not self.cond.wait_for(lambda: len(self.items) >= n, timeout):
                raise AssertionError(f"{len(self.items)} of {n} replies within {timeout} s")
            return list(self.items)


def _heater(allow_writes: bool = True) -> AfterburnerClient:
    # a silenced simulator must not look dead while a test holds a command in flight
    client = AfterburnerClient("sim://?tick=0&speed=100&seed=1", allow_writes=allow_writes,
                               liveness_interval=3600, liveness_timeout=600)
    client.connect()
    return client


@pytest.fixture
def heater() -> Iterator[AfterburnerClient]:
    client = _heater()
    try:
        yield client
    finally:
        client.close()


@pytest.fixture
def readonly_heater() -> Iterator[AfterburnerClient]:
    client = _heater(allow_writes=False)
    try:
        yield client
    finally:
        client.close()


def _router(client: Any, **kw: Any) -> Commands:
    return Commands([AfterburnerSource(client, device=DEVICE)], **kw)


def _sim_value(client: AfterburnerClient, key: str) -> Any:
    return client.simulator.snapshot()[key]


def _submit(router: Commands, field: str, payload: str, replies: Replies,
            device: str = DEVICE, family: str = "afterburner") -> None:
    router.submit(family, device, "", field, payload, replies)


# ------------------------------------------------------------------------------ numbers
def test_a_safe_number_command_changes_the_simulator_and_confirms_its_value(heater):
    router = _router(heater)
    replies = Replies()
    try:
        assert router.controllable("afterburner", DEVICE, "", "TempDesired")
        target = 31 if _sim_value(heater, "TempDesired") != 31 else 30
        _submit(router, "TempDesired", f"{target}.0", replies)  # HA sends a float's text
        assert replies.wait() == [(True, "", target)]
        assert replies.threads == ["pyburnerkit-recorder-commands"]
        assert _sim_value(heater, "TempDesired") == target
        assert router.stats().done == 1
    finally:
        assert router.close()
    assert router.thread is not None and not router.thread.is_alive()


def test_a_value_outside_the_limits_is_refused_with_the_librarys_message(heater):
    router = _router(heater)
    replies = Replies()
    before = _sim_value(heater, "TempDesired")
    with pytest.raises(ConfigurationError) as library:
        heater.set_desired_temperature(40)
    try:
        _submit(router, "TempDesired", "40", replies)
        _submit(router, "TempDesired", "22.5", replies)  # not whole: the library refuses it
        (ok, message, confirmed), (ok2, message2, _) = replies.wait(2)
    finally:
        router.close()
    assert (ok, confirmed) == (False, None)
    assert message == str(library.value)
    assert "40" in message and "8..35" in message
    assert not ok2 and "whole" in message2
    assert _sim_value(heater, "TempDesired") == before
    assert router.stats().refused == 2


def test_a_payload_that_is_no_number_is_refused_before_the_device(heater):
    router = _router(heater)
    replies = Replies()
    before = _sim_value(heater, "TempDesired")
    try:
        _submit(router, "TempDesired", "warm", replies)
        _submit(router, "TempDesired", "nan", replies)
        (ok, message, _), (ok2, message2, _) = replies.wait(2)
    finally:
        router.close()
    assert not ok and "neither a temperature nor a mode" in message
    assert not ok2 and "'nan'" in message2
    assert _sim_value(heater, "TempDesired") == before


# ------------------------------------------------------------------------------ gating
def test_nothing_is_controllable_when_writes_are_not_allowed(readonly_heater):
    router = _router(readonly_heater)
    replies = Replies()
    before = _sim_value(readonly_heater, "TempDesired")
    try:
        assert not router.controllable("afterburner", DEVICE, "", "TempDesired")
        # even what the library allows without allow_writes (stop): the config did not ask
        assert not router.controllable("afterburner", DEVICE, "", "Stop")
        assert router.controllable_fields("afterburner", DEVICE) == []
        _submit(router, "TempDesired", "30", replies)
        [(ok, message, confirmed)] = replies.wait()
    finally:
        router.close()
    assert (ok, confirmed) == (False, None)
    assert "writes are not allowed" in message and "allow_writes = true" in message
    assert _sim_value(readonly_heater, "TempDesired") == before


def test_a_field_that_is_not_safe_needs_the_users_opt_in(heater):
    replies = Replies()
    router = _router(heater)
    before = _sim_value(heater, "PumpCal")
    new = 0.031 if before != 0.031 else 0.032
    try:
        assert not router.controllable("afterburner", DEVICE, "", "PumpCal")
        _submit(router, "PumpCal", str(new), replies)
        [(ok, message, _)] = replies.wait()
        assert not ok and "not a safe control" in message and "controls" in message
        assert _sim_value(heater, "PumpCal") == before
    finally:
        router.close()

    opted = _router(heater, controls={f"afterburner/{DEVICE}": ["PumpCal"]})
    replies = Replies()
    try:
        assert opted.controllable("afterburner", DEVICE, "", "PumpCal")
        assert "PumpCal" in opted.controllable_fields("afterburner", DEVICE)
        _submit(opted, "PumpCal", str(new), replies)
        [(ok, message, confirmed)] = replies.wait()
    finally:
        opted.close()
    assert (ok, message) == (True, "")
    assert confirmed == pytest.approx(new)
    assert _sim_value(heater, "PumpCal") == pytest.approx(new)


def test_unknown_fields_and_devices_are_refused(heater):
    router = _router(heater)
    replies = Replies()
    try:
        assert not router.controllable("afterburner", "garage", "", "TempDesired")
        assert not router.controllable("afterburner", DEVICE, "", "TempCurrent")  # a sensor
        assert not router.controllable("afterburner", DEVICE, "", "NoSuchField")
        _submit(router, "TempDesired", "20", replies, device="garage")
        _submit(router, "TempCurrent", "20", replies)
        _submit(router, "NoSuchField", "20", replies)
        _submit(router, "TempDesired", "20", replies, family="mate3")
        got = replies.wait(4)
    finally:
        router.close()
    assert [ok for ok, _, _ in got] == [False] * 4
    assert "no device afterburner/garage" in got[0][1]
    assert "TempCurrent is not a setting or an action" in got[1][1]
    assert "NoSuchField is not a setting or an action" in got[2][1]
    assert "no device mate3/cabin" in got[3][1]


def test_opting_in_to_an_unknown_field_is_a_clear_configuration_error(heater):
    with pytest.raises(ConfigurationError) as err:
        _router(heater, controls={f"afterburner/{DEVICE}": ["PumpCall"]})
    text = str(err.value)
    assert "'PumpCall' is not a controllable field of the afterburner family" in text
    assert "PumpCal" in text and "TempDesired" in text  # the controllable ones are listed
    with pytest.raises(ConfigurationError, match="not recorded; devices: afterburner/cabin"):
        _router(heater, controls={"afterburner/garage": ["PumpCal"]})
    with pytest.raises(ConfigurationError, match="must be a list of field names"):
        check_controls("afterburner", "PumpCal")


# ------------------------------------------------------------------------------ other kinds
def test_buttons_and_the_climate_mode_start_and_stop_the_heater(heater):
    router = _router(heater)
    replies = Replies()
    try:
        assert heater.status.run_state is RunState.STOPPED
        _submit(router, "Start", "PRESS", replies)
        [(ok, message, confirmed)] = replies.wait()
        assert (ok, message, confirmed) == (True, "", None)
        assert _sim_value(heater, "RunState") != 0
        _submit(router, "TempDesired", "off", replies)  # the climate's mode
        assert replies.wait(2)[1] == (True, "", "off")
        heater.wait_for(lambda c: not c.status.run_state.is_heating, timeout=20)
        _submit(router, "Start", "press me", replies)
        assert replies.wait(3)[2][0] is False and "PRESS" in replies.items[2][1]
        _submit(router, "TempDesired", "heat", replies)
        assert replies.wait(4)[3] == (True, "", "heat")
        assert _sim_value(heater, "RunState") != 0
        _submit(router, "Stop", "PRESS", replies)
        assert replies.wait(5)[4] == (True, "", None)
    finally:
        router.close()
    heater.wait_for(lambda c: not c.status.run_state.is_heating, timeout=20)


def test_a_select_sends_the_choice_and_refuses_an_unknown_option(heater):
    router = _router(heater, controls={f"afterburner/{DEVICE}": ["ThermostatMethod"]})
    replies = Replies()
    try:
        _submit(router, "ThermostatMethod", "DEADBAND", replies)
        _submit(router, "ThermostatMethod", "BOGUS", replies)
        # a refusal is replied at once, maybe before the command queued ahead of it is done
        got = replies.wait(2)
    finally:
        router.close()
    first, second = sorted(got, key=lambda r: not r[0])
    assert first == (True, "", ThermostatMethod.DEADBAND)
    assert _sim_value(heater, "ThermostatMethod") == 1
    assert not second[0] and "'BOGUS' is not one of STANDARD, DEADBAND" in second[1]


# ------------------------------------------------------------------------------ "path" controls
def test_a_mate3_setting_is_written_at_the_path_its_table_names():
    """Mate3 controls are ``write("path:mate3.<field>")``: the path comes from the table, the
    value second; the confirmed value is the write's read-back."""
    from pyburnerkit.mate3 import Mate3Client
    from pyburnerkit.recorder.adapters.mate3 import Mate3Source
    client = Mate3Client("sim://mate3", allow_writes=True)
    client.connect()
    router = Commands([Mate3Source(client, device="shed")])
    replies = Replies()
    try:
        client.read_all()
        assert router.controllable("mate3", "shed", "mate3", "ags_mode")  # the safe one
        assert not router.controllable("mate3", "shed", "mate3", "set_time_zone")  # opt-in
        target = "OFF" if int(client.read_value("mate3.ags_mode")) else "ON"
        router.submit("mate3", "shed", "mate3", "ags_mode", target, replies)
        [(ok, message, confirmed)] = replies.wait()
        assert (ok, message, confirmed) == (True, "", 1 if target == "ON" else 0)
        assert int(client.read_value("mate3.ags_mode")) == confirmed
    finally:
        router.close()
        client.close()


def test_a_victron_control_writes_the_channels_service_at_the_fields_path():
    """Victron controls are ``set_value(service, path, value)`` with the channel as service;
    they are keyed by service type, and that is how a user opts in."""
    from pyburnerkit.recorder.adapters.victron import VictronSource
    from pyburnerkit.victron import VictronMonitor
    service = "com.victronenergy.solarcharger.sim"
    monitor = VictronMonitor("sim://", allow_writes=True)
    monitor.connect()
    replies = Replies()
    plain = Commands([VictronSource(monitor, device="venus")])
    opted = Commands([VictronSource(monitor, device="venus")],
                     controls={"victron/venus": ["com.victronenergy.solarcharger/Mode"]})
    try:
        monitor.wait_for_service(service)
        before = monitor.read_value(service, "/Mode")
        target, payload = (4, "OFF") if before != 4 else (1, "ON")
        assert not plain.controllable("victron", "venus", service, "/Mode")  # not safe
        plain.submit("victron", "venus", service, "/Mode", payload, replies)
        assert not replies.wait()[0][0] and "not a safe control" in replies.items[0][1]
        assert monitor.read_value(service, "/Mode") == before

        assert opted.controllable("victron", "venus", service, "/Mode")
        opted.submit("victron", "venus", service, "/Mode", payload, replies)
        assert replies.wait(2)[1] == (True, "", target)
        assert monitor.read_value(service, "/Mode") == target
    finally:
        plain.close()
        opted.close()
        monitor.close()


# ------------------------------------------------------------------------------ ordering
def test_commands_run_one_at_a_time_in_the_order_they_came(heater):
    seen: List[CommandHandled] = []
    router = _router(heater, on_result=seen.append)
    replies = Replies()
    values = [20, 24, 18, 27, 21]
    try:
        for value in values:
            _submit(router, "TempDesired", str(value), replies)
        got = replies.wait(len(values))
    finally:
        router.close()
    assert got == [(True, "", v) for v in values]
    assert _sim_value(heater, "TempDesired") == values[-1]
    assert [e.confirmed for e in seen] == values
    assert seen[0].format() == "command afterburner/cabin TempDesired: done (now 20)"


# ------------------------------------------------------------------------------ queue, closing
def test_a_full_queue_refuses_and_close_while_a_command_runs_is_bounded(heater):
    router = _router(heater, max_pending=1, timeout=60.0)
    replies = Replies()
    before = _sim_value(heater, "TempDesired")
    target = 30 if before != 30 else 29
    heater.simulator.silence()  # commands are taken, nothing is sent back: no confirmation
    _submit(router, "TempDesired", str(target), replies)
    router.wait_for(lambda s: s.running is not None)
    _submit(router, "TempDesired", "25", replies)    # waits behind the running one
    _submit(router, "TempDesired", "26", replies)    # one too many
    [refused] = replies.wait(1)
    assert refused[0] is False and "1 commands are already waiting" in refused[1]

    # the running command holds the thread (its timeout is 60 s): close gives up, bounded
    assert router.close(timeout=0.2) is False
    assert router.thread is not None and router.thread.is_alive()
    heater.close()  # ends the call in flight at once
    assert router.close(timeout=10) is True
    got = replies.wait(3)
    assert not router.thread.is_alive()
    assert got[1][0] is False and "closed" in got[1][1].lower()
    assert got[2] == (False, "the recorder is closing: command not run", None)
    _submit(router, "TempDesired", "22", replies)  # after close: refused at once
    assert replies.items[3] == (False, "the recorder is closing: command not run", None)


class CommandSink(Sink):
    """A sink that takes commands (as the MQTT sink does): it keeps the router it got and
    records whether it got it before it was opened."""

    name = "cmd"

    def __init__(self) -> None:
        self.router: Optional[Commands] = None
        self.router_before_open: Optional[bool] = None
        self.opened = threading.Event()

    def attach_commands(self, router: Commands) -> None:
        self.router = router

    def open(self) -> None:
        self.router_before_open = self.router is not None
        self.opened.set()

    def write(self, items: Sequence[Any]) -> None:
        pass


def test_the_recorder_hands_its_router_to_sinks_and_closes_it_while_a_command_runs(tmp_path):
    client = _heater()  # its liveness check must not drop the silenced link under load
    source = AfterburnerSource(client, device=DEVICE, owns_client=True)
    sink = CommandSink()
    events: List[CommandHandled] = []
    rec = Recorder([source], [sink], spool_dir=str(tmp_path / "spool"), progress_interval=None)
    rec.subscribe(events.append, CommandHandled)
    replies = Replies()
    with rec:
        assert sink.opened.wait(10)
        assert sink.router is rec.commands and sink.router_before_open is True
        client.wait_for(lambda c: c.connected and not c.stale, timeout=20)
        _submit(rec.commands, "TempDesired", "23", replies)
        assert replies.wait() == [(True, "", 23)]
        rec.wait_for(lambda r: len(events) == 1)
        assert events[0].ok and events[0].confirmed == 23
        client.simulator.silence()
        _submit(rec.commands, "TempDesired", "24", replies)
        # the router says when a command starts (it used to say so only when one ended, so
        # this wait saw the command only if it had started before the wait began); a refusal
        # ends the wait too, so a failure shows the reason instead of a timeout
        rec.commands.wait_for(lambda s: s.running is not None or s.refused)
        assert rec.commands.stats().refused == 0, replies.wait(0)
    # close() closed the client, which ended the command in flight; nothing lingers
    got = replies.wait(2)
    assert got[1][0] is False and "closed" in got[1][1].lower()
    assert rec.lingering == []
    assert rec.commands.thread is not None and not rec.commands.thread.is_alive()


# ------------------------------------------------------------------------------ config
def _config(body: str) -> Any:
    import tomllib
    return parse_config(tomllib.loads(textwrap.dedent(body)))


def test_the_config_opts_in_per_device_and_refuses_unknown_controls(tmp_path):
    cfg = _config(f"""
        [recorder]
        spool_dir = "{tmp_path}/spool"
        command_timeout = 5
        [[devices]]
        family = "afterburner"
        url = "sim://?tick=0"
        id = "cabin"
        controls = ["PumpCal"]
        [devices.options]
        allow_writes = true
        [[devices]]
        family = "afterburner"
        url = "sim://?tick=0"
        id = "garage"
        [[sinks]]
        type = "sqlite"
        path = "{tmp_path}/rec.db"
    """)
    assert cfg.devices[0].controls == ("PumpCal",)
    assert "controls=('PumpCal',)" in repr(cfg.devices[0])
    rec = cfg.build(progress_interval=None)
    try:
        commands = rec.commands
        assert commands.timeout == 5.0
        assert commands.controllable("afterburner", "cabin", "", "PumpCal")
        assert commands.controllable("afterburner", "cabin", "", "TempDesired")
        assert not commands.controllable("afterburner", "cabin", "", "PumpMax")  # not listed
        assert not commands.controllable("afterburner", "garage", "", "TempDesired")
    finally:
        rec.close()

    with pytest.raises(ConfigurationError) as err:
        _config("""
            [[devices]]
            family = "afterburner"
            url = "sim://"
            controls = ["PumpCal", "Pumpcal"]
        """)
    assert "devices[0]: controls: 'Pumpcal' is not a controllable field of the afterburner " \
           "family; controllable: " in str(err.value)
    assert "PumpCal" in str(err.value)
    with pytest.raises(ConfigurationError, match="must be a list of field names"):
        _config("""
            [[devices]]
            family = "afterburner"
            url = "sim://"
            controls = "PumpCal"
        """)


# ------------------------------------------------------------------------------ end to end
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture
def two_heaters() -> Iterator[Tuple[AfterburnerSim, AfterburnerSim]]:
    """Two heater simulators on 127.0.0.1: one the config lets Home Assistant control, one
    it records read-only."""
    cabin = AfterburnerSim(tick=0.05, speed=30.0, seed=5).start("127.0.0.1", 0)
    try:
        garage = AfterburnerSim(tick=0.05, speed=30.0, seed=6).start("127.0.0.1", 0)
    except BaseException:
        cabin.close()
        raise
    try:
        yield cabin, garage
    finally:
        garage.close()
        cabin.close()


def _config_of_record(tmp_path: Any, cabin_port: int, garage_port: int, broker_port: int
                      ) -> str:
    path = tmp_path / "recorder.toml"
    path.write_text(textwrap.dedent(f"""
        [recorder]
        progress_interval = 3600
        spool_dir = "spool"

        [[devices]]
        family = "afterburner"
        url = "ws://127.0.0.1:{cabin_port}/"
        id = "cabin"
        [devices.options]
        allow_writes = true

        [[devices]]
        family = "afterburner"
        url = "ws://127.0.0.1:{garage_port}/"
        id = "garage"

        [[sinks]]
        type = "mqtt"
        host = "127.0.0.1"
        port = {broker_port}
        topic_root = "e2e"
    """))
    return str(path)


def _configs(messages: List[Any]) -> dict:
    """unique_id -> the last discovery config published for it."""
    found = {}
    for topic, payload, _ in messages:
        if topic.startswith("homeassistant/") and topic.endswith("/config") and payload:
            config = json.loads(payload)
            if "unique_id" in config:
                found[config["unique_id"]] = config
    return found


def _published(messages: List[Any], topic: str) -> List[Any]:
    return [json.loads(p) for t, p, _ in messages if t == topic and p]


def test_home_assistant_sets_the_heater_through_pyburnerkit_record(tmp_path, broker,
                                                                   two_heaters):
    """The issue's end-to-end test: ``pyburnerkit record CONFIG`` as a real process, a real
    mosquitto, the heater simulators over WebSocket, and Home Assistant played by a plain MQTT
    client that only uses what discovery announced."""
    from .util import Subscriber
    cabin, garage = two_heaters
    config = _config_of_record(tmp_path, cabin.port, garage.port, broker.port)
    ha = Subscriber(broker.port, "#")
    env = dict(os.environ, PYTHONPATH=ROOT, XDG_CACHE_HOME=str(tmp_path / "cache"))
    proc = subprocess.Popen([sys.executable, "-m", "pyburnerkit.cli.main", "record", config],
                            cwd=str(tmp_path), env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        climate_id = "pyburnerkit_afterburner_cabin_tempdesired"
        garage_id = "pyburnerkit_afterburner_garage_tempdesired"
        configs = ha.wait_for(lambda m: (lambda c: c if climate_id in c and garage_id in c
                                         else None)(_configs(m)), timeout=60)
        climate = configs[climate_id]
        set_topic = climate["temperature_command_topic"]
        state_topic = climate["temperature_state_topic"]
        error_topic = "e2e/afterburner/cabin/error"
        # the read-only heater gets no control at all: its set point is a plain sensor
        assert "command_topic" not in configs[garage_id]
        assert "temperature_command_topic" not in configs[garage_id]

        # outside the limits: refused by the library, nothing sent, the reason published
        before = cabin.snapshot()["TempDesired"]
        ha.client.publish(set_topic, "40", qos=1)
        [error] = ha.wait_for(lambda m: _published(m, error_topic) or None)
        assert error["field"] == "TempDesired" and error["payload"] == "40"
        assert "8..35" in error["error"]
        assert cabin.snapshot()["TempDesired"] == before

        # within the limits: the heater changes and the confirmed state is published
        target = 24 if before != 24 else 23
        ha.client.publish(set_topic, f"{target}.0", qos=1)
        ha.wait_for(lambda m: any(s.get("value") == target
                                  for s in _published(m, state_topic)))
        assert cabin.snapshot()["TempDesired"] == target

        # the climate's mode: "heat" starts the heater (its run state leaves 0)
        ha.client.publish(climate["mode_command_topic"], "heat", qos=1)
        run_state = climate["mode_state_topic"]
        ha.wait_for(lambda m: any(s.get("value") not in (0, None)
                                  for s in _published(m, run_state)))
        assert cabin.snapshot()["RunState"] != 0
        # "off" stops it: the last run state published is stopping, cooling or stopped
        stopped = {int(s) for s in RunState if not s.is_heating and s.value <= 8}
        ha.client.publish(climate["mode_command_topic"], "off", qos=1)
        ha.wait_for(lambda m: _published(m, run_state)[-1].get("value") in stopped)
        assert not RunState(cabin.snapshot()["RunState"]).is_heating
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            _, err = proc.communicate(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
            ha.close()
    assert proc.returncode == 0, err
    assert "controls of afterburner/cabin: " in err and "TempDesired" in err
    assert "controls of afterburner/garage: none (read-only" in err
    assert "command afterburner/cabin TempDesired: REFUSED: " in err
    assert f"command afterburner/cabin TempDesired: done (now {target})" in err


def test_a_command_for_a_read_only_heater_is_refused_on_the_error_topic(tmp_path, broker,
                                                                       two_heaters):
    """Writes not allowed: the heater's set point is announced read-only, and a command sent
    to its /set topic anyway is refused with the reason on the error topic; nothing changes."""
    from pyburnerkit.recorder import MqttSink
    from .util import Subscriber
    _, garage = two_heaters
    client = AfterburnerClient(f"ws://127.0.0.1:{garage.port}/")  # no allow_writes
    source = AfterburnerSource(client, device="garage", owns_client=True)
    ha = Subscriber(broker.port, "#")
    rec = Recorder([source], [MqttSink("127.0.0.1", broker.port, topic_root="e2e")],
                   spool_dir=str(tmp_path / "spool"), progress_interval=None)
    try:
        with rec:
            garage_id = "pyburnerkit_afterburner_garage_tempdesired"
            configs = ha.wait_for(lambda m: (lambda c: c if garage_id in c else None)(
                _configs(m)), timeout=60)
            assert "temperature_command_topic" not in configs[garage_id]
            before = garage.snapshot()["TempDesired"]
            ha.client.publish("e2e/afterburner/garage/TempDesired/set", "30", qos=1)
            [error] = ha.wait_for(lambda m: _published(m, "e2e/afterburner/garage/error")
                                  or None)
            assert "writes are not allowed" in error["error"]
            assert garage.snapshot()["TempDesired"] == before
    finally:
        ha.close()
