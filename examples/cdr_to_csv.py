"""CDR to CSV: append a row to a CSV file for every call record the PBX reports (event 30012).

The PBX sends ``events.NewCdr`` (30012) when a call ends. This script appends one row per CDR
to a CSV file (writing the header when the file is new), so a spreadsheet or a billing job can
pick the calls up without polling ``cdr/list``.

Events are pushed only while the WebSocket is up: when the link was lost, the script warns with
the length of the gap, during which CDRs may have been missed (fetch them with ``cdr.search``).

PBX prerequisites: the API enabled under Integrations > API (and this host on its IP allow list,
if one is set). 30012 needs no monitoring toggle.

Run it::

    export YEASTAR_BASE_URL=https://pbx.example.com:8088
    export YEASTAR_CLIENT_ID=... YEASTAR_CLIENT_SECRET=...
    export YEASTAR_PIN=<sha256 fingerprint>   # only for a self-signed certificate
    python examples/cdr_to_csv.py --out calls.csv
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import csv
import logging
import sys
from pathlib import Path

from yeastar_async import YeastarClient, events

__all__ = ["COLUMNS", "CdrWriter", "main"]

logger = logging.getLogger("cdr_to_csv")

#: The CSV columns: fields of :class:`yeastar_async.events.CdrInfo`, in this order.
COLUMNS = (
    "call_id",
    "time_start",
    "call_from",
    "call_to",
    "call_duration",
    "talk_duration",
    "status",
    "type",
    "src_trunk_name",
    "dst_trunk_name",
    "did_number",
    "pin_code",
    "recording",
)


class CdrWriter:
    """Appends CDRs to ``path`` (header written when the file is new or empty).

    The file is opened for each row, in a worker thread: a row is on disk as soon as it is
    written, and the event loop never waits on the disk.

    Attributes:
        rows: how many rows this writer appended.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.rows = 0

    def _append(self, row: list[str]) -> None:
        new = not self.path.exists() or self.path.stat().st_size == 0
        with self.path.open("a", newline="", encoding="utf-8") as out:
            writer = csv.writer(out)
            if new:
                writer.writerow(COLUMNS)
            writer.writerow(row)

    async def write(self, cdr: events.CdrInfo) -> None:
        """Append one CDR."""
        await asyncio.to_thread(self._append, [str(getattr(cdr, name)) for name in COLUMNS])
        self.rows += 1

    async def on_cdr(self, event: events.NewCdr) -> None:
        """Handler for ``events.NewCdr``."""
        cdr = event.msg
        await self.write(cdr)
        logger.info("%s: %s -> %s %s", cdr.call_id, cdr.call_from, cdr.call_to, cdr.status)

    async def on_connected(self, event: events.Connected) -> None:
        """Handler for ``events.Connected``: warn about a gap in the stream."""
        if event.reconnect:
            logger.warning(
                "the event stream was down for %.1f s: CDRs of that time may be missing "
                "(fetch them with client.cdr.search)",
                event.gap or 0.0,
            )


async def main(argv: list[str] | None = None) -> int:
    """Write CDRs until interrupted (or until ``--limit`` rows were written)."""
    parser = argparse.ArgumentParser(description="Append each new CDR (event 30012) to a CSV.")
    parser.add_argument("--out", type=Path, default=Path("cdr.csv"), help="the CSV file")
    parser.add_argument("--limit", type=int, default=0, help="stop after N rows (0: never)")
    args = parser.parse_args(argv)

    writer = CdrWriter(args.out)
    enough = asyncio.Event()
    async with YeastarClient.from_env() as client:
        client.add_handler(events.NewCdr, writer.on_cdr)
        client.add_handler(events.Connected, writer.on_connected)

        async def check_limit(_: events.NewCdr) -> None:
            if args.limit and writer.rows >= args.limit:
                enough.set()

        client.add_handler(events.NewCdr, check_limit)
        listener = asyncio.create_task(client.listen())
        stopper = asyncio.create_task(enough.wait())
        await asyncio.wait({listener, stopper}, return_when=asyncio.FIRST_COMPLETED)
        stopper.cancel()
    await listener  # returns once the client is closed; re-raises a credential failure
    print(f"{writer.rows} CDR(s) written to {args.out}")
    return 0


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    with contextlib.suppress(KeyboardInterrupt):
        sys.exit(asyncio.run(main()))
