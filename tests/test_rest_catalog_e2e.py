"""Every REST endpoint of the catalog through a real ``YeastarClient`` and the FakePBX.

The unit tests in ``test_resources_catalog.py`` check what each method hands to the transport;
these tests check what actually reaches the PBX over a loopback socket: the HTTP method and
path, GET parameters in the query string and POST parameters in the JSON body under the
manual's names, and that the PBX's answer decodes into the method's typed response. The
parameter synthesis is shared with those unit tests (imported from them), so both layers are
driven with the same values and must agree on the wire.

Pagination is exercised end to end too: every paginated endpoint is iterated across several
pages, against the FakePBX's stores where it keeps state and against a paging handler
elsewhere, counting the requests (no empty extra page when ``total_number`` is known).
"""

from __future__ import annotations

import json
import math
import typing
from collections.abc import AsyncIterator, Callable
from datetime import datetime
from typing import Any

import msgspec
import pytest
from test_resources_catalog import (
    CATALOG,
    IDS,
    REQUIRED_CASES,
    SPECS,
    RecordingTransport,
    hints,
    minimal_call,
    rule_cases,
    synth,
    violating,
)

from yeastar_async import YeastarClient
from yeastar_async._models import ApiResponse
from yeastar_async.resources import RESOURCE_CLASSES, Paginator
from yeastar_async.resources._base import EndpointSpec, _answer_type, wire_name
from yeastar_async.resources._profile import V2_ONLY_ENDPOINTS, VERSION_ONLY
from yeastar_async.testing import FakePBX, RequestRecord

#: A string value that needs encoding in a query string: '+' must not turn into a space,
#: '&' and '=' must not split parameters, '#' must not end the URL (no ',': lists use it).
AWKWARD = "a +b&c=d/é?#%"
API = "/openapi/v1.0/"


def client_for(pbx: FakePBX) -> YeastarClient:
    # retries=0: a failure shows at once instead of being retried. The v1.0 forms of the
    # versioned endpoints are tested here, the v2.0 ones in test_fwrest_versions.py.
    return YeastarClient(
        pbx.base_url, pbx.client_id, pbx.client_secret, retries=0, cdr_api_version="1.0"
    )


@pytest.fixture
async def catalog_pbx() -> AsyncIterator[FakePBX]:
    async with FakePBX(stores=False) as pbx:
        yield pbx


@pytest.fixture
async def store_pbx() -> AsyncIterator[FakePBX]:
    async with FakePBX() as pbx:
        yield pbx


def method_of(client: YeastarClient, endpoint_id: str) -> Callable[..., Any]:
    attr, name, _ = SPECS[endpoint_id]
    method: Callable[..., Any] = getattr(getattr(client, attr), name)
    return method


def awkward(value: Any) -> Any:
    """``value`` with every synthesised plain string replaced by :data:`AWKWARD`."""
    if value == "x":
        return AWKWARD
    if isinstance(value, list):
        return [awkward(v) for v in value]
    if isinstance(value, msgspec.Struct):
        changes = {f: awkward(getattr(value, f)) for f in value.__struct_fields__}
        return msgspec.structs.replace(value, **changes)
    return value


def full_call(spec: EndpointSpec) -> dict[str, Any]:
    """Every parameter, keeping only the first member of each "exactly one of" set."""
    th = hints(spec)
    v2_only = VERSION_ONLY.get(spec.path, (frozenset(), frozenset()))[1]
    kwargs = {name: awkward(synth(th[name])) for name in spec.fields() if name not in v2_only}
    for rule in spec.rules:
        if rule.exactly_one and rule.applies(kwargs):
            for extra in rule.names[1:]:
                kwargs.pop(extra, None)
    return kwargs


async def expected_wire(endpoint_id: str, kwargs: dict[str, Any]) -> Any:
    """What the resource layer hands to the transport for ``kwargs`` (the unit-tested view)."""
    transport = RecordingTransport()
    attr, name, _ = SPECS[endpoint_id]
    await getattr(RESOURCE_CLASSES[attr](transport), name)(**kwargs)
    [sent] = transport.sent
    if sent.method == "GET":
        return sent.params
    # The wire carries JSON: compare with the body after a JSON round trip.
    return json.loads(msgspec.json.encode(sent.json))


