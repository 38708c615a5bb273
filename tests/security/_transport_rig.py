"""Shared pieces of the transport red-team tests: local servers and a time bound per test."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

import trustme
from aiohttp import web

from tests._secrets import SecretWatch
from yeastar_async import YeastarClient

F = TypeVar("F", bound=Callable[..., Awaitable[Any]])


def bounded(seconds: float = 10.0) -> Callable[[F], F]:
    """Fail an async test that runs longer than ``seconds`` (no hostile server hangs CI)."""

    def wrap(test: F) -> F:
        @functools.wraps(test)
        async def run(*args: Any, **kwargs: Any) -> Any:
            async with asyncio.timeout(seconds):
                return await test(*args, **kwargs)

        return run  # type: ignore[return-value]

    return wrap


@contextlib.asynccontextmanager
async def serve(app: web.Application, *, ca: trustme.CA | None = None) -> AsyncIterator[str]:
    """``app`` on 127.0.0.1 (HTTPS with a certificate of ``ca`` if given): its base URL."""
    context = None
    if ca is not None:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ca.issue_cert("127.0.0.1").configure_cert(context)
    # No access log (the server's log is not under test); a short shutdown, so that a handler
    # still hanging when a test fails cannot hold the test up for aiohttp's default minute.
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=context)
    await site.start()
    scheme = "https" if context is not None else "http"
    try:
        yield f"{scheme}://127.0.0.1:{runner.addresses[0][1]}"
    finally:
        await runner.cleanup()


#: The client secret every hostile server expects; tokens are issued as ``TOKEN_PREFIX`` + n.
CLIENT_ID = "redteam"
SECRET = "Cl13nt-S3cret-RedTeam-7788"
TOKEN_PREFIX = "tok3n-"

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class HostilePBX:
    """A small PBX stand-in on 127.0.0.1 whose every route a test may replace.

    ``get_token`` / ``refresh_token`` issue ``tok3n-…`` tokens, ``del_token`` records the token
    revoked, other ``/openapi/v1.0/...`` routes answer success unless ``routes`` names a handler.
    ``seen`` records ``(path, access_token)`` for every request.
    """

    def __init__(self, watch: SecretWatch | None = None) -> None:
        self.watch = watch
        self.routes: dict[str, Handler] = {}
        self.seen: list[tuple[str, str | None]] = []
        self.issued: list[str] = []
        self.revoked: list[str] = []
        self.arrived = asyncio.Event()
        self.base = ""

    def issue(self) -> str:
        token = f"{TOKEN_PREFIX}{len(self.issued):04d}-a9f3c2e1b7"
        self.issued.append(token)
        if self.watch is not None:  # no log record may show it either
            self.watch.add(token, "a token issued by a hostile server")
        return token

    @property
    def token(self) -> str:
        """The newest token issued."""
        return self.issued[-1]

    def hits(self, path: str) -> int:
        return sum(1 for seen, _ in self.seen if seen.endswith(path))

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        path = request.path.removeprefix("/openapi/v1.0/")
        self.seen.append((path, request.query.get("access_token")))
        self.arrived.set()
        custom = self.routes.get(path)
        if custom is not None:
            return await custom(request)
        if path in ("get_token", "refresh_token"):
            return self.grant()
        if path == "del_token":
            self.revoked.append(request.query.get("access_token", ""))
        return web.json_response({"errcode": 0, "errmsg": "SUCCESS"})

    def grant(self) -> web.Response:
        """A ``get_token`` / ``refresh_token`` success with a new token pair."""
        access, refresh = self.issue(), self.issue()
        return web.json_response(
            {
                "errcode": 0,
                "errmsg": "SUCCESS",
                "access_token": access,
                "access_token_expire_time": 1800,
                "refresh_token": refresh,
                "refresh_token_expire_time": 86400,
            }
        )

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        return app


class Recorder:
    """A server that must never be reached: it records every request it gets."""

    def __init__(self) -> None:
        self.hits: list[str] = []
        self.base = ""

    async def _handle(self, request: web.Request) -> web.Response:
        self.hits.append(str(request.rel_url))
        return web.json_response({"errcode": 0, "errmsg": "SUCCESS", "data": "not the PBX"})

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        return app


@contextlib.asynccontextmanager
async def hostile(
    watch: SecretWatch | None = None, *, ca: trustme.CA | None = None
) -> AsyncIterator[HostilePBX]:
    """A :class:`HostilePBX` served on 127.0.0.1 (``pbx.base`` is its URL)."""
    pbx = HostilePBX(watch)
    async with serve(pbx.app(), ca=ca) as base:
        pbx.base = base
        yield pbx


@contextlib.asynccontextmanager
async def recorder(*, ca: trustme.CA | None = None) -> AsyncIterator[Recorder]:
    """A :class:`Recorder` served on 127.0.0.1 (``rec.base`` is its URL)."""
    rec = Recorder()
    async with serve(rec.app(), ca=ca) as base:
        rec.base = base
        yield rec


def client_for(pbx: HostilePBX, **options: Any) -> YeastarClient:
    """A client of ``pbx`` (no retries unless asked, so that a test sees the first answer)."""
    options.setdefault("retries", 0)
    return YeastarClient(pbx.base, CLIENT_ID, SECRET, **options)


def secrets_of(pbx: HostilePBX) -> list[str]:
    """Everything that must never show: the client secret and every token issued."""
    return [SECRET, *pbx.issued]
