"""``transport_failure``: one wording of aiohttp failures for the OpenVox and CEC clients."""

from __future__ import annotations

import ssl
from types import SimpleNamespace
from typing import Any

import aiohttp
import pytest

from yeastar_async._wire import transport_failure

SECRET = "s3cret-token"
KEY: Any = SimpleNamespace(host="192.0.2.1", port=443, is_ssl=True, ssl=True)


def mask(text: str) -> str:
    return text.replace(SECRET, "***")


@pytest.mark.parametrize(
    ("exc", "message", "sent"),
    [
        (
            aiohttp.ClientConnectorError(KEY, OSError(111, f"refused {SECRET}")),
            "POST login: cannot connect to 192.0.2.1:443 (ClientConnectorError: [Errno 111] "
            "refused ***)",
            False,
        ),
        (
            aiohttp.ClientConnectorCertificateError(KEY, ssl.SSLCertVerificationError("bad")),
            "POST login: cannot connect to 192.0.2.1:443 (ClientConnectorCertificateError",
            True,
        ),
        (TimeoutError(), "POST login: no answer within 30 s", True),
        (
            aiohttp.ServerFingerprintMismatch(b"\x01" * 32, b"\x02" * 32, "192.0.2.1", 443),
            "POST login: the CEC certificate's SHA-256 fingerprint 02:02",
            True,
        ),
        (
            aiohttp.ClientPayloadError(f"cut short near {SECRET}"),
            "POST login: ClientPayloadError: cut short near ***",
            True,
        ),
    ],
)
def test_each_failure_is_worded_and_masked(exc: BaseException, message: str, sent: bool) -> None:
    error = transport_failure(
        exc,
        what="POST login",
        endpoint="login",
        address="192.0.2.1:443",
        timeout=30.0,
        mask=mask,
        peer="CEC",
    )
    assert str(error).startswith(message)
    assert SECRET not in str(error)
    assert error.sent is sent
    assert error.endpoint == "login"
