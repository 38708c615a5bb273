"""Chaos under load and in user code: a 10,000-event flood with a slow handler, drop policies,
and handlers that raise, cancel themselves or hang.

Issue 7, scenarios 8 and 9.
"""

from __future__ import annotations

import asyncio
import logging
import re

import pytest

from tests.chaos._rig import TOPIC, WAIT, Recorder, Rig, seq_of
from tests.chaos.conftest import FakeFactory
from yeastar_async.events import CallStatusChanged, Connected, NewCdr
from yeastar_async.testing import FakePBX

FLOOD = 10_000


async def test_a_flood_with_a_slow_handler_loses_nothing_and_heartbeats_go_on(
    fake_factory: FakeFactory,
) -> None:
    """8. Default policy (block): 10,000 events, the handler stalls, the link stays healthy."""
    # The fake drops a socket without a client frame for 2 s: stopped heartbeats would show.
    pbx = await fake_factory(idle_timeout=2.0)
    async with Rig(pbx, handlers=1, event_queue_size=64) as rig:
        gate = asyncio.Event()
        slow = Recorder("slow handler", rig.changes)

        async def stalls(event: CallStatusChanged) -> None:
            await gate.wait()  # stalled until the flood has piled up behind it
            await slow(event)

        rig.client.add_handler(TOPIC, stalls)
        rig.recorders.append(slow)
        await rig.listen()
        await rig.next_link(Connected)
        flood = asyncio.create_task(rig.emit(FLOOD))
        await rig.changes.wait_until(lambda: rig.recorders[0].seqs == [0], WAIT, "event 0")
        # The queue fills, the reader is held back: heartbeats must still go out on time and
        # the liveness deadline must not fire (six intervals > heartbeat_timeout).
        beats = pbx.stats.heartbeats
        await pbx.wait_for_heartbeats(beats + 6, timeout=WAIT)
        assert rig.links_since_cursor() == []
        assert len(rig.recorders[0].seqs) < 200  # it really is held back
        gate.set()
        async with asyncio.timeout(30):
            assert await flood == FLOOD
        await rig.settle(timeout=30)
        stats = rig.client.event_stats
        assert stats.drops == 0
        assert stats.reconnects == 0
        assert pbx.stats.ws_connects == 1
        assert rig.links_since_cursor() == []


@pytest.mark.parametrize("policy", ["drop_newest", "drop_oldest"])
async def test_a_drop_policy_counts_and_reports_every_drop(
    pbx: FakePBX, policy: str, caplog: pytest.LogCaptureFixture
) -> None:
    """8. Opt-in drop policy: the flood overflows a small queue; every drop is counted."""
    total, size = 2000, 32
    caplog.set_level(logging.WARNING, logger="yeastar_async.events")
    async with Rig(pbx, handlers=0, event_queue_size=size, overflow=policy) as rig:
        gate = asyncio.Event()
        gated = Recorder("gated handler", rig.changes)

        @rig.client.on(CallStatusChanged)
        async def stalls(event: CallStatusChanged) -> None:
            await gate.wait()
            await gated(event)

        await rig.listen()
        # Connected goes through the same queue: handled before the flood, it is not dropped.
        await rig.next_link(Connected)
        # A subscription of another topic has its own (empty) buffer: its marker, sent after
        # the flood, tells when the reader has read every frame before it.
        async with rig.client.subscribe(NewCdr) as marker:
            await pbx.wait_for_subscription([TOPIC, 30012])
            assert await rig.emit(total) == total
            assert await pbx.emit(30012, {"call_id": "marker"}) == 1
            async with asyncio.timeout(WAIT):
                assert (await anext(marker)).msg.call_id == "marker"
        drops = rig.client.event_stats.drops
        assert 0 < drops < total
        gate.set()
        await rig.changes.wait_until(
            lambda: len(gated.seqs) >= total - drops, WAIT, "the events that were kept"
        )
        handled = gated.seqs
        assert len(handled) == total - drops
        assert handled == sorted(set(handled))  # in order, never twice
        if policy == "drop_newest":
            assert handled[:size] == list(range(size))
        else:
            assert handled[-size:] == list(range(total - size, total))
    # Reported: a warning at the first drop, the rest (rate-limited) at the latest on close.
    reported = [
        int(m.group(1))
        for r in caplog.records
        if (m := re.search(r"dropped (\d+) event", r.getMessage()))
    ]
    assert reported
    assert sum(reported) == drops


async def test_raising_cancelling_and_hanging_handlers_are_isolated(pbx: FakePBX) -> None:
    """9. One handler raises, one cancels itself, one hangs past handler_timeout."""
    async with Rig(pbx, subscriber=True, handler_timeout=0.05) as rig:
        calls: dict[str, list[int]] = {"raises": [], "cancels": [], "hangs": []}

        async def raises(event: CallStatusChanged) -> None:
            calls["raises"].append(seq_of(event))
            if seq_of(event) % 2:
                raise RuntimeError("a bug in user code")

        async def cancels(event: CallStatusChanged) -> None:
            calls["cancels"].append(seq_of(event))
            if seq_of(event) == 5:
                raise asyncio.CancelledError  # e.g. a cancelled task it awaited

        async def hangs(event: CallStatusChanged) -> None:
            calls["hangs"].append(seq_of(event))
            if seq_of(event) in (3, 7):
                await asyncio.Event().wait()  # never set: only handler_timeout ends it

        for fn in (raises, cancels, hangs):
            rig.client.add_handler(TOPIC, fn)
        after = Recorder("after the bad handlers", rig.changes)
        rig.client.add_handler(TOPIC, after)
        rig.recorders.append(after)

        await rig.listen()
        await rig.next_link(Connected)
        assert await rig.emit(20) == 20
        await rig.settle()
        for name, seen in calls.items():
            assert seen == rig.sent, name
        # 10 odd numbers raised, one cancellation, two timeouts.
        assert rig.client.event_stats.handler_errors == 10 + 1 + 2
        assert rig.links_since_cursor() == []
        assert rig.client.connected
