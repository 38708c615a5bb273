"""Hotel wake-up calls: set, list and cancel a room's wake-up calls, and check a guest out.

Rooms are extension numbers. The PBX identifies extensions by id, so every command first looks
the room's extension up (``extension.list``), then calls the wake-up endpoints:

* ``set ROOM HH:MM``: ``wakeupcall/create`` (at most 23 per room), with optional repeat days,
  snoozes and prompt;
* ``list [ROOM ...]``: ``wakeupcall/list`` (every room), or the named rooms;
* ``cancel ROOM [--id N ...]``: ``wakeupcall/delete`` (all of the room's, or the given ones);
* ``checkout ROOM``: ``hotel/checkout``, which clears the room's wake-up calls, voicemail, guest
  name and contact data, and presence.

PBX prerequisites: the API enabled under Integrations > API (and this host on its IP allow list,
if one is set). ``hotel/checkout`` fails (70524) when the PBX has its own PMS integration.

Run it::

    export YEASTAR_BASE_URL=https://pbx.example.com:8088
    export YEASTAR_CLIENT_ID=... YEASTAR_CLIENT_SECRET=...
    export YEASTAR_PIN=<sha256 fingerprint>   # only for a self-signed certificate
    python examples/wakeup_calls.py set 2001 06:45 --repeat every_monday every_friday
    python examples/wakeup_calls.py list
    python examples/wakeup_calls.py cancel 2001
    python examples/wakeup_calls.py checkout 2001
"""

from __future__ import annotations

import argparse
import asyncio
import re
import sys
from typing import Any, get_args

from yeastar_async import YeastarClient
from yeastar_async.errors import YeastarError
from yeastar_async.resources.wakeupcall import WakeupcallRepeatType

__all__ = ["find_room", "main"]

_HHMM = re.compile(r"^([01]\d|2[0-3]):[0-5]\d$")


class RoomNotFound(LookupError):
    """No extension has the room's number."""


async def find_room(client: YeastarClient, room: str) -> int:
    """The extension id of room ``room`` (its extension number)."""
    async for ext in client.extension.list(page_size=200):
        if ext.number == room and ext.id is not None:
            return ext.id
    raise RoomNotFound(f"no extension {room} on the PBX")


async def _rooms_by_id(client: YeastarClient) -> dict[int, str]:
    return {
        ext.id: ext.number or "?"
        async for ext in client.extension.list(page_size=200)
        if ext.id is not None
    }


async def cmd_set(client: YeastarClient, args: argparse.Namespace) -> None:
    """Add a wake-up call to a room."""
    ext_id = await find_room(client, args.room)
    options: dict[str, Any] = {}
    if args.repeat:
        options["repeat_type"] = args.repeat
    if args.snoozes is not None:
        options["number_of_snoozes"] = args.snoozes
    if args.snooze_minutes is not None:
        options["snooze_duration"] = args.snooze_minutes
    if args.prompt:
        options["alarm_prompt"] = args.prompt
    created = await client.wakeupcall.create(ext_id=ext_id, alarm_time=args.time, **options)
    print(f"room {args.room}: wake-up call {created.id} at {args.time}")


async def cmd_list(client: YeastarClient, args: argparse.Namespace) -> None:
    """Print the wake-up calls of every room (or of the rooms named)."""
    rooms = await _rooms_by_id(client)
    wanted = set(args.rooms)
    found = 0
    async for entry in client.wakeupcall.list():
        room = rooms.get(entry.ext_id or -1, f"ext id {entry.ext_id}")
        if wanted and room not in wanted:
            continue
        for alarm in entry.wakeup_call:
            found += 1
            print(
                f"room {room}: #{alarm.id} {alarm.alarm_time} repeat {alarm.repeat_type}, "
                f"{alarm.number_of_snoozes} snooze(s) of {alarm.snooze_duration} min"
            )
    if not found:
        print("no wake-up calls")


async def cmd_cancel(client: YeastarClient, args: argparse.Namespace) -> None:
    """Delete a room's wake-up calls (all, or those given with --id)."""
    ext_id = await find_room(client, args.room)
    await client.wakeupcall.delete(ext_id=ext_id, wakeup_call_id=args.id or None)
    which = ", ".join(f"#{i}" for i in args.id) if args.id else "all wake-up calls"
    print(f"room {args.room}: cancelled {which}")


async def cmd_checkout(client: YeastarClient, args: argparse.Namespace) -> None:
    """Check the room's guest out (clears wake-up calls, voicemail, guest data, presence)."""
    ext_id = await find_room(client, args.room)
    await client.hotel.checkout(ext_id=ext_id)
    print(f"room {args.room}: checked out")


def _hhmm(text: str) -> str:
    if not _HHMM.match(text):
        raise argparse.ArgumentTypeError(f"expected HH:MM (24-hour), got {text!r}")
    return text


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description="Hotel wake-up calls over the Yeastar API.")
    commands = parser.add_subparsers(dest="command", required=True)
    set_ = commands.add_parser("set", help="add a wake-up call")
    set_.add_argument("room", help="the room's extension number")
    set_.add_argument("time", type=_hhmm, help="HH:MM, 24-hour")
    set_.add_argument("--repeat", nargs="+", choices=get_args(WakeupcallRepeatType))
    set_.add_argument("--snoozes", type=int, choices=(0, 1, 2, 3))
    set_.add_argument("--snooze-minutes", type=int)
    set_.add_argument("--prompt", help="name of a custom prompt")
    set_.set_defaults(run=cmd_set)
    list_ = commands.add_parser("list", help="show wake-up calls")
    list_.add_argument("rooms", nargs="*", help="only these rooms")
    list_.set_defaults(run=cmd_list)
    cancel = commands.add_parser("cancel", help="delete wake-up calls")
    cancel.add_argument("room")
    cancel.add_argument("--id", type=int, nargs="+", help="only these wake-up calls")
    cancel.set_defaults(run=cmd_cancel)
    checkout = commands.add_parser("checkout", help="check the guest out")
    checkout.add_argument("room")
    checkout.set_defaults(run=cmd_checkout)
    return parser


async def main(argv: list[str] | None = None) -> int:
    """Run one command; 1 (with a one-line message) when the PBX refuses it."""
    args = _parser().parse_args(argv)
    async with YeastarClient.from_env() as client:
        try:
            await args.run(client, args)
        except (YeastarError, RoomNotFound) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
