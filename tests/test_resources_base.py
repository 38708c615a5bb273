"""The shared resource mechanism: encoding, call-time checks, pagination, lenient decoding."""

from __future__ import annotations

import asyncio
import collections.abc
from datetime import UTC, date, datetime, time, timedelta, timezone
from typing import Any

import msgspec
import pytest

from yeastar_async.resources import (
    AgentResource,
    CallReportResource,
    CallResource,
    CdrResource,
    ExtensionResource,
    InboundRouteResource,
    IvrResource,
    ObjectOrListResponse,
    OrganizationResource,
    PageResponse,
    Paginator,
    QueueResource,
    SystemResource,
    TrunkResource,
    UacstaCallResource,
    WakeupcallResource,
)
from yeastar_async.resources._base import (
    DEFAULT_PAGE_SIZE,
    check_rules,
    encode_body,
    encode_query,
    endpoint_spec,
    exactly_one,
    requires,
)
from yeastar_async.resources.extension import (
    ExtBasicinfo,
    OrganizationInfoParam,
    PresenceSettingParam,
)
from yeastar_async.resources.inbound_route import TrunkListParam
from yeastar_async.resources.queue import SatisfactionSurveyPointListParam


class Transport:
    """Records requests; answers with ``reply(params_or_json)`` or a bare success."""

    def __init__(self, reply: Any = None) -> None:
        self.sent: list[tuple[str, str, Any]] = []
        self.reply = reply

    async def request(
        self,
        method: str,
        endpoint: str,
        *,
        params: collections.abc.Mapping[str, str] | None = None,
        json: Any = None,
        response_type: Any,
        timeout: float | None = None,
    ) -> Any:
        given = dict(params) if params is not None else json
        self.sent.append((method, endpoint, given))
        body = self.reply(given) if self.reply else {"errcode": 0, "errmsg": "SUCCESS"}
        return msgspec.json.Decoder(response_type, strict=False).decode(msgspec.json.encode(body))

    def download(
        self, resource_url: str, *, timeout: float | None = None, chunk_size: int = 65536
    ) -> collections.abc.AsyncIterator[bytes]:
        raise AssertionError("not used")


# -- encoding ---------------------------------------------------------------------------------


def test_query_encoding() -> None:
    assert encode_query(
        {
            "ids": [1, 2, 3],
            "flag": True,
            "off": False,
            "page": 2,
            "start_time": datetime(2022, 5, 30, 0, 0, 0),
            "day": date(2022, 5, 30),
            "alarm": time(7, 5),
            "from_": "2000",
            "skipped": None,
            "text": "NO ANSWER",
        }
    ) == {
        "ids": "1,2,3",
        "flag": "1",
        "off": "0",
        "page": "2",
        "start_time": "05/30/2022 00:00:00",
        "day": "05/30/2022",
        "alarm": "07:05",
        "from": "2000",
        "text": "NO ANSWER",
    }


def test_query_refuses_objects() -> None:
    with pytest.raises(TypeError, match="'filter'"):
        encode_query({"filter": {"a": 1}})


def test_body_encoding() -> None:
    body = encode_body(
        {
            "presence_list": [
                PresenceSettingParam(status="away", ring_timeout=30, enb_ring_mobile=True),
                {"status": "lunch", "ring_timeout": 20, "in_always_forward_dest": None},
            ],
            "organization_list": [OrganizationInfoParam(value="1")],
            "enb_vm": False,
            "prompt": ["a.wav", "b.wav"],
            "outbound_route_permission": (3, 4),
            "alarm_time": time(7, 30),
            "dropped": None,
        },
        joined={"prompt"},
    )
    assert body == {
        "presence_list": [
            {"status": "away", "ring_timeout": 30, "enb_ring_mobile": 1},
            {"status": "lunch", "ring_timeout": 20},
        ],
        "organization_list": [{"value": "1"}],
        "enb_vm": 0,
        "prompt": "a.wav,b.wav",
        "outbound_route_permission": [3, 4],
        "alarm_time": "07:30",
    }


def test_custom_datetime_format() -> None:
    twelve_hour = "%Y/%m/%d %I:%M:%S %p"
    query = encode_query(
        {"start_time": datetime(2022, 4, 1, 0, 0, 0), "time": date(2022, 4, 1)},
        datetime_format=twelve_hour,
    )
    assert query == {"start_time": "2022/04/01 12:00:00 AM", "time": "2022/04/01"}


