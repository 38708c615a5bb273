"""The client's token handling and transport against the FakePBX over real loopback sockets."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import aiohttp
import pytest

from yeastar_async import YeastarClient
from yeastar_async.errors import (
    AuthenticationError,
    IPBlockedError,
    LimitExceededError,
    LockoutGuardError,
    TokenExpiredError,
    TransportError,
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
