"""Handler registry, buffers and in-order delivery (yeastar_async.events._dispatch)."""

from __future__ import annotations

import asyncio
import functools
import logging
from typing import Any

import pytest

from yeastar_async.events import (
    CallStatusChanged,
    Connected,
    Disconnected,
    Event,
    IncomingCallRequest,
    LocalEvent,
    NewCdr,
    UnknownEvent,
)
from yeastar_async.events._dispatch import Dispatcher, Subscription
from yeastar_async.events.models import CallInfo


def call(call_id: str) -> CallStatusChanged:
    return CallStatusChanged(sn="sn", msg=CallInfo(call_id=call_id))


def ids(events: list[Any]) -> list[str]:
    return [e.msg.call_id for e in events]


async def run_consumer(d: Dispatcher) -> asyncio.Task[None]:
    return asyncio.create_task(d.consume(d.open_inbox()))


async def drain(d: Dispatcher, task: asyncio.Task[None]) -> None:
    d.close_inbox()
    async with asyncio.timeout(5):
        await task


# -- targets ------------------------------------------------------------------------------------


def test_targets_resolve_to_topics_or_local_classes() -> None:
    assert Dispatcher.resolve(CallStatusChanged) == 30011
    assert Dispatcher.resolve(30016) == 30016
    assert Dispatcher.resolve(Connected) is Connected
    assert Dispatcher.resolve(Disconnected) is Disconnected
    # A topic newer firmware sends and this library has no class for is accepted.
    assert Dispatcher.resolve(30029) == 30029


@pytest.mark.parametrize(
    ("target", "error", "text"),
    [
        ("30011", TypeError, "'30011'"),
        (True, TypeError, "True"),
        (None, TypeError, "None"),
        (str, TypeError, "str"),
        (0, ValueError, "0"),
        (-5, ValueError, "-5"),
        (Event, ValueError, "Event"),
        (UnknownEvent, ValueError, "UnknownEvent"),
        (LocalEvent, ValueError, "LocalEvent"),
    ],
)
def test_unknown_targets_are_rejected_naming_the_value(
    target: Any, error: type[Exception], text: str
) -> None:
    d = Dispatcher()
    with pytest.raises(error, match=text):
        d.add_handler(target, _noop)
    with pytest.raises(error, match=text):
        d.open_subscription([target])
    assert d.topics == frozenset()


async def _noop(event: Any) -> None:
    pass


def test_handlers_must_be_async() -> None:
    d = Dispatcher()

    def sync_handler(event: Any) -> None:
        pass

    with pytest.raises(TypeError, match="sync_handler"):
        d.add_handler(30011, sync_handler)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="async"):
        d.add_handler(30011, lambda event: None)  # type: ignore[arg-type,return-value]
    assert d.handlers(30011) == ()


def test_async_callables_and_partials_are_accepted() -> None:
    class Handler:
        async def __call__(self, event: Any) -> None:
            pass

    async def two(event: Any, extra: int) -> None:
        pass

    d = Dispatcher()
    obj = Handler()
    part = functools.partial(two, extra=1)
    d.add_handler(30011, obj)
    d.add_handler(CallStatusChanged, part)
    assert d.handlers(30011) == (obj, part)


def test_topics_are_the_union_and_changes_are_reported() -> None:
    changes: list[frozenset[int]] = []
    d = Dispatcher(on_topics_changed=lambda: changes.append(d.topics))
    d.add_handler(CallStatusChanged, _noop)
    d.add_handler(30011, _noop)  # same topic: no change
    d.add_handler(Connected, _noop)  # local: no PBX topic
    sub = d.open_subscription([NewCdr, 30011, Disconnected])
    assert d.topics == {30011, 30012}
    d.close_subscription(sub)
    d.remove_handler(30011, _noop)
    assert d.topics == {30011}
    d.remove_handler(CallStatusChanged, _noop)
    assert d.topics == frozenset()
    assert changes == [frozenset({30011}), frozenset({30011, 30012}), frozenset({30011}), set()]


def test_removing_an_unknown_handler_names_it() -> None:
    d = Dispatcher()
    with pytest.raises(ValueError, match="_noop"):
        d.remove_handler(30011, _noop)


def test_subscribe_needs_a_target() -> None:
    with pytest.raises(ValueError, match="at least one"):
        Dispatcher().open_subscription([])


# -- delivery -----------------------------------------------------------------------------------


async def test_handlers_run_in_registration_order_one_event_at_a_time() -> None:
    d = Dispatcher()
    log: list[tuple[str, str]] = []
    running = 0
    peak = 0

    def make(name: str) -> Any:
        async def handler(event: CallStatusChanged) -> None:
            nonlocal running, peak
            running += 1
            peak = max(peak, running)
            await asyncio.sleep(0)  # yields: another event must still not start
            log.append((name, event.msg.call_id))
            running -= 1

        return handler

    d.add_handler(CallStatusChanged, make("a"))
    d.add_handler(30011, make("b"))
    task = await run_consumer(d)
    for i in range(20):
        await d.publish(call(str(i)))
    await drain(d, task)
    assert log == [(name, str(i)) for i in range(20) for name in ("a", "b")]
    assert peak == 1
    assert d.stats.events_dispatched == 20


