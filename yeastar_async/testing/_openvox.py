"""``FakeOpenVox``: an ``aiohttp.web`` server on 127.0.0.1 that behaves like an OpenVox UC IPPBX.

It answers the API v0.0.1 calls the OpenVox client makes (login, heartbeat, logout and the
eight route calls) in both wire formats, chosen per request by ``type=json|xml``, with the
manual's quirks: ids sent as strings, XML lists as ``<item id="n">``, and ``urltag`` accepted as
a number. Tokens die after 30 idle minutes (on an injectable clock), and five wrong passwords in
a row lock the caller's IP for 10 minutes. Switches make it fail on purpose.

OpenVox publishes no errno list; the fake answers the codes in :data:`FAKE_ERRNOS`, its own
choice (the token codes follow the S-Series v1 ones OpenVox copied).
"""

from __future__ import annotations

import hashlib
import itertools
import secrets
import ssl
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Self
from xml.sax.saxutils import escape

import msgspec
from aiohttp import web

from ..openvox._codec import WireFormatError, decode
from ..openvox._guard import forget_login_failures
from ..openvox.models import DEST_TYPES
from ._loopback import LoopbackFake

__all__ = ["FAKE_ERRNOS", "FakeOpenVox", "OpenVoxRecord"]

API_PREFIX: Final = "/api/v0.0.1/"

#: What the fake answers, by cause (OpenVox publishes no list; 30003 is the manual's example).
FAKE_ERRNOS: Final[dict[str, str]] = {
    "login_failed": "30003",
    "ip_locked": "20002",
    "no_such_token": "20004",
    "token_blank": "20005",
    "token_timed_out": "20006",
    "bad_parameter": "40002",
    "duplicate": "40003",
    "not_found": "40004",
    "no_such_call": "10001",
}

_REQUIRED: Final[dict[str, tuple[str, ...]]] = {
    "login": ("username", "password", "port"),
    "heartbeat": ("ipaddr", "port"),
    "inroute/query": ("name",),
    "inroute/add": ("name", "desttype", "dest"),
    "inroute/update": ("name", "desttype", "dest"),
    "inroute/delete": ("name",),
    "outroute/query": ("name",),
    "outroute/add": ("name", "matchpattern", "trunks"),
    "outroute/update": ("id", "name", "matchpattern", "trunks"),
    "outroute/delete": ("name",),
}
_INROUTE_FIELDS: Final = ("name", "did", "caller_id", "desttype", "dest")
_OUTROUTE_FIELDS: Final = ("name", "prepend", "prefix", "matchpattern", "callerid", "trunks")


@dataclass
class OpenVoxRecord:
    """One request the fake received.

    Attributes:
        endpoint: the path after ``/api/v0.0.1/``, e.g. ``"inroute/update"``.
        query: the query string (first value of each key), token included.
        fmt: the ``type`` asked for (``""`` when absent).
        params: the body's fields as text (``{}`` for none, or a body that did not parse).
        body: the raw body bytes.
        content_type: the request's Content-Type header.
        remote: the client's IP address.
    """

    endpoint: str
    query: dict[str, str] = field(repr=False)
    fmt: str
    params: dict[str, str] = field(repr=False)
    body: bytes = field(repr=False)
    content_type: str
    remote: str


@dataclass
class _Fault:
    remaining: int
    endpoint: str | None
    status: int = 200
    errno: str | None = None
    raw: bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)

    def matches(self, endpoint: str) -> bool:
        return self.endpoint is None or self.endpoint == endpoint


class _Refusal(Exception):
    def __init__(self, errno: str) -> None:
        self.errno = errno


