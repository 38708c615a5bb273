"""Calls that end on a FakePBX as on a real one: a CDR kept for REST, and its 30012 sent."""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any

from yeastar_async.testing import FakePBX


def cdr(
    n: int, started: float | None = None, *, ago: float = 5.0, trunk: str = ""
) -> dict[str, Any]:
    """A 30012 payload of call ``n``, 3 s long, started at ``started`` (default: ``ago``
    seconds ago); its call id ``<start second>.<n>`` as Asterisk numbers them."""
    started = time.time() - ago if started is None else started
    payload = {
        "call_id": f"{int(started)}.{n}",
        "time_start": datetime.fromtimestamp(started).strftime("%Y-%m-%d %H:%M:%S"),
        "call_from": "2005",
        "call_to": f"{2100 + n}",
        "call_duration": 3,
        "talk_duration": 2,
        "status": "ANSWERED",
        "type": "Internal",
    }
    if trunk:
        payload["src_trunk_name"] = trunk
    return payload


async def call_ends(pbx: FakePBX, payload: dict[str, Any]) -> int:
    """A call ends: the PBX keeps its record and sends its 30012 (to the links up)."""
    pbx.store.record_call(payload)
    return await pbx.emit(30012, payload)
