"""``demo``: the fake PBX, the example screening bot and a few scripted calls, every event shown."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib
import importlib.util
import itertools
import sys
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any, Final

from .. import events
from ..client import YeastarClient
from ..errors import TransportError
from ._fake import print_fake_credentials
from ._format import format_event
from ._output import PROG, UsageError, ends_when_output_closes, out

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
    path = Path(__file__).resolve().parents[2] / "examples" / f"{name}.py"
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
    from ..testing import FakePBX  # imported here: only the demo and fake-pbx need the server

    screening = _load_example("screening_bot")
    out(f"{PROG} demo: a fake PBX on this machine, the example screening bot, a few calls.")
    # Short ring/talk times keep the demo to a few seconds; talk_time=None keeps a dialled
    # call up until the demo hangs it up.
    async with FakePBX(ring_time=0.2, talk_time=None) as pbx:
        out(f"FakePBX listening on {pbx.base_url}")
        async with (
            ends_when_output_closes() as guard,
            YeastarClient(pbx.base_url, pbx.client_id, pbx.client_secret) as client,
        ):
            log = _EventLog()
            connected = asyncio.Event()

            async def show(event: Any) -> None:
                log.record(event)
                out(format_event(event))

            async def on_connected(event: events.Connected) -> None:
                topics = " ".join(str(t) for t in DEMO_TOPICS)
                out(f"connected to the event stream (topics {topics})")
                connected.set()

            def decided(r: Any) -> None:
                failed = "" if r.ok else ": the request FAILED"
                out(f"{'':14}bot: {_DECIDED[r.decision]} {r.caller} ({r.reason}){failed}")

            client.add_handler(events.Connected, guard.handler(on_connected))
            for topic in DEMO_TOPICS:  # the printer first, so a 30016 shows before its decision
                client.add_handler(topic, guard.handler(show))
            bot = screening.ScreeningBot(
                client,
                allow=[DEMO_ALLOWED],
                block=[DEMO_BLOCKED],
                on_decision=guard.call(decided),
            )
            bot.install()
            out(f"screening bot: allow list {DEMO_ALLOWED}, block list {DEMO_BLOCKED}")
            listener = asyncio.create_task(client.listen(), name="demo-listen")
            try:
                await _first(connected.wait(), listener, timeout=10.0)
                steps = itertools.count(1)
                await _demo_scenario(
                    pbx, client, log, lambda text: out(f"\n▶ {next(steps)}. {text}")
                )
                out("")
                out(_demo_summary(bot, log))
                if args.forever:
                    out("")
                    print_fake_credentials(pbx)
                    out("The demo keeps running (bot and event printer): press Ctrl-C to stop.")
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
