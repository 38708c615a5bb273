"""TLS options against a real HTTPS server on 127.0.0.1 with a self-signed (trustme) certificate."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import ssl
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import trustme
from aiohttp import web

from yeastar_async import YeastarClient
from yeastar_async._http import Transport
from yeastar_async._models import ApiResponse
from yeastar_async._tls import TlsPolicy
from yeastar_async.errors import TransportError
from yeastar_async.events import EventStream, StreamOptions
from yeastar_async.events.models import Connected
from yeastar_async.testing import FakePBX


class Tokens:
    def current(self) -> str | None:
        return "t"

    async def token(self) -> str:
        return "t"

    async def expired(self, token: str) -> None:
        return None


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
async def https_server(ca: trustme.CA) -> AsyncIterator[tuple[str, bytes]]:
    async def info(request: web.Request) -> web.Response:
        return web.json_response({"errcode": 0, "errmsg": "SUCCESS"})

    app = web.Application()
    app.router.add_get("/openapi/v1.0/system/information", info)
    async with serve_tls(ca, app) as served:
        yield served


@contextlib.asynccontextmanager
async def serve_tls(ca: trustme.CA, app: web.Application) -> AsyncIterator[tuple[str, bytes]]:
    """``app`` over HTTPS on 127.0.0.1 with a certificate of ``ca``: (base URL, its SHA-256)."""
    cert = ca.issue_cert("127.0.0.1")
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(ctx)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=ctx)
    await site.start()
    port = runner.addresses[0][1]
    der = ssl.PEM_cert_to_DER_cert(cert.cert_chain_pems[0].bytes().decode())
    try:
        yield f"https://127.0.0.1:{port}", hashlib.sha256(der).digest()
    finally:
        await runner.cleanup()


async def call(base: str, ssl_option: Any) -> ApiResponse:
    t = Transport(base, ssl=ssl_option, retries=0)
    t.tokens = Tokens()
    try:
        return await t.request("GET", "system/information", response_type=ApiResponse)
    finally:
        await t.aclose()


async def test_default_verification_rejects_a_self_signed_pbx(
    https_server: tuple[str, bytes],
) -> None:
    base, _ = https_server
    with pytest.raises(TransportError) as info:
        await call(base, None)
    assert info.value.sent, "a TLS failure is not retried as 'never sent'"


async def test_ca_file_verifies_the_pbx(
    https_server: tuple[str, bytes], ca: trustme.CA, tmp_path: Path
) -> None:
    base, _ = https_server
    ca_file = tmp_path / "pbx-ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    assert (await call(base, str(ca_file))).errcode == 0
    assert (await call(base, ca_file)).errcode == 0


async def test_ssl_context_is_used_as_given(
    https_server: tuple[str, bytes], ca: trustme.CA
) -> None:
    base, _ = https_server
    ctx = ssl.create_default_context()
    ca.configure_trust(ctx)
    assert (await call(base, ctx)).errcode == 0


@pytest.mark.parametrize("style", ["hex", "colons", "prefixed"])
async def test_sha256_pin_accepts_the_pinned_certificate(
    https_server: tuple[str, bytes], style: str
) -> None:
    base, digest = https_server
    pin = {
        "hex": digest.hex(),
        "colons": digest.hex(":").upper(),
        "prefixed": "sha256:" + digest.hex(),
    }[style]
    assert (await call(base, pin)).errcode == 0


async def test_sha256_pin_rejects_another_certificate(https_server: tuple[str, bytes]) -> None:
    base, served = https_server
    with pytest.raises(TransportError, match="does not match the pin") as info:
        await call(base, "ab" * 32)
    # Both fingerprints are named: the one presented and the pin.
    assert served.hex(":") in str(info.value)
    assert bytes.fromhex("ab" * 32).hex(":") in str(info.value)


async def test_verification_off_works_and_warns(
    https_server: tuple[str, bytes], caplog: pytest.LogCaptureFixture
) -> None:
    base, _ = https_server
    with caplog.at_level(logging.WARNING):
        assert (await call(base, False)).errcode == 0
    assert "verification is OFF" in caplog.text


def test_websocket_context_checks_the_pin() -> None:
    class FakeSsl:
        def __init__(self, der: bytes) -> None:
            self.der = der

        def getpeercert(self, binary_form: bool = False) -> bytes:
            return self.der

    policy = TlsPolicy(hashlib.sha256(b"cert").hexdigest())
    ctx = policy.for_websocket()
    assert ctx.verify_mode == ssl.CERT_NONE
    policy.check_peer(FakeSsl(b"cert"))  # type: ignore[arg-type]
    with pytest.raises(TransportError, match="does not match"):
        policy.check_peer(FakeSsl(b"other"))  # type: ignore[arg-type]
    TlsPolicy(None).check_peer(None)  # no pin: nothing to check


@pytest.mark.parametrize("bad", ["/no/such/ca.pem", "abcd", "zz" * 32])
def test_bad_ssl_option_names_the_value(bad: str) -> None:
    with pytest.raises(ValueError, match="neither a SHA-256") as info:
        TlsPolicy(bad)
    assert repr(bad) in str(info.value)


def test_wrong_ssl_type_is_type_error() -> None:
    with pytest.raises(TypeError, match="not int"):
        TlsPolicy(3)  # type: ignore[arg-type]


class _Signal(logging.Handler):
    """Sets ``event`` when a record containing ``text`` is logged."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.text = text
        self.event = asyncio.Event()

    def emit(self, record: logging.LogRecord) -> None:
        if self.text in record.getMessage():
            self.event.set()


