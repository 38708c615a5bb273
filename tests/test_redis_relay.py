"""EventRelay in one process against a real redis-server and the FakePBX: events reach the
workers typed, once per group, 30016 on its own stream, failed handlers retried, gaps reported."""

from __future__ import annotations

import asyncio
import re
from typing import Any

import pytest
import redis.asyncio as aioredis

from tests._redis import RedisServer, redis_client, redis_server, until
from yeastar_async import YeastarClient, events
from yeastar_async.redis import EventRelay, RedisTokenStore, current_delivery
from yeastar_async.testing import FakePBX

__all__ = ["redis_client", "redis_server"]


TIMEOUT = 10.0


def make_client(pbx: FakePBX, redis: aioredis.Redis) -> YeastarClient:
    store = RedisTokenStore(redis, "yeastar:test:tokens")
    return YeastarClient(
        pbx.base_url, pbx.client_id, pbx.client_secret, token_store=store, revoke_on_close=False
    )


async def start_holder(relay: EventRelay, client: YeastarClient) -> asyncio.Task[None]:
    task = asyncio.create_task(relay.hold(client, topics=(30011, 30012, 30016)))
    return task


async def test_events_reach_a_worker_typed_and_acknowledged(
    fake_pbx: FakePBX, redis_client: aioredis.Redis
) -> None:
    holder_relay = EventRelay(redis_client, "pbx1", lease=1.0)
    worker = EventRelay(redis_client, "pbx1", group="g", lease=1.0)
    got: list[Any] = []
    seen = asyncio.Event()

    @worker.on(events.NewCdr)
    async def on_cdr(event: events.NewCdr) -> None:
        got.append((event, current_delivery()))
        if len(got) == 5:
            seen.set()

    client = make_client(fake_pbx, redis_client)
    async with client:
        hold = await start_holder(holder_relay, client)
        work = asyncio.create_task(worker.work())
        await fake_pbx.wait_for_subscription([30012])
        for i in range(5):
            await fake_pbx.emit(30012, {**fake_pbx.example_event(30012), "call_id": f"c{i}"})
        async with asyncio.timeout(TIMEOUT):
            await seen.wait()
        assert [e.msg.call_id for e, _ in got] == [f"c{i}" for i in range(5)]
        assert all(isinstance(e, events.NewCdr) for e, _ in got)
        assert all(d is not None and d.attempt == 1 for _, d in got)
        assert all(d is not None and 0 <= d.age < TIMEOUT for _, d in got)
        await until(lambda: worker.stats.acked >= 5, "five acknowledged")
        pending = await redis_client.xpending(worker.keys.events, "g")
        assert pending["pending"] == 0
        await worker.aclose()
        await holder_relay.aclose()
        await client.aclose()
        await asyncio.wait_for(work, TIMEOUT)
        await asyncio.wait_for(hold, TIMEOUT)


