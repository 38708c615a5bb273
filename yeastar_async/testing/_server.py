"""``FakePBX``: an ``aiohttp.web`` server on 127.0.0.1 that behaves like a Yeastar P-Series PBX.

Use it in tests instead of a real PBX::

    async with FakePBX() as pbx:
        client = YeastarClient(pbx.base_url, pbx.client_id, pbx.client_secret)
        ...

It answers the OpenAPI v1.0 (and, with ``firmware=`` of current firmware, the v2.0 CDR and
report endpoints) over real loopback sockets, quirks included: errors are HTTP 200
bodies ``{"errcode": N, "errmsg": "..."}``, the TCP connection is closed after each response,
tokens expire and are capped, five failed logins block the caller's IP, and the WebSocket drops
idle clients. Switches make it misbehave on purpose (expired tokens, failing requests, dropped or
silent sockets), and a request log plus counters let a test check what a client did.
"""

from __future__ import annotations

import asyncio
import copy
import inspect
import json
import mimetypes
import secrets
import time
from collections.abc import Awaitable, Callable, Collection, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from types import EllipsisType
from typing import Any, Self
from urllib.parse import quote

from aiohttp import web

from .._auth import forget_login_guard
from .._firmware import Feature, Firmware, parse_firmware
from ..events.models import KNOWN_TOPICS, TOPICS
from ..resources._profile import strftime_of
from ._auth import IPGuard, Renewal, TokenBook
from ._catalog import Catalog, EndpointSpec, load_catalog
from ._cdr_v2 import CdrV2Endpoints
from ._flows import CallFlows, FakeCall
from ._log import FakePBXStats, RequestRecord
from ._loopback import LoopbackFake
from ._stores import Stores
from ._webhook_push import WebhookPush
from ._webhook_settings import WebhookSettings
from ._ws import DEFAULT_SN, FakeSocket, WsHub

__all__ = ["FakePBX", "Handler"]

API_PREFIX = "/openapi/v1.0/"
API_V2_PREFIX = "/openapi/v2.0/"
DOWNLOAD_PREFIX = "/api/download/"

#: A custom endpoint answer: takes the request record, returns the JSON body (or awaits it).
Handler = Callable[[RequestRecord], "dict[str, Any] | Awaitable[dict[str, Any]]"]


@dataclass
class _Fault:
    remaining: int
    endpoint: str | None
    status: int = 200
    body: dict[str, Any] | None = None
    delay: float | None = None
    release: asyncio.Event | None = None

    def matches(self, record: RequestRecord) -> bool:
        if self.endpoint is None:
            return record.endpoint != "subscribe"  # handshakes have reject_handshake()
        return record.endpoint == self.endpoint.strip("/") or record.path == self.endpoint


def _number(value: float) -> int | float:
    return int(value) if float(value).is_integer() else value


