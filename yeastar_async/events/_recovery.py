"""CDR recovery after a gap in the event stream, and the ledger that delivers each CDR once.

Every topic but 30012 is live-only: the PBX keeps no history of call states, presence or
registrations. CDRs it keeps, so after a gap (a reconnect, a rotation that did not overlap, a
``listen(since=...)`` of a restarted process) the stream asks ``cdr/search`` for the calls of
the gap window and delivers those the handlers have not seen as
:class:`~yeastar_async.events.CdrRecovered`.

Matching a REST record with a live 30012: the manual's samples do not show the same value in
the event's ``call_id`` (``"1651057476.362"``, Asterisk's ``<unix start>.<n>``) and the record's
``uid`` (``"20220614111928CC54A"``), so the ledger matches on either of two keys: the id
(``call_id`` == ``uid``, as the FakePBX and some firmware have it) and the call's start second
plus both parties' numbers (the ``call_id``'s integer part against the record's ``timestamp``,
one second either way; two calls between the same parties starting in the same second do not
happen).

The window: a 30012 is sent when a call ends, but ``cdr/search`` filters on the start time, so
the search starts ``lookback`` seconds (a long call) before the gap and the records that ended
before the gap minus ``margin`` are left out (they were delivered live, while a link was up).
"""

from __future__ import annotations

import re
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, tzinfo
from typing import Any, Final

from yeastar_async.events.models import CdrInfo, CdrRecovered, NewCdr

__all__ = ["RECOVERY_TIMEOUT", "CdrLedger", "CdrRecovery", "Checkpoint", "Fetch", "recovered_keys"]

#: What the client hands the stream: the CDR rows whose start time is in ``[t0, t1]`` (wall
#: seconds), with the ``strftime`` format and zone the PBX shows times in.
Fetch = Callable[[float, float], Awaitable[tuple[Sequence[Any], str, tzinfo | None]]]

#: Live calls (and recovered ones) remembered by the ledger: it must hold the calls that ended
#: within ``margin`` before a gap (a recovery fetches those too); far more than a PBX ends in
#: two minutes.
LEDGER_SIZE: Final = 4096
#: Upper bound of one recovery's REST search (the events after the gap wait for it).
RECOVERY_TIMEOUT: Final = 60.0
_NUMBER: Final = re.compile(r"<([^<>]*)>\s*$")


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """Where a stream's delivery stood: ``time`` in wall-clock seconds (``time.time()``).

    Store ``checkpoint.time`` (or the checkpoint) and pass it to ``listen(since=...)`` after
    a restart: the CDRs of calls that ended since then are recovered over REST.
    """

    time: float

    def __post_init__(self) -> None:
        if isinstance(self.time, bool) or not isinstance(self.time, (int, float)):
            raise TypeError(f"Checkpoint.time must be wall-clock seconds, got {self.time!r}")

    @classmethod
    def now(cls) -> Checkpoint:
        """A checkpoint of this moment."""
        return cls(time.time())


def _number(party: object) -> str:
    """The number of a party as REST or the event shows it (``"Name<2005>"`` -> ``"2005"``)."""
    text = str(party or "").strip()
    found = _NUMBER.search(text)
    return found.group(1).strip() if found else text


def event_keys(event: NewCdr) -> list[tuple[object, ...]]:
    """The ledger keys of a live 30012."""
    msg = event.msg
    keys: list[tuple[object, ...]] = []
    if msg.call_id:
        keys.append(("id", msg.call_id))
        head = msg.call_id.split(".", 1)[0]
        if head.isdigit():
            keys.append(("when", int(head), _number(msg.call_from), _number(msg.call_to)))
    return keys


@dataclass(frozen=True, slots=True)
class _Row:
    """What recovery needs of one REST record, whatever its API version."""

    uid: str
    start: float | None
    end: float | None
    call_from: str
    call_to: str
    record: Any

    def keys(self) -> list[tuple[object, ...]]:
        keys: list[tuple[object, ...]] = [("id", self.uid)] if self.uid else []
        if self.start is not None:
            second = int(self.start)
            keys += [
                ("when", s, self.call_from, self.call_to) for s in (second - 1, second, second + 1)
            ]
        return keys

    def event(self) -> CdrRecovered:
        rec = self.record
        talk = getattr(rec, "talk_duration", None)
        if talk is None:
            talk = getattr(rec, "handling_duration", None)
        duration = getattr(rec, "duration", None)
        if duration is None:
            duration = getattr(rec, "call_duration", None)
        status = getattr(rec, "disposition", None) or getattr(rec, "last_status", None) or ""
        msg = CdrInfo(
            call_id=self.uid,
            time_start=str(getattr(rec, "time", None) or ""),
            call_from=self.call_from,
            call_to=self.call_to,
            call_duration=int(duration or 0),
            talk_duration=int(talk or 0),
            src_trunk_name=str(getattr(rec, "src_trunk", None) or ""),
            dst_trunk_name=str(getattr(rec, "dst_trunk", None) or ""),
            status=str(status),
            type=str(getattr(rec, "call_type", None) or ""),
        )
        return CdrRecovered(msg=msg, record=rec)


def recovered_keys(event: CdrRecovered, fmt: str, zone: tzinfo | None) -> list[tuple[object, ...]]:
    """The ledger keys of a recovered CDR (from its REST record when it has one)."""
    if event.record is None:
        return [("id", event.msg.call_id)] if event.msg.call_id else []
    return _row(event.record, fmt, zone).keys()


