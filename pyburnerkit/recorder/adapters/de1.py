"""Recorder adapter of the DE1 family (push); its demo also starts the Skale, which
shares the simulated radio."""

from __future__ import annotations

from typing import Any, Callable, Dict, List, Tuple

from ..sources import Emit, OnState, PushSource, Source, dataclass_readings


class DE1Source(PushSource):
    """Follows a :class:`~pyburnerkit.de1.client.DE1Client` (push): machine state and
    substate (``state`` / ``substate``, enum names kept), every shot sample (``group_pressure_bar``
    ...), water level and heater temperatures, under the driver's unit-suffixed names."""

    family_name = "de1"

    def start(self, emit: Emit, on_state: OnState) -> None:
        super().start(emit, on_state)
        from ...de1.models import (ShotSampleEvent, StateChanged, TemperaturesChanged,
                                  WaterLevelsChanged)

        def on_event(event: Any) -> None:
            if isinstance(event, StateChanged):
                self.emit([("", "state", event.state, ""), ("", "substate", event.substate, "")])
            elif isinstance(event, ShotSampleEvent):
                readings = dataclass_readings(event.sample, "")
                readings.append(("", "volume_total_ml", event.volume_total_ml, "mL"))
                self.emit(readings)
            elif isinstance(event, WaterLevelsChanged):
                self.emit(dataclass_readings(event.levels, ""))
            elif isinstance(event, TemperaturesChanged):
                self.emit(dataclass_readings(event.temperatures, ""))

        self._subscriptions.append(self.client.subscribe(
            on_event, StateChanged, ShotSampleEvent, WaterLevelsChanged, TemperaturesChanged))
        self._follow_connection()
        if not self._connect_in_background():
            info = self.client.state_info
            if info is not None:
                self.emit([("", "state", info.state, ""), ("", "substate", info.substate, "")])
            self.state("connected")

    def device_info(self, channel: str) -> Dict[str, str]:
        """Model, serial number and firmware build, read by the client at connect."""
        info = self.client.info
        if info is None:
            return {}
        out = {"sw_version": str(info.firmware_build)}
        if info.serial_number:
            out["serial_number"] = str(info.serial_number)
        model = getattr(info.machine_model, "name", "")
        if model and model != "UNSET":
            out["model"] = model
        return out


def demo_sources() -> Tuple[List[Source], Callable[[], None]]:
    """The DE1 and Skale simulators share one simulated radio and bench
    (:class:`~pyburnerkit.rigs.espresso.DE1Rig`); no Bluetooth adapter exists in a demo, so
    the clients use the rig's in-process GATT links. Returns both sources and the cleanup
    (``pyburnerkit record --demo``)."""
    from .scale import ScaleSource  # the rig's Skale is recorded by the scale adapter
    from ...de1.client import DE1Client
    from ...rigs.espresso import DE1Rig
    from ...scale.client import SkaleClient
    rig = DE1Rig(speed=1.0).start(listen=False)
    try:
        assert rig.skale is not None  # the rig was made with its scale
        de1 = DE1Client(rig.de1.address, transport=rig.transport(), retry_first=True)
        skale = SkaleClient(rig.skale.address, transport=rig.transport(), retry_first=True)
    except BaseException:
        rig.close()
        raise
    return [DE1Source(de1, device="demo-de1", owns_client=True),
            ScaleSource(skale, device="demo-skale", owns_client=True)], rig.close
