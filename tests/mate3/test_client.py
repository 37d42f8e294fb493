"""The client against the simulator over real Modbus TCP (pymodbus on both sides)."""

from __future__ import annotations

import json
import threading
import time

import pytest

from pyburnerkit import (ClientClosedError, ConfigurationError, ConnectionState,
                         DeviceConnectionError, DeviceError, DeviceTimeoutError, ProtocolError,
                         Reconnect, WriteNotAllowedError)
from pyburnerkit.mate3 import codec
from pyburnerkit.mate3.client import Mate3Client
from pyburnerkit.mate3.models import DeviceMovedError, EnumValue, SystemUpdated

from .conftest import eventually


SOC = codec.bundled_dump()[41144 + 27]  # fndcs[5].state_of_charge in the dump


def reads(sim, since=0):
    return [(a, c) for kind, a, c in sim.received[since:] if kind == "read"]


def test_connect_walks_then_full_read_needs_13_requests(sim, make_client):
    client = make_client(sim)
    walk = reads(sim)
    assert len(walk) == 20 and max(c for _, c in walk) <= 100
    covered = [a for address, count in walk for a in range(address, address + count)]
    assert sorted(covered) == sorted(sim.registers)  # each register once, none outside
    mark = len(sim.received)
    system = client.read_all()
    full = reads(sim, mark)
    assert len(full) == 13 and max(c for _, c in full) == 100
    assert client.stats["requests"] == 33
    # The system is what the codec decodes from the served registers.
    regs = sim.registers
    expected = codec.build_system(codec.layout_from_registers(regs), regs, 0.0)
    for (path, dev), (_, want) in zip(system.blocks(), expected.blocks()):
        assert {k: v.raw for k, v in dev.values.items()} == \
            {k: v.raw for k, v in want.values.items()}, path
    assert not client.stale and client.system is system


def test_targeted_read_fetches_only_fields_scale_factors_and_headers(sim, make_client):
    client = make_client(sim)
    mark = len(sim.received)
    got = client.read("charge_controllers[3].battery_voltage", "fndcs[5].state_of_charge")
    assert got["charge_controllers[3].battery_voltage"].value == 50.7
    assert got["fndcs[5].state_of_charge"].value == SOC
    asked = {a for address, count in reads(sim, mark) for a in range(address, address + count)}
    cc, fndc = 40908, 41144
    assert asked == {cc, cc + 1, cc + 2, cc + 3, cc + 8,  # header, voltage SF, battery_voltage
                     fndc, fndc + 1, fndc + 2, fndc + 27}  # header, state_of_charge (no SF)
    # The cache follows: a targeted read refreshes those fields only.
    assert client.system.get("fndcs[5].state_of_charge").value == SOC
    mark = len(sim.received)
    client.read("charge_controllers[3].battery_voltage", "fndcs[5].state_of_charge",
                verify=False)
    asked = {a for address, count in reads(sim, mark) for a in range(address, address + count)}
    assert asked == {cc + 3, cc + 8, fndc + 27}  # nothing but the fields and the scale factor


def test_targeted_read_sees_new_values(sim, make_client):
    client = make_client(sim)
    sim.set({"charge_controllers[4].battery_voltage": 52.3})
    assert client.read_value("charge_controllers[4].battery_voltage") == 52.3


def test_min_poll_interval_spaces_operations(sim, make_client):
    client = make_client(sim, min_poll_interval=0.4)
    start = time.monotonic()
    client.read("fndcs[5].state_of_charge")  # connect was the first poll
    client.read("fndcs[5].state_of_charge")
    assert time.monotonic() - start >= 0.75  # two more operations, each 0.4 s after the last


def test_modbus_exception_is_a_device_error_and_the_link_survives(sim, make_client):
    client = make_client(sim)
    sim.reply_error(4, count=1)
    with pytest.raises(DeviceError) as info:
        client.read_all()
    assert info.value.code == 4 and "exception 4" in str(info.value)
    assert client.read_all().mate3 is not None
    assert client.connection_state is ConnectionState.CONNECTED


