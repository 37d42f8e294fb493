"""What a family provides so that the shared client contract (``contract.py``) can run on it.

Each family writes ``tests/conformance/test_<family>.py``::

    from .contract import ClientContract
    from .harness import Harness

    class ArbinHarness(Harness):
        ...                                  # implement every method below

    class TestArbinContract(ClientContract):
        harness_class = ArbinHarness

The contract starts the device through :meth:`Harness.start` (a real server on 127.0.0.1, so the
real transport runs), builds clients with :meth:`Harness.make_client`, and drives faults through
the simulator's shared fault-injection vocabulary.
"""

from __future__ import annotations

from typing import Any


class Harness:
    """One family's simulated device plus a client factory."""

    family = "generic"

    def start(self) -> None:
        """Start the simulated device as a real server on 127.0.0.1 (a free port)."""
        raise NotImplementedError

    def stop(self) -> None:
        """Stop the device and release everything :meth:`start` created (idempotent)."""
        raise NotImplementedError

    def restart(self) -> None:
        """Stop the device and start it again on the same address (a device reboot)."""
        raise NotImplementedError

    def make_client(self, **options: Any) -> Any:
        """A client for the device, not yet connected.

        ``options`` are client keyword arguments the contract sets: ``timeout``,
        ``connect_timeout``, ``reconnect``, ``on_event``, ``on_callback_error``. Pass them on.
        """
        raise NotImplementedError

    def read(self, client: Any, timeout: float) -> Any:
        """A blocking read that needs a round trip to the device; returns what it read."""
        raise NotImplementedError

    def write(self, client: Any, timeout: float) -> Any:
        """A blocking write or command that the device must acknowledge (or show in its
        state). Each call must change something (alternate values), so it is observable."""
        raise NotImplementedError

    def writes_received(self) -> int:
        """How many write commands (of the kind :meth:`write` sends) the device has received."""
        raise NotImplementedError

    def hold_replies(self, seconds: float) -> None:
        """Make the device hold every reply back by ``seconds`` (0 restores it)."""
        raise NotImplementedError

    def drop(self) -> None:
        """Make the device drop every connection at once."""
        raise NotImplementedError

    def silence(self, on: bool) -> None:
        """Make the device stop (``on=True``) or resume answering, keeping links open."""
        raise NotImplementedError

    def has_fresh_data(self, client: Any) -> bool:
        """True when the client's cache holds data for this device and it is not stale."""
        raise NotImplementedError


class SimulatorHarness(Harness):
    """A :class:`Harness` for a simulator with the shared fault-injection vocabulary.

    Subclasses implement :meth:`make_sim` (a started simulator on ``port``, 0 for a free one)
    and the client-side methods; restarts reuse the same port.
    """

    def __init__(self) -> None:
        self.sim: Any = None
        self.port = 0

    def make_sim(self, port: int) -> Any:
        raise NotImplementedError

    def start(self) -> None:
        self.sim = self.make_sim(self.port)
        self.port = self.sim.port

    def stop(self) -> None:
        if self.sim is not None:
            self.sim.close()
            self.sim = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def hold_replies(self, seconds: float) -> None:
        self.sim.delay_responses(seconds)

    def drop(self) -> None:
        self.sim.disconnect()

    def silence(self, on: bool) -> None:
        self.sim.silence(on)
