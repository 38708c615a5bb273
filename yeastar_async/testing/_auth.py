"""Token bookkeeping and the IP block of the FakePBX.

The real PBX issues an access token (30 min) and a refresh token (24 h) per login, caps the
number of live tokens per application, and puts an IP on its block list after 5 consecutive
failed logins. This module keeps that state; the HTTP layer (``_server.py``) maps it to answers.
"""

from __future__ import annotations

import secrets
import string
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Final, Literal

__all__ = ["RENEWAL_BEHAVIOURS", "IPGuard", "Renewal", "TokenBook", "TokenPair"]

#: What a new token does to the application's older access tokens (``FakePBX(renewal=...)``):
#: ``"refresh_revokes"`` a refresh kills the access token of the pair it renews, a login leaves
#: every other token alive; ``"kept"`` old access tokens stay valid until their own expiry,
#: whatever issued the new one; ``"revoked"`` every new token (login or refresh) revokes the
#: application's other live access tokens at once. The vendor's pages document none of these.
Renewal = Literal["refresh_revokes", "kept", "revoked"]
RENEWAL_BEHAVIOURS: Final[tuple[str, ...]] = ("refresh_revokes", "kept", "revoked")

_ALPHABET = string.ascii_letters + string.digits


def new_token() -> str:
    """A 32-character alphanumeric token, shaped like the PBX's."""
    return "".join(secrets.choice(_ALPHABET) for _ in range(32))


@dataclass
class TokenPair:
    """One login's tokens and their deadlines (clock seconds)."""

    access_token: str = field(repr=False)
    refresh_token: str = field(repr=False)
    access_expires_at: float
    refresh_expires_at: float
    access_alive: bool = True
    refresh_alive: bool = True


