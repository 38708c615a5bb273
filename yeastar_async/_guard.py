"""The lockout guard: at most 4 rejected logins in a row to one PBX, however many clients try.

The PBX blocks the caller's IP after 5 rejected logins in a row, counted per source IP. So:

- one count per PBX *address*: the base URL's host is resolved (at login time, off the event
  loop, cached for a minute) and IP literals are normalised, so ``127.0.0.1`` and ``localhost``,
  or ``http://pbx`` and ``https://pbx:8088``, count together;
- a login is counted *before* it is sent (a reservation) and taken back only when it says
  nothing about the credentials: it never left (connection refused, DNS), or its answer is no
  verdict (token cap, IP blocked). A login that went out and got no answer (a timeout, a
  connection cut after the request) may have been counted by the PBX, so it stays counted,
  unless its credentials are *known good* at that address (they logged in there before and
  were not rejected since: the PBX counts failed logins only). Logins that would take the
  count past the limit wait for the ones in flight in this process; in another process they
  find the reservation in the shared state and are refused. A process that dies mid-login
  leaves its reservation counted;
- the count is kept where every process of the user sees it (see :mod:`._guard_store`).

After 3 rejections in a row of the same credentials, or 4 of any, no login is sent
(:class:`~yeastar_async.errors.LockoutGuardError`); a successful login clears the count.

The mechanism serves every vendor whose PBX locks an IP out: a :class:`GuardPolicy` holds one
vendor's rule (its limit, whether a count lapses, its wording and error class) and a namespace of
its own in the state, since two vendors' PBXes at one address count separately. The Yeastar rule
is :data:`YEASTAR_GUARD`; OpenVox's lives in :mod:`yeastar_async.openvox._guard`.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import socket
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final, TypeAlias

from yarl import URL

from ._guard_store import GuardRecord, GuardState, GuardStateError, state_path
from .errors import LockoutGuardError, TransportError

__all__ = [
    "MAX_REJECTED_LOGINS",
    "YEASTAR_GUARD",
    "GuardCount",
    "GuardPolicy",
    "LoginGuard",
    "Refusal",
    "RefusalText",
    "Reservation",
    "forget_login_guard",
    "login_guard",
    "pbx_key",
    "reset_login_guards",
]

logger = logging.getLogger("yeastar_async.auth")

#: Rejected logins in a row to one PBX after which no client tries again: the PBX blocks the
#: IP at the 5th.
MAX_REJECTED_LOGINS = 4
#: How long a host name's resolution is reused (logins are rare; addresses change rarely).
_RESOLVE_TTL = 60.0
#: A host name that does not resolve keys by its name; asked again this soon.
_UNRESOLVED_TTL = 5.0
_RESOLVE_TIMEOUT = 5.0


def _host(pbx: str) -> str:
    """The host of a base URL (or a bare host), lower case, without a trailing dot."""
    host = URL(pbx).host if "://" in pbx else pbx
    return (host or pbx).strip("[]").rstrip(".").lower()


def _ip_key(text: str) -> str | None:
    """The normal form of an IP literal (``::ffff:10.0.0.1`` is ``10.0.0.1``), else ``None``."""
    try:
        ip = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return str(ip.ipv4_mapped)
    return str(ip)


def _pick(addresses: set[str]) -> str:
    # One PBX, one key whatever order the resolver answers in: its lowest IPv4 address,
    # else its lowest IPv6 one.
    ips = [ipaddress.ip_address(a) for a in addresses]
    return str(min(ips, key=lambda ip: (ip.version, int(ip))))


_resolved: dict[str, tuple[str, float]] = {}


def _cached(host: str) -> str | None:
    hit = _resolved.get(host)
    if hit is not None and hit[1] > time.monotonic():
        return hit[0]
    return None


async def pbx_key(pbx: str) -> str:
    """The guard's key for the PBX at ``pbx`` (a base URL or a host): its IP address.

    A host name is resolved with the loop's resolver (never blocking the loop) and cached
    briefly; a name that does not resolve is its own key (no login can reach it then).
    """
    host = _host(pbx)
    literal = _ip_key(host)
    if literal is not None:
        return literal
    cached = _cached(host)
    if cached is not None:
        return cached
    loop = asyncio.get_running_loop()
    try:
        async with asyncio.timeout(_RESOLVE_TIMEOUT):
            infos = await loop.getaddrinfo(host, None, type=socket.SOCK_STREAM)
        addresses = {k for info in infos if (k := _ip_key(str(info[4][0]).split("%")[0]))}
    except (OSError, TimeoutError):
        addresses = set()
    if addresses:
        key, ttl = _pick(addresses), _RESOLVE_TTL
    else:
        key, ttl = host, _UNRESOLVED_TTL
    _resolved[host] = (key, time.monotonic() + ttl)
    return key


def _key_now(pbx: str) -> str:
    """:func:`pbx_key` without I/O: IP literals and names resolved lately; else the name."""
    host = _host(pbx)
    return _ip_key(host) or _cached(host) or host


@dataclass(frozen=True, slots=True)
class Reservation:
    """One login counted before it is sent; settle it with the guard once answered."""

    credentials: str
    epoch: int
    state: GuardState
    #: Counts including this login: of these credentials, and of any.
    same: int
    in_a_row: int


@dataclass(frozen=True, slots=True)
class GuardCount:
    """What the guard has counted for one PBX and one pair of credentials (for ``doctor``)."""

    key: str
    in_a_row: int
    same: int
    where: str
    #: These credentials logged in at this address before (their unanswered logins are not
    #: counted).
    known_good: bool = False


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why the guard sends no login now, for a vendor's wording of it.

    ``same_credentials``: these credentials reached their own limit (``count`` is theirs);
    otherwise the logins of any credentials reached the policy's (``count`` is all of them).
    """

    count: int
    same_credentials: bool
    address: str
    state: GuardState

    @property
    def pbx(self) -> str:
        """The PBX as messages name it."""
        return f"the PBX at {self.address}" if self.address else "this PBX"

    @property
    def reset(self) -> str:
        """How to clear a persisted count by hand (``""`` when it lives in memory only)."""
        if self.state.path is not None:
            return f"; then delete {str(self.state.path)!r} to allow logins to it again"
        if self.state.persistent:
            return "; then clear the login guard state in the token store"
        return ""


