"""The shared Modbus TCP room on its own: the link against the server, over a real socket,
with a tiny register space that belongs to no family (a made-up meter at addresses 100-109)."""

from __future__ import annotations

import socket
import struct
import subprocess
import sys
import threading
from typing import Iterator, List

import pytest

from pyburnerkit._core.wire import WireLog
from pyburnerkit.errors import (BackendUnavailableError, ConfigurationError,
                                ConnectionLostError, DeviceConnectionError, DeviceError,
                                DeviceTimeoutError, ProtocolError)
from pyburnerkit.transports.modbus import ModbusLink, ModbusLinkDown, reply_problem
from pyburnerkit.transports.modbus_sim import (ILLEGAL_ADDRESS, ILLEGAL_VALUE,
                                               HoldingRegisters, ModbusSimServer)

from ..helpers import wait_until

METER = {100 + i: 1000 + i for i in range(10)}  # 100-109; 108 is a reset command


def _space() -> HoldingRegisters:
    return HoldingRegisters(METER, max_registers=8, writable=range(104, 110), write_only=[108])


@pytest.fixture
def server() -> Iterator[ModbusSimServer]:
    made = ModbusSimServer(_space(), name="meter", extra="meter", unit_ids=(7,), seed=3)
    made.start()
    try:
        yield made
    finally:
        made.close()


@pytest.fixture
def links() -> Iterator[List[ModbusLink]]:
    made: List[ModbusLink] = []
    try:
        yield made
    finally:
        for link in made:
            link.close()


def _link(links: List[ModbusLink], port: int, **options) -> ModbusLink:
    options.setdefault("unit_id", 7)
    link = ModbusLink("127.0.0.1", port, wire=WireLog("meter"), extra="meter", device="meter",
                      endpoint=f"127.0.0.1:{port}", peer="the meter", **options)
    links.append(link)
    return link


def test_reads_and_writes_holding_registers(server, links):
    link = _link(links, server.port)
    assert link.read(100, 4, 2.0) == [1000, 1001, 1002, 1003]
    link.write(104, [1, 2, 0xFFFF], 2.0)
    assert link.read(103, 4, 2.0) == [1003, 1, 2, 0xFFFF]
    assert server.registers[106] == 0xFFFF
    assert server.received == [("read", 100, 4), ("write", 104, [1, 2, 0xFFFF]),
                               ("read", 103, 4)]
    assert server.writes_received() == 1
    assert f"pyburnerkit-sim-meter-{server.port}" in [t.name for t in threading.enumerate()]


def test_write_only_registers_take_commands_but_read_back_unchanged(server, links):
    link = _link(links, server.port)
    link.write(108, [1], 2.0)
    assert link.read(108, 1, 2.0) == [1008]
    assert server.space.commands == [(108, (1,))]


def test_modbus_exceptions_are_device_errors_and_keep_the_link(server, links):
    link = _link(links, server.port)
    with pytest.raises(DeviceError, match=r"the meter answered Modbus exception 2") as info:
        link.read(108, 4, 2.0)  # 110 and 111 lie outside the map
    assert info.value.code == ILLEGAL_ADDRESS
    with pytest.raises(DeviceError) as info:
        link.read(100, 9, 2.0)  # more than the space's 8 per request
    assert info.value.code == ILLEGAL_VALUE
    with pytest.raises(DeviceError) as info:
        link.write(100, [5], 2.0)  # read-only
    assert info.value.code == ILLEGAL_ADDRESS and server.registers[100] == 1000
    server.reply_error(4, count=1)
    with pytest.raises(DeviceError, match="server device failure"):
        link.read(100, 1, 2.0)
    assert link.read(100, 1, 2.0) == [1000]  # the same connection answers on


def test_a_silent_server_is_a_timeout(server, links):
    link = _link(links, server.port)
    link.open(2.0)
    server.silence()
    with pytest.raises(ModbusLinkDown) as info:
        link.read(100, 1, 0.3)
    assert isinstance(info.value.error, DeviceTimeoutError)
    assert "no answer within 0.3 s" in str(info.value.error)
    assert server.received == [("read", 100, 1)]  # sent once, never retried


def test_garbage_is_a_protocol_error_with_the_frames(server, links):
    link = _link(links, server.port)
    server.send_garbage(1)
    with pytest.raises(ModbusLinkDown) as info:
        link.read(100, 2, 1.0)
    error = info.value.error
    assert isinstance(error, ProtocolError) and "garbled reply from the meter" in str(error)
    assert error.frames  # the request and what came back, for a bug report
    link.close()  # what a session does after ModbusLinkDown; the next request re-opens
    assert link.read(100, 2, 2.0) == [1000, 1001]


def test_a_dropped_connection_is_link_down(server, links):
    link = _link(links, server.port)
    assert link.read(100, 1, 2.0) == [1000]
    server.disconnect()
    with pytest.raises(ModbusLinkDown) as info:
        link.read(100, 1, 2.0)
    assert isinstance(info.value.error, ConnectionLostError)
    link.close()
    assert link.read(101, 1, 2.0) == [1001]


