"""Make-before-break token rotation, end to end against the FakePBX's two token behaviours."""

from __future__ import annotations

import asyncio
import contextlib
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
BURST = 30


def _payload(seq: int) -> dict[str, Any]:
    return {"call_id": str(seq), "members": []}


class Run:
    """A client listening to a fake whose tokens live 1.5 s, and what it received."""

    def __init__(self) -> None:
        self.got: list[Any] = []
        self.emitted: list[int] = []
        self.on_both = 0  # events the fake handed to two sockets of the client
        self.changed = asyncio.Event()

    async def record(self, event: Any) -> None:
        self.got.append(int(event.msg.call_id) if isinstance(event, CallStatusChanged) else event)
        self.changed.set()

    def numbers(self) -> list[int]:
        return [g for g in self.got if isinstance(g, int)]

    async def emit(self, fake: FakePBX, seq: int) -> None:
        taken = await fake.emit(30011, _payload(seq))
        # A send into a socket buffer with room does not yield: without this a burst would
        # starve the loop (the client), which a PBX in another process never does.
        await asyncio.sleep(0)
        if taken:
            self.emitted.append(seq)
        self.on_both += taken == 2

    @staticmethod
    def two_live(fake: FakePBX) -> bool:
        return len([c for c in fake.sockets if 30011 in c.topics]) == 2

    async def go(self, renewal: str, rotations: int) -> tuple[FakePBX, YeastarClient]:
        async with FakePBX(access_token_ttl=1.5, renewal=renewal) as fake:  # type: ignore[arg-type]
            pbx = YeastarClient(fake.base_url, fake.client_id, fake.client_secret, **FAST)
            for target in (CallStatusChanged, Connected, Disconnected):
                pbx.add_handler(target, self.record)
            listener = asyncio.create_task(pbx.listen())
            try:
                async with asyncio.timeout(WAIT):
                    await fake.wait_for_subscription([30011])
                    seq, tail = 0, 0
                    while fake.stats.logins_succeeded <= rotations or tail < 100:
                        # 100 ticks after the last login: its rotation completes meanwhile.
                        tail += fake.stats.logins_succeeded > rotations
                        # While two sockets are subscribed (the overlap), a burst: the same
                        # frames reach both (the client has not even read the new link's ack
                        # yet when the fake wakes this task), and must be delivered once.
                        count = BURST if self.two_live(fake) else 1
                        for _ in range(count):
                            await self.emit(fake, seq)
                            seq += 1
                        # The pace of the flow, cut short when a second socket subscribes.
                        with contextlib.suppress(TimeoutError):
                            await fake.wait_until(lambda: self.two_live(fake), timeout=0.002)
                    while len(self.numbers()) < len(self.emitted):
                        self.changed.clear()
                        await self.changed.wait()
            finally:
                await pbx.aclose()
                await asyncio.wait({listener}, timeout=WAIT)
        return fake, pbx


async def test_overlapping_tokens_rotate_without_a_gap_or_a_duplicate() -> None:
    run = Run()
    fake, pbx = await run.go("kept", rotations=3)
    assert run.numbers() == run.emitted  # every event once, in order
    assert [type(g) for g in run.got if not isinstance(g, int)] == [Connected, Disconnected]
    stats = pbx.event_stats
    assert stats.rotations >= 3
    assert stats.reconnects == 0
    assert fake.stats.max_live_tokens <= 2
    assert fake.stats.revocations >= 3  # each old token, once its link was closed
    assert fake.stats.refreshes == 0  # the stream's step is a second login
    # The overlap happened, and what both sockets took was delivered once.
    assert run.on_both > 0
    assert stats.overlap_duplicates > 0


async def test_revoking_tokens_report_the_gap_of_each_rotation() -> None:
    run = Run()
    fake, _pbx = await run.go("revoked", rotations=2)
    numbers = run.numbers()
    assert numbers == run.emitted  # what a live socket took arrived, once, in order
    reconnects = [g for g in run.got if isinstance(g, Connected) and g.reconnect]
    assert len(reconnects) >= 2
    assert all(g.gap is not None and g.gap > 0 for g in reconnects)
    assert all(30011 in g.unrecoverable_topics for g in reconnects)
    assert fake.stats.max_live_tokens <= 2
    assert fake.stats.renewal_revocations >= 2
