"""Red team: an OpenVox peer that redirects, sends entity bombs or external entities, huge or
endless bodies, or echoes the password and token back. Each attack ends in a typed error that
holds no secret, costs bounded memory and time, and reaches no third party."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web

from tests._openvox import MD5, PASSWORD
from tests._secrets import SecretWatch, assert_no_secret, exception_texts
from tests.security._transport_rig import Recorder, bounded, recorder, serve
from yeastar_async.errors import TransportError, YeastarError
from yeastar_async.openvox import OpenVoxAuthError, OpenVoxClient, forget_login_failures
from yeastar_async.testing import FakeOpenVox

FORMATS = pytest.mark.parametrize("fmt", ["json", "xml"])


@pytest.fixture(autouse=True)
def password_never_logged(secrets_never_logged: SecretWatch) -> None:
    """Whatever the peer does, no log record shows the password or its MD5."""
    secrets_never_logged.add(PASSWORD, "OpenVox password")
    secrets_never_logged.add(MD5, "OpenVox password MD5")


@pytest.fixture
async def pbx() -> AsyncIterator[FakeOpenVox]:
    forget_login_failures()
    async with FakeOpenVox(password=PASSWORD) as fake:
        yield fake
    forget_login_failures()


@pytest.fixture
async def bystander() -> AsyncIterator[Recorder]:
    """A third server: nothing the client sends may ever reach it."""
    async with recorder() as rec:
        yield rec


def texts(exc: BaseException) -> str:
    """Everything an exception and its chain show."""
    return "\n".join(exception_texts(exc))


def assert_clean(exc: BaseException, *secrets: str) -> None:
    assert_no_secret(exc, [PASSWORD, MD5, *secrets])


def answer(request: web.Request, fields: dict[str, str]) -> web.Response:
    """``fields`` in the format the request asked for."""
    if request.query.get("type") == "xml":
        inner = "".join(f"<{k}>{v}</{k}>" for k, v in fields.items())
        return web.Response(text=f"<xml>{inner}</xml>", content_type="text/xml")
    return web.json_response(fields)


def client(url: str, fmt: Any) -> OpenVoxClient:
    return OpenVoxClient(url, "api", PASSWORD, fmt=fmt, report_host="127.0.0.1")


@FORMATS
@bounded()
async def test_redirects_are_not_followed(pbx: FakeOpenVox, bystander: Recorder, fmt: Any) -> None:
    target, url = bystander, bystander.base
    # On the login (307 would carry the MD5 password along) ...
    pbx.answer_raw(b"", status=307, headers={"Location": f"{url}/login"}, endpoint="login")
    with pytest.raises(TransportError, match="redirect") as caught:
        async with client(pbx.base_url, fmt):
            pass
    assert caught.value.status == 307
    # ... and on a call whose query holds the token (the Location echoes it).
    async with client(pbx.base_url, fmt) as ov:
        token = pbx.live_tokens[0]
        where = f"{url}/steal?token={token}&password={MD5}"
        pbx.answer_raw(b"", status=302, headers={"Location": where}, endpoint="inroute/query")
        with pytest.raises(TransportError, match="not followed") as caught:
            await ov.inroute.query()
        assert_clean(caught.value, token)
    assert target.hits == []


def _billion_laughs() -> bytes:
    """Ten levels of ten references each: 10**9 "lol"s if an entity were ever expanded."""
    entities = ['<!ENTITY lol0 "lol">']
    for level in range(1, 10):
        entities.append(f'<!ENTITY lol{level} "{f"&lol{level - 1};" * 10}">')
    return (
        f'<?xml version="1.0"?><!DOCTYPE xml [{"".join(entities)}]>'
        "<xml><status>Success</status><token>&lol9;</token></xml>"
    ).encode()


@bounded()
async def test_entity_bomb_is_refused(pbx: FakeOpenVox) -> None:
    pbx.answer_raw(_billion_laughs(), endpoint="login")
    ov = OpenVoxClient(pbx.base_url, "api", PASSWORD, fmt="xml")
    with pytest.raises(TransportError, match="DOCTYPE is refused"):
        async with ov:
            pass


@bounded()
async def test_external_entities_are_never_resolved(
    pbx: FakeOpenVox, bystander: Recorder, tmp_path: Any
) -> None:
    target, url = bystander, bystander.base
    local = tmp_path / "secret.txt"
    local.write_text("TOP-SECRET-FILE")
    attacks = [
        f'<!DOCTYPE xml [<!ENTITY x SYSTEM "file://{local}">]>'
        "<xml><status>Success</status><token>&x;</token></xml>",
        f'<!DOCTYPE xml SYSTEM "{url}/evil.dtd"><xml><status>Success</status></xml>',
        f'<!DOCTYPE xml [<!ENTITY % p SYSTEM "{url}/p.dtd"> %p;]><xml/>',
    ]
    async with client(pbx.base_url, "xml") as ov:
        for attack in attacks:
            pbx.answer_raw(attack.encode(), endpoint="inroute/query")
            with pytest.raises(TransportError, match="DOCTYPE") as caught:
                await ov.inroute.query()
            assert "TOP-SECRET-FILE" not in texts(caught.value)
        # An entity reference with no declaration is an error too, not an empty string.
        pbx.answer_raw(b"<xml><status>&x;</status></xml>", endpoint="inroute/query")
        with pytest.raises(TransportError, match="not well-formed"):
            await ov.inroute.query()
    assert target.hits == []


@bounded()
async def test_deep_nesting_is_refused(pbx: FakeOpenVox) -> None:
    deep = b"<xml>" + b"<a>" * 50_000 + b"</a>" * 50_000 + b"</xml>"
    async with client(pbx.base_url, "xml") as ov:
        pbx.answer_raw(deep, endpoint="inroute/query")
        with pytest.raises(TransportError, match="deeper than"):
            await ov.inroute.query()
    deep_json = b'{"status":"Success","inroutes":' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    async with client(pbx.base_url, "json") as ov:
        pbx.answer_raw(deep_json, endpoint="inroute/query")
        with pytest.raises(TransportError):
            await ov.inroute.query()


@FORMATS
@bounded()
async def test_huge_bodies_are_capped(pbx: FakeOpenVox, fmt: Any) -> None:
    async with client(pbx.base_url, fmt) as ov:
        pbx.answer_raw(b" " * (2 << 20), endpoint="inroute/query")
        with pytest.raises(TransportError, match="over the limit of 1048576 bytes"):
            await ov.inroute.query()


@bounded()
async def test_an_endless_body_is_cut_off() -> None:
    streamed = 0

    async def handler(request: web.Request) -> web.StreamResponse:
        nonlocal streamed
        if request.path.endswith("/login"):
            return web.json_response({"status": "Success", "token": "t" * 32})
        resp = web.StreamResponse()  # chunked: no Content-Length to refuse up front
        await resp.prepare(request)
        chunk = b"<" * 65536
        while streamed < 64 << 20:
            await resp.write(chunk)
            streamed += len(chunk)
        return resp

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handler)
    forget_login_failures()
    async with serve(app) as url:
        ov = OpenVoxClient(url, "api", PASSWORD, fmt="json")
        with pytest.raises(TransportError, match="sent more than"):
            await ov.inroute.query()
        await ov.aclose()
    assert streamed < 16 << 20


@FORMATS
@bounded()
async def test_echoed_secrets_are_masked(fmt: Any) -> None:
    token = "9f8e7d6c5b4a39281706f5e4d3c2b1a0"

    async def echo(request: web.Request) -> web.Response:
        body = await request.text()
        if request.path.endswith("/login"):
            return answer(request, {"status": "Success", "token": token})
        sent = f"you sent {request.query_string} {body} token {token} {PASSWORD} {MD5}"
        if request.path.endswith("/inroute/query"):
            return web.Response(status=500, text=sent)
        if request.path.endswith("/outroute/query"):
            return answer(request, {"status": "Failed", "errno": f"{MD5} {token}"})
        if request.path.endswith("/inroute/delete"):
            return answer(request, {"status": "Weird", "echo": sent})
        return web.Response(text=sent)  # not JSON, not XML

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", echo)
    forget_login_failures()
    async with serve(app) as url, OpenVoxClient(url, "api", PASSWORD, fmt=fmt) as ov:
        for call in (
            ov.inroute.query(),
            ov.outroute.query(),
            ov.inroute.delete("a"),
            ov.outroute.delete("a"),
        ):
            with pytest.raises(YeastarError) as caught:
                await call
            assert_clean(caught.value, token)


@bounded()
async def test_a_login_refusal_echoing_the_password_is_masked() -> None:
    async def refuse(request: web.Request) -> web.Response:
        return web.json_response({"status": "Failed", "errno": MD5})

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", refuse)
    forget_login_failures()
    async with serve(app) as url:
        with pytest.raises(OpenVoxAuthError) as caught:
            async with OpenVoxClient(url, "api", PASSWORD, fmt="json"):
                pass
    assert_clean(caught.value)
    forget_login_failures()
