"""The link holder: take the lease, keep the PBX link, append every event to the streams.

Any number of processes run :meth:`Holder.run` for one PBX; the one holding the lease opens
the client's event stream (``client.subscribe``) and appends what it delivers, in order, in
batches, through the fenced append of :mod:`._lease`. The lease is renewed every third of its
time while the link is up (and for ``link_grace`` while it connects or reconnects); when
renewal or an append finds it gone, the holder takes it again if nobody else did (Redis
restarted, say) and otherwise leaves the link to the new holder.

A new holder that follows another one reports the gap like any reconnect: ``Disconnected``
then ``Connected(reconnect=True, gap=...)``, the gap counted from the last time a holder's
link was known up, on Redis's clock; then the CDRs of the gap, fetched over REST, that the
stream does not hold yet (:mod:`._gap`). While that search runs, the priority topics (30016's
10-second window) are appended as they come; the other events wait, so that the workers see
the recovered CDRs right after the ``Connected``, as from a client's own stream.

The ``alive`` mark (what the next holder's recovery starts from) moves only while the link is
up *and* every CDR a ``Connected`` announced is appended: a holder that dies in the middle of
a recovery leaves the whole gap to its successor. A failover whose search failed keeps it
back until the gap's CDRs are in (a successor's search covers them): the holder searches
again, with a backoff, and appends what it finds then; so does a reconnect of its own link
whose recovery (the client's) failed.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
from collections.abc import Awaitable, Callable, Collection, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from redis.asyncio import Redis

from yeastar_async._backoff import Backoff
from yeastar_async.events import CdrRecovered, Connected, Disconnected, NewCdr, Subscription
from yeastar_async.events._recovery import RECOVERY_TIMEOUT

from ._codec import encode_event
from ._gap import TenureCdrs
from ._lease import Keys, Lease, LeaseLost, Pending
from ._stats import RelayStats
from ._worker import REDIS_DOWN, raise_if_cancelled

if TYPE_CHECKING:
    from yeastar_async.client import YeastarClient

__all__ = ["GapRecovery", "Holder"]

logger = logging.getLogger("yeastar_async.redis")

#: ``recover(client, connected)``: run (as a task) after a reconnect or a failover with a gap.
GapRecovery = Callable[["YeastarClient", Connected], Awaitable[None]]


#: Events (other than the priority topics) held back while a failover's CDRs are searched;
#: past this many the subscription is left to fill (and hold the stream's reader back).
_HELD_MAX: Final = 10_000


class _LinkDown(Exception):
    """The link stayed down past ``link_grace``: the lease is given up for another process."""


@dataclass
class _Link:
    up: bool
    down_since: float
    #: CDRs a Connected announced (``recovered_cdrs``) that have not come through yet.
    behind: int = 0
    #: Wall-clock start of a gap whose CDR search failed (they are not in the stream yet).
    unrecovered: float | None = None

    @property
    def current(self) -> bool:
        """Whether the stream holds everything up to now: what moves the ``alive`` mark."""
        return self.up and self.behind == 0 and self.unrecovered is None


@dataclass(frozen=True)
class _Failover:
    """A tenure that follows another holder's: where the gap began."""

    #: Seconds from the previous holder's last ``alive`` mark to ``started``.
    age: float
    #: The loop time the tenure began.
    started: float
    #: Wall-clock start of the CDR search (None: no recovery).
    since: float | None
    #: Redis ms from which the stream's CDRs are read into the ledger.
    seed_from: int


_NOTHING: Final = object()


