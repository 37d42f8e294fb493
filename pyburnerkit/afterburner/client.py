"""The blocking Afterburner client and the session that speaks the WebSocket JSON protocol.

The controller sends no acknowledgements, so every setter confirms itself: it sends the value
together with ``{"SQuery":1}``. The firmware handles keys in order and, on its next update,
sends changed keys group by group with the system group last; the system-info frame that
answers our query is therefore a *barrier*: by the time it arrives, the pushed state shows
whether the value was taken (it changed, or already had that value) or ignored.
"""

from __future__ import annotations

import collections
import datetime as _dt
import logging
import socket
import time
from typing import Any, Callable, Deque, Dict, List, Mapping, Optional, Tuple
from urllib.parse import parse_qs, urlsplit

from .._core.client import BaseClient
from .._core.extras import require
from .._core.net import connect_tcp, shutdown_socket
from .._core.pending import Pending
from .._core.session import Session
from .._core.timeouts import DEFAULT, Deadline, TimeoutArg
from ..errors import (ConfigurationError, DeviceConnectionError, DeviceError, ProtocolError,
                      UnsupportedFeatureError, WriteNotAllowedError)
from . import codec
from .models import (DemandMode, HeaterStatus, RunState, StartRefused, StatusChanged,
                     SystemInfo, SystemInfoChanged, ThermostatMethod, Timer, TimerChanged)

log = logging.getLogger(__name__)

DEFAULT_PORT = 81
#: Frames that identify the two groups a complete state needs.
MAIN_GROUP_KEY = "RunState"
EXTENDED_GROUP_KEY = "ThermostatMethod"
#: Keys whose changes the firmware holds back for a while (seconds): no barrier for them.
HELD_BACK_KEYS = {"PumpCount": 10.0}
#: Consecutive undecodable frames after which the link is considered broken.
MAX_BAD_FRAMES = 5


def parse_endpoint(url: str) -> Tuple[str, str, int, str, Dict[str, str]]:
    """``host``, ``host:port``, ``ws://host[:port][/path]`` or ``sim://[?opts]``.

    :returns: (scheme, host, port, path, options)
    :raises ConfigurationError: for anything else.
    """
    if not isinstance(url, str) or not url.strip():
        raise ConfigurationError(f"expected a host, host:port, ws:// or sim:// URL, got {url!r}")
    text = url.strip()
    if "://" not in text:
        text = "ws://" + text
    parts = urlsplit(text)
    options = {k: v[-1] for k, v in parse_qs(parts.query).items()}
    if parts.scheme == "sim":
        return "sim", "in-process", 0, "/", options
    if parts.scheme not in ("ws", "wss"):
        raise ConfigurationError(
            f"unsupported URL scheme {parts.scheme!r} in {url!r}: use ws:// or sim://")
    if parts.scheme == "wss":
        raise ConfigurationError(
            "wss:// is not supported: the released firmware serves plain ws:// only")
    if not parts.hostname:
        raise ConfigurationError(f"no host in {url!r}")
    try:
        port = parts.port or DEFAULT_PORT
    except ValueError as exc:
        raise ConfigurationError(f"bad port in {url!r}: {exc}") from exc
    return "ws", parts.hostname, port, parts.path or "/", options


# ----------------------------------------------------------------------------------- requests
class Exchange:
    """One command sent to the controller and how its effect is recognised."""

    def __init__(self, frame: Dict[str, Any], *, expect: Optional[Dict[str, Any]] = None,
                 barrier: bool = True,
                 settle: Optional[Callable[["AfterburnerSession"], Any]] = None) -> None:
        self.frame = frame
        self.expect = dict(expect or {})
        self.barrier = barrier
        self.settle = settle
        self.barrier_passed = not barrier
        self.reprobed = False
        self.start_reason: Optional[str] = None


