"""Handler registry, bounded buffers and in-order delivery for the event stream.

The socket reader hands every decoded event to :meth:`Dispatcher.publish`, which puts it into
the handler *inbox* (when a handler wants it) and into the buffer of every open
:class:`Subscription` that names it. One consumer task drains the inbox and runs the handlers
of each event in registration order, one event at a time, so user code never runs on the
reader's stack and a slow handler never stalls heartbeats.

Every buffer is bounded twice: by count (``queue_size``) and by the bytes of the events it holds
(``queue_bytes``; an event's size is what the publisher charges it: the socket reader and the
webhook receiver charge an estimate of its decoded size, :mod:`._sizing`). So a stuck handler fed
1 MiB frames holds about ``queue_bytes``, not ``queue_size`` MiB. An empty buffer always takes
one event, whatever its size (``max_frame_size`` bounds that).

Another route (a webhook receiver, :mod:`yeastar_async.webhooks`) may take over topics with
:meth:`Dispatcher.route_elsewhere`: they leave the WebSocket's topic set, the socket's frames of
them are dropped, and that route hands its events in with ``publish(event, other_route=True)``,
so each topic reaches the handlers by one route only.

When a buffer is full the overflow policy decides: ``"block"`` (default) makes the reader wait
for room, so nothing is lost; ``"drop_newest"`` / ``"drop_oldest"`` discard an event, count it
in :attr:`StreamStats.drops` and report the count in a rate-limited warning.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, replace
from typing import Any, Final, Generic, Literal, TypeAlias, TypeVar

from yeastar_async.events.models import (
    TOPICS,
    Connected,
    Disconnected,
    LocalEvent,
    UnknownEvent,
    topic_of,
)

__all__ = [
    "OVERFLOW_POLICIES",
    "Dispatcher",
    "Handler",
    "Overflow",
    "StreamStats",
    "Subscription",
    "Target",
    "describe",
    "handler_name",
]

logger = logging.getLogger("yeastar_async.events")

#: What a full buffer does: wait for room, or discard the newest / the oldest event.
Overflow: TypeAlias = Literal["block", "drop_newest", "drop_oldest"]
OVERFLOW_POLICIES: Final[tuple[str, ...]] = ("block", "drop_newest", "drop_oldest")

#: An event class (``events.CallStatusChanged``, ``events.Connected``) or a topic number.
Target: TypeAlias = int | type[Any]
#: An async handler taking one event.
Handler: TypeAlias = Callable[[Any], Awaitable[Any]]
#: Internal routing key: a PBX topic number, or a local event class.
_Key: TypeAlias = int | type[LocalEvent]

_T = TypeVar("_T")
#: The event type a subscription yields (``Any`` when it names topics or several classes).
E_co = TypeVar("E_co", covariant=True)
_DROP_REPORT_INTERVAL: Final = 5.0


@dataclass(slots=True)
class StreamStats:
    """Counters of one event stream (a snapshot: read ``stream.stats`` again for new values)."""

    frames_received: int = 0
    """Every WebSocket frame read from the PBX (events, acks, heartbeat replies, garbage)."""
    events_dispatched: int = 0
    """Events handed to at least one handler or subscription (local events included)."""
    malformed_frames: int = 0
    """Frames that were neither an event envelope nor a control frame (skipped), including
    text that is not UTF-8, and one over ``max_frame_size`` (which ends the link)."""
    unknown_events: int = 0
    """Frames decoded as :class:`~yeastar_async.events.UnknownEvent`."""
    drops: int = 0
    """Events discarded by a ``drop_newest`` / ``drop_oldest`` overflow policy."""
    reconnects: int = 0
    """Links re-established after a previous one was lost."""
    handler_errors: int = 0
    """Handler calls that raised or exceeded ``handler_timeout``."""
    connect_attempts: int = 0
    """WebSocket handshakes attempted."""
    heartbeats_sent: int = 0
    """``heartbeat`` frames sent."""
    rotations: int = 0
    """Links replaced make-before-break for a new token (no gap, no ``Disconnected``)."""
    overlap_duplicates: int = 0
    """Frames received on both links of a rotation and delivered once (the second dropped)."""
    recovered_cdrs: int = 0
    """CDRs of a gap fetched over REST and delivered as ``CdrRecovered``."""
    duplicate_cdrs: int = 0
    """CDRs not delivered again: a live 30012 or a REST record of a call already delivered."""


class _Closed(Exception):
    """Raised by :meth:`_Buffer.get` once the buffer is closed and drained."""


#: What :meth:`_Buffer.get_nowait` returns when nothing is buffered.
_EMPTY: Final = object()


class _Buffer(Generic[_T]):
    """A FIFO bounded by count and by bytes, with an overflow policy, one consumer, and
    close-with-error. Each item comes with its size in bytes (0 for local events)."""

    __slots__ = (
        "_bytes",
        "_closed",
        "_error",
        "_items",
        "_max_bytes",
        "_maxsize",
        "_not_empty",
        "_not_full",
        "_on_drop",
        "_overflow",
        "_sizes",
    )

    def __init__(
        self,
        maxsize: int,
        overflow: Overflow,
        on_drop: Callable[[], None],
        max_bytes: int | None = None,
    ) -> None:
        self._items: deque[_T] = deque()
        self._sizes: deque[int] = deque()
        self._bytes = 0
        self._max_bytes = max_bytes
        self._maxsize = maxsize
        self._overflow = overflow
        self._on_drop = on_drop
        self._closed = False
        self._error: BaseException | None = None
        self._not_empty = asyncio.Event()
        self._not_full = asyncio.Event()
        self._not_full.set()

    def __len__(self) -> int:
        return len(self._items)

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def nbytes(self) -> int:
        """Bytes of the frames buffered."""
        return self._bytes

    def _fits(self, size: int) -> bool:
        count = len(self._items)
        if count >= self._maxsize:
            return False
        limit = self._max_bytes
        # An empty buffer takes any one item: a frame larger than the budget still passes.
        return limit is None or not count or self._bytes + size <= limit

    def _append(self, item: _T, size: int) -> None:
        if not self._items:  # the event stays set while anything is buffered
            self._not_empty.set()
        self._items.append(item)
        self._sizes.append(size)
        self._bytes += size

    def _drop_oldest(self) -> None:
        self._items.popleft()
        self._bytes -= self._sizes.popleft()
        self._on_drop()

    async def put(self, item: _T, size: int = 0) -> bool:
        """Add ``item`` (``size`` bytes); False when it was not added (closed, or dropped)."""
        while True:
            if self._closed:
                return False
            if self._fits(size):
                self._append(item, size)
                return True
            if self._overflow == "drop_newest":
                self._on_drop()
                return False
            if self._overflow == "drop_oldest":
                while not self._fits(size):
                    self._drop_oldest()
                continue
            # Set again by every get: the loop re-checks whether this item fits now.
            self._not_full.clear()
            await self._not_full.wait()

    def put_nowait(self, item: _T, size: int = 0) -> bool:
        """Add ``item`` if there is room right now (never drops an older event)."""
        # The reader's hot path: _fits and _append inlined.
        items = self._items
        count = len(items)
        if self._closed or count >= self._maxsize:
            return False
        limit = self._max_bytes
        if count and limit is not None and self._bytes + size > limit:
            return False
        if not count:
            self._not_empty.set()
        items.append(item)
        self._sizes.append(size)
        self._bytes += size
        return True

    def put_at_once(self, item: _T, size: int = 0) -> bool:
        """Add ``item`` without waiting: a full buffer applies its drop policy, and under
        ``"block"`` takes the item over capacity (for the rare link events). False when the
        item was not added.
        """
        if self._closed:
            return False
        if not self._fits(size):
            if self._overflow == "drop_newest":
                self._on_drop()
                return False
            if self._overflow == "drop_oldest":
                while not self._fits(size):
                    self._drop_oldest()
        self._append(item, size)
        return True

    def get_nowait(self) -> Any:
        """Next item, or :data:`_EMPTY` when nothing is buffered (closed or not)."""
        items = self._items
        if not items:
            return _EMPTY
        item = items.popleft()
        self._bytes -= self._sizes.popleft()
        not_full = self._not_full
        if not not_full.is_set():  # a producer may be waiting for room: let it re-check
            not_full.set()
        if not items:
            self._not_empty.clear()
        return item

    async def get(self) -> _T:
        """Next item; after :meth:`close`, the remaining items, then the error or _Closed."""
        while True:
            if self._items:
                item: _T = self.get_nowait()
                return item
            if self._closed:
                if self._error is not None:
                    raise self._error
                raise _Closed
            await self._not_empty.wait()

    def close(self, error: BaseException | None = None) -> None:
        """Refuse new items and wake everyone; the consumer still gets what is buffered."""
        if self._closed:
            return
        self._closed = True
        self._error = error
        # Wake a blocked producer (its put returns False) and a waiting consumer.
        self._not_empty.set()
        self._not_full.set()

    def clear(self) -> None:
        """Discard what is buffered (used when a consumer gives up before draining)."""
        self._items.clear()
        self._sizes.clear()
        self._bytes = 0
        self._not_full.set()
        self._not_empty.clear()


class Subscription(Generic[E_co]):
    """An async iterator over the events one ``subscribe(*targets)`` call named.

    Events arrive in the order the PBX sent them. Iteration ends when the subscription's
    ``async with`` block is left or the stream is closed; it raises the error that stopped the
    stream (e.g. :class:`~yeastar_async.errors.AuthenticationError`) after the buffered events.
    """

    __slots__ = ("_buffer", "_keys", "_targets")

    def __init__(
        self, targets: tuple[Target, ...], keys: frozenset[_Key], buffer: _Buffer[Any]
    ) -> None:
        self._targets = targets
        self._keys = keys
        self._buffer = buffer

    @property
    def targets(self) -> tuple[Target, ...]:
        """The targets as passed to ``subscribe()``."""
        return self._targets

    @property
    def topics(self) -> frozenset[int]:
        """The PBX topic numbers this subscription adds to the stream's topic set."""
        return frozenset(k for k in self._keys if isinstance(k, int))

    @property
    def closed(self) -> bool:
        """True once the subscription no longer receives events."""
        return self._buffer.closed

    def __len__(self) -> int:
        """Events buffered and not yet consumed."""
        return len(self._buffer)

    def __aiter__(self) -> Subscription[E_co]:
        return self

    async def __anext__(self) -> E_co:
        try:
            event: E_co = await self._buffer.get()
            return event
        except _Closed:
            raise StopAsyncIteration from None

    def __repr__(self) -> str:
        state = "closed" if self.closed else "open"
        return f"<Subscription {self._targets!r} {state}, {len(self._buffer)} buffered>"


