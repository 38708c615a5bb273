"""Red team, issue 11 point 1 and 3: no request carrying a secret or a token follows a redirect.

Each hostile PBX answers one route with a 3xx pointing at a second local server that records
every request: that server must never be reached, and the error must name the status and the
Location with the token masked, with no token anywhere in the exception or its chain.
"""

from __future__ import annotations

import logging
import ssl

import pytest
import trustme
from aiohttp import web

from tests._secrets import SecretWatch, assert_no_secret
from yeastar_async import YeastarClient
from yeastar_async.errors import TransportError

from ._transport_rig import (
    CLIENT_ID,
    SECRET,
    Handler,
    HostilePBX,
    bounded,
    client_for,
    hostile,
    recorder,
    secrets_of,
)

REDIRECTS = [301, 302, 303, 307, 308]


def redirect_to(target: str, status: int) -> web.Response:
    """A redirect that carries the request's token along, as a thief would ask for it."""
    return web.Response(status=status, headers={"Location": target})


def stealing(base: str, status: int) -> Handler:
    async def handler(request: web.Request) -> web.Response:
        token = request.query.get("access_token", "")
        return redirect_to(f"{base}/steal?access_token={token}&copy={token}", status)

    return handler


def check_refused(exc: BaseException, status: int, pbx: HostilePBX) -> None:
    assert isinstance(exc, TransportError)
    assert exc.status == status
    assert f"HTTP {status} redirect" in str(exc)
    assert "127.0.0.1" in str(exc)  # the Location is named, its token masked
    assert_no_secret(exc, secrets_of(pbx))


@pytest.mark.parametrize("status", REDIRECTS)
@bounded()
async def test_get_token_redirect_never_replays_the_secret(
    status: int, secrets_never_logged: SecretWatch
) -> None:
    async with recorder() as rec, hostile(secrets_never_logged) as pbx:
        pbx.routes["get_token"] = stealing(rec.base, status)
        async with client_for(pbx, retries=2) as client:
            with pytest.raises(TransportError) as info:
                await client.login()
        check_refused(info.value, status, pbx)
        assert rec.hits == []
        assert pbx.hits("get_token") == 1  # a 3xx is not retried either


@pytest.mark.parametrize("status", REDIRECTS)
@bounded()
async def test_rest_redirect_never_sends_the_token_elsewhere(
    status: int, secrets_never_logged: SecretWatch
) -> None:
    async with recorder() as rec, hostile(secrets_never_logged) as pbx:
        pbx.routes["extension/list"] = stealing(rec.base, status)
        async with client_for(pbx, retries=2) as client:
            for method in ("GET", "POST"):
                with pytest.raises(TransportError) as info:
                    await client.request(method, "extension/list")
                check_refused(info.value, status, pbx)
        assert rec.hits == []
        assert pbx.hits("extension/list") == 2


@bounded()
async def test_refresh_token_redirect_is_refused(secrets_never_logged: SecretWatch) -> None:
    async with recorder() as rec, hostile(secrets_never_logged) as pbx:
        pbx.routes["refresh_token"] = stealing(rec.base, 307)
        async with client_for(pbx) as client:
            await client.login()
            await client._tokens.expired(pbx.issued[0])  # due: the next call refreshes
            with pytest.raises(TransportError) as info:
                await client.request("GET", "extension/list")
        check_refused(info.value, 307, pbx)
        assert rec.hits == []


@bounded()
async def test_del_token_redirect_on_close_is_refused(
    secrets_never_logged: SecretWatch, caplog: pytest.LogCaptureFixture
) -> None:
    async with recorder() as rec, hostile(secrets_never_logged) as pbx:
        pbx.routes["del_token"] = stealing(rec.base, 302)
        client = client_for(pbx)
        await client.login()
        with caplog.at_level(logging.WARNING, "yeastar_async.auth"):
            await client.aclose()  # best effort: logged, not raised
        assert rec.hits == []
        assert pbx.hits("del_token") == 1
        assert "HTTP 302 redirect" in caplog.text


@pytest.mark.parametrize("status", [302, 307])
@bounded()
async def test_download_redirect_never_sends_the_token_elsewhere(
    status: int, secrets_never_logged: SecretWatch
) -> None:
    async with recorder() as rec, hostile(secrets_never_logged) as pbx:
        pbx.routes["/api/download/call.wav"] = stealing(rec.base, status)
        async with client_for(pbx) as client:
            with pytest.raises(TransportError) as info:
                async for _ in client.files.iter_bytes("/api/download/call.wav"):
                    pass
        check_refused(info.value, status, pbx)
        assert rec.hits == []


@bounded()
async def test_https_to_http_redirect_is_refused(secrets_never_logged: SecretWatch) -> None:
    ca = trustme.CA()
    context = ssl.create_default_context()
    ca.configure_trust(context)
    async with recorder() as rec, hostile(secrets_never_logged, ca=ca) as pbx:
        assert pbx.base.startswith("https://")
        pbx.routes["extension/list"] = stealing(rec.base, 308)  # rec is plain http
        async with YeastarClient(pbx.base, CLIENT_ID, SECRET, ssl=context) as client:
            with pytest.raises(TransportError) as info:
                await client.request("GET", "extension/list")
        check_refused(info.value, 308, pbx)
        assert rec.hits == []


@bounded()
async def test_a_redirect_loop_leaves_no_token_in_the_exception_chain(
    secrets_never_logged: SecretWatch,
) -> None:
    async with hostile(secrets_never_logged) as pbx:
        pbx.routes["extension/list"] = stealing(f"{pbx.base}/openapi/v1.0/extension/list", 302)
        async with client_for(pbx, retries=2) as client:
            with pytest.raises(TransportError) as info:
                await client.request("GET", "extension/list")
        check_refused(info.value, 302, pbx)
        assert info.value.__cause__ is None
        assert info.value.__context__ is None
        assert pbx.hits("extension/list") == 1
