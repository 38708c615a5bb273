"""The CDRs of one holder's tenure: which the stream holds already, and a failover's recovery.

A holder that takes over from another (a failover) starts with a gap: from the last time a
holder's link was known up with everything appended (the ``alive`` key, Redis's clock) to the
new link's first acknowledgement. Of what the PBX sent in it, only CDRs can be had again: the
new holder searches them over REST, as the client's own stream does after a reconnect
(:class:`~yeastar_async.events._recovery.CdrRecovery`), and appends those the stream does not
hold yet, as ``CdrRecovered``.

"Does not hold yet" is decided by a ledger seeded from the stream itself: the 30012 entries,
live or recovered, appended since a little before the gap, whoever wrote them. Only the lease
holder can append (the fenced script), so once this process holds the lease the stream up to
now is final. The same ledger then filters every CDR of the tenure: a live 30012 of a call
that was recovered, and a ``CdrRecovered`` of the client's own reconnect recovery that the
stream holds already, are dropped (``RelayStats.duplicate_cdrs``).

Entries that ``MAXLEN`` trimmed before the new holder read them cannot be seen: their CDRs may
be appended again (at-least-once, as everywhere in the relay).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, ClassVar, Final

from redis.asyncio import Redis

from yeastar_async.errors import YeastarError
from yeastar_async.events import CdrRecovered, NewCdr
from yeastar_async.events._recovery import (
    LEDGER_SIZE,
    RECOVERY_TIMEOUT,
    CdrLedger,
    CdrRecovery,
    recovered_keys,
)

from ._codec import KIND_EVENT, KIND_RECOVERED, EntryError, decode_entry, entry_field
from ._stats import RelayStats

if TYPE_CHECKING:
    from yeastar_async.client import YeastarClient

__all__ = ["TenureCdrs"]

logger = logging.getLogger("yeastar_async.redis")

#: Entries read per XRANGE while seeding the ledger.
_PAGE: Final = 1000


class TenureCdrs:
    """The ledger of the CDRs in the stream, for one tenure of the link."""

    #: Seconds of safety the search keeps on both ends of a gap (clock skew, late records).
    MARGIN: ClassVar[float] = 120.0

    def __init__(self, client: YeastarClient, stats: RelayStats, *, seeding: bool = False) -> None:
        self._client = client
        self._stats = stats
        self._recovery = CdrRecovery(client._fetch_cdrs, margin=self.MARGIN)
        # The keys of every call in the ledger, kept between the CdrRecovered of one burst;
        # None once a live CDR changed the ledger.
        self._seen: set[tuple[object, ...]] | None = None
        # ``seeding``: a seed will replace the ledger. The CDRs admitted until it did (30012
        # as a priority topic goes out during the search) are entered again into the seeded
        # ledger: its read of the stream may have run before they were appended.
        self._early: list[NewCdr] | None = [] if seeding else None

    def admit(self, event: object) -> bool:
        """Whether ``event`` goes to the stream: ``False`` for a CDR it holds already."""
        if isinstance(event, CdrRecovered):
            fmt, zone = self._client.cdr.formats()
            ledger = self._recovery.ledger
            if self._seen is None:
                self._seen = ledger.seen()
            fresh = ledger.recovered(recovered_keys(event, fmt, zone), self._seen)
        elif isinstance(event, NewCdr):
            self._seen = None
            fresh = self._recovery.ledger.live(event)
        else:
            return True
        if not fresh:
            self._stats.duplicate_cdrs += 1
        elif self._early is not None:
            self._early.append(event)
        return fresh

    async def seed(self, redis: Redis, streams: Sequence[str], since_ms: int) -> int:
        """Enter the CDRs appended to ``streams`` from ``since_ms`` (Redis ms) on; how many.

        Both of a PBX's streams: a holder with other ``priority_topics`` (a rolling deploy
        that changed them) appended its CDRs to the other one.

        The CDRs :meth:`admit` let through before (``seeding``) are entered on top. What a
        failed read raises (Redis errors) leaves everything as it was: call it again, or
        :meth:`unseeded`.
        """
        found: list[NewCdr] = []
        for stream in streams:
            found += await self._read(redis, stream, since_ms)
        count = len(found)
        found += self._early or ()
        # Room for all of them and for the calls of the tenure.
        ledger = CdrLedger(max(LEDGER_SIZE, 2 * len(found)))
        fmt, zone = self._client.cdr.formats()
        for event in found:
            if isinstance(event, CdrRecovered):
                ledger.recovered(recovered_keys(event, fmt, zone), set())
            else:
                ledger.live(event)
        self._recovery.ledger = ledger
        self._seen = None
        self._early = None
        return count

    @staticmethod
    async def _read(redis: Redis, stream: str, since_ms: int) -> list[NewCdr]:
        found: list[NewCdr] = []
        start = str(max(0, since_ms))
        while True:
            reply = await redis.xrange(stream, min=start, max="+", count=_PAGE)
            page: Sequence[Any] = reply or ()
            for _, fields in page:
                try:
                    if entry_field(fields, b"k") not in (KIND_EVENT, KIND_RECOVERED):
                        continue
                    event = decode_entry(fields)
                except EntryError:
                    continue  # not ours: the workers skip it too
                if isinstance(event, NewCdr):
                    found.append(event)
            if len(page) < _PAGE:
                return found
            last = page[-1][0]
            start = "(" + (last.decode() if isinstance(last, bytes) else str(last))

    def unseeded(self) -> None:
        """Go on without a seed (the stream could not be read): the ledger in use is kept."""
        self._early = None

    async def recover(self, since: float) -> tuple[list[CdrRecovered], str]:
        """The CDRs of calls that ended from ``since`` (wall seconds) to now that the stream
        does not hold, oldest first, and why the search failed (``""``: it did not)."""
        try:
            async with asyncio.timeout(RECOVERY_TIMEOUT):
                events, duplicates = await self._recovery.recover(since, time.time())
        except (YeastarError, OSError, TimeoutError, ValueError) as exc:
            error = self._client._transport.redact(str(exc) or type(exc).__name__)
            logger.warning("relay: the CDRs of the failover gap could not be fetched: %s", error)
            return [], error
        self._seen = None
        self._stats.recovered_cdrs += len(events)
        self._stats.duplicate_cdrs += duplicates
        if events:
            logger.info("relay: %d CDR(s) of the failover gap recovered", len(events))
        return events, ""
