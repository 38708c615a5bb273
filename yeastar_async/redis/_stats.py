"""The relay's counters and the delivery a handler is running for."""

from __future__ import annotations

import time
from contextvars import ContextVar
from dataclasses import dataclass

__all__ = ["Delivery", "RelayStats", "current_delivery"]


@dataclass(slots=True)
class RelayStats:
    """Counters of one :class:`~yeastar_async.redis.EventRelay` (this process only)."""

    appended: int = 0
    """Events this process wrote to the streams while it held the link."""
    append_retries: int = 0
    """Appends retried because Redis did not answer (each retry is written at most once)."""
    leases_acquired: int = 0
    """Times this process took the lease (became the link holder)."""
    fenced: int = 0
    """Appends Redis refused because the lease had passed to another process (nothing written)."""
    leases_lost: int = 0
    """Times it lost the lease to another process (or gave it up, its link down too long)."""
    failovers: int = 0
    """Tenures that began after another holder's link: each reported a gap."""
    recovered_cdrs: int = 0
    """CDRs of a failover's gap this process fetched over REST and appended (``CdrRecovered``)."""
    duplicate_cdrs: int = 0
    """CDRs not appended because the stream held their call already (live or recovered)."""
    delivered: int = 0
    """Stream entries handed to this worker's handlers and subscriptions."""
    acked: int = 0
    """Entries acknowledged (``XACK``) by this worker."""
    redelivered: int = 0
    """Entries delivered to this worker again after a first delivery (claimed from a worker
    that died or failed, or its own unacknowledged ones after a restart): possible duplicates."""
    handler_errors: int = 0
    """Handler calls that raised or exceeded ``handler_timeout`` (the entry stays pending)."""
    given_up: int = 0
    """Entries acknowledged without success after ``max_deliveries`` attempts (logged)."""
    trimmed: int = 0
    """Pending entries that ``MAXLEN`` trimmed away before a worker could handle them (lost)."""
    bad_entries: int = 0
    """Entries that were not written by this library (acknowledged and skipped)."""
    redis_errors: int = 0
    """Redis commands that failed (connection lost, timeout); each was retried."""


@dataclass(frozen=True, slots=True)
class Delivery:
    """Which stream entry a handler is running for: the key of an idempotent handler."""

    stream: str
    """The Redis key of the stream."""
    id: str
    """The entry's ID (``"1700000000000-0"``): unique per stream, the same on a redelivery."""
    attempt: int
    """1 on the first delivery; more when the entry is delivered again (possibly handled)."""

    @property
    def appended_at(self) -> float:
        """When the holder appended the entry (``time.time()`` seconds, Redis's clock)."""
        return int(self.id.partition("-")[0]) / 1000

    @property
    def age(self) -> float:
        """Seconds since the entry was appended (this host's clock against Redis's).

        A 30016 older than the PBX's 10 s window is past answering: a claimed one may be.
        """
        return time.time() - self.appended_at


_CURRENT: ContextVar[Delivery | None] = ContextVar("yeastar_relay_delivery", default=None)


def current_delivery() -> Delivery | None:
    """The :class:`Delivery` the calling relay handler runs for (``None`` outside a handler).

    Use ``delivery.id`` (with ``delivery.stream``) as an idempotency key: a redelivered entry
    has the same ID.
    """
    return _CURRENT.get()


def set_delivery(delivery: Delivery | None) -> object:
    """Set the current delivery (returns the token for :func:`reset_delivery`)."""
    return _CURRENT.set(delivery)


def reset_delivery(token: object) -> None:
    """Undo :func:`set_delivery`."""
    _CURRENT.reset(token)  # type: ignore[arg-type]
