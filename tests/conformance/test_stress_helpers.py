"""The leak check of :func:`stress.cycle` must catch a steady leak and forgive a one-off step.

The process's real RSS cannot be driven reliably from a test (freed memory of earlier tests is
reused by a leak, so it may not show): these tests replace the RSS reading with a scripted one
(``stress.rss_bytes``, the only thing mocked) and check the decision logic on it.
"""

from typing import Callable, Iterator, List

import pytest

from . import stress
from .stress import CONFIRM_ABOVE, cycle

KIB = 1024


@pytest.fixture
def scripted_rss(monkeypatch: pytest.MonkeyPatch) -> Iterator[List[int]]:
    """``rss[0]`` is what the next footprint reads; the cycled function changes it."""
    rss = [100 * 1024 * KIB]
    monkeypatch.setattr(stress, "rss_bytes", lambda: rss[0])
    yield rss


def grow(rss: List[int], per_call: int, only: Callable[[int], bool] = lambda i: True
         ) -> Callable[[int], None]:
    def call(i: int) -> None:
        if only(i):
            rss[0] += per_call
    return call


def test_a_steady_leak_is_reported(scripted_rss: List[int]) -> None:
    result = cycle(grow(scripted_rss, 16 * KIB), cycles=100, warmup=5)
    assert result.confirm is not None  # 800 KiB in the second half: re-measured...
    problem = result.check_flat()
    assert problem is not None and "RSS +800 KiB" in problem, problem  # ...and it grew again


def test_a_one_off_step_in_the_second_half_is_forgiven(scripted_rss: List[int]) -> None:
    step = grow(scripted_rss, 2 * CONFIRM_ABOVE + 4 * 1024 * KIB, only=lambda i: i == 5 + 75)
    result = cycle(step, cycles=100, warmup=5)
    assert result.end.rss - result.middle.rss > CONFIRM_ABOVE  # the step was seen...
    assert result.confirm is not None
    assert result.check_flat() is None, result.check_flat()  # ...and cleared by the re-run


def test_a_flat_run_needs_no_confirmation(scripted_rss: List[int]) -> None:
    result = cycle(lambda i: None, cycles=50, warmup=5)
    assert result.confirm is None
    assert result.check_flat() is None


def test_a_leak_below_the_slack_is_tolerated_but_threads_and_fds_are_exact(
        scripted_rss: List[int]) -> None:
    result = cycle(grow(scripted_rss, 2 * KIB), cycles=100, warmup=5)  # 100 KiB per half
    assert result.check_flat() is None
    result.end.fds += 1
    assert result.check_flat() == f"fds {result.warm.fds} -> {result.warm.fds + 1}"
