"""Topics delivered by another route (a webhook): off the socket, in through ``other_route``."""

from __future__ import annotations

import asyncio
from typing import Any

from yeastar_async.events import CallStatusChanged, Connected, SystemEventAlert
from yeastar_async.events._dispatch import Dispatcher
from yeastar_async.events.models import CallInfo


async def test_claimed_topics_leave_the_socket_and_come_in_by_the_other_route() -> None:
    changes: list[frozenset[int]] = []
    d = Dispatcher(on_topics_changed=lambda: changes.append(d.topics))
    got: list[Any] = []

    async def record(event: Any) -> None:
        got.append(event)

    d.add_handler(30011, record)
    d.add_handler(SystemEventAlert, record)
    d.add_handler(Connected, record)
    assert d.topics == {30011, 30036}
    consumer = asyncio.create_task(d.consume(d.open_inbox()))
    changes.clear()
    release = d.route_elsewhere([30036])
    assert d.topics == {30011}
    alert, call = SystemEventAlert(sn="s"), CallStatusChanged(msg=CallInfo(call_id="1"))
    # The socket: its frame of a claimed topic is dropped (a link subscribed before the claim
    # keeps its subscription: the PBX is never sent an empty topic list).
    assert not d.offer(alert)
    await d.publish(alert)
    # The webhook: only its own topics.
    await d.publish(call, other_route=True)
    await d.publish(alert, other_route=True)
    await d.publish(call)
    await d.publish(Connected())  # local events are nobody's route
    release()
    release()  # idempotent
    assert d.topics == {30011, 30036}
    await d.publish(alert)  # back on the socket
    d.close_inbox()
    async with asyncio.timeout(5):
        await consumer
    assert got == [alert, call, Connected(), alert]
    assert changes == [frozenset({30011}), frozenset({30011, 30036})]


def test_claims_add_up_and_none_claims_every_topic() -> None:
    d = Dispatcher()

    async def handler(event: Any) -> None:
        return None

    for topic in (30011, 30034, 30036):
        d.add_handler(topic, handler)
    first = d.route_elsewhere([30036, 30036])
    second = d.route_elsewhere([30036, 30034])
    assert d.topics == {30011}
    first()
    assert d.topics == {30011}  # 30036 is still claimed by the second route
    second()
    assert d.topics == {30011, 30034, 30036}
    every = d.route_elsewhere(None)
    assert d.topics == frozenset()
    assert d.routed_elsewhere(39999)
    every()
    assert not d.routed_elsewhere(39999)
    assert d.topics == {30011, 30034, 30036}
