"""Full-jitter exponential backoff (yeastar_async._backoff)."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from yeastar_async._backoff import Backoff


class Edge:
    """A random source that always picks the lower or the upper bound, recording the ranges."""

    def __init__(self, pick_upper: bool = True) -> None:
        self.pick_upper = pick_upper
        self.ranges: list[tuple[float, float]] = []

    def uniform(self, a: float, b: float) -> float:
        self.ranges.append((a, b))
        return b if self.pick_upper else a


def test_upper_bound_doubles_from_min_to_max() -> None:
    rng = Edge()
    backoff = Backoff(0.5, 5.0, rng=rng)
    delays = [backoff.next_delay() for _ in range(6)]
    assert delays == [1.0, 2.0, 4.0, 5.0, 5.0, 5.0]
    # Full jitter: every draw spans the whole range from the minimum up to the current cap.
    assert [a for a, _ in rng.ranges] == [0.5] * 6
    assert backoff.attempt == 6


def test_lower_bound_is_never_below_min() -> None:
    backoff = Backoff(0.25, 10.0, rng=Edge(pick_upper=False))
    assert [backoff.next_delay() for _ in range(4)] == [0.25] * 4


def test_reset_starts_over() -> None:
    backoff = Backoff(1.0, 60.0, rng=Edge())
    for _ in range(5):
        backoff.next_delay()
    backoff.reset()
    assert backoff.attempt == 0
    assert backoff.next_delay() == 2.0


def test_custom_factor() -> None:
    backoff = Backoff(1.0, 100.0, factor=3.0, rng=Edge())
    assert [backoff.next_delay() for _ in range(3)] == [3.0, 9.0, 27.0]


def test_factor_one_is_a_jittered_constant_range() -> None:
    backoff = Backoff(2.0, 2.0, factor=1.0, rng=Edge())
    assert [backoff.next_delay() for _ in range(3)] == [2.0, 2.0, 2.0]


@pytest.mark.parametrize(("value", "expected"), [(1e9, 4.0), (-1.0, 0.5)])
def test_out_of_range_random_source_is_clamped(value: float, expected: float) -> None:
    class Wild:
        def uniform(self, a: float, b: float) -> float:
            return value

    assert Backoff(0.5, 4.0, rng=Wild()).next_delay() == expected


def test_a_very_long_streak_does_not_overflow() -> None:
    backoff = Backoff(0.001, 30.0, factor=10.0, rng=Edge())
    for _ in range(10_000):
        delay = backoff.next_delay()
    assert delay == 30.0


def test_default_source_is_private_and_jittered() -> None:
    random.seed(1)
    first = [Backoff(1.0, 60.0).next_delay() for _ in range(20)]
    # Each draw lies in [min, min * factor] and they are not all equal (jitter).
    assert all(1.0 <= d <= 2.0 for d in first)
    assert len(set(first)) > 1


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((0.0, 1.0), "min_delay must be > 0, got 0.0"),
        ((-1.0, 1.0), "min_delay must be > 0"),
        ((2.0, 1.0), "max_delay must be >= min_delay"),
        ((float("nan"), 1.0), "min_delay"),
        ((1.0, float("nan")), "max_delay"),
    ],
)
def test_invalid_bounds_are_rejected(args: tuple[float, float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Backoff(*args)


def test_invalid_factor_is_rejected() -> None:
    with pytest.raises(ValueError, match=r"factor must be >= 1, got 0\.5"):
        Backoff(1.0, 2.0, factor=0.5)


def test_repr_shows_the_state() -> None:
    backoff = Backoff(0.5, 30.0, rng=Edge())
    backoff.next_delay()
    assert repr(backoff) == "Backoff(min_delay=0.5, max_delay=30.0, factor=2.0, attempt=1)"
    assert (backoff.min_delay, backoff.max_delay) == (0.5, 30.0)


@given(
    low=st.floats(min_value=1e-3, max_value=10.0),
    span=st.floats(min_value=0.0, max_value=100.0),
    factor=st.floats(min_value=1.0, max_value=10.0),
    seed=st.integers(min_value=0, max_value=2**32),
    n=st.integers(min_value=1, max_value=50),
)
def test_delays_always_within_bounds(
    low: float, span: float, factor: float, seed: int, n: int
) -> None:
    high = low + span
    backoff = Backoff(low, high, factor=factor, rng=random.Random(seed))
    caps = Backoff(low, high, factor=factor, rng=Edge())
    for _ in range(n):
        delay = backoff.next_delay()
        assert low <= delay <= high
        # ... and never above the current exponential cap.
        assert delay <= caps.next_delay()
