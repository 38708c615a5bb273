"""Red team: try to get the IP blocked through the lockout guard (issue 11, points 5 to 7).

The FakePBX blocks an IP at its 5th rejected login in a row, as the PBX does. Every attack
below must end with fewer than 5 rejected logins reaching it, and the IP never blocked.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys

import pytest

from yeastar_async import YeastarClient
from yeastar_async._guard_store import default_state_path
from yeastar_async.errors import AuthenticationError, LockoutGuardError
from yeastar_async.testing import FakePBX

#: One process of a crash loop: one client, one login, report what it raised.
_ONE_TRY = """
import asyncio, sys
from yeastar_async import YeastarClient
from yeastar_async._guard_store import default_state_path
from yeastar_async.errors import LockoutGuardError, AuthenticationError

async def main():
    async with YeastarClient(sys.argv[1], sys.argv[2], sys.argv[3]) as client:
        try:
            await client.login()
        except LockoutGuardError:
            return "refused"
        except AuthenticationError:
            return "rejected"
    return "accepted"

print(asyncio.run(main()))
"""


async def _together(pbx: FakePBX, secrets: list[str]) -> list[BaseException | None]:
    clients = [YeastarClient(pbx.base_url, pbx.client_id, s) for s in secrets]
    try:
        async with asyncio.timeout(10):
            return await asyncio.gather(*(c.login() for c in clients), return_exceptions=True)
    finally:
        await asyncio.gather(*(c.aclose() for c in clients))


async def test_ten_clients_created_together_with_a_wrong_secret() -> None:
    async with FakePBX() as pbx:
        results = await _together(pbx, ["wrong-secret"] * 10)
        assert all(isinstance(r, AuthenticationError) for r in results)
        assert sum(isinstance(r, LockoutGuardError) for r in results) == 7
        assert pbx.count("get_token") == 3  # the same credentials: 3 at most
        assert not pbx.is_blocked()


async def test_ten_clients_each_with_another_wrong_secret() -> None:
    async with FakePBX() as pbx:
        results = await _together(pbx, [f"wrong-{n}" for n in range(10)])
        assert all(isinstance(r, AuthenticationError) for r in results)
        assert pbx.count("get_token") == 4  # any credentials: 4 at most, the 5th blocks
        assert not pbx.is_blocked()
        # The IP is not blocked: the right secret, elsewhere, would still work (the fake
        # answers it), but this process refuses until the count is cleared.
        assert pbx.stats.login_attempts == 4


async def test_clients_on_several_event_loops_share_the_limit() -> None:
    """Clients on threads of their own (one loop each) cannot pass the limit together."""
    async with FakePBX() as pbx:

        def one_thread() -> None:
            async def run() -> None:
                async with YeastarClient(pbx.base_url, pbx.client_id, "wrong") as client:
                    with pytest.raises(AuthenticationError):
                        await client.login()

            asyncio.run(run())

        async with asyncio.timeout(20):
            await asyncio.gather(*(asyncio.to_thread(one_thread) for _ in range(8)))
        assert pbx.count("get_token") == 3
        assert not pbx.is_blocked()


async def _spawn(pbx: FakePBX, secret: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        _ONE_TRY,
        pbx.base_url,
        pbx.client_id,
        secret,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=dict(os.environ),  # XDG_STATE_HOME: this test's temporary directory
    )


async def _outcome(process: asyncio.subprocess.Process) -> str:
    out, err = await process.communicate()
    assert process.returncode == 0, err.decode()
    return out.decode().strip()


async def test_a_crash_loop_of_five_processes_trying_once_each() -> None:
    async with FakePBX() as pbx:
        outcomes = []
        async with asyncio.timeout(60):
            for _ in range(5):  # a supervisor restarting the service after each failure
                outcomes.append(await _outcome(await _spawn(pbx, "wrong-secret")))
        assert outcomes == ["rejected"] * 3 + ["refused"] * 2
        assert pbx.count("get_token") == 3
        assert not pbx.is_blocked()


async def test_five_processes_started_at_once_with_other_wrong_secrets() -> None:
    async with FakePBX() as pbx:
        async with asyncio.timeout(60):
            spawned = [await _spawn(pbx, f"wrong-{n}") for n in range(6)]
            outcomes = await asyncio.gather(*(_outcome(p) for p in spawned))
        assert sorted(outcomes) == ["refused"] * 2 + ["rejected"] * 4
        assert pbx.count("get_token") == 4
        assert not pbx.is_blocked()


async def test_a_process_that_dies_mid_login_stays_counted() -> None:
    """A login in flight when its process is killed may have reached the PBX: it counts."""
    async with FakePBX() as pbx:
        pbx.delay_next(1, 60, endpoint="get_token")  # the process dies first
        async with asyncio.timeout(30):
            process = await _spawn(pbx, "wrong-secret")
            await pbx.wait_for_request("get_token", timeout=20)
            process.kill()
            await process.wait()
        record = json.loads(default_state_path().read_text())["pbx"]["127.0.0.1"]
        assert record["in_a_row"] == 1


async def test_a_state_file_swapped_for_garbage_between_logins_refuses() -> None:
    async with FakePBX() as pbx:
        async with YeastarClient(pbx.base_url, pbx.client_id, "wrong") as client:
            with pytest.raises(AuthenticationError):
                await client.login()
            default_state_path().write_bytes(b"\xff" * 64)
            with pytest.raises(LockoutGuardError, match=r"login-guard\.json"):
                await client.login()
        default_state_path().write_text(json.dumps({"version": 1, "pbx": {"127.0.0.1": 5}}))
        async with YeastarClient(pbx.base_url, pbx.client_id, pbx.client_secret) as good:
            with pytest.raises(LockoutGuardError, match="unusable"):
                await good.login()
        assert pbx.count("get_token") == 1
