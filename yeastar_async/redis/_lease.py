"""The link holder's lease in Redis, its fencing token, and the fenced append.

Exactly one process holds the PBX link: the one whose value is in the lease key, set with
``SET NX PX`` semantics and renewed while its link is up. The value is ``<holder id>/<fence>``:
a random id per process and a number that grows with every lease taken (``INCR``). Every append
is a Lua script that checks the lease still holds *this* value and runs the ``XADD``\\ s in the
same step, so a holder that was paused past its lease (a GC pause, SIGSTOP, a VM migration)
cannot write once another process took over: its value is gone from the key, whatever its own
clock says. Redis expires the key on its own clock, so the holders' clocks do not matter.

Each entry also records the lease value that wrote it (field ``h``), for audits.

Appends are idempotent within a lease: each event carries a sequence number and the script
skips numbers it already wrote, so a batch retried after a lost reply is not written twice.

Keys (``{pbx}`` is a Redis Cluster hash tag, so one script sees all of them)::

    <prefix>:{<pbx>}:lease     the holder's value, PX lease time
    <prefix>:{<pbx>}:fence     the last fence number handed out
    <prefix>:{<pbx>}:seq       "<lease value> <last sequence number appended>"
    <prefix>:{<pbx>}:alive     Redis time (ms) the link was last known up, all appended
    <prefix>:{<pbx>}:events    the event stream
    <prefix>:{<pbx>}:priority  the priority stream (30016 by default)
    <prefix>:{<pbx>}:tokens    where ``yeastar-async relay`` keeps its RedisTokenStore
"""

from __future__ import annotations

import os
import secrets
import socket
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

from redis.asyncio import Redis

__all__ = ["Keys", "Lease", "LeaseLost", "Pending"]

# A holder that finds its own value (a Redis error made it lose track) keeps it: nobody else
# held the lease in between, or the value would be theirs.
_ACQUIRE: Final = """
local held = redis.call('GET', KEYS[1])
if held then
  local mine = ARGV[1] .. '/'
  if string.sub(held, 1, #mine) == mine then
    redis.call('PEXPIRE', KEYS[1], ARGV[2])
    return tonumber(string.sub(held, #mine + 1))
  end
  return 0
end
local fence = redis.call('INCR', KEYS[2])
redis.call('SET', KEYS[1], ARGV[1] .. '/' .. fence, 'PX', ARGV[2])
return fence
"""

_NOW_MS: Final = "local t = redis.call('TIME') local now = t[1] * 1000 + math.floor(t[2] / 1000)"

_RENEW: Final = f"""
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
if ARGV[3] == '1' then
  {_NOW_MS}
  redis.call('SET', KEYS[2], now)
end
return 1
"""

_RELEASE: Final = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""

# KEYS: lease, seq, alive, events, priority. ARGV: lease value, maxlen, link up ('1'/'0'),
# then per event: sequence number, stream (0 events, 1 priority), kind, value.
_APPEND: Final = f"""
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return -1 end
local last = 0
local mark = redis.call('GET', KEYS[2])
if mark then
  local cut = string.find(mark, ' ', 1, true)
  if cut and string.sub(mark, 1, cut - 1) == ARGV[1] then
    last = tonumber(string.sub(mark, cut + 1))
  end
end
local written = 0
local top = last
for i = 4, #ARGV, 4 do
  local seq = tonumber(ARGV[i])
  if seq > last then
    redis.call('XADD', KEYS[4 + tonumber(ARGV[i + 1])], 'MAXLEN', '~', ARGV[2], '*',
      'k', ARGV[i + 2], 'v', ARGV[i + 3], 'h', ARGV[1])
    written = written + 1
    top = seq
  end
end
redis.call('SET', KEYS[2], ARGV[1] .. ' ' .. top)
if ARGV[3] == '1' then
  {_NOW_MS}
  redis.call('SET', KEYS[3], now)
end
return written
"""


class LeaseLost(Exception):
    """The lease is no longer this holder's: another process holds the link now."""


