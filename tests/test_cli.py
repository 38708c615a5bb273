"""The ``yeastar-async`` command line, run in-process (``amain`` / ``main``) against a FakePBX.

Commands that run until Ctrl-C (``demo --forever``, ``fake-pbx``) and ``python -m yeastar_async``
itself are also run as subprocesses, interrupted with SIGINT. HTTPS cases put a small TLS
front (a trustme certificate) before the FakePBX, all on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import signal
import ssl
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import trustme

from yeastar_async import YeastarClient, cli, events
from yeastar_async.cli import _commands, _connect, _demo, _events, _format, _output
from yeastar_async.testing import FakePBX

ROOT = Path(__file__).resolve().parents[1]
posix_only = pytest.mark.skipif(sys.platform == "win32", reason="sends SIGINT")


@pytest.fixture
async def pbx() -> AsyncIterator[FakePBX]:
    async with FakePBX(ring_time=0.01, talk_time=0.01) as fake:
        yield fake


def flags(pbx: FakePBX, *, secret: str | None = None) -> list[str]:
    return [
        "--base-url",
        pbx.base_url,
        "--client-id",
        pbx.client_id,
        "--client-secret",
        pbx.client_secret if secret is None else secret,
    ]


@pytest.fixture
def env(pbx: FakePBX, monkeypatch: pytest.MonkeyPatch) -> FakePBX:
    """The PBX settings in the environment, as a user would set them."""
    monkeypatch.setenv(_connect.ENV_BASE_URL, pbx.base_url)
    monkeypatch.setenv(_connect.ENV_CLIENT_ID, pbx.client_id)
    monkeypatch.setenv(_connect.ENV_CLIENT_SECRET, pbx.client_secret)
    return pbx


async def run(*argv: str, timeout: float = 20.0) -> int:
    async with asyncio.timeout(timeout):
        return await cli.amain(list(argv))


# -- TLS front ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, ssl.SSLError):
        pass
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError, ssl.SSLError):
            await writer.wait_closed()


@contextlib.asynccontextmanager
async def tls_front(pbx: FakePBX, ca: trustme.CA) -> AsyncIterator[tuple[str, str]]:
    """An HTTPS (and WSS) address in front of ``pbx``; yields (base_url, SHA-256 fingerprint)."""
    cert = ca.issue_cert("127.0.0.1")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(context)
    tasks: set[asyncio.Task[Any]] = set()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        tasks.add(task)
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", pbx.port)
            await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))
        except asyncio.CancelledError:
            pass  # shutting down; asyncio 3.11's server callback chokes on cancelled tasks
        finally:
            writer.close()
            tasks.discard(task)

    server = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=context)
    port = server.sockets[0].getsockname()[1]
    der = ssl.PEM_cert_to_DER_cert(cert.cert_chain_pems[0].bytes().decode())
    fingerprint = hashlib.sha256(der).digest().hex(":").upper()
    try:
        yield f"https://127.0.0.1:{port}", fingerprint
    finally:
        server.close()
        for task in list(tasks):
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await server.wait_closed()


# -- python -m, help, usage -----------------------------------------------------------------------


def test_python_m_help_runs_in_a_subprocess() -> None:
    import subprocess

    done = subprocess.run(
        [sys.executable, "-m", "yeastar_async", "--help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("usage: yeastar-async")
    for command in ("demo", "events", "doctor", "call", "recording", "fake-pbx"):
        assert command in done.stdout


def test_usage_errors_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main([]) == 2  # no command
    assert "required: COMMAND" in capsys.readouterr().err
    assert cli.main(["events", "--topics", "30011,abc"]) == 2
    err = capsys.readouterr().err
    assert "not a topic number: 'abc'" in err
    assert err.count("\n") == 1  # one line: no usage block
    assert cli.main(["--version"]) == 0
    assert capsys.readouterr().out.startswith("yeastar-async ")


async def test_missing_settings_exit_2(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in (_connect.ENV_BASE_URL, _connect.ENV_CLIENT_ID, _connect.ENV_CLIENT_SECRET):
        monkeypatch.delenv(name, raising=False)
    assert await run("doctor") == 2
    assert "missing --base-url (or set YEASTAR_BASE_URL)" in capsys.readouterr().err


async def test_bad_tls_flags_exit_2(env: FakePBX, capsys: pytest.CaptureFixture[str]) -> None:
    assert await run("doctor", "--pin", "not-a-fingerprint") == 2
    assert "--pin takes a SHA-256 certificate fingerprint" in capsys.readouterr().err
    assert await run("doctor", "--ca-file", "/nonexistent/ca.pem") == 2
    assert "--ca-file: no such file" in capsys.readouterr().err
    assert cli.main(["doctor", "--pin", "AA" * 32, "--insecure"]) == 2  # mutually exclusive
    assert "not allowed with argument" in capsys.readouterr().err


# -- demo -----------------------------------------------------------------------------------------


async def test_demo_runs_the_screening_bot_and_prints_events(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert await run("demo") == 0
    out = capsys.readouterr().out
    assert "FakePBX listening on http://127.0.0.1:" in out
    assert f"bot: accepted {_demo.DEMO_ALLOWED} (allow list)" in out
    assert f"bot: refused {_demo.DEMO_BLOCKED} (block list)" in out
    # One line per event as it arrives: 30016 before the bot's decision, then the call.
    lines = out.splitlines()
    first_incoming = next(i for i, line in enumerate(lines) if " 30016 incoming " in line)
    assert "bot: accepted" in lines[first_incoming + 1]
    for text in (" 30011 call status ", " 30012 new CDR ", " 30017 DTMF ", " 30009 presence "):
        assert text in out
    assert "key 1 pressed" in out
    assert "extension 2001 is now lunch" in out
    assert "Summary: 2 inbound calls screened (1 accepted, 1 refused)" in out
    assert "3 CDRs" in out


@posix_only
async def test_demo_forever_stops_cleanly_on_ctrl_c() -> None:
    proc = await _spawn("demo", "--forever")
    try:
        lines = await _read_until(proc, "press Ctrl-C")
        assert any("client secret" in line for line in lines)  # the fake's: meant to be shown
        proc.send_signal(signal.SIGINT)
        _, err = await asyncio.wait_for(proc.communicate(), 20)
    finally:
        await _reap(proc)
    assert proc.returncode == 130, err.decode()  # Ctrl-C: 128 + SIGINT, as shells expect
    assert b"Traceback" not in err
    assert err.decode().strip().endswith("stopped")


# -- events ---------------------------------------------------------------------------------------


async def test_events_prints_lines_and_reports_reconnects(
    env: FakePBX, capsys: pytest.CaptureFixture[str]
) -> None:
    pbx = env
    task = asyncio.create_task(run("events", "--topics", "30009,30011", "--count", "3"))
    await pbx.wait_for_subscription([30009, 30011])
    await pbx.set_presence("2000", "away")

    assert pbx.drop_connections() == 1
    await pbx.wait_until(lambda: len(pbx.stats.subscriptions) >= 2, 10, "a resubscription")
    await pbx.set_presence("2001", "lunch")
    await pbx.set_presence("2002", "off_work")

    assert await task == 0
    captured = capsys.readouterr()
    lines = captured.out.splitlines()
    assert len(lines) == 3
    assert "30009 presence" in lines[0]
    assert "extension 2000 is now away" in lines[0]
    assert "extension 2001 is now lunch" in lines[1]
    assert "extension 2002 is now off_work" in lines[2]
    err = captured.err
    assert f"[status] connected to {pbx.base_url}, 2 topic(s)" in err
    assert "[status] disconnected (" in err
    assert "[status] reconnected after a " in err
    assert err.index("disconnected") < err.index("reconnected")
    assert pbx.client_secret not in captured.out + err


async def test_events_json_lines_and_default_topics(
    env: FakePBX, capsys: pytest.CaptureFixture[str]
) -> None:
    pbx = env
    task = asyncio.create_task(run("events", "--json", "--count", "2"))
    socket = await pbx.wait_for_subscription([30005])
    # The manual's topics: older firmware may refuse a topic list naming topics it lacks.
    assert socket.topics == set(events.MANUAL_TOPICS)
    assert len(socket.topics) == 21
    assert 30021 not in socket.topics  # no such topic in the manual
    await pbx.set_presence("2000", "away")
    await pbx.emit(30026, {"queue_number": "6402", "agent_number": "2001", "caller_number": "5"})
    await pbx.set_presence("2001", "away")  # one more than --count: not printed
    assert await task == 0
    first, second = (json.loads(line) for line in capsys.readouterr().out.splitlines())
    assert first == {
        "type": 30009,
        "sn": "3631A2124XXX",
        "msg": {"extension": "2000", "status": "away"},
    }
    assert second["type"] == 30026
    assert second["sn"] is None
    assert second["msg"]["agent_number"] == "2001"


async def test_events_with_a_wrong_secret_fails_after_one_login(
    pbx: FakePBX, capsys: pytest.CaptureFixture[str]
) -> None:
    assert await run("events", *flags(pbx, secret="wrong-secret")) == 1
    err = capsys.readouterr().err
    assert err.count("get_token: PBX answered errcode -1") == 1  # the rejection, once
    assert err.count("Fix YEASTAR_CLIENT_ID") == 1  # then the advice
    assert "Traceback" not in err
    assert "wrong-secret" not in err
    assert pbx.stats.login_attempts == 1


# -- doctor ---------------------------------------------------------------------------------------


async def test_doctor_all_green_over_http(env: FakePBX, capsys: pytest.CaptureFixture[str]) -> None:
    pbx = env
    assert await run("doctor") == 0
    out = capsys.readouterr().out
    assert "✓ reachability" in out
    assert "! TLS           not used (http://)" in out
    assert "✓ login" in out
    assert "✓ API access" in out
    assert "firmware " in out
    assert "✓ capacity      extensions " in out
    assert "✓ WebSocket     subscribed (" in out
    assert "heartbeat answered" in out
    assert '"Control Inbound Call"' in out  # the prerequisites the API cannot check
    assert "Presence Status Monitoring" in out
    assert out.rstrip().endswith("All checks passed.")
    assert pbx.stats.login_attempts == 1
    assert pbx.stats.heartbeats == 1
    assert pbx.stats.subscriptions == [[30011]]
    assert pbx.live_tokens() == 0  # revoked on close


async def test_doctor_wrong_secret_logs_in_once_and_prints_the_fix(
    pbx: FakePBX, capsys: pytest.CaptureFixture[str]
) -> None:
    assert await run("doctor", *flags(pbx, secret="wrong-secret")) == 1
    out = capsys.readouterr().out
    assert "✗ login" in out
    assert "fix: Copy the Client ID and Client Secret again from Integrations > API" in out
    assert "doctor tried once only" in out
    assert "- API access    skipped: needs a login (not retried)" in out
    assert "- WebSocket     skipped" in out
    assert "1 check(s) failed: login." in out
    assert "wrong-secret" not in out
    assert pbx.stats.login_attempts == 1  # the lockout guard: never a second attempt
    assert pbx.count("system/information") == 0


@pytest.mark.parametrize(
    ("errcode", "fix"),
    [
        (70004, "Security > Security Rules > IP Blocklist"),
        (70087, "not on the API's IP allow list"),
        (10001, "Enable the API under Integrations > API"),
        (60002, "too many live tokens"),
    ],
)
async def test_doctor_login_failures_name_their_fix(
    env: FakePBX, capsys: pytest.CaptureFixture[str], errcode: int, fix: str
) -> None:
    env.fail_next_errcode(1, errcode, endpoint="get_token")
    assert await run("doctor") == 1
    out = capsys.readouterr().out
    assert "✗ login" in out
    assert str(errcode) in out
    assert fix in out
    assert env.count("get_token") == 1


async def test_doctor_unreachable(capsys: pytest.CaptureFixture[str]) -> None:
    async with FakePBX() as gone:
        url, cid, secret = gone.base_url, gone.client_id, gone.client_secret
    # The port was just released: nothing listens there now.
    argv = ["--base-url", url, "--client-id", cid, "--client-secret", secret]
    assert await run("doctor", *argv) == 1
    out = capsys.readouterr().out
    assert "✗ reachability" in out
    assert "HTTPS 8088 by default" in out
    assert "- login         skipped" in out


async def test_doctor_websocket_failures(env: FakePBX, capsys: pytest.CaptureFixture[str]) -> None:
    env.reject_handshake(503, count=1)
    assert await run("doctor") == 1
    out = capsys.readouterr().out
    assert "✓ API access" in out
    assert "✗ WebSocket     WebSocket upgrade refused: HTTP 503" in out
    assert "must pass WebSocket upgrades" in out

    env.stop_heartbeat_replies()
    assert await run("doctor", "--timeout", "0.5") == 1
    assert "subscribed, but no 'heartbeat response' within" in capsys.readouterr().out


async def test_doctor_self_signed_certificate_suggests_a_pin(
    pbx: FakePBX, ca: trustme.CA, capsys: pytest.CaptureFixture[str]
) -> None:
    async with tls_front(pbx, ca) as (url, fingerprint):
        argv = ["doctor", "--base-url", url, "--client-id", pbx.client_id]
        argv += ["--client-secret", pbx.client_secret]
        assert await run(*argv) == 1
        out = capsys.readouterr().out
        assert "✗ TLS           certificate not trusted" in out
        assert f"--pin {fingerprint}" in out
        assert "openssl x509 -noout -fingerprint -sha256" in out
        assert "--ca-file PATH" in out
        assert "- login         skipped" in out
        assert pbx.stats.login_attempts == 0

        # With the pin, every check passes over https / wss.
        assert await run(*argv, "--pin", fingerprint) == 0
        out = capsys.readouterr().out
        assert "certificate matches the pin" in out
        assert "✓ WebSocket" in out
        assert "All checks passed." in out

        assert await run(*argv, "--pin", "AB:" * 31 + "AB") == 1
        out = capsys.readouterr().out
        assert "✗ TLS" in out
        assert "does not match" in out
        assert f"It now presents {fingerprint}." in out

        # The pin as openssl prints it, and from the environment as from_env() reads it.
        openssl = f"sha256 Fingerprint={fingerprint.upper()}"
        assert await run(*argv, "--pin", openssl) == 0
        capsys.readouterr()
        with pytest.MonkeyPatch.context() as env:
            env.setenv("YEASTAR_PIN", fingerprint.replace(":", " "))
            assert await run(*argv) == 0
            assert "certificate matches the pin" in capsys.readouterr().out


async def test_doctor_with_a_ca_file_and_insecure(
    pbx: FakePBX, ca: trustme.CA, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    async with tls_front(pbx, ca) as (url, fingerprint):
        argv = ["doctor", "--base-url", url, "--client-id", pbx.client_id]
        argv += ["--client-secret", pbx.client_secret]
        assert await run(*argv, "--ca-file", str(ca_file)) == 0
        assert "✓ TLS           TLSv1.3, certificate verified" in capsys.readouterr().out

        assert await run(*argv, "--insecure") == 0  # a warning, not a failure
        captured = capsys.readouterr()
        assert "! TLS" in captured.out
        assert "certificate NOT verified (--insecure)" in captured.out
        assert f"--pin {fingerprint}" in captured.out
        assert "TLS certificate verification is OFF" in captured.err  # the library's warning


# -- call, recording ----------------------------------------------------------------------------


async def test_call_dial_and_hangup(env: FakePBX, capsys: pytest.CaptureFixture[str]) -> None:
    pbx = env
    assert await run("call", "dial", "2000", "5503302", "--auto-answer") == 0
    out = capsys.readouterr().out
    call_id = out.split("call id ")[1].strip()
    assert out.startswith("dialling 2000 → 5503302: call id ")
    assert call_id in pbx.calls
    assert pbx.requests_for("call/dial")[-1].params == {
        "caller": "2000",
        "callee": "5503302",
        "auto_answer": "yes",
    }

    live = pbx.simulate_dial("2000", "2001", talk_time=None)
    assert await run("call", "hangup", live.channel_id) == 0
    assert f"hung up {live.channel_id} (call id {live.call_id})" in capsys.readouterr().out
    cdr = await live.finished(timeout=5)
    assert cdr["call_id"] == live.call_id


async def test_call_hangup_of_an_unknown_channel_is_one_line(
    env: FakePBX, capsys: pytest.CaptureFixture[str]
) -> None:
    assert await run("call", "hangup", "PJSIP/9999-00000001") == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith("error: call/hangup: PBX answered errcode 70130")


def test_main_runs_a_command_in_its_own_loop(
    env: FakePBX, capsys: pytest.CaptureFixture[str]
) -> None:
    # The console-script path: main() runs its own event loop, so it runs in a worker thread
    # while the FakePBX is served by this test's loop.
    async def scenario() -> int:
        async with FakePBX() as fake:
            return await asyncio.to_thread(cli.main, ["call", "dial", "2000", "2001", *flags(fake)])

    assert asyncio.run(scenario()) == 0
    assert "dialling 2000 → 2001: call id " in capsys.readouterr().out


async def test_recording_download_with_progress(
    env: FakePBX, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pbx = env
    data = os.urandom(300_000)
    pbx.add_file("20240101-2000-2001.wav", data, endpoint="recording/download")

    assert await run("recording", "download", "614", "--out", str(tmp_path)) == 0
    saved = tmp_path / "20240101-2000-2001.wav"
    assert saved.read_bytes() == data
    captured = capsys.readouterr()
    assert f"saved {saved} (300000 bytes)" in captured.out
    assert "recording 614 [" in captured.err  # the final progress line
    assert "293.0 KiB in " in captured.err
    assert pbx.requests_for("recording/download")[-1].params == {"id": "614"}

    pbx.add_file("x.wav", data)  # by file name, the fake serves that file
    target = tmp_path / "named.wav"
    assert await run("recording", "download", "x.wav", "--out", str(target)) == 0
    assert target.read_bytes() == data
    assert pbx.requests_for("recording/download")[-1].params == {"file": "x.wav"}


async def test_recording_download_error_leaves_no_file(
    env: FakePBX, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    env.fail_next_errcode(1, 60001, endpoint="recording/download")
    target = tmp_path / "r.wav"
    assert await run("recording", "download", "1", "--out", str(target)) == 1
    assert "error: recording/download: PBX answered errcode 60001" in capsys.readouterr().err
    assert os.listdir(tmp_path) == []  # not even a partial file


def test_progress_line_redraws_in_place_on_a_terminal(
    capsys: pytest.CaptureFixture[str],
) -> None:
    progress = _commands.Progress("recording 7", live=True, fps=1e9)
    for written in (1000, 2000, 3000):
        progress.update(written)
    progress.done()
    err = capsys.readouterr().err
    assert err.count("\r") == 4  # three redraws and the final line
    assert "####" in err
    assert err.endswith("] 2.9 KiB in " + err.rsplit(" in ", 1)[1])

    quiet = _commands.Progress("recording 7", live=False)
    quiet.update(10)
    assert capsys.readouterr().err == ""


# -- fake-pbx -------------------------------------------------------------------------------------


@posix_only
@pytest.mark.parametrize(
    ("stop", "traffic"), [(signal.SIGINT, False), (signal.SIGTERM, True)], ids=["int", "term"]
)
async def test_fake_pbx_command_serves_until_stopped(stop: signal.Signals, traffic: bool) -> None:
    argv = ["fake-pbx", "--port", "0", "--client-id", "manual-tester"]
    proc = await _spawn(*argv, *(["--traffic", "0.05"] if traffic else []))
    try:
        lines = await _read_until(proc, "client secret")
        base_url = next(line for line in lines if "base_url" in line).split()[-1]
        secret = lines[-1].split()[-1]
        assert base_url.startswith("http://127.0.0.1:")
        async with YeastarClient(base_url, "manual-tester", secret) as client:
            info = await client.system.information()
            assert info.data is not None
            async with client.subscribe(events.Connected, events.CallStatusChanged) as stream:
                assert isinstance(await anext(stream), events.Connected)
                if traffic:  # the simulator places calls on its own
                    status = await anext(stream)
                    assert status.msg.call_id
                else:
                    dialled = await client.call.dial(caller="2000", callee="2001")
                    status = await anext(stream)
                    assert status.msg.call_id == dialled.call_id
        proc.send_signal(stop)
        _, err = await asyncio.wait_for(proc.communicate(), 20)
    finally:
        await _reap(proc)
    # Ctrl-C: 130; SIGTERM (a service manager's stop) ends a command that runs until stopped: 0.
    assert proc.returncode == (130 if stop == signal.SIGINT else 0), err.decode()
    assert b"Traceback" not in err


# -- event lines ----------------------------------------------------------------------------------


def test_every_topic_has_a_line_format() -> None:
    for topic, cls in events.TOPICS.items():
        line = cli.format_event(cls(), clock=lambda: 0.25)
        assert f"  {topic} " in line
        assert ".250  " in line
        assert "{" not in line  # every placeholder was filled

    unknown = events.UnknownEvent(type=39034, raw='{"type":39034,"msg":"{}"}')
    assert cli.format_event(unknown).endswith('39034 unknown       {"type":39034,"msg":"{}"}')


def test_call_members_are_readable() -> None:
    frame = json.dumps(
        {
            "type": 30011,
            "sn": "x",
            "msg": json.dumps(
                {
                    "call_id": "1.2",
                    "members": [
                        {"inbound": {"from": "55", "to": "2000", "trunk_name": "sip1",
                                     "channel_id": "c1", "member_status": "ALERT"}},
                        {"extension": {"number": "2000", "channel_id": "c2",
                                       "member_status": "RING"}},
                    ],
                }
            ),
        }
    )  # fmt: skip
    event = events.decode(frame)
    line = cli.format_event(event)
    # Each member with the channel ID that `call hangup` / accept_inbound take.
    assert line.endswith(
        "call status   call 1.2: in 55 via sip1 ALERT channel c1, ext 2000 RING channel c2"
    )
    # JSON lines leave out absent legs and the emptied wire aliases.
    doc = json.loads(_format.event_json(event))
    assert doc["msg"]["members"][0] == {
        "inbound": {
            "from": "55",
            "to": "2000",
            "trunk_name": "sip1",
            "channel_id": "c1",
            "member_status": "ALERT",
            "call_path": "",
        }
    }


# -- subprocess helpers ---------------------------------------------------------------------------


def _default_sigint() -> None:
    # A test run started in the background (`pytest &`, nohup, some CI runners) hands its
    # children an ignored SIGINT, and Python keeps an inherited SIG_IGN: without this the
    # Ctrl-C tests would wait for a signal the child never notices.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


async def _spawn(*argv: str, stdout: int = asyncio.subprocess.PIPE) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "yeastar_async",
        *argv,
        cwd=ROOT,
        stdout=stdout,
        stderr=asyncio.subprocess.PIPE,
        preexec_fn=None if sys.platform == "win32" else _default_sigint,
    )


async def _read_until(proc: asyncio.subprocess.Process, marker: str) -> list[str]:
    assert proc.stdout is not None
    lines: list[str] = []
    async with asyncio.timeout(30):
        while True:
            raw = await proc.stdout.readline()
            if not raw:
                raise AssertionError(f"exited before {marker!r}: {lines}")
            lines.append(raw.decode().rstrip("\n"))
            if marker in lines[-1]:
                return lines


async def _reap(proc: asyncio.subprocess.Process) -> None:
    if proc.returncode is None:
        proc.kill()
        await proc.wait()


def test_symbols_fall_back_to_ascii_on_a_legacy_console(monkeypatch: pytest.MonkeyPatch) -> None:
    import io

    raw = io.BytesIO()
    console = io.TextIOWrapper(raw, encoding="cp1252")
    monkeypatch.setattr(sys, "stdout", console)
    _output.out("✓ login → ok, ✗ TLS, 30011 ×2")
    console.flush()
    assert raw.getvalue() == b"OK login -> ok, XX TLS, 30011 x2\n"


# -- usage and advice found in a black-box trial ---------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "where", "endpoint"),
    [
        (["call", "hangup", ""], "call.hangup(): give exactly one of channel_id", "call/hangup"),
        (["call", "dial", "", "2001"], "call.dial(): caller is required", "call/dial"),
        (["recording", "download", "", "--out", "x"], "give exactly one of id, file", "download"),
        (["recording", "download", "7", "--out", "x", "--retries", "-1"], "retries", "download"),
    ],
    ids=["hangup", "dial", "download", "retries"],
)
async def test_arguments_the_sdk_refuses_are_bad_usage(
    env: FakePBX,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    argv: list[str],
    where: str,
    endpoint: str,
) -> None:
    monkeypatch.chdir(tmp_path)  # --out x: nothing may be written anyway
    assert await run(*argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1  # one line, no traceback
    assert err.startswith("yeastar-async: error: ")
    assert where in err
    assert env.count("recording/download" if endpoint == "download" else endpoint) == 0
    assert os.listdir(tmp_path) == []


async def test_unexpected_errors_are_not_taken_for_bad_usage(
    env: FakePBX, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def broken(*args: Any, **kwargs: Any) -> Any:
        raise TypeError("a bug, not the user's input")

    monkeypatch.setattr(YeastarClient, "login", broken)
    with pytest.raises(TypeError, match="a bug"):
        await run("doctor")


async def test_an_unusable_download_answer_is_a_pbx_failure(
    env: FakePBX, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # A ValueError raised after the PBX answered is the PBX's fault: exit 1, not 2.
    env.set_response("recording/download", {"errcode": 0, "errmsg": "SUCCESS", "file": "a.wav"})
    assert await run("recording", "download", "614", "--out", str(tmp_path)) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith("error: recording/download: ")
    assert "download_resource_url" in err


async def test_a_rejected_login_advises_fixing_the_credentials_first(
    pbx: FakePBX, capsys: pytest.CaptureFixture[str]
) -> None:
    assert await run("call", "dial", "2000", "2001", *flags(pbx, secret="wrong-secret")) == 1
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 2  # the error, then the advice
    assert lines[0].startswith("error: get_token: PBX answered errcode -1")
    advice = lines[1]
    assert "YEASTAR_CLIENT_ID / YEASTAR_CLIENT_SECRET (or --client-id / --client-secret)" in advice
    assert "5 rejected logins in a row, counted across runs" in advice
    assert "wrong-secret" not in "\n".join(lines)
    assert pbx.stats.login_attempts == 1


@pytest.mark.parametrize(
    ("errcode", "fix", "not_said"),
    [
        (10001, "the API is off, or this firmware predates the endpoint", ""),
        (10002, "no longer maintains the API version in /openapi/v1.0", "Enable the API"),
        (10003, "does not support the API version in /openapi/v1.0", "Enable the API"),
        (70123, "Enable the API under Integrations > API", "API version"),
    ],
)
async def test_doctor_api_errors_name_their_own_fix(
    env: FakePBX, capsys: pytest.CaptureFixture[str], errcode: int, fix: str, not_said: str
) -> None:
    env.fail_next_errcode(1, errcode, endpoint="get_token")
    assert await run("doctor") == 1
    out = capsys.readouterr().out
    fix_line = next(line for line in out.splitlines() if "fix: " in line and "https://" not in line)
    assert fix in fix_line
    if not_said:
        assert not_said not in fix_line


async def test_doctor_names_the_http_failure_on_its_own_line(
    env: FakePBX, capsys: pytest.CaptureFixture[str]
) -> None:
    env.fail_next(1, 503, endpoint="get_token")
    assert await run("doctor") == 1
    lines = capsys.readouterr().out.splitlines()
    login = next(i for i, line in enumerate(lines) if line.startswith("✗ login"))
    assert "HTTP 503" in lines[login]  # the detail, on the check's own line
    assert "fix: " in lines[login + 1]
    assert "HTTP 503" in lines[login + 1]
    assert "above" not in lines[login + 1]


async def test_insecure_warning_names_the_command_line_flag(
    pbx: FakePBX, ca: trustme.CA, capsys: pytest.CaptureFixture[str]
) -> None:
    async with tls_front(pbx, ca) as (url, fingerprint):
        argv = ["--base-url", url, "--client-id", pbx.client_id]
        argv += ["--client-secret", pbx.client_secret, "--insecure"]
        assert await run("call", "dial", "2000", "2001", *argv) == 0
        err = capsys.readouterr().err
        assert err.count("TLS certificate verification is OFF") == 1
        assert "--pin <sha256 fingerprint>" in err
        assert "yeastar-async doctor prints it" in err
        assert "ssl=" not in err  # the Python spelling means nothing on a command line

        assert await run("doctor", *argv) == 0
        out = capsys.readouterr().out
        assert f"--pin {fingerprint}" in out  # the fingerprint to use


async def test_plain_http_prints_no_tls_warning(
    env: FakePBX, capsys: pytest.CaptureFixture[str]
) -> None:
    assert await run("call", "dial", "2000", "2001", "--insecure") == 0
    assert "verification is OFF" not in capsys.readouterr().err


def test_fake_pbx_help_documents_fixed_credentials(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["fake-pbx", "--help"]) == 0
    help_text = " ".join(capsys.readouterr().out.split())
    assert "--client-id ID the client ID to accept" in help_text
    assert "--client-secret SECRET the client secret to accept" in help_text
    assert "keep the same settings across restarts" in help_text


async def test_fake_pbx_accepts_the_given_credentials() -> None:
    proc = await _spawn("fake-pbx", "--client-id", "manual", "--client-secret", "s3cret-fixed")
    try:
        lines = await _read_until(proc, "client secret")
        assert lines[-1].split()[-1] == "s3cret-fixed"
        base_url = next(line for line in lines if "base_url" in line).split()[-1]
        async with YeastarClient(base_url, "manual", "s3cret-fixed") as client:
            await client.login()
    finally:
        await _reap(proc)


# -- usage, pipes and signals as a new user met them ----------------------------------------------


@pytest.mark.parametrize(
    ("argv", "said"),
    [
        (["fake-pbx", "--port", "99999"], "argument --port: not a TCP port (0-65535): '99999'"),
        (["fake-pbx", "--port", "-1"], "argument --port: not a TCP port"),
        (["fake-pbx", "--traffic", "-1"], "argument --traffic: must be 0 (off) or 0.01 s"),
        (["fake-pbx", "--traffic", "nan"], "argument --traffic: must be 0 (off)"),
        (["fake-pbx", "--traffic", "0.0001"], "argument --traffic: must be 0 (off)"),
        (["events", "--count", "0"], "argument --count: must be a whole number >= 1: '0'"),
        (["events", "--count", "-2"], "argument --count: must be a whole number >= 1"),
        (["events", "--topics", "1"], "no such topic: 1 (the PBX's topics are 30005-30099)"),
        (["events", "--topics", "30100"], "no such topic: 30100"),
        (["events", "--topics", "30011;30012"], "not a topic number: '30011;30012'"),
        (["events", "--topics", " , "], "no topic given"),
        (["call", "query", "--type", "all"], "argument --type: invalid choice: 'all'"),
    ],
)
async def test_bad_arguments_are_one_line_usage_errors(
    env: FakePBX, capsys: pytest.CaptureFixture[str], argv: list[str], said: str
) -> None:
    # Before: a traceback (--port 99999), a flood (--traffic -1), a tail that never ended
    # (--count 0), topics taken as given. The timeout bounds the old behaviour.
    assert await run(*argv, timeout=10) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    assert err.startswith("yeastar-async: error: ")
    assert said in err
    assert f"(see yeastar-async {' '.join(argv[: 2 if argv[0] == 'call' else 1])} --help)" in err
    assert env.stats.login_attempts == 0


@pytest.mark.parametrize("text", ["30011 30012", "30011, 30012", " 30011,30012,30011 "])
async def test_topics_separated_by_spaces_or_commas(
    env: FakePBX, capsys: pytest.CaptureFixture[str], text: str
) -> None:
    assert _events.parse_topics(text) == (30011, 30012)
    task = asyncio.create_task(run("events", "--topics", text, "--count", "1"))
    socket = await env.wait_for_subscription([30011, 30012])
    assert socket.topics == {30011, 30012}  # not 3001130012
    env.simulate_dial("2000", "2001")
    assert await task == 0
    assert " 30011 call status " in capsys.readouterr().out


def test_the_topic_range_comes_from_the_topic_table() -> None:
    # Classes for newer topics (30030, 30034-30038, ...) widen the defaults without an edit here.
    assert set(_events.ALL_TOPICS) == set(events.TOPICS)
    assert all(topic in _events.TOPIC_RANGE for topic in events.TOPICS)
    assert _events.TOPIC_RANGE.start == min(events.TOPICS)
    assert 30099 in _events.TOPIC_RANGE  # newer firmware's topics arrive as UnknownEvent
    assert _events.parse_topics("30038") == (30038,)


async def test_fake_pbx_port_in_use_is_one_line(
    pbx: FakePBX, capsys: pytest.CaptureFixture[str]
) -> None:
    assert await run("fake-pbx", "--port", str(pbx.port)) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith("error: ")
    assert "address already in use" in err


@posix_only
async def test_events_into_a_closed_pipe_ends_quietly(env: FakePBX) -> None:
    # `yeastar-async events --json | head -1`: head reads one line and leaves.
    read_end, write_end = os.pipe()
    proc = await _spawn("events", "--json", "--topics", "30009", stdout=write_end)
    os.close(write_end)
    try:
        await env.wait_for_subscription([30009], timeout=30)
        await env.set_presence("2000", "away")
        first = await asyncio.wait_for(asyncio.to_thread(os.read, read_end, 65536), 20)
        assert json.loads(first.decode().splitlines()[0])["type"] == 30009
        os.close(read_end)  # head exits
        read_end = -1
        await env.set_presence("2001", "away")  # this line meets the closed pipe
        _, err = await asyncio.wait_for(proc.communicate(), 20)
    finally:
        if read_end >= 0:
            os.close(read_end)
        await _reap(proc)
    assert proc.returncode == 0, err.decode()
    assert b"Traceback" not in err
    assert b"BrokenPipe" not in err
    assert env.live_tokens() == 0  # it closed the client (revoking its token) on the way out


@posix_only
async def test_doctor_into_a_closed_pipe_ends_quietly(env: FakePBX) -> None:
    read_end, write_end = os.pipe()
    os.close(read_end)  # `doctor | head -0`: nobody reads even the first line
    try:
        proc = await _spawn("doctor", stdout=write_end)
    finally:
        os.close(write_end)
    try:
        _, err = await asyncio.wait_for(proc.communicate(), 30)
    finally:
        await _reap(proc)
    assert proc.returncode == 0, err.decode()
    assert err == b""  # no "error: [Errno 32] Broken pipe", no "Exception ignored"


def _read_fd_until(fd: int, marker: bytes) -> bytes:
    seen = b""
    while marker not in seen:
        chunk = os.read(fd, 65536)
        if not chunk:
            raise AssertionError(f"EOF before {marker!r}: {seen!r}")
        seen += chunk
    return seen


@posix_only
async def test_demo_into_a_pipe_closed_midway_ends_quietly() -> None:
    # `demo | head -4`: the reader leaves while event handlers and the bot still print.
    read_end, write_end = os.pipe()
    proc = await _spawn("demo", stdout=write_end)
    os.close(write_end)
    try:
        seen = await asyncio.wait_for(
            asyncio.to_thread(_read_fd_until, read_end, b"connected to the event stream"), 30
        )
        assert b"FakePBX listening" in seen
        os.close(read_end)
        read_end = -1
        _, err = await asyncio.wait_for(proc.communicate(), 30)
    finally:
        if read_end >= 0:
            os.close(read_end)
        await _reap(proc)
    assert proc.returncode == 0, err.decode()
    assert err == b"", err.decode()  # no handler traceback, no "Exception ignored"


def test_a_closed_stdout_in_process_is_a_quiet_end(monkeypatch: pytest.MonkeyPatch) -> None:
    class Gone:
        encoding = "utf-8"

        def write(self, text: str) -> int:
            raise BrokenPipeError(32, "Broken pipe")

        def flush(self) -> None:
            raise BrokenPipeError(32, "Broken pipe")

    monkeypatch.setattr(sys, "stdout", Gone())
    with pytest.raises(_output.OutputClosed):
        _output.out("a line nobody reads")
    monkeypatch.setattr(sys, "stderr", Gone())
    _output.err("a status line nobody reads")  # stderr's reader gone: not the command's end


@posix_only
async def test_ctrl_c_reaches_the_child_when_the_test_run_ignores_it() -> None:
    # The parent (a background test run) ignores SIGINT; the helper restores it for the child.
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        proc = await _spawn("fake-pbx")
    finally:
        signal.signal(signal.SIGINT, previous)
    try:
        await _read_until(proc, "client secret")
        proc.send_signal(signal.SIGINT)
        _, err = await asyncio.wait_for(proc.communicate(), 20)
    finally:
        await _reap(proc)
    assert proc.returncode == 130, err.decode()
    assert err.decode().strip().endswith("stopped")


@posix_only
@pytest.mark.parametrize(
    ("stop", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 0)], ids=["int", "term"]
)
async def test_events_stopped_by_a_signal(env: FakePBX, stop: signal.Signals, code: int) -> None:
    proc = await _spawn("events", "--topics", "30009")
    try:
        await env.wait_for_subscription([30009], timeout=30)
        proc.send_signal(stop)
        _, err = await asyncio.wait_for(proc.communicate(), 20)
    finally:
        await _reap(proc)
    assert proc.returncode == code, err.decode()
    assert b"Traceback" not in err
    assert env.live_tokens() == 0


async def test_call_query_shows_the_channels_to_hang_up(
    env: FakePBX, capsys: pytest.CaptureFixture[str]
) -> None:
    assert await run("call", "query") == 0
    assert capsys.readouterr().out == "no calls\n"

    live = env.simulate_dial("2000", "2001", talk_time=None)
    other = env.simulate_dial("2002", "2003", talk_time=None)
    assert await run("call", "query") == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2
    mine = next(line for line in lines if live.call_id in line)
    assert mine.startswith(f"call {live.call_id}: ext 2000 ")
    assert f"channel {live.channel_id}" in mine
    assert [r.params for r in env.requests_for("call/query")][-3:] == [
        {"type": kind} for kind in ("inbound", "outbound", "internal")
    ]

    assert await run("call", "query", "--number", "2002") == 0
    only = capsys.readouterr().out.splitlines()
    assert len(only) == 1
    assert other.call_id in only[0]

    # The channel shown is the one `call hangup` takes.
    channel = mine.split("channel ")[1].split(",")[0]
    assert await run("call", "hangup", channel) == 0
    assert (await live.finished(timeout=5))["call_id"] == live.call_id
