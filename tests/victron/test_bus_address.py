"""The Victron endpoint string and bus selection as Venus does it, with no I/O."""

from __future__ import annotations

import pytest

from pyburnerkit.errors import ConfigurationError
from pyburnerkit.victron import VictronMonitor, VictronService
from pyburnerkit.victron.bus import bus_label, parse_bus_endpoint, resolve_bus_address
from pyburnerkit.victron.sim import VictronSim


def test_session_bus_when_the_variable_is_set(monkeypatch) -> None:
    monkeypatch.setenv("DBUS_SESSION_BUS_ADDRESS", "unix:path=/tmp/x")
    assert resolve_bus_address() == "unix:path=/tmp/x"


def test_system_bus_otherwise(monkeypatch) -> None:
    monkeypatch.delenv("DBUS_SESSION_BUS_ADDRESS", raising=False)
    monkeypatch.delenv("DBUS_SYSTEM_BUS_ADDRESS", raising=False)
    address = resolve_bus_address()
    assert address == "unix:path=/var/run/dbus/system_bus_socket"
    assert bus_label(address) == "system"
    assert resolve_bus_address("system") == address


def test_explicit_address_and_names(monkeypatch) -> None:
    monkeypatch.setenv("DBUS_SESSION_BUS_ADDRESS", "unix:path=/tmp/s")
    assert resolve_bus_address("session") == "unix:path=/tmp/s"
    assert resolve_bus_address("tcp:host=10.0.0.2,port=78") == "tcp:host=10.0.0.2,port=78"
    assert bus_label("tcp:host=10.0.0.2,port=78") == "tcp:10.0.0.2:78"
    with pytest.raises(ConfigurationError, match="not a D-Bus endpoint"):
        resolve_bus_address("localhost")


def test_session_without_its_variable_is_refused(monkeypatch) -> None:
    monkeypatch.delenv("DBUS_SESSION_BUS_ADDRESS", raising=False)
    with pytest.raises(ConfigurationError, match="DBUS_SESSION_BUS_ADDRESS"):
        resolve_bus_address("session")


@pytest.mark.parametrize("text, host", [
    ("system", "system"), ("session", "session"), ("dbus://system", "system"),
    ("unix:path=/run/dbus/system_bus_socket", "unix:path=/run/dbus/system_bus_socket"),
    ("unix:path=/tmp/dbus-X,guid=0123abcd", "unix:path=/tmp/dbus-X,guid=0123abcd"),
    ("tcp:host=10.0.0.2,port=78", "tcp:host=10.0.0.2,port=78"),
    ("unix:abstract=/tmp/a;tcp:host=gx,port=78", "unix:abstract=/tmp/a;tcp:host=gx,port=78"),
])
def test_the_accepted_endpoint_forms(text: str, host: str) -> None:
    parsed = parse_bus_endpoint(text)
    assert not parsed.is_sim and parsed.host == host


def test_sim_endpoints_carry_their_options() -> None:
    parsed = parse_bus_endpoint("sim://?interval=0&seed=3")
    assert parsed.is_sim and parsed.options == {"interval": "0", "seed": "3"}
    assert VictronSim.parse_options(parsed.options) == {"interval": 0.0, "seed": 3}
    with pytest.raises(ConfigurationError, match="no address"):
        resolve_bus_address("sim://")


@pytest.mark.parametrize("text", ["localhost", "gx.local:78", "[::1]:78", "unix:/tmp/x",
                                  "ws://gx/", "", "   ", "a:b:c=d"])
def test_other_strings_are_refused_naming_the_forms(text: str) -> None:
    with pytest.raises(ConfigurationError) as err:
        parse_bus_endpoint(text)
    message = str(err.value)
    assert repr(text) in message and "'system'" in message and "unix:path=" in message
    assert "sim://" in message


def test_the_clients_refuse_a_bad_endpoint_before_any_io() -> None:
    with pytest.raises(ConfigurationError, match="not a D-Bus endpoint"):
        VictronMonitor("192.168.1.20")
    with pytest.raises(ConfigurationError, match="not a D-Bus endpoint"):
        VictronService("com.victronenergy.grid.x", bus="192.168.1.20")
    with pytest.raises(ConfigurationError, match="unknown sim:// option 'speed'"):
        VictronMonitor("sim://?speed=2")
    with pytest.raises(ConfigurationError, match=r"interval=-1.0 s is out of range.*0\.\.86400"):
        VictronMonitor("sim://?interval=-1")


def test_the_endpoint_and_its_older_spelling() -> None:
    address = "unix:path=/tmp/pbk-nowhere/bus"
    mon = VictronMonitor(address)
    alias = VictronMonitor(bus_address=address)
    svc = VictronService("com.victronenergy.grid.x", address)
    svc_kw = VictronService("com.victronenergy.grid.x", bus=address)
    svc_alias = VictronService("com.victronenergy.grid.x", bus_address=address)
    try:
        assert {c.bus_address for c in (mon, alias, svc, svc_kw, svc_alias)} == {address}
        assert mon.endpoint == alias.endpoint == "unix:/tmp/pbk-nowhere/bus"
        assert svc.endpoint == "com.victronenergy.grid.x"   # a service is named by its name
    finally:
        for client in (mon, alias, svc, svc_kw, svc_alias):
            client.close()
    with pytest.raises(ConfigurationError, match="given twice"):
        VictronMonitor("system", bus_address=address)
    with pytest.raises(ConfigurationError, match="given twice"):
        VictronService("com.victronenergy.grid.x", "system", bus_address=address)


def test_a_sim_client_has_no_address_until_it_connects() -> None:
    mon = VictronMonitor("sim://")
    named = VictronMonitor("sim://bench")
    try:
        assert mon.bus_address is None and mon.simulator is None
        assert mon.endpoint == "sim" and named.endpoint == "sim-bench"
    finally:
        mon.close()
        named.close()