async def test_datetime_and_list_parameters_through_methods() -> None:
    transport = Transport()
    await CdrResource(transport).search(
        start_time=datetime(2022, 5, 30), end_time=datetime(2022, 5, 30, 23, 59, 59)
    )
    await CallReportResource(transport, datetime_format="%Y/%m/%d %H:%M:%S").list(
        type="extcallactivity", time=date(2022, 4, 1), ext_id_list=[1, 2]
    )
    await ExtensionResource(transport).query(ids=[5, 6, 7])
    await QueueResource(transport).agent_login(ext_ids=(1, 2), queue_id=3, operation="login")
    await WakeupcallResource(transport).create(
        ext_id=1, alarm_time=time(6, 45), repeat_type=["every_monday", "every_friday"]
    )
    await TrunkResource(transport).update(id=3, codec_sel=["ulaw", "alaw"])
    assert transport.sent == [
        (
            "GET",
            "cdr/search",
            {"start_time": "05/30/2022 00:00:00", "end_time": "05/30/2022 23:59:59"},
        ),
        (
            "GET",
            "call_report/list",
            {"type": "extcallactivity", "time": "2022/04/01", "ext_id_list": "1,2"},
        ),
        ("GET", "extension/query", {"ids": "5,6,7"}),
        ("GET", "queue/agent_login", {"ext_ids": "1,2", "queue_id": "3", "operation": "login"}),
        (
            "POST",
            "wakeupcall/create",
            {"ext_id": 1, "alarm_time": "06:45", "repeat_type": "every_monday,every_friday"},
        ),
        ("POST", "trunk/update", {"id": 3, "codec_sel": "ulaw,alaw"}),
    ]


async def test_a_datetime_for_a_date_parameter_sends_only_its_date() -> None:
    transport = Transport()
    moment = datetime(2024, 3, 5, 14, 7, 9)
    await CallReportResource(transport).list(type="extcallactivity", time=moment, ext_id_list=[1])
    await CallReportResource(transport, datetime_format="%Y/%m/%d %I:%M:%S %p").download(
        type="trunkactivity", time=moment, trunk_id_list=[2], start_time=moment
    )
    assert [sent[2] for sent in transport.sent] == [
        {"type": "extcallactivity", "time": "03/05/2024", "ext_id_list": "1"},
        {
            "type": "trunkactivity",
            "time": "2024/03/05",
            "trunk_id_list": "2",
            "start_time": "2024/03/05 02:07:09 PM",  # a date-time parameter keeps its time
        },
    ]
    spec = endpoint_spec(CallReportResource.list)
    assert spec is not None
    assert spec.date_only() == frozenset({"time"})
    cdr = endpoint_spec(CdrResource.search)
    assert cdr is not None
    assert cdr.date_only() == frozenset()


async def test_an_aware_datetime_is_sent_as_its_own_wall_clock_time() -> None:
    transport = Transport()
    eastern = timezone(timedelta(hours=-5))
    await CdrResource(transport).search(
        start_time=datetime(2024, 3, 5, 23, 30, tzinfo=eastern),
        end_time=datetime(2024, 3, 6, 1, 0, tzinfo=UTC),
    )
    assert transport.sent[0][2] == {
        "start_time": "03/05/2024 23:30:00",
        "end_time": "03/06/2024 01:00:00",
    }
    # The date part of the wall-clock time, not of the time converted to UTC (03/06).
    await CallReportResource(transport).list(
        type="extcallactivity", time=datetime(2024, 3, 5, 23, 30, tzinfo=eastern), ext_id_list=[1]
    )
    assert transport.sent[1][2]["time"] == "03/05/2024"


async def test_update_sends_only_the_named_fields() -> None:
    transport = Transport()
    await ExtensionResource(transport).update(id=60, presence_status="off_work")
    await ExtensionResource(transport).update(id=61, first_name=None, enb_vm=True)
    assert transport.sent == [
        ("POST", "extension/update", {"id": 60, "presence_status": "off_work"}),
        ("POST", "extension/update", {"id": 61, "enb_vm": 1}),
    ]