async def test_inbound_call_answered_through_the_relay_behind_a_cdr_backlog(
    fake_pbx: FakePBX, redis_client: aioredis.Redis
) -> None:
    """30016 has its own stream and reader: a slow CDR handler with a backlog never delays it."""
    holder_relay = EventRelay(redis_client, "pbx1", lease=1.0)
    worker = EventRelay(redis_client, "pbx1", group="g")
    release_cdrs = asyncio.Event()
    cdrs: list[str] = []

    @worker.on(events.NewCdr)
    async def slow_cdr(event: events.NewCdr) -> None:
        await release_cdrs.wait()  # a CDR export stuck on a slow database
        cdrs.append(event.msg.call_id)

    client = make_client(fake_pbx, redis_client)
    rest = make_client(fake_pbx, redis_client)

    @worker.on(events.IncomingCallRequest)
    async def screen(event: events.IncomingCallRequest) -> None:
        inbound = next(m.inbound for m in event.msg.members if m.inbound is not None)
        await rest.call.accept_inbound(channel_id=inbound.channel_id)

    async with client, rest:
        hold = await start_holder(holder_relay, client)
        work = asyncio.create_task(worker.work())
        await fake_pbx.wait_for_subscription([30012, 30016])
        for i in range(50):
            await fake_pbx.emit(30012, {**fake_pbx.example_event(30012), "call_id": f"backlog{i}"})
        await until(lambda: worker.stats.delivered >= 1, "the CDR handler busy")
        loop = asyncio.get_running_loop()
        started = loop.time()
        call = fake_pbx.simulate_inbound_call("5503301", talk_time=None)
        assert await call.outcome(timeout=TIMEOUT) == "accepted"
        answered = loop.time() - started
        assert cdrs == []  # still stuck behind the first CDR
        release_cdrs.set()
        await until(lambda: len(cdrs) >= 50, "the backlog drained")
        assert cdrs[:50] == [f"backlog{i}" for i in range(50)]
        await worker.aclose()
        await holder_relay.aclose()
        await asyncio.wait_for(work, TIMEOUT)
        await asyncio.wait_for(hold, TIMEOUT)
    assert answered < 2.0  # well inside the 10 s window
    priority = await redis_client.xrange(worker.keys.priority)
    assert [events.decode(f[b"v"]).type for _, f in priority] == [30016]


async def test_every_group_gets_every_event_each_worker_of_a_group_a_share(
    fake_pbx: FakePBX, redis_client: aioredis.Redis
) -> None:
    holder_relay = EventRelay(redis_client, "pbx1", lease=1.0)
    seen: dict[str, list[str]] = {"export-a": [], "export-b": [], "pops": []}
    relays = [
        EventRelay(redis_client, "pbx1", group="export", consumer="export-a", batch=1),
        EventRelay(redis_client, "pbx1", group="export", consumer="export-b", batch=1),
        EventRelay(redis_client, "pbx1", group="pops", consumer="pops"),
    ]
    for relay in relays:

        async def record(event: events.NewCdr, name: str = relay.consumer) -> None:
            seen[name].append(event.msg.call_id)
            await asyncio.sleep(0)  # let the other worker of the group take its turn

        relay.add_handler(events.NewCdr, record)
    client = make_client(fake_pbx, redis_client)
    async with client:
        hold = await start_holder(holder_relay, client)
        works = [asyncio.create_task(relay.work()) for relay in relays]
        await fake_pbx.wait_for_subscription([30012])
        sent = [f"c{i}" for i in range(40)]
        for call_id in sent:
            await fake_pbx.emit(30012, {**fake_pbx.example_event(30012), "call_id": call_id})
        await until(
            lambda: len(seen["pops"]) == 40 and len(seen["export-a"]) + len(seen["export-b"]) == 40,
            "both groups got all 40",
        )
        for relay in relays:
            await relay.aclose()
        await holder_relay.aclose()
        await asyncio.wait_for(asyncio.gather(*works, hold), TIMEOUT)
    assert seen["pops"] == sent
    assert sorted(seen["export-a"] + seen["export-b"], key=sent.index) == sent
    assert not set(seen["export-a"]) & set(seen["export-b"])


