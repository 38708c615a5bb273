"""``events``: tail the PBX's live events, one line (or JSON object) each."""

from __future__ import annotations

import argparse
import asyncio
from typing import Any, Final

from .. import events
from ._connect import make_client
from ._format import event_json, format_event
from ._output import err, out

#: Every topic of the manual (30005-30026; there is no 30021): what ``events`` tails by default
#: (every firmware with the API knows them; later topics are asked for with ``--topics``).
ALL_TOPICS: Final = tuple(sorted(events.MANUAL_TOPICS))


def parse_topics(text: str) -> tuple[int, ...]:
    """argparse type of ``--topics``: comma-separated topic numbers, duplicates dropped."""
    topics: list[int] = []
    for part in text.replace(" ", "").split(","):
        if not part:
            continue
        if not part.isdigit() or int(part) <= 0:
            raise argparse.ArgumentTypeError(f"not a topic number: {part!r}")
        topics.append(int(part))
    if not topics:
        raise argparse.ArgumentTypeError("no topic given")
    return tuple(dict.fromkeys(topics))


async def cmd_events(args: argparse.Namespace) -> int:
    """``events``: tail live events, one line (or JSON object) each; status lines on stderr."""
    topics: tuple[int, ...] = args.topics or ALL_TOPICS
    printed = 0
    enough = asyncio.Event()
    async with make_client(args) as client:

        async def show(event: Any) -> None:
            nonlocal printed
            if args.count and printed >= args.count:
                return  # events still queued while the client closes
            out(event_json(event) if args.json else format_event(event))
            printed += 1
            if args.count and printed >= args.count:
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
