"""Red team: numbers beyond int64 in the answers of the OpenVox and Huawei CEC servers, and in
the envelope of a Yeastar answer, are refused as in the Yeastar models.

The Yeastar REST and event models bound every integer field to int64 (``Int64``, issue 11
point 8). The CEC's called-route models still had plain ints: ``queryCalledRoute`` handed the
application a ``dnid`` of 400 digits, and a ``deleteCalledRoute`` whose ``content`` listed one
such dnid gave a huge int (or, past 4,300 digits, a bare ValueError). The envelope read for a
Yeastar error turned an ``errcode`` beyond int64 into a ``YeastarError`` carrying it. Each is now
a :class:`TransportError` naming the field, within microseconds; int64's own edges still decode.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import msgspec
import pytest
from aiohttp import web
from msgspec import inspect as mi

from tests._openvox import PASSWORD
from tests._secrets import SecretWatch
from tests.security._transport_rig import bounded, client_for, hostile
from tests.security.test_audit_int64 import _int_fields
from yeastar_async import _http
from yeastar_async._http import decode_envelope
from yeastar_async._models import INT64_MAX, INT64_MIN, ApiResponse
from yeastar_async.errors import TransportError, YeastarError
from yeastar_async.huawei_cec import CecClient, CecPartialDeleteError, Dnid
from yeastar_async.huawei_cec import _client as cec_client
from yeastar_async.huawei_cec import _models as cec_models
from yeastar_async.openvox import OpenVoxClient, forget_login_failures
from yeastar_async.openvox import models as openvox_models
from yeastar_async.testing import FakeCec, FakeOpenVox

pytest_plugins = ["tests._cec"]

BOUND = 1.0  # seconds; a refusal costs microseconds
#: Integer literals no int64 field can hold (the last one past what Python's int() parses).
BEYOND = [str(INT64_MAX + 1), str(INT64_MIN - 1), "9" * 400, "9" * 4400]
QUERY = "calledRoute/queryCalledRoute"
DELETE = "calledRoute/deleteCalledRoute"


def _models_of(*modules: Any) -> Iterator[type[msgspec.Struct]]:
    for module in modules:
        for value in vars(module).values():
            if (
                isinstance(value, type)
                and issubclass(value, msgspec.Struct)
                and value.__module__ == module.__name__
            ):
                yield value


def test_every_int_the_other_servers_fill_is_bounded_to_int64() -> None:
    unbounded, checked = [], 0
    models = _models_of(openvox_models, cec_models, cec_client, _http)
    for model in models:
        for path, info in _int_fields(mi.type_info(model), model.__qualname__):
            checked += 1
            if (info.ge, info.le) != (INT64_MIN, INT64_MAX):
                unbounded.append(path)
    assert checked >= 10  # the walk found the models' ints (ids, dnid, errcode ...)
    assert unbounded == []


# -- Huawei CEC ----------------------------------------------------------------------------------

ROUTE: dict[str, Any] = {
    "id": "1125397061153369092",
    "dnid": 7,
    "accessCode": "4001",
    "devicetype": 1,
    "deviceId": 2,
    "mediatypeId": 5,
    "editable": 0,
}
CEC_INT_FIELDS = ["dnid", "devicetype", "deviceId", "mediatypeId", "editable", "total"]


#: The fake answers JSON built from a dict: Python ints of any length short of 4,300 digits.
BEYOND_INTS = [INT64_MAX + 1, INT64_MIN - 1, int("9" * 400)]


def _page(field: str, value: object) -> dict[str, Any]:
    """A ``queryCalledRoute`` success with ``value`` as ``field``."""
    route = dict(ROUTE)
    data: dict[str, Any] = {"total": 1, "calledRouteList": [route]}
    if field == "total":
        data["total"] = value
    else:
        route[field] = value
    return {"returnCode": "0", "description": "ok", "data": data}


def _raw(body: bytes) -> Any:
    async def answer(request: web.Request) -> web.Response:
        return web.Response(body=body, content_type="application/json")

    return answer


@pytest.mark.parametrize("field", CEC_INT_FIELDS)
@pytest.mark.parametrize("value", BEYOND_INTS, ids=["max+1", "min-1", "400-digits"])
async def test_a_cec_route_int_beyond_int64_is_a_transport_error(
    cec_fake: FakeCec, cec: CecClient, field: str, value: int
) -> None:
    cec_fake.set_response(QUERY, _page(field, value))
    started = time.perf_counter()
    beyond = rf"92233720368547758\d\d - at `\$.*\.{field}`"
    with pytest.raises(TransportError, match=beyond) as caught:
        await cec.called_route.query()
    assert time.perf_counter() - started < BOUND
    assert caught.value.status == 200
    assert caught.value.__context__ is None


@pytest.mark.parametrize("field", CEC_INT_FIELDS)
async def test_a_cec_route_int_at_the_int64_edge_still_decodes(
    cec_fake: FakeCec, cec: CecClient, field: str
) -> None:
    cec_fake.set_response(QUERY, _page(field, INT64_MAX))
    page = await cec.called_route.query()
    values = {
        "dnid": page.routes[0].dnid,
        "devicetype": page.routes[0].device_type,
        "deviceId": page.routes[0].device_id,
        "mediatypeId": page.routes[0].media_type_id,
        "editable": page.routes[0].editable,
        "total": page.total,
    }
    assert values[field] == INT64_MAX


async def test_a_cec_dnid_spelled_as_a_string_beyond_int64_is_refused(
    cec_fake: FakeCec, cec: CecClient
) -> None:
    route = dict(ROUTE, dnid=str(INT64_MAX + 1))
    cec_fake.set_response(
        QUERY, {"returnCode": "0", "data": {"total": 1, "calledRouteList": [route]}}
    )
    with pytest.raises(TransportError, match=r"9223372036854775807 - at `\$.*\.dnid`"):
        await cec.called_route.query()


@pytest.mark.parametrize("literal", [BEYOND[0], *BEYOND[2:]], ids=lambda s: f"{len(s)}-chars")
async def test_a_delete_content_listing_a_dnid_beyond_int64_is_a_transport_error(
    cec_fake: FakeCec, cec: CecClient, literal: str
) -> None:
    content = f"Success:1,Failed:{literal}"
    cec_fake.set_response(DELETE, {"returnCode": "0", "data": {"content": content}})
    started = time.perf_counter()
    with pytest.raises(TransportError, match="dnid out of the int64 range") as caught:
        await cec.called_route.delete(dnids=[Dnid(1), Dnid(2)])
    assert time.perf_counter() - started < BOUND
    assert len(str(caught.value)) < 2000  # the number is shortened, not printed whole


async def test_a_delete_content_at_the_int64_edge_still_reads(
    cec_fake: FakeCec, cec: CecClient
) -> None:
    content = f"Success:0001,Failed:{INT64_MAX}"
    cec_fake.set_response(DELETE, {"returnCode": "0", "data": {"content": content}})
    with pytest.raises(CecPartialDeleteError) as caught:
        await cec.called_route.delete(dnids=[Dnid(1), Dnid(INT64_MAX)])
    assert (caught.value.deleted, caught.value.failed) == ([1], [INT64_MAX])


@pytest.mark.parametrize("dnid", [INT64_MAX + 1, 2**20000], ids=["max+1", "huge"])
async def test_a_dnid_beyond_int64_is_refused_before_any_request(
    cec_fake: FakeCec, cec: CecClient, dnid: int
) -> None:
    with pytest.raises(ValueError, match=f"between 0 and {INT64_MAX}"):
        await cec.called_route.delete(dnids=Dnid(dnid))
    assert cec_fake.count(DELETE) == 0


# -- OpenVox -------------------------------------------------------------------------------------


def _routes_answer(fmt: str, literal: str) -> bytes:
    if fmt == "json":
        return (
            b'{"status":"Success","inroutes":[{"id":%s,"name":"a","desttype":"queue","dest":"1"}]}'
            % literal.encode()
        )
    return (
        b"<xml><status>Success</status><inroutes><item><id>%s</id><name>a</name>"
        b"<desttype>queue</desttype><dest>1</dest></item></inroutes></xml>" % literal.encode()
    )


@pytest.mark.parametrize("fmt", ["json", "xml"])
@bounded()
async def test_an_openvox_route_id_beyond_int64_is_a_transport_error(
    fmt: Any, secrets_never_logged: SecretWatch
) -> None:
    # The lenient converter refused these already; the model now says so itself (Int64).
    forget_login_failures()
    try:
        async with (
            FakeOpenVox(password=PASSWORD) as fake,
            OpenVoxClient(fake.base_url, "api", PASSWORD, fmt=fmt, report_host="127.0.0.1") as ov,
        ):
            for literal in BEYOND:
                fake.answer_raw(_routes_answer(fmt, literal), endpoint="inroute/query")
                started = time.perf_counter()
                with pytest.raises(TransportError, match=r"out of range|int64"):
                    await ov.inroute.query()
                assert time.perf_counter() - started < BOUND
            fake.answer_raw(_routes_answer(fmt, str(INT64_MAX)), endpoint="inroute/query")
            assert [r.id for r in await ov.inroute.query()] == [INT64_MAX]
    finally:
        forget_login_failures()


# -- The Yeastar envelope ------------------------------------------------------------------------


@pytest.mark.parametrize("literal", [*BEYOND[:3], f'"{INT64_MAX + 1}"'], ids=str.__len__)
def test_an_errcode_beyond_int64_is_a_transport_error_not_an_api_error(literal: str) -> None:
    body = b'{"errcode":%s,"errmsg":"FAILURE"}' % literal.encode()
    with pytest.raises(TransportError, match="errcode") as caught:
        decode_envelope(body, "extension/list", ApiResponse)
    assert caught.value.status == 200
    with pytest.raises(YeastarError) as edge:  # int64's edge is an error code, as sent
        decode_envelope(b'{"errcode":%d,"errmsg":"FAILURE"}' % INT64_MAX, "x", ApiResponse)
    assert not isinstance(edge.value, TransportError)
    assert edge.value.errcode == INT64_MAX


@bounded()
async def test_a_download_answered_with_an_errcode_beyond_int64_raises(
    secrets_never_logged: SecretWatch,
) -> None:
    body = b'{"errcode":%d,"errmsg":"FAILURE"}' % (2**64)

    async with hostile(secrets_never_logged) as pbx:
        pbx.routes["/api/download/call.wav"] = _raw(body)
        async with client_for(pbx) as client:
            with pytest.raises(TransportError, match="errcode") as caught:
                async for _ in client.files.iter_bytes("/api/download/call.wav"):
                    pass
    assert caught.value.__context__ is None
