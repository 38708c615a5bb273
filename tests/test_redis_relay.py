"""EventRelay in one process against a real redis-server and the FakePBX: events reach the
workers typed, once per group, 30016 on its own stream, failed handlers retried, gaps reported."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import redis.asyncio as aioredis

from tests._redis import redis_client, redis_server, until
from yeastar_async import YeastarClient, events
from yeastar_async.redis import EventRelay, RedisTokenStore, current_delivery
from yeastar_async.testing import FakePBX

__all__ = ["redis_client", "redis_server"]


TIMEOUT = 10.0


def make_client(pbx: FakePBX, redis: aioredis.Redis) -> YeastarClient:
    store = RedisTokenStore(redis, "yeastar:test:tokens")
    return YeastarClient(
        pbx.base_url, pbx.client_id, pbx.client_secret, token_store=store, revoke_on_close=False
    )


async def start_holder(relay: EventRelay, client: YeastarClient) -> asyncio.Task[None]:
    task = asyncio.create_task(relay.hold(client, topics=(30011, 30012, 30016)))
    return task


@pytest.fixture
def fake(fake_pbx: FakePBX) -> FakePBX:
    return fake_pbx


async def test_events_reach_a_worker_typed_and_acknowledged(
    fake: FakePBX, redis_client: aioredis.Redis
) -> None:
    holder_relay = EventRelay(redis_client, "pbx1", lease=1.0)
    worker = EventRelay(redis_client, "pbx1", group="g", lease=1.0)
    got: list[Any] = []
    seen = asyncio.Event()

    @worker.on(events.NewCdr)
    async def on_cdr(event: events.NewCdr) -> None:
        got.append((event, current_delivery()))
        if len(got) == 5:
            seen.set()

    client = make_client(fake, redis_client)
    async with client:
        hold = await start_holder(holder_relay, client)
        work = asyncio.create_task(worker.work())
        await fake.wait_for_subscription([30012])
        for i in range(5):
            await fake.emit(30012, {**fake.example_event(30012), "call_id": f"c{i}"})
        async with asyncio.timeout(TIMEOUT):
            await seen.wait()
        assert [e.msg.call_id for e, _ in got] == [f"c{i}" for i in range(5)]
        assert all(isinstance(e, events.NewCdr) for e, _ in got)
        assert all(d is not None and d.attempt == 1 for _, d in got)
        await until(lambda: worker.stats.acked >= 5, "five acknowledged")
        pending = await redis_client.xpending(worker.keys.events, "g")
        assert pending["pending"] == 0
        await worker.aclose()
        await holder_relay.aclose()
        await client.aclose()
        await asyncio.wait_for(work, TIMEOUT)
        await asyncio.wait_for(hold, TIMEOUT)
