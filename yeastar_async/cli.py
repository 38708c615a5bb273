"""The ``yeastar-async`` command line (also ``python -m yeastar_async``).

Commands::

    yeastar-async demo [--forever]          the fake PBX, the screening bot and a few calls
    yeastar-async events [--topics 30011,30012] [--json] [--count N]
    yeastar-async doctor                    checklist: reachability, TLS, login, API, WebSocket
    yeastar-async call dial CALLER CALLEE
    yeastar-async call hangup CHANNEL_ID
    yeastar-async recording download ID --out PATH
    yeastar-async fake-pbx [--port N] [--host 127.0.0.1]

Commands that talk to a PBX take its address and API credentials from ``--base-url``,
``--client-id``, ``--client-secret`` or the environment variables ``YEASTAR_BASE_URL``,
``YEASTAR_CLIENT_ID``, ``YEASTAR_CLIENT_SECRET`` (prefer the variable for the secret: command
lines are visible to other users). TLS: ``--ca-file PATH``, ``--pin SHA256`` or ``--insecure``.

Exit codes: 0 success, 1 a failed check or a PBX/network error (one line, no traceback),
2 bad usage, 130 interrupted (the commands that run until stopped exit 0 on Ctrl-C or SIGTERM).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import importlib
import importlib.util
import ipaddress
import itertools
import json
import logging
import os
import re
import signal
import ssl
import sys
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any, Final, Literal
from urllib.parse import urlsplit

import msgspec
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import InvalidStatus, WebSocketException

from . import events
from ._version import __version__
from .client import YeastarClient
from .errors import (
    AccessDeniedError,
    ApiUnavailableError,
    AuthenticationError,
    IPBlockedError,
    LimitExceededError,
    LockoutGuardError,
    TransportError,
    YeastarError,
)

__all__ = ["amain", "build_parser", "format_event", "main"]

PROG: Final = "yeastar-async"
ENV_BASE_URL: Final = "YEASTAR_BASE_URL"
ENV_CLIENT_ID: Final = "YEASTAR_CLIENT_ID"
ENV_CLIENT_SECRET: Final = "YEASTAR_CLIENT_SECRET"
#: Every topic of the manual (30005-30026; there is no 30021): what ``events`` tails by default.
ALL_TOPICS: Final = tuple(sorted(events.TOPICS))

logger = logging.getLogger("yeastar_async.cli")


class UsageError(Exception):
    """Bad or missing arguments: printed like argparse's own errors, exit status 2."""


# =============================================================================================
# Output helpers
# =============================================================================================


def _can_print(text: str, stream: Any) -> bool:
    encoding = getattr(stream, "encoding", None) or "utf-8"
    try:
        text.encode(encoding)
    except (UnicodeEncodeError, LookupError):
        return False
    return True


def _out(line: str = "") -> None:
    # sys.stdout is looked up on every call: tests and pipes may swap it.
    print(line if _can_print(line, sys.stdout) else _ascii(line), flush=True)


def _err(line: str) -> None:
    print(line if _can_print(line, sys.stderr) else _ascii(line), file=sys.stderr, flush=True)


_ASCII_FALLBACK: Final = str.maketrans({"→": "->", "✓": "OK", "✗": "XX", "▶": ">", "×": "x"})


def _ascii(line: str) -> str:
    # A console that cannot show the symbols (cp1252) still gets a readable line.
    return line.translate(_ASCII_FALLBACK).encode("ascii", "replace").decode("ascii")


class _StderrHandler(logging.Handler):
    """Log records to whatever ``sys.stderr`` is at the time (not the one at start-up)."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            _err(f"{PROG}: {self.format(record)}")
        except Exception:  # pragma: no cover - logging must never break the command
            self.handleError(record)


@contextlib.contextmanager
def _logging_to_stderr(verbose: int) -> Iterator[None]:
    """Route the library's warnings (or more with ``-v``) to stderr while a command runs."""
    target = logging.getLogger("yeastar_async")
    handler = _StderrHandler()
    handler.setFormatter(logging.Formatter("%(message)s"))
    old_level, old_propagate = target.level, target.propagate
    target.addHandler(handler)
    target.setLevel((logging.WARNING, logging.INFO)[verbose] if verbose < 2 else logging.DEBUG)
    target.propagate = False
    try:
        yield
    finally:
        target.removeHandler(handler)
        target.setLevel(old_level)
        target.propagate = old_propagate


# =============================================================================================
# Event lines (table-driven: one format per event class)
# =============================================================================================

