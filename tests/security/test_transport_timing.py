"""Red team, issue 11 points 12-14: time bounds and shutdown under a PBX that stops answering.

12. A call's ``timeout=`` bounds its wait for a token; the shared renewal goes on for others.
13. Calls queued for a request slot take the token current when their slot is granted.
14. Closing revokes the token even with every slot held by hung calls, and wakes a call
    sleeping in a retry backoff.
"""

from __future__ import annotations

import asyncio
import logging
import time

import pytest
from aiohttp import web

from tests._secrets import SecretWatch
from yeastar_async.errors import TransportError

from ._transport_rig import bounded, client_for, hostile

OK = {"errcode": 0, "errmsg": "SUCCESS"}


async def _noop() -> None:
    return None


@bounded()
async def test_timeout_bounds_the_wait_for_a_token(secrets_never_logged: SecretWatch) -> None:
    asked, answer = asyncio.Event(), asyncio.Event()
    async with hostile(secrets_never_logged) as pbx:

        async def slow_login(request: web.Request) -> web.Response:
            asked.set()
            await answer.wait()  # the PBX stopped answering, for now
            return pbx.grant()

        pbx.routes["get_token"] = slow_login
        async with client_for(pbx) as client:
            patient = asyncio.create_task(client.request("GET", "extension/list"))
            try:
                await asked.wait()
                begun = time.monotonic()
                with pytest.raises(TransportError, match=r"no access token within 0\.5 s") as info:
                    await client.request("POST", "call/accept_inbound", timeout=0.5)
                assert time.monotonic() - begun < 2.0
                assert info.value.sent is False
                assert pbx.hits("call/accept_inbound") == 0
            finally:
                answer.set()  # the renewal the impatient call gave up on serves the other
            assert await patient == OK
        assert pbx.hits("get_token") == 1


@bounded()
async def test_queued_calls_take_the_token_renewed_while_they_waited(
    secrets_never_logged: SecretWatch,
) -> None:
    queued = 20
    dead: set[str] = set()
    first_seen, go = asyncio.Event(), asyncio.Event()
    async with hostile(secrets_never_logged) as pbx:

        async def listing(request: web.Request) -> web.Response:
            token = request.query["access_token"]
            if not first_seen.is_set():
                first_seen.set()
                await go.wait()
            if token in dead:
                return web.json_response({"errcode": 10004, "errmsg": "TOKEN EXPIRED"})
            return web.json_response(OK)

        pbx.routes["extension/list"] = listing
        async with client_for(pbx, max_concurrency=1) as client:
            await client.login()
            first_token = pbx.issued[0]
            holder = asyncio.create_task(client.request("GET", "extension/list"))
            await first_seen.wait()  # it holds the only slot
            waiting = [
                asyncio.create_task(client.request("GET", "extension/list")) for _ in range(queued)
            ]
            # Tasks start in creation order: once a later one has run, each queued call has
            # taken its first step, which ends waiting for a slot.
            await asyncio.create_task(_noop())
            assert len(client._transport._slots.waiters) == queued
            dead.add(first_token)  # the token expires while they queue ...
            go.set()  # ... and the holder's answer says so
            results = await asyncio.gather(holder, *waiting)
        assert results == [OK] * (queued + 1)
        sent_dead = sum(1 for path, token in pbx.seen if path == "extension/list" and token in dead)
        assert sent_dead == 1  # the holder's; none of the queued calls went out with it
        assert pbx.hits("refresh_token") == 1


@bounded()
async def test_close_revokes_the_token_with_every_slot_held_by_hung_calls(
    secrets_never_logged: SecretWatch,
) -> None:
    hung, never = asyncio.Event(), asyncio.Event()
    async with hostile(secrets_never_logged) as pbx:

        async def hang(request: web.Request) -> web.Response:
            if pbx.hits("extension/list") == 2:
                hung.set()
            await never.wait()
            return web.json_response(OK)

        pbx.routes["extension/list"] = hang
        client = client_for(pbx, max_concurrency=2)
        await client.login()
        calls = [asyncio.create_task(client.request("GET", "extension/list")) for _ in range(2)]
        try:
            await hung.wait()
            begun = time.monotonic()
            await client.aclose()
            assert time.monotonic() - begun < 2.0
            assert pbx.revoked == [pbx.issued[0]]
            outcomes = await asyncio.gather(*calls, return_exceptions=True)
            assert all(isinstance(o, Exception) for o in outcomes)
        finally:
            never.set()
            await client.aclose()


class _RetryLogged(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.event = asyncio.Event()

    def emit(self, record: logging.LogRecord) -> None:
        if "retry 1 of" in record.getMessage():
            self.event.set()


@bounded()
async def test_close_wakes_a_call_sleeping_in_a_retry_backoff(
    secrets_never_logged: SecretWatch,
) -> None:
    async def busy(request: web.Request) -> web.Response:
        return web.Response(status=503, text="busy")

    logged = _RetryLogged()
    http_log = logging.getLogger("yeastar_async.http")
    http_log.addHandler(logged)
    try:
        async with hostile(secrets_never_logged) as pbx:
            pbx.routes["extension/list"] = busy
            client = client_for(pbx, retries=2, retry_backoff=30.0, retry_backoff_max=30.0)
            call = asyncio.create_task(client.request("GET", "extension/list"))
            await logged.event.wait()  # it now sleeps 30 s before the retry
            await client.aclose()
            async with asyncio.timeout(1.0):
                with pytest.raises(RuntimeError, match="closed"):
                    await call
            assert pbx.hits("extension/list") == 1
    finally:
        http_log.removeHandler(logged)


@bounded()
async def test_a_retry_after_a_backoff_takes_the_token_renewed_meanwhile(
    secrets_never_logged: SecretWatch,
) -> None:
    dead: set[str] = set()
    first_seen, go = asyncio.Event(), asyncio.Event()
    async with hostile(secrets_never_logged) as pbx:

        async def flaky(request: web.Request) -> web.Response:
            token = request.query["access_token"]
            if not first_seen.is_set():
                first_seen.set()
                await go.wait()
                return web.Response(status=503, text="busy")
            if token in dead:
                return web.json_response({"errcode": 10004, "errmsg": "TOKEN EXPIRED"})
            return web.json_response(OK)

        pbx.routes["extension/list"] = flaky
        async with client_for(pbx, retries=1, retry_backoff=0.01, retry_backoff_max=0.01) as client:
            await client.login()
            first = asyncio.create_task(client.request("GET", "extension/list"))
            await first_seen.wait()
            dead.add(pbx.issued[0])
            # Another call learns of the expiry and renews the token ...
            assert await client.request("GET", "extension/list") == OK
            go.set()  # ... while the first one's attempt fails and it backs off
            assert await first == OK
        dead_sent = [t for path, t in pbx.seen if path == "extension/list" and t in dead]
        assert len(dead_sent) == 2  # the first attempt and the other call's; not the retry
