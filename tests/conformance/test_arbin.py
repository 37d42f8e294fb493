"""The client contract, run against the Arbin cycler simulator over real CTI TCP."""

from __future__ import annotations

from typing import Any

from pyburnerkit.arbin import ChannelClient, ArbinSim
from pyburnerkit.arbin.codec import SetMVRequest

from .contract import ClientContract
from .harness import SimulatorHarness

USER, SECRET = "contract-user", "contract-secret"


class ArbinHarness(SimulatorHarness):
    family = "arbin"

    def __init__(self) -> None:
        super().__init__()
        self._value = 0.0

    def make_sim(self, port: int) -> ArbinSim:
        sim = ArbinSim(4, username=USER, password=SECRET).start(port=port)
        # Meta variables only apply while a test runs: channel 1 rests for an hour.
        sim.preset(1, schedule="Rest+207855.sdx", test_name="contract")
        return sim



    def make_client(self, **options: Any) -> ChannelClient:
        return ChannelClient(f"127.0.0.1:{self.port}", channel=1, allow_writes=True,
                             username=USER, password=SECRET, **options)

    def read(self, client: ChannelClient, timeout: Any) -> Any:
        return client.read_status(timeout=timeout)

    def write(self, client: ChannelClient, timeout: Any) -> Any:
        self._value = 1.0 - self._value  # alternates 1, 0, 1 ...
        return client.set_meta_variable(1, self._value, timeout=timeout)

    def writes_received(self) -> int:
        assert self.sim is not None
        return self.sim.count(SetMVRequest)




    def has_fresh_data(self, client: ChannelClient) -> bool:
        return client.info is not None and not client.stale


class TestArbinContract(ClientContract):
    harness_class = ArbinHarness
