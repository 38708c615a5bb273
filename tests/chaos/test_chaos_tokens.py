"""Chaos on tokens and credentials: expiry on a live socket and at reconnect, a refresh under a
REST stampede, and credentials the PBX stops accepting.

Issue 7, scenarios 5 and 6.
"""

from __future__ import annotations

import asyncio

import pytest

from tests.chaos._rig import WAIT, Rig
from tests.chaos.conftest import FakeFactory
from yeastar_async.errors import AuthenticationError, LockoutGuardError
from yeastar_async.events import Connected, Disconnected
from yeastar_async.testing import FakePBX


async def test_token_expiry_on_the_live_socket_reconnects_with_a_refresh(pbx: FakePBX) -> None:
    """5. The PBX pushes 10004 on the open socket and closes it."""
    async with Rig(pbx, subscriber=True) as rig:
        await rig.listen()
        await rig.next_link(Connected)
        assert await rig.emit(10) == 10
        await rig.settle()
        assert pbx.expire_tokens() == 1
        lost = await rig.next_link(Disconnected)
        assert "token expired" in lost.reason, lost
        back = await rig.next_link(Connected)
        assert back.reconnect is True
        assert back.gap is not None
        assert back.gap < 1.0
        assert pbx.count("refresh_token") == 1  # renewed by refresh, not by a new login
        assert await rig.emit(10) == 10
        await rig.settle()


async def test_token_expiry_found_at_reconnect(pbx: FakePBX) -> None:
    """5. The token died while the link was down; the new socket is refused with 10004."""
    async with Rig(pbx) as rig:
        await rig.listen()
        await rig.next_link(Connected)
        assert await rig.emit(10) == 10
        await rig.settle()
        # The token dies silently and the link drops: the client still believes in its token.
        pbx.expire_tokens(notify_sockets=False)
        assert pbx.drop_connections() == 1
        await rig.next_link(Disconnected)
        assert (await rig.next_link(Connected)).reconnect is True
        assert pbx.stats.token_rejections == 1  # the stale token was tried once, then renewed
        assert pbx.stats.ws_connects == 3
        assert pbx.count("refresh_token") == 1
        assert await rig.emit(10) == 10
        await rig.settle()


async def test_one_refresh_for_fifty_concurrent_rest_calls_and_the_socket(pbx: FakePBX) -> None:
    """5. The token dies under the socket and under 50 REST calls at once: one refresh."""
    async with Rig(pbx) as rig:
        await rig.listen()
        await rig.next_link(Connected)
        assert pbx.expire_tokens() == 1
        answers = await asyncio.gather(*(rig.client.system.information() for _ in range(50)))
        assert len(answers) == 50
        assert all(a.errcode == 0 for a in answers)
        await rig.next_link(Disconnected)
        assert (await rig.next_link(Connected)).reconnect is True
        assert pbx.count("refresh_token") == 1
        # Each call that met the dead token was replayed once, and only once.
        assert pbx.stats.token_rejections <= 50
        assert pbx.count("system/information") == 50 + pbx.stats.token_rejections
        assert await rig.emit(10) == 10
        await rig.settle()


async def test_dead_refresh_token_falls_back_to_one_login_under_load(pbx: FakePBX) -> None:
    """5. Access and refresh tokens both dead: one refresh attempt, one login, for everyone."""
    async with Rig(pbx, max_logins=2) as rig:
        await rig.listen()
        await rig.next_link(Connected)
        pbx.expire_refresh_tokens()
        assert pbx.expire_tokens() == 1
        await asyncio.gather(*(rig.client.system.information() for _ in range(50)))
        await rig.next_link(Disconnected)
        await rig.next_link(Connected)
        assert pbx.count("refresh_token") == 1
        assert pbx.count("get_token") == 2
        assert await rig.emit(10) == 10
        await rig.settle()


async def test_short_lived_tokens_expire_under_a_steady_flow(fake_factory: FakeFactory) -> None:
    """5. Tokens living 0.6 s: the stream moves to each new token without a gap."""
    pbx = await fake_factory(idle_timeout=3.0, access_token_ttl=0.6)
    async with Rig(pbx, subscriber=True, max_logins=8) as rig:
        await rig.listen()
        await rig.next_link(Connected)
        while rig.client.event_stats.rotations < 2:
            await rig.emit_one()
            await asyncio.sleep(0.005)  # the pace of the flow
        assert rig.client.event_stats.reconnects == 0
        # Make-before-break: every event reached everyone exactly once, in order.
        await rig.settle()
        assert len(rig.sent) > 50
        assert pbx.stats.max_live_tokens <= 2


