"""A notebook cell run twice: the second client on an endpoint warns with the fix, a clash's
error names close_all(), and close_all() frees every thread. Real simulators throughout."""

from __future__ import annotations

import threading
import warnings
from typing import Iterator, Set

import pytest

import pyburnerkit
from pyburnerkit._core.client import ClientAlreadyOpenWarning
from pyburnerkit.afterburner import AfterburnerClient
from pyburnerkit.afterburner.sim import AfterburnerSim
from pyburnerkit.errors import DeviceConnectionError
from pyburnerkit.mate3.client import Mate3Client
from pyburnerkit.mate3.sim import Mate3Sim


def client_threads() -> Set[threading.Thread]:
    # the simulator server's own thread is "pyburnerkit-sim-..."; clients' are family-named
    # (and two clients of one endpoint have threads of the same name: count objects)
    return {t for t in threading.enumerate()
            if t.name.startswith("pyburnerkit-") and not t.name.startswith("pyburnerkit-sim")}


@pytest.fixture
def busy_mate3() -> Iterator[Mate3Sim]:
    """A Mate3s simulator on 127.0.0.1 that, like the device, serves one client at a time."""
    sim = Mate3Sim(single_client=True).start()
    try:
        yield sim
    finally:
        sim.close()


def test_second_client_on_a_one_client_device_warns_and_its_error_names_close_all(
        busy_mate3: Mate3Sim) -> None:
    endpoint = f"127.0.0.1:{busy_mate3.port}"
    before = client_threads()
    first = Mate3Client(endpoint, min_poll_interval=0).connect()
    try:
        opened = client_threads() - before
        assert opened, "the first client should run its own threads"
        second = Mate3Client(endpoint, min_poll_interval=0)
        with pytest.warns(ClientAlreadyOpenWarning) as seen:
            with pytest.raises(DeviceConnectionError) as failed:
                second.connect()  # the cell run again
        assert len(seen) == 1
        warning = seen[0]
        assert warning.filename == __file__  # points at the user's line, not at pyburnerkit
        text = str(warning.message)
        assert endpoint in text and "close_all()" in text and "still open" in text
        message = str(failed.value)
        assert message.count("close_all()") == 1
        # the device's own story (a reset, or "cannot connect") comes first, the fix after it
        original, hint = message.split(" (1 other open client on this endpoint", 1)
        assert original and "close_all()" in hint
        assert second.closed
        assert first.connected  # the old client is untouched
    finally:
        closed = pyburnerkit.close_all()
    assert closed >= 1 and first.closed
    assert client_threads() == before  # close_all() joined the first client's threads


def test_rerunning_a_cell_grows_threads_until_close_all() -> None:
    # what the issue measured (threads 28 -> 37 -> 46): every re-run keeps the old client
    # alive, even on a device that accepts many clients (the heater's WebSocket server)
    server = AfterburnerSim(tick=0).start()
    try:
        rerun_until_close_all(f"ws://127.0.0.1:{server.port}/")
    finally:
        server.close()


def rerun_until_close_all(url: str) -> None:
    before = client_threads()
    clients = []
    try:
        run_three_times(clients, url)
    finally:
        closed = pyburnerkit.close_all()
    assert closed == 3
    assert all(c.closed for c in clients)
    assert client_threads() == before


def run_three_times(clients: list, url: str) -> None:
    before = client_threads()
    with pytest.warns(ClientAlreadyOpenWarning) as seen:
        for _ in range(3):
            clients.append(AfterburnerClient(url).connect())
    counts = [str(w.message).split(" of ")[0] for w in seen]
    assert counts == ["another client", "2 other clients"]  # one warning per re-run
    assert len(client_threads() - before) >= 3 * 2  # io + events thread per client


def test_no_warning_when_the_old_client_was_closed_or_talks_elsewhere(
        busy_mate3: Mate3Sim) -> None:
    endpoint = f"127.0.0.1:{busy_mate3.port}"
    with warnings.catch_warnings():
        warnings.simplefilter("error", ClientAlreadyOpenWarning)
        with Mate3Client(endpoint, min_poll_interval=0) as first:
            assert first.connected
        with Mate3Client(endpoint, min_poll_interval=0) as again:  # closed first: fine
            assert again.connected
            # a client never connected holds nothing; sim:// clients each own their device
            idle = Mate3Client(endpoint, min_poll_interval=0)
            with Mate3Client("sim://") as one, Mate3Client("sim://") as two:
                assert one.connected and two.connected and one.endpoint == two.endpoint
            idle.close()
