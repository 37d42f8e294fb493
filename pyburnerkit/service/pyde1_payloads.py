"""pyDE1's outbound MQTT payloads (spec section 8) built from pyburnerkit's own events.

Pure: no I/O, no threads. :class:`PayloadBuilder` turns one event of a
:class:`~pyburnerkit.de1.client.DE1Client`, a :class:`~pyburnerkit.scale.client.SkaleClient`
or a :class:`~pyburnerkit.de1.sequencer.ShotSequencer` into zero or more
``(topic suffix, payload dict)`` pairs with pyDE1's class names, versions, field names and
units (bar, mL/s, mL, °C, mm, g, g/s; times are ``time.time()`` floats). The publisher adds
``event_time`` when it hands the payload to the broker.

What each payload is made of, and where pyburnerkit has no source:

* ``StateUpdate`` 1.0.0: :class:`~pyburnerkit.de1.models.StateChanged`; names are pyDE1's
  (``Idle``, ``HotWaterRinse``, ``PreInfuse``, ``Error_NaN``); no previous state is reported
  as ``NoRequest`` / ``NoState`` as pyDE1 does.
* ``ShotSampleWithVolumesUpdate`` 1.2.0: :class:`~pyburnerkit.de1.models.ShotSampleEvent`
  with the client's own integrated volumes, ``volume_by_frames`` included (the client splits
  the volume by frame as pyDE1 does: espresso by the sample's frame, other flows into entry 0;
  published with 20 entries, as pyDE1, zero-padded when an event carries fewer).
  ``de1_time`` is the arrival time, as in pyDE1.
* ``WaterLevelUpdate`` 1.0.0: :class:`~pyburnerkit.de1.models.WaterLevelsChanged`.
* ``WeightAndFlowUpdate`` 1.0.0: :class:`~pyburnerkit.scale.models.WeightReading`. The
  reading carries its arrival and weight times (converted from ``time.monotonic`` to
  ``time.time``); the times of the flow and median estimates are not carried by the reading
  and are derived from the scale client's documented windows, assuming evenly spaced samples
  one period apart: average flow and median weight at the middle of the last 11 samples
  (weight time − 5 periods), median flow half-way between its two 5-sample medians (weight
  time − 7 periods). An estimate the client does not have yet is ``null`` with a ``null`` time.
* ``ScaleButtonPress`` / ``ScaleTareSeen`` 1.0.0: the scale's ``ButtonPressed`` /
  ``TareSeen``.
* ``SequencerGateNotification`` 1.1.0: the sequencer's
  :class:`~pyburnerkit.de1.models.GateChanged` (action ``set``). When a sequence starts the
  sequencer resets every gate, so, as pyDE1 does, a ``clear`` of each gate with the new
  sequence id precedes ``set`` of ``sequence_start``. ``sequence_id`` is a UUID string per
  sequence (pyburnerkit numbers sequences; the UUID is made here from that number).
* ``StopAtNotification`` 1.1.0: the sequencer's
  :class:`~pyburnerkit.de1.models.StopAtTriggered` (action ``triggered``). The sequencer does
  not report when a stop-at condition is armed or disarmed, so ``enabled`` / ``disabled`` /
  ``de1 controlled`` are never sent.
* ``AutoTareNotification`` 1.0.0: derived from the gates of a sequencer known to auto-tare
  (``PayloadBuilder.auto_tare``): its auto-tare hold runs from ``sequence_start`` to
  ``sequence_expect_drops`` in Espresso and HotWater, so ``enabled`` goes with the first and
  ``disabled`` with the second (or with the end of a sequence that never saw drops).
* ``DeviceAvailability`` 1.1.0: a client's ``ConnectionStateChanged`` (connecting →
  ``capturing``, connected → ``ready``, reconnecting → ``not ready``, closed → ``released``,
  not yet connected → ``initial``), role ``de1`` or ``scale``, id = Bluetooth address.
* ``ScaleChange`` 1.1.0: pyDE1 sends it when the scale's address changes behind the scenes; a
  pyburnerkit scale client keeps one address for its life, so there is no source and it is
  never sent.
* ``FirmwareUpload`` 1.0.0: the DE1 client's firmware :class:`UploadProgress` (``erasing``
  reported as ``starting``, ``verifying`` as ``uploading``), ``uploaded`` / ``total`` bytes.
* Not sent (no source in pyburnerkit): ``ConnectivityChange`` (deprecated in pyDE1),
  ``ScanResults``, ``BlueDOTUpdate``, ``pyDE1/log``, ``pyDE1/update/de1/...``.
"""

