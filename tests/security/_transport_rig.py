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
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=context)
    await site.start()
    scheme = "https" if context is not None else "http"
    try:
        yield f"{scheme}://127.0.0.1:{runner.addresses[0][1]}"
    finally:
        await runner.cleanup()