#: A vendor's wording of a :class:`Refusal`.
RefusalText: TypeAlias = Callable[[Refusal], str]


@dataclass(frozen=True, slots=True)
class GuardPolicy:
    """One vendor's lockout rule, as the shared guard applies it.

    Attributes:
        namespace: the prefix of this vendor's records in the state (``""``: Yeastar, whose
            records are keyed by the bare address). Vendors count separately, so a Yeastar and
            an OpenVox PBX behind one address never share a count.
        limit: the logins in a row (rejected, or counted and unanswered) after which no login
            is sent.
        window: seconds after the last counted login at which the count lapses (the vendor
            documents that it forgets by then); ``None``: only a successful login clears it.
        endpoint: the refused call, as messages name it.
        refusal: words why no login may be sent (see :class:`Refusal`).
        error: the error class raised for a refusal.
    """

    namespace: str
    limit: int
    window: float | None
    endpoint: str
    refusal: RefusalText
    error: Callable[[str], LockoutGuardError] = LockoutGuardError

    def state_key(self, address: str) -> str:
        """The key of ``address``'s record in the state (no address holds a ``/``)."""
        return f"{self.namespace}/{address}" if self.namespace else address

    def owns(self, state_key: str) -> bool:
        """Whether a record of the state belongs to this vendor."""
        if self.namespace:
            return state_key.startswith(self.namespace + "/")
        return "/" not in state_key

    def refuse(
        self, record: GuardRecord, credentials: str, max_same: int, address: str, state: GuardState
    ) -> str | None:
        """Why a login with ``credentials`` (a hash) must not be sent now, or ``None``."""
        same = record.same(credentials)
        if same >= max_same:
            return self.refusal(Refusal(same, True, address, state))
        if record.in_a_row >= self.limit:
            return self.refusal(Refusal(record.in_a_row, False, address, state))
        return None

    def lapsed(self, record: GuardRecord, now: float) -> GuardRecord:
        """``record``, or a cleared one once ``window`` has passed since its last change."""
        if self.window is not None and record.in_a_row and now - record.updated >= self.window:
            return record.cleared(now)  # a new epoch: logins counted before it are not taken back
        return record


