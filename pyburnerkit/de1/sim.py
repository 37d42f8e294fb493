"""A simulated DE1: the state machine, shot execution from the uploaded profile with a simple
hydraulic model, ShotSamples at the real rate, water levels, MMR registers, calibration reads,
profile and firmware upload acceptance. Built on the same codec as the client.

It is a :class:`~pyburnerkit.ble.peripheral.Peripheral` hosted by a
:class:`~pyburnerkit.ble.simhost.BleSimHost` (:class:`DE1Sim` puts one on a rig of its own, what
``DE1Client("sim://")`` runs); pygatt reaches it through the fake ``gatttool``, in-process
clients through :class:`~pyburnerkit.ble.transport.SimTransport`. A
:class:`~pyburnerkit.ble.bench.Bench` is the physical world it may share with a simulated scale
(:class:`pyburnerkit.rigs.espresso.DE1Rig`): one simulated clock (``speed`` times real time)
and the cup. ``Bench`` is re-exported here for the code that imported it from this module.

Hydraulic model (deliberately simple): the puck is a conductance that grows as it erodes;
the group first fills its headspace (no pressure, no drops), then the pump follows the frame's
pressure or flow target with a first-order lag; liquid reaches the cup ``fall_time_s`` after
it leaves the shower screen. When the pump stops, flow decays with ``stop_tau_s``.
"""

from __future__ import annotations

import logging
import math
import random
import struct
from typing import Any, Callable, ClassVar, Dict, List, Mapping, Optional, Set, Tuple

from ..ble.bench import Bench
from ..ble.peripheral import (PROP_NOTIFY, PROP_READ, PROP_WRITE, GattCharacteristic,
                              Peripheral)
from ..ble.rig import SimRig, flag
from . import codec
from .models import (CalCommand, CalTarget, Calibration, FirmwareMap, FirmwareVersion, Frame,
                     MachineState as S, ShotSample, ShotSettings, StateInfo, SubState as U,
                     Temperatures, Versions, WaterLevels)

__all__ = ["Bench", "DE1Peripheral", "DE1Sim", "DEFAULT_DE1_ADDRESS", "DEFAULT_FRAMES"]

log = logging.getLogger(__name__)

DEFAULT_DE1_ADDRESS = "00:A0:50:DE:01:01"

#: The profile a fresh machine runs: 2 s fill at 4 mL/s, then 9 bar for 40 s.
DEFAULT_FRAMES = (
    Frame(0x01 | 0x02 | 0x04 | 0x40, 4.0, 92.0, 8.0, 4.0, 0),   # flow 4, exit over 4 bar
    Frame(0x40, 9.0, 92.0, 60.0, 0.0, 0),                       # pressure 9 bar
)


