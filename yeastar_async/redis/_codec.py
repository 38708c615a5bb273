"""How one event is written to a Redis Stream entry, and read back as the same typed event.

A PBX event is stored as the envelope the PBX sends, ``{"type", "sn", "msg": "<JSON text>"}``,
so a worker decodes it with :func:`yeastar_async.events.decode`, the stream's own decoder, on
its fast path (``msg`` as a JSON string). An :class:`~yeastar_async.events.UnknownEvent` is
stored as the frame it was received as, so it decodes to the same UnknownEvent. The link
events (``Connected`` / ``Disconnected``) are stored as their own JSON.

An entry has two fields: ``k`` (the kind: ``e`` event, ``c`` Connected, ``d`` Disconnected)
and ``v`` (the bytes above).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

import msgspec

from yeastar_async.errors import EventDecodeError
from yeastar_async.events import Connected, Disconnected, Event, UnknownEvent, decode

__all__ = ["EntryError", "decode_entry", "encode_event"]

_ENCODER: Final = msgspec.json.Encoder()
_CONNECTED: Final = msgspec.json.Decoder(Connected)
_DISCONNECTED: Final = msgspec.json.Decoder(Disconnected)

KIND_EVENT: Final = b"e"
KIND_CONNECTED: Final = b"c"
KIND_DISCONNECTED: Final = b"d"


class EntryError(ValueError):
    """A stream entry that this library did not write (or a newer version did)."""


def encode_event(event: object) -> tuple[bytes, bytes]:
    """``(kind, value)`` of the entry that stores ``event``; TypeError for anything else."""
    if isinstance(event, Event):
        # msg as JSON text: decode() reads that straight into the payload Struct.
        msg = _ENCODER.encode(event.msg).decode()
        return KIND_EVENT, _ENCODER.encode({"type": event.type, "sn": event.sn, "msg": msg})
    if isinstance(event, UnknownEvent):
        raw = event.raw
        if raw:
            return KIND_EVENT, raw.encode() if isinstance(raw, str) else bytes(raw)
        envelope = {"type": event.type, "sn": event.sn, "msg": event.msg}
        return KIND_EVENT, _ENCODER.encode(envelope)
    if isinstance(event, Connected):
        return KIND_CONNECTED, _ENCODER.encode(event)
    if isinstance(event, Disconnected):
        return KIND_DISCONNECTED, _ENCODER.encode(event)
    raise TypeError(f"not an event the relay can store: {type(event).__name__}")


def _field(fields: Mapping[Any, Any], name: bytes) -> bytes:
    # A client made with decode_responses=True hands back str keys and values.
    value = fields.get(name)
    if value is None:
        value = fields.get(name.decode())
    if value is None:
        raise EntryError(f"the entry has no {name.decode()!r} field")
    return value.encode() if isinstance(value, str) else bytes(value)


def decode_entry(fields: Mapping[Any, Any]) -> Event | UnknownEvent | Connected | Disconnected:
    """The event an entry stores; :class:`EntryError` if it is not one of ours.

    A PBX event that does not decode as an envelope any more is an :class:`EntryError` too
    (never written by :func:`encode_event`).
    """
    kind = _field(fields, b"k")
    value = _field(fields, b"v")
    try:
        if kind == KIND_EVENT:
            # As text, as the stream reads a text frame (UnknownEvent.raw is that str).
            return decode(value.decode())
        if kind == KIND_CONNECTED:
            return _CONNECTED.decode(value)
        if kind == KIND_DISCONNECTED:
            return _DISCONNECTED.decode(value)
    except (ValueError, EventDecodeError) as exc:  # msgspec's errors are ValueErrors
        raise EntryError(f"the entry's value does not decode ({type(exc).__name__})") from None
    raise EntryError(f"unknown entry kind {kind[:16]!r}")
