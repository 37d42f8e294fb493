"""The client contract, run against the Afterburner simulator over a real WebSocket."""

from __future__ import annotations

from typing import Any

from pyburnerkit.afterburner import AfterburnerClient, AfterburnerSim

from .contract import ClientContract
from .harness import SimulatorHarness


class AfterburnerHarness(SimulatorHarness):
    family = "afterburner"

    def __init__(self) -> None:
        super().__init__()
        self._next_temp = 20

    def make_sim(self, port: int) -> AfterburnerSim:
        return AfterburnerSim(tick=0, seed=1).start(port=port)



    def make_client(self, **options: Any) -> AfterburnerClient:
        options.setdefault("refresh_grace", 0.2)
        options.setdefault("allow_writes", True)  # the contract's write is a set point
        return AfterburnerClient(f"127.0.0.1:{self.port}", **options)

    def read(self, client: AfterburnerClient, timeout: Any) -> Any:
        return client.read_system_info(timeout=timeout)

    def write(self, client: AfterburnerClient, timeout: Any) -> Any:
        self._next_temp = 41 - self._next_temp  # alternates 21, 20, 21...
        return client.set_desired_temperature(self._next_temp, timeout=timeout)

    def writes_received(self) -> int:
        assert self.sim is not None
        return sum(1 for frame in list(self.sim.received) if "TempDesired" in frame)




    def has_fresh_data(self, client: AfterburnerClient) -> bool:
        return not client.stale and client.status.run_state is not None


class TestAfterburnerContract(ClientContract):
    harness_class = AfterburnerHarness