async def test_nested_parameters_accept_structs_and_dicts() -> None:
    transport = Transport()
    await InboundRouteResource(transport).create(
        name="main",
        trunk_list=[TrunkListParam(id=1), {"id": 2, "name": "backup"}],
        def_dest="extension",
        def_dest_value="57",
    )
    await QueueResource(transport).update(
        id=1,
        satisfaction_survey_point_list=[SatisfactionSurveyPointListParam(k="1", p=5)],
        empty_defined_for_leave_empty=["1", "2"],
    )
    assert transport.sent[0][2]["trunk_list"] == [{"id": 1}, {"id": 2, "name": "backup"}]
    # The manual's examples use lower-case k/p and send these choices as a JSON array.
    assert transport.sent[1][2] == {
        "id": 1,
        "satisfaction_survey_point_list": [{"k": "1", "p": 5}],
        "empty_defined_for_leave_empty": ["1", "2"],
    }


async def test_ivr_per_key_templates_are_spelled_out() -> None:
    transport = Transport()
    spec = endpoint_spec(IvrResource.create)
    assert spec is not None
    params = spec.fields()
    for key in range(10):
        for name in (f"press{key}_dest", f"press{key}_dest_prefix", f"press{key}_dest_value"):
            assert name in params
        assert f"allow_out_record{key}" in params
    await IvrResource(transport).update(id=3, press7_dest="extension", press7_dest_value="57")
    assert transport.sent[0][2] == {"id": 3, "press7_dest": "extension", "press7_dest_value": "57"}


# -- call-time checks -------------------------------------------------------------------------


async def test_positional_and_unknown_arguments_are_refused_before_io() -> None:
    transport = Transport()
    get: Any = ExtensionResource(transport).get  # deliberately wrong calls
    with pytest.raises(TypeError, match=r"extension\.get\(\)"):
        get(5)
    with pytest.raises(TypeError, match="colour"):
        get(id=5, colour="red")
    with pytest.raises(TypeError, match="'id'"):
        get()
    assert transport.sent == []


async def test_shared_parameter_sets_are_checked_like_keywords() -> None:
    transport = Transport()
    search: Any = ExtensionResource(transport).search  # deliberately wrong calls
    with pytest.raises(TypeError, match="unexpected keyword argument 'colour'"):
        search(search_value="x", colour="red")
    hangup: Any = UacstaCallResource(transport).hangup
    with pytest.raises(TypeError, match="missing required keyword argument 'ip_address'"):
        hangup(extension="2000", call_id="1")
    assert transport.sent == []
    await ExtensionResource(transport).search(search_value="Leo", page=2, sort_by="number")
    await UacstaCallResource(transport).hangup(extension="2000", call_id="1", ip_address="::1")
    assert [s[2] for s in transport.sent] == [
        {"search_value": "Leo", "page": "2", "sort_by": "number"},
        {"extension": "2000", "call_id": "1", "ip_address": "::1"},
    ]


def test_rule_messages_name_the_parameters() -> None:
    rule = requires("pin", when="pin_protect", equals="single_pin")
    rule.check("x()", {"pin_protect": "disable"})
    with pytest.raises(ValueError, match=r"x\(\): pin required when pin_protect='single_pin'"):
        rule.check("x()", {"pin_protect": "single_pin"})
    one = exactly_one("a", "b")
    one.check("y()", {"a": 1})
    with pytest.raises(ValueError, match=r"exactly one of a, b \(got none\)"):
        one.check("y()", {})
    with pytest.raises(ValueError, match=r"\(got a, b\)"):
        one.check("y()", {"a": 1, "b": 2})


def test_every_broken_rule_is_named_in_one_error() -> None:
    rules = (
        requires("a", when="kind", equals="x"),
        exactly_one("b", "c"),
        requires("d", when="e", equals=1),
    )
    with pytest.raises(ValueError, match="; ") as caught:
        check_rules("z()", rules, {"kind": "x"})
    assert str(caught.value) == (
        "z(): a required when kind='x'; give exactly one of b, c (got none)"
    )
    check_rules("z()", rules, {"kind": "y", "c": 1})  # keeps every rule: no error


async def test_call_report_names_every_missing_parameter_at_once() -> None:
    transport = Transport()
    report = CallReportResource(transport)
    with pytest.raises(ValueError, match="trunk_id_list") as caught:
        await report.list(type="trunkactivity")
    message = str(caught.value)
    assert message.startswith("call_report.list(): time required when type=")
    assert "; trunk_id_list required when type=" in message
    with pytest.raises(ValueError, match=r"time required .*; ext_id_list required"):
        await report.download(type="extcallactivity")
    with pytest.raises(ValueError, match="trunk_id_list") as caught:
        await report.list(type="trunkactivity", time="2024/03")
    assert str(caught.value).startswith("call_report.list(): trunk_id_list required when type=")
    assert ";" not in str(caught.value)  # one violation left: its message as before
    assert transport.sent == []


