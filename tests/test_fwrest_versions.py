"""API v2.0 routing: firmware parsing, the per-client profile, the same user code at old and
current firmware against the FakePBX, merge_history, dates from system/information."""

from __future__ import annotations

import asyncio
import json
import logging
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import msgspec
import pytest

from yeastar_async import YeastarClient
from yeastar_async._firmware import Firmware, parse_firmware
from yeastar_async.errors import ApiUnavailableError
from yeastar_async.resources import _v2
from yeastar_async.resources._history import cdrs_between
from yeastar_async.resources._profile import (
    V2_NAMES,
    VERSION_ONLY,
    check_cdr_api_version,
    strftime_of,
)
from yeastar_async.resources.call_report import CallReportListResponse, UnreturnMissCallList
from yeastar_async.resources.cdr import CDRDetails
from yeastar_async.testing import FakePBX

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))
import catalog_files  # noqa: E402

OLD = None  # the fake's default: the manual's "X.7.0.16", the April 2024 API
CURRENT = "84.23.0.123"
WIDE = {"start_time": datetime(2022, 1, 1), "end_time": datetime(2031, 1, 1)}


@asynccontextmanager
async def pbx_at(firmware: str | None, **fake: Any) -> AsyncIterator[tuple[FakePBX, YeastarClient]]:
    async with (
        asyncio.timeout(20),
        FakePBX(firmware=firmware, **fake) as pbx,
        YeastarClient(pbx.base_url, pbx.client_id, pbx.client_secret) as client,
    ):
        yield pbx, client


def add_new_cdr(pbx: FakePBX, uid: str, when: datetime | None = None) -> None:
    """A record of a call the PBX finished now (after the fake's upgrade moment)."""
    assert pbx.store is not None
    moment = when or datetime.now().replace(microsecond=0) + timedelta(seconds=1)
    pbx.store.cdrs.add(
        {
            "time": moment.strftime("%m/%d/%Y %H:%M:%S"),
            "timestamp": int(moment.timestamp()),
            "uid": uid,
            "call_from": "Leo Ball<2000>",
            "call_to": "2001",
            "duration": 9,
            "ring_duration": 2,
            "talk_duration": 7,
            "disposition": "ANSWERED",
            "call_type": "Internal",
        }
    )


# -- firmware -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "parsed", "v2_reports", "v2_cdr", "webhook"),
    [
        ("84.23.0.123", Firmware(84, 23, 0, 123), True, True, True),
        ("37.23.0.123", Firmware(37, 23, 0, 123), True, True, True),
        ("83.22.0.200", Firmware(83, 22, 0, 200), True, False, True),
        ("83.21.0.117", Firmware(83, 21, 0, 117), True, False, True),
        ("84.21.0.116", Firmware(84, 21, 0, 116), False, False, True),
        ("37.20.0.21", Firmware(37, 20, 0, 21), False, False, True),
        ("37.20.0.20", Firmware(37, 20, 0, 20), False, False, False),
        (" 84.24.1.5 ", Firmware(84, 24, 1, 5), True, True, True),
        ("30.23.0.123", Firmware(30, 23, 0, 123), False, False, False),  # not P-Series
    ],
)
def test_firmware_lines_and_thresholds(
    text: str, parsed: Firmware, v2_reports: bool, v2_cdr: bool, webhook: bool
) -> None:
    firmware = parse_firmware(text)
    assert firmware == parsed
    assert (firmware.has("v2_reports"), firmware.has("v2_cdr"), firmware.has("webhook")) == (
        v2_reports,
        v2_cdr,
        webhook,
    )


@pytest.mark.parametrize("text", ["X.7.0.16", "", "84.23.0", "84.23.0.123-beta", None, 84230123])
def test_unknown_firmware_formats_parse_to_none(text: object) -> None:
    assert parse_firmware(text) is None


async def test_unknown_firmware_means_v1_with_a_debug_log(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="yeastar_async")
    async with pbx_at("V9-beta") as (pbx, client):
        answer = await client.cdr.search(**WIDE)
    assert answer.api_version == "1.0"
    assert "not a known P-Series version" in caplog.text
    assert all(r.api_version == "1.0" for r in pbx.requests)


def test_cdr_api_version_is_validated() -> None:
    assert check_cdr_api_version("2.0") == "2.0"
    with pytest.raises(ValueError, match=r"'3\.0'"):
        YeastarClient("https://pbx.example.com", "id", "secret", cdr_api_version="3.0")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="2"):
        check_cdr_api_version(2)


