"""Base Structs shared by every REST response model, and the integer type of decoded fields."""

from __future__ import annotations

from typing import Annotated, ClassVar, Final, TypeAlias

import msgspec

__all__ = ["INT64_MAX", "INT64_MIN", "INT64_RANGE", "ApiResponse", "Int64"]

INT64_MIN: Final = -(2**63)
INT64_MAX: Final = 2**63 - 1

#: The bounds of :data:`Int64`, for an int NewType (``Annotated[Dnid, INT64_RANGE]``).
INT64_RANGE: Final = msgspec.Meta(ge=INT64_MIN, le=INT64_MAX)

#: The type of every integer field the SDK decodes from the PBX (events and REST answers).
#: msgspec gives a plain ``int`` field any integer literal up to 4,300 digits; the bounds make
#: one beyond int64 a decode error for that field on the fast path too, as the lenient path
#: already refuses it (issue 11, point 8). The check costs nanoseconds per field (bench/README.md).
Int64: TypeAlias = Annotated[int, INT64_RANGE]


class ApiResponse(msgspec.Struct, kw_only=True):
    """The envelope every OpenAPI answer carries: ``errcode`` 0 and ``errmsg`` "SUCCESS".

    Response models subclass it and add the endpoint's top-level payload keys (``data``,
    ``total_number``, ``id``, ``call_id`` ...). Every field has a default so that a field a
    firmware leaves out never makes a response undecodable; unknown fields are ignored.

    ``api_version`` (a class attribute, never decoded) says which API version answered:
    ``"1.0"`` here, ``"2.0"`` on the answers of the ``openapi/v2.0`` endpoints (CDRs and call
    reports on current firmware).
    """

    api_version: ClassVar[str] = "1.0"

    errcode: Int64 = 0
    errmsg: str = "SUCCESS"
