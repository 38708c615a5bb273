"""Red team: the relay's failover CDR recovery against hostile timings and configurations.

The promise under test: a CDR reaches each worker group exactly once (live or recovered)
across failovers, unless its stream entry was trimmed by ``MAXLEN`` or its call is older than
the 4 h look-back; a holder dying at any point loses no CDR of a gap. Real redis-server, the
FakePBX, holders in this process (the subprocess kill -9 cases are in test_redis_failover.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from datetime import datetime, timedelta

import pytest
import redis.asyncio as aioredis

from tests._calls import call_ends, cdr
from tests._redis import RedisServer, redis_client, redis_server, until
from tests._relay import TIMEOUT, Holder, Worker, stream_calls
from yeastar_async import events
from yeastar_async.redis import EventRelay
from yeastar_async.redis._gap import TenureCdrs
from yeastar_async.testing import FakePBX

__all__ = ["redis_client", "redis_server"]


class _HeldReplies:
    """A TCP proxy in front of Redis that can hold the reply to one command.

    ``arm(b"XRANGE")``: the next connection that sends that command gets no more bytes back
    until :meth:`release` (the command itself runs in Redis at once). Every other connection
    passes freely, so the rest of the client keeps working meanwhile.
    """

    def __init__(self, port: int) -> None:
        self._port = port
        self._command: bytes | None = None
        self._gate = asyncio.Event()
        self.seen = asyncio.Event()
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._writers: list[asyncio.StreamWriter] = []
        self._dropping: bytes | None = None
        self.drops = 0

    @property
    def url(self) -> str:
        assert self._server is not None
        port = self._server.sockets[0].getsockname()[1]
        return f"redis://127.0.0.1:{port}/0"

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)

    def arm(self, command: bytes) -> None:
        self._command = command
        self._gate.clear()
        self.seen.clear()

    def drop(self, command: bytes, times: int) -> None:
        """Close the connection of each of the next ``times`` requests of ``command``
        (Redis unreachable for that command, the others pass)."""
        self._dropping = command
        self.drops = times

    def release(self) -> None:
        self._command = None
        self._gate.set()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self._port)
        self._writers += [writer, up_writer]
        held = asyncio.Event()
        held.set()

        async def upstream() -> None:
            while data := await reader.read(65536):
                if self.drops and self._dropping is not None and self._dropping in data.upper():
                    self.drops -= 1
                    writer.transport.abort()
                    up_writer.close()
                    return
                if self._command is not None and self._command in data.upper():
                    self._command = None
                    held.clear()
                    self.seen.set()
                up_writer.write(data)
                await up_writer.drain()
            up_writer.close()

        async def downstream() -> None:
            while data := await up_reader.read(65536):
                if not held.is_set():
                    await self._gate.wait()
                    held.set()
                writer.write(data)
                await writer.drain()
            writer.close()

        tasks = [asyncio.create_task(upstream()), asyncio.create_task(downstream())]
        self._tasks.update(tasks)
        with contextlib.suppress(OSError):
            await asyncio.gather(*tasks, return_exceptions=True)

    async def close(self) -> None:
        self._gate.set()
        assert self._server is not None
        self._server.close()
        for writer in self._writers:
            writer.close()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


@contextlib.asynccontextmanager
async def held_replies(server: RedisServer) -> AsyncIterator[_HeldReplies]:
    proxy = _HeldReplies(server.port)
    await proxy.start()
    try:
        yield proxy
    finally:
        await proxy.close()


async def test_priority_cdrs_during_a_slow_seed_are_not_appended_twice(
    fake_pbx: FakePBX, redis_server: RedisServer, redis_client: aioredis.Redis
) -> None:
    """30012 configured as a priority topic goes out during the failover's search; one that
    comes while the ledger is still being read back from the stream must still count as
    held, or the search (which finds the call too) appends it again."""
    priority = (30012, 30016)
    worker = Worker(redis_client)
    first = Holder(fake_pbx, redis_client, priority_topics=priority).start()
    async with held_replies(redis_server) as proxy:
        slow = aioredis.Redis.from_url(proxy.url)
        second = Holder(fake_pbx, slow, priority_topics=priority)
        try:
            await fake_pbx.wait_for_subscription([30012])
            live = cdr(0, trunk="live")
            await call_ends(fake_pbx, live)
            await worker.until(lambda: len(worker.calls()) == 1, "the live CDR")
            await first.close()
            missed = cdr(1, trunk="gap")
            await call_ends(fake_pbx, missed)
            proxy.arm(b"XRANGE")  # the new holder's seed: its reply held
            second.start()
            await asyncio.wait_for(proxy.seen.wait(), TIMEOUT)
            await fake_pbx.wait_for_subscription([30012])
            during = cdr(2, ago=1, trunk="during")
            assert await call_ends(fake_pbx, during) == 1
            await worker.until(lambda: during["call_id"] in worker.calls(), "the live priority CDR")
            proxy.release()
            await until(lambda: second.relay.stats.failovers, "the failover")
            await worker.until(lambda: missed["call_id"] in worker.calls(), "the gap's CDR")
            # One more live CDR: everything before it in the streams is handled by then.
            after = cdr(3, ago=0, trunk="after")
            await call_ends(fake_pbx, after)
            await worker.until(lambda: after["call_id"] in worker.calls(), "a CDR after")
        finally:
            await worker.close()
            await first.close()
            await second.close()
            await slow.aclose()
    calls = worker.calls()
    assert sorted(calls) == sorted(p["call_id"] for p in (live, missed, during, after)), calls


async def test_redis_failing_the_seed_repeats_no_cdr(
    fake_pbx: FakePBX, redis_server: RedisServer, redis_client: aioredis.Redis
) -> None:
    """Redis does not answer the seed's reads for a while: the new holder must not search
    with an empty ledger (every CDR the previous holder appended within the search's margin
    would be appended again); nothing can be appended while Redis is away anyway."""
    worker = Worker(redis_client)
    first = Holder(fake_pbx, redis_client).start()
    async with held_replies(redis_server) as proxy:
        flaky = aioredis.Redis.from_url(proxy.url)
        second = Holder(fake_pbx, flaky)
        try:
            await fake_pbx.wait_for_subscription([30012])
            live = cdr(0, ago=3, trunk="live")
            await call_ends(fake_pbx, live)
            await worker.until(lambda: len(worker.calls()) == 1, "the live CDR")
            await first.close()
            missed = cdr(1, ago=3, trunk="gap")
            await call_ends(fake_pbx, missed)
            proxy.drop(b"XRANGE", 5)
            second.start()
            await worker.until(lambda: missed["call_id"] in worker.calls(), "the gap's CDR")
            after = cdr(2, ago=0, trunk="after")
            await call_ends(fake_pbx, after)
            await worker.until(lambda: after["call_id"] in worker.calls(), "a CDR after")
        finally:
            await worker.close()
            await first.close()
            await second.close()
            await flaky.aclose()
    calls = worker.calls()
    assert calls == [p["call_id"] for p in (live, missed, after)], calls
    assert proxy.drops == 0
    assert second.relay.stats.duplicate_cdrs == 1  # the search found the live one: dropped


async def test_a_failed_search_leaves_the_gap_to_the_next_holder(
    fake_pbx: FakePBX, redis_client: aioredis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The REST search of a failover fails (5xx): the Connected says so; the gap's CDRs must
    not be given up for good: the alive mark stays back, so the next holder searches again."""
    # A short margin: the next holder's search must not reach back to the gap by its margin.
    monkeypatch.setattr(TenureCdrs, "MARGIN", 0.25)
    keys = EventRelay(redis_client, "pbx").keys
    worker = Worker(redis_client)
    first = Holder(fake_pbx, redis_client).start()
    failed = Holder(fake_pbx, redis_client)
    third = Holder(fake_pbx, redis_client)
    try:
        await fake_pbx.wait_for_subscription([30012])
        await call_ends(fake_pbx, cdr(0, trunk="live"))
        await worker.until(lambda: len(worker.calls()) == 1, "the live CDR")
        await first.close()
        # 3 s long, started 2 s ago: its record (whole seconds) ends after the gap began.
        missed = cdr(1, ago=2, trunk="gap")
        ended = time.time()
        await call_ends(fake_pbx, missed)
        fake_pbx.fail_next(10_000, 503, endpoint="cdr/search")  # for its whole tenure
        failed.start()
        await worker.until(lambda: worker.failovers(), "the failover reported")
        assert worker.failovers()[0].recovery_error

        after = cdr(2, ago=0, trunk="after")
        assert await call_ends(fake_pbx, after) == 1
        await worker.until(lambda: after["call_id"] in worker.calls(), "a live CDR after")
        # The old code moved the alive mark with that append: the next search started there.
        assert int(await redis_client.get(keys.alive)) < round(ended * 1000)
        await failed.close()
        fake_pbx.clear_faults()
        third.start()
        await worker.until(lambda: missed["call_id"] in worker.calls(), "the gap's CDR")
        last = cdr(3, ago=0, trunk="last")
        await call_ends(fake_pbx, last)
        await worker.until(lambda: last["call_id"] in worker.calls(), "a CDR after")
    finally:
        await worker.close()
        for holder in (first, failed, third):
            await holder.close()
    calls = worker.calls()
    assert len(calls) == len(set(calls)) == 4, calls
    assert await stream_calls(redis_client) == calls


