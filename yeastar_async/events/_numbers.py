"""Exact JSON numbers for the events repair path: a number becomes the very text it was sent as.

The PBX sometimes sends a call id as a JSON number (``"call_id": 1648801160.110``). Parsed as a
float it would lose digits (``1648801160.11``); as a plain :class:`~decimal.Decimal` it keeps
them but not its spelling (``1.5e9`` prints as ``1.5E+9``). :data:`EXACT_TEXT_JSON` hands every
non-integer number over as an :class:`ExactNumber`: a Decimal (so arithmetic and the lenient
conversion treat it as a number) whose ``str()`` is the number's text in the frame.

A number beyond the float range (``1e1000000``) is refused while parsing (see
:func:`yeastar_async._lenient.check_number`): the frame is then a decode error.

Imported on the first frame that needs repair, not at ``import yeastar_async``.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Final

import msgspec

from yeastar_async._lenient import exact_number

__all__ = ["EXACT_TEXT_JSON", "ExactNumber"]


class ExactNumber(Decimal):
    """A JSON number kept exact, whose ``str()`` is its text as sent."""

    __slots__ = ("_text",)

    _text: str

    def __new__(cls, text: str) -> ExactNumber:
        """Parse ``text`` (a JSON number literal) and keep it; NumberOutOfRange if too big."""
        # Parsed and range-checked once; the copy from a Decimal is exact and cheap.
        self = super().__new__(cls, exact_number(text))
        self._text = text
        return self

    def __str__(self) -> str:
        return self._text


#: Parses JSON with every non-integer number as an :class:`ExactNumber` (msgspec passes the
#: literal's text to the hook); integers are Python ints, exact already.
EXACT_TEXT_JSON: Final = msgspec.json.Decoder(float_hook=ExactNumber)
