"""``OpenVoxClient``: an asyncio client of the OpenVox UC IPPBX API v0.0.1 (routing calls).

Session design: the API has no refresh token; a login token dies after 30 minutes without a
call, and a heartbeat extends it. Rather than run a timer task, the client checks before every
call how long it has been idle: past ``heartbeat_after`` (20 minutes) it sends a heartbeat
first, and past ``idle_expiry`` (30 minutes) it logs in again, since the token is gone anyway.
A call refused for its token (see :data:`TOKEN_ERRNOS`) logs in again and is sent once more;
the PBX rejected it before acting, so no change is made twice. Closing the client logs out.

Transport: one aiohttp session, TLS through :class:`~yeastar_async._tls.TlsPolicy` (CA file,
SHA-256 pin, verified by default), timeouts, a concurrency cap, a body size cap, and redirects
never followed. The password, its MD5 and the token are masked in every error and log line.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import socket
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from types import TracebackType
from typing import Any, Final, Self, TypeVar

import aiohttp
import msgspec
from yarl import URL

from .._backoff import Backoff
from .._guard import login_guard, pbx_key
from .._guard_store import GuardState, StateOption, state_path
from .._lenient import convert
from .._secrets import SecretMask
from .._tls import SslOption, TlsPolicy
from .._version import __version__
from .._wire import excerpt, read_capped, refuse_redirect, transport_failure
from ..errors import TransportError
from . import _codec
from ._codec import Format, WireFormatError
from ._guard import OPENVOX_GUARD
from .errors import OpenVoxAuthError, OpenVoxError, OpenVoxTokenError
from .models import (
    InboundRoute,
    InboundRoutes,
    Names,
    OutboundRoute,
    OutboundRoutes,
    StatusAnswer,
    check_dest_type,
    join_names,
    join_trunks,
)

__all__ = ["API_PATH", "TOKEN_ERRNOS", "InboundRouteApi", "OpenVoxClient", "OutboundRouteApi"]

logger = logging.getLogger("yeastar_async.openvox")

T = TypeVar("T")

API_PATH: Final = "/api/v0.0.1"
#: Errnos taken as "this token is not (or no longer) valid": the S-Series v1 codes whose auth
#: OpenVox copies (20004 no such token, 20005 token blank, 20006 token timed out). Unverified
#: for OpenVox; any other errno is raised as it is.
TOKEN_ERRNOS: Final[frozenset[str]] = frozenset({"20004", "20005", "20006"})
#: Sent as login ``version``: the manual says 1.0.2 makes event reports valid JSON.
REPORT_VERSION: Final = "1.0.2"
_EXCERPT: Final = 200
#: Longest errno kept: the vendor's are 5 digits.
_MAX_ERRNO: Final = 40


class OpenVoxClient:
    """An async client of one OpenVox UC IPPBX: inbound and outbound routes.

    Use it as an async context manager (logs in on entry, logs out on exit)::

        async with OpenVoxClient("https://192.0.2.10", "api", "secret") as pbx:
            await pbx.inroute.update("main", desttype="queue", dest="6400")

    Args:
        base_url: ``https://host[:port]`` of the PBX, without the API path.
        username: the API user name.
        password: the API password, in clear: the client sends its MD5, as the API requires.
        fmt: the wire format of bodies, ``"json"`` or ``"xml"``; answers decode the same.
        report_port: the login and heartbeat ``port``: where the application would receive
            the PBX's event reports (the API requires one; this client receives none).
        report_url: the login and heartbeat ``url`` of those reports; sent only when given.
        report_host: the heartbeat ``ipaddr``; by default this host's address towards the PBX.
        ssl: TLS: ``None``/``True`` verify, a CA file path, a SHA-256 pin, an ``SSLContext``,
            or ``False`` (no verification; prefer a pin).
        timeout: seconds per request; ``connect_timeout``: seconds to connect.
        max_concurrency: requests in flight at once.
        max_response_size: the largest answer read, in bytes (1 MiB: routes are small).
        retries: retries of a request that never left (connection refused, DNS failure).
        heartbeat_after: idle seconds after which a heartbeat goes before the next call.
        idle_expiry: idle seconds after which the PBX has dropped the token (30 minutes).
        login_guard_state: where the lockout guard counts rejected logins to the PBX, so that
            restarts and other processes see them: ``"default"`` (the user's state file, shared
            with the Yeastar client, each vendor counting apart), a file path, or ``None``
            (this process only).
        clock: a monotonic clock (inject one to age the session in tests).
        session: an aiohttp session to borrow (never closed by the client).
        sleep: what waits out the backoff between retries (inject one in tests).
    """

    def __init__(
        self,
        base_url: str,
        username: str,
        password: str,
        *,
        fmt: Format = "json",
        report_port: int = 8260,
        report_url: str | None = None,
        report_host: str | None = None,
        ssl: SslOption = None,
        timeout: float = 30.0,
        connect_timeout: float = 10.0,
        max_concurrency: int = 4,
        max_response_size: int = 1 << 20,
        retries: int = 2,
        heartbeat_after: float = 1200.0,
        idle_expiry: float = 1800.0,
        login_guard_state: StateOption = "default",
        clock: Callable[[], float] = time.monotonic,
        session: aiohttp.ClientSession | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        url = URL(base_url.rstrip("/")) if isinstance(base_url, str) else None
        if url is None or url.scheme not in ("http", "https") or not url.host:
            raise ValueError(f"base_url must look like 'https://pbx.example.com', got {base_url!r}")
        if "/api/" in f"{url.path}/":
            raise ValueError(
                f"base_url must not include the API path (the client adds {API_PATH}), "
                f"got {base_url!r}"
            )
        if fmt not in ("json", "xml"):
            raise ValueError(f"fmt must be 'json' or 'xml', got {fmt!r}")
        if not isinstance(username, str) or not username.strip():
            raise ValueError(f"username must be a non-blank str, got {username!r}")
        if not isinstance(password, str) or not password:
            raise ValueError("password must be a non-empty str")
        if isinstance(report_port, bool) or not 0 < report_port < 65536:
            raise ValueError(f"report_port must be a TCP port (1-65535), got {report_port!r}")
        for name, value in (
            ("timeout", timeout),
            ("connect_timeout", connect_timeout),
            ("heartbeat_after", heartbeat_after),
        ):
            if not value > 0:
                raise ValueError(f"{name} must be > 0, got {value!r}")
        if not idle_expiry > heartbeat_after:
            raise ValueError(
                f"idle_expiry ({idle_expiry!r}) must be longer than heartbeat_after "
                f"({heartbeat_after!r})"
            )
        if max_concurrency < 1:
            raise ValueError(f"max_concurrency must be >= 1, got {max_concurrency!r}")
        if max_response_size < 1024:
            raise ValueError(f"max_response_size must be >= 1024 bytes, got {max_response_size!r}")
        if retries < 0:
            raise ValueError(f"retries must be >= 0, got {retries!r}")
        self.base_url = str(url)
        self.username = username
        self.fmt: Format = fmt
        self._url = url
        # The API wants the MD5 of the password: its scheme, not a choice of ours.
        self._md5 = hashlib.md5(password.encode("utf-8"), usedforsecurity=False).hexdigest()
        #: The password, its MD5 and every token this client received, masked in any text.
        self.secrets = SecretMask([password, self._md5])
        # What the guard counts by: a hash, so no secret reaches its state file.
        self._credentials = hashlib.sha256(f"{username}\0{self._md5}".encode()).digest()
        self._guard_state = GuardState(state_path(login_guard_state))
        self._report_port = report_port
        self._report_url = report_url
        self._report_host = report_host
        self.tls = TlsPolicy(ssl if url.scheme == "https" else None)
        self._timeout = aiohttp.ClientTimeout(total=timeout, connect=connect_timeout)
        self._timeout_s = timeout
        self._max_concurrency = max_concurrency
        self._slots = asyncio.Semaphore(max_concurrency)
        self._max_response_size = max_response_size
        self._retries = retries
        self._heartbeat_after = heartbeat_after
        self._idle_expiry = idle_expiry
        self._clock = clock
        self._sleep = sleep
        self._session = session
        self._owns_session = session is None
        self._per_request: dict[str, Any] = (
            {"ssl": self.tls.for_aiohttp()} if session is not None and url.scheme == "https" else {}
        )
        self._token: str | None = None
        self._last_used = 0.0
        self._address: str | None = None
        self._login_lock = asyncio.Lock()
        self._closed = False
        #: Inbound routes: ``query`` / ``add`` / ``update`` / ``delete``.
        self.inroute = InboundRouteApi(self)
        #: Outbound routes: ``query`` / ``add`` / ``update`` / ``delete``.
        self.outroute = OutboundRouteApi(self)

    def __repr__(self) -> str:
        return (
            f"OpenVoxClient(base_url={self.base_url!r}, username={self.username!r}, "
            f"fmt={self.fmt!r}, logged_in={self._token is not None})"
        )

    # -- lifecycle ---------------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        try:
            await self.login()
        except BaseException:
            await self.aclose()
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def login(self) -> None:
        """Log in now, unless logged in already (calls log in by themselves when needed).

        Raises :class:`OpenVoxAuthError` when the PBX refuses the credentials, and
        :class:`OpenVoxLockoutError`, without sending anything, when the PBX's address refused
        4 logins in a row, counted where ``login_guard_state`` says (a 5th wrong password locks
        the IP for 10 minutes).
        """
        async with self._login_lock:
            if self._token is None:
                await self._login_locked()

    async def aclose(self) -> None:
        """Log out (if logged in) and close the owned session. Idempotent."""
        if self._closed:
            return
        token, self._token = self._token, None
        try:
            if token is not None:
                try:
                    await self._post("logout", None, token=token)
                except (TransportError, OpenVoxError) as exc:
                    # The token dies by itself after 30 idle minutes; closing goes on.
                    logger.debug("logout failed: %s", self.secrets(str(exc)))
        finally:
            # Even when cancelled mid-logout: no session outlives the client.
            self._closed = True
            if self._session is not None and self._owns_session:
                await self._session.close()
            self._session = None

    # -- calls ------------------------------------------------------------------------------

    async def call(
        self, endpoint: str, params: Mapping[str, str], *, about: str = ""
    ) -> dict[str, Any]:
        """POST ``params`` to ``endpoint`` (e.g. ``"inroute/query"``) with the session token;
        the answer's fields as a dict. Raises :class:`OpenVoxError` for ``status: Failed``."""
        data = _codec.encode(self.fmt, params)  # a value XML cannot carry fails before any I/O
        for replay in (False, True):
            token = await self._live_token()
            answer = await self._post(endpoint, data, token=token)
            status = self._status(answer)
            if status.status == "Success":
                self._last_used = self._clock()
                return answer
            if status.status != "Failed":
                raise self._bad_answer(endpoint, "no status Success or Failed", answer)
            if status.errno not in TOKEN_ERRNOS:
                raise OpenVoxError(endpoint, status.errno, about=about)
            if replay:
                raise OpenVoxTokenError(endpoint, status.errno, about=about)
            logger.debug("%s: token refused (errno %s); logging in again", endpoint, status.errno)
            self._drop_token(token)
        raise AssertionError("unreachable: the replay either returns or raises")

    async def heartbeat(self) -> None:
        """Extend the token's life now (calls do it by themselves when idle long enough)."""
        token = await self._live_token()
        await self._heartbeat(token)

    # -- session internals -----------------------------------------------------------------

    async def _live_token(self) -> str:
        token = self._token
        if token is not None and self._clock() - self._last_used < self._heartbeat_after:
            return token
        async with self._login_lock:
            token = self._token
            idle = self._clock() - self._last_used
            if token is not None and idle < self._heartbeat_after:
                return token  # another call renewed it while this one waited
            if token is not None and idle < self._idle_expiry:
                try:
                    await self._heartbeat(token)
                    return token
                except OpenVoxError as exc:
                    logger.debug("heartbeat refused (errno %s); logging in again", exc.errno)
            if token is not None:
                self._drop_token(token)
            return await self._login_locked()

    async def _heartbeat(self, token: str) -> None:
        params = {"ipaddr": await self._local_address(), **self._report_params()}
        answer = await self._post("heartbeat", _codec.encode(self.fmt, params), token=token)
        status = self._status(answer)
        if status.status != "Success":
            raise OpenVoxError("heartbeat", status.errno)
        self._last_used = self._clock()

    def _report_params(self) -> dict[str, str]:
        params = {"port": str(self._report_port)}
        if self._report_url:
            params["url"] = self._report_url
            # 1: the url is absolute. The manual types it String but shows a number.
            params["urltag"] = "1" if "://" in self._report_url else "0"
        return params

    def _drop_token(self, token: str) -> None:
        if self._token == token:
            self._token = None

    async def _login_locked(self) -> str:
        if self._closed:
            raise RuntimeError("the client is closed")
        await self._pbx_address()  # a name that does not resolve fails here, before counting
        guard = login_guard(await pbx_key(self.base_url), OPENVOX_GUARD)
        # Counted before it is sent (clients and processes starting together cannot all pass).
        reservation = await guard.reserve(self._credentials, OPENVOX_GUARD.limit, self._guard_state)
        params = {
            "username": self.username,
            "password": self._md5,
            **self._report_params(),
            "version": REPORT_VERSION,
        }
        try:
            answer = await self._post("login", _codec.encode(self.fmt, params), token=None)
            status = self._status(answer)
        except Exception as exc:
            # No verdict on the password (no answer, not an answer): the guard decides whether
            # the PBX may have counted it.
            await guard.failed(reservation, exc)
            raise
        except BaseException:
            # Cancelled mid-login: the PBX may have counted it, so it stays counted.
            guard.rejected(reservation)
            raise
        if status.status == "Failed":
            await guard.refused(reservation)
            raise OpenVoxAuthError("login", status.errno, about=f"username={self.username}")
        if status.status != "Success" or not status.token:
            await guard.release(reservation)
            raise self._bad_answer("login", "no token", answer)
        await guard.accepted(reservation)
        self.secrets.add(status.token)
        self._token = status.token
        self._last_used = self._clock()
        logger.debug("logged in to %s as %s", self.base_url, self.username)
        return status.token

    async def _pbx_address(self) -> str:
        """The PBX's resolved IP: the key of the lockout guard (the vendor locks by IP)."""
        if self._address is None:
            host = self._url.host or ""
            port = self._url.port or 443
            try:
                infos = await asyncio.get_running_loop().getaddrinfo(
                    host, port, type=socket.SOCK_STREAM
                )
            except OSError as exc:
                raise TransportError(
                    f"login: cannot resolve {host!r} ({exc})", endpoint="login", sent=False
                ) from None
            self._address = str(infos[0][4][0])
        return self._address

    async def _local_address(self) -> str:
        """The heartbeat's ``ipaddr``: ``report_host``, else this host's source address
        towards the PBX (a UDP socket's route lookup; no packet is sent)."""
        if self._report_host is None:
            address = await self._pbx_address()
            family = socket.AF_INET6 if ":" in address else socket.AF_INET
            with socket.socket(family, socket.SOCK_DGRAM) as probe:
                probe.connect((address, self._url.port or 443))
                self._report_host = str(probe.getsockname()[0])
        return self._report_host

    # -- HTTP -------------------------------------------------------------------------------

    def _get_session(self) -> aiohttp.ClientSession:
        if self._closed:
            raise RuntimeError("the client is closed")
        if self._session is None:
            connector = aiohttp.TCPConnector(
                limit=self._max_concurrency, ssl=self.tls.for_aiohttp()
            )
            self._session = aiohttp.ClientSession(
                connector=connector, headers={"User-Agent": f"yeastar-async/{__version__}"}
            )
        return self._session

    async def _post(
        self, endpoint: str, data: bytes | None, *, token: str | None
    ) -> dict[str, Any]:
        """POST the encoded ``data`` (None: no body), retrying a request that never left; the
        answer decoded."""
        query: dict[str, str] = {"type": self.fmt}
        if token is not None:
            query = {"token": token, **query}
        backoff = Backoff(0.25, 4.0)
        while True:
            try:
                raw = await self._send(endpoint, query, data)
                break
            except TransportError as exc:
                if exc.sent or backoff.attempt >= self._retries or self._closed:
                    raise
                delay = backoff.next_delay()
                logger.info("%s failed (%s); retry in %.2f s", endpoint, exc, delay)
                await self._sleep(delay)
        try:
            return _codec.decode(self.fmt, raw)
        except WireFormatError as exc:
            raise TransportError(
                f"POST {endpoint}: the answer is not {self.fmt.upper()}: {exc}",
                endpoint=endpoint,
                status=200,
                body_excerpt=self._excerpt(raw),
            ) from None

    async def _send(self, endpoint: str, query: dict[str, str], data: bytes | None) -> bytes:
        session = self._get_session()
        url = URL(f"{self.base_url}{API_PATH}/{endpoint}").with_query(query)
        what = f"POST {endpoint}"
        headers = {"Content-Type": _codec.CONTENT_TYPES[self.fmt]} if data is not None else None
        async with self._slots:
            try:
                async with session.post(
                    url,
                    data=data,
                    headers=headers,
                    timeout=self._timeout,
                    allow_redirects=False,
                    **self._per_request,
                ) as resp:
                    refuse_redirect(
                        resp.status, resp.headers, what=what, mask=self.secrets, endpoint=endpoint
                    )
                    raw = await read_capped(
                        resp,
                        limit=self._max_response_size,
                        what=what,
                        mask=self.secrets,
                        endpoint=endpoint,
                    )
                    status = resp.status
            except (aiohttp.ClientError, TimeoutError) as exc:
                raise transport_failure(
                    exc,
                    what=what,
                    endpoint=endpoint,
                    address=f"{self._url.host}:{self._url.port}",
                    timeout=self._timeout_s,
                    mask=self.secrets,
                ) from None
        if status != 200:
            raise TransportError(
                f"{what}: HTTP {status}: {self._excerpt(raw)!r}",
                endpoint=endpoint,
                status=status,
                body_excerpt=self._excerpt(raw),
            )
        return raw

    def _excerpt(self, raw: bytes) -> str:
        return excerpt(raw, self.secrets)

    def _bad_answer(self, endpoint: str, why: str, answer: Mapping[str, Any]) -> TransportError:
        return TransportError(
            f"POST {endpoint}: the answer has {why}: {self.secrets(repr(dict(answer)))[:_EXCERPT]}",
            endpoint=endpoint,
            status=200,
        )

    def _status(self, answer: Mapping[str, Any]) -> StatusAnswer:
        """The answer's status, errno and token as text, whatever JSON type they came in; the
        errno masked and shortened, since a hostile peer may echo a secret in it."""
        fields = {k: answer[k] for k in ("status", "errno", "token") if _scalar(answer.get(k))}
        status = convert(fields, StatusAnswer)
        status.errno = self.secrets(status.errno)[:_MAX_ERRNO]
        return status

    def _decode(self, endpoint: str, answer: dict[str, Any], model: type[T]) -> T:
        try:
            return convert(answer, model)
        except msgspec.ValidationError as exc:
            raise TransportError(
                f"POST {endpoint}: the answer does not fit {model.__name__}: {exc}",
                endpoint=endpoint,
                status=200,
            ) from None


