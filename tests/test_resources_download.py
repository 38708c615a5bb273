"""Downloader over the real transport and a loopback HTTP server (127.0.0.1 only)."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from yeastar_async._http import Transport
from yeastar_async.errors import NotFoundError, ParameterError
from yeastar_async.resources import Downloader, DownloadResponse
from yeastar_async.resources._download import file_not_ready

CONTENT = bytes(range(256)) * 40  # 10 KiB: several chunks of 1 KiB
TOKEN = "tok/en+1"


def names(directory: Path) -> list[str]:
    """The file names in ``directory`` (a sync helper: tests may block on tiny files)."""
    return sorted(p.name for p in directory.iterdir())


def read(path: Path) -> bytes:
    return path.read_bytes()


def write(path: Path, data: bytes) -> None:
    path.write_bytes(data)


class Tokens:
    def current(self) -> str | None:
        return TOKEN

    async def token(self) -> str:
        return TOKEN

    async def expired(self, token: str) -> None:
        raise AssertionError("no token expiry in these tests")


class FileServer:
    """Serves /api/download/<name>; a name can be made to answer JSON errors first."""

    def __init__(self) -> None:
        self.hits: list[tuple[str, str]] = []  # (decoded name, raw path)
        self.tokens: list[str] = []
        self.fail_first: dict[str, list[int]] = {}
        self.url = ""

    async def handle(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        self.hits.append((name, request.raw_path.split("?", 1)[0]))
        self.tokens.append(request.query.get("access_token", ""))
        pending = self.fail_first.get(name)
        if pending:
            code = pending.pop(0)
            # The PBX's habit: HTTP 200 with a JSON error body where a file was expected.
            return web.json_response({"errcode": code, "errmsg": "FAILURE"})
        return web.Response(body=CONTENT, content_type="application/octet-stream")


@pytest.fixture
async def server() -> AsyncIterator[FileServer]:
    files = FileServer()
    app = web.Application()
    app.router.add_get("/api/download/{name}", files.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    files.url = f"http://127.0.0.1:{port}"
    yield files
    await runner.cleanup()


@pytest.fixture
async def files(server: FileServer) -> AsyncIterator[Downloader]:
    transport = Transport(server.url, retries=0, timeout=5)
    transport.tokens = Tokens()
    yield Downloader(transport)
    await transport.aclose()


def answer(name: str) -> DownloadResponse:
    return DownloadResponse(file=name, download_resource_url=f"/api/download/{name}")


async def test_iter_bytes_streams_the_file_with_the_token_and_an_encoded_path(
    server: FileServer, files: Downloader
) -> None:
    name = "20220412173331-1649756009.12-2002+2005 Internal.wav"
    chunks = [c async for c in files.iter_bytes(answer(name), chunk_size=1024)]
    assert b"".join(chunks) == CONTENT
    assert len(chunks) > 1
    [(decoded, raw)] = server.hits
    assert decoded == name
    assert raw.endswith("2002%2B2005%20Internal.wav")
    assert server.tokens == [TOKEN]


async def test_save_into_a_directory_uses_the_files_name(
    server: FileServer, files: Downloader, tmp_path: Path
) -> None:
    seen: list[int] = []
    path = await files.save(answer("Cdr-X.csv"), tmp_path, progress=seen.append, chunk_size=1024)
    assert path == tmp_path / "Cdr-X.csv"
    assert read(path) == CONTENT
    assert seen == sorted(seen)
    assert seen[-1] == len(CONTENT)
    assert names(tmp_path) == ["Cdr-X.csv"]


async def test_save_to_a_file_path_replaces_it(
    server: FileServer, files: Downloader, tmp_path: Path
) -> None:
    target = tmp_path / "report.csv"
    write(target, b"old")
    assert await files.save("/api/download/r.csv", target) == target
    assert read(target) == CONTENT


async def test_a_file_name_from_the_pbx_cannot_leave_the_directory(
    server: FileServer, files: Downloader, tmp_path: Path
) -> None:
    evil = DownloadResponse(file="../../x/evil.wav", download_resource_url="/api/download/a.wav")
    assert await files.save(evil, tmp_path) == tmp_path / "evil.wav"


async def test_json_error_body_raises_the_typed_error_and_leaves_no_file(
    server: FileServer, files: Downloader, tmp_path: Path
) -> None:
    server.fail_first["gone.wav"] = [60001]
    with pytest.raises(NotFoundError):
        await files.save(answer("gone.wav"), tmp_path)
    assert names(tmp_path) == []


async def test_a_foreign_url_is_refused_before_any_request(
    server: FileServer, files: Downloader, tmp_path: Path
) -> None:
    with pytest.raises(ValueError, match="not on the PBX"):
        await files.save("https://files.example.net/api/download/x.wav", tmp_path / "x.wav")
    with pytest.raises(ValueError, match="not on the PBX"):
        async for _chunk in files.iter_bytes("http://127.0.0.2:1/api/download/x.wav"):
            pass
    assert server.hits == []
    assert names(tmp_path) == []


async def test_retries_ask_for_a_fresh_link_until_the_file_is_ready(
    server: FileServer, files: Downloader, tmp_path: Path
) -> None:
    server.fail_first["rec.wav"] = [60001, -1]  # not ready, twice
    asked = 0

    async def link() -> DownloadResponse:
        nonlocal asked
        asked += 1
        return answer("rec.wav")

    path = await files.save(link, tmp_path, retries=2, retry_delay=0.001)
    assert read(path) == CONTENT
    assert asked == 3
    assert len(server.hits) == 3


async def test_retries_are_bounded(server: FileServer, files: Downloader, tmp_path: Path) -> None:
    server.fail_first["late.wav"] = [60001, 60001, 60001]
    with pytest.raises(NotFoundError):
        await files.save(answer("late.wav"), tmp_path, retries=1, retry_delay=0.001)
    assert len(server.hits) == 2
    assert names(tmp_path) == []


async def test_errors_that_are_not_about_readiness_are_not_retried(
    server: FileServer, files: Downloader, tmp_path: Path
) -> None:
    server.fail_first["bad.wav"] = [40002]
    with pytest.raises(ParameterError):
        await files.save(answer("bad.wav"), tmp_path, retries=3, retry_delay=0.001)
    assert len(server.hits) == 1


async def test_an_answer_without_url_is_refused(files: Downloader, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="download_resource_url"):
        files.iter_bytes(DownloadResponse(file="x.wav"))
    with pytest.raises(ValueError, match="download_resource_url"):
        await files.save(DownloadResponse(file="x.wav"), tmp_path)
    with pytest.raises(ValueError, match="retries"):
        await files.save(answer("x.wav"), tmp_path, retries=-1)


def test_file_not_ready() -> None:
    assert file_not_ready(NotFoundError(errcode=60001))
    assert not file_not_ready(ParameterError(errcode=40002))
    assert not file_not_ready(RuntimeError("x"))


class StallingTransport:
    """Yields one chunk, then waits until cancelled."""

    def __init__(self) -> None:
        self.closed = False

    async def request(self, *args: Any, **kwargs: Any) -> Any:
        raise AssertionError("not used")

    async def download(
        self, resource_url: str, *, timeout: float | None = None, chunk_size: int = 65536
    ) -> AsyncIterator[bytes]:
        try:
            yield b"partial"
            await asyncio.Event().wait()
        finally:
            self.closed = True


async def test_a_cancelled_download_leaves_no_partial_file(tmp_path: Path) -> None:
    transport = StallingTransport()
    first_chunk = asyncio.Event()
    progress: Callable[[int], object] = lambda _n: first_chunk.set()  # noqa: E731
    task = asyncio.create_task(
        Downloader(transport).save("/api/download/x.wav", tmp_path, progress=progress)
    )
    await first_chunk.wait()
    assert len(names(tmp_path)) == 1  # the temporary file
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert names(tmp_path) == []
    assert transport.closed


# -- where save() writes -----------------------------------------------------------------------


async def test_a_path_ending_in_a_separator_is_a_folder_created_with_its_parents(
    server: FileServer, files: Downloader, tmp_path: Path
) -> None:
    folder = tmp_path / "recordings" / "2024"
    path = await files.save(answer("a.wav"), f"{folder}{os.sep}")
    assert path == folder / "a.wav"
    assert read(path) == CONTENT
    assert names(folder) == ["a.wav"]
    # The folder exists now: the same call again writes inside it, also with "/".
    assert await files.save(answer("b.wav"), f"{folder}/") == folder / "b.wav"
    assert names(folder) == ["a.wav", "b.wav"]


async def test_the_readme_example_saves_into_a_relative_folder(
    server: FileServer, files: Downloader, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    path = await files.save(answer("rec.wav"), "recordings/")
    assert path == Path("recordings") / "rec.wav"
    assert names(tmp_path) == ["recordings"]
    assert read(tmp_path / "recordings" / "rec.wav") == CONTENT


async def test_a_file_path_gets_its_missing_parent_folders(
    server: FileServer, files: Downloader, tmp_path: Path
) -> None:
    target = tmp_path / "reports" / "march" / "cdr.csv"
    assert await files.save(answer("Cdr-X.csv"), target) == target
    assert read(target) == CONTENT
    assert names(target.parent) == ["cdr.csv"]


async def test_a_name_close_to_the_length_limit_still_downloads(
    server: FileServer, files: Downloader, tmp_path: Path
) -> None:
    # The temporary file's name adds a prefix and suffix: it must stay within 255 bytes too.
    target = tmp_path / ("r" * 250 + ".csv")
    assert await files.save("/api/download/r.csv", target) == target
    assert read(target) == CONTENT
    assert names(tmp_path) == [target.name]


async def test_write_errors_name_the_callers_path_not_the_temporary_file(
    server: FileServer, files: Downloader, tmp_path: Path
) -> None:
    too_long = tmp_path / ("x" * 300 + ".wav")  # no file system takes a 300-byte name
    with pytest.raises(OSError, match="x" * 300) as caught:
        await files.save("/api/download/x.wav", too_long)
    assert caught.value.filename == str(too_long)
    assert ".part" not in str(caught.value)
    assert str(too_long) in str(caught.value)
    # A parent that is a file: the error is about that path of the caller's.
    write(tmp_path / "taken", b"")
    with pytest.raises(OSError, match="taken") as caught:
        await files.save("/api/download/x.wav", tmp_path / "taken" / "x.wav")
    assert ".part" not in str(caught.value)
    assert str(tmp_path / "taken") in str(caught.value)
    with pytest.raises(OSError, match="taken"):
        await files.save(answer("x.wav"), f"{tmp_path / 'taken'}/")
    assert names(tmp_path) == ["taken"]
