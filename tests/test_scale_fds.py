"""Running out of file descriptors: said as what it is, once per process, and survived.

Real exhaustion: the test fills the process's descriptor table with ``/dev/null`` handles
(under a lowered soft limit, restored after), so the SDK's next socket gets ``EMFILE``. The
websockets modules the stream imports at its first connection are imported here first, as in a
process whose other streams are up (an import needs a descriptor too).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import errno
import logging
import os
import resource
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import trustme
import websockets.asyncio.client
import websockets.exceptions
from aiohttp import web

from tests.test_tls import Tokens, serve_tls
from yeastar_async import YeastarClient, _fds, _tls, events
from yeastar_async._http import Transport
from yeastar_async._models import ApiResponse
from yeastar_async.cli._parser import _run as cli_run
from yeastar_async.errors import TransportError
from yeastar_async.events import decode
from yeastar_async.testing import FakePBX
from yeastar_async.webhooks import WebhookReceiver

#: Descriptors above those already open: room enough for the test's own needs, filled later.
_HEADROOM = 64
#: Imported on purpose (see the module docstring).
_PRELOADED = (websockets.asyncio.client, websockets.exceptions)


@contextlib.contextmanager
def descriptors_exhausted() -> Iterator[None]:
    """Every descriptor of the process taken until the block ends (limits restored)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    in_use = len(os.listdir("/proc/self/fd"))
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(in_use + _HEADROOM, hard), hard))
    held: list[int] = []
    try:
        with contextlib.suppress(OSError):
            while True:
                held.append(os.open(os.devnull, os.O_RDONLY))
        yield
    finally:
        for fd in held:
            os.close(fd)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


@pytest.fixture(autouse=True)
def fresh_report(monkeypatch: pytest.MonkeyPatch) -> None:
    """The once-per-process report not yet made in this test."""
    monkeypatch.setattr(_fds, "_reported", False)


def _fd_records(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if "out of file descriptors" in r.getMessage()]


class _Counter(logging.Handler):
    """Sets ``reached`` once ``n`` records about descriptor exhaustion were logged."""

    def __init__(self, n: int) -> None:
        super().__init__(logging.DEBUG)
        self.n = n
        self.reached = asyncio.Event()

    def emit(self, record: logging.LogRecord) -> None:
        if "out of file descriptors" in record.getMessage():
            self.n -= 1
            if self.n <= 0:
                self.reached.set()


def client_of(pbx: FakePBX) -> YeastarClient:
    # No guard state file: the socket is then the first descriptor a login needs.
    return YeastarClient(
        pbx.base_url,
        pbx.client_id,
        pbx.client_secret,
        login_guard_state=None,
        reconnect_delay_min=0.01,
        reconnect_delay_max=0.02,
        retries=0,
    )


async def test_streams_out_of_fds_report_it_once_with_the_fix_and_recover(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="yeastar_async")
    async with FakePBX() as pbx:
        clients = [client_of(pbx) for _ in range(3)]
        connected = [asyncio.Event() for _ in clients]
        for client, flag in zip(clients, connected, strict=True):

            async def up(_: events.Connected, flag: asyncio.Event = flag) -> None:
                flag.set()

            client.add_handler(events.Connected, up)
            client.add_handler(30011, _ignore)
            await client.login()  # the token in hand: the WebSocket is what finds no fd
        tasks: list[asyncio.Task[None]] = []
        counter = _Counter(6)  # each stream failed twice at least
        logging.getLogger("yeastar_async").addHandler(counter)
        try:
            with descriptors_exhausted():
                tasks = [asyncio.create_task(c.listen()) for c in clients]
                async with asyncio.timeout(10):
                    await counter.reached.wait()
            records = _fd_records(caplog)
            errors = [r for r in records if r.levelno >= logging.WARNING]
            assert len(errors) == 1, [r.getMessage() for r in errors]
            assert errors[0].levelno == logging.ERROR
            assert "ulimit -n" in errors[0].getMessage()
            assert "soft limit" in errors[0].getMessage()
            # No generic "connect failed" warning per retry either.
            assert not [
                r
                for r in caplog.records
                if r.levelno == logging.WARNING and "connect failed" in r.getMessage()
            ]
            # Descriptors free again: every stream connects without help.
            async with asyncio.timeout(10):
                await asyncio.gather(*(flag.wait() for flag in connected))
        finally:
            logging.getLogger("yeastar_async").removeHandler(counter)
            for client in clients:
                await client.aclose()
            await asyncio.gather(*tasks, return_exceptions=True)


async def test_a_request_out_of_fds_raises_what_it_is() -> None:
    async with FakePBX() as pbx, client_of(pbx) as client:
        with descriptors_exhausted(), pytest.raises(TransportError) as caught:
            await client.login()
        assert isinstance(caught.value, _fds.OutOfFileDescriptorsError)
        assert "out of file descriptors" in str(caught.value)
        assert "ulimit -n" in str(caught.value)
        assert caught.value.__cause__ is None
        assert caught.value.__context__ is None
        await client.login()  # fine once descriptors are free


async def _ignore(_: object) -> None:
    pass


