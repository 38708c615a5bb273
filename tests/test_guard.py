"""The lockout guard: one count per PBX address, kept in a shared state file or a token store."""

from __future__ import annotations

import asyncio
import json
import os
import stat
import sys
from pathlib import Path
from typing import Any

import pytest

from yeastar_async import YeastarClient, cli
from yeastar_async._auth import TokenManager, _TokenAnswer
from yeastar_async._guard import LoginGuard, forget_login_guard, login_guard, pbx_key
from yeastar_async._guard_store import default_state_path, state_path
from yeastar_async.errors import (
    AuthenticationError,
    IPBlockedError,
    LockoutGuardError,
    TransportError,
    error_for,
)
from yeastar_async.testing import FakePBX

WRONG = "wrong-secret-0123456789"


def state_file() -> Path:
    return default_state_path()


async def rejected(url: str, pbx: FakePBX, secret: str = WRONG, **options: Any) -> BaseException:
    """One client, one login: the error it raised."""
    async with YeastarClient(url, pbx.client_id, secret, **options) as client:
        with pytest.raises(AuthenticationError) as info:
            await client.login()
    return info.value


# -- keys -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "key"),
    [
        ("http://127.0.0.1:8088", "127.0.0.1"),
        ("https://localhost:8088", "127.0.0.1"),
        ("http://LOCALHOST.", "127.0.0.1"),
        ("https://[::ffff:127.0.0.1]:8088", "127.0.0.1"),
        ("https://[0:0::1]", "::1"),
        ("https://no-such-host.invalid:8088", "no-such-host.invalid"),
    ],
)
async def test_the_key_is_the_resolved_address(url: str, key: str) -> None:
    assert await pbx_key(url) == key


async def test_scheme_and_port_do_not_split_the_count() -> None:
    assert await pbx_key("http://localhost") == await pbx_key("https://localhost:8088")
    # After a resolution, the no-I/O lookup finds the same guard.
    assert login_guard("https://localhost:9") is login_guard("http://127.0.0.1")


async def test_localhost_and_127_0_0_1_share_one_count() -> None:
    async with FakePBX() as pbx:
        port = pbx.base_url.rsplit(":", 1)[1]
        urls = [f"http://127.0.0.1:{port}", f"http://localhost:{port}", f"http://LocalHost:{port}"]
        for url in urls:
            assert type(await rejected(url, pbx)) is AuthenticationError
        # The 4th, by either name, is refused before sending: 3 of these credentials.
        for url in urls[:2]:
            error = await rejected(url, pbx)
            assert isinstance(error, LockoutGuardError)
            assert "to the PBX at 127.0.0.1" in str(error)
        assert pbx.count("get_token") == 3
        assert not pbx.is_blocked()


# -- the state file -------------------------------------------------------------------------


async def test_rejections_are_kept_in_the_state_file_without_the_secret() -> None:
    async with FakePBX() as pbx:
        error = await rejected(pbx.base_url, pbx)
        assert str(state_file()) in str(error)
        raw = state_file().read_text()
        assert WRONG not in raw
        assert pbx.client_id not in raw
        record = json.loads(raw)["pbx"]["127.0.0.1"]
        assert record["in_a_row"] == 1
        assert list(record["credentials"].values()) == [1]
        assert stat.S_IMODE(state_file().stat().st_mode) == 0o600
        assert stat.S_IMODE(state_file().parent.stat().st_mode) == 0o700
        # A success clears the count for every later process.
        async with YeastarClient(pbx.base_url, pbx.client_id, pbx.client_secret) as good:
            await good.login()
        assert json.loads(state_file().read_text())["pbx"]["127.0.0.1"]["in_a_row"] == 0


async def test_a_fresh_process_sees_the_count() -> None:
    """Forgetting the in-process guard (as a new process has none) keeps the persisted count."""
    async with FakePBX() as pbx:
        for _ in range(3):
            await rejected(pbx.base_url, pbx)
            forget_login_guard(pbx.base_url, state=None)  # memory only: a "new process"
        assert isinstance(await rejected(pbx.base_url, pbx), LockoutGuardError)
        assert pbx.count("get_token") == 3


async def test_persistence_off_writes_nothing() -> None:
    async with FakePBX() as pbx:
        error = await rejected(pbx.base_url, pbx, login_guard_state=None)
        assert "counted in this process only" in str(error)
        assert not state_file().exists()


