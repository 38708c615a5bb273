"""RedisTokenStore: one token set (and the lockout guard's count) shared through Redis."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, Final

import msgspec
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import LockError
from redis.exceptions import TimeoutError as RedisTimeoutError

from yeastar_async._auth import TokenSet

__all__ = ["RedisTokenStore"]

logger = logging.getLogger("yeastar_async.auth")

_DECODE: Final = msgspec.json.Decoder(dict[str, Any])
_FIELDS: Final = (
    "access_token",
    "access_expires_at",
    "refresh_token",
    "refresh_expires_at",
    "access_lifetime",
)


class RedisTokenStore:
    """A :class:`~yeastar_async.TokenStore` in Redis, for every process of one application.

    ``key`` names the token set (one per PBX and client ID, e.g. ``"yeastar:pbx1:tokens"``);
    the lock is ``<key>:lock`` and the lockout guard's count ``<key>:guard``. The tokens are
    kept as JSON until the refresh token expires: protect the Redis server (ACL, TLS, a private
    network) as you would the client secret. Pass ``revoke_on_close=False`` to the clients
    that share it, so that one closing does not revoke the others' token.

    Args:
        redis: a ``redis.asyncio.Redis`` client.
        key: the Redis key of the token set.
        lock_timeout: seconds after which a lock whose holder died is released by Redis
            (longer than a login takes).
        lock_wait: seconds :meth:`lock` waits for another process's renewal before failing
            (the client then goes on with its own token).
    """

    def __init__(
        self, redis: Redis, key: str, *, lock_timeout: float = 30.0, lock_wait: float = 60.0
    ) -> None:
        if not isinstance(key, str) or not key:
            raise ValueError(f"RedisTokenStore needs a non-empty key, got {key!r}")
        for name, value in (("lock_timeout", lock_timeout), ("lock_wait", lock_wait)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
                raise ValueError(f"RedisTokenStore {name} must be > 0 seconds, got {value!r}")
        self._redis = redis
        self.key = key
        self._lock_timeout = float(lock_timeout)
        self._lock_wait = float(lock_wait)

    def __repr__(self) -> str:
        return f"RedisTokenStore(key={self.key!r})"

    async def load(self) -> TokenSet | None:
        """The stored token set, or ``None``; ValueError (without its content) if unreadable."""
        raw = await self._redis.get(self.key)
        if raw is None:
            return None
        try:
            data = _DECODE.decode(raw)
            return TokenSet(
                access_token=str(data["access_token"]),
                access_expires_at=float(data["access_expires_at"]),
                refresh_token=str(data["refresh_token"]),
                refresh_expires_at=float(data["refresh_expires_at"]),
                access_lifetime=float(data["access_lifetime"]),
            )
        except (ValueError, KeyError, TypeError) as exc:
            # Never the value itself: it may hold a token.
            raise ValueError(
                f"the token set in Redis key {self.key!r} is not one this library wrote "
                f"({type(exc).__name__})"
            ) from None

    async def save(self, tokens: TokenSet | None) -> None:
        """Replace the stored token set (``None`` deletes it); it expires with its refresh token."""
        if tokens is None:
            await self._redis.delete(self.key)
            return
        document = {name: getattr(tokens, name) for name in _FIELDS}
        expires_ms = round(tokens.refresh_expires_at * 1000)
        await self._redis.set(self.key, json.dumps(document), pxat=max(1, expires_ms))

    @asynccontextmanager
    async def lock(self) -> AsyncIterator[None]:
        """Held by one client of any process while it renews the token (see TokenStore)."""
        lock = self._redis.lock(
            f"{self.key}:lock", timeout=self._lock_timeout, blocking_timeout=self._lock_wait
        )
        try:
            acquired = await lock.acquire()
        except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
            # As for a failing load/save: the client goes on with its own token, unlocked.
            logger.warning(
                "token store lock unavailable (%s); renewing unlocked", type(exc).__name__
            )
            yield
            return
        if not acquired:
            raise TimeoutError(
                f"waited {self._lock_wait:.0f}s for the token lock {self.key}:lock held by "
                "another process"
            )
        try:
            yield
        finally:
            try:
                await lock.release()
            except (LockError, RedisConnectionError, RedisTimeoutError, OSError) as exc:
                # Expired (a renewal longer than lock_timeout) or Redis gone: it lapses anyway.
                logger.warning("token store lock release failed (%s)", type(exc).__name__)

    async def load_login_guard(self) -> Any:
        """The lockout guard's document last saved (``None`` before that)."""
        raw = await self._redis.get(f"{self.key}:guard")
        return None if raw is None else json.loads(raw)

    async def save_login_guard(self, state: dict[str, Any]) -> None:
        """Keep the lockout guard's document (hashes and counts, no secret)."""
        await self._redis.set(f"{self.key}:guard", json.dumps(state, sort_keys=True))
