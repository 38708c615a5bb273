"""The supervised WebSocket event stream: connect, subscribe, keep alive, reconnect, dispatch.

One :class:`EventStream` holds at most one WebSocket to the PBX. It runs while someone wants
events, i.e. while :meth:`EventStream.listen` runs or a :meth:`EventStream.subscribe` block is
open, and until :meth:`EventStream.aclose`.

Each connection attempt is a loop iteration of our own (not ``async for ws in connect(...)``,
whose built-in backoff restarts after every handshake and whose URL cannot take a refreshed
token):

1. get a fresh access token from the token source;
2. open ``ws(s)://host/openapi/v1.0/subscribe?access_token=...`` with the REST TLS options and
   User-Agent, and check the certificate pin;
3. send ``{"topic_list": [...]}`` with the union of the handlers' and subscriptions' topics and
   require the ``{"errcode":0,"errmsg":"SUCCESS"}`` ack within ``heartbeat_timeout``;
4. while connected, send ``heartbeat`` every ``heartbeat_interval`` and require proof of life
   (any frame: ``heartbeat response``, an event, an ack) within ``heartbeat_timeout`` of each;
   a ``{"errcode":10004}`` frame means the token died: report it and reconnect.

Before the link's token is due (twice the refresh margin before its expiry), a token source
that can rotate (:class:`RotatingTokenSource`, the client's token manager) hands it a new
token: a second link opens with it, subscribes and, once acknowledged, the old link is closed
(make-before-break); the old link's event frames since the new one opened and the new link's
first frames are aligned (``_overlap``) so that each is delivered once, then the old token is
revoked. When the old link dies first (a PBX that revokes the old token at once), that is a
gap like any other, reported by ``Disconnected`` / ``Connected``.

After every gap (and on the first connect of ``listen(since=...)``), with CDR recovery on
(:mod:`._recovery`), the ``Connected`` event waits for a REST search of the gap's CDRs and is
followed by those not delivered yet, as ``CdrRecovered``, before any live event of the link.

Failed or lost links are retried after a full-jitter exponential backoff that is reset only
after a link stayed up for ``healthy_after`` seconds, so a PBX that accepts and then drops
every connection (or answers 503) is never hammered; after a token renewal that succeeded the
next attempt goes at once. Failures no reconnect can fix stop the stream and are raised out of
:meth:`EventStream.listen`: credential failures
(:class:`~yeastar_async.errors.AuthenticationError`, its
:class:`~yeastar_async.errors.LockoutGuardError`, :class:`~yeastar_async.errors.IPBlockedError`),
a subscribe the PBX refuses for good (10005 ACCESS DENIED and the like, see ``_PERMANENT``),
and a redirect answered to the upgrade (:class:`~yeastar_async.errors.TransportError`: never
followed, since the upgrade carries the token).

The token travels in the URL: it never appears in a log record (the websockets library logs
the request line at DEBUG; it gets a logger that masks it) nor in a ``Disconnected`` reason.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import random
import ssl
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import (
    TYPE_CHECKING,
    Any,
    Final,
    Protocol,
    TypeVar,
    cast,
    overload,
    runtime_checkable,
)

import msgspec

if TYPE_CHECKING:
    # websockets.asyncio.client and .exceptions cost about as much to import as the rest of
    # the package: they are imported where a link is opened or read, not at `import`.
    from websockets.asyncio.client import ClientConnection
    from websockets.exceptions import ConnectionClosed

from yeastar_async._backoff import Backoff, RandomSource
from yeastar_async._fds import OutOfFileDescriptorsError, imported, out_of_fds
from yeastar_async._fds import report as report_out_of_fds
from yeastar_async._tls import checked_connection
from yeastar_async.errors import (
    AccessDeniedError,
    ApiUnavailableError,
    AuthenticationError,
    EventDecodeError,
    IPBlockedError,
    ParameterError,
    PreconditionError,
    TransportError,
    YeastarError,
    error_for,
)
from yeastar_async.events._decode import HELPER_MODULES, decode
from yeastar_async.events._dispatch import (
    OVERFLOW_POLICIES,
    Dispatcher,
    Handler,
    Overflow,
    StreamStats,
    Subscription,
    Target,
    describe,
    handler_name,
)
from yeastar_async.events._pace import turn as pace_turn
from yeastar_async.events._recovery import RECOVERY_TIMEOUT, CdrRecovery, Checkpoint
from yeastar_async.events._sizing import charge
from yeastar_async.events.models import TOPICS, Connected, Disconnected, NewCdr, UnknownEvent

__all__ = ["EventStream", "RotatingTokenSource", "StreamOptions", "TokenSource", "WsEndpoint"]

logger = logging.getLogger("yeastar_async.events")
_ws_logger = logging.getLogger("yeastar_async.events.websocket")

_H = TypeVar("_H", bound=Callable[..., Awaitable[Any]])
_E = TypeVar("_E")

#: Failures no retry can fix: surface them instead of risking the PBX's IP block.
_FATAL: Final = (AuthenticationError, IPBlockedError)
#: Answers to a subscribe message that reconnecting cannot fix, by the class the error catalog
#: gives their code (spec/p_series_errors.json): 10005 ACCESS DENIED and 70084 ACTION FORBIDDEN
#: (the API account's rights), 10001-10003 and 70123 (the API or its version is off), 40001 /
#: 40002 (the PBX refuses this topic list: sending it again gets the same answer), 70106 /
#: 70120 / 70132 (a feature that is off). Every other code (-2 INTERNAL SERVER ERROR, -1
#: FAILURE, 2 PROCESSING, 60002 MAX LIMITATION EXCEEDED, 70082 OVERLOAD_TASK_RUNNING, codes
#: the manual does not list...) may pass: the stream reconnects with backoff, logging each try.
_PERMANENT: Final = (AccessDeniedError, ApiUnavailableError, ParameterError, PreconditionError)
#: What a link's reader may raise to end the stream (raised out of listen()).
_STOPS: Final = (*_FATAL, *_PERMANENT)
_HEARTBEAT: Final = "heartbeat"
_HEARTBEAT_REPLIES: Final = frozenset({"heartbeat response", b"heartbeat response"})
_REPLY_LEN: Final = len("heartbeat response")
_TOKEN_EXPIRED: Final = 10004
#: Upper bound of the WebSocket opening handshake (TCP + TLS + HTTP upgrade).
_OPEN_TIMEOUT_FLOOR: Final = 10.0
#: The PBX drops a socket after 60 s without a frame from the client.
_PBX_IDLE_LIMIT: Final = 60.0
#: At most one warning per this many seconds about skipped frames (a garbage storm).
_BAD_FRAME_LOG_INTERVAL: Final = 5.0
#: Event frames of the old link remembered during a rotation, to drop them on the new one.
_TAIL_FRAMES: Final = 4096
#: Event classes the reader queues without a further look (not UnknownEvent, not NewCdr).
_PLAIN: Final = frozenset(cls for cls in TOPICS.values() if cls is not NewCdr)
#: The CDR topic: the one topic whose events of a gap can be fetched over REST.
_CDR_TOPIC: Final = NewCdr.TOPIC
#: Attempts of one rotation before the link is left to end with its token.
_ROTATION_ATTEMPTS: Final = 3
#: Upper bound of the REST recovery after a gap (the reader waits for it).
_RECOVERY_TIMEOUT: Final = RECOVERY_TIMEOUT
#: The first heartbeat of a link goes after this fraction of the interval at the earliest.
_FIRST_BEAT_MIN: Final = 0.1
#: Groups the heartbeats of many links fall into, per interval (see ``_Link.keep``).
_BEAT_SLOTS: Final = 10
#: Jitter of the first heartbeat; its own source, so that the backoff's draws stay the backoff's.
_JITTER: RandomSource = random.Random()
#: The reason of an attempt that found no file descriptor for its socket .
_OUT_OF_FDS: Final = "connect failed: out of file descriptors"
#: Smallest accepted ``max_frame_size``: acks, heartbeat replies and small events fit.
MIN_FRAME_SIZE: Final = 1024


# ---------------------------------------------------------------------------------------------
# Interfaces (the token manager and the HTTP transport satisfy them)
# ---------------------------------------------------------------------------------------------


class TokenSource(Protocol):
    """Hands out access tokens (``yeastar_async._auth.TokenManager`` satisfies it)."""

    async def token(self) -> str:
        """A valid access token; logs in or refreshes as needed."""
        ...

    async def expired(self, token: str) -> None:
        """The PBX said 10004 for ``token``: renew it (a no-op if already replaced)."""
        ...


@runtime_checkable
class RotatingTokenSource(TokenSource, Protocol):
    """A token source that can hand a link its successor's token ahead of time
    (``TokenManager`` satisfies it); without one, a link ends with its token."""

    def rotation_due(self, token: str) -> float | None:
        """Seconds until a link bound to ``token`` should move to a new token."""
        ...

    async def rotate(self, old: str) -> str:
        """A new token, leaving ``old`` alive for the link that still uses it."""
        ...

    async def retire(self, token: str) -> None:
        """Revoke ``token``, which no link uses any more (best effort)."""
        ...


class WsEndpoint(Protocol):
    """Where and how to connect (``yeastar_async._http.Transport`` satisfies it)."""

    user_agent: str

    def ws_url(self, token: str) -> str:
        """``ws(s)://host/openapi/v1.0/subscribe?access_token=...``."""
        ...

    def ws_ssl(self) -> ssl.SSLContext | None:
        """The TLS context (the REST options); None for ``ws://``."""
        ...

    def check_peer(self, ssl_object: ssl.SSLObject | None) -> None:
        """Raise TransportError when a configured certificate pin does not match."""
        ...

    def redact(self, text: str) -> str:
        """Mask ``access_token=...`` in ``text``."""
        ...