def _scalar(value: object) -> bool:
    return isinstance(value, str | int) and not isinstance(value, bool)


def _optional(params: dict[str, str], **values: str | None) -> dict[str, str]:
    """``params`` plus the ``values`` given (None: left out, so the PBX keeps its value)."""
    for name, value in values.items():
        if value is not None:
            if not isinstance(value, str):
                raise TypeError(f"{name} must be a str, not {type(value).__name__}: {value!r}")
            params[name] = value
    return params


def _required(name: str, value: object) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{name} must be a non-blank str, got {value!r}")
    return value


class _RouteApi:
    """What the two route groups share: routes found, and deleted, by name."""

    #: The endpoint group: ``inroute`` or ``outroute``.
    _group: str

    def __init__(self, client: OpenVoxClient) -> None:
        self._client = client

    async def _named(self, action: str, names: Names) -> dict[str, Any]:
        """Call ``{group}/{action}`` for the routes named; returns the answer."""
        name = join_names(names)
        return await self._client.call(
            f"{self._group}/{action}", {"name": name}, about=f"name={name}"
        )

    async def delete(self, names: Names) -> None:
        """Delete the routes named (one, several, or ``"all"``)."""
        await self._named("delete", names)


class InboundRouteApi(_RouteApi):
    """``inroute/*`` of one :class:`OpenVoxClient`: routes are found by name."""

    _group = "inroute"

    async def query(self, names: Names = "all") -> list[InboundRoute]:
        """The inbound routes named (one name, several, or ``"all"``)."""
        answer = await self._named("query", names)
        return self._client._decode("inroute/query", answer, InboundRoutes).inroutes

    async def add(
        self,
        name: str,
        *,
        desttype: str,
        dest: str,
        did: str | None = None,
        caller_id: str | None = None,
    ) -> None:
        """Create an inbound route (``did`` / ``caller_id``: patterns; left out: any)."""
        await self._write("inroute/add", name, desttype, dest, did, caller_id)

    async def update(
        self,
        name: str,
        *,
        desttype: str,
        dest: str,
        did: str | None = None,
        caller_id: str | None = None,
    ) -> None:
        """Change the inbound route ``name`` (it cannot be renamed; None keeps a pattern)."""
        await self._write("inroute/update", name, desttype, dest, did, caller_id)

    async def _write(
        self,
        endpoint: str,
        name: str,
        desttype: str,
        dest: str,
        did: str | None,
        caller_id: str | None,
    ) -> None:
        kind = check_dest_type(desttype)
        if not isinstance(dest, str) or (kind != "hangup" and not dest.strip()):
            raise ValueError(f"dest must be a non-blank str for desttype {kind!r}, got {dest!r}")
        params = {"name": join_names(_required("name", name))}
        _optional(params, did=did, caller_id=caller_id)
        params.update(desttype=kind, dest=dest)
        await self._client.call(endpoint, params, about=f"name={name}")


