"""The pycti-compatible interfaces, used the way pycti's README uses them."""

from __future__ import annotations

import json
import logging

import pytest

from pyburnerkit.arbin import codec
from pyburnerkit.arbin.compat import (ChannelInterface, CyclerInterface, login_dict,
                                      status_dict)
from pyburnerkit.errors import ConfigurationError

from .captures import captures_dir
from .conftest import SECRET, USER

CAPTURES = captures_dir()  # fails the module (never skips it) when the captures are missing


@pytest.fixture
def creds(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)  # pycti reads <cwd>/.env by default; here it has none
    monkeypatch.setenv("ARBIN_CTI_USERNAME", USER)
    monkeypatch.setenv("ARBIN_CTI_PASSWORD", SECRET)


def test_status_dict_has_pyctis_keys_and_values() -> None:
    expected = json.loads((CAPTURES / "server_channel_info_msg.json").read_text())
    raw = (CAPTURES / "server_channel_info_msg.bin").read_bytes()
    (status,) = codec.decode_feedback(raw).statuses
    assert status_dict(status) == expected


def test_login_dict_has_pyctis_keys() -> None:
    expected = json.loads((CAPTURES / "server_login_msg.json").read_text())
    info = codec.decode_feedback((CAPTURES / "server_login_msg.bin").read_bytes()).info
    got = login_dict(info)
    assert set(got) == set(expected)
    # pycti decodes the 4 IP bytes as text; we give dotted text. Everything else is equal.
    assert {k: v for k, v in got.items() if k != "ip_address"} == \
        {k: v for k, v in expected.items() if k != "ip_address"}


def test_readme_cycler_interface(sim, creds) -> None:
    config = {"ip_address": "127.0.0.1", "port": sim.port, "timeout_s": 3,
              "msg_buffer_size": 4096}
    cycler_interface = CyclerInterface(config)
    try:
        assert cycler_interface.get_num_channels() == 16
        assert cycler_interface.get_login_feedback()["result"] == "success"
        channel_status = cycler_interface.read_channel_status(channel=2)
        assert channel_status["channel"] == 1 and channel_status["status"] == "Idle"
        assert channel_status["aux_voltage"] == [] and "voltage_v" in channel_status
        assert cycler_interface.read_channel_status(channel=0) == {}  # never "all channels"
        assert cycler_interface.read_channel_status(channel=17) == {}
    finally:
        cycler_interface.close()


def test_readme_channel_interface(sim, creds, caplog) -> None:
    config = {"channel": 2, "test_name": "fake_test_name", "schedule_name": "Rest+207855.sdx",
              "ip_address": "127.0.0.1", "port": sim.port, "timeout_s": 3,
              "msg_buffer_size": 4096, "allow_writes": True}
    with ChannelInterface(config) as channel_interface:
        assert channel_interface.read_channel_status()["status"] == "Idle"
        assert channel_interface.start_test() is True
        assert channel_interface.read_channel_status()["testname"] == "fake_test_name"
        assert channel_interface.set_meta_variable(mv_num=1, mv_value=4.20) is True
        assert sim.meta_variables(2) == {1: pytest.approx(4.2)}
        assert channel_interface.stop_test() is True
        caplog.set_level(logging.WARNING)
        assert channel_interface.set_meta_variable(mv_num=1, mv_value=1.0) is False
        assert "channel is not running" in caplog.text  # the reason is logged, not lost
        with pytest.raises(ConfigurationError):
            channel_interface.set_meta_variable(mv_num=17, mv_value=1.0)


def test_missing_schedule_or_test_name_returns_false(sim, creds) -> None:
    config = {"channel": 1, "ip_address": "127.0.0.1", "port": sim.port, "allow_writes": True}
    with ChannelInterface(config) as channel_interface:
        assert channel_interface.assign_schedule() is False
        assert channel_interface.start_test() is False


def test_env_path_file_overrides_environment(sim, creds, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("ARBIN_CTI_PASSWORD", "stale-password")
    env = tmp_path / "cti.env"
    env.write_text(f"ARBIN_CTI_USERNAME={USER}\nARBIN_CTI_PASSWORD={SECRET}\n")
    with CyclerInterface({"ip_address": "127.0.0.1", "port": sim.port}, env_path=str(env)) as c:
        assert c.get_num_channels() == 16


def test_bad_config_is_a_configuration_error(creds) -> None:
    with pytest.raises(ConfigurationError, match="ip_address"):
        CyclerInterface({"port": 9031})
    with pytest.raises(ConfigurationError, match="channel"):
        ChannelInterface({"ip_address": "127.0.0.1", "port": 9031, "channel": 0})


def test_refused_login_is_a_clear_authentication_error(sim, creds, monkeypatch) -> None:
    from pyburnerkit.errors import AuthenticationError
    monkeypatch.setenv("ARBIN_CTI_PASSWORD", "definitely-wrong")
    with pytest.raises(AuthenticationError, match="refused the CTI log-in") as info:
        CyclerInterface({"ip_address": "127.0.0.1", "port": sim.port, "timeout_s": 3})
    assert "definitely-wrong" not in str(info.value) and USER not in str(info.value)
    assert sim.login_failures == 1


def test_mits10_all_channel_answer_gives_the_asked_channel(creds) -> None:
    # pycti issue #24: MITS 10 answers a one-channel request with every channel and pycti
    # returned channel 1's record for channel 6.
    from pyburnerkit.arbin.sim import ArbinSim
    with ArbinSim(16, username=USER, password=SECRET, mits10=True).start() as sim:
        sim.preset(6, schedule="Rest+207855.sdx", test_name="six")
        with CyclerInterface({"ip_address": "127.0.0.1", "port": sim.port}) as cycler:
            status = cycler.read_channel_status(channel=6)
            assert status["channel"] == 5 and status["testname"] == "six"
            assert status["status"] == "Rest"


def test_pycti_names_live_only_in_compat() -> None:
    """The native clients speak read_* / set_* (issue 11); pycti's names that differ from
    them stay on the compat interfaces, which wrap a client instead of inheriting from it."""
    from pyburnerkit.arbin.client import ChannelClient, CyclerClient
    pycti_only = {"get_num_channels", "get_login_feedback", "read_channel_status",
                  "start_test", "stop_test"}
    for native in (CyclerClient, ChannelClient):
        assert not pycti_only & set(dir(native)), native
        assert not issubclass(ChannelInterface, native)
    assert pycti_only <= set(dir(ChannelInterface))
    assert {"get_num_channels", "get_login_feedback", "read_channel_status"} <= \
        set(dir(CyclerInterface))
    public = {n for n in dir(ChannelClient) if not n.startswith("_")}
    assert not {n for n in public if n.startswith(("get_", "fetch_"))}
