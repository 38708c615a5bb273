"""Exception hierarchy and the PBX error-code table.

Every non-zero ``errcode`` raises a subclass of :class:`YeastarError` chosen from
:data:`ERROR_TABLE`; codes the manual does not list raise plain :class:`YeastarError`.
Network faults and answers that are not a JSON envelope raise :class:`TransportError`.

No exception text ever contains a token or the client secret: the transport redacts URLs
before they reach an error, parameter values of secret-looking fields are masked, and
:func:`error_for` passes every text the server sent (``errmsg``, ``submsg``, every string in
``invalid_param_list`` / ``duplicate_field_list``) through the client's mask before it becomes
an attribute or part of a message.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from ._secrets import redact

__all__ = [
    "ERROR_TABLE",
    "AccessDeniedError",
    "ApiUnavailableError",
    "AuthenticationError",
    "ConflictError",
    "DuplicateKeyError",
    "EventDecodeError",
    "IPBlockedError",
    "LimitExceededError",
    "LockoutGuardError",
    "NotFoundError",
    "ParameterError",
    "PartialSuccessError",
    "PreconditionError",
    "ProcessingError",
    "RequestFailedError",
    "ServerError",
    "TokenExpiredError",
    "TransportError",
    "YeastarError",
    "error_for",
]

_SECRET_FIELDS = ("password", "secret", "token")
_MAX_LISTED = 5


def _mask(field: str, value: object) -> object:
    if any(word in field.lower() for word in _SECRET_FIELDS):
        return "***"
    return value


#: Parameters that say what a request was about (``id``, ``ext_id``, ``channel_id``, ``file``,
#: a report's ``type``, the v2.0 ``cdr/detail`` ``uid`` ...): an error answered to it names their
#: values. None is a secret.
_IDENTIFYING = re.compile(r"(id|ids|uid|file|number|type|\w+_(id|ids|num|number|list))")
_MAX_SHOWN = 60


def _identifying(params: Mapping[str, Any]) -> str:
    """``id=235, type=blind``: the identifying parameters among ``params``, shortened."""
    parts = []
    for name, value in params.items():
        if not _IDENTIFYING.fullmatch(name) or isinstance(value, Mapping):
            continue
        if isinstance(value, list) and not all(isinstance(v, str | int | float) for v in value):
            continue
        shown = _mask(name, value)
        # As the PBX reads them: "ids=1,2,3" (a query string has no quotes).
        text = ",".join(map(str, shown)) if isinstance(shown, list) else str(shown)
        if len(text) > _MAX_SHOWN:
            text = text[: _MAX_SHOWN - 3] + "..."
        parts.append(f"{name}={text}")
    return ", ".join(parts[:_MAX_LISTED])


def _describe_items(items: Sequence[Mapping[str, Any]]) -> str:
    parts = []
    for item in items[:_MAX_LISTED]:
        field = str(item.get("field", "?"))
        text = field
        if "value" in item:
            text += f"={_mask(field, item['value'])!r}"
        if item.get("validation_type"):
            text += f" ({item['validation_type']})"
        if item.get("external_source_name"):
            text += f" (already used by {item['external_source_name']})"
        parts.append(text)
    if len(items) > _MAX_LISTED:
        parts.append(f"... {len(items) - _MAX_LISTED} more")
    return ", ".join(parts)


class YeastarError(Exception):
    """Base of every error this SDK raises.

    Attributes:
        errcode: the PBX error code (``None`` for errors that never reached the PBX).
        errmsg: the PBX error message, e.g. ``"PARAMETER ERROR"``.
        endpoint: the endpoint called, e.g. ``"extension/create"``.
        invalid_param_list: the PBX's list of rejected parameters, when it sent one.
        duplicate_field_list: the PBX's list of duplicated unique fields, when it sent one.
        submsg: the PBX's extra explanation, when it sent one.
        request_params: the request's identifying parameters as the message names them
            (``"id=235"``), or ``""``.
    """

    #: Extra advice appended to the message (how to fix it), per class.
    hint: str = ""

    def __init__(
        self,
        message: str | None = None,
        *,
        errcode: int | None = None,
        errmsg: str = "",
        endpoint: str = "",
        invalid_param_list: Sequence[Mapping[str, Any]] | None = None,
        duplicate_field_list: Sequence[Mapping[str, Any]] | None = None,
        submsg: str | None = None,
    ) -> None:
        self.errcode = errcode
        self.errmsg = errmsg
        self.endpoint = endpoint
        self.invalid_param_list = list(invalid_param_list or [])
        self.duplicate_field_list = list(duplicate_field_list or [])
        self.submsg = submsg
        self.request_params = ""
        self._built = message is None
        super().__init__(message if message is not None else self._build_message())

    def note_request(self, params: Mapping[str, Any]) -> None:
        """Name the identifying parameters of the request this error answers (``id=235``) in
        its message; called by the transport, which knows the request."""
        shown = _identifying(params)
        if shown and self._built:
            self.request_params = shown
            self.args = (self._build_message(), *self.args[1:])

    def _build_message(self) -> str:
        where = f"{self.endpoint}: " if self.endpoint else ""
        text = f"{where}PBX answered errcode {self.errcode} {self.errmsg!r}".rstrip()
        if self.request_params:
            text += f" for {self.request_params}"
        if self.invalid_param_list:
            text += f"; invalid parameters: {_describe_items(self.invalid_param_list)}"
        if self.duplicate_field_list:
            text += f"; duplicate values: {_describe_items(self.duplicate_field_list)}"
        if self.submsg:
            text += f"; {self.submsg}"
        if self.hint:
            text += f". {self.hint}"
        return text


class TransportError(YeastarError):
    """The request failed below the API: network fault, timeout, non-200 status, non-JSON body.

    Attributes:
        status: the HTTP status, or ``None`` when no response arrived.
        body_excerpt: the first bytes of the body (decoded leniently), for diagnosis.
        sent: ``False`` only when the request provably never left (connection refused, DNS).
        delivered: whether the request itself reached the server's HTTP layer: ``False`` when
            it provably did not (refused, DNS, a TLS handshake or certificate pin failure: the
            server read nothing it could act on, even if the caller must not retry), ``None``
            when unknown (a timeout, a connection cut after sending), ``True`` when the server
            answered.
    """

    def __init__(
        self,
        message: str,
        *,
        endpoint: str = "",
        status: int | None = None,
        body_excerpt: str = "",
        sent: bool = True,
        delivered: bool | None = None,
    ) -> None:
        self.status = status
        self.body_excerpt = body_excerpt
        self.sent = sent
        if not sent:
            delivered = False
        elif status is not None:
            delivered = True
        self.delivered = delivered
        super().__init__(message, endpoint=endpoint)


class EventDecodeError(YeastarError):
    """A WebSocket frame is not an event envelope at all (not JSON, or no integer ``type``)."""


class AuthenticationError(YeastarError):
    """The PBX rejected the client ID / secret (``get_token`` answered ``-1 FAILURE``)."""

    hint = (
        "Check the Client ID and Client Secret under Integrations > API on the PBX. "
        "The PBX blocks the caller's IP after 5 consecutive failed logins"
    )


class LockoutGuardError(AuthenticationError):
    """The client refuses to log in again after repeated credential failures.

    The PBX blocks an IP after 5 consecutive failed logins; the SDK stops after 3 rejections of
    the same credentials, or 4 of any, counted across the clients and processes of the user (the
    login-guard state file, or a token store that keeps the count). The message names the file
    to delete once the credentials are fixed; a successful login starts the count again.
    """

    hint = ""


class TokenExpiredError(YeastarError):
    """10004: the access token expired or was revoked, and a refresh did not help."""


class AccessDeniedError(YeastarError):
    """The API account may not do this (10005 ACCESS DENIED, 70084 ACTION FORBIDDEN)."""


class IPBlockedError(YeastarError):
    """70004 / 70087: the PBX refuses requests from this IP address."""

    hint = (
        "An administrator can unblock the address in the PBX web interface under "
        "Security > Security Rules > IP Blocklist, and allow it under Integrations > API "
        "(IP allow list) if that list is enabled"
    )


class ParameterError(YeastarError):
    """40001 / 40002: the PBX rejected a parameter (see ``invalid_param_list``)."""


class DuplicateKeyError(YeastarError):
    """40003: a value that must be unique is already in use (see ``duplicate_field_list``)."""


class NotFoundError(YeastarError):
    """The item named does not exist (60001 DATA NOT FOUND and the specific not-found codes)."""


class LimitExceededError(YeastarError):
    """A limit was reached: 60002 MAX LIMITATION EXCEEDED (the token cap too), size, members."""


class ApiUnavailableError(YeastarError):
    """The API, this endpoint, or this API version is not available on the PBX."""

    hint = "Enable the API under Integrations > API and check the firmware and licence"


class ConflictError(YeastarError):
    """The PBX's current state forbids the operation (task running, item still referenced)."""


