"""Many streams in one process: heartbeats spread, few tasks per stream, paced starts, nothing
left behind (FakePBX over loopback; the pacing gate on its own event loop)."""

from __future__ import annotations

import asyncio
import os
import time

from yeastar_async import YeastarClient, events
from yeastar_async.events import _pace
from yeastar_async.testing import FakePBX

STREAMS = 12
INTERVAL = 1.0


def _client(pbx: FakePBX, **options: object) -> YeastarClient:
    return YeastarClient(
        pbx.base_url, pbx.client_id, pbx.client_secret, login_guard_state=None, **options
    )


def _sdk_tasks() -> list[str]:
    """The names of the event streams' tasks running now."""
    return [t.get_name() for t in asyncio.all_tasks() if t.get_name().startswith("yeastar-")]


async def _ignore(_: object) -> None:
    pass


async def _all_connected(clients: list[YeastarClient]) -> list[asyncio.Task[None]]:
    up = asyncio.Event()
    count = 0

    async def connected(_: events.Connected) -> None:
        nonlocal count
        count += 1
        if count == len(clients):
            up.set()

    for client in clients:
        client.add_handler(events.Connected, connected)
        client.add_handler(30011, _ignore)
    tasks = [asyncio.create_task(c.listen()) for c in clients]
    async with asyncio.timeout(10):
        await up.wait()
    return tasks


async def test_heartbeats_of_streams_started_together_are_spread_over_the_interval() -> None:
    # One fake for every stream: each logs in with its own token (no 8-token cap here).
    async with FakePBX(max_tokens=STREAMS) as pbx:
        clients = [_client(pbx, heartbeat_interval=INTERVAL) for _ in range(STREAMS)]
        tasks = await _all_connected(clients)
        started = time.monotonic()
        first_beat: dict[int, float] = {}

        def every_socket_beat() -> bool:
            for sock in pbx.sockets:
                if sock.heartbeats and sock.id not in first_beat:
                    first_beat[sock.id] = time.monotonic() - started
            return len(first_beat) >= STREAMS

        try:
            await pbx.wait_until(every_socket_beat, timeout=3 * INTERVAL, what="first beats")
        except TimeoutError:
            raise AssertionError(f"first beats {first_beat}, sockets {pbx.sockets}") from None
        finally:
            for client in clients:
                await client.aclose()
            await asyncio.gather(*tasks, return_exceptions=True)
    beats = sorted(first_beat.values())
    # In step (the old behaviour) all first beats land within a few ms of one interval; spread
    # uniformly over 10-100% of it, 12 of them span far more than a third of it.
    assert beats[-1] - beats[0] > INTERVAL / 3, beats
    assert beats[-1] <= INTERVAL + 0.5, beats


async def test_a_connected_stream_runs_six_tasks_and_leaves_none_nor_a_socket() -> None:
    async with FakePBX() as pbx:
        before_fds = len(os.listdir("/proc/self/fd"))
        before = len(asyncio.all_tasks())
        clients = [_client(pbx) for _ in range(4)]
        tasks = await _all_connected(clients)
        # Per stream: engine, supervisor, handler consumer, socket reader, keeper and the
        # token rotator of make-before-break renewal (the caller's listen() task aside, and the
        # fake's own). There was one more, waiting for the stop signal.
        assert len(_sdk_tasks()) / len(clients) == 6, sorted(_sdk_tasks())
        for client in clients:
            await client.aclose()
        await asyncio.gather(*tasks)
        assert _sdk_tasks() == []
        assert len(asyncio.all_tasks()) <= before
        for _ in range(100):  # closed sockets are released over the next loop iterations
            if len(os.listdir("/proc/self/fd")) <= before_fds:
                break
            await asyncio.sleep(0.01)
        assert len(os.listdir("/proc/self/fd")) <= before_fds


async def test_the_pace_gate_lets_a_few_starts_through_per_loop_iteration() -> None:
    loop = asyncio.get_running_loop()
    iteration = 0
    stop = False

    def tick() -> None:  # counts loop iterations: runs once in each
        nonlocal iteration
        iteration += 1
        if not stop:
            loop.call_soon(tick)

    loop.call_soon(tick)
    passed_at: list[int] = []

    async def start() -> None:
        await _pace.turn()
        passed_at.append(iteration)

    n = 5 * _pace.PER_TURN + 3
    await asyncio.gather(*(start() for _ in range(n)))
    stop = True
    per_iteration = {at: passed_at.count(at) for at in set(passed_at)}
    assert len(passed_at) == n
    assert max(per_iteration.values()) <= _pace.PER_TURN
    assert len(per_iteration) >= n // _pace.PER_TURN
    assert passed_at == sorted(passed_at)  # in arrival order


async def test_a_lone_start_passes_the_pace_gate_without_waiting() -> None:
    await asyncio.sleep(0)  # a fresh iteration: the gate's count starts over
    gate = _pace.turn()
    try:
        gate.send(None)
    except StopIteration:
        pass
    else:  # pragma: no cover - it would have waited
        gate.close()
        raise AssertionError("a lone start waited for the next loop iteration")


async def test_a_cancelled_start_leaves_the_pace_gate_queue() -> None:
    starts = [asyncio.ensure_future(_pace.turn()) for _ in range(_pace.PER_TURN + 4)]
    await asyncio.sleep(0)
    starts[-1].cancel()
    results = await asyncio.gather(*starts, return_exceptions=True)
    assert isinstance(results[-1], asyncio.CancelledError)
    assert all(r is None for r in results[:-1])
    gate = _pace._gates[asyncio.get_running_loop()]
    assert not gate._waiters


def test_beats_fall_on_a_grid_of_ten_slots_per_interval() -> None:
    # Links whose first beats fall in one slot share its instant, and so one wake-up.
    from yeastar_async.events._stream import _BEAT_SLOTS, _on_grid

    slot = 25.0 / _BEAT_SLOTS
    for when in (0.0, 0.1, 2.4999, 2.5, 1234.5678, 99999.99):
        point = _on_grid(when, 25.0)
        assert when <= point < when + slot + 1e-9
        assert abs(point / slot - round(point / slot)) < 1e-9
    assert _on_grid(100.1, 25.0) == _on_grid(102.4, 25.0)