async def test_out_of_fds_at_the_guard_state_file_is_no_refusal() -> None:
    # The default guard state file needs a descriptor before the login's socket does. Finding
    # none is the process's condition, not the file's: a transient OutOfFileDescriptorsError
    # (nothing sent), not a LockoutGuardError that would end an event stream for good.
    async with FakePBX() as pbx:
        client = YeastarClient(pbx.base_url, pbx.client_id, pbx.client_secret, retries=0)
        # The loop's worker threads (address lookups) started first, as in a busy process.
        await asyncio.get_running_loop().run_in_executor(None, lambda: None)
        try:
            with descriptors_exhausted(), pytest.raises(_fds.OutOfFileDescriptorsError) as caught:
                await client.login()
            assert "ulimit -n" in str(caught.value)
            assert "login-guard" in str(caught.value)
            assert pbx.count("get_token") == 0
            await client.login()  # descriptors free again: the login goes through
            assert pbx.count("get_token") == 1
        finally:
            await client.aclose()


async def test_the_system_trust_store_read_out_of_fds_is_not_kept(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The default context is built at the first https call and shared by the process: built
    # while out of descriptors, OpenSSL would skip the CA file and every later verification
    # would fail. The system trust store here is a CA file of our own (no CA directory).
    ca = trustme.CA()
    bundle = tmp_path / "system-ca.pem"
    ca.cert_pem.write_to_path(str(bundle))
    monkeypatch.setenv("SSL_CERT_FILE", str(bundle))
    monkeypatch.setenv("SSL_CERT_DIR", str(tmp_path / "no-such-dir"))
    monkeypatch.setattr(_tls, "_shared_contexts", {})

    async def info(_: web.Request) -> web.Response:
        return web.json_response({"errcode": 0, "errmsg": "SUCCESS"})

    app = web.Application()
    app.router.add_get("/openapi/v1.0/system/information", info)
    async with serve_tls(ca, app) as (base, _):
        transport = Transport(base, retries=0)
        transport.tokens = Tokens()
        try:
            with descriptors_exhausted(), pytest.raises(_fds.OutOfFileDescriptorsError) as caught:
                await transport.request("GET", "system/information", response_type=ApiResponse)
            assert "trust store" in str(caught.value)
            assert "ulimit -n" in str(caught.value)
            # Descriptors free again: the store is read whole and the PBX verified.
            answer = await transport.request("GET", "system/information", response_type=ApiResponse)
            assert answer.errcode == 0
        finally:
            await transport.aclose()
    assert _tls._shared_contexts[("default",)].cert_store_stats()["x509_ca"] == 1


def test_a_module_out_of_fds_at_first_use_is_dropped_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A package whose second module finds no descriptor: the first one, loaded in the same
    # attempt, goes too (it may have picked a fallback), and the retry loads both.
    package = tmp_path / "fdpkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "first.py").write_text("")
    flag = tmp_path / "out"
    flag.write_text("")
    (package / "second.py").write_text(
        "import errno, os, pathlib\n"
        "import fdpkg.first\n"
        f"if pathlib.Path({str(flag)!r}).exists():\n"
        "    raise OSError(errno.EMFILE, os.strerror(errno.EMFILE))\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    for name in ("fdpkg", "fdpkg.first", "fdpkg.second"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    with pytest.raises(_fds.OutOfFileDescriptorsError, match=r"cannot load fdpkg\.second"):
        _fds.imported("fdpkg.second")
    assert not {"fdpkg", "fdpkg.first", "fdpkg.second"} & set(sys.modules)
    flag.unlink()
    assert _fds.imported("fdpkg.second") is sys.modules["fdpkg.second"]
    assert "fdpkg.first" in sys.modules
    for name in ("fdpkg", "fdpkg.first", "fdpkg.second"):
        monkeypatch.delitem(sys.modules, name, raising=False)


def test_an_extension_module_out_of_fds_is_recognised() -> None:
    # The dynamic loader's failure is an ImportError without an errno, only its text.
    exc = ImportError(
        "/x/_m.cpython-311-x86_64-linux-gnu.so: cannot open shared object file: "
        + os.strerror(errno.EMFILE)
    )
    assert _fds.out_of_fds(exc)
    assert not _fds.out_of_fds(ImportError("No module named 'nothing'"))


async def test_the_webhook_receiver_loads_the_decoders_helpers_when_it_starts(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A delivery with a fractional `sn` needs a helper module the decoder imports on first
    # use: loaded when the receiver starts, not at the delivery (a 500 if out of fds then).
    monkeypatch.delitem(sys.modules, "yeastar_async.events._numbers")
    receiver = WebhookReceiver(secret="s" * 32)
    try:
        with descriptors_exhausted(), pytest.raises(_fds.OutOfFileDescriptorsError):
            await receiver.start()
        await receiver.start()  # descriptors free again
        with descriptors_exhausted():
            event = decode('{"type": 30011, "sn": 1.50, "msg": {}}')
        assert event.sn == "1.50"
    finally:
        await receiver.aclose()


@pytest.mark.parametrize(
    "failure",
    [
        OSError(errno.EMFILE, os.strerror(errno.EMFILE)),
        ImportError("/x/_m.so: cannot open shared object file: " + os.strerror(errno.EMFILE)),
    ],
)
async def test_the_cli_says_out_of_fds_with_the_fix(
    failure: Exception, capsys: pytest.CaptureFixture[str]
) -> None:
    # A command that ran out (at a module it loads on first use, a file, a socket): the
    # condition and the fix, not "[Errno 24]" or a loader's traceback.
    async def command(_: argparse.Namespace) -> int:
        raise failure

    assert await cli_run(argparse.Namespace(func=command, verbose=0)) == 1
    shown = capsys.readouterr().err
    assert "out of file descriptors" in shown
    assert "ulimit -n" in shown
