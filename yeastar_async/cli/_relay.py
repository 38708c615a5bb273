"""``relay``: hold the PBX's event link for a fleet of workers, through Redis.

Run it in as many processes (hosts, containers) as you like: one of them holds the lease and
the WebSocket and appends every event to the PBX's Redis Stream; the others wait to take over.
Workers consume the stream with ``yeastar_async.redis.EventRelay`` (``relay.on``, ``work()``).
"""

from __future__ import annotations

import argparse
import os
from typing import Any, Final
from urllib.parse import urlsplit

from ._connect import ENV_BASE_URL, make_client, opt, positive_float
from ._events import ALL_TOPICS, parse_topics, topics_help
from ._output import UsageError, err

ENV_REDIS_URL: Final = "YEASTAR_REDIS_URL"
ENV_RELAY_PBX: Final = "YEASTAR_RELAY_PBX"

RELAY_HELP: Final = "hold the PBX's event link for workers in other processes, through Redis"


def _count(text: str) -> int:
    if not text.isascii() or not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"not a whole number >= 1: {text!r}")
    return int(text)


#: The command's arguments, as ``(flags, add_argument keywords)``.
RELAY_ARGS: Final[tuple[tuple[tuple[str, ...], dict[str, Any]], ...]] = (
    (
        ("--redis",),
        {"metavar": "URL", "help": f"redis://host:6379/0 (env {ENV_REDIS_URL}; never printed)"},
    ),
    (
        ("--pbx-name",),
        {
            "metavar": "NAME",
            "help": "the PBX's name in the Redis keys, the same for its workers "
            f"(env {ENV_RELAY_PBX}; default: host:port of the base URL)",
        },
    ),
    (
        ("--lease",),
        {
            "type": positive_float,
            "default": 10.0,
            "metavar": "S",
            "help": "seconds a dead holder keeps the lease: failover within it (default 10)",
        },
    ),
    (
        ("--maxlen",),
        {
            "type": _count,
            "default": 100_000,
            "metavar": "N",
            "help": "about how many events the stream keeps (default 100000)",
        },
    ),
    (("--topics",), {"type": parse_topics, "metavar": "N,N,...", "help": topics_help()}),
    (
        ("--no-recover-cdrs",),
        {
            "action": "store_true",
            "help": "do not fetch the CDRs of a gap (a failover, a reconnect) over REST "
            "(default: fetched and appended as recovered CDRs)",
        },
    ),
)


def _setting(args: argparse.Namespace, name: str, env: str) -> str:
    return str(getattr(args, name, None) or os.environ.get(env, ""))


def default_pbx_name(base_url: str) -> str:
    """``host:port`` of the base URL (what names the PBX in Redis when no name is given)."""
    parts = urlsplit(base_url)
    host = parts.hostname or base_url
    return f"{host}:{parts.port}" if parts.port else host


async def cmd_relay(args: argparse.Namespace) -> int:
    """``relay``: take part in holding the link until stopped; status lines on stderr."""
    try:
        import redis.asyncio as aioredis

        from ..redis import EventRelay, RedisTokenStore
    except ImportError:
        raise UsageError(
            'the relay needs the redis package: pip install "yeastar-async[redis]"'
        ) from None
    url = _setting(args, "redis", ENV_REDIS_URL)
    if not url:
        raise UsageError(f"missing --redis (or set {ENV_REDIS_URL})")
    try:
        redis = aioredis.Redis.from_url(url)
    except ValueError:
        # The URL may hold a password: say what is wrong, not what it is.
        raise UsageError(
            f"--redis / {ENV_REDIS_URL} is not a Redis URL (redis://, rediss:// or unix://)"
        ) from None
    base_url = opt(args, "base_url") or os.environ.get(ENV_BASE_URL, "")
    pbx = _setting(args, "pbx_name", ENV_RELAY_PBX) or default_pbx_name(base_url)
    topics: tuple[int, ...] = args.topics or ALL_TOPICS

    def on_lease(holding: bool) -> None:
        if holding:
            err(f"[status] holding the link to {pbx!r}: events go to {relay.keys.events}")
        else:
            err(f"[status] not holding the link to {pbx!r}; waiting for the lease")

    try:
        relay = EventRelay(
            redis,
            pbx,
            lease=args.lease,
            maxlen=args.maxlen,
            on_lease=on_lease,
            recover_cdrs=not args.no_recover_cdrs,
        )
    except ValueError as exc:
        await redis.aclose()
        raise UsageError(str(exc).replace("EventRelay pbx", "--pbx-name")) from None
    store = RedisTokenStore(redis, relay.keys.tokens)
    try:
        client = make_client(
            args,
            token_store=store,
            revoke_on_close=False,
            recover_cdrs=not args.no_recover_cdrs,
        )
        async with client:
            err(f"[status] relay for {pbx!r}: waiting for the lease ({len(topics)} topic(s))")
            await relay.hold(client, topics=topics)
    finally:
        await relay.aclose()
        await redis.aclose()
    return 0
