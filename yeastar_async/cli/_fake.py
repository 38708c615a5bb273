"""``fake-pbx``: the simulator on this machine, for trying the SDK and the CLI by hand."""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
from typing import Any

from .._firmware import parse_firmware
from ._connect import ENV_BASE_URL, ENV_CLIENT_ID, ENV_CLIENT_SECRET
from ._output import PROG, err, out


def print_fake_credentials(pbx: Any) -> None:
    """How to connect another terminal to the fake ``pbx``: its address and credentials."""
    # It is a fake: its generated secret is printed so another terminal can connect.
    out(f"  base_url       {pbx.base_url}")
    out(f"  client id      {pbx.client_id}")
    out(f"  client secret  {pbx.client_secret}")
    out("Connect another terminal with:")
    out(
        f"  export {ENV_BASE_URL}={pbx.base_url} {ENV_CLIENT_ID}={pbx.client_id} "
        f"{ENV_CLIENT_SECRET}={pbx.client_secret}"
    )
    out(f"  {PROG} events")


def firmware_version(text: str) -> str:
    """argparse type of ``--firmware``: a P-Series version (``83`` / ``37`` / ``84.x.y.z``)."""
    firmware = parse_firmware(text)
    if firmware is None or firmware.edition is None:
        raise argparse.ArgumentTypeError(
            f"not a P-Series firmware version (83, 37 or 84 first, e.g. 84.23.0.123): {text!r}"
        )
    return str(firmware)


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


async def cmd_fake_pbx(args: argparse.Namespace) -> int:
    """``fake-pbx``: run the simulator until Ctrl-C, printing how to connect to it."""
    from ..testing import FakePBX  # imported on use: the other commands never need the server

    if not _is_loopback(args.host):
        err(f"{PROG}: warning: the fake PBX accepts anyone who can reach {args.host}")
    options: dict[str, Any] = {"host": args.host, "port": args.port}
    if args.client_id:
        options["client_id"] = args.client_id
    if args.client_secret:
        options["client_secret"] = args.client_secret
    if args.firmware:
        options["firmware"] = args.firmware
    async with FakePBX(ring_time=1.0, talk_time=3.0, **options) as pbx:
        out("FakePBX running (press Ctrl-C to stop)")
        if args.firmware:
            out(f"  firmware       {args.firmware}")
        print_fake_credentials(pbx)
        traffic = args.traffic
        if traffic:
            out(f"Simulating a call every {traffic:g} s.")
        while True:
            if not traffic:
                await asyncio.Event().wait()  # until cancelled (Ctrl-C)
            await asyncio.sleep(traffic)
            pbx.simulate_dial("2000", "2001")
