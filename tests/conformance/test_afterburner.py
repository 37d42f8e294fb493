"""The client contract, run against the Afterburner simulator over a real WebSocket."""

from __future__ import annotations

from typing import Any, Optional

from pyburnerkit.afterburner import AfterburnerClient, AfterburnerSim

from .contract import ClientContract
from .harness import Harness


class AfterburnerHarness(Harness):
    family = "afterburner"

    def __init__(self) -> None:
        self.sim: Optional[AfterburnerSim] = None
        self.port = 0
        self._next_temp = 20

    def start(self) -> None:
        self.sim = AfterburnerSim(tick=0, seed=1).start(port=self.port)
        self.port = self.sim.port

    def stop(self) -> None:
        if self.sim is not None:
            self.sim.close()
            self.sim = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def make_client(self, **options: Any) -> AfterburnerClient:
        options.setdefault("refresh_grace", 0.2)
        return AfterburnerClient(f"127.0.0.1:{self.port}", **options)

    def read(self, client: AfterburnerClient, timeout: Any) -> Any:
        return client.read_system_info(timeout=timeout)

    def write(self, client: AfterburnerClient, timeout: Any) -> Any:
        self._next_temp = 41 - self._next_temp  # alternates 21, 20, 21...
        return client.set_desired_temperature(self._next_temp, timeout=timeout)

    def writes_received(self) -> int:
        assert self.sim is not None
        return sum(1 for frame in list(self.sim.received) if "TempDesired" in frame)

    def hold_replies(self, seconds: float) -> None:
        assert self.sim is not None
        self.sim.delay_responses(seconds)

    def drop(self) -> None:
        assert self.sim is not None
        self.sim.disconnect()

    def silence(self, on: bool) -> None:
        assert self.sim is not None
        self.sim.silence(on)

    def has_fresh_data(self, client: AfterburnerClient) -> bool:
        return not client.stale and client.status.run_state is not None


class TestAfterburnerContract(ClientContract):
    harness_class = AfterburnerHarness