class DE1Peripheral(Peripheral):
    """The simulated machine. All methods run on the host thread."""

    def __init__(self, address: str = DEFAULT_DE1_ADDRESS, *, bench: Optional[Bench] = None,
                 firmware_build: int = 1333, line_frequency: int = 50, ghc_active: bool = False,
                 seed: Optional[int] = None, fall_time_s: float = 0.17,
                 stop_tau_s: float = 0.1, calibration_key: Optional[int] = None) -> None:
        super().__init__(address, "DE1")
        self.bench = bench or Bench()
        self.rng = random.Random(seed)
        self.line_frequency = line_frequency
        self.fall_time_s = fall_time_s
        self.stop_tau_s = stop_tau_s
        props = {name: (PROP_READ if r else 0) | (PROP_WRITE if w else 0)
                 | (PROP_NOTIFY if n else 0) for name, _, (r, w, n) in codec.CHARACTERISTICS}
        chars = [GattCharacteristic(uuid, props[name], b"\x00")
                 for name, uuid, _ in codec.CHARACTERISTICS]
        self.add_service(codec.SERVICE, chars)
        self.state = StateInfo(S.SLEEP, U.NO_STATE)
        self.settings = ShotSettings()
        self.versions = Versions(FirmwareVersion(4, 1.5, 100, 0, 0x12345670),
                                 FirmwareVersion(4, 1.3, firmware_build, 1, 0xABCDEF10))
        self.registers: Dict[int, int] = {r.address: 0 for r in codec.REGISTERS}
        self.registers.update({
            0x800000: 0x0000BEEF, 0x800004: 0x0003, 0x800008: 1300, 0x80000C: 2,
            0x800010: firmware_build, 0x803808: 50, 0x80380C: 0, 0x803810: 20, 0x803814: 40,
            0x803818: 990, 0x80381C: 0x03 | (codec.GHC_ACTIVE if ghc_active else 0),
            0x803828: 70, 0x80382C: 70, 0x803830: 0x0000D1E1, 0x803834: 230, 0x803838: 100,
            0x80383C: 1000, 0x803840: 60, 0x803844: 850, 0x803848: 200, 0x80384C: 60,
            0x803850: 0, 0x803854: 1, 0x803858: 0, 0x80385C: 0, 0x803860: 1})
        self.calibration = {CalTarget.FLOW: (1.0, 1.0), CalTarget.PRESSURE: (1.0, 1.0),
                            CalTarget.TEMPERATURE: (0.0, 0.0)}
        # the fixed 32-bit key calibration writes need; the real value is the DE1's (de1app
        # hard-codes it) and is not in the spec, so a test chooses one; None refuses every write
        self.calibration_key = calibration_key
        self.calibration_writes: List[Calibration] = []
        # fault injection: the next MMR reply notification starting at each of these
        # addresses is lost in the air (BLE drops notifications under load, specs/pygatt.md
        # section 3); tests set it
        self.lose_mmr_replies: Set[int] = set()
        self.water = WaterLevels(40.0, 5.0)
        # SetTime (A003): what the last write set, echoed on read (spec open point 3: nothing
        # more is known of it)
        self.set_time_s = 0
        # profile
        self.header = (1, len(DEFAULT_FRAMES), 1, 0.0, 6.0)
        self.frames: List[Frame] = list(DEFAULT_FRAMES)
        self.ext: Dict[int, Tuple[float, float]] = {}
        self._upload_header: Optional[Tuple[int, int, int, float, float]] = None
        self._upload_frames: Dict[int, Frame] = {}
        self._upload_ext: Dict[int, Tuple[float, float]] = {}
        self.profiles_accepted = 0
        self.state_requests: List[S] = []
        self.mmr_frozen = False
        # firmware
        self.fw_image = bytearray()
        self.fw_received: Dict[int, int] = {}
        self.fw_erasing = False
        self.fw_installed: Optional[int] = None
        # physics
        self._t = self.bench.now()
        self._until: Optional[float] = None  # end of a timed substate
        self._next_state: Optional[Tuple[S, U]] = None
        self.pressure = 0.0
        self.flow = 0.0
        self.pump_on = False
        self.shot_t = 0.0
        self.frame_index = 0
        self.frame_t = 0.0
        self.frame_vol = 0.0
        self.frame_start_value = 0.0
        self.headspace_left = 0.0
        self.absorb_left = 0.0
        self.poured_ml = 0.0
        self.mix_temp = 88.0
        self.head_temp = 88.0
        self._ticks = 0
        self._timer: Any = None
        self._stopped = False

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> None:
        """Start the sample ticker (host thread; the rig hosting it does it)."""
        self._t = self.bench.now()
        self._tick_at = self._t
        self._schedule()

    def stop(self) -> None:
        self._stopped = True
        if self._timer is not None:
            self._timer.cancel()

    @property
    def sample_period_s(self) -> float:
        return 25.0 / (2.0 * self.line_frequency)

    def _schedule(self) -> None:
        if self._stopped:
            return
        period = self.sample_period_s * (3 if self.state.state is S.SLEEP else 1)
        self._tick_at += period
        delay = self.bench.real_delay(self._tick_at - self.bench.now())
        if delay < -1.0:  # far behind (a loaded machine): do not burst, resynchronise
            self._tick_at = self.bench.now()
            delay = 0.0
        self._timer = self.call_later(max(0.0, delay), self._tick)

    def _tick(self) -> None:
        self._advance(self.bench.now())
        self._ticks += 1
        self.notify(codec.SHOT_SAMPLE, codec.encode_shot_sample(self.sample()))
        if self._ticks % 2 == 0:
            self.notify(codec.WATER_LEVELS, codec.encode_water_levels(self.water))
        if self._ticks % 4 == 0 and self.is_subscribed(codec.TEMPERATURES):
            self.notify(codec.TEMPERATURES, codec.encode_temperatures(self.temperatures()))
        self._schedule()

    # ------------------------------------------------------------------ model outputs
    def sample(self) -> ShotSample:
        half_cycles = int(round(self._t * 2 * self.line_frequency)) & 0xFFFF
        frame = self.frames[self.frame_index] if self.frames else None
        setp = frame.set_value if frame and not frame.flags & 0x01 else 0.0
        setf = frame.set_value if frame and frame.flags & 0x01 else 0.0
        temp = frame.temperature_c if frame else 92.0
        return ShotSample(half_cycles, min(self.pressure, 15.99), min(self.flow, 15.99),
                          self.mix_temp, self.head_temp, temp, temp,
                          setp if self.pump_on else 0.0, setf if self.pump_on else 0.0,
                          self.frame_index if self.state.state is S.ESPRESSO else 0,
                          150 if self.settings.steam_temp_c else 20)

    def temperatures(self) -> Temperatures:
        return Temperatures(self.mix_temp, 150.0, self.head_temp, 20.0,
                            self.settings.group_temp_c, float(self.settings.steam_temp_c),
                            self.settings.group_temp_c, 20.0)

    @property
    def build(self) -> int:
        return self.registers[0x800010]

    # ------------------------------------------------------------------ state machine
    def _set_state(self, state: S, sub: U, *, force: bool = False) -> None:
        new = StateInfo(state, sub)
        if new != self.state or force:
            self.state = new
            self.notify(codec.STATE_INFO, codec.encode_state_info(new))

    def _timed(self, seconds: float, then: Optional[Tuple[S, U]]) -> None:
        """Stay ``seconds``, then enter ``then`` (``None``: end the flow)."""
        self._until = self._t + seconds
        self._next_state = then

    def request(self, req: S) -> None:
        self._advance(self.bench.now())
        self.state_requests.append(req)
        cur = self.state.state
        ghc = bool(self.registers[0x80381C] & codec.GHC_ACTIVE)
        if req is S.NO_REQUEST:
            self._set_state(self.state.state, self.state.substate, force=True)
        elif req is S.IDLE:
            if cur in (S.SLEEP, S.GOING_TO_SLEEP, S.SCHED_IDLE):
                self._set_state(S.IDLE, U.NO_STATE)
                self._until = None
            elif cur.is_flow or cur in (S.CLEAN, S.DESCALE, S.AIR_PURGE):
                self._end_flow()
        elif req is S.SLEEP:
            if cur in (S.IDLE, S.REFILL):
                self._set_state(S.GOING_TO_SLEEP, U.NO_STATE)
                self._timed(1.0, (S.SLEEP, U.NO_STATE))
        elif req is S.SKIP_TO_NEXT:
            if cur is S.ESPRESSO and self.state.substate in (U.PRE_INFUSE, U.POUR) \
                    and self.build >= 1260:
                self._next_frame()
        elif req in (S.ESPRESSO, S.STEAM, S.HOT_WATER, S.HOT_WATER_RINSE):
            if cur is S.IDLE and not ghc:  # a GHC machine only starts from its own buttons
                self._start_flow(req)
        elif req in (S.CLEAN, S.DESCALE, S.AIR_PURGE):
            if cur is S.IDLE:
                self._set_state(req, U.CLEAN_INIT if req is S.CLEAN else
                                U.DESCALE_INIT if req is S.DESCALE else U.NO_STATE)
                # cleaning soaks for a minute; the air purge takes ~10 s and ends asleep
                self._timed(10.0 if req is S.AIR_PURGE else 90.0,
                            (S.SLEEP, U.NO_STATE) if req is S.AIR_PURGE
                            else (S.IDLE, U.NO_STATE))
        # anything else: the DE1 ignores requests it does not accept in this state

    def _start_flow(self, state: S) -> None:
        self.shot_t = 0.0
        self.frame_index = 0
        self.frame_t = 0.0
        self.frame_vol = 0.0
        self.poured_ml = 0.0
        self.frame_start_value = 0.0
        self.headspace_left = 6.0 if state is S.ESPRESSO else 0.0
        self.absorb_left = 3.0 if state is S.ESPRESSO else 0.0
        self._set_state(state, U.HEAT_WATER_HEATER)
        self._timed(0.6, (state, U.STABILIZE_MIX_TEMP))

    def _begin_pumping(self) -> None:
        st = self.state.state
        self.pump_on = True
        if st is S.ESPRESSO:
            self._set_state(st, U.PRE_INFUSE if self.header[2] > 0 else U.POUR)
        elif st is S.STEAM:
            self._set_state(st, U.STEAMING)
            self._timed(float(self.settings.steam_length_s or 255), None)
        elif st is S.HOT_WATER:
            self._set_state(st, U.POUR)
            self._timed(float(self.settings.hot_water_length_s or 255), None)
        elif st is S.HOT_WATER_RINSE:
            self._set_state(st, U.POUR)
            timeout = self.registers[0x803848] / 10.0 if self.build >= 1283 else 255.0
            self._timed(timeout or 255.0, None)

    def _end_flow(self) -> None:
        st = self.state.state
        self.pump_on = False
        if st is S.ESPRESSO:
            self._set_state(S.ESPRESSO, U.FLUSH)
            self._timed(1.0, (S.IDLE, U.NO_STATE))
        else:
            self._set_state(S.IDLE, U.NO_STATE)
            self._until = None

    def _next_frame(self) -> None:
        frame = self.frames[self.frame_index]
        self.frame_start_value = self.flow if frame.flags & 0x01 else self.pressure
        self.frame_index += 1
        self.frame_t = 0.0
        self.frame_vol = 0.0
        if self.frame_index >= len(self.frames):
            self.frame_index = len(self.frames) - 1
            self._end_flow()
            return
        nxt = self.frames[self.frame_index]
        self.frame_start_value = self.flow if nxt.flags & 0x01 else self.pressure
        if self.frame_index >= self.header[2]:
            self._set_state(S.ESPRESSO, U.POUR)

    # ------------------------------------------------------------------ physics
    def _advance(self, to: float) -> None:
        step = 0.01
        while self._t + 1e-9 < to:
            dt = min(step, to - self._t)
            self._step(dt)
            self._t += dt

    def _step(self, dt: float) -> None:
        if self._until is not None and self._t >= self._until:
            self._until = None
            nxt, self._next_state = self._next_state, None
            if nxt is None:
                self._end_flow()
            elif nxt[1] is U.STABILIZE_MIX_TEMP:
                self._set_state(*nxt)
                self._timed(0.6, (nxt[0], U.PRE_INFUSE))
            elif nxt[1] is U.PRE_INFUSE:
                self._begin_pumping()
            else:
                self._set_state(*nxt)
        st = self.state.state
        target_flow = 0.0
        to_cup = False
        if self.pump_on and st is S.ESPRESSO:
            target_flow, to_cup = self._espresso_step(dt), True
        elif self.pump_on and st is S.HOT_WATER:
            target_flow, to_cup = self.registers[0x80384C] / 10.0 or 6.0, True
            self.pressure += (0.5 - self.pressure) * min(1.0, dt / 0.3)
        elif self.pump_on and st is S.HOT_WATER_RINSE:
            target_flow = self.registers[0x803840] / 10.0
        elif self.pump_on and st is S.STEAM:
            target_flow = self.registers[0x803828] / 100.0
        if self.pump_on:
            if st is not S.ESPRESSO:
                self.flow += (target_flow - self.flow) * min(1.0, dt / 0.3)
        else:
            decay = math.exp(-dt / self.stop_tau_s)
            self.flow *= decay
            self.pressure *= decay
            if self.flow < 0.005:
                self.flow = 0.0
            to_cup = st in (S.ESPRESSO, S.HOT_WATER) or self.flow > 0 and self._was_cup
        if self.pump_on:
            self._was_cup = to_cup
        vol = self.flow * dt
        self.water = WaterLevels(max(0.0, self.water.level_mm - vol / 40.0),
                                 self.water.start_fill_level_mm)
        if st is S.IDLE and self.water.level_mm < self.water.start_fill_level_mm + 2:
            self.water = WaterLevels(min(45.0, self.water.level_mm + 2 * dt),
                                     self.water.start_fill_level_mm)
        if to_cup and vol > 0:
            if self.headspace_left > 0:
                self.headspace_left -= vol
            elif self.absorb_left > 0:
                self.absorb_left -= vol
            else:
                self.poured_ml += vol
                self.bench.deposit(self._t + self.fall_time_s, vol)
        goal = self.frames[self.frame_index].temperature_c if self.pump_on else 88.0
        self.mix_temp += (goal - self.mix_temp) * min(1.0, dt / 2.0)
        self.head_temp += (goal - self.head_temp) * min(1.0, dt / 4.0)

    _was_cup = False

    def _espresso_step(self, dt: float) -> float:
        frame = self.frames[self.frame_index]
        self.shot_t += dt
        self.frame_t += dt
        conductance = min(1.0, 0.12 + 0.008 * self.shot_t)  # mL/s per bar, puck erodes
        target = frame.set_value
        if frame.flags & 0x20 and frame.seconds > 0:  # smooth ramp
            frac = min(1.0, self.frame_t / frame.seconds)
            target = self.frame_start_value + (frame.set_value - self.frame_start_value) * frac
        limit = self.ext.get(self.frame_index)
        if self.headspace_left > 0:
            self.flow += ((target if frame.flags & 0x01 else 6.0) - self.flow) * min(1.0, dt / 0.3)
            self.pressure += (0.2 - self.pressure) * min(1.0, dt / 0.3)
        elif frame.flags & 0x01:  # flow control: pressure builds as the puck resists
            self.flow += (target - self.flow) * min(1.0, dt / 0.3)
            self.pressure += (min(12.0, self.flow / conductance) - self.pressure) * \
                min(1.0, dt / 1.5)
            if limit and limit[0] > 0:
                self.pressure = min(self.pressure, limit[0])
                self.flow = min(self.flow, self.pressure * conductance)
        else:  # pressure control
            self.pressure += (target - self.pressure) * min(1.0, dt / 0.5)
            self.flow = self.pressure * conductance
            if limit and limit[0] > 0:
                self.flow = min(self.flow, limit[0])
                self.pressure = self.flow / conductance
        self.frame_vol += self.flow * dt
        # exits
        done = self.frame_t >= frame.seconds
        if frame.max_volume_ml and self.frame_vol >= frame.max_volume_ml:
            done = True
        if frame.flags & 0x02 and self.headspace_left <= 0:
            value = self.flow if frame.flags & 0x08 else self.pressure
            if (frame.flags & 0x04 and value > frame.trigger) or \
                    (not frame.flags & 0x04 and value < frame.trigger):
                done = True
        if done:
            self._next_frame()
        return self.flow

    # ------------------------------------------------------------------ GATT hooks
    def on_connect(self) -> None:
        self.mmr_frozen = False

    def on_read(self, ch: GattCharacteristic) -> bytes:
        self._advance(self.bench.now())
        u = ch.uuid
        if u == codec.STATE_INFO:
            return codec.encode_state_info(self.state)
        if u == codec.VERSIONS:
            return codec.encode_versions(self.versions)
        if u == codec.SHOT_SETTINGS:
            return codec.encode_shot_settings(self.settings)
        if u == codec.WATER_LEVELS:
            return codec.encode_water_levels(self.water)
        if u == codec.TEMPERATURES:
            return codec.encode_temperatures(self.temperatures())
        if u == codec.SHOT_SAMPLE:
            return codec.encode_shot_sample(self.sample())
        if u == codec.SET_TIME:
            return codec.encode_set_time(self.set_time_s)
        if u == codec.HEADER_WRITE:
            h = self.header
            return codec.encode_header(h[1], h[2], h[3], h[4])
        return ch.value

    def on_write(self, ch: GattCharacteristic, data: bytes, with_response: bool) -> None:
        ch.value = data
        u = ch.uuid
        try:
            if u == codec.REQUESTED_STATE:
                self.request(codec.decode_requested_state(data))
            elif u == codec.READ_FROM_MMR:
                self._mmr_read(data)
            elif u == codec.WRITE_TO_MMR:
                self._mmr_write(data)
            elif u == codec.SHOT_SETTINGS:
                s = codec.decode_shot_settings(data)
                if s.steam_length_s == 0 and self.state.state is S.STEAM:
                    self._end_flow()
                self.settings = s
            elif u == codec.WATER_LEVELS:
                w = codec.decode_water_levels(data)
                self.water = WaterLevels(self.water.level_mm, w.start_fill_level_mm)
            elif u == codec.HEADER_WRITE:
                self._upload_header = codec.decode_header(data)
                self._upload_frames, self._upload_ext = {}, {}
            elif u == codec.FRAME_WRITE:
                self._frame_write(data)
            elif u == codec.CALIBRATION:
                self._calibration(codec.decode_calibration(data))
            elif u == codec.SET_TIME:
                self.set_time_s = codec.decode_set_time(data)
            elif u == codec.FW_MAP_REQUEST:
                self._fw_map(codec.decode_fw_map(data))
        except Exception as exc:  # a real DE1 ignores what it cannot parse
            log.debug("DE1 sim ignored a write to %s: %s", codec.NAME_BY_UUID.get(u), exc)

    def _frame_write(self, data: bytes) -> None:
        header = self._upload_header
        if header is None:
            return
        idx = data[0]
        count = header[1]
        if idx == count:  # the tail: the profile is complete
            if len(self._upload_frames) == count:
                self.header = header
                self.frames = [self._upload_frames[i] for i in range(count)]
                self.ext = dict(self._upload_ext)
                self.profiles_accepted += 1
            self._upload_header = None
            return
        kind, index, value = codec.decode_frame_write(data)
        if kind == "frame" and index < count:
            assert isinstance(value, Frame)  # decode_frame_write's value for a frame
            self._upload_frames[index] = value
        elif kind == "ext":
            assert isinstance(value, tuple)  # (limit, range) for an extension frame
            self._upload_ext[index] = value

    def _mmr_read(self, data: bytes) -> None:
        length, address, _ = codec.decode_mmr(data)
        if self.mmr_frozen:
            return
        words = length + 1
        if address >= codec.MMR_PAGE:
            addrs = [address + 4 * i for i in range(words)]
            if self.build <= 1260 and any(a in (0x803820, 0x803824) for a in addrs):
                self.mmr_frozen = True  # firmware <= 1260 hangs on these reads (spec 3)
                return
            values = [self.registers.get(a, 0) for a in addrs]
            for i in range(0, words, 4):
                if addrs[i] in self.lose_mmr_replies:
                    self.lose_mmr_replies.discard(addrs[i])
                    continue
                self.notify(codec.READ_FROM_MMR,
                            codec.encode_mmr_reply(addrs[i], values[i:i + 4]))

    def _mmr_write(self, data: bytes) -> None:
        length, address, payload = codec.decode_mmr(data)
        if address >= codec.MMR_PAGE:
            reg = codec.REGISTER_BY_ADDRESS.get(address)
            if reg is None or not reg.writable or length != 4:
                return
            raw = struct.unpack("<I", payload[:4])[0]
            if reg.name == "fan_threshold":
                raw = min(raw, 60)  # the DE1 clamps
            self.registers[address] = raw
            return
        # firmware image chunk
        if self.fw_erasing or length == 0:
            return
        end = address + length
        if len(self.fw_image) < end:
            self.fw_image.extend(bytes(end - len(self.fw_image)))
        self.fw_image[address:end] = payload[:length]
        self.fw_received[address] = length

    def _fw_map(self, req: FirmwareMap) -> None:
        if req.erase:
            self.fw_image = bytearray()
            self.fw_received = {}
            self.fw_erasing = True
            self.notify(codec.FW_MAP_REQUEST, codec.encode_fw_map(FirmwareMap(0, 1, 1, 0)))
            self.call_later(self.bench.real_delay(1.0), self._erase_done)
        elif req.first_error == codec.FW_REPORT_FIRST:
            self.notify(codec.FW_MAP_REQUEST,
                        codec.encode_fw_map(FirmwareMap(0, 0, 1, self._first_error())))

    def _erase_done(self) -> None:
        self.fw_erasing = False
        self.notify(codec.FW_MAP_REQUEST, codec.encode_fw_map(FirmwareMap(0, 0, 1, 0)))

    def _first_error(self) -> int:
        if len(self.fw_image) < 64:
            return 0
        header = codec.decode_firmware_header(bytes(self.fw_image[:64]))
        if header["board_marker"] != codec.FW_BOARD_MARKER:
            return 0
        total = 64 + int(header["byte_count"])
        for offset in range(0, total, 16):
            if offset not in self.fw_received:
                return offset
        self.fw_installed = int(header["version"])
        return codec.FW_NO_ERRORS

    def _calibration(self, c: Calibration) -> None:
        if c.command in (CalCommand.READ, CalCommand.READ_FACTORY):
            reported, measured = self.calibration.get(c.target, (0.0, 0.0))
            if c.command is CalCommand.READ_FACTORY:
                reported, measured = {CalTarget.TEMPERATURE: (0.0, 0.0)}.get(c.target, (1.0, 1.0))
            reply = Calibration(c.command, c.target, reported, measured, 0)
        elif self.calibration_key is None or c.key != self.calibration_key or \
                c.target not in self.calibration:
            reply = Calibration(c.command, CalTarget.ERROR, 0.0, 0.0, 0)  # refused
        else:
            self.calibration_writes.append(c)
            if c.command is CalCommand.WRITE:
                self.calibration[c.target] = (c.reported, c.measured)
            else:  # reset to factory
                self.calibration[c.target] = (0.0, 0.0) if c.target is CalTarget.TEMPERATURE \
                    else (1.0, 1.0)
            reported, measured = self.calibration[c.target]
            reply = Calibration(c.command, c.target, reported, measured, 0)
        self.notify(codec.CALIBRATION, codec.encode_calibration(reply))