def _is_async_callable(fn: object) -> bool:
    if inspect.iscoroutinefunction(fn):
        return True
    # An instance with `async def __call__` is fine too.
    call = getattr(fn, "__call__", None)  # noqa: B004 - we want the method, not callable()
    return call is not None and inspect.iscoroutinefunction(call)


def handler_name(fn: object) -> str:
    """How log lines name a handler: its qualified name, else its repr."""
    return str(getattr(fn, "__qualname__", None) or repr(fn))


class Dispatcher:
    """Routes events to handlers (through one bounded inbox) and to subscriptions.

    Args:
        queue_size: capacity of the handler inbox and of each subscription buffer.
        queue_bytes: bytes of frames each of those buffers may hold (None: no byte bound).
        overflow: what a full buffer does (see :data:`Overflow`).
        handler_timeout: seconds a handler may run before it is cancelled (None: no limit).
        on_topics_changed: called (synchronously) whenever the PBX topic set changes.
    """

    def __init__(
        self,
        *,
        queue_size: int = 1024,
        queue_bytes: int | None = None,
        overflow: Overflow = "block",
        handler_timeout: float | None = None,
        on_topics_changed: Callable[[], None] = lambda: None,
    ) -> None:
        self.stats = StreamStats()
        self._queue_size = queue_size
        self._queue_bytes = queue_bytes
        self._overflow: Overflow = overflow
        self._handler_timeout = handler_timeout
        self._on_topics_changed = on_topics_changed
        # Tuples, replaced on every change: the consumer iterates them as they are, and a
        # handler that adds or removes handlers never changes the tuple being iterated.
        self._handlers: dict[_Key, tuple[Handler, ...]] = {}
        self._subscriptions: list[Subscription[Any]] = []
        self._routes: dict[_Key, tuple[Subscription[Any], ...]] = {}
        self._inbox: _Buffer[Any] | None = None
        self._topics: frozenset[int] = frozenset()
        self._drops_unreported = 0
        self._last_drop_report = float("-inf")
        # The handler (and its event) that the stream's shutdown cancelled, if any.
        self._interrupted: tuple[Handler, Any] | None = None
        # Topics another route delivers: topic -> number of claims; claims of every topic.
        self._elsewhere: dict[int, int] = {}
        self._all_elsewhere = 0
        self._diverted = False  # any claim at all: the one check the hot path pays
        self._inbox_ready: asyncio.Event | None = None

    # -- targets --------------------------------------------------------------------------

    @staticmethod
    def resolve(target: object) -> _Key:
        """The routing key of ``target``; TypeError/ValueError naming it when it is none."""
        # topic_of raises TypeError for non-targets and ValueError for abstract classes and
        # non-positive numbers; it accepts topic numbers newer firmware may add (those frames
        # arrive as UnknownEvent with that `type`).
        topic = topic_of(target)  # type: ignore[arg-type]
        if topic is not None:
            return topic
        assert isinstance(target, type)
        assert issubclass(target, LocalEvent)
        return target

    @staticmethod
    def key_of(event: object) -> _Key | None:
        """The routing key of a received event, or None for events no target can name."""
        key = _CLASS_KEYS.get(type(event))
        if key is not None:
            return key
        if isinstance(event, UnknownEvent):
            # Only a topic this library has no class for reaches its number's handlers: a
            # handler of a typed topic must never be handed an untyped payload.
            if event.type is not None and event.type not in TOPICS:
                return event.type
            return None
        if isinstance(event, (Connected, Disconnected, LocalEvent)):
            return type(event)
        topic = getattr(event, "type", None)
        return topic if isinstance(topic, int) else None

    # -- handlers -------------------------------------------------------------------------

    def add_handler(self, target: Target, fn: Handler) -> None:
        """Register ``fn`` (an ``async def``) for ``target``, after the ones already there."""
        if not _is_async_callable(fn):
            raise TypeError(
                f"event handlers must be async functions (async def), got {handler_name(fn)!r}"
            )
        key = self.resolve(target)
        self._handlers[key] = (*self._handlers.get(key, ()), fn)
        self._refresh_topics()

    def remove_handler(self, target: Target, fn: Handler) -> None:
        """Unregister ``fn`` for ``target``; ValueError if it was not registered there."""
        key = self.resolve(target)
        handlers = list(self._handlers.get(key, ()))
        try:
            handlers.remove(fn)
        except ValueError:
            raise ValueError(f"{handler_name(fn)!r} is not a handler of {target!r}") from None
        if handlers:
            self._handlers[key] = tuple(handlers)
        else:
            del self._handlers[key]
        self._refresh_topics()

    def handlers(self, target: Target) -> tuple[Handler, ...]:
        """The handlers registered for ``target``, in calling order."""
        return self._handlers.get(self.resolve(target), ())

    # -- subscriptions --------------------------------------------------------------------

    def open_subscription(self, targets: Iterable[Target]) -> Subscription[Any]:
        """Start buffering the events ``targets`` name; returns the iterator."""
        targets = tuple(targets)
        if not targets:
            raise ValueError("subscribe() needs at least one event class or topic number")
        keys = frozenset(self.resolve(t) for t in targets)
        buffer: _Buffer[Any] = _Buffer(
            self._queue_size, self._overflow, self._drop, self._queue_bytes
        )
        sub: Subscription[Any] = Subscription(targets, keys, buffer)
        self._subscriptions.append(sub)
        self._rebuild_routes()
        return sub

    def close_subscription(
        self, sub: Subscription[Any], error: BaseException | None = None
    ) -> None:
        """Stop delivering to ``sub``; its iterator ends after what is buffered (or raises)."""
        if sub in self._subscriptions:
            self._subscriptions.remove(sub)
            self._rebuild_routes()
        sub._buffer.close(error)

    def end_subscriptions(self, error: BaseException | None = None) -> None:
        """Close every open subscription (stream closed, or failed with ``error``)."""
        for sub in list(self._subscriptions):
            self.close_subscription(sub, error)

    def _rebuild_routes(self) -> None:
        routes: dict[_Key, list[Subscription[Any]]] = {}
        for sub in self._subscriptions:
            for key in sub._keys:
                routes.setdefault(key, []).append(sub)
        self._routes = {key: tuple(subs) for key, subs in routes.items()}
        self._refresh_topics()

    # -- topics ---------------------------------------------------------------------------

    @property
    def topics(self) -> frozenset[int]:
        """The PBX topics wanted: those of the handlers plus those of the open subscriptions."""
        return self._topics

    def _refresh_topics(self) -> None:
        topics = frozenset(
            key
            for key in (*self._handlers, *self._routes)
            if isinstance(key, int) and not self.routed_elsewhere(key)
        )
        if topics != self._topics:
            self._topics = topics
            self._on_topics_changed()

    # -- other routes ---------------------------------------------------------------------

    def route_elsewhere(self, topics: Iterable[int] | None) -> Callable[[], None]:
        """Let another route deliver ``topics`` (``None``: every PBX topic); returns the
        function that gives them back (idempotent).

        Until then they are left out of :attr:`topics` (the WebSocket's subscription) and the
        socket's events of them are dropped: only ``publish(..., other_route=True)`` hands
        them on. Claims add up: a topic returns to the socket when its last claim is released.
        """
        claimed = None if topics is None else tuple(dict.fromkeys(topics))
        if claimed is None:
            self._all_elsewhere += 1
        else:
            for topic in claimed:
                self._elsewhere[topic] = self._elsewhere.get(topic, 0) + 1
        self._diverted = True
        self._refresh_topics()
        released = False

        def release() -> None:
            nonlocal released
            if released:
                return
            released = True
            if claimed is None:
                self._all_elsewhere -= 1
            else:
                for topic in claimed:
                    left = self._elsewhere[topic] - 1
                    if left:
                        self._elsewhere[topic] = left
                    else:
                        del self._elsewhere[topic]
            self._diverted = bool(self._all_elsewhere or self._elsewhere)
            self._refresh_topics()

        return release

    def routed_elsewhere(self, topic: int) -> bool:
        """Whether another route delivers ``topic`` (see :meth:`route_elsewhere`)."""
        return bool(self._all_elsewhere) or topic in self._elsewhere

    # -- delivery -------------------------------------------------------------------------

    def open_inbox(self) -> _Buffer[Any]:
        """Create the handler inbox (handlers get events only while it is open)."""
        self._inbox = _Buffer(self._queue_size, self._overflow, self._drop, self._queue_bytes)
        if self._inbox_ready is not None:
            self._inbox_ready.set()
        return self._inbox

    def close_inbox(self) -> None:
        """Stop queueing for handlers; the consumer drains what is queued, then returns."""
        if self._inbox is not None:
            self._inbox.close()
            self._inbox = None
        if self._inbox_ready is not None:
            self._inbox_ready.clear()

    async def wait_inbox(self) -> None:
        """Return once the handler inbox is open (at once if it is)."""
        if self._inbox is not None:
            return
        if self._inbox_ready is None:
            self._inbox_ready = asyncio.Event()
        await self._inbox_ready.wait()

    async def publish(self, event: Any, size: int = 0, *, other_route: bool = False) -> None:
        """Queue ``event`` (decoded from ``size`` bytes) for its handlers and subscriptions
        (may wait under ``"block"``).

        ``other_route``: the event comes from a route that took its topic over (a webhook),
        not from the socket; the socket's events of such topics are dropped here.
        """
        key = self.key_of(event)
        if key is None:
            return
        if self._diverted and isinstance(key, int) and self.routed_elsewhere(key) != other_route:
            return  # each topic reaches the handlers by the one route that delivers it
        delivered = False
        inbox = self._inbox
        if inbox is not None and key in self._handlers:
            delivered = await inbox.put(event, size)
        # A snapshot: subscriptions opened or closed meanwhile are handled by the buffer itself.
        for sub in self._routes.get(key, ()):
            delivered = await sub._buffer.put(event, size) or delivered
        if delivered:
            self.stats.events_dispatched += 1

    def offer(self, event: Any, size: int = 0) -> bool:
        """Queue ``event`` for its handlers if that needs no waiting; True when done.

        The reader's fast path: a typed event, no subscription that names it, room in the
        inbox. False means "call :meth:`publish`" (subscriptions, a full inbox, the rarer
        events), which then does all of it.
        """
        key = _CLASS_KEYS.get(type(event))
        if key is None or key in self._routes or self._diverted:
            return False
        inbox = self._inbox
        if inbox is None or key not in self._handlers:
            return True  # nobody wants it: what publish() would do too
        if inbox.put_nowait(event, size):
            self.stats.events_dispatched += 1
            return True
        return False

    def publish_nowait(self, event: Any) -> None:
        """Queue ``event`` only where there is room now (best effort, used while stopping)."""
        key = self.key_of(event)
        if key is None:
            return
        delivered = False
        if self._inbox is not None and key in self._handlers:
            delivered = self._inbox.put_nowait(event)
        for sub in self._routes.get(key, ()):
            delivered = sub._buffer.put_nowait(event) or delivered
        if delivered:
            self.stats.events_dispatched += 1

    def publish_link_event(self, event: LocalEvent) -> None:
        """Queue a local link event without waiting for room.

        The supervisor publishes ``Disconnected`` this way: waiting for room would make the
        reconnect wait for a slow handler. Under ``"block"`` a full buffer takes it over
        capacity (at most one per lost link); a drop policy applies as for any event.
        """
        key = self.key_of(event)
        if key is None:
            return
        delivered = False
        if self._inbox is not None and key in self._handlers:
            delivered = self._inbox.put_at_once(event)
        for sub in self._routes.get(key, ()):
            delivered = sub._buffer.put_at_once(event) or delivered
        if delivered:
            self.stats.events_dispatched += 1

    async def consume(self, inbox: _Buffer[Any]) -> None:
        """Run the handlers of each queued event, in order, until the inbox is closed."""
        handlers = self._handlers
        timeout = self._handler_timeout
        while True:
            # Hot path: take what is buffered without a coroutine per event.
            event = inbox.get_nowait()
            if event is _EMPTY:
                try:
                    event = await inbox.get()
                except _Closed:
                    return
            key = _CLASS_KEYS.get(type(event)) or self.key_of(event)
            fns = handlers.get(key) if key is not None else None
            if not fns:
                continue
            # fns is a snapshot (a tuple): handlers added or removed meanwhile take effect for
            # later events.
            for fn in fns:
                if timeout is not None:
                    await self._call(fn, event)
                    continue
                # Inlined _call without a timeout: one coroutine frame less per event.
                try:
                    await fn(event)
                except asyncio.CancelledError:
                    if _stopping():
                        self._interrupted = (fn, event)
                        raise
                    self._cancelled(fn, event)
                except Exception:
                    self.stats.handler_errors += 1
                    logger.exception(
                        "event handler %s failed on %s", handler_name(fn), describe(event)
                    )

    def take_interrupted(self) -> tuple[Handler, Any] | None:
        """The handler and event the stream's shutdown cancelled since the last call, if any."""
        interrupted, self._interrupted = self._interrupted, None
        return interrupted

    def _cancelled(self, fn: Handler, event: Any) -> None:
        """A handler cancelled itself (or something it awaited): its failure only."""
        self.stats.handler_errors += 1
        logger.error("event handler %s was cancelled on %s", handler_name(fn), describe(event))

    async def _call(self, fn: Handler, event: Any) -> None:
        try:
            if self._handler_timeout is None:
                await fn(event)
            else:
                async with asyncio.timeout(self._handler_timeout) as scope:
                    await fn(event)
        except asyncio.CancelledError:
            if _stopping():
                self._interrupted = (fn, event)
                raise
            self._cancelled(fn, event)
        except TimeoutError:
            self.stats.handler_errors += 1
            if self._handler_timeout is not None and scope.expired():
                logger.error(
                    "event handler %s exceeded handler_timeout=%ss on %s; cancelled",
                    handler_name(fn),
                    self._handler_timeout,
                    describe(event),
                )
            else:
                logger.exception("event handler %s failed on %s", handler_name(fn), describe(event))
        except Exception:
            self.stats.handler_errors += 1
            logger.exception("event handler %s failed on %s", handler_name(fn), describe(event))

    # -- drops ----------------------------------------------------------------------------

    def _drop(self) -> None:
        self.stats.drops += 1
        self._drops_unreported += 1
        now = time.monotonic()
        # One warning per interval at most: a flood must not turn into a log flood.
        if now - self._last_drop_report >= _DROP_REPORT_INTERVAL:
            self.report_drops(now)

    def report_drops(self, now: float | None = None) -> None:
        """Log the drops not reported yet (also called when the stream stops)."""
        if not self._drops_unreported:
            return
        logger.warning(
            "event buffer full (queue_size=%d, queue_bytes=%s, overflow=%r): dropped %d event(s), "
            "%d in total",
            self._queue_size,
            self._queue_bytes,
            self._overflow,
            self._drops_unreported,
            self.stats.drops,
        )
        self._drops_unreported = 0
        self._last_drop_report = time.monotonic() if now is None else now

    def snapshot(self) -> StreamStats:
        """A copy of the counters."""
        return replace(self.stats)


#: Event class -> routing key, for the classes the stream delivers most (a dict lookup is the
#: hot path of key_of; UnknownEvent and other classes take the isinstance checks).
_CLASS_KEYS: Final[dict[type, _Key]] = {cls: topic for topic, cls in TOPICS.items()}
_CLASS_KEYS[Connected] = Connected
_CLASS_KEYS[Disconnected] = Disconnected


def _stopping() -> bool:
    """Whether the current task is being cancelled (the stream is stopping)."""
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0


def describe(event: object) -> str:
    """How log lines name an event: class, topic and ``sn`` (never the payload)."""
    sn = getattr(event, "sn", None)
    topic = getattr(event, "type", None)
    text = type(event).__name__
    if isinstance(topic, int):
        text += f" (topic {topic}"
        text += f", sn {sn})" if sn else ")"
    return text
