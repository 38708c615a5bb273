"""The client's token handling and transport against the FakePBX over real loopback sockets."""

from __future__ import annotations

import asyncio
import logging
import threading
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import aiohttp
import msgspec
import pytest

from yeastar_async import YeastarClient
from yeastar_async.errors import (
    AuthenticationError,
    IPBlockedError,
    LimitExceededError,
    LockoutGuardError,
    NotFoundError,
    TokenExpiredError,
    TransportError,
    YeastarError,
)
from yeastar_async.testing import FakePBX


def make_client(pbx: FakePBX, **kw: Any) -> YeastarClient:
    return YeastarClient(pbx.base_url, pbx.client_id, pbx.client_secret, **kw)


def seen_tokens(pbx: FakePBX) -> set[str]:
    tokens = {r.access_token for r in pbx.requests if r.access_token}
    tokens.update(pbx.issued_tokens())
    return tokens


async def test_25_concurrent_calls_cause_one_login() -> None:
    async with FakePBX() as pbx, make_client(pbx) as client:
        answers = await asyncio.gather(
            *(client.request("GET", "system/information") for _ in range(25))
        )
        assert all(a["errcode"] == 0 for a in answers)
        assert pbx.count("get_token") == 1
        assert pbx.count("system/information") == 25


async def test_system_endpoints_return_typed_structs() -> None:
    async with FakePBX() as pbx, make_client(pbx) as client:
        info = await client.system.information()
        assert info.data is not None
        assert info.data.firmware_version == "X.7.0.16"
        assert isinstance(info.data.up_time, int)
        capacity = await client.system.capacity()
        assert capacity.errcode == 0
        assert capacity.data is not None
        options = await client.system.get_menuoptions(menu="extension")
        assert options.errcode == 0
        record = pbx.requests_for("system/get_menuoptions")[-1]
        assert record.query["menu"] == "extension"
        with pytest.raises(TypeError):
            await client.system.get_menuoptions()  # type: ignore[call-arg]


async def test_every_request_carries_the_user_agent_and_token_in_query() -> None:
    async with FakePBX() as pbx:
        async with make_client(pbx, user_agent="Bot/2") as client:
            await client.request("GET", "system/capacity")
        for record in pbx.requests:
            assert record.user_agent == "Bot/2"
        capacity = next(r for r in pbx.requests if r.endpoint == "system/capacity")
        assert capacity.access_token
        assert capacity.access_token not in str(capacity.headers)


async def test_client_side_expiry_refreshes_without_a_second_login() -> None:
    async with FakePBX() as pbx, make_client(pbx) as client:
        await client.request("GET", "system/information")
        tokens = client._tokens
        real_clock = tokens._clock
        tokens._clock = lambda: real_clock() + 1700  # inside the 5-minute refresh margin
        await client.request("GET", "system/information")
        assert pbx.count("get_token") == 1
        assert pbx.count("refresh_token") == 1


async def test_server_side_expiry_is_replayed_exactly_once() -> None:
    async with FakePBX() as pbx, make_client(pbx) as client:
        await client.request("GET", "system/information")
        pbx.expire_tokens()
        answer = await client.request("GET", "system/information")
        assert answer["errcode"] == 0
        assert pbx.count("system/information") == 3  # first, rejected, replayed
        assert pbx.count("refresh_token") == 1
        assert pbx.count("get_token") == 1


async def test_rejected_refresh_falls_back_to_one_login() -> None:
    async with FakePBX() as pbx, make_client(pbx) as client:
        await client.request("GET", "system/information")
        pbx.expire_tokens()
        pbx.expire_refresh_tokens()
        await client.request("GET", "system/information")
        assert pbx.count("refresh_token") == 1
        assert pbx.count("get_token") == 2


async def test_persistent_10004_raises_after_one_replay() -> None:
    async with FakePBX() as pbx, make_client(pbx) as client:
        pbx.fail_next_errcode(10, 10004, endpoint="system/capacity")
        with pytest.raises(TokenExpiredError):
            await client.request("GET", "system/capacity")
        assert pbx.count("system/capacity") == 2


