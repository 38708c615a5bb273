"""Red team: an OpenVox peer that redirects, sends entity bombs or external entities, huge or
endless bodies, or echoes the password and token back. Each attack ends in a typed error that
holds no secret, costs bounded memory and time, and reaches no third party."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web

from tests.security._transport_rig import bounded, serve
from yeastar_async.errors import TransportError, YeastarError
from yeastar_async.openvox import OpenVoxAuthError, OpenVoxClient, forget_login_failures
from yeastar_async.testing import FakeOpenVox

PASSWORD = "hunter2-but-longer"
MD5 = hashlib.md5(PASSWORD.encode()).hexdigest()

FORMATS = pytest.mark.parametrize("fmt", ["json", "xml"])


@pytest.fixture
async def pbx() -> AsyncIterator[FakeOpenVox]:
    forget_login_failures()
    async with FakeOpenVox(password=PASSWORD) as fake:
        yield fake
    forget_login_failures()


class Bystander:
    """A third server: nothing the client sends may ever reach it."""

    def __init__(self) -> None:
        self.hits: list[str] = []
        self.app = web.Application()
        self.app.router.add_route("*", "/{tail:.*}", self._hit)

    async def _hit(self, request: web.Request) -> web.Response:
        self.hits.append(str(request.rel_url))
        return web.Response(text="<!ENTITY x 'gotcha'>")


@pytest.fixture
async def bystander() -> AsyncIterator[tuple[Bystander, str]]:
    target = Bystander()
    async with serve(target.app) as url:
        yield target, url


def texts(exc: BaseException) -> str:
    """Everything an exception chain shows: messages, reprs, args and body excerpts."""
    parts = []
    seen: BaseException | None = exc
    while seen is not None:
        parts += [str(seen), repr(seen), repr(seen.args), getattr(seen, "body_excerpt", "")]
        parts.append(getattr(seen, "errno", "") or "")
        seen = seen.__cause__ or seen.__context__
    return "\n".join(map(str, parts))


def assert_clean(exc: BaseException, *secrets: str) -> None:
    shown = texts(exc)
    for secret in (PASSWORD, MD5, *secrets):
        assert secret not in shown


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
async def test_redirects_are_not_followed(
    pbx: FakeOpenVox, bystander: tuple[Bystander, str], fmt: Any
) -> None:
    target, url = bystander
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
    pbx: FakeOpenVox, bystander: tuple[Bystander, str], tmp_path: Any
) -> None:
    target, url = bystander
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
