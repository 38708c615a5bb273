"""files.save at disk speed: batched writes, no worker-thread round trip per chunk, and the
stall bound kept by one timer (over a loopback aiohttp server, 127.0.0.1 only)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import anyio.to_thread
import pytest
from aiohttp import web

from tests.test_resources_download import Tokens, names
from yeastar_async._http import Transport
from yeastar_async.errors import TransportError
from yeastar_async.resources import Downloader, _download

SIZE = 4 * 1024 * 1024 + 123  # four batches and a tail
BLOB = bytes(range(256)) * (SIZE // 256) + bytes(SIZE % 256)
STALL = 0.3  # the transport's timeout, and so the stall bound, in these tests


class Server:
    """``/big`` sends BLOB; ``/stall`` sends a head and 1 KiB, then nothing until released."""

    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.url = ""

    async def big(self, request: web.Request) -> web.StreamResponse:
        return web.Response(body=BLOB, content_type="audio/x-wav")

    async def stall(self, request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "audio/x-wav"})
        response.content_length = 4096
        await response.prepare(request)
        await response.write(b"x" * 1024)
        await self.release.wait()
        await response.write(b"y" * 3072)
        return response


@pytest.fixture
async def server() -> AsyncIterator[Server]:
    srv = Server()
    app = web.Application()
    app.router.add_get("/big", srv.big)
    app.router.add_get("/stall", srv.stall)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    srv.url = f"http://127.0.0.1:{runner.addresses[0][1]}"
    yield srv
    srv.release.set()
    await runner.cleanup()


@pytest.fixture
async def files(server: Server) -> AsyncIterator[Downloader]:
    transport = Transport(server.url, retries=0, timeout=STALL)
    transport.tokens = Tokens()
    yield Downloader(transport)
    await transport.aclose()


@pytest.fixture
async def thread_hops(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every hand-off to a worker thread (anyio's and the loop's executor), by function."""
    hops: list[str] = []
    run_sync = anyio.to_thread.run_sync

    async def counted(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        hops.append(getattr(fn, "__name__", repr(fn)))
        return await run_sync(fn, *args, **kwargs)

    monkeypatch.setattr(anyio.to_thread, "run_sync", counted)
    loop = asyncio.get_running_loop()
    executor = loop.run_in_executor

    def in_executor(pool: Any, fn: Callable[..., Any], *args: Any) -> Any:
        hops.append(getattr(fn, "__name__", repr(fn)))
        return executor(pool, fn, *args)

    monkeypatch.setattr(loop, "run_in_executor", in_executor)
    return hops


async def test_save_writes_in_batches_without_a_thread_trip_per_chunk(
    files: Downloader, tmp_path: Path, thread_hops: list[str]
) -> None:
    seen: list[int] = []
    path = await files.save("/big", tmp_path / "a.wav", progress=seen.append)
    assert path.read_bytes() == BLOB
    assert seen[-1] == SIZE
    # 64 KiB chunks: 65 of them. The old code made one worker-thread trip per chunk.
    assert len(seen) > 60
    # The file's own operations (is_dir, mkdir, open, close, replace) go to a thread; no write.
    assert [hop for hop in thread_hops if "write" in hop] == [], thread_hops
    assert len(thread_hops) <= 6, thread_hops


async def test_a_slow_disk_moves_the_writes_to_a_worker_thread(
    files: Downloader, tmp_path: Path, thread_hops: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_download, "_SLOW_WRITE", 0.0)  # every write counts as slow
    path = await files.save("/big", tmp_path / "a.wav")
    assert path.read_bytes() == BLOB
    # The first batch on the loop's thread (it was "slow"), the others in a thread each.
    writes = thread_hops.count("_write_all")
    assert 2 <= writes <= SIZE // _download._BATCH + 1, thread_hops
    assert names(tmp_path) == ["a.wav"]


async def test_a_cancelled_save_with_a_write_in_a_thread_leaves_nothing(
    files: Downloader, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_download, "_SLOW_WRITE", 0.0)
    second_batch = asyncio.Event()

    def progress(n: int) -> None:
        if n > 2 * _download._BATCH:
            second_batch.set()

    task = asyncio.create_task(files.save("/big", tmp_path / "a.wav", progress=progress))
    async with asyncio.timeout(10):
        await second_batch.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert names(tmp_path) == []


async def test_a_stalled_download_ends_after_the_stall_bound(
    files: Downloader, tmp_path: Path
) -> None:
    started = time.monotonic()
    with pytest.raises(TransportError, match=r"stalled for 0\.3 s"):
        async with asyncio.timeout(10):
            await files.save("/stall", tmp_path / "a.wav")
    elapsed = time.monotonic() - started
    assert STALL <= elapsed < 4 * STALL
    assert names(tmp_path) == []


async def test_a_slow_consumer_is_no_stall(server: Server, files: Downloader) -> None:
    chunks = files.iter_bytes("/stall", chunk_size=1024)
    first = await anext(chunks)
    assert first == b"x" * 1024
    # The consumer takes longer than the stall bound before asking again (time itself is
    # the point here: nothing to await instead); meanwhile the server sends the rest.
    server.release.set()
    await asyncio.sleep(2 * STALL)
    rest = b"".join([chunk async for chunk in chunks])
    assert rest == b"y" * 3072