async def test_a_failing_handler_is_retried_then_given_up(
    fake_pbx: FakePBX, redis_client: aioredis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    holder_relay = EventRelay(redis_client, "pbx1", lease=1.0)
    worker = EventRelay(redis_client, "pbx1", group="g", claim_idle=0.2, max_deliveries=3)
    attempts: list[tuple[str, int]] = []

    @worker.on(events.NewCdr)
    async def flaky(event: events.NewCdr) -> None:
        delivery = current_delivery()
        assert delivery is not None
        attempts.append((event.msg.call_id, delivery.attempt))
        if event.msg.call_id == "poison" or delivery.attempt == 1:
            raise RuntimeError("database down")

    client = make_client(fake_pbx, redis_client)
    async with client:
        hold = await start_holder(holder_relay, client)
        work = asyncio.create_task(worker.work())
        await fake_pbx.wait_for_subscription([30012])
        for call_id in ("ok", "poison"):
            await fake_pbx.emit(30012, {**fake_pbx.example_event(30012), "call_id": call_id})
        await until(lambda: worker.stats.given_up == 1, "the poison entry given up")
        await until(lambda: worker.stats.acked >= 3, "all acknowledged")
        await worker.aclose()
        await holder_relay.aclose()
        await asyncio.wait_for(asyncio.gather(work, hold), TIMEOUT)
    assert ("ok", 1) in attempts
    assert ("ok", 2) in attempts
    assert [a for c, a in attempts if c == "poison"] == [1, 2, 3]
    assert worker.stats.handler_errors == 4
    assert "gave up on NewCdr" in caplog.text
    assert (await redis_client.xpending(worker.keys.events, "g"))["pending"] == 0


async def test_subscribe_yields_relayed_events_and_acknowledges_on_next(
    fake_pbx: FakePBX, redis_client: aioredis.Redis
) -> None:
    holder_relay = EventRelay(redis_client, "pbx1", lease=1.0)
    worker = EventRelay(redis_client, "pbx1", group="subs", claim_idle=60.0)
    client = make_client(fake_pbx, redis_client)
    async with client:
        hold = await start_holder(holder_relay, client)
        got: list[str] = []
        async with worker.subscribe(events.NewCdr) as cdrs:
            await fake_pbx.wait_for_subscription([30012])
            for i in range(3):
                await fake_pbx.emit(30012, {**fake_pbx.example_event(30012), "call_id": f"s{i}"})
            async with asyncio.timeout(TIMEOUT):
                async for cdr in cdrs:
                    assert isinstance(cdr, events.NewCdr)
                    assert cdrs.delivery is not None
                    got.append(cdr.msg.call_id)
                    if len(got) == 3:
                        break  # the third is left unacknowledged: its body may not be done
        await holder_relay.aclose()
        await asyncio.wait_for(hold, TIMEOUT)
    assert got == ["s0", "s1", "s2"]
    pending = await redis_client.xpending(worker.keys.events, "subs")
    assert pending["pending"] == 1


async def test_a_reconnect_of_the_holder_reaches_the_workers_with_its_gap(
    fake_pbx: FakePBX, redis_client: aioredis.Redis
) -> None:
    recovered: list[events.Connected] = []

    async def recover(client: YeastarClient, connected: events.Connected) -> None:
        recovered.append(connected)

    # A lease far longer than the reconnect: on a loaded machine a 1 s lease could run out while
    # the link is down, and the test is about the holder's own reconnect, not a failover.
    holder_relay = EventRelay(redis_client, "pbx1", lease=10.0, gap_recovery=recover)
    worker = EventRelay(redis_client, "pbx1", group="g")
    links: list[Any] = []

    @worker.on(events.Connected)
    async def on_connected(event: events.Connected) -> None:
        links.append(event)

    @worker.on(events.Disconnected)
    async def on_disconnected(event: events.Disconnected) -> None:
        links.append(event)

    client = make_client(fake_pbx, redis_client)
    async with client:
        hold = await start_holder(holder_relay, client)
        work = asyncio.create_task(worker.work())
        await fake_pbx.wait_for_subscription([30012])
        fake_pbx.drop_connections()
        await until(lambda: len(links) >= 3, "Connected, Disconnected, Connected relayed")
        await worker.aclose()
        await holder_relay.aclose()
        await asyncio.wait_for(asyncio.gather(work, hold), TIMEOUT)
    first, lost, again = links[:3]
    assert first == events.Connected(reconnect=False, gap=None)
    assert isinstance(lost, events.Disconnected)
    assert isinstance(again, events.Connected)
    assert again.reconnect
    assert again.gap is not None
    assert again.gap >= 0
    assert recovered == [again]


async def test_relay_and_workers_resume_after_redis_restarts(
    fake_pbx: FakePBX, redis_server: RedisServer, redis_client: aioredis.Redis
) -> None:
    holder_relay = EventRelay(redis_client, "pbx1", lease=1.0)
    worker = EventRelay(redis_client, "pbx1", group="g")
    got: list[str] = []

    @worker.on(events.NewCdr)
    async def on_cdr(event: events.NewCdr) -> None:
        got.append(event.msg.call_id)

    client = make_client(fake_pbx, redis_client)
    async with client:
        hold = await start_holder(holder_relay, client)
        work = asyncio.create_task(worker.work())
        await fake_pbx.wait_for_subscription([30012])
        await fake_pbx.emit(30012, {**fake_pbx.example_event(30012), "call_id": "before"})
        await until(lambda: got == ["before"], "the first CDR handled")
        redis_server.restart()  # no persistence: lease, stream and groups are gone
        await fake_pbx.emit(30012, {**fake_pbx.example_event(30012), "call_id": "after"})
        await until(lambda: "after" in got, "a CDR after the restart handled")
        assert len(fake_pbx.sockets) == 1  # the link was kept
        await worker.aclose()
        await holder_relay.aclose()
        await asyncio.wait_for(asyncio.gather(work, hold), TIMEOUT)
    assert got == ["before", "after"]
    assert holder_relay.stats.leases_acquired == 2
    assert holder_relay.stats.fenced == 0  # the lease lapsed with the restart: nobody took it


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"pbx": ""}, "pbx must be a non-empty string"),
        ({"pbx": "a{b}"}, "without braces"),
        ({"lease": 0}, "lease must be a number of seconds > 0, got 0"),
        ({"maxlen": 0}, "maxlen must be an integer >= 1, got 0"),
        ({"batch": True}, "batch must be an integer >= 1, got True"),
        ({"claim_idle": -1}, "claim_idle must be a number of seconds > 0, got -1"),
        ({"priority_topics": ["30016"]}, "priority_topics must be topic numbers, got '30016'"),
        ({"group": "a\nb"}, "group must be a non-empty string"),
    ],
)
def test_bad_options_are_named(options: dict[str, Any], message: str) -> None:
    kwargs: dict[str, Any] = {"pbx": "pbx1", **options}
    pbx = kwargs.pop("pbx")
    with pytest.raises(ValueError, match=re.escape(message)):
        EventRelay(aioredis.Redis(), pbx, **kwargs)


