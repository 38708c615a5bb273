"""Multi-tenant: one process, one client and event stream per customer PBX, one set of handlers.

An integrator (a CRM, a call-analytics service) serves many customers, each with a PBX of their
own. This script reads the tenants from a file, builds one :class:`~yeastar_async.YeastarClient`
per tenant, and registers the same handlers on every client, each bound to its tenant's name:
every event a handler sees comes with the tenant it belongs to. A tenant whose PBX is down only
reconnects (with backoff); one whose credentials are rejected stops alone, logged, and the
others go on.

The tenants file is JSON, a list of objects (keep it private: ``chmod 600``)::

    [
      {"tenant": "acme", "base_url": "https://pbx.acme.example:8088",
       "client_id": "...", "client_secret": "...", "ssl": "<sha256 fingerprint>"},
      {"tenant": "globex", "base_url": "https://globex.ras.yeastar.com",
       "client_id": "...", "client_secret": "..."}
    ]

``ssl`` is optional (a SHA-256 certificate fingerprint to pin, or a CA file path). Each stream
holds one socket, two while its client has a REST call open: the script raises the process's
soft descriptor limit to its hard limit at start (see the README's "Scaling out").

Run it::

    python examples/multi_tenant.py --tenants tenants.json

PBX prerequisites, per tenant: the API enabled under Integrations > API (this host on its IP
allow list, if one is set); trunk call monitoring for the trunk legs of 30011.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import stat
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from yeastar_async import YeastarClient, events
from yeastar_async.errors import AuthenticationError, IPBlockedError

__all__ = ["Tenant", "TenantHandler", "load_tenants", "main", "run"]

logger = logging.getLogger("multi_tenant")


@dataclass(frozen=True)
class Tenant:
    """One customer: a name and its PBX's address and credentials."""

    tenant: str
    base_url: str
    client_id: str
    client_secret: str
    ssl: str | None = None

    def __repr__(self) -> str:  # the secret never in a log line
        return f"Tenant({self.tenant!r}, {self.base_url!r})"


_FIELDS = ("tenant", "base_url", "client_id", "client_secret")


def load_tenants(path: Path) -> list[Tenant]:
    """The tenants of a JSON file; :class:`ValueError` naming the entry and field at fault."""
    mode = path.stat().st_mode
    if mode & (stat.S_IRGRP | stat.S_IROTH):
        logger.warning("%s holds API secrets and is readable by others: chmod 600 it", path)
    entries = json.loads(path.read_text("utf-8"))
    if not isinstance(entries, list) or not entries:
        raise ValueError(f"{path}: expected a non-empty JSON list of tenants")
    tenants: list[Tenant] = []
    for i, entry in enumerate(entries):
        if not isinstance(entry, dict):
            raise ValueError(f"{path}: entry {i} is not an object")
        missing = [name for name in _FIELDS if not isinstance(entry.get(name), str)]
        if missing:
            raise ValueError(f"{path}: entry {i} lacks {', '.join(missing)} (text)")
        tls = entry.get("ssl")
        tenants.append(Tenant(*(entry[name] for name in _FIELDS), ssl=tls))
    names = [t.tenant for t in tenants]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise ValueError(f"{path}: tenant names must be unique, repeated: {duplicates}")
    return tenants


#: A handler of the shared set: the tenant's name, then the event.
TenantFn = Callable[[str, Any], Awaitable[object]]


class TenantHandler:
    """An event handler for one client: calls ``fn(tenant, event)``."""

    def __init__(self, tenant: str, fn: TenantFn) -> None:
        self.tenant = tenant
        self.fn = fn

    async def __call__(self, event: Any) -> None:
        await self.fn(self.tenant, event)

    def __repr__(self) -> str:
        return f"<{getattr(self.fn, '__qualname__', self.fn)} of {self.tenant}>"


class Printer:
    """The shared handler set of this script: one line per event, the tenant first."""

    def __init__(self, limit: int | None = None) -> None:
        self.lines: list[str] = []
        self._left = limit
        self.done = asyncio.Event()

    def handlers(self) -> dict[type[Any], TenantFn]:
        """Event class -> handler: registered on every tenant's client."""
        return {
            events.NewCdr: self.on_cdr,
            events.Connected: self.on_connected,
            events.Disconnected: self.on_disconnected,
        }

    def say(self, line: str) -> None:
        """Print ``line`` and count it towards the limit."""
        self.lines.append(line)
        print(line, flush=True)

    async def on_cdr(self, tenant: str, event: events.NewCdr) -> None:
        """A call of ``tenant`` ended."""
        cdr = event.msg
        self.say(
            f"{tenant}: call {cdr.call_id} {cdr.call_from} -> {cdr.call_to}, "
            f"{cdr.status or '?'}, {cdr.talk_duration} s talk"
        )
        if self._left is not None:
            self._left -= 1
            if self._left <= 0:
                self.done.set()

    async def on_connected(self, tenant: str, event: events.Connected) -> None:
        """``tenant``'s stream is up (again)."""
        logger.info("%s: %s", tenant, "reconnected" if event.reconnect else "connected")

    async def on_disconnected(self, tenant: str, event: events.Disconnected) -> None:
        """``tenant``'s stream is down; it reconnects by itself."""
        logger.info("%s: link lost (%s)", tenant, event.reason)


def raise_fd_limit() -> int:
    """The soft descriptor limit raised to the hard limit; returns the new soft limit."""
    try:
        import resource
    except ImportError:  # Windows: no such limit to raise
        return -1
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
    return soft


async def _listen(tenant: str, client: YeastarClient) -> None:
    try:
        await client.listen()
    except (AuthenticationError, IPBlockedError) as exc:
        # This tenant's credentials or IP need fixing; the others go on.
        logger.error("%s: stopped: %s", tenant, exc)


async def run(tenants: list[Tenant], printer: Printer) -> None:
    """One client per tenant, the printer's handlers on each, until ``printer.done`` is set."""
    clients = {
        t.tenant: YeastarClient(t.base_url, t.client_id, t.client_secret, ssl=t.ssl)
        for t in tenants
    }
    for name, client in clients.items():
        for event_class, fn in printer.handlers().items():
            client.add_handler(event_class, TenantHandler(name, fn))
    try:
        async with asyncio.TaskGroup() as group:
            for name, client in clients.items():
                group.create_task(_listen(name, client))
            await printer.done.wait()
            for client in clients.values():  # listen() returns once its client is closed
                group.create_task(client.aclose())
    finally:
        await asyncio.gather(*(c.aclose() for c in clients.values()))


async def main(argv: list[str] | None = None) -> int:
    """Command line entry point; returns the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--tenants", type=Path, required=True, help="the tenants JSON file")
    parser.add_argument("--limit", type=int, help="stop after this many CDRs (all tenants)")
    args = parser.parse_args(argv)
    try:
        tenants = load_tenants(args.tenants)
    except (OSError, ValueError) as exc:
        print(f"multi_tenant: {exc}", file=sys.stderr)
        return 2
    limit = raise_fd_limit()
    logger.info("%d tenants; descriptor limit %s", len(tenants), limit)
    await run(tenants, Printer(args.limit))
    return 0


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    with contextlib.suppress(KeyboardInterrupt):
        sys.exit(asyncio.run(main()))