async def test_wrong_secret_ten_times_means_at_most_three_logins() -> None:
    async with FakePBX() as pbx:
        async with YeastarClient(pbx.base_url, pbx.client_id, "wrong-secret") as client:
            for _ in range(10):
                with pytest.raises(AuthenticationError):
                    await client.request("GET", "system/information")
            with pytest.raises(LockoutGuardError, match="create a new client"):
                await client.request("GET", "system/information")
        assert pbx.count("get_token") == 3
        # The PBX's 5-failure block was never reached: the right secret still works.
        async with make_client(pbx) as good:
            assert (await good.request("GET", "system/information"))["errcode"] == 0


async def test_new_clients_after_rejected_logins_never_get_the_ip_blocked() -> None:
    """A service that replaces its client after each failure still stops before the block."""
    async with FakePBX() as pbx:
        for attempt in range(6):
            async with YeastarClient(pbx.base_url, pbx.client_id, "wrong-secret") as client:
                expected = LockoutGuardError if attempt >= 3 else AuthenticationError
                with pytest.raises(expected):
                    await client.request("GET", "system/information")
        assert pbx.count("get_token") == 3
        # Nothing was blocked, and the right secret logs in and clears the count.
        async with make_client(pbx) as good:
            assert (await good.request("GET", "system/information"))["errcode"] == 0
        async with YeastarClient(pbx.base_url, pbx.client_id, "wrong-secret") as again:
            with pytest.raises(AuthenticationError) as info:
                await again.request("GET", "system/information")
            assert not isinstance(info.value, LockoutGuardError)


async def test_blocked_ip_gives_the_unblock_path() -> None:
    async with FakePBX() as pbx, make_client(pbx) as client:
        pbx.block_ip()
        with pytest.raises(IPBlockedError, match="IP Blocklist"):
            await client.request("GET", "system/information")


async def test_token_cap_is_limit_exceeded_without_tight_retry() -> None:
    async with FakePBX(max_tokens=1) as pbx:
        async with make_client(pbx, revoke_on_close=False) as first:
            await first.request("GET", "system/information")
        async with make_client(pbx) as second:
            for _ in range(3):
                with pytest.raises(LimitExceededError, match="TokenStore"):
                    await second.request("GET", "system/information")
        assert pbx.count("get_token") == 2


async def test_post_answered_502_is_not_replayed() -> None:
    async with FakePBX() as pbx, make_client(pbx) as client:
        await client.request("GET", "system/information")
        pbx.fail_next(1, status=502, endpoint="call/dial")
        with pytest.raises(TransportError) as info:
            await client.request("POST", "call/dial", json={"caller": "2000", "callee": "2001"})
        assert info.value.status == 502
        assert pbx.count("call/dial") == 1


async def test_get_answered_503_is_retried() -> None:
    async with FakePBX() as pbx, make_client(pbx) as client:
        pbx.fail_next(2, status=503, endpoint="system/capacity")
        await client.request("GET", "system/capacity")
        assert pbx.count("system/capacity") == 3


async def test_close_revokes_the_token() -> None:
    async with FakePBX() as pbx:
        client = make_client(pbx)
        await client.request("GET", "system/information")
        await client.aclose()
        await client.aclose()  # idempotent
        assert pbx.count("del_token") == 1
        assert pbx.live_tokens() == 0
        assert client.closed
        with pytest.raises(RuntimeError, match="closed"):
            await client.request("GET", "system/information")


async def test_close_without_login_sends_nothing() -> None:
    async with FakePBX() as pbx:
        async with make_client(pbx):
            pass
        assert pbx.requests == []


async def test_borrowed_session_is_not_closed() -> None:
    async with FakePBX() as pbx, aiohttp.ClientSession() as session:
        async with make_client(pbx, session=session) as client:
            await client.request("GET", "system/information")
        assert not session.closed


