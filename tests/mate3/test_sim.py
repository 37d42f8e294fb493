"""The simulated Mate3s, probed with a bare pymodbus client over real Modbus TCP."""

from __future__ import annotations

import gc
import logging
import socket
import struct
import threading
import time

import pytest
from pymodbus.client import ModbusTcpClient

from pyburnerkit import ConfigurationError
from pyburnerkit.mate3 import codec
from pyburnerkit.mate3.client import Mate3Client
from pyburnerkit.mate3.sim import Mate3Sim

from .conftest import eventually


@pytest.fixture
def raw(sim):
    client = ModbusTcpClient("127.0.0.1", port=sim.port, timeout=2, retries=0)
    assert client.connect()
    try:
        yield client
    finally:
        client.close()


def read(client, address, count):
    return client.read_holding_registers(address, count=count, device_id=0)


def test_serves_the_dump_exactly_as_recorded(sim, raw):
    dump = codec.bundled_dump()
    got = {}
    for address, count in codec.coalesce(sorted(dump)):
        response = read(raw, address, count)
        assert not response.isError()
        got.update({address + i: v for i, v in enumerate(response.registers)})
    assert got == dump


def test_exception_replies_outside_the_map_and_above_the_limit(sim, raw):
    assert read(raw, 39999, 2).exception_code == 2
    assert read(raw, 41270, 10).exception_code == 2  # runs past the end marker
    assert read(raw, 40000, 101).exception_code == 3
    assert len(read(raw, 40000, 100).registers) == 100


def test_write_only_registers_read_back_as_the_device_shows_them(sim, raw):
    password = 40069 + 13  # 64110 write_password
    before = read(raw, password, 8).registers
    assert not raw.write_registers(password, [0x4142] * 8, device_id=0).isError()
    assert read(raw, password, 8).registers == before
    assert sim.commands == [(password, (0x4142,) * 8)]
    # FC6 too, as chinezbrun's scripts write commands
    assert not raw.write_register(40491 + 7, 2, device_id=0).isError()
    assert sim.commands[-1] == (40498, (2,))


def test_read_write_registers_store_and_read_only_ones_refuse(sim, raw):
    absorb = 40936 + 10
    assert not raw.write_registers(absorb, [570], device_id=0).isError()
    assert read(raw, absorb, 1).registers == [570]
    assert raw.write_registers(40908 + 8, [1], device_id=0).exception_code == 2  # battery V
    assert raw.write_registers(40908, [1], device_id=0).exception_code == 2  # a DID
    assert sim.registers[40908] == 64111


def test_fault_injection_error_and_set(sim, raw):
    sim.reply_error(6, count=1)
    assert read(raw, 40000, 2).exception_code == 6
    assert read(raw, 40000, 2).registers == list(codec.SUNS_MARKER)
    sim.set({"fndcs[5].battery_voltage": 51.2}, r40000=1)
    assert read(raw, 41144 + 11, 1).registers == [512]
    assert read(raw, 40000, 1).registers == [1]
    with pytest.raises(ConfigurationError, match="outside"):
        sim.set(r39000=1)
    assert ("read", 40000, 1) in sim.received


def test_generated_system_and_dump_file(make_sim, tmp_path):
    server = make_sim(description="fx:1,gs-split:2,cc:3,unknown:120:4")
    layout = codec.layout_from_registers(server.registers)
    assert [(b.did, b.port) for b in layout.blocks[3:]] == [
        (64113, 1), (64114, 1), (64115, 2), (64116, 2), (64111, 3), (64112, 3), (120, None)]
    path = tmp_path / "d.json"
    path.write_text(codec.dump_json(server.registers))
    assert make_sim(dump=str(path)).registers == server.registers
    with pytest.raises(ConfigurationError, match="at most one"):
        Mate3Sim(dump=str(path), description="cc:3")
    with pytest.raises(ConfigurationError, match="not a SunSpec map"):
        Mate3Sim(registers={40000: 1})


def test_live_battery_responds_to_charge(make_sim):
    noon = time.mktime((2026, 6, 21, 12, 0, 0, 0, 0, -1))
    server = make_sim(live=True, speed=3600, live_tick=0.02, clock=lambda: noon, seed=2)
    soc = server.registers[41144 + 27]
    # Around noon two controllers deliver more than the load takes: the battery charges.
    eventually(lambda: server.registers[41144 + 27] > soc)
    assert server.registers[40908 + 13] > 1000  # watts of the first charge controller


def test_close_is_quick_idempotent_and_the_port_can_be_reused():
    server = Mate3Sim().start()
    port = server.port
    server.close()
    server.close()
    assert f"pyburnerkit-sim-mate3-{port}" not in [t.name for t in threading.enumerate()]
    again = Mate3Sim().start(port=port)
    try:
        assert again.port == port
    finally:
        again.close()