#: Event class -> (short label, line format). ``m`` is the event's ``msg``; ``members`` is its
#: call members rendered by :func:`_members`.
_EVENT_LINES: Final[dict[type[Any], tuple[str, str]]] = {
    events.OrganizationStatusChanged: ("organization", "status {m.org_status}"),
    events.OrganizationConfigChanged: ("organization", "{m.action} ids {m.id_list}"),
    events.ExtensionRegistrationChanged: (
        "registration",
        "extension {m.extension} {m.kind} {m.status} {m.registered_ip}",
    ),
    events.ExtensionCallStatusChanged: ("extension", "{m.extension} is {m.status}"),
    events.ExtensionPresenceChanged: ("presence", "extension {m.extension} is now {m.status}"),
    events.TrunkRegistrationChanged: ("trunk", "{m.trunk_name} {m.kind} status {m.status}"),
    events.CallStatusChanged: ("call status", "call {m.call_id}: {members}"),
    events.NewCdr: (
        "new CDR",
        "call {m.call_id}: {m.call_from} → {m.call_to} {m.status} "
        "({m.type}, {m.call_duration} s, talk {m.talk_duration} s)",
    ),
    events.CallTransferred: ("transferred", "call {m.call_id}: {members}"),
    events.CallForwarded: ("forwarded", "call {m.call_id}: {members}"),
    events.CallFailed: ("call failed", "call {m.call_id}: {m.reason} {members}"),
    events.IncomingCallRequest: (
        "incoming",
        "call {m.call_id}: {members}: accept or refuse within 10 s",
    ),
    events.DtmfReceived: ("DTMF", "call {m.call_id}: key {m.info} pressed (so far {m.infos})"),
    events.PromptPlaybackEnded: ("prompt", "call {m.call_id}: {m.prompt} finished"),
    events.SatisfactionSurveyResult: ("survey", "call {m.call_id}: result {m.survey_result}"),
    events.UaCstaCallEvent: (
        "uaCSTA",
        "{m.operation} extension {m.extension} call {m.call_id} {m.ip_address}",
    ),
    events.ExtensionConfigChanged: ("extension config", "{m.ext_number} {m.option}"),
    events.TrunkConfigChanged: ("trunk config", "{m.trunk_name} {m.option}"),
    events.ConferenceHostLeft: ("conference", "{m.conference_id}: host {m.host_num} left"),
    events.AgentAutoPaused: (
        "agent paused",
        "queue {m.queue_number}: agent {m.agent_number} auto-paused",
    ),
    events.AgentRingTimeout: (
        "agent missed",
        "queue {m.queue_number}: agent {m.agent_number} did not answer {m.caller_number}",
    ),
}


def _member(member: events.CallMember) -> str:
    ext, inbound, outbound = member.extension, member.inbound, member.outbound
    if ext is not None:
        return f"ext {ext.number} {ext.member_status}".rstrip()
    if inbound is not None:
        return f"in {inbound.from_} via {inbound.trunk_name} {inbound.member_status}".rstrip()
    if outbound is not None:
        return f"out {outbound.to} via {outbound.trunk_name} {outbound.member_status}".rstrip()
    return "?"


def _members(msg: Any) -> str:
    members = getattr(msg, "members", None) or []
    return ", ".join(_member(m) for m in members) or "no members"


def format_event(event: Any, *, clock: Callable[[], float] = time.time) -> str:
    """One readable line for a PBX event: time, topic, label and the payload's gist.

    ``12:00:01.250  30011 call status    call 1702287660.12: ext 2000 RING, ...``. Events this
    library has no format for (newer firmware) show their raw frame.
    """
    now = clock()
    stamp = time.strftime("%H:%M:%S", time.localtime(now)) + f".{int(now % 1 * 1000):03d}"
    spec = _EVENT_LINES.get(type(event))
    if spec is None:
        raw = getattr(event, "raw", "")
        text = raw.decode(errors="replace") if isinstance(raw, bytes) else str(raw)
        label, body = "unknown", text[:200]
    else:
        label, template = spec
        body = template.format(m=event.msg, members=_members(event.msg))
    return f"{stamp}  {event.type} {label:<13} {' '.join(body.split())}"


#: Wire-only aliases the models read and then leave empty (see events.models).
_ALIAS_FIELDS: Final = frozenset({"member_statuses", "ip_addresses"})


def _prune(value: Any) -> Any:
    # Leave out what carries nothing (absent legs are null, aliases are emptied): a JSON line
    # per event stays close to what the PBX sent.
    if isinstance(value, dict):
        return {k: _prune(v) for k, v in value.items() if v is not None and k not in _ALIAS_FIELDS}
    if isinstance(value, list):
        return [_prune(v) for v in value]
    return value


def _event_json(event: Any) -> str:
    doc = msgspec.to_builtins(event)
    if isinstance(doc, dict) and isinstance(doc.get("msg"), dict | list):
        doc["msg"] = _prune(doc["msg"])
    return msgspec.json.encode(doc).decode()


# =============================================================================================
# Building a client from flags and the environment
# =============================================================================================

_PIN: Final = re.compile(r"^(?:sha256[:/])?(?:[0-9a-fA-F]{2}:?){31}[0-9a-fA-F]{2}$")


def _connection_parent() -> argparse.ArgumentParser:
    """The PBX address, credentials and TLS flags shared by every command that talks to a PBX.

    Defaults are SUPPRESS so the flags work before or after the command name.
    """
    parent = argparse.ArgumentParser(add_help=False)
    group = parent.add_argument_group("PBX connection (flags override the environment)")
    hide = argparse.SUPPRESS
    group.add_argument(
        "--base-url",
        default=hide,
        metavar="URL",
        help=f"https://pbx.example.com:8088 (env {ENV_BASE_URL})",
    )
    group.add_argument(
        "--client-id", default=hide, metavar="ID", help=f"API client ID (env {ENV_CLIENT_ID})"
    )
    group.add_argument(
        "--client-secret",
        default=hide,
        metavar="SECRET",
        help=f"API client secret; prefer env {ENV_CLIENT_SECRET} (never printed)",
    )
    group.add_argument(
        "--timeout", default=hide, type=_positive_float, metavar="S", help="request timeout"
    )
    tls = group.add_mutually_exclusive_group()
    tls.add_argument("--ca-file", default=hide, metavar="PATH", help="verify against this CA")
    tls.add_argument(
        "--pin",
        default=hide,
        metavar="SHA256",
        help="trust exactly the certificate with this SHA-256 fingerprint (self-signed PBX)",
    )
    tls.add_argument(
        "--insecure",
        default=hide,
        action="store_true",
        help="no certificate verification (avoid: use --pin)",
    )
    return parent


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be > 0: {text!r}")
    return value