def test_handlers_are_checked_like_the_clients() -> None:
    relay = EventRelay(aioredis.Redis(), "pbx1")
    with pytest.raises(TypeError, match="async"):
        relay.add_handler(events.NewCdr, lambda event: None)
    with pytest.raises(TypeError):
        relay.on("30012")  # type: ignore[call-overload]
    with pytest.raises(ValueError, match="at least one"):
        relay.subscribe()


@pytest.mark.parametrize("overflow", ["drop_oldest", "drop_newest"])
async def test_hold_refuses_a_client_that_drops_events(fake_pbx: FakePBX, overflow: str) -> None:
    relay = EventRelay(aioredis.Redis(), "pbx1")
    client = YeastarClient(
        fake_pbx.base_url, fake_pbx.client_id, fake_pbx.client_secret, overflow=overflow
    )
    async with client:
        with pytest.raises(ValueError, match=f"overflow='block'.*got '{overflow}'"):
            await relay.hold(client)
    assert fake_pbx.count("subscribe") == 0  # refused before any link


async def test_a_slow_batch_of_a_live_worker_is_not_claimed_by_another(
    fake_pbx: FakePBX, redis_client: aioredis.Redis
) -> None:
    """Handling a batch longer than claim_idle: its waiting entries are kept as this worker's."""
    holder_relay = EventRelay(redis_client, "pbx1", lease=1.0)
    slow = EventRelay(redis_client, "pbx1", group="g", claim_idle=0.3, consumer="slow")
    other = EventRelay(redis_client, "pbx1", group="g", claim_idle=0.3, consumer="other")
    handled: list[tuple[str, str]] = []
    go_on = asyncio.Event()

    @slow.on(events.NewCdr)
    async def slowly(event: events.NewCdr) -> None:
        if not handled:
            await go_on.wait()  # the first handler runs for several claim_idle periods
        handled.append(("slow", event.msg.call_id))

    @other.on(events.NewCdr)
    async def quickly(event: events.NewCdr) -> None:
        handled.append(("other", event.msg.call_id))

    client = make_client(fake_pbx, redis_client)
    async with client:
        hold = await start_holder(holder_relay, client)
        await fake_pbx.wait_for_subscription([30012])
        for i in range(3):
            await fake_pbx.emit(30012, {**fake_pbx.example_event(30012), "call_id": f"c{i}"})
        await until(lambda: redis_client.xlen(slow.keys.events), "Connected and 3 CDRs appended")
        await until(lambda: holder_relay.stats.appended >= 4, "Connected and 3 CDRs appended")
        works = [asyncio.create_task(slow.work())]
        await until(lambda: slow.stats.delivered >= 1, "the slow handler started")
        works.append(asyncio.create_task(other.work()))
        # Proving a negative: four claim_idle periods in which the other worker claims nothing.
        await asyncio.sleep(1.2)
        go_on.set()
        await until(lambda: len(handled) >= 3, "all three handled")
        for relay in (slow, other, holder_relay):
            await relay.aclose()
        await asyncio.wait_for(asyncio.gather(*works, hold), TIMEOUT)
    assert handled == [("slow", "c0"), ("slow", "c1"), ("slow", "c2")]
    assert other.stats.redelivered == 0


