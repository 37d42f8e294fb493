"""The DE1 client: a blocking facade over a BLE session that owns every pygatt call.

>>> from pyburnerkit.de1.client import DE1Client
>>> with DE1Client("00:A0:50:DE:01:01").connect() as de1:   # doctest: +SKIP
...     print(de1.state, de1.info.firmware_build)

Connect and initialise as the spec describes (subscriptions, firmware build and feature flags,
MMR bulk read, state, versions, shot settings, water levels, calibration); live state, shot
samples (with integrated volumes), water levels and temperatures land in the cache and arrive
as events. Mode requests check the preconditions of spec section 2 first. Flow starts need
``allow_remote_start=True``; settings, profile and firmware writes need ``allow_writes=True``.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from typing import Any, Callable, Dict, List, Optional, Sequence, Set, Tuple, Union

from .._core.client import BaseClient
from .._core.pending import Pending
from .._core.timeouts import TimeoutArg, resolve_timeout
from ..ble.endpoint import ble_link, parse_ble_endpoint
from ..ble.session import BleSession
from ..ble.transport import LinkDown, Transport
from ..errors import (ConfigurationError, check_range, DeviceError, DeviceTimeoutError,
                      PyBurnerKitError, UnsupportedFeatureError,
                      WriteNotAllowedError)
from ..types import DEFAULT
from . import codec
from .firmware import FirmwareImage, load_firmware
from .models import (FLOW_MODES, CalCommand, CalTarget, Calibration, DE1Info, FeatureFlags,
                     FirmwareMap, FlowPhase, MachineModel, MachineState as S, Mode,
                     RegisterChanged, ShotSample, ShotSampleEvent, ShotSettings,
                     ShotSettingsChanged, StateChanged, StateInfo, SubState as U,
                     Temperatures, TemperaturesChanged, UploadProgress, VOLUME_FRAMES, Versions,
                     WaterLevels, WaterLevelsChanged)
from .library import ProfileLibrary
from .profile import Program, load as load_profile
from .sim import DEFAULT_DE1_ADDRESS, DE1Sim

log = logging.getLogger(__name__)

#: Settings backed by MMR registers that ``write_setting`` accepts.
MMR_SETTINGS = ("fan_threshold", "tank_temperature", "heater_phase1_flow", "heater_phase2_flow",
                "heater_phase2_timeout", "heater_idle_temperature", "steam_flow",
                "steam_high_flow_start", "flush_flow", "flush_temperature", "flush_timeout",
                "hot_water_flow", "usb_outlet", "user_present", "steam_purge_mode",
                "refill_kit_present", "flow_calibration")

_STOP_REFUSED = frozenset({S.SHORT_CAL, S.SELF_TEST, S.LONG_CAL, S.FATAL_ERROR, S.INIT,
                           S.NO_REQUEST, S.SKIP_TO_NEXT, S.REFILL, S.IN_BOOT_LOADER})
_MODE_STATE = {Mode.ESPRESSO: S.ESPRESSO, Mode.STEAM: S.STEAM, Mode.HOT_WATER: S.HOT_WATER,
               Mode.FLUSH: S.HOT_WATER_RINSE, Mode.CLEAN: S.CLEAN, Mode.DESCALE: S.DESCALE,
               Mode.TRANSPORT: S.AIR_PURGE}


class _MmrRead:
    """MMR registers asked for and not answered yet; ``request`` is the caller's, if any."""

    def __init__(self, addresses: Sequence[int], done: Callable[[Dict[int, int]], Any],
                 request: Optional[Pending] = None) -> None:
        self.missing: Set[int] = set(addresses)
        self.values: Dict[int, int] = {}
        self.done = done
        self.request = request

    def abandoned(self) -> bool:
        """The caller gave up (timed out): nobody waits for the answer any more."""
        return self.request is not None and self.request.done()


