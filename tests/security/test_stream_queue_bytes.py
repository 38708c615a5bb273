"""Event memory is bounded in bytes too (issue 11, point 10).

With a stuck handler and 1 MiB frames, a queue bounded only by count (1024) held 1-2 GiB.
Every buffer (the handler inbox, each subscription) now also stops at ``queue_bytes`` of
frames (``event_queue_bytes`` of the client).
"""

from __future__ import annotations

import asyncio

import pytest

from tests.test_stream import WAIT, Harness, payload
from yeastar_async import YeastarClient
from yeastar_async.events import CallStatusChanged, Connected
from yeastar_async.events._dispatch import _Buffer
from yeastar_async.events._stream import StreamOptions
from yeastar_async.testing import FakePBX

MIB = 1024 * 1024


def _no_drop() -> None:
    raise AssertionError("nothing may be dropped under 'block'")


async def test_a_buffer_full_in_bytes_blocks_the_producer_until_room_is_made() -> None:
    buffer: _Buffer[str] = _Buffer(1024, "block", _no_drop, max_bytes=1000)
    assert await buffer.put("a", 400)
    assert await buffer.put("b", 400)
    third = asyncio.create_task(buffer.put("c", 400))
    await asyncio.sleep(0)  # one loop turn: the put is now waiting (nothing else to await)
    assert not third.done()
    assert buffer.nbytes == 800
    assert buffer.get_nowait() == "a"
    async with asyncio.timeout(WAIT):
        assert await third
    assert buffer.nbytes == 800
    assert len(buffer) == 2


def test_an_empty_buffer_takes_one_frame_larger_than_the_budget() -> None:
    buffer: _Buffer[str] = _Buffer(1024, "block", _no_drop, max_bytes=1000)
    assert buffer.put_nowait("big", 5000)
    assert not buffer.put_nowait("next", 1)
    assert buffer.put_at_once("link event", 0)  # local events still go through


def test_drop_oldest_makes_room_in_bytes() -> None:
    drops: list[int] = []
    buffer: _Buffer[str] = _Buffer(1024, "drop_oldest", lambda: drops.append(1), max_bytes=1000)
    for name in "abc":
        assert buffer.put_nowait(name, 300)
    assert buffer.put_at_once("d", 900)
    assert len(drops) == 3
    assert buffer.get_nowait() == "d"
    assert buffer.nbytes == 0


async def test_a_stuck_handler_fed_1_mib_frames_holds_about_queue_bytes() -> None:
    stuck = asyncio.Event()
    started = asyncio.Event()
    async with (
        FakePBX(idle_timeout=0.5) as pbx,
        Harness(pbx, overflow="drop_newest", queue_bytes=4 * MIB, max_frame_size=2 * MIB) as h,
    ):
        h.record(Connected)

        async def handler(event: CallStatusChanged) -> None:
            started.set()
            await stuck.wait()

        h.stream.add_handler(CallStatusChanged, handler)
        h.listen()
        await h.next(Connected)
        big = payload("x" * (MIB - 4096))  # one frame just under 1 MiB
        assert await pbx.emit(30011, big) == 1
        async with asyncio.timeout(WAIT):
            await started.wait()  # the handler holds the first event, the inbox is empty
        for _ in range(20):
            assert await pbx.emit(30011, big) == 1
        inbox = h.stream._dispatch._inbox
        assert inbox is not None
        await pbx.wait_until(
            lambda: h.stream.stats.drops + len(inbox) >= 20, WAIT, "every big frame read"
        )
        assert len(inbox) == 4  # 4 MiB of frames; a count bound alone would have kept all 20
        assert inbox.nbytes <= 4 * MIB
        assert h.stream.stats.drops == 16
        stuck.set()


def test_the_client_option_is_validated_and_named() -> None:
    with pytest.raises(ValueError, match=r"event_queue_bytes.*100"):
        YeastarClient("http://127.0.0.1:1", "id", "secret", event_queue_bytes=100)
    assert StreamOptions().queue_bytes == 16 * MIB