class _Gate:
    """A mutex for coroutines of any event loop (an ``asyncio.Lock`` belongs to one loop)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._held = False
        self._queue: deque[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = deque()

    async def __aenter__(self) -> None:
        with self._lock:
            if not self._held:
                self._held = True
                return
            loop = asyncio.get_running_loop()
            future: asyncio.Future[None] = loop.create_future()
            self._queue.append((loop, future))
        try:
            await future
        except asyncio.CancelledError:
            with self._lock:
                if (loop, future) in self._queue:
                    self._queue.remove((loop, future))
                    raise
            if not future.cancelled():
                self._release()  # it was handed over just as the wait was cancelled
            raise

    async def __aexit__(self, *exc: object) -> None:
        self._release()

    def _release(self) -> None:
        with self._lock:
            if not self._queue:
                self._held = False
                return
            loop, future = self._queue.popleft()  # handed over: stays held
        loop.call_soon_threadsafe(self._hand_over, future)

    def _hand_over(self, future: asyncio.Future[None]) -> None:
        if future.cancelled():
            self._release()  # the waiter gave up: the next one gets it
        else:
            future.set_result(None)


class LoginGuard:
    """The rejected logins to one PBX address, shared by every client of the process.

    A service that builds a new client after a failure gets no fresh allowance: the PBX counts
    rejections per IP, not per client.
    """

    def __init__(
        self,
        key: str = "",
        policy: GuardPolicy | None = None,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        #: The PBX's address (``""``: a guard of one manager, keyed by nothing).
        self.key = key
        #: The vendor's rule this guard applies.
        self.policy = policy if policy is not None else YEASTAR_GUARD
        self._state_key = self.policy.state_key(key)
        # Wall time, not monotonic: counts are compared across processes and restarts.
        self._clock = clock
        self._record = GuardRecord()
        # Reading the count, checking it and counting a login are one step within the
        # process (the state file's lock covers other processes).
        self._gate = _Gate()
        # Logins of this process counted and not yet answered, and who waits for one to end
        # (clients may run on several event loops, so a waiter is a future and its loop).
        self._lock = threading.Lock()
        self._in_flight = 0
        self._waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = []

    def __repr__(self) -> str:
        return f"LoginGuard({self.key!r}, in_a_row={self.in_a_row})"

    @property
    def in_a_row(self) -> int:
        """Logins in a row rejected (or counted and not yet answered), as last seen."""
        return self._record.in_a_row

    def rejections(self, credentials: bytes) -> int:
        """How many logins in a row with these credentials were counted, as last seen."""
        return self._record.same(credentials.hex())

    async def reserve(
        self, credentials: bytes, max_same: int, state: GuardState | None = None
    ) -> Reservation:
        """Count a login about to be sent, or raise the policy's :class:`LockoutGuardError`.

        While the count is at the limit and logins of this process are still unanswered, waits
        for them: a success frees the way, a rejection makes this a refusal.
        """
        state = state if state is not None else GuardState()
        creds = credentials.hex()
        refusal: list[str] = []  # what change() found, if it refused

        def change(record: GuardRecord) -> GuardRecord:
            now = self._clock()
            current = self.policy.lapsed(record, now)
            reason = self.policy.refuse(current, creds, max_same, self.key, state)
            if reason is not None:
                refusal.append(reason)
                return record
            return current.with_attempt(creds, now)

        while True:
            refusal.clear()
            async with self._gate:
                try:
                    after = await self._update(state, change)
                except GuardStateError as exc:
                    raise self.policy.error(f"{self.policy.endpoint}: {exc}") from None
                with self._lock:
                    if not refusal:
                        self._in_flight += 1
                        return Reservation(
                            creds, after.epoch, state, after.same(creds), after.in_a_row
                        )
                    if not self._in_flight:
                        raise self.policy.error(refusal[0])
                    loop = asyncio.get_running_loop()
                    waiter: asyncio.Future[None] = loop.create_future()
                    self._waiters.append((loop, waiter))
            await waiter

    async def count(self, credentials: bytes, state: GuardState | None = None) -> GuardCount:
        """The count as a login would see it now (:class:`GuardStateError` if unreadable)."""
        state = state if state is not None else GuardState()
        async with self._gate:
            record = await self._update(state, lambda record: record)
        record = self.policy.lapsed(record, self._clock())  # as a login would see it
        creds = credentials.hex()
        return GuardCount(
            self.key, record.in_a_row, record.same(creds), state.where(), record.knows(creds)
        )

    def rejected(self, reservation: Reservation) -> None:
        """The login's fate is unknown (cancelled mid-way, say): it stays counted, as it was."""
        self._landed()

    async def refused(self, reservation: Reservation) -> None:
        """The PBX rejected the credentials: the login stays counted, and they are no longer
        known good here (a secret regenerated on the PBX: its unanswered logins count again)."""
        await self._settle(reservation, lambda record: record.distrusted(reservation.credentials))

    async def accepted(self, reservation: Reservation) -> None:
        """A login succeeded: the PBX's count starts again; the credentials are known good."""
        await self._settle(
            reservation, lambda record: record.succeeded(reservation.credentials, self._clock())
        )

    async def failed(self, reservation: Reservation, error: Exception) -> None:
        """The login raised ``error``, which carries no verdict on the credentials.

        A :class:`~yeastar_async.errors.TransportError` of a request that went out and got no
        response at all (a timeout, a connection cut) may have been counted by the PBX: the
        login stays counted unless its credentials are known good at this address. Anything
        else (never sent, refused by TLS or a pin before the request was written, or answered
        without a verdict) is taken back.
        """
        if isinstance(error, TransportError) and error.delivered is None:
            await self._settle(reservation, lambda record: self._unanswered(record, reservation))
        else:
            await self.release(reservation)

    def _unanswered(self, record: GuardRecord, reservation: Reservation) -> GuardRecord:
        if not record.knows(reservation.credentials):
            return record  # the PBX may have counted it: so do we
        return record.without_attempt(reservation.credentials, reservation.epoch, self._clock())

    async def release(self, reservation: Reservation) -> None:
        """The answer said nothing about the credentials (no answer, cap, block): uncount it."""
        await self._settle(
            reservation,
            lambda record: record.without_attempt(
                reservation.credentials, reservation.epoch, self._clock()
            ),
        )

    async def _settle(
        self, reservation: Reservation, change: Callable[[GuardRecord], GuardRecord]
    ) -> None:
        try:
            async with self._gate:
                await self._update(reservation.state, change)
        except GuardStateError as exc:
            # The count stays as it was: towards refusing, never towards a block.
            logger.warning("login guard: could not update the count: %s", exc)
        finally:
            self._landed()

    async def _update(
        self, state: GuardState, change: Callable[[GuardRecord], GuardRecord]
    ) -> GuardRecord:
        """Apply ``change`` to the count where ``state`` keeps it (under the gate)."""
        _, self._record = await state.update(self._state_key, self._record, change)
        return self._record

    def _landed(self) -> None:
        """A counted login of this process got its answer: whoever waits looks again."""
        with self._lock:
            self._in_flight -= 1
            woken, self._waiters = self._waiters, []
        for loop, future in woken:
            loop.call_soon_threadsafe(_wake, future)

    def forget(self) -> None:
        """Drop this process's count (the persisted one is left alone)."""
        self._record = GuardRecord()


