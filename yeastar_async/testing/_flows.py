"""Scripted call flows of the FakePBX: the event sequences a real PBX emits for calls.

* An inbound call on a trunk with "inbound call control" (a monitored trunk): 30016 with the
  inbound leg, then the PBX waits ``inbound_window`` seconds (10 on the PBX) for
  ``call/accept_inbound`` or ``call/refuse_inbound`` with that leg's ``channel_id``. Accepted,
  or no answer in time (the PBX then proceeds on its own), the call rings its destination:
  30011 inbound ALERT + extension RING, then ANSWERED / ANSWER, then BYE, then the 30012 CDR.
  Refused: 30011 inbound BYE and a NO ANSWER CDR. Decisions after the window are ignored (the
  request still answers success, as the PBX does).
* ``call/dial``: 30011 with the caller ALERT and the callee RING, ANSWERED / ANSWER, BYE, then
  30012. A callee that is not an extension of the fake is reached over an outbound trunk leg.
* DTMF (30017), presence changes (30009), and 30008 extension call status along the way.
* Every call that ends also leaves its record in the CDR store (``cdr/list``, ``cdr/search``),
  made from its 30012 payload and stored before that event is sent.

Timing: ``ring_time`` and ``talk_time`` (per FakePBX, overridable per call) say how long a call
rings and talks; ``talk_time=None`` keeps the call up until ``call/hangup`` or
:meth:`FakeCall.hangup`. Call control endpoints (hold, mute, transfer, park, record ...) check
that the ``channel_id`` belongs to a live call (else 70130 CAHNNEL ID NOT FOUND) and answer
the manual's response.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from types import EllipsisType
from typing import Any

from ._log import RequestRecord
from ._stores import Stores

__all__ = ["CallFlows", "FakeCall", "Leg"]

Body = dict[str, Any]
Emit = Callable[[int, Mapping[str, Any]], Awaitable[int]]

#: Outcomes of the 30016 window ("hangup": the caller gave up during it).
ACCEPTED, REFUSED, TIMEOUT, NOT_MONITORED = "accepted", "refused", "timeout", "not_monitored"
HANGUP = "hangup"


@dataclass
class Leg:
    """One member of a call: ``kind`` is ``"extension"``, ``"inbound"`` or ``"outbound"``."""

    kind: str
    channel_id: str
    number: str = ""
    from_: str = ""
    to: str = ""
    trunk_name: str = ""
    status: str = "ALERT"

    def member(self) -> Body:
        """The leg as a ``members`` entry of 30011 / 30016 / 30017 / call/query."""
        if self.kind == "extension":
            info: Body = {"number": self.number, "channel_id": self.channel_id}
        else:
            info = {"from": self.from_, "to": self.to, "trunk_name": self.trunk_name}
            info["channel_id"] = self.channel_id
        info["member_status"] = self.status
        info["call_path"] = " "  # the PBX sends empty values as one space
        return {self.kind: info}


@dataclass(eq=False)
class FakeCall:
    """A call running on the fake.

    Attributes:
        call_id: the PBX call id (``"1702287660.12"``).
        kind: ``"inbound"``, ``"outbound"`` or ``"internal"`` (the CDR ``type``).
        legs: the members, caller first.
        decision: for an inbound call on a monitored trunk, resolves to ``"accepted"``,
            ``"refused"`` or ``"timeout"`` (``"not_monitored"`` otherwise).
        cdr: resolves to the 30012 payload when the call ends.
    """

    call_id: str
    kind: str
    legs: list[Leg]
    did: str = ""
    decision: asyncio.Future[str] = field(default_factory=asyncio.Future, repr=False)
    cdr: asyncio.Future[Body] = field(default_factory=asyncio.Future, repr=False)
    window_open: bool = False
    answered_at: float | None = None
    started_at: float = field(default_factory=time.monotonic)
    started_wall: float = field(default_factory=time.time)
    hangup_event: asyncio.Event = field(default_factory=asyncio.Event, repr=False)
    task: asyncio.Task[None] | None = field(default=None, repr=False)

    @property
    def channel_id(self) -> str:
        """The caller leg's channel id (for an inbound call: what accept/refuse_inbound take)."""
        return self.legs[0].channel_id

    @property
    def ended(self) -> bool:
        """Whether the call is over."""
        return self.cdr.done()

    async def outcome(self, timeout: float = 15.0) -> str:
        """Wait for the 30016 decision (``"accepted"``, ``"refused"``, ``"timeout"`` ...)."""
        async with asyncio.timeout(timeout):
            return await asyncio.shield(self.decision)

    async def finished(self, timeout: float = 15.0) -> Body:
        """Wait until the call ended; returns its CDR (the 30012 payload)."""
        async with asyncio.timeout(timeout):
            return await asyncio.shield(self.cdr)

    def hangup(self) -> None:
        """Hang the call up now (as if the caller put the phone down)."""
        self.hangup_event.set()

    def snapshot(self) -> Body:
        """The call as ``call/query`` and 30011 show it."""
        return {"call_id": self.call_id, "members": [leg.member() for leg in self.legs]}