async def test_a_failed_search_is_tried_again_by_the_same_holder(
    fake_pbx: FakePBX, redis_client: aioredis.Redis
) -> None:
    """No successor needed: the holder whose search failed searches again and appends the
    gap's CDRs (once: the live CDRs that came meanwhile are in its ledger)."""
    worker = Worker(redis_client)
    first = Holder(fake_pbx, redis_client).start()
    second = Holder(fake_pbx, redis_client)
    keys = worker.relay.keys
    try:
        await fake_pbx.wait_for_subscription([30012])
        await call_ends(fake_pbx, cdr(0, trunk="live"))
        await worker.until(lambda: len(worker.calls()) == 1, "the live CDR")
        await first.close()
        missed = cdr(1, ago=3, trunk="gap")
        await call_ends(fake_pbx, missed)
        searches = fake_pbx.count("cdr/search")
        fake_pbx.fail_next(3, 503, endpoint="cdr/search")  # the first search and its retries
        gate = fake_pbx.hold_next(1, "cdr/search")  # the next one: searching again
        second.start()
        await worker.until(lambda: worker.failovers(), "the failover reported")
        assert worker.failovers()[0].recovery_error
        during = cdr(2, ago=0, trunk="during")
        assert await call_ends(fake_pbx, during) == 1
        await worker.until(lambda: during["call_id"] in worker.calls(), "a live CDR")
        alive = await redis_client.get(keys.alive)
        await fake_pbx.wait_for_request("cdr/search", searches + 4, TIMEOUT)  # searching again
        assert await redis_client.get(keys.alive) == alive  # the gap is not in yet
        gate.set()
        await worker.until(lambda: missed["call_id"] in worker.calls(), "the gap's CDR")
    finally:
        await worker.close()
        await first.close()
        await second.close()
    assert worker.calls()[1:] == [during["call_id"], missed["call_id"]]
    assert isinstance(worker.events[-1], events.CdrRecovered)
    assert second.relay.stats.recovered_cdrs == 1
    assert await redis_client.get(keys.alive) != alive  # moved with the recovered CDR


