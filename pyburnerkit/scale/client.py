"""The Skale II client: tare, display, units, a weight stream with flow and period estimation,
reconnect. Same threading model as every client: one I/O thread owns the pygatt adapter.

Timing model (spec 7.1): a weight is true ``sensor_lag_s`` before it arrives; the period
estimator is an exponential moving average of inter-arrival times (k = 1e-4, gaps of 0.5 s or
more ignored); the history resets on a tare seen and on a gap over 0.8 s; average flow =
(w[-1] - w[-11]) / (10 x period) timed at the mean of the 11 sample times; median weight over
11; median flow from the medians of the last 5 and of the 5 ending 10 samples earlier.
``time_scale`` (simulated seconds per real second) lets a sped-up simulator keep the model.
"""

from __future__ import annotations

import collections
import logging
import statistics
import time
from typing import Any, Deque, Optional, Tuple

from .._core.client import BaseClient
from .._core.pending import Pending
from .._core.timeouts import TimeoutArg
from ..ble.bench import MAX_SPEED, MIN_SPEED
from ..ble.endpoint import ble_link, parse_ble_endpoint
from ..ble.session import BleSession
from ..ble.transport import LinkDown, Transport
from ..errors import ConfigurationError, PyBurnerKitError, WriteNotAllowedError, check_range
from ..types import DEFAULT
from . import codec
from .models import ButtonPressed, ScaleInfo, TareSeen, WeightReading
from .sim import DEFAULT_SKALE_ADDRESS, SkaleSim

log = logging.getLogger(__name__)


_ASLEEP_STATES = frozenset({"SLEEP", "GOING_TO_SLEEP"})


def _asleep(machine_state: Any) -> bool:
    """Whether a DE1 machine state (an enum member, compared by name) means asleep."""
    return getattr(machine_state, "name", None) in _ASLEEP_STATES


class WeightProcessor:
    """Period estimation and flow from raw weight arrivals (pure; unit-testable)."""

    def __init__(self, *, sensor_lag_s: float = 0.38, nominal_period_s: float = 0.1,
                 k: float = 1e-4, time_scale: float = 1.0) -> None:
        self.scale = time_scale
        self.sensor_lag_s = sensor_lag_s / time_scale
        self.period_s = nominal_period_s / time_scale
        self.k = k
        self.history: Deque[Tuple[float, float]] = collections.deque(maxlen=16)
        self._last_arrival: Optional[float] = None
        self.tare_pending_until: Optional[float] = None
        self.tares_seen = 0

    def reset(self) -> None:
        self.history.clear()

    def add(self, weight: float, arrival: float) -> Tuple[WeightReading, bool]:
        """Returns the reading and whether a requested tare has now been seen."""
        last, self._last_arrival = self._last_arrival, arrival
        if last is not None:
            gap = arrival - last
            if gap < 0.5 / self.scale:
                self.period_s += self.k * (gap - self.period_s)
            if gap > 0.8 / self.scale:
                self.history.clear()
        tare_seen = False
        if self.tare_pending_until is not None:
            if abs(weight) < 0.05:
                tare_seen = True
                self.tare_pending_until = None
                self.history.clear()
            elif arrival > self.tare_pending_until:
                self.tare_pending_until = None
        t_w = arrival - self.sensor_lag_s
        self.history.append((t_w, weight))
        avg_flow = med_w = med_flow = None
        h = list(self.history)
        if len(h) >= 11:
            last11 = h[-11:]
            avg_flow = (last11[-1][1] - last11[0][1]) / (10 * self.period_s) / self.scale
            med_w = statistics.median(w for _, w in last11)
            med_flow = (statistics.median(w for _, w in h[-5:])
                        - statistics.median(w for _, w in h[-15:-10])) / (10 * self.period_s) \
                / self.scale if len(h) >= 15 else None
        return WeightReading(weight, arrival, t_w, avg_flow, med_w, med_flow,
                             self.period_s), tare_seen


