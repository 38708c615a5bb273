"""What a queued event costs against the byte bound of the event buffers (``queue_bytes``).

A buffer holds decoded events, and a frame built to inflate decodes to far more than its
length: a 1 MiB list of empty objects becomes ~24 MiB of dicts, nested lists ~44 MiB. Charging
each event its frame's length would let a hostile peer put ~44 x ``queue_bytes`` in a buffer.
So an event is charged an estimate that bounds what its decoded form holds, so that it holds at
most ~2x its charge (pinned by ``tests/security/test_audit_event_memory.py``). Measured on
CPython 3.11 with ``tracemalloc``, frames of 0.1-2 MiB:

- Nested lists (``[[[...]]]``) are the worst per byte: 89 bytes per level (a 56-byte list,
  over-allocated to 4 slots) for 2 frame bytes, 44.5x. So a frame up to ``SCAN_FROM`` bytes is
  charged ``FLAT`` = 23 x its length, with no scan at all: that is where real frames are (a
  30011 of two members is ~400 bytes), and scanning them would cost about a third of their
  decode (``bytes.count`` runs at ~0.45 ns a byte here). At the defaults (16 MiB, 1024 events)
  the count bound still binds first for such frames.
- A larger frame is charged by its structure, scanned in C::

      len(frame) x (1 if ASCII else WIDE) + OBJECT x count("{") + ITEM x (count(",") + count("["))

  ``OBJECT``: every ``{`` may become a dict (a Struct is smaller: the largest repeatable event
  Struct, ``InboundLeg``/``OutboundLeg``, is 72 bytes). A chain of one-key dicts
  (``{"a":{"a":...}}``) held 190 bytes per level for 7 frame bytes: 190 / 2 - 7 = 88, and 104
  leaves room (1.73x measured). ``ITEM``: every ``[`` may become a list, every ``,`` one more
  item: nested lists 89 / 2 - 2 = 42.5; a dict key costs 85 bytes per ~9, a short string item 59
  per 5; 48 leaves room (1.74x). ``WIDE``: a string with one character beyond Latin-1 stores
  every character in 2 or 4 bytes, and an unknown event keeps its text besides the decoded
  payload: up to ~9 bytes per frame byte, so a non-ASCII frame counts 5 bytes a byte (1.80x).
  Real frames come to ~3-5x their length this way.
"""

from __future__ import annotations

from typing import Final

__all__ = ["charge"]

#: Frames up to this many bytes are charged ``FLAT`` bytes a byte, unscanned.
SCAN_FROM: Final = 512
FLAT: Final = 23
OBJECT: Final = 104
ITEM: Final = 48
WIDE: Final = 5


def charge(frame: bytes | str) -> int:
    """The bytes a queued event decoded from ``frame`` is charged (see the module's notes)."""
    if isinstance(frame, str):
        frame = frame.encode("utf-8", "surrogatepass")  # frames arrive as bytes; tests pass str
    if len(frame) <= SCAN_FROM:
        return FLAT * len(frame)
    base = len(frame) if frame.isascii() else WIDE * len(frame)
    return base + OBJECT * frame.count(b"{") + ITEM * (frame.count(b",") + frame.count(b"["))
