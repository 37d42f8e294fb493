"""The pure register codec: tables, field types, sentinels, scale factors, encode errors."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pyburnerkit.errors import ConfigurationError, ProtocolError
from pyburnerkit.mate3 import codec
from pyburnerkit.mate3.models import EnumValue, FieldDef, FieldType, Flags, Mode


def fdef(ftype: FieldType, size: int = 1, *, sf: str = None, options=None, flags=None,
         units: str = "") -> FieldDef:
    return FieldDef(block_did=64111, name="x", start=9, size=size, type=ftype, mode=Mode.RW,
                    units=units, scale_factor_field=sf, options=options or {},
                    flags=flags or {})


# ------------------------------------------------------------------------------ tables
def test_tables_load_every_block_with_device_lengths():
    defs = codec.block_defs()
    assert set(defs) >= {1, 101, 102, 103, 64110, 64111, 64112, 64113, 64114, 64115, 64116,
                         64117, 64118, 64119, 64120, 64255, 65535}
    # 64120: the newer spreadsheet stops at 25; the device (and the older app note) says 27.
    assert defs[64120].defined_length == 27
    assert defs[64120].fields["set_ac_output_offline_freq"].scale_factor_field == \
        "dc_voltage_scale_factor"
    assert defs[64111].has_port and not defs[64110].has_port
    assert defs[64110].fields["write_password"].mode is Mode.W


def test_fields_do_not_overlap_and_scale_factors_exist():
    for did, bdef in codec.block_defs().items():
        taken = {}
        for f in bdef.fields.values():
            for offset in range(f.start, f.end + 1):
                assert offset not in taken, (did, f.name, taken.get(offset))
                taken[offset] = f.name
            if f.scale_factor_field:
                sf = bdef.fields[f.scale_factor_field]
                assert sf.size == 1 and sf.type in (FieldType.INT16, FieldType.UINT16)


def test_enum_and_flag_tables_attach_to_fields():
    cc = codec.block_defs()[64111].fields["charger_state"]
    assert cc.options[2] == "Bulk"
    flags = codec.block_defs()[64117].fields["sell_status"].flags
    assert flags and all(mask > 0 for mask in flags)


# ------------------------------------------------------------------------------ golden vectors
@pytest.mark.parametrize("ftype,size,regs,raw,implemented", [
    (FieldType.UINT16, 1, [0], 0, True),
    (FieldType.UINT16, 1, [0xFFFE], 0xFFFE, True),
    (FieldType.UINT16, 1, [0xFFFF], None, False),
    (FieldType.INT16, 1, [0xFFFF], -1, True),
    (FieldType.INT16, 1, [0x7FFF], 0x7FFF, True),
    (FieldType.INT16, 1, [0x8000], None, False),
    (FieldType.UINT32, 2, [0x0001, 0x0002], 0x00010002, True),
    (FieldType.UINT32, 2, [0xFFFF, 0xFFFF], None, False),
    (FieldType.IPV4, 2, [0xC0A8, 0x0096], "192.168.0.150", True),
    (FieldType.IPV4, 2, [0, 0], None, False),
    (FieldType.STRING, 2, [0x4D41, 0x5400], "MAT", True),
    (FieldType.STRING, 2, [0, 0], None, False),
    (FieldType.BITFIELD16, 1, [0x0050], 0x50, True),
    (FieldType.BITFIELD16, 1, [0xFFFF], None, False),
    (FieldType.BITFIELD32, 2, [0, 0x8001], 0x8001, True),
    (FieldType.BITFIELD32, 2, [0xFFFF, 0xFFFF], None, False),
])
def test_decode_raw_vectors(ftype, size, regs, raw, implemented):
    assert codec.decode_raw(fdef(ftype, size), regs) == (raw, implemented)


def test_marker_and_common_strings_from_the_dump():
    regs = codec.bundled_dump()
    assert (regs[40000], regs[40001]) == codec.SUNS_MARKER
    system = codec.build_system(codec.layout_from_registers(regs), regs, 0.0)
    assert system.common.manufacturer.value == "OutBack_Power"
    assert system.common.model.value == "MATE3S"
    assert system.common.serial_number.value == "MA1909F0100886"
    assert system.common.options.implemented is False  # all-zero string = not implemented


def test_enum_known_and_unknown_values():
    f = fdef(FieldType.ENUM_UINT16, options={0: "Off", 2: "Bulk"})
    raw, value, implemented, _ = codec.decode_field(f, [2])
    assert implemented and value == 2 and value.label == "Bulk" and value.known
    raw, value, implemented, _ = codec.decode_field(f, [12])
    assert implemented and value == 12 and value.label == "unknown (12)" and not value.known
    assert codec.decode_field(f, [0xFFFF])[2] is False
    neg = fdef(FieldType.ENUM_INT16, options={-1: "Disable", 1: "On"})
    assert codec.decode_field(neg, [0xFFFF])[1].label == "Disable"


def test_flags_keep_labels_and_unknown_bits():
    f = fdef(FieldType.BITFIELD16, flags={0x10: "a", 0x40: "b"})
    _, value, _, _ = codec.decode_field(f, [0x51])
    assert isinstance(value, Flags) and value == 0x51
    assert value.names == ("a", "b") and value.unknown_bits == 0x1


@pytest.mark.parametrize("raw,sf,expected", [(506, -1, 50.6), (200, -2, 2.0), (4, 0, 4),
                                              (3, 2, 300), (-5, -1, -0.5)])
def test_scaling(raw, sf, expected):
    f = fdef(FieldType.INT16, sf="sf")
    result = codec.decode_field(f, [raw & 0xFFFF], sf)[1]
    assert result == expected and type(result) is type(expected)


def test_unusable_scale_factor_keeps_raw_and_says_why():
    f = fdef(FieldType.UINT16, sf="volts_sf")
    raw, value, implemented, note = codec.decode_field(f, [100], 11)
    assert (raw, value, implemented) == (100, None, True) and "volts_sf" in note
    assert codec.decode_field(f, [100], None, sf_ok=False)[1] is None


def test_bad_register_input_is_a_protocol_error():
    with pytest.raises(ProtocolError):
        codec.decode_raw(fdef(FieldType.UINT32, 2), [1])
    with pytest.raises(ProtocolError):
        codec.decode_raw(fdef(FieldType.UINT16), [70000])


# ------------------------------------------------------------------------------ encode errors
def test_encode_scaled_number_checks_range_resolution_and_unit():
    f = fdef(FieldType.UINT16, sf="sf", units="Volts")
    assert codec.encode_field(f, 28.8, -1) == [288]
    with pytest.raises(ConfigurationError, match=r"x=-1 Volts is out of range.*0\.\.6553\.4 Volts"):
        codec.encode_field(f, -1, -1)
    with pytest.raises(ConfigurationError, match="resolution"):
        codec.encode_field(f, 28.85, -1)
    with pytest.raises(ConfigurationError, match="number"):
        codec.encode_field(f, "28", -1)
    with pytest.raises(ConfigurationError, match="scale factor"):
        codec.encode_field(f, 28.8, None)


def test_encode_enum_string_ipv4():
    e = fdef(FieldType.ENUM_UINT16, options={1: "Off", 2: "Auto"})
    assert codec.encode_field(e, "auto") == [2]
    assert codec.encode_field(e, EnumValue(1, "Off")) == [1]
    with pytest.raises(ConfigurationError, match="not one of its values: 1='Off', 2='Auto'"):
        codec.encode_field(e, 7)
    s = fdef(FieldType.STRING, 2)
    assert codec.encode_field(s, "ab") == [0x6162, 0]
    with pytest.raises(ConfigurationError, match="limit is 4 characters"):
        codec.encode_field(s, "abcde")
    with pytest.raises(ConfigurationError, match="ASCII"):
        codec.encode_field(s, "é")
    ip = fdef(FieldType.IPV4, 2)
    assert codec.encode_field(ip, "10.0.0.2") == [0x0A00, 0x0002]
    with pytest.raises(ConfigurationError, match="IPv4"):
        codec.encode_field(ip, "10.0.0.300")


def test_parse_value_never_evaluates():
    f = codec.block_defs()[64110].fields["system_name"]
    assert codec.parse_value(f, '"__import__(\'os\')"') == "__import__('os')"
    num = codec.block_defs()[64112].fields["absorb_volts"]
    assert codec.parse_value(num, "28.8") == 28.8
    with pytest.raises(ConfigurationError):
        codec.parse_value(num, "1+1")


# ------------------------------------------------------------------------------ properties
def _encodable(ftype: FieldType, size: int):
    if ftype is FieldType.STRING:
        return st.text(alphabet=st.characters(min_codepoint=1, max_codepoint=127),
                       min_size=1, max_size=2 * size).filter(lambda s: s.rstrip("\0") == s)
    if ftype is FieldType.IPV4:
        return st.integers(1, 0xFFFFFFFF).map(lambda n: str(__import__("ipaddress")
                                                             .IPv4Address(n)))
    low, high = codec._type_limits(ftype)
    return st.integers(low, high)


TYPE_SIZES = [(FieldType.UINT16, 1), (FieldType.INT16, 1), (FieldType.UINT32, 2),
              (FieldType.STRING, 4), (FieldType.BITFIELD16, 1), (FieldType.BITFIELD32, 2),
              (FieldType.IPV4, 2)]


@pytest.mark.parametrize("ftype,size", TYPE_SIZES)
@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_encode_then_decode_is_identity(ftype, size, data):
    f = fdef(ftype, size)
    value = data.draw(_encodable(ftype, size))
    regs = codec.encode_field(f, value)
    assert len(regs) == size and all(0 <= r <= 0xFFFF for r in regs)
    raw, decoded, implemented, _ = codec.decode_field(f, regs)
    assert implemented and decoded == value


@settings(max_examples=80, deadline=None)
@given(sf=st.integers(-4, 2), raw=st.integers(0, 0xFFFE))
def test_scaled_encode_then_decode_is_identity(sf, raw):
    f = fdef(FieldType.UINT16, sf="sf", units="V")
    value = codec.scale(raw, sf)
    assert codec.encode_field(f, value, sf) == [raw]
    assert codec.decode_field(f, [raw], sf)[1] == value


@settings(max_examples=60, deadline=None)
@given(value=st.sampled_from(sorted(codec.block_defs()[64117].fields["inverter_operating_mode"]
                                    .options)))
def test_enum_roundtrip_over_real_table(value):
    f = codec.block_defs()[64117].fields["inverter_operating_mode"]
    assert codec.decode_field(f, codec.encode_field(f, value))[1] == value


ALL_FIELDS = [f for b in codec.block_defs().values() for f in b.fields.values()]


@settings(max_examples=300, deadline=None)
@given(field=st.sampled_from(ALL_FIELDS), data=st.data())
def test_random_registers_only_ever_raise_protocol_error(field, data):
    regs = data.draw(st.lists(st.integers(-5, 0x1000F), min_size=0, max_size=field.size + 1))
    sf = data.draw(st.one_of(st.none(), st.integers(-20, 20)))
    try:
        codec.decode_field(field, regs, sf)
    except ProtocolError:
        pass


@settings(max_examples=150, deadline=None)
@given(data=st.dictionaries(st.integers(40000, 40040), st.integers(0, 0xFFFF), max_size=41))
def test_random_images_only_ever_raise_protocol_error(data):
    try:
        codec.layout_from_registers(data)
    except ProtocolError:
        pass


# ------------------------------------------------------------------------------ dumps, paths
def test_dump_parse_and_errors(tmp_path):
    path = tmp_path / "d.json"
    path.write_text('{"40000": 21365, "40001": 28243}')
    assert codec.load_dump(str(path)) == {40000: 21365, 40001: 28243}
    path.write_text('{"40000": 70000}')
    with pytest.raises(ConfigurationError, match="0..65535"):
        codec.load_dump(str(path))
    with pytest.raises(ConfigurationError, match="cannot read"):
        codec.load_dump(str(tmp_path / "missing.json"))


def test_split_path():
    assert codec.split_path("charge_controllers[3].config.absorb_volts") == \
        ("charge_controllers[3].config", "absorb_volts")
    assert codec.split_path("mate3.system_name") == ("mate3", "system_name")
    with pytest.raises(ConfigurationError, match="DEVICE"):
        codec.split_path("__import__('os')")


@settings(max_examples=40, deadline=None)
@given(value=st.sampled_from(sorted(codec.block_defs()[64110].fields["sched_3_ac_mode"].options)))
def test_enum_int16_roundtrip_over_real_table(value):
    f = codec.block_defs()[64110].fields["sched_3_ac_mode"]
    assert f.type is FieldType.ENUM_INT16
    regs = codec.encode_field(f, value)
    decoded = codec.decode_field(f, regs)[1]
    assert decoded == value and decoded.known


@settings(max_examples=150, deadline=None)
@given(chain=st.lists(st.integers(0, 0xFFFF), min_size=2, max_size=400),
       dids=st.lists(st.sampled_from(sorted(codec.block_defs())), min_size=1, max_size=6))
def test_random_chains_decode_or_raise_protocol_error(chain, dids):
    # A marker, then random registers with known DIDs sprinkled in as block headers.
    regs = {40000: codec.SUNS_MARKER[0], 40001: codec.SUNS_MARKER[1]}
    for offset, value in enumerate(chain):
        regs[40002 + offset] = value
    pos = 40002
    for did in dids:
        if pos + 1 not in regs:
            break
        regs[pos] = did
        regs[pos + 1] = min(regs[pos + 1] % 120, 400)
        pos += regs[pos + 1] + 2
    try:
        layout = codec.layout_from_registers(regs)
    except ProtocolError:
        return
    codec.build_system(layout, regs, 0.0)


def test_decode_block_without_its_length_register_is_a_protocol_error():
    # Found by the stress layer's fuzzing: a truncated image raised KeyError, not ProtocolError.
    with pytest.raises(ProtocolError, match="length register 40909 is missing"):
        codec.decode_block(64111, 40908, {40908: 64111}, 0.0)
