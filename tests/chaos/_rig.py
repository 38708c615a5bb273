"""The chaos rig: a FakePBX, a YeastarClient, numbered events, and the checks every scenario
ends with.

Every event the rig emits is a 30011 frame whose ``call_id`` is a sequence number, so a
recorder can tell whether each handler got every event the fake handed to a live socket exactly
once and in order. Leaving the rig closes the client and checks that no task of the client is
left, that the fake saw every TCP connection closed, that the client's connection pool holds
nothing, and that the number of logins stayed within its bound.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import os
import weakref
from collections.abc import Callable, Iterable, Iterator
from types import TracebackType
from typing import Any, TypeVar

import yeastar_async
from yeastar_async import YeastarClient
from yeastar_async.events import CallStatusChanged, Connected, Disconnected
from yeastar_async.testing import FakePBX

__all__ = [
    "FAST",
    "TOPIC",
    "WAIT",
    "Recorder",
    "Rig",
    "call_payload",
    "fake_tasks",
    "new_tasks",
    "seq_of",
    "starting_fake",
    "tracking_fake_tasks",
]

E = TypeVar("E")

#: Small timing options: a scenario takes tens of milliseconds per fault, not seconds.
FAST: dict[str, Any] = {
    "heartbeat_interval": 0.05,
    "heartbeat_timeout": 0.3,
    "reconnect_delay_min": 0.02,
    "reconnect_delay_max": 0.1,
    "healthy_after": 0.3,
    "shutdown_timeout": 1.0,
}
#: Upper bound of any single wait; a passing run normally finishes far sooner.
WAIT = 5.0
#: The topic of the numbered events.
TOPIC = 30011

_LIBRARY = os.path.dirname(yeastar_async.__file__)
_TESTING = os.path.join(_LIBRARY, "testing")
_AIOHTTP_SERVER_FILES = ("web_protocol.py", "web_server.py", "web_ws.py", "web_runner.py")


def call_payload(seq: int) -> dict[str, Any]:
    """A 30011 payload numbered ``seq`` (in ``call_id``)."""
    return {
        "call_id": str(seq),
        "members": [
            {
                "extension": {
                    "number": "1000",
                    "channel_id": f"PJSIP/1000-{seq:08d}",
                    "member_status": "RING",
                }
            }
        ],
    }


def seq_of(event: CallStatusChanged) -> int:
    """The sequence number of a numbered event."""
    return int(event.msg.call_id)


#: Set while a FakePBX starts: its server's tasks, and the tasks they create, inherit it.
_ROLE: contextvars.ContextVar[str | None] = contextvars.ContextVar("chaos_role", default=None)
_FAKE_CREATED: weakref.WeakSet[asyncio.Task[Any]] = weakref.WeakSet()


def _task_file(task: asyncio.Task[Any]) -> str:
    code = getattr(task.get_coro(), "cr_code", None)
    return code.co_filename if code is not None else ""


def fake_tasks(task: asyncio.Task[Any]) -> bool:
    """Whether ``task`` belongs to the fake's side: created by the fake's server, or running
    code of the fake (or of aiohttp's server) for a switch a test flipped."""
    if task in _FAKE_CREATED:
        return True
    filename = _task_file(task)
    if filename.startswith(_TESTING):
        return True
    return "aiohttp" in filename and filename.endswith(_AIOHTTP_SERVER_FILES)


@contextlib.contextmanager
def tracking_fake_tasks() -> Iterator[None]:
    """Tell the fake's tasks from the client's: a task factory notes every task created from
    a context marked by :func:`starting_fake` (Python 3.11 has no ``Task.get_context``)."""
    loop = asyncio.get_running_loop()
    previous = loop.get_task_factory()

    def factory(loop: asyncio.AbstractEventLoop, coro: Any, **kwargs: Any) -> asyncio.Future[Any]:
        if previous is not None:
            task = previous(loop, coro, **kwargs)
        else:
            task = asyncio.Task(coro, loop=loop, **kwargs)
        if _ROLE.get() == "fake" and isinstance(task, asyncio.Task):
            _FAKE_CREATED.add(task)
        return task

    loop.set_task_factory(factory)
    try:
        yield
    finally:
        loop.set_task_factory(previous)


@contextlib.contextmanager
def starting_fake() -> Iterator[None]:
    """Mark the context a FakePBX is started in (its server callbacks copy it)."""
    token = _ROLE.set("fake")
    try:
        yield
    finally:
        _ROLE.reset(token)


def new_tasks(before: Iterable[asyncio.Task[Any]]) -> set[asyncio.Task[Any]]:
    """Tasks still pending that were not in ``before`` (the current task excluded)."""
    known = set(before)
    current = asyncio.current_task()
    return {t for t in asyncio.all_tasks() if t not in known and t is not current and not t.done()}


class _Changes:
    """Something to wait on: woken whenever a recorder or the link log changes."""

    def __init__(self) -> None:
        self._event = asyncio.Event()

    def notify(self) -> None:
        event, self._event = self._event, asyncio.Event()
        event.set()

    async def wait_until(self, predicate: Callable[[], bool], timeout: float, what: str) -> None:
        try:
            async with asyncio.timeout(timeout):
                while not predicate():
                    await self._event.wait()
        except TimeoutError:
            raise TimeoutError(f"chaos rig: no {what} within {timeout} s") from None


class Recorder:
    """An async event handler that records the sequence numbers it was handed."""

    def __init__(self, name: str, changes: _Changes) -> None:
        self.name = name
        self.seqs: list[int] = []
        self._changes = changes

    async def __call__(self, event: CallStatusChanged) -> None:
        if not event.msg.call_id.isdigit():
            return  # a call of the fake's scripted flows, not a numbered event
        self.seqs.append(seq_of(event))
        self._changes.notify()

    def __repr__(self) -> str:
        return f"<Recorder {self.name}: {len(self.seqs)} events>"


class Rig:
    """One client under chaos against ``pbx``.

    Args:
        pbx: a started FakePBX.
        handlers: how many recording handlers to register for the numbered topic.
        subscriber: also consume the numbered topic through ``client.subscribe()``.
        max_logins: the most ``get_token`` requests the scenario may cause.
        secret: the client secret to use (the fake's by default).
        close_wait: how long the fake may take to see every connection closed after aclose().
        options: YeastarClient keyword arguments, over :data:`FAST`.
    """

    def __init__(
        self,
        pbx: FakePBX,
        *,
        handlers: int = 2,
        subscriber: bool = False,
        max_logins: int = 1,
        secret: str | None = None,
        close_wait: float = WAIT,
        **options: Any,
    ) -> None:
        self.pbx = pbx
        self.close_wait = close_wait
        self.max_logins = max_logins
        self.client = YeastarClient(
            pbx.base_url, pbx.client_id, secret or pbx.client_secret, **{**FAST, **options}
        )
        self.changes = _Changes()
        self.recorders = [Recorder(f"handler {i}", self.changes) for i in range(handlers)]
        self.sub_recorder = Recorder("subscription", self.changes) if subscriber else None
        self.links: list[Connected | Disconnected] = []
        self.sent: list[int] = []
        self.listener: asyncio.Task[None] | None = None
        #: Errors the scenario expects listen() or the subscriber to end with.
        self.expected_errors: tuple[type[BaseException], ...] = ()
        self._link_cursor = 0
        self._next_seq = 0
        self._sub_task: asyncio.Task[None] | None = None
        self._sub_entered = asyncio.Event()
        self._tasks_before: set[asyncio.Task[Any]] = set()
        for recorder in self.recorders:
            self.client.add_handler(TOPIC, recorder)
        self.client.add_handler(Connected, self._on_link)
        self.client.add_handler(Disconnected, self._on_link)

    # -- lifecycle ---------------------------------------------------------------------------

    async def __aenter__(self) -> Rig:
        self._tasks_before = set(asyncio.all_tasks())
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc is not None:
            await self._close_quietly()
            return
        loop = asyncio.get_running_loop()
        started = loop.time()
        try:
            async with asyncio.timeout(WAIT):
                await self._quiesce()
            self.check_connection_pool()
        except BaseException:
            await self._close_quietly()
            raise
        async with asyncio.timeout(WAIT):
            await self.client.aclose()
        closing = loop.time() - started
        # Closing = stream shutdown (bounded by shutdown_timeout) + del_token + session close.
        limit = self.client._stream.options.shutdown_timeout + 1.5
        assert closing < limit, f"closing took {closing:.2f} s (limit {limit:.2f} s)"
        for task in (self.listener, self._sub_task):
            if task is not None:
                async with asyncio.timeout(WAIT):
                    await asyncio.wait({task})
                error = None if task.cancelled() else task.exception()
                if error is not None and not isinstance(error, self.expected_errors):
                    raise AssertionError(f"{task.get_name()} failed") from error
        leaked = {t for t in new_tasks(self._tasks_before) if not fake_tasks(t)}
        assert not leaked, f"tasks left after aclose(): {leaked}"
        await self.pbx.wait_for_no_connections(timeout=self.close_wait)
        logins = self.pbx.count("get_token")
        assert logins <= self.max_logins, f"{logins} logins (at most {self.max_logins} expected)"

    async def _quiesce(self) -> None:
        # Stop the stream first: with it, the token renewals it starts. A renewal already in
        # flight is shielded from the stream's cancellation; let it land, then nothing at all
        # should hold an HTTP connection.
        await self.client._stream.aclose()
        renewal = self.client._tokens._pending
        if renewal is not None and not renewal.done():
            await asyncio.wait({renewal})

    async def _close_quietly(self) -> None:
        try:
            async with asyncio.timeout(WAIT):
                await self.client.aclose()
        finally:
            for task in (self.listener, self._sub_task):
                if task is not None and not task.done():
                    task.cancel()

    def check_connection_pool(self) -> None:
        """The client's aiohttp connector holds no connection (in use or idle)."""
        session = self.client._transport._session
        if session is None:
            return
        connector = session.connector
        assert connector is not None
        acquired = len(connector._acquired)
        idle = sum(len(conns) for conns in connector._conns.values())
        assert acquired == 0, f"{acquired} HTTP connection(s) still acquired"
        assert idle == 0, f"{idle} idle HTTP connection(s) kept after the PBX closed them"

    # -- running -----------------------------------------------------------------------------

    async def listen(self) -> asyncio.Task[None]:
        """Start ``client.listen()`` (and the subscriber) in the background."""
        if self.sub_recorder is not None:
            self._sub_task = asyncio.create_task(self._consume(), name="chaos-subscriber")
            async with asyncio.timeout(WAIT):
                await self._sub_entered.wait()
        self.listener = asyncio.create_task(self.client.listen(), name="chaos-listen")
        return self.listener

    async def _consume(self) -> None:
        assert self.sub_recorder is not None
        async with self.client.subscribe(TOPIC) as events:
            self._sub_entered.set()
            async for event in events:
                await self.sub_recorder(event)

    async def _on_link(self, event: Connected | Disconnected) -> None:
        self.links.append(event)
        self.changes.notify()

    async def next_link(self, cls: type[E], timeout: float = WAIT) -> E:
        """The next link event (Connected / Disconnected), which must be a ``cls``."""
        await self.changes.wait_until(
            lambda: len(self.links) > self._link_cursor, timeout, f"{cls.__name__} event"
        )
        event = self.links[self._link_cursor]
        self._link_cursor += 1
        assert isinstance(event, cls), f"expected {cls.__name__}, got {event!r}"
        return event

    def links_since_cursor(self) -> list[Connected | Disconnected]:
        """Link events not consumed by :meth:`next_link` yet."""
        return self.links[self._link_cursor :]

    # -- numbered events ---------------------------------------------------------------------

    @property
    def all_recorders(self) -> list[Recorder]:
        """The handlers' recorders, and the subscription's."""
        extra = [self.sub_recorder] if self.sub_recorder is not None else []
        return [*self.recorders, *extra]

    async def emit(self, n: int = 1) -> int:
        """Emit the next ``n`` numbered events; returns how many a live socket took."""
        taken = 0
        for _ in range(n):
            taken += await self.emit_one()
        return taken

    async def emit_one(self) -> int:
        """Emit the next numbered event; 1 when a live socket took it, else 0."""
        seq = self._next_seq
        self._next_seq += 1
        got = await self.pbx.emit(TOPIC, call_payload(seq))
        # A send into a TCP buffer with room completes without yielding: without this, a
        # flood would starve the loop (the client's heartbeats, the fake's idle timer), which
        # a PBX in another process never does.
        await asyncio.sleep(0)
        # One client holds one WebSocket, two during a token rotation's overlap (the stream
        # delivers an event both take once: the recorders check it).
        assert got in (0, 1, 2), f"event {seq} went to {got} sockets of one client"
        if got:
            self.sent.append(seq)
        return got

    async def delivered(self, n: int, timeout: float = WAIT) -> None:
        """Wait until every recorder got at least ``n`` events."""
        await self.changes.wait_until(
            lambda: all(len(r.seqs) >= n for r in self.all_recorders), timeout, f"{n} events"
        )

    async def settle(self, timeout: float = WAIT) -> None:
        """Wait until every recorder has every sent event, then check exactly-once in order."""
        want = len(self.sent)
        with contextlib.suppress(TimeoutError):  # check_delivery names what is missing
            await self.changes.wait_until(
                lambda: all(len(r.seqs) >= want for r in self.all_recorders),
                timeout,
                f"delivery of {want} events",
            )
        self.check_delivery()

    def check_delivery(self) -> None:
        """Each recorder got exactly the events the fake handed to a live socket, in order."""
        for recorder in self.all_recorders:
            got = recorder.seqs
            if got == self.sent:
                continue
            missing = sorted(set(self.sent) - set(got))
            extra = sorted(set(got) - set(self.sent))
            dupes = len(got) - len(set(got))
            raise AssertionError(
                f"{recorder.name}: {len(got)} events for {len(self.sent)} sent; missing "
                f"{missing[:10]}{'...' if len(missing) > 10 else ''}, unexpected {extra[:10]}, "
                f"{dupes} duplicate(s), in order: {got == sorted(got)}"
            )
