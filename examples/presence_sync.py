"""Presence sync: keep the presence status of paired extensions equal (event 30009 -> REST).

Some users have two extensions (a desk phone and a softphone, or a front-desk extension and the
receptionist's own). When one of a pair changes its presence ("available", "away", "lunch",
"do_not_disturb", "business_trip", "off_work"), the PBX sends ``events.ExtensionPresenceChanged``
(30009) and this script sets the same presence on the other one with ``extension.update``.

On every (re)connect it reads all extensions over REST and aligns each pair (the first number
of a pair wins), since changes made while the event stream was down were never pushed. It
remembers the status it last saw for each number, so its own updates, echoed back by the PBX as
30009, do not bounce between the two extensions.

PBX prerequisites: the API enabled under Integrations > API (and this host on its IP allow list,
if one is set), and on the same page, Advanced > extension status monitoring: "Presence Status
Monitoring" turned on for the extensions involved (no 30009 event otherwise).

Run it::

    export YEASTAR_BASE_URL=https://pbx.example.com:8088
    export YEASTAR_CLIENT_ID=... YEASTAR_CLIENT_SECRET=...
    export YEASTAR_PIN=<sha256 fingerprint>   # only for a self-signed certificate
    python examples/presence_sync.py --pair 2000:2001 --pair 2005:2002
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import sys
from collections.abc import Iterable
from typing import Any, cast, get_args

from yeastar_async import YeastarClient, events
from yeastar_async.errors import YeastarError
from yeastar_async.resources.extension import ExtensionPresenceStatus

__all__ = ["PresenceSync", "main"]

logger = logging.getLogger("presence_sync")

#: The statuses extension.update accepts.
STATUSES = frozenset(get_args(ExtensionPresenceStatus))


class PresenceSync:
    """Mirrors presence changes between the extensions of each pair (both directions).

    Args:
        client: the PBX client; :meth:`install` registers the handlers on it.
        pairs: ``(number, number)`` tuples; at start-up the first one's status wins.

    Attributes:
        updates: how many ``extension.update`` calls were made.
    """

    def __init__(self, client: YeastarClient, pairs: Iterable[tuple[str, str]]) -> None:
        self.client = client
        self.pairs = list(pairs)
        self.twins: dict[str, list[str]] = {}
        for a, b in self.pairs:
            self.twins.setdefault(a, []).append(b)
            self.twins.setdefault(b, []).append(a)
        self.status: dict[str, str] = {}  # last known presence per extension number
        self.ids: dict[str, int] = {}  # extension number -> id (extension.update takes the id)
        self.updates = 0

    def install(self) -> None:
        """Register the handlers for 30009 and for (re)connects."""
        self.client.add_handler(events.ExtensionPresenceChanged, self.on_presence)
        self.client.add_handler(events.Connected, self.on_connected)

    async def refresh(self) -> None:
        """Read every extension's id and presence over REST, then align each pair."""
        async for ext in self.client.extension.list(page_size=200):
            if ext.number is not None and ext.id is not None:
                self.ids[ext.number] = ext.id
                self.status[ext.number] = ext.presence_status or ""
        for a, b in self.pairs:
            wanted = self.status.get(a)
            if wanted and self.status.get(b) != wanted:
                await self.set(b, wanted)

    async def set(self, number: str, status: str) -> None:
        """Set ``number``'s presence to ``status`` over REST."""
        ext_id = self.ids.get(number)
        if ext_id is None:
            logger.error("no extension %s on the PBX", number)
            return
        if status not in STATUSES:
            logger.error("not copying presence %r to %s: not a status the API sets", status, number)
            return
        # Recorded before the request: the PBX may push the echo 30009 before it answers.
        before = self.status.get(number, "")
        self.status[number] = status
        try:
            presence = cast(ExtensionPresenceStatus, status)
            await self.client.extension.update(id=ext_id, presence_status=presence)
        except YeastarError as exc:
            self.status[number] = before
            logger.error("could not set %s to %s: %s", number, status, exc)
            return
        self.updates += 1
        logger.info("%s is now %s", number, status)

    async def on_presence(self, event: events.ExtensionPresenceChanged) -> None:
        """Handler for 30009: copy the new status to the extension's twins."""
        number, status = event.msg.extension, event.msg.status
        self.status[number] = status
        for twin in self.twins.get(number, ()):
            if self.status.get(twin) != status:  # the echo of our own update stops here
                await self.set(twin, status)

    async def on_connected(self, _: events.Connected) -> None:
        """Handler for (re)connects: changes made while disconnected were never pushed."""
        await self.refresh()


def _pair(text: str) -> tuple[str, str]:
    a, sep, b = text.partition(":")
    if not sep or not a or not b or a == b:
        raise argparse.ArgumentTypeError(f"expected NUMBER:NUMBER, got {text!r}")
    return a, b


async def main(argv: list[str] | None = None) -> int:
    """Sync presence until interrupted (or until ``--limit`` updates were made)."""
    parser = argparse.ArgumentParser(description="Mirror presence between paired extensions.")
    parser.add_argument(
        "--pair", type=_pair, action="append", required=True, metavar="A:B", help="e.g. 2000:2001"
    )
    parser.add_argument("--limit", type=int, default=0, help="stop after N updates (0: never)")
    args = parser.parse_args(argv)

    enough = asyncio.Event()
    async with YeastarClient.from_env() as client:
        sync = PresenceSync(client, args.pair)
        sync.install()

        async def check_limit(_: Any) -> None:
            if args.limit and sync.updates >= args.limit:
                enough.set()

        client.add_handler(events.ExtensionPresenceChanged, check_limit)
        listener = asyncio.create_task(client.listen())
        stopper = asyncio.create_task(enough.wait())
        await asyncio.wait({listener, stopper}, return_when=asyncio.FIRST_COMPLETED)
        stopper.cancel()
    await listener  # returns once the client is closed; re-raises a credential failure
    print(f"{sync.updates} presence update(s) made")
    return 0


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    with contextlib.suppress(KeyboardInterrupt):
        sys.exit(asyncio.run(main()))
