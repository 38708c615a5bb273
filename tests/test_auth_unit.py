"""Token manager logic against a scripted sender (no network): single-flight, refresh, guard."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import Any

import pytest

from yeastar_async._auth import LoginGuard, MemoryTokenStore, TokenManager, TokenSet, login_guard
from yeastar_async.errors import (
    AuthenticationError,
    IPBlockedError,
    LimitExceededError,
    LockoutGuardError,
    TransportError,
    error_for,
)

SECRET = "s3cr3t-client-secret"


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


class ScriptedSender:
    """Answers get_token / refresh_token / del_token from a script; records every call."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []
        self.login_error: int | None = None
        self.refresh_error: int | None = None
        self.gate: asyncio.Event | None = None
        self.counter = 0
        self.lifetime = 1800

    async def send(
        self,
        method: str,
        endpoint: str,
        *,
        params: Mapping[str, str] | None = None,
        json: Any = None,
        response_type: Any,
        timeout: float | None = None,
        token: str | None = None,
    ) -> Any:
        self.calls.append((endpoint, json if json is not None else token))
        if self.gate is not None:
            await self.gate.wait()
        if endpoint == "get_token" and self.login_error is not None:
            raise error_for(self.login_error, endpoint=endpoint)
        if endpoint == "refresh_token" and self.refresh_error is not None:
            raise error_for(self.refresh_error, endpoint=endpoint)
        if endpoint == "del_token":
            return response_type()
        self.counter += 1
        return response_type(
            access_token=f"access-{self.counter}",
            access_token_expire_time=self.lifetime,
            refresh_token=f"refresh-{self.counter}",
            refresh_token_expire_time=86400,
        )

    def count(self, endpoint: str) -> int:
        return sum(1 for name, _ in self.calls if name == endpoint)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def sender() -> ScriptedSender:
    return ScriptedSender()


def manager(sender: ScriptedSender, clock: Clock, **kw: Any) -> TokenManager:
    return TokenManager(sender, "client-id", SECRET, clock=clock, **kw)


async def test_concurrent_callers_share_one_login(sender: ScriptedSender, clock: Clock) -> None:
    tm = manager(sender, clock)
    sender.gate = asyncio.Event()
    waiters = [asyncio.create_task(tm.token()) for _ in range(25)]
    await asyncio.sleep(0)  # let every waiter reach the shared renewal
    sender.gate.set()
    tokens = await asyncio.gather(*waiters)
    assert set(tokens) == {"access-1"}
    assert sender.count("get_token") == 1
    assert sender.calls[0][1] == {"username": "client-id", "password": SECRET}


async def test_token_is_reused_until_the_refresh_margin(
    sender: ScriptedSender, clock: Clock
) -> None:
    tm = manager(sender, clock)
    assert await tm.token() == "access-1"
    clock.now += 1800 - 301  # still outside the 5-minute margin
    assert await tm.token() == "access-1"
    clock.now += 2  # inside the margin: refresh, not a new login
    assert await tm.token() == "access-2"
    assert sender.count("get_token") == 1
    assert sender.count("refresh_token") == 1
    assert sender.calls[-1][1] == {"refresh_token": "refresh-1"}


async def test_margin_scales_down_for_short_lifetimes(sender: ScriptedSender, clock: Clock) -> None:
    sender.lifetime = 10
    tm = manager(sender, clock)
    await tm.token()
    clock.now += 7.9  # margin is a fifth of the lifetime (2 s), not 5 minutes
    assert await tm.token() == "access-1"
    clock.now += 0.2
    assert await tm.token() == "access-2"


async def test_rejected_refresh_falls_back_to_one_login(
    sender: ScriptedSender, clock: Clock
) -> None:
    tm = manager(sender, clock)
    await tm.token()
    sender.refresh_error = 10004
    await tm.expired("access-1")
    assert await tm.token() == "access-2"
    assert sender.count("refresh_token") == 1
    assert sender.count("get_token") == 2


