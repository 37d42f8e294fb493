"""A simulated radio with peripherals on one bench: what the BLE families' rigs build on.

:class:`SimRig` owns a :class:`~pyburnerkit.ble.bench.Bench` and a
:class:`~pyburnerkit.ble.simhost.BleSimHost`, hosts any peripherals added to it, starts and
stops their models on the host thread and closes the host. A family's rig (the DE1's
:class:`~pyburnerkit.de1.sim.DE1Rig`) subclasses it and adds its own device.

:func:`bench_peripheral` finds the simulated device of another BLE family by the family's
name, so one family's rig can put a partner on its bench (the DE1 rig's Skale) without
importing that family: families never import each other (ARCHITECTURE section 10).
"""

from __future__ import annotations

import importlib
from typing import Any, Callable, List, Optional, Protocol

from .bench import Bench
from .peripheral import Peripheral
from .simhost import BleSimHost

__all__ = ["SimRig", "bench_peripheral"]


class BenchPeripheralClass(Protocol):
    """A family's ``BENCH_PERIPHERAL``: a peripheral class built as
    ``cls(address=<the family's default>, *, bench=None, seed=None)``."""

    def __call__(self, address: str = ..., *, bench: Optional[Bench] = None,
                 seed: Optional[int] = None) -> Peripheral: ...


def bench_peripheral(family: str) -> BenchPeripheralClass:
    """The simulated peripheral class of the BLE family ``family``.

    Each BLE family's ``sim`` module names it ``BENCH_PERIPHERAL``; its constructor takes
    ``(address=<the family's default>, *, bench=None, seed=None)``. Imports
    ``pyburnerkit.<family>.sim`` (no I/O).

    :raises LookupError: the family has no simulator module or it names no peripheral.
    """
    try:
        module = importlib.import_module(f"pyburnerkit.{family}.sim")
    except ImportError as exc:
        raise LookupError(f"no simulated BLE family {family!r}") from exc
    cls = getattr(module, "BENCH_PERIPHERAL", None)
    if cls is None:
        raise LookupError(f"pyburnerkit.{family}.sim names no BENCH_PERIPHERAL")
    return cls


class SimRig:
    """A simulated radio and the bench its peripherals share.

    The constructor does no I/O; :meth:`start` listens on a TCP port (for the fake
    ``gatttool``) and starts the peripherals' models. Every peripheral method runs on the
    host thread: poke them with :meth:`run`.

    :param speed: simulated seconds per real second (for a new bench).
    :param seed: seeds the host's fault injection.
    :param bench: share an existing bench instead of making one.
    """

    def __init__(self, *, speed: float = 1.0, seed: Optional[int] = None,
                 bench: Optional[Bench] = None) -> None:
        self.bench = bench if bench is not None else Bench(speed)
        self.host = BleSimHost(seed=seed)
        self.peripherals: List[Peripheral] = []
        self._started = False

    def add(self, peripheral: Peripheral) -> Any:
        """Host ``peripheral`` (before :meth:`start`); returns it. Its model starts with the rig
        when it has a ``start()`` method and stops on :meth:`close` when it has ``stop()``."""
        self.host.add(peripheral)
        self.peripherals.append(peripheral)
        return peripheral

    def start(self, host: str = "127.0.0.1", port: int = 0) -> Any:
        """Listen on ``host:port`` (0 picks a free port) and start the models; returns self.
        Blocks until the models have started on the host thread (5 s at most)."""
        self.host.start(host, port)
        self.host.run_sync(self._start_models)
        self._started = True
        return self

    def _start_models(self) -> None:
        for p in self.peripherals:
            start = getattr(p, "start", None)
            if start is not None:
                start()

    def _stop_models(self) -> None:
        for p in self.peripherals:
            stop = getattr(p, "stop", None)
            if stop is not None:
                stop()

    def tool_dir(self, directory: str) -> str:
        """Write the fake ``gatttool``/``hcitool`` into ``directory`` (put it first on PATH)."""
        return self.host.tool_dir(directory)

    def run(self, fn: Callable[[], Any]) -> Any:
        """Run ``fn`` on the simulator thread (to poke the models safely); returns its result."""
        return self.host.run_sync(fn)

    def close(self) -> None:
        """Stop the models and close the host (idempotent; bounded by the host's close)."""
        if self._started:
            try:
                self.host.run_sync(self._stop_models)
            except Exception:  # a host already stopped: nothing left to stop
                pass
        self.host.close()

    def __enter__(self) -> Any:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.close()