class CallFlows:
    """Runs scripted calls and answers the ``call/*`` endpoints in store mode."""

    def __init__(
        self,
        stores: Stores,
        emit: Emit,
        *,
        inbound_window: float,
        ring_time: float,
        talk_time: float | None,
    ) -> None:
        self.stores = stores
        self._emit = emit
        self.inbound_window = inbound_window
        self.ring_time = ring_time
        self.talk_time = talk_time
        self.calls: dict[str, FakeCall] = {}
        self._seq = itertools.count(1)

    # -- identifiers ------------------------------------------------------------------------------
    def _call_id(self) -> str:
        return f"{int(time.time())}.{next(self._seq)}"

    def _channel(self, number: str) -> str:
        return f"PJSIP/{number}-{next(self._seq):08x}"

    def _trunk_channel(self, trunk: str) -> str:
        return f"PJSIP/trunk-{trunk}-endpoint-{next(self._seq):08x}"

    def is_extension(self, number: str) -> bool:
        """Whether ``number`` is an extension of the fake."""
        return self.stores.extension_by_number(number) is not None

    def live_calls(self) -> list[FakeCall]:
        """Calls not yet ended, oldest first."""
        return [c for c in self.calls.values() if not c.ended]

    def by_channel(self, channel_id: str) -> tuple[FakeCall, Leg] | None:
        """The live call and leg holding ``channel_id``."""
        for call in self.live_calls():
            for leg in call.legs:
                if leg.channel_id == channel_id:
                    return call, leg
        return None

    # -- starting calls ---------------------------------------------------------------------------
    def start_inbound(
        self,
        *,
        caller: str,
        callee: str,
        trunk: str,
        did: str,
        monitored: bool,
        answer: bool,
        ring_time: float | None,
        talk_time: float | EllipsisType | None,
    ) -> FakeCall:
        """Start an inbound call (see :meth:`FakePBX.simulate_inbound_call`)."""
        inbound = Leg(
            "inbound",
            self._trunk_channel(trunk),
            from_=caller,
            to=did or callee,
            trunk_name=trunk,
        )
        call = FakeCall(self._call_id(), "inbound", [inbound], did=did)
        self.calls[call.call_id] = call
        callee_leg = self._leg_for(callee, caller)
        script = self._inbound(call, callee_leg, monitored, answer, ring_time, talk_time)
        call.task = asyncio.get_running_loop().create_task(self._run(call, script))
        return call

    def start_dial(
        self,
        *,
        caller: str,
        callee: str,
        answer: bool = True,
        ring_time: float | None = None,
        talk_time: float | EllipsisType | None = ...,
    ) -> FakeCall:
        """Start a call the way ``call/dial`` does."""
        first = Leg("extension", self._channel(caller), number=caller)
        second = self._leg_for(callee, caller)
        kind = "internal" if second.kind == "extension" else "outbound"
        call = FakeCall(self._call_id(), kind, [first, second])
        self.calls[call.call_id] = call
        call.decision.set_result(NOT_MONITORED)
        script = self._connect(call, first, second, answer, ring_time, talk_time)
        call.task = asyncio.get_running_loop().create_task(self._run(call, script))
        return call

    def _leg_for(self, number: str, caller: str) -> Leg:
        if self.is_extension(number):
            return Leg("extension", self._channel(number), number=number)
        trunk = "peer-to-41"
        return Leg(
            "outbound", self._trunk_channel(trunk), from_=caller, to=number, trunk_name=trunk
        )

    # -- the scripts ----------------------------------------------------------------------------
    async def _run(self, call: FakeCall, script: Awaitable[None]) -> None:
        try:
            await script
        finally:
            if not call.ended:
                self._finish(call, "NO ANSWER")
            for leg in call.legs:
                self.stores.call_status.pop(leg.number, None)
        await self._emit(30012, call.cdr.result())  # not reached when the fake closes

    async def _inbound(
        self,
        call: FakeCall,
        callee: Leg,
        monitored: bool,
        answer: bool,
        ring_time: float | None,
        talk_time: float | EllipsisType | None,
    ) -> None:
        inbound = call.legs[0]
        if monitored:
            call.window_open = True
            await self._emit(30016, call.snapshot())
            hangup: asyncio.Future[Any] = asyncio.ensure_future(call.hangup_event.wait())
            decision: asyncio.Future[Any] = call.decision
            try:
                await asyncio.wait(
                    {decision, hangup},
                    timeout=self.inbound_window,
                    return_when=asyncio.FIRST_COMPLETED,
                )
            finally:
                hangup.cancel()
                call.window_open = False
            if not call.decision.done():
                # No decision in time: the PBX proceeds on its own.
                call.decision.set_result(HANGUP if call.hangup_event.is_set() else TIMEOUT)
        else:
            call.decision.set_result(NOT_MONITORED)
        if call.decision.result() in (REFUSED, HANGUP):
            inbound.status = "BYE"
            await self._emit(30011, call.snapshot())
            self._finish(call, "NO ANSWER")
            return
        call.legs.append(callee)
        await self._connect(call, inbound, callee, answer, ring_time, talk_time)

    async def _connect(
        self,
        call: FakeCall,
        caller: Leg,
        callee: Leg,
        answer: bool,
        ring_time: float | None,
        talk_time: float | EllipsisType | None,
    ) -> None:
        caller.status, callee.status = "ALERT", "RING"
        await self._state(call)
        hung_up = await self._wait(call, self.ring_time if ring_time is None else ring_time)
        if not answer or hung_up:
            caller.status = callee.status = "BYE"
            await self._state(call)
            self._finish(call, "NO ANSWER")
            return
        caller.status, callee.status = "ANSWERED", "ANSWER"
        call.answered_at = time.monotonic()
        await self._state(call)
        talk = self.talk_time if talk_time is ... else talk_time
        await self._wait(call, talk if isinstance(talk, (int, float)) else None)
        caller.status = callee.status = "BYE"
        await self._state(call)
        self._finish(call, "ANSWERED")

    async def _wait(self, call: FakeCall, seconds: float | None) -> bool:
        """Wait ``seconds`` (None: forever) or until hung up; True when hung up."""
        try:
            async with asyncio.timeout(seconds):
                await call.hangup_event.wait()
        except TimeoutError:
            return False
        return True

    async def _state(self, call: FakeCall) -> None:
        await self._emit(30011, call.snapshot())
        for leg in call.legs:
            if leg.kind != "extension":
                continue
            ring = leg.status in ("RING", "ALERT")
            status = "ringing" if ring else "idle" if leg.status == "BYE" else "busy"
            self.stores.call_status[leg.number] = 3 if ring else 1 if status == "idle" else 2
            await self._emit(30008, {"extension": leg.number, "status": status})

    def _finish(self, call: FakeCall, status: str) -> None:
        if call.cdr.done():
            return
        if not call.decision.done():
            call.decision.set_result(TIMEOUT)
        now = time.monotonic()
        talk = int(now - call.answered_at) if call.answered_at is not None else 0
        first, last = call.legs[0], call.legs[-1]
        src = first.trunk_name if first.kind == "inbound" else " "
        dst = last.trunk_name if last.kind == "outbound" else " "
        call_to = last.number or last.to
        cdr: Body = {
            "call_id": call.call_id,
            "time_start": time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(call.started_wall)),
            "call_from": first.number or first.from_,
            "call_to": call_to,
            "call_duration": int(now - call.started_at),
            "talk_duration": talk,
            "src_trunk_name": src or " ",
            "dst_trunk_name": dst or " ",
            "pin_code": " ",
            "status": status,
            "type": call.kind.capitalize(),  # the PBX sends "Inbound", "Internal" ...
            "recording": " ",
            "did_number": call.did or " ",
            "agent_ring_time": 0,
        }
        # Kept for cdr/list and cdr/search before the 30012 goes out: whoever reacts to the
        # event (or awaits call.finished()) finds the record there.
        self.stores.record_call(cdr)
        call.cdr.set_result(cdr)

    async def dtmf(self, call: FakeCall, digits: str) -> int:
        """Emit one 30017 per digit; returns how many frames reached sockets."""
        sent = 0
        for flag, digit in enumerate(digits):
            payload = {**call.snapshot(), "info": digit, "flag": flag, "infos": digits[: flag + 1]}
            sent += await self._emit(30017, payload)
        return sent

    async def close(self) -> None:
        """Stop every running call."""
        tasks = [c.task for c in self.calls.values() if c.task is not None and not c.task.done()]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    # -- REST handlers --------------------------------------------------------------------------
    def dial(self, record: RequestRecord) -> Body:
        """``call/dial``: start the scripted call; answers its call_id."""
        params = record.params
        call = self.start_dial(caller=str(params["caller"]), callee=str(params["callee"]))
        return self.stores.ok(call_id=call.call_id)

    def _decide(self, record: RequestRecord, decision: str) -> Body:
        found = self.by_channel(str(record.params["channel_id"]))
        if found is None or found[1].kind != "inbound":
            return self.stores.error(70130)
        call = found[0]
        if call.window_open and not call.decision.done():
            call.decision.set_result(decision)
        # After the window the PBX ignores the request but still answers success.
        return self.stores.ok(call_id=call.call_id)

    def accept_inbound(self, record: RequestRecord) -> Body:
        """``call/accept_inbound``: accept a 30016 call inside its window."""
        return self._decide(record, ACCEPTED)

    def refuse_inbound(self, record: RequestRecord) -> Body:
        """``call/refuse_inbound``: refuse a 30016 call inside its window."""
        return self._decide(record, REFUSED)

    def hangup(self, record: RequestRecord) -> Body:
        """``call/hangup``: end the call holding ``channel_id`` (or ``paging_number``)."""
        channel = record.params.get("channel_id") or record.params.get("paging_number")
        found = self.by_channel(str(channel or ""))
        if found is None:
            return self.stores.error(70130)
        found[0].hangup()
        return self.stores.ok(call_id=found[0].call_id)

    def query(self, record: RequestRecord) -> Body:
        """``call/query``: live calls by call_id, by type, or by extension number."""
        params = record.params
        calls = self.live_calls()
        if params.get("call_id"):
            calls = [c for c in calls if c.call_id == params["call_id"]]
        elif params.get("type"):
            calls = [c for c in calls if c.kind == params["type"]]
        elif params.get("number"):
            calls = [c for c in calls if any(leg.number == params["number"] for leg in c.legs)]
        else:
            invalid = [{"field": "call_id", "validation_type": "required"}]
            return self.stores.error(40002, invalid_param_list=invalid)
        return self.stores.ok(data=[c.snapshot() for c in calls])

    def channel_action(self, example: Callable[[RequestRecord], Body]) -> Callable[..., Body]:
        """A handler for call control taking a ``channel_id`` of a live call."""

        def handler(record: RequestRecord) -> Body:
            found = self.by_channel(str(record.params.get("channel_id", "")))
            if found is None:
                return self.stores.error(70130)
            body = example(record)
            if "call_id" in body:
                body["call_id"] = found[0].call_id
            return body

        return handler