async def test_an_explicit_state_file(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "guard.json"
    async with FakePBX() as pbx:
        await rejected(pbx.base_url, pbx, login_guard_state=path)
        assert json.loads(path.read_text())["pbx"]["127.0.0.1"]["in_a_row"] == 1
        assert not state_file().exists()


@pytest.mark.parametrize(
    "content",
    [b"{not json", b"", b'{"version": 1, "pbx": {"127.0.0.1": {"in_a_row": -1}}}', b"[]"],
)
async def test_a_corrupt_state_file_refuses_and_names_the_file(content: bytes) -> None:
    state_file().parent.mkdir(parents=True)
    state_file().write_bytes(content)
    async with FakePBX() as pbx:
        error = await rejected(pbx.base_url, pbx, secret=pbx.client_secret)
        assert isinstance(error, LockoutGuardError)
        assert str(state_file()) in str(error)
        assert "unusable" in str(error)
        # What is wrong is its content, not its permissions: the advice says so.
        assert "corrupt" in str(error)
        assert "permissions" not in str(error)
        assert pbx.count("get_token") == 0


async def test_an_unreadable_state_file_refuses(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    async with FakePBX() as pbx:
        # Its directory cannot be made: a file is in the way.
        error = await rejected(
            pbx.base_url, pbx, secret=pbx.client_secret, login_guard_state=blocker / "guard.json"
        )
        assert isinstance(error, LockoutGuardError)
        assert "guard.json" in str(error)
        assert "permissions" in str(error)
        assert pbx.count("get_token") == 0


def test_the_default_follows_xdg_state_home(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path))
    assert default_state_path() == tmp_path / "yeastar-async" / "login-guard.json"
    monkeypatch.setenv("XDG_STATE_HOME", "relative/dir")  # invalid by the spec: ignored
    monkeypatch.setenv("HOME", str(tmp_path))
    assert default_state_path() == tmp_path / ".local/state/yeastar-async/login-guard.json"
    monkeypatch.delenv("XDG_STATE_HOME")
    assert state_path("default") == tmp_path / ".local/state/yeastar-async/login-guard.json"


@pytest.mark.parametrize(
    ("value", "error", "text"),
    [
        (3, TypeError, "login_guard_state must be 'default', None or a file path, got int 3"),
        ("", ValueError, "login_guard_state must be a file path, got ''"),
        ("a\0b", ValueError, "login_guard_state must be a file path"),
        (".", ValueError, "login_guard_state '.' is a directory"),
    ],
)
def test_bad_state_options_are_refused(value: Any, error: type[Exception], text: str) -> None:
    with pytest.raises(error, match=text.replace("(", r"\(").replace(")", r"\)")):
        YeastarClient("http://127.0.0.1:1", "id", "secret", login_guard_state=value)


# -- reservations ---------------------------------------------------------------------------


async def test_ten_clients_with_the_right_secret_all_log_in() -> None:
    """Reserving before sending makes others wait near the limit, never refuses good ones."""
    async with FakePBX(max_tokens=20) as pbx:
        clients = [YeastarClient(pbx.base_url, pbx.client_id, pbx.client_secret) for _ in range(10)]
        try:
            async with asyncio.timeout(10):
                await asyncio.gather(*(c.login() for c in clients))
        finally:
            await asyncio.gather(*(c.aclose() for c in clients))
        assert pbx.count("get_token") == 10
        assert json.loads(state_file().read_text())["pbx"]["127.0.0.1"]["in_a_row"] == 0


async def test_a_login_without_a_verdict_is_not_counted() -> None:
    async with FakePBX() as gone:
        dead_url = gone.base_url  # nothing listens there once it closed
    async with FakePBX() as pbx:
        await rejected(pbx.base_url, pbx)
        pbx.fail_next_errcode(1, 70004, endpoint="get_token")  # blocked: says nothing
        async with YeastarClient(pbx.base_url, pbx.client_id, WRONG) as client:
            with pytest.raises(IPBlockedError):
                await client.login()
        async with YeastarClient(dead_url, pbx.client_id, WRONG, retries=0) as client:
            with pytest.raises(TransportError):
                await client.login()
        record = json.loads(state_file().read_text())["pbx"]["127.0.0.1"]
        assert record["in_a_row"] == 1  # the one real rejection only
        assert list(record["credentials"].values()) == [1]


# -- the token store ------------------------------------------------------------------------


class GuardingStore:
    """A TokenStore that keeps the guard's count too (as Redis would, for several hosts)."""

    def __init__(self) -> None:
        self.tokens: Any = None
        self.guard: dict[str, Any] | None = None
        self.broken: Exception | None = None
        self.garbage: Any = None

    async def load(self) -> Any:
        return self.tokens

    async def save(self, tokens: Any) -> None:
        self.tokens = tokens

    async def load_login_guard(self) -> dict[str, Any] | None:
        if self.broken is not None:
            raise self.broken
        if self.garbage is not None:
            return self.garbage  # type: ignore[no-any-return]
        return None if self.guard is None else json.loads(json.dumps(self.guard))

    def save_login_guard(self, state: dict[str, Any]) -> None:  # a plain method works too
        self.guard = json.loads(json.dumps(state))


async def test_a_store_that_offers_it_keeps_the_count_for_other_hosts(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    store = GuardingStore()
    async with FakePBX() as pbx:
        for host in range(3):
            # Each "host" has a state file of its own; only the store is shared.
            monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / f"host{host}"))
            forget_login_guard(pbx.base_url, state=None)
            error = await rejected(pbx.base_url, pbx, token_store=store)
            assert "and in the token store" in str(error)
        assert store.guard is not None
        assert store.guard["pbx"]["127.0.0.1"]["in_a_row"] == 3
        assert WRONG not in json.dumps(store.guard)
        monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "host4"))
        forget_login_guard(pbx.base_url, state=None)
        refused = await rejected(pbx.base_url, pbx, token_store=store)
        assert isinstance(refused, LockoutGuardError)
        assert pbx.count("get_token") == 3
        # Without persistence elsewhere, the store alone still counts.
        forget_login_guard(pbx.base_url, state=None)
        alone = await rejected(pbx.base_url, pbx, token_store=store, login_guard_state=None)
        assert isinstance(alone, LockoutGuardError)
        assert "counted in the token store" in str(alone)


