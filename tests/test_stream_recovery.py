"""How the stream recovers, or stops (issue 11, points 15 and 16).

- A subscribe the PBX refuses for a reason no reconnect can fix (10005 ACCESS DENIED and the
  like) ends ``listen()`` with its typed error; other codes keep reconnecting, each attempt
  logged.
- After a token renewal that succeeded, the next attempt goes at once instead of after a
  further backoff (a PBX back from a restart knows no old token); only once until a link comes
  up, so a PBX refusing every fresh token still gets the backoff.

Backoff decisions are asserted through the injected random source, not on wall time.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

import pytest

from tests.test_stream import WAIT, Harness, UpperBound
from yeastar_async.errors import (
    ERROR_TABLE,
    AccessDeniedError,
    ApiUnavailableError,
    ParameterError,
    PreconditionError,
    YeastarError,
)
from yeastar_async.events import Connected, Disconnected
from yeastar_async.events._stream import _PERMANENT
from yeastar_async.testing import FakePBX

#: The codes that end the stream when they answer a subscribe (besides the credential ones).
PERMANENT_CODES = {10001, 10002, 10003, 10005, 40001, 40002, 70084, 70106, 70120, 70123, 70132}


@pytest.fixture
async def pbx() -> AsyncIterator[FakePBX]:
    async with FakePBX(idle_timeout=0.5) as fake:
        yield fake


def test_the_permanent_set_follows_the_error_catalog() -> None:
    permanent = {code for code, (cls, _) in ERROR_TABLE.items() if issubclass(cls, _PERMANENT)}
    assert permanent == PERMANENT_CODES


@pytest.mark.parametrize(
    ("code", "cls"),
    [
        (10005, AccessDeniedError),
        (70084, AccessDeniedError),
        (10003, ApiUnavailableError),
        (70123, ApiUnavailableError),
        (40002, ParameterError),
        (70120, PreconditionError),
    ],
)
async def test_a_subscribe_refused_for_good_ends_listen_with_its_typed_error(
    pbx: FakePBX, code: int, cls: type[YeastarError]
) -> None:
    async with Harness(pbx) as h:
        h.record(30011)
        pbx.refuse_subscribe(code, ERROR_TABLE[code][1])
        async with asyncio.timeout(WAIT):
            with pytest.raises(cls) as caught:
                await h.listen()
        assert caught.value.errcode == code
        assert caught.value.endpoint == "subscribe"
        assert "topics sent: [30011]" in str(caught.value)
        assert h.stream.stats.connect_attempts == 1  # no reconnect storm


@pytest.mark.parametrize("code", [-2, -1, 2, 60002, 70082, 99999])
async def test_a_transient_refusal_keeps_reconnecting_and_logs_each_attempt(
    pbx: FakePBX, code: int, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="yeastar_async.events")
    async with Harness(pbx) as h:
        h.record(Connected, 30011)
        pbx.refuse_subscribe(code, "TRY LATER")
        h.listen()
        # A fourth link opens only after the third ended: three refusals at least.
        await pbx.wait_until(lambda: pbx.stats.ws_connects >= 4, WAIT, "3 refused subscribes")
        pbx.refuse_subscribe(None)
        assert isinstance(await h.next(Connected), Connected)
        refused = [
            r
            for r in caplog.records
            if f"subscribe rejected: errcode {code}" in r.getMessage()
            and "reconnecting in" in r.getMessage()
        ]
        assert len(refused) >= 3
        assert all(r.levelno == logging.WARNING for r in refused)


async def test_after_a_pbx_restart_the_renewed_token_reconnects_without_a_further_backoff(
    pbx: FakePBX,
) -> None:
    rng = UpperBound()
    async with Harness(pbx, rng=rng, healthy_after=30.0) as h:
        h.record(Connected, Disconnected, 30011)
        h.listen()
        assert (await h.next(Connected)).reconnect is False
        # A restart: every token forgotten, every socket gone.
        pbx.expire_tokens(notify_sockets=False)
        pbx.drop_connections()
        await h.next(Disconnected)
        assert (await h.next(Connected)).reconnect is True
        # One backoff for the lost link; the attempt that met the dead token (10004 on the
        # socket) renewed it and went again at once, with no second delay.
        assert len(rng.caps) == 1
        assert len(h.tokens.expired_calls) == 1
        assert pbx.stats.ws_connects == 3


async def test_a_pbx_refusing_every_fresh_token_still_gets_the_backoff(pbx: FakePBX) -> None:
    rng = UpperBound()
    async with Harness(pbx, rng=rng) as h:
        h.record(Connected, 30011)
        pbx.reject_handshake(401, count=3)  # the token refused, three times in a row
        h.listen()
        await h.next(Connected)
        # Attempt 1 renewed and retried at once; attempts 2 and 3 renewed too, but waited.
        assert len(h.tokens.expired_calls) == 3
        assert len(rng.caps) == 2
        assert pbx.stats.ws_handshakes == 4