def test_silence_is_a_timeout_then_the_client_recovers(sim, make_client):
    client = make_client(sim, request_timeout=0.3,
                         reconnect=Reconnect(min_delay=0.05, max_delay=0.2, jitter=0))
    sim.silence(True)
    with pytest.raises(DeviceTimeoutError):
        client.read_all(timeout=2)
    client.wait_for(lambda c: c.stale)
    sim.silence(False)
    client.wait_for(lambda c: c.connected and not c.stale, timeout=10)
    assert client.read_all().mate3.address == 40069


def test_drop_reconnects_and_rereads(sim, make_client):
    events = []
    client = make_client(sim, reconnect=Reconnect(min_delay=0.05, max_delay=0.2, jitter=0),
                         on_event=events.append)
    first = client.system.read_at
    sim.disconnect()
    client.wait_for(lambda c: c.system is not None and c.system.read_at > first and
                    c.connected, timeout=10)
    states = [e.state for e in events if hasattr(e, "state")]
    assert ConnectionState.RECONNECTING in states
    assert any(isinstance(e, SystemUpdated) for e in events)


def test_garbage_reply_fails_the_call_and_the_link_recovers(sim, make_client):
    # A garbled reply used to surface as DeviceTimeoutError (pymodbus drops the frame and
    # waits); it is a ProtocolError now, raised as soon as the bytes cannot be the reply.
    # The request timeout outlasts the call's: had the link waited for it, the call would
    # end in DeviceTimeoutError.
    client = make_client(sim, request_timeout=60.0,
                         reconnect=Reconnect(min_delay=0.05, max_delay=0.2, jitter=0))
    sim.send_garbage(1)
    with pytest.raises(ProtocolError, match="garbled reply") as info:
        client.read_all(timeout=30)
    assert info.value.frames  # the recent frames, for a bug report
    client.wait_for(lambda c: c.connected and not c.stale, timeout=10)
    assert client.read_value("fndcs[5].state_of_charge") == SOC


def test_refused_connections_with_retry_first(sim, make_client):
    sim.refuse_connections(2)
    client = make_client(sim, retry_first=True,
                         reconnect=Reconnect(min_delay=0.05, max_delay=0.1, jitter=0))
    assert client.system.mate3 is not None


def test_refused_connection_without_retry_is_a_connection_error(sim, make_client):
    sim.refuse_connections(1)
    with pytest.raises(DeviceConnectionError):
        make_client(sim, reconnect=None)


def test_single_client_mate3_refuses_a_second_client(make_sim, make_client):
    server = make_sim(single_client=True)
    make_client(server)
    with pytest.raises(DeviceConnectionError):
        make_client(server, reconnect=None, connect_timeout=3)


def test_idle_close_releases_and_reopens_the_connection(sim, make_client):
    client = make_client(sim, idle_close=0.1)
    eventually(lambda: sim.client_count == 0)
    assert client.connected  # the session stays up; the socket reopens on demand
    assert client.read_value("fndcs[5].state_of_charge") == SOC
    eventually(lambda: sim.client_count == 0)


def test_close_is_bounded_while_a_request_hangs(sim, make_client):
    client = make_client(sim, request_timeout=30)
    sim.silence(True)
    errors = []

    def call():
        try:
            client.read_all(timeout=30)
        except Exception as exc:
            errors.append(exc)

    caller = threading.Thread(target=call)
    caller.start()
    eventually(lambda: reads(sim) and len(sim.received) > 20)
    assert client.close(timeout=3)  # True: both threads stopped within the 3 s
    caller.join(10)  # a third of the call's own timeout: only close() can have ended it
    assert not caller.is_alive()
    assert errors and isinstance(errors[0], ClientClosedError)


