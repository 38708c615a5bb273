"""The argument parser, the command dispatch and the entry points :func:`main` / :func:`amain`."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import signal
import sys
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Final, NoReturn

from .._fds import advice as fd_advice
from .._fds import out_of_fds
from .._version import __version__
from ..errors import AuthenticationError, LockoutGuardError, YeastarError
from ._cec import add_cec_commands
from ._commands import (
    CALL_TYPES,
    cmd_call_dial,
    cmd_call_hangup,
    cmd_call_query,
    cmd_recording_download,
)
from ._connect import ENV_CLIENT_ID, ENV_CLIENT_SECRET, connection_parent
from ._demo import cmd_demo
from ._doctor import cmd_doctor
from ._events import cmd_events, parse_topics, topics_help
from ._fake import cmd_fake_pbx, firmware_version
from ._openvox import add_openvox_commands
from ._output import PROG, OutputClosed, UsageError, err, logging_to_stderr
from ._relay import RELAY_ARGS, RELAY_HELP, cmd_relay
from ._webhook import DEFAULT_SECRET_ENV, cmd_webhook

Command = Callable[[argparse.Namespace], Awaitable[int]]

#: After a rejected login. The SDK's count of rejected logins is kept across runs (its state
#: file), and so is the PBX's: another run with the same credentials only brings the block nearer.
AUTH_ADVICE = (
    f"Fix {ENV_CLIENT_ID} / {ENV_CLIENT_SECRET} (or --client-id / --client-secret) before "
    "running again: the PBX blocks this IP after 5 rejected logins in a row, counted across runs."
)

#: After the lockout guard refused to log in: nothing was sent, and right credentials alone may
#: not be enough (after 4 rejections in a row of any credentials, no run logs in until the state
#: file is deleted), so "fix the credentials and run again" would send the user round in circles.
LOCKOUT_ADVICE = (
    f"No login was sent. Fix {ENV_CLIENT_ID} / {ENV_CLIENT_SECRET} (or --client-id / "
    "--client-secret) and do as the error says: after 4 rejected logins in a row to this PBX no "
    "run logs in until the state file it names is deleted ('yeastar-async doctor' shows the count)."
)

#: Exit statuses: 128 + the signal's number, the shell's convention.
EXIT_INTERRUPTED: Final = 128 + signal.SIGINT
EXIT_TERMINATED: Final = 128 + signal.SIGTERM


@dataclass(frozen=True)
class Arg:
    """One argument of a command: ``add_argument``'s flags (or name) and keywords."""

    flags: tuple[str, ...]
    options: dict[str, Any]


def arg(*flags: str, **options: Any) -> Arg:
    """An :class:`Arg` (reads like ``add_argument``)."""
    return Arg(flags, options)


@dataclass(frozen=True)
class Spec:
    """One command of the table: ``"events"``, or ``"call dial"`` for an action of a group.

    ``pbx``: it takes the connection flags; ``forever``: it runs until stopped (SIGTERM then
    exits 0: a service manager's normal stop).
    """

    name: str
    func: Command
    help: str
    args: tuple[Arg, ...] = ()
    pbx: bool = True
    forever: bool = False
    epilog: str | None = None


def port_number(text: str) -> int:
    """argparse type: a TCP port, 0-65535 (0: a free one)."""
    if not text.isascii() or not text.isdigit() or int(text) > 65535:
        raise argparse.ArgumentTypeError(f"not a TCP port (0-65535): {text!r}")
    return int(text)


def count(text: str) -> int:
    """argparse type: a whole number >= 1."""
    if not text.isascii() or not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number >= 1: {text!r}")
    return int(text)


def retries(text: str) -> int:
    """argparse type: a whole number >= 0."""
    if not text.isascii() or not text.isdigit():
        raise argparse.ArgumentTypeError(f"must be a whole number >= 0: {text!r}")
    return int(text)


#: The shortest ``fake-pbx --traffic`` interval: a call every 10 ms is already a stress test.
MIN_TRAFFIC: Final = 0.01


