"""Base Structs shared by every REST response model."""

from __future__ import annotations

from typing import ClassVar

import msgspec


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

    errcode: int = 0
    errmsg: str = "SUCCESS"
