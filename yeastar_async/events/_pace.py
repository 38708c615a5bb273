"""Pacing of connection attempts: many streams starting at once share the event loop fairly.

A process that starts a thousand streams (or sees a thousand links drop when a network path
fails) would otherwise run the first step of every connection attempt (a client session, a
request, a socket) in one event-loop iteration: over 100 ms during which nothing else of the
process runs, not even a 30016 answer. :func:`turn` lets a few attempts through per iteration
and queues the others, in order, for the next ones; one stream alone never waits.
"""

from __future__ import annotations

import asyncio
import weakref
from collections import deque
from typing import Final

__all__ = ["PER_TURN", "turn"]

#: Attempt steps let through per event-loop iteration: at a few hundred microseconds each, an
#: iteration stays within a few milliseconds.
PER_TURN: Final = 16


class _TurnGate:
    """Lets at most ``per_turn`` callers through per iteration of one event loop."""

    __slots__ = ("_armed", "_loop", "_passed", "_per_turn", "_waiters")

    def __init__(self, loop: asyncio.AbstractEventLoop, per_turn: int) -> None:
        self._loop = loop
        self._per_turn = per_turn
        self._passed = 0
        self._armed = False
        self._waiters: deque[asyncio.Future[None]] = deque()

    async def enter(self) -> None:
        if self._passed < self._per_turn and not self._waiters:
            self._passed += 1
            self._arm()
            return
        fut = self._loop.create_future()
        self._waiters.append(fut)
        self._arm()
        try:
            await fut
        except asyncio.CancelledError:
            if not fut.done():
                self._waiters.remove(fut)
            raise

    def _arm(self) -> None:
        # The count restarts in the next iteration (call_soon runs there, not in this one).
        if not self._armed:
            self._armed = True
            self._loop.call_soon(self._next_turn)

    def _next_turn(self) -> None:
        self._armed = False
        self._passed = 0
        while self._waiters and self._passed < self._per_turn:
            fut = self._waiters.popleft()
            if not fut.done():
                fut.set_result(None)
                self._passed += 1
        if self._passed:
            self._arm()


_gates: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _TurnGate] = (
    weakref.WeakKeyDictionary()
)


async def turn() -> None:
    """Wait for this event-loop iteration's share of connection work (at once if it is free)."""
    loop = asyncio.get_running_loop()
    gate = _gates.get(loop)
    if gate is None:
        gate = _gates[loop] = _TurnGate(loop, PER_TURN)
    await gate.enter()
