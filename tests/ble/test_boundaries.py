"""The BLE families' boundary: de1 and scale share only pyburnerkit.ble (Bench, uuid16, SimRig)
and never import each other, not even lazily inside a function or under TYPE_CHECKING; the rig
that puts both on one bench lives above them, in pyburnerkit.rigs."""

from __future__ import annotations

import ast
import pathlib
import threading
from typing import Iterator, List, Tuple

import pytest

import pyburnerkit
from pyburnerkit.ble.bench import Bench
from pyburnerkit.ble.peripheral import PROP_READ, GattCharacteristic, Peripheral
from pyburnerkit.ble.rig import SimRig, flag
from pyburnerkit.ble.uuids import uuid16

PACKAGE_ROOT = pathlib.Path(pyburnerkit.__file__).parent


def imported_modules(source: str, module: str) -> Iterator[Tuple[int, str]]:
    """(line, absolute module name) of every import in ``source``, at any depth: ast.walk
    visits function bodies, ``if TYPE_CHECKING:`` blocks and try/except alike. ``module`` is
    the dotted name of the file, used to resolve relative imports."""
    package = module.split(".")[:-1]  # a module's package; __init__ is named as its package
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            base = package[:len(package) - node.level + 1] if node.level else []
            target = ".".join(base + ([node.module] if node.module else []))
            if node.module:
                yield node.lineno, target
            else:  # "from .. import scale": each name may be a module
                for alias in node.names:
                    yield node.lineno, f"{target}.{alias.name}"