@pytest.mark.parametrize("fault", ["raises", "garbage"])
async def test_an_unusable_store_state_refuses(fault: str) -> None:
    store = GuardingStore()
    if fault == "raises":
        store.broken = ConnectionError(f"redis down, secret {WRONG}")
    else:
        store.garbage = {"version": 1, "pbx": {"127.0.0.1": "lots"}}
    async with FakePBX() as pbx:
        error = await rejected(pbx.base_url, pbx, secret=pbx.client_secret, token_store=store)
        assert isinstance(error, LockoutGuardError)
        assert "token store's login guard state is unusable" in str(error)
        assert WRONG not in str(error)
        assert pbx.count("get_token") == 0


def test_the_state_file_is_never_in_the_home_during_tests() -> None:
    assert str(default_state_path()).startswith(os.environ["XDG_STATE_HOME"])
    assert not str(default_state_path()).startswith(str(Path.home() / ".local"))


# -- doctor ---------------------------------------------------------------------------------


async def _doctor(pbx: FakePBX, secret: str) -> int:
    argv = ["doctor", "--base-url", pbx.base_url, "--client-id", pbx.client_id]
    async with asyncio.timeout(20):
        return await cli.amain([*argv, "--client-secret", secret])


async def test_doctor_shows_the_count(capsys: pytest.CaptureFixture[str]) -> None:
    async with FakePBX() as pbx:
        assert await _doctor(pbx, WRONG) == 1
        first = capsys.readouterr().out
        assert "✓ login guard   0 rejected login(s) in a row to 127.0.0.1" in first
        assert await _doctor(pbx, WRONG) == 1
        second = capsys.readouterr().out
        assert "! login guard   1 rejected login(s) in a row to 127.0.0.1 (1 with these" in second
        assert str(state_file()) in second
        assert "refuses to send a login at 4" in second
        assert WRONG not in first + second


async def test_doctor_names_an_unusable_state_file(capsys: pytest.CaptureFixture[str]) -> None:
    state_file().parent.mkdir(parents=True)
    state_file().write_text("{")
    async with FakePBX() as pbx:
        assert await _doctor(pbx, pbx.client_secret) == 1
        out = capsys.readouterr().out
        assert "✗ login guard   state unusable" in out
        assert str(state_file()) in out
        assert pbx.count("get_token") == 0


# -- users' own tests -------------------------------------------------------------------------

