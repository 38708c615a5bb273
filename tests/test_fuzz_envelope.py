"""Property-based tests of REST envelope decoding, ``_http.decode_envelope`` (issue 7).

Whatever the PBX answers, decoding gives the typed response, a typed ``YeastarError`` for a
non-zero errcode, or ``TransportError`` for anything that is not a usable envelope; nothing else.
A response built from a model and encoded as JSON decodes back to the same response.
"""

from __future__ import annotations

import json
from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from msgspec import inspect as mi

from tests.test_fuzz_events import json_values, strategy_for
from yeastar_async._http import decode_envelope
from yeastar_async._models import ApiResponse
from yeastar_async.errors import ERROR_TABLE, TransportError, YeastarError, error_for
from yeastar_async.resources._base import CreatedResponse, ObjectResponse, PageResponse
from yeastar_async.resources.call import CallIdResponse
from yeastar_async.resources.extension import ExtBasicinfo, ExtDetailInfo
from yeastar_async.resources.system import DeviceInfo

FUZZ = settings(
    max_examples=200,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)

#: Response types the resources use, and the escape hatch's plain dict.
RESPONSE_TYPES: list[Any] = [
    ApiResponse,
    CreatedResponse,
    CallIdResponse,
    ObjectResponse[DeviceInfo],
    ObjectResponse[ExtDetailInfo],
    PageResponse[ExtBasicinfo],
    dict[str, Any],
]
_types = st.sampled_from(RESPONSE_TYPES)
_codes = st.one_of(
    st.sampled_from(sorted(ERROR_TABLE)),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
)
_field_names = st.sampled_from(
    [
        "errcode",
        "errmsg",
        "data",
        "total_number",
        "id",
        "call_id",
        "invalid_param_list",
        "duplicate_field_list",
        "submsg",
        "access_token",
    ]
)


def _checked(body: bytes, response_type: Any) -> None:
    try:
        answer = decode_envelope(body, "fuzz/endpoint", response_type)
    except YeastarError as exc:  # TransportError is one too
        endpoint = exc.endpoint
    else:
        origin = getattr(response_type, "__origin__", response_type)
        assert isinstance(answer, origin)
        return
    assert endpoint == "fuzz/endpoint"


@st.composite
def envelopes(draw: st.DrawFn) -> bytes:
    """Bodies shaped like envelopes, every field allowed to be of the wrong JSON type."""
    doc: dict[str, Any] = {}
    # (Hypothesis starts from the simplest draws, 0 here: make those the plausible choices.)
    if draw(st.integers(0, 7)) < 7:
        doc["errcode"] = draw(st.one_of(st.just(0), st.just(0), _codes, json_values))
    if draw(st.booleans()):
        doc["errmsg"] = draw(json_values)
    for name in draw(st.lists(_field_names, max_size=4)):
        doc[name] = draw(json_values)
    text = json.dumps(doc)
    if draw(st.integers(0, 15)) == 15:
        text = text[: draw(st.integers(0, len(text)))]
    return text.encode()


@FUZZ
@given(st.binary(max_size=300), _types)
def test_any_bytes(body: bytes, response_type: Any) -> None:
    _checked(body, response_type)


@FUZZ
@given(envelopes(), _types)
def test_envelope_shaped_bodies(body: bytes, response_type: Any) -> None:
    _checked(body, response_type)


@pytest.mark.parametrize(
    ("where", "depth"),
    [
        ("top", 10),
        ("top", 1_000),
        ("top", 100_000),
        ("unknown field", 10),
        ("unknown field", 1_000),
        ("unknown field", 100_000),
        ("data", 10),
        ("data", 1_000),
        ("data", 100_000),
    ],
)
def test_deep_nesting(where: str, depth: int) -> None:
    nested = "[" * depth + "]" * depth
    body = {
        "top": nested,
        "unknown field": '{"errcode": 0, "x": ' + nested + "}",
        "data": '{"errcode": 0, "data": ' + nested + "}",
    }[where]
    for response_type in RESPONSE_TYPES:
        _checked(body.encode(), response_type)


@FUZZ
@given(
    st.sampled_from(sorted(ERROR_TABLE)).filter(lambda code: code != 0) | _codes,
    st.text(max_size=20),
    _types,
)
def test_a_non_zero_errcode_raises_its_typed_error(
    errcode: int, errmsg: str, response_type: Any
) -> None:
    if errcode == 0:
        return
    body = json.dumps({"errcode": errcode, "errmsg": errmsg, "data": {"x": 1}}).encode()
    with pytest.raises(YeastarError) as info:
        decode_envelope(body, "fuzz/endpoint", response_type)
    expected = error_for(errcode, errmsg, endpoint="fuzz/endpoint")
    assert type(info.value) is type(expected)
    assert not isinstance(info.value, TransportError)
    assert info.value.errcode == errcode


@st.composite
def responses(draw: st.DrawFn) -> tuple[Any, Any]:
    """A successful answer of one of the typed responses, built through its model."""
    response_type = draw(st.sampled_from(RESPONSE_TYPES[:-1]))
    answer = draw(strategy_for(mi.type_info(response_type)))
    return response_type, msgspec.structs.replace(answer, errcode=0)


@FUZZ
@given(responses())
def test_valid_answers_round_trip(case: tuple[Any, Any]) -> None:
    response_type, answer = case
    body = msgspec.json.encode(answer)
    assert decode_envelope(body, "fuzz/endpoint", response_type) == answer
