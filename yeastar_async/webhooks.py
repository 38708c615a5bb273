"""Receive the PBX's events by webhook, on the same decoding and dispatch as the WebSocket.

From firmware 83.20.0.21 (Software), 37.20.0.21 (Appliance) and 84.20.0.21 (Cloud) the PBX can
push events by HTTP GET or POST to up to 5 URLs (vendor page "Monitor Events via Webhook",
e.g. https://help.yeastar.com/en/p-series-cloud-edition/developer-guide/monitor-events-via-webhook.html).
Each request carries ``X-Signature`` = Base64(HMAC-SHA256(secret, raw body)), the secret being
the 32 characters the PBX generated for that URL; the PBX waits ``webhook_event_push_timeout``
(3–10 s) for a 2xx answer and retries ``webhook_event_push_retry_count`` (1–5) times.

:class:`WebhookReceiver` answers those requests:

* the signature is checked in constant time (:func:`verify_signature`) before the body is
  parsed; a bad or missing one answers 401, dispatches nothing, is counted and logged at most
  once per burst;
* a body over ``max_body`` answers 413 (a too large ``Content-Length`` before a byte of the body
  is read), a body that does not arrive within ``read_timeout`` 408, one that is no event
  envelope 400;
* the body is decoded by :func:`yeastar_async.events.decode`, the WebSocket's decoder, and the
  event goes to the same handlers and subscriptions (``pbx.on(...)``, ``pbx.subscribe()``), in
  order, through :meth:`~yeastar_async.events.EventStream.deliver`. The request is answered as
  soon as the event is queued: handlers never hold the PBX's request (a full queue answers 503,
  and the PBX retries);
* a delivery whose body was already accepted within ``replay_window`` seconds (a retry after a
  lost answer, or a replay) is answered 200 and not dispatched again; the memory of bodies is
  bounded (``replay_cache`` digests).

The receiver takes its topics off the WebSocket (``topics``: every topic by default), so a client
may run both: the socket carries the other topics and no event is handled twice.
The body format of a webhook request is not documented by the vendor; it is taken to be the
WebSocket's envelope ``{"type", "sn", "msg"}`` (``msg`` an object or a JSON string alike), also
for GET requests, whose body is read the same way.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import hashlib
import hmac
import logging
import math
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Final, TypeVar

from aiohttp import web

from yeastar_async.errors import EventDecodeError, YeastarError
from yeastar_async.events import EventStream, StreamOptions, UnknownEvent, decode, topic_of
from yeastar_async.events._decode import load_helpers
from yeastar_async.events._sizing import charge
from yeastar_async.events._stream import _Throttle

if TYPE_CHECKING:
    import ssl

    from yeastar_async.client import YeastarClient

__all__ = [
    "SIGNATURE_HEADER",
    "WebhookReceiver",
    "WebhookStats",
    "sign",
    "verify_signature",
]

logger = logging.getLogger("yeastar_async.webhooks")

#: The request header that carries the signature.
SIGNATURE_HEADER: Final = "X-Signature"
_CHUNK: Final = 64 * 1024
_H = TypeVar("_H", bound=Callable[..., Awaitable[Any]])


def _key(secret: str | bytes) -> bytes:
    if isinstance(secret, str):
        secret = secret.encode("utf-8")
    if not isinstance(secret, bytes) or not secret:
        raise ValueError("the webhook secret must be a non-empty str or bytes")
    return secret


def sign(secret: str | bytes, body: bytes) -> str:
    """The ``X-Signature`` value of ``body``: Base64(HMAC-SHA256(secret, body))."""
    digest = hmac.new(_key(secret), body, hashlib.sha256).digest()
    return base64.b64encode(digest).decode("ascii")


def verify_signature(secret: str | bytes, body: bytes, signature: str | bytes | None) -> bool:
    """Whether ``signature`` is the ``X-Signature`` of ``body`` under ``secret``.

    The comparison takes the same time wherever the two differ (:func:`hmac.compare_digest` on
    the raw digests); a missing, non-Base64 or wrong-length signature is simply False.
    """
    if not signature:
        return False
    try:
        given = base64.b64decode(signature, validate=True)
    except (binascii.Error, ValueError):
        return False
    expected = hmac.new(_key(secret), body, hashlib.sha256).digest()
    return hmac.compare_digest(given, expected)


@dataclass(slots=True)
class WebhookStats:
    """Counters of one :class:`WebhookReceiver` (a snapshot: read ``stats`` again)."""

    requests: int = 0
    """Requests received on the receiver's path."""
    dispatched: int = 0
    """Events queued for the handlers and subscriptions."""
    bad_signatures: int = 0
    """Requests answered 401: ``X-Signature`` missing or wrong."""
    oversized: int = 0
    """Requests answered 413: body over ``max_body``."""
    timeouts: int = 0
    """Requests answered 408: the body did not arrive within ``read_timeout``."""
    malformed: int = 0
    """Requests answered 400: a signed body that is no event envelope."""
    replayed: int = 0
    """Bodies seen within ``replay_window``: answered 200, not dispatched again."""
    ignored: int = 0
    """Events of topics this receiver does not deliver (answered 200, not dispatched)."""
    unknown_events: int = 0
    """Events decoded as :class:`~yeastar_async.events.UnknownEvent` (dispatched as the stream
    does: to the handlers of a topic that has no class)."""
    busy: int = 0
    """Requests answered 503 because the receiver's queue was full (the PBX retries)."""


