"""Property-based tests of ``events.decode`` (issue 7).

Whatever a frame holds, ``decode`` gives a typed event, an ``UnknownEvent``, or raises
``EventDecodeError``; nothing else. A payload built from the models and encoded the way the PBX
encodes it (``msg`` as a JSON string, or as an object) decodes back to the same event.
"""

from __future__ import annotations

import json
from typing import Any

import msgspec
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from msgspec import inspect as mi

from yeastar_async.errors import EventDecodeError
from yeastar_async.events import TOPICS, Event, UnknownEvent, decode

FUZZ = settings(
    max_examples=300,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)

# -- inputs ---------------------------------------------------------------------------------------

_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=12),
)
#: Any JSON value, nested a few levels.
json_values = st.recursive(
    _scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(st.text(max_size=8), inner, max_size=4),
    ),
    max_leaves=12,
)
_topic = st.one_of(st.sampled_from(sorted(TOPICS)), st.integers(min_value=-5, max_value=40_000))
_known_keys = st.sampled_from(
    [
        "call_id",
        "members",
        "extension",
        "inbound",
        "outbound",
        "number",
        "channel_id",
        "member_status",
        "member_statuses",
        "status",
        "ip_address",
        "ip_addresses",
        "info",
        "infos",
        "call_path",
        "from",
        "to",
    ]
)
#: Payload-shaped dicts: the models' own keys with values of any JSON type.
_payloads = st.recursive(
    st.dictionaries(_known_keys, _scalars, max_size=5),
    lambda inner: st.dictionaries(
        _known_keys, st.one_of(_scalars, inner, st.lists(inner, max_size=3)), max_size=5
    ),
    max_leaves=15,
)


@st.composite
def envelopes(draw: st.DrawFn) -> str | bytes:
    """Frames shaped like events, with every part allowed to be wrong."""
    doc: dict[str, Any] = {}
    # Mostly plausible (a topic, a payload-like msg) so that the typed and repair paths get
    # exercised as much as the refusals.
    # (Hypothesis starts from the simplest draws, 0 here: make those the plausible choices.)
    if draw(st.integers(0, 7)) < 7:
        doc["type"] = draw(st.one_of(_topic, _topic, _topic, json_values, _topic.map(str)))
    if draw(st.booleans()):
        doc["sn"] = draw(st.one_of(st.text(max_size=14), json_values))
    if draw(st.integers(0, 7)) < 7:
        msg = draw(st.one_of(_payloads, _payloads, json_values))
        how = draw(st.sampled_from(["object", "string", "twice", "raw"]))
        if how == "string":
            msg = json.dumps(msg)
        elif how == "twice":
            msg = json.dumps(json.dumps(msg))
        elif how == "raw":
            msg = draw(st.text(max_size=30))
        doc["msg"] = msg
    for key in draw(st.lists(st.text(max_size=6), max_size=2)):
        doc[key] = draw(json_values)
    text = json.dumps(doc)
    cut = draw(st.integers(min_value=0, max_value=len(text)))
    if draw(st.integers(0, 15)) == 15:
        text = text[:cut]  # truncated
    return text.encode() if draw(st.booleans()) else text


def _decodes_or_refuses(frame: str | bytes) -> None:
    try:
        event = decode(frame)
    except EventDecodeError:
        return
    assert isinstance(event, (Event, UnknownEvent)), type(event)
    if isinstance(event, UnknownEvent):
        assert event.raw == frame
    else:
        assert type(event) is TOPICS[event.type]


@FUZZ
@given(st.binary(max_size=300))
def test_any_bytes(frame: bytes) -> None:
    _decodes_or_refuses(frame)


@FUZZ
@given(st.text(max_size=300))
def test_any_text(frame: str) -> None:
    _decodes_or_refuses(frame)


@FUZZ
@given(envelopes())
def test_event_shaped_frames(frame: str | bytes) -> None:
    _decodes_or_refuses(frame)


@settings(max_examples=20, deadline=None, database=None)
@given(st.integers(min_value=1, max_value=200_000), st.sampled_from(["[", '{"a":', '"\\u']))
def test_deep_nesting(depth: int, opener: str) -> None:
    _decodes_or_refuses(opener * depth)
    _decodes_or_refuses('{"type": 30011, "msg": ' + "[" * depth + "]" * depth + "}")


# -- round trip of valid payloads -----------------------------------------------------------------


def strategy_for(tp: mi.Type) -> st.SearchStrategy[Any]:
    """Values of a msgspec type (as Python objects the model's constructor takes)."""
    if isinstance(tp, mi.StrType):
        return st.text(max_size=16)
    if isinstance(tp, mi.BoolType):
        return st.booleans()
    if isinstance(tp, mi.IntType):
        return st.integers(min_value=-(2**53), max_value=2**53)
    if isinstance(tp, mi.FloatType):
        return st.floats(allow_nan=False, allow_infinity=False)
    if isinstance(tp, mi.NoneType):
        return st.none()
    if isinstance(tp, mi.AnyType):
        return json_values
    if isinstance(tp, mi.LiteralType):
        return st.sampled_from(tp.values)
    if isinstance(tp, mi.ListType):
        return st.lists(strategy_for(tp.item_type), max_size=3)
    if isinstance(tp, mi.DictType):
        return st.dictionaries(st.text(max_size=8), strategy_for(tp.value_type), max_size=3)
    if isinstance(tp, mi.UnionType):
        return st.one_of(*(strategy_for(t) for t in tp.types))
    if isinstance(tp, mi.StructType):
        fields = {f.name: strategy_for(f.type) for f in tp.fields}
        return st.builds(tp.cls, **fields)
    raise NotImplementedError(f"no strategy for {tp!r}")  # a new field type: extend this


@st.composite
def events(draw: st.DrawFn) -> Event:
    """A valid event of any topic, built through the models (so normalised as they do)."""
    topic = draw(st.sampled_from(sorted(TOPICS)))
    cls = TOPICS[topic]
    payload_type = msgspec.structs.fields(cls)[-1].type
    payload = draw(strategy_for(mi.type_info(payload_type)))
    sn = draw(st.one_of(st.none(), st.text(min_size=1, max_size=14)))
    return cls(topic, sn, payload)


@FUZZ
@given(events(), st.sampled_from(["string", "object"]), st.booleans())
def test_valid_events_round_trip(event: Event, msg_as: str, as_bytes: bool) -> None:
    payload = msgspec.json.encode(event.msg).decode()
    doc: dict[str, Any] = {"type": event.type}
    if event.sn is not None:
        doc["sn"] = event.sn
    doc["msg"] = payload if msg_as == "string" else json.loads(payload)
    frame = json.dumps(doc)
    decoded = decode(frame.encode() if as_bytes else frame)
    assert decoded == event
