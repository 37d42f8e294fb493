"""Value wrapping rules (spec 1.9): explicit types, invalid marker, no dbus types leaking."""

from __future__ import annotations

import dbus
import pytest
from hypothesis import given, strategies as st

from pyburnerkit.errors import ConfigurationError, ProtocolError
from pyburnerkit.victron import codec


def test_none_is_the_empty_int32_array() -> None:
    v = codec.wrap(None)
    assert isinstance(v, dbus.Array) and v.signature == "i" and len(v) == 0


def test_empty_list_keeps_a_real_type_not_invalid() -> None:
    v = codec.wrap([])
    assert v.signature == "u" and len(v) == 0


@pytest.mark.parametrize("value,cls", [(True, dbus.Boolean), (5, dbus.Int32),
                                       (2 ** 40, dbus.Int64), (2 ** 63 + 1, dbus.UInt64),
                                       (1.5, dbus.Double), ("x", dbus.String)])
def test_scalar_types(value, cls) -> None:
    assert type(codec.wrap(value)) is cls


def test_lists_pick_an_element_type() -> None:
    assert codec.wrap([1, 2]).signature == "i"
    assert codec.wrap([1, 2 ** 40]).signature == "x"
    assert codec.wrap([1, 2.5]).signature == "d"
    assert codec.wrap(["a"]).signature == "s"


def test_unsendable_values_are_configuration_errors() -> None:
    with pytest.raises(ConfigurationError, match="64 bits"):
        codec.wrap(2 ** 70)
    with pytest.raises(ConfigurationError, match="set"):
        codec.wrap({1, 2})


def test_text_dbus_cannot_carry_is_refused_before_sending() -> None:
    with pytest.raises(ConfigurationError, match="NUL"):
        codec.wrap("a\x00b")
    with pytest.raises(ConfigurationError, match="Unicode"):
        codec.wrap(["\ud800"])
    with pytest.raises(ConfigurationError, match="keys"):
        codec.wrap({dbus.Byte(0xDA): 1})


def test_unwrap_gives_plain_python() -> None:
    assert codec.unwrap(dbus.Array([], signature="i")) is None
    assert codec.unwrap(dbus.Array([], signature="u")) is None   # any empty array reads invalid
    b = codec.unwrap(dbus.Boolean(True))
    assert b is True
    i = codec.unwrap(dbus.Int64(2 ** 40))
    assert type(i) is int and i == 2 ** 40
    d = codec.unwrap(dbus.Dictionary({"a": dbus.Double(1.0, variant_level=1)}, signature="sv"))
    assert d == {"a": 1.0} and type(d["a"]) is float and type(list(d)[0]) is str


SENDABLE_TEXT = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"))


@given(st.one_of(st.none(), st.booleans(), st.integers(-2 ** 63, 2 ** 63 - 1),
                 st.floats(allow_nan=False), SENDABLE_TEXT,
                 st.lists(st.integers(-2 ** 31, 2 ** 31 - 1), min_size=1),
                 st.lists(SENDABLE_TEXT, min_size=1)))
def test_round_trip(value) -> None:
    back = codec.unwrap(codec.wrap(value))
    assert back == value and type(back) is type(value)


def test_parse_items_handles_missing_text_and_value() -> None:
    payload = {"/A": {"Value": dbus.Int32(1, variant_level=1)}, "/B": {"Min": dbus.Int32(0)}}
    assert codec.parse_items(payload) == {"/A": (True, 1, None), "/B": (False, None, None)}
    with pytest.raises(ProtocolError):
        codec.parse_items([1, 2])


def test_paths_and_names_are_checked() -> None:
    with pytest.raises(ConfigurationError, match="/Ac/Power"):
        codec.check_path("Ac/Power")
    with pytest.raises(ConfigurationError, match="com.victronenergy"):
        codec.check_service_name("org.example.meter")
    assert codec.service_class("com.victronenergy.grid.x_di1") == "com.victronenergy.grid"


def test_default_text_follows_velib() -> None:
    assert codec.default_text("/ProductId", 0xB012) == "0xB012"
    assert codec.default_text("/X", None) == "---"


def test_coerce_int_refuses_fractions() -> None:
    assert codec.coerce(2.0, int) == 2
    with pytest.raises(ConfigurationError, match="2.7"):
        codec.coerce(2.7, int)


def test_missing_dbus_python_names_the_extra(monkeypatch) -> None:
    import sys
    from pyburnerkit.errors import BackendUnavailableError
    monkeypatch.setitem(sys.modules, "dbus", None)   # as if dbus-python were not installed
    with pytest.raises(BackendUnavailableError, match=r"pyburnerkit\[victron\]"):
        codec.wrap(1)