class AfterburnerSession(Session):
    family = "afterburner"

    def __init__(self, *, url: str, sim_factory: Optional[Callable[[], Any]],
                 liveness_interval: float, liveness_timeout: float, refresh_grace: float,
                 **common: Any) -> None:
        super().__init__(**common)
        self._websocket = require("websocket", "afterburner")
        self.url = url
        self.sim_factory = sim_factory
        self.liveness_interval = liveness_interval
        self.liveness_timeout = liveness_timeout
        self.refresh_grace = refresh_grace
        self.keys: Dict[str, Any] = {}
        self.system_keys: Dict[str, Any] = {}
        self.timers: Dict[int, Timer] = {i: Timer(i) for i in range(1, codec.TIMER_COUNT + 1)}
        self.ws: Any = None
        self._sock: Optional[socket.socket] = None
        self._fd = -1
        self._have_main = self._have_extended = self._have_system = False
        self._link_up = False
        self._bad_frames = 0
        self._last_rx = 0.0
        self._liveness_timer: Any = None
        self._probe_timer: Any = None
        self._refresh_timer: Any = None
        self._probes: Deque[Optional[Pending]] = collections.deque()
        self._active: List[Pending] = []

    # ------------------------------------------------------------------ transport
    def open_transport(self, deadline: Deadline) -> None:
        scheme, host, port, path, _ = parse_endpoint(self.url)
        if self.sim_factory is not None:
            sock = self.sim_factory().attach()
            ws_url = "ws://afterburner.sim/"
        else:
            sock = connect_tcp(self.loop, host, port, deadline, on_socket=self._remember)
            ws_url = f"ws://{host}:{port}{path}"
        self._sock = sock
        ws = self._websocket.WebSocket(enable_multithread=False, skip_utf8_validation=True)
        sock.settimeout(deadline.remaining())
        try:
            # No ping: the firmware never answers one, and a ping payload can desync its reader.
            ws.connect(ws_url, socket=sock, timeout=deadline.remaining())
        except self._websocket.WebSocketException as exc:
            sock.close()
            raise DeviceConnectionError(f"WebSocket hand-shake failed: {exc}",
                                        device=self.family, endpoint=self.endpoint) from exc
        except OSError:
            sock.close()
            raise
        # A frame that starts arriving must finish within this; it never blocks longer.
        sock.settimeout(max(1.0, self.liveness_timeout))
        self.ws = ws
        self._have_main = self._have_extended = self._have_system = False
        self._link_up = False
        self._bad_frames = 0
        self._last_rx = time.monotonic()
        self._fd = self.loop.add_reader(sock, self._on_readable)
        # A controller that did not notice our previous link dropping sees no new client and
        # sends no dump; ask for it at once on a reconnect, after a grace period on first use.
        grace = 0.0 if self._ever_connected else self.refresh_grace
        self._refresh_timer = self.loop.call_later(grace, self._request_refresh)

    def _remember(self, sock: Optional[socket.socket]) -> None:
        self._sock = sock

    def abort_blocking(self) -> None:
        shutdown_socket(self._sock)

    def close_transport(self) -> None:
        for attr in ("_liveness_timer", "_probe_timer", "_refresh_timer"):
            timer = getattr(self, attr)
            if timer is not None:
                timer.cancel()
                setattr(self, attr, None)
        sock, self._sock = self._sock, None
        self.ws = None
        self._link_up = False
        if sock is not None:
            self.loop.remove_reader(self._fd)
            try:
                sock.close()
            except OSError:
                pass

    def on_link_down(self) -> None:
        self._probes.clear()
        self._active = []

    def on_established(self) -> None:
        self._arm_liveness()

    # ------------------------------------------------------------------ sending
    def send(self, frame: Mapping[str, Any]) -> None:
        if self.ws is None:
            raise OSError("not connected")
        text = codec.encode_frame(frame)
        self.wire.sent(dict(frame))
        try:
            self.ws.send(text)
        except self._websocket.WebSocketException as exc:
            raise OSError(f"send failed: {exc}") from exc

    def _request_refresh(self) -> None:
        self._refresh_timer = None
        if not self._link_up:
            try:
                self.send({"Refresh": 1})
            except OSError as exc:
                self.link_failed(exc)

    def _probe(self, owner: Optional[Pending]) -> None:
        self._probes.append(owner)

    # ------------------------------------------------------------------ receiving
    def _on_readable(self) -> None:
        ws = self.ws
        if ws is None:
            return
        websocket = self._websocket
        try:
            opcode, frame = ws.recv_data_frame(True)
        except (websocket.WebSocketConnectionClosedException, OSError) as exc:
            self.link_failed(exc if isinstance(exc, OSError)
                             else ConnectionResetError(f"connection closed: {exc}"))
            return
        except (websocket.WebSocketException, ValueError) as exc:
            self._bad_frame(ProtocolError(f"bad WebSocket frame: {exc}",
                                          frames=self.wire.recent()))
            return
        self._last_rx = time.monotonic()
        if opcode == websocket.ABNF.OPCODE_CLOSE:
            self.link_failed(ConnectionResetError("the controller closed the connection"))
            return
        if opcode != websocket.ABNF.OPCODE_TEXT:
            return
        try:
            obj = codec.decode_frame(frame.data if hasattr(frame, "data") else frame)
            codec.check_frame(obj)
        except ProtocolError as exc:
            self.wire.received(frame.data if hasattr(frame, "data") else frame)
            exc.frames = self.wire.recent()
            self._bad_frame(exc)
            return
        self.wire.received(obj)
        self._bad_frames = 0
        self._handle_frame(obj)

    def _bad_frame(self, exc: ProtocolError) -> None:
        self._bad_frames += 1
        log.warning("%s: dropped an undecodable frame (%d in a row): %s", self.endpoint,
                    self._bad_frames, exc)
        if self._bad_frames >= MAX_BAD_FRAMES:
            self.link_failed(exc)

    def _handle_frame(self, obj: Dict[str, Any]) -> None:
        if self._probe_timer is not None:
            self._probe_timer.cancel()
            self._probe_timer = None
        timer_keys = {k: v for k, v in obj.items() if k in codec.TIMER_KEYS}
        system = {k: v for k, v in obj.items() if k in codec.SYSTEM_KEYS}
        status = {k: v for k, v in obj.items()
                  if k not in timer_keys and k not in system and k not in _EVENT_KEYS}
        if "StartString" in obj:
            reason = str(obj["StartString"])
            for request in self._active:
                if "Run" in request.payload.frame:
                    request.payload.start_reason = reason
            if reason:
                self.dispatcher.publish(StartRefused(reason))
        if status:
            self.keys.update(status)
            self._have_main = self._have_main or MAIN_GROUP_KEY in status
            self._have_extended = self._have_extended or EXTENDED_GROUP_KEY in status
            if self._link_up:
                self._publish_status(status)
        if timer_keys:
            self._apply_timer(timer_keys)
        if system:
            self.system_keys.update(system)
            info = codec.build_system_info(self.system_keys)
            self.cache.update([("system", info), ("system_keys", dict(self.system_keys))])
            self.dispatcher.publish(SystemInfoChanged(info))
        self._have_system = self._have_system or bool(system)
        # The dump ends with the system group: once it is in, the state is complete and no
        # part of the dump can be mistaken for the answer to a later query.
        if not self._link_up and self._have_main and self._have_extended and self._have_system:
            self._link_up = True
            self._publish_status(dict(self.keys))
            self.established()
        elif system and self._probes:
            owner = self._probes.popleft()
            if owner is not None:
                self._barrier_reached(owner)
        self._settle_active()

    def _publish_status(self, changed: Dict[str, Any]) -> None:
        status = codec.build_status(self.keys)
        self.cache.set("status", status)
        self.dispatcher.publish(StatusChanged(status, codec.redact(changed)))

    def _apply_timer(self, keys: Dict[str, Any]) -> None:
        by_id: Dict[int, Timer] = {}
        for key, value in keys.items():
            timer_id, _ = codec.parse_timer_value(key, value)
            timer = by_id.get(timer_id, self.timers[timer_id])
            by_id[timer_id] = codec.apply_timer_key(timer, key, value)
        self.timers.update(by_id)
        self.cache.set("timers", tuple(self.timers[i] for i in sorted(self.timers)))
        for timer in by_id.values():
            self.dispatcher.publish(TimerChanged(timer))

    # ------------------------------------------------------------------ liveness
    def _arm_liveness(self) -> None:
        due = self._last_rx + self.liveness_interval - time.monotonic()
        self._liveness_timer = self.loop.call_later(max(0.0, due), self._liveness_check)

    def _liveness_check(self) -> None:
        self._liveness_timer = None
        if self.ws is None:
            return
        if time.monotonic() - self._last_rx >= self.liveness_interval and \
                self._probe_timer is None:
            # SQuery always gets an answer: DateTime and SysUpTime are always new.
            try:
                self.send({"SQuery": 1})
            except OSError as exc:
                self.link_failed(exc)
                return
            self._probe(None)
            self._probe_timer = self.loop.call_later(self.liveness_timeout, self._silent)
        self._arm_liveness()

    def _silent(self) -> None:
        self._probe_timer = None
        self.link_failed(TimeoutError(
            f"the controller did not answer a liveness query within {self.liveness_timeout:g} s"))

    # ------------------------------------------------------------------ requests
    def start_request(self, request: Pending) -> None:
        exchange: Exchange = request.payload
        frame = dict(exchange.frame)
        if exchange.barrier:
            frame["SQuery"] = 1
        self._active = [r for r in self._active if not r.done()]
        self._active.append(request)
        self.send(frame)
        if exchange.barrier:
            self._probe(request)
        self._settle_active()

    def _barrier_reached(self, request: Pending) -> None:
        """The answer to ``request``'s query arrived: its command has been processed."""
        exchange: Exchange = request.payload
        if request.done() or exchange.barrier_passed:
            return
        if exchange.start_reason:
            request.fail(DeviceError(
                f"the controller refused to start: {exchange.start_reason}", code="StartString",
                detail=exchange.start_reason, device=self.family, endpoint=self.endpoint))
            return
        unmet = {k: v for k, v in exchange.expect.items()
                 if not codec.values_match(v, self.keys.get(k))}
        if not unmet:
            exchange.barrier_passed = True
        elif not exchange.reprobed:
            # Another client's refresh can answer our query early: ask once more.
            exchange.reprobed = True
            try:
                self.send({"SQuery": 1})
            except OSError as exc:
                self.link_failed(exc)
                return
            self._probe(request)
        else:
            key, expected = next(iter(unmet.items()))
            current = self.keys.get(key)
            request.fail(DeviceError(
                f"the controller did not take {key}={expected!r}: it reports {current!r}",
                code=key, detail=str(current), device=self.family, endpoint=self.endpoint))

    def _settle_active(self) -> None:
        still: List[Pending] = []
        for request in self._active:
            if request.done():
                continue
            exchange: Exchange = request.payload
            if exchange.barrier_passed:
                if exchange.settle is None or exchange.settle(self):
                    request.resolve(None)
                    continue
            still.append(request)
        self._active = still


