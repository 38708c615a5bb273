"""``FakeCec``: an ``aiohttp.web`` server on 127.0.0.1 that behaves like the Huawei Cloud CEC's
token and called-route API.

Use it in tests instead of a real CEC::

    async with FakeCec() as fake:
        async with CecClient(fake.base_url, fake.app_key, fake.app_secret) as cec:
            ...

It answers ``tokenByAkSk`` (``X-Token-Expire`` honoured, ``CreateTime`` from an injectable
clock, wrong credentials answered 403) and the four ``calledRoute`` operations from an in-memory
route store (``returnCode`` ``"0"`` or a failure with its ``description``; expired or unknown
tokens answered 401). Switches make it fail on purpose; a request log lets a test check what a
client sent.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Self

from aiohttp import web

from ._log import RequestRecord
from ._loopback import LoopbackFake

__all__ = ["CecHandler", "FakeCec", "FakeCecRoute", "FakeCecStats"]

TOKEN_PATH = "/apigovernance/api/oauth/tokenByAkSk"
ROUTE_PREFIX = "/apiaccess/rest/cc-management/v1/"
TOKEN_ENDPOINT = "tokenByAkSk"
_MEDIA_TYPES = (2, 5, 18, 19, 53)
_DEVICE_TYPES = (1, 3)

#: A custom answer: takes the request record, returns the JSON body sent with HTTP 200.
CecHandler = Callable[[RequestRecord], "dict[str, Any] | Awaitable[dict[str, Any]]"]


@dataclass
class FakeCecRoute:
    """One called route of the fake's store (attributes named as on the wire)."""

    id: str
    dnid: int
    accessCode: str
    extCode: str | None = None
    devicetype: int = 1
    deviceId: int = 1
    mediatypeId: int = 5
    editable: int | None = 0

    @property
    def deviceDesc(self) -> str:
        """What the CEC says the device is: ``"Skill queue 7"`` / ``"IVR 3"``."""
        return f"{'Skill queue' if self.devicetype == 1 else 'IVR'} {self.deviceId}"

    def wire(self) -> dict[str, Any]:
        """The route as ``queryCalledRoute`` lists it."""
        return {
            "id": self.id,
            "dnid": self.dnid,
            "accessCode": self.accessCode,
            "extCode": self.extCode,
            "devicetype": self.devicetype,
            "deviceId": self.deviceId,
            "deviceDesc": self.deviceDesc,
            "mediatypeId": self.mediatypeId,
            "editable": self.editable,
        }


@dataclass
class _Fault:
    remaining: int
    endpoint: str | None
    status: int = 200
    body: dict[str, Any] | None = None
    delay: float | None = None

    def matches(self, endpoint: str) -> bool:
        return self.endpoint is None or self.endpoint.strip("/") == endpoint


@dataclass
class _Token:
    value: str
    expires_at: float


@dataclass
class FakeCecStats:
    """Counters of the fake.

    Attributes:
        tokens_issued: ``tokenByAkSk`` calls that issued a token.
        token_refusals: ``tokenByAkSk`` calls refused for their credentials.
        auth_rejections: business calls answered 401 (no, unknown or expired token, or
            :meth:`FakeCec.reject_tokens`).
        by_endpoint: requests answered, per endpoint.
    """

    tokens_issued: int = 0
    token_refusals: int = 0
    auth_rejections: int = 0
    by_endpoint: dict[str, int] = field(default_factory=dict)


def _failure(description: str, code: str = "1") -> dict[str, Any]:
    return {"returnCode": code, "description": description}


