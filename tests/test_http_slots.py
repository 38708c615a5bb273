"""The transport's concurrency cap: the slot limiter alone, then a Transport on a local server."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp import web

from yeastar_async._http import Transport, _Slots
from yeastar_async._models import ApiResponse
from yeastar_async.errors import TransportError

OK = b'{"errcode":0,"errmsg":"SUCCESS"}'


async def take(slots: _Slots) -> None:
    """What the transport does before each request."""
    if slots.free > 0 and not slots.waiters:
        slots.free -= 1
    else:
        await slots.wait()


async def test_slots_are_handed_to_waiters_in_arrival_order() -> None:
    slots = _Slots(1)
    await take(slots)
    order: list[int] = []

    async def worker(n: int) -> None:
        await take(slots)
        order.append(n)

    tasks = [asyncio.create_task(worker(n)) for n in range(5)]
    await asyncio.sleep(0)  # every worker is now queued
    assert len(slots.waiters) == 5
    for expected in range(5):
        slots.release()
        async with asyncio.timeout(5):
            await tasks[expected]
        assert order == list(range(expected + 1))
    slots.release()
    assert (slots.free, len(slots.waiters)) == (1, 0)


async def test_a_waiter_cancelled_while_waiting_leaves_the_queue() -> None:
    slots = _Slots(1)
    await take(slots)
    first = asyncio.create_task(take(slots))
    second = asyncio.create_task(take(slots))
    await asyncio.sleep(0)
    first.cancel()
    with pytest.raises(asyncio.CancelledError):
        await first
    assert len(slots.waiters) == 1
    slots.release()  # goes to the second waiter, not to the cancelled one
    async with asyncio.timeout(5):
        await second
    assert slots.free == 0
    slots.release()
    assert slots.free == 1


async def test_a_slot_handed_to_a_waiter_cancelled_at_that_moment_is_passed_on() -> None:
    slots = _Slots(1)
    await take(slots)
    first = asyncio.create_task(take(slots))
    second = asyncio.create_task(take(slots))
    await asyncio.sleep(0)
    slots.release()  # the first waiter's future now holds the slot ...
    first.cancel()  # ... but it is cancelled before it runs again
    with pytest.raises(asyncio.CancelledError):
        await first
    async with asyncio.timeout(5):
        await second  # the slot was passed on, not lost
    assert (slots.free, len(slots.waiters)) == (0, 0)
    slots.release()
    assert slots.free == 1


async def test_a_slot_handed_to_a_cancelled_waiter_returns_to_the_pool() -> None:
    slots = _Slots(1)
    await take(slots)
    first = asyncio.create_task(take(slots))
    await asyncio.sleep(0)
    slots.release()
    first.cancel()
    with pytest.raises(asyncio.CancelledError):
        await first
    assert (slots.free, len(slots.waiters)) == (1, 0)


class Gate:
    """A server that holds every request until released, and records how many were in flight."""

    def __init__(self) -> None:
        self.in_flight = 0
        self.peak = 0
        self.paths: list[str] = []
        self.arrived = asyncio.Condition()
        self.release = asyncio.Event()

    async def handle(self, request: web.Request) -> web.Response:
        async with self.arrived:
            self.paths.append(request.path.removeprefix("/openapi/v1.0/"))
            self.in_flight += 1
            self.peak = max(self.peak, self.in_flight)
            self.arrived.notify_all()
        await self.release.wait()
        self.in_flight -= 1
        return web.Response(body=OK, content_type="application/json")


@pytest.fixture
async def gate() -> AsyncIterator[tuple[Gate, str]]:
    g = Gate()
    app = web.Application()
    app.router.add_get("/openapi/v1.0/system/information", g.handle)
    app.router.add_get("/openapi/v1.0/extension/list", g.handle)
    app.router.add_post("/openapi/v1.0/call/accept_inbound", g.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    yield g, f"http://127.0.0.1:{port}"
    g.release.set()
    await runner.cleanup()


def one_slot(base_url: str) -> Transport:
    """A transport with a single request slot and a fixed token."""
    transport = Transport(base_url, max_concurrency=1)
    transport.tokens = StaticTokens()
    return transport


async def occupy(transport: Transport, server: Gate) -> asyncio.Task[ApiResponse]:
    """One request held at the gate: with ``max_concurrency=1`` every later one queues."""
    held = asyncio.create_task(
        transport.request("GET", "system/information", response_type=ApiResponse)
    )
    async with server.arrived, asyncio.timeout(5):
        await server.arrived.wait_for(lambda: server.in_flight == 1)
    return held


class StaticTokens:
    def current(self) -> str | None:
        return "tok"

    async def token(self) -> str:
        return "tok"

    async def expired(self, token: str) -> None:
        raise AssertionError("no 10004 here")


@pytest.mark.parametrize("cap", [1, 3, 10])
@pytest.mark.parametrize("borrowed", [False, True], ids=["own-session", "borrowed-session"])
async def test_no_more_than_max_concurrency_requests_are_in_flight(
    gate: tuple[Gate, str], cap: int, borrowed: bool
) -> None:
    server, base_url = gate
    # A borrowed session's connector allows far more connections: the cap is the transport's.
    session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=100)) if borrowed else None
    transport = Transport(base_url, max_concurrency=cap, session=session)
    transport.tokens = StaticTokens()
    try:
        calls = [
            asyncio.create_task(
                transport.request("GET", "system/information", response_type=ApiResponse)
            )
            for _ in range(cap + 5)
        ]
        async with server.arrived, asyncio.timeout(5):
            await server.arrived.wait_for(lambda: server.in_flight == cap)
        # Give queued requests every chance to slip past the cap before the gate opens.
        for _ in range(20):
            await asyncio.sleep(0)
        assert server.in_flight == cap
        server.release.set()
        answers = await asyncio.gather(*calls)
        assert all(a.errcode == 0 for a in answers)
        assert server.peak == cap
    finally:
        await transport.aclose()
        if session is not None:
            await session.close()


async def test_a_cancelled_request_gives_its_slot_back(gate: tuple[Gate, str]) -> None:
    server, base_url = gate
    transport = one_slot(base_url)
    try:
        held = await occupy(transport, server)
        queued = asyncio.create_task(
            transport.request("GET", "system/information", response_type=ApiResponse)
        )
        for _ in range(5):
            await asyncio.sleep(0)
        held.cancel()  # the in-flight request goes; its slot must reach the queued one
        with pytest.raises(asyncio.CancelledError):
            await held
        server.release.set()
        async with asyncio.timeout(5):
            assert (await queued).errcode == 0
    finally:
        await transport.aclose()


async def test_an_incoming_call_answer_goes_before_the_queued_requests(
    gate: tuple[Gate, str],
) -> None:
    """30016 leaves 10 seconds: its accept/refuse must not wait behind a queue of list calls."""
    server, base_url = gate
    transport = one_slot(base_url)
    try:
        held = await occupy(transport, server)
        queued = [
            asyncio.create_task(
                transport.request("GET", "extension/list", response_type=ApiResponse)
            )
            for _ in range(3)
        ]
        for _ in range(5):
            await asyncio.sleep(0)  # the list calls are queued first
        accept = asyncio.create_task(
            transport.request(
                "POST", "call/accept_inbound", json={"channel_id": "x"}, response_type=ApiResponse
            )
        )
        for _ in range(5):
            await asyncio.sleep(0)
        server.release.set()
        async with asyncio.timeout(5):
            await asyncio.gather(held, accept, *queued)
        assert (
            server.paths == ["system/information", "call/accept_inbound"] + ["extension/list"] * 3
        )
    finally:
        await transport.aclose()


async def test_waiting_for_a_slot_counts_against_the_timeout(gate: tuple[Gate, str]) -> None:
    server, base_url = gate
    transport = one_slot(base_url)
    try:
        held = await occupy(transport, server)
        async with asyncio.timeout(5):  # not after the held request: after its own 0.2 s
            with pytest.raises(TransportError, match=r"no request slot free within 0\.2 s") as info:
                await transport.send(
                    "POST",
                    "call/accept_inbound",
                    json={"channel_id": "x"},
                    response_type=ApiResponse,
                    timeout=0.2,
                    token="tok",
                )
        assert info.value.sent is False
        assert server.in_flight == 1
        server.release.set()
        await held
    finally:
        await transport.aclose()
