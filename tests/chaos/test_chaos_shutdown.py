"""Chaos at shutdown: closing the client while the stream backs off, while a handler is slow or
hangs, while a handshake or a login hangs, and while the socket is a black hole.

Issue 7, scenario 11. ``client.aclose()`` must return within ``shutdown_timeout`` (plus the
short revocation of the token), ``listen()`` must return normally, and nothing may be left
running (checked by the rig).
"""

from __future__ import annotations

import asyncio

from tests.chaos._rig import WAIT, Rig
from yeastar_async.events import CallStatusChanged, Connected
from yeastar_async.testing import FakePBX

SHUTDOWN = 0.3
#: aclose() = the stream's shutdown (bounded by shutdown_timeout) + del_token on a live fake.
LIMIT = SHUTDOWN + 0.5


async def _close_timed(rig: Rig) -> float:
    loop = asyncio.get_running_loop()
    started = loop.time()
    async with asyncio.timeout(WAIT):
        await rig.client.aclose()
    return loop.time() - started


async def _listen_returned(rig: Rig) -> None:
    assert rig.listener is not None
    async with asyncio.timeout(WAIT):
        await rig.listener  # returns normally: no exception, not cancelled


async def test_shutdown_during_backoff_is_prompt(pbx: FakePBX) -> None:
    """11. The stream sleeps 30 s between attempts when the client closes."""
    async with Rig(
        pbx, shutdown_timeout=SHUTDOWN, reconnect_delay_min=30.0, reconnect_delay_max=30.0
    ) as rig:
        pbx.reject_handshake(503)
        await rig.listen()
        await pbx.wait_until(lambda: pbx.stats.ws_rejected >= 1, WAIT, "a refused upgrade")
        assert await _close_timed(rig) < LIMIT
        await _listen_returned(rig)
        assert pbx.stats.ws_handshakes == 1


async def test_shutdown_during_a_slow_handler_is_bounded(pbx: FakePBX) -> None:
    """11. A handler sleeps far past shutdown_timeout with events queued behind it."""
    async with Rig(pbx, shutdown_timeout=SHUTDOWN) as rig:
        entered = asyncio.Event()
        cancelled = asyncio.Event()

        @rig.client.on(CallStatusChanged)
        async def slow(event: CallStatusChanged) -> None:
            entered.set()
            try:
                await asyncio.sleep(60)  # the slow work being interrupted
            except asyncio.CancelledError:
                cancelled.set()
                raise

        await rig.listen()
        await rig.next_link(Connected)
        assert await rig.emit(10) == 10
        async with asyncio.timeout(WAIT):
            await entered.wait()
        assert await _close_timed(rig) < LIMIT
        assert cancelled.is_set()
        await _listen_returned(rig)
        # The recorders registered before the slow handler saw the first event; the rest
        # waited behind it and were abandoned at the deadline, never handed on twice.
        for recorder in rig.recorders:
            assert recorder.seqs == [0]


async def test_shutdown_hands_queued_events_on_within_the_timeout(pbx: FakePBX) -> None:
    """11. A handler slow for a moment: what is queued still reaches it before aclose returns."""
    async with Rig(pbx, shutdown_timeout=SHUTDOWN) as rig:
        gate = asyncio.Event()

        @rig.client.on(CallStatusChanged)
        async def held(event: CallStatusChanged) -> None:
            await gate.wait()

        await rig.listen()
        await rig.next_link(Connected)
        assert await rig.emit(20) == 20
        await rig.changes.wait_until(lambda: rig.recorders[0].seqs == [0], WAIT, "event 0")
        closing = asyncio.create_task(rig.client.aclose())
        await asyncio.sleep(0)  # let the shutdown start, then release the handler
        gate.set()
        async with asyncio.timeout(WAIT):
            await closing
        rig.check_delivery()  # all 20, in order, exactly once


async def test_shutdown_while_the_handshake_hangs(pbx: FakePBX) -> None:
    """11. The PBX holds the WebSocket upgrade for 10 s."""
    async with Rig(pbx, shutdown_timeout=SHUTDOWN) as rig:
        pbx.delay_next(1, 10.0, endpoint="subscribe")
        await rig.listen()
        await pbx.wait_for_request("subscribe")
        assert await _close_timed(rig) < LIMIT
        await _listen_returned(rig)


async def test_shutdown_while_the_login_hangs(pbx: FakePBX) -> None:
    """11. The PBX holds get_token for 10 s."""
    async with Rig(pbx, shutdown_timeout=SHUTDOWN) as rig:
        pbx.delay_next(1, 10.0, endpoint="get_token")
        await rig.listen()
        await pbx.wait_for_request("get_token")
        # Closing also gives the login in flight half the revocation bound (3 s / 2) to bring
        # its token for revoking.
        assert await _close_timed(rig) < LIMIT + 1.5
        await _listen_returned(rig)


async def test_shutdown_on_a_black_hole(pbx: FakePBX) -> None:
    """11. The socket went silent: the close handshake is never answered."""
    async with Rig(pbx, shutdown_timeout=SHUTDOWN, heartbeat_timeout=5.0) as rig:
        await rig.listen()
        await rig.next_link(Connected)
        pbx.black_hole()
        assert await _close_timed(rig) < LIMIT
        await _listen_returned(rig)