def traffic_interval(text: str) -> float:
    """argparse type of ``--traffic``: 0 (off) or seconds >= :data:`MIN_TRAFFIC`."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if value != 0 and not MIN_TRAFFIC <= value < math.inf:
        raise argparse.ArgumentTypeError(f"must be 0 (off) or {MIN_TRAFFIC} s or more: {text!r}")
    return value


#: Help lines of the command groups (a command named "group action" belongs to one).
GROUPS: Final = {"call": "call control", "recording": "recordings"}

#: Every command, in the order ``--help`` lists them. A new command is one entry here.
COMMANDS: Final[tuple[Spec, ...]] = (
    Spec(
        "demo",
        cmd_demo,
        "run the fake PBX, the example screening bot and a few scripted calls",
        (arg("--forever", action="store_true", help="keep running until Ctrl-C"),),
        pbx=False,
    ),
    Spec(
        "events",
        cmd_events,
        "print live events, one line each (calls with their channel IDs)",
        (
            arg("--topics", type=parse_topics, metavar="N,N,...", help=topics_help()),
            arg("--json", action="store_true", help="one JSON object per line"),
            arg("--count", type=count, metavar="N", help="stop after N events"),
        ),
        forever=True,
    ),
    Spec("relay", cmd_relay, RELAY_HELP, tuple(arg(*f, **o) for f, o in RELAY_ARGS), forever=True),
    Spec(
        "webhook",
        cmd_webhook,
        "receive events by webhook and print them, one line each (no PBX login)",
        (
            arg("--port", type=port_number, required=True, help="TCP port to listen on"),
            # Every interface by default: the PBX must reach it (every delivery is signed).
            arg("--host", default="0.0.0.0", help="address to listen on (default: all)"),
            arg("--path", default="/", help="URL path of the webhook (default: /)"),
            arg(
                "--secret-env",
                default=DEFAULT_SECRET_ENV,
                metavar="NAME",
                help=f"variable holding the webhook's secret (default: {DEFAULT_SECRET_ENV})",
            ),
            arg("--topics", type=parse_topics, metavar="N,N,...", help="print only these topics"),
            arg("--json", action="store_true", help="one JSON object per line"),
            arg("--count", type=count, metavar="N", help="stop after N events"),
        ),
        pbx=False,
        forever=True,
    ),
    Spec(
        "doctor",
        cmd_doctor,
        "check reachability, TLS, login, API access, capacity and the WebSocket",
    ),
    Spec(
        "call query",
        cmd_call_query,
        "list the live calls with their members' channel IDs (call/query)",
        (
            arg("--call-id", metavar="ID", help="only this call"),
            arg("--type", choices=CALL_TYPES, help="only calls of this type"),
            arg("--number", metavar="EXT", help="only calls of this extension"),
        ),
    ),
    Spec(
        "call dial",
        cmd_call_dial,
        "start a call (call/dial)",
        (
            arg("caller", help="extension number (or IVR, ring group, queue)"),
            arg("callee", help="number to call"),
            arg("--auto-answer", action="store_true", help="the caller's phone auto-answers"),
        ),
    ),
    Spec(
        "call hangup",
        cmd_call_hangup,
        "hang up a channel",
        (arg("channel_id", help="e.g. PJSIP/2000-0000004f (shown by events and call query)"),),
    ),
    Spec(
        "recording download",
        cmd_recording_download,
        "download a recording",
        (
            arg("id", help="recording id, or its file name"),
            arg("--out", required=True, metavar="PATH", help="file or directory"),
            arg(
                "--retries",
                type=retries,
                default=0,
                metavar="N",
                help="retry N times if not ready yet",
            ),
        ),
    ),
    Spec(
        "fake-pbx",
        cmd_fake_pbx,
        "run the fake PBX for manual testing",
        (
            arg("--port", type=port_number, default=0, help="TCP port (default: a free one)"),
            arg("--host", default="127.0.0.1", help="address to listen on (loopback)"),
            arg(
                "--client-id",
                default="",
                metavar="ID",
                help="the client ID to accept (default: fake-client-id)",
            ),
            arg(
                "--client-secret",
                default="",
                metavar="SECRET",
                help="the client secret to accept (default: a new random one on every start)",
            ),
            arg(
                "--traffic",
                type=traffic_interval,
                default=0.0,
                metavar="S",
                help=f"simulate a call every S seconds (S >= {MIN_TRAFFIC})",
            ),
            arg(
                "--firmware",
                type=firmware_version,
                default=None,  # not "": argparse would run the type on a string default
                metavar="VERSION",
                help="the firmware to behave as, e.g. 84.23.0.123 for API v2.0 CDRs and reports "
                "(default: the manual's, the April 2024 API)",
            ),
        ),
        pbx=False,
        forever=True,
        epilog=(
            "Without --client-secret every start prints a new secret and an exported "
            f"{ENV_CLIENT_SECRET} goes stale; give --client-id and --client-secret (and --port) "
            "to keep the same settings across restarts. The fake's secret is printed: it guards "
            "nothing."
        ),
    ),
)


class _Parser(argparse.ArgumentParser):
    """argparse's parser with one-line errors (``yeastar-async: error: ...``), like the errors
    the commands print themselves; ``--help`` shows the usage."""

    def error(self, message: str) -> NoReturn:
        command = self.prog.removeprefix(PROG).strip()
        where = f"{PROG} {command} --help" if command else f"{PROG} --help"
        self.exit(2, f"{PROG}: error: {message} (see {where})\n")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``yeastar-async`` (every command of :data:`COMMANDS`)."""
    conn = connection_parent()
    parser = _Parser(
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
    groups: dict[str, Any] = {}
    for spec in COMMANDS:
        sub: Any = commands
        group, _, name = spec.name.rpartition(" ")
        if group:
            if group not in groups:
                p = commands.add_parser(group, help=GROUPS[group], description=GROUPS[group])
                groups[group] = p.add_subparsers(dest="action", metavar="ACTION", required=True)
            sub = groups[group]
        command: argparse.ArgumentParser = sub.add_parser(
            name,
            help=spec.help,
            description=spec.help,
            epilog=spec.epilog,
            parents=[conn] if spec.pbx else [],
        )
        for argument in spec.args:
            command.add_argument(*argument.flags, **argument.options)
        command.set_defaults(func=spec.func, runs_until_interrupted=spec.forever)
    # Three levels deep (cec route list), with connection flags of its own: not a table row.
    add_cec_commands(commands)
    add_openvox_commands(commands)  # likewise (openvox inroute list)
    return parser


def _parse(argv: Sequence[str] | None) -> argparse.Namespace | int:
    """The parsed arguments, or the exit status when argparse ended (--help: 0, errors: 2)."""
    try:
        return build_parser().parse_args(argv)
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 2)