# ---------------------------------------------------------------------------------------------
# Options
# ---------------------------------------------------------------------------------------------


def _number(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value):
        raise ValueError(f"{name} must be a number of seconds, got {value!r}")
    return float(value)


@dataclass(frozen=True, slots=True)
class StreamOptions:
    """Tuning of the event stream (all times in seconds). Invalid values raise ValueError.

    Attributes:
        heartbeat_interval: send ``heartbeat`` this often (> 0, < 60: the PBX drops a socket
            after 60 s without a frame from the client).
        heartbeat_timeout: how long to wait for proof of life after a heartbeat, and for the
            ack of a subscribe message (> 0, < 60). Either may be the larger of the two.
        reconnect_delay_min: smallest delay before a reconnect attempt (> 0).
        reconnect_delay_max: largest delay before a reconnect attempt (>= the minimum).
        healthy_after: the backoff restarts from the minimum only after a link stayed up this
            long (>= 0), so a PBX that accepts and then drops connections is never hammered.
        queue_size: capacity of the handler queue and of each subscription buffer (>= 1;
            ``event_queue_size`` of :class:`~yeastar_async.YeastarClient`).
        queue_bytes: bytes the handler queue and each subscription buffer may hold (>= 1024;
            ``event_queue_bytes`` of the client; default 16 MiB), each event charged an
            estimate of its decoded size (:mod:`._sizing`). A buffer at either bound is full
            (its ``overflow`` policy applies); an empty one takes any one event. Worst case per
            buffer, decoded, whatever the frames: about 2x ``queue_bytes`` plus one event.
        overflow: what a full queue does: ``"block"`` (the reader waits; nothing is lost),
            ``"drop_newest"`` or ``"drop_oldest"`` (counted in ``stats.drops``, and logged).
        handler_timeout: a handler still running after this long is cancelled and counted as
            a handler error (None: no limit).
        shutdown_timeout: :meth:`EventStream.aclose` finishes within about this long (> 0);
            queued events are still handed to the handlers within it.
        max_frame_size: largest accepted frame, in bytes, at least 1024 (a larger frame
            drops the link and counts in ``stats.malformed_frames``).
    """

    heartbeat_interval: float = 25.0
    heartbeat_timeout: float = 10.0
    reconnect_delay_min: float = 0.5
    reconnect_delay_max: float = 30.0
    healthy_after: float = 30.0
    queue_size: int = 1024
    queue_bytes: int = 16 * 1024 * 1024
    overflow: Overflow = "block"
    handler_timeout: float | None = None
    shutdown_timeout: float = 5.0
    max_frame_size: int = 1024 * 1024

    def __post_init__(self) -> None:
        for name in ("heartbeat_interval", "heartbeat_timeout"):
            value = _number(name, getattr(self, name))
            if not 0 < value < _PBX_IDLE_LIMIT:
                raise ValueError(
                    f"{name} must be > 0 and < 60 seconds (the PBX's idle limit), "
                    f"got {getattr(self, name)!r}"
                )
        low = _number("reconnect_delay_min", self.reconnect_delay_min)
        if not 0 < low < math.inf:
            raise ValueError(f"reconnect_delay_min must be > 0, got {self.reconnect_delay_min!r}")
        high = _number("reconnect_delay_max", self.reconnect_delay_max)
        if not low <= high < math.inf:
            raise ValueError(
                f"reconnect_delay_max must be >= reconnect_delay_min ({self.reconnect_delay_min!r})"
                f", got {self.reconnect_delay_max!r}"
            )
        if not 0 <= _number("healthy_after", self.healthy_after) < math.inf:
            raise ValueError(f"healthy_after must be >= 0, got {self.healthy_after!r}")
        size = self.queue_size
        if isinstance(size, bool) or not isinstance(size, int) or size < 1:
            # Named both ways: YeastarClient takes this option as `event_queue_size`.
            raise ValueError(
                f"event_queue_size (StreamOptions.queue_size) must be an integer >= 1, got {size!r}"
            )
        size = self.queue_bytes
        if isinstance(size, bool) or not isinstance(size, int) or size < MIN_FRAME_SIZE:
            raise ValueError(
                f"event_queue_bytes (StreamOptions.queue_bytes) must be an integer >= "
                f"{MIN_FRAME_SIZE} (bytes), got {size!r}"
            )
        size = self.max_frame_size
        if isinstance(size, bool) or not isinstance(size, int) or size < MIN_FRAME_SIZE:
            # Below this even the subscribe ack or a small event is refused, and the link is
            # replaced over and over.
            raise ValueError(
                f"max_frame_size must be an integer >= {MIN_FRAME_SIZE} (bytes), got {size!r}"
            )
        if self.overflow not in OVERFLOW_POLICIES:
            raise ValueError(
                f"overflow must be one of {', '.join(map(repr, OVERFLOW_POLICIES))}, "
                f"got {self.overflow!r}"
            )
        if self.handler_timeout is not None and not (
            0 < _number("handler_timeout", self.handler_timeout) < math.inf
        ):
            raise ValueError(f"handler_timeout must be > 0 or None, got {self.handler_timeout!r}")
        if not 0 < _number("shutdown_timeout", self.shutdown_timeout) < math.inf:
            raise ValueError(f"shutdown_timeout must be > 0, got {self.shutdown_timeout!r}")


# ---------------------------------------------------------------------------------------------
# Logging without the token
# ---------------------------------------------------------------------------------------------


class _RedactingLogger(logging.LoggerAdapter[logging.Logger]):
    """Formats each record's message and masks the token before it reaches any handler.

    websockets logs ``> GET /openapi/v1.0/subscribe?access_token=... HTTP/1.1`` at DEBUG.
    """

    def __init__(self, target: logging.Logger, redact: Callable[[str], str]) -> None:
        super().__init__(target, {})
        self._redact = redact

    def log(
        self,
        level: int,
        msg: object,
        *args: object,
        exc_info: Any = None,
        stack_info: bool = False,
        stacklevel: int = 1,
        extra: Mapping[str, object] | None = None,
        **kwargs: object,
    ) -> None:
        """Log ``msg % args`` with the token masked."""
        if not self.isEnabledFor(level):
            return
        try:
            text = str(msg) % args if args else str(msg)
        except (TypeError, ValueError):
            text = " ".join(map(str, (msg, *args)))
        self.logger.log(
            level,
            self._redact(text),
            exc_info=exc_info,
            stack_info=stack_info,
            stacklevel=stacklevel,
            extra=extra,
        )


# ---------------------------------------------------------------------------------------------
# One link
# ---------------------------------------------------------------------------------------------


