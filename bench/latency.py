"""Section 4, 30016 reaction latency: from the server writing a 30016 frame to the server
receiving the handler's ``call/accept_inbound`` request, p50 and p99 over N calls.

Both timestamps are taken in the server process, so the figure covers the whole client path:
socket read, decode, queue, handler dispatch, argument binding, token lookup, HTTP request. The
server answers each request and closes the TCP connection, as the PBX does, so every accept
opens a fresh connection; the next frame follows a short pause. For reference the same is
measured with a raw client (``websockets`` receive loop, ``json.loads``, aiohttp POST).
Target: p99 at most 5 ms on loopback (the PBX gives the application 10 s).
"""

from __future__ import annotations

import asyncio
import json
import math
from typing import Final

import aiohttp
from websockets.asyncio.client import connect

from bench._common import Row, fmt_time, frames
from bench._server import API, TOKEN, ServerProcess, control
from yeastar_async import YeastarClient, events

TARGET_P99: Final = 5e-3
GAP: Final = 0.001  # seconds between an answered accept and the next frame
_TIMEOUT: Final = 120.0


def percentile(values: list[float], q: float) -> float:
    """The ``q``-quantile (0..1) of ``values``, nearest rank."""
    ordered = sorted(values)
    rank = max(1, min(len(ordered), math.ceil(q * len(ordered))))
    return ordered[rank - 1]


async def _scenario(base_url: str, count: int) -> None:
    frame = frames()[30016]
    await control(base_url, "/bench/config", {"close": True})
    await control(
        base_url, "/bench/scenario", {"mode": "latency", "frame": frame, "count": count, "gap": GAP}
    )


async def sdk_run(base_url: str, count: int) -> list[float]:
    """Latencies (seconds) of ``count`` 30016 -> ``accept_inbound`` reactions through the SDK."""
    await _scenario(base_url, count)
    done = asyncio.Event()
    answered = 0
    client = YeastarClient(base_url, "bench", "bench-secret")

    @client.on(events.IncomingCallRequest)
    async def accept(event: events.IncomingCallRequest) -> None:
        nonlocal answered
        inbound = event.msg.members[0].inbound
        assert inbound is not None
        await client.call.accept_inbound(channel_id=inbound.channel_id)
        answered += 1
        if answered == count:
            done.set()

    listener = asyncio.create_task(client.listen())
    waiter = asyncio.create_task(done.wait())
    try:
        await asyncio.wait({listener, waiter}, timeout=_TIMEOUT, return_when="FIRST_COMPLETED")
        if not done.is_set():
            if listener.done():
                listener.result()
            raise RuntimeError("not every 30016 was accepted in time")
    finally:
        waiter.cancel()
        await client.aclose()
        await listener
    latencies: list[float] = await control(base_url, "/bench/latencies")
    return latencies


async def raw_run(base_url: str, count: int) -> list[float]:
    """The same with a raw client: websockets loop, json.loads twice, aiohttp POST."""
    await _scenario(base_url, count)
    url = base_url.replace("http://", "ws://") + f"{API}subscribe?access_token={TOKEN}"
    accept_url = f"{base_url}{API}call/accept_inbound"
    params = {"access_token": TOKEN}
    async with (
        aiohttp.ClientSession(headers={"User-Agent": "OpenAPI"}) as session,
        connect(url, compression=None, ping_interval=None) as ws,
    ):
        await ws.send('{"topic_list":[30016]}')
        await ws.recv()  # the ack
        async with asyncio.timeout(_TIMEOUT):
            for _ in range(count):
                frame = json.loads(await ws.recv())
                channel = json.loads(frame["msg"])["members"][0]["inbound"]["channel_id"]
                body = json.dumps({"channel_id": channel})
                headers = {"Content-Type": "application/json"}
                async with session.post(
                    accept_url, params=params, data=body, headers=headers
                ) as resp:
                    await resp.read()
    latencies: list[float] = await control(base_url, "/bench/latencies")
    return latencies


async def run(count: int = 1000, rounds: int = 2) -> list[Row]:
    """Interleaved SDK and raw runs of ``count`` reactions; the best p50/p99 of each."""
    with ServerProcess() as server:
        base = server.base_url
        await sdk_run(base, min(count, 50))  # warm-up
        await raw_run(base, min(count, 50))
        sdk_p50 = sdk_p99 = raw_p50 = raw_p99 = float("inf")
        for done in range(rounds):  # interleaved, alternating which side goes first
            if done % 2:
                sdk = await sdk_run(base, count)
                raw = await raw_run(base, count)
            else:
                raw = await raw_run(base, count)
                sdk = await sdk_run(base, count)
            raw_p50, raw_p99 = (
                min(raw_p50, percentile(raw, 0.5)),
                min(raw_p99, percentile(raw, 0.99)),
            )
            sdk_p50, sdk_p99 = (
                min(sdk_p50, percentile(sdk, 0.5)),
                min(sdk_p99, percentile(sdk, 0.99)),
            )
    return [
        Row(
            "4 30016",
            f"p50 frame -> accept_inbound request ({count:,} calls)",
            fmt_time(sdk_p50),
            fmt_time(raw_p50),
            sdk_p50 * 1e3,
            unit="ms",
        ),
        Row(
            "4 30016",
            f"p99 frame -> accept_inbound request ({count:,} calls)",
            fmt_time(sdk_p99),
            fmt_time(raw_p99),
            sdk_p99 * 1e3,
            unit="ms",
            target=TARGET_P99 * 1e3,
            op="<=",
        ),
    ]


if __name__ == "__main__":  # python -m bench.latency
    from bench._common import render

    print(render(asyncio.run(run())))