def test_a_refused_connection_names_the_peer_and_the_hint(links):
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    link = _link(links, port, connect_hint="is Modbus enabled?")
    with pytest.raises(DeviceConnectionError, match=r"cannot connect to the meter at "
                                                    r"127\.0\.0\.1:\d+ \(is Modbus enabled\?\)"):
        link.open(1.0)
    with pytest.raises(ModbusLinkDown) as info:
        link.read(100, 1, 1.0)
    assert type(info.value.error) is DeviceConnectionError


def test_abort_wakes_a_blocked_read(server, links):
    link = _link(links, server.port)
    link.open(2.0)
    server.silence()
    failed: List[BaseException] = []

    def read() -> None:
        try:
            link.read(100, 1, 30.0)
        except BaseException as exc:  # noqa: B902 (handed to the test thread)
            failed.append(exc)

    reader = threading.Thread(target=read)
    reader.start()
    wait_until(lambda: server.received, 5.0, "the request to arrive")  # the request is on the wire: read blocks
    link.abort()
    reader.join(10.0)  # far below the read's own 30 s: only the abort can end it
    assert not reader.is_alive()
    assert isinstance(failed[0], ModbusLinkDown)
    assert isinstance(failed[0].error, (ConnectionLostError, DeviceTimeoutError))


@pytest.mark.parametrize("make,match", [
    (lambda: ModbusLink("127.0.0.1", 0, unit_id=0, wire=WireLog("x"), extra="meter",
                        device="meter", endpoint="e"), r"port=0 is out of range: the limit is 1\.\.65535"),
    (lambda: ModbusLink("127.0.0.1", 502, unit_id=256, wire=WireLog("x"), extra="meter",
                        device="meter", endpoint="e"), r"unit_id=256 is out of range.*0\.\.255"),
    (lambda: HoldingRegisters({0: 1}, max_registers=126), r"max_registers=126.*1\.\.125"),
    (lambda: HoldingRegisters({0: 1}, max_registers=2.5), "max_registers must be a whole number"),
    (lambda: ModbusSimServer(_space(), extra="meter", unit_ids=(7, 300)), r"unit_id=300"),
])
def test_bad_arguments_are_refused_before_anything_opens(make, match):
    with pytest.raises(ConfigurationError, match=match):
        make()


@pytest.mark.parametrize("inject,match", [
    (lambda sim: sim.delay_responses(-1), r"seconds=-1 s is out of range: the limit is 0\.\.3600 s"),
    (lambda sim: sim.send_garbage(-1), "count=-1 is out of range"),
    (lambda sim: sim.send_garbage(1.5), "count must be a whole number"),
    (lambda sim: sim.refuse_connections("2"), "count must be a number"),
    (lambda sim: sim.reply_error(0), r"code=0 is out of range: the limit is 1\.\.255"),
    (lambda sim: sim.reply_error(4, count=0), "count=0 is out of range"),
])
def test_bad_fault_injection_is_refused_and_changes_nothing(inject, match, server, links):
    with pytest.raises(ConfigurationError, match=match):
        inject(server)
    assert server.reply_delay == 0
    assert _link(links, server.port).read(100, 2, 2.0) == [1000, 1001]  # answered promptly


def test_reply_problem_judges_the_mbap_header():
    request = struct.pack(">HHHBBHH", 5, 0, 6, 7, 3, 100, 2)
    proper = struct.pack(">HHHBBB", 5, 0, 7, 7, 3, 4) + b"\x03\xe8\x03\xe9"
    assert reply_problem(request, proper) is None
    assert reply_problem(request, proper[:5]) is None  # could still become the reply
    assert "transaction id 6" in reply_problem(request, b"\x00\x06" + proper[2:])
    assert "protocol id 1" in reply_problem(request, proper[:2] + b"\x00\x01" + proper[4:])
    assert "unit id 8" in reply_problem(request, proper[:6] + b"\x08" + proper[7:])
    assert "function code 4" in reply_problem(request, proper[:7] + b"\x04" + proper[8:])
    assert reply_problem(request, struct.pack(">HHHBBB", 5, 0, 3, 7, 0x83, 2)) is None


def test_the_room_imports_no_pymodbus_and_names_the_extra_only_when_used():
    code = (
        "import sys\n"
        "sys.modules['pymodbus'] = None\n"  # what an install without it looks like
        "import pyburnerkit.transports, pyburnerkit.transports.modbus as m\n"
        "import pyburnerkit.transports.modbus_sim as s\n"
        "from pyburnerkit._core.wire import WireLog\n"
        "link = m.ModbusLink('127.0.0.1', 1, unit_id=0, wire=WireLog('x'), extra='meter',\n"
        "                    device='meter', endpoint='e')\n"
        "server = s.ModbusSimServer(s.HoldingRegisters({0: 1}), extra='meter')\n"
        "for use in (lambda: link.read(0, 1, 1.0), server.start):\n"
        "    try:\n"
        "        use()\n"
        "    except ImportError as exc:\n"
        "        print(type(exc).__name__, exc)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert len(lines) == 2, out.stdout
    for line in lines:
        assert line.startswith(BackendUnavailableError.__name__)
        assert 'pip install "pyburnerkit[meter]"' in line