def test_background_polling_delivers_updates(make_sim, make_client):
    noon = time.mktime((2026, 6, 21, 12, 0, 0, 0, 0, -1))
    server = make_sim(live=True, speed=60, live_tick=0.02, seed=3, clock=lambda: noon)
    client = make_client(server, poll_interval=0.05)
    watts = []
    with client.subscribe(lambda e: watts.append(e.system.get("charge_controllers[3].watts")
                                                 .value), SystemUpdated):
        # Around noon the array delivers, and the value moves from poll to poll.
        client.wait_for(lambda c: len({w for w in watts if w > 1000}) >= 2, timeout=10)
    assert client.system.get("charge_controllers[3].watts").value > 1000


def test_unknown_block_in_the_served_map(make_sim, make_client):
    regs = codec.build_image([(120, None, 14), (64111, 3, None), (64112, 3, None)])
    server = make_sim(registers=regs)
    client = make_client(server)
    assert set(client.system.charge_controllers) == {3}
    assert any("unknown block 120" in w for w in client.warnings)


# ------------------------------------------------------------------------------ writes
def test_writes_need_allow_writes(sim, make_client):
    client = make_client(sim)
    mark = len(sim.received)
    with pytest.raises(WriteNotAllowedError, match="allow_writes=True"):
        client.write("charge_controllers[3].config.absorb_volts", 57.6)
    assert sim.received[mark:] == []


def test_bad_writes_are_refused_before_the_wire(sim, make_client):
    client = make_client(sim, allow_writes=True)
    mark = len(sim.received)
    with pytest.raises(ConfigurationError, match="read-only"):
        client.write("charge_controllers[3].battery_voltage", 50)
    with pytest.raises(ConfigurationError, match="out of range.*Volts"):
        client.write("charge_controllers[3].config.absorb_volts", 7000)
    with pytest.raises(ConfigurationError, match="not one of its values"):
        client.write("mate3.config.set_inverter_mode", "sideways")
    with pytest.raises(ConfigurationError, match="no field"):
        client.write("charge_controllers[3].config.nope", 1)
    with pytest.raises(ConfigurationError, match="no device"):
        client.write("charge_controllers[9].config.absorb_volts", 57.6)
    assert sim.received[mark:] == []


def test_read_write_field_is_scaled_written_and_read_back(sim, make_client):
    client = make_client(sim, allow_writes=True)
    mark = len(sim.received)
    back = client.write("charge_controllers[3].config.absorb_volts", 57.6)
    assert back.value == 57.6 and back.raw == 576
    writes = [(a, v) for kind, a, v in sim.received[mark:] if kind == "write"]
    assert writes == [(40936 + 10, [576])]
    assert sim.registers[40946] == 576
    assert client.system.get("charge_controllers[3].config.absorb_volts").value == 57.6
    name = client.write("mate3.system_name", "cabin")
    assert name.value == "cabin"


def test_write_uses_a_fresh_scale_factor(sim, make_client):
    client = make_client(sim, allow_writes=True)
    cfg = 40936
    sim.set(r40939=0xFFFE)  # the block's voltage SF changes from -1 to -2 behind our back
    assert codec.block_defs()[64112].fields["absorb_volts"].scale_factor_field
    back = client.write("charge_controllers[3].config.absorb_volts", 57.6)
    assert back.raw == 5760 and back.scale_factor == -2 and back.value == 57.6
    assert sim.registers[cfg + 10] == 5760


def test_write_only_command_has_no_read_back_failure(sim, make_client):
    client = make_client(sim, allow_writes=True)
    before = sim.registers[40491 + 5]
    assert client.write("mate3.config.bulk_charge_enable_disable", "Start Bulk") is None
    assert sim.commands == [(40496, (1,))]
    assert sim.registers[40496] == before  # it reads back as the device shows it


