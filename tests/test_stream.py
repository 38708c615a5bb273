"""The supervised event stream against the FakePBX over real loopback sockets.

Every test uses the real transport and token manager, small timing options (tens of ms), and
awaits events (handler calls, the fake's counters) instead of sleeping.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
from collections.abc import AsyncIterator, Callable
from types import TracebackType
from typing import Any, TypeVar

import pytest

from yeastar_async import YeastarClient
from yeastar_async._auth import TokenManager
from yeastar_async._http import Transport
from yeastar_async._models import ApiResponse
from yeastar_async.errors import AuthenticationError, IPBlockedError, TransportError
from yeastar_async.events import (
    CallStatusChanged,
    Connected,
    Disconnected,
    IncomingCallRequest,
    NewCdr,
    UnknownEvent,
)
from yeastar_async.events._stream import EventStream, StreamOptions
from yeastar_async.testing import FakePBX

E = TypeVar("E")

FAST: dict[str, Any] = {
    "heartbeat_interval": 0.05,
    "heartbeat_timeout": 0.25,
    "reconnect_delay_min": 0.01,
    "reconnect_delay_max": 0.05,
    "healthy_after": 0.5,
    "shutdown_timeout": 1.0,
}
WAIT = 5.0  # upper bound of any single wait; tests normally finish far sooner


class SpyTokens:
    """The real token manager, recording what the stream asked of it."""

    def __init__(self, inner: TokenManager) -> None:
        self.inner = inner
        self.handed: list[str] = []
        self.expired_calls: list[str] = []
        self.fail_next: list[BaseException] = []

    async def token(self) -> str:
        if self.fail_next:
            raise self.fail_next.pop(0)
        token = await self.inner.token()
        self.handed.append(token)
        return token

    async def expired(self, token: str) -> None:
        self.expired_calls.append(token)
        await self.inner.expired(token)


class Harness:
    """FakePBX + transport + token manager + EventStream, with an event recorder."""

    def __init__(
        self,
        pbx: FakePBX,
        *,
        secret: str | None = None,
        user_agent: str = "OpenAPI",
        rng: Any = None,
        endpoint: Callable[[Transport], Any] | None = None,
        **options: Any,
    ) -> None:
        self.pbx = pbx
        self.transport = Transport(pbx.base_url, user_agent=user_agent, retries=0)
        self.manager = TokenManager(self.transport, pbx.client_id, secret or pbx.client_secret)
        self.transport.tokens = self.manager
        self.tokens = SpyTokens(self.manager)
        self.options = StreamOptions(**{**FAST, **options})
        target = endpoint(self.transport) if endpoint else self.transport
        self.stream = EventStream(self.tokens, target, self.options, rng=rng)
        self.events: asyncio.Queue[Any] = asyncio.Queue()
        self.listener: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Harness:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            await self.stream.aclose()
            if self.listener is not None and not self.listener.done():
                async with asyncio.timeout(WAIT):
                    await asyncio.wait({self.listener})
        finally:
            await self.transport.aclose()

    async def _put(self, event: Any) -> None:
        self.events.put_nowait(event)

    def record(self, *targets: Any) -> None:
        for target in targets:
            self.stream.add_handler(target, self._put)

    def listen(self) -> asyncio.Task[None]:
        self.listener = asyncio.create_task(self.stream.listen())
        return self.listener

    async def next(self, cls: type[E], timeout: float = WAIT) -> E:
        """The next recorded event, which must be a ``cls``."""
        async with asyncio.timeout(timeout):
            event = await self.events.get()
        assert isinstance(event, cls), event
        return event

    async def next_of(self, cls: type[E], timeout: float = WAIT) -> E:
        """The next recorded event of class ``cls``, skipping others."""
        async with asyncio.timeout(timeout):
            while True:
                event = await self.events.get()
                if isinstance(event, cls):
                    return event


def payload(call_id: str) -> dict[str, Any]:
    return {
        "call_id": call_id,
        "members": [
            {"extension": {"number": "1000", "channel_id": "PJSIP/1000-1", "member_status": "RING"}}
        ],
    }


@pytest.fixture
async def pbx() -> AsyncIterator[FakePBX]:
    async with FakePBX(idle_timeout=0.5) as fake:
        yield fake


async def three_queued(pbx: FakePBX, sub: Any) -> None:
    """Emit calls "0", "1", "2" and wait until ``sub`` (30011) saw them: the handler queue
    holds them too."""
    await pbx.wait_for_subscription([30011])
    await emit_calls(pbx, "0", "1", "2")
    for _ in range(3):
        await anext(sub)


async def emit_calls(pbx: FakePBX, *call_ids: str) -> None:
    for call_id in call_ids:
        assert await pbx.emit(30011, payload(call_id)) == 1


# -- connect, subscribe, deliver -----------------------------------------------------------------


async def test_events_are_delivered_in_order_with_the_rest_user_agent(pbx: FakePBX) -> None:
    async with Harness(pbx, user_agent="CrmBridge/2.1") as h:
        h.record(Connected, CallStatusChanged, NewCdr)
        h.listen()
        connected = await h.next(Connected)
        assert connected == Connected(reconnect=False, gap=None)
        assert h.stream.connected
        await emit_calls(pbx, "1.1", "1.2")
        await pbx.emit(30012, {"call_id": "1.2", "status": "ANSWERED"})
        await emit_calls(pbx, "1.3")
        got = [await h.next(CallStatusChanged), await h.next(CallStatusChanged)]
        cdr = await h.next(NewCdr)
        got.append(await h.next(CallStatusChanged))
        assert [e.msg.call_id for e in got] == ["1.1", "1.2", "1.3"]
        assert got[0].sn == "3631A2124XXX"
        assert got[0].msg.members[0].extension is not None
        assert got[0].msg.members[0].extension.number == "1000"
        assert cdr.msg.call_id == "1.2"
        assert pbx.stats.subscriptions == [[30011, 30012]]
        assert pbx.stats.ws_user_agents == ["CrmBridge/2.1"]
        stats = h.stream.stats
        assert stats.events_dispatched == 5  # Connected + 4 PBX events
        assert stats.connect_attempts == 1
        assert stats.reconnects == 0


async def test_an_idle_link_is_kept_alive_past_the_idle_timer() -> None:
    async with FakePBX(idle_timeout=0.15) as pbx, Harness(pbx, heartbeat_interval=0.03) as h:
        h.record(Connected, Disconnected, CallStatusChanged)
        h.listen()
        await h.next(Connected)
        started = time.monotonic()
        # 21 heartbeats at 30 ms span over 0.6 s (the first is jittered within its interval):
        # four times the fake's idle limit.
        await pbx.wait_for_heartbeats(21, timeout=WAIT)
        assert time.monotonic() - started > 4 * 0.15
        await emit_calls(pbx, "after-idle")
        assert (await h.next(CallStatusChanged)).msg.call_id == "after-idle"
        assert pbx.stats.ws_connects == 1
        assert h.stream.stats.heartbeats_sent >= 20


async def test_drop_reconnect_resubscribe_with_connected_and_disconnected(pbx: FakePBX) -> None:
    async with Harness(pbx) as h:
        h.record(Connected, Disconnected, CallStatusChanged, 30012)
        h.listen()
        await h.next(Connected)
        await emit_calls(pbx, "before")
        assert (await h.next(CallStatusChanged)).msg.call_id == "before"
        assert pbx.drop_connections() == 1
        lost = await h.next(Disconnected)
        assert "connection closed" in lost.reason
        again = await h.next(Connected)
        assert again.reconnect is True
        assert again.gap is not None
        assert 0 < again.gap < WAIT
        await emit_calls(pbx, "after")
        assert (await h.next(CallStatusChanged)).msg.call_id == "after"
        # The new socket got the full topic list again.
        assert pbx.stats.subscriptions == [[30011, 30012], [30011, 30012]]
        assert h.stream.stats.reconnects == 1


async def test_a_black_hole_is_detected_and_replaced(pbx: FakePBX) -> None:
    async with Harness(pbx, heartbeat_interval=0.03, heartbeat_timeout=0.1) as h:
        h.record(Connected, Disconnected, CallStatusChanged)
        h.listen()
        await h.next(Connected)
        pbx.black_hole(True)  # TCP stays open, nothing comes back
        lost = await h.next(Disconnected)
        assert "no frame from the PBX within 0.1s" in lost.reason
        # Handshakes still complete inside the black hole, but are never acknowledged.
        await pbx.wait_for_connections(3)
        pbx.black_hole(False)
        assert (await h.next(Connected)).reconnect is True
        await emit_calls(pbx, "back")
        assert (await h.next(CallStatusChanged)).msg.call_id == "back"


async def test_stopped_heartbeat_replies_are_tolerated_while_other_frames_arrive(
    pbx: FakePBX,
) -> None:
    async with Harness(pbx, heartbeat_interval=0.03, heartbeat_timeout=0.3) as h:
        h.record(Connected, Disconnected, CallStatusChanged)
        h.listen()
        await h.next(Connected)
        pbx.stop_heartbeat_replies()
        # Any frame proves the link alive: keep events flowing for longer than the timeout
        # (one event per heartbeat, 15 heartbeats at 30 ms).
        for i in range(15):
            await pbx.wait_for_heartbeats(pbx.stats.heartbeats + 1)
            await emit_calls(pbx, str(i))
            assert (await h.next(CallStatusChanged)).msg.call_id == str(i)
        # Silence: now the missing reply is noticed.
        lost = await h.next(Disconnected)
        assert "no frame" in lost.reason
        assert pbx.stats.ws_connects >= 1


async def test_token_death_on_the_open_socket(pbx: FakePBX) -> None:
    async with Harness(pbx) as h:
        h.record(Connected, Disconnected, CallStatusChanged)
        h.listen()
        await h.next(Connected)
        old = h.tokens.handed[-1]
        assert pbx.sockets[0].request.query["access_token"] == old
        pbx.expire_tokens()  # the fake pushes {"errcode":10004,...} and closes
        lost = await h.next(Disconnected)
        assert lost.reason == "token expired (errcode 10004)"
        assert (await h.next(Connected)).reconnect is True
        assert h.tokens.expired_calls == [old]
        new = h.tokens.handed[-1]
        assert new != old
        assert pbx.sockets[0].request.query["access_token"] == new
        await emit_calls(pbx, "fresh")
        assert (await h.next(CallStatusChanged)).msg.call_id == "fresh"


async def test_an_expired_token_at_reconnect_is_renewed(pbx: FakePBX) -> None:
    async with Harness(pbx) as h:
        h.record(Connected, Disconnected, 30011)
        h.listen()
        await h.next(Connected)
        old = h.tokens.handed[-1]
        # No await in between: the reconnect is the first to meet the dead token.
        pbx.drop_connections()
        pbx.expire_tokens(notify_sockets=False)
        await h.next(Disconnected)
        assert (await h.next(Connected)).reconnect is True
        assert h.tokens.handed[-2:] == [old, h.tokens.handed[-1]]
        assert h.tokens.handed[-1] != old
        assert h.tokens.expired_calls == [old]
        assert pbx.stats.token_rejections == 1
        assert pbx.stats.refreshes + pbx.stats.logins_succeeded == 2


async def test_a_handler_exception_is_isolated(
    pbx: FakePBX, caplog: pytest.LogCaptureFixture
) -> None:
    async with Harness(pbx) as h:
        seen: list[str] = []

        @h.stream.on(CallStatusChanged)
        async def fragile(ev: CallStatusChanged) -> None:
            if ev.msg.call_id == "bad":
                raise ValueError("handler bug")
            seen.append(ev.msg.call_id)

        h.record(Connected, CallStatusChanged)
        h.listen()
        await h.next(Connected)
        await emit_calls(pbx, "bad", "good")
        assert (await h.next(CallStatusChanged)).msg.call_id == "bad"
        assert (await h.next(CallStatusChanged)).msg.call_id == "good"
        assert seen == ["good"]
        assert h.stream.stats.handler_errors == 1
        assert pbx.stats.ws_connects == 1
        [record] = [r for r in caplog.records if "fragile failed" in r.getMessage()]
        assert record.exc_info is not None
        assert "handler bug" in caplog.text


async def test_a_slow_handler_does_not_stall_heartbeats() -> None:
    # Scaled down from "a 3-second handler with a 1-second idle timer": each handler outlasts
    # the idle limit, and a queue of 1 holds the reader itself back for long spells. The idle
    # limit (0.5 s) leaves a loaded machine 25 heartbeats of slack before the fake would close.
    async with (
        FakePBX(idle_timeout=0.5) as pbx,
        Harness(pbx, heartbeat_interval=0.02, heartbeat_timeout=0.4, queue_size=1) as h,
    ):
        done: list[str] = []
        finished = asyncio.Event()

        @h.stream.on(CallStatusChanged)
        async def slow(ev: CallStatusChanged) -> None:
            await asyncio.sleep(0.6)  # the handler's own work (> the idle limit), not a test wait
            done.append(ev.msg.call_id)
            if len(done) == 4:
                finished.set()

        h.record(Connected, Disconnected)
        h.listen()
        await h.next(Connected)
        await emit_calls(pbx, "a", "b", "c", "d")
        async with asyncio.timeout(WAIT):
            await finished.wait()
        assert done == ["a", "b", "c", "d"]
        assert pbx.stats.ws_connects == 1
        assert h.events.empty()  # no Disconnected
        assert h.stream.stats.reconnects == 0
        # 2.4 s of handlers at one heartbeat per 20 ms: far more than the 5 the idle limit needs.
        assert pbx.stats.heartbeats >= 30


async def test_malformed_frames_are_skipped(pbx: FakePBX, caplog: pytest.LogCaptureFixture) -> None:
    async with Harness(pbx) as h:
        h.record(Connected, CallStatusChanged, 39029)
        h.listen()
        await h.next(Connected)
        await pbx.push_raw("this is not json")
        await pbx.push_raw('{"no_type": true}')
        await pbx.push_raw("[1, 2, 3]")
        await pbx.push_raw('{"type": 30011, "sn": "x", "msg": "{broken"}')  # known topic
        await pbx.push_raw('{"type": 39029, "msg": "{\\"agent\\": \\"1000\\"}"}')  # newer topic
        await emit_calls(pbx, "ok")
        newer = await h.next(UnknownEvent)
        assert newer.type == 39029
        assert newer.msg == {"agent": "1000"}
        assert newer.raw == '{"type": 39029, "msg": "{\\"agent\\": \\"1000\\"}"}'  # text, as sent
        assert (await h.next(CallStatusChanged)).msg.call_id == "ok"
        stats = h.stream.stats
        assert stats.malformed_frames == 3
        assert stats.unknown_events == 2
        assert pbx.stats.ws_connects == 1
        assert "skipped a malformed frame" in caplog.text
        assert "undecodable msg" in caplog.text


async def test_drop_policy_counts_and_reports_every_drop(
    pbx: FakePBX, caplog: pytest.LogCaptureFixture
) -> None:
    async with Harness(pbx, queue_size=2, overflow="drop_oldest") as h:
        entered = asyncio.Event()
        gate = asyncio.Event()
        handled: list[str] = []

        @h.stream.on(CallStatusChanged)
        async def gated(ev: CallStatusChanged) -> None:
            if ev.msg.call_id == "0":
                entered.set()
                await gate.wait()
            handled.append(ev.msg.call_id)

        h.record(Disconnected)
        h.listen()
        await pbx.wait_for_subscription([30011])
        async with h.stream.subscribe(Disconnected) as lost:
            await emit_calls(pbx, "0")
            async with asyncio.timeout(WAIT):
                await entered.wait()  # the handler holds event 0; the queue is empty
            await emit_calls(pbx, *map(str, range(1, 10)))
            pbx.drop_connections()
            # The reader reaches the end of the socket after the nine events.
            await anext(lost)
            # Queue of 2: events 1..9 and Disconnected pushed 8 older ones out.
            assert h.stream.stats.drops == 8
            gate.set()
            await h.next(Disconnected)
        assert handled == ["0", "9"]
        assert "dropped 1 event(s), 1 in total" in caplog.text  # the first drop, at once


async def test_an_oversized_frame_replaces_the_link(pbx: FakePBX) -> None:
    async with Harness(pbx, max_frame_size=1024) as h:
        h.record(Connected, Disconnected, CallStatusChanged)
        h.listen()
        await h.next(Connected)
        await pbx.push_raw(pbx.event_frame(30011, {"call_id": "x" * 2000}))
        lost = await h.next(Disconnected)
        assert "1009" in lost.reason
        await h.next(Connected)
        await emit_calls(pbx, "small")
        assert (await h.next(CallStatusChanged)).msg.call_id == "small"


async def test_a_burst_of_5000_events_arrives_complete_and_in_order() -> None:
    # The PBX's own 60 s idle limit: a loaded CI machine must not turn this into an idle test.
    async with FakePBX() as pbx, Harness(pbx, heartbeat_interval=0.2, heartbeat_timeout=1.0) as h:
        got: list[str] = []
        complete = asyncio.Event()

        @h.stream.on(30011)
        async def collect(ev: CallStatusChanged) -> None:
            got.append(ev.msg.call_id)
            if len(got) == 5000:
                complete.set()

        h.record(Connected)
        h.listen()
        await h.next(Connected)
        frames = [pbx.event_frame(30011, payload(str(i))) for i in range(5000)]
        for frame in frames:
            await pbx.push_raw(frame)
        async with asyncio.timeout(30):
            await complete.wait()
        assert got == [str(i) for i in range(5000)]
        assert h.stream.stats.drops == 0


async def test_an_async_handler_that_awaits_still_sees_events_in_order(pbx: FakePBX) -> None:
    async with Harness(pbx) as h:
        seen: list[str] = []
        active = 0
        overlap = False
        complete = asyncio.Event()

        @h.stream.on(CallStatusChanged)
        async def awaiting(ev: CallStatusChanged) -> None:
            nonlocal active, overlap
            active += 1
            overlap = overlap or active > 1
            # Awaits real I/O: a REST round trip to the PBX.
            await h.transport.request("GET", "system/information", response_type=ApiResponse)
            seen.append(ev.msg.call_id)
            active -= 1
            if len(seen) == 10:
                complete.set()

        h.record(Connected)
        h.listen()
        await h.next(Connected)
        await emit_calls(pbx, *map(str, range(10)))
        async with asyncio.timeout(WAIT):
            await complete.wait()
        assert seen == [str(i) for i in range(10)]
        assert not overlap


# -- backoff ----------------------------------------------------------------------------------


class UpperBound:
    """Backoff random source picking the largest delay, recording each range."""

    def __init__(self) -> None:
        self.caps: list[float] = []

    def uniform(self, a: float, b: float) -> float:
        self.caps.append(b)
        return b


async def test_a_rejecting_server_gets_backoff_not_a_hot_loop(pbx: FakePBX) -> None:
    rng = UpperBound()
    async with Harness(pbx, rng=rng, reconnect_delay_min=0.02, reconnect_delay_max=0.16) as h:
        h.record(Connected, 30011)
        pbx.reject_handshake(503)
        started = time.monotonic()
        h.listen()
        await pbx.wait_until(lambda: pbx.stats.ws_rejected >= 5, WAIT, "5 rejected handshakes")
        elapsed = time.monotonic() - started
        # Four waits between five attempts: 0.04 + 0.08 + 0.16 + 0.16 seconds at least.
        assert elapsed >= 0.43  # (a hair under 0.44 for clock granularity)
        assert rng.caps[:4] == [0.04, 0.08, 0.16, 0.16]
        pbx.reject_handshake(None)
        assert (await h.next(Connected)).reconnect is False
        attempts = h.stream.stats.connect_attempts
        assert attempts == pbx.stats.ws_handshakes
        assert attempts <= len(rng.caps) + 1


async def test_accept_then_close_does_not_reset_the_backoff(pbx: FakePBX) -> None:
    rng = UpperBound()
    async with Harness(pbx, rng=rng, reconnect_delay_min=0.02, reconnect_delay_max=0.16) as h:
        h.record(Connected, 30011)
        pbx.accept_then_close(4)
        h.listen()
        await h.next(Connected)
        assert pbx.stats.ws_connects == 5
        # Every handshake succeeded, yet the delays kept growing: no link was ever healthy.
        assert rng.caps == [0.04, 0.08, 0.16, 0.16]


async def test_backoff_resets_after_a_healthy_link(pbx: FakePBX) -> None:
    rng = UpperBound()
    async with Harness(
        pbx, rng=rng, reconnect_delay_min=0.02, reconnect_delay_max=0.16, healthy_after=0.1
    ) as h:
        h.record(Connected, Disconnected, 30011)
        pbx.accept_then_close(2)
        h.listen()
        await h.next(Connected)
        assert rng.caps == [0.04, 0.08]
        # Healthy for longer than healthy_after (proven by heartbeats), then dropped.
        await pbx.wait_for_heartbeats(pbx.stats.heartbeats + 3)
        pbx.drop_connections()
        await h.next(Disconnected)
        await h.next(Connected)
        assert rng.caps == [0.04, 0.08, 0.04]


async def test_a_healthy_link_lost_to_token_expiry_reconnects_at_once(pbx: FakePBX) -> None:
    rng = UpperBound()
    async with Harness(pbx, rng=rng, healthy_after=0.1) as h:
        h.record(Connected, Disconnected, 30011)
        h.listen()
        await h.next(Connected)
        await pbx.wait_for_heartbeats(pbx.stats.heartbeats + 3)  # up for > healthy_after
        pbx.expire_tokens()
        await h.next(Disconnected)
        await h.next(Connected)
        assert rng.caps == []  # no backoff delay was drawn


async def test_an_unacknowledged_subscribe_is_replaced(pbx: FakePBX) -> None:
    async with Harness(pbx, heartbeat_timeout=0.1) as h:
        h.record(Connected, Disconnected, 30011)
        pbx.ack_subscribe(False)
        h.listen()
        await pbx.wait_for_connections(2)  # the first link was given up and replaced
        pbx.ack_subscribe(True)
        # No link was ever up, so this is the first Connected (and no Disconnected before it).
        assert (await h.next(Connected)).reconnect is False
        assert h.stream.stats.connect_attempts >= 2
        assert len(pbx.sockets) == 1


async def test_token_failures_are_retried_with_backoff(pbx: FakePBX) -> None:
    async with Harness(pbx) as h:
        h.record(Connected, 30011)
        h.tokens.fail_next = [TransportError("PBX unreachable"), TransportError("again")]
        h.listen()
        assert (await h.next(Connected)).reconnect is False
        assert h.tokens.fail_next == []


async def test_a_certificate_pin_mismatch_is_retried_and_logged(
    pbx: FakePBX, caplog: pytest.LogCaptureFixture
) -> None:
    class Pinned:
        def __init__(self, transport: Transport) -> None:
            self.transport = transport
            self.user_agent = transport.user_agent
            self.mismatches = 2

        def ws_url(self, token: str) -> str:
            return self.transport.ws_url(token)

        def ws_ssl(self) -> ssl.SSLContext | None:
            return None

        def check_peer(self, ssl_object: ssl.SSLObject | None) -> None:
            if self.mismatches:
                self.mismatches -= 1
                raise TransportError("certificate fingerprint does not match the pin")

        def redact(self, text: str) -> str:
            return self.transport.redact(text)

    async with Harness(pbx, endpoint=Pinned) as h:
        h.record(Connected, CallStatusChanged)
        h.listen()
        await h.next(Connected)
        # The two refused attempts never sent the upgrade request (it carries the token):
        # the fake saw one WebSocket, the third attempt's.
        assert pbx.stats.ws_connects == 1
        assert pbx.stats.subscriptions == [[30011]]
        errors = [r for r in caplog.records if r.levelno == logging.ERROR]
        assert len(errors) == 2
        assert all("does not match the pin" in r.getMessage() for r in errors)


# -- credential failures ----------------------------------------------------------------------


async def test_rejected_credentials_surface_out_of_listen_without_a_login_storm(
    pbx: FakePBX,
) -> None:
    async with Harness(pbx, secret="wrong-secret") as h:
        h.record(CallStatusChanged)
        with pytest.raises(AuthenticationError):
            async with asyncio.timeout(WAIT):
                await h.stream.listen()
        assert pbx.stats.login_attempts == 1
        assert pbx.stats.ws_handshakes == 0


async def test_a_blocked_ip_surfaces_out_of_listen(pbx: FakePBX) -> None:
    pbx.block_ip()
    async with Harness(pbx) as h:
        h.record(CallStatusChanged)
        with pytest.raises(IPBlockedError):
            async with asyncio.timeout(WAIT):
                await h.stream.listen()


async def test_an_ip_block_answered_on_the_socket_is_fatal(pbx: FakePBX) -> None:
    async with Harness(pbx) as h:
        h.record(Connected, Disconnected, 30011)
        listener = h.listen()
        await h.next(Connected)
        pbx.block_ip()  # the cached token still works; the next socket gets 70004
        pbx.drop_connections()
        with pytest.raises(IPBlockedError, match="70004"):
            async with asyncio.timeout(WAIT):
                await listener
        assert pbx.stats.ws_connects == 2
        assert not stream_tasks()


async def test_a_credential_failure_ends_open_subscriptions(pbx: FakePBX) -> None:
    async with Harness(pbx, secret="wrong-secret") as h:
        async with h.stream.subscribe(30011) as sub:
            with pytest.raises(AuthenticationError):
                async with asyncio.timeout(WAIT):
                    await anext(sub)
        assert pbx.stats.login_attempts == 1


# -- subscriptions ----------------------------------------------------------------------------


async def test_subscribe_without_listen(pbx: FakePBX) -> None:
    async with Harness(pbx) as h:
        async with h.stream.subscribe(CallStatusChanged, Connected) as sub:
            assert isinstance(await anext(sub), Connected)
            await emit_calls(pbx, "x", "y")
            assert [(await anext(sub)).msg.call_id for _ in range(2)] == ["x", "y"]
        # Nobody wants events any more: the socket is closed.
        await pbx.wait_for_disconnect()
        assert not h.stream.connected
        # A later subscription connects again.
        async with h.stream.subscribe(30011) as sub:
            await pbx.wait_for_subscription([30011])
            await emit_calls(pbx, "z")
            assert (await anext(sub)).msg.call_id == "z"
        assert pbx.stats.ws_connects == 2


async def test_subscribe_with_listen_sends_the_union_and_never_an_empty_list(
    pbx: FakePBX,
) -> None:
    async with Harness(pbx) as h:
        h.record(Connected, NewCdr)
        h.listen()
        await h.next(Connected)
        assert pbx.stats.subscriptions == [[30012]]
        async with h.stream.subscribe(IncomingCallRequest, 30011) as sub:
            # Entering on a live link returns once the PBX acknowledged the new set.
            assert pbx.stats.subscriptions[-1] == [30011, 30012, 30016]
            await pbx.emit(30016, payload("in-1"))
            await pbx.emit(30012, {"call_id": "cdr-1"})
            assert (await anext(sub)).msg.call_id == "in-1"
            assert (await h.next(NewCdr)).msg.call_id == "cdr-1"
            assert len(sub) == 0  # the subscription did not get the handler's topic
        await pbx.wait_until(lambda: pbx.stats.subscriptions[-1] == [30012])
        # Only the handler's topic is left; nothing was ever sent empty.
        h.stream.remove_handler(NewCdr, h._put)
        async with h.stream.subscribe(30011) as sub:
            assert pbx.stats.subscriptions[-1] == [30011]
        # No topic at all: the PBX keeps the last set instead of getting an empty list.
        await pbx.emit(30011, payload("late"))
        async with h.stream.subscribe(30013):
            assert pbx.stats.subscriptions[-1] == [30013]
        assert all(pbx.stats.subscriptions)
        assert pbx.stats.ws_connects == 1


async def test_registering_a_handler_on_a_live_link_resubscribes(pbx: FakePBX) -> None:
    async with Harness(pbx) as h:
        h.record(Connected, CallStatusChanged)
        h.listen()
        await h.next(Connected)
        h.record(NewCdr)
        await pbx.wait_for_subscription([30011, 30012])
        await pbx.emit(30012, {"call_id": "c"})
        assert (await h.next(NewCdr)).msg.call_id == "c"
        assert pbx.stats.subscriptions == [[30011], [30011, 30012]]


async def test_local_events_only_never_open_a_socket(pbx: FakePBX) -> None:
    async with Harness(pbx) as h:
        h.record(Connected, Disconnected)
        h.listen()
        async with h.stream.subscribe(Connected):
            assert h.stream.topics == frozenset()
            assert not h.stream.connected
        # Registering a PBX topic later starts the connection of the running listen().
        h.record(CallStatusChanged)
        assert (await h.next(Connected)).reconnect is False
        assert pbx.stats.subscriptions == [[30011]]


def test_bad_targets_fail_at_registration() -> None:
    transport = Transport("http://127.0.0.1:9")  # never contacted
    stream = EventStream(SpyTokens(None), transport)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="'30011'"):
        stream.on("30011")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="UnknownEvent"):
        stream.subscribe(UnknownEvent)
    with pytest.raises(ValueError, match="at least one"):
        stream.subscribe()

    def not_async(ev: Any) -> None:
        pass

    with pytest.raises(TypeError, match="not_async"):
        stream.on(30011)(not_async)  # type: ignore[type-var]

    async def handler(ev: Any) -> None:
        pass

    assert stream.on(CallStatusChanged)(handler) is handler
    assert stream.topics == {30011}


# -- shutdown ---------------------------------------------------------------------------------


def stream_tasks() -> set[asyncio.Task[Any]]:
    return {t for t in asyncio.all_tasks() if t.get_name().startswith("yeastar-")}


async def test_clean_shutdown_leaves_no_task_or_connection(pbx: FakePBX) -> None:
    async with Harness(pbx, shutdown_timeout=0.5) as h:
        gate = asyncio.Event()
        handled: list[str] = []

        @h.stream.on(CallStatusChanged)
        async def gated(ev: CallStatusChanged) -> None:
            if ev.msg.call_id == "0":
                await gate.wait()
            handled.append(ev.msg.call_id)

        listener = h.listen()
        async with h.stream.subscribe(30011) as sub:
            await three_queued(pbx, sub)
            assert stream_tasks()
            closing = asyncio.create_task(h.stream.aclose())
            await asyncio.sleep(0)
            gate.set()
            started = time.monotonic()
            async with asyncio.timeout(WAIT):
                await closing
            # Queued events were still handed to the handler within shutdown_timeout.
            assert handled == ["0", "1", "2"]
            assert time.monotonic() - started < 0.5 + 1.0
            assert [ev async for ev in sub] == []  # the iterator ended
        async with asyncio.timeout(WAIT):
            await listener  # listen() returned normally (no exception)
        assert not stream_tasks()
        await pbx.wait_for_disconnect()
        await h.stream.aclose()  # idempotent


async def test_shutdown_is_bounded_by_a_hanging_handler(pbx: FakePBX) -> None:
    async with Harness(pbx, shutdown_timeout=0.2) as h:
        entered = asyncio.Event()
        cancelled = asyncio.Event()

        @h.stream.on(CallStatusChanged)
        async def hangs(ev: CallStatusChanged) -> None:
            entered.set()
            try:
                await asyncio.Event().wait()
            except asyncio.CancelledError:
                cancelled.set()
                raise

        listener = h.listen()
        await pbx.wait_for_subscription([30011])
        await emit_calls(pbx, "stuck")
        async with asyncio.timeout(WAIT):
            await entered.wait()
        started = time.monotonic()
        await h.stream.aclose()
        assert time.monotonic() - started < 0.2 + 1.0
        assert cancelled.is_set()
        await listener
        assert not stream_tasks()


async def test_shutdown_during_backoff_is_prompt(pbx: FakePBX) -> None:
    async with Harness(pbx, reconnect_delay_min=30.0, reconnect_delay_max=30.0) as h:
        h.record(CallStatusChanged)
        pbx.reject_handshake(503)
        listener = h.listen()
        await pbx.wait_until(lambda: pbx.stats.ws_rejected >= 1)
        started = time.monotonic()
        await h.stream.aclose()
        assert time.monotonic() - started < 1.0
        await listener
        assert not stream_tasks()


async def test_cancelling_listen_closes_the_socket(pbx: FakePBX) -> None:
    async with Harness(pbx) as h:
        h.record(Connected, CallStatusChanged)
        listener = h.listen()
        await h.next(Connected)
        listener.cancel()
        with pytest.raises(asyncio.CancelledError):
            await listener
        await pbx.wait_for_disconnect()
        assert not stream_tasks()
        # The stream is not closed: listening again reconnects.
        h.listen()
        assert (await h.next(Connected)).reconnect is True


async def test_aclose_from_a_handler_does_not_wait_for_itself(pbx: FakePBX) -> None:
    async with Harness(pbx, shutdown_timeout=3.0) as h:
        handled: list[str] = []

        @h.stream.on(CallStatusChanged)
        async def stop_on_first(ev: CallStatusChanged) -> None:
            if not handled:
                await h.stream.aclose()
            handled.append(ev.msg.call_id)

        listener = h.listen()
        await pbx.wait_for_subscription([30011])
        started = time.monotonic()
        await emit_calls(pbx, "last")
        async with asyncio.timeout(WAIT):
            await listener
        assert time.monotonic() - started < 1.0  # not the 3 s shutdown_timeout
        assert handled == ["last"]
        assert h.stream.closed
        assert not stream_tasks()


async def test_client_aclose_from_a_handler_returns_and_the_rest_completes_later(
    pbx: FakePBX,
) -> None:
    client = YeastarClient(
        pbx.base_url, pbx.client_id, pbx.client_secret, **{**FAST, "shutdown_timeout": 3.0}
    )
    try:
        done: list[str] = []

        @client.on(CallStatusChanged)
        async def closes(ev: CallStatusChanged) -> None:
            await client.aclose()
            done.append("aclose returned")

        @client.on(CallStatusChanged)
        async def next_handler(ev: CallStatusChanged) -> None:
            done.append(f"next handler got {ev.msg.call_id}")

        listener = asyncio.create_task(client.listen())
        await pbx.wait_for_subscription([30011])
        started = time.monotonic()
        await emit_calls(pbx, "1")
        async with asyncio.timeout(WAIT):
            await listener
        assert time.monotonic() - started < 1.0  # not the 3 s shutdown_timeout
        # The handler was not cancelled: it went on, and so did the event's next handler.
        assert done == ["aclose returned", "next handler got 1"]
        assert client.closed
        # From outside, aclose() waits for the whole shutdown: token revoked, session closed.
        async with asyncio.timeout(WAIT):
            await client.aclose()
        assert pbx.count("del_token") == 1
        assert pbx.live_tokens() == 0
        with pytest.raises(RuntimeError, match="closed"):
            await client.request("GET", "system/information")
        await pbx.wait_for_no_connections()
    finally:
        await client.aclose()


async def test_a_shutdown_timeout_names_the_cancelled_handler_and_the_lost_events(
    pbx: FakePBX, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="yeastar_async.events")
    async with Harness(pbx, shutdown_timeout=0.1) as h:
        entered = asyncio.Event()

        @h.stream.on(CallStatusChanged)
        async def stuck_handler(ev: CallStatusChanged) -> None:
            entered.set()
            await asyncio.Event().wait()

        listener = h.listen()
        async with h.stream.subscribe(30011) as sub:
            await three_queued(pbx, sub)
            async with asyncio.timeout(WAIT):
                await entered.wait()
            await h.stream.aclose()
        async with asyncio.timeout(WAIT):
            await listener
    [record] = [r for r in caplog.records if "shutdown_timeout" in r.getMessage()]
    assert record.levelno == logging.WARNING
    text = record.getMessage()
    assert stuck_handler.__qualname__ in text
    assert "topic 30011" in text
    assert "2 queued event(s) not delivered" in text


async def test_a_shutdown_within_shutdown_timeout_logs_no_warning(
    pbx: FakePBX, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="yeastar_async.events")
    async with Harness(pbx) as h:
        h.record(CallStatusChanged)
        listener = h.listen()
        await pbx.wait_for_subscription([30011])
        await emit_calls(pbx, "0")
        await h.next(CallStatusChanged)
        await h.stream.aclose()
        await listener
    assert not [r for r in caplog.records if "shutdown_timeout" in r.getMessage()]


async def test_after_aclose_listen_returns_and_subscribe_refuses(pbx: FakePBX) -> None:
    async with Harness(pbx) as h:
        await h.stream.aclose()
        assert h.stream.closed
        async with asyncio.timeout(WAIT):
            await h.stream.listen()
        with pytest.raises(RuntimeError, match="closed"):
            async with h.stream.subscribe(30011):
                pass
        assert pbx.stats.ws_handshakes == 0
        assert "closed" in repr(h.stream)


# -- secrets ----------------------------------------------------------------------------------


async def test_no_token_in_any_log_record_at_debug(
    pbx: FakePBX, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    async with Harness(pbx) as h:
        h.record(Connected, Disconnected, CallStatusChanged)
        h.listen()
        await h.next(Connected)
        pbx.expire_tokens()  # 10004 on the open socket
        await h.next(Disconnected)
        await h.next(Connected)
        pbx.drop_connections()
        pbx.expire_tokens(notify_sockets=False)  # 10004 at the reconnect
        await h.next(Disconnected)
        await h.next(Connected)
        await emit_calls(pbx, "x")
        await h.next(CallStatusChanged)
    tokens = pbx.issued_tokens()
    assert len(tokens) >= 6
    # The websockets request line was logged, masked: the check below is not vacuous.
    assert any("subscribe?access_token=***" in r.getMessage() for r in caplog.records)
    for record in caplog.records:
        text = record.getMessage() + repr(record.args) + (record.exc_text or "")
        for token in tokens:
            assert token not in text, record.name


async def test_reprs_show_no_token(pbx: FakePBX) -> None:
    async with Harness(pbx) as h:
        h.record(Connected, CallStatusChanged)
        h.listen()
        await h.next(Connected)
        text = repr(h.stream) + repr(h.stream.options) + repr(h.stream.stats)
        assert "connected" in text
        for token in pbx.issued_tokens():
            assert token not in text


# -- the DESIGN.md example -------------------------------------------------------------------


async def test_design_example_accepts_an_incoming_call(pbx: FakePBX) -> None:
    async with Harness(pbx) as h:
        screened: list[str] = []

        @h.stream.on(IncomingCallRequest)
        async def screen(ev: IncomingCallRequest) -> None:
            inbound = ev.msg.members[0].inbound
            assert inbound is not None
            screened.append(inbound.from_)
            await h.transport.request(
                "POST",
                "call/accept_inbound",
                json={"channel_id": inbound.channel_id},
                response_type=ApiResponse,
            )

        h.listen()
        await pbx.wait_for_subscription([30016])
        call = pbx.simulate_inbound_call("5503301", trunk="peer-to-41", answer=False)
        assert await call.outcome(timeout=WAIT) == "accepted"
        assert screened == ["5503301"]
        [request] = pbx.requests_for("call/accept_inbound")
        assert request.json == {"channel_id": call.channel_id}


# -- options ----------------------------------------------------------------------------------


def test_default_options() -> None:
    opts = StreamOptions()
    assert (opts.heartbeat_interval, opts.heartbeat_timeout) == (25.0, 10.0)
    assert (opts.reconnect_delay_min, opts.reconnect_delay_max) == (0.5, 30.0)
    assert (opts.healthy_after, opts.queue_size, opts.overflow) == (30.0, 1024, "block")
    assert (opts.handler_timeout, opts.shutdown_timeout) == (None, 5.0)
    assert opts.max_frame_size == 1024 * 1024
    # Either heartbeat value may be the larger one.
    StreamOptions(heartbeat_interval=5.0, heartbeat_timeout=50.0)
    StreamOptions(heartbeat_interval=50.0, heartbeat_timeout=5.0)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("heartbeat_interval", 0),
        ("heartbeat_interval", 60),
        ("heartbeat_interval", -1.0),
        ("heartbeat_interval", float("nan")),
        ("heartbeat_interval", "25"),
        ("heartbeat_timeout", 0.0),
        ("heartbeat_timeout", 61.0),
        ("heartbeat_timeout", True),
        ("reconnect_delay_min", 0),
        ("reconnect_delay_min", float("inf")),
        ("reconnect_delay_max", 0.1),
        ("healthy_after", -1),
        ("queue_size", 0),
        ("queue_size", 1.5),
        ("overflow", "drop"),
        ("handler_timeout", 0),
        ("shutdown_timeout", 0),
        ("max_frame_size", 0),
        ("max_frame_size", 10),
        ("max_frame_size", 1023),
        ("max_frame_size", True),
    ],
)
def test_invalid_options_name_the_option_and_value(name: str, value: Any) -> None:
    with pytest.raises(ValueError, match=name) as info:
        StreamOptions(**{name: value})
    assert repr(value) in str(info.value)


def test_the_smallest_max_frame_size_is_accepted() -> None:
    assert StreamOptions(max_frame_size=1024).max_frame_size == 1024


@pytest.mark.parametrize(
    ("keyword", "value"),
    [("event_queue_size", 0), ("event_queue_size", -5), ("max_frame_size", 10)],
)
def test_client_option_errors_name_the_keyword_passed(keyword: str, value: int) -> None:
    options: dict[str, Any] = {keyword: value}
    with pytest.raises(ValueError, match=rf"^{keyword}\b") as info:
        YeastarClient("http://127.0.0.1:1", "id", "secret", **options)
    assert repr(value) in str(info.value)


def test_options_are_frozen() -> None:
    opts = StreamOptions()
    with pytest.raises(AttributeError):
        opts.queue_size = 5  # type: ignore[misc]


def test_unknown_event_raw_is_text_unless_the_frame_is_not_utf8() -> None:
    from yeastar_async.events._stream import _with_text_raw

    text = UnknownEvent(type=39999, raw=b'{"type": 39999}')
    assert _with_text_raw(text).raw == '{"type": 39999}'
    binary = UnknownEvent(type=39999, raw=b'{"type": 39999, "x": "\xff"}')
    assert _with_text_raw(binary).raw == b'{"type": 39999, "x": "\xff"}'
