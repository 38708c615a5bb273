"""FakePBX scripted call flows (30016 window, call/dial, DTMF, presence) and the pytest plugin.

A raw aiohttp WebSocket subscribes to the call topics; the tests read the frames the flows
emit, in order, and drive the calls over REST like an application would.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
import pytest

from tests._raw import RawApi
from yeastar_async.testing import FakeCall, FakePBX
from yeastar_async.testing.pytest_plugin import fake_pbx, fake_pbx_factory

__all__ = ["fake_pbx", "fake_pbx_factory"]  # the plugin's fixtures, used below

CALL_TOPICS = (30008, 30009, 30011, 30012, 30016, 30017)


class Phone(RawApi):
    """An application's view of the fake: REST calls plus the subscribed event stream."""

    def __init__(self, pbx: FakePBX, session: aiohttp.ClientSession) -> None:
        super().__init__(pbx, session)
        self.ws: aiohttp.ClientWebSocketResponse | None = None

    async def start(self, *topics: int) -> Phone:
        await self.new_token()
        self.ws = await self.session.ws_connect(f"{self.pbx.ws_url}?access_token={self.token}")
        await self.ws.send_str(json.dumps({"topic_list": list(topics or CALL_TOPICS)}))
        assert await self.ws.receive_str(timeout=2) == '{"errcode":0,"errmsg":"SUCCESS"}'
        return self

    async def event(self, *wanted: int) -> tuple[int, dict[str, Any]]:
        """The next event frame (skipping topics not in ``wanted``): (topic, decoded msg)."""
        assert self.ws is not None
        while True:
            frame = json.loads(await self.ws.receive_str(timeout=3))
            msg = frame["msg"]
            if isinstance(msg, str):
                msg = json.loads(msg)
            if not wanted or frame["type"] in wanted:
                return frame["type"], msg

    async def states(self, n: int) -> list[list[tuple[str, str]]]:
        """The next ``n`` 30011 frames as [(leg kind, member_status), ...] each."""
        result = []
        for _ in range(n):
            _, msg = await self.event(30011)
            legs = [leg for member in msg["members"] for leg in member.items()]
            result.append([(kind, info["member_status"]) for kind, info in legs])
        return result


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


async def test_inbound_call_accepted_within_the_window(
    fake_pbx: FakePBX, session: aiohttp.ClientSession
) -> None:
    phone = await Phone(fake_pbx, session).start()
    call = fake_pbx.simulate_inbound_call("5503301", trunk="peer-to-41", did="88001", callee="2002")
    topic, request = await phone.event(30016, 30011)
    assert topic == 30016
    (member,) = request["members"]
    inbound = member["inbound"]
    assert inbound["from"] == "5503301"
    assert inbound["to"] == "88001"
    assert inbound["trunk_name"] == "peer-to-41"
    assert inbound["member_status"] == "ALERT"
    assert inbound["channel_id"].startswith("PJSIP/trunk-peer-to-41-endpoint-")
    assert request["call_id"] == call.call_id
    answer = await phone.post("call/accept_inbound", channel_id=inbound["channel_id"])
    assert answer == {"errcode": 0, "errmsg": "SUCCESS", "call_id": call.call_id}
    assert await call.outcome() == "accepted"
    assert await phone.states(3) == [
        [("inbound", "ALERT"), ("extension", "RING")],
        [("inbound", "ANSWERED"), ("extension", "ANSWER")],
        [("inbound", "BYE"), ("extension", "BYE")],
    ]
    topic, cdr = await phone.event(30012)
    assert cdr == await call.finished()
    assert cdr["call_id"] == call.call_id
    assert (cdr["call_from"], cdr["call_to"]) == ("5503301", "2002")
    assert (cdr["status"], cdr["type"]) == ("ANSWERED", "Inbound")
    assert cdr["src_trunk_name"] == "peer-to-41"
    assert cdr["did_number"] == "88001"
    assert cdr["dst_trunk_name"] == " "  # the PBX's empty value
    assert isinstance(cdr["call_duration"], int)


async def test_inbound_call_refused(fake_pbx: FakePBX, session: aiohttp.ClientSession) -> None:
    phone = await Phone(fake_pbx, session).start()
    call = fake_pbx.simulate_inbound_call("5503302")
    _, request = await phone.event(30016)
    channel = request["members"][0]["inbound"]["channel_id"]
    assert (await phone.post("call/refuse_inbound", channel_id=channel))["errcode"] == 0
    assert await call.outcome() == "refused"
    assert await phone.states(1) == [[("inbound", "BYE")]]
    _, cdr = await phone.event(30012)
    assert cdr["status"] == "NO ANSWER"
    assert cdr["call_to"] == "2000"  # the number the caller reached
    # the call is over: its channel is gone
    late = await phone.post("call/accept_inbound", channel_id=channel)
    assert late == {"errcode": 70130, "errmsg": "CAHNNEL ID NOT FOUND"}


