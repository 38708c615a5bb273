"""Full-jitter exponential backoff, shared by the event-stream supervisor and HTTP retries.

A failure streak of ``n`` attempts waits a random delay drawn uniformly from
``[min_delay, min(max_delay, min_delay * factor ** n)]``. The lower bound keeps a client from
hammering a server that fails fast (a rejected handshake, an accept-then-close); the jitter
keeps many clients that failed together from retrying together.
"""

from __future__ import annotations

import random
from typing import Protocol

__all__ = ["Backoff", "RandomSource"]


class RandomSource(Protocol):
    """Anything with ``uniform(a, b)``: :class:`random.Random` or a deterministic test double."""

    def uniform(self, a: float, b: float) -> float:
        """Return a number ``x`` with ``a <= x <= b``."""
        ...


#: The default random source of every :class:`Backoff`: seeding a ``random.Random`` costs about
#: 0.1 ms, paid once here instead of once per client.
_PRIVATE_RNG = random.Random()


class Backoff:
    """Delays for a streak of failed attempts; :meth:`reset` once things work again.

    Args:
        min_delay: the smallest delay, in seconds (> 0).
        max_delay: the largest delay, in seconds (>= ``min_delay``).
        factor: how fast the upper bound grows per failure (>= 1).
        rng: the random source; by default a generator private to this module (one for the
            process, seeded from the OS), so that seeding the global generator elsewhere never
            synchronises clients, and a backoff costs no seeding of its own.

    Example::

        backoff = Backoff(0.5, 30.0)
        while True:
            try:
                await attempt()
            except OSError:
                await asyncio.sleep(backoff.next_delay())
            else:
                backoff.reset()
    """

    __slots__ = ("_attempt", "_cap", "_factor", "_max", "_min", "_rng")

    def __init__(
        self,
        min_delay: float,
        max_delay: float,
        factor: float = 2.0,
        *,
        rng: RandomSource | None = None,
    ) -> None:
        if not min_delay > 0:
            raise ValueError(f"min_delay must be > 0, got {min_delay!r}")
        if not max_delay >= min_delay:
            raise ValueError(f"max_delay must be >= min_delay ({min_delay!r}), got {max_delay!r}")
        if not factor >= 1:
            raise ValueError(f"factor must be >= 1, got {factor!r}")
        self._min = float(min_delay)
        self._max = float(max_delay)
        self._factor = float(factor)
        self._rng: RandomSource = rng if rng is not None else _PRIVATE_RNG
        self._attempt = 0
        self._cap = self._min

    @property
    def attempt(self) -> int:
        """How many delays were handed out since the last :meth:`reset`."""
        return self._attempt

    @property
    def min_delay(self) -> float:
        """The smallest delay, in seconds."""
        return self._min

    @property
    def max_delay(self) -> float:
        """The largest delay, in seconds."""
        return self._max

    def next_delay(self) -> float:
        """Return the delay before the next attempt and grow the bound for the one after."""
        # The cap is grown multiplicatively and clamped, never computed as factor ** n, so a
        # very long failure streak cannot overflow a float.
        self._cap = min(self._max, self._cap * self._factor)
        self._attempt += 1
        delay = self._rng.uniform(self._min, self._cap)
        # Clamp: a test double (or float rounding) must not push the delay out of bounds.
        return min(self._max, max(self._min, delay))

    def reset(self) -> None:
        """Start over from the smallest delay (call after a success, or a healthy period)."""
        self._attempt = 0
        self._cap = self._min

    def __repr__(self) -> str:
        return (
            f"Backoff(min_delay={self._min!r}, max_delay={self._max!r}, "
            f"factor={self._factor!r}, attempt={self._attempt})"
        )
