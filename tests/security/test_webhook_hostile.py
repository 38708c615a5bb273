"""Hostile webhook deliveries: forged or missing signatures, huge, stalled and trickled bodies,
replays, malformed JSON and absurd numbers. Nothing unsigned is dispatched, nothing holds the
receiver, nothing answers 500."""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import pytest

from yeastar_async import events, webhooks
from yeastar_async.webhooks import SIGNATURE_HEADER, WebhookReceiver, sign

SECRET = "qnIdTBxyGgn2LckZrFw7IVeTRMJf3XfM"
GOOD = json.dumps({"type": 30036, "sn": "S", "msg": {"event_name": "x"}}).encode()


class Rig:
    def __init__(self, rx: WebhookReceiver, url: str) -> None:
        self.rx = rx
        self.url = url
        self.seen: list[Any] = []
        self.changed = asyncio.Event()
        host, port = urlsplit(url).hostname, urlsplit(url).port
        assert host is not None
        assert port is not None
        self.host, self.port = host, port

    async def record(self, event: Any) -> None:
        self.seen.append(event)
        self.changed.set()

    async def wait_seen(self, count: int) -> None:
        async with asyncio.timeout(5):
            while len(self.seen) < count:
                self.changed.clear()
                await self.changed.wait()

    async def post(self, body: bytes, headers: dict[str, str] | None = None) -> int:
        async with (
            aiohttp.ClientSession() as session,
            session.post(
                self.url, data=body, headers=headers, timeout=aiohttp.ClientTimeout(total=5)
            ) as response,
        ):
            return response.status

    async def signed(self, body: bytes) -> int:
        return await self.post(body, {SIGNATURE_HEADER: sign(SECRET, body)})

    async def raw(self, head: bytes) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        reader, writer = await asyncio.open_connection(self.host, self.port)
        writer.write(head)
        await writer.drain()
        return reader, writer


async def status_of(reader: asyncio.StreamReader) -> int:
    line = await reader.readline()
    return int(line.split()[1])


@pytest.fixture
async def rig() -> AsyncIterator[Rig]:
    rx = WebhookReceiver(secret=SECRET, max_body=4096, read_timeout=0.5, replay_cache=3)
    async with rx, rx.serve() as url:
        r = Rig(rx, url)
        rx.stream.add_handler(events.SystemEventAlert, r.record)
        yield r


