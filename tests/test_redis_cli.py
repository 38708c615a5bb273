"""``yeastar-async relay`` against the FakePBX and a real redis-server."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from tests._calls import call_ends
from tests._calls import cdr as ended_call
from tests._redis import RedisServer, redis_client, redis_server, until
from yeastar_async import events
from yeastar_async.cli import amain
from yeastar_async.cli._relay import default_pbx_name
from yeastar_async.redis import EventRelay
from yeastar_async.redis._codec import decode_entry
from yeastar_async.testing import FakePBX

__all__ = ["redis_client", "redis_server"]

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def pbx_env(fake_pbx: FakePBX, monkeypatch: pytest.MonkeyPatch) -> FakePBX:
    monkeypatch.setenv("YEASTAR_BASE_URL", fake_pbx.base_url)
    monkeypatch.setenv("YEASTAR_CLIENT_ID", fake_pbx.client_id)
    monkeypatch.setenv("YEASTAR_CLIENT_SECRET", fake_pbx.client_secret)
    return fake_pbx


async def test_relay_command_appends_the_pbx_events(
    pbx_env: FakePBX,
    redis_server: RedisServer,
    redis_client: aioredis.Redis,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("YEASTAR_REDIS_URL", redis_server.url)
    command = asyncio.create_task(amain(["relay", "--pbx-name", "office", "--lease", "1"]))
    keys = EventRelay(redis_client, "office").keys
    await pbx_env.wait_for_subscription([30012, 30016])
    await pbx_env.emit(30012, pbx_env.example_event(30012))
    await until(lambda: redis_client.xlen(keys.events), "an event in the stream")
    assert await redis_client.exists(keys.tokens)  # the token is shared through Redis
    command.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(command, 10)
    entries = await redis_client.xrange(keys.events)
    assert [f[b"k"] for _, f in entries] == [b"c", b"e"]
    assert isinstance(events.decode(entries[1][1][b"v"]), events.NewCdr)
    status = capsys.readouterr().err
    assert "holding the link to 'office'" in status
    assert redis_server.url not in status
    assert pbx_env.client_secret not in status


@pytest.mark.parametrize("recover", [True, False], ids=["default", "no-recover-cdrs"])
async def test_relay_command_recovers_the_cdrs_of_a_failover_unless_told_not_to(
    pbx_env: FakePBX,
    redis_server: RedisServer,
    redis_client: aioredis.Redis,
    monkeypatch: pytest.MonkeyPatch,
    recover: bool,
) -> None:
    monkeypatch.setenv("YEASTAR_REDIS_URL", redis_server.url)
    keys = EventRelay(redis_client, "office").keys
    # A previous holder's link was last up a moment ago; a call ended since.
    seconds, _ = await redis_client.time()
    await redis_client.set(keys.alive, (int(seconds) - 2) * 1000)
    missed = ended_call(1, ago=3, trunk="gap")
    await call_ends(pbx_env, missed)
    argv = ["relay", "--pbx-name", "office", "--lease", "1"]
    command = asyncio.create_task(amain(argv if recover else [*argv, "--no-recover-cdrs"]))
    try:

        async def failover_reported() -> bool:
            found = [decode_entry(f) for _, f in await redis_client.xrange(keys.events)]
            return any(isinstance(e, events.Connected) and e.reconnect for e in found)

        await until(failover_reported, "the failover's Connected in the stream")
    finally:
        command.cancel()
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(command, 10)
    found = [decode_entry(f) for _, f in await redis_client.xrange(keys.events)]
    connected = next(e for e in found if isinstance(e, events.Connected))
    recovered = [e.msg.call_id for e in found if isinstance(e, events.CdrRecovered)]
    if recover:
        assert recovered == [missed["call_id"]]
        assert connected.recovered_cdrs == 1
        assert 30012 not in connected.unrecoverable_topics
    else:
        assert recovered == []
        assert pbx_env.count("cdr/search") == 0
        assert 30012 in connected.unrecoverable_topics


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["relay"], "missing --redis (or set YEASTAR_REDIS_URL)"),
        (["relay", "--redis", "http://x"], "is not a Redis URL"),
        (["relay", "--redis", "redis://:hunter2@h", "--pbx-name", "a}b"], "--pbx-name must"),
    ],
)
async def test_relay_usage_errors(
    pbx_env: FakePBX,
    argv: list[str],
    message: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.delenv("YEASTAR_REDIS_URL", raising=False)
    assert await amain(argv) == 2
    text = capsys.readouterr().err
    assert message in text
    assert "hunter2" not in text


def test_the_pbx_is_named_by_its_address_by_default() -> None:
    assert default_pbx_name("https://pbx.example.com:8088") == "pbx.example.com:8088"
    assert default_pbx_name("https://pbx.example.com") == "pbx.example.com"


def test_without_the_redis_package_the_extra_is_named() -> None:
    # A fresh interpreter in which `import redis` fails, as without the extra installed.
    code = (
        "import sys; sys.modules['redis'] = None\n"
        "from yeastar_async.cli import main\n"
        "try:\n"
        "    import yeastar_async.redis\n"
        "except ImportError as exc:\n"
        "    print('import:', exc)\n"
        "sys.exit(main(['relay', '--redis', 'redis://127.0.0.1:1/0', '--base-url', 'http://x',"
        " '--client-id', 'a', '--client-secret', 'b']))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=ROOT
    )
    assert done.returncode == 2
    extra = 'pip install "yeastar-async[redis]"'
    assert f"import: yeastar_async.redis needs the redis package: {extra}" in done.stdout
    assert f"the relay needs the redis package: {extra}" in done.stderr