async def test_a_failing_handler_is_isolated_and_logged(caplog: pytest.LogCaptureFixture) -> None:
    d = Dispatcher()
    seen: list[str] = []

    async def broken(event: CallStatusChanged) -> None:
        if event.msg.call_id == "1":
            raise RuntimeError("boom")
        seen.append("broken " + event.msg.call_id)

    async def fine(event: CallStatusChanged) -> None:
        seen.append("fine " + event.msg.call_id)

    d.add_handler(30011, broken)
    d.add_handler(30011, fine)
    task = await run_consumer(d)
    with caplog.at_level(logging.ERROR, logger="yeastar_async.events"):
        for i in range(3):
            await d.publish(call(str(i)))
        await drain(d, task)
    assert seen == ["broken 0", "fine 0", "fine 1", "broken 2", "fine 2"]
    assert d.stats.handler_errors == 1
    [record] = [r for r in caplog.records if "failed" in r.getMessage()]
    assert "broken" in record.getMessage()
    assert "CallStatusChanged" in record.getMessage()
    assert record.exc_info is not None
    assert isinstance(record.exc_info[1], RuntimeError)


async def test_handler_timeout_cancels_the_handler_only(caplog: pytest.LogCaptureFixture) -> None:
    d = Dispatcher(handler_timeout=0.05)
    finished: list[str] = []
    cancelled = asyncio.Event()

    async def slow(event: CallStatusChanged) -> None:
        if event.msg.call_id == "0":
            try:
                await asyncio.Event().wait()  # never set: only the timeout ends it
            except asyncio.CancelledError:
                cancelled.set()
                raise
        finished.append(event.msg.call_id)

    d.add_handler(30011, slow)
    task = await run_consumer(d)
    await d.publish(call("0"))
    await d.publish(call("1"))
    await drain(d, task)
    assert cancelled.is_set()
    assert finished == ["1"]
    assert d.stats.handler_errors == 1
    assert "handler_timeout=0.05s" in caplog.text


async def test_a_handlers_own_timeout_error_is_a_plain_failure(
    caplog: pytest.LogCaptureFixture,
) -> None:
    d = Dispatcher(handler_timeout=10.0)

    async def raises_timeout(event: Any) -> None:
        raise TimeoutError("upstream timed out")

    d.add_handler(30011, raises_timeout)
    task = await run_consumer(d)
    await d.publish(call("0"))
    await drain(d, task)
    assert d.stats.handler_errors == 1
    assert "raises_timeout failed" in caplog.text
    assert "handler_timeout" not in caplog.text


async def test_a_handler_cancelling_itself_does_not_stop_delivery() -> None:
    d = Dispatcher()
    seen: list[str] = []

    async def handler(event: CallStatusChanged) -> None:
        if event.msg.call_id == "0":
            raise asyncio.CancelledError  # e.g. it awaited a future someone cancelled
        seen.append(event.msg.call_id)

    d.add_handler(30011, handler)
    task = await run_consumer(d)
    await d.publish(call("0"))
    await d.publish(call("1"))
    await drain(d, task)
    assert seen == ["1"]
    assert d.stats.handler_errors == 1


async def test_cancelling_the_consumer_cancels_the_running_handler() -> None:
    d = Dispatcher()
    started = asyncio.Event()

    async def forever(event: Any) -> None:
        started.set()
        await asyncio.Event().wait()

    d.add_handler(30011, forever)
    task = await run_consumer(d)
    await d.publish(call("0"))
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert d.stats.handler_errors == 0


async def test_events_without_handlers_are_not_queued() -> None:
    d = Dispatcher(queue_size=1)
    d.open_inbox()
    d.add_handler(30012, _noop)
    for i in range(5):  # would block on the second one if queued
        await d.publish(call(str(i)))
    assert d.stats.events_dispatched == 0


async def test_unknown_events_reach_only_handlers_of_unclassed_topics() -> None:
    d = Dispatcher()
    got: list[Any] = []

    async def record(event: Any) -> None:
        got.append(event)

    d.add_handler(39029, record)
    d.add_handler(30011, record)
    task = await run_consumer(d)
    newer = UnknownEvent(type=39029, msg={"x": 1}, raw="{}", reason="unknown topic")
    broken = UnknownEvent(type=30011, msg="?", raw="{}", reason="bad msg")
    await d.publish(newer)
    await d.publish(broken)  # a CallStatusChanged handler must never get an untyped payload
    await d.publish(UnknownEvent(type=None, raw="{}"))
    await drain(d, task)
    assert got == [newer]


