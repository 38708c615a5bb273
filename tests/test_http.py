"""Transport unit tests with aioresponses: URLs, headers, bodies, error mapping, retries."""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import msgspec
import pytest
from aioresponses import aioresponses
from yarl import URL

from yeastar_async import errors
from yeastar_async._http import Transport, redact
from yeastar_async._models import ApiResponse

BASE = "https://pbx.example.com:8088"
TOKEN = "tok-ABCDEFGHIJ0123456789"


class FixedTokens:
    def __init__(self, *tokens: str) -> None:
        self.tokens = list(tokens) or [TOKEN]
        self.expired_calls: list[str] = []

    def current(self) -> str | None:
        return None  # always through token(): these tests count and swap tokens there

    async def token(self) -> str:
        return self.tokens[0]

    async def expired(self, token: str) -> None:
        self.expired_calls.append(token)
        if len(self.tokens) > 1:
            self.tokens.pop(0)


class Info(ApiResponse, kw_only=True):
    data: dict[str, Any] = msgspec.field(default_factory=dict)


async def no_sleep(delay: float) -> None:
    sleeps.append(delay)


sleeps: list[float] = []


@pytest.fixture
async def transport() -> AsyncIterator[Transport]:
    sleeps.clear()
    t = Transport(BASE, sleep=no_sleep)
    t.tokens = FixedTokens()
    yield t
    await t.aclose()


@pytest.fixture
def mocked() -> Any:
    with aioresponses() as m:
        yield m


def url(endpoint: str, **query: str) -> re.Pattern[str]:
    return re.compile(re.escape(f"{BASE}/openapi/v1.0/{endpoint}") + r"(\?.*)?$")


def sent(mocked: Any, method: str = "GET") -> list[Any]:
    return [call for (m, _), calls in mocked.requests.items() if m == method for call in calls]


def sent_urls(mocked: Any) -> list[URL]:
    return [u for (_, u) in mocked.requests]


def sent_tokens(mocked: Any, method: str) -> list[str]:
    """The access token of each ``method`` request, in order, read from its URL's query."""
    return [
        u.query["access_token"]
        for (m, u), calls in mocked.requests.items()
        if m == method
        for _ in calls
    ]


async def test_get_builds_url_with_token_and_user_agent(transport: Transport, mocked: Any) -> None:
    mocked.get(url("system/information"), payload={"errcode": 0, "errmsg": "SUCCESS", "data": {}})
    await transport.request("GET", "system/information", params={"page": "2"}, response_type=Info)
    (request_url,) = sent_urls(mocked)
    assert request_url.path == "/openapi/v1.0/system/information"
    assert request_url.query == {"page": "2", "access_token": TOKEN}
    (call,) = sent(mocked)
    assert call.kwargs["data"] is None
    # The token travels only in the query string, never in a header.
    headers = {**(call.kwargs.get("headers") or {})}
    assert TOKEN not in json.dumps(headers)


async def test_user_agent_header_is_sent_on_every_request(transport: Transport) -> None:
    session = transport._get_session()
    assert session.headers["User-Agent"] == "OpenAPI"
    custom = Transport(BASE, user_agent="MyApp/1.0")
    try:
        assert custom._get_session().headers["User-Agent"] == "MyApp/1.0"
    finally:
        await custom.aclose()


async def test_post_sends_json_body(transport: Transport, mocked: Any) -> None:
    mocked.post(url("call/dial"), payload={"errcode": 0, "errmsg": "SUCCESS", "call_id": "1.2"})
    await transport.request(
        "POST", "call/dial", json={"caller": "2000", "callee": "5503301"}, response_type=Info
    )
    (call,) = sent(mocked, "POST")
    assert json.loads(call.kwargs["data"]) == {"caller": "2000", "callee": "5503301"}
    assert call.kwargs["headers"]["Content-Type"] == "application/json"
    assert sent_tokens(mocked, "POST") == [TOKEN]
    assert sent_urls(mocked)[0].query == {"access_token": TOKEN}  # the token is the whole query


def test_api_path_is_configurable() -> None:
    t = Transport("http://pbx.example.com:8080/", api_path="/openapi/v2.0/")
    assert t.endpoint_url("cdr/list") == "http://pbx.example.com:8080/openapi/v2.0/cdr/list"


@pytest.mark.parametrize("bad", ["pbx.example.com", "ftp://pbx", "https://", ""])
def test_bad_base_url_is_rejected_with_the_value(bad: str) -> None:
    with pytest.raises(ValueError, match="base_url must look like") as info:
        Transport(bad)
    assert repr(bad) in str(info.value)


