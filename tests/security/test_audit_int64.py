"""Audit of issue 11, point 8 on the typed fast paths: an integer beyond int64 is refused.

The lenient paths already refused a number no field can hold; the fast paths (msgspec Structs of
the events and of every REST answer) took an integer literal such as ``9223372036854775808`` or a
4,000-digit one as a Python int, handing the application a value no PBX field can mean. Every
integer field the SDK decodes is now ``Int64`` (bounded at msgspec level), so such a literal is a
decode error for that field on every path: the frame is malformed, the REST call raises.
"""

from __future__ import annotations

import importlib
import json
import pkgutil
import time
from collections.abc import Iterator
from typing import Any

import msgspec
import pytest
from aiohttp import web
from msgspec import inspect as mi

import yeastar_async.resources
from tests._secrets import SecretWatch
from tests.test_stream import Harness, emit_calls
from yeastar_async._http import decode_envelope
from yeastar_async._lenient import INT64_MAX, INT64_MIN
from yeastar_async._models import ApiResponse
from yeastar_async.errors import EventDecodeError, TransportError
from yeastar_async.events import TOPICS, CallStatusChanged, Connected, NewCdr, decode
from yeastar_async.resources._base import PageResponse, RequestModel
from yeastar_async.resources.cdr import CDRDetails
from yeastar_async.testing import FakePBX

from ._transport_rig import bounded, client_for, hostile

BOUND = 1.0  # seconds; the refusal costs microseconds
BEYOND = [str(INT64_MAX + 1), str(INT64_MIN - 1), str(2**64), "9" * 400, "9" * 4400]


def _int_fields(
    tp: mi.Type, path: str, seen: frozenset[type[Any]] = frozenset()
) -> Iterator[tuple[str, mi.IntType]]:
    """Every int reachable in ``tp`` (through optionals, containers and nested Structs; a
    recursive Struct is walked once)."""
    if isinstance(tp, mi.IntType):
        yield path, tp
    elif isinstance(tp, mi.UnionType):
        for member in tp.types:
            yield from _int_fields(member, path, seen)
    elif isinstance(tp, mi.ListType | mi.SetType | mi.FrozenSetType | mi.VarTupleType):
        yield from _int_fields(tp.item_type, f"{path}[]", seen)
    elif isinstance(tp, mi.DictType):
        yield from _int_fields(tp.value_type, f"{path}{{}}", seen)
    elif isinstance(tp, mi.StructType) and tp.cls not in seen:
        for field in tp.fields:
            yield from _int_fields(field.type, f"{path}.{field.encode_name}", seen | {tp.cls})


def _decoded_structs() -> Iterator[type[msgspec.Struct]]:
    """Every response Struct of the REST modules (request models are only encoded)."""
    seen: set[type[Any]] = set()
    package = yeastar_async.resources
    for info in pkgutil.iter_modules(package.__path__):
        module = importlib.import_module(f"{package.__name__}.{info.name}")
        for value in vars(module).values():
            if (
                isinstance(value, type)
                and issubclass(value, msgspec.Struct)
                and not issubclass(value, RequestModel)
                and value.__module__.startswith("yeastar_async.")
                and not getattr(value, "__parameters__", ())  # generics: checked via users
                and value not in seen
            ):
                seen.add(value)
                yield value


def _payload_types() -> Iterator[tuple[int, type[Any]]]:
    for topic, cls in sorted(TOPICS.items()):
        yield topic, msgspec.structs.fields(cls)[-1].type


def test_every_decoded_int_field_is_bounded_to_int64() -> None:
    unbounded = []
    targets: list[tuple[str, Any]] = [(f"{t}", p) for t, p in _payload_types()]
    targets += [(c.__qualname__, c) for c in _decoded_structs()]
    targets += [
        ("PageResponse[CDRDetails]", PageResponse[CDRDetails]),
        ("ApiResponse", ApiResponse),
    ]
    checked = 0
    for name, target in targets:
        for path, info in _int_fields(mi.type_info(target), name):
            checked += 1
            if (info.ge, info.le) != (INT64_MIN, INT64_MAX):
                unbounded.append(path)
    assert checked > 300  # the walk found the models' ints
    assert unbounded == []


def _frame(topic: int, payload: str, *, as_string: bool) -> str:
    msg = json.dumps(payload) if as_string else payload
    return f'{{"type":{topic},"sn":"x","msg":{msg}}}'


def _event_int_fields() -> Iterator[tuple[int, str]]:
    """(topic, top-level int field) of every event payload: one case each."""
    for topic, payload in _payload_types():
        for field in msgspec.structs.fields(payload):
            if isinstance(mi.type_info(field.type), mi.IntType):
                yield topic, field.encode_name


EVENT_INT_FIELDS = list(_event_int_fields())


def test_the_event_walk_found_the_int_fields() -> None:
    assert (30012, "call_duration") in EVENT_INT_FIELDS
    assert len(EVENT_INT_FIELDS) >= 15


