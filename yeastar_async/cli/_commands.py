"""``call query``, ``call dial``, ``call hangup`` and ``recording download`` (with its progress
line)."""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any, Final

from ..errors import YeastarError
from ..resources import DownloadResponse
from ._connect import make_client
from ._format import format_members
from ._output import out

#: ``call query`` without a filter asks for each type: the PBX wants exactly one filter.
CALL_TYPES: Final = ("inbound", "outbound", "internal")


async def cmd_call_query(args: argparse.Namespace) -> int:
    """``call query [--call-id ID | --type T | --number N]``: the live calls, one line each,
    with the channel IDs ``call hangup`` takes (every call when no filter is given)."""
    given = {name: getattr(args, name) for name in ("call_id", "type", "number")}
    filters = [{k: v for k, v in given.items() if v is not None}]
    if not filters[0]:
        filters = [{"type": kind} for kind in CALL_TYPES]
    calls: dict[str, Any] = {}
    async with make_client(args) as client:
        for query in filters:
            answer = await client.call.query(**query)
            for call in answer.data or []:
                calls.setdefault(call.call_id or "?", call)
    if not calls:
        out("no calls")
    for call_id, call in calls.items():
        out(f"call {call_id}: {format_members(call)}")
    return 0


async def cmd_call_dial(args: argparse.Namespace) -> int:
    """``call dial CALLER CALLEE``: start a call; prints its call id."""
    async with make_client(args) as client:
        answer = await client.call.dial(
            caller=args.caller,
            callee=args.callee,
            auto_answer="yes" if args.auto_answer else None,
        )
    out(f"dialling {args.caller} → {args.callee}: call id {answer.call_id}")
    return 0


async def cmd_call_hangup(args: argparse.Namespace) -> int:
    """``call hangup CHANNEL_ID``: hang up one member of a call."""
    async with make_client(args) as client:
        answer = await client.call.hangup(channel_id=args.channel_id)
    out(f"hung up {args.channel_id} (call id {answer.call_id})")
    return 0


def _size(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GiB"  # pragma: no cover - the loop always returns


class Progress:
    """A progress line on stderr for a download of unknown size: bytes, rate and a bar.

    Redrawn in place at most ``fps`` times a second when stderr is a terminal; otherwise only
    :meth:`done` writes (a log file gets one line, not hundreds).
    """

    WIDTH: Final = 24

    def __init__(self, label: str, *, live: bool | None = None, fps: float = 10.0) -> None:
        self.label = label
        self.live = sys.stderr.isatty() if live is None else live
        self.bytes = 0
        self._started = time.monotonic()
        self._interval = 1.0 / fps
        self._drawn_at = 0.0
        self._frame = 0

    def update(self, written: int) -> None:
        """The downloader's ``progress=`` callback: ``written`` bytes so far."""
        self.bytes = written
        now = time.monotonic()
        if self.live and now - self._drawn_at >= self._interval:
            self._drawn_at = now
            self._frame += 1
            sys.stderr.write("\r" + self.line(now))
            sys.stderr.flush()

    def line(self, now: float | None = None) -> str:
        """The current progress line (a bouncing block: the total size is not known)."""
        now = time.monotonic() if now is None else now
        elapsed = self._elapsed(now)
        span = self.WIDTH - 4
        pos = self._frame % (2 * span)
        pos = pos if pos < span else 2 * span - pos
        bar = " " * pos + "####" + " " * (span - pos)
        return f"{self.label} [{bar}] {_size(self.bytes)} {_size(self.bytes / elapsed)}/s"

    def done(self) -> None:
        """Finish the progress line with the final size."""
        elapsed = self._elapsed(time.monotonic())
        end = f"{self.label} [{'#' * self.WIDTH}] {_size(self.bytes)} in {elapsed:.1f} s"
        sys.stderr.write(("\r" if self.live else "") + end + "\n")
        sys.stderr.flush()

    def _elapsed(self, now: float) -> float:
        return max(now - self._started, 1e-6)  # never 0: the rate divides by it


async def cmd_recording_download(args: argparse.Namespace) -> int:
    """``recording download ID --out PATH``: fetch a recording (by id or file name)."""
    ident: str = args.id
    query: dict[str, Any] = {"id": int(ident)} if ident.isdigit() else {"file": ident}
    answered = False

    async with make_client(args) as client:

        async def answer() -> DownloadResponse:
            nonlocal answered
            reply = await client.recording.download(**query)
            answered = True
            return reply

        progress = Progress(f"recording {ident}")
        try:
            saved = await client.files.save(
                answer, args.out, retries=args.retries, progress=progress.update
            )
        except ValueError as exc:
            if not answered:
                raise  # the SDK's check of the arguments (an empty ID): bad usage, exit 2
            # The PBX's answer is unusable (no link, or one to another host): not the user's.
            raise YeastarError(f"recording/download: {exc}") from None
        progress.done()
    out(f"saved {saved} ({progress.bytes} bytes)")
    return 0