@pytest.mark.parametrize(
    "options", [{"protocol": 2}, {"decode_responses": True}], ids=["resp2", "decoded"]
)
async def test_any_client_flavour_relays(
    fake_pbx: FakePBX, redis_server: RedisServer, options: dict[str, Any]
) -> None:
    """RESP2 replies (redis-py before 8) and a client that decodes replies to str work too."""
    redis = aioredis.Redis.from_url(redis_server.url, **options)
    holder_relay = EventRelay(redis, "pbx1", lease=1.0)
    worker = EventRelay(redis, "pbx1", group="g", claim_idle=0.3)
    got: list[tuple[str, int]] = []
    attempts = 0

    @worker.on(events.NewCdr)
    async def on_cdr(event: events.NewCdr) -> None:
        nonlocal attempts
        attempts += 1
        delivery = current_delivery()
        assert delivery is not None
        if attempts == 1:
            raise RuntimeError("once")  # the retry goes through XAUTOCLAIM and XPENDING
        got.append((event.msg.call_id, delivery.attempt))

    try:
        client = make_client(fake_pbx, redis)
        async with client:
            hold = await start_holder(holder_relay, client)
            work = asyncio.create_task(worker.work())
            await fake_pbx.wait_for_subscription([30012])
            await fake_pbx.emit(30012, {**fake_pbx.example_event(30012), "call_id": "x"})
            await until(lambda: got, "the CDR handled on its second delivery")
            await worker.aclose()
            await holder_relay.aclose()
            await asyncio.wait_for(asyncio.gather(work, hold), TIMEOUT)
    finally:
        await redis.aclose()
    assert got == [("x", 2)]


async def test_one_relay_holds_one_link(fake_pbx: FakePBX, redis_client: aioredis.Redis) -> None:
    relay = EventRelay(redis_client, "pbx1", lease=1.0)
    client = make_client(fake_pbx, redis_client)
    async with client:
        hold = await start_holder(relay, client)
        await fake_pbx.wait_for_subscription([30012])
        with pytest.raises(RuntimeError, match="hold\\(\\) is already running on this relay"):
            await relay.hold(client)
        await relay.aclose()
        await asyncio.wait_for(hold, TIMEOUT)
        with pytest.raises(RuntimeError, match="the relay is closed"):
            await relay.hold(client)
