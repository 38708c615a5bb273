"""The FakePBX's WebSocket: ``/openapi/v1.0/subscribe?access_token=...``.

Behaviour of the real PBX reproduced here:

* the client sends ``{"topic_list":[30011,30012]}``; it REPLACES the socket's subscription (an
  empty list silently subscribes to nothing) and is acknowledged with
  ``{"errcode":0,"errmsg":"SUCCESS"}``;
* the text ``heartbeat`` is answered with the text ``heartbeat response``;
* a socket that receives no frame from the client for ``idle_timeout`` seconds (60 on the PBX)
  is closed by the server;
* a socket opened with a dead token gets ``{"errcode":10004,"errmsg":"TOKEN EXPIRED"}`` and is
  closed; so does an open socket whose token dies (expiry, refresh, revocation);
* event frames look like ``{"type":30011,"sn":"...","msg":"<JSON string>"}``; 30022, 30023,
  30025 and 30026 carry no ``sn``, and 30025/30026 send ``msg`` as an object.

Fault switches (``black_hole``, ``drop_connections`` ...) are methods of :class:`FakePBX`, which
delegates to :class:`WsHub`.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from aiohttp import WSMsgType, web

from ._auth import IPGuard, TokenBook
from ._log import FakePBXStats, RequestRecord

__all__ = ["FakeSocket", "WsHub"]

_ACK = '{"errcode":0,"errmsg":"SUCCESS"}'
_TOKEN_EXPIRED = '{"errcode":10004,"errmsg":"TOKEN EXPIRED"}'
_IP_BLOCKED = '{"errcode":70004,"errmsg":"ACCOUNT IP BLOCKED"}'
_SYNTAX_ERROR = '{"errcode":40001,"errmsg":"PARAMETER SYNTAX ERROR"}'
_PARAM_ERROR = '{"errcode":40002,"errmsg":"PARAMETER ERROR"}'
#: Topics whose frames carry no ``sn`` (manual, section "events"; 30028: its vendor page).
NO_SN_TOPICS = frozenset({30022, 30023, 30025, 30026, 30028})
#: Topics whose ``msg`` the PBX sends as a JSON object instead of a JSON-encoded string (the
#: manual's 30025/30026; the current vendor pages' examples of 30029, 30030, 30034-30036).
OBJECT_MSG_TOPICS = frozenset({30025, 30026, 30029, 30030, 30034, 30035, 30036})


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


@dataclass(eq=False)
class FakeSocket:
    """One open WebSocket on the fake, as the server sees it.

    Attributes:
        id: a sequence number (1 for the first socket the fake accepted).
        topics: the current subscription (replaced by every ``topic_list``).
        user_agent: the User-Agent header of the handshake.
        remote: the client's IP address.
        heartbeats: ``heartbeat`` texts received on this socket.
        subscribe_messages: every ``topic_list`` received on this socket, in order.
        closed: True once the socket is gone.
    """

    id: int
    ws: web.WebSocketResponse = field(repr=False)
    request: web.Request = field(repr=False)
    token: str | None = field(repr=False)
    user_agent: str | None
    remote: str
    topics: set[int] = field(default_factory=set)
    heartbeats: int = 0
    subscribe_messages: list[list[int]] = field(default_factory=list)
    closed: bool = False
    closing: bool = field(default=False, repr=False)
    send_lock: asyncio.Lock = field(default_factory=asyncio.Lock, repr=False)
    idle_handle: asyncio.TimerHandle | None = field(default=None, repr=False)
    expiry_handle: asyncio.TimerHandle | None = field(default=None, repr=False)

    @property
    def subscribed(self) -> bool:
        """Whether at least one ``topic_list`` was received."""
        return bool(self.subscribe_messages)


class WsHub:
    """Every open socket of one FakePBX, and the switches that make them misbehave."""

    def __init__(
        self,
        *,
        tokens: TokenBook,
        guard: IPGuard,
        stats: FakePBXStats,
        notify: Callable[[], None],
        clock: Callable[[], float],
        sn: str,
        idle_timeout: float,
        idle_counts_pings: bool,
        bound_to_token: bool,
        close_timeout: float,
    ) -> None:
        self._tokens = tokens
        self._guard = guard
        self._stats = stats
        self._notify = notify
        self._clock = clock
        self.sn = sn
        self.idle_timeout = idle_timeout
        self.idle_counts_pings = idle_counts_pings
        self.bound_to_token = bound_to_token
        self.close_timeout = close_timeout
        self.sockets: list[FakeSocket] = []
        self.black_holed = False
        self.heartbeat_replies = True
        self.ack = True
        #: Sent instead of the ack to every ``topic_list`` when set (an error frame).
        self.subscribe_reply: str | None = None
        self.reject_status: int | None = None
        self.reject_remaining: int | None = None
        self.accept_then_close_remaining = 0
        self._ids = itertools.count(1)
        self._tasks: set[asyncio.Task[Any]] = set()

    # -- handshake and reader ----------------------------------------------------------------
    async def handle(self, request: web.Request, record: RequestRecord) -> web.StreamResponse:
        """Serve one upgrade request until the socket closes."""
        self._stats.ws_handshakes += 1
        if self.reject_status is not None:
            status = self.reject_status
            if self.reject_remaining is not None:
                self.reject_remaining -= 1
                if self.reject_remaining <= 0:
                    self.reject_status = self.reject_remaining = None
            self._stats.ws_rejected += 1
            self._notify()
            record.status = status
            return web.Response(status=status, text=f"{status} handshake rejected by FakePBX")

        ws = web.WebSocketResponse(autoping=False, timeout=self.close_timeout)
        await ws.prepare(request)
        record.status = 101
        conn = FakeSocket(
            id=next(self._ids),
            ws=ws,
            request=request,
            token=record.access_token,
            user_agent=record.user_agent,
            remote=record.remote,
        )
        self.sockets.append(conn)
        self._stats.ws_connects += 1
        self._stats.ws_user_agents.append(conn.user_agent)
        self._notify()
        try:
            await self._serve(conn)
        finally:
            self._forget(conn)
        return ws

    async def _serve(self, conn: FakeSocket) -> None:
        if self.accept_then_close_remaining > 0:
            self.accept_then_close_remaining -= 1
            await self._close(conn)
            return
        if not self.black_holed:
            if self._guard.is_blocked(conn.remote):
                await self._send_and_close(conn, _IP_BLOCKED)
                return
            if not self._tokens.access_live(conn.token):
                self._stats.token_rejections += 1
                await self._send_and_close(conn, _TOKEN_EXPIRED)
                return
        self._arm_idle(conn)
        self._arm_expiry(conn)
        async for msg in conn.ws:
            if msg.type == WSMsgType.PING:
                await conn.ws.pong(msg.data)
                if self.idle_counts_pings:
                    self._arm_idle(conn)
            elif msg.type == WSMsgType.TEXT:
                self._arm_idle(conn)
                await self._on_text(conn, msg.data)
            elif msg.type == WSMsgType.BINARY:
                self._arm_idle(conn)

    async def _on_text(self, conn: FakeSocket, text: str) -> None:
        if text == "heartbeat":
            conn.heartbeats += 1
            self._stats.heartbeats += 1
            self._notify()
        if self.black_holed:
            return
        if self.bound_to_token and not self._tokens.access_live(conn.token):
            await self._send_and_close(conn, _TOKEN_EXPIRED)
            return
        if text == "heartbeat":
            if self.heartbeat_replies:
                await self._reply(conn, "heartbeat response")
            return
        try:
            doc = json.loads(text)
        except ValueError:
            await self._send(conn, _SYNTAX_ERROR)
            return
        topics = _topic_list(doc)
        if topics is None:
            await self._send(conn, _PARAM_ERROR)
            return
        conn.topics = set(topics)  # a subscribe message replaces the whole set
        conn.subscribe_messages.append(topics)
        self._stats.subscriptions.append(topics)
        if self.subscribe_reply is not None:
            await self._reply(conn, self.subscribe_reply)
        elif self.ack:
            await self._reply(conn, _ACK)
        self._notify()

    def _forget(self, conn: FakeSocket) -> None:
        self._mark_gone(conn)
        with contextlib.suppress(ValueError):
            self.sockets.remove(conn)
        self._notify()

    # -- timers --------------------------------------------------------------------------------
    def _arm_idle(self, conn: FakeSocket) -> None:
        if conn.idle_handle is not None:
            conn.idle_handle.cancel()
        loop = asyncio.get_running_loop()
        conn.idle_handle = loop.call_later(self.idle_timeout, self._idle_expired, conn)

    def rearm_idle(self) -> None:
        """Give every open socket a fresh idle window (after a setting or fault change)."""
        for conn in self.open_sockets():
            self._arm_idle(conn)

    def _idle_expired(self, conn: FakeSocket) -> None:
        if conn.closed:
            return
        if self.black_holed:  # a black hole sends nothing, not even a close frame
            self._arm_idle(conn)
            return
        self._spawn(self._close(conn, code=1000, message=b"idle timeout"))

    def _arm_expiry(self, conn: FakeSocket) -> None:
        if not self.bound_to_token or conn.token is None:
            return
        deadline = self._tokens.access_expires_at(conn.token)
        if deadline is None:
            return
        delay = max(0.0, deadline - self._clock())
        loop = asyncio.get_running_loop()
        conn.expiry_handle = loop.call_later(delay, self._expiry_due, conn)

    def _expiry_due(self, conn: FakeSocket) -> None:
        if conn.closed:
            return
        if self._tokens.access_live(conn.token):
            self._arm_expiry(conn)  # an injected clock may lag behind the event loop's
        elif not self.black_holed:
            self._spawn(self._send_and_close(conn, _TOKEN_EXPIRED))

    def tokens_died(self, tokens: set[str]) -> None:
        """Tell every socket opened with one of ``tokens`` (10004 frame, then close)."""
        if not self.bound_to_token or self.black_holed:
            return
        for conn in list(self.sockets):
            if conn.token in tokens and not conn.closed:
                self._spawn(self._send_and_close(conn, _TOKEN_EXPIRED))

    # -- sending ---------------------------------------------------------------------------------
    async def _send(self, conn: FakeSocket, text: str, *, last: bool = False) -> bool:
        # Nothing follows a socket's last frame (a 10004 before the close, the close itself):
        # the PBX closes right after it, so an event emitted meanwhile never leaves.
        if self.black_holed or conn.closed or conn.ws.closed or (conn.closing and not last):
            return False
        async with conn.send_lock:
            try:
                await conn.ws.send_str(text)
            except (ConnectionError, RuntimeError):
                return False
        return True

    async def _reply(self, conn: FakeSocket, text: str) -> None:
        """Answer a client frame without making the socket's reader wait for the send.

        A send waits while the client is not reading (a full TCP window). Sending inline would
        stop this reader too: heartbeats would go uncounted and the idle timer would fire,
        which a PBX, reading and writing independently, does not do. The task is started
        before anything else can run, so it takes the (FIFO) send lock before any event
        emitted after this frame: the ack still precedes the events it enables.
        """
        self._spawn(self._send(conn, text))

    async def _close(self, conn: FakeSocket, code: int = 1000, message: bytes = b"") -> None:
        conn.closing = True
        if conn.ws.closed:
            return
        try:
            await asyncio.wait_for(conn.ws.close(code=code, message=message), self.close_timeout)
        except (TimeoutError, ConnectionError, RuntimeError):
            self._abort(conn)

    async def _send_and_close(self, conn: FakeSocket, text: str, code: int = 1000) -> bool:
        if self.black_holed or conn.closing:
            # A black hole sends nothing, not even a close; a closing socket already had its
            # last frame (e.g. two 10004 for one socket).
            return False
        conn.closing = True
        sent = await self._send(conn, text, last=True)
        await self._close(conn, code=code)
        return sent

    def _abort(self, conn: FakeSocket) -> None:
        transport = conn.request.transport
        if transport is not None:
            transport.abort()
        # Gone now, not when its handler task gets round to noticing: until then it must not
        # count as open or subscribed (wait_for_subscription() right after a drop would
        # otherwise return at once, on the dead socket).
        self._mark_gone(conn)

    def _mark_gone(self, conn: FakeSocket) -> None:
        if conn.closed:
            return
        conn.closed = True
        for handle in (conn.idle_handle, conn.expiry_handle):
            if handle is not None:
                handle.cancel()
        self._notify()

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def open_sockets(self) -> list[FakeSocket]:
        """Sockets that are still open."""
        return [c for c in self.sockets if not c.closed]

    def frame(
        self, topic: int, payload: Mapping[str, Any] | str, msg_as: str | None, sn: Any
    ) -> str:
        """Build one event frame the way the PBX shapes it."""
        if msg_as is None:
            msg_as = "object" if topic in OBJECT_MSG_TOPICS else "string"
        if msg_as not in ("string", "object"):
            raise ValueError(f"msg_as must be 'string' or 'object', not {msg_as!r}")
        doc: dict[str, Any] = {"type": topic}
        if sn is _DEFAULT_SN:
            sn = None if topic in NO_SN_TOPICS else self.sn
        if sn is not None:
            doc["sn"] = sn
        if isinstance(payload, str):
            doc["msg"] = payload if msg_as == "string" else json.loads(payload)
        else:
            doc["msg"] = _dumps(dict(payload)) if msg_as == "string" else dict(payload)
        return _dumps(doc)

    async def emit(self, topic: int, frame: str) -> int:
        """Send ``frame`` to every socket subscribed to ``topic``; how many got it."""
        sent = 0
        for conn in self.open_sockets():
            if topic in conn.topics and await self._send(conn, frame):
                sent += 1
        self._stats.events_sent += sent
        return sent

    async def push_raw(self, frame: str | bytes) -> int:
        """Send ``frame`` (text) to every open socket; how many got it."""
        text = frame.decode() if isinstance(frame, bytes) else frame
        results = [await self._send(conn, text) for conn in self.open_sockets()]
        return sum(results)

    async def push_frame(self, data: bytes, *, binary: bool) -> int:
        """Send ``data`` as one binary (or unchecked text) frame to every open socket."""
        opcode = WSMsgType.BINARY if binary else WSMsgType.TEXT
        sent = 0
        for conn in self.open_sockets():
            if self.black_holed or conn.closed or conn.ws.closed:
                continue
            async with conn.send_lock:
                try:
                    await conn.ws.send_frame(bytes(data), opcode)
                except (ConnectionError, RuntimeError):
                    continue
            sent += 1
        return sent

    async def push_and_close(self, frame: str | bytes, code: int = 1000) -> int:
        """Send ``frame`` to every open socket, then close each; how many got the frame."""
        text = frame.decode() if isinstance(frame, bytes) else frame
        sent = 0
        for conn in self.open_sockets():
            if await self._send_and_close(conn, text, code):
                sent += 1
        return sent

    def drop(self) -> int:
        """Abort every socket's TCP transport (no close frame); how many were dropped."""
        conns = self.open_sockets()
        for conn in conns:
            self._abort(conn)
        return len(conns)

    async def close_all(self) -> None:
        """Close every socket (briefly waiting for the close handshake) and finish tasks."""
        self.black_holed = False
        await asyncio.gather(*(self._close(c, code=1001) for c in self.open_sockets()))
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def subscribed_to(self, topics: Collection[int]) -> list[FakeSocket]:
        """Open sockets whose subscription includes every topic of ``topics``."""
        wanted = set(topics)
        return [c for c in self.open_sockets() if c.subscribed and wanted <= c.topics]


class _DefaultSn:
    def __repr__(self) -> str:
        return "<PBX serial number>"


#: Sentinel: "use the PBX's serial number, or none for the topics that send none".
_DEFAULT_SN: Any = _DefaultSn()
DEFAULT_SN = _DEFAULT_SN


def _topic_list(doc: Any) -> list[int] | None:
    if not isinstance(doc, dict) or not isinstance(doc.get("topic_list"), list):
        return None
    topics: list[int] = []
    items: Iterable[Any] = doc["topic_list"]
    for item in items:
        if isinstance(item, bool):
            return None
        if isinstance(item, int):
            topics.append(item)
        elif isinstance(item, str) and item.strip().isdigit():
            topics.append(int(item))
        else:
            return None
    return topics
