"""The client contract, run against the Mate3s simulator over real Modbus TCP (pymodbus)."""

from __future__ import annotations

from typing import Any

from pyburnerkit.mate3.client import Mate3Client
from pyburnerkit.mate3.sim import Mate3Sim

from .contract import ClientContract
from .harness import SimulatorHarness

FIELD = "charge_controllers[3].config.absorb_volts"


class Mate3Harness(SimulatorHarness):
    family = "mate3"

    def __init__(self) -> None:
        super().__init__()
        self._value = 57.2

    def make_sim(self, port: int) -> Mate3Sim:
        return Mate3Sim(seed=5).start(port=port)



    def make_client(self, **options: Any) -> Mate3Client:
        # No pacing between operations and a short per-request timeout keep the suite fast;
        # the defaults (1 s pacing, 3 s per request) are for real Mate3s units.
        options.setdefault("min_poll_interval", 0)
        options.setdefault("request_timeout", 1.0)
        return Mate3Client(f"127.0.0.1:{self.port}", allow_writes=True, **options)

    def read(self, client: Mate3Client, timeout: Any) -> Any:
        return client.read("fndcs[5].state_of_charge", timeout=timeout)

    def write(self, client: Mate3Client, timeout: Any) -> Any:
        self._value = 57.6 if self._value == 57.2 else 57.2  # alternates, so always a change
        return client.write(FIELD, self._value, timeout=timeout)

    def writes_received(self) -> int:
        assert self.sim is not None
        return self.sim.writes_received()

    def hold_replies(self, seconds: float) -> None:
        # A Mate3 write is preceded by a read that re-checks the block (DID, HUB port) and its
        # scale factor; that read must be answered for the write to go out at all. So the
        # device holds back its write acknowledgements, which is what a blocked write waits on.
        assert self.sim is not None
        self.sim.delay_responses(seconds, writes_only=True)



    def has_fresh_data(self, client: Mate3Client) -> bool:
        return client.system is not None and not client.stale


class TestMate3Contract(ClientContract):
    harness_class = Mate3Harness
