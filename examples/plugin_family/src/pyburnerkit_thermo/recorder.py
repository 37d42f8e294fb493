"""The recorder adapter: how ``pyburnerkit record`` and :class:`pyburnerkit.recorder.Recorder`
turn a TR-1 into samples.

The box answers requests and pushes nothing, so the adapter is a poll source: the recorder
calls :meth:`ThermoSource.poll` on its own thread every ``interval`` seconds. A config file
names the family and the endpoint::

    [[devices]]
    family = "thermo"
    url = "192.168.1.40"        # host[:port], thermo://host:port or sim://
    id = "greenhouse"
    interval = 5
"""

from __future__ import annotations

from typing import Any, Callable, List, Mapping, Optional, Tuple

from pyburnerkit.recorder.sources import PollSource, Reading, Source, retrying_options

from .client import ThermoClient
from .sim import ThermoSim

__all__ = ["ThermoSource", "demo_sources"]


class ThermoSource(PollSource):
    """Polls a :class:`~pyburnerkit_thermo.client.ThermoClient`: one ``READ`` per interval
    gives the samples ``temperature_c`` (°C), ``humidity_pct`` (%), ``relay`` (0/1) and
    ``limit_c`` (°C); what each means (names, classes, which are settings) is the family's
    table in :mod:`.semantics`."""

    default_interval = 1.0

    def __init__(self, client: ThermoClient, *, device: Optional[str] = None,
                 interval: Optional[float] = None, owns_client: bool = False) -> None:
        super().__init__("thermo", client, device=device, interval=interval,
                         owns_client=owns_client)
        self.box = client

    @classmethod
    def from_config(cls, url: str, device: Optional[str],
                    options: Mapping[str, Any]) -> "ThermoSource":
        """A source for a ``[[devices]]`` entry; its client keeps retrying a box that is not
        up yet (``retry_first``) instead of failing the whole recording."""
        return cls(ThermoClient(url, **retrying_options(options)), device=device,
                   owns_client=True)

    def poll(self) -> List[Reading]:
        """One request, on the recorder's poll thread; nothing while the box is unreachable."""
        if not self._ready():
            return []
        status = self.box.read_status()
        return [("", "temperature_c", status.temperature_c, "°C"),
                ("", "humidity_pct", status.humidity_pct, "%"),
                ("", "relay", status.relay, ""),
                ("", "limit_c", status.limit_c, "°C")]


def demo_sources() -> Tuple[List[Source], Callable[[], None]]:
    """A source on a loopback simulator for ``pyburnerkit record --demo``, and the cleanup to
    run once the source's client is closed. Blocks until the simulator listens."""
    sim = ThermoSim(speed=30.0, seed=3).start("127.0.0.1", 0)
    try:
        client = ThermoClient(f"127.0.0.1:{sim.port}", retry_first=True)
    except BaseException:
        sim.close()
        raise
    return [ThermoSource(client, device="demo-thermo", interval=0.5, owns_client=True)], \
        sim.close