class DE1Session(BleSession):
    family = "de1"
    subscribe_uuids = codec.SUBSCRIBE_ORDER
    #: state the client reads back into the cache (a setter's read-back, read_temperatures):
    #: a notification queued before such a read must not put the older value back
    read_supersedes = frozenset({codec.WATER_LEVELS, codec.SHOT_SETTINGS, codec.TEMPERATURES})

    def __init__(self, *, line_frequency: int, init_timeout: float, **kw: Any) -> None:
        super().__init__(**kw)
        self.line_frequency = line_frequency
        self.init_timeout = init_timeout
        self.registers: Dict[int, int] = {}
        self.build = 0
        self.versions: Optional[Versions] = None
        self.state_info: Optional[StateInfo] = None
        self._mmr_reads: List[_MmrRead] = []
        # calibration requests awaiting their notification, oldest first: (command, target, cb)
        self._cal_waiters: List[Tuple[CalCommand, CalTarget, Callable[[Calibration], Any]]] = []
        self._fw_request: Optional[Pending] = None  # the firmware upload in progress
        self._fw_waiter: Optional[Callable[[FirmwareMap], Any]] = None
        self._init_timer: Any = None
        self._mmr_retry_timer: Any = None
        self.calibration: Dict[str, Calibration] = {}
        self.last_stop_request = 0.0
        self.fw_cancel = False
        self.preinfuse_frames = 1
        # volume tracking
        self._prev_sample_time: Optional[int] = None
        self.tracking = False
        self.vol_pre = 0.0
        self.vol_pour = 0.0
        self.vol_by_frame = [0.0] * VOLUME_FRAMES
        self.missed_samples = 0
        self._handlers = self._make_handlers()  # characteristic -> notification handler

    # ================================================================== init (spec 10)
    def begin_init(self) -> None:
        self._mmr_reads = []
        self._cal_waiters = []
        self._fw_waiter = None
        self._set_state_info(codec.decode_state_info(self.read(codec.STATE_INFO)))
        self.versions = codec.decode_versions(self.read(codec.VERSIONS))
        settings = codec.decode_shot_settings(self.read(codec.SHOT_SETTINGS))
        levels = codec.decode_water_levels(self.read(codec.WATER_LEVELS))
        temps = codec.decode_temperatures(self.read(codec.TEMPERATURES))
        self.cache.update((("versions", self.versions), ("shot_settings", settings),
                           ("water_levels", levels), ("temperatures", temps)))
        self._init_timer = self.loop.call_later(self.init_timeout, self._init_timed_out)
        self.mmr_read(0x800010, 1, self._init_have_build)
        self._arm_mmr_retry()

    def _arm_mmr_retry(self) -> None:
        """pyDE1 waits up to 4 s for the MMR replies and asks once more for the missing ones
        (a notification can be lost): one retry per init phase, well before ``init_timeout``."""
        if self._mmr_retry_timer is not None:
            self._mmr_retry_timer.cancel()
        self._mmr_retry_timer = self.loop.call_later(min(4.0, self.init_timeout / 4.0),
                                                     self._retry_missing_mmr)

    def _retry_missing_mmr(self) -> None:
        """Ask again for the registers still missing: read requests only (A005), never a
        register write (A006), so nothing that changes the machine is ever repeated."""
        self._mmr_retry_timer = None
        missing = sorted({a for read in self._mmr_reads if not read.abandoned()
                          for a in read.missing})
        if missing:
            log.info("de1 %s: no reply for %d MMR register(s), asking again: %s", self.endpoint,
                     len(missing), ", ".join(f"0x{a:06X}" for a in missing))
        for address in missing:
            if not self.guard(functools.partial(self.write, codec.READ_FROM_MMR,
                                                codec.encode_mmr_read(address, 1))):
                return

    def on_link_down(self) -> None:
        # timers of a dead link must not act on the next attempt
        for name in ("_init_timer", "_mmr_retry_timer"):
            timer = getattr(self, name)
            if timer is not None:
                timer.cancel()
                setattr(self, name, None)

    def _init_timed_out(self) -> None:
        self._init_timer = None
        if self._mmr_retry_timer is not None:
            self._mmr_retry_timer.cancel()
            self._mmr_retry_timer = None
        self.link_failed(DeviceTimeoutError(
            f"the DE1 did not answer the initial reads within {self.init_timeout:g} s",
            device=self.family, endpoint=self.endpoint))

    def _init_have_build(self, values: Dict[int, int]) -> None:
        self.build = values[0x800010]
        reads = codec.init_mmr_reads(self.build)
        remaining = [len(reads)]

        def one_done(_values: Dict[int, int]) -> None:
            remaining[0] -= 1
            if remaining[0] == 0:
                self._init_flags()

        for address, words in reads:
            if not self.guard(functools.partial(self.mmr_read, address, words, one_done)):
                return
        self._arm_mmr_retry()

    def _init_flags(self) -> None:
        def step() -> None:
            if self.build >= 1320:
                self.mmr_write(0x803858, 1)
                self.registers[0x803858] = 1
            self._init_calibration(list(self._cal_plan()))
        self.guard(step)

    @staticmethod
    def _cal_plan() -> Any:
        for target in (CalTarget.FLOW, CalTarget.PRESSURE, CalTarget.TEMPERATURE):
            for command in (CalCommand.READ, CalCommand.READ_FACTORY):
                yield command, target

    def _init_calibration(self, plan: List[Any]) -> None:
        if not plan:
            self._init_done()
            return
        command, target = plan.pop(0)

        def got(reply: Calibration) -> None:
            suffix = "_factory" if command is CalCommand.READ_FACTORY else ""
            key = f"{target.name.lower()}{suffix}"
            self.calibration[key] = reply
            self._init_calibration(plan)

        self._cal_waiters.append((command, target, got))
        self.guard(lambda: self.write(codec.CALIBRATION, codec.encode_calibration(
            Calibration(command, target, 0.0, 0.0, 0))))

    def _init_done(self) -> None:
        self.on_link_down()  # the init timers are done with
        r = self.registers
        assert self.versions is not None  # begin_init read them
        info = DE1Info(versions=self.versions,
                       firmware_build=self.build, features=FeatureFlags.from_build(self.build),
                       hw_config=r.get(0x800000, 0), model=r.get(0x800004, 0),
                       cpu_board_model=r.get(0x800008, 0) / 1000.0,
                       machine_model=MachineModel(r.get(0x80000C, 0)),
                       serial_number=r.get(0x803830, 0), ghc_info=r.get(0x80381C, 0),
                       heater_voltage=r.get(0x803834, 0))
        fresh = [("info", info), ("registers", self.register_values()),
                 ("calibration", dict(self.calibration))]
        profile = self.cache.value("profile")
        if profile is not None:  # the DE1 keeps its profile across BLE reconnects
            fresh.append(("profile", profile))
        self.cache.update(fresh)
        self.established()

    # ================================================================== MMR
    def mmr_read(self, address: int, words: int, done: Callable[[Dict[int, int]], Any],
                 request: Optional[Pending] = None) -> None:
        """Ask for ``words`` registers (a read request written to A005); ``done(values)`` runs
        when every one has been notified. Reads whose caller gave up are forgotten here, so
        replies lost under timeouts do not pile up."""
        self._mmr_reads = [r for r in self._mmr_reads if not r.abandoned()]
        addresses = [address + 4 * i for i in range(words)]
        self._mmr_reads.append(_MmrRead(addresses, done, request))
        self.write(codec.READ_FROM_MMR, codec.encode_mmr_read(address, words))

    def mmr_write(self, address: int, raw: int) -> None:
        self.write(codec.WRITE_TO_MMR, codec.encode_mmr_register(address, raw))

    def register_values(self) -> Dict[str, float]:
        return {reg.name: reg.decode(self.registers[reg.address])
                for reg in codec.REGISTERS if reg.address in self.registers}

    def _mmr_reply(self, data: bytes) -> None:
        values = codec.decode_mmr_reply(data)
        self.registers.update(values)
        changed = []
        for address, raw in values.items():
            reg = codec.REGISTER_BY_ADDRESS.get(address)
            if reg is not None:
                changed.append(RegisterChanged(reg.name, reg.decode(raw)))
        if self.state.value == "connected":
            self.cache.set("registers", self.register_values())
            for event in changed:
                self.dispatcher.publish(event)
        for read in list(self._mmr_reads):
            hit = read.missing.intersection(values)
            if hit:
                read.missing -= hit
                read.values.update({a: values[a] for a in hit})
                if not read.missing:
                    self._mmr_reads.remove(read)
                    read.done(read.values)

    # ================================================================== notifications
    def on_value(self, uuid: str, data: bytes) -> None:
        """A notification (I/O thread). An undecodable one raises :class:`ProtocolError`;
        the BLE session logs, counts and drops it."""
        handler = self._handlers.get(uuid)
        if handler is not None:
            handler(data)

    def _make_handlers(self) -> Dict[str, Callable[[bytes], Any]]:
        return {codec.SHOT_SAMPLE: lambda d: self._sample(codec.decode_shot_sample(d)),
                codec.STATE_INFO: lambda d: self._set_state_info(codec.decode_state_info(d)),
                codec.WATER_LEVELS: self._water_levels,
                codec.READ_FROM_MMR: self._mmr_reply,
                codec.TEMPERATURES: self._temperatures,
                codec.SHOT_SETTINGS: self._shot_settings,
                codec.CALIBRATION: self._calibration_reply,
                codec.FW_MAP_REQUEST: self._fw_map_reply}

    def _water_levels(self, data: bytes) -> None:
        levels = codec.decode_water_levels(data)
        self.cache.set("water_levels", levels)
        self.dispatcher.publish(WaterLevelsChanged(levels))

    def _temperatures(self, data: bytes) -> None:
        temps = codec.decode_temperatures(data)
        self.cache.set("temperatures", temps)
        self.dispatcher.publish(TemperaturesChanged(temps))

    def _shot_settings(self, data: bytes) -> None:
        settings = codec.decode_shot_settings(data)
        self.cache.set("shot_settings", settings)
        self.dispatcher.publish(ShotSettingsChanged(settings))

    def _calibration_reply(self, data: bytes) -> None:
        reply = codec.decode_calibration(data)
        waiter = self._take_cal_waiter(reply)
        if waiter is not None:
            waiter(reply)

    def _fw_map_reply(self, data: bytes) -> None:
        reply = codec.decode_fw_map(data)
        waiter = self._fw_waiter
        if waiter is not None:
            waiter(reply)

    def _take_cal_waiter(self, reply: Calibration) -> Optional[Callable[[Calibration], Any]]:
        """The oldest waiter this reply answers (same command and target; an error reply
        answers the oldest waiter of its command), so concurrent requests do not steal."""
        waiters = self._cal_waiters
        for i, (command, target, cb) in enumerate(waiters):
            if command == reply.command and (target == reply.target
                                             or reply.target is CalTarget.ERROR):
                del waiters[i]
                return cb
        return None

    def _set_state_info(self, info: StateInfo) -> None:
        old = self.state_info
        self.state_info = info
        self.cache.set("state", info)
        if old is not None and old == info:
            return
        if info.state.is_flow and (old is None or old.state != info.state):
            self.vol_pre = self.vol_pour = 0.0  # a new sequence
            self.vol_by_frame = [0.0] * VOLUME_FRAMES
            self._prev_sample_time = None
        self.tracking = info.state.is_flow and info.substate.flow_phase is FlowPhase.DURING
        self.dispatcher.publish(StateChanged(info.state, info.substate,
                                             old.state if old else None,
                                             old.substate if old else None))

    def _sample(self, sample: ShotSample) -> None:
        prev, self._prev_sample_time = self._prev_sample_time, sample.sample_time
        if prev is not None and self.tracking:
            delta = (sample.sample_time - prev) % 65536
            if 20 <= delta <= 30 or 45 <= delta <= 55:
                if delta > 30:
                    self.missed_samples += 1
                vol = sample.group_flow_ml_s * delta / (2.0 * self.line_frequency)
                if self.state_info is not None and self.state_info.substate is U.PRE_INFUSE:
                    self.vol_pre += vol
                else:
                    self.vol_pour += vol
                # pyDE1's per-frame split: espresso by the frame the sample reports, every
                # other flow (no profile frames) into entry 0
                espresso = self.state_info is not None and self.state_info.state is S.ESPRESSO
                frame = sample.frame_number if espresso else 0
                if frame < VOLUME_FRAMES:
                    self.vol_by_frame[frame] += vol
        by_frames = tuple(self.vol_by_frame)
        self.cache.update((("shot_sample", sample),
                           ("volume", (self.vol_pre, self.vol_pour)),
                           ("volume_by_frames", by_frames)))
        self.dispatcher.publish(ShotSampleEvent(sample, self.vol_pre, self.vol_pour, by_frames))

    # ================================================================== ops (I/O thread)
    def op_mode(self, mode: Mode, request: Pending) -> None:
        """Check spec section 2's preconditions against the live state, then write."""
        info = self.state_info
        if info is None:
            raise DeviceError("the DE1 state is not known yet")
        cur = info.state
        ghc = bool(self.registers.get(0x80381C, 0) & codec.GHC_ACTIVE)
        target: Optional[S] = None
        if mode is Mode.SLEEP:
            if cur in (S.SLEEP, S.GOING_TO_SLEEP):
                target = None
            elif cur in (S.IDLE, S.REFILL):
                target = S.SLEEP
            else:
                raise DeviceError(f"cannot go to sleep from {cur.name}: stop the machine first",
                                  code=409)
        elif mode is Mode.WAKE:
            target = S.IDLE if cur in (S.SLEEP, S.GOING_TO_SLEEP) else None
        elif mode is Mode.STOP:
            if cur in _STOP_REFUSED:
                raise DeviceError(f"stop is refused while the DE1 is in {cur.name}", code=409)
            target = None if cur in (S.SLEEP, S.GOING_TO_SLEEP, S.SCHED_IDLE, S.IDLE) \
                else S.IDLE
            if target is not None:
                self.last_stop_request = time.monotonic()
        elif mode is Mode.END_STEAM:
            request.resolve(self.end_steam())
            return
        elif mode is Mode.SKIP_TO_NEXT:
            if self.build < 1260:
                raise UnsupportedFeatureError(
                    f"skip to next needs firmware build 1260 or later (this DE1 has {self.build})",
                    code=418)
            if cur is not S.ESPRESSO or info.substate not in (U.PRE_INFUSE, U.POUR):
                raise DeviceError(f"skip to next only works while pouring espresso, the DE1 is "
                                  f"in {cur.name}/{info.substate.name}", code=409)
            target = S.SKIP_TO_NEXT
        elif mode in _MODE_STATE:
            if mode in FLOW_MODES and ghc:
                raise UnsupportedFeatureError(
                    f"{mode.value} cannot be started over BLE: the group head controller is "
                    f"active (start it on the machine)", code=418)
            if cur is not S.IDLE:
                raise DeviceError(f"{mode.value} can only start from IDLE, the DE1 is in "
                                  f"{cur.name}", code=409)
            target = _MODE_STATE[mode]
        elif mode is Mode.NO_REQUEST:
            target = S.NO_REQUEST
        if target is not None:
            self.write(codec.REQUESTED_STATE, codec.encode_requested_state(target))
        request.resolve(target)

    def stop_flow(self) -> bool:
        """pyDE1's stop_flow: request Idle only in a flow state before/during flow, at most
        every 0.25 s. Returns True when it wrote (I/O thread)."""
        info = self.state_info
        if info is None or not info.state.is_flow:
            return False
        if info.substate.flow_phase not in (FlowPhase.BEFORE, FlowPhase.DURING):
            return False
        now = time.monotonic()
        if now - self.last_stop_request < 0.25:
            return False
        self.last_stop_request = now
        self.write(codec.REQUESTED_STATE, codec.encode_requested_state(S.IDLE))
        return True

    def end_steam(self) -> Optional[S]:
        """pyDE1's EndSteam (spec section 2), I/O thread. While steaming: with the steam
        purge mode register set (firmware 1320+) request Idle; otherwise write ShotSettings with
        TargetSteamLength 0 (the DE1 ends steam at once) and then re-write the original
        settings. In any other state it is :meth:`stop_flow`. Returns the state asked for."""
        info = self.state_info
        if info is not None and info.state is S.STEAM and \
                info.substate.flow_phase is FlowPhase.DURING:
            self.last_stop_request = time.monotonic()
            if self.build >= 1320 and self.registers.get(0x803850, 0):
                self.write(codec.REQUESTED_STATE, codec.encode_requested_state(S.IDLE))
                return S.IDLE
            import dataclasses
            raw = self.read(codec.SHOT_SETTINGS)
            original = codec.decode_shot_settings(raw)
            self.write(codec.SHOT_SETTINGS, codec.encode_shot_settings(
                dataclasses.replace(original, steam_length_s=0)))
            self.write(codec.SHOT_SETTINGS, raw)
            self.cache.set("shot_settings", original)
            return S.IDLE
        return S.IDLE if self.stop_flow() else None

    def op_mmr_read(self, address: int, words: int, request: Pending) -> None:
        self.mmr_read(address, words, lambda values: request.resolve(values), request)

    def op_mmr_write(self, address: int, raw: int, request: Pending) -> None:
        self.mmr_write(address, raw)
        # read back: the DE1 may clamp or round (spec 3); a lost read-back is never answered
        # by writing again (the MMR retry of the initialisation only repeats read requests)
        self.mmr_read(address, 1, lambda values: request.resolve(values[address]), request)

    def op_calibration(self, command: CalCommand, target: CalTarget, request: Pending,
                       reported: float = 0.0, measured: float = 0.0, key: int = 0) -> None:
        def got(reply: Calibration) -> None:
            if reply.target is CalTarget.ERROR:
                hint = " (wrong write key?)" if command in (CalCommand.WRITE,
                                                           CalCommand.RESET_TO_FACTORY) else ""
                request.fail(self._stamp(DeviceError(
                    f"the DE1 refused the calibration {command.name} of {target.name}{hint}",
                    code=255)))
                return
            if command in (CalCommand.WRITE, CalCommand.RESET_TO_FACTORY):
                cal = dict(self.cache.value("calibration", {}))
                cal[target.name.lower()] = Calibration(CalCommand.READ, target, reply.reported,
                                                       reply.measured, 0)
                self.calibration = cal
                self.cache.set("calibration", cal)
            request.resolve(reply)
        entry = (command, target, got)
        self._cal_waiters.append(entry)
        try:
            self.write(codec.CALIBRATION, codec.encode_calibration(
                Calibration(command, target, reported, measured, key)))
        except BaseException:
            if entry in self._cal_waiters:
                self._cal_waiters.remove(entry)
            raise

    def op_upload_profile(self, program: Program, write_tank: bool, request: Pending) -> None:
        total = 2 + len(program.frames) + len(program.ext_frames)
        done = 0

        def progress(phase: str) -> None:
            self.dispatcher.publish(UploadProgress("profile", phase, done, total))

        progress("starting")
        self.write(codec.HEADER_WRITE, program.header)
        done += 1
        for frame in program.frames + program.ext_frames:
            self.write(codec.FRAME_WRITE, frame)
            done += 1
            progress("uploading")
        self.write(codec.FRAME_WRITE, program.tail)
        done += 1
        back = self.read(codec.HEADER_WRITE)
        if back != program.header:
            progress("failed")
            raise DeviceError(f"profile verification failed: the DE1 holds header "
                              f"{back.hex()} instead of {program.header.hex()}")
        self.preinfuse_frames = program.preinfuse_frames
        if write_tank and program.tank_temperature_c is not None:
            self.mmr_write(0x80380C, int(round(program.tank_temperature_c)))
            self.registers[0x80380C] = int(round(program.tank_temperature_c))
        progress("completed")
        self.cache.set("profile", program)
        request.resolve(program.fingerprint)

    def op_upload_firmware(self, image: FirmwareImage, request: Pending) -> None:
        """Erase, 16-byte chunks, verify (spec 5); chunks are chained through the loop so
        notifications, cancel and close interleave. One upload at a time."""
        if self._fw_request is not None and not self._fw_request.done():
            raise DeviceError("a firmware upload is already in progress")
        self._fw_request = request
        self.fw_cancel = False
        total = len(image.data)
        chunks = list(image.chunks())

        def publish(phase: str, done: int) -> None:
            self.dispatcher.publish(UploadProgress("firmware", phase, done, total))

        def fail(exc: PyBurnerKitError) -> None:
            self._fw_waiter = None
            publish("failed", 0)
            request.fail(exc)

        def erased(reply: FirmwareMap) -> None:
            if reply.erase:
                publish("erasing", 0)
                return
            self._fw_waiter = None
            publish("uploading", 0)
            self.loop.call_soon_threadsafe(next_chunk, 0)

        def next_chunk(i: int) -> None:
            if request.done():
                return
            if self.fw_cancel:
                publish("canceled", i * 16)
                request.fail(self._stamp(DeviceError("firmware upload canceled")))
                return
            if i >= len(chunks):
                publish("verifying", total)
                self.loop.call_later(0.2, verify)
                return
            offset, data = chunks[i]
            try:
                self.write(codec.WRITE_TO_MMR, codec.encode_mmr_write(offset, data))
            except LinkDown as exc:
                request.fail(self._stamp(exc))
                self.link_failed(exc)
                return
            except PyBurnerKitError as exc:
                fail(self._stamp(exc))
                return
            if (i + 1) % 64 == 0:
                publish("uploading", (i + 1) * 16)
            self.loop.call_soon_threadsafe(next_chunk, i + 1)

        def verify() -> None:
            self._fw_waiter = verified
            if not self.guard(lambda: self.write(codec.FW_MAP_REQUEST, codec.encode_fw_map(
                    FirmwareMap(0, 0, 1, codec.FW_REPORT_FIRST)))):
                request.fail(self._stamp(LinkDown("link lost during verification")))

        def verified(reply: FirmwareMap) -> None:
            if reply.erase:
                return
            self._fw_waiter = None
            if reply.first_error == codec.FW_NO_ERRORS:
                publish("completed", total)
                request.resolve(image.version)
            else:
                fail(self._stamp(DeviceError(f"firmware verification failed: first bad "
                                             f"address 0x{reply.first_error:06X}",
                                             code=reply.first_error)))

        self._fw_waiter = erased
        publish("starting", 0)
        self.write(codec.FW_MAP_REQUEST, codec.encode_fw_map(FirmwareMap(0, 1, 1, 0)))