def test_write_refused_after_a_port_swap(sim, make_client):
    client = make_client(sim, allow_writes=True)
    sim.swap_ports(3, 4)
    mark = len(sim.received)
    with pytest.raises(DeviceMovedError, match="HUB port 4.*HUB port 3"):
        client.write("charge_controllers[3].config.absorb_volts", 57.6)
    assert not [r for r in sim.received[mark:] if r[0] == "write"]
    before = client.stats["requests"]
    system = client.read_all()  # re-reading finds the devices on their new ports
    assert system.charge_controllers[3].address == 41026
    assert client.stats["requests"] - before == 13  # re-derived from the same 13 requests
    back = client.write("charge_controllers[3].config.absorb_volts", 57.6)
    assert back.address == 41054 + 10 and sim.registers[41064] == 576


def test_targeted_read_after_a_swap_answers_by_port(sim, make_client):
    client = make_client(sim)
    sim.set({"charge_controllers[4].battery_voltage": 49.9})
    sim.swap_ports(3, 4)
    got = client.read("charge_controllers[3].battery_voltage")
    assert got["charge_controllers[3].battery_voltage"].value == 49.9
    assert client.system.charge_controllers[3].address == 41026


def test_device_refusing_a_write_is_a_device_error(sim, make_client):
    client = make_client(sim, allow_writes=True)
    sim.reply_error(3, count=2)  # header read, then the write itself
    with pytest.raises(DeviceError) as info:
        client.write("charge_controllers[3].config.absorb_volts", 57.6)
    assert info.value.code == 3


# ------------------------------------------------------------------------------ replay, misc
def test_replay_client_reads_a_dump_without_network(tmp_path, make_client):
    path = tmp_path / "modbus.json"
    path.write_text(codec.dump_json(codec.bundled_dump()))
    client = make_client(f"replay:{path}", allow_writes=True)
    system = client.system
    assert system.fndcs[5].state_of_charge.value == SOC
    assert client.read_all().charge_controllers[4].port == 4
    assert client.write("charge_controllers[4].config.absorb_volts", 57.2).value == 57.2
    assert json.loads(path.read_text())["40908"] == 64111  # the file itself is untouched
    assert client.read_dump()[41064] == 572


def test_sim_url_client_owns_its_simulator(make_client):
    client = make_client("sim://mate3")
    assert client.simulator is not None and client.system.mate3 is not None
    assert isinstance(client.system.mate3.enable_dhcp.value, EnumValue)


@pytest.mark.parametrize("text,expected", [
    ("10.0.0.5", ("tcp", "10.0.0.5", 502, "10.0.0.5:502")),
    ("  10.0.0.5:1502 ", ("tcp", "10.0.0.5", 1502, "10.0.0.5:1502")),
    ("modbus://mate:503/", ("tcp", "mate", 503, "mate:503")),
    ("MODBUS://mate", ("tcp", "mate", 502, "mate:502")),
    ("[::1]:502", ("tcp", "::1", 502, "[::1]:502")),
    ("::1", ("tcp", "::1", 502, "[::1]:502")),
    ("fe80::20c:29ff:fe00:1", ("tcp", "fe80::20c:29ff:fe00:1", 502, "[fe80::20c:29ff:fe00:1]:502")),
    ("[fe80::1]", ("tcp", "fe80::1", 502, "[fe80::1]:502")),
    ("modbus://[::1]:1502", ("tcp", "::1", 1502, "[::1]:1502")),
    ("sim://mate3", ("sim", "mate3", 0, "sim")),
    ("sim://", ("sim", "", 0, "sim")),
    ("sim://mate3?seed=3&live=0", ("sim", "mate3", 0, "sim")),
])
def test_endpoint_forms(text, expected, make_client):
    # the shared parser's forms; the constructor does no I/O, so nothing needs to listen
    client = make_client(text, connect=False)
    assert (client.kind, client.host, client.port, client.endpoint) == expected
    assert client.connection_state is ConnectionState.IDLE


