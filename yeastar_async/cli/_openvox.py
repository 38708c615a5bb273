"""``yeastar-async openvox inroute|outroute list|add|update|delete``: OpenVox UC routes.

The PBX address and user come from ``--base-url`` / ``--username`` or ``OPENVOX_BASE_URL`` /
``OPENVOX_USERNAME``; the password only from ``OPENVOX_PASSWORD`` (a command line is visible to
other users). TLS: ``--pin`` / ``--ca-file`` (or ``OPENVOX_PIN`` / ``OPENVOX_CA_FILE``), or
``--insecure``. ``update`` starts from the route's current settings, so only the flags given
change; an outbound route is found by name (the API wants its id, which the command looks up).
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Final

import msgspec

from ..openvox import (
    DEST_TYPES,
    MAX_REJECTED,
    InboundRoute,
    OpenVoxAuthError,
    OpenVoxClient,
    OutboundRoute,
)
from ._connect import positive_float, tls_option
from ._output import UsageError, err, out

__all__ = ["ENV_BASE_URL", "ENV_PASSWORD", "ENV_USERNAME", "add_openvox_commands"]

ENV_BASE_URL: Final = "OPENVOX_BASE_URL"
ENV_USERNAME: Final = "OPENVOX_USERNAME"
ENV_PASSWORD: Final = "OPENVOX_PASSWORD"
ENV_PIN: Final = "OPENVOX_PIN"
ENV_CA_FILE: Final = "OPENVOX_CA_FILE"

#: Shown under every action's help (argparse does not carry a parent parser's epilog over).
PASSWORD_EPILOG: Final = f"The password is read from {ENV_PASSWORD} only."

AUTH_ADVICE: Final = (
    f"Fix {ENV_USERNAME} / {ENV_PASSWORD} before running again: the OpenVox PBX locks this IP "
    "for 10 minutes after 5 wrong passwords in a row, counted across runs (so are they here: "
    f"after {MAX_REJECTED} in a row no run sends another until a login succeeds or 10 minutes "
    "pass)."
)

Action = Callable[[OpenVoxClient, argparse.Namespace], Awaitable[int]]


def add_openvox_commands(commands: Any) -> None:
    """Add ``openvox`` and its sub-commands to the main parser's sub-command set."""
    conn = _connection_parent()
    top = commands.add_parser(
        "openvox",
        help="inbound and outbound routes on an OpenVox UC IPPBX",
        description=(
            f"Routes on an OpenVox UC IPPBX (API v0.0.1). Address and user from --base-url / "
            f"--username or {ENV_BASE_URL} / {ENV_USERNAME}; the password from {ENV_PASSWORD}."
        ),
    )
    kinds = top.add_subparsers(dest="openvox_kind", metavar="ROUTES", required=True)

    def action(sub: Any, name: str, func: Action, help_text: str) -> argparse.ArgumentParser:
        p: argparse.ArgumentParser = sub.add_parser(
            name, help=help_text, description=help_text, epilog=PASSWORD_EPILOG, parents=[conn]
        )

        async def run(args: argparse.Namespace) -> int:
            return await _connected(args, func)

        p.set_defaults(func=run, runs_until_interrupted=False)
        return p

    inroute = kinds.add_parser(
        "inroute", help="inbound routes", description="inbound routes: list, add, update, delete"
    ).add_subparsers(dest="action", metavar="ACTION", required=True)
    listing = action(inroute, "list", _in_list, "list inbound routes (all, or those named)")
    listing.add_argument("names", nargs="*", metavar="NAME", help="route names (default: all)")
    listing.add_argument("--json", action="store_true", help="one JSON object per line")
    for name, func, help_text in (
        ("add", _in_add, "add an inbound route"),
        ("update", _in_update, "change an inbound route (unchanged flags keep their value)"),
    ):
        p = action(inroute, name, func, help_text)
        p.add_argument("name", metavar="NAME", help="the route's name")
        required = name == "add"
        p.add_argument(
            "--desttype", choices=sorted(DEST_TYPES), required=required, help="where calls go"
        )
        p.add_argument("--dest", required=required, help="extension, queue number ...")
        p.add_argument("--did", help="DID pattern")
        p.add_argument("--caller-id", dest="caller_id", help="caller ID pattern")
    delete = action(inroute, "delete", _in_delete, "delete inbound routes")
    delete.add_argument("names", nargs="+", metavar="NAME", help="route names, or 'all'")

    outroute = kinds.add_parser(
        "outroute", help="outbound routes", description="outbound routes: list, add, update, delete"
    ).add_subparsers(dest="action", metavar="ACTION", required=True)
    listing = action(outroute, "list", _out_list, "list outbound routes (all, or those named)")
    listing.add_argument("names", nargs="*", metavar="NAME", help="route names (default: all)")
    listing.add_argument("--json", action="store_true", help="one JSON object per line")
    for name, func, help_text in (
        ("add", _out_add, "add an outbound route"),
        ("update", _out_update, "change an outbound route (unchanged flags keep their value)"),
    ):
        p = action(outroute, name, func, help_text)
        p.add_argument("name", metavar="NAME", help="the route's name")
        required = name == "add"
        p.add_argument("--matchpattern", required=required, help="e.g. X.")
        p.add_argument("--trunks", required=required, metavar="T1,T2", help="trunk names")
        p.add_argument("--prefix", help="digits stripped before the trunk")
        p.add_argument("--prepend", help="digits added before the trunk")
        p.add_argument("--callerid", help="caller ID pattern")
        if name == "update":
            p.add_argument("--rename", metavar="NEW", help="a new name for the route")
    delete = action(outroute, "delete", _out_delete, "delete outbound routes")
    delete.add_argument("names", nargs="+", metavar="NAME", help="route names, or 'all'")