def _opt(args: argparse.Namespace, name: str) -> Any:
    return getattr(args, name, None)


def _ssl_option(args: argparse.Namespace) -> str | bool | None:
    if _opt(args, "insecure"):
        return False
    pin = _opt(args, "pin")
    if pin is not None:
        if not _PIN.match(pin.strip()):
            raise UsageError(
                "--pin takes a SHA-256 certificate fingerprint: 64 hex digits, colons allowed "
                "(yeastar-async doctor prints the PBX's)"
            )
        return str(pin).strip()
    ca_file = _opt(args, "ca_file")
    if ca_file is not None:
        if not os.path.isfile(ca_file):
            raise UsageError(f"--ca-file: no such file: {ca_file}")
        return str(ca_file)
    return None


def _setting(args: argparse.Namespace, name: str, env: str, flag: str) -> str:
    value = _opt(args, name) or os.environ.get(env, "")
    if not value:
        raise UsageError(f"missing {flag} (or set {env})")
    return str(value)


def _make_client(args: argparse.Namespace, **options: Any) -> YeastarClient:
    """A client for the PBX the flags / environment name; UsageError when something is missing."""
    base_url = _setting(args, "base_url", ENV_BASE_URL, "--base-url")
    client_id = _setting(args, "client_id", ENV_CLIENT_ID, "--client-id")
    secret = _setting(args, "client_secret", ENV_CLIENT_SECRET, "--client-secret")
    timeout = _opt(args, "timeout")
    if timeout is not None:
        options.setdefault("timeout", timeout)
        options.setdefault("connect_timeout", min(timeout, 10.0))
    try:
        return YeastarClient(base_url, client_id, secret, ssl=_ssl_option(args), **options)
    except ValueError as exc:
        raise UsageError(str(exc)) from None


# =============================================================================================
# demo
# =============================================================================================

#: Callers of the demo: one on the bot's allow list, one on its block list.
DEMO_ALLOWED: Final = "5503301"
DEMO_BLOCKED: Final = "5550100"
DEMO_TOPICS: Final = (30008, 30009, 30011, 30012, 30016, 30017)
_DECIDED: Final = {"accept": "accepted", "refuse": "refused", "ignore": "left to the PBX"}


def _load_example(name: str) -> ModuleType:
    """Import ``examples/<name>.py``: shipped in the wheel as ``yeastar_async.examples``, or
    read from the source checkout next to this package."""
    packaged = f"yeastar_async.examples.{name}"
    try:
        return importlib.import_module(packaged)
    except ModuleNotFoundError as exc:
        if exc.name not in ("yeastar_async.examples", packaged):
            raise  # the example exists but something it imports is missing
    loaded = sys.modules.get(f"_yeastar_example_{name}")
    if loaded is not None:
        return loaded
    path = Path(__file__).resolve().parent.parent / "examples" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"_yeastar_example_{name}", path)
    if spec is None or spec.loader is None or not path.is_file():
        raise UsageError(f"the example {name!r} is not installed (looked for {path})")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the body runs
    spec.loader.exec_module(module)
    return module


@dataclass
class _EventLog:
    """What the demo saw: counts per topic, answered calls, channels, CDRs; awaitable."""

    counts: Counter[int] = field(default_factory=Counter)
    answered: set[str] = field(default_factory=set)
    channels: dict[str, list[str]] = field(default_factory=dict)
    cdrs: dict[str, events.CdrInfo] = field(default_factory=dict)
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    def record(self, event: Any) -> None:
        self.counts[event.type] += 1
        msg = event.msg
        if isinstance(event, events.CallStatusChanged):
            legs = [m.leg for m in msg.members if m.leg is not None]
            self.channels[msg.call_id] = [leg.channel_id for leg in legs]
            if any(leg.member_status.upper() in ("ANSWER", "ANSWERED") for leg in legs):
                self.answered.add(msg.call_id)
        elif isinstance(event, events.NewCdr):
            self.cdrs[msg.call_id] = msg
        # Wake every waiter; each re-checks its own condition.
        self.changed.set()
        self.changed = asyncio.Event()

    async def wait_for(self, condition: Callable[[], bool], what: str, timeout: float) -> None:
        try:
            async with asyncio.timeout(timeout):
                while not condition():
                    await self.changed.wait()
        except TimeoutError:
            raise TimeoutError(f"demo: no {what} within {timeout} s") from None


async def _demo_scenario(
    pbx: Any, client: YeastarClient, log: _EventLog, step: Callable[[str], None]
) -> None:
    """The scripted calls: screened inbound calls, a dial with DTMF and hangup, presence."""
    wait = 12.0  # longer than the PBX's 10-second window
    step(f"an external call from {DEMO_ALLOWED}, who is on the bot's allow list")
    call = pbx.simulate_inbound_call(DEMO_ALLOWED, did="2000", talk_time=0.3)
    await log.wait_for(lambda: call.call_id in log.cdrs, "CDR of the accepted call", wait)

    step(f"an external call from {DEMO_BLOCKED}, who is on the bot's block list")
    call = pbx.simulate_inbound_call(DEMO_BLOCKED, did="2000")
    await log.wait_for(lambda: call.call_id in log.cdrs, "CDR of the refused call", wait)

    step("call/dial: extension 2000 calls 5503302 over a trunk")
    call_id = (await client.call.dial(caller="2000", callee="5503302")).call_id or ""
    await log.wait_for(lambda: call_id in log.answered, "answer of the dialled call", wait)

    step("the callee presses 1 (DTMF, event 30017)")
    dtmf_before = log.counts[30017]
    await pbx.simulate_dtmf(call_id, "1")
    await log.wait_for(lambda: log.counts[30017] > dtmf_before, "DTMF event", wait)

    channel = log.channels[call_id][0]
    step(f"call/hangup on the caller's channel {channel}")
    await client.call.hangup(channel_id=channel)
    await log.wait_for(lambda: call_id in log.cdrs, "CDR of the dialled call", wait)

    step("extension 2001 sets its presence to lunch (event 30009)")
    presence_before = log.counts[30009]
    await pbx.set_presence("2001", "lunch")
    await log.wait_for(lambda: log.counts[30009] > presence_before, "presence event", wait)


