"""Section 2, stream throughput: events/s through ``client.listen()`` to a no-op handler, against a
raw ``websockets`` receive loop reading the same frames from the same server.

The server (a child process) sends N real frames (30011, 30012, 30016 in turn) right after the
subscribe ack, as fast as the socket takes them. Each side is timed from its first event to its
N-th: the raw loop from the first ``recv()`` to the last, the SDK from the handler's first call
to its last (decode, queue and dispatch included). Target: the SDK reaches 60% of the raw rate.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from typing import Any, Final

from websockets.asyncio.client import connect

from bench._common import Row, fmt_rate, frames
from bench._server import API, TOKEN, ServerProcess, control, topics_of
from yeastar_async import YeastarClient

TARGET: Final = 0.60
_TIMEOUT: Final = 120.0


def _texts() -> list[str]:
    return list(frames().values())


async def raw_run(base_url: str, count: int, texts: list[str]) -> float:
    """Seconds the raw loop took from its first event frame to its ``count``-th."""
    await control(base_url, "/bench/scenario", {"mode": "stream", "frames": texts, "count": count})
    url = base_url.replace("http://", "ws://") + f"{API}subscribe?access_token={TOKEN}"
    async with connect(url, compression=None, ping_interval=None, max_size=2**20) as ws:
        await ws.send(json.dumps({"topic_list": topics_of(texts)}))
        await ws.recv()  # the ack
        async with asyncio.timeout(_TIMEOUT):
            await ws.recv()
            started = time.perf_counter()
            for _ in range(count - 1):
                await ws.recv()
            return time.perf_counter() - started


async def sdk_run(
    base_url: str,
    count: int,
    texts: list[str],
    *,
    on_event: Callable[[int], None] | None = None,
) -> float:
    """Seconds ``listen()`` took from the handler's first call to its ``count``-th.

    ``on_event(n)`` (optional) is called from the handler with the running count: the memory
    section samples RSS through it.
    """
    await control(base_url, "/bench/scenario", {"mode": "stream", "frames": texts, "count": count})
    done = asyncio.Event()
    seen = 0
    started = finished = 0.0

    async def handler(event: Any) -> None:
        nonlocal seen, started, finished
        seen += 1
        if seen == 1:
            started = time.perf_counter()
        if on_event is not None:
            on_event(seen)
        if seen == count:
            finished = time.perf_counter()
            done.set()

    client = YeastarClient(base_url, "bench", "bench-secret")
    for topic in topics_of(texts):
        client.add_handler(topic, handler)
    await _until(client, done)
    return finished - started


async def _until(client: YeastarClient, done: asyncio.Event) -> None:
    """Run ``client.listen()`` until ``done`` is set, then close the client."""
    listener = asyncio.create_task(client.listen())
    waiter = asyncio.create_task(done.wait())
    try:
        await asyncio.wait({listener, waiter}, timeout=_TIMEOUT, return_when="FIRST_COMPLETED")
        if not done.is_set():
            if listener.done():
                listener.result()  # raises what stopped the stream
            raise RuntimeError("the event stream did not deliver every event in time")
    finally:
        waiter.cancel()
        await client.aclose()
        await listener


async def run(count: int = 20_000, rounds: int = 21) -> list[Row]:
    """Interleave raw and SDK runs of ``count`` events; compare the best rate of each."""
    texts = _texts()
    with ServerProcess() as server:
        base = server.base_url
        await raw_run(base, min(count, 1000), texts)  # warm-up: imports, first connections
        await sdk_run(base, min(count, 1000), texts)
        best_raw = best_sdk = float("inf")
        for done in range(rounds):  # interleaved, alternating which side goes first
            if done % 2:
                best_sdk = min(best_sdk, await sdk_run(base, count, texts))
            best_raw = min(best_raw, await raw_run(base, count, texts))
            if not done % 2:
                best_sdk = min(best_sdk, await sdk_run(base, count, texts))
    raw_rate = (count - 1) / best_raw
    sdk_rate = (count - 1) / best_sdk
    return [
        Row(
            "2 stream",
            f"events/s, listen() vs raw websockets ({count:,} events)",
            fmt_rate(sdk_rate),
            fmt_rate(raw_rate),
            sdk_rate / raw_rate,
            target=TARGET,
        )
    ]


if __name__ == "__main__":  # python -m bench.stream
    from bench._common import render

    print(render(asyncio.run(run())))
