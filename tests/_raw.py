"""A raw aiohttp REST client for talking to :class:`FakePBX` over loopback in tests.

The fake's own tests use it instead of the SDK client, so that what they check is the fake and
not the SDK: one method call is one HTTP request, and nothing is retried, refreshed or decoded
beyond JSON.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any, Self

import aiohttp

from yeastar_async.testing import FakePBX

__all__ = ["API", "RawApi"]

API = "/openapi/v1.0/"
"""The path prefix of every OpenAPI endpoint."""


class RawApi:
    """One fake, one session and (after :meth:`login`) one access token.

    :meth:`call` is the low level: any method, answers as ``(status, body)``, the token only
    when given. :meth:`get`, :meth:`post` and :meth:`send` add the stored token and insist on
    HTTP 200, as an application talking to a healthy PBX would.
    """

    def __init__(self, pbx: FakePBX, session: aiohttp.ClientSession) -> None:
        self.pbx = pbx
        self.session = session
        self.token = ""
        self.last_headers: dict[str, str] = {}

    @classmethod
    @asynccontextmanager
    async def connect(cls, pbx: FakePBX, *, login: bool = False) -> AsyncIterator[Self]:
        """A client on its own session (closed on exit), logged in first if ``login``."""
        async with aiohttp.ClientSession() as session:
            api = cls(pbx, session)
            if login:
                await api.new_token()
            yield api

    async def call(
        self,
        method: str,
        endpoint: str,
        *,
        token: str | None = None,
        params: Mapping[str, str] | None = None,
        json: Any = None,
    ) -> tuple[int, Any]:
        """Send one request; the body is decoded JSON, or the text when it is not JSON."""
        query = dict(params or {})
        if token is not None:
            query["access_token"] = token
        async with self.session.request(
            method,
            self.pbx.base_url + API + endpoint,
            params=query,
            json=json,
            headers={"User-Agent": "OpenAPI"},
        ) as resp:
            self.last_headers = dict(resp.headers)
            if resp.content_type == "application/json":
                return resp.status, await resp.json()
            return resp.status, await resp.text()

    async def login(self, secret: str | None = None) -> Any:
        """POST ``get_token`` (with ``secret`` instead of the right one if given).

        Returns the answer; a successful one's access token is kept for later calls.
        """
        status, body = await self.call(
            "POST",
            "get_token",
            json={"username": self.pbx.client_id, "password": secret or self.pbx.client_secret},
        )
        assert status == 200
        if isinstance(body, dict) and body.get("errcode") == 0:
            self.token = str(body["access_token"])
        return body

    async def new_token(self) -> str:
        """Log in, insist that it worked, and return the new access token."""
        body = await self.login()
        assert body["errcode"] == 0, body
        return self.token

    async def send(self, method: str, endpoint: str, params: Mapping[str, Any]) -> dict[str, Any]:
        """Call ``endpoint`` with the stored token the way the PBX wants its parameters.

        GET parameters go in the query (as strings), any other method's in a JSON body.
        """
        if method == "GET":
            query = {k: str(v) for k, v in params.items()}
            status, body = await self.call(method, endpoint, token=self.token, params=query)
        else:
            status, body = await self.call(method, endpoint, token=self.token, json=dict(params))
        assert status == 200, (status, body)
        assert isinstance(body, dict), body
        return body

    async def get(self, endpoint: str, **params: Any) -> dict[str, Any]:
        """GET ``endpoint`` with ``params`` in the query; see :meth:`send`."""
        return await self.send("GET", endpoint, params)

    async def post(self, endpoint: str, **params: Any) -> dict[str, Any]:
        """POST ``endpoint`` with ``params`` as the JSON body; see :meth:`send`."""
        return await self.send("POST", endpoint, params)