async def test_a_reconnect_whose_own_recovery_failed_loses_no_cdr(
    fake_pbx: FakePBX, redis_client: aioredis.Redis
) -> None:
    """The holder's own link drops and its client's recovery of that gap fails: the holder
    searches that gap again, and keeps the alive mark back meanwhile."""
    worker = Worker(redis_client)
    holder = Holder(fake_pbx, redis_client).start()
    keys = worker.relay.keys
    try:
        await fake_pbx.wait_for_subscription([30012])
        await call_ends(fake_pbx, cdr(0, trunk="live"))
        await worker.until(lambda: len(worker.calls()) == 1, "the live CDR")
        upgrades = fake_pbx.count("subscribe")
        fake_pbx.fail_next(10_000, 503, endpoint="cdr/search")  # the client's own recovery
        assert fake_pbx.drop_connections() == 1
        await worker.until(
            lambda: any(isinstance(e, events.Disconnected) for e in worker.events), "the drop"
        )
        alive = await redis_client.get(keys.alive)  # the link is down: it stays
        outage = cdr(1, ago=3, trunk="outage")
        assert await call_ends(fake_pbx, outage) == 0  # no link: its 30012 is lost
        await fake_pbx.wait_for_request("subscribe", upgrades + 1, TIMEOUT)
        await worker.until(lambda: worker.failovers(), "the reconnect reported")
        assert worker.failovers()[0].recovery_error
        fake_pbx.clear_faults()
        gate = fake_pbx.hold_next(1, "cdr/search")
        searches = fake_pbx.count("cdr/search")
        await fake_pbx.wait_for_request("cdr/search", searches + 1, TIMEOUT)  # the holder's
        assert await redis_client.get(keys.alive) == alive
        gate.set()
        await worker.until(lambda: outage["call_id"] in worker.calls(), "the outage's CDR")
    finally:
        await worker.close()
        await holder.close()
    calls = worker.calls()
    assert len(calls) == len(set(calls)) == 2, calls
    assert isinstance(worker.events[-1], events.CdrRecovered)