async def test_the_pbx_proceeds_alone_after_the_window(session: aiohttp.ClientSession) -> None:
    async with FakePBX(inbound_window=0.05, talk_time=None) as pbx:
        phone = await Phone(pbx, session).start()
        call = pbx.simulate_inbound_call("5503303", did="2001")
        _, request = await phone.event(30016)
        assert await call.outcome() == "timeout"
        assert await phone.states(2) == [
            [("inbound", "ALERT"), ("extension", "RING")],
            [("inbound", "ANSWERED"), ("extension", "ANSWER")],
        ]
        # a refusal after the window answers success but is ignored
        channel = request["members"][0]["inbound"]["channel_id"]
        late = await phone.post("call/refuse_inbound", channel_id=channel)
        assert late == {"errcode": 0, "errmsg": "SUCCESS", "call_id": call.call_id}
        assert await call.outcome() == "timeout"
        assert not call.ended
        assert (await phone.post("call/hangup", channel_id=channel))["errcode"] == 0
        assert await phone.states(1) == [[("inbound", "BYE"), ("extension", "BYE")]]
        cdr = await call.finished()
        assert cdr["call_to"] == "2001"  # did was an extension number: it rang there
        assert cdr["status"] == "ANSWERED"


async def test_unmonitored_trunk_sends_no_30016(
    fake_pbx: FakePBX, session: aiohttp.ClientSession
) -> None:
    phone = await Phone(fake_pbx, session).start()
    call = fake_pbx.simulate_inbound_call("5503304", monitored=False, answer=False)
    topic, _ = await phone.event(30016, 30011)
    assert topic == 30011
    assert await call.outcome() == "not_monitored"
    assert (await call.finished())["status"] == "NO ANSWER"


async def test_unknown_channel_answers_70130(
    fake_pbx: FakePBX, session: aiohttp.ClientSession
) -> None:
    phone = await Phone(fake_pbx, session).start()
    for endpoint in ("call/accept_inbound", "call/refuse_inbound", "call/hold", "call/hangup"):
        body = await phone.post(endpoint, channel_id="PJSIP/nope-00000001")
        assert body == {"errcode": 70130, "errmsg": "CAHNNEL ID NOT FOUND"}


async def test_call_dial_runs_the_whole_sequence(
    fake_pbx: FakePBX, session: aiohttp.ClientSession
) -> None:
    phone = await Phone(fake_pbx, session).start()
    dialled = await phone.post("call/dial", caller="2000", callee="2001")
    assert dialled["errcode"] == 0
    call = fake_pbx.calls[dialled["call_id"]]
    assert call.kind == "internal"
    assert await phone.states(3) == [
        [("extension", "ALERT"), ("extension", "RING")],
        [("extension", "ANSWERED"), ("extension", "ANSWER")],
        [("extension", "BYE"), ("extension", "BYE")],
    ]
    _, cdr = await phone.event(30012)
    assert (cdr["call_from"], cdr["call_to"], cdr["type"]) == ("2000", "2001", "Internal")
    assert cdr["status"] == "ANSWERED"


async def test_dial_to_an_external_number_uses_a_trunk(
    fake_pbx: FakePBX, session: aiohttp.ClientSession
) -> None:
    phone = await Phone(fake_pbx, session).start()
    dialled = await phone.post("call/dial", caller="2000", callee="5503301")
    _, first = await phone.event(30011)
    outbound = first["members"][1]["outbound"]
    assert (outbound["from"], outbound["to"]) == ("2000", "5503301")
    assert outbound["member_status"] == "RING"
    cdr = await fake_pbx.calls[dialled["call_id"]].finished()
    assert (cdr["type"], cdr["dst_trunk_name"]) == ("Outbound", "peer-to-41")


async def test_extension_call_status_events(
    fake_pbx: FakePBX, session: aiohttp.ClientSession
) -> None:
    phone = await Phone(fake_pbx, session).start(30008)
    fake_pbx.simulate_dial("2000", "2002")
    seen = [(await phone.event(30008))[1] for _ in range(6)]
    assert [(m["extension"], m["status"]) for m in seen] == [
        ("2000", "ringing"),
        ("2002", "ringing"),
        ("2000", "busy"),
        ("2002", "busy"),
        ("2000", "idle"),
        ("2002", "idle"),
    ]


