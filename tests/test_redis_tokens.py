"""RedisTokenStore against a real redis-server: one token set, one renewal lock and one lockout
guard count for every process of an application."""

from __future__ import annotations

import asyncio
import time

import pytest
import redis.asyncio as aioredis

from tests._redis import RedisServer, redis_client, redis_server
from yeastar_async import TokenSet, YeastarClient
from yeastar_async._guard_store import GuardStateStore
from yeastar_async.errors import AuthenticationError
from yeastar_async.redis import RedisTokenStore
from yeastar_async.testing import FakePBX

__all__ = ["redis_client", "redis_server"]

KEY = "yeastar:test:tokens"


def tokens(now: float) -> TokenSet:
    return TokenSet("access-abc", now + 1800, "refresh-xyz", now + 86400, 1800.0)


async def test_saved_tokens_load_back_and_expire_with_the_refresh_token(
    redis_client: aioredis.Redis,
) -> None:
    store = RedisTokenStore(redis_client, KEY)
    assert await store.load() is None
    saved = tokens(time.time())
    await store.save(saved)
    assert await store.load() == saved
    ttl = await redis_client.pttl(KEY)
    assert 86000_000 < ttl <= 86400_000
    await store.save(None)
    assert await store.load() is None
    assert "access-abc" not in repr(store)


async def test_a_value_we_did_not_write_is_named_without_its_content(
    redis_client: aioredis.Redis,
) -> None:
    await redis_client.set(KEY, '{"access_token": "secret-token-value"}')
    with pytest.raises(ValueError, match="not one this library wrote") as caught:
        await RedisTokenStore(redis_client, KEY).load()
    assert "secret-token-value" not in str(caught.value)
    assert caught.value.__cause__ is None
    assert caught.value.__suppress_context__


async def test_the_lock_is_held_by_one_process_at_a_time(redis_server: RedisServer) -> None:
    first, second = (
        aioredis.Redis.from_url(redis_server.url),
        aioredis.Redis.from_url(redis_server.url),
    )
    try:
        a, b = RedisTokenStore(first, KEY), RedisTokenStore(second, KEY)
        order: list[str] = []
        inside = asyncio.Event()
        leave = asyncio.Event()

        async def holder() -> None:
            async with a.lock():
                order.append("a in")
                inside.set()
                await leave.wait()
                order.append("a out")

        async def waiter() -> None:
            await inside.wait()
            async with b.lock():
                order.append("b in")

        async with asyncio.timeout(10):
            tasks = [asyncio.create_task(holder()), asyncio.create_task(waiter())]
            await inside.wait()
            await asyncio.sleep(0.2)  # b polls the Redis lock: give it time to (not) get in
            assert order == ["a in"]
            leave.set()
            await asyncio.gather(*tasks)
        assert order == ["a in", "a out", "b in"]
    finally:
        await first.aclose()
        await second.aclose()


async def test_clients_sharing_the_store_log_in_once(
    fake_pbx: FakePBX, redis_server: RedisServer
) -> None:
    redises = [aioredis.Redis.from_url(redis_server.url) for _ in range(4)]
    clients = [
        YeastarClient(
            fake_pbx.base_url,
            fake_pbx.client_id,
            fake_pbx.client_secret,
            token_store=RedisTokenStore(r, KEY),
            revoke_on_close=False,
        )
        for r in redises
    ]
    try:
        async with asyncio.timeout(10):
            await asyncio.gather(*(c.login() for c in clients))
        assert fake_pbx.count("get_token") == 1
        assert fake_pbx.live_tokens() == 1
    finally:
        for client in clients:
            await client.aclose()
        for r in redises:
            await r.aclose()


async def test_the_lockout_guard_count_is_shared_through_the_store(
    fake_pbx: FakePBX, redis_client: aioredis.Redis
) -> None:
    store = RedisTokenStore(redis_client, KEY)
    assert isinstance(store, GuardStateStore)
    # No state file: the store is the only place the count is kept (as on another host).
    bad = YeastarClient(
        fake_pbx.base_url, fake_pbx.client_id, "wrong", token_store=store, login_guard_state=None
    )
    async with bad:
        with pytest.raises(AuthenticationError):
            await bad.login()
    document = await store.load_login_guard()
    (record,) = document["pbx"].values()
    assert record["in_a_row"] == 1
    assert "wrong" not in str(document)
    other_host = YeastarClient(
        fake_pbx.base_url,
        fake_pbx.client_id,
        "wrong",
        token_store=RedisTokenStore(redis_client, KEY),
        login_guard_state=None,
    )
    async with other_host:
        with pytest.raises(AuthenticationError, match="rejected login 2 in a row"):
            await other_host.login()


@pytest.mark.parametrize(
    ("key", "options", "message"),
    [
        ("", {}, "non-empty key"),
        ("k", {"lock_timeout": 0}, "lock_timeout must be > 0 seconds, got 0"),
        ("k", {"lock_wait": "1"}, "lock_wait must be > 0 seconds, got '1'"),
    ],
)
def test_bad_options_are_named(key: str, options: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        RedisTokenStore(aioredis.Redis(), key, **options)  # type: ignore[arg-type]