def _hex(value: Any) -> str:
    return f"0x{value:06X}" if isinstance(value, int) and not isinstance(value, bool) \
        else repr(value)


def _op(fn: Callable[..., Any], *args: Any) -> Callable[[DE1Session, Pending], Any]:
    return lambda session, request: fn(session, *args, request)


class LaterEvent:
    """A timer made by :meth:`~pyburnerkit.de1.DE1Client.post_later`: it publishes one event on
    the client's events thread when it fires, unless :meth:`cancel` came first.

    ``cancel()`` may be called from any thread; once it returned, the event is never
    published (the flag is checked under the same lock the firing takes). The loop timer
    itself is dropped on the I/O thread, which owns it.
    """

    __slots__ = ("_session", "_event", "_lock", "_timer", "_cancelled", "_fired")

    def __init__(self, session: Any, event: Any) -> None:
        self._session = session
        self._event = event
        self._lock = threading.Lock()
        self._timer: Any = None
        self._cancelled = False
        self._fired = False

    @property
    def event(self) -> Any:
        return self._event

    @property
    def cancelled(self) -> bool:
        return self._cancelled

    @property
    def fired(self) -> bool:
        """True once the event was published."""
        return self._fired

    def arm(self, delay_s: float) -> None:
        """Start the timer (I/O thread)."""
        with self._lock:
            if self._cancelled:
                return
            self._timer = self._session.loop.call_later(delay_s, self._fire)

    def _fire(self) -> None:
        with self._lock:  # I/O thread; publish only enqueues for the events thread
            if self._cancelled:
                return
            self._fired = True
            self._timer = None
            self._session.dispatcher.publish(self._event)

    def cancel(self) -> None:
        """Make sure the event is never published (any thread; idempotent, never blocks)."""
        with self._lock:
            if self._cancelled or self._fired:
                return
            self._cancelled = True
            timer, self._timer = self._timer, None
        if timer is not None:
            self._session.call_soon_threadsafe(timer.cancel)


