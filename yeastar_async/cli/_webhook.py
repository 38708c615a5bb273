"""``webhook``: receive the PBX's webhook deliveries and print them as ``events`` does.

No PBX login: the receiver checks each delivery's ``X-Signature`` with the webhook's secret
(read from an environment variable, never from the command line, where ``ps`` would show it)
and prints the events, one line (or JSON object) each.
"""

from __future__ import annotations

import argparse
import ipaddress
import os

from yarl import URL

from .. import events
from ..webhooks import WebhookReceiver
from ._events import event_printer
from ._output import UsageError, err

#: The environment variable the secret is read from unless ``--secret-env`` names another.
DEFAULT_SECRET_ENV = "YEASTAR_WEBHOOK_SECRET"


def listening_line(url: str) -> str:
    """The status line for a receiver serving at ``url``, saying which URL the PBX needs:
    ``0.0.0.0`` (every interface, the default) is no address the PBX can post to."""
    parsed = URL(url)
    try:
        unspecified = ipaddress.ip_address(parsed.host or "").is_unspecified
    except ValueError:
        unspecified = False
    if not unspecified:
        return f"[status] receiving webhooks on {url} (register this URL on the PBX)"
    where = f"http://<this host's name or IP>:{parsed.port}{parsed.path}"
    return (
        f"[status] receiving webhooks on {url}, every interface of this host "
        f"(register {where} on the PBX)"
    )


async def cmd_webhook(args: argparse.Namespace) -> int:
    """``webhook``: print every delivered event until Ctrl-C (or ``--count`` events)."""
    secret = os.environ.get(args.secret_env, "")
    if not secret:
        raise UsageError(f"set the environment variable {args.secret_env} to the webhook's secret")
    if not args.path.startswith("/"):
        raise UsageError(f"--path must start with '/', got {args.path!r}")
    receiver = WebhookReceiver(secret=secret, topics=args.topics, path=args.path)
    show, enough = event_printer(as_json=args.json, count=args.count)
    # Every topic this library can name: the typed ones and those known by number only.
    for topic in args.topics or sorted({*events.TOPICS, *events.KNOWN_TOPICS}):
        receiver.stream.add_handler(topic, show)
    async with receiver, receiver.serve(args.host, args.port) as url:
        err(listening_line(url))
        await enough.wait()
    return 0
