"""Section 1, event decode: ``events.decode`` on real frames against three baselines.

* stdlib: ``json.loads`` of the frame, then ``json.loads`` of its ``msg`` (two steps to dicts);
* untyped msgspec: one ``msgspec.json.decode`` of the envelope (``msg`` stays a string);
* the floor: a bare two-step msgspec decode into minimal Structs (same fields as the SDK's
  models, default Struct options, no SDK logic): the best any msgspec design can do.

Candidates run interleaved (A, B, C, D, A, B ...), each sample timing ``number`` calls; the best
sample of each is kept. Targets: at least 3x faster than stdlib, at least 0.75x the floor's speed.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any, Final

import msgspec

from bench._common import Row, fmt_time, frames, interleave
from yeastar_async import events

STDLIB_TARGET: Final = 3.0
FLOOR_TARGET: Final = 0.75


# -- the floor: minimal Structs, no SDK logic ---------------------------------------------------


class _Envelope(msgspec.Struct):
    type: int
    sn: str | None = None
    msg: str = ""


class _ExtensionLeg(msgspec.Struct):
    number: str = ""
    channel_id: str = ""
    member_status: str = ""
    call_path: str = ""


class _TrunkLeg(msgspec.Struct):
    from_: str = msgspec.field(default="", name="from")
    to: str = ""
    trunk_name: str = ""
    channel_id: str = ""
    member_status: str = ""
    call_path: str = ""


class _Member(msgspec.Struct):
    extension: _ExtensionLeg | None = None
    inbound: _TrunkLeg | None = None
    outbound: _TrunkLeg | None = None


class _Call(msgspec.Struct):
    call_id: str = ""
    members: list[_Member] = []


class _Cdr(msgspec.Struct):
    call_id: str = ""
    time_start: str = ""
    call_from: str = ""
    call_to: str = ""
    call_duration: int = 0
    talk_duration: int = 0
    src_trunk_name: str = ""
    dst_trunk_name: str = ""
    pin_code: str = ""
    status: str = ""
    type: str = ""
    recording: str = ""
    did_number: str = ""
    agent_ring_time: int = 0
    did_name: str = ""
    uid: str = ""


_FLOOR_ENVELOPE: Final = msgspec.json.Decoder(_Envelope)
_FLOOR_PAYLOAD: Final[dict[int, msgspec.json.Decoder[Any]]] = {
    30011: msgspec.json.Decoder(_Call),
    30012: msgspec.json.Decoder(_Cdr),
    30016: msgspec.json.Decoder(_Call),
}
_UNTYPED: Final = msgspec.json.Decoder()


def floor(frame: str) -> Any:
    """Two msgspec decodes into minimal Structs: the envelope, then its ``msg``."""
    env = _FLOOR_ENVELOPE.decode(frame)
    return env.type, env.sn, _FLOOR_PAYLOAD[env.type].decode(env.msg)


def stdlib(frame: str) -> Any:
    """``json.loads`` twice, to dicts."""
    obj = json.loads(frame)
    obj["msg"] = json.loads(obj["msg"])
    return obj


def untyped(frame: str) -> Any:
    """One untyped msgspec decode of the envelope (``msg`` stays a JSON string)."""
    return _UNTYPED.decode(frame)


def _timer(fn: Callable[[str], Any], frame: str, number: int) -> Callable[[], float]:
    def sample() -> float:
        started = time.perf_counter()
        for _ in range(number):
            fn(frame)
        return (time.perf_counter() - started) / number

    return sample


def run(number: int = 20_000, rounds: int = 15) -> list[Row]:
    """Time the four decoders on each real frame; one row per baseline and frame."""
    rows: list[Row] = []
    for topic, frame in frames().items():
        # Sanity: every candidate reads the frame (and the SDK gives the typed event).
        assert type(events.decode(frame)) is events.TOPICS[topic]
        candidates = [_timer(fn, frame, number) for fn in (events.decode, stdlib, untyped, floor)]
        sdk, std, raw, bare = interleave(candidates, rounds)
        rows += [
            Row(
                "1 decode",
                f"{topic} vs stdlib json (2 steps)",
                fmt_time(sdk),
                fmt_time(std),
                std / sdk,
                target=STDLIB_TARGET,
            ),
            Row(
                "1 decode",
                f"{topic} vs untyped msgspec envelope",
                fmt_time(sdk),
                fmt_time(raw),
                raw / sdk,
            ),
            Row(
                "1 decode",
                f"{topic} vs bare msgspec floor (speed)",
                fmt_time(sdk),
                fmt_time(bare),
                bare / sdk,
                target=FLOOR_TARGET,
            ),
        ]
    return rows


if __name__ == "__main__":  # python -m bench.decode
    from bench._common import render

    print(render(run()))
