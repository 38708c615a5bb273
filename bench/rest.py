"""Section 3, REST overhead: ``client.system.information()`` against a raw aiohttp GET of the same
URL on the same local server, keep-alive on both, sequential and 20 concurrent.

The raw side is the least a caller can do: ``session.get(url, params={"access_token": ...})``
and ``await resp.read()``, no decoding at all. The SDK side does everything it always does
(argument binding, token lookup, concurrency cap, envelope check, typed decode). Both are warmed
up first (the SDK logs in then). For the concurrent case both may hold 20 connections (the SDK's
``max_concurrency=20``; its default of 10 is a courtesy to the PBX, not overhead). Target: the
SDK takes at most 1.15x the raw time per call.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Final

import aiohttp

from bench._common import Row, fmt_time
from bench._server import API, TOKEN, ServerProcess, control
from yeastar_async import YeastarClient

TARGET: Final = 1.15
CONCURRENCY: Final = 20


async def _sample(call: Callable[[], Awaitable[object]], calls: int, concurrency: int) -> float:
    """Seconds per call over ``calls`` calls made ``concurrency`` at a time."""
    started = time.perf_counter()
    if concurrency == 1:
        for _ in range(calls):
            await call()
    else:
        for _ in range(calls // concurrency):
            await asyncio.gather(*(call() for _ in range(concurrency)))
    return (time.perf_counter() - started) / calls


async def _compare(base_url: str, calls: int, rounds: int, concurrency: int) -> tuple[float, float]:
    """Best seconds per call of (SDK, raw), measured interleaved."""
    url = f"{base_url}{API}system/information"
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with (
        aiohttp.ClientSession(connector=connector, headers={"User-Agent": "OpenAPI"}) as session,
        YeastarClient(base_url, "bench", "bench-secret", max_concurrency=concurrency) as client,
    ):
        params = {"access_token": TOKEN}

        async def raw() -> bytes:
            async with session.get(url, params=params) as resp:
                return await resp.read()

        async def sdk() -> object:
            return await client.system.information()

        info = await client.system.information()
        assert info.data is not None
        assert info.data.firmware_version == "X.7.0.16"
        for call in (raw, sdk):  # warm-up: connections, caches, the login
            await _sample(call, max(concurrency, calls // 10), concurrency)
        best_sdk = best_raw = float("inf")
        for done in range(rounds):  # interleaved, alternating which side goes first
            if done % 2:
                best_sdk = min(best_sdk, await _sample(sdk, calls, concurrency))
            best_raw = min(best_raw, await _sample(raw, calls, concurrency))
            if not done % 2:
                best_sdk = min(best_sdk, await _sample(sdk, calls, concurrency))
    return best_sdk, best_raw


async def run(calls: int = 100, rounds: int = 100) -> list[Row]:
    """Sequential and 20-concurrent comparisons; one row each."""
    rows = []
    with ServerProcess() as server:
        await control(server.base_url, "/bench/config", {"close": False})
        for concurrency, label in ((1, "sequential"), (CONCURRENCY, f"{CONCURRENCY} concurrent")):
            sdk, raw = await _compare(server.base_url, calls, rounds, concurrency)
            rows.append(
                Row(
                    "3 REST",
                    f"system.information() vs raw aiohttp GET, {label}",
                    fmt_time(sdk),
                    fmt_time(raw),
                    sdk / raw,
                    target=TARGET,
                    op="<=",
                )
            )
    return rows


if __name__ == "__main__":  # python -m bench.rest
    from bench._common import render

    print(render(asyncio.run(run())))
