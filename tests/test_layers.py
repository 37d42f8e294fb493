"""The import graph's rules (ARCHITECTURE.md section 10): arrows point down only.

service/cli/recorder -> families.py -> family packages -> transports/ble -> _core -> errors/types.
Checked on the source with ``ast``, imports inside functions and under TYPE_CHECKING included.
"""

from __future__ import annotations

import ast
import pathlib
from typing import Iterator, List, Set

import pytest

PACKAGE = pathlib.Path(__file__).resolve().parent.parent / "pyburnerkit"
FAMILIES = ["afterburner", "arbin", "mate3", "victron", "de1", "scale"]
LOWER_ROOMS = ["_core", "transports", "ble", "types", "errors"]


def _imports(path: pathlib.Path) -> Iterator[str]:
    """Absolute dotted names of everything ``path`` imports from pyburnerkit."""
    module = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if path.name == "__init__.py":
        module = module.rsplit(".", 1)[0] + "._"  # relative imports start at the package
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("pyburnerkit"):
                    yield alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".")[:-node.level]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.startswith("pyburnerkit"):
                if node.module is None or target.count(".") < 1:
                    yield from (f"{target}.{a.name}" for a in node.names)
                else:
                    yield target


def _room_files(room: str) -> List[pathlib.Path]:
    single = PACKAGE / f"{room}.py"
    return [single] if single.exists() else sorted((PACKAGE / room).rglob("*.py"))


def _rooms_imported(room: str) -> Set[str]:
    found = set()
    for path in _room_files(room):
        for name in _imports(path):
            parts = name.split(".")
            if len(parts) > 1 and parts[1] != room:
                found.add(parts[1])
    return found


def test_the_import_scanner_resolves_relative_imports() -> None:
    # _core/client.py says ``from ..types import ...``: the scanner must see pyburnerkit.types,
    # or every rule below would pass vacuously.
    assert "pyburnerkit.types" in set(_imports(PACKAGE / "_core" / "client.py"))
    assert "types" in _rooms_imported("_core")


@pytest.mark.parametrize("room", ["types", "errors"])
def test_types_and_errors_import_nothing_above_them(room: str) -> None:
    assert _rooms_imported(room) <= {"errors"}, _rooms_imported(room)


@pytest.mark.parametrize("room", LOWER_ROOMS)
def test_lower_rooms_import_no_family_and_nothing_above(room: str) -> None:
    above = set(FAMILIES) | {"cli", "recorder", "families", "service"}
    assert not _rooms_imported(room) & above, _rooms_imported(room) & above


@pytest.mark.parametrize("family", FAMILIES)
def test_a_family_never_imports_another_family_or_a_room_above(family: str) -> None:
    others = (set(FAMILIES) - {family}) | {"cli", "recorder", "families", "service"}
    assert not _rooms_imported(family) & others, _rooms_imported(family) & others
