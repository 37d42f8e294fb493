"""The leak check of :func:`stress.cycle` must catch a steady leak and forgive a one-off step."""

from typing import List

from .stress import CONFIRM_ABOVE, cycle


def test_a_steady_leak_is_reported() -> None:
    kept: List[bytes] = []

    def leak(i: int) -> None:
        kept.append(b"x" * (16 * 1024))  # written, so the pages are resident

    result = cycle(leak, cycles=100, warmup=5)
    assert result.confirm is not None
    problem = result.check_flat()
    assert problem is not None and "RSS +" in problem, problem


def test_a_one_off_step_in_the_second_half_is_forgiven() -> None:
    kept: List[bytes] = []

    def step(i: int) -> None:
        if i == 5 + 75:  # once, in the second half only
            kept.append(b"x" * (2 * CONFIRM_ABOVE + 4 * 1024 * 1024))

    result = cycle(step, cycles=100, warmup=5)
    assert result.end.rss - result.middle.rss > CONFIRM_ABOVE  # the step was seen...
    assert result.confirm is not None
    assert result.check_flat() is None, result.check_flat()  # ...and cleared by the re-run


def test_a_flat_run_needs_no_confirmation() -> None:
    result = cycle(lambda i: None, cycles=50, warmup=5)
    assert result.confirm is None
    assert result.check_flat() is None
