"""``events``: tail the PBX's live events, one line (or JSON object) each."""

from __future__ import annotations

import argparse
import asyncio
import re
from collections.abc import Awaitable, Callable
from typing import Any, Final

from .. import events
from ._connect import make_client
from ._format import event_json, format_event
from ._output import OutputClosed, err, out

#: Every topic this library has a class for.
ALL_TOPICS: Final = tuple(sorted(events.TOPICS))

#: What ``events`` tails by default: the manual's topics, which every firmware of the API takes.
#: Whether older firmware refuses a ``topic_list`` naming topics it lacks is undocumented, and a
#: refused subscription ends the stream, so the newer topics are asked for by ``--topics`` only.
DEFAULT_TOPICS: Final = tuple(sorted(events.MANUAL_TOPICS))

#: The topics ``--topics`` accepts. The PBX numbers its event topics 300xx, from the first topic
#: of the manual; topics past the newest class (newer firmware) are accepted and arrive as
#: ``UnknownEvent``, so the upper end is the block's, not the newest class's.
TOPIC_RANGE: Final = range(min(ALL_TOPICS), max(*ALL_TOPICS, 30099) + 1)


def parse_topics(text: str) -> tuple[int, ...]:
    """argparse type of ``--topics``: topic numbers separated by commas and/or spaces
    (``30011,30012`` or ``"30011 30012"``), each in :data:`TOPIC_RANGE`, duplicates dropped."""
    topics: list[int] = []
    for part in re.split(r"[,\s]+", text.strip()):
        if not part:
            continue
        if not part.isascii() or not part.isdigit():
            raise argparse.ArgumentTypeError(f"not a topic number: {part!r}")
        if int(part) not in TOPIC_RANGE:
            raise argparse.ArgumentTypeError(
                f"no such topic: {part} (the PBX's topics are "
                f"{TOPIC_RANGE.start}-{TOPIC_RANGE.stop - 1})"
            )
        topics.append(int(part))
    if not topics:
        raise argparse.ArgumentTypeError("no topic given")
    return tuple(dict.fromkeys(topics))


def topics_help() -> str:
    """The ``--topics`` help line (the default named from the topic table)."""
    return (
        f"topics to subscribe to (default: the manual's {len(DEFAULT_TOPICS)}, "
        f"{DEFAULT_TOPICS[0]}-{DEFAULT_TOPICS[-1]}; newer firmware's up to {ALL_TOPICS[-1]} on "
        "request); commas or spaces between them"
    )


def event_printer(
    *, as_json: bool, count: int | None
) -> tuple[Callable[[Any], Awaitable[None]], asyncio.Event]:
    """A handler printing each event as a line (or JSON object), and the event it sets once
    ``count`` events were printed or stdout's reader has gone (``events`` and ``webhook``)."""
    printed = 0
    enough = asyncio.Event()

    async def show(event: Any) -> None:
        nonlocal printed
        if enough.is_set():
            return  # events still queued while the command stops
        try:
            out(event_json(event) if as_json else format_event(event))
        except OutputClosed:
            enough.set()  # the reader has gone (| head -1): stop, quietly
            return
        printed += 1
        if count is not None and printed >= count:
            enough.set()

    return show, enough


async def cmd_events(args: argparse.Namespace) -> int:
    """``events``: tail live events, one line (or JSON object) each; status lines on stderr."""
    topics: tuple[int, ...] = args.topics or DEFAULT_TOPICS
    show, enough = event_printer(as_json=args.json, count=args.count)
    async with make_client(args) as client:

        async def on_connected(event: events.Connected) -> None:
            if event.reconnect:
                gap = f"{event.gap:.1f} s" if event.gap is not None else "a"
                err(f"[status] reconnected after a {gap} gap (events in the gap were missed)")
            else:
                err(f"[status] connected to {client.base_url}, {len(topics)} topic(s)")

        async def on_disconnected(event: events.Disconnected) -> None:
            if not client.closed:
                err(f"[status] disconnected ({event.reason}); reconnecting")

        client.add_handler(events.Connected, on_connected)
        client.add_handler(events.Disconnected, on_disconnected)
        for topic in topics:
            client.add_handler(topic, show)
        err(f"[status] connecting to {client.base_url} ...")
        listener = asyncio.create_task(client.listen(), name="events-listen")
        stopper = asyncio.create_task(enough.wait())
        try:
            await asyncio.wait({listener, stopper}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopper.cancel()
            if not listener.done():
                await client.aclose()  # listen() returns once the client is closed
        await listener
    return 0
