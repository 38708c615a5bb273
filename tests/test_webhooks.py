"""Webhook event push: signature, receiver, and the whole path from the fake PBX to a handler."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from yeastar_async import YeastarClient, events
from yeastar_async.errors import ApiUnavailableError
from yeastar_async.testing import FakePBX
from yeastar_async.webhooks import SIGNATURE_HEADER, WebhookReceiver, sign, verify_signature

SECRET = "Pugghh14VCb05rtG7WGumbD4hwJPIvzu"  # the vendor's example secret (32 characters)
ALERT = {
    "event_name": "storage_device_failure",
    "event_type": "system",
    "event_level": "error",
    "event_content": "Failed to write data to the storage device.",
    "create_time": "2026/01/16 17:20:00",
}


def frame(topic: int, msg: Any, sn: str | None = "3631A2124XXX") -> bytes:
    doc: dict[str, Any] = {"type": topic, "msg": msg}
    if sn is not None:
        doc["sn"] = sn
    return json.dumps(doc).encode()


async def post(
    url: str, body: bytes, *, secret: str | None = SECRET, method: str = "POST"
) -> tuple[int, str]:
    headers = {} if secret is None else {SIGNATURE_HEADER: sign(secret, body)}
    async with (
        aiohttp.ClientSession() as session,
        session.request(
            method, url, data=body, headers=headers, timeout=aiohttp.ClientTimeout(total=5)
        ) as response,
    ):
        return response.status, await response.text()


class Recorder:
    """Handlers that record events and let a test await the n-th one."""

    def __init__(self) -> None:
        self.events: list[Any] = []
        self._changed = asyncio.Event()

    async def __call__(self, event: Any) -> None:
        self.events.append(event)
        self._changed.set()

    async def wait_for(self, count: int) -> list[Any]:
        async with asyncio.timeout(5):
            while len(self.events) < count:
                self._changed.clear()
                await self._changed.wait()
        return self.events


@pytest.fixture
async def receiver() -> AsyncIterator[tuple[WebhookReceiver, str, Recorder]]:
    """A webhook-only receiver (its own stream) recording every SystemEventAlert."""
    rx = WebhookReceiver(secret=SECRET)
    seen = Recorder()
    rx.stream.add_handler(events.SystemEventAlert, seen)
    async with rx, rx.serve() as url:
        yield rx, url, seen


# ---------------------------------------------------------------------------------------------
# Signature
# ---------------------------------------------------------------------------------------------


def test_signature_is_base64_hmac_sha256_of_the_raw_body() -> None:
    body = b'{"type":30036}'
    # Computed once with hmac/hashlib/base64 by hand: the vendor's formula.
    expected = "LrNEyQqYyTDWOHIc0Fwj0C9rs21Z7zjma+srae3qm0U="
    assert sign(SECRET, body) == expected
    assert sign(SECRET.encode(), body) == expected
    assert verify_signature(SECRET, body, expected)
    assert verify_signature(SECRET, body, expected.encode())
    assert not verify_signature(SECRET, body + b" ", expected)  # the raw body, byte for byte
    assert not verify_signature("x" * 32, body, expected)
    for bad in (None, "", "not base64!", expected[:-4], "AAAA"):
        assert not verify_signature(SECRET, body, bad)


def test_bad_options_are_named_and_the_secret_never_shows() -> None:
    for options, word in (
        ({"secret": ""}, "secret"),
        ({"secret": SECRET, "path": "hook"}, "path"),
        ({"secret": SECRET, "max_body": 0}, "max_body"),
        ({"secret": SECRET, "read_timeout": float("nan")}, "read_timeout"),
        ({"secret": SECRET, "replay_window": -1}, "replay_window"),
        ({"secret": SECRET, "topics": [events.Connected]}, "local event"),
        ({"secret": SECRET, "topics": []}, "at least one"),
    ):
        with pytest.raises(ValueError, match=word) as info:
            WebhookReceiver(**options)  # type: ignore[arg-type]
        assert SECRET not in str(info.value)
    with pytest.raises(TypeError, match="target"):
        WebhookReceiver(object(), secret=SECRET)  # type: ignore[arg-type]
    rx = WebhookReceiver(secret=SECRET, topics=[events.SystemEventAlert, 30035])
    assert rx.topics == frozenset({30035, 30036})
    assert SECRET not in repr(rx)
    assert "topics=[30035, 30036]" in repr(rx)


# ---------------------------------------------------------------------------------------------
# Receiver answers
# ---------------------------------------------------------------------------------------------


async def test_a_signed_delivery_reaches_the_handler_decoded_like_the_stream(
    receiver: tuple[WebhookReceiver, str, Recorder],
) -> None:
    rx, url, seen = receiver
    # msg as an object and as a JSON string alike.
    assert (await post(url, frame(30036, ALERT)))[0] == 200
    assert (await post(url, frame(30036, json.dumps({**ALERT, "event_name": "b"}))))[0] == 200
    first, second = await seen.wait_for(2)
    assert isinstance(first, events.SystemEventAlert)
    assert first == events.decode(frame(30036, ALERT))
    assert (first.sn, first.msg.event_level) == ("3631A2124XXX", "error")
    assert second.msg.event_name == "b"
    assert (rx.stats.requests, rx.stats.dispatched) == (2, 2)


async def test_get_deliveries_are_read_like_post_ones(
    receiver: tuple[WebhookReceiver, str, Recorder],
) -> None:
    _, url, seen = receiver
    assert (await post(url, frame(30036, ALERT), method="GET"))[0] == 200
    (event,) = await seen.wait_for(1)
    assert event.msg.event_name == "storage_device_failure"


async def test_answers_for_bad_deliveries(
    receiver: tuple[WebhookReceiver, str, Recorder],
) -> None:
    rx, url, seen = receiver
    good = frame(30036, ALERT)
    assert (await post(url, good, secret=None))[0] == 401
    assert (await post(url, good, secret="x" * 32))[0] == 401
    assert (await post(url, b"heartbeat response"))[0] == 400
    assert (await post(url, b'{"msg": "no type"}'))[0] == 400
    assert (await post(url, b"\xff\xfe"))[0] == 400
    assert (await post(url, b""))[0] == 400
    stats = rx.stats
    assert (stats.bad_signatures, stats.malformed, stats.dispatched) == (2, 4, 0)
    assert seen.events == []


async def test_unknown_and_named_unknown_topics_are_dispatched_like_the_stream() -> None:
    rx = WebhookReceiver(secret=SECRET)
    seen = Recorder()
    rx.stream.add_handler(30027, seen)
    async with rx, rx.serve() as url:
        assert (await post(url, frame(30027, json.dumps({"task_id": 1}))))[0] == 200
        (event,) = await seen.wait_for(1)
    assert isinstance(event, events.UnknownEvent)
    assert (event.name, event.msg) == ("report download", {"task_id": 1})
    assert rx.stats.unknown_events == 1


async def test_the_answer_does_not_wait_for_a_slow_handler() -> None:
    rx = WebhookReceiver(secret=SECRET)
    release = asyncio.Event()
    started = asyncio.Event()

    @rx.on(events.SystemEventAlert)
    async def slow(event: events.SystemEventAlert) -> None:
        started.set()
        await release.wait()

    async with rx, rx.serve() as url:
        async with asyncio.timeout(5):
            assert (await post(url, frame(30036, ALERT)))[0] == 200
            assert (await post(url, frame(30036, {**ALERT, "event_name": "2"})))[0] == 200
            await started.wait()
        release.set()


async def test_a_full_queue_answers_503_and_the_retry_is_taken() -> None:
    rx = WebhookReceiver(secret=SECRET, queue_size=1)
    release = asyncio.Event()
    seen = Recorder()

    @rx.on(events.SystemEventAlert)
    async def blocked(event: events.SystemEventAlert) -> None:
        await seen(event)
        await release.wait()

    async with rx, rx.serve() as url:
        statuses = []
        for n in range(6):
            statuses.append((await post(url, frame(30036, {**ALERT, "event_name": str(n)})))[0])
        assert 503 in statuses
        assert rx.stats.busy == statuses.count(503)
        refused = statuses.index(503)
        release.set()
        await seen.wait_for(6 - statuses.count(503))
        # The refused body was not remembered: its retry is dispatched.
        again = frame(30036, {**ALERT, "event_name": str(refused)})
        assert (await post(url, again))[0] == 200
        names = [e.msg.event_name for e in await seen.wait_for(7 - statuses.count(503))]
    assert str(refused) in names


async def test_a_stopped_receiver_answers_503() -> None:
    rx = WebhookReceiver(secret=SECRET)
    app = web.Application()
    app.router.add_post("/", rx.handle)  # mounted in an app of the user's, not started
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        host, port = runner.addresses[0][:2]
        assert (await post(f"http://{host}:{port}/", frame(30036, ALERT)))[0] == 503
    finally:
        await runner.cleanup()


# ---------------------------------------------------------------------------------------------
# The whole path: FakePBX emits -> signed POST/GET -> receiver -> the client's handlers
# ---------------------------------------------------------------------------------------------


async def register(client: YeastarClient, url: str, method: str, event_ids: list[int]) -> None:
    entry = {"url": url, "secret": SECRET, "request_method": method, "event_ids": event_ids}
    await client.webhook.update(
        webhook_event_push_list=[entry],
        webhook_event_push_timeout=3,
        webhook_event_push_retry_count=2,
    )


@pytest.mark.parametrize("method", ["POST", "GET"])
async def test_fake_pbx_push_reaches_the_clients_handlers_and_subscriptions(method: str) -> None:
    async with FakePBX() as fake:
        client = YeastarClient(fake.base_url, fake.client_id, fake.client_secret)
        alerts = Recorder()
        client.add_handler(events.SystemEventAlert, alerts)
        async with client, WebhookReceiver(client, secret=SECRET) as rx, rx.serve() as url:
            await register(client, url, method, [0])
            async with asyncio.timeout(2):  # no socket to wait for: entered at once
                subscription = client.subscribe(events.ReadReceipt)
                receipts = await subscription.__aenter__()
            try:
                await fake.emit(30036, ALERT)
                await fake.emit(30038, {"data": {"session_id": 5, "read_msg_id": 9}})
                await fake.webhook_push.join()
                (alert,) = await alerts.wait_for(1)
                async with asyncio.timeout(5):
                    receipt = await anext(aiter(receipts))
            finally:
                await subscription.__aexit__(None, None, None)
            # Every topic came by webhook: the client never opened the WebSocket.
            assert not fake.sockets
            assert not [r for r in fake.requests if r.endpoint == "subscribe"]
        assert isinstance(alert, events.SystemEventAlert)
        assert alert.msg == events.SystemEventInfo(**ALERT)
        assert receipt.msg.data.read_msg_id == 9
        pushed = fake.webhook_push.deliveries
        assert [(d.method, d.topic, d.statuses) for d in pushed] == [
            (method, 30036, [200]),
            (method, 30038, [200]),
        ]


async def test_webhook_and_websocket_together_handle_each_event_once() -> None:
    system = [30034, 30035, 30036]
    async with FakePBX() as fake:
        client = YeastarClient(fake.base_url, fake.client_id, fake.client_secret)
        seen = Recorder()
        connected = asyncio.Event()

        async def on_connected(event: events.Connected) -> None:
            connected.set()

        client.add_handler(events.Connected, on_connected)
        for topic in (30011, *system):
            client.add_handler(topic, seen)
        async with client, WebhookReceiver(client, secret=SECRET, topics=system) as rx:
            async with rx.serve() as url:
                # The PBX pushes every topic to the webhook; the socket carries 30011 only.
                await register(client, url, "POST", [0])
                listener = asyncio.create_task(client.listen())
                async with asyncio.timeout(5):
                    await connected.wait()
                (socket,) = fake.sockets
                assert socket.topics == {30011}
                await fake.emit(30036, ALERT)
                await fake.emit(30011, {"call_id": "1.1", "members": []})
                await fake.webhook_push.join()
                await seen.wait_for(2)
                # A last socket event: in order behind anything either route still carried.
                await fake.emit(30011, {"call_id": "2.2", "members": []})
                await fake.webhook_push.join()
                got = list(await seen.wait_for(3))
                assert rx.stats.ignored == 2  # 30011 by webhook: the socket's topic, dropped
                assert rx.stats.dispatched == 1
            await client.aclose()
            await listener
        # The PBX sent each event by both routes; each reached the handlers once.
        assert seen.events == got
        assert sorted(type(e).__name__ for e in got) == [
            "CallStatusChanged",
            "CallStatusChanged",
            "SystemEventAlert",
        ]


async def test_the_fake_retries_a_failing_receiver_within_its_timeout() -> None:
    attempts: list[str] = []
    hung = asyncio.Event()

    async def flaky(request: web.Request) -> web.Response:
        attempts.append(request.headers.get(SIGNATURE_HEADER, ""))
        if len(attempts) == 1:
            return web.Response(status=500)
        if len(attempts) == 2:
            await hung.wait()  # no answer in time: the fake's timeout ends the attempt
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_post("/", flaky)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    try:
        async with FakePBX() as fake:
            client = YeastarClient(fake.base_url, fake.client_id, fake.client_secret)
            async with client:
                await register(client, f"http://{host}:{port}/", "POST", [30036])
            assert fake.store is not None
            fake.store.webhooks.timeout = 0.3  # type: ignore[assignment]  # below the 3 s floor
            await fake.emit(30036, ALERT)
            await fake.emit(30011, {"call_id": "1.1"})  # not an event_id of the entry
            async with asyncio.timeout(5):
                await fake.webhook_push.join()
            (delivery,) = fake.webhook_push.deliveries
            assert delivery.statuses == [500, None, 200]
            assert delivery.delivered
            body = delivery.body.encode()
            assert attempts == [sign(SECRET, body)] * 3
    finally:
        hung.set()
        await runner.cleanup()


async def test_bad_signatures_are_logged_once_per_burst(
    receiver: tuple[WebhookReceiver, str, Recorder], caplog: pytest.LogCaptureFixture
) -> None:
    rx, url, _ = receiver
    caplog.set_level(logging.DEBUG, "yeastar_async.webhooks")
    for _ in range(5):
        assert (await post(url, frame(30036, ALERT), secret="wrong"))[0] == 401
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "X-Signature" in warnings[0].getMessage()
    assert rx.stats.bad_signatures == 5
    assert all(SECRET not in r.getMessage() for r in caplog.records)


async def system_alerts(fake: FakePBX) -> tuple[list[Any], str]:
    """The same user code on any firmware: a 30036 handler, fed by webhook where the PBX can
    push, else by the WebSocket. Returns the events it got and the route they took."""
    client = YeastarClient(fake.base_url, fake.client_id, fake.client_secret)
    alerts = Recorder()
    client.add_handler(events.SystemEventAlert, alerts)
    async with client:
        rx = WebhookReceiver(client, secret=SECRET)
        async with rx, rx.serve() as url:
            try:
                await register(client, url, "POST", [30036])
            except ApiUnavailableError:
                route = "websocket"  # firmware before webhooks: 10001 INTERFACE NOT EXISTED
            else:
                route = "webhook"
            if route == "websocket":
                await rx.aclose()  # hands the topics back to the socket
            listener = asyncio.create_task(client.listen())
            if route == "websocket":
                await fake.wait_until(lambda: bool(fake.sockets and fake.sockets[0].topics))
            await fake.emit(30036, ALERT)
            await fake.webhook_push.join()
            got = list(await alerts.wait_for(1))
        await client.aclose()
        await listener
    return got, route


@pytest.mark.parametrize(
    ("firmware", "route"), [("83.19.0.10", "websocket"), ("84.23.0.123", "webhook")]
)
async def test_the_same_handler_gets_30036_at_an_old_and_a_current_firmware(
    firmware: str, route: str
) -> None:
    async with FakePBX(firmware=firmware) as fake:
        got, took = await system_alerts(fake)
    assert took == route
    (alert,) = got
    assert isinstance(alert, events.SystemEventAlert)
    assert alert.msg.event_name == "storage_device_failure"
