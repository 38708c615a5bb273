"""EventRelay: one PBX link for a whole fleet of processes, events handed out through Redis."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from typing import TYPE_CHECKING, Any, Final, TypeVar, overload

from redis.asyncio import Redis

from yeastar_async.events import TOPICS, Connected
from yeastar_async.events._dispatch import Target

from ._holder import GapRecovery, Holder
from ._lease import Keys, Lease, holder_id
from ._stats import RelayStats
from ._worker import RelaySubscription, Worker

if TYPE_CHECKING:
    from yeastar_async.client import YeastarClient

__all__ = ["DEFAULT_PRIORITY_TOPICS", "EventRelay"]

logger = logging.getLogger("yeastar_async.redis")

#: 30016 (an inbound call waiting 10 s for accept/refuse) has its own stream by default.
DEFAULT_PRIORITY_TOPICS: Final = (30016,)

E = TypeVar("E")
H = TypeVar("H", bound=Callable[[Any], Awaitable[Any]])


def _seconds(name: str, value: object, *, allow_none: bool = False) -> float | None:
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise ValueError(f"EventRelay {name} must be a number of seconds > 0, got {value!r}")
    return float(value)


def _positive_int(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"EventRelay {name} must be an integer >= 1, got {value!r}")
    return value


def _name(name: str, value: object) -> str:
    if not isinstance(value, str) or not value or any(c in value for c in "{}\0\r\n"):
        raise ValueError(
            f"EventRelay {name} must be a non-empty string without braces or control "
            f"characters, got {value!r}"
        )
    return value


class EventRelay:
    """One PBX's events relayed through Redis Streams to any number of worker processes.

    Link holder: ``await relay.hold(client)`` in any number of processes; the one holding the
    lease keeps the client's event WebSocket and appends every event to the PBX's stream.
    Workers: register handlers with :meth:`on` (or iterate :meth:`subscribe`) and run
    :meth:`work`; each event goes to one worker of the ``group`` and is acknowledged once its
    handlers returned. A process may do both.

    Args:
        redis: a ``redis.asyncio.Redis`` client.
        pbx: a name for the PBX, the same in every process (part of the Redis keys).
        group: the consumer group of this worker: one group per job (CDR export, screen pops);
            every group gets every event, one worker of a group handles it. A new group starts
            with the oldest entry still in the stream.
        consumer: this worker's name in the group (default: host, pid and random bits).
        prefix: the first part of every Redis key.
        lease: seconds the lease lasts without renewal: a dead holder is replaced within it.
        maxlen: about how many entries each stream keeps (``XADD MAXLEN ~``); older ones are
            trimmed, read or not.
        priority_topics: topics appended to the priority stream, read by their own task.
        claim_idle: seconds after which the entries of a worker that stopped (died, hung in
            Redis, raised) are taken over by another worker of the group. A live worker keeps
            its batch (it touches the entries every third of this), however slow its handlers.
        priority_claim_idle: the same for the priority stream (30016 has a 10 s window).
        batch: entries read (and events appended) per Redis round trip, at most.
        handler_timeout: seconds a handler may run before it is cancelled (None: no limit);
            the entry stays pending.
        max_deliveries: attempts after which an entry whose handler keeps failing is
            acknowledged and logged as given up.
        link_grace: seconds the holder keeps renewing while its link is down or connecting
            (default: ``lease``); past that it gives the lease up.
        recover_cdrs: after a failover, fetch the CDRs of the gap over REST and append those
            the stream does not hold yet as ``events.CdrRecovered`` (the gaps of the holder's
            own reconnects are the client's ``recover_cdrs``).
        gap_recovery: ``async def(client, connected)`` the holder calls after a reconnect or
            failover with a gap (see :meth:`recover_gap`).
        on_lease: called with ``True`` when this process takes the lease (holds the link) and
            ``False`` when it loses or leaves it (status lines, metrics).
    """

    def __init__(
        self,
        redis: Redis,
        pbx: str,
        *,
        group: str = "default",
        consumer: str | None = None,
        prefix: str = "yeastar",
        lease: float = 10.0,
        maxlen: int = 100_000,
        priority_topics: Iterable[int] = DEFAULT_PRIORITY_TOPICS,
        claim_idle: float = 30.0,
        priority_claim_idle: float = 2.0,
        batch: int = 100,
        handler_timeout: float | None = None,
        max_deliveries: int = 5,
        link_grace: float | None = None,
        recover_cdrs: bool = True,
        gap_recovery: GapRecovery | None = None,
        on_lease: Callable[[bool], None] | None = None,
    ) -> None:
        self.pbx = _name("pbx", pbx)
        self.group = _name("group", group)
        self.consumer = _name("consumer", consumer if consumer is not None else holder_id())
        lease_time = _seconds("lease", lease)
        assert lease_time is not None
        grace = _seconds("link_grace", link_grace, allow_none=True)
        claim = _seconds("claim_idle", claim_idle)
        priority_claim = _seconds("priority_claim_idle", priority_claim_idle)
        assert claim is not None
        assert priority_claim is not None
        priority = frozenset(priority_topics)
        for topic in priority:
            if isinstance(topic, bool) or not isinstance(topic, int) or topic < 1:
                raise ValueError(f"EventRelay priority_topics must be topic numbers, got {topic!r}")
        if not isinstance(recover_cdrs, bool):
            raise TypeError(f"EventRelay recover_cdrs must be True or False, got {recover_cdrs!r}")
        self.keys = Keys.of(_name("prefix", prefix), self.pbx)
        self.stats = RelayStats()
        self._redis = redis
        self._holder = Holder(
            Lease(redis, self.keys, lease_time, _positive_int("maxlen", maxlen)),
            self.stats,
            lease_time=lease_time,
            link_grace=grace if grace is not None else lease_time,
            priority_topics=priority,
            batch=_positive_int("batch", batch),
            gap_recovery=self.recover_gap,
            on_lease=on_lease,
            redis=redis,
            keys=self.keys,
            recover_cdrs=recover_cdrs,
        )
        self._worker = Worker(
            redis,
            ((self.keys.events, claim), (self.keys.priority, priority_claim)),
            group=self.group,
            consumer=self.consumer,
            stats=self.stats,
            batch=batch,
            handler_timeout=_seconds("handler_timeout", handler_timeout, allow_none=True),
            max_deliveries=_positive_int("max_deliveries", max_deliveries),
        )
        self._gap_recovery = gap_recovery
        self._engine: asyncio.Task[None] | None = None
        self._holds: set[asyncio.Task[None]] = set()
        self._demand = 0
        self._closed = False

    def __repr__(self) -> str:
        return f"EventRelay(pbx={self.pbx!r}, group={self.group!r}, holder={self.is_holder})"

    # -- link holder -----------------------------------------------------------------------

    @property
    def is_holder(self) -> bool:
        """Whether this process holds the link (the lease) right now."""
        return self._holder.holding.is_set() and self._holder.lease.value is not None

    @property
    def fence(self) -> int:
        """The fencing number of this process's last lease (0: never held)."""
        return self._holder.lease.fence

    async def hold(self, client: YeastarClient, topics: Iterable[int] | None = None) -> None:
        """Take part in holding the PBX link until the client (or the relay) is closed.

        Waits for the lease, then keeps ``client``'s event stream subscribed to ``topics``
        (default: every topic this library knows) and appends every event to Redis; on
        losing the lease, waits for it again. Raises what stops the client's stream
        (rejected credentials, a blocked IP). The client should use a shared token store
        (:class:`~yeastar_async.redis.RedisTokenStore`) with ``revoke_on_close=False``, and
        must keep the default ``overflow="block"`` (ValueError otherwise): a dropping queue
        would lose events the relay promises to append.
        """
        chosen = tuple(sorted(TOPICS)) if topics is None else tuple(topics)
        if not chosen:
            raise ValueError("hold() needs at least one topic")
        overflow = client._stream.options.overflow
        if overflow != "block":
            # Events wait in the client's queue while Redis or a failover search is slow:
            # a dropping policy would lose them without a gap being reported.
            raise ValueError(
                f"hold() needs a client with overflow='block' (nothing dropped), got {overflow!r}"
            )
        if self._closed:
            raise RuntimeError("the relay is closed")
        if self._holds:
            # One lease, one sequence of appends: a second link would compete with the first.
            raise RuntimeError("hold() is already running on this relay")
        task = asyncio.create_task(self._holder.run(client, chosen), name="yeastar-relay-holder")
        self._holds.add(task)
        try:
            await asyncio.wait({task})
        finally:
            if not task.done():  # hold() itself was cancelled
                task.cancel()
                await asyncio.wait({task})
            self._holds.discard(task)
            if not self._holds:
                with contextlib.suppress(Exception):
                    await self._holder.stop()
        if not task.cancelled() and task.exception() is not None:
            raise task.exception()  # type: ignore[misc]

    async def recover_gap(self, client: YeastarClient, connected: Connected) -> None:
        """The gap hook: the holder runs it (as a task) after appending a ``Connected`` with
        a gap, from a reconnect of its link or from a failover.

        The CDRs of the gap are in the stream already (``recover_cdrs``, and the client's own
        for its reconnects); every other topic's events of the gap are gone (the
        ``Connected``'s ``unrecoverable_topics``). This runs the ``gap_recovery`` option, if
        any, e.g. to re-read presence or active calls over REST. What it raises is logged.
        """
        if self._gap_recovery is not None:
            await self._gap_recovery(client, connected)

    # -- workers ---------------------------------------------------------------------------

    @overload
    def on(
        self, target: type[E]
    ) -> Callable[[Callable[[E], Awaitable[object]]], Callable[[E], Awaitable[object]]]: ...

    @overload
    def on(self, target: int) -> Callable[[H], H]: ...

    def on(self, target: Target) -> Callable[[H], H]:
        """Decorator registering an async handler, as ``client.on``: ``@relay.on(events.NewCdr)``.

        The handlers of an event run in registration order; when all returned, the event is
        acknowledged. One that raised leaves it pending: it is delivered again (maybe to another
        worker) after ``claim_idle``. Every worker of a group must register the same handlers.
        """
        self._worker.registry.resolve(target)

        def register(fn: H) -> H:
            self._worker.registry.add_handler(target, fn)
            return fn

        return register

    def add_handler(self, target: Target, handler: Callable[[Any], Awaitable[Any]]) -> None:
        """Register ``handler`` for ``target``, like :meth:`on`."""
        self._worker.registry.add_handler(target, handler)

    def remove_handler(self, target: Target, handler: Callable[[Any], Awaitable[Any]]) -> None:
        """Unregister a handler (``ValueError`` if it was not registered)."""
        self._worker.registry.remove_handler(target, handler)

    @overload
    def subscribe(
        self, target: type[E], /
    ) -> contextlib.AbstractAsyncContextManager[RelaySubscription[E]]: ...

    @overload
    def subscribe(
        self, *targets: Target
    ) -> contextlib.AbstractAsyncContextManager[RelaySubscription[Any]]: ...

    def subscribe(
        self, *targets: Target
    ) -> contextlib.AbstractAsyncContextManager[RelaySubscription[Any]]:
        """The relayed events ``targets`` name, as an async iterator (reads while open).

        ``async with relay.subscribe(events.NewCdr) as cdrs: async for cdr in cdrs``. An
        event is acknowledged when the loop asks for the next one.
        """
        for target in targets:
            self._worker.registry.resolve(target)
        if not targets:
            raise ValueError("subscribe() needs at least one event class or topic number")
        return self._subscription(targets)

    @contextlib.asynccontextmanager
    async def _subscription(
        self, targets: tuple[Target, ...]
    ) -> AsyncIterator[RelaySubscription[Any]]:
        sub = self._worker.open_subscription(targets)
        async with self._reading():
            try:
                yield sub
            finally:
                # Closed before the readers stop, so they acknowledge what it finished.
                self._worker.close_subscription(sub)

    async def work(self) -> None:
        """Read this group's share of the events and run the handlers, until :meth:`aclose`."""
        async with self._reading():
            engine = self._engine
            assert engine is not None
            await asyncio.wait({engine})
        if not engine.cancelled() and engine.exception() is not None:
            raise engine.exception()  # type: ignore[misc]

    @contextlib.asynccontextmanager
    async def _reading(self) -> AsyncIterator[None]:
        if self._closed:
            raise RuntimeError("the relay is closed")
        self._demand += 1
        if self._engine is None or self._engine.done():
            self._engine = asyncio.create_task(self._worker.run(), name="yeastar-relay-worker")
        try:
            yield
        finally:
            self._demand -= 1
            if not self._demand:
                await self._stop_engine()

    async def _stop_engine(self) -> None:
        engine, self._engine = self._engine, None
        if engine is not None and not engine.done():
            # Readers stop between commands (a blocking read lasts block_ms at most); only one
            # that is stuck in a handler gets cancelled.
            self._worker.stopping = True
            await asyncio.wait({engine}, timeout=self._worker.block_ms / 1000 + 0.5)
            engine.cancel()
            await asyncio.wait({engine})

    async def aclose(self) -> None:
        """Stop reading (what is being handled is not acknowledged) and give the lease up."""
        self._closed = True
        await self._stop_engine()
        for task in list(self._holds):
            task.cancel()
        if self._holds:
            await asyncio.wait(set(self._holds))
        await self._holder.stop()
