"""The FakePBX's CDR store: ``cdr/list`` and ``cdr/search`` show the calls the fake simulated.

Everything goes through a real ``YeastarClient`` over loopback: the fake starts with the
manual's example CDRs (ids 2710-2714), every scripted call that ends adds one record after
them, ``cdr/list`` sorts and pages them, ``cdr/search`` filters them. With ``stores=False`` both
endpoints keep answering the manual's examples.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import datetime, timedelta

import pytest

from yeastar_async import YeastarClient, events
from yeastar_async.resources.cdr import CDRDetails
from yeastar_async.testing import FakeCall, FakePBX

SEEDED = [2710, 2711, 2712, 2713, 2714]


def client_for(pbx: FakePBX) -> YeastarClient:
    # retries=0: a failure shows at once instead of being retried.
    return YeastarClient(pbx.base_url, pbx.client_id, pbx.client_secret, retries=0)


@pytest.fixture
async def pbx() -> AsyncIterator[FakePBX]:
    # No ring or talk time: a scripted call runs through all its states at once.
    async with FakePBX(ring_time=0.0, talk_time=0.0) as fake:
        yield fake


@pytest.fixture
async def client(pbx: FakePBX) -> AsyncIterator[YeastarClient]:
    async with client_for(pbx) as c:
        yield c


async def three_calls(pbx: FakePBX, client: YeastarClient) -> list[FakeCall]:
    """An inbound call to 2002, a dialled internal call 2000 -> 2001 and an unanswered
    outbound call 2000 -> 5551234, each finished before the next starts."""
    inbound = pbx.simulate_inbound_call("5503301", did="88001", callee="2002", monitored=False)
    await inbound.finished(timeout=5)
    answer = await client.call.dial(caller="2000", callee="2001")
    assert answer.call_id is not None
    dialled = pbx.calls[answer.call_id]
    await dialled.finished(timeout=5)
    outbound = pbx.simulate_dial("2000", "5551234", answer=False)
    await outbound.finished(timeout=5)
    return [inbound, dialled, outbound]


def ids(rows: list[CDRDetails]) -> list[int]:
    return [r.id or 0 for r in rows]  # 0: no id, which no expected list holds


async def test_seeded_records_answer_the_manuals_search_example(client: YeastarClient) -> None:
    page = await client.cdr.list()
    assert page.total_number == 5
    assert ids(page.data) == SEEDED
    # The manual's request (line 13874): extension 2005's calls on 05/30/2022 -> 2710-2712.
    found = await client.cdr.search(
        call_from="2005", start_time="05/30/2022 00:00:00", end_time="05/30/2022 23:59:59"
    )
    assert (found.total_number, ids(found.data)) == (3, [2710, 2711, 2712])
    first = found.data[0]
    assert (first.call_from, first.call_to, first.disposition) == (
        "Kristin Hale<2005>",
        "1000",
        "ANSWERED",
    )


async def test_simulated_and_dialled_calls_show_up_after_they_end(
    pbx: FakePBX, client: YeastarClient
) -> None:
    inbound, dialled, outbound = await three_calls(pbx, client)
    page = await client.cdr.list()
    assert page.total_number == 8
    assert ids(page.data) == [*SEEDED, 2715, 2716, 2717]
    by_uid = {r.uid: r for r in page.data[5:]}
    assert list(by_uid) == [inbound.call_id, dialled.call_id, outbound.call_id]

    cdr = await inbound.finished()
    rec = by_uid[inbound.call_id]
    assert (rec.call_from, rec.call_to) == ("5503301", "Madison Cooper<2002>")
    assert (rec.disposition, rec.call_type) == ("ANSWERED", "Inbound")
    assert (rec.src_trunk, rec.dst_trunk, rec.did_number) == ("peer-to-41", None, "88001")
    assert (rec.duration, rec.talk_duration) == (cdr["call_duration"], cdr["talk_duration"])
    started = datetime.strptime(cdr["time_start"], "%Y-%m-%d %H:%M:%S")
    assert rec.time == started.strftime("%m/%d/%Y %H:%M:%S")
    assert rec.timestamp == int(started.timestamp())

    rec = by_uid[dialled.call_id]
    assert (rec.call_from, rec.call_to) == ("Leo Ball<2000>", "Phillip Huff<2001>")
    assert (rec.disposition, rec.call_type) == ("ANSWERED", "Internal")
    assert rec.src_trunk is rec.dst_trunk is rec.dod_number is None

    rec = by_uid[outbound.call_id]
    assert (rec.call_from, rec.call_to) == ("Leo Ball<2000>", "5551234")
    assert (rec.disposition, rec.call_type) == ("NO ANSWER", "Outbound")
    assert (rec.dst_trunk, rec.dod_number, rec.talk_duration) == ("peer-to-41", "2000", 0)


async def test_record_is_there_when_the_30012_arrives(pbx: FakePBX, client: YeastarClient) -> None:
    # A CDR consumer reacting to 30012 finds the call in cdr/search at once.
    async with client.subscribe(events.NewCdr) as stream:
        await pbx.wait_for_subscription([30012])
        call = pbx.simulate_dial("2001", "2002")
        async with asyncio.timeout(5):
            event = await anext(stream)
        assert event.msg.call_id == call.call_id
        found = await client.cdr.search(call_from="2001")
    assert [r.uid for r in found.data] == [call.call_id]


async def test_list_pages_sorts_and_counts(pbx: FakePBX, client: YeastarClient) -> None:
    new = [2715, 2716, 2717]
    await three_calls(pbx, client)
    page = await client.cdr.list(page=2, page_size=3)
    assert (page.total_number, ids(page.data)) == (8, [2713, 2714, 2715])
    page = await client.cdr.list(page=3, page_size=3)
    assert (page.total_number, ids(page.data)) == (8, new[1:])
    page = await client.cdr.list(page=4, page_size=3)
    assert (page.total_number, page.data) == (8, [])
    page = await client.cdr.list(sort_by="id", order_by="desc", page_size=2)
    assert ids(page.data) == [2717, 2716]
    assert [r.id async for r in client.cdr.list(page_size=3)] == [*SEEDED, *new]
    # "time" sorts by date, not as MM/DD/YYYY text: the new calls are the latest.
    by_time = await client.cdr.list(sort_by="time", order_by="desc")
    assert sorted(ids(by_time.data[:3])) == new
    assert ids(by_time.data[3:]) == SEEDED[::-1]
    # A NO ANSWER record has no duration in the manual's example (2711): it sorts first.
    by_duration = await client.cdr.list(sort_by="duration")
    assert by_duration.data[0].id == 2711


async def test_search_filters_by_party_status_and_time(pbx: FakePBX, client: YeastarClient) -> None:
    before = datetime.now().replace(microsecond=0)
    inbound, dialled, outbound = await three_calls(pbx, client)
    after = datetime.now() + timedelta(seconds=1)

    found = await client.cdr.search(call_from="2000")
    assert [r.uid for r in found.data] == [dialled.call_id, outbound.call_id]
    assert found.total_number == 2
    found = await client.cdr.search(call_from="5503301", call_to="2002")
    assert [r.uid for r in found.data] == [inbound.call_id]
    found = await client.cdr.search(call_from="2000", status="NO ANSWER")
    assert [r.uid for r in found.data] == [outbound.call_id]
    # Numbers match whole unless fuzzy search is asked for.
    assert (await client.cdr.search(call_from="200")).total_number == 0
    fuzzy = await client.cdr.search(call_from="200", enable_fuzzy_search=1)
    assert ids(fuzzy.data) == [2710, 2711, 2712, 2714, 2716, 2717]

    # Times in the display format bound the call's time, both ends included.
    found = await client.cdr.search(start_time=before, end_time=after)
    assert ids(found.data) == [2715, 2716, 2717]
    found = await client.cdr.search(end_time=before - timedelta(seconds=1))
    assert ids(found.data) == SEEDED
    found = await client.cdr.search(
        start_time="06/14/2022 11:19:28", end_time=before - timedelta(seconds=1)
    )
    assert ids(found.data) == [2714]
    # A time not in the PBX's display format finds nothing, as on the PBX (a wrong
    # datetime_format shows in tests too).
    wrong = await client.cdr.search(start_time="2022-05-30 00:00")
    assert wrong.total_number == 0
    assert wrong.data == []

    # No page parameters in the manual, but a raw request may still page the result.
    raw = await client.request("GET", "cdr/search", params={"call_from": "2000", "page_size": 1})
    assert (raw["total_number"], [r["uid"] for r in raw["data"]]) == (2, [dialled.call_id])


async def test_catalog_mode_keeps_answering_the_manuals_examples() -> None:
    async with FakePBX(stores=False) as pbx, client_for(pbx) as client:
        assert pbx.store is None
        found = await client.cdr.search(call_from="2000")  # filters are not applied
        assert (found.total_number, ids(found.data)) == (3, [2710, 2711, 2712])
        assert found.data[2].dst_trunk == "to28.41"  # as printed in cdr/search's example
        page = await client.cdr.list()
        expected = pbx.catalog.endpoints["cdr/list"].example()
        assert (page.total_number, len(page.data)) == (
            expected["total_number"],
            len(expected["data"]),
        )
