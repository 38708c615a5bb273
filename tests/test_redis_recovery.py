"""A failover's CDRs: the new holder appends the CDRs of the gap once, as ``CdrRecovered``.

In one process, against a real redis-server and the FakePBX: a holder closes (its lease
released, or expired), CDRs of calls that end while nobody holds the link are recorded on the
PBX, and the next holder fetches them over REST and appends those the stream does not hold.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest
import redis.asyncio as aioredis

from tests._calls import call_ends, cdr
from tests._redis import redis_client, redis_server, until
from tests._relay import TIMEOUT, Holder, Worker, entries, stream_calls
from yeastar_async import events
from yeastar_async.redis import EventRelay
from yeastar_async.redis._gap import TenureCdrs
from yeastar_async.resources.cdr import CDRDetails
from yeastar_async.testing import FakePBX

__all__ = ["redis_client", "redis_server"]


@dataclass
class HeldSearch:
    """A failover whose CDR search is in flight at the PBX until ``gate`` is set."""

    worker: Worker
    first: Holder
    second: Holder
    missed: dict[str, Any]
    gate: asyncio.Event
    #: The alive mark the first holder left.
    alive: bytes | None


@contextlib.asynccontextmanager
async def held_search(
    pbx: FakePBX, redis: aioredis.Redis, live: dict[str, Any] | None = None
) -> AsyncIterator[HeldSearch]:
    """A first holder appends (``live``, if given) and leaves; a call ends unseen; a second
    holder takes over and its search of the gap is held."""
    worker = Worker(redis)
    first = Holder(pbx, redis).start()
    second = Holder(pbx, redis)
    try:
        await pbx.wait_for_subscription([30012])
        await worker.until(lambda: worker.events, "the first holder's Connected")
        if live is not None:
            await call_ends(pbx, live)
            await worker.until(lambda: worker.calls(), "the live CDR")
        await first.close()
        alive = await redis.get(worker.relay.keys.alive)
        missed = cdr(1, trunk="gap")
        await call_ends(pbx, missed)
        gate = pbx.hold_next(1, "cdr/search")
        searches = pbx.count("cdr/search")
        second.start()
        await pbx.wait_for_request("cdr/search", searches + 1, TIMEOUT)
        yield HeldSearch(worker, first, second, missed, gate, alive)
    finally:
        await worker.close()
        await first.close()
        await second.close()


async def test_a_failover_appends_the_cdrs_of_the_gap_once_as_cdr_recovered(
    fake_pbx: FakePBX, redis_client: aioredis.Redis
) -> None:
    worker = Worker(redis_client)
    first = Holder(fake_pbx, redis_client).start()
    second = Holder(fake_pbx, redis_client)
    try:
        await fake_pbx.wait_for_subscription([30012])
        live = [cdr(n, trunk="live") for n in range(3)]
        for payload in live:
            assert await call_ends(fake_pbx, payload) == 1
        await worker.until(lambda: len(worker.calls()) == 3, "the live CDRs")
        await first.close()
        # Nobody holds the link: these calls end unseen.
        gap = [cdr(n, ago=4 - n, trunk="gap") for n in range(3, 6)]
        for payload in gap:
            assert await call_ends(fake_pbx, payload) == 0
        second.start()
        await worker.until(lambda: len(worker.calls()) == 6, "the gap's CDRs")
        after = cdr(6, ago=0, trunk="after")
        assert await call_ends(fake_pbx, after) == 1
        await worker.until(lambda: len(worker.calls()) == 7, "a live CDR after the failover")
    finally:
        await worker.close()
        await first.close()
        await second.close()

    ids = [p["call_id"] for p in (*live, *gap, after)]
    assert worker.calls() == ids  # each once, the recovered ones between
    recovered = [e for e in worker.events if isinstance(e, events.CdrRecovered)]
    assert [e.msg.call_id for e in recovered] == [p["call_id"] for p in gap]
    assert all(isinstance(e.record, CDRDetails) for e in recovered)
    assert recovered[0].record.src_trunk == "gap"
    (connected,) = worker.failovers()
    assert connected.recovered_cdrs == 3
    assert connected.recovery_error == ""
    assert connected.unrecoverable_topics == {30011, 30016}
    assert connected.gap is not None
    assert connected.gap > 0
    # The order workers see: the gap reported, its CDRs, then the live events.
    kinds = [type(e).__name__ for e in worker.events]
    start = kinds.index("Disconnected")
    assert kinds[start:] == ["Disconnected", "Connected", *["CdrRecovered"] * 3, "NewCdr"]
    assert worker.events[start].unrecoverable_topics == {30011, 30016}
    stats = second.relay.stats
    assert (stats.failovers, stats.recovered_cdrs) == (1, 3)
    # The search also found the three live calls (within its margin): the stream had them.
    assert stats.duplicate_cdrs == 3
    assert await stream_calls(redis_client) == ids


async def test_priority_events_go_out_while_the_search_runs_the_rest_wait(
    fake_pbx: FakePBX, redis_client: aioredis.Redis
) -> None:
    async with held_search(fake_pbx, redis_client) as held:
        worker = held.worker
        # During the search: a CDR (held back) and an inbound call (not).
        during = cdr(2, ago=0, trunk="during")
        assert await call_ends(fake_pbx, during) == 1
        assert await fake_pbx.emit(30016, fake_pbx.example_event(30016)) == 1
        await worker.until(
            lambda: any(getattr(e, "type", None) == 30016 for e in worker.events),
            "the 30016 handled while the search is held",
        )
        assert worker.calls() == []
        appended = await entries(redis_client, worker.relay.keys.events)
        assert [type(e).__name__ for e in appended] == ["Connected"]  # the first holder's
        held.gate.set()
        await worker.until(lambda: len(worker.calls()) == 2, "both CDRs")
    # The search answered after the call held back had ended: it found that call too, so the
    # live 30012 waiting behind it was dropped. Each call once, the gap's first.
    assert worker.calls() == [held.missed["call_id"], during["call_id"]]
    assert all(isinstance(e, events.CdrRecovered) for e in worker.events[-2:])
    assert held.second.relay.stats.duplicate_cdrs == 1


async def test_a_link_drop_during_the_search_loses_no_cdr(
    fake_pbx: FakePBX, redis_client: aioredis.Redis
) -> None:
    async with held_search(fake_pbx, redis_client) as held:
        worker, missed = held.worker, held.missed
        upgrades = fake_pbx.count("subscribe")
        assert fake_pbx.drop_connections() == 1
        outage = cdr(2, ago=3, trunk="outage")
        await call_ends(fake_pbx, outage)  # live or not: the client's own recovery has it
        # The client reconnects and recovers its own gap while the relay's search is held.
        await fake_pbx.wait_for_request("subscribe", upgrades + 1, TIMEOUT)
        await fake_pbx.wait_for_subscription([30012])
        later = cdr(3, ago=0, trunk="later")
        await call_ends(fake_pbx, later)
        held.gate.set()
        await worker.until(lambda: len(worker.calls()) == 3, "every CDR")
        await worker.until(lambda: len(worker.failovers()) == 2, "the reconnect reported")
    ids = sorted(p["call_id"] for p in (missed, outage, later))
    assert sorted(worker.calls()) == ids
    assert sorted(await stream_calls(redis_client)) == ids  # nothing appended twice after
    assert worker.calls()[0] == missed["call_id"]
    kinds = [type(e).__name__ for e in worker.events]
    start = kinds.index("Disconnected")
    # The failover's gap and its CDRs first (the search ran last, so it found every call that
    # had ended), then the drop and reconnect that happened meanwhile.
    n = worker.failovers()[0].recovered_cdrs
    assert n >= 1
    assert kinds[start : start + n + 4] == [
        "Disconnected",
        "Connected",
        *["CdrRecovered"] * n,
        "Disconnected",
        "Connected",
    ]


async def test_a_holder_that_dies_in_its_search_leaves_the_whole_gap_to_the_next(
    fake_pbx: FakePBX, redis_client: aioredis.Redis
) -> None:
    third = Holder(fake_pbx, redis_client)
    try:
        async with held_search(fake_pbx, redis_client, live=cdr(0, trunk="live")) as held:
            worker, doomed, keys = held.worker, held.second, held.worker.relay.keys
            # Its link is up and it appends (a 30016), but the gap's CDRs are not in the
            # stream: the alive mark, where the next holder's search starts, must not move.
            await fake_pbx.emit(30016, fake_pbx.example_event(30016))
            await until(lambda: redis_client.xlen(keys.priority), "the 30016 appended")
            await until(lambda: doomed.relay.stats.appended >= 1, "the append counted")
            assert await redis_client.get(keys.alive) == held.alive
            await doomed.close()
            held.gate.set()
            third.start()
            await worker.until(lambda: len(worker.calls()) == 2, "the gap's CDR")
    finally:
        await third.close()
    assert worker.calls()[1] == held.missed["call_id"]
    assert isinstance(worker.events[-1], events.CdrRecovered)
    assert third.relay.stats.recovered_cdrs == 1
    assert doomed.relay.stats.recovered_cdrs == 0


async def test_a_holder_taking_the_link_back_appends_no_cdr_twice(
    fake_pbx: FakePBX, redis_client: aioredis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The client's own recovery (from where its earlier link ended) finds the CDRs another
    holder appended meanwhile: the ledger read back from the stream from there drops them."""
    # A short margin, so that the second holder's alive mark is more than two margins past
    # where the first one's link ended within a second or two.
    monkeypatch.setattr(TenureCdrs, "MARGIN", 0.25)
    keys = EventRelay(redis_client, "pbx").keys
    worker = Worker(redis_client)
    a = Holder(fake_pbx, redis_client).start()
    b = Holder(fake_pbx, redis_client)
    sent: list[str] = []

    async def end(name: str, links: int) -> None:
        payload = cdr(len(sent), ago=3, trunk=name)  # 3 s long: it ends now
        sent.append(payload["call_id"])
        assert await call_ends(fake_pbx, payload) == links

    try:
        await fake_pbx.wait_for_subscription([30012])
        await end("a", 1)
        await worker.until(lambda: len(worker.calls()) == 1, "A's CDR")
        await a.stop()  # A leaves; its client stays, its checkpoint where its link ended
        await fake_pbx.wait_until(lambda: not fake_pbx.sockets, TIMEOUT, "A's link closed")
        left = a.client.checkpoint
        assert left is not None
        b.start()
        await fake_pbx.wait_for_subscription([30012])
        await end("b", 1)
        await end("b", 1)
        await worker.until(lambda: len(worker.calls()) == 3, "B's CDRs")

        async def marked_late() -> bool:
            seconds, micros = await redis_client.time()
            alive = int(await redis_client.get(keys.alive) or 0) / 1000
            return alive - (seconds + micros / 1e6 - (time.time() - left.time)) > 1.0

        await until(marked_late, "B's alive mark a second past A's leaving")
        await b.close()
        await end("nobody", 0)
        a.start()
        await worker.until(lambda: len(worker.calls()) == 4, "the gap's CDR")
        await end("a-again", 1)
        await worker.until(lambda: len(worker.calls()) == 5, "a live CDR after")
    finally:
        await worker.close()
        await a.close()
        await b.close()
    assert worker.calls() == sent
    assert await stream_calls(redis_client) == sent
    failover = worker.failovers()[-1]
    assert failover.recovered_cdrs == 1
    # A's client recovered B's two CDRs and the gap's on its own: all three dropped.
    assert a.relay.stats.duplicate_cdrs >= 3
