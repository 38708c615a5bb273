"""``events``: tail the PBX's live events, one line (or JSON object) each."""

from __future__ import annotations

import argparse
import asyncio
import re
from typing import Any, Final

from .. import events
from ._connect import make_client
from ._format import event_json, format_event
from ._output import OutputClosed, err, out

#: Every topic this library has a class for: what ``events`` tails by default.
ALL_TOPICS: Final = tuple(sorted(events.TOPICS))

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
    return f"topics to subscribe to (default: all {len(ALL_TOPICS)} of {ALL_TOPICS[0]}-" + (
        f"{ALL_TOPICS[-1]}); commas or spaces between them"
    )


async def cmd_events(args: argparse.Namespace) -> int:
    """``events``: tail live events, one line (or JSON object) each; status lines on stderr."""
    topics: tuple[int, ...] = args.topics or ALL_TOPICS
    count: int | None = args.count
    printed = 0
    enough = asyncio.Event()
    async with make_client(args) as client:

        async def show(event: Any) -> None:
            nonlocal printed
            if enough.is_set():
                return  # events still queued while the client closes
            try:
                out(event_json(event) if args.json else format_event(event))
            except OutputClosed:
                enough.set()  # the reader has gone (| head -1): stop, quietly
                return
            printed += 1
            if count is not None and printed >= count:
                enough.set()

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
