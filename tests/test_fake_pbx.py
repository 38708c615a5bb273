"""FakePBX core: tokens, IP block, token cap, faults, overrides, request log.

Plain aiohttp clients over real loopback sockets (not the SDK client), so these tests check
the fake itself.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from tests._raw import API, RawApi
from yeastar_async.testing import FakePBX, RequestRecord


@pytest.fixture
async def pbx() -> AsyncIterator[FakePBX]:
    async with FakePBX() as fake:
        yield fake


@pytest.fixture
async def api(pbx: FakePBX) -> AsyncIterator[RawApi]:
    async with RawApi.connect(pbx) as client:
        yield client


async def test_base_url_and_repr_hide_the_secret(pbx: FakePBX) -> None:
    assert pbx.base_url == f"http://127.0.0.1:{pbx.port}"
    assert pbx.port > 0
    assert pbx.client_id == "fake-client-id"
    assert len(pbx.client_secret) >= 16
    assert pbx.client_secret not in repr(pbx)
    assert pbx.client_secret != FakePBX().client_secret  # random per instance


async def test_get_token_answers_the_manual_shape(api: RawApi, pbx: FakePBX) -> None:
    body = await api.login()
    assert list(body) == [
        "errcode",
        "errmsg",
        "access_token_expire_time",
        "access_token",
        "refresh_token_expire_time",
        "refresh_token",
    ]
    assert body["errcode"] == 0
    assert body["errmsg"] == "SUCCESS"
    assert body["access_token_expire_time"] == 1800
    assert body["refresh_token_expire_time"] == 86400
    assert len(body["access_token"]) == 32
    assert body["access_token"].isalnum()
    assert api.last_headers["Connection"] == "close"
    assert pbx.stats.login_attempts == pbx.stats.logins_succeeded == 1
    assert pbx.live_tokens() == 1
    assert pbx.live_access_tokens() == [body["access_token"]]
    assert set(pbx.issued_tokens()) == {body["access_token"], body["refresh_token"]}


async def test_configured_lifetimes_are_reported() -> None:
    pbx = FakePBX(access_token_ttl=2, refresh_token_ttl=7.5)
    async with pbx, aiohttp.ClientSession() as session:
        body = await RawApi(pbx, session).login()
    assert body["access_token_expire_time"] == 2
    assert body["refresh_token_expire_time"] == 7.5


async def test_keep_alive_leaves_the_connection_open() -> None:
    async with FakePBX(keep_alive=True) as pbx, aiohttp.ClientSession() as session:
        api = RawApi(pbx, session)
        await api.login()
        assert api.last_headers.get("Connection", "").lower() != "close"


async def test_wrong_credentials_answer_the_manual_failure(api: RawApi, pbx: FakePBX) -> None:
    body = await api.login(secret="wrong")
    assert body == {
        "errcode": -1,
        "errmsg": "FAILURE",
        "invalid_param_list": [{"field": "username or password", "value": "error"}],
    }
    assert pbx.stats.logins_failed == 1
    assert pbx.live_tokens() == 0


async def test_five_failed_logins_block_the_ip_until_unblocked(api: RawApi, pbx: FakePBX) -> None:
    for _ in range(5):
        assert (await api.login(secret="wrong"))["errcode"] == -1
    assert pbx.is_blocked("127.0.0.1")
    blocked = {"errcode": 70004, "errmsg": "ACCOUNT IP BLOCKED"}
    assert await api.login() == blocked  # even the right secret
    assert await api.call("GET", "system/information", token="x") == (200, blocked)
    assert pbx.stats.login_attempts == 5  # blocked requests never reach the credential check
    pbx.unblock()
    assert (await api.login())["errcode"] == 0


async def test_a_good_login_resets_the_failure_counter(api: RawApi, pbx: FakePBX) -> None:
    for _ in range(4):
        await api.login(secret="wrong")
    assert (await api.login())["errcode"] == 0
    for _ in range(4):
        await api.login(secret="wrong")
    assert not pbx.is_blocked()
    assert (await api.login(secret="wrong"))["errcode"] == -1
    assert pbx.is_blocked()


async def test_block_ip_switch(api: RawApi, pbx: FakePBX) -> None:
    token = await api.new_token()
    pbx.block_ip()
    assert (await api.call("GET", "system/capacity", token=token))[1]["errcode"] == 70004
    pbx.unblock("127.0.0.1")
    assert (await api.call("GET", "system/capacity", token=token))[1]["errcode"] == 0


async def test_token_cap_answers_60002() -> None:
    async with FakePBX(max_tokens=2) as pbx, aiohttp.ClientSession() as session:
        api = RawApi(pbx, session)
        first = await api.new_token()
        await api.new_token()
        assert await api.login() == {"errcode": 60002, "errmsg": "MAX LIMITATION EXCEEDED"}
        assert pbx.stats.logins_capped == 1
        assert not pbx.is_blocked()  # not a credential failure
        assert (await api.call("GET", "del_token", token=first))[1]["errcode"] == 0
        assert (await api.login())["errcode"] == 0


async def test_refresh_token_rotates_the_pair(api: RawApi, pbx: FakePBX) -> None:
    old = await api.login()
    status, new = await api.call(
        "POST", "refresh_token", json={"refresh_token": old["refresh_token"]}
    )
    assert status == 200
    assert new["errcode"] == 0
    assert new["access_token"] != old["access_token"]
    assert new["refresh_token"] != old["refresh_token"]
    assert pbx.stats.refreshes == 1
    dead = await api.call("GET", "system/information", token=old["access_token"])
    assert dead[1] == {"errcode": 10004, "errmsg": "TOKEN EXPIRED"}
    ok = await api.call("GET", "system/information", token=new["access_token"])
    assert ok[1]["errcode"] == 0
    reused = await api.call("POST", "refresh_token", json={"refresh_token": old["refresh_token"]})
    assert reused[1] == {"errcode": 10004, "errmsg": "TOKEN EXPIRED"}
    assert pbx.stats.refresh_failures == 1
    assert pbx.live_tokens() == 1


async def test_refresh_token_without_a_token_is_a_parameter_error(api: RawApi) -> None:
    _, body = await api.call("POST", "refresh_token", json={})
    assert body == {
        "errcode": 40002,
        "errmsg": "PARAMETER ERROR",
        "invalid_param_list": [{"field": "refresh_token", "validation_type": "required"}],
    }


async def test_del_token_revokes(api: RawApi, pbx: FakePBX) -> None:
    token = await api.new_token()
    assert await api.call("GET", "del_token", token=token) == (
        200,
        {"errcode": 0, "errmsg": "SUCCESS"},
    )
    assert pbx.stats.revocations == 1
    assert pbx.live_tokens() == 0
    assert (await api.call("GET", "system/information", token=token))[1]["errcode"] == 10004
    assert (await api.call("GET", "del_token", token=token))[1]["errcode"] == 10004


@pytest.mark.parametrize("token", [None, "", "not-a-token"])
async def test_other_endpoints_need_a_live_token(
    api: RawApi, pbx: FakePBX, token: str | None
) -> None:
    _, body = await api.call("GET", "system/information", token=token)
    assert body == {"errcode": 10004, "errmsg": "TOKEN EXPIRED"}
    assert pbx.stats.token_rejections == 1


async def test_system_endpoints_answer_the_manual_examples(api: RawApi) -> None:
    token = await api.new_token()
    _, info = await api.call("GET", "system/information", token=token)
    assert info["data"]["firmware_version"] == "X.7.0.16"
    assert info["data"]["sn"] == "3631A2124XXX"
    _, cap = await api.call("GET", "system/capacity", token=token)
    assert cap["data"] == {
        "extension_capacity": 50,
        "extension_used": 10,
        "cc_capacity": 25,
        "cc_used": 0,
    }
    _, menu = await api.call("GET", "system/get_menuoptions", token=token, params={"menu": "role"})
    assert menu["errcode"] == 0
    assert menu["data"][0] == {"text": "None", "value": "0"}


async def test_expire_tokens_keeps_refresh_tokens(api: RawApi, pbx: FakePBX) -> None:
    pair = await api.login()
    assert pbx.expire_tokens() == 1
    assert pbx.live_tokens() == 0
    dead = await api.call("GET", "system/capacity", token=pair["access_token"])
    assert dead[1]["errcode"] == 10004
    _, new = await api.call("POST", "refresh_token", json={"refresh_token": pair["refresh_token"]})
    assert new["errcode"] == 0


async def test_expire_refresh_tokens_keeps_access_tokens(api: RawApi, pbx: FakePBX) -> None:
    pair = await api.login()
    assert pbx.expire_refresh_tokens() == 1
    _, body = await api.call("POST", "refresh_token", json={"refresh_token": pair["refresh_token"]})
    assert body["errcode"] == 10004
    ok = await api.call("GET", "system/capacity", token=pair["access_token"])
    assert ok[1]["errcode"] == 0


async def test_tokens_expire_with_the_injected_clock() -> None:
    now = [1000.0]
    pbx = FakePBX(access_token_ttl=30, refresh_token_ttl=60, clock=lambda: now[0])
    async with pbx, aiohttp.ClientSession() as session:
        api = RawApi(pbx, session)
        pair = await api.login()
        now[0] += 29.9
        ok = await api.call("GET", "system/capacity", token=pair["access_token"])
        assert ok[1]["errcode"] == 0
        now[0] += 0.2
        dead = await api.call("GET", "system/capacity", token=pair["access_token"])
        assert dead[1]["errcode"] == 10004
        assert pbx.live_tokens() == 0
        now[0] += 30
        stale = {"refresh_token": pair["refresh_token"]}
        assert (await api.call("POST", "refresh_token", json=stale))[1]["errcode"] == 10004


async def test_fail_next_answers_a_status_then_recovers(api: RawApi, pbx: FakePBX) -> None:
    token = await api.new_token()
    pbx.fail_next(2, status=503)
    for _ in range(2):
        status, text = await api.call("GET", "system/capacity", token=token)
        assert status == 503
        assert isinstance(text, str)
        assert "503" in text
    assert (await api.call("GET", "system/capacity", token=token))[0] == 200
    assert [r.status for r in pbx.requests_for("system/capacity")] == [503, 503, 200]


async def test_fail_next_limited_to_one_endpoint(api: RawApi, pbx: FakePBX) -> None:
    pbx.fail_next(1, status=502, endpoint="system/capacity")
    token = await api.new_token()  # get_token is not affected
    assert (await api.call("GET", "system/information", token=token))[0] == 200
    assert (await api.call("GET", "system/capacity", token=token))[0] == 502
    assert (await api.call("GET", "system/capacity", token=token))[0] == 200


async def test_fail_next_errcode_does_not_touch_state(api: RawApi, pbx: FakePBX) -> None:
    token = await api.new_token()
    pbx.fail_next_errcode(1, 10004, endpoint="system/information")
    pbx.fail_next_errcode(1, 40002, endpoint="get_token", invalid_param_list=[{"field": "x"}])
    _, body = await api.call("GET", "system/information", token=token)
    assert body == {"errcode": 10004, "errmsg": "TOKEN EXPIRED"}
    assert (await api.call("GET", "system/information", token=token))[1]["errcode"] == 0
    assert await api.login() == {
        "errcode": 40002,
        "errmsg": "PARAMETER ERROR",
        "invalid_param_list": [{"field": "x"}],
    }
    assert pbx.stats.login_attempts == 1  # the injected answer is not a login
    pbx.fail_next_errcode(1, 70123, "CUSTOM")
    assert (await api.call("GET", "system/information", token=token))[1] == {
        "errcode": 70123,
        "errmsg": "CUSTOM",
    }


async def test_delay_next_holds_a_request(api: RawApi, pbx: FakePBX) -> None:
    token = await api.new_token()
    pbx.delay_next(1, 5.0, endpoint="system/capacity")
    with pytest.raises(asyncio.TimeoutError):
        async with asyncio.timeout(0.1):
            await api.call("GET", "system/capacity", token=token)
    assert (await api.call("GET", "system/capacity", token=token))[1]["errcode"] == 0


async def test_hold_next_answers_once_released(api: RawApi, pbx: FakePBX) -> None:
    token = await api.new_token()
    gate = pbx.hold_next(1, endpoint="system/capacity")
    call = asyncio.create_task(api.call("GET", "system/capacity", token=token))
    await pbx.wait_for_request("system/capacity")
    other = await api.call("GET", "system/information", token=token)
    assert other[1]["errcode"] == 0  # only the named endpoint is held
    assert not call.done()
    gate.set()
    async with asyncio.timeout(5):
        status, body = await call
    assert (status, body["errcode"]) == (200, 0)
    # One request held: the next one is answered at once.
    async with asyncio.timeout(5):
        assert (await api.call("GET", "system/capacity", token=token))[1]["errcode"] == 0


async def test_close_ends_pending_delays_at_once() -> None:
    pbx = await FakePBX().start()
    async with aiohttp.ClientSession() as session:
        api = RawApi(pbx, session)
        token = await api.new_token()
        pbx.delay_next(1, 60.0)
        call = asyncio.create_task(api.call("GET", "system/capacity", token=token))
        await pbx.wait_for_request("system/capacity")
        async with asyncio.timeout(3):
            await pbx.close()
            status, _ = await call
        assert status == 200


async def test_set_response_overrides_after_the_token_check(api: RawApi, pbx: FakePBX) -> None:
    pbx.set_response("system/information", {"errcode": 0, "errmsg": "SUCCESS", "data": {"x": 1}})
    assert (await api.call("GET", "system/information"))[1]["errcode"] == 10004
    token = await api.new_token()
    assert (await api.call("GET", "system/information", token=token))[1]["data"] == {"x": 1}

    async def dynamic(record: RequestRecord) -> dict[str, Any]:
        return {"errcode": 0, "errmsg": "SUCCESS", "echo": record.params}

    pbx.set_response("custom/thing", dynamic)  # even an endpoint the manual lacks
    _, body = await api.call("POST", "custom/thing", token=token, json={"a": 1})
    assert body["echo"] == {"a": 1}
    pbx.set_response("system/information", None)
    _, info = await api.call("GET", "system/information", token=token)
    assert info["data"]["device_name"] == "PBX"


async def test_a_post_body_that_is_not_json_answers_40001(api: RawApi, pbx: FakePBX) -> None:
    token = await api.new_token()
    url = f"{pbx.base_url}/openapi/v1.0/call/dial?access_token={token}"
    async with api.session.post(url, data=b"caller=2000") as resp:
        assert await resp.json() == {"errcode": 40001, "errmsg": "PARAMETER SYNTAX ERROR"}
    assert pbx.stats.login_attempts == 1


async def test_unknown_endpoint_and_wrong_method_answer_10001(api: RawApi) -> None:
    token = await api.new_token()
    missing = {"errcode": 10001, "errmsg": "INTERFACE NOT EXISTED"}
    assert (await api.call("GET", "no/such", token=token))[1] == missing
    assert (await api.call("POST", "system/information", token=token))[1] == missing
    assert (await api.call("GET", "get_token"))[1] == missing


async def test_request_log_records_what_was_sent(api: RawApi, pbx: FakePBX) -> None:
    token = await api.new_token()
    await api.call("GET", "system/get_menuoptions", token=token, params={"menu": "trunk"})
    login, menu = pbx.requests
    assert login.method == "POST"
    assert login.endpoint == "get_token"
    assert login.json == {"username": pbx.client_id, "password": pbx.client_secret}
    assert login.user_agent == "OpenAPI"
    assert login.status == 200
    assert login.errcode == 0
    assert menu.query == {"menu": "trunk", "access_token": token}
    assert menu.params == {"menu": "trunk"}
    assert menu.access_token == token
    assert menu.remote == "127.0.0.1"
    assert pbx.count("get_token") == 1
    assert pbx.count("system/get_menuoptions", method="GET") == 1
    assert pbx.count("system/get_menuoptions", method="POST") == 0
    # reprs (printed by failing asserts) never show tokens or passwords
    assert token not in repr(menu)
    assert pbx.client_secret not in repr(login)
    pbx.clear_requests()
    assert pbx.requests == []


async def test_wait_for_request_and_reset_stats(api: RawApi, pbx: FakePBX) -> None:
    waiter = asyncio.create_task(pbx.wait_for_request("get_token", count=2))
    await api.login()
    assert not waiter.done()
    await api.login(secret="bad")
    record = await waiter
    assert record.json["password"] == "bad"
    assert pbx.stats.login_attempts == 2
    pbx.reset_stats()
    assert pbx.stats.login_attempts == 0
    assert pbx.stats.subscriptions == []
    with pytest.raises(TimeoutError, match="get_token"):
        await pbx.wait_for_request("get_token", count=3, timeout=0.05)


async def test_start_and_close_are_idempotent() -> None:
    pbx = FakePBX()
    await pbx.start()
    port = pbx.port
    await pbx.start()
    assert pbx.port == port
    await pbx.close()
    await pbx.close()
    async with aiohttp.ClientSession() as session:
        with pytest.raises(aiohttp.ClientConnectionError):
            await session.get(pbx.base_url + API + "system/information")
