"""The relay across processes, with a real redis-server: kill -9 the link holder mid-stream,
kill a worker with events in flight, pause a holder past its lease (SIGSTOP / SIGCONT)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis

from tests._calls import call_ends
from tests._calls import cdr as ended_call
from tests._redis import RedisServer, redis_client, redis_server, until
from yeastar_async import events
from yeastar_async.redis import EventRelay, current_delivery
from yeastar_async.redis._codec import decode_entry
from yeastar_async.testing import FakePBX

__all__ = ["redis_client", "redis_server"]

ROOT = Path(__file__).resolve().parent.parent
TIMEOUT = 15.0
LEASE = 1.0


class Proc:
    """A ``tests._relay_proc`` child: its JSON status lines, the latest one kept."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        self.status: dict[str, Any] = {}
        self.ready: dict[str, Any] = {}
        self._changed = asyncio.Event()
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        assert self.process.stdout is not None
        async for line in self.process.stdout:
            data = json.loads(line)
            if "ready" in data:
                self.ready = data
            else:
                self.status = data
            self._changed.set()

    async def wait(self, predicate: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
        """Wait until a status line satisfies ``predicate`` (bounded)."""
        async with asyncio.timeout(TIMEOUT):
            while not (self.status and predicate(self.status)):
                self._changed.clear()
                if self._reader.done():
                    raise AssertionError(f"the child exited; last status {self.status}")
                await self._changed.wait()
        return self.status

    def signal(self, sig: int) -> None:
        self.process.send_signal(sig)

    async def stop(self) -> None:
        if self.process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.process.send_signal(signal.SIGCONT)
                self.process.kill()
        await asyncio.wait_for(self.process.wait(), TIMEOUT)
        self._reader.cancel()
        await asyncio.gather(self._reader, return_exceptions=True)


@contextlib.asynccontextmanager
async def spawned() -> AsyncIterator[Callable[..., Any]]:
    children: list[Proc] = []

    async def spawn(
        role: str, server: RedisServer, *extra: str, pbx: FakePBX | None = None
    ) -> Proc:
        args = [
            sys.executable,
            "-m",
            "tests._relay_proc",
            role,
            "--redis",
            server.url,
            "--lease",
            str(LEASE),
            *extra,
        ]
        if pbx is not None:
            args += [
                "--pbx-url",
                pbx.base_url,
                "--client-id",
                pbx.client_id,
                "--client-secret",
                pbx.client_secret,
            ]
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        process = await asyncio.create_subprocess_exec(
            *args, cwd=ROOT, env=env, stdout=asyncio.subprocess.PIPE
        )
        child = Proc(process)
        children.append(child)
        await child.wait(lambda status: True)
        return child

    try:
        yield spawn
    finally:
        for child in children:
            await child.stop()


def cdr(pbx: FakePBX, call_id: str) -> dict[str, Any]:
    return {**pbx.example_event(30012), "call_id": call_id}


async def stream_call_ids(redis: aioredis.Redis, key: str) -> list[tuple[str, bytes]]:
    """(call_id, writer's lease value) of every NewCdr entry (live or recovered), in order."""
    found = []
    for _, fields in await redis.xrange(key):
        event = decode_entry(fields)
        if isinstance(event, events.NewCdr):
            found.append((event.msg.call_id, fields[b"h"]))
    return found


async def test_holder_killed_mid_stream_fails_over_without_losing_an_appended_event(
    fake_pbx: FakePBX, redis_server: RedisServer, redis_client: aioredis.Redis
) -> None:
    async with spawned() as spawn:
        first = await spawn("holder", redis_server, pbx=fake_pbx)
        await first.wait(lambda s: s["holder"])
        second = await spawn("holder", redis_server, pbx=fake_pbx)
        worker = EventRelay(redis_client, "pbx", group="g", lease=LEASE)
        handled: list[str] = []
        gaps: list[events.Connected] = []

        @worker.on(events.NewCdr)
        async def on_cdr(event: events.NewCdr) -> None:
            handled.append(event.msg.call_id)

        @worker.on(events.Connected)
        async def on_connected(event: events.Connected) -> None:
            gaps.append(event)

        work = asyncio.create_task(worker.work())
        await fake_pbx.wait_for_subscription([30012])
        sent = 0

        async def emit_until(condition: Callable[[], bool]) -> None:
            nonlocal sent
            async with asyncio.timeout(TIMEOUT):
                while not condition():
                    await fake_pbx.emit(30012, cdr(fake_pbx, f"c{sent}"))
                    sent += 1
                    await asyncio.sleep(0.005)  # a paced call flow, not a burst

        await emit_until(lambda: len(handled) >= 20)
        loop = asyncio.get_running_loop()
        first.signal(signal.SIGKILL)
        killed_at = loop.time()
        taken = await second.wait(lambda s: s["holder"])
        failover = loop.time() - killed_at
        await emit_until(lambda: any(g.reconnect for g in gaps) and len(handled) >= 60)

        in_stream: list[tuple[str, bytes]] = []

        async def all_handled() -> bool:
            in_stream[:] = await stream_call_ids(redis_client, worker.keys.events)
            return {c for c, _ in in_stream} <= set(handled)

        await until(all_handled, "every event in the stream handled")
        final = await second.wait(lambda s: s["failovers"] >= 1)
        await worker.aclose()
        await work

    in_stream_ids = [c for c, _ in in_stream]
    # Every event that reached the stream was handled; each was appended once.
    assert set(in_stream_ids) <= set(handled)
    assert len(in_stream_ids) == len(set(in_stream_ids))
    duplicates = len(handled) - len(set(handled))
    assert duplicates == worker.stats.redelivered == 0
    # The events emitted while nobody held the link are the gap, reported as a reconnect.
    failover_gap = next(g for g in gaps if g.reconnect)
    assert failover_gap.gap is not None
    assert 0 < failover_gap.gap <= LEASE + 1.0
    assert failover <= LEASE + 1.0
    assert taken["fence"] == 2
    assert final["failovers"] == 1
    # Entries after the failover were written under the new lease only.
    writers = [h for _, h in in_stream]
    assert writers == sorted(writers, key=lambda h: h.endswith(b"/2"))


async def test_cdrs_of_calls_that_ended_while_no_holder_was_up_reach_a_worker_once(
    fake_pbx: FakePBX, redis_server: RedisServer, redis_client: aioredis.Redis
) -> None:
    """kill -9 the holder; calls end before another takes the link: the new holder fetches
    their CDRs over REST, and every CDR reaches the group once, live or recovered."""
    worker = EventRelay(redis_client, "pbx", group="g", lease=LEASE)
    handled: list[events.NewCdr] = []
    arrived = asyncio.Event()

    @worker.on(events.NewCdr)
    async def on_cdr(event: events.NewCdr) -> None:
        handled.append(event)
        arrived.set()

    async def until_handled(n: int) -> None:
        async with asyncio.timeout(TIMEOUT):
            while len(handled) < n:
                arrived.clear()
                await arrived.wait()

    sent: list[str] = []

    async def end(name: str) -> None:
        payload = ended_call(len(sent), ago=3, trunk=name)
        sent.append(payload["call_id"])
        await call_ends(fake_pbx, payload)

    async with spawned() as spawn:
        first = await spawn("holder", redis_server, pbx=fake_pbx)
        await first.wait(lambda s: s["holder"])
        work = asyncio.create_task(worker.work())
        await fake_pbx.wait_for_subscription([30012])
        for _ in range(5):
            await end("live")
        await until_handled(5)
        first.signal(signal.SIGKILL)
        await asyncio.wait_for(first.process.wait(), TIMEOUT)
        for _ in range(5):
            await end("gap")  # nobody holds the link
        second = await spawn("holder", redis_server, pbx=fake_pbx)
        # Its search ran after its link was acknowledged: the next call reaches it live.
        taken = await second.wait(lambda s: s["holder"] and s["recovered_cdrs"] >= 5)
        await end("after")
        await until_handled(11)
        in_stream = await stream_call_ids(redis_client, worker.keys.events)
        await worker.aclose()
        await work

    assert [e.msg.call_id for e in handled] == sent  # each once, in order
    recovered = [e.msg.call_id for e in handled if isinstance(e, events.CdrRecovered)]
    assert recovered == sent[5:10]
    assert [c for c, _ in in_stream] == sent
    assert taken["recovered_cdrs"] == 5
    assert taken["failovers"] == 1
    assert worker.stats.redelivered == 0


async def test_worker_killed_with_events_in_flight_another_handles_them(
    fake_pbx: FakePBX, redis_server: RedisServer, redis_client: aioredis.Redis
) -> None:
    keys = EventRelay(redis_client, "pbx").keys
    async with spawned() as spawn:
        holder = await spawn("holder", redis_server, pbx=fake_pbx)
        await holder.wait(lambda s: s["holder"])
        await fake_pbx.wait_for_subscription([30012])
        for call_id in ("c0", "c1", "c2", "hang-1"):
            await fake_pbx.emit(30012, cdr(fake_pbx, call_id))
        await holder.wait(lambda s: s["appended"] >= 5)  # Connected and the four CDRs
        # It reads all of them in one batch, handles three (acknowledged after the batch),
        # and hangs in the fourth's handler: all four are in flight when it is killed.
        doomed = await spawn("worker", redis_server, "--consumer", "doomed")
        await until(lambda: redis_client.llen("started"), "the doomed worker's handler started")
        assert await redis_client.llen("handled") == 3
        doomed.signal(signal.SIGKILL)
        await asyncio.wait_for(doomed.process.wait(), TIMEOUT)

        rescuer = EventRelay(redis_client, "pbx", group="g", claim_idle=0.5, consumer="rescuer")
        handled: list[tuple[str, int]] = []
        done = asyncio.Event()

        @rescuer.on(events.NewCdr)
        async def on_cdr(event: events.NewCdr) -> None:
            delivery = current_delivery()
            assert delivery is not None
            handled.append((event.msg.call_id, delivery.attempt))
            if len(handled) == 4:
                done.set()

        work = asyncio.create_task(rescuer.work())
        async with asyncio.timeout(TIMEOUT):
            await done.wait()
        await rescuer.aclose()
        await work
    assert sorted(c for c, _ in handled) == ["c0", "c1", "c2", "hang-1"]
    assert all(attempt == 2 for _, attempt in handled)
    # Handled by the dead worker too, but never acknowledged: the duplicates, counted.
    assert rescuer.stats.redelivered == 4
    by_doomed = {line.split()[1].decode() for line in await redis_client.lrange("handled", 0, -1)}
    assert by_doomed == {"c0", "c1", "c2"}
    pending = await redis_client.xpending(keys.events, "g")
    assert pending["pending"] == 0


async def test_paused_holder_cannot_append_after_it_resumes(
    fake_pbx: FakePBX, redis_server: RedisServer, redis_client: aioredis.Redis
) -> None:
    async with spawned() as spawn:
        paused = await spawn("holder", redis_server, pbx=fake_pbx)
        await paused.wait(lambda s: s["holder"])
        await fake_pbx.wait_for_subscription([30012])
        await fake_pbx.emit(30012, cdr(fake_pbx, "before"))
        await paused.wait(lambda s: s["appended"] >= 2)  # Connected, then the CDR
        paused.signal(signal.SIGSTOP)
        successor = await spawn("holder", redis_server, pbx=fake_pbx)
        await successor.wait(lambda s: s["holder"])
        await fake_pbx.wait_until(
            lambda: len(fake_pbx.sockets) == 2 and all(s.subscribed for s in fake_pbx.sockets),
            TIMEOUT,
            "both holders subscribed",
        )
        # Both links get these; only the successor may append them.
        for i in range(5):
            assert await fake_pbx.emit(30012, cdr(fake_pbx, f"during{i}")) == 2
        await successor.wait(lambda s: s["appended"] >= 7)  # Disconnected, Connected, 5 CDRs
        paused.signal(signal.SIGCONT)
        resumed = await paused.wait(lambda s: s["leases_lost"] >= 1)
        in_stream = await stream_call_ids(redis_client, EventRelay(redis_client, "pbx").keys.events)
    ids = [c for c, _ in in_stream]
    assert ids == ["before", *(f"during{i}" for i in range(5))]
    assert all(h.endswith(b"/2") for c, h in in_stream if c != "before")
    # It wrote nothing after the pause: the fenced append refused it (fenced == 1), or its
    # renewal found the lease gone first and it left without trying (fenced == 0).
    assert resumed["appended"] == 2
    assert resumed["fenced"] in (0, 1)
    assert not resumed["holder"]