# -- the same user code at old and current firmware ---------------------------------------------


async def test_old_firmware_serves_every_record_at_v1() -> None:
    async with pbx_at(OLD) as (pbx, client):
        add_new_cdr(pbx, "new-1")
        answer = await client.cdr.search(**WIDE)
        merged = await client.cdr.search(**WIDE, merge_history=True)
    assert answer.api_version == "1.0"
    assert all(isinstance(r, CDRDetails) for r in answer.data)
    assert "new-1" in {r.uid for r in answer.data}
    assert {r.uid for r in merged.data} == {r.uid for r in answer.data}
    assert {r.api_version for r in pbx.requests} == {"1.0"}


async def test_current_firmware_moves_new_records_to_v2_and_merge_gets_them_all() -> None:
    async with pbx_at(CURRENT) as (pbx, client):
        add_new_cdr(pbx, "new-1")
        add_new_cdr(pbx, "new-2")
        assert pbx.store is not None
        history = {r["uid"] for r in pbx.store.cdrs.history()}
        new = await client.cdr.search(**WIDE)
        merged = await client.cdr.search(**WIDE, merge_history=True)
        between = await cdrs_between(client.cdr, WIDE["start_time"], WIDE["end_time"])
        listed = [row async for row in client.cdr.list(page_size=1)]
    assert isinstance(new, _v2.CdrPageV2)
    assert new.api_version == "2.0"
    assert {r.uid for r in new.data} == {"new-1", "new-2"}
    assert new.data[0].call_from_number == "2000"
    assert new.data[0].handling_duration == 7
    # merge_history: the v1.0 history (the manual's records), then the v2.0 ones.
    assert merged.api_version == "1.0+2.0"
    assert [type(r) for r in merged.data[: len(history)]] == [CDRDetails] * len(history)
    assert {r.uid for r in merged.data} == history | {"new-1", "new-2"}
    assert merged.total_number == len(history) + 2
    assert [r.uid for r in between.data] == [r.uid for r in merged.data]
    assert {r.uid for r in listed} == {"new-1", "new-2"}
    paths = {r.path for r in pbx.requests}
    assert "/openapi/v2.0/cdr/search" in paths
    assert "/openapi/v1.0/cdr/search" in paths
    # The v2.0 search got the time range under its own names.
    v2 = next(r for r in pbx.requests if r.path == "/openapi/v2.0/cdr/search")
    assert {"time_begin", "time_end"} <= set(v2.query)
    assert "start_time" not in v2.query


async def test_v1_keeps_only_rows_older_than_the_upgrade() -> None:
    upgrade = datetime(2022, 6, 1)
    async with pbx_at(CURRENT, cdr_upgrade=upgrade) as (_, client):
        v1 = await client.request("GET", "cdr/list")
        v2 = await client.cdr.list()
    v1_times = [datetime.strptime(r["time"], "%m/%d/%Y %H:%M:%S") for r in v1["data"]]
    assert v1_times
    assert all(t < upgrade for t in v1_times)
    assert v2.api_version == "2.0"
    assert [r.uid for r in v2.data] == ["20220614111928CC54A"]  # the one record after June 1


@pytest.mark.parametrize(("firmware", "version"), [(OLD, "1.0"), ("84.21.0.117", "2.0")])
async def test_call_reports_follow_the_firmware(firmware: str | None, version: str) -> None:
    async with pbx_at(firmware) as (pbx, client):
        answer = await client.call_report.list(type="extcallstatistics", ext_id_list="1", **WIDE)
        # CDRs move later than reports: at 84.21.0.117 they stay at v1.0.
        cdrs = await client.cdr.search(**WIDE)
    assert isinstance(answer, CallReportListResponse)
    assert answer.api_version == version
    assert answer.ext_call_statistics_list
    assert cdrs.api_version == "1.0"
    [record] = pbx.requests_for("call_report/list")
    assert record.path == f"/openapi/v{version}/call_report/list"


async def test_system_information_is_read_once_per_client() -> None:
    async with pbx_at(CURRENT) as (pbx, client):
        await asyncio.gather(*(client.cdr.search(**WIDE) for _ in range(5)))
        await client.call_report.list(type="extcallstatistics", ext_id_list="1", **WIDE)
        assert pbx.count("system/information") == 1
        async with YeastarClient(pbx.base_url, pbx.client_id, pbx.client_secret) as other:
            await other.cdr.list()
        assert pbx.count("system/information") == 2