class SkaleSession(BleSession):
    family = "scale"
    subscribe_uuids = (codec.BUTTON, codec.WEIGHT)  # the weight stream last

    def __init__(self, *, processor: WeightProcessor, button_tares: bool, **kw: Any) -> None:
        super().__init__(**kw)
        self.processor = processor
        self.button_tares = button_tares

    def begin_init(self) -> None:
        # pyDE1's connect sequence: grams, display on (0xED then 0xEC)
        for cmd in (codec.CMD_GRAMS, codec.CMD_DISPLAY_ON, codec.CMD_SHOW_WEIGHT):
            self.write(codec.COMMAND, codec.encode_command(cmd))
        info = ScaleInfo(self._text(codec.MODEL), self._text(codec.MANUFACTURER),
                         self._text(codec.FIRMWARE_REV), self._text(codec.HARDWARE_REV),
                         self._text(codec.SOFTWARE_REV),
                         battery=codec.decode_battery(self.read(codec.BATTERY))
                         if codec.BATTERY in self.handles else -1)
        self.cache.update((("info", info), ("display_on", True), ("grams", True)))
        self.processor.reset()
        self.established()

    def _text(self, uuid: str) -> str:
        if uuid not in self.handles:
            return ""
        return self.read(uuid).decode("utf-8", "replace").strip("\x00")

    def on_value(self, uuid: str, data: bytes) -> None:
        """A notification (I/O thread). An undecodable one raises :class:`ProtocolError`;
        the BLE session logs, counts and drops it."""
        if uuid == codec.WEIGHT:
            reading, tare_seen = self.processor.add(codec.decode_weight(data), time.monotonic())
            if tare_seen:
                self.processor.tares_seen += 1
                self.dispatcher.publish(TareSeen())
            self.cache.set("weight", reading)
            self.dispatcher.publish(reading)
        elif uuid == codec.BUTTON:
            button = codec.decode_button(data)
            self.dispatcher.publish(ButtonPressed(button))
            if button == 1 and self.button_tares:  # what both apps do with button 1
                self._button_tare()

    def _button_tare(self) -> None:
        try:
            self.write(codec.COMMAND, codec.encode_command(codec.CMD_TARE))
        except LinkDown:
            raise  # the session turns it into a reconnect
        except PyBurnerKitError as exc:  # not fatal: the next press tries again
            log.warning("scale %s: the button's tare was not acknowledged: %s", self.endpoint,
                        exc)
            return
        self.processor.tare_pending_until = time.monotonic() + 1.0 / self.processor.scale

    def op_command(self, cmd: int, request: Pending) -> None:
        self.write(codec.COMMAND, codec.encode_command(cmd))
        if cmd == codec.CMD_TARE:
            self.processor.tare_pending_until = time.monotonic() + 1.0 / self.processor.scale
        elif cmd in (codec.CMD_DISPLAY_ON, codec.CMD_DISPLAY_OFF):
            self.cache.set("display_on", cmd == codec.CMD_DISPLAY_ON)
        elif cmd in (codec.CMD_GRAMS, codec.CMD_OUNCES):
            self.cache.set("grams", cmd == codec.CMD_GRAMS)
        request.resolve(None)

    def op_timer(self, action: str, payload: bytes, request: Pending) -> None:
        self.write(codec.COMMAND, payload)
        # the Skale does not report its timer: the cache holds what this client last asked
        if action in ("start", "stop"):
            self.cache.set("timer_running", action == "start")
        request.resolve(None)


