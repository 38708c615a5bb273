"""A real ``redis-server`` for the relay's tests: fixtures, and a bounded poll.

Tests that use :func:`redis_server` skip, saying why, only when no ``redis-server`` binary is
installed (``.ci/run`` installs one).
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path

import pytest
import pytest_asyncio
import redis.asyncio as aioredis

from yeastar_async.testing._redis_server import BINARY, RedisServer

__all__ = ["RedisServer", "redis_client", "redis_server", "require_server", "until"]


def require_server() -> None:
    """Skip the calling test when no ``redis-server`` binary is installed."""
    if BINARY is None:
        pytest.skip(
            "no redis-server binary on PATH: install one (apt-get install redis-server) to run "
            "the Redis relay tests"
        )


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    """A running ``redis-server`` on a free port, killed after the test."""
    require_server()
    with RedisServer(tmp_path) as server:
        yield server


@pytest_asyncio.fixture
async def redis_client(redis_server: RedisServer) -> AsyncIterator[aioredis.Redis]:
    """An asyncio client of :func:`redis_server`."""
    client = aioredis.Redis.from_url(redis_server.url)
    try:
        yield client
    finally:
        await client.aclose()


async def until(
    check: Callable[[], Awaitable[object] | object], what: str, timeout: float = 15.0
) -> None:
    """Poll ``check`` (sync or async) until it is true, at most ``timeout`` seconds.

    Only for state kept in Redis or in another process (a lease expiring, a child's writes), or
    counters nothing signals: there is no event in this process to await instead.
    """
    try:
        async with asyncio.timeout(timeout):
            while True:
                answer = check()
                if await answer if inspect.isawaitable(answer) else answer:
                    return
                await asyncio.sleep(0.01)
    except TimeoutError:
        raise AssertionError(f"not within {timeout}s: {what}") from None