async def test_forced_version_and_formats_read_nothing() -> None:
    async with pbx_at(CURRENT) as (pbx, _):
        async with YeastarClient(
            pbx.base_url,
            pbx.client_id,
            pbx.client_secret,
            cdr_api_version="1.0",
            datetime_format="%m/%d/%Y %H:%M:%S",
            timezone=UTC,
        ) as client:
            answer = await client.cdr.search(**WIDE)
        assert answer.api_version == "1.0"
        assert pbx.count("system/information") == 0


async def test_forced_v2_on_an_old_pbx_shows_the_pbx_error() -> None:
    async with (
        pbx_at(OLD) as (pbx, _),
        YeastarClient(
            pbx.base_url, pbx.client_id, pbx.client_secret, cdr_api_version="2.0"
        ) as client,
    ):
        with pytest.raises(ApiUnavailableError) as caught:
            await client.cdr.search(**WIDE)
    assert caught.value.errcode == 10001
    assert "openapi/v2.0/cdr/search" in str(caught.value)


async def test_cdr_detail_is_v2_only() -> None:
    async with pbx_at(CURRENT) as (pbx, client):
        add_new_cdr(pbx, "new-1")
        detail = await client.cdr.detail(uid="new-1")
    assert isinstance(detail, _v2.CdrDetailResponse)
    assert detail.api_version == "2.0"
    assert detail.data is not None and detail.data.basic is not None  # noqa: PT018
    assert detail.data.basic.uid == "new-1"
    assert detail.data.timeline[0].talk_duration == 7
    async with pbx_at(OLD) as (pbx, client):
        with pytest.raises(ApiUnavailableError, match=r"only at openapi/v2\.0"):
            await client.cdr.detail(uid="new-1")
        assert pbx.requests_for("cdr/detail") == []


async def test_a_filter_of_the_other_version_is_refused_before_sending() -> None:
    async with pbx_at(CURRENT) as (pbx, client):
        with pytest.raises(ValueError, match=r"pin_code only exist at openapi/v1\.0"):
            await client.cdr.search(pin_code="1234", **WIDE)
        with pytest.raises(ValueError, match="queue_list"):
            await client.cdr.search(queue_list="6402", merge_history=True, **WIDE)
        with pytest.raises(ValueError, match=r"page="):
            await client.cdr.search(page=2, merge_history=True, **WIDE)
        assert pbx.requests_for("cdr/search") == []
    async with pbx_at(OLD) as (pbx, client):
        with pytest.raises(ValueError, match=r"queue_list only exist at openapi/v2\.0"):
            await client.cdr.search(queue_list="6402")
        assert pbx.requests_for("cdr/search") == []


# -- dates from system/information ---------------------------------------------------------


@pytest.mark.parametrize(
    ("date_format", "time_format", "sample", "expected"),
    [
        ("YYYY/MM/DD", "hh:mm:ss", "", "%Y/%m/%d %H:%M:%S"),
        ("MM/DD/YYYY", "HH:mm:ss", "", "%m/%d/%Y %H:%M:%S"),
        ("DD/MM/YYYY", "hh:mm:ss A", "", "%d/%m/%Y %I:%M:%S %p"),
        ("DD-MM-YYYY", "hh:mm:ss", "18-10-2025 03:10:26 PM", "%d-%m-%Y %I:%M:%S %p"),
        ("YYYY/MM/MM", "hh:mm:ss", "", None),
        ("Day/Month", "hh:mm:ss", "", None),
        (None, None, "", None),
    ],
)
def test_display_formats(
    date_format: str | None, time_format: str | None, sample: str, expected: str | None
) -> None:
    assert strftime_of(date_format, time_format, sample) == expected


async def test_pbx_date_format_and_offset_are_used_without_configuration() -> None:
    fake = {"system_date_format": "YYYY/MM/DD", "utc_offset": timedelta(hours=2)}
    async with pbx_at(OLD, **fake) as (pbx, client):
        info = await client.system.information()
        assert info.data is not None
        assert (info.data.system_date_format, info.data.system_time_format) == (
            "YYYY/MM/DD",
            "hh:mm:ss",
        )
        add_new_cdr(pbx, "at-noon", datetime(2030, 1, 1, 12, 0, 0))
        # 10:00 UTC is 12:00 at the PBX (UTC+2), shown and read as YYYY/MM/DD.
        start = datetime(2030, 1, 1, 9, 59, 50, tzinfo=UTC)
        end = datetime(2030, 1, 1, 10, 0, 10, tzinfo=UTC)
        answer = await client.cdr.search(start_time=start, end_time=end)
        [record] = pbx.requests_for("cdr/search")
    assert record.query["start_time"] == "2030/01/01 11:59:50"
    assert [r.uid for r in answer.data] == ["at-noon"]
    assert answer.data[0].time == "2030/01/01 12:00:00"