def head(length: int | None, signature: str = "x", chunked: bool = False) -> bytes:
    lines = ["POST / HTTP/1.1", "Host: 127.0.0.1", f"{SIGNATURE_HEADER}: {signature}"]
    if chunked:
        lines.append("Transfer-Encoding: chunked")
    elif length is not None:
        lines.append(f"Content-Length: {length}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


async def test_forged_and_missing_signatures_dispatch_nothing(rig: Rig) -> None:
    other = json.dumps({"type": 30036, "msg": {"event_name": "forged"}}).encode()
    forged = [
        {},  # missing
        {SIGNATURE_HEADER: ""},
        {SIGNATURE_HEADER: sign(SECRET, other)},  # a valid signature of another body
        {SIGNATURE_HEADER: sign("A" * 32, GOOD)},  # another secret
        {SIGNATURE_HEADER: sign(SECRET, GOOD)[:-2]},  # truncated
        {SIGNATURE_HEADER: sign(SECRET, GOOD).lower()},
        {SIGNATURE_HEADER: "%" * 44},
        {SIGNATURE_HEADER.lower(): sign(SECRET, GOOD) + "AAAA"},
    ]
    for headers in forged:
        assert await rig.post(GOOD, headers) == 401, headers
    assert rig.rx.stats.bad_signatures == len(forged)
    assert rig.rx.stats.dispatched == 0
    # The genuine one still goes through (a bad signature is not remembered as seen).
    assert await rig.signed(GOOD) == 200
    await rig.wait_seen(1)
    assert len(rig.seen) == 1


async def test_the_comparison_is_constant_time(monkeypatch: pytest.MonkeyPatch, rig: Rig) -> None:
    calls: list[tuple[bytes, bytes]] = []
    original = hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        calls.append((a, b))
        return original(a, b)

    monkeypatch.setattr(webhooks.hmac, "compare_digest", spy)
    assert await rig.post(GOOD, {SIGNATURE_HEADER: sign("B" * 32, GOOD)}) == 401
    assert await rig.signed(GOOD) == 200
    # Every check went through compare_digest, on the 32-byte digests (not on text).
    assert len(calls) == 2
    assert all(len(a) == len(b) == 32 for a, b in calls)


async def test_a_huge_content_length_is_refused_before_the_body_is_read(rig: Rig) -> None:
    reader, writer = await rig.raw(head(10 * 1024 * 1024))
    try:
        async with asyncio.timeout(2):  # answered without waiting for 10 MiB that never come
            assert await status_of(reader) == 413
    finally:
        writer.close()
    assert rig.rx.stats.oversized == 1


async def test_an_oversized_chunked_body_is_cut_off(rig: Rig) -> None:
    reader, writer = await rig.raw(head(None, chunked=True))
    try:
        chunk = b"x" * 3000
        for _ in range(2):  # 6000 bytes > max_body 4096
            writer.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
        await writer.drain()
        async with asyncio.timeout(2):
            assert await status_of(reader) == 413
    finally:
        writer.close()
    assert await rig.post(b"x" * 5000) == 413  # and with a Content-Length


async def test_a_stalled_body_times_out(rig: Rig) -> None:
    reader, writer = await rig.raw(head(100) + b'{"type":')  # then nothing
    try:
        async with asyncio.timeout(3):
            assert await status_of(reader) == 408
    finally:
        writer.close()
    assert rig.rx.stats.timeouts == 1


async def test_a_trickled_body_cannot_hold_the_receiver(rig: Rig) -> None:
    reader, writer = await rig.raw(head(200))
    answer = asyncio.ensure_future(status_of(reader))

    async def trickle() -> None:
        # A slowloris client: one byte at a time, each well inside any per-read timeout.
        while not answer.done():
            writer.write(b" ")
            await writer.drain()
            await asyncio.sleep(0.05)

    dripping = asyncio.ensure_future(trickle())
    try:
        async with asyncio.timeout(3):  # read_timeout bounds the whole body, not each read
            assert await answer == 408
        # Meanwhile and afterwards the receiver serves others.
        assert await rig.signed(GOOD) == 200
    finally:
        dripping.cancel()
        writer.close()


async def test_a_replayed_delivery_is_dispatched_once_and_memory_is_bounded(rig: Rig) -> None:
    assert await rig.signed(GOOD) == 200
    assert await rig.signed(GOOD) == 200  # the PBX's retry after a lost answer, or a replay
    await rig.wait_seen(1)
    assert rig.rx.stats.replayed == 1
    others = [json.dumps({"type": 30036, "msg": {"event_name": str(n)}}).encode() for n in range(4)]
    for body in others:
        assert await rig.signed(body) == 200
    assert len(rig.rx._seen) == 3  # replay_cache: the oldest bodies are forgotten
    assert await rig.signed(GOOD) == 200  # forgotten, so taken again
    await rig.wait_seen(6)
    assert [e.msg.event_name for e in rig.seen] == ["x", "0", "1", "2", "3", "x"]


async def test_replays_after_the_window_are_new_deliveries() -> None:
    rx = WebhookReceiver(secret=SECRET, replay_window=0)  # 0: no replay memory at all
    seen: list[Any] = []
    rx.stream.add_handler(30036, lambda_recorder(seen))
    async with rx, rx.serve() as url:
        r = Rig(rx, url)
        for _ in range(3):
            assert await r.signed(GOOD) == 200
    assert rx.stats.dispatched == 3
    assert rx._seen == {}


def lambda_recorder(into: list[Any]) -> Any:
    async def record(event: Any) -> None:
        into.append(event)

    return record


@pytest.mark.parametrize(
    "body",
    [
        b"{",
        b'{"type": 30036, "msg": ',
        b"[" * 2000 + b"]" * 2000,  # deep nesting
        b'{"type": "thirty", "msg": {}}',
        b'{"type": 30036, "msg": {"event_name": "x"}, "type": }',
        b"null",
        b"\x00" * 64,
    ],
    ids=["open", "truncated", "deep", "type-text", "broken", "null", "nul-bytes"],
)
async def test_malformed_signed_bodies_answer_400(rig: Rig, body: bytes) -> None:
    assert await rig.signed(body) == 400
    assert rig.rx.stats.malformed == 1
    assert rig.seen == []


async def test_a_5000_digit_number_is_refused_quickly(rig: Rig) -> None:
    digits = "9" * 5000
    bodies = [
        f'{{"type": 30036, "sn": "S", "msg": {{"event_name": {digits}}}}}'.encode(),
        f'{{"type": {digits}, "msg": {{}}}}'.encode(),
        f'{{"type": 30030, "msg": {{"task_id": {digits}.5}}}}'.encode(),
    ]
    rx = WebhookReceiver(secret=SECRET)  # the default max_body takes them
    async with rx, rx.serve() as url:
        r = Rig(rx, url)
        async with asyncio.timeout(3):
            statuses = [await r.signed(body) for body in bodies]
    # Never a 500: refused as malformed, or (an exact decimal fits a str field) decoded.
    assert all(status in (200, 400) for status in statuses), statuses
    assert statuses[1] == 400


async def test_the_secret_never_reaches_logs_or_reprs(
    rig: Rig, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    assert await rig.post(GOOD, {SIGNATURE_HEADER: SECRET}) == 401  # the secret as signature
    assert await rig.signed(b"{") == 400
    text = " ".join(r.getMessage() for r in caplog.records) + repr(rig.rx) + repr(rig.rx.stats)
    assert SECRET not in text


async def test_broken_chunk_framing_is_a_400_not_a_500(rig: Rig) -> None:
    reader, writer = await rig.raw(head(None, chunked=True) + b"zz\r\nabc\r\n")
    try:
        async with asyncio.timeout(3):
            assert await status_of(reader) == 400
    finally:
        writer.close()
    assert rig.seen == []