def imports_of_family(family: str, other: str) -> List[str]:
    found = []
    for path in sorted((PACKAGE_ROOT / family).rglob("*.py")):
        parts = list(path.relative_to(PACKAGE_ROOT.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1] + ["__init__"]  # so the package itself resolves "." correctly
        module = ".".join(parts)
        for line, name in imported_modules(path.read_text(encoding="utf-8"), module):
            if name == f"pyburnerkit.{other}" or name.startswith(f"pyburnerkit.{other}."):
                found.append(f"{path.relative_to(PACKAGE_ROOT.parent)}:{line} imports {name}")
    return found


def test_the_import_finder_sees_lazy_relative_and_type_checking_imports() -> None:
    source = '''
from typing import TYPE_CHECKING
from ..ble.bench import Bench
if TYPE_CHECKING:
    from ..de1.models import StateChanged
def follow(de1):
    from ..de1 import models
    import pyburnerkit.de1.sim
'''
    found = list(imported_modules(source, "pyburnerkit.scale.client"))
    assert found == [(2, "typing"), (3, "pyburnerkit.ble.bench"),
                     (5, "pyburnerkit.de1.models"),  # under TYPE_CHECKING
                     (7, "pyburnerkit.de1"), (8, "pyburnerkit.de1.sim")]  # inside a function
    assert list(imported_modules("from .. import de1, ble", "pyburnerkit.scale.sim")) == [
        (1, "pyburnerkit.de1"), (1, "pyburnerkit.ble")]
    # a package's __init__ resolves "." to the package itself
    assert [n for _, n in imported_modules("from .models import X", "pyburnerkit.de1.__init__")
            ] == ["pyburnerkit.de1.models"]


@pytest.mark.parametrize("family, other", [("de1", "scale"), ("scale", "de1")])
def test_de1_and_scale_never_import_each_other(family: str, other: str) -> None:
    assert list((PACKAGE_ROOT / family).rglob("*.py")), f"no sources found for {family}"
    assert imports_of_family(family, other) == []


def test_uuid16_is_the_sig_base_uuid_and_the_old_name_still_works() -> None:
    from pyburnerkit.de1 import codec as de1_codec
    from pyburnerkit.scale import codec as scale_codec

    assert uuid16(0x2A19) == "00002a19-0000-1000-8000-00805f9b34fb"
    assert uuid16(0xA00E) == "0000a00e-0000-1000-8000-00805f9b34fb"
    assert de1_codec.uuid16 is uuid16
    assert scale_codec.BATTERY == "00002a19-0000-1000-8000-00805f9b34fb"


class FakeClock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def test_bench_alone_clock_and_cup() -> None:
    clock = FakeClock()
    bench = Bench(4.0, clock=clock)
    assert bench.now() == 0.0
    clock.t += 2.5
    assert bench.now() == pytest.approx(10.0)  # 4 simulated seconds per real second
    assert bench.real_delay(2.0) == pytest.approx(0.5)

    assert bench.mass_at(5.0) == 0.0
    bench.deposit(10.0, 2.0)
    bench.deposit(12.0, 4.0)
    bench.deposit(12.5, 0.0)  # nothing landed: no point recorded
    assert bench.mass_at(-1.0) == 0.0
    assert bench.mass_at(10.0) == pytest.approx(2.0)
    assert bench.mass_at(11.0) == pytest.approx(4.0)  # interpolated between deposits
    assert bench.mass_at(50.0) == pytest.approx(6.0)
    bench.deposit(11.0, 1.0)  # a late deposit is booked at the last time, not in the past
    assert bench.mass_at(11.5) == pytest.approx(5.0)
    assert bench.mass_at(12.0) == pytest.approx(7.0)

    bench.extra_g = 0.5
    assert bench.mass_at(50.0) == pytest.approx(7.5)
    bench.empty_cup()
    assert bench.mass_at(bench.now()) == pytest.approx(0.5)

    with pytest.raises(ValueError, match="speed=0 x real time is out of range"):
        Bench(0)


def test_bench_keeps_a_bounded_history() -> None:
    bench = Bench(1.0, clock=FakeClock())
    for i in range(25000):
        bench.deposit(float(i), 1.0)
    assert bench.mass_at(30000.0) == pytest.approx(25000.0)
    assert bench.mass_at(24999.5) == pytest.approx(25000.0)
    assert len(bench._times) <= 20000


def test_the_old_bench_path_is_the_same_class() -> None:
    from pyburnerkit.de1.sim import Bench as de1_bench

    assert de1_bench is Bench


class Lamp(Peripheral):
    """A minimal peripheral with a model: records on which thread it starts and stops."""

    def __init__(self, bench: Bench) -> None:
        super().__init__("00:00:00:00:00:0A", "Lamp")
        self.bench = bench
        self.add_service(uuid16(0x1234), [GattCharacteristic(uuid16(0x1235), PROP_READ, b"1")])
        self.calls: List[Tuple[str, str]] = []

    def start(self) -> None:
        self.calls.append(("start", threading.current_thread().name))

    def stop(self) -> None:
        self.calls.append(("stop", threading.current_thread().name))


def test_sim_rig_runs_any_peripheral_on_its_bench() -> None:
    rig = SimRig(speed=3.0)
    lamp = rig.add(Lamp(rig.bench))
    assert rig.host.peripherals[lamp.address] is lamp
    with rig:
        host_thread = rig.run(lambda: threading.current_thread().name)
        assert host_thread != threading.current_thread().name
        assert lamp.calls == [("start", host_thread)]
        assert rig.host.port > 0  # listening for the fake gatttool
    assert lamp.calls == [("start", host_thread), ("stop", host_thread)]
    assert rig.bench.speed == 3.0


def test_the_espresso_rig_puts_each_familys_own_simulator_on_one_bench() -> None:
    from pyburnerkit.de1.sim import DE1Peripheral, DE1Sim
    from pyburnerkit.rigs.espresso import DE1Rig
    from pyburnerkit.scale.sim import DEFAULT_SKALE_ADDRESS, SkalePeripheral

    rig = DE1Rig(speed=2.0, skale_address="CF:00:00:00:00:01")
    plain = DE1Rig()
    alone = DE1Rig(with_scale=False)
    try:  # never started: closing still releases the host's sockets
        assert isinstance(rig, DE1Sim) and isinstance(rig.de1, DE1Peripheral)
        assert isinstance(rig.skale, SkalePeripheral)
        assert rig.skale.bench is rig.de1.bench is rig.bench  # the DE1 pours onto the scale
        assert rig.skale.address == "CF:00:00:00:00:01"
        assert plain.skale is not None and plain.skale.address == DEFAULT_SKALE_ADDRESS
        assert alone.skale is None and alone.peripherals == [alone.de1]
    finally:
        for r in (rig, plain, alone):
            r.close()


def test_sim_options_are_parsed_for_the_constructor() -> None:
    from pyburnerkit.errors import ConfigurationError
    from pyburnerkit.rigs.espresso import DE1Rig

    assert DE1Rig.parse_options({"speed": "4", "ghc_active": "yes", "with_scale": "0",
                                 "calibration_key": "0x1234"}) == {
        "speed": 4.0, "ghc_active": True, "with_scale": False, "calibration_key": 0x1234}
    with pytest.raises(ConfigurationError, match="unknown sim:// option 'colour'; known: "):
        DE1Rig.parse_options({"colour": "red"})
    with pytest.raises(ConfigurationError, match="sim:// option speed='fast' is not valid"):
        SimRig.parse_options({"speed": "fast"})
    with pytest.raises(ConfigurationError, match="speed=0.0 x real time is out of range"):
        SimRig.from_options({"speed": "0"})  # refused by the bench, before the host exists
    assert flag("On") and not flag("false")
    with pytest.raises(ValueError):
        flag("maybe")
