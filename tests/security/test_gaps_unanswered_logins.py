"""Red team: get the IP blocked with logins that reach the PBX and get no answer (issue 11, 5/7).

A PBX slower than the client's ``timeout``, or a proxy that drops the connection after passing
the request on, may count every such login as a rejected one, while the client sees no verdict.
The guard used to take those logins back, so a crash loop of processes with a wrong secret sent
one login per run, forever. Now an unanswered login stays counted unless its credentials are
known good at that address (they logged in there before: the PBX counts failed logins only), so
the wrong secret stops at the guard's limit, and the right one is never locked out by our guard.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import pytest
import trustme
from aiohttp import web

from tests.test_tls import serve_tls
from yeastar_async import YeastarClient, cli
from yeastar_async._guard_store import GuardRecord, default_state_path
from yeastar_async.errors import LockoutGuardError, TransportError
from yeastar_async.testing import FakePBX

#: One process of a crash loop: one client, one login, what came of it.
_YEASTAR_TRY = """
import asyncio, sys
from yeastar_async import YeastarClient, cli
from yeastar_async.errors import AuthenticationError, LockoutGuardError, TransportError

async def main():
    async with YeastarClient(sys.argv[1], sys.argv[2], sys.argv[3], timeout=0.5) as client:
        try:
            await client.login()
        except LockoutGuardError:
            return "refused"
        except AuthenticationError:
            return "rejected"
        except TransportError:
            return "unanswered"
    return "accepted"

print(asyncio.run(main()))
"""

_OPENVOX_TRY = """
import asyncio, sys
from yeastar_async.errors import TransportError
from yeastar_async.openvox import OpenVoxAuthError, OpenVoxClient, OpenVoxLockoutError

async def main():
    try:
        async with OpenVoxClient(sys.argv[1], sys.argv[2], sys.argv[3], timeout=0.5):
            return "accepted"
    except OpenVoxLockoutError:
        return "refused"
    except OpenVoxAuthError:
        return "rejected"
    except TransportError:
        return "unanswered"

