"""pyburnerkit.mate3.compat: mate3's names on Mate3Client, against the simulator over real
Modbus TCP (the chinezbrun Mate3s: Radians on HUB ports 1 and 2, charge controllers on 3 and 4,
a FLEXnet DC on 5)."""

from __future__ import annotations

import pytest

from pyburnerkit.errors import ConfigurationError, WriteNotAllowedError
from pyburnerkit.mate3 import compat
from pyburnerkit.mate3.compat import (ChargeControllerConfigurationParser,
                                      ChargeControllerParser, Device, FlexnetDcParser,
                                      mate3_connection)

ABSORB = 40946  # charge_controllers[3].config.absorb_volts


def test_parsers_know_todays_and_mate3_04_field_names():
    new = ChargeControllerParser.temp_scale_factor
    old = ChargeControllerParser.temperature_scale_factor
    assert (new.start, new.path_name, old.path_name) == (old.start, "temp_scale_factor",
                                                        "temp_scale_factor")
    assert old.name == "temperature_scale_factor" and old.device is Device.charge_controller
    absorb = ChargeControllerConfigurationParser.absorb_volts
    assert (absorb.units, absorb.scale_factor, absorb.mode.value) == ("Volts",
                                                                     "voltage_scale_factor",
                                                                     "rw")
    assert compat.field_name(Device.radian_inverter_configuration, "rebulk_volts") == \
        "re_bulk_volts"
    with pytest.raises(AttributeError, match="has no field 'batery_voltage'.*battery_voltage"):
        FlexnetDcParser.batery_voltage  # noqa: B018 - the lookup is the test


@pytest.mark.parametrize("name, device", [
    ("charge_controller", Device.charge_controller),
    ("charge_controllers", Device.charge_controller),
    ("charge_controllers.config", Device.charge_controller_configuration),
    ("radian_inverter_configuration", Device.radian_inverter_configuration),
    ("fndc", Device.flexnet_dc), ("mate3.config", Device.outback_system_control)])
def test_device_names_of_every_mate3_version(name, device):
    assert compat.device_named(name) is device


def test_unknown_device_names_the_closest(name="charge_controler"):
    with pytest.raises(ConfigurationError, match="did you mean 'charge_controller'"):
        compat.device_named(name)


def test_blocks_values_and_device_blocks(sim):
    with mate3_connection(sim.host, sim.port, min_poll_interval=0) as client:
        blocks = list(client.all_blocks())
        assert [b.device for b in blocks][:3] == [Device.sunspec_common_model, Device.mate3,
                                                  Device.outback_system_control]
        ccs = list(client.get_device_blocks(Device.charge_controller))
        assert [b.port_number for b in ccs] == [3, 4]
        assert ccs[0].temperature_scale_factor == ccs[0].temp_scale_factor
        configs = list(client.get_device_blocks("charge_controller_configuration"))
        assert configs[0].absorb_volts == 588  # raw, as mate3 0.4 gave it
        assert list(client.get_device_blocks("charge_controller_configuration",
                                             raw=False))[0].absorb_volts == 58.8
        values = client.get_values(ChargeControllerParser.battery_voltage,
                                   ChargeControllerParser.battery_current)
        assert values[ChargeControllerParser.battery_voltage] == [507, 507]
        assert len(values[ChargeControllerParser.battery_current]) == 2
        one = client.get_values("charge_controller.battery_voltage", port=4, raw=False)
        assert one == {"charge_controller.battery_voltage": [50.7]}


def test_set_value_needs_the_write_opt_in(sim):
    with mate3_connection(sim.endpoint, min_poll_interval=0) as client:
        with pytest.raises(WriteNotAllowedError, match="allow_writes=True"):
            client.set_value(ChargeControllerConfigurationParser.absorb_volts, 576, port=3)
    assert sim.writes_received() == 0


def test_set_value_refuses_out_of_limit_raw_values_before_sending(sim):
    with mate3_connection(sim.endpoint, min_poll_interval=0, allow_writes=True) as client:
        # the README's example value: 330 raw = 33.0 V, far below a 48 V system's window
        with pytest.raises(ConfigurationError) as info:
            client.set_value(field=ChargeControllerConfigurationParser.absorb_volts,
                             value=330, port=3)
        text = str(info.value)
        assert "raw value 330" in text and "33.0 Volts" in text and "48..66 Volts" in text
        with pytest.raises(ConfigurationError, match="Multiple devices.*3, 4"):
            client.set_value(ChargeControllerConfigurationParser.absorb_volts, 576)
        with pytest.raises(ConfigurationError, match="No device of type .* hub port 7"):
            client.set_value(ChargeControllerConfigurationParser.absorb_volts, 576, port=7)
        with pytest.raises(ConfigurationError, match="raw whole number"):
            client.set_value(ChargeControllerConfigurationParser.absorb_volts, 57.6, port=3)
    assert sim.writes_received() == 0


def test_set_value_writes_raw_or_scaled_and_reads_back(sim):
    with mate3_connection(sim.endpoint, min_poll_interval=0, allow_writes=True) as client:
        back = client.set_value(ChargeControllerConfigurationParser.absorb_volts, 576, port=3)
        assert back == 576 and sim.registers[ABSORB] == 576
        back = client.set_value("charge_controller_configuration.absorb_volts", 57.2, port=3,
                                raw=False)
        assert back == 57.2 and sim.registers[ABSORB] == 572
        assert client.set_value("mate3.system_name", "cabin") == "cabin"
    assert sim.writes_received() == 3
