"""pycti's README examples (CyclerInterface, ChannelInterface), ported with one import change

    # from pyctiarbin import CyclerInterface, ChannelInterface
    from pyburnerkit.arbin.compat import CyclerInterface, ChannelInterface

and run against ArbinSim over real TCP (the README's .env credentials come from the
environment, as in pycti's CI). The control part adds ``'allow_writes': True``.
"""

from __future__ import annotations

from typing import Iterator

import pytest

from pyburnerkit.arbin.compat import ChannelInterface, CyclerInterface
from pyburnerkit.arbin.sim import ArbinSim

from ._pycti_fixtures import pycti_env  # noqa: F401


@pytest.fixture
def cycler() -> Iterator[ArbinSim]:
    with ArbinSim(16, username="username", password="password").start() as sim:
        yield sim


def test_readme_read_channel_status(cycler: ArbinSim, pycti_env: None) -> None:
    config = {"ip_address": "127.0.0.1", "port": cycler.port, "timeout_s": 3,
              "msg_buffer_size": 4096}
    cycler_interface = CyclerInterface(config)
    try:
        channel_status = cycler_interface.read_channel_status(channel=1)
        assert channel_status["channel"] == 0 and channel_status["status"] == "Idle"
        assert 3.0 < channel_status["voltage_v"] < 4.3
        assert cycler_interface.get_login_feedback()["num_channels"] == 16
    finally:
        cycler_interface.close()


def test_readme_start_test_and_set_meta_variable(cycler: ArbinSim, pycti_env: None) -> None:
    config = {"channel": 1, "test_name": "fake_test_name", "schedule_name": "MV_Charge.sdx",
              "ip_address": "127.0.0.1", "port": cycler.port, "timeout_s": 3,
              "msg_buffer_size": 4096, "allow_writes": True}
    channel_interface = ChannelInterface(config)
    try:
        assert channel_interface.start_test() is True
        assert channel_interface.read_channel_status()["testname"] == "fake_test_name"
        assert channel_interface.set_meta_variable(mv_num=1, mv_value=0.5) is True
        assert cycler.meta_variables(1) == {1: pytest.approx(0.5)}
        assert channel_interface.stop_test() is True
        assert channel_interface.read_channel_status()["status"] == "Idle"
    finally:
        channel_interface.close()