async def cmd_demo(args: argparse.Namespace) -> int:
    """``demo``: the fake PBX, the screening bot and scripted calls, each event printed."""
    from .testing import FakePBX  # imported here: only the demo and fake-pbx need the server

    screening = _load_example("screening_bot")
    _out(f"{PROG} demo: a fake PBX on this machine, the example screening bot, a few calls.")
    # Short ring/talk times keep the demo to a few seconds; talk_time=None keeps a dialled
    # call up until the demo hangs it up.
    async with FakePBX(ring_time=0.2, talk_time=None) as pbx:
        _out(f"FakePBX listening on {pbx.base_url}")
        async with YeastarClient(pbx.base_url, pbx.client_id, pbx.client_secret) as client:
            log = _EventLog()
            connected = asyncio.Event()

            async def show(event: Any) -> None:
                log.record(event)
                _out(format_event(event))

            async def on_connected(event: events.Connected) -> None:
                topics = " ".join(str(t) for t in DEMO_TOPICS)
                _out(f"connected to the event stream (topics {topics})")
                connected.set()

            client.add_handler(events.Connected, on_connected)
            for topic in DEMO_TOPICS:  # the printer first, so a 30016 shows before its decision
                client.add_handler(topic, show)
            bot = screening.ScreeningBot(
                client,
                allow=[DEMO_ALLOWED],
                block=[DEMO_BLOCKED],
                on_decision=lambda r: _out(
                    f"{'':14}bot: {_DECIDED[r.decision]} {r.caller} ({r.reason})"
                    + ("" if r.ok else ": the request FAILED")
                ),
            )
            bot.install()
            _out(f"screening bot: allow list {DEMO_ALLOWED}, block list {DEMO_BLOCKED}")
            listener = asyncio.create_task(client.listen(), name="demo-listen")
            try:
                await _first(connected.wait(), listener, timeout=10.0)
                steps = itertools.count(1)
                await _demo_scenario(
                    pbx, client, log, lambda text: _out(f"\n▶ {next(steps)}. {text}")
                )
                _out("")
                _out(_demo_summary(bot, log))
                if args.forever:
                    _out("")
                    _print_fake_credentials(pbx)
                    _out("The demo keeps running (bot and event printer): press Ctrl-C to stop.")
                    await listener
            finally:
                listener.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await listener
    return 0


def _demo_summary(bot: Any, log: _EventLog) -> str:
    seen = ", ".join(f"{topic} ×{n}" for topic, n in sorted(log.counts.items()))
    accepted, refused = bot.count("accept"), bot.count("refuse")
    return (
        f"Summary: {accepted + refused} inbound calls screened ({accepted} accepted, "
        f"{refused} refused), 1 call dialled and hung up, {len(log.cdrs)} CDRs; "
        f"{sum(log.counts.values())} events seen ({seen})."
    )


async def _first(awaitable: Awaitable[Any], guard: asyncio.Task[Any], timeout: float) -> None:
    """Wait for ``awaitable``; if ``guard`` (the listener) ends first, surface its error."""
    waiter = asyncio.ensure_future(awaitable)
    try:
        done, _ = await asyncio.wait(
            {waiter, guard}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED
        )
    finally:
        waiter.cancel()
    if waiter in done:
        return
    if guard in done:
        guard.result()  # raises the listener's error
        raise TransportError("the event stream stopped")
    raise TransportError(f"no event stream connection within {timeout:.0f} s")


# =============================================================================================
# events
# =============================================================================================


def _topics(text: str) -> tuple[int, ...]:
    topics: list[int] = []
    for part in text.replace(" ", "").split(","):
        if not part:
            continue
        if not part.isdigit() or int(part) <= 0:
            raise argparse.ArgumentTypeError(f"not a topic number: {part!r}")
        topics.append(int(part))
    if not topics:
        raise argparse.ArgumentTypeError("no topic given")
    return tuple(dict.fromkeys(topics))


