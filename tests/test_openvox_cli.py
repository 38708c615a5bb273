"""``yeastar-async openvox ...`` run in-process against a FakeOpenVox, credentials from the env."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import pytest

from tests._openvox import PASSWORD, watch
from tests._secrets import SecretWatch
from yeastar_async import cli
from yeastar_async.openvox import forget_login_failures
from yeastar_async.testing import FakeOpenVox


@pytest.fixture
async def pbx(
    monkeypatch: pytest.MonkeyPatch, secrets_never_logged: SecretWatch
) -> AsyncIterator[FakeOpenVox]:
    forget_login_failures()
    async with FakeOpenVox(password=PASSWORD) as fake:
        monkeypatch.setenv("OPENVOX_BASE_URL", fake.base_url)
        monkeypatch.setenv("OPENVOX_USERNAME", fake.username)
        monkeypatch.setenv("OPENVOX_PASSWORD", PASSWORD)
        fake.add_inroute("main", "extension", "1000", did="5550100")
        fake.add_outroute("to16", "X.", "trunk-a", prefix="16")
        yield fake
    watch(secrets_never_logged, fake)
    forget_login_failures()


async def run(*argv: str) -> int:
    async with asyncio.timeout(20):
        return await cli.amain(list(argv))


@pytest.mark.parametrize("fmt", ["json", "xml"])
async def test_inroute_list_and_update(
    pbx: FakeOpenVox, fmt: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert await run("openvox", "inroute", "list", "--format", fmt) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["id", "name", "did", "caller_id", "desttype", "dest"]
    assert lines[1].split() == ["1", "main", "5550100", "extension", "1000"]
    assert (
        await run(
            "openvox",
            "inroute",
            "update",
            "main",
            "--desttype",
            "queue",
            "--dest",
            "6400",
            "--format",
            fmt,
        )
        == 0
    )
    assert pbx.inroutes["main"]["desttype"] == "queue"
    assert pbx.inroutes["main"]["did"] == "5550100"
    assert await run("openvox", "inroute", "list", "main", "--json") == 0
    out = capsys.readouterr().out.splitlines()
    assert json.loads(out[-1])["dest"] == "6400"
    assert all(r.fmt == fmt for r in pbx.requests[: len(pbx.requests) // 2])


async def test_inroute_add_and_delete(pbx: FakeOpenVox, capsys: pytest.CaptureFixture[str]) -> None:
    assert (
        await run("openvox", "inroute", "add", "night", "--desttype", "voicemail", "--dest", "1000")
        == 0
    )
    assert "night" in pbx.inroutes
    assert await run("openvox", "inroute", "delete", "night,main") == 0
    assert pbx.inroutes == {}
    assert await run("openvox", "inroute", "list") == 0
    assert "(no routes)" in capsys.readouterr().out


async def test_outroute_commands(pbx: FakeOpenVox, capsys: pytest.CaptureFixture[str]) -> None:
    assert (
        await run("openvox", "outroute", "add", "intl", "--matchpattern", "00X.", "--trunks", "a,b")
        == 0
    )
    assert (
        await run(
            "openvox", "outroute", "update", "to16", "--trunks", "trunk-b", "--rename", "to17"
        )
        == 0
    )
    assert pbx.outroutes["to17"]["trunks"] == "trunk-b"
    assert pbx.outroutes["to17"]["matchpattern"] == "X."  # kept from the current route
    assert await run("openvox", "outroute", "list", "--json") == 0
    rows = [
        json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")
    ]
    assert [r["name"] for r in rows] == ["to17", "intl"]
    assert await run("openvox", "outroute", "delete", "all") == 0
    assert pbx.outroutes == {}


async def test_unknown_route_and_pbx_errors(
    pbx: FakeOpenVox, capsys: pytest.CaptureFixture[str]
) -> None:
    assert await run("openvox", "inroute", "update", "nope", "--dest", "1") == 2
    assert "no inbound route named 'nope'" in capsys.readouterr().err
    assert await run("openvox", "inroute", "delete", "nope") == 1
    assert "errno 40004" in capsys.readouterr().err


async def test_wrong_password_is_one_line_and_advice(
    pbx: FakeOpenVox, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("OPENVOX_PASSWORD", "wrong-password")
    assert await run("openvox", "inroute", "list") == 1
    text = capsys.readouterr().err
    assert "errno 30003" in text
    assert "OPENVOX_PASSWORD" in text
    assert "YEASTAR" not in text
    assert "wrong-password" not in text
    assert pbx.count("login") == 1


async def test_missing_settings_are_usage_errors(
    pbx: FakeOpenVox, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("OPENVOX_PASSWORD")
    assert await run("openvox", "inroute", "list") == 2
    assert "set OPENVOX_PASSWORD" in capsys.readouterr().err
    monkeypatch.setenv("OPENVOX_PASSWORD", PASSWORD)
    monkeypatch.delenv("OPENVOX_BASE_URL")
    assert await run("openvox", "inroute", "list") == 2
    assert "--base-url (or set OPENVOX_BASE_URL)" in capsys.readouterr().err
    assert await run("openvox", "inroute", "list", "--base-url", pbx.base_url, "--pin", "xyz") == 2
    assert await run("openvox", "inroute", "update", "main", "--desttype", "fax") == 2
    assert pbx.requests == []