@pytest.mark.parametrize("text,port,expected", [
    ("10.0.0.5", 1502, 1502),            # the endpoint names no port: port= supplies it
    ("modbus://mate", 1502, 1502),
    ("10.0.0.5:1502", 1502, 1502),       # the same port twice is no contradiction
    ("10.0.0.5", None, 502),
])
def test_port_keyword_when_the_endpoint_names_none(text, port, expected, make_client):
    client = make_client(text, port=port, connect=False)
    assert client.port == expected and client.endpoint.endswith(f":{expected}")


def test_port_keyword_reaches_the_device(sim, make_client):
    client = make_client("127.0.0.1", port=sim.port)
    assert client.read_value("fndcs[5].state_of_charge") == SOC
    assert client.endpoint == f"127.0.0.1:{sim.port}"


@pytest.mark.parametrize("text,options,match", [
    ("", {}, "expected an endpoint for the Mate3"),
    (None, {}, "expected an endpoint for the Mate3"),
    ("ws://10.0.0.5", {}, r"unsupported scheme 'ws'.*replay:FILE"),
    ("10.0.0.5:99999", {}, "port"),
    ("10.0.0.5:abc", {}, "10.0.0.5:abc"),
    ("modbus://:502", {}, "names no host"),
    ("sim://victron", {}, "sim://mate3, not sim://victron"),
    ("sim://mate3?bogus=1", {}, "unknown sim://mate3 option 'bogus'"),
    ("sim://mate3?live=maybe", {}, "live='maybe'"),
    ("replay:", {}, "names no dump file"),
    ("10.0.0.5:1502", {"port": 502}, "names port 1502 but port=502"),
    ("sim://mate3", {"port": 502}, "applies to a Mate3 on the network"),
    ("10.0.0.5", {"port": 0}, r"port=0 is out of range: the limit is 1\.\.65535"),
    ("10.0.0.5", {"port": True}, "port must be a number"),
    ("10.0.0.5", {"sim_options": {"seed": 1}}, "sim_options apply to a sim:// endpoint"),
])
def test_bad_endpoints_are_configuration_errors(text, options, match):
    with pytest.raises(ConfigurationError, match=match):
        Mate3Client(text, **options)


def test_replay_endpoint_needs_a_readable_dump(tmp_path):
    with pytest.raises(ConfigurationError, match="missing.json"):
        Mate3Client(f"replay:{tmp_path / 'missing.json'}")


def test_sim_endpoint_options_reach_the_simulator(make_client):
    client = make_client("sim://mate3?description=cc:3,fndc:5&seed=4&single_client=1")
    system = client.system
    assert sorted(system.charge_controllers) == [3] and sorted(system.fndcs) == [5]
    assert client.simulator.single_client and not system.single_phase_radian_inverters


def test_sim_options_keyword_wins_over_the_query(make_client):
    client = make_client("sim://mate3?description=cc:3", sim_options={"description": "cc:6"})
    assert sorted(client.system.charge_controllers) == [6]


@pytest.mark.parametrize("kwargs,match", [({"min_poll_interval": -1}, "min_poll_interval"),
                                          ({"max_registers": 101}, "max_registers"),
                                          ({"unit_id": 300}, "unit_id")])
def test_bad_options_are_configuration_errors(kwargs, match):
    with pytest.raises(ConfigurationError, match=match):
        Mate3Client("10.0.0.5", **kwargs)
    with pytest.raises(ConfigurationError, match="port"):
        Mate3Client("10.0.0.5:99999")


def test_missing_pymodbus_names_the_extra(monkeypatch):
    import sys
    from pyburnerkit import BackendUnavailableError
    monkeypatch.setitem(sys.modules, "pymodbus", None)  # what an install without it looks like
    with pytest.raises(BackendUnavailableError, match=r'pip install "pyburnerkit\[mate3\]"'):
        Mate3Client("10.0.0.5")