async def cmd_events(args: argparse.Namespace) -> int:
    """``events``: tail live events, one line (or JSON object) each; status lines on stderr."""
    topics: tuple[int, ...] = args.topics or ALL_TOPICS
    printed = 0
    enough = asyncio.Event()
    async with _make_client(args) as client:

        async def show(event: Any) -> None:
            nonlocal printed
            if args.count and printed >= args.count:
                return  # events still queued while the client closes
            _out(_event_json(event) if args.json else format_event(event))
            printed += 1
            if args.count and printed >= args.count:
                enough.set()

        async def on_connected(event: events.Connected) -> None:
            if event.reconnect:
                gap = f"{event.gap:.1f} s" if event.gap is not None else "a"
                _err(f"[status] reconnected after a {gap} gap (events in the gap were missed)")
            else:
                _err(f"[status] connected to {client.base_url}, {len(topics)} topic(s)")

        async def on_disconnected(event: events.Disconnected) -> None:
            if not client.closed:
                _err(f"[status] disconnected ({event.reason}); reconnecting")

        client.add_handler(events.Connected, on_connected)
        client.add_handler(events.Disconnected, on_disconnected)
        for topic in topics:
            client.add_handler(topic, show)
        _err(f"[status] connecting to {client.base_url} ...")
        listener = asyncio.create_task(client.listen(), name="events-listen")
        stopper = asyncio.create_task(enough.wait())
        try:
            await asyncio.wait({listener, stopper}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopper.cancel()
            if not listener.done():
                await client.aclose()  # listen() returns once the client is closed
        await listener
    return 0


# =============================================================================================
# doctor
# =============================================================================================

Status = Literal["pass", "fail", "warn", "skip"]
#: Checklist symbols (``_out`` turns them into ASCII for a console that cannot show them).
_MARKS: Final[dict[str, str]] = {"pass": "✓", "fail": "✗", "warn": "!", "skip": "-"}


@dataclass
class Check:
    """One line of the doctor's checklist."""

    name: str
    status: Status
    detail: str
    fix: str = ""


_FIX_REACH: Final = (
    "Check the address and port in the base URL (the PBX web port: HTTPS 8088 by default), that "
    "the PBX is running, and that no firewall blocks this host."
)
_FIX_NOT_TLS: Final = (
    "This port does not speak TLS: use http:// for an HTTP port, or the HTTPS port (8088 by "
    "default)."
)
_FIX_LOGIN: Final = (
    "Copy the Client ID and Client Secret again from Integrations > API on the PBX. doctor tried "
    "once only: the PBX blocks the caller's IP after 5 failed logins in a row."
)
_FIX_BLOCKED: Final = (
    "This IP is on the PBX's IP blocklist (after 5 failed logins). An administrator removes it "
    "under Security > Security Rules > IP Blocklist; fix the credentials first."
)
_FIX_ALLOW_LIST: Final = (
    "This IP is not on the API's IP allow list: add it under Integrations > API (allowed IP "
    "addresses), or switch the allow list off."
)
_FIX_API_OFF: Final = (
    "Enable the API under Integrations > API (it needs a firmware and licence that include the "
    "API), then save."
)
_FIX_TOKEN_CAP: Final = (
    "The application holds too many live tokens (about 8): close other clients (closing "
    "revokes their token) or wait until their tokens expire (30 min)."
)
_FIX_ACCESS: Final = "The API account may not call this endpoint: check its permissions."
_FIX_WS: Final = (
    "The REST API works but the WebSocket does not: a reverse proxy or firewall in between must "
    "pass WebSocket upgrades (and frames, unbuffered) to /openapi/v1.0/subscribe."
)
_PREREQUISITES: Final = (
    "Not checkable over the API (PBX settings under Integrations > API > Advanced):",
    "  - 30007 / 30008 / 30009 need the extension Registration / Call / Presence Status "
    "Monitoring toggles",
    "  - 30010 (and trunk legs in 30011) need the trunk's status monitoring toggle",
    '  - 30016 and call/accept_inbound, call/refuse_inbound need "Inbound Call Control" '
    "on the trunk",
)


def _login_fix(exc: YeastarError) -> str:
    if isinstance(exc, LockoutGuardError):
        return _FIX_LOGIN
    if isinstance(exc, IPBlockedError):
        return _FIX_ALLOW_LIST if exc.errcode == 70087 else _FIX_BLOCKED
    if isinstance(exc, AuthenticationError):
        return _FIX_LOGIN
    if isinstance(exc, LimitExceededError):
        return _FIX_TOKEN_CAP
    if isinstance(exc, ApiUnavailableError):
        return _FIX_API_OFF
    if isinstance(exc, AccessDeniedError):
        return _FIX_ACCESS
    if isinstance(exc, TransportError) and exc.status == 404:
        return "Nothing answers /openapi/v1.0 here: check the port, and " + _FIX_API_OFF.lower()
    return "See the error above; run with -v for details."


def _brief(exc: YeastarError) -> str:
    """The error without its advice (the checklist prints its own fix line)."""
    if exc.errcode is None:
        return str(exc)
    where = f"{exc.endpoint}: " if exc.endpoint else ""
    return f"{where}errcode {exc.errcode} {exc.errmsg}".rstrip()


def _host_port(base_url: str) -> tuple[str, int, bool]:
    parts = urlsplit(base_url)
    secure = parts.scheme == "https"
    return parts.hostname or "", parts.port or (443 if secure else 80), secure


def _fingerprint(der: bytes) -> str:
    return hashlib.sha256(der).digest().hex(":").upper()


def _pin_hint(host: str, port: int, fingerprint: str) -> str:
    return (
        "Don't switch verification off. Pin the certificate: --pin "
        f"{fingerprint} after comparing it with the fingerprint seen on the PBX itself (e.g. "
        f"openssl s_client -connect {host}:{port} </dev/null | openssl x509 -noout -fingerprint "
        "-sha256, run from a trusted network), or pass the CA that signed it with --ca-file PATH."
    )


class _Doctor:
    """Runs the checks in order; a failed prerequisite skips the checks that depend on it."""

    def __init__(self, client: YeastarClient, timeout: float) -> None:
        self.client = client
        self.timeout = timeout
        self.checks: list[Check] = []
        host, port, secure = _host_port(client.base_url)
        self.host, self.port, self.secure = host, port, secure

    def report(self, check: Check) -> Check:
        self.checks.append(check)
        _out(f"{_MARKS[check.status]} {check.name:<13} {check.detail}")
        if check.fix and check.status in ("fail", "warn"):
            _out(f"  {'':13} fix: {check.fix}")
        return check

    async def run(self) -> bool:
        _out(f"{PROG} doctor: {self.client.base_url}")
        reachable = await self.reachability()
        tls_ok = reachable and await self.tls()
        if not tls_ok:
            for name in ("login", "API access", "capacity", "WebSocket"):
                self.report(Check(name, "skip", "skipped: the PBX cannot be reached securely"))
        elif await self.login():
            await self.api_access()
            await self.capacity()
            await self.websocket()
        else:
            for name in ("API access", "capacity", "WebSocket"):
                self.report(Check(name, "skip", "skipped: needs a login (not retried)"))
        _out("")
        for line in _PREREQUISITES:
            _out(line)
        failed = [c for c in self.checks if c.status == "fail"]
        _out("")
        if failed:
            _out(f"{len(failed)} check(s) failed: {', '.join(c.name for c in failed)}.")
        else:
            _out("All checks passed.")
        return not failed

    async def reachability(self) -> bool:
        started = time.perf_counter()
        try:
            async with asyncio.timeout(self.timeout):
                _, writer = await asyncio.open_connection(self.host, self.port)
        except (OSError, TimeoutError) as exc:
            reason = "timed out" if isinstance(exc, TimeoutError) else str(exc) or repr(exc)
            self.report(
                Check("reachability", "fail", f"{self.host}:{self.port}: {reason}", _FIX_REACH)
            )
            return False
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
        ms = (time.perf_counter() - started) * 1000
        self.report(Check("reachability", "pass", f"{self.host}:{self.port} answers ({ms:.0f} ms)"))
        return True

    async def _peer_certificate(
        self, context: ssl.SSLContext, *, check_pin: bool = True
    ) -> tuple[bytes, str]:
        """One TLS handshake with ``context``: the peer's DER certificate and TLS version."""
        async with asyncio.timeout(self.timeout):
            _, writer = await asyncio.open_connection(
                self.host, self.port, ssl=context, server_hostname=self.host
            )
        try:
            ssl_object = writer.get_extra_info("ssl_object")
            if check_pin:
                self.client._transport.check_peer(ssl_object)  # the --pin comparison
            der = ssl_object.getpeercert(binary_form=True) if ssl_object is not None else None
            version = ssl_object.version() if ssl_object is not None else None
            return der or b"", version or "TLS"
        finally:
            writer.close()
            with contextlib.suppress(OSError, ssl.SSLError):
                await writer.wait_closed()

    async def _unverified_fingerprint(self) -> str | None:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        with contextlib.suppress(OSError, TimeoutError, ssl.SSLError):
            der, _ = await self._peer_certificate(context, check_pin=False)
            return _fingerprint(der) if der else None
        return None

    async def tls(self) -> bool:
        transport = self.client._transport
        if not self.secure:
            self.report(
                Check(
                    "TLS",
                    "warn",
                    "not used (http://): the credentials and tokens travel in clear text",
                    "Use https:// and the PBX's HTTPS port (8088 by default).",
                )
            )
            return True
        context = transport.ws_ssl()
        assert context is not None  # https always has a context
        policy = transport.tls
        try:
            der, version = await self._peer_certificate(context)
        except ssl.SSLCertVerificationError as exc:
            fingerprint = await self._unverified_fingerprint()
            detail = f"certificate not trusted: {exc.verify_message or exc.reason}"
            fix = (
                _pin_hint(self.host, self.port, fingerprint)
                if fingerprint
                else "Pass the CA that signed the PBX's certificate with --ca-file PATH."
            )
            if fingerprint:
                detail += f" (SHA-256 {fingerprint})"
            self.report(Check("TLS", "fail", detail, fix))
            return False
        except TransportError as exc:  # the pin did not match
            fingerprint = await self._unverified_fingerprint()
            fix = (
                "The PBX's certificate changed (renewed?) or something else answers. Check the "
                "fingerprint on the PBX, then update --pin."
            )
            if fingerprint:
                fix += f" It now presents {fingerprint}."
            self.report(Check("TLS", "fail", str(exc), fix))
            return False
        except (ssl.SSLError, OSError, TimeoutError) as exc:
            reason = "handshake timed out" if isinstance(exc, TimeoutError) else str(exc)
            self.report(Check("TLS", "fail", f"TLS handshake failed: {reason}", _FIX_NOT_TLS))
            return False
        fingerprint = _fingerprint(der) if der else "?"
        if policy.pin is not None:
            self.report(Check("TLS", "pass", f"{version}, certificate matches the pin"))
        elif not policy.verify:
            self.report(
                Check(
                    "TLS",
                    "warn",
                    f"{version}, certificate NOT verified (--insecure)",
                    _pin_hint(self.host, self.port, fingerprint),
                )
            )
        else:
            self.report(Check("TLS", "pass", f"{version}, certificate verified"))
        return True

    async def login(self) -> bool:
        # Exactly one get_token: the token manager never retries a rejected login, and this
        # command makes no other login-triggering call when this one fails.
        try:
            await self.client._tokens.token()
        except YeastarError as exc:
            self.report(Check("login", "fail", _brief(exc), _login_fix(exc)))
            return False
        self.report(Check("login", "pass", "token granted"))
        return True

    async def api_access(self) -> None:
        try:
            info = (await self.client.system.information()).data
        except YeastarError as exc:
            self.report(Check("API access", "fail", _brief(exc), _login_fix(exc)))
            return
        if info is None:
            self.report(Check("API access", "pass", "system/information answered"))
            return
        name = " ".join(part for part in (info.model_name, info.device_name) if part) or "PBX"
        detail = f"{name}, firmware {info.firmware_version or '?'}, SN {info.sn or '?'}"
        self.report(Check("API access", "pass", detail))

    async def capacity(self) -> None:
        try:
            cap = (await self.client.system.capacity()).data
        except YeastarError as exc:
            self.report(Check("capacity", "fail", _brief(exc), _login_fix(exc)))
            return
        if cap is None:
            self.report(Check("capacity", "pass", "system/capacity answered"))
            return
        detail = (
            f"extensions {cap.extension_used}/{cap.extension_capacity}, "
            f"concurrent calls {cap.cc_used}/{cap.cc_capacity}"
        )
        full = cap.cc_capacity is not None and (cap.cc_used or 0) >= cap.cc_capacity
        if full:
            fix = "Every concurrent-call slot is in use: new calls (call/dial) will fail."
            self.report(Check("capacity", "warn", detail, fix))
        else:
            self.report(Check("capacity", "pass", detail))

    async def websocket(self) -> None:
        try:
            detail = await self._ws_round_trip()
        except _WsCheckFailed as exc:
            self.report(Check("WebSocket", "fail", str(exc), exc.fix))
            return
        self.report(Check("WebSocket", "pass", detail))

    async def _ws_round_trip(self) -> str:
        """Subscribe, expect the ack, send ``heartbeat``, expect ``heartbeat response``."""
        transport = self.client._transport
        token = await self.client._tokens.token()
        tls: dict[str, Any] = {}
        context = transport.ws_ssl()
        if context is not None:
            tls["ssl"] = context
        try:
            async with ws_connect(
                transport.ws_url(token),
                user_agent_header=transport.user_agent,
                open_timeout=self.timeout,
                ping_interval=None,
                compression=None,
                proxy=None,
                **tls,
            ) as ws:
                try:
                    transport.check_peer(ws.transport.get_extra_info("ssl_object"))
                except TransportError as exc:
                    raise _WsCheckFailed(str(exc), "Check --pin (see the TLS check).") from None
                started = time.perf_counter()
                await ws.send(json.dumps({"topic_list": [30011]}))
                ack = await self._ws_reply(ws, lambda f: f.lstrip().startswith('{"errcode"'))
                if ack is None:
                    raise _WsCheckFailed(
                        f"no answer to the subscribe message within {self.timeout:.0f} s", _FIX_WS
                    )
                code = json.loads(ack).get("errcode")
                if code != 0:
                    raise _WsCheckFailed(f"the PBX rejected the subscription: {ack}", _FIX_WS)
                ack_ms = (time.perf_counter() - started) * 1000
                started = time.perf_counter()
                await ws.send("heartbeat")
                reply = await self._ws_reply(ws, lambda f: f == "heartbeat response")
                if reply is None:
                    raise _WsCheckFailed(
                        f"subscribed, but no 'heartbeat response' within {self.timeout:.0f} s",
                        _FIX_WS,
                    )
                beat_ms = (time.perf_counter() - started) * 1000
        except InvalidStatus as exc:
            status = exc.response.status_code
            raise _WsCheckFailed(f"WebSocket upgrade refused: HTTP {status}", _FIX_WS) from None
        except (OSError, TimeoutError, WebSocketException) as exc:
            reason = transport.redact(str(exc) or type(exc).__name__)
            raise _WsCheckFailed(f"WebSocket failed: {reason}", _FIX_WS) from None
        return f"subscribed ({ack_ms:.0f} ms), heartbeat answered ({beat_ms:.0f} ms)"

    async def _ws_reply(self, ws: Any, wanted: Callable[[str], bool]) -> str | None:
        """The first text frame ``wanted`` accepts within the timeout (events are skipped)."""
        try:
            async with asyncio.timeout(self.timeout):
                while True:
                    frame = await ws.recv()
                    text = frame.decode(errors="replace") if isinstance(frame, bytes) else frame
                    if wanted(text):
                        return str(text)
        except TimeoutError:
            return None


class _WsCheckFailed(Exception):
    def __init__(self, message: str, fix: str) -> None:
        super().__init__(message)
        self.fix = fix


async def cmd_doctor(args: argparse.Namespace) -> int:
    """``doctor``: the checklist; exit 0 when every check passed, 1 otherwise."""
    timeout = _opt(args, "timeout") or 10.0
    # retries=0: a diagnosis wants the first failure, not three of them.
    async with _make_client(args, retries=0, timeout=timeout) as client:
        ok = await _Doctor(client, timeout).run()
    return 0 if ok else 1


# =============================================================================================
# call, recording
# =============================================================================================


async def cmd_call_dial(args: argparse.Namespace) -> int:
    """``call dial CALLER CALLEE``: start a call; prints its call id."""
    async with _make_client(args) as client:
        answer = await client.call.dial(
            caller=args.caller,
            callee=args.callee,
            auto_answer="yes" if args.auto_answer else None,
        )
    _out(f"dialling {args.caller} → {args.callee}: call id {answer.call_id}")
    return 0


async def cmd_call_hangup(args: argparse.Namespace) -> int:
    """``call hangup CHANNEL_ID``: hang up one member of a call."""
    async with _make_client(args) as client:
        answer = await client.call.hangup(channel_id=args.channel_id)
    _out(f"hung up {args.channel_id} (call id {answer.call_id})")
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
        elapsed = max(now - self._started, 1e-6)
        span = self.WIDTH - 4
        pos = self._frame % (2 * span)
        pos = pos if pos < span else 2 * span - pos
        bar = " " * pos + "####" + " " * (span - pos)
        return f"{self.label} [{bar}] {_size(self.bytes)} {_size(self.bytes / elapsed)}/s"

    def done(self) -> None:
        """Finish the progress line with the final size."""
        elapsed = max(time.monotonic() - self._started, 1e-6)
        end = f"{self.label} [{'#' * self.WIDTH}] {_size(self.bytes)} in {elapsed:.1f} s"
        sys.stderr.write(("\r" if self.live else "") + end + "\n")
        sys.stderr.flush()


async def cmd_recording_download(args: argparse.Namespace) -> int:
    """``recording download ID --out PATH``: fetch a recording (by id or file name)."""
    ident: str = args.id
    query: dict[str, Any] = {"id": int(ident)} if ident.isdigit() else {"file": ident}
    async with _make_client(args) as client:
        progress = Progress(f"recording {ident}")
        saved = await client.files.save(
            lambda: client.recording.download(**query),
            args.out,
            retries=args.retries,
            progress=progress.update,
        )
        progress.done()
    _out(f"saved {saved} ({progress.bytes} bytes)")
    return 0


# =============================================================================================
# fake-pbx
# =============================================================================================


def _print_fake_credentials(pbx: Any) -> None:
    # It is a fake: its generated secret is printed so another terminal can connect.
    _out(f"  base_url       {pbx.base_url}")
    _out(f"  client id      {pbx.client_id}")
    _out(f"  client secret  {pbx.client_secret}")
    _out("Connect another terminal with:")
    _out(
        f"  export {ENV_BASE_URL}={pbx.base_url} {ENV_CLIENT_ID}={pbx.client_id} "
        f"{ENV_CLIENT_SECRET}={pbx.client_secret}"
    )
    _out(f"  {PROG} events")


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


async def cmd_fake_pbx(args: argparse.Namespace) -> int:
    """``fake-pbx``: run the simulator until Ctrl-C, printing how to connect to it."""
    from .testing import FakePBX

    if not _is_loopback(args.host):
        _err(f"{PROG}: warning: the fake PBX accepts anyone who can reach {args.host}")
    options: dict[str, Any] = {"host": args.host, "port": args.port}
    if args.client_id:
        options["client_id"] = args.client_id
    async with FakePBX(ring_time=1.0, talk_time=3.0, **options) as pbx:
        _out("FakePBX running (press Ctrl-C to stop)")
        _print_fake_credentials(pbx)
        traffic = args.traffic
        if traffic:
            _out(f"Simulating a call every {traffic:g} s.")
        while True:
            if not traffic:
                await asyncio.Event().wait()  # until cancelled (Ctrl-C)
            await asyncio.sleep(traffic)
            pbx.simulate_dial("2000", "2001")


# =============================================================================================
# parser and entry points
# =============================================================================================

Command = Callable[[argparse.Namespace], Awaitable[int]]


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``yeastar-async`` (every command and option)."""
    conn = _connection_parent()
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
        type=_topics,
        metavar="N,N,...",
        help="topics to subscribe to (default: all of 30005-30026)",
    )
    tail.add_argument("--json", action="store_true", help="one JSON object per line")
    tail.add_argument("--count", type=int, default=0, metavar="N", help="stop after N events")

    command(
        "doctor",
        cmd_doctor,
        "check reachability, TLS, login, API access, capacity and the WebSocket",
    )

    call = commands.add_parser("call", help="call control", description="call control")
    call_commands = call.add_subparsers(dest="action", metavar="ACTION", required=True)
    dial = command("dial", cmd_call_dial, "start a call (call/dial)", sub=call_commands)
    dial.add_argument("caller", help="extension number (or IVR, ring group, queue)")
    dial.add_argument("callee", help="number to call")
    dial.add_argument("--auto-answer", action="store_true", help="the caller's phone auto-answers")
    hangup = command("hangup", cmd_call_hangup, "hang up a channel", sub=call_commands)
    hangup.add_argument("channel_id", help="e.g. PJSIP/2000-0000004f (from events or call/query)")

    recording = commands.add_parser("recording", help="recordings", description="recordings")
    rec_commands = recording.add_subparsers(dest="action", metavar="ACTION", required=True)
    download = command("download", cmd_recording_download, "download a recording", sub=rec_commands)
    download.add_argument("id", help="recording id, or its file name")
    download.add_argument("--out", required=True, metavar="PATH", help="file or directory")
    download.add_argument(
        "--retries", type=int, default=0, metavar="N", help="retry N times if not ready yet"
    )

    fake = command(
        "fake-pbx", cmd_fake_pbx, "run the fake PBX for manual testing", pbx=False, forever=True
    )
    fake.add_argument("--port", type=int, default=0, help="TCP port (default: a free one)")
    fake.add_argument("--host", default="127.0.0.1", help="address to listen on (loopback)")
    fake.add_argument("--client-id", default="", help="client id to accept")
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
    with _logging_to_stderr(args.verbose):
        try:
            return await command(args)
        except UsageError as exc:
            _err(f"{PROG}: error: {exc}")
            return 2
        except YeastarError as exc:
            _err(f"error: {exc}")
            return 1
        except (OSError, TimeoutError) as exc:
            _err(f"error: {exc or type(exc).__name__}")
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
            _err("stopped")
            return 0
        _err("interrupted")
        return 130
