"""The client contract, run against the Arbin cycler simulator over real CTI TCP."""

from __future__ import annotations

from typing import Any, Optional

from pyburnerkit.arbin import ChannelClient, ArbinSim
from pyburnerkit.arbin.codec import SetMVRequest

from .contract import ClientContract
from .harness import Harness

USER, SECRET = "contract-user", "contract-secret"


class ArbinHarness(Harness):
    family = "arbin"

    def __init__(self) -> None:
        self.sim: Optional[ArbinSim] = None
        self.port = 0
        self._value = 0.0

    def start(self) -> None:
        self.sim = ArbinSim(4, username=USER, password=SECRET).start(port=self.port)
        self.port = self.sim.port
        # Meta variables only apply while a test runs: channel 1 rests for an hour.
        self.sim.preset(1, schedule="Rest+207855.sdx", test_name="contract")

    def stop(self) -> None:
        if self.sim is not None:
            self.sim.close()
            self.sim = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def make_client(self, **options: Any) -> ChannelClient:
        return ChannelClient("127.0.0.1", self.port, channel=1, allow_writes=True,
                             username=USER, password=SECRET, **options)

    def read(self, client: ChannelClient, timeout: Any) -> Any:
        return client.read_status(timeout=timeout)

    def write(self, client: ChannelClient, timeout: Any) -> Any:
        self._value = 1.0 - self._value  # alternates 1, 0, 1 ...
        return client.set_meta_variable(1, self._value, timeout=timeout)

    def writes_received(self) -> int:
        assert self.sim is not None
        return self.sim.count(SetMVRequest)

    def hold_replies(self, seconds: float) -> None:
        assert self.sim is not None
        self.sim.delay_responses(seconds)

    def drop(self) -> None:
        assert self.sim is not None
        self.sim.disconnect()

    def silence(self, on: bool) -> None:
        assert self.sim is not None
        self.sim.silence(on)

    def has_fresh_data(self, client: ChannelClient) -> bool:
        return client.info is not None and not client.stale


class TestArbinContract(ClientContract):
    harness_class = ArbinHarness
