"""``doctor``: a checklist from TCP reachability to the WebSocket, each failure with its fix."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import json
import ssl
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Final, Literal, Protocol, TypeVar
from urllib.parse import urlsplit

from websockets.exceptions import InvalidStatus, WebSocketException

from .._guard_store import GuardStateError
from .._tls import checked_connection
from ..client import YeastarClient
from ..errors import (
    AccessDeniedError,
    ApiUnavailableError,
    AuthenticationError,
    IPBlockedError,
    LimitExceededError,
    TransportError,
    YeastarError,
)
from ..events._stream import _no_redirect_connect, _RedactingLogger, _ws_logger
from ._connect import make_client, opt
from ._output import PROG, out

Status = Literal["pass", "fail", "warn", "skip"]
#: Checklist symbols (``out`` turns them into ASCII for a console that cannot show them).
_MARKS: Final[dict[str, str]] = {"pass": "✓", "fail": "✗", "warn": "!", "skip": "-"}


T = TypeVar("T")
T_co = TypeVar("T_co", covariant=True)


class _Answer(Protocol[T_co]):
    """A REST answer with its ``data`` (None when the PBX sent none)."""

    @property
    def data(self) -> T_co | None: ...


@dataclass
class Check:
    """One line of the doctor's checklist."""

    name: str
    status: Status
    detail: str
    fix: str = ""


_FIX_REACH: Final = (
    "Check the address and port in the base URL (the PBX web port: HTTPS 8088 by default), that "
    "the PBX is running, and that no firewall blocks this host."
)
_FIX_NOT_TLS: Final = (
    "This port does not speak TLS: use http:// for an HTTP port, or the HTTPS port (8088 by "
    "default)."
)
_FIX_LOGIN: Final = (
    "Copy the Client ID and Client Secret again from Integrations > API on the PBX. doctor tried "
    "once only, but the PBX blocks this IP after 5 rejected logins in a row, counted across runs "
    "(of doctor or any other command): fix the credentials before running again."
)
_FIX_GUARD: Final = (
    "The PBX blocks this IP at 5 rejected logins in a row, counted by every process here: "
    f"{PROG} refuses to send a login at 4 (3 with the same credentials). Check the credentials "
    "before the next try; a successful login clears the count."
)
_FIX_BLOCKED: Final = (
    "This IP is on the PBX's IP blocklist (after 5 failed logins). An administrator removes it "
    "under Security > Security Rules > IP Blocklist; fix the credentials first."
)
_FIX_ALLOW_LIST: Final = (
    "This IP is not on the API's IP allow list: add it under Integrations > API (allowed IP "
    "addresses), or switch the allow list off."
)
_FIX_API_OFF: Final = (
    "Enable the API under Integrations > API (it needs a firmware and licence that include the "
    "API), then save."
)
_FIX_NO_ENDPOINT: Final = (
    "The PBX has no such endpoint (errcode 10001): the API is off, or this firmware predates "
    "the endpoint. Enable the API under Integrations > API (it needs a firmware and licence that "
    "include the API); if the error stays, update the PBX firmware."
)
#: 10002 / 10003: the version in the API path (``openapi/v1.0``), not a setting, is the issue.
_FIX_VERSION: Final = {
    10002: (
        "This firmware no longer maintains the API version in /{api_path} (errcode 10002). "
        "Check which API version the PBX's firmware documents: this SDK speaks the one in that "
        "path (Python: YeastarClient(api_path=...) selects another)."
    ),
    10003: (
        "This firmware does not support the API version in /{api_path} (errcode 10003). Check "
        "that the base URL points at a Yeastar P-Series PBX, and update its firmware."
    ),
}
_FIX_TOKEN_CAP: Final = (
    "The application holds too many live tokens (about 8): close other clients (closing "
    "revokes their token) or wait until their tokens expire (30 min)."
)
_FIX_ACCESS: Final = "The API account may not call this endpoint: check its permissions."
_FIX_WS: Final = (
    "The REST API works but the WebSocket does not: a reverse proxy or firewall in between must "
    "pass WebSocket upgrades (and frames, unbuffered) to /openapi/v1.0/subscribe."
)
_PREREQUISITES: Final = (
    "Not checkable over the API (PBX settings under Integrations > API > Advanced):",
    "  - 30007 / 30008 / 30009 need the extension Registration / Call / Presence Status "
    "Monitoring toggles",
    "  - 30010 (and trunk legs in 30011) need the trunk's status monitoring toggle",
    '  - 30016 and call/accept_inbound, call/refuse_inbound need "Control Inbound Call" '
    "on the trunk",
)


