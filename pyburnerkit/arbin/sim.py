"""A simulated Arbin cycler: a CTI server with N channels, a cell model and fault injection.

It reads requests with the same codec the client uses (request framing: length = total - 12)
and answers with real MITS Pro framing (length = total). Per channel it keeps a small state
machine::

    IDLE --assign--> IDLE (schedule assigned) --start--> REST/CHARGE/DISCHARGE ...
        ... --last step of last cycle--> FINISHED
        ... --stop--> IDLE (resumable)  --resume--> running again
        PAUSE --continue--> running;  UNSAFE / ERROR only through fault injection

The cell model is lazy: a channel's readings advance to "now" whenever a request arrives, so
an idle simulator costs nothing, and a test may pass a ``clock`` it advances itself.
``time_scale`` multiplies simulated time (60 = one simulated minute per real second).

Quirks kept from the real device (see ``specs/arbin.md``): stop on a channel that is not
running succeeds; meta variables only apply while the channel runs (0x12 otherwise); the
start feedback echoes the channel; aux readings are sent only when the request asks for them;
``mits10=True`` answers a one-channel info request with every channel.

Choices where the spec is silent (documented in ``docs/arbin.rst``): a request before a
successful log-in drops the connection; an undecodable request drops the connection; a start
naming several channels is all-or-nothing and its feedback names the first failing channel; a
start naming no channel gets 0x1F (no selected channels), a continue naming none 0x10, an empty
meta-variable batch 0x10; a request the handlers cannot serve drops that connection only (the
simulated cycler keeps running for every other client).
"""

from __future__ import annotations

import collections
import logging
import struct
import time
import dataclasses
from dataclasses import dataclass
from typing import Any, Callable, Dict, Iterable, Mapping, Optional, Tuple, TypeVar

from ..errors import ConfigurationError, ProtocolError, check_range
from .._core.simserver import SimConnection, SimServer
from .._core.endpoint import flag, sim_options
from . import codec
from .models import (AssignResult, AuxOption, AuxReading, ChannelState, ChannelStatus,
                     ConnectResult, ContinueResult, CtiVersion, CyclerInfo, GetMVResult,
                     InfoSelection, LoginResult, META_CODE_TO_MV, MetaCode, MetaValueType,
                     SetMVResult, StartResult, StopResult)

log = logging.getLogger(__name__)

DEFAULT_PORT = 9031
MAX_SIM_CHANNELS = 512
#: Bounds of ``time_scale`` (simulated seconds per real second): positive and finite, with
#: room for any test that wants hours to pass in seconds or a step to be watched slowly.
MIN_TIME_SCALE, MAX_TIME_SCALE = 1e-6, 1e6
#: The most requests ``received`` can be asked to keep.
MAX_RECORDED = 10 ** 9
DEFAULT_USERNAME = "admin"
DEFAULT_PASSWORD = "000000"


def _check_channels(value: Any) -> int:
    return int(check_range("channels", value, 1, MAX_SIM_CHANNELS, "channels", integer=True))


def _check_time_scale(value: Any) -> float:
    return float(check_range("time_scale", value, MIN_TIME_SCALE, MAX_TIME_SCALE))


@dataclass(frozen=True)
class UnknownRequest:
    """A well-framed request whose command this cycler does not know (kept in ``received``)."""

    command: int


@dataclass(frozen=True)
class Step:
    """One schedule step. ``kind``: rest, charge, discharge or mv_charge (current = MV_UD1)."""

    name: str
    kind: str
    current_a: float = 0.0
    duration_s: float = 60.0
    voltage_limit_v: Optional[float] = None

    @property
    def label(self) -> str:
        return {"rest": "Rest", "charge": "Charge", "discharge": "Discharge",
                "mv_charge": "Charge"}[self.kind]


@dataclass(frozen=True)
class Schedule:
    name: str
    steps: Tuple[Step, ...]
    cycles: int = 1


def default_schedules() -> Dict[str, Schedule]:
    """The schedule files the simulated cycler knows."""
    items = [
        Schedule("Rest+207855.sdx", (Step("Step_A", "rest", duration_s=3600.0),)),
        Schedule("CC_Cycle.sdx", (
            Step("Step_A", "rest", duration_s=60.0),
            Step("Step_B", "charge", 1.0, 7200.0, 4.1),
            Step("Step_C", "rest", duration_s=60.0),
            Step("Step_D", "discharge", -1.0, 7200.0, 3.2)), cycles=2),
        Schedule("MV_Charge.sdx", (Step("Step_A", "mv_charge", duration_s=3600.0, 
                                        voltage_limit_v=4.2),)),
    ]
    return {s.name: s for s in items}


def _as_i32(index: int) -> int:
    """A channel index echoed into the feedback's i32 field: the same four bytes, so a u32
    request field of 0xFFFFFFFE comes back as -2 instead of breaking the reply."""
    return (int(index) + 0x80000000) % 0x100000000 - 0x80000000


_STATE_OF_KIND = {"rest": ChannelState.REST, "charge": ChannelState.CHARGE,
                  "discharge": ChannelState.DISCHARGE, "mv_charge": ChannelState.CHARGE}


