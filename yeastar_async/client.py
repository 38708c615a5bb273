"""YeastarClient: options, lifecycle, one attribute per endpoint group, and the event stream."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import datetime, tzinfo
from types import TracebackType
from typing import TYPE_CHECKING, Any, Generic, Literal, Self, TypeVar, overload

import aiohttp

from ._auth import TokenManager, TokenStore
from ._fds import importing
from ._guard_store import GuardState, StateOption, state_path
from ._http import (
    DEFAULT_DOWNLOAD_TIMEOUT,
    DEFAULT_MAX_RESPONSE_SIZE,
    Transport,
    check_endpoint,
)
from ._tls import SslOption
from .events import EventStream, Overflow, StreamOptions, StreamStats, Subscription
from .events._recovery import CdrRecovery, Checkpoint
from .resources import DEFAULT_DATETIME_FORMAT, Downloader, resource_class
from .resources._base import encode_query, in_zone
from .resources._profile import CdrApiVersion, PbxProfile, check_cdr_api_version

if TYPE_CHECKING:
    from .resources import (
        AgentResource,
        CallReportResource,
        CallResource,
        CallScheduleReportResource,
        CdrResource,
        CompanyContactResource,
        ExtensionResource,
        HotelResource,
        InboundRouteResource,
        IvrResource,
        OrganizationResource,
        OutboundRouteResource,
        PhonebookResource,
        PinListResource,
        QueuePauseReasonResource,
        QueueResource,
        RecordingResource,
        SystemResource,
        TrunkResource,
        UacstaCallResource,
        WakeupcallResource,
        WebhookResource,
    )
    from .resources._base import Resource

__all__ = ["YeastarClient"]

logger = logging.getLogger("yeastar_async")

#: What ``request(response_type=...)`` decodes into: anything msgspec can decode.
T = TypeVar("T")
R = TypeVar("R", bound="Resource")
H = TypeVar("H", bound=Callable[..., Awaitable[Any]])
#: An event class a handler or a subscription is typed by.
E = TypeVar("E")
#: What ``on()`` and ``subscribe()`` accept: an event class or a topic number.
EventTarget = int | type[Any]


class _Group(Generic[R]):
    """``client.<group>``: the group's resource, built (and its module imported) on first use.

    A non-data descriptor: the first access stores the resource in the instance ``__dict__``,
    so later accesses are plain attribute lookups.
    """

    def __set_name__(self, owner: type, name: str) -> None:
        self._name = name

    @overload
    def __get__(self, client: None, owner: type) -> Self: ...

    @overload
    def __get__(self, client: YeastarClient, owner: type) -> R: ...

    def __get__(self, client: YeastarClient | None, owner: type) -> R | Self:
        if client is None:
            return self
        resource: R = resource_class(self._name)(  # type: ignore[assignment]
            client._transport,
            datetime_format=client._datetime_format,
            timezone=client._timezone,
            profile=client._profile,
        )
        client.__dict__[self._name] = resource
        return resource


class YeastarClient:
    """An asyncio client for one Yeastar P-Series PBX.

    Use it as an async context manager (``async with YeastarClient(...) as pbx``) or call
    :meth:`aclose` when done. Construction does no I/O; the first request logs in.

    Args:
        base_url: ``https://{pbx}:{port}`` (HTTPS port 8088 by default on the PBX), or
            ``http://{pbx}:{port}``, or the FQDN ``https://{name}.ras.yeastar.com``.
        client_id: the Client ID from Integrations > API on the PBX.
        client_secret: the Client Secret from the same page. Never logged or shown.
        api_path: the API prefix, ``openapi/v1.0``.
        user_agent: the ``User-Agent`` header the PBX requires on every request (control
            characters are refused).
        timeout: total seconds per request attempt (each method also takes ``timeout=``).
        connect_timeout: seconds to establish a connection.
        max_concurrency: requests in flight at once (protects a modest PBX).
        retries: retries of a GET after connection errors, timeouts and 502/503/504 (a POST is
            retried only when it never left).
        retry_backoff, retry_backoff_max: bounds of the full-jitter exponential backoff between
            those retries, in seconds.
        ssl: TLS verification: ``None`` (system trust store), an ``ssl.SSLContext``, a CA file
            path, a SHA-256 certificate fingerprint to pin, or ``False`` (no verification;
            logged as a warning).
        session: an ``aiohttp.ClientSession`` to borrow (never closed by the client). The
            client's own session keeps one connection beyond ``max_concurrency`` for the
            revocation on close; give a borrowed one that room too.
        max_response_size: largest JSON answer read, in bytes (default 32 MiB, far above any
            real answer); a larger one, by its Content-Length or by the bytes that arrive, is a
            :class:`~yeastar_async.errors.TransportError`. File downloads are not capped.
        download_timeout: seconds a whole file download may take (default 600; each call of
            ``files.save`` / ``files.iter_bytes`` also takes ``timeout=``).
        token_store: where tokens live (default: in memory); share one between processes to
            stay under the PBX's cap of about 8 live tokens.
        login_guard_state: where the lockout guard counts rejected logins to the PBX, so that
            every process of the user sees them: ``"default"`` (the file
            ``$XDG_STATE_HOME/yeastar-async/login-guard.json``, or under ``~/.local/state``),
            a file path, or ``None`` (this process only: for tests). A ``token_store`` that
            offers ``load_login_guard`` / ``save_login_guard`` keeps the count too.
        refresh_margin: refresh the access token this many seconds before it expires.
        revoke_on_close: revoke the access token (``del_token``) when the client closes.
        datetime_format: how ``datetime`` parameters of the CDR and report endpoints are sent;
            it must match the PBX's display format (System > Date and Time). Default: the
            format the PBX reports in ``system/information`` (``system_date_format`` /
            ``system_time_format``, current firmware; read once, when a datetime is first
            sent), else ``"%m/%d/%Y %H:%M:%S"``.
        timezone: the PBX's time zone (a :class:`~datetime.tzinfo`, e.g.
            ``zoneinfo.ZoneInfo("Europe/Berlin")``): timezone-aware datetimes are converted to
            it before they are sent. Default: the PBX's UTC offset from ``system/information``
            (``system_time`` against ``timestamp``) where it reports them, else none: a
            datetime is sent as its own wall-clock time. Naive datetimes are always PBX time.
        cdr_api_version: which API version answers ``cdr/list``, ``cdr/search``,
            ``cdr/detail``, ``call_report/list`` and ``call_report/detail``: ``"auto"``
            (default: ``openapi/v2.0`` where the firmware serves new data there, read once
            from ``system/information``), ``"1.0"`` or ``"2.0"``. Every answer's
            ``api_version`` says which one answered.
        heartbeat_interval: seconds between ``heartbeat`` frames on the WebSocket (< 60, the
            PBX's idle limit).
        heartbeat_timeout: seconds to wait for proof of life after a heartbeat, and for the
            ack of a subscribe message (< 60).
        reconnect_delay_min, reconnect_delay_max: bounds of the full-jitter exponential
            backoff between reconnect attempts.
        healthy_after: the backoff restarts from the minimum only after a link stayed up
            this long.
        event_queue_size: events buffered between the socket reader and the handlers (and in
            each subscription).
        event_queue_bytes: bytes those buffers may hold, each (default 16 MiB), every event
            charged an estimate of its decoded size: a stuck handler fed large or hostile
            frames holds at most about twice this much, decoded (plus one event), not
            ``event_queue_size`` frames. Either bound makes a buffer full.
        overflow: ``"block"`` (default: nothing is lost; the reader waits, heartbeats go on),
            ``"drop_newest"`` or ``"drop_oldest"`` (drops are counted and logged).
        handler_timeout: cancel a handler still running after this many seconds.
        shutdown_timeout: :meth:`aclose` hands queued events to handlers within this long.
        max_frame_size: largest WebSocket frame accepted, in bytes (at least 1024).
        recover_cdrs: after any gap in the event stream (a reconnect, a token rotation that
            did not overlap, ``listen(since=...)``), fetch the CDRs of the gap over REST
            (``cdr/search``, v1.0 and v2.0 as the firmware serves them) and deliver those not
            seen live as ``events.CdrRecovered`` (a ``NewCdr``), once per call. Only while
            30012 is subscribed. Default True; costs one search per gap.
    """

    def __init__(
        self,
        base_url: str,
        client_id: str,
        client_secret: str,
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
        token_store: TokenStore | None = None,
        login_guard_state: StateOption = "default",
        refresh_margin: float = 300.0,
        revoke_on_close: bool = True,
        datetime_format: str | None = None,
        timezone: tzinfo | None = None,
        cdr_api_version: CdrApiVersion = "auto",
        heartbeat_interval: float = 25.0,
        heartbeat_timeout: float = 10.0,
        reconnect_delay_min: float = 0.5,
        reconnect_delay_max: float = 30.0,
        healthy_after: float = 30.0,
        event_queue_size: int = 1024,
        event_queue_bytes: int = 16 * 1024 * 1024,
        overflow: Overflow = "block",
        handler_timeout: float | None = None,
        shutdown_timeout: float = 5.0,
        max_frame_size: int = 1024 * 1024,
        max_response_size: int = DEFAULT_MAX_RESPONSE_SIZE,
        download_timeout: float = DEFAULT_DOWNLOAD_TIMEOUT,
        recover_cdrs: bool = True,
    ) -> None:
        # Validate every option before building anything, so a bad value costs nothing.
        guard_state = _guard_state(login_guard_state, token_store)
        stream_options = _stream_options(
            heartbeat_interval,
            heartbeat_timeout,
            reconnect_delay_min,
            reconnect_delay_max,
            healthy_after,
            event_queue_size,
            event_queue_bytes,
            overflow,
            handler_timeout,
            shutdown_timeout,
            max_frame_size,
        )
        self._transport = Transport(
            base_url,
            api_path=api_path,
            user_agent=user_agent,
            timeout=timeout,
            connect_timeout=connect_timeout,
            max_concurrency=max_concurrency,
            retries=retries,
            retry_backoff=retry_backoff,
            retry_backoff_max=retry_backoff_max,
            ssl=ssl,
            session=session,
            max_response_size=max_response_size,
            download_timeout=download_timeout,
        )
        self._tokens = TokenManager(
            self._transport,
            client_id,
            client_secret,
            store=token_store,
            refresh_margin=refresh_margin,
            secrets=self._transport.secrets,
            # Every client of the PBX's address counts rejected logins together, in this
            # process and, through the state, in the user's other processes.
            pbx=self._transport.base_url,
            guard_state=guard_state,
        )
        self._transport.tokens = self._tokens
        self._client_id = client_id
        if datetime_format is not None and not isinstance(datetime_format, str):
            raise TypeError(f"datetime_format must be a strftime format, got {datetime_format!r}")
        self._datetime_format = datetime_format or DEFAULT_DATETIME_FORMAT
        if timezone is not None and not isinstance(timezone, tzinfo):
            raise TypeError(
                f"timezone must be a datetime.tzinfo (e.g. zoneinfo.ZoneInfo), got {timezone!r}"
            )
        self._timezone = timezone
        #: system/information, read once when first needed: API versions, date format, zone.
        self._profile = PbxProfile(
            self._transport,
            cdr_api_version=check_cdr_api_version(cdr_api_version),
            datetime_format=datetime_format,
            timezone=timezone,
        )
        self._revoke_on_close = revoke_on_close
        #: Fetches the files behind the ``*/download`` answers (``save`` / ``iter_bytes``).
        self.files = Downloader(self._transport)
        self._stream = EventStream(self._tokens, self._transport, stream_options)
        if not isinstance(recover_cdrs, bool):
            raise TypeError(f"recover_cdrs must be True or False, got {recover_cdrs!r}")
        if recover_cdrs:
            self._stream.recover_cdrs_with(CdrRecovery(self._fetch_cdrs))
        self._closed = False
        self._close_task: asyncio.Task[None] | None = None

    @classmethod
    def from_env(cls, **options: Any) -> YeastarClient:
        """A client configured by the environment, as the ``yeastar-async`` command is.

        Reads ``YEASTAR_BASE_URL``, ``YEASTAR_CLIENT_ID`` and ``YEASTAR_CLIENT_SECRET``, and for
        TLS ``YEASTAR_PIN`` (a SHA-256 certificate fingerprint) or ``YEASTAR_CA_FILE``. Other
        keyword arguments go to the constructor (an explicit ``ssl=`` wins over the
        environment). Raises :class:`ValueError` naming every variable that is missing.
        """
        names = ("YEASTAR_BASE_URL", "YEASTAR_CLIENT_ID", "YEASTAR_CLIENT_SECRET")
        missing = [name for name in names if not os.environ.get(name)]
        if missing:
            raise ValueError(f"set the environment variable(s) {', '.join(missing)}")
        tls = os.environ.get("YEASTAR_PIN") or os.environ.get("YEASTAR_CA_FILE")
        if tls:
            options.setdefault("ssl", tls)
        base_url, client_id, secret = (os.environ[name] for name in names)
        return cls(base_url, client_id, secret, **options)

    # One attribute per endpoint group of the manual: ``client.<group>.<action>(...)``.
    system: _Group[SystemResource] = _Group()
    extension: _Group[ExtensionResource] = _Group()
    organization: _Group[OrganizationResource] = _Group()
    trunk: _Group[TrunkResource] = _Group()
    company_contact: _Group[CompanyContactResource] = _Group()
    phonebook: _Group[PhonebookResource] = _Group()
    inbound_route: _Group[InboundRouteResource] = _Group()
    outbound_route: _Group[OutboundRouteResource] = _Group()
    pin_list: _Group[PinListResource] = _Group()
    ivr: _Group[IvrResource] = _Group()
    queue: _Group[QueueResource] = _Group()
    queue_pause_reason: _Group[QueuePauseReasonResource] = _Group()
    agent: _Group[AgentResource] = _Group()
    recording: _Group[RecordingResource] = _Group()
    cdr: _Group[CdrResource] = _Group()
    call_report: _Group[CallReportResource] = _Group()
    call_schedule_report: _Group[CallScheduleReportResource] = _Group()
    wakeupcall: _Group[WakeupcallResource] = _Group()
    hotel: _Group[HotelResource] = _Group()
    call: _Group[CallResource] = _Group()
    uacsta_call: _Group[UacstaCallResource] = _Group()
    webhook: _Group[WebhookResource] = _Group()

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return f"YeastarClient(base_url={self.base_url!r}, client_id={self._client_id!r}, {state})"

    @property
    def base_url(self) -> str:
        """The PBX address this client talks to."""
        return self._transport.base_url

    @property
    def closed(self) -> bool:
        """Whether :meth:`aclose` was called."""
        return self._closed

    # -- lifecycle -------------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Stop the event stream, revoke the token (best effort) and close the session.

        Idempotent: later calls wait for the first one to finish. Called from an event
        handler, it starts the shutdown and returns at once (waiting there would wait for
        that handler itself); the rest completes in the background, and a later ``aclose()``
        from elsewhere waits for all of it.
        """
        if self._close_task is None:
            self._closed = True
            self._close_task = asyncio.ensure_future(self._close())
        if self._stream._in_handler():
            return
        await asyncio.shield(self._close_task)

    async def _close(self) -> None:
        # Calls sleeping in a retry backoff end now, not after the revocation.
        self._transport.begin_close()
        try:
            await self._stream.aclose()
            if self._revoke_on_close:
                await self._tokens.revoke()
        finally:
            await self._transport.aclose()

    async def login(self) -> None:
        """Log in now rather than at the first request (a no-op while a token is valid).

        Useful to check the credentials at start-up. Raises
        :class:`~yeastar_async.errors.AuthenticationError` for rejected credentials (never
        retried; the lockout guard applies), :class:`~yeastar_async.errors.IPBlockedError`,
        :class:`~yeastar_async.errors.LimitExceededError` (token cap) and
        :class:`~yeastar_async.errors.TransportError`.
        """
        await self._tokens.token()

    # -- events ----------------------------------------------------------------------------

    @overload
    def on(
        self, target: type[E]
    ) -> Callable[[Callable[[E], Awaitable[object]]], Callable[[E], Awaitable[object]]]: ...

    @overload
    def on(self, target: int) -> Callable[[H], H]: ...

    def on(self, target: EventTarget) -> Callable[[H], H]:
        """Decorator registering an async handler for an event class or topic number.

        ``@pbx.on(events.IncomingCallRequest)`` or ``@pbx.on(30016)``; local events
        (``events.Connected``, ``events.Disconnected``) too. Several handlers of one event run
        in registration order, one event at a time; a handler that raises is logged and
        affects nothing else. Returns the function unchanged. With an event class, type
        checkers hold the handler to taking one argument of that class.
        """
        return self._stream.decorator(target)

    def add_handler(self, target: EventTarget, handler: Callable[[Any], Awaitable[Any]]) -> None:
        """Register ``handler`` for ``target``, like :meth:`on`."""
        self._stream.add_handler(target, handler)

    def remove_handler(self, target: EventTarget, handler: Callable[[Any], Awaitable[Any]]) -> None:
        """Unregister a handler (``ValueError`` if it was not registered)."""
        self._stream.remove_handler(target, handler)

    async def listen(self, *, since: Checkpoint | float | None = None) -> None:
        """Run the supervised event stream until the client closes, then return.

        Subscribes to the topics of the registered handlers, keeps the link alive, moves it
        to each new token without a gap (make-before-break), reconnects through faults and
        (``recover_cdrs``) recovers the CDRs of every gap. ``since``: a :attr:`checkpoint`
        an earlier run stored: the CDRs of calls that ended since then are recovered too.
        Raises only what reconnecting cannot fix: rejected credentials
        (:class:`~yeastar_async.errors.AuthenticationError`) and a blocked IP
        (:class:`~yeastar_async.errors.IPBlockedError`).
        """
        await self._stream.listen(since=since)

    @property
    def checkpoint(self) -> Checkpoint | None:
        """Up to when events were received (now while connected; when the link was lost;
        ``None`` before the first connect): store it and pass it to ``listen(since=...)``."""
        return self._stream.checkpoint

    async def _fetch_cdrs(
        self, start: float, end: float
    ) -> tuple[Sequence[Any], str, tzinfo | None]:
        """The CDRs whose start time is from ``start`` to ``end`` (wall seconds), with the
        format and zone the PBX shows times in (CDR recovery)."""
        with importing("yeastar_async.resources._history"):  # out of fds: said as such
            from .resources._history import cdrs_between

        # Aware local times: converted to the PBX's zone when it is known.
        first = datetime.fromtimestamp(start).astimezone()
        last = datetime.fromtimestamp(end).astimezone()
        answer = await cdrs_between(self.cdr, first, last)
        fmt, zone = self.cdr.formats()
        return list(answer.data or []), fmt, zone

    @overload
    def subscribe(
        self, target: type[E], /
    ) -> contextlib.AbstractAsyncContextManager[Subscription[E]]: ...

    @overload
    def subscribe(
        self, *targets: EventTarget
    ) -> contextlib.AbstractAsyncContextManager[Subscription[Any]]: ...

    def subscribe(
        self, *targets: EventTarget
    ) -> contextlib.AbstractAsyncContextManager[Subscription[Any]]:
        """The events ``targets`` name, as an async iterator: ``async with pbx.subscribe(30011)
        as stream: async for ev in stream``. Works with or without :meth:`listen` running;
        local events only when their classes are named. With one event class the stream's
        items are typed as that class.
        """
        return self._stream.subscribe(*targets)

    @property
    def event_stats(self) -> StreamStats:
        """Counters of the event stream (frames, events, malformed frames, drops, reconnects)."""
        return self._stream.stats

    @property
    def connected(self) -> bool:
        """Whether the event WebSocket is up and its subscription acknowledged."""
        return self._stream.connected

    # -- escape hatch ----------------------------------------------------------------------

    @overload
    async def request(
        self,
        method: Literal["GET", "POST"] | str,
        endpoint: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        timeout: float | None = None,
        response_type: None = None,
    ) -> dict[str, Any]: ...

    @overload
    async def request(
        self,
        method: Literal["GET", "POST"] | str,
        endpoint: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        timeout: float | None = None,
        response_type: type[T],
    ) -> T: ...

    async def request(
        self,
        method: Literal["GET", "POST"] | str,
        endpoint: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        timeout: float | None = None,
        response_type: type[T] | None = None,
    ) -> dict[str, Any] | T:
        """Call any endpoint by name: ``await pbx.request("GET", "extension/list", params=...)``.

        The token, retries and errcode checks apply as for the typed methods. Returns the
        decoded answer as a dict, or as ``response_type`` when given (any type msgspec decodes:
        a ``msgspec.Struct`` of your own, or e.g. ``resources.PageResponse[MyItem]``).
        ``params`` go in the query string as the typed methods send them: ``None`` left out,
        lists comma-separated, booleans as 1/0, ``datetime`` / ``date`` values in the client's
        ``datetime_format`` (and ``timezone``). ``json`` is sent as given. The token endpoints
        (``get_token``, ``refresh_token``, ``del_token``) are the client's own and refused
        here, so that no login escapes the lockout guard. An endpoint with a query string
        (``?``), a fragment (``#``), ``.`` / ``..`` segments (percent-encoded too), a backslash
        or a control character is refused with :class:`ValueError` before any I/O.
        """
        method = method.upper()
        if method not in ("GET", "POST"):
            raise ValueError(f"method must be 'GET' or 'POST', got {method!r}")
        name = check_endpoint(endpoint)
        if name in _TOKEN_ENDPOINTS:
            raise ValueError(
                f"{name} is handled by the client (login(), token refresh, aclose()); "
                "call pbx.login() to check the credentials"
            )
        profile = self._profile
        if params and profile.needs_facts(None, params):
            await profile.read()
        zone = profile.timezone()
        if params and zone is not None:
            params = in_zone(params, zone)
        fmt = profile.datetime_format(self._datetime_format)
        query = encode_query(params, datetime_format=fmt) if params else None
        return await self._transport.request(
            method,
            endpoint,
            params=query,
            json=json,
            response_type=response_type if response_type is not None else _RAW,
            timeout=timeout,
        )


# -- what clients of one process share ----------------------------------------------------------
# An integrator holds a client per customer PBX, a thousand in one process: what depends only
# on the option values is built once per distinct set of them, not once per client.

#: (option, $XDG_STATE_HOME, $HOME) -> the GuardState of clients without a token store. A
#: GuardState holds only where the count lives, so clients naming the same place share one.
_guard_states: dict[tuple[object, str | None, str | None], GuardState] = {}


def _guard_state(option: StateOption, store: TokenStore | None) -> GuardState:
    """The lockout guard's state for ``login_guard_state=option`` and ``token_store=store``."""
    if store is not None or not (option is None or option == "default"):
        # A file path is checked (is it a folder?) for every client, as given.
        return GuardState(state_path(option), store=store)
    # The default file's place follows the environment at construction, as before.
    key = (option, os.environ.get("XDG_STATE_HOME"), os.environ.get("HOME"))
    state = _guard_states.get(key)
    if state is None:
        if len(_guard_states) >= 64:  # an environment that keeps changing: stay bounded
            _guard_states.clear()
        state = _guard_states[key] = GuardState(state_path(option))
    return state


def _stream_options(*values: Any) -> StreamOptions:
    """The validated (frozen, shareable) :class:`StreamOptions` of these values, in field order."""
    try:
        return _cached_stream_options(*values)
    except TypeError:  # an unhashable value: StreamOptions names it
        return StreamOptions(*values)


# typed: 1, 1.0 and True are equal keys, but only some of them are valid values.
_cached_stream_options = functools.lru_cache(maxsize=64, typed=True)(StreamOptions)


_RAW: Any = dict[str, Any]
_TOKEN_ENDPOINTS = frozenset({"get_token", "refresh_token", "del_token"})