def only_request(pbx: FakePBX, endpoint_id: str) -> RequestRecord:
    [record] = pbx.requests_for(endpoint_id)
    return record


def check_wire(record: RequestRecord, endpoint_id: str, kwargs: dict[str, Any], wire: Any) -> None:
    method = CATALOG[endpoint_id]["method"]
    assert record.method == method
    assert record.path == API + endpoint_id
    assert record.user_agent == "OpenAPI"
    # A parameter the manual spells two ways goes under both names (EndpointSpec.also).
    also = SPECS[endpoint_id][2].also
    names = {wire_name(k) for k in kwargs} | {also[k] for k in kwargs if k in also}
    if method == "GET":
        assert record.body == b""
        assert set(record.query) == names | {"access_token"}
        # Each value arrived once and intact (no '+' turned into a space, no split on '&').
        assert {k: v for k, v in record.query.items() if k != "access_token"} == wire
    else:
        assert set(record.query) == {"access_token"}  # POST parameters never in the URL
        assert record.headers.get("Content-Type", "").startswith("application/json")
        assert isinstance(record.json, dict)
        assert set(record.json) == names
        assert record.json == wire


def check_type(answer: Any, tp: Any) -> None:
    """``answer`` is a ``tp``; for ``XResponse[Item]`` the items in ``data`` are ``Item`` too."""
    origin = typing.get_origin(tp) or tp
    assert isinstance(answer, origin)
    assert isinstance(answer, ApiResponse)
    args = typing.get_args(tp)
    if not args or not isinstance(args[0], type):
        return
    data = getattr(answer, "data", None)
    for item in data if isinstance(data, list) else [] if data is None else [data]:
        assert isinstance(item, args[0])


def page_of(items: list[Any], params: dict[str, Any]) -> list[Any]:
    """The slice of an example list the fake answers for ``page`` / ``page_size``."""
    if "page_size" not in params:
        return items
    page, size = int(params.get("page", 1)), int(params["page_size"])
    return items[(page - 1) * size : page * size]


def check_answer(pbx: FakePBX, record: RequestRecord, endpoint_id: str, answer: Any) -> None:
    check_type(answer, _answer_type(SPECS[endpoint_id][2].response_type(), "1.0"))
    body = pbx.catalog.endpoints[endpoint_id].example(record.params)
    assert (answer.errcode, answer.errmsg) == (0, "SUCCESS")
    documented = set(CATALOG[endpoint_id]["response_keys"]) - {"errcode", "errmsg"}
    for key in documented & set(body):
        got, sent = getattr(answer, key), body[key]
        if isinstance(sent, list):
            assert isinstance(got, list)
            assert len(got) == len(page_of(sent, record.params))
        elif isinstance(sent, dict):
            assert isinstance(got, msgspec.Struct | list)
        elif key != "download_resource_url":  # the fake may point it at a staged file
            assert got == sent or str(got) == str(sent)


@pytest.mark.parametrize("endpoint_id", [e for e in IDS if e not in V2_ONLY_ENDPOINTS])
async def test_endpoint_over_the_wire(catalog_pbx: FakePBX, endpoint_id: str) -> None:
    spec = SPECS[endpoint_id][2]
    async with client_for(catalog_pbx) as client:
        for kwargs in (minimal_call(spec), full_call(spec)):
            catalog_pbx.clear_requests()
            result = method_of(client, endpoint_id)(**kwargs)
            if spec.paginated:
                assert isinstance(result, Paginator)
            answer = await result
            record = only_request(catalog_pbx, endpoint_id)
            check_wire(record, endpoint_id, kwargs, await expected_wire(endpoint_id, kwargs))
            check_answer(catalog_pbx, record, endpoint_id, answer)


def test_every_catalog_endpoint_is_routed_here() -> None:
    # The manual's, plus those of the current pages (catalog/p_series_current.json).
    assert len(IDS) == 120 + 6
    assert all(CATALOG[e]["method"] in ("GET", "POST") for e in IDS)


