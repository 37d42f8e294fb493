"""The endpoint a CyclerClient / ChannelClient is opened with: every accepted form, the port
given apart, the errors for bad ones (before anything connects)."""

from __future__ import annotations

from typing import Any, List

import pytest

from pyburnerkit import ConfigurationError
from pyburnerkit.arbin import ChannelClient, CyclerClient
from pyburnerkit.arbin.sim import ArbinSim
from pyburnerkit.recorder.adapters.arbin import ArbinSource

from .conftest import FAST, SECRET, USER

CREDS = dict(username=USER, password=SECRET)


def opened(clients: List[Any], client: Any) -> Any:
    clients.append(client)
    return client


def connect(clients: List[Any], endpoint: str, *args: Any, cls: Any = CyclerClient,
            **kw: Any) -> Any:
    kw = {**CREDS, "timeout": 5.0, "connect_timeout": 5.0, "reconnect": FAST, **kw}
    return opened(clients, cls(endpoint, *args, **kw)).connect()


# ---------------------------------------------------------------------- forms that connect
def test_host_colon_port_is_split_into_host_and_port(sim: ArbinSim, clients) -> None:
    # The issue: "host:9031" was taken for a host name although the README documents it.
    client = connect(clients, f"127.0.0.1:{sim.port}")
    assert (client.host, client.port) == ("127.0.0.1", sim.port)
    assert client.endpoint == f"127.0.0.1:{sim.port}"
    assert client.io_thread.name == f"pyburnerkit-arbin-127.0.0.1:{sim.port}-io"
    assert client.read_status(1).channel == 1 and sim.logins == 1


def test_cti_url_connects(sim: ArbinSim, clients) -> None:
    client = connect(clients, f"cti://127.0.0.1:{sim.port}")
    assert (client.host, client.port) == ("127.0.0.1", sim.port)
    assert client.channel_count == 16


def test_bare_host_with_the_port_apart(sim: ArbinSim, clients) -> None:
    by_keyword = connect(clients, "127.0.0.1", port=sim.port)
    same_twice = connect(clients, f"127.0.0.1:{sim.port}", port=sim.port)
    for client in (by_keyword, same_twice):
        assert client.port == sim.port and client.connected
    assert sim.logins == 2


def test_port_is_keyword_only_as_in_every_family() -> None:
    # one driver surface: the endpoint string is the only positional argument
    with pytest.raises(TypeError):
        CyclerClient("127.0.0.1", 9031)  # type: ignore[misc]


def test_channel_client_takes_the_same_endpoints(sim: ArbinSim, clients) -> None:
    cell = connect(clients, f"127.0.0.1:{sim.port}", cls=ChannelClient, channel=2,
                   allow_writes=True)
    cell.assign_schedule("Rest+207855.sdx")
    assert sim.channel_status(2).schedule == "Rest+207855.sdx"
    assert connect(clients, "127.0.0.1", port=sim.port, cls=ChannelClient,
                   channel=4).read_status().channel == 4


def test_named_in_process_simulator(clients) -> None:
    client = opened(clients, CyclerClient("sim://bench?channels=2&seed=1"))
    assert client.endpoint == "sim:bench" and client.port is None
    client.connect()
    assert client.channel_count == 2 and client.simulator.logins == 1


def test_recorder_source_from_host_colon_port(sim: ArbinSim, clients) -> None:
    source = ArbinSource.from_config(f"127.0.0.1:{sim.port}", "cycler", CREDS)
    clients.append(source.client)
    assert source.owns_client and (source.client.host, source.client.port) == \
        ("127.0.0.1", sim.port)
    assert len(source.client.connect().read_all_statuses()) == 16


# ---------------------------------------------------------------------- parsed, not connected
@pytest.mark.parametrize("endpoint,host,port,label", [
    ("cycler.lab", "cycler.lab", 9031, "cycler.lab:9031"),
    ("cycler.lab:9100", "cycler.lab", 9100, "cycler.lab:9100"),
    ("cti://cycler.lab", "cycler.lab", 9031, "cycler.lab:9031"),
    ("cti://cycler.lab:9100/", "cycler.lab", 9100, "cycler.lab:9100"),
    ("  10.0.0.7:9031 ", "10.0.0.7", 9031, "10.0.0.7:9031"),
    ("[::1]:9100", "::1", 9100, "[::1]:9100"),
    ("::1", "::1", 9031, "[::1]:9031"),
])
def test_endpoint_forms(endpoint: str, host: str, port: int, label: str, clients) -> None:
    client = opened(clients, CyclerClient(endpoint, **CREDS))
    assert (client.host, client.port, client.endpoint) == (host, port, label)


