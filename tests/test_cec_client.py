"""CecClient against the FakeCec over loopback: every endpoint, the token life cycle, and
every error path."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest

from tests._clock import Clock
from yeastar_async.errors import TransportError, YeastarError
from yeastar_async.huawei_cec import (
    CalledRoute,
    CalledRouteId,
    CalledRoutePage,
    CecAuthError,
    CecClient,
    CecHttpError,
    CecPartialDeleteError,
    CecReturnCodeError,
    DeviceType,
    Dnid,
)
from yeastar_async.resources._base import OFFSETS, Paginator
from yeastar_async.testing import FakeCec

# The fixtures cec, cec_fake and clock.
pytest_plugins = ["tests._cec"]


QUERY = "calledRoute/queryCalledRoute"
MODIFY = "calledRoute/modifyCalledRoute"
CREATE = "calledRoute/createCalledRoute"
DELETE = "calledRoute/deleteCalledRoute"
TOKEN = "tokenByAkSk"


# -- endpoints ---------------------------------------------------------------------------------


async def test_create_sends_the_wire_names_and_the_token(cec: CecClient, cec_fake: FakeCec) -> None:
    result = await cec.called_route.create(
        access_code="4001",
        ext_code="12",
        device_type=DeviceType.IVR,
        device_id=9,
        media_type_id=5,
    )
    assert result.return_code == "0"
    sent = cec_fake.requests_for(CREATE)[0]
    assert sent.json == {
        "accessCode": "4001",
        "extCode": "12",
        "mediaTypeId": 5,
        "devicetype": 3,
        "deviceId": 9,
    }
    token = cec_fake.issued_tokens()[0]
    assert sent.headers["Authorization"] == f"Bearer {token}"
    assert sent.headers["X-APP-Key"] == cec_fake.app_key
    (route,) = cec_fake.routes.values()
    assert (route.accessCode, route.devicetype, route.deviceId) == ("4001", 3, 9)
    login = cec_fake.requests_for(TOKEN)[0]
    assert login.headers["X-Token-Expire"] == "3600"
    assert login.json == {"app_key": cec_fake.app_key, "app_secret": cec_fake.app_secret}


async def test_create_of_a_bound_access_code_raises_the_return_code(
    cec: CecClient, cec_fake: FakeCec
) -> None:
    cec_fake.add_route("4001")
    with pytest.raises(CecReturnCodeError) as caught:
        await cec.called_route.create(
            access_code="4001", device_type=DeviceType.SKILL_QUEUE, device_id=1
        )
    assert caught.value.return_code == "2"
    assert "already bound" in caught.value.description
    assert "already bound" in str(caught.value)
    assert caught.value.endpoint == CREATE
    assert isinstance(caught.value, YeastarError)


async def test_query_awaited_is_one_typed_page(cec: CecClient, cec_fake: FakeCec) -> None:
    first = cec_fake.add_route("4001", device_type=1, device_id=7, editable=1)
    cec_fake.add_route("4002", device_type=3, device_id=2)
    page = await cec.called_route.query(access_code="4001")
    assert isinstance(page, CalledRoutePage)
    assert page.total == 1
    (route,) = page.routes
    assert isinstance(route, CalledRoute)
    assert route.id == first.id
    assert isinstance(route.id, str)
    assert route.dnid == first.dnid
    assert isinstance(route.dnid, int)
    assert (route.device_type, route.device_id, route.device_desc) == (1, 7, "Skill queue 7")
    assert route.can_delete
    assert not route.can_modify
    assert cec_fake.requests_for(QUERY)[0].json == {"accessCode": "4001"}


async def test_query_filters_reach_the_wire(cec: CecClient, cec_fake: FakeCec) -> None:
    cec_fake.add_route("4001", device_type=3, device_id=2)
    page = await cec.called_route.query(
        ext_code="1", device_type=DeviceType.IVR, device_desc="ivr", media_type_id=5, limit=5
    )
    assert page.routes == []
    assert cec_fake.requests_for(QUERY)[0].json == {
        "extCode": "1",
        "devicetype": 3,
        "deviceDesc": "ivr",
        "mediaTypeId": 5,
        "limit": 5,
    }
    page = await cec.called_route.query(device_desc="IVR")
    assert [r.access_code for r in page.routes] == ["4001"]


async def test_query_iterated_walks_every_page_by_offset(cec: CecClient, cec_fake: FakeCec) -> None:
    for n in range(250):
        cec_fake.add_route(f"5{n:03d}")
    codes = [route.access_code async for route in cec.called_route.query()]
    assert codes == [f"5{n:03d}" for n in range(250)]
    sent = [(r.json["offset"], r.json["limit"]) for r in cec_fake.requests_for(QUERY)]
    assert sent == [(0, 100), (100, 100), (200, 100)]  # the total ends it: no 4th request


async def test_query_iterated_from_an_offset_with_a_small_limit(
    cec: CecClient, cec_fake: FakeCec
) -> None:
    for n in range(5):
        cec_fake.add_route(f"6{n}")
    codes = [r.access_code async for r in cec.called_route.query(limit=2, offset=1)]
    assert codes == ["61", "62", "63", "64"]
    assert [r.json["offset"] for r in cec_fake.requests_for(QUERY)] == [1, 3]
    pages = [p async for p in cec.called_route.query(limit=3).pages()]
    assert [len(p.routes) for p in pages] == [3, 2]


async def test_offset_paging_advances_by_the_items_received() -> None:
    """A server that caps ``limit`` below what was asked skips nothing."""
    rows = list(range(7))
    asked: list[tuple[int, int]] = []

    class Page:
        def __init__(self, items: list[int]) -> None:
            self.items = items
            self.total = len(rows)

    async def fetch(arguments: dict[str, Any]) -> Page:
        asked.append((arguments["offset"], arguments["limit"]))
        start = arguments["offset"]
        return Page(rows[start : start + min(arguments["limit"], 3)])

    got = [x async for x in Paginator[Page, int](fetch, {"limit": 5}, items="items", style=OFFSETS)]
    assert got == rows
    assert asked == [(0, 5), (3, 5), (6, 5)]


async def test_modify_moves_a_route_to_a_queue(cec: CecClient, cec_fake: FakeCec) -> None:
    stored = cec_fake.add_route("4001", device_type=3, device_id=2)
    (route,) = (await cec.called_route.query(access_code="4001")).routes
    result = await cec.called_route.modify(
        route_id=route.id, device_type=DeviceType.SKILL_QUEUE, device_id=7
    )
    assert result.description == "data update success"
    assert (stored.devicetype, stored.deviceId) == (1, 7)
    assert cec_fake.requests_for(MODIFY)[0].json == {
        "id": route.id,
        "devicetype": 1,
        "deviceId": 7,
    }


@pytest.mark.parametrize(
    ("editable", "route_id", "code", "text"),
    [(0, "nope", "3", "not found"), (1, None, "4", "not editable")],
)
async def test_modify_refused_keeps_the_raw_code(
    cec: CecClient, cec_fake: FakeCec, editable: int, route_id: str | None, code: str, text: str
) -> None:
    stored = cec_fake.add_route("4001", editable=editable)
    with pytest.raises(CecReturnCodeError) as caught:
        await cec.called_route.modify(
            route_id=CalledRouteId(route_id or stored.id), device_type=DeviceType.IVR, device_id=1
        )
    assert caught.value.return_code == code
    assert text in caught.value.description
    assert caught.value.status == 200


async def test_delete_by_dnid(cec: CecClient, cec_fake: FakeCec) -> None:
    a, b = cec_fake.add_route("4001"), cec_fake.add_route("4002")
    result = await cec.called_route.delete(dnids=[Dnid(a.dnid), Dnid(b.dnid)])
    assert result.deleted == [a.dnid, b.dnid]
    assert result.failed == []
    assert cec_fake.routes == {}
    assert cec_fake.requests_for(DELETE)[0].json == {"dnids": f"{a.dnid},{b.dnid}"}
    c = cec_fake.add_route("4003")
    await cec.called_route.delete(dnids=Dnid(c.dnid))  # one dnid alone
    assert cec_fake.routes == {}


async def test_partial_delete_raises_naming_what_failed(cec: CecClient, cec_fake: FakeCec) -> None:
    a = cec_fake.add_route("4001")
    b = cec_fake.add_route("4002", editable=2)
    with pytest.raises(CecPartialDeleteError) as caught:
        await cec.called_route.delete(dnids=[Dnid(a.dnid), Dnid(b.dnid), Dnid(9)])
    assert caught.value.deleted == [a.dnid]
    assert caught.value.failed == [b.dnid, 9]
    assert f"{b.dnid}, 9" in str(caught.value)
    assert list(cec_fake.routes) == [b.id]


async def test_delete_of_nothing_deletable_raises_the_return_code(
    cec: CecClient, cec_fake: FakeCec
) -> None:
    with pytest.raises(CecReturnCodeError) as caught:
        await cec.called_route.delete(dnids=[Dnid(1)])
    assert caught.value.return_code == "5"


# -- id and dnid cannot be swapped ---------------------------------------------------------------


async def test_a_dnid_is_refused_where_a_route_id_belongs(
    cec: CecClient, cec_fake: FakeCec
) -> None:
    route = cec_fake.add_route("4001")
    with pytest.raises(TypeError, match="a number is a dnid"):
        await cec.called_route.modify(
            route_id=route.dnid,  # type: ignore[arg-type]
            device_type=DeviceType.IVR,
            device_id=1,
        )
    (typed,) = (await cec.called_route.query()).routes
    with pytest.raises(TypeError, match=r"pass route\.id"):
        await cec.called_route.modify(
            route_id=typed,  # type: ignore[arg-type]
            device_type=DeviceType.IVR,
            device_id=1,
        )
    with pytest.raises(TypeError, match="a string is a route id"):
        await cec.called_route.delete(dnids=[typed.id])  # type: ignore[list-item]
    with pytest.raises(TypeError, match="a string is a route id"):
        await cec.called_route.delete(dnids=typed.id)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"pass route\.dnid"):
        await cec.called_route.delete(dnids=[typed])  # type: ignore[list-item]
    assert cec_fake.count(MODIFY) == cec_fake.count(DELETE) == 0


@pytest.mark.parametrize(
    ("call", "message"),
    [
        ({"op": "create", "access_code": "x" * 33}, "at most 32"),
        ({"op": "create", "access_code": ""}, "non-empty"),
        ({"op": "create", "ext_code": "1" * 13}, "at most 12"),
        ({"op": "create", "device_type": 2}, "DeviceType.SKILL_QUEUE"),
        ({"op": "create", "device_type": True}, "DeviceType.SKILL_QUEUE"),
        ({"op": "create", "media_type_id": 4}, "media_type_id"),
        ({"op": "create", "device_id": -1}, "device_id must be >= 0"),
        ({"op": "query", "limit": 101}, "limit must be 0..100"),
        ({"op": "query", "offset": -1}, "offset must be >= 0"),
        ({"op": "modify", "route_id": " 12"}, "without spaces"),
        ({"op": "delete", "dnids": []}, "at least one"),
        ({"op": "delete", "dnids": list(range(1001))}, "at most 1000"),
        ({"op": "delete", "dnids": [-3]}, "-3"),
    ],
)
async def test_bad_arguments_are_refused_before_any_io(
    cec: CecClient, cec_fake: FakeCec, call: dict[str, Any], message: str
) -> None:
    op = call.pop("op")
    routes = cec.called_route

    async def attempt() -> None:
        if op == "create":
            args = {"access_code": "4001", "device_type": 1, "device_id": 1, **call}
            await routes.create(**args)
        elif op == "query":
            routes.query(**call)
        elif op == "modify":
            await routes.modify(device_type=DeviceType.IVR, device_id=1, **call)
        else:
            await routes.delete(**call)

    with pytest.raises(ValueError, match=message):
        await attempt()
    assert cec_fake.requests == []


# -- tokens ------------------------------------------------------------------------------------


async def test_one_token_serves_many_calls(cec: CecClient, cec_fake: FakeCec) -> None:
    for _ in range(3):
        await cec.called_route.query()
    assert cec_fake.count(TOKEN) == 1


async def test_token_renewed_before_create_time_plus_expires(
    cec_fake: FakeCec, clock: Clock
) -> None:
    async with CecClient(
        cec_fake.base_url, cec_fake.app_key, cec_fake.app_secret, token_ttl=600, clock=clock
    ) as client:
        await client.called_route.query()
        assert cec_fake.requests_for(TOKEN)[0].headers["X-Token-Expire"] == "600"
        clock.advance(539)  # 61 s left: still used
        await client.called_route.query()
        assert cec_fake.count(TOKEN) == 1
        clock.advance(2)  # 59 s left: renewed before the CEC would refuse it
        await client.called_route.query()
        assert cec_fake.count(TOKEN) == 2
        assert cec_fake.stats.auth_rejections == 0
        second = cec_fake.issued_tokens()[1]
        assert cec_fake.requests_for(QUERY)[-1].headers["Authorization"] == f"Bearer {second}"


async def test_concurrent_calls_share_one_token_fetch(cec: CecClient, cec_fake: FakeCec) -> None:
    cec_fake.delay_next(1, 0.2, endpoint=TOKEN)
    pages = await asyncio.gather(*(cec.called_route.query().fetch() for _ in range(20)))
    assert len(pages) == 20
    assert cec_fake.count(TOKEN) == 1


async def test_a_failed_token_fetch_fails_every_waiter_once(
    cec: CecClient, cec_fake: FakeCec
) -> None:
    cec_fake.fail_next(1, status=403, endpoint=TOKEN)
    results = await asyncio.gather(
        *(cec.called_route.query().fetch() for _ in range(10)), return_exceptions=True
    )
    assert all(isinstance(r, CecAuthError) for r in results)
    assert cec_fake.count(TOKEN) == 1
    await cec.called_route.query()  # the next call tries again, and succeeds
    assert cec_fake.count(TOKEN) == 2


async def test_cancelled_caller_leaves_the_fetch_for_the_others(
    cec: CecClient, cec_fake: FakeCec
) -> None:
    cec_fake.delay_next(1, 0.3, endpoint=TOKEN)
    first = asyncio.create_task(cec.called_route.query().fetch())
    await cec_fake.wait_for_request(TOKEN)
    second = asyncio.create_task(cec.called_route.query().fetch())
    first.cancel()
    page = await second
    assert page.return_code == "0"
    assert cec_fake.count(TOKEN) == 1


async def test_a_skewed_cec_clock_does_not_make_every_call_fetch_a_token(
    clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    behind = Clock(clock.now - 7200)
    async with FakeCec(clock=behind) as fake:
        async with CecClient(fake.base_url, fake.app_key, fake.app_secret, clock=clock) as client:
            with caplog.at_level(logging.WARNING, "yeastar_async.cec"):
                for _ in range(3):
                    await client.called_route.query()
        assert fake.count(TOKEN) == 1
        assert "away from the local clock" in caplog.text


async def test_an_expired_token_gets_one_fresh_token_and_one_more_try(
    cec: CecClient, cec_fake: FakeCec
) -> None:
    await cec.called_route.query()
    cec_fake.expire_tokens()  # the CEC forgot it early
    page = await cec.called_route.query()
    assert page.return_code == "0"
    assert cec_fake.count(TOKEN) == 2
    assert [r.status for r in cec_fake.requests_for(QUERY)] == [200, 401, 200]


async def test_401_again_with_a_fresh_token_raises_without_looping(
    cec: CecClient, cec_fake: FakeCec
) -> None:
    cec_fake.reject_tokens(100)
    with pytest.raises(CecAuthError) as caught:
        await cec.called_route.modify(
            route_id=CalledRouteId("1"), device_type=DeviceType.IVR, device_id=1
        )
    assert caught.value.status == 401
    assert cec_fake.count(TOKEN) == 2
    assert cec_fake.count(MODIFY) == 2
    assert "again with a new token" in str(caught.value)


async def test_403_is_an_auth_failure_too(cec: CecClient, cec_fake: FakeCec) -> None:
    cec_fake.fail_next(2, status=403, endpoint=QUERY)
    with pytest.raises(CecAuthError) as caught:
        await cec.called_route.query()
    assert caught.value.status == 403
    assert cec_fake.count(QUERY) == 2


async def test_wrong_app_secret_is_an_auth_error_without_business_calls(
    cec_fake: FakeCec,
) -> None:
    async with CecClient(cec_fake.base_url, cec_fake.app_key, "wrong-secret-value") as client:
        with pytest.raises(CecAuthError) as caught:
            await client.called_route.query()
    assert caught.value.status == 403
    assert caught.value.endpoint == "tokenByAkSk"
    assert "wrong-secret-value" not in str(caught.value)
    assert cec_fake.count(TOKEN) == 1
    assert cec_fake.count(QUERY) == 0


async def test_token_answer_without_a_token(cec: CecClient, cec_fake: FakeCec) -> None:
    cec_fake.set_response(TOKEN, {"returnCode": "1001", "description": "app frozen"})
    with pytest.raises(CecAuthError) as caught:
        await cec.called_route.query()
    assert caught.value.return_code == "1001"
    assert "app frozen" in caught.value.description


# -- other failures ------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [400, 404, 500])
async def test_http_errors_are_typed(cec: CecClient, cec_fake: FakeCec, status: int) -> None:
    cec_fake.fail_next(1, status=status, endpoint=MODIFY)
    with pytest.raises(CecHttpError) as caught:
        await cec.called_route.modify(
            route_id=CalledRouteId("1"), device_type=DeviceType.IVR, device_id=1
        )
    assert caught.value.status == status
    assert cec_fake.count(MODIFY) == 1  # not retried: the CEC may have acted


async def test_return_code_kept_as_the_raw_string(cec: CecClient, cec_fake: FakeCec) -> None:
    cec_fake.fail_next_return_code(1, "0100", "skill queue 7 does not exist", endpoint=CREATE)
    with pytest.raises(CecReturnCodeError) as caught:
        await cec.called_route.create(access_code="1", device_type=DeviceType.IVR, device_id=7)
    assert caught.value.return_code == "0100"
    assert str(caught.value) == (
        "calledRoute/createCalledRoute: the CEC answered returnCode '0100': "
        "'skill queue 7 does not exist'"
    )


async def test_an_answer_without_return_code_is_no_success(
    cec: CecClient, cec_fake: FakeCec
) -> None:
    cec_fake.set_response(MODIFY, {"description": "?"})
    with pytest.raises(CecReturnCodeError, match="no returnCode") as caught:
        await cec.called_route.modify(
            route_id=CalledRouteId("1"), device_type=DeviceType.IVR, device_id=1
        )
    assert caught.value.return_code is None


async def test_drifting_types_decode_leniently(cec: CecClient, cec_fake: FakeCec) -> None:
    cec_fake.set_response(
        QUERY,
        {
            "returnCode": 0,
            "data": {
                "total": "1",
                "calledRouteList": [{"id": 1125397061153369092, "dnid": "77", "accessCode": 4001}],
            },
        },
    )
    (route,) = (await cec.called_route.query()).routes
    assert (route.id, route.dnid, route.access_code) == ("1125397061153369092", 77, "4001")


async def test_an_answer_that_is_not_json(cec: CecClient, cec_fake: FakeCec) -> None:
    cec_fake.set_response(QUERY, {"returnCode": "0", "data": {"calledRouteList": "zzz"}})
    with pytest.raises(TransportError, match="not the JSON expected"):
        await cec.called_route.query()


async def test_a_slow_answer_times_out(cec: CecClient, cec_fake: FakeCec) -> None:
    cec_fake.delay_next(1, 2.0, endpoint=QUERY)
    with pytest.raises(TransportError, match=r"no answer within 0\.2 s"):
        await cec.called_route.query(timeout=0.2)


async def test_a_call_waits_for_a_token_no_longer_than_its_timeout(
    cec: CecClient, cec_fake: FakeCec
) -> None:
    cec_fake.delay_next(1, 1.0, endpoint=TOKEN)
    slow = asyncio.create_task(cec.called_route.query().fetch())  # waits the whole fetch
    with pytest.raises(TransportError, match=r"no token within 0\.1 s"):
        await cec.called_route.query(timeout=0.1)
    assert (await slow).return_code == "0"  # the shared fetch went on
    assert cec_fake.count(TOKEN) == 1


async def test_the_concurrency_cap_holds(cec_fake: FakeCec, clock: Clock) -> None:
    async with CecClient(
        cec_fake.base_url, cec_fake.app_key, cec_fake.app_secret, clock=clock, max_concurrency=2
    ) as client:
        await client.called_route.query()
        cec_fake.delay_next(2, 0.3, endpoint=QUERY)
        tasks = [asyncio.create_task(client.called_route.query().fetch()) for _ in range(3)]
        await cec_fake.wait_for_request(QUERY, 3)  # the warm-up and two in flight
        assert len(client._slots.waiters) == 1  # the third waits for a slot
        assert cec_fake.count(QUERY) == 3
        await asyncio.gather(*tasks)
        assert cec_fake.count(QUERY) == 4


# -- construction --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("domain", "message"),
    [
        ("", "host name"),
        ("http://cec.example.com", "plain http"),
        ("https://cec.example.com/apiaccess", "host name"),
        ("ftp://cec.example.com", "host name"),
        ("https://cec.example.com/?a=1", "query"),
    ],
)
def test_bad_domains_are_refused(domain: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        CecClient(domain, "key", "secret-value")


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"token_ttl": 0}, "1..3600"),
        ({"token_ttl": 3601}, "1..3600"),
        ({"token_ttl": 60.5}, "whole seconds"),
        ({"timeout": 0}, "timeout"),
        ({"max_concurrency": 0}, "max_concurrency"),
        ({"max_response_size": 10}, "max_response_size"),
    ],
)
def test_bad_options_are_refused(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        CecClient("cec.example.com", "key", "secret-value", **options)


def test_bad_credentials_are_refused_and_the_secret_not_shown() -> None:
    with pytest.raises(ValueError, match="app_key"):
        CecClient("cec.example.com", "", "secret-value")
    with pytest.raises(ValueError, match="app_secret") as caught:
        CecClient("cec.example.com", "key", "   ")
    with pytest.raises(ValueError, match="line breaks") as caught:
        CecClient("cec.example.com", "key", "secret\r\nvalue")
    assert "secret" not in str(caught.value).replace("app_secret", "")


def test_a_bare_domain_means_https() -> None:
    client = CecClient("service.besclouds.com", "key", "secret-value")
    assert client.base_url == "https://service.besclouds.com"
    assert "secret-value" not in repr(client)


async def test_a_closed_client_refuses_calls(cec_fake: FakeCec) -> None:
    client = CecClient(cec_fake.base_url, cec_fake.app_key, cec_fake.app_secret)
    async with client:
        await client.called_route.query()
    with pytest.raises(RuntimeError, match="closed"):
        await client.called_route.query()