class _Source:
    """The subscription with at most one read pending in a task, so that the pump can wait
    for the next event and for something else at once without losing either."""

    def __init__(self, sub: Subscription[Any], first: Sequence[Any] = ()) -> None:
        self._sub = sub
        self._next: asyncio.Future[Any] | None = None
        self._first = list(first)  # handed out before the subscription's events

    async def batch(self, size: int, other: asyncio.Future[Any] | None = None) -> list[Any]:
        """The next event and what else is buffered, ``size`` at most; ``[]`` at the end or
        when ``other`` finished first (the read stays pending)."""
        if self._first:
            batch, self._first = self._first, []
            return batch
        try:
            if other is not None:
                first = await self.next_or(other)
                if first is _NOTHING:
                    return []
            elif self._next is not None:
                task, self._next = self._next, None
                first = await task
            else:
                first = await anext(self._sub)
        except StopAsyncIteration:
            return []
        batch = [first]
        while len(self._sub) and len(batch) < size:
            batch.append(await anext(self._sub))
        return batch

    async def next_or(self, other: asyncio.Future[Any]) -> Any:
        """The next event, or :data:`_NOTHING` when ``other`` finished first (the read stays
        pending); StopAsyncIteration at the end."""
        if self._next is None:
            self._next = asyncio.ensure_future(self._sub.__anext__())
        await asyncio.wait({self._next, other}, return_when=asyncio.FIRST_COMPLETED)
        if not self._next.done():
            return _NOTHING
        task, self._next = self._next, None
        return task.result()

    def close(self) -> None:
        """Cancel a pending read."""
        if self._next is not None:
            self._next.cancel()


