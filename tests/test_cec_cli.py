"""``yeastar-async cec route list|modify`` run in-process against a FakeCec."""

from __future__ import annotations

import json
import time
from collections.abc import Callable

import pytest

from yeastar_async import cli
from yeastar_async.testing import FakeCec

# The fixtures cec_fake and clock.
pytest_plugins = ["tests._cec"]


@pytest.fixture
def clock() -> Callable[[], float]:
    """The fake reads the real clock, as the command's client does."""
    return time.time


@pytest.fixture
def env(cec_fake: FakeCec, monkeypatch: pytest.MonkeyPatch) -> FakeCec:
    monkeypatch.setenv("CEC_DOMAIN", cec_fake.base_url)
    monkeypatch.setenv("CEC_APP_KEY", cec_fake.app_key)
    monkeypatch.setenv("CEC_APP_SECRET", cec_fake.app_secret)
    for name in ("CEC_PIN", "CEC_CA_FILE"):
        monkeypatch.delenv(name, raising=False)
    return cec_fake


async def test_route_list_prints_every_page(
    env: FakeCec, capsys: pytest.CaptureFixture[str]
) -> None:
    for n in range(120):
        env.add_route(f"7{n:03d}", device_type=3 if n % 2 else 1, device_id=n)
    assert await cli.amain(["cec", "route", "list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 120
    first = next(iter(env.routes.values()))
    assert lines[0] == f"{first.id}  dnid {first.dnid}  7000 -> queue 0 (Skill queue 0)"
    assert env.count("calledRoute/queryCalledRoute") == 2


async def test_route_list_filters_and_json(
    env: FakeCec, capsys: pytest.CaptureFixture[str]
) -> None:
    env.add_route("4001", device_type=3, device_id=2)
    env.add_route("4002")
    code = await cli.amain(["cec", "route", "list", "--device-type", "ivr", "--json"])
    assert code == 0
    (line,) = capsys.readouterr().out.splitlines()
    assert json.loads(line)["access_code"] == "4001"
    assert env.requests_for("calledRoute/queryCalledRoute")[0].json["devicetype"] == 3
    assert await cli.amain(["cec", "route", "list", "--access-code", "9"]) == 0
    assert capsys.readouterr().out == "no called routes match\n"


async def test_route_modify_moves_a_route_to_a_queue(
    env: FakeCec, capsys: pytest.CaptureFixture[str]
) -> None:
    route = env.add_route("4001", device_type=3, device_id=2)
    assert await cli.amain(["cec", "route", "modify", route.id, "--queue", "7"]) == 0
    assert (route.devicetype, route.deviceId) == (1, 7)
    assert capsys.readouterr().out == f"route {route.id} -> queue 7: data update success\n"


async def test_route_modify_refused_is_one_error_line(
    env: FakeCec, capsys: pytest.CaptureFixture[str]
) -> None:
    assert await cli.amain(["cec", "route", "modify", "404", "--ivr", "1"]) == 1
    captured = capsys.readouterr()
    assert captured.err == (
        "error: calledRoute/modifyCalledRoute: the CEC answered returnCode '3': "
        "'called route 404 not found'\n"
    )


async def test_wrong_secret_exits_1_without_printing_it(
    env: FakeCec, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("CEC_APP_SECRET", "not-the-secret-at-all")
    assert await cli.amain(["cec", "route", "list"]) == 1
    captured = capsys.readouterr()
    assert "HTTP 403" in captured.err
    assert "not-the-secret-at-all" not in captured.err + captured.out
    assert "YEASTAR" not in captured.err  # no advice about the Yeastar credentials


@pytest.mark.parametrize("missing", ["CEC_DOMAIN", "CEC_APP_KEY", "CEC_APP_SECRET"])
async def test_missing_credentials_are_usage_errors(
    env: FakeCec,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    missing: str,
) -> None:
    monkeypatch.delenv(missing)
    assert await cli.amain(["cec", "route", "list"]) == 2
    assert f"set {missing}" in capsys.readouterr().err
    assert env.requests == []


async def test_bad_arguments_are_usage_errors(
    env: FakeCec, capsys: pytest.CaptureFixture[str]
) -> None:
    assert await cli.amain(["cec", "route", "modify", "1"]) == 2  # neither --queue nor --ivr
    assert await cli.amain(["cec", "route", "modify", "1", "--queue", "-1"]) == 2
    assert "device_id must be >= 0" in capsys.readouterr().err
    assert await cli.amain(["cec", "route", "list", "--pin", "zz"]) == 2
    assert "SHA-256" in capsys.readouterr().err
    assert env.requests == []
