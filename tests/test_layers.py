"""The import graph's rules (ARCHITECTURE.md section 10): arrows point down only.

service/cli/recorder -> families.py, rigs -> family packages -> transports/ble -> _core ->
errors/types. Checked on the source with ``ast``, imports inside functions and under
TYPE_CHECKING included. A module named at run time (``importlib.import_module(name)``) cannot
be followed by ``ast``, so below the registry such calls may only name a fixed third-party
module: a lower room or a family that imported another family by a computed name would break
the rules unseen.
"""

from __future__ import annotations

import ast
import pathlib
from typing import Iterator, List, Optional, Set, Tuple

import pytest

PACKAGE = pathlib.Path(__file__).resolve().parent.parent / "pyburnerkit"
FAMILIES = ["afterburner", "arbin", "mate3", "victron", "de1", "scale"]
LOWER_ROOMS = ["_core", "transports", "ble", "types", "errors", "semantics", "driver",
               "plotting"]
#: Rooms above the family packages (they may import families; nothing below imports them).
UPPER_ROOMS = {"cli", "recorder", "families", "service", "rigs"}


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


@pytest.mark.parametrize("room", ["types", "errors", "semantics"])
def test_types_and_errors_import_nothing_above_them(room: str) -> None:
    assert _rooms_imported(room) <= {"errors"}, _rooms_imported(room)


@pytest.mark.parametrize("room", LOWER_ROOMS)
def test_lower_rooms_import_no_family_and_nothing_above(room: str) -> None:
    above = set(FAMILIES) | UPPER_ROOMS
    assert not _rooms_imported(room) & above, _rooms_imported(room) & above


@pytest.mark.parametrize("family", FAMILIES)
def test_a_family_never_imports_another_family_or_a_room_above(family: str) -> None:
    others = (set(FAMILIES) - {family}) | UPPER_ROOMS
    assert not _rooms_imported(family) & others, _rooms_imported(family) & others


def test_rigs_import_only_families_and_the_rooms_below_them() -> None:
    # a rig puts devices of several families on one bench: it sits beside families.py
    assert _room_files("rigs"), "no rigs room found"
    imported = _rooms_imported("rigs")
    assert imported & set(FAMILIES), imported  # else the rule below would pass vacuously
    allowed = set(FAMILIES) | set(LOWER_ROOMS)
    assert imported <= allowed, imported - allowed


#: Calls that import a module named by their first argument.
_DYNAMIC_IMPORTS = {"import_module", "__import__", "find_spec", "require"}
#: (file, function) pairs that forward a caller's name; their callers are checked instead.
_FORWARDERS = {("_core/extras.py", "require")}


def _calls_importing_by_name(source: str, relative: str) -> Iterator[Tuple[int, str,
                                                                          Optional[str]]]:
    """(line, call, fixed module name or None when computed) for every call in ``source``
    (the file ``relative`` to the package) that imports a module named by its argument."""
    tree = ast.parse(source, relative)
    skip = {id(node) for fn in ast.walk(tree) if isinstance(fn, ast.FunctionDef)
            and (relative, fn.name) in _FORWARDERS for node in ast.walk(fn)}
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call) or id(node) in skip:
            continue
        func = node.func
        name = func.attr if isinstance(func, ast.Attribute) else \
            func.id if isinstance(func, ast.Name) else None
        if name not in _DYNAMIC_IMPORTS:
            continue
        first = node.args[0] if node.args else None
        fixed = first.value if isinstance(first, ast.Constant) and \
            isinstance(first.value, str) else None
        yield node.lineno, name, fixed


def _dynamic_imports(room: str) -> Iterator[Tuple[str, int, str, Optional[str]]]:
    for path in _room_files(room):
        relative = path.relative_to(PACKAGE).as_posix()
        for line, call, fixed in _calls_importing_by_name(path.read_text(), relative):
            yield relative, line, call, fixed


def test_the_dynamic_import_scanner_sees_computed_names() -> None:
    # ble loads pygatt by a fixed name: seen, and accepted below
    assert ("pygatt" in {fixed for _, _, _, fixed in _dynamic_imports("ble")})
    source = ("import importlib\n"
              "def find(family):\n"
              "    return importlib.import_module(f'pyburnerkit.{family}.sim')\n"
              "mod = __import__('pyburnerkit.scale')\n")
    assert list(_calls_importing_by_name(source, "ble/x.py")) == [
        (4, "__import__", "pyburnerkit.scale"), (3, "import_module", None)]
    # the optional-dependency loader forwards its caller's name: its callers are checked
    assert not list(_dynamic_imports("_core"))


@pytest.mark.parametrize("room", LOWER_ROOMS + FAMILIES)
def test_no_room_below_the_registry_imports_a_module_by_a_computed_name(room: str) -> None:
    # ble once found the scale's simulator with import_module(f"pyburnerkit.{family}.sim"):
    # an upward (or sideways) dependency the ast rules above cannot see
    bad = [(f, line, call, fixed) for f, line, call, fixed in _dynamic_imports(room)
           if fixed is None or fixed.startswith(("pyburnerkit", "."))]
    assert not bad, bad
