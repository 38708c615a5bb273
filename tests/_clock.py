"""A wall clock a test sets by hand."""

from __future__ import annotations


class Clock:
    """A wall clock a test moves by hand (unix seconds)."""

    def __init__(self, now: float = 1_765_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        """Move the clock forward."""
        self.now += seconds