class SimChannel:
    """One channel's device-side state (sim thread only)."""

    capacity_ah = 2.0
    resistance_ohm = 0.05

    def __init__(self, index: int) -> None:
        self.index = index
        self.state = ChannelState.IDLE
        self.schedule: Optional[Schedule] = None
        self.test_name = ""
        self.barcode = ""
        self.test_capacity_ah = 0.0
        self.exit_condition = "N/A"
        self.soc = 0.5
        self.current_a = 0.0
        self.voltage_v = self.ocv()
        self.dvdt = 0.0
        self.temperature_c = 25.0
        self.test_time_s = 0.0
        self.step_time_s = 0.0
        self.step_index = 0
        self.cycle = 1
        self.charge_ah = 0.0
        self.discharge_ah = 0.0
        self.charge_wh = 0.0
        self.discharge_wh = 0.0
        self.mv: Dict[int, float] = {}
        self.resumable = False
        self.comm_failure = False
        self.running = False
        #: fields pinned by ``update_channel_status`` (ChannelStatus names): they win over
        #: the cell model until cleared
        self.pins: Dict[str, Any] = {}

    # -- cell model ---------------------------------------------------------------------
    def ocv(self) -> float:
        return 3.0 + 1.2 * min(1.0, max(0.0, self.soc))

    def step(self) -> Optional[Step]:
        if self.schedule is None or not self.running:
            return None
        return self.schedule.steps[self.step_index]

    def step_current(self, step: Step) -> float:
        if step.kind == "mv_charge":
            return float(self.mv.get(52, 0.0))
        return step.current_a

    def advance(self, dt: float) -> None:
        """Integrate the cell over ``dt`` simulated seconds."""
        guard = 0
        while dt > 1e-9 and self.running and guard < 10000:
            guard += 1
            step = self.step()
            assert step is not None
            left = step.duration_s - self.step_time_s
            sub = min(dt, max(left, 0.0), max(1.0, dt / 200.0))
            current = self.step_current(step)
            self.current_a = current
            self.soc = min(1.0, max(0.0, self.soc + current * sub / 3600.0 / self.capacity_ah))
            before = self.voltage_v
            self.voltage_v = self.ocv() + current * self.resistance_ohm
            self.dvdt = (self.voltage_v - before) / sub if sub > 0 else 0.0
            ah = abs(current) * sub / 3600.0
            if current > 0:
                self.charge_ah += ah
                self.charge_wh += ah * self.voltage_v
            elif current < 0:
                self.discharge_ah += ah
                self.discharge_wh += ah * self.voltage_v
            self.temperature_c = 25.0 + current * current * self.resistance_ohm
            self.step_time_s += sub
            self.test_time_s += sub
            dt -= sub
            limit = step.voltage_limit_v
            if self.step_time_s >= step.duration_s - 1e-9:
                self._next_step(f"Step_Time>={step.duration_s:g}")
            elif limit is not None and current > 0 and self.voltage_v >= limit:
                self._next_step(f"PV_CHAN_Voltage>={limit:g}")
            elif limit is not None and current < 0 and self.voltage_v <= limit:
                self._next_step(f"PV_CHAN_Voltage<={limit:g}")
        if not self.running:
            self.current_a = 0.0
            self.voltage_v = self.ocv()

    def _next_step(self, why: str) -> None:
        assert self.schedule is not None
        self.exit_condition = why
        self.step_time_s = 0.0
        self.step_index += 1
        if self.step_index >= len(self.schedule.steps):
            self.step_index = 0
            self.cycle += 1
            if self.cycle > self.schedule.cycles:
                self.finish(ChannelState.FINISHED)
                return
        self.state = _STATE_OF_KIND[self.schedule.steps[self.step_index].kind]

    def finish(self, state: ChannelState, *, resumable: bool = False) -> None:
        self.running = False
        self.resumable = resumable
        self.state = state
        self.current_a = 0.0
        self.voltage_v = self.ocv()

    def begin(self, test_name: str) -> None:
        assert self.schedule is not None
        self.test_name = test_name
        self.test_time_s = self.step_time_s = 0.0
        self.step_index = 0
        self.cycle = 1
        self.charge_ah = self.discharge_ah = self.charge_wh = self.discharge_wh = 0.0
        self.exit_condition = "N/A"
        self.running = True
        self.resumable = False
        self.state = _STATE_OF_KIND[self.schedule.steps[0].kind]

    def step_text(self) -> str:
        if self.schedule is None or (not self.running and self.test_time_s == 0.0):
            return ""
        step = self.schedule.steps[self.step_index]
        return f"[{self.cycle}] {self.step_index + 1}: {step.name}, {step.label}"

    def status(self, *, with_aux: bool) -> ChannelStatus:
        status = self._modelled(with_aux=with_aux)
        return dataclasses.replace(status, **self.pins) if self.pins else status

    def _modelled(self, *, with_aux: bool) -> ChannelStatus:
        aux: Dict[str, Tuple[AuxReading, ...]] = {}
        if with_aux:
            aux = {"voltage": (AuxReading(self.voltage_v, self.dvdt),),
                   "temperature": (AuxReading(self.temperature_c, 0.0),)}
        return ChannelStatus(
            channel=self.index + 1, state=self.state, comm_failure=self.comm_failure,
            schedule=self.schedule.name if self.schedule else "", test_name=self.test_name,
            exit_condition=self.exit_condition, step_and_cycle=self.step_text(),
            barcode=self.barcode, master_channel=self.index + 1, test_time_s=self.test_time_s,
            step_time_s=self.step_time_s, voltage_v=self.voltage_v, current_a=self.current_a,
            power_w=self.voltage_v * self.current_a, charge_capacity_ah=self.charge_ah,
            discharge_capacity_ah=self.discharge_ah, charge_energy_wh=self.charge_wh,
            discharge_energy_wh=self.discharge_wh,
            internal_resistance_ohm=self.resistance_ohm if self.running else 0.0,
            dvdt_v_per_s=self.dvdt, aux=aux)


#: pycti's channel-info keys that name a :class:`ChannelStatus` field differently.
PYCTI_STATUS_KEYS = {"status": "state", "testname": "test_name",
                     "step_and_cycle_format": "step_and_cycle", "dvdt_vbys": "dvdt_v_per_s",
                     "aci_phase_degrees": "aci_phase_deg"}
_TEXT_FIELDS = frozenset({"schedule", "test_name", "exit_condition", "step_and_cycle",
                          "barcode", "can_config_name", "smb_config_name"})