class DE1Sim(SimRig):
    """A simulated radio with one DE1 on its bench: what ``DE1Client("sim://")`` runs in
    process. ``start()`` also listens on 127.0.0.1 for the fake ``gatttool`` unless
    ``listen=False``; :meth:`tool_dir` writes the fake programs. A DE1 sharing its bench with a
    simulated scale is :class:`pyburnerkit.rigs.espresso.DE1Rig`.

    ``sim://`` options (``DE1Client("sim://?speed=4&firmware_build=1250")``): ``speed``,
    ``seed``, ``firmware_build``, ``ghc_active``, ``calibration_key``, ``address``.

    :raises ConfigurationError: ``speed`` out of range.
    """

    OPTIONS: ClassVar[Mapping[str, Callable[[str], Any]]] = {
        "speed": float, "seed": int, "firmware_build": int, "ghc_active": flag,
        "calibration_key": lambda text: int(text, 0), "address": str}

    def __init__(self, *, speed: float = 1.0, firmware_build: int = 1333,
                 ghc_active: bool = False, address: str = DEFAULT_DE1_ADDRESS,
                 seed: Optional[int] = None, **de1_options: Any) -> None:
        super().__init__(speed=speed, seed=seed)
        self.de1 = self.add(DE1Peripheral(address, bench=self.bench,
                                          firmware_build=firmware_build,
                                          ghc_active=ghc_active, seed=seed, **de1_options))