_EVENT_KEYS = frozenset({"StartString", "Reboot", "LoadWebContent", "TimerRefresh",
                         "TimerConflict"})


# ----------------------------------------------------------------------------------- facade
class AfterburnerClient(BaseClient):
    """A connection to one Afterburner controller (or its simulator).

    :param url: ``"192.168.4.1"``, ``"host:81"``, ``"ws://host:81/"`` (port 81 and path ``/``
        by default, as the firmware serves them) or ``"sim://"`` for the built-in simulator
        (``sim://?speed=60&tick=0.2&seed=1``).
    :param allow_writes: allow mixture, supply and calibration writes (pump and fan limits,
        pump calibration, low-voltage cut-out, system voltage), which can damage the heater
        when wrong. Everyday control (run, set points, thermostat, timers) is always allowed.
    :param liveness_interval: seconds of silence after which ``{"SQuery":1}`` checks the link.
    :param liveness_timeout: seconds to wait for that answer before reconnecting.

    Every method is thread-safe; commands are serialised on the I/O thread
    ``pyburnerkit-afterburner-<endpoint>-io``; callbacks run on ``...-events``. The controller
    acknowledges nothing, so setters block until the pushed state shows the value and raise
    :class:`DeviceError` when it shows something else or ignored the value.
    """

    family = "afterburner"

    def __init__(self, url: str = "192.168.4.1", *, allow_writes: bool = False,
                 liveness_interval: float = 15.0, liveness_timeout: float = 5.0,
                 refresh_grace: float = 1.5, **options: Any) -> None:
        require("websocket", "afterburner")  # fail here, not on the first connect
        scheme, host, port, path, sim_options = parse_endpoint(url)
        endpoint = "sim" if scheme == "sim" else f"{host}:{port}"
        self._sim_options: Dict[str, Any] = {}
        if scheme == "sim":
            from .sim import AfterburnerSim
            self._sim_options = AfterburnerSim.parse_options(sim_options)
        self.url = url
        self.allow_writes = bool(allow_writes)
        for name, value in (("liveness_interval", liveness_interval),
                            ("liveness_timeout", liveness_timeout)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
                raise ConfigurationError(f"{name} must be a positive number of seconds, "
                                         f"got {value!r}")
        self.liveness_interval = float(liveness_interval)
        self.liveness_timeout = float(liveness_timeout)
        self.refresh_grace = float(refresh_grace)
        super().__init__(endpoint, **options)

    def _make_session(self, **common: Any) -> Session:
        sim_factory = None
        if self.endpoint == "sim":
            sim_factory = self._in_process_sim
        return AfterburnerSession(url=self.url, sim_factory=sim_factory,
                                  liveness_interval=self.liveness_interval,
                                  liveness_timeout=self.liveness_timeout,
                                  refresh_grace=self.refresh_grace, **common)

    def _in_process_sim(self) -> Any:
        from .sim import AfterburnerSim
        return self._own_simulator(
            lambda: AfterburnerSim(**self._sim_options).start(listen=False))

    def _redact_frame(self, frame: Any) -> Any:
        return codec.redact(frame)

    # ------------------------------------------------------------------ cached state
    @property
    def status(self) -> HeaterStatus:
        """The latest pushed state (never blocks; empty before the first connection)."""
        return self._cache.value("status", HeaterStatus())

    @property
    def system_info(self) -> SystemInfo:
        """The latest system group (clock, uptime, version, hour meters); see
        :meth:`read_system_info`."""
        return self._cache.value("system", SystemInfo())

    @property
    def timers(self) -> Tuple[Timer, ...]:
        """The timers as last reported; see :meth:`read_timers` (the refresh omits them)."""
        return self._cache.value("timers", ())

    @property
    def stale(self) -> bool:
        return self._cache.is_stale("status")

    # ------------------------------------------------------------------ requests
    def _exchange(self, description: str, exchange: Exchange, timeout: TimeoutArg,
                  *, write: bool = True) -> Any:
        return self._call(Pending(description, exchange, is_write=write), timeout)

    def refresh(self, timeout: TimeoutArg = DEFAULT) -> HeaterStatus:
        """Ask for a full dump and block until it has arrived.

        :returns: the refreshed status.
        :raises DeviceTimeoutError: no dump within ``timeout`` seconds.
        """
        self._exchange("Refresh", Exchange({"Refresh": 1}), timeout, write=False)
        return self.status

    def read_status(self, timeout: TimeoutArg = DEFAULT) -> HeaterStatus:
        """Same as :meth:`refresh`: a fresh, complete status from the device."""
        return self.refresh(timeout)

    def read_system_info(self, timeout: TimeoutArg = DEFAULT) -> SystemInfo:
        """Query the system group (``SQuery``): clock, uptime, firmware, hour meters."""
        self._exchange("SQuery", Exchange({}), timeout, write=False)
        return self.system_info

    def read_timers(self, timeout: TimeoutArg = DEFAULT) -> Tuple[Timer, ...]:
        """Query all 14 timers (``TQuery``) and return them."""
        self._exchange("TQuery", Exchange({"TQuery": 0}), timeout, write=False)
        return self.timers

    def set(self, timeout: TimeoutArg = DEFAULT, **settings: Any) -> HeaterStatus:
        """Change settings by name (see ``codec.SETTINGS``) or firmware key, in one frame.

        Each value is checked against the firmware's limits first. Blocks until the pushed
        state shows every value. Settings live in RAM until :meth:`save`.

        :raises ConfigurationError: unknown name or bad value (nothing is sent).
        :raises WriteNotAllowedError: a tuning setting on a client without ``allow_writes``.
        :raises DeviceError: the controller ignored a value or reported another one.
        """
        if not settings:
            raise ConfigurationError("set() needs at least one setting")
        frame: Dict[str, Any] = {}
        for name, value in settings.items():
            setting = codec.SETTINGS.get(name) or codec.SETTINGS_BY_KEY.get(name)
            if setting is None:
                raise ConfigurationError(
                    f"unknown setting {name!r}; known: {', '.join(sorted(codec.SETTINGS))}")
            if setting.tuning and not self.allow_writes:
                raise WriteNotAllowedError(
                    f"{setting.name} changes the heater's mixture, supply or calibration and "
                    f"can damage it; open the client with allow_writes=True to change it")
            if isinstance(value, DemandMode) or isinstance(value, ThermostatMethod):
                value = int(value)
            frame[setting.key] = codec.validate_setting(
                setting, value, system_voltage=self.status.system_voltage_v)
        expect = {codec.SETTINGS_BY_KEY[k].report_key: v for k, v in frame.items()}
        self._exchange(f"set {frame}", Exchange(frame, expect=expect), timeout)
        return self.status

    def run(self, on: bool, timeout: TimeoutArg = DEFAULT) -> HeaterStatus:
        """Start (``True``) or stop (``False``) the heater.

        Start blocks until the controller accepted the request and ``RunState`` left 0; stop
        blocks until the heater is stopping, cooling or stopped.

        :raises DeviceError: the controller refused to start (its ``StartString`` reason, e.g.
            ``"Ambient too warm!"``).
        """
        if not isinstance(on, bool) and on not in (0, 1):
            raise ConfigurationError(f"run expects True/False (or 1/0), got {on!r}")
        if on:
            exchange = Exchange({"Run": 1}, settle=_run_state_is(lambda s: s.is_on))
        else:
            exchange = Exchange({"Run": 0}, settle=_run_state_is(lambda s: not s.is_heating))
        self._exchange("start" if on else "stop", exchange, timeout)
        return self.status

    def start(self, timeout: TimeoutArg = DEFAULT) -> HeaterStatus:
        return self.run(True, timeout)

    def stop(self, timeout: TimeoutArg = DEFAULT) -> HeaterStatus:
        return self.run(False, timeout)

    def set_desired_temperature(self, temperature_c: int,
                                timeout: TimeoutArg = DEFAULT) -> HeaterStatus:
        """Set point in whole °C, 8-35 (a demand index in fixed-Hz mode).

        :raises UnsupportedFeatureError: an OEM controller on the bus owns the set point.
        """
        self._refuse_with_oem("the set point")
        return self.set(timeout, desired_temperature=temperature_c)

    def set_demand_mode(self, mode: DemandMode, timeout: TimeoutArg = DEFAULT) -> HeaterStatus:
        """Thermostat (°C set point) or fixed pump rate (demand index)."""
        self._refuse_with_oem("the demand mode")
        return self.set(timeout, demand_mode=int(DemandMode(mode)))

    def set_thermostat(self, method: Optional[ThermostatMethod] = None, *,
                       window_c: Optional[float] = None,
                       timeout: TimeoutArg = DEFAULT) -> HeaterStatus:
        settings: Dict[str, Any] = {}
        if method is not None:
            settings["thermostat_method"] = int(ThermostatMethod(method))
        if window_c is not None:
            settings["thermostat_window"] = window_c
        return self.set(timeout, **settings)

    def set_cyclic(self, off_c: int, on_c: Optional[int] = None,
                   timeout: TimeoutArg = DEFAULT) -> HeaterStatus:
        """Cyclic mode: stop at set point + ``off_c`` (0 disables), restart at set point +
        ``on_c`` (-20..0)."""
        settings: Dict[str, Any] = {"cyclic_off": off_c}
        if on_c is not None:
            settings["cyclic_on"] = on_c
        return self.set(timeout, **settings)

    def set_frost(self, on_c: int, rise_c: Optional[int] = None,
                  timeout: TimeoutArg = DEFAULT) -> HeaterStatus:
        """Frost mode: start below ``on_c`` (0 = off), stop at ``on_c + rise_c``."""
        settings: Dict[str, Any] = {"frost_on": on_c}
        if rise_c is not None:
            settings["frost_rise"] = rise_c
        return self.set(timeout, **settings)

    def set_humidity_start(self, percent: int, timeout: TimeoutArg = DEFAULT) -> HeaterStatus:
        return self.set(timeout, humidity_start=percent)

    def set_fan_limits(self, min_rpm: Optional[int] = None, max_rpm: Optional[int] = None,
                       timeout: TimeoutArg = DEFAULT) -> HeaterStatus:
        return self.set(timeout, **_given(fan_min=min_rpm, fan_max=max_rpm))

    def set_pump_limits(self, min_hz: Optional[float] = None, max_hz: Optional[float] = None,
                        timeout: TimeoutArg = DEFAULT) -> HeaterStatus:
        return self.set(timeout, **_given(pump_min=min_hz, pump_max=max_hz))

    def set_pump_calibration(self, ml_per_stroke: float,
                             timeout: TimeoutArg = DEFAULT) -> HeaterStatus:
        return self.set(timeout, pump_cal=ml_per_stroke)

    def set_low_voltage_cutout(self, volts: float, timeout: TimeoutArg = DEFAULT) -> HeaterStatus:
        return self.set(timeout, low_volt_cutout=volts)

    def reset_fuel_gauge(self, timeout: TimeoutArg = 15.0) -> HeaterStatus:
        """Zero the fuel gauge (``PumpCount`` 0). The firmware reports PumpCount at most every
        10 s, so this can take that long to confirm."""
        before = self.status.pump_count
        exchange = Exchange({"PumpCount": 0}, barrier=False,
                            settle=lambda s: _pump_count_reset(s, before))
        exchange.barrier_passed = True
        self._exchange("reset fuel gauge", exchange, timeout)
        return self.status

    def prime_pump(self, on: bool = True, timeout: TimeoutArg = DEFAULT) -> None:
        """Start or stop pump priming (only while the heater is stopped)."""
        state = self.status.run_state
        if on and state is not None and state.is_on:
            raise DeviceError("pump priming is only offered while the heater is stopped "
                              f"(it is {state.name})", code="PumpPrime", device=self.family,
                              endpoint=self.endpoint)
        self._exchange("pump prime", Exchange({"PumpPrime": int(bool(on))}), timeout)

    def set_timer(self, timer: Timer, timeout: TimeoutArg = DEFAULT) -> Timer:
        """Program one timer (1-14). Blocks until the controller reports it back."""
        frame = codec.timer_commands(timer)

        def shown(session: AfterburnerSession) -> bool:
            now = session.timers[timer.id]
            return (now.days == frozenset(timer.days) and now.next_only == timer.next_only
                    and now.repeat == bool(timer.repeat)
                    and (timer.start is None or now.start == timer.start)
                    and (timer.stop is None or now.stop == timer.stop))

        self._exchange(f"set timer {timer.id}",
                       Exchange(dict(frame, TQuery=timer.id), settle=shown), timeout)
        return self.timers[timer.id - 1]

    def set_datetime(self, value: Optional[_dt.datetime] = None,
                     timeout: TimeoutArg = DEFAULT) -> SystemInfo:
        """Set the controller's clock (local time; now by default)."""
        value = value or _dt.datetime.now()
        if not isinstance(value, _dt.datetime):
            raise ConfigurationError(f"set_datetime expects a datetime, got {value!r}")
        value = value.replace(microsecond=0)

        def shown(session: AfterburnerSession) -> bool:
            info = codec.build_system_info(session.system_keys)
            return info.datetime is not None and abs(
                (info.datetime - value).total_seconds()) <= 5

        self._exchange("set date/time",
                       Exchange({"DateTime": codec.format_datetime(value)}, settle=shown), timeout)
        return self.system_info

    def save(self, timeout: TimeoutArg = DEFAULT) -> None:
        """Persist the RAM settings to flash (``NVsave``). Blocks until the controller has
        processed it (its next answer comes after the save)."""
        self._exchange("NVsave", Exchange({"NVsave": codec.NVSAVE_CODE}), timeout)

    def _refuse_with_oem(self, what: str) -> None:
        bluewire = self.status.bluewire
        if bluewire is not None and bluewire.oem_controller:
            raise UnsupportedFeatureError(
                f"an OEM controller is on the heater bus ({bluewire.text!r}); it owns {what}, "
                f"and the Afterburner refuses to change it", code="OEM", device=self.family,
                endpoint=self.endpoint)

    # ------------------------------------------------------------------ pyBurner names
    def init_websocket(self) -> bool:
        """pyBurner's connect: blocks until the complete state has arrived."""
        self.connect()
        return True

    def close_websocket(self) -> bool:
        """pyBurner's close."""
        self.close()
        return True

    def fetch_data(self, key: str, refresh: bool = False,
                   timeout: TimeoutArg = DEFAULT) -> Any:
        """pyBurner's accessor: the value of a firmware key, natively typed (None if unseen)."""
        if refresh:
            self.refresh(timeout)
        system_keys = self._cache.value("system_keys", {})
        if key in system_keys:
            return system_keys[key]
        return self.status.raw.get(key)

    def set_tempdesired(self, temperature: int) -> bool:
        self.set_desired_temperature(temperature)
        return True

    def set_runmode(self, mode: int) -> bool:
        if mode not in (0, 1) or isinstance(mode, bool):
            raise ConfigurationError(f"run mode must be 0 or 1, got {mode!r}")
        self.run(bool(mode))
        return True

    def set_fanmin(self, rpm: int) -> bool:
        self.set_fan_limits(min_rpm=rpm)
        return True

    def set_fanmax(self, rpm: int) -> bool:
        self.set_fan_limits(max_rpm=rpm)
        return True

    def set_pumpmin(self, hz: float) -> bool:
        self.set_pump_limits(min_hz=hz)
        return True

    def set_pumpmax(self, hz: float) -> bool:
        self.set_pump_limits(max_hz=hz)
        return True

    def set_pumpcal(self, ml: float) -> bool:
        self.set_pump_calibration(ml)
        return True

    def set_pumpreset(self) -> bool:
        self.reset_fuel_gauge()
        return True

    def set_lowvoltcutout(self, volts: float) -> bool:
        self.set_low_voltage_cutout(volts)
        return True

    def set_froston(self, temperature: int) -> bool:
        self.set(frost_on=temperature)
        return True

    def set_frostrise(self, temperature: int) -> bool:
        self.set(frost_rise=temperature)
        return True


def _given(**values: Any) -> Dict[str, Any]:
    chosen = {k: v for k, v in values.items() if v is not None}
    if not chosen:
        raise ConfigurationError(f"give at least one of {', '.join(values)}")
    return chosen


def _run_state_is(test: Callable[[RunState], bool]) -> Callable[[AfterburnerSession], bool]:
    def settle(session: AfterburnerSession) -> bool:
        value = session.keys.get("RunState")
        return value is not None and test(RunState(int(value)))
    return settle


def _pump_count_reset(session: AfterburnerSession, before: Optional[float]) -> bool:
    value = session.keys.get("PumpCount")
    if value is None:
        return False
    # Priming or running pumps count on, so "reset" means "dropped well below before".
    return float(value) < 1.0 or (before is not None and float(value) < before * 0.5)
