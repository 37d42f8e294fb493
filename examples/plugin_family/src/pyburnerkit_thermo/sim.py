"""A simulated TR-1, built on pyburnerkit's simulator server and this family's codec.

It behaves as the box does, quirks included:

* the relay heats: the temperature moves towards ``heater_c`` while it is closed and back
  towards ``ambient_c`` while it is open (first order, time constant ``tau_s``);
* at ``limit_c`` the box opens the relay by itself (its over-temperature cut-out) and refuses
  ``SET RELAY 1`` with ``ERR 3`` until the temperature is below the limit again;
* ``SET LIMIT`` outside 0..60 °C is refused with ``ERR 2``; a value off the 0.5 °C grid is
  rounded to it silently (the client refuses such values before sending them).

The model is evaluated when a request arrives (no timer runs while nobody asks), on simulated
time: ``clock()`` seconds times ``speed``. Listen on TCP with ``start(host, port)`` (what
``pyburnerkit sim thermo`` does) or hand out in-process links with ``start(listen=False)``
(what a ``sim://`` client does).
"""

from __future__ import annotations

import math
import time
from typing import Any, Callable, Dict, List, Mapping, Optional, Tuple

from pyburnerkit.driver import SimConnection, SimServer, check_range
from pyburnerkit.errors import ConfigurationError, ProtocolError

from . import codec
from .models import LIMIT_MAX_C, LIMIT_MIN_C, LIMIT_STEP_C, DeviceInfo, ErrorCode, Status

__all__ = ["ThermoSim"]

#: (low, high, unit) of the simulator's numeric settings
_RANGES: Dict[str, Tuple[float, float, str]] = {
    "temperature_c": (-40.0, 100.0, "°C"), "limit_c": (LIMIT_MIN_C, LIMIT_MAX_C, "°C"),
    "ambient_c": (-40.0, 100.0, "°C"), "heater_c": (-40.0, 100.0, "°C"),
    "tau_s": (0.001, 1e6, "s"), "speed": (0.001, 1e6, "")}