class SkaleClient(BaseClient[SkaleSession]):
    """An Atomax Skale II.

    >>> with SkaleClient("sim://", allow_writes=True) as scale:   # a simulated Skale
    ...     scale.tare()

    :param endpoint: the scale's Bluetooth address (``"CF:75:75:5E:A1:E5"``), or
        ``"sim://[?options]"`` for a simulated Skale run in process by this client
        (:class:`~pyburnerkit.scale.sim.SkaleSim`; options ``speed``, ``seed``, ``address``,
        ``sensor_lag_s``, ``period_s``, ``noise_g``; reach it with :attr:`simulator` after
        connecting). Other options as for :class:`~pyburnerkit.de1.client.DE1Client`
        (``backend``, ``hci_device``, ``serial_port``, ``reset_on_start``, ``send_delay``, and
        the expert hook ``transport``, not with ``sim://``).
    :param allow_writes: permit commands that change the scale (tare, display, units).
        Without it the client only reads; the connect sequence (grams, display on), which
        the weight stream relies on, is sent either way.
    :param sensor_lag_s: the load cell's delay (Skale: 0.38 s), 0..5 s.
    :param time_scale: simulated seconds per real second (a sped-up simulator); 1 for hardware.
        Default: 1, or a ``sim://`` simulator's ``speed``.
    :param silence_timeout: seconds without a weight report before the link counts as lost,
        0.1..3600 s; None disables it.
    :param button_tares: tare when button 1 is pressed, as de1app and pyDE1 do. Default: on
        when ``allow_writes`` is, off otherwise.
    :param timer_style: which timer command bytes :meth:`start_timer`, :meth:`stop_timer` and
        :meth:`reset_timer` send: ``"pyde1"`` (0xD1 start, 0xD2 stop, 0xD0 reset) or
        ``"de1app"`` (0xDD start, 0xD1 stop, 0xD0 reset); the two apps disagree (spec 7.1).
        Default: ``"pyde1"``, or a ``sim://`` simulator's ``timer_style``.
    :param options: ``timeout``, ``connect_timeout``, ``reconnect``, ``on_event``, ``trace``...
        as for every client.
    :raises ConfigurationError: a malformed endpoint, an unknown ``sim://`` option, or a value
        out of range. Nothing is connected before :meth:`connect`.
    :raises WriteNotAllowedError: ``button_tares=True`` without ``allow_writes=True``.
    """

    family = "scale"
    default_timeout = 5.0
    default_connect_timeout = 20.0

    def __init__(self, endpoint: str, *, backend: str = "gatttool", hci_device: str = "hci0",
                 serial_port: Optional[str] = None, reset_on_start: bool = False,
                 send_delay: Optional[float] = None, transport: Optional[Transport] = None,
                 allow_writes: bool = False, sensor_lag_s: float = 0.38,
                 time_scale: Optional[float] = None, silence_timeout: Optional[float] = 5.0,
                 button_tares: Optional[bool] = None, timer_style: Optional[str] = None,
                 **options: Any) -> None:
        where = parse_ble_endpoint(endpoint, what="Skale", sim_names=("scale", "skale"))
        check_range("sensor_lag_s", sensor_lag_s, 0, 5, "s")
        if silence_timeout is not None:
            silence_timeout = float(check_range("silence_timeout", silence_timeout, 0.1, 3600,
                                                "s"))
        link = ble_link(where, simulator=SkaleSim, default_address=DEFAULT_SKALE_ADDRESS,
                        own_simulator=self._own_simulator, transport=transport,
                        backend=backend, hci_device=hci_device, serial_port=serial_port,
                        reset_on_start=reset_on_start, send_delay=send_delay)
        self.address = link.address
        self._transport = link.transport
        label = link.label
        if time_scale is None:  # a simulated scale's weight model runs on the simulator's clock
            time_scale = float(link.sim_options.get("speed", 1.0))
        self.time_scale = float(check_range("time_scale", time_scale, MIN_SPEED, MAX_SPEED,
                                            "x real time"))
        if timer_style is None:  # a simulated Skale's own byte set, else pyDE1's
            timer_style = str(link.sim_options.get("timer_style", "pyde1"))
        self.timer_style = codec.check_timer_style(timer_style)
        if button_tares and not allow_writes:
            raise WriteNotAllowedError("button_tares=True tares the scale when its button is "
                                       "pressed: open the client with allow_writes=True",
                                       device=self.family, endpoint=label)
        self._processor = WeightProcessor(sensor_lag_s=sensor_lag_s, time_scale=self.time_scale)
        self.silence_timeout = silence_timeout
        self.allow_writes = bool(allow_writes)
        self.button_tares = self.allow_writes if button_tares is None else bool(button_tares)
        super().__init__(label, **options)

    @property
    def simulator(self) -> Optional[SkaleSim]:
        """The in-process simulator of a ``sim://`` client, once connected (None otherwise):
        ``client.simulator.skale`` is the simulated scale, ``client.simulator.bench`` its
        world; poke them with ``client.simulator.run(fn)`` (runs ``fn`` on the simulator's
        thread)."""
        sim: Optional[SkaleSim] = self._sim
        return sim

    def _make_session(self, **common: Any) -> SkaleSession:
        assert self.timeout is not None  # BaseClient validated it as a positive number
        return SkaleSession(transport=self._transport, address=self.address,
                            silence_timeout=self.silence_timeout,
                            op_timeout=min(self.timeout, 5.0), processor=self._processor,
                            button_tares=self.button_tares, **common)

    # ------------------------------------------------------------------ cache
    @property
    def protocol_errors(self) -> int:
        """How many notifications could not be decoded or handled (each was logged with the
        recent frames and dropped; the link carried on)."""
        session = self._session
        return 0 if session is None else getattr(session, "protocol_errors", 0)

    @property
    def reading(self) -> Optional[WeightReading]:
        """The latest weight report (with its flow estimates), or None."""
        reading: Optional[WeightReading] = self._cache.value("weight")
        return reading

    @property
    def weight(self) -> Optional[float]:
        r = self.reading
        return None if r is None else r.weight_g

    @property
    def info(self) -> Optional[ScaleInfo]:
        """Model, manufacturer, revisions and battery, read at connect."""
        info: Optional[ScaleInfo] = self._cache.value("info")
        return info

    @property
    def display_on(self) -> Optional[bool]:
        """Whether the display is on, as this client last set it (None before connecting)."""
        on: Optional[bool] = self._cache.value("display_on")
        return on

    @property
    def period_s(self) -> float:
        return self._processor.period_s * self.time_scale

    # ------------------------------------------------------------------ commands
    def _need_writes(self, what: str) -> None:
        if not self.allow_writes:
            raise WriteNotAllowedError(f"{what} changes the scale: open the client with "
                                       f"allow_writes=True", device=self.family,
                                       endpoint=self.endpoint)

    def _command(self, cmd: int, what: str, timeout: TimeoutArg) -> None:
        self._call(Pending(what, lambda s, r: s.op_command(cmd, r), is_write=True), timeout)

    def tare(self, *, wait: bool = True, timeout: TimeoutArg = DEFAULT) -> None:
        """Tare; blocks until the command was written and, with ``wait``, until the scale
        reports (near) zero. Needs ``allow_writes=True``.
        If this call times out, the device may still apply the write later; it is never
        retried automatically.

        :raises WriteNotAllowedError: the client was not opened with ``allow_writes=True``.
        :raises DeviceTimeoutError: no acknowledgement, or (``wait``) no zero in time.
        """
        self._need_writes("tare")
        before = self._processor.tares_seen
        self._command(codec.CMD_TARE, "tare", timeout)
        if wait:  # re-checked on every weight reading
            self.wait_for(lambda c: c._processor.tares_seen != before, timeout=timeout)

    def set_display(self, on: bool = True, timeout: TimeoutArg = DEFAULT) -> None:
        """Switch the display on (and show the weight) or off; blocks until written. Needs
        ``allow_writes=True``.
        If this call times out, the device may still apply the write later; it is never
        retried automatically.

        :raises WriteNotAllowedError: the client was not opened with ``allow_writes=True``.
        """
        self._need_writes("set_display")
        self._command(codec.CMD_DISPLAY_ON if on else codec.CMD_DISPLAY_OFF, "display", timeout)
        if on:
            self._command(codec.CMD_SHOW_WEIGHT, "show weight", timeout)

    def set_units(self, unit: str = "g", timeout: TimeoutArg = DEFAULT) -> None:
        """Show grams (``"g"``) or ounces (``"oz"``) on the scale; blocks until written. Needs
        ``allow_writes=True``.
        If this call times out, the device may still apply the write later; it is never
        retried automatically.

        :raises WriteNotAllowedError: the client was not opened with ``allow_writes=True``.
        :raises ConfigurationError: a unit other than g or oz.
        """
        self._need_writes("set_units")
        if unit not in ("g", "oz"):
            raise ConfigurationError(f"unit {unit!r}: expected 'g' or 'oz'")
        self._command(codec.CMD_GRAMS if unit == "g" else codec.CMD_OUNCES, "units", timeout)

    # ------------------------------------------------------------------ timer (spec 7.1)
    @property
    def timer_running(self) -> Optional[bool]:
        """Whether the Skale's timer runs, as this client last set it (the Skale does not
        report it); None before the first start or stop."""
        running: Optional[bool] = self._cache.value("timer_running")
        return running

    def _timer(self, action: str, timeout: TimeoutArg) -> None:
        self._need_writes(f"{action}_timer")
        payload = codec.encode_timer(action, self.timer_style)
        self._call(Pending(f"timer {action}", lambda s, r: s.op_timer(action, payload, r),
                           is_write=True), timeout)

    def start_timer(self, timeout: TimeoutArg = DEFAULT) -> None:
        """Start the Skale's timer; blocks until the command was written. Needs
        ``allow_writes=True``. The bytes sent follow ``timer_style``.
        If this call times out, the device may still apply the write later; it is never
        retried automatically.

        :raises WriteNotAllowedError: the client was not opened with ``allow_writes=True``.
        :raises DeviceTimeoutError: the write was not acknowledged within ``timeout``.
        """
        self._timer("start", timeout)

    def stop_timer(self, timeout: TimeoutArg = DEFAULT) -> None:
        """Stop the Skale's timer (it keeps showing the time); blocks until the command was
        written. Needs ``allow_writes=True``. The bytes sent follow ``timer_style``.
        If this call times out, the device may still apply the write later; it is never
        retried automatically.

        :raises WriteNotAllowedError: the client was not opened with ``allow_writes=True``.
        :raises DeviceTimeoutError: the write was not acknowledged within ``timeout``.
        """
        self._timer("stop", timeout)

    def reset_timer(self, timeout: TimeoutArg = DEFAULT) -> None:
        """Zero the Skale's timer (a running timer keeps counting from zero); blocks until the
        command was written. Needs ``allow_writes=True``. The bytes sent follow
        ``timer_style``.
        If this call times out, the device may still apply the write later; it is never
        retried automatically.

        :raises WriteNotAllowedError: the client was not opened with ``allow_writes=True``.
        :raises DeviceTimeoutError: the write was not acknowledged within ``timeout``.
        """
        self._timer("reset", timeout)

    #: pyDE1's names (its scales' ``timer_start``/``timer_stop``/``timer_reset``).
    timer_start = start_timer
    timer_stop = stop_timer
    timer_reset = reset_timer

    # ------------------------------------------------------------------ release / capture
    @property
    def released(self) -> bool:
        session = self._session
        return bool(session is not None and getattr(session, "released", False))

    def release(self) -> None:
        """Disconnect on purpose and stop reconnecting until :meth:`capture` (non-blocking).
        Commands made while released wait for the capture or their timeout."""
        session = self._require_session()
        session.call_soon_threadsafe(session.release)

    def capture(self) -> None:
        """Reconnect after :meth:`release` (non-blocking; ``wait_for(lambda c: c.connected)``)."""
        session = self._require_session()
        session.call_soon_threadsafe(session.capture)

    def follow(self, de1: Any) -> Any:
        """Release this scale while ``de1`` sleeps and capture it when the DE1 leaves Sleep,
        as pyDE1 does (spec section 10). Returns the subscription; ``cancel()`` it to stop.

        ``de1`` is duck-typed, as :class:`~pyburnerkit.de1.client.DE1Client` is shaped (the
        scale family does not import the de1 family): it needs ``subscribe(callback)`` and a
        ``state``; an event with ``state`` and ``substate`` is a machine-state change, and the
        states named ``SLEEP`` and ``GOING_TO_SLEEP`` mean asleep. Non-blocking: releases at
        once when ``de1`` is asleep already; later releases and captures are queued to this
        scale's I/O thread from ``de1``'s events thread.
        """

        def on_event(event: Any) -> None:
            # every event of de1 arrives here; only a machine-state change has a substate
            # (a connection change has a state but no substate)
            if not hasattr(event, "substate"):
                return
            asleep = _asleep(getattr(event, "state", None))
            try:
                # both run in order on the scale's I/O thread, a no-op when already there
                if asleep:
                    self.release()
                else:
                    self.capture()
            except Exception as exc:  # a closed scale: nothing to follow any more
                log.debug("scale follow: %s", exc)

        sub = de1.subscribe(on_event)
        if _asleep(getattr(de1, "state", None)):
            self.release()
        return sub

    def read_battery(self, timeout: TimeoutArg = DEFAULT) -> int:
        """Read the battery level (%) from the scale; blocks until it answered.

        :raises DeviceTimeoutError: no answer within ``timeout``.
        """
        level: int = self._call(Pending("battery", lambda s, r: r.resolve(
            codec.decode_battery(s.read(codec.BATTERY)))), timeout)
        return level