@pytest.mark.parametrize(("code", "cls"), [(c, cls) for c, (cls, _) in errors.ERROR_TABLE.items()])
async def test_every_errcode_maps_to_its_class(
    transport: Transport, mocked: Any, code: int, cls: type[errors.YeastarError]
) -> None:
    mocked.get(url("extension/get"), payload={"errcode": code, "errmsg": "SOMETHING"}, repeat=True)
    with pytest.raises(errors.YeastarError) as info:
        await transport.request("GET", "extension/get", response_type=Info)
    if code == 10004:
        # 10004 is replayed once after a refresh, then raised.
        assert isinstance(info.value, errors.TokenExpiredError)
    else:
        assert type(info.value) is cls
    assert info.value.errcode == code
    assert info.value.errmsg == "SOMETHING"
    assert info.value.endpoint == "extension/get"


async def test_unknown_errcode_is_plain_yeastar_error(transport: Transport, mocked: Any) -> None:
    mocked.get(url("x/y"), payload={"errcode": 99999, "errmsg": "NEW"})
    with pytest.raises(errors.YeastarError) as info:
        await transport.request("GET", "x/y", response_type=Info)
    assert type(info.value) is errors.YeastarError


async def test_error_message_names_invalid_and_duplicate_fields(
    transport: Transport, mocked: Any
) -> None:
    mocked.post(
        url("extension/create"),
        payload={
            "errcode": 40002,
            "errmsg": "PARAMETER ERROR",
            "invalid_param_list": [{"field": "number", "value": "1001x"}],
            "duplicate_field_list": [
                {"field": "email_addr", "value": "a@b.c", "external_source_name": "Teams"}
            ],
        },
    )
    with pytest.raises(errors.ParameterError) as info:
        await transport.request("POST", "extension/create", json={}, response_type=Info)
    text = str(info.value)
    assert "extension/create" in text
    assert "40002" in text
    assert "number='1001x'" in text
    assert "email_addr='a@b.c'" in text
    assert "Teams" in text
    assert info.value.invalid_param_list == [{"field": "number", "value": "1001x"}]


async def test_password_values_in_error_lists_are_masked(transport: Transport, mocked: Any) -> None:
    mocked.post(
        url("extension/update"),
        payload={
            "errcode": 40002,
            "errmsg": "PARAMETER ERROR",
            "invalid_param_list": [{"field": "user_password", "value": "hunter2"}],
        },
    )
    with pytest.raises(errors.ParameterError) as info:
        await transport.request("POST", "extension/update", json={}, response_type=Info)
    assert "hunter2" not in str(info.value)


async def test_get_token_failure_is_authentication_error(transport: Transport, mocked: Any) -> None:
    body = {
        "errcode": -1,
        "errmsg": "FAILURE",
        "invalid_param_list": [{"field": "username or password", "validation_type": "invalid"}],
    }
    mocked.post(url("get_token"), payload=body)
    mocked.post(url("extension/create"), payload=body)
    with pytest.raises(errors.AuthenticationError):
        await transport.send("POST", "get_token", json={}, response_type=Info)
    with pytest.raises(errors.RequestFailedError):
        await transport.request("POST", "extension/create", json={}, response_type=Info)


async def test_10004_is_replayed_once_with_the_new_token(mocked: Any) -> None:
    t = Transport(BASE, sleep=no_sleep)
    tokens = FixedTokens("old-token", "new-token")
    t.tokens = tokens
    mocked.post(url("call/dial"), payload={"errcode": 10004, "errmsg": "TOKEN EXPIRED"})
    mocked.post(url("call/dial"), payload={"errcode": 0, "errmsg": "SUCCESS"})
    try:
        await t.request("POST", "call/dial", json={"caller": "1"}, response_type=Info)
    finally:
        await t.aclose()
    assert tokens.expired_calls == ["old-token"]
    assert sent_tokens(mocked, "POST") == ["old-token", "new-token"]


async def test_persistent_10004_raises_after_exactly_one_replay(
    transport: Transport, mocked: Any
) -> None:
    mocked.get(url("extension/list"), payload={"errcode": 10004}, repeat=True)
    with pytest.raises(errors.TokenExpiredError):
        await transport.request("GET", "extension/list", response_type=Info)
    assert len(sent(mocked)) == 2