async def test_two_failovers_in_a_row_each_gap_once(
    fake_pbx: FakePBX, redis_client: aioredis.Redis
) -> None:
    worker = Worker(redis_client)
    holders = [Holder(fake_pbx, redis_client) for _ in range(3)]
    sent: list[str] = []
    try:
        holders[0].start()
        await fake_pbx.wait_for_subscription([30012])
        for n, holder in enumerate(holders):
            payload = cdr(len(sent), ago=1, trunk="live")
            sent.append(payload["call_id"])
            await call_ends(fake_pbx, payload)
            await worker.until(lambda: len(worker.calls()) == len(sent), "a live CDR")
            if n == len(holders) - 1:
                break
            await holder.close()
            payload = cdr(len(sent), ago=1, trunk="gap")
            sent.append(payload["call_id"])
            await call_ends(fake_pbx, payload)
            holders[n + 1].start()
            await worker.until(lambda: len(worker.calls()) == len(sent), "the gap's CDR")
            await fake_pbx.wait_for_subscription([30012])
    finally:
        await worker.close()
        for holder in holders:
            await holder.close()
    assert worker.calls() == sent
    assert len(worker.failovers()) == 2


@pytest.mark.parametrize("display", [{}, {"system_date_format": "DD/MM/YYYY"}])
async def test_v2_firmware_failover_recovers_once(
    redis_client: aioredis.Redis, display: dict[str, str]
) -> None:
    # Every call of the test after the upgrade: its records are served at v2.0 only.
    upgrade = datetime.now() - timedelta(hours=1)
    async with FakePBX(firmware="84.23.0.123", cdr_upgrade=upgrade, **display) as pbx:
        worker = Worker(redis_client)
        first = Holder(pbx, redis_client).start()
        second = Holder(pbx, redis_client)
        third = Holder(pbx, redis_client)
        try:
            await pbx.wait_for_subscription([30012])
            await call_ends(pbx, cdr(0, trunk="live"))
            await worker.until(lambda: len(worker.calls()) == 1, "the live CDR")
            await first.close()
            await call_ends(pbx, cdr(1, trunk="gap"))
            second.start()
            await worker.until(lambda: len(worker.calls()) == 2, "the gap's CDR")
            await second.close()
            await call_ends(pbx, cdr(2, trunk="gap"))
            # The third reads the second's CdrV2 entries back: none of them again.
            third.start()
            await worker.until(lambda: len(worker.calls()) == 3, "the second gap's CDR")
            await call_ends(pbx, cdr(3, ago=0, trunk="after"))
            await worker.until(lambda: len(worker.calls()) == 4, "a CDR after")
        finally:
            await worker.close()
            for holder in (first, second, third):
                await holder.close()
    calls = worker.calls()
    assert len(set(calls)) == len(calls) == 4, calls
    recovered = [e for e in worker.events if isinstance(e, events.CdrRecovered)]
    assert len(recovered) == 2
    assert all(type(e.record).__name__ == "CdrV2" for e in recovered)