def test_password_writes_stay_out_of_the_wire_log(sim, make_client):
    frames = []
    client = make_client(sim, allow_writes=True,
                         trace=lambda direction, frame: frames.append(frame))
    assert client.write("mate3.write_password", "hunter22") is None
    sent = [f for f in frames if isinstance(f, (bytes, bytearray))]
    assert sent and not any(b"hunter22" in f for f in sent)
    assert any(b"not logged" in f for f in sent)
    assert sim.commands[-1][1][:4] == tuple(int.from_bytes(b"hunter22"[i:i + 2], "big")
                                            for i in range(0, 8, 2))


def test_operation_waiting_for_its_turn_survives_a_drop(sim, make_client):
    client = make_client(sim, min_poll_interval=1.0,
                         reconnect=Reconnect(min_delay=0.05, max_delay=0.1, jitter=0))
    results = []
    caller = threading.Thread(target=lambda: results.append(
        client.read("fndcs[5].state_of_charge", timeout=15)))
    caller.start()
    try:
        eventually(lambda: client._session._queue)  # paced: not on the wire yet
        sim.disconnect()
    finally:
        caller.join(15)
    assert results and results[0]["fndcs[5].state_of_charge"].value == SOC


def test_no_sunspec_marker_is_a_clear_connection_error(sim, make_client):
    sim.set(r40000=0)
    with pytest.raises(DeviceConnectionError, match="SunSpec marker"):
        make_client(sim, reconnect=None)


def test_slow_replies_time_out_and_prompt_ones_work_again(sim, make_client):
    client = make_client(sim, reconnect=Reconnect(min_delay=0.05, max_delay=0.1, jitter=0))
    sim.delay_responses(60)  # an answer would come long after the pytest timeout
    with pytest.raises(DeviceTimeoutError):
        client.read("fndcs[5].state_of_charge", timeout=0.3)
    sim.delay_responses(0)
    client.wait_for(lambda c: c.connected and not c.stale, timeout=10)
    assert client.read_value("fndcs[5].state_of_charge") == SOC


def test_handled_faults_leave_a_bare_stderr_quiet():
    # A library user with no logging set up: pymodbus used to print its own ERROR lines (with
    # a hex dump of the simulator's last frames) to stderr for faults the client already
    # reports as exceptions, and the simulator printed one when a client left mid-request
    # (seen in `pyburnerkit record --demo`). Only the script's own output may appear.
    import os
    import subprocess
    import sys
    script = r"""
import socket, struct
from pyburnerkit import DeviceTimeoutError, ProtocolError
from pyburnerkit.mate3.client import Mate3Client
from pyburnerkit.mate3.sim import Mate3Sim
with Mate3Sim().start() as sim:
    with Mate3Client(sim.endpoint, min_poll_interval=0, request_timeout=0.3, timeout=10) as c:
        for fault in (sim.silence, sim.send_garbage):
            fault()
            try:
                c.read_all()
            except (DeviceTimeoutError, ProtocolError) as exc:
                print(type(exc).__name__)
            sim.silence(False)
            c.read_all()
        for tid in range(10):  # clients hanging up mid-request
            with socket.create_connection((sim.host, sim.port)) as s:
                s.sendall(struct.pack(">HHHBBHH", tid, 0, 6, 0, 3, 40000, 10))
        c.read_all()
    bad = Mate3Client("127.0.0.1", port=sim.port, connect_timeout=2)
sim.close()
try:
    bad.connect()
except Exception as exc:
    print(type(exc).__name__)
finally:
    bad.close()
"""
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=120, cwd=root, env=dict(os.environ, PYTHONPATH=root))
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["DeviceTimeoutError", "ProtocolError",
                                   "DeviceConnectionError"]
    assert done.stderr == ""