async def test_per_call_timeout() -> None:
    async with FakePBX() as pbx, make_client(pbx, retries=0) as client:
        await client.request("GET", "system/information")
        pbx.delay_next(1, 2.0, endpoint="system/capacity")
        with pytest.raises(TransportError, match=r"no answer within 0\.2 s"):
            await client.request("GET", "system/capacity", timeout=0.2)


async def test_secrets_never_in_logs_reprs_or_errors(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    texts: list[str] = []
    async with FakePBX() as pbx:
        async with make_client(pbx) as client:
            texts.append(repr(client) + str(client))
            await client.request("GET", "system/information")
            pbx.expire_tokens()
            await client.request("GET", "system/information")
            pbx.fail_next(5, status=503, endpoint="system/capacity")
            with pytest.raises(TransportError) as info:
                await client.request("GET", "system/capacity")
            texts += [str(info.value), repr(info.value), repr(client._tokens)]
        async with YeastarClient(pbx.base_url, pbx.client_id, "bad-secret-value") as bad:
            with pytest.raises(AuthenticationError) as auth:
                await bad.request("GET", "system/information")
            texts += [str(auth.value), repr(auth.value), repr(bad)]
        secrets = {pbx.client_secret, "bad-secret-value", *seen_tokens(pbx)}
    haystack = caplog.text + "".join(texts)
    for secret in secrets:
        assert secret not in haystack


async def test_login_checks_credentials_up_front() -> None:
    async with FakePBX() as pbx:
        async with make_client(pbx) as client:
            await client.login()
            await client.login()  # the token is still valid: no second login
            assert pbx.count("get_token") == 1
        async with YeastarClient(pbx.base_url, pbx.client_id, "wrong") as bad:
            with pytest.raises(AuthenticationError):
                await bad.login()


async def test_revocation_on_close_is_bounded() -> None:
    async with FakePBX() as pbx:
        client = make_client(pbx)
        client._tokens._revoke_timeout = 0.2
        await client.request("GET", "system/information")
        pbx.delay_next(5, 5.0, endpoint="del_token")
        async with asyncio.timeout(2):
            await client.aclose()
        assert client.closed


def test_from_env_reads_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("YEASTAR_BASE_URL", "https://pbx.example.com:8088")
    monkeypatch.setenv("YEASTAR_CLIENT_ID", "id-1")
    monkeypatch.setenv("YEASTAR_CLIENT_SECRET", "secret-1")
    monkeypatch.setenv("YEASTAR_PIN", "ab" * 32)
    client = YeastarClient.from_env(timeout=5)
    assert client.base_url == "https://pbx.example.com:8088"
    assert client._transport.tls.pin == bytes.fromhex("ab" * 32)
    assert "secret-1" not in repr(client)
    monkeypatch.delenv("YEASTAR_CLIENT_ID")
    monkeypatch.delenv("YEASTAR_CLIENT_SECRET")
    with pytest.raises(ValueError, match="YEASTAR_CLIENT_ID, YEASTAR_CLIENT_SECRET"):
        YeastarClient.from_env()


async def test_request_formats_params_as_the_typed_methods_do() -> None:
    async with FakePBX() as pbx, make_client(pbx, datetime_format="%Y-%m-%d %H:%M:%S") as client:
        await client.request(
            "GET",
            "cdr/search",
            params={
                "start_time": datetime(2024, 3, 5, 14, 7, 9),
                "ids": [1, 2],
                "sort_by": None,
                "flag": True,
            },
        )
        sent = [r for r in pbx.requests if r.endpoint == "cdr/search"][-1].query
        assert sent["start_time"] == "2024-03-05 14:07:09"
        assert sent["ids"] == "1,2"
        assert sent["flag"] == "1"
        assert "sort_by" not in sent


class _Info(msgspec.Struct):
    firmware_version: str = ""


async def test_request_decodes_into_a_plain_struct() -> None:
    async with FakePBX() as pbx, make_client(pbx) as client:
        answer = await client.request("GET", "system/information", response_type=_SystemAnswer)
        assert isinstance(answer.data, _Info)
        assert answer.data.firmware_version


class _SystemAnswer(msgspec.Struct):
    data: _Info


@pytest.mark.parametrize(
    ("endpoint", "message"),
    [
        ("extension/get?id=39", "pass its parameters as params="),
        ("get_token", "handled by the client"),
        ("/refresh_token", "handled by the client"),
        ("del_token", "handled by the client"),
    ],
)
async def test_request_refuses_what_would_go_wrong_unseen(endpoint: str, message: str) -> None:
    async with FakePBX() as pbx, make_client(pbx) as client:
        with pytest.raises(ValueError, match=message) as info:
            await client.request("POST", endpoint, json={"username": "x", "password": "y"})
        assert endpoint.strip("/") in str(info.value)
        assert pbx.requests == []


@pytest.mark.parametrize(
    ("base_url", "suggested"),
    [
        ("https://pbx.example.com:8088/openapi/v1.0", "'https://pbx.example.com:8088'"),
        ("https://pbx.example.com:8088/openapi/v1.0/", "'https://pbx.example.com:8088'"),
        ("https://host/pbx1/openapi/v1.0", "'https://host/pbx1'"),
    ],
)
def test_a_base_url_with_the_api_path_is_refused_with_the_fix(
    base_url: str, suggested: str
) -> None:
    with pytest.raises(ValueError, match="must not include the API path") as info:
        YeastarClient(base_url, "id", "secret")
    assert f"use {suggested}" in str(info.value)
    assert repr(base_url) in str(info.value)


async def test_closing_the_client_ends_a_get_in_flight_without_retrying(
    caplog: pytest.LogCaptureFixture,
) -> None:
    arrived = asyncio.Event()
    never = asyncio.Event()

    async def hang(record: Any) -> dict[str, Any]:
        arrived.set()
        await never.wait()
        return {"errcode": 0, "errmsg": "SUCCESS"}

    async with FakePBX() as pbx:
        client = make_client(pbx, retry_backoff=5.0)
        await client.login()
        pbx.set_response("system/information", hang)
        call = asyncio.create_task(client.request("GET", "system/information"))
        await arrived.wait()
        with caplog.at_level(logging.INFO, logger="yeastar_async"):
            await client.aclose()
            with pytest.raises(RuntimeError, match="the client is closed"):
                await asyncio.wait_for(call, 2.0)  # not after a 5 s backoff
        assert "retry" not in caplog.text
        assert pbx.count("system/information") == 1
        never.set()


async def test_an_error_answer_names_what_the_request_was_about() -> None:
    async with FakePBX() as pbx, make_client(pbx) as client:
        with pytest.raises(NotFoundError) as got:
            await client.extension.get(id=235)
        assert "for id=235" in str(got.value)
        assert got.value.request_params == "id=235"
        with pytest.raises(YeastarError) as hung:
            await client.call.hangup(channel_id="PJSIP/2000-000000ae")
        assert "channel_id=PJSIP/2000-000000ae" in str(hung.value)
        # Only identifying parameters are named: never a password from a POST body.
        pbx.fail_next_errcode(1, 60001, endpoint="extension/update")
        with pytest.raises(NotFoundError) as updated:
            await client.extension.update(id=7, user_password="Pa55-word-9", reg_name="7")
        assert str(updated.value).endswith("for id=7")
        assert "Pa55-word-9" not in str(updated.value)


async def test_the_fake_answers_a_login_as_set_response_says() -> None:
    async with FakePBX() as pbx, make_client(pbx) as client:
        pbx.set_response("get_token", {"errcode": 60002, "errmsg": "MAX LIMITATION EXCEEDED"})
        with pytest.raises(LimitExceededError):
            await client.request("GET", "system/information")


async def test_closing_during_a_login_still_revokes_the_token_it_brings() -> None:
    async with FakePBX() as pbx:
        client = make_client(pbx)
        pbx.delay_next(1, 0.3, endpoint="get_token")
        call = asyncio.create_task(client.request("GET", "system/information"))
        await pbx.wait_for_request("get_token")
        await client.aclose()
        # The call may still finish with the new token, or end with the client's closing.
        (outcome,) = await asyncio.gather(call, return_exceptions=True)
        assert isinstance(outcome, dict | RuntimeError | TransportError), outcome
        assert pbx.live_tokens() == 0
        assert pbx.stats.revocations == 1


@pytest.mark.parametrize("endpoint", ["get_token", "refresh_token"])
async def test_a_transient_error_on_a_token_endpoint_is_retried(endpoint: str) -> None:
    async with FakePBX() as pbx, make_client(pbx, retry_backoff=0.01) as client:
        if endpoint == "refresh_token":
            await client.login()
            pbx.expire_tokens(notify_sockets=False)
        pbx.fail_next(1, status=503, endpoint=endpoint)
        answers = await asyncio.gather(
            *(client.request("GET", "system/information") for _ in range(10))
        )
        assert all(a["errcode"] == 0 for a in answers)
        assert pbx.count(endpoint) == 2  # the 503, then the retry all ten calls shared
        assert pbx.count("get_token") == 1 + (endpoint == "get_token")


def test_a_client_used_in_a_second_event_loop_says_so_and_closes_quietly(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """``asyncio.run()`` twice with one client: a clear error, and ``aclose()`` still works."""
    loop = asyncio.new_event_loop()
    pbx = FakePBX()
    loop.run_until_complete(pbx.start())
    server = threading.Thread(target=loop.run_forever, daemon=True)
    server.start()
    try:
        client = make_client(pbx)

        async def first() -> None:
            assert (await client.request("GET", "system/information"))["errcode"] == 0

        async def second() -> None:
            with pytest.raises(RuntimeError, match="first used in another event loop"):
                await client.request("GET", "system/information")
            await client.aclose()  # raises nothing: what it cannot do it logs

        asyncio.run(first())
        with caplog.at_level(logging.WARNING, logger="yeastar_async"):
            asyncio.run(second())
        assert client.closed
        assert "another event loop" in caplog.text
    finally:
        asyncio.run_coroutine_threadsafe(pbx.close(), loop).result(5)
        loop.call_soon_threadsafe(loop.stop)
        server.join(5)
        loop.close()


async def test_aware_datetimes_are_sent_in_the_pbx_time_zone() -> None:
    pbx_zone = timezone(timedelta(hours=8))  # the PBX's; the caller works in UTC
    start = datetime(2024, 3, 5, 6, 0, 0, tzinfo=UTC)
    naive = datetime(2024, 3, 5, 23, 59, 59)  # taken as PBX time, as it is
    async with FakePBX() as pbx, make_client(pbx, timezone=pbx_zone) as client:
        await client.cdr.search(start_time=start, end_time=naive)
        await client.request("GET", "cdr/search", params={"start_time": start})
        typed, raw = (r.query for r in pbx.requests_for("cdr/search"))
        assert typed["start_time"] == "03/05/2024 14:00:00"
        assert typed["end_time"] == "03/05/2024 23:59:59"
        assert raw["start_time"] == "03/05/2024 14:00:00"
    async with FakePBX() as pbx, make_client(pbx) as client:  # no time zone: wall-clock time
        await client.cdr.search(start_time=start)
        assert pbx.requests_for("cdr/search")[0].query["start_time"] == "03/05/2024 06:00:00"


def test_a_timezone_that_is_no_tzinfo_is_refused() -> None:
    with pytest.raises(TypeError, match=r"timezone must be a datetime\.tzinfo"):
        YeastarClient("https://pbx:8088", "id", "secret", timezone="Asia/Shanghai")  # type: ignore[arg-type]