def _connection_parent() -> argparse.ArgumentParser:
    parent = argparse.ArgumentParser(add_help=False)
    group = parent.add_argument_group("OpenVox connection (flags override the environment)")
    group.add_argument(
        "--base-url", dest="ov_base_url", metavar="URL", help=f"https://pbx (env {ENV_BASE_URL})"
    )
    group.add_argument(
        "--username", dest="ov_username", metavar="USER", help=f"API user (env {ENV_USERNAME})"
    )
    group.add_argument(
        "--format",
        dest="ov_format",
        choices=("json", "xml"),
        default="json",
        help="wire format (default json)",
    )
    group.add_argument(
        "--timeout",
        dest="ov_timeout",
        type=positive_float,
        metavar="S",
        default=30.0,
        help="request timeout in seconds (default 30)",
    )
    tls = group.add_mutually_exclusive_group()
    tls.add_argument(
        "--pin",
        dest="ov_pin",
        metavar="SHA256",
        help=f"trust exactly the certificate with this SHA-256 fingerprint (env {ENV_PIN})",
    )
    tls.add_argument(
        "--ca-file",
        dest="ov_ca_file",
        metavar="PATH",
        help=f"verify against this CA (env {ENV_CA_FILE})",
    )
    tls.add_argument(
        "--insecure",
        dest="ov_insecure",
        action="store_true",
        help="no certificate verification (avoid: use --pin)",
    )
    return parent


def _setting(value: str | None, env: str, flag: str) -> str:
    value = value or os.environ.get(env, "")
    if not value:
        raise UsageError(f"missing {flag} (or set {env})")
    return value


