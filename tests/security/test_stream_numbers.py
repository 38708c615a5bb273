"""Number bombs (issue 11, point 8): a number no field can hold costs microseconds, not seconds.

``1e1000000`` in an 84-byte 30012 frame, or in a 40-byte REST answer, used to freeze the event
loop for about 22 s while the lenient path turned it into an int (and the int could not even be
printed). Now a number beyond the float range, or an int field beyond int64, is a decode error:
the frame counts as malformed, the REST call raises TransportError.
"""

from __future__ import annotations

import time

import msgspec
import pytest

from tests.test_stream import Harness, emit_calls
from yeastar_async._http import decode_envelope
from yeastar_async._lenient import EXACT_JSON, INT64_MAX, INT64_MIN, NumberOutOfRange, convert
from yeastar_async._models import ApiResponse
from yeastar_async.errors import EventDecodeError, TransportError
from yeastar_async.events import CallStatusChanged, Connected, NewCdr, decode
from yeastar_async.testing import FakePBX

#: Far below the 22 s of the old code, far above what the fix costs on a busy machine.
BOUND = 1.0
BOMBS = ["1e1000000", "-1e1000000", "9e999999999", "1.5e309", "2e308"]


def bomb_frame(literal: str, *, as_string: bool = True) -> str:
    head = '{"type":30012,"sn":"3631A2124XXX","msg":'
    if as_string:
        return head + '"{\\"call_duration\\":' + literal + '}"}'
    return head + '{"call_duration":' + literal + "}}"


class Listing(ApiResponse, kw_only=True):
    total_number: int = 0


@pytest.mark.parametrize("literal", BOMBS)
@pytest.mark.parametrize("as_string", [True, False])
def test_a_number_bomb_in_a_frame_is_a_quick_decode_error(literal: str, as_string: bool) -> None:
    frame = bomb_frame(literal, as_string=as_string)
    started = time.perf_counter()
    with pytest.raises(EventDecodeError, match="out of range"):
        decode(frame)
    assert time.perf_counter() - started < BOUND


def test_the_84_byte_frame_of_the_report() -> None:
    frame = bomb_frame("1e1000000")
    assert len(frame) <= 84
    started = time.perf_counter()
    with pytest.raises(EventDecodeError, match=r"number out of range: 1e1000000"):
        decode(frame.encode())
    assert time.perf_counter() - started < BOUND


@pytest.mark.parametrize("literal", ["1e19", "1e30", "9223372036854775808", "-9223372036854775809"])
def test_an_int_field_beyond_int64_is_a_decode_error_naming_the_field(literal: str) -> None:
    # A float literal reaches the repair path at once; a long integer literal fails the fast
    # path's Int64 bound (tests/security/test_audit_int64.py): either way int64 is the limit.
    head = '{"type":30012,"sn":"x","msg":"{\\"call_id\\":null,\\"call_duration\\":'
    frame = head + literal + '}"}'
    with pytest.raises(EventDecodeError, match=r"int64.*\$\.call_duration"):
        decode(frame)


def test_zero_with_any_exponent_is_zero() -> None:
    event = decode(bomb_frame("0e400"))
    assert isinstance(event, NewCdr)
    assert event.msg.call_duration == 0
    assert convert({"items": [{"n": EXACT_JSON.decode(b"0.0e99999")}]}, Doc) == Doc([Item(0)])


def test_numbers_in_range_still_decode() -> None:
    event = decode(bomb_frame("1.8e2"))
    assert isinstance(event, NewCdr)
    assert event.msg.call_duration == 180
    edge = decode(bomb_frame(str(INT64_MAX) + ".0"))
    assert isinstance(edge, NewCdr)
    assert edge.msg.call_duration == INT64_MAX
    tiny = decode('{"type":30012,"sn":"x","msg":"{\\"call_id\\":1e-1000000}"}')
    assert isinstance(tiny, NewCdr)
    assert tiny.msg.call_id == "1e-1000000"  # a string field keeps the number's text


@pytest.mark.parametrize("literal", BOMBS)
def test_a_number_bomb_in_a_rest_answer_is_a_quick_transport_error(literal: str) -> None:
    body = b'{"errcode":0,"total_number":%s}' % literal.encode()
    assert len(body) <= 48
    started = time.perf_counter()
    with pytest.raises(TransportError, match="out of range"):
        decode_envelope(body, "cdr/list", Listing)
    assert time.perf_counter() - started < BOUND


class Item(msgspec.Struct):
    n: int = 0


class Doc(msgspec.Struct):
    items: list[Item] = []


def test_the_lenient_converter_refuses_ints_beyond_int64_with_the_path() -> None:
    with pytest.raises(NumberOutOfRange, match=r"int64.*\$\.items\[1\]\.n"):
        convert({"items": [{"n": 1}, {"n": INT64_MIN - 1}]}, Doc)
    with pytest.raises(NumberOutOfRange, match="digits"):
        convert({"items": [{"n": 10**4000}]}, Doc)  # named by its length, not printed
    with pytest.raises(msgspec.ValidationError, match="out of range"):
        EXACT_JSON.decode(b"[1e400]")


async def test_a_bomb_frame_on_the_stream_counts_as_malformed_and_the_stream_goes_on() -> None:
    async with FakePBX(idle_timeout=0.5) as pbx, Harness(pbx) as h:
        h.record(Connected, CallStatusChanged, NewCdr)
        h.listen()
        await h.next(Connected)
        started = time.perf_counter()
        assert await pbx.push_raw(bomb_frame("1e1000000")) == 1
        await emit_calls(pbx, "after")
        assert (await h.next(CallStatusChanged)).msg.call_id == "after"
        assert time.perf_counter() - started < 5 * BOUND
        assert h.stream.stats.malformed_frames == 1
        assert h.stream.stats.unknown_events == 0
        assert pbx.stats.ws_connects == 1