@dataclass(frozen=True)
class Keys:
    """The Redis keys of one PBX (see the module docstring)."""

    lease: str
    fence: str
    seq: str
    alive: str
    events: str
    priority: str
    tokens: str

    @classmethod
    def of(cls, prefix: str, pbx: str) -> Keys:
        """The keys for ``pbx`` under ``prefix``."""
        base = f"{prefix}:{{{pbx}}}:"
        names = ("lease", "fence", "seq", "alive", "events", "priority", "tokens")
        return cls(*(base + name for name in names))

    @property
    def streams(self) -> tuple[str, str]:
        """The event stream and the priority stream."""
        return self.events, self.priority


@dataclass(frozen=True)
class Pending:
    """One event on its way to the stream: its sequence number, stream index, kind, value."""

    seq: int
    priority: bool
    kind: bytes
    value: bytes


def holder_id() -> str:
    """A name for this process's claim on a lease: host, pid and randomness (never reused)."""
    return f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(4)}"


class Lease:
    """One PBX's lease as seen by one would-be holder."""

    def __init__(self, redis: Redis, keys: Keys, lease: float, maxlen: int) -> None:
        self._redis = redis
        self._keys = keys
        self._ms = max(1, round(lease * 1000))
        self._maxlen = str(maxlen)
        self._me = holder_id()
        self.value: str | None = None
        self.fence = 0
        self._acquire = redis.register_script(_ACQUIRE)
        self._renew = redis.register_script(_RENEW)
        self._release = redis.register_script(_RELEASE)
        self._append = redis.register_script(_APPEND)

    def __repr__(self) -> str:
        return f"Lease({self._keys.lease!r}, fence={self.fence}, held={self.value is not None})"

    async def acquire(self) -> bool:
        """Take the lease if nobody holds it; True when this holder has it now."""
        fence = int(
            await self._acquire(
                keys=[self._keys.lease, self._keys.fence], args=[self._me, self._ms]
            )
        )
        if fence:
            self.fence = fence
            self.value = f"{self._me}/{fence}"
            return True
        self.value = None
        return False

    async def remaining(self) -> float:
        """Seconds until the current lease (anyone's) expires; 0 when there is none."""
        ms = int(await self._redis.pttl(self._keys.lease))
        return max(0.0, ms / 1000)

    async def renew(self, link_up: bool) -> None:
        """Extend the lease (and note the link is up); :class:`LeaseLost` if it is not ours."""
        value = self._held()
        ok = await self._renew(
            keys=[self._keys.lease, self._keys.alive], args=[value, self._ms, int(link_up)]
        )
        if not int(ok):
            self._lost(value)
            raise LeaseLost(f"the lease {self._keys.lease!r} (fence {self.fence}) was lost")

    async def release(self) -> None:
        """Give the lease up if it is still ours (the next holder need not wait for expiry)."""
        value, self.value = self.value, None
        if value is not None:
            await self._release(keys=[self._keys.lease], args=[value])

    async def append(self, batch: Sequence[Pending], link_up: bool) -> int:
        """Write ``batch`` to the streams if the lease is still ours; returns how many were new.

        :class:`LeaseLost` (nothing written) when another process holds the lease.
        """
        value = self._held()
        args: list[Any] = [value, self._maxlen, int(link_up)]
        for item in batch:
            args += (item.seq, int(item.priority), item.kind, item.value)
        keys = [self._keys.lease, self._keys.seq, self._keys.alive, *self._keys.streams]
        written = int(await self._append(keys=keys, args=args))
        if written < 0:
            self._lost(value)
            raise LeaseLost(f"the lease {self._keys.lease!r} (fence {self.fence}) was lost")
        return written

    async def alive(self) -> tuple[int, int] | None:
        """When a holder's link was last known up with every event appended, and now: both in
        Redis's milliseconds (``None``: never)."""
        raw = await self._redis.get(self._keys.alive)
        if raw is None:
            return None
        seconds, micros = await self._redis.time()
        return int(raw), int(seconds) * 1000 + int(micros) // 1000

    def _lost(self, value: str) -> None:
        if self.value == value:  # not one taken again meanwhile
            self.value = None

    def _held(self) -> str:
        if self.value is None:
            raise LeaseLost(f"the lease {self._keys.lease!r} is not held")
        return self.value
