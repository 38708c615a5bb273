"""Section 6, the Redis relay: one PBX link, events handed to workers through Redis Streams.

Three rows, with a real ``redis-server`` (a child process, no persistence) and the bench server:

* events/s from the PBX link through Redis to a worker (holder and worker in this process,
  each with its own Redis connections) against a direct ``listen()`` reading the same frames;
  informational: the relay adds two Redis round trips per batch and a decode per event;
* 30016 frame -> ``call/accept_inbound`` on the wire, through the relay (the holder appends it
  to the priority stream, the worker's handler answers over REST), p99; target <= 20 ms;
* failover after ``kill -9`` of the holder (a child process): from the kill to the worker
  seeing the new holder's ``Connected`` (the gap reported); target <= lease + 1 s.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, Final

import redis.asyncio as aioredis

from bench import stream
from bench._common import ROOT, Row, fmt_rate, fmt_time, frames
from bench._server import ServerProcess, control, topics_of
from bench.latency import GAP, percentile
from yeastar_async import YeastarClient, events
from yeastar_async.redis import EventRelay
from yeastar_async.testing._redis_server import BINARY, RedisServer

TARGET_P99: Final = 20e-3
#: The failover target is the lease plus this.
FAILOVER_SLACK: Final = 1.0
_TIMEOUT: Final = 120.0

__all__ = ["available", "run"]


def available() -> bool:
    """Whether a ``redis-server`` binary is installed (the section needs one)."""
    return BINARY is not None


def _client(base_url: str) -> YeastarClient:
    return YeastarClient(base_url, "bench", "bench-secret", login_guard_state=None)


@contextlib.asynccontextmanager
async def _holding(
    redis_url: str, base_url: str, name: str, topics: list[int], lease: float = 10.0
) -> AsyncIterator[EventRelay]:
    """A link holder for ``name`` on its own Redis connections, stopped on exit."""
    redis = aioredis.Redis.from_url(redis_url)
    relay = EventRelay(redis, name, lease=lease)
    client = _client(base_url)
    task = asyncio.create_task(relay.hold(client, topics=topics))
    try:
        yield relay
    finally:
        await relay.aclose()
        await client.aclose()
        await asyncio.wait_for(task, _TIMEOUT)
        await redis.aclose()


async def relay_run(redis_url: str, base_url: str, count: int, texts: list[str], n: int) -> float:
    """Seconds a relay worker took from its first event to its ``count``-th."""
    await control(base_url, "/bench/scenario", {"mode": "stream", "frames": texts, "count": count})
    done = asyncio.Event()
    seen = 0
    started = finished = 0.0

    async def handler(event: Any) -> None:
        nonlocal seen, started, finished
        seen += 1
        if seen == 1:
            started = time.perf_counter()
        if seen == count:
            finished = time.perf_counter()
            done.set()

    redis = aioredis.Redis.from_url(redis_url)
    worker = EventRelay(redis, f"tput{n}", group="bench", batch=500)
    topics = topics_of(texts)
    for topic in topics:
        worker.add_handler(topic, handler)
    work = asyncio.create_task(worker.work())
    try:
        async with _holding(redis_url, base_url, f"tput{n}", topics):
            await asyncio.wait_for(done.wait(), _TIMEOUT)
    finally:
        await worker.aclose()
        await work
        await redis.aclose()
    return finished - started


async def latency_run(redis_url: str, base_url: str, count: int, n: int) -> list[float]:
    """Latencies of ``count`` 30016 -> accept_inbound reactions through the relay."""
    frame = frames()[30016]
    await control(base_url, "/bench/config", {"close": True})
    await control(
        base_url, "/bench/scenario", {"mode": "latency", "frame": frame, "count": count, "gap": GAP}
    )
    redis = aioredis.Redis.from_url(redis_url)
    worker = EventRelay(redis, f"lat{n}", group="bench")
    rest = _client(base_url)
    await rest.login()
    done = asyncio.Event()
    answered = 0

    @worker.on(events.IncomingCallRequest)
    async def accept(event: events.IncomingCallRequest) -> None:
        nonlocal answered
        inbound = event.msg.members[0].inbound
        assert inbound is not None
        await rest.call.accept_inbound(channel_id=inbound.channel_id)
        answered += 1
        if answered == count:
            done.set()

    work = asyncio.create_task(worker.work())
    try:
        async with _holding(redis_url, base_url, f"lat{n}", [30016]):
            await asyncio.wait_for(done.wait(), _TIMEOUT)
    finally:
        await worker.aclose()
        await work
        await rest.aclose()
        await redis.aclose()
    latencies: list[float] = await control(base_url, "/bench/latencies")
    return latencies


async def failover_run(redis_url: str, base_url: str, lease: float, n: int) -> float:
    """Seconds from ``kill -9`` of the holder to a worker seeing the new holder's link."""
    name = f"fail{n}"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    child = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bench.relay", "hold", redis_url, base_url, name, str(lease),
        cwd=ROOT, env=env, stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    redis = aioredis.Redis.from_url(redis_url)
    worker = EventRelay(redis, name, group="bench")
    linked = asyncio.Event()
    failed_over = asyncio.Event()

    @worker.on(events.Connected)
    async def on_connected(event: events.Connected) -> None:
        (failed_over if event.reconnect else linked).set()

    work = asyncio.create_task(worker.work())
    try:
        await asyncio.wait_for(linked.wait(), _TIMEOUT)  # the child holds the link
        async with _holding(redis_url, base_url, name, [30016], lease=lease):
            killed = time.perf_counter()
            child.send_signal(signal.SIGKILL)
            await asyncio.wait_for(failed_over.wait(), _TIMEOUT)
            return time.perf_counter() - killed
    finally:
        if child.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                child.kill()
        await child.wait()
        await worker.aclose()
        await work
        await redis.aclose()


