"""``yeastar-async cec route list|modify``: the called routes of a Huawei Cloud CEC.

The CEC's address and credentials come from the environment (``CEC_DOMAIN``, ``CEC_APP_KEY``,
``CEC_APP_SECRET``; ``--domain`` overrides the first): a secret on a command line is visible to
other users. TLS: ``--ca-file PATH`` or ``--pin SHA256`` (env ``CEC_CA_FILE`` / ``CEC_PIN``).
"""

from __future__ import annotations

import argparse
import json
import os
from typing import Any, Final

import msgspec

from ..huawei_cec import CalledRoute, CalledRouteId, CecClient, DeviceType
from ._connect import positive_float, tls_option
from ._output import PROG, UsageError, out

__all__ = ["ENV_APP_KEY", "ENV_APP_SECRET", "ENV_DOMAIN", "add_cec_commands"]

ENV_DOMAIN: Final = "CEC_DOMAIN"
ENV_APP_KEY: Final = "CEC_APP_KEY"
ENV_APP_SECRET: Final = "CEC_APP_SECRET"
ENV_CA_FILE: Final = "CEC_CA_FILE"
ENV_PIN: Final = "CEC_PIN"

_DEVICE_NAMES: Final = {"queue": DeviceType.SKILL_QUEUE, "ivr": DeviceType.IVR}


def add_cec_commands(commands: Any) -> None:
    """Add ``cec route list`` and ``cec route modify`` to the parser's ``commands``."""
    cec = commands.add_parser(
        "cec",
        help="Huawei Cloud CEC called routes",
        description="Huawei Cloud CEC called routes (credentials from the environment: "
        f"{ENV_DOMAIN}, {ENV_APP_KEY}, {ENV_APP_SECRET}).",
    )
    groups = cec.add_subparsers(dest="cec_group", metavar="GROUP", required=True)
    route_help = "called routes (access code -> skill queue / IVR)"
    route = groups.add_parser("route", help=route_help, description=f"{route_help}: list, modify")
    actions = route.add_subparsers(dest="action", metavar="ACTION", required=True)

    list_help = "list called routes (every page)"
    listing = actions.add_parser("list", help=list_help, description=list_help)
    listing.add_argument("--access-code", metavar="CODE", help="only this access code")
    listing.add_argument("--ext-code", metavar="CODE", help="only this extension code")
    listing.add_argument("--device-type", choices=sorted(_DEVICE_NAMES), help="queue or ivr")
    listing.add_argument("--json", action="store_true", help="one JSON object per line")
    _connection(listing)
    listing.set_defaults(func=cmd_route_list, runs_until_interrupted=False)

    modify_help = "point a called route at a skill queue or an IVR (by route id)"
    modify = actions.add_parser("modify", help=modify_help, description=modify_help)
    modify.add_argument("route_id", help="the route's id (from 'list'; not its dnid)")
    target = modify.add_mutually_exclusive_group(required=True)
    target.add_argument("--queue", type=int, metavar="ID", help="skill queue id")
    target.add_argument("--ivr", type=int, metavar="ID", help="IVR id")
    _connection(modify)
    modify.set_defaults(func=cmd_route_modify, runs_until_interrupted=False)


def _connection(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("CEC connection")
    group.add_argument("--domain", metavar="HOST", help=f"the CEC's host name (env {ENV_DOMAIN})")
    # Own dests: the top-level parser has Yeastar flags of the same names.
    group.add_argument(
        "--timeout",
        dest="cec_timeout",
        type=positive_float,
        default=30.0,
        metavar="S",
        help="request timeout in seconds",
    )
    tls = group.add_mutually_exclusive_group()
    tls.add_argument(
        "--ca-file", dest="cec_ca_file", metavar="PATH", help=f"CA file (env {ENV_CA_FILE})"
    )
    tls.add_argument(
        "--pin",
        dest="cec_pin",
        metavar="SHA256",
        help=f"trust exactly the certificate with this SHA-256 fingerprint (env {ENV_PIN})",
    )


def _env(name: str) -> str:
    value = os.environ.get(name, "")
    if not value:
        raise UsageError(f"set {name} (the CEC credentials are read from the environment)")
    return value


def make_cec_client(args: argparse.Namespace) -> CecClient:
    """The CecClient the environment and flags describe."""
    domain = args.domain or _env(ENV_DOMAIN)
    return CecClient(
        domain,
        _env(ENV_APP_KEY),
        _env(ENV_APP_SECRET),
        ssl=tls_option(
            pin=args.cec_pin, ca_file=args.cec_ca_file, env_pin=ENV_PIN, env_ca_file=ENV_CA_FILE
        ),
        timeout=args.cec_timeout,
    )


def _line(route: CalledRoute) -> str:
    kind = {1: "queue", 3: "ivr"}.get(route.device_type or 0, f"type {route.device_type}")
    ext = f" ext {route.ext_code}" if route.ext_code else ""
    desc = f" ({route.device_desc})" if route.device_desc else ""
    return (
        f"{route.id}  dnid {route.dnid}  {route.access_code}{ext} -> {kind} {route.device_id}{desc}"
    )


async def cmd_route_list(args: argparse.Namespace) -> int:
    """``cec route list``: every matching route, one line each."""
    device = _DEVICE_NAMES[args.device_type] if args.device_type else None
    async with make_cec_client(args) as cec:
        count = 0
        async for route in cec.called_route.query(
            access_code=args.access_code, ext_code=args.ext_code, device_type=device
        ):
            count += 1
            if args.json:
                out(json.dumps(msgspec.structs.asdict(route), ensure_ascii=False))
            else:
                out(_line(route))
    if not args.json and count == 0:
        out("no called routes match")
    return 0


async def cmd_route_modify(args: argparse.Namespace) -> int:
    """``cec route modify ROUTE_ID --queue N | --ivr N``."""
    device_type = DeviceType.SKILL_QUEUE if args.queue is not None else DeviceType.IVR
    device_id = args.queue if args.queue is not None else args.ivr
    route_id = str(args.route_id).strip()
    if not route_id:
        raise UsageError(f"{PROG} cec route modify: ROUTE_ID is empty")
    async with make_cec_client(args) as cec:
        result = await cec.called_route.modify(
            route_id=CalledRouteId(route_id), device_type=device_type, device_id=device_id
        )
    kind = "queue" if device_type is DeviceType.SKILL_QUEUE else "ivr"
    out(f"route {route_id} -> {kind} {device_id}: {result.description or 'done'}")
    return 0
