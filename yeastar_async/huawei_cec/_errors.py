"""Errors of the Huawei Cloud CEC client, all :class:`~yeastar_async.errors.YeastarError`\\ s.

Network faults, redirects, oversized and non-JSON answers raise
:class:`~yeastar_async.errors.TransportError` as for a Yeastar PBX; what the CEC itself answered
raises a :class:`CecError`, with the vendor's fields kept raw (``returnCode`` is a string and
the vendor publishes no list of its values).
"""

from __future__ import annotations

from ..errors import YeastarError

__all__ = [
    "CecAuthError",
    "CecError",
    "CecHttpError",
    "CecPartialDeleteError",
    "CecReturnCodeError",
]


class CecError(YeastarError):
    """Base of the errors the CEC answered.

    Attributes:
        endpoint: the operation called, e.g. ``"calledRoute/modifyCalledRoute"``.
        status: the HTTP status of the answer.
        return_code: the raw ``returnCode`` (a string), or ``None`` when the answer had none.
        description: the ``description`` (or other explanation) the CEC sent, secrets masked.
    """

    def __init__(
        self,
        message: str,
        *,
        endpoint: str,
        status: int | None = None,
        return_code: str | None = None,
        description: str = "",
    ) -> None:
        self.status = status
        self.return_code = return_code
        self.description = description
        super().__init__(message, endpoint=endpoint, errmsg=description)


class CecAuthError(CecError):
    """The credentials were refused: ``tokenByAkSk`` rejected the app key / secret, or a
    business call was answered 401/403 again with a token fetched just for it."""


class CecHttpError(CecError):
    """A non-200 answer other than 401/403 (400 bad request, 404 wrong path, 500 business
    failure, ...)."""


class CecReturnCodeError(CecError):
    """HTTP 200 with ``returnCode`` other than ``"0"``: the CEC refused the operation."""


class CecPartialDeleteError(CecError):
    """``deleteCalledRoute`` deleted only some of the routes.

    Attributes:
        deleted: the dnids the CEC reported deleted.
        failed: the dnids it reported not deleted.
    """

    def __init__(
        self,
        message: str,
        *,
        endpoint: str,
        deleted: list[int],
        failed: list[int],
        description: str = "",
    ) -> None:
        self.deleted = deleted
        self.failed = failed
        super().__init__(message, endpoint=endpoint, status=200, description=description)
