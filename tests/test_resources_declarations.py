"""The one-line endpoint declarations of resources/_base.py: what they send and how they read."""

from __future__ import annotations

import inspect
import typing
from typing import Any, Literal

import msgspec
import pytest

from tests.test_resources_base import Transport
from yeastar_async.resources._base import (
    ListEndpoint,
    ObjectResponse,
    PageResponse,
    Resource,
    by_id,
    endpoint_spec,
)
from yeastar_async.resources.call_report import ExtCallActivityList, ExtCallStatisticsList
from yeastar_async.resources.extension import ExtensionListQuery, ExtensionResource
from yeastar_async.resources.queue import ActiveList, QueueResource, WaitingList


async def test_by_id_sends_the_id_and_decodes() -> None:
    transport = Transport(lambda p: {"errcode": 0, "errmsg": "SUCCESS", "data": {"id": 7}})
    answer = await ExtensionResource(transport).get(id=7)
    assert transport.sent == [("GET", "extension/get", {"id": "7"})]
    assert answer.data is not None
    assert answer.data.id == 7


async def test_by_id_missing_id_is_a_type_error_before_io() -> None:
    transport = Transport()
    with pytest.raises(TypeError, match="id"):
        ExtensionResource(transport).get()  # type: ignore[call-arg]
    assert transport.sent == []


async def test_search_endpoint_sends_only_given_parameters() -> None:
    transport = Transport(lambda p: {"errcode": 0, "errmsg": "SUCCESS", "queue_list": []})
    await QueueResource(transport).search(search_value="sales", sort_by="number")
    assert transport.sent == [
        ("GET", "queue/search", {"search_value": "sales", "sort_by": "number"})
    ]


def test_list_spec_keeps_the_sort_by_literal_and_docs() -> None:
    spec = endpoint_spec(ExtensionResource.list)
    assert spec is not None
    assert spec.paginated
    sort_by = spec.fields()["sort_by"].annotation
    assert "number" in typing.get_args(typing.get_args(sort_by)[0])
    doc = inspect.getdoc(ExtensionResource(Transport()).list) or ""
    assert "manual line" in doc
    assert "sort_by:" in doc


def test_list_endpoint_without_types_is_refused() -> None:
    with pytest.raises((TypeError, RuntimeError), match="ListEndpoint"):

        class Broken(Resource):
            group = "x"
            list = ListEndpoint("X.", 1)  # type: ignore[var-annotated]


def test_one_line_declaration_in_a_new_resource() -> None:
    class Thing(msgspec.Struct, kw_only=True):
        id: int | None = None

    class Things(Resource):
        group = "thing"
        get = by_id(ObjectResponse[Thing], "One thing.", 1, "Its id.")
        list = ListEndpoint[PageResponse[Thing], Thing, Literal["id"]]("All.", 2)

    assert set(Things.endpoints()) == {"get", "list"}


def test_aliases_and_bases_keep_names_and_fields() -> None:
    assert ActiveList is WaitingList
    assert ExtensionListQuery.__required_keys__ == frozenset()
    row: dict[str, Any] = {"ext_num": "1000", "answered_calls": 3, "time": 5}
    stats = msgspec.convert(row, ExtCallStatisticsList)
    assert (stats.ext_num, stats.answered_calls) == ("1000", 3)
    activity = msgspec.convert(row, ExtCallActivityList)
    assert (activity.time, activity.answered_calls) == (5, 3)
