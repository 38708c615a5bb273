"""Red team: write to a PBX's stream without holding its lease, or feed workers forged entries.

A holder paused between its own check and its write (GC pause, SIGSTOP, VM migration) must not
append once another process holds the lease: the check and the XADD are one Lua script.
"""

from __future__ import annotations

import asyncio

import pytest
import redis.asyncio as aioredis

from tests._redis import redis_client, redis_server, until
from yeastar_async import events
from yeastar_async.redis import EventRelay
from yeastar_async.redis._codec import encode_event
from yeastar_async.redis._lease import Keys, Lease, LeaseLost, Pending

__all__ = ["redis_client", "redis_server"]


def batch(start: int, n: int) -> list[Pending]:
    kind, value = encode_event(events.Disconnected(reason="x"))
    return [Pending(start + i, False, kind, value) for i in range(n)]


async def test_a_stale_holder_cannot_append_or_renew(redis_client: aioredis.Redis) -> None:
    keys = Keys.of("yeastar", "pbx")
    old = Lease(redis_client, keys, 0.2, 1000)
    new = Lease(redis_client, keys, 5.0, 1000)
    assert await old.acquire()
    assert not await new.acquire()  # held
    await old.append(batch(1, 1), link_up=True)
    # The old holder stalls past its lease; another process takes it.
    await redis_client.pexpire(keys.lease, 1)
    await until(new.acquire, "the lease taken by the new holder")  # expiry: Redis's clock
    assert new.fence == old.fence + 1
    stale_value = old.value
    assert stale_value is not None
    with pytest.raises(LeaseLost):
        await old.append(batch(2, 3), link_up=True)
    old.value = stale_value  # as if the pause hit right after its local check
    with pytest.raises(LeaseLost):
        await old.renew(link_up=True)
    assert await redis_client.xlen(keys.events) == 1
    await new.append(batch(1, 2), link_up=True)
    writers = [f[b"h"] for _, f in await redis_client.xrange(keys.events)]
    assert writers == [stale_value.encode(), *[new.value.encode()] * 2]  # type: ignore[union-attr]


async def test_a_retried_batch_is_written_once(redis_client: aioredis.Redis) -> None:
    keys = Keys.of("yeastar", "pbx")
    lease = Lease(redis_client, keys, 5.0, 1000)
    assert await lease.acquire()
    assert await lease.append(batch(1, 3), link_up=True) == 3
    # The reply was lost; the holder sends the same batch (and one more event) again.
    assert await lease.append(batch(1, 4), link_up=True) == 1
    assert await redis_client.xlen(keys.events) == 4


async def test_releasing_someone_elses_lease_does_nothing(redis_client: aioredis.Redis) -> None:
    keys = Keys.of("yeastar", "pbx")
    mine, theirs = Lease(redis_client, keys, 5.0, 1000), Lease(redis_client, keys, 5.0, 1000)
    assert await theirs.acquire()
    mine.value = "forged/1"
    await mine.release()
    assert await redis_client.get(keys.lease) == theirs.value.encode()  # type: ignore[union-attr]


async def test_forged_entries_are_skipped_and_acknowledged(redis_client: aioredis.Redis) -> None:
    relay = EventRelay(redis_client, "pbx", group="g")
    got: list[events.NewCdr] = []
    done = asyncio.Event()

    @relay.on(events.NewCdr)
    async def on_cdr(event: events.NewCdr) -> None:
        got.append(event)
        done.set()

    stream = relay.keys.events
    await redis_client.xadd(stream, {"k": "e", "v": "x" * 10_000})
    await redis_client.xadd(stream, {"k": "q", "v": "{}"})
    await redis_client.xadd(stream, {"junk": "1"})
    kind, value = encode_event(events.NewCdr())
    await redis_client.xadd(stream, {"k": kind, "v": value})
    work = asyncio.create_task(relay.work())
    async with asyncio.timeout(10):
        await done.wait()
    await relay.aclose()
    await asyncio.wait_for(work, 10)
    assert got == [events.NewCdr()]
    assert relay.stats.bad_entries == 3
    assert (await redis_client.xpending(stream, "g"))["pending"] == 0


async def test_a_holder_that_lost_track_of_its_own_lease_takes_it_back(
    redis_client: aioredis.Redis,
) -> None:
    keys = Keys.of("yeastar", "pbx")
    lease, other = Lease(redis_client, keys, 5.0, 1000), Lease(redis_client, keys, 5.0, 1000)
    assert await lease.acquire()
    fence, value = lease.fence, lease.value
    lease.value = None  # e.g. the reply of a renewal was lost
    assert await lease.acquire()
    assert (lease.fence, lease.value) == (fence, value)
    assert not await other.acquire()  # still not anyone else's
