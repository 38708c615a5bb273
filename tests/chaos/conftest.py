"""Fixtures of the chaos suite: a fast FakePBX and leak checks (the secrets check is global)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from tests.chaos._rig import WAIT, new_tasks, starting_fake, tracking_fake_tasks
from yeastar_async.testing import FakePBX

FakeFactory = Callable[..., Awaitable[FakePBX]]


@pytest.fixture
async def fake_factory() -> AsyncIterator[FakeFactory]:
    """``await fake_factory(**options)`` starts a FakePBX; afterwards every one is closed and
    every task started during the test must have ended."""
    before = set(asyncio.all_tasks())
    started: list[FakePBX] = []

    async def make(**options: Any) -> FakePBX:
        with starting_fake():
            fake = await FakePBX(**options).start()
        started.append(fake)
        return fake

    with tracking_fake_tasks():
        yield make
        for fake in reversed(started):
            await fake.close()
    pending = new_tasks(before)
    if pending:
        # Server handlers of sockets closed a moment ago end on their own; bounded, not slept.
        await asyncio.wait(pending, timeout=WAIT)
    leaked = {t for t in new_tasks(before) if not t.done()}
    assert not leaked, f"tasks still running after the test: {leaked}"


@pytest.fixture
async def pbx(fake_factory: FakeFactory) -> FakePBX:
    """A FakePBX that drops a WebSocket idle for 3 s (the client heartbeats every 50 ms)."""
    return await fake_factory(idle_timeout=3.0)
