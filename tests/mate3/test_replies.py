"""How the client handles replies: garbled ones are ProtocolError, silence is a timeout, and
no write is ever sent twice (neither by pymodbus' own retries nor by the client).

Regression tests for the hardening issue: garbled replies used to surface as
DeviceTimeoutError, after the full request timeout.
"""

from __future__ import annotations

import struct
from typing import Iterator

import pytest

from pyburnerkit import (ConnectionState, ConnectionStateChanged, DeviceError,
                         DeviceTimeoutError, ProtocolError, Reconnect)
from pyburnerkit.mate3 import codec
from pyburnerkit.mate3.client import Mate3Client

from ..helpers import Recorder
from .hostile import HostilePeer, on_writes

FAST = Reconnect(min_delay=0.05, max_delay=0.2, jitter=0)
ABSORB = "charge_controllers[3].config.absorb_volts"
SOC = "fndcs[5].state_of_charge"


@pytest.fixture
def peer() -> Iterator[HostilePeer]:
    server = HostilePeer(codec.bundled_dump())
    try:
        yield server
    finally:
        server.close()


def _connect(make_client, target, **options):
    options.setdefault("request_timeout", 0.5)
    options.setdefault("reconnect", FAST)
    return make_client(target, **options)


def _recovers(client: Mate3Client) -> None:
    client.wait_for(lambda c: c.connected and not c.stale, timeout=10)
    assert client.read_value(SOC) == 96  # as in the dump


# ------------------------------------------------------------------------------ writes
def test_a_timed_out_write_is_sent_exactly_once(sim, make_client):
    # The device holds its acknowledgement past the request timeout: the call fails, the link
    # is re-opened, and neither pymodbus (retries=0) nor the client sends the write again.
    client = _connect(make_client, sim, allow_writes=True, request_timeout=0.3)
    sim.delay_responses(1.0, writes_only=True)
    with pytest.raises(DeviceTimeoutError):
        client.write(ABSORB, 57.6)
    sim.delay_responses(0)
    client.wait_for(lambda c: c.connected and not c.stale, timeout=10)
    client.read_all()  # a full round after the reconnect: anything queued has gone out
    assert sim.writes_received() == 1


def test_pymodbus_is_built_without_retries(sim, make_client):
    client = _connect(make_client, sim)
    assert client._session.link.client.retries == 0  # the transaction manager's own loop


def test_a_garbled_write_acknowledgement_is_a_protocol_error_and_never_resent(peer,
                                                                            make_client):
    client = _connect(make_client, peer.endpoint, allow_writes=True)
    noise = bytes(range(0x90, 0x99))  # 9 bytes, as the simulator's garbage fault sends
    # the pre-write reads (header, scale factor, nominal voltage) are answered properly
    peer.mangle_next(on_writes(lambda request, proper: noise))
    with pytest.raises(ProtocolError, match="garbled reply"):
        client.write(ABSORB, 57.6)
    assert peer.writes() == 1
    _recovers(client)
    client.read_all()
    assert peer.writes() == 1


# ------------------------------------------------------------------------------ hostile replies
def _tid_plus_one(request: bytes, proper: bytes) -> bytes:
    return ((int.from_bytes(proper[:2], "big") + 1) & 0xFFFF).to_bytes(2, "big") + proper[2:]


def _truncated(request: bytes, proper: bytes) -> bytes:
    return proper[:len(proper) // 2]


def _wrong_function(request: bytes, proper: bytes) -> bytes:
    return proper[:7] + bytes([4]) + proper[8:]


def _short_register_list(request: bytes, proper: bytes) -> bytes:
    # A well-formed FC3 reply with one register fewer than asked for.
    pdu = bytes([3, proper[8] - 2]) + proper[9:-2]
    return proper[:4] + struct.pack(">HB", len(pdu) + 1, proper[6]) + pdu


def _protocol_id(request: bytes, proper: bytes) -> bytes:
    return proper[:2] + b"\x00\x01" + proper[4:]


# What the message says tells which check caught the reply: the header check on arrival
# (reply_problem's findings), or, for a truncated reply, the timeout with bytes received.
@pytest.mark.parametrize("mangle, detail", [
    (_tid_plus_one, "transaction id"), (_wrong_function, "function code 4 in reply to function 3"),
    (_short_register_list, "MBAP length .* for function 3"), (_protocol_id, "protocol id 1"),
    (_truncated, r"\d+ bytes that are no complete reply")])
def test_hostile_replies_are_protocol_errors_and_the_client_recovers(peer, make_client,
                                                                     mangle, detail):
    client = _connect(make_client, peer.endpoint)
    peer.mangle_next(mangle)
    with pytest.raises(ProtocolError, match=f"garbled reply from the Mate3 \\({detail}"):
        client.read(SOC)
    assert client.stats["protocol_errors"] == 1  # logged and counted
    _recovers(client)


def test_silence_stays_a_timeout(peer, make_client):
    client = _connect(make_client, peer.endpoint)
    peer.mangle_next(lambda request, proper: b"")
    with pytest.raises(DeviceTimeoutError):
        client.read(SOC)
    assert client.stats["protocol_errors"] == 0
    _recovers(client)


def test_an_exception_reply_is_a_device_error_not_a_protocol_error(peer, make_client):
    client = _connect(make_client, peer.endpoint)
    peer.mangle_next(lambda request, proper: proper[:4] + struct.pack(">HBBB", 3, proper[6],
                                                                      0x83, 4))
    with pytest.raises(DeviceError) as info:
        client.read(SOC)
    assert info.value.code == 4
    assert client.read_value(SOC) == 96  # as in the dump  # the link stayed up


def test_a_write_acknowledgement_for_another_address_is_a_protocol_error(peer, make_client):
    client = _connect(make_client, peer.endpoint, allow_writes=True)

    def other_address(request: bytes, proper: bytes) -> bytes:
        return proper[:8] + struct.pack(">HH", 1, 1)

    peer.mangle_next(on_writes(other_address))
    with pytest.raises(ProtocolError, match="acknowledgement"):
        client.write(ABSORB, 57.6)
    assert peer.writes() == 1
    _recovers(client)
    assert peer.writes() == 1


def test_a_second_frame_behind_a_reply_is_ignored_safely(peer, make_client):
    # pymodbus hands over the first frame and discards what follows in the same segment.
    client = _connect(make_client, peer.endpoint)
    peer.mangle_next(lambda request, proper: proper + proper)
    assert client.read_value(SOC) == 96
    _recovers(client)


def test_unsolicited_bytes_while_idle_drop_the_link_and_the_client_comes_back(peer,
                                                                            make_client):
    events = Recorder()
    client = _connect(make_client, peer.endpoint, on_event=events)
    assert peer.send_unsolicited(bytes(range(12))) == 1
    lost = events.wait_for(lambda e: isinstance(e, ConnectionStateChanged)
                           and e.state is ConnectionState.RECONNECTING)
    assert isinstance(lost.error, ProtocolError) and "unsolicited" in str(lost.error)
    assert client.stats["protocol_errors"] == 1
    _recovers(client)
    assert client.io_thread.is_alive()