async def test_expired_is_a_noop_for_a_replaced_token(sender: ScriptedSender, clock: Clock) -> None:
    tm = manager(sender, clock)
    await tm.token()
    await tm.expired("some-older-token")
    assert await tm.token() == "access-1"
    assert len(sender.calls) == 1


async def test_wrong_secret_ten_times_at_most_three_logins(
    sender: ScriptedSender, clock: Clock
) -> None:
    sender.login_error = -1
    tm = manager(sender, clock)
    errors = []
    for _ in range(10):
        with pytest.raises(AuthenticationError) as info:
            await tm.token()
        errors.append(info.value)
    assert sender.count("get_token") == 3
    assert all(type(e) is AuthenticationError for e in errors[:3])
    assert all(isinstance(e, LockoutGuardError) for e in errors[3:])
    assert "create a new client" in str(errors[-1])
    assert SECRET not in "".join(str(e) + repr(e) for e in errors)


async def test_concurrent_callers_with_a_wrong_secret_cause_one_login(
    sender: ScriptedSender, clock: Clock
) -> None:
    sender.login_error = -1
    tm = manager(sender, clock)
    results = await asyncio.gather(*(tm.token() for _ in range(20)), return_exceptions=True)
    assert all(isinstance(r, AuthenticationError) for r in results)
    assert sender.count("get_token") == 1


async def test_success_resets_the_failure_count(sender: ScriptedSender, clock: Clock) -> None:
    tm = manager(sender, clock)
    sender.login_error = -1
    for _ in range(2):
        with pytest.raises(AuthenticationError):
            await tm.token()
    sender.login_error = None
    await tm.token()
    await tm.revoke()  # clears the store so the next call logs in again
    sender.login_error = -1
    for _ in range(3):
        with pytest.raises(AuthenticationError) as info:
            await tm.token()
        assert not isinstance(info.value, LockoutGuardError)
    with pytest.raises(LockoutGuardError):
        await tm.token()
    assert sender.count("get_token") == 6


async def test_token_cap_waits_before_the_next_login(sender: ScriptedSender, clock: Clock) -> None:
    sender.login_error = 60002
    tm = manager(sender, clock, limit_retry_after=60)
    with pytest.raises(LimitExceededError) as first:
        await tm.token()
    assert "TokenStore" in str(first.value)
    with pytest.raises(LimitExceededError) as second:
        await tm.token()
    assert sender.count("get_token") == 1, "no tight retry while the cap holds"
    assert "not asking again" in str(second.value)
    clock.now += 61
    sender.login_error = None
    assert await tm.token() == "access-1"
    # The cap is no credential failure: nothing counts towards the lockout guard.
    assert sender.count("get_token") == 2


async def test_ip_blocked_names_the_unblock_path(sender: ScriptedSender, clock: Clock) -> None:
    sender.login_error = 70004
    tm = manager(sender, clock)
    with pytest.raises(IPBlockedError) as info:
        await tm.token()
    assert "Security > Security Rules > IP Blocklist" in str(info.value)


async def test_network_failure_during_refresh_propagates(
    sender: ScriptedSender, clock: Clock
) -> None:
    tm = manager(sender, clock)
    await tm.token()
    await tm.expired("access-1")

    async def broken(*args: Any, **kwargs: Any) -> Any:
        raise TransportError("refused", sent=False)

    sender.send = broken  # type: ignore[method-assign]
    with pytest.raises(TransportError):
        await tm.token()


async def test_revoke_sends_del_token_with_the_access_token(
    sender: ScriptedSender, clock: Clock
) -> None:
    store = MemoryTokenStore()
    tm = manager(sender, clock, store=store)
    await tm.token()
    await tm.revoke()
    assert sender.calls[-1] == ("del_token", "access-1")
    assert await store.load() is None