@pytest.mark.parametrize(("topic", "name"), EVENT_INT_FIELDS)
@pytest.mark.parametrize("as_string", [True, False], ids=["msg-string", "msg-object"])
def test_an_event_int_beyond_int64_is_a_decode_error_naming_the_field(
    topic: int, name: str, as_string: bool
) -> None:
    # A payload that needs no repair otherwise: the typed fast path alone decides.
    frame = _frame(topic, f'{{"{name}":{INT64_MAX + 1}}}', as_string=as_string)
    with pytest.raises(EventDecodeError, match=rf"int64.*\$\.{name}"):
        decode(frame)
    edge = decode(_frame(topic, f'{{"{name}":{INT64_MAX}}}', as_string=as_string))
    assert getattr(edge.msg, name) == INT64_MAX


@pytest.mark.parametrize("literal", BEYOND, ids=lambda s: f"{len(s)}-chars")
def test_a_cdr_duration_beyond_int64_is_refused_quickly(literal: str) -> None:
    frame = _frame(30012, f'{{"call_id":"1","call_duration":{literal}}}', as_string=True)
    started = time.perf_counter()
    with pytest.raises(EventDecodeError, match="out of"):
        decode(frame)
    assert time.perf_counter() - started < BOUND


def test_an_unparseable_long_integer_in_a_string_field_is_a_decode_error_too() -> None:
    # 4,400 digits: msgspec refuses the literal itself; this was an UnknownEvent (counted as a
    # drifted payload, not a malformed frame).
    frame = _frame(30011, '{"call_id":' + "7" * 4400 + "}", as_string=True)
    with pytest.raises(EventDecodeError, match="out of range"):
        decode(frame)


async def test_a_frame_with_an_int_beyond_int64_counts_as_malformed() -> None:
    async with FakePBX(idle_timeout=0.5) as pbx, Harness(pbx) as h:
        h.record(Connected, CallStatusChanged, NewCdr)
        h.listen()
        await h.next(Connected)
        bomb = _frame(30012, f'{{"call_id":"big","call_duration":{2**64}}}', as_string=True)
        assert await pbx.push_raw(bomb) == 1
        await emit_calls(pbx, "after")
        assert (await h.next(CallStatusChanged)).msg.call_id == "after"
        assert h.stream.stats.malformed_frames == 1
        assert h.stream.stats.unknown_events == 0


@pytest.mark.parametrize("literal", BEYOND, ids=lambda s: f"{len(s)}-chars")
def test_a_rest_int_beyond_int64_raises_transport_error(literal: str) -> None:
    body = ('{"errcode":0,"total_number":1,"data":[{"id":1,"duration":' + literal + "}]}").encode()
    started = time.perf_counter()
    with pytest.raises(TransportError, match=r"\$\.data\[0\]\.duration|out of range") as info:
        decode_envelope(body, "cdr/list", PageResponse[CDRDetails])
    assert time.perf_counter() - started < BOUND
    assert info.value.status == 200
    ok = decode_envelope(
        b'{"errcode":0,"total_number":1,"data":[{"id":1,"duration":%d}]}' % INT64_MAX,
        "cdr/list",
        PageResponse[CDRDetails],
    )
    assert ok.data[0].duration == INT64_MAX


@bounded()
async def test_a_typed_rest_call_against_a_hostile_pbx_raises(
    secrets_never_logged: SecretWatch,
) -> None:
    async def answer(request: web.Request) -> web.Response:
        body = f'{{"errcode":0,"errmsg":"SUCCESS","total_number":{2**63},"data":[]}}'
        return web.Response(text=body, content_type="application/json")

    async with hostile(secrets_never_logged) as pbx:
        pbx.routes["cdr/list"] = answer
        async with client_for(pbx) as client:
            with pytest.raises(TransportError, match="total_number"):
                await client.cdr.list(page=1, page_size=10)


@pytest.mark.parametrize(
    "text", [str(INT64_MAX + 1), str(INT64_MIN - 1), "9" * 100_000], ids=["max+1", "min-1", "long"]
)
def test_an_int_spelled_as_a_string_beyond_int64_is_refused_the_same_way(text: str) -> None:
    # Lax conversion reads "60" as 60; a string beyond int64 is the same number bomb (it was an
    # UnknownEvent, or for 1e400 spelled as text a decode error: now one outcome for all).
    frame = f'{{"type":30012,"sn":"x","msg":{{"call_duration":"{text}"}}}}'
    started = time.perf_counter()
    with pytest.raises(EventDecodeError, match=r"int64.*\$\.call_duration"):
        decode(frame)
    assert time.perf_counter() - started < BOUND
    body = f'{{"errcode":0,"total_number":"{text}","data":[]}}'.encode()
    with pytest.raises(TransportError, match=r"\$\.total_number"):
        decode_envelope(body, "cdr/list", PageResponse[CDRDetails])
    assert decode(frame.replace(text, "60")).msg.call_duration == 60  # type: ignore[union-attr]