def _wake(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


def _yeastar_refusal(why: Refusal) -> str:
    where = why.state.where()
    if why.same_credentials:
        return (
            f"get_token: not logging in again with these credentials after {why.count} rejected "
            f"logins in a row to {why.pbx}, counted {where}; the PBX blocks the IP after 5. Fix "
            "the Client ID / Client Secret (Integrations > API) and create a new client with "
            "them"
        )
    return (
        f"get_token: not logging in: the last {why.count} logins to {why.pbx} were "
        f"rejected or went unanswered, counted {where}; the PBX blocks the IP at the 5th. "
        "Check the Client ID / Client Secret (Integrations > API) and whether this IP is "
        f"blocked (Security > Security Rules > IP Blocklist){why.reset}"
    )


#: The Yeastar P-Series rule: 4 logins in a row at most, counted until a login succeeds (no
#: document says when the PBX forgets rejections that led to no block).
YEASTAR_GUARD: Final = GuardPolicy(
    namespace="",
    limit=MAX_REJECTED_LOGINS,
    window=None,
    endpoint="get_token",
    refusal=_yeastar_refusal,
)


_guards: dict[str, LoginGuard] = {}
_guards_lock = threading.Lock()


def _guard_for(address: str, policy: GuardPolicy) -> LoginGuard:
    key = policy.state_key(address)
    with _guards_lock:
        guard = _guards.get(key)
        if guard is None:
            guard = _guards[key] = LoginGuard(address, policy)
        return guard


def login_guard(pbx: str, policy: GuardPolicy = YEASTAR_GUARD) -> LoginGuard:
    """The process-wide :class:`LoginGuard` of the PBX at ``pbx`` (a base URL, host or IP).

    ``policy`` is the vendor's rule (default: Yeastar's); each vendor has its own count.
    Without I/O: a host name not resolved lately by :func:`pbx_key` keys by its name; clients
    use ``login_guard(await pbx_key(url), policy)``.
    """
    return _guard_for(_key_now(pbx), policy)


def forget_login_guard(
    pbx: str | None, state: object = "default", policy: GuardPolicy = YEASTAR_GUARD
) -> None:
    """Forget the logins counted for the PBX at ``pbx``, in this process and in ``state``.

    ``pbx`` ``None``: every PBX of the vendor ``policy`` (default: Yeastar). ``state`` is a
    ``login_guard_state`` value (default: the default state file). The
    :class:`~yeastar_async.testing.FakePBX` calls it when it starts: a new fake PBX has a count
    of its own. A state file that cannot be used is left alone.
    """
    key = None if pbx is None else policy.state_key(_key_now(pbx))

    def matches(state_key: str) -> bool:
        return policy.owns(state_key) if key is None else state_key == key

    with _guards_lock:
        forgotten = [_guards.pop(k) for k in list(_guards) if matches(k)]
    for guard in forgotten:
        guard.forget()
    try:
        GuardState(state_path(state)).forget(matches)
    except GuardStateError as exc:
        logger.debug("login guard: %s", exc)


def reset_login_guards() -> None:
    """Forget every in-process count and cached resolution (test isolation)."""
    with _guards_lock:
        guards = list(_guards.values())
        _guards.clear()
    for guard in guards:
        guard.forget()
    _resolved.clear()