class TokenBook:
    """Issues, refreshes, revokes and expires tokens.

    ``on_access_dead`` is called with every access token that dies by any path other than
    its natural deadline passing (revocation, refresh, :meth:`expire_access`) so that sockets
    opened with it can be told; natural expiry is observed by polling :meth:`access_expires_at`.
    """

    def __init__(
        self,
        *,
        clock: Callable[[], float],
        access_ttl: float,
        refresh_ttl: float,
        on_access_dead: Callable[[set[str]], None] | None = None,
        renewal: Renewal = "refresh_revokes",
    ) -> None:
        if renewal not in RENEWAL_BEHAVIOURS:
            raise ValueError(
                f"renewal must be one of {', '.join(map(repr, RENEWAL_BEHAVIOURS))}, "
                f"got {renewal!r}"
            )
        self.renewal: Renewal = renewal
        #: Access tokens killed because a newer token was issued (``renewal`` behaviour), since
        #: the FakePBX last moved the count into its stats.
        self.revoked_by_renewal = 0
        self._clock = clock
        self.access_ttl = access_ttl
        self.refresh_ttl = refresh_ttl
        self._on_access_dead = on_access_dead
        self._by_access: dict[str, TokenPair] = {}
        self._by_refresh: dict[str, TokenPair] = {}
        self.issued: list[str] = []  # every token ever handed out, access and refresh

    # -- queries ---------------------------------------------------------------------------
    def access_live(self, token: str | None) -> bool:
        """Whether ``token`` is a live access token."""
        pair = self._by_access.get(token or "")
        return bool(pair and pair.access_alive and self._clock() < pair.access_expires_at)

    def access_expires_at(self, token: str) -> float | None:
        """The clock deadline of a live access token, else None."""
        pair = self._by_access.get(token)
        if pair is None or not pair.access_alive:
            return None
        return pair.access_expires_at

    def live_access_tokens(self) -> list[str]:
        """Every access token still alive, oldest first."""
        return [t for t in self._by_access if self.access_live(t)]

    def live_refresh_tokens(self) -> list[str]:
        """Every refresh token still alive, oldest first."""
        now = self._clock()
        return [
            t for t, p in self._by_refresh.items() if p.refresh_alive and now < p.refresh_expires_at
        ]

    # -- changes ---------------------------------------------------------------------------
    def issue(self) -> TokenPair:
        """A fresh pair of tokens (under ``renewal="revoked"``, the others' access tokens die)."""
        if self.renewal == "revoked":
            older = [self._by_access[t] for t in self.live_access_tokens()]
            self.revoked_by_renewal += len(older)
            self._kill(older)
        now = self._clock()
        pair = TokenPair(
            access_token=new_token(),
            refresh_token=new_token(),
            access_expires_at=now + self.access_ttl,
            refresh_expires_at=now + self.refresh_ttl,
        )
        self._by_access[pair.access_token] = pair
        self._by_refresh[pair.refresh_token] = pair
        self.issued += [pair.access_token, pair.refresh_token]
        self._prune(now)
        return pair

    def refresh(self, refresh_token: str) -> TokenPair | None:
        """Trade a live refresh token for a new pair; the old pair dies. None if rejected."""
        old = self._by_refresh.get(refresh_token)
        if old is None or not old.refresh_alive or self._clock() >= old.refresh_expires_at:
            return None
        old.refresh_alive = False
        if self.renewal == "refresh_revokes" and self.access_live(old.access_token):
            self.revoked_by_renewal += 1
            self._kill([old])
        return self.issue()

    def revoke(self, access_token: str) -> bool:
        """Revoke a live access token (``del_token``). False if it was not live."""
        if not self.access_live(access_token):
            return False
        self._kill([self._by_access[access_token]])
        return True

    def expire_access(self, notify: bool = True) -> int:
        """Kill every live access token (refresh tokens stay valid); returns how many died."""
        pairs = [self._by_access[t] for t in self.live_access_tokens()]
        self._kill(pairs, notify=notify)
        return len(pairs)

    def expire_refresh(self) -> int:
        """Kill every live refresh token (access tokens stay valid); returns how many died."""
        live = self.live_refresh_tokens()
        for token in live:
            self._by_refresh[token].refresh_alive = False
        return len(live)

    def _kill(self, pairs: Iterable[TokenPair], notify: bool = True) -> None:
        dead = set()
        for pair in pairs:
            if pair.access_alive:
                pair.access_alive = False
                dead.add(pair.access_token)
        if dead and notify and self._on_access_dead is not None:
            self._on_access_dead(dead)

    def _prune(self, now: float) -> None:
        # Forget pairs whose both tokens are dead so a long-running fake does not grow forever.
        for pair in list(self._by_refresh.values()):
            refresh_dead = not pair.refresh_alive or now >= pair.refresh_expires_at
            access_dead = not pair.access_alive or now >= pair.access_expires_at
            if refresh_dead and access_dead:
                self._by_refresh.pop(pair.refresh_token, None)
                self._by_access.pop(pair.access_token, None)


class IPGuard:
    """Counts consecutive failed logins per IP and blocks an IP after ``block_after`` of them."""

    def __init__(self, block_after: int) -> None:
        self.block_after = block_after
        self.failures: dict[str, int] = {}
        self.blocked: set[str] = set()

    def is_blocked(self, ip: str) -> bool:
        """Whether requests from ``ip`` are refused with 70004."""
        return ip in self.blocked

    def failed(self, ip: str) -> bool:
        """Record a failed login; True when this failure got the IP blocked."""
        self.failures[ip] = self.failures.get(ip, 0) + 1
        if self.block_after > 0 and self.failures[ip] >= self.block_after:
            self.blocked.add(ip)
            return True
        return False

    def succeeded(self, ip: str) -> None:
        """A good login resets the IP's counter."""
        self.failures.pop(ip, None)

    def block(self, ip: str) -> None:
        """Put ``ip`` on the block list."""
        self.blocked.add(ip)

    def unblock(self, ip: str | None = None) -> None:
        """Remove ``ip`` (every IP when None) from the block list and reset its counter."""
        if ip is None:
            self.blocked.clear()
            self.failures.clear()
        else:
            self.blocked.discard(ip)
            self.failures.pop(ip, None)
