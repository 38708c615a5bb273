"""One TLS-flag mechanism for the three vendors' commands: flags win over the environment, and a
bad value is a usage error naming the flag or variable it came from."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from yeastar_async import cli
from yeastar_async.cli._connect import tls_option
from yeastar_async.cli._output import UsageError

PIN = "AB" * 32

#: Per vendor: the command, the environment that names a PBX (never contacted: the TLS error
#: comes first), and its TLS variables.
VENDORS = {
    "yeastar": (
        ["doctor"],
        {
            "YEASTAR_BASE_URL": "https://192.0.2.1",
            "YEASTAR_CLIENT_ID": "id",
            "YEASTAR_CLIENT_SECRET": "secret",
        },
        ("YEASTAR_PIN", "YEASTAR_CA_FILE"),
    ),
    "openvox": (
        ["openvox", "inroute", "list"],
        {
            "OPENVOX_BASE_URL": "https://192.0.2.1",
            "OPENVOX_USERNAME": "api",
            "OPENVOX_PASSWORD": "pw",
        },
        ("OPENVOX_PIN", "OPENVOX_CA_FILE"),
    ),
    "cec": (
        ["cec", "route", "list"],
        {"CEC_DOMAIN": "192.0.2.1", "CEC_APP_KEY": "key", "CEC_APP_SECRET": "secret"},
        ("CEC_PIN", "CEC_CA_FILE"),
    ),
}


@pytest.fixture(params=sorted(VENDORS))
def vendor(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> tuple[list[str], str, str]:
    argv, env, (env_pin, env_ca) = VENDORS[request.param]
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    for name in (env_pin, env_ca):
        monkeypatch.delenv(name, raising=False)
    return argv, env_pin, env_ca


async def run(*argv: str) -> int:
    async with asyncio.timeout(20):
        return await cli.amain(list(argv))


async def test_a_bad_pin_in_the_environment_names_the_variable(
    vendor: tuple[list[str], str, str],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    argv, env_pin, _ = vendor
    monkeypatch.setenv(env_pin, "zz")
    assert await run(*argv) == 2
    assert f"{env_pin} takes a SHA-256 certificate fingerprint: 64 hex" in capsys.readouterr().err


async def test_a_flag_wins_over_the_environment(
    vendor: tuple[list[str], str, str],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    argv, env_pin, _ = vendor
    monkeypatch.setenv(env_pin, "zz")  # ignored: a TLS flag is given
    assert await run(*argv, "--ca-file", "/nonexistent/ca.pem") == 2
    err = capsys.readouterr().err
    assert "--ca-file: no such file: /nonexistent/ca.pem" in err
    assert env_pin not in err


async def test_bad_flags_and_files_name_their_source(
    vendor: tuple[list[str], str, str],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    argv, _, env_ca = vendor
    assert await run(*argv, "--pin", "not-a-fingerprint") == 2
    assert "--pin takes a SHA-256 certificate fingerprint" in capsys.readouterr().err
    monkeypatch.setenv(env_ca, "/nonexistent/env-ca.pem")
    assert await run(*argv) == 2
    assert f"{env_ca}: no such file: /nonexistent/env-ca.pem" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("flags", "env", "expected"),
    [
        ({}, {}, None),
        ({}, {"P": f" {PIN} "}, PIN),
        ({"pin": f"{PIN}\n"}, {}, PIN),
        ({"ca_file": "CA"}, {"P": "zz"}, "CA"),
        ({}, {"C": "CA"}, "CA"),
        ({"insecure": True}, {"P": "zz", "C": "/nonexistent"}, False),
    ],
)
def test_tls_option(
    flags: dict[str, object],
    env: dict[str, str],
    expected: object,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_text("-")
    monkeypatch.delenv("P", raising=False)
    monkeypatch.delenv("C", raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, str(ca) if value == "CA" else value)
    pin = flags.get("pin")
    ca_flag = str(ca) if flags.get("ca_file") == "CA" else None
    got = tls_option(
        pin=pin if isinstance(pin, str) else None,
        ca_file=ca_flag,
        env_pin="P",
        env_ca_file="C",
        insecure=bool(flags.get("insecure")),
    )
    assert got == (str(ca) if expected == "CA" else expected)


def test_the_pin_hint_ends_the_message() -> None:
    with pytest.raises(UsageError, match=r"or spaces \(see doctor\)$"):
        tls_option(pin="zz", ca_file=None, env_pin="P", env_ca_file="C", pin_hint=" (see doctor)")
