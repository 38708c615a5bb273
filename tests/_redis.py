"""A real ``redis-server`` for the relay's tests: a free 127.0.0.1 port, a temporary directory.

Tests that use :func:`redis_server` skip, saying why, only when no ``redis-server`` binary is
installed (``.ci/run`` installs one). :meth:`RedisServer.restart` stops the server and starts
it again on the same port (without persistence: empty).
"""

from __future__ import annotations

import asyncio
import inspect
import shutil
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path

import pytest
import pytest_asyncio
import redis.asyncio as aioredis

BINARY = shutil.which("redis-server")
#: How long a server may take to start or stop.
START_TIMEOUT = 10.0


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class RedisServer:
    """One ``redis-server`` process (no persistence unless ``persist``)."""

    def __init__(self, directory: Path, *, persist: bool = False) -> None:
        self.directory = directory
        self.port = _free_port()
        self.persist = persist
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """``redis://127.0.0.1:<port>/0``."""
        return f"redis://127.0.0.1:{self.port}/0"

    def client(self) -> aioredis.Redis:
        """A new asyncio client of this server (close it with ``aclose()``)."""
        return aioredis.Redis.from_url(self.url)

    def start(self) -> None:
        """Start the server and wait until it answers PING."""
        assert BINARY is not None
        args = [
            BINARY,
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--dir",
            str(self.directory),
            "--protected-mode",
            "no",
            "--loglevel",
            "warning",
        ]
        if not self.persist:
            args += ["--save", "", "--appendonly", "no"]
        log = open(self.directory / "redis.log", "ab")  # noqa: SIM115 - the child keeps it
        self.process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as sock:
                    sock.sendall(b"PING\r\n")
                    if sock.recv(64).startswith(b"+PONG"):
                        return
            except OSError:
                pass
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(
                    f"redis-server did not start on port {self.port}: "
                    + (self.directory / "redis.log").read_text(errors="replace")[-500:]
                )
            time.sleep(0.01)  # a child process starting: nothing to await

    def stop(self) -> None:
        """Kill the server (SIGKILL: what a crash looks like) and reap it."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(START_TIMEOUT)
        self.process = None

    def restart(self) -> None:
        """Stop, then start again on the same port."""
        self.stop()
        self.start()


def require_server() -> None:
    """Skip the calling test when no ``redis-server`` binary is installed."""
    if BINARY is None:
        pytest.skip(
            "no redis-server binary on PATH: install one (apt-get install redis-server) to run "
            "the Redis relay tests"
        )


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    """A running ``redis-server`` on a free port, killed after the test."""
    require_server()
    server = RedisServer(tmp_path)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest_asyncio.fixture
async def redis_client(redis_server: RedisServer) -> AsyncIterator[aioredis.Redis]:
    """An asyncio client of :func:`redis_server`."""
    client = redis_server.client()
    try:
        yield client
    finally:
        await client.aclose()


async def until(
    check: Callable[[], Awaitable[bool] | bool], what: str, timeout: float = 15.0
) -> None:
    """Poll ``check`` (sync or async) until it is true, at most ``timeout`` seconds.

    Only for state kept in Redis or in another process (a lease expiring, a child's writes):
    nothing in this process could be awaited instead.
    """
    try:
        async with asyncio.timeout(timeout):
            while True:
                answer = check()
                if await answer if inspect.isawaitable(answer) else answer:
                    return
                await asyncio.sleep(0.01)
    except TimeoutError:
        raise AssertionError(f"not within {timeout}s: {what}") from None