async def test_rejected_credentials_end_listen_with_at_most_three_logins(pbx: FakePBX) -> None:
    """6. Bad credentials: a clear AuthenticationError out of listen(); then the guard."""
    async with Rig(pbx, secret="not-the-secret-of-this-pbx", max_logins=3) as rig:
        for attempt in range(1, 6):
            async with asyncio.timeout(WAIT):
                with pytest.raises(AuthenticationError) as info:
                    await rig.client.listen()
            if attempt <= 3:
                assert type(info.value) is AuthenticationError
                assert info.value.errcode == -1
                assert "rejected login" in str(info.value)
            else:
                assert isinstance(info.value, LockoutGuardError)
                assert "create a new client" in str(info.value)
        assert pbx.count("get_token") == 3
        assert not pbx.is_blocked()
        assert pbx.stats.ws_handshakes == 0
        assert rig.links == []


async def test_refused_handshake_with_revoked_credentials_ends_listen(pbx: FakePBX) -> None:
    """6. Link lost; the upgrade is refused (401) and the app's credentials were changed."""
    async with Rig(pbx, subscriber=True, max_logins=2) as rig:
        rig.expected_errors = (AuthenticationError,)
        listener = await rig.listen()
        await rig.next_link(Connected)
        assert await rig.emit(5) == 5
        await rig.settle()
        pbx.client_secret = "rotated-by-the-admin"
        pbx.expire_refresh_tokens()
        pbx.reject_handshake(401)
        assert pbx.drop_connections() == 1
        await rig.next_link(Disconnected)
        async with asyncio.timeout(WAIT):
            with pytest.raises(AuthenticationError) as info:
                await listener
        assert info.value.errcode == -1
        assert pbx.stats.ws_rejected == 1
        # initial login + one rejected one; the refused handshake was not retried blindly
        assert pbx.count("get_token") == 2
        assert not pbx.is_blocked()
        assert rig._sub_task is not None
        async with asyncio.timeout(WAIT):
            await asyncio.wait({rig._sub_task})
        assert isinstance(rig._sub_task.exception(), AuthenticationError)
        await rig.settle()


async def test_token_expired_frame_with_revoked_credentials_ends_listen(pbx: FakePBX) -> None:
    """6. 10004 on the live socket, the refresh token dead, the secret changed."""
    async with Rig(pbx, max_logins=2) as rig:
        rig.expected_errors = (AuthenticationError,)
        listener = await rig.listen()
        await rig.next_link(Connected)
        pbx.client_secret = "rotated-by-the-admin"
        pbx.expire_refresh_tokens()
        pbx.expire_tokens()
        lost = await rig.next_link(Disconnected)
        assert "token expired" in lost.reason
        async with asyncio.timeout(WAIT):
            with pytest.raises(AuthenticationError):
                await listener
        assert pbx.count("refresh_token") == 1
        assert pbx.count("get_token") == 2
        assert not pbx.is_blocked()


async def test_a_refused_handshake_with_valid_credentials_is_retried_with_backoff(
    pbx: FakePBX,
) -> None:
    """6. 401 on every upgrade but the credentials are fine: refreshes, never a login storm."""
    async with Rig(pbx, reconnect_delay_min=0.03, reconnect_delay_max=0.06) as rig:
        await rig.listen()
        await rig.next_link(Connected)
        pbx.reject_handshake(401)
        assert pbx.drop_connections() == 1
        await rig.next_link(Disconnected)
        await pbx.wait_until(lambda: pbx.stats.ws_rejected >= 5, WAIT, "5 refused upgrades")
        pbx.reject_handshake(None)
        assert (await rig.next_link(Connected)).reconnect is True
        assert pbx.count("get_token") == 1
        # Each refusal renewed the token once (the PBX might have revoked it), no more.
        assert pbx.count("refresh_token") <= pbx.stats.ws_rejected
        assert await rig.emit(5) == 5
        await rig.settle()
