"""Make-before-break token rotation, end to end against the FakePBX's two token behaviours."""

from __future__ import annotations

import asyncio
from typing import Any

from yeastar_async import YeastarClient
from yeastar_async.events import CallStatusChanged, Connected, Disconnected
from yeastar_async.testing import FakePBX

FAST: dict[str, Any] = {
    "heartbeat_interval": 0.2,
    "heartbeat_timeout": 0.5,
    "reconnect_delay_min": 0.02,
    "reconnect_delay_max": 0.1,
    "healthy_after": 0.3,
    "shutdown_timeout": 1.0,
    "login_guard_state": None,
}
WAIT = 10.0


def _payload(seq: int) -> dict[str, Any]:
    return {"call_id": str(seq), "members": []}


async def _run(renewal: str, rotations: int) -> tuple[FakePBX, YeastarClient, list[Any], list[int]]:
    fake = await FakePBX(access_token_ttl=1.5, renewal=renewal).start()  # type: ignore[arg-type]
    pbx = YeastarClient(fake.base_url, fake.client_id, fake.client_secret, **FAST)
    got: list[Any] = []
    emitted: list[int] = []

    @pbx.on(CallStatusChanged)
    async def on_call(event: CallStatusChanged) -> None:
        got.append(int(event.msg.call_id))

    @pbx.on(Connected)
    async def on_up(event: Connected) -> None:
        got.append(event)

    @pbx.on(Disconnected)
    async def on_down(event: Disconnected) -> None:
        got.append(event)

    listener = asyncio.create_task(pbx.listen())
    async with asyncio.timeout(WAIT):
        await fake.wait_for_subscription([30011])
        seq = 0
        start_logins = fake.stats.logins_succeeded
        while fake.stats.logins_succeeded - start_logins < rotations:
            if await fake.emit(30011, _payload(seq)):
                emitted.append(seq)
            seq += 1
            await asyncio.sleep(0.002)
        for _ in range(50):  # and a little after the last rotation
            if await fake.emit(30011, _payload(seq)):
                emitted.append(seq)
            seq += 1
            await asyncio.sleep(0.002)
        while len([g for g in got if isinstance(g, int)]) < len(emitted):
            await asyncio.sleep(0.01)
    await pbx.aclose()
    await asyncio.wait({listener}, timeout=WAIT)
    await fake.close()
    return fake, pbx, got, emitted


async def test_overlapping_tokens_rotate_without_a_gap_or_a_duplicate() -> None:
    fake, pbx, got, emitted = await _run("kept", rotations=3)
    numbers = [g for g in got if isinstance(g, int)]
    assert numbers == emitted  # every event once, in order
    assert [type(g) for g in got if not isinstance(g, int)] == [Connected, Disconnected]
    stats = pbx.event_stats
    assert stats.rotations >= 3
    assert stats.reconnects == 0
    assert fake.stats.max_live_tokens <= 2
    assert fake.stats.revocations >= 3


async def test_revoking_tokens_report_the_gap_of_each_rotation() -> None:
    fake, _pbx, got, emitted = await _run("revoked", rotations=2)
    numbers = [g for g in got if isinstance(g, int)]
    assert len(numbers) == len(set(numbers))  # never twice
    assert set(emitted) <= set(numbers)  # everything sent to a live socket arrived
    reconnects = [g for g in got if isinstance(g, Connected) and g.reconnect]
    assert len(reconnects) >= 2
    assert all(g.gap is not None and g.gap > 0 for g in reconnects)
    assert all(30011 in g.unrecoverable_topics for g in reconnects)
    assert fake.stats.max_live_tokens <= 2