_USER_TESTS = """
import pytest
from yeastar_async import YeastarClient
from yeastar_async.errors import AuthenticationError, LockoutGuardError


async def three_rejections(pbx):
    for _ in range(3):
        async with YeastarClient(pbx.base_url, pbx.client_id, "wrong") as client:
            with pytest.raises(AuthenticationError) as info:
                await client.login()
            assert not isinstance(info.value, LockoutGuardError)


async def test_one(fake_pbx):
    await three_rejections(fake_pbx)


async def test_two(fake_pbx_factory):
    await three_rejections(await fake_pbx_factory())
"""


async def test_users_tests_with_the_fixtures_are_isolated(tmp_path: Path) -> None:
    """Each test starts with no count, and nothing is written to the developer's home."""
    (tmp_path / "test_user.py").write_text(_USER_TESTS)
    home = tmp_path / "home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("XDG_", "PYTEST_"))}
    env["HOME"] = str(home)
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "pytest",
        "-q",
        "-p",
        "no:cacheprovider",
        "-o",
        "asyncio_mode=auto",
        str(tmp_path / "test_user.py"),
        cwd=tmp_path,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    async with asyncio.timeout(60):
        out, _ = await process.communicate()
    assert process.returncode == 0, out.decode()
    assert "2 passed" in out.decode()
    assert not (home / ".local").exists()


# -- waiting near the limit (no network) ----------------------------------------------------


class PasswordSender:
    """get_token accepts one secret and rejects others; logins of ``held`` wait for ``gate``."""

    def __init__(self, good: str) -> None:
        self.good = good
        self.sent: list[str] = []
        self.gate = asyncio.Event()
        self.held: set[str] = set()
        self.arrived = asyncio.Event()  # a held login reached the "PBX"

    async def send(self, method: str, endpoint: str, *, json: Any = None, **_: Any) -> Any:
        secret = json["password"]
        self.sent.append(secret)
        if secret in self.held:
            self.arrived.set()
            await self.gate.wait()
        if secret != self.good:
            raise error_for(-1, endpoint=endpoint)
        return _TokenAnswer(access_token=f"a-{len(self.sent)}", refresh_token="r")


async def test_near_the_limit_logins_wait_for_the_one_in_flight_without_spinning() -> None:
    guard = LoginGuard("pbx")
    sender = PasswordSender("right")
    for n in range(3):  # three other credentials rejected: one login left before the 4th
        with pytest.raises(AuthenticationError):
            await TokenManager(sender, "id", f"wrong-{n}", guard=guard).token()
    updates = 0
    real_update = guard._update

    async def counted(*args: Any) -> Any:
        nonlocal updates
        updates += 1
        return await real_update(*args)

    guard._update = counted  # type: ignore[method-assign]
    sender.held.add("right")
    first = asyncio.ensure_future(TokenManager(sender, "id", "right", guard=guard).token())
    others = [
        asyncio.ensure_future(TokenManager(sender, "id", "right", guard=guard).token())
        for _ in range(2)
    ]
    async with asyncio.timeout(5):
        await sender.arrived.wait()
        for _ in range(100):  # the waiting logins must sleep, not retry in a loop
            await asyncio.sleep(0)
        assert updates == 3  # one reservation, two refusals that now wait
        assert sender.sent.count("right") == 1
        sender.gate.set()
        assert (await first).startswith("a-")
        assert all(token.startswith("a-") for token in await asyncio.gather(*others))
    assert guard.in_a_row == 0


async def test_near_the_limit_a_rejection_in_flight_turns_the_waiters_into_refusals() -> None:
    guard = LoginGuard("pbx")
    sender = PasswordSender("right")
    for n in range(3):
        with pytest.raises(AuthenticationError):
            await TokenManager(sender, "id", f"wrong-{n}", guard=guard).token()
    sender.held.add("wrong-3")
    tasks = [
        asyncio.ensure_future(TokenManager(sender, "id", secret, guard=guard).token())
        for secret in ("wrong-3", "right", "right")
    ]
    async with asyncio.timeout(5):
        await sender.arrived.wait()
        sender.gate.set()
        results = await asyncio.gather(*tasks, return_exceptions=True)
    assert type(results[0]) is AuthenticationError
    assert all(isinstance(r, LockoutGuardError) for r in results[1:])
    assert len(sender.sent) == 4  # the 5th, which would block the IP, never went out
