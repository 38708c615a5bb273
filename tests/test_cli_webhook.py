"""``yeastar-async webhook``: receive signed deliveries, print them as ``events`` does."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import aiohttp
import pytest

from yeastar_async import cli
from yeastar_async.cli import _webhook
from yeastar_async.webhooks import SIGNATURE_HEADER, sign

SECRET = "qnIdTBxyGgn2LckZrFw7IVeTRMJf3XfM"
ALERT = {"type": 30036, "sn": "S", "msg": {"event_type": "system", "event_name": "disk_full"}}
REPORT = {"type": 30027, "sn": "S", "msg": json.dumps({"task_id": 4})}


async def run_receiver(
    monkeypatch: pytest.MonkeyPatch, *argv: str
) -> tuple[asyncio.Task[int], str]:
    """Start ``webhook`` in-process on a free loopback port; returns the task and its URL."""
    url: asyncio.Future[str] = asyncio.get_running_loop().create_future()
    status = _webhook.err

    def err(line: str) -> None:
        status(line)
        if "receiving webhooks on" in line and not url.done():
            url.set_result(line.split(" on ")[1].split()[0])

    monkeypatch.setattr(_webhook, "err", err)
    monkeypatch.setenv("HOOK_SECRET", SECRET)
    base = ["webhook", "--host", "127.0.0.1", "--port", "0", "--secret-env", "HOOK_SECRET"]
    task = asyncio.create_task(cli.amain([*base, *argv]))
    async with asyncio.timeout(5):
        done, _ = await asyncio.wait({url, task}, return_when=asyncio.FIRST_COMPLETED)
    assert url in done, task.result()
    return task, url.result()


async def deliver(url: str, doc: dict[str, Any], secret: str = SECRET) -> int:
    body = json.dumps(doc).encode()
    async with (
        aiohttp.ClientSession() as session,
        session.post(url, data=body, headers={SIGNATURE_HEADER: sign(secret, body)}) as response,
    ):
        return response.status


async def test_prints_signed_deliveries_as_json_lines(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    task, url = await run_receiver(monkeypatch, "--json", "--count", "2", "--path", "/hook")
    assert url.endswith("/hook")
    assert await deliver(url, ALERT, secret="forged" * 6) == 401  # never printed
    assert await deliver(url, ALERT) == 200
    assert await deliver(url, REPORT) == 200
    async with asyncio.timeout(5):
        assert await task == 0
    first, second = (json.loads(line) for line in capsys.readouterr().out.splitlines())
    assert (first["type"], first["msg"]["event_name"]) == (30036, "disk_full")
    assert (second["type"], second["name"], second["msg"]) == (
        30027,
        "report download",
        {"task_id": 4},
    )


async def test_prints_lines_like_events(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    task, url = await run_receiver(monkeypatch, "--count", "1", "--topics", "30036")
    assert await deliver(url, REPORT) == 200  # not a topic asked for: answered, not printed
    assert await deliver(url, ALERT) == 200
    async with asyncio.timeout(5):
        assert await task == 0
    (line,) = capsys.readouterr().out.splitlines()
    assert "30036 system alert" in line
    assert line.endswith("system disk_full:")


async def test_a_missing_secret_is_a_usage_error(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("NO_SUCH_SECRET", raising=False)
    code = await cli.amain(["webhook", "--port", "0", "--secret-env", "NO_SUCH_SECRET"])
    assert code == 2
    assert "set the environment variable NO_SUCH_SECRET" in capsys.readouterr().err
    assert await cli.amain(["webhook"]) == 2  # --port is required
