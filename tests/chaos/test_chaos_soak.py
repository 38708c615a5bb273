"""Soak: random drops every 1-5 s under a steady 200 events/s, for 5 minutes.

Issue 7, scenario 12. Runs only with ``pytest --soak``. ``YEASTAR_SOAK_SECONDS`` sets the
duration (default 300) so it can be tried briefly; ``YEASTAR_SOAK_SEED`` replays a run's drop
schedule. The summary line is printed (``-s`` shows it)::

    YEASTAR_SOAK_SECONDS=20 pytest --soak -s tests/chaos/test_chaos_soak.py

Zero loss during connected windows: every event the fake handed to a live socket reaches each
handler and the subscription exactly once, in order; events emitted while no socket was
subscribed (the reconnect gap) are not sent, and each gap is reported by ``Connected.gap``.
"""

from __future__ import annotations

import asyncio
import os
import random
import time

import pytest

from tests.chaos._rig import Rig
from tests.chaos.conftest import FakeFactory
from yeastar_async.events import Connected, Disconnected

RATE = 200.0  # events per second
DROP_EVERY = (1.0, 5.0)  # seconds between drops, uniformly drawn


@pytest.mark.soak
async def test_soak_random_drops_at_200_events_per_second(fake_factory: FakeFactory) -> None:
    duration = float(os.environ.get("YEASTAR_SOAK_SECONDS", "300"))
    seed = int(os.environ.get("YEASTAR_SOAK_SEED", str(time.time_ns() % 1_000_000)))
    rng = random.Random(seed)
    pbx = await fake_factory(idle_timeout=5.0)
    async with Rig(
        pbx,
        subscriber=True,
        heartbeat_interval=0.5,
        heartbeat_timeout=1.0,
        reconnect_delay_min=0.05,
        reconnect_delay_max=0.5,
        healthy_after=0.5,
    ) as rig:
        loop = asyncio.get_running_loop()
        await rig.listen()
        await rig.next_link(Connected)
        started = loop.time()
        next_drop = started + rng.uniform(*DROP_EVERY)
        emitted = drops = 0
        while (now := loop.time()) - started < duration:
            # Catch up to the rate (a late loop emits a few at once, as a busy PBX would).
            due = int((now - started) * RATE)
            while emitted < due:
                await rig.emit_one()
                emitted += 1
            if now >= next_drop:
                drops += pbx.drop_connections()
                next_drop = now + rng.uniform(*DROP_EVERY)
            await asyncio.sleep(1 / RATE)  # the pace of the flow
        elapsed = loop.time() - started
        await rig.settle(timeout=30)

        reconnected = [e for e in rig.links if isinstance(e, Connected) and e.reconnect]
        gaps = [e.gap for e in reconnected if e.gap is not None]
        lost_links = [e for e in rig.links if isinstance(e, Disconnected)]
        stats = rig.client.event_stats
        print(
            f"\nSOAK seed={seed} duration={elapsed:.1f}s emitted={emitted} "
            f"sent_on_live_links={len(rig.sent)} not_sent_in_gaps={emitted - len(rig.sent)} "
            f"delivered_per_handler={[len(r.seqs) for r in rig.all_recorders]} "
            f"drops={drops} reconnects={stats.reconnects} "
            f"max_gap={max(gaps, default=0):.3f}s mean_gap={sum(gaps) / max(len(gaps), 1):.3f}s "
            f"logins={pbx.count('get_token')} heartbeats={stats.heartbeats_sent} "
            f"stream_drops={stats.drops} malformed={stats.malformed_frames} "
            f"handler_errors={stats.handler_errors}"
        )
        # settle() checked exactly-once in order for every handler and the subscription.
        assert drops >= int(duration / DROP_EVERY[1])
        assert stats.reconnects == drops == len(lost_links) == len(reconnected)
        assert max(gaps) < 2.0
        assert stats.drops == stats.handler_errors == stats.malformed_frames == 0
        assert len(rig.sent) >= emitted * 0.9  # the gaps are short
