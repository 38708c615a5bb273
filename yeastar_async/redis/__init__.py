"""One PBX served to many processes through Redis (``pip install "yeastar-async[redis]"``).

- :class:`RedisTokenStore`: the token set, its renewal lock and the lockout guard's count,
  shared by every process of one application (one PBX link's worth of tokens, not one each).
- :class:`EventRelay`: exactly one process (the lease holder) keeps the PBX's event WebSocket
  and appends every event to a Redis Stream; workers in any number of processes consume it
  through consumer groups with the client's handler API (``relay.on``, ``relay.subscribe``),
  at least once.

Built on the ``redis`` package's asyncio client (``redis.asyncio.Redis``).
"""

from __future__ import annotations

try:
    import redis.asyncio  # noqa: F401 - absolute: the `redis` package, not this module
except ImportError as exc:  # pragma: no cover - the extra is not installed
    raise ImportError(
        'yeastar_async.redis needs the redis package: pip install "yeastar-async[redis]"'
    ) from exc

from ._holder import GapRecovery
from ._relay import DEFAULT_PRIORITY_TOPICS, EventRelay
from ._stats import Delivery, RelayStats, current_delivery
from ._tokens import RedisTokenStore
from ._worker import RelaySubscription

__all__ = [
    "DEFAULT_PRIORITY_TOPICS",
    "Delivery",
    "EventRelay",
    "GapRecovery",
    "RedisTokenStore",
    "RelayStats",
    "RelaySubscription",
    "current_delivery",
]