class OutboundRouteApi(_RouteApi):
    """``outroute/*`` of one :class:`OpenVoxClient`: ``update`` takes the id from ``query``."""

    _group = "outroute"

    async def query(self, names: Names = "all") -> list[OutboundRoute]:
        """The outbound routes named (one name, several, or ``"all"``)."""
        answer = await self._named("query", names)
        return self._client._decode("outroute/query", answer, OutboundRoutes).outroutes

    async def add(
        self,
        name: str,
        *,
        matchpattern: str,
        trunks: str | Sequence[str],
        prefix: str | None = None,
        prepend: str | None = None,
        callerid: str | None = None,
    ) -> None:
        """Create an outbound route over ``trunks`` (one name, several, or ``"a,b"``)."""
        params = self._params(name, matchpattern, trunks, prefix, prepend, callerid)
        await self._client.call("outroute/add", params, about=f"name={name}")

    async def update(
        self,
        id: int,
        name: str,
        *,
        matchpattern: str,
        trunks: str | Sequence[str],
        prefix: str | None = None,
        prepend: str | None = None,
        callerid: str | None = None,
    ) -> None:
        """Change the outbound route ``id`` (from :meth:`query`); ``name`` may rename it."""
        if isinstance(id, bool) or not isinstance(id, int) or id < 0:
            raise ValueError(f"id must be a route id (an int >= 0) from query(), got {id!r}")
        params = {"id": str(id)}
        params.update(self._params(name, matchpattern, trunks, prefix, prepend, callerid))
        await self._client.call("outroute/update", params, about=f"id={id}, name={name}")

    @staticmethod
    def _params(
        name: str,
        matchpattern: str,
        trunks: str | Sequence[str],
        prefix: str | None,
        prepend: str | None,
        callerid: str | None,
    ) -> dict[str, str]:
        params = {
            "name": join_names(_required("name", name)),
            "matchpattern": _required("matchpattern", matchpattern),
            "trunks": join_trunks(trunks),
        }
        return _optional(params, prefix=prefix, prepend=prepend, callerid=callerid)
