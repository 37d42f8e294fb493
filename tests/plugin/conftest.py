"""The worked plug-in family (``examples/plugin_family``), really installed with pip.

It goes into a directory of its own (``pip install --target``), never into the shared virtual
environment: only the subprocesses these tests start, with that directory on ``PYTHONPATH``,
see it, so every other test runs with the built-in families alone. A failing install fails the
tests (it is never a skip): the example must stay installable.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Iterator, Sequence

import pytest

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "plugin_family"


@dataclass(frozen=True)
class Installed:
    """Where the example was installed (``site``), the copy it was built from (``source``),
    and a scratch directory the subprocesses run in (``home``)."""

    site: Path
    source: Path
    home: Path

    def env(self, *extra_paths: Path) -> Dict[str, str]:
        """The environment of a subprocess that sees the plug-in (and ``extra_paths``)."""
        env = dict(os.environ)
        env.pop("PYBURNERKIT_THERMO", None)
        env["PYTHONPATH"] = os.pathsep.join([*map(str, extra_paths), str(self.site), str(ROOT)])
        env["XDG_CACHE_HOME"] = str(self.home / "cache")  # the recorder's spool stays here
        return env

    def cli(self, *args: str, extra_paths: Sequence[Path] = (),
            timeout: float = 90) -> "subprocess.CompletedProcess[str]":
        """Run ``pyburnerkit ARGS`` to its end."""
        return subprocess.run([sys.executable, "-m", "pyburnerkit.cli.main", *args],
                              env=self.env(*extra_paths), cwd=str(self.home),
                              capture_output=True, text=True, timeout=timeout)

    def start(self, *args: str, stdout: int = subprocess.PIPE,
              stderr: int = subprocess.PIPE) -> "subprocess.Popen[str]":
        """Start ``pyburnerkit ARGS`` in the background (stop it with :func:`stop`)."""
        return subprocess.Popen([sys.executable, "-m", "pyburnerkit.cli.main", *args],
                                env=self.env(), cwd=str(self.home), stdout=stdout,
                                stderr=stderr, text=True)


def stop(proc: "subprocess.Popen[str]") -> int:
    """SIGTERM, as a service manager stops it; the exit code once it has cleaned up."""
    if proc.poll() is None:
        proc.terminate()
    try:
        return proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()


@pytest.fixture(scope="session")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Installed:
    work = tmp_path_factory.mktemp("plugin_family")
    # build from a copy: a build writes build/ and *.egg-info next to the sources
    source = work / "source"
    shutil.copytree(EXAMPLE, source, ignore=shutil.ignore_patterns(
        "build", "*.egg-info", "__pycache__", ".pytest_cache"))
    site = work / "site"
    home = work / "home"
    home.mkdir()
    done = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "--no-build-isolation",
         "--no-index", "--disable-pip-version-check", "--quiet", "--target", str(site),
         str(source)], capture_output=True, text=True, timeout=300)
    if done.returncode != 0:
        pytest.fail(f"pip could not install examples/plugin_family "
                    f"(exit {done.returncode}):\n{done.stdout}\n{done.stderr}", pytrace=False)
    return Installed(site, source, home)


@pytest.fixture
def sim(installed: Installed) -> Iterator[str]:
    """``pyburnerkit sim thermo`` on a free loopback port; yields the address it printed."""
    proc = installed.start("sim", "thermo", "--port", "0", "--speed", "60", "--seed", "1")
    try:
        assert proc.stdout is not None
        address = proc.stdout.readline().strip()  # the simulator prints it first, flushed
        if not address.startswith("thermo://127.0.0.1:"):
            proc.terminate()
            problem = proc.stderr.read() if proc.stderr else ""
            raise AssertionError(f"no address from 'sim thermo': {address!r}; {problem}")
        yield address
    finally:
        code = stop(proc)
    assert code == 0, f"'sim thermo' exited {code} on SIGTERM"
