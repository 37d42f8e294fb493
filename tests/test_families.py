"""The family registry: built-ins, third-party families through a real entry point, broken
plug-ins, and the promise that importing the registry imports no family.

The plug-ins are real distributions: a package plus a ``*.dist-info`` directory with an
``entry_points.txt``, on a directory put on ``sys.path`` (``PYTHONPATH`` for the subprocesses),
which is all ``importlib.metadata`` needs; no pip install.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import pyburnerkit.families as registry
from pyburnerkit.errors import BackendUnavailableError, ConfigurationError

ROOT = Path(__file__).resolve().parent.parent

TOY_INIT = '''
from pyburnerkit.families import Family, SinkType

FAMILY = Family("toy", "toy counter from a plug-in", extra=None, manufacturer="Toy Works",
                client="toyfam:ToyClient", cli="toyfam.cli",
                cli_sim="toyfam.cli:register_sim", cli_demo="toyfam.cli:demo",
                recorder="toyfam.adapter:ToySource")
# installed only in name: its module is absent, as when an extra was not installed
NEEDY = Family("needy", "a family whose dependency is missing", extra="needy",
               requires=("toyfam_no_such_module",), cli_sim="toyfam.cli:register_needy_sim",
               cli_demo="toyfam.cli:demo")
# takes a built-in's name: must be refused, the built-in kept
DUPLICATE = Family("afterburner", "an impostor", cli="toyfam.cli")
NOT_A_FAMILY = "just a string"
SINK = SinkType("toylist", "toyfam.sink:ListSink")


class ToyClient:
    family = "toy"

    def __init__(self, url="sim://", **options):
        self.endpoint = url
        self.count = 0

    def read(self):
        self.count += 1
        return self.count
'''

TOY_ADAPTER = '''
from pyburnerkit.recorder.sources import Source


class ToySource(Source):
    kind = "poll"

    def __init__(self, client, *, device=None, interval=0.05, owns_client=False):
        super().__init__("toy", device or "toy-1", client=client, interval=interval,
                         owns_client=owns_client)

    @classmethod
    def from_config(cls, url, device, options):
        from toyfam import ToyClient
        return cls(ToyClient(url), device=device, owns_client=True)

    def poll(self):
        return [("", "count", self.client.read(), "")]
'''

TOY_CLI = '''
def register(subparsers):
    p = subparsers.add_parser("toy", help="toy counter from a plug-in")
    p.set_defaults(handler=lambda args: print("toy says hi") or 0)


def register_sim(subparsers):
    p = subparsers.add_parser("toy", help="toy simulator from a plug-in")
    p.set_defaults(handler=lambda args: print("toy simulator ran") or 0)


def register_needy_sim(subparsers):
    raise AssertionError("a family whose extra is missing must not register its simulator")


def demo(write, *, duration):
    write("toy: counted to 3")
'''

TOY_SINK = '''
from pyburnerkit.recorder import Sink


class ListSink(Sink):
    def __init__(self, name="toylist", **options):
        self.name = name
        self.options = options

    def write(self, items):
        pass
'''

TOY_ENTRY_POINTS = '''
[pyburnerkit.families]
toy = toyfam:FAMILY
needy = toyfam:NEEDY
dup = toyfam:DUPLICATE
notafamily = toyfam:NOT_A_FAMILY

[pyburnerkit.sinks]
toylist = toyfam:SINK
'''


def _dist(root: Path, name: str, entry_points: str) -> None:
    info = root / f"{name}-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(textwrap.dedent(entry_points))


@pytest.fixture
def plugins(tmp_path: Path) -> Path:
    """A directory holding two plug-in distributions: ``toyfam`` (a working family, a
    family with a missing dependency, a duplicate, a non-Family, a sink) and ``brokenfam``
    (a family whose module fails to import)."""
    root = tmp_path / "site"
    pkg = root / "toyfam"
    pkg.mkdir(parents=True)
    for name, text in (("__init__", TOY_INIT), ("adapter", TOY_ADAPTER), ("cli", TOY_CLI),
                       ("sink", TOY_SINK)):
        (pkg / f"{name}.py").write_text(textwrap.dedent(text))
    _dist(root, "toyfam", TOY_ENTRY_POINTS)
    (root / "brokenfam.py").write_text("raise ImportError('brokenfam needs libfoo')\n")
    _dist(root, "brokenfam", "[pyburnerkit.families]\nbroken = brokenfam:FAMILY\n")
    return root


@pytest.fixture
def on_path(plugins: Path, monkeypatch: pytest.MonkeyPatch):
    """The plug-ins importable in this process; the registry forgets them afterwards."""
    monkeypatch.syspath_prepend(str(plugins))
    registry.refresh()
    yield plugins
    for name in [m for m in sys.modules if m == "toyfam" or m.startswith("toyfam.")]:
        del sys.modules[name]
    registry.refresh()


def _run(plugins: Path, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(plugins), str(ROOT)]))
    return subprocess.run([sys.executable, *args], env=env, capture_output=True, text=True,
                          timeout=timeout, cwd=str(plugins))


def _cli(plugins: Path, *args: str) -> subprocess.CompletedProcess:
    return _run(plugins, "-m", "pyburnerkit.cli.main", *args)


# --------------------------------------------------------------------------------- built-ins
def test_the_builtins_are_registered_in_help_order():
    registry.refresh()
    names = [f.name for f in registry.families()]
    assert names == ["afterburner", "arbin", "mate3", "victron", "de1", "scale"]
    assert registry.get("mate3").manufacturer == "OutBack Power"
    assert registry.get("arbin").load("client").__name__ == "CyclerClient"
    assert registry.get("de1").load("recorder").__name__ == "DE1Source"
    assert [s.name for s in registry.sinks()] == ["sqlite", "postgres", "mqtt"]
    assert registry.problems() == []


def test_unknown_names_are_configuration_errors():
    with pytest.raises(ConfigurationError, match="unknown device family 'nope'.*afterburner"):
        registry.get("nope")
    with pytest.raises(ConfigurationError, match="unknown sink type 'nope'"):
        registry.get_sink("nope")
    with pytest.raises(ConfigurationError, match="family 'scale' has no cli_demo"):
        registry.get("scale").load("cli_demo")


def test_a_missing_extra_names_the_pip_command():
    family = registry.Family("ghost", extra="ghost", requires=("pyburnerkit_no_such_mod",))
    assert not registry.available(family)
    assert registry.missing(family) == ("ghost needs the Python module "
                                        "'pyburnerkit_no_such_mod': "
                                        'pip install "pyburnerkit[ghost]"')
    with pytest.raises(BackendUnavailableError, match=r'pip install "pyburnerkit\[ghost\]"'):
        registry.require(family)
    assert registry.available("afterburner") and registry.missing("afterburner") is None


def test_importing_the_registry_imports_no_family_and_no_extra():
    code = ("import sys, pyburnerkit.families as f; f.families(); f.sinks(); "
            "print(sorted(m for m in sys.modules if m.startswith('pyburnerkit.') "
            "or m.split('.')[0] in ('websocket', 'pymodbus', 'dbus', 'pygatt', 'paho', "
            "'psycopg', 'dotenv')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60, cwd=str(ROOT), env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert out.returncode == 0, out.stderr
    loaded = eval(out.stdout)  # a list literal printed by the child
    assert "pyburnerkit.families" in loaded
    families = ("afterburner", "arbin", "mate3", "victron", "de1", "scale", "cli", "recorder",
                "ble", "transports")
    assert [m for m in loaded if m.split(".")[1] in families] == []
    assert [m for m in loaded if not m.startswith("pyburnerkit.")] == []


# --------------------------------------------------------------------------------- plug-ins
def test_entry_points_add_families_and_refuse_broken_ones(on_path, caplog):
    with caplog.at_level(logging.ERROR, logger="pyburnerkit.families"):
        names = [f.name for f in registry.families()]
    assert names == ["afterburner", "arbin", "mate3", "victron", "de1", "scale", "needy", "toy"]
    assert registry.get("afterburner").title.startswith("Afterburner")  # not the impostor
    assert registry.get("toy").manufacturer == "Toy Works"
    assert registry.get("toy").load("client")().read() == 1
    assert not registry.available("needy")
    problems = [str(p) for p in registry.problems()]
    assert len(problems) == 3, problems
    assert any("'broken'" in p and "brokenfam needs libfoo" in p for p in problems)
    assert any("'dup'" in p and "'afterburner', which is already taken" in p
               for p in problems)
    assert any("'notafamily'" in p and "is a str, not a pyburnerkit Family" in p
               for p in problems)
    assert len([r for r in caplog.records if r.levelno == logging.ERROR]) == 3
    assert [s.name for s in registry.sinks()] == ["sqlite", "postgres", "mqtt", "toylist"]


def test_a_plugin_family_is_recorded(on_path, tmp_path):
    from pyburnerkit.recorder import Recorder, SQLiteSink
    from pyburnerkit.recorder.sinks.mqtt import _manufacturer
    from pyburnerkit.recorder.sources import families, open_source

    from tests.recorder.util import collect
    from toyfam import ToyClient

    assert "toy" in families()
    assert _manufacturer("toy") == "Toy Works"
    configured = open_source("toy", "sim://two", device="toy-2", interval=0.05)
    rec = Recorder([ToyClient(), configured], [SQLiteSink(str(tmp_path / "toy.db"))],
                   spool_dir=str(tmp_path / "spool"), progress_interval=None)
    got = collect(rec)
    with rec:
        rec.wait_for(lambda r: {s.device for s in got if s.field == "count"}
                     == {"toy-1", "toy-2"} and r.sink("sqlite").written >= 2, timeout=20)
    assert all(s.family == "toy" for s in got)
    assert type(configured).__name__ == "ToySource"


def test_a_plugin_sink_is_built_from_a_config(on_path, tmp_path):
    from pyburnerkit.recorder.config import parse_config
    cfg = parse_config({"sinks": [{"type": "toylist", "colour": "blue"}]},
                       base_dir=str(tmp_path))
    [sink] = cfg.build_sinks()
    assert type(sink).__name__ == "ListSink" and sink.options == {"colour": "blue"}
    with pytest.raises(ConfigurationError, match="must be one of mqtt, postgres, sqlite, "
                                                 "toylist"):
        parse_config({"sinks": [{"type": "nope"}]})


def test_the_cli_offers_a_plugin_family(plugins):
    out = _cli(plugins, "--help")
    assert out.returncode == 0, out.stderr
    assert "toy counter from a plug-in" in out.stdout
    assert "an impostor" not in out.stdout
    # each broken plug-in is named once on stderr; the other commands are all there
    assert out.stderr.count("brokenfam needs libfoo") == 1
    assert "mate3" in out.stdout and "record" in out.stdout
    ran = _cli(plugins, "toy")
    assert ran.returncode == 0 and ran.stdout.strip() == "toy says hi", ran.stderr


def test_sim_offers_a_plugin_family_and_names_a_missing_extra(plugins):
    out = _cli(plugins, "sim", "--help")
    assert out.returncode == 0, out.stderr
    assert "toy simulator from a plug-in" in out.stdout
    assert "victron" in out.stdout
    ran = _cli(plugins, "sim", "toy")
    assert ran.returncode == 0 and ran.stdout.strip() == "toy simulator ran", ran.stderr
    refused = _cli(plugins, "sim", "needy")
    assert refused.returncode == 3  # a missing extra (docs/cli.rst exit codes)
    assert 'pip install "pyburnerkit[needy]"' in refused.stderr


def test_demo_runs_a_plugin_family_and_skips_a_missing_one(plugins):
    out = _cli(plugins, "demo", "--only", "toy", "--only", "needy")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0].startswith('== needy == skipped: needy needs the Python module '
                               "'toyfam_no_such_module': pip install \"pyburnerkit[needy]\"")
    assert lines[1:3] == ["== toy ==", "toy: counted to 3"]
    assert "(1 device families" in lines[3]
