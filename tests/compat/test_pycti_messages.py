"""pycti's message tests (tests/test_*_message.py), ported with one import change:

    # from pyctiarbin.messages import Msg
    from pyburnerkit.arbin.compat import Msg

against the real captures pycti's tests use. Where pycti's decoded JSON says something our
codec deliberately reads differently, the test says so next to the assertion.
"""

from __future__ import annotations

import json
import logging
from typing import Any, Dict, Tuple

import pytest

from pyburnerkit.arbin import codec
from pyburnerkit.arbin.compat import MessageABC, Msg
from pyburnerkit.errors import ConfigurationError, ProtocolError

from ._pycti_fixtures import captures

MSG_DIR = captures()
MESSAGES = {"login": Msg.Login, "channel_info": Msg.ChannelInfo,
            "assign_schedule": Msg.AssignSchedule, "start_schedule": Msg.StartSchedule,
            "stop_schedule": Msg.StopSchedule, "set_meta_variable": Msg.SetMetaVariable}


def message_file_loader(msg_file_name: str) -> Tuple[bytes, Dict[str, Any]]:
    """pycti's helper: the .bin frame and its decoded .json."""
    return ((MSG_DIR / f"{msg_file_name}.bin").read_bytes(),
            json.loads((MSG_DIR / f"{msg_file_name}.json").read_text()))


@pytest.mark.parametrize("name", sorted(MESSAGES))
def test_client_pack_is_byte_exact(name: str) -> None:
    msg_bin, msg_dict = message_file_loader(f"client_{name}_msg")
    assert MESSAGES[name].Client.pack(msg_dict) == msg_bin


@pytest.mark.parametrize("name", sorted(MESSAGES))
def test_client_unpack(name: str) -> None:
    msg_bin, msg_dict = message_file_loader(f"client_{name}_msg")
    assert MESSAGES[name].Client.unpack(msg_bin) == msg_dict


@pytest.mark.parametrize("name", sorted(MESSAGES))
def test_server_unpack_and_round_trip(name: str) -> None:
    msg_bin, msg_dict = message_file_loader(f"server_{name}_msg")
    server = MESSAGES[name].Server
    decoded = server.unpack(msg_bin)
    if name == "login":
        # pycti decodes the 4 IP bytes as text ('\x03\x03\x1fQ'); we give dotted text, and
        # pack accepts both.
        assert decoded.pop("ip_address") == "3.3.31.81"
        assert msg_dict.pop("ip_address") == "\x03\x03\x1fQ"
    assert decoded == msg_dict
    assert server.pack(server.unpack(msg_bin)) == msg_bin
    # Real MITS Pro framing: the length field is the frame's size (pycti packed 2 bytes more).
    assert len(server.pack(decoded)) == decoded["msg_length"] == len(msg_bin)


def test_pycti_class_constants_and_codec_aliases() -> None:
    pairs = {Msg.Login.Client: codec.LoginRequest, Msg.Login.Server: codec.LoginFeedback,
             Msg.ChannelInfo.Client: codec.ChannelInfoRequest,
             Msg.ChannelInfo.Server: codec.ChannelInfoFeedback,
             Msg.AssignSchedule.Client: codec.AssignScheduleRequest,
             Msg.StartSchedule.Client: codec.StartRequest,
             Msg.StopSchedule.Client: codec.StopRequest,
             Msg.SetMetaVariable.Client: codec.SetMVRequest,
             Msg.StopSchedule.Server: codec.CommandFeedback}
    for pycti_name, ours in pairs.items():
        assert issubclass(pycti_name, MessageABC) and pycti_name.message is ours
    assert (Msg.Login.Client.command_code, Msg.Login.Client.msg_length) == (0xEEAB0001, 74)
    assert (Msg.StartSchedule.Client.command_code, Msg.StartSchedule.Client.msg_length) == \
        (0xBB320004, 160)
    assert Msg.SetMetaVariable.Server.command_code == 0xBB510001
    assert Msg.SetMetaVariable.Client.mv_channel_codes[1] == 52
    assert Msg.SetMetaVariable.Client.mv_channel_codes[16] == 116


def test_unknown_key_is_logged_and_ignored(caplog: pytest.LogCaptureFixture) -> None:
    # pycti's test_message_abc_methods: a bad key does not spoil the message.
    caplog.set_level(logging.WARNING)
    packed = Msg.StopSchedule.Client.pack({"channel": 3, "no_such_key": 1})
    assert Msg.StopSchedule.Client.unpack(packed)["channel"] == 3
    assert "no_such_key" in caplog.text


def test_bad_value_raises_instead_of_an_empty_message() -> None:
    # pycti logged and returned bytearray(); we refuse with the value and the limit.
    with pytest.raises(ConfigurationError, match="test name is 80 characters long: the limit "
                                                 "is 71"):
        Msg.StartSchedule.Client.pack({"test_name": "x" * 80})
    with pytest.raises(ConfigurationError, match="channel"):
        Msg.ChannelInfo.Server.pack({"channel": -1})


def test_unpack_of_another_message_is_a_protocol_error() -> None:
    msg_bin, _ = message_file_loader("server_stop_schedule_msg")
    with pytest.raises(ProtocolError):
        Msg.StartSchedule.Server.unpack(msg_bin)
    with pytest.raises(ProtocolError):
        Msg.Login.Client.unpack(msg_bin[:-1])


def test_set_mv_results_carry_arbins_meaning() -> None:
    # pycti swapped 0x11 and 0x12; Arbin (and we) say 0x12 = channel not running.
    packed = Msg.SetMetaVariable.Server.pack({"channel": 2, "result": 0x12})
    assert Msg.SetMetaVariable.Server.unpack(packed)["result"] == "channel is not running"


def test_multi_channel_feedback_unpacks_every_record() -> None:
    statuses = tuple(codec.decode_feedback(Msg.ChannelInfo.Server.pack({"channel": i}))
                     .statuses[0] for i in (4, 9))
    frame = codec.encode_feedback(codec.ChannelInfoFeedback(statuses))
    first = Msg.ChannelInfo.Server.unpack(frame)
    assert first["channel"] == 4 and first["number_of_channels"] == 2
    assert [d["channel"] for d in Msg.ChannelInfo.Server.unpack_all(frame)] == [4, 9]
