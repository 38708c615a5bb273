"""The relay's stream entries: every event comes back from Redis as the stream decoded it."""

from __future__ import annotations

import pytest

from yeastar_async import events
from yeastar_async.events.models import CdrInfo
from yeastar_async.redis._codec import EntryError, decode_entry, encode_event
from yeastar_async.resources._v2 import CdrV2
from yeastar_async.resources.cdr import CDRDetails
from yeastar_async.testing import FakePBX


def entry(event: object) -> dict[bytes, bytes]:
    kind, value = encode_event(event)
    return {b"k": kind, b"v": value}


@pytest.mark.parametrize("topic", sorted(events.TOPICS))
def test_every_topic_round_trips_through_an_entry(topic: int) -> None:
    fake = FakePBX()
    event = events.decode(fake.event_frame(topic, fake.example_event(topic)))
    assert isinstance(event, events.TOPICS[topic])
    assert decode_entry(entry(event)) == event


def test_unknown_events_keep_their_frame() -> None:
    frame = '{"type": 30999, "sn": "X", "msg": "{\\"a\\": 1}"}'
    event = events.decode(frame)
    assert isinstance(event, events.UnknownEvent)
    assert decode_entry(entry(event)) == event


def test_link_events_round_trip_and_str_fields_are_read() -> None:
    for event in (
        events.Connected(reconnect=True, gap=2.5),
        events.Disconnected(reason="link holder changed"),
    ):
        kind, value = encode_event(event)
        assert decode_entry({b"k": kind, b"v": value}) == event
        assert decode_entry({"k": kind.decode(), "v": value.decode()}) == event


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({}, "no 'k' field"),
        ({b"k": b"e"}, "no 'v' field"),
        ({b"k": b"zz", b"v": b"{}"}, "unknown entry kind"),
        ({b"k": b"e", b"v": b"not json"}, "does not decode"),
        ({b"k": b"c", b"v": b'{"reconnect": "yes"}'}, "does not decode"),
    ],
)
def test_entries_not_ours_are_named(fields: dict[bytes, bytes], message: str) -> None:
    with pytest.raises(EntryError, match=message):
        decode_entry(fields)


def test_only_events_are_stored() -> None:
    with pytest.raises(TypeError, match="not an event the relay can store: dict"):
        encode_event({"type": 30012})


@pytest.mark.parametrize(
    "record",
    [
        CDRDetails(uid="1700000000.7", timestamp=1_700_000_000, call_from="Ann<2005>"),
        CdrV2(id="42", uid="1700000000.7", time="2023-11-14 22:13:20"),
        None,
    ],
    ids=["v1", "v2", "none"],
)
def test_a_recovered_cdr_comes_back_recovered_with_its_typed_record(record: object) -> None:
    event = events.CdrRecovered(
        msg=CdrInfo(call_id="1700000000.7", call_from="2005", call_to="2101", talk_duration=3),
        record=record,
    )
    kind, value = encode_event(event)
    assert kind == b"r"
    for fields in ({b"k": kind, b"v": value}, {"k": kind.decode(), "v": value.decode()}):
        back = decode_entry(fields)
        assert isinstance(back, events.CdrRecovered)
        assert back.recovered
        assert back == event
        assert type(back.record) is type(record)


def test_a_recovered_cdr_entry_with_a_bad_record_is_named() -> None:
    value = b'{"msg": {"call_id": "x"}, "record": {"timestamp": "soon"}, "row": "v1"}'
    with pytest.raises(EntryError, match="does not decode"):
        decode_entry({b"k": b"r", b"v": value})
