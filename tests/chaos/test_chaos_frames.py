"""Chaos in the frames: random bytes, wrong types, truncated JSON, deep nesting, frames over the
size limit and invalid UTF-8, interleaved with numbered events.

Issue 7, scenario 10. A bad frame is skipped and counted and the numbered events around it all
arrive. A frame over ``max_frame_size`` makes the client close the link as RFC 6455 requires: it
is counted too, and the stream reconnects. A text frame that is not UTF-8 is one more malformed
frame: the link stays up and nothing around it is lost.
"""

from __future__ import annotations

import asyncio
import json
import random

from tests.chaos._rig import Rig, call_payload
from yeastar_async.events import Connected, Disconnected
from yeastar_async.testing import FakePBX

_REAL = json.dumps({"type": 30011, "sn": "3631A2124XXX", "msg": json.dumps(call_payload(7))})
_DEEP = 100_000  # nesting far beyond any recursion limit

#: Text frames that are no event envelope and no control frame: counted as malformed.
MALFORMED = [
    "not json at all",
    "",
    "heartbeat",  # the client's own text, not the PBX's reply
    "{",
    _REAL[: len(_REAL) // 2],  # truncated mid-frame
    _REAL[:-1],  # one byte short
    "[1, 2, 3]",
    "null",
    "42",
    '"a string"',
    "true",
    '{"type": "thirty"}',
    '{"type": null, "msg": {}}',
    '{"type": 1.5, "msg": "{}"}',
    '{"type": true, "msg": "{}"}',
    '{"type": [30011], "msg": "{}"}',
    '{"sn": "3631A2124XXX", "msg": "{}"}',  # no type at all
    '{"errcode": "zero", "errmsg": 5}',
    "[" * _DEEP + "]" * _DEEP,
    '{"errcode": 0, "x": ' + "[" * _DEEP + "]" * _DEEP + "}",
    '{"type": 30011, "msg": ' + "[" * _DEEP + "]" * _DEEP + "}",
    "\x00\x01\x02\x7f",
    "\ufeff" + _REAL,  # a byte-order mark in front
]

#: Event envelopes whose payload cannot be read (or whose topic has no class): UnknownEvent.
UNKNOWN = [
    '{"type": 30011, "sn": "S", "msg": 12}',
    '{"type": 30011, "sn": "S", "msg": "not json"}',
    '{"type": 30011, "sn": "S", "msg": "[1, 2]"}',
    '{"type": 30011, "sn": "S", "msg": {"call_id": {"nested": true}}}',
    '{"type": 30011, "sn": "S", "msg": "{\\"members\\": \\"everyone\\"}"}',
    '{"type": 30011, "sn": "S", "msg": ' + json.dumps("[" * _DEEP + "]" * _DEEP) + "}",
    '{"type": 99999, "msg": {"future": "firmware"}}',
]

#: Control-looking frames that are neither an ack nor fatal: logged and skipped.
ODD_CONTROL = [
    '{"errcode": 12345, "errmsg": "SOMETHING NEW"}',
    '{"errcode": -1, "errmsg": "FAILURE"}',
    '{"errcode": 0, "errmsg": "SUCCESS"}',  # an ack nobody asked for
]


async def test_bad_frames_are_skipped_and_counted_between_events(pbx: FakePBX) -> None:
    """10. Every kind of garbage, each between two numbered events."""
    rng = random.Random(7)
    binary = [b"\xff" + rng.randbytes(rng.randint(0, 512)) for _ in range(20)]
    async with Rig(pbx, subscriber=True, max_frame_size=1 << 20) as rig:
        await rig.listen()
        await rig.next_link(Connected)
        assert await rig.emit_one() == 1
        for text in [*MALFORMED, *UNKNOWN, *ODD_CONTROL]:
            assert await pbx.push_raw(text) == 1
            assert await rig.emit_one() == 1
        for data in binary:  # random bytes, as binary frames
            assert await pbx.push_frame(data) == 1
            assert await rig.emit_one() == 1
        await rig.settle()
        stats = rig.client.event_stats
        assert stats.malformed_frames == len(MALFORMED) + len(binary)
        assert stats.unknown_events == len(UNKNOWN)
        assert stats.handler_errors == 0
        assert rig.links_since_cursor() == []  # never a reconnect
        assert pbx.stats.ws_connects == 1


async def test_a_frame_over_the_size_limit_is_counted_and_the_link_replaced(pbx: FakePBX) -> None:
    """10. A frame over max_frame_size: the client closes with 1009, counts it, reconnects."""
    async with Rig(pbx, subscriber=True, max_frame_size=4096) as rig:
        await rig.listen()
        await rig.next_link(Connected)
        assert await rig.emit(5) == 5
        await rig.settle()
        huge = pbx.event_frame(30011, {"call_id": "huge", "members": [], "pad": "x" * 5000})
        assert await pbx.push_raw(huge) == 1
        lost = await rig.next_link(Disconnected)
        assert "1009" in lost.reason, lost
        assert (await rig.next_link(Connected)).reconnect is True
        assert rig.client.event_stats.malformed_frames == 1
        assert await rig.emit(5) == 5
        await rig.settle()


async def test_invalid_utf8_in_a_text_frame_is_counted_and_skipped(pbx: FakePBX) -> None:
    """10. Bytes that are not UTF-8 in *text* frames: counted and skipped, the link kept."""
    async with Rig(pbx, subscriber=True) as rig:
        await rig.listen()
        await rig.next_link(Connected)
        assert await rig.emit(5) == 5
        for bad in (
            b'{"type": 30011, "msg": "\xff\xfe"}',  # inside the msg string
            b"\xff\xfe\xfd",  # no JSON at all
            b'{"type": 30011, "sn": "\xc3", "msg": "{}"}',  # a truncated sequence in sn
        ):
            assert await pbx.push_frame(bad, binary=False) == 1
            assert await rig.emit(5) == 5
        # An envelope whose bad bytes sit in a field nobody reads: an UnknownEvent (new topic).
        future = b'{"type": 39999, "note": "\xff", "msg": {}}'
        assert await pbx.push_frame(future, binary=False) == 1
        assert await rig.emit(5) == 5
        await rig.settle()
        assert rig.client.event_stats.malformed_frames == 3
        assert rig.client.event_stats.unknown_events == 1
        assert rig.links_since_cursor() == []  # never a reconnect
        assert pbx.stats.ws_connects == 1


async def test_a_garbage_storm_does_not_slow_the_link_down(pbx: FakePBX) -> None:
    """10. 2,000 random frames in a row: heartbeats and events keep their pace."""
    rng = random.Random(11)
    async with Rig(pbx) as rig:
        await rig.listen()
        await rig.next_link(Connected)
        for i in range(2000):
            if i % 2:
                await pbx.push_frame(b"\xff" + rng.randbytes(rng.randint(0, 64)))
            else:
                await pbx.push_raw(rng.choice(MALFORMED[:18]))
            if i % 100 == 0:
                assert await rig.emit_one() == 1
            await asyncio.sleep(0)
        assert await rig.emit_one() == 1  # read after every garbage frame before it
        await rig.settle()
        assert rig.client.event_stats.malformed_frames == 2000
        assert rig.links_since_cursor() == []