async def test_a_live_call_can_be_queried_controlled_and_hung_up(
    session: aiohttp.ClientSession,
) -> None:
    async with FakePBX(talk_time=None) as pbx:
        phone = await Phone(pbx, session).start()
        call = pbx.simulate_dial("2000", "2002")
        await phone.states(2)  # ringing, then answered
        by_id = await phone.get("call/query", call_id=call.call_id)
        assert by_id["data"] == [call.snapshot()]
        assert (await phone.get("call/query", number="2002"))["data"][0]["call_id"] == call.call_id
        assert (await phone.get("call/query", type="internal"))["data"][0][
            "call_id"
        ] == call.call_id
        assert (await phone.get("call/query", type="inbound"))["data"] == []
        assert (await phone.get("call/query"))["errcode"] == 40002
        callee = call.legs[1].channel_id
        for endpoint in ("call/hold", "call/unhold", "call/mute", "call/record_start"):
            assert (await phone.post(endpoint, channel_id=callee))["errcode"] == 0
        transfer = await phone.post("call/transfer", type="blind", channel_id=callee, number="2005")
        assert transfer["call_id"] == call.call_id
        agents = {a["number"]: a for a in (await phone.get("queue/agent_status", id=3))["data"]}
        assert agents["2002"]["call_status"] == 2  # talking
        assert (await phone.post("call/hangup", channel_id=callee))["call_id"] == call.call_id
        assert await phone.states(1) == [[("extension", "BYE"), ("extension", "BYE")]]
        assert (await call.finished())["status"] == "ANSWERED"
        assert (await phone.get("call/query", call_id=call.call_id))["data"] == []
        agents = {a["number"]: a for a in (await phone.get("queue/agent_status", id=3))["data"]}
        assert agents["2002"]["call_status"] == 1


async def test_hangup_while_ringing_is_no_answer(session: aiohttp.ClientSession) -> None:
    async with FakePBX(ring_time=30) as pbx:
        phone = await Phone(pbx, session).start()
        call: FakeCall = pbx.simulate_dial("2000", "2001")
        await phone.states(1)
        call.hangup()
        assert await phone.states(1) == [[("extension", "BYE"), ("extension", "BYE")]]
        cdr = await call.finished()
        assert (cdr["status"], cdr["talk_duration"]) == ("NO ANSWER", 0)


async def test_dtmf_and_presence(fake_pbx: FakePBX, session: aiohttp.ClientSession) -> None:
    phone = await Phone(fake_pbx, session).start(30017, 30009)
    call = fake_pbx.simulate_inbound_call("5503305", monitored=False)
    assert await fake_pbx.simulate_dtmf(call, "12#") == 3
    keys = [(await phone.event(30017))[1] for _ in range(3)]
    assert [(k["info"], k["flag"], k["infos"]) for k in keys] == [
        ("1", 0, "1"),
        ("2", 1, "12"),
        ("#", 2, "12#"),
    ]
    assert keys[0]["call_id"] == call.call_id
    assert "inbound" in keys[0]["members"][0]
    assert await fake_pbx.set_presence("2005", "business_trip") == 1
    assert await phone.event(30009) == (30009, {"extension": "2005", "status": "business_trip"})
    listed = {e["number"]: e for e in (await phone.get("extension/list"))["data"]}
    assert listed["2005"]["presence_status"] == "business_trip"
    with pytest.raises(KeyError):
        await fake_pbx.set_presence("9999", "away")


async def test_closing_mid_call_leaves_nothing_running(session: aiohttp.ClientSession) -> None:
    pbx = await FakePBX(talk_time=None).start()
    phone = await Phone(pbx, session).start()
    call = pbx.simulate_inbound_call("5503306", monitored=False)
    await phone.states(2)
    async with asyncio.timeout(3):
        await pbx.close()
    assert call.task is not None
    assert call.task.done()
    assert phone.ws is not None
    await phone.ws.close()


async def test_plugin_factory_fixture(
    fake_pbx_factory: Callable[..., Awaitable[FakePBX]], session: aiohttp.ClientSession
) -> None:
    pbx = await fake_pbx_factory(inbound_window=0.01, client_id="my-app")
    other = await fake_pbx_factory(stores=False)
    assert pbx.client_id == "my-app"
    assert other.store is None
    call = pbx.simulate_inbound_call("5503307", answer=False)
    assert await call.outcome() == "timeout"
    assert (await call.finished())["status"] == "NO ANSWER"