def _error_fix(exc: YeastarError, api_path: str) -> str:
    """The fix line for an error of the login or a later REST check."""
    if isinstance(exc, IPBlockedError):
        return _FIX_ALLOW_LIST if exc.errcode == 70087 else _FIX_BLOCKED
    if isinstance(exc, AuthenticationError):  # LockoutGuardError too: the same fix
        return _FIX_LOGIN
    if isinstance(exc, LimitExceededError):
        return _FIX_TOKEN_CAP
    if isinstance(exc, ApiUnavailableError):
        if exc.errcode == 10001:
            return _FIX_NO_ENDPOINT
        if exc.errcode in _FIX_VERSION:
            return _FIX_VERSION[exc.errcode].format(api_path=api_path)
        return _FIX_API_OFF  # 70123 API UNAVAILABLE: the API is switched off
    if isinstance(exc, AccessDeniedError):
        return _FIX_ACCESS
    if isinstance(exc, TransportError):
        if exc.status == 404:
            enable = _FIX_API_OFF[0].lower() + _FIX_API_OFF[1:]
            return f"Nothing answers /{api_path} here: check the port, and {enable}"
        if exc.status is not None and exc.status >= 500:
            return (
                f"The PBX, or a proxy in front of it, failed the request (HTTP {exc.status}): "
                "it may be starting or overloaded. Wait a minute and run doctor again; if it "
                "persists, check the PBX and any reverse proxy's logs."
            )
        if exc.status is None:
            return (
                "No answer in time or the connection broke: check the network path to the PBX "
                "and its load (--timeout S allows slower answers)."
            )
    return "The detail is in this check's line; run with -v to see the requests and answers."


def _brief(exc: YeastarError) -> str:
    """The error without its advice (the checklist prints its own fix line)."""
    if exc.errcode is None:
        return str(exc)
    where = f"{exc.endpoint}: " if exc.endpoint else ""
    return f"{where}errcode {exc.errcode} {exc.errmsg}".rstrip()


def _host_port(base_url: str) -> tuple[str, int, bool]:
    parts = urlsplit(base_url)
    secure = parts.scheme == "https"
    return parts.hostname or "", parts.port or (443 if secure else 80), secure


def _fingerprint(der: bytes) -> str:
    return hashlib.sha256(der).digest().hex(":").upper()


async def _close(writer: asyncio.StreamWriter) -> None:
    writer.close()
    with contextlib.suppress(OSError):  # ssl.SSLError included: it is an OSError
        await writer.wait_closed()


def _pin_hint(host: str, port: int, fingerprint: str | None) -> str:
    pin = f"--pin {fingerprint}" if fingerprint else "--pin <sha256 fingerprint>"
    return (
        f"Don't switch verification off. Pin the certificate: {pin} after comparing it with "
        "the fingerprint seen on the PBX itself (e.g. "
        f"openssl s_client -connect {host}:{port} </dev/null | openssl x509 -noout -fingerprint "
        "-sha256, run from a trusted network), or pass the CA that signed it with --ca-file PATH."
    )


#: The checks that need a login, in order.
_AFTER_LOGIN: Final = ("API access", "capacity", "WebSocket")