def test_passwords_stay_out_of_error_messages(sim, make_client):
    reader = make_client(sim)
    with pytest.raises(WriteNotAllowedError) as refused:
        reader.write("mate3.smtp_email_password", "s3cretpw")
    assert "s3cretpw" not in str(refused.value) and "<hidden>" in str(refused.value)
    writer = make_client(sim, allow_writes=True)
    mark = len(sim.received)
    with pytest.raises(ConfigurationError, match="limit is 16 characters") as too_long:
        writer.write("mate3.write_password", "s3cretpw-but-far-too-long")
    assert "s3cretpw" not in str(too_long.value)
    with pytest.raises(ConfigurationError, match="ASCII") as not_ascii:
        writer.write("mate3.ftp_password", "pässwörd")
    assert "pässwörd" not in str(not_ascii.value)
    assert sim.received[mark:] == []
    # Ordinary text is still shown, so a user sees what was wrong with it.
    with pytest.raises(ConfigurationError, match="system_name='x{61}' is 61 characters"):
        writer.write("mate3.system_name", "x" * 61)


def test_a_scale_factor_beyond_a_short_block_is_never_read_or_used(make_sim, make_client):
    # Older firmware may report a shorter 64110: set_time_zone (offset 272) is inside a block of
    # length 300, its scale factor (offset 420) is not. The register there belongs to the next
    # block and must never be read or used as a scale factor.
    regs = codec.build_image([(64110, None, 300), (64120, None, None), (64111, 3, None),
                              (64112, 3, None)], with_mate3=False)
    server = make_sim(registers=regs)
    client = make_client(server, allow_writes=True)
    mate3 = client.system.mate3
    assert mate3.length == 300 and "time_zone_scale_factor" not in mate3.values
    block_end = mate3.address + 301
    mark = len(server.received)
    fv = client.read("mate3.set_time_zone")["mate3.set_time_zone"]
    assert fv.value is None and "not usable" in fv.note
    assert all(address + count - 1 <= block_end
               for kind, address, count in server.received[mark:] if kind == "read")
    with pytest.raises(ConfigurationError, match="time_zone_scale_factor"):
        client.write("mate3.set_time_zone", 1)
    assert server.writes_received() == 0


def test_read_dump_is_one_full_read_and_follows_changes(sim, make_client):
    client = make_client(sim)
    before = client.stats["requests"]
    assert client.read_dump() == sim.registers
    assert client.stats["requests"] - before == 13
    sim.swap_ports(3, 4)
    sim.set({"fndcs[5].battery_voltage": 49.9})
    regs = client.read_dump()
    assert regs == sim.registers and regs[40908 + 2] == 4
    assert min(regs) == 40000 and max(regs) == max(sim.registers)  # marker to end marker


def test_targeted_read_of_a_device_that_left_its_port_is_a_device_error(sim, make_client):
    # The controller on port 3 is re-plugged into the free port 7: the path names nothing now.
    # This used to raise KeyError on the I/O thread, which killed the client.
    client = make_client(sim, allow_writes=True)
    sim.swap_ports(3, 7)
    with pytest.raises(DeviceMovedError, match=r"charge_controllers\[3\].watts is no longer"):
        client.read("charge_controllers[3].watts")
    assert client.connection_state is ConnectionState.CONNECTED
    assert sorted(client.system.charge_controllers) == [4, 7]  # re-read when it noticed
    assert client.read_value("charge_controllers[7].watts") is not None
    with pytest.raises(ConfigurationError, match="no device"):
        client.write("charge_controllers[3].config.absorb_volts", 57.6)


def test_pymodbus_gets_one_null_handler_however_many_clients(sim, make_client, capsys):
    import logging
    from pyburnerkit.cli.main import main
    for _ in range(3):
        make_client(sim).close()
        assert main(["mate3", "read", "--host", sim.endpoint, "--min-poll-interval", "0",
                     "--field", "fndcs[5].state_of_charge"]) == 0
    handlers = logging.getLogger("pymodbus").handlers
    assert sum(isinstance(h, logging.NullHandler) for h in handlers) == 1
    assert capsys.readouterr().err == ""
