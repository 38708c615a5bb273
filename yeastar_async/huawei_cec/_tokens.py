"""The CEC access token: fetched with ``tokenByAkSk``, renewed before it expires, one fetch at
a time however many calls need it.

``tokenByAkSk`` has no refresh token: a new token is simply fetched again. Its answer says when
the token was made (``CreateTime``, unix seconds on the CEC's clock) and for how long it lives
(``Expires``, seconds): it is renewed :func:`renewal_margin` seconds before
``CreateTime + Expires``. A ``CreateTime`` more than :data:`MAX_CLOCK_SKEW` seconds away from
the local clock is taken as clock skew, not as the token's age, and the lifetime is then counted
from when the request was sent: a CEC whose clock runs behind must not make every call fetch a
token.

No lockout guard (unlike the Yeastar and OpenVox clients, :mod:`yeastar_async._guard`): Huawei
documents no lock of an app key or a caller IP after rejected ``tokenByAkSk`` calls (its pages
list no error bodies for them at all), so there is no limit to stay under. A rejected fetch is
not retried by itself either: each failing call costs one fetch.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

from .._secrets import SecretMask
from ._models import _Token

__all__ = ["MAX_CLOCK_SKEW", "TokenKeeper", "renewal_margin"]

logger = logging.getLogger("yeastar_async.cec")

#: Seconds a ``CreateTime`` may differ from the local clock and still be read as the token's age.
MAX_CLOCK_SKEW = 300.0
_MARGIN_MAX = 60.0


def renewal_margin(lifetime: float) -> float:
    """Seconds before expiry a token is renewed: a tenth of its lifetime, at most a minute."""
    return min(_MARGIN_MAX, lifetime / 10)


class TokenKeeper:
    """Holds one client's token; :meth:`token` renews it when needed, single-flight.

    Args:
        fetch: asks ``tokenByAkSk`` for a new token.
        ttl: the lifetime asked for (``X-Token-Expire``), used when the answer has no
            ``Expires``.
        clock: the wall clock, in unix seconds (``time.time``); the one ``CreateTime`` is
            compared with.
        mask: every token is added to it as soon as it arrives.
    """

    def __init__(
        self,
        fetch: Callable[[], Awaitable[_Token]],
        *,
        ttl: float,
        clock: Callable[[], float],
        mask: SecretMask,
    ) -> None:
        self._fetch = fetch
        self._ttl = ttl
        self._clock = clock
        self._mask = mask
        self._token: str | None = None
        self._renew_at = 0.0
        self._flight: asyncio.Task[str] | None = None

    def __repr__(self) -> str:
        state = "a token" if self._token is not None else "no token"
        return f"<TokenKeeper holding {state}>"

    def current(self) -> str | None:
        """The token, if it is not due for renewal yet; no I/O."""
        if self._token is not None and self._clock() < self._renew_at:
            return self._token
        return None

    async def token(self) -> str:
        """A token that is not due for renewal: the one held, or a new one.

        Calls arriving while a fetch runs wait for that fetch and share its outcome (its token,
        or its error); a caller cancelled meanwhile leaves the fetch running for the others.
        """
        held = self.current()
        if held is not None:
            return held
        flight = self._flight
        if flight is None:
            flight = self._flight = asyncio.create_task(self._renew())
            flight.add_done_callback(self._landed)
        return await asyncio.shield(flight)

    def invalidate(self, token: str) -> None:
        """The CEC refused ``token`` (401/403): the next :meth:`token` fetches another. A token
        renewed since (by a concurrent call) is kept."""
        if self._token == token:
            self._token = None

    async def aclose(self) -> None:
        """Forget the token and stop a fetch under way."""
        self._token = None
        flight, self._flight = self._flight, None
        if flight is not None and not flight.done():
            flight.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await flight

    def _landed(self, flight: asyncio.Task[str]) -> None:
        if self._flight is flight:
            self._flight = None
        if not flight.cancelled():
            flight.exception()  # retrieved: callers all gone is no "never retrieved" warning

    async def _renew(self) -> str:
        sent = self._clock()
        answer = await self._fetch()
        self._mask.add(answer.access_token)
        lifetime = answer.expires if answer.expires and answer.expires > 0 else self._ttl
        created = answer.create_time
        if created is not None and created > 1e11:
            created /= 1000  # milliseconds, not the documented seconds
        if created is None or abs(created - sent) > MAX_CLOCK_SKEW:
            if created is not None:
                logger.warning(
                    "tokenByAkSk: CreateTime is %.0f s away from the local clock; counting the "
                    "token's %.0f s from the request instead",
                    created - sent,
                    lifetime,
                )
            created = sent
        self._token = answer.access_token
        # At least half its lifetime from the request: a token already old on arrival (an
        # ageing CEC clock, a tiny Expires) must not make every call fetch another.
        self._renew_at = max(created + lifetime - renewal_margin(lifetime), sent + lifetime / 2)
        logger.debug("tokenByAkSk: new token, valid for %.0f s", created + lifetime - sent)
        return answer.access_token