async def test_decode_responses_clients_fail_over_and_recover(
    fake_pbx: FakePBX, redis_server: RedisServer
) -> None:
    text = aioredis.Redis.from_url(redis_server.url, decode_responses=True)
    worker = Worker(text)
    first = Holder(fake_pbx, text).start()
    second = Holder(fake_pbx, text)
    try:
        await fake_pbx.wait_for_subscription([30012])
        await call_ends(fake_pbx, cdr(0, trunk="live"))
        await worker.until(lambda: len(worker.calls()) == 1, "the live CDR")
        await first.close()
        await call_ends(fake_pbx, cdr(1, trunk="gap"))
        second.start()
        await worker.until(lambda: len(worker.calls()) == 2, "the gap's CDR")
        await call_ends(fake_pbx, cdr(2, ago=0, trunk="after"))
        await worker.until(lambda: len(worker.calls()) == 3, "a CDR after")
    finally:
        await worker.close()
        await first.close()
        await second.close()
        await text.aclose()
    assert len(set(worker.calls())) == 3
    assert second.relay.stats.recovered_cdrs == 1


async def test_kill_9_of_a_holder_in_its_search_leaves_the_gap_to_the_next(
    fake_pbx: FakePBX, redis_server: RedisServer, redis_client: aioredis.Redis
) -> None:
    """Subprocess holders: the first is killed with its link up, the second while its search
    is in flight (after appending a 30016), the third recovers the gap's CDR once."""
    from tests.test_redis_failover import spawned

    worker = Worker(redis_client)
    keys = worker.relay.keys
    try:
        async with spawned() as spawn:
            first = await spawn("holder", redis_server, pbx=fake_pbx)
            await first.wait(lambda s: s["holder"])
            await fake_pbx.wait_for_subscription([30012])
            await call_ends(fake_pbx, cdr(0, ago=3, trunk="live"))
            await worker.until(lambda: len(worker.calls()) == 1, "the live CDR")
            first.signal(9)
            await asyncio.wait_for(first.process.wait(), TIMEOUT)
            missed = cdr(1, ago=3, trunk="gap")
            await call_ends(fake_pbx, missed)
            searches = fake_pbx.count("cdr/search")
            gate = fake_pbx.hold_next(1, "cdr/search")
            doomed = await spawn("holder", redis_server, pbx=fake_pbx)
            await fake_pbx.wait_for_request("cdr/search", searches + 1, TIMEOUT)
            alive = await redis_client.get(keys.alive)
            await fake_pbx.emit(30016, fake_pbx.example_event(30016))
            await doomed.wait(lambda s: s["appended"] >= 1)
            assert await redis_client.get(keys.alive) == alive
            doomed.signal(9)
            await asyncio.wait_for(doomed.process.wait(), TIMEOUT)
            gate.set()
            third = await spawn("holder", redis_server, pbx=fake_pbx)
            await worker.until(lambda: missed["call_id"] in worker.calls(), "the gap's CDR")
            taken = await third.wait(lambda s: s["recovered_cdrs"] >= 1)
            after = cdr(2, ago=0, trunk="after")
            await call_ends(fake_pbx, after)
            await worker.until(lambda: after["call_id"] in worker.calls(), "a CDR after")
    finally:
        await worker.close()
    calls = worker.calls()
    assert len(calls) == len(set(calls)) == 3, calls
    assert taken["failovers"] == 1


async def test_redis_restarted_during_the_search_the_gap_still_arrives(
    fake_pbx: FakePBX, redis_server: RedisServer, redis_client: aioredis.Redis
) -> None:
    """Redis (no persistence) restarts while the new holder's search is in flight: it takes
    the lease again, appends the gap and its CDRs to the new stream, the workers read them."""
    worker = Worker(redis_client)
    first = Holder(fake_pbx, redis_client).start()
    second = Holder(fake_pbx, redis_client)
    try:
        await fake_pbx.wait_for_subscription([30012])
        await call_ends(fake_pbx, cdr(0, ago=3, trunk="live"))
        await worker.until(lambda: len(worker.calls()) == 1, "the live CDR")
        await first.close()
        missed = cdr(1, ago=3, trunk="gap")
        await call_ends(fake_pbx, missed)
        searches = fake_pbx.count("cdr/search")
        gate = fake_pbx.hold_next(1, "cdr/search")
        second.start()
        await fake_pbx.wait_for_request("cdr/search", searches + 1, TIMEOUT)
        await asyncio.to_thread(redis_server.restart)
        gate.set()
        await worker.until(lambda: missed["call_id"] in worker.calls(), "the gap's CDR")
        after = cdr(2, ago=0, trunk="after")
        await call_ends(fake_pbx, after)
        await worker.until(lambda: after["call_id"] in worker.calls(), "a CDR after")
    finally:
        await worker.close()
        await first.close()
        await second.close()
    calls = worker.calls()
    assert len(calls) == len(set(calls)) == 3, calls