async def test_refused_calls_send_nothing_not_even_a_login(catalog_pbx: FakePBX) -> None:
    """Every required parameter left out, every conditional rule broken: nothing on the wire."""
    async with client_for(catalog_pbx) as client:
        for endpoint_id, missing in REQUIRED_CASES:
            kwargs = minimal_call(SPECS[endpoint_id][2])
            del kwargs[missing]
            with pytest.raises(TypeError, match=missing):
                await method_of(client, endpoint_id)(**kwargs)
        for endpoint_id, index, mode in rule_cases():
            spec = SPECS[endpoint_id][2]
            with pytest.raises(ValueError, match=spec.rules[index].names[-1]):
                await method_of(client, endpoint_id)(**violating(spec, spec.rules[index], mode))
        assert catalog_pbx.requests == []
    assert len(REQUIRED_CASES) > 100


async def test_datetime_parameters_arrive_in_the_display_format(catalog_pbx: FakePBX) -> None:
    async with client_for(catalog_pbx) as client:
        await client.cdr.search(
            start_time=datetime(2024, 1, 2, 3, 4, 5), end_time=datetime(2024, 1, 2, 13, 0, 0)
        )
    record = only_request(catalog_pbx, "cdr/search")
    assert record.query["start_time"] == "01/02/2024 03:04:05"
    assert record.query["end_time"] == "01/02/2024 13:00:00"


async def test_list_parameters_are_comma_separated_in_the_query(catalog_pbx: FakePBX) -> None:
    async with client_for(catalog_pbx) as client:
        await client.extension.query(ids=[39, 223, 227])
    assert only_request(catalog_pbx, "extension/query").query["ids"] == "39,223,227"


# -- pagination over several pages --------------------------------------------------------------

PAGINATED = [e for e in IDS if SPECS[e][2].paginated]


def pager(spec: EndpointSpec, example: dict[str, Any], count: int) -> Callable[..., Any]:
    """A FakePBX handler serving ``count`` items of the example's shape, page by page."""
    assert spec.items is not None
    rows = example.get(spec.items) or [{}]
    items = [{**rows[0], "id": i} if "id" in rows[0] else dict(rows[0]) for i in range(count)]

    def answer(record: RequestRecord) -> dict[str, Any]:
        page, size = int(record.query["page"]), int(record.query["page_size"])
        assert spec.items is not None
        body = {"errcode": 0, "errmsg": "SUCCESS", spec.items: items[(page - 1) * size :][:size]}
        if spec.has_total:
            body["total_number"] = count
        return body

    return answer


def expected_requests(count: int, size: int, has_total: bool) -> int:
    if has_total:
        return max(math.ceil(count / size), 1)  # never an empty page after the last one
    return count // size + 1  # no total: only a short (or empty) page ends the walk


@pytest.mark.parametrize(("count", "size"), [(6, 2), (5, 2), (3, 1)])
@pytest.mark.parametrize("endpoint_id", PAGINATED)
async def test_iteration_walks_every_page(
    catalog_pbx: FakePBX, endpoint_id: str, count: int, size: int
) -> None:
    spec = SPECS[endpoint_id][2]
    example = catalog_pbx.catalog.endpoints[endpoint_id].example()
    catalog_pbx.set_response(endpoint_id, pager(spec, example, count))
    async with client_for(catalog_pbx) as client:
        seen = [item async for item in method_of(client, endpoint_id)(page_size=size)]
    assert len(seen) == count
    if "id" in (example.get(spec.items or "data") or [{}])[0]:
        assert [item.id for item in seen] == list(range(count))
    pages = [int(r.query["page"]) for r in catalog_pbx.requests_for(endpoint_id)]
    assert pages == list(range(1, expected_requests(count, size, spec.has_total) + 1))
    sizes = {r.query["page_size"] for r in catalog_pbx.requests_for(endpoint_id)}
    assert sizes == {str(size)}


#: Paginated endpoints the FakePBX keeps state for: (endpoint, how to add an item, search word).
STORED: dict[str, tuple[str, str | None]] = {
    "extension/list": ("extensions", None),
    "extension/search": ("extensions", "pager"),
    "company_contact/list": ("contacts", None),
    "company_contact/search": ("contacts", "pager"),
    "phonebook/list": ("phonebooks", None),
    "phonebook/search": ("phonebooks", "pager"),
    "inbound_route/list": ("inbound_routes", None),
    "inbound_route/search": ("inbound_routes", "pager"),
    "queue/list": ("queues", None),
    "queue/search": ("queues", "pager"),
}