class FakePBX(LoopbackFake):
    """A fake Yeastar P-Series PBX for tests, served over real sockets on 127.0.0.1.

    Args:
        client_id: the API client ID it accepts (``get_token`` username).
        client_secret: the client secret it accepts (``get_token`` password); random by default.
        access_token_ttl: access token lifetime in seconds (PBX: 1800). ``get_token`` reports
            it as ``access_token_expire_time``: an integer when whole, else a JSON float.
        refresh_token_ttl: refresh token lifetime in seconds (PBX: 86400).
        max_tokens: live access tokens allowed at once; one more login answers 60002.
        block_after: consecutive failed logins from one IP before it is blocked (PBX: 5).
        host: the address to listen on; keep the loopback default.
        port: the port; 0 picks a free one.
        keep_alive: keep TCP connections open between requests (the PBX closes them).
        idle_timeout: seconds without a client frame before the server drops a WebSocket
            (PBX: 60).
        idle_counts_pings: whether WebSocket protocol pings reset the idle timer (the manual
            only promises it for the ``heartbeat`` text, so False by default).
        renewal: what a new token does to the application's older access tokens (the vendor
            does not document it): ``"refresh_revokes"`` (default) a refresh kills the access
            token it renews, a login leaves the others alive; ``"kept"`` older tokens stay
            valid until their own expiry; ``"revoked"`` every login or refresh revokes every
            other live access token at once. A killed token's sockets get 10004 and are closed
            (with ``ws_bound_to_token``). Any number of sockets per application and per token
            are accepted: the vendor documents no limit.
        ws_bound_to_token: close a WebSocket (after a 10004 frame) when its token dies, as the
            PBX does; False keeps sockets open whatever happens to their token.
        sn: the serial number put in event frames.
        clock: a monotonic clock for token lifetimes (``time.monotonic``); inject one to age
            tokens without waiting.
        close_timeout: how long closing a WebSocket waits for the client's close frame.
        stores: keep in-memory state for extensions, contacts, phonebooks, routes, queues,
            wake-up calls and CDRs, and run scripted call flows (each finished call adds a
            record to ``cdr/list`` / ``cdr/search``). False is "catalog mode": every endpoint
            answers the manual's example response whatever the parameters.
        inbound_window: seconds the PBX waits for accept/refuse after 30016 (PBX: 10).
        ring_time: seconds a scripted call rings before it is answered.
        talk_time: seconds a scripted call talks before it hangs up; None keeps it up until
            ``call/hangup`` (or :meth:`FakeCall.hangup`).
        firmware: the ``firmware_version`` ``system/information`` reports (default: the
            manual's example ``X.7.0.16``, read as the April 2024 API). A current one moves
            data as the PBX does: from ``x.21.0.117`` ``call_report/list`` / ``detail`` also
            answer at ``openapi/v2.0``; from ``x.23.0.123`` the CDR endpoints do, and records
            from ``cdr_upgrade`` on are served only there (``openapi/v1.0`` keeps the older
            ones); below ``x.20.0.21`` the webhook endpoints answer 10001.
        cdr_upgrade: when the CDRs moved to v2.0 (naive PBX time; default: when the fake was
            made, so the manual's seeded records are history and every call the fake finishes
            is new data). Only with a firmware of ``x.23.0.123`` or later.
        system_date_format, system_time_format: the display format ``system/information``
            reports (``"YYYY/MM/DD"``, ``"hh:mm:ss"``; add `` A`` for a 12-hour clock), as
            current firmware does; ``cdr/search`` then reads and shows times in it. None (the
            default) reports neither, as older firmware, and uses ``MM/DD/YYYY HH:mm:ss``.
        utc_offset: the PBX's offset from UTC, shown by ``system_time`` against ``timestamp``
            (reported with the display format).

    Attributes:
        requests: every request received, oldest first (:class:`RequestRecord`).
        stats: counters (:class:`FakePBXStats`).
        catalog: the endpoint table the fake answers from.
        webhook_push: the webhook deliveries of emitted events (``deliveries``, ``join()``).
        store: the in-memory state (extensions, contacts, phonebooks, inbound routes,
            queues and agents, wake-up calls, CDRs in ``store.cdrs.records``); None with
            ``stores=False``.
    """

    def __init__(
        self,
        *,
        client_id: str = "fake-client-id",
        client_secret: str | None = None,
        access_token_ttl: float = 1800.0,
        refresh_token_ttl: float = 86400.0,
        max_tokens: int = 8,
        block_after: int = 5,
        host: str = "127.0.0.1",
        port: int = 0,
        keep_alive: bool = False,
        idle_timeout: float = 60.0,
        idle_counts_pings: bool = False,
        ws_bound_to_token: bool = True,
        renewal: Renewal = "refresh_revokes",
        sn: str = "3631A2124XXX",
        clock: Callable[[], float] | None = None,
        close_timeout: float = 1.0,
        stores: bool = True,
        inbound_window: float = 10.0,
        ring_time: float = 0.0,
        talk_time: float | None = 0.0,
        firmware: str | None = None,
        cdr_upgrade: datetime | None = None,
        system_date_format: str | None = None,
        system_time_format: str = "hh:mm:ss",
        utc_offset: timedelta = timedelta(0),
    ) -> None:
        super().__init__()
        self.client_id = client_id
        self.client_secret = client_secret or secrets.token_hex(16)
        self.max_tokens = max_tokens
        self.stores_enabled = stores
        self.host = host
        self.keep_alive = keep_alive
        self.requests: list[RequestRecord] = []
        self.stats = FakePBXStats()
        self.catalog: Catalog = load_catalog()
        self._clock = clock or time.monotonic
        self._port = port
        self._tokens = TokenBook(
            clock=self._clock,
            access_ttl=access_token_ttl,
            refresh_ttl=refresh_token_ttl,
            on_access_dead=self._tokens_died,
            renewal=renewal,
        )
        self._guard = IPGuard(block_after)
        self._ws = WsHub(
            tokens=self._tokens,
            guard=self._guard,
            stats=self.stats,
            notify=self._notify,
            clock=self._clock,
            sn=sn,
            idle_timeout=idle_timeout,
            idle_counts_pings=idle_counts_pings,
            bound_to_token=ws_bound_to_token,
            close_timeout=close_timeout,
        )
        self._faults: list[_Fault] = []
        self._overrides: dict[str, dict[str, Any] | Handler] = {}
        self._handlers: dict[str, Handler] = {}
        self._files: dict[str, bytes] = {}
        self._download_names: dict[str, str] = {}
        self._closing = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self._started_before = False
        self._connections: set[Any] = set()
        self.store: Stores | None = None
        self._flows: CallFlows | None = None
        self.firmware = firmware
        self._firmware: Firmware | None = parse_firmware(firmware)
        self.system_date_format = system_date_format
        self.system_time_format = system_time_format
        self.utc_offset = utc_offset
        display = strftime_of(system_date_format, system_time_format)
        if system_date_format is not None and display is None:
            raise ValueError(f"system_date_format {system_date_format!r} is not like YYYY/MM/DD")
        self._display_format = display
        if stores:
            self._install_stores(inbound_window, ring_time, talk_time)
            self._install_cdr_versions(display, cdr_upgrade)
        self.add_handler("system/information", self._information)
        webhooks = self._webhook_settings()
        if webhooks is not None:
            # Current firmware pushes the topics past the manual too (webhook/query lists them).
            webhooks.supported = sorted({*webhooks.supported, *TOPICS, *KNOWN_TOPICS})
        #: Signed deliveries of every emitted event to the receivers ``webhook/update`` set.
        self.webhook_push = WebhookPush(webhooks)

    def _install_cdr_versions(self, display: str | None, upgrade: datetime | None) -> None:
        store = self.store
        if store is None:
            return
        if display is not None:
            store.cdrs.display_format = display
        if self.has("v2_cdr"):
            store.cdrs.upgrade = upgrade or datetime.now().replace(microsecond=0)
            for name, handler in CdrV2Endpoints(store.cdrs).handlers().items():
                self.add_handler(f"v2.0/{name}", handler)

    def has(self, feature: Feature) -> bool:
        """Whether the fake's ``firmware`` has ``feature`` (``"v2_cdr"``, ``"v2_reports"``,
        ``"webhook"``); an unknown or absent firmware has none of them."""
        return self._firmware is not None and self._firmware.has(feature)

    def _serves(self, spec: EndpointSpec, version: str) -> bool:
        # What the firmware answers at all (anything else: 10001 INTERFACE NOT EXISTED): the
        # catalog's minimum for this edition. A firmware the fake cannot read (the default,
        # the manual's "X.7.0.16") answers every v1.0 endpoint and no v2.0 one.
        firmware = self._firmware
        if firmware is None or firmware.edition is None:
            return version == "1.0"
        # "Software Edition" -> the catalog's key "software".
        first = parse_firmware(spec.firmware.get(firmware.edition.split()[0].lower()))
        return first is None or first <= firmware

    def _information(self, record: RequestRecord) -> dict[str, Any]:
        body = self.catalog.endpoints["system/information"].example()
        data = body.setdefault("data", {})
        if self.firmware is not None:
            data["firmware_version"] = self.firmware
        if self._firmware is not None and self._firmware.edition is not None:
            # The model follows the firmware's edition (84.x is Cloud), not the manual's example.
            data["model_name"] = f"P-Series {self._firmware.edition}"
        if self._display_format is not None:
            now = datetime.now(UTC).replace(microsecond=0)
            data["system_date_format"] = self.system_date_format
            data["system_time_format"] = self.system_time_format
            data["system_time"] = (now + self.utc_offset).strftime(self._display_format)
            data["timestamp"] = int(now.timestamp())
        return body

    # -- lifecycle ---------------------------------------------------------------------------
    async def start(self) -> Self:
        """Start listening (idempotent); returns the fake for chaining."""
        if self._runner is not None:
            return self
        self._closing.clear()
        app = web.Application()
        app.router.add_route("*", API_PREFIX + "{endpoint:.*}", self._handle_api)
        app.router.add_route("*", API_V2_PREFIX + "{endpoint:.*}", self._handle_api_v2)
        app.router.add_route("*", DOWNLOAD_PREFIX + "{name:.+}", self._handle_download)
        runner = self._runner = await self._listen(app, prepare=self._track_connections)
        if not self._started_before:
            # A new PBX: logins counted for an earlier fake at this address do not count (the
            # guard keys by address, so by the address the fake is bound to).
            forget_login_guard(str(runner.addresses[0][0]))
            self._started_before = True
        return self

    async def close(self) -> None:
        """Close every WebSocket and stop listening (idempotent)."""
        if self._runner is None:
            return
        runner, self._runner = self._runner, None
        self._closing.set()
        if self._flows is not None:
            await self._flows.close()
        await self.webhook_push.aclose()
        await self._ws.close_all()
        await runner.cleanup()

    def _track_connections(self, runner: web.AppRunner) -> None:
        # aiohttp's Server forgets a connection only once its handler task ends; a test wants
        # to know when the TCP link itself is gone (the client closed it), and to be woken then.
        server = runner.server
        assert server is not None
        made, lost = server.connection_made, server.connection_lost
        conns = self._connections = set()

        def connection_made(handler: Any, transport: Any) -> None:
            made(handler, transport)
            conns.add(handler)
            self._notify()

        def connection_lost(handler: Any, exc: BaseException | None = None) -> None:
            lost(handler, exc)
            conns.discard(handler)
            self._notify()

        server.connection_made = connection_made  # type: ignore[method-assign]
        server.connection_lost = connection_lost  # type: ignore[method-assign]

    @property
    def open_connections(self) -> int:
        """TCP connections (REST and WebSocket) the fake holds open right now."""
        return len(self._connections)

    async def wait_for_no_connections(self, timeout: float = 5.0) -> None:
        """Wait until no TCP connection to the fake is open (every client closed its sockets)."""
        await self.wait_until(
            lambda: not self._connections, timeout, "close of every TCP connection"
        )

    @property
    def ws_url(self) -> str:
        """The subscribe URL without its token: ``ws://127.0.0.1:PORT/openapi/v1.0/subscribe``."""
        return f"ws://{self.host}:{self._port}{API_PREFIX}subscribe"

    # -- waiting -----------------------------------------------------------------------------
    async def wait_for_request(
        self, endpoint: str, count: int = 1, timeout: float = 5.0
    ) -> RequestRecord:
        """Wait until ``endpoint`` was requested ``count`` times in all; returns the last one."""
        await self.wait_until(
            lambda: self.count(endpoint) >= count, timeout, f"{count} request(s) to {endpoint}"
        )
        return self.requests_for(endpoint)[-1]

    async def wait_for_connections(self, n: int = 1, timeout: float = 5.0) -> None:
        """Wait until ``n`` WebSocket upgrades in all were accepted."""
        await self.wait_until(
            lambda: self.stats.ws_connects >= n, timeout, f"{n} WebSocket connection(s)"
        )

    async def wait_for_subscription(
        self, topics: Collection[int], timeout: float = 5.0
    ) -> FakeSocket:
        """Wait until an open socket's subscription includes every topic of ``topics``."""
        await self.wait_until(
            lambda: bool(self._ws.subscribed_to(topics)), timeout, f"subscription to {topics}"
        )
        return self._ws.subscribed_to(topics)[0]

    async def wait_for_heartbeats(self, n: int = 1, timeout: float = 5.0) -> None:
        """Wait until ``n`` ``heartbeat`` texts in all were received."""
        await self.wait_until(lambda: self.stats.heartbeats >= n, timeout, f"{n} heartbeat(s)")

    async def wait_for_disconnect(self, timeout: float = 5.0) -> None:
        """Wait until no WebSocket is open."""
        await self.wait_until(lambda: not self.sockets, timeout, "disconnect of every socket")

    # -- request log -------------------------------------------------------------------------
    def requests_for(self, endpoint: str, method: str | None = None) -> list[RequestRecord]:
        """The logged requests to ``endpoint`` (optionally only with ``method``)."""
        endpoint = endpoint.strip("/")
        return [
            r
            for r in self.requests
            if (r.endpoint == endpoint or r.path.strip("/") == endpoint)
            and (method is None or r.method == method.upper())
        ]

    def count(self, endpoint: str, method: str | None = None) -> int:
        """How many requests to ``endpoint`` were received."""
        return len(self.requests_for(endpoint, method))

    def clear_requests(self) -> None:
        """Empty the request log."""
        self.requests.clear()

    def reset_stats(self) -> None:
        """Zero every counter of :attr:`stats`."""
        fresh = FakePBXStats()
        for name in vars(fresh):
            setattr(self.stats, name, getattr(fresh, name))

    # -- tokens ------------------------------------------------------------------------------
    def live_tokens(self) -> int:
        """How many access tokens are alive."""
        return len(self._tokens.live_access_tokens())

    def live_access_tokens(self) -> list[str]:
        """The live access tokens, oldest first (for tests checking that none leaks)."""
        return self._tokens.live_access_tokens()

    def live_refresh_tokens(self) -> list[str]:
        """The live refresh tokens, oldest first."""
        return self._tokens.live_refresh_tokens()

    def issued_tokens(self) -> list[str]:
        """Every access and refresh token ever issued, dead or alive, oldest first."""
        return list(self._tokens.issued)

    def issue_token(self) -> str:
        """Issue a token pair directly (no request, no counters); returns the access token."""
        return self._tokens.issue().access_token

    def expire_tokens(self, notify_sockets: bool = True) -> int:
        """Kill every live access token (refresh tokens stay valid); returns how many died.

        With ``notify_sockets`` (the PBX's behaviour), every WebSocket opened with one of them
        gets ``{"errcode":10004,"errmsg":"TOKEN EXPIRED"}`` and is closed; otherwise sockets stay
        open until they next send a frame.
        """
        return self._tokens.expire_access(notify=notify_sockets)

    def expire_refresh_tokens(self) -> int:
        """Kill every live refresh token (access tokens stay valid); returns how many died."""
        return self._tokens.expire_refresh()

    def _tokens_died(self, tokens: set[str]) -> None:
        self._ws.tokens_died(tokens)
        self._notify()

    # -- IP block ----------------------------------------------------------------------------
    def block_ip(self, ip: str = "127.0.0.1") -> None:
        """Put ``ip`` on the block list: every request from it answers 70004."""
        self._guard.block(ip)

    def unblock(self, ip: str | None = None) -> None:
        """Take ``ip`` (every IP when None) off the block list and reset its failure counter."""
        self._guard.unblock(ip)

    def is_blocked(self, ip: str = "127.0.0.1") -> bool:
        """Whether ``ip`` is on the block list."""
        return self._guard.is_blocked(ip)

    # -- REST faults and overrides ---------------------------------------------------------------
    def fail_next(self, n: int = 1, status: int = 503, endpoint: str | None = None) -> None:
        """Answer the next ``n`` matching requests with HTTP ``status`` and a short non-JSON body.

        ``endpoint`` (e.g. ``"get_token"``, ``"/api/download/x.wav"``) limits the fault to
        that endpoint; None matches every HTTP request except WebSocket handshakes (see
        :meth:`reject_handshake`).
        """
        self._faults.append(_Fault(remaining=n, endpoint=endpoint, status=status))

    def fail_next_errcode(
        self,
        n: int,
        errcode: int,
        errmsg: str = "",
        endpoint: str | None = None,
        **extra: Any,
    ) -> None:
        """Answer the next ``n`` matching requests with HTTP 200 ``{"errcode":..., "errmsg":...}``.

        ``errmsg`` defaults to the manual's message for the code; ``extra`` keys (such as
        ``invalid_param_list``) are added to the body. The request is not otherwise processed
        (a token stays valid, a login is not counted).
        """
        body = {"errcode": errcode, "errmsg": errmsg or self.catalog.errmsg(errcode), **extra}
        self._faults.append(_Fault(remaining=n, endpoint=endpoint, body=body))

    def delay_next(self, n: int, seconds: float, endpoint: str | None = None) -> None:
        """Hold the next ``n`` matching requests for ``seconds`` before answering them normally.

        ``endpoint`` as for :meth:`fail_next`. Closing the fake ends pending delays at once.
        """
        self._faults.append(_Fault(remaining=n, endpoint=endpoint, delay=seconds))

    def hold_next(self, n: int = 1, endpoint: str | None = None) -> asyncio.Event:
        """Hold the next ``n`` matching requests until the returned event is set, then answer
        them normally (``endpoint`` as for :meth:`fail_next`).

        For tests that need a request in flight: ``gate = fake.hold_next(1, "cdr/search")``,
        then ``await fake.wait_for_request("cdr/search")``, act, ``gate.set()``. Closing the
        fake releases held requests at once.
        """
        release = asyncio.Event()
        self._faults.append(_Fault(remaining=n, endpoint=endpoint, release=release))
        return release

    def set_response(self, endpoint: str, body: dict[str, Any] | Handler | None) -> None:
        """Answer ``endpoint`` (any method, after the token check; the login endpoints
        ``get_token`` / ``refresh_token`` need no token) with ``body`` from now on.

        ``body`` is a JSON dict sent as is, or a function of the :class:`RequestRecord`
        returning one (it may be async). None removes the override.
        """
        endpoint = endpoint.strip("/")
        if body is None:
            self._overrides.pop(endpoint, None)
        else:
            self._overrides[endpoint] = body

    def clear_faults(self) -> None:
        """Forget pending ``fail_next*`` faults, overrides and WebSocket fault switches."""
        self._faults.clear()
        self._overrides.clear()
        self._ws.black_holed = False
        self._ws.heartbeat_replies = True
        self._ws.ack = True
        self._ws.subscribe_reply = None
        self._ws.reject_status = self._ws.reject_remaining = None
        self._ws.accept_then_close_remaining = 0

    def add_handler(self, endpoint: str, handler: Handler) -> None:
        """Answer a catalog endpoint with ``handler`` instead of the manual's example.

        Unlike :meth:`set_response` the endpoint keeps its checks (method, token, required
        parameters); the stores and call flows of the fake are built this way. An
        ``openapi/v2.0`` endpoint is named ``"v2.0/<endpoint>"`` (here and in
        :meth:`set_response`).
        """
        self._handlers[endpoint.strip("/")] = handler

    # -- files -------------------------------------------------------------------------------
    def add_file(self, name: str, data: bytes, *, endpoint: str | None = None) -> str:
        """Stage a file at ``/api/download/<name>`` (names may contain ``+`` or spaces).

        With ``endpoint`` (``"recording/download"``, ``"cdr/download"``,
        ``"call_report/download"``, ``"call_schedule_report/download"``) that endpoint answers
        with this file from now on. Returns the ``download_resource_url``.
        """
        self._files[name] = data
        if endpoint is not None:
            self._download_names[endpoint.strip("/")] = name
        return DOWNLOAD_PREFIX + name

    def remove_file(self, name: str) -> None:
        """Unstage a file: downloading it answers HTTP 200 with a 60001 JSON body."""
        self._files.pop(name, None)

    # -- WebSocket switches --------------------------------------------------------------------
    @property
    def sockets(self) -> list[FakeSocket]:
        """The WebSockets currently open."""
        return self._ws.open_sockets()

    async def emit(
        self,
        topic: int,
        payload: Mapping[str, Any] | str,
        *,
        msg_as: str | None = None,
        sn: str | None = DEFAULT_SN,
    ) -> int:
        """Send an event to every socket subscribed to ``topic``; returns how many got it.

        The same frame is queued for the webhook receivers registered with ``webhook/update``
        that want the topic (signed, with the settings' timeout and retries; see
        :attr:`webhook_push`, whose ``join()`` waits for the deliveries).

        The frame is ``{"type": topic, "sn": "...", "msg": "<payload as a JSON string>"}``.
        ``msg_as`` is ``"string"`` or ``"object"``; by default it is what the PBX sends (an
        object for 30025/30026, a string otherwise). ``sn`` defaults to the PBX's serial number,
        left out for 30022/30023/30025/30026; None leaves it out. A ``str`` payload is taken as
        already-encoded JSON.
        """
        frame = self._ws.frame(topic, payload, msg_as, sn)
        sent = await self._ws.emit(topic, frame)
        self.webhook_push.submit(topic, frame)
        return sent

    def event_frame(
        self,
        topic: int,
        payload: Mapping[str, Any] | str,
        *,
        msg_as: str | None = None,
        sn: str | None = DEFAULT_SN,
    ) -> str:
        """The text frame :meth:`emit` would send (for :meth:`push_raw` or assertions)."""
        return self._ws.frame(topic, payload, msg_as, sn)

    def example_event(self, topic: int) -> dict[str, Any]:
        """A copy of the manual's example payload for ``topic`` (``{}`` if it has none)."""
        info = self.catalog.events.get(topic, {})
        example: dict[str, Any] = copy.deepcopy(info.get("example", {}))
        return example

    async def push_raw(self, frame: str | bytes) -> int:
        """Send any text to every open socket (subscribed or not); returns how many got it."""
        return await self._ws.push_raw(frame)

    async def push_and_close(self, frame: str | bytes, code: int = 1000) -> int:
        """Send ``frame`` to every open socket, then close them (e.g. the 10004 frame)."""
        return await self._ws.push_and_close(frame, code)

    async def push_frame(self, data: bytes, *, binary: bool = True) -> int:
        """Send ``data`` as one frame to every open socket; returns how many got it.

        A binary frame by default; ``binary=False`` sends a *text* frame whose payload is not
        checked, so a test can send what no PBX should: invalid UTF-8 in a text frame.
        """
        return await self._ws.push_frame(data, binary=binary)

    def drop_connections(self) -> int:
        """Abort every WebSocket's TCP connection, without a close frame; returns how many."""
        return self._ws.drop()

    def black_hole(self, on: bool = True) -> None:
        """Keep TCP open but never answer or send anything on WebSockets (a half-open link).

        No subscribe ack, no ``heartbeat response``, no events, no idle drop, no close frame.
        New handshakes still complete, then the socket stays silent. ``black_hole(False)``
        resumes normal service on the sockets still open, each with a fresh idle window
        (the idle timer went unheard during the black hole, so its deadline restarts).
        """
        self._ws.black_holed = on
        if not on:
            self._ws.rearm_idle()
        self._notify()

    @property
    def idle_timeout(self) -> float:
        """Seconds without a client frame before a WebSocket is dropped (PBX: 60)."""
        return self._ws.idle_timeout

    @idle_timeout.setter
    def idle_timeout(self, seconds: float) -> None:
        if not seconds > 0:
            raise ValueError(f"idle_timeout must be a positive number of seconds, got {seconds!r}")
        self._ws.idle_timeout = seconds
        self._ws.rearm_idle()

    def stop_heartbeat_replies(self, on: bool = True) -> None:
        """Stop (or with False resume) answering ``heartbeat``; acks and events still flow."""
        self._ws.heartbeat_replies = not on

    def ack_subscribe(self, on: bool = True) -> None:
        """Acknowledge ``topic_list`` messages (the default), or never when False."""
        self._ws.ack = on

    def refuse_subscribe(self, errcode: int | None = 10005, errmsg: str = "ACCESS DENIED") -> None:
        """Answer every ``topic_list`` with ``{"errcode": errcode, "errmsg": errmsg}`` instead of
        the ack, until ``refuse_subscribe(None)`` (or :meth:`clear_faults`)."""
        self._ws.subscribe_reply = (
            None if errcode is None else json.dumps({"errcode": errcode, "errmsg": errmsg})
        )

    def reject_handshake(self, status: int | None = 503, count: int | None = None) -> None:
        """Answer WebSocket upgrades with HTTP ``status``: ``count`` times, or until cleared.

        ``reject_handshake(None)`` clears it.
        """
        self._ws.reject_status = status
        self._ws.reject_remaining = count if status is not None else None

    def accept_then_close(self, count: int = 1) -> None:
        """Accept the next ``count`` upgrades, then close each at once (before any frame)."""
        self._ws.accept_then_close_remaining = count

    # -- stores and scripted calls -------------------------------------------------------------
    def _webhook_settings(self) -> WebhookSettings | None:
        return self.store.webhooks if self.store is not None else None

    def _install_stores(
        self, inbound_window: float, ring_time: float, talk_time: float | None
    ) -> None:
        store = Stores(self.catalog, self.emit)
        flows = CallFlows(
            store,
            self.emit,
            inbound_window=inbound_window,
            ring_time=ring_time,
            talk_time=talk_time,
        )
        self.store, self._flows = store, flows
        for endpoint, handler in store.handlers().items():
            self.add_handler(endpoint, handler)
        self.add_handler("call/dial", flows.dial)
        self.add_handler("call/accept_inbound", flows.accept_inbound)
        self.add_handler("call/refuse_inbound", flows.refuse_inbound)
        self.add_handler("call/hangup", flows.hangup)
        self.add_handler("call/query", flows.query)
        for action in (
            "listen",
            "hold",
            "unhold",
            "mute",
            "unmute",
            "park",
            "transfer",
            "add_member",
            "record_start",
            "record_pause",
            "record_unpause",
        ):
            spec = self.catalog.endpoints[f"call/{action}"]
            self.add_handler(spec.name, flows.channel_action(_example_of(spec)))

    @property
    def flows(self) -> CallFlows:
        """The call-flow engine (raises with ``stores=False``, where calls are not simulated)."""
        if self._flows is None:
            raise RuntimeError("scripted calls need FakePBX(stores=True)")
        return self._flows

    @property
    def calls(self) -> dict[str, FakeCall]:
        """Every scripted call by call id (live and ended)."""
        return self.flows.calls

    def simulate_inbound_call(
        self,
        caller: str = "5503301",
        *,
        trunk: str = "peer-to-41",
        did: str = "",
        callee: str | None = None,
        monitored: bool = True,
        answer: bool = True,
        ring_time: float | None = None,
        talk_time: float | EllipsisType | None = ...,
    ) -> FakeCall:
        """Start an external call arriving on ``trunk``; returns its :class:`FakeCall`.

        On a ``monitored`` trunk (inbound call control on) the PBX emits 30016 and waits
        ``inbound_window`` seconds for ``call/accept_inbound`` / ``call/refuse_inbound`` with
        the inbound ``channel_id`` (``call.channel_id``); ``await call.outcome()`` gives
        ``"accepted"``, ``"refused"`` or ``"timeout"``. Unless refused, the call then rings
        ``callee`` (default: ``did`` when it is an extension number, else 2000): 30011
        states, and the 30012 CDR at the end (``await call.finished()``). ``answer=False``
        lets it ring out; ``ring_time`` / ``talk_time`` override the fake's timing for this
        call (``talk_time=None``: until hung up).
        """
        if callee is None:
            callee = did if did and self.flows.is_extension(did) else "2000"
        return self.flows.start_inbound(
            caller=caller,
            callee=callee,
            trunk=trunk,
            did=did,
            monitored=monitored,
            answer=answer,
            ring_time=ring_time,
            talk_time=talk_time,
        )

    def simulate_dial(
        self,
        caller: str,
        callee: str,
        *,
        answer: bool = True,
        ring_time: float | None = None,
        talk_time: float | EllipsisType | None = ...,
    ) -> FakeCall:
        """Start a call as ``call/dial`` would (without a request); returns its :class:`FakeCall`.

        30011 caller ALERT + callee RING, ANSWERED / ANSWER, BYE, then the 30012 CDR. A callee
        that is not an extension of the fake gets an outbound trunk leg.
        """
        return self.flows.start_dial(
            caller=caller, callee=callee, answer=answer, ring_time=ring_time, talk_time=talk_time
        )

    async def simulate_dtmf(self, call: FakeCall | str, digits: str) -> int:
        """Emit 30017 for each digit pressed during ``call`` (a FakeCall or a call id)."""
        target = call if isinstance(call, FakeCall) else self.calls[call]
        return await self.flows.dtmf(target, digits)

    async def set_presence(self, extension: str, status: str) -> int:
        """Change an extension's presence (as its user would) and emit 30009.

        Returns how many sockets got the event. Raises ``KeyError`` for an unknown number.
        """
        store = self.flows.stores
        item = store.extension_by_number(extension)
        if item is None:
            raise KeyError(f"no extension {extension!r} on the fake")
        item["presence_status"] = status
        return await self.emit(30009, {"extension": str(extension), "status": status})

    # -- request handling ----------------------------------------------------------------------
    async def _record(self, request: web.Request, endpoint: str) -> RequestRecord:
        body = await request.read()
        parsed: Any = None
        if body:
            try:
                parsed = json.loads(body)
            except ValueError:
                parsed = None
        record = RequestRecord(
            method=request.method,
            path=request.path,
            endpoint=endpoint,
            query={k: request.query.getone(k) for k in request.query},
            json=parsed,
            body=body,
            headers={k: v for k, v in request.headers.items()},
            remote=request.remote or "",
        )
        self.requests.append(record)
        self._notify()
        return record

    def _answer(self, record: RequestRecord, body: dict[str, Any]) -> web.Response:
        record.errcode = body.get("errcode") if isinstance(body.get("errcode"), int) else None
        record.status = 200
        return web.Response(
            text=json.dumps(body, ensure_ascii=False), content_type="application/json"
        )

    def _error(self, record: RequestRecord, errcode: int, **extra: Any) -> web.Response:
        return self._answer(
            record, {"errcode": errcode, "errmsg": self.catalog.errmsg(errcode), **extra}
        )

    def _finish(self, response: web.StreamResponse) -> web.StreamResponse:
        if not self.keep_alive and not isinstance(response, web.WebSocketResponse):
            response.force_close()  # the PBX closes TCP after each response
        return response

    async def _take_fault(self, record: RequestRecord) -> web.Response | None:
        for fault in self._faults:
            if fault.remaining > 0 and fault.matches(record):
                fault.remaining -= 1
                if fault.remaining <= 0:
                    self._faults.remove(fault)
                if fault.delay is not None or fault.release is not None:
                    # Closing sets _closing, so a held request never delays shutdown.
                    waits = [asyncio.ensure_future(self._closing.wait())]
                    if fault.release is not None:
                        waits.append(asyncio.ensure_future(fault.release.wait()))
                    try:
                        await asyncio.wait(
                            waits, timeout=fault.delay, return_when=asyncio.FIRST_COMPLETED
                        )
                    finally:
                        for wait in waits:
                            wait.cancel()
                    return None
                if fault.body is not None:
                    return self._answer(record, dict(fault.body))
                record.status = fault.status
                return web.Response(
                    status=fault.status,
                    text=f"<html><body>{fault.status} error (FakePBX fault)</body></html>",
                    content_type="text/html",
                )
        return None

    async def _handle_api(self, request: web.Request, version: str = "1.0") -> web.StreamResponse:
        record = await self._record(request, request.match_info["endpoint"].strip("/"))
        record.api_version = version
        try:
            return self._finish(await self._dispatch(request, record))
        finally:
            self._notify()

    async def _handle_api_v2(self, request: web.Request) -> web.StreamResponse:
        return await self._handle_api(request, "2.0")

    async def _dispatch(self, request: web.Request, record: RequestRecord) -> web.StreamResponse:
        fault = await self._take_fault(record)
        if fault is not None:
            return fault
        if (
            record.endpoint == "subscribe"
            and request.method == "GET"
            and record.api_version == "1.0"
        ):
            return await self._ws.handle(request, record)
        if self._guard.is_blocked(record.remote):
            return self._error(record, 70004)
        if record.method == "POST" and record.body.strip() and record.json is None:
            return self._error(record, 40001)  # a body that is not JSON
        # v2.0 endpoints are keyed "v2.0/<name>" among the handlers and overrides.
        v1 = record.api_version == "1.0"
        endpoint = record.endpoint if v1 else f"v2.0/{record.endpoint}"
        table = self.catalog.endpoints if v1 else self.catalog.endpoints_v2
        spec = table.get(record.endpoint)
        if spec is not None and not self._serves(spec, record.api_version):
            spec = None
        overridden = endpoint in self._overrides
        if not overridden and (spec is None or spec.method != record.method):
            return self._error(record, 10001)
        if spec is not None and not spec.auth and not overridden:
            return self._auth_endpoint(record)
        # The login endpoints take no access token, overridden or not.
        token_free = spec is not None and not spec.auth
        if not token_free and not self._tokens.access_live(record.access_token):
            self.stats.token_rejections += 1
            return self._error(record, 10004)
        if overridden:
            return self._answer(record, await _call(self._overrides[endpoint], record))
        assert spec is not None
        if endpoint == "del_token":
            self._tokens.revoke(record.access_token or "")
            self.stats.revocations += 1
            return self._answer(record, spec.example())
        missing = self._missing(spec, record)
        if missing:
            invalid = [{"field": name, "validation_type": "required"} for name in missing]
            return self._error(record, 40002, invalid_param_list=invalid)
        handler = self._handlers.get(endpoint)
        if handler is not None:
            return self._answer(record, await _call(handler, record))
        if spec.download:
            return self._answer(record, self._download_answer(spec, record))
        return self._answer(record, _paged(spec, record, spec.example(record.params)))

    @staticmethod
    def _missing(spec: EndpointSpec, record: RequestRecord) -> list[str]:
        given = record.params
        return [p for p in spec.required if given.get(p) in (None, "", [])]

    # -- auth endpoints ------------------------------------------------------------------------
    def _auth_endpoint(self, record: RequestRecord) -> web.Response:
        body = record.json if isinstance(record.json, dict) else {}
        if record.endpoint == "get_token":
            return self._get_token(record, body)
        return self._refresh_token(record, body)

    def _count_issue(self) -> None:
        self.stats.renewal_revocations += self._tokens.revoked_by_renewal
        self._tokens.revoked_by_renewal = 0
        self.stats.max_live_tokens = max(self.stats.max_live_tokens, self.live_tokens())

    def _token_body(self, access: str, refresh: str) -> dict[str, Any]:
        return {
            "errcode": 0,
            "errmsg": "SUCCESS",
            "access_token_expire_time": _number(self._tokens.access_ttl),
            "access_token": access,
            "refresh_token_expire_time": _number(self._tokens.refresh_ttl),
            "refresh_token": refresh,
        }

    def _get_token(self, record: RequestRecord, body: dict[str, Any]) -> web.Response:
        self.stats.login_attempts += 1
        good = body.get("username") == self.client_id and body.get("password") == (
            self.client_secret
        )
        if not good:
            self.stats.logins_failed += 1
            self._guard.failed(record.remote)
            invalid = [{"field": "username or password", "value": "error"}]
            return self._error(record, -1, invalid_param_list=invalid)
        self._guard.succeeded(record.remote)
        if self.live_tokens() >= self.max_tokens:
            self.stats.logins_capped += 1
            return self._error(record, 60002)
        pair = self._tokens.issue()
        self._count_issue()
        self.stats.logins_succeeded += 1
        return self._answer(record, self._token_body(pair.access_token, pair.refresh_token))

    def _refresh_token(self, record: RequestRecord, body: dict[str, Any]) -> web.Response:
        token = body.get("refresh_token")
        if not isinstance(token, str) or not token:
            invalid = [{"field": "refresh_token", "validation_type": "required"}]
            return self._error(record, 40002, invalid_param_list=invalid)
        pair = self._tokens.refresh(token)
        if pair is None:
            # The manual does not say what a dead refresh token gets; 10004 is the PBX's
            # "token expired" code, and clients fall back to get_token on it.
            self.stats.refresh_failures += 1
            return self._error(record, 10004)
        self.stats.refreshes += 1
        self._count_issue()
        return self._answer(record, self._token_body(pair.access_token, pair.refresh_token))

    # -- downloads -------------------------------------------------------------------------------
    def _download_answer(self, spec: EndpointSpec, record: RequestRecord) -> dict[str, Any]:
        name = self._download_names.get(spec.name)
        wanted = record.params.get("file")
        if spec.name == "recording/download" and isinstance(wanted, str) and wanted:
            name = wanted
        elif spec.name == "recording/download" and name is None:
            # By id: the file `recording/list` shows for that id (it lists it, so it is there).
            name = self._listed_recording(record.params.get("id"))
            if name is not None:
                self._files.setdefault(name, _placeholder(name))
        if name is None:
            body = spec.example(record.params)
            url = str(body.get("download_resource_url", ""))
            if url.startswith(DOWNLOAD_PREFIX):
                self._files.setdefault(url[len(DOWNLOAD_PREFIX) :], _placeholder(url))
            return body
        return {
            "errcode": 0,
            "errmsg": "SUCCESS",
            "file": name,
            "download_resource_url": DOWNLOAD_PREFIX + name,
        }

    def _listed_recording(self, wanted: object) -> str | None:
        """The ``file`` of recording ``wanted`` (an id) in ``recording/list``, if it is listed."""
        if wanted is None:
            return None
        listed = self.catalog.endpoints["recording/list"].example().get("data") or []
        for item in listed:
            if isinstance(item, dict) and str(item.get("id")) == str(wanted) and item.get("file"):
                return str(item["file"])
        return None

    async def _handle_download(self, request: web.Request) -> web.StreamResponse:
        record = await self._record(request, request.path)
        try:
            return self._finish(await self._serve_file(record, request.match_info["name"]))
        finally:
            self._notify()

    async def _serve_file(self, record: RequestRecord, name: str) -> web.StreamResponse:
        fault = await self._take_fault(record)
        if fault is not None:
            return fault
        if self._guard.is_blocked(record.remote):
            return self._error(record, 70004)
        if record.method != "GET":
            return self._error(record, 10001)
        # The PBX answers HTTP 200 with a JSON error body where a file was expected.
        if not self._tokens.access_live(record.access_token):
            self.stats.token_rejections += 1
            return self._error(record, 10004)
        data = self._files.get(name)
        if data is None:
            return self._error(record, 60001)
        record.status = 200
        suffix = name.rsplit(".", 1)[-1].lower()
        ctype = _CONTENT_TYPES.get(suffix) or mimetypes.guess_type(name)[0]
        return web.Response(
            body=data,
            content_type=ctype or "application/octet-stream",
            headers={"Content-Disposition": f"attachment; filename*=UTF-8''{quote(name)}"},
        )