async def test_a_flood_during_a_slow_search_loses_and_repeats_nothing(
    fake_pbx: FakePBX, redis_client: aioredis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    """More events than ``_HELD_MAX`` come while the search is held: the holder stops
    reading (the subscription holds them); none is lost or appended twice."""
    from yeastar_async.redis import _holder

    monkeypatch.setattr(_holder, "_HELD_MAX", 5)
    worker = Worker(redis_client)
    first = Holder(fake_pbx, redis_client).start()
    second = Holder(fake_pbx, redis_client)
    try:
        await fake_pbx.wait_for_subscription([30012])
        await worker.until(lambda: worker.events, "the first Connected")
        await first.close()
        missed = cdr(0, ago=3, trunk="gap")
        await call_ends(fake_pbx, missed)
        searches = fake_pbx.count("cdr/search")
        gate = fake_pbx.hold_next(1, "cdr/search")
        second.start()
        await fake_pbx.wait_for_request("cdr/search", searches + 1, TIMEOUT)
        flood = [cdr(n, ago=0, trunk="flood") for n in range(1, 31)]
        for payload in flood:
            assert await call_ends(fake_pbx, payload) == 1
        await fake_pbx.emit(30016, fake_pbx.example_event(30016))
        gate.set()
        await worker.until(lambda: len(worker.calls()) == 31, "every CDR")
        await worker.until(
            lambda: any(getattr(e, "type", None) == 30016 for e in worker.events), "the 30016"
        )
    finally:
        await worker.close()
        await first.close()
        await second.close()
    calls = worker.calls()
    assert sorted(calls) == sorted(p["call_id"] for p in (missed, *flood))
    assert calls[0] == missed["call_id"]


async def test_holders_that_route_30012_differently_repeat_no_cdr(
    fake_pbx: FakePBX, redis_client: aioredis.Redis
) -> None:
    """A rolling deploy changes ``priority_topics``: the old holder appended its CDRs to the
    priority stream, the new one's seed must read them there too."""
    worker = Worker(redis_client)
    first = Holder(fake_pbx, redis_client, priority_topics=(30012, 30016)).start()
    second = Holder(fake_pbx, redis_client)
    try:
        await fake_pbx.wait_for_subscription([30012])
        live = cdr(0, ago=3, trunk="live")
        await call_ends(fake_pbx, live)
        await worker.until(lambda: len(worker.calls()) == 1, "the live CDR")
        await first.close()
        missed = cdr(1, ago=3, trunk="gap")
        await call_ends(fake_pbx, missed)
        second.start()
        await worker.until(lambda: missed["call_id"] in worker.calls(), "the gap's CDR")
        after = cdr(2, ago=0, trunk="after")
        await call_ends(fake_pbx, after)
        await worker.until(lambda: after["call_id"] in worker.calls(), "a CDR after")
    finally:
        await worker.close()
        await first.close()
        await second.close()
    calls = worker.calls()
    assert calls == [p["call_id"] for p in (live, missed, after)], calls


async def test_priority_recovered_cdrs_during_the_search_keep_the_mark_back(
    fake_pbx: FakePBX, redis_client: aioredis.Redis
) -> None:
    """With 30012 a priority topic, the CdrRecovered of the client's own reconnect (its link
    dropped during the failover's search) go out during the search: they must not count as
    the failover gap's CDRs, or the alive mark moves before those are in."""
    priority = (30012, 30016)
    worker = Worker(redis_client)
    first = Holder(fake_pbx, redis_client, priority_topics=priority).start()
    second = Holder(fake_pbx, redis_client, priority_topics=priority)
    keys = worker.relay.keys
    try:
        await fake_pbx.wait_for_subscription([30012])
        await worker.until(lambda: worker.events, "the first Connected")
        await first.close()
        missed = cdr(1, ago=3, trunk="gap")
        await call_ends(fake_pbx, missed)
        searches = fake_pbx.count("cdr/search")
        gate = fake_pbx.hold_next(1, "cdr/search")
        second.start()
        await fake_pbx.wait_for_request("cdr/search", searches + 1, TIMEOUT)
        alive = await redis_client.get(keys.alive)
        upgrades = fake_pbx.count("subscribe")
        assert fake_pbx.drop_connections() == 1
        outage = cdr(2, ago=3, trunk="outage")
        await call_ends(fake_pbx, outage)
        await fake_pbx.wait_for_request("subscribe", upgrades + 1, TIMEOUT)
        # The client's own recovery answers (the failover's search is still held); the
        # stream delivers its CdrRecovered before the 30016 that follows.
        await fake_pbx.wait_for_request("cdr/search", searches + 2, TIMEOUT)
        await fake_pbx.wait_for_subscription([30012])
        await fake_pbx.emit(30016, fake_pbx.example_event(30016))
        await worker.until(
            lambda: any(getattr(e, "type", None) == 30016 for e in worker.events), "a 30016"
        )
        assert await redis_client.get(keys.alive) == alive
        gate.set()
        await worker.until(lambda: len(worker.failovers()) == 2, "both gaps reported")
        await worker.until(lambda: len(worker.calls()) == 2, "both CDRs")
        # One more: everything the holder appended before it is handled by then.
        after = cdr(3, ago=0, trunk="after")
        await call_ends(fake_pbx, after)
        await worker.until(lambda: after["call_id"] in worker.calls(), "a CDR after")
        assert await redis_client.get(keys.alive) != alive  # moved once all were in
    finally:
        await worker.close()
        await first.close()
        await second.close()
    calls = worker.calls()
    assert sorted(calls) == sorted(p["call_id"] for p in (missed, outage, after)), calls


async def test_a_client_whose_link_is_up_already_takes_over_with_the_gap(
    fake_pbx: FakePBX, redis_client: aioredis.Redis
) -> None:
    """The new holder's client is connected already (it also runs ``listen()``): its
    subscription gets no Connected of that link. The holder must still count the link as
    up (not give the lease up after ``link_grace``) and append the failover's gap and CDRs."""
    worker = Worker(redis_client)
    keys = worker.relay.keys
    first = Holder(fake_pbx, redis_client).start()
    second = Holder(fake_pbx, redis_client)
    direct: list[events.NewCdr] = []

    async def on_cdr(event: events.NewCdr) -> None:
        direct.append(event)

    second.client.add_handler(events.NewCdr, on_cdr)
    listen = asyncio.create_task(second.client.listen())
    try:
        await fake_pbx.wait_until(
            lambda: len(fake_pbx.sockets) == 2 and all(s.subscribed for s in fake_pbx.sockets),
            TIMEOUT,
            "both links up",
        )
        await call_ends(fake_pbx, cdr(0, ago=3, trunk="live"))
        await worker.until(lambda: len(worker.calls()) == 1, "the live CDR")
        await first.close()
        missed = cdr(1, ago=3, trunk="gap")
        assert await call_ends(fake_pbx, missed) == 1  # the listening link only
        second.start()
        await worker.until(lambda: missed["call_id"] in worker.calls(), "the gap's CDR")
        mark = await redis_client.get(keys.alive)
        after = cdr(2, ago=0, trunk="after")
        await call_ends(fake_pbx, after)
        await worker.until(lambda: after["call_id"] in worker.calls(), "a CDR after")

        async def moved() -> bool:
            return await redis_client.get(keys.alive) != mark

        await until(moved, "the alive mark moving: the link counts as up")
    finally:
        await worker.close()
        await first.close()
        await second.close()
        await asyncio.gather(listen, return_exceptions=True)
    calls = worker.calls()
    assert len(calls) == len(set(calls)) == 3, calls
    assert second.relay.stats.leases_lost == 0
    assert len(worker.failovers()) == 1
