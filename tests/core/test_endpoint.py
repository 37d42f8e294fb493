"""The one endpoint parser every family uses."""

import pytest

from pyburnerkit._core.endpoint import parse_endpoint
from pyburnerkit.errors import ConfigurationError


def parse(text, **kw):
    kw.setdefault("scheme", "ws")
    kw.setdefault("default_port", 80)
    return parse_endpoint(text, **kw)


@pytest.mark.parametrize("text, scheme, host, port, path", [
    ("192.168.4.1", "ws", "192.168.4.1", 80, ""),
    ("heater.local:8080", "ws", "heater.local", 8080, ""),
    ("ws://10.0.0.2:81/ws", "ws", "10.0.0.2", 81, "/ws"),
    ("[fe80::1]:502", "ws", "fe80::1", 502, ""),
    ("fe80::1", "ws", "fe80::1", 80, ""),
    ("D9:B2:48:AA:BB:CC", "ws", "D9:B2:48:AA:BB:CC", 80, ""),
])
def test_network_forms(text, scheme, host, port, path) -> None:
    ep = parse(text)
    assert (ep.scheme, ep.host, ep.port, ep.path, ep.is_sim) == (scheme, host, port, path, False)
    assert str(ep) == text


def test_sim_with_name_and_options() -> None:
    ep = parse("sim://mate3?speed=60&seed=1")
    assert ep.is_sim and ep.name == "mate3" and ep.port is None
    assert ep.options == {"speed": "60", "seed": "1"}
    assert parse("sim://").is_sim and parse("sim://").name == ""


def test_netloc_brackets_ipv6() -> None:
    assert parse("[fe80::1]:502").netloc == "[fe80::1]:502"
    assert parse("host").netloc == "host:80"


def test_opaque_addresses_pass_whole_only_when_asked() -> None:
    ep = parse("unix:path=/run/dbus/system_bus_socket", scheme="dbus", opaque=True)
    assert ep.host == "unix:path=/run/dbus/system_bus_socket" and ep.scheme == "dbus"
    with pytest.raises(ConfigurationError):
        parse("unix:path=/run/dbus/system_bus_socket")  # port "path=..." is not a number


def test_extra_schemes_are_accepted_and_others_named_in_the_error() -> None:
    assert parse("modbus://h:502", scheme="tcp", schemes=["modbus"]).scheme == "modbus"
    with pytest.raises(ConfigurationError) as err:
        parse("http://h", what="heater")
    assert "'http'" in str(err.value) and "ws://" in str(err.value) and "sim://" in str(err.value)


@pytest.mark.parametrize("bad", ["", "   ", None, 42, "h:0", "h:70000", "h:port", "ws://",
                                 "ws://:80", "sim://?a"])
def test_bad_endpoints_raise_configuration_errors(bad) -> None:
    with pytest.raises(ConfigurationError) as err:
        parse(bad)
    assert repr(bad) in str(err.value) or repr(bad.strip() if isinstance(bad, str) else bad) \
        in str(err.value) or "query" in str(err.value)


def test_credentials_in_an_endpoint_are_refused_without_echoing_them() -> None:
    with pytest.raises(ConfigurationError) as err:
        parse("ws://admin:hunter2@heater:81")
    assert "hunter2" not in str(err.value) and "credentials" in str(err.value)


def test_sim_options_convert_alias_and_check() -> None:
    from pyburnerkit._core.endpoint import flag, sim_options

    def positive(v: float) -> float:
        if v <= 0:
            raise ConfigurationError(f"speed={v} must be > 0")
        return v

    got = sim_options({"speed": "60", "ambient": "12.5", "oem": ""},
                      {"speed": float, "ambient_c": float, "oem": flag},
                      aliases={"ambient": "ambient_c"}, limits={"speed": positive})
    assert got == {"speed": 60.0, "ambient_c": 12.5, "oem": True}
    with pytest.raises(ConfigurationError, match=r"unknown sim:// option 'x'; known: oem"):
        sim_options({"x": "1"}, {"oem": flag})
    with pytest.raises(ConfigurationError, match=r"oem='maybe' is not valid"):
        sim_options({"oem": "maybe"}, {"oem": flag})
    with pytest.raises(ConfigurationError, match="must be > 0"):
        sim_options({"speed": "0"}, {"speed": float}, limits={"speed": positive})
