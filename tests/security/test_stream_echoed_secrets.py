"""Secrets a server echoes back never reach stream texts (issue 11, point 2).

The PBX, or a proxy in front of it, may echo the access token in a close reason, an error
frame's ``errmsg``, or a frame that is not an event at all. ``Disconnected.reason``, log records
and the errors ``listen()`` raises mask the client's literal secrets (the client's SecretMask).
The autouse ``secrets_never_logged`` fixture checks every log record as well.
"""

from __future__ import annotations

import asyncio
import json
import logging

import pytest

from tests.test_stream import FAST, WAIT, emit_calls
from yeastar_async import YeastarClient
from yeastar_async.errors import AccessDeniedError
from yeastar_async.events import CallStatusChanged, Connected, Disconnected
from yeastar_async.testing import FakePBX

OPTIONS = {
    "heartbeat_interval": FAST["heartbeat_interval"],
    "heartbeat_timeout": FAST["heartbeat_timeout"],
    "reconnect_delay_min": FAST["reconnect_delay_min"],
    "reconnect_delay_max": FAST["reconnect_delay_max"],
}


def _chain_texts(exc: BaseException) -> str:
    texts = []
    seen: BaseException | None = exc
    while seen is not None:
        texts.append(f"{seen} {seen.args!r} {vars(seen)!r}")
        seen = seen.__cause__ or seen.__context__
    return "\n".join(texts)


async def test_echoed_token_is_masked_in_close_reason_error_frames_and_logs(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    async with (
        FakePBX(idle_timeout=0.5) as pbx,
        YeastarClient(pbx.base_url, pbx.client_id, pbx.client_secret, **OPTIONS) as client,
    ):
        seen: asyncio.Queue[object] = asyncio.Queue()

        async def record(event: object) -> None:
            seen.put_nowait(event)

        for target in (Connected, Disconnected, CallStatusChanged):
            client.on(target)(record)
        listener = asyncio.create_task(client.listen())
        try:
            async with asyncio.timeout(WAIT):
                assert isinstance(await seen.get(), Connected)
                conn = pbx.sockets[0]
                token = conn.token
                assert token
                # An error frame and a frame that is no event, both echoing the token.
                echo = {"errcode": 40002, "errmsg": f"PARAMETER ERROR near {token}"}
                await pbx.push_raw(json.dumps(echo))
                await pbx.push_raw(json.dumps({"no_type": token, "access": token}))
                await emit_calls(pbx, "after")
                assert isinstance(await seen.get(), CallStatusChanged)
                # A close reason echoing it.
                await conn.ws.close(code=4000, message=f"bye {token}".encode())
                lost = await seen.get()
                assert isinstance(lost, Disconnected)
                assert token not in lost.reason
                assert "***" in lost.reason
                assert isinstance(await seen.get(), Connected)
        finally:
            await client.aclose()
            await asyncio.wait({listener}, timeout=WAIT)
        texts = "\n".join(r.getMessage() for r in caplog.records)
        assert "PARAMETER ERROR near ***" in texts
        assert "malformed frame" in texts
        assert token not in texts


async def test_a_refused_subscribe_echoing_the_token_raises_it_masked() -> None:
    async with (
        FakePBX() as pbx,
        YeastarClient(pbx.base_url, pbx.client_id, pbx.client_secret, **OPTIONS) as client,
    ):
        connected = asyncio.Event()

        async def up(event: Connected) -> None:
            connected.set()

        client.on(30011)(_ignore)
        client.on(Connected)(up)
        listener = asyncio.create_task(client.listen())
        async with asyncio.timeout(WAIT):
            await connected.wait()
        token = pbx.sockets[0].token
        assert token
        # The same token is live: the next link's subscribe is refused with it echoed.
        pbx.refuse_subscribe(10005, f"ACCESS DENIED for {token}")
        pbx.drop_connections()
        async with asyncio.timeout(WAIT):
            with pytest.raises(AccessDeniedError) as caught:
                await listener
        assert token not in _chain_texts(caught.value)


async def _ignore(event: object) -> None:
    return None
