"""Workers: read a PBX's streams through a consumer group and run the handlers.

Each stream (events, priority) has its own reader task, so a backlog of CDRs on the event
stream never delays a 30016 on the priority stream. A reader takes a batch of entries
(``XREADGROUP``), decodes each with the stream's decoder, runs its handlers in registration
order and hands it to the subscriptions that name it; an entry whose handlers all returned is
acknowledged (``XACK``, batched per read). An entry whose handler raised stays pending and is
delivered again after ``claim_idle``; after ``max_deliveries`` attempts it is acknowledged and
logged as given up. Entries pending at a consumer that died are taken over with
``XAUTOCLAIM`` once idle for ``claim_idle``; a live reader touches the entries of the batch it
is working through, so a slow batch is not mistaken for a dead worker's.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Callable, Iterable
from typing import Any, Final, Generic, TypeVar

from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from yeastar_async._backoff import Backoff
from yeastar_async.events._dispatch import Dispatcher, Handler, Target, describe, handler_name

from ._codec import EntryError, decode_entry
from ._stats import Delivery, RelayStats, reset_delivery, set_delivery

__all__ = ["REDIS_DOWN", "RelaySubscription", "StreamReader", "Worker", "raise_if_cancelled"]

logger = logging.getLogger("yeastar_async.redis")

#: What Redis raises while it is down or restarting (BusyLoadingError is a ConnectionError).
REDIS_DOWN: Final = (RedisConnectionError, RedisTimeoutError, OSError)

E_co = TypeVar("E_co", covariant=True)


def raise_if_cancelled() -> None:
    """Re-raise a cancellation the Redis client swallowed; every loop calls it each turn.

    redis-py's asyncio client can lose a cancel that lands as a command completes (the
    command returns, or raises TimeoutError, instead of CancelledError); a loop that went on
    would never stop.
    """
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


class RelaySubscription(Generic[E_co]):
    """An async iterator over the relayed events one ``relay.subscribe(*targets)`` named.

    An event is acknowledged when the loop asks for the next one (its body returned). One
    that was still being handled when the ``async with`` block was left stays pending and is
    delivered again (to this group) after ``claim_idle``. :attr:`delivery` names the entry of
    the event last yielded.
    """

    def __init__(self, targets: tuple[Target, ...], keys: frozenset[Any]) -> None:
        self._targets = targets
        self.keys = keys
        self.delivery: Delivery | None = None
        self._items: asyncio.Queue[tuple[Any, Delivery, asyncio.Future[bool]]] = asyncio.Queue()
        self._current: asyncio.Future[bool] | None = None
        self._closed = False
        self._wake = asyncio.Event()

    def __repr__(self) -> str:
        return f"<RelaySubscription {self._targets!r} {'closed' if self._closed else 'open'}>"

    @property
    def closed(self) -> bool:
        """True once the subscription no longer receives events."""
        return self._closed

    def __aiter__(self) -> RelaySubscription[E_co]:
        return self

    async def __anext__(self) -> E_co:
        self._settle(True)
        while self._items.empty():
            if self._closed:
                raise StopAsyncIteration
            self._wake.clear()
            await self._wake.wait()
        event, delivery, done = self._items.get_nowait()
        self._current, self.delivery = done, delivery
        item: E_co = event
        return item

    async def deliver(self, event: Any, delivery: Delivery) -> bool:
        """Hand ``event`` over and wait until it was handled; False if it was not."""
        if self._closed:
            return False
        done: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._items.put_nowait((event, delivery, done))
        self._wake.set()
        return await done

    def close(self) -> None:
        """Stop receiving; what was handed over and not handled stays unacknowledged."""
        self._closed = True
        self._settle(False)
        while not self._items.empty():
            self._items.get_nowait()[2].set_result(False)
        self._wake.set()

    def _settle(self, handled: bool) -> None:
        if self._current is not None and not self._current.done():
            self._current.set_result(handled)
        self._current = None


def _entries(reply: Any) -> list[Any]:
    """The entries of an XREADGROUP reply for one stream (RESP2: a list; RESP3: a dict)."""
    if not reply:
        return []
    if isinstance(reply, dict):
        (value,) = reply.values()
        return list(value[0] if value and isinstance(value[0], list) else value)
    return list(reply[0][1])


class StreamReader:
    """One consumer of one stream in one group: read, deliver, acknowledge, claim."""

    def __init__(self, worker: Worker, stream: str, claim_idle: float) -> None:
        self._worker = worker
        self._redis = worker.redis
        self.stream = stream
        self._claim_ms = max(1, round(claim_idle * 1000))
        self._claim_every = claim_idle / 2
        self._acks: list[Any] = []

    async def run(self) -> None:
        """Consume until cancelled, through Redis outages and restarts."""
        loop = asyncio.get_running_loop()
        backoff = Backoff(0.05, 2.0)
        worker = self._worker
        ready = False
        # A consumer restarted under the same name first finishes what it left pending.
        own_pending = True
        next_claim = 0.0
        down = False
        while not worker.stopping:
            raise_if_cancelled()
            try:
                if not ready:
                    await self._ensure_group()
                    ready = True
                await self._flush_acks()
                if loop.time() >= next_claim:
                    await self._claim()
                    next_claim = loop.time() + self._claim_every
                block = max(1, min(worker.block_ms, round(self._claim_every * 1000)))
                reply: Any = await self._redis.xreadgroup(
                    worker.group,
                    worker.consumer,
                    {self.stream: "0" if own_pending else ">"},
                    count=worker.batch,
                    block=None if own_pending else block,
                )
                entries = _entries(reply)
                if own_pending and not entries:
                    own_pending = False
                    continue
                await self._handle(entries, again=own_pending)
                await self._flush_acks()
                if down:
                    logger.info("relay worker: Redis answers again (%s)", self.stream)
                    down = False
                backoff.reset()
            except ResponseError as exc:
                if "NOGROUP" not in str(exc):
                    raise
                # Redis restarted without persistence (or the stream was deleted): start over.
                ready, own_pending = False, True
                self._acks.clear()
            except REDIS_DOWN as exc:
                raise_if_cancelled()
                worker.stats.redis_errors += 1
                delay = backoff.next_delay()
                level = logging.DEBUG if down else logging.WARNING
                logger.log(
                    level,
                    "relay worker: Redis unavailable (%s); retrying in %.2fs",
                    type(exc).__name__,
                    delay,
                )
                down = True
                ready = False
                await asyncio.sleep(delay)

    async def _ensure_group(self) -> None:
        try:
            # "0": a group made after entries were appended (after a Redis restart the holder
            # may write first) still gets them.
            await self._redis.xgroup_create(self.stream, self._worker.group, id="0", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    async def _flush_acks(self) -> None:
        if self._acks:
            acks = self._acks
            await self._redis.xack(self.stream, self._worker.group, *acks)
            self._worker.stats.acked += len(acks)
            self._acks = []

    async def _claim(self) -> None:
        """Take over entries idle for ``claim_idle`` at any consumer of the group."""
        start: Any = "0-0"
        worker = self._worker
        while True:
            reply = await self._redis.xautoclaim(
                self.stream,
                worker.group,
                worker.consumer,
                self._claim_ms,
                start_id=start,
                count=worker.batch,
            )
            start, entries = reply[0], reply[1]
            trimmed = reply[2] if len(reply) > 2 else []
            if trimmed:
                worker.stats.trimmed += len(trimmed)
                logger.error(
                    "relay worker: %d pending entr(ies) of %s were trimmed (MAXLEN) before a "
                    "worker handled them: those events are lost; raise maxlen",
                    len(trimmed),
                    self.stream,
                )
            if entries:
                await self._handle(entries, again=True)
                await self._flush_acks()
            if start in (b"0-0", "0-0") or not entries:
                return

    async def _attempts(self, ids: list[Any]) -> dict[Any, int]:
        """How many times each of ``ids`` (pending at this consumer) was delivered."""
        rows = await self._redis.xpending_range(
            self.stream,
            self._worker.group,
            min=ids[0],
            max=ids[-1],
            count=len(ids) + 16,
            consumername=self._worker.consumer,
        )
        return {row["message_id"]: int(row["times_delivered"]) for row in rows}

    async def _handle(self, entries: list[Any], *, again: bool) -> None:
        if not entries:
            return
        attempts = await self._attempts([e[0] for e in entries]) if again else {}
        waiting = deque(entry_id for entry_id, _ in entries)
        toucher = asyncio.create_task(self._touch(waiting))
        try:
            for entry_id, fields in entries:
                if await self._handle_one(entry_id, fields, attempts, again=again):
                    self._acks.append(entry_id)
                waiting.popleft()
        finally:
            toucher.cancel()
            await asyncio.wait({toucher}, timeout=1.0)

    async def _handle_one(
        self, entry_id: Any, fields: Any, attempts: dict[Any, int], *, again: bool
    ) -> bool:
        """Deliver one entry; True when it may be acknowledged."""
        worker = self._worker
        if not fields:
            # Pending but gone from the stream: MAXLEN trimmed it.
            worker.stats.trimmed += 1
            return True
        try:
            event = decode_entry(fields)
        except EntryError as exc:
            worker.stats.bad_entries += 1
            logger.error("relay worker: skipped entry %s of %s: %s", entry_id, self.stream, exc)
            return True
        text_id = entry_id.decode() if isinstance(entry_id, bytes) else str(entry_id)
        attempt = attempts.get(entry_id, 2) if again else 1
        return await worker.deliver(event, Delivery(self.stream, text_id, attempt))

    async def _touch(self, waiting: deque[Any]) -> None:
        """While a batch is handled, keep its entries from looking abandoned.

        Another worker claims entries idle for ``claim_idle``; the ones of a live worker that
        are still waiting their turn (or handled and not yet acknowledged) have their idle time
        reset every third of it (``XCLAIM ... JUSTID``: no delivery counted). An entry whose
        handler failed is not among them: it is claimed, and retried, after ``claim_idle``.
        """
        interval = self._claim_ms / 3000
        while True:
            await asyncio.sleep(interval)
            raise_if_cancelled()
            ids = [*waiting, *self._acks]
            if not ids:
                continue
            with contextlib.suppress(*REDIS_DOWN):
                await self._redis.xclaim(
                    self.stream,
                    self._worker.group,
                    self._worker.consumer,
                    # Only entries idle that long: not one another worker just claimed.
                    min_idle_time=round(self._claim_ms * 0.25),
                    message_ids=ids,
                    justid=True,
                )


class Worker:
    """The consumer side of a relay: the handler registry, subscriptions and stream readers."""

    def __init__(
        self,
        redis: Redis,
        streams: Iterable[tuple[str, float]],
        *,
        group: str,
        consumer: str,
        stats: RelayStats,
        batch: int,
        handler_timeout: float | None,
        max_deliveries: int,
        block_ms: int = 500,
    ) -> None:
        self.redis = redis
        self.group = group
        self.consumer = consumer
        self.stats = stats
        self.batch = batch
        self.block_ms = block_ms
        self._streams = tuple(streams)
        self._timeout = handler_timeout
        self._max_deliveries = max_deliveries
        # The stream's registry: the same targets, checks and routing keys as client.on().
        self.registry = Dispatcher()
        self._subscriptions: list[RelaySubscription[Any]] = []
        #: Readers end after their current command: cancelling one inside a Redis call can
        #: leave redis-py waiting for up to its socket timeout (a cancellation swallowed).
        self.stopping = False

    def open_subscription(self, targets: tuple[Target, ...]) -> RelaySubscription[Any]:
        """A subscription to the events ``targets`` name (ValueError/TypeError if none)."""
        if not targets:
            raise ValueError("subscribe() needs at least one event class or topic number")
        keys = frozenset(self.registry.resolve(t) for t in targets)
        sub: RelaySubscription[Any] = RelaySubscription(targets, keys)
        self._subscriptions.append(sub)
        return sub

    def close_subscription(self, sub: RelaySubscription[Any]) -> None:
        """Stop delivering to ``sub``."""
        if sub in self._subscriptions:
            self._subscriptions.remove(sub)
        sub.close()

    async def run(self) -> None:
        """Read every stream until :attr:`stopping` (or cancelled): one task per stream."""
        self.stopping = False
        readers = [StreamReader(self, stream, idle) for stream, idle in self._streams]
        tasks = [
            asyncio.create_task(r.run(), name=f"yeastar-relay-reader-{r.stream}") for r in readers
        ]
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
            for task in done:
                task.result()  # a reader only ends on an error Redis cannot recover from
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def deliver(self, event: Any, delivery: Delivery) -> bool:
        """Run the handlers and subscriptions of ``event``; True when it may be acknowledged."""
        key = Dispatcher.key_of(event)
        fns: tuple[Handler, ...] = self.registry.handlers(key) if key is not None else ()
        subs = [s for s in self._subscriptions if key in s.keys]
        if not fns and not subs:
            return True  # nothing of this group wants it
        self.stats.delivered += 1
        if delivery.attempt > 1:
            self.stats.redelivered += 1
        token = set_delivery(delivery)
        ok = True
        try:
            for fn in fns:
                ok = await self._call(fn, event) and ok
        finally:
            reset_delivery(token)
        for sub in subs:
            ok = await sub.deliver(event, delivery) and ok
        if not ok and delivery.attempt >= self._max_deliveries:
            self.stats.given_up += 1
            logger.error(
                "relay worker: gave up on %s (entry %s of %s) after %d attempts",
                describe(event),
                delivery.id,
                delivery.stream,
                delivery.attempt,
            )
            return True
        return ok

    async def _call(self, fn: Callable[[Any], Any], event: Any) -> bool:
        try:
            if self._timeout is None:
                await fn(event)
            else:
                async with asyncio.timeout(self._timeout):
                    await fn(event)
            return True
        except TimeoutError:
            self.stats.handler_errors += 1
            logger.error(
                "relay handler %s exceeded handler_timeout=%ss on %s; cancelled",
                handler_name(fn),
                self._timeout,
                describe(event),
            )
        except Exception:
            self.stats.handler_errors += 1
            logger.exception("relay handler %s failed on %s", handler_name(fn), describe(event))
        return False