async def test_handlers_added_during_delivery_apply_to_later_events() -> None:
    d = Dispatcher()
    seen: list[str] = []

    async def late(event: CallStatusChanged) -> None:
        seen.append("late " + event.msg.call_id)

    async def first(event: CallStatusChanged) -> None:
        seen.append("first " + event.msg.call_id)
        if event.msg.call_id == "0":
            d.add_handler(30011, late)

    d.add_handler(30011, first)
    task = await run_consumer(d)
    await d.publish(call("0"))
    await d.publish(call("1"))
    await drain(d, task)
    assert seen == ["first 0", "first 1", "late 1"]


# -- overflow -----------------------------------------------------------------------------------


async def test_block_policy_makes_the_publisher_wait_and_loses_nothing() -> None:
    d = Dispatcher(queue_size=2)
    d.add_handler(30011, _noop)
    inbox = d.open_inbox()
    await d.publish(call("0"))
    await d.publish(call("1"))
    blocked = asyncio.create_task(d.publish(call("2")))
    await asyncio.sleep(0)
    assert not blocked.done()
    assert await inbox.get() == call("0")
    async with asyncio.timeout(5):
        await blocked
    assert [await inbox.get() for _ in range(2)] == [call("1"), call("2")]
    assert d.stats.drops == 0


@pytest.mark.parametrize(
    ("policy", "kept"), [("drop_newest", ["0", "1"]), ("drop_oldest", ["3", "4"])]
)
async def test_drop_policies_count_every_drop_and_warn_once(
    policy: Any, kept: list[str], caplog: pytest.LogCaptureFixture
) -> None:
    d = Dispatcher(queue_size=2, overflow=policy)
    d.add_handler(30011, _noop)
    inbox = d.open_inbox()
    with caplog.at_level(logging.WARNING, logger="yeastar_async.events"):
        for i in range(5):
            await d.publish(call(str(i)))
    assert d.stats.drops == 3
    assert ids([await inbox.get() for _ in range(2)]) == kept
    warnings = [r for r in caplog.records if "dropped" in r.getMessage()]
    assert len(warnings) == 1  # rate-limited: one report for the burst
    assert "dropped 1 event(s), 1 in total" in warnings[0].getMessage()
    caplog.clear()
    d.report_drops()  # the rest is reported when the stream stops
    assert "dropped 2 event(s), 3 in total" in caplog.text


# -- subscriptions ------------------------------------------------------------------------------


async def test_subscription_gets_only_what_it_names_in_order() -> None:
    d = Dispatcher()
    sub = d.open_subscription([CallStatusChanged, Connected])
    other = d.open_subscription([IncomingCallRequest])
    await d.publish(Connected(reconnect=False))
    await d.publish(call("a"))
    await d.publish(NewCdr())
    await d.publish(Disconnected(reason="x"))
    await d.publish(call("b"))
    d.close_subscription(sub)
    got = [ev async for ev in sub]
    assert got == [Connected(reconnect=False), call("a"), call("b")]
    assert len(other) == 0
    assert sub.closed
    assert not other.closed
    assert sub.topics == {30011}
    assert sub.targets == (CallStatusChanged, Connected)
    assert "closed" in repr(sub)


async def test_closing_with_an_error_raises_it_after_the_buffered_events() -> None:
    d = Dispatcher()
    sub = d.open_subscription([30011])
    await d.publish(call("a"))
    d.end_subscriptions(RuntimeError("stream failed"))
    assert await anext(sub) == call("a")
    with pytest.raises(RuntimeError, match="stream failed"):
        await anext(sub)


async def test_iteration_waits_for_events_and_ends_on_close() -> None:
    d = Dispatcher()
    sub = d.open_subscription([30011])

    async def consume(s: Subscription) -> list[Any]:
        return [ev async for ev in s]

    task = asyncio.create_task(consume(sub))
    await d.publish(call("a"))
    await asyncio.sleep(0)
    d.close_subscription(sub)
    async with asyncio.timeout(5):
        assert await task == [call("a")]


async def test_closing_a_subscription_releases_a_blocked_publisher() -> None:
    d = Dispatcher(queue_size=1)
    sub = d.open_subscription([30011])
    await d.publish(call("a"))
    blocked = asyncio.create_task(d.publish(call("b")))
    await asyncio.sleep(0)
    assert not blocked.done()
    d.close_subscription(sub)
    async with asyncio.timeout(5):
        await blocked


async def test_publish_nowait_never_waits_nor_drops_older_events() -> None:
    d = Dispatcher(queue_size=1, overflow="drop_oldest")
    sub = d.open_subscription([Disconnected])
    d.publish_nowait(Disconnected(reason="first"))
    d.publish_nowait(Disconnected(reason="second"))
    d.close_subscription(sub)
    assert [ev async for ev in sub] == [Disconnected(reason="first")]
    assert d.stats.drops == 0