class Holder:
    """The producer side of a relay for one PBX."""

    def __init__(
        self,
        lease: Lease,
        stats: RelayStats,
        *,
        lease_time: float,
        link_grace: float,
        priority_topics: Collection[int],
        batch: int,
        gap_recovery: GapRecovery | None,
        on_lease: Callable[[bool], None] | None = None,
        redis: Redis,
        keys: Keys,
        recover_cdrs: bool = True,
    ) -> None:
        self.lease = lease
        self._redis = redis
        self._keys = keys
        self._recover_cdrs = recover_cdrs
        self.stats = stats
        self._lease_time = lease_time
        self._grace = link_grace
        self._priority = frozenset(priority_topics)
        self._batch = batch
        self._gap_recovery = gap_recovery
        self._relock = asyncio.Lock()
        self._seq = itertools.count(1)
        self._recoveries: set[asyncio.Task[None]] = set()
        self.holding = asyncio.Event()
        self._on_lease = on_lease

    async def run(self, client: YeastarClient, topics: Sequence[int]) -> None:
        """Hold the link whenever this process has the lease, until the client closes."""
        backoff = Backoff(0.05, 2.0)
        poll = max(0.005, self._lease_time / 10)
        down = False
        while not client.closed:
            raise_if_cancelled()
            try:
                if not await self.lease.acquire():
                    # Wake as the lease runs out: failover within the lease time.
                    left = await self.lease.remaining()
                    await asyncio.sleep(min(max(left, 0.005), poll))
                    continue
                down = False
                backoff.reset()
                self.stats.leases_acquired += 1
                logger.info("relay: took the lease %s (fence %d)", self.lease, self.lease.fence)
                self._tell(True)
                try:
                    await self._tenure(client, topics)
                    return  # the subscription ended: the client was closed
                except LeaseLost as exc:
                    self.stats.leases_lost += 1
                    logger.warning("relay: %s; another process holds the link now", exc)
                except _LinkDown:
                    self.stats.leases_lost += 1
                    logger.warning(
                        "relay: the PBX link was down for over %.1fs; lease given up", self._grace
                    )
                    await self._release()
                    # Let another process (maybe with a working route to the PBX) try first.
                    await asyncio.sleep(self._lease_time)
                finally:
                    self.holding.clear()
                    self._tell(False)
            except REDIS_DOWN as exc:
                raise_if_cancelled()
                self.stats.redis_errors += 1
                delay = backoff.next_delay()
                level = logging.DEBUG if down else logging.WARNING
                logger.log(
                    level,
                    "relay: Redis unavailable (%s); retrying in %.2fs",
                    type(exc).__name__,
                    delay,
                )
                down = True
                await asyncio.sleep(delay)

    def _tell(self, holding: bool) -> None:
        if self._on_lease is not None:
            try:
                self._on_lease(holding)
            except Exception:
                logger.exception("relay: on_lease callback failed")

    async def stop(self) -> None:
        """Give the lease up (best effort) and end the gap recoveries still running."""
        for task in list(self._recoveries):
            task.cancel()
        await self._release()

    async def _release(self) -> None:
        with contextlib.suppress(*REDIS_DOWN):  # it expires on its own
            await self.lease.release()

    async def _tenure(self, client: YeastarClient, topics: Sequence[int]) -> None:
        loop = asyncio.get_running_loop()
        failover = await self._failover(client, topics)
        link = _Link(up=False, down_since=loop.time())
        seeding = failover is not None and failover.since is not None
        cdrs = TenureCdrs(client, self.stats, seeding=seeding)
        self.holding.set()
        # A link already up (the client also listens, or keeps a subscription of its own)
        # sends this subscription no Connected: one stands for it, or the link would count as
        # down (the lease given up) and a failover's gap never appended.
        first = [Connected()] if client.connected else []
        async with client.subscribe(*topics, Connected, Disconnected) as sub:
            pump = asyncio.create_task(self._pump(client, sub, link, cdrs, failover, topics, first))
            keeper = asyncio.create_task(self._keep(link))
            try:
                done, _ = await asyncio.wait({pump, keeper}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for task in (pump, keeper):
                    task.cancel()
                await asyncio.gather(pump, keeper, return_exceptions=True)
            for task in done:
                task.result()  # LeaseLost, _LinkDown, or what stopped the client's stream

    async def _failover(self, client: YeastarClient, topics: Sequence[int]) -> _Failover | None:
        """Where the gap before this tenure began (None: no holder was ever up)."""
        alive = await self.lease.alive()
        started = asyncio.get_running_loop().time()
        if alive is None:
            return None
        alive_ms, now_ms = alive
        age = max(0.0, (now_ms - alive_ms) / 1000)
        if not self._recover_cdrs or NewCdr.TOPIC not in topics:
            return _Failover(age, started, None, 0)
        wall = time.time()
        since = wall - age
        own = client.checkpoint  # this client's own link (an earlier tenure) ended here
        if own is not None:
            since = min(since, own.time)
        # The ledger reads back twice the search's margin before it: the CDRs the previous
        # holders appended near the gap's start, whatever the skew between the clocks.
        seed_ms = round((wall - since + 2 * TenureCdrs.MARGIN) * 1000)
        return _Failover(age, started, since, now_ms - seed_ms)

    async def _regain(self, value: str | None) -> bool:
        """After the lease ``value`` was found lost: take it again if nobody else holds it."""
        async with self._relock:
            if self.lease.value is not None and self.lease.value != value:
                return True  # the other task took it again already
            if await self.lease.acquire():
                self.stats.leases_acquired += 1
                logger.warning(
                    "relay: the lease had lapsed (Redis restarted or stalled); took it again "
                    "(fence %d) and kept the link",
                    self.lease.fence,
                )
                return True
            return False

    async def _keep(self, link: _Link) -> None:
        """Renew the lease while the link is up (or within ``link_grace`` of going down)."""
        loop = asyncio.get_running_loop()
        interval = self._lease_time / 3
        while True:
            raise_if_cancelled()
            if not link.up and loop.time() - link.down_since > self._grace:
                raise _LinkDown
            value = self.lease.value
            try:
                await self.lease.renew(link.current)
            except LeaseLost:
                if not await self._regain(value):
                    raise
            except REDIS_DOWN as exc:
                raise_if_cancelled()
                self.stats.redis_errors += 1
                logger.debug("relay: lease renewal failed (%s)", type(exc).__name__)
            await asyncio.sleep(interval)

    async def _pump(
        self,
        client: YeastarClient,
        sub: Subscription[Any],
        link: _Link,
        cdrs: TenureCdrs,
        failover: _Failover | None,
        topics: Sequence[int],
        first: Sequence[Any] = (),
    ) -> None:
        """Append the subscription's events in order, a batch of what is buffered at a time
        (``first`` before them)."""
        source = _Source(sub, first)
        # The search of a gap whose CDRs could not be fetched, tried again, and from when.
        retry: asyncio.Future[list[Any]] | None = None
        retry_since: float | None = None
        try:
            while True:
                if retry is not None and retry.done():
                    found, retry = retry.result(), None
                    link.unrecovered = None  # alive moves with their append
                    if found:
                        await self._write([self._pending(e) for e in found], link)
                if link.unrecovered != retry_since:
                    if retry is not None:
                        retry.cancel()
                    retry_since, retry = link.unrecovered, None
                    if retry_since is not None:
                        retry = asyncio.ensure_future(self._search_again(cdrs, retry_since))
                batch = await source.batch(self._batch, retry)
                if not batch:
                    if retry is not None and retry.done():
                        continue
                    break
                raise_if_cancelled()
                # Only the tenure's first Connected is looked for: no scan on the hot path after.
                at = None
                if failover is not None:
                    at = next((i for i, e in enumerate(batch) if isinstance(e, Connected)), None)
                if failover is not None and at is not None:
                    # The first Connected of a tenure after another holder's: the gap.
                    await self._forward(client, batch[:at], link, cdrs)
                    batch = await self._take_over(
                        client, source, batch[at], batch[at + 1 :], link, cdrs, failover, topics
                    )
                    failover = None
                await self._forward(client, batch, link, cdrs)
        finally:
            source.close()
            if retry is not None:
                retry.cancel()

    async def _search_again(self, cdrs: TenureCdrs, since: float) -> list[Any]:
        """Search the CDRs of a gap from ``since`` until it answers; the ones to append."""
        backoff = Backoff(1.0, 30.0)
        while True:
            await asyncio.sleep(backoff.next_delay())
            try:
                found, error = await cdrs.recover(since)
            except Exception:
                logger.exception("relay: the CDR search of a gap failed")
                continue
            if not error:
                return found

    async def _forward(
        self, client: YeastarClient, batch: Sequence[Any], link: _Link, cdrs: TenureCdrs
    ) -> None:
        """Append ``batch`` (but the CDRs the stream holds already), tracking the link."""
        loop = asyncio.get_running_loop()
        pending: list[Pending] = []
        gaps: list[Connected] = []
        for item in batch:
            if isinstance(item, Connected):
                link.up = True
                link.behind = item.recovered_cdrs  # that many CdrRecovered follow
                if item.gap is not None:
                    gaps.append(item)
                    if item.recovery_error and self._recover_cdrs:
                        # The client could not fetch its own gap's CDRs: the holder does.
                        since = time.time() - item.gap
                        if link.unrecovered is not None:
                            since = min(since, link.unrecovered)
                        link.unrecovered = since
            elif isinstance(item, Disconnected):
                link.up = False
                link.down_since = loop.time()
            elif isinstance(item, NewCdr):
                if isinstance(item, CdrRecovered):
                    link.behind = max(0, link.behind - 1)
                if not cdrs.admit(item):
                    continue
            pending.append(self._pending(item))
        if pending:
            await self._write(pending, link)
        for connected in gaps:
            self._start_recovery(client, connected)

    async def _take_over(
        self,
        client: YeastarClient,
        source: _Source,
        connected: Connected,
        rest: Sequence[Any],
        link: _Link,
        cdrs: TenureCdrs,
        failover: _Failover,
        topics: Sequence[int],
    ) -> list[Any]:
        """Append the failover's gap (with its CDRs); returns the events held back meanwhile."""
        loop = asyncio.get_running_loop()
        link.up = True
        self.stats.failovers += 1
        gap = max(failover.age + (loop.time() - failover.started), connected.gap or 0.0)
        held = list(rest)
        found: list[Any] = []
        error = ""
        lost = frozenset(topics)
        if failover.since is not None:
            lost -= {NewCdr.TOPIC}
            link.unrecovered = failover.since  # alive waits for the gap's CDRs
            search = asyncio.ensure_future(self._search(cdrs, failover))
            try:
                held = await self._while_searching(client, search, source, held, link, cdrs)
                found, error = await search
            finally:
                search.cancel()
        items = [
            Disconnected(reason="link holder changed", unrecoverable_topics=lost),
            Connected(
                reconnect=True,
                gap=gap,
                recovered_cdrs=len(found),
                recovery_error=error,
                unrecoverable_topics=lost,
            ),
            *found,
        ]
        # A Connected of the client's own recovery (this process held the link before) is
        # followed by its CdrRecovered: the ledger drops those the search found.
        link.behind = connected.recovered_cdrs
        # A failed search leaves the alive mark where the gap began (a holder that dies
        # leaves the gap to the next one) while this one searches again.
        link.unrecovered = failover.since if error else None
        if any(isinstance(e, Disconnected) for e in held):
            # The link dropped during the search: not up to date now (the held Connected, if
            # any, says when it is again).
            link.up = False
            link.down_since = loop.time()
        await self._write([self._pending(item) for item in items], link)
        self._start_recovery(client, items[1])
        return held

    async def _search(self, cdrs: TenureCdrs, failover: _Failover) -> tuple[list[Any], str]:
        assert failover.since is not None
        await self._seed(cdrs, failover)
        try:
            return await cdrs.recover(failover.since)
        except Exception as exc:
            # recover() returns its expected failures as the error; anything else must not
            # end the link: the gap is reported, its CDRs named as not recovered.
            logger.exception("relay: the CDR search of the failover gap failed")
            return [], f"CDR search failed ({type(exc).__name__})"

    async def _seed(self, cdrs: TenureCdrs, failover: _Failover) -> None:
        """Read the stream's CDRs into the ledger, trying again while Redis is away (nothing
        can be appended meanwhile anyway), for as long as a search may take."""
        deadline = asyncio.get_running_loop().time() + RECOVERY_TIMEOUT
        backoff = Backoff(0.02, 1.0)
        while True:
            raise_if_cancelled()
            try:
                await cdrs.seed(self._redis, self._keys.streams, failover.seed_from)
                return
            except REDIS_DOWN as exc:
                raise_if_cancelled()
                self.stats.redis_errors += 1
                delay = backoff.next_delay()
                if asyncio.get_running_loop().time() + delay < deadline:
                    logger.debug("relay: reading the stream's CDRs back failed (%r)", exc)
                    await asyncio.sleep(delay)
                    continue
                # Without the ledger, CDRs of the previous holder may be appended again:
                # duplicates are allowed (at-least-once), losing the gap's CDRs is not.
                logger.warning(
                    "relay: could not read the stream's CDRs back (%s); recovered ones may repeat",
                    type(exc).__name__,
                )
                cdrs.unseeded()
                return

    async def _while_searching(
        self,
        client: YeastarClient,
        search: asyncio.Future[Any],
        source: _Source,
        held: list[Any],
        link: _Link,
        cdrs: TenureCdrs,
    ) -> list[Any]:
        """Append the priority events while ``search`` runs; returns the others, in order."""
        urgent = [e for e in held if self._urgent(e)]
        waiting = [e for e in held if not self._urgent(e)]
        while True:
            if urgent:
                await self._forward(client, urgent, link, cdrs)
                urgent = []
            if search.done():
                return waiting
            if len(waiting) >= _HELD_MAX:
                await asyncio.wait({search})
                return waiting
            try:
                item = await source.next_or(search)
            except StopAsyncIteration:
                await asyncio.wait({search})
                return waiting
            if item is _NOTHING:
                continue
            (urgent if self._urgent(item) else waiting).append(item)

    def _urgent(self, event: object) -> bool:
        """What goes out during a search: the priority topics' live events. A CdrRecovered
        (30012 as a priority topic) stays behind its Connected, which counts it."""
        return self._is_priority(event) and not isinstance(event, CdrRecovered)

    def _is_priority(self, event: object) -> bool:
        return getattr(event, "type", None) in self._priority

    def _pending(self, event: Any) -> Pending:
        kind, value = encode_event(event)
        return Pending(next(self._seq), self._is_priority(event), kind, value)

    async def _write(self, pending: list[Pending], link: _Link) -> None:
        backoff = Backoff(0.02, 1.0)
        while True:
            raise_if_cancelled()
            value = self.lease.value
            try:
                self.stats.appended += await self.lease.append(pending, link.current)
                return
            except LeaseLost:
                if not await self._regain(value):
                    if value is not None:  # refused by the script, not by the local check
                        self.stats.fenced += 1
                    raise
            except REDIS_DOWN as exc:
                raise_if_cancelled()
                # The same sequence numbers again: what the lost reply had written is skipped.
                self.stats.append_retries += 1
                self.stats.redis_errors += 1
                delay = backoff.next_delay()
                logger.warning(
                    "relay: append failed (%s); %d event(s) held back, retrying in %.2fs",
                    type(exc).__name__,
                    len(pending),
                    delay,
                )
                await asyncio.sleep(delay)

    def _start_recovery(self, client: YeastarClient, connected: Connected) -> None:
        if self._gap_recovery is None:
            return
        task = asyncio.create_task(self._recover(self._gap_recovery, client, connected))
        self._recoveries.add(task)
        task.add_done_callback(self._recoveries.discard)

    @staticmethod
    async def _recover(recover: GapRecovery, client: YeastarClient, connected: Connected) -> None:
        try:
            await recover(client, connected)
        except Exception:
            logger.exception("relay: gap recovery failed after a %.1fs gap", connected.gap or 0.0)
