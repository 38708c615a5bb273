"""The link holder: take the lease, keep the PBX link, append every event to the streams.

Any number of processes run :meth:`Holder.run` for one PBX; the one holding the lease opens
the client's event stream (``client.subscribe``) and appends what it delivers, in order, in
batches, through the fenced append of :mod:`._lease`. The lease is renewed every third of its
time while the link is up (and for ``link_grace`` while it connects or reconnects); when
renewal or an append finds it gone, the holder takes it again if nobody else did (Redis
restarted, say) and otherwise leaves the link to the new holder.

A new holder that follows another one reports the gap like any reconnect: ``Disconnected``
then ``Connected(reconnect=True, gap=...)``, the gap counted from the last time a holder's
link was known up, on Redis's clock.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from collections.abc import Awaitable, Callable, Collection, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from yeastar_async._backoff import Backoff
from yeastar_async.events import Connected, Disconnected, Subscription

from ._codec import encode_event
from ._lease import Lease, LeaseLost, Pending
from ._stats import RelayStats
from ._worker import REDIS_DOWN, raise_if_cancelled

if TYPE_CHECKING:
    from yeastar_async.client import YeastarClient

__all__ = ["GapRecovery", "Holder"]

logger = logging.getLogger("yeastar_async.redis")

#: ``recover(client, connected)``: run (as a task) after a reconnect or a failover with a gap.
GapRecovery = Callable[["YeastarClient", Connected], Awaitable[None]]


class _LinkDown(Exception):
    """The link stayed down past ``link_grace``: the lease is given up for another process."""


@dataclass
class _Link:
    up: bool
    down_since: float


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
    ) -> None:
        self.lease = lease
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
        since_alive = await self.lease.last_alive()
        started = loop.time()
        link = _Link(up=False, down_since=started)
        self.holding.set()
        async with client.subscribe(*topics, Connected, Disconnected) as sub:
            pump = asyncio.create_task(self._pump(client, sub, link, since_alive, started))
            keeper = asyncio.create_task(self._keep(link))
            try:
                done, _ = await asyncio.wait({pump, keeper}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for task in (pump, keeper):
                    task.cancel()
                await asyncio.gather(pump, keeper, return_exceptions=True)
            for task in done:
                task.result()  # LeaseLost, _LinkDown, or what stopped the client's stream

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
                await self.lease.renew(link.up)
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
        since_alive: float | None,
        started: float,
    ) -> None:
        """Append the subscription's events in order, a batch of what is buffered at a time."""
        loop = asyncio.get_running_loop()
        first = True
        async for event in sub:
            raise_if_cancelled()
            batch = [event]
            while len(sub) and len(batch) < self._batch:
                batch.append(await anext(sub))
            pending: list[Pending] = []
            gaps: list[Connected] = []
            for item in batch:
                if isinstance(item, Connected):
                    if first and since_alive is not None:
                        # Events since the previous holder's link was last up never reached
                        # the stream: the workers see it as one reconnect.
                        gap = since_alive + (loop.time() - started)
                        item = Connected(reconnect=True, gap=max(gap, item.gap or 0.0))
                        self.stats.failovers += 1
                        pending.append(self._pending(Disconnected(reason="link holder changed")))
                    first = False
                    link.up = True
                    if item.gap is not None:
                        gaps.append(item)
                elif isinstance(item, Disconnected):
                    link.up = False
                    link.down_since = loop.time()
                pending.append(self._pending(item))
            await self._write(pending, link)
            for connected in gaps:
                self._start_recovery(client, connected)

    def _pending(self, event: Any) -> Pending:
        kind, value = encode_event(event)
        priority = getattr(event, "type", None) in self._priority
        return Pending(next(self._seq), priority, kind, value)

    async def _write(self, pending: list[Pending], link: _Link) -> None:
        backoff = Backoff(0.02, 1.0)
        while True:
            raise_if_cancelled()
            value = self.lease.value
            try:
                self.stats.appended += await self.lease.append(pending, link.up)
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
