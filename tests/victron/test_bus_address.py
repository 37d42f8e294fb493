"""Bus selection as Venus does it, with no I/O."""

from __future__ import annotations

import pytest

from pyburnerkit.errors import ConfigurationError
from pyburnerkit.victron.bus import bus_label, resolve_bus_address


def test_session_bus_when_the_variable_is_set(monkeypatch) -> None:
    monkeypatch.setenv("DBUS_SESSION_BUS_ADDRESS", "unix:path=/tmp/x")
    assert resolve_bus_address() == "unix:path=/tmp/x"


def test_system_bus_otherwise(monkeypatch) -> None:
    monkeypatch.delenv("DBUS_SESSION_BUS_ADDRESS", raising=False)
    monkeypatch.delenv("DBUS_SYSTEM_BUS_ADDRESS", raising=False)
    address = resolve_bus_address()
    assert address == "unix:path=/var/run/dbus/system_bus_socket"
    assert bus_label(address) == "system"


def test_explicit_address_and_names(monkeypatch) -> None:
    monkeypatch.setenv("DBUS_SESSION_BUS_ADDRESS", "unix:path=/tmp/s")
    assert resolve_bus_address("session") == "unix:path=/tmp/s"
    assert resolve_bus_address("tcp:host=10.0.0.2,port=78") == "tcp:host=10.0.0.2,port=78"
    assert bus_label("tcp:host=10.0.0.2,port=78") == "tcp:10.0.0.2:78"
    with pytest.raises(ConfigurationError, match="not a D-Bus address"):
        resolve_bus_address("localhost")
