"""The release artefacts: an sdist and a wheel built from the committed files (a copy of what
``git ls-files`` lists, so nothing left lying in the work tree can hide a missing path), with
the metadata, licence and package data a user and a packager need, and no build warning."""

from __future__ import annotations

import email
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path
from typing import Iterator, List, Tuple

import pytest

import pyburnerkit

ROOT = Path(__file__).resolve().parents[1]


def _tracked() -> List[str]:
    done = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True,
                          check=True)
    return [p for p in done.stdout.decode().split("\0") if p and (ROOT / p).is_file()]


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Tuple[Path, Path, str]]:
    """(sdist, wheel, build output) of a copy of the committed tree."""
    src = tmp_path_factory.mktemp("src")
    for rel in _tracked():
        dest = src / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / rel, dest)
    out = tmp_path_factory.mktemp("dist")
    # no isolation: the test environment's setuptools (>= 77, the test extra) builds it, so
    # the test needs no network
    done = subprocess.run([sys.executable, "-m", "build", "--no-isolation", "--outdir",
                           str(out), str(src)], capture_output=True, text=True, timeout=300)
    log = done.stdout + done.stderr
    assert done.returncode == 0, log[-3000:]
    sdists, wheels = list(out.glob("*.tar.gz")), list(out.glob("*.whl"))
    assert len(sdists) == 1 and len(wheels) == 1, sorted(p.name for p in out.iterdir())
    yield sdists[0], wheels[0], log


def test_the_build_warns_about_nothing(built: Tuple[Path, Path, str]) -> None:
    log = built[2]
    problems = [line for line in log.splitlines()
                if ("warning" in line.lower() or "deprecat" in line.lower())
                and "byte-compiling is disabled" not in line
                and "no previously-included files" not in line]
    assert problems == []


def test_the_wheel_has_the_package_its_data_and_the_licence(built: Tuple[Path, Path, str]
                                                            ) -> None:
    wheel = zipfile.ZipFile(built[1])
    names = set(wheel.namelist())
    version = pyburnerkit.__version__
    info = f"pyburnerkit-{version}.dist-info"
    assert f"{info}/licenses/LICENSE" in names
    assert {"pyburnerkit/py.typed", "pyburnerkit/__main__.py",
            "pyburnerkit/mate3/data/mate3_block_fields.csv",
            "pyburnerkit/mate3/data/mate3_write_limits.csv"} <= names
    packaged = {n for n in names if n.endswith(".py")}
    shipped = {p for p in _tracked() if p.startswith("pyburnerkit/") and p.endswith(".py")}
    assert shipped == packaged, (shipped ^ packaged)
    assert not any(n.startswith(("tests/", "docs/", "examples/")) for n in names)
    meta = email.message_from_bytes(wheel.read(f"{info}/METADATA"))
    assert meta["Version"] == version
    assert meta["License-Expression"] == "MIT" and meta["License"] is None
    classifiers = meta.get_all("Classifier") or []
    assert "Programming Language :: Python :: 3.13" in classifiers
    assert not any(c.startswith("License ::") for c in classifiers)  # deprecated by PEP 639
    requires = meta.get_all("Requires-Dist") or []
    assert any(r.startswith("python-dotenv") for r in requires)


def test_the_sdist_has_tests_docs_examples_and_the_licence(built: Tuple[Path, Path, str]
                                                           ) -> None:
    with tarfile.open(built[0]) as sdist:
        names = {n.split("/", 1)[1] for n in sdist.getnames() if "/" in n}
    wanted = {p for p in _tracked()
              if p.split("/", 1)[0] in ("pyburnerkit", "tests", "docs", "examples",
                                        "benchmarks", "tools", "contrib")
              and "__pycache__" not in p and not p.endswith(".pyc")}
    wanted |= {"LICENSE", "README.rst", "setup.cfg", "setup.py", "pyproject.toml"}
    assert wanted - names == set()


def test_python_dash_m_runs_the_command_line() -> None:
    done = subprocess.run([sys.executable, "-m", "pyburnerkit", "--version"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert pyburnerkit.__version__ in done.stdout
