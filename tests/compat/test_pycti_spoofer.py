"""pycti's spoofer and interface tests (tests/test_arbinspoofer.py, test_cycler_interface.py,
test_channel_interface.py), ported with one import change each:

    # from pyctiarbin import CyclerInterface, ChannelInterface
    # from pyctiarbin.arbinspoofer import ArbinSpoofer
    # from pyctiarbin.messages import Msg
    from pyburnerkit.arbin.compat import ArbinSpoofer, ChannelInterface, CyclerInterface, Msg

The ports differ from pycti's files only where pycti's shape cannot hold in this suite: the
spoofer is a fixture on a free port (pycti starts it at import time on a fixed port and never
stops it), every interface is closed, and the channel config carries ``'allow_writes': True``
(control is opt-in here; pycti ignores the extra key).
"""

from __future__ import annotations

import pytest

from pyburnerkit.arbin.compat import ArbinSpoofer, ChannelInterface, CyclerInterface, Msg
from pyburnerkit.arbin.sim import ArbinSim

from ._pycti_fixtures import FLOAT_TOLERANCE, TcpClient, pycti_env, spoofer  # noqa: F401

ARBIN_CHANNEL = 1
CHANNEL = 5  # test_arbinspoofer's channel (a wire index)


def _cycler_config(server: ArbinSpoofer) -> dict:
    return {"ip_address": "127.0.0.1", "port": server.port, "timeout_s": 3,
            "msg_buffer_size": 2 ** 12}


def _channel_config(server: ArbinSpoofer) -> dict:
    return {"test_name": "fake_test_name", "schedule_name": "Rest+207855.sdx",
            "channel": ARBIN_CHANNEL + 1, **_cycler_config(server), "allow_writes": True}


# ----------------------------------------------------------------- test_arbinspoofer.py
def test_messages(spoofer: ArbinSpoofer) -> None:
    """The spoofer replies correctly to all messages."""
    client = TcpClient({"ip": "127.0.0.1", "port": spoofer.port})
    try:
        messages = [(Msg.Login.Client.pack(), Msg.Login.Server.pack({"num_channels": 16})),
                    (Msg.ChannelInfo.Client.pack(), Msg.ChannelInfo.Server.pack()),
                    (Msg.AssignSchedule.Client.pack(), Msg.AssignSchedule.Server.pack()),
                    (Msg.StartSchedule.Client.pack(), Msg.StartSchedule.Server.pack()),
                    (Msg.StopSchedule.Client.pack(), Msg.StopSchedule.Server.pack()),
                    (Msg.SetMetaVariable.Client.pack(), Msg.SetMetaVariable.Server.pack())]
        for tx_msg, expected_rx_msg in messages:
            assert client.send_recv_msg(tx_msg) == expected_rx_msg
    finally:
        client.close()


def test_update_status(spoofer: ArbinSpoofer) -> None:
    """Updating channel status info works."""
    client = TcpClient({"ip": "127.0.0.1", "port": spoofer.port})
    try:
        client.send_recv_msg(Msg.Login.Client.pack())  # our spoofer wants a log-in first
        tx_msg = Msg.ChannelInfo.Client.pack({"channel": CHANNEL})
        assert client.send_recv_msg(tx_msg) == Msg.ChannelInfo.Server.pack({"channel": CHANNEL})
        updated_readings = {"voltage_v": 2.69, "current_a": 1.19}
        assert spoofer.update_channel_status(CHANNEL, updated_readings) is True
        rx_msg = client.send_recv_msg(tx_msg)
        assert rx_msg == Msg.ChannelInfo.Server.pack({**{"channel": CHANNEL}, **updated_readings})
        rx_msg_dict = Msg.ChannelInfo.Server.unpack(rx_msg)
        assert abs(updated_readings["voltage_v"] - rx_msg_dict["voltage_v"]) < FLOAT_TOLERANCE
        assert abs(updated_readings["current_a"] - rx_msg_dict["current_a"]) < FLOAT_TOLERANCE
    finally:
        client.close()


def test_update_status_refuses_unknown_keys_like_pycti(spoofer: ArbinSpoofer) -> None:
    assert spoofer.update_channel_status(CHANNEL, {"no_such_reading": 1.0}) is False
    assert spoofer.update_channel_status(16, {"voltage_v": 1.0}) is False  # indexes 0..15


# ----------------------------------------------------------------- test_cycler_interface.py
def test_get_num_channels(spoofer: ArbinSpoofer, pycti_env: None) -> None:
    with CyclerInterface(_cycler_config(spoofer)) as arbin_interface:
        assert arbin_interface.get_num_channels() == 16


def test_cycler_read_channel_status(spoofer: ArbinSpoofer, pycti_env: None) -> None:
    with CyclerInterface(_cycler_config(spoofer)) as arbin_interface:
        channel_status = arbin_interface.read_channel_status(channel=(ARBIN_CHANNEL + 1))
    channel_status_bin_key = Msg.ChannelInfo.Server.pack({"channel": 1})
    channel_status_key = Msg.ChannelInfo.Server.unpack(channel_status_bin_key)
    assert channel_status == channel_status_key


# ----------------------------------------------------------------- test_channel_interface.py
def test_channel_read_channel_status(spoofer: ArbinSpoofer, pycti_env: None) -> None:
    with ChannelInterface(_channel_config(spoofer)) as arbin_interface:
        channel_status = arbin_interface.read_channel_status()
    channel_status_key = Msg.ChannelInfo.Server.unpack(
        Msg.ChannelInfo.Server.pack({"channel": 1}))
    assert channel_status == channel_status_key


def test_assign_start_stop_and_set_meta_variable(spoofer: ArbinSpoofer,
                                                  pycti_env: None) -> None:
    # pycti's four control tests, each on its own interface as there.
    for call in (lambda i: i.assign_schedule(), lambda i: i.start_test(),
                 lambda i: i.stop_test(),
                 lambda i: i.set_meta_variable(mv_num=1, mv_value=4.20)):
        with ChannelInterface(_channel_config(spoofer)) as arbin_interface:
            assert call(arbin_interface) is True


def test_the_spoofer_answers_any_command_a_real_cycler_refuses(spoofer: ArbinSpoofer,
                                                               pycti_env: None) -> None:
    # pycti's spoofer succeeds at everything (it never tracks a test); ArbinSim refuses what
    # a cycler refuses. Both ways, the same compat code path.
    config = {**_channel_config(spoofer), "schedule_name": "NoSuchSchedule.sdx"}
    with ChannelInterface(config) as spoofed:
        assert spoofed.start_test() is True
        assert spoofed.read_channel_status()["status"] == "Idle"  # nothing started
    with ArbinSim(16, username="username", password="password").start() as sim:
        with ChannelInterface({**config, "port": sim.port}) as real:
            assert real.start_test() is False  # schedule not found
            assert real.set_meta_variable(mv_num=1, mv_value=4.2) is False  # not running