from __future__ import annotations

import time
import uuid
from typing import Any, Dict, List, Optional, Tuple

from ..de1.models import (GateChanged, MachineState, ShotSampleEvent, StateChanged,
                          StopAtTriggered, SubState, UploadProgress, WaterLevelsChanged)
from ..scale.models import ButtonPressed, TareSeen, WeightReading
from ..types import ConnectionState, ConnectionStateChanged

__all__ = ["VERSIONS", "PayloadBuilder", "state_name", "substate_name", "GATE_NAMES"]

#: pyDE1's payload version per class (spec section 8)
VERSIONS: Dict[str, str] = {
    "StateUpdate": "1.0.0",
    "ShotSampleWithVolumesUpdate": "1.2.0",
    "WaterLevelUpdate": "1.0.0",
    "WeightAndFlowUpdate": "1.0.0",
    "ScaleButtonPress": "1.0.0",
    "ScaleTareSeen": "1.0.0",
    "SequencerGateNotification": "1.1.0",
    "StopAtNotification": "1.1.0",
    "AutoTareNotification": "1.0.0",
    "DeviceAvailability": "1.1.0",
    "ScaleChange": "1.1.0",
    "FirmwareUpload": "1.0.0",
}

GATE_NAMES = ("sequence_start", "sequence_flow_begin", "sequence_expect_drops",
              "sequence_exit_preinfuse", "sequence_flow_end", "sequence_flow_state_exit",
              "sequence_last_drops", "sequence_complete")

#: pyDE1's sender names (``type(sender).__name__`` there)
SENDER_DE1 = "DE1"
SENDER_SCALE = "AtomaxSkaleII"
SENDER_SCALE_PROCESSOR = "ScaleProcessor"
SENDER_SEQUENCER = "FlowSequencer"

#: pyDE1 spells the error substates with an underscore and its own capitals
_ERROR_NAMES = {200: "Error_NaN", 201: "Error_Inf", 202: "Error_Generic", 203: "Error_ACC",
                204: "Error_TSensor", 205: "Error_PSensor", 206: "Error_WLevel",
                207: "Error_DIP", 208: "Error_Assertion", 209: "Error_Unsafe",
                210: "Error_InvalidParm", 211: "Error_Flash", 212: "Error_OOM",
                213: "Error_Deadline", 214: "Error_HiCurrent", 215: "Error_LoCurrent",
                216: "Error_BootFill"}

_AVAILABILITY = {ConnectionState.IDLE: "initial", ConnectionState.CONNECTING: "capturing",
                 ConnectionState.CONNECTED: "ready", ConnectionState.RECONNECTING: "not ready",
                 ConnectionState.CLOSED: "released"}

_FIRMWARE_STATES = {"starting": "starting", "erasing": "starting", "uploading": "uploading",
                    "verifying": "uploading", "completed": "completed", "failed": "failed",
                    "canceled": "canceled"}

_AUTO_TARE_STATES = (MachineState.ESPRESSO, MachineState.HOT_WATER)

#: pyDE1 keeps volumes for 20 frames
FRAMES = 20

Payload = Dict[str, Any]
Message = Tuple[str, Payload]


def _camel(name: str) -> str:
    return "".join(part.capitalize() for part in name.split("_"))


def state_name(state: Optional[MachineState]) -> str:
    """pyDE1's name of a machine state (``HOT_WATER_RINSE`` -> ``HotWaterRinse``); None is
    ``NoRequest`` and a code the table does not know ``UNKNOWN``, as pyDE1 reports them."""
    if state is None:
        return "NoRequest"
    if not state.known:
        return "UNKNOWN"
    return _camel(state.name)


def substate_name(substate: Optional[SubState]) -> str:
    """pyDE1's name of a substate (``PRE_INFUSE`` -> ``PreInfuse``, 200 -> ``Error_NaN``);
    None is ``NoState``; unknown codes are ``UNKNOWN`` / ``ERROR_UNKNOWN`` (200 and above)."""
    if substate is None:
        return "NoState"
    code = int(substate)
    if code in _ERROR_NAMES:
        return _ERROR_NAMES[code]
    if not substate.known:
        return "ERROR_UNKNOWN" if code >= 200 else "UNKNOWN"
    return _camel(substate.name)


