"""The client contract, run against the simulated DE1 through unmodified pygatt and the fake
``gatttool`` (a real process on a pty, talking to the simulator over 127.0.0.1)."""

from __future__ import annotations

from typing import Any, Optional

from pyburnerkit.de1.client import DE1Client

from ..ble.simrig import SEND_DELAY, RigOnPath
from .contract import ClientContract
from .harness import Harness


class DE1Harness(Harness):
    family = "de1"

    def __init__(self) -> None:
        self.env: Optional[RigOnPath] = None
        self.address = ""
        self._fan = 50

    def start(self) -> None:
        self.env = RigOnPath(with_scale=False)

    def stop(self) -> None:
        if self.env is not None:
            self.address = self.env.de1.address
            self.env.close()  # rig stopped, fake tools off PATH: the DE1 is unreachable
            self.env = None

    def restart(self) -> None:
        assert self.env is not None
        self.env.restart()

    def make_client(self, **options: Any) -> DE1Client:
        address = self.env.de1.address if self.env is not None else self.address
        return DE1Client(address, send_delay=SEND_DELAY, allow_writes=True,
                         **options)

    def read(self, client: DE1Client, timeout: Any) -> Any:
        return client.read_state(timeout=timeout)

    def write(self, client: DE1Client, timeout: Any) -> Any:
        self._fan = 101 - self._fan  # alternates 51, 50, 51...
        return client.write_setting("fan_threshold", self._fan, timeout=timeout)

    def writes_received(self) -> int:
        assert self.env is not None
        return sum(1 for uuid, data in list(self.env.de1.writes)
                   if uuid.startswith("0000a006") and data[1:4] == b"\x80\x38\x08")

    def hold_replies(self, seconds: float) -> None:
        assert self.env is not None
        self.env.rig.host.delay_responses(seconds)

    def drop(self) -> None:
        assert self.env is not None
        self.env.rig.host.drop_all()

    def silence(self, on: bool) -> None:
        assert self.env is not None
        self.env.rig.host.silence(on)

    def has_fresh_data(self, client: DE1Client) -> bool:
        return not client.stale and client.state_info is not None

    # ---- used by the stress layer (test_de1_stress.py, test_de1_writes.py)
    def start_with(self, **rig_options: Any) -> None:
        """:meth:`start` with simulator options (e.g. ``calibration_key``)."""
        rig_options.setdefault("with_scale", False)
        self.env = RigOnPath(**rig_options)

    def on_sim(self, fn: Any) -> Any:
        """Run ``fn`` on the simulator's thread (to read or poke the simulated DE1 safely)."""
        assert self.env is not None
        return self.env.rig.run(fn)

    @property
    def sim_de1(self) -> Any:
        assert self.env is not None
        return self.env.de1

    def writes_to(self, uuid: str) -> int:
        """How many writes of any kind the simulated DE1 received on one characteristic."""
        assert self.env is not None
        return sum(1 for u, _ in list(self.env.de1.writes) if u == uuid)



class TestDE1Contract(ClientContract):
    harness_class = DE1Harness
