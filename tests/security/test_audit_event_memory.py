"""Audit of issue 11, point 10: what a buffered event holds stays within ~2x what it is charged.

The event buffers are bounded in bytes (``event_queue_bytes``). Charged by the length of its
frame, a decoded event could hold ~24x (a list of empty objects) to ~44x (nested lists) of it, so
a full buffer held far more than its budget. Each event is now charged an estimate of its decoded
size (:func:`yeastar_async.events._sizing.charge`); this pins that what it holds stays at most
~2x its charge for the most inflating frames measured, large and small, so that a model change
that inflates decoding further cannot leave the documented bound behind.
"""

from __future__ import annotations

import json
import tracemalloc
from collections.abc import Callable

import pytest

from yeastar_async import events
from yeastar_async.events._sizing import SCAN_FROM, charge
from yeastar_async.events._stream import _with_text_raw

MIB = 1024 * 1024
#: What an event may hold per byte it is charged (the README's "~2x").
BOUND = 2.0


def _held(frame: bytes) -> int:
    """Bytes the decoded event holds, as the stream keeps it (an unknown one with its text)."""
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        event = events.decode(frame)
        if type(event) is events.UnknownEvent:
            event = _with_text_raw(event)
        held = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert event is not None
    return held


def _fill(size: int, item: Callable[[int], str], wrap: Callable[[str], str]) -> bytes:
    """A frame of about ``size`` bytes: ``wrap`` around as many comma-separated items as fit."""
    one = len(item(0).encode()) + 1
    count = max(1, (size - len(wrap("").encode())) // one)
    frame = wrap(",".join(item(i) for i in range(count))).encode()
    while len(frame) > size:  # items grow with i: trim to the size asked for
        count -= max(1, count // 50)
        frame = wrap(",".join(item(i) for i in range(count))).encode()
    return frame


def _unknown_list(body: str) -> str:
    return '{"type":39999,"sn":"s","msg":[' + body + "]}"


def _unknown_object(body: str) -> str:
    return '{"type":39999,"sn":"s","msg":{' + body + "}}"


def _typed(topic: int, field: str) -> Callable[[str], str]:
    return lambda body: f'{{"type":{topic},"sn":"s","msg":{{"{field}":[{body}]}}}}'


def _members_as_string(body: str) -> str:
    return json.dumps({"type": 30011, "sn": "s", "msg": '{"members":[' + body + "]}"})


SHAPES: dict[str, tuple[Callable[[int], str], Callable[[str], str]]] = {
    "empty-objects": (lambda i: "{}", _unknown_list),
    "empty-lists": (lambda i: "[]", _unknown_list),
    "nested-lists": (lambda i: "[" * 8 + "]" * 8, _unknown_list),
    "one-key-dicts": (lambda i: '{"a":0}', _unknown_list),
    "nested-dicts": (lambda i: '{"a":' * 8 + "0" + "}" * 8, _unknown_list),
    "short-strings": (lambda i: f'"{i % 100:02d}"', _unknown_list),
    "dict-keys": (lambda i: f'"{i:x}":0', _unknown_object),
    "dict-keys-of-objects": (lambda i: f'"{i:x}":{{}}', _unknown_object),
    "astral-strings": (lambda i: f'"\U0001f600{i:x}"', _unknown_list),
    "typed-members": (lambda i: "{}", _members_as_string),
    "typed-member-legs": (lambda i: '{"inbound":{}}', _typed(30011, "members")),
    "typed-queued-calls": (lambda i: "{}", _typed(30025, "calls")),
    "typed-id-list": (lambda i: "0", _typed(30006, "id_list")),
}


def _astral_text(size: int) -> bytes:
    # One character beyond Latin-1 makes the whole string 4 bytes a character.
    return ('{"type":39999,"sn":"s","msg":"\U0001f600' + "a" * (size - 40) + '"}').encode()


@pytest.mark.parametrize("size", [MIB, 2048, SCAN_FROM], ids=["1MiB", "2KiB", "small"])
@pytest.mark.parametrize("name", [*SHAPES, "astral-text"])
def test_a_hostile_frame_holds_at_most_twice_its_charge(name: str, size: int) -> None:
    frame = _astral_text(size) if name == "astral-text" else _fill(size, *SHAPES[name])
    assert size // 2 < len(frame) <= size
    assert _held(frame) <= BOUND * charge(frame)


@pytest.mark.parametrize("text", [False, True], ids=["bytes", "str"])
def test_a_real_frame_is_charged_a_few_times_its_length(text: bool) -> None:
    frame = json.dumps(
        {
            "type": 30011,
            "sn": "s",
            "msg": json.dumps(
                {
                    "call_id": "1650000000.1",
                    "members": [
                        {"extension": {"number": "1000", "channel_id": "PJSIP/1000-1"}},
                        {"inbound": {"from": "+4930123", "to": "1000", "trunk_name": "t"}},
                    ],
                }
            ),
        }
    )
    charged = charge(frame if text else frame.encode())
    assert _held(frame.encode()) <= charged <= 23 * len(frame)


def test_decoding_alone_still_inflates_as_the_readme_says() -> None:
    """Why the charge exists: uncharged, a frame of empty objects holds ~24x its length."""
    frame = _fill(MIB, *SHAPES["empty-objects"])
    assert _held(frame) > 20 * len(frame)