async def test_the_users_format_and_zone_win() -> None:
    fake = {"system_date_format": "YYYY/MM/DD", "utc_offset": timedelta(hours=2)}
    async with pbx_at(OLD, **fake) as (pbx, _):
        async with YeastarClient(
            pbx.base_url,
            pbx.client_id,
            pbx.client_secret,
            datetime_format="%d.%m.%Y %H:%M:%S",
            timezone=timezone(timedelta(hours=-5)),
        ) as client:
            start = datetime(2030, 1, 1, 10, 0, 0, tzinfo=UTC)
            await client.cdr.search(start_time=start)
        [record] = pbx.requests_for("cdr/search")
    assert record.query["start_time"] == "01.01.2030 05:00:00"


async def test_older_firmware_reports_no_format_and_keeps_the_defaults() -> None:
    async with pbx_at(OLD) as (pbx, client):
        start = datetime(2022, 5, 30, 14, 0, 0, tzinfo=timezone(timedelta(hours=9)))
        await client.cdr.search(start_time=start)
        [record] = pbx.requests_for("cdr/search")
        info = await client.system.information()
    assert record.query["start_time"] == "05/30/2022 14:00:00"  # its own wall-clock time
    assert info.data is not None
    assert info.data.system_date_format is None
    assert info.data.timestamp is None


# -- new parameters and answers -----------------------------------------------------------


async def test_unreturned_missed_call_report() -> None:
    row = {"id": "m1", "time": "2026/09/15 10:00:00", "miss_call_type": "busy", "ring_duration": 10}
    async with pbx_at(OLD) as (pbx, client):
        pbx.set_response(
            "call_report/list",
            {
                "errcode": 0,
                "errmsg": "SUCCESS",
                "total_number": 1,
                "unreturn_miss_call_list": [row],
            },
        )
        answer = await client.call_report.list(
            type="unreturnmisscall", miss_call_type="busy", **WIDE
        )
        [record] = pbx.requests_for("call_report/list")
    assert record.query["miss_call_type"] == "busy"
    assert answer.unreturn_miss_call_list == [
        UnreturnMissCallList(id="m1", time=row["time"], miss_call_type="busy", ring_duration=10)
    ]


async def test_new_endpoints_answer() -> None:
    async with pbx_at(CURRENT) as (pbx, client):
        password = await client.extension.getpassword(id=80, type="reg_password")
        await client.system.sendemail(email_server="ys", recipient=["leo@example.com"])
        detail = await client.call_report.detail(
            type="ivr", ivr_num="6500", start_time=WIDE["start_time"], end_time=WIDE["end_time"]
        )
    assert password.password == "SGM2bUFyVzYyTQ=="
    assert detail.api_version == "2.0"
    sent = pbx.requests_for("system/sendemail")[0]
    assert sent.json == {"email_server": "ys", "recipient": ["leo@example.com"]}


async def test_webhooks_need_firmware_20() -> None:
    async with pbx_at("84.19.0.3") as (_, client):
        with pytest.raises(ApiUnavailableError) as caught:
            await client.webhook.query()
    assert caught.value.errcode == 10001


# -- the hand-written v2.0 rows and tables follow the catalog --------------------------------


def _v2_entry(endpoint: str) -> dict[str, Any]:
    return next(e for e in catalog_files.v2_endpoints() if e["id"] == endpoint)


@pytest.mark.parametrize(
    ("table", "struct"),
    [
        ("CDR_V2", _v2.CdrV2),
        ("CDR_V2_Detail", _v2.CdrDetailV2),
        ("CDR_V2_Leg", _v2.CdrLegV2),
        ("CDR_V2_Event", _v2.CdrLegEventV2),
    ],
)
def test_v2_rows_match_the_catalog(table: str, struct: type[msgspec.Struct]) -> None:
    fields = _v2_entry("cdr/detail")["response"]["nested"][table]
    assert list(struct.__struct_fields__) == [f["name"] for f in fields]


