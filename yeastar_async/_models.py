"""Base Structs shared by every REST response model."""

from __future__ import annotations

import msgspec


class ApiResponse(msgspec.Struct, kw_only=True):
    """The envelope every OpenAPI answer carries: ``errcode`` 0 and ``errmsg`` "SUCCESS".

    Response models subclass it and add the endpoint's top-level payload keys (``data``,
    ``total_number``, ``id``, ``call_id`` ...). Every field has a default so that a field a
    firmware leaves out never makes a response undecodable; unknown fields are ignored.
    """

    errcode: int = 0
    errmsg: str = "SUCCESS"
