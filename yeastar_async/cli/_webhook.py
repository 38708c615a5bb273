"""``webhook``: receive the PBX's webhook deliveries and print them as ``events`` does.

No PBX login: the receiver checks each delivery's ``X-Signature`` with the webhook's secret
(read from an environment variable, never from the command line, where ``ps`` would show it)
and prints the events, one line (or JSON object) each.
"""

from __future__ import annotations

import argparse
import asyncio
import os
from typing import Any

from .. import events
from ..webhooks import WebhookReceiver
from ._events import parse_topics
from ._format import event_json, format_event
from ._output import UsageError, err, out

#: The environment variable the secret is read from unless ``--secret-env`` names another.
DEFAULT_SECRET_ENV = "YEASTAR_WEBHOOK_SECRET"


def add_webhook_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``webhook``."""
    parser.add_argument("--port", type=int, required=True, help="TCP port to listen on")
    parser.add_argument(
        "--host",
        default="0.0.0.0",  # the PBX must reach it; every delivery is signed
        help="address to listen on (default: every interface, so that the PBX reaches it)",
    )
    parser.add_argument("--path", default="/", help="URL path of the webhook (default: /)")
    parser.add_argument(
        "--secret-env",
        default=DEFAULT_SECRET_ENV,
        metavar="NAME",
        help=f"environment variable holding the webhook's secret (default: {DEFAULT_SECRET_ENV})",
    )
    parser.add_argument(
        "--topics",
        type=parse_topics,
        metavar="N,N,...",
        help="print only these topics (default: every topic the PBX pushes)",
    )
    parser.add_argument("--json", action="store_true", help="one JSON object per line")
    parser.add_argument("--count", type=int, default=0, metavar="N", help="stop after N events")


async def cmd_webhook(args: argparse.Namespace) -> int:
    """``webhook``: print every delivered event until Ctrl-C (or ``--count`` events)."""
    secret = os.environ.get(args.secret_env, "")
    if not secret:
        raise UsageError(f"set the environment variable {args.secret_env} to the webhook's secret")
    if not 0 <= args.port <= 65535:
        raise UsageError(f"--port must be 0-65535, got {args.port}")
    if not args.path.startswith("/"):
        raise UsageError(f"--path must start with '/', got {args.path!r}")
    receiver = WebhookReceiver(secret=secret, topics=args.topics, path=args.path)
    printed = 0
    enough = asyncio.Event()

    async def show(event: Any) -> None:
        nonlocal printed
        if args.count and printed >= args.count:
            return
        out(event_json(event) if args.json else format_event(event))
        printed += 1
        if args.count and printed >= args.count:
            enough.set()

    # Every topic this library can name: the typed ones and those known by number only.
    for topic in args.topics or sorted({*events.TOPICS, *events.KNOWN_TOPICS}):
        receiver.stream.add_handler(topic, show)
    async with receiver, receiver.serve(args.host, args.port) as url:
        err(f"[status] receiving webhooks on {url} (register this URL on the PBX)")
        await enough.wait()
    return 0
