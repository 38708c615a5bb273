"""Incoming-call screening bot: accept or refuse external calls within the PBX's 10-second window.

When an external call arrives on a trunk with inbound call control, the PBX sends event 30016
(``events.IncomingCallRequest``) and holds the call for 10 seconds, waiting for
``call/accept_inbound`` or ``call/refuse_inbound`` with the inbound leg's ``channel_id``. After
the window it routes the call on its own (by the inbound route) and ignores late answers.

This bot refuses callers on a block list, accepts callers on an allow list, and treats everyone
else by a policy (``--unknown accept|refuse|ignore``; "ignore" lets the PBX route the call after
the window). Each decision is printed. ``yeastar-async demo`` runs this bot against the fake PBX.

PBX prerequisites:

* the API enabled under Integrations > API (and this host on its IP allow list, if one is set);
* on the same page, Advanced > trunk status monitoring: "Control Inbound Call" turned on for every
  trunk whose calls should be screened (no 30016 event otherwise).

Run it (the secret stays out of the command line and the shell history)::

    export YEASTAR_BASE_URL=https://pbx.example.com:8088
    export YEASTAR_CLIENT_ID=... YEASTAR_CLIENT_SECRET=...
    export YEASTAR_PIN=<sha256 fingerprint>   # only for a self-signed certificate
    python examples/screening_bot.py --allow 5503301 --block 5550100 --unknown accept

To consult a CRM instead of fixed lists, override :meth:`ScreeningBot.decide`; keep its work well
inside the window (the bot gives the accept/refuse request ``budget`` seconds).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Literal

from yeastar_async import YeastarClient, events
from yeastar_async.errors import YeastarError

__all__ = ["Screening", "ScreeningBot", "main"]

logger = logging.getLogger("screening_bot")

#: What to do with a caller: accept, refuse, or leave the call to the PBX's inbound route.
Decision = Literal["accept", "refuse", "ignore"]


@dataclass(frozen=True)
class Screening:
    """One screened call.

    Attributes:
        call_id: the PBX call id.
        caller: the external number that called.
        decision: what the bot chose (``"accept"``, ``"refuse"``, ``"ignore"``).
        reason: why (``"allow list"``, ``"block list"``, ``"unknown caller"``).
        ok: False when the accept/refuse request failed (the PBX then routes the call itself).
    """

    call_id: str
    caller: str
    decision: Decision
    reason: str
    ok: bool = True


def _normalize(number: str) -> str:
    # Callers arrive as "5503301", "+44 20 7946 0000" or "020-7946-0000": compare digits only
    # (and a leading +), so list entries need not match the trunk's formatting exactly.
    number = number.strip()
    digits = "".join(ch for ch in number if ch.isdigit())
    return ("+" + digits) if number.startswith("+") else digits


class ScreeningBot:
    """Screens 30016 incoming-call requests with an allow list and a block list.

    Args:
        client: the PBX client; :meth:`install` registers the bot's handler on it.
        allow: numbers to accept.
        block: numbers to refuse (a number on both lists is refused).
        unknown: the decision for everyone else.
        budget: seconds allowed for the accept/refuse request (the PBX's window is 10 s from
            when it sent the event).
        on_decision: called with each :class:`Screening` (default: logged).

    Attributes:
        results: every screened call, oldest first.
    """

    def __init__(
        self,
        client: YeastarClient,
        *,
        allow: Iterable[str] = (),
        block: Iterable[str] = (),
        unknown: Decision = "accept",
        budget: float = 8.0,
        on_decision: Callable[[Screening], object] | None = None,
    ) -> None:
        self.client = client
        self.allow = {_normalize(n) for n in allow}
        self.block = {_normalize(n) for n in block}
        self.unknown: Decision = unknown
        self.budget = budget
        self.on_decision = on_decision
        self.results: list[Screening] = []

    def install(self) -> None:
        """Register the bot's handler for ``events.IncomingCallRequest`` on the client."""
        self.client.add_handler(events.IncomingCallRequest, self.handle)

    def count(self, decision: Decision) -> int:
        """How many calls got ``decision`` (successful requests only)."""
        return sum(1 for r in self.results if r.decision == decision and r.ok)

    def decide(self, caller: str) -> tuple[Decision, str]:
        """The decision for ``caller`` and its reason; override for other rules."""
        number = _normalize(caller)
        if number in self.block:
            return "refuse", "block list"
        if number in self.allow:
            return "accept", "allow list"
        return self.unknown, "unknown caller"

    async def handle(self, event: events.IncomingCallRequest) -> None:
        """Decide on one incoming call and tell the PBX, within the window."""
        inbound = next((m.inbound for m in event.msg.members if m.inbound is not None), None)
        if inbound is None or not inbound.channel_id:
            logger.warning("30016 for call %s without an inbound leg", event.msg.call_id)
            return
        decision, reason = self.decide(inbound.from_)
        ok = True
        try:
            if decision == "accept":
                await self.client.call.accept_inbound(
                    channel_id=inbound.channel_id, timeout=self.budget
                )
            elif decision == "refuse":
                await self.client.call.refuse_inbound(
                    channel_id=inbound.channel_id, timeout=self.budget
                )
        except YeastarError as exc:
            # Too late or refused by the PBX: it routes the call on its own after the window.
            ok = False
            logger.error("could not %s call %s: %s", decision, event.msg.call_id, exc)
        result = Screening(event.msg.call_id, inbound.from_, decision, reason, ok)
        self.results.append(result)
        if self.on_decision is not None:
            self.on_decision(result)
        else:
            logger.info("%s %s (%s)", decision, result.caller, reason)


def _print_decision(result: Screening) -> None:
    verb = {"accept": "accepted", "refuse": "refused", "ignore": "left to the PBX"}[result.decision]
    failed = "" if result.ok else " (request failed)"
    print(f"{verb}: {result.caller} ({result.reason}), call {result.call_id}{failed}", flush=True)


async def main(argv: list[str] | None = None) -> int:
    """Run the bot until interrupted (or until ``--limit`` calls were screened)."""
    parser = argparse.ArgumentParser(description="Screen incoming calls (event 30016).")
    parser.add_argument("--allow", nargs="*", default=[], metavar="NUMBER", help="accept these")
    parser.add_argument("--block", nargs="*", default=[], metavar="NUMBER", help="refuse these")
    parser.add_argument(
        "--unknown",
        choices=("accept", "refuse", "ignore"),
        default="accept",
        help="what to do with other callers (default: accept)",
    )
    parser.add_argument("--limit", type=int, default=0, help="stop after N calls (0: never)")
    args = parser.parse_args(argv)

    enough = asyncio.Event()
    async with YeastarClient.from_env() as client:
        bot = ScreeningBot(
            client,
            allow=args.allow,
            block=args.block,
            unknown=args.unknown,
            on_decision=_print_decision,
        )
        bot.install()

        async def check_limit(_: events.IncomingCallRequest) -> None:
            # Registered after the bot's handler, so it runs once the decision is recorded.
            if args.limit and len(bot.results) >= args.limit:
                enough.set()

        client.add_handler(events.IncomingCallRequest, check_limit)
        listener = asyncio.create_task(client.listen())
        stopper = asyncio.create_task(enough.wait())
        # listen() returns only when the client closes, or raises for bad credentials.
        await asyncio.wait({listener, stopper}, return_when=asyncio.FIRST_COMPLETED)
        stopper.cancel()
    await listener  # returns once the client is closed; re-raises a credential failure
    return 0


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    with contextlib.suppress(KeyboardInterrupt):
        sys.exit(asyncio.run(main()))
