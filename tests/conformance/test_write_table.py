"""Every device-changing operation of every family is in its family's write-safety table.

Each family's ``test_<family>_writes.py`` lists its device-changing operations in
``WRITE_OPERATIONS`` (and, where a family has them, safety stops that are never refused in
``ALWAYS_ALLOWED``) and proves, per row, the opt-in and the limits. This module keeps those
tables honest: it finds the public methods of every client class whose name says they change the
device, and the CLI subcommands that do, and fails on any that a table forgot. A new
device-changing method therefore cannot land without a write-safety test.
"""

from __future__ import annotations

import argparse
import importlib
import re
from typing import Dict, Iterator, List, Set, Tuple, Type

import pytest

from pyburnerkit._core.client import BaseClient
from pyburnerkit.cli.main import build_parser

from .stress import WriteOp

#: Method names that change a device (a set point, a mode, a program, a setting...).
DEVICE_CHANGING = re.compile(
    r"^(set|set_.*|write|write_.*|run|start|start_.*|stop|stop_.*|save|reset_.*|prime_.*|"
    r"assign_.*|resume|continue_.*|jump_.*|upload_.*|request_mode|sleep|wake|end_steam|"
    r"skip_to_next|tare|display|units|add|add_settings|remove|allocate_.*|timer_.*|"
    r"cancel_firmware_upload|mmr_write|call_method|dbus_call)$")

#: CLI words that change a device.
CLI_DEVICE_CHANGING = re.compile(
    r"^(set|set-.*|write|run|save|assign|start|stop|mode|upload|tare|shot|display|registers|"
    r"timer|firmware|profile|reset.*|prime)$")

#: family -> (writes module, [(class path, table prefix)]).
FAMILIES: Dict[str, Tuple[str, List[Tuple[str, str]]]] = {
    "afterburner": ("test_afterburner_writes",
                    [("pyburnerkit.afterburner:AfterburnerClient", "")]),
    "arbin": ("test_arbin_writes", [("pyburnerkit.arbin:CyclerClient", ""),
                                     ("pyburnerkit.arbin:ChannelClient", "")]),
    "mate3": ("test_mate3_writes", [("pyburnerkit.mate3:Mate3Client", "")]),
    "victron": ("test_victron_writes", [("pyburnerkit.victron:VictronMonitor", ""),
                                         ("pyburnerkit.victron.client:VictronSettings",
                                          "settings."),
                                         ("pyburnerkit.victron:VictronService", ""),
                                         ("pyburnerkit.victron.compat:VictronMonitor", ""),
                                         ("pyburnerkit.victron.compat:VictronSettings",
                                          "settings."),
                                         ("pyburnerkit.victron.compat.client:Monitor",
                                          "compat.Monitor."),
                                         ("pyburnerkit.victron.compat.client:Service",
                                          "compat.handler."),
                                         ("pyburnerkit.victron.compat.localsettings:"
                                          "SettingsService", "compat.handler.")]),
    "de1": ("test_de1_writes", [("pyburnerkit.de1:DE1Client", "")]),
    "scale": ("test_de1_writes", [("pyburnerkit.scale:SkaleClient", "")]),
}

#: Methods that match the pattern but change no device, with the reason.
NOT_DEVICE_CHANGING: Dict[str, str] = {
    "pyburnerkit.victron:VictronService.set":
        "a service publishing its own value changes nothing but itself",
}

#: CLI commands ("family subcommand...") whose words match the pattern but change no device,
#: with the reason.
NOT_DEVICE_CHANGING_CLI: Dict[str, str] = {
    "mate3 registers read": "one FC3 read request: it reads raw registers and writes none",
    "de1 profile store": "validates a profile file and stores it in the local SQLite profile "
                         "library; sends nothing to a DE1",
    "de1 profile list": "reads the local SQLite profile library; sends nothing to a DE1",
    "de1 visualizer upload": "POSTs a shot file to the Visualizer web service, not a device",
}


def _load(path: str) -> Type[object]:
    module, _, name = path.partition(":")
    return getattr(importlib.import_module(module), name)


def _table(module: str) -> List[WriteOp]:
    writes = importlib.import_module(f"{__package__}.{module}")
    return list(getattr(writes, "WRITE_OPERATIONS")) + list(getattr(writes, "ALWAYS_ALLOWED", []))


def _device_changing_methods(cls: Type[object]) -> Set[str]:
    base = set(dir(BaseClient))
    return {name for name in dir(cls)
            if not name.startswith("_") and name not in base and callable(getattr(cls, name, None))
            and DEVICE_CHANGING.match(name)}


def _cli_commands(group: str) -> Iterator[str]:
    """Every subcommand path of ``pyburnerkit <group>`` ("firmware upload", "set"...)."""
    parser = build_parser()
    top = _subparsers(parser)
    if group not in top:
        return
    yield from _walk(top[group], [])


def _subparsers(parser: argparse.ArgumentParser) -> Dict[str, argparse.ArgumentParser]:
    for action in parser._actions:  # argparse has no public way to list subcommands
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def _walk(parser: argparse.ArgumentParser, prefix: List[str]) -> Iterator[str]:
    children = _subparsers(parser)
    if not children:
        yield " ".join(prefix)
        return
    for name, child in children.items():
        yield from _walk(child, prefix + [name])


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_every_device_changing_method_is_in_the_write_table(family: str) -> None:
    module, classes = FAMILIES[family]
    listed = {op.name for op in _table(module) if op.kind == "library"}
    missing = []
    for path, prefix in classes:
        for name in sorted(_device_changing_methods(_load(path))):
            if prefix + name not in listed and f"{path}.{name}" not in NOT_DEVICE_CHANGING:
                missing.append(f"{path}.{name}")
    assert not missing, f"device-changing methods with no write-safety row: {missing}"


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_every_device_changing_cli_command_is_in_the_write_table(family: str) -> None:
    module, _ = FAMILIES[family]
    listed = [op.name.split() for op in _table(module) if op.kind == "cli"]
    missing = []
    for command in _cli_commands(family):
        words = command.split()
        if not any(CLI_DEVICE_CHANGING.match(word) for word in words):
            continue
        if f"{family} {command}" in NOT_DEVICE_CHANGING_CLI:
            continue
        if not any(row[:len(words)] == words for row in listed):
            missing.append(f"pyburnerkit {family} {command}")
    assert not missing, f"device-changing commands with no write-safety row: {missing}"


def test_the_exclusions_name_only_things_that_exist() -> None:
    # A stale exclusion would silently excuse a new command or method of the same name.
    for path in NOT_DEVICE_CHANGING:
        cls_path, _, name = path.rpartition(".")
        assert callable(getattr(_load(cls_path), name, None)), f"{path} names no method"
    for command in NOT_DEVICE_CHANGING_CLI:
        family, _, rest = command.partition(" ")
        assert rest in set(_cli_commands(family)), f"pyburnerkit {command} is no command"


def test_the_tables_name_only_things_that_exist() -> None:
    # A renamed method must not leave a stale row that tests nothing.
    names_by_module: Dict[str, Set[str]] = {}
    for module, classes in FAMILIES.values():
        names = names_by_module.setdefault(module, set())
        names.update(prefix + name for path, prefix in classes for name in dir(_load(path)))
    for module, names in names_by_module.items():
        for op in _table(module):
            if op.kind != "library" or "compat" in op.note:  # compat rows name another class
                continue
            assert op.name in names, f"{module}: table row {op.name!r} names no method"
