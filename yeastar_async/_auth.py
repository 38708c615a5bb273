"""Token manager: get, refresh and revoke tokens, single-flight, with a lockout guard.

Access tokens live 30 minutes and refresh tokens 24 hours. The manager refreshes before expiry
(a margin of 5 minutes, scaled down for short lifetimes); N concurrent callers share one login or
one refresh; a rejected refresh falls back to one login.

The PBX puts the caller's IP on its block list after 5 consecutive failed logins, whichever
application, client or process sent them, so the manager never retries a login whose
credentials were rejected, and counts every login into the lockout guard of the PBX's address
before sending it (:mod:`._guard`): after 3 consecutive rejections of the same credentials, or 4
of any, no client tries again (:class:`~yeastar_async.errors.LockoutGuardError`). The count is
shared by the processes of the user through a state file or the token store
(:mod:`._guard_store`) and cleared by a successful login.

A link bound to a token (the event stream's WebSocket) asks for its successor ahead of time
with :meth:`TokenManager.rotate`: a second login that leaves the old token alive, so that the
new link is up before the old one goes (the vendor documents neither whether a refresh revokes
the old access token nor whether a login does; a second login is the step that still overlaps
if the PBX revokes on refresh, and the 8-token cap implies that logins coexist). The old token
is revoked with :meth:`TokenManager.retire` once its link is closed: at most two live tokens per
client (with a token store of the user's, which other clients may share, it is left to
expire). That login goes through the lockout guard like any other; its credentials just
worked.

The token cap (60002 on ``get_token``, about 8 live tokens per application) is no credential
failure: the manager raises :class:`~yeastar_async.errors.LimitExceededError` and waits before
the next attempt.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import inspect
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from ._guard import (
    MAX_REJECTED_LOGINS,
    GuardCount,
    LoginGuard,
    forget_login_guard,
    login_guard,
    pbx_key,
)
from ._guard_store import GuardState
from ._models import ApiResponse
from ._secrets import SecretMask
from .errors import (
    AuthenticationError,
    IPBlockedError,
    LimitExceededError,
    TransportError,
    YeastarError,
)

__all__ = [
    "MAX_REJECTED_LOGINS",
    "LoginGuard",
    "MemoryTokenStore",
    "TokenManager",
    "TokenSet",
    "TokenStore",
    "forget_login_guard",
    "login_guard",
]

logger = logging.getLogger("yeastar_async.auth")

T = TypeVar("T")


class _Sender(Protocol):
    async def send(
        self,
        method: str,
        endpoint: str,
        *,
        params: Mapping[str, str] | None = None,
        json: Any = None,
        response_type: type[T],
        timeout: float | None = None,
        token: str | None = None,
    ) -> T: ...


class _TokenAnswer(ApiResponse, kw_only=True):
    access_token: str = ""
    access_token_expire_time: float = 1800.0
    refresh_token: str = ""
    refresh_token_expire_time: float = 86400.0

    def __repr__(self) -> str:
        return "_TokenAnswer(<tokens hidden>)"


@dataclass(frozen=True, slots=True)
class TokenSet:
    """An access/refresh token pair with their absolute expiry times (``time.time()`` seconds).

    Its ``repr`` never shows the tokens.
    """

    access_token: str
    access_expires_at: float
    refresh_token: str
    refresh_expires_at: float
    #: Lifetime the PBX granted to the access token, used to scale the refresh margin.
    access_lifetime: float

    def __repr__(self) -> str:
        return (
            f"TokenSet(access_expires_at={self.access_expires_at:.0f}, "
            f"refresh_expires_at={self.refresh_expires_at:.0f})"
        )


class TokenStore(Protocol):
    """Where the current :class:`TokenSet` lives.

    The default keeps it in memory. Implement this protocol (e.g. over Redis or a file) to share
    tokens between processes, which keeps the application under the PBX's cap of about 8 live
    tokens; then pass ``revoke_on_close=False`` so one process closing does not revoke the token
    the others use.

    A store may also offer ``lock()``, returning an async context manager that only one client
    of the store holds at a time (a Redis lock, a file lock): the client holds it while it
    renews the token and looks at the store again first, so clients that find the token due at
    the same moment renew it once instead of each logging in (each login is one more live token).
    :class:`MemoryTokenStore` has one, for clients of one process sharing it.

    A store that fails (raises) does not stop the client: it logs a warning and goes on with the
    token it holds itself, saving it to the store again once the store works.

    A store may also keep the lockout guard's count of rejected logins, for processes that share
    it on several hosts: it offers ``load_login_guard()`` and ``save_login_guard(state)``
    (:class:`~yeastar_async._guard_store.GuardStateStore`; plain or async methods). ``state`` is
    a JSON-compatible ``dict`` with hashes and counts, no secret; ``load_login_guard()`` returns
    the last one saved, or ``None``. They are called under ``lock()`` when the store has one. If
    ``load_login_guard()`` raises or returns anything else, no login is sent (the count is
    unknown); a failing ``save_login_guard()`` is logged and the state file still counts.
    """

    async def load(self) -> TokenSet | None:
        """The stored token set, or ``None``."""
        ...

    async def save(self, tokens: TokenSet | None) -> None:
        """Replace the stored token set (``None`` clears it)."""
        ...


class MemoryTokenStore:
    """The default :class:`TokenStore`: one token set in memory."""

    def __init__(self) -> None:
        self._tokens: TokenSet | None = None
        self._lock: asyncio.Lock | None = None

    def lock(self) -> asyncio.Lock:
        """Held by a client while it renews the token (see :class:`TokenStore`)."""
        if self._lock is None:
            self._lock = asyncio.Lock()
        return self._lock

    @property
    def tokens(self) -> TokenSet | None:
        """The stored token set, or ``None`` (what :meth:`load` returns, without awaiting)."""
        return self._tokens

    async def load(self) -> TokenSet | None:
        """The stored token set, or ``None``."""
        return self._tokens

    async def save(self, tokens: TokenSet | None) -> None:
        """Replace the stored token set."""
        self._tokens = tokens

    def __repr__(self) -> str:
        return f"MemoryTokenStore(has_tokens={self._tokens is not None})"


class TokenManager:
    """Hands out valid access tokens for one application (client ID / secret) on one PBX.

    ``guard`` counts rejected logins. With ``pbx`` (the base URL) and no ``guard``, each login
    uses the process-wide :func:`login_guard` of the PBX's resolved address, as every client of
    it does; without either, a guard of this manager's own (for a manager used alone).
    ``guard_state`` says where the count persists (default: memory only).
    """

    def __init__(
        self,
        sender: _Sender,
        client_id: str,
        client_secret: str,
        *,
        store: TokenStore | None = None,
        refresh_margin: float = 300.0,
        max_credential_failures: int = 3,
        limit_retry_after: float = 60.0,
        revoke_timeout: float = 3.0,
        clock: Callable[[], float] = time.time,
        guard: LoginGuard | None = None,
        secrets: SecretMask | None = None,
        pbx: str | None = None,
        guard_state: GuardState | None = None,
    ) -> None:
        if not client_id or not isinstance(client_id, str):
            raise ValueError(
                "client_id must be a non-empty string (Integrations > API > Client ID)"
            )
        if not client_secret or not isinstance(client_secret, str):
            raise ValueError(
                "client_secret must be a non-empty string (Integrations > API > Client Secret)"
            )
        if refresh_margin < 0:
            raise ValueError(f"refresh_margin must be >= 0, got {refresh_margin!r}")
        if max_credential_failures < 1:
            raise ValueError(
                f"max_credential_failures must be >= 1, got {max_credential_failures!r}"
            )
        self._sender = sender
        self._client_id = client_id
        self._secret = client_secret
        #: Every secret this manager sees (the client secret, each token it holds or loads) is
        #: registered here, so that text built from server answers can mask it.
        self.secrets = secrets if secrets is not None else SecretMask()
        self.secrets.add(client_secret)
        self._store: TokenStore = store if store is not None else MemoryTokenStore()
        # A store given by the user may be shared: other clients' links may still use an old
        # token, so retire() leaves old tokens to expire (2 x refresh_margin later).
        self._shared_store = store is not None
        # The built-in store is in this process: current() may read it without awaiting.
        self._memory = self._store if type(self._store) is MemoryTokenStore else None
        self._margin = refresh_margin
        self._max_failures = max_credential_failures
        self._limit_retry_after = limit_retry_after
        self._revoke_timeout = revoke_timeout
        self._clock = clock
        self._guard = guard if guard is not None or pbx is not None else LoginGuard()
        self._pbx = pbx
        self._guard_state = guard_state if guard_state is not None else GuardState()
        self._credentials = hashlib.sha256(f"{client_id}\0{client_secret}".encode()).digest()
        self._login_not_before = 0.0
        self._pending: asyncio.Future[str] | None = None
        #: The client's own copy of the token set: what it goes on with if the store fails.
        self._last: TokenSet | None = None
        self._store_down = False
        self.logins = 0
        self.refreshes = 0
        #: Tokens revoked with ``del_token`` (:meth:`retire` and :meth:`revoke`).
        self.revocations = 0
        self._rotation: asyncio.Future[str] | None = None

    def __repr__(self) -> str:
        return (
            f"TokenManager(client_id={self._client_id!r}, "
            f"credential_failures={self._guard_now().rejections(self._credentials)})"
        )

    # -- public ----------------------------------------------------------------------------

    def current(self) -> str | None:
        """The access token when it is usable and readable without I/O, else ``None``.

        Only the built-in :class:`MemoryTokenStore` can be read that way; with another store,
        or a token due for renewal, this is ``None`` and :meth:`token` does the work.
        """
        tokens = self._memory.tokens if self._memory is not None else None
        if tokens is not None and self._usable(tokens):
            return tokens.access_token
        return None

    async def token(self) -> str:
        """A valid access token: the stored one, or a refreshed one, or a new login.

        Concurrent callers share one renewal. Raises :class:`AuthenticationError` for rejected
        credentials, :class:`LockoutGuardError` once the guard has tripped,
        :class:`IPBlockedError`, :class:`LimitExceededError` for the token cap, and
        :class:`TransportError` when the PBX cannot be reached.
        """
        current = await self._load()
        if current is not None and self._usable(current):
            return current.access_token
        if self._pending is None or self._pending.done():
            self._pending = asyncio.ensure_future(self._renew(current))
            self._pending.add_done_callback(_consume_exception)
        # shield: a caller that is cancelled must not cancel the renewal others wait for.
        return await asyncio.shield(self._pending)

    async def expired(self, token: str) -> None:
        """The PBX answered 10004 for ``token``: the next :meth:`token` renews it.

        A no-op when that token was already replaced (another caller renewed it meanwhile).
        """
        current = await self._load()
        if current is not None and current.access_token == token:
            await self._save(
                TokenSet(
                    access_token=current.access_token,
                    access_expires_at=0.0,
                    refresh_token=current.refresh_token,
                    refresh_expires_at=current.refresh_expires_at,
                    access_lifetime=current.access_lifetime,
                )
            )

    def expires_in(self) -> float | None:
        """Seconds left on the access token cached in memory (``None`` before the first login)."""
        current = self._last
        if current is None:
            return None
        return max(0.0, current.access_expires_at - self._clock())

    def rotation_due(self, token: str) -> float | None:
        """Seconds until a link bound to ``token`` should move to a new token (0: now).

        Twice the refresh margin before expiry: the successor is in place before the
        margin would make any caller renew it by a refresh. ``None`` when the token's expiry
        is unknown (it is not the one this manager holds in memory).
        """
        current = self._last
        if current is None or current.access_token != token:
            return None
        margin = min(self._margin, current.access_lifetime * 0.2)
        return max(0.0, current.access_expires_at - 2 * margin - self._clock())

    async def rotate(self, old: str) -> str:
        """A new access token for a link that still uses ``old``, leaving ``old`` alive.

        A second login (through the lockout guard); when the token was already replaced
        (another caller renewed it), that one. Falls back to the ordinary renewal (refresh)
        when the token cap (60002) refuses the login. Concurrent callers share one rotation.
        Raises what :meth:`token` raises. The caller revokes ``old`` with :meth:`retire` once
        it no longer uses it.
        """
        current = await self._load()
        if current is not None and current.access_token != old and self._usable(current):
            return current.access_token
        if self._rotation is None or self._rotation.done():
            self._rotation = asyncio.ensure_future(self._rotate(old))
            self._rotation.add_done_callback(_consume_exception)
        return await asyncio.shield(self._rotation)

    async def _rotate(self, old: str) -> str:
        lock = getattr(self._store, "lock", None)
        async with lock() if lock is not None else contextlib.nullcontext():
            latest = await self._load()
            if latest is not None and latest.access_token != old and self._usable(latest):
                return latest.access_token  # another client of the store rotated it
            try:
                return await self._login()
            except LimitExceededError:
                logger.info("a second login hit the token cap; refreshing instead")
                return await self._renew_unlocked(latest)

    async def retire(self, token: str) -> None:
        """Revoke ``token``, an older token a link no longer uses (best effort, bounded).

        A no-op for the token this manager currently hands out, and with a token store given
        by the user (shared with other clients, whose links may still use ``token``: it then
        expires on its own). Never raises; shielded.
        """
        current = self._last
        if self._shared_store or (current is not None and current.access_token == token):
            return
        await asyncio.shield(asyncio.ensure_future(self._send_revoke(token)))

    async def revoke(self) -> None:
        """Revoke the current access token (``del_token``), best effort.

        Shielded from cancellation and bounded by a short timeout; a failure is logged, never
        raised. The store is cleared either way. A login or refresh in flight is given half that
        timeout to finish first, so the token it brings is revoked too.
        """
        pending = self._pending
        if pending is not None and not pending.done():
            # A login or refresh in flight would leave a live token nobody revokes: give it
            # half the revocation's bound to finish, whatever its outcome.
            with contextlib.suppress(Exception, TimeoutError):
                await asyncio.wait_for(asyncio.shield(pending), self._revoke_timeout / 2)
        current = await self._load()
        await self._save(None)
        if current is None or current.access_expires_at <= self._clock():
            return
        # If the caller is cancelled, the revocation still finishes in the background.
        await asyncio.shield(asyncio.ensure_future(self._send_revoke(current.access_token)))

    # -- internals -------------------------------------------------------------------------

    def _usable(self, tokens: TokenSet) -> bool:
        # Refresh early: 5 minutes before expiry, but never more than a fifth of the lifetime.
        margin = min(self._margin, tokens.access_lifetime * 0.2)
        return tokens.access_expires_at - margin > self._clock()

    async def _load(self) -> TokenSet | None:
        """The store's token set; the client's own when the store fails."""
        if self._memory is not None:
            loaded = self._memory.tokens
        else:
            try:
                # A store with plain (not async) methods works too.
                answer: Any = self._store.load()
                loaded = await answer if inspect.isawaitable(answer) else answer
            except Exception as exc:
                self._store_failed("load", exc)
                return self._last
            self._store_works()
        if loaded is not None and loaded is not self._last:
            # A token another client of the store renewed is this client's secret too.
            self.secrets.add(loaded.access_token)
            self.secrets.add(loaded.refresh_token)
        return loaded

    async def _save(self, tokens: TokenSet | None) -> None:
        """Store ``tokens`` (kept by the client too, should the store fail)."""
        if tokens is not None:
            self.secrets.add(tokens.access_token)
            self.secrets.add(tokens.refresh_token)
        self._last = tokens
        try:
            saved = self._store.save(tokens)
            if inspect.isawaitable(saved):
                await saved
        except Exception as exc:
            self._store_failed("save", exc)
        else:
            self._store_works()

    def _store_failed(self, what: str, exc: Exception) -> None:
        # Warn once per outage: a store that is down fails on every request.
        level = logging.DEBUG if self._store_down else logging.WARNING
        self._store_down = True
        text = self.secrets(f"{type(exc).__name__}: {exc}")
        logger.log(
            level,
            "token store %s failed (%s); going on with this client's own token",
            what,
            text,
        )

    def _store_works(self) -> None:
        if self._store_down:
            self._store_down = False
            logger.info("token store works again")

    async def _renew(self, current: TokenSet | None) -> str:
        lock = getattr(self._store, "lock", None)
        if lock is None:
            return await self._renew_unlocked(current)
        async with lock():
            # Another client of the store may have renewed the token while this one waited.
            latest = await self._load()
            if latest is not None and self._usable(latest):
                self._last = latest
                return latest.access_token
            return await self._renew_unlocked(latest if latest is not None else current)

    async def _renew_unlocked(self, current: TokenSet | None) -> str:
        if (
            current is not None
            and current.refresh_token
            and (current.refresh_expires_at > self._clock())
        ):
            try:
                answer = await self._sender.send(
                    "POST",
                    "refresh_token",
                    json={"refresh_token": current.refresh_token},
                    response_type=_TokenAnswer,
                )
            except (TransportError, IPBlockedError):
                raise
            except YeastarError as exc:
                logger.info("refresh_token rejected (%s); logging in again", exc.errcode)
            else:
                self.refreshes += 1
                return await self._keep(answer)
        return await self._login()

    def _guard_now(self) -> LoginGuard:
        """The guard as known without I/O (the PBX's address as last resolved)."""
        if self._guard is not None:
            return self._guard
        assert self._pbx is not None
        return login_guard(self._pbx)

    async def login_guard(self) -> tuple[LoginGuard, GuardState]:
        """The lockout guard of this manager's PBX (its address resolved now), and its state."""
        if self._guard is not None:
            return self._guard, self._guard_state
        assert self._pbx is not None
        return login_guard(await pbx_key(self._pbx)), self._guard_state

    async def guard_count(self) -> GuardCount:
        """What the lockout guard counts for this PBX and these credentials (no login sent).

        Raises :class:`~yeastar_async._guard_store.GuardStateError` when the state is unusable.
        """
        guard, state = await self.login_guard()
        return await guard.count(self._credentials, state)

    async def _login(self) -> str:
        wait = self._login_not_before - self._clock()
        if wait > 0:
            raise LimitExceededError(
                f"get_token: the PBX's token cap was reached; not asking again for {wait:.0f} s. "
                "Revoke unused tokens (close other clients) or share tokens through a TokenStore",
                errcode=60002,
                errmsg="MAX LIMITATION EXCEEDED",
                endpoint="get_token",
            )
        guard, state = await self.login_guard()
        # Counted before it is sent: clients starting together cannot all pass the check.
        reservation = await guard.reserve(self._credentials, self._max_failures, state)
        self.logins += 1
        try:
            answer = await self._sender.send(
                "POST",
                "get_token",
                json={"username": self._client_id, "password": self._secret},
                response_type=_TokenAnswer,
            )
        except AuthenticationError as exc:
            await guard.refused(reservation)
            left = max(
                0,
                min(
                    self._max_failures - reservation.same,
                    MAX_REJECTED_LOGINS - reservation.in_a_row,
                ),
            )
            raise AuthenticationError(
                f"{exc} (rejected login {reservation.same} in a row with these credentials; "
                f"they are tried {left} more time(s) at most, counted {state.where()}; the PBX "
                "blocks the IP after 5 rejected logins in a row from anywhere)",
                errcode=exc.errcode,
                errmsg=exc.errmsg,
                endpoint=exc.endpoint,
                invalid_param_list=exc.invalid_param_list,
            ) from None
        except LimitExceededError as exc:
            await guard.release(reservation)
            self._login_not_before = self._clock() + self._limit_retry_after
            raise LimitExceededError(
                f"{exc}: the application holds too many live tokens (about 8 allowed). Close "
                "other clients (closing revokes their token), share tokens through a TokenStore, "
                "or wait for tokens to expire; next login attempt in "
                f"{self._limit_retry_after:.0f} s",
                errcode=exc.errcode,
                errmsg=exc.errmsg,
                endpoint=exc.endpoint,
            ) from None
        except Exception as exc:
            # No verdict on the credentials (no answer, IP blocked, API off): the guard decides
            # whether the PBX may have counted it.
            await guard.failed(reservation, exc)
            raise
        except BaseException:
            # Cancelled mid-login: the PBX may have counted it, so it stays counted.
            guard.rejected(reservation)
            raise
        await guard.accepted(reservation)
        return await self._keep(answer)

    async def _keep(self, answer: _TokenAnswer) -> str:
        if not answer.access_token:
            raise TransportError("the PBX granted a token but sent none", endpoint="get_token")
        now = self._clock()
        tokens = TokenSet(
            access_token=answer.access_token,
            access_expires_at=now + answer.access_token_expire_time,
            refresh_token=answer.refresh_token,
            refresh_expires_at=now + answer.refresh_token_expire_time,
            access_lifetime=float(answer.access_token_expire_time),
        )
        await self._save(tokens)
        return tokens.access_token

    async def _send_revoke(self, token: str) -> None:
        try:
            # One bound for the whole revocation, retries included: closing must stay quick.
            # Each attempt gets half of it, so an attempt's own timer never fires together with
            # the outer one (aiohttp would turn that cancellation into its own timeout error).
            async with asyncio.timeout(self._revoke_timeout):
                await self._sender.send(
                    "GET",
                    "del_token",
                    response_type=ApiResponse,
                    timeout=self._revoke_timeout / 2,
                    token=token,
                )
        except (YeastarError, OSError, TimeoutError, RuntimeError) as exc:
            # RuntimeError: the session is closed, or belongs to another event loop.
            logger.warning(
                "could not revoke an access token: %s",
                self.secrets(str(exc))
                if str(exc)
                else f"no answer within {self._revoke_timeout} s",
            )
        else:
            self.revocations += 1
            logger.debug("access token revoked")


def _consume_exception(future: asyncio.Future[Any]) -> None:
    # A renewal whose waiters were all cancelled must not log "exception was never retrieved".
    if not future.cancelled():
        future.exception()
