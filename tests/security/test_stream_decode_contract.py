"""The decode contract (issue 11, point 11): ``events.decode`` returns an event or an
``UnknownEvent``, or raises ``EventDecodeError``, whatever the frame holds; and a frame that
still finds a bug costs one throttled log line, not a traceback per frame."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.test_fuzz_events import json_values
from tests.test_stream import Harness, emit_calls
from yeastar_async.errors import EventDecodeError
from yeastar_async.events import (
    TOPICS,
    CallStatusChanged,
    Connected,
    Event,
    UnknownEvent,
    _stream,
    decode,
)
from yeastar_async.testing import FakePBX

FUZZ = settings(
    max_examples=300, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow]
)

_digits = st.integers(min_value=1, max_value=6000).map(lambda n: "9" * n)
#: What a hostile `type` may be: huge digit strings and numbers, floats, bools, nesting.
_weird_types = st.one_of(
    _digits,
    _digits.map(lambda d: f" {d} "),
    st.integers(),
    st.integers(min_value=2**62, max_value=2**200),
    st.floats(),
    st.booleans(),
    st.sampled_from(sorted(TOPICS)).map(str),
    json_values,
)


def _contract(frame: str | bytes) -> None:
    try:
        event = decode(frame)
    except EventDecodeError:
        return
    assert isinstance(event, (Event, UnknownEvent)), type(event)


@pytest.mark.parametrize(
    "frame",
    [
        '{"type":"%s"}' % ("9" * 5000),
        '{"type":"%s","msg":"{}"}' % ("0" * 4000 + "30011"),  # leading zeros only: topic 30011
        '{"type":%s}' % ("9" * 4000),
        '{"type":%s,"msg":{}}' % ("9" * 30),
        '{"type":"  %s  "}' % ("9" * 20),
        '{"type":30011,"sn":1.5,"x":1e-400}',
        '{"type":30011,"sn":%s.5}' % ("9" * 400),
        '{"type":30011,"msg":"%s"}' % ("[" * 100_000),
        '{"type":30011,"msg":%s}' % ("[" * 100_000 + "]" * 100_000),
        '{"type":30012,"msg":"{\\"call_duration\\":\\"%s\\"}"}' % ("9" * 5000),
        # Exponents beyond what the decimal module holds (InvalidOperation, not ValueError).
        '{"type":30012,"msg":"{\\"call_id\\":1e-9999999999999999999999999}"}',
        '{"type":30012,"msg":"{\\"call_id\\":0.0e-99999999999999999999}"}',
        '{"type":30012,"msg":"{\\"call_duration\\":1e-9999999999999999999999999}"}',
        '{"type":30011,"sn":1e-9999999999999999999999999}',
    ],
)
def test_hostile_frames_keep_the_contract(frame: str) -> None:
    _contract(frame)
    _contract(frame.encode())


def test_a_5000_digit_type_is_a_decode_error_naming_the_range() -> None:
    with pytest.raises(EventDecodeError, match="int64"):
        decode('{"type":"%s","msg":"{}"}' % ("9" * 5000))
    with pytest.raises(EventDecodeError, match="int64"):
        decode('{"type":%s,"msg":"{}"}' % ("9" * 30))


@FUZZ
@given(_weird_types, st.one_of(st.none(), json_values), st.booleans(), st.booleans())
def test_any_type_value(topic: Any, msg: Any, msg_as_string: bool, as_bytes: bool) -> None:
    doc: dict[str, Any] = {"type": topic}
    if msg is not None:
        doc["msg"] = json.dumps(msg) if msg_as_string else msg
    text = json.dumps(doc)
    _contract(text.encode() if as_bytes else text)


@FUZZ
@given(json_values, st.booleans())
def test_any_json_document(doc: Any, as_bytes: bool) -> None:
    text = json.dumps(doc)
    _contract(text.encode() if as_bytes else text)


@FUZZ
@given(st.binary(max_size=2000))
def test_any_bytes(frame: bytes) -> None:
    _contract(frame)


async def test_a_decoder_bug_logs_one_traceback_per_throttle_window(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    real = _stream.decode

    def buggy(frame: Any) -> Any:
        if b"bug" in bytes(frame):
            raise ValueError("a bug in decode")
        return real(frame)

    monkeypatch.setattr(_stream, "decode", buggy)
    caplog.set_level(logging.DEBUG, logger="yeastar_async.events")
    async with FakePBX(idle_timeout=0.5) as pbx, Harness(pbx) as h:
        h.record(Connected, CallStatusChanged)
        h.listen()
        await h.next(Connected)
        for _ in range(50):
            await pbx.push_raw('{"bug": 1}')
        await emit_calls(pbx, "after")
        assert (await h.next(CallStatusChanged)).msg.call_id == "after"
    records = [r for r in caplog.records if "could not be decoded" in r.getMessage()]
    assert len(records) == 50
    assert h.stream.stats.malformed_frames == 50
    with_traceback = [r for r in records if r.exc_info]
    warnings = [r for r in records if r.levelno >= logging.WARNING]
    assert len(with_traceback) == len(warnings) == 1  # one window of the bad-frame throttle


#: JSON number literals of any size and exponent, as a hostile PBX could write them.
_literals = st.from_regex(
    r"-?(0|[1-9][0-9]{0,40})(\.[0-9]{1,40})?([eE][+-]?[0-9]{1,30})?", fullmatch=True
)
_fields = st.sampled_from(["call_id", "call_duration", "talk_duration", "members", "x"])


@FUZZ
@given(st.sampled_from([30011, 30012, 30016]), _fields, _literals, st.booleans(), st.booleans())
def test_any_number_literal_in_any_field(
    topic: int, name: str, literal: str, msg_as_string: bool, in_sn: bool
) -> None:
    inner = f'{{"{name}":{literal}}}'
    msg = json.dumps(inner) if msg_as_string else inner
    sn = literal if in_sn else '"x"'
    _contract(f'{{"type":{topic},"sn":{sn},"msg":{msg}}}')