class _NoPBX:
    """Token source and endpoint of a receiver's own stream: it never opens a socket."""

    user_agent = "OpenAPI"

    async def token(self) -> str:
        raise YeastarError("this event stream only carries webhook events: no PBX login")

    async def expired(self, token: str) -> None:
        return None

    def ws_url(self, token: str) -> str:
        raise YeastarError("this event stream only carries webhook events: no WebSocket")

    def ws_ssl(self) -> ssl.SSLContext | None:
        return None

    def check_peer(self, ssl_object: ssl.SSLObject | None) -> None:
        return None

    def redact(self, text: str) -> str:
        return text


class _Refused(Exception):
    """A request answered with ``status`` (and counted under ``counter``)."""

    def __init__(self, status: int, counter: str, text: str) -> None:
        super().__init__(text)
        self.status = status
        self.counter = counter
        self.text = text


def _positive(name: str, value: object, *, allow_zero: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value):
        raise ValueError(f"{name} must be a number, got {value!r}")
    if value < 0 or (value == 0 and not allow_zero) or math.isinf(value):
        low = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"{name} must be {low} and finite, got {value!r}")
    return float(value)


def _count(name: str, value: object, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
    return value


class WebhookReceiver:
    """Receives the PBX's webhook deliveries and dispatches them like the WebSocket's events.

    Args:
        target: the :class:`~yeastar_async.YeastarClient` (or its
            :class:`~yeastar_async.events.EventStream`) whose handlers and subscriptions get
            the events. ``None`` gives the receiver a stream of its own that never logs in:
            register handlers with :meth:`on`.
        secret: the webhook's secret (as ``webhook/query`` or the PBX's web page shows it).
        topics: the topics this receiver delivers (event classes or numbers): they are taken
            off the WebSocket while the receiver runs, and deliveries of other topics are
            answered 200 and dropped. ``None`` (default): every topic (a client then opens no
            WebSocket at all unless a route is handed back).
        path: the URL path the PBX posts to (default ``/``).
        max_body: largest accepted body, in bytes (default 1 MiB).
        read_timeout: seconds a request body may take to arrive (default 5: under the PBX's
            own timeout, so a trickling client never holds the receiver for long).
        replay_window: seconds an accepted body is remembered, so a second delivery of it is
            not dispatched again (default 60 s: the PBX's longest retry horizon, 10 s × (5 + 1)).
            Identical bodies within it count as one delivery; 0 disables the check.
        replay_cache: most bodies remembered at once (default 10,000; oldest forgotten first).
        queue_size: deliveries queued before the receiver answers 503 (beyond the stream's
            own handler queue, ``event_queue_size``; a receiver without ``target`` uses this
            size for both).

    Use it as ``async with WebhookReceiver(...) as rx:`` around :meth:`serve` (or mount
    :meth:`handle` in an aiohttp application of your own, with the receiver started).
    Invalid options raise ValueError naming the value (never the secret).
    """

    def __init__(
        self,
        target: YeastarClient | EventStream | None = None,
        *,
        secret: str | bytes,
        topics: Iterable[int | type] | None = None,
        path: str = "/",
        max_body: int = 1024 * 1024,
        read_timeout: float = 5.0,
        replay_window: float = 60.0,
        replay_cache: int = 10_000,
        queue_size: int = 1024,
    ) -> None:
        self._key = _key(secret)
        if not isinstance(path, str) or not path.startswith("/"):
            raise ValueError(f"path must start with '/', got {path!r}")
        self.path = path
        self.max_body = _count("max_body", max_body, 1)
        self.read_timeout = _positive("read_timeout", read_timeout)
        self.replay_window = _positive("replay_window", replay_window, allow_zero=True)
        self.replay_cache = _count("replay_cache", replay_cache, 1)
        self._queue_size = _count("queue_size", queue_size, 1)
        self.topics: frozenset[int] | None = None
        if topics is not None:
            numbers = set()
            for item in topics:
                topic = topic_of(item)
                if topic is None:
                    raise ValueError(f"{item!r} is a local event: the PBX never pushes it")
                numbers.add(topic)
            if not numbers:
                raise ValueError("topics must name at least one topic (or be None: every topic)")
            self.topics = frozenset(numbers)
        self._stream = self._stream_of(target, self._queue_size)
        # A stream of our own has no socket: it takes every topic whatever ours are.
        self._claim = None if target is None else self.topics
        self._stats = WebhookStats()
        self._seen: OrderedDict[bytes, float] = OrderedDict()
        self._throttle = _Throttle()
        self._queue: asyncio.Queue[tuple[Any, int]] | None = None
        self._tasks: list[asyncio.Task[Any]] = []
        self._release: Callable[[], None] | None = None
        self.url: str | None = None

    @staticmethod
    def _stream_of(target: object, queue_size: int) -> EventStream:
        if target is None:
            none = _NoPBX()
            return EventStream(none, none, StreamOptions(queue_size=queue_size))
        if isinstance(target, EventStream):
            return target
        stream = getattr(target, "_stream", None)  # a YeastarClient
        if isinstance(stream, EventStream):
            return stream
        raise TypeError(f"target must be a YeastarClient, an EventStream or None, got {target!r}")

    def __repr__(self) -> str:
        topics = "all" if self.topics is None else sorted(self.topics)
        state = "running" if self._queue is not None else "stopped"
        return f"<WebhookReceiver path={self.path!r} topics={topics} {state}>"

    # -- registration -----------------------------------------------------------------------

    @property
    def stream(self) -> EventStream:
        """The event stream the receiver feeds (the client's, or its own)."""
        return self._stream

    def on(self, target: int | type) -> Callable[[_H], _H]:
        """Decorator registering an async handler on :attr:`stream` (as ``pbx.on``)."""
        return self._stream.decorator(target)

    @property
    def stats(self) -> WebhookStats:
        """A snapshot of the counters."""
        return replace(self._stats)

    # -- lifecycle --------------------------------------------------------------------------

    async def start(self) -> None:
        """Take the topics off the WebSocket and run the dispatch (idempotent).

        Raises :class:`~yeastar_async.errors.TransportError` (its ``OutOfFileDescriptorsError``)
        when the process has no file descriptor left to load the decoder's helpers with."""
        if self._queue is not None:
            return
        # Now, not at the first odd delivery: out of descriptors then, it would answer 500.
        load_helpers()
        self._release = self._stream.route_elsewhere(self._claim)
        self._queue = asyncio.Queue(self._queue_size)
        self._tasks = [
            asyncio.create_task(self._run_stream(), name="yeastar-webhook-stream"),
            asyncio.create_task(self._forward(self._queue), name="yeastar-webhook-forward"),
        ]

    async def aclose(self) -> None:
        """Stop dispatching (queued deliveries are handed on first) and give the topics back
        to the WebSocket. Idempotent."""
        queue, self._queue = self._queue, None
        if queue is None:
            return
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self._stream.options.shutdown_timeout):
                await queue.join()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        if self._release is not None:
            self._release()
            self._release = None

    async def __aenter__(self) -> WebhookReceiver:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def _run_stream(self) -> None:
        # The stream's engine runs the handlers; with every topic claimed it opens no socket.
        try:
            await self._stream.listen()
        except YeastarError as exc:
            logger.error("webhook: the event stream stopped (%s); handlers get no events", exc)

    async def _forward(self, queue: asyncio.Queue[tuple[Any, int]]) -> None:
        while True:
            event, size = await queue.get()
            try:
                await self._stream.deliver(event, size)
            finally:
                queue.task_done()

    # -- serving ----------------------------------------------------------------------------

    def app(self) -> web.Application:
        """An aiohttp application answering on :attr:`path` (GET and POST) that starts and
        stops the receiver with itself."""
        app = web.Application()
        app.router.add_route("GET", self.path, self.handle)
        app.router.add_route("POST", self.path, self.handle)

        async def lifecycle(_: web.Application) -> AsyncIterator[None]:
            await self.start()
            yield
            await self.aclose()

        app.cleanup_ctx.append(lifecycle)
        return app

    @contextlib.asynccontextmanager
    async def serve(self, host: str = "127.0.0.1", port: int = 0) -> AsyncIterator[str]:
        """Listen on ``host``:``port`` (0: a free port) while the block runs; yields the URL
        to register with the PBX (``pbx.webhook.update``), also kept in :attr:`url`."""
        # access_log=None: request lines are nobody's business (and a GET may carry data).
        runner = web.AppRunner(self.app(), access_log=None, handle_signals=False)
        await runner.setup()
        try:
            site = web.TCPSite(runner, host, port)
            await site.start()
            bound = runner.addresses[0]
            # An IPv6 address goes in brackets, or its colons read as the port's.
            address = f"[{bound[0]}]" if ":" in bound[0] else bound[0]
            self.url = f"http://{address}:{bound[1]}{self.path}"
            yield self.url
        finally:
            self.url = None
            await runner.cleanup()

    # -- one delivery -----------------------------------------------------------------------

    async def handle(self, request: web.Request) -> web.Response:
        """The aiohttp handler of one delivery (start the receiver first)."""
        self._stats.requests += 1
        try:
            return await self._handle(request)
        except _Refused as refused:
            setattr(self._stats, refused.counter, getattr(self._stats, refused.counter) + 1)
            return web.Response(status=refused.status, text=refused.text)

    async def _handle(self, request: web.Request) -> web.Response:
        queue = self._queue
        if queue is None:
            raise _Refused(503, "busy", "receiver not running")
        length = request.content_length
        if length is not None and length > self.max_body:
            # Refused before reading: aiohttp then closes the connection with the body unread.
            raise _Refused(413, "oversized", f"body over {self.max_body} bytes")
        body = await self._read(request)
        if not verify_signature(self._key, body, request.headers.get(SIGNATURE_HEADER)):
            level, more = self._throttle.level()
            logger.log(
                level,
                "webhook: refused a delivery from %s: %s missing or wrong%s",
                request.remote,
                SIGNATURE_HEADER,
                more,
            )
            raise _Refused(401, "bad_signatures", "bad signature")
        digest = hashlib.sha256(body).digest()
        if self._seen_recently(digest):
            self._stats.replayed += 1
            return web.Response(text="OK (already received)")
        try:
            event = decode(body.decode("utf-8"))
        except (EventDecodeError, UnicodeDecodeError):
            raise _Refused(400, "malformed", "not an event") from None
        if self.topics is not None and event.type not in self.topics:
            self._stats.ignored += 1
            return web.Response(text="OK (topic not delivered here)")
        try:
            queue.put_nowait((event, charge(body)))
        except asyncio.QueueFull:
            # Not remembered: the PBX's retry of this body must be taken.
            raise _Refused(503, "busy", "busy, retry later") from None
        self._remember(digest)
        self._stats.dispatched += 1
        if type(event) is UnknownEvent:
            self._stats.unknown_events += 1
        return web.Response(text="OK")

    async def _read(self, request: web.Request) -> bytes:
        chunks: list[bytes] = []
        size = 0
        try:
            async with asyncio.timeout(self.read_timeout):
                while chunk := await request.content.read(_CHUNK):
                    size += len(chunk)
                    if size > self.max_body:  # a chunked body: counted as it arrives
                        raise _Refused(413, "oversized", f"body over {self.max_body} bytes")
                    chunks.append(chunk)
        except TimeoutError:
            raise _Refused(408, "timeouts", "body too slow") from None
        return b"".join(chunks)

    def _seen_recently(self, digest: bytes) -> bool:
        if not self.replay_window:
            return False
        now = time.monotonic()
        seen = self._seen
        while seen:  # forget what left the window (oldest first)
            oldest, at = next(iter(seen.items()))
            if now - at < self.replay_window:
                break
            del seen[oldest]
        return digest in seen

    def _remember(self, digest: bytes) -> None:
        if not self.replay_window:
            return
        self._seen[digest] = time.monotonic()
        self._seen.move_to_end(digest)
        while len(self._seen) > self.replay_cache:
            self._seen.popitem(last=False)
