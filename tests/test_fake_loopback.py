"""The three fakes share one lifecycle, address and state-change wait (``LoopbackFake``)."""

from __future__ import annotations

import asyncio

import pytest

from tests._openvox import PASSWORD
from tests.security._transport_rig import bounded
from yeastar_async.openvox import OpenVoxAuthError, OpenVoxClient
from yeastar_async.testing import FakeCec, FakeOpenVox, FakePBX
from yeastar_async.testing._loopback import LoopbackFake


@bounded()
async def test_every_fake_runs_in_async_with_on_loopback() -> None:
    for fake in (FakePBX(), FakeCec(), FakeOpenVox(password=PASSWORD)):
        assert isinstance(fake, LoopbackFake)
        async with fake as running:
            assert running is fake
            assert fake.port > 0
            assert fake.base_url == f"http://127.0.0.1:{fake.port}"
        await fake.close()  # idempotent


@bounded()
async def test_wait_until_sees_an_openvox_request_arrive() -> None:
    async with FakeOpenVox(password=PASSWORD) as pbx:
        client = OpenVoxClient(pbx.base_url, "api", "wrong", login_guard_state=None)
        login = asyncio.create_task(client.login())
        await pbx.wait_until(lambda: pbx.count("login") == 1, what="a login")
        with pytest.raises(OpenVoxAuthError):
            await login
        await client.aclose()


@bounded()
async def test_wait_until_names_the_fake_and_what_it_waited_for() -> None:
    async with FakeCec() as cec:
        with pytest.raises(TimeoutError, match=r"^FakeCec: no 1 request\(s\) to tokenByAkSk"):
            await cec.wait_for_request("tokenByAkSk", timeout=0.01)
    async with FakePBX() as pbx:
        with pytest.raises(TimeoutError, match=r"^FakePBX: no miracle within 0.01 s"):
            await pbx.wait_until(lambda: False, timeout=0.01, what="miracle")