def envelope(cls: str, sender: str, arrival_time: float, create_time: float,
             **fields: Any) -> Payload:
    """A payload with pyDE1's common keys; ``event_time`` is filled in when it is sent."""
    payload: Payload = {"arrival_time": arrival_time, "create_time": create_time}
    payload.update(fields)
    payload.update({"version": VERSIONS[cls], "event_time": None, "sender": sender,
                    "class": cls})
    return payload


def _wall(monotonic_time: float) -> float:
    """A ``time.monotonic`` instant on the ``time.time`` clock."""
    return time.time() - (time.monotonic() - monotonic_time)


def _opt(value: Optional[float]) -> Optional[float]:
    return None if value is None else float(value)


class PayloadBuilder:
    """Turns events into pyDE1 payloads (not thread-safe: one caller at a time, the
    publisher's worker thread).

    :param de1_address: the DE1's id in ``DeviceAvailability`` (its Bluetooth address).
    :param scale_address: the scale's id.
    :param auto_tare: whether the sequencer whose gates arrive here auto-tares (turns on
        ``AutoTareNotification``).
    """

    def __init__(self, *, de1_address: Optional[str] = None,
                 scale_address: Optional[str] = None, auto_tare: bool = False) -> None:
        self.de1_address = de1_address
        self.scale_address = scale_address
        self.auto_tare = auto_tare
        self._sequences: Dict[int, str] = {}
        self._active_state: Optional[MachineState] = None
        self._tare_on = False

    # ---------------------------------------------------------------- dispatch
    def build(self, event: Any, create_time: float, source: str = "de1") -> List[Message]:
        """The payloads for one event (``source``: ``"de1"``, ``"scale"`` or
        ``"sequencer"``); an event pyDE1 has no payload for gives none."""
        arrival = float(getattr(event, "timestamp", create_time))
        if isinstance(event, StateChanged):
            return [self.state_update(event, arrival, create_time)]
        if isinstance(event, ShotSampleEvent):
            return [self.shot_sample(event, arrival, create_time)]
        if isinstance(event, WaterLevelsChanged):
            return [("WaterLevelUpdate", envelope(
                "WaterLevelUpdate", SENDER_DE1, arrival, create_time,
                level=float(event.levels.level_mm),
                start_fill_level=float(event.levels.start_fill_level_mm)))]
        if isinstance(event, WeightReading):
            return [self.weight_and_flow(event, create_time)]
        if isinstance(event, ButtonPressed):
            return [("ScaleButtonPress", envelope("ScaleButtonPress", SENDER_SCALE, arrival,
                                                  create_time, button=int(event.button)))]
        if isinstance(event, TareSeen):
            return [("ScaleTareSeen", envelope("ScaleTareSeen", SENDER_SCALE, arrival,
                                               create_time))]
        if isinstance(event, GateChanged):
            return self.gate(event, arrival, create_time)
        if isinstance(event, StopAtTriggered):
            return [self.stop_at(event, arrival, create_time)]
        if isinstance(event, ConnectionStateChanged):
            return [self.availability(event.state, source, arrival, create_time)]
        if isinstance(event, UploadProgress) and event.kind == "firmware":
            return [("FirmwareUpload", envelope(
                "FirmwareUpload", SENDER_DE1, arrival, create_time,
                state=_FIRMWARE_STATES.get(event.phase, event.phase),
                uploaded=int(event.done), total=int(event.total)))]
        return []

    # ---------------------------------------------------------------- DE1
    @staticmethod
    def state_update(ev: StateChanged, arrival: float, create_time: float) -> Message:
        is_error = ev.state is MachineState.FATAL_ERROR or ev.substate.is_error
        return ("StateUpdate", envelope(
            "StateUpdate", SENDER_DE1, arrival, create_time,
            state=state_name(ev.state), substate=substate_name(ev.substate),
            previous_state=state_name(ev.previous_state),
            previous_substate=substate_name(ev.previous_substate),
            is_error_state=bool(is_error)))

    def shot_sample(self, ev: ShotSampleEvent, arrival: float, create_time: float) -> Message:
        s = ev.sample
        by_frames = [float(v) for v in ev.volume_by_frames]
        by_frames.extend([0.0] * (FRAMES - len(by_frames)))
        return ("ShotSampleWithVolumesUpdate", envelope(
            "ShotSampleWithVolumesUpdate", SENDER_DE1, arrival, create_time,
            sample_time=int(s.sample_time), group_pressure=float(s.group_pressure_bar),
            group_flow=float(s.group_flow_ml_s), mix_temp=float(s.mix_temp_c),
            head_temp=float(s.head_temp_c), set_mix_temp=float(s.set_mix_temp_c),
            set_head_temp=float(s.set_head_temp_c),
            set_group_pressure=float(s.set_group_pressure_bar),
            set_group_flow=float(s.set_group_flow_ml_s), frame_number=int(s.frame_number),
            steam_temp=float(s.steam_temp_c), de1_time=arrival,
            volume_preinfuse=float(ev.volume_preinfuse_ml),
            volume_pour=float(ev.volume_pour_ml), volume_total=float(ev.volume_total_ml),
            volume_by_frames=by_frames))

    # ---------------------------------------------------------------- scale
    @staticmethod
    def weight_and_flow(r: WeightReading, create_time: float) -> Message:
        arrival = _wall(r.arrival_time)
        weight_time = _wall(r.weight_time)
        period = float(r.period_s)

        def at(value: Optional[float], periods: int) -> Optional[float]:
            return None if value is None else weight_time - periods * period

        return ("WeightAndFlowUpdate", envelope(
            "WeightAndFlowUpdate", SENDER_SCALE_PROCESSOR, arrival, create_time,
            scale_time=arrival, current_weight=float(r.weight_g),
            current_weight_time=weight_time,
            average_flow=_opt(r.average_flow_g_s), average_flow_time=at(r.average_flow_g_s, 5),
            median_weight=_opt(r.median_weight_g), median_weight_time=at(r.median_weight_g, 5),
            median_flow=_opt(r.median_flow_g_s), median_flow_time=at(r.median_flow_g_s, 7)))

    # ---------------------------------------------------------------- sequencer
    def sequence_uuid(self, sequence_id: int) -> str:
        found = self._sequences.get(sequence_id)
        if found is None:
            found = str(uuid.uuid4())
            self._sequences = {sequence_id: found}  # only the current sequence is asked for
        return found

    def gate(self, ev: GateChanged, arrival: float, create_time: float) -> List[Message]:
        out: List[Message] = []
        seq = self.sequence_uuid(ev.sequence_id)
        state = state_name(ev.state)

        def note(name: str, action: str) -> None:
            out.append(("SequencerGateNotification", envelope(
                "SequencerGateNotification", SENDER_SEQUENCER, arrival, create_time,
                name=name, action=action, sequence_id=seq, active_state=state)))

        if ev.gate == "sequence_start":
            self._active_state = ev.state
            for name in GATE_NAMES:
                note(name, "clear")
        note(ev.gate, "set")
        if self.auto_tare:
            if ev.gate == "sequence_start" and ev.state in _AUTO_TARE_STATES:
                self._tare_on = True
                out.append(self._auto_tare("enabled", arrival, create_time))
            elif self._tare_on and ev.gate in ("sequence_expect_drops", "sequence_flow_end",
                                               "sequence_complete"):
                self._tare_on = False
                out.append(self._auto_tare("disabled", arrival, create_time))
        return out

    @staticmethod
    def _auto_tare(action: str, arrival: float, create_time: float) -> Message:
        return ("AutoTareNotification", envelope("AutoTareNotification", SENDER_SEQUENCER,
                                                 arrival, create_time, action=action))

    def stop_at(self, ev: StopAtTriggered, arrival: float, create_time: float) -> Message:
        return ("StopAtNotification", envelope(
            "StopAtNotification", SENDER_SEQUENCER, arrival, create_time,
            stop_at=ev.stop_at, action="triggered", target_value=float(ev.target),
            current_value=float(ev.current), active_state=state_name(self._active_state),
            current_frame=int(ev.frame)))

    # ---------------------------------------------------------------- links
    def availability(self, state: ConnectionState, source: str, arrival: float,
                     create_time: float) -> Message:
        if source == "scale":
            role, sender, address, name = "scale", SENDER_SCALE, self.scale_address, "Skale"
        else:
            role, sender, address, name = "de1", SENDER_DE1, self.de1_address, "DE1"
        return ("DeviceAvailability", envelope(
            "DeviceAvailability", sender, arrival, create_time,
            state=_AVAILABILITY.get(state, "unknown"), role=role, id=address or "",
            name=f"{sender}: {name}"))