async def test_call_query_and_hangup_need_exactly_one_identifier() -> None:
    transport = Transport()
    call = CallResource(transport)
    with pytest.raises(ValueError, match="call_id, type, number"):
        await call.query()
    with pytest.raises(ValueError, match=r"got call_id, number"):
        await call.query(call_id="1650095575.872", number="2000")
    with pytest.raises(ValueError, match="channel_id, paging_number"):
        await call.hangup()
    assert transport.sent == []
    await call.query(type="inbound")
    await call.hangup(paging_number="6300")
    assert [s[2] for s in transport.sent] == [{"type": "inbound"}, {"paging_number": "6300"}]


async def test_call_report_requirements_follow_the_report_type() -> None:
    transport = Transport()
    report = CallReportResource(transport)
    with pytest.raises(ValueError, match="ivr_id_list required when type='ivr'"):
        await report.list(type="ivr")
    with pytest.raises(ValueError, match="time"):
        await report.download(type="trunkactivity", trunk_id_list="1")
    assert transport.sent == []
    await report.list(type="queueagentlogintime", queue_id="3")
    assert transport.sent == [
        ("GET", "call_report/list", {"type": "queueagentlogintime", "queue_id": "3"})
    ]


async def test_trunk_create_requirements_follow_the_trunk_type() -> None:
    transport = Transport()
    trunk = TrunkResource(transport)
    with pytest.raises(ValueError, match="hostname, port, domain required when type='peer'"):
        await trunk.create(name="t", country="c", type="peer", transport="udp", codec_sel="ulaw")
    with pytest.raises(ValueError, match="number, password, auth_name"):
        await trunk.create(name="t", country="c", type="account", transport="udp", codec_sel="ulaw")
    assert transport.sent == []


async def test_checks_run_at_call_time_not_at_await() -> None:
    transport = Transport()
    with pytest.raises(ValueError, match="id required when menu='queue_agent'"):
        _ = SystemResource(transport).get_menuoptions(menu="queue_agent")  # never awaited
    pending = SystemResource(transport).get_menuoptions(menu="queue_agent", id=2)
    assert transport.sent == []  # nothing leaves before the coroutine runs
    await pending
    assert transport.sent == [("GET", "system/get_menuoptions", {"menu": "queue_agent", "id": "2"})]


def test_response_type_is_resolved_once() -> None:
    spec = endpoint_spec(ExtensionResource.list)
    assert spec is not None
    first = spec.response_type()
    assert first is spec.response_type()
    assert first == PageResponse[ExtBasicinfo]


# -- pagination -------------------------------------------------------------------------------


def pages_of(items: list[int], *, total: bool = True, key: str = "data") -> Any:
    """A reply function serving ``items`` by page/page_size like the PBX."""

    def reply(params: dict[str, str]) -> dict[str, Any]:
        page, size = int(params.get("page", 1)), int(params.get("page_size", 10))
        chunk = [{"id": i} for i in items[(page - 1) * size : page * size]]
        body: dict[str, Any] = {"errcode": 0, "errmsg": "SUCCESS", key: chunk}
        if total:
            body["total_number"] = len(items)
        return body

    return reply


async def test_await_fetches_exactly_the_requested_page() -> None:
    transport = Transport(pages_of(list(range(7))))
    result = ExtensionResource(transport).list(page=2, page_size=3)
    assert isinstance(result, Paginator)
    page = await result
    assert [e.id for e in page.data] == [3, 4, 5]
    assert page.total_number == 7
    assert transport.sent == [("GET", "extension/list", {"page": "2", "page_size": "3"})]


async def test_a_page_can_be_a_task_of_a_task_group() -> None:
    transport = Transport(pages_of(list(range(7))))
    async with asyncio.TaskGroup() as tg:
        task = tg.create_task(ExtensionResource(transport).list(page=3, page_size=3).fetch())
    assert [e.id for e in task.result().data] == [6]


async def test_iteration_stops_at_total_without_an_extra_request() -> None:
    transport = Transport(pages_of(list(range(6))))
    seen = [e.id async for e in ExtensionResource(transport).list(page_size=3, sort_by="id")]
    assert seen == list(range(6))
    assert [s[2] for s in transport.sent] == [
        {"page": "1", "page_size": "3", "sort_by": "id"},
        {"page": "2", "page_size": "3", "sort_by": "id"},
    ]


