"""Red team: make a stuck handler's buffer hold many times ``event_queue_bytes`` (issue 11, 10).

Charged by frame length, frames of empty member objects (16x once decoded) filled a 1 MiB
buffer with ~170 events holding ~17 MiB. Charged an estimate of their decoded size, the same
frames leave the buffer holding at most ~2x its budget (plus the one event an empty buffer
always takes).
"""

from __future__ import annotations

import asyncio
import tracemalloc

from tests.test_stream import WAIT, Harness
from yeastar_async import events
from yeastar_async.events import CallStatusChanged, Connected
from yeastar_async.testing import FakePBX

MIB = 1024 * 1024
FRAMES = 200
INFLATING = {"call_id": "1650000000.1", "members": [{}] * 2000}  # a ~6 KB frame


def _held(frame: str) -> int:
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        event = events.decode(frame.encode())
        held = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert type(event) is CallStatusChanged
    return held


async def test_a_stuck_handler_fed_inflating_frames_holds_about_twice_its_budget() -> None:
    stuck = asyncio.Event()
    started = asyncio.Event()
    async with (
        FakePBX(idle_timeout=0.5) as pbx,
        Harness(pbx, overflow="drop_newest", queue_bytes=MIB) as h,
    ):
        per_event = _held(pbx.event_frame(30011, INFLATING))
        h.record(Connected)

        async def handler(event: CallStatusChanged) -> None:
            started.set()
            await stuck.wait()

        h.stream.add_handler(CallStatusChanged, handler)
        h.listen()
        await h.next(Connected)
        assert await pbx.emit(30011, INFLATING) == 1
        async with asyncio.timeout(WAIT):
            await started.wait()  # the handler holds the first event, the inbox is empty
        for _ in range(FRAMES):
            assert await pbx.emit(30011, INFLATING) == 1
        inbox = h.stream._dispatch._inbox
        assert inbox is not None
        await pbx.wait_until(
            lambda: h.stream.stats.drops + len(inbox) >= FRAMES, WAIT, "every frame read"
        )
        # Was ~170 events, ~16 MiB decoded, in a 1 MiB buffer.
        assert len(inbox) * per_event <= 2 * MIB + per_event
        assert len(inbox) >= 1
        stuck.set()
