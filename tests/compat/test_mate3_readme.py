"""mate3's README (0.2-0.4: "Using the library", "Using the command line interface") ported
with one import change, run against the Mate3 simulator over real Modbus TCP.

The Python example is the README's, line for line, except the import (mate3's three imports
become one from ``pyburnerkit.mate3.compat``) and the host/port, which point at the simulator.
Its last statement writes; pyburnerkit refuses that without ``allow_writes=True``, and with
it refuses the README's value (330 raw = 33.0 V, below a 48 V system's absorb window) naming
the value, the limit and the unit, before anything is sent.
"""

from __future__ import annotations

import pytest

from pyburnerkit.cli.main import main
from pyburnerkit.errors import ConfigurationError, WriteNotAllowedError
from pyburnerkit.mate3.sim import Mate3Sim

# --- the one import change: ``from mate3 import mate3_connection``,
# ``from mate3.parsers import ...`` and ``from mate3.base_structures import Device`` become
from pyburnerkit.mate3.compat import (ChargeControllerConfigurationParser,  # noqa: E402
                                      ChargeControllerParser, Device, mate3_connection)


@pytest.fixture
def mate3_sim():
    sim = Mate3Sim(seed=3).start()
    try:
        yield sim
    finally:
        sim.close()


def readme_example(host, port, **connection_options):
    """The README's code block (connection options are this port's only addition)."""
    with mate3_connection(host, port, **connection_options) as client:
        # Get all blocks of fields from the Mate3s
        # and print each one out.
        all_blocks = client.all_blocks()
        for block in all_blocks:
            print(block)

        # Get all values for a specific device
        values = client.get_device_blocks(Device.charge_controller)
        print(list(values))

        # Or get specific fields
        values = client.get_values(
            ChargeControllerParser.battery_current,
            ChargeControllerParser.battery_voltage
        )
        # Prints a list of currents, one for each of your charge controllers
        print(values[ChargeControllerParser.battery_current])
        # Prints a list of voltages, one for each of your charge controllers
        print(values[ChargeControllerParser.battery_voltage])

        # Writing data
        # (BE CAREFUL! YOU COULD EASILY DAMAGE YOUR EQUIPMENT WITH THIS FEATURE!)
        client.set_value(
            field=ChargeControllerConfigurationParser.absorb_volts,
            value=330,
            port=3
        )


def test_readme_reads_then_its_write_needs_the_opt_in(capsys, mate3_sim):
    with pytest.raises(WriteNotAllowedError, match="allow_writes=True"):
        readme_example(mate3_sim.host, mate3_sim.port, min_poll_interval=0)
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("SunspecCommonModelBlock(device=<Device.sunspec_common_model")
    assert sum(line.startswith("ChargeControllerBlock(") for line in lines) == 2
    devices = lines[-3]
    assert devices.startswith("[ChargeControllerBlock(") and "port_number=4" in devices
    assert lines[-2:] == ["[79, 55]", "[507, 507]"]  # one value per charge controller (raw)
    assert mate3_sim.writes_received() == 0


def test_readme_write_is_checked_against_the_limit(capsys, mate3_sim):
    with pytest.raises(ConfigurationError) as info:
        readme_example(mate3_sim.host, mate3_sim.port, min_poll_interval=0,
                       allow_writes=True)
    assert "33.0 Volts" in str(info.value) and "48..66 Volts" in str(info.value)
    assert mate3_sim.writes_received() == 0
    # the same call with a value inside the window writes, as mate3 did
    with mate3_connection(mate3_sim.host, mate3_sim.port, min_poll_interval=0,
                          allow_writes=True) as client:
        client.set_value(field=ChargeControllerConfigurationParser.absorb_volts, value=576,
                         port=3)
    assert mate3_sim.registers[40946] == 576


def test_readme_cli_examples(capsys, mate3_sim):
    # "$ mate3 --host 192.168.0.123" -> pyburnerkit mate3 --host ...
    assert main(["mate3", "--host", mate3_sim.endpoint, "--min-poll-interval", "0"]) == 0
    assert "fndcs[5]: FLEXnetDCRealTime" in capsys.readouterr().out
    # "$ mate3_write -H 192.168.0.123 --list-fields" -> pyburnerkit mate3 write -H ...
    assert main(["mate3", "write", "-H", mate3_sim.endpoint, "--list-fields",
                 "--min-poll-interval", "0"]) == 0
    assert "radian_inverter_configuration.aux_control" in capsys.readouterr().out
    # "$ mate3_write -H ... --set radian_inverter_configuration.aux_control=2": this system
    # has two Radians, so mate3's --hub-port/-P says which (mate3 0.4 asked for it too)
    argv = ["mate3", "write", "-H", mate3_sim.endpoint, "--min-poll-interval", "0",
            "--set", "radian_inverter_configuration.aux_control=2"]
    assert main(argv) == 2  # writing needs --allow-writes (mate3 asked for nothing)
    assert "--allow-writes" in capsys.readouterr().err
    assert main(argv + ["--allow-writes"]) == 2
    assert "Multiple devices of type radian_inverter_configuration" in \
        capsys.readouterr().err
    assert mate3_sim.writes_received() == 0
    assert main(argv + ["-P", "1", "--allow-writes"]) == 0
    assert "single_phase_radian_inverters[1].config.aux_control = " in capsys.readouterr().out
    assert mate3_sim.writes_received() == 1