class DE1Client(BaseClient[DE1Session]):
    """A Decent DE1 over BLE.

    >>> with DE1Client("sim://") as de1:   # a simulated DE1 in this process
    ...     print(de1.state.name)
    SLEEP

    :param endpoint: the DE1's Bluetooth address (``"00:A0:50:DE:01:01"``; ``pyburnerkit de1
        scan`` finds it), or ``"sim://[?options]"`` for a simulated DE1 run in process by this
        client (:class:`~pyburnerkit.de1.sim.DE1Sim`; options ``speed``, ``seed``,
        ``firmware_build``, ``ghc_active``, ``calibration_key``, ``address``; reach it with
        :attr:`simulator` after connecting).
    :param backend: ``"gatttool"`` (default) or ``"bgapi"``; ignored with ``transport=``.
    :param hci_device: gatttool adapter; ``serial_port``: BLED112 port for BGAPI.
    :param reset_on_start: reset the adapter first (needs sudo; off by default).
    :param send_delay: gatttool backend: pexpect's pause before each command, 0..1 s.
    :param allow_writes: permit settings, profile and firmware writes.
    :param allow_remote_start: permit starting flows (espresso, steam, hot water, flush,
        clean, descale, transport) over BLE.
    :param line_frequency: mains frequency in Hz (50 or 60) for volume integration.
    :param transport: the expert hook: a :class:`~pyburnerkit.ble.transport.Transport` to use
        instead of pygatt (e.g. ``rig.transport()`` of a simulated rig shared with a scale,
        :class:`pyburnerkit.rigs.espresso.DE1Rig`); not with ``sim://``.
    :param silence_timeout: seconds without any notification before the link counts as lost
        (the DE1 streams ShotSamples at least every ~0.75 s), 0.1..3600 s; None disables it.
    :param init_timeout: seconds the initial reads may take on each connect, 0.5..600 s.
    :param options: ``timeout``, ``connect_timeout``, ``reconnect``, ``on_event``, ``trace``...
        as for every client.
    :raises ConfigurationError: a malformed endpoint, an unknown ``sim://`` option, or a value
        out of range. Nothing is connected before :meth:`connect`.
    """

    family = "de1"
    default_timeout = 10.0
    default_connect_timeout = 30.0

    def __init__(self, endpoint: str, *, backend: str = "gatttool",
                 hci_device: str = "hci0", serial_port: Optional[str] = None,
                 reset_on_start: bool = False, send_delay: Optional[float] = None,
                 allow_writes: bool = False, allow_remote_start: bool = False,
                 line_frequency: int = 50, transport: Optional[Transport] = None,
                 silence_timeout: Optional[float] = 10.0, init_timeout: float = 8.0,
                 **options: Any) -> None:
        where = parse_ble_endpoint(endpoint, what="DE1", sim_names=("de1",))
        if line_frequency not in (50, 60):
            raise ConfigurationError(f"line_frequency={line_frequency!r} Hz: expected 50 or 60 Hz")
        if silence_timeout is not None:
            silence_timeout = float(check_range("silence_timeout", silence_timeout, 0.1, 3600,
                                                "s"))
        self.init_timeout = float(check_range("init_timeout", init_timeout, 0.5, 600, "s"))
        link = ble_link(where, simulator=DE1Sim, default_address=DEFAULT_DE1_ADDRESS,
                        own_simulator=self._own_simulator, transport=transport,
                        backend=backend, hci_device=hci_device, serial_port=serial_port,
                        reset_on_start=reset_on_start, send_delay=send_delay)
        self.address = link.address
        self._transport = link.transport
        self.allow_writes = bool(allow_writes)
        self.allow_remote_start = bool(allow_remote_start)
        self.line_frequency = line_frequency
        self.silence_timeout = silence_timeout
        super().__init__(link.label, **options)

    @property
    def simulator(self) -> Optional[DE1Sim]:
        """The in-process simulator of a ``sim://`` client, once connected (None otherwise):
        ``client.simulator.de1`` is the simulated machine; poke it with
        ``client.simulator.run(fn)``, which runs ``fn`` on the simulator's thread."""
        sim: Optional[DE1Sim] = self._sim
        return sim

    def _make_session(self, **common: Any) -> DE1Session:
        assert self.timeout is not None  # BaseClient validated it as a positive number
        return DE1Session(transport=self._transport, address=self.address,
                          silence_timeout=self.silence_timeout, op_timeout=min(self.timeout, 5.0),
                          line_frequency=self.line_frequency, init_timeout=self.init_timeout,
                          **common)

    def _redact_frame(self, frame: Any) -> Any:
        """Calibration writes carry the DE1's fixed write key in bytes 0..3: hide it."""
        if isinstance(frame, tuple) and len(frame) == 2 and frame[0] == codec.CALIBRATION[4:8] \
                and isinstance(frame[1], (bytes, bytearray)) and len(frame[1]) >= 4 \
                and any(frame[1][:4]):
            return (frame[0], b"\xff\xff\xff\xff" + bytes(frame[1][4:]))
        return frame

    @property
    def _de1(self) -> DE1Session:
        return self._require_session()

    def _run(self, description: str, op: Callable[[DE1Session, Pending], Any],
             timeout: TimeoutArg = DEFAULT, *, is_write: bool = False) -> Any:
        """Run ``op`` on the I/O thread as one request; block until it resolved (typed by
        the caller: the op decides what it resolves with)."""
        return self._call(Pending(description, op, is_write=is_write), timeout)

    def _need_writes(self, what: str) -> None:
        if not self.allow_writes:
            raise WriteNotAllowedError(f"{what} changes the machine: open the client with "
                                       f"allow_writes=True", device=self.family,
                                       endpoint=self.endpoint)

    # ------------------------------------------------------------------ cached values
    @property
    def protocol_errors(self) -> int:
        """How many notifications could not be decoded or handled (each was logged with the
        recent frames and dropped; the link carried on)."""
        session = self._session
        return 0 if session is None else getattr(session, "protocol_errors", 0)

    @property
    def state_info(self) -> Optional[StateInfo]:
        info: Optional[StateInfo] = self._cache.value("state")
        return info

    @property
    def state(self) -> Optional[S]:
        info = self.state_info
        return None if info is None else info.state

    @property
    def substate(self) -> Optional[U]:
        info = self.state_info
        return None if info is None else info.substate

    @property
    def shot_sample(self) -> Optional[ShotSample]:
        sample: Optional[ShotSample] = self._cache.value("shot_sample")
        return sample

    @property
    def volume(self) -> Tuple[float, float]:
        """(preinfusion mL, pour mL) of the current or last flow."""
        volume: Tuple[float, float] = self._cache.value("volume", (0.0, 0.0))
        return volume

    @property
    def volume_by_frames(self) -> Tuple[float, ...]:
        """mL per profile frame of the current or last flow (pyDE1's ``volume_by_frames``, 20
        entries): espresso volume by the frame each sample reported, other flows in entry 0."""
        by_frames: Tuple[float, ...] = self._cache.value("volume_by_frames",
                                                         (0.0,) * VOLUME_FRAMES)
        return by_frames

    @property
    def water_levels(self) -> Optional[WaterLevels]:
        levels: Optional[WaterLevels] = self._cache.value("water_levels")
        return levels

    @property
    def temperatures(self) -> Optional[Temperatures]:
        temps: Optional[Temperatures] = self._cache.value("temperatures")
        return temps

    @property
    def shot_settings(self) -> Optional[ShotSettings]:
        settings: Optional[ShotSettings] = self._cache.value("shot_settings")
        return settings

    @property
    def info(self) -> Optional[DE1Info]:
        """Read once at connect: versions, firmware build, feature flags, model, serial..."""
        info: Optional[DE1Info] = self._cache.value("info")
        return info

    @property
    def registers(self) -> Dict[str, float]:
        """The last value of every MMR register the client has read, decoded, by register
        name (a copy of the cache; never blocks)."""
        return dict(self._cache.value("registers", {}))

    @property
    def calibration(self) -> Dict[str, Calibration]:
        return dict(self._cache.value("calibration", {}))

    @property
    def profile(self) -> Optional[Program]:
        """The profile uploaded by this client (kept across reconnects), or None."""
        program: Optional[Program] = self._cache.value("profile")
        return program

    # ------------------------------------------------------------------ reads
    def read_state(self, timeout: TimeoutArg = DEFAULT) -> StateInfo:
        """Read StateInfo from the DE1; blocks until it answered.

        :raises DeviceTimeoutError: no answer within ``timeout``.
        """
        def op(session: DE1Session, request: Pending) -> None:
            info = codec.decode_state_info(session.read(codec.STATE_INFO))
            session._set_state_info(info)
            request.resolve(info)
        info: StateInfo = self._run("read state", op, timeout)
        return info

    def read_shot_settings(self, timeout: TimeoutArg = DEFAULT) -> ShotSettings:
        """Read ShotSettings from the DE1; blocks until it answered.

        :raises DeviceTimeoutError: no answer within ``timeout``.
        """
        def op(session: DE1Session, request: Pending) -> None:
            settings = codec.decode_shot_settings(session.read(codec.SHOT_SETTINGS))
            session.cache.set("shot_settings", settings)
            request.resolve(settings)
        settings: ShotSettings = self._run("read shot settings", op, timeout)
        return settings

    def read_water_levels(self, timeout: TimeoutArg = DEFAULT) -> WaterLevels:
        """Read the water levels from the DE1; blocks until it answered.

        :raises DeviceTimeoutError: no answer within ``timeout``.
        """
        def op(session: DE1Session, request: Pending) -> None:
            levels = codec.decode_water_levels(session.read(codec.WATER_LEVELS))
            # the cache follows the read: notifications queued before it are dropped as older
            session.cache.set("water_levels", levels)
            request.resolve(levels)
        levels: WaterLevels = self._run("read water levels", op, timeout)
        return levels

    def read_temperatures(self, timeout: TimeoutArg = DEFAULT) -> Temperatures:
        """Read the temperatures from the DE1; blocks until it answered.

        :raises DeviceTimeoutError: no answer within ``timeout``.
        """
        def op(session: DE1Session, request: Pending) -> None:
            temps = codec.decode_temperatures(session.read(codec.TEMPERATURES))
            session.cache.set("temperatures", temps)
            request.resolve(temps)
        temps: Temperatures = self._run("read temperatures", op, timeout)
        return temps

    def read_setting(self, name: str, timeout: TimeoutArg = DEFAULT) -> float:
        """Read one MMR register by name (see ``codec.REGISTERS``), scaled to its unit."""
        reg = codec.REGISTER_BY_NAME.get(name)
        if reg is None:
            raise ConfigurationError(f"unknown DE1 register {name!r}; known: "
                                     f"{', '.join(r.name for r in codec.REGISTERS)}")
        values: Dict[int, int] = self._run(f"read {name}",
                                           _op(DE1Session.op_mmr_read, reg.address, 1), timeout)
        return reg.decode(values[reg.address])

    # ------------------------------------------------------------------ raw MMR (experts)
    @staticmethod
    def _mmr_address(address: Union[int, str]) -> int:
        full = getattr(address, "address", None)  # pyDE1's MMR0x80LowAddr (the compat names)
        if isinstance(full, int):
            return full
        if isinstance(address, str):
            reg = codec.REGISTER_BY_NAME.get(address)
            if reg is None:
                raise ConfigurationError(f"unknown DE1 register {address!r}; known: "
                                         f"{', '.join(r.name for r in codec.REGISTERS)}")
            return reg.address
        return address

    def read_mmr(self, address: Union[int, str], words: int = 1,
                 timeout: TimeoutArg = DEFAULT) -> List[int]:
        """Read ``words`` raw 32-bit registers starting at ``address`` (an address in the
        register page 0x800000..0x80FFFF, a register name, or pyDE1's ``MMR0x80LowAddr``
        member from :mod:`pyburnerkit.de1.compat`), for experts.

        Returns the raw little-endian words, unscaled, in address order. Reading changes
        nothing, so it needs no permission; registers the client knows also update
        :attr:`registers`. Blocks until every word was notified.

        :raises ConfigurationError: an address outside the register page, not word aligned,
            or a length outside 1..256 words.
        :raises UnsupportedFeatureError: the range includes 0x803820/0x803824, which hang
            firmware before build 1265 (spec 3); nothing was sent.
        :raises DeviceTimeoutError: not every word arrived within ``timeout``.
        """
        addr = self._mmr_address(address)
        codec.check_raw_mmr_read(addr, words)
        info = self.info
        build = info.firmware_build if info is not None else 0
        if info is not None and codec.freezes_firmware(addr, words, build):
            raise UnsupportedFeatureError(
                f"reading MMR 0x803820/0x803824 hangs firmware before build 1265 (this DE1 has "
                f"{build}); nothing was sent", device=self.family, endpoint=self.endpoint)
        values: Dict[int, int] = self._run(f"read MMR 0x{addr:06X}",
                                           _op(DE1Session.op_mmr_read, addr, words), timeout)
        return [values[addr + 4 * i] for i in range(words)]

    def write_mmr(self, address: Union[int, str], raw: int,
                  timeout: TimeoutArg = DEFAULT) -> int:
        """Write one raw 32-bit register (an address or a register name), for experts, and
        return the raw value read back (the DE1 may clamp or round).

        Refused before anything is sent unless the client allows writes, the address is a
        known writable register (``codec.REGISTERS``; never the firmware image below
        0x800000), the raw value encodes a value inside the register's limits (e.g.
        ``flush_temperature`` 0..990 raw = 0..99 °C) and the firmware is new enough for it.
        Blocks until the read-back arrived. If this call times out, the device may still
        apply the write later; it is never retried automatically.

        :raises WriteNotAllowedError: the client was not opened with ``allow_writes=True``.
        :raises ConfigurationError: an unknown or read-only register, or a raw value out of its
            limits (the message names the value, the limit and the unit).
        :raises UnsupportedFeatureError: the register needs newer firmware.
        """
        addr = self._mmr_address(address)
        self._need_writes(f"write_mmr({_hex(addr)})")
        reg = codec.check_raw_mmr_write(addr, raw)
        info = self.info
        if info is not None and info.firmware_build < reg.min_build:
            raise UnsupportedFeatureError(
                f"{reg.name} needs firmware build {reg.min_build} or later (this DE1 has "
                f"{info.firmware_build})", device=self.family, endpoint=self.endpoint)
        back: int = self._run(f"write MMR 0x{addr:06X}",
                              _op(DE1Session.op_mmr_write, addr, raw), timeout, is_write=True)
        return back

    # ------------------------------------------------------------------ SetTime, ShotDirectory
    def read_time(self, timeout: TimeoutArg = DEFAULT) -> int:
        """Read SetTime (A003): the DE1's clock as pyDE1 sees it, whole seconds (spec 1: the
        layout is pyDE1's, a big-endian U64, untested on hardware there too).

        :raises DeviceTimeoutError: no answer within ``timeout``.
        """
        def op(session: DE1Session, request: Pending) -> None:
            request.resolve(codec.decode_set_time(session.read(codec.SET_TIME)))
        seconds: int = self._run("read time", op, timeout)
        return seconds

    def set_time(self, timestamp: Optional[int] = None,
                 timeout: TimeoutArg = DEFAULT) -> int:
        """Write SetTime (A003): ``timestamp`` in whole seconds (default: now, Unix time), as
        pyDE1's ``de1/setting/time`` does; returns the value read back.

        Blocks until the read-back arrived. If this call times out, the device may still apply
        the write later; it is never retried automatically.

        :raises WriteNotAllowedError: the client was not opened with ``allow_writes=True``.
        :raises ConfigurationError: not a whole number in 0..2**64-1 s.
        """
        self._need_writes("set_time")
        payload = codec.encode_set_time(int(time.time()) if timestamp is None else timestamp)

        def op(session: DE1Session, request: Pending) -> None:
            session.write(codec.SET_TIME, payload)
            request.resolve(codec.decode_set_time(session.read(codec.SET_TIME)))
        seconds: int = self._run("set time", op, timeout, is_write=True)
        return seconds

    def read_shot_directory(self, timeout: TimeoutArg = DEFAULT) -> bytes:
        """Read ShotDirectory (A004) raw. Neither pyDE1 nor de1app decodes it and its layout
        is not known (spec 1), so the bytes come back as the DE1 sent them; nothing writes it.

        :raises DeviceTimeoutError: no answer within ``timeout``.
        """
        def op(session: DE1Session, request: Pending) -> None:
            request.resolve(bytes(session.read(codec.SHOT_DIRECTORY)))
        data: bytes = self._run("read shot directory", op, timeout)
        return data

    def read_calibration(self, target: Union[CalTarget, str] = CalTarget.FLOW, *,
                         factory: bool = False, timeout: TimeoutArg = DEFAULT) -> Calibration:
        """Read one calibration (``factory``: the factory value); blocks until the DE1
        notified it.

        :raises ConfigurationError: an unknown target.
        :raises DeviceTimeoutError: no answer within ``timeout``.
        """
        tgt = self._cal_target(target)
        cmd = CalCommand.READ_FACTORY if factory else CalCommand.READ
        reply: Calibration = self._run(f"read calibration {tgt.name}",
                                       _op(DE1Session.op_calibration, cmd, tgt), timeout)
        return reply

    def write_calibration(self, target: Union[CalTarget, str], reported: float,
                          measured: float, *, write_key: int,
                          timeout: TimeoutArg = DEFAULT) -> Calibration:
        """Calibrate flow, pressure or temperature: what the DE1 reported and what you
        measured (flow mL/s, pressure bar: a ratio; temperature °C: an offset).

        Needs ``allow_writes=True`` and the DE1's fixed 32-bit calibration key (de1app
        hard-codes it; pyburnerkit does not ship it). A wrong key is refused by the DE1
        (``DeviceError``). Safety limits checked first: a flow or pressure correction of at
        most 2x either way, a temperature offset of at most 10 °C.

        Blocks until the DE1 notified the result. If this call times out, the device may still
        apply the write later; it is never retried automatically.

        :raises WriteNotAllowedError: the client was not opened with ``allow_writes=True``.
        :raises ConfigurationError: a value outside the limits above, or a malformed key.
        :raises DeviceError: the DE1 refused it (wrong key).
        """
        self._need_writes("write_calibration")
        tgt = self._cal_target(target)
        key = self._cal_key(write_key)
        unit = "°C" if tgt is CalTarget.TEMPERATURE else ("mL/s" if tgt is CalTarget.FLOW
                                                          else "bar")
        if tgt is CalTarget.TEMPERATURE:
            check_range("reported", reported, 0, 150, unit)
            check_range("measured", measured, 0, 150, unit)
            # the correction is an offset: limited so that a typo cannot cook the puck
            check_range("temperature correction (measured - reported)", measured - reported,
                        -10, 10, unit)
        else:
            high = 16.0
            check_range("reported", reported, 0.1, high, unit)
            check_range("measured", measured, 0.1, high, unit)
            # the correction is a ratio: limited to a factor of 2 either way
            check_range(f"{tgt.name.lower()} correction (measured / reported)",
                        measured / reported, 0.5, 2)
        reply: Calibration = self._run(
            f"write calibration {tgt.name}",
            lambda s, r: s.op_calibration(CalCommand.WRITE, tgt, r, reported, measured, key),
            timeout, is_write=True)
        return reply

    def reset_calibration(self, target: Union[CalTarget, str], *, write_key: int,
                          timeout: TimeoutArg = DEFAULT) -> Calibration:
        """Restore the factory calibration of one target (needs ``allow_writes`` and the key).

        Blocks until the DE1 notified the result. If this call times out, the device may still
        apply the write later; it is never retried automatically.

        :raises WriteNotAllowedError: the client was not opened with ``allow_writes=True``.
        :raises DeviceError: the DE1 refused it (wrong key).
        """
        self._need_writes("reset_calibration")
        tgt = self._cal_target(target)
        key = self._cal_key(write_key)
        reply: Calibration = self._run(
            f"reset calibration {tgt.name}",
            lambda s, r: s.op_calibration(CalCommand.RESET_TO_FACTORY, tgt, r, 0.0, 0.0, key),
            timeout, is_write=True)
        return reply

    @staticmethod
    def _cal_target(target: Union[CalTarget, str]) -> CalTarget:
        if isinstance(target, CalTarget) and target is not CalTarget.ERROR:
            return target
        name = str(target).upper()
        if name not in ("FLOW", "PRESSURE", "TEMPERATURE"):
            raise ConfigurationError(f"calibration target {target!r}: expected flow, pressure "
                                     f"or temperature")
        return CalTarget[name]

    @staticmethod
    def _cal_key(write_key: Any) -> int:
        try:
            key: int = check_range("write_key", write_key, 1, 0xFFFFFFFF, integer=True)
        except ConfigurationError as exc:
            raise ConfigurationError(f"{exc} (write_key is the DE1's 32-bit calibration key, "
                                     f"1..0xFFFFFFFF)") from None
        return key

    # ------------------------------------------------------------------ modes (spec 2)
    def request_mode(self, mode: Union[Mode, str], *, wait: bool = True,
                     timeout: TimeoutArg = DEFAULT) -> StateInfo:
        """Request a mode after checking its precondition; with ``wait`` block until the DE1
        reports the resulting state. Returns the state info at return.

        Permissions: starting a flow or maintenance run (espresso, steam, hot water, flush,
        clean, descale, transport) and skipping to the next frame need
        ``allow_remote_start=True``; sleep and wake need ``allow_writes=True``; stop, end steam
        and no-request are always allowed (a stop is never refused; no-request only makes the
        DE1 report its state). Refused requests send nothing.

        If this call times out, the device may still apply the write later; it is never retried
        automatically.

        :raises WriteNotAllowedError: the permission above is missing.
        :raises UnsupportedFeatureError: flow start with the GHC active; skip on old firmware.
        :raises DeviceError: the machine is in a state that does not accept the request.
        :raises DeviceTimeoutError: no answer, or (``wait``) the state did not follow in time.
        """
        if not isinstance(mode, Mode):
            try:
                mode = Mode.parse(mode)
            except ValueError:
                raise ConfigurationError(f"unknown mode {mode!r}; known: "
                                         f"{', '.join(m.value for m in Mode)}") from None
        self._check_mode_allowed(mode)
        started = time.monotonic()
        target = self._run(f"mode {mode.value}", _op(DE1Session.op_mode, mode), timeout,
                           is_write=True)
        if wait and target is not None and target is not S.NO_REQUEST:
            if target is S.IDLE and mode is Mode.STOP:
                def want(i: StateInfo) -> bool:
                    return not i.state.is_flow or i.substate is U.FLUSH
            elif mode is Mode.END_STEAM:
                def want(i: StateInfo) -> bool:
                    return not i.state.is_flow or i.substate.flow_phase is not FlowPhase.DURING
            elif target is S.SLEEP:
                def want(i: StateInfo) -> bool:
                    return i.state in (S.SLEEP, S.GOING_TO_SLEEP)
            elif target is S.SKIP_TO_NEXT:
                def want(i: StateInfo) -> bool:
                    return True
            else:
                def want(i: StateInfo) -> bool:
                    return i.state is target
            seconds = resolve_timeout(timeout, self.timeout)  # validated by _run already
            left = None if seconds is None else seconds - (time.monotonic() - started)
            self.wait_for(lambda c: c.state_info is not None and want(c.state_info),
                          timeout=None if left is None else max(0.1, left))
        info = self.state_info
        if info is None:  # the state is read at connect, so only a closing client gets here
            raise self._closed_error()
        return info

    def _check_mode_allowed(self, mode: Mode) -> None:
        if mode in _MODE_STATE or mode is Mode.SKIP_TO_NEXT:
            if not self.allow_remote_start:
                raise WriteNotAllowedError(
                    f"{mode.value} over BLE is disabled: open the client with "
                    f"allow_remote_start=True", device=self.family, endpoint=self.endpoint)
        elif mode in (Mode.SLEEP, Mode.WAKE):
            self._need_writes(f"mode {mode.value}")

    def sleep(self, **kw: Any) -> StateInfo:
        """Put the DE1 to sleep (from Idle or Refill; needs ``allow_writes=True``).
        If this call times out, the device may still apply the write later; it is never retried
        automatically."""
        return self.request_mode(Mode.SLEEP, **kw)

    def wake(self, **kw: Any) -> StateInfo:
        """Wake the DE1 (it heats up; needs ``allow_writes=True``).
        If this call times out, the device may still apply the write later; it is never retried
        automatically."""
        return self.request_mode(Mode.WAKE, **kw)

    def stop(self, **kw: Any) -> StateInfo:
        """Stop whatever runs (always allowed; a no-op when idle or asleep).
        If this call times out, the device may still apply the write later; it is never retried
        automatically."""
        return self.request_mode(Mode.STOP, **kw)

    def end_steam(self, **kw: Any) -> StateInfo:
        """End steaming (purge follows); outside steam it stops a running flow (always
        allowed). If this call times out, the device may still apply the write later; it is never
        retried automatically."""
        return self.request_mode(Mode.END_STEAM, **kw)

    def skip_to_next(self, **kw: Any) -> StateInfo:
        """Move a running espresso to its next frame (needs ``allow_remote_start=True``).
        If this call times out, the device may still apply the write later; it is never retried
        automatically."""
        return self.request_mode(Mode.SKIP_TO_NEXT, **kw)

    def start_espresso(self, **kw: Any) -> StateInfo:
        """Start an espresso from Idle (needs ``allow_remote_start=True``).
        If this call times out, the device may still apply the write later; it is never retried
        automatically."""
        return self.request_mode(Mode.ESPRESSO, **kw)

    def start_steam(self, **kw: Any) -> StateInfo:
        """Start steam from Idle (needs ``allow_remote_start=True``).
        If this call times out, the device may still apply the write later; it is never retried
        automatically."""
        return self.request_mode(Mode.STEAM, **kw)

    def start_hot_water(self, **kw: Any) -> StateInfo:
        """Start hot water from Idle (needs ``allow_remote_start=True``).
        If this call times out, the device may still apply the write later; it is never retried
        automatically."""
        return self.request_mode(Mode.HOT_WATER, **kw)

    def start_flush(self, **kw: Any) -> StateInfo:
        """Start a flush (hot water rinse) from Idle (needs ``allow_remote_start=True``).
        If this call times out, the device may still apply the write later; it is never retried
        automatically."""
        return self.request_mode(Mode.FLUSH, **kw)

    def stop_flow(self, timeout: TimeoutArg = DEFAULT) -> bool:
        """Stop a running flow (used by the sequencer); False when there was nothing to stop.

        Always allowed (a stop is never refused). Blocks until the Idle request was written.
        If this call times out, the device may still apply the write later; it is never retried
        automatically.
        """
        def op(session: DE1Session, request: Pending) -> None:
            request.resolve(session.stop_flow())
        stopped: bool = self._run("stop flow", op, timeout, is_write=True)
        return stopped

    # ------------------------------------------------------------------ settings
    def set_shot_settings(self, timeout: TimeoutArg = DEFAULT, **changes: Any) -> ShotSettings:
        """Change ShotSettings fields (e.g. ``steam_temp_c=150``), write, read back.

        Limits (checked before anything is sent): steam temperature 0 (heater off) or
        135..160 °C, hot water 0..100 °C, group 0..105 °C, lengths 0..255 s, volumes 0..255 mL,
        steam flags only FastStart (0x80) and HighPower (0x40). Blocks until the DE1 answered
        the read-back. If this call times out, the device may still apply the write later; it is
        never retried automatically.

        :raises WriteNotAllowedError: the client was not opened with ``allow_writes=True``.
        :raises ConfigurationError: an unknown field or a value outside its limit.
        """
        self._need_writes("set_shot_settings")
        unknown = set(changes) - set(ShotSettings.__dataclass_fields__)
        if unknown:
            raise ConfigurationError(f"unknown shot setting(s): {', '.join(sorted(unknown))}")
        if not changes:
            raise ConfigurationError("set_shot_settings needs at least one field to change")
        for name, value in changes.items():  # the DE1's limits, before anything is sent
            codec.check_shot_setting(name, value)

        def op(session: DE1Session, request: Pending) -> None:
            # merged on the I/O thread with the newest settings, so concurrent calls that
            # change different fields do not undo each other
            import dataclasses
            current = session.cache.value("shot_settings") or ShotSettings()
            payload = codec.encode_shot_settings(dataclasses.replace(current, **changes))
            session.write(codec.SHOT_SETTINGS, payload)
            back = codec.decode_shot_settings(session.read(codec.SHOT_SETTINGS))
            session.cache.set("shot_settings", back)
            session.dispatcher.publish(ShotSettingsChanged(back))
            request.resolve(back)
        settings: ShotSettings = self._run("set shot settings", op, timeout, is_write=True)
        return settings

    def set_refill_level(self, start_fill_level_mm: float,
                         timeout: TimeoutArg = DEFAULT) -> WaterLevels:
        """Set the water refill threshold (0..70 mm), then read it back.

        Blocks until the DE1 answered the read-back. If this call times out, the device may still
        apply the write later; it is never retried automatically.

        :raises WriteNotAllowedError: the client was not opened with ``allow_writes=True``.
        :raises ConfigurationError: the level is outside 0..70 mm.
        """
        self._need_writes("set_refill_level")
        payload = codec.encode_refill_level(start_fill_level_mm)

        def op(session: DE1Session, request: Pending) -> None:
            session.write(codec.WATER_LEVELS, payload)
            back = codec.decode_water_levels(session.read(codec.WATER_LEVELS))
            session.cache.set("water_levels", back)
            request.resolve(back)
        levels: WaterLevels = self._run("set refill level", op, timeout, is_write=True)
        return levels

    def write_setting(self, name: str, value: float, timeout: TimeoutArg = DEFAULT) -> float:
        """Write an MMR-backed setting (``MMR_SETTINGS``) and return the value read back.

        Each register's range and resolution (``codec.REGISTERS``: e.g. fan threshold 0..60 °C,
        flows 0..10 mL/s in 0.1 steps) is checked before anything is sent. Blocks until the DE1
        answered the read-back. If this call times out, the device may still apply the write later;
        it is never retried automatically.

        :raises WriteNotAllowedError: the client was not opened with ``allow_writes=True``.
        :raises ConfigurationError: an unknown setting or a value outside its limit.
        :raises UnsupportedFeatureError: the setting needs newer firmware.
        """
        self._need_writes(f"write_setting({name!r})")
        if name not in MMR_SETTINGS:
            raise ConfigurationError(f"{name!r} is not a writable DE1 setting; known: "
                                     f"{', '.join(MMR_SETTINGS)}")
        reg = codec.REGISTER_BY_NAME[name]
        if isinstance(value, bool):
            value = int(value)
        raw = reg.encode(value)
        info = self.info
        if info is not None and info.firmware_build < reg.min_build:
            raise UnsupportedFeatureError(
                f"{name} needs firmware build {reg.min_build} or later (this DE1 has "
                f"{info.firmware_build})", device=self.family, endpoint=self.endpoint)
        back: int = self._run(f"write {name}", _op(DE1Session.op_mmr_write, reg.address, raw),
                              timeout, is_write=True)
        return reg.decode(back)

    # ------------------------------------------------------------------ profiles & firmware
    def upload_profile(self, profile: Any, *, override_tank_temperature: bool = True,
                       timeout: TimeoutArg = 30.0,
                       library: Optional[ProfileLibrary] = None) -> Program:
        """Validate a JSON v2 profile, upload header/frames/ext frames/tail, verify.

        Every value is checked against the DE1's limits before the first frame is sent.
        Blocks until the header was read back. If this call times out, the device may still apply
        the write later; it is never retried automatically.

        With ``library`` (a :class:`~pyburnerkit.de1.library.ProfileLibrary`) the profile is
        stored there before the upload and selected there once the DE1 took it, as pyDE1's
        ``PUT de1/profile`` does; the library is written on the calling thread.

        :returns: the compiled :class:`~pyburnerkit.de1.profile.Program` (``.fingerprint``,
            ``.profile_id``: pyDE1's id, the SHA-1 of the source).
        :raises WriteNotAllowedError: the client was not opened with ``allow_writes=True``.
        :raises ConfigurationError: the profile is invalid (nothing was sent or stored).
        """
        self._need_writes("upload_profile")
        program = profile if isinstance(profile, Program) else load_profile(profile)
        stored = library.store(program) if library is not None else None
        self._run(f"upload profile {program.title!r}",
                  _op(DE1Session.op_upload_profile, program, override_tank_temperature),
                  timeout, is_write=True)
        if library is not None and stored is not None:
            library.select(stored.id)
        return program

    def upload_profile_by_id(self, profile_id: str, library: Optional[ProfileLibrary] = None,
                             *, override_tank_temperature: bool = True,
                             timeout: TimeoutArg = 30.0) -> Program:
        """Upload a profile stored in a library, by its id (pyDE1's ``PUT de1/profile/id``),
        and select it there once the DE1 took it.

        ``library`` defaults to ``ProfileLibrary()`` (the recorder's ``pyburnerkit.db`` in the
        current directory). The library is read on the calling thread before anything is
        sent; the upload then blocks as :meth:`upload_profile` does. If this call times out,
        the device may still apply the write later; it is never retried automatically.

        :raises WriteNotAllowedError: the client was not opened with ``allow_writes=True``.
        :raises ProfileNotFoundError: no profile with that id (nothing was sent).
        :raises ConfigurationError: the stored profile is invalid (nothing was sent).
        """
        self._need_writes("upload_profile_by_id")
        lib = library if library is not None else ProfileLibrary()
        program = lib.program(profile_id)
        self._run(f"upload profile {program.title!r}",
                  _op(DE1Session.op_upload_profile, program, override_tank_temperature),
                  timeout, is_write=True)
        lib.select(program.profile_id)
        return program

    #: pyDE1's name (``DE1.set_profile_by_id``).
    set_profile_by_id = upload_profile_by_id

    def upload_firmware(self, firmware: Union[str, bytes], *,
                        timeout: TimeoutArg = 3600.0) -> int:
        """Upload a firmware file: header check, erase, chunks, verify. Progress arrives as
        :class:`~pyburnerkit.de1.models.UploadProgress` events; :meth:`cancel_firmware_upload`
        stops it.

        Blocks until the DE1 verified the image. If this call times out, the device may still apply
        the write later; it is never retried automatically.

        :returns: the firmware version from the file header (active after the DE1 restarts).
        :raises WriteNotAllowedError: the client was not opened with ``allow_writes=True``.
        :raises ConfigurationError: not a DE1 firmware file (nothing was sent).
        :raises DeviceError: the DE1 is not idle or asleep, or verification failed.
        """
        self._need_writes("upload_firmware")
        image = load_firmware(firmware)
        state = self.state
        if state is not None and state not in (S.SLEEP, S.IDLE, S.GOING_TO_SLEEP):
            raise DeviceError(f"firmware upload needs an idle or sleeping DE1, it is in "
                              f"{state.name}", device=self.family, endpoint=self.endpoint)
        version: int = self._run("upload firmware", _op(DE1Session.op_upload_firmware, image),
                                 timeout, is_write=True)
        return version

    def post_later(self, delay_s: float, event: Any) -> "LaterEvent":
        """Publish ``event`` to this client's subscribers after ``delay_s`` seconds.

        The timer runs on the I/O thread's reactor (no extra thread); the event is delivered
        on the events thread in order with the DE1's own events. Used by the shot sequencer
        for stop-at-time and its watchdog, so they do not wait for the next ShotSample.
        Does not block.

        :returns: a :class:`~pyburnerkit.de1.client.LaterEvent`; ``cancel()`` it (any thread)
            and the event is never published. The timer also dies with the client.
        :raises ConfigurationError: ``delay_s`` outside 0..3600 s.
        :raises ClientClosedError: the client is closed or not connected yet.
        """
        check_range("delay_s", delay_s, 0, 3600, "s")
        session = self._require_session()
        later = LaterEvent(session, event)
        session.call_soon_threadsafe(later.arm, float(delay_s))  # a no-op once closing
        return later

    def cancel_firmware_upload(self) -> None:
        """Stop a firmware upload in progress before its next 16-byte chunk (any thread; does
        not block). Always allowed and sends nothing itself: the DE1 keeps running its
        installed firmware, the partial image is never verified, and the upload then fails
        with ``DeviceError("firmware upload canceled")``."""
        session = self._session
        if session is not None:
            session.fw_cancel = True