print(asyncio.run(main()))
"""


@dataclass
class Silent:
    """An HTTP server on loopback that reads each request whole and never answers it.

    ``cut``: close the connection once the request is read (a proxy giving up), instead of
    holding it open until the client hangs up.
    """

    cut: bool
    paths: list[str] = field(default_factory=list)
    url: str = ""

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            length = next(
                (
                    int(v)
                    for k, _, v in (x.partition(":") for x in lines)
                    if k.lower() == "content-length"
                ),
                0,
            )
            await reader.readexactly(length)
            self.paths.append(lines[0].split(" ")[1].split("?")[0])
            if not self.cut:
                await reader.read()  # until the client gives up and closes
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError):
            pass
        finally:
            writer.close()

    def sent(self, endpoint: str) -> int:
        """Requests whose path ends with ``endpoint``."""
        return sum(p.endswith("/" + endpoint) for p in self.paths)


@asynccontextmanager
async def silent(cut: bool, scheme: str = "http") -> AsyncIterator[Silent]:
    server = Silent(cut)
    listening = await asyncio.start_server(server.handle, "127.0.0.1", 0)
    port = listening.sockets[0].getsockname()[1]
    server.url = f"{scheme}://127.0.0.1:{port}"
    try:
        yield server
    finally:
        listening.close()
        await listening.wait_closed()


async def _try_once(script: str, url: str, user: str, secret: str) -> str:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        script,
        url,
        user,
        secret,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=dict(os.environ),  # XDG_STATE_HOME: this test's temporary directory
    )
    out, err = await process.communicate()
    assert process.returncode == 0, err.decode()
    return out.decode().strip()


@pytest.mark.parametrize("cut", [False, True], ids=["never-answers", "cuts-after-reading"])
async def test_a_crash_loop_with_a_wrong_secret_against_a_silent_pbx_stops_at_the_limit(
    cut: bool,
) -> None:
    async with silent(cut) as pbx, asyncio.timeout(90):
        outcomes = [await _try_once(_YEASTAR_TRY, pbx.url, "id", "wrong") for _ in range(5)]
        # Was 5 x "unanswered": each run sent one more login the PBX may have counted.
        assert outcomes == ["unanswered"] * 3 + ["refused"] * 2
        assert pbx.sent("get_token") == 3  # the same credentials: 3 at most, ever
        record = json.loads(default_state_path().read_text())["pbx"]["127.0.0.1"]
        assert record["in_a_row"] == 3


async def test_the_known_good_secret_against_a_pbx_that_hangs_then_recovers_logs_in() -> None:
    async with FakePBX() as pbx, asyncio.timeout(90):
        good = (pbx.base_url, pbx.client_id, pbx.client_secret)
        assert await _try_once(_YEASTAR_TRY, *good) == "accepted"  # known good from now on
        pbx.delay_next(6, 30, endpoint="get_token")  # hangs longer than the client waits
        outcomes = [await _try_once(_YEASTAR_TRY, *good) for _ in range(6)]
        assert outcomes == ["unanswered"] * 6  # more than the limit: our guard never refuses
        assert await _try_once(_YEASTAR_TRY, *good) == "accepted"  # the PBX answers again
        assert pbx.count("get_token") == 8
        assert not pbx.is_blocked()


async def test_a_secret_regenerated_on_the_pbx_is_no_longer_known_good() -> None:
    async with FakePBX() as pbx, asyncio.timeout(90):
        assert await _try_once(_YEASTAR_TRY, pbx.base_url, pbx.client_id, "s1") == "rejected"
        state = default_state_path()
        document = json.loads(state.read_text())
        record = document["pbx"]["127.0.0.1"]
        (wrong,) = record["credentials"]
        # As if "s1" had logged in here before it was regenerated on the PBX.
        document["known_good"] = {"127.0.0.1": [wrong]}
        state.write_text(json.dumps(document))
        assert await _try_once(_YEASTAR_TRY, pbx.base_url, pbx.client_id, "s1") == "rejected"
        assert "known_good" not in json.loads(state.read_text())  # the rejection distrusts it
        pbx.delay_next(5, 30, endpoint="get_token")
        outcomes = [await _try_once(_YEASTAR_TRY, pbx.base_url, pbx.client_id, "s1")]
        outcomes.append(await _try_once(_YEASTAR_TRY, pbx.base_url, pbx.client_id, "s1"))
        assert outcomes == ["unanswered", "refused"]  # 2 rejections + 1 unanswered: the limit
        assert pbx.count("get_token") == 3


async def test_a_login_that_never_left_is_still_taken_back() -> None:
    async with silent(cut=True) as gone:
        url = gone.url  # nothing listens there once it closed
    async with asyncio.timeout(90):
        outcomes = [await _try_once(_YEASTAR_TRY, url, "id", "wrong") for _ in range(4)]
    assert outcomes == ["unanswered"] * 4  # connection refused: never counted, never refused
    if default_state_path().exists():
        assert json.loads(default_state_path().read_text())["pbx"]["127.0.0.1"]["in_a_row"] == 0


async def test_the_state_file_keeps_the_format_an_older_reader_accepts() -> None:
    """The known-good hashes sit beside the records, whose keys an older reader checks."""
    async with FakePBX() as pbx, asyncio.timeout(30):
        assert await _try_once(_YEASTAR_TRY, pbx.base_url, pbx.client_id, pbx.client_secret) == (
            "accepted"
        )
        document = json.loads(default_state_path().read_text())
        assert document["version"] == 1
        assert set(document["pbx"]["127.0.0.1"]) == {"in_a_row", "credentials", "epoch", "updated"}
        (hashed,) = document["known_good"]["127.0.0.1"]
        assert pbx.client_secret not in json.dumps(document)
        assert len(hashed) == 64


@pytest.mark.parametrize("bad", [["not-a-hash"], "x", [1]])
async def test_a_corrupt_known_good_entry_refuses_and_names_the_file(bad: object) -> None:
    async with FakePBX() as pbx, asyncio.timeout(30):
        default_state_path().parent.mkdir(parents=True, exist_ok=True)
        default_state_path().write_text(
            json.dumps({"version": 1, "pbx": {}, "known_good": {"127.0.0.1": bad}})
        )
        async with YeastarClient(pbx.base_url, pbx.client_id, pbx.client_secret) as client:
            with pytest.raises(LockoutGuardError, match=r"login-guard\.json.*known_good"):
                await client.login()
        assert pbx.count("get_token") == 0


def test_the_known_good_credentials_are_the_last_eight() -> None:
    record = GuardRecord()
    for n in range(10):
        record = record.succeeded(f"{n:064x}", float(n))
    record = record.succeeded(f"{3:064x}", 11.0)  # logged in again: the newest now
    assert record.known_good == tuple(f"{n:064x}" for n in (2, 4, 5, 6, 7, 8, 9, 3))
    assert not record.knows(f"{0:064x}")
    assert not record.distrusted(f"{3:064x}").knows(f"{3:064x}")


async def test_openvox_a_crash_loop_against_a_silent_pbx_stops_at_the_limit() -> None:
    async with silent(cut=True) as pbx, asyncio.timeout(90):
        outcomes = [await _try_once(_OPENVOX_TRY, pbx.url, "api", "wrong") for _ in range(6)]
        assert outcomes == ["unanswered"] * 4 + ["refused"] * 2
        assert pbx.sent("login") == 4


async def test_doctor_says_when_the_credentials_are_known_good(
    capsys: pytest.CaptureFixture[str],
) -> None:
    async with FakePBX() as pbx, asyncio.timeout(30):
        argv = ["doctor", "--base-url", pbx.base_url, "--client-id", pbx.client_id]
        await cli.amain([*argv, "--client-secret", pbx.client_secret])
        assert "logged in there before" not in capsys.readouterr().out  # not yet, at the check
        await cli.amain([*argv, "--client-secret", pbx.client_secret])
        assert "these credentials logged in there before" in capsys.readouterr().out


@pytest.mark.parametrize("tls", ["untrusted", "wrong pin"])
async def test_a_login_refused_by_tls_before_it_was_written_is_taken_back(tls: str) -> None:
    # A first-time user with a wrong pin or CA: the login never reached the PBX's HTTP layer,
    # so however often it is tried, nothing is counted against the credentials.
    hits: list[str] = []

    async def get_token(request: web.Request) -> web.Response:
        hits.append(request.path)
        return web.json_response({"errcode": -1, "errmsg": "FAILURE"})

    app = web.Application()
    app.router.add_post("/openapi/v1.0/get_token", get_token)
    async with serve_tls(trustme.CA(), app) as (url, _fingerprint):
        ssl_option = None if tls == "untrusted" else "ab" * 32
        for _ in range(6):
            async with YeastarClient(url, "id", "wrong-secret", ssl=ssl_option) as client:
                with pytest.raises(TransportError) as caught:
                    await client.login()
            assert caught.value.delivered is False
    assert hits == []
    assert json.loads(default_state_path().read_text())["pbx"]["127.0.0.1"]["in_a_row"] == 0
