"""Red-team tests of CecClient: hostile peers on 127.0.0.1 that redirect, flood, echo secrets
or refuse every token. Each test is time-bounded."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import trustme
from aiohttp import web

from tests._secrets import SecretWatch
from tests.security._transport_rig import bounded, serve
from yeastar_async.errors import TransportError
from yeastar_async.huawei_cec import (
    CalledRouteId,
    CecAuthError,
    CecClient,
    CecHttpError,
    CecReturnCodeError,
    DeviceType,
)

APP_KEY = "hostile-app-key"
SECRET = "s3cr3t-app-secret-7f2a9c"
TOKEN = "tok-4b1d9e77a0c24f7e9b1d"
TOKEN_PATH = "/apigovernance/api/oauth/tokenByAkSk"
QUERY_PATH = "/apiaccess/rest/cc-management/v1/calledRoute/queryCalledRoute"
MODIFY_PATH = "/apiaccess/rest/cc-management/v1/calledRoute/modifyCalledRoute"


@pytest.fixture(autouse=True)
def _watch_logs(secrets_never_logged: SecretWatch) -> None:
    """The autouse log watch also looks for this file's secret and token."""
    secrets_never_logged.client_secrets.update({SECRET, TOKEN})


def _texts(exc: BaseException) -> Iterator[str]:
    """Every text an exception offers, along its whole cause/context chain."""
    seen: set[int] = set()
    todo: list[BaseException | None] = [exc]
    while todo:
        current = todo.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        yield str(current)
        yield repr(current)
        yield from (repr(arg) for arg in current.args)
        yield from (repr(value) for value in vars(current).values())
        todo += [current.__cause__, current.__context__]


def assert_no_secret(exc: BaseException) -> None:
    for text in _texts(exc):
        assert SECRET not in text, text
        assert TOKEN not in text, text


def _token_answer(expires: str = "3600") -> web.Response:
    return web.json_response({"AccessToken": TOKEN, "CreateTime": "1765000000", "Expires": expires})


class Peer:
    """A hostile CEC: answers the token normally (unless told otherwise), then ``business``."""

    def __init__(self) -> None:
        self.hits: dict[str, int] = {}
        self.app = web.Application()
        self.app.router.add_route("*", "/{path:.*}", self._handle)
        self.token: Any = lambda request: _token_answer()
        self.business: Any = lambda request: web.json_response({"returnCode": "0"})

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        await request.read()
        self.hits[request.path] = self.hits.get(request.path, 0) + 1
        handler = self.token if request.path == TOKEN_PATH else self.business
        answer = handler(request)
        if asyncio.iscoroutine(answer):
            answer = await answer
        assert isinstance(answer, web.StreamResponse)
        return answer


def client(url: str, **options: Any) -> CecClient:
    return CecClient(url, APP_KEY, SECRET, clock=lambda: 1_765_000_000.0, timeout=5.0, **options)


# -- redirects ---------------------------------------------------------------------------------


@bounded()
@pytest.mark.parametrize("status", [301, 302, 307, 308])
async def test_token_request_is_never_redirected(status: int) -> None:
    elsewhere = Peer()
    async with serve(elsewhere.app) as target:
        peer = Peer()
        peer.token = lambda request: web.Response(
            status=status, headers={"Location": f"{target}{TOKEN_PATH}"}
        )
        async with serve(peer.app) as url, client(url) as cec:
            with pytest.raises(TransportError, match=f"HTTP {status} redirect") as caught:
                await cec.called_route.query()
    assert elsewhere.hits == {}
    assert caught.value.status == status
    assert_no_secret(caught.value)


@bounded()
async def test_business_call_is_never_redirected_and_the_location_is_masked() -> None:
    elsewhere = Peer()
    async with serve(elsewhere.app) as target:
        peer = Peer()
        peer.business = lambda request: web.Response(
            status=307, headers={"Location": f"{target}/steal?token={TOKEN}&s={SECRET}"}
        )
        async with serve(peer.app) as url, client(url) as cec:
            with pytest.raises(TransportError, match="redirect") as caught:
                await cec.called_route.query()
    assert elsewhere.hits == {}
    assert "/steal" in str(caught.value)
    assert_no_secret(caught.value)


# -- huge bodies -------------------------------------------------------------------------------