@pytest.mark.parametrize("status", [502, 503, 504])
async def test_get_is_retried_on_gateway_errors(
    transport: Transport, mocked: Any, status: int
) -> None:
    mocked.get(url("system/capacity"), status=status, body="bad gateway")
    mocked.get(url("system/capacity"), payload={"errcode": 0})
    await transport.request("GET", "system/capacity", response_type=Info)
    assert len(sent(mocked)) == 2
    assert len(sleeps) == 1
    assert 0 <= sleeps[0] <= 0.5


async def test_get_gives_up_after_the_configured_retries(mocked: Any) -> None:
    sleeps.clear()
    t = Transport(BASE, retries=2, sleep=no_sleep)
    t.tokens = FixedTokens()
    mocked.get(url("system/capacity"), status=503, body="<html>busy</html>", repeat=True)
    try:
        with pytest.raises(errors.TransportError) as info:
            await t.request("GET", "system/capacity", response_type=Info)
    finally:
        await t.aclose()
    assert len(sent(mocked)) == 3
    assert info.value.status == 503
    assert "busy" in info.value.body_excerpt
    # Backoff grows: full jitter within 0.5 * 2**n.
    assert len(sleeps) == 2
    assert sleeps[0] <= 0.5
    assert sleeps[1] <= 1.0


async def test_get_is_retried_on_connection_errors(transport: Transport, mocked: Any) -> None:
    mocked.get(url("system/capacity"), exception=aiohttp.ServerDisconnectedError())
    mocked.get(url("system/capacity"), exception=TimeoutError())
    mocked.get(url("system/capacity"), payload={"errcode": 0})
    await transport.request("GET", "system/capacity", response_type=Info)
    assert len(sent(mocked)) == 3


async def test_post_answered_502_is_not_replayed(transport: Transport, mocked: Any) -> None:
    mocked.post(url("call/dial"), status=502, body="bad gateway")
    mocked.post(url("call/dial"), payload={"errcode": 0})
    with pytest.raises(errors.TransportError) as info:
        await transport.request("POST", "call/dial", json={}, response_type=Info)
    assert info.value.status == 502
    assert len(sent(mocked, "POST")) == 1


async def test_post_with_unknown_outcome_is_not_replayed(transport: Transport, mocked: Any) -> None:
    mocked.post(url("call/dial"), exception=aiohttp.ServerDisconnectedError())
    mocked.post(url("call/dial"), payload={"errcode": 0})
    with pytest.raises(errors.TransportError):
        await transport.request("POST", "call/dial", json={}, response_type=Info)
    assert len(sent(mocked, "POST")) == 1


async def test_post_that_never_left_is_retried(transport: Transport, mocked: Any) -> None:
    refused = aiohttp.ClientConnectorError(
        aiohttp.client_reqrep.ConnectionKey("pbx", 8088, True, True, None, None, None),
        ConnectionRefusedError(111, "Connection refused"),
    )
    mocked.post(url("call/dial"), exception=refused)
    mocked.post(url("call/dial"), payload={"errcode": 0, "errmsg": "SUCCESS"})
    await transport.request("POST", "call/dial", json={}, response_type=Info)
    assert len(sent(mocked, "POST")) == 2


async def test_non_json_body_is_transport_error_with_excerpt(
    transport: Transport, mocked: Any
) -> None:
    mocked.get(url("system/information"), body="<html>login page</html>", content_type="text/html")
    with pytest.raises(errors.TransportError) as info:
        await transport.request("GET", "system/information", response_type=Info)
    assert info.value.status == 200
    assert "login page" in info.value.body_excerpt


async def test_envelope_without_errcode_is_transport_error(
    transport: Transport, mocked: Any
) -> None:
    mocked.get(url("system/information"), payload={"hello": 1})
    with pytest.raises(errors.TransportError, match="no errcode"):
        await transport.request("GET", "system/information", response_type=Info)


async def test_lenient_decoding_of_numbers_sent_as_strings(
    transport: Transport, mocked: Any
) -> None:
    class Capacity(ApiResponse, kw_only=True):
        total: int = 0

    mocked.get(url("system/capacity"), payload={"errcode": "0", "total": "60", "extra": [1]})
    answer = await transport.request("GET", "system/capacity", response_type=Capacity)
    assert answer.total == 60