class PreconditionError(YeastarError):
    """A PBX feature or setting this operation needs is missing or off."""


class ServerError(YeastarError):
    """-2 INTERNAL SERVER ERROR."""


class RequestFailedError(YeastarError):
    """-1 FAILURE: the PBX reports a generic failure."""


class PartialSuccessError(YeastarError):
    """1 PARTIAL SUCCESS: part of the request was applied."""


class ProcessingError(YeastarError):
    """2 PROCESSING: the PBX is still processing the request."""


#: errcode -> (exception class, message the manual gives). Covers every code of the manual.
ERROR_TABLE: dict[int, tuple[type[YeastarError], str]] = {
    -2: (ServerError, "INTERNAL SERVER ERROR"),
    -1: (RequestFailedError, "FAILURE"),
    1: (PartialSuccessError, "PARTIAL SUCCESS"),
    2: (ProcessingError, "PROCESSING"),
    10001: (ApiUnavailableError, "INTERFACE NOT EXISTED"),
    10002: (ApiUnavailableError, "API VERSION OUT OF MAINTENANCE"),
    10003: (ApiUnavailableError, "API VERSION UNSUPPORTED"),
    10004: (TokenExpiredError, "TOKEN EXPIRED"),
    10005: (AccessDeniedError, "ACCESS DENIED"),
    40001: (ParameterError, "PARAMETER SYNTAX ERROR"),
    40002: (ParameterError, "PARAMETER ERROR"),
    40003: (DuplicateKeyError, "DUPLICATE KEY VALUE"),
    40004: (LimitExceededError, "FILE SIZE EXCEEDED"),
    60001: (NotFoundError, "DATA NOT FOUND"),
    60002: (LimitExceededError, "MAX LIMITATION EXCEEDED"),
    60101: (NotFoundError, "ROLE NOT EXISTED"),
    70004: (IPBlockedError, "ACCOUNT IP BLOCKED"),
    70082: (ConflictError, "OVERLOAD_TASK_RUNNING"),
    70084: (AccessDeniedError, "ACTION FORBIDDEN"),
    70087: (IPBlockedError, "IP FORBIDDEN"),
    70091: (ConflictError, "CONNECTION_RELATION_EXISTS"),
    70093: (NotFoundError, "PHONEBOOK_NOT_EXISTED"),
    70106: (PreconditionError, "RATE_NOT_EXISTED"),
    70120: (PreconditionError, "ORGANIZATION DISABLED"),
    70123: (ApiUnavailableError, "API UNAVAILABLE"),
    70128: (NotFoundError, "CONTACTS_NOT_EXISTED"),
    70130: (NotFoundError, "CAHNNEL ID NOT FOUND"),
    70132: (PreconditionError, "OPERATION NOT SUPPORTED"),
    70510: (LimitExceededError, "MAX PARTICIPANTS EXCEEDED"),
    70516: (NotFoundError, "WAKEUP CALL ALARM NOT EXISTED"),
    70524: (ConflictError, "CAN'T CHECKOUT WHEN PMS CHECKIN"),
    70525: (ConflictError, "CAN'T OPERATE WITH PMS CONNECT"),
}