def _row(record: Any, fmt: str, zone: tzinfo | None) -> _Row:
    start: float | None = None
    stamp = getattr(record, "timestamp", None)
    if isinstance(stamp, int) and not isinstance(stamp, bool):
        start = float(stamp)
    else:
        # v2.0 rows carry only the time as the PBX displays it.
        text = getattr(record, "time", None)
        if isinstance(text, str):
            try:
                shown = datetime.strptime(text.strip(), fmt)
            except ValueError:
                shown = None
            if shown is not None:
                start = (shown.replace(tzinfo=zone) if zone is not None else shown).timestamp()
    duration = getattr(record, "duration", None)
    if duration is None:
        duration = getattr(record, "call_duration", None)
    end = None if start is None else start + float(duration or 0)
    number_from = getattr(record, "call_from_number", None) or _number(
        getattr(record, "call_from", "")
    )
    number_to = getattr(record, "call_to_number", None) or _number(getattr(record, "call_to", ""))
    return _Row(
        uid=str(getattr(record, "uid", None) or ""),
        start=start,
        end=end,
        call_from=str(number_from),
        call_to=str(number_to),
        record=record,
    )


class CdrLedger:
    """The calls whose CDR was delivered, live or recovered, the last ``size`` of each.

    A live 30012 costs one dict insertion (its ``call_id`` and parties); the keys of live
    calls are only derived when a recovery asks (rarely). A live 30012 is held back only when
    its call was *recovered*: the PBX's own live frames are passed on as they come.
    """

    def __init__(self, size: int = LEDGER_SIZE) -> None:
        self._size = size
        # call_id -> (caller, callee) of the live 30012 frames, oldest first (a plain dict:
        # cheaper than an OrderedDict on the hot path).
        self._live: dict[str, tuple[str, str]] = {}
        # Keys of the recovered calls.
        self._recovered: OrderedDict[tuple[object, ...], None] = OrderedDict()

    def __len__(self) -> int:
        return len(self._live) + len(self._recovered)

    def live(self, event: NewCdr) -> bool:
        """Record a live 30012; ``False`` when its call was recovered already."""
        if self._recovered and any(key in self._recovered for key in event_keys(event)):
            return False
        msg = event.msg
        live = self._live
        live[msg.call_id] = (msg.call_from, msg.call_to)
        if len(live) > self._size:
            del live[next(iter(live))]
        return True

    def seen(self) -> set[tuple[object, ...]]:
        """The keys of every call remembered (for one recovery)."""
        keys: set[tuple[object, ...]] = set(self._recovered)
        for call_id, (caller, callee) in self._live.items():
            keys.update(
                event_keys(NewCdr(msg=CdrInfo(call_id=call_id, call_from=caller, call_to=callee)))
            )
        return keys

    def recovered(self, keys: Iterable[tuple[object, ...]], seen: set[tuple[object, ...]]) -> bool:
        """Record a recovered call; ``False`` when one of its ``keys`` is in ``seen`` (from
        :meth:`seen`, which this keeps up to date)."""
        keys = list(keys)
        if any(key in seen for key in keys):
            return False
        seen.update(keys)
        found = self._recovered
        for key in keys:
            found[key] = None
        while len(found) > 3 * self._size:  # three keys per recovered call
            found.popitem(last=False)
        return True


class CdrRecovery:
    """Fetches the CDRs of a gap and returns those not delivered yet, in start-time order.

    Args:
        fetch: the REST query (the client's ``cdr/search`` across API versions).
        lookback: seconds before the gap the search starts (calls longer than this that
            ended in the gap are not found; default 4 h).
        margin: seconds of safety on both ends of the gap (clock skew, the PBX writing the
            record a little after the event; default 120).
        ledger: the calls delivered already (default: a new, empty one).
    """

    def __init__(
        self,
        fetch: Fetch,
        *,
        lookback: float = 4 * 3600.0,
        margin: float = 120.0,
        ledger: CdrLedger | None = None,
    ) -> None:
        if not 0 <= margin <= lookback:
            raise ValueError(f"need 0 <= margin <= lookback, got {margin!r}, {lookback!r}")
        self._fetch = fetch
        self.lookback = lookback
        self.margin = margin
        self.ledger = CdrLedger() if ledger is None else ledger

    def live(self, event: NewCdr) -> bool:
        """Record a live 30012; ``False`` when its call was delivered already."""
        return self.ledger.live(event)

    async def recover(self, since: float, until: float) -> tuple[list[CdrRecovered], int]:
        """The CDRs of calls that ended from ``since`` to ``until`` (wall seconds), not yet
        delivered, oldest first; and how many records were left out as already delivered."""
        rows, fmt, zone = await self._fetch(since - self.lookback, until + self.margin)
        found = [_row(record, fmt, zone) for record in rows]
        floor = since - self.margin
        found = [r for r in found if r.end is None or r.end >= floor]
        found.sort(key=lambda r: (r.start if r.start is not None else float("inf"), r.uid))
        events: list[CdrRecovered] = []
        duplicates = 0
        seen = self.ledger.seen()
        for row in found:
            if self.ledger.recovered(row.keys(), seen):
                events.append(row.event())
            else:
                duplicates += 1
        return events, duplicates