_NUMBER_FIELDS = frozenset({
    "test_time_s", "step_time_s", "voltage_v", "current_a", "power_w", "charge_capacity_ah",
    "discharge_capacity_ah", "charge_energy_wh", "discharge_energy_wh",
    "internal_resistance_ohm", "dvdt_v_per_s", "acr_ohm", "aci_ohm", "aci_phase_deg"})
PINNABLE = _TEXT_FIELDS | _NUMBER_FIELDS | {"state", "comm_failure", "master_channel"}


def _state_of(value: Any) -> ChannelState:
    if isinstance(value, ChannelState):
        return value
    if isinstance(value, str):
        wanted = value.strip().lower()
        for member in ChannelState:
            if wanted in (member.text.lower(), member.name.lower()):
                return member
        raise ConfigurationError(f"status {value!r} is not a channel state (e.g. 'Idle', "
                                 "'Rest', 'Charge')")
    code = int(check_range("status", value, 0, 0x7FFF, integer=True))
    return ChannelState(code)


def status_pins(values: Mapping[str, Any], *, zero_based: bool) -> Dict[str, Any]:
    """``update_channel_status`` values (pycti's keys or :class:`ChannelStatus` names) to
    checked :class:`ChannelStatus` fields.

    ``zero_based``: ``master_channel`` is a wire index (pycti) rather than a channel number.

    :raises ConfigurationError: an unknown key or a value that does not fit its field.
    """
    if not isinstance(values, Mapping):
        raise ConfigurationError(f"channel status values must be a dict, got "
                                 f"{type(values).__name__}")
    pins: Dict[str, Any] = {}
    for key, value in values.items():
        name = PYCTI_STATUS_KEYS.get(key, key)
        if name not in PINNABLE:
            raise ConfigurationError(
                f"cannot set {key!r} on a simulated channel; settable: "
                + ", ".join(sorted(PINNABLE | set(PYCTI_STATUS_KEYS))))
        if name == "state":
            pins[name] = _state_of(value)
        elif name == "comm_failure":
            pins[name] = bool(value)
        elif name == "master_channel":
            low = 0 if zero_based else 1
            number = int(check_range("master_channel", value, low, codec.MAX_CHANNELS - 1 + low,
                                     integer=True))
            pins[name] = number + 1 if zero_based else number
        elif name in _NUMBER_FIELDS:
            pins[name] = float(check_range(key, value, -codec.F32_MAX, codec.F32_MAX))
        else:
            if not isinstance(value, str):
                raise ConfigurationError(f"{key} must be text, got {type(value).__name__}")
            pins[name] = value
    # The strings must fit their CTI fields: encode once now, not on every answer.
    codec.encode_channel_record(dataclasses.replace(ChannelStatus(1, ChannelState.IDLE),
                                                    **pins))
    return pins


class _ConnState:
    def __init__(self) -> None:
        self.reader = codec.FrameReader(feedback=False)
        self.logged_in = False


