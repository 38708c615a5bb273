"""subscribe() entered with no link up waits for the first connection attempt to settle."""

from __future__ import annotations

import asyncio

from yeastar_async import YeastarClient, events
from yeastar_async.testing import FakePBX


async def test_events_right_after_entering_subscribe_are_not_missed() -> None:
    async with (
        FakePBX() as pbx,
        YeastarClient(pbx.base_url, pbx.client_id, pbx.client_secret) as client,
        client.subscribe(events.CallStatusChanged) as stream,
    ):
        # No waiting on the fake: entering subscribe() returned after the PBX's ack.
        assert client.connected
        await pbx.emit(30011, {"call_id": "1.1", "members": []})
        event = await anext(aiter(stream))
        assert isinstance(event, events.CallStatusChanged)
        assert event.msg.call_id == "1.1"


async def test_subscribe_returns_after_a_failed_first_attempt() -> None:
    async with FakePBX() as pbx:
        pbx.reject_handshake(503)
        client = YeastarClient(
            pbx.base_url,
            pbx.client_id,
            pbx.client_secret,
            heartbeat_timeout=0.05,
            reconnect_delay_min=5,
            reconnect_delay_max=5,
        )
        # The first attempt fails at once; entering does not wait through the 5 s backoff.
        async with client, asyncio.timeout(3), client.subscribe(30011):
            assert not client.connected
            assert client.event_stats.connect_attempts == 1
