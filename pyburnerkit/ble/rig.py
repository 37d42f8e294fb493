"""A simulated radio with peripherals on one bench: what every BLE simulator is built on.

:class:`SimRig` owns a :class:`~pyburnerkit.ble.bench.Bench` and a
:class:`~pyburnerkit.ble.simhost.BleSimHost`, hosts any peripherals added to it, starts and
stops their models on the host thread and closes the host. A family's simulator
(:class:`~pyburnerkit.de1.sim.DE1Sim`, :class:`~pyburnerkit.scale.sim.SkaleSim`) subclasses it
and adds its own device; a rig that puts devices of several families on one bench lives above
the families, in :mod:`pyburnerkit.rigs`. This module knows no family.

A client reaches a rig's peripherals in process through :meth:`SimRig.transport` (what a
``sim://`` client does with its own rig), or through pygatt and the fake ``gatttool`` that
:meth:`SimRig.tool_dir` writes.
"""

from __future__ import annotations

from typing import (Any, Callable, ClassVar, Dict, List, Mapping, Optional, Type, TypeVar)

from ..errors import ConfigurationError, check_range
from .._core.endpoint import sim_options
from .bench import MAX_SPEED, MIN_SPEED, Bench
from .peripheral import Peripheral
from .simhost import BleSimHost
from .transport import SimTransport

__all__ = ["SimRig", "flag"]

_P = TypeVar("_P", bound=Peripheral)
_R = TypeVar("_R", bound="SimRig")


def flag(text: str) -> bool:
    """A ``sim://`` option meaning yes or no (``1``/``true``/``yes``/``on`` or the opposite).

    :raises ValueError: any other text.
    """
    value = text.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off", ""):
        return False
    raise ValueError(text)


class SimRig:
    """A simulated radio and the bench its peripherals share.

    The constructor does no I/O; :meth:`start` starts the host thread (and, unless
    ``listen=False``, a TCP port for the fake ``gatttool``) and the peripherals' models. Every
    peripheral method runs on the host thread: poke them with :meth:`run`.

    :param speed: simulated seconds per real second (for a new bench).
    :param seed: seeds the host's fault injection.
    :param bench: share an existing bench instead of making one.
    :raises ConfigurationError: ``speed`` outside what a bench accepts.
    """

    #: ``sim://`` options a subclass accepts: name -> converter from the option's text.
    OPTIONS: ClassVar[Mapping[str, Callable[[str], Any]]] = {"speed": float, "seed": int}

    def __init__(self, *, speed: float = 1.0, seed: Optional[int] = None,
                 bench: Optional[Bench] = None) -> None:
        self.bench = bench if bench is not None else Bench(speed)
        self.host = BleSimHost(seed=seed)
        self.peripherals: List[Peripheral] = []
        self._started = False
        self._closed = False

    @classmethod
    def parse_options(cls, options: Mapping[str, str]) -> Dict[str, Any]:
        """``sim://...?key=value`` options to constructor keywords (see :attr:`OPTIONS`).

        :raises ConfigurationError: an unknown option (the message lists the known ones), a
            value of the wrong kind, or a ``speed`` out of range.
        """
        def speed(value: float) -> float:  # refused now, not when a client first connects
            return float(check_range("speed", value, MIN_SPEED, MAX_SPEED, "x real time"))
        return sim_options(options, cls.OPTIONS, limits={"speed": speed})

    @classmethod
    def from_options(cls: Type[_R], options: Mapping[str, str]) -> _R:
        """A rig built from ``sim://`` options (not started).

        :raises ConfigurationError: see :meth:`parse_options`; or a value out of range.
        """
        return cls(**cls.parse_options(options))

    def add(self, peripheral: _P) -> _P:
        """Host ``peripheral`` (before :meth:`start`); returns it. Its model starts with the rig
        when it has a ``start()`` method and stops on :meth:`close` when it has ``stop()``."""
        self.host.add(peripheral)
        self.peripherals.append(peripheral)
        return peripheral

    def start(self: _R, host: str = "127.0.0.1", port: int = 0, *, listen: bool = True) -> _R:
        """Start the host thread and the models; returns self. With ``listen`` (the default)
        also listen on ``host:port`` (0 picks a free port) for the fake ``gatttool``; an
        in-process rig (``listen=False``) is reached only through :meth:`transport`.

        Blocks until the models have started on the host thread (5 s at most).

        :raises OSError: the port cannot be bound.
        """
        self.host.start(host, port, listen=listen)
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

    def transport(self) -> SimTransport:
        """A new in-process GATT link to this rig's peripherals, for a client's ``transport=``
        (each client needs its own). Does not block."""
        return SimTransport(self.host)

    def tool_dir(self, directory: str) -> str:
        """Write the fake ``gatttool``/``hcitool`` into ``directory`` (put it first on PATH)."""
        return self.host.tool_dir(directory)

    def run(self, fn: Callable[[], Any]) -> Any:
        """Run ``fn`` on the simulator thread (to poke the models safely); returns its result.

        Blocks until it ran (5 s at most).

        :raises TimeoutError: the host thread did not run it in time.
        """
        return self.host.run_sync(fn)

    def close(self, timeout: float = 5.0) -> None:
        """Stop the models and close the host: idempotent, bounded by ``timeout`` seconds
        (the host thread is joined; a warning is logged if it does not stop in time)."""
        if self._started:
            self._started = False
            try:
                self.host.run_sync(self._stop_models, timeout=max(0.1, timeout))
            except Exception:  # a host already stopped: nothing left to stop
                pass
            self.host.close(timeout)
        elif not self._closed:
            self.host.loop.close()  # never started: no thread, but the loop holds sockets
        self._closed = True

    def __enter__(self: _R) -> _R:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.close()
