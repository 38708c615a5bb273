"""FakeCec on its own: what it answers to raw requests (so client tests can trust it)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from tests._clock import Clock
from yeastar_async.testing import FakeCec

# The fixtures cec_fake and clock.
pytest_plugins = ["tests._cec"]

TOKEN_PATH = "/apigovernance/api/oauth/tokenByAkSk"
QUERY_PATH = "/apiaccess/rest/cc-management/v1/calledRoute/queryCalledRoute"


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as session:
        yield session


async def _post(
    http: aiohttp.ClientSession, url: str, body: Any, headers: dict[str, str] | None = None
) -> tuple[int, Any]:
    async with http.post(url, json=body, headers=headers) as resp:
        return resp.status, await resp.json(content_type=None)


async def _token(http: aiohttp.ClientSession, fake: FakeCec, ttl: str = "60") -> dict[str, Any]:
    status, body = await _post(
        http,
        fake.base_url + TOKEN_PATH,
        {"app_key": fake.app_key, "app_secret": fake.app_secret},
        {"X-Token-Expire": ttl},
    )
    assert status == 200
    assert isinstance(body, dict)
    return body


async def test_token_answer_has_the_documented_fields(
    cec_fake: FakeCec, clock: Clock, http: aiohttp.ClientSession
) -> None:
    body = await _token(http, cec_fake)
    assert body["CreateTime"] == str(int(clock.now))
    assert body["Expires"] == "60"
    assert body["ApplyType"] == "Bearer"
    assert cec_fake.live_tokens() == [body["AccessToken"]]


@pytest.mark.parametrize("ttl", ["0", "3601", "ten"])
async def test_token_expire_header_out_of_range_is_400(
    cec_fake: FakeCec, http: aiohttp.ClientSession, ttl: str
) -> None:
    status, _ = await _post(
        http,
        cec_fake.base_url + TOKEN_PATH,
        {"app_key": cec_fake.app_key, "app_secret": cec_fake.app_secret},
        {"X-Token-Expire": ttl},
    )
    assert status == 400


async def test_tokens_expire_on_the_fake_clock(
    cec_fake: FakeCec, clock: Clock, http: aiohttp.ClientSession
) -> None:
    token = (await _token(http, cec_fake))["AccessToken"]
    auth = {"Authorization": f"Bearer {token}"}
    assert (await _post(http, cec_fake.base_url + QUERY_PATH, {}, auth))[0] == 200
    clock.advance(60)
    assert (await _post(http, cec_fake.base_url + QUERY_PATH, {}, auth))[0] == 401
    assert cec_fake.live_tokens() == []
    assert cec_fake.stats.auth_rejections == 1


async def test_requests_without_a_bearer_token_are_401(
    cec_fake: FakeCec, http: aiohttp.ClientSession
) -> None:
    token = (await _token(http, cec_fake))["AccessToken"]
    for headers in ({}, {"Authorization": token}, {"Authorization": "Bearer nope"}):
        assert (await _post(http, cec_fake.base_url + QUERY_PATH, {}, headers))[0] == 401


async def test_wrong_paths_methods_and_bodies(
    cec_fake: FakeCec, http: aiohttp.ClientSession
) -> None:
    token = (await _token(http, cec_fake))["AccessToken"]
    auth = {"Authorization": f"Bearer {token}"}
    wrong = cec_fake.base_url + "/apiaccess/rest/cc-management/v1/calledRoute/nope"
    assert (await _post(http, wrong, {}, auth))[0] == 404
    async with http.get(cec_fake.base_url + QUERY_PATH, headers=auth) as resp:
        assert resp.status == 405
    async with http.post(cec_fake.base_url + QUERY_PATH, data=b"{nope", headers=auth) as resp:
        assert resp.status == 400
    status, body = await _post(http, cec_fake.base_url + QUERY_PATH, {"limit": 101}, auth)
    assert (status, body["returnCode"]) == (200, "1")
    assert [r.status for r in cec_fake.requests][-4:] == [404, 405, 400, 200]
    assert cec_fake.app_secret not in repr(cec_fake.requests[0])