class FakeOpenVox(LoopbackFake):
    """A fake OpenVox UC IPPBX, served over real sockets on 127.0.0.1.

    Args:
        username: the API user it accepts.
        password: its password in clear (the fake compares MD5s); random by default.
        clock: a monotonic clock for token idleness and IP locks; inject one to age them.
        token_idle: seconds without a call after which a token dies (PBX: 1800).
        lock_after: wrong passwords in a row that lock the caller's IP (PBX: 5).
        lock_for: seconds an IP stays locked (PBX: 600).
        host / port: where to listen (port 0: a free one).
        ssl_context: serve HTTPS with this server context (``base_url`` is then ``https://``).

    Attributes:
        ERRNOS: the errno the fake answers per cause (:data:`FAKE_ERRNOS`).
        requests: every request received, oldest first (:class:`OpenVoxRecord`).
        inroutes: name -> the inbound route's fields (``id`` included), as the PBX stores them.
        outroutes: name -> the outbound route's fields.
    """

    ERRNOS: Final[Mapping[str, str]] = FAKE_ERRNOS

    def __init__(
        self,
        *,
        username: str = "api",
        password: str | None = None,
        clock: Callable[[], float] = time.monotonic,
        token_idle: float = 1800.0,
        lock_after: int = 5,
        lock_for: float = 600.0,
        host: str = "127.0.0.1",
        port: int = 0,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        super().__init__()
        self.username = username
        self._ssl_context = ssl_context
        self._scheme = "https" if ssl_context is not None else "http"
        self.password = password if password is not None else secrets.token_hex(8)
        self.host = host
        self.token_idle = token_idle
        self.lock_after = lock_after
        self.lock_for = lock_for
        self.requests: list[OpenVoxRecord] = []
        self.inroutes: dict[str, dict[str, str]] = {}
        self.outroutes: dict[str, dict[str, str]] = {}
        #: The clock the fake ages tokens and locks by (share it with the client under test).
        self.clock = clock
        self._port = port
        self._ids = itertools.count(1)
        self._tokens: dict[str, float] = {}  # token -> last use
        self._issued: list[str] = []
        self._failures: dict[str, int] = {}
        self._locked_until: dict[str, float] = {}
        self._faults: list[_Fault] = []
        self._runner: web.AppRunner | None = None

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> Self:
        """Start listening (idempotent); returns the fake for chaining."""
        if self._runner is None:
            app = web.Application(client_max_size=1 << 20)
            app.router.add_route("*", API_PREFIX + "{endpoint:.*}", self._handle)
            self._runner = await self._listen(app, ssl_context=self._ssl_context)
            # A new PBX at this address: rejected logins counted for an earlier fake are gone.
            forget_login_failures(self.host)
        return self

    async def close(self) -> None:
        """Stop listening (idempotent)."""
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await runner.cleanup()

    # -- inspection and switches -------------------------------------------------------------

    def count(self, endpoint: str) -> int:
        """How many requests ``endpoint`` received."""
        return sum(1 for r in self.requests if r.endpoint == endpoint)

    @property
    def live_tokens(self) -> list[str]:
        """Tokens still alive (not logged out, not idle too long)."""
        now = self.clock()
        return [t for t, used in self._tokens.items() if now - used < self.token_idle]

    @property
    def issued_tokens(self) -> list[str]:
        """Every token handed out, dead or alive."""
        return list(self._issued)

    def expire_tokens(self) -> int:
        """Kill every token now (as 30 idle minutes would); returns how many were alive."""
        alive = len(self.live_tokens)
        self._tokens.clear()
        return alive

    def add_inroute(
        self, name: str, desttype: str, dest: str, *, did: str = "", caller_id: str = ""
    ) -> None:
        """Put an inbound route in the store."""
        self.inroutes[name] = {
            "id": str(next(self._ids)),
            "name": name,
            "did": did,
            "caller_id": caller_id,
            "desttype": desttype,
            "dest": dest,
        }

    def add_outroute(
        self,
        name: str,
        matchpattern: str,
        trunks: str,
        *,
        prefix: str = "",
        prepend: str = "",
        callerid: str = "",
    ) -> None:
        """Put an outbound route in the store."""
        self.outroutes[name] = {
            "id": str(next(self._ids)),
            "name": name,
            "prepend": prepend,
            "prefix": prefix,
            "matchpattern": matchpattern,
            "callerid": callerid,
            "trunks": trunks,
        }

    def is_locked(self, ip: str = "127.0.0.1") -> bool:
        """Whether logins from ``ip`` are locked right now."""
        return self.clock() < self._locked_until.get(ip, float("-inf"))

    def failed_logins(self, ip: str = "127.0.0.1") -> int:
        """Wrong passwords in a row from ``ip`` since its last success or lock."""
        return self._failures.get(ip, 0)

    def unlock(self, ip: str | None = None) -> None:
        """Lift the lock and the failure count of ``ip`` (or of every IP)."""
        for table in (self._failures, self._locked_until):
            if ip is None:
                table.clear()
            else:
                table.pop(ip, None)

    def fail_next(self, n: int = 1, status: int = 503, endpoint: str | None = None) -> None:
        """Answer the next ``n`` requests (to ``endpoint``, or any) with HTTP ``status``."""
        self._faults.append(_Fault(n, endpoint, status=status))

    def fail_next_errno(self, n: int, errno: str, endpoint: str | None = None) -> None:
        """Answer the next ``n`` requests ``status: Failed`` with ``errno``, unprocessed."""
        self._faults.append(_Fault(n, endpoint, errno=errno))

    def answer_raw(
        self,
        body: bytes,
        *,
        n: int = 1,
        endpoint: str | None = None,
        status: int = 200,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        """Answer the next ``n`` requests with exactly ``body``, ``status`` and ``headers``
        (hostile peers: redirects, entity bombs, huge or malformed bodies)."""
        self._faults.append(
            _Fault(n, endpoint, status=status, raw=body, headers=dict(headers or {}))
        )

    def clear_faults(self) -> None:
        """Forget every pending fault."""
        self._faults.clear()

    # -- handling -----------------------------------------------------------------------------

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        endpoint = request.match_info["endpoint"].strip("/")
        body = await request.read()
        fmt = request.query.get("type", "")
        record = OpenVoxRecord(
            endpoint=endpoint,
            query=dict(request.query),
            fmt=fmt,
            params=self._params(fmt, body),
            body=body,
            content_type=request.headers.get("Content-Type", ""),
            remote=request.remote or "",
        )
        self.requests.append(record)
        self._notify()  # for wait_until()
        fault = self._take_fault(endpoint)
        if fault is not None and fault.raw is not None:
            return web.Response(body=fault.raw, status=fault.status, headers=fault.headers)
        if fault is not None and fault.errno is None:
            return web.Response(text="fault injected", status=fault.status)
        answer_fmt = "xml" if fmt == "xml" else "json"
        try:
            if fault is not None and fault.errno is not None:
                raise _Refusal(fault.errno)
            if fmt not in ("json", "xml"):
                raise _Refusal(FAKE_ERRNOS["bad_parameter"])
            answer = self._answer(endpoint, record)
        except _Refusal as refusal:
            answer = {"status": "Failed", "errno": refusal.errno}
        else:
            answer = {"status": "Success", **answer}
        return _respond(answer_fmt, answer)

    def _take_fault(self, endpoint: str) -> _Fault | None:
        for fault in self._faults:
            if fault.remaining > 0 and fault.matches(endpoint):
                fault.remaining -= 1
                if fault.remaining == 0:
                    self._faults.remove(fault)
                return fault
        return None

    @staticmethod
    def _params(fmt: str, body: bytes) -> dict[str, str]:
        if not body.strip():
            return {}
        try:
            parsed = decode("xml" if fmt == "xml" else "json", body)
        except WireFormatError:
            return {}
        # urltag (and other numbers) arrive as JSON numbers too: keep them as text.
        return {str(k): _text(v) for k, v in parsed.items()}

    def _answer(self, endpoint: str, record: OpenVoxRecord) -> dict[str, Any]:
        params = record.params
        for name in _REQUIRED.get(endpoint, ()):
            if not params.get(name, "").strip() and not (
                name == "dest" and params.get("desttype") == "hangup"
            ):
                raise _Refusal(FAKE_ERRNOS["bad_parameter"])
        if endpoint == "login":
            return self._login(params, record.remote)
        token = record.query.get("token", "")
        self._check_token(token)
        if endpoint == "logout":
            self._tokens.pop(token, None)
            return {}
        if endpoint == "heartbeat":
            return {}
        group, _, action = endpoint.partition("/")
        if group == "inroute":
            return self._routes(self.inroutes, "inroutes", _INROUTE_FIELDS, action, params)
        if group == "outroute":
            return self._routes(self.outroutes, "outroutes", _OUTROUTE_FIELDS, action, params)
        raise _Refusal(FAKE_ERRNOS["no_such_call"])

    def _login(self, params: Mapping[str, str], ip: str) -> dict[str, Any]:
        if self.is_locked(ip):
            raise _Refusal(FAKE_ERRNOS["ip_locked"])
        expected = hashlib.md5(self.password.encode(), usedforsecurity=False).hexdigest()
        if params.get("username") != self.username or params.get("password") != expected:
            failures = self._failures[ip] = self._failures.get(ip, 0) + 1
            if failures >= self.lock_after:
                self._locked_until[ip] = self.clock() + self.lock_for
                self._failures[ip] = 0
            raise _Refusal(FAKE_ERRNOS["login_failed"])
        self._failures.pop(ip, None)
        token = secrets.token_hex(16)
        self._tokens[token] = self.clock()
        self._issued.append(token)
        return {"token": token}

    def _check_token(self, token: str) -> None:
        if not token:
            raise _Refusal(FAKE_ERRNOS["token_blank"])
        used = self._tokens.get(token)
        if used is None:
            raise _Refusal(FAKE_ERRNOS["no_such_token"])
        now = self.clock()
        if now - used >= self.token_idle:
            del self._tokens[token]
            raise _Refusal(FAKE_ERRNOS["token_timed_out"])
        self._tokens[token] = now  # any call counts as interaction

    def _routes(
        self,
        store: dict[str, dict[str, str]],
        key: str,
        fields: tuple[str, ...],
        action: str,
        params: Mapping[str, str],
    ) -> dict[str, Any]:
        if action == "query":
            return {key: [dict(store[n]) for n in self._named(store, params["name"], strict=False)]}
        if action == "delete":
            for name in self._named(store, params["name"], strict=True):
                del store[name]
            return {}
        if key == "inroutes" and params["desttype"] not in DEST_TYPES:
            raise _Refusal(FAKE_ERRNOS["bad_parameter"])
        values = {f: params[f] for f in fields if f in params}
        if action == "add":
            if params["name"] in store:
                raise _Refusal(FAKE_ERRNOS["duplicate"])
            store[params["name"]] = {
                "id": str(next(self._ids)),
                **dict.fromkeys(fields, ""),
                **values,
            }
            return {}
        if action != "update":
            raise _Refusal(FAKE_ERRNOS["no_such_call"])
        if key == "inroutes":
            current = store.get(params["name"])
            if current is None:
                raise _Refusal(FAKE_ERRNOS["not_found"])
            current.update(values)
            return {}
        # outroute/update finds the route by id and may rename it.
        old = next((n for n, r in store.items() if r["id"] == params["id"]), None)
        if old is None:
            raise _Refusal(FAKE_ERRNOS["not_found"])
        if params["name"] != old and params["name"] in store:
            raise _Refusal(FAKE_ERRNOS["duplicate"])
        store[old].update(values)
        # A rename keeps the route's place in the list.
        renamed = [(route["name"], route) for route in store.values()]
        store.clear()
        store.update(renamed)
        return {}

    @staticmethod
    def _named(store: Mapping[str, Any], names: str, *, strict: bool) -> list[str]:
        if names == "all":
            return list(store)
        wanted = [n for n in names.split(",") if n]
        if strict and any(n not in store for n in wanted):
            raise _Refusal(FAKE_ERRNOS["not_found"])
        return [n for n in wanted if n in store]


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int | float):
        return str(value)
    return msgspec.json.encode(value).decode()


def _respond(fmt: str, answer: Mapping[str, Any]) -> web.Response:
    if fmt == "json":
        return web.Response(body=msgspec.json.encode(answer), content_type="application/json")
    parts = ['<?xml version="1.0" encoding="utf-8"?>', "<xml>"]
    _xml(parts, answer.items())
    parts.append("</xml>")
    return web.Response(text="".join(parts), content_type="text/xml")


def _xml(parts: list[str], items: Iterable[tuple[str, Any]]) -> None:
    """Nested dicts and lists as the manual writes them: a list's entries are ``<item id="n">``."""
    for name, value in items:
        if isinstance(value, list):
            parts.append(f"<{name}>")
            for index, entry in enumerate(value):
                parts.append(f'<item id="{index}">')
                _xml(parts, entry.items())
                parts.append("</item>")
            parts.append(f"</{name}>")
        else:
            parts.append(f"<{name}>{escape(_text(value))}</{name}>")
