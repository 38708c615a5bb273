"""The stream's token step: a second login that leaves the old token alive, then its revocation."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest

from tests.test_auth_unit import Clock, ScriptedSender, manager
from yeastar_async import YeastarClient
from yeastar_async._auth import LoginGuard, MemoryTokenStore
from yeastar_async.errors import AuthenticationError, LockoutGuardError
from yeastar_async.events import CallStatusChanged
from yeastar_async.testing import FakePBX


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def sender() -> ScriptedSender:
    return ScriptedSender()


async def test_rotation_is_a_login_due_at_twice_the_margin(
    sender: ScriptedSender, clock: Clock
) -> None:
    tm = manager(sender, clock)
    old = await tm.token()
    assert tm.rotation_due(old) == 1800 - 600
    assert tm.rotation_due("another token") is None
    new = await tm.rotate(old)
    assert (old, new) == ("access-1", "access-2")
    assert sender.count("get_token") == 2
    assert sender.count("refresh_token") == 0
    assert sender.count("del_token") == 0  # the old link still uses the old token
    assert await tm.token() == new  # REST goes on with the new one
    await tm.retire(old)
    assert sender.calls[-1] == ("del_token", old)
    assert tm.revocations == 1
    await tm.retire(new)  # the current token is never retired
    assert sender.count("del_token") == 1


async def test_concurrent_rotations_share_one_login_and_a_replaced_token_is_reused(
    sender: ScriptedSender, clock: Clock
) -> None:
    tm = manager(sender, clock)
    old = await tm.token()
    sender.gate = asyncio.Event()
    waiters = [asyncio.create_task(tm.rotate(old)) for _ in range(5)]
    await asyncio.sleep(0)
    sender.gate.set()
    assert set(await asyncio.gather(*waiters)) == {"access-2"}
    assert await tm.rotate(old) == "access-2"  # already replaced: no further login
    assert sender.count("get_token") == 2


async def test_rotation_falls_back_to_a_refresh_at_the_token_cap(
    sender: ScriptedSender, clock: Clock
) -> None:
    tm = manager(sender, clock)
    old = await tm.token()
    sender.login_error = 60002
    assert await tm.rotate(old) == "access-2"
    assert sender.count("refresh_token") == 1


async def test_a_rejected_rotation_login_is_counted_by_the_guard(
    sender: ScriptedSender, clock: Clock
) -> None:
    guard = LoginGuard()
    tm = manager(sender, clock, guard=guard, max_credential_failures=2)
    old = await tm.token()
    sender.login_error = -1  # the admin changed the secret meanwhile
    with pytest.raises(AuthenticationError):
        await tm.rotate(old)
    with pytest.raises(AuthenticationError):
        await tm.rotate(old)
    with pytest.raises(LockoutGuardError):
        await tm.rotate(old)
    assert sender.count("get_token") == 3  # the first login and two rejected ones


@pytest.mark.parametrize(
    ("renewal", "old_alive_after_login", "old_alive_after_refresh"),
    [("refresh_revokes", True, False), ("kept", True, True), ("revoked", False, False)],
)
async def test_the_fake_models_what_a_new_token_does_to_the_old(
    renewal: str, old_alive_after_login: bool, old_alive_after_refresh: bool
) -> None:
    async with FakePBX(renewal=renewal) as fake:  # type: ignore[arg-type]
        first = fake.issue_token()
        assert fake.live_access_tokens() == [first]
        api = f"{fake.base_url}/openapi/v1.0/"
        headers = {"User-Agent": "OpenAPI"}
        login = {"username": fake.client_id, "password": fake.client_secret}
        async with aiohttp.ClientSession(headers=headers) as http:
            async with http.post(api + "get_token", json=login) as answer:
                second = (await answer.json())["access_token"]
            assert (first in fake.live_access_tokens()) is old_alive_after_login
            refresh = fake.live_refresh_tokens()[-1]
            async with http.post(api + "refresh_token", json={"refresh_token": refresh}) as answer:
                assert (await answer.json())["errcode"] == 0
            assert (second in fake.live_access_tokens()) is old_alive_after_refresh


def test_the_fake_refuses_an_unknown_renewal_behaviour() -> None:
    with pytest.raises(ValueError, match="'sometimes'"):
        FakePBX(renewal="sometimes")  # type: ignore[arg-type]


async def test_a_rejected_rotation_is_not_retried_and_the_old_link_stays() -> None:
    async with FakePBX(access_token_ttl=1.5, renewal="kept") as fake:
        pbx = YeastarClient(
            fake.base_url,
            fake.client_id,
            fake.client_secret,
            heartbeat_interval=0.2,
            heartbeat_timeout=0.5,
            login_guard_state=None,
        )

        async def ignore(event: CallStatusChanged) -> None:
            return None

        pbx.add_handler(CallStatusChanged, ignore)
        listener = asyncio.create_task(pbx.listen())
        try:
            await fake.wait_for_subscription([30011])
            fake.client_secret = "changed-by-the-admin"
            await fake.wait_for_request("get_token", count=2, timeout=5)
            assert pbx.connected  # the old link is kept until its token dies
            # A retried rotation would log in again within a second: it must not. (At expiry
            # the supervisor renews by a refresh, which needs no secret.)
            with pytest.raises(TimeoutError):
                await fake.wait_for_request("get_token", count=3, timeout=1.5)
            assert fake.stats.logins_failed == 1
        finally:
            await pbx.aclose()
            await asyncio.wait({listener}, timeout=10)


async def test_old_tokens_of_a_shared_store_are_left_to_expire(
    sender: ScriptedSender, clock: Clock
) -> None:
    tm = manager(sender, clock, store=MemoryTokenStore())
    old = await tm.token()
    await tm.rotate(old)
    await tm.retire(old)  # another client of the store may still use it
    assert sender.count("del_token") == 0