def seed(pbx: FakePBX, table_name: str, n: int) -> list[int]:
    """Add ``n`` items whose searchable fields contain "pager"; returns their ids."""
    assert pbx.store is not None
    table = getattr(pbx.store, table_name)
    added = []
    for i in range(n):
        tag = f"pager{i}"
        item = table.add(
            {
                "name": tag,
                "number": f"77{i:02d}",
                "first_name": tag,
                "company": tag,
                "email_addr": f"{tag}@example.com",
            }
        )
        added.append(item["id"])
    return added


@pytest.mark.parametrize("size", [1, 2, 3])
@pytest.mark.parametrize("endpoint_id", sorted(STORED))
async def test_iteration_over_the_stores(store_pbx: FakePBX, endpoint_id: str, size: int) -> None:
    table_name, word = STORED[endpoint_id]
    added = seed(store_pbx, table_name, 5)
    spec = SPECS[endpoint_id][2]
    kwargs: dict[str, Any] = {"page_size": size}
    if word is not None:
        kwargs["search_value"] = word
    async with client_for(store_pbx) as client:
        first = await method_of(client, endpoint_id)(**kwargs, page=1)
        total = first.total_number
        assert isinstance(total, int)
        assert total >= 5
        store_pbx.clear_requests()
        ids = [item.id async for item in method_of(client, endpoint_id)(**kwargs)]
    assert store_pbx.store is not None
    table = getattr(store_pbx.store, table_name)
    assert ids == (sorted(table.items) if word is None else added)
    assert len(ids) == total == len(set(ids))
    requests = store_pbx.requests_for(endpoint_id)
    assert len(requests) == math.ceil(total / size)  # no extra empty page
    assert [int(r.query["page"]) for r in requests] == list(range(1, len(requests) + 1))
    assert spec.has_total


@pytest.mark.parametrize("size", [1, 2])
async def test_wakeup_list_without_total_stops_at_a_short_page(
    store_pbx: FakePBX, size: int
) -> None:
    async with client_for(store_pbx) as client:
        for ext_id in (223, 227, 228):
            await client.wakeupcall.create(ext_id=ext_id, alarm_time="06:45")
        store_pbx.clear_requests()
        entries = [entry async for entry in client.wakeupcall.list(page_size=size)]
    assert [e.ext_id for e in entries] == [39, 223, 227, 228]
    # No total in the answer: a short page ends the walk, or an empty one after full pages.
    assert store_pbx.count("wakeupcall/list") == 4 // size + 1


async def test_iteration_goes_on_past_pages_the_pbx_capped(catalog_pbx: FakePBX) -> None:
    # The PBX caps page_size (10000 on a PBX, 2 here): a short page with items still missing
    # per total_number is not the end of the list.
    rows = [{"id": i} for i in range(7)]

    def capped(record: RequestRecord) -> dict[str, Any]:
        page, size = int(record.query["page"]), min(int(record.query["page_size"]), 2)
        chunk = rows[(page - 1) * size : page * size]
        return {"errcode": 0, "errmsg": "SUCCESS", "total_number": len(rows), "data": chunk}

    catalog_pbx.set_response("cdr/list", capped)
    async with client_for(catalog_pbx) as client:
        ids = [cdr.id async for cdr in client.cdr.list(page_size=5)]
    assert ids == list(range(7))
    assert [r.query["page"] for r in catalog_pbx.requests_for("cdr/list")] == ["1", "2", "3", "4"]


@pytest.mark.parametrize("endpoint_id", ["recording/list", "trunk/list", "ivr/list"])
async def test_example_lists_are_walked_once(catalog_pbx: FakePBX, endpoint_id: str) -> None:
    # These examples announce more items (total_number) than they print: walking the pages
    # yields each printed item once and ends at the first empty page, with no repeats.
    example = catalog_pbx.catalog.endpoints[endpoint_id].example()
    printed = example["data"]
    assert example["total_number"] > len(printed)
    async with client_for(catalog_pbx) as client:
        ids = [item.id async for item in method_of(client, endpoint_id)(page_size=1)]
    assert ids == [row["id"] for row in printed]
    assert catalog_pbx.count(endpoint_id) == len(printed) + 1
