"""CDR recovery after a gap: REST records the handlers have not seen, once, in time order."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from tests._calls import cdr
from yeastar_async import YeastarClient
from yeastar_async.events import CdrRecovered, Checkpoint, Connected, Disconnected, NewCdr
from yeastar_async.events._recovery import CdrLedger
from yeastar_async.events._stream import _overlap
from yeastar_async.events.models import CdrInfo
from yeastar_async.testing import FakePBX

FAST: dict[str, Any] = {
    "heartbeat_interval": 0.2,
    "heartbeat_timeout": 0.5,
    "reconnect_delay_min": 0.02,
    "reconnect_delay_max": 0.1,
    "login_guard_state": None,
}
WAIT = 10.0


class Seen:
    def __init__(self, pbx: YeastarClient) -> None:
        self.events: list[Any] = []
        self.changed = asyncio.Event()
        pbx.add_handler(NewCdr, self.put)
        pbx.add_handler(Connected, self.put)
        pbx.add_handler(Disconnected, self.put)

    async def put(self, event: Any) -> None:
        self.events.append(event)
        self.changed.set()

    async def until(self, test: Any) -> None:
        async with asyncio.timeout(WAIT):
            while not test():
                self.changed.clear()
                await self.changed.wait()

    def calls(self) -> list[str]:
        return [e.msg.call_id for e in self.events if isinstance(e, NewCdr)]


async def test_a_reconnect_recovers_the_cdrs_of_the_gap_once_and_in_order() -> None:
    async with FakePBX() as fake:
        pbx = YeastarClient(fake.base_url, fake.client_id, fake.client_secret, **FAST)
        seen = Seen(pbx)
        listener = asyncio.create_task(pbx.listen())
        try:
            await fake.wait_for_subscription([30012])
            live = cdr(1)
            fake.store.record_call(live)
            await fake.emit(30012, live)
            await seen.until(lambda: len(seen.calls()) == 1)
            fake.black_hole()  # the link is dead to the client until its heartbeat check
            await seen.until(lambda: any(isinstance(e, Disconnected) for e in seen.events))
            now = time.time()
            missed = [cdr(3, now - 2), cdr(2, now - 3)]  # recorded out of order
            for payload in missed:
                fake.store.record_call(payload)
                await fake.emit(30012, payload)  # sent into the black hole: lost live
            fake.black_hole(False)
            await seen.until(lambda: len(seen.calls()) == 3)
            recovered = [e for e in seen.events if isinstance(e, CdrRecovered)]
            assert [e.msg.call_id for e in recovered] == [
                missed[1]["call_id"],
                missed[0]["call_id"],
            ]
            assert all(e.recovered and e.record is not None for e in recovered)
            connected = [e for e in seen.events if isinstance(e, Connected) and e.reconnect]
            assert connected[0].recovered_cdrs == 2
            assert connected[0].unrecoverable_topics == frozenset()
            # A live 30012 of a call recovered already is not delivered again.
            await fake.emit(30012, missed[0])
            again = cdr(4)
            fake.store.record_call(again)
            await fake.emit(30012, again)
            await seen.until(lambda: again["call_id"] in seen.calls())
            assert seen.calls().count(missed[0]["call_id"]) == 1
            assert pbx.event_stats.recovered_cdrs == 2
        finally:
            await pbx.aclose()
            await asyncio.wait({listener}, timeout=WAIT)


async def test_listen_since_a_checkpoint_recovers_what_a_stopped_process_missed() -> None:
    async with FakePBX() as fake:
        checkpoint = Checkpoint(time.time() - 60)
        before = cdr(7, time.time() - 30)
        fake.store.record_call(before)
        pbx = YeastarClient(fake.base_url, fake.client_id, fake.client_secret, **FAST)
        seen = Seen(pbx)
        listener = asyncio.create_task(pbx.listen(since=checkpoint))
        try:
            await seen.until(lambda: before["call_id"] in seen.calls())
            first = seen.events[0]
            assert isinstance(first, Connected)
            assert first.recovered_cdrs == 1
            assert pbx.checkpoint is not None
            assert pbx.checkpoint.time >= checkpoint.time
        finally:
            await pbx.aclose()
            await asyncio.wait({listener}, timeout=WAIT)


async def test_recovery_off_leaves_cdrs_live_only() -> None:
    async with FakePBX() as fake:
        pbx = YeastarClient(
            fake.base_url, fake.client_id, fake.client_secret, recover_cdrs=False, **FAST
        )
        seen = Seen(pbx)
        listener = asyncio.create_task(pbx.listen(since=time.time() - 60))
        try:
            await seen.until(lambda: bool(seen.events))
            assert seen.events[0] == Connected()
            fake.drop_connections()
            await seen.until(lambda: len(seen.events) == 3)
            assert 30012 in seen.events[1].unrecoverable_topics
            assert 30012 in seen.events[2].unrecoverable_topics
            assert not [r for r in fake.requests if "cdr" in r.path]
        finally:
            await pbx.aclose()
            await asyncio.wait({listener}, timeout=WAIT)


def test_the_manuals_call_id_and_uid_differ_so_start_second_and_parties_match() -> None:
    # Manual: 30012 call_id "1651057476.362" (start 19:04:36 +08:00); REST uid is of another
    # form ("20220614111928CC54A"), its timestamp the start second.
    event = NewCdr(msg=CdrInfo(call_id="1651057476.362", call_from="2005", call_to="2002"))
    ledger = CdrLedger()
    assert ledger.live(event)
    seen = ledger.seen()
    assert not ledger.recovered(
        [("id", "20220427190436ABCDE"), ("when", 1651057476, "2005", "2002")], seen
    )
    assert ledger.recovered(
        [("id", "20220427190436ABCDF"), ("when", 1651057476, "2005", "2009")], seen
    )


@pytest.mark.parametrize(
    ("tail", "received", "dropped"),
    [
        # E = A, B, A: the new link subscribed between A and B; the old one closed after B.
        # The second A is a distinct event of the same content: delivered, not merged.
        ([b"A", b"B"], [b"B", b"A"], 1),
        # E = A, A, C: the new link subscribed after the first A.
        ([b"X", b"A", b"A"], [b"A", b"C"], 1),
        ([b"X", b"A", b"A"], [b"A", b"A", b"C"], 2),
        # No common frame: nothing dropped.
        ([b"A"], [b"B"], 0),
        # Nothing received yet on the new link: nothing compared, nothing dropped.
        ([b"A", b"B"], [], 0),
    ],
)
def test_the_overlap_of_a_rotation_never_merges_frames_in_other_positions(
    tail: list[bytes], received: list[bytes], dropped: int
) -> None:
    assert min(_overlap(tail, received), len(received)) == dropped


def test_live_frames_of_one_call_pass_unless_the_call_was_recovered() -> None:
    event = NewCdr(msg=CdrInfo(call_id="1651057476.362", call_from="2005", call_to="2002"))
    ledger = CdrLedger()
    assert ledger.live(event)
    assert ledger.live(event)  # the PBX's own frames are not held back
    assert not ledger.recovered([("id", "1651057476.362")], ledger.seen())  # a REST record is
    recovered = NewCdr(msg=CdrInfo(call_id="1651057999.1", call_from="1", call_to="2"))
    assert ledger.recovered([("id", "1651057999.1")], ledger.seen())
    assert not ledger.live(recovered)