async def test_iteration_stops_at_a_short_page_and_uses_the_default_page_size() -> None:
    transport = Transport(pages_of(list(range(DEFAULT_PAGE_SIZE + 5))))
    seen = [c.id async for c in CdrResource(transport).list()]
    assert len(seen) == DEFAULT_PAGE_SIZE + 5
    assert [s[2]["page"] for s in transport.sent] == ["1", "2"]
    assert transport.sent[0][2]["page_size"] == str(DEFAULT_PAGE_SIZE)


async def test_iteration_from_a_later_page() -> None:
    transport = Transport(pages_of(list(range(10))))
    seen = [e.id async for e in ExtensionResource(transport).list(page=2, page_size=4)]
    assert seen == [4, 5, 6, 7, 8, 9]
    assert [s[2]["page"] for s in transport.sent] == ["2", "3"]


async def test_without_total_a_short_or_empty_page_ends_the_iteration() -> None:
    short = Transport(pages_of(list(range(5)), total=False, key="organization_list"))
    got = [o.id async for o in OrganizationResource(short).list(page_size=2)]
    assert got == list(range(5))
    assert len(short.sent) == 3
    exact = Transport(pages_of(list(range(4)), total=False, key="organization_list"))
    got = [o.id async for o in OrganizationResource(exact).list(page_size=2)]
    assert got == list(range(4))
    # Without a total, only an empty page tells that the list ended.
    assert [s[2]["page"] for s in exact.sent] == ["1", "2", "3"]


async def test_a_total_larger_than_the_list_still_terminates() -> None:
    def reply(params: dict[str, str]) -> dict[str, Any]:
        body: dict[str, Any] = pages_of(list(range(4)))(params)
        body["total_number"] = 100
        return body

    transport = Transport(reply)
    got = [e.id async for e in ExtensionResource(transport).list(page_size=2)]
    assert got == [0, 1, 2, 3]
    assert len(transport.sent) == 3


async def test_items_come_from_the_endpoints_list_field() -> None:
    transport = Transport(pages_of(list(range(3)), key="queue_list"))
    assert [q.id async for q in QueueResource(transport).search(search_value="x")] == [0, 1, 2]


async def test_pages_yields_whole_responses_and_breaking_stops_requests() -> None:
    transport = Transport(pages_of(list(range(9))))
    paginator = ExtensionResource(transport).list(page_size=3)
    totals = [page.total_number async for page in paginator.pages()]
    assert totals == [9, 9, 9]
    transport.sent.clear()
    async for _ext in paginator:
        break
    assert len(transport.sent) == 1
    assert "page_size" in repr(paginator)


# -- lenient decoding -------------------------------------------------------------------------


async def test_object_or_list_data_decodes_both_ways() -> None:
    body: dict[str, Any] = {"errcode": 0, "errmsg": "SUCCESS", "data": {"id": 8, "name": "T"}}
    transport = Transport(lambda _params: body)
    single = await TrunkResource(transport).get(id=8)
    assert isinstance(single, ObjectOrListResponse)
    assert [t.name for t in single.items] == ["T"]
    body["data"] = [{"id": 8, "name": "T"}, {"id": 9, "name": "U"}]
    several = await TrunkResource(transport).get(id=8)
    assert [t.id for t in several.items] == [8, 9]
    body.pop("data")
    assert (await TrunkResource(transport).get(id=8)).items == []


async def test_numbers_as_strings_new_fields_and_missing_fields_decode() -> None:
    body = {
        "errcode": 0,
        "errmsg": "SUCCESS",
        "total_number": "2",
        "data": [{"id": "238", "number": "2000", "new_firmware_field": {"x": 1}}, {}],
        "another_new_key": True,
    }
    page = await ExtensionResource(Transport(lambda _p: body)).list(page=1)
    assert page.total_number == 2
    assert page.data[0].id == 238
    assert page.data[1].number is None


async def test_a_parameter_the_manual_spells_two_ways_is_sent_under_both() -> None:
    transport = Transport()
    await QueueResource(transport).agent_login(
        ext_ids=[92, 85], queue_id=3, operation="login", is_paused=1
    )
    await AgentResource(transport).login(ext_id=85, operation="login")
    assert transport.sent == [
        (
            "GET",
            "queue/agent_login",
            {
                "ext_ids": "92,85",
                "queue_id": "3",
                "operation": "login",
                "is_paused": "1",
                "is_pause": "1",
            },
        ),
        ("GET", "agent/login", {"ext_id": "85", "operation": "login"}),
    ]