def test_refuse_and_single_client(make_sim):
    server = make_sim(single_client=True)
    first = ModbusTcpClient("127.0.0.1", port=server.port, timeout=1, retries=0)
    second = ModbusTcpClient("127.0.0.1", port=server.port, timeout=1, retries=0)
    try:
        assert first.connect() and not read(first, 40000, 2).isError()
        second.connect()
        with pytest.raises(Exception):
            read(second, 40000, 2)
        assert server.client_count == 1
        assert not read(first, 40000, 2).isError()
    finally:
        first.close()
        second.close()


def test_port_in_use_is_an_os_error(sim, recwarn):
    for _ in range(5):
        other = Mate3Sim()
        with pytest.raises(OSError, match="could not listen"):
            other.start(port=sim.port)
        other.close()
        assert other._thread is not None and not other._thread.is_alive()
    # close() after a failed start used to schedule a shutdown on a loop that was closing
    # ("coroutine 'Mate3Sim._shutdown' was never awaited").
    gc.collect()
    assert not [w for w in recwarn.list if "never awaited" in str(w.message)]


def _request(tid: int, address: int, count: int) -> bytes:
    return struct.pack(">HHHBBHH", tid, 0, 6, 0, 3, address, count)


@pytest.mark.parametrize("fault", ["none", "reply_error", "garbage"])
def test_a_client_hanging_up_mid_request_is_not_an_error(sim, caplog, fault):
    # `pyburnerkit record --demo` stopped its Mate3 client while a read was in flight, and
    # pymodbus then logged "Cancel send, because not connected!" with a frame dump on
    # stderr. A device just has nobody to answer: the simulator must stay quiet and serve on.
    caplog.set_level(logging.WARNING, logger="pymodbus")
    if fault == "reply_error":
        sim.reply_error(4)
    elif fault == "garbage":
        sim.send_garbage(1000)
    for tid in range(25):
        with socket.create_connection((sim.host, sim.port), timeout=5) as sock:
            sock.sendall(_request(tid, 40000, 10))  # and hang up at once (FIN)
    sim.reply_error(None)
    sim.send_garbage(0)
    assert eventually(lambda: len([r for r in sim.received if r[0] == "read"]) >= 25)
    # A fresh request is answered after the hung-up ones were handled (one server loop).
    with socket.create_connection((sim.host, sim.port), timeout=5) as sock:
        sock.sendall(_request(99, 40000, 2))
        reply = b""
        while len(reply) < 13:
            chunk = sock.recv(64)
            assert chunk, "the simulator closed instead of answering"
            reply += chunk
    assert struct.unpack(">HHHBBB", reply[:9])[0] == 99 and reply[9:13] == b"SunS"
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors == []


def _decoded(server):
    regs = server.registers  # one snapshot
    return codec.build_system(codec.layout_from_registers(regs), regs, 0.0)


def test_live_battery_drains_under_load_at_night(make_sim):
    evening = time.mktime((2026, 6, 21, 19, 0, 0, 0, 0, -1))  # 11 h of night ahead
    server = make_sim(live=True, speed=3600, live_tick=0.02, clock=lambda: evening, seed=3)
    soc = _decoded(server).fndcs[5].state_of_charge.value
    # No sun: the controllers deliver nothing and the 600 W load drains the battery.
    eventually(lambda: _decoded(server).fndcs[5].state_of_charge.value <= soc - 3)
    system = _decoded(server)
    assert system.charge_controllers[3].watts.value == 0
    assert system.charge_controllers[4].watts.value == 0
    # The battery voltage follows the state of charge and sags under the load (0.3 V).
    now = system.fndcs[5].state_of_charge.value
    volts = system.fndcs[5].battery_voltage.value
    assert abs(volts - (48.0 + 6.0 * now / 100.0 - 0.3)) <= 0.1
    assert system.fndcs[5].battery_current.value < 0


def test_without_live_the_dump_stays_exactly_as_recorded(make_sim, make_client):
    server = make_sim(seed=4)
    client = make_client(server)
    first = client.read_all()
    again = client.read_all()
    assert server.registers == codec.bundled_dump()
    assert [fv.raw for _, d in again.blocks() for fv in d.values.values()] == \
        [fv.raw for _, d in first.blocks() for fv in d.values.values()]


def test_the_request_log_is_bounded_and_writes_are_still_counted(sim):
    # A simulator serving for days must not grow without end; writes_received() keeps counting.
    sim.RECEIVED_LIMIT = 10
    with Mate3Client(sim.endpoint, min_poll_interval=0, allow_writes=True) as client:
        client.write("charge_controllers[3].config.absorb_volts", 57.6)
        for _ in range(3):
            client.read_all()
    assert len(sim.received) <= 10
    assert sim.writes_received() == 1