async def _run(args: argparse.Namespace) -> int:
    command: Command = args.func
    with logging_to_stderr(args.verbose) as library_log:
        try:
            return await command(args)
        except OutputClosed:
            return 0  # the reader took what it wanted (| head -1): a normal end
        except UsageError as exc:
            err(f"{PROG}: error: {exc}")
            return 2
        except YeastarError as exc:
            # `events` gets the error from listen(), which logged it already: once is enough.
            if not library_log.showed(str(exc)):
                err(f"error: {exc}")
            if isinstance(exc, LockoutGuardError):
                err(LOCKOUT_ADVICE)
            elif isinstance(exc, AuthenticationError):
                err(AUTH_ADVICE)
            return 1
        except ValueError as exc:
            # The SDK checks a call's arguments before any I/O and raises ValueError (an empty
            # CHANNEL_ID: "give exactly one of channel_id, paging_number"): the user's input.
            # The commands turn the ValueErrors that come from a PBX answer into YeastarError.
            err(f"{PROG}: error: {exc}")
            return 2
        except (OSError, TimeoutError, ImportError) as exc:
            if out_of_fds(exc):
                # A module loaded on first use, a file or a socket: the condition and its fix,
                # not "[Errno 24]" (nor a loader's traceback).
                err(f"error: {fd_advice()}")
                return 1
            if isinstance(exc, ImportError):
                raise
            err(f"error: {exc or type(exc).__name__}")
            return 1


async def _run_stoppable(args: argparse.Namespace, stopped_by: list[int]) -> int:
    """:func:`_run`, also stopped cleanly by SIGTERM (service managers, ``docker stop``); the
    signal that stopped it is appended to ``stopped_by``."""
    task = asyncio.current_task()

    def terminate() -> None:
        stopped_by.append(signal.SIGTERM)
        if task is not None:
            task.cancel()

    if task is not None and sys.platform != "win32":
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, terminate)
    return await _run(args)


async def amain(argv: Sequence[str] | None = None) -> int:
    """Like :func:`main`, for a running event loop (tests, embedding); cancellation = Ctrl-C."""
    args = _parse(argv)
    if isinstance(args, int):
        return args
    return await _run(args)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``yeastar-async``: parse ``argv`` (default ``sys.argv[1:]``), run the
    command, return the exit status (130 after Ctrl-C; after SIGTERM 0 for the commands that
    run until stopped, 143 for the others)."""
    args = _parse(argv)
    if isinstance(args, int):
        return args
    stopped_by: list[int] = []
    forever = bool(args.runs_until_interrupted or getattr(args, "forever", False))
    try:
        return asyncio.run(_run_stoppable(args, stopped_by))
    except (KeyboardInterrupt, asyncio.CancelledError):
        # asyncio.run cancelled the command (its `async with` blocks closed the client / fake).
        # Ctrl-C raises KeyboardInterrupt here; SIGTERM, through our handler, CancelledError.
        err("stopped" if forever else "interrupted")
        if signal.SIGTERM in stopped_by:
            return 0 if forever else EXIT_TERMINATED
        return EXIT_INTERRUPTED