# Fixed types for what a PBX serves, so the answer does not depend on the host's mime.types.
_CONTENT_TYPES = {"wav": "audio/wav", "mp3": "audio/mpeg", "gsm": "audio/gsm", "csv": "text/csv"}


def _paged(spec: EndpointSpec, record: RequestRecord, body: dict[str, Any]) -> dict[str, Any]:
    """Serve the items of a list endpoint's example page by page.

    The example's list is taken as the first items of the whole list: ``page`` and
    ``page_size`` select a slice of it (without ``page_size``, the example is page 1), so a
    client walking pages gets each example item once, then an empty page, never the same page
    again. ``total_number`` stays as printed (the manual's examples often show more than they
    list).
    """
    if "page" not in spec.params:
        return body
    params = record.params
    page = max(_positive(params.get("page")) or 1, 1)
    size = _positive(params.get("page_size"))
    for key, value in body.items():
        if isinstance(value, list):
            step = size or max(len(value), 1)
            body[key] = value[(page - 1) * step : page * step]
    return body


def _positive(value: Any) -> int | None:
    try:
        number = int(str(value).strip())
    except ValueError:
        return None
    return number if number > 0 else None


def _example_of(spec: EndpointSpec) -> Callable[[RequestRecord], dict[str, Any]]:
    return lambda record: spec.example(record.params)


def _placeholder(url: str) -> bytes:
    if url.endswith(".csv"):
        return b"Time,Call From,Call To,Call Duration,Talk Duration,Status\r\n"
    return b"RIFF\x24\x00\x00\x00WAVEfmt "  # the first bytes of a WAV file


async def _call(handler: dict[str, Any] | Handler, record: RequestRecord) -> dict[str, Any]:
    if isinstance(handler, dict):
        return dict(handler)
    result: Any = handler(record)
    if inspect.isawaitable(result):
        result = await result
    if not isinstance(result, dict):
        raise TypeError(f"a FakePBX handler must return a dict, not {type(result).__name__}")
    return result