@bounded()
async def test_a_declared_huge_body_is_not_read() -> None:
    peer = Peer()

    async def huge(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Length": str(50 << 20)})
        await response.prepare(request)
        await response.write(b'{"returnCode": "0", "data": {"calledRouteList": [')
        return response

    peer.business = huge
    async with serve(peer.app) as url, client(url) as cec:
        with pytest.raises(TransportError, match="max_response_size"):
            await cec.called_route.query()


@bounded()
@pytest.mark.parametrize("where", ["token", "business"])
async def test_an_endless_body_stops_at_the_cap(where: str) -> None:
    peer = Peer()

    async def endless(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()
        response.enable_chunked_encoding()
        await response.prepare(request)
        chunk = b" " * 65536
        for _ in range(10_000):  # 640 MiB if nobody stops reading
            await response.write(chunk)
        return response

    setattr(peer, where, endless)
    async with serve(peer.app) as url, client(url, max_response_size=256 * 1024) as cec:
        with pytest.raises(TransportError, match="more than 262144 bytes"):
            await cec.called_route.query()


# -- echoed secrets ----------------------------------------------------------------------------


def _echo(request: web.Request, status: int, shape: str) -> web.Response:
    said = f"bad token {TOKEN} for secret {SECRET}"
    if shape == "json":
        body = json.dumps({"returnCode": f"E-{SECRET}", "description": said})
        return web.Response(status=status, text=body, content_type="application/json")
    if shape == "escaped":
        body = json.dumps({"description": said.replace("-", "\\u002d")})
        return web.Response(status=status, text=body, content_type="application/json")
    return web.Response(status=status, text=f"<html>{said}</html>", content_type="text/html")


@bounded()
@pytest.mark.parametrize("shape", ["json", "escaped", "html"])
@pytest.mark.parametrize(
    ("status", "error"),
    [(200, CecReturnCodeError), (401, CecAuthError), (500, CecHttpError), (404, CecHttpError)],
)
async def test_echoed_secret_and_token_are_masked(
    shape: str, status: int, error: type[Exception]
) -> None:
    peer = Peer()
    peer.business = lambda request: _echo(request, status, shape)
    if status == 200 and shape == "html":
        error = TransportError
    async with serve(peer.app) as url, client(url) as cec:
        with pytest.raises(error) as caught:
            await cec.called_route.modify(
                route_id=CalledRouteId("1"), device_type=DeviceType.IVR, device_id=1
            )
    assert_no_secret(caught.value)


@bounded()
@pytest.mark.parametrize("status", [200, 400, 403])
async def test_secret_echoed_by_the_token_endpoint_is_masked(status: int) -> None:
    peer = Peer()
    peer.token = lambda request: _echo(request, status, "json")
    async with serve(peer.app) as url, client(url) as cec:
        with pytest.raises((CecAuthError, CecHttpError)) as caught:
            await cec.called_route.query()
    assert_no_secret(caught.value)


# -- 401 storms ---------------------------------------------------------------------------------


@bounded()
async def test_a_401_storm_costs_two_tokens_and_two_tries_per_call() -> None:
    peer = Peer()
    peer.business = lambda request: web.json_response({"error_msg": "Unauthorized"}, status=401)
    async with serve(peer.app) as url, client(url) as cec:
        with pytest.raises(CecAuthError):
            await cec.called_route.query()
        assert peer.hits == {TOKEN_PATH: 2, QUERY_PATH: 2}
        results = await asyncio.gather(
            *(cec.called_route.query().fetch() for _ in range(10)), return_exceptions=True
        )
    assert all(isinstance(r, CecAuthError) for r in results)
    assert peer.hits[QUERY_PATH] == 2 + 20  # never more than two tries a call
    assert peer.hits[TOKEN_PATH] <= 2 + 11  # a fetch shared by the calls that wait for it


@bounded()
async def test_a_refusing_token_endpoint_is_asked_once_per_call() -> None:
    peer = Peer()
    peer.token = lambda request: web.json_response({"error_msg": "denied"}, status=403)
    async with serve(peer.app) as url, client(url) as cec:
        results = await asyncio.gather(
            *(cec.called_route.query().fetch() for _ in range(10)), return_exceptions=True
        )
    assert all(isinstance(r, CecAuthError) for r in results)
    assert peer.hits == {TOKEN_PATH: 1}


@bounded()
async def test_a_token_that_expires_at_once_is_not_fetched_for_every_call() -> None:
    peer = Peer()
    peer.token = lambda request: _token_answer(expires="1")
    async with serve(peer.app) as url, client(url) as cec:
        for _ in range(3):
            await cec.called_route.query()
    assert peer.hits[TOKEN_PATH] == 1


# -- TLS ---------------------------------------------------------------------------------------


@bounded()
async def test_tls_verified_by_the_given_ca_and_refused_by_another(tmp_path: Path) -> None:
    ca, other = trustme.CA(), trustme.CA()
    ca_file, other_file = tmp_path / "ca.pem", tmp_path / "other.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    other.cert_pem.write_to_path(str(other_file))
    peer = Peer()
    async with serve(peer.app, ca=ca) as url:
        async with client(url, ssl=str(ca_file)) as cec:
            await cec.called_route.query()
        async with client(url, ssl=str(other_file)) as cec:
            with pytest.raises(TransportError, match="cannot connect") as caught:
                await cec.called_route.query()
    assert peer.hits == {TOKEN_PATH: 1, QUERY_PATH: 1}  # the untrusted one sent nothing
    assert_no_secret(caught.value)
