"""What the FakePBX saw: the request log and its counters."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from typing import Any

__all__ = ["FakePBXStats", "RequestRecord"]

_SECRET_KEYS = ("token", "password", "secret")
_SECRET_IN_TEXT = re.compile(r"((?:access|refresh)_token=)[^&\s'\"]+")


def _mask(mapping: Any) -> Any:
    # Nested too: webhook/update carries each entry's secret inside a list.
    if isinstance(mapping, list):
        return [_mask(v) for v in mapping]
    if not isinstance(mapping, dict):
        return mapping
    return {
        k: "***" if any(s in str(k).lower() for s in _SECRET_KEYS) else _mask(v)
        for k, v in mapping.items()
    }


@dataclass
class RequestRecord:
    """One HTTP request the fake received (REST, download or WebSocket handshake).

    Attributes:
        method: ``"GET"`` / ``"POST"`` ...
        path: the URL path, e.g. ``"/openapi/v1.0/extension/list"``.
        endpoint: the part after ``/openapi/v1.0/`` or ``/openapi/v2.0/`` (``"extension/list"``,
            ``"subscribe"``), or
            the path itself for anything else (``"/api/download/x.wav"``).
        query: the query string as a dict (first value of each key), token included.
        json: the decoded JSON body (None when there was none or it was not JSON).
        body: the raw body bytes.
        headers: the request headers (last value of each name).
        remote: the client's IP address.
        status: the HTTP status answered (101 for an accepted WebSocket upgrade).
        errcode: the ``errcode`` answered in a JSON body, when there was one.
        received_at: ``time.monotonic()`` when the request arrived (to check the spacing of
            retries and reconnect attempts).
        api_version: ``"1.0"`` for ``/openapi/v1.0/...``, ``"2.0"`` for ``/openapi/v2.0/...``.

    The ``repr`` masks tokens and passwords, so a failing assertion never prints them.
    """

    method: str
    path: str
    endpoint: str
    query: dict[str, str]
    json: Any
    body: bytes = field(repr=False)
    headers: dict[str, str] = field(repr=False)
    remote: str
    status: int | None = None
    errcode: int | None = None
    received_at: float = field(default_factory=time.monotonic, repr=False)
    api_version: str = "1.0"

    @property
    def user_agent(self) -> str | None:
        """The ``User-Agent`` header, if sent."""
        for name, value in self.headers.items():
            if name.lower() == "user-agent":
                return value
        return None

    @property
    def access_token(self) -> str | None:
        """The ``access_token`` query parameter, if sent."""
        return self.query.get("access_token")

    @property
    def params(self) -> dict[str, Any]:
        """The request's parameters: the JSON body for POST, else the query (token removed)."""
        if self.method == "POST" and isinstance(self.json, dict):
            return dict(self.json)
        return {k: v for k, v in self.query.items() if k != "access_token"}

    def __repr__(self) -> str:
        return (
            f"RequestRecord(method={self.method!r}, endpoint={self.endpoint!r}, "
            f"query={_mask(self.query)!r}, json={_mask(self.json)!r}, "
            f"user_agent={self.user_agent!r}, status={self.status!r}, errcode={self.errcode!r})"
        )


@dataclass
class FakePBXStats:
    """Counters kept by the fake (all start at zero; reset with ``FakePBX.reset_stats()``).

    Attributes:
        login_attempts: ``get_token`` calls that reached the credential check.
        logins_succeeded: logins that issued tokens.
        logins_failed: logins rejected for their credentials (the IP block counts these).
        logins_capped: logins refused with 60002 because too many tokens were live.
        refreshes: successful ``refresh_token`` calls.
        refresh_failures: ``refresh_token`` calls with an unknown or dead refresh token.
        revocations: successful ``del_token`` calls.
        renewal_revocations: access tokens killed because a newer one was issued (the
            ``renewal`` behaviour; a plain refresh under the default counts too).
        max_live_tokens: the most access tokens alive at once, seen after each issue.
        token_rejections: requests refused with 10004 (dead or missing access token).
        ws_handshakes: WebSocket upgrade requests received (accepted or not).
        ws_connects: upgrades accepted (the WebSocket was opened).
        ws_rejected: upgrades refused by ``reject_handshake``.
        heartbeats: ``heartbeat`` texts received.
        subscriptions: every ``topic_list`` received, in order.
        ws_user_agents: the User-Agent of each accepted upgrade, in order.
        events_sent: event frames delivered by ``emit``.
    """

    login_attempts: int = 0
    logins_succeeded: int = 0
    logins_failed: int = 0
    logins_capped: int = 0
    refreshes: int = 0
    refresh_failures: int = 0
    revocations: int = 0
    renewal_revocations: int = 0
    max_live_tokens: int = 0
    token_rejections: int = 0
    ws_handshakes: int = 0
    ws_connects: int = 0
    ws_rejected: int = 0
    heartbeats: int = 0
    subscriptions: list[list[int]] = field(default_factory=list)
    ws_user_agents: list[str | None] = field(default_factory=list)
    events_sent: int = 0


def redact(text: str) -> str:
    """Mask ``access_token=`` / ``refresh_token=`` values in ``text``."""
    return _SECRET_IN_TEXT.sub(r"\1***", text)