async def _connected(args: argparse.Namespace, action: Action) -> int:
    """Run ``action`` with a logged-in client; a refused login is one line plus advice."""
    base_url = _setting(args.ov_base_url, ENV_BASE_URL, "--base-url")
    username = _setting(args.ov_username, ENV_USERNAME, "--username")
    password = os.environ.get(ENV_PASSWORD, "")
    if not password:
        raise UsageError(f"set {ENV_PASSWORD} (the password is never taken from the command line)")
    try:
        client = OpenVoxClient(
            base_url,
            username,
            password,
            fmt=args.ov_format,
            ssl=tls_option(
                pin=args.ov_pin,
                ca_file=args.ov_ca_file,
                env_pin=ENV_PIN,
                env_ca_file=ENV_CA_FILE,
                insecure=args.ov_insecure,
            ),
            timeout=args.ov_timeout,
            connect_timeout=min(args.ov_timeout, 10.0),
        )
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    try:
        async with client:
            return await action(client, args)
    except OpenVoxAuthError as exc:
        err(f"error: {exc}")
        err(AUTH_ADVICE)
        return 1


def _names(names: Sequence[str]) -> list[str] | str:
    """Names as typed: ``a b``, ``a,b`` or ``all``."""
    split = [part for name in names for part in name.split(",") if part]
    return split or "all"


def _print_routes(routes: Sequence[InboundRoute | OutboundRoute], as_json: bool) -> None:
    if as_json:
        for route in routes:
            out(msgspec.json.encode(route).decode())
        return
    if not routes:
        out("(no routes)")
        return
    fields = msgspec.structs.fields(routes[0])
    rows = [[f.name for f in fields]]
    rows += [["" if v is None else str(v) for v in msgspec.structs.astuple(r)] for r in routes]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        out("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())


async def _in_list(client: OpenVoxClient, args: argparse.Namespace) -> int:
    _print_routes(await client.inroute.query(_names(args.names)), args.json)
    return 0


async def _in_add(client: OpenVoxClient, args: argparse.Namespace) -> int:
    await client.inroute.add(
        args.name, desttype=args.desttype, dest=args.dest, did=args.did, caller_id=args.caller_id
    )
    out(f"added inbound route {args.name}")
    return 0


async def _in_update(client: OpenVoxClient, args: argparse.Namespace) -> int:
    routes = await client.inroute.query(args.name)
    current = routes[0] if routes else None
    if current is None:
        raise UsageError(f"no inbound route named {args.name!r}")
    await client.inroute.update(
        args.name,
        desttype=args.desttype or current.desttype,
        dest=args.dest if args.dest is not None else current.dest,
        did=args.did,
        caller_id=args.caller_id,
    )
    out(f"updated inbound route {args.name}")
    return 0


async def _in_delete(client: OpenVoxClient, args: argparse.Namespace) -> int:
    await client.inroute.delete(_names(args.names))
    out(f"deleted inbound routes: {', '.join(args.names)}")
    return 0


async def _out_list(client: OpenVoxClient, args: argparse.Namespace) -> int:
    _print_routes(await client.outroute.query(_names(args.names)), args.json)
    return 0


async def _out_add(client: OpenVoxClient, args: argparse.Namespace) -> int:
    await client.outroute.add(
        args.name,
        matchpattern=args.matchpattern,
        trunks=args.trunks,
        prefix=args.prefix,
        prepend=args.prepend,
        callerid=args.callerid,
    )
    out(f"added outbound route {args.name}")
    return 0


async def _out_update(client: OpenVoxClient, args: argparse.Namespace) -> int:
    routes = await client.outroute.query(args.name)
    current = routes[0] if routes else None
    if current is None or current.id is None:
        raise UsageError(f"no outbound route named {args.name!r} (with an id)")
    await client.outroute.update(
        current.id,
        args.rename or args.name,
        matchpattern=args.matchpattern or current.matchpattern,
        trunks=args.trunks or current.trunks,
        prefix=args.prefix,
        prepend=args.prepend,
        callerid=args.callerid,
    )
    out(f"updated outbound route {args.rename or args.name}")
    return 0


async def _out_delete(client: OpenVoxClient, args: argparse.Namespace) -> int:
    await client.outroute.delete(_names(args.names))
    out(f"deleted outbound routes: {', '.join(args.names)}")
    return 0