class ThermoSim(SimServer):
    """The TR-1 simulator. Every public method is safe from any thread.

    :param temperature_c: the temperature at start.
    :param limit_c: the over-temperature cut-out at start.
    :param ambient_c: / :param heater_c: where the temperature settles with the relay open /
        closed.
    :param tau_s: the time constant of the room, in simulated seconds.
    :param speed: simulated seconds per real second (60: a minute passes every second).
    :param seed: seeds the humidity jitter, so that a run can be repeated.
    :param clock: the real-time clock (monotonic seconds), replaceable in tests.
    """

    name = "thermo"

    @staticmethod
    def parse_options(options: Mapping[str, str]) -> Dict[str, Any]:
        """The query of a ``sim://?temperature=20&limit=30&speed=60&seed=1`` endpoint as
        constructor arguments.

        Checked here, when the client is made, not when the simulator starts on its I/O thread.

        :raises ConfigurationError: an unknown option, or a value that is not a number or out
            of range.
        """
        names = {"temperature": "temperature_c", "limit": "limit_c", "speed": "speed",
                 "seed": "seed"}
        out: Dict[str, Any] = {}
        for key, text in options.items():
            name = names.get(key)
            if name is None:
                raise ConfigurationError(f"unknown sim:// option {key!r}; known: "
                                         f"{', '.join(sorted(names))}")
            try:
                value = int(text) if key == "seed" else float(text)
            except ValueError:
                raise ConfigurationError(f"sim:// option {key}={text!r} is not a number") \
                    from None
            if name in _RANGES:
                check_range(f"sim:// option {key}", value, *_RANGES[name])
            out[name] = value
        return out

    def __init__(self, *, temperature_c: float = 20.0, limit_c: float = 30.0,
                 ambient_c: float = 18.0, heater_c: float = 40.0, tau_s: float = 120.0,
                 speed: float = 1.0, serial: str = "0042", firmware: str = "1.3",
                 seed: Optional[int] = None, clock: Callable[[], float] = time.monotonic
                 ) -> None:
        values = {"temperature_c": temperature_c, "limit_c": limit_c, "ambient_c": ambient_c,
                  "heater_c": heater_c, "tau_s": tau_s, "speed": speed}
        for name, value in values.items():  # before the base opens its event loop
            check_range(name, value, *_RANGES[name])
        super().__init__(seed=seed, clock=clock)
        self._temperature = float(temperature_c)
        self._limit = float(limit_c)
        self.ambient_c = float(ambient_c)
        self.heater_c = float(heater_c)
        self.tau_s = float(tau_s)
        self.speed = float(speed)
        self.info = DeviceInfo("TR-1", serial, firmware)
        self._relay = False
        self._humidity = 45
        self._last = clock()

    # ------------------------------------------------------------------ any thread
    def snapshot(self) -> Status:
        """The box's state now (as ``READ`` would answer)."""
        status: Status = self.run_sync(self._status)
        return status

    def set_temperature(self, celsius: float) -> None:
        """Move the room to ``celsius`` at once (fault injection: a door opened, a sun ray)."""
        value = float(check_range("celsius", celsius, -40, 100, "°C"))

        def change() -> None:
            self._advance()
            self._temperature = value
            self._advance()  # a temperature at the limit trips the cut-out now
        self.run_sync(change)

    # ------------------------------------------------------------------ sim thread
    def on_connect(self, conn: SimConnection) -> None:
        conn.state = codec.LineReader()

    def on_data(self, conn: SimConnection, data: bytes) -> None:
        reader: codec.LineReader = conn.state
        try:
            lines = reader.feed(data)
        except ProtocolError:
            conn.send(codec.encode_refusal(ErrorCode.BAD_VALUE, "line too long"))
            return
        for line in lines:
            conn.send(self._answer(line))

    def _answer(self, line: str) -> bytes:
        try:
            request = codec.decode_request(line)
        except codec.RequestError as exc:
            return codec.encode_refusal(exc.code, exc.text)
        self.received.append(request)
        self._advance()
        if isinstance(request, codec.Identify):
            return codec.encode_info(self.info)
        if isinstance(request, codec.Read):
            return codec.encode_status(self._status())
        if isinstance(request, codec.SetRelay):
            if request.on and self._temperature >= self._limit:
                return codec.encode_refusal(ErrorCode.OVER_LIMIT, "over temperature limit")
            self._relay = request.on
            return codec.encode_ok()
        if not LIMIT_MIN_C <= request.celsius <= LIMIT_MAX_C:
            return codec.encode_refusal(ErrorCode.BAD_VALUE, "limit out of range 0..60")
        self._limit = round(request.celsius / LIMIT_STEP_C) * LIMIT_STEP_C
        self._advance()
        return codec.encode_ok()

    def _status(self) -> Status:
        self._advance()
        jitter = self.random.choice((-1, 0, 0, 1))
        self._humidity = int(min(100, max(0, round(
            55 - (self._temperature - self.ambient_c) * 1.2 + jitter))))
        return Status(round(self._temperature, 1), self._humidity, self._relay,
                      round(self._limit, 1))

    def _advance(self) -> None:
        """Bring the temperature up to now (closed form, so any request rate gives the same
        curve), opening the relay where it crosses the limit."""
        now = self.clock()
        left = (now - self._last) * self.speed
        self._last = now
        if self._relay and self._temperature >= self._limit:
            self._relay = False
        if self._relay and self.heater_c > self._limit:
            # time until the heating curve reaches the limit
            to_limit = self.tau_s * math.log((self.heater_c - self._temperature)
                                             / (self.heater_c - self._limit))
            if left >= to_limit:
                self._temperature = self._limit
                self._relay = False
                left -= to_limit
        target = self.heater_c if self._relay else self.ambient_c
        self._temperature = target + (self._temperature - target) * math.exp(-left / self.tau_s)

    @property
    def requests(self) -> List[codec.Request]:
        """The requests received so far, decoded, oldest first (for assertions)."""
        found: List[codec.Request] = self.run_sync(lambda: list(self.received))
        return found
