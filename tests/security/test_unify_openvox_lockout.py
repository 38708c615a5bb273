"""Red team: get an OpenVox PBX to lock the IP through restarts of the application.

FakeOpenVox locks the caller's IP at its 5th wrong password in a row, as the PBX does. A
supervisor restarting a misconfigured service gives every run a fresh process; the count in the
shared state file must still stop the 5th wrong password from being sent.
"""

from __future__ import annotations

import asyncio
import os
import sys

from tests._openvox import PASSWORD
from yeastar_async.testing import FakeOpenVox

#: One process of a crash loop: one client, one login, report what it raised.
_ONE_TRY = """
import asyncio, sys
from yeastar_async.openvox import OpenVoxAuthError, OpenVoxClient, OpenVoxLockoutError

async def main():
    try:
        async with OpenVoxClient(sys.argv[1], sys.argv[2], sys.argv[3]):
            return "accepted"
    except OpenVoxLockoutError:
        return "refused"
    except OpenVoxAuthError:
        return "rejected"

print(asyncio.run(main()))
"""


async def _try_once(pbx: FakeOpenVox, username: str, password: str) -> str:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        _ONE_TRY,
        pbx.base_url,
        username,
        password,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=dict(os.environ),  # XDG_STATE_HOME: this test's temporary directory
    )
    out, err = await process.communicate()
    assert process.returncode == 0, err.decode()
    return out.decode().strip()


async def test_a_crash_loop_never_sends_the_fifth_wrong_password() -> None:
    async with FakeOpenVox(password=PASSWORD) as pbx:
        async with asyncio.timeout(60):
            outcomes = [await _try_once(pbx, "api", f"wrong-{n}") for n in range(6)]
        assert outcomes == ["rejected"] * 4 + ["refused"] * 2
        assert pbx.count("login") == 4
        assert pbx.failed_logins() == 4
        assert not pbx.is_locked()


async def test_processes_started_at_once_with_other_user_names_stay_below_five() -> None:
    async with FakeOpenVox(password=PASSWORD) as pbx:
        async with asyncio.timeout(60):
            outcomes = await asyncio.gather(
                *(_try_once(pbx, f"user{n}", "wrong") for n in range(6))
            )
        assert sorted(outcomes) == ["refused"] * 2 + ["rejected"] * 4
        assert pbx.count("login") == 4
        assert not pbx.is_locked()