def test_version_tables_match_the_catalog() -> None:
    v1 = {e["id"]: e for e in catalog_files.endpoints()}
    for endpoint, (v1_only, v2_only) in VERSION_ONLY.items():
        v2 = _v2_entry(endpoint)
        v1_names = {p["name"] for p in v1[endpoint]["params"]}
        v2_names = {p["name"] for p in v2["params"]}
        renamed = {p["v1_name"] for p in v2["params"] if p.get("v1_name")}
        assert v1_only == v1_names - v2_names - renamed - {"page", "page_size"}
        assert v2_only == v2_names - v1_names - set(V2_NAMES.get(endpoint, {}).values())
        assert V2_NAMES.get(endpoint, {}) == {
            p["v1_name"]: p["name"] for p in v2["params"] if p.get("v1_name")
        }


def test_every_current_entry_cites_its_page() -> None:
    doc = json.loads((ROOT / "catalog" / "p_series_current.json").read_text(encoding="utf-8"))
    items = [*doc["endpoints"], *doc["additions"]]
    assert items
    assert all(item["source_url"].startswith("https://help.yeastar.com/") for item in items)


@pytest.mark.parametrize("firmware", [OLD, "84.20.0.5", CURRENT, "37.24.1.7"])
async def test_calls_the_fake_finishes_are_found_by_the_same_code(firmware: str | None) -> None:
    """A dialled call, then the same search: at any firmware, merged, every record is there."""
    async with pbx_at(firmware, ring_time=0.0, talk_time=0.0) as (pbx, client):
        dial = await client.call.dial(caller="2000", callee="2001")
        assert dial.call_id is not None
        await pbx.calls[dial.call_id].finished(timeout=5)
        every = await client.cdr.search(**WIDE, merge_history=True)
        assert pbx.store is not None
        stored = {r["uid"] for r in pbx.store.cdrs.records}
    assert dial.call_id in {r.uid for r in every.data}
    assert {r.uid for r in every.data} == stored
    moved = firmware in (CURRENT, "37.24.1.7")
    assert isinstance(every.data[-1], _v2.CdrV2 if moved else CDRDetails)


async def test_merge_history_is_never_sent_and_works_without_a_client() -> None:
    from test_resources_catalog import RecordingTransport

    from yeastar_async.resources.cdr import CdrResource

    rows = [{"id": 1, "uid": "a"}, {"id": 2, "uid": "b"}]
    transport = RecordingTransport(
        {"errcode": 0, "errmsg": "SUCCESS", "total_number": 2, "data": rows}
    )
    cdr = CdrResource(transport)
    merged = await cdr.search(call_from="2000", merge_history=True)
    plain = await cdr.search(call_from="2000", merge_history=False)
    assert isinstance(merged, _v2.CdrHistory)
    assert [r.uid for r in merged.data] == ["a", "b"]
    assert plain.api_version == "1.0"
    assert all("merge_history" not in (sent.params or {}) for sent in transport.sent)
    assert transport.api_paths == [None, None]


async def test_a_refused_read_keeps_the_defaults_and_a_failed_one_is_retried() -> None:
    from yeastar_async.errors import TransportError

    async with pbx_at(CURRENT) as (pbx, _):
        pbx.set_response("system/information", {"errcode": 10005, "errmsg": "ACCESS DENIED"})
        async with YeastarClient(pbx.base_url, pbx.client_id, pbx.client_secret) as client:
            first = await client.cdr.search(**WIDE)
            second = await client.cdr.search(**WIDE)
        assert (first.api_version, second.api_version) == ("1.0", "1.0")
        assert pbx.count("system/information") == 1  # an answer, even a refusal, is kept
        pbx.set_response("system/information", None)
        pbx.fail_next(1, status=503, endpoint="system/information")
        async with YeastarClient(
            pbx.base_url, pbx.client_id, pbx.client_secret, retries=0
        ) as client:
            with pytest.raises(TransportError):
                await client.cdr.search(**WIDE)
            answer = await client.cdr.search(**WIDE)  # read again: the PBX answers now
        assert answer.api_version == "2.0"


def test_firmware_thresholds_match_the_catalog() -> None:
    from yeastar_async._firmware import EDITIONS, FEATURES
    from yeastar_async.resources._profile import VERSIONED

    lines = {name.split()[0].lower(): line for line, name in EDITIONS.items()}

    def minimums(feature: str) -> dict[str, str]:
        major, minor, build = FEATURES[feature]  # type: ignore[index]
        return {key: f"{line}.{major}.{minor}.{build}" for key, line in lines.items()}

    for entry in catalog_files.v2_endpoints():
        assert entry["firmware"] == minimums(VERSIONED[entry["id"]]), entry["id"]
    for entry in catalog_files.endpoints():
        if entry["id"].startswith("webhook/"):
            assert entry["firmware"] == minimums("webhook")