def _masked(value: Any, mask: Callable[[str], str]) -> Any:
    """``value`` with ``mask`` applied to every string in it, in lists and mappings too (their
    keys included): a server's error lists may echo any value sent, a token among them."""
    if isinstance(value, str):
        return mask(value)
    if isinstance(value, Mapping):
        return {_masked(k, mask): _masked(v, mask) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_masked(v, mask) for v in value]
    return value


def error_for(
    errcode: int,
    errmsg: str = "",
    *,
    endpoint: str = "",
    invalid_param_list: Sequence[Mapping[str, Any]] | None = None,
    duplicate_field_list: Sequence[Mapping[str, Any]] | None = None,
    submsg: str | None = None,
    mask: Callable[[str], str] = redact,
) -> YeastarError:
    """Build the exception for a non-zero ``errcode`` answered by ``endpoint``.

    ``-1 FAILURE`` answered by ``get_token`` means the credentials were rejected and gives
    :class:`AuthenticationError`; elsewhere it is the generic :class:`RequestFailedError`.

    ``mask`` is applied to every text the server sent before it becomes an attribute or part of
    the message: pass the client's :class:`~yeastar_async._secrets.SecretMask` so that its own
    secret and tokens are hidden wherever the server echoes them (the default masks values by
    their name only).
    """
    cls, default_msg = ERROR_TABLE.get(errcode, (YeastarError, ""))
    if errcode == -1 and endpoint == "get_token":
        cls = AuthenticationError
    return cls(
        errcode=errcode,
        errmsg=mask(errmsg) if errmsg else default_msg,
        endpoint=endpoint,
        invalid_param_list=_masked(list(invalid_param_list or ()), mask),
        duplicate_field_list=_masked(list(duplicate_field_list or ()), mask),
        submsg=mask(submsg) if submsg is not None else None,
    )