class FakeCec(LoopbackFake):
    """A fake Huawei Cloud CEC for tests, served over real sockets on 127.0.0.1.

    Args:
        app_key: the app key it accepts.
        app_secret: the app secret it accepts; random by default.
        clock: the wall clock in unix seconds (``time.time``): ``CreateTime`` and token expiry
            read it, so a test can age tokens without waiting.
        max_token_ttl: the largest ``X-Token-Expire`` accepted (CEC: 3600); more answers 400.
        default_token_ttl: the lifetime given when ``X-Token-Expire`` is absent.
        host: the address to listen on; keep the loopback default.
        port: the port; 0 picks a free one.

    Attributes:
        requests: every request received, oldest first (:class:`RequestRecord`; the endpoint is
            ``"tokenByAkSk"`` or ``"calledRoute/modifyCalledRoute"`` ...).
        routes: the route store, by route id.
        stats: counters (:class:`FakeCecStats`).
    """

    def __init__(
        self,
        *,
        app_key: str = "fake-app-key",
        app_secret: str | None = None,
        clock: Callable[[], float] = time.time,
        max_token_ttl: int = 3600,
        default_token_ttl: int = 3600,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        super().__init__()
        self.app_key = app_key
        self.app_secret = app_secret or secrets.token_hex(16)
        self.host = host
        self.requests: list[RequestRecord] = []
        self.routes: dict[str, FakeCecRoute] = {}
        self.stats = FakeCecStats()
        self._clock = clock
        self._max_ttl = max_token_ttl
        self._default_ttl = default_token_ttl
        self._port = port
        self._tokens: dict[str, _Token] = {}
        self._issued: list[str] = []
        self._faults: list[_Fault] = []
        self._overrides: dict[str, dict[str, Any] | CecHandler] = {}
        self._reject_remaining = 0
        self._next_id = 1125397061153369000
        self._next_dnid = 1001
        self._runner: web.AppRunner | None = None
        self._closing = asyncio.Event()

    # -- lifecycle -----------------------------------------------------------------------------
    async def start(self) -> Self:
        """Start listening (idempotent); returns the fake."""
        if self._runner is not None:
            return self
        self._closing.clear()
        app = web.Application()
        app.router.add_route("*", "/{path:.*}", self._handle)
        self._runner = await self._listen(app)
        return self

    async def close(self) -> None:
        """Stop listening (idempotent); delayed requests end at once."""
        if self._runner is None:
            return
        runner, self._runner = self._runner, None
        self._closing.set()
        await runner.cleanup()

    # -- request log ---------------------------------------------------------------------------
    def requests_for(self, endpoint: str) -> list[RequestRecord]:
        """The logged requests to ``endpoint`` (``"tokenByAkSk"``,
        ``"calledRoute/queryCalledRoute"`` ...)."""
        endpoint = endpoint.strip("/")
        return [r for r in self.requests if r.endpoint == endpoint]

    def count(self, endpoint: str) -> int:
        """How many requests to ``endpoint`` were received."""
        return len(self.requests_for(endpoint))

    async def wait_for_request(
        self, endpoint: str, count: int = 1, timeout: float = 5.0
    ) -> RequestRecord:
        """Wait until ``endpoint`` was requested ``count`` times in all; returns the last one.

        Raises:
            TimeoutError: when ``timeout`` seconds pass first.
        """
        await self.wait_until(
            lambda: self.count(endpoint) >= count, timeout, f"{count} request(s) to {endpoint}"
        )
        return self.requests_for(endpoint)[-1]

    # -- tokens --------------------------------------------------------------------------------
    def issued_tokens(self) -> list[str]:
        """Every token ever issued, dead or alive, oldest first."""
        return list(self._issued)

    def live_tokens(self) -> list[str]:
        """The tokens alive now (by the fake's clock)."""
        now = self._clock()
        return [t.value for t in self._tokens.values() if t.expires_at > now]

    def expire_tokens(self) -> int:
        """Kill every live token; returns how many died."""
        alive = len(self.live_tokens())
        self._tokens.clear()
        return alive

    def reject_tokens(self, n: int = 1) -> None:
        """Answer the next ``n`` business calls 401 whatever their token (revoked credentials,
        a lapsed subscription); ``tokenByAkSk`` keeps issuing tokens."""
        self._reject_remaining = n

    # -- routes --------------------------------------------------------------------------------
    def add_route(
        self,
        access_code: str,
        *,
        device_type: int = 1,
        device_id: int = 1,
        ext_code: str | None = None,
        media_type_id: int = 5,
        editable: int | None = 0,
    ) -> FakeCecRoute:
        """Put a route in the store directly (no request); returns it."""
        route = FakeCecRoute(
            id=str(self._next_id),
            dnid=self._next_dnid,
            accessCode=access_code,
            extCode=ext_code,
            devicetype=device_type,
            deviceId=device_id,
            mediatypeId=media_type_id,
            editable=editable,
        )
        self._next_id += 7
        self._next_dnid += 1
        self.routes[route.id] = route
        return route

    # -- faults --------------------------------------------------------------------------------
    def fail_next(self, n: int = 1, status: int = 500, endpoint: str | None = None) -> None:
        """Answer the next ``n`` matching requests with HTTP ``status`` and a short body.

        ``endpoint`` (``"tokenByAkSk"``, ``"calledRoute/createCalledRoute"`` ...) limits the
        fault to it; None matches every request.
        """
        self._faults.append(_Fault(remaining=n, endpoint=endpoint, status=status))

    def fail_next_return_code(
        self,
        n: int = 1,
        return_code: str = "1",
        description: str = "business failure (FakeCec fault)",
        endpoint: str | None = None,
    ) -> None:
        """Answer the next ``n`` matching requests with HTTP 200 and this ``returnCode``,
        without processing them (after the token check)."""
        body = _failure(description, return_code)
        self._faults.append(_Fault(remaining=n, endpoint=endpoint, body=body))

    def delay_next(self, n: int, seconds: float, endpoint: str | None = None) -> None:
        """Hold the next ``n`` matching requests for ``seconds``, then answer them normally."""
        self._faults.append(_Fault(remaining=n, endpoint=endpoint, delay=seconds))

    def set_response(self, endpoint: str, body: dict[str, Any] | CecHandler | None) -> None:
        """Answer ``endpoint`` with ``body`` (a dict, or a function of the request record,
        maybe async) from now on, after the token check (``"tokenByAkSk"`` itself needs no
        token); None removes the override."""
        endpoint = endpoint.strip("/")
        if body is None:
            self._overrides.pop(endpoint, None)
        else:
            self._overrides[endpoint] = body

    def clear_faults(self) -> None:
        """Forget pending faults, overrides and :meth:`reject_tokens`."""
        self._faults.clear()
        self._overrides.clear()
        self._reject_remaining = 0

    # -- serving -------------------------------------------------------------------------------
    async def _handle(self, request: web.Request) -> web.StreamResponse:
        path = request.path
        if path == TOKEN_PATH:
            endpoint = TOKEN_ENDPOINT
        elif path.startswith(ROUTE_PREFIX):
            endpoint = path[len(ROUTE_PREFIX) :]
        else:
            endpoint = path
        record = await self._record(request, endpoint)
        try:
            response = await self._dispatch(record)
            record.status = response.status
            self.stats.by_endpoint[endpoint] = self.stats.by_endpoint.get(endpoint, 0) + 1
            return response
        finally:
            self._notify()

    async def _record(self, request: web.Request, endpoint: str) -> RequestRecord:
        body = await request.read()
        parsed: Any = None
        if body:
            with contextlib.suppress(ValueError):
                parsed = json.loads(body)
        record = RequestRecord(
            method=request.method,
            path=request.path,
            endpoint=endpoint,
            query={k: request.query.getone(k) for k in request.query},
            json=parsed,
            body=body,
            headers=dict(request.headers.items()),
            remote=request.remote or "",
        )
        self.requests.append(record)
        return record

    async def _dispatch(self, record: RequestRecord) -> web.Response:
        fault = await self._take_fault(record, before_auth=True)
        if fault is not None:
            return fault
        if record.method != "POST":
            return web.json_response({"error_msg": "method not allowed"}, status=405)
        if record.endpoint == TOKEN_ENDPOINT and TOKEN_ENDPOINT not in self._overrides:
            return self._token(record)
        handler = _OPERATIONS.get(record.endpoint)
        if handler is None and record.endpoint not in self._overrides:
            return web.json_response({"error_msg": "no such path"}, status=404)
        if record.endpoint != TOKEN_ENDPOINT and not self._authorised(record):
            self.stats.auth_rejections += 1
            return web.json_response({"error_code": "401", "error_msg": "Unauthorized"}, status=401)
        fault = await self._take_fault(record, before_auth=False)
        if fault is not None:
            return fault
        if not isinstance(record.json, dict):
            return web.json_response({"error_msg": "the body is not a JSON object"}, status=400)
        override = self._overrides.get(record.endpoint)
        if override is not None:
            answer = override(record) if callable(override) else override
            if inspect.isawaitable(answer):
                answer = await answer
            return web.json_response(answer)
        assert handler is not None
        return web.json_response(handler(self, record.json))

    async def _take_fault(self, record: RequestRecord, *, before_auth: bool) -> web.Response | None:
        for fault in self._faults:
            # returnCode faults come after the token check, like a real business failure.
            if (fault.body is None) != before_auth or not fault.matches(record.endpoint):
                continue
            fault.remaining -= 1
            if fault.remaining <= 0:
                self._faults.remove(fault)
            if fault.delay is not None:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._closing.wait(), fault.delay)
                return None
            if fault.body is not None:
                return web.json_response(dict(fault.body))
            return web.Response(
                status=fault.status,
                text=f"<html><body>{fault.status} error (FakeCec fault)</body></html>",
                content_type="text/html",
            )
        return None

    def _authorised(self, record: RequestRecord) -> bool:
        if self._reject_remaining > 0:
            self._reject_remaining -= 1
            return False
        header = next((v for k, v in record.headers.items() if k.lower() == "authorization"), "")
        scheme, _, value = header.partition(" ")
        token = self._tokens.get(value)
        return scheme == "Bearer" and token is not None and token.expires_at > self._clock()

    def _token(self, record: RequestRecord) -> web.Response:
        body = record.json if isinstance(record.json, dict) else {}
        expire = next((v for k, v in record.headers.items() if k.lower() == "x-token-expire"), None)
        ttl = self._default_ttl
        if expire is not None:
            if not expire.isdigit() or not 1 <= int(expire) <= self._max_ttl:
                return web.json_response(
                    {
                        "error_code": "400",
                        "error_msg": f"X-Token-Expire must be 1..{self._max_ttl}",
                    },
                    status=400,
                )
            ttl = int(expire)
        if body.get("app_key") != self.app_key or body.get("app_secret") != self.app_secret:
            self.stats.token_refusals += 1
            return web.json_response(
                {"error_code": "403", "error_msg": "Incorrect app authentication information"},
                status=403,
            )
        now = self._clock()
        value = secrets.token_urlsafe(24)
        self._tokens[value] = _Token(value, now + ttl)
        self._issued.append(value)
        self.stats.tokens_issued += 1
        return web.json_response(
            {
                "AccessToken": value,
                "ApplyType": "Bearer",
                "CreateTime": str(int(now)),
                "Expires": str(ttl),
                "Scope": "default",
                "AppKey": self.app_key,
                "UserID": "Anonymous",
            }
        )

    # -- operations ----------------------------------------------------------------------------
    def _create(self, body: dict[str, Any]) -> dict[str, Any]:
        code = body.get("accessCode")
        ext = body.get("extCode")
        if not isinstance(code, str) or not code or len(code) > 32:
            return _failure("accessCode is required (at most 32 characters)")
        if ext is not None and (not isinstance(ext, str) or len(ext) > 12):
            return _failure("extCode is at most 12 characters")
        problem = _device_problem(body)
        if problem:
            return _failure(problem)
        media = body.get("mediaTypeId", 5)
        if media not in _MEDIA_TYPES:
            return _failure(f"mediaTypeId {media!r} is not supported")
        if any(r.accessCode == code and r.extCode == ext for r in self.routes.values()):
            return _failure("the access code and extension code are already bound", "2")
        self.add_route(
            code,
            device_type=body["devicetype"],
            device_id=body["deviceId"],
            ext_code=ext,
            media_type_id=media,
        )
        return {"returnCode": "0", "description": "data insert success"}

    def _query(self, body: dict[str, Any]) -> dict[str, Any]:
        limit = body.get("limit", 100)
        offset = body.get("offset", 0)
        if not isinstance(limit, int) or not 0 <= limit <= 100:
            return _failure("limit must be 0..100")
        if not isinstance(offset, int) or offset < 0:
            return _failure("offset must be >= 0")
        desc = body.get("deviceDesc")
        found = [
            r
            for r in self.routes.values()
            if body.get("accessCode") in (None, r.accessCode)
            and body.get("extCode") in (None, r.extCode)
            and body.get("devicetype") in (None, r.devicetype)
            and body.get("mediaTypeId") in (None, r.mediatypeId)
            and (desc is None or str(desc).lower() in r.deviceDesc.lower())
        ]
        page = found[offset : offset + limit]
        return {
            "returnCode": "0",
            "description": "query success",
            "data": {"total": len(found), "calledRouteList": [r.wire() for r in page]},
        }

    def _modify(self, body: dict[str, Any]) -> dict[str, Any]:
        route_id = body.get("id")
        if not isinstance(route_id, str) or not route_id:
            return _failure("id is required (a string)")
        problem = _device_problem(body)
        if problem:
            return _failure(problem)
        route = self.routes.get(route_id)
        if route is None:
            return _failure(f"called route {route_id} not found", "3")
        if route.editable in (1, 3):
            return _failure(f"called route {route_id} is not editable", "4")
        route.devicetype = body["devicetype"]
        route.deviceId = body["deviceId"]
        return {"returnCode": "0", "description": "data update success"}

    def _delete(self, body: dict[str, Any]) -> dict[str, Any]:
        text = body.get("dnids")
        if not isinstance(text, str) or not text.strip():
            return _failure("dnids is required (comma-separated dnids)")
        wanted = [part.strip() for part in text.split(",")]
        if len(wanted) > 1000:
            return _failure("at most 1000 dnids")
        by_dnid = {str(r.dnid): r for r in self.routes.values()}
        done: list[str] = []
        failed: list[str] = []
        for dnid in wanted:
            route = by_dnid.get(dnid)
            if route is None or route.editable in (2, 3):
                failed.append(dnid)
            else:
                del self.routes[route.id]
                done.append(dnid)
        content = f"Success:{','.join(done)}"
        if failed:
            content += f",Failed:{','.join(failed)}"
        data = {"id": "", "name": "", "content": content}
        if not done:
            return {**_failure("no called route deleted", "5"), "data": data}
        return {"returnCode": "0", "description": "data delete success", "data": data}


def _device_problem(body: dict[str, Any]) -> str | None:
    kind, device = body.get("devicetype"), body.get("deviceId")
    if kind not in _DEVICE_TYPES or isinstance(kind, bool):
        return f"devicetype must be 1 (skill queue) or 3 (IVR), got {kind!r}"
    if not isinstance(device, int) or isinstance(device, bool) or device < 0:
        return f"deviceId must be a number, got {device!r}"
    return None


_OPERATIONS: dict[str, Callable[[FakeCec, dict[str, Any]], dict[str, Any]]] = {
    "calledRoute/createCalledRoute": FakeCec._create,
    "calledRoute/queryCalledRoute": FakeCec._query,
    "calledRoute/modifyCalledRoute": FakeCec._modify,
    "calledRoute/deleteCalledRoute": FakeCec._delete,
}
