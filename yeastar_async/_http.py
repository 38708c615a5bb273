"""Transport: URL building, User-Agent, TLS, timeouts, retries, envelope -> value or typed error.

Every request goes to ``{base_url}/{api_path}/{endpoint}`` with the access token only in the
query string. The PBX answers HTTP 200 with ``{"errcode": N, "errmsg": ...}`` for its errors;
``errcode != 0`` raises the class :data:`yeastar_async.errors.ERROR_TABLE` names. Anything that is
not a 200 JSON envelope raises :class:`~yeastar_async.errors.TransportError`.

No request that carries a credential (the client secret, a token) follows a redirect: a 3xx
answer is a :class:`~yeastar_async.errors.TransportError` naming the status and the masked
``Location``. Bodies are read up to ``max_response_size``; every text built from what the server
sent passes through the client's :class:`~yeastar_async._secrets.SecretMask`, and no raised
error keeps an aiohttp exception (whose text may hold the URL, token included) in its chain.

Retries never risk doing a thing twice: a GET is retried on connection errors, timeouts and
502/503/504; a POST only when the request provably never left (connection refused, DNS failure),
so ``call/dial`` can never ring a phone twice. A request answered 10004 is replayed once after a
token refresh (the PBX rejected it before acting, so this is safe for POST too).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import ssl
import time
import unicodedata
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any, Protocol, TypeVar, cast
from urllib.parse import quote, unquote

import aiohttp
import msgspec
from yarl import URL

from ._backoff import Backoff
from ._fds import OutOfFileDescriptorsError, out_of_fds
from ._fds import advice as fd_advice
from ._lenient import EXACT_JSON, convert, out_of_range
from ._models import ApiResponse, Int64
from ._secrets import SecretMask, redact
from ._tls import SslOption, TlsPolicy
from ._wire import excerpt, read_capped, refuse_redirect, transport_failure
from .errors import TokenExpiredError, TransportError, YeastarError, error_for

__all__ = ["TokenSource", "Transport", "check_endpoint", "decode_envelope", "redact"]

#: The version segment of an endpoint qualified by ``Transport.request(api_path=...)``.
_VERSION = re.compile(r"v\d+\.\d+/")
logger = logging.getLogger("yeastar_async.http")

T = TypeVar("T")

_RETRY_STATUSES = frozenset({502, 503, 504})
#: Bytes of a download's error body read for its excerpt.
_EXCERPT = 200
#: Largest JSON answer read by default: far above the largest real answer (a full page of CDRs
#: is well under 1 MiB), small enough that a hostile or broken server cannot exhaust memory.
DEFAULT_MAX_RESPONSE_SIZE = 32 * 1024 * 1024
#: Default bound on a whole download (the file route), retries of a caller aside.
DEFAULT_DOWNLOAD_TIMEOUT = 600.0
#: Retired tokens the transport remembers as dead (answered 10004), to swap them for the new one
#: in calls that queued before it arrived.
_DEAD_TOKENS_KEPT = 8


class TokenSource(Protocol):
    """What the transport needs from the token manager."""

    def current(self) -> str | None:
        """A usable access token known without any I/O, else ``None`` (then :meth:`token`)."""
        ...

    async def token(self) -> str:
        """A valid access token (logging in or refreshing as needed)."""
        ...

    async def expired(self, token: str) -> None:
        """The PBX answered 10004 for ``token``: make the next :meth:`token` renew it."""
        ...


class _Envelope(msgspec.Struct):
    # Int64 as in every model: an errcode beyond int64 is no answer, not an error to raise.
    errcode: Int64 | None = None
    errmsg: Any = ""
    invalid_param_list: list[dict[str, Any]] | None = None
    duplicate_field_list: list[dict[str, Any]] | None = None
    submsg: Any = None


_envelope_decoder = msgspec.json.Decoder(_Envelope, strict=False)
_encoder = msgspec.json.Encoder()
_decoders: dict[type[Any], msgspec.json.Decoder[Any]] = {}

#: id(response type) -> (the type, its decoder): the per-request lookup. Keyed by identity
#: because hashing a generic alias such as ``ObjectResponse[DeviceInfo]`` runs Python code.
#: Each entry holds its type, so an id cannot be reused while it is cached; the size bound
#: covers callers that build a new alias object for every request.
_decoders_by_id: dict[int, tuple[Any, msgspec.json.Decoder[Any]]] = {}
_DECODERS_BY_ID_MAX = 1024


def _decoder_for(response_type: type[T]) -> msgspec.json.Decoder[T]:
    entry = _decoders_by_id.get(id(response_type))
    if entry is not None and entry[0] is response_type:
        return entry[1]
    decoder = _decoders.get(response_type)
    if decoder is None:
        # strict=False: a number sent as a string ("60") still decodes into an int field.
        decoder = _decoders[response_type] = msgspec.json.Decoder(response_type, strict=False)
    if len(_decoders_by_id) >= _DECODERS_BY_ID_MAX:
        _decoders_by_id.clear()
    _decoders_by_id[id(response_type)] = (response_type, decoder)
    return decoder


#: POSTs retried like GETs: repeating them costs at most one token (a login whose answer was
#: lost) or falls back to a login (a refresh token already used), while a transient error on
#: them would fail every call waiting for the token.
_REPEATABLE = frozenset({"get_token", "refresh_token"})


class _SlotTimeout(TransportError):
    """No request slot came free within the attempt's timeout. Not retried: the caller's
    bound is what ran out."""


#: Requests that go before the queued ones when every slot is taken: answering a 30016
#: incoming-call request has 10 seconds, whatever else the client is doing.
_URGENT = frozenset({"call/accept_inbound", "call/refuse_inbound"})


def _with_query(url: str, query: Mapping[str, str]) -> URL:
    """``url`` with ``query``, a space written ``%20``: yarl writes ``+``, which only form
    decoders read as a space, and the PBX's date filters hold spaces
    (``start_time=05/30/2022 00:00:00``). A literal ``+`` is ``%2B`` already."""
    built = URL(url).with_query(query)
    raw = built.raw_query_string
    if "+" not in raw:
        return built
    return URL(f"{url}?{raw.replace('+', '%20')}", encoded=True)


def _sent_params(query: Mapping[str, str], data: bytes | None) -> Mapping[str, Any]:
    """The parameters of a request that got an error answer (the token left out)."""
    if data is not None:
        with contextlib.suppress(msgspec.DecodeError):
            body = msgspec.json.decode(data)
            if isinstance(body, dict):
                return body
        return {}
    return {k: v for k, v in query.items() if k != "access_token"}


#: Path segments refused in an endpoint (after percent-decoding): they would climb out of the
#: API path, and the token would go to another route of the PBX.
_DOT_SEGMENTS = frozenset({".", ".."})


def check_endpoint(endpoint: str) -> str:
    """``endpoint`` without its outer slashes, or :class:`ValueError` naming what is wrong.

    Refused before any I/O: a query string (``?``, the parameters go in ``params=``), a
    fragment (``#``), ``.`` / ``..`` segments (also percent-encoded, once or more), backslashes
    and control characters. The token goes with every request, so the URL must be exactly the
    endpoint's.
    """
    name = endpoint.strip("/")
    if "?" in name:
        raise ValueError(
            f"endpoint {endpoint!r} has a query string: pass its parameters as params="
        )
    decoded, previous = name, None
    while decoded != previous:  # %252e%252e is %2e%2e once decoded, and .. twice
        previous, decoded = decoded, unquote(decoded)
    problem = None
    if "#" in decoded:
        problem = "a '#' fragment"
    elif "\\" in decoded:
        problem = "a backslash"
    elif any(unicodedata.category(c) == "Cc" for c in decoded):
        problem = "a control character"
    elif any(part in _DOT_SEGMENTS for part in decoded.split("/")):
        problem = "a '.' or '..' segment"
    if problem is not None:
        raise ValueError(
            f"endpoint {endpoint!r} has {problem}: give the endpoint's path as the manual "
            "names it (e.g. 'extension/list')"
        )
    return name


def _raise_for_envelope(env: _Envelope, endpoint: str, mask: Callable[[str], str]) -> None:
    if env.errcode is None:
        raise TransportError(f"{endpoint}: the answer has no errcode", endpoint=endpoint)
    if env.errcode != 0:
        raise error_for(
            env.errcode,
            str(env.errmsg or ""),
            endpoint=endpoint,
            invalid_param_list=env.invalid_param_list,
            duplicate_field_list=env.duplicate_field_list,
            submsg=str(env.submsg) if env.submsg not in (None, "") else None,
            mask=mask,
        )


def decode_envelope(
    body: bytes,
    endpoint: str,
    response_type: type[T],
    *,
    mask: Callable[[str], str] = redact,
) -> T:
    """Check the envelope of ``body``, then decode it as ``response_type``.

    Raises the typed error for a non-zero errcode and :class:`TransportError` for a body that is
    not a JSON object with an ``errcode``, or whose payload cannot fit ``response_type`` even
    leniently (values nested too deep included). Every text taken from ``body`` into an error
    passes through ``mask`` (a client's :class:`~yeastar_async._secrets.SecretMask`).
    """
    # A success takes one decode, straight into the response model; the envelope is read on
    # its own only for an error, a body the model rejects, or one that may lack its errcode
    # (the model's errcode defaults to 0, so the bytes must show one).
    answer: Any = None
    try:
        answer = _decoder_for(response_type).decode(body)
    except (msgspec.DecodeError, RecursionError) as exc:  # ValidationError is a DecodeError
        first_error: Exception | None = exc
    else:
        if isinstance(answer, ApiResponse) and answer.errcode == 0 and b'"errcode"' in body:
            return cast(T, answer)
        first_error = None
    # The errors below are raised outside their except clauses: no decoder error rides along in
    # __context__ (its text is the server's).
    failure: str | None = None
    try:
        env = _envelope_decoder.decode(body)
    except (msgspec.DecodeError, RecursionError) as exc:
        failure = f"the PBX answered something that is not a JSON envelope ({exc})"
    if failure is not None:
        raise _undecodable(endpoint, failure, body, mask)
    _raise_for_envelope(env, endpoint, mask)
    if first_error is None:
        return cast(T, answer)
    # Firmware drifts from the manual (a number where it documents a string, null for a list):
    # retry leniently before giving up on an answer the PBX marked as a success.
    try:
        answer = convert(EXACT_JSON.decode(body), response_type)
    except (msgspec.DecodeError, RecursionError):
        failure = f"the answer does not match {response_type.__name__}: {first_error}"
    if failure is not None:
        raise _undecodable(endpoint, failure, body, mask)
    logger.debug("%s: answer decoded leniently (%s)", endpoint, mask(str(first_error)))
    return cast(T, answer)


def _undecodable(
    endpoint: str, why: str, body: bytes, mask: Callable[[str], str]
) -> TransportError:
    return TransportError(
        f"{endpoint}: {mask(why)}",
        endpoint=endpoint,
        status=200,
        body_excerpt=excerpt(body, mask),
    )


class _Slots:
    """The concurrency cap: a counting limiter that hands freed slots to waiters in order.

    Cheaper than :class:`asyncio.Semaphore` on the uncontended path, which every request takes:
    the caller tests :attr:`free` inline and awaits :meth:`wait` only when none is left.
    """

    __slots__ = ("free", "waiters")

    def __init__(self, n: int) -> None:
        self.free = n
        self.waiters: deque[asyncio.Future[None]] = deque()

    async def wait(self, *, urgent: bool = False) -> None:
        """Wait until :meth:`release` hands this caller a slot (``urgent``: before the others)."""
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if urgent:
            self.waiters.appendleft(fut)
        else:
            self.waiters.append(fut)
        try:
            await fut
        except asyncio.CancelledError:
            if fut.done() and not fut.cancelled():
                self.release()  # a slot arrived as we were cancelled: pass it on
            elif fut in self.waiters:  # release() may have dropped it already
                self.waiters.remove(fut)
            raise

    def release(self) -> None:
        """Give a slot back: to the oldest waiter still waiting, else to the pool."""
        while self.waiters:
            fut = self.waiters.popleft()
            if not fut.done():
                fut.set_result(None)
                return
        self.free += 1


#: Requests that take no slot of the concurrency cap: revoking the token on close must not wait
#: behind user calls holding every slot (the connector keeps one connection spare for it), and
#: closing does not cut off its retries.
_UNGATED = frozenset({"del_token"})


class _StallWatch:
    """Ends a download whose server sent nothing for ``limit`` seconds while it was read.

    One timer per ``limit`` seconds instead of one per packet: :meth:`read` notes when a read
    starts, and the timer, when it fires, either finds a read waiting since ``limit`` ago
    (the stream then fails with :class:`TimeoutError`) or sets itself for the earliest time
    one could. Time the caller spends between reads (a slow consumer) is no stall.
    """

    __slots__ = ("_content", "_limit", "_loop", "_since", "_timer")

    def __init__(self, content: aiohttp.StreamReader, limit: float) -> None:
        self._content = content
        self._limit = limit
        self._loop = asyncio.get_running_loop()
        self._since: float | None = None
        self._timer = self._loop.call_later(limit, self._check)

    async def read(self, n: int) -> bytes:
        """Up to ``n`` bytes of the body (``b""`` at its end), within the stall bound."""
        self._since = self._loop.time()
        try:
            return await self._content.read(n)
        finally:
            self._since = None

    def _check(self) -> None:
        since, now = self._since, self._loop.time()
        if since is not None and now - since >= self._limit:
            self._content.set_exception(TimeoutError("no data within the stall bound"))
            return
        start = since if since is not None else now
        self._timer = self._loop.call_at(start + self._limit, self._check)

    def cancel(self) -> None:
        """Stop watching (the transfer ended)."""
        self._timer.cancel()


class Transport:
    """HTTP access to one PBX: one aiohttp session, a concurrency cap, TLS, retries, decoding.

    Construction does no I/O; the session is created on first use. An injected ``session`` is
    borrowed and never closed.
    """

    def __init__(
        self,
        base_url: str,
        *,
        api_path: str = "openapi/v1.0",
        user_agent: str = "OpenAPI",
        timeout: float = 30.0,
        connect_timeout: float = 10.0,
        max_concurrency: int = 10,
        retries: int = 2,
        retry_backoff: float = 0.25,
        retry_backoff_max: float = 8.0,
        ssl: SslOption = None,
        session: aiohttp.ClientSession | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        max_response_size: int = DEFAULT_MAX_RESPONSE_SIZE,
        download_timeout: float = DEFAULT_DOWNLOAD_TIMEOUT,
    ) -> None:
        url = URL(base_url.rstrip("/"))
        # raw_host: `host` would decode IDNA, a cost per client that only messages need.
        if url.scheme not in ("http", "https") or not url.raw_host:
            raise ValueError(
                f"base_url must look like 'https://pbx.example.com:8088', got {base_url!r}"
            )
        api = "/" + api_path.strip("/")
        if api != "/" and (url.path.rstrip("/") + "/").endswith(api + "/"):
            # The manual writes URLs as {base_url}/{api_path}/...: a copied prefix would double.
            bare = str(url.with_path(url.path.rstrip("/")[: -len(api)] or "/")).rstrip("/")
            raise ValueError(
                f"base_url must not include the API path {api!r} (it is added to every "
                f"request), got {base_url!r}: use {bare!r}"
            )
        for name, value in (
            ("timeout", timeout),
            ("connect_timeout", connect_timeout),
            ("download_timeout", download_timeout),
        ):
            if not value > 0:
                raise ValueError(f"{name} must be > 0, got {value!r}")
        if max_concurrency < 1:
            raise ValueError(f"max_concurrency must be >= 1, got {max_concurrency!r}")
        if retries < 0:
            raise ValueError(f"retries must be >= 0, got {retries!r}")
        if (
            not isinstance(max_response_size, int)
            or isinstance(max_response_size, bool)
            or max_response_size < 1
        ):
            raise ValueError(
                f"max_response_size must be a number of bytes >= 1, got {max_response_size!r}"
            )
        if not isinstance(user_agent, str) or any(
            unicodedata.category(c) == "Cc" for c in user_agent
        ):
            # CR/LF would split the header (request smuggling); other controls are refused too.
            raise ValueError(
                f"user_agent must be text without control characters, got {user_agent!r}"
            )
        self.base_url = str(url)
        self.api_path = api_path.strip("/")
        self.user_agent = user_agent
        self.timeout = timeout
        self.connect_timeout = connect_timeout
        self.retries = retries
        #: Largest JSON answer read, in bytes (checked against Content-Length and while reading).
        self.max_response_size = max_response_size
        #: Default bound, in seconds, on a whole file download.
        self.download_timeout = download_timeout
        # A plain-http PBX has no TLS to configure; the policy is still resolved to validate `ssl`.
        self.tls = TlsPolicy(ssl if url.scheme == "https" else None)
        self.tokens: TokenSource | None = None
        #: The literal secrets of this client (its client secret and tokens, registered by the
        #: token manager), masked in every text built from what the server sent.
        self.secrets = SecretMask()
        self._url = url
        Backoff(retry_backoff, retry_backoff_max)  # validate the bounds now, not at a retry
        self._retry_backoff = retry_backoff
        self._retry_backoff_max = retry_backoff_max
        self._sleep = sleep
        self._session = session
        self._owns_session = session is None
        # A borrowed session knows neither the TLS choice nor the User-Agent the PBX requires
        # (the client's own session carries both): they go with every request instead.
        self._per_request: dict[str, Any] = {"allow_redirects": False}
        self._ua_header: dict[str, str] = {}
        if session is not None:
            self._ua_header = {"User-Agent": user_agent}
            if url.scheme == "https":
                self._per_request["ssl"] = self.tls.for_aiohttp()
        self._json_headers = {"Content-Type": "application/json", **self._ua_header}
        self._slots = _Slots(max_concurrency)
        #: endpoint -> (token, the endpoint URL with that token as its query): see _url_for.
        self._token_urls: dict[str, tuple[str, URL]] = {}
        #: Tokens answered 10004 (newest last): a call that queued with one takes the new token.
        self._dead_tokens: dict[str, None] = {}
        #: Retry backoff sleeps in progress, cut short by close.
        self._sleepers: set[asyncio.Future[Any]] = set()
        self._default_timeout = aiohttp.ClientTimeout(total=timeout, connect=connect_timeout)
        self._max_concurrency = max_concurrency
        self._closing = False
        self._closed = False
        self._loop: asyncio.AbstractEventLoop | None = None

    def __repr__(self) -> str:
        return f"Transport(base_url={self.base_url!r}, api_path={self.api_path!r})"

    # -- session ---------------------------------------------------------------------------

    def _get_session(self) -> aiohttp.ClientSession:
        if self._closed:
            raise RuntimeError("the client is closed")
        loop = asyncio.get_running_loop()
        if self._loop is not loop:
            if self._loop is not None:
                raise RuntimeError(
                    "this client was first used in another event loop (asyncio.run() called "
                    "twice, or a test loop of another scope): create one client per loop"
                )
            self._loop = loop
        if self._session is None:
            # One connection more than the slots: the revocation on close always finds one.
            connector = aiohttp.TCPConnector(
                limit=self._max_concurrency + 1, ssl=self.tls.for_aiohttp()
            )
            self._session = aiohttp.ClientSession(
                connector=connector, headers={"User-Agent": self.user_agent}
            )
        return self._session

    def begin_close(self) -> None:
        """The client is closing: calls sleeping in a retry backoff end now (``RuntimeError``),
        and no call starts another retry. The revocation (``del_token``) is not affected."""
        self._closing = True
        for sleeper in self._sleepers:
            sleeper.cancel()

    async def aclose(self) -> None:
        """Close the owned session (a borrowed one is left open). Idempotent."""
        self.begin_close()
        self._closed = True
        self._token_urls.clear()  # no token outlives the client in a cached URL
        self._dead_tokens.clear()
        if self._session is not None and self._owns_session:
            if self._loop in (None, asyncio.get_running_loop()):
                await self._session.close()
            else:
                # Its loop is gone (or elsewhere): the session cannot be closed from here, and
                # its sockets went with that loop. Marked closed, so it does not warn again.
                logger.warning("the client's session belongs to another event loop; dropped")
                self._session.detach()
        self._session = None

    # -- requests --------------------------------------------------------------------------

    def endpoint_url(self, endpoint: str) -> str:
        """``{base_url}/{api_path}/{endpoint}`` without query string.

        An endpoint that :meth:`request` qualified with another API path
        (``openapi/v2.0/cdr/search``, see its ``api_path``) keeps that path instead.
        """
        endpoint = endpoint.lstrip("/")
        head = self.api_path.rpartition("/")[0]  # "openapi" of "openapi/v1.0"
        if head and endpoint.startswith(head + "/") and _VERSION.match(endpoint, len(head) + 1):
            return f"{self.base_url}/{endpoint}"
        return f"{self.base_url}/{self.api_path}/{endpoint}"

    async def request(
        self,
        method: str,
        endpoint: str,
        *,
        params: Mapping[str, str] | None = None,
        json: Any = None,
        response_type: type[T],
        timeout: float | None = None,
        api_path: str | None = None,
    ) -> T:
        """Call ``endpoint`` with the current access token; replay once after a 10004.

        ``timeout`` (default: the client's) bounds the first attempt including any wait for a
        token (a login or refresh under way) and for a request slot. ``api_path`` (e.g.
        ``"openapi/v2.0"``) overrides the client's for this request; errors then name the
        endpoint with its path (``openapi/v2.0/cdr/search``).
        """
        if api_path is not None and api_path.strip("/") != self.api_path:
            endpoint = f"{api_path.strip('/')}/{endpoint.lstrip('/')}"
        tokens = self._token_source()
        method = method.upper()
        data = _encoder.encode(json) if json is not None else None
        for replay in (False, True):
            # current() first: with a token in hand there is no coroutine to run for it.
            token = tokens.current()
            first_timeout = timeout
            if token is None:
                limit = timeout if timeout is not None else self.timeout
                started = time.monotonic()
                token = await self._wait_token(tokens, f"{method} {endpoint}", endpoint, limit)
                first_timeout = max(limit - (time.monotonic() - started), 0.001)
            # The slot wait may swap the token for a newer one: read back what was sent.
            query = {**params, "access_token": token} if params else {"access_token": token}
            try:
                return await self._call(
                    method, endpoint, query, data, timeout, response_type, first_timeout, True
                )
            except TokenExpiredError:
                if replay:
                    raise
                sent = query["access_token"]
                logger.debug("%s answered 10004; renewing the token and replaying once", endpoint)
                self._dead(sent)
                await tokens.expired(sent)
        raise AssertionError("unreachable: the replay either returns or raises")

    def _token_source(self) -> TokenSource:
        if self.tokens is None:
            raise RuntimeError("Transport.tokens is not set")
        return self.tokens

    def _dead(self, token: str) -> None:
        """Remember ``token`` as answered 10004 (a bounded, newest-last record)."""
        self._dead_tokens.pop(token, None)
        self._dead_tokens[token] = None
        while len(self._dead_tokens) > _DEAD_TOKENS_KEPT:
            del self._dead_tokens[next(iter(self._dead_tokens))]

    async def _wait_token(self, tokens: TokenSource, what: str, endpoint: str, limit: float) -> str:
        """:meth:`TokenSource.token` within ``limit`` seconds, else :class:`TransportError`.

        Only this caller stops waiting: the login or refresh it waited for goes on for the
        others (the token manager shields it).
        """
        bound = asyncio.timeout(limit)
        try:
            async with bound:
                return await tokens.token()
        except TimeoutError:
            if not bound.expired():
                raise
        # Raised here, not in the except clause: nothing rides along in __context__.
        raise TransportError(
            f"{what}: no access token within {limit:g} s (a login or token refresh is under "
            "way, or the PBX does not answer it); the call was not sent",
            endpoint=endpoint,
            sent=False,
        )

    async def send(
        self,
        method: str,
        endpoint: str,
        *,
        params: Mapping[str, str] | None = None,
        json: Any = None,
        response_type: type[T],
        timeout: float | None = None,
        token: str | None = None,
    ) -> T:
        """One logical call with retries but no token handling; ``token`` goes into the query."""
        method = method.upper()
        query = dict(params or {})
        if token is not None:
            query["access_token"] = token
        data = _encoder.encode(json) if json is not None else None
        return await self._call(method, endpoint, query, data, timeout, response_type)

    async def _call(
        self,
        method: str,
        endpoint: str,
        query: dict[str, str],
        data: bytes | None,
        timeout: float | None,
        response_type: type[T],
        first_timeout: float | None = None,
        live: bool = False,
    ) -> T:
        # The first attempt is made here and the retries, if any, in _retry: a successful
        # request runs through no retry loop's frame. `live`: the query's access_token is the
        # client's current one, to be renewed if it died while the call queued.
        try:
            body = await self._send_once(
                method,
                endpoint,
                query,
                data,
                timeout if first_timeout is None else first_timeout,
                live,
            )
        except TransportError as exc:
            body = await self._retry(exc, method, endpoint, query, data, timeout, live)
        try:
            return decode_envelope(body, endpoint, response_type, mask=self.secrets)
        except YeastarError as exc:
            if exc.errcode is not None and exc.errcode != 10004:
                exc.note_request(_sent_params(query, data))
            raise

    async def _retry(
        self,
        failure: TransportError,
        method: str,
        endpoint: str,
        query: dict[str, str],
        data: bytes | None,
        timeout: float | None,
        live: bool,
    ) -> bytes:
        """Retry after the first attempt failed with ``failure``, or re-raise it.

        GET (and the token POSTs): connection errors, timeouts and 502/503/504. Other POSTs,
        and a ``get_token`` that left without an answer: only a request that never left.
        Closing the client ends a backoff sleep at once.
        """
        # Built at the first failure only: a Backoff seeds its own random.Random.
        backoff = Backoff(self._retry_backoff, self._retry_backoff_max)
        while True:
            transient = failure.status is None or failure.status in _RETRY_STATUSES
            repeatable = method == "GET" or endpoint in _REPEATABLE
            if endpoint == "get_token" and failure.status is None:
                # Sent and unanswered: the PBX may have counted it as a rejected login, which
                # the lockout guard cannot see; a retry would be one more (issue 11, point 5).
                repeatable = False
            retryable = not failure.sent or (repeatable and transient)
            if not retryable or backoff.attempt >= self.retries or type(failure) is _SlotTimeout:
                raise failure
            self._refuse_when_closing(endpoint, failure)
            delay = backoff.next_delay()
            # INFO: a retry that works needs no attention; the error raised at the end does.
            logger.info(
                "%s %s failed (%s); retry %d of %d in %.2f s",
                method,
                endpoint,
                failure,
                backoff.attempt,
                self.retries,
                delay,
            )
            await self._backoff_sleep(delay)
            self._refuse_when_closing(endpoint, failure)
            if live and not self._take_fresh_token(query):
                # The token died during the backoff: the retry goes with the renewed one.
                query["access_token"] = await self._wait_token(
                    self._token_source(), f"{method} {endpoint}", endpoint, timeout or self.timeout
                )
            try:
                return await self._send_once(method, endpoint, query, data, timeout, live)
            except TransportError as exc:
                failure = exc

    def _refuse_when_closing(self, endpoint: str, failure: TransportError) -> None:
        if (self._closing or self._closed) and endpoint not in _UNGATED:
            # Closing the client cut this request off: no retry can succeed now.
            raise RuntimeError("the client is closed") from failure

    async def _backoff_sleep(self, delay: float) -> None:
        """Sleep ``delay`` seconds, or less if the client closes meanwhile."""
        sleeper = asyncio.ensure_future(self._sleep(delay))
        self._sleepers.add(sleeper)
        try:
            # wait() does not raise when close cancels the sleeper; a cancelled caller does.
            await asyncio.wait((sleeper,))
        finally:
            self._sleepers.discard(sleeper)
            sleeper.cancel()

    def _url_for(self, endpoint: str, query: dict[str, str]) -> URL:
        token = query.get("access_token") if len(query) == 1 else None
        if token is None:
            return _with_query(self.endpoint_url(endpoint), query)
        # The usual call: the token is the whole query. Its URL is built once per endpoint and
        # token, sparing aiohttp a query merge on every request.
        cached = self._token_urls.get(endpoint)
        if cached is None or cached[0] != token:
            cached = (token, URL(self.endpoint_url(endpoint)).with_query(access_token=token))
            self._token_urls[endpoint] = cached
        return cached[1]

    async def _send_once(
        self,
        method: str,
        endpoint: str,
        query: dict[str, str],
        data: bytes | None,
        timeout: float | None,
        live: bool = False,
    ) -> bytes:
        session = self._get_session()
        what = f"{method} {endpoint}"
        headers = self._json_headers if data is not None else self._ua_header or None
        client_timeout = (
            self._default_timeout
            if timeout is None
            else aiohttp.ClientTimeout(total=timeout, connect=self.connect_timeout)
        )
        started = time.perf_counter() if logger.isEnabledFor(logging.DEBUG) else 0.0
        slots = self._slots
        held = False
        failure: TransportError | None = None
        try:
            if endpoint in _UNGATED:
                pass
            elif slots.free > 0 and not slots.waiters:
                slots.free -= 1
                held = True
            else:
                # The wait for a slot counts against the attempt's timeout: a caller's bound
                # holds however busy the client is.
                client_timeout = await self._queue(method, endpoint, timeout)
                held = True
                if live and not self._take_fresh_token(query):
                    # The token died while this call queued (another call got 10004): wait for
                    # the renewal without holding a slot (it needs one), then queue again.
                    slots.release()
                    held = False
                    client_timeout = await self._requeue_renewed(
                        method, endpoint, query, client_timeout
                    )
                    held = True
            url = self._url_for(endpoint, query)
            try:
                async with session.request(
                    method,
                    url,
                    data=data,
                    headers=headers,
                    timeout=client_timeout,
                    **self._per_request,
                ) as resp:
                    status = resp.status
                    refuse_redirect(
                        status, resp.headers, what=what, mask=self.secrets, endpoint=endpoint
                    )
                    body = await read_capped(
                        resp,
                        limit=self.max_response_size,
                        what=what,
                        mask=self.secrets,
                        endpoint=endpoint,
                    )
            except (aiohttp.ClientError, TimeoutError) as exc:
                failure = self._failure(exc, what, endpoint, timeout)
        finally:
            if held:
                slots.release()
        if failure is not None:
            # Raised outside the except clause: aiohttp's exception (its text may hold the URL
            # with the token) is in no __context__.
            raise failure
        if started:
            logger.debug(
                "%s -> HTTP %d, %d bytes in %.1f ms",
                what,
                status,
                len(body),
                (time.perf_counter() - started) * 1000,
            )
        if status != 200:
            shown = excerpt(body, self.secrets)
            raise TransportError(
                f"{what}: HTTP {status}: {shown!r}",
                endpoint=endpoint,
                status=status,
                body_excerpt=shown,
            )
        return body

    async def _requeue_renewed(
        self, method: str, endpoint: str, query: dict[str, str], left: aiohttp.ClientTimeout
    ) -> aiohttp.ClientTimeout:
        """Put the renewed token into ``query`` and take a slot again, first in line, within
        the ``left`` of the attempt's timeout; returns what is left then."""
        limit = left.total or self.timeout
        waited = time.monotonic()
        query["access_token"] = await self._wait_token(
            self._token_source(), f"{method} {endpoint}", endpoint, limit
        )
        limit = max(limit - (time.monotonic() - waited), 0.001)
        return await self._queue(method, endpoint, limit, urgent=True)

    def _take_fresh_token(self, query: dict[str, str]) -> bool:
        """Put the newest usable token into ``query``; ``False`` if the one there is dead."""
        fresh = self._token_source().current()
        if fresh is not None:
            query["access_token"] = fresh
            return True
        return query.get("access_token") not in self._dead_tokens

    def _failure(
        self, exc: BaseException, what: str, endpoint: str, timeout: float | None
    ) -> TransportError:
        """The :class:`TransportError` for an aiohttp failure, its text masked."""
        if out_of_fds(exc):
            # Not a network fault: the process has no descriptor for a socket. Said as such.
            return OutOfFileDescriptorsError(
                f"{what}: cannot connect to {self._url.host}:{self._url.port}: {fd_advice()}",
                endpoint=endpoint,
                sent=False,
            )
        return transport_failure(
            exc,
            what=what,
            endpoint=endpoint,
            address=f"{self._url.host}:{self._url.port}",
            timeout=timeout if timeout is not None else self.timeout,
            mask=self.secrets,
        )

    async def _queue(
        self, method: str, endpoint: str, timeout: float | None, *, urgent: bool = False
    ) -> aiohttp.ClientTimeout:
        """Wait for a request slot within the attempt's timeout; returns the time left."""
        limit = timeout if timeout is not None else self.timeout
        waited = time.monotonic()
        bound = asyncio.timeout(limit)
        try:
            async with bound:
                await self._slots.wait(urgent=urgent or endpoint in _URGENT)
        except TimeoutError:
            if not bound.expired():
                raise
        else:
            left = max(limit - (time.monotonic() - waited), 0.001)
            return aiohttp.ClientTimeout(total=left, connect=min(self.connect_timeout, left))
        raise _SlotTimeout(
            f"{method} {endpoint}: no request slot free within {limit:g} s (all "
            f"{self._max_concurrency} in flight: raise max_concurrency or lower the load)",
            endpoint=endpoint,
            sent=False,
        )

    # -- downloads -------------------------------------------------------------------------

    def download_url(self, resource_url: str) -> URL:
        """The absolute, percent-encoded URL of a ``download_resource_url`` on this PBX.

        Raises :class:`ValueError` for a URL whose scheme, host or port differ from the PBX's
        (the token would be sent to someone else).
        """
        text = resource_url.strip()
        if not text:
            raise ValueError("download_resource_url is empty")
        if "://" in text or text.startswith("//"):
            target = URL(text if "://" in text else f"{self._url.scheme}:{text}")
            if (target.scheme, target.host, target.port) != (
                self._url.scheme,
                self._url.host,
                self._url.port,
            ):
                raise ValueError(
                    f"refusing to download {self.secrets(text)!r}: it is not on the PBX "
                    f"{self.base_url!r}, and the access token would go with the request"
                )
            path = target.raw_path
        else:
            path = text if text.startswith("/") else f"/{text}"
            path = path.split("?", 1)[0]
        # File names contain '+', spaces and non-ASCII: encode every segment exactly once.
        encoded = "/".join(quote(unquote(part), safe="") for part in path.split("/"))
        base = self._url.with_path("", encoded=True)
        return URL(f"{base}{self._url.raw_path.rstrip('/')}{encoded}", encoded=True)

    async def download(
        self,
        resource_url: str,
        *,
        timeout: float | None = None,
        chunk_size: int = 65536,
    ) -> AsyncIterator[bytes]:
        """Stream the bytes of a ``download_resource_url`` with the current token.

        The PBX answers HTTP 200 with a JSON errcode body instead of the file when the token
        expired or the file is not available; that raises the typed error (after one token
        renewal and replay for 10004) instead of yielding the JSON as file content.

        ``timeout`` bounds the whole transfer (default: :attr:`download_timeout`), the wait for
        a token included; a stall longer than the client's ``timeout`` ends it sooner. A
        redirect is refused (:class:`TransportError`): the token goes to the PBX only.
        """
        url = self.download_url(resource_url)
        tokens = self._token_source()
        session = self._get_session()
        total = timeout if timeout is not None else self.download_timeout
        # The stall bound is watched by _StallWatch, not aiohttp's sock_read: that one moves a
        # timer on every packet, a tenth of the time of a fast download.
        stall = min(self.timeout, total)
        connect = min(self.connect_timeout, total)
        client_timeout = aiohttp.ClientTimeout(total=total, connect=connect)
        what = f"download {self.secrets(url.path)}"
        for replay in (False, True):
            token = tokens.current() or await self._wait_token(tokens, what, "download", total)
            failure: TransportError | None = None
            watch: _StallWatch | None = None
            try:
                async with asyncio.timeout(stall):  # the answer's head: one timer
                    resp = await session.get(
                        url.with_query(access_token=token),
                        timeout=client_timeout,
                        headers=self._ua_header or None,
                        **self._per_request,
                    )
                async with resp:
                    watch = _StallWatch(resp.content, stall)
                    refuse_redirect(
                        resp.status, resp.headers, what=what, mask=self.secrets, endpoint="download"
                    )
                    if resp.status != 200:
                        shown = excerpt(await watch.read(_EXCERPT), self.secrets)
                        raise TransportError(
                            f"{what}: HTTP {resp.status}: {shown!r}",
                            endpoint="download",
                            status=resp.status,
                            body_excerpt=shown,
                        )
                    first = await watch.read(chunk_size)
                    if first.lstrip()[:1] == b"{" and (
                        resp.content_type == "application/json" or b'"errcode"' in first
                    ):
                        rest = await watch.read(65536)
                        env = self._error_envelope(first + rest)
                        if env is not None:
                            if env.errcode == 10004 and not replay:
                                self._dead(token)
                                await tokens.expired(token)
                                continue
                            _raise_for_envelope(env, "download", self.secrets)
                        first += rest
                    chunk = first
                    while chunk:
                        yield chunk
                        chunk = await watch.read(chunk_size)
                    return
            except TimeoutError:
                failure = TransportError(
                    f"{what}: not complete within {total:g} s (timeout=, download_timeout=) "
                    f"or stalled for {stall:g} s",
                    endpoint="download",
                )
            except aiohttp.ClientError as exc:
                failure = self._failure(exc, what, "download", total)
            finally:
                if watch is not None:
                    watch.cancel()
            # Raised outside the except clauses: aiohttp's exception is in no __context__.
            raise failure
        raise TokenExpiredError(errcode=10004, errmsg="TOKEN EXPIRED", endpoint="download")

    def _error_envelope(self, body: bytes) -> _Envelope | None:
        """The envelope of a JSON error body sent instead of a file, else ``None``.

        Raises :class:`TransportError` for an envelope with a number out of range (an errcode
        beyond int64): an answer no PBX sends, neither an error code nor the file.
        """
        env: _Envelope | None = None
        failure: str | None = None
        try:
            env = _envelope_decoder.decode(body)
        except msgspec.ValidationError:
            try:
                env = convert(EXACT_JSON.decode(body), _Envelope)
            except (msgspec.DecodeError, RecursionError) as exc:
                if out_of_range(exc):
                    failure = f"the PBX answered an envelope that cannot be read ({exc})"
        except msgspec.DecodeError:
            pass
        if failure is not None:  # raised here: no decoder error rides along in __context__
            raise _undecodable("download", failure, body, self.secrets)
        return env if env is not None and env.errcode not in (None, 0) else None

    # -- WebSocket -------------------------------------------------------------------------

    def ws_url(self, token: str) -> str:
        """``ws(s)://host/openapi/v1.0/subscribe?access_token=...`` for this PBX."""
        scheme = "wss" if self._url.scheme == "https" else "ws"
        base = str(self._url.with_scheme(scheme))
        return f"{base}/{self.api_path}/subscribe?access_token={quote(token, safe='')}"

    def ws_ssl(self) -> ssl.SSLContext | None:
        """The TLS context for the WebSocket (``None`` for plain ``ws://``)."""
        if self._url.scheme != "https":
            return None
        context: ssl.SSLContext = self.tls.for_websocket()
        return context

    def check_peer(self, ssl_object: ssl.SSLObject | ssl.SSLSocket | None) -> None:
        """Raise :class:`TransportError` if a pinned certificate does not match the peer."""
        self.tls.check_peer(ssl_object)

    def redact(self, text: str) -> str:
        """Mask token and password values in ``text``, and this client's own secrets."""
        return self.secrets(text)