async def run(
    count: int = 20_000, calls: int = 500, rounds: int = 3, lease: float = 1.0
) -> list[Row]:
    """The three rows: best of ``rounds`` for throughput and failover, p50/p99 of the calls."""
    texts = list(frames().values())
    with (
        tempfile.TemporaryDirectory() as tmp,
        RedisServer(Path(tmp)) as server,
        ServerProcess() as pbx,
    ):
        base = pbx.base_url
        best_direct = best_relay = float("inf")
        await stream.sdk_run(base, min(count, 1000), texts)  # warm-up
        for n in range(rounds):
            best_relay = min(best_relay, await relay_run(server.url, base, count, texts, n))
            best_direct = min(best_direct, await stream.sdk_run(base, count, texts))
        p99 = p50 = float("inf")
        for n in range(max(1, rounds // 2)):
            latencies = await latency_run(server.url, base, calls, n)
            p50 = min(p50, percentile(latencies, 0.5))
            p99 = min(p99, percentile(latencies, 0.99))
        failover = min(
            [await failover_run(server.url, base, lease, n) for n in range(max(1, rounds // 2))]
        )
    direct_rate = (count - 1) / best_direct
    relay_rate = (count - 1) / best_relay
    return [
        Row(
            "6 relay",
            f"events/s PBX -> Redis -> worker vs direct listen() ({count:,} events)",
            fmt_rate(relay_rate),
            fmt_rate(direct_rate),
            relay_rate / direct_rate,
        ),
        Row(
            "6 relay",
            f"p99 30016 frame -> accept_inbound through the relay ({calls:,} calls; p50 "
            f"{fmt_time(p50)})",
            fmt_time(p99),
            "10 s window",
            p99 * 1e3,
            unit="ms",
            target=TARGET_P99 * 1e3,
            op="<=",
        ),
        Row(
            "6 relay",
            f"failover after kill -9 of the holder, lease {lease:g} s",
            fmt_time(failover),
            f"lease + {FAILOVER_SLACK:g} s",
            failover,
            unit="s",
            target=lease + FAILOVER_SLACK,
            op="<=",
        ),
    ]


async def _hold_forever(redis_url: str, base_url: str, name: str, lease: float) -> None:
    """The child of :func:`failover_run`: hold the link until killed."""
    redis = aioredis.Redis.from_url(redis_url)
    relay = EventRelay(redis, name, lease=lease)
    async with _client(base_url) as client:
        await relay.hold(client, topics=[30016])


if __name__ == "__main__":  # python -m bench.relay [hold REDIS_URL BASE_URL NAME LEASE]
    if sys.argv[1:2] == ["hold"]:
        redis_url, base_url, name, lease = sys.argv[2:6]
        asyncio.run(_hold_forever(redis_url, base_url, name, float(lease)))
    else:
        from bench._common import render

        print(render(asyncio.run(run())))
