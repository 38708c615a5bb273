"""Chaos on the WebSocket link: drops, half-open sockets, silent heartbeats, flapping servers.

Issue 7, scenarios 1-4. Each test ends (in the rig) with: no task of the client left, every TCP
connection closed, the connection pool empty, and logins within their bound.
"""

from __future__ import annotations

import asyncio
from itertools import pairwise

from tests.chaos._rig import FAST, WAIT, Rig
from yeastar_async.events import Connected, Disconnected
from yeastar_async.testing import FakePBX

#: The longest a dead link may go unnoticed: one heartbeat interval plus the timeout, with
#: room for a loaded CI machine.
DETECT = FAST["heartbeat_interval"] + FAST["heartbeat_timeout"] + 0.5


async def _stream(rig: Rig, stop: asyncio.Event, pace: float = 0.002) -> None:
    """Emit numbered events until ``stop`` is set (paced, so the loop stays responsive)."""
    while not stop.is_set():
        await rig.emit_one()
        await asyncio.sleep(pace)


async def test_drop_mid_stream_reconnects_resubscribes_and_loses_nothing_sent_live(
    pbx: FakePBX,
) -> None:
    """1. A socket cut without a close frame, three times, while events flow."""
    loop = asyncio.get_running_loop()
    async with Rig(pbx, subscriber=True) as rig:
        await rig.listen()
        assert await rig.next_link(Connected) == Connected(reconnect=False, gap=None)
        stop = asyncio.Event()
        emitter = asyncio.create_task(_stream(rig, stop))
        try:
            for n in range(1, 4):
                # Mid-stream: the handlers are busy with a steady flow when the socket dies.
                await rig.delivered(len(rig.sent) + 30)
                dropped_at = loop.time()
                assert pbx.drop_connections() == 1
                lost = await rig.next_link(Disconnected)
                back = await rig.next_link(Connected)
                took = loop.time() - dropped_at
                assert "connection closed" in lost.reason, lost
                assert back.reconnect is True
                assert back.gap is not None
                assert 0 < back.gap <= took < 2.0
                # The topics went out again on the new socket, and the PBX acked them.
                assert pbx.stats.subscriptions == [[30011]] * (n + 1)
                assert rig.client.event_stats.reconnects == n
            await rig.delivered(len(rig.sent) + 30)
        finally:
            stop.set()
            await emitter
        await rig.settle()
        assert pbx.stats.ws_connects == 4
        assert rig.client.connected


async def test_a_half_open_socket_is_detected_by_the_liveness_deadline(pbx: FakePBX) -> None:
    """2. Black hole: TCP stays open, nothing comes back (no ack, no heartbeat reply)."""
    loop = asyncio.get_running_loop()
    async with Rig(pbx) as rig:
        await rig.listen()
        await rig.next_link(Connected)
        await rig.emit(20)
        await rig.settle()
        holed_at = loop.time()
        pbx.black_hole()
        lost = await rig.next_link(Disconnected, timeout=DETECT + 1.0)
        assert loop.time() - holed_at < DETECT
        assert "no frame from the PBX" in lost.reason, lost
        # While the hole lasts, new sockets open but are never acked: each is replaced.
        connects = pbx.stats.ws_connects
        await pbx.wait_until(lambda: pbx.stats.ws_connects >= connects + 2, WAIT, "2 retries")
        assert await rig.emit(5) == 0  # nothing reaches a black-holed socket
        assert not rig.client.connected
        assert rig.links_since_cursor() == []  # an unacked link is never "connected"
        pbx.black_hole(False)
        back = await rig.next_link(Connected)
        assert back.reconnect is True
        assert back.gap is not None
        assert back.gap > FAST["heartbeat_timeout"]
        assert await rig.emit(20) == 20
        await rig.settle()


async def test_silent_heartbeats_are_tolerated_while_events_flow_then_detected(
    pbx: FakePBX,
) -> None:
    """3. Heartbeat replies stop while events still flow; then everything stops."""
    loop = asyncio.get_running_loop()
    async with Rig(pbx) as rig:
        await rig.listen()
        await rig.next_link(Connected)
        pbx.stop_heartbeat_replies()
        beats = rig.client.event_stats.heartbeats_sent
        # Twelve heartbeats (three heartbeat timeouts) without a single reply: every event
        # frame is proof of life, so the link stays.
        while rig.client.event_stats.heartbeats_sent < beats + 12:
            assert await rig.emit_one() == 1
            await asyncio.sleep(0.02)  # the pace of the flow, well under heartbeat_timeout
        assert rig.links_since_cursor() == []
        await rig.settle()
        # Now nothing at all comes back: the next unanswered heartbeat kills the link.
        quiet_at = loop.time()
        lost = await rig.next_link(Disconnected, timeout=DETECT + 1.0)
        assert loop.time() - quiet_at < DETECT
        assert "no frame from the PBX" in lost.reason, lost
        pbx.stop_heartbeat_replies(False)
        assert (await rig.next_link(Connected)).reconnect is True
        assert await rig.emit(20) == 20
        await rig.settle()
        assert pbx.stats.ws_connects == 2


async def test_accept_then_close_is_bounded_by_the_backoff(pbx: FakePBX) -> None:
    """4. A server that accepts every upgrade and closes at once: no hot loop."""
    low = 0.03
    async with Rig(pbx, reconnect_delay_min=low, reconnect_delay_max=0.12) as rig:
        pbx.accept_then_close(1000)
        await rig.listen()
        await pbx.wait_until(lambda: pbx.stats.ws_connects >= 8, WAIT, "8 upgrades")
        upgrades = pbx.requests_for("subscribe")[:8]
        gaps = [b.received_at - a.received_at for a, b in pairwise(upgrades)]
        # At most one attempt per reconnect_delay_min: N attempts span at least (N-1) * min.
        assert min(gaps) >= low * 0.9, gaps
        assert upgrades[-1].received_at - upgrades[0].received_at >= 7 * low * 0.9
        # Never healthy, so the bound grew: the later gaps are not all at the minimum.
        assert max(gaps[3:]) > low * 1.2, gaps
        assert rig.links == []  # never acked: neither Connected nor Disconnected
        assert pbx.count("get_token") == 1  # the same token for every attempt
        pbx.clear_faults()
        assert await rig.next_link(Connected) == Connected(reconnect=False, gap=None)
        assert await rig.emit(10) == 10
        await rig.settle()


async def test_a_link_that_dies_right_after_its_ack_keeps_backing_off(pbx: FakePBX) -> None:
    """4b. A flapping server: each link is acked, carries a few events, and is cut at once."""
    low = 0.03
    async with Rig(pbx, reconnect_delay_min=low, reconnect_delay_max=0.12) as rig:
        await rig.listen()
        await rig.next_link(Connected)
        for _ in range(6):
            assert await rig.emit(5) == 5
            await rig.settle()
            assert pbx.drop_connections() == 1
            await rig.next_link(Disconnected)
            assert (await rig.next_link(Connected)).reconnect is True
        upgrades = pbx.requests_for("subscribe")
        gaps = [b.received_at - a.received_at for a, b in pairwise(upgrades)]
        assert min(gaps) >= low * 0.9, gaps
        # No link lived healthy_after (0.3 s), so the backoff was never reset to the minimum.
        assert max(gaps[2:]) > low * 1.2, gaps
        assert await rig.emit(5) == 5
        await rig.settle()
        assert pbx.count("get_token") == 1
