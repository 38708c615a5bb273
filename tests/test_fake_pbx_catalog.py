"""FakePBX catalog mode: every endpoint of the manual, 40002 / 10001, and downloads."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests._raw import RawApi
from yeastar_async.testing import FakePBX
from yeastar_async.testing._catalog import EndpointSpec, load_catalog

ROOT = Path(__file__).resolve().parent.parent
SPEC = ROOT / "catalog"
CATALOG = load_catalog()
ENDPOINTS = [ep for ep in CATALOG.endpoints.values() if ep.auth and ep.name != "del_token"]
DOWNLOADS = [ep.name for ep in ENDPOINTS if ep.download]


async def fetch(raw: RawApi, path: str) -> aiohttp.ClientResponse:
    """GET a download path (outside the OpenAPI prefix) with the live token; read it all."""
    resp = await raw.session.get(raw.pbx.base_url + path, params={"access_token": raw.token})
    await resp.read()
    resp.release()
    return resp


@pytest.fixture
async def raw() -> AsyncIterator[RawApi]:
    async with FakePBX(stores=False) as pbx, RawApi.connect(pbx, login=True) as api:
        yield api


def required_params(ep: EndpointSpec) -> dict[str, Any]:
    return {name: "1" for name in ep.required}


MANUAL = [ep for ep in CATALOG.endpoints.values() if ep.manual_line is not None]


def test_catalog_covers_the_manual() -> None:
    assert len(MANUAL) == 123
    assert sum(1 for ep in MANUAL if ep.method == "GET") == 77
    assert len([ep for ep in ENDPOINTS if ep.manual_line is not None]) == 120
    assert sorted(DOWNLOADS) == [
        "call_report/download",
        "call_schedule_report/download",
        "cdr/download",
        "recording/download",
    ]
    assert len(CATALOG.events) == 21
    assert CATALOG.errmsg(70130) == "CAHNNEL ID NOT FOUND"  # the manual's spelling
    # conditional requirements are not enforced on every call
    assert CATALOG.endpoints["call/query"].required == ()
    assert CATALOG.endpoints["call_report/list"].required == ("type",)
    assert CATALOG.endpoints["trunk/create"].required == (
        "name",
        "country",
        "type",
        "transport",
        "codec_sel",
    )


@pytest.mark.skipif(not SPEC.is_dir(), reason="the spec is not next to this checkout")
def test_packaged_catalog_is_up_to_date() -> None:
    tool = ROOT / "tools" / "build_fake_catalog.py"
    done = subprocess.run(
        [sys.executable, str(tool), "--check", "--spec", str(SPEC)], capture_output=True
    )
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize("ep", ENDPOINTS, ids=lambda ep: ep.name)
async def test_every_endpoint_answers_its_example(raw: RawApi, ep: EndpointSpec) -> None:
    body = await raw.send(ep.method, ep.name, required_params(ep))
    assert body["errcode"] == 0, body
    assert body["errmsg"] == "SUCCESS"
    expected = ep.example(required_params(ep))
    if not ep.download:
        assert body == expected
    assert set(body) <= set(ep.response_keys) | {"errcode", "errmsg"} | set(expected)
    logged = raw.pbx.requests[-1]
    assert logged.method == ep.method
    assert logged.endpoint == ep.name
    assert logged.params == required_params(ep)


@pytest.mark.parametrize("ep", [ep for ep in ENDPOINTS if ep.required], ids=lambda ep: ep.name)
async def test_missing_required_parameter_answers_40002(raw: RawApi, ep: EndpointSpec) -> None:
    for name in ep.required:
        params = required_params(ep)
        del params[name]
        body = await raw.send(ep.method, ep.name, params)
        assert body == {
            "errcode": 40002,
            "errmsg": "PARAMETER ERROR",
            "invalid_param_list": [{"field": name, "validation_type": "required"}],
        }
    if len(ep.required) > 1:
        body = await raw.send(ep.method, ep.name, {})
        assert [item["field"] for item in body["invalid_param_list"]] == list(ep.required)


@pytest.mark.parametrize("ep", ENDPOINTS, ids=lambda ep: ep.name)
async def test_wrong_method_answers_10001(raw: RawApi, ep: EndpointSpec) -> None:
    other = "POST" if ep.method == "GET" else "GET"
    body = await raw.send(other, ep.name, required_params(ep))
    assert body == {"errcode": 10001, "errmsg": "INTERFACE NOT EXISTED"}


async def test_post_parameters_in_the_query_do_not_count(raw: RawApi) -> None:
    url = f"{raw.pbx.base_url}/openapi/v1.0/call/dial"
    query = {"access_token": raw.token, "caller": "2000", "callee": "2001"}
    async with raw.session.post(url, params=query, json={}) as resp:
        body = await resp.json()
    assert body["errcode"] == 40002


async def test_several_examples_answer_the_closest(raw: RawApi) -> None:
    role = await raw.send("GET", "system/get_menuoptions", {"menu": "role"})
    assert role["data"][0]["text"] == "None"
    blind = await raw.send("POST", "call/transfer", {"type": "blind", "channel_id": "x"})
    attended = await raw.send("POST", "call/transfer", {"type": "attended", "channel_id": "x"})
    assert blind["call_id"] == "1650029138.338"
    assert attended["call_id"] == "1650028408.320"


@pytest.mark.parametrize("endpoint", DOWNLOADS)
async def test_download_endpoints_serve_their_file(raw: RawApi, endpoint: str) -> None:
    ep = CATALOG.endpoints[endpoint]
    body = await raw.send("GET", endpoint, required_params(ep))
    assert body["errcode"] == 0
    url = body["download_resource_url"]
    assert url.startswith("/api/download/")
    assert body["file"]
    resp = await fetch(raw, url)
    assert resp.status == 200
    assert resp.content_type != "application/json"
    assert raw.pbx.requests[-1].path == url


async def test_staged_files_and_plus_signs(raw: RawApi) -> None:
    data = b"RIFF" + bytes(range(256)) * 4
    name = "20240101-1702287660.12-2000-+15551234-Outbound.wav"
    url = raw.pbx.add_file(name, data, endpoint="recording/download")
    body = await raw.send("GET", "recording/download", {"id": "7"})
    assert body == {
        "errcode": 0,
        "errmsg": "SUCCESS",
        "file": name,
        "download_resource_url": url,
    }
    for path in (url, url.replace("+", "%2B")):  # raw and URL-encoded names both work
        async with raw.session.get(
            raw.pbx.base_url + path, params={"access_token": raw.token}
        ) as resp:
            assert resp.status == 200
            assert resp.content_type == "audio/wav"
            assert await resp.read() == data
    raw.pbx.add_file("报告 1.csv", b"x")  # non-ASCII names and spaces are served too
    assert (await fetch(raw, "/api/download/%E6%8A%A5%E5%91%8A%201.csv")).status == 200
    by_name = await raw.send("GET", "recording/download", {"file": "other.wav"})
    assert by_name["download_resource_url"] == "/api/download/other.wav"


async def test_download_errors_are_http_200_json(raw: RawApi) -> None:
    url = raw.pbx.add_file("Cdr-1.csv", b"a,b\r\n", endpoint="cdr/download")

    async def fetch_json(path: str, token: str) -> dict[str, Any]:
        async with raw.session.get(raw.pbx.base_url + path, params={"access_token": token}) as resp:
            assert resp.status == 200
            body: dict[str, Any] = await resp.json()
            return body

    assert await fetch_json(url, "bogus") == {"errcode": 10004, "errmsg": "TOKEN EXPIRED"}
    raw.pbx.remove_file("Cdr-1.csv")  # e.g. a recording not ready yet
    assert await fetch_json(url, raw.token) == {"errcode": 60001, "errmsg": "DATA NOT FOUND"}
    raw.pbx.add_file("Cdr-1.csv", b"a,b\r\n")
    ok = await fetch(raw, url)
    assert ok.status == 200
    raw.pbx.fail_next(1, status=502, endpoint=url)
    assert (await fetch(raw, url)).status == 502
    raw.pbx.block_ip()
    assert (await fetch_json(url, raw.token))["errcode"] == 70004


async def test_add_handler_replaces_the_example_but_keeps_checks(raw: RawApi) -> None:
    raw.pbx.add_handler("system/capacity", lambda record: {"errcode": 0, "errmsg": "SUCCESS"})
    assert await raw.send("GET", "system/capacity", {}) == {"errcode": 0, "errmsg": "SUCCESS"}
    assert (await raw.send("POST", "system/capacity", {}))["errcode"] == 10001
