"""The example of DESIGN.md ("Public API contract") run as written against the FakePBX.

One test walks the whole example with the example's own names: typed REST calls, one page and
every page of a list, an update, a dial, the ``request`` escape hatch, a handler for
``events.IncomingCallRequest`` that accepts the inbound leg inside the PBX's window while
``listen()`` runs in a task, and ``subscribe(30011, 30012)`` receiving a dial's events. Closing
the client makes ``listen()`` return normally.
"""

from __future__ import annotations

import asyncio
import time

from yeastar_async import YeastarClient, events
from yeastar_async.testing import FakePBX

#: Seconds the fake waits for accept/refuse after 30016 (10 on a PBX; shorter keeps a failure
#: quick, and still far above what an accept over loopback takes).
WINDOW = 3.0


async def test_design_md_example_runs_against_the_fake() -> None:
    async with FakePBX(inbound_window=WINDOW) as fake:
        assert fake.store is not None
        # The example updates extension id 60: give the fake one.
        fake.store.extensions.add({"number": "2060", "presence_status": "available"}, 60)
        client_id, client_secret = fake.client_id, fake.client_secret

        async with YeastarClient(fake.base_url, client_id, client_secret) as pbx:
            info = await pbx.system.information()  # typed Struct
            assert info.data is not None
            assert info.data.firmware_version
            page = await pbx.extension.list(page=1, page_size=50)  # page.data, page.total_number
            assert page.total_number == len(page.data) == 5
            numbers = []
            async for ext in pbx.extension.list(page_size=100):  # every item, all pages
                numbers.append(ext.number)
            assert numbers == [e.number for e in page.data]
            await pbx.extension.update(id=60, presence_status="off_work")
            assert fake.store.extensions.items[60]["presence_status"] == "off_work"
            dialled = await pbx.call.dial(caller="2000", callee="5503301")
            assert dialled.call_id in fake.calls
            raw = await pbx.request("GET", "extension/list", params={"page": 1})  # escape hatch
            assert isinstance(raw, dict)
            assert raw["total_number"] == 5

            accepted: list[str] = []
            handled = asyncio.Event()

            @pbx.on(events.IncomingCallRequest)  # or @pbx.on(30016)
            async def screen(ev: events.IncomingCallRequest) -> None:
                inbound = ev.msg.members[0].inbound
                assert inbound is not None
                await pbx.call.accept_inbound(channel_id=inbound.channel_id)
                accepted.append(inbound.channel_id)  # accept_inbound answered success
                handled.set()

            listener = asyncio.create_task(pbx.listen())  # supervised; returns on close
            await fake.wait_for_subscription([30016])

            started = time.monotonic()
            call = fake.simulate_inbound_call("5503301", did="2000")
            assert await call.outcome(timeout=WINDOW + 2) == "accepted"
            assert time.monotonic() - started < WINDOW  # decided inside the window
            async with asyncio.timeout(5):
                await handled.wait()
            assert accepted == [call.channel_id]
            request = fake.requests_for("call/accept_inbound")[-1]
            assert request.json == {"channel_id": call.channel_id}

            async with pbx.subscribe(30011, 30012) as stream:  # the same events as an iterator
                await fake.wait_for_subscription([30011, 30012, 30016])
                second = await pbx.call.dial(caller="2000", callee="2001")
                statuses: list[list[str]] = []
                async with asyncio.timeout(5):
                    async for ev in stream:
                        if isinstance(ev, events.CallStatusChanged):
                            if ev.msg.call_id == second.call_id:
                                statuses.append(
                                    [m.leg.member_status for m in ev.msg.members if m.leg]
                                )
                        else:
                            assert isinstance(ev, events.NewCdr)
                            if ev.msg.call_id == second.call_id:
                                cdr = ev.msg
                                break
            assert statuses == [["ALERT", "RING"], ["ANSWERED", "ANSWER"], ["BYE", "BYE"]]
            assert (cdr.call_from, cdr.call_to, cdr.status) == ("2000", "2001", "ANSWERED")
            assert not listener.done()

        # The client closed: listen() returned normally, with no error.
        async with asyncio.timeout(5):
            await listener  # re-raises whatever listen() raised
        assert listener.exception() is None
        assert fake.sockets == []
