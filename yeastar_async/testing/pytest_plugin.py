"""pytest plugin of yeastar-async: the ``fake_pbx`` and ``fake_pbx_factory`` fixtures.

Installed packages register it through the ``pytest11`` entry point, so the fixtures are there
without any import::

    async def test_my_bot(fake_pbx):
        client = YeastarClient(fake_pbx.base_url, fake_pbx.client_id, fake_pbx.client_secret)
        ...

    async def test_short_tokens(fake_pbx_factory):
        pbx = await fake_pbx_factory(access_token_ttl=5, inbound_window=0.5)

Both keep the lockout guard of the SDK out of the developer's home and apart between tests:
clients created in the test count rejected logins in a state file under the test's temporary
directory (``XDG_STATE_HOME`` points there), and the process-wide counts start empty. A test
that builds clients without these fixtures can request ``yeastar_login_guard_isolation``.

The fixtures are async: they need pytest-asyncio (``asyncio_mode = "auto"``, or mark the tests
with ``@pytest.mark.asyncio``). Without pytest-asyncio installed they are plain pytest fixtures
for another async plugin to drive.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import pytest

from .._guard import reset_login_guards
from ._server import FakePBX

try:  # pytest-asyncio runs async fixtures in strict mode only when they use its decorator
    from pytest_asyncio import fixture as _async_fixture
except ImportError:  # pragma: no cover - pytest-asyncio is in the test extra
    _async_fixture = pytest.fixture  # type: ignore[assignment]

__all__ = ["fake_pbx", "fake_pbx_factory", "yeastar_login_guard_isolation"]


@pytest.fixture
def yeastar_login_guard_isolation(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> Iterator[None]:
    """The lockout guard's default state file in a fresh temporary directory, no count in memory.

    Every FakePBX listens on 127.0.0.1, and the guard counts per address: without this, logins
    rejected in one test would count in the next, and in the developer's own state file.
    """
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path_factory.mktemp("yeastar-state")))
    reset_login_guards()
    try:
        yield
    finally:
        reset_login_guards()


@_async_fixture
async def fake_pbx(yeastar_login_guard_isolation: None) -> AsyncIterator[FakePBX]:
    """A started :class:`FakePBX` with default options, closed after the test."""
    async with FakePBX() as pbx:
        yield pbx


@_async_fixture
async def fake_pbx_factory(
    yeastar_login_guard_isolation: None,
) -> AsyncIterator[Callable[..., Awaitable[FakePBX]]]:
    """``await fake_pbx_factory(**options)`` starts a FakePBX; every one is closed afterwards."""
    started: list[FakePBX] = []

    async def make(**options: Any) -> FakePBX:
        pbx = await FakePBX(**options).start()
        started.append(pbx)
        return pbx

    try:
        yield make
    finally:
        for pbx in reversed(started):
            await pbx.close()
