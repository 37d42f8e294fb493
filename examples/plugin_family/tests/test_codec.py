"""The codec on its own: golden lines both ways, and garbage that must be a ProtocolError."""

from __future__ import annotations

import random

import pytest

from pyburnerkit.errors import ProtocolError
from pyburnerkit_thermo import codec
from pyburnerkit_thermo.models import DeviceInfo, ErrorCode, Status


@pytest.mark.parametrize("request_, line", [
    (codec.Identify(), b"ID\n"),
    (codec.Read(), b"READ\n"),
    (codec.SetRelay(True), b"SET RELAY 1\n"),
    (codec.SetRelay(False), b"SET RELAY 0\n"),
    (codec.SetLimit(30.5), b"SET LIMIT 30.5\n"),
])
def test_requests_encode_and_the_box_decodes_them_back(request_: codec.Request,
                                                       line: bytes) -> None:
    assert codec.encode_request(request_) == line
    assert codec.decode_request(line.decode().strip()) == request_


def test_replies_decode() -> None:
    assert codec.decode_status("T=21.5 H=40 RELAY=0 LIMIT=30.0") == Status(21.5, 40, False, 30.0)
    # keys in any order; a key a newer firmware adds is ignored
    assert codec.decode_status("RELAY=1 LIMIT=25.5 FAN=2 H=99 T=-3.0") == \
        Status(-3.0, 99, True, 25.5)
    assert codec.decode_info("ID TR-1 SN=0042 FW=1.3") == DeviceInfo("TR-1", "0042", "1.3")
    assert codec.decode_refusal("ERR 3 over temperature limit") == \
        codec.Refusal(ErrorCode.OVER_LIMIT, "over temperature limit")
    assert codec.decode_refusal("ERR 42 new") == codec.Refusal(ErrorCode(42), "new")
    assert codec.decode_refusal("OK") is None
    codec.decode_ok("OK")


def test_the_device_side_round_trips() -> None:
    status = Status(19.9, 51, True, 30.0)
    assert codec.decode_status(codec.encode_status(status).decode().strip()) == status
    info = DeviceInfo("TR-1", "7", "2.0")
    assert codec.decode_info(codec.encode_info(info).decode().strip()) == info


@pytest.mark.parametrize("line, code", [
    ("SET RELAY 2", ErrorCode.BAD_VALUE), ("SET LIMIT hot", ErrorCode.BAD_VALUE),
    ("SET FAN 1", ErrorCode.UNKNOWN_COMMAND), ("", ErrorCode.UNKNOWN_COMMAND)])
def test_the_box_refuses_bad_requests_with_its_codes(line: str, code: ErrorCode) -> None:
    with pytest.raises(codec.RequestError) as caught:
        codec.decode_request(line)
    assert caught.value.code is code


@pytest.mark.parametrize("line", [
    "", "T=21.5 H=40 RELAY=0", "T=hot H=40 RELAY=0 LIMIT=30.0", "T=21.5 H=40 RELAY=2 LIMIT=3",
    "T=21.5 H=40.5 RELAY=0 LIMIT=30.0", "T=21.5 H=140 RELAY=0 LIMIT=30.0", "T=1 T=2",
    "T=nan H=40 RELAY=0 LIMIT=30.0", "T=1e9 H=40 RELAY=0 LIMIT=30.0"])
def test_malformed_statuses_are_protocol_errors(line: str) -> None:
    with pytest.raises(ProtocolError):
        codec.decode_status(line)


def test_any_bytes_give_lines_or_a_protocol_error_never_another_exception() -> None:
    rng = random.Random(7)
    decoders = (codec.decode_status, codec.decode_info, codec.decode_ok, codec.decode_refusal)
    for _ in range(2000):
        reader = codec.LineReader()
        data = bytes(rng.choice(b"T=H1.0 RELAY\n\r-\xff") for _ in range(rng.randrange(200)))
        try:
            lines = reader.feed(data)
        except ProtocolError:
            continue
        for line in lines:
            for decode in decoders:
                try:
                    decode(line)
                except ProtocolError:
                    pass


def test_the_line_reader_keeps_a_partial_line_and_refuses_an_endless_one() -> None:
    reader = codec.LineReader(max_line=16)
    assert reader.feed(b"OK\r\nT=2") == ["OK"]
    assert reader.buffered == 3
    assert reader.feed(b"1\n") == ["T=21"]
    with pytest.raises(ProtocolError, match="no line end within 17 bytes"):
        reader.feed(b"x" * 17)
    assert reader.buffered == 0