class ArbinSim(SimServer):
    """A CTI server standing for an Arbin cycler (MITS Pro 8 framing).

    :param channels: number of IV channels, 1..512.
    :param username: / :param password: the one CTI account it accepts.
    :param time_scale: simulated seconds per real second.
    :param mits10: answer one-channel info requests with every channel (issue #24).
    :param allow_control: the ``allow_control`` flag of the login feedback.
    :param unsupported: request codes to answer with the unknown-command feedback (0xBB111111),
        like firmware without get-serial or the batched meta-variable update. Commands the
        simulator does not know at all get the same answer (its arguments: the u32 code).
    :param max_recorded: how many of the latest requests ``received`` keeps (a simulator that
        runs for days must not grow); :meth:`count` counts every request ever received.
    :param max_clients: how many other CTI clients a connect command (0xEEAB0002) finds room
        beside; None: no limit. A full server rejects a connect without the kick-out flag and
        drops its oldest clients for one with it. Clients that never send connect (pycti) are
        never refused.
    """

    name = "arbin"

    @staticmethod
    def parse_options(options: Mapping[str, str]) -> Dict[str, Any]:
        """The query options of a ``sim://?channels=8&time_scale=60&mits10=1&seed=3`` endpoint
        (as :func:`~pyburnerkit._core.endpoint.parse_endpoint` split them) to constructor
        arguments.

        :raises ConfigurationError: an unknown option or a value of the wrong kind.
        """
        # Checked here too, so that a client refuses a bad sim:// endpoint when it is made,
        # not later on its I/O thread when it builds the simulator.
        return sim_options(options, {"channels": int, "time_scale": float, "seed": int,
                                     "mits10": flag},
                           limits={"channels": _check_channels,
                                   "time_scale": _check_time_scale})

    @classmethod
    def from_options(cls, options: Mapping[str, str]) -> "ArbinSim":
        """A simulator built from ``sim://`` endpoint options (see :meth:`parse_options`)."""
        return cls(**cls.parse_options(options))

    def __init__(self, channels: int = 16, *, username: str = DEFAULT_USERNAME,
                 password: str = DEFAULT_PASSWORD, time_scale: float = 1.0,
                 mits10: bool = False, allow_control: bool = True, serial_number: str = "207855",
                 schedules: Optional[Dict[str, Schedule]] = None, seed: Optional[int] = None,
                 clock: Callable[[], float] = time.monotonic,
                 unsupported: Iterable[int] = (), max_recorded: int = 10000,
                 max_clients: Optional[int] = None) -> None:
        channels = _check_channels(channels)
        time_scale = _check_time_scale(time_scale)
        missing = frozenset(int(c) for c in unsupported)
        if codec.LOGIN in missing:
            raise ConfigurationError("unsupported: every CTI server knows the login command")
        max_recorded = int(check_range("max_recorded", max_recorded, 0, MAX_RECORDED,
                                       "requests", integer=True))
        super().__init__(seed=seed, clock=clock)
        #: the latest requests (decoded), oldest first; at most ``max_recorded`` of them
        self.received: Any = collections.deque(maxlen=max_recorded)
        self._counts: Dict[type, int] = collections.Counter()
        self.channels = [SimChannel(i) for i in range(channels)]
        self._username = username
        self._password = password
        self.time_scale = float(time_scale)
        self.mits10 = mits10
        self.allow_control = allow_control
        self.serial_number = serial_number
        self.schedules = dict(schedules) if schedules is not None else default_schedules()
        self._t0 = clock()
        self._sim_now = 0.0
        self._silent = False
        self._silent_from: Optional[int] = None
        self._fail_next: Dict[int, int] = {}
        self._drop_next: Dict[int, bool] = {}
        self._last_mv_batch: Optional[float] = None
        self.logins = 0
        self.login_failures = 0
        self.max_clients = None if max_clients is None else int(
            check_range("max_clients", max_clients, 0, 10000, "clients", integer=True))
        #: clients dropped by connect commands with the kick-out flag
        self.kicked_out = 0
        #: request codes answered with the unknown-command feedback, as older firmware does
        self.unsupported = missing

    def __repr__(self) -> str:
        return f"<ArbinSim {self.host}:{self.port} channels={len(self.channels)}>"

    @property
    def endpoint(self) -> str:
        """``host:port`` of the listening simulator: the endpoint string a
        :class:`~pyburnerkit.arbin.CyclerClient` takes (meaningful once started)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    # ------------------------------------------------------------------ fault injection
    def silence(self, on: bool = True) -> None:
        """Stop answering (requests are still read, applied and recorded) or answer again."""
        self._silent_from = None
        self._silent = bool(on)

    def silence_from(self, command: int) -> None:
        """Go silent when the next ``command`` request arrives (a codec constant): the cycler
        still carries that request (and every later one) out, but answers nothing until
        ``silence(False)``. Stands for a cycler that hangs while executing a command."""
        self._silent_from = int(command)

    def fail_next(self, command: int, result: int) -> None:
        """Answer the next request with ``command`` (a codec constant) with ``result``,
        without applying it.

        :raises ConfigurationError: ``command`` has no result-code feedback (login, channel
            info and get serial answer with data, not a result code), or ``result`` is not
            a byte.
        """
        feedback = codec.FEEDBACK_OF.get(command)
        if feedback not in codec.RESULT_TYPES:
            raise ConfigurationError(
                f"fail_next: command 0x{command:08X} has no result-code feedback; use one of "
                + ", ".join(f"0x{c:08X}" for c, f in codec.FEEDBACK_OF.items()
                            if f in codec.RESULT_TYPES))
        code = int(check_range("fail_next: result", result, 0, 255, integer=True))
        self.run_sync(lambda: self._fail_next.__setitem__(command, code))

    def drop_on_next(self, command: int, *, apply: bool = True) -> None:
        """Reset every connection when the next ``command`` request arrives, without replying;
        with ``apply`` the cycler carries the command out first (the reply is what is lost)."""
        self.run_sync(lambda: self._drop_next.__setitem__(command, bool(apply)))

    def set_state(self, channel: int, state: ChannelState) -> None:
        """Force a channel (1-based) into ``state`` (e.g. UNSAFE, ERROR, PAUSE)."""
        def change() -> None:
            ch = self._channel(channel)
            self._advance()
            if state is ChannelState.PAUSE:
                ch.state = state
                ch.running = False
                ch.current_a = 0.0
            elif state.is_running:
                raise ConfigurationError("use start to run a channel")
            else:
                ch.finish(state, resumable=ch.running or ch.resumable)
        self.run_sync(change)

    def set_comm_failure(self, channel: int, failed: bool = True) -> None:
        self.run_sync(lambda: setattr(self._channel(channel), "comm_failure", bool(failed)))

    def preset(self, channel: int, *, schedule: str, test_name: str = "preset") -> None:
        """Assign ``schedule`` and start a test on ``channel`` (1-based), bypassing CTI."""
        def go() -> None:
            self._advance()
            ch = self._channel(channel)
            ch.schedule = self.schedules[schedule]
            ch.begin(test_name)
        self.run_sync(go)

    def update_channel_status(self, channel: int, values: Mapping[str, Any]) -> bool:
        """Pin readings of ``channel`` (1-based): pycti's spoofer call, on the simulator.

        ``values`` uses pycti's channel-info keys (``voltage_v``, ``current_a``, ``status``
        as text such as ``"Rest"``, ``testname``...) or :class:`ChannelStatus` field names.
        Pinned values are what the cycler reports from then on, over the cell model, until
        :meth:`clear_channel_status`. Safe from any thread; returns once applied.

        :returns: True.
        :raises ConfigurationError: an unknown channel or key, or a value that does not fit
            its CTI field (nothing is applied).
        """
        pins = status_pins(values, zero_based=False)
        self.run_sync(lambda: self._channel(channel).pins.update(pins))
        return True

    def clear_channel_status(self, channel: int) -> None:
        """Drop every value :meth:`update_channel_status` pinned on ``channel`` (1-based)."""
        self.run_sync(lambda: self._channel(channel).pins.clear())

    def channel_status(self, channel: int) -> ChannelStatus:
        """What the cycler would report for ``channel`` (1-based) now."""
        def read() -> ChannelStatus:
            self._advance()
            return self._channel(channel).status(with_aux=True)
        status: ChannelStatus = self.run_sync(read)
        return status

    def meta_variables(self, channel: int) -> Dict[int, float]:
        """The MV_UD values (by 1..16) the channel holds."""
        values: Dict[int, float] = self.run_sync(
            lambda: {META_CODE_TO_MV[k]: v for k, v in self._channel(channel).mv.items()})
        return values

    def count(self, request_type: type) -> int:
        """How many requests of this codec message type arrived."""
        total: int = self.run_sync(lambda: sum(n for kind, n in self._counts.items()
                                               if issubclass(kind, request_type)))
        return total

    def _record(self, request: Any) -> None:
        self.received.append(request)
        self._counts[type(request)] += 1

    def _channel(self, channel: int) -> SimChannel:
        """A channel named by a caller of the inspection and fault methods (1-based)."""
        number = int(check_range("channel", channel, 1, len(self.channels), integer=True))
        return self.channels[number - 1]

    # ------------------------------------------------------------------ clock
    def _advance(self) -> None:
        now = (self.clock() - self._t0) * self.time_scale
        dt = now - self._sim_now
        if dt <= 0:
            return
        self._sim_now = now
        for ch in self.channels:
            if ch.running:
                ch.advance(dt)

    # ------------------------------------------------------------------ protocol
    def on_connect(self, conn: SimConnection) -> None:
        conn.state = _ConnState()

    def on_data(self, conn: SimConnection, data: bytes) -> None:
        state: _ConnState = conn.state
        try:
            frames = state.reader.feed(data)
            for frame in frames:
                if conn.closed:
                    return
                command, _ = codec.split_frame(frame, feedback=False)
                if command not in codec.REQUEST_TYPES or command in self.unsupported:
                    self._unknown_command(conn, command)
                    continue
                self._handle(conn, codec.decode_request(frame))
        except ProtocolError as exc:
            log.warning("%s: undecodable request from %s, dropping it: %s",
                        self.name, conn.peer, exc)
            conn.close()
        except Exception:  # a request the handlers did not foresee must not kill the cycler
            log.exception("%s: request from %s could not be handled; dropping the connection",
                          self.name, conn.peer)
            conn.close()

    def _handle(self, conn: SimConnection, request: Any) -> None:
        self._record(request)
        if self._silent_from is not None and request.command == self._silent_from:
            self._silent, self._silent_from = True, None
        state: _ConnState = conn.state
        reply: Optional[bytes]
        if isinstance(request, codec.LoginRequest):
            reply = self._login(state, request)
        elif isinstance(request, codec.ConnectRequest):
            # Arbin's own client sends connect before it logs in (FASTAPI): allowed both ways.
            reply = self._connect(conn, request)
        elif not state.logged_in:
            log.warning("%s: %s before log-in from %s; dropping the connection", self.name,
                        type(request).__name__, conn.peer)
            conn.close()
            return
        else:
            if request.command in self._drop_next:
                apply = self._drop_next.pop(request.command)
                if apply:
                    self._answer(request)
                for c in list(self.connections):
                    c.close(reset=True)
                return
            if request.command in self._fail_next:
                code = self._fail_next.pop(request.command)
                channel = getattr(request, "channel_index", None)
                if channel is None:
                    channel = (getattr(request, "channel_indexes", None) or (-1,))[0]
                if isinstance(request, codec.UpdateMVAdvancedRequest) and request.entries:
                    channel = request.entries[0].channel_index
                reply = codec.encode_feedback(codec.command_feedback(request.command,
                                                                     _as_i32(channel),
                                                                     code))
            else:
                reply = self._answer(request)
        if reply is not None and not self._silent:
            conn.send(reply)

    def _unknown_command(self, conn: SimConnection, command: int) -> None:
        self._record(UnknownRequest(command))
        if not conn.state.logged_in:
            log.warning("%s: command 0x%08X before log-in from %s; dropping the connection",
                        self.name, command, conn.peer)
            conn.close()
            return
        if not self._silent:
            conn.send(codec.encode_feedback(codec.UnknownCommandFeedback(
                struct.pack("<I", command))))

    def _connect(self, conn: SimConnection, request: codec.ConnectRequest) -> bytes:
        others = [c for c in self.connections if c is not conn and not c.closed]
        result = ConnectResult.ACCEPTED
        if self.max_clients is not None and len(others) >= self.max_clients:
            if request.kick_out:
                for other in others[:len(others) - self.max_clients + 1]:  # oldest first
                    other.close(reset=True)
                self.kicked_out += len(others) - self.max_clients + 1
            else:
                result = ConnectResult.REJECTED
        return codec.encode_feedback(codec.ConnectFeedback(request.kick_out, result))

    def _credentials_ok(self, request: codec.LoginRequest) -> bool:
        return request.username == self._username and request.password == self._password

    def _login_info(self, result: LoginResult) -> CyclerInfo:
        return CyclerInfo(result=result, ip_address=self.host if self.host.count(".") == 3
                          else "127.0.0.1", serial_number=self.serial_number,
                          note=f"pyburnerkit simulated cycler, {len(self.channels)} channels",
                          nickname="pyburnerkit-sim", version=CtiVersion.PRO8,
                          allow_control=self.allow_control, num_channels=len(self.channels))

    def _login(self, state: _ConnState, request: codec.LoginRequest) -> bytes:
        ok = self._credentials_ok(request)
        if ok:
            result = LoginResult.ALREADY_LOGGED_IN if state.logged_in else LoginResult.SUCCESS
            state.logged_in = True
            self.logins += 1
        else:
            result = LoginResult.FAILED
            self.login_failures += 1
        return codec.encode_feedback(codec.LoginFeedback(self._login_info(result)))

    def _answer(self, request: Any) -> Optional[bytes]:
        self._advance()
        handler = getattr(self, "_on_" + type(request).__name__, None)
        if handler is None:
            log.warning("%s: no handler for %s; no reply", self.name, type(request).__name__)
            return None
        reply = handler(request)
        return codec.encode_feedback(reply)

    def _feedback(self, request: Any, channel: int, result: int) -> codec.CommandFeedback:
        return codec.command_feedback(request.command, _as_i32(channel), result)

    def _valid(self, index: int) -> bool:
        return 0 <= index < len(self.channels)

    # -- handlers (sim thread) ------------------------------------------------------------
    def _on_ChannelInfoRequest(self, req: codec.ChannelInfoRequest) -> Any:
        with_aux = bool(req.aux_options & AuxOption.AUX)
        if req.channel_index == codec.ALL_CHANNELS or (self.mits10 and
                                                       self._valid(req.channel_index)):
            chosen = self.channels
            if req.channel_index == codec.ALL_CHANNELS:
                if req.selection == InfoSelection.RUNNING:
                    chosen = [c for c in chosen if c.running]
                elif req.selection == InfoSelection.UNSAFE:
                    chosen = [c for c in chosen if c.state is ChannelState.UNSAFE]
        elif self._valid(req.channel_index):
            chosen = [self.channels[req.channel_index]]
        else:
            chosen = []
        return codec.ChannelInfoFeedback(tuple(c.status(with_aux=with_aux) for c in chosen))

    def _on_AssignScheduleRequest(self, req: codec.AssignScheduleRequest) -> Any:
        targets = self.channels if req.assign_all else (
            [self.channels[req.channel_index]] if self._valid(req.channel_index) else [])
        if not targets:
            return self._feedback(req, req.channel_index, AssignResult.CHANNEL_DOES_NOT_EXIST)
        if not req.schedule:
            return self._feedback(req, req.channel_index, AssignResult.SCHEDULE_NAME_EMPTY)
        schedule = self.schedules.get(req.schedule)
        if schedule is None:
            return self._feedback(req, req.channel_index, AssignResult.SCHEDULE_NOT_FOUND)
        for ch in targets:
            if ch.running:
                return self._feedback(req, ch.index, AssignResult.CHANNEL_RUNNING)
        for ch in targets:
            ch.schedule = schedule
            ch.barcode = req.barcode
            ch.test_capacity_ah = req.test_capacity_ah
            ch.resumable = False  # MV initial values only apply on MITS 7 (SPEC11): ignored
        return self._feedback(req, req.channel_index, AssignResult.SUCCESS)

    def _on_StartRequest(self, req: codec.StartRequest) -> Any:
        if not req.channel_indexes:
            return self._feedback(req, codec.ALL_CHANNELS, StartResult.NO_SELECTED_CHANNELS)
        if not req.test_name:
            return self._feedback(req, req.channel_indexes[0], StartResult.TEST_NAME_PROBLEM)
        for index in req.channel_indexes:
            if not self._valid(index):
                return self._feedback(req, index, StartResult.INVALID_CHANNEL)
            ch = self.channels[index]
            if ch.running or ch.state in (ChannelState.UNSAFE, ChannelState.PAUSE):
                return self._feedback(req, index, StartResult.CHANNEL_RUNNING_OR_UNSAFE)
            if ch.state is ChannelState.SUSPENDED:
                return self._feedback(req, index, StartResult.CHANNEL_SUSPENDED)
            if ch.schedule is None:
                return self._feedback(req, index, StartResult.NO_SCHEDULE_ASSIGNED)
        for index in req.channel_indexes:
            self.channels[index].begin(req.test_name)
        return self._feedback(req, req.channel_indexes[0], StartResult.SUCCESS)

    def _on_StopRequest(self, req: codec.StopRequest) -> Any:
        if req.all_channels:
            targets = self.channels
        elif self._valid(req.channel_index):
            targets = [self.channels[req.channel_index]]
        else:
            return self._feedback(req, req.channel_index, StopResult.CHANNEL_DOES_NOT_EXIST)
        for ch in targets:
            if ch.running or ch.state is ChannelState.PAUSE:
                ch.exit_condition = "Stopped by CTI"
                ch.finish(ChannelState.IDLE, resumable=True)
        return self._feedback(req, req.channel_index, StopResult.SUCCESS)

    def _on_ResumeRequest(self, req: codec.ResumeRequest) -> Any:
        if req.all_channels:
            targets = [c for c in self.channels if c.resumable]
        elif self._valid(req.channel_index):
            targets = [self.channels[req.channel_index]]
        else:
            return self._feedback(req, req.channel_index, StartResult.INVALID_CHANNEL)
        for ch in targets:
            if ch.running or ch.state is ChannelState.UNSAFE:
                return self._feedback(req, ch.index, StartResult.CHANNEL_RUNNING_OR_UNSAFE)
            if ch.schedule is None:
                return self._feedback(req, ch.index, StartResult.NO_SCHEDULE_ASSIGNED)
            if not ch.resumable:
                return self._feedback(req, ch.index, StartResult.TEST_NAME_PROBLEM)
        for ch in targets:
            self._rerun(ch)
        return self._feedback(req, req.channel_index, StartResult.SUCCESS)

    @staticmethod
    def _rerun(ch: SimChannel) -> None:
        assert ch.schedule is not None
        ch.running = True
        ch.resumable = False
        ch.exit_condition = "N/A"
        ch.state = _STATE_OF_KIND[ch.schedule.steps[ch.step_index].kind]

    def _on_ContinueRequest(self, req: codec.ContinueRequest) -> Any:
        if not req.channel_indexes:
            return self._feedback(req, codec.ALL_CHANNELS, ContinueResult.INVALID_CHANNEL)
        for index in req.channel_indexes:
            if not self._valid(index):
                return self._feedback(req, index, ContinueResult.INVALID_CHANNEL)
            ch = self.channels[index]
            if ch.running:
                return self._feedback(req, index, ContinueResult.CHANNEL_RUNNING)
            if ch.state is ChannelState.UNSAFE:
                return self._feedback(req, index, ContinueResult.UNSAFE)
            if ch.state is not ChannelState.PAUSE or ch.schedule is None:
                return self._feedback(req, index, ContinueResult.NOT_IN_NORMAL_PAUSE)
        for index in req.channel_indexes:
            self._rerun(self.channels[index])
        return self._feedback(req, req.channel_indexes[0], ContinueResult.SUCCESS)

    def _on_JumpRequest(self, req: codec.JumpRequest) -> Any:
        if not self._valid(req.channel_index):
            return self._feedback(req, req.channel_index, StartResult.INVALID_CHANNEL)
        ch = self.channels[req.channel_index]
        if ch.schedule is None:
            return self._feedback(req, req.channel_index, StartResult.NO_SCHEDULE_ASSIGNED)
        if not ch.running or req.step_index < 0:
            # The step field is an i32 on the wire; a step before the first is no step.
            return self._feedback(req, req.channel_index, StartResult.INVALID_GO_STEP)
        if req.step_index >= len(ch.schedule.steps):
            ch.exit_condition = "Jump beyond the last step"
            ch.finish(ChannelState.FINISHED)
        else:
            ch.step_index = req.step_index
            ch.step_time_s = 0.0
            ch.exit_condition = "Go to step"
            ch.state = _STATE_OF_KIND[ch.schedule.steps[req.step_index].kind]
        return self._feedback(req, req.channel_index, StartResult.SUCCESS)

    def _mv_check(self, index: int, code: int) -> int:
        if not self._valid(index):
            return SetMVResult.FAILED
        if code not in META_CODE_TO_MV:
            return SetMVResult.META_CODE_DOES_NOT_EXIST
        if not self.channels[index].running:
            return SetMVResult.CHANNEL_NOT_RUNNING
        return SetMVResult.SUCCESS

    def _on_SetMVRequest(self, req: codec.SetMVRequest) -> Any:
        if req.mv_type != codec.MV_TYPE_IV or req.value_type != codec.MV_VALUE_FLOAT:
            return self._feedback(req, req.channel_index, SetMVResult.FAILED)
        result = self._mv_check(req.channel_index, req.meta_code)
        if result == SetMVResult.SUCCESS:
            self.channels[req.channel_index].mv[req.meta_code] = float(req.value)
        return self._feedback(req, req.channel_index, result)

    def _on_UpdateMVAdvancedRequest(self, req: codec.UpdateMVAdvancedRequest) -> Any:
        if not req.entries:
            return self._feedback(req, codec.ALL_CHANNELS, SetMVResult.FAILED)
        first = req.entries[0].channel_index
        now = self.clock()
        if self._last_mv_batch is not None and now - self._last_mv_batch < 0.2:
            return self._feedback(req, first, SetMVResult.UPDATE_TOO_FREQUENT)
        for e in req.entries:
            result = self._mv_check(e.channel_index, e.meta_code)
            if result != SetMVResult.SUCCESS:
                return self._feedback(req, e.channel_index, result)
        self._last_mv_batch = now
        for e in req.entries:
            self.channels[e.channel_index].mv[e.meta_code] = float(e.value)
        return self._feedback(req, first, SetMVResult.SUCCESS)

    def _on_GetSerialRequest(self, req: codec.GetSerialRequest) -> Any:
        digits = "".join(ch for ch in self.serial_number if ch.isdigit()) or "0"
        return codec.SerialFeedback(int(digits) & 0xFFFFFFFF)

    def _on_GetMVRequest(self, req: codec.GetMVRequest) -> Any:
        def answer(result: GetMVResult, value: Optional[float] = 0.0,
                   kind: MetaValueType = MetaValueType.DOUBLE) -> codec.GetMVFeedback:
            return codec.GetMVFeedback(_as_i32(req.channel_index), result, req.meta_code, kind,
                                       value)

        if not self._valid(req.channel_index):
            return answer(GetMVResult.CHANNEL_INDEX_ERROR)
        if req.mv_type != codec.MV_TYPE_IV:
            return answer(GetMVResult.ERROR)
        ch = self.channels[req.channel_index]
        if req.meta_code in META_CODE_TO_MV:
            return answer(GetMVResult.SUCCESS, ch.mv.get(req.meta_code, 0.0))
        status = ch.status(with_aux=True)
        if req.meta_code in (MetaCode.PV_STEP_INDEX, MetaCode.PV_CYCLE_INDEX):
            number = status.step if req.meta_code == MetaCode.PV_STEP_INDEX else status.cycle
            return answer(GetMVResult.SUCCESS, number or 0, MetaValueType.LONG)
        getter = _PV_FIELDS.get(req.meta_code)
        if getter is not None:
            return answer(GetMVResult.SUCCESS, float(getter(status)))
        if req.meta_code in MetaCode._value2member_map_:
            return answer(GetMVResult.META_CODE_UNSUPPORTED)
        return answer(GetMVResult.META_CODE_DOES_NOT_EXIST)


def _temperature(status: ChannelStatus) -> float:
    readings = status.aux.get("temperature", ())
    return readings[0].value if readings else 25.0


#: What the simulator answers to get-MV for each process-value meta code.
_PV_FIELDS: Dict[int, Callable[[ChannelStatus], float]] = {
    MetaCode.PV_STEP_TIME: lambda s: s.step_time_s,
    MetaCode.PV_TEST_TIME: lambda s: s.test_time_s,
    MetaCode.PV_VOLTAGE: lambda s: s.voltage_v,
    MetaCode.PV_CURRENT: lambda s: s.current_a,
    MetaCode.PV_CHARGE_CAPACITY: lambda s: s.charge_capacity_ah,
    MetaCode.PV_DISCHARGE_CAPACITY: lambda s: s.discharge_capacity_ah,
    MetaCode.PV_CHARGE_ENERGY: lambda s: s.charge_energy_wh,
    MetaCode.PV_DISCHARGE_ENERGY: lambda s: s.discharge_energy_wh,
    MetaCode.PV_DVDT: lambda s: s.dvdt_v_per_s,
    MetaCode.PV_INTERNAL_RESISTANCE: lambda s: s.internal_resistance_ohm,
    MetaCode.PV_TEMPERATURE: _temperature,
}


# ---------------------------------------------------------------------- pycti's spoofer
#: What every channel of an :class:`ArbinSpoofer` reports until ``update_channel_status``
#: changes it (pycti's spoofer shows fixed placeholder text and zero readings).
SPOOFER_CHANNEL_DEFAULTS: Dict[str, Any] = {
    "state": ChannelState.IDLE, "comm_failure": False, "schedule": "fake_schedule",
    "test_name": "fake_testname", "exit_condition": "none", "step_and_cycle": "none",
    "barcode": "none", "can_config_name": "none", "smb_config_name": "none",
    "master_channel": 1, **{name: 0.0 for name in _NUMBER_FIELDS},
}


def spoofer_login_info(num_channels: int) -> CyclerInfo:
    """The login feedback an :class:`ArbinSpoofer` sends (also the compat ``Msg`` default)."""
    return CyclerInfo(result=LoginResult.SUCCESS, ip_address="127.0.0.1",
                      serial_number="00000000", note="pyburnerkit ArbinSpoofer",
                      nickname="spoofer", version=CtiVersion.PRO8, allow_control=True,
                      num_channels=num_channels)


_SP = TypeVar("_SP", bound="ArbinSpoofer")


class ArbinSpoofer(ArbinSim):
    """pycti's ``ArbinSpoofer``, for tests written against it: ``ArbinSpoofer({"ip":
    "127.0.0.1", "port": 8956, "num_channels": 16})``, ``start()``, ``stop()``,
    ``update_channel_status(channel_index, values)``.

    Like pycti's spoofer it is a test double rather than a cycler: any user name and password
    log in, every command is answered with success (its channel echoed) and changes nothing,
    and each channel reports fixed placeholder readings (``SPOOFER_CHANNEL_DEFAULTS``) until
    ``update_channel_status`` pins others. For a cycler that runs schedules, refuses what a
    real one refuses and drifts like a cell, use :class:`~pyburnerkit.arbin.ArbinSim`.

    Differences from pycti's spoofer: the frames are real MITS Pro framing (pycti's spoofer
    sent feedbacks 2 bytes too long); ``start()`` returns once the port listens (pycti's
    returned before, which made its own tests flaky) and raises if the port is taken;
    channel states are per instance, not shared by every spoofer; one-channel requests
    outside the channel count get an empty answer instead of the last channel.

    :param config: ``ip`` (default 127.0.0.1), ``port`` (0 picks a free one; read ``port``
        after ``start()``) and ``num_channels`` (1..512, default 16); other keys are ignored.
    :raises ConfigurationError: ``config`` is not a dict or holds a bad value.
    """

    name = "arbin-spoofer"

    def __init__(self, config: Optional[Mapping[str, Any]] = None, **options: Any) -> None:
        if config is None:
            config = {}
        if not isinstance(config, Mapping):
            raise ConfigurationError(f"ArbinSpoofer config must be a dict, got "
                                     f"{type(config).__name__}")
        self._bind_host = str(config.get("ip", "127.0.0.1"))
        self._bind_port = int(check_range("port", config.get("port", 0), 0, 65535,
                                          integer=True))
        super().__init__(config.get("num_channels", 16), **options)
        for ch in self.channels:
            ch.pins = dict(SPOOFER_CHANNEL_DEFAULTS)

    def __repr__(self) -> str:
        return f"<ArbinSpoofer {self.host}:{self.port} channels={len(self.channels)}>"

    def start(self: _SP, host: Optional[str] = None, port: Optional[int] = None, *,
              listen: bool = True) -> _SP:
        """Listen on the configured ``ip``/``port`` (or the ones given) and serve.

        Blocks until the port listens. :raises OSError: the port is taken.
        """
        super().start(self._bind_host if host is None else host,
                      self._bind_port if port is None else port, listen=listen)
        return self

    def stop(self) -> None:
        """pycti's name for :meth:`~pyburnerkit.arbin.ArbinSim.close`: drop every client, stop
        listening, join the thread."""
        self.close()

    def update_channel_status(self, channel: int, values: Mapping[str, Any]) -> bool:
        """pycti's call: pin readings of the channel with wire index ``channel`` (0-based, as
        pycti's spoofer takes it).

        :returns: True once applied; False (logged) for an unknown channel, key or a value
            that does not fit, as pycti's spoofer returns False for an unknown key.
        """
        try:
            pins = status_pins(values, zero_based=True)
            index = int(check_range("channel index", channel, 0, len(self.channels) - 1,
                                    integer=True))
        except ConfigurationError as exc:
            log.warning("update_channel_status(%r) refused: %s", channel, exc)
            return False
        self.run_sync(lambda: self.channels[index].pins.update(pins))
        return True

    def _credentials_ok(self, request: codec.LoginRequest) -> bool:
        return True  # pycti's spoofer takes any user

    def _login_info(self, result: LoginResult) -> CyclerInfo:
        return spoofer_login_info(len(self.channels))

    def _login(self, state: _ConnState, request: codec.LoginRequest) -> bytes:
        state.logged_in = True
        self.logins += 1
        return codec.encode_feedback(codec.LoginFeedback(self._login_info(LoginResult.SUCCESS)))

    def _answer(self, request: Any) -> Optional[bytes]:
        if request.command not in codec.FEEDBACK_OF or \
                codec.FEEDBACK_OF[request.command] not in codec.RESULT_TYPES:
            return super()._answer(request)  # data answers: channel info, serial, get MV
        channel = getattr(request, "channel_index", None)
        if channel is None:
            entries = getattr(request, "entries", None)
            indexes = getattr(request, "channel_indexes", None)
            channel = (entries[0].channel_index if entries else
                       indexes[0] if indexes else codec.ALL_CHANNELS)
        return codec.encode_feedback(codec.command_feedback(request.command, _as_i32(channel),
                                                            0))
