"""The one object pyburnerkit needs to find this family, named by the entry point in
``pyproject.toml``::

    [project.entry-points."pyburnerkit.families"]
    thermo = "pyburnerkit_thermo.family:FAMILY"

Every path is a string: the CLI loads this module on every start, so it imports nothing but
the registry. A layer imports the module behind a path only when it uses it.
"""

from __future__ import annotations

from pyburnerkit.families import Family

__all__ = ["FAMILY"]

FAMILY = Family(
    "thermo", "Acme TR-1 thermometer/relay box (TCP text protocol; a plug-in)",
    extra=None, manufacturer="Acme Instruments", requires=(),
    client="pyburnerkit_thermo.client:ThermoClient",
    simulator="pyburnerkit_thermo.sim:ThermoSim",
    cli="pyburnerkit_thermo.cli",
    cli_sim="pyburnerkit_thermo.cli:register_sim",
    cli_demo="pyburnerkit_thermo.cli:demo",
    recorder="pyburnerkit_thermo.recorder:ThermoSource",
    recorder_demo="pyburnerkit_thermo.recorder:demo_sources",
    fields="pyburnerkit_thermo.semantics:TABLE",
)
