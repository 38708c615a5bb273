"""FakePBX stores: extensions, contacts and phonebooks, inbound routes, queues and agents,
wake-up calls and checkout, over real loopback sockets."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import pytest

from tests._raw import RawApi
from yeastar_async.testing import FakePBX

NEW_EXTENSION = {
    "type": "SIP",
    "number": "3001",
    "first_name": "Ada",
    "last_name": "Lovelace",
    "email_addr": "ada@example.com",
    "user_password": "Secret-123",
    "reg_name": "3001",
    "reg_password": "Reg-123",
    "concurrent_registrations": 1,
    "presence_status": "available",
}


@pytest.fixture
async def pbx() -> AsyncIterator[FakePBX]:
    async with FakePBX() as fake:
        yield fake


@pytest.fixture
async def api(pbx: FakePBX) -> AsyncIterator[RawApi]:
    async with RawApi.connect(pbx, login=True) as client:
        yield client


async def test_seeded_extensions_list_sorted_and_paginated(api: RawApi) -> None:
    page = await api.get("extension/list")
    assert page["total_number"] == 4
    assert [e["number"] for e in page["data"]] == ["2000", "2001", "2002", "2005"]
    first = page["data"][0]
    assert first["id"] == 39
    assert first["caller_id_name"] == "Leo Ball"
    assert first["presence_status"] == "available"
    assert first["role_name"] == "Administrator"
    assert first["online_status"]["sip_phone"]["status"] == 0
    second = await api.get("extension/list", page=2, page_size=3, sort_by="number")
    assert second["total_number"] == 4
    assert [e["number"] for e in second["data"]] == ["2005"]
    desc = await api.get("extension/list", sort_by="number", order_by="desc", page_size=2)
    assert [e["number"] for e in desc["data"]] == ["2005", "2002"]


async def test_extension_create_get_update_delete(api: RawApi) -> None:
    created = await api.post("extension/create", **NEW_EXTENSION)
    assert created["errcode"] == 0
    new_id = created["id"]
    assert new_id > 228
    got = await api.get("extension/get", id=new_id)
    data = got["data"]
    assert data["id"] == new_id
    assert data["number"] == "3001"
    assert data["first_name"] == "Ada"
    assert "user_password" not in data
    assert data["dtmf_mode"] == "rfc4733"  # the rest of the record from the manual's example
    assert (await api.post("extension/update", id=new_id, caller_id="999"))["errcode"] == 0
    assert (await api.get("extension/get", id=new_id))["data"]["caller_id"] == "999"
    assert (await api.get("extension/list"))["total_number"] == 5
    query = await api.get("extension/query", ids=f"39,{new_id},12345")
    assert [e["id"] for e in query["data"]] == [39, new_id]
    assert (await api.get("extension/delete", id=new_id))["errcode"] == 0
    missing = {"errcode": 60001, "errmsg": "DATA NOT FOUND"}
    assert await api.get("extension/get", id=new_id) == missing
    assert await api.get("extension/delete", id=new_id) == missing
    assert await api.post("extension/update", id=new_id, caller_id="1") == missing


async def test_extension_duplicates_answer_40003(api: RawApi) -> None:
    body = await api.post("extension/create", **{**NEW_EXTENSION, "number": "2001"})
    assert body["errcode"] == 40003
    assert body["errmsg"] == "DUPLICATE KEY VALUE"
    assert body["duplicate_field_list"] == [
        {
            "field": "number",
            "value": "2001",
            "external_source": "extension",
            "external_source_name": "2001",
        }
    ]
    update = await api.post("extension/update", id=39, email_addr="phillip@sample.com")
    assert update["errcode"] == 40003
    assert update["duplicate_field_list"][0]["field"] == "email_addr"


async def test_extension_search(api: RawApi) -> None:
    by_name = await api.get("extension/search", search_value="huff")
    assert [e["number"] for e in by_name["data"]] == ["2001"]
    by_number = await api.get("extension/search", search_value="200")
    assert by_number["total_number"] == 4
    assert (await api.get("extension/search", search_value="nobody"))["data"] == []


async def test_extension_changes_emit_30022_and_30009(api: RawApi, pbx: FakePBX) -> None:
    async with api.session.ws_connect(f"{pbx.ws_url}?access_token={api.token}") as ws:
        await ws.send_str('{"topic_list":[30009,30022]}')
        assert (await ws.receive_str()) == '{"errcode":0,"errmsg":"SUCCESS"}'
        created = await api.post("extension/create", **NEW_EXTENSION)
        await api.post("extension/update", id=created["id"], presence_status="lunch")
        await api.get("extension/delete", id=created["id"])
        frames = [json.loads(await ws.receive_str(timeout=2)) for _ in range(4)]
    assert [(f["type"], "sn" in f) for f in frames] == [
        (30022, False),
        (30022, False),
        (30009, True),
        (30022, False),
    ]
    msgs = [json.loads(f["msg"]) for f in frames]
    assert msgs[0] == {"ext_number": "3001", "option": "CREATE"}
    assert msgs[2] == {"extension": "3001", "status": "lunch"}
    assert msgs[3] == {"ext_number": "3001", "option": "DELETE"}


async def test_inbound_route_lifecycle(api: RawApi) -> None:
    seeded = await api.get("inbound_route/list")
    assert seeded["total_number"] == 2
    created = await api.post(
        "inbound_route/create",
        name="support-line",
        trunk_list=[{"id": 27, "name": "test-peer-trunking", "type": "peer"}],
        def_dest="extension",
        def_dest_value="39",
    )
    route_id = created["id"]
    got = (await api.get("inbound_route/get", id=route_id))["data"]
    assert got["name"] == "support-line"
    assert got["def_dest"] == "extension"
    assert got["trunk_list"][0]["id"] == 27
    listed = await api.get("inbound_route/search", search_value="support")
    assert listed["data"][0]["default_destination"] == "extension"
    assert listed["last_pos"] >= 1
    assert (await api.post("inbound_route/update", id=route_id, def_dest="ivr"))["errcode"] == 0
    assert (await api.get("inbound_route/get", id=route_id))["data"]["def_dest"] == "ivr"
    trunks = [{"id": 28}]
    dup = await api.post(
        "inbound_route/create", name="support-line", trunk_list=trunks, def_dest="end_call"
    )
    assert dup["errcode"] == 40003
    empty = await api.post("inbound_route/create", name="x", trunk_list=[], def_dest="end_call")
    assert empty["invalid_param_list"] == [{"field": "trunk_list", "validation_type": "required"}]
    assert (await api.get("inbound_route/delete", id=route_id))["errcode"] == 0
    assert (await api.get("inbound_route/list"))["total_number"] == 2


async def test_queue_agent_login_and_pause(api: RawApi) -> None:
    status = await api.get("queue/agent_status", id=3)
    agents = {a["number"]: a for a in status["data"]}
    assert status["total_number"] == 3
    assert agents["2000"]["is_login"] == 0
    assert agents["2000"]["agent_type"] == "dynamic"
    assert agents["2002"]["agent_type"] == "static"
    assert agents["2000"]["call_status"] == 1
    login = await api.get("queue/agent_login", ext_ids="39,223", queue_id=3, operation="login")
    assert login == {"errcode": 0, "errmsg": "SUCCESS"}
    pause = await api.get(
        "queue/agent_pause", ext_ids="39", queue_id=3, operation="pause", reason="Lunch"
    )
    assert pause["errcode"] == 0
    agents = {a["number"]: a for a in (await api.get("queue/agent_status", id=3))["data"]}
    assert (agents["2000"]["is_login"], agents["2000"]["is_pause"]) == (1, 1)
    assert agents["2000"]["pause_reason"] == "Lunch"
    assert (agents["2001"]["is_login"], agents["2001"]["is_pause"]) == (1, 0)
    await api.get("agent/pause", ext_id=39, operation="unpause")
    await api.get("agent/login", ext_id=223, operation="logout")
    agents = {a["number"]: a for a in (await api.get("queue/agent_status", id=3))["data"]}
    assert agents["2000"]["is_pause"] == 0
    assert agents["2000"]["pause_reason"] == ""
    assert agents["2001"]["is_login"] == 0
    paused_login = await api.get(
        "agent/login", ext_id=223, operation="login", is_paused=1, reason="Break"
    )
    assert paused_login["errcode"] == 0
    agents = {a["number"]: a for a in (await api.get("queue/agent_status", id=3))["data"]}
    assert (agents["2001"]["is_login"], agents["2001"]["is_pause"]) == (1, 1)
    bad = await api.get("queue/agent_login", ext_ids="39", queue_id=3, operation="dance")
    assert bad["errcode"] == 40002
    missing = await api.get("queue/agent_login", ext_ids="39", queue_id=99, operation="login")
    assert missing["errcode"] == 60001
    assert (await api.get("queue/agent_status", id=99))["errcode"] == 60001


async def test_queue_crud_and_agent_lists(api: RawApi) -> None:
    listed = await api.get("queue/list")
    assert listed["total_number"] == 1
    assert listed["queue_list"][0]["number"] == "6402"
    created = await api.post(
        "queue/create",
        number="6403",
        name="Sales",
        ring_strategy="ring_all",
        fail_dest="end_call",
        dynamic_agent_list=[{"value": "228", "type": "extension"}],
        static_agent_list=[{"value": "227", "type": "extension"}],
    )
    queue_id = created["id"]
    found = await api.get("queue/search", search_value="sales")
    row = found["queue_list"][0]
    assert row["id"] == queue_id
    assert [a["text"] for a in row["dynamic_agent_list"]] == ["2005"]
    assert [a["text"] for a in row["static_agent_list"]] == ["2002"]
    status = await api.get("queue/agent_status", id=queue_id)
    assert {a["number"]: a["is_login"] for a in status["data"]} == {"2002": 1, "2005": 0}
    assert (await api.get("queue/get", id=queue_id))["data"]["name"] == "Sales"
    assert (await api.post("queue/create", number="6403", name="x", ring_strategy="ring_all",
                           fail_dest="end_call"))["errcode"] == 40003  # fmt: skip
    assert (await api.get("queue/delete", id=queue_id))["errcode"] == 0
    assert (await api.get("queue/agent_status", id=queue_id))["errcode"] == 60001


async def test_contacts_and_phonebooks(api: RawApi) -> None:
    book = await api.post("phonebook/create", name="Partners")
    book_id = book["id"]
    contact = await api.post(
        "company_contact/create",
        first_name="Grace",
        last_name="Hopper",
        company="Navy",
        phonebook_id_list=[book_id],
        number_list=[
            {"num_type": "business_number", "number": "5550100"},
            {"num_type": "mobile_number", "number": "5550199"},
        ],
    )
    contact_id = contact["id"]
    listed = await api.get("company_contact/search", search_value="hopper")
    row = listed["data"][0]
    assert row["contact_name"] == "Grace Hopper"
    assert (row["business"], row["mobile"]) == ("5550100", "5550199")
    assert {"id": book_id, "name": "Partners"} in row["phonebook_list"]
    book_view = (await api.get("phonebook/get", id=book_id))["data"]
    assert [c["id"] for c in book_view["contacts_list"]] == [contact_id]
    books = {b["name"]: b for b in (await api.get("phonebook/list"))["data"]}
    assert books["Partners"]["total"] == 1
    # the seeded "all contacts" phonebook follows every contact
    everyone = books["All Company Contacts_Phonebook"]
    assert everyone["total"] == (await api.get("company_contact/list"))["total_number"]
    await api.post("phonebook/update", id=book_id, del_contacts_id_list=[contact_id])
    assert (await api.get("phonebook/get", id=book_id))["data"]["contacts_list"] == []
    detail = (await api.get("company_contact/get", id=contact_id))["data"]
    assert detail["company"] == "Navy"
    assert detail["phonebook_list"] == [{"id": everyone["id"], "name": everyone["name"]}]
    assert (await api.get("company_contact/delete", id=contact_id))["errcode"] == 0
    gone = await api.get("company_contact/get", id=contact_id)
    assert gone == {"errcode": 70128, "errmsg": "CONTACTS_NOT_EXISTED"}
    assert (await api.get("phonebook/get", id=999))["errcode"] == 70093
    assert (await api.post("phonebook/create", name="Partners"))["errcode"] == 40003


async def test_wakeup_calls_and_checkout(api: RawApi, pbx: FakePBX) -> None:
    seeded = await api.get("wakeupcall/list")
    assert [e["ext_id"] for e in seeded["data"]] == [39, 223]
    created = await api.post(
        "wakeupcall/create", ext_id=227, alarm_time="06:45", repeat_type="every_monday"
    )
    alarm_id = created["id"]
    got = (await api.get("wakeupcall/get", ext_id=227))["data"]
    assert got["ext_id"] == 227
    assert got["wakeup_call"][0]["alarm_time"] == "06:45"
    assert got["wakeup_call"][0]["repeat_type"] == "every_monday"
    assert (await api.post("wakeupcall/update", id=alarm_id, alarm_time="07:15"))["errcode"] == 0
    query = await api.get("wakeupcall/query", ext_id="227,39")
    assert [e["ext_id"] for e in query["data"]] == [227, 39]
    assert query["data"][0]["wakeup_call"][0]["alarm_time"] == "07:15"
    assert (await api.post("wakeupcall/update", id=9999, alarm_time="01:00"))["errcode"] == 70516
    deleted = await api.get("wakeupcall/delete", ext_id=227, wakeup_call_id=alarm_id)
    assert deleted["errcode"] == 0
    assert (await api.get("wakeupcall/get", ext_id=227))["data"]["wakeup_call"] == []
    assert (await api.get("wakeupcall/delete", ext_id=227, wakeup_call_id=1))["errcode"] == 70516

    await api.post("extension/update", id=39, presence_status="do_not_disturb")
    assert (await api.post("hotel/checkout", ext_id=39))["errcode"] == 0
    room = (await api.get("extension/get", id=39))["data"]
    assert (room["first_name"], room["email_addr"], room["presence_status"]) == (
        "",
        "",
        "available",
    )
    assert (await api.get("wakeupcall/get", ext_id=39))["data"]["wakeup_call"] == []
    assert (await api.post("hotel/checkout", ext_id=404))["errcode"] == 60001
    assert pbx.store is not None
    assert 39 not in pbx.store.wakeups


async def test_store_mode_is_off_in_catalog_mode() -> None:
    async with FakePBX(stores=False) as pbx:
        assert pbx.store is None
        with pytest.raises(RuntimeError, match="stores=True"):
            pbx.simulate_dial("2000", "2001")
