"""Recorder adapter of the Arbin family (poll)."""

from __future__ import annotations

from typing import Any, Callable, Dict, List, Mapping, Optional, Tuple

from ..sources import PollSource, Reading, Source, dataclass_readings, retrying_options


class ArbinSource(PollSource):
    """Polls an Arbin :class:`~pyburnerkit.arbin.CyclerClient` with one all-channel request
    per interval. Channel = the 1-based channel number; fields are the driver's unit-suffixed
    names (``voltage_v``, ``charge_capacity_ah``...) plus ``state`` (``UNSAFE``...), the test
    and schedule names, and ``aux_<type>_<n>`` readings."""

    default_interval = 1.0

    def __init__(self, client: Any, *, device: Optional[str] = None,
                 interval: Optional[float] = None, owns_client: bool = False) -> None:
        super().__init__("arbin", client, device=device, interval=interval,
                         owns_client=owns_client)

    @classmethod
    def from_config(cls, url: str, device: Optional[str], options: Mapping[str, Any]
                    ) -> "ArbinSource":
        """A source on a new client for ``url``: any endpoint :class:`CyclerClient` takes
        (``host``, ``host:port``, ``cti://host[:port]``, ``sim://...``).

        :raises ~pyburnerkit.errors.ConfigurationError: a malformed endpoint or option
            (nothing is connected).
        """
        from ...arbin import CyclerClient
        client = CyclerClient(url, **retrying_options(options))
        return cls(client, device=device, owns_client=True)

    def poll(self) -> List[Reading]:
        if not self._ready():
            return []
        out: List[Reading] = []
        for status in self.client.read_all_statuses():
            channel = str(status.channel)
            out.extend(dataclass_readings(
                status, channel, skip=("channel", "aux", "bms", "smb", "comm_failure")))
            out.append((channel, "comm_failure", bool(status.comm_failure), ""))
            for kind, readings in (status.aux or {}).items():
                unit = {"temperature": "°C", "voltage": "V", "pressure": "Pa",
                        "current": "A", "ph": "", "flow_rate": ""}.get(str(kind).lower(), "")
                for i, reading in enumerate(readings, 1):
                    out.append((channel, f"aux_{kind}_{i}", reading.value, unit))
        return out

    def device_info(self, channel: str) -> Dict[str, str]:
        """The cycler's serial number (log-in feedback); a channel is named by its number."""
        if channel:
            return {"name": f"channel {channel}"}
        info = self.client.info
        serial = getattr(info, "serial_number", "") if info is not None else ""
        return {"serial_number": str(serial)} if serial else {}


def demo_sources() -> Tuple[List[Source], Callable[[], None]]:
    """A source on a loopback simulator, and the cleanup to run after its client closed
    (``pyburnerkit record --demo``)."""
    from ...arbin import ArbinSim, CyclerClient
    sim = ArbinSim(channels=4, username="demo", password="demo", time_scale=10.0, seed=3)
    sim.start("127.0.0.1", 0)
    try:
        client = CyclerClient(sim.endpoint, username="demo", password="demo",
                              retry_first=True)
    except BaseException:
        sim.close()
        raise
    return [ArbinSource(client, device="demo-cycler", interval=1.0, owns_client=True)], sim.close
