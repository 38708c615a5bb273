"""Calls that end on a FakePBX as on a real one: a CDR kept for REST, and its 30012 sent."""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any

from yeastar_async.testing import FakePBX


def cdr(name: str, n: int, ago: float = 5.0) -> dict[str, Any]:
    """A 30012 payload, call id ``<start second>.<n>`` as Asterisk numbers them."""
    started = time.time() - ago
    return {
        "call_id": f"{int(started)}.{n}",
        "time_start": datetime.fromtimestamp(started).strftime("%Y-%m-%d %H:%M:%S"),
        "call_from": "2005",
        "call_to": f"{2100 + n}",
        "call_duration": 3,
        "talk_duration": 2,
        "status": "ANSWERED",
        "type": "Internal",
        "src_trunk_name": name,
    }


async def call_ends(pbx: FakePBX, payload: dict[str, Any]) -> int:
    """A call ends: the PBX keeps its record and sends its 30012 (to the links up)."""
    pbx.store.record_call(payload)
    return await pbx.emit(30012, payload)
