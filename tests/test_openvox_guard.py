"""OpenVox on the shared lockout guard: its own limit, lapse window and namespace in the state,
and ``login_guard_state=`` as on the Yeastar client."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests._openvox import PASSWORD
from tests.security._transport_rig import bounded
from yeastar_async import YeastarClient
from yeastar_async._guard import YEASTAR_GUARD, LoginGuard
from yeastar_async._guard_store import GuardState, default_state_path
from yeastar_async.errors import AuthenticationError, LockoutGuardError
from yeastar_async.openvox import (
    OpenVoxAuthError,
    OpenVoxClient,
    OpenVoxLockoutError,
    forget_login_failures,
)
from yeastar_async.openvox._guard import LOCK_WINDOW, OPENVOX_GUARD
from yeastar_async.testing import FakeOpenVox, FakePBX

WRONG = "wrong-password"
CREDS = b"\x01" * 32


class WallClock:
    """A wall clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def pbx() -> AsyncIterator[FakeOpenVox]:
    async with FakeOpenVox(password=PASSWORD) as fake:
        yield fake


async def attempt(pbx: FakeOpenVox, password: str = WRONG, **options: Any) -> None:
    async with OpenVoxClient(pbx.base_url, "api", password, **options):
        pass


async def four_rejections(guard: LoginGuard, state: GuardState) -> None:
    for _ in range(4):
        reservation = await guard.reserve(CREDS, OPENVOX_GUARD.limit, state)
        guard.rejected(reservation)


@bounded()
async def test_the_count_lapses_after_the_ten_minute_lock_window(tmp_path: Path) -> None:
    clock = WallClock()
    state = GuardState(tmp_path / "guard.json")
    guard = LoginGuard("192.0.2.10", OPENVOX_GUARD, clock=clock)
    await four_rejections(guard, state)
    with pytest.raises(OpenVoxLockoutError, match="refused 4 logins in a row"):
        await guard.reserve(CREDS, OPENVOX_GUARD.limit, state)
    clock.now += LOCK_WINDOW - 1  # the PBX may still count them
    with pytest.raises(OpenVoxLockoutError):
        await guard.reserve(CREDS, OPENVOX_GUARD.limit, state)
    clock.now += 1  # ten minutes after the last one: lapsed
    reservation = await guard.reserve(CREDS, OPENVOX_GUARD.limit, state)
    assert reservation.in_a_row == 1
    # A guard in another process (same file, fresh memory) sees the new count, not the old one.
    other = LoginGuard("192.0.2.10", OPENVOX_GUARD, clock=clock)
    assert (await other.count(CREDS, state)).in_a_row == 1


@bounded()
async def test_a_login_in_flight_when_the_window_lapsed_is_not_taken_off_the_new_count(
    tmp_path: Path,
) -> None:
    clock = WallClock()
    state = GuardState(tmp_path / "guard.json")
    guard = LoginGuard("192.0.2.10", OPENVOX_GUARD, clock=clock)
    stale = await guard.reserve(CREDS, OPENVOX_GUARD.limit, state)
    clock.now += LOCK_WINDOW
    fresh = await guard.reserve(CREDS, OPENVOX_GUARD.limit, state)
    guard.rejected(fresh)
    await guard.release(stale)  # from the lapsed count: the new one keeps its rejection
    assert (await guard.count(CREDS, state)).in_a_row == 1


@bounded()
async def test_the_yeastar_count_never_lapses(tmp_path: Path) -> None:
    clock = WallClock()
    state = GuardState(tmp_path / "guard.json")
    guard = LoginGuard("192.0.2.10", YEASTAR_GUARD, clock=clock)
    await four_rejections(guard, state)
    clock.now += 30 * 86400
    with pytest.raises(LockoutGuardError, match="the last 4 logins"):
        await guard.reserve(b"\x02" * 32, 3, state)


