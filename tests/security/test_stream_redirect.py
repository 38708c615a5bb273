"""A redirect answered to the WebSocket upgrade is never followed (issue 11, point 1).

websockets' ``connect`` follows up to ten redirects by default, replaying the upgrade (and the
access token in its URL) to whatever host the ``Location`` names. The stream refuses: a 3xx is
a TransportError out of ``listen()`` naming the status and the masked ``Location``, and the
second server is never contacted.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest
from aiohttp import web

from tests.test_stream import FAST, WAIT
from yeastar_async import YeastarClient
from yeastar_async._secrets import SecretMask
from yeastar_async.errors import TransportError
from yeastar_async.events._stream import EventStream, StreamOptions
from yeastar_async.testing import FakePBX

TOKEN = "tok-3f9a0c1d5e7b4a2c9d8e"


@dataclass
class Servers:
    redirector: str
    target_hits: list[str] = field(default_factory=list)
    status: int = 302


@pytest.fixture
async def servers() -> AsyncIterator[Servers]:
    """A redirecting 'PBX' on 127.0.0.1 and the second server its Location names."""
    hits: list[str] = []
    found = Servers("", hits)

    async def target(request: web.Request) -> web.StreamResponse:
        hits.append(str(request.rel_url))
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        await ws.close()
        return ws

    target_app = web.Application()
    target_app.router.add_get("/{tail:.*}", target)
    target_runner = web.AppRunner(target_app)
    await target_runner.setup()
    target_site = web.TCPSite(target_runner, "127.0.0.1", 0)
    await target_site.start()
    target_port = target_runner.addresses[0][1]

    async def redirect(request: web.Request) -> web.StreamResponse:
        # The hostile part: send the client, token and all, to another server.
        location = f"ws://127.0.0.1:{target_port}{request.rel_url}"
        return web.Response(status=found.status, headers={"Location": location})

    app = web.Application()
    app.router.add_get("/{tail:.*}", redirect)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    found.redirector = f"ws://127.0.0.1:{runner.addresses[0][1]}"
    try:
        yield found
    finally:
        await runner.cleanup()
        await target_runner.cleanup()


class Tokens:
    async def token(self) -> str:
        return TOKEN

    async def expired(self, token: str) -> None:
        return None


class Endpoint:
    """Where the stream connects: the redirecting server."""

    user_agent = "OpenAPI"

    def __init__(self, base: str) -> None:
        self.base = base
        self.mask = SecretMask([TOKEN])

    def ws_url(self, token: str) -> str:
        return f"{self.base}/openapi/v1.0/subscribe?access_token={token}"

    def ws_ssl(self) -> ssl.SSLContext | None:
        return None

    def check_peer(self, ssl_object: ssl.SSLObject | None) -> None:
        return None

    def redact(self, text: str) -> str:
        return self.mask(text)


def _no_token_anywhere(exc: BaseException) -> None:
    seen: BaseException | None = exc
    while seen is not None:
        assert TOKEN not in str(seen)
        assert TOKEN not in repr(seen.args)
        seen = seen.__cause__ or seen.__context__


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
async def test_a_redirected_upgrade_is_refused_and_never_followed(
    servers: Servers, status: int
) -> None:
    servers.status = status
    stream = EventStream(Tokens(), Endpoint(servers.redirector), StreamOptions(**FAST))
    stream.add_handler(30011, _ignore)
    try:
        async with asyncio.timeout(WAIT):
            with pytest.raises(TransportError) as caught:
                await stream.listen()
    finally:
        await stream.aclose()
    error = caught.value
    assert error.status == status
    assert f"HTTP {status}" in str(error)
    assert "Location" in str(error)
    assert "127.0.0.1" in str(error)
    assert "access_token=***" in str(error)
    _no_token_anywhere(error)
    assert servers.target_hits == []  # the second server never saw the token
    assert stream.stats.connect_attempts == 1  # not retried either


async def _ignore(event: object) -> None:
    return None


async def test_the_client_surfaces_a_redirected_upgrade_from_listen() -> None:
    async with FakePBX() as pbx:
        pbx.reject_handshake(307)
        async with YeastarClient(pbx.base_url, pbx.client_id, pbx.client_secret) as client:
            client.on(30011)(_ignore)
            async with asyncio.timeout(WAIT):
                with pytest.raises(TransportError, match=r"HTTP 307 \(no Location\)"):
                    await client.listen()
        assert pbx.stats.ws_handshakes == 1
