"""How one event is written to a Redis Stream entry, and read back as the same typed event.

A PBX event is stored as the envelope the PBX sends, ``{"type", "sn", "msg": "<JSON text>"}``,
so a worker decodes it with :func:`yeastar_async.events.decode`, the stream's own decoder, on
its fast path (``msg`` as a JSON string). An :class:`~yeastar_async.events.UnknownEvent` is
stored as the frame it was received as, so it decodes to the same UnknownEvent. A
:class:`~yeastar_async.events.CdrRecovered` (a CDR fetched over REST after a gap) is stored as
``{"msg", "record", "row"}``, ``row`` naming the record's type, so it decodes to a
``CdrRecovered`` with the same typed record. The link events (``Connected`` /
``Disconnected``) are stored as their own JSON.

An entry has two fields: ``k`` (the kind: ``e`` event, ``r`` recovered CDR, ``c`` Connected,
``d`` Disconnected) and ``v`` (the bytes above).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

import msgspec

from yeastar_async.errors import EventDecodeError
from yeastar_async.events import (
    CdrRecovered,
    Connected,
    Disconnected,
    Event,
    UnknownEvent,
    decode,
)
from yeastar_async.events.models import CdrInfo
from yeastar_async.resources._v2 import CdrV2
from yeastar_async.resources.cdr import CDRDetails

__all__ = ["EntryError", "decode_entry", "encode_event", "entry_field"]

_ENCODER: Final = msgspec.json.Encoder()
_CONNECTED: Final = msgspec.json.Decoder(Connected)
_DISCONNECTED: Final = msgspec.json.Decoder(Disconnected)

KIND_EVENT: Final = b"e"
KIND_CONNECTED: Final = b"c"
KIND_DISCONNECTED: Final = b"d"
KIND_RECOVERED: Final = b"r"


class _Recovered(msgspec.Struct, frozen=True):
    """The stored form of a CdrRecovered: its 30012-shaped ``msg`` and its REST ``record``."""

    msg: CdrInfo
    record: msgspec.Raw = msgspec.Raw(b"null")
    row: str = ""


#: The REST record types a recovered CDR carries, by the name stored in ``row``.
_ROWS: Final[dict[str, type[msgspec.Struct]]] = {"v1": CDRDetails, "v2": CdrV2}
_ROW_NAMES: Final = {row: name for name, row in _ROWS.items()}
_ROW_DECODERS: Final = {name: msgspec.json.Decoder(row) for name, row in _ROWS.items()}
_RECOVERED: Final = msgspec.json.Decoder(_Recovered)
_ANY: Final = msgspec.json.Decoder()  # a record of a type this version does not name


class EntryError(ValueError):
    """A stream entry that this library did not write (or a newer version did)."""


def encode_event(event: object) -> tuple[bytes, bytes]:
    """``(kind, value)`` of the entry that stores ``event``; TypeError for anything else."""
    if isinstance(event, CdrRecovered):  # before Event: it is a NewCdr too
        row = _ROW_NAMES.get(type(event.record), "")
        stored = {"msg": event.msg, "record": event.record, "row": row}
        return KIND_RECOVERED, _ENCODER.encode(stored)
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


def entry_field(fields: Mapping[Any, Any], name: bytes) -> bytes:
    """The bytes of field ``name`` of an entry; :class:`EntryError` when it has none."""
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
    kind = entry_field(fields, b"k")
    value = entry_field(fields, b"v")
    try:
        if kind == KIND_EVENT:
            # As text, as the stream reads a text frame (UnknownEvent.raw is that str).
            return decode(value.decode())
        if kind == KIND_RECOVERED:
            return _recovered(value)
        if kind == KIND_CONNECTED:
            return _CONNECTED.decode(value)
        if kind == KIND_DISCONNECTED:
            return _DISCONNECTED.decode(value)
    except (ValueError, EventDecodeError) as exc:  # msgspec's errors are ValueErrors
        raise EntryError(f"the entry's value does not decode ({type(exc).__name__})") from None
    raise EntryError(f"unknown entry kind {kind[:16]!r}")


def _recovered(value: bytes) -> CdrRecovered:
    stored = _RECOVERED.decode(value)
    decoder = _ROW_DECODERS.get(stored.row)
    record = (decoder or _ANY).decode(stored.record)
    return CdrRecovered(msg=stored.msg, record=record)
