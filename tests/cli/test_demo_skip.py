"""``pyburnerkit demo`` runs every family whose extra works here and skips the others with one
line each naming the exact command that enables it.

A family's extra is made unavailable in a real subprocess, never by mocking in this process:
a PYTHONPATH folder shadows its dependency with a package that fails to import (a broken or
half-installed extra), or a ``sitecustomize`` hides it from the import system altogether (an
extra that is not installed).
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import List

ROOT = Path(__file__).resolve().parents[2]

#: family -> the module its extra provides and the extra's name
DEPENDENCY = {"afterburner": "websocket", "mate3": "pymodbus", "victron": "dbus",
              "de1": "pygatt"}


def broken(folder: Path, *modules: str) -> Path:
    """Packages named ``modules`` that raise ImportError when imported."""
    for module in modules:
        (folder / module).mkdir(parents=True)
        (folder / module / "__init__.py").write_text(
            f"raise ImportError('{module} is blocked by the test shim')\n")
    return folder


def hidden(folder: Path, *modules: str) -> Path:
    """A sitecustomize that makes ``modules`` look not installed (find_spec fails)."""
    folder.mkdir(parents=True)
    (folder / "sitecustomize.py").write_text(textwrap.dedent(f"""
        import sys

        class _Hide:
            names = {set(modules)!r}

            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in self.names:
                    raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
                return None

        sys.meta_path.insert(0, _Hide())
    """))
    return folder


def demo(shim: Path, tmp: Path, *args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(shim), str(ROOT)]),
               TMPDIR=str(tmp))
    return subprocess.run([sys.executable, "-m", "pyburnerkit", "demo", "--duration", "0.5",
                           *args], cwd=str(tmp), env=env, capture_output=True, text=True,
                          timeout=120)


def headers(out: str, family: str) -> List[str]:
    return [line for line in out.splitlines() if line.startswith(f"== {family} ==")]


def test_a_broken_extra_is_skipped_and_the_rest_runs(tmp_path: Path) -> None:
    done = demo(broken(tmp_path / "shim", "pymodbus"), tmp_path, "--only", "mate3",
                "--only", "arbin")
    assert done.returncode == 0, done.stderr
    assert headers(done.stdout, "mate3") == [
        "== mate3 == skipped: mate3 cannot import the Python module 'pymodbus' (ImportError: "
        'pymodbus is blocked by the test shim): pip install "pyburnerkit[mate3]"']
    assert headers(done.stdout, "arbin") == ["== arbin =="]
    assert "arbin: stopped" in done.stdout  # its demo ran to the end
    assert done.stdout.splitlines()[-1].endswith("(1 device families, all on simulators; "
                                                 "skipped: mate3)")
    assert "Traceback" not in done.stderr


def test_a_missing_extra_is_skipped_with_the_pip_command(tmp_path: Path) -> None:
    done = demo(hidden(tmp_path / "shim", "pymodbus"), tmp_path, "--only", "mate3",
                "--only", "arbin")
    assert done.returncode == 0, done.stderr
    assert headers(done.stdout, "mate3") == [
        "== mate3 == skipped: mate3 needs the Python module 'pymodbus': "
        'pip install "pyburnerkit[mate3]"']
    assert headers(done.stdout, "arbin") == ["== arbin =="]


def test_every_family_without_its_extra_gets_one_line(tmp_path: Path) -> None:
    done = demo(broken(tmp_path / "shim", *DEPENDENCY.values()), tmp_path)
    assert done.returncode == 0, done.stderr
    for family in DEPENDENCY:
        lines = headers(done.stdout, family)
        assert len(lines) == 1, done.stdout
        assert lines[0].endswith(f': pip install "pyburnerkit[{family}]"')
    assert headers(done.stdout, "arbin") == ["== arbin =="]  # needs nothing beyond the core
    assert "(1 device families" in done.stdout.splitlines()[-1]
    assert list(tmp_path.iterdir()) == [tmp_path / "shim"]  # the demo left no temp files
