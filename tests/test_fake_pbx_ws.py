"""FakePBX WebSocket: ack, heartbeat, idle drop, replace-on-subscribe, emit and the faults.

Raw aiohttp / websockets clients over real loopback sockets.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
import websockets
from websockets.asyncio.client import connect

from yeastar_async.testing import FakePBX

# These raw websockets clients put the token in the URL, which websockets logs at DEBUG; keep
# their records away from the suite-wide check that no log line holds a token.
RAW_WS_LOG = logging.getLogger("tests.raw_websocket")
RAW_WS_LOG.propagate = False

ACK = '{"errcode":0,"errmsg":"SUCCESS"}'
EXPIRED = '{"errcode":10004,"errmsg":"TOKEN EXPIRED"}'


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


async def login(pbx: FakePBX, session: aiohttp.ClientSession) -> dict[str, Any]:
    async with session.post(
        pbx.base_url + "/openapi/v1.0/get_token",
        json={"username": pbx.client_id, "password": pbx.client_secret},
    ) as resp:
        body: dict[str, Any] = await resp.json()
    assert body["errcode"] == 0
    return body


async def open_ws(
    pbx: FakePBX, session: aiohttp.ClientSession, token: str | None = None
) -> aiohttp.ClientWebSocketResponse:
    if token is None:
        token = (await login(pbx, session))["access_token"]
    return await session.ws_connect(f"{pbx.ws_url}?access_token={token}")


async def text(ws: aiohttp.ClientWebSocketResponse, timeout: float = 2.0) -> str:
    msg = await ws.receive(timeout=timeout)
    assert msg.type == aiohttp.WSMsgType.TEXT, msg
    assert isinstance(msg.data, str)
    return msg.data


async def subscribe(ws: aiohttp.ClientWebSocketResponse, *topics: int) -> None:
    await ws.send_str(json.dumps({"topic_list": list(topics)}))
    assert await text(ws) == ACK


async def closed(ws: aiohttp.ClientWebSocketResponse, timeout: float = 2.0) -> aiohttp.WSMessage:
    msg = await ws.receive(timeout=timeout)
    assert msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED), msg
    return msg


async def silent(ws: aiohttp.ClientWebSocketResponse, within: float = 0.15) -> bool:
    """True when nothing arrives within ``within`` seconds (checks that the fake stays mute)."""
    try:
        await ws.receive(timeout=within)
    except TimeoutError:
        return True
    return False


async def test_subscribe_ack_and_heartbeat(session: aiohttp.ClientSession) -> None:
    async with FakePBX() as pbx:
        ws = await open_ws(pbx, session)
        await subscribe(ws, 30011, 30012)
        await ws.send_str("heartbeat")
        assert await text(ws) == "heartbeat response"
        assert pbx.stats.heartbeats == 1
        assert pbx.stats.subscriptions == [[30011, 30012]]
        (sock,) = pbx.sockets
        assert sock.topics == {30011, 30012}
        assert sock.heartbeats == 1
        await ws.close()
        await pbx.wait_for_disconnect()


async def test_subscribe_replaces_the_set(session: aiohttp.ClientSession) -> None:
    async with FakePBX() as pbx:
        ws = await open_ws(pbx, session)
        await subscribe(ws, 30011, 30012)
        await subscribe(ws, 30012)
        assert await pbx.emit(30011, {"call_id": "1"}) == 0
        assert await pbx.emit(30012, {"call_id": "2"}) == 1
        assert json.loads(await text(ws))["type"] == 30012
        await subscribe(ws)  # an empty list silently subscribes to nothing
        assert await pbx.emit(30012, {"call_id": "3"}) == 0
        assert pbx.stats.subscriptions == [[30011, 30012], [30012], []]
        await ws.close()


async def test_emit_frame_shapes(session: aiohttp.ClientSession) -> None:
    async with FakePBX() as pbx:
        ws = await open_ws(pbx, session)
        await subscribe(ws, 30011, 30022, 30025)
        payload = {"call_id": "1702287660.000012", "members": []}
        assert await pbx.emit(30011, payload) == 1
        frame = json.loads(await text(ws))
        assert frame["type"] == 30011
        assert frame["sn"] == "3631A2124XXX"
        assert isinstance(frame["msg"], str)
        assert json.loads(frame["msg"]) == payload
        await pbx.emit(30011, payload, msg_as="object", sn="SN2")
        assert json.loads(await text(ws)) == {"type": 30011, "sn": "SN2", "msg": payload}
        await pbx.emit(30011, payload, sn=None)
        assert "sn" not in json.loads(await text(ws))
        await pbx.emit(30022, {"action": "UPDATE"})
        frame = json.loads(await text(ws))
        assert "sn" not in frame
        assert isinstance(frame["msg"], str)
        await pbx.emit(30025, {"queue_number": "6400"})
        assert json.loads(await text(ws)) == {"type": 30025, "msg": {"queue_number": "6400"}}
        await pbx.emit(30011, '{"raw":true}')
        assert json.loads(await text(ws))["msg"] == '{"raw":true}'
        assert pbx.stats.events_sent == 6
        with pytest.raises(ValueError, match="msg_as"):
            await pbx.emit(30011, payload, msg_as="bytes")
        assert pbx.event_frame(30026, {"a": 1}) == '{"type":30026,"msg":{"a":1}}'
        assert pbx.example_event(30009) == {"extension": "2005", "status": "business_trip"}
        await ws.close()


async def test_emit_reaches_only_subscribed_sockets(session: aiohttp.ClientSession) -> None:
    async with FakePBX() as pbx:
        a = await open_ws(pbx, session)
        b = await open_ws(pbx, session)
        await subscribe(a, 30011)
        await subscribe(b, 30012)
        assert await pbx.emit(30011, {"n": 1}) == 1
        assert json.loads(await text(a))["type"] == 30011
        assert await pbx.push_raw("anything") == 2
        assert await text(a) == "anything"
        assert await text(b) == "anything"
        await a.close()
        await b.close()


async def test_a_burst_arrives_complete_and_in_order(session: aiohttp.ClientSession) -> None:
    async with FakePBX() as pbx:
        ws = await open_ws(pbx, session)
        await subscribe(ws, 30012)
        for i in range(5000):
            await pbx.emit(30012, {"n": i})
        got = [json.loads(json.loads(await text(ws))["msg"])["n"] for _ in range(5000)]
        assert got == list(range(5000))
        await ws.close()


async def test_idle_socket_is_dropped(session: aiohttp.ClientSession) -> None:
    async with FakePBX(idle_timeout=0.1) as pbx:
        ws = await open_ws(pbx, session)
        started = time.monotonic()
        msg = await closed(ws)
        assert msg.type == aiohttp.WSMsgType.CLOSE
        assert msg.extra == "idle timeout"
        assert time.monotonic() - started >= 0.09
        await ws.close()


async def test_heartbeats_keep_an_idle_socket_open(session: aiohttp.ClientSession) -> None:
    async with FakePBX(idle_timeout=0.25) as pbx:
        ws = await open_ws(pbx, session)
        await subscribe(ws, 30011)
        deadline = time.monotonic() + 0.6  # more than two idle periods
        while time.monotonic() < deadline:
            await ws.send_str("heartbeat")
            assert await text(ws) == "heartbeat response"
            await asyncio.sleep(0.05)  # a client's heartbeat interval: nothing to await here
        assert len(pbx.sockets) == 1
        assert await pbx.emit(30011, {}) == 1
        await ws.close()


@pytest.mark.parametrize("counts", [False, True])
async def test_protocol_pings_count_only_when_asked(
    session: aiohttp.ClientSession, counts: bool
) -> None:
    async with FakePBX(idle_timeout=0.3, idle_counts_pings=counts) as pbx:
        token = (await login(pbx, session))["access_token"]
        ws = await session.ws_connect(f"{pbx.ws_url}?access_token={token}", autoping=False)
        kinds = []
        for _ in range(8):
            with contextlib.suppress(aiohttp.ClientConnectionResetError):
                await ws.ping()  # may race with the server's idle close
            msg = await ws.receive(timeout=1)
            kinds.append(msg.type)
            if msg.type != aiohttp.WSMsgType.PONG:
                break
            await asyncio.sleep(0.05)  # pacing: 0.4 s of pings, beyond the idle timer
        if counts:
            assert kinds == [aiohttp.WSMsgType.PONG] * 8
            assert len(pbx.sockets) == 1
        else:
            assert kinds[-1] == aiohttp.WSMsgType.CLOSE
            assert msg.extra == "idle timeout"
        await ws.close()


async def test_invalid_token_gets_10004_then_close(session: aiohttp.ClientSession) -> None:
    async with FakePBX() as pbx:
        ws = await open_ws(pbx, session, token="bogus")
        assert await text(ws) == EXPIRED
        await closed(ws)
        await ws.close()
        assert pbx.stats.ws_connects == 1
        assert pbx.stats.token_rejections == 1


async def test_blocked_ip_gets_70004_then_close(session: aiohttp.ClientSession) -> None:
    async with FakePBX() as pbx:
        token = (await login(pbx, session))["access_token"]
        pbx.block_ip()
        ws = await open_ws(pbx, session, token=token)
        assert json.loads(await text(ws)) == {"errcode": 70004, "errmsg": "ACCOUNT IP BLOCKED"}
        await closed(ws)
        await ws.close()


async def test_bad_subscribe_messages(session: aiohttp.ClientSession) -> None:
    async with FakePBX() as pbx:
        ws = await open_ws(pbx, session)
        await ws.send_str("not json")
        assert json.loads(await text(ws))["errcode"] == 40001
        await ws.send_str('{"topics": [30011]}')
        assert json.loads(await text(ws))["errcode"] == 40002
        await ws.send_str('{"topic_list": ["30011", 30012]}')  # digit strings are accepted
        assert await text(ws) == ACK
        assert pbx.sockets[0].topics == {30011, 30012}
        await ws.close()


async def test_drop_connections_sends_no_close_frame() -> None:
    async with FakePBX() as pbx:
        async with aiohttp.ClientSession() as session:
            token = (await login(pbx, session))["access_token"]
        async with connect(f"{pbx.ws_url}?access_token={token}", logger=RAW_WS_LOG) as ws:
            await ws.send('{"topic_list":[30011]}')
            assert await ws.recv() == ACK
            assert pbx.drop_connections() == 1
            with pytest.raises(websockets.ConnectionClosedError) as info:
                await ws.recv()
            assert info.value.rcvd is None  # no close frame from the server
        await pbx.wait_for_disconnect()


async def test_a_dropped_socket_stops_counting_at_once(session: aiohttp.ClientSession) -> None:
    """drop_connections() takes the sockets out of the open and subscribed sets right away,
    not when their server tasks end: a wait for the next subscription really waits for it."""
    async with FakePBX() as pbx:
        token = (await login(pbx, session))["access_token"]
        first = await open_ws(pbx, session, token)
        await subscribe(first, 30011)
        dropped = await pbx.wait_for_subscription([30011])
        assert pbx.drop_connections() == 1
        # Same tick as the drop: the server's reader task has not run yet.
        assert dropped.closed
        assert pbx.sockets == []
        with pytest.raises(TimeoutError, match="subscription"):
            await pbx.wait_for_subscription([30011], timeout=0.05)
        assert await pbx.emit(30011, {"n": 1}) == 0
        second = await open_ws(pbx, session, token)
        await subscribe(second, 30011)
        fresh = await pbx.wait_for_subscription([30011])
        assert fresh is not dropped
        assert fresh.id == dropped.id + 1
        assert pbx.drop_connections() == 1
        assert pbx.drop_connections() == 0  # already gone: not dropped twice
        await closed(first)
        await closed(second)
        await pbx.wait_for_disconnect()


async def test_black_hole_is_silent_until_lifted(session: aiohttp.ClientSession) -> None:
    async with FakePBX(idle_timeout=0.1) as pbx:
        ws = await open_ws(pbx, session)
        await subscribe(ws, 30011)
        pbx.black_hole()
        await ws.send_str("heartbeat")
        await ws.send_str('{"topic_list":[30012]}')
        assert await pbx.emit(30011, {"x": 1}) == 0
        assert await silent(ws, 0.3)  # no reply, no event, and no idle drop either
        assert pbx.stats.heartbeats == 1
        assert len(pbx.sockets) == 1
        pbx.idle_timeout = 30  # the short timer proved its point; no race with the reply now
        pbx.black_hole(False)
        await ws.send_str("heartbeat")
        assert await text(ws) == "heartbeat response"
        await ws.close()


async def test_new_handshakes_complete_into_a_black_hole(session: aiohttp.ClientSession) -> None:
    async with FakePBX() as pbx:
        token = (await login(pbx, session))["access_token"]
        pbx.black_hole()
        ws = await open_ws(pbx, session, token=token)
        await ws.send_str('{"topic_list":[30011]}')
        assert await silent(ws)
        assert pbx.stats.ws_connects == 1
        await ws.close()


async def test_stop_heartbeat_replies_keeps_events(session: aiohttp.ClientSession) -> None:
    async with FakePBX() as pbx:
        ws = await open_ws(pbx, session)
        await subscribe(ws, 30011)
        pbx.stop_heartbeat_replies()
        await ws.send_str("heartbeat")
        await pbx.wait_for_heartbeats(1)
        assert await pbx.emit(30011, {"n": 1}) == 1
        assert json.loads(await text(ws))["type"] == 30011  # the event, no heartbeat response
        pbx.stop_heartbeat_replies(False)
        await ws.send_str("heartbeat")
        assert await text(ws) == "heartbeat response"
        await ws.close()


async def test_push_and_close(session: aiohttp.ClientSession) -> None:
    async with FakePBX() as pbx:
        ws = await open_ws(pbx, session)
        assert await pbx.push_and_close(EXPIRED) == 1
        assert await text(ws) == EXPIRED
        msg = await closed(ws)
        assert msg.data == 1000
        await ws.close()


async def test_reject_handshake_for_a_count(session: aiohttp.ClientSession) -> None:
    async with FakePBX() as pbx:
        token = (await login(pbx, session))["access_token"]
        pbx.reject_handshake(503, count=2)
        for _ in range(2):
            with pytest.raises(aiohttp.WSServerHandshakeError) as info:
                await open_ws(pbx, session, token=token)
            assert info.value.status == 503
        ws = await open_ws(pbx, session, token=token)
        await subscribe(ws, 30011)
        assert pbx.stats.ws_handshakes == 3
        assert pbx.stats.ws_rejected == 2
        assert pbx.stats.ws_connects == 1
        assert [r.status for r in pbx.requests_for("subscribe")] == [503, 503, 101]
        await ws.close()


async def test_reject_handshake_until_cleared(session: aiohttp.ClientSession) -> None:
    async with FakePBX() as pbx:
        token = (await login(pbx, session))["access_token"]
        pbx.reject_handshake(401)
        for _ in range(3):
            with pytest.raises(aiohttp.WSServerHandshakeError):
                await open_ws(pbx, session, token=token)
        pbx.reject_handshake(None)
        ws = await open_ws(pbx, session, token=token)
        await ws.close()


async def test_accept_then_close(session: aiohttp.ClientSession) -> None:
    async with FakePBX() as pbx:
        token = (await login(pbx, session))["access_token"]
        pbx.accept_then_close(2)
        for _ in range(2):
            ws = await open_ws(pbx, session, token=token)
            await closed(ws)
            await ws.close()
        ws = await open_ws(pbx, session, token=token)
        await subscribe(ws, 30011)
        assert pbx.stats.ws_connects == 3
        await ws.close()


async def test_unacknowledged_subscribe_still_applies(session: aiohttp.ClientSession) -> None:
    async with FakePBX() as pbx:
        ws = await open_ws(pbx, session)
        pbx.ack_subscribe(False)
        await ws.send_str('{"topic_list":[30011]}')
        await pbx.wait_for_subscription([30011])
        assert await pbx.emit(30011, {"n": 1}) == 1
        assert json.loads(await text(ws))["type"] == 30011  # the event came, no ack before it
        await ws.close()


async def test_expire_tokens_notifies_open_sockets(session: aiohttp.ClientSession) -> None:
    async with FakePBX() as pbx:
        ws = await open_ws(pbx, session)
        await subscribe(ws, 30011)
        pbx.expire_tokens()
        assert await text(ws) == EXPIRED
        await closed(ws)
        await ws.close()


async def test_expire_tokens_quietly_then_next_frame(session: aiohttp.ClientSession) -> None:
    async with FakePBX() as pbx:
        ws = await open_ws(pbx, session)
        await subscribe(ws, 30011)
        pbx.expire_tokens(notify_sockets=False)
        assert await pbx.emit(30011, {"n": 1}) == 1  # still open and delivering
        assert json.loads(await text(ws))["type"] == 30011
        await ws.send_str("heartbeat")
        assert await text(ws) == EXPIRED
        await closed(ws)
        await ws.close()


async def test_token_lifetime_ends_the_socket(session: aiohttp.ClientSession) -> None:
    async with FakePBX(access_token_ttl=0.2) as pbx:
        ws = await open_ws(pbx, session)
        await subscribe(ws, 30011)
        started = time.monotonic()
        assert await text(ws) == EXPIRED
        assert time.monotonic() - started > 0.1
        await closed(ws)
        await ws.close()


async def test_refresh_and_revocation_end_sockets(session: aiohttp.ClientSession) -> None:
    async with FakePBX() as pbx:
        pair = await login(pbx, session)
        ws = await open_ws(pbx, session, token=pair["access_token"])
        async with session.post(
            pbx.base_url + "/openapi/v1.0/refresh_token",
            json={"refresh_token": pair["refresh_token"]},
        ) as resp:
            new = await resp.json()
        assert await text(ws) == EXPIRED
        await closed(ws)
        await ws.close()
        ws = await open_ws(pbx, session, token=new["access_token"])
        url = f"{pbx.base_url}/openapi/v1.0/del_token?access_token={new['access_token']}"
        async with session.get(url) as resp:
            assert (await resp.json())["errcode"] == 0
        assert await text(ws) == EXPIRED
        await ws.close()


async def test_sockets_unbound_from_tokens(session: aiohttp.ClientSession) -> None:
    async with FakePBX(ws_bound_to_token=False) as pbx:
        ws = await open_ws(pbx, session)
        await subscribe(ws, 30011)
        pbx.expire_tokens()
        await ws.send_str("heartbeat")
        assert await text(ws) == "heartbeat response"
        await ws.close()


async def test_wait_helpers_and_user_agent() -> None:
    async with FakePBX() as pbx:
        async with aiohttp.ClientSession() as session:
            token = (await login(pbx, session))["access_token"]

        async def client() -> None:
            url = f"{pbx.ws_url}?access_token={token}"
            async with connect(url, user_agent_header="OpenAPI", logger=RAW_WS_LOG) as ws:
                await ws.send('{"topic_list":[30011,30012,30016]}')
                assert await ws.recv() == ACK
                await ws.wait_closed()

        task = asyncio.create_task(client())
        await pbx.wait_for_connections(1)
        sock = await pbx.wait_for_subscription([30016, 30011])
        assert sock.user_agent == "OpenAPI"
        assert pbx.stats.ws_user_agents == ["OpenAPI"]
        assert pbx.requests_for("subscribe")[0].user_agent == "OpenAPI"
        with pytest.raises(TimeoutError, match="subscription"):
            await pbx.wait_for_subscription([30020], timeout=0.05)
        await pbx.close()
        await task


async def test_close_ends_open_sockets_quickly(session: aiohttp.ClientSession) -> None:
    pbx = await FakePBX().start()
    ws = await open_ws(pbx, session)
    await subscribe(ws, 30011)
    pbx.black_hole()  # even a silent fake closes promptly
    async with asyncio.timeout(3):
        await pbx.close()
    msg = await closed(ws)
    assert msg.data == 1001
    await ws.close()


async def test_idle_timeout_can_be_changed_on_open_sockets(session: aiohttp.ClientSession) -> None:
    async with FakePBX() as pbx:
        ws = await open_ws(pbx, session)
        await subscribe(ws, 30011)
        assert pbx.idle_timeout == 60.0
        pbx.idle_timeout = 0.05  # re-arms the open socket's timer with the new limit
        msg = await closed(ws)
        assert msg.extra == "idle timeout"
        with pytest.raises(ValueError, match="got 0"):
            pbx.idle_timeout = 0
        await ws.close()
