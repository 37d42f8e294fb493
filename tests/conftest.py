"""Fixtures every test gets: no leaked threads, no leaked sockets, no failing callbacks."""

from __future__ import annotations

import gc
import os
import threading
import time
from typing import Iterator, List, Set

import pytest

def _socket_inodes() -> Set[str]:
    found = set()
    fd_dir = "/proc/self/fd"
    try:
        names = os.listdir(fd_dir)
    except OSError:
        return found
    for name in names:
        try:
            target = os.readlink(os.path.join(fd_dir, name))
        except OSError:
            continue
        if target.startswith("socket:"):
            found.add(target)
    return found


def _ours(thread: threading.Thread) -> bool:
    return thread.name.startswith("pyburnerkit")


@pytest.fixture(autouse=True)
def no_leaks(request: pytest.FixtureRequest) -> Iterator[None]:
    """Fail a test that leaves pyburnerkit threads or sockets behind.

    Threads get a bounded join (they must already be stopping: close() joins them), never a
    sleep; sockets are counted after a garbage collection.
    """
    threads_before = set(threading.enumerate())
    sockets_before = _socket_inodes()
    yield
    deadline = time.monotonic() + 3.0
    leaked: List[threading.Thread] = []
    for thread in threading.enumerate():
        if thread in threads_before or not _ours(thread):
            continue
        thread.join(max(0.0, deadline - time.monotonic()))
        if thread.is_alive():
            leaked.append(thread)
    gc.collect()
    new_sockets = _socket_inodes() - sockets_before
    problems = []
    if leaked:
        problems.append("threads left running: " + ", ".join(t.name for t in leaked))
    if new_sockets and "allow_socket_leak" not in request.keywords:
        problems.append(f"{len(new_sockets)} socket(s) left open")
    if problems:
        pytest.fail("; ".join(problems), pytrace=False)


@pytest.fixture
def callback_errors() -> Iterator[List[BaseException]]:
    """Pass ``on_callback_error=callback_errors.append`` to clients; the test fails on any."""
    errors: List[BaseException] = []
    yield errors
    if errors:
        raise AssertionError(f"a callback raised: {errors[0]!r}") from errors[0]
