"""The argument parser, the command dispatch and the entry points :func:`main` / :func:`amain`."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from .._version import __version__
from ..errors import AuthenticationError, YeastarError
from ._commands import cmd_call_dial, cmd_call_hangup, cmd_recording_download
from ._connect import ENV_CLIENT_ID, ENV_CLIENT_SECRET, connection_parent
from ._demo import cmd_demo
from ._doctor import cmd_doctor
from ._events import cmd_events, parse_topics
from ._fake import cmd_fake_pbx
from ._output import PROG, UsageError, err, logging_to_stderr
from ._webhook import add_webhook_arguments, cmd_webhook

Command = Callable[[argparse.Namespace], Awaitable[int]]

#: After a rejected login. Each run is a new process, so the SDK's per-process count of
#: rejected logins starts again at 0 every time; the PBX's count does not.
AUTH_ADVICE = (
    f"Fix {ENV_CLIENT_ID} / {ENV_CLIENT_SECRET} (or --client-id / --client-secret) before "
    "running again: the PBX blocks this IP after 5 rejected logins in a row, counted across runs."
)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``yeastar-async`` (every command and option)."""
    conn = connection_parent()
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Command line for the Yeastar P-Series PBX OpenAPI (yeastar_async).",
        epilog=f"First time? Run '{PROG} demo': no PBX needed.",
        parents=[conn],
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument(
        "-v", "--verbose", action="count", default=0, help="more log output (-vv: debug)"
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def command(
        name: str,
        func: Command,
        help_text: str,
        *,
        pbx: bool = True,
        forever: bool = False,
        sub: Any = commands,
    ) -> argparse.ArgumentParser:
        p: argparse.ArgumentParser = sub.add_parser(
            name, help=help_text, description=help_text, parents=[conn] if pbx else []
        )
        p.set_defaults(func=func, runs_until_interrupted=forever)
        return p

    def group(name: str, help_text: str) -> Any:
        """A command whose actions are sub-commands (``call dial``): their set."""
        p = commands.add_parser(name, help=help_text, description=help_text)
        return p.add_subparsers(dest="action", metavar="ACTION", required=True)

    demo = command(
        "demo",
        cmd_demo,
        "run the fake PBX, the example screening bot and a few scripted calls",
        pbx=False,
    )
    demo.add_argument("--forever", action="store_true", help="keep running until Ctrl-C")

    tail = command("events", cmd_events, "print live events, one line each", forever=True)
    tail.add_argument(
        "--topics",
        type=parse_topics,
        metavar="N,N,...",
        help="topics to subscribe to (default: all of 30005-30026)",
    )
    tail.add_argument("--json", action="store_true", help="one JSON object per line")
    tail.add_argument("--count", type=int, default=0, metavar="N", help="stop after N events")

    hook = command(
        "webhook", cmd_webhook, "receive events by webhook, one line each", pbx=False, forever=True
    )
    add_webhook_arguments(hook)

    command(
        "doctor",
        cmd_doctor,
        "check reachability, TLS, login, API access, capacity and the WebSocket",
    )

    call_commands = group("call", "call control")
    dial = command("dial", cmd_call_dial, "start a call (call/dial)", sub=call_commands)
    dial.add_argument("caller", help="extension number (or IVR, ring group, queue)")
    dial.add_argument("callee", help="number to call")
    dial.add_argument("--auto-answer", action="store_true", help="the caller's phone auto-answers")
    hangup = command("hangup", cmd_call_hangup, "hang up a channel", sub=call_commands)
    hangup.add_argument("channel_id", help="e.g. PJSIP/2000-0000004f (from events or call/query)")

    rec_commands = group("recording", "recordings")
    download = command("download", cmd_recording_download, "download a recording", sub=rec_commands)
    download.add_argument("id", help="recording id, or its file name")
    download.add_argument("--out", required=True, metavar="PATH", help="file or directory")
    download.add_argument(
        "--retries", type=int, default=0, metavar="N", help="retry N times if not ready yet"
    )

    fake = command(
        "fake-pbx", cmd_fake_pbx, "run the fake PBX for manual testing", pbx=False, forever=True
    )
    fake.epilog = (
        "Without --client-secret every start prints a new secret and an exported "
        f"{ENV_CLIENT_SECRET} goes stale; give --client-id and --client-secret (and --port) to "
        "keep the same settings across restarts. The fake's secret is printed: it guards nothing."
    )
    fake.add_argument("--port", type=int, default=0, help="TCP port (default: a free one)")
    fake.add_argument("--host", default="127.0.0.1", help="address to listen on (loopback)")
    fake.add_argument(
        "--client-id",
        default="",
        metavar="ID",
        help="the client ID to accept (default: fake-client-id)",
    )
    fake.add_argument(
        "--client-secret",
        default="",
        metavar="SECRET",
        help="the client secret to accept (default: a new random one on every start)",
    )
    fake.add_argument(
        "--traffic", type=float, default=0.0, metavar="S", help="simulate a call every S seconds"
    )
    return parser


def _parse(argv: Sequence[str] | None) -> argparse.Namespace | int:
    """The parsed arguments, or the exit status when argparse ended (--help: 0, errors: 2)."""
    try:
        return build_parser().parse_args(argv)
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 2)


async def _run(args: argparse.Namespace) -> int:
    command: Command = args.func
    with logging_to_stderr(args.verbose):
        try:
            return await command(args)
        except UsageError as exc:
            err(f"{PROG}: error: {exc}")
            return 2
        except YeastarError as exc:
            err(f"error: {exc}")
            if isinstance(exc, AuthenticationError):
                err(AUTH_ADVICE)
            return 1
        except ValueError as exc:
            # The SDK checks a call's arguments before any I/O and raises ValueError (an empty
            # CHANNEL_ID: "give exactly one of channel_id, paging_number"): the user's input.
            # The commands turn the ValueErrors that come from a PBX answer into YeastarError.
            err(f"{PROG}: error: {exc}")
            return 2
        except (OSError, TimeoutError) as exc:
            err(f"error: {exc or type(exc).__name__}")
            return 1


async def _run_stoppable(args: argparse.Namespace) -> int:
    """:func:`_run`, also stopped cleanly by SIGTERM (service managers, ``docker stop``)."""
    task = asyncio.current_task()
    if task is not None and sys.platform != "win32":
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
    return await _run(args)


async def amain(argv: Sequence[str] | None = None) -> int:
    """Like :func:`main`, for a running event loop (tests, embedding); cancellation = Ctrl-C."""
    args = _parse(argv)
    if isinstance(args, int):
        return args
    return await _run(args)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``yeastar-async``: parse ``argv`` (default ``sys.argv[1:]``), run the
    command, return the exit status."""
    args = _parse(argv)
    if isinstance(args, int):
        return args
    try:
        return asyncio.run(_run_stoppable(args))
    except (KeyboardInterrupt, asyncio.CancelledError):
        # asyncio.run cancelled the command (its `async with` blocks closed the client / fake).
        if args.runs_until_interrupted or getattr(args, "forever", False):
            err("stopped")
            return 0
        err("interrupted")
        return 130
