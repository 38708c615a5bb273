"""Every example of examples/ runs against a FakePBX over loopback, through its ``main()``.

The examples read the PBX address and credentials from the environment, as a user runs them;
each test points that environment at its own FakePBX.
"""

from __future__ import annotations

import asyncio
import csv
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from examples import cdr_to_csv, multi_tenant, presence_sync, screening_bot, wakeup_calls
from yeastar_async import YeastarClient
from yeastar_async.testing import FakePBX


@pytest.fixture
async def pbx(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[FakePBX]:
    async with FakePBX(ring_time=0.01, talk_time=0.01) as fake:
        monkeypatch.setenv("YEASTAR_BASE_URL", fake.base_url)
        monkeypatch.setenv("YEASTAR_CLIENT_ID", fake.client_id)
        monkeypatch.setenv("YEASTAR_CLIENT_SECRET", fake.client_secret)
        monkeypatch.delenv("YEASTAR_PIN", raising=False)
        yield fake


async def _finish(task: asyncio.Task[int], timeout: float = 10.0) -> int:
    async with asyncio.timeout(timeout):
        return await task


def _presence(pbx: FakePBX, number: str) -> Any:
    assert pbx.store is not None
    ext = pbx.store.extension_by_number(number)
    assert ext is not None
    return ext["presence_status"]


# -- screening_bot ------------------------------------------------------------------------------


async def test_screening_bot_accepts_allowed_and_refuses_blocked(
    pbx: FakePBX, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["--allow", "5503301", "--block", "555 0100", "--limit", "2"]
    task = asyncio.create_task(screening_bot.main(argv))
    await pbx.wait_for_subscription([30016])

    allowed = pbx.simulate_inbound_call("5503301")
    assert await allowed.outcome(timeout=5) == "accepted"
    blocked = pbx.simulate_inbound_call("5550100")  # listed as "555 0100": digits compared
    assert await blocked.outcome(timeout=5) == "refused"

    assert await _finish(task) == 0
    out = capsys.readouterr().out
    assert f"accepted: 5503301 (allow list), call {allowed.call_id}" in out
    assert f"refused: 5550100 (block list), call {blocked.call_id}" in out
    accepted = pbx.requests_for("call/accept_inbound")
    assert [r.params["channel_id"] for r in accepted] == [allowed.channel_id]
    refused = pbx.requests_for("call/refuse_inbound")
    assert [r.params["channel_id"] for r in refused] == [blocked.channel_id]


async def test_screening_bot_unknown_policy_and_ignore() -> None:
    # "ignore" sends nothing: the PBX routes the call itself when the window closes.
    async with FakePBX(inbound_window=0.05, ring_time=0.0, talk_time=0.0) as pbx:
        client = YeastarClient(pbx.base_url, pbx.client_id, pbx.client_secret)
        async with client:
            bot = screening_bot.ScreeningBot(client, block=["+1 555 0100"], unknown="ignore")
            assert bot.decide("+15550100") == ("refuse", "block list")
            assert bot.decide("15550100") == ("ignore", "unknown caller")  # no "+": another number
            bot.install()
            async with client.subscribe(30012) as stream:
                await pbx.wait_for_subscription([30012, 30016])
                call = pbx.simulate_inbound_call("4000")
                assert await call.outcome(timeout=5) == "timeout"
                cdr = await anext(stream)
            assert cdr.msg.call_id == call.call_id
        assert [r.decision for r in bot.results] == ["ignore"]
        assert pbx.count("call/accept_inbound") == pbx.count("call/refuse_inbound") == 0


async def test_screening_bot_reports_a_failed_request() -> None:
    decisions: list[screening_bot.Screening] = []
    decided = asyncio.Event()

    def record(result: screening_bot.Screening) -> None:
        decisions.append(result)
        decided.set()

    async with (
        FakePBX(inbound_window=0.05) as pbx,
        YeastarClient(pbx.base_url, pbx.client_id, pbx.client_secret) as client,
    ):
        bot = screening_bot.ScreeningBot(client, allow=["5503301"], on_decision=record)
        bot.install()
        pbx.fail_next_errcode(1, 70130, endpoint="call/accept_inbound")
        async with client.subscribe(30012):
            await pbx.wait_for_subscription([30012, 30016])
            call = pbx.simulate_inbound_call("5503301")
            async with asyncio.timeout(5):
                await decided.wait()
    assert decisions == [
        screening_bot.Screening(call.call_id, "5503301", "accept", "allow list", ok=False)
    ]
    assert bot.count("accept") == 0


# -- cdr_to_csv ---------------------------------------------------------------------------------


async def test_cdr_to_csv_appends_one_row_per_cdr(
    pbx: FakePBX, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "calls.csv"
    task = asyncio.create_task(cdr_to_csv.main(["--out", str(out), "--limit", "2"]))
    await pbx.wait_for_subscription([30012])

    internal = pbx.simulate_dial("2000", "2001")
    await internal.finished()
    inbound = pbx.simulate_inbound_call("5503301", monitored=False)
    await inbound.finished()

    assert await _finish(task) == 0
    with out.open(newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert [r["call_id"] for r in rows] == [internal.call_id, inbound.call_id]
    assert rows[0]["call_from"] == "2000"
    assert rows[0]["call_to"] == "2001"
    assert rows[0]["status"] == "ANSWERED"
    assert rows[0]["type"] == "Internal"
    assert rows[1]["src_trunk_name"] == "peer-to-41"
    assert rows[1]["type"] == "Inbound"
    assert list(rows[0]) == list(cdr_to_csv.COLUMNS)
    assert "2 CDR(s) written" in capsys.readouterr().out


async def test_cdr_to_csv_keeps_existing_rows(pbx: FakePBX, tmp_path: Path) -> None:
    out = tmp_path / "calls.csv"
    out.write_text(",".join(cdr_to_csv.COLUMNS) + "\r\nold,,,,,,,,,,,,\r\n", encoding="utf-8")
    task = asyncio.create_task(cdr_to_csv.main(["--out", str(out), "--limit", "1"]))
    await pbx.wait_for_subscription([30012])
    call = pbx.simulate_dial("2000", "2005")
    await call.finished()
    assert await _finish(task) == 0
    lines = out.read_text(encoding="utf-8").splitlines()
    assert len(lines) == 3  # one header, the old row, the new one
    assert lines[1].startswith("old,")
    assert lines[2].startswith(call.call_id + ",")


# -- presence_sync ------------------------------------------------------------------------------


async def test_presence_sync_mirrors_both_ways_without_ping_pong(
    pbx: FakePBX, capsys: pytest.CaptureFixture[str]
) -> None:
    task = asyncio.create_task(presence_sync.main(["--pair", "2000:2001", "--limit", "2"]))
    await pbx.wait_for_subscription([30009])

    await pbx.set_presence("2000", "away")
    await pbx.wait_until(lambda: _presence(pbx, "2001") == "away", 5, "2001 away")
    await pbx.set_presence("2001", "lunch")
    await pbx.wait_until(lambda: _presence(pbx, "2000") == "lunch", 5, "2000 lunch")

    assert await _finish(task) == 0
    updates = pbx.requests_for("extension/update")
    # One update per change: the PBX's echo of each update (a 30009 for the twin) is not
    # copied back.
    assert [(r.params["id"], r.params["presence_status"]) for r in updates] == [
        (223, "away"),
        (39, "lunch"),
    ]
    assert "2 presence update(s) made" in capsys.readouterr().out


async def test_presence_sync_aligns_pairs_when_it_connects(pbx: FakePBX) -> None:
    await pbx.set_presence("2005", "off_work")  # before the script runs: no event seen
    async with YeastarClient(pbx.base_url, pbx.client_id, pbx.client_secret) as client:
        sync = presence_sync.PresenceSync(client, [("2005", "2002")])
        await sync.refresh()
        assert sync.updates == 1
    assert _presence(pbx, "2002") == "off_work"


def test_presence_sync_rejects_a_bad_pair() -> None:
    with pytest.raises(SystemExit):
        asyncio.run(presence_sync.main(["--pair", "2000"]))


# -- wakeup_calls -------------------------------------------------------------------------------


async def test_wakeup_calls_set_list_cancel_checkout(
    pbx: FakePBX, capsys: pytest.CaptureFixture[str]
) -> None:
    assert pbx.store is not None
    argv = ["set", "2001", "06:45", "--repeat", "every_monday", "every_friday", "--snoozes", "2"]
    assert await wakeup_calls.main(argv) == 0
    created = pbx.requests_for("wakeupcall/create")[-1].params
    assert created["ext_id"] == 223
    assert created["alarm_time"] == "06:45"
    assert created["repeat_type"] == "every_monday,every_friday"
    alarm_id = pbx.store.wakeups[223][-1]["id"]
    assert f"room 2001: wake-up call {alarm_id} at 06:45" in capsys.readouterr().out

    assert await wakeup_calls.main(["list", "2001"]) == 0
    listed = capsys.readouterr().out
    assert f"room 2001: #{alarm_id} 06:45 repeat every_monday,every_friday" in listed
    assert "room 2000" not in listed

    assert await wakeup_calls.main(["cancel", "2001", "--id", str(alarm_id)]) == 0
    assert alarm_id not in [a["id"] for a in pbx.store.wakeups[223]]

    assert pbx.store.wakeups.get(39)  # extension 2000 has alarms in the fake's seed data
    assert await wakeup_calls.main(["checkout", "2000"]) == 0
    assert not pbx.store.wakeups.get(39)
    assert "room 2000: checked out" in capsys.readouterr().out


async def test_wakeup_calls_unknown_room_and_pbx_error(
    pbx: FakePBX, capsys: pytest.CaptureFixture[str]
) -> None:
    assert await wakeup_calls.main(["set", "9999", "07:00"]) == 1
    assert "error: no extension 9999" in capsys.readouterr().err
    pbx.fail_next_errcode(1, 70524, endpoint="hotel/checkout")
    assert await wakeup_calls.main(["checkout", "2000"]) == 1
    err = capsys.readouterr().err
    assert "70524" in err
    assert "Traceback" not in err


def test_wakeup_calls_rejects_a_bad_time() -> None:
    with pytest.raises(SystemExit):
        asyncio.run(wakeup_calls.main(["set", "2001", "7am"]))


async def test_examples_need_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("YEASTAR_BASE_URL", raising=False)
    with pytest.raises(ValueError, match="YEASTAR_BASE_URL"):
        await wakeup_calls.main(["list"])


# -- multi_tenant -------------------------------------------------------------------------------


async def test_multi_tenant_one_handler_set_with_the_tenant_on_each_event(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    async with (
        FakePBX(ring_time=0.01, talk_time=0.01) as acme,
        FakePBX(ring_time=0.01, talk_time=0.01) as globex,
    ):
        tenants = tmp_path / "tenants.json"
        tenants.write_text(
            json.dumps(
                [
                    {
                        "tenant": name,
                        "base_url": pbx.base_url,
                        "client_id": pbx.client_id,
                        "client_secret": pbx.client_secret,
                    }
                    for name, pbx in (("acme", acme), ("globex", globex))
                ]
            )
        )
        tenants.chmod(0o600)
        task = asyncio.create_task(multi_tenant.main(["--tenants", str(tenants), "--limit", "2"]))
        await acme.wait_for_subscription([30012])
        await globex.wait_for_subscription([30012])
        first = acme.simulate_dial("2000", "2001")
        second = globex.simulate_dial("2005", "2002")
        assert await _finish(task) == 0
    out = capsys.readouterr().out
    assert f"acme: call {first.call_id} 2000 -> 2001" in out
    assert f"globex: call {second.call_id} 2005 -> 2002" in out
    assert acme.client_secret not in out
    assert globex.client_secret not in out


def test_multi_tenant_rejects_a_bad_tenants_file(tmp_path: Path) -> None:
    path = tmp_path / "tenants.json"
    path.write_text(json.dumps([{"tenant": "acme", "base_url": "https://pbx:8088"}]))
    with pytest.raises(ValueError, match="entry 0 lacks client_id, client_secret"):
        multi_tenant.load_tenants(path)
    path.write_text(
        json.dumps([{"tenant": "a", "base_url": "u", "client_id": "i", "client_secret": "s"}] * 2)
    )
    with pytest.raises(ValueError, match=r"repeated: \['a'\]"):
        multi_tenant.load_tenants(path)
    assert "secret" not in repr(multi_tenant.Tenant("a", "u", "i", "secret"))
