"""``CecClient``: the HTTP side of the Huawei Cloud CEC API (one session, TLS, caps, tokens).

Every operation is a ``POST`` of a JSON body. The transport rules of the Yeastar client hold
here too: one aiohttp session per client, TLS verified by default (a CA file or a SHA-256 pin
instead, :class:`~yeastar_async._tls.TlsPolicy`), a total and a connect timeout, a cap on
requests in flight, no redirect ever followed (the requests carry the app secret or a token),
answers read up to ``max_response_size`` bytes, and the app secret and every token masked in
every error and log line (:class:`~yeastar_async._secrets.SecretMask`).

A business call answered 401 or 403 gets one fresh token and is sent once more (the CEC
refused it before acting, so even ``create`` is not done twice); a second 401/403 raises
:class:`CecAuthError`. No other failure is retried: ``create`` and ``delete`` are not
idempotent.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import time
from collections.abc import Callable, Mapping
from types import TracebackType
from typing import Any, Self, TypeVar

import aiohttp
import msgspec
from yarl import URL

from .._http import _Slots
from .._lenient import EXACT_JSON, convert
from .._secrets import SecretMask
from .._tls import SslOption, TlsPolicy
from .._version import __version__
from .._wire import excerpt, read_capped, refuse_redirect, transport_failure
from ..errors import TransportError
from ._errors import CecAuthError, CecHttpError, CecReturnCodeError
from ._models import CecResult, _Token
from ._routes import CalledRouteResource
from ._tokens import TokenKeeper

__all__ = [
    "DEFAULT_MAX_RESPONSE_SIZE",
    "DEFAULT_TOKEN_TTL",
    "MAX_TOKEN_TTL",
    "ROUTE_PATH",
    "TOKEN_PATH",
    "CecClient",
]

logger = logging.getLogger("yeastar_async.cec")

T = TypeVar("T", bound=CecResult)

#: Where ``tokenByAkSk`` lives on the CEC's domain.
TOKEN_PATH = "/apigovernance/api/oauth/tokenByAkSk"
#: The prefix of the called-route operations (``createCalledRoute`` ...).
ROUTE_PATH = "/apiaccess/rest/cc-management/v1/"
#: The token lifetime asked for by default, and the most ``X-Token-Expire`` allows (seconds).
DEFAULT_TOKEN_TTL = 3600
MAX_TOKEN_TTL = 3600
#: A page holds at most 100 routes: 1 MiB is ample, and bounds what a hostile peer can cost.
DEFAULT_MAX_RESPONSE_SIZE = 1 << 20

_AUTH_STATUSES = frozenset({401, 403})


def _base_url(domain: str) -> URL:
    """``https://{domain}``; an explicit ``http://`` only for a loopback host (a local fake):
    the app secret never crosses a network in clear text."""
    if not isinstance(domain, str) or not domain.strip():
        raise ValueError(
            f"domain must be the CEC's host name, e.g. 'service.besclouds.com', got {domain!r}"
        )
    text = domain.strip().rstrip("/")
    url = URL(text if "://" in text else f"https://{text}")
    if url.scheme not in ("http", "https") or not url.host or url.path not in ("", "/"):
        raise ValueError(
            f"domain must be a host name (optionally https://host:port), got {domain!r}"
        )
    if url.query_string or url.fragment or url.user is not None:
        raise ValueError(f"domain must not carry a query, fragment or user info, got {domain!r}")
    if url.scheme == "http" and not _is_loopback(url.host):
        raise ValueError(
            f"domain {domain!r} uses plain http: the app secret and tokens would travel in "
            "clear text; use https (plain http is accepted for loopback test servers only)"
        )
    return url.with_path("")


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _check_credential(name: str, value: object) -> str:
    if not isinstance(value, str) or not value.strip():
        shown = "***" if name == "app_secret" and value else repr(value)
        raise ValueError(f"{name} must be a non-empty string, got {shown}")
    if any(ch in value for ch in "\r\n\x00"):
        raise ValueError(f"{name} must not contain line breaks or NUL characters")
    return value


class _TokenAnswer(msgspec.Struct, kw_only=True):
    """``tokenByAkSk`` read loosely: a refusal may come as a 200 with a returnCode."""

    access_token: str | None = msgspec.field(name="AccessToken", default=None)
    create_time: float | None = msgspec.field(name="CreateTime", default=None)
    expires: float | None = msgspec.field(name="Expires", default=None)
    return_code: str | None = msgspec.field(name="returnCode", default=None)
    description: str | None = None

    def __repr__(self) -> str:
        return f"_TokenAnswer(returnCode={self.return_code!r})"


_encoder = msgspec.json.Encoder()
_decoders: dict[type[Any], msgspec.json.Decoder[Any]] = {}


def _decode(body: bytes, response_type: type[Any], name: str, mask: Callable[[str], str]) -> Any:
    """``body`` as ``response_type``: strictly first, then leniently (a number sent for a
    string, ``null`` for a list), else :class:`TransportError`."""
    decoder = _decoders.get(response_type)
    if decoder is None:
        decoder = _decoders[response_type] = msgspec.json.Decoder(response_type, strict=False)
    try:
        return decoder.decode(body)
    except (msgspec.DecodeError, RecursionError) as exc:  # ValidationError is a DecodeError
        first: Exception = exc
    try:
        return convert(EXACT_JSON.decode(body), response_type)
    except (msgspec.DecodeError, RecursionError):
        pass
    # Raised outside the except clause: no decoder error (the server's text) in __context__.
    raise TransportError(
        f"POST {name}: the answer is not the JSON expected ({mask(str(first))})",
        endpoint=name,
        status=200,
        body_excerpt=excerpt(body, mask),
    )


def _description(body: bytes, mask: Callable[[str], str]) -> tuple[str | None, str]:
    """The ``returnCode`` and ``description`` of an error body, or ``None`` and an excerpt."""
    try:
        parsed = msgspec.json.decode(body)
    except (msgspec.DecodeError, RecursionError):
        parsed = None
    if isinstance(parsed, dict):
        code = parsed.get("returnCode", parsed.get("error_code"))
        text = parsed.get("description", parsed.get("error_msg", parsed.get("message")))
        if code is not None or text is not None:
            return (None if code is None else mask(str(code))), mask(str(text or ""))
    return None, excerpt(body, mask)


class CecClient:
    """An asyncio client of the Huawei Cloud CEC (AICC) management API: called routes.

    Usage::

        async with CecClient("service.besclouds.com", app_key, app_secret) as cec:
            async for route in cec.called_route.query(access_code="4001"):
                ...

    Construction does no I/O. The token is fetched on the first call and renewed before it
    expires; :meth:`aclose` (or leaving the ``async with``) closes the session.

    Args:
        domain: the CEC's host name (``service.besclouds.com``), optionally as
            ``https://host:port``; ``http://`` is accepted for loopback test servers only.
        app_key: the app key (the user ID; sent as ``X-APP-Key`` too).
        app_secret: the app secret; masked in every error and log line.
        token_ttl: the token lifetime asked for with ``X-Token-Expire``, 1..3600 seconds.
        ssl: TLS choice, as for ``YeastarClient``: ``None`` verify (default), a CA file path, a
            SHA-256 certificate fingerprint, an ``ssl.SSLContext``, or ``False`` (no
            verification; a warning is logged).
        timeout: seconds a call may take, waiting for a request slot included.
        connect_timeout: seconds to open a connection.
        max_concurrency: requests in flight at once; more wait for a slot.
        max_response_size: the largest answer read, in bytes; a bigger one raises
            :class:`~yeastar_async.errors.TransportError`.
        clock: the wall clock in unix seconds (``time.time``), which ``CreateTime`` is read
            against; inject one to age tokens in tests.

    Attributes:
        called_route: the called-route operations (:class:`CalledRouteResource`).
        secrets: the mask of this client's app secret and tokens.
    """

    def __init__(
        self,
        domain: str,
        app_key: str,
        app_secret: str,
        *,
        token_ttl: int = DEFAULT_TOKEN_TTL,
        ssl: SslOption = None,
        timeout: float = 30.0,
        connect_timeout: float = 10.0,
        max_concurrency: int = 10,
        max_response_size: int = DEFAULT_MAX_RESPONSE_SIZE,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._url = _base_url(domain)
        self.app_key = _check_credential("app_key", app_key)
        self.secrets = SecretMask([_check_credential("app_secret", app_secret)])
        self._app_secret = app_secret
        if isinstance(token_ttl, bool) or not isinstance(token_ttl, int):
            raise ValueError(f"token_ttl must be whole seconds (an int), got {token_ttl!r}")
        if not 1 <= token_ttl <= MAX_TOKEN_TTL:
            raise ValueError(f"token_ttl must be 1..{MAX_TOKEN_TTL} seconds, got {token_ttl!r}")
        for name, value in (("timeout", timeout), ("connect_timeout", connect_timeout)):
            if not isinstance(value, int | float) or not value > 0:
                raise ValueError(f"{name} must be > 0 seconds, got {value!r}")
        if isinstance(max_concurrency, bool) or not isinstance(max_concurrency, int):
            raise ValueError(f"max_concurrency must be an int >= 1, got {max_concurrency!r}")
        if max_concurrency < 1:
            raise ValueError(f"max_concurrency must be >= 1, got {max_concurrency!r}")
        if isinstance(max_response_size, bool) or not isinstance(max_response_size, int):
            raise ValueError(f"max_response_size must be an int, got {max_response_size!r}")
        if max_response_size < 1024:
            raise ValueError(f"max_response_size must be >= 1024 bytes, got {max_response_size!r}")
        self.token_ttl = token_ttl
        self.timeout = float(timeout)
        self.connect_timeout = float(connect_timeout)
        self.max_response_size = max_response_size
        self.tls = TlsPolicy(ssl if self._url.scheme == "https" else None)
        self._max_concurrency = max_concurrency
        self._slots = _Slots(max_concurrency)
        self._session: aiohttp.ClientSession | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closed = False
        self._tokens = TokenKeeper(self._fetch_token, ttl=token_ttl, clock=clock, mask=self.secrets)
        self.called_route = CalledRouteResource(self)

    def __repr__(self) -> str:
        return f"CecClient({self.base_url!r}, app_key={self.app_key!r})"

    @property
    def base_url(self) -> str:
        """``https://{domain}`` (what every path is appended to)."""
        return str(self._url).rstrip("/")

    async def __aenter__(self) -> Self:
        self._get_session()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Forget the token and close the session. Idempotent."""
        self._closed = True
        await self._tokens.aclose()
        session, self._session = self._session, None
        if session is not None:
            await session.close()

    # -- calls -----------------------------------------------------------------------------

    async def call(
        self,
        operation: str,
        body: Mapping[str, Any],
        response_type: type[T],
        *,
        timeout: float | None = None,
    ) -> T:
        """POST ``body`` to the operation (``"calledRoute/modifyCalledRoute"``) with the token;
        one fresh token and one more try after a 401/403; ``returnCode != "0"`` raises
        :class:`CecReturnCodeError`."""
        what = f"POST {operation}"
        data = _encoder.encode(body)
        for replay in (False, True):
            token = self._tokens.current() or await self._token_within(operation, timeout)
            headers = {
                "Content-Type": "application/json",
                "Authorization": f"Bearer {token}",
                "X-APP-Key": self.app_key,
            }
            status, raw = await self._post(
                ROUTE_PATH + operation, operation, data, headers, timeout
            )
            if status in _AUTH_STATUSES:
                self._tokens.invalidate(token)
                code, text = _description(raw, self.secrets)
                if replay:
                    raise CecAuthError(
                        f"{operation}: HTTP {status} again with a new token: {text!r} (check the "
                        "app key's rights and that the CEC service is purchased and active)",
                        endpoint=operation,
                        status=status,
                        return_code=code,
                        description=text,
                    )
                logger.info("%s: HTTP %d; fetching a new token and trying once more", what, status)
                continue
            return self._answer(operation, status, raw, response_type)
        raise AssertionError("unreachable: the second try returns or raises")

    async def _token_within(self, operation: str, timeout: float | None) -> str:
        """A token, waited for no longer than the call's ``timeout``: the shared fetch goes on
        for the other calls if this one gives up."""
        limit = timeout if timeout is not None else self.timeout
        try:
            async with asyncio.timeout(limit):
                return await self._tokens.token()
        except TimeoutError:
            raise TransportError(
                f"POST {operation}: no token within {limit} s (tokenByAkSk is slow to answer)",
                endpoint=operation,
                sent=False,
            ) from None

    def _answer(self, operation: str, status: int, raw: bytes, response_type: type[T]) -> T:
        if status != 200:
            code, text = _description(raw, self.secrets)
            raise CecHttpError(
                f"{operation}: HTTP {status}: {text!r}",
                endpoint=operation,
                status=status,
                return_code=code,
                description=text,
            )
        answer: T = _decode(raw, response_type, operation, self.secrets)
        if answer.return_code != "0":
            code = None if answer.return_code is None else self.secrets(answer.return_code)
            text = self.secrets(answer.description or "")
            said = f"returnCode {code!r}" if code is not None else "no returnCode"
            raise CecReturnCodeError(
                f"{operation}: the CEC answered {said}: {text!r}",
                endpoint=operation,
                status=status,
                return_code=code,
                description=text,
            )
        return answer

    async def _fetch_token(self) -> _Token:
        data = _encoder.encode({"app_key": self.app_key, "app_secret": self._app_secret})
        headers = {"Content-Type": "application/json", "X-Token-Expire": str(self.token_ttl)}
        status, raw = await self._post(TOKEN_PATH, "tokenByAkSk", data, headers, None)
        if status in _AUTH_STATUSES:
            code, text = _description(raw, self.secrets)
            raise CecAuthError(
                f"tokenByAkSk: HTTP {status}: the CEC refused the app key / app secret: {text!r}",
                endpoint="tokenByAkSk",
                status=status,
                return_code=code,
                description=text,
            )
        if status != 200:
            code, text = _description(raw, self.secrets)
            raise CecHttpError(
                f"tokenByAkSk: HTTP {status}: {text!r}",
                endpoint="tokenByAkSk",
                status=status,
                return_code=code,
                description=text,
            )
        answer: _TokenAnswer = _decode(raw, _TokenAnswer, "tokenByAkSk", self.secrets)
        if not answer.access_token:
            code = None if answer.return_code is None else self.secrets(answer.return_code)
            text = self.secrets(answer.description or "")
            if code is not None:
                raise CecAuthError(
                    f"tokenByAkSk: no token; returnCode {code!r}: {text!r}",
                    endpoint="tokenByAkSk",
                    status=status,
                    return_code=code,
                    description=text,
                )
            raise TransportError(
                "tokenByAkSk: the answer holds no AccessToken",
                endpoint="tokenByAkSk",
                status=status,
                body_excerpt=excerpt(raw, self.secrets),
            )
        return _Token(
            access_token=answer.access_token,
            create_time=answer.create_time,
            expires=answer.expires,
        )

    # -- HTTP ------------------------------------------------------------------------------

    def _get_session(self) -> aiohttp.ClientSession:
        if self._closed:
            raise RuntimeError("the CecClient is closed")
        loop = asyncio.get_running_loop()
        if self._loop is not None and self._loop is not loop:
            raise RuntimeError(
                "this CecClient was first used in another event loop: create one client per loop"
            )
        self._loop = loop
        if self._session is None:
            connector = aiohttp.TCPConnector(
                limit=self._max_concurrency, ssl=self.tls.for_aiohttp()
            )
            self._session = aiohttp.ClientSession(
                connector=connector, headers={"User-Agent": f"yeastar-async/{__version__}"}
            )
        return self._session

    async def _post(
        self,
        path: str,
        name: str,
        data: bytes,
        headers: Mapping[str, str],
        timeout: float | None,
    ) -> tuple[int, bytes]:
        """One POST: its status and its body (read up to the cap). Raises
        :class:`TransportError` for network faults, timeouts, redirects and oversized bodies."""
        session = self._get_session()
        what = f"POST {name}"
        limit = timeout if timeout is not None else self.timeout
        started = time.monotonic()
        slots = self._slots
        try:
            if slots.free > 0 and not slots.waiters:
                slots.free -= 1
            else:
                async with asyncio.timeout(limit):
                    await slots.wait()
        except TimeoutError:
            raise TransportError(
                f"{what}: no request slot free within {limit} s (all {self._max_concurrency} in "
                "flight: raise max_concurrency or lower the load)",
                endpoint=name,
                sent=False,
            ) from None
        left = max(limit - (time.monotonic() - started), 0.001)
        client_timeout = aiohttp.ClientTimeout(total=left, connect=min(self.connect_timeout, left))
        try:
            async with session.post(
                self._url.with_path(path),
                data=data,
                headers=headers,
                timeout=client_timeout,
                allow_redirects=False,
            ) as resp:
                refuse_redirect(
                    resp.status, resp.headers, what=what, mask=self.secrets, endpoint=name
                )
                body = await read_capped(
                    resp, limit=self.max_response_size, what=what, mask=self.secrets, endpoint=name
                )
                status = resp.status
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise transport_failure(
                exc,
                what=what,
                endpoint=name,
                address=f"{self._url.host}:{self._url.port}",
                timeout=limit,
                mask=self.secrets,
                peer="CEC",
            ) from None
        finally:
            slots.release()
        logger.debug("%s -> HTTP %d, %d bytes", what, status, len(body))
        return status, body