@bounded()
async def test_a_persisted_count_refuses_a_new_process_until_it_lapses(pbx: FakeOpenVox) -> None:
    """What another process left in the default state file decides, within the window."""
    path = default_state_path()
    path.parent.mkdir(parents=True, exist_ok=True)

    def left_behind(age: float) -> None:
        record = {"in_a_row": 4, "credentials": {}, "epoch": 0, "updated": time.time() - age}
        path.write_text(json.dumps({"version": 1, "pbx": {"openvox/127.0.0.1": record}}))

    left_behind(60)
    with pytest.raises(OpenVoxLockoutError, match=r"login-guard\.json"):
        await attempt(pbx, PASSWORD)
    left_behind(LOCK_WINDOW + 1)
    await attempt(pbx, PASSWORD)
    assert pbx.count("login") == 1
    record = json.loads(path.read_text())["pbx"]["openvox/127.0.0.1"]
    assert record["in_a_row"] == 0


@bounded()
async def test_yeastar_and_openvox_at_one_address_count_apart(pbx: FakeOpenVox) -> None:
    async with FakePBX() as yeastar:
        for _ in range(4):
            with pytest.raises(OpenVoxAuthError) as caught:
                await attempt(pbx)
            assert not isinstance(caught.value, OpenVoxLockoutError)
        with pytest.raises(OpenVoxLockoutError):
            await attempt(pbx)
        # The Yeastar PBX at the same address has counted nothing: 3 wrong secrets still go.
        for _ in range(3):
            async with YeastarClient(yeastar.base_url, yeastar.client_id, "wrong") as client:
                with pytest.raises(AuthenticationError) as info:
                    await client.login()
                assert not isinstance(info.value, LockoutGuardError)
        assert yeastar.count("get_token") == 3
        records = json.loads(default_state_path().read_text())["pbx"]
        assert records["127.0.0.1"]["in_a_row"] == 3
        assert records["openvox/127.0.0.1"]["in_a_row"] == 4
        # Forgetting the OpenVox count leaves the Yeastar one alone, and the other way round.
        forget_login_failures()
        records = json.loads(default_state_path().read_text())["pbx"]
        assert set(records) == {"127.0.0.1"}
        await attempt(pbx, PASSWORD)
    assert pbx.count("login") == 5


@bounded()
async def test_login_guard_state_option(pbx: FakeOpenVox, tmp_path: Path) -> None:
    path = tmp_path / "ov-guard.json"
    with pytest.raises(OpenVoxAuthError):
        await attempt(pbx, login_guard_state=path)
    assert json.loads(path.read_text())["pbx"]["openvox/127.0.0.1"]["in_a_row"] == 1
    with pytest.raises(OpenVoxAuthError):
        await attempt(pbx, login_guard_state=None)
    assert not default_state_path().exists()  # this process only
    with pytest.raises(OpenVoxAuthError):
        await attempt(pbx)  # the default file: counted there
    assert json.loads(default_state_path().read_text())["pbx"]["openvox/127.0.0.1"]


@pytest.mark.parametrize(
    ("value", "error", "message"),
    [
        (3, TypeError, "login_guard_state must be 'default', None or a file path, got int 3"),
        ("", ValueError, "login_guard_state must be a file path, got ''"),
        (".", ValueError, "login_guard_state '.' is a directory"),
    ],
)
def test_a_bad_login_guard_state_is_a_typed_error(
    value: Any, error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        OpenVoxClient("http://127.0.0.1:1", "api", PASSWORD, login_guard_state=value)


@bounded()
async def test_a_login_cancelled_in_flight_stays_counted() -> None:
    """The PBX may have counted a login whose answer never came: so does the guard."""
    received = asyncio.Event()

    async def mute(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        received.set()
        await reader.read()  # never answers; ends when the client hangs up
        writer.close()

    server = await asyncio.start_server(mute, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server:
        client = OpenVoxClient(f"http://127.0.0.1:{port}", "api", WRONG)
        login = asyncio.create_task(client.login())
        await received.wait()
        login.cancel()
        with pytest.raises(asyncio.CancelledError):
            await login
        await client.aclose()
    record = json.loads(default_state_path().read_text())["pbx"]["openvox/127.0.0.1"]
    assert record["in_a_row"] == 1