async def test_revoke_failure_is_logged_not_raised(
    sender: ScriptedSender, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    tm = manager(sender, clock)
    await tm.token()

    async def broken(*args: Any, **kwargs: Any) -> Any:
        raise TransportError("down")

    sender.send = broken  # type: ignore[method-assign]
    await tm.revoke()
    assert "could not revoke" in caplog.text


async def test_shared_store_token_is_used_without_login(
    sender: ScriptedSender, clock: Clock
) -> None:
    store = MemoryTokenStore()
    await store.save(
        TokenSet(
            access_token="from-another-process",
            access_expires_at=clock.now + 1800,
            refresh_token="r",
            refresh_expires_at=clock.now + 86400,
            access_lifetime=1800,
        )
    )
    tm = manager(sender, clock, store=store)
    assert await tm.token() == "from-another-process"
    assert sender.calls == []


def test_reprs_hide_secrets(sender: ScriptedSender, clock: Clock) -> None:
    tm = manager(sender, clock)
    ts = TokenSet("access-xyz", 1.0, "refresh-xyz", 2.0, 1800)
    text = repr(tm) + repr(ts) + str(ts)
    assert SECRET not in text
    assert "access-xyz" not in text
    assert "refresh-xyz" not in text


@pytest.mark.parametrize(("client_id", "secret"), [("", "x"), ("x", ""), (None, "x"), ("x", None)])
def test_empty_credentials_are_rejected(client_id: Any, secret: Any) -> None:
    with pytest.raises(ValueError, match="must be a non-empty string"):
        TokenManager(ScriptedSender(), client_id, secret)


async def test_current_reads_the_memory_store_without_awaiting(
    sender: ScriptedSender, clock: Clock
) -> None:
    tm = manager(sender, clock)
    assert tm.current() is None  # nothing yet: the caller must await token()
    assert await tm.token() == "access-1"
    assert tm.current() == "access-1"
    clock.now += 1800 - 299  # inside the refresh margin: due for renewal, so not handed out
    assert tm.current() is None
    assert await tm.token() == "access-2"
    assert tm.current() == "access-2"
    await tm.expired("access-2")  # a 10004 for it: never handed out again
    assert tm.current() is None


async def test_current_defers_to_token_with_a_custom_store(
    sender: ScriptedSender, clock: Clock
) -> None:
    class SharedStore(MemoryTokenStore):
        """Stands in for a store shared between processes: it must always be awaited."""

    tm = manager(sender, clock, store=SharedStore())
    assert await tm.token() == "access-1"
    assert tm.current() is None
    assert await tm.token() == "access-1"
    assert sender.count("get_token") == 1


async def test_managers_sharing_a_guard_never_send_a_fifth_rejected_login(
    sender: ScriptedSender, clock: Clock
) -> None:
    """A service that builds a new client after each failure gets no fresh allowance."""
    guard = LoginGuard()
    sender.login_error = -1
    for _ in range(3):  # the same wrong secret, a new manager each time
        tm = manager(sender, clock, guard=guard)
        with pytest.raises(AuthenticationError):
            await tm.token()
    with pytest.raises(LockoutGuardError, match="these credentials"):
        await manager(sender, clock, guard=guard).token()
    assert sender.count("get_token") == 3
    # Other credentials may try once more: the 4th rejection in a row ...
    other = TokenManager(sender, "client-id", "another-secret", clock=clock, guard=guard)
    with pytest.raises(AuthenticationError) as info:
        await other.token()
    assert not isinstance(info.value, LockoutGuardError)
    assert "0 more time(s) at most" in str(info.value)
    # ... after which nothing is sent, whatever the credentials: the 5th would block the IP.
    fresh = TokenManager(sender, "client-id", "a-third-secret", clock=clock, guard=guard)
    with pytest.raises(LockoutGuardError, match="last 4 logins to this PBX") as refused:
        await fresh.token()
    assert sender.count("get_token") == 4
    texts = "".join(str(e) + repr(e) for e in (info.value, refused.value, guard, fresh))
    assert "another-secret" not in texts
    assert SECRET not in texts


async def test_a_shared_guard_is_cleared_by_any_accepted_login(
    sender: ScriptedSender, clock: Clock
) -> None:
    guard = LoginGuard()
    sender.login_error = -1
    with pytest.raises(AuthenticationError):
        await manager(sender, clock, guard=guard).token()
    sender.login_error = None
    await TokenManager(sender, "client-id", "right", clock=clock, guard=guard).token()
    assert guard.in_a_row == 0
    sender.login_error = -1
    for _ in range(3):  # the earlier rejection no longer counts
        with pytest.raises(AuthenticationError) as info:
            await manager(sender, clock, guard=guard).token()
        assert not isinstance(info.value, LockoutGuardError)


def test_login_guards_are_per_pbx_url() -> None:
    assert login_guard("https://pbx.example.com:8088/") is login_guard(
        "https://PBX.example.com:8088"
    )
    assert login_guard("https://pbx.example.com:8088") is not login_guard(
        "https://other.example.com:8088"
    )


class FlakyStore:
    """A shared store (Redis-like) that can be switched to failing."""

    def __init__(self, *, down: bool = False) -> None:
        self.tokens: TokenSet | None = None
        self.down = down

    async def load(self) -> TokenSet | None:
        if self.down:
            raise ConnectionError("store down (load)")
        return self.tokens

    async def save(self, tokens: TokenSet | None) -> None:
        if self.down:
            raise ConnectionError("store down (save)")
        self.tokens = tokens


async def test_a_failing_store_costs_no_extra_logins_and_never_raises(
    sender: ScriptedSender, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    store = FlakyStore(down=True)
    tm = manager(sender, clock, store=store)
    with caplog.at_level(logging.DEBUG, logger="yeastar_async.auth"):
        for _ in range(5):
            assert await tm.token() == "access-1"
        await tm.revoke()  # closing: revokes the client's own token, raises nothing
    assert sender.count("get_token") == 1
    assert sender.calls[-1] == ("del_token", "access-1")
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1, "one warning per outage"
    assert "store down" in warnings[0].getMessage()
    assert "access-1" not in caplog.text


async def test_a_store_that_recovers_gets_the_token_again(
    sender: ScriptedSender, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    store = FlakyStore(down=True)
    tm = manager(sender, clock, store=store)
    await tm.token()
    store.down = False
    clock.now += 1800  # due: renewed, and the store has it again
    with caplog.at_level(logging.INFO, logger="yeastar_async.auth"):
        assert await tm.token() == "access-2"
    assert store.tokens is not None
    assert store.tokens.access_token == "access-2"
    assert "works again" in caplog.text


async def test_clients_sharing_a_locking_store_log_in_once_together(
    sender: ScriptedSender, clock: Clock
) -> None:
    store = MemoryTokenStore()
    first, second = (manager(sender, clock, store=store) for _ in range(2))
    sender.gate = asyncio.Event()
    both = asyncio.gather(first.token(), second.token())
    await asyncio.sleep(0)  # both reach their renewal before the PBX answers
    sender.gate.set()
    assert await both == ["access-1", "access-1"]
    assert sender.count("get_token") == 1
    # Both find the token due at the same moment: one refresh, no login.
    clock.now += 1800
    assert await asyncio.gather(first.token(), second.token()) == ["access-2", "access-2"]
    assert sender.count("refresh_token") == 1
    assert sender.count("get_token") == 1


async def test_a_store_with_plain_methods_works(sender: ScriptedSender, clock: Clock) -> None:
    class PlainStore:
        tokens: TokenSet | None = None

        def load(self) -> TokenSet | None:
            return self.tokens

        def save(self, tokens: TokenSet | None) -> None:
            self.tokens = tokens

    store = PlainStore()
    tm = manager(sender, clock, store=store)  # type: ignore[arg-type]
    assert await tm.token() == "access-1"
    assert store.tokens is not None
