"""A relay process for the failover tests: ``python -m tests._relay_proc holder|worker ...``.

Prints one JSON line whenever its relay's counters change (and ``{"ready": ...}`` once it
runs), so the test can wait on what it did. A worker records every event it handles in the
Redis list ``handled`` (``consumer call_id entry_id attempt``); a ``call_id`` starting with
``hang`` is recorded in ``started`` and then never finishes (an event in flight).
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import sys

import redis.asyncio as aioredis

from yeastar_async import YeastarClient, events
from yeastar_async.redis import EventRelay, RedisTokenStore, current_delivery

TOPICS = (30011, 30012, 30016)


async def report(relay: EventRelay, what: str) -> None:
    last = None
    print(json.dumps({"ready": what, "consumer": relay.consumer}), flush=True)
    while True:
        now = dataclasses.asdict(relay.stats)
        now["holder"] = relay.is_holder
        now["fence"] = relay.fence
        if now != last:
            print(json.dumps(now), flush=True)
            last = now
        await asyncio.sleep(0.02)


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("role", choices=("holder", "worker"))
    parser.add_argument("--redis", required=True)
    parser.add_argument("--pbx-url", default="")
    parser.add_argument("--client-id", default="")
    parser.add_argument("--client-secret", default="")
    parser.add_argument("--lease", type=float, default=1.0)
    parser.add_argument("--claim-idle", type=float, default=30.0)
    parser.add_argument("--consumer", default=None)
    args = parser.parse_args()
    redis = aioredis.Redis.from_url(args.redis)
    relay = EventRelay(
        redis,
        "pbx",
        group="g",
        lease=args.lease,
        claim_idle=args.claim_idle,
        consumer=args.consumer,
    )
    reporter = asyncio.create_task(report(relay, args.role))
    if args.role == "holder":
        store = RedisTokenStore(redis, "yeastar:test:tokens")
        client = YeastarClient(
            args.pbx_url,
            args.client_id,
            args.client_secret,
            token_store=store,
            revoke_on_close=False,
            login_guard_state=None,
        )
        async with client:
            await relay.hold(client, topics=TOPICS)
    else:
        never = asyncio.Event()

        @relay.on(events.NewCdr)
        async def handle(event: events.NewCdr) -> None:
            delivery = current_delivery()
            assert delivery is not None
            line = f"{relay.consumer} {event.msg.call_id} {delivery.id} {delivery.attempt}"
            if event.msg.call_id.startswith("hang"):
                await redis.rpush("started", line)
                await never.wait()
            await redis.rpush("handled", line)

        await relay.work()
    reporter.cancel()


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        sys.exit(130)