@pytest.fixture
async def wss_server(ca: trustme.CA) -> AsyncIterator[tuple[str, bytes, list[str]]]:
    """A TLS WebSocket "PBX": acks a subscribe; records every HTTP request it receives."""
    requests: list[str] = []

    async def subscribe(request: web.Request) -> web.WebSocketResponse:
        requests.append(request.path_qs)
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        async for _ in ws:
            await ws.send_str('{"errcode":0,"errmsg":"SUCCESS"}')
        return ws

    app = web.Application()
    app.router.add_get("/openapi/v1.0/subscribe", subscribe)
    async with serve_tls(ca, app) as (base, digest):
        yield base, digest, requests


async def test_a_websocket_with_a_wrong_pin_never_sends_the_token(
    wss_server: tuple[str, bytes, list[str]],
) -> None:
    base, _, requests = wss_server
    wrong = hashlib.sha256(b"another certificate").hexdigest()
    signal = _Signal("certificate check failed")
    logging.getLogger("yeastar_async").addHandler(signal)
    transport = Transport(base, ssl=wrong)
    stream = EventStream(Tokens(), transport, StreamOptions(reconnect_delay_min=5.0))
    stream.add_handler(30011, _ignore)
    listener = asyncio.create_task(stream.listen())
    try:
        async with asyncio.timeout(10):
            await signal.event.wait()
        assert requests == [], "the upgrade request (with the token) reached the impostor"
    finally:
        logging.getLogger("yeastar_async").removeHandler(signal)
        await stream.aclose()
        await listener
        await transport.aclose()


async def test_a_websocket_with_the_right_pin_connects(
    wss_server: tuple[str, bytes, list[str]],
) -> None:
    base, pin, requests = wss_server
    transport = Transport(base, ssl=pin.hex())
    stream = EventStream(Tokens(), transport)
    stream.add_handler(30011, _ignore)
    connected = asyncio.Event()

    async def on_connected(ev: Connected) -> None:
        connected.set()

    stream.add_handler(Connected, on_connected)
    listener = asyncio.create_task(stream.listen())
    try:
        async with asyncio.timeout(10):
            await connected.wait()
        assert requests == ["/openapi/v1.0/subscribe?access_token=t"]
    finally:
        await stream.aclose()
        await listener
        await transport.aclose()


async def _ignore(ev: Any) -> None:
    return None


@pytest.mark.parametrize(
    "spelling",
    [
        "sha256 Fingerprint={colons}",  # what openssl x509 -fingerprint -sha256 prints
        "SHA256 Fingerprint={colons}",
        "{spaced}",
        "sha256:{plain}",
    ],
)
def test_a_pin_pasted_as_openssl_prints_it_is_accepted(spelling: str) -> None:
    digest = hashlib.sha256(b"cert").digest()
    text = spelling.format(
        colons=digest.hex(":").upper(), spaced=digest.hex(" "), plain=digest.hex()
    )
    assert TlsPolicy(text).pin == digest


@pytest.mark.parametrize("verifying", [True, False], ids=["default-session", "unverified-session"])
async def test_a_borrowed_session_keeps_the_clients_tls_choice(
    https_server: tuple[str, bytes], verifying: bool
) -> None:
    """The pin holds with an injected session too, whatever that session would do itself."""
    base, pin = https_server
    connector = aiohttp.TCPConnector() if verifying else aiohttp.TCPConnector(ssl=False)
    async with aiohttp.ClientSession(connector=connector) as session:
        right = Transport(base, ssl=pin.hex(), retries=0, session=session)
        wrong = Transport(base, ssl="ab" * 32, retries=0, session=session)
        right.tokens = wrong.tokens = Tokens()
        answer = await right.request("GET", "system/information", response_type=ApiResponse)
        assert answer.errcode == 0
        with pytest.raises(TransportError, match="does not match the pin"):
            await wrong.request("GET", "system/information", response_type=ApiResponse)


async def test_a_borrowed_session_sends_the_clients_user_agent() -> None:
    async with FakePBX() as pbx, aiohttp.ClientSession() as session:
        client = YeastarClient(
            pbx.base_url, pbx.client_id, pbx.client_secret, session=session, user_agent="MyApp/1"
        )
        async with client:
            await client.request("GET", "system/information")
        assert {r.headers.get("User-Agent") for r in pbx.requests} == {"MyApp/1"}
