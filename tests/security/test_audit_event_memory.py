"""Audit of issue 11, point 10: the documented worst case of a decoded frame stays true.

The event buffers are bounded in bytes of *frames*; README and the ``event_queue_bytes``
docstring state what a frame can cost once decoded (up to ~24x its size for a hostile frame of
empty objects). This pins that factor, so that a model change that inflates decoding further
cannot leave the documented worst case behind.
"""

from __future__ import annotations

import json
import tracemalloc

import pytest

from yeastar_async import events

MIB = 1024 * 1024
#: The factor README states (~24x), with room for allocator noise.
DOCUMENTED = 25.0
ITEMS = (MIB - 200) // 3  # "{}," per item: a frame just under 1 MiB


def _held(frame: str) -> float:
    """Bytes the decoded event holds, per byte of frame."""
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        event = events.decode(frame)
        held = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert event is not None
    return held / len(frame)


HOSTILE = {
    "typed-members": json.dumps(
        {"type": 30011, "sn": "s", "msg": '{"members":[' + ",".join(["{}"] * ITEMS) + "]}"}
    ),
    "unknown-topic-objects": '{"type":39999,"sn":"s","msg":[' + ",".join(["{}"] * ITEMS) + "]}",
    "unknown-topic-lists": '{"type":39999,"sn":"s","msg":[' + ",".join(["[]"] * ITEMS) + "]}",
    "id-list": json.dumps(
        {
            "type": 30006,
            "sn": "s",
            "msg": '{"id_list":[' + ",".join(["0"] * (ITEMS + ITEMS // 2)) + "]}",
        }
    ),
}


@pytest.mark.parametrize("name", list(HOSTILE))
def test_a_hostile_1_mib_frame_decodes_within_the_documented_factor(name: str) -> None:
    frame = HOSTILE[name]
    assert MIB // 2 < len(frame) <= MIB
    assert _held(frame) <= DOCUMENTED