class _Doctor:
    """Runs the checks in order; a failed prerequisite skips the checks that depend on it."""

    def __init__(self, client: YeastarClient, timeout: float) -> None:
        self.client = client
        # The client has no public view of its TLS policy, WebSocket URL and peer check, and
        # the doctor must test exactly what the client would use.
        self.transport = client._transport
        self.timeout = timeout
        self.checks: list[Check] = []
        host, port, secure = _host_port(client.base_url)
        self.host, self.port, self.secure = host, port, secure

    def fix(self, exc: YeastarError) -> str:
        """The fix line for ``exc``, failing a REST check."""
        return _error_fix(exc, self.transport.api_path)

    def report(self, check: Check) -> Check:
        self.checks.append(check)
        out(f"{_MARKS[check.status]} {check.name:<13} {check.detail}")
        if check.fix and check.status in ("fail", "warn"):
            out(f"  {'':13} fix: {check.fix}")
        return check

    def skip(self, reason: str, *names: str) -> None:
        for name in names:
            self.report(Check(name, "skip", reason))

    async def run(self) -> bool:
        out(f"{PROG} doctor: {self.client.base_url}")
        reachable = await self.reachability()
        tls_ok = reachable and await self.tls()
        if not tls_ok:
            self.skip("skipped: the PBX cannot be reached securely", "login", *_AFTER_LOGIN)
        elif await self.login():
            await self.api_access()
            await self.capacity()
            await self.websocket()
        else:
            self.skip("skipped: needs a login (not retried)", *_AFTER_LOGIN)
        out("")
        for line in _PREREQUISITES:
            out(line)
        failed = [c for c in self.checks if c.status == "fail"]
        out("")
        if failed:
            out(f"{len(failed)} check(s) failed: {', '.join(c.name for c in failed)}.")
        else:
            out("All checks passed.")
        return not failed

    async def reachability(self) -> bool:
        started = time.perf_counter()
        try:
            async with asyncio.timeout(self.timeout):
                _, writer = await asyncio.open_connection(self.host, self.port)
        except (OSError, TimeoutError) as exc:
            reason = "timed out" if isinstance(exc, TimeoutError) else str(exc) or repr(exc)
            self.report(
                Check("reachability", "fail", f"{self.host}:{self.port}: {reason}", _FIX_REACH)
            )
            return False
        await _close(writer)
        ms = (time.perf_counter() - started) * 1000
        self.report(Check("reachability", "pass", f"{self.host}:{self.port} answers ({ms:.0f} ms)"))
        return True

    async def _peer_certificate(
        self, context: ssl.SSLContext, *, check_pin: bool = True
    ) -> tuple[bytes, str]:
        """One TLS handshake with ``context``: the peer's DER certificate and TLS version."""
        async with asyncio.timeout(self.timeout):
            _, writer = await asyncio.open_connection(
                self.host, self.port, ssl=context, server_hostname=self.host
            )
        try:
            ssl_object = writer.get_extra_info("ssl_object")
            if check_pin:
                self.transport.check_peer(ssl_object)  # the --pin comparison
            der = ssl_object.getpeercert(binary_form=True) if ssl_object is not None else None
            version = ssl_object.version() if ssl_object is not None else None
            return der or b"", version or "TLS"
        finally:
            await _close(writer)

    async def _unverified_fingerprint(self) -> str | None:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        with contextlib.suppress(OSError, TimeoutError, ssl.SSLError):
            der, _ = await self._peer_certificate(context, check_pin=False)
            return _fingerprint(der) if der else None
        return None

    async def tls(self) -> bool:
        if not self.secure:
            self.report(
                Check(
                    "TLS",
                    "warn",
                    "not used (http://): the credentials and tokens travel in clear text",
                    "Use https:// and the PBX's HTTPS port (8088 by default).",
                )
            )
            return True
        context = self.transport.ws_ssl()
        assert context is not None  # https always has a context
        policy = self.transport.tls
        try:
            der, version = await self._peer_certificate(context)
        except ssl.SSLCertVerificationError as exc:
            fingerprint = await self._unverified_fingerprint()
            detail = f"certificate not trusted: {exc.verify_message or exc.reason}"
            fix = (
                _pin_hint(self.host, self.port, fingerprint)
                if fingerprint
                else "Pass the CA that signed the PBX's certificate with --ca-file PATH."
            )
            if fingerprint:
                detail += f" (SHA-256 {fingerprint})"
            self.report(Check("TLS", "fail", detail, fix))
            return False
        except TransportError as exc:  # the pin did not match
            fingerprint = await self._unverified_fingerprint()
            fix = (
                "The PBX's certificate changed (renewed?) or something else answers. Check the "
                "fingerprint on the PBX, then update --pin."
            )
            if fingerprint:
                fix += f" It now presents {fingerprint}."
            self.report(Check("TLS", "fail", str(exc), fix))
            return False
        except (ssl.SSLError, OSError, TimeoutError) as exc:
            reason = "handshake timed out" if isinstance(exc, TimeoutError) else str(exc)
            self.report(Check("TLS", "fail", f"TLS handshake failed: {reason}", _FIX_NOT_TLS))
            return False
        fingerprint = _fingerprint(der) if der else None
        if policy.pin is not None:
            self.report(Check("TLS", "pass", f"{version}, certificate matches the pin"))
        elif not policy.verify:
            self.report(
                Check(
                    "TLS",
                    "warn",
                    f"{version}, certificate NOT verified (--insecure)",
                    _pin_hint(self.host, self.port, fingerprint),
                )
            )
        else:
            self.report(Check("TLS", "pass", f"{version}, certificate verified"))
        return True

    async def login_guard(self) -> bool:
        """The lockout guard's count for this PBX; False when it is unusable (no login then)."""
        try:
            count = await self.client._tokens.guard_count()
        except GuardStateError as exc:
            self.report(Check("login guard", "fail", "state unusable", str(exc)))
            return False
        detail = (
            f"{count.in_a_row} rejected login(s) in a row to {count.key} "
            f"({count.same} with these credentials), counted {count.where}"
        )
        if count.known_good:
            detail += "; these credentials logged in there before"
        if count.in_a_row == 0:
            self.report(Check("login guard", "pass", detail))
        else:
            self.report(Check("login guard", "warn", detail, _FIX_GUARD))
        return True

    async def login(self) -> bool:
        if not await self.login_guard():
            return False
        # Exactly one get_token: the client never retries a rejected login, and this
        # command makes no other login-triggering call when this one fails.
        try:
            await self.client.login()
        except YeastarError as exc:
            self.report(Check("login", "fail", _brief(exc), self.fix(exc)))
            return False
        self.report(Check("login", "pass", "token granted"))
        return True

    async def _data(
        self, name: str, endpoint: str, request: Callable[[], Awaitable[_Answer[T]]]
    ) -> T | None:
        """The data of ``request``'s answer; None once a check line says all there is to say."""
        try:
            data = (await request()).data
        except YeastarError as exc:
            self.report(Check(name, "fail", _brief(exc), self.fix(exc)))
            return None
        if data is None:
            self.report(Check(name, "pass", f"{endpoint} answered"))
        return data

    async def api_access(self) -> None:
        info = await self._data("API access", "system/information", self.client.system.information)
        if info is None:
            return
        name = " ".join(part for part in (info.model_name, info.device_name) if part) or "PBX"
        detail = f"{name}, firmware {info.firmware_version or '?'}, SN {info.sn or '?'}"
        self.report(Check("API access", "pass", detail))

    async def capacity(self) -> None:
        cap = await self._data("capacity", "system/capacity", self.client.system.capacity)
        if cap is None:
            return
        detail = (
            f"extensions {cap.extension_used}/{cap.extension_capacity}, "
            f"concurrent calls {cap.cc_used}/{cap.cc_capacity}"
        )
        full = cap.cc_capacity is not None and (cap.cc_used or 0) >= cap.cc_capacity
        if full:
            fix = "Every concurrent-call slot is in use: new calls (call/dial) will fail."
            self.report(Check("capacity", "warn", detail, fix))
        else:
            self.report(Check("capacity", "pass", detail))

    async def websocket(self) -> None:
        try:
            detail = await self._ws_round_trip()
        except _WsCheckFailed as exc:
            self.report(Check("WebSocket", "fail", str(exc), exc.fix))
            return
        self.report(Check("WebSocket", "pass", detail))

    async def _ws_round_trip(self) -> str:
        """Subscribe, expect the ack, send ``heartbeat``, expect ``heartbeat response``."""
        transport = self.transport
        # The token the login check obtained (cached: no second login); the WebSocket URL
        # carries it and the client has no public accessor for it.
        token = await self.client._tokens.token()
        tls: dict[str, Any] = {}
        context = transport.ws_ssl()
        if context is not None:
            tls["ssl"] = context
        try:
            # Never follows a redirect: the upgrade carries the token (a 3xx is InvalidStatus).
            async with _no_redirect_connect()(
                transport.ws_url(token),
                # --pin is checked before the upgrade request carries the token.
                create_connection=checked_connection(transport.check_peer),
                user_agent_header=transport.user_agent,
                open_timeout=self.timeout,
                ping_interval=None,
                compression=None,
                proxy=None,
                # websockets logs the request line, token included, at DEBUG: redact it.
                logger=_RedactingLogger(_ws_logger, transport.redact),
                **tls,
            ) as ws:
                started = time.perf_counter()
                await ws.send(json.dumps({"topic_list": [30011]}))
                ack = await self._ws_reply(ws, lambda f: f.lstrip().startswith('{"errcode"'))
                if ack is None:
                    raise _WsCheckFailed(
                        f"no answer to the subscribe message within {self.timeout:.0f} s", _FIX_WS
                    )
                try:
                    code = json.loads(ack).get("errcode")
                except (ValueError, AttributeError):  # not a JSON object after all
                    code = None
                if code != 0:
                    raise _WsCheckFailed(
                        f"the PBX rejected the subscription: {transport.redact(ack)}", _FIX_WS
                    )
                ack_ms = (time.perf_counter() - started) * 1000
                started = time.perf_counter()
                await ws.send("heartbeat")
                reply = await self._ws_reply(ws, lambda f: f == "heartbeat response")
                if reply is None:
                    raise _WsCheckFailed(
                        f"subscribed, but no 'heartbeat response' within {self.timeout:.0f} s",
                        _FIX_WS,
                    )
                beat_ms = (time.perf_counter() - started) * 1000
        except TransportError as exc:  # the pin did not match: nothing was sent
            raise _WsCheckFailed(str(exc), "Check --pin (see the TLS check).") from None
        except InvalidStatus as exc:
            status = exc.response.status_code
            raise _WsCheckFailed(f"WebSocket upgrade refused: HTTP {status}", _FIX_WS) from None
        except (OSError, TimeoutError, WebSocketException) as exc:
            reason = transport.redact(str(exc) or type(exc).__name__)
            raise _WsCheckFailed(f"WebSocket failed: {reason}", _FIX_WS) from None
        return f"subscribed ({ack_ms:.0f} ms), heartbeat answered ({beat_ms:.0f} ms)"

    async def _ws_reply(self, ws: Any, wanted: Callable[[str], bool]) -> str | None:
        """The first text frame ``wanted`` accepts within the timeout (events are skipped)."""
        try:
            async with asyncio.timeout(self.timeout):
                while True:
                    frame = await ws.recv()
                    text = frame.decode(errors="replace") if isinstance(frame, bytes) else frame
                    if wanted(text):
                        return str(text)
        except TimeoutError:
            return None


class _WsCheckFailed(Exception):
    def __init__(self, message: str, fix: str) -> None:
        super().__init__(message)
        self.fix = fix


async def cmd_doctor(args: argparse.Namespace) -> int:
    """``doctor``: the checklist; exit 0 when every check passed, 1 otherwise."""
    timeout = opt(args, "timeout") or 10.0
    # retries=0: a diagnosis wants the first failure, not three of them.
    async with make_client(args, retries=0, timeout=timeout) as client:
        ok = await _Doctor(client, timeout).run()
    return 0 if ok else 1
