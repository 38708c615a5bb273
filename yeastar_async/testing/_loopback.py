"""What every fake server of :mod:`yeastar_async.testing` shares, whichever vendor it plays.

``async with`` starts and stops it, :attr:`~LoopbackFake.base_url` says where it listens, and
:meth:`~LoopbackFake.wait_until` lets a test await a change of its state (a request received,
a connection closed) instead of sleeping.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Callable
from types import TracebackType
from typing import Self

from aiohttp import web

__all__ = ["LoopbackFake"]


class LoopbackFake:
    """The lifecycle, address and state-change wait of a fake server on 127.0.0.1.

    A subclass sets ``host`` and ``_port``, defines :meth:`start` and :meth:`close`, calls
    ``super().__init__()``, and calls :meth:`_notify` whenever its state changes.
    """

    host: str
    _port: int
    #: The running server, ``None`` while stopped.
    _runner: web.AppRunner | None
    #: ``http`` or, for a fake serving TLS, ``https``.
    _scheme: str = "http"

    def __init__(self) -> None:
        self._changed = asyncio.Event()

    def __repr__(self) -> str:
        state = "running" if self._runner is not None else "stopped"
        where = self.base_url if self._runner is not None else repr(self.host)
        return f"{type(self).__name__}({where}, {state})"

    async def start(self) -> Self:
        """Start listening (idempotent); returns the fake."""
        raise NotImplementedError

    async def close(self) -> None:
        """Stop listening (idempotent)."""
        raise NotImplementedError

    async def __aenter__(self) -> Self:
        return await self.start()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    @property
    def port(self) -> int:
        """The TCP port (known once started)."""
        return self._port

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT`` (``https`` when the fake serves TLS): what a client of it
        takes as the server's address."""
        return f"{self._scheme}://{self.host}:{self._port}"

    async def _listen(
        self,
        app: web.Application,
        *,
        ssl_context: ssl.SSLContext | None = None,
        prepare: Callable[[web.AppRunner], None] | None = None,
    ) -> web.AppRunner:
        """Serve ``app`` on ``host:_port`` (``_port`` 0: a free one, then set to it).

        ``prepare`` sees the runner once set up, before the socket opens.
        """
        # access_log=None: aiohttp's access log would print request lines, tokens included.
        # A short shutdown: a test's close() must not wait long for a delayed answer.
        runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=1.0)
        await runner.setup()
        if prepare is not None:
            prepare(runner)
        await web.TCPSite(runner, self.host, self._port, ssl_context=ssl_context).start()
        self._port = int(runner.addresses[0][1])
        return runner

    def _notify(self) -> None:
        event, self._changed = self._changed, asyncio.Event()
        event.set()

    async def wait_until(
        self, predicate: Callable[[], bool], timeout: float = 5.0, what: str = "condition"
    ) -> None:
        """Wait until ``predicate()`` is true; it is re-checked whenever the fake's state changes.

        Raises:
            TimeoutError: naming ``what`` when ``timeout`` seconds pass first.
        """
        try:
            async with asyncio.timeout(timeout):
                while not predicate():
                    await self._changed.wait()
        except TimeoutError:
            raise TimeoutError(f"{type(self).__name__}: no {what} within {timeout} s") from None
