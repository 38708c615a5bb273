"""The chaos suite's own checks can fail: a leaked task, a lost or repeated event, a login too
many, a socket left open and a secret in a log record are each caught.
"""

from __future__ import annotations

import asyncio
import logging

import pytest

from tests._secrets import SecretWatch
from tests.chaos._rig import Rig
from yeastar_async.events import Connected
from yeastar_async.testing import FakePBX


async def test_a_leaked_task_is_caught(pbx: FakePBX) -> None:
    stray: asyncio.Task[bool] | None = None
    with pytest.raises(AssertionError, match="tasks left after aclose"):
        async with Rig(pbx):
            stray = asyncio.create_task(asyncio.Event().wait())
    assert stray is not None
    stray.cancel()


async def test_a_lost_event_and_a_repeated_event_are_caught(pbx: FakePBX) -> None:
    async with Rig(pbx) as rig:
        await rig.listen()
        await rig.next_link(Connected)
        assert await rig.emit(3) == 3
        await rig.settle()
        rig.sent.append(99)  # "sent" but never delivered
        with pytest.raises(AssertionError, match=r"missing \[99\]"):
            await rig.settle(timeout=0.05)
        rig.sent.pop()
        rig.recorders[1].seqs.append(2)  # delivered twice
        with pytest.raises(AssertionError, match="1 duplicate"):
            rig.check_delivery()
        rig.recorders[1].seqs.pop()


async def _connect_once(pbx: FakePBX) -> None:
    async with Rig(pbx, max_logins=0) as rig:
        await rig.listen()
        await rig.next_link(Connected)


async def test_a_login_too_many_is_caught(pbx: FakePBX) -> None:
    with pytest.raises(AssertionError, match="1 logins"):
        await _connect_once(pbx)


async def test_an_open_connection_is_caught(pbx: FakePBX) -> None:
    _, writer = await asyncio.open_connection(pbx.host, pbx.port)
    try:
        with pytest.raises(TimeoutError, match="close of every TCP connection"):
            async with Rig(pbx, close_wait=0.1):
                pass
    finally:
        writer.close()
        await writer.wait_closed()


def test_a_secret_in_a_log_record_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    watch = SecretWatch(monkeypatch)
    watch.install()
    secret = "s3cr3t-never-to-be-logged"
    try:
        watch.client_secrets.add(secret)  # only this watch knows it: the suite's stays clean
        logging.getLogger("yeastar_async.selfcheck").debug("connecting with %s", secret)
    finally:
        watch.uninstall()
    assert watch.records >= 1
    with pytest.raises(AssertionError, match="client secret given to a YeastarClient") as info:
        watch.check()
    assert secret not in str(info.value)
