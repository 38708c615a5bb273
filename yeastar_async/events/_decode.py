"""Turn one WebSocket text frame into a typed event.

The hot path is two msgspec decodes and no dict round-trip: the envelope
``{"type": int, "sn": str?, "msg": ...}`` is decoded once, with ``msg`` taken as whatever JSON
value it is (the PBX normally sends a JSON-encoded *string*, which msgspec hands over already
unescaped); then that string is decoded straight into the topic's payload Struct by a decoder
built once per topic. A ``msg`` sent as an object is converted from the parsed dict.

Only when that strict-shaped decode fails does the slow *repair* path run: the frame is parsed
again as plain JSON (numbers kept as their exact text, see :mod:`._numbers`), the payload is
nudged towards the model — numbers become strings where a string is expected, spelled as in the
frame (a call id sent as ``1648801160.110`` gives ``"1648801160.110"``), blank strings and
``null`` fall back to the field's default (``"members": null`` gives ``[]``), a single object
where a list is expected is wrapped, a ``msg`` that was JSON-encoded twice is unwrapped — and
converted. A payload that still does not fit gives :class:`UnknownEvent` with the raw frame; a
frame that is not an event envelope at all, or holds a number no field can hold (beyond the
float range, or an int field beyond int64: see :mod:`yeastar_async._lenient`), raises
:class:`~yeastar_async.errors.EventDecodeError`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any, Final

import msgspec

from yeastar_async._fds import imported
from yeastar_async.errors import EventDecodeError
from yeastar_async.events.models import TOPICS, Event, UnknownEvent

__all__ = ["HELPER_MODULES", "decode", "load_helpers"]

#: What the rare slow paths import on first use (kept out of ``import yeastar_async``).
HELPER_MODULES: Final = ("yeastar_async._lenient", "yeastar_async.events._numbers")


def load_helpers() -> None:
    """Import :data:`HELPER_MODULES` now, before frames arrive: a process out of descriptors
    when the first odd frame comes would otherwise fail there. Raises
    :class:`~yeastar_async.errors.TransportError` (``OutOfFileDescriptorsError``) if it is
    out of them now; cheap once loaded."""
    for name in HELPER_MODULES:
        imported(name)


# Everything msgspec or the codecs raise on bad input is a ValueError (DecodeError,
# ValidationError, UnicodeError); deep nesting raises RecursionError.
_BAD_INPUT: Final = (ValueError, RecursionError)
_EXCERPT: Final = 80
_MAX_UNWRAP: Final = 3
#: A topic is an int64 like every other integer field; 19 digits is the longest spelling.
_TOPIC_MIN: Final = -(2**63)
_TOPIC_MAX: Final = 2**63 - 1
_TOPIC_DIGITS: Final = 19


class _Envelope(msgspec.Struct, gc=False):  # short-lived and acyclic: skip GC tracking
    type: int
    sn: str | None = None
    msg: Any = None


_ENVELOPE: Final = msgspec.json.Decoder(_Envelope)
_PLAIN: Final = msgspec.json.Decoder()

#: What a frame may be: the text of a WebSocket text frame, or its bytes.
Frame = str | bytes | bytearray | memoryview

#: topic -> (event class, payload decoder). Filled on a topic's first frame, not at import: a
#: decoder costs a fraction of a millisecond to build, and most applications see a few topics.
_FAST: Final[dict[int, tuple[type[Event], Callable[[str], Any]]]] = {}


def _payload_type(cls: type[Event]) -> Any:
    return msgspec.structs.fields(cls)[-1].type  # `msg` is the last field of every event


def _fast_for(topic: int) -> tuple[type[Event], Callable[[str], Any]] | None:
    """The event class and payload decoder of ``topic`` (built once), or None if unknown."""
    fast = _FAST.get(topic)
    if fast is None:
        cls = TOPICS.get(topic)
        if cls is None:
            return None
        fast = _FAST[topic] = (cls, msgspec.json.Decoder(_payload_type(cls), strict=False).decode)
    return fast


def decode(frame: Frame) -> Event | UnknownEvent:
    """Decode one WebSocket text frame into a typed event.

    Returns the event class of the frame's topic (e.g. :class:`CallStatusChanged` for 30011),
    or :class:`UnknownEvent` (keeping the raw frame) for a topic without a class or a ``msg``
    that cannot be read as that topic's payload. ``msg`` may be a JSON-encoded string (usual),
    an object, or a string holding JSON encoded twice; the frame may be str or bytes-like.

    Raises:
        EventDecodeError: the frame is not an event envelope at all: not JSON, not a JSON
            object, without an integer ``type`` (or one outside int64), or holding a number
            no field can hold (beyond the float range; an int field beyond int64). Nothing
            else is raised for any str or bytes, whatever its size, nesting or numbers.
        TypeError: ``frame`` is neither str nor a bytes-like object (a programming error,
            not bad input).
    """
    try:
        env = _ENVELOPE.decode(frame)
    except _BAD_INPUT:
        # Not the usual shape: a missing/odd `type` or `sn`, or not JSON at all.
        topic, sn, msg = _envelope_fallback(frame)
        return _decode_payload(frame, topic, sn, msg)
    msg = env.msg
    fast = _FAST.get(env.type)
    if fast is not None and type(msg) is str:
        try:
            return fast[0](env.type, env.sn, fast[1](msg))
        except _BAD_INPUT as exc:
            return _repaired(frame, env.type, env.sn, msg, str(exc))
    return _decode_payload(frame, env.type, env.sn, msg)


def _decode_payload(frame: Frame, topic: int, sn: str | None, msg: Any) -> Event | UnknownEvent:
    """Everything but the usual case: first frame of a topic, object msg, unknown topic,
    payload needing repair."""
    if not _TOPIC_MIN <= topic <= _TOPIC_MAX:
        # Checked here, off the hot path: a known topic never reaches this test.
        raise EventDecodeError(f"frame's 'type' is outside the int64 range: {_excerpt(frame)}")
    fast = _fast_for(topic)
    if fast is None:
        return _unknown(frame, topic, sn, msg, "unknown topic")
    cls, decode_payload = fast
    try:
        if type(msg) is str:
            return cls(topic, sn, decode_payload(msg))
        if type(msg) is dict:
            return cls(topic, sn, msgspec.convert(msg, _payload_type(cls), strict=False))
    except _BAD_INPUT as exc:
        return _repaired(frame, topic, sn, msg, str(exc))
    return _repaired(frame, topic, sn, msg, f"msg is {type(msg).__name__}, not an object")


def _repaired(
    frame: Frame, topic: int, sn: str | None, msg: Any, error: str
) -> Event | UnknownEvent:
    """The typed event from the repair path, or UnknownEvent saying why not."""
    cls = TOPICS[topic]
    payload, why = _repair(frame, _payload_type(cls))
    if payload is None:
        return _unknown(frame, topic, sn, msg, why or error)
    return cls(topic, sn, payload)


def _excerpt(frame: Frame) -> str:
    text = frame if isinstance(frame, str) else bytes(frame).decode("utf-8", "replace")
    return repr(text[:_EXCERPT]) + ("..." if len(text) > _EXCERPT else "")


def _envelope_fallback(frame: Frame) -> tuple[int, str | None, Any]:
    """Read an envelope the fast decoder refused, or raise EventDecodeError."""
    try:
        obj = _PLAIN.decode(frame)
    except _BAD_INPUT as exc:
        raise EventDecodeError(f"frame cannot be parsed ({exc}): {_excerpt(frame)}") from None
    if not isinstance(obj, dict):
        raise EventDecodeError(f"frame is not a JSON object: {_excerpt(frame)}")
    topic = obj.get("type")
    if isinstance(topic, str) and topic.isascii() and topic.strip().isdigit():
        digits = topic.strip().lstrip("0") or "0"
        if len(digits) > _TOPIC_DIGITS:
            # Refused by length: int() of thousands of digits is slow, or refused outright.
            raise EventDecodeError(f"frame's 'type' is outside the int64 range: {_excerpt(frame)}")
        topic = int(digits)  # "30011": lenient, it still names a topic
    if type(topic) is not int:
        raise EventDecodeError(f"frame has no integer 'type': {_excerpt(frame)}")
    sn = obj.get("sn")
    if isinstance(sn, float):
        # The number's text as sent, not the float's shortest repr (which drops digits).
        from yeastar_async.events._numbers import EXACT_TEXT_JSON

        try:
            sn = str(EXACT_TEXT_JSON.decode(frame)["sn"])
        except (*_BAD_INPUT, KeyError, TypeError):  # cannot happen after _PLAIN; stay total
            sn = repr(sn)
    elif isinstance(sn, int) and not isinstance(sn, bool):
        sn = str(sn)
    elif not isinstance(sn, str):
        sn = None
    return topic, sn, obj.get("msg")


def _unknown(frame: Frame, topic: int, sn: str | None, msg: Any, reason: str) -> UnknownEvent:
    if isinstance(msg, str):
        with contextlib.suppress(*_BAD_INPUT):  # not JSON inside: keep the string as sent
            msg = _PLAIN.decode(msg)
    raw = frame if isinstance(frame, (str, bytes)) else bytes(frame)
    return UnknownEvent(type=topic, sn=sn, msg=msg, raw=raw, reason=reason)


def _repair(frame: Frame, payload_type: Any) -> tuple[Any, str]:
    """Decode the payload leniently; return (payload, "") or (None, why it failed).

    The rare slow path: the frame is parsed again as plain JSON with exact decimals and the
    payload is nudged towards the model by :mod:`yeastar_async._lenient` (imported here, on
    first use, so that ``import yeastar_async`` does not pay for it).
    """
    from yeastar_async._lenient import convert, out_of_range
    from yeastar_async.events._numbers import EXACT_TEXT_JSON

    try:
        # Numbers as their exact text: a call id sent as 1648801160.110 keeps its last zero.
        obj = EXACT_TEXT_JSON.decode(frame)
        msg = obj.get("msg") if isinstance(obj, dict) else None
        for _ in range(_MAX_UNWRAP):
            if not isinstance(msg, str):
                break
            msg = EXACT_TEXT_JSON.decode(msg)
        if not isinstance(msg, dict):
            return None, f"msg is {type(msg).__name__}, not an object"
        return convert(msg, payload_type), ""
    except _BAD_INPUT as exc:
        if out_of_range(exc):
            # A number bomb (1e1000000) is not a payload that drifted from the manual.
            raise EventDecodeError(f"frame holds {exc}: {_excerpt(frame)}") from None
        return None, str(exc)
