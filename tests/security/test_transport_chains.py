"""Red team, issue 11 point 3: no raised error keeps aiohttp's exception in its chain.

aiohttp's exceptions may carry the request URL, the access token in its query; the transport
raises its own errors outside the except clauses, so ``__cause__`` and ``__context__`` are
empty, whatever went wrong below.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Callable

import pytest
from aiohttp import web

from tests._secrets import SecretWatch, assert_no_secret
from yeastar_async import YeastarClient
from yeastar_async.errors import TransportError

from ._transport_rig import Handler, bounded, client_for, hostile, secrets_of


def cut_mid_body() -> Handler:
    async def handler(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Length": "1000"})
        await resp.prepare(request)
        await resp.write(b'{"errcode":0')
        assert request.transport is not None
        request.transport.close()  # the connection drops half-way through the body
        return resp

    return handler


def silent() -> Handler:
    async def handler(request: web.Request) -> web.Response:
        await asyncio.Event().wait()  # never answers; the client's timeout ends it
        return web.Response()

    return handler


@pytest.mark.parametrize(
    ("route", "timeout"), [(cut_mid_body, None), (silent, 0.3)], ids=["cut", "timeout"]
)
@bounded()
async def test_rest_failures_have_an_empty_chain(
    route: Callable[[], Handler], timeout: float | None, secrets_never_logged: SecretWatch
) -> None:
    async with hostile(secrets_never_logged) as pbx:
        pbx.routes["extension/list"] = route()
        async with client_for(pbx) as client:
            await client.login()
            with pytest.raises(TransportError) as info:
                await client.request("GET", "extension/list", timeout=timeout)
        assert info.value.__cause__ is None
        assert info.value.__context__ is None
        assert_no_secret(info.value, secrets_of(pbx))


@bounded()
async def test_download_failures_have_an_empty_chain(secrets_never_logged: SecretWatch) -> None:
    async with hostile(secrets_never_logged) as pbx:
        pbx.routes["/api/download/call.wav"] = cut_mid_body()
        async with client_for(pbx) as client:
            with pytest.raises(TransportError) as info:
                async for _ in client.files.iter_bytes("/api/download/call.wav"):
                    pass
        assert info.value.__cause__ is None
        assert info.value.__context__ is None
        assert_no_secret(info.value, secrets_of(pbx))


@contextlib.asynccontextmanager
async def garbage_server() -> AsyncIterator[str]:
    """A TCP server that answers every request with bytes that are not HTTP at all."""

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"NOT HTTP \x00\x01\r\n\r\n")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(answer, "127.0.0.1", 0, family=socket.AF_INET)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.close()
        await server.wait_closed()


@bounded()
async def test_a_malformed_answer_has_an_empty_chain() -> None:
    async with (
        garbage_server() as base,
        YeastarClient(base, "id", "a-secret-of-length", retries=0) as client,
    ):
        with pytest.raises(TransportError) as info:
            await client.login()
    assert info.value.__cause__ is None
    assert info.value.__context__ is None
