"""Red team, issue 11 point 9: huge or endless answers, and downloads that never end.

JSON answers are capped at ``max_response_size`` (by Content-Length before reading, and by the
bytes that arrive); file downloads are not capped, but end within ``download_timeout``.
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import time

import pytest
from aiohttp import web

from tests._secrets import SecretWatch, assert_no_secret
from yeastar_async import YeastarClient
from yeastar_async.errors import TransportError

from ._transport_rig import CLIENT_ID, SECRET, Handler, bounded, client_for, hostile, secrets_of

LIMIT = 64 * 1024


def endless(*, declared: int | None = None, gzipped: bool = False) -> Handler:
    """A body that never ends (or claims ``declared`` bytes), written as fast as it is read."""

    async def handler(request: web.Request) -> web.StreamResponse:
        headers = {"Content-Type": "application/json"}
        if declared is not None:
            headers["Content-Length"] = str(declared)
        if gzipped:
            headers["Content-Encoding"] = "gzip"
        resp = web.StreamResponse(headers=headers)
        await resp.prepare(request)
        head = b'{"errcode":0,"data":"'
        with contextlib.suppress(ConnectionError):
            if gzipped:  # one small gzip member that inflates to 4 MiB
                await resp.write(gzip.compress(head + b" " * (4 * 1024 * 1024)))
            else:
                await resp.write(head)
                for _ in range(1_000_000):
                    await resp.write(b" " * 65536)
        return resp

    return handler


@pytest.mark.parametrize(
    ("route", "expected"),
    [
        (endless(declared=10**12), "declares 1000000000000 bytes"),
        (endless(), f"sent more than {LIMIT} bytes"),
        (endless(gzipped=True), f"sent more than {LIMIT} bytes"),  # 4 MiB from 4 KiB
    ],
    ids=["content-length", "endless", "gzip-bomb"],
)
@bounded()
async def test_json_answers_are_capped(
    route: Handler, expected: str, secrets_never_logged: SecretWatch
) -> None:
    async with hostile(secrets_never_logged) as pbx:
        pbx.routes["extension/list"] = route
        async with client_for(pbx, max_response_size=LIMIT) as client:
            with pytest.raises(TransportError, match=expected) as info:
                await client.request("GET", "extension/list")
        assert info.value.status == 200
        assert "max_response_size" in str(info.value)
        assert_no_secret(info.value, secrets_of(pbx))


@bounded()
async def test_the_default_cap_is_32_mib_and_answers_below_it_pass(
    secrets_never_logged: SecretWatch,
) -> None:
    big = b'{"errcode":0,"errmsg":"SUCCESS","data":"' + b"x" * (2 * 1024 * 1024) + b'"}'

    async def answer(request: web.Request) -> web.Response:
        return web.Response(body=big, content_type="application/json")

    async with hostile(secrets_never_logged) as pbx:
        pbx.routes["extension/list"] = answer
        async with client_for(pbx) as client:
            assert client._transport.max_response_size == 32 * 1024 * 1024
            result = await client.request("GET", "extension/list")
        assert len(result["data"]) == 2 * 1024 * 1024


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, "32M", None])
def test_max_response_size_is_validated(bad: object) -> None:
    with pytest.raises(ValueError, match="max_response_size") as info:
        YeastarClient("http://127.0.0.1:9", CLIENT_ID, SECRET, max_response_size=bad)  # type: ignore[arg-type]
    assert repr(bad) in str(info.value)


@pytest.mark.parametrize("bad", [0, -5.0])
def test_download_timeout_is_validated(bad: float) -> None:
    with pytest.raises(ValueError, match="download_timeout") as info:
        YeastarClient("http://127.0.0.1:9", CLIENT_ID, SECRET, download_timeout=bad)
    assert repr(bad) in str(info.value)


@bounded()
async def test_downloads_are_not_capped(secrets_never_logged: SecretWatch) -> None:
    size = 4 * LIMIT

    async def wav(request: web.Request) -> web.Response:
        return web.Response(body=b"R" * size, content_type="audio/wav")

    async with hostile(secrets_never_logged) as pbx:
        pbx.routes["/api/download/call.wav"] = wav
        async with client_for(pbx, max_response_size=LIMIT) as client:
            got = b"".join([c async for c in client.files.iter_bytes("/api/download/call.wav")])
        assert len(got) == size


def trickle(started: asyncio.Event) -> Handler:
    """A file that arrives one byte every 20 ms, forever: no single read ever stalls."""

    async def handler(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": "audio/wav"})
        await resp.prepare(request)
        started.set()
        with contextlib.suppress(ConnectionError):
            while True:
                await resp.write(b"R")
                await asyncio.sleep(0.02)
        return resp

    return handler


@pytest.mark.parametrize("per_call", [False, True])
@bounded(15)
async def test_a_trickling_download_ends_within_its_time_bound(
    per_call: bool, secrets_never_logged: SecretWatch, tmp_path: object
) -> None:
    started = asyncio.Event()
    async with hostile(secrets_never_logged) as pbx:
        pbx.routes["/api/download/call.wav"] = trickle(started)
        options = {} if per_call else {"download_timeout": 1.0}
        async with client_for(pbx, timeout=5.0, **options) as client:
            begun = time.monotonic()
            with pytest.raises(TransportError, match="not complete within 1 s") as info:
                await client.files.save(
                    "/api/download/call.wav",
                    f"{tmp_path}/call.wav",
                    timeout=1.0 if per_call else None,
                )
            took = time.monotonic() - begun
        assert started.is_set()
        assert 0.9 < took < 4.0
        assert_no_secret(info.value, secrets_of(pbx))


async def test_the_default_download_bound_is_ten_minutes() -> None:
    async with YeastarClient("http://127.0.0.1:9", CLIENT_ID, SECRET) as client:
        assert client._transport.download_timeout == 600.0