@pytest.mark.parametrize("endpoint,kw,fragment", [
    ("", {}, "expected an endpoint for the cycler"),
    ("   ", {}, "expected an endpoint for the cycler"),
    (None, {}, "expected an endpoint for the cycler"),
    (9031, {}, "expected an endpoint for the cycler"),
    ("http://cycler.lab", {}, "unsupported scheme 'http'"),
    ("cycler.lab:abc", {}, "cycler.lab:abc"),
    ("cycler.lab:70000", {}, "cycler.lab:70000"),
    ("cycler.lab:0", {}, "port 0 is not in 1..65535"),
    ("cti://", {}, "names no host"),
    ("cti://cycler.lab/schedules", {}, "path or query"),
    ("cti://cycler.lab?timeout=1", {}, "path or query"),
    ("cycler.lab", {"port": 0}, "port=0 is out of range: the limit is 1..65535"),
    ("cycler.lab", {"port": "9031"}, "port must be a number in 1..65535"),
    ("cycler.lab", {"port": 9031.5}, "whole number"),
    ("cycler.lab:9031", {"port": 9100}, "names port 9031 but port=9100"),
    ("sim://", {"port": 9031}, "no meaning for the in-process simulator"),
    ("sim://?channels=600", {}, "channels=600 channels is out of range: the limit is 1..512"),
    ("sim://?time_scale=0", {}, "time_scale=0.0 is out of range"),
    ("sim://?channels=two", {}, "channels='two' is not valid"),
    ("sim://?warp=1", {}, "unknown sim:// option 'warp'"),
])
def test_bad_endpoints_are_refused_when_the_client_is_made(endpoint: Any, kw: Any,
                                                            fragment: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        CyclerClient(endpoint, **CREDS, **kw)
    assert fragment in str(info.value)
    with pytest.raises(ConfigurationError):
        ChannelClient(endpoint, channel=1, **CREDS, **kw)


@pytest.mark.parametrize("endpoint", ["cti://lab:hunter2@cycler.lab:9031",
                                      "lab:hunter2@cycler.lab", "lab@cycler.lab"])
def test_credentials_in_the_endpoint_are_refused_and_never_echoed(endpoint: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        CyclerClient(endpoint, **CREDS)
    message = str(info.value)
    assert "cannot carry credentials" in message and "ARBIN_CTI_PASSWORD" in message
    assert "hunter2" not in message and "lab@" not in message


def test_simulator_options_are_parsed_from_the_endpoint_mapping() -> None:
    assert ArbinSim.parse_options({"channels": "8", "time_scale": "60", "seed": "3",
                                   "mits10": "yes"}) == \
        {"channels": 8, "time_scale": 60.0, "seed": 3, "mits10": True}
    sim = ArbinSim.from_options({"channels": "3"})
    sim.start(listen=False)  # a started simulator's close() releases its loop's sockets
    try:
        assert len(sim.channels) == 3
    finally:
        sim.close()


def test_package_import_stays_lazy_and_resolves_the_real_classes() -> None:
    # The TYPE_CHECKING imports in arbin/__init__.py are for type checkers only: at run time
    # the client and simulator modules load on first use.
    import subprocess
    import sys
    code = ("import sys, pyburnerkit.arbin as a\n"
            "assert 'pyburnerkit.arbin.client' not in sys.modules\n"
            "assert 'pyburnerkit.arbin.sim' not in sys.modules\n"
            "from pyburnerkit.arbin.client import CyclerClient\n"
            "assert a.CyclerClient is CyclerClient and a.ArbinSim.__module__.endswith('sim')\n"
            "try:\n    a.Nope\nexcept AttributeError as e:\n    print(e)\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    assert "has no attribute 'Nope'" in done.stdout