async def test_token_never_logged_at_debug(
    transport: Transport, mocked: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    mocked.get(url("system/capacity"), status=503, body=f"echo access_token={TOKEN}", repeat=True)
    with pytest.raises(errors.TransportError) as info:
        await transport.request("GET", "system/capacity", response_type=Info)
    assert TOKEN not in caplog.text
    assert TOKEN not in str(info.value)
    assert TOKEN not in info.value.body_excerpt


def test_redact_masks_query_and_json_secrets() -> None:
    text = redact(
        f'wss://h/openapi/v1.0/subscribe?access_token={TOKEN}&x=1 {{"password": "pw", '
        f'"refresh_token":"{TOKEN}"}}'
    )
    assert TOKEN not in text
    assert '"pw"' not in text
    assert "x=1" in text


def test_download_url_encodes_and_stays_on_the_pbx() -> None:
    t = Transport(BASE)
    assert (
        str(t.download_url("/api/download/Cdr+X 1.csv")) == f"{BASE}/api/download/Cdr%2BX%201.csv"
    )
    # Already-encoded names are not encoded twice.
    assert str(t.download_url("/api/download/a%2Bb.wav")) == f"{BASE}/api/download/a%2Bb.wav"
    assert str(t.download_url(f"{BASE}/api/download/x.wav")) == f"{BASE}/api/download/x.wav"
    for foreign in (
        "https://evil.example.com/api/download/x.wav",
        "//evil.example.com/x.wav",
        "http://pbx.example.com:8088/x.wav",
        "https://pbx.example.com:9999/x.wav",
    ):
        with pytest.raises(ValueError, match="refusing to download"):
            t.download_url(foreign)


def test_ws_url_follows_the_scheme() -> None:
    assert (
        Transport(BASE).ws_url("t+k")
        == "wss://pbx.example.com:8088/openapi/v1.0/subscribe?access_token=t%2Bk"
    )
    assert Transport("http://pbx.local").ws_url("t").startswith("ws://pbx.local/openapi/v1.0/")
    assert Transport("http://pbx.local").ws_ssl() is None


def test_option_validation_names_the_value() -> None:
    with pytest.raises(ValueError, match="timeout must be > 0, got 0"):
        Transport(BASE, timeout=0)
    with pytest.raises(ValueError, match="max_concurrency must be >= 1, got 0"):
        Transport(BASE, max_concurrency=0)
    with pytest.raises(ValueError, match="retries must be >= 0, got -1"):
        Transport(BASE, retries=-1)


class Item(msgspec.Struct, kw_only=True):
    id: str = ""
    number: str = ""
    tags: list[str] = msgspec.field(default_factory=list)


class Page(ApiResponse, kw_only=True):
    data: list[Item] = msgspec.field(default_factory=list)
    total_number: int = 0


class Strict(ApiResponse, kw_only=True):
    data: list[int] = msgspec.field(default_factory=list)


async def test_drifting_answers_are_decoded_leniently(transport: Transport, mocked: Any) -> None:
    # id as a number (manual: String), a 12-digit float id kept exact, tags null, data an
    # object where the manual says Array, total_number blank.
    body = (
        b'{"errcode":0,"errmsg":"SUCCESS","total_number":" ","data":'
        b'{"id":60,"number":1702287660.000012,"tags":null}}'
    )
    mocked.get(url("extension/list"), body=body)
    page = await transport.request("GET", "extension/list", response_type=Page)
    assert page.data == [Item(id="60", number="1702287660.000012", tags=[])]
    assert page.total_number == 0


async def test_answer_that_cannot_fit_is_transport_error(transport: Transport, mocked: Any) -> None:
    mocked.get(url("extension/list"), body=b'{"errcode":0,"data":["a","b"]}')
    with pytest.raises(errors.TransportError, match="does not match Strict"):
        await transport.request("GET", "extension/list", response_type=Strict)


async def test_a_space_in_a_query_value_goes_on_the_wire_as_percent_20() -> None:
    """Date filters hold spaces; ``+`` is a space only to form decoders, ``%20`` to all."""
    request_lines: list[bytes] = []

    async def answer(reader: Any, writer: Any) -> None:
        request_lines.append(await reader.readline())
        while (await reader.readline()) not in (b"\r\n", b""):
            pass
        body = b'{"errcode":0,"errmsg":"SUCCESS"}'
        writer.write(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n"
            b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body
        )
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(answer, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    transport = Transport(f"http://127.0.0.1:{port}")
    try:
        await transport.send(
            "GET",
            "cdr/search",
            params={"start_time": "05/30/2022 00:00:00", "call_from": "+8610 a&b"},
            response_type=ApiResponse,
            token=TOKEN,
        )
    finally:
        await transport.aclose()
        server.close()
        await server.wait_closed()
    line = request_lines[0].decode()
    assert "start_time=05/30/2022%2000:00:00" in line, line
    assert "call_from=%2B8610%20a%26b" in line, line
    assert "+" not in line.split(" ")[1], line
