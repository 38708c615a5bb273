"""Chaos on REST: a 503 storm while the event stream keeps running.

Issue 7, scenario 7. GETs are retried with backoff and then raise TransportError; a POST such
as ``call/dial`` is never replayed (a second attempt could ring a phone twice).
"""

from __future__ import annotations

import asyncio
from itertools import pairwise

import pytest

from tests.chaos._rig import Rig
from yeastar_async.errors import TransportError
from yeastar_async.events import Connected
from yeastar_async.testing import FakePBX

#: Small retry backoff for the test (the client's default is 0.25 s, up to 8 s).
RETRY_MIN = 0.02


async def test_a_503_storm_retries_gets_with_backoff_and_never_replays_dial(pbx: FakePBX) -> None:
    """7. Every REST request answers 503 (the WebSocket upgrade is not affected)."""
    async with Rig(pbx, retries=2, retry_backoff=RETRY_MIN, retry_backoff_max=0.08) as rig:
        await rig.listen()
        await rig.next_link(Connected)
        token = pbx.live_access_tokens()[0]
        pbx.fail_next(10_000, 503)

        with pytest.raises(TransportError) as info:
            await rig.client.system.information()
        assert info.value.status == 503
        assert token not in str(info.value)
        gets = pbx.requests_for("system/information")
        assert len(gets) == 3  # the first attempt and two retries
        gaps = [b.received_at - a.received_at for a, b in pairwise(gets)]
        assert min(gaps) >= RETRY_MIN * 0.9, gaps  # backoff, not a hot loop

        with pytest.raises(TransportError) as info:
            await rig.client.call.dial(caller="2000", callee="5503301")
        assert info.value.status == 503
        assert pbx.count("call/dial") == 1  # never replayed
        assert not pbx.calls

        # Twenty concurrent GETs in the storm: each gives up after exactly three attempts.
        results = await asyncio.gather(
            *(rig.client.extension.list(page=1, page_size=10) for _ in range(20)),
            return_exceptions=True,
        )
        assert all(isinstance(r, TransportError) and r.status == 503 for r in results)
        assert pbx.count("extension/list") == 60

        # The event stream is untouched by the storm.
        assert rig.links_since_cursor() == []
        assert await rig.emit(10) == 10
        await rig.settle()

        pbx.clear_faults()
        assert (await rig.client.system.information()).errcode == 0
        assert pbx.count("get_token") == 1
        assert pbx.count("refresh_token") == 0


async def test_a_short_storm_is_ridden_out_by_gets_but_not_by_dial(pbx: FakePBX) -> None:
    """7. Two 503s then recovery: a GET succeeds on its third attempt; a dial fails once."""
    async with Rig(pbx, retries=2, retry_backoff=RETRY_MIN, retry_backoff_max=0.08) as rig:
        await rig.listen()
        await rig.next_link(Connected)
        pbx.fail_next(2, 503, endpoint="system/information")
        assert (await rig.client.system.information()).errcode == 0
        assert pbx.count("system/information") == 3

        pbx.fail_next(1, 503, endpoint="call/dial")
        with pytest.raises(TransportError):
            await rig.client.call.dial(caller="2000", callee="2001")
        assert not pbx.calls
        answer = await rig.client.call.dial(caller="2000", callee="2001")
        assert pbx.count("call/dial") == 2
        assert list(pbx.calls) == [answer.call_id]  # exactly one call rang
        assert await rig.emit(5) == 5
        await rig.settle()
