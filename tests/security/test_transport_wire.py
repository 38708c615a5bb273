"""The vendor-neutral guards of ``yeastar_async._wire`` against hostile 127.0.0.1 servers."""

from __future__ import annotations

import asyncio
import contextlib
import gzip

import aiohttp
import pytest
from aiohttp import web

from yeastar_async._secrets import SecretMask
from yeastar_async._wire import read_capped, refuse_redirect
from yeastar_async.errors import TransportError

from ._transport_rig import bounded, serve

SECRET = "s3cr3t-token-value-42"
mask = SecretMask([SECRET])


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_refuse_redirect_names_status_and_masked_location(status: int) -> None:
    with pytest.raises(TransportError) as info:
        refuse_redirect(
            status,
            {"Location": f"http://evil.example/x?access_token={SECRET}"},
            what="GET extension/list",
            mask=mask,
        )
    exc = info.value
    assert exc.status == status
    assert str(exc).startswith("GET extension/list: HTTP")
    assert f"HTTP {status}" in str(exc)
    assert "evil.example" in str(exc)
    assert SECRET not in str(exc)
    assert SECRET not in repr(exc)


@pytest.mark.parametrize("status", [200, 204, 400, 404, 500])
def test_refuse_redirect_passes_other_statuses(status: int) -> None:
    assert refuse_redirect(status, {"Location": "/x"}, what="x", mask=mask) is None


@bounded()
async def test_read_capped_refuses_declared_length_without_reading() -> None:
    sent = asyncio.Event()

    async def big(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Length": str(10**9)})
        await resp.prepare(request)
        sent.set()
        with contextlib.suppress(ConnectionError):
            for _ in range(1000):
                await resp.write(b"x" * 65536)
        return resp

    app = web.Application()
    app.router.add_get("/", big)
    async with serve(app) as base, aiohttp.ClientSession() as session, session.get(base) as resp:
        with pytest.raises(TransportError, match="declares 1000000000 bytes") as info:
            await read_capped(resp, limit=1024, what="GET x", mask=mask)
    assert info.value.status == 200
    assert "max_response_size" in str(info.value)


@pytest.mark.parametrize("encoding", [None, "gzip"])
@bounded()
async def test_read_capped_stops_an_endless_body(encoding: str | None) -> None:
    async def endless(request: web.Request) -> web.StreamResponse:
        headers = {"Content-Encoding": encoding} if encoding else {}
        resp = web.StreamResponse(headers=headers)  # chunked: no Content-Length
        await resp.prepare(request)
        block = gzip.compress(b"{" * 1024 * 1024) if encoding else b"{" * 65536
        with contextlib.suppress(ConnectionError):
            while True:
                await resp.write(block)
                if encoding:
                    break  # one member that inflates to 1 MiB is enough
        return resp

    app = web.Application()
    app.router.add_get("/", endless)
    async with serve(app) as base, aiohttp.ClientSession() as session, session.get(base) as resp:
        with pytest.raises(TransportError, match="more than 4096 bytes") as info:
            await read_capped(resp, limit=4096, what="GET x", mask=mask)
    assert info.value.body_excerpt.startswith("{")


@bounded()
async def test_read_capped_returns_bodies_within_the_limit() -> None:
    async def small(request: web.Request) -> web.Response:
        return web.Response(body=b'{"errcode":0}')

    async def chunked(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse()
        await resp.prepare(request)
        await resp.write(b'{"errcode"')
        await resp.write(b":0}")
        return resp

    app = web.Application()
    app.router.add_get("/small", small)
    app.router.add_get("/chunked", chunked)
    async with serve(app) as base, aiohttp.ClientSession() as session:
        for path in ("/small", "/chunked"):
            async with session.get(base + path) as resp:
                body = await read_capped(resp, limit=13, what="GET x", mask=mask)
            assert body == b'{"errcode":0}'
