"""End-to-end REST flows: a real ``YeastarClient`` against the FakePBX's stores and call flows.

Everything goes over loopback sockets: the client logs in, sends typed requests, the FakePBX
keeps state (extensions, routes, queues, contacts, phonebooks, wake-up calls, live calls) and
answers like a PBX, errors included, and files are downloaded through ``client.files``.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import datetime, time
from pathlib import Path
from typing import Any

import msgspec
import pytest

from yeastar_async import YeastarClient, events
from yeastar_async.errors import (
    DuplicateKeyError,
    NotFoundError,
    ParameterError,
    TokenExpiredError,
    TransportError,
)
from yeastar_async.events.models import ExtensionLeg, OutboundLeg
from yeastar_async.resources import DownloadResponse
from yeastar_async.resources.company_contact import NumberListParam
from yeastar_async.resources.inbound_route import TrunkListParam
from yeastar_async.testing import FakePBX, RequestRecord

WAV = b"RIFF\x24\x00\x00\x00WAVEfmt " + bytes(range(256)) * 64  # 16 KiB: several chunks
RECORDING = "20240101100000-1702287660.12-2000-+15551234-Outbound.wav"


def client_for(pbx: FakePBX) -> YeastarClient:
    # retries=0: a failure shows at once instead of being retried.
    return YeastarClient(pbx.base_url, pbx.client_id, pbx.client_secret, retries=0)


@pytest.fixture
async def pbx() -> AsyncIterator[FakePBX]:
    # talk_time=None: scripted calls stay up until call/hangup.
    async with FakePBX(talk_time=None) as fake:
        yield fake


def last(pbx: FakePBX, endpoint: str) -> RequestRecord:
    return pbx.requests_for(endpoint)[-1]


def names(directory: Path) -> list[str]:
    """The file names in ``directory`` (sync: the directories here hold a file or two)."""
    return sorted(p.name for p in directory.iterdir())


def as_dict(struct: msgspec.Struct) -> dict[str, Any]:
    return msgspec.structs.asdict(struct)


# -- extensions -------------------------------------------------------------------------------


async def test_extension_lifecycle(pbx: FakePBX) -> None:
    async with client_for(pbx) as client:
        created = await client.extension.create(
            type="SIP",
            number="3001",
            user_password="User+pass1",
            reg_name="3001",
            reg_password="Reg+pass1",
            concurrent_registrations=1,
            presence_status="available",
            first_name="Grace",
            last_name="Hopper",
            email_addr="grace@example.com",
            mobile_number="5550101",
        )
        assert isinstance(created.id, int)
        ext_id = created.id
        assert last(pbx, "extension/create").json["number"] == "3001"

        before = (await client.extension.get(id=ext_id)).data
        assert before is not None
        assert (before.number, before.first_name, before.last_name) == ("3001", "Grace", "Hopper")
        assert before.email_addr == "grace@example.com"

        # Only the fields named in update() travel, and only they change.
        await client.extension.update(
            id=ext_id, presence_status="off_work", email_addr="hopper@example.com"
        )
        assert last(pbx, "extension/update").json == {
            "id": ext_id,
            "presence_status": "off_work",
            "email_addr": "hopper@example.com",
        }
        after = (await client.extension.get(id=ext_id)).data
        assert after is not None
        assert after.presence_status == "off_work"
        assert after.email_addr == "hopper@example.com"
        changed = {k for k, v in as_dict(after).items() if as_dict(before)[k] != v}
        assert changed == {"presence_status", "email_addr"}

        # One page, then every item across pages with async for.
        page = await client.extension.list(page=1, page_size=2)
        assert page.total_number == 5
        assert len(page.data) == 2
        pbx.clear_requests()
        numbers = [ext.number async for ext in client.extension.list(page_size=2)]
        assert numbers == ["2000", "2001", "2002", "2005", "3001"]
        assert [r.query["page"] for r in pbx.requests_for("extension/list")] == ["1", "2", "3"]

        found = [ext async for ext in client.extension.search(search_value="hopper")]
        assert [(e.id, e.number, e.caller_id_name) for e in found] == [
            (ext_id, "3001", "Grace Hopper")
        ]
        assert last(pbx, "extension/search").query["search_value"] == "hopper"

        await client.extension.delete(id=ext_id)
        assert last(pbx, "extension/delete").method == "GET"  # the manual deletes with GET
        with pytest.raises(NotFoundError) as missing:
            await client.extension.get(id=ext_id)
        assert (missing.value.errcode, missing.value.endpoint) == (60001, "extension/get")
        assert [e.number async for e in client.extension.list()] == ["2000", "2001", "2002", "2005"]


async def test_extension_errors_are_typed(pbx: FakePBX) -> None:
    async with client_for(pbx) as client:
        required: dict[str, Any] = {
            "type": "SIP",
            "number": "2001",  # seeded: Phillip Huff
            "user_password": "User+pass1",
            "reg_name": "2001b",
            "reg_password": "Reg+pass1",
            "concurrent_registrations": 1,
            "presence_status": "available",
        }
        with pytest.raises(DuplicateKeyError) as dup:
            await client.extension.create(**required)
        assert dup.value.errcode == 40003
        assert dup.value.endpoint == "extension/create"
        [entry] = dup.value.duplicate_field_list
        assert (entry["field"], entry["value"]) == ("number", "2001")
        assert "2001" in str(dup.value)
        assert "User+pass1" not in str(dup.value)  # no password in the error text

        with pytest.raises(NotFoundError):
            await client.extension.update(id=99999, first_name="Nobody")
        with pytest.raises(NotFoundError):
            await client.extension.delete(id=99999)

        # A required parameter left out is refused before anything is sent.
        sent = len(pbx.requests)
        incomplete = {k: v for k, v in required.items() if k != "reg_password"}
        with pytest.raises(TypeError, match="reg_password"):
            await client.extension.create(**incomplete)
        with pytest.raises(TypeError, match="id"):
            await client.extension.get()  # type: ignore[call-arg]
        assert len(pbx.requests) == sent


async def test_missing_required_parameter_sends_nothing_not_even_a_login(pbx: FakePBX) -> None:
    async with client_for(pbx) as client:
        with pytest.raises(TypeError):
            await client.queue.agent_status()  # type: ignore[call-arg]
        with pytest.raises(ValueError, match="call_id"):
            await client.call.query()
    assert pbx.requests == []


async def test_the_pbx_parameter_check_is_typed_too(pbx: FakePBX) -> None:
    async with client_for(pbx) as client:
        # An empty string is no id: the PBX answers 40002 with invalid_param_list ...
        with pytest.raises(ParameterError) as bad:
            await client.request("GET", "extension/get", params={"id": ""})
        assert bad.value.errcode == 40002
        assert bad.value.invalid_param_list == [{"field": "id", "validation_type": "required"}]
        # ... which the typed method says before sending anything.
        sent = pbx.count("extension/get")
        for blank in ("", None):
            with pytest.raises(ValueError, match="id is required and cannot be"):
                await client.extension.get(id=blank)  # type: ignore[arg-type]
        with pytest.raises(ValueError, match=r"ids is required and cannot be \[\]"):
            await client.extension.query(ids=[])
        with pytest.raises(ValueError, match="exactly one of channel_id, paging_number"):
            await client.call.hangup(channel_id="")
        assert pbx.count("extension/get") == sent


# -- inbound routes ---------------------------------------------------------------------------


async def test_inbound_route_lifecycle(pbx: FakePBX) -> None:
    async with client_for(pbx) as client:
        seeded = [route.id async for route in client.inbound_route.list()]
        with pytest.raises(ValueError, match="did_pattern_list"):
            await client.inbound_route.create(
                name="Support", trunk_list=[{"id": 1}], def_dest="extension", did_option="patterns"
            )
        created = await client.inbound_route.create(
            name="Support line",
            trunk_list=[TrunkListParam(id=1), {"id": 2}],  # Structs and plain dicts alike
            def_dest="extension",
            def_dest_value="2000",
        )
        route_id = created.id
        assert isinstance(route_id, int)
        assert last(pbx, "inbound_route/create").json == {
            "name": "Support line",
            "trunk_list": [{"id": 1}, {"id": 2}],
            "def_dest": "extension",
            "def_dest_value": "2000",
        }

        page = await client.inbound_route.list(page=1, page_size=100)
        assert [r.id for r in page.data] == [*seeded, route_id]
        assert page.total_number == len(seeded) + 1
        assert isinstance(page.last_pos, int)
        mine = next(r for r in page.data if r.id == route_id)
        assert (mine.name, mine.default_destination) == ("Support line", "extension")

        await client.inbound_route.update(id=route_id, name="Sales line")
        detail = (await client.inbound_route.get(id=route_id)).data
        assert detail is not None
        assert (detail.name, detail.def_dest, detail.def_dest_value) == (
            "Sales line",
            "extension",
            "2000",
        )
        assert [t.id for t in detail.trunk_list] == [1, 2]
        found = [r.name async for r in client.inbound_route.search(search_value="sales")]
        assert found == ["Sales line"]

        await client.inbound_route.delete(id=route_id)
        with pytest.raises(NotFoundError):
            await client.inbound_route.get(id=route_id)
        assert [route.id async for route in client.inbound_route.list()] == seeded


# -- queues and agents --------------------------------------------------------------------------


async def agents(client: YeastarClient, queue_id: int) -> dict[str, tuple[int, int, str]]:
    status = await client.queue.agent_status(id=queue_id)
    assert status.total_number == len(status.data)
    return {
        str(a.number): (a.is_login or 0, a.is_pause or 0, a.pause_reason or "") for a in status.data
    }


async def test_queue_agent_login_and_pause(pbx: FakePBX) -> None:
    async with client_for(pbx) as client:
        [queue] = [q async for q in client.queue.list()]
        assert (queue.id, queue.number) == (3, "6402")
        assert await agents(client, 3) == {
            "2000": (0, 0, ""),
            "2001": (0, 0, ""),
            "2002": (1, 0, ""),  # the static agent is always logged in
        }

        # agent/*: one extension (2000 has id 39), all of its queues.
        await client.agent.login(ext_id=39, operation="login")
        assert last(pbx, "agent/login").query == {
            "access_token": last(pbx, "agent/login").access_token,
            "ext_id": "39",
            "operation": "login",
        }
        await client.agent.pause(ext_id=39, operation="pause", reason="Lunch")
        assert (await agents(client, 3))["2000"] == (1, 1, "Lunch")

        # queue/*: several extensions of one queue (2001 has id 223), paused at login.
        await client.queue.agent_login(
            ext_ids=[223], queue_id=3, operation="login", is_paused=True, reason="Break"
        )
        login = last(pbx, "queue/agent_login").query
        assert (login["ext_ids"], login["is_paused"]) == ("223", "1")
        assert (await agents(client, 3))["2001"] == (1, 1, "Break")

        await client.queue.agent_pause(ext_ids=[39, 223], queue_id=3, operation="unpause")
        assert last(pbx, "queue/agent_pause").query["ext_ids"] == "39,223"
        status = await agents(client, 3)
        assert (status["2000"], status["2001"]) == ((1, 0, ""), (1, 0, ""))

        await client.agent.login(ext_id=39, queue_ids=[3], operation="logout")
        assert (await agents(client, 3))["2000"] == (0, 0, "")

        with pytest.raises(NotFoundError):
            await client.agent.login(ext_id=99999, operation="login")
        with pytest.raises(NotFoundError):
            await client.queue.agent_status(id=99999)


# -- contacts and phonebooks ------------------------------------------------------------------


async def test_contacts_and_phonebooks(pbx: FakePBX) -> None:
    async with client_for(pbx) as client:
        contact = await client.company_contact.create(
            first_name="Ada",
            last_name="Lovelace",
            company="Analytical Engines",
            number_list=[NumberListParam(num_type="business_number", number="+445550101")],
        )
        contact_id = contact.id
        assert isinstance(contact_id, int)
        book = await client.phonebook.create(name="Partners", add_contacts_id_list=[contact_id])
        book_id = book.id
        assert isinstance(book_id, int)
        assert last(pbx, "phonebook/create").json["add_contacts_id_list"] == [contact_id]

        detail = (await client.phonebook.get(id=book_id)).data
        assert detail is not None
        assert [(c.id, c.contact_name, c.business) for c in detail.contacts_list] == [
            (contact_id, "Ada Lovelace", "+445550101")
        ]
        person = (await client.company_contact.get(id=contact_id)).data
        assert person is not None
        # The seeded "all contacts" phonebook holds every contact; Partners was picked.
        assert [b.name for b in person.phonebook_list] == [
            "All Company Contacts_Phonebook",
            "Partners",
        ]
        assert [n.number for n in person.number_list] == ["+445550101"]

        hits = [c async for c in client.company_contact.search(search_value="analytical")]
        assert [c.id for c in hits] == [contact_id]
        books = [b async for b in client.phonebook.search(search_value="partner")]
        assert [(b.id, b.total) for b in books] == [(book_id, 1)]

        with pytest.raises(DuplicateKeyError) as dup:
            await client.phonebook.create(name="Partners")
        assert dup.value.duplicate_field_list[0]["field"] == "name"

        await client.company_contact.update(id=contact_id, company="Babbage & Co")
        assert last(pbx, "company_contact/update").json == {
            "id": contact_id,
            "company": "Babbage & Co",
        }
        await client.phonebook.update(id=book_id, del_contacts_id_list=[contact_id])
        detail = (await client.phonebook.get(id=book_id)).data
        assert detail is not None
        assert detail.contacts_list == []

        await client.phonebook.delete(id=book_id)
        await client.company_contact.delete(id=contact_id)
        with pytest.raises(NotFoundError) as gone:
            await client.phonebook.get(id=book_id)
        assert gone.value.errcode == 70093
        with pytest.raises(NotFoundError) as gone:
            await client.company_contact.get(id=contact_id)
        assert gone.value.errcode == 70128


# -- wake-up calls ------------------------------------------------------------------------------


async def test_wakeup_calls(pbx: FakePBX) -> None:
    async with client_for(pbx) as client:
        created = await client.wakeupcall.create(
            ext_id=227, alarm_time=time(6, 45), repeat_type=["every_monday", "every_friday"]
        )
        alarm_id = created.id
        assert isinstance(alarm_id, int)
        sent = last(pbx, "wakeupcall/create").json
        assert sent["alarm_time"] == "06:45"  # a time is sent as HH:MM
        assert (
            sent["repeat_type"] == "every_monday,every_friday"
        )  # the manual's comma-separated form

        [entry] = (await client.wakeupcall.get(ext_id=227)).items
        assert entry.ext_id == 227
        assert [(w.id, w.alarm_time) for w in entry.wakeup_call] == [(alarm_id, "06:45")]

        await client.wakeupcall.update(id=alarm_id, alarm_time="07:15")
        [entry] = (await client.wakeupcall.get(ext_id=227)).items
        assert [w.alarm_time for w in entry.wakeup_call] == ["07:15"]
        listed = [e.ext_id async for e in client.wakeupcall.list()]
        assert 227 in listed

        await client.wakeupcall.delete(ext_id=227, wakeup_call_id=[alarm_id])
        [entry] = (await client.wakeupcall.get(ext_id=227)).items
        assert entry.wakeup_call == []
        with pytest.raises(NotFoundError) as missing:
            await client.wakeupcall.update(id=alarm_id, alarm_time="08:00")
        assert missing.value.errcode == 70516


# -- call control -------------------------------------------------------------------------------


async def test_dial_query_and_hangup(pbx: FakePBX) -> None:
    async with client_for(pbx) as client:
        dialled = await client.call.dial(caller="2000", callee="2001")
        call_id = dialled.call_id
        assert isinstance(call_id, str)
        fake = pbx.calls[call_id]

        by_id = await client.call.query(call_id=call_id)
        [info] = by_id.data
        assert info.call_id == call_id
        # The members have the shapes of the events: CallMember with typed legs.
        assert all(isinstance(m, events.CallMember) for m in info.members)
        assert [m.kind for m in info.members] == ["extension", "extension"]
        legs = [m.extension for m in info.members]
        assert all(isinstance(leg, ExtensionLeg) for leg in legs)
        assert [(leg.number, leg.channel_id) for leg in legs if leg is not None] == [
            (leg.number, leg.channel_id) for leg in fake.legs
        ]
        assert all(leg is not None and leg.call_path == "" for leg in legs)  # " " from the PBX

        by_number = await client.call.query(number="2001")
        assert [c.call_id for c in by_number.data] == [call_id]
        by_type = await client.call.query(type="internal")
        assert [c.call_id for c in by_type.data] == [call_id]

        held = await client.call.hold(channel_id=fake.channel_id)
        assert held.call_id == call_id

        with pytest.raises(ValueError, match="channel_id"):
            await client.call.hangup()
        hung = await client.call.hangup(channel_id=fake.legs[1].channel_id)
        assert hung.call_id == call_id
        cdr = await fake.finished(timeout=5)
        assert (cdr["call_from"], cdr["call_to"]) == ("2000", "2001")
        assert (await client.call.query(call_id=call_id)).data == []
        with pytest.raises(NotFoundError) as gone:
            await client.call.hangup(channel_id=fake.channel_id)
        assert gone.value.errcode == 70130


async def test_dial_out_gives_an_outbound_leg(pbx: FakePBX) -> None:
    async with client_for(pbx) as client:
        call_id = (await client.call.dial(caller="2000", callee="5503301")).call_id
        assert call_id is not None
        [info] = (await client.call.query(type="outbound")).data
        caller, callee = info.members
        assert caller.kind == "extension"
        assert isinstance(callee.outbound, OutboundLeg)
        assert (callee.outbound.from_, callee.outbound.to) == ("2000", "5503301")
        assert callee.outbound.trunk_name
        await client.call.hangup(channel_id=callee.outbound.channel_id)
        assert (await pbx.calls[call_id].finished(timeout=5))["type"] == "Outbound"


async def test_query_members_equal_the_event_members(pbx: FakePBX) -> None:
    async with client_for(pbx) as client, client.subscribe(events.CallStatusChanged) as stream:
        # Entering does not wait for the first link to come up: wait until the PBX has it.
        await pbx.wait_for_subscription([30011])
        call_id = (await client.call.dial(caller="2000", callee="5503301")).call_id
        async with asyncio.timeout(5):
            async for ev in stream:
                assert isinstance(ev, events.CallStatusChanged)
                states = [m.leg.member_status for m in ev.msg.members if m.leg is not None]
                if ev.msg.call_id == call_id and states == ["ANSWERED", "ANSWER"]:
                    break
        [info] = (await client.call.query(call_id=call_id)).data
        # One model for both: the REST answer and the 30011 event compare equal.
        assert info.members == ev.msg.members
        assert [m.kind for m in info.members] == ["extension", "outbound"]


async def test_call_control_on_a_live_call(pbx: FakePBX) -> None:
    async with client_for(pbx) as client:
        call_id = (await client.call.dial(caller="2000", callee="2001")).call_id
        fake = pbx.calls[str(call_id)]
        channel = fake.legs[1].channel_id
        for action in (client.call.mute, client.call.unmute, client.call.hold, client.call.unhold):
            assert (await action(channel_id=channel)).call_id == call_id
        assert (await client.call.record_start(channel_id=channel)).errcode == 0
        transferred = await client.call.transfer(type="blind", channel_id=channel, number="2002")
        assert transferred.call_id == call_id
        assert last(pbx, "call/transfer").json == {
            "type": "blind",
            "channel_id": channel,
            "number": "2002",
        }
        with pytest.raises(NotFoundError):
            await client.call.mute(channel_id="PJSIP/none-00000000")
        fake.hangup()
        await fake.finished(timeout=5)


# -- transport behaviour seen from the resources ---------------------------------------------


async def test_an_expired_token_is_renewed_and_the_request_replayed_once(pbx: FakePBX) -> None:
    async with client_for(pbx) as client:
        await client.system.information()
        pbx.expire_tokens()
        dialled = await client.call.dial(caller="2000", callee="2001")
        # The PBX refused the first POST before acting: exactly one call rings.
        assert [r.errcode for r in pbx.requests_for("call/dial")] == [10004, 0]
        assert list(pbx.calls) == [dialled.call_id]
        pbx.calls[str(dialled.call_id)].hangup()


async def test_the_per_call_timeout_reaches_the_wire(pbx: FakePBX) -> None:
    async with client_for(pbx) as client:
        await client.system.information()
        pbx.delay_next(1, 2.0, endpoint="extension/get")
        started = asyncio.get_running_loop().time()
        with pytest.raises(TransportError, match=r"no answer within 0\.05"):
            await client.extension.get(id=39, timeout=0.05)
        assert asyncio.get_running_loop().time() - started < 1.5
        assert (await client.extension.get(id=39)).data is not None


async def test_answers_decode_leniently(pbx: FakePBX) -> None:
    pbx.set_response(
        "extension/get",
        {
            "errcode": 0,
            "errmsg": "SUCCESS",
            "data": {"id": "39", "number": "2000", "added_by_new_firmware": {"x": 1}},
            "also_new": True,
        },
    )
    async with client_for(pbx) as client:
        ext = (await client.extension.get(id=39)).data
    assert ext is not None
    assert (ext.id, ext.number) == (39, "2000")  # a number sent as a string still decodes


async def test_request_escape_hatch_uses_the_same_wire_rules(pbx: FakePBX) -> None:
    async with client_for(pbx) as client:
        raw = await client.request("GET", "extension/query", params={"ids": [39, 223]})
        assert [item["number"] for item in raw["data"]] == ["2000", "2001"]
        assert last(pbx, "extension/query").query["ids"] == "39,223"
        with pytest.raises(NotFoundError):
            await client.request("GET", "extension/get", params={"id": 99999})


# -- downloads ----------------------------------------------------------------------------------


async def test_recording_download_to_a_directory(pbx: FakePBX, tmp_path: Path) -> None:
    url = pbx.add_file(RECORDING, WAV, endpoint="recording/download")
    async with client_for(pbx) as client:
        answer = await client.recording.download(file=RECORDING)
        assert isinstance(answer, DownloadResponse)
        assert (answer.file, answer.download_resource_url) == (RECORDING, url)
        assert last(pbx, "recording/download").query["file"] == RECORDING  # '+' kept

        path = await client.files.save(answer, tmp_path, chunk_size=4096)
        assert path == tmp_path / RECORDING
        assert path.read_bytes() == WAV
        assert names(tmp_path) == [RECORDING]  # no .part file left
        fetched = pbx.requests_for(url)
        assert [(r.method, r.path, r.status) for r in fetched] == [("GET", url, 200)]
        assert fetched[0].access_token in pbx.live_access_tokens()

        streamed = b"".join([chunk async for chunk in client.files.iter_bytes(answer)])
        assert streamed == WAV


async def test_cdr_download_to_a_file(pbx: FakePBX, tmp_path: Path) -> None:
    csv = b"Time,Call From,Call To,Call Duration,Talk Duration,Status\r\n" * 50
    name = "cdr_2024-01-02 +0100.csv"
    pbx.add_file(name, csv, endpoint="cdr/download")
    async with client_for(pbx) as client:
        answer = await client.cdr.download(
            start_time=datetime(2024, 1, 2, 0, 0, 0), end_time=datetime(2024, 1, 2, 23, 59, 59)
        )
        query = last(pbx, "cdr/download").query
        assert (query["start_time"], query["end_time"]) == (
            "01/02/2024 00:00:00",
            "01/02/2024 23:59:59",
        )
        target = tmp_path / "report.csv"
        assert await client.files.save(answer, target) == target
    assert target.read_bytes() == csv


async def test_download_with_an_expired_token_is_replayed_once(
    pbx: FakePBX, tmp_path: Path
) -> None:
    url = pbx.add_file(RECORDING, WAV, endpoint="recording/download")
    async with client_for(pbx) as client:
        answer = await client.recording.download(id=7)
        pbx.expire_tokens()
        path = await client.files.save(answer, tmp_path / "call.wav")
        assert path.read_bytes() == WAV  # the JSON error body never lands in the file
    fetched = pbx.requests_for(url)
    assert [r.errcode for r in fetched] == [10004, None]
    assert [r.status for r in fetched] == [200, 200]
    assert fetched[0].access_token != fetched[1].access_token
    assert pbx.stats.refreshes + pbx.stats.logins_succeeded == 2  # one renewal, no storm


async def test_download_token_dead_twice_raises(pbx: FakePBX, tmp_path: Path) -> None:
    url = pbx.add_file(RECORDING, WAV, endpoint="recording/download")
    async with client_for(pbx) as client:
        answer = await client.recording.download(id=7)
        pbx.fail_next_errcode(2, 10004, endpoint=url)
        with pytest.raises(TokenExpiredError):
            await client.files.save(answer, tmp_path / "call.wav")
    assert len(pbx.requests_for(url)) == 2  # one replay only
    assert names(tmp_path) == []


async def test_download_of_a_missing_file_raises_the_typed_error(
    pbx: FakePBX, tmp_path: Path
) -> None:
    pbx.add_file(RECORDING, WAV, endpoint="recording/download")
    async with client_for(pbx) as client:
        answer = await client.recording.download(file=RECORDING)
        pbx.remove_file(RECORDING)  # e.g. not written yet
        with pytest.raises(NotFoundError) as missing:
            await client.files.save(answer, tmp_path)
        assert (missing.value.errcode, missing.value.endpoint) == (60001, "download")
        with pytest.raises(NotFoundError):
            _ = [chunk async for chunk in client.files.iter_bytes(answer)]
    assert names(tmp_path) == []  # no partial file


async def test_download_retries_until_the_recording_is_ready(pbx: FakePBX, tmp_path: Path) -> None:
    asked: list[int] = []
    async with client_for(pbx) as client:

        async def link() -> DownloadResponse:
            asked.append(1)
            if len(asked) == 3:  # the PBX finished writing the recording
                pbx.add_file(RECORDING, WAV)
            return await client.recording.download(file=RECORDING)

        path = await client.files.save(link, tmp_path, retries=3, retry_delay=0.01)
    assert path.read_bytes() == WAV
    assert len(asked) == 3
    assert [r.errcode for r in pbx.requests_for("/api/download/" + RECORDING)] == [
        60001,
        60001,
        None,
    ]


async def test_foreign_download_urls_are_refused(pbx: FakePBX, tmp_path: Path) -> None:
    async with client_for(pbx) as client:
        await client.system.information()  # logged in: a token exists that could leak
        token = pbx.live_access_tokens()[0]
        for url in (
            "http://evil.example.com/api/download/x.wav",
            f"http://127.0.0.1:{pbx.port + 1}/api/download/x.wav",  # same host, other port
            f"https://127.0.0.1:{pbx.port}/api/download/x.wav",  # other scheme
            "//evil.example.com/api/download/x.wav",
        ):
            foreign = DownloadResponse(file="x.wav", download_resource_url=url)
            with pytest.raises(ValueError, match="refusing") as refused:
                await client.files.save(foreign, tmp_path)
            assert token not in str(refused.value)
            with pytest.raises(ValueError, match="refusing"):
                _ = [chunk async for chunk in client.files.iter_bytes(url)]
    assert not [r for r in pbx.requests if r.path.startswith("/api/download/")]
    assert names(tmp_path) == []


async def test_every_download_endpoint_round_trips(pbx: FakePBX, tmp_path: Path) -> None:
    async with client_for(pbx) as client:
        answers: dict[str, DownloadResponse] = {
            "recording": await client.recording.download(id=1),
            "cdr": await client.cdr.download(),
            "call_report": await client.call_report.download(
                type="extcallstatistics",
                ext_id_list=[39, 223],
                start_time=datetime(2024, 1, 1),
                end_time=datetime(2024, 1, 31),
            ),
            "call_schedule_report": await client.call_schedule_report.download(id=1),
        }
        for group, answer in answers.items():
            assert answer.download_resource_url, group
            path = await client.files.save(answer, tmp_path / group)
            assert path.stat().st_size > 0
    assert last(pbx, "call_report/download").query["ext_id_list"] == "39,223"
    assert len({a.download_resource_url for a in answers.values()}) == 4
