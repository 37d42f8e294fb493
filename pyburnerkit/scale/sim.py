"""A simulated Skale II: weight following the cup on a :class:`~pyburnerkit.ble.bench.Bench`
(so it follows the flow of a simulated DE1 on the same bench,
:class:`pyburnerkit.rigs.espresso.DE1Rig`), reported with the sensor lag, tare, display, units
and buttons. :class:`SkaleSim` puts one on a rig of its own: what ``SkaleClient("sim://")``
runs in process."""

from __future__ import annotations

import random
from typing import Any, Callable, ClassVar, List, Mapping, Optional

from ..ble.bench import Bench
from ..ble.peripheral import (PROP_NOTIFY, PROP_READ, PROP_WRITE, GattCharacteristic,
                              Peripheral)
from ..ble.rig import SimRig
from . import codec

__all__ = ["DEFAULT_SKALE_ADDRESS", "SkalePeripheral", "SkaleSim"]

DEFAULT_SKALE_ADDRESS = "CF:75:75:5E:A1:E5"


class SkalePeripheral(Peripheral):
    def __init__(self, address: str = DEFAULT_SKALE_ADDRESS, *, bench: Optional[Bench] = None,
                 sensor_lag_s: float = 0.38, period_s: float = 0.1, noise_g: float = 0.0,
                 seed: Optional[int] = None, timer_style: str = "pyde1") -> None:
        super().__init__(address, "Skale")
        # which timer bytes this Skale obeys: the two apps disagree (spec 7.1, open point 4),
        # so a test can stand for either reading of the firmware
        self.timer_style = codec.check_timer_style(timer_style)
        self.timer_running = False
        self._timer_started_at = 0.0
        self._timer_accumulated_s = 0.0
        self.bench = bench or Bench()
        self.sensor_lag_s = sensor_lag_s
        self.period_s = period_s
        self.noise_g = noise_g
        self.rng = random.Random(seed)
        self.add_service(codec.SERVICE, [
            GattCharacteristic(codec.COMMAND, PROP_WRITE, b"\x00"),
            GattCharacteristic(codec.WEIGHT, PROP_NOTIFY, codec.encode_weight(0.0)),
            GattCharacteristic(codec.BUTTON, PROP_NOTIFY, b"\x00"),
            GattCharacteristic(codec.UNKNOWN_EF83, PROP_READ, b"\x00")])
        self.add_service(codec.BATTERY_SERVICE, [GattCharacteristic(codec.BATTERY, PROP_READ,
                                                                    bytes((57,)))])
        self.add_service(codec.INFO_SERVICE, [
            GattCharacteristic(codec.MODEL, PROP_READ, b"SkaleII"),
            GattCharacteristic(codec.FIRMWARE_REV, PROP_READ, b"1.0.2"),
            GattCharacteristic(codec.HARDWARE_REV, PROP_READ, b"2.0"),
            GattCharacteristic(codec.SOFTWARE_REV, PROP_READ, b"1.0.2"),
            GattCharacteristic(codec.MANUFACTURER, PROP_READ, b"ATOMAX INC.")])
        self.tare_offset = 0.0
        self.display_on = False
        self.grams = True
        self.commands: List[int] = []
        self._timer: Any = None
        self._stopped = False
        self._next_at = 0.0

    def start(self) -> None:
        self._next_at = self.bench.now()
        self._schedule()

    def stop(self) -> None:
        self._stopped = True
        if self._timer is not None:
            self._timer.cancel()

    def _schedule(self) -> None:
        if self._stopped:
            return
        self._next_at += self.period_s
        delay = self.bench.real_delay(self._next_at - self.bench.now())
        if delay < -1.0:
            self._next_at = self.bench.now()
            delay = 0.0
        self._timer = self.call_later(max(0.0, delay), self._tick)

    def gross_g(self) -> float:
        """What the load cell measured ``sensor_lag_s`` ago."""
        return self.bench.mass_at(self.bench.now() - self.sensor_lag_s)

    def reading(self) -> float:
        noise = self.rng.gauss(0.0, self.noise_g) if self.noise_g else 0.0
        return round(self.gross_g() - self.tare_offset + noise, 1)

    def _tick(self) -> None:
        if self.link is not None:
            w = self.reading()
            self.notify(codec.WEIGHT, codec.encode_weight(w, w))
        self._schedule()

    @property
    def timer_s(self) -> float:
        """What the Skale's timer shows, in simulated seconds (host thread)."""
        running = self.bench.now() - self._timer_started_at if self.timer_running else 0.0
        return self._timer_accumulated_s + running

    def _timer_command(self, action: str) -> None:
        now = self.bench.now()
        if action == "start" and not self.timer_running:
            self.timer_running = True
            self._timer_started_at = now
        elif action == "stop" and self.timer_running:
            self._timer_accumulated_s += now - self._timer_started_at
            self.timer_running = False
        elif action == "reset":
            # a reset zeroes the display; a running timer keeps counting from zero
            self._timer_accumulated_s = 0.0
            self._timer_started_at = now

    def press(self, button: int) -> None:
        """A finger on a button (host thread; use host.call_soon from others)."""
        self.notify(codec.BUTTON, bytes((button,)))

    def on_write(self, ch: GattCharacteristic, data: bytes, with_response: bool) -> None:
        if ch.uuid != codec.COMMAND or not data:
            return
        cmd = data[0]
        self.commands.append(cmd)
        if cmd == codec.CMD_TARE:
            self.tare_offset = self.gross_g()
        elif cmd in (codec.CMD_DISPLAY_ON, codec.CMD_SHOW_WEIGHT):
            self.display_on = True
        elif cmd == codec.CMD_DISPLAY_OFF:
            self.display_on = False
        elif cmd == codec.CMD_GRAMS:
            self.grams = True
        elif cmd == codec.CMD_OUNCES:
            self.grams = False
        else:
            action = codec.decode_timer(data, self.timer_style)
            if action:
                self._timer_command(action)


class SkaleSim(SimRig):
    """A simulated radio with one Skale II on its bench: what ``SkaleClient("sim://")`` runs
    in process (``start()`` also listens for the fake ``gatttool`` unless ``listen=False``).
    Put something on the scale with ``sim.run(lambda: setattr(sim.bench, "extra_g", 18.5))``.

    ``sim://`` options (``SkaleClient("sim://?speed=4&noise_g=0.1")``): ``speed``, ``seed``,
    ``address``, ``sensor_lag_s``, ``period_s``, ``noise_g``, ``timer_style`` (``pyde1``, the
    default, or ``de1app``: which timer command bytes the simulated Skale obeys).

    :raises ConfigurationError: ``speed`` out of range.
    """

    OPTIONS: ClassVar[Mapping[str, Callable[[str], Any]]] = {
        "speed": float, "seed": int, "address": str, "sensor_lag_s": float, "period_s": float,
        "noise_g": float, "timer_style": str}

    def __init__(self, *, speed: float = 1.0, address: str = DEFAULT_SKALE_ADDRESS,
                 seed: Optional[int] = None, **skale_options: Any) -> None:
        super().__init__(speed=speed, seed=seed)
        self.skale = self.add(SkalePeripheral(address, bench=self.bench, seed=seed,
                                              **skale_options))
