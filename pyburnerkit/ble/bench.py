"""The physical world that simulated BLE devices share (used by the DE1 and scale simulators).

A :class:`Bench` is one simulated clock (``speed`` times real time) and one cup: the simulated
DE1 pours into the cup with :meth:`Bench.deposit`, the simulated scale weighs it with
:meth:`Bench.mass_at`. Neither simulator knows the other; they only share a bench.

Not thread-safe on its own: every simulated peripheral runs on its host's single thread
(:class:`~pyburnerkit.ble.simhost.BleSimHost`), and that is where a bench is used.
"""

from __future__ import annotations

import bisect
import time
from typing import Callable, List

from ..errors import check_range

__all__ = ["Bench", "MIN_SPEED", "MAX_SPEED"]

#: The simulated seconds per real second a bench runs at (and a client's ``time_scale`` that
#: follows it): slower than 1/100 or faster than 1000 times real time is not a useful model.
MIN_SPEED = 0.01
MAX_SPEED = 1000.0


class Bench:
    """The physical world shared by simulated devices: a sped-up clock and the cup.

    :param speed: simulated seconds per real second (``MIN_SPEED``..``MAX_SPEED``).
    :param clock: the real clock, seconds (``time.monotonic`` unless a test gives another).
    :raises ConfigurationError: (a ``ValueError``) ``speed`` out of range.
    """

    def __init__(self, speed: float = 1.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.speed = float(check_range("speed", speed, MIN_SPEED, MAX_SPEED, "x real time"))
        self._clock = clock
        self._t0 = clock()
        self._times: List[float] = [0.0]
        self._mass: List[float] = [0.0]
        self.extra_g = 0.0  # things put on the scale by hand (tests)

    def now(self) -> float:
        """Simulated seconds since the bench was set up."""
        return (self._clock() - self._t0) * self.speed

    def real_delay(self, sim_seconds: float) -> float:
        """Real seconds that ``sim_seconds`` of simulated time take."""
        return sim_seconds / self.speed

    def deposit(self, t: float, grams: float) -> None:
        """``grams`` land in the cup at simulated time ``t`` (times must not go backwards)."""
        if grams <= 0:
            return
        if t < self._times[-1]:
            t = self._times[-1]
        self._times.append(t)
        self._mass.append(self._mass[-1] + grams)
        # bound the history: a simulator left running for hours must not grow without limit
        if len(self._times) > 20000:
            del self._times[:10000]
            del self._mass[:10000]

    def mass_at(self, t: float) -> float:
        """Cup contents (g) at simulated time ``t``, interpolated between deposits."""
        i = bisect.bisect_right(self._times, t) - 1
        if i < 0:
            return self._mass[0] + self.extra_g
        if i + 1 < len(self._times):
            t0, t1 = self._times[i], self._times[i + 1]
            m0, m1 = self._mass[i], self._mass[i + 1]
            frac = 0.0 if t1 <= t0 else (t - t0) / (t1 - t0)
            return m0 + (m1 - m0) * frac + self.extra_g
        return self._mass[i] + self.extra_g

    def empty_cup(self) -> None:
        """Take the cup away: it holds 0 g from now on (``extra_g`` stays)."""
        t = self.now()
        self._times, self._mass = [t], [0.0]