class _LinkLost(Exception):
    """The current link is unusable; ``reason`` is safe to log (no token)."""

    def __init__(self, reason: str, *, token_expired: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.token_expired = token_expired


class _Control(msgspec.Struct):
    """A non-event frame from the PBX: the subscribe ack or an error such as 10004."""

    errcode: int | None = None
    errmsg: str = ""


_CONTROL: Final = msgspec.json.Decoder(_Control, strict=False)


class _Wake:
    """The keeper's wake-up flag, waited on with a deadline.

    Like an ``asyncio.Event`` waited on under ``asyncio.timeout``, without the timeout context
    and the cancellation it throws at every deadline: the keeper waits once or twice per
    heartbeat, on every link, which for a thousand streams is most of their idle CPU.
    """

    __slots__ = ("_fut", "_loop", "_set")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._set = False
        self._fut: asyncio.Future[None] | None = None

    def set(self) -> None:
        """Wake the waiter (or make the next :meth:`wait` return at once)."""
        self._set = True
        fut = self._fut
        if fut is not None and not fut.done():
            fut.set_result(None)

    def clear(self) -> None:
        """Forget a wake-up not yet waited for."""
        self._set = False

    async def wait_until(self, when: float) -> None:
        """Return once :meth:`set` is called, or at the loop time ``when``."""
        if self._set:
            return
        fut = self._fut = self._loop.create_future()
        timer = self._loop.call_at(when, _resolve, fut)
        try:
            await fut
        finally:
            timer.cancel()
            self._fut = None


def _on_grid(when: float, interval: float) -> float:
    """``when`` rounded up to the next of ``_BEAT_SLOTS`` points per ``interval`` of loop time."""
    slot = interval / _BEAT_SLOTS
    return math.ceil(when / slot) * slot


def _resolve(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)


class _Link:
    """State of one open WebSocket: reader, keeper (heartbeats, deadlines), pending acks.

    Deadlines run on an *effective* clock that stops while the reader is held back by a full
    queue: frames (heartbeat replies included) then wait unread in the socket, and the link
    must not be declared dead for what is a local slowdown.
    """

    def __init__(self, stream: EventStream, ws: ClientConnection) -> None:
        self.stream = stream
        self.ws = ws
        self.loop = asyncio.get_running_loop()
        opts = stream.options
        self.interval = opts.heartbeat_interval
        self.timeout = opts.heartbeat_timeout
        self.up_since: float | None = None
        self._held_since: float | None = None
        self._held_total = 0.0
        # Effective time of the oldest heartbeat not yet followed by any received frame.
        self._unproven: float | None = None
        # Sent topic lists waiting for their ack: (effective send time, futures to resolve).
        self._pending: deque[tuple[float, list[asyncio.Future[None]]]] = deque()
        self._waiters: list[asyncio.Future[None]] = []
        self._sent_topics: frozenset[int] = frozenset()
        self._topics_dirty = True
        self._wake = _Wake(self.loop)
        self._send_lock = asyncio.Lock()
        #: A standby link (the successor of a rotation) keeps its event frames here.
        self.backlog: deque[bytes] | None = None
        #: During a rotation, the old link's event frames since the successor opened.
        self.tail: deque[bytes] | None = None
        #: Frames the old link of a rotation delivered that this link has yet to send.
        self.expect: deque[bytes] = deque()
        #: The successor of a rotation, acknowledged: the old link's end is a handover.
        self.successor: _Link | None = None
        self.tasks: list[asyncio.Task[None]] = []
        self.token = ""
        self.token_died = False
        self.lost_reported = False
        #: Rotation state: set once the successor's ack wait is over (either way); whether
        #: this link was still up then; when the rotation began (loop time, wall time).
        self.rotation_settled = asyncio.Event()
        self.clean = False
        self.rotating_since: tuple[float, float] | None = None
        #: Wakes the keeper at the ack or liveness deadline only if that deadline is still open:
        #: a heartbeat answered in time then costs no wake-up of the keeper task.
        self._deadline: asyncio.TimerHandle | None = None

    # -- clock ----------------------------------------------------------------------------

    def _eff_now(self) -> float:
        now = self.loop.time()
        held = self._held_total
        if self._held_since is not None:
            held += now - self._held_since
        return now - held

    @contextlib.contextmanager
    def _held(self) -> Any:
        self._held_since = self.loop.time()
        try:
            yield
        finally:
            self._held_total += self.loop.time() - self._held_since
            self._held_since = None
            self._wake.set()

    # -- requests from the stream ---------------------------------------------------------

    def topics_changed(self) -> None:
        self._topics_dirty = True
        self._wake.set()

    def synced(self) -> asyncio.Future[None]:
        """A future resolved once the PBX acked a topic list holding the current topics."""
        fut: asyncio.Future[None] = self.loop.create_future()
        self._waiters.append(fut)
        self._topics_dirty = True
        self._wake.set()
        return fut

    def teardown(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
        for _, futures in self._pending:
            for fut in futures:
                fut.cancel()
        for fut in self._waiters:
            fut.cancel()
        self._pending.clear()
        self._waiters.clear()

    # -- sending --------------------------------------------------------------------------

    async def _send(self, data: str) -> None:
        from websockets.exceptions import ConnectionClosed

        try:
            # A peer that stopped reading fills the TCP buffer and blocks send(): that is a
            # dead link too.
            async with asyncio.timeout(self.timeout):
                await self.ws.send(data)
        except TimeoutError:
            raise _LinkLost(f"sending timed out after {self.timeout}s") from None
        except ConnectionClosed:
            # The socket is closed, but frames received before the close may still wait in
            # the websockets buffer (the reader is held back by a full queue, or has not run
            # yet): events the PBX sent on a live link. The reader hands them on, then ends
            # the link itself when it meets the close; until then the keeper has nothing to do.
            await self.loop.create_future()
            raise AssertionError("unreachable: the reader ends the link") from None

    async def _sync_topics(self) -> None:
        self._topics_dirty = False
        waiters, self._waiters = self._waiters, []
        topics = self.stream._dispatch.topics
        if topics and topics != self._sent_topics:
            async with self._send_lock:
                self._pending.append((self._eff_now(), waiters))
                self._sent_topics = topics
                payload = msgspec.json.encode({"topic_list": sorted(topics)}).decode()
                logger.debug("event stream: subscribing to %s", payload)
                await self._send(payload)
        elif self._pending:
            self._pending[-1][1].extend(waiters)  # the list in flight already holds them
        else:
            # Nothing to send: no topics at all keeps the PBX's current set (an empty list
            # would silently unsubscribe everything), or the set is unchanged and acked.
            for fut in waiters:
                if not fut.done():
                    fut.set_result(None)

    # -- tasks ----------------------------------------------------------------------------

    def start(self) -> None:
        """Start the reader and the keeper."""
        self.tasks = [
            asyncio.create_task(self.read(), name="yeastar-event-reader"),
            asyncio.create_task(self.keep(), name="yeastar-event-keeper"),
        ]

    async def ended(self) -> BaseException:
        """Wait until the reader or the keeper fails; stop the other; return the failure."""
        done, _ = await asyncio.wait(self.tasks, return_when=asyncio.FIRST_COMPLETED)
        failure: BaseException | None = None
        for task in self.tasks:
            if task in done and not task.cancelled():
                failure = failure or task.exception()
        await self.stop()
        return failure if failure is not None else _LinkLost("link ended")

    async def stop(self) -> None:
        """Cancel the reader and the keeper and wait for them."""
        for task in self.tasks:
            task.cancel()
        if self.tasks:
            await asyncio.wait(self.tasks)
        for task in self.tasks:
            if not task.cancelled():
                task.exception()  # retrieved: the link's end was reported another way

    async def keep(self) -> None:
        """Send the subscription and heartbeats; enforce the ack and liveness deadlines."""
        loop = self.loop
        interval = self.interval
        # The first beat at a random point of the interval, on a grid of _BEAT_SLOTS slots:
        # links opened together (a process starting a thousand streams, or reconnecting them
        # after a PBX restart) beat in _BEAT_SLOTS groups, not in one burst that stalls the
        # loop every interval; each group's beats go in one loop iteration, whose wake-up
        # they share (one beat per wake-up would cost more CPU than the beats).
        next_beat = _on_grid(
            loop.time() + interval * _JITTER.uniform(_FIRST_BEAT_MIN, 1.0), interval
        )
        while True:
            # Cleared before the work, so a wake-up requested during a send is not lost.
            self._wake.clear()
            if self._topics_dirty:
                await self._sync_topics()
            now = loop.time()
            if now >= next_beat:
                async with self._send_lock:
                    await self._send(_HEARTBEAT)
                self.stream._dispatch.stats.heartbeats_sent += 1
                if self._unproven is None:
                    self._unproven = self._eff_now()
                next_beat += interval  # on the grid still
                if next_beat <= now:  # the loop was held up for a whole interval
                    next_beat = _on_grid(now + interval, interval)
            sleep = next_beat - now
            if self._held_since is None:
                eff = self._eff_now()
                if self._pending and eff - self._pending[0][0] >= self.timeout:
                    raise _LinkLost(f"subscribe not acknowledged within {self.timeout}s")
                if self._unproven is not None and eff - self._unproven >= self.timeout:
                    raise _LinkLost(f"no frame from the PBX within {self.timeout}s of a heartbeat")
                # Real time runs at least as fast as effective time: never wakes too late.
                starts = (self._pending[0][0] if self._pending else None, self._unproven)
                due = min(
                    (start + self.timeout - eff for start in starts if start is not None),
                    default=math.inf,
                )
                if due < sleep:
                    self._arm_deadline(due)
            await self._wake.wait_until(next_beat)

    def _arm_deadline(self, delay: float) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
        self._deadline = self.loop.call_later(max(delay, 0.0), self._deadline_due)

    def _deadline_due(self) -> None:
        self._deadline = None
        if self._pending or self._unproven is not None:
            self._wake.set()  # still open: the keeper checks it (and the clock held, if so)

    async def read(self) -> None:
        """Read frames: prove liveness, handle acks and errors, publish events."""
        from websockets.exceptions import ConnectionClosed

        ws = self.ws
        stats = self.stream._dispatch.stats
        offer = self.stream._dispatch.offer
        publish = self.stream._dispatch.publish
        while True:
            try:
                # Text frames as bytes: msgspec reads UTF-8 itself, so websockets need not build
                # a str first. A frame that is not UTF-8 is then one more malformed frame,
                # counted and skipped, rather than a reason to give up the link.
                frame = await ws.recv(decode=False)
            except ConnectionClosed as exc:
                _count_protocol_violation(exc, stats)
                raise _LinkLost(_closed_reason(exc)) from None
            stats.frames_received += 1
            self._unproven = None
            if len(frame) == _REPLY_LEN and frame in _HEARTBEAT_REPLIES:
                continue
            if self.backlog is None and self.tail is None and not self.expect:
                # The hot path, inline (no rotation under way): a typed event is queued at
                # once (a 30012 unless its call was recovered); anything else takes process().
                try:
                    event = decode(frame)
                except Exception:
                    event = None  # process() decodes it again, and says why it failed
                cls = type(event)
                if cls in _PLAIN or (cls is NewCdr and self.stream._fresh_cdr(cast(NewCdr, event))):
                    # Charged what its decoded form may hold: the byte bound of the buffers.
                    size = charge(frame)
                    if not offer(event, size):
                        # publish() may wait for room; the liveness clock stops meanwhile.
                        with self._held():
                            await publish(event, size)
                    continue
            await self.process(frame)

    async def process(self, frame: bytes, *, backlogged: bool = False) -> None:
        """Decode one frame and publish its event (or keep it, while the link is a standby;
        ``backlogged``: a frame so kept, now handed on)."""
        stream = self.stream
        dispatch = stream._dispatch
        stats = dispatch.stats
        not_event: EventDecodeError | None = None
        try:
            event: Any = decode(frame)
        except EventDecodeError as exc:
            not_event = exc
        except Exception as exc:
            # decode() promises EventDecodeError for bad input; should a frame still find
            # a bug in it, one frame must not end the stream, nor a flood of such frames
            # become a flood of tracebacks: the bad-frame throttle applies, and only its
            # warnings carry the traceback.
            stats.malformed_frames += 1
            level, more = stream._bad_frames.level()
            logger.log(
                level,
                "event stream: a frame could not be decoded (%s); skipped%s",
                stream._endpoint.redact(f"{type(exc).__name__}: {exc}"),
                more,
                exc_info=level >= logging.WARNING,
            )
            return
        if not_event is not None:
            # Outside the except clause: an error _control raises must not carry the
            # EventDecodeError (which quotes the frame, echoed token and all) as __context__.
            event = self._control(frame, not_event)
            if event is None:
                return
            if type(event) is Connected and stream._recovery_window is not None:
                # The CDRs of the gap go out right after this Connected, before any live event
                # of the new link (which wait in the socket meanwhile).
                with self._held():
                    await stream._recover(event)
                return
        else:
            if self.backlog is not None and not backlogged:
                # A standby link of a rotation: its events wait until the old link is gone,
                # then go out once each (see EventStream._hand_over).
                self.backlog.append(bytes(frame))
                return
            if self.tail is not None:
                self.tail.append(bytes(frame))
            if self.expect:
                # Frames the old link of a rotation already delivered, in the same order.
                if frame == self.expect[0]:
                    self.expect.popleft()
                    stats.overlap_duplicates += 1
                    return
                self.expect.clear()
            if type(event) is UnknownEvent:
                event = _with_text_raw(event)
                stats.unknown_events += 1
                _log_unknown(event, stream._bad_payloads, stream._endpoint.redact)
            elif type(event) is NewCdr and not stream._fresh_cdr(event):
                stats.duplicate_cdrs += 1
                return
        # Fast path: queued at once. Otherwise publish() may wait for room, and the
        # liveness clock stops while it does (see _held).
        # Charged what its decoded form may hold: the byte bound of the buffers (queue_bytes).
        size = charge(frame)
        if not dispatch.offer(event, size):
            with self._held():
                await dispatch.publish(event, size)

    def _control(self, frame: str | bytes, error: EventDecodeError) -> Connected | None:
        """Handle a non-event frame; returns the Connected event on the first ack."""
        try:
            control = _CONTROL.decode(frame)
        except (ValueError, RecursionError):  # DecodeError is a ValueError; deep nesting recurses
            control = _Control()
        code = control.errcode
        # The PBX (or a proxy) may echo the token in anything it sends: mask before use.
        redact = self.stream._endpoint.redact
        if code is None:
            self.stream._dispatch.stats.malformed_frames += 1
            level, more = self.stream._bad_frames.level()
            logger.log(
                level, "event stream: skipped a malformed frame: %s%s", redact(str(error)), more
            )
            return None
        if code == _TOKEN_EXPIRED:
            raise _LinkLost(f"token expired (errcode {code})", token_expired=True)
        if code != 0:
            errmsg = redact(control.errmsg)
            if self._pending:
                topics = sorted(self._sent_topics)
                failure = error_for(
                    code, errmsg, endpoint="subscribe", submsg=f"topics sent: {topics}"
                )
                if isinstance(failure, _STOPS):
                    raise failure  # e.g. 10005 ACCESS DENIED: reconnecting cannot help
                raise _LinkLost(f"subscribe rejected: errcode {code} {errmsg!r}")
            failure = error_for(code, errmsg, endpoint="subscribe")
            if isinstance(failure, _FATAL):
                raise failure  # e.g. 70004 ACCOUNT IP BLOCKED: retrying cannot help
            logger.warning("event stream: PBX sent errcode %s %r", code, errmsg)
            return None
        if not self._pending:
            logger.debug("event stream: ack without a pending subscribe ignored")
            return None
        _, futures = self._pending.popleft()
        for fut in futures:
            if not fut.done():
                fut.set_result(None)
        if self.up_since is None:
            self.up_since = self.loop.time()
            if self.backlog is not None:
                return None  # a standby link: the stream is connected already
            return self.stream._link_established()
        return None


#: Close codes the client sends when the PBX broke the WebSocket protocol with one frame: 1009
#: (a frame over ``max_frame_size``; the RFC requires closing the link), and 1007 (a text frame
#: that is not UTF-8, which websockets refuses only when it decodes text itself). The frame
#: still counts as a malformed one.
_BAD_FRAME_CLOSE_CODES: Final = frozenset({1007, 1009})


def _count_protocol_violation(exc: ConnectionClosed, stats: StreamStats) -> None:
    sent = exc.sent
    # Our close frame first (not an echo of the PBX's): we refused one of its frames.
    if sent is not None and not exc.rcvd_then_sent and sent.code in _BAD_FRAME_CLOSE_CODES:
        stats.malformed_frames += 1
        logger.warning(
            "event stream: the PBX sent a frame the WebSocket protocol forbids (%s); "
            "skipped, the link is replaced",
            sent.reason or sent.code,
        )


def _with_text_raw(event: UnknownEvent) -> UnknownEvent:
    """``event`` with its ``raw`` frame as text, as the PBX sent it (the reader reads bytes).

    A frame that is not UTF-8 keeps its bytes.
    """
    if isinstance(event.raw, bytes):
        with contextlib.suppress(UnicodeDecodeError):
            return msgspec.structs.replace(event, raw=event.raw.decode())
    return event


#: What a link imports on first use, loaded by the supervisor before it opens any socket: a
#: process out of descriptors at its first connect gets the out-of-fd report and a retry, not
#: an import's own failure in the middle of a link (or a decoder missing a module later).
_LINK_MODULES: Final = ("websockets.asyncio.client", "websockets.exceptions", *HELPER_MODULES)
_link_modules_loaded = False


def _load_link_modules() -> None:
    """Import :data:`_LINK_MODULES` (once; raises :class:`OutOfFileDescriptorsError`)."""
    global _link_modules_loaded
    if not _link_modules_loaded:
        for name in _LINK_MODULES:
            imported(name)
        _link_modules_loaded = True


def _no_redirect_connect() -> type[Any]:
    """websockets' ``connect``, made to never follow a redirect.

    ``connect`` follows up to 10 redirects by default (``WEBSOCKETS_MAX_REDIRECTS``), replaying
    the upgrade, token and all, to whatever the ``Location`` names; here a 3xx is raised as
    the ``InvalidStatus`` it is. Built on first use (websockets is imported lazily).
    """
    global _NO_REDIRECT_CONNECT
    if _NO_REDIRECT_CONNECT is None:
        from websockets.asyncio.client import connect

        class NoRedirectConnect(connect):
            def process_redirect(self, exc: Exception) -> Exception | str:
                return exc

        _NO_REDIRECT_CONNECT = NoRedirectConnect
    return _NO_REDIRECT_CONNECT


_NO_REDIRECT_CONNECT: type[Any] | None = None
_LOCATION_SHOWN: Final = 200


def _redirect_error(
    status: int, location: str | None, redact: Callable[[str], str]
) -> TransportError:
    """The error for a 3xx on the upgrade, naming the status and the masked Location."""
    where = (
        "no Location" if location is None else f"Location {redact(location)[:_LOCATION_SHOWN]!r}"
    )
    return TransportError(
        f"subscribe: the WebSocket upgrade was answered HTTP {status} ({where}); not followed, "
        "since the upgrade carries the access token: check base_url (scheme, host and port)",
        endpoint="subscribe",
        status=status,
    )


def _closed_reason(exc: ConnectionClosed) -> str:
    return f"connection closed ({exc})"


async def _shut(ws: ClientConnection, graceful: bool) -> None:
    """Close ``ws``: a close frame when ``graceful``, else abort (a dead link gets none)."""
    if graceful:
        await ws.close()  # bounded by close_timeout
        return
    ws.transport.abort()
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(1.0):
            await ws.wait_closed()


def _overlap(tail: list[bytes], received: list[bytes]) -> int:
    """How many of the last frames of ``tail`` (the old link's, since the new one opened) are
    the first frames of ``received`` (the new link's), in order: the longest such overlap.

    Both sockets get every event the PBX sends after the new subscription, in the same order,
    so the old link's tail and the new link's head are the same frames; what the new link
    received before the overlap is not in ``tail``. Where ``received`` is the shorter, only
    its frames are compared (the rest of the overlap is still on its way); with nothing
    received, nothing is compared and no frame is dropped.
    """
    if not received:
        return 0
    for size in range(len(tail), 0, -1):
        start = len(tail) - size
        seen = min(size, len(received))
        if tail[start : start + seen] == received[:seen]:
            return size
    return 0


class _Throttle:
    """Keeps a flood of bad frames from becoming a flood of warnings.

    At most one WARNING per interval; the others go to DEBUG and are counted in the next
    WARNING. (``StreamStats`` counts every one of them.)
    """

    __slots__ = ("_held", "_interval", "_next")

    def __init__(self, interval: float = _BAD_FRAME_LOG_INTERVAL) -> None:
        self._interval = interval
        self._next = -math.inf
        self._held = 0

    def level(self) -> tuple[int, str]:
        """The level to log the next bad frame at, and a suffix naming the ones held back."""
        now = time.monotonic()
        if now < self._next:
            self._held += 1
            return logging.DEBUG, ""
        self._next = now + self._interval
        held, self._held = self._held, 0
        return logging.WARNING, f" ({held} more since the last warning)" if held else ""


def _log_unknown(event: UnknownEvent, throttle: _Throttle, redact: Callable[[str], str]) -> None:
    if event.type in TOPICS:
        level, more = throttle.level()
        logger.log(
            level,
            "event stream: topic %s frame with an undecodable msg (%s); skipped%s",
            event.type,
            redact(event.reason),
            more,
        )
    else:
        logger.info("event stream: frame of topic %s has no event class; UnknownEvent", event.type)


# ---------------------------------------------------------------------------------------------
# The stream
# ---------------------------------------------------------------------------------------------


class EventStream:
    """Supervised WebSocket event stream of one PBX, with handler dispatch and subscriptions.

    Args:
        tokens: the token source (the client's token manager).
        endpoint: URL, TLS, User-Agent and redaction (the client's transport).
        options: tuning; :class:`StreamOptions` defaults when omitted.
        rng: random source of the reconnect backoff (tests inject a deterministic one).

    The stream connects while :meth:`listen` runs or a :meth:`subscribe` block is open, and
    only when there is at least one PBX topic to subscribe to (handlers or subscriptions of
    local events only never open a socket). Handlers get events whenever it is connected.
    """

    def __init__(
        self,
        tokens: TokenSource,
        endpoint: WsEndpoint,
        options: StreamOptions | None = None,
        *,
        rng: RandomSource | None = None,
    ) -> None:
        self._tokens = tokens
        self._endpoint = endpoint
        self._opts = options if options is not None else StreamOptions()
        self._rng = rng
        self._dispatch = Dispatcher(
            queue_size=self._opts.queue_size,
            queue_bytes=self._opts.queue_bytes,
            overflow=self._opts.overflow,
            handler_timeout=self._opts.handler_timeout,
            on_topics_changed=self._topics_changed,
        )
        self._ws_log = _RedactingLogger(_ws_logger, endpoint.redact)
        # Separate budgets: a storm of one kind must not hide the first warning of the other.
        self._bad_frames = _Throttle()
        self._bad_payloads = _Throttle()
        self._lock: asyncio.Lock | None = None
        self._engine: asyncio.Task[BaseException | None] | None = None
        self._consumer: asyncio.Task[None] | None = None
        #: Resolved to stop the engine: a future, so the engine waits on it without a task.
        self._stop: asyncio.Future[None] | None = None
        self._topics_event: asyncio.Event | None = None
        # Set when a connection attempt settles (acknowledged, or failed); subscribe() waits
        # on it when no link is up, so that it returns once its topics are live if they can be.
        self._settled: asyncio.Event | None = None
        self._demand = 0
        self._closed = False
        self._link: _Link | None = None
        self._ever_connected = False
        self._lost_at: float | None = None
        # Wall-clock time the last link was lost (the start of the gap CDRs are fetched for).
        self._lost_wall: float | None = None
        self._since: float | None = None
        self._recovery: CdrRecovery | None = None
        # Set by _link_established when the CDRs of a gap are to be fetched: (since, until).
        self._recovery_window: tuple[float, float] | None = None
        self._background: set[asyncio.Future[None]] = set()

    def __repr__(self) -> str:
        state = "closed" if self._closed else "connected" if self.connected else "idle"
        return f"<EventStream {state} topics={sorted(self._dispatch.topics)}>"

    # -- public: configuration ------------------------------------------------------------

    @property
    def options(self) -> StreamOptions:
        """The options this stream runs with."""
        return self._opts

    @property
    def stats(self) -> StreamStats:
        """A snapshot of the counters (frames, events, drops, reconnects, errors...)."""
        return self._dispatch.snapshot()

    @property
    def connected(self) -> bool:
        """True while a link is up and its subscription was acknowledged."""
        link = self._link
        return link is not None and link.up_since is not None

    @property
    def topics(self) -> frozenset[int]:
        """The PBX topics subscribed: those of the handlers plus the open subscriptions."""
        return self._dispatch.topics

    @property
    def checkpoint(self) -> Checkpoint | None:
        """Up to when events were received: now while connected, else when the last link was
        lost; ``None`` before the first connect. Store it; pass it to ``listen(since=...)``."""
        if self.connected:
            return Checkpoint.now()
        return None if self._lost_wall is None else Checkpoint(self._lost_wall)

    def recover_cdrs_with(self, recovery: CdrRecovery | None) -> None:
        """Fetch the CDRs of every gap with ``recovery`` (``None``: CDRs are live-only)."""
        self._recovery = recovery

    def _live_only(self) -> frozenset[int]:
        """The subscribed topics whose events of a gap cannot be recovered."""
        topics = self._dispatch.topics
        return topics - {_CDR_TOPIC} if self._recovery is not None else topics

    def _fresh_cdr(self, event: NewCdr) -> bool:
        """Whether the live 30012 ``event`` is the first of its call (recovered ones count)."""
        recovery = self._recovery
        return recovery is None or recovery.ledger.live(event)

    async def _recover(self, connected: Connected) -> None:
        """Publish ``connected`` with the CDRs of the gap, then those CDRs."""
        window, self._recovery_window = self._recovery_window, None
        recovery = self._recovery
        assert window is not None
        assert recovery is not None
        events: list[Any] = []
        error = ""
        try:
            async with asyncio.timeout(_RECOVERY_TIMEOUT):
                events, duplicates = await recovery.recover(*window)
        except (YeastarError, OSError, TimeoutError, ValueError) as exc:
            error = self._endpoint.redact(str(exc) or type(exc).__name__)
            logger.warning("event stream: the CDRs of the gap could not be fetched: %s", error)
            duplicates = 0
        stats = self._dispatch.stats
        stats.recovered_cdrs += len(events)
        stats.duplicate_cdrs += duplicates
        if events:
            logger.info("event stream: %d CDR(s) of the gap recovered", len(events))
        connected = msgspec.structs.replace(
            connected, recovered_cdrs=len(events), recovery_error=error
        )
        await self._dispatch.publish(connected, 0)
        for event in events:
            await self._dispatch.publish(event, 0)

    @property
    def closed(self) -> bool:
        """True once :meth:`aclose` was called."""
        return self._closed

    @overload
    def on(
        self, target: type[_E]
    ) -> Callable[[Callable[[_E], Awaitable[object]]], Callable[[_E], Awaitable[object]]]: ...

    @overload
    def on(self, target: int) -> Callable[[_H], _H]: ...

    def on(self, target: Target) -> Callable[[_H], _H]:
        """Decorator registering an async handler for an event class or topic number.

        ``target`` is an event class (``events.IncomingCallRequest``, ``events.Connected``) or
        a topic number (``30016``). Several handlers of one target run in registration order;
        the function is returned unchanged. TypeError/ValueError for a non-async function or
        something that names no event.
        """
        return self.decorator(target)

    def decorator(self, target: Target) -> Callable[[_H], _H]:
        """What :meth:`on` returns, untyped by the event class (for wrappers of :meth:`on`)."""
        self._dispatch.resolve(target)  # fail at decoration time, not at the first event

        def register(fn: _H) -> _H:
            self.add_handler(target, fn)
            return fn

        return register

    def add_handler(self, target: Target, fn: Handler) -> None:
        """Register ``fn`` for ``target`` (see :meth:`on`)."""
        self._dispatch.add_handler(target, fn)

    def remove_handler(self, target: Target, fn: Handler) -> None:
        """Unregister ``fn`` for ``target``; ValueError when it was not registered."""
        self._dispatch.remove_handler(target, fn)

    # -- public: running ------------------------------------------------------------------

    async def listen(self, *, since: Checkpoint | float | None = None) -> None:
        """Run the stream until :meth:`aclose`, then return.

        ``since``: a :class:`~yeastar_async.events.Checkpoint` (or wall-clock seconds) of an
        earlier run, e.g. :attr:`checkpoint` stored by a process before it stopped: with CDR
        recovery on, the CDRs of calls that ended since then are delivered after the first
        ``Connected``, as after any gap.

        Raises the failures that no reconnect can fix:

        - :class:`~yeastar_async.errors.AuthenticationError` (and its
          :class:`~yeastar_async.errors.LockoutGuardError`) and
          :class:`~yeastar_async.errors.IPBlockedError`;
        - a subscribe the PBX refuses for good, as its typed error:
          :class:`~yeastar_async.errors.AccessDeniedError` (10005, 70084),
          :class:`~yeastar_async.errors.ApiUnavailableError` (10001-10003, 70123),
          :class:`~yeastar_async.errors.ParameterError` (40001, 40002: the topic list) and
          :class:`~yeastar_async.errors.PreconditionError`;
        - :class:`~yeastar_async.errors.TransportError` for a redirect (3xx) answered to the
          WebSocket upgrade, naming the status and the masked ``Location`` (never followed).

        Network faults, token expiry, PBX restarts and other error codes are handled inside
        (reconnect with backoff, each attempt logged).
        """
        if since is not None:
            if not isinstance(since, Checkpoint):
                since = Checkpoint(since)
            self._since = since.time
        engine = await self._acquire()
        if engine is None:
            return  # already closed
        try:
            # asyncio.wait, not `await engine`: cancelling listen() must not cancel the engine
            # that subscriptions may share.
            await asyncio.wait({engine})
        finally:
            await self._release()
        failure = engine.result()
        if failure is not None:
            raise failure

    @overload
    def subscribe(
        self, target: type[_E], /
    ) -> contextlib.AbstractAsyncContextManager[Subscription[_E]]: ...

    @overload
    def subscribe(
        self, *targets: Target
    ) -> contextlib.AbstractAsyncContextManager[Subscription[Any]]: ...

    def subscribe(
        self, *targets: Target
    ) -> contextlib.AbstractAsyncContextManager[Subscription[Any]]:
        """Async context manager yielding an async iterator of the events ``targets`` name.

        Works with or without :meth:`listen` running. Entering adds the subscription's topics
        to the stream's topic set (and, on a live link, returns once the PBX acknowledged the
        new set); leaving removes them. A subscribe message replaces the PBX's topic set, so
        each change re-sends the full union; when nothing is left, the last set is kept rather
        than sending an empty list (which would silently stop every event). Local events
        (``events.Connected`` / ``events.Disconnected``) are yielded only when named.

        The subscription buffers up to ``queue_size`` events with the stream's ``overflow``
        policy: under the default ``"block"``, a subscription that is not consumed holds back
        the socket reader (and so every handler), as a full handler queue does.
        """
        keys = tuple(targets)
        for target in keys:
            self._dispatch.resolve(target)
        if not keys:
            raise ValueError("subscribe() needs at least one event class or topic number")
        return self._subscription(keys)

    @contextlib.asynccontextmanager
    async def _subscription(self, targets: tuple[Target, ...]) -> AsyncIterator[Subscription[Any]]:
        if self._closed:
            raise RuntimeError("the event stream is closed")
        sub = self._dispatch.open_subscription(targets)
        try:
            if await self._acquire() is None:
                raise RuntimeError("the event stream is closed")
            try:
                await self._await_synced()
                yield sub
            finally:
                self._dispatch.close_subscription(sub)
                sub._buffer.clear()
                await self._release()
        finally:
            self._dispatch.close_subscription(sub)

    async def aclose(self) -> None:
        """Stop the stream: close the socket, hand queued events to the handlers within
        ``shutdown_timeout``, end the subscriptions and :meth:`listen`. Idempotent.

        Called from a handler, it only starts the shutdown and returns (waiting there would
        wait for the handler itself).
        """
        self._closed = True
        if self._in_handler():
            if self._stop is not None and not self._stop.done():
                self._stop.set_result(None)
        else:
            async with self._get_lock():
                await self._stop_engine()
        self._dispatch.end_subscriptions()
        self._dispatch.report_drops()

    # -- public: events from another route (webhooks) -----------------------------------

    def route_elsewhere(self, topics: Iterable[int] | None = None) -> Callable[[], None]:
        """Take ``topics`` (``None``: every PBX topic) off the WebSocket: another route (a
        webhook receiver) delivers them with :meth:`deliver`. Returns the function that hands
        them back to the socket. While claimed, the socket neither subscribes to them nor
        passes on its frames of them, so no event reaches the handlers twice.
        """
        return self._dispatch.route_elsewhere(topics)

    async def deliver(self, event: Any, size: int = 0) -> None:
        """Hand ``event`` (decoded with :func:`~yeastar_async.events.decode`) to the handlers
        and subscriptions, in order with everything else, as the socket reader does.

        Only events of topics claimed with :meth:`route_elsewhere` are taken; handlers run
        while the stream runs (:meth:`listen` or a :meth:`subscribe` block, which open no
        socket when every topic is claimed). ``size``: the bytes it was decoded from (they count
        against ``queue_bytes``). May wait for room under ``overflow="block"``.
        """
        engine = self._engine
        if engine is not None and not engine.done():
            # A just-started engine opens the handler inbox on its first step: wait for it,
            # so the first events of a route that started the stream reach the handlers.
            await self._dispatch.wait_inbox()
        await self._dispatch.publish(event, size, other_route=True)

    def _in_handler(self) -> bool:
        """Whether the calling task is the one running this stream's handlers.

        The client's ``aclose()`` asks too: awaiting the shutdown from there would wait for
        the very handler that asked, until ``shutdown_timeout`` cancels it.
        """
        consumer = self._consumer
        return consumer is not None and asyncio.current_task() is consumer

    # -- engine lifecycle -----------------------------------------------------------------

    def _get_lock(self) -> asyncio.Lock:
        if self._lock is None:
            self._lock = asyncio.Lock()
        return self._lock

    async def _acquire(self) -> asyncio.Task[BaseException | None] | None:
        # Streams started together (a thousand listen() tasks) start a few per loop iteration.
        await pace_turn()
        async with self._get_lock():
            if self._closed:
                return None
            self._demand += 1
            if self._engine is None or self._engine.done():
                self._stop = asyncio.get_running_loop().create_future()
                self._topics_event = asyncio.Event()
                self._settled = asyncio.Event()
                self._engine = asyncio.create_task(
                    self._run_engine(self._stop), name="yeastar-event-stream"
                )
            return self._engine

    async def _release(self) -> None:
        # Counted down before any await, so a second cancellation cannot leave it wrong.
        self._demand -= 1
        if self._demand:
            return
        async with self._get_lock():
            if not self._demand:
                await self._stop_engine()

    async def _stop_engine(self) -> None:
        engine = self._engine
        if engine is None or engine.done():
            return
        assert self._stop is not None
        if not self._stop.done():
            self._stop.set_result(None)
        await asyncio.wait({engine})

    async def _run_engine(self, stop: asyncio.Future[None]) -> BaseException | None:
        """Supervisor + handler consumer until stopped; returns the fatal error, if any."""
        loop = asyncio.get_running_loop()
        inbox = self._dispatch.open_inbox()
        self._dispatch.take_interrupted()  # nothing stale from an earlier run
        consumer = asyncio.create_task(self._dispatch.consume(inbox), name="yeastar-event-handlers")
        self._consumer = consumer
        supervisor = asyncio.create_task(self._supervise(), name="yeastar-event-supervisor")
        try:
            await asyncio.wait({supervisor, consumer, stop}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            deadline = loop.time() + self._opts.shutdown_timeout
            supervisor.cancel()
            # The supervisor closes the socket (bounded by its close timeout), then the
            # handlers get what is still queued, within what is left of shutdown_timeout.
            await asyncio.wait({supervisor}, timeout=max(0.0, deadline - loop.time()))
            self._dispatch.close_inbox()
            await asyncio.wait({consumer}, timeout=max(0.0, deadline - loop.time()))
            cut_short = not consumer.done()
            for task in (supervisor, consumer):
                if not task.done():
                    task.cancel()
            # Cancelled handlers and socket closes are short; bound them anyway.
            grace = min(1.0, self._opts.shutdown_timeout)
            await asyncio.wait({supervisor, consumer}, timeout=grace)
            self._link = None
            self._consumer = None
            if cut_short:
                self._report_cut_short(len(inbox))
        failure: BaseException | None = None
        for task in (supervisor, consumer):
            if task.done() and not task.cancelled() and task.exception() is not None:
                failure = failure or task.exception()
        if failure is not None:
            logger.error("event stream stopped: %s", self._endpoint.redact(str(failure)))
            self._dispatch.end_subscriptions(failure)
        return failure

    def _report_cut_short(self, undelivered: int) -> None:
        """Say which handler ``shutdown_timeout`` cancelled and what it left undelivered."""
        interrupted = self._dispatch.take_interrupted()
        if interrupted is None:
            running = "the running handler was cancelled"
        else:
            fn, event = interrupted
            running = f"handler {handler_name(fn)} was cancelled on {describe(event)}"
        logger.warning(
            "event stream: shutdown_timeout=%ss expired: %s; %d queued event(s) not delivered",
            self._opts.shutdown_timeout,
            running,
            undelivered,
        )

    # -- supervision ----------------------------------------------------------------------

    def _topics_changed(self) -> None:
        if self._topics_event is not None:
            self._topics_event.set()
        link = self._link
        if link is not None:
            link.topics_changed()
            if link.successor is not None:  # a rotation's new link must subscribe to them too
                link.successor.topics_changed()

    async def _await_synced(self) -> None:
        if not self._dispatch.topics:
            return  # nothing for the socket to subscribe to (local events, or a webhook's)
        link = self._link
        if link is None or link.up_since is None:
            # No live link yet: the next subscribe message carries the new topics. Wait until a
            # connection attempt settles (acked: events right after entering subscribe() are
            # not missed; failed: don't hold the caller through the backoff), bounded, and
            # ended early by a fatal engine failure.
            settled, engine = self._settled, self._engine
            if settled is None or engine is None or engine.done():
                return
            settled.clear()
            waiter = asyncio.ensure_future(settled.wait())
            bound = max(_OPEN_TIMEOUT_FLOOR, self._opts.heartbeat_timeout)
            bound += 2 * self._opts.heartbeat_timeout
            try:
                await asyncio.wait(
                    {waiter, engine}, timeout=bound, return_when=asyncio.FIRST_COMPLETED
                )
            finally:
                waiter.cancel()
            return
        fut = link.synced()
        # The keeper replaces a link whose ack is late, which cancels the future; the timeout
        # is only a safety net.
        await asyncio.wait({fut}, timeout=self._opts.heartbeat_timeout * 2)

    async def _supervise(self) -> None:
        opts = self._opts
        backoff = Backoff(opts.reconnect_delay_min, opts.reconnect_delay_max, rng=self._rng)
        redact = self._endpoint.redact
        assert self._topics_event is not None
        # Whether the last reconnect skipped the backoff after a renewal, with no link up since.
        skipped_backoff = False
        while True:
            while not self._dispatch.topics:
                # Nothing to subscribe to: an empty topic list would subscribe to nothing.
                self._topics_event.clear()
                await self._topics_event.wait()
            try:
                # Before any socket: the modules a link needs (see _LINK_MODULES).
                _load_link_modules()
            except OutOfFileDescriptorsError:
                self._attempt_settled()
                report_out_of_fds(logger, "event stream: cannot load what a link needs")
                await asyncio.sleep(backoff.next_delay())
                continue
            try:
                token = await self._tokens.token()
            except _FATAL:
                raise
            except YeastarError as exc:
                self._attempt_settled()
                delay = backoff.next_delay()
                if isinstance(exc, OutOfFileDescriptorsError):
                    report_out_of_fds(logger, "event stream: no access token")
                else:
                    logger.warning(
                        "event stream: no access token (%s); retrying in %.2fs",
                        redact(str(exc)),
                        delay,
                    )
                await asyncio.sleep(delay)
                continue
            reason, token_expired, up_for = await self._attempt(token)
            self._attempt_settled()
            renewed = False
            if token_expired:
                try:
                    await self._tokens.expired(token)
                    renewed = True
                except _FATAL:
                    raise
                except YeastarError as exc:
                    logger.warning("event stream: token renewal failed: %s", redact(str(exc)))
            if up_for is not None:
                skipped_backoff = False
            if up_for is not None and up_for >= opts.healthy_after:
                backoff.reset()
            # After a renewal that succeeded, the cause of the failure is gone: reconnect at
            # once (a PBX back from a restart knows none of the old tokens; its 10004 must not
            # cost a further backoff). Only once until a link comes up: a PBX refusing every
            # fresh token still gets the backoff, never a hot loop of logins.
            if renewed and not skipped_backoff:
                delay, skipped_backoff = 0.0, True
                reason += "; token renewed"
            else:
                delay = backoff.next_delay()
            if reason == _OUT_OF_FDS:
                # Once per process at ERROR, with the fix: not a warning per stream and retry.
                report_out_of_fds(logger, "event stream: cannot connect")
            else:
                log = logger.info if up_for is not None else logger.warning
                log("event stream: %s; reconnecting in %.2fs", reason, delay)
            await asyncio.sleep(delay)

    async def _attempt(self, token: str) -> tuple[str, bool, float | None]:
        """One connection: returns (reason it ended, token expired, seconds it was up).

        A connection may span several links: a rotation replaces the link for a new token
        without a gap (see :meth:`_rotate`), and the loop goes on with the successor.
        """
        opened = await self._open(token)
        if isinstance(opened, tuple):
            return opened
        link = _Link(self, opened)
        reason, token_expired = "stream closed", False
        graceful = False
        first_up: float | None = None
        try:
            self._link = link
            while True:
                if not link.tasks:
                    link.start()
                rotator = self._start_rotator(link, token)
                try:
                    failure = await link.ended()
                    if rotator is not None and link.successor is not None:
                        # The old link ended while its successor waits for its ack: that
                        # wait is bounded; its outcome decides between handover and reconnect.
                        settled = asyncio.ensure_future(link.rotation_settled.wait())
                        await asyncio.wait({settled, rotator}, return_when=asyncio.FIRST_COMPLETED)
                        settled.cancel()
                finally:
                    if rotator is not None:
                        rotator.cancel()
                        await asyncio.wait({rotator})
                if first_up is None:
                    first_up = link.up_since
                successor = link.successor
                if isinstance(failure, _LinkLost):
                    link.token_died = failure.token_expired
                if successor is not None and isinstance(failure, _LinkLost):
                    if link.token_died or not link.clean:
                        # The old link died before it was closed for the handover (a PBX
                        # that revokes the old token when it issues one): events between its
                        # death and the successor's subscription are gone. A gap, reported.
                        await self._rotation_gap(link, first_up, failure.reason)
                    # The successor goes on; it delivers what the old link did not.
                    await self._hand_over(link, successor)
                    link.teardown()
                    await _shut(link.ws, False)
                    self._retire(token, link)
                    link, token = successor, successor.token
                    self._link = link
                    continue
                if isinstance(failure, _STOPS):
                    raise failure
                if not isinstance(failure, _LinkLost):
                    raise failure
                token_expired = failure.token_expired
                reason = self._endpoint.redact(failure.reason)
                return reason, token_expired, self._link_lost(link, first_up, reason, False)
        except asyncio.CancelledError:
            graceful = True
            raise
        finally:
            orphan = link.successor
            if orphan is not None and orphan is not self._link:
                # Opened, but the stream stopped before the handover: close it too.
                orphan.teardown()
                await orphan.stop()
                await _shut(orphan.ws, graceful)
            if self._link is link:
                self._link = None
                link.teardown()
                await link.stop()
                await _shut(link.ws, graceful)
                if graceful:
                    self._link_lost(link, first_up, reason, True)

    def _link_lost(
        self, link: _Link, first_up: float | None, reason: str, graceful: bool
    ) -> float | None:
        """Publish ``Disconnected`` for a link that was up; returns how long it was up."""
        if first_up is None:
            first_up = link.up_since
        if first_up is None or link.lost_reported:
            return None
        link.lost_reported = True
        now = asyncio.get_running_loop().time()
        self._lost_at = now
        self._lost_wall = time.time()
        lost_event = Disconnected(reason=reason, unrecoverable_topics=self._live_only())
        if graceful:
            self._dispatch.publish_nowait(lost_event)
        else:
            # Never waits for room: a slow handler must not hold back the reconnect.
            self._dispatch.publish_link_event(lost_event)
        return now - first_up

    async def _open(self, token: str) -> ClientConnection | tuple[str, bool, None]:
        """Open a WebSocket with ``token``; the reason it failed, when it did."""
        from websockets.exceptions import InvalidStatus, InvalidURI, WebSocketException

        stats = self._dispatch.stats
        redact = self._endpoint.redact
        stats.connect_attempts += 1
        tls: dict[str, Any] = {}
        # Raised after the try statement, not in a handler: there, the exception's __context__
        # would be websockets' own, which holds the URL or Location unmasked.
        refused: Exception | None = None
        try:
            # Built on first use: the trust store needs a descriptor too.
            context = self._endpoint.ws_ssl()
            if context is not None:  # websockets refuses ssl=None with wss://, ssl= with ws://
                tls["ssl"] = context
            await pace_turn()  # links dropped together reconnect a few per loop iteration
            ws: ClientConnection = await _no_redirect_connect()(
                self._endpoint.ws_url(token),
                # A pinned certificate is checked before the upgrade request carries the token.
                create_connection=checked_connection(self._endpoint.check_peer),
                user_agent_header=self._endpoint.user_agent,
                compression=None,
                # The PBX's own `heartbeat` text frames keep the link; no protocol pings.
                ping_interval=None,
                open_timeout=max(_OPEN_TIMEOUT_FLOOR, self._opts.heartbeat_timeout),
                close_timeout=min(self._opts.shutdown_timeout / 2, self._opts.heartbeat_timeout),
                max_size=self._opts.max_frame_size,
                # Direct, like the REST transport: no proxy from the environment.
                proxy=None,
                logger=self._ws_log,
                **tls,
            )
        except InvalidURI as exc:
            refused = ValueError(redact(str(exc)))
        except OutOfFileDescriptorsError:
            return _OUT_OF_FDS, False, None
        except TransportError as exc:  # the pin check: nothing was sent
            logger.error("event stream: %s", redact(str(exc)))
            return f"certificate check failed: {redact(str(exc))}", False, None
        except InvalidStatus as exc:
            status = exc.response.status_code
            if not 300 <= status < 400:
                # 401/403 on the upgrade: the PBX did not take the token.
                return f"handshake rejected: HTTP {status}", status in (401, 403), None
            # Not followed (see _no_redirect_connect), and not retried: the upgrade carries
            # the token, and a PBX address that redirects is a wrong base_url.
            refused = _redirect_error(status, exc.response.headers.get("Location"), redact)
        except (OSError, TimeoutError, WebSocketException) as exc:
            if out_of_fds(exc):
                return _OUT_OF_FDS, False, None
            return f"connect failed: {redact(str(exc) or type(exc).__name__)}", False, None
        if refused is not None:
            raise refused
        return ws

    # -- make-before-break rotation -------------------------------------------------------

    def _start_rotator(self, link: _Link, token: str) -> asyncio.Task[None] | None:
        tokens = self._tokens
        if not isinstance(tokens, RotatingTokenSource):
            return None  # a token source that cannot rotate: the link ends with its token
        link.token = token
        return asyncio.create_task(self._rotate(link, token, tokens), name="yeastar-event-rotator")

    async def _rotate(self, link: _Link, token: str, tokens: RotatingTokenSource) -> None:
        """Before ``token`` is due, open the successor link with a new token, wait for its
        ack, then close ``link``; the supervisor hands over when ``link``'s reader ends.

        A failed attempt leaves ``link`` as it is and is tried again, up to
        ``_ROTATION_ATTEMPTS`` times (a retry reuses the token the first attempt got); after
        that ``link`` ends with its token, as without rotation. Runs until cancelled.
        """
        due = tokens.rotation_due(token)
        if due is None:
            return
        await asyncio.sleep(due)
        if link.up_since is None:  # rotate an acknowledged link only
            await link.synced()
        link.rotating_since = (asyncio.get_running_loop().time(), time.time())
        for attempt in range(1, _ROTATION_ATTEMPTS + 1):
            try:
                if await self._rotate_once(link, token, tokens):
                    return
            except _FATAL as exc:
                # Rejected credentials or a blocked IP: never a further login from here (the
                # lockout guard counted this one); the supervisor meets it at its next token.
                logger.warning(
                    "event stream: rotation stopped: %s", self._endpoint.redact(str(exc))
                )
                return
            except (YeastarError, OSError, ValueError) as exc:
                # Whatever it is, the old link is still up: never let it end the stream here.
                logger.warning(
                    "event stream: rotation attempt %d failed (%s)",
                    attempt,
                    self._endpoint.redact(str(exc) or type(exc).__name__),
                )
            if attempt < _ROTATION_ATTEMPTS:
                await asyncio.sleep(
                    max(self._opts.reconnect_delay_min, self._opts.heartbeat_timeout)
                )

    async def _rotate_once(self, link: _Link, token: str, tokens: RotatingTokenSource) -> bool:
        """One rotation attempt; True when it is over (handed over, or nothing to do)."""
        fresh = await tokens.rotate(token)
        if fresh == token:
            return True
        link.tail = deque(maxlen=_TAIL_FRAMES)
        opened = await self._open(fresh)
        if isinstance(opened, tuple):
            link.tail = None
            logger.warning("event stream: rotation link failed (%s); keeping the old", opened[0])
            return False
        successor = _Link(self, opened)
        successor.token = fresh
        successor.backlog = deque()
        successor.start()
        acked = successor.synced()
        link.successor = successor
        ending: asyncio.Future[Any] = asyncio.ensure_future(successor.ended())
        try:
            bound = 2 * self._opts.heartbeat_timeout
            await asyncio.wait({acked, ending}, timeout=bound, return_when=asyncio.FIRST_COMPLETED)
            if ending.done() or not acked.done() or acked.cancelled():
                raise _LinkLost("the rotation link was not acknowledged")
        except BaseException as exc:
            ending.cancel()
            link.successor = None
            link.rotation_settled.set()
            successor.teardown()
            await successor.stop()
            await _shut(successor.ws, False)
            link.tail = None
            if isinstance(exc, _LinkLost):
                logger.warning("event stream: %s; keeping the old link", exc.reason)
                return False
            raise
        ending.cancel()
        # Clean only if the old link was still up when the successor's subscription took
        # effect: then every event reached one link or both.
        link.clean = not any(task.done() for task in link.tasks)
        link.rotation_settled.set()
        self._dispatch.stats.rotations += 1
        if not link.clean:
            return True
        logger.info("event stream: rotation link acknowledged; closing the old link")
        # The old reader hands on what the old socket still holds, then ends on the close.
        await link.ws.close()
        await self._loop_forever()
        return True  # unreachable: cancelled by the supervisor

    async def _rotation_gap(self, link: _Link, first_up: float | None, reason: str) -> None:
        """Report the gap of a rotation whose old link died early: ``Disconnected``, then
        ``Connected`` (with the CDRs of the gap, from when the rotation began)."""
        reason = self._endpoint.redact(reason)
        self._link_lost(link, first_up, reason, False)
        if link.rotating_since is not None:
            self._lost_at, self._lost_wall = link.rotating_since
        connected = self._link_established()
        if self._recovery_window is not None:
            await self._recover(connected)
        else:
            await self._dispatch.publish(connected, 0)

    @staticmethod
    async def _loop_forever() -> None:
        await asyncio.get_running_loop().create_future()

    async def _hand_over(self, old: _Link, successor: _Link) -> None:
        """Deliver the successor's backlog without what ``old`` already delivered."""
        tail = list(old.tail or ())
        old.tail = None
        backlog = successor.backlog
        assert backlog is not None
        received = list(backlog)
        overlap = _overlap(tail, received)
        # Frames the old link had that the successor has not received yet: drop them later.
        successor.expect = (
            deque(tail[len(tail) - overlap + len(received) :])
            if overlap > len(received)
            else deque()
        )
        dropped = min(overlap, len(received))
        self._dispatch.stats.overlap_duplicates += dropped
        for _ in range(dropped):
            backlog.popleft()
        while backlog:
            await successor.process(backlog.popleft(), backlogged=True)
            if not backlog:
                break
        # No await between the last check and this: the reader publishes from now on.
        successor.backlog = None

    def _retire(self, token: str, link: _Link) -> None:
        tokens = self._tokens
        if not isinstance(tokens, RotatingTokenSource) or link.token_died:
            return
        task = asyncio.ensure_future(tokens.retire(token))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    def _attempt_settled(self) -> None:
        if self._settled is not None:
            self._settled.set()

    def _link_established(self) -> Connected:
        """Called by the reader on the first ack of a link; returns the event to publish."""
        now = asyncio.get_running_loop().time()
        reconnect = self._ever_connected
        gap = None if self._lost_at is None else now - self._lost_at
        since = self._lost_wall if reconnect else self._since
        self._since = None
        if since is not None and self._recovery is not None and _CDR_TOPIC in self.topics:
            self._recovery_window = (since, time.time())
        self._ever_connected = True
        self._attempt_settled()
        if reconnect:
            self._dispatch.stats.reconnects += 1
        logger.info(
            "event stream: %s, topics %s",
            "reconnected" if reconnect else "connected",
            sorted(self._dispatch.topics),
        )
        return Connected(
            reconnect=reconnect,
            gap=gap,
            unrecoverable_topics=self._live_only() if reconnect else frozenset(),
        )
