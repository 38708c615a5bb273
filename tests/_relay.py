"""The relay in one process for the tests: a worker that records what it handled, link
holders that start and leave, and what the PBX's stream holds."""

from __future__ import annotations

import asyncio
from typing import Any

import redis.asyncio as aioredis

from yeastar_async import YeastarClient, events
from yeastar_async.redis import EventRelay, RedisTokenStore
from yeastar_async.redis._codec import decode_entry
from yeastar_async.testing import FakePBX

TIMEOUT = 10.0
LEASE = 1.0
TOPICS = (30011, 30012, 30016)


def make_client(pbx: FakePBX, redis: aioredis.Redis) -> YeastarClient:
    return YeastarClient(
        pbx.base_url,
        pbx.client_id,
        pbx.client_secret,
        token_store=RedisTokenStore(redis, "yeastar:test:tokens"),
        revoke_on_close=False,
        login_guard_state=None,
        reconnect_delay_min=0.02,
        reconnect_delay_max=0.1,
    )


class Worker:
    """A worker of group ``g``: every event it handled, in order."""

    def __init__(self, redis: aioredis.Redis) -> None:
        self.relay = EventRelay(redis, "pbx", group="g", lease=LEASE)
        self.events: list[Any] = []
        self._changed = asyncio.Event()
        for target in (events.NewCdr, events.Connected, events.Disconnected, 30016):
            self.relay.add_handler(target, self._put)
        self._task = asyncio.create_task(self.relay.work())

    async def _put(self, event: Any) -> None:
        self.events.append(event)
        self._changed.set()

    def calls(self) -> list[str]:
        return [e.msg.call_id for e in self.events if isinstance(e, events.NewCdr)]

    def failovers(self) -> list[events.Connected]:
        return [e for e in self.events if isinstance(e, events.Connected) and e.reconnect]

    async def until(self, test: Any, what: str) -> None:
        try:
            async with asyncio.timeout(TIMEOUT):
                while not test():
                    self._changed.clear()
                    await self._changed.wait()
        except TimeoutError:
            raise AssertionError(f"not within {TIMEOUT}s: {what}; got {self.events}") from None

    async def close(self) -> None:
        await self.relay.aclose()
        await asyncio.wait_for(self._task, TIMEOUT)


class Holder:
    """One process's link holder: its relay (with the options a test chooses), its client
    and the ``hold()`` task."""

    def __init__(self, pbx: FakePBX, redis: aioredis.Redis, **options: Any) -> None:
        self.relay = EventRelay(redis, "pbx", lease=LEASE, **options)
        self.client = make_client(pbx, redis)
        self.task: asyncio.Task[None] | None = None

    def start(self) -> Holder:
        self.task = asyncio.create_task(self.relay.hold(self.client, topics=TOPICS))
        return self

    async def stop(self) -> None:
        """Leave the link (the relay may hold again later)."""
        assert self.task is not None
        self.task.cancel()
        await asyncio.wait({self.task}, timeout=TIMEOUT)

    async def close(self) -> None:
        if self.task is not None and not self.task.done():
            await self.stop()
        await self.relay.aclose()
        await self.client.aclose()


async def entries(redis: aioredis.Redis, key: str) -> list[Any]:
    return [decode_entry(fields) for _, fields in await redis.xrange(key)]


async def stream_calls(redis: aioredis.Redis) -> list[str]:
    keys = EventRelay(redis, "pbx").keys
    return [
        e.msg.call_id for e in await entries(redis, keys.events) if isinstance(e, events.NewCdr)
    ]
